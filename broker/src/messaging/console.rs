//! The operations behind the web console (`/dashboard/`) on this process's broker: group
//! members, offset reset with a preview (online or offline groups), bounded queries by time,
//! per-group delivery status, dead-letter resend and the cluster overview. [`LocalMessaging`]'s
//! [`Messaging`](super::Messaging) implementation delegates here. Also the shapes of the AMQP
//! door's read-only view ([`AmqpConsole`]), which `gateway-amqp` implements and `gateway-http`
//! serves.
//!
//! Limits:
//!
//! | limit | value |
//! |---|---|
//! | messages one query by time returns | [`TIME_QUERY_MESSAGES_MAX`], 256 |
//! | messages one query by time reads per queue | [`TIME_QUERY_SCAN_PER_QUEUE_MAX`], 2,048 |
//! | dead letters remembered as resent | [`RESENT_REMEMBERED_MAX`], 10,000 |
//! | one call to a name server or broker | [`CALL_TIMEOUT_MS`], 3,000 ms |

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use super::local::{LocalMessaging, decode_message};
use super::{
    BrokerStatus, ClusterOverview, Delivery, Durability, Error, GroupRuntime, Member, Message, OffsetReset, Published,
    ResetTo, Result, TimeQuery, TopicRoute,
};
use crate::admin::body::ResetOffsetBody;
use crate::processor::send::put_replicated;
use crate::protocol::body::{self, ClusterInfo, KvTable, MessageQueue, TopicRouteData};
use crate::protocol::message_id::{decode_offset_msg_id, offset_msg_id};
use crate::protocol::{PERM_READ, PERM_WRITE, dlq_topic, request, response, retry_topic};
use crate::remoting::RemotingCommand;
use crate::store::format::{PROPERTY_UNIQ_KEY, Scanned, scan_record};

/// Messages one query by time returns at most.
pub const TIME_QUERY_MESSAGES_MAX: usize = 256;
/// Messages one query by time reads from each queue at most (then the answer is `partial`).
pub const TIME_QUERY_SCAN_PER_QUEUE_MAX: u64 = 2048;
/// Dead letters remembered as resent (the oldest are forgotten first).
pub const RESENT_REMEMBERED_MAX: usize = 10_000;
/// One call to a name server or another broker, ms.
pub const CALL_TIMEOUT_MS: u64 = 3_000;
/// The property naming the topic a redelivered or dead-letter message was first sent to.
const PROPERTY_RETRY_TOPIC: &str = "RETRY_TOPIC";
/// Bytes one read of a queue may return.
const READ_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Messages one read of a queue returns.
const READ_BATCH: usize = 64;

/// A dead letter: `(group, offset message id)`.
type DeadLetterKey = (String, String);

/// Dead letters already sent back, with their results; the oldest are forgotten first.
#[derive(Default)]
struct ResentTable {
    results: HashMap<DeadLetterKey, Published>,
    order: VecDeque<DeadLetterKey>,
}

/// Dead letters already sent back: `(group, dead-letter offset message id)` → the result.
#[derive(Default)]
pub struct Resent {
    done: Mutex<ResentTable>,
}

impl Resent {
    fn get(&self, key: &DeadLetterKey) -> Option<Published> {
        self.done.lock().unwrap_or_else(|e| e.into_inner()).results.get(key).cloned()
    }

    fn insert(&self, key: DeadLetterKey, p: Published) {
        let mut d = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if d.results.insert(key.clone(), p).is_none() {
            d.order.push_back(key);
        }
        while d.order.len() > RESENT_REMEMBERED_MAX {
            if let Some(old) = d.order.pop_front() {
                d.results.remove(&old);
            }
        }
    }
}

impl LocalMessaging {
    pub(super) fn console_group_runtime(&self, group: &str) -> GroupRuntime {
        let b = self.broker();
        b.clients
            .with_group(group, |g| {
                let mut members: Vec<Member> = g
                    .members
                    .values()
                    .map(|m| Member {
                        client_id: m.client_id.clone(),
                        addr: m.conn.peer().to_string(),
                        language: m.language.to_owned(),
                        version: m.version,
                    })
                    .collect();
                members.sort_by(|a, b| a.client_id.cmp(&b.client_id));
                let mut subscriptions: Vec<(String, String)> =
                    g.subscriptions.iter().map(|(t, s)| (t.clone(), s.data.sub_string.clone())).collect();
                subscriptions.sort();
                GroupRuntime {
                    members,
                    subscriptions,
                    consume_type: g.consume_type.clone(),
                    message_model: g.message_model.clone(),
                }
            })
            .unwrap_or_default()
    }

    pub(super) fn console_reset_offsets(
        &self,
        group: &str,
        topic: &str,
        to: ResetTo,
        dry_run: bool,
    ) -> Result<Vec<OffsetReset>> {
        let b = self.broker();
        let Some(tc) = b.topics.get(topic) else {
            return Err(Error::TopicNotFound(format!("topic {topic} does not exist")));
        };
        if b.groups.get(group).is_none() && b.clients.with_group(group, |_| ()).is_none() {
            let has_offsets = b.meta.consumer_offsets().offsets(topic, group).is_some();
            if !has_offsets {
                return Err(Error::GroupNotFound(format!("group {group} does not exist")));
            }
        }
        let committed = b.meta.consumer_offsets().offsets(topic, group).cloned().unwrap_or_default();
        let mut out = Vec::new();
        let mut table = ResetOffsetBody::default();
        for queue_id in 0..tc.read_queue_nums.max(tc.write_queue_nums) {
            let max = b.store.max_offset(topic, queue_id);
            let target = match to {
                ResetTo::Earliest => b.store.min_offset(topic, queue_id),
                ResetTo::Latest => max,
                ResetTo::Timestamp(ms) => b.store.offset_by_time(topic, queue_id, ms),
            };
            let current = committed.get(&queue_id).copied().filter(|o| *o >= 0).map(|o| o as u64);
            out.push(OffsetReset {
                topic: topic.to_owned(),
                queue_id,
                current,
                target,
                lag_after: max.saturating_sub(target),
            });
            table.offset_table.insert(
                MessageQueue { broker_name: b.config.broker_name.clone(), queue_id, topic: topic.to_owned() },
                target as i64,
            );
        }
        if dry_run {
            return Ok(out);
        }
        for r in &out {
            b.commit_offset(group, topic, r.queue_id, r.target as i64);
        }
        b.persist_offsets();
        // Online consumers keep offsets in memory: tell them, as RESET_OFFSET (222) does.
        let members = b.clients.consumer_members(group);
        let timestamp = match to {
            ResetTo::Timestamp(ms) => ms,
            ResetTo::Latest => -1,
            ResetTo::Earliest => 0,
        };
        let encoded = table.to_json();
        for m in &members {
            m.conn.send_oneway(
                RemotingCommand::request(request::RESET_CONSUMER_CLIENT_OFFSET)
                    .with_field("topic", topic)
                    .with_field("group", group)
                    .with_field("timestamp", timestamp)
                    .with_field("isForce", true)
                    .with_body(encoded.clone()),
            );
        }
        tracing::info!(group, topic, ?to, online = members.len(), "Consumer offsets reset from the console.");
        Ok(out)
    }

    pub(super) fn console_messages_by_time(
        &self,
        topic: &str,
        begin_ms: i64,
        end_ms: i64,
        max: usize,
    ) -> Result<TimeQuery> {
        let b = self.broker();
        let Some(tc) = b.topics.get(topic) else {
            return Err(Error::TopicNotFound(format!("topic {topic} does not exist")));
        };
        if end_ms < begin_ms {
            return Err(Error::BadRequest(format!("end {end_ms} is before begin {begin_ms}")));
        }
        let max = max.clamp(1, TIME_QUERY_MESSAGES_MAX);
        let mut out = TimeQuery::default();
        for queue_id in 0..tc.read_queue_nums {
            let queue_max = b.store.max_offset(topic, queue_id);
            let mut offset = b.store.offset_by_time(topic, queue_id, begin_ms);
            let mut read = 0u64;
            'queue: while offset < queue_max {
                if read >= TIME_QUERY_SCAN_PER_QUEUE_MAX || out.messages.len() >= max {
                    out.partial = true;
                    break;
                }
                let got = b.store.get_messages(topic, queue_id, offset, READ_BATCH, READ_BYTES_MAX, None);
                if got.messages.is_empty() {
                    break;
                }
                for r in &got.messages {
                    read += 1;
                    let Some(m) = decode_message(b.store_host, r) else { continue };
                    if m.store_timestamp_ms > end_ms {
                        break 'queue;
                    }
                    if out.messages.len() >= max {
                        out.partial = true;
                        break 'queue;
                    }
                    out.messages.push(m);
                }
                if got.next_begin_offset <= offset {
                    break;
                }
                offset = got.next_begin_offset;
            }
        }
        out.messages.sort_by_key(|m| (m.store_timestamp_ms, m.queue_id, m.queue_offset));
        Ok(out)
    }

    pub(super) fn console_delivery(&self, message: &Message) -> Vec<Delivery> {
        let b = self.broker();
        let topic = &message.topic;
        let mut groups: BTreeSet<String> = b.clients.groups_of_topic(topic).into_iter().collect();
        groups.extend(b.meta.consumer_offsets().groups_of_topic(topic).into_iter().map(str::to_owned));
        groups
            .into_iter()
            .map(|group| {
                let offset = b
                    .meta
                    .consumer_offsets()
                    .offset(topic, &group, message.queue_id)
                    .filter(|o| *o >= 0)
                    .map(|o| o as u64);
                let status = match offset {
                    Some(o) if o > message.queue_offset => "CONSUMED",
                    Some(_) => "NOT_CONSUMED_YET",
                    None => "NO_OFFSET",
                };
                Delivery { group, status, consumer_offset: offset }
            })
            .collect()
    }

    pub(super) async fn console_resend_dead_letter(&self, group: &str, message_id: &str) -> Result<Published> {
        let b = self.broker();
        let dlq = dlq_topic(group);
        if b.topics.get(&dlq).is_none() {
            return Err(Error::TopicNotFound(format!("group {group} has no dead-letter queue ({dlq})")));
        }
        let found = super::Messaging::message_by_id(self, &dlq, message_id).await?;
        let key = (group.to_owned(), found.offset_message_id.clone());
        if let Some(done) = self.resent.get(&key) {
            return Ok(done);
        }
        let Some((_, physical)) = decode_offset_msg_id(&found.offset_message_id) else {
            return Err(Error::Internal(format!("bad offset message id {}", found.offset_message_id)));
        };
        let Some(bytes) = b.store.message_at(physical) else {
            return Err(Error::MessageNotFound(format!("dead letter {message_id} is no longer stored")));
        };
        let Scanned::Record(rec) = scan_record(&bytes, false) else {
            return Err(Error::Internal(format!("dead letter {message_id} could not be read")));
        };
        // The topic the message was first sent to (the dead-letter copy names it).
        let original = crate::store::format::properties(rec.properties)
            .find(|(k, _)| *k == PROPERTY_RETRY_TOPIC)
            .map_or_else(|| found.topic.clone(), |(_, v)| v.to_owned());
        // Native (push/pull) consumers read %RETRY%<group>; pop consumers (the HTTP simple
        // consumer) read %RETRY%<group>_<topic>.
        let native_retry = retry_topic(group);
        let native = b.clients.subscription(group, &native_retry).is_some()
            || b.meta.consumer_offsets().offsets(&native_retry, group).is_some();
        let target = if native { native_retry } else { crate::processor::pop::pop_retry_topic(group, &original) };
        b.topics.create_if_absent(&target, 1, PERM_READ | PERM_WRITE, 0);
        let mut input = rec.to_input();
        input.topic = target.clone();
        input.queue_id = 0;
        input.reconsume_times = 0;
        input.store_host = b.store_host;
        let result = put_replicated(b, vec![input], true).await?;
        let Some(appended) = result.appended.messages.first() else {
            return Err(Error::Internal("the resend stored nothing".into()));
        };
        let uniq = crate::store::format::properties(rec.properties)
            .find(|(k, _)| *k == PROPERTY_UNIQ_KEY)
            .map(|(_, v)| v.to_owned());
        let offset_id = offset_msg_id(b.store_host, appended.physical_offset);
        let published = Published {
            message_id: uniq.unwrap_or_else(|| offset_id.clone()),
            offset_message_id: offset_id,
            topic: target,
            queue_id: 0,
            queue_offset: appended.queue_offset,
            status: "SEND_OK",
            durability: Durability::Memory,
            transaction_id: None,
        };
        tracing::info!(group, dead_letter = %found.offset_message_id, to = %published.topic, "Dead-letter message resent.");
        self.resent.insert(key, published.clone());
        Ok(published)
    }

    pub(super) async fn console_topic_route(&self, topic: &str) -> Result<TopicRoute> {
        let b = self.broker();
        let timeout = Duration::from_millis(CALL_TIMEOUT_MS);
        let mut last = None;
        for ns in &b.config.namesrv_addrs {
            let req = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_field("topic", topic);
            match b.client.invoke(ns, req, timeout).await {
                Ok(r) if r.code == response::SUCCESS => {
                    let route: TopicRouteData =
                        body::parse(&r.body).map_err(|e| Error::Internal(format!("malformed route from {ns}: {e}")))?;
                    let mut out = TopicRoute {
                        brokers: route.broker_datas.into_iter().map(|bd| (bd.broker_name, bd.broker_addrs)).collect(),
                        queues: route
                            .queue_datas
                            .into_iter()
                            .map(|q| (q.broker_name, q.read_queue_nums, q.write_queue_nums, q.perm))
                            .collect(),
                    };
                    out.brokers.sort();
                    out.queues.sort();
                    return Ok(out);
                }
                Ok(r) if r.code == response::TOPIC_NOT_EXIST => {
                    last = Some(Error::TopicNotFound(format!("no route for topic {topic} in the name server {ns}")));
                }
                Ok(r) => {
                    last = Some(Error::Unavailable(format!("{ns}: code {} {}", r.code, r.remark.unwrap_or_default())))
                }
                Err(e) => last = Some(Error::Unavailable(format!("{ns}: {e}"))),
            }
        }
        // No name server answered: this broker's own view.
        match (b.topics.get(topic), last) {
            (Some(tc), None) => Ok(TopicRoute {
                brokers: vec![(
                    b.config.broker_name.clone(),
                    BTreeMap::from([(b.config.broker_id as u64, b.broker_addr())]),
                )],
                queues: vec![(b.config.broker_name.clone(), tc.read_queue_nums, tc.write_queue_nums, tc.perm)],
            }),
            (_, Some(e)) => Err(e),
            (None, None) => Err(Error::TopicNotFound(format!("topic {topic} does not exist"))),
        }
    }

    pub(super) async fn console_cluster_overview(&self) -> Result<ClusterOverview> {
        let b = self.broker();
        let timeout = Duration::from_millis(CALL_TIMEOUT_MS);
        let own_addr = b.broker_addr();
        let mut overview = ClusterOverview { name_servers: b.config.namesrv_addrs.clone(), ..Default::default() };
        let mut info: Option<ClusterInfo> = None;
        let mut errors = Vec::new();
        for ns in &b.config.namesrv_addrs {
            match b.client.invoke(ns, RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO), timeout).await {
                Ok(r) if r.code == response::SUCCESS => match body::parse::<ClusterInfo>(&r.body) {
                    Ok(ci) => {
                        info = Some(ci);
                        break;
                    }
                    Err(e) => errors.push(format!("{ns}: malformed cluster info: {e}")),
                },
                Ok(r) => errors.push(format!("{ns}: code {} {}", r.code, r.remark.unwrap_or_default())),
                Err(e) => errors.push(format!("{ns}: {e}")),
            }
        }
        let mut listed: Vec<(String, String, i64, String)> = Vec::new();
        if let Some(ci) = &info {
            for (cluster, names) in &ci.cluster_addr_table {
                for name in names {
                    let Some(bd) = ci.broker_addr_table.get(name) else { continue };
                    for (id, addr) in &bd.broker_addrs {
                        listed.push((cluster.clone(), name.clone(), *id as i64, addr.clone()));
                    }
                }
            }
        }
        if !listed.iter().any(|(_, _, _, a)| *a == own_addr) {
            listed.push((
                b.config.broker_cluster_name.clone(),
                b.config.broker_name.clone(),
                b.config.broker_id,
                own_addr.clone(),
            ));
        }
        listed.sort();
        for (cluster, name, id, addr) in listed {
            let (runtime, error) = if addr == own_addr {
                (crate::processor::admin::runtime_info(b), None)
            } else {
                match b.client.invoke(&addr, RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO), timeout).await
                {
                    Ok(r) if r.code == response::SUCCESS => match body::parse::<KvTable>(&r.body) {
                        Ok(kv) => (kv.table, None),
                        Err(e) => (BTreeMap::new(), Some(format!("malformed runtime info: {e}"))),
                    },
                    Ok(r) => (BTreeMap::new(), Some(format!("code {} {}", r.code, r.remark.unwrap_or_default()))),
                    Err(e) => (BTreeMap::new(), Some(e.to_string())),
                }
            };
            overview.brokers.push(BrokerStatus { cluster, name, id, addr, runtime, error });
        }
        if info.is_none() && !errors.is_empty() {
            overview.name_server_error = Some(errors.join("; "));
        }
        Ok(overview)
    }
}

// The AMQP door's state as the console shows it. The door (`gateway-amqp`) implements
// [`AmqpConsole`]; the HTTP door (`gateway-http`) serves it under `/v1/amqp/...`; `mqbroker`
// hands the one to the other, so neither gateway depends on the other.

/// A boxed future of the AMQP view (the trait is used as `dyn AmqpConsole`).
pub type AmqpFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A read-only view of the AMQP door: exchanges, bindings, queues with their depth,
/// unacknowledged messages and consumers. Nothing here changes the door's state.
pub trait AmqpConsole: Send + Sync {
    /// Counts, and the messages ready and unacknowledged over the first queues (bounded).
    fn overview(&self) -> AmqpFuture<'_, AmqpOverview>;
    /// Every exchange, by name (the default exchange is the empty name).
    fn exchanges(&self) -> Vec<AmqpExchange>;
    /// Every binding declared on an exchange, by source, destination and key (the default
    /// exchange's implicit binding to every queue is not listed).
    fn bindings(&self) -> Vec<AmqpBinding>;
    /// Every queue's name, sorted (paging and search need nothing more).
    fn queue_names(&self) -> Vec<String>;
    /// The named queues (unknown names are skipped), each with its figures when its actor
    /// answered in time.
    fn queues(&self, names: Vec<String>) -> AmqpFuture<'_, Vec<AmqpQueue>>;
}

/// Counts over the whole door.
#[derive(Clone, Debug, Default)]
pub struct AmqpOverview {
    pub connections: u64,
    pub channels: u64,
    pub consumers: u64,
    pub exchanges: usize,
    pub queues: usize,
    pub bindings: usize,
    /// Messages ready over the queues counted.
    pub messages_ready: u64,
    /// Messages delivered and not yet acknowledged over the queues counted.
    pub messages_unacked: u64,
    /// Queues whose figures are in the two sums (the first ones by name, bounded; those that
    /// answered in time).
    pub queues_counted: usize,
}

/// An exchange.
#[derive(Clone, Debug)]
pub struct AmqpExchange {
    pub name: String,
    /// `direct`, `fanout`, `topic` or `headers`.
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    /// The declare arguments as JSON (an object).
    pub arguments: serde_json::Value,
    /// Bindings from this exchange.
    pub bindings: usize,
}

/// A binding from an exchange to a queue or another exchange.
#[derive(Clone, Debug)]
pub struct AmqpBinding {
    pub source: String,
    pub destination: String,
    /// `queue` or `exchange`.
    pub destination_type: &'static str,
    pub routing_key: String,
    /// The binding arguments as JSON (an object).
    pub arguments: serde_json::Value,
}

/// A queue and, when its actor answered, its figures.
#[derive(Clone, Debug)]
pub struct AmqpQueue {
    pub name: String,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    /// The declare arguments as JSON (an object).
    pub arguments: serde_json::Value,
    /// The RocketMQ topic holding the queue's messages.
    pub topic: String,
    /// The consumer group holding the queue's committed frontier.
    pub group: String,
    pub figures: Option<AmqpQueueFigures>,
}

/// A queue's figures as its actor holds them.
#[derive(Clone, Debug, Default)]
pub struct AmqpQueueFigures {
    /// Messages ready for delivery (stored past the read positions, plus requeued ones).
    pub ready: u64,
    /// Messages delivered and not yet acknowledged.
    pub unacked: u64,
    pub consumers: Vec<AmqpConsumer>,
}

/// A consumer of a queue.
#[derive(Clone, Debug)]
pub struct AmqpConsumer {
    pub tag: String,
    /// The connection's number in this door.
    pub connection: u64,
    /// The client's address.
    pub peer: String,
    pub channel: u16,
    /// `basic.qos` prefetch of the consumer (0: no limit).
    pub prefetch: u16,
    /// `basic.qos` prefetch of its channel, `global` (0: no limit).
    pub channel_prefetch: u16,
    /// Manual acknowledgement (`no-ack` off).
    pub manual_ack: bool,
    pub exclusive: bool,
    /// Messages delivered to it and not yet acknowledged.
    pub unacked: u64,
}
