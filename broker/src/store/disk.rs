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
