//! The schedule service (4.9.4's `ScheduleMessageService`): delivers the messages parked in
//! `SCHEDULE_TOPIC_XXXX` once their delay level is due.
//!
//! * One task per level (`messageDelayLevel`) reads queue `level - 1` from the offset recorded in
//!   `delayOffset.json` (0 if none).
//! * A unit is due when its tags code, the delivery time the dispatcher wrote (store time + level
//!   delay), has passed. It is read from the ConsumeQueue itself: the `get_messages` filter sees
//!   each unit's tags code, so the filter passes due units and stops at the first one that is not.
//!   A delivery time further away than now + the level's delay (the clock went back) counts as due
//!   now.
//! * A due message is copied to `REAL_TOPIC` / `REAL_QID` with `DELAY` removed; `REAL_TOPIC` and
//!   `REAL_QID` stay, as in 4.9.4, and body, flag, sysFlag, born and store hosts, born time and
//!   reconsume times are kept (`preparedTransactionOffset` is not, as in 4.9.4's
//!   `messageTimeup`). The store computes the new tags code.
//! * The offset moves past a message only once its copy is stored. A failed copy is tried again
//!   [`RETRY_WAIT_MS`] later from the same offset; only a message the store can never take
//!   (too large, malformed) is skipped, with an error in the log.
//! * Nothing due: look again in [`IDLE_WAIT_MS`]. The offsets are written every
//!   [`PERSIST_INTERVAL_MS`] when they changed, and at shutdown ([`persist`]).
//! * A slave runs no timers (4.9.4 starts the service on masters only).

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::send::{HALF_TOPIC, put};
use super::{BrokerInner, Error, Role};
use crate::store::format::{
    PROPERTY_DELAY, PROPERTY_REAL_QUEUE_ID, PROPERTY_REAL_TOPIC, PROPERTY_SEPARATOR, SCHEDULE_TOPIC, Scanned,
    scan_record,
};
use crate::store::{self, GetResult, GetStatus, now_ms};

/// How long a level waits when nothing is due (Java: `DELAY_FOR_A_WHILE`).
pub const IDLE_WAIT_MS: u64 = 100;
/// How long a level waits after a failed re-put before it tries the same message again.
pub const RETRY_WAIT_MS: u64 = 1_000;
/// How often `delayOffset.json` is written (Java: `flushDelayOffsetInterval`).
pub const PERSIST_INTERVAL_MS: u64 = 10_000;
/// Units read from a level's queue per round.
const READ_MESSAGES_MAX: usize = 32;
/// Bytes read per round (a first message is read whatever its size).
const READ_BYTES_MAX: usize = 1024 * 1024;

/// Starts one timer per delay level, and the task that writes `delayOffset.json`.
pub fn start(broker: &Arc<BrokerInner>) -> Vec<JoinHandle<()>> {
    if broker.role() == Role::Slave {
        return Vec::new();
    }
    let mut tasks: Vec<JoinHandle<()>> = broker
        .config
        .message_delay_level_ms
        .iter()
        .enumerate()
        .map(|(i, &delay_ms)| {
            let level = Level { number: i as u32 + 1, delay_ms: i64::try_from(delay_ms).unwrap_or(i64::MAX) };
            tokio::spawn(level_loop(broker.clone(), level))
        })
        .collect();
    tasks.push(tokio::spawn(persist_loop(broker.clone())));
    tasks
}

/// Writes `delayOffset.json`.
pub fn persist(broker: &BrokerInner) {
    if let Err(e) = broker.meta.persist_delay_offsets() {
        tracing::error!(error = %e, "could not persist delayOffset.json");
    }
}

/// `text` (encoded properties) without the entries named `key`; everything else is kept byte for
/// byte, separators included.
pub(crate) fn remove_property(text: &str, key: &str) -> String {
    let kept: Vec<&str> =
        text.split(PROPERTY_SEPARATOR).filter(|item| item.split_once('\u{1}').is_none_or(|(k, _)| k != key)).collect();
    kept.join("\u{2}")
}

#[derive(Clone, Copy)]
struct Level {
    /// 1-based, as in `DELAY` and `delayOffset.json`.
    number: u32,
    delay_ms: i64,
}

impl Level {
    fn queue_id(self) -> u32 {
        self.number - 1
    }
}

/// How one round of a level ended.
#[derive(Debug, PartialEq, Eq)]
enum Round {
    /// Delivered or skipped something and found nothing blocking: go on at once.
    More,
    /// Nothing (more) is due.
    Idle,
    /// A re-put failed; the offset stays on that message.
    Failed,
}

async fn level_loop(broker: Arc<BrokerInner>, level: Level) {
    let mut offset = broker.meta.delay_offsets().offset(level.number).unwrap_or(0).max(0) as u64;
    loop {
        if broker.is_stopping() {
            return;
        }
        let wait_ms = match deliver_due(&broker, level, &mut offset).await {
            Round::More => {
                tokio::task::yield_now().await;
                continue;
            }
            Round::Idle => IDLE_WAIT_MS,
            Round::Failed => RETRY_WAIT_MS,
        };
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    }
}

/// Writes `delayOffset.json` every [`PERSIST_INTERVAL_MS`] if the table changed.
async fn persist_loop(broker: Arc<BrokerInner>) {
    let mut written = broker.meta.delay_offsets().clone();
    loop {
        tokio::time::sleep(Duration::from_millis(PERSIST_INTERVAL_MS)).await;
        let now = broker.meta.delay_offsets().clone();
        if now == written {
            continue;
        }
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || persist(&b)).await;
        written = now;
    }
}

/// The delivery time to act on: a time further ahead than the level's delay is due now.
pub(super) fn delivery_time(now_ms: i64, tags_code: i64, delay_ms: i64) -> i64 {
    if tags_code > now_ms.saturating_add(delay_ms) { now_ms } else { tags_code }
}

/// Reads the due messages from `offset`: the filter passes units until the first one that is
/// not due and refuses everything after it. Returns the read and whether a unit not yet due was
/// met.
fn read_due(broker: &BrokerInner, level: Level, offset: u64, now_ms: i64) -> (GetResult, bool) {
    let blocked = Cell::new(false);
    let due = |tags_code: i64| {
        if blocked.get() {
            return false;
        }
        let due = delivery_time(now_ms, tags_code, level.delay_ms) <= now_ms;
        blocked.set(!due);
        due
    };
    let result = broker.store.get_messages(
        SCHEDULE_TOPIC,
        level.queue_id(),
        offset,
        READ_MESSAGES_MAX,
        READ_BYTES_MAX,
        Some(&due),
    );
    (result, blocked.get())
}

/// One round of a level: delivers what is due from `offset` and moves it on.
async fn deliver_due(broker: &Arc<BrokerInner>, level: Level, offset: &mut u64) -> Round {
    let start = *offset;
    let (result, blocked) = read_due(broker, level, start, now_ms());
    match result.status {
        GetStatus::Found | GetStatus::NoMatchedMessage | GetStatus::OffsetFoundNull => {}
        GetStatus::OffsetTooSmall => {
            tracing::warn!(
                level = level.number,
                offset = start,
                min = result.min_offset,
                "delay offset below the queue; moved to its start"
            );
            set_offset(broker, level, offset, result.min_offset);
            return Round::More;
        }
        GetStatus::OffsetOverflowBadly => {
            tracing::warn!(
                level = level.number,
                offset = start,
                max = result.max_offset,
                "delay offset past the queue; moved to its end"
            );
            set_offset(broker, level, offset, result.max_offset);
            return Round::Idle;
        }
        GetStatus::NoMatchedLogicQueue | GetStatus::NoMessageInQueue | GetStatus::OffsetOverflowOne => {
            return Round::Idle;
        }
    }
    for (record, &queue_offset) in result.messages.iter().zip(&result.queue_offsets) {
        if broker.is_stopping() {
            return Round::Idle;
        }
        if !deliver_one(broker, level, record, queue_offset).await {
            return Round::Failed;
        }
        set_offset(broker, level, offset, queue_offset + 1);
    }
    // Units after the last message that were padding or already deleted need no delivery; past
    // a unit not yet due, `next_begin_offset` means nothing (the filter refused the rest).
    if !blocked && result.next_begin_offset > *offset {
        set_offset(broker, level, offset, result.next_begin_offset);
    }
    if !blocked && *offset > start { Round::More } else { Round::Idle }
}

fn set_offset(broker: &BrokerInner, level: Level, offset: &mut u64, value: u64) {
    *offset = value;
    broker.meta.delay_offsets().update(level.number, value as i64);
}

/// Copies one due message to its real topic and queue. False if it should be tried again later.
async fn deliver_one(broker: &Arc<BrokerInner>, level: Level, record: &[u8], queue_offset: u64) -> bool {
    let Scanned::Record(rec) = scan_record(record, false) else {
        tracing::error!(level = level.number, queue_offset, "unreadable record in the schedule queue; skipped");
        return true;
    };
    let real_topic = rec.property(PROPERTY_REAL_TOPIC).filter(|t| !t.is_empty());
    let real_queue = rec.property(PROPERTY_REAL_QUEUE_ID).and_then(|q| q.trim().parse::<u32>().ok());
    let (Some(real_topic), Some(real_queue)) = (real_topic, real_queue) else {
        tracing::error!(level = level.number, queue_offset, "delayed message without REAL_TOPIC/REAL_QID; skipped");
        return true;
    };
    if real_topic == HALF_TOPIC {
        tracing::error!(level = level.number, queue_offset, "delayed message for the half topic; skipped");
        return true;
    }
    let mut msg = rec.to_input();
    msg.topic = real_topic.to_owned();
    msg.queue_id = real_queue;
    msg.properties = remove_property(rec.properties, PROPERTY_DELAY);
    // 4.9.4's `messageTimeup` does not copy it.
    msg.prepared_transaction_offset = 0;
    match put(broker, vec![msg]).await {
        Ok(_) => true,
        Err(Error::Store(e @ (store::Error::MessageTooLarge { .. } | store::Error::InvalidMessage(_)))) => {
            tracing::error!(level = level.number, queue_offset, topic = real_topic, error = %e, "the store refuses the delayed message; skipped");
            true
        }
        Err(e) => {
            tracing::warn!(level = level.number, queue_offset, topic = real_topic, error = %e, "could not deliver a delayed message; will try again");
            false
        }
    }
}
