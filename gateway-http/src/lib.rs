//! The HTTP door: publish and consume with curl, admin, plugin upload, health and `/metrics`, on
//! hyper 1.x (HTTP/1.1 with keep-alive).
//!
//! The gateway calls the broker only through [`broker::messaging::Messaging`]: inside `mqbroker`
//! that is the in-process [`broker::messaging::local::LocalMessaging`]; a gateway in front of a
//! cluster would get another implementation of the same trait. The routes and their shapes are
//! in `routes.rs`, the served contract in `openapi.rs`, the one mapping from errors to HTTP
//! statuses and `application/problem+json` in `error.rs`. The web console's files are served at
//! `/dashboard/` (`dashboard.rs`); its extra routes are in `console.rs`, its login and the rules
//! for who may write in `auth.rs`, the AMQP door's read-only view (`/v1/amqp/...`) in `amqp.rs`.
//!
//! Limits (all checked before the work they guard):
//!
//! | limit | value | when exceeded |
//! |---|---|---|
//! | connections | [`Limits::connections_max`], 4,096 | the new connection is closed |
//! | requests being served at once | [`Limits::requests_in_flight_max`], 1,024 | 429 with `Retry-After` |
//! | long polls and streams at once | [`Limits::long_polls_max`], 1,024 | 429 with `Retry-After` |
//! | request head (line and headers) | [`Limits::header_bytes_max`], 64 KiB | 431 (hyper) |
//! | request body | `maxMessageSize` × 4/3 + 64 KiB (base64 and JSON overhead) | 413 |
//! | time to send the body | [`Limits::body_read_timeout_ms`], 10 s | 408 |
//! | time to send the head | [`Limits::header_read_timeout_ms`], 10 s | connection closed |
//! | `wait_ms` of a long poll | 30,000 | clamped |

mod amqp;
pub mod auth;
mod body;
mod console;
mod dashboard;
pub mod error;
pub mod openapi;
mod plugins;
mod routes;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use broker::messaging::Messaging;
use broker::messaging::console::AmqpConsole;
use broker::metrics::Metrics;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

pub use auth::Login;
pub use body::Body;
pub use routes::PluginAdmin;

/// Bytes added to the largest message for JSON and base64 overhead in a request body.
pub const BODY_OVERHEAD_BYTES: usize = 64 * 1024;

/// hyper's smallest allowed read buffer.
const HYPER_BUF_BYTES_MIN: usize = 8192;

/// The gateway's limits; [`Limits::default`] holds the documented values.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub connections_max: usize,
    pub requests_in_flight_max: usize,
    pub long_polls_max: usize,
    pub header_bytes_max: usize,
    pub header_read_timeout_ms: u64,
    pub body_read_timeout_ms: u64,
    /// Seconds a client is told to wait in `Retry-After` when the gateway is busy.
    pub retry_after_s: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connections_max: 4096,
            requests_in_flight_max: 1024,
            long_polls_max: 1024,
            header_bytes_max: 64 * 1024,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 10_000,
            retry_after_s: 1,
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("binding {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
}

/// Everything a request handler needs.
pub(crate) struct Shared<M: Messaging> {
    pub messaging: Arc<M>,
    pub metrics: Arc<Metrics>,
    pub plugins: Option<Arc<dyn PluginAdmin>>,
    /// The AMQP door's view; `None` when the door is off.
    pub amqp: Option<Arc<dyn AmqpConsole>>,
    pub limits: Limits,
    pub in_flight: Semaphore,
    pub long_polls: Semaphore,
    /// Largest request body, bytes.
    pub body_bytes_max: usize,
    /// The console's login settings.
    pub login: Login,
    pub sessions: auth::Sessions,
}

/// The peer address of a request (a request extension set by the accept loop).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub SocketAddr);

/// A running HTTP door; dropping it (or [`HttpServer::shutdown`]) stops accepting.
pub struct HttpServer {
    local_addr: SocketAddr,
    stop: Arc<Notify>,
}

impl HttpServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn shutdown(&self) {
        self.stop.notify_one();
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds `addr` and serves the HTTP door on the current tokio runtime, with the console's login
/// as `dashboardLogin=auto` and no user (on unless `addr` is loopback; browser writes refused).
///
/// # Errors
///
/// [`StartError::Bind`] when the address cannot be bound.
pub async fn serve<M: Messaging>(
    addr: &str,
    messaging: Arc<M>,
    metrics: Arc<Metrics>,
    plugins: Option<Arc<dyn PluginAdmin>>,
    limits: Limits,
) -> Result<HttpServer, StartError> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let login = Login::resolve(broker::config::DashboardLogin::Auto, host, None, None).unwrap_or_else(|_| Login::off());
    serve_with_login(addr, messaging, metrics, plugins, None, limits, login).await
}

/// [`serve`] with the console's login settings and, when the AMQP door runs, its view (served
/// under `/v1/amqp/...`).
///
/// # Errors
///
/// [`StartError::Bind`] when the address cannot be bound.
pub async fn serve_with_login<M: Messaging>(
    addr: &str,
    messaging: Arc<M>,
    metrics: Arc<Metrics>,
    plugins: Option<Arc<dyn PluginAdmin>>,
    amqp: Option<Arc<dyn AmqpConsole>>,
    limits: Limits,
    login: Login,
) -> Result<HttpServer, StartError> {
    let body_bytes_max = messaging.message_bytes_max().saturating_mul(4) / 3 + BODY_OVERHEAD_BYTES;
    let shared = Arc::new(Shared {
        messaging,
        metrics,
        plugins,
        amqp,
        limits,
        in_flight: Semaphore::new(limits.requests_in_flight_max),
        long_polls: Semaphore::new(limits.long_polls_max),
        body_bytes_max,
        login,
        sessions: auth::Sessions::default(),
    });
    let gauge = shared.metrics.connections.with_label_values(&["http"]);
    let handler = move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(routes::handle(&shared, req).await) }
    };
    accept_loop(addr, limits, Some(gauge), handler).await
}

/// Serves only `GET /metrics` (and `/livez`): the name server's small scrape port.
///
/// # Errors
///
/// [`StartError::Bind`] when the address cannot be bound.
pub async fn serve_metrics(addr: &str, metrics: Arc<Metrics>) -> Result<HttpServer, StartError> {
    let limits = Limits::default();
    let handler = move |req: hyper::Request<hyper::body::Incoming>| {
        let metrics = metrics.clone();
        async move { Ok::<_, Infallible>(routes::metrics_only(&metrics, &req)) }
    };
    accept_loop(addr, limits, None, handler).await
}

async fn accept_loop<F, Fut>(
    addr: &str,
    limits: Limits,
    gauge: Option<prometheus::IntGauge>,
    handler: F,
) -> Result<HttpServer, StartError>
where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<hyper::Response<Body>, Infallible>> + Send + 'static,
{
    let listener =
        TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr: addr.to_owned(), source })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind { addr: addr.to_owned(), source })?;
    let stop = Arc::new(Notify::new());
    broker::remoting::accept::spawn_accept_loop(
        listener,
        stop.clone(),
        limits.connections_max,
        "HTTP",
        move |stream, peer| {
            let handler = handler.clone();
            let gauge = gauge.clone();
            async move {
                if let Some(g) = &gauge {
                    g.inc();
                }
                let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(Peer(peer));
                    handler(req)
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
                    .max_buf_size(limits.header_bytes_max.max(HYPER_BUF_BYTES_MIN))
                    .max_header_size(limits.header_bytes_max)
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
                if let Some(g) = &gauge {
                    g.dec();
                }
            }
        },
    );
    Ok(HttpServer { local_addr, stop })
}
