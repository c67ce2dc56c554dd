//! The message store: CommitLog, ConsumeQueue and IndexFile on memory-mapped files, with group
//! commit, crash recovery and retention.
//!
//! [`MessageStore`] is the facade. Appends go to the CommitLog under one writer; a dispatcher
//! thread derives ConsumeQueue units and index entries from it; a flusher makes appends durable
//! (SYNC_FLUSH: the append waits for it; ASYNC_FLUSH: on an interval); a cleaner applies
//! retention and watches the disk. The layouts are in [`format`].
//!
//! # Architecture invariants
//!
//! * The store never sees a remoting command; it takes [`MessageInput`]s and returns raw records.
//! * ConsumeQueue and index are derived from the CommitLog and rebuilt from it on recovery.
//! * After a failed sync the store is poisoned: no later append is acknowledged.

mod checkpoint;
mod commit_log;
mod config;
mod consume_queue;
pub mod disk;
mod dispatch;
mod error;
mod faults;
mod flush;
pub mod format;
pub mod index;
pub mod lock;
pub mod mapped_file;
pub mod metadata;
mod recovery;
mod retention;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

pub use checkpoint::Times as CheckpointTimes;
pub use commit_log::{AppendResult, Appended};
pub use config::{DEFAULT_DELAY_LEVEL_MS, FlushDiskType, StoreConfig};
pub use error::{Error, Result};
pub use faults::Faults;
pub use format::MessageInput;
pub use retention::RetentionReport;

use checkpoint::Checkpoint;
use commit_log::CommitLog;
use consume_queue::ConsumeQueue;
use flush::{Durable, GroupCommit};
use index::IndexService;
use lock::StoreLock;

/// Most ConsumeQueue units one read looks at (filtered-out units count too).
pub const READ_SCAN_UNITS_MAX: usize = 16_000;

/// How a put ended when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutStatus {
    /// Stored (and, with SYNC_FLUSH, on disk).
    Ok,
    /// Stored, but the disk flush did not finish within `syncFlushTimeout` (RocketMQ's
    /// FLUSH_DISK_TIMEOUT: the send succeeded with a warning).
    FlushDiskTimeout,
    /// Stored, but no slave acknowledged it within `slaveTimeout` (FLUSH_SLAVE_TIMEOUT). Set by
    /// the broker's SYNC_MASTER wait, never by the store.
    FlushSlaveTimeout,
    /// Stored, but no slave was fit to wait for (SLAVE_NOT_AVAILABLE). Set by the broker's
    /// SYNC_MASTER wait, never by the store.
    SlaveNotAvailable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutResult {
    pub status: PutStatus,
    pub appended: AppendResult,
}

/// RocketMQ's `GetMessageStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetStatus {
    Found,
    NoMatchedMessage,
    /// The units pointed at CommitLog data that retention has deleted.
    OffsetFoundNull,
    OffsetOverflowBadly,
    OffsetOverflowOne,
    /// The offset is below the queue's minimum: the data moved away ("offset moved").
    OffsetTooSmall,
    NoMatchedLogicQueue,
    NoMessageInQueue,
}

/// Messages read from one queue.
#[derive(Clone, Debug)]
pub struct GetResult {
    pub status: GetStatus,
    /// Stored records, byte for byte as in the CommitLog.
    pub messages: Vec<Bytes>,
    /// Queue offset of each message in `messages`.
    pub queue_offsets: Vec<u64>,
    pub next_begin_offset: u64,
    pub min_offset: u64,
    pub max_offset: u64,
}

type ArrivalListener = Box<dyn Fn(&str, u32, u64) + Send + Sync>;
type AppendListener = Box<dyn Fn() + Send + Sync>;

/// Per topic, per queue id: looked up by `&str`, so the hot paths never build a key.
pub(crate) type QueueMap<V> = HashMap<String, HashMap<u32, V>>;

struct Inner {
    config: StoreConfig,
    faults: Arc<Faults>,
    commit_log: CommitLog,
    queues: RwLock<QueueMap<Arc<ConsumeQueue>>>,
    index: Option<IndexService>,
    checkpoint: Mutex<Checkpoint>,
    group_commit: GroupCommit,
    poisoned: AtomicBool,
    disk_full: AtomicBool,
    shutting_down: AtomicBool,
    /// CommitLog offset up to which ConsumeQueue and index are built.
    dispatched: AtomicU64,
    dispatched_timestamp: AtomicI64,
    dispatcher: OnceLock<std::thread::Thread>,
    /// Time spent in CommitLog syncs, ns.
    flush_nanos: AtomicU64,
    /// Set by the dispatcher before it parks; the appender that clears it wakes it.
    dispatcher_idle: AtomicBool,
    /// Someone waits in [`MessageStore::dispatched`]: the dispatcher notifies `dispatch_done`
    /// after its next round.
    dispatch_wanted: AtomicBool,
    dispatch_done: tokio::sync::Notify,
    /// Held for a dispatch round: by the dispatcher thread, or by a waiter doing the round itself.
    dispatch_turn: Mutex<()>,
    /// Set by the first replica append: this store is a slave's.
    replica_appends: AtomicBool,
    arrival: RwLock<Option<ArrivalListener>>,
    /// Called on the appender's thread right after each append is readable (HA: push to slaves).
    append_listener: OnceLock<AppendListener>,
    _lock: StoreLock,
}

/// The message store. Dropping it shuts it down cleanly.
pub struct MessageStore {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl MessageStore {
    /// Opens (creating if needed) the store under `config.root_dir`, recovers it and starts its
    /// threads.
    ///
    /// # Errors
    /// The root is locked by another process, a file cannot be read, or the CommitLog is damaged
    /// beyond its tail (a missing file in the middle).
    pub fn open(config: StoreConfig) -> Result<MessageStore> {
        MessageStore::open_with_faults(config, Arc::new(Faults::new()))
    }

    /// [`MessageStore::open`] with fault injection switches the caller can turn on.
    pub fn open_with_faults(config: StoreConfig, faults: Arc<Faults>) -> Result<MessageStore> {
        let inner = Arc::new(recovery::open(config, faults)?);
        let store = MessageStore { inner, threads: Mutex::new(Vec::new()), closed: AtomicBool::new(false) };
        store.start_threads()?;
        Ok(store)
    }

    fn start_threads(&self) -> Result<()> {
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        let spawn = |name: &str, f: fn(&Inner)| {
            let inner = Arc::clone(&self.inner);
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || f(&inner))
                .map_err(|e| Error::Io { path: inner_path(name), source: e })
        };
        let dispatcher = spawn("store-dispatch", dispatch::run)?;
        let _ = self.inner.dispatcher.set(dispatcher.thread().clone());
        threads.push(dispatcher);
        threads.push(spawn("store-flush", flush_thread)?);
        threads.push(spawn("store-flush-cq", flush_queues_thread)?);
        if self.inner.config.flush_disk_type == FlushDiskType::Async {
            threads.push(spawn("store-prefault", prefault_thread)?);
        }
        threads.push(spawn("store-clean", retention::run)?);
        Ok(())
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Appends one message.
    ///
    /// # Errors
    /// See [`MessageStore::put_messages`].
    pub fn put_message(&self, msg: MessageInput) -> Result<PutResult> {
        self.put_messages(std::slice::from_ref(&msg))
    }

    /// Appends a batch for one topic and queue as consecutive records; with SYNC_FLUSH returns
    /// once the batch is on disk.
    ///
    /// # Errors
    /// `Poisoned` after a failed sync, `DiskFull`, `MessageTooLarge`, `InvalidMessage` (empty
    /// batch, mixed queues, topic or properties too long), `ShutDown`.
    pub fn put_messages(&self, batch: &[MessageInput]) -> Result<PutResult> {
        let appended = self.append_checked(batch)?;
        let inner = &*self.inner;
        let durable = match inner.config.flush_disk_type {
            FlushDiskType::Async => Durable::Yes,
            FlushDiskType::Sync => inner.group_commit.wait_durable(appended.end_offset, inner.sync_flush_timeout()),
        };
        put_result(durable, appended)
    }

    /// [`MessageStore::put_messages`] without blocking: `done` gets the result once the batch is
    /// durable as `flushDiskType` requires (at once for ASYNC_FLUSH or on error). With SYNC_FLUSH
    /// it runs on the flusher thread after the group commit that covers the batch, so it must be
    /// short (wake a task, send on a channel).
    pub fn put_messages_then(&self, batch: &[MessageInput], done: impl FnOnce(Result<PutResult>) + Send + 'static) {
        let appended = match self.append_checked(batch) {
            Ok(a) => a,
            Err(e) => return done(Err(e)),
        };
        let inner = &*self.inner;
        match inner.config.flush_disk_type {
            FlushDiskType::Async => done(put_result(Durable::Yes, appended)),
            FlushDiskType::Sync => inner.group_commit.on_durable(
                appended.end_offset,
                inner.sync_flush_timeout(),
                Box::new(move |d| done(put_result(d, appended))),
            ),
        }
    }

    /// Appends `batch` without waiting for it to become durable: RocketMQ's `WAIT=false`
    /// (`waitStoreMsgOK`), which AMQP publishes without confirms also use. Under SYNC_FLUSH the
    /// group commit is asked to flush it, and the answer is PUT_OK at once, as 4.9.4 gives.
    ///
    /// # Errors
    /// As [`MessageStore::put_messages`], except flush timeouts (nothing waits for the flush).
    pub fn put_messages_unwaited(&self, batch: &[MessageInput]) -> Result<PutResult> {
        let appended = self.append_checked(batch)?;
        let inner = &*self.inner;
        if inner.config.flush_disk_type == FlushDiskType::Sync {
            inner.group_commit.request_flush(appended.end_offset);
        }
        Ok(PutResult { status: PutStatus::Ok, appended })
    }

    fn append_checked(&self, batch: &[MessageInput]) -> Result<AppendResult> {
        let inner = &*self.inner;
        inner.check_writable()?;
        let Some(first) = batch.first() else {
            return Err(Error::InvalidMessage("empty batch".into()));
        };
        for m in batch {
            if m.body.len() > inner.config.message_bytes_max {
                return Err(Error::MessageTooLarge { bytes: m.body.len(), bytes_max: inner.config.message_bytes_max });
            }
            format::check_lengths(m).map_err(|e| Error::InvalidMessage(format!("{e:?}")))?;
            if m.topic != first.topic || m.queue_id != first.queue_id {
                return Err(Error::InvalidMessage("a batch must go to one topic and queue".into()));
            }
        }
        let appended = inner.commit_log.append(batch, now_ms())?;
        // The listener first: a woken dispatcher may take this CPU before the appender goes on.
        if let Some(f) = inner.append_listener.get() {
            f();
        }
        self.wake_dispatcher();
        Ok(appended)
    }

    /// Reads up to `max_count` messages (and about `max_bytes`) of a queue from `offset`;
    /// `filter` sees each unit's tags code and keeps the message when it returns true.
    pub fn get_messages(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max_count: usize,
        max_bytes: usize,
        filter: Option<&dyn Fn(i64) -> bool>,
    ) -> GetResult {
        let inner = &*self.inner;
        let mut result = GetResult {
            status: GetStatus::NoMatchedLogicQueue,
            messages: Vec::new(),
            queue_offsets: Vec::new(),
            next_begin_offset: 0,
            min_offset: 0,
            max_offset: 0,
        };
        let Some(cq) = inner.queue(topic, queue_id) else { return result };
        let (min, max) = (cq.min_offset(), cq.max_offset());
        result.min_offset = min;
        result.max_offset = max;
        if max == 0 {
            result.status = GetStatus::NoMessageInQueue;
            return result;
        }
        if offset < min {
            result.status = GetStatus::OffsetTooSmall;
            result.next_begin_offset = min;
            return result;
        }
        if offset == max {
            result.status = GetStatus::OffsetOverflowOne;
            result.next_begin_offset = offset;
            return result;
        }
        if offset > max {
            result.status = GetStatus::OffsetOverflowBadly;
            result.next_begin_offset = if min == 0 { min } else { max };
            return result;
        }
        let log_min = inner.commit_log.min_offset();
        // Units are decoded in windows a little larger than what is asked, so a pull of 32 from a
        // deep backlog does not decode thousands; filtered-out units extend the scan up to
        // READ_SCAN_UNITS_MAX.
        let scan_max = READ_SCAN_UNITS_MAX.min((max - offset) as usize);
        let window = max_count.saturating_mul(2).clamp(64, READ_SCAN_UNITS_MAX);
        let (mut bytes, mut removed, mut next, mut scanned) = (0usize, false, offset, 0usize);
        'scan: while scanned < scan_max {
            let units = cq.units(offset + scanned as u64, window.min(scan_max - scanned));
            if units.is_empty() {
                break;
            }
            for u in &units {
                let at = offset + scanned as u64;
                scanned += 1;
                if u.is_pad() {
                    next = at + 1;
                    continue;
                }
                if u.physical_offset < log_min || u.size <= 0 {
                    removed = true;
                    next = at + 1;
                    continue;
                }
                if let Some(keep) = filter
                    && !keep(u.tags_code)
                {
                    next = at + 1;
                    continue;
                }
                let size = u.size as usize;
                if !result.messages.is_empty() && bytes + size > max_bytes {
                    break 'scan;
                }
                match inner.commit_log.read(u.physical_offset, size) {
                    Some(b) => {
                        bytes += size;
                        result.messages.push(b);
                        result.queue_offsets.push(at);
                    }
                    None => removed = true,
                }
                next = at + 1;
                if result.messages.len() >= max_count {
                    break 'scan;
                }
            }
        }
        result.next_begin_offset = next;
        result.status = if !result.messages.is_empty() {
            GetStatus::Found
        } else if removed {
            GetStatus::OffsetFoundNull
        } else {
            GetStatus::NoMatchedMessage
        };
        result
    }

    /// First queue offset still readable (0 for an unknown queue).
    pub fn min_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.inner.queue(topic, queue_id).map_or(0, |q| q.min_offset())
    }

    /// Next queue offset to be written (0 for an unknown queue).
    pub fn max_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.inner.queue(topic, queue_id).map_or(0, |q| q.max_offset())
    }

    /// First queue offset whose message was stored at or after `timestamp_ms`; the max offset
    /// when none was.
    pub fn offset_by_time(&self, topic: &str, queue_id: u32, timestamp_ms: i64) -> u64 {
        let Some(cq) = self.inner.queue(topic, queue_id) else { return 0 };
        let (mut lo, mut hi) = (cq.min_offset(), cq.max_offset());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let ts = cq
                .unit(mid)
                .filter(|u| !u.is_pad())
                .and_then(|u| self.inner.commit_log.read(u.physical_offset, u.size.max(0) as usize))
                .and_then(|b| match format::scan_record(&b, false) {
                    format::Scanned::Record(r) => Some(r.store_timestamp),
                    _ => None,
                });
            match ts {
                Some(t) if t >= timestamp_ms => hi = mid,
                _ => lo = mid + 1,
            }
        }
        lo
    }

    /// The stored record at a CommitLog offset.
    pub fn message_at(&self, physical_offset: u64) -> Option<Bytes> {
        self.inner.commit_log.read_record(physical_offset)
    }

    /// Records of `topic` whose KEYS contain `key` or whose UNIQ_KEY is `key`, stored within
    /// `[begin_ms, end_ms]`, newest first.
    pub fn query_by_key(&self, topic: &str, key: &str, max_count: usize, begin_ms: i64, end_ms: i64) -> Vec<Bytes> {
        let Some(index) = &self.inner.index else { return Vec::new() };
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for phys in index.query(topic, key, max_count.saturating_mul(2).max(max_count), begin_ms, end_ms) {
            if out.len() >= max_count || !seen.insert(phys) {
                continue;
            }
            let Some(b) = self.inner.commit_log.read_record(phys) else { continue };
            let matches = match format::scan_record(&b, false) {
                format::Scanned::Record(r) => {
                    r.topic == topic
                        && (r.property(format::PROPERTY_UNIQ_KEY) == Some(key)
                            || r.property(format::PROPERTY_KEYS).is_some_and(|ks| ks.split(' ').any(|k| k == key)))
                }
                _ => false,
            };
            if matches {
                out.push(b);
            }
        }
        out
    }

    pub fn commit_log_min_offset(&self) -> u64 {
        self.inner.commit_log.min_offset()
    }

    pub fn commit_log_max_offset(&self) -> u64 {
        self.inner.commit_log.max_offset()
    }

    /// Replication, slave side: the CommitLog's written end, including a record a chunk cut in two.
    /// This is the offset a slave reports to its master.
    pub fn replica_offset(&self) -> u64 {
        self.inner.commit_log.written_offset()
    }

    /// Replication, slave side: appends bytes copied from the master's CommitLog at exactly
    /// `offset` (see [`MessageStore::replica_offset`]; an empty store may start at any file
    /// boundary). Complete records become readable and are dispatched as on the master. Returns
    /// the new written end.
    ///
    /// # Errors
    /// `ReplicaOffset` when `offset` does not continue the log, `Corrupt` when the bytes are not
    /// records, `Poisoned`, `DiskFull`, `ShutDown`, I/O errors.
    pub fn append_replica(&self, offset: u64, data: &[u8]) -> Result<u64> {
        let end = self.append_replica_quiet(offset, data);
        self.wake_dispatcher();
        end
    }

    /// [`MessageStore::append_replica`] without waking the dispatcher: the caller calls
    /// [`MessageStore::wake_dispatcher`] once it has answered the master (a woken dispatcher can
    /// take the CPU before the report goes out).
    ///
    /// # Errors
    /// See [`MessageStore::append_replica`].
    pub fn append_replica_quiet(&self, offset: u64, data: &[u8]) -> Result<u64> {
        let inner = &*self.inner;
        inner.check_writable()?;
        inner.replica_appends.store(true, Ordering::Release);
        let was_empty = inner.commit_log.last_file().is_none();
        let end = inner.commit_log.append_replica(offset, data);
        if was_empty && inner.commit_log.last_file().is_some() {
            // The log starts at the master's newest file, not at 0.
            inner.dispatched.fetch_max(offset, Ordering::AcqRel);
        }
        end
    }

    /// Wakes the dispatcher if it waits for appends.
    pub fn wake_dispatcher(&self) {
        let inner = &*self.inner;
        if inner.dispatcher_idle.swap(false, Ordering::SeqCst)
            && let Some(t) = inner.dispatcher.get()
        {
            t.unpark();
        }
    }

    /// Replication, master side: up to `bytes_max` readable CommitLog bytes from `offset`, within
    /// one file. `None` when nothing is there (yet).
    pub fn transfer_bytes(&self, offset: u64, bytes_max: usize) -> Option<Bytes> {
        self.inner.commit_log.read_for_transfer(offset, bytes_max)
    }

    /// Start of the newest CommitLog file: where a master starts a slave that has nothing.
    pub fn commit_log_newest_file_start(&self) -> u64 {
        self.inner.commit_log.newest_file_start()
    }

    /// CommitLog offset up to which ConsumeQueues and index are built.
    pub fn dispatched_offset(&self) -> u64 {
        self.inner.dispatched.load(Ordering::Acquire)
    }

    /// Waits until the ConsumeQueues and index cover the CommitLog up to `end_offset` (so a
    /// reader finds what was just written), for at most `timeout`; returns whether they do.
    ///
    /// When the dispatcher thread is not in a round, the caller does the round itself, on its own
    /// thread: no hand-off to the dispatcher and back. Otherwise the dispatcher is woken at once,
    /// even while it polls, and tells the waiters when its round ends.
    pub async fn dispatched(&self, end_offset: u64, timeout: Duration) -> bool {
        let inner = &*self.inner;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let done = inner.dispatch_done.notified();
            tokio::pin!(done);
            // Registered before the check: a round that ends in between still wakes us.
            done.as_mut().enable();
            let from = inner.dispatched.load(Ordering::Acquire);
            if from >= end_offset {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            if let Ok(turn) = inner.dispatch_turn.try_lock() {
                // A failed round is the dispatcher's to report and retry; this waiter waits.
                let reached = inner.dispatch_pending().unwrap_or(from);
                drop(turn);
                inner.dispatch_done.notify_waiters();
                if reached > from {
                    continue;
                }
            }
            inner.dispatch_wanted.store(true, Ordering::SeqCst);
            if let Some(t) = inner.dispatcher.get() {
                t.unpark();
            }
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                return inner.dispatched.load(Ordering::Acquire) >= end_offset;
            }
        }
    }

    /// Waits until everything appended so far is dispatched (tests and shutdown).
    pub fn wait_dispatched(&self, timeout: Duration) -> bool {
        let target = self.commit_log_max_offset();
        let deadline = std::time::Instant::now() + timeout;
        while self.dispatched_offset() < target {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Topics and queues the store has ConsumeQueues for.
    pub fn queues(&self) -> Vec<(String, u32)> {
        let mut v: Vec<_> = self.inner.all_queues().iter().map(|q| (q.topic().to_string(), q.queue_id())).collect();
        v.sort();
        v
    }

    /// Completed CommitLog flush rounds: with SYNC_FLUSH, appends divided by this is the group
    /// commit's batch size.
    pub fn commit_log_flush_rounds(&self) -> u64 {
        self.inner.group_commit.rounds()
    }

    /// Waits until the next CommitLog segment, zero-filled in the background with SYNC_FLUSH,
    /// is ready (benchmarks use it to measure steady state).
    pub fn wait_for_segment_preallocation(&self) {
        self.inner.commit_log.wait_spare();
    }

    /// Total time spent syncing the CommitLog.
    pub fn commit_log_flush_time(&self) -> Duration {
        Duration::from_nanos(self.inner.flush_nanos.load(Ordering::Relaxed))
    }

    pub fn is_poisoned(&self) -> bool {
        self.inner.poisoned.load(Ordering::Acquire)
    }

    pub fn is_disk_full(&self) -> bool {
        self.inner.disk_full.load(Ordering::Acquire)
    }

    /// Sets the function called on the appender's thread after every append of a message batch
    /// (not of replica bytes), once it is readable. It must be short and must not append. Only
    /// the first call takes effect.
    pub fn set_append_listener(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.inner.append_listener.set(Box::new(f));
    }

    /// Called with `(topic, queue_id, max_offset)` when new units become readable.
    pub fn set_arrival_listener(&self, f: impl Fn(&str, u32, u64) + Send + Sync + 'static) {
        *self.inner.arrival.write().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(f));
    }

    /// Runs retention and the disk check now, as if at `now` (the cleaner does this on its own
    /// every `cleanResourceInterval`).
    ///
    /// # Errors
    /// A file could not be deleted.
    pub fn run_retention(&self, now: SystemTime) -> Result<RetentionReport> {
        self.inner.clean(now, false)
    }

    /// Deletes expired files at once, whatever the hour (mqadmin `deleteExpiredCommitLog`).
    ///
    /// # Errors
    /// A file could not be deleted.
    pub fn delete_expired_now(&self, now: SystemTime) -> Result<RetentionReport> {
        self.inner.clean(now, true)
    }

    /// Paths of the CommitLog files, oldest first.
    pub fn commit_log_files(&self) -> Vec<std::path::PathBuf> {
        self.inner.commit_log.files().iter().map(|f| f.path().to_path_buf()).collect()
    }

    /// Flushes everything and records a checkpoint.
    ///
    /// # Errors
    /// A sync failed (the store is poisoned).
    pub fn flush_all(&self) -> Result<()> {
        self.inner.flush_commit_log()?;
        self.inner.flush_queues()
    }

    /// Stops the threads, flushes, writes the checkpoint and removes the abort file: the next
    /// open is a clean one. Dropping the store does the same.
    ///
    /// # Errors
    /// The final flush failed (the abort file stays, so the next open recovers as after a crash).
    pub fn shutdown(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let inner = &*self.inner;
        inner.shutting_down.store(true, Ordering::Release);
        inner.group_commit.wake();
        let threads: Vec<_> = self.threads.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect();
        for t in threads {
            t.thread().unpark();
            let _ = t.join();
        }
        if inner.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        self.flush_all()?;
        let abort = inner.config.abort_path();
        std::fs::remove_file(&abort).map_err(Error::io(&abort))?;
        sync_dir(&inner.config.root_dir)?;
        tracing::info!(root = %inner.config.root_dir.display(), "Store shut down cleanly.");
        Ok(())
    }
}

impl Drop for MessageStore {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "Store shutdown failed; the next start recovers as after a crash.");
        }
    }
}

/// The outcome of a put once its durability wait ended.
fn put_result(durable: Durable, appended: AppendResult) -> Result<PutResult> {
    match durable {
        Durable::Yes => Ok(PutResult { status: PutStatus::Ok, appended }),
        Durable::TimedOut => Ok(PutResult { status: PutStatus::FlushDiskTimeout, appended }),
        Durable::Failed => Err(Error::Poisoned),
    }
}

fn inner_path(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("<thread {name}>"))
}

impl Inner {
    fn sync_flush_timeout(&self) -> Duration {
        Duration::from_millis(self.config.sync_flush_timeout_ms)
    }

    fn check_writable(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(Error::ShutDown);
        }
        if self.disk_full.load(Ordering::Acquire) {
            return Err(Error::DiskFull(format!(
                "disk under {} is over {:.0}% used",
                self.config.root_dir.display(),
                self.config.disk_space_warning_level_ratio * 100.0
            )));
        }
        Ok(())
    }

    fn queue(&self, topic: &str, queue_id: u32) -> Option<Arc<ConsumeQueue>> {
        self.queues.read().unwrap_or_else(|p| p.into_inner()).get(topic)?.get(&queue_id).cloned()
    }

    fn queue_or_create(&self, topic: &str, queue_id: u32) -> Arc<ConsumeQueue> {
        if let Some(q) = self.queue(topic, queue_id) {
            return q;
        }
        let mut queues = self.queues.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(queues.entry(topic.to_string()).or_default().entry(queue_id).or_insert_with(|| {
            let dir = self.config.consume_queue_dir().join(topic).join(queue_id.to_string());
            Arc::new(ConsumeQueue::new(topic, queue_id, dir, self.config.consume_queue_file_bytes))
        }))
    }

    /// Every ConsumeQueue.
    fn all_queues(&self) -> Vec<Arc<ConsumeQueue>> {
        self.queues.read().unwrap_or_else(|p| p.into_inner()).values().flat_map(|m| m.values().cloned()).collect()
    }

    fn poison(&self, e: &Error) {
        if !self.poisoned.swap(true, Ordering::AcqRel) {
            tracing::error!(error = %e, "Sync failed; the store is poisoned and refuses writes until restart.");
        }
        self.group_commit.fail();
    }

    fn flush_commit_log(&self) -> Result<u64> {
        let started = std::time::Instant::now();
        let result = self.commit_log.flush(&self.faults);
        self.flush_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match result {
            Ok(off) => {
                self.group_commit.flushed(off);
                Ok(off)
            }
            Err(e) => {
                self.poison(&e);
                Err(e)
            }
        }
    }

    /// Flushes ConsumeQueues and index, then records in the checkpoint what they cover.
    fn flush_queues(&self) -> Result<()> {
        let logics = self.dispatched_timestamp.load(Ordering::Acquire);
        let queues = self.all_queues();
        let result = (|| {
            for q in &queues {
                q.flush(&self.faults)?;
            }
            if let Some(index) = &self.index {
                self.faults.check_sync().map_err(Error::io(self.config.index_dir()))?;
                index.flush()?;
            }
            let times = CheckpointTimes {
                physic_ms: self.commit_log.flushed_store_timestamp(),
                logics_ms: logics,
                index_ms: logics,
            };
            self.checkpoint.lock().unwrap_or_else(|p| p.into_inner()).write(times, &self.faults)
        })();
        if let Err(e) = &result {
            self.poison(e);
        }
        result
    }
}

fn flush_thread(inner: &Inner) {
    let interval = Duration::from_millis(inner.config.flush_interval_commit_log_ms.max(1));
    let thorough = Duration::from_millis(inner.config.flush_commit_log_thorough_interval_ms);
    let least_bytes = (inner.config.flush_commit_log_least_pages * 4096) as u64;
    let mut last_thorough = std::time::Instant::now();
    while !inner.shutting_down.load(Ordering::Acquire) && !inner.poisoned.load(Ordering::Acquire) {
        match inner.config.flush_disk_type {
            FlushDiskType::Sync => {
                if inner.group_commit.next_request(Duration::from_millis(10)).is_some() {
                    let _ = inner.flush_commit_log();
                }
            }
            FlushDiskType::Async => {
                std::thread::park_timeout(interval);
                let due = last_thorough.elapsed() >= thorough;
                if inner.commit_log.dirty_bytes() >= least_bytes.max(1) || (due && inner.commit_log.dirty_bytes() > 0) {
                    let _ = inner.flush_commit_log();
                    last_thorough = std::time::Instant::now();
                }
            }
        }
    }
}

/// How far ahead of the CommitLog write position pages are faulted in (ASYNC_FLUSH, mapped writes).
const PREFAULT_AHEAD_BYTES: usize = 16 * 1024 * 1024;
/// Pages faulted in per step, so the thread never holds up shutdown for long.
const PREFAULT_STEP_BYTES: usize = 2 * 1024 * 1024;

/// Keeps the pages just ahead of the writer present, so the append (which runs under the writer
/// lock) copies into memory instead of taking a fault that allocates and zeroes a page: on the
/// test VM that zeroing was half of the broker's CPU in batch sends.
fn prefault_thread(inner: &Inner) {
    let mut done: Option<(u64, usize)> = None;
    while !inner.shutting_down.load(Ordering::Acquire) && !inner.poisoned.load(Ordering::Acquire) {
        let Some(file) = inner.commit_log.last_file() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        // A replica writes with `pwrite` (`MappedFile::append_at`): faulting pages in ahead
        // would only zero pages that are about to be overwritten whole.
        if !file.writes_through_map() || inner.replica_appends.load(Ordering::Acquire) {
            return;
        }
        let wrote = file.wrote();
        let from = match done {
            Some((start, upto)) if start == file.start_offset() => upto.max(wrote),
            _ => wrote,
        };
        let target = wrote.saturating_add(PREFAULT_AHEAD_BYTES).min(file.size_bytes());
        if from >= target {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let step = (target - from).min(PREFAULT_STEP_BYTES);
        if let Err(e) = file.prefault(from, step) {
            tracing::debug!(error = %e, "pre-faulting the CommitLog is not available; appends fault pages in themselves");
            return;
        }
        done = Some((file.start_offset(), from + step));
    }
}

fn flush_queues_thread(inner: &Inner) {
    let interval = Duration::from_millis(inner.config.flush_interval_consume_queue_ms.max(1));
    while !inner.shutting_down.load(Ordering::Acquire) && !inner.poisoned.load(Ordering::Acquire) {
        std::thread::park_timeout(interval);
        if inner.shutting_down.load(Ordering::Acquire) {
            break;
        }
        let _ = inner.flush_queues();
    }
}

/// fsyncs a directory so that file creations, renames and deletions in it are durable.
///
/// # Errors
/// The directory cannot be opened or synced.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = std::fs::File::open(dir).map_err(Error::io(dir))?;
    d.sync_all().map_err(Error::io(dir))
}

/// The entries of `dir`; a missing directory has none.
fn dir_entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir)(e)),
    };
    rd.map(|e| e.map_err(Error::io(dir))).collect()
}

/// Start offsets of the 20-digit files in `dir` (other names are ignored), unsorted.
fn list_offset_files(dir: &Path) -> Result<Vec<u64>> {
    Ok(dir_entries(dir)?
        .iter()
        .filter_map(|e| e.file_name().to_str().and_then(format::parse_offset_file_name))
        .collect())
}

#[cfg(test)]
mod tests;
