//! The broker proper: the request processors behind the native door, and the background work
//! around them (name server registration, offset persistence, client expiry).
//!
//! [`Broker::start`] opens the store and the metadata files, binds `listenPort` and the VIP port
//! (`listenPort - 2`, every code but PULL_MESSAGE), registers with every name server at once and
//! then every `registerNameServerPeriod`, and serves until [`Broker::shutdown`].
//!
//! | file | requests |
//! |---|---|
//! | `send.rs` | SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE |
//! | `pull.rs` | PULL_MESSAGE (long polling) |
//! | `clients.rs` | HEART_BEAT, UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP, CHECK_CLIENT_CONFIG |
//! | `offsets.rs` | QUERY/UPDATE_CONSUMER_OFFSET, GET_MAX/MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP, GET_EARLIEST_MSG_STORETIME |
//! | `query.rs` | QUERY_MESSAGE, VIEW_MESSAGE_BY_ID |
//! | `locks.rs` | LOCK_BATCH_MQ, UNLOCK_BATCH_MQ |
//! | `retry.rs` | CONSUMER_SEND_MSG_BACK |
//! | `delay.rs` | the schedule service (delay levels) |
//! | `transaction.rs` | END_TRANSACTION and the check-back service |
//! | `admin.rs` | the admin codes of mqadmin, the dashboard and the exporter |
//! | `plugins.rs` | the plugin admin codes (deploy, list, describe, bind, unbind, remove, logs) and the plugin hooks |
//! | `pop.rs` | POP_MESSAGE, ACK_MESSAGE, CHANGE_MESSAGE_INVISIBLETIME (RocketMQ 5 pop consumption) |
//! | `slave_sync.rs` | a slave copying topics, offsets, delay offsets and groups from its master |

pub mod admin;
pub mod clients;
pub mod delay;
pub mod error;
pub mod locks;
pub mod offsets;
pub mod plugins;
pub mod pop;
pub mod pull;
pub mod query;
pub mod retry;
pub mod send;
pub mod slave_sync;
#[cfg(test)]
mod tests_delay_tx;
pub mod topics;
pub mod transaction;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::{BrokerConfig, BrokerRole};
use crate::ha;
use crate::protocol::body::{self, RegisterBrokerBody};
use crate::protocol::{request, response};
use crate::remoting::{self, Connection, Handler, RemotingCommand, Server, ServerLimits};
use crate::store::MessageStore;
use crate::store::metadata::MetadataFiles;

pub use error::{Error, Result};

pub type Role = BrokerRole;

/// Counters for GET_BROKER_RUNTIME_INFO and metrics.
#[derive(Default)]
pub struct Stats {
    pub put_messages_total: AtomicU64,
    pub get_messages_total: AtomicU64,
}

impl Stats {
    pub fn record_put(&self, n: u64) {
        self.put_messages_total.fetch_add(n, Ordering::Relaxed);
    }
    pub fn record_get(&self, n: u64) {
        self.get_messages_total.fetch_add(n, Ordering::Relaxed);
    }
}

/// Everything the processors share.
pub struct BrokerInner {
    pub config: BrokerConfig,
    pub store: Arc<MessageStore>,
    /// Replication: the master side (SYNC/ASYNC_MASTER) or the slave side (SLAVE).
    pub ha_master: Option<Arc<ha::Master>>,
    pub ha_slave: Option<Arc<ha::Slave>>,
    /// The master's `ip:port` as the name server announced it (slaves only): where the metadata
    /// sync pulls from.
    pub master_addr: Mutex<Option<String>>,
    pub meta: Arc<MetadataFiles>,
    pub topics: topics::Topics,
    pub groups: clients::Groups,
    pub clients: clients::Clients,
    pub pulls: Arc<pull::PullWaiters>,
    pub locks: locks::QueueLocks,
    pub transactions: transaction::Transactions,
    /// Pop consumption: leases per group and queue (`pop.rs`).
    pub pops: pop::PopState,
    /// The process's metrics (an injected registry).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Wasm plugins: deployments, bindings and the hooks of pull, send and the check loop (shared
    /// with the HTTP door's plugin admin: one registry per broker).
    pub plugins: Arc<crate::plugin::Plugins>,
    /// `brokerIP1:listenPort`: the address clients use and the store host in every record.
    pub store_host: SocketAddr,
    /// `brokerIP2:haPort`.
    pub ha_addr: String,
    /// The actually bound port of the VIP server (normally `listenPort - 2`).
    pub vip_addr: Mutex<Option<SocketAddr>>,
    /// `brokerPermission`, changed at run time by WIPE/ADD_WRITE_PERM.
    permission: AtomicU32,
    pub client: remoting::Client,
    pub stats: Stats,
    pub started: Instant,
    pub started_ms: i64,
    offsets_dirty: AtomicBool,
    stopping: AtomicBool,
    /// Some name server accepted a registration (for readiness).
    registered: AtomicBool,
}

pub(crate) fn ok() -> RemotingCommand {
    RemotingCommand::response(response::SUCCESS)
}

impl BrokerInner {
    pub fn role(&self) -> Role {
        self.config.broker_role
    }

    pub fn permission(&self) -> u32 {
        self.permission.load(Ordering::Relaxed)
    }

    pub fn set_permission(&self, perm: u32) {
        self.permission.store(perm, Ordering::Relaxed);
        self.topics.changed.notify_one();
    }

    /// `ip:port` of this broker as registered with the name servers.
    pub fn broker_addr(&self) -> String {
        self.store_host.to_string()
    }

    /// Records a consumer group's offset on a queue (persisted within 5 s and at shutdown).
    pub fn commit_offset(&self, group: &str, topic: &str, queue_id: u32, offset: i64) {
        self.meta.consumer_offsets().commit(topic, group, queue_id, offset);
        self.offsets_dirty.store(true, Ordering::Release);
    }

    /// Persists the consumer offsets now, changed or not.
    pub fn persist_offsets_now(&self) {
        self.offsets_dirty.store(true, Ordering::Release);
        self.persist_offsets();
    }

    pub fn persist_offsets(&self) {
        if self.offsets_dirty.swap(false, Ordering::AcqRel)
            && let Err(e) = self.meta.persist_consumer_offsets()
        {
            self.offsets_dirty.store(true, Ordering::Release);
            tracing::error!(error = %e, "could not persist consumerOffset.json");
        }
    }

    /// Sends REGISTER_BROKER to every name server; returns how many accepted.
    pub async fn register_with_name_servers(&self) -> usize {
        let wrapper = self.topics.register_snapshot(self.permission());
        let body = body::to_json(&RegisterBrokerBody {
            filter_server_list: Vec::new(),
            topic_config_serialize_wrapper: wrapper,
        });
        let crc = crc32fast::hash(&body) & 0x7FFF_FFFF;
        let mut accepted = 0;
        for ns in &self.config.namesrv_addrs {
            let req = RemotingCommand::request(request::REGISTER_BROKER)
                .with_field("brokerAddr", self.broker_addr())
                .with_field("brokerId", self.config.broker_id)
                .with_field("brokerName", &self.config.broker_name)
                .with_field("clusterName", &self.config.broker_cluster_name)
                .with_field("haServerAddr", &self.ha_addr)
                .with_field("compressed", "false")
                .with_field("bodyCrc32", crc)
                .with_body(body.clone());
            let timeout = Duration::from_millis(self.config.register_broker_timeout_ms.max(1000));
            match self.client.invoke(ns, req, timeout).await {
                Ok(r) if r.code == response::SUCCESS => {
                    accepted += 1;
                    self.registered.store(true, Ordering::Release);
                    self.learn_master(&r);
                }
                Ok(r) => {
                    tracing::warn!(namesrv = %ns, code = r.code, remark = ?r.remark, "name server refused the registration")
                }
                Err(e) => tracing::warn!(namesrv = %ns, error = %e, "could not register with the name server"),
            }
        }
        accepted
    }

    /// A slave learns its master's addresses from the registration answer (`masterAddr`,
    /// `haServerAddr`), as 4.9.4 slaves do.
    fn learn_master(&self, answer: &RemotingCommand) {
        if self.role() != Role::Slave {
            return;
        }
        let master = answer.field("masterAddr").filter(|a| !a.is_empty()).map(str::to_owned);
        let ha = answer.field("haServerAddr").filter(|a| !a.is_empty()).map(str::to_owned);
        if let Some(slave) = &self.ha_slave
            && ha.is_some()
        {
            slave.set_master_ha_addr(ha);
        }
        if master.is_some() {
            *self.master_addr.lock().unwrap_or_else(|p| p.into_inner()) = master;
        }
    }

    /// Registers now if the topic table moved past `generation`: 4.9.4 registers before it answers
    /// the request that created a topic, so the client's next route lookup finds it.
    pub async fn register_if_topics_changed(&self, generation: u64) {
        if self.topics.generation() != generation {
            self.register_with_name_servers().await;
        }
    }

    async fn unregister_from_name_servers(&self) {
        for ns in &self.config.namesrv_addrs {
            let req = RemotingCommand::request(request::UNREGISTER_BROKER)
                .with_field("brokerAddr", self.broker_addr())
                .with_field("brokerId", self.config.broker_id)
                .with_field("brokerName", &self.config.broker_name)
                .with_field("clusterName", &self.config.broker_cluster_name);
            if let Err(e) = self.client.invoke(ns, req, Duration::from_secs(3)).await {
                tracing::warn!(namesrv = %ns, error = %e, "could not unregister from the name server");
            }
        }
    }

    /// Whether some name server ever accepted this broker's registration.
    pub fn registered_once(&self) -> bool {
        self.registered.load(Ordering::Acquire)
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

/// The IPv4 address to advertise when `brokerIP1` is not set: the one the default route uses,
/// else loopback.
pub fn default_ip() -> IpAddr {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| {
        s.connect("192.0.2.1:9")?;
        s.local_addr()
    });
    match probe {
        Ok(a) if !a.ip().is_unspecified() => a.ip(),
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

/// The request handler for one listening port.
struct NativeDoor {
    broker: Arc<BrokerInner>,
    /// The VIP port serves everything but PULL_MESSAGE.
    vip: bool,
}

impl Handler for NativeDoor {
    async fn handle(&self, conn: Connection, req: RemotingCommand) -> Option<RemotingCommand> {
        let b = &self.broker;
        // Whatever created a topic (a send, a heartbeat's retry topic, a send-back's DLQ, an admin
        // request) registers before it answers, so the client's next route lookup finds the topic.
        let generation = b.topics.generation();
        let began = Instant::now();
        let result = match req.code {
            request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => {
                send::send_message(b, &conn, &req).await
            }
            request::PULL_MESSAGE if !self.vip => pull::pull_message(b, &req).await,
            request::HEART_BEAT => clients::heartbeat(b, &conn, &req),
            request::UNREGISTER_CLIENT => clients::unregister_client(b, &conn, &req),
            request::GET_CONSUMER_LIST_BY_GROUP => clients::consumer_list(b, &req),
            request::CHECK_CLIENT_CONFIG => clients::check_client_config(b, &req),
            request::QUERY_CONSUMER_OFFSET => offsets::query_consumer_offset(b, &req),
            request::UPDATE_CONSUMER_OFFSET => offsets::update_consumer_offset(b, &req),
            request::GET_MAX_OFFSET => offsets::max_offset(b, &req),
            request::GET_MIN_OFFSET => offsets::min_offset(b, &req),
            request::SEARCH_OFFSET_BY_TIMESTAMP => offsets::search_offset_by_timestamp(b, &req),
            request::GET_EARLIEST_MSG_STORETIME => offsets::earliest_msg_store_time(b, &req),
            request::QUERY_MESSAGE => query::query_message(b, &req),
            request::VIEW_MESSAGE_BY_ID => query::view_message_by_id(b, &req),
            request::LOCK_BATCH_MQ => locks::lock_batch(b, &req),
            request::UNLOCK_BATCH_MQ => locks::unlock_batch(b, &req),
            request::CONSUMER_SEND_MSG_BACK => retry::send_back(b, &conn, &req).await,
            request::END_TRANSACTION => transaction::end_transaction(b, &conn, &req).await,
            request::POP_MESSAGE => pop::pop_message(b, &req).await,
            request::ACK_MESSAGE => pop::ack_message(b, &req),
            request::CHANGE_MESSAGE_INVISIBLETIME => pop::change_invisible_time(b, &req),
            request::PLUGIN_SNAPSHOT => Ok(slave_sync::plugin_snapshot(b, &req)),
            request::AMQP_METADATA_SNAPSHOT => Ok(slave_sync::amqp_metadata_snapshot(b, &req)),
            request::PLUGIN_DEPLOY..=request::PLUGIN_LOGS => match plugins::handle(b, &req).await {
                Some(r) => r,
                None => Err(Error::System(format!("plugin request code {} not supported", req.code))),
            },
            code => match admin::handle(b, &conn, &req).await {
                Some(r) => r,
                None => {
                    return Some(RemotingCommand::error(
                        response::REQUEST_CODE_NOT_SUPPORTED,
                        format!("{} request code {code} not supported", conn.peer()),
                    ));
                }
            },
        };
        b.register_if_topics_changed(generation).await;
        let answer = result.unwrap_or_else(|e| {
            tracing::debug!(code = req.code, peer = %conn.peer(), error = %e, "request failed");
            e.into_response()
        });
        record_request(b, req.code, answer.code, began.elapsed());
        Some(answer)
    }

    fn connection_closed(&self, conn: &Connection) {
        for (group, left) in self.broker.clients.connection_closed(conn.id()) {
            tracing::info!(%group, peer = %conn.peer(), "consumer connection closed");
            let notify = self.broker.groups.get(&group).is_none_or(|g| g.notify_consumer_ids_changed_enable);
            if notify {
                clients::notify_connections(&group, left.iter());
            }
        }
    }
}

/// A running broker.
pub struct Broker {
    pub inner: Arc<BrokerInner>,
    main: Server,
    vip: Option<Server>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Broker {
    /// Opens the store, binds the ports, registers with the name servers and starts the
    /// background services. Must run inside a multi-threaded tokio runtime.
    pub async fn start(config: BrokerConfig) -> anyhow::Result<Broker> {
        Broker::start_with_metrics(config, crate::metrics::Metrics::unregistered()).await
    }

    /// [`Broker::start`] with the program's metrics (registered in its registry).
    pub async fn start_with_metrics(
        config: BrokerConfig,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Broker> {
        let store_config = config.store_config();
        let root = store_config.root_dir.clone();
        let store = tokio::task::block_in_place(|| MessageStore::open(store_config))
            .with_context(|| format!("opening the store under {}", root.display()))?;
        let store = Arc::new(store);
        let meta = Arc::new(MetadataFiles::open(root.join("config")).context("opening the metadata files")?);
        let ip: IpAddr = match &config.broker_ip1 {
            Some(ip) => ip.parse().with_context(|| format!("brokerIP1 {ip:?} is not an IP address"))?,
            None => default_ip(),
        };
        let store_host = SocketAddr::new(ip, config.listen_port);
        let ha_ip = config.broker_ip2.clone().unwrap_or_else(|| ip.to_string());
        let ha_addr = format!("{ha_ip}:{}", config.ha_port());
        let plugins = Arc::new(tokio::task::block_in_place(|| {
            crate::plugin::Plugins::open(&config.store_path_root_dir, config.plugin_dir.as_deref())
        }));
        // The SQL92 engine is compiled now: a bad `sqlFilterPlugin` stops the start, not the
        // first SQL92 pull.
        if config.sql_filter_engine == crate::filter::SqlFilterEngine::Plugin
            && let Some(component) = &config.sql_filter_plugin
        {
            tokio::task::block_in_place(|| plugins.start_sql_engine(component))
                .map_err(|e| anyhow::anyhow!("sqlFilterEngine=plugin: {e}"))?;
        }
        let (ha_master, ha_slave) = match config.broker_role {
            Role::Slave => {
                let limits = ha::SlaveLimits {
                    heartbeat_interval_ms: config.ha_send_heartbeat_interval_ms,
                    housekeeping_interval_ms: config.ha_housekeeping_interval_ms,
                    spin_us: config.ha_slave_spin_us,
                };
                (None, Some(ha::Slave::new(store.clone(), limits, config.ha_master_address.clone())))
            }
            Role::SyncMaster | Role::AsyncMaster => {
                let limits = ha::MasterLimits {
                    transfer_batch_bytes: config.ha_transfer_batch_size_bytes,
                    heartbeat_interval_ms: config.ha_send_heartbeat_interval_ms,
                    housekeeping_interval_ms: config.ha_housekeeping_interval_ms,
                    fallbehind_max_bytes: config.ha_slave_fallbehind_max_bytes,
                };
                (Some(ha::Master::new(store.clone(), limits)), None)
            }
        };
        let bind_ip = config.bind_address.clone().unwrap_or_else(|| "0.0.0.0".to_owned());
        let pulls = Arc::new(pull::PullWaiters::default());
        let waiters = pulls.clone();
        let pops = pop::PopState::load(&root.join("config"));
        let pop_waiters = Arc::new(std::sync::OnceLock::<std::sync::Weak<BrokerInner>>::new());
        let wake_pops = pop_waiters.clone();
        store.set_arrival_listener(move |topic, queue_id, _offset| {
            waiters.arrived(topic, queue_id);
            if let Some(b) = wake_pops.get().and_then(std::sync::Weak::upgrade) {
                b.pops.arrived(topic);
            }
        });
        let inner = Arc::new(BrokerInner {
            topics: topics::Topics::load(&config, meta.clone()),
            groups: clients::Groups::load(meta.clone(), config.auto_create_subscription_group),
            clients: clients::Clients::default(),
            pulls,
            locks: locks::QueueLocks::default(),
            transactions: transaction::Transactions::default(),
            pops,
            metrics,
            plugins,
            store_host,
            ha_addr,
            vip_addr: Mutex::new(None),
            permission: AtomicU32::new(config.broker_permission),
            client: remoting::Client::default(),
            stats: Stats::default(),
            started: Instant::now(),
            started_ms: crate::store::now_ms(),
            offsets_dirty: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            registered: AtomicBool::new(false),
            store,
            ha_master,
            ha_slave,
            master_addr: Mutex::new(None),
            meta,
            config,
        });
        let limits = ServerLimits::default();
        let main_addr = format!("{bind_ip}:{}", inner.config.listen_port);
        let main = Server::bind(&main_addr, limits, Arc::new(NativeDoor { broker: inner.clone(), vip: false }))
            .await
            .with_context(|| format!("binding the listen port {main_addr}"))?;
        let vip_addr = format!("{bind_ip}:{}", inner.config.vip_port());
        let vip = match Server::bind(&vip_addr, limits, Arc::new(NativeDoor { broker: inner.clone(), vip: true })).await
        {
            Ok(s) => {
                *inner.vip_addr.lock().unwrap_or_else(|e| e.into_inner()) = Some(s.local_addr());
                Some(s)
            }
            Err(e) => {
                tracing::warn!(addr = %vip_addr, error = %e, "could not bind the VIP port; old clients that use it will fail");
                None
            }
        };
        tracing::info!(
            listen = %main.local_addr(),
            vip = %vip_addr,
            advertised = %inner.store_host,
            cluster = %inner.config.broker_cluster_name,
            broker = %inner.config.broker_name,
            role = %inner.config.broker_role,
            "Broker listening"
        );
        {
            let open: Vec<_> = std::iter::once(&main).chain(vip.as_ref()).map(Server::open_connections).collect();
            let metrics = Arc::downgrade(&inner);
            inner.metrics.on_scrape(move || {
                let Some(b) = metrics.upgrade() else { return };
                let n: u64 = open.iter().map(|c| c.load(std::sync::atomic::Ordering::Relaxed)).sum();
                b.metrics.connections.with_label_values(&[crate::metrics::Protocol::Remoting.as_str()]).set(n as i64);
            });
        }
        let mut tasks = Vec::new();
        if let Some(master) = &inner.ha_master {
            let ha_bind = format!("{bind_ip}:{}", inner.config.ha_port());
            let listener =
                ha::Master::bind(&ha_bind).await.with_context(|| format!("binding the HA port {ha_bind}"))?;
            tracing::info!(ha = %ha_bind, "HA: waiting for slaves");
            tasks.push(tokio::spawn(master.clone().serve(listener)));
        }
        if let Some(slave) = &inner.ha_slave {
            tasks.push(slave.clone().spawn_on_own_thread().context("starting the HA slave thread")?);
            tasks.push(tokio::spawn(slave_sync::run(inner.clone())));
        }
        tasks.push(tokio::spawn(register_loop(inner.clone())));
        tasks.push(tokio::spawn(housekeeping(inner.clone())));
        let _ = pop_waiters.set(Arc::downgrade(&inner));
        tasks.extend(pop::start(&inner));
        register_scrape_hooks(&inner);
        tasks.extend(delay::start(&inner));
        tasks.extend(transaction::start(&inner));
        Ok(Broker { inner, main, vip, tasks })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.main.local_addr()
    }

    /// Stops serving, unregisters, persists the metadata and closes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.inner.stopping.store(true, Ordering::Release);
        self.main.shutdown();
        if let Some(v) = &self.vip {
            v.shutdown();
        }
        for t in &self.tasks {
            t.abort();
        }
        self.inner.unregister_from_name_servers().await;
        delay::persist(&self.inner);
        self.inner.offsets_dirty.store(true, Ordering::Release);
        self.inner.persist_offsets();
        self.inner.pops.persist();
        self.inner.meta.persist_all().context("persisting the metadata files")?;
        let inner = self.inner.clone();
        tokio::task::block_in_place(|| inner.store.shutdown()).context("shutting the store down")?;
        Ok(())
    }
}

/// Registers at once, then every `registerNameServerPeriod` (clamped to 10–60 s as 4.9.4 does),
/// and again whenever the topic table or the permission changes.
async fn register_loop(broker: Arc<BrokerInner>) {
    let period = Duration::from_millis(broker.config.register_name_server_period_ms.clamp(10_000, 60_000));
    let accepted = broker.register_with_name_servers().await;
    tracing::info!(
        name_servers = broker.config.namesrv_addrs.len(),
        accepted,
        addr = %broker.broker_addr(),
        "Broker started; registered with {accepted} of {} name servers",
        broker.config.namesrv_addrs.len()
    );
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = broker.topics.changed.notified() => {
                // Let a burst of changes (auto-created topics) settle into one registration.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if broker.is_stopping() {
            return;
        }
        broker.register_with_name_servers().await;
    }
}

/// Every second: persist offsets every `flushConsumerOffsetInterval` (5 s), expire silent clients
/// every 10 s.
async fn housekeeping(broker: Arc<BrokerInner>) {
    let mut tick: u64 = 0;
    let offsets_every_s = (broker.config.flush_consumer_offset_interval_ms / 1000).max(1);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tick += 1;
        if tick.is_multiple_of(offsets_every_s) {
            let b = broker.clone();
            let _ = tokio::task::spawn_blocking(move || b.persist_offsets()).await;
        }
        if tick.is_multiple_of(10) {
            for (group, left) in broker.clients.expire(Instant::now()) {
                clients::notify_connections(&group, left.iter());
            }
        }
    }
}

/// Counts one answered native request by code (named for known codes, so labels stay bounded).
fn record_request(broker: &BrokerInner, code: i32, response_code: i32, elapsed: Duration) {
    let name = crate::protocol::codes::request_name(code);
    let outcome = crate::metrics::response_name(response_code);
    broker.metrics.record_request(crate::metrics::Protocol::Remoting, name, outcome, elapsed);
    if matches!(code, request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE) {
        broker.metrics.observe_send(crate::metrics::Protocol::Remoting, elapsed);
    } else if code == request::PULL_MESSAGE {
        broker.metrics.observe_pull(crate::metrics::Protocol::Remoting, elapsed);
    }
}

/// Gauges read from the store and the consumer offsets at scrape time: store size, disk use,
/// flushes, consumer lag and inflight messages.
fn register_scrape_hooks(inner: &Arc<BrokerInner>) {
    let weak = Arc::downgrade(inner);
    let last_flush = Mutex::new((Duration::ZERO, 0u64));
    inner.metrics.on_scrape(move || {
        let Some(b) = weak.upgrade() else { return };
        let m = &b.metrics;
        let store = &b.store;
        let commit_log = store.commit_log_max_offset().saturating_sub(store.commit_log_min_offset());
        m.storage_size.with_label_values(&["commitlog"]).set(commit_log as i64);
        if let Some(ratio) = crate::store::disk::used_ratio(&b.config.commit_log_dir()) {
            m.disk_usage.set(ratio);
        }
        let (time, rounds) = (store.commit_log_flush_time(), store.commit_log_flush_rounds());
        let mut last = last_flush.lock().unwrap_or_else(|e| e.into_inner());
        m.add_flushes(time.saturating_sub(last.0).as_secs_f64(), rounds.saturating_sub(last.1));
        *last = (time, rounds);
        drop(last);
        m.consumer_lag.reset();
        let offsets: Vec<(String, String, u32, i64)> = {
            let table = b.meta.consumer_offsets();
            let mut v = Vec::new();
            for (key, per_queue) in &table.offset_table {
                // `topic@group`; a topic has no `@`, so the first one splits.
                let Some((topic, group)) = key.split_once('@') else { continue };
                v.extend(per_queue.iter().map(|(q, o)| (topic.to_owned(), group.to_owned(), *q, *o)));
            }
            v
        };
        let mut lag: std::collections::BTreeMap<(String, String), i64> = std::collections::BTreeMap::new();
        for (topic, group, queue_id, offset) in offsets {
            let behind = (store.max_offset(&topic, queue_id) as i64 - offset.max(0)).max(0);
            *lag.entry((topic, group)).or_default() += behind;
        }
        for ((topic, group), n) in lag {
            m.consumer_lag.with_label_values(&[m.topic_label(&topic), m.group_label(&group)]).add(n);
        }
        m.consumer_inflight.reset();
        for (group, topic, n) in b.pops.inflight_all() {
            m.consumer_inflight.with_label_values(&[m.topic_label(&topic), m.group_label(&group)]).add(n as i64);
        }
        // HA: on a master, each connected slave by address; on a slave, itself.
        m.reset_ha_lag();
        if let Some(master) = &b.ha_master {
            let end = store.commit_log_max_offset();
            for s in master.slaves() {
                let behind = end.saturating_sub(s.acked_offset.unwrap_or(0));
                m.set_ha_lag(&s.addr.to_string(), behind as i64);
            }
        }
        if let Some(slave) = &b.ha_slave {
            let st = slave.status();
            m.set_ha_lag("self", st.master_seen_offset.saturating_sub(st.replica_offset) as i64);
        }
        for (name, role, c) in b.plugins.counters() {
            let t = &c.traps;
            let totals = crate::metrics::PluginTotals {
                calls: c.calls,
                messages_in: c.messages_in,
                messages_passed: c.messages_passed,
                failures: vec![
                    ("error", c.errors),
                    ("trap_deadline", t.deadline),
                    ("trap_memory", t.memory),
                    ("trap_panic", t.panic),
                    ("trap_stack", t.stack),
                    ("trap_other", t.other),
                    ("quarantine", c.quarantines),
                ],
                seconds: c.latency_sum_us as f64 / 1e6,
                latency_buckets: c
                    .latency_us
                    .iter()
                    .map(|(upper, n)| (upper.parse::<f64>().map_or(f64::INFINITY, |us| us / 1e6), *n))
                    .collect(),
            };
            m.set_plugin_totals(&name, role.name(), &totals);
        }
    });
}
