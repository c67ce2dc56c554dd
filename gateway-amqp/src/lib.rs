//! The AMQP 0-9-1 door: ordinary AMQP clients (lapin, pika, amqplib, kombu) publish and consume
//! on the broker's store, on the `amq-protocol` codec (the one lapin uses).
//!
//! The door calls the broker only through [`broker::messaging::Messaging`]. Its parts:
//! `handshake.rs` (protocol header, login, tune, open), `users.rs` (users and the vhosts each
//! may open), `conn.rs` (frames, channels, every method), `publisher.rs` (a channel's batched
//! stores and confirms), `model.rs` (per-vhost exchanges, bindings, routing, `amqp.json`),
//! `queue.rs` (one actor per queue: read positions, unacknowledged and requeued messages,
//! consumers, prefetch, expiry), `props.rs` (AMQP message ⇄ RocketMQ message),
//! `wire.rs` (frame reading with limits, encoding), `error.rs` (the one mapping to reply codes),
//! `metrics.rs` (`rocketmq_amqp_*`, with per-queue ready and unacknowledged gauges refreshed
//! every [`metrics::QUEUE_GAUGES_INTERVAL_MS`] by asking each queue's actor), `view.rs` (the
//! read-only view the web console shows, [`AmqpServer::console`]).
//!
//! # Mapping onto the store
//!
//! - **Exchanges and bindings** are metadata only; routing happens once, at publish.
//! - **A queue is a RocketMQ topic** `AMQP_Q_<sha256(name)[..20]>_<incarnation>` (vhost `/`; see
//!   below for other vhosts) with one queue id
//!   (a redeclared queue gets a new topic, so a deleted queue's messages never come back). A
//!   message routed to N queues is N CommitLog records, one per queue, written as one batch per
//!   queue for all the publishes of a channel that are waiting (so publisher confirms share a
//!   group commit). This is not the single-write LMQ dispatch that `gateways.md` B.4.2
//!   recommends: the messaging API has no multi-dispatch append yet.
//! - **Per-message state** (delivered, unacknowledged, requeued) lives in the queue's actor; the
//!   lowest unacknowledged offset is committed as the consumer offset of group `AMQP_G_<...>`, so
//!   after a restart or a crash delivery resumes there (at least once). Requeued messages are
//!   delivered again soon, before newer ones, with `redelivered` set. When the door stops
//!   ([`AmqpServer::stop`]) each queue also commits the next offset it would deliver, as group
//!   `AMQP_M_<...>`; after a clean restart the messages below it (delivered before, not
//!   acknowledged) come with `redelivered` set, as in RabbitMQ. The broker-side pop
//!   (receive/ack/change invisible time) is not used: its requeue goes through the retry topic,
//!   which delays a requeue by seconds, where RabbitMQ redelivers at once.
//! - **Durable metadata**: durable exchanges, queues and the bindings between durable objects are
//!   in `<store>/config/amqp.json` (written to a temporary file, fsynced, renamed), reloaded at
//!   start. Non-durable queues vanish at restart; their topics are deleted then.
//! - **Replication**: a slave broker copies its master's `amqp.json` byte for byte with its other
//!   metadata (`broker::processor::slave_sync`, every 10 s, only when it differs), along with the
//!   queues' topics and offsets. `mqbroker` does not start the door on a SLAVE (a slave refuses
//!   messages, and a door there would write a file the next sync replaces); once the broker is
//!   restarted as a master, the door loads the copy.
//! - **Interop**: a queue declared with `x-rocketmq-topic: T` reads the existing topic `T` (every
//!   queue id, from its first offset), so AMQP consumers get what native producers wrote;
//!   messages published over AMQP are normal RocketMQ messages (routing key as tag and `AMQP_RK`,
//!   properties as listed in `props.rs`) that native consumers of the queue's topic can read.
//! - **Confirms**: `basic.ack` is sent once the broker's publish returned, i.e. after the
//!   configured durability (flushed under SYNC_FLUSH, replicated under SYNC_MASTER); a store
//!   error or a durability timeout gives `basic.nack`. Unroutable messages are confirmed at once
//!   (after the `basic.return` of a mandatory one).
//!
//! # Virtual hosts and users
//!
//! Each virtual host is its own namespace of exchanges and queues (`model.rs`). Users come from
//! `amqpDefaultUser` / `amqpDefaultPass` (default `guest`/`guest`, vhost `/` only; like RabbitMQ's
//! `guest`, a user named `guest` may only log in from a loopback address) and from `amqpUsers`
//! (`user:password:vhost,vhost;...`, see `users.rs`), which also says which vhosts exist: `/`
//! plus every vhost some user may open. `connection.open` of a vhost the user may not open, or
//! that does not exist, is refused with 530 `access to vhost 'v' refused for user 'u'`. Passwords
//! are never logged and not kept (a salted SHA-256 only). A queue of vhost `/` keeps the topic
//! name it always had; a queue of another vhost gets `AMQP_Q_<vhost, cleaned>_<hash of vhost and
//! name>_<incarnation>`, so same-named queues of two vhosts never share a topic.
//!
//! # Queue arguments
//!
//! `x-message-ttl`, `x-expires` (a queue with no consumers, no `basic.get` and no redeclare,
//! passive ones included, for that long is deleted, as RabbitMQ does; not a positive integer:
//! 406), `x-max-length` with
//! `x-overflow` `drop-head` (the oldest leave, dead-lettered with reason `maxlen`),
//! `reject-publish` (the publish is refused: `basic.nack`) and `reject-publish-dlx` (refused and
//! dead-lettered with reason `maxlen`), `x-dead-letter-exchange`, `x-dead-letter-routing-key`,
//! and `x-rocketmq-topic` (above).
//!
//! A non-passive redeclare must repeat `durable`, `exclusive`, `auto_delete` and the arguments
//! RabbitMQ compares (`model::queue_args_inequivalence`; integer widths do not matter), else
//! `channel.close` 406 `inequivalent arg '…' for queue '…' in vhost '…': received … but current
//! is …`, worded as RabbitMQ words it.
//!
//! # Flow control
//!
//! `channel.flow(active=false)` stops deliveries to the channel's consumers until
//! `active=true` (`basic.get` still answers). When the store counts its disk as full, clients
//! that announce the `connection.blocked` capability are told `connection.blocked` (and
//! `unblocked` when space returns); publishes are then refused by the store (`basic.nack`).
//!
//! # Transactions
//!
//! After `tx.select`, publishes are buffered and stored at `tx.commit`; `basic.ack`, `nack` and
//! `reject` are checked at once (an unknown delivery tag is 406) but applied only at `tx.commit`.
//! `tx.rollback` drops the buffered publishes and makes the held acknowledgements outstanding
//! again (they come back to the queue when the channel closes, `redelivered`), as in RabbitMQ.
//!
//! # Limits
//!
//! | limit | value | when exceeded |
//! |---|---|---|
//! | frame size | `amqpFrameMax`, 131,072 bytes, offered in `connection.tune` | `connection.close` 501 before the frame is buffered |
//! | channels per connection | `amqpChannelMax`, 2,047 | `connection.close` 530 |
//! | message body | the broker's `maxMessageSize` | `channel.close` 406 as soon as the content header announces it |
//! | encoded message properties | [`props::PROPERTIES_BYTES_MAX`], 16 KiB | `channel.close` 406 |
//! | connections | [`CONNECTIONS_MAX`], 4,096 | the new socket is closed |
//! | handshake time | [`HANDSHAKE_TIMEOUT_MS`], 10 s | the socket is closed |
//! | missed heartbeats | two intervals of silence from the client | the socket is closed |
//! | publishes buffered in a transaction | [`conn::TX_MESSAGES_MAX`], 65,536 | `channel.close` 406 |
//! | users in `amqpUsers` | [`users::USERS_MAX`], 1,024 (each with up to [`users::VHOSTS_PER_USER_MAX`], 256, vhosts) | the door does not start |
//! | waiting for the queues' delivered marks at stop | [`SAVE_MARKS_TIMEOUT_MS`], 2 s | the rest are not saved |

pub mod conn;
pub mod error;
pub mod handshake;
pub mod metrics;
pub mod model;
pub mod props;
pub mod publisher;
pub mod queue;
pub mod users;
pub mod view;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use broker::messaging::Messaging;
use sha2::Digest;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};

use crate::error::Fail;
use crate::metrics::AmqpMetrics;
use crate::model::{Dest, Model};
use crate::queue::{Outlets, QueueHandle, QueueSpec};
use crate::users::Users;

/// Open connections at most.
pub const CONNECTIONS_MAX: usize = 4096;
/// Time from accept to `connection.open`.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// How long [`AmqpServer::stop`] waits for the queues to commit their delivered marks.
pub const SAVE_MARKS_TIMEOUT_MS: u64 = 2_000;
/// How often the disk-full state is checked for `connection.blocked`.
pub const BLOCKED_CHECK_MS: u64 = 1_000;
/// The producer group AMQP publishes are stored under.
pub const PRODUCER_GROUP: &str = "AMQP_PRODUCER";
/// The virtual host every broker has.
pub const DEFAULT_VHOST: &str = "/";
/// Characters of a vhost's name kept in its queues' topic names.
pub const TOPIC_VHOST_CHARS_MAX: usize = 16;

/// The door's settings (from `broker.properties`).
#[derive(Clone)]
pub struct Settings {
    /// `amqpDefaultUser`: may open vhost `/`.
    pub user: String,
    /// `amqpDefaultPass`.
    pub pass: String,
    /// `amqpUsers`: more users and their vhosts (`user:password:vhost,vhost;...`), may be empty.
    pub users: String,
    pub frame_max_bytes: u32,
    pub channel_max: u16,
    pub heartbeat_s: u16,
    /// Where `amqp.json` lives (the store's `config` directory).
    pub config_dir: PathBuf,
}

/// Everything but the passwords.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("user", &self.user)
            .field("frame_max_bytes", &self.frame_max_bytes)
            .field("channel_max", &self.channel_max)
            .field("heartbeat_s", &self.heartbeat_s)
            .field("config_dir", &self.config_dir)
            .finish_non_exhaustive()
    }
}

/// Why the door could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("binding {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("reading the AMQP metadata: {0}")]
    Metadata(std::io::Error),
    #[error("registering the AMQP metrics: {0}")]
    Metrics(prometheus::Error),
    #[error(transparent)]
    Users(#[from] users::UsersError),
}

/// What every connection shares.
pub(crate) struct Shared<M: Messaging> {
    pub messaging: Arc<M>,
    pub metrics: Arc<AmqpMetrics>,
    pub settings: Settings,
    pub model: RwLock<Model>,
    /// Serialises declare and delete (they await the broker between reading and changing the model).
    pub admin: tokio::sync::Mutex<()>,
    pub next_id: AtomicU64,
    pub blocked: watch::Receiver<bool>,
    pub message_bytes_max: usize,
    pub outlets: Outlets,
    pub users: Users,
}

/// Saves every queue's delivered mark (see [`AmqpServer::stop`]).
type SaveMarks = Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

/// A running AMQP door; dropping it (or [`AmqpServer::shutdown`]) stops accepting.
pub struct AmqpServer {
    local_addr: SocketAddr,
    stop: Arc<Notify>,
    console: Arc<dyn broker::messaging::console::AmqpConsole>,
    save_marks: SaveMarks,
}

impl AmqpServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The door's exchanges, bindings, queues and consumers, read-only (for the web console).
    pub fn console(&self) -> Arc<dyn broker::messaging::console::AmqpConsole> {
        self.console.clone()
    }

    pub fn shutdown(&self) {
        self.stop.notify_one();
    }

    /// Stops accepting and has every queue commit its delivered mark (waiting at most
    /// [`SAVE_MARKS_TIMEOUT_MS`]), so that after the restart the messages delivered and not
    /// acknowledged come again with `redelivered` set. Call it before the broker shuts down (the
    /// broker then persists the offsets).
    pub async fn stop(&self) {
        self.shutdown();
        (self.save_marks)().await;
    }
}

impl Drop for AmqpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Loads `amqp.json`, starts the durable queues, binds `addr` and serves the door on the current
/// tokio runtime.
///
/// # Errors
///
/// The address cannot be bound, the metadata file is unreadable, or the metric names are taken.
pub async fn serve<M: Messaging>(
    addr: &str,
    messaging: Arc<M>,
    registry: &prometheus::Registry,
    settings: Settings,
) -> Result<AmqpServer, StartError> {
    let users = Users::new(&settings.user, &settings.pass, &settings.users)?;
    let metrics = Arc::new(AmqpMetrics::new(registry).map_err(StartError::Metrics)?);
    let (mut model, records) = Model::load(&settings.config_dir).map_err(StartError::Metadata)?;
    for v in users.vhosts() {
        model.vhost_mut(&v);
    }
    let (dead_letters, dead_letter_rx) = mpsc::unbounded_channel();
    let (expired, expired_rx) = mpsc::unbounded_channel();
    let outlets = Outlets { dead_letters, expired };
    for (vhost, r) in records {
        let spec = QueueSpec {
            vhost: vhost.clone(),
            name: r.name.clone(),
            topic: r.topic.clone(),
            durable: true,
            exclusive_owner: None,
            auto_delete: r.auto_delete,
            arguments: r.arguments,
        };
        let q = queue::start(messaging.clone(), metrics.clone(), outlets.clone(), spec).await;
        model.vhost_mut(&vhost).queues.insert(r.name, q);
    }
    // Topics of queues that did not survive (non-durable ones) are removed.
    if let Ok(topics) = messaging.topics().await {
        let kept: std::collections::HashSet<&str> =
            model.vhosts.values().flat_map(|v| v.queues.values()).map(|q| q.topic.as_str()).collect();
        for t in topics.iter().filter(|t| t.name.starts_with("AMQP_Q_") && !kept.contains(t.name.as_str())) {
            let _ = messaging.delete_topic(&t.name).await;
        }
    }
    let listener =
        TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr: addr.to_owned(), source })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind { addr: addr.to_owned(), source })?;
    let (blocked_tx, blocked) = watch::channel(false);
    let message_bytes_max = messaging.message_bytes_max();
    let shared = Arc::new(Shared {
        messaging,
        metrics,
        settings,
        model: RwLock::new(model),
        admin: tokio::sync::Mutex::new(()),
        next_id: AtomicU64::new(1),
        blocked,
        message_bytes_max,
        outlets,
        users,
    });
    tokio::spawn(dead_letter_loop(shared.clone(), dead_letter_rx));
    let gauges = tokio::spawn(queue_gauges_loop(shared.clone()));
    tokio::spawn(expiry_loop(shared.clone(), expired_rx));
    let console = Arc::new(view::View { shared: shared.clone() });
    let marks = shared.clone();
    let save_marks: SaveMarks = Arc::new(move || {
        let shared = marks.clone();
        Box::pin(async move { shared.save_marks().await })
    });
    let stop = Arc::new(Notify::new());
    let watcher = shared.clone();
    let disk = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(BLOCKED_CHECK_MS)).await;
            let full = !watcher.messaging.readiness().await.disk_ok;
            blocked_tx.send_if_modified(|b| std::mem::replace(b, full) != full);
        }
    });
    let accepting = broker::remoting::accept::spawn_accept_loop(
        listener,
        stop.clone(),
        CONNECTIONS_MAX,
        "AMQP",
        move |stream, peer| conn::run(shared.clone(), stream, peer),
    );
    tokio::spawn(async move {
        let _ = accepting.await;
        disk.abort();
        gauges.abort();
    });
    Ok(AmqpServer { local_addr, stop, console, save_marks })
}

/// Republishes dead-lettered messages through their dead-letter exchange, with the `x-death`
/// header (and `x-first-death-*`) RabbitMQ adds.
async fn dead_letter_loop<M: Messaging>(shared: Arc<Shared<M>>, mut rx: mpsc::UnboundedReceiver<queue::DeadLetter>) {
    use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};
    while let Some(d) = rx.recv().await {
        let delivery = props::to_delivery(&d.message);
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |t| t.as_secs());
        let mut death = FieldTable::default();
        death.insert("count".into(), AMQPValue::LongLongInt(1));
        death.insert("reason".into(), AMQPValue::LongString(LongString::from(d.reason)));
        death.insert("queue".into(), AMQPValue::LongString(LongString::from(d.queue.as_str())));
        death.insert("time".into(), AMQPValue::Timestamp(now_s));
        death.insert("exchange".into(), AMQPValue::LongString(LongString::from(delivery.exchange.as_str())));
        death.insert(
            "routing-keys".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(LongString::from(
                delivery.routing_key.as_str(),
            ))])),
        );
        let mut deaths = match headers.inner().get("x-death") {
            Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
            _ => Vec::new(),
        };
        deaths.insert(0, AMQPValue::FieldTable(death));
        headers.insert("x-death".into(), AMQPValue::FieldArray(FieldArray::from(deaths)));
        if !headers.contains_key("x-first-death-reason") {
            headers.insert("x-first-death-reason".into(), AMQPValue::LongString(LongString::from(d.reason)));
            headers.insert("x-first-death-queue".into(), AMQPValue::LongString(LongString::from(d.queue.as_str())));
            headers.insert(
                "x-first-death-exchange".into(),
                AMQPValue::LongString(LongString::from(delivery.exchange.as_str())),
            );
        }
        let properties = delivery.properties.with_headers(headers);
        let key = d.routing_key.unwrap_or(delivery.routing_key);
        let targets = {
            let model = shared.model.read().unwrap_or_else(|e| e.into_inner());
            model
                .vhost(&d.vhost)
                .and_then(|v| v.route(&d.exchange, &key, properties.headers().as_ref()))
                .unwrap_or_default()
        };
        let Some(msg) = props::to_outgoing(&d.exchange, &key, &properties, delivery.body) else { continue };
        for q in targets {
            if let Err(e) = shared.messaging.publish(&q.topic, vec![msg.clone()], PRODUCER_GROUP).await {
                tracing::warn!(queue = %q.name, error = %e, "dead-lettered message not stored");
            }
            q.send(queue::Cmd::Poke);
        }
    }
}

/// Refreshes the per-queue gauges every [`metrics::QUEUE_GAUGES_INTERVAL_MS`], off the publish
/// and delivery paths: every queue's actor is asked for its ready and unacknowledged counts (all
/// at once, answers awaited until the next round is due). Values are set under the model's lock
/// and only for queues still in the model, so a queue deleted meanwhile (whose series
/// [`Shared::forget_queue`] removed) does not get them back.
async fn queue_gauges_loop<M: Messaging>(shared: Arc<Shared<M>>) {
    let period = Duration::from_millis(metrics::QUEUE_GAUGES_INTERVAL_MS);
    let mut shown: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
    loop {
        tokio::time::sleep(period).await;
        let answers = shared.ask_every_queue(queue::Cmd::Depth, period).await;
        let model = shared.model.read().unwrap_or_else(|e| e.into_inner());
        let in_model = |vhost: &str, name: &str| model.vhosts.get(vhost).is_some_and(|v| v.queues.contains_key(name));
        for (q, (ready, unacked)) in answers {
            let current =
                model.vhosts.get(&q.vhost).and_then(|v| v.queues.get(&q.name)).is_some_and(|x| Arc::ptr_eq(x, &q));
            if current {
                shared.metrics.set_queue_depth(&q.vhost, &q.name, ready, unacked);
                shown.insert((q.vhost.clone(), q.name.clone()));
            }
        }
        shown.retain(|(vhost, name)| {
            let keep = in_model(vhost, name);
            if !keep {
                shared.metrics.remove_queue_depth(vhost, name);
            }
            keep
        });
    }
}

/// Deletes the queues whose `x-expires` time passed unused (their actors report them).
async fn expiry_loop<M: Messaging>(shared: Arc<Shared<M>>, mut rx: mpsc::UnboundedReceiver<Arc<QueueHandle>>) {
    while let Some(q) = rx.recv().await {
        shared.expire_queue(q).await;
    }
}

/// A queue's own topic name: `AMQP_Q_` + 20 hex digits of the name's SHA-256 + an incarnation in
/// vhost `/` (the names existing stores have); in another vhost `AMQP_Q_` + the vhost's name
/// (letters, digits, `-` and `_` kept, the first [`TOPIC_VHOST_CHARS_MAX`]) + 20 hex digits of
/// the SHA-256 of vhost and name + an incarnation.
fn queue_topic(vhost: &str, name: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
    if vhost == DEFAULT_VHOST {
        let hash = sha2::Sha256::digest(name.as_bytes());
        let hex: String = hash.iter().take(10).map(|b| format!("{b:02x}")).collect();
        return format!("AMQP_Q_{hex}_{now:x}");
    }
    let mut h = sha2::Sha256::new();
    h.update(vhost.as_bytes());
    h.update([0u8]);
    h.update(name.as_bytes());
    let hex: String = h.finalize().iter().take(10).map(|b| format!("{b:02x}")).collect();
    let clean: String = vhost
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(TOPIC_VHOST_CHARS_MAX)
        .collect();
    format!("AMQP_Q_{clean}_{hex}_{now:x}")
}

impl<M: Messaging> Shared<M> {
    /// The queue, if this connection may use it (405 for another connection's exclusive queue).
    pub fn queue(&self, vhost: &str, conn: u64, name: &str) -> Result<Arc<QueueHandle>, Fail> {
        let model = self.model.read().unwrap_or_else(|e| e.into_inner());
        let q = model.vhost(vhost)?.queues.get(name).cloned().ok_or_else(|| Fail::not_found("queue", name, vhost))?;
        check_owner(&q, conn)?;
        Ok(q)
    }

    /// Creates a queue's topic and actor and adds it to the model.
    pub async fn create_queue(&self, mut spec: QueueSpec, own_topic: bool) -> Result<Arc<QueueHandle>, Fail> {
        if own_topic {
            spec.topic = queue_topic(&spec.vhost, &spec.name);
            self.messaging.put_topic(&spec.topic, 1, 1).await?;
        } else {
            self.messaging.topic(&spec.topic).await?;
        }
        let durable = spec.durable;
        let (vhost, name) = (spec.vhost.clone(), spec.name.clone());
        let q = queue::start(self.messaging.clone(), self.metrics.clone(), self.outlets.clone(), spec).await;
        let mut model = self.model.write().unwrap_or_else(|e| e.into_inner());
        model.vhost_existing_mut(&vhost)?.queues.insert(name, q.clone());
        if durable {
            model.save();
        }
        Ok(q)
    }

    /// Deletes a queue: its consumers are cancelled (with a notification), its bindings removed,
    /// its own topic deleted. A queue that does not exist is deleted already (0 messages).
    pub async fn delete_queue(
        &self,
        vhost: &str,
        conn: u64,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u32, Fail> {
        let _admin = self.admin.lock().await;
        let q = {
            let model = self.model.read().unwrap_or_else(|e| e.into_inner());
            match model.vhost(vhost)?.queues.get(name) {
                Some(q) => q.clone(),
                None => return Ok(0),
            }
        };
        check_owner(&q, conn)?;
        let count = match q.ask(|reply| queue::Cmd::Delete { if_unused, if_empty, if_expired: false, reply }).await {
            Some(r) => r?,
            None => 0,
        };
        self.forget_queue(&q).await;
        Ok(count)
    }

    /// Deletes a queue whose `x-expires` time passed, if it is still the one in the model and
    /// still unused (its actor decides).
    async fn expire_queue(&self, q: Arc<QueueHandle>) {
        let _admin = self.admin.lock().await;
        let current = {
            let model = self.model.read().unwrap_or_else(|e| e.into_inner());
            model.vhosts.get(&q.vhost).and_then(|v| v.queues.get(&q.name)).is_some_and(|x| Arc::ptr_eq(x, &q))
        };
        if !current {
            return;
        }
        let asked = q.ask(|reply| queue::Cmd::Delete { if_unused: true, if_empty: false, if_expired: true, reply });
        if let Some(Ok(_)) = asked.await {
            tracing::debug!(vhost = %q.vhost, queue = %q.name, "AMQP queue expired (x-expires)");
            self.forget_queue(&q).await;
        }
    }

    /// Removes a deleted queue from the model (with the bindings to it) and its topic and group
    /// from the broker.
    async fn forget_queue(&self, q: &Arc<QueueHandle>) {
        {
            let mut model = self.model.write().unwrap_or_else(|e| e.into_inner());
            let mut changed = q.durable;
            if let Some(v) = model.vhosts.get_mut(&q.vhost) {
                if v.queues.get(&q.name).is_some_and(|x| Arc::ptr_eq(x, q)) {
                    v.queues.remove(&q.name);
                    self.metrics.remove_queue_depth(&q.vhost, &q.name);
                }
                changed |= v.unbind_all(&Dest::Queue(q.name.clone()));
            }
            if changed {
                model.save();
            }
        }
        if q.topic.starts_with("AMQP_Q_") {
            let _ = self.messaging.delete_topic(&q.topic).await;
        }
        let _ = self.messaging.delete_group(&q.group).await;
        let _ = self.messaging.delete_group(&queue::mark_group_of(&q.topic)).await;
    }

    /// Asks every queue to commit its delivered mark; waits for the answers until one deadline.
    async fn save_marks(&self) {
        self.ask_every_queue(queue::Cmd::SaveMark, Duration::from_millis(SAVE_MARKS_TIMEOUT_MS)).await;
    }

    /// Sends `make(reply)` to every queue's actor at once and collects the answers that arrive
    /// within `within` (one deadline for all; a queue that does not answer in time is left out).
    async fn ask_every_queue<T>(
        &self,
        make: impl Fn(tokio::sync::oneshot::Sender<T>) -> queue::Cmd,
        within: Duration,
    ) -> Vec<(Arc<QueueHandle>, T)> {
        let handles: Vec<Arc<QueueHandle>> = {
            let model = self.model.read().unwrap_or_else(|e| e.into_inner());
            model.vhosts.values().flat_map(|v| v.queues.values().cloned()).collect()
        };
        let asked: Vec<_> = handles
            .iter()
            .map(|q| {
                let (tx, rx) = tokio::sync::oneshot::channel();
                q.send(make(tx));
                rx
            })
            .collect();
        let deadline = tokio::time::Instant::now() + within;
        let mut answers = Vec::with_capacity(handles.len());
        for (q, rx) in handles.into_iter().zip(asked) {
            if let Ok(Ok(answer)) = tokio::time::timeout_at(deadline, rx).await {
                answers.push((q, answer));
            }
        }
        answers
    }

    /// Deletes the exclusive queues of a connection that ended.
    pub async fn drop_exclusive(&self, vhost: &str, conn: u64) {
        let names: Vec<String> = {
            let model = self.model.read().unwrap_or_else(|e| e.into_inner());
            let Ok(v) = model.vhost(vhost) else { return };
            v.queues.values().filter(|q| q.exclusive_owner == Some(conn)).map(|q| q.name.clone()).collect()
        };
        for n in names {
            if let Err(e) = self.delete_queue(vhost, conn, &n, false, false).await {
                tracing::debug!(queue = %n, error = %e, "exclusive queue not deleted");
            }
        }
    }
}

fn check_owner(q: &QueueHandle, conn: u64) -> Result<(), Fail> {
    match q.exclusive_owner {
        Some(owner) if owner != conn => Err(Fail::new(
            error::RESOURCE_LOCKED,
            format!(
                "cannot obtain exclusive access to locked queue '{}' in vhost '{}' (it belongs to another connection)",
                q.name, q.vhost
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    //! Queue topic names per vhost.

    use super::*;

    #[test]
    fn queue_topics_name_their_vhost() {
        let root = queue_topic("/", "jobs");
        let hash: String = sha2::Sha256::digest(b"jobs").iter().take(10).map(|b| format!("{b:02x}")).collect();
        assert!(root.starts_with(&format!("AMQP_Q_{hash}_")), "vhost / keeps its names: {root}");
        let orders = queue_topic("orders/eu west", "jobs");
        assert!(orders.starts_with("AMQP_Q_orderseuwest_"), "{orders}");
        assert_ne!(orders.split('_').nth(3), root.split('_').nth(2), "the hash covers the vhost");
        let other = queue_topic("orders/euwest", "jobs");
        assert_ne!(other.split('_').nth(3), orders.split('_').nth(3), "same cleaned name, other hash");
        assert!(orders.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'), "{orders}");
    }
}
