//! Tests of the store lock.

use super::StoreLock;
use crate::store::Error;

#[test]
fn second_acquire_fails_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("store");
    let path = root.join("lock");

    let first = StoreLock::acquire(&path).expect("first acquire");
    assert_eq!(first.path(), path);
    assert!(path.is_file(), "lock file created with its directory");

    // A fresh open file description in the same process is refused, as another process would be.
    match StoreLock::acquire(&path) {
        Err(Error::Locked(locked)) => assert_eq!(locked, root),
        other => panic!("expected Locked, got {other:?}"),
    }

    drop(first);
    assert!(path.is_file(), "lock file stays after release");
    let again = StoreLock::acquire(&path).expect("acquire after release");
    drop(again);
}

#[test]
fn lock_file_content_is_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lock");
    std::fs::write(&path, b"left by java").expect("write");
    let lock = StoreLock::acquire(&path).expect("acquire");
    assert_eq!(std::fs::read(&path).expect("read"), b"left by java");
    drop(lock);
}

#[test]
fn unopenable_path_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The lock path is a directory: opening it for writing fails.
    let path = dir.path().join("lock");
    std::fs::create_dir(&path).expect("mkdir");
    match StoreLock::acquire(&path) {
        Err(Error::Io { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Io, got {other:?}"),
    }
}
