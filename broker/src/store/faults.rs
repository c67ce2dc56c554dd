//! Fault injection points on the store's I/O: tests turn them on to prove a failure is handled.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Switches that make the next syncs fail. Cheap to check (one relaxed load) when off.
#[derive(Debug, Default)]
pub struct Faults {
    fail_sync: AtomicBool,
    syncs_before_failure: AtomicU64,
    armed_countdown: AtomicBool,
}

impl Faults {
    pub fn new() -> Faults {
        Faults::default()
    }

    /// Every sync from now on fails with `EIO`, as a dying disk would.
    pub fn fail_syncs(&self) {
        self.fail_sync.store(true, Ordering::SeqCst);
    }

    /// The sync after `n` more successful ones fails, and every one after it.
    pub fn fail_syncs_after(&self, n: u64) {
        self.syncs_before_failure.store(n, Ordering::SeqCst);
        self.armed_countdown.store(true, Ordering::SeqCst);
    }

    /// Called before each msync/fsync of store data.
    pub(crate) fn check_sync(&self) -> io::Result<()> {
        if self.armed_countdown.load(Ordering::Relaxed) {
            let left = self.syncs_before_failure.load(Ordering::SeqCst);
            if left == 0 {
                self.fail_sync.store(true, Ordering::SeqCst);
            } else {
                self.syncs_before_failure.store(left - 1, Ordering::SeqCst);
            }
        }
        if self.fail_sync.load(Ordering::Relaxed) {
            return Err(io::Error::from_raw_os_error(5));
        }
        Ok(())
    }
}
