//! Transactions (4.9.4's `EndTransactionProcessor`, `TransactionalMessageServiceImpl` and
//! `TransactionalMessageCheckService`): END_TRANSACTION commits or rolls back a half message, and
//! the check-back service asks the producer group about half messages left unresolved.
//!
//! * The send path stores a half message in `RMQ_SYS_TRANS_HALF_TOPIC` queue 0 with `REAL_TOPIC`
//!   and `REAL_QID`. Its queue offset there is the transaction's `tranStateTableOffset`.
//! * Commit stores the message in its real topic and queue with sysFlag commit and
//!   `preparedTransactionOffset` = the half message's CommitLog offset (and through the schedule
//!   topic if it has `DELAY`). Commit and rollback then write an op message to
//!   `RMQ_SYS_TRANS_OP_HALF_TOPIC` queue 0: tag `d`, body = the half message's queue offset.
//! * Every `transactionCheckInterval` the check-back service reads the half queue from its
//!   consumed offset (group `CID_RMQ_SYS_TRANS`), skips resolved half messages, and for each older
//!   than `transactionTimeOut` (or its `CHECK_IMMUNITY_TIME_IN_SECONDS`) sends
//!   CHECK_TRANSACTION_STATE to one live connection of its producer group (`PGROUP`). After
//!   `transactionCheckMax` checks the message goes to `TRANS_CHECK_MAX_TIME_TOPIC`. The consumed
//!   offsets of the half and op queues then move past the resolved prefix.
//!
//! Where this differs from 4.9.4 (clients see the same protocol):
//! * Check counts are kept in memory (starting from the stored `TRANSACTION_CHECK_TIMES`, if
//!   any), instead of re-appending the half message with the count + 1 at each check. So a
//!   transaction keeps one half message and every END_TRANSACTION for it names the same offsets;
//!   the CHECK body carries the count as `TRANSACTION_CHECK_TIMES` as 4.9.4's copy would. After a
//!   restart the counts start again from the stored property.
//! * A half message is resolved once: a second commit or rollback for it (a late answer, the
//!   answers to two checks) is acknowledged and ignored, so a committed message is stored once.
//! * A half message moved to `TRANS_CHECK_MAX_TIME_TOPIC` also gets an op record, so a late
//!   commit cannot deliver it any more.
//! * END_TRANSACTION refuses an offset that does not hold a message of the half topic.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::delay::remove_property;
use super::error::{Error, Result};
use super::send::{HALF_TOPIC, OP_HALF_TOPIC, apply_delay, put};
use super::{BrokerInner, Role, ok};
use crate::protocol::message_id::offset_msg_id;
use crate::protocol::{self, Headers, PERM_READ, PERM_WRITE, request, response};
use crate::remoting::{Connection, RemotingCommand};
use crate::store::format::{
    MessageInput, PROPERTY_DELAY, PROPERTY_REAL_QUEUE_ID, PROPERTY_REAL_TOPIC, PROPERTY_SEPARATOR, PROPERTY_UNIQ_KEY,
    Placement, SYS_FLAG_TRANSACTION_MASK, Scanned, StoredRecord, TRANSACTION_COMMIT_TYPE, TRANSACTION_ROLLBACK_TYPE,
    check_lengths, encode_record, scan_record,
};
use crate::store::{GetStatus, now_ms};

/// The consumer group under which the half and op queues' consumed offsets are kept.
pub const CHECK_GROUP: &str = "CID_RMQ_SYS_TRANS";
/// Where half messages checked `transactionCheckMax` times go.
pub const CHECK_MAX_TIME_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// The only half (and op) queue.
pub const HALF_QUEUE_ID: u32 = 0;
/// Longest a check round runs (Java: `MAX_PROCESS_TIME_LIMIT`).
pub const CHECK_ROUND_TIME_MAX: Duration = Duration::from_secs(60);
/// The op message tag meaning "resolved" (Java: `TransactionalMessageUtil.REMOVETAG`).
pub const OP_TAG_REMOVE: &str = "d";

const PROPERTY_TRAN_MSG: &str = "TRAN_MSG";
const PROPERTY_PGROUP: &str = "PGROUP";
const PROPERTY_TRANSACTION_ID: &str = "__transactionId__";
const PROPERTY_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
const PROPERTY_CHECK_IMMUNITY_S: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
const PROPERTY_TAGS: &str = "TAGS";
/// Half or op units read per store call.
const READ_MESSAGES_MAX: usize = 64;
const READ_BYTES_MAX: usize = 1024 * 1024;

/// What the broker knows about the half queue: which half messages are resolved, and how often
/// each open one was checked. Loaded from the op queue at start.
#[derive(Default)]
pub struct Transactions {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    loaded: bool,
    /// The half queue's consumed offset: every half message below it is resolved.
    half_offset: u64,
    /// Next op queue offset to read.
    op_next: u64,
    /// Op records read, for half offsets at or above `half_offset`: half offset → op offset.
    done: BTreeMap<u64, u64>,
    /// Resolutions made by this process, for half offsets at or above `half_offset`.
    local: HashMap<u64, Local>,
    /// Checks sent per open half message.
    checks: HashMap<u64, u32>,
    /// The (half, op) offsets last given to the consumer offset table.
    committed: Option<(u64, u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Local {
    /// Its final message or op record is being stored.
    InFlight,
    Resolved,
}

/// Where a half message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HalfStatus {
    Open,
    InFlight,
    Resolved,
}

impl State {
    fn status(&self, half_offset: u64) -> HalfStatus {
        if half_offset < self.half_offset || self.done.contains_key(&half_offset) {
            return HalfStatus::Resolved;
        }
        match self.local.get(&half_offset) {
            Some(Local::InFlight) => HalfStatus::InFlight,
            Some(Local::Resolved) => HalfStatus::Resolved,
            None => HalfStatus::Open,
        }
    }
}

impl Transactions {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the consumed offsets and the op records after them, once.
    pub fn load(&self, broker: &BrokerInner) {
        if self.lock().loaded {
            return;
        }
        let half_offset = consumed_offset(broker, HALF_TOPIC);
        let op_offset = consumed_offset(broker, OP_HALF_TOPIC);
        let (ops, op_next) = read_ops(broker, op_offset);
        let mut s = self.lock();
        if s.loaded {
            return;
        }
        s.half_offset = half_offset;
        s.op_next = op_next;
        for (half, op) in ops {
            if half >= half_offset {
                s.done.entry(half).or_insert(op);
            }
        }
        s.committed = Some((half_offset, op_offset));
        s.loaded = true;
        tracing::info!(half_offset, op_offset, resolved = s.done.len(), "transaction state loaded");
    }

    /// Where the half message at `half_offset` stands.
    pub fn status(&self, half_offset: u64) -> HalfStatus {
        self.lock().status(half_offset)
    }

    /// Marks an open half message as being resolved; false if it is not open.
    fn claim(&self, half_offset: u64) -> bool {
        let mut s = self.lock();
        if s.status(half_offset) != HalfStatus::Open {
            return false;
        }
        s.local.insert(half_offset, Local::InFlight);
        true
    }

    /// Ends a claim: resolved, or open again (the store refused the final message).
    fn finish(&self, half_offset: u64, resolved: bool) {
        let mut s = self.lock();
        if resolved {
            s.local.insert(half_offset, Local::Resolved);
        } else {
            s.local.remove(&half_offset);
        }
    }

    /// Checks sent so far for a half message, if any were sent by this process.
    fn checks(&self, half_offset: u64) -> Option<u32> {
        self.lock().checks.get(&half_offset).copied()
    }

    fn set_checks(&self, half_offset: u64, checks: u32) {
        self.lock().checks.insert(half_offset, checks);
    }

    /// Reads the op records written since the last read.
    fn catch_up(&self, broker: &BrokerInner) {
        let from = self.lock().op_next;
        let (ops, next) = read_ops(broker, from);
        let mut s = self.lock();
        if s.op_next != from {
            return;
        }
        for (half, op) in ops {
            if half >= s.half_offset {
                s.done.entry(half).or_insert(op);
            }
        }
        s.op_next = next;
    }

    /// Moves the half queue's consumed offset to `half_offset` (everything below is resolved)
    /// and the op queue's past every op record no longer needed; records both.
    fn advance(&self, broker: &BrokerInner, half_offset: u64) {
        let (half, op) = {
            let mut s = self.lock();
            s.half_offset = s.half_offset.max(half_offset);
            let h = s.half_offset;
            s.done = s.done.split_off(&h);
            s.local.retain(|&k, _| k >= h);
            s.checks.retain(|&k, _| k >= h);
            let op = s.done.values().min().copied().unwrap_or(s.op_next);
            if s.committed == Some((h, op)) {
                return;
            }
            s.committed = Some((h, op));
            (h, op)
        };
        // The half offset first: a snapshot taken in between keeps an older op offset, which
        // only means reading more op records after a restart.
        broker.commit_offset(CHECK_GROUP, HALF_TOPIC, HALF_QUEUE_ID, half as i64);
        broker.commit_offset(CHECK_GROUP, OP_HALF_TOPIC, HALF_QUEUE_ID, op as i64);
    }
}

/// The recorded consumed offset of a queue under [`CHECK_GROUP`], or the queue's first offset.
fn consumed_offset(broker: &BrokerInner, topic: &str) -> u64 {
    let min = broker.store.min_offset(topic, HALF_QUEUE_ID);
    let recorded = broker.meta.consumer_offsets().offset(topic, CHECK_GROUP, HALF_QUEUE_ID);
    recorded.and_then(|o| u64::try_from(o).ok()).map_or(min, |o| o.max(min))
}

/// The op records from `from` to the end of the op queue, as (half offset, op offset), and the
/// offset after the last unit read.
fn read_ops(broker: &BrokerInner, from: u64) -> (Vec<(u64, u64)>, u64) {
    let mut ops = Vec::new();
    let mut at = from;
    loop {
        let r = broker.store.get_messages(OP_HALF_TOPIC, HALF_QUEUE_ID, at, READ_MESSAGES_MAX, READ_BYTES_MAX, None);
        match r.status {
            GetStatus::Found => {}
            GetStatus::OffsetTooSmall | GetStatus::NoMatchedMessage | GetStatus::OffsetFoundNull
                if r.next_begin_offset > at =>
            {
                at = r.next_begin_offset;
                continue;
            }
            _ => break,
        }
        for (record, &op_offset) in r.messages.iter().zip(&r.queue_offsets) {
            if let Scanned::Record(rec) = scan_record(record, false)
                && rec.property(PROPERTY_TAGS) == Some(OP_TAG_REMOVE)
                && let Some(half) = std::str::from_utf8(rec.body).ok().and_then(|b| b.trim().parse::<u64>().ok())
            {
                ops.push((half, op_offset));
            }
        }
        if r.next_begin_offset <= at {
            break;
        }
        at = r.next_begin_offset;
    }
    (ops, at)
}

/// `text` (encoded properties) with `key` set to `value`, in place of any earlier entry.
pub(super) fn with_property(text: &str, key: &str, value: &str) -> String {
    let mut out = remove_property(text, key);
    if !out.is_empty() && !out.ends_with(PROPERTY_SEPARATOR) {
        out.push(PROPERTY_SEPARATOR);
    }
    out.push_str(key);
    out.push('\u{1}');
    out.push_str(value);
    out
}

/// The op message that marks the half message at `half_offset` resolved. Its properties are
/// what 4.9.4 stores (`new Message(topic, "d", body)`: WAIT then TAGS in HashMap order).
fn op_message(broker: &BrokerInner, half_offset: u64) -> MessageInput {
    MessageInput {
        topic: OP_HALF_TOPIC.to_owned(),
        queue_id: HALF_QUEUE_ID,
        flag: 0,
        body: half_offset.to_string().into_bytes(),
        properties: format!("WAIT\u{1}true\u{2}{PROPERTY_TAGS}\u{1}{OP_TAG_REMOVE}"),
        sys_flag: 0,
        born_timestamp: now_ms(),
        born_host: broker.store_host,
        store_host: broker.store_host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

/// Writes the op record of a resolved half message. A failure is logged: the half message stays
/// resolved for this process, and after a restart it may be checked again.
async fn put_op(broker: &Arc<BrokerInner>, half_offset: u64) {
    broker.topics.create_if_absent(OP_HALF_TOPIC, 1, PERM_READ | PERM_WRITE, 0);
    if let Err(e) = put(broker, vec![op_message(broker, half_offset)]).await {
        tracing::error!(half_offset, error = %e, "could not store the transaction op record");
    }
}

/// The END_TRANSACTION header.
struct EndHeader {
    producer_group: String,
    tran_state_table_offset: i64,
    commit_log_offset: i64,
    commit_or_rollback: i32,
    from_transaction_check: bool,
    msg_id: String,
}

impl EndHeader {
    fn decode(req: &RemotingCommand) -> Result<EndHeader> {
        Ok(EndHeader {
            producer_group: req.required("producerGroup")?,
            tran_state_table_offset: req.required("tranStateTableOffset")?,
            commit_log_offset: req.required("commitLogOffset")?,
            commit_or_rollback: req.required("commitOrRollback")?,
            from_transaction_check: req.optional("fromTransactionCheck")?.unwrap_or(false),
            msg_id: req.optional("msgId")?.unwrap_or_default(),
        })
    }
}

/// END_TRANSACTION (37). Clients send it oneway; a caller that waits gets SUCCESS, or
/// SYSTEM_ERROR with 4.9.4's remark when the half message does not match the header.
pub async fn end_transaction(
    broker: &Arc<BrokerInner>,
    conn: &Connection,
    req: &RemotingCommand,
) -> Result<RemotingCommand> {
    if broker.role() == Role::Slave {
        return Ok(RemotingCommand::error(
            response::SLAVE_NOT_AVAILABLE,
            "the broker is a slave and does not end transactions",
        ));
    }
    let h = EndHeader::decode(req)?;
    let commit = match h.commit_or_rollback {
        TRANSACTION_COMMIT_TYPE => true,
        TRANSACTION_ROLLBACK_TYPE => false,
        other => {
            // 0: the producer does not know yet; the check-back will ask again.
            tracing::debug!(peer = %conn.peer(), msg_id = h.msg_id, state = other, "END_TRANSACTION without an outcome ignored");
            return Ok(ok());
        }
    };
    if h.from_transaction_check {
        tracing::debug!(peer = %conn.peer(), msg_id = h.msg_id, commit, "END_TRANSACTION answering a check");
    }
    let not_found = || Error::System("Find prepared transaction message failed".into());
    let stored =
        u64::try_from(h.commit_log_offset).ok().and_then(|o| broker.store.message_at(o)).ok_or_else(not_found)?;
    let Scanned::Record(rec) = scan_record(&stored, false) else {
        return Err(not_found());
    };
    if rec.topic != HALF_TOPIC {
        return Err(not_found());
    }
    if rec.property(PROPERTY_PGROUP) != Some(h.producer_group.as_str()) {
        return Err(Error::System("The producer group wrong".into()));
    }
    if i64::try_from(rec.queue_offset).ok() != Some(h.tran_state_table_offset) {
        return Err(Error::System("The transaction state table offset wrong".into()));
    }
    if i64::try_from(rec.physical_offset).ok() != Some(h.commit_log_offset) {
        return Err(Error::System("The commit log offset wrong".into()));
    }
    let final_message = if commit { Some(committed_message(broker, &rec, h.commit_log_offset)?) } else { None };
    let half_offset = rec.queue_offset;

    let tx = &broker.transactions;
    tx.load(broker);
    if !tx.claim(half_offset) {
        tracing::debug!(
            half_offset,
            msg_id = h.msg_id,
            commit,
            "transaction already resolved; END_TRANSACTION ignored"
        );
        return Ok(ok().with_remark("the transaction is already resolved"));
    }
    if let Some(msg) = final_message
        && let Err(e) = put(broker, vec![msg]).await
    {
        tx.finish(half_offset, false);
        return Err(e);
    }
    put_op(broker, half_offset).await;
    tx.finish(half_offset, true);
    Ok(ok())
}

/// The message a commit stores: the half message in its real topic and queue, sysFlag commit,
/// `preparedTransactionOffset` = the half message's offset. Its properties are the half
/// message's, unchanged, as 4.9.4 stores them (it clears `REAL_TOPIC`, `REAL_QID` and `TRAN_MSG`
/// from the property map only after the property string was made). With `DELAY` it goes to the
/// schedule topic, with the string rebuilt from that map as 4.9.4's CommitLog does.
fn committed_message(broker: &BrokerInner, rec: &StoredRecord<'_>, commit_log_offset: i64) -> Result<MessageInput> {
    let real_topic = rec.property(PROPERTY_REAL_TOPIC).filter(|t| !t.is_empty());
    let real_queue = rec.property(PROPERTY_REAL_QUEUE_ID).and_then(|q| q.trim().parse::<u32>().ok());
    let (Some(real_topic), Some(real_queue)) = (real_topic, real_queue) else {
        return Err(Error::System("the half message has no REAL_TOPIC/REAL_QID".into()));
    };
    let mut msg = rec.to_input();
    msg.topic = real_topic.to_owned();
    msg.queue_id = real_queue;
    msg.sys_flag = (msg.sys_flag & !SYS_FLAG_TRANSACTION_MASK) | TRANSACTION_COMMIT_TYPE;
    msg.prepared_transaction_offset = commit_log_offset;
    let delayed = rec.property(PROPERTY_DELAY).and_then(|d| d.trim().parse::<i64>().ok()).is_some_and(|d| d > 0);
    if delayed {
        let mut props = protocol::parse_properties(rec.properties);
        props.retain(|(k, _)| k != PROPERTY_TRAN_MSG && k != PROPERTY_REAL_TOPIC && k != PROPERTY_REAL_QUEUE_ID);
        apply_delay(&mut msg, &mut props, broker.config.message_delay_level_ms.len());
        msg.properties = protocol::encode_properties(props.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    Ok(msg)
}

/// Starts the check-back service (masters only, as in 4.9.4).
pub fn start(broker: &Arc<BrokerInner>) -> Vec<JoinHandle<()>> {
    if broker.role() == Role::Slave {
        return Vec::new();
    }
    broker.transactions.load(broker);
    vec![tokio::spawn(check_loop(broker.clone()))]
}

async fn check_loop(broker: Arc<BrokerInner>) {
    let interval = Duration::from_millis(broker.config.transaction_check_interval_ms.max(1));
    loop {
        tokio::time::sleep(interval).await;
        if broker.is_stopping() {
            return;
        }
        check_round(&broker).await;
    }
}

/// What one half message needs.
enum Verdict {
    Resolved,
    /// Open (checked, or not due yet) or being resolved.
    Pending,
    /// This and every later half message are too young: end the round.
    Stop,
}

/// The limits of one check round.
struct Round {
    started_ms: i64,
    timeout_ms: i64,
    check_max: u32,
    reserved_ms: i64,
}

/// One pass over the half queue from its consumed offset.
pub async fn check_round(broker: &Arc<BrokerInner>) {
    let tx = &broker.transactions;
    tx.load(broker);
    tx.catch_up(broker);
    let round = Round {
        started_ms: now_ms(),
        timeout_ms: i64::try_from(broker.config.transaction_time_out_ms).unwrap_or(i64::MAX),
        check_max: broker.config.transaction_check_max,
        reserved_ms: i64::try_from(broker.config.file_reserved_time_hours.saturating_mul(3_600_000))
            .unwrap_or(i64::MAX),
    };
    let deadline = Instant::now() + CHECK_ROUND_TIME_MAX;
    let mut resolved_below = tx.lock().half_offset;
    let mut contiguous = true;
    let mut at = resolved_below;
    'scan: while Instant::now() < deadline && !broker.is_stopping() {
        let r = broker.store.get_messages(HALF_TOPIC, HALF_QUEUE_ID, at, READ_MESSAGES_MAX, READ_BYTES_MAX, None);
        match r.status {
            GetStatus::Found => {}
            // Units whose messages are gone (retention) or padding: nothing left to resolve.
            GetStatus::OffsetTooSmall | GetStatus::NoMatchedMessage | GetStatus::OffsetFoundNull
                if r.next_begin_offset > at =>
            {
                at = r.next_begin_offset;
                if contiguous {
                    resolved_below = at;
                }
                continue;
            }
            _ => break,
        }
        for (record, &half_offset) in r.messages.iter().zip(&r.queue_offsets) {
            if contiguous && half_offset > at {
                resolved_below = half_offset;
            }
            at = half_offset + 1;
            let resolved = match examine(broker, &round, record, half_offset).await {
                Verdict::Resolved => true,
                Verdict::Pending => false,
                Verdict::Stop => break 'scan,
            };
            if contiguous {
                if resolved {
                    resolved_below = half_offset + 1;
                } else {
                    contiguous = false;
                }
            }
        }
        at = at.max(r.next_begin_offset);
    }
    tx.advance(broker, resolved_below);
}

/// Decides about one half message: skip, discard, wait, or check.
async fn examine(broker: &Arc<BrokerInner>, round: &Round, record: &[u8], half_offset: u64) -> Verdict {
    let tx = &broker.transactions;
    match tx.status(half_offset) {
        HalfStatus::Resolved => return Verdict::Resolved,
        HalfStatus::InFlight => return Verdict::Pending,
        HalfStatus::Open => {}
    }
    let Scanned::Record(rec) = scan_record(record, false) else {
        tracing::error!(half_offset, "unreadable half message; skipped");
        return Verdict::Resolved;
    };
    let age_ms = now_ms().saturating_sub(rec.born_timestamp);
    let checks = tx
        .checks(half_offset)
        .unwrap_or_else(|| rec.property(PROPERTY_CHECK_TIMES).and_then(|v| v.trim().parse::<u32>().ok()).unwrap_or(0));
    if checks >= round.check_max || age_ms > round.reserved_ms {
        return discard(broker, &rec, half_offset, checks).await;
    }
    if rec.store_timestamp >= round.started_ms {
        return Verdict::Stop;
    }
    match rec.property(PROPERTY_CHECK_IMMUNITY_S) {
        Some(s) => {
            let immunity_ms = match s.trim().parse::<i64>() {
                Ok(secs) if secs != -1 => secs.saturating_mul(1000),
                _ => round.timeout_ms,
            };
            if age_ms < immunity_ms {
                return Verdict::Pending;
            }
        }
        None if (0..round.timeout_ms).contains(&age_ms) => return Verdict::Stop,
        None => {}
    }
    if let Some(commit) = rec.property(PROPERTY_PGROUP).and_then(|g| super::plugins::check_half(broker, &rec, g)) {
        return resolve_by_plugin(broker, &rec, half_offset, commit).await;
    }
    tx.set_checks(half_offset, checks + 1);
    send_check(broker, &rec, checks + 1);
    Verdict::Pending
}

/// Commits or rolls back a half message as the producer group's checker plugin decided, the way
/// END_TRANSACTION would.
async fn resolve_by_plugin(
    broker: &Arc<BrokerInner>,
    rec: &StoredRecord<'_>,
    half_offset: u64,
    commit: bool,
) -> Verdict {
    let tx = &broker.transactions;
    let offset = i64::try_from(rec.physical_offset).unwrap_or(i64::MAX);
    let message = if commit {
        match committed_message(broker, rec, offset) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(half_offset, error = %e, "the checker plugin committed a half message that cannot be committed");
                return Verdict::Pending;
            }
        }
    } else {
        None
    };
    if !tx.claim(half_offset) {
        return Verdict::Pending;
    }
    if let Some(m) = message
        && let Err(e) = put(broker, vec![m]).await
    {
        tracing::warn!(half_offset, error = %e, "could not store the message the checker plugin committed");
        tx.finish(half_offset, false);
        return Verdict::Pending;
    }
    put_op(broker, half_offset).await;
    tx.finish(half_offset, true);
    tracing::debug!(half_offset, commit, "half message resolved by the checker plugin");
    Verdict::Resolved
}

/// Moves a half message checked `transactionCheckMax` times (or older than the CommitLog's
/// retention) to `TRANS_CHECK_MAX_TIME_TOPIC` and marks it resolved.
async fn discard(broker: &Arc<BrokerInner>, rec: &StoredRecord<'_>, half_offset: u64, checks: u32) -> Verdict {
    let tx = &broker.transactions;
    if !tx.claim(half_offset) {
        return Verdict::Pending;
    }
    tracing::warn!(
        half_offset,
        checks,
        group = rec.property(PROPERTY_PGROUP).unwrap_or(""),
        msg_id = rec.property(PROPERTY_UNIQ_KEY).unwrap_or(""),
        "transaction never resolved; half message moved to {CHECK_MAX_TIME_TOPIC}"
    );
    broker.topics.create_if_absent(CHECK_MAX_TIME_TOPIC, 1, PERM_READ | PERM_WRITE, 0);
    let mut msg = rec.to_input();
    msg.topic = CHECK_MAX_TIME_TOPIC.to_owned();
    msg.queue_id = 0;
    msg.prepared_transaction_offset = 0;
    let with_count = with_property(rec.properties, PROPERTY_CHECK_TIMES, &checks.to_string());
    if with_count.len() <= crate::store::format::PROPERTIES_BYTES_MAX {
        msg.properties = with_count;
    }
    if let Err(e) = put(broker, vec![msg]).await {
        tracing::warn!(half_offset, error = %e, "could not move the half message; will try again");
        tx.finish(half_offset, false);
        return Verdict::Pending;
    }
    put_op(broker, half_offset).await;
    tx.finish(half_offset, true);
    Verdict::Resolved
}

/// Sends CHECK_TRANSACTION_STATE (oneway) for a half message to one live connection of its
/// producer group. The body is the message as stored, with its real topic and queue and the check
/// count as `TRANSACTION_CHECK_TIMES`.
fn send_check(broker: &BrokerInner, rec: &StoredRecord<'_>, checks: u32) {
    let Some(group) = rec.property(PROPERTY_PGROUP) else {
        tracing::warn!(half_offset = rec.queue_offset, "half message without PGROUP; cannot check it");
        return;
    };
    let Some(conn) = broker.clients.producer_channel(group) else {
        tracing::warn!(
            group,
            half_offset = rec.queue_offset,
            "check transaction failed: no live producer of the group"
        );
        return;
    };
    let mut msg = rec.to_input();
    if let Some(topic) = rec.property(PROPERTY_REAL_TOPIC).filter(|t| !t.is_empty()) {
        msg.topic = topic.to_owned();
    }
    if let Some(queue) = rec.property(PROPERTY_REAL_QUEUE_ID).and_then(|q| q.trim().parse::<u32>().ok()) {
        msg.queue_id = queue;
    }
    msg.properties = with_property(rec.properties, PROPERTY_CHECK_TIMES, &checks.to_string());
    if check_lengths(&msg).is_err() {
        msg.properties = rec.properties.to_owned();
    }
    if check_lengths(&msg).is_err() {
        msg.topic = rec.topic.to_owned();
    }
    let mut body = Vec::with_capacity(msg.record_bytes());
    let placement = Placement {
        queue_offset: rec.queue_offset,
        physical_offset: rec.physical_offset,
        store_timestamp: rec.store_timestamp,
    };
    encode_record(&msg, placement, &mut body);
    let uniq = rec.property(PROPERTY_UNIQ_KEY);
    let mut cmd = RemotingCommand::request(request::CHECK_TRANSACTION_STATE)
        .with_field("tranStateTableOffset", rec.queue_offset)
        .with_field("commitLogOffset", rec.physical_offset)
        .with_field("offsetMsgId", offset_msg_id(rec.store_host, rec.physical_offset));
    if let Some(id) = uniq {
        cmd = cmd.with_field("msgId", id);
    }
    if let Some(id) = uniq.or_else(|| rec.property(PROPERTY_TRANSACTION_ID)) {
        cmd = cmd.with_field("transactionId", id);
    }
    if conn.send_oneway(cmd.with_body(body)) {
        tracing::debug!(group, half_offset = rec.queue_offset, checks, peer = %conn.peer(), "sent CHECK_TRANSACTION_STATE");
    } else {
        tracing::warn!(group, half_offset = rec.queue_offset, peer = %conn.peer(), "could not send CHECK_TRANSACTION_STATE");
    }
}
