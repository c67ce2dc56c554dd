//! One AMQP connection: the handshake (`handshake.rs`), then frames: channels, every class's
//! methods, content assembly for `basic.publish`, heartbeats, `connection.blocked`, and the
//! close handshakes.
//!
//! A failure on a channel (a soft code) closes the channel with `channel.close` and ignores what
//! the client sends on it until `channel.close-ok`; a hard code closes the connection with
//! `connection.close`, waits briefly for `close-ok`, and ends. Either way the unacknowledged
//! deliveries go back to their queues (`redelivered`), and when the connection ends its exclusive
//! queues are deleted.
//!
//! A connection works in the one vhost it opened: every name it uses is looked up there, and
//! every reply text names it.
//!
//! Writes go through one writer task per connection (deliveries from the queues' actors, replies,
//! confirms and heartbeats share it, so their order on the wire is the order they were queued).
//! Publishes go to a publisher task per channel (`publisher.rs`). Exchange and queue methods
//! live in `conn/topology.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{AMQPClass, basic, channel, confirm, connection, tx};
use broker::messaging::Messaging;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot};

use crate::error::{self, Fail};
use crate::props::{self, short};
use crate::publisher::{PUBLISH_QUEUE_MESSAGES, PubItem, publish_loop};
use crate::queue::{Cmd, Consumer, Ledger, QueueHandle, Settle, Unacked};
use crate::{HANDSHAKE_TIMEOUT_MS, Shared, handshake, wire};

mod topology;

/// Publishes buffered by one transaction.
pub const TX_MESSAGES_MAX: usize = 65_536;
/// Frames queued for the writer of one connection.
pub const WRITE_QUEUE_FRAMES: usize = 1024;
/// How long a closing connection waits for the client's `close-ok`.
pub const CLOSE_WAIT_MS: u64 = 2_000;
/// The most reserved for a message body before its bytes arrive.
pub const BODY_RESERVE_BYTES_MAX: usize = 128 * 1024;
/// Read buffer growth step.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// A publish whose content is still arriving.
struct Pending {
    publish: basic::Publish,
    props: Option<AMQPProperties>,
    size: u64,
    body: Vec<u8>,
}

struct Channel {
    closing: bool,
    ledger: Arc<Mutex<Ledger>>,
    prefetch_consumer: u16,
    consumers: HashMap<String, Arc<QueueHandle>>,
    confirm: bool,
    tx: bool,
    next_seq: u64,
    pending: Option<Pending>,
    publisher: Option<mpsc::Sender<PubItem>>,
    tx_buffer: Vec<PubItem>,
    /// Acknowledgements, nacks and rejects held by a transaction until `tx.commit`.
    tx_settles: Vec<(Vec<(u64, Unacked)>, Settle)>,
    /// `channel.flow(active=false)` is in force.
    paused: Arc<AtomicBool>,
}

impl Channel {
    fn new() -> Channel {
        Channel {
            closing: false,
            ledger: Arc::new(Mutex::new(Ledger::default())),
            prefetch_consumer: 0,
            consumers: HashMap::new(),
            confirm: false,
            tx: false,
            next_seq: 0,
            pending: None,
            publisher: None,
            tx_buffer: Vec::new(),
            tx_settles: Vec::new(),
            paused: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// What ends the frame loop.
enum End {
    /// The socket closed or failed, or a heartbeat was missed.
    Gone,
    /// The client closed the connection (close-ok sent).
    Closed,
    /// We close with this code.
    Fail(Fail, u16, u16),
}

struct Conn<M: Messaging> {
    shared: Arc<Shared<M>>,
    id: u64,
    /// The vhost the connection opened.
    vhost: String,
    peer: SocketAddr,
    out: mpsc::Sender<Vec<u8>>,
    frame_max: u32,
    channel_max: u16,
    channels: HashMap<u16, Channel>,
    /// Acknowledgements read but not yet passed to their queues: the acks of one read go to each
    /// queue as one settle (and one poke per channel), not one message per ack.
    acked: Vec<Unacked>,
    acked_channels: Vec<u16>,
}

fn ids(class: &AMQPClass) -> (u16, u16) {
    (class.get_amqp_class_id(), class.get_amqp_method_id())
}

/// Serves one accepted socket until it closes.
pub(crate) async fn run<M: Messaging>(shared: Arc<Shared<M>>, stream: TcpStream, peer: SocketAddr) {
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let handshake = tokio::time::timeout(
        Duration::from_millis(HANDSHAKE_TIMEOUT_MS),
        handshake::handshake(&shared, &mut rd, &mut wr, &mut buf, peer),
    )
    .await;
    let Ok(Ok(tuned)) = handshake else {
        let _ = wr.shutdown().await;
        return;
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    shared.metrics.connections.inc();
    shared.metrics.opened.inc();
    let (out, rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE_FRAMES);
    let writer = tokio::spawn(write_loop(wr, rx, tuned.heartbeat_s));
    let mut conn = Conn {
        shared: shared.clone(),
        id,
        vhost: tuned.vhost.clone(),
        peer,
        out,
        frame_max: tuned.frame_max,
        channel_max: tuned.channel_max,
        channels: HashMap::new(),
        acked: Vec::new(),
        acked_channels: Vec::new(),
    };
    let end = conn.frames(&mut rd, &mut buf, tuned.heartbeat_s, tuned.blocked_capable).await;
    if let End::Fail(f, class_id, method_id) = end {
        shared.metrics.connection_errors.with_label_values(&[&f.code.to_string()]).inc();
        tracing::debug!(%peer, code = f.code, text = %f.text, "closing an AMQP connection");
        let close = connection::Close { reply_code: f.code, reply_text: short(&f.text), class_id, method_id };
        let _ = conn.out.send(wire::method(0, AMQPClass::Connection(connection::AMQPMethod::Close(close)))).await;
        // Wait a little for close-ok, ignoring everything else.
        let _ = tokio::time::timeout(Duration::from_millis(CLOSE_WAIT_MS), async {
            loop {
                match wire::read_frame(&mut buf, conn.frame_max) {
                    Ok(Some(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))))) => break,
                    Ok(Some(_)) => continue,
                    Err(_) => break,
                    Ok(None) => {}
                }
                match rd.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
    conn.close_all().await;
    drop(conn.out);
    let _ = writer.await;
    shared.metrics.connections.dec();
    shared.metrics.closed.inc();
}

async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Vec<u8>>, heartbeat_s: u16) {
    // Twice per negotiated interval, as RabbitMQ does, so a client never sees a silent interval.
    let beat = (heartbeat_s > 0).then(|| Duration::from_millis(u64::from(heartbeat_s) * 500));
    let mut pending: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let next = match beat {
            Some(d) => match tokio::time::timeout(d, rx.recv()).await {
                Ok(n) => n,
                Err(_) => Some(wire::heartbeat()),
            },
            None => rx.recv().await,
        };
        let Some(first) = next else { break };
        pending.extend_from_slice(&first);
        while pending.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(more) => pending.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if wr.write_all(&pending).await.is_err() {
            break;
        }
        pending.clear();
    }
    let _ = wr.shutdown().await;
}

impl<M: Messaging> Conn<M> {
    async fn send(&self, bytes: Vec<u8>) {
        let _ = self.out.send(bytes).await;
    }

    async fn reply(&self, channel: u16, class: AMQPClass) {
        self.send(wire::method(channel, class)).await;
    }

    /// The frame loop after `connection.open`.
    async fn frames(
        &mut self,
        rd: &mut tokio::net::tcp::OwnedReadHalf,
        buf: &mut BytesMut,
        heartbeat_s: u16,
        blocked_capable: bool,
    ) -> End {
        let silence = (heartbeat_s > 0).then(|| Duration::from_secs(u64::from(heartbeat_s) * 2));
        let mut blocked = self.shared.blocked.clone();
        let mut told_blocked = false;
        let mut watch_blocked = blocked_capable;
        loop {
            loop {
                let frame = match wire::read_frame(buf, self.frame_max) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(f) => return End::Fail(f, 0, 0),
                };
                // Buffered acks go first whenever anything else comes, so every other method sees
                // them applied.
                if !matches!(&frame, AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Ack(_)))) {
                    self.flush_acks();
                }
                let done = self.frame(frame).await;
                match done {
                    Ok(None) => {}
                    Ok(Some(end)) => {
                        self.flush_acks();
                        return end;
                    }
                    Err((f, c, m)) => {
                        self.flush_acks();
                        return End::Fail(f, c, m);
                    }
                }
            }
            self.flush_acks();
            if blocked_capable && *blocked.borrow() != told_blocked {
                told_blocked = !told_blocked;
                self.send_blocked(told_blocked).await;
            }
            let read = async {
                match silence {
                    Some(d) => tokio::time::timeout(d, rd.read_buf(buf)).await.unwrap_or(Ok(0)),
                    None => rd.read_buf(buf).await,
                }
            };
            tokio::select! {
                r = read => match r {
                    Ok(0) | Err(_) => return End::Gone,
                    Ok(_) => {}
                },
                changed = blocked.changed(), if watch_blocked => {
                    // The watcher ends only with the door; stop listening rather than spin.
                    watch_blocked = changed.is_ok();
                }
            }
        }
    }

    async fn send_blocked(&self, on: bool) {
        let class = if on {
            self.shared.metrics.blocked.inc();
            connection::AMQPMethod::Blocked(connection::Blocked { reason: "low on disk".into() })
        } else {
            self.shared.metrics.blocked.dec();
            connection::AMQPMethod::Unblocked(connection::Unblocked {})
        };
        self.reply(0, AMQPClass::Connection(class)).await;
    }

    /// Handles one frame; `Ok(Some(end))` ends the loop, `Err` is a connection error.
    async fn frame(&mut self, frame: AMQPFrame) -> Result<Option<End>, (Fail, u16, u16)> {
        match frame {
            AMQPFrame::Heartbeat => Ok(None),
            AMQPFrame::InvalidHeartbeat(_) => {
                Err((Fail::new(error::FRAME_ERROR, "heartbeat frame on a channel other than 0"), 0, 0))
            }
            AMQPFrame::ProtocolHeader(_) => {
                Err((Fail::new(error::UNEXPECTED_FRAME, "protocol header after the handshake"), 0, 0))
            }
            AMQPFrame::Method(0, class) => self.connection_method(class).await,
            AMQPFrame::Method(ch, class) => {
                let (c, m) = ids(&class);
                self.channel_method(ch, class).await.map_err(|f| (f, c, m))
            }
            AMQPFrame::Header(ch, header) => {
                self.content_header(ch, header.body_size, header.properties).await.map(|()| None)
            }
            AMQPFrame::Body(ch, bytes) => self.content_body(ch, bytes).await.map(|()| None),
        }
    }

    async fn connection_method(&mut self, class: AMQPClass) -> Result<Option<End>, (Fail, u16, u16)> {
        let (c, m) = ids(&class);
        match class {
            AMQPClass::Connection(connection::AMQPMethod::Close(_)) => {
                self.reply(0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}))).await;
                Ok(Some(End::Closed))
            }
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => Ok(Some(End::Closed)),
            AMQPClass::Connection(connection::AMQPMethod::Blocked(_) | connection::AMQPMethod::Unblocked(_)) => {
                Ok(None)
            }
            AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_)) => {
                self.reply(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(connection::UpdateSecretOk {})),
                )
                .await;
                Ok(None)
            }
            _ => Err((Fail::command_invalid("unexpected method on channel 0"), c, m)),
        }
    }

    /// Closes a channel from our side after a soft error.
    async fn channel_error(&mut self, ch: u16, f: Fail, class_id: u16, method_id: u16) {
        self.shared.metrics.channel_errors.with_label_values(&[&f.code.to_string()]).inc();
        let close = channel::Close { reply_code: f.code, reply_text: short(&f.text), class_id, method_id };
        self.reply(ch, AMQPClass::Channel(channel::AMQPMethod::Close(close))).await;
        if let Some(mut c) = self.channels.remove(&ch) {
            self.release(&mut c, ch).await;
            c.closing = true;
            self.channels.insert(ch, c);
        }
    }

    async fn channel_method(&mut self, ch: u16, class: AMQPClass) -> Result<Option<End>, Fail> {
        let (class_id, method_id) = ids(&class);
        match self.channels.get(&ch) {
            None => {
                if let AMQPClass::Channel(channel::AMQPMethod::Open(_)) = class {
                    if ch > self.channel_max {
                        return Err(Fail::new(
                            error::NOT_ALLOWED,
                            format!("channel number {ch} is over channel_max {}", self.channel_max),
                        ));
                    }
                    self.channels.insert(ch, Channel::new());
                    self.shared.metrics.channels.inc();
                    self.reply(ch, AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {}))).await;
                    return Ok(None);
                }
                return Err(Fail::new(error::CHANNEL_ERROR, format!("expected 'channel.open' on channel {ch}")));
            }
            Some(c) if c.closing => {
                match class {
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                        self.channels.remove(&ch);
                        self.shared.metrics.channels.dec();
                    }
                    AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                        self.channels.remove(&ch);
                        self.shared.metrics.channels.dec();
                        self.reply(ch, AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}))).await;
                    }
                    _ => {}
                }
                return Ok(None);
            }
            Some(c) if c.pending.is_some() => {
                return Err(Fail::new(
                    error::UNEXPECTED_FRAME,
                    "expected content header for class 60, got a method frame",
                ));
            }
            Some(_) => {}
        }
        match self.method(ch, class).await {
            Ok(()) => Ok(None),
            Err(f) if f.is_hard() => Err(f),
            Err(f) => {
                self.channel_error(ch, f, class_id, method_id).await;
                Ok(None)
            }
        }
    }

    fn chan(&mut self, ch: u16) -> Result<&mut Channel, Fail> {
        self.channels.get_mut(&ch).ok_or_else(|| Fail::new(error::CHANNEL_ERROR, format!("channel {ch} is not open")))
    }

    /// One method on an open channel. Soft failures close the channel, hard ones the connection.
    async fn method(&mut self, ch: u16, class: AMQPClass) -> Result<(), Fail> {
        use basic::AMQPMethod as B;
        match class {
            AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                if let Some(mut c) = self.channels.remove(&ch) {
                    self.release(&mut c, ch).await;
                    self.shared.metrics.channels.dec();
                }
                self.reply(ch, AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}))).await;
            }
            AMQPClass::Channel(channel::AMQPMethod::Open(_)) => {
                return Err(Fail::new(error::CHANNEL_ERROR, "second 'channel.open' seen"));
            }
            AMQPClass::Channel(channel::AMQPMethod::Flow(f)) => {
                // `active=false` stops deliveries to the channel's consumers until `active=true`.
                self.chan(ch)?.paused.store(!f.active, Ordering::Relaxed);
                if f.active {
                    self.poke(ch);
                }
                self.reply(ch, AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk { active: f.active })))
                    .await;
            }
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(_) | channel::AMQPMethod::FlowOk(_)) => {}
            AMQPClass::Exchange(m) => self.exchange_method(ch, m).await?,
            AMQPClass::Queue(m) => self.queue_method(ch, m).await?,
            AMQPClass::Basic(B::Publish(p)) => {
                if p.immediate {
                    return Err(Fail::new(error::NOT_IMPLEMENTED, "immediate=true"));
                }
                self.chan(ch)?.pending = Some(Pending { publish: p, props: None, size: 0, body: Vec::new() });
            }
            AMQPClass::Basic(B::Qos(q)) => {
                let c = self.chan(ch)?;
                if q.global {
                    c.ledger.lock().unwrap_or_else(|e| e.into_inner()).prefetch_channel = q.prefetch_count;
                } else {
                    c.prefetch_consumer = q.prefetch_count;
                }
                self.poke(ch);
                self.reply(ch, AMQPClass::Basic(B::QosOk(basic::QosOk {}))).await;
            }
            AMQPClass::Basic(B::Consume(c)) => self.consume(ch, c).await?,
            AMQPClass::Basic(B::Cancel(c)) => {
                let q = self.chan(ch)?.consumers.remove(c.consumer_tag.as_str());
                if let Some(q) = q {
                    let tag = c.consumer_tag.as_str().to_owned();
                    let left = q.ask(|reply| Cmd::Cancel { conn: self.id, channel: ch, tag: Some(tag), reply }).await;
                    if q.auto_delete && left == Some(0) {
                        let _ = self.shared.delete_queue(&self.vhost, self.id, &q.name, false, false).await;
                    }
                }
                if !c.nowait {
                    let ok = basic::CancelOk { consumer_tag: c.consumer_tag };
                    self.reply(ch, AMQPClass::Basic(B::CancelOk(ok))).await;
                }
            }
            AMQPClass::Basic(B::Get(g)) => self.get(ch, g).await?,
            AMQPClass::Basic(B::Ack(a)) => {
                let c = self.chan(ch)?;
                if c.tx {
                    let items = c.ledger.lock().unwrap_or_else(|e| e.into_inner()).hold(a.delivery_tag, a.multiple)?;
                    c.tx_settles.push((items, Settle::Ack));
                    return Ok(());
                }
                let items = c.ledger.lock().unwrap_or_else(|e| e.into_inner()).take(a.delivery_tag, a.multiple)?;
                self.shared.metrics.acknowledged.inc_by(items.len() as u64);
                self.acked.extend(items);
                if !self.acked_channels.contains(&ch) {
                    self.acked_channels.push(ch);
                }
            }
            AMQPClass::Basic(B::Nack(n)) => self.reject(ch, n.delivery_tag, n.multiple, n.requeue)?,
            AMQPClass::Basic(B::Reject(r)) => self.reject(ch, r.delivery_tag, false, r.requeue)?,
            AMQPClass::Basic(B::Recover(r)) => {
                if !r.requeue {
                    return Err(Fail::new(error::NOT_IMPLEMENTED, "requeue=false"));
                }
                self.reject_now(ch, 0, true, true)?;
                self.reply(ch, AMQPClass::Basic(B::RecoverOk(basic::RecoverOk {}))).await;
            }
            AMQPClass::Basic(B::RecoverAsync(r)) => {
                if !r.requeue {
                    return Err(Fail::new(error::NOT_IMPLEMENTED, "requeue=false"));
                }
                self.reject_now(ch, 0, true, true)?;
            }
            AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => {
                let c = self.chan(ch)?;
                if c.tx {
                    return Err(Fail::precondition("cannot switch from tx to confirm mode"));
                }
                c.confirm = true;
                if !s.nowait {
                    self.reply(ch, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {}))).await;
                }
            }
            AMQPClass::Tx(m) => self.tx_method(ch, m).await?,
            AMQPClass::Access(_) => return Err(Fail::new(error::NOT_IMPLEMENTED, "access.request")),
            AMQPClass::Connection(_) => {
                return Err(Fail::new(error::CHANNEL_ERROR, "connection class method on a channel other than 0"));
            }
            other => {
                let (c, m) = ids(&other);
                return Err(Fail::command_invalid(format!("method {c}.{m} is not valid from a client here")));
            }
        }
        Ok(())
    }

    /// Tells the queues this channel consumes from that credit may have changed.
    /// Passes the buffered acknowledgements to their queues, then pokes the channels they freed
    /// credit on.
    fn flush_acks(&mut self) {
        if !self.acked.is_empty() {
            crate::queue::settle(std::mem::take(&mut self.acked), Settle::Ack);
        }
        for ch in std::mem::take(&mut self.acked_channels) {
            self.poke(ch);
        }
    }

    fn poke(&self, ch: u16) {
        if let Some(c) = self.channels.get(&ch) {
            for q in c.consumers.values() {
                q.send(Cmd::Poke);
            }
        }
    }

    fn reject(&mut self, ch: u16, tag: u64, multiple: bool, requeue: bool) -> Result<(), Fail> {
        let how = if requeue { Settle::Requeue } else { Settle::Drop };
        let c = self.chan(ch)?;
        if c.tx {
            let items = c.ledger.lock().unwrap_or_else(|e| e.into_inner()).hold(tag, multiple)?;
            c.tx_settles.push((items, how));
            return Ok(());
        }
        self.reject_now(ch, tag, multiple, requeue)
    }

    /// Rejects at once, in a transaction too (`basic.recover` is not transactional).
    fn reject_now(&mut self, ch: u16, tag: u64, multiple: bool, requeue: bool) -> Result<(), Fail> {
        let how = if requeue { Settle::Requeue } else { Settle::Drop };
        let items = self.chan(ch)?.ledger.lock().unwrap_or_else(|e| e.into_inner()).take(tag, multiple)?;
        self.count_settled(how, items.len());
        crate::queue::settle(items, how);
        self.poke(ch);
        Ok(())
    }

    fn count_settled(&self, how: Settle, n: usize) {
        let m = &self.shared.metrics;
        match how {
            Settle::Ack => m.acknowledged.inc_by(n as u64),
            Settle::Requeue => m.rejected.with_label_values(&["true"]).inc_by(n as u64),
            Settle::Drop => m.rejected.with_label_values(&["false"]).inc_by(n as u64),
        }
    }

    async fn tx_method(&mut self, ch: u16, m: tx::AMQPMethod) -> Result<(), Fail> {
        match m {
            tx::AMQPMethod::Select(_) => {
                let c = self.chan(ch)?;
                if c.confirm {
                    return Err(Fail::precondition("cannot switch from confirm to tx mode"));
                }
                c.tx = true;
                self.reply(ch, AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {}))).await;
            }
            tx::AMQPMethod::Commit(_) => {
                let c = self.chan(ch)?;
                if !c.tx {
                    return Err(Fail::precondition("channel is not transactional"));
                }
                let items = std::mem::take(&mut c.tx_buffer);
                let (done, wait) = oneshot::channel();
                let publisher = self.publisher(ch)?;
                for item in items {
                    let _ = publisher.send(item).await;
                }
                let _ = publisher.send(PubItem::Barrier(done)).await;
                if !wait.await.unwrap_or(false) {
                    return Err(Fail::internal("the transaction's messages could not all be stored"));
                }
                // Then the held acknowledgements, in the order they came.
                let c = self.chan(ch)?;
                let settles = std::mem::take(&mut c.tx_settles);
                {
                    let mut l = c.ledger.lock().unwrap_or_else(|e| e.into_inner());
                    for (items, _) in &settles {
                        l.release_held(items);
                    }
                }
                for (items, how) in settles {
                    self.count_settled(how, items.len());
                    crate::queue::settle(items.into_iter().map(|(_, u)| u).collect(), how);
                }
                self.poke(ch);
                self.reply(ch, AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {}))).await;
            }
            tx::AMQPMethod::Rollback(_) => {
                let c = self.chan(ch)?;
                if !c.tx {
                    return Err(Fail::precondition("channel is not transactional"));
                }
                c.tx_buffer.clear();
                // Held acknowledgements are forgotten: their deliveries are outstanding again.
                let settles = std::mem::take(&mut c.tx_settles);
                {
                    let mut l = c.ledger.lock().unwrap_or_else(|e| e.into_inner());
                    for (items, _) in settles {
                        l.restore(items);
                    }
                }
                self.reply(ch, AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {}))).await;
            }
            _ => return Err(Fail::command_invalid("unexpected tx method")),
        }
        Ok(())
    }

    async fn consume(&mut self, ch: u16, c: basic::Consume) -> Result<(), Fail> {
        let q = self.shared.queue(&self.vhost, self.id, c.queue.as_str())?;
        let tag = if c.consumer_tag.as_str().is_empty() {
            format!("amq.ctag-{}", random_suffix())
        } else {
            c.consumer_tag.as_str().to_owned()
        };
        let (ledger, paused, prefetch) = {
            let chan = self.chan(ch)?;
            if chan.consumers.contains_key(&tag) {
                return Err(Fail::new(error::NOT_ALLOWED, format!("attempt to reuse consumer tag '{tag}'")));
            }
            (chan.ledger.clone(), chan.paused.clone(), chan.prefetch_consumer)
        };
        let ok_frame = (!c.nowait).then(|| {
            wire::method(
                ch,
                AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk { consumer_tag: short(&tag) })),
            )
        });
        let consumer = Consumer {
            conn: self.id,
            peer: self.peer,
            channel: ch,
            tag: tag.clone(),
            no_ack: c.no_ack,
            exclusive: c.exclusive,
            prefetch,
            ledger,
            paused,
            out: self.out.clone(),
            frame_max: self.frame_max,
            ok_frame,
        };
        match q.ask(|reply| Cmd::Consume(consumer, reply)).await {
            Some(Ok(())) => {
                self.chan(ch)?.consumers.insert(tag, q);
                Ok(())
            }
            Some(Err(f)) => Err(f),
            None => Err(Fail::not_found("queue", c.queue.as_str(), &self.vhost)),
        }
    }

    async fn get(&mut self, ch: u16, g: basic::Get) -> Result<(), Fail> {
        let q = self.shared.queue(&self.vhost, self.id, g.queue.as_str())?;
        let got = q.ask(|reply| Cmd::Get { no_ack: g.no_ack, reply }).await.flatten();
        let Some(got) = got else {
            self.shared.metrics.get_empty.inc();
            self.reply(ch, AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {}))).await;
            return Ok(());
        };
        let tag = {
            let chan = self.chan(ch)?;
            let mut l = chan.ledger.lock().unwrap_or_else(|e| e.into_inner());
            l.next_tag += 1;
            let tag = l.next_tag;
            if !g.no_ack {
                l.unacked.insert(tag, Unacked { queue: q.clone(), pos: got.pos, consumer: None });
            }
            tag
        };
        let d = props::to_delivery(&got.message);
        let ok = basic::GetOk {
            delivery_tag: tag,
            redelivered: got.redelivered,
            exchange: short(&d.exchange),
            routing_key: short(&d.routing_key),
            message_count: got.remaining,
        };
        self.shared.metrics.delivered.with_label_values(&["get", if g.no_ack { "auto" } else { "manual" }]).inc();
        if got.redelivered {
            self.shared.metrics.redelivered.inc();
        }
        let mut frames = Vec::with_capacity(d.body.len() + 256);
        wire::push_content(
            &mut frames,
            ch,
            AMQPClass::Basic(basic::AMQPMethod::GetOk(ok)),
            &d.properties,
            &d.body,
            self.frame_max,
        );
        self.send(frames).await;
        Ok(())
    }

    async fn content_header(&mut self, ch: u16, size: u64, properties: AMQPProperties) -> Result<(), (Fail, u16, u16)> {
        let max = self.shared.message_bytes_max;
        let unexpected = || (Fail::new(error::UNEXPECTED_FRAME, "content header without a basic.publish"), 0, 0);
        let Some(c) = self.channels.get_mut(&ch) else { return Err(unexpected()) };
        if c.closing {
            return Ok(());
        }
        let Some(p) = c.pending.as_mut() else { return Err(unexpected()) };
        if p.props.is_some() {
            return Err(unexpected());
        }
        if size > max as u64 {
            c.pending = None;
            self.channel_error(
                ch,
                Fail::precondition(format!("message size {size} is larger than configured max size {max}")),
                60,
                40,
            )
            .await;
            return Ok(());
        }
        p.props = Some(properties);
        p.size = size;
        // Grown as body frames arrive, so an announced size reserves nothing up front.
        p.body = Vec::with_capacity((size as usize).min(BODY_RESERVE_BYTES_MAX));
        if size == 0 {
            self.complete(ch).await.map_err(|f| (f, 60, 40))?;
        }
        Ok(())
    }

    async fn content_body(&mut self, ch: u16, bytes: Vec<u8>) -> Result<(), (Fail, u16, u16)> {
        let unexpected = || (Fail::new(error::UNEXPECTED_FRAME, "content body without a content header"), 0, 0);
        let Some(c) = self.channels.get_mut(&ch) else { return Err(unexpected()) };
        if c.closing {
            return Ok(());
        }
        let Some(p) = c.pending.as_mut() else { return Err(unexpected()) };
        if p.props.is_none() {
            return Err(unexpected());
        }
        if p.body.len() as u64 + bytes.len() as u64 > p.size {
            return Err((Fail::new(error::FRAME_ERROR, "content body larger than the content header said"), 0, 0));
        }
        p.body.extend_from_slice(&bytes);
        if p.body.len() as u64 == p.size {
            self.complete(ch).await.map_err(|f| (f, 60, 40))?;
        }
        Ok(())
    }

    /// A publish whose content arrived: route, return if unroutable and mandatory, queue for
    /// storing (or buffer in a transaction).
    async fn complete(&mut self, ch: u16) -> Result<(), Fail> {
        let Some(c) = self.channels.get_mut(&ch) else { return Ok(()) };
        let Some(p) = c.pending.take() else { return Ok(()) };
        let props = p.props.unwrap_or_default();
        let exchange = p.publish.exchange.as_str().to_owned();
        let key = p.publish.routing_key.as_str().to_owned();
        let routed = {
            let model = self.shared.model.read().unwrap_or_else(|e| e.into_inner());
            let vhost = self.vhost.as_str();
            match model.vhost(vhost) {
                Err(f) => Err(f),
                Ok(v) => match v.exchanges.get(&exchange) {
                    None => Err(Fail::not_found("exchange", &exchange, vhost)),
                    Some(x) if x.internal => Err(Fail::access_refused(format!(
                        "cannot publish to internal exchange '{exchange}' in vhost '{vhost}'"
                    ))),
                    Some(x) => v.route(&exchange, &key, props.headers().as_ref()).map(|qs| (qs, x.kind)),
                },
            }
        };
        let (queues, kind) = match routed {
            Ok(r) => r,
            Err(f) => {
                self.channel_error(ch, f, 60, 40).await;
                return Ok(());
            }
        };
        let metrics = self.shared.metrics.clone();
        metrics.received.inc();
        let c = self.chan(ch)?;
        let seq = c.confirm.then(|| {
            c.next_seq += 1;
            c.next_seq
        });
        // Confirms and `tx.commit-ok` promise durability; a plain publish promises nothing.
        let durable = c.confirm || c.tx;
        if seq.is_some() {
            metrics.received_confirm.inc();
        }
        let item = if queues.is_empty() {
            if p.publish.mandatory {
                metrics.returned.with_label_values(&[kind.as_str()]).inc();
                let ret = basic::Return {
                    reply_code: error::NO_ROUTE,
                    reply_text: "NO_ROUTE".into(),
                    exchange: short(&exchange),
                    routing_key: short(&key),
                };
                let mut frames = Vec::with_capacity(p.body.len() + 256);
                wire::push_content(
                    &mut frames,
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::Return(ret)),
                    &props,
                    &p.body,
                    self.frame_max,
                );
                self.send(frames).await;
            } else {
                metrics.dropped.with_label_values(&[kind.as_str()]).inc();
            }
            PubItem::Msg { seq, durable, topics: Vec::new(), queues: Vec::new(), msg: None }
        } else {
            metrics.routed.with_label_values(&[kind.as_str()]).inc();
            let Some(msg) = props::to_outgoing(&exchange, &key, &props, Bytes::from(p.body)) else {
                self.channel_error(ch, Fail::precondition("message properties are too large"), 60, 40).await;
                return Ok(());
            };
            let topics = queues.iter().map(|q| q.topic.clone()).collect();
            PubItem::Msg { seq, durable, topics, queues, msg: Some(msg) }
        };
        let c = self.chan(ch)?;
        if c.tx {
            if c.tx_buffer.len() >= TX_MESSAGES_MAX {
                return Err(Fail::precondition(format!("more than {TX_MESSAGES_MAX} messages in one transaction")));
            }
            c.tx_buffer.push(item);
            return Ok(());
        }
        let publisher = self.publisher(ch)?;
        let _ = publisher.send(item).await;
        Ok(())
    }

    /// The channel's publisher task (started on first use).
    fn publisher(&mut self, ch: u16) -> Result<mpsc::Sender<PubItem>, Fail> {
        let out = self.out.clone();
        let shared = self.shared.clone();
        let c = self.chan(ch)?;
        if let Some(p) = &c.publisher {
            return Ok(p.clone());
        }
        let (tx, rx) = mpsc::channel(PUBLISH_QUEUE_MESSAGES);
        tokio::spawn(publish_loop(shared, ch, rx, out));
        c.publisher = Some(tx.clone());
        Ok(tx)
    }

    /// Gives a closing channel's deliveries back and removes its consumers.
    async fn release(&mut self, c: &mut Channel, ch: u16) {
        let mut items = {
            let mut l = c.ledger.lock().unwrap_or_else(|e| e.into_inner());
            l.closed = true;
            l.take(0, true).unwrap_or_default()
        };
        // Acknowledgements held by an open transaction never happened.
        items.extend(c.tx_settles.drain(..).flat_map(|(held, _)| held.into_iter().map(|(_, u)| u)));
        crate::queue::settle(items, Settle::Requeue);
        c.pending = None;
        c.tx_buffer.clear();
        let mut seen: Vec<Arc<QueueHandle>> = Vec::new();
        for q in c.consumers.drain().map(|(_, q)| q) {
            if !seen.iter().any(|s| Arc::ptr_eq(s, &q)) {
                seen.push(q);
            }
        }
        for q in seen {
            let left = q.ask(|reply| Cmd::Cancel { conn: self.id, channel: ch, tag: None, reply }).await;
            if q.auto_delete && left == Some(0) {
                let _ = self.shared.delete_queue(&self.vhost, self.id, &q.name, false, false).await;
            }
        }
    }

    /// The connection ends: every channel is released, exclusive queues are deleted.
    async fn close_all(&mut self) {
        let channels: Vec<(u16, Channel)> = self.channels.drain().collect();
        for (ch, mut c) in channels {
            if !c.closing {
                self.release(&mut c, ch).await;
            }
            self.shared.metrics.channels.dec();
        }
        self.shared.drop_exclusive(&self.vhost, self.id).await;
    }
}

fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}
