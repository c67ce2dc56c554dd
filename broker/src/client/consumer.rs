//! Consumer primitives: PULL_MESSAGE with every header field, offsets (query, update, min, max,
//! by timestamp), message lookups (VIEW_MESSAGE_BY_ID, QUERY_MESSAGE), and [`PullConsumer`], a
//! consumer group that pulls the queues its caller chooses (no rebalancing of its own).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use super::message::{MessageExt, decode_messages};
use super::{Error, MqClient, Result, lock};
use crate::protocol::body::{ConsumerData, ConsumerIdList, MessageQueue, SubscriptionData};
use crate::protocol::message_id::decode_offset_msg_id;
use crate::protocol::{request, response};
use crate::remoting::RemotingCommand;
use crate::store::format::PROPERTY_UNIQ_KEY;

/// PULL_MESSAGE `sysFlag` bits.
pub mod pull_flag {
    /// Also store `commitOffset` as the group's offset.
    pub const COMMIT_OFFSET: i32 = 0x1;
    /// The broker may hold the request until messages arrive (long polling).
    pub const SUSPEND: i32 = 0x2;
    /// Filter with this request's `subscription`/`expressionType`, not the heartbeat's.
    pub const SUBSCRIPTION: i32 = 0x4;
    pub const CLASS_FILTER: i32 = 0x8;
    pub const LITE_PULL_MESSAGE: i32 = 0x10;
}

/// Expression types of subscriptions.
pub const EXPRESSION_TAG: &str = "TAG";
pub const EXPRESSION_SQL92: &str = "SQL92";

/// One PULL_MESSAGE request (`PullMessageRequestHeader`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub consumer_group: String,
    pub queue: MessageQueue,
    pub queue_offset: u64,
    pub max_msg_nums: u32,
    /// [`pull_flag`] bits.
    pub sys_flag: i32,
    /// The offset to store for the group when [`pull_flag::COMMIT_OFFSET`] is set.
    pub commit_offset: i64,
    /// How long the broker may hold the request ([`pull_flag::SUSPEND`]).
    pub suspend_timeout_ms: u64,
    /// The filter expression (`*`, `TagA || TagB`, or SQL92).
    pub subscription: Option<String>,
    pub sub_version: i64,
    /// `TAG` or `SQL92`.
    pub expression_type: Option<String>,
}

impl PullRequest {
    /// A long-polling pull of up to 32 messages matching every tag, with the subscription in the
    /// request (sysFlag SUSPEND | SUBSCRIPTION, hold 15 s).
    pub fn new(consumer_group: impl Into<String>, queue: MessageQueue, queue_offset: u64) -> PullRequest {
        PullRequest {
            consumer_group: consumer_group.into(),
            queue,
            queue_offset,
            max_msg_nums: 32,
            sys_flag: pull_flag::SUSPEND | pull_flag::SUBSCRIPTION,
            commit_offset: 0,
            suspend_timeout_ms: 15_000,
            subscription: Some("*".into()),
            sub_version: chrono::Utc::now().timestamp_millis(),
            expression_type: Some(EXPRESSION_TAG.into()),
        }
    }

    /// The request as a remoting command.
    pub fn to_command(&self, client: &MqClient) -> RemotingCommand {
        let mut cmd = client
            .request(request::PULL_MESSAGE)
            .with_field("consumerGroup", &self.consumer_group)
            .with_field("topic", &self.queue.topic)
            .with_field("queueId", self.queue.queue_id)
            .with_field("queueOffset", self.queue_offset)
            .with_field("maxMsgNums", self.max_msg_nums)
            .with_field("sysFlag", self.sys_flag)
            .with_field("commitOffset", self.commit_offset)
            .with_field("suspendTimeoutMillis", self.suspend_timeout_ms);
        if let Some(s) = &self.subscription {
            cmd = cmd.with_field("subscription", s);
        }
        cmd = cmd.with_field("subVersion", self.sub_version);
        if let Some(t) = &self.expression_type {
            cmd = cmd.with_field("expressionType", t);
        }
        cmd
    }
}

/// Java's `PullStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    /// Code 0: messages in the body.
    Found,
    /// Code 19: nothing at this offset yet.
    NoNewMsg,
    /// Code 20: messages were there but none matched the filter; continue at `next_begin_offset`.
    NoMatchedMsg,
    /// Code 21: the offset is outside the queue; continue at `next_begin_offset`.
    OffsetIllegal,
}

/// A pull response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullResult {
    pub status: PullStatus,
    pub next_begin_offset: u64,
    pub min_offset: u64,
    pub max_offset: u64,
    /// The broker id to pull this queue from next (0 = master).
    pub suggest_which_broker_id: u64,
    pub messages: Vec<MessageExt>,
}

/// Where a consumer starts on a queue for which its group has no stored offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeFromWhere {
    LastOffset,
    FirstOffset,
    /// Milliseconds since the epoch.
    Timestamp(i64),
}

impl ConsumeFromWhere {
    pub fn name(self) -> &'static str {
        match self {
            ConsumeFromWhere::LastOffset => "CONSUME_FROM_LAST_OFFSET",
            ConsumeFromWhere::FirstOffset => "CONSUME_FROM_FIRST_OFFSET",
            ConsumeFromWhere::Timestamp(_) => "CONSUME_FROM_TIMESTAMP",
        }
    }
}

/// Java's `String.hashCode` (over UTF-16 units): the tag code brokers filter on.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The subscription data Java builds for a TAG expression (`*`, or tags separated by `||`).
pub fn tag_subscription(topic: &str, expression: &str) -> SubscriptionData {
    let expression = expression.trim();
    let mut data = SubscriptionData {
        topic: topic.to_owned(),
        sub_string: "*".into(),
        expression_type: Some(EXPRESSION_TAG.into()),
        sub_version: chrono::Utc::now().timestamp_millis(),
        ..SubscriptionData::default()
    };
    if expression.is_empty() || expression == "*" {
        return data;
    }
    data.sub_string = expression.to_owned();
    for tag in expression.split("||").map(str::trim).filter(|t| !t.is_empty()) {
        if !data.tags_set.iter().any(|t| t == tag) {
            data.tags_set.push(tag.to_owned());
            data.code_set.push(java_string_hash(tag));
        }
    }
    data
}

fn parse_field<T: std::str::FromStr>(resp: &RemotingCommand, field: &'static str) -> Result<T> {
    let v = resp.field(field).ok_or_else(|| Error::decode("response header", format!("no {field}")))?;
    v.trim().parse().map_err(|_| Error::decode("response header", format!("{field}={v:?}")))
}

impl MqClient {
    /// PULL_MESSAGE (11) to `addr`. Waits `suspend_timeout_ms` plus the request timeout when the
    /// request may be held.
    ///
    /// # Errors
    /// [`Error::Broker`] for codes other than 0, 19, 20, 21; [`Error::Decode`] for a malformed
    /// body or header.
    pub async fn pull_message(&self, addr: &str, req: &PullRequest, check_crc: bool) -> Result<PullResult> {
        let mut timeout = self.config().request_timeout;
        if req.sys_flag & pull_flag::SUSPEND != 0 {
            timeout += Duration::from_millis(req.suspend_timeout_ms);
        }
        let resp = self.invoke_broker_timeout(addr, req.to_command(self), timeout).await?;
        let status = match resp.code {
            response::SUCCESS => PullStatus::Found,
            response::PULL_NOT_FOUND => PullStatus::NoNewMsg,
            response::PULL_RETRY_IMMEDIATELY => PullStatus::NoMatchedMsg,
            response::PULL_OFFSET_MOVED => PullStatus::OffsetIllegal,
            _ => return Err(Error::broker(addr, &resp)),
        };
        let messages = if status == PullStatus::Found { decode_messages(&resp.body, check_crc)? } else { Vec::new() };
        Ok(PullResult {
            status,
            next_begin_offset: parse_field(&resp, "nextBeginOffset")?,
            min_offset: parse_field(&resp, "minOffset")?,
            max_offset: parse_field(&resp, "maxOffset")?,
            suggest_which_broker_id: resp
                .field("suggestWhichBrokerId")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
            messages,
        })
    }

    async fn queue_broker(&self, queue: &MessageQueue) -> Result<String> {
        self.master_addr_for(&queue.topic, &queue.broker_name).await
    }

    /// QUERY_CONSUMER_OFFSET (14): the group's stored offset, `None` when the broker has none
    /// (code 22).
    pub async fn query_consumer_offset(&self, group: &str, queue: &MessageQueue) -> Result<Option<u64>> {
        let addr = self.queue_broker(queue).await?;
        let cmd = self
            .request(request::QUERY_CONSUMER_OFFSET)
            .with_field("consumerGroup", group)
            .with_field("topic", &queue.topic)
            .with_field("queueId", queue.queue_id);
        let resp = self.invoke_broker(&addr, cmd).await?;
        match resp.code {
            response::SUCCESS => Ok(Some(parse_field(&resp, "offset")?)),
            response::QUERY_NOT_FOUND => Ok(None),
            _ => Err(Error::broker(&addr, &resp)),
        }
    }

    fn update_offset_command(&self, group: &str, queue: &MessageQueue, offset: u64) -> RemotingCommand {
        self.request(request::UPDATE_CONSUMER_OFFSET)
            .with_field("consumerGroup", group)
            .with_field("topic", &queue.topic)
            .with_field("queueId", queue.queue_id)
            .with_field("commitOffset", offset)
    }

    /// UPDATE_CONSUMER_OFFSET (15), waiting for the broker's answer.
    pub async fn update_consumer_offset(&self, group: &str, queue: &MessageQueue, offset: u64) -> Result<()> {
        let addr = self.queue_broker(queue).await?;
        self.invoke_broker_ok(&addr, self.update_offset_command(group, queue, offset)).await.map(|_| ())
    }

    /// UPDATE_CONSUMER_OFFSET (15) oneway, as Java's consumers send it every 5 s.
    pub async fn update_consumer_offset_oneway(&self, group: &str, queue: &MessageQueue, offset: u64) -> Result<()> {
        let addr = self.queue_broker(queue).await?;
        self.invoke_broker_oneway(&addr, self.update_offset_command(group, queue, offset)).await
    }

    async fn queue_offset_call(&self, code: i32, queue: &MessageQueue, extra: Option<(&str, i64)>) -> Result<i64> {
        let addr = self.queue_broker(queue).await?;
        let mut cmd = self.request(code).with_field("topic", &queue.topic).with_field("queueId", queue.queue_id);
        let mut field = "offset";
        if let Some((k, v)) = extra {
            cmd = cmd.with_field(k, v);
        }
        if code == request::GET_EARLIEST_MSG_STORETIME {
            field = "timestamp";
        }
        let resp = self.invoke_broker_ok(&addr, cmd).await?;
        parse_field(&resp, field)
    }

    /// GET_MAX_OFFSET (30): the next offset to be written in `queue`.
    pub async fn max_offset(&self, queue: &MessageQueue) -> Result<u64> {
        self.queue_offset_call(request::GET_MAX_OFFSET, queue, None).await.map(|v| v.max(0) as u64)
    }

    /// GET_MIN_OFFSET (31): the first offset still held in `queue`.
    pub async fn min_offset(&self, queue: &MessageQueue) -> Result<u64> {
        self.queue_offset_call(request::GET_MIN_OFFSET, queue, None).await.map(|v| v.max(0) as u64)
    }

    /// SEARCH_OFFSET_BY_TIMESTAMP (29): the offset of the first message stored at or after
    /// `timestamp_ms` (as the broker finds it).
    pub async fn search_offset(&self, queue: &MessageQueue, timestamp_ms: i64) -> Result<u64> {
        self.queue_offset_call(request::SEARCH_OFFSET_BY_TIMESTAMP, queue, Some(("timestamp", timestamp_ms)))
            .await
            .map(|v| v.max(0) as u64)
    }

    /// GET_EARLIEST_MSG_STORETIME (32): store time of the oldest message in `queue`.
    pub async fn earliest_msg_store_time(&self, queue: &MessageQueue) -> Result<i64> {
        self.queue_offset_call(request::GET_EARLIEST_MSG_STORETIME, queue, None).await
    }

    /// GET_CONSUMER_LIST_BY_GROUP (38) from a broker of `topic`: the client ids of the group.
    pub async fn consumer_id_list(&self, group: &str, topic: &str) -> Result<Vec<String>> {
        let route = self.route(topic).await?;
        let broker = route
            .read_queues
            .first()
            .map(|q| q.broker_name.clone())
            .ok_or_else(|| Error::NoRoute { topic: topic.into() })?;
        let addr = self.master_addr_for(topic, &broker).await?;
        let resp = self
            .invoke_broker_ok(
                &addr,
                self.request(request::GET_CONSUMER_LIST_BY_GROUP).with_field("consumerGroup", group),
            )
            .await?;
        let list: ConsumerIdList =
            crate::protocol::body::parse(&resp.body).map_err(|e| Error::decode("consumer id list", e))?;
        Ok(list.consumer_id_list)
    }

    /// VIEW_MESSAGE_BY_ID (33): the message with an offset message id, from the broker the id
    /// names.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `offset_msg_id` is not an offset message id.
    pub async fn view_message(&self, offset_msg_id: &str) -> Result<MessageExt> {
        let (host, offset) = decode_offset_msg_id(offset_msg_id)
            .ok_or_else(|| Error::Invalid(format!("{offset_msg_id:?} is not an offset message id")))?;
        let addr = host.to_string();
        let resp = self
            .invoke_broker_ok(&addr, self.request(request::VIEW_MESSAGE_BY_ID).with_field("offset", offset))
            .await?;
        decode_messages(&resp.body, true)?.into_iter().next().ok_or_else(|| Error::decode("view message", "empty body"))
    }

    /// QUERY_MESSAGE (12) on every master of `topic`'s route: messages whose key (or, with
    /// `unique_key`, whose `UNIQ_KEY`) is `key`, stored between the two times.
    pub async fn query_message(
        &self,
        topic: &str,
        key: &str,
        max_num: u32,
        begin_ms: i64,
        end_ms: i64,
        unique_key: bool,
    ) -> Result<Vec<MessageExt>> {
        let route = self.route(topic).await?;
        let mut brokers: Vec<&str> = route.route.broker_datas.iter().map(|b| b.broker_name.as_str()).collect();
        brokers.sort();
        brokers.dedup();
        let mut out = Vec::new();
        let mut answered = 0;
        let mut last_err = None;
        for broker in brokers {
            let Some(addr) = self.routes().broker_addr(broker, 0).or_else(|| self.routes().any_broker_addr(broker))
            else {
                continue;
            };
            let cmd = self
                .request(request::QUERY_MESSAGE)
                .with_field("topic", topic)
                .with_field("key", key)
                .with_field("maxNum", max_num)
                .with_field("beginTimestamp", begin_ms)
                .with_field("endTimestamp", end_ms)
                .with_field("_UNIQUE_KEY_QUERY", unique_key);
            let resp = match self.invoke_broker_timeout(&addr, cmd, self.config().request_timeout * 3).await {
                Ok(r) => r,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            match resp.code {
                response::SUCCESS => {
                    answered += 1;
                    for m in decode_messages(&resp.body, false)? {
                        let hit = if unique_key {
                            m.property(PROPERTY_UNIQ_KEY) == Some(key)
                        } else {
                            m.keys().any(|k| k == key)
                        };
                        if hit && m.topic == topic {
                            out.push(m);
                        }
                    }
                }
                response::QUERY_NOT_FOUND => answered += 1,
                _ => last_err = Some(Error::broker(&addr, &resp)),
            }
        }
        match last_err {
            Some(e) if answered == 0 => Err(e),
            _ => Ok(out),
        }
    }

    /// The message with id `msg_id` in `topic`: an offset id is viewed directly, otherwise it is
    /// looked up as a client id (`UNIQ_KEY`) through the index.
    pub async fn find_message_by_id(&self, topic: &str, msg_id: &str) -> Result<Option<MessageExt>> {
        if decode_offset_msg_id(msg_id).is_some()
            && let Ok(m) = self.view_message(msg_id).await
        {
            return Ok(Some(m));
        }
        let found = self.query_message(topic, msg_id, 32, 0, i64::MAX, true).await?;
        Ok(found.into_iter().min_by_key(|m| m.store_timestamp))
    }
}

/// Pull consumer settings.
#[derive(Clone, Debug)]
pub struct PullConsumerOptions {
    /// Messages per pull (`pullBatchSize`, 32).
    pub max_msg_nums: u32,
    /// Let the broker hold pulls that find nothing (long polling).
    pub long_polling: bool,
    /// How long the broker may hold a pull (15 s).
    pub suspend_timeout_ms: u64,
    /// Where to start on queues without a stored offset.
    pub consume_from_where: ConsumeFromWhere,
    /// `CLUSTERING` or `BROADCASTING` (reported in heartbeats).
    pub message_model: String,
    /// Verify each body's CRC when decoding.
    pub check_crc: bool,
}

impl Default for PullConsumerOptions {
    fn default() -> Self {
        PullConsumerOptions {
            max_msg_nums: 32,
            long_polling: true,
            suspend_timeout_ms: 15_000,
            consume_from_where: ConsumeFromWhere::LastOffset,
            message_model: "CLUSTERING".into(),
            check_crc: true,
        }
    }
}

/// A consumer group pulling queues its caller picks (Java's `DefaultMQPullConsumer` shape):
/// subscriptions, pulls with the subscription in the request, offsets, heartbeats.
pub struct PullConsumer {
    client: MqClient,
    group: String,
    options: PullConsumerOptions,
    subscriptions: Mutex<BTreeMap<String, SubscriptionData>>,
    /// Broker id the broker suggested per queue.
    pull_from: Mutex<HashMap<MessageQueue, u64>>,
}

impl PullConsumer {
    pub fn new(client: MqClient, group: impl Into<String>) -> PullConsumer {
        PullConsumer::with_options(client, group, PullConsumerOptions::default())
    }

    pub fn with_options(client: MqClient, group: impl Into<String>, options: PullConsumerOptions) -> PullConsumer {
        let c = PullConsumer {
            client,
            group: group.into(),
            options,
            subscriptions: Mutex::new(BTreeMap::new()),
            pull_from: Mutex::new(HashMap::new()),
        };
        c.register();
        c
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn client(&self) -> &MqClient {
        &self.client
    }

    pub fn options(&self) -> &PullConsumerOptions {
        &self.options
    }

    fn register(&self) {
        let subs = lock(&self.subscriptions);
        self.client.register_consumer(ConsumerData {
            consume_from_where: Some(self.options.consume_from_where.name().into()),
            consume_type: Some("CONSUME_ACTIVELY".into()),
            group_name: self.group.clone(),
            message_model: Some(self.options.message_model.clone()),
            subscription_data_set: subs.values().cloned().collect(),
            unit_mode: false,
        });
    }

    /// Subscribes `topic` with a tag expression (`*` or `TagA || TagB`).
    pub fn subscribe(&self, topic: &str, expression: &str) {
        lock(&self.subscriptions).insert(topic.to_owned(), tag_subscription(topic, expression));
        self.register();
    }

    /// Subscribes `topic` with an SQL92 expression over message properties.
    pub fn subscribe_sql92(&self, topic: &str, expression: &str) {
        let data = SubscriptionData {
            topic: topic.to_owned(),
            sub_string: expression.to_owned(),
            expression_type: Some(EXPRESSION_SQL92.into()),
            sub_version: chrono::Utc::now().timestamp_millis(),
            ..SubscriptionData::default()
        };
        lock(&self.subscriptions).insert(topic.to_owned(), data);
        self.register();
    }

    /// The readable queues of `topic`.
    pub async fn queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        self.client.subscribe_queues(topic).await
    }

    /// Sends a heartbeat with this client's groups to every known broker.
    pub async fn heartbeat(&self) -> Result<usize> {
        self.client.heartbeat().await
    }

    /// Pulls `queue` from `offset` with the topic's subscription (`*` when not subscribed),
    /// long polling if enabled. Messages whose tag is not subscribed are dropped, as Java's
    /// client does after the broker's hash filter.
    pub async fn pull(&self, queue: &MessageQueue, offset: u64) -> Result<PullResult> {
        self.pull_with(queue, offset, self.options.max_msg_nums, self.options.long_polling, None).await
    }

    /// Pull with explicit size, blocking and commit offset (sets [`pull_flag::COMMIT_OFFSET`]).
    pub async fn pull_with(
        &self,
        queue: &MessageQueue,
        offset: u64,
        max_msg_nums: u32,
        block: bool,
        commit_offset: Option<u64>,
    ) -> Result<PullResult> {
        let sub = lock(&self.subscriptions).get(&queue.topic).cloned();
        let sub = sub.unwrap_or_else(|| tag_subscription(&queue.topic, "*"));
        let mut req = PullRequest::new(&self.group, queue.clone(), offset);
        req.max_msg_nums = max_msg_nums;
        req.sys_flag = pull_flag::SUBSCRIPTION;
        if block {
            req.sys_flag |= pull_flag::SUSPEND;
        }
        if let Some(c) = commit_offset {
            req.sys_flag |= pull_flag::COMMIT_OFFSET;
            req.commit_offset = c as i64;
        }
        req.suspend_timeout_ms = self.options.suspend_timeout_ms;
        req.subscription = Some(sub.sub_string.clone());
        req.sub_version = sub.sub_version;
        req.expression_type = sub.expression_type.clone();
        let broker_id = lock(&self.pull_from).get(queue).copied().unwrap_or(0);
        let addr = match self.client.routes().broker_addr(&queue.broker_name, broker_id) {
            Some(a) => a,
            None => self.client.master_addr_for(&queue.topic, &queue.broker_name).await?,
        };
        let mut result = self.client.pull_message(&addr, &req, self.options.check_crc).await?;
        lock(&self.pull_from).insert(queue.clone(), result.suggest_which_broker_id);
        let is_tag = sub.expression_type.as_deref().is_none_or(|t| t == EXPRESSION_TAG);
        if is_tag && !sub.tags_set.is_empty() {
            result.messages.retain(|m| m.tags().is_some_and(|t| sub.tags_set.iter().any(|s| s == t)));
        }
        Ok(result)
    }

    /// The group's stored offset of `queue`, if any.
    pub async fn fetch_consume_offset(&self, queue: &MessageQueue) -> Result<Option<u64>> {
        self.client.query_consumer_offset(&self.group, queue).await
    }

    /// Where to pull `queue` from: the stored offset, else by [`PullConsumerOptions::consume_from_where`].
    pub async fn start_offset(&self, queue: &MessageQueue) -> Result<u64> {
        if let Some(o) = self.fetch_consume_offset(queue).await? {
            return Ok(o);
        }
        match self.options.consume_from_where {
            ConsumeFromWhere::LastOffset => self.client.max_offset(queue).await,
            ConsumeFromWhere::FirstOffset => self.client.min_offset(queue).await,
            ConsumeFromWhere::Timestamp(t) => self.client.search_offset(queue, t).await,
        }
    }

    /// Stores `offset` (the next offset to consume) for the group (oneway).
    pub async fn commit_offset(&self, queue: &MessageQueue, offset: u64) -> Result<()> {
        self.client.update_consumer_offset_oneway(&self.group, queue, offset).await
    }
}
