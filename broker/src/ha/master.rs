//! The master side: accepts slaves on the HA port, streams CommitLog bytes to each, and keeps the
//! highest offset a live slave acknowledged for SYNC_MASTER sends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

use super::{Error, REPORT_BYTES, Result, TRANSFER_POLL_MS};
use crate::store::MessageStore;

/// The master's replication settings (from `broker.properties`).
#[derive(Clone, Copy, Debug)]
pub struct MasterLimits {
    /// `haTransferBatchSize`: bytes per chunk.
    pub transfer_batch_bytes: usize,
    /// `haSendHeartbeatInterval`: an idle transfer sends an empty chunk this often.
    pub heartbeat_interval_ms: u64,
    /// `haHousekeepingInterval`: a connection that reported nothing this long is closed.
    pub housekeeping_interval_ms: u64,
    /// `haSlaveFallbehindMax`: a slave further behind does not count for SYNC_MASTER.
    pub fallbehind_max_bytes: u64,
}

/// How a SYNC_MASTER wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replicated {
    /// A slave has the message.
    Yes,
    /// No slave acknowledged it within `slaveTimeout` (RocketMQ's FLUSH_SLAVE_TIMEOUT).
    TimedOut,
    /// No slave connected, or the slave is too far behind (SLAVE_NOT_AVAILABLE).
    SlaveNotAvailable,
}

/// One connected slave, for `brokerStatus` and metrics.
#[derive(Clone, Debug)]
pub struct SlaveView {
    pub addr: SocketAddr,
    /// The offset the slave last reported (`None` until its first report).
    pub acked_offset: Option<u64>,
    /// The offset the master has sent up to.
    pub sent_offset: u64,
}

struct Conn {
    addr: SocketAddr,
    acked: Option<u64>,
    out: Arc<Outbound>,
}

/// The sending side of one slave connection. Both the send path ([`Master::notify_appended`],
/// right after an append, with no task wake-up in between) and the connection's transfer task
/// push CommitLog bytes through it; whoever holds `state` writes, in offset order.
struct Outbound {
    writer: OwnedWriteHalf,
    state: Mutex<OutState>,
    /// The offset sent up to (for `brokerStatus`).
    sent: AtomicU64,
    /// The offset the slave last reported. While `sent` is past it a burst is in flight, and
    /// appenders leave new bytes to the next report, which sends them all in one write.
    acked: AtomicU64,
}

struct OutState {
    /// Next CommitLog offset to send; `None` until the slave's first report.
    next: Option<u64>,
    /// Encoded chunks not yet taken by the socket, from `pending_at` on.
    pending: Vec<u8>,
    pending_at: usize,
    last_write: Instant,
}

/// What a push left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pushed {
    /// Everything published is written (or another pusher holds the stream and will re-check).
    Done,
    /// The socket is full: the transfer task waits until it is writable.
    Blocked,
}

/// The replication master of one broker.
pub struct Master {
    store: Arc<MessageStore>,
    limits: MasterLimits,
    /// Highest offset acknowledged by a live slave that has reported.
    acked: AtomicU64,
    conns: Mutex<HashMap<u64, Conn>>,
    next_id: AtomicU64,
    /// The live connections' sending sides, for pushes from the send path.
    streams: std::sync::RwLock<Vec<Arc<Outbound>>>,
    /// SYNC_MASTER sends waiting for a slave, by the end offset they need: an acknowledgement
    /// wakes exactly the sends it covers (a broadcast would wake every waiting send per report).
    /// Timeouts are found by a sweep every [`WAITING_SWEEP_INTERVAL_MS`] (in [`Master::serve`]),
    /// so a wait costs no timer of its own.
    waiting: Mutex<std::collections::BTreeMap<u64, Vec<Waiter>>>,
}

/// What a send waiting for a slave is told, once: [`Master::wait_then`].
pub type ReplicatedCallback = Box<dyn FnOnce(Replicated) + Send>;

struct Waiter {
    deadline: Instant,
    done: ReplicatedCallback,
}

/// How often waits past their deadline are answered `TimedOut`: a wait may last this much
/// longer than `slaveTimeout`.
const WAITING_SWEEP_INTERVAL_MS: u64 = 10;
/// Encoded chunks gathered for one socket write.
const PUSH_GATHER_BYTES: usize = 256 * 1024;

impl Master {
    /// A master over `store`; every append to the store is pushed to the started slaves from
    /// the appender's thread ([`Master::notify_appended`]).
    pub fn new(store: Arc<MessageStore>, limits: MasterLimits) -> Arc<Master> {
        let master = Arc::new(Master {
            store,
            limits,
            acked: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            streams: std::sync::RwLock::new(Vec::new()),
            waiting: Mutex::new(std::collections::BTreeMap::new()),
        });
        let weak = Arc::downgrade(&master);
        master.store.set_append_listener(move || {
            if let Some(m) = weak.upgrade() {
                m.notify_appended();
            }
        });
        master
    }

    /// Binds the HA port.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
        TcpListener::bind(addr).await
    }

    /// Accepts slaves, and answers the waits that reached their deadline, until the task is
    /// aborted.
    pub async fn serve(self: Arc<Master>, listener: TcpListener) {
        let mut sweep = tokio::time::interval(Duration::from_millis(WAITING_SWEEP_INTERVAL_MS));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = sweep.tick() => {
                    self.expire_waits(Instant::now());
                    continue;
                }
            };
            match accepted {
                Ok((stream, peer)) => {
                    let master = Arc::clone(&self);
                    tokio::spawn(async move { master.connection(stream, peer).await });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "HA accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Pushes what the CommitLog just grew by to every started slave that has nothing in
    /// flight, from the caller's thread: one non-blocking write, no task wake-up. With a burst in
    /// flight, the slave's report on it sends what piled up meanwhile, in one write (one
    /// outstanding burst per slave: under load each round trip carries many messages). A stream
    /// another pusher holds is left to it (it re-checks the CommitLog end after letting go); a
    /// full socket is left to the transfer task.
    pub fn notify_appended(&self) {
        // Pairs with the fences in `push` and `read_reports`: either this push goes ahead, or
        // the stream's holder or the next report sees the append.
        std::sync::atomic::fence(Ordering::SeqCst);
        let streams = self.streams.read().unwrap_or_else(|p| p.into_inner());
        for out in streams.iter() {
            if out.sent.load(Ordering::Acquire) > out.acked.load(Ordering::Acquire) {
                continue;
            }
            // A write error ends the connection in its transfer task, which sees it too.
            let _ = self.push(out);
        }
    }

    /// Writes everything published past the stream's position, if no one else is writing.
    fn push(&self, out: &Outbound) -> std::io::Result<Pushed> {
        let batch = self.limits.transfer_batch_bytes.max(1);
        let mut rounds = 0u32;
        loop {
            let Ok(mut st) = out.state.try_lock() else { return Ok(Pushed::Done) };
            let Some(start) = st.next else { return Ok(Pushed::Done) };
            let pushed = self.fill_and_write(&mut st, &out.writer, batch);
            let next = st.next.unwrap_or(start);
            out.sent.store(next, Ordering::Release);
            drop(st);
            if pushed? == Pushed::Blocked {
                return Ok(Pushed::Blocked);
            }
            // An append whose push found the stream taken is sent by this holder. A round that
            // moved nothing after the first one ends it (bytes published but not yet readable
            // are the transfer task's, at its next look).
            std::sync::atomic::fence(Ordering::SeqCst);
            rounds += 1;
            if self.store.commit_log_max_offset() <= next || (rounds > 1 && next == start) {
                return Ok(Pushed::Done);
            }
        }
    }

    /// Encodes chunks from `st.next` on and writes them until nothing is left or the socket is
    /// full.
    fn fill_and_write(&self, st: &mut OutState, writer: &OwnedWriteHalf, batch: usize) -> std::io::Result<Pushed> {
        loop {
            if st.pending_at < st.pending.len() {
                match writer.try_write(&st.pending[st.pending_at..]) {
                    Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        st.pending_at += n;
                        st.last_write = Instant::now();
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Pushed::Blocked),
                    Err(e) => return Err(e),
                }
            }
            st.pending.clear();
            st.pending_at = 0;
            let Some(mut next) = st.next else { return Ok(Pushed::Done) };
            while st.pending.len() < PUSH_GATHER_BYTES {
                let Some(bytes) = self.store.transfer_bytes(next, batch) else { break };
                st.pending.extend_from_slice(&(next as i64).to_be_bytes());
                st.pending.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                st.pending.extend_from_slice(&bytes);
                next += bytes.len() as u64;
            }
            st.next = Some(next);
            if st.pending.is_empty() {
                return Ok(Pushed::Done);
            }
        }
    }

    /// Queues an empty chunk (a heartbeat) when nothing was written for `heartbeat`.
    fn heartbeat_if_idle(&self, out: &Outbound, heartbeat: Duration) {
        let Ok(mut st) = out.state.lock() else { return };
        let Some(next) = st.next else { return };
        if st.pending_at >= st.pending.len() && st.last_write.elapsed() >= heartbeat {
            st.pending.clear();
            st.pending_at = 0;
            st.pending.extend_from_slice(&(next as i64).to_be_bytes());
            st.pending.extend_from_slice(&0i32.to_be_bytes());
        }
    }

    /// Waits until a slave acknowledged `end_offset`, for at most `timeout`. Returns at once with
    /// `SlaveNotAvailable` when no slave reported or the best one is `haSlaveFallbehindMax` behind.
    pub async fn wait_replicated(&self, end_offset: u64, timeout: Duration) -> Replicated {
        let (tx, rx) = oneshot::channel();
        self.wait_then(
            end_offset,
            timeout,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.await.unwrap_or(Replicated::TimedOut)
    }

    /// [`Master::wait_replicated`] with a callback instead of a future: `done` runs once, on the
    /// caller's thread when the answer is known at once, else on the thread that handles the
    /// slave's acknowledgement or the sweep that finds the deadline passed. The send path calls
    /// it from the store's completion, so a SYNC_MASTER send wakes its task once.
    pub fn wait_then(&self, end_offset: u64, timeout: Duration, done: ReplicatedCallback) {
        let acked = self.acked.load(Ordering::Acquire);
        if !self.slave_ok(acked) {
            return done(Replicated::SlaveNotAvailable);
        }
        if acked >= end_offset {
            return done(Replicated::Yes);
        }
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        // Re-checked under the lock `publish_acked` takes: an acknowledgement between the first
        // check and the insert is not missed.
        if self.acked.load(Ordering::Acquire) >= end_offset {
            drop(waiting);
            return done(Replicated::Yes);
        }
        waiting.entry(end_offset).or_default().push(Waiter { deadline: Instant::now() + timeout, done });
    }

    /// Answers `TimedOut` to the waits whose deadline is past `now`. Waits for lower offsets
    /// began earlier (all share `slaveTimeout`), so the scan stops at the first offset with a
    /// wait still running.
    fn expire_waits(&self, now: Instant) {
        let mut expired = Vec::new();
        {
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            while let Some(mut entry) = waiting.first_entry() {
                let waiters = entry.get_mut();
                let (late, running): (Vec<Waiter>, Vec<Waiter>) =
                    std::mem::take(waiters).into_iter().partition(|w| w.deadline <= now);
                expired.extend(late);
                if running.is_empty() {
                    entry.remove();
                } else {
                    *entry.get_mut() = running;
                    break;
                }
            }
        }
        for w in expired {
            (w.done)(Replicated::TimedOut);
        }
    }

    fn slave_ok(&self, acked: u64) -> bool {
        let reported = self.conns.lock().unwrap_or_else(|p| p.into_inner()).values().any(|c| c.acked.is_some());
        reported && self.store.commit_log_max_offset().saturating_sub(acked) < self.limits.fallbehind_max_bytes
    }

    /// The highest offset a live slave acknowledged (0 with none).
    pub fn acked_offset(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// Bytes the best live slave is behind the CommitLog end; `None` without a reporting slave.
    pub fn lag_bytes(&self) -> Option<u64> {
        let best = self.conns.lock().unwrap_or_else(|p| p.into_inner()).values().filter_map(|c| c.acked).max()?;
        Some(self.store.commit_log_max_offset().saturating_sub(best))
    }

    pub fn slaves(&self) -> Vec<SlaveView> {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<SlaveView> = conns
            .values()
            .map(|c| SlaveView { addr: c.addr, acked_offset: c.acked, sent_offset: c.out.sent.load(Ordering::Acquire) })
            .collect();
        v.sort_by_key(|s| s.addr);
        v
    }

    /// Recomputes the acknowledged offset from the live connections.
    fn publish_acked(&self) {
        let best = self.conns.lock().unwrap_or_else(|p| p.into_inner()).values().filter_map(|c| c.acked).max();
        let best = best.unwrap_or(0);
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        self.acked.store(best, Ordering::Release);
        // Everything at or below `best` is replicated: wake those sends, and only those.
        let still_waiting = waiting.split_off(&best.saturating_add(1));
        let done = std::mem::replace(&mut *waiting, still_waiting);
        drop(waiting);
        for w in done.into_values().flatten() {
            (w.done)(Replicated::Yes);
        }
    }

    async fn connection(self: Arc<Master>, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reader, writer) = stream.into_split();
        let out = Arc::new(Outbound {
            writer,
            state: Mutex::new(OutState { next: None, pending: Vec::new(), pending_at: 0, last_write: Instant::now() }),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
        });
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Conn { addr: peer, acked: None, out: Arc::clone(&out) });
        tracing::info!(%peer, "HA: a slave connected");
        let (start_tx, start_rx) = watch::channel(None::<u64>);
        let reading = self.read_reports(id, &out, reader, start_tx);
        let writing = self.transfer(&out, start_rx);
        let result = tokio::select! {
            r = reading => r,
            r = writing => r,
        };
        self.streams.write().unwrap_or_else(|p| p.into_inner()).retain(|o| !Arc::ptr_eq(o, &out));
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        self.publish_acked();
        match result {
            Ok(()) => tracing::info!(%peer, "HA: slave connection closed"),
            Err(e) => tracing::warn!(%peer, error = %e, "HA: slave connection refused or closed"),
        }
    }

    /// Reads the slave's 8-byte reports; the first one tells the transfer where to start.
    async fn read_reports(
        &self,
        id: u64,
        out: &Outbound,
        mut reader: tokio::net::tcp::OwnedReadHalf,
        start: watch::Sender<Option<u64>>,
    ) -> Result<()> {
        let silent = Duration::from_millis(self.limits.housekeeping_interval_ms.max(1));
        let mut buf = [0u8; REPORT_BYTES];
        let mut previous: Option<u64> = None;
        loop {
            match tokio::time::timeout(silent, reader.read_exact(&mut buf)).await {
                Err(_) => return Err(Error::Silent(self.limits.housekeeping_interval_ms)),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(_)) => {}
            }
            let raw = i64::from_be_bytes(buf);
            let max = self.store.commit_log_max_offset();
            if raw < 0 || raw as u64 > max {
                return Err(Error::OffsetBeyondMaster { reported: raw as u64, max });
            }
            let reported = raw as u64;
            match previous {
                None => {
                    let from = if reported == 0 { self.store.commit_log_newest_file_start() } else { reported };
                    let min = self.store.commit_log_min_offset();
                    if from < min {
                        return Err(Error::OffsetGone { needed: from, min });
                    }
                    let _ = start.send(Some(from));
                }
                Some(p) if reported < p => return Err(Error::OffsetWentBack { reported, previous: p }),
                Some(_) => {}
            }
            previous = Some(reported);
            if let Some(c) = self.conns.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&id) {
                c.acked = Some(reported);
            }
            self.publish_acked();
            // The burst in flight has landed: send what appenders left meanwhile.
            out.acked.store(reported, Ordering::Release);
            std::sync::atomic::fence(Ordering::SeqCst);
            self.push(out)?;
        }
    }

    /// Starts the stream at the slave's start offset, then keeps it going where the send path's
    /// pushes cannot: a full socket, heartbeats, and a periodic look for anything missed.
    async fn transfer(&self, out: &Arc<Outbound>, mut start: watch::Receiver<Option<u64>>) -> Result<()> {
        let Ok(first) = start.wait_for(Option::is_some).await.map(|v| *v) else { return Ok(()) };
        let Some(from) = first else { return Ok(()) };
        out.state.lock().unwrap_or_else(|p| p.into_inner()).next = Some(from);
        self.streams.write().unwrap_or_else(|p| p.into_inner()).push(Arc::clone(out));
        let heartbeat = Duration::from_millis(self.limits.heartbeat_interval_ms.max(1));
        loop {
            self.heartbeat_if_idle(out, heartbeat);
            match self.push(out)? {
                Pushed::Blocked => out.writer.writable().await?,
                Pushed::Done => {
                    let next = out.sent.load(Ordering::Acquire);
                    if next < self.store.commit_log_min_offset() {
                        return Err(Error::OffsetGone { needed: next, min: self.store.commit_log_min_offset() });
                    }
                    tokio::time::sleep(Duration::from_millis(TRANSFER_POLL_MS)).await;
                }
            }
        }
    }
}
