//! Opening a store: lock, CommitLog scan and truncation of a torn or corrupt tail, ConsumeQueue
//! and index repair, re-dispatch.
//!
//! Policy: the valid CommitLog ends at the first record that fails validation (structure,
//! physical offset, body CRC when `checkCRCOnRecover`); everything after it is zeroed or deleted.
//! After a clean shutdown only the newest file is scanned. After a crash (the `abort` file is
//! there) the scan starts at the newest file whose first record is older than the checkpoint
//! minus 3 s, and every record from there is dispatched again (idempotently).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::{Mutex, OnceLock, RwLock};

use super::checkpoint::Checkpoint;
use super::commit_log::CommitLog;
use super::consume_queue::ConsumeQueue;
use super::error::{Error, Result};
use super::faults::Faults;
use super::flush::GroupCommit;
use super::format::{self, Scanned};
use super::index::IndexService;
use super::lock::StoreLock;
use super::mapped_file::{MappedFile, WriteMode};
use super::{Inner, QueueMap, StoreConfig};

/// How far before the checkpoint a crash recovery starts, ms (RocketMQ's 3 s margin).
const CHECKPOINT_MARGIN_MS: i64 = 3_000;

pub(super) fn open(config: StoreConfig, faults: Arc<Faults>) -> Result<Inner> {
    for dir in [&config.root_dir, &config.commit_log_dir, &config.consume_queue_dir(), &config.metadata_dir()] {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    }
    let lock = acquire_lock(&config)?;
    let abort = config.abort_path();
    let crashed = abort.exists();
    std::fs::write(&abort, b"").map_err(Error::io(&abort))?;
    super::sync_dir(&config.root_dir)?;
    let (checkpoint, times) = Checkpoint::open(&config.checkpoint_path())?;

    let mut files = open_commit_log_files(&config)?;
    let start = scan_start(&mut files, crashed, times, config.message_index_enable);
    let scan = scan_and_truncate(&config, &mut files, start, crashed)?;
    let valid_end = scan.valid_end;
    let scan_from = if crashed { files.get(start).map_or(valid_end, MappedFile::start_offset) } else { valid_end };
    let log_min = files.first().map_or(0, MappedFile::start_offset);
    let write_mode = match config.flush_disk_type {
        super::FlushDiskType::Sync => WriteMode::Syscall,
        super::FlushDiskType::Async => WriteMode::Map,
    };
    let commit_log = CommitLog::new(
        &config.commit_log_dir,
        config.commit_log_file_bytes,
        files,
        scan.last_store_timestamp,
        write_mode,
    );

    let (queues, mut damaged) = open_queues(&config)?;
    for q in queues.values().flat_map(HashMap::values) {
        q.truncate_to(valid_end)?;
        q.delete_before(log_min)?;
    }
    // As RocketMQ does, never start dispatching past the newest unit any queue holds: a
    // consumequeue directory lost as a whole is rebuilt from the start of the log.
    let queues_end =
        queues.values().flat_map(HashMap::values).filter_map(|q| q.last_unit_end()).max().unwrap_or(0).max(log_min);
    let redispatch_from = scan_from.min(queues_end);
    let index = if config.message_index_enable {
        let idx = IndexService::open(&config.index_dir(), config.index_hash_slots, config.index_entries_max)?;
        idx.reset_end(valid_end)?;
        Some(idx)
    } else {
        None
    };

    let inner = Inner {
        faults,
        commit_log,
        queues: RwLock::new(queues),
        index,
        checkpoint: Mutex::new(checkpoint),
        group_commit: GroupCommit::new(valid_end),
        poisoned: AtomicBool::new(false),
        disk_full: AtomicBool::new(false),
        shutting_down: AtomicBool::new(false),
        dispatched: AtomicU64::new(redispatch_from),
        dispatched_timestamp: AtomicI64::new(scan.last_store_timestamp),
        dispatcher: OnceLock::new(),
        dispatcher_idle: AtomicBool::new(false),
        dispatch_wanted: AtomicBool::new(false),
        dispatch_done: tokio::sync::Notify::new(),
        dispatch_turn: Mutex::new(()),
        append_listener: OnceLock::new(),
        replica_appends: AtomicBool::new(false),
        flush_nanos: AtomicU64::new(0),
        arrival: RwLock::new(None),
        _lock: lock,
        config,
    };

    inner.dispatch_range(redispatch_from, valid_end, None, &mut damaged, usize::MAX)?;
    if !damaged.is_empty() {
        rebuild_queues(&inner, &damaged, valid_end)?;
    }
    let offsets: QueueMap<u64> = inner
        .queues
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(topic, qs)| (topic.clone(), qs.iter().map(|(id, q)| (*id, q.max_offset())).collect()))
        .collect();
    inner.commit_log.set_queue_offsets(offsets);
    inner.dispatched.store(valid_end, std::sync::atomic::Ordering::Release);
    tracing::info!(
        root = %inner.config.root_dir.display(),
        crashed,
        valid_end,
        redispatched_bytes = valid_end - redispatch_from,
        rebuilt_queues = damaged.len(),
        "Store recovered."
    );
    Ok(inner)
}

/// How long an open waits for a store lock held by a process that is still exiting (or by a
/// child that inherited the descriptor for the moment between fork and exec).
const LOCK_WAIT_MS: u64 = 2_000;

fn acquire_lock(config: &StoreConfig) -> Result<StoreLock> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(LOCK_WAIT_MS);
    loop {
        match StoreLock::acquire(config.lock_path()) {
            Err(Error::Locked(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn open_commit_log_files(config: &StoreConfig) -> Result<Vec<MappedFile>> {
    // Segments that were being prepared when the process stopped are not part of the log.
    if let Ok(rd) = std::fs::read_dir(&config.commit_log_dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().ends_with(super::commit_log::SPARE_SUFFIX) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let mut starts = super::list_offset_files(&config.commit_log_dir)?;
    starts.sort_unstable();
    let size = config.commit_log_file_bytes;
    let mut files = Vec::with_capacity(starts.len());
    for (i, start) in starts.iter().enumerate() {
        let path = config.commit_log_dir.join(format::offset_file_name(*start));
        if start % size as u64 != 0 || (i > 0 && *start != starts[i - 1] + size as u64) {
            return Err(Error::Corrupt {
                file: path,
                offset: 0,
                reason: format!(
                    "CommitLog files are not contiguous for mappedFileSizeCommitLog={size}; a file is missing or the size setting changed"
                ),
            });
        }
        files.push(MappedFile::open(&path, *start, size).map_err(|e| Error::Corrupt {
            file: path.clone(),
            offset: 0,
            reason: e.to_string(),
        })?);
    }
    Ok(files)
}

/// Index of the first file to scan.
fn scan_start(files: &mut [MappedFile], crashed: bool, times: super::CheckpointTimes, index: bool) -> usize {
    if files.is_empty() {
        return 0;
    }
    if !crashed {
        return files.len() - 1;
    }
    let mut safe = times.physic_ms.min(times.logics_ms);
    if index {
        safe = safe.min(times.index_ms);
    }
    let safe = safe - CHECKPOINT_MARGIN_MS;
    for i in (0..files.len()).rev() {
        if let Scanned::Record(r) = format::scan_record(files[i].recovery_view(), false)
            && r.store_timestamp != 0
            && r.store_timestamp <= safe
        {
            return i;
        }
    }
    0
}

struct Scan {
    valid_end: u64,
    last_store_timestamp: i64,
}

/// Validates records from file `start` on, sets write positions, zeroes what follows the last
/// valid record and deletes later files.
#[expect(clippy::needless_range_loop, reason = "the index of the last valid file is the result")]
fn scan_and_truncate(config: &StoreConfig, files: &mut Vec<MappedFile>, start: usize, crashed: bool) -> Result<Scan> {
    let n = files.len();
    for f in files.iter_mut().take(start) {
        f.mark_full();
    }
    let mut last_ts = 0;
    let mut end: Option<(usize, usize, bool)> = None; // (file index, position, must zero)
    'files: for i in start..n {
        let file_start = files[i].start_offset();
        let view = files[i].recovery_view();
        let mut pos = 0usize;
        loop {
            match format::scan_record(&view[pos..], config.check_crc_on_recover) {
                Scanned::Record(r) if r.physical_offset == file_start + pos as u64 => {
                    last_ts = r.store_timestamp;
                    pos += r.total_size as usize;
                }
                Scanned::Record(_) => {
                    tracing::warn!(file = %files[i].path().display(), pos, "Record with a wrong physical offset; truncating here.");
                    end = Some((i, pos, true));
                    break 'files;
                }
                Scanned::Blank(len) if len as usize == view.len() - pos => {
                    files[i].mark_full();
                    continue 'files;
                }
                Scanned::Blank(_) => {
                    tracing::warn!(file = %files[i].path().display(), pos, "Bad end-of-file filler; truncating here.");
                    end = Some((i, pos, true));
                    break 'files;
                }
                Scanned::End => {
                    end = Some((i, pos, crashed));
                    break 'files;
                }
                Scanned::Corrupt(reason) => {
                    tracing::warn!(file = %files[i].path().display(), pos, reason, "Invalid record in the CommitLog; truncating here.");
                    end = Some((i, pos, true));
                    break 'files;
                }
            }
        }
    }
    let valid_end = match end {
        Some((i, pos, zero)) => {
            let path = files[i].path().to_path_buf();
            if zero {
                files[i].zero_tail(pos).map_err(Error::io(&path))?;
            } else {
                files[i].set_wrote(pos);
            }
            for f in files.drain(i + 1..) {
                let p = f.path().to_path_buf();
                drop(f);
                tracing::warn!(file = %p.display(), "Deleting a CommitLog file past the valid end.");
                std::fs::remove_file(&p).map_err(Error::io(&p))?;
            }
            files[i].start_offset() + pos as u64
        }
        None => files.last().map_or(0, |f| f.start_offset() + f.size_bytes() as u64),
    };
    Ok(Scan { valid_end, last_store_timestamp: last_ts })
}

/// The queues found on disk, and those among them that must be rebuilt.
type OpenedQueues = (QueueMap<Arc<ConsumeQueue>>, HashSet<(String, u32)>);

fn open_queues(config: &StoreConfig) -> Result<OpenedQueues> {
    let root = config.consume_queue_dir();
    let mut queues = QueueMap::new();
    let mut damaged = HashSet::new();
    for topic_dir in read_dirs(&root)? {
        let Some(topic) = topic_dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
        for queue_dir in read_dirs(&topic_dir)? {
            let Some(queue_id) = queue_dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let (cq, bad) = ConsumeQueue::open(&topic, queue_id, queue_dir, config.consume_queue_file_bytes)?;
            if bad {
                tracing::warn!(
                    topic,
                    queue_id,
                    "ConsumeQueue files are missing or damaged; rebuilding from the CommitLog."
                );
                damaged.insert((topic.clone(), queue_id));
            }
            queues.entry(topic.clone()).or_default().insert(queue_id, Arc::new(cq));
        }
    }
    Ok((queues, damaged))
}

fn read_dirs(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for e in super::dir_entries(dir)? {
        if e.file_type().map_err(Error::io(e.path()))?.is_dir() {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Empties the given queues and builds them again from the whole CommitLog.
fn rebuild_queues(inner: &Inner, queues: &HashSet<(String, u32)>, valid_end: u64) -> Result<()> {
    for (topic, queue_id) in queues {
        inner.queue_or_create(topic, *queue_id).clear()?;
    }
    let mut still = HashSet::new();
    inner.dispatch_range(inner.commit_log.min_offset(), valid_end, Some(queues), &mut still, usize::MAX)?;
    if !still.is_empty() {
        return Err(Error::Corrupt {
            file: inner.config.consume_queue_dir(),
            offset: 0,
            reason: format!("queues {still:?} could not be rebuilt from the CommitLog"),
        });
    }
    for (topic, queue_id) in queues {
        tracing::info!(
            topic,
            queue_id,
            max_offset = inner.queue_or_create(topic, *queue_id).max_offset(),
            "ConsumeQueue rebuilt."
        );
    }
    Ok(())
}
