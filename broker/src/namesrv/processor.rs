//! The name server's request processor (Java: `DefaultRequestProcessor`): decodes each request,
//! reads or changes the route table or the KV settings, and answers. Every failure is a response
//! with a code and a remark; unknown codes get REQUEST_CODE_NOT_SUPPORTED (Java sends nothing).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use super::kv::{KvConfig, NAMESPACE_ORDER_TOPIC_CONFIG};
use super::route::{Registration, Removed, RouteTable};
use super::{Clock, Error, NamesrvConfig, system_clock};
use crate::config::properties;
use crate::protocol::body::{self, KvTable, RegisterBrokerBody, TopicConfigSerializeWrapper, TopicList};
use crate::protocol::codes::request_name;
use crate::protocol::{DataVersion, HeaderError, Headers, request, response};
use crate::remoting::{Connection, Handler, RemotingCommand};

/// Requests from peers older than this `version` (`MQVersion.V3_0_11`) send REGISTER_BROKER with
/// a bare `TopicConfigSerializeWrapper` body.
const VERSION_3_0_11: i32 = 37;

/// The keys UPDATE_NAMESRV_CONFIG may change while running; the others need a restart.
pub const RUNTIME_KEYS: [&str; 3] = ["brokerExpiredMillis", "orderMessageEnable", "scanNotActiveBrokerInterval"];

/// The remark of a TOPIC_NOT_EXIST answer ends with Java's FAQ hint.
const FAQ_HINT: &str = "\nSee http://rocketmq.apache.org/docs/faq/ for further details.";

/// A failed request: the response to send.
struct Reply(RemotingCommand);

impl Reply {
    fn new(code: i32, remark: impl Into<String>) -> Reply {
        Reply(RemotingCommand::error(code, remark))
    }
}

impl From<HeaderError> for Reply {
    /// A header Java cannot decode is answered SYSTEM_ERROR with the decoder's text.
    fn from(e: HeaderError) -> Reply {
        Reply::new(response::SYSTEM_ERROR, e.to_string())
    }
}

type Answer = Result<RemotingCommand, Reply>;

fn ok() -> RemotingCommand {
    RemotingCommand::response(response::SUCCESS)
}

fn json_answer<T: serde::Serialize>(value: &T) -> RemotingCommand {
    ok().with_body(body::to_json(value))
}

/// The name server's state and request handling; serve it with
/// [`Server::bind`](crate::remoting::Server::bind) or through [`super::start`].
pub struct Processor {
    config: RwLock<NamesrvConfig>,
    routes: RwLock<RouteTable>,
    kv: Arc<KvConfig>,
    clock: Clock,
    /// Connections over which a broker registered, to close when it expires (as Java does).
    broker_conns: Mutex<HashMap<u64, Connection>>,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor").field("kv", &self.kv.path()).finish_non_exhaustive()
    }
}

impl Processor {
    /// A processor on the system clock, with the KV settings loaded from `kvConfigPath`.
    ///
    /// # Errors
    ///
    /// As [`KvConfig::load`].
    pub fn new(config: NamesrvConfig) -> Result<Processor, Error> {
        Processor::with_clock(config, system_clock())
    }

    /// A processor whose notion of now (ms) is `clock`: tests expire brokers without waiting.
    ///
    /// # Errors
    ///
    /// As [`KvConfig::load`].
    pub fn with_clock(config: NamesrvConfig, clock: Clock) -> Result<Processor, Error> {
        let kv = Arc::new(KvConfig::load(config.kv_config_path.clone())?);
        Ok(Processor {
            config: RwLock::new(config),
            routes: RwLock::new(RouteTable::new()),
            kv,
            clock,
            broker_conns: Mutex::new(HashMap::new()),
        })
    }

    /// The current settings (UPDATE_NAMESRV_CONFIG may have changed [`RUNTIME_KEYS`]).
    pub fn config(&self) -> NamesrvConfig {
        self.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The route table, read-locked: hold the guard briefly.
    pub fn routes(&self) -> RwLockReadGuard<'_, RouteTable> {
        self.routes.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn kv(&self) -> &KvConfig {
        &self.kv
    }

    fn routes_mut(&self) -> std::sync::RwLockWriteGuard<'_, RouteTable> {
        self.routes.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops brokers not registered within `brokerExpiredMillis` and closes their connections.
    pub fn scan_not_active_brokers(&self) -> Vec<Removed> {
        let now = (self.clock)();
        let expired_ms = self.config.read().unwrap_or_else(|e| e.into_inner()).broker_expired_ms;
        if !self.routes().any_expired(now, expired_ms) {
            return Vec::new();
        }
        let removed = self.routes_mut().remove_expired(now, expired_ms);
        for conn_id in removed.iter().filter_map(|r| r.conn_id) {
            if !self.routes().has_connection(conn_id) {
                let conn = self.broker_conns.lock().unwrap_or_else(|e| e.into_inner()).remove(&conn_id);
                if let Some(conn) = conn {
                    conn.close();
                }
            }
        }
        removed
    }

    /// Removes the brokers that registered over connection `conn_id`, which closed.
    pub fn on_connection_closed(&self, conn_id: u64) -> Vec<Removed> {
        self.broker_conns.lock().unwrap_or_else(|e| e.into_inner()).remove(&conn_id);
        if !self.routes().has_connection(conn_id) {
            return Vec::new();
        }
        self.routes_mut().remove_connection(conn_id)
    }

    /// Answers one request; `conn_id` is the connection it came over (a registration remembers
    /// it, so the broker leaves the table when that connection closes).
    pub async fn process(&self, conn_id: Option<u64>, request: &RemotingCommand) -> RemotingCommand {
        tracing::debug!(code = request.code, name = request_name(request.code), ?conn_id, "name server request");
        let answer = match request.code {
            request::PUT_KV_CONFIG => self.put_kv_config(request).await,
            request::GET_KV_CONFIG => self.get_kv_config(request),
            request::DELETE_KV_CONFIG => self.delete_kv_config(request).await,
            request::QUERY_DATA_VERSION => self.query_data_version(request),
            request::REGISTER_BROKER => self.register_broker(conn_id, request),
            request::UNREGISTER_BROKER => self.unregister_broker(request),
            request::GET_ROUTEINFO_BY_TOPIC => self.route_by_topic(request),
            request::GET_BROKER_CLUSTER_INFO => Ok(json_answer(&self.routes().cluster_info())),
            request::WIPE_WRITE_PERM_OF_BROKER => self.write_perm(request, true),
            request::ADD_WRITE_PERM_OF_BROKER => self.write_perm(request, false),
            request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => Ok(json_answer(&self.routes().topics())),
            request::DELETE_TOPIC_IN_NAMESRV => self.delete_topic(request),
            request::GET_KVLIST_BY_NAMESPACE => self.kv_list(request),
            request::GET_TOPICS_BY_CLUSTER => self.topics_of_cluster(request),
            request::GET_SYSTEM_TOPIC_LIST_FROM_NS => Ok(json_answer(&self.routes().system_topics())),
            request::GET_UNIT_TOPIC_LIST => Ok(json_answer(&self.routes().unit_topics())),
            request::GET_HAS_UNIT_SUB_TOPIC_LIST => Ok(json_answer(&self.routes().has_unit_sub_topics())),
            request::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST => Ok(json_answer(&self.routes().has_unit_sub_ununit_topics())),
            request::UPDATE_NAMESRV_CONFIG => self.update_config(request),
            request::GET_NAMESRV_CONFIG => Ok(ok().with_body(self.config().to_properties().into_bytes())),
            code => {
                let name = request_name(code);
                let remark = if name == "UNKNOWN" {
                    format!("request code {code} is not supported by the name server")
                } else {
                    format!("request code {code} ({name}) is not supported by the name server")
                };
                Err(Reply::new(response::REQUEST_CODE_NOT_SUPPORTED, remark))
            }
        };
        answer.unwrap_or_else(|reply| reply.0)
    }

    async fn persist_kv(&self) -> Answer {
        let kv = self.kv.clone();
        let path = kv.path().display().to_string();
        let failed = |reason: String| {
            tracing::error!(file = %path, %reason, "could not write the KV config");
            Reply::new(response::SYSTEM_ERROR, format!("changed in memory but not written to {path}: {reason}"))
        };
        match tokio::task::spawn_blocking(move || kv.persist()).await {
            Ok(Ok(())) => Ok(ok()),
            Ok(Err(e)) => Err(failed(e.to_string())),
            Err(e) => Err(failed(e.to_string())),
        }
    }

    async fn put_kv_config(&self, req: &RemotingCommand) -> Answer {
        let namespace = req.required_str("namespace")?;
        let key = req.required_str("key")?;
        let value = req.required_str("value")?;
        self.kv.put(namespace, key, value);
        self.persist_kv().await
    }

    fn get_kv_config(&self, req: &RemotingCommand) -> Answer {
        let namespace = req.required_str("namespace")?;
        let key = req.required_str("key")?;
        match self.kv.get(namespace, key) {
            Some(value) => Ok(ok().with_field("value", value)),
            None => {
                Err(Reply::new(response::QUERY_NOT_FOUND, format!("No config item, Namespace: {namespace} Key: {key}")))
            }
        }
    }

    async fn delete_kv_config(&self, req: &RemotingCommand) -> Answer {
        let namespace = req.required_str("namespace")?;
        let key = req.required_str("key")?;
        self.kv.delete(namespace, key);
        self.persist_kv().await
    }

    fn kv_list(&self, req: &RemotingCommand) -> Answer {
        let namespace = req.required_str("namespace")?;
        match self.kv.namespace(namespace) {
            Some(table) => Ok(json_answer(&KvTable { table })),
            None => Err(Reply::new(response::QUERY_NOT_FOUND, format!("No config item, Namespace: {namespace}"))),
        }
    }

    fn register_broker(&self, conn_id: Option<u64>, req: &RemotingCommand) -> Answer {
        let broker_name = req.required_str("brokerName")?;
        let broker_addr = req.required_str("brokerAddr")?;
        let cluster_name = req.required_str("clusterName")?;
        let broker_id = broker_id(req)?;
        // Java marks it @CFNotNull; every broker sends it, and nothing breaks without it.
        let ha_server_addr = req.field("haServerAddr").unwrap_or_default();
        let compressed = req.optional::<bool>("compressed")?.unwrap_or(false);
        let body_crc32 = req.optional::<i32>("bodyCrc32")?.unwrap_or(0);
        if body_crc32 != 0 {
            let actual = (crc32fast::hash(&req.body) & 0x7FFF_FFFF) as i32;
            if actual != body_crc32 {
                tracing::warn!(%broker_addr, expected = body_crc32, actual, "REGISTER_BROKER body crc32 does not match");
                return Err(Reply::new(response::SYSTEM_ERROR, "crc32 not match"));
            }
        }
        if compressed && !req.body.is_empty() {
            return Err(Reply::new(
                response::SYSTEM_ERROR,
                "compressed REGISTER_BROKER bodies are not supported by this name server; \
                 set compressedRegister=false on the broker",
            ));
        }
        let decode_failed =
            |e: String| Reply::new(response::SYSTEM_ERROR, format!("Failed to decode RegisterBrokerBody: {e}"));
        let (wrapper, filter_servers) = if req.body.is_empty() {
            let empty = TopicConfigSerializeWrapper {
                data_version: DataVersion { timestamp: 0, counter: 0 },
                topic_config_table: Default::default(),
            };
            (empty, Some(Vec::new()))
        } else if req.version >= VERSION_3_0_11 {
            let body: RegisterBrokerBody = body::parse(&req.body).map_err(decode_failed)?;
            (body.topic_config_serialize_wrapper, Some(body.filter_server_list))
        } else {
            (body::parse::<TopicConfigSerializeWrapper>(&req.body).map_err(decode_failed)?, None)
        };
        let registration = Registration {
            cluster_name,
            broker_addr,
            broker_name,
            broker_id,
            ha_server_addr,
            topic_config: &wrapper,
            filter_servers: filter_servers.as_deref(),
            conn_id,
        };
        let now = (self.clock)();
        let result = self.routes_mut().register(&registration, now);
        let mut answer = ok();
        if let Some(ha) = result.ha_server_addr {
            answer = answer.with_field("haServerAddr", ha);
        }
        if let Some(master) = result.master_addr {
            answer = answer.with_field("masterAddr", master);
        }
        if let Some(table) = self.kv.namespace(NAMESPACE_ORDER_TOPIC_CONFIG) {
            answer = answer.with_body(body::to_json(&KvTable { table }));
        }
        Ok(answer)
    }

    fn unregister_broker(&self, req: &RemotingCommand) -> Answer {
        let broker_name = req.required_str("brokerName")?;
        let broker_addr = req.required_str("brokerAddr")?;
        let cluster_name = req.required_str("clusterName")?;
        let broker_id = broker_id(req)?;
        self.routes_mut().unregister(cluster_name, broker_addr, broker_name, broker_id);
        Ok(ok())
    }

    fn query_data_version(&self, req: &RemotingCommand) -> Answer {
        let broker_addr = req.required_str("brokerAddr")?;
        if req.body.is_empty() {
            return Err(Reply::new(response::SYSTEM_ERROR, "QUERY_DATA_VERSION needs a DataVersion body"));
        }
        let version: DataVersion = body::parse(&req.body)
            .map_err(|e| Reply::new(response::SYSTEM_ERROR, format!("Failed to decode DataVersion: {e}")))?;
        let now = (self.clock)();
        let (changed, current) = {
            let mut routes = self.routes_mut();
            let changed = routes.topic_config_changed(broker_addr, &version);
            if !changed {
                routes.touch(broker_addr, now);
            }
            (changed, routes.data_version(broker_addr))
        };
        let mut answer = ok().with_field("changed", changed);
        if let Some(current) = current {
            answer = answer.with_body(body::to_json(&current));
        }
        Ok(answer)
    }

    fn route_by_topic(&self, req: &RemotingCommand) -> Answer {
        let topic = req.required_str("topic")?;
        // Cloned under the read lock, encoded after it is released.
        let route = self.routes().route(topic);
        let Some(mut route) = route else {
            return Err(Reply::new(
                response::TOPIC_NOT_EXIST,
                format!("No topic route info in name server for the topic: {topic}{FAQ_HINT}"),
            ));
        };
        if self.config.read().unwrap_or_else(|e| e.into_inner()).order_message_enable {
            route.order_topic_conf = self.kv.get(NAMESPACE_ORDER_TOPIC_CONFIG, topic);
        }
        // Always standard JSON (quoted keys), whatever the request's version or
        // acceptStandardJsonOnly: fastjson, ali-ons and the Rust client all read it.
        Ok(json_answer(&route))
    }

    fn write_perm(&self, req: &RemotingCommand, wipe: bool) -> Answer {
        let broker_name = req.required_str("brokerName")?;
        let count = self.routes_mut().set_write_perm(broker_name, wipe);
        tracing::info!(broker = %broker_name, topics = count, wipe, "write permission of broker changed");
        Ok(ok().with_field(if wipe { "wipeTopicCount" } else { "addTopicCount" }, count))
    }

    fn delete_topic(&self, req: &RemotingCommand) -> Answer {
        let topic = req.required_str("topic")?;
        let cluster = req.field("clusterName").filter(|c| !c.is_empty());
        self.routes_mut().delete_topic(topic, cluster);
        tracing::info!(%topic, cluster = ?cluster, "topic deleted from the name server");
        Ok(ok())
    }

    fn topics_of_cluster(&self, req: &RemotingCommand) -> Answer {
        let cluster = req.required_str("cluster")?;
        let list: TopicList = self.routes().topics_of_cluster(cluster);
        Ok(json_answer(&list))
    }

    /// UPDATE_NAMESRV_CONFIG: applies [`RUNTIME_KEYS`] (in memory only; Java also rewrites its
    /// `configStorePath`). A body naming any other key changes nothing: NO_PERMISSION for keys
    /// that need a restart, SYSTEM_ERROR for unknown keys or bad values.
    fn update_config(&self, req: &RemotingCommand) -> Answer {
        if req.body.is_empty() {
            return Ok(ok());
        }
        let text = std::str::from_utf8(&req.body)
            .map_err(|_| Reply::new(response::SYSTEM_ERROR, "string2Properties error: the body is not UTF-8"))?;
        let entries = properties::parse(text)
            .map_err(|e| Reply::new(response::SYSTEM_ERROR, format!("string2Properties error: {e}")))?;
        let mut updated = self.config();
        let mut fixed = Vec::new();
        let mut unknown = Vec::new();
        for entry in &entries {
            let key = entry.key.as_str();
            let known =
                updated.apply(key, &entry.value).map_err(|e| Reply::new(response::SYSTEM_ERROR, e.to_string()))?;
            if !known {
                unknown.push(key);
            } else if !RUNTIME_KEYS.contains(&key) {
                fixed.push(key);
            }
        }
        if !unknown.is_empty() {
            return Err(Reply::new(
                response::SYSTEM_ERROR,
                format!("unknown name server config keys: {}", unknown.join(", ")),
            ));
        }
        if !fixed.is_empty() {
            return Err(Reply::new(
                response::NO_PERMISSION,
                format!(
                    "{} cannot change while the name server runs; edit namesrv.properties and restart \
                     (changeable now: {})",
                    fixed.join(", "),
                    RUNTIME_KEYS.join(", ")
                ),
            ));
        }
        tracing::info!(keys = ?entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), "name server config updated");
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = updated;
        Ok(ok())
    }
}

/// `brokerId`: a Java `Long`, which must not be negative here.
fn broker_id(req: &RemotingCommand) -> Result<u64, Reply> {
    let id = req.required::<i64>("brokerId")?;
    u64::try_from(id).map_err(|_| Reply::from(HeaderError::Invalid { field: "brokerId", value: id.to_string() }))
}

impl Handler for Processor {
    async fn handle(&self, conn: Connection, request: RemotingCommand) -> Option<RemotingCommand> {
        let response = self.process(Some(conn.id()), &request).await;
        if request.code == request::REGISTER_BROKER && response.code == response::SUCCESS {
            self.broker_conns.lock().unwrap_or_else(|e| e.into_inner()).insert(conn.id(), conn.clone());
            // The connection may have closed while this registration ran; its close was then
            // handled before the registration was recorded.
            if conn.is_closed() {
                self.on_connection_closed(conn.id());
            }
        }
        Some(response)
    }

    fn connection_closed(&self, conn: &Connection) {
        self.on_connection_closed(conn.id());
    }
}
