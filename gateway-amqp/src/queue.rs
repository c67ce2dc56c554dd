//! A queue at run time: one task (an actor) per queue owns its read positions, its outstanding
//! (delivered, unacknowledged) messages, its requeued messages and its consumers; everything else
//! talks to it with [`Cmd`]s.
//!
//! Storage: a queue's messages are a RocketMQ topic (`AMQP_Q_<hash>_<incarnation>`, one queue id;
//! or an existing topic for a queue declared with `x-rocketmq-topic`). The actor reads it by
//! offset. Per-message state lives here: the *frontier* of each queue id (the lowest offset not
//! yet acknowledged) is committed as the consumer offset of group `AMQP_G_<...>`, so after a
//! restart delivery resumes from the frontier (messages delivered but unacknowledged before come
//! again: at least once). Requeued messages go back by offset and are delivered before new ones,
//! with `redelivered` set.
//!
//! `redelivered` after a restart: when the door stops ([`Cmd::SaveMark`]), each queue commits the
//! next offset it would have delivered as the offset of group `AMQP_M_<...>`; at start, stored
//! messages below that mark (delivered before, not acknowledged) come with `redelivered` set.
//! After a crash there is no fresh mark, so only a clean restart sets the flag exactly.
//!
//! `x-expires`: the actor notes when the queue was last used (a consumer left, `basic.get`, a
//! declare); when it has had no consumer for that long it tells the door ([`Outlets::expired`]),
//! which deletes it unless it was used meanwhile.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use amq_protocol::protocol::{AMQPClass, basic};
use amq_protocol::types::FieldTable;
use broker::messaging::{Message, Messaging};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::error::Fail;
use crate::metrics::AmqpMetrics;
use crate::props::{self, short};
use crate::wire;

/// Messages read from the store per pull.
pub const PULL_BATCH_MESSAGES: usize = 64;
/// How long the actor long-polls an empty single-queue topic before looking again.
pub const LONG_POLL_MS: u64 = 5_000;
/// How often a multi-queue topic (a native topic under a queue) is polled when idle.
pub const MULTI_QUEUE_POLL_MS: u64 = 100;
/// How often a queue with `x-message-ttl` looks for expired messages at its head (so they expire,
/// and are dead-lettered, with no consumer too).
pub const TTL_SWEEP_MS: u64 = 100;
/// Commands an actor handles between two delivery rounds at most.
pub const COMMANDS_PER_ROUND_MAX: usize = 256;
/// Delivery frames gathered for one consumer before they are handed to its connection.
pub const DELIVERY_GATHER_BYTES: usize = 64 * 1024;

/// Where a queue's actors send what the door must act on.
#[derive(Clone)]
pub struct Outlets {
    /// Messages for a dead-letter exchange.
    pub dead_letters: mpsc::UnboundedSender<DeadLetter>,
    /// Queues unused for their `x-expires` time.
    pub expired: mpsc::UnboundedSender<Arc<QueueHandle>>,
}

/// A message leaving a queue for its dead-letter exchange.
pub struct DeadLetter {
    /// The vhost of the queue (and so of the dead-letter exchange).
    pub vhost: String,
    pub queue: String,
    pub exchange: String,
    pub routing_key: Option<String>,
    /// `rejected`, `expired` or `maxlen`.
    pub reason: &'static str,
    pub message: Message,
}

/// What `x-overflow` says to do when `x-max-length` is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Drop (or dead-letter) the oldest messages (RabbitMQ's default).
    DropHead,
    /// Refuse new publishes (`basic.nack` to confirming publishers).
    RejectPublish,
    /// Refuse new publishes and dead-letter them (reason `maxlen`).
    RejectPublishDlx,
}

/// Delivery frames gathered for one connection's writer (see `Actor::deliver_into`).
struct Gathered {
    out: mpsc::Sender<Vec<u8>>,
    bytes: Vec<u8>,
    /// Positions of the no-ack deliveries in `bytes`.
    auto_acked: Vec<Pos>,
}

/// A message's place: queue id and offset in the backing topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub qid: u32,
    pub offset: u64,
}

/// What becomes of settled messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    Ack,
    Requeue,
    /// Rejected without requeue: dropped.
    Drop,
}

/// A delivered, unacknowledged message as its channel keeps it.
pub struct Unacked {
    pub queue: Arc<QueueHandle>,
    pub pos: Pos,
    pub consumer: Option<String>,
}

/// One channel's delivery tags and prefetch counts, shared by the channel and the queues that
/// deliver to it.
#[derive(Default)]
pub struct Ledger {
    pub next_tag: u64,
    pub unacked: BTreeMap<u64, Unacked>,
    pub per_consumer: HashMap<String, usize>,
    /// `basic.qos` with `global=true`: unacknowledged messages on the channel, 0 = no limit.
    pub prefetch_channel: u16,
    /// Set when the channel closes: nothing more is delivered to it.
    pub closed: bool,
    /// Deliveries acknowledged (or rejected) in a transaction not yet committed: taken out of
    /// `unacked` but still counted against the prefetch limits until `tx.commit`.
    pub held: usize,
}

impl Ledger {
    /// Takes delivery tags up to `tag` (or only `tag`), in tag order.
    ///
    /// # Errors
    ///
    /// 406 `unknown delivery tag` when `tag` is not outstanding (tag 0 with `multiple` means all).
    pub fn take(&mut self, tag: u64, multiple: bool) -> Result<Vec<Unacked>, Fail> {
        let tags = self.tags(tag, multiple)?;
        Ok(tags.into_iter().filter_map(|t| self.remove(t)).collect())
    }

    /// Holds deliveries for a transaction: as [`Ledger::take`], with each delivery's tag, but
    /// still counted against the prefetch limits ([`Ledger::held`]) until
    /// [`Ledger::release_held`] (`tx.commit`) or [`Ledger::restore`] (`tx.rollback`).
    ///
    /// # Errors
    ///
    /// As [`Ledger::take`].
    pub fn hold(&mut self, tag: u64, multiple: bool) -> Result<Vec<(u64, Unacked)>, Fail> {
        let tags = self.tags(tag, multiple)?;
        let held: Vec<(u64, Unacked)> =
            tags.into_iter().filter_map(|t| self.unacked.remove(&t).map(|u| (t, u))).collect();
        self.held += held.len();
        Ok(held)
    }

    /// Makes held deliveries outstanding again (`tx.rollback`).
    pub fn restore(&mut self, items: Vec<(u64, Unacked)>) {
        self.held = self.held.saturating_sub(items.len());
        for (tag, u) in items {
            self.unacked.insert(tag, u);
        }
    }

    /// Held deliveries are settled (`tx.commit`): their prefetch credit is free again.
    pub fn release_held(&mut self, items: &[(u64, Unacked)]) {
        self.held = self.held.saturating_sub(items.len());
        for (_, u) in items {
            if let Some(c) = &u.consumer
                && let Some(n) = self.per_consumer.get_mut(c)
            {
                *n = n.saturating_sub(1);
            }
        }
    }

    fn tags(&self, tag: u64, multiple: bool) -> Result<Vec<u64>, Fail> {
        let tags: Vec<u64> = if multiple {
            if tag == 0 {
                self.unacked.keys().copied().collect()
            } else {
                if !self.unacked.contains_key(&tag) && self.unacked.range(..=tag).next().is_none() {
                    return Err(Fail::precondition(format!("unknown delivery tag {tag}")));
                }
                self.unacked.range(..=tag).map(|(t, _)| *t).collect()
            }
        } else if self.unacked.contains_key(&tag) {
            vec![tag]
        } else {
            return Err(Fail::precondition(format!("unknown delivery tag {tag}")));
        };
        Ok(tags)
    }

    fn remove(&mut self, tag: u64) -> Option<Unacked> {
        let u = self.unacked.remove(&tag)?;
        if let Some(c) = &u.consumer
            && let Some(n) = self.per_consumer.get_mut(c)
        {
            *n = n.saturating_sub(1);
        }
        Some(u)
    }
}

/// Groups settled messages by queue and tells each queue.
pub fn settle(items: Vec<Unacked>, how: Settle) {
    let mut by_queue: HashMap<usize, (Arc<QueueHandle>, Vec<Pos>)> = HashMap::new();
    for u in items {
        let key = Arc::as_ptr(&u.queue) as usize;
        by_queue.entry(key).or_insert_with(|| (u.queue.clone(), Vec::new())).1.push(u.pos);
    }
    for (_, (q, positions)) in by_queue {
        q.send(Cmd::Settle(positions, how));
    }
}

/// A consumer as its queue keeps it.
pub struct Consumer {
    pub conn: u64,
    /// The client's address (shown by the console).
    pub peer: std::net::SocketAddr,
    pub channel: u16,
    pub tag: String,
    pub no_ack: bool,
    pub exclusive: bool,
    /// `basic.qos` with `global=false` at the time of `basic.consume`; 0 = no limit.
    pub prefetch: u16,
    pub ledger: Arc<Mutex<Ledger>>,
    /// The channel's `channel.flow(active=false)`: nothing is delivered to it while set.
    pub paused: Arc<AtomicBool>,
    pub out: mpsc::Sender<Vec<u8>>,
    pub frame_max: u32,
    /// `basic.consume-ok`, sent by the queue before the first delivery.
    pub ok_frame: Option<Vec<u8>>,
}

/// A message handed out by `basic.get`.
pub struct Got {
    pub message: Message,
    pub pos: Pos,
    pub redelivered: bool,
    pub remaining: u32,
}

/// What the actor is asked.
pub enum Cmd {
    Consume(Consumer, oneshot::Sender<Result<(), Fail>>),
    /// Removes a consumer (or every consumer of a channel when `tag` is `None`); answers how many
    /// consumers are left.
    Cancel {
        conn: u64,
        channel: u16,
        tag: Option<String>,
        reply: oneshot::Sender<usize>,
    },
    Get {
        no_ack: bool,
        reply: oneshot::Sender<Option<Got>>,
    },
    Settle(Vec<Pos>, Settle),
    /// The queue was declared again (passive or not): it counts as used for `x-expires`.
    Touch,
    /// The door stops: commit the delivered mark (the next offset of each queue id).
    SaveMark(oneshot::Sender<()>),
    /// Credit may have changed (a channel-wide prefetch freed by another queue's ack).
    Poke,
    Purge(oneshot::Sender<u32>),
    /// Ready messages and consumers.
    Stats(oneshot::Sender<(u32, u32)>),
    /// Ready and unacknowledged messages (the door's per-queue gauges, refreshed on a timer).
    Depth(oneshot::Sender<(u32, usize)>),
    /// Figures and consumers for the console; changes nothing.
    Snapshot(oneshot::Sender<Snapshot>),
    Delete {
        if_unused: bool,
        if_empty: bool,
        /// Only if the queue reported itself expired and was not used since.
        if_expired: bool,
        reply: oneshot::Sender<Result<u32, Fail>>,
    },
}

/// A queue's figures and consumers at one moment (the answer to [`Cmd::Snapshot`]).
pub struct Snapshot {
    /// Messages ready for delivery (as `queue.declare-ok` counts them).
    pub ready: u32,
    /// Messages delivered and not yet acknowledged.
    pub unacked: usize,
    pub consumers: Vec<ConsumerView>,
}

/// A consumer as the console shows it.
pub struct ConsumerView {
    pub conn: u64,
    pub peer: std::net::SocketAddr,
    pub channel: u16,
    pub tag: String,
    pub no_ack: bool,
    pub exclusive: bool,
    pub prefetch: u16,
    /// The channel's `global` prefetch.
    pub channel_prefetch: u16,
    /// Messages delivered to this consumer and not yet acknowledged.
    pub unacked: usize,
}

/// A queue's identity and the way to its actor.
pub struct QueueHandle {
    pub vhost: String,
    pub name: String,
    pub topic: String,
    pub group: String,
    pub durable: bool,
    pub exclusive_owner: Option<u64>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    tx: mpsc::UnboundedSender<Cmd>,
    /// Consumers right now (kept by the actor).
    pub consumers: AtomicUsize,
    /// `x-max-length`.
    pub max_length: Option<u64>,
    pub overflow: Overflow,
    /// `x-dead-letter-exchange` and `x-dead-letter-routing-key`.
    pub dlx: Option<(String, Option<String>)>,
}

impl QueueHandle {
    pub fn send(&self, cmd: Cmd) {
        let _ = self.tx.send(cmd);
    }

    /// Asks and waits; `None` when the queue's actor has ended (the queue was deleted).
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).ok()?;
        rx.await.ok()
    }
}

/// What a queue is made from.
pub struct QueueSpec {
    pub vhost: String,
    pub name: String,
    pub topic: String,
    pub durable: bool,
    pub exclusive_owner: Option<u64>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// The consumer group that holds a queue's committed frontier.
pub fn group_of(topic: &str) -> String {
    let base = topic.strip_prefix("AMQP_Q_").unwrap_or(topic);
    let mut g = format!("AMQP_G_{base}");
    g.truncate(120);
    g
}

/// The consumer group that holds a queue's delivered mark (see the module doc).
pub fn mark_group_of(topic: &str) -> String {
    let base = topic.strip_prefix("AMQP_Q_").unwrap_or(topic);
    let mut g = format!("AMQP_M_{base}");
    g.truncate(120);
    g
}

/// Starts the queue's actor: reads the committed frontier of each queue id of the topic first.
pub async fn start<M: Messaging>(
    messaging: Arc<M>,
    metrics: Arc<AmqpMetrics>,
    outlets: Outlets,
    spec: QueueSpec,
) -> Arc<QueueHandle> {
    let (tx, rx) = mpsc::unbounded_channel();
    let group = group_of(&spec.topic);
    let arg = |k: &str| spec.arguments.inner().get(k).cloned();
    let max_length = arg("x-max-length").as_ref().and_then(crate::model::value_int).and_then(|v| u64::try_from(v).ok());
    let overflow = match arg("x-overflow").as_ref().and_then(crate::model::value_text).as_deref() {
        Some("reject-publish") => Overflow::RejectPublish,
        Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
        _ => Overflow::DropHead,
    };
    let dlx = arg("x-dead-letter-exchange").as_ref().and_then(crate::model::value_text);
    let dlx_key = arg("x-dead-letter-routing-key").as_ref().and_then(crate::model::value_text);
    let dlx = dlx.map(|x| (x, dlx_key));
    let expires = arg("x-expires")
        .as_ref()
        .and_then(crate::model::value_int)
        .and_then(|v| u64::try_from(v).ok())
        .filter(|v| *v > 0)
        .map(Duration::from_millis);
    let handle = Arc::new(QueueHandle {
        vhost: spec.vhost,
        name: spec.name,
        topic: spec.topic,
        group,
        durable: spec.durable,
        exclusive_owner: spec.exclusive_owner,
        auto_delete: spec.auto_delete,
        arguments: spec.arguments,
        tx,
        consumers: AtomicUsize::new(0),
        max_length,
        overflow,
        dlx: dlx.clone(),
    });
    let mut reads = Vec::new();
    if let Ok(info) = messaging.topic(&handle.topic).await {
        let progress = messaging.progress(&handle.group, Some(&handle.topic)).await.unwrap_or_default();
        let marks = messaging.progress(&mark_group_of(&handle.topic), Some(&handle.topic)).await.unwrap_or_default();
        for (qid, min, _max) in info.queues {
            let committed = progress.iter().find(|p| p.queue_id == qid).map_or(-1, |p| p.consumer_offset);
            let next = if committed < 0 { min } else { (committed as u64).max(min) };
            let mark =
                marks.iter().find(|p| p.queue_id == qid).map_or(0, |p| u64::try_from(p.consumer_offset).unwrap_or(0));
            reads.push(Read { qid, next, committed: next, redeliver_below: mark, fetched: VecDeque::new() });
        }
    }
    if reads.is_empty() {
        reads.push(Read { qid: 0, next: 0, committed: 0, redeliver_below: 0, fetched: VecDeque::new() });
    }
    let ttl_ms = handle
        .arguments
        .inner()
        .get("x-message-ttl")
        .and_then(crate::model::value_int)
        .and_then(|v| u64::try_from(v).ok());
    let actor = Actor {
        messaging,
        metrics,
        handle: Arc::downgrade(&handle),
        topic: handle.topic.clone(),
        group: handle.group.clone(),
        reads,
        rr: 0,
        outstanding: BTreeSet::new(),
        requeued: BTreeSet::new(),
        consumers: Vec::new(),
        next_consumer: 0,
        ttl_ms,
        dlx,
        outlets,
        max_length,
        overflow,
        expires,
        last_used: Instant::now(),
        expiry_sent: false,
    };
    tokio::spawn(actor.run(rx));
    handle
}

struct Read {
    qid: u32,
    /// The next offset to deliver.
    next: u64,
    /// The frontier last committed.
    committed: u64,
    /// Stored messages below this offset were delivered before the last restart.
    redeliver_below: u64,
    fetched: VecDeque<Message>,
}

struct Actor<M: Messaging> {
    messaging: Arc<M>,
    metrics: Arc<AmqpMetrics>,
    handle: Weak<QueueHandle>,
    topic: String,
    group: String,
    reads: Vec<Read>,
    rr: usize,
    outstanding: BTreeSet<Pos>,
    requeued: BTreeSet<Pos>,
    consumers: Vec<Consumer>,
    next_consumer: usize,
    ttl_ms: Option<u64>,
    /// `x-dead-letter-exchange` and `x-dead-letter-routing-key`.
    dlx: Option<(String, Option<String>)>,
    outlets: Outlets,
    max_length: Option<u64>,
    overflow: Overflow,
    /// `x-expires`.
    expires: Option<Duration>,
    /// When the queue was last used (or lost its last consumer).
    last_used: Instant,
    /// The queue told the door it expired and was not used since.
    expiry_sent: bool,
}

/// Waits until `deadline`, or forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl<M: Messaging> Actor<M> {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        loop {
            self.deliver_all().await;
            self.commit().await;
            let expiry = self.expiry_deadline();
            let waiting =
                self.has_credit() && self.requeued.is_empty() && self.reads.iter().all(|r| r.fetched.is_empty());
            let cmd = if waiting {
                let single = self.reads.len() == 1;
                let (qid, next) = (self.reads[0].qid, self.reads[0].next);
                let wait = async {
                    if single {
                        self.messaging.pull(&self.topic, qid, next, PULL_BATCH_MESSAGES, LONG_POLL_MS).await.ok()
                    } else {
                        tokio::time::sleep(Duration::from_millis(MULTI_QUEUE_POLL_MS)).await;
                        None
                    }
                };
                tokio::select! {
                    c = rx.recv() => c,
                    got = wait => {
                        if let Some(b) = got {
                            self.take_batch(0, b);
                        }
                        continue;
                    }
                    () = until(expiry) => {
                        self.expire();
                        continue;
                    }
                }
            } else if self.ttl_ms.is_some() {
                tokio::select! {
                    c = rx.recv() => c,
                    () = tokio::time::sleep(Duration::from_millis(TTL_SWEEP_MS)) => {
                        self.sweep().await;
                        continue;
                    }
                    () = until(expiry) => {
                        self.expire();
                        continue;
                    }
                }
            } else if expiry.is_some() {
                tokio::select! {
                    c = rx.recv() => c,
                    () = until(expiry) => {
                        self.expire();
                        continue;
                    }
                }
            } else {
                rx.recv().await
            };
            let Some(cmd) = cmd else { break };
            if !self.handle(cmd).await {
                break;
            }
            // Whatever else is waiting is handled before the next delivery round: a burst of
            // settles and pokes costs one round, not one each.
            for _ in 0..COMMANDS_PER_ROUND_MAX {
                let Ok(cmd) = rx.try_recv() else { break };
                if !self.handle(cmd).await {
                    return;
                }
            }
        }
    }

    /// When the queue expires if nothing uses it: only with `x-expires`, no consumers, and not
    /// reported already.
    fn expiry_deadline(&self) -> Option<Instant> {
        let expires = self.expires?;
        (self.consumers.is_empty() && !self.expiry_sent).then(|| self.last_used + expires)
    }

    /// Tells the door the queue expired (it asks back with [`Cmd::Delete`] `if_expired`).
    fn expire(&mut self) {
        self.expiry_sent = true;
        if let Some(h) = self.handle.upgrade() {
            let _ = self.outlets.expired.send(h);
        }
    }

    /// The queue was used: the `x-expires` clock starts again.
    fn used(&mut self) {
        if self.expires.is_some() {
            self.last_used = Instant::now();
            self.expiry_sent = false;
        }
    }

    fn take_batch(&mut self, idx: usize, b: broker::messaging::PullBatch) {
        let r = &mut self.reads[idx];
        if b.offset_moved && b.messages.is_empty() {
            r.next = b.next_offset;
            return;
        }
        for m in b.messages {
            if m.queue_offset >= r.next {
                r.fetched.push_back(m);
            }
        }
    }

    /// Answers one command; `false` ends the actor.
    async fn handle(&mut self, cmd: Cmd) -> bool {
        match cmd {
            Cmd::Consume(c, reply) => {
                if self.consumers.iter().any(|x| x.exclusive) {
                    let _ = reply.send(Err(Fail::access_refused(format!(
                        "queue '{}' in vhost '{}' in exclusive use",
                        self.name(),
                        self.vhost()
                    ))));
                } else if c.exclusive && !self.consumers.is_empty() {
                    let _ = reply.send(Err(Fail::access_refused(format!(
                        "cannot obtain exclusive access to queue '{}' in vhost '{}'",
                        self.name(),
                        self.vhost()
                    ))));
                } else {
                    let mut c = c;
                    if let Some(ok) = c.ok_frame.take() {
                        let _ = c.out.send(ok).await;
                    }
                    self.consumers.push(c);
                    self.metrics.consumers.inc();
                    let _ = reply.send(Ok(()));
                }
                self.publish_count();
            }
            Cmd::Cancel { conn, channel, tag, reply } => {
                let before = self.consumers.len();
                self.consumers
                    .retain(|c| !(c.conn == conn && c.channel == channel && tag.as_ref().is_none_or(|t| *t == c.tag)));
                self.metrics.consumers.sub((before - self.consumers.len()) as i64);
                self.publish_count();
                let _ = reply.send(self.consumers.len());
            }
            Cmd::Get { no_ack, reply } => {
                self.used();
                let got = self.next_ready().await;
                let answer = match got {
                    Some((message, pos, redelivered)) => {
                        if !no_ack {
                            self.outstanding.insert(pos);
                        }
                        let remaining = self.ready().await;
                        Some(Got { message, pos, redelivered, remaining })
                    }
                    None => None,
                };
                let _ = reply.send(answer);
            }
            Cmd::Settle(positions, how) => {
                for p in positions {
                    if !self.outstanding.remove(&p) {
                        continue;
                    }
                    match how {
                        Settle::Requeue => {
                            self.requeued.insert(p);
                        }
                        Settle::Drop if self.dlx.is_some() => {
                            if let Some(m) = self.fetch(p).await {
                                self.dead_letter(m, "rejected");
                            }
                        }
                        _ => {}
                    }
                }
            }
            Cmd::Touch => self.used(),
            Cmd::SaveMark(reply) => {
                let group = mark_group_of(&self.topic);
                for r in &self.reads {
                    if let Err(e) = self.messaging.commit_offset(&group, &self.topic, r.qid, r.next).await {
                        tracing::debug!(topic = %self.topic, error = %e, "AMQP delivered mark not committed");
                    }
                }
                let _ = reply.send(());
            }
            Cmd::Poke => self.enforce_max_length().await,
            Cmd::Purge(reply) => {
                let n = self.purge().await;
                let _ = reply.send(n);
            }
            Cmd::Stats(reply) => {
                let ready = self.ready().await;
                let _ = reply.send((ready, self.consumers.len() as u32));
            }
            Cmd::Depth(reply) => {
                let ready = self.ready().await;
                let _ = reply.send((ready, self.outstanding.len()));
            }
            Cmd::Snapshot(reply) => {
                let ready = self.ready().await;
                let _ =
                    reply.send(Snapshot { ready, unacked: self.outstanding.len(), consumers: self.consumer_views() });
            }
            Cmd::Delete { if_unused, if_empty, if_expired, reply } => {
                let ready = self.ready().await;
                let (name, vhost) = (self.name(), self.vhost());
                // Consumers of closed channels do not count.
                self.has_credit();
                if (if_unused && !self.consumers.is_empty()) || (if_expired && !self.expiry_sent) {
                    let _ = reply.send(Err(Fail::precondition(format!("queue '{name}' in vhost '{vhost}' in use"))));
                    return true;
                }
                if if_empty && ready > 0 {
                    let _ =
                        reply.send(Err(Fail::precondition(format!("queue '{name}' in vhost '{vhost}' is not empty"))));
                    return true;
                }
                // Tell the consumers (consumer_cancel_notify).
                for c in self.consumers.drain(..) {
                    let cancel = basic::Cancel { consumer_tag: short(&c.tag), nowait: true };
                    let _ =
                        c.out.send(wire::method(c.channel, AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel)))).await;
                    self.metrics.consumers.dec();
                }
                self.publish_count();
                let _ = reply.send(Ok(ready));
                return false;
            }
        }
        true
    }

    /// The live consumers (those of closed channels, which `pick` drops later, are left out).
    fn consumer_views(&self) -> Vec<ConsumerView> {
        self.consumers
            .iter()
            .filter_map(|c| {
                let l = c.ledger.lock().ok()?;
                if l.closed || c.out.is_closed() {
                    return None;
                }
                Some(ConsumerView {
                    conn: c.conn,
                    peer: c.peer,
                    channel: c.channel,
                    tag: c.tag.clone(),
                    no_ack: c.no_ack,
                    exclusive: c.exclusive,
                    prefetch: c.prefetch,
                    channel_prefetch: l.prefetch_channel,
                    unacked: l.per_consumer.get(&c.tag).copied().unwrap_or(0),
                })
            })
            .collect()
    }

    fn name(&self) -> String {
        self.handle.upgrade().map_or_else(String::new, |h| h.name.clone())
    }

    fn vhost(&self) -> String {
        self.handle.upgrade().map_or_else(String::new, |h| h.vhost.clone())
    }

    /// Publishes the consumer count; a queue left without consumers starts its `x-expires` clock.
    fn publish_count(&mut self) {
        if let Some(h) = self.handle.upgrade() {
            h.consumers.store(self.consumers.len(), Ordering::Relaxed);
        }
        if self.consumers.is_empty() {
            self.used();
        }
    }

    /// Messages ready for delivery: stored past each read position, plus requeued ones.
    async fn ready(&self) -> u32 {
        let mut n = self.requeued.len() as u64;
        if let Ok(info) = self.messaging.topic(&self.topic).await {
            for r in &self.reads {
                if let Some((_, _, max)) = info.queues.iter().find(|(q, _, _)| *q == r.qid) {
                    n += max.saturating_sub(r.next);
                }
            }
        }
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    async fn purge(&mut self) -> u32 {
        let n = self.ready().await;
        self.requeued.clear();
        if let Ok(info) = self.messaging.topic(&self.topic).await {
            for r in &mut self.reads {
                if let Some((_, _, max)) = info.queues.iter().find(|(q, _, _)| *q == r.qid) {
                    r.next = r.next.max(*max);
                }
                r.fetched.clear();
            }
        }
        n
    }

    /// Whether some consumer may take a message now (drops consumers of closed channels).
    fn has_credit(&mut self) -> bool {
        self.pick().is_some()
    }

    fn pick(&mut self) -> Option<usize> {
        let before = self.consumers.len();
        self.consumers.retain(|c| !c.ledger.lock().is_ok_and(|l| l.closed) && !c.out.is_closed());
        if self.consumers.len() != before {
            self.metrics.consumers.sub((before - self.consumers.len()) as i64);
            self.publish_count();
        }
        let n = self.consumers.len();
        for i in 0..n {
            let idx = (self.next_consumer + i) % n;
            let c = &self.consumers[idx];
            if c.paused.load(Ordering::Relaxed) {
                continue;
            }
            if c.no_ack {
                return Some(idx);
            }
            let Ok(l) = c.ledger.lock() else { continue };
            let mine = l.per_consumer.get(&c.tag).copied().unwrap_or(0);
            let consumer_ok = c.prefetch == 0 || mine < usize::from(c.prefetch);
            let channel_ok = l.prefetch_channel == 0 || l.unacked.len() + l.held < usize::from(l.prefetch_channel);
            if consumer_ok && channel_ok {
                return Some(idx);
            }
        }
        None
    }

    /// The next message to hand out: a requeued one first, else the next stored one (expired
    /// ones, by `x-message-ttl` or `expiration`, are dropped on the way).
    async fn next_ready(&mut self) -> Option<(Message, Pos, bool)> {
        while let Some(pos) = self.requeued.pop_first() {
            if let Ok(b) = self.messaging.pull(&self.topic, pos.qid, pos.offset, 1, 0).await
                && let Some(m) = b.messages.into_iter().find(|m| m.queue_offset == pos.offset)
            {
                if self.expired(&m) {
                    self.dead_letter(m, "expired");
                    continue;
                }
                return Some((m, pos, true));
            }
        }
        for _ in 0..self.reads.len() {
            let idx = self.rr % self.reads.len();
            self.rr = self.rr.wrapping_add(1);
            loop {
                if self.reads[idx].fetched.is_empty() {
                    let (qid, next) = (self.reads[idx].qid, self.reads[idx].next);
                    match self.messaging.pull(&self.topic, qid, next, PULL_BATCH_MESSAGES, 0).await {
                        Ok(b) => self.take_batch(idx, b),
                        Err(e) => {
                            tracing::debug!(topic = %self.topic, error = %e, "AMQP queue read failed");
                        }
                    }
                }
                let r = &mut self.reads[idx];
                let Some(m) = r.fetched.pop_front() else { break };
                r.next = m.queue_offset + 1;
                let pos = Pos { qid: r.qid, offset: m.queue_offset };
                let redelivered = m.queue_offset < r.redeliver_below;
                if self.expired(&m) {
                    self.dead_letter(m, "expired");
                    continue;
                }
                return Some((m, pos, redelivered));
            }
        }
        None
    }

    /// One stored message by position.
    async fn fetch(&self, pos: Pos) -> Option<Message> {
        let b = self.messaging.pull(&self.topic, pos.qid, pos.offset, 1, 0).await.ok()?;
        b.messages.into_iter().find(|m| m.queue_offset == pos.offset)
    }

    /// Sends a message that leaves the queue to the dead-letter exchange, if there is one.
    fn dead_letter(&self, message: Message, reason: &'static str) {
        let Some((exchange, routing_key)) = &self.dlx else { return };
        self.metrics.dead_lettered.with_label_values(&[reason]).inc();
        let _ = self.outlets.dead_letters.send(DeadLetter {
            vhost: self.vhost(),
            queue: self.name(),
            exchange: exchange.clone(),
            routing_key: routing_key.clone(),
            reason,
            message,
        });
    }

    /// Takes the oldest stored message of read position `idx` off the queue.
    async fn pop_head(&mut self, idx: usize) -> Option<Message> {
        if self.reads[idx].fetched.is_empty() {
            let (qid, next) = (self.reads[idx].qid, self.reads[idx].next);
            if let Ok(b) = self.messaging.pull(&self.topic, qid, next, PULL_BATCH_MESSAGES, 0).await {
                self.take_batch(idx, b);
            }
        }
        let r = &mut self.reads[idx];
        let m = r.fetched.pop_front()?;
        r.next = m.queue_offset + 1;
        Some(m)
    }

    /// Expires (and dead-letters) the messages at the head whose time is up.
    async fn sweep(&mut self) {
        for idx in 0..self.reads.len() {
            loop {
                if self.reads[idx].fetched.is_empty() {
                    let (qid, next) = (self.reads[idx].qid, self.reads[idx].next);
                    if let Ok(b) = self.messaging.pull(&self.topic, qid, next, PULL_BATCH_MESSAGES, 0).await {
                        self.take_batch(idx, b);
                    }
                }
                let expired = self.reads[idx].fetched.front().is_some_and(|m| self.expired(m));
                if !expired {
                    break;
                }
                if let Some(m) = self.pop_head(idx).await {
                    self.dead_letter(m, "expired");
                }
            }
        }
    }

    /// `x-max-length` with `drop-head`: the oldest messages over the limit leave (dead-lettered
    /// with reason `maxlen`).
    async fn enforce_max_length(&mut self) {
        let (Some(max), Overflow::DropHead) = (self.max_length, self.overflow) else { return };
        let mut ready = u64::from(self.ready().await);
        while ready > max {
            let mut dropped = false;
            if let Some(pos) = self.requeued.pop_first() {
                if let Some(m) = self.fetch(pos).await {
                    self.dead_letter(m, "maxlen");
                }
                dropped = true;
            } else {
                for idx in 0..self.reads.len() {
                    if let Some(m) = self.pop_head(idx).await {
                        self.dead_letter(m, "maxlen");
                        dropped = true;
                        break;
                    }
                }
            }
            if !dropped {
                break;
            }
            ready -= 1;
        }
    }

    fn expired(&self, m: &Message) -> bool {
        let per_message = m
            .properties
            .iter()
            .any(|(k, _)| k == props::PROP_PROPERTIES)
            .then(|| props::expiration_ms(&props::to_delivery(m).properties))
            .flatten();
        let ttl = match (self.ttl_ms, per_message) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ttl.is_some_and(|t| m.store_timestamp_ms.saturating_add(t as i64) <= now_ms())
    }

    async fn deliver_all(&mut self) {
        let mut gathered = None;
        self.deliver_into(&mut gathered).await;
        self.hand_over(gathered).await;
    }

    /// Delivers while a consumer has credit and a message is ready. Frames for one connection
    /// are gathered (up to [`DELIVERY_GATHER_BYTES`]) and handed over together: one wake-up of
    /// its writer per round, not one per message.
    async fn deliver_into(&mut self, gathered: &mut Option<Gathered>) {
        let manual = self.metrics.delivered.with_label_values(&["consume", "manual"]);
        let auto = self.metrics.delivered.with_label_values(&["consume", "auto"]);
        while let Some(idx) = self.pick() {
            let Some((m, pos, redelivered)) = self.next_ready().await else { return };
            let Some(handle) = self.handle.upgrade() else { return };
            let c = &self.consumers[idx];
            self.next_consumer = idx + 1;
            let tag = {
                let Ok(mut l) = c.ledger.lock() else { return };
                if l.closed {
                    drop(l);
                    self.requeued.insert(pos);
                    continue;
                }
                l.next_tag += 1;
                let tag = l.next_tag;
                if !c.no_ack {
                    l.unacked.insert(tag, Unacked { queue: handle, pos, consumer: Some(c.tag.clone()) });
                    *l.per_consumer.entry(c.tag.clone()).or_insert(0) += 1;
                }
                tag
            };
            if !c.no_ack {
                self.outstanding.insert(pos);
            }
            let d = props::to_delivery(&m);
            let deliver = basic::Deliver {
                consumer_tag: short(&c.tag),
                delivery_tag: tag,
                redelivered,
                exchange: short(&d.exchange),
                routing_key: short(&d.routing_key),
            };
            if gathered.as_ref().is_some_and(|g| !g.out.same_channel(&c.out) || g.bytes.len() >= DELIVERY_GATHER_BYTES)
            {
                let full = gathered.take();
                self.hand_over(full).await;
            }
            let c = &self.consumers[idx];
            let g = gathered.get_or_insert_with(|| Gathered {
                out: c.out.clone(),
                bytes: Vec::with_capacity(d.body.len() + 256),
                auto_acked: Vec::new(),
            });
            wire::push_content(
                &mut g.bytes,
                c.channel,
                AMQPClass::Basic(basic::AMQPMethod::Deliver(deliver)),
                &d.properties,
                &d.body,
                c.frame_max,
            );
            if c.no_ack {
                g.auto_acked.push(pos);
                auto.inc();
            } else {
                manual.inc();
            }
            if redelivered {
                self.metrics.redelivered.inc();
            }
        }
    }

    /// Hands gathered frames to their connection; auto-ack deliveries in them come back to the
    /// queue when the connection is already gone.
    async fn hand_over(&mut self, gathered: Option<Gathered>) {
        let Some(g) = gathered else { return };
        if g.out.send(g.bytes).await.is_err() {
            self.requeued.extend(g.auto_acked);
        }
    }

    /// Commits each queue id's frontier when it moved.
    async fn commit(&mut self) {
        for i in 0..self.reads.len() {
            let qid = self.reads[i].qid;
            let mut frontier = self.reads[i].next;
            let lowest = |set: &BTreeSet<Pos>| {
                set.range(Pos { qid, offset: 0 }..=Pos { qid, offset: u64::MAX }).next().map(|p| p.offset)
            };
            if let Some(o) = lowest(&self.outstanding) {
                frontier = frontier.min(o);
            }
            if let Some(o) = lowest(&self.requeued) {
                frontier = frontier.min(o);
            }
            if frontier != self.reads[i].committed {
                if let Err(e) = self.messaging.commit_offset(&self.group, &self.topic, qid, frontier).await {
                    tracing::debug!(topic = %self.topic, error = %e, "AMQP queue frontier not committed");
                    continue;
                }
                self.reads[i].committed = frontier;
            }
        }
    }
}
