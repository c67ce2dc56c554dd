//! PULL_MESSAGE (11) with long polling: a pull that finds nothing waits (up to
//! `suspendTimeoutMillis`) until the dispatcher reports a new message for its queue, then runs
//! once more and answers whatever it finds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::Notify;

use super::error::{Error, Result};
use super::{BrokerInner, Role};
use crate::filter::{EncodedProperties, Subscription};
use crate::protocol::{Headers, PERM_READ, response};
use crate::remoting::RemotingCommand;
use crate::store::GetStatus;
use crate::store::format::{StoredRecord, scan_record};

const FLAG_COMMIT_OFFSET: i32 = 0x1;
const FLAG_SUSPEND: i32 = 0x2;
const FLAG_SUBSCRIPTION: i32 = 0x4;
/// Messages per pull response (Java: `maxTransferCountOnMessageInMemory`).
pub const PULL_MESSAGES_MAX: usize = 32;
/// Bytes per pull response (Java: `maxTransferBytesOnMessageInMemory`, 256 KiB).
pub const PULL_BYTES_MAX: usize = 256 * 1024;
/// Longest hold a client may ask for.
const SUSPEND_MS_MAX: u64 = 60_000;

/// Parked pulls, per topic and queue: woken by the store's arrival listener.
#[derive(Default)]
pub struct PullWaiters {
    queues: Mutex<HashMap<String, HashMap<u32, Arc<Notify>>>>,
}

impl PullWaiters {
    pub(crate) fn notify_for(&self, topic: &str, queue_id: u32) -> Arc<Notify> {
        let mut q = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = q.get(topic).and_then(|m| m.get(&queue_id)) {
            return n.clone();
        }
        q.entry(topic.to_owned()).or_default().entry(queue_id).or_insert_with(|| Arc::new(Notify::new())).clone()
    }

    /// Called from the store's dispatcher for each message made readable.
    pub fn arrived(&self, topic: &str, queue_id: u32) {
        let q = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = q.get(topic).and_then(|m| m.get(&queue_id)) {
            n.notify_waiters();
        }
    }
}

struct PullHeader {
    group: String,
    topic: String,
    queue_id: u32,
    queue_offset: u64,
    max_msg_nums: usize,
    sys_flag: i32,
    commit_offset: i64,
    suspend_ms: u64,
    subscription: Option<String>,
    sub_version: i64,
    expression_type: Option<String>,
}

impl PullHeader {
    fn decode(req: &RemotingCommand) -> Result<PullHeader> {
        let queue_id: i32 = req.required("queueId")?;
        let queue_offset: i64 = req.required("queueOffset")?;
        Ok(PullHeader {
            group: req.required("consumerGroup")?,
            topic: req.required("topic")?,
            queue_id: u32::try_from(queue_id).map_err(|_| Error::System(format!("queueId {queue_id} is illegal")))?,
            queue_offset: queue_offset.max(0) as u64,
            max_msg_nums: req.required::<i32>("maxMsgNums")?.max(1) as usize,
            sys_flag: req.required("sysFlag")?,
            commit_offset: req.optional("commitOffset")?.unwrap_or(-1),
            suspend_ms: req.optional::<i64>("suspendTimeoutMillis")?.unwrap_or(0).clamp(0, SUSPEND_MS_MAX as i64)
                as u64,
            subscription: req.optional("subscription")?,
            sub_version: req.optional("subVersion")?.unwrap_or(0),
            expression_type: req.optional("expressionType")?,
        })
    }
}

/// PULL_MESSAGE.
pub async fn pull_message(broker: &Arc<BrokerInner>, req: &RemotingCommand) -> Result<RemotingCommand> {
    let h = PullHeader::decode(req)?;
    if broker.permission() & PERM_READ == 0 {
        return Err(Error::NoPermission(format!(
            "the broker[{}] pulling message is forbidden",
            broker.config.broker_name
        )));
    }
    let Some(group) = broker.groups.find_or_create(&h.group) else {
        return Err(Error::SubscriptionGroupNotExist(format!("subscription group [{}] does not exist", h.group)));
    };
    if !group.consume_enable {
        return Err(Error::NoPermission(format!("subscription group no permission, {}", h.group)));
    }
    let Some(tc) = broker.topics.get(&h.topic) else {
        return Err(Error::TopicNotExist(format!("topic[{}] not exist, apply first please!", h.topic)));
    };
    if tc.perm & PERM_READ == 0 {
        return Err(Error::NoPermission(format!("the topic[{}] pulling message is forbidden", h.topic)));
    }
    if h.queue_id >= tc.read_queue_nums {
        return Err(Error::System(format!(
            "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
            h.queue_id, h.topic, tc.read_queue_nums
        )));
    }
    let filter: Arc<Subscription> = if h.sys_flag & FLAG_SUBSCRIPTION != 0 {
        let expr = h.subscription.as_deref().unwrap_or("*");
        Arc::new(Subscription::parse(h.expression_type.as_deref(), expr).map_err(|e| {
            Error::SubscriptionParseFailed(format!("parse the consumer's subscription[{expr}] failed: {e}"))
        })?)
    } else {
        if broker.clients.with_group(&h.group, |_| ()).is_none() {
            return Err(Error::SubscriptionNotExist(format!(
                "the consumer's group info not exist, group: {}",
                h.group
            )));
        }
        let Some(sub) = broker.clients.subscription(&h.group, &h.topic) else {
            return Err(Error::SubscriptionNotExist(format!(
                "the consumer's subscription not exist, topic: {}",
                h.topic
            )));
        };
        if sub.data.sub_version < h.sub_version {
            return Err(Error::SubscriptionNotLatest("the consumer's subscription not latest".into()));
        }
        sub.filter
    };

    if matches!(*filter, Subscription::Sql(_)) && !broker.config.enable_property_filter {
        return Err(Error::System("The broker does not support consumer to filter message by SQL92".into()));
    }
    if h.sys_flag & FLAG_COMMIT_OFFSET != 0 && h.commit_offset >= 0 && broker.role() != Role::Slave {
        broker.commit_offset(&h.group, &h.topic, h.queue_id, h.commit_offset);
    }

    let suspend = h.sys_flag & FLAG_SUSPEND != 0;
    let hold_ms = if broker.config.long_polling_enable { h.suspend_ms } else { broker.config.short_polling_time_ms };
    let max_count = h.max_msg_nums.min(PULL_MESSAGES_MAX);

    let first = read(broker, &h, &filter, max_count);
    if first.plugin_failed {
        // The group's filter plugin could not decide: answer "nothing yet" at the same offset,
        // after a pause, so the consumer neither skips messages nor spins.
        tokio::time::sleep(Duration::from_millis(crate::plugin::limits::FILTER_FAILURE_HOLD_MS)).await;
        return Ok(first.into_response());
    }
    if first.code != response::PULL_NOT_FOUND || !suspend || hold_ms == 0 {
        return Ok(first.into_response());
    }
    // Long polling: arm the waiter first, then re-check, so an arrival in between is not lost.
    let notify = broker.pulls.notify_for(&h.topic, h.queue_id);
    let notified = notify.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if broker.store.max_offset(&h.topic, h.queue_id) <= h.queue_offset {
        let _ = tokio::time::timeout(Duration::from_millis(hold_ms), notified).await;
    }
    Ok(read(broker, &h, &filter, max_count).into_response())
}

struct PullOutcome {
    code: i32,
    /// `suggestWhichBrokerId`: where the client should pull this queue from next.
    suggest_broker_id: u64,
    next_begin_offset: u64,
    min_offset: u64,
    max_offset: u64,
    body: Option<BytesMut>,
    /// A filter plugin bound to the group could not decide the first message.
    plugin_failed: bool,
}

impl PullOutcome {
    fn into_response(self) -> RemotingCommand {
        let mut r = RemotingCommand::response(self.code)
            .with_field("suggestWhichBrokerId", self.suggest_broker_id)
            .with_field("nextBeginOffset", self.next_begin_offset)
            .with_field("minOffset", self.min_offset)
            .with_field("maxOffset", self.max_offset);
        if let Some(body) = self.body {
            r.body = body.freeze();
        }
        r
    }
}

fn read(broker: &BrokerInner, h: &PullHeader, filter: &Subscription, max_count: usize) -> PullOutcome {
    let tag_filter = |code: i64| filter.matches_tags_code(code);
    let result =
        broker.store.get_messages(&h.topic, h.queue_id, h.queue_offset, max_count, PULL_BYTES_MAX, Some(&tag_filter));
    let mut code = match result.status {
        GetStatus::Found => response::SUCCESS,
        GetStatus::NoMatchedMessage => response::PULL_RETRY_IMMEDIATELY,
        GetStatus::NoMatchedLogicQueue | GetStatus::NoMessageInQueue => {
            if h.queue_offset != 0 {
                response::PULL_OFFSET_MOVED
            } else {
                response::PULL_NOT_FOUND
            }
        }
        GetStatus::OffsetFoundNull | GetStatus::OffsetOverflowOne => response::PULL_NOT_FOUND,
        GetStatus::OffsetOverflowBadly | GetStatus::OffsetTooSmall => response::PULL_OFFSET_MOVED,
    };
    let mut body = None;
    let mut next_begin_offset = result.next_begin_offset;
    let mut plugin_failed = false;
    if code == response::SUCCESS {
        let mut needs_props = matches!(filter, Subscription::Sql(_));
        let sql = match filter {
            Subscription::Sql(sql) if broker.config.sql_filter_engine == crate::filter::SqlFilterEngine::Plugin => {
                needs_props = false;
                Some(super::plugins::sql_pull(broker, sql.expression(), &result.messages))
            }
            _ => None,
        };
        let bound = super::plugins::filter_pull(broker, &h.group, &h.topic, &result.messages);
        let out = if let Some(pf) = super::plugins::PullFilter::and(bound, sql) {
            super::plugins::dead_letter_poison(broker, &h.group, &result.messages, &pf);
            // Fail closed: never move the offset past a message the plugin could not decide.
            if let Some(&stop) = result.queue_offsets.get(pf.decided) {
                next_begin_offset = stop;
                plugin_failed = pf.decided == 0;
            }
            super::plugins::filtered_body(&result.messages, &pf, |m| !needs_props || matches_message(filter, m))
        } else {
            let mut out = BytesMut::with_capacity(result.messages.iter().map(|m| m.len()).sum());
            for m in &result.messages {
                if needs_props && !matches_message(filter, m) {
                    continue;
                }
                out.extend_from_slice(m);
            }
            out
        };
        if plugin_failed {
            code = response::PULL_NOT_FOUND;
        } else if out.is_empty() {
            code = response::PULL_RETRY_IMMEDIATELY;
        } else {
            broker.stats.record_get(result.messages.len() as u64);
            let n = result.messages.len() as u64;
            broker.metrics.record_out(crate::metrics::Protocol::Remoting, &h.topic, n, out.len() as u64);
            body = Some(out);
        }
    }
    PullOutcome {
        code,
        suggest_broker_id: suggest_broker_id(broker, &h.group, result.messages.last()),
        next_begin_offset,
        min_offset: result.min_offset,
        max_offset: result.max_offset,
        body,
        plugin_failed,
    }
}

/// 4.9.4's read-from-slave hint: with `slaveReadEnable`, a consumer whose last pulled message is
/// further behind the CommitLog end than `accessMessageInMemoryMaxRatio` percent of RAM (no
/// longer in the page cache) is sent to the group's `whichBrokerWhenConsumeSlowly` (1), else to
/// its `brokerId` (0); without it, always to the master.
fn suggest_broker_id(broker: &BrokerInner, group: &str, last: Option<&bytes::Bytes>) -> u64 {
    if !broker.config.slave_read_enable {
        return 0;
    }
    let config = broker.groups.get(group);
    let (usual, slow) = config.map_or((0, 1), |g| (g.broker_id, g.which_broker_when_consume_slowly));
    let Some(pulled) = last.and_then(|m| m.get(28..36)).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes) else {
        return usual;
    };
    let behind = broker.store.commit_log_max_offset().saturating_sub(pulled);
    let in_memory = total_memory_bytes() / 100 * u64::from(broker.config.access_message_in_memory_max_ratio);
    if behind > in_memory { slow } else { usual }
}

/// MemTotal from `/proc/meminfo`, read once (8 GiB when it cannot be read).
fn total_memory_bytes() -> u64 {
    static TOTAL: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            })
            .unwrap_or(8 << 30)
    })
}

/// The full filter (SQL92 over properties) on one stored record.
fn matches_message(filter: &Subscription, record: &[u8]) -> bool {
    let Some(r) = decode(record) else {
        return false;
    };
    filter.matches_message(r.property("TAGS"), &EncodedProperties(r.properties))
}

fn decode(record: &[u8]) -> Option<StoredRecord<'_>> {
    match scan_record(record, false) {
        crate::store::format::Scanned::Record(r) => Some(r),
        _ => None,
    }
}
