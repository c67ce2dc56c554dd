//! Retention and the disk watch: expired CommitLog files go at `deleteWhen`, or at once when the
//! disk passes `diskMaxUsedSpaceRatio`; above `diskSpaceCleanForciblyRatio` unexpired files go too,
//! oldest first; above `diskSpaceWarningLevelRatio` writes are refused until space returns.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use chrono::Timelike;

use super::Inner;
use super::disk;
use super::error::Result;

/// Most CommitLog files one retention pass deletes (RocketMQ's DELETE_FILES_BATCH_MAX).
const DELETE_FILES_PER_PASS_MAX: usize = 10;

/// What a retention pass did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RetentionReport {
    pub commit_log_files_deleted: usize,
    pub consume_queue_files_deleted: usize,
    pub index_files_deleted: usize,
    pub disk_used_ratio: Option<f64>,
    pub disk_full: bool,
}

pub(super) fn run(inner: &Inner) {
    let interval = Duration::from_millis(inner.config.clean_resource_interval_ms.max(1));
    while !inner.shutting_down.load(Ordering::Acquire) {
        std::thread::park_timeout(interval);
        if inner.shutting_down.load(Ordering::Acquire) {
            break;
        }
        if let Err(e) = inner.clean(SystemTime::now(), false) {
            tracing::warn!(error = %e, "Retention pass failed.");
        }
    }
}

impl Inner {
    pub(super) fn clean(&self, now: SystemTime, manual: bool) -> Result<RetentionReport> {
        let cfg = &self.config;
        let mut report =
            RetentionReport { disk_used_ratio: disk::used_ratio(&cfg.commit_log_dir), ..Default::default() };
        let ratio = report.disk_used_ratio.unwrap_or(0.0);
        self.update_disk_full(ratio);
        let hour = chrono::DateTime::<chrono::Local>::from(now).hour();
        let time_up = cfg.delete_when_hours.contains(&hour);
        let over_max = ratio > f64::from(cfg.disk_max_used_space_ratio_percent) / 100.0;
        let mut force = cfg.clean_file_forcibly_enable && ratio > cfg.disk_space_clean_forcibly_ratio;
        if time_up || over_max || force || manual {
            let reserved = Duration::from_secs(cfg.file_reserved_time_hours.saturating_mul(3600));
            let dispatched = self.dispatched.load(Ordering::Acquire);
            let file_bytes = cfg.commit_log_file_bytes as u64;
            while report.commit_log_files_deleted < DELETE_FILES_PER_PASS_MAX {
                let deleted = self.commit_log.delete_oldest_if(|f| {
                    let expired = f.modified().is_ok_and(|m| m + reserved <= now);
                    let dispatched_past = f.start_offset() + file_bytes <= dispatched;
                    !(dispatched_past && (expired || force))
                })?;
                let Some(path) = deleted else { break };
                tracing::info!(file = %path.display(), forced = force, "Deleted a CommitLog file.");
                report.commit_log_files_deleted += 1;
                if force {
                    let r = disk::used_ratio(&cfg.commit_log_dir).unwrap_or(0.0);
                    force = r > cfg.disk_space_clean_forcibly_ratio;
                }
            }
        }
        let min = self.commit_log.min_offset();
        for q in self.all_queues() {
            report.consume_queue_files_deleted += q.delete_before(min)?;
        }
        if let Some(index) = &self.index {
            report.index_files_deleted = index.delete_before(min)?;
        }
        if report.commit_log_files_deleted > 0 {
            report.disk_used_ratio = disk::used_ratio(&cfg.commit_log_dir);
            self.update_disk_full(report.disk_used_ratio.unwrap_or(0.0));
        }
        report.disk_full = self.disk_full.load(Ordering::Acquire);
        Ok(report)
    }

    fn update_disk_full(&self, ratio: f64) {
        let full = ratio > self.config.disk_space_warning_level_ratio;
        if self.disk_full.swap(full, Ordering::AcqRel) != full {
            if full {
                tracing::error!(used = ratio, "Disk nearly full; writes are refused until space is freed.");
            } else {
                tracing::info!(used = ratio, "Disk space is back; writes resume.");
            }
        }
    }
}
