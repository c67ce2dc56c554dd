//! The store root's lock file: at most one broker works on a store root at a time.
//!
//! [`StoreLock::acquire`] opens `<root>/lock` (creating it and the root if needed) and takes an
//! exclusive, non-blocking lock on it with [`File::try_lock`]. The lock lives as long as the
//! [`StoreLock`]; dropping it closes the file, which releases the lock (the file itself stays, as
//! in RocketMQ). A process that dies releases it too, so a stale lock file never blocks a restart.
//!
//! On Linux the lock is a `flock` lock, which belongs to an open file description: a second
//! `acquire` in the same process fails just like one from another process.
//!
//! # Deviations from RocketMQ
//!
//! RocketMQ locks the same file with `FileChannel.tryLock`, which is a POSIX record lock (`fcntl`)
//! on Linux. `flock` and `fcntl` locks do not see each other on local file systems, so this lock
//! keeps out other brokers of ours but not a Java broker on the same root.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::{Error, Result};

/// An exclusive lock on a store root, held until dropped.
#[derive(Debug)]
pub struct StoreLock {
    path: PathBuf,
    /// Kept open: closing it releases the lock.
    _file: File,
}

impl StoreLock {
    /// Locks the store root by its lock file `path` (normally `StoreConfig::lock_path()`,
    /// `<root>/lock`), creating the file and its directory if needed.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] with the root (the lock file's directory) when another process, or another
    /// `StoreLock` in this one, holds it; [`Error::Io`] when the file cannot be created, opened or
    /// locked for another reason.
    pub fn acquire(path: impl AsRef<Path>) -> Result<StoreLock> {
        let path = path.as_ref();
        let root = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs::create_dir_all(root).map_err(Error::io(root))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(Error::io(path))?;
        match file.try_lock() {
            Ok(()) => Ok(StoreLock { path: path.to_owned(), _file: file }),
            Err(TryLockError::WouldBlock) => Err(Error::Locked(root.to_owned())),
            Err(TryLockError::Error(e)) => Err(Error::io(path)(e)),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests;
