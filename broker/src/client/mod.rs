//! Our own client of the native protocol: route lookup through the name servers, a producer
//! (sync, async, oneway, batch, transactional sends) and the pull-consumer primitives (pull,
//! offsets, heartbeats, message lookups). Used by `mqbench`, `mqadmin` and the gateways' cluster
//! mode.
//!
//! The pieces:
//!
//! * [`MqClient`]: one per process (Java's `MQClientInstance`). It owns the remoting
//!   [`crate::remoting::Client`], the name server list (tried in turn, moving on when one fails),
//!   the route cache, the client id, the groups reported in heartbeats, and the answers to
//!   requests brokers send us (CHECK_TRANSACTION_STATE). Cheap to clone. Low-level calls that
//!   admin tools need are methods on it: [`MqClient::invoke_namesrv`], [`MqClient::invoke_broker`],
//!   offsets, [`MqClient::view_message`], [`MqClient::query_message`], ...
//! * [`Producer`]: a producer group sending through an `MqClient`.
//! * [`PullConsumer`]: a consumer group pulling queues it chooses itself, through an `MqClient`.
//! * [`Message`] (to send) and [`MessageExt`] (received, decoded from the stored record layout).
//!
//! ```no_run
//! # async fn demo() -> Result<(), broker::client::Error> {
//! use broker::client::{ClientConfig, Message, MqClient, Producer};
//! let client = MqClient::new(ClientConfig::new("127.0.0.1:9876"));
//! let producer = Producer::new(client.clone(), "my-group");
//! let result = producer.send(Message::new("TopicTest", "hello").with_tags("TagA")).await?;
//! println!("{} stored at {}:{}", result.msg_id, result.queue.queue_id, result.queue_offset);
//! # Ok(()) }
//! ```
//!
//! # Limits
//!
//! | limit | value | where |
//! |---|---|---|
//! | message body | 4 MiB | [`ProducerOptions::message_bytes_max`] |
//! | request timeout | 3 s | [`ClientConfig::request_timeout`] |
//! | long-poll hold | 15 s (+ the request timeout) | [`PullConsumerOptions::suspend_timeout_ms`] |
//! | route freshness | 30 s | [`ClientConfig::route_ttl`] |
//!
//! Nothing here panics on bytes from the network: pull bodies are decoded with
//! [`crate::store::format::scan_record`], which checks every length.

mod consumer;
mod message;
mod producer;
mod route;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The body type of messages (re-exported so callers need not depend on `bytes`).
pub use bytes::Bytes;
pub use consumer::{
    ConsumeFromWhere, EXPRESSION_SQL92, EXPRESSION_TAG, PullConsumer, PullConsumerOptions, PullRequest, PullResult,
    PullStatus, java_string_hash, pull_flag, tag_subscription,
};
pub use message::{Message, MessageExt, decode_batch, decode_messages, encode_batch};
pub use producer::{
    Producer, ProducerOptions, SendFuture, SendResult, SendStatus, TransactionListener, TransactionSendResult,
    TransactionState,
};
pub use route::{RouteCache, TopicRoute};

use crate::protocol::body::{ConsumerData, HeartbeatData, MessageQueue, ProducerData, TopicRouteData};
use crate::protocol::{request, response};
use crate::remoting::{self, ClientOptions, RemotingCommand, SerializeType};

/// The internal producer group every Java client reports in its heartbeats.
pub const CLIENT_INNER_PRODUCER_GROUP: &str = "CLIENT_INNER_PRODUCER";

/// What can go wrong in a client call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection failed, timed out or closed.
    #[error(transparent)]
    Remoting(#[from] remoting::Error),
    /// The broker or name server answered with an error code (not one of the non-fatal send
    /// statuses 10, 11, 12).
    #[error("code {code} from {addr}: {remark}")]
    Broker { addr: String, code: i32, remark: String },
    /// Neither the topic nor the default topic (`TBW102`) has a route.
    #[error("no route info of topic {topic}")]
    NoRoute { topic: String },
    /// A route names a broker that has no address we can use.
    #[error("no address for broker {broker_name}")]
    NoBrokerAddr { broker_name: String },
    /// No name server configured (`-n` / `NAMESRV_ADDR`).
    #[error("no name server address configured")]
    NoNameServer,
    /// A response could not be decoded.
    #[error("decoding {what}: {detail}")]
    Decode { what: &'static str, detail: String },
    /// The message or request was refused before sending.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl Error {
    /// The response code when the peer answered with one.
    pub fn code(&self) -> Option<i32> {
        match self {
            Error::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    fn broker(addr: &str, response: &RemotingCommand) -> Error {
        Error::Broker {
            addr: addr.to_owned(),
            code: response.code,
            remark: response.remark.clone().unwrap_or_default(),
        }
    }

    fn decode(what: &'static str, detail: impl std::fmt::Display) -> Error {
        Error::Decode { what, detail: detail.to_string() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Settings shared by every producer and consumer of one [`MqClient`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Name servers, `host:port` separated by `;` (Java's `namesrvAddr`).
    pub namesrv_addr: String,
    /// Java's `instanceName`; part of the client id.
    pub instance_name: String,
    /// Timeout of ordinary requests (Java's `sendMsgTimeout` 3000 ms).
    pub request_timeout: Duration,
    /// How long a route stays cached before it is fetched again (Java refreshes every 30 s).
    pub route_ttl: Duration,
    /// How long a route borrowed from `TBW102` for an unknown topic is used before asking again.
    pub fallback_route_ttl: Duration,
    /// Header encoding of our requests (Java's default is JSON).
    pub serialize_type: SerializeType,
    /// The address reported as ours (client id, unique ids); found from the name server's route
    /// when `None`.
    pub client_ip: Option<IpAddr>,
}

impl ClientConfig {
    /// Defaults as the Java client has them, for the given name server list.
    pub fn new(namesrv_addr: impl Into<String>) -> ClientConfig {
        ClientConfig {
            namesrv_addr: namesrv_addr.into(),
            instance_name: "DEFAULT".into(),
            request_timeout: Duration::from_millis(3000),
            route_ttl: Duration::from_secs(30),
            fallback_route_ttl: Duration::from_millis(1000),
            serialize_type: SerializeType::Json,
            client_ip: None,
        }
    }

    /// The name server list from `-n` or, when that is empty, `NAMESRV_ADDR`.
    pub fn from_env_or(namesrv_addr: Option<&str>) -> ClientConfig {
        let addr = namesrv_addr
            .map(str::to_owned)
            .filter(|s| !s.trim().is_empty())
            .or_else(|| std::env::var("NAMESRV_ADDR").ok())
            .unwrap_or_default();
        ClientConfig::new(addr)
    }
}

struct Inner {
    config: ClientConfig,
    remoting: remoting::Client,
    name_servers: Vec<String>,
    /// Index of the name server to try first.
    namesrv_index: AtomicUsize,
    client_ip: IpAddr,
    client_id: String,
    unique_ids: crate::protocol::message_id::UniqueIds,
    routes: RouteCache,
    producer_groups: Mutex<BTreeSet<String>>,
    consumers: Mutex<BTreeMap<String, ConsumerData>>,
    transaction_listeners: Mutex<HashMap<String, Arc<dyn TransactionListener>>>,
}

/// The client instance: connections, name servers, routes and the groups it reports. Clones share
/// everything.
#[derive(Clone)]
pub struct MqClient(Arc<Inner>);

impl std::fmt::Debug for MqClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqClient")
            .field("client_id", &self.0.client_id)
            .field("name_servers", &self.0.name_servers)
            .finish()
    }
}

impl MqClient {
    /// A client for `config`. No connection is opened until the first request.
    pub fn new(config: ClientConfig) -> MqClient {
        let name_servers: Vec<String> =
            config.namesrv_addr.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        let client_ip = config.client_ip.unwrap_or_else(|| local_ip_towards(name_servers.first().map(String::as_str)));
        let instance = if config.instance_name == "DEFAULT" {
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
            format!("{}#{}", std::process::id(), nanos as u64)
        } else {
            config.instance_name.clone()
        };
        let client_id = format!("{client_ip}@{instance}");
        MqClient(Arc::new_cyclic(|weak: &Weak<Inner>| {
            let weak = weak.clone();
            let options = ClientOptions {
                on_request: Some(Arc::new(move |addr: &str, cmd: RemotingCommand| {
                    weak.upgrade().and_then(|inner| MqClient(inner).on_server_request(addr, cmd))
                })),
                ..ClientOptions::default()
            };
            Inner {
                routes: RouteCache::new(config.route_ttl, config.fallback_route_ttl),
                config,
                remoting: remoting::Client::new(options),
                name_servers,
                namesrv_index: AtomicUsize::new(0),
                client_ip,
                client_id,
                unique_ids: crate::protocol::message_id::UniqueIds::new(client_ip),
                producer_groups: Mutex::new(BTreeSet::new()),
                consumers: Mutex::new(BTreeMap::new()),
                transaction_listeners: Mutex::new(HashMap::new()),
            }
        }))
    }

    pub fn config(&self) -> &ClientConfig {
        &self.0.config
    }

    /// The name servers, in the order given.
    pub fn name_servers(&self) -> &[String] {
        &self.0.name_servers
    }

    /// `ip@instance`, as brokers see us in heartbeats and connection lists.
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// The address we report as ours (also the first bytes of the unique ids we make).
    pub fn client_ip(&self) -> IpAddr {
        self.0.client_ip
    }

    /// A fresh client message id (`UNIQ_KEY`) in the Java client's shape.
    pub fn new_unique_id(&self) -> String {
        self.0.unique_ids.next()
    }

    /// The underlying remoting client (one connection per address).
    pub fn remoting(&self) -> &remoting::Client {
        &self.0.remoting
    }

    /// The route cache (topic routes and broker addresses seen so far).
    pub fn routes(&self) -> &RouteCache {
        &self.0.routes
    }

    /// A request with `code` in this client's header encoding.
    pub fn request(&self, code: i32) -> RemotingCommand {
        let mut cmd = RemotingCommand::request(code);
        cmd.serialize_type = self.0.config.serialize_type;
        cmd
    }

    /// Sends `cmd` to the name servers in turn, starting with the last one that answered, until
    /// one answers (whatever its code). Connection failures and timeouts move to the next.
    ///
    /// # Errors
    /// [`Error::NoNameServer`], or the last name server's remoting error.
    pub async fn invoke_namesrv(&self, cmd: RemotingCommand) -> Result<(String, RemotingCommand)> {
        let n = self.0.name_servers.len();
        if n == 0 {
            return Err(Error::NoNameServer);
        }
        let start = self.0.namesrv_index.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..n {
            let idx = (start + i) % n;
            let addr = &self.0.name_servers[idx];
            match self.0.remoting.invoke(addr, cmd.clone(), self.0.config.request_timeout).await {
                Ok(resp) => {
                    if i > 0 {
                        self.0.namesrv_index.store(idx, Ordering::Relaxed);
                    }
                    return Ok((addr.clone(), resp));
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "name server failed; trying the next");
                    last = Some(e);
                }
            }
        }
        self.0.namesrv_index.store((start + 1) % n, Ordering::Relaxed);
        Err(last.map(Error::Remoting).unwrap_or(Error::NoNameServer))
    }

    /// Sends `cmd` to `addr` and returns the response, whatever its code.
    pub async fn invoke_broker(&self, addr: &str, cmd: RemotingCommand) -> Result<RemotingCommand> {
        Ok(self.0.remoting.invoke(addr, cmd, self.0.config.request_timeout).await?)
    }

    /// As [`MqClient::invoke_broker`] with an explicit timeout.
    pub async fn invoke_broker_timeout(
        &self,
        addr: &str,
        cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        Ok(self.0.remoting.invoke(addr, cmd, timeout).await?)
    }

    /// Sends `cmd` to `addr` and returns the response if its code is SUCCESS.
    ///
    /// # Errors
    /// [`Error::Broker`] for any other code.
    pub async fn invoke_broker_ok(&self, addr: &str, cmd: RemotingCommand) -> Result<RemotingCommand> {
        let resp = self.invoke_broker(addr, cmd).await?;
        if resp.code != response::SUCCESS {
            return Err(Error::broker(addr, &resp));
        }
        Ok(resp)
    }

    /// Sends `cmd` to `addr` without waiting for an answer.
    pub async fn invoke_broker_oneway(&self, addr: &str, cmd: RemotingCommand) -> Result<()> {
        Ok(self.0.remoting.invoke_oneway(addr, cmd).await?)
    }

    /// GET_ROUTEINFO_BY_TOPIC (105) from the name servers, bypassing the cache (the answer is
    /// stored in it).
    ///
    /// # Errors
    /// [`Error::NoRoute`] when the name server answers TOPIC_NOT_EXIST.
    pub async fn fetch_route(&self, topic: &str) -> Result<Arc<TopicRouteData>> {
        let cmd = self.request(request::GET_ROUTEINFO_BY_TOPIC).with_field("topic", topic);
        let (addr, resp) = self.invoke_namesrv(cmd).await?;
        match resp.code {
            response::SUCCESS => {}
            response::TOPIC_NOT_EXIST => return Err(Error::NoRoute { topic: topic.to_owned() }),
            _ => return Err(Error::broker(&addr, &resp)),
        }
        let route: TopicRouteData = crate::protocol::body::parse(&resp.body).map_err(|e| Error::decode("route", e))?;
        Ok(self.0.routes.store(topic, route, false).route.clone())
    }

    /// The route of `topic`, from the cache while it is fresh.
    pub async fn route(&self, topic: &str) -> Result<Arc<TopicRoute>> {
        if let Some(r) = self.0.routes.fresh(topic) {
            return Ok(r);
        }
        self.fetch_route(topic).await?;
        self.0.routes.get(topic).ok_or_else(|| Error::NoRoute { topic: topic.to_owned() })
    }

    /// The route a producer uses for `topic`: the topic's own, or, while the topic is unknown to
    /// the name servers, `TBW102`'s with at most `default_queue_nums` queues per broker (as Java
    /// does; the broker then creates the topic on the first send).
    pub async fn publish_route(&self, topic: &str, default_queue_nums: u32) -> Result<Arc<TopicRoute>> {
        if let Some(r) = self.0.routes.fresh(topic) {
            return Ok(r);
        }
        match self.fetch_route(topic).await {
            Ok(_) => self.0.routes.get(topic).ok_or_else(|| Error::NoRoute { topic: topic.to_owned() }),
            Err(Error::NoRoute { .. }) => {
                let cmd = self
                    .request(request::GET_ROUTEINFO_BY_TOPIC)
                    .with_field("topic", crate::protocol::AUTO_CREATE_TOPIC);
                let (addr, resp) = self.invoke_namesrv(cmd).await?;
                match resp.code {
                    response::SUCCESS => {}
                    response::TOPIC_NOT_EXIST => return Err(Error::NoRoute { topic: topic.to_owned() }),
                    _ => return Err(Error::broker(&addr, &resp)),
                }
                let mut route: TopicRouteData =
                    crate::protocol::body::parse(&resp.body).map_err(|e| Error::decode("route", e))?;
                for q in &mut route.queue_datas {
                    let n = default_queue_nums.min(q.read_queue_nums);
                    q.read_queue_nums = n;
                    q.write_queue_nums = n;
                }
                let r = self.0.routes.store(topic, route, true);
                if r.write_queues.is_empty() {
                    return Err(Error::NoRoute { topic: topic.to_owned() });
                }
                Ok(r)
            }
            Err(e) => Err(e),
        }
    }

    /// The queues consumers of `topic` read (`readQueueNums` per broker).
    pub async fn subscribe_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        Ok(self.route(topic).await?.read_queues.clone())
    }

    /// The master address of `broker_name`, from the routes seen so far.
    pub fn master_addr(&self, broker_name: &str) -> Option<String> {
        self.0.routes.broker_addr(broker_name, 0)
    }

    /// The master address of `broker_name`, fetching `topic`'s route if the broker is unknown.
    ///
    /// # Errors
    /// [`Error::NoBrokerAddr`] when no route names a master for it.
    pub async fn master_addr_for(&self, topic: &str, broker_name: &str) -> Result<String> {
        if let Some(a) = self.master_addr(broker_name) {
            return Ok(a);
        }
        let _ = self.fetch_route(topic).await;
        self.master_addr(broker_name).ok_or_else(|| Error::NoBrokerAddr { broker_name: broker_name.to_owned() })
    }

    /// Registers a producer group for heartbeats.
    pub fn register_producer_group(&self, group: &str) {
        lock(&self.0.producer_groups).insert(group.to_owned());
    }

    /// Registers (or replaces) a consumer group's data for heartbeats.
    pub fn register_consumer(&self, data: ConsumerData) {
        lock(&self.0.consumers).insert(data.group_name.clone(), data);
    }

    /// Registers the transaction check listener of a producer group: CHECK_TRANSACTION_STATE
    /// requests for messages of that group are answered with its decision.
    pub fn register_transaction_listener(&self, group: &str, listener: Arc<dyn TransactionListener>) {
        lock(&self.0.transaction_listeners).insert(group.to_owned(), listener);
    }

    /// The heartbeat this client sends: its producer groups (plus `CLIENT_INNER_PRODUCER`) and
    /// consumer groups.
    pub fn heartbeat_data(&self) -> HeartbeatData {
        let mut producers: Vec<ProducerData> = vec![ProducerData { group_name: CLIENT_INNER_PRODUCER_GROUP.into() }];
        producers.extend(lock(&self.0.producer_groups).iter().map(|g| ProducerData { group_name: g.clone() }));
        HeartbeatData {
            client_id: self.0.client_id.clone(),
            consumer_data_set: lock(&self.0.consumers).values().cloned().collect(),
            producer_data_set: producers,
        }
    }

    /// HEART_BEAT (34) with `data` to one broker.
    pub async fn send_heartbeat(&self, addr: &str, data: &HeartbeatData) -> Result<()> {
        let cmd = self.request(request::HEART_BEAT).with_body(crate::protocol::body::to_json(data));
        self.invoke_broker_ok(addr, cmd).await.map(|_| ())
    }

    /// Sends [`MqClient::heartbeat_data`] to every broker of the routes seen so far (masters only
    /// when no consumer group is registered, as Java does). Returns how many brokers answered.
    ///
    /// # Errors
    /// The last error when no broker answered (none known is not an error).
    pub async fn heartbeat(&self) -> Result<usize> {
        let data = self.heartbeat_data();
        let masters_only = data.consumer_data_set.is_empty();
        let addrs = self.0.routes.all_broker_addrs(masters_only);
        let mut ok = 0;
        let mut last = None;
        for addr in &addrs {
            match self.send_heartbeat(addr, &data).await {
                Ok(()) => ok += 1,
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "heartbeat failed");
                    last = Some(e);
                }
            }
        }
        match last {
            Some(e) if ok == 0 => Err(e),
            _ => Ok(ok),
        }
    }

    /// Spawns a task sending [`MqClient::heartbeat`] every `interval` (Java: 30 s) until the
    /// returned handle is aborted.
    pub fn spawn_heartbeat(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                if let Err(e) = me.heartbeat().await {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
        })
    }

    /// UNREGISTER_CLIENT (35) for the given groups to every known broker (best effort).
    pub async fn unregister(&self, producer_group: Option<&str>, consumer_group: Option<&str>) {
        for addr in self.0.routes.all_broker_addrs(false) {
            let mut cmd = self.request(request::UNREGISTER_CLIENT).with_field("clientID", &self.0.client_id);
            if let Some(g) = producer_group {
                cmd = cmd.with_field("producerGroup", g);
            }
            if let Some(g) = consumer_group {
                cmd = cmd.with_field("consumerGroup", g);
            }
            let _ = self.invoke_broker(&addr, cmd).await;
        }
    }

    /// Requests a broker sends us: transaction checks are answered through the registered
    /// listener; consumer-id changes are only logged (callers rebalance on their own schedule).
    fn on_server_request(&self, addr: &str, cmd: RemotingCommand) -> Option<RemotingCommand> {
        match cmd.code {
            request::CHECK_TRANSACTION_STATE => {
                let me = self.clone();
                let addr = addr.to_owned();
                match tokio::runtime::Handle::try_current() {
                    Ok(h) => {
                        h.spawn(async move { me.check_transaction_state(&addr, cmd).await });
                    }
                    Err(_) => tracing::warn!("transaction check outside a runtime; ignored"),
                }
                None
            }
            request::NOTIFY_CONSUMER_IDS_CHANGED => {
                tracing::debug!(%addr, group = cmd.field("consumerGroup").unwrap_or(""), "consumer ids changed");
                None
            }
            code => Some(RemotingCommand::error(
                response::REQUEST_CODE_NOT_SUPPORTED,
                format!("request code {code} not supported by this client"),
            )),
        }
    }
}

/// The local address used to reach `towards` (no packet is sent); 127.0.0.1 when unknown.
fn local_ip_towards(towards: Option<&str>) -> IpAddr {
    let fallback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let Some(target) = towards else { return fallback };
    let Ok(sock) = std::net::UdpSocket::bind("0.0.0.0:0") else { return fallback };
    if sock.connect(target).is_err() {
        return fallback;
    }
    match sock.local_addr() {
        Ok(a) if !a.ip().is_unspecified() => a.ip(),
        _ => fallback,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
