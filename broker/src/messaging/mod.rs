//! The operations the gateways (HTTP, AMQP) call: publish, pull by offset, receive / ack / nack /
//! change invisible time, queries and admin. [`Messaging`] is the trait; [`local::LocalMessaging`]
//! implements it inside `mqbroker` on the broker's own state (no network hop). A cluster
//! implementation over the native protocol (`broker::client`, for a gateway in front of several
//! brokers) implements the same trait: every method is async, takes and returns plain data (no
//! broker types), and receipt handles and transaction ids are opaque strings that carry the broker
//! name, so such an implementation can route them.
//!
//! Errors are [`Error`], named after RocketMQ 5's `apache.rocketmq.v2.Code`; the gateways map them
//! to their protocol's statuses (HTTP: `gateway-http`'s `error.rs`).

pub mod console;
pub mod local;
pub mod receipt;

use std::future::Future;

use bytes::Bytes;

use crate::processor;

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TopicNotFound(String),
    #[error("{0}")]
    GroupNotFound(String),
    #[error("{0}")]
    MessageNotFound(String),
    #[error("message body of {bytes} bytes is larger than the limit of {max} bytes")]
    BodyTooLarge { bytes: usize, max: usize },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// A receipt handle that was not issued by this cluster or was altered.
    #[error("invalid receipt handle: {0}")]
    InvalidHandle(String),
    /// A receipt handle whose lease ran out or was replaced.
    #[error("receipt handle expired: {0}")]
    ExpiredHandle(String),
    /// The broker cannot take this now (flow control); worth retrying shortly.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Unavailable(String),
    /// Stored, but the requested durability was not reached in time.
    #[error("{0}")]
    DurabilityTimeout(String),
    #[error("{0}")]
    NotSupported(String),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// RocketMQ 5's name for the error (`apache.rocketmq.v2.Code`).
    pub fn name(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "BAD_REQUEST",
            Error::TopicNotFound(_) => "TOPIC_NOT_FOUND",
            Error::GroupNotFound(_) => "CONSUMER_GROUP_NOT_FOUND",
            Error::MessageNotFound(_) => "MESSAGE_NOT_FOUND",
            Error::BodyTooLarge { .. } => "MESSAGE_BODY_TOO_LARGE",
            Error::Forbidden(_) => "FORBIDDEN",
            Error::Conflict(_) => "CONFLICT",
            Error::InvalidHandle(_) | Error::ExpiredHandle(_) => "INVALID_RECEIPT_HANDLE",
            Error::Busy(_) => "TOO_MANY_REQUESTS",
            Error::Unavailable(_) => "SERVICE_UNAVAILABLE",
            Error::DurabilityTimeout(_) => "MASTER_PERSISTENCE_TIMEOUT",
            Error::NotSupported(_) => "NOT_IMPLEMENTED",
            Error::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// RocketMQ 5's numeric code for [`Error::name`].
    pub fn rmq_code(&self) -> i32 {
        match self {
            Error::BadRequest(_) => 40000,
            Error::TopicNotFound(_) => 40402,
            Error::GroupNotFound(_) => 40403,
            Error::MessageNotFound(_) => 40401,
            Error::BodyTooLarge { .. } => 41301,
            Error::Forbidden(_) => 40300,
            Error::Conflict(_) => 40900,
            Error::InvalidHandle(_) | Error::ExpiredHandle(_) => 40013,
            Error::Busy(_) => 42900,
            Error::Unavailable(_) => 50300,
            Error::DurabilityTimeout(_) => 50401,
            Error::NotSupported(_) => 50100,
            Error::Internal(_) => 50000,
        }
    }
}

/// The one mapping from the processors' errors.
impl From<processor::Error> for Error {
    fn from(e: processor::Error) -> Error {
        use processor::Error as P;
        match e {
            P::TopicNotExist(m) => Error::TopicNotFound(m),
            P::SubscriptionGroupNotExist(m) => Error::GroupNotFound(m),
            P::NoPermission(m) => Error::Forbidden(m),
            P::MessageIllegal(m) | P::SubscriptionParseFailed(m) | P::Body(m) => Error::BadRequest(m),
            P::QueryNotFound(m) => Error::MessageNotFound(m),
            P::ServiceNotAvailable(m) => Error::Unavailable(m),
            P::Store(e @ crate::store::Error::MessageTooLarge { .. }) => Error::BadRequest(e.to_string()),
            P::Store(crate::store::Error::DiskFull(m)) => Error::Busy(format!("disk full: {m}")),
            P::Store(e @ (crate::store::Error::Poisoned | crate::store::Error::ShutDown)) => {
                Error::Unavailable(e.to_string())
            }
            P::Store(crate::store::Error::FlushTimeout { .. }) => {
                Error::DurabilityTimeout("the disk flush did not finish in time".into())
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A message to publish.
#[derive(Clone, Debug, Default)]
pub struct OutgoingMessage {
    pub body: Bytes,
    pub tag: Option<String>,
    pub keys: Vec<String>,
    /// User properties.
    pub properties: Vec<(String, String)>,
    /// Delivered no earlier than this (rounded up to the broker's next delay level).
    pub delay_ms: Option<u64>,
    /// A queue of the topic; otherwise the broker picks one (round robin).
    pub queue_id: Option<u32>,
    /// Store as a transactional half message, delivered after a commit.
    pub transactional: bool,
}

/// How durable a published message is when the answer comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// In the page cache (ASYNC_FLUSH).
    Memory,
    /// Flushed to disk (SYNC_FLUSH).
    Disk,
    /// Copied to a slave (SYNC_MASTER).
    Replicated,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Memory => "memory",
            Durability::Disk => "disk",
            Durability::Replicated => "replicated",
        }
    }
}

/// The outcome of one published message.
#[derive(Clone, Debug)]
pub struct Published {
    /// The message id clients see (`UNIQ_KEY`).
    pub message_id: String,
    /// RocketMQ's offset message id (store host and CommitLog offset).
    pub offset_message_id: String,
    pub topic: String,
    pub queue_id: u32,
    pub queue_offset: u64,
    /// RocketMQ's `SendStatus`: `SEND_OK`, `FLUSH_DISK_TIMEOUT`, `FLUSH_SLAVE_TIMEOUT`,
    /// `SLAVE_NOT_AVAILABLE`.
    pub status: &'static str,
    pub durability: Durability,
    /// For a half message: the id to commit or roll back with.
    pub transaction_id: Option<String>,
}

/// A stored message, decoded.
#[derive(Clone, Debug)]
pub struct Message {
    pub message_id: String,
    pub offset_message_id: String,
    /// The topic the producer sent to (for a redelivery: the original topic).
    pub topic: String,
    pub queue_id: u32,
    pub queue_offset: u64,
    pub tag: Option<String>,
    pub keys: Vec<String>,
    /// User properties (system ones such as `UNIQ_KEY`, `TAGS`, `KEYS` left out).
    pub properties: Vec<(String, String)>,
    pub born_timestamp_ms: i64,
    pub store_timestamp_ms: i64,
    pub reconsume_times: i32,
    pub body: Bytes,
}

/// A pull by offset.
#[derive(Clone, Debug, Default)]
pub struct PullBatch {
    pub messages: Vec<Message>,
    pub next_offset: u64,
    pub min_offset: u64,
    pub max_offset: u64,
    /// The asked offset was outside the queue; `next_offset` is where reading can go on.
    pub offset_moved: bool,
}

/// A simple-consumer receive.
#[derive(Clone, Debug)]
pub struct ReceiveRequest {
    pub group: String,
    pub topic: String,
    pub max: usize,
    pub invisible_ms: u64,
    pub wait_ms: u64,
    /// A tag expression (`a || b`, `*`).
    pub tag_filter: Option<String>,
}

/// A received message and its lease.
#[derive(Clone, Debug)]
pub struct Received {
    pub message: Message,
    pub receipt_handle: String,
    pub delivery_attempt: u32,
    pub invisible_until_ms: i64,
}

/// A new lease after changing the invisible time.
#[derive(Clone, Debug)]
pub struct Lease {
    pub receipt_handle: String,
    pub invisible_until_ms: i64,
}

/// A topic and its queues.
#[derive(Clone, Debug)]
pub struct TopicInfo {
    pub name: String,
    pub read_queues: u32,
    pub write_queues: u32,
    pub perm: u32,
    /// `(queue id, min offset, max offset)`.
    pub queues: Vec<(u32, u64, u64)>,
}

/// A consumer group's settings.
#[derive(Clone, Debug)]
pub struct GroupInfo {
    pub name: String,
    pub consume_enable: bool,
    pub retry_max_times: i32,
    pub retry_queues: u32,
}

/// One queue's consumer progress.
#[derive(Clone, Debug)]
pub struct QueueProgress {
    pub topic: String,
    pub queue_id: u32,
    pub broker_offset: u64,
    pub consumer_offset: i64,
    pub lag: u64,
    pub inflight: u64,
}

/// What `/readyz` checks.
#[derive(Clone, Debug)]
pub struct Readiness {
    pub store_recovered: bool,
    pub registered: bool,
    pub disk_ok: bool,
    pub writable: bool,
}

/// One broker of the cluster view.
#[derive(Clone, Debug)]
pub struct BrokerView {
    pub cluster: String,
    pub name: String,
    pub id: i64,
    pub addr: String,
    pub role: String,
    pub name_servers: Vec<String>,
}

/// A consumer connected to the broker (a member of a group).
#[derive(Clone, Debug)]
pub struct Member {
    pub client_id: String,
    pub addr: String,
    pub language: String,
    /// RocketMQ's version code of the client.
    pub version: i32,
}

/// What the broker knows of a group's online consumers.
#[derive(Clone, Debug, Default)]
pub struct GroupRuntime {
    pub members: Vec<Member>,
    /// `(topic, subscription expression)`.
    pub subscriptions: Vec<(String, String)>,
    /// `CONSUME_ACTIVELY` (pull) or `CONSUME_PASSIVELY` (push); empty when nobody is online.
    pub consume_type: String,
    /// `CLUSTERING` or `BROADCASTING`; empty when nobody is online.
    pub message_model: String,
}

/// One queue of an offset reset: where the group is, and where the reset puts it.
#[derive(Clone, Debug)]
pub struct OffsetReset {
    pub topic: String,
    pub queue_id: u32,
    /// The committed offset before the reset; `None` when the group has none on this queue.
    pub current: Option<u64>,
    pub target: u64,
    /// Messages the group will consume from the target (broker offset minus target).
    pub lag_after: u64,
}

/// Where an offset reset moves a group to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetTo {
    Earliest,
    Latest,
    /// The first message stored at or after this time, ms since the epoch.
    Timestamp(i64),
}

/// A bounded scan of a topic by store time.
#[derive(Clone, Debug, Default)]
pub struct TimeQuery {
    pub messages: Vec<Message>,
    /// True when the scan stopped at its budget before the end of the time range.
    pub partial: bool,
}

/// Whether a group has consumed a message.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub group: String,
    /// `CONSUMED`, `NOT_CONSUMED_YET` or `NO_OFFSET` (the group never committed on this queue).
    pub status: &'static str,
    pub consumer_offset: Option<u64>,
}

/// One broker as the cluster page shows it.
#[derive(Clone, Debug)]
pub struct BrokerStatus {
    pub cluster: String,
    pub name: String,
    pub id: i64,
    pub addr: String,
    /// `GET_BROKER_RUNTIME_INFO`'s table (`brokerVersionDesc`, `putTps`, `commitLogDiskRatio`,
    /// `haSlaveLagBytes`, ...); empty when the broker did not answer.
    pub runtime: std::collections::BTreeMap<String, String>,
    /// Why the runtime table is missing.
    pub error: Option<String>,
}

/// The cluster as the name servers see it, with each broker's runtime figures.
#[derive(Clone, Debug, Default)]
pub struct ClusterOverview {
    pub name_servers: Vec<String>,
    pub brokers: Vec<BrokerStatus>,
    /// Why the name servers could not be asked (the list then holds this broker only).
    pub name_server_error: Option<String>,
}

/// A topic's route as the name servers publish it.
#[derive(Clone, Debug, Default)]
pub struct TopicRoute {
    /// `(broker name, broker id → address)`.
    pub brokers: Vec<(String, std::collections::BTreeMap<u64, String>)>,
    /// `(broker name, read queues, write queues, perm)`.
    pub queues: Vec<(String, u32, u32, u32)>,
}

fn not_supported<T>(what: &str) -> Result<T> {
    Err(Error::NotSupported(format!("{what} is not available through this gateway")))
}

/// The operations a gateway needs from the broker (or the cluster).
pub trait Messaging: Send + Sync + 'static {
    /// Stores `messages` in `topic`. Several plain messages go in as one batch (one queue).
    fn publish(
        &self,
        topic: &str,
        messages: Vec<OutgoingMessage>,
        producer_group: &str,
    ) -> impl Future<Output = Result<Vec<Published>>> + Send;

    /// [`Messaging::publish`] in two steps, for a publisher that keeps several publishes in
    /// flight: the messages are appended before this returns (so successive calls keep their
    /// order), and the future answers once they are durable as configured. A batch can then be
    /// appended while the one before it waits for its flush or its slave. Without `wait` the
    /// future answers once they are stored and readable, durable or not (RocketMQ's
    /// `WAIT=false`; AMQP publishes without confirms).
    ///
    /// # Errors
    /// What `publish` refuses before storing (names, sizes, unknown queues).
    fn publish_pipelined(
        &self,
        topic: &str,
        messages: Vec<OutgoingMessage>,
        producer_group: &str,
        wait: bool,
    ) -> Result<impl Future<Output = Result<Vec<Published>>> + Send + 'static>;

    /// Commits or rolls back a half message by the id [`Published::transaction_id`] gave.
    fn end_transaction(&self, transaction_id: &str, commit: bool) -> impl Future<Output = Result<()>> + Send;

    /// Reads a queue from `offset`, waiting up to `wait_ms` for a first message.
    fn pull(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max: usize,
        wait_ms: u64,
    ) -> impl Future<Output = Result<PullBatch>> + Send;

    fn receive(&self, req: ReceiveRequest) -> impl Future<Output = Result<Vec<Received>>> + Send;

    /// Acknowledges a received message; acknowledging twice succeeds.
    fn ack(&self, group: &str, topic: &str, handle: &str) -> impl Future<Output = Result<()>> + Send;

    /// Gives a message back: delivered again after `delay_ms`, through the retry topic (and the
    /// dead-letter queue after the group's retry limit).
    fn nack(&self, group: &str, topic: &str, handle: &str, delay_ms: u64) -> impl Future<Output = Result<()>> + Send;

    fn change_invisible(
        &self,
        group: &str,
        topic: &str,
        handle: &str,
        invisible_ms: u64,
    ) -> impl Future<Output = Result<Lease>> + Send;

    /// By `UNIQ_KEY` message id or offset message id.
    fn message_by_id(&self, topic: &str, id: &str) -> impl Future<Output = Result<Message>> + Send;

    fn messages_by_key(&self, topic: &str, key: &str, max: usize) -> impl Future<Output = Result<Vec<Message>>> + Send;

    fn topics(&self) -> impl Future<Output = Result<Vec<TopicInfo>>> + Send;

    fn topic(&self, topic: &str) -> impl Future<Output = Result<TopicInfo>> + Send;

    /// Creates or updates a topic.
    fn put_topic(
        &self,
        topic: &str,
        read_queues: u32,
        write_queues: u32,
    ) -> impl Future<Output = Result<TopicInfo>> + Send;

    fn delete_topic(&self, topic: &str) -> impl Future<Output = Result<()>> + Send;

    fn groups(&self) -> impl Future<Output = Result<Vec<GroupInfo>>> + Send;

    fn group(&self, group: &str) -> impl Future<Output = Result<GroupInfo>> + Send;

    /// Creates or updates a group (`retry_max_times`, `consume_enable`).
    fn put_group(&self, info: GroupInfo) -> impl Future<Output = Result<GroupInfo>> + Send;

    fn delete_group(&self, group: &str) -> impl Future<Output = Result<()>> + Send;

    /// Progress of `group` on each queue of `topic` (or of every topic it consumed).
    fn progress(&self, group: &str, topic: Option<&str>) -> impl Future<Output = Result<Vec<QueueProgress>>> + Send;

    /// Sets `group`'s offset on one queue.
    fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        queue_id: u32,
        offset: u64,
    ) -> impl Future<Output = Result<()>> + Send;

    fn cluster(&self) -> impl Future<Output = Result<Vec<BrokerView>>> + Send;

    fn readiness(&self) -> impl Future<Output = Readiness> + Send;

    /// The largest message body accepted, bytes.
    fn message_bytes_max(&self) -> usize;

    /// Names of every topic, sorted (cheaper than [`Messaging::topics`] for paging).
    fn topic_names(&self) -> impl Future<Output = Result<Vec<String>>> + Send {
        async { Ok(self.topics().await?.into_iter().map(|t| t.name).collect()) }
    }

    /// Names of every consumer group, sorted.
    fn group_names(&self) -> impl Future<Output = Result<Vec<String>>> + Send {
        async { Ok(self.groups().await?.into_iter().map(|g| g.name).collect()) }
    }

    /// The group's online members and subscriptions.
    fn group_runtime(&self, group: &str) -> impl Future<Output = Result<GroupRuntime>> + Send {
        let _ = group;
        async { not_supported("group members") }
    }

    /// Moves (or, with `dry_run`, previews moving) `group`'s offsets on every queue of `topic`;
    /// works whether or not a consumer is online (online ones are told the new offsets).
    fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        to: ResetTo,
        dry_run: bool,
    ) -> impl Future<Output = Result<Vec<OffsetReset>>> + Send {
        let _ = (group, topic, to, dry_run);
        async { not_supported("offset reset") }
    }

    /// Messages of `topic` stored between `begin_ms` and `end_ms`, at most `max`.
    fn messages_by_time(
        &self,
        topic: &str,
        begin_ms: i64,
        end_ms: i64,
        max: usize,
    ) -> impl Future<Output = Result<TimeQuery>> + Send {
        let _ = (topic, begin_ms, end_ms, max);
        async { not_supported("query by time") }
    }

    /// For each group that consumes the message's topic, whether it consumed the message.
    fn delivery(&self, message: &Message) -> impl Future<Output = Result<Vec<Delivery>>> + Send {
        let _ = message;
        async { not_supported("delivery status") }
    }

    /// Sends a message of `%DLQ%<group>` back to `group` (through its retry topic); sending the
    /// same dead letter again answers the first result.
    fn resend_dead_letter(&self, group: &str, message_id: &str) -> impl Future<Output = Result<Published>> + Send {
        let _ = (group, message_id);
        async { not_supported("dead-letter resend") }
    }

    /// The route of `topic` from the name servers.
    fn topic_route(&self, topic: &str) -> impl Future<Output = Result<TopicRoute>> + Send {
        let _ = topic;
        async { not_supported("topic routes") }
    }

    /// The cluster with each broker's runtime figures.
    fn cluster_overview(&self) -> impl Future<Output = Result<ClusterOverview>> + Send {
        async { not_supported("the cluster overview") }
    }
}
