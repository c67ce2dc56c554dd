//! The remoting client: one connection per address, opened on first use and again after it
//! closed; requests matched to responses by `opaque`; requests that the server sends us
//! (CHECK_TRANSACTION_STATE, NOTIFY_CONSUMER_IDS_CHANGED) handed to an optional callback.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, oneshot};

use super::command::{FLAG_ONEWAY, FLAG_RESPONSE};
use super::server::write_frames;
use super::{Error, FRAME_BYTES_MAX, FrameDecoder, RemotingCommand};

/// Called for each request a server sends us; the answer (if any, and if the request was not
/// oneway) is sent back.
pub type RequestCallback = Arc<dyn Fn(&str, RemotingCommand) -> Option<RemotingCommand> + Send + Sync>;

#[derive(Clone)]
pub struct ClientOptions {
    pub connect_timeout_ms: u64,
    pub frame_bytes_max: usize,
    pub outbound_frames_max: usize,
    pub on_request: Option<RequestCallback>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout_ms: 3000,
            frame_bytes_max: FRAME_BYTES_MAX,
            outbound_frames_max: 8192,
            on_request: None,
        }
    }
}

type Pending = Arc<Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>>;

struct ClientConn {
    tx: mpsc::Sender<(Bytes, Bytes)>,
    pending: Pending,
    closed: Arc<AtomicBool>,
    /// Stops the reader; with it gone and the connection out of the map, the writer ends too.
    shutdown: Arc<Notify>,
}

struct Inner {
    options: ClientOptions,
    conns: Mutex<HashMap<String, Arc<ClientConn>>>,
    next_opaque: AtomicI32,
}

/// A remoting client shared by many tasks; cheap to clone.
#[derive(Clone)]
pub struct Client(Arc<Inner>);

impl Default for Client {
    fn default() -> Self {
        Client::new(ClientOptions::default())
    }
}

impl Client {
    pub fn new(options: ClientOptions) -> Client {
        Client(Arc::new(Inner { options, conns: Mutex::new(HashMap::new()), next_opaque: AtomicI32::new(1) }))
    }

    /// Sends `request` to `addr` and waits up to `timeout` for its response.
    pub async fn invoke(
        &self,
        addr: &str,
        mut request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, Error> {
        let conn = self.connection(addr).await?;
        let opaque = self.0.next_opaque.fetch_add(1, Ordering::Relaxed);
        request.opaque = opaque;
        request.flag &= !(FLAG_RESPONSE | FLAG_ONEWAY);
        let (done, wait) = oneshot::channel();
        lock(&conn.pending).insert(opaque, done);
        let head = request.encode_frame_head();
        if conn.tx.send((head, request.body)).await.is_err() {
            lock(&conn.pending).remove(&opaque);
            return Err(Error::ConnectionClosed { addr: addr.to_owned() });
        }
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => Err(Error::ConnectionClosed { addr: addr.to_owned() }),
            Err(_) => {
                lock(&conn.pending).remove(&opaque);
                Err(Error::Timeout { addr: addr.to_owned(), timeout_ms: timeout.as_millis() as u64 })
            }
        }
    }

    /// Sends `request` marked oneway; returns once it is queued for writing.
    pub async fn invoke_oneway(&self, addr: &str, mut request: RemotingCommand) -> Result<(), Error> {
        let conn = self.connection(addr).await?;
        request.opaque = self.0.next_opaque.fetch_add(1, Ordering::Relaxed);
        request.flag = (request.flag & !FLAG_RESPONSE) | FLAG_ONEWAY;
        let head = request.encode_frame_head();
        conn.tx.send((head, request.body)).await.map_err(|_| Error::ConnectionClosed { addr: addr.to_owned() })
    }

    /// Closes the connection to `addr`, if one is open (requests waiting on it fail).
    pub fn close(&self, addr: &str) {
        if let Some(c) = lock(&self.0.conns).remove(addr) {
            c.closed.store(true, Ordering::Release);
            c.shutdown.notify_one();
        }
    }

    async fn connection(&self, addr: &str) -> Result<Arc<ClientConn>, Error> {
        if let Some(c) = lock(&self.0.conns).get(addr)
            && !c.closed.load(Ordering::Acquire)
        {
            return Ok(c.clone());
        }
        let connect = TcpStream::connect(addr);
        let stream = match tokio::time::timeout(Duration::from_millis(self.0.options.connect_timeout_ms), connect).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(Error::Connect { addr: addr.to_owned(), source }),
            Err(_) => {
                let source = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
                return Err(Error::Connect { addr: addr.to_owned(), source });
            }
        };
        let _ = stream.set_nodelay(true);
        let mut conns = lock(&self.0.conns);
        if let Some(c) = conns.get(addr)
            && !c.closed.load(Ordering::Acquire)
        {
            // Another task connected first; use its connection and drop ours.
            return Ok(c.clone());
        }
        let (reader, writer) = stream.into_split();
        let (tx, rx) = mpsc::channel(self.0.options.outbound_frames_max);
        let conn = Arc::new(ClientConn {
            tx: tx.clone(),
            pending: Arc::new(Mutex::new(HashMap::new())),
            closed: Arc::new(AtomicBool::new(false)),
            shutdown: Arc::new(Notify::new()),
        });
        conns.insert(addr.to_owned(), conn.clone());
        drop(conns);
        tokio::spawn(write_frames(writer, rx));
        let reader_state = ReaderState {
            addr: addr.to_owned(),
            pending: conn.pending.clone(),
            closed: conn.closed.clone(),
            shutdown: conn.shutdown.clone(),
            tx,
            options: self.0.options.clone(),
            client: Arc::downgrade(&self.0),
        };
        tokio::spawn(read_responses(reader, reader_state));
        Ok(conn)
    }
}

/// What a connection's reader task owns besides the socket.
struct ReaderState {
    addr: String,
    pending: Pending,
    closed: Arc<AtomicBool>,
    shutdown: Arc<Notify>,
    tx: mpsc::Sender<(Bytes, Bytes)>,
    options: ClientOptions,
    client: std::sync::Weak<Inner>,
}

async fn read_responses(mut reader: tokio::net::tcp::OwnedReadHalf, state: ReaderState) {
    let ReaderState { addr, pending, closed, shutdown, tx, options, client } = state;
    let decoder = FrameDecoder { frame_bytes_max: options.frame_bytes_max };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'read: loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(cmd)) if cmd.is_response() => {
                    if let Some(done) = lock(&pending).remove(&cmd.opaque) {
                        let _ = done.send(cmd);
                    }
                }
                Ok(Some(cmd)) => {
                    let oneway = cmd.is_oneway();
                    let opaque = cmd.opaque;
                    let serialize_type = cmd.serialize_type;
                    let answer = options.on_request.as_ref().and_then(|f| f(&addr, cmd));
                    if let Some(mut answer) = answer
                        && !oneway
                    {
                        answer.opaque = opaque;
                        answer.flag |= FLAG_RESPONSE;
                        answer.serialize_type = serialize_type;
                        let head = answer.encode_frame_head();
                        let _ = tx.try_send((head, answer.body));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "closing client connection after a bad frame");
                    break 'read;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        let read = tokio::select! {
            r = reader.read_buf(&mut buf) => r,
            _ = shutdown.notified() => break,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    closed.store(true, Ordering::Release);
    // Waiters see their sender dropped: "connection closed".
    lock(&pending).clear();
    if let Some(client) = client.upgrade() {
        let mut conns = lock(&client.conns);
        if conns.get(&addr).is_some_and(|c| Arc::ptr_eq(&c.closed, &closed)) {
            conns.remove(&addr);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
