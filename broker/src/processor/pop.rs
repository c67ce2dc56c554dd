//! Pop consumption (RocketMQ 5): POP_MESSAGE (200050), ACK_MESSAGE (200051) and
//! CHANGE_MESSAGE_INVISIBLETIME (200053), and the state behind them, which the HTTP simple consumer
//! and the AMQP door share through `messaging`. A filter plugin bound to the group and topic
//! applies as it does to pulls.
//!
//! A consumer group *receives* messages of a topic with an invisible time: each message gets a
//! lease (its pop time and the deadline), and no other receive of the group sees it until the
//! deadline. An *ack* ends the lease for good; a *change* replaces it with a new one (new pop time,
//! so handles of the old lease no longer work). A lease that runs out is *revived*: the message is
//! copied to the group's pop retry topic `%RETRY%<group>_<topic>` (RocketMQ 5's
//! `KeyBuilder.buildPopRetryTopicV1`) with `reconsumeTimes + 1`, where the next receive finds it,
//! or to `%DLQ%<group>` once that would exceed the group's `retryMaxTimes`. A nack is a change to a
//! short (or zero) invisible time.
//!
//! Per group, topic and queue the state is the next offset to hand out and the open leases. The
//! group's committed consumer offset follows the lowest offset not yet done, so `mqadmin
//! consumerProgress` and the lag metrics see pop consumers too. The state is written to
//! `<storePathRootDir>/config/popState.json` (atomically) at most every [`PERSIST_INTERVAL_MS`] when
//! it changed and at shutdown; it survives a restart, and a crash loses at most that interval
//! (messages leased then are delivered again: at least once).
//!
//! On the wire (as RocketMQ 5): the POP response carries the stored records and the headers
//! `popTime`, `invisibleTime`, `reviveQid`, `restNum`, `startOffsetInfo`, `msgOffsetInfo`; a
//! client builds each message's `extraInfo` as `"<startOffset> <popTime> <invisibleTime>
//! <reviveQid> <retry 0|1> <brokerName> <queueId> <queueOffset>"` and sends it back with ACK and
//! CHANGE. A lease is identified by its pop time: an ack whose pop time does not match the open
//! lease (it was changed or revived since) does nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::error::{Error, Result};
use super::send::put;
use super::{BrokerInner, Role, ok};
use crate::filter::Subscription;
use crate::metrics::Protocol;
use crate::protocol::{self, Headers, PERM_READ, PERM_WRITE, RETRY_GROUP_TOPIC_PREFIX, dlq_topic, response};
use crate::remoting::RemotingCommand;
use crate::store::format::{PROPERTY_DELAY, PROPERTY_UNIQ_KEY, Scanned, StoredRecord, scan_record};
use crate::store::{GetStatus, now_ms};

/// The state file, under `<storePathRootDir>/config/`.
pub const POP_STATE_FILE: &str = "popState.json";
/// Shortest invisible time a receive may ask for.
pub const INVISIBLE_MS_MIN: u64 = 1_000;
/// Longest invisible time (RocketMQ 5 proxy: 12 h).
pub const INVISIBLE_MS_MAX: u64 = 12 * 3600 * 1000;
/// Most messages one receive returns.
pub const POP_MESSAGES_MAX: usize = 32;
/// Bytes one receive returns at most (about; as a pull).
pub const POP_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Longest a receive waits for messages.
pub const POLL_MS_MAX: u64 = 60_000;
/// Open leases per group and queue; a queue at the limit is skipped until some are acknowledged.
pub const LEASES_PER_QUEUE_MAX: usize = 20_000;
/// How often leases are checked for expiry.
pub const REVIVE_SCAN_INTERVAL_MS: u64 = 100;
/// How often a changed state is written.
pub const PERSIST_INTERVAL_MS: u64 = 200;
/// Bytes of a state file read at start (64 MiB).
const STATE_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// A lease that could not be revived (the store refused the copy) is tried again this much later.
const REVIVE_RETRY_MS: i64 = 1_000;
/// Property naming the topic a retried message was first sent to.
const PROPERTY_RETRY_TOPIC: &str = "RETRY_TOPIC";
const PROPERTY_ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
/// `extraInfo` retry flags (RocketMQ 5 `ExtraInfoUtil`): normal topic, pop retry topic.
const EXTRA_NORMAL: &str = "0";
const EXTRA_RETRY: &str = "1";

/// The pop retry topic of `group` for `topic` (a retry topic maps to itself).
pub fn pop_retry_topic(group: &str, topic: &str) -> String {
    if topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
        return topic.to_owned();
    }
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}_{topic}")
}

/// One open lease.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lease {
    /// When the lease began (ms since the epoch); identifies it.
    pub pop_time_ms: i64,
    /// When it runs out.
    pub invisible_until_ms: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct QueueState {
    /// The next queue offset to hand out.
    next: u64,
    /// Open leases by queue offset.
    leases: BTreeMap<u64, Lease>,
}

impl QueueState {
    /// The lowest offset not yet done: what the group's consumer offset shows.
    fn low_watermark(&self) -> u64 {
        self.leases.keys().next().copied().unwrap_or(self.next).min(self.next)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct QueueKey {
    group: String,
    topic: String,
    queue_id: u32,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    queues: Vec<StateEntry>,
}

#[derive(Serialize, Deserialize)]
struct StateEntry {
    group: String,
    topic: String,
    queue_id: u32,
    next: u64,
    leases: Vec<(u64, Lease)>,
}

/// The pop state of every group, and the receives parked waiting for messages.
pub struct PopState {
    path: PathBuf,
    queues: RwLock<HashMap<QueueKey, Arc<Mutex<QueueState>>>>,
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    dirty: AtomicBool,
    /// Rotates the first queue a receive looks at, so queues are served evenly.
    turn: std::sync::atomic::AtomicUsize,
}

impl PopState {
    /// Loads `<config_dir>/popState.json` if it exists; a damaged file is logged and ignored
    /// (messages are then delivered again from the committed offsets).
    pub fn load(config_dir: &std::path::Path) -> PopState {
        let path = config_dir.join(POP_STATE_FILE);
        let mut queues = HashMap::new();
        match read_state(&path) {
            Ok(Some(file)) => {
                for e in file.queues {
                    let key = QueueKey { group: e.group, topic: e.topic, queue_id: e.queue_id };
                    let state = QueueState { next: e.next, leases: e.leases.into_iter().collect() };
                    queues.insert(key, Arc::new(Mutex::new(state)));
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "could not read the pop state; starting from the committed offsets")
            }
        }
        PopState {
            path,
            queues: RwLock::new(queues),
            waiters: Mutex::new(HashMap::new()),
            dirty: AtomicBool::new(false),
            turn: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Called by the store's arrival listener: wakes receives parked on `topic`.
    pub fn arrived(&self, topic: &str) {
        let w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = w.get(topic) {
            n.notify_waiters();
        }
    }

    fn notify_for(&self, topic: &str) -> Arc<Notify> {
        let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        w.entry(topic.to_owned()).or_default().clone()
    }

    fn queue(&self, broker: &BrokerInner, group: &str, topic: &str, queue_id: u32) -> Arc<Mutex<QueueState>> {
        let key = QueueKey { group: group.to_owned(), topic: topic.to_owned(), queue_id };
        if let Some(q) = self.queues.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return q.clone();
        }
        // A new group starts at its committed offset, else at the queue's first message.
        let committed = broker.meta.consumer_offsets().offset(topic, group, queue_id).filter(|o| *o >= 0);
        let next = committed.map_or_else(|| broker.store.min_offset(topic, queue_id), |o| o as u64);
        let mut map = self.queues.write().unwrap_or_else(|e| e.into_inner());
        map.entry(key).or_insert_with(|| Arc::new(Mutex::new(QueueState { next, leases: BTreeMap::new() }))).clone()
    }

    fn existing(&self, group: &str, topic: &str, queue_id: u32) -> Option<Arc<Mutex<QueueState>>> {
        let key = QueueKey { group: group.to_owned(), topic: topic.to_owned(), queue_id };
        self.queues.read().unwrap_or_else(|e| e.into_inner()).get(&key).cloned()
    }

    /// Open leases of `group` on each queue of `topic` (queues without a lease are left out).
    pub fn inflight(&self, group: &str, topic: &str) -> BTreeMap<u32, usize> {
        let map = self.queues.read().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .filter(|(k, _)| k.group == group && k.topic == topic)
            .map(|(k, q)| (k.queue_id, q.lock().unwrap_or_else(|e| e.into_inner()).leases.len()))
            .collect()
    }

    /// `(group, topic, open leases)` of every queue state, summed per group and topic.
    pub fn inflight_all(&self) -> Vec<(String, String, usize)> {
        let map = self.queues.read().unwrap_or_else(|e| e.into_inner());
        let mut sums: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (k, q) in map.iter() {
            let n = q.lock().unwrap_or_else(|e| e.into_inner()).leases.len();
            *sums.entry((k.group.clone(), k.topic.clone())).or_default() += n;
        }
        sums.into_iter().map(|((g, t), n)| (g, t, n)).collect()
    }

    /// Writes the state file if anything changed since the last write.
    pub fn persist(&self) {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let file = {
            let map = self.queues.read().unwrap_or_else(|e| e.into_inner());
            let mut queues: Vec<StateEntry> = map
                .iter()
                .map(|(k, q)| {
                    let q = q.lock().unwrap_or_else(|e| e.into_inner());
                    StateEntry {
                        group: k.group.clone(),
                        topic: k.topic.clone(),
                        queue_id: k.queue_id,
                        next: q.next,
                        leases: q.leases.iter().map(|(o, l)| (*o, *l)).collect(),
                    }
                })
                .collect();
            queues.sort_by(|a, b| (&a.group, &a.topic, a.queue_id).cmp(&(&b.group, &b.topic, b.queue_id)));
            StateFile { queues }
        };
        let bytes = match serde_json::to_vec(&file) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "could not encode the pop state");
                return;
            }
        };
        if let Err(e) = crate::store::metadata::write_atomically(&self.path, &bytes) {
            self.dirty.store(true, Ordering::Release);
            tracing::error!(file = %self.path.display(), error = %e, "could not write the pop state");
        }
    }

    fn touched(&self) {
        self.dirty.store(true, Ordering::Release);
    }
}

fn read_state(path: &std::path::Path) -> std::result::Result<Option<StateFile>, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if meta.len() > STATE_FILE_BYTES_MAX {
        return Err(format!("{} bytes, more than the limit of {STATE_FILE_BYTES_MAX}", meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| e.to_string())
}

/// What a receive asks for.
pub struct PopRequest {
    pub group: String,
    pub topic: String,
    /// One queue, or every readable queue of the topic (and the retry topic).
    pub queue_id: Option<u32>,
    pub max: usize,
    pub invisible_ms: u64,
    pub poll_ms: u64,
    pub filter: Arc<Subscription>,
    pub protocol: Protocol,
}

/// One received message.
#[derive(Clone, Debug)]
pub struct Popped {
    /// The topic the message was read from (the pop retry topic for a redelivery).
    pub topic: String,
    pub queue_id: u32,
    pub queue_offset: u64,
    /// The stored record, byte for byte.
    pub record: Bytes,
    pub lease: Lease,
    /// `reconsumeTimes + 1`.
    pub delivery_attempt: u32,
    /// The first offset this receive read from the message's queue (RocketMQ's `startOffset`).
    pub start_offset: u64,
}

impl Popped {
    pub fn is_retry(&self) -> bool {
        self.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX)
    }
}

/// What an ack or change found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The lease was open and is now acknowledged (or replaced by the returned one).
    Done(Option<Lease>),
    /// Nothing open at that offset and it was handed out before: already acknowledged.
    AlreadyAcked,
    /// The lease ran out or was replaced: the message is (or will be) delivered again.
    Expired,
    /// No such group, topic, queue or offset was ever handed out.
    Unknown,
}

/// Checks that `topic` may be consumed by `group` here, creating the group if allowed.
fn check_consume(broker: &BrokerInner, group: &str, topic: &str) -> Result<()> {
    if broker.permission() & PERM_READ == 0 {
        return Err(Error::NoPermission(format!(
            "the broker[{}] pulling message is forbidden",
            broker.config.broker_name
        )));
    }
    let Some(gc) = broker.groups.find_or_create(group) else {
        return Err(Error::SubscriptionGroupNotExist(format!("subscription group [{group}] does not exist")));
    };
    if !gc.consume_enable {
        return Err(Error::NoPermission(format!("subscription group no permission, {group}")));
    }
    let Some(tc) = broker.topics.get(topic) else {
        return Err(Error::TopicNotExist(format!("topic[{topic}] not exist, apply first please!")));
    };
    if tc.perm & PERM_READ == 0 {
        return Err(Error::NoPermission(format!("the topic[{topic}] pulling message is forbidden")));
    }
    Ok(())
}

/// Receives up to `req.max` messages, waiting up to `req.poll_ms` when there are none.
///
/// # Errors
///
/// The broker or topic is not readable, the group does not exist (and may not be created), the
/// topic does not exist, or the invisible time is out of range.
pub async fn pop(broker: &Arc<BrokerInner>, req: &PopRequest) -> Result<Vec<Popped>> {
    check_consume(broker, &req.group, &req.topic)?;
    if !(INVISIBLE_MS_MIN..=INVISIBLE_MS_MAX).contains(&req.invisible_ms) {
        return Err(Error::MessageIllegal(format!(
            "invisible time {} ms is out of range {INVISIBLE_MS_MIN}..={INVISIBLE_MS_MAX}",
            req.invisible_ms
        )));
    }
    if matches!(*req.filter, Subscription::Sql(_)) {
        return Err(Error::System("pop consumption filters by tag only".into()));
    }
    let started = Instant::now();
    let deadline = started + Duration::from_millis(req.poll_ms.min(POLL_MS_MAX));
    let retry = pop_retry_topic(&req.group, &req.topic);
    loop {
        // Arm the wake-ups before looking, so an arrival in between is not missed.
        let (a, b) = (broker.pops.notify_for(&req.topic), broker.pops.notify_for(&retry));
        let (fa, fb) = (a.notified(), b.notified());
        tokio::pin!(fa, fb);
        fa.as_mut().enable();
        fb.as_mut().enable();
        let found = take(broker, req, &retry);
        let now = Instant::now();
        if !found.is_empty() || now >= deadline || broker.is_stopping() {
            broker.metrics.record_pop(req.protocol, if found.is_empty() { "empty" } else { "messages" });
            broker.metrics.observe_pull(req.protocol, started.elapsed());
            return Ok(found);
        }
        let _ = tokio::time::timeout(deadline - now, async {
            tokio::select! {
                _ = &mut fa => {}
                _ = &mut fb => {}
            }
        })
        .await;
    }
}

/// One pass over the queues: leases what is there.
fn take(broker: &BrokerInner, req: &PopRequest, retry: &str) -> Vec<Popped> {
    let max = req.max.clamp(1, POP_MESSAGES_MAX);
    let mut queues: Vec<(String, u32)> = Vec::new();
    match req.queue_id {
        Some(q) => queues.push((req.topic.clone(), q)),
        None => {
            let n = broker.topics.get(&req.topic).map_or(0, |tc| tc.read_queue_nums);
            let turn = broker.pops.turn.fetch_add(1, Ordering::Relaxed);
            for i in 0..n {
                queues.push((req.topic.clone(), ((turn + i as usize) % n.max(1) as usize) as u32));
            }
            if let Some(tc) = broker.topics.get(retry) {
                let retries = (0..tc.read_queue_nums).map(|q| (retry.to_owned(), q));
                // Redeliveries first one time in five, as RocketMQ 5 does, so neither starves.
                if turn.is_multiple_of(5) {
                    queues.splice(0..0, retries);
                } else {
                    queues.extend(retries);
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let now = now_ms();
    for (topic, queue_id) in queues {
        if out.len() >= max || bytes >= POP_BYTES_MAX {
            break;
        }
        let state = broker.pops.queue(broker, &req.group, &topic, queue_id);
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        if s.leases.len() >= LEASES_PER_QUEUE_MAX {
            continue;
        }
        let want = (max - out.len()).min(LEASES_PER_QUEUE_MAX - s.leases.len());
        let tag_filter = |code: i64| req.filter.matches_tags_code(code);
        let got = broker.store.get_messages(&topic, queue_id, s.next, want, POP_BYTES_MAX - bytes, Some(&tag_filter));
        let start = s.next;
        let moved = match got.status {
            GetStatus::Found => true,
            GetStatus::NoMatchedMessage | GetStatus::OffsetTooSmall | GetStatus::OffsetOverflowBadly => {
                got.next_begin_offset != s.next
            }
            _ => false,
        };
        if !moved {
            continue;
        }
        // Leases begin strictly after any earlier lease of the queue, so pop times identify them.
        let pop_time = s.leases.values().map(|l| l.pop_time_ms + 1).max().unwrap_or(now).max(now);
        let lease = Lease { pop_time_ms: pop_time, invisible_until_ms: pop_time + req.invisible_ms as i64 };
        // A filter plugin bound to (group, topic) decides as for a pull: rejected messages are
        // passed over, and the queue does not move past the first message it could not decide.
        let plugin = super::plugins::filter_pull(broker, &req.group, &req.topic, &got.messages);
        if let Some(f) = &plugin {
            super::plugins::dead_letter_poison(broker, &req.group, &got.messages, f);
        }
        let mut next = got.next_begin_offset;
        for (i, (record, offset)) in got.messages.into_iter().zip(got.queue_offsets).enumerate() {
            if let Some(f) = &plugin {
                if i >= f.decided {
                    next = offset;
                    break;
                }
                if !f.pass.get(i).copied().unwrap_or(false) {
                    continue;
                }
            }
            let attempt = match scan_record(&record, false) {
                Scanned::Record(r) => r.reconsume_times.max(0) as u32 + 1,
                _ => 1,
            };
            bytes += record.len();
            s.leases.insert(offset, lease);
            broker.metrics.record_out(req.protocol, &req.topic, 1, record.len() as u64);
            out.push(Popped {
                topic: topic.clone(),
                queue_id,
                queue_offset: offset,
                record,
                lease,
                delivery_attempt: attempt,
                start_offset: start,
            });
        }
        s.next = next;
        let low = s.low_watermark();
        drop(s);
        broker.commit_offset(&req.group, &topic, queue_id, low as i64);
        broker.pops.touched();
    }
    broker.stats.record_get(out.len() as u64);
    out
}

/// Acknowledges the message at `offset` of `topic`/`queue_id` leased at `pop_time_ms`.
pub fn ack(
    broker: &BrokerInner,
    group: &str,
    topic: &str,
    queue_id: u32,
    offset: u64,
    pop_time_ms: i64,
) -> LeaseOutcome {
    let Some(state) = broker.pops.existing(group, topic, queue_id) else {
        return LeaseOutcome::Unknown;
    };
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = match s.leases.get(&offset) {
        Some(l) if l.pop_time_ms == pop_time_ms => {
            s.leases.remove(&offset);
            LeaseOutcome::Done(None)
        }
        Some(_) => LeaseOutcome::Expired,
        None if offset < s.next => LeaseOutcome::AlreadyAcked,
        None => LeaseOutcome::Unknown,
    };
    if matches!(outcome, LeaseOutcome::Done(_)) {
        let low = s.low_watermark();
        drop(s);
        broker.commit_offset(group, topic, queue_id, low as i64);
        broker.pops.touched();
    }
    outcome
}

/// Replaces the lease at `offset` (leased at `pop_time_ms`) with one that ends `invisible_ms`
/// from now. Zero makes the message due for redelivery at once (a nack).
pub fn change_invisible(
    broker: &BrokerInner,
    group: &str,
    topic: &str,
    queue_id: u32,
    offset: u64,
    pop_time_ms: i64,
    invisible_ms: u64,
) -> LeaseOutcome {
    let Some(state) = broker.pops.existing(group, topic, queue_id) else {
        return LeaseOutcome::Unknown;
    };
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let highest = s.leases.values().map(|l| l.pop_time_ms).max().unwrap_or(0);
    let next = s.next;
    match s.leases.get_mut(&offset) {
        Some(l) if l.pop_time_ms == pop_time_ms => {
            let now = now_ms().max(highest + 1);
            *l = Lease { pop_time_ms: now, invisible_until_ms: now + invisible_ms.min(INVISIBLE_MS_MAX) as i64 };
            let lease = *l;
            drop(s);
            broker.pops.touched();
            LeaseOutcome::Done(Some(lease))
        }
        Some(_) => LeaseOutcome::Expired,
        None if offset < next => LeaseOutcome::Expired,
        None => LeaseOutcome::Unknown,
    }
}

/// Revives every lease that ran out: copies the message to the pop retry topic (or the DLQ).
pub async fn revive_due(broker: &Arc<BrokerInner>) {
    let now = now_ms();
    let states: Vec<(QueueKey, Arc<Mutex<QueueState>>)> = {
        let map = broker.pops.queues.read().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    for (key, state) in states {
        let due: Vec<(u64, Lease)> = {
            let s = state.lock().unwrap_or_else(|e| e.into_inner());
            s.leases.iter().filter(|(_, l)| l.invisible_until_ms <= now).map(|(o, l)| (*o, *l)).collect()
        };
        for (offset, lease) in due {
            let revived = revive_one(broker, &key, offset).await;
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            // Only if nobody acknowledged or changed it meanwhile.
            if s.leases.get(&offset) != Some(&lease) {
                continue;
            }
            if revived {
                s.leases.remove(&offset);
            } else if let Some(l) = s.leases.get_mut(&offset) {
                l.invisible_until_ms = now + REVIVE_RETRY_MS;
            }
            let low = s.low_watermark();
            drop(s);
            broker.commit_offset(&key.group, &key.topic, key.queue_id, low as i64);
            broker.pops.touched();
        }
    }
}

/// The properties of a stored message copied under another topic (retry or dead letter), and its
/// original topic: `RETRY_TOPIC` names the original topic and `ORIGIN_MESSAGE_ID` its id (the
/// unique key, else the offset id), unless an earlier copy set them; no delay level.
pub(super) fn copy_properties(rec: &StoredRecord<'_>) -> (String, Vec<(String, String)>) {
    let mut props = protocol::parse_properties(rec.properties);
    let base_topic = props
        .iter()
        .find(|(k, _)| k == PROPERTY_RETRY_TOPIC)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| rec.topic.to_owned());
    if !props.iter().any(|(k, _)| k == PROPERTY_RETRY_TOPIC) {
        props.push((PROPERTY_RETRY_TOPIC.to_owned(), base_topic.clone()));
    }
    if !props.iter().any(|(k, _)| k == PROPERTY_ORIGIN_MESSAGE_ID) {
        let id = props
            .iter()
            .find(|(k, _)| k == PROPERTY_UNIQ_KEY)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| protocol::message_id::offset_msg_id(rec.store_host, rec.physical_offset));
        props.push((PROPERTY_ORIGIN_MESSAGE_ID.to_owned(), id));
    }
    props.retain(|(k, _)| k != PROPERTY_DELAY);
    (base_topic, props)
}

/// Copies one message for redelivery. True when done (or when the message is gone, so there is
/// nothing to redeliver).
async fn revive_one(broker: &Arc<BrokerInner>, key: &QueueKey, offset: u64) -> bool {
    let got = broker.store.get_messages(&key.topic, key.queue_id, offset, 1, POP_BYTES_MAX, None);
    let Some(record) = got.messages.first().filter(|_| got.queue_offsets.first() == Some(&offset)) else {
        tracing::warn!(topic = %key.topic, queue = key.queue_id, offset, "a leased message is gone; nothing to redeliver");
        return true;
    };
    let Scanned::Record(rec) = scan_record(record, false) else {
        return true;
    };
    let group = &key.group;
    let max_times = broker.groups.find_or_create(group).map_or(16, |g| g.retry_max_times);
    let (base_topic, props) = copy_properties(&rec);
    let reconsume_times = rec.reconsume_times.saturating_add(1);
    let to_dlq = reconsume_times > max_times;
    let target = if to_dlq { dlq_topic(group) } else { pop_retry_topic(group, &base_topic) };
    broker.topics.create_if_absent(&target, 1, PERM_READ | PERM_WRITE, 0);
    let mut msg = rec.to_input();
    msg.topic = target.clone();
    msg.queue_id = 0;
    msg.reconsume_times = reconsume_times;
    msg.store_host = broker.store_host;
    msg.properties = protocol::encode_properties(props.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    match put(broker, vec![msg]).await {
        Ok(_) => {
            if to_dlq {
                broker.metrics.record_dlq(group);
                tracing::info!(%group, topic = %base_topic, reconsume_times, "message moved to the dead-letter queue");
            }
            true
        }
        Err(e) => {
            tracing::warn!(%group, topic = %target, error = %e, "could not store a redelivery; trying again later");
            false
        }
    }
}

/// The revive scan and the state writer.
pub fn start(broker: &Arc<BrokerInner>) -> Vec<JoinHandle<()>> {
    let b = broker.clone();
    let revive = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(REVIVE_SCAN_INTERVAL_MS)).await;
            if b.is_stopping() {
                return;
            }
            if b.role() != Role::Slave {
                revive_due(&b).await;
            }
        }
    });
    let b = broker.clone();
    let persist = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(PERSIST_INTERVAL_MS)).await;
            let b = b.clone();
            let _ = tokio::task::spawn_blocking(move || b.pops.persist()).await;
        }
    });
    vec![revive, persist]
}

// ---------------------------------------------------------------------------------------------
// The native door.

/// `extraInfo` as RocketMQ 5 clients send it back.
struct ExtraInfo {
    pop_time_ms: i64,
    retry: bool,
    queue_id: u32,
    queue_offset: Option<u64>,
}

fn parse_extra_info(text: &str) -> Result<ExtraInfo> {
    let bad = || Error::MessageIllegal(format!("malformed extraInfo {text:?}"));
    let f: Vec<&str> = text.split(' ').collect();
    if f.len() < 7 {
        return Err(bad());
    }
    Ok(ExtraInfo {
        pop_time_ms: f[1].parse().map_err(|_| bad())?,
        retry: f[4] != EXTRA_NORMAL,
        queue_id: f[6].parse().map_err(|_| bad())?,
        queue_offset: match f.get(7) {
            Some(o) => Some(o.parse().map_err(|_| bad())?),
            None => None,
        },
    })
}

/// The `extraInfo` of one popped message, as a RocketMQ 5 client builds it.
pub fn extra_info(broker_name: &str, p: &Popped, invisible_ms: u64) -> String {
    let retry = if p.is_retry() { EXTRA_RETRY } else { EXTRA_NORMAL };
    format!(
        "{} {} {} 0 {retry} {broker_name} {} {}",
        p.start_offset, p.lease.pop_time_ms, invisible_ms, p.queue_id, p.queue_offset
    )
}

/// The topic an ack names: the pop retry topic when the extraInfo says so.
fn acked_topic(group: &str, topic: &str, extra: &ExtraInfo) -> String {
    if extra.retry && !topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
        pop_retry_topic(group, topic)
    } else {
        topic.to_owned()
    }
}

/// POP_MESSAGE.
pub async fn pop_message(broker: &Arc<BrokerInner>, req: &RemotingCommand) -> Result<RemotingCommand> {
    let group: String = req.required("consumerGroup")?;
    let topic: String = req.required("topic")?;
    let queue_id: i32 = req.optional("queueId")?.unwrap_or(-1);
    let max: i32 = req.required("maxMsgNums")?;
    let invisible_ms: i64 = req.required("invisibleTime")?;
    let poll_ms: i64 = req.optional("pollTime")?.unwrap_or(0);
    let exp_type: Option<String> = req.optional("expType")?;
    let exp: Option<String> = req.optional("exp")?;
    let filter = Subscription::parse(exp_type.as_deref(), exp.as_deref().unwrap_or("*"))
        .map_err(|e| Error::SubscriptionParseFailed(format!("parse the pop filter failed: {e}")))?;
    let pop_req = PopRequest {
        group,
        topic,
        queue_id: u32::try_from(queue_id).ok(),
        max: max.max(1) as usize,
        invisible_ms: invisible_ms.max(0) as u64,
        poll_ms: poll_ms.clamp(0, POLL_MS_MAX as i64) as u64,
        filter: Arc::new(filter),
        protocol: Protocol::Remoting,
    };
    let found = pop(broker, &pop_req).await?;
    if found.is_empty() {
        return Ok(RemotingCommand::error(response::PULL_NOT_FOUND, "no new message"));
    }
    let pop_time = found.iter().map(|p| p.lease.pop_time_ms).min().unwrap_or_else(now_ms);
    let mut starts: BTreeMap<(bool, u32), u64> = BTreeMap::new();
    let mut offsets: BTreeMap<(bool, u32), Vec<String>> = BTreeMap::new();
    let mut body = BytesMut::with_capacity(found.iter().map(|p| p.record.len()).sum());
    for p in &found {
        starts.entry((p.is_retry(), p.queue_id)).or_insert(p.start_offset);
        offsets.entry((p.is_retry(), p.queue_id)).or_default().push(p.queue_offset.to_string());
        body.extend_from_slice(&p.record);
    }
    let flag = |retry: bool| if retry { EXTRA_RETRY } else { EXTRA_NORMAL };
    let start_info: Vec<String> = starts.iter().map(|((r, q), o)| format!("{} {q} {o}", flag(*r))).collect();
    let msg_info: Vec<String> = offsets.iter().map(|((r, q), o)| format!("{} {q} {}", flag(*r), o.join(","))).collect();
    Ok(ok()
        .with_field("popTime", pop_time)
        .with_field("invisibleTime", pop_req.invisible_ms)
        .with_field("reviveQid", 0)
        .with_field("restNum", 0)
        .with_field("startOffsetInfo", start_info.join(";"))
        .with_field("msgOffsetInfo", msg_info.join(";"))
        .with_body(body.freeze()))
}

/// ACK_MESSAGE: acknowledging a message twice, or one whose lease was replaced, succeeds and does
/// nothing (as RocketMQ 5).
pub fn ack_message(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let group: String = req.required("consumerGroup")?;
    let topic: String = req.required("topic")?;
    let extra = parse_extra_info(req.required_str("extraInfo")?)?;
    let offset: i64 = match extra.queue_offset {
        Some(o) => req.optional("offset")?.unwrap_or(o as i64),
        None => req.required("offset")?,
    };
    let offset = u64::try_from(offset).map_err(|_| Error::MessageIllegal(format!("offset {offset} is illegal")))?;
    let topic = acked_topic(&group, &topic, &extra);
    match ack(broker, &group, &topic, extra.queue_id, offset, extra.pop_time_ms) {
        LeaseOutcome::Done(_) | LeaseOutcome::AlreadyAcked => {}
        LeaseOutcome::Expired => broker.metrics.record_receipt_error(Protocol::Remoting, "expired"),
        LeaseOutcome::Unknown => broker.metrics.record_receipt_error(Protocol::Remoting, "invalid"),
    }
    Ok(ok())
}

/// CHANGE_MESSAGE_INVISIBLETIME: answers the new lease's `popTime`; a lease that is no longer
/// open is refused with NO_MESSAGE.
pub fn change_invisible_time(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let group: String = req.required("consumerGroup")?;
    let topic: String = req.required("topic")?;
    let extra = parse_extra_info(req.required_str("extraInfo")?)?;
    let offset: i64 = req.required("offset")?;
    let invisible_ms: i64 = req.required("invisibleTime")?;
    let offset = u64::try_from(offset).map_err(|_| Error::MessageIllegal(format!("offset {offset} is illegal")))?;
    let topic = acked_topic(&group, &topic, &extra);
    let invisible_ms = invisible_ms.clamp(0, INVISIBLE_MS_MAX as i64) as u64;
    match change_invisible(broker, &group, &topic, extra.queue_id, offset, extra.pop_time_ms, invisible_ms) {
        LeaseOutcome::Done(Some(lease)) => Ok(ok()
            .with_field("popTime", lease.pop_time_ms)
            .with_field("invisibleTime", invisible_ms)
            .with_field("reviveQid", 0)),
        _ => {
            broker.metrics.record_receipt_error(Protocol::Remoting, "expired");
            Ok(RemotingCommand::error(response::NO_MESSAGE, "the message is no longer leased by this handle"))
        }
    }
}

#[cfg(test)]
mod tests {
    //! The `extraInfo` text a RocketMQ 5 client sends back, and the low watermark.

    use super::*;

    #[test]
    fn extra_info_round_trips_and_bad_text_is_refused() {
        for retry_topic in ["orders", "%RETRY%g_orders"] {
            let p = Popped {
                topic: retry_topic.to_owned(),
                queue_id: 3,
                queue_offset: 42,
                record: Bytes::new(),
                lease: Lease { pop_time_ms: 1_700_000_000_000, invisible_until_ms: 1_700_000_030_000 },
                delivery_attempt: 1,
                start_offset: 40,
            };
            let text = extra_info("broker-a", &p, 30_000);
            let e = parse_extra_info(&text).unwrap();
            assert_eq!(
                (e.pop_time_ms, e.retry, e.queue_id, e.queue_offset),
                (p.lease.pop_time_ms, p.is_retry(), 3, Some(42))
            );
            assert_eq!(acked_topic("g", "orders", &e), if p.is_retry() { "%RETRY%g_orders" } else { "orders" });
        }
        for bad in ["", "1 2 3", "0 x 30000 0 0 b 1 2", "0 1 30000 0 0 b q", "0 1 30000 0 0 b 1 -2"] {
            assert!(parse_extra_info(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_low_watermark_is_the_lowest_open_lease_or_next() {
        let lease = Lease { pop_time_ms: 1, invisible_until_ms: 2 };
        let mut q = QueueState { next: 10, leases: BTreeMap::new() };
        assert_eq!(q.low_watermark(), 10);
        q.leases.insert(7, lease);
        q.leases.insert(4, lease);
        assert_eq!(q.low_watermark(), 4);
    }
}
