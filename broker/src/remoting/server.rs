//! The remoting server: accepts up to a limit of connections, reads frames on one task per
//! connection, runs each request on its own task (a long-polling pull must not hold up the sends
//! behind it), and writes responses through one writer task that batches them into few syscalls.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};

use super::command::FLAG_RESPONSE;
use super::{Error, FRAME_BYTES_MAX, FrameDecoder, RemotingCommand};

/// Bounds on what one server accepts.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections open at once; the next one is closed right after accept.
    pub connections_max: usize,
    /// A connection that sends nothing for this long is closed (Java: `serverChannelMaxIdleTimeSeconds`).
    pub idle_timeout_ms: u64,
    pub frame_bytes_max: usize,
    /// Encoded frames waiting for one connection's writer before senders wait.
    pub outbound_frames_max: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            connections_max: 65_536,
            idle_timeout_ms: 120_000,
            frame_bytes_max: FRAME_BYTES_MAX,
            outbound_frames_max: 4096,
        }
    }
}

/// What a server runs for each request. `None` means no response (oneway requests get none in
/// any case). The server copies the request's `opaque` and encoding into the response.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        conn: Connection,
        request: RemotingCommand,
    ) -> impl Future<Output = Option<RemotingCommand>> + Send;

    /// Called once when a connection ends, for whatever reason.
    fn connection_closed(&self, _conn: &Connection) {}
}

type Outgoing = (Bytes, Bytes);

/// One accepted connection; cheap to clone.
#[derive(Clone)]
pub struct Connection(Arc<ConnInner>);

struct ConnInner {
    id: u64,
    peer: SocketAddr,
    tx: mpsc::Sender<Outgoing>,
    next_opaque: AtomicI32,
    closed: AtomicBool,
    close: Notify,
}

impl Connection {
    /// A process-unique number for this connection.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    pub fn peer(&self) -> SocketAddr {
        self.0.peer
    }

    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }

    /// Sends a server-to-client oneway request (CHECK_TRANSACTION_STATE,
    /// NOTIFY_CONSUMER_IDS_CHANGED). Dropped, with `false`, if the connection is closed or its
    /// outbound queue is full.
    pub fn send_oneway(&self, mut request: RemotingCommand) -> bool {
        request.opaque = self.0.next_opaque.fetch_add(1, Ordering::Relaxed);
        request.mark_oneway();
        let head = request.encode_frame_head();
        !self.is_closed() && self.0.tx.try_send((head, request.body)).is_ok()
    }

    /// Queues a response frame, waiting if the outbound queue is full.
    async fn send(&self, response: RemotingCommand) {
        let head = response.encode_frame_head();
        let _ = self.0.tx.send((head, response.body)).await;
    }

    /// Asks the connection to close (the reader stops, the writer drains).
    pub fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.close.notify_waiters();
        self.0.close.notify_one();
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection#{}({})", self.0.id, self.0.peer)
    }
}

/// A listening server; dropping it (or [`Server::shutdown`]) stops accepting.
pub struct Server {
    local_addr: SocketAddr,
    stop: Arc<Notify>,
    open: Arc<AtomicU64>,
}

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

impl Server {
    /// Binds `addr` and serves in the background on the current tokio runtime.
    pub async fn bind<H: Handler>(addr: &str, limits: ServerLimits, handler: Arc<H>) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let stop = Arc::new(Notify::new());
        let open = Arc::new(AtomicU64::new(0));
        let open_count = open.clone();
        super::accept::spawn_accept_loop(
            listener,
            stop.clone(),
            limits.connections_max,
            "remoting",
            move |stream, peer| {
                let handler = handler.clone();
                let open = open_count.clone();
                open.fetch_add(1, Ordering::Relaxed);
                async move {
                    serve_connection(stream, peer, limits, handler).await;
                    open.fetch_sub(1, Ordering::Relaxed);
                }
            },
        );
        Ok(Server { local_addr, stop, open })
    }

    /// A live count of the open client connections (for the connections gauge).
    pub fn open_connections(&self) -> Arc<AtomicU64> {
        self.open.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting new connections (open ones keep running until they close).
    pub fn shutdown(&self) {
        self.stop.notify_one();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn serve_connection<H: Handler>(stream: TcpStream, peer: SocketAddr, limits: ServerLimits, handler: Arc<H>) {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::channel(limits.outbound_frames_max);
    let conn = Connection(Arc::new(ConnInner {
        id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
        peer,
        tx,
        next_opaque: AtomicI32::new(0),
        closed: AtomicBool::new(false),
        close: Notify::new(),
    }));
    let writer_task = tokio::spawn(write_frames(writer, rx));
    let decoder = FrameDecoder { frame_bytes_max: limits.frame_bytes_max };
    let idle = Duration::from_millis(limits.idle_timeout_ms);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'read: loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(cmd)) => dispatch(&conn, &handler, cmd),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "closing connection after a bad frame");
                    break 'read;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        let read = tokio::select! {
            r = tokio::time::timeout(idle, reader.read_buf(&mut buf)) => r,
            _ = conn.0.close.notified() => break,
        };
        match read {
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "read failed");
                break;
            }
            Err(_) => {
                tracing::info!(%peer, idle_ms = limits.idle_timeout_ms, "closing idle connection");
                break;
            }
        }
    }
    conn.0.closed.store(true, Ordering::Release);
    handler.connection_closed(&conn);
    // The writer ends when every sender (this one and those held by running handlers) is gone.
    drop(conn);
    let _ = writer_task.await;
}

fn dispatch<H: Handler>(conn: &Connection, handler: &Arc<H>, request: RemotingCommand) {
    if request.is_response() {
        // Replies to our oneway server-to-client requests are not expected; ignore strays.
        return;
    }
    let conn = conn.clone();
    let handler = handler.clone();
    tokio::spawn(async move {
        let opaque = request.opaque;
        let oneway = request.is_oneway();
        let serialize_type = request.serialize_type;
        let response = handler.handle(conn.clone(), request).await;
        if let Some(mut response) = response
            && !oneway
        {
            response.opaque = opaque;
            response.flag |= FLAG_RESPONSE;
            response.serialize_type = serialize_type;
            conn.send(response).await;
        }
    });
}

/// Writes queued frames, flushing only when the queue is momentarily empty.
pub(crate) async fn write_frames<W: AsyncWrite + Unpin>(writer: W, mut rx: mpsc::Receiver<Outgoing>) {
    let mut out = BufWriter::with_capacity(64 * 1024, writer);
    while let Some((head, body)) = rx.recv().await {
        // Let the other tasks that are ready run first: handlers woken together (a read of
        // several requests, a slave acknowledgement covering several sends) queue their
        // responses, and they leave in one write instead of one each.
        tokio::task::yield_now().await;
        if write_one(&mut out, &head, &body).await.is_err() {
            return;
        }
        while let Ok((head, body)) = rx.try_recv() {
            if write_one(&mut out, &head, &body).await.is_err() {
                return;
            }
        }
        if out.flush().await.is_err() {
            return;
        }
    }
    let _ = out.shutdown().await;
}

async fn write_one<W: AsyncWrite + Unpin>(out: &mut BufWriter<W>, head: &[u8], body: &[u8]) -> Result<(), Error> {
    out.write_all(head).await?;
    if !body.is_empty() {
        out.write_all(body).await?;
    }
    Ok(())
}
