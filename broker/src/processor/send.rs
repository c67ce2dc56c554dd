//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320): header checks, topic
//! auto-creation, retry/DLQ redirection, half messages, delay levels, then the store.

use std::sync::Arc;

use bytes::Bytes;

use super::error::{Error, Result};
use super::{BrokerInner, Role};
use crate::protocol::message_id::offset_msg_id;
use crate::protocol::{
    self, DLQ_GROUP_TOPIC_PREFIX, Headers, PERM_READ, PERM_WRITE, RETRY_GROUP_TOPIC_PREFIX, TopicConfig,
    TopicFilterType, dlq_topic, request, response,
};
use crate::remoting::{Connection, RemotingCommand};
use crate::store::format::{
    MessageInput, SCHEDULE_TOPIC, SYS_FLAG_MULTI_TAGS, SYS_FLAG_TRANSACTION_MASK, TRANSACTION_COMMIT_TYPE,
    TRANSACTION_NOT_TYPE,
};
use crate::store::{PutResult, PutStatus};

pub const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
pub const OP_HALF_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
const PROPERTY_WAIT: &str = "WAIT";
const PROPERTY_CLUSTER: &str = "CLUSTER";
const PROPERTY_TRAN_MSG: &str = "TRAN_MSG";
const PROPERTY_DELAY: &str = "DELAY";
const PROPERTY_REAL_TOPIC: &str = "REAL_TOPIC";
const PROPERTY_REAL_QID: &str = "REAL_QID";
const PROPERTY_UNIQ_KEY: &str = "UNIQ_KEY";
/// A batch body item's fixed part: totalSize, magic, bodyCRC, flag, bodyLen.
const BATCH_ITEM_FIXED_BYTES: usize = 20;
/// Version ordinal of 3.4.9: newer clients' maxReconsumeTimes header is honoured.
const VERSION_3_4_9: i32 = 121;

/// The send header, from either the long (V1) or the one-letter (V2) field names.
pub struct SendHeader {
    pub producer_group: String,
    pub topic: String,
    pub default_topic: String,
    pub default_topic_queue_nums: u32,
    pub queue_id: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub flag: i32,
    pub properties: String,
    pub reconsume_times: i32,
    pub unit_mode: bool,
    pub max_reconsume_times: Option<i32>,
    pub batch: bool,
}

impl SendHeader {
    pub fn decode(req: &RemotingCommand) -> Result<SendHeader> {
        let v2 = req.code != request::SEND_MESSAGE;
        let f = |long: &'static str, short: &'static str| if v2 { short } else { long };
        let e = &req.ext_fields;
        Ok(SendHeader {
            producer_group: e.required(f("producerGroup", "a"))?,
            topic: e.required(f("topic", "b"))?,
            default_topic: e
                .optional(f("defaultTopic", "c"))?
                .unwrap_or_else(|| protocol::AUTO_CREATE_TOPIC.to_owned()),
            default_topic_queue_nums: e.optional(f("defaultTopicQueueNums", "d"))?.unwrap_or(4),
            queue_id: e.required(f("queueId", "e"))?,
            sys_flag: e.optional(f("sysFlag", "f"))?.unwrap_or(0),
            born_timestamp: e.optional(f("bornTimestamp", "g"))?.unwrap_or(0),
            flag: e.optional(f("flag", "h"))?.unwrap_or(0),
            properties: e.optional(f("properties", "i"))?.unwrap_or_default(),
            reconsume_times: e.optional(f("reconsumeTimes", "j"))?.unwrap_or(0),
            unit_mode: e.optional(f("unitMode", "k"))?.unwrap_or(false),
            max_reconsume_times: e.optional(f("maxReconsumeTimes", "l"))?,
            batch: e.optional(f("batch", "m"))?.unwrap_or(false) || req.code == request::SEND_BATCH_MESSAGE,
        })
    }
}

/// Checks the broker and topic state for a send to `topic`; creates the topic from the default
/// topic when allowed. Returns the topic's config.
pub fn check_and_create_topic(broker: &BrokerInner, h: &SendHeader) -> Result<Arc<TopicConfig>> {
    if broker.role() == Role::Slave {
        return Err(Error::ServiceNotAvailable(format!(
            "the broker[{}] is a slave and does not accept messages",
            broker.config.broker_name
        )));
    }
    if broker.permission() & PERM_WRITE == 0 {
        return Err(Error::NoPermission(format!(
            "the broker[{}] sending message is forbidden",
            broker.config.broker_name
        )));
    }
    protocol::check_topic_name(&h.topic).map_err(Error::System)?;
    if protocol::is_system_topic(&h.topic) {
        return Err(Error::NoPermission(format!("Sending message to topic[{}] is forbidden.", h.topic)));
    }
    let tc = match broker.topics.get(&h.topic) {
        Some(tc) => tc,
        None => {
            let sys_flag =
                if h.unit_mode { if h.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) { 3 } else { 1 } } else { 0 };
            let created = if broker.config.auto_create_topic_enable || h.default_topic != protocol::AUTO_CREATE_TOPIC {
                broker.topics.create_on_send(&h.topic, &h.default_topic, h.default_topic_queue_nums, sys_flag)
            } else {
                None
            };
            match created {
                Some(tc) => tc,
                None if h.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) => {
                    broker.topics.create_if_absent(&h.topic, 1, PERM_READ | PERM_WRITE, sys_flag)
                }
                None => {
                    return Err(Error::TopicNotExist(format!("topic[{}] not exist, apply first please!", h.topic)));
                }
            }
        }
    };
    if tc.perm & PERM_WRITE == 0 {
        return Err(Error::NoPermission(format!("the topic[{}] sending message is forbidden", h.topic)));
    }
    let queues = tc.write_queue_nums.max(tc.read_queue_nums) as i32;
    if h.queue_id >= queues {
        return Err(Error::System(format!(
            "request queueId[{}] is illegal, {} Producer: {}",
            h.queue_id, tc.topic_name, h.producer_group
        )));
    }
    Ok(tc)
}

/// Properties with `WAIT` removed and `CLUSTER` set, re-encoded; plus the parsed list.
fn broker_properties(broker: &BrokerInner, text: &str) -> Vec<(String, String)> {
    let mut props = protocol::parse_properties(text);
    props.retain(|(k, _)| k != PROPERTY_WAIT && k != PROPERTY_CLUSTER);
    props.push((PROPERTY_CLUSTER.to_owned(), broker.config.broker_cluster_name.clone()));
    props
}

fn encode(props: &[(String, String)]) -> String {
    protocol::encode_properties(props.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn get_prop<'a>(props: &'a [(String, String)], key: &str) -> Option<&'a str> {
    props.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn set_prop(props: &mut Vec<(String, String)>, key: &str, value: String) {
    match props.iter_mut().find(|(k, _)| k == key) {
        Some(p) => p.1 = value,
        None => props.push((key.to_owned(), value)),
    }
}

/// Rewrites a message with a delay level for the schedule topic (4.9.4 does this in the
/// CommitLog): `SCHEDULE_TOPIC_XXXX`, queue level-1, the real topic and queue kept as
/// properties. Levels above the highest configured are clamped.
pub fn apply_delay(msg: &mut MessageInput, props: &mut Vec<(String, String)>, levels: usize) {
    let tran = msg.sys_flag & SYS_FLAG_TRANSACTION_MASK;
    if tran != TRANSACTION_NOT_TYPE && tran != TRANSACTION_COMMIT_TYPE {
        return;
    }
    let Some(level) = get_prop(props, PROPERTY_DELAY).and_then(|v| v.trim().parse::<i64>().ok()) else {
        return;
    };
    if level <= 0 || levels == 0 {
        return;
    }
    let level = (level as usize).min(levels);
    set_prop(props, PROPERTY_DELAY, level.to_string());
    set_prop(props, PROPERTY_REAL_TOPIC, msg.topic.clone());
    set_prop(props, PROPERTY_REAL_QID, msg.queue_id.to_string());
    msg.topic = SCHEDULE_TOPIC.to_owned();
    msg.queue_id = (level - 1) as u32;
}

/// SEND_MESSAGE / SEND_MESSAGE_V2.
pub async fn send_message(
    broker: &Arc<BrokerInner>,
    conn: &Connection,
    req: &RemotingCommand,
) -> Result<RemotingCommand> {
    let h = SendHeader::decode(req)?;
    if h.batch { send_batch(broker, conn, req, h).await } else { send_one(broker, conn, req, h).await }
}

async fn send_one(
    broker: &Arc<BrokerInner>,
    conn: &Connection,
    req: &RemotingCommand,
    mut h: SendHeader,
) -> Result<RemotingCommand> {
    let mut tc = check_and_create_topic(broker, &h)?;
    let wait = waits_for_store(&h.properties);
    let mut props = broker_properties(broker, &h.properties);
    let mut queue_id = if h.queue_id < 0 { pick_queue(tc.write_queue_nums) } else { h.queue_id as u32 };
    // A router plugin bound to the topic may move the message (`processor::plugins`).
    if let Some((topic, routed, queue)) =
        super::plugins::route_send(broker, &tc, queue_id, &h.properties, &req.body, h.born_timestamp)?
    {
        (h.topic, tc, queue_id) = (topic, routed, queue);
    }

    // A consumer resending to %RETRY%group: past the group's limit it goes to the DLQ.
    if h.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
        let group = &h.topic[RETRY_GROUP_TOPIC_PREFIX.len()..];
        let Some(gc) = broker.groups.find_or_create(group) else {
            return Err(Error::SubscriptionGroupNotExist(format!("subscription group not exist, {group}")));
        };
        let mut max = gc.retry_max_times;
        if req.version > VERSION_3_4_9
            && let Some(m) = h.max_reconsume_times
        {
            max = m;
        }
        if h.reconsume_times >= max {
            let dlq = dlq_topic(group);
            tc = broker.topics.create_if_absent(&dlq, 1, PERM_READ | PERM_WRITE, 0);
            h.topic = dlq;
            queue_id = 0;
            props.retain(|(k, _)| k != PROPERTY_DELAY);
        }
    }

    let mut sys_flag = h.sys_flag;
    if tc.topic_filter_type == TopicFilterType::MultiTag {
        sys_flag |= SYS_FLAG_MULTI_TAGS;
    }
    let mut msg = MessageInput {
        topic: h.topic.clone(),
        queue_id,
        flag: h.flag,
        body: req.body.to_vec(),
        properties: String::new(),
        sys_flag,
        born_timestamp: h.born_timestamp,
        born_host: conn.peer(),
        store_host: broker.store_host,
        reconsume_times: h.reconsume_times,
        prepared_transaction_offset: 0,
    };

    // A retried message that still carries TRAN_MSG (old clients resend committed messages) is not a
    // new half message: 4.9.4 exempts reconsumed messages with a delay level.
    let delayed = get_prop(&props, PROPERTY_DELAY).and_then(|v| v.trim().parse::<i64>().ok()).is_some_and(|l| l > 0);
    let half = get_prop(&props, PROPERTY_TRAN_MSG).is_some_and(|v| v.eq_ignore_ascii_case("true"))
        && !(h.reconsume_times > 0 && delayed);
    if half {
        // A transactional half message: kept in the half topic until committed.
        set_prop(&mut props, PROPERTY_REAL_TOPIC, msg.topic.clone());
        set_prop(&mut props, PROPERTY_REAL_QID, msg.queue_id.to_string());
        msg.sys_flag &= !SYS_FLAG_TRANSACTION_MASK;
        msg.topic = HALF_TOPIC.to_owned();
        msg.queue_id = 0;
        broker.topics.create_if_absent(HALF_TOPIC, 1, PERM_READ | PERM_WRITE, 0);
    } else {
        apply_delay(&mut msg, &mut props, broker.config.message_delay_level_ms.len());
    }
    msg.properties = encode(&props);
    let body_bytes = msg.body.len() as u64;
    let result = put_replicated(broker, vec![msg], wait).await?;
    broker.metrics.record_in(crate::metrics::Protocol::Remoting, &h.topic, 1, body_bytes);
    Ok(send_response(broker, &result, queue_id))
}

/// SEND_BATCH_MESSAGE.
async fn send_batch(
    broker: &Arc<BrokerInner>,
    conn: &Connection,
    req: &RemotingCommand,
    h: SendHeader,
) -> Result<RemotingCommand> {
    if h.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) || h.topic.starts_with(DLQ_GROUP_TOPIC_PREFIX) {
        return Err(Error::MessageIllegal("batch request does not support retry group topics".into()));
    }
    let mut tc = check_and_create_topic(broker, &h)?;
    let wait = waits_for_store(&h.properties);
    let mut queue_id = if h.queue_id < 0 { pick_queue(tc.write_queue_nums) } else { h.queue_id as u32 };
    let batch_props_list = broker_properties(broker, &h.properties);
    let items = decode_batch(&req.body)?;
    let Some(first) = items.first() else {
        return Err(Error::MessageIllegal("empty batch".into()));
    };
    // A batch is one append to one queue: a router bound to the topic decides for the whole batch
    // from its first message.
    let mut topic = h.topic.clone();
    if let Some(routed) =
        super::plugins::route_send(broker, &tc, queue_id, &first.properties, &first.body, h.born_timestamp)?
    {
        (topic, tc, queue_id) = routed;
    }
    let mut sys_flag = h.sys_flag;
    if tc.topic_filter_type == TopicFilterType::MultiTag {
        sys_flag |= SYS_FLAG_MULTI_TAGS;
    }
    let mut batch = Vec::with_capacity(items.len());
    for item in items {
        let mut properties = item.properties;
        if protocol::property(&properties, PROPERTY_DELAY).is_some() {
            return Err(Error::MessageIllegal("batch messages do not support delay levels".into()));
        }
        // The request's properties (CLUSTER, WAIT...) go on every item, as 4.9.4 appends them; but
        // never over a key the item has (the Rust client puts a UNIQ_KEY on the batch itself, and
        // readers keep the last value of a repeated key).
        let extra: Vec<(&str, &str)> = batch_props_list
            .iter()
            .filter(|(k, _)| k != PROPERTY_UNIQ_KEY && protocol::property(&properties, k).is_none())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if !extra.is_empty() {
            if !properties.is_empty() && !properties.ends_with('\u{2}') {
                properties.push('\u{2}');
            }
            properties.push_str(&protocol::encode_properties(extra));
        }
        batch.push(MessageInput {
            topic: topic.clone(),
            queue_id,
            flag: item.flag,
            body: item.body.to_vec(),
            properties,
            sys_flag,
            born_timestamp: h.born_timestamp,
            born_host: conn.peer(),
            store_host: broker.store_host,
            reconsume_times: h.reconsume_times,
            prepared_transaction_offset: 0,
        });
    }
    let (count, body_bytes) = (batch.len() as u64, batch.iter().map(|m| m.body.len() as u64).sum());
    let result = put_replicated(broker, batch, wait).await?;
    broker.metrics.record_in(crate::metrics::Protocol::Remoting, &topic, count, body_bytes);
    Ok(send_response(broker, &result, queue_id))
}

/// One item of a batch body.
pub struct BatchItem {
    pub flag: i32,
    pub body: Bytes,
    pub properties: String,
}

/// Splits a SEND_BATCH_MESSAGE body: [totalSize][magic][bodyCRC][flag][bodyLen][body]
/// [propLen i16][properties] per item, every length checked.
pub fn decode_batch(body: &Bytes) -> Result<Vec<BatchItem>> {
    let bad = |why: &str| Error::MessageIllegal(format!("malformed batch body: {why}"));
    let mut items = Vec::new();
    let mut at = 0usize;
    let b = &body[..];
    while at < b.len() {
        if b.len() - at < BATCH_ITEM_FIXED_BYTES {
            return Err(bad("item header cut short"));
        }
        let int = |o: usize| i32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let total = int(at);
        let flag = int(at + 12);
        let body_len = int(at + 16);
        if total < BATCH_ITEM_FIXED_BYTES as i32 + 2 || body_len < 0 {
            return Err(bad("negative or short length"));
        }
        let (total, body_len) = (total as usize, body_len as usize);
        if total > b.len() - at || BATCH_ITEM_FIXED_BYTES + body_len + 2 > total {
            return Err(bad("lengths run past the item"));
        }
        let body_start = at + BATCH_ITEM_FIXED_BYTES;
        let item_body = body.slice(body_start..body_start + body_len);
        let p = body_start + body_len;
        let prop_len = i16::from_be_bytes([b[p], b[p + 1]]);
        if prop_len < 0 || p + 2 + prop_len as usize > at + total {
            return Err(bad("properties run past the item"));
        }
        let props =
            std::str::from_utf8(&b[p + 2..p + 2 + prop_len as usize]).map_err(|_| bad("properties are not UTF-8"))?;
        items.push(BatchItem { flag, body: item_body, properties: props.to_owned() });
        at += total;
    }
    Ok(items)
}

/// Appends through the store without blocking the runtime: the result arrives once the batch is
/// as durable as `flushDiskType` asks.
pub async fn put(broker: &Arc<BrokerInner>, batch: Vec<MessageInput>) -> Result<PutResult> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    broker.store.put_messages_then(&batch, move |r| {
        let _ = tx.send(r);
    });
    let result = rx.await.map_err(|_| Error::System("the store dropped the put".into()))??;
    broker.stats.record_put(batch.len() as u64);
    Ok(result)
}

/// `WAIT` (`waitStoreMsgOK`): absent or anything but "false" means the producer waits for the
/// store (and, under SYNC_MASTER, for the slave).
fn waits_for_store(properties: &str) -> bool {
    protocol::property(properties, PROPERTY_WAIT).is_none_or(|v| !v.trim().eq_ignore_ascii_case("false"))
}

/// [`put`], then under SYNC_MASTER the wait for a slave: a send is answered only once a slave
/// has the message, or with FLUSH_SLAVE_TIMEOUT after `slaveTimeout`, or at once with
/// SLAVE_NOT_AVAILABLE when no slave is fit. The message is stored in every case. Without
/// `wait` (`WAIT=false`) nothing is waited for: neither the flush nor the slave.
pub async fn put_replicated(broker: &Arc<BrokerInner>, batch: Vec<MessageInput>, wait: bool) -> Result<PutResult> {
    start_put_replicated(broker, batch, wait).await
}

/// [`put_replicated`] in two steps: the batch is appended before this returns (so calls keep
/// their order), and the future answers once it is as durable as `wait` asks. A publisher can
/// append its next batch while the previous one waits for its flush or its slave.
pub fn start_put_replicated(
    broker: &Arc<BrokerInner>,
    batch: Vec<MessageInput>,
    wait: bool,
) -> impl Future<Output = Result<PutResult>> + Send + 'static {
    let (tx, rx) = tokio::sync::oneshot::channel::<crate::store::Result<PutResult>>();
    let count = batch.len() as u64;
    let sync_master = match &broker.ha_master {
        Some(m) if wait && broker.role() == Role::SyncMaster => Some(Arc::clone(m)),
        _ => None,
    };
    if !wait {
        // `WAIT=false`: stored, answered PUT_OK without waiting for a flush or a slave (4.9.4).
        let _ = tx.send(broker.store.put_messages_unwaited(&batch));
    } else if let Some(master) = sync_master {
        // The store's completion registers the wait for the slave, whose answer completes the
        // send: one wake-up of the waiting task, no timer per send.
        let timeout = std::time::Duration::from_millis(broker.config.slave_timeout_ms);
        broker.store.put_messages_then(&batch, move |r| match r {
            Err(e) => {
                let _ = tx.send(Err(e));
            }
            Ok(mut result) => {
                let end = result.appended.end_offset;
                master.wait_then(
                    end,
                    timeout,
                    Box::new(move |replicated| {
                        match replicated {
                            crate::ha::Replicated::Yes => {}
                            crate::ha::Replicated::TimedOut => result.status = PutStatus::FlushSlaveTimeout,
                            crate::ha::Replicated::SlaveNotAvailable => {
                                result.status = PutStatus::SlaveNotAvailable;
                            }
                        }
                        let _ = tx.send(Ok(result));
                    }),
                );
            }
        });
    } else {
        broker.store.put_messages_then(&batch, move |r| {
            let _ = tx.send(r);
        });
    }
    let broker = Arc::clone(broker);
    async move {
        let result = rx.await.map_err(|_| Error::System("the store dropped the put".into()))??;
        broker.stats.record_put(count);
        Ok(result)
    }
}

fn send_response(broker: &BrokerInner, result: &PutResult, queue_id: u32) -> RemotingCommand {
    let code = match result.status {
        PutStatus::Ok => response::SUCCESS,
        PutStatus::FlushDiskTimeout => response::FLUSH_DISK_TIMEOUT,
        PutStatus::FlushSlaveTimeout => response::FLUSH_SLAVE_TIMEOUT,
        PutStatus::SlaveNotAvailable => response::SLAVE_NOT_AVAILABLE,
    };
    let ids: Vec<String> =
        result.appended.messages.iter().map(|m| offset_msg_id(broker.store_host, m.physical_offset)).collect();
    let first_offset = result.appended.messages.first().map(|m| m.queue_offset).unwrap_or(0);
    RemotingCommand::response(code)
        .with_field("msgId", ids.join(","))
        .with_field("queueId", queue_id)
        .with_field("queueOffset", first_offset)
        .with_field("MSG_REGION", "DefaultRegion")
        .with_field("TRACE_ON", "true")
}

/// A queue for a request that left the choice to the broker (queueId < 0): round robin.
pub(crate) fn pick_queue(queues: u32) -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed) % queues.max(1)
}
