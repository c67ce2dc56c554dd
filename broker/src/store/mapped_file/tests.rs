//! Tests of the mapped files.

use std::sync::Arc;

use super::*;

#[test]
fn append_publishes_in_order_and_refuses_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000000000");
    let f = MappedFile::create(&path, 0, 64).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 64);
    assert_eq!(f.read(0, 1), None);
    assert_eq!(f.append(b"abcdefgh").unwrap(), Some(0));
    assert_eq!(f.append(b"xyz").unwrap(), Some(8));
    assert_eq!(f.read(0, 11), Some(&b"abcdefghxyz"[..]));
    assert_eq!(f.read(5, 7), None, "past the published end");
    assert_eq!(f.append(&[1u8; 54]).unwrap(), None, "does not fit");
    assert_eq!(f.wrote(), 11);
    let shared = Arc::new(f);
    let b = shared.read_shared(8, 3).unwrap();
    assert_eq!(&b[..], b"xyz");
    shared.flush().unwrap();
    assert_eq!(shared.flushed(), 11);
}

#[test]
fn reopen_sees_data_and_zero_tail_clears_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000000000");
    {
        let f = MappedFile::create(&path, 0, 8192).unwrap();
        f.append(&[7u8; 5000]).unwrap();
        f.flush().unwrap();
    }
    let mut f = MappedFile::open(&path, 0, 8192).unwrap();
    assert_eq!(f.wrote(), 0);
    assert!(f.recovery_view()[..5000].iter().all(|&b| b == 7));
    f.zero_tail(100).unwrap();
    assert_eq!(f.wrote(), 100);
    assert!(f.recovery_view()[100..].iter().all(|&b| b == 0));
    assert!(f.recovery_view()[..100].iter().all(|&b| b == 7));
    assert!(MappedFile::open(&path, 0, 4096).is_err(), "length mismatch is refused");
}

#[test]
fn region_reads_and_writes_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idx");
    let mut r = MappedRegion::create(&path, 100).unwrap();
    r[10..14].copy_from_slice(&[1, 2, 3, 4]);
    r.flush().unwrap();
    drop(r);
    let r = MappedRegion::open(&path, 100).unwrap();
    assert_eq!(&r[10..14], &[1, 2, 3, 4]);
    assert!(MappedRegion::create(&path, 100).is_err(), "exists");
}

#[test]
fn prefilled_files_append_through_the_file_and_read_through_the_map() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000004096");
    let f = Arc::new(MappedFile::create_prefilled(&path, 4096, 8192).unwrap());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 8192);
    assert_eq!(f.append(b"hello world").unwrap(), Some(0));
    assert_eq!(f.append(b"!").unwrap(), Some(11));
    assert_eq!(f.read(0, 12), Some(&b"hello world!"[..]));
    assert_eq!(&f.read_shared(6, 5).unwrap()[..], b"world");
    assert!(f.append_at(100, b"at").unwrap());
    assert!(!f.append_at(50, b"behind").unwrap(), "behind the write position");
    assert_eq!(f.read(100, 2), Some(&b"at"[..]));
    f.flush().unwrap();
    assert_eq!(f.flushed(), 102);
    assert_eq!(&std::fs::read(&path).unwrap()[..12], b"hello world!");
}

#[test]
fn a_paced_fill_leaves_the_same_zeroed_file_and_hurries_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    // Three chunks and a bit, so pauses happen between chunks and the last one is short.
    let size = (3 * PACED_FILL_CHUNK_BYTES + 4096) as usize;
    let rows = [("paced", false), ("hurried", true)];
    for (name, hurry) in rows {
        let path = dir.path().join(name);
        let f = MappedFile::create_prefilled_paced(&path, 0, size, &AtomicBool::new(hurry)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), size, "{name}");
        assert!(bytes.iter().all(|&b| b == 0), "{name}: every byte zero");
        assert_eq!(f.append(b"record").unwrap(), Some(0), "{name}: appends go at the start");
    }
}
