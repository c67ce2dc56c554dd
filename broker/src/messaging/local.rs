//! [`LocalMessaging`]: the [`Messaging`] operations on this process's broker, through the same
//! paths as the native door (topic checks and auto-creation, delay levels, half messages, pop).
//!
//! Differences a gateway user can see:
//! * `delay_ms` is rounded up to the broker's next delay level (`messageDelayLevel`), as a 4.x
//!   broker has no arbitrary delivery time; above the highest level it is that level.
//! * Committing or rolling back a half message goes through END_TRANSACTION on the broker's own
//!   native port (loopback), the same request a RocketMQ producer sends.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::receipt::{Handle, ReceiptKey};
use super::{
    BrokerView, Durability, Error, GroupInfo, Lease, Message, Messaging, OutgoingMessage, PullBatch, QueueProgress,
    Readiness, ReceiveRequest, Received, Result, TopicInfo,
};
use crate::filter::Subscription;
use crate::metrics::Protocol;
use crate::processor::pop::{self, LeaseOutcome, PopRequest, pop_retry_topic};
use crate::processor::send::{self, HALF_TOPIC, SendHeader, apply_delay, start_put_replicated};
use crate::processor::{BrokerInner, Role};
use crate::protocol::message_id::{UniqueIds, decode_offset_msg_id, offset_msg_id};
use crate::protocol::{self, PERM_READ, PERM_WRITE, RETRY_GROUP_TOPIC_PREFIX, request, response};
use crate::remoting::RemotingCommand;
use crate::store::FlushDiskType;
use crate::store::format::{
    MessageInput, PROPERTY_DELAY, PROPERTY_KEYS, PROPERTY_REAL_QUEUE_ID, PROPERTY_REAL_TOPIC, PROPERTY_TAGS,
    PROPERTY_UNIQ_KEY, SYS_FLAG_TRANSACTION_MASK, Scanned, scan_record,
};
use crate::store::metadata::{SubscriptionGroupConfig, TopicConfig};
use crate::store::{GetStatus, PutStatus, now_ms};

/// Messages one pull returns at most.
pub const PULL_MESSAGES_MAX: usize = 32;
/// Longest wait of a pull or receive, ms (below common 60 s load-balancer idle timeouts).
pub const WAIT_MS_MAX: u64 = 30_000;
/// Messages one query by key returns at most.
pub const QUERY_MESSAGES_MAX: usize = 64;
/// Longest a publish waits for its messages to be dispatched (readable), ms.
const DISPATCH_WAIT_MS_MAX: u64 = 200;
/// How long an END_TRANSACTION on the loopback may take.
const END_TRANSACTION_TIMEOUT_MS: u64 = 5_000;
/// Properties the broker and clients set: never shown as user properties.
const SYSTEM_PROPERTIES: &[&str] = &[
    "TAGS",
    "KEYS",
    "UNIQ_KEY",
    "WAIT",
    "DELAY",
    "RETRY_TOPIC",
    "REAL_TOPIC",
    "REAL_QID",
    "TRAN_MSG",
    "PGROUP",
    "MIN_OFFSET",
    "MAX_OFFSET",
    "CLUSTER",
    "ORIGIN_MESSAGE_ID",
    "TRANSACTION_CHECK_TIMES",
    "CHECK_IMMUNITY_TIME_IN_SECONDS",
    "MSG_REGION",
    "TRACE_ON",
    "POP_CK",
    "CONSUME_START_TIME",
    "__transactionId__",
];
const PROPERTY_WAIT: &str = "WAIT";
const PROPERTY_TRAN_MSG: &str = "TRAN_MSG";
const PROPERTY_PGROUP: &str = "PGROUP";
const PROPERTY_CLUSTER: &str = "CLUSTER";
const PROPERTY_RETRY_TOPIC: &str = "RETRY_TOPIC";
/// END_TRANSACTION's commitOrRollback values.
const TRANSACTION_COMMIT: i32 = 8;
const TRANSACTION_ROLLBACK: i32 = 12;

/// The broker of this process, as the gateways see it.
pub struct LocalMessaging {
    broker: Arc<BrokerInner>,
    receipts: ReceiptKey,
    ids: UniqueIds,
    protocol: Protocol,
    /// Dead letters the console sent back already.
    pub(super) resent: super::console::Resent,
}

impl LocalMessaging {
    /// Loads (or makes) the receipt-handle key under the store's `config/` directory.
    ///
    /// # Errors
    ///
    /// The key file cannot be read or written.
    pub fn new(broker: Arc<BrokerInner>, protocol: Protocol) -> std::io::Result<LocalMessaging> {
        let receipts = ReceiptKey::load_or_create(broker.meta.dir())?;
        let ids = UniqueIds::new(broker.store_host.ip());
        Ok(LocalMessaging { broker, receipts, ids, protocol, resent: Default::default() })
    }

    pub fn broker(&self) -> &Arc<BrokerInner> {
        &self.broker
    }

    fn handle_of(&self, text: &str, group: &str, topic: &str) -> Result<Handle> {
        let h = self.receipts.decode(text).map_err(|e| {
            self.broker.metrics.record_receipt_error(self.protocol, "invalid");
            Error::InvalidHandle(e)
        })?;
        if h.group != group {
            self.broker.metrics.record_receipt_error(self.protocol, "wrong_group");
            return Err(Error::InvalidHandle(format!("the handle belongs to group {}", h.group)));
        }
        if h.topic != topic && h.topic != pop_retry_topic(group, topic) {
            self.broker.metrics.record_receipt_error(self.protocol, "invalid");
            return Err(Error::InvalidHandle(format!("the handle belongs to another topic than {topic}")));
        }
        if h.broker_name != self.broker.config.broker_name {
            return Err(Error::InvalidHandle(format!("the handle belongs to broker {}", h.broker_name)));
        }
        Ok(h)
    }

    fn expired(&self, why: &str) -> Error {
        self.broker.metrics.record_receipt_error(self.protocol, "expired");
        Error::ExpiredHandle(why.to_owned())
    }

    fn queues_of(&self, tc: &TopicConfig) -> Vec<(u32, u64, u64)> {
        let store = &self.broker.store;
        (0..tc.read_queue_nums.max(tc.write_queue_nums))
            .map(|q| (q, store.min_offset(&tc.topic_name, q), store.max_offset(&tc.topic_name, q)))
            .collect()
    }

    fn topic_info(&self, tc: &TopicConfig) -> TopicInfo {
        TopicInfo {
            name: tc.topic_name.clone(),
            read_queues: tc.read_queue_nums,
            write_queues: tc.write_queue_nums,
            perm: tc.perm,
            queues: self.queues_of(tc),
        }
    }

    /// The native port on the loopback (or the bind address).
    fn own_native_addr(&self) -> String {
        let host = self.broker.config.bind_address.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
        let host = if host == "0.0.0.0" { "127.0.0.1".to_owned() } else { host };
        format!("{host}:{}", self.broker.config.listen_port)
    }

    fn input(&self, topic: &str, queue_id: u32, m: OutgoingMessage, producer_group: &str) -> (MessageInput, String) {
        let b = &self.broker;
        let uniq = self.ids.next();
        let mut props: Vec<(String, String)> =
            m.properties.into_iter().filter(|(k, _)| !SYSTEM_PROPERTIES.contains(&k.as_str())).collect();
        if let Some(tag) = m.tag.filter(|t| !t.is_empty()) {
            props.push((PROPERTY_TAGS.to_owned(), tag));
        }
        if !m.keys.is_empty() {
            props.push((PROPERTY_KEYS.to_owned(), m.keys.join(" ")));
        }
        props.push((PROPERTY_UNIQ_KEY.to_owned(), uniq.clone()));
        props.push((PROPERTY_WAIT.to_owned(), "true".to_owned()));
        props.push((PROPERTY_CLUSTER.to_owned(), b.config.broker_cluster_name.clone()));
        if let Some(level) = m.delay_ms.filter(|d| *d > 0).map(|d| delay_level(&b.config.message_delay_level_ms, d)) {
            props.push((PROPERTY_DELAY.to_owned(), level.to_string()));
        }
        let mut msg = MessageInput {
            topic: topic.to_owned(),
            queue_id,
            flag: 0,
            body: m.body.to_vec(),
            properties: String::new(),
            sys_flag: 0,
            born_timestamp: now_ms(),
            born_host: b.store_host,
            store_host: b.store_host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        if m.transactional {
            props.retain(|(k, _)| k != PROPERTY_DELAY);
            props.push((PROPERTY_TRAN_MSG.to_owned(), "true".to_owned()));
            props.push((PROPERTY_PGROUP.to_owned(), producer_group.to_owned()));
            props.push((PROPERTY_REAL_TOPIC.to_owned(), msg.topic.clone()));
            props.push((PROPERTY_REAL_QUEUE_ID.to_owned(), msg.queue_id.to_string()));
            msg.sys_flag &= !SYS_FLAG_TRANSACTION_MASK;
            msg.topic = HALF_TOPIC.to_owned();
            msg.queue_id = 0;
            b.topics.create_if_absent(HALF_TOPIC, 1, PERM_READ | PERM_WRITE, 0);
        } else {
            apply_delay(&mut msg, &mut props, b.config.message_delay_level_ms.len());
        }
        msg.properties = protocol::encode_properties(props.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        (msg, uniq)
    }
}

/// What a put's status says of the message's durability, and its RocketMQ status name.
fn durability(b: &BrokerInner, status: PutStatus) -> (Durability, &'static str) {
    let flushed = if b.config.flush_disk_type == FlushDiskType::Sync { Durability::Disk } else { Durability::Memory };
    match status {
        PutStatus::Ok if b.role() == Role::SyncMaster => (Durability::Replicated, "SEND_OK"),
        PutStatus::Ok => (flushed, "SEND_OK"),
        PutStatus::FlushDiskTimeout => (Durability::Memory, "FLUSH_DISK_TIMEOUT"),
        PutStatus::FlushSlaveTimeout => (flushed, "FLUSH_SLAVE_TIMEOUT"),
        PutStatus::SlaveNotAvailable => (flushed, "SLAVE_NOT_AVAILABLE"),
    }
}

/// Waits (briefly) until the store's dispatcher has indexed the CommitLog up to `end_offset`, so
/// that a gateway client reads its own writes: a pull, receive or query right after a publish
/// answered finds the message. Normally one dispatch round; gives up after
/// [`DISPATCH_WAIT_MS_MAX`].
async fn wait_dispatched(b: &BrokerInner, end_offset: u64) {
    b.store.dispatched(end_offset, Duration::from_millis(DISPATCH_WAIT_MS_MAX)).await;
}

/// The smallest delay level at least `delay_ms` long (the highest if none is).
fn delay_level(levels_ms: &[u64], delay_ms: u64) -> usize {
    levels_ms.iter().position(|l| *l >= delay_ms).map_or(levels_ms.len(), |i| i + 1).max(1)
}

/// Decodes one stored record for a gateway.
pub fn decode_message(store_host: std::net::SocketAddr, record: &[u8]) -> Option<Message> {
    let Scanned::Record(r) = scan_record(record, false) else {
        return None;
    };
    let mut tag = None;
    let mut keys = Vec::new();
    let mut uniq = None;
    let mut retry_topic = None;
    let mut properties = Vec::new();
    for (k, v) in crate::store::format::properties(r.properties) {
        match k {
            PROPERTY_TAGS => tag = Some(v.to_owned()),
            PROPERTY_KEYS => keys = v.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            PROPERTY_UNIQ_KEY => uniq = Some(v.to_owned()),
            PROPERTY_RETRY_TOPIC => retry_topic = Some(v.to_owned()),
            _ if SYSTEM_PROPERTIES.contains(&k) => {}
            _ => properties.push((k.to_owned(), v.to_owned())),
        }
    }
    let offset_message_id =
        offset_msg_id(if r.store_host.port() == 0 { store_host } else { r.store_host }, r.physical_offset);
    let topic = match retry_topic {
        Some(t) if r.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) => t,
        _ => r.topic.to_owned(),
    };
    Some(Message {
        message_id: uniq.unwrap_or_else(|| offset_message_id.clone()),
        offset_message_id,
        topic,
        queue_id: r.queue_id,
        queue_offset: r.queue_offset,
        tag,
        keys,
        properties,
        born_timestamp_ms: r.born_timestamp,
        store_timestamp_ms: r.store_timestamp,
        reconsume_times: r.reconsume_times,
        body: Bytes::copy_from_slice(r.body),
    })
}

fn check_name(kind: &str, name: &str) -> Result<()> {
    protocol::check_topic_name(name).map_err(|e| Error::BadRequest(format!("{kind} name {name:?}: {e}")))
}

impl LocalMessaging {
    /// Stores `messages` in two steps: they are appended before this returns, so successive
    /// calls keep their order; the future answers once they are durable as configured (flushed
    /// under SYNC_FLUSH, on a slave under SYNC_MASTER) with `wait`, without it once they are
    /// stored and readable (see [`Messaging::publish_pipelined`]).
    fn start_publish(
        &self,
        topic: &str,
        messages: Vec<OutgoingMessage>,
        producer_group: &str,
        wait: bool,
    ) -> Result<impl Future<Output = Result<Vec<super::Published>>> + Send + 'static> {
        let b = &self.broker;
        let started = std::time::Instant::now();
        check_name("topic", topic)?;
        if messages.is_empty() {
            return Err(Error::BadRequest("no message to publish".into()));
        }
        let max = b.config.max_message_size_bytes;
        if let Some(m) = messages.iter().find(|m| m.body.len() > max) {
            return Err(Error::BodyTooLarge { bytes: m.body.len(), max });
        }
        let header = |queue_id: i32| SendHeader {
            producer_group: producer_group.to_owned(),
            topic: topic.to_owned(),
            default_topic: protocol::AUTO_CREATE_TOPIC.to_owned(),
            default_topic_queue_nums: b.config.default_topic_queue_nums,
            queue_id,
            sys_flag: 0,
            born_timestamp: now_ms(),
            flag: 0,
            properties: String::new(),
            reconsume_times: 0,
            unit_mode: false,
            max_reconsume_times: None,
            batch: false,
        };
        let tc = send::check_and_create_topic(b, &header(-1))?;
        for m in &messages {
            if let Some(q) = m.queue_id
                && q >= tc.write_queue_nums
            {
                return Err(Error::BadRequest(format!("queue {q} of topic {topic} does not exist")));
            }
        }
        // Plain messages without an explicit queue go in as one batch (one queue, one append);
        // the others one by one.
        let batchable = messages.len() > 1
            && messages.iter().all(|m| !m.transactional && m.delay_ms.unwrap_or(0) == 0 && m.queue_id.is_none());
        let groups: Vec<Vec<OutgoingMessage>> =
            if batchable { vec![messages] } else { messages.into_iter().map(|m| vec![m]).collect() };
        let mut started_puts = Vec::with_capacity(groups.len());
        for group in groups {
            let queue_id = group[0].queue_id.unwrap_or_else(|| send::pick_queue(tc.write_queue_nums));
            let transactional = group[0].transactional;
            let mut inputs = Vec::with_capacity(group.len());
            let mut ids = Vec::with_capacity(group.len());
            let mut bytes = 0u64;
            for m in group {
                bytes += m.body.len() as u64;
                let (input, id) = self.input(topic, queue_id, m, producer_group);
                inputs.push(input);
                ids.push(id);
            }
            let count = inputs.len() as u64;
            let put = start_put_replicated(b, inputs, wait);
            started_puts.push((put, ids, queue_id, transactional, count, bytes));
        }
        let (b, protocol) = (Arc::clone(b), self.protocol);
        let (topic, producer_group) = (topic.to_owned(), producer_group.to_owned());
        Ok(async move {
            let mut out = Vec::new();
            for (put, ids, queue_id, transactional, count, bytes) in started_puts {
                let result = put.await?;
                wait_dispatched(&b, result.appended.end_offset).await;
                b.metrics.record_in(protocol, &topic, count, bytes);
                let (durability, status) = durability(&b, result.status);
                for (appended, id) in result.appended.messages.iter().zip(ids) {
                    let transaction_id = transactional.then(|| {
                        format!(
                            "{}:{}:{}:{}",
                            b.config.broker_name, appended.physical_offset, appended.queue_offset, producer_group
                        )
                    });
                    out.push(super::Published {
                        message_id: id,
                        offset_message_id: offset_msg_id(b.store_host, appended.physical_offset),
                        topic: topic.clone(),
                        queue_id,
                        queue_offset: if transactional { 0 } else { appended.queue_offset },
                        status,
                        durability,
                        transaction_id,
                    });
                }
            }
            b.metrics.observe_send(protocol, started.elapsed());
            Ok(out)
        })
    }
}

impl Messaging for LocalMessaging {
    async fn publish(
        &self,
        topic: &str,
        messages: Vec<OutgoingMessage>,
        producer_group: &str,
    ) -> Result<Vec<super::Published>> {
        self.start_publish(topic, messages, producer_group, true)?.await
    }

    fn publish_pipelined(
        &self,
        topic: &str,
        messages: Vec<OutgoingMessage>,
        producer_group: &str,
        wait: bool,
    ) -> Result<impl Future<Output = Result<Vec<super::Published>>> + Send + 'static> {
        self.start_publish(topic, messages, producer_group, wait)
    }

    async fn end_transaction(&self, transaction_id: &str, commit: bool) -> Result<()> {
        let bad = || Error::BadRequest(format!("malformed transaction id {transaction_id:?}"));
        let mut parts = transaction_id.splitn(4, ':');
        let (Some(broker_name), Some(phys), Some(queue_offset), Some(group)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if broker_name != self.broker.config.broker_name {
            return Err(Error::BadRequest(format!("the transaction belongs to broker {broker_name}")));
        }
        let phys: i64 = phys.parse().map_err(|_| bad())?;
        let queue_offset: i64 = queue_offset.parse().map_err(|_| bad())?;
        let req = RemotingCommand::request(request::END_TRANSACTION)
            .with_field("producerGroup", group)
            .with_field("tranStateTableOffset", queue_offset)
            .with_field("commitLogOffset", phys)
            .with_field("commitOrRollback", if commit { TRANSACTION_COMMIT } else { TRANSACTION_ROLLBACK })
            .with_field("fromTransactionCheck", false)
            .with_field("msgId", "");
        let answer = self
            .broker
            .client
            .invoke(&self.own_native_addr(), req, Duration::from_millis(END_TRANSACTION_TIMEOUT_MS))
            .await
            .map_err(|e| Error::Unavailable(format!("END_TRANSACTION on the native port: {e}")))?;
        match answer.code {
            response::SUCCESS => Ok(()),
            _ => Err(Error::MessageNotFound(answer.remark.unwrap_or_else(|| "no such half message".to_owned()))),
        }
    }

    async fn pull(&self, topic: &str, queue_id: u32, offset: u64, max: usize, wait_ms: u64) -> Result<PullBatch> {
        let b = &self.broker;
        let started = std::time::Instant::now();
        let Some(tc) = b.topics.get(topic) else {
            return Err(Error::TopicNotFound(format!("topic {topic} does not exist")));
        };
        if tc.perm & PERM_READ == 0 || b.permission() & PERM_READ == 0 {
            return Err(Error::Forbidden(format!("topic {topic} is not readable")));
        }
        if queue_id >= tc.read_queue_nums {
            return Err(Error::BadRequest(format!("queue {queue_id} of topic {topic} does not exist")));
        }
        let max = max.clamp(1, PULL_MESSAGES_MAX);
        let deadline = started + Duration::from_millis(wait_ms.min(WAIT_MS_MAX));
        loop {
            let notify = b.pulls.notify_for(topic, queue_id);
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = b.store.get_messages(topic, queue_id, offset, max, crate::processor::pull::PULL_BYTES_MAX, None);
            let now = std::time::Instant::now();
            if got.status == GetStatus::Found || now >= deadline || b.is_stopping() || offset < got.min_offset {
                let offset_moved = matches!(
                    got.status,
                    GetStatus::OffsetTooSmall | GetStatus::OffsetOverflowBadly | GetStatus::OffsetFoundNull
                );
                let messages: Vec<Message> =
                    got.messages.iter().filter_map(|r| decode_message(b.store_host, r)).collect();
                let bytes: u64 = got.messages.iter().map(|m| m.len() as u64).sum();
                b.metrics.record_out(self.protocol, topic, messages.len() as u64, bytes);
                b.metrics.observe_pull(self.protocol, started.elapsed());
                return Ok(PullBatch {
                    messages,
                    next_offset: got.next_begin_offset,
                    min_offset: got.min_offset,
                    max_offset: got.max_offset,
                    offset_moved,
                });
            }
            let _ = tokio::time::timeout(deadline - now, notified).await;
        }
    }

    async fn receive(&self, req: ReceiveRequest) -> Result<Vec<Received>> {
        let b = &self.broker;
        check_name("topic", &req.topic)?;
        check_name("group", &req.group)?;
        let filter = Subscription::parse(None, req.tag_filter.as_deref().unwrap_or("*"))
            .map_err(|e| Error::BadRequest(format!("tag filter: {e}")))?;
        let pop_req = PopRequest {
            group: req.group.clone(),
            topic: req.topic.clone(),
            queue_id: None,
            max: req.max,
            invisible_ms: req.invisible_ms,
            poll_ms: req.wait_ms.min(WAIT_MS_MAX),
            filter: Arc::new(filter),
            protocol: self.protocol,
        };
        let popped = pop::pop(b, &pop_req).await?;
        let mut out = Vec::with_capacity(popped.len());
        for p in popped {
            let Some(message) = decode_message(b.store_host, &p.record) else { continue };
            let handle = Handle {
                broker_name: b.config.broker_name.clone(),
                group: req.group.clone(),
                topic: p.topic.clone(),
                queue_id: p.queue_id,
                queue_offset: p.queue_offset,
                pop_time_ms: p.lease.pop_time_ms,
                invisible_until_ms: p.lease.invisible_until_ms,
            };
            out.push(Received {
                message,
                receipt_handle: self.receipts.encode(&handle),
                delivery_attempt: p.delivery_attempt,
                invisible_until_ms: p.lease.invisible_until_ms,
            });
        }
        Ok(out)
    }

    async fn ack(&self, group: &str, topic: &str, handle: &str) -> Result<()> {
        let h = self.handle_of(handle, group, topic)?;
        match pop::ack(&self.broker, group, &h.topic, h.queue_id, h.queue_offset, h.pop_time_ms) {
            LeaseOutcome::Done(_) if h.invisible_until_ms >= now_ms() => Ok(()),
            // Acknowledged after the deadline but before the revive scan: too late all the same,
            // but the message is not delivered again.
            LeaseOutcome::Done(_) => Ok(()),
            LeaseOutcome::AlreadyAcked if h.invisible_until_ms >= now_ms() => Ok(()),
            LeaseOutcome::AlreadyAcked | LeaseOutcome::Expired | LeaseOutcome::Unknown => {
                Err(self.expired("the lease ran out or was replaced; the message is delivered again"))
            }
        }
    }

    async fn nack(&self, group: &str, topic: &str, handle: &str, delay_ms: u64) -> Result<()> {
        let h = self.handle_of(handle, group, topic)?;
        match pop::change_invisible(&self.broker, group, &h.topic, h.queue_id, h.queue_offset, h.pop_time_ms, delay_ms)
        {
            LeaseOutcome::Done(_) => Ok(()),
            _ => Err(self.expired("the lease ran out or was replaced")),
        }
    }

    async fn change_invisible(&self, group: &str, topic: &str, handle: &str, invisible_ms: u64) -> Result<Lease> {
        let h = self.handle_of(handle, group, topic)?;
        if !(pop::INVISIBLE_MS_MIN..=pop::INVISIBLE_MS_MAX).contains(&invisible_ms) {
            return Err(Error::BadRequest(format!(
                "invisible time {invisible_ms} ms is out of range {}..={}",
                pop::INVISIBLE_MS_MIN,
                pop::INVISIBLE_MS_MAX
            )));
        }
        if h.invisible_until_ms < now_ms() {
            return Err(self.expired("the lease ran out"));
        }
        let outcome = pop::change_invisible(
            &self.broker,
            group,
            &h.topic,
            h.queue_id,
            h.queue_offset,
            h.pop_time_ms,
            invisible_ms,
        );
        match outcome {
            LeaseOutcome::Done(Some(lease)) => {
                let new = Handle { pop_time_ms: lease.pop_time_ms, invisible_until_ms: lease.invisible_until_ms, ..h };
                Ok(Lease { receipt_handle: self.receipts.encode(&new), invisible_until_ms: lease.invisible_until_ms })
            }
            _ => Err(self.expired("the lease ran out or was replaced")),
        }
    }

    async fn message_by_id(&self, topic: &str, id: &str) -> Result<Message> {
        let b = &self.broker;
        let not_found = || Error::MessageNotFound(format!("no message {id} in topic {topic}"));
        if let Some((_, offset)) = decode_offset_msg_id(id)
            && let Some(m) = b.store.message_at(offset).and_then(|r| decode_message(b.store_host, &r))
            && m.topic == topic
        {
            return Ok(m);
        }
        let found = b.store.query_by_key(topic, id, QUERY_MESSAGES_MAX, 0, i64::MAX);
        found.iter().filter_map(|r| decode_message(b.store_host, r)).find(|m| m.message_id == id).ok_or_else(not_found)
    }

    async fn messages_by_key(&self, topic: &str, key: &str, max: usize) -> Result<Vec<Message>> {
        let b = &self.broker;
        if b.topics.get(topic).is_none() {
            return Err(Error::TopicNotFound(format!("topic {topic} does not exist")));
        }
        let found = b.store.query_by_key(topic, key, max.clamp(1, QUERY_MESSAGES_MAX), 0, i64::MAX);
        Ok(found
            .iter()
            .filter_map(|r| decode_message(b.store_host, r))
            .filter(|m| m.keys.iter().any(|k| k == key) || m.message_id == key)
            .collect())
    }

    async fn topics(&self) -> Result<Vec<TopicInfo>> {
        let mut all: Vec<TopicInfo> = self.broker.topics.all().iter().map(|tc| self.topic_info(tc)).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn topic(&self, topic: &str) -> Result<TopicInfo> {
        match self.broker.topics.get(topic) {
            Some(tc) => Ok(self.topic_info(&tc)),
            None => Err(Error::TopicNotFound(format!("topic {topic} does not exist"))),
        }
    }

    async fn put_topic(&self, topic: &str, read_queues: u32, write_queues: u32) -> Result<TopicInfo> {
        check_name("topic", topic)?;
        if protocol::is_system_topic(topic) {
            return Err(Error::Forbidden(format!("topic {topic} is a system topic")));
        }
        let mut tc = self.broker.topics.get(topic).map_or_else(|| TopicConfig::new(topic), |t| (*t).clone());
        tc.read_queue_nums = read_queues;
        tc.write_queue_nums = write_queues;
        tc.perm = PERM_READ | PERM_WRITE;
        self.broker.topics.put(tc);
        self.broker.register_with_name_servers().await;
        self.topic(topic).await
    }

    async fn delete_topic(&self, topic: &str) -> Result<()> {
        if !self.broker.topics.remove(topic) {
            return Err(Error::TopicNotFound(format!("topic {topic} does not exist")));
        }
        self.broker.register_with_name_servers().await;
        Ok(())
    }

    async fn groups(&self) -> Result<Vec<GroupInfo>> {
        let mut all: Vec<GroupInfo> = self.broker.groups.all().iter().map(|g| group_info(g)).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn group(&self, group: &str) -> Result<GroupInfo> {
        self.broker
            .groups
            .get(group)
            .map(|g| group_info(&g))
            .ok_or_else(|| Error::GroupNotFound(format!("group {group} does not exist")))
    }

    async fn put_group(&self, info: GroupInfo) -> Result<GroupInfo> {
        check_name("group", &info.name)?;
        let mut g = self
            .broker
            .groups
            .get(&info.name)
            .map_or_else(|| SubscriptionGroupConfig::new(&info.name), |g| (*g).clone());
        g.consume_enable = info.consume_enable;
        g.retry_max_times = info.retry_max_times;
        g.retry_queue_nums = info.retry_queues;
        self.broker.groups.put(g);
        self.group(&info.name).await
    }

    async fn delete_group(&self, group: &str) -> Result<()> {
        if self.broker.groups.remove(group) {
            Ok(())
        } else {
            Err(Error::GroupNotFound(format!("group {group} does not exist")))
        }
    }

    async fn progress(&self, group: &str, topic: Option<&str>) -> Result<Vec<QueueProgress>> {
        use std::collections::BTreeMap;
        let b = &self.broker;
        let topics: Vec<String> = match topic {
            Some(t) => vec![t.to_owned()],
            None => b.meta.consumer_offsets().topics_of_group(group).into_iter().map(str::to_owned).collect(),
        };
        let mut out = Vec::new();
        let row = |t: &str, q: u32, inflight: &BTreeMap<u32, usize>| {
            let broker_offset = b.store.max_offset(t, q);
            let consumer_offset = b.meta.consumer_offsets().offset(t, group, q).unwrap_or(-1);
            QueueProgress {
                topic: t.to_owned(),
                queue_id: q,
                broker_offset,
                consumer_offset,
                lag: broker_offset.saturating_sub(consumer_offset.max(0) as u64),
                inflight: inflight.get(&q).copied().unwrap_or(0) as u64,
            }
        };
        for t in &topics {
            let t = t.clone();
            let Some(tc) = b.topics.get(&t) else {
                if topic.is_some() {
                    return Err(Error::TopicNotFound(format!("topic {t} does not exist")));
                }
                continue;
            };
            let inflight = b.pops.inflight(group, &t);
            out.extend((0..tc.read_queue_nums).map(|q| row(&t, q, &inflight)));
            // Messages received again (after a nack or an expired lease) are leased from the pop
            // retry topic: its queues are listed while leases are open there.
            let retry = crate::processor::pop::pop_retry_topic(group, &t);
            let retry_inflight = b.pops.inflight(group, &retry);
            if !retry_inflight.is_empty() && !topics.contains(&retry) {
                out.extend(retry_inflight.keys().map(|&q| row(&retry, q, &retry_inflight)));
            }
        }
        Ok(out)
    }

    async fn commit_offset(&self, group: &str, topic: &str, queue_id: u32, offset: u64) -> Result<()> {
        if self.broker.topics.get(topic).is_none() {
            return Err(Error::TopicNotFound(format!("topic {topic} does not exist")));
        }
        self.broker.commit_offset(group, topic, queue_id, offset as i64);
        Ok(())
    }

    async fn cluster(&self) -> Result<Vec<BrokerView>> {
        let c = &self.broker.config;
        Ok(vec![BrokerView {
            cluster: c.broker_cluster_name.clone(),
            name: c.broker_name.clone(),
            id: c.broker_id,
            addr: self.broker.broker_addr(),
            role: c.broker_role.to_string(),
            name_servers: c.namesrv_addrs.clone(),
        }])
    }

    async fn readiness(&self) -> Readiness {
        let b = &self.broker;
        let registered = b.config.namesrv_addrs.is_empty() || b.registered_once();
        Readiness {
            store_recovered: !b.store.is_poisoned(),
            registered,
            disk_ok: !b.store.is_disk_full(),
            writable: b.permission() & PERM_WRITE != 0 && b.role() != Role::Slave,
        }
    }

    fn message_bytes_max(&self) -> usize {
        self.broker.config.max_message_size_bytes
    }

    async fn topic_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.broker.topics.all().iter().map(|t| t.topic_name.clone()).collect();
        names.sort();
        Ok(names)
    }

    async fn group_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.broker.groups.all().iter().map(|g| g.group_name.clone()).collect();
        names.sort();
        Ok(names)
    }

    async fn group_runtime(&self, group: &str) -> Result<super::GroupRuntime> {
        Ok(self.console_group_runtime(group))
    }

    async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        to: super::ResetTo,
        dry_run: bool,
    ) -> Result<Vec<super::OffsetReset>> {
        self.console_reset_offsets(group, topic, to, dry_run)
    }

    async fn messages_by_time(&self, topic: &str, begin_ms: i64, end_ms: i64, max: usize) -> Result<super::TimeQuery> {
        self.console_messages_by_time(topic, begin_ms, end_ms, max)
    }

    async fn delivery(&self, message: &Message) -> Result<Vec<super::Delivery>> {
        Ok(self.console_delivery(message))
    }

    async fn resend_dead_letter(&self, group: &str, message_id: &str) -> Result<super::Published> {
        self.console_resend_dead_letter(group, message_id).await
    }

    async fn topic_route(&self, topic: &str) -> Result<super::TopicRoute> {
        self.console_topic_route(topic).await
    }

    async fn cluster_overview(&self) -> Result<super::ClusterOverview> {
        self.console_cluster_overview().await
    }
}

fn group_info(g: &SubscriptionGroupConfig) -> GroupInfo {
    GroupInfo {
        name: g.group_name.clone(),
        consume_enable: g.consume_enable,
        retry_max_times: g.retry_max_times,
        retry_queues: g.retry_queue_nums,
    }
}

#[cfg(test)]
mod tests {
    //! Delay rounding.

    use super::delay_level;

    #[test]
    fn delay_rounds_up_to_a_level() {
        let levels = [1_000, 5_000, 10_000];
        for (delay, level) in [(1, 1), (1_000, 1), (1_001, 2), (10_000, 3), (99_999, 3)] {
            assert_eq!(delay_level(&levels, delay), level, "{delay} ms");
        }
    }
}
