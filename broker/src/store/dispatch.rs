//! The dispatcher: turns CommitLog records into ConsumeQueue units and index entries.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Inner;
use super::consume_queue::{ConsumeQueue, PutOutcome};
use super::error::{Error, Result};
use super::format::{self, CqUnit, Scanned, StoredRecord};

/// Records dispatched between two checks of the shutdown flag and two arrival notifications.
const DISPATCH_BATCH_RECORDS_MAX: usize = 4096;
/// While messages keep coming the dispatcher polls at this interval (bounding how late a unit
/// becomes readable), and goes idle after this many empty polls.
const POLL_INTERVAL_US: u64 = 500;
const IDLE_AFTER_QUIET_POLLS: u32 = 4;
/// The same interval on a slave: its units are read only by consumers the master sent there
/// (far behind, or the master down), so a few milliseconds late costs nothing, and on a host
/// shared with its master a slower poll leaves the CPU to the master's send path.
const REPLICA_POLL_INTERVAL_US: u64 = 2_000;

/// The dispatcher thread: follows the CommitLog's published end.
pub(super) fn run(inner: &Inner) {
    let mut reported = false;
    let mut quiet_polls = 0u32;
    loop {
        let target = inner.commit_log.max_offset();
        let from = inner.dispatched.load(Ordering::Acquire);
        if from >= target {
            // A waiter that came after the last round's notice finds its offset dispatched.
            if inner.dispatch_wanted.swap(false, Ordering::SeqCst) {
                inner.dispatch_done.notify_waiters();
            }
            if inner.shutting_down.load(Ordering::Acquire) {
                break;
            }
            if quiet_polls < IDLE_AFTER_QUIET_POLLS {
                // Under load, poll: appenders then never pay for waking us.
                quiet_polls += 1;
                let replica = inner.replica_appends.load(Ordering::Acquire);
                let interval_us = if replica { REPLICA_POLL_INTERVAL_US } else { POLL_INTERVAL_US };
                std::thread::park_timeout(Duration::from_micros(interval_us));
                continue;
            }
            // Idle: announce it, so the next append wakes us at once.
            inner.dispatcher_idle.store(true, Ordering::SeqCst);
            if inner.commit_log.max_offset() <= from {
                std::thread::park_timeout(Duration::from_millis(100));
            }
            inner.dispatcher_idle.store(false, Ordering::SeqCst);
            continue;
        }
        quiet_polls = 0;
        let round = {
            let _turn = inner.dispatch_turn.lock().unwrap_or_else(|p| p.into_inner());
            inner.dispatch_pending()
        };
        if inner.dispatch_wanted.swap(false, Ordering::SeqCst) {
            inner.dispatch_done.notify_waiters();
        }
        match round {
            Ok(_) => reported = false,
            Err(e) => {
                if !reported {
                    tracing::error!(error = %e, offset = from, "Dispatch failed; retrying.");
                    reported = true;
                }
                if inner.shutting_down.load(Ordering::Acquire) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Inner {
    /// One round from the dispatched offset to the published end (at most
    /// [`DISPATCH_BATCH_RECORDS_MAX`] records). The caller holds `dispatch_turn`: the dispatcher
    /// thread, or a waiter that does the round itself ([`super::MessageStore::dispatched`]).
    /// Returns the offset reached.
    pub(super) fn dispatch_pending(&self) -> Result<u64> {
        let from = self.dispatched.load(Ordering::Acquire);
        let target = self.commit_log.max_offset();
        if from >= target {
            return Ok(from);
        }
        let mut inconsistent = HashSet::new();
        let reached = self.dispatch_range(from, target, None, &mut inconsistent, DISPATCH_BATCH_RECORDS_MAX);
        for (topic, queue_id) in inconsistent {
            tracing::error!(
                topic,
                queue_id,
                "ConsumeQueue disagrees with the CommitLog; it is rebuilt on the next start."
            );
        }
        reached
    }

    /// Dispatches the records in `[from, to)`, at most `records_max` of them. With `only`, just
    /// those queues get units (a rebuild) and the dispatched offset is left alone. Queues whose
    /// units disagree with the log are added to `inconsistent`. Returns the offset reached.
    pub(super) fn dispatch_range(
        &self,
        from: u64,
        to: u64,
        only: Option<&HashSet<(String, u32)>>,
        inconsistent: &mut HashSet<(String, u32)>,
        records_max: usize,
    ) -> Result<u64> {
        let mut pos = from;
        // Queues that got units, by identity: no key is built per record.
        let mut arrived: HashMap<*const ConsumeQueue, Arc<ConsumeQueue>> = HashMap::new();
        let file_bytes = self.commit_log.file_bytes() as u64;
        let mut records = 0;
        while pos < to && records < records_max {
            let Some(file) = self.commit_log.file_at(pos) else {
                return Err(Error::Corrupt {
                    file: self.config.commit_log_dir.clone(),
                    offset: pos,
                    reason: "no CommitLog file holds this offset".into(),
                });
            };
            let rel = (pos - file.start_offset()) as usize;
            let bytes = file.read_from(rel).unwrap_or(&[]);
            match format::scan_record(bytes, false) {
                Scanned::Record(r) => {
                    let wanted = only.is_none_or(|set| set.contains(&(r.topic.to_string(), r.queue_id)));
                    if wanted && let Some(cq) = self.dispatch_record(&r, only.is_some(), inconsistent)? {
                        arrived.entry(Arc::as_ptr(&cq)).or_insert(cq);
                    }
                    pos += u64::from(r.total_size);
                    records += 1;
                    if only.is_none() {
                        self.dispatched_timestamp.store(r.store_timestamp, Ordering::Release);
                    }
                }
                Scanned::Blank(_) => pos = file.start_offset() + file_bytes,
                Scanned::End | Scanned::Corrupt(_) => {
                    if rel as u64 >= file_bytes || file.is_full() {
                        pos = file.start_offset() + file_bytes;
                        continue;
                    }
                    return Err(Error::Corrupt {
                        file: file.path().to_path_buf(),
                        offset: rel as u64,
                        reason: "published CommitLog bytes are not a record".into(),
                    });
                }
            }
            if only.is_none() {
                self.dispatched.store(pos, Ordering::Release);
            }
        }
        if !arrived.is_empty()
            && only.is_none()
            && let Some(listener) = self.arrival.read().unwrap_or_else(|p| p.into_inner()).as_ref()
        {
            for cq in arrived.values() {
                listener(cq.topic(), cq.queue_id(), cq.max_offset());
            }
        }
        Ok(pos)
    }

    /// Writes the unit and index entries of one record. Returns the queue when a unit was
    /// appended to it.
    fn dispatch_record(
        &self,
        r: &StoredRecord<'_>,
        rebuilding: bool,
        inconsistent: &mut HashSet<(String, u32)>,
    ) -> Result<Option<Arc<ConsumeQueue>>> {
        let tx = r.transaction_type();
        let mut appended = None;
        if tx == format::TRANSACTION_NOT_TYPE || tx == format::TRANSACTION_COMMIT_TYPE {
            // The set is empty except while recovery re-dispatches.
            let known_bad = !inconsistent.is_empty() && inconsistent.contains(&(r.topic.to_string(), r.queue_id));
            if !known_bad {
                let unit = CqUnit {
                    physical_offset: r.physical_offset,
                    size: r.total_size as i32,
                    tags_code: self.tags_code(r),
                };
                let cq = self.queue_or_create(r.topic, r.queue_id);
                match cq.put(r.queue_offset, unit)? {
                    PutOutcome::Appended => appended = Some(cq),
                    PutOutcome::AlreadyPresent => {}
                    PutOutcome::Inconsistent => {
                        inconsistent.insert((r.topic.to_string(), r.queue_id));
                    }
                }
            }
        }
        if !rebuilding && let Some(index) = &self.index {
            index.add(r)?;
        }
        Ok(appended)
    }

    /// tagsCode of a record: the tag's hash, or for the schedule topic the delivery time.
    fn tags_code(&self, r: &StoredRecord<'_>) -> i64 {
        if r.topic == format::SCHEDULE_TOPIC {
            let levels = &self.config.message_delay_level_ms;
            let level = r.property(format::PROPERTY_DELAY).and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(1);
            let level = level.clamp(1, levels.len().max(1));
            let delay = levels.get(level - 1).copied().unwrap_or(0);
            return r.store_timestamp.saturating_add(delay as i64);
        }
        format::tags_code(r.property(format::PROPERTY_TAGS))
    }
}
