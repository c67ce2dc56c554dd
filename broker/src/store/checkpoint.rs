//! The `checkpoint` file: store times up to which CommitLog, ConsumeQueues and index are on disk.
//!
//! Layout (4 KiB file, big-endian): bytes 0..8 `physicMsgTimestamp`, 8..16 `logicsMsgTimestamp`,
//! 16..24 `indexMsgTimestamp`; the rest is zero.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use super::faults::Faults;

pub const CHECKPOINT_FILE_BYTES: u64 = 4096;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Times {
    pub physic_ms: i64,
    pub logics_ms: i64,
    pub index_ms: i64,
}

pub(crate) struct Checkpoint {
    path: PathBuf,
    file: File,
}

impl Checkpoint {
    /// Opens or creates the file; a new or short file reads as all zeros.
    pub(crate) fn open(path: &Path) -> Result<(Checkpoint, Times)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(Error::io(path))?;
        let len = file.metadata().map_err(Error::io(path))?.len();
        if len < CHECKPOINT_FILE_BYTES {
            file.set_len(CHECKPOINT_FILE_BYTES).map_err(Error::io(path))?;
        }
        let mut b = [0u8; 24];
        file.read_exact_at(&mut b, 0).map_err(Error::io(path))?;
        let at = |i: usize| i64::from_be_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let times = Times { physic_ms: at(0), logics_ms: at(8), index_ms: at(16) };
        Ok((Checkpoint { path: path.to_path_buf(), file }, times))
    }

    /// Writes and fsyncs the times.
    pub(crate) fn write(&self, t: Times, faults: &Faults) -> Result<()> {
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&t.physic_ms.to_be_bytes());
        b[8..16].copy_from_slice(&t.logics_ms.to_be_bytes());
        b[16..24].copy_from_slice(&t.index_ms.to_be_bytes());
        self.file.write_all_at(&b, 0).map_err(Error::io(&self.path))?;
        faults.check_sync().map_err(Error::io(&self.path))?;
        self.file.sync_data().map_err(Error::io(&self.path))
    }
}
