//! The store's own settings, filled from `broker.properties` by `crate::config`.

use std::path::PathBuf;

/// `flushDiskType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushDiskType {
    /// `ASYNC_FLUSH`: an append returns once the record is in the page cache.
    Async,
    /// `SYNC_FLUSH`: an append returns once the record is on disk (group commit).
    Sync,
}

/// Settings of one store. Each field names its RocketMQ key, default and unit.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// `storePathRootDir`, default `~/store`.
    pub root_dir: PathBuf,
    /// `storePathCommitLog`, default `<root>/commitlog`.
    pub commit_log_dir: PathBuf,
    /// `mappedFileSizeCommitLog`, bytes, default 1 GiB.
    pub commit_log_file_bytes: usize,
    /// `mappedFileSizeConsumeQueue`, bytes, default 6,000,000 (300,000 units); rounded down to units.
    pub consume_queue_file_bytes: usize,
    /// `flushDiskType`, default ASYNC_FLUSH.
    pub flush_disk_type: FlushDiskType,
    /// `flushIntervalCommitLog`, ms, default 500.
    pub flush_interval_commit_log_ms: u64,
    /// `flushCommitLogLeastPages`, pages of 4 KiB, default 4.
    pub flush_commit_log_least_pages: usize,
    /// `flushCommitLogThoroughInterval`, ms, default 10,000.
    pub flush_commit_log_thorough_interval_ms: u64,
    /// `flushIntervalConsumeQueue`, ms, default 1,000.
    pub flush_interval_consume_queue_ms: u64,
    /// `syncFlushTimeout`, ms, default 5,000.
    pub sync_flush_timeout_ms: u64,
    /// `maxMessageSize`, bytes of body, default 4 MiB.
    pub message_bytes_max: usize,
    /// `messageIndexEnable`, default true.
    pub message_index_enable: bool,
    /// `maxHashSlotNum`, default 5,000,000.
    pub index_hash_slots: usize,
    /// `maxIndexNum`, default 20,000,000.
    pub index_entries_max: usize,
    /// `checkCRCOnRecover`, default true.
    pub check_crc_on_recover: bool,
    /// `fileReservedTime`, hours, default 72.
    pub file_reserved_time_hours: u64,
    /// `deleteWhen`, hours of the day, default `04`.
    pub delete_when_hours: Vec<u32>,
    /// `diskMaxUsedSpaceRatio`, percent, default 75: above it expired files go at any hour.
    pub disk_max_used_space_ratio_percent: u32,
    /// `diskSpaceCleanForciblyRatio` (a system property in RocketMQ), default 0.85: above it even
    /// unexpired files are deleted, oldest first.
    pub disk_space_clean_forcibly_ratio: f64,
    /// `diskSpaceWarningLevelRatio`, default 0.90: above it writes are refused as disk full.
    pub disk_space_warning_level_ratio: f64,
    /// `cleanFileForciblyEnable`, default true.
    pub clean_file_forcibly_enable: bool,
    /// `cleanResourceInterval`, ms, default 10,000: how often retention and disk checks run.
    pub clean_resource_interval_ms: u64,
    /// `messageDelayLevel`, ms per level 1..=18.
    pub message_delay_level_ms: Vec<u64>,
}

impl StoreConfig {
    /// The 4.9.4 defaults with the store under `root`.
    pub fn new(root: impl Into<PathBuf>) -> StoreConfig {
        let root_dir = root.into();
        StoreConfig {
            commit_log_dir: root_dir.join("commitlog"),
            root_dir,
            commit_log_file_bytes: 1 << 30,
            consume_queue_file_bytes: 300_000 * 20,
            flush_disk_type: FlushDiskType::Async,
            flush_interval_commit_log_ms: 500,
            flush_commit_log_least_pages: 4,
            flush_commit_log_thorough_interval_ms: 10_000,
            flush_interval_consume_queue_ms: 1_000,
            sync_flush_timeout_ms: 5_000,
            message_bytes_max: 4 * 1024 * 1024,
            message_index_enable: true,
            index_hash_slots: 5_000_000,
            index_entries_max: 20_000_000,
            check_crc_on_recover: true,
            file_reserved_time_hours: 72,
            delete_when_hours: vec![4],
            disk_max_used_space_ratio_percent: 75,
            disk_space_clean_forcibly_ratio: 0.85,
            disk_space_warning_level_ratio: 0.90,
            clean_file_forcibly_enable: true,
            clean_resource_interval_ms: 10_000,
            message_delay_level_ms: DEFAULT_DELAY_LEVEL_MS.to_vec(),
        }
    }

    pub fn consume_queue_dir(&self) -> PathBuf {
        self.root_dir.join("consumequeue")
    }

    pub fn index_dir(&self) -> PathBuf {
        self.root_dir.join("index")
    }

    pub fn checkpoint_path(&self) -> PathBuf {
        self.root_dir.join("checkpoint")
    }

    pub fn abort_path(&self) -> PathBuf {
        self.root_dir.join("abort")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.root_dir.join("lock")
    }

    pub fn metadata_dir(&self) -> PathBuf {
        self.root_dir.join("config")
    }
}

/// `1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h`, in ms.
pub const DEFAULT_DELAY_LEVEL_MS: [u64; 18] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000, 480_000, 540_000,
    600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];
