//! How full the disk under the store is.

use std::path::Path;

/// Used fraction (0.0..=1.0) of the file system holding `path`, as RocketMQ computes it:
/// `(total - free) / total`. `None` if it cannot be read.
pub fn used_ratio(path: &Path) -> Option<f64> {
    let st = rustix::fs::statvfs(path).ok()?;
    let total = st.f_blocks as f64;
    if total <= 0.0 {
        return None;
    }
    Some((total - st.f_bfree as f64) / total)
}

/// Most space kept free for ConsumeQueue, index, checkpoint and metadata writes when the
/// CommitLog stops taking new segments.
pub const RESERVE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// The reserve is this fraction of the file system, capped by [`RESERVE_BYTES_MAX`].
pub const RESERVE_FRACTION: f64 = 0.05;

/// Bytes an unprivileged writer can still use, and the reserve to keep, on the file system
/// holding `path`. `None` if it cannot be read.
pub fn free_and_reserve_bytes(path: &Path) -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs(path).ok()?;
    let total = st.f_blocks.saturating_mul(st.f_frsize);
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    let reserve = ((total as f64 * RESERVE_FRACTION) as u64).min(RESERVE_BYTES_MAX);
    Some((free, reserve))
}
