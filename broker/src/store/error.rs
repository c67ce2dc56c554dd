//! The store's one error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the store. The mapping to wire codes lives in `processor`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("i/o error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("corrupt {file} at byte {offset}: {reason}")]
    Corrupt { file: PathBuf, offset: u64, reason: String },
    #[error("message body of {bytes} bytes exceeds maxMessageSize {bytes_max}")]
    MessageTooLarge { bytes: usize, bytes_max: usize },
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    #[error("disk full: {0}; writes resume when space is freed")]
    DiskFull(String),
    #[error("store poisoned by an earlier flush failure; no write is acknowledged until restart")]
    Poisoned,
    #[error("store root {0} is locked by another process")]
    Locked(PathBuf),
    #[error("flush to disk did not complete within {timeout_ms} ms")]
    FlushTimeout { timeout_ms: u64 },
    #[error("store is shut down")]
    ShutDown,
    /// Replicated bytes that do not continue this store's CommitLog where it ends.
    #[error("replicated data at offset {got} does not continue the CommitLog, which ends at {expected}")]
    ReplicaOffset { expected: u64, got: u64 },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| {
            if source.raw_os_error() == Some(28) {
                Error::DiskFull(format!("{}: {source}", path.display()))
            } else {
                Error::Io { path, source }
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
