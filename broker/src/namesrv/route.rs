//! The route table (Java: `RouteInfoManager`): which brokers exist, in which cluster, at which
//! addresses, which topics they serve with how many queues, and when each broker last registered.
//!
//! The table is plain data; the processor keeps it behind one `RwLock` and passes the time in, so
//! expiry is tested with any clock. Maps are ordered, so every answer lists topics, brokers and
//! queue data sorted by name (Java answers in `HashMap` order).
//!
//! Rules, as in RocketMQ 4.9.4:
//! * A registration adds the broker's name to its cluster and its address under its id; the same
//!   address registered before under another id of that broker name is removed first (a slave
//!   promoted to master).
//! * Only a master (id 0) registration updates queue data, and only when its topic config's
//!   `dataVersion` differs from the one the address last registered with, or the address is new.
//!   Topics are added or updated, never removed by a registration (4.9.4 brokers also register a
//!   single new topic on its own).
//! * A broker that goes away (unregistered, expired, connection closed) leaves `brokerAddrs`; a
//!   broker name left with no address is removed with its cluster membership and its queue data,
//!   and a topic left with no queue data is removed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::protocol::DataVersion;
use crate::protocol::body::{
    BrokerData, ClusterInfo, QueueData, TopicConfigSerializeWrapper, TopicList, TopicRouteData,
};
use crate::protocol::{PERM_READ, PERM_WRITE};

/// The broker id of a master (`MixAll.MASTER_ID`).
pub const MASTER_ID: u64 = 0;

/// `TopicSysFlag.FLAG_UNIT`.
const TOPIC_SYS_FLAG_UNIT: i32 = 0x1;
/// `TopicSysFlag.FLAG_UNIT_SUB`.
const TOPIC_SYS_FLAG_UNIT_SUB: i32 = 0x2;

/// What the table knows of one registered address (Java: `BrokerLiveInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerLive {
    /// When the address last registered (or proved itself unchanged with QUERY_DATA_VERSION).
    pub last_update_ms: u64,
    /// The topic config version of its last registration.
    pub data_version: DataVersion,
    /// The connection it registered over, if any: closing it removes the broker at once.
    pub conn_id: Option<u64>,
    pub ha_server_addr: String,
}

/// One REGISTER_BROKER request, decoded.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    pub cluster_name: &'a str,
    pub broker_addr: &'a str,
    pub broker_name: &'a str,
    pub broker_id: u64,
    pub ha_server_addr: &'a str,
    pub topic_config: &'a TopicConfigSerializeWrapper,
    /// `None` for the pre-3.0.11 body, which has no filter server list.
    pub filter_servers: Option<&'a [String]>,
    pub conn_id: Option<u64>,
}

/// The answer to a registration: the master's addresses, for a slave whose master is live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterResult {
    pub ha_server_addr: Option<String>,
    pub master_addr: Option<String>,
}

/// A broker address removed from the table, with the connection it had registered over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub broker_addr: String,
    pub conn_id: Option<u64>,
}

/// The route table.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// topic → broker name → queue data.
    topic_queues: BTreeMap<String, BTreeMap<String, QueueData>>,
    /// broker name → addresses by id.
    brokers: BTreeMap<String, BrokerData>,
    /// cluster name → broker names.
    clusters: BTreeMap<String, BTreeSet<String>>,
    /// broker address → liveness.
    live: HashMap<String, BrokerLive>,
    /// broker address → filter server addresses.
    filter_servers: HashMap<String, Vec<String>>,
}

impl RouteTable {
    pub fn new() -> RouteTable {
        RouteTable::default()
    }

    /// Records a registration at `now_ms` (Java: `registerBroker`).
    pub fn register(&mut self, reg: &Registration<'_>, now_ms: u64) -> RegisterResult {
        self.clusters.entry(reg.cluster_name.to_owned()).or_default().insert(reg.broker_name.to_owned());

        let mut first = false;
        let broker = self.brokers.entry(reg.broker_name.to_owned()).or_insert_with(|| {
            first = true;
            BrokerData {
                broker_addrs: BTreeMap::new(),
                broker_name: reg.broker_name.to_owned(),
                cluster: reg.cluster_name.to_owned(),
                enable_acting_master: false,
            }
        });
        // One address, one id: a slave promoted to master re-registers its address under id 0.
        broker.broker_addrs.retain(|id, addr| *id == reg.broker_id || addr != reg.broker_addr);
        let old = broker.broker_addrs.insert(reg.broker_id, reg.broker_addr.to_owned());
        if reg.broker_id == MASTER_ID && old.as_deref() != Some(reg.broker_addr) {
            tracing::info!(
                cluster = %broker.cluster,
                broker = %reg.broker_name,
                old = ?old,
                new = %reg.broker_addr,
                "master address changed"
            );
        }
        first |= old.is_none();

        if reg.broker_id == MASTER_ID
            && (first || self.topic_config_changed(reg.broker_addr, &reg.topic_config.data_version))
        {
            for (key, config) in &reg.topic_config.topic_config_table {
                let topic = if config.topic_name.is_empty() { key } else { &config.topic_name };
                let queue = QueueData {
                    broker_name: reg.broker_name.to_owned(),
                    perm: config.perm,
                    read_queue_nums: config.read_queue_nums,
                    topic_sys_flag: config.topic_sys_flag,
                    write_queue_nums: config.write_queue_nums,
                };
                let queues = self.topic_queues.entry(topic.clone()).or_default();
                match queues.get(reg.broker_name) {
                    None => tracing::debug!(%topic, broker = %reg.broker_name, "new topic registered"),
                    Some(old) if *old != queue => {
                        tracing::info!(%topic, broker = %reg.broker_name, ?old, new = ?queue, "topic changed");
                    }
                    Some(_) => {}
                }
                queues.insert(reg.broker_name.to_owned(), queue);
            }
        }

        let live = BrokerLive {
            last_update_ms: now_ms,
            data_version: reg.topic_config.data_version,
            conn_id: reg.conn_id,
            ha_server_addr: reg.ha_server_addr.to_owned(),
        };
        if self.live.insert(reg.broker_addr.to_owned(), live).is_none() {
            tracing::info!(addr = %reg.broker_addr, ha = %reg.ha_server_addr, "new broker registered");
        }

        if let Some(list) = reg.filter_servers {
            if list.is_empty() {
                self.filter_servers.remove(reg.broker_addr);
            } else {
                self.filter_servers.insert(reg.broker_addr.to_owned(), list.to_vec());
            }
        }

        let mut result = RegisterResult::default();
        if reg.broker_id != MASTER_ID
            && let Some(master) = self.brokers.get(reg.broker_name).and_then(|b| b.broker_addrs.get(&MASTER_ID))
            && let Some(master_live) = self.live.get(master)
        {
            result.ha_server_addr = Some(master_live.ha_server_addr.clone());
            result.master_addr = Some(master.clone());
        }
        result
    }

    /// Whether `version` differs from the one `broker_addr` last registered with (true when the
    /// address is not registered).
    pub fn topic_config_changed(&self, broker_addr: &str, version: &DataVersion) -> bool {
        self.live.get(broker_addr).is_none_or(|live| live.data_version != *version)
    }

    /// The topic config version `broker_addr` last registered with.
    pub fn data_version(&self, broker_addr: &str) -> Option<DataVersion> {
        self.live.get(broker_addr).map(|live| live.data_version)
    }

    /// Marks `broker_addr` alive at `now_ms` (a QUERY_DATA_VERSION that found nothing changed).
    pub fn touch(&mut self, broker_addr: &str, now_ms: u64) {
        if let Some(live) = self.live.get_mut(broker_addr) {
            live.last_update_ms = now_ms;
        }
    }

    pub fn live_broker(&self, broker_addr: &str) -> Option<&BrokerLive> {
        self.live.get(broker_addr)
    }

    /// UNREGISTER_BROKER: removes the address from liveness and the id from the broker name
    /// (Java: `unregisterBroker`). Returns whether the address was live.
    pub fn unregister(&mut self, cluster_name: &str, broker_addr: &str, broker_name: &str, broker_id: u64) -> bool {
        let was_live = self.live.remove(broker_addr).is_some();
        self.filter_servers.remove(broker_addr);
        let mut name_gone = false;
        if let Some(broker) = self.brokers.get_mut(broker_name) {
            broker.broker_addrs.remove(&broker_id);
            if broker.broker_addrs.is_empty() {
                self.brokers.remove(broker_name);
                name_gone = true;
            }
        }
        if name_gone {
            if let Some(names) = self.clusters.get_mut(cluster_name) {
                names.remove(broker_name);
                if names.is_empty() {
                    self.clusters.remove(cluster_name);
                }
            }
            self.remove_queues_of(broker_name);
        }
        tracing::info!(addr = %broker_addr, broker = %broker_name, id = broker_id, was_live, "broker unregistered");
        was_live
    }

    /// Removes every address not registered within `expired_ms` of `now_ms`.
    pub fn remove_expired(&mut self, now_ms: u64, expired_ms: u64) -> Vec<Removed> {
        let expired: Vec<String> = self
            .live
            .iter()
            .filter(|(_, live)| live.last_update_ms.saturating_add(expired_ms) < now_ms)
            .map(|(addr, _)| addr.clone())
            .collect();
        let mut removed = Vec::with_capacity(expired.len());
        for addr in expired {
            tracing::warn!(%addr, expired_ms, "broker expired: no registration in time");
            removed.extend(self.remove_broker_addr(&addr));
        }
        removed
    }

    /// Whether any address is due for [`RouteTable::remove_expired`] (checked under a read lock).
    pub fn any_expired(&self, now_ms: u64, expired_ms: u64) -> bool {
        self.live.values().any(|live| live.last_update_ms.saturating_add(expired_ms) < now_ms)
    }

    /// Whether any address registered over connection `conn_id`.
    pub fn has_connection(&self, conn_id: u64) -> bool {
        self.live.values().any(|live| live.conn_id == Some(conn_id))
    }

    /// Removes every address that registered over connection `conn_id` (it closed).
    pub fn remove_connection(&mut self, conn_id: u64) -> Vec<Removed> {
        let addrs: Vec<String> =
            self.live.iter().filter(|(_, live)| live.conn_id == Some(conn_id)).map(|(a, _)| a.clone()).collect();
        let mut removed = Vec::with_capacity(addrs.len());
        for addr in addrs {
            tracing::info!(%addr, conn_id, "broker connection closed; removing the broker");
            removed.extend(self.remove_broker_addr(&addr));
        }
        removed
    }

    /// Java's `onChannelDestroy` for a known address: liveness, filter servers, the address in
    /// its broker name, and the name with its cluster membership and queues if it has no address
    /// left.
    pub fn remove_broker_addr(&mut self, broker_addr: &str) -> Option<Removed> {
        let live = self.live.remove(broker_addr);
        self.filter_servers.remove(broker_addr);
        let mut name_found = None;
        for (name, broker) in &mut self.brokers {
            let before = broker.broker_addrs.len();
            broker.broker_addrs.retain(|_, addr| addr != broker_addr);
            if broker.broker_addrs.len() != before {
                name_found = Some((name.clone(), broker.broker_addrs.is_empty()));
                break;
            }
        }
        if let Some((name, true)) = &name_found {
            self.brokers.remove(name);
            for names in self.clusters.values_mut() {
                names.remove(name);
            }
            self.clusters.retain(|_, names| !names.is_empty());
            self.remove_queues_of(name);
        }
        if live.is_none() && name_found.is_none() {
            return None;
        }
        Some(Removed { broker_addr: broker_addr.to_owned(), conn_id: live.and_then(|l| l.conn_id) })
    }

    fn remove_queues_of(&mut self, broker_name: &str) {
        for queues in self.topic_queues.values_mut() {
            queues.remove(broker_name);
        }
        self.topic_queues.retain(|_, queues| !queues.is_empty());
    }

    /// The route of `topic`, or `None` unless it has queue data and at least one of its brokers
    /// has an address (Java: `pickupTopicRouteData`).
    pub fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let queues = self.topic_queues.get(topic)?;
        let broker_datas: Vec<BrokerData> = queues.keys().filter_map(|name| self.brokers.get(name)).cloned().collect();
        if broker_datas.is_empty() {
            return None;
        }
        let mut filter_server_table = BTreeMap::new();
        if !self.filter_servers.is_empty() {
            for addr in broker_datas.iter().flat_map(|b| b.broker_addrs.values()) {
                if let Some(list) = self.filter_servers.get(addr) {
                    filter_server_table.insert(addr.clone(), list.clone());
                }
            }
        }
        Some(TopicRouteData {
            broker_datas,
            filter_server_table,
            order_topic_conf: None,
            queue_datas: queues.values().cloned().collect(),
        })
    }

    /// Every broker by name and every cluster's broker names.
    pub fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            broker_addr_table: self.brokers.clone(),
            cluster_addr_table: self
                .clusters
                .iter()
                .map(|(cluster, names)| (cluster.clone(), names.iter().cloned().collect()))
                .collect(),
        }
    }

    /// Every topic with queue data.
    pub fn topics(&self) -> TopicList {
        TopicList { broker_addr: None, topic_list: self.topic_queues.keys().cloned().collect() }
    }

    /// Topics with queue data on a broker of `cluster` (empty for an unknown cluster).
    pub fn topics_of_cluster(&self, cluster: &str) -> TopicList {
        let Some(names) = self.clusters.get(cluster) else { return TopicList::default() };
        let topic_list = self
            .topic_queues
            .iter()
            .filter(|(_, queues)| queues.keys().any(|name| names.contains(name)))
            .map(|(topic, _)| topic.clone())
            .collect();
        TopicList { broker_addr: None, topic_list }
    }

    /// GET_SYSTEM_TOPIC_LIST_FROM_NS: cluster names and broker names (each is a topic a broker
    /// creates for itself), and one broker address to ask for more.
    pub fn system_topics(&self) -> TopicList {
        let mut names = BTreeSet::new();
        for (cluster, brokers) in &self.clusters {
            names.insert(cluster.clone());
            names.extend(brokers.iter().cloned());
        }
        let broker_addr = self.brokers.values().find_map(|b| b.broker_addrs.values().next().cloned());
        TopicList { broker_addr, topic_list: names.into_iter().collect() }
    }

    /// Topics whose first queue data's `topicSysFlag` satisfies `pick` (as Java, which looks at
    /// one queue data per topic).
    pub fn topics_by_sys_flag(&self, pick: impl Fn(i32) -> bool) -> TopicList {
        let topic_list = self
            .topic_queues
            .iter()
            .filter(|(_, queues)| queues.values().next().is_some_and(|q| pick(q.topic_sys_flag)))
            .map(|(topic, _)| topic.clone())
            .collect();
        TopicList { broker_addr: None, topic_list }
    }

    /// GET_UNIT_TOPIC_LIST.
    pub fn unit_topics(&self) -> TopicList {
        self.topics_by_sys_flag(|flag| flag & TOPIC_SYS_FLAG_UNIT != 0)
    }

    /// GET_HAS_UNIT_SUB_TOPIC_LIST.
    pub fn has_unit_sub_topics(&self) -> TopicList {
        self.topics_by_sys_flag(|flag| flag & TOPIC_SYS_FLAG_UNIT_SUB != 0)
    }

    /// GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST.
    pub fn has_unit_sub_ununit_topics(&self) -> TopicList {
        self.topics_by_sys_flag(|flag| flag & TOPIC_SYS_FLAG_UNIT == 0 && flag & TOPIC_SYS_FLAG_UNIT_SUB != 0)
    }

    /// DELETE_TOPIC_IN_NAMESRV: the whole topic, or with a cluster only its brokers' queue data.
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        match cluster {
            None => {
                self.topic_queues.remove(topic);
            }
            Some(cluster) => {
                let (Some(names), Some(queues)) = (self.clusters.get(cluster), self.topic_queues.get_mut(topic)) else {
                    return;
                };
                queues.retain(|name, _| !names.contains(name));
                if queues.is_empty() {
                    self.topic_queues.remove(topic);
                }
            }
        }
    }

    /// WIPE_WRITE_PERM_OF_BROKER (`wipe`) clears the write bit of every queue data of
    /// `broker_name`; ADD_WRITE_PERM_OF_BROKER sets the perm to read and write (as Java does, which
    /// drops other bits). Returns the number of topics touched.
    pub fn set_write_perm(&mut self, broker_name: &str, wipe: bool) -> u32 {
        let mut count = 0;
        for queue in self.topic_queues.values_mut().filter_map(|queues| queues.get_mut(broker_name)) {
            queue.perm = if wipe { queue.perm & !PERM_WRITE } else { PERM_READ | PERM_WRITE };
            count += 1;
        }
        count
    }
}
