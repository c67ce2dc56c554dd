//! The slave side: connects to the master's HA port, appends what it streams, reports progress.
//!
//! The whole loop runs on one thread of its own with plain sockets: a burst from the master costs
//! three system calls (read, the CommitLog write, the report), no event loop in between, and never
//! pulls in the broker's runtime workers. Between bursts the thread polls briefly before it sleeps
//! ([`Waiter`]).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{CHUNK_BYTES_MAX, CHUNK_HEADER_BYTES, CONNECT_TIMEOUT_MS, Error, RECONNECT_DELAY_MS, Result};
use crate::store::MessageStore;

/// Bytes one read from the master may bring (a chunk larger than this grows the buffer).
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// The slave's replication settings (from `broker.properties`).
#[derive(Clone, Copy, Debug)]
pub struct SlaveLimits {
    /// `haSendHeartbeatInterval`: the slave reports at least this often.
    pub heartbeat_interval_ms: u64,
    /// `haHousekeepingInterval`: a master silent this long is dropped and reconnected.
    pub housekeeping_interval_ms: u64,
    /// `haSlaveSpinMicros`: how long to poll for the next burst before sleeping ([`Waiter`]).
    pub spin_us: u64,
}

/// What `brokerStatus` shows of a slave's replication.
#[derive(Clone, Debug, Default)]
pub struct SlaveStatus {
    /// The master's HA address in use (configured or learned from the name server).
    pub master_ha_addr: Option<String>,
    pub connected: bool,
    /// The CommitLog end this slave has written.
    pub replica_offset: u64,
    /// The newest master offset seen in a chunk header (the master's end, at most).
    pub master_seen_offset: u64,
}

/// The replication slave of one broker.
pub struct Slave {
    store: Arc<MessageStore>,
    limits: SlaveLimits,
    /// `haMasterAddress` from the config: wins over the learned address.
    configured: Option<String>,
    learned: Mutex<Option<String>>,
    connected: AtomicBool,
    master_seen: AtomicU64,
}

/// Asks the replication thread to stop: a flag, and the socket it may be blocked on.
struct Stop {
    requested: AtomicBool,
    socket: Mutex<Option<TcpStream>>,
    thread: std::sync::OnceLock<std::thread::Thread>,
}

impl Stop {
    fn requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    fn request(&self) {
        self.requested.store(true, Ordering::Release);
        if let Some(s) = self.socket.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Keeps a handle on the session's socket so that [`Stop::request`] can unblock a read.
    /// `false` when a stop was requested meanwhile.
    fn watch(&self, socket: &TcpStream) -> bool {
        let mut slot = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        *slot = socket.try_clone().ok();
        !self.requested()
    }

    fn unwatch(&self) {
        self.socket.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Sleeps for `ms` or until a stop is requested.
    fn sleep(&self, ms: u64) {
        let until = Instant::now() + Duration::from_millis(ms);
        while !self.requested() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::park_timeout(left);
        }
    }
}

/// Stops the replication thread when dropped (the task [`Slave::spawn_on_own_thread`] returns
/// holds it, so aborting the task stops the thread).
struct StopOnDrop(Arc<Stop>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.request();
    }
}

impl Slave {
    pub fn new(store: Arc<MessageStore>, limits: SlaveLimits, configured: Option<String>) -> Arc<Slave> {
        Arc::new(Slave {
            store,
            limits,
            configured,
            learned: Mutex::new(None),
            connected: AtomicBool::new(false),
            master_seen: AtomicU64::new(0),
        })
    }

    /// The master's HA address as the name server announced it (`haServerAddr`).
    pub fn set_master_ha_addr(&self, addr: Option<String>) {
        let mut learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        if *learned != addr {
            tracing::info!(master = ?addr, "HA: master address from the name server");
            *learned = addr;
        }
    }

    fn master_addr(&self) -> Option<String> {
        self.configured.clone().or_else(|| self.learned.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    pub fn status(&self) -> SlaveStatus {
        SlaveStatus {
            master_ha_addr: self.master_addr(),
            connected: self.connected.load(Ordering::Acquire),
            replica_offset: self.store.replica_offset(),
            master_seen_offset: self.master_seen.load(Ordering::Acquire),
        }
    }

    /// Starts replicating on a thread of its own, reconnecting after every failure. Returns a
    /// task of the caller's runtime; aborting (or dropping) it stops the thread.
    ///
    /// # Errors
    /// The thread cannot be created.
    pub fn spawn_on_own_thread(self: Arc<Slave>) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let stop = Arc::new(Stop {
            requested: AtomicBool::new(false),
            socket: Mutex::new(None),
            thread: std::sync::OnceLock::new(),
        });
        let stopper = StopOnDrop(Arc::clone(&stop));
        let handle = std::thread::Builder::new().name("ha-slave".into()).spawn({
            let stop = Arc::clone(&stop);
            move || self.run(&stop)
        })?;
        let _ = stop.thread.set(handle.thread().clone());
        Ok(tokio::spawn(async move {
            let _stop_when_dropped = stopper;
            std::future::pending::<()>().await;
        }))
    }

    fn run(&self, stop: &Stop) {
        let mut last_error: Option<String> = None;
        while !stop.requested() {
            if let Some(addr) = self.master_addr() {
                match connect(&addr) {
                    Ok(stream) if stop.watch(&stream) => {
                        tracing::info!(master = %addr, offset = self.store.replica_offset(), "HA: connected to the master");
                        self.connected.store(true, Ordering::Release);
                        let result = self.session(stream, stop);
                        self.connected.store(false, Ordering::Release);
                        stop.unwatch();
                        match result {
                            Err(e) if !stop.requested() => {
                                tracing::warn!(master = %addr, error = %e, "HA: connection to the master ended");
                            }
                            _ => {}
                        }
                        last_error = None;
                    }
                    Ok(_) => return,
                    Err(e) => {
                        let msg = e.to_string();
                        if last_error.as_deref() != Some(msg.as_str()) {
                            tracing::warn!(master = %addr, error = %msg, "HA: cannot connect to the master");
                            last_error = Some(msg);
                        }
                    }
                }
            }
            stop.sleep(RECONNECT_DELAY_MS);
        }
    }

    /// One connection: appends every chunk at its offset and reports the written end after each
    /// read that applied data (one report acknowledges everything that had arrived), and at
    /// least every `haSendHeartbeatInterval`.
    fn session(&self, mut stream: TcpStream, stop: &Stop) -> Result<()> {
        let _ = stream.set_nodelay(true);
        let heartbeat = Duration::from_millis(self.limits.heartbeat_interval_ms.max(1));
        let silent = Duration::from_millis(self.limits.housekeeping_interval_ms.max(1));
        // A blocked read returns at least this often, for heartbeats and the silence check.
        stream.set_read_timeout(Some(heartbeat.min(silent)))?;
        let mut inbox = Inbox::new();
        self.report(&mut stream)?;
        let mut last_report = Instant::now();
        let mut last_heard = Instant::now();
        let mut waiter = Waiter::new(self.limits.spin_us);
        loop {
            if stop.requested() {
                return Ok(());
            }
            match inbox.fill(&mut stream, &mut waiter) {
                Ok(0) => return Err(Error::Io(ErrorKind::UnexpectedEof.into())),
                Ok(_) => last_heard = Instant::now(),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) => return Err(e.into()),
            }
            let mut applied = false;
            while let Some((offset, size)) = inbox.next_chunk()? {
                if size > 0 {
                    let expected = self.store.replica_offset();
                    let fresh_start = expected == 0 && self.store.commit_log_max_offset() == 0;
                    if offset != expected && !fresh_start {
                        return Err(Error::OffsetMismatch { expected, got: offset });
                    }
                    self.store.append_replica_quiet(offset, inbox.body(size))?;
                    self.master_seen.fetch_max(offset + size as u64, Ordering::AcqRel);
                    applied = true;
                } else {
                    self.master_seen.fetch_max(offset, Ordering::AcqRel);
                }
                inbox.consume(size);
            }
            if applied || last_report.elapsed() >= heartbeat {
                self.report(&mut stream)?;
                last_report = Instant::now();
            }
            if applied {
                self.store.wake_dispatcher();
            }
            if last_heard.elapsed() >= silent {
                return Err(Error::Silent(self.limits.housekeeping_interval_ms));
            }
        }
    }

    /// Writes the store's written end as one 8-byte report.
    fn report(&self, stream: &mut TcpStream) -> Result<()> {
        let offset = self.store.replica_offset();
        stream.write_all(&(offset as i64).to_be_bytes())?;
        Ok(())
    }
}

fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(ErrorKind::NotFound, format!("{addr} resolves to no address"));
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, Duration::from_millis(CONNECT_TIMEOUT_MS)) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// How the thread waits for the master's next burst: after each report it polls the socket for
/// up to `haSlaveSpinMicros` before it sleeps in a blocking read. Under SYNC_MASTER load the next
/// burst usually comes within one round trip, and a poll that catches it saves the sleep and the
/// wake-up (tens of microseconds on a virtual machine), which every waiting send would otherwise
/// pay. What polling may cost is bounded twice ([`SpinPolicy`]): at most a quarter of one CPU in
/// every 100 ms, and polls that keep missing (little traffic, or a master that answers slowly)
/// back off, so an idle or lightly loaded slave spends next to nothing on it.
struct Waiter {
    policy: SpinPolicy,
    /// Whether the socket is in blocking mode now (it is switched only when the mode changes).
    blocking: bool,
}

impl Waiter {
    fn new(spin_us: u64) -> Waiter {
        Waiter { policy: SpinPolicy::new(Duration::from_micros(spin_us), Instant::now()), blocking: true }
    }

    fn read(&mut self, stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
        let started = Instant::now();
        let Some(spin) = self.policy.plan(started) else { return self.read_blocking(stream, buf) };
        if self.blocking {
            stream.set_nonblocking(true)?;
            self.blocking = false;
        }
        loop {
            match stream.read(buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                other => {
                    self.policy.record(started.elapsed(), true);
                    return other;
                }
            }
            if started.elapsed() >= spin {
                break;
            }
            // Lets any other runnable thread of this CPU go first.
            std::thread::yield_now();
        }
        self.policy.record(started.elapsed(), false);
        self.read_blocking(stream, buf)
    }

    fn read_blocking(&mut self, stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.blocking {
            stream.set_nonblocking(false)?;
            self.blocking = true;
        }
        stream.read(buf)
    }
}

/// Misses in a row tolerated before waits stop polling for a while.
const SPIN_MISSES_TOLERATED: u32 = 4;
/// The longest run of waits that sleep without polling (each further miss doubles the run).
const SPIN_SKIP_MAX: u32 = 1024;
/// The window over which polling time is capped.
const SPIN_WINDOW_MS: u64 = 100;
/// Polling time allowed per window, in percent of it.
const SPIN_SHARE_MAX_PERCENT: u32 = 25;

/// Whether the next wait polls, and for how long: the decisions of [`Waiter`], apart from the
/// socket so that they can be tested.
#[derive(Debug)]
struct SpinPolicy {
    spin: Duration,
    /// Polls in a row that ended without data.
    misses: u32,
    /// Waits left that sleep without polling.
    skip: u32,
    window_start: Instant,
    /// Time spent polling since `window_start`.
    window_spent: Duration,
}

impl SpinPolicy {
    fn new(spin: Duration, now: Instant) -> SpinPolicy {
        SpinPolicy { spin, misses: 0, skip: 0, window_start: now, window_spent: Duration::ZERO }
    }

    /// How long the wait starting at `now` may poll; `None`: sleep at once.
    fn plan(&mut self, now: Instant) -> Option<Duration> {
        if self.spin.is_zero() {
            return None;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return None;
        }
        let window = Duration::from_millis(SPIN_WINDOW_MS);
        if now.saturating_duration_since(self.window_start) >= window {
            self.window_start = now;
            self.window_spent = Duration::ZERO;
        }
        let allowed = window * SPIN_SHARE_MAX_PERCENT / 100;
        (self.window_spent < allowed).then(|| self.spin.min(allowed - self.window_spent))
    }

    /// A poll that lasted `spent` caught data (`hit`) or not.
    fn record(&mut self, spent: Duration, hit: bool) {
        self.window_spent += spent;
        if hit {
            self.misses = 0;
            return;
        }
        self.misses += 1;
        if self.misses >= SPIN_MISSES_TOLERATED {
            let doublings = self.misses - SPIN_MISSES_TOLERATED + 1;
            self.skip = 1u32.checked_shl(doublings).unwrap_or(u32::MAX).min(SPIN_SKIP_MAX);
        }
    }
}

/// Bytes received from the master and not yet applied: `buf[start..end]`, parsed as chunks of
/// `[offset i64][size i32][size bytes]`.
struct Inbox {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes the chunk at `start` needs in all: its header's size once the header is in.
    need: usize,
}

impl Inbox {
    fn new() -> Inbox {
        Inbox { buf: vec![0; READ_BUFFER_BYTES], start: 0, end: 0, need: CHUNK_HEADER_BYTES }
    }

    /// Makes room for the chunk at `start` (moving unread bytes to the front, growing the buffer
    /// for a chunk larger than it), then reads what is there, waiting for it as `waiter` decides.
    fn fill(&mut self, stream: &mut TcpStream, waiter: &mut Waiter) -> std::io::Result<usize> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.start + self.need > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if self.need > self.buf.len() {
            self.buf.resize(self.need, 0);
        }
        let n = waiter.read(stream, &mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// The next complete chunk's offset and body size, or `None` until more bytes arrive.
    fn next_chunk(&mut self) -> Result<Option<(u64, usize)>> {
        let have = self.end - self.start;
        if have < CHUNK_HEADER_BYTES {
            return Ok(None);
        }
        let h = &self.buf[self.start..self.start + CHUNK_HEADER_BYTES];
        let offset = i64::from_be_bytes(h[..8].try_into().unwrap_or([0; 8]));
        let size = i32::from_be_bytes(h[8..].try_into().unwrap_or([0; 4]));
        if size < 0 || size as usize > CHUNK_BYTES_MAX || offset < 0 {
            return Err(Error::ChunkTooLarge { size: i64::from(size), limit: CHUNK_BYTES_MAX });
        }
        self.need = CHUNK_HEADER_BYTES + size as usize;
        Ok((have >= self.need).then_some((offset as u64, size as usize)))
    }

    /// The body of the chunk [`Inbox::next_chunk`] returned.
    fn body(&self, size: usize) -> &[u8] {
        &self.buf[self.start + CHUNK_HEADER_BYTES..self.start + CHUNK_HEADER_BYTES + size]
    }

    fn consume(&mut self, size: usize) {
        self.start += CHUNK_HEADER_BYTES + size;
        self.need = CHUNK_HEADER_BYTES;
    }
}

#[cfg(test)]
mod inbox_tests {
    use super::*;

    #[test]
    fn chunks_of_any_size_come_out_whole_however_the_bytes_arrive() {
        // Heartbeats, small chunks, one that ends exactly at the buffer's end, and ones larger
        // than the buffer (it grows), written in pieces that cut headers and bodies.
        let sizes = [0usize, 10, READ_BUFFER_BYTES - 3 * CHUNK_HEADER_BYTES - 10, 7, 300 * 1024, 0, 1 << 20, 1];
        let mut wire = Vec::new();
        let mut offset = 0u64;
        for (i, &size) in sizes.iter().enumerate() {
            wire.extend_from_slice(&(offset as i64).to_be_bytes());
            wire.extend_from_slice(&(size as i32).to_be_bytes());
            wire.extend((0..size).map(|j| (i + j) as u8));
            offset += size as u64;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut writer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut reader, _) = listener.accept().unwrap();
        let sending = std::thread::spawn(move || {
            for piece in wire.chunks(5_000) {
                writer.write_all(piece).unwrap();
            }
        });
        let (mut inbox, mut waiter) = (Inbox::new(), Waiter::new(0));
        let mut got = Vec::new();
        while got.len() < sizes.len() {
            assert!(inbox.fill(&mut reader, &mut waiter).unwrap() > 0, "the stream ended early");
            while let Some((offset, size)) = inbox.next_chunk().unwrap() {
                let i = got.len();
                assert!(inbox.body(size).iter().enumerate().all(|(j, &b)| b == (i + j) as u8), "chunk {i}");
                got.push((offset, size));
                inbox.consume(size);
            }
        }
        sending.join().unwrap();
        let offsets: Vec<u64> = sizes.iter().scan(0u64, |at, &s| Some(std::mem::replace(at, *at + s as u64))).collect();
        assert_eq!(got, offsets.into_iter().zip(sizes).collect::<Vec<_>>());
    }
}

#[cfg(test)]
mod spin_tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn polls_back_off_after_misses_and_resume_after_a_hit() {
        let t0 = Instant::now();
        let mut p = SpinPolicy::new(us(50), t0);
        // (outcome of the wait, whether it was planned to poll); all within one window's cap.
        let steps: &[(bool, bool)] = &[
            (false, true),
            (false, true),
            (false, true),
            (false, true), // 4th miss in a row: the next 2 waits sleep at once
            (false, false),
            (false, false),
            (false, true), // 5th miss: the next 4 sleep
            (false, false),
            (false, false),
            (false, false),
            (false, false),
            (true, true), // a hit ends the run of misses
            (false, true),
            (false, true),
            (false, true),
        ];
        for (i, &(hit, polls)) in steps.iter().enumerate() {
            let at = t0 + Duration::from_millis(SPIN_WINDOW_MS) * i as u32;
            let plan = p.plan(at);
            assert_eq!(plan.is_some(), polls, "step {i}: {p:?}");
            if plan.is_some() {
                p.record(us(50), hit);
            }
        }
    }

    #[test]
    fn polling_takes_at_most_a_quarter_of_each_window() {
        let t0 = Instant::now();
        let mut p = SpinPolicy::new(us(10_000), t0);
        let mut spent = Duration::ZERO;
        // Every poll hits (no back-off), each lasting its whole plan.
        for i in 0..100u32 {
            if let Some(d) = p.plan(t0 + us(500) * i) {
                p.record(d, true);
                spent += d;
            }
        }
        // 100 waits over 50 ms, one window: a quarter of 100 ms is allowed, and no more.
        assert_eq!(spent, Duration::from_millis(25));
        // The next window starts afresh.
        assert_eq!(p.plan(t0 + Duration::from_millis(SPIN_WINDOW_MS)), Some(us(10_000)));
        assert_eq!(SpinPolicy::new(Duration::ZERO, t0).plan(t0), None, "haSlaveSpinMicros=0 never polls");
    }
}
