//! The producer: sync, async, oneway, batch and transactional sends of one producer group.
//!
//! Requests are SEND_MESSAGE_V2 (310) or SEND_BATCH_MESSAGE (320) with the short header names
//! `a`..`m`, every value a string, as the Java client sends them. Every message gets a `UNIQ_KEY`
//! (Java's client message id) unless it has one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::message::{Message, MessageExt, decode_messages, encode_batch};
use super::{Error, MqClient, Result, TopicRoute, lock};
use crate::protocol::body::MessageQueue;
use crate::protocol::message_id::decode_offset_msg_id;
use crate::protocol::{RETRY_GROUP_TOPIC_PREFIX, check_topic_name, request, response};
use crate::remoting::RemotingCommand;
use crate::store::format::{
    PROPERTY_DELAY, PROPERTY_UNIQ_KEY, TRANSACTION_COMMIT_TYPE, TRANSACTION_NOT_TYPE, TRANSACTION_PREPARED_TYPE,
    TRANSACTION_ROLLBACK_TYPE,
};

const PROPERTY_TRANSACTION_PREPARED: &str = "TRAN_MSG";
const PROPERTY_PRODUCER_GROUP: &str = "PGROUP";
const PROPERTY_RECONSUME_TIME: &str = "RECONSUME_TIME";
const PROPERTY_MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";

/// Producer settings (Java `DefaultMQProducer` names in parentheses).
#[derive(Clone, Debug)]
pub struct ProducerOptions {
    /// Timeout of one send attempt (`sendMsgTimeout`, 3000 ms).
    pub send_timeout: Duration,
    /// Further attempts, on other brokers when there are, after a failed sync or async send
    /// (`retryTimesWhenSendFailed`, 2).
    pub retry_times_when_send_failed: u32,
    /// Queues per broker for a topic the broker creates on first send (`defaultTopicQueueNums`, 4).
    pub default_topic_queue_nums: u32,
    /// The topic whose route unknown topics borrow (`createTopicKey`, `TBW102`).
    pub create_topic_key: String,
    /// Largest body (or batch body) sent (`maxMessageSize`, 4 MiB).
    pub message_bytes_max: usize,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            send_timeout: Duration::from_millis(3000),
            retry_times_when_send_failed: 2,
            default_topic_queue_nums: 4,
            create_topic_key: crate::protocol::AUTO_CREATE_TOPIC.to_owned(),
            message_bytes_max: 4 * 1024 * 1024,
        }
    }
}

/// How a send ended, when the broker stored the message (codes 0, 10, 11, 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    SendOk,
    /// Stored, but the SYNC_FLUSH did not finish in time (code 10).
    FlushDiskTimeout,
    /// Stored, but the SYNC_MASTER's slave did not acknowledge in time (code 12).
    FlushSlaveTimeout,
    /// Stored, but the SYNC_MASTER has no slave (code 11).
    SlaveNotAvailable,
}

impl SendStatus {
    /// Java's enum name (`SEND_OK`, ...).
    pub fn name(self) -> &'static str {
        match self {
            SendStatus::SendOk => "SEND_OK",
            SendStatus::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
            SendStatus::FlushSlaveTimeout => "FLUSH_SLAVE_TIMEOUT",
            SendStatus::SlaveNotAvailable => "SLAVE_NOT_AVAILABLE",
        }
    }

    fn from_code(code: i32) -> Option<SendStatus> {
        match code {
            response::SUCCESS => Some(SendStatus::SendOk),
            response::FLUSH_DISK_TIMEOUT => Some(SendStatus::FlushDiskTimeout),
            response::FLUSH_SLAVE_TIMEOUT => Some(SendStatus::FlushSlaveTimeout),
            response::SLAVE_NOT_AVAILABLE => Some(SendStatus::SlaveNotAvailable),
            _ => None,
        }
    }
}

/// The outcome of a send the broker accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    pub status: SendStatus,
    /// The client's message id (`UNIQ_KEY`); for a batch, the ids joined with commas.
    pub msg_id: String,
    /// The broker's offset message id (store host + CommitLog offset); comma separated for a
    /// batch.
    pub offset_msg_id: String,
    pub queue: MessageQueue,
    /// The (first) message's offset in its queue.
    pub queue_offset: u64,
    pub transaction_id: Option<String>,
    pub region_id: Option<String>,
}

/// A future of an async send, independent of the producer it came from.
pub type SendFuture = Pin<Box<dyn Future<Output = Result<SendResult>> + Send + 'static>>;

/// The decision about a transactional (half) message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    Commit,
    Rollback,
    /// Undecided: the broker asks again later (CHECK_TRANSACTION_STATE).
    Unknown,
}

impl TransactionState {
    /// The END_TRANSACTION `commitOrRollback` value (sysFlag transaction type).
    pub fn code(self) -> i32 {
        match self {
            TransactionState::Commit => TRANSACTION_COMMIT_TYPE,
            TransactionState::Rollback => TRANSACTION_ROLLBACK_TYPE,
            TransactionState::Unknown => TRANSACTION_NOT_TYPE,
        }
    }

    /// Java's `LocalTransactionState` name.
    pub fn name(self) -> &'static str {
        match self {
            TransactionState::Commit => "COMMIT_MESSAGE",
            TransactionState::Rollback => "ROLLBACK_MESSAGE",
            TransactionState::Unknown => "UNKNOW",
        }
    }
}

/// Answers the broker's CHECK_TRANSACTION_STATE for a producer group's half messages. Called on
/// a runtime task: it should decide quickly.
pub trait TransactionListener: Send + Sync + 'static {
    fn check(&self, msg: &MessageExt) -> TransactionState;
}

/// The result of [`Producer::send_in_transaction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionSendResult {
    pub send: SendResult,
    /// What the local transaction decided (Rollback when the half message was not stored OK).
    pub state: TransactionState,
}

/// One request ready to go to any queue of its topic.
struct Prepared {
    code: i32,
    topic: String,
    body: Bytes,
    properties: String,
    sys_flag: i32,
    flag: i32,
    reconsume_times: Option<String>,
    max_reconsume_times: Option<String>,
    batch: bool,
    msg_id: String,
}

struct ProducerInner {
    client: MqClient,
    group: String,
    options: ProducerOptions,
    next_queue: AtomicUsize,
}

/// A producer group sending through an [`MqClient`]. Cheap to clone; clones share the queue
/// rotation.
#[derive(Clone)]
pub struct Producer(Arc<ProducerInner>);

impl Producer {
    /// A producer of `group` with the default options. The group is reported in heartbeats.
    pub fn new(client: MqClient, group: impl Into<String>) -> Producer {
        Producer::with_options(client, group, ProducerOptions::default())
    }

    pub fn with_options(client: MqClient, group: impl Into<String>, options: ProducerOptions) -> Producer {
        let group = group.into();
        client.register_producer_group(&group);
        Producer(Arc::new(ProducerInner { client, group, options, next_queue: AtomicUsize::new(0) }))
    }

    pub fn group(&self) -> &str {
        &self.0.group
    }

    pub fn client(&self) -> &MqClient {
        &self.0.client
    }

    pub fn options(&self) -> &ProducerOptions {
        &self.0.options
    }

    /// The queues a send to `topic` may go to (TBW102's brokers while the topic is unknown).
    pub async fn publish_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        Ok(self.route(topic).await?.write_queues.clone())
    }

    /// Sends `msg` to the next writable queue (round robin) and waits for the broker. Failed
    /// attempts are retried on another broker when there is one.
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending; [`Error::Broker`] for a code other than 0/10/11/12;
    /// remoting errors; [`Error::NoRoute`].
    pub async fn send(&self, msg: Message) -> Result<SendResult> {
        let p = self.prepare(msg)?;
        self.send_prepared(&p, None).await
    }

    /// Sends `msg` to `queue` (no retry elsewhere).
    pub async fn send_to_queue(&self, msg: Message, queue: &MessageQueue) -> Result<SendResult> {
        let p = self.prepare(msg)?;
        self.send_prepared(&p, Some(queue)).await
    }

    /// Sends `msg` to queue `queue_id` of the first broker that has it writable.
    pub async fn send_to_queue_id(&self, msg: Message, queue_id: u32) -> Result<SendResult> {
        let route = self.route(&msg.topic).await?;
        let queue = route
            .write_queues
            .iter()
            .find(|q| q.queue_id == queue_id)
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("topic {} has no writable queue {queue_id}", msg.topic)))?;
        self.send_to_queue(msg, &queue).await
    }

    /// Starts a send and returns its future, which owns what it needs: many may be in flight.
    /// Retries as [`Producer::send`] does.
    pub fn send_async(&self, msg: Message) -> SendFuture {
        let me = self.clone();
        Box::pin(async move { me.send(msg).await })
    }

    /// Sends `msg` marked oneway: no response, no retry. Returns once the request is queued.
    pub async fn send_oneway(&self, msg: Message) -> Result<()> {
        let p = self.prepare(msg)?;
        let route = self.route(&p.topic).await?;
        let queue = self.select_queue(&route, None)?;
        let addr = self.0.client.master_addr_for(&p.topic, &queue.broker_name).await?;
        self.0.client.invoke_broker_oneway(&addr, self.build_request(&p, &queue)).await
    }

    /// Sends `messages` (one topic, no delay level, not to a retry topic) as one
    /// SEND_BATCH_MESSAGE to the next queue. The result's ids are comma separated.
    pub async fn send_batch(&self, messages: Vec<Message>) -> Result<SendResult> {
        let p = self.prepare_batch(messages)?;
        self.send_prepared(&p, None).await
    }

    /// As [`Producer::send_batch`], to `queue`.
    pub async fn send_batch_to_queue(&self, messages: Vec<Message>, queue: &MessageQueue) -> Result<SendResult> {
        let p = self.prepare_batch(messages)?;
        self.send_prepared(&p, Some(queue)).await
    }

    /// As [`Producer::send_async`] for a batch.
    pub fn send_batch_async(&self, messages: Vec<Message>) -> SendFuture {
        let me = self.clone();
        Box::pin(async move { me.send_batch(messages).await })
    }

    /// Registers the listener that answers the broker's checks of this group's half messages.
    pub fn set_transaction_listener(&self, listener: Arc<dyn TransactionListener>) {
        self.0.client.register_transaction_listener(&self.0.group, listener);
    }

    /// Sends `msg` as a half message, runs `execute` (the local transaction) if it was stored,
    /// and ends the transaction with its decision (END_TRANSACTION, oneway). An `Unknown`
    /// decision leaves it to the broker's check.
    pub async fn send_in_transaction<F>(&self, mut msg: Message, execute: F) -> Result<TransactionSendResult>
    where
        F: FnOnce(&Message, &SendResult) -> TransactionState,
    {
        msg.remove_property(PROPERTY_DELAY);
        msg.set_property(PROPERTY_TRANSACTION_PREPARED, "true");
        msg.set_property(PROPERTY_PRODUCER_GROUP, self.0.group.clone());
        if msg.unique_id().is_none() {
            msg.set_property(PROPERTY_UNIQ_KEY, self.0.client.new_unique_id());
        }
        let send = self.send(msg.clone()).await?;
        let state = match send.status {
            SendStatus::SendOk => execute(&msg, &send),
            _ => TransactionState::Rollback,
        };
        if let Err(e) = self.end_transaction(&send, state).await {
            tracing::warn!(msg_id = %send.msg_id, error = %e, "END_TRANSACTION failed; the broker will check back");
        }
        Ok(TransactionSendResult { send, state })
    }

    /// END_TRANSACTION (37, oneway) for a half message sent by this producer.
    pub async fn end_transaction(&self, send: &SendResult, state: TransactionState) -> Result<()> {
        let id = if send.offset_msg_id.is_empty() { &send.msg_id } else { &send.offset_msg_id };
        let (_, commit_log_offset) =
            decode_offset_msg_id(id).ok_or_else(|| Error::decode("offset message id", id.clone()))?;
        let addr = self.0.client.master_addr_for(&send.queue.topic, &send.queue.broker_name).await?;
        let cmd = self
            .0
            .client
            .request(request::END_TRANSACTION)
            .with_field("producerGroup", &self.0.group)
            .with_field("tranStateTableOffset", send.queue_offset)
            .with_field("commitLogOffset", commit_log_offset)
            .with_field("commitOrRollback", state.code())
            .with_field("fromTransactionCheck", false)
            .with_field("msgId", &send.msg_id)
            .with_field("transactionId", send.transaction_id.as_deref().unwrap_or(&send.msg_id));
        self.0.client.invoke_broker_oneway(&addr, cmd).await
    }

    async fn route(&self, topic: &str) -> Result<Arc<TopicRoute>> {
        self.0.client.publish_route(topic, self.0.options.default_topic_queue_nums).await
    }

    fn check_message(&self, msg: &Message) -> Result<()> {
        check_topic_name(&msg.topic).map_err(Error::Invalid)?;
        if msg.body.is_empty() {
            return Err(Error::Invalid("the message body is empty".into()));
        }
        if msg.body.len() > self.0.options.message_bytes_max {
            return Err(Error::Invalid(format!(
                "the message body is {} bytes, over the limit of {}",
                msg.body.len(),
                self.0.options.message_bytes_max
            )));
        }
        msg.check_properties()
    }

    fn prepare(&self, mut msg: Message) -> Result<Prepared> {
        self.check_message(&msg)?;
        let msg_id = match msg.unique_id() {
            Some(id) => id.to_owned(),
            None => {
                let id = self.0.client.new_unique_id();
                msg.set_property(PROPERTY_UNIQ_KEY, id.clone());
                id
            }
        };
        let mut sys_flag = 0;
        if msg.property(PROPERTY_TRANSACTION_PREPARED).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            sys_flag |= TRANSACTION_PREPARED_TYPE;
        }
        let (mut reconsume_times, mut max_reconsume_times) = (None, None);
        if msg.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
            // As Java: these travel as header fields `j` and `l`, not as properties.
            reconsume_times = msg.remove_property(PROPERTY_RECONSUME_TIME);
            max_reconsume_times = msg.remove_property(PROPERTY_MAX_RECONSUME_TIMES);
        }
        let properties = msg.encoded_properties();
        Ok(Prepared {
            code: request::SEND_MESSAGE_V2,
            topic: msg.topic,
            body: msg.body,
            properties,
            sys_flag,
            flag: msg.flag,
            reconsume_times,
            max_reconsume_times,
            batch: false,
            msg_id,
        })
    }

    fn prepare_batch(&self, mut messages: Vec<Message>) -> Result<Prepared> {
        let Some(first) = messages.first() else { return Err(Error::Invalid("an empty batch".into())) };
        let topic = first.topic.clone();
        let mut ids = Vec::with_capacity(messages.len());
        for m in &mut messages {
            if m.topic != topic {
                return Err(Error::Invalid("the messages of a batch must have one topic".into()));
            }
            if m.property(PROPERTY_DELAY).is_some() {
                return Err(Error::Invalid("batch messages cannot have a delay level".into()));
            }
            if topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
                return Err(Error::Invalid("batches cannot go to retry topics".into()));
            }
            self.check_message(m)?;
            match m.unique_id() {
                Some(id) => ids.push(id.to_owned()),
                None => {
                    let id = self.0.client.new_unique_id();
                    m.set_property(PROPERTY_UNIQ_KEY, id.clone());
                    ids.push(id);
                }
            }
        }
        let body = encode_batch(&messages)?;
        if body.len() > self.0.options.message_bytes_max {
            return Err(Error::Invalid(format!(
                "the batch body is {} bytes, over the limit of {}",
                body.len(),
                self.0.options.message_bytes_max
            )));
        }
        Ok(Prepared {
            code: request::SEND_BATCH_MESSAGE,
            topic,
            body,
            properties: String::new(),
            sys_flag: 0,
            flag: 0,
            reconsume_times: None,
            max_reconsume_times: None,
            batch: true,
            msg_id: ids.join(","),
        })
    }

    /// The next queue in rotation, avoiding `avoid_broker` (the one that just failed) if another
    /// broker has queues.
    fn select_queue(&self, route: &TopicRoute, avoid_broker: Option<&str>) -> Result<MessageQueue> {
        let queues = &route.write_queues;
        if queues.is_empty() {
            return Err(Error::NoRoute { topic: route.topic.clone() });
        }
        let start = self.0.next_queue.fetch_add(1, Ordering::Relaxed);
        if let Some(avoid) = avoid_broker {
            for i in 0..queues.len() {
                let q = &queues[(start + i) % queues.len()];
                if q.broker_name != avoid {
                    return Ok(q.clone());
                }
            }
        }
        Ok(queues[start % queues.len()].clone())
    }

    fn build_request(&self, p: &Prepared, queue: &MessageQueue) -> RemotingCommand {
        let born = chrono::Utc::now().timestamp_millis();
        let mut cmd = self
            .0
            .client
            .request(p.code)
            .with_field("a", &self.0.group)
            .with_field("b", &p.topic)
            .with_field("c", &self.0.options.create_topic_key)
            .with_field("d", self.0.options.default_topic_queue_nums)
            .with_field("e", queue.queue_id)
            .with_field("f", p.sys_flag)
            .with_field("g", born)
            .with_field("h", p.flag)
            .with_field("i", &p.properties)
            .with_field("j", p.reconsume_times.as_deref().unwrap_or("0"))
            .with_field("k", false);
        if let Some(max) = &p.max_reconsume_times {
            cmd = cmd.with_field("l", max);
        }
        cmd.with_field("m", p.batch).with_body(p.body.clone())
    }

    async fn send_prepared(&self, p: &Prepared, target: Option<&MessageQueue>) -> Result<SendResult> {
        let attempts = if target.is_some() { 1 } else { 1 + self.0.options.retry_times_when_send_failed };
        let started = Instant::now();
        let mut failed_broker: Option<String> = None;
        let mut last_err = None;
        for _ in 0..attempts {
            let queue = match target {
                Some(q) => q.clone(),
                None => {
                    let route = self.route(&p.topic).await?;
                    self.select_queue(&route, failed_broker.as_deref())?
                }
            };
            match self.send_once(p, &queue).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    let retry = match &e {
                        Error::Remoting(_) | Error::NoBrokerAddr { .. } => true,
                        Error::Broker { code, .. } => matches!(*code, 17 | 14 | 1 | 16 | 204 | 205),
                        _ => false,
                    };
                    if matches!(e.code(), Some(response::TOPIC_NOT_EXIST)) || matches!(e, Error::NoBrokerAddr { .. }) {
                        self.0.client.routes().invalidate(&p.topic);
                    }
                    tracing::debug!(topic = %p.topic, queue = ?queue, error = %e, retry, "send failed");
                    failed_broker = Some(queue.broker_name);
                    last_err = Some(e);
                    if !retry || started.elapsed() >= self.0.options.send_timeout {
                        break;
                    }
                }
            }
        }
        Err(last_err.unwrap_or_else(|| Error::NoRoute { topic: p.topic.clone() }))
    }

    async fn send_once(&self, p: &Prepared, queue: &MessageQueue) -> Result<SendResult> {
        let addr = self.0.client.master_addr_for(&p.topic, &queue.broker_name).await?;
        let cmd = self.build_request(p, queue);
        let resp = self.0.client.invoke_broker_timeout(&addr, cmd, self.0.options.send_timeout).await?;
        parse_send_response(&addr, &resp, queue, &p.msg_id)
    }
}

/// Reads a send response: codes 0/10/11/12 are results, anything else an error.
pub(super) fn parse_send_response(
    addr: &str,
    resp: &RemotingCommand,
    queue: &MessageQueue,
    msg_id: &str,
) -> Result<SendResult> {
    let Some(status) = SendStatus::from_code(resp.code) else { return Err(Error::broker(addr, resp)) };
    let queue_id = match resp.field("queueId") {
        Some(v) => v.trim().parse().map_err(|_| Error::decode("send response queueId", v))?,
        None => queue.queue_id,
    };
    let queue_offset = match resp.field("queueOffset") {
        Some(v) => v.trim().parse().map_err(|_| Error::decode("send response queueOffset", v))?,
        None => return Err(Error::decode("send response", "no queueOffset")),
    };
    Ok(SendResult {
        status,
        msg_id: msg_id.to_owned(),
        offset_msg_id: resp.field("msgId").unwrap_or_default().to_owned(),
        queue: MessageQueue { broker_name: queue.broker_name.clone(), queue_id, topic: queue.topic.clone() },
        queue_offset,
        transaction_id: resp.field("transactionId").map(str::to_owned),
        region_id: resp.field("MSG_REGION").map(str::to_owned),
    })
}

impl MqClient {
    /// Answers a CHECK_TRANSACTION_STATE from `addr` through the listener of the message's
    /// producer group, with END_TRANSACTION (oneway, `fromTransactionCheck=true`).
    pub(super) async fn check_transaction_state(&self, addr: &str, cmd: RemotingCommand) {
        let msg = match decode_messages(&cmd.body, false) {
            Ok(mut v) if !v.is_empty() => v.swap_remove(0),
            Ok(_) => {
                tracing::warn!(%addr, "transaction check without a message");
                return;
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "transaction check with an undecodable message");
                return;
            }
        };
        let Some(group) = msg.property(PROPERTY_PRODUCER_GROUP).map(str::to_owned) else {
            tracing::warn!(%addr, "transaction check for a message without PGROUP");
            return;
        };
        let listener = lock(&self.0.transaction_listeners).get(&group).cloned();
        let Some(listener) = listener else {
            tracing::warn!(%addr, %group, "transaction check for a group without a listener");
            return;
        };
        let state = listener.check(&msg);
        let mut end = self
            .request(request::END_TRANSACTION)
            .with_field("producerGroup", &group)
            .with_field("tranStateTableOffset", cmd.field("tranStateTableOffset").unwrap_or("0"))
            .with_field("commitLogOffset", cmd.field("commitLogOffset").unwrap_or("0"))
            .with_field("commitOrRollback", state.code())
            .with_field("fromTransactionCheck", true)
            .with_field("msgId", msg.msg_id());
        if let Some(t) = cmd.field("transactionId") {
            end = end.with_field("transactionId", t);
        }
        if let Err(e) = self.invoke_broker_oneway(addr, end).await {
            tracing::warn!(%addr, error = %e, "END_TRANSACTION after a check failed");
        }
    }
}
