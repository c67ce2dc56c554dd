//! The name server: a route table of brokers and topics that brokers register into and clients
//! ask for routes, behaving as Apache RocketMQ 4.9.4's `namesrv` on the wire.
//!
//! * [`config`]: `namesrv.properties` ([`NamesrvConfig`]).
//! * [`route`]: the route table (brokers, clusters, queue data, liveness).
//! * [`kv`]: the namespaced KV settings persisted to `kvConfig.json`.
//! * [`processor`]: the request processor, a [`crate::remoting::Handler`].
//!
//! [`start`] binds a [`crate::remoting::Server`] and runs the expiry scan; the `mqnamesrv`
//! program and a single-process deployment both use it.
//!
//! # Requests
//!
//! | code | request | answer |
//! |---|---|---|
//! | 100 / 101 / 102 | PUT / GET / DELETE_KV_CONFIG | GET: header `value`, or 22 when absent; PUT and DELETE persist |
//! | 103 | REGISTER_BROKER | header `haServerAddr`, `masterAddr` (slave with a live master); body: order-topic KVTable |
//! | 104 | UNREGISTER_BROKER | — |
//! | 105 | GET_ROUTEINFO_BY_TOPIC | TopicRouteData, standard JSON always; 17 when unknown or no broker |
//! | 106 | GET_BROKER_CLUSTER_INFO | ClusterInfo (standard JSON) |
//! | 205 / 327 | WIPE / ADD_WRITE_PERM_OF_BROKER | header `wipeTopicCount` / `addTopicCount` |
//! | 206 | GET_ALL_TOPIC_LIST_FROM_NAMESERVER | TopicList |
//! | 216 | DELETE_TOPIC_IN_NAMESRV | — |
//! | 219 | GET_KVLIST_BY_NAMESPACE | KVTable, or 22 |
//! | 224 | GET_TOPICS_BY_CLUSTER | TopicList |
//! | 304 | GET_SYSTEM_TOPIC_LIST_FROM_NS | TopicList of cluster and broker names, with `brokerAddr` |
//! | 311 / 312 / 313 | GET_UNIT_TOPIC_LIST, GET_HAS_UNIT_SUB(_UNUNIT)_TOPIC_LIST | TopicList |
//! | 318 | UPDATE_NAMESRV_CONFIG | applies [`processor::RUNTIME_KEYS`]; 16 for other known keys |
//! | 319 | GET_NAMESRV_CONFIG | `key=value` lines |
//! | 322 | QUERY_DATA_VERSION | header `changed`; body: the registered DataVersion |
//! | other | | 3 REQUEST_CODE_NOT_SUPPORTED with a remark (Java sends nothing) |
//!
//! A header field Java marks `@CFNotNull` that is missing or malformed is answered 1
//! SYSTEM_ERROR naming the field, as Java's header decoder does.
//!
//! # Liveness
//!
//! A broker address expires `brokerExpiredMillis` (120 s) after its last registration; the scan
//! runs every `scanNotActiveBrokerInterval` (10 s), the first after 5 s (or one interval if
//! shorter). The connection a broker registered over closing removes it at once.
//!
//! # Limits
//!
//! | limit | value | where |
//! |---|---|---|
//! | request frame | 16 MiB | [`crate::remoting::FRAME_BYTES_MAX`] |
//! | `kvConfig.json` read at start | 64 MiB | [`kv::KV_CONFIG_FILE_BYTES_MAX`] |
//! | `namesrv.properties` | 1 MiB | [`crate::config::PROPERTIES_FILE_BYTES_MAX`] |
//! | idle connection | 120 s | `serverChannelMaxIdleTimeSeconds` |
//!
//! # Deviations from RocketMQ 4.9.4
//!
//! * Compressed REGISTER_BROKER bodies (`compressedRegister=true`) are refused with a remark.
//! * Routes and cluster info are always standard JSON with quoted keys; lists are sorted by name.
//! * Non-ASCII text in JSON answers is UTF-8, not `\uXXXX` escapes.
//! * UPDATE_NAMESRV_CONFIG changes settings in memory only.

pub mod config;
pub mod kv;
pub mod processor;
pub mod route;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::remoting::{Server, ServerLimits};

pub use config::{LoadedConfig, NamesrvConfig};
pub use kv::KvConfig;
pub use processor::Processor;
pub use route::RouteTable;

/// The first expiry scan runs after this long, or after one interval if that is shorter.
const FIRST_SCAN_DELAY_MS: u64 = 5_000;

/// What can keep the name server from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a KV config file: {reason}")]
    KvCorrupt { path: PathBuf, reason: String },
}

/// The time in ms since the epoch, as the table sees it.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Wall-clock ms.
pub fn system_clock() -> Clock {
    Arc::new(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64))
}

/// A running name server: its listener and expiry scan. Dropping it stops both (connections
/// already open are served until they close).
pub struct NameServer {
    server: Server,
    processor: Arc<Processor>,
    scanner: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for NameServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameServer").field("addr", &self.server.local_addr()).finish_non_exhaustive()
    }
}

/// Loads the KV settings, binds `bindAddress:listenPort` and starts the expiry scan, on the
/// current tokio runtime.
///
/// # Errors
///
/// [`Error::Bind`] if the address cannot be bound; [`Error::Io`] or [`Error::KvCorrupt`] if
/// `kvConfigPath` cannot be read.
pub async fn start(config: NamesrvConfig) -> Result<NameServer, Error> {
    start_with_clock(config, system_clock()).await
}

/// [`start`] with another clock for liveness.
///
/// # Errors
///
/// As [`start`].
pub async fn start_with_clock(config: NamesrvConfig, clock: Clock) -> Result<NameServer, Error> {
    let addr = config.listen_addr();
    let limits = ServerLimits {
        idle_timeout_ms: config.server_channel_max_idle_time_s.saturating_mul(1000),
        ..ServerLimits::default()
    };
    let processor = Arc::new(Processor::with_clock(config, clock)?);
    let server = Server::bind(&addr, limits, processor.clone()).await.map_err(|source| Error::Bind { addr, source })?;
    let scanner = tokio::spawn(scan_loop(Arc::downgrade(&processor)));
    Ok(NameServer { server, processor, scanner })
}

impl NameServer {
    /// The address the listener is bound to (the real port when `listenPort` was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn processor(&self) -> &Arc<Processor> {
        &self.processor
    }

    /// Stops accepting connections and scanning.
    pub fn shutdown(&self) {
        self.server.shutdown();
        self.scanner.abort();
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn scan_loop(processor: Weak<Processor>) {
    let mut first = true;
    loop {
        let Some(interval_ms) = processor.upgrade().map(|p| p.config().scan_not_active_broker_interval_ms) else {
            return;
        };
        let delay_ms = if first { interval_ms.min(FIRST_SCAN_DELAY_MS) } else { interval_ms };
        first = false;
        tokio::time::sleep(Duration::from_millis(delay_ms.max(1))).await;
        let Some(processor) = processor.upgrade() else { return };
        let removed = processor.scan_not_active_brokers();
        if !removed.is_empty() {
            tracing::info!(count = removed.len(), "removed expired brokers");
        }
    }
}
