//! The broker's topic table: system topics created at start, auto-creation from `TBW102` on send,
//! retry/DLQ topics created on demand, persisted to `topics.json`, and the snapshot sent to the
//! name servers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

use crate::config::BrokerConfig;
use crate::protocol::body::TopicConfigSerializeWrapper;
use crate::protocol::{AUTO_CREATE_TOPIC, PERM_INHERIT, PERM_READ, PERM_WRITE, TopicConfig};
use crate::store::metadata::MetadataFiles;

/// The topics every 4.9.4 broker creates at start (name, queues).
fn system_topics(config: &BrokerConfig) -> Vec<(String, u32, u32)> {
    let mut v = vec![
        ("SELF_TEST_TOPIC".to_owned(), 1, PERM_READ | PERM_WRITE),
        ("BenchmarkTest".to_owned(), 1024, PERM_READ | PERM_WRITE),
        (config.broker_cluster_name.clone(), 16, PERM_READ | PERM_WRITE),
        (config.broker_name.clone(), 1, PERM_READ | PERM_WRITE),
        ("OFFSET_MOVED_EVENT".to_owned(), 1, PERM_READ | PERM_WRITE),
        ("SCHEDULE_TOPIC_XXXX".to_owned(), 18, PERM_READ | PERM_WRITE),
        (format!("{}_REPLY_TOPIC", config.broker_cluster_name), 1, PERM_READ | PERM_WRITE),
    ];
    if config.auto_create_topic_enable {
        v.push((AUTO_CREATE_TOPIC.to_owned(), config.default_topic_queue_nums, PERM_READ | PERM_WRITE | PERM_INHERIT));
    }
    if config.trace_topic_enable {
        v.push((config.msg_trace_topic_name.clone(), 1, PERM_READ | PERM_WRITE));
    }
    v
}

pub struct Topics {
    table: RwLock<HashMap<String, Arc<TopicConfig>>>,
    meta: Arc<MetadataFiles>,
    /// Woken when the table changes, so the broker re-registers with the name servers at once.
    pub changed: Arc<Notify>,
    /// Counts changes: a request that created a topic sees it move and registers before answering.
    generation: AtomicU64,
}

impl Topics {
    pub fn load(config: &BrokerConfig, meta: Arc<MetadataFiles>) -> Topics {
        let mut table: HashMap<String, Arc<TopicConfig>> =
            meta.topics().topic_config_table.iter().map(|(k, v)| (k.clone(), Arc::new(v.clone()))).collect();
        let mut added = false;
        for (name, queues, perm) in system_topics(config) {
            if let std::collections::hash_map::Entry::Vacant(slot) = table.entry(name.clone()) {
                let mut tc = TopicConfig::new(name);
                tc.read_queue_nums = queues;
                tc.write_queue_nums = queues;
                tc.perm = perm;
                slot.insert(Arc::new(tc));
                added = true;
            }
        }
        let topics =
            Topics { table: RwLock::new(table), meta, changed: Arc::new(Notify::new()), generation: AtomicU64::new(0) };
        if added {
            topics.persist();
        }
        topics
    }

    pub fn get(&self, topic: &str) -> Option<Arc<TopicConfig>> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).get(topic).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.table.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        v.sort();
        v
    }

    pub fn all(&self) -> Vec<Arc<TopicConfig>> {
        let mut v: Vec<Arc<TopicConfig>> =
            self.table.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        v.sort_by(|a, b| a.topic_name.cmp(&b.topic_name));
        v
    }

    /// Creates or replaces a topic (UPDATE_AND_CREATE_TOPIC), persists, and asks for a
    /// re-registration.
    pub fn put(&self, tc: TopicConfig) {
        self.table.write().unwrap_or_else(|e| e.into_inner()).insert(tc.topic_name.clone(), Arc::new(tc));
        self.persist();
        self.changed.notify_one();
    }

    /// A slave takes its master's whole topic table (4.9.4's `syncTopicConfig`); returns whether
    /// anything changed.
    pub fn replace_all(&self, table: std::collections::BTreeMap<String, TopicConfig>) -> bool {
        if !replace_table(&self.table, table) {
            return false;
        }
        self.persist();
        self.changed.notify_one();
        true
    }

    /// Removes a topic; returns whether it existed.
    pub fn remove(&self, topic: &str) -> bool {
        let existed = self.table.write().unwrap_or_else(|e| e.into_inner()).remove(topic).is_some();
        if existed {
            self.persist();
            self.changed.notify_one();
        }
        existed
    }

    /// 4.9.4's `createTopicInSendMessageMethod`: a topic created on first send from the default
    /// topic's settings, if that topic may be inherited.
    pub fn create_on_send(
        &self,
        topic: &str,
        default_topic: &str,
        queue_nums: u32,
        sys_flag: i32,
    ) -> Option<Arc<TopicConfig>> {
        if let Some(tc) = self.get(topic) {
            return Some(tc);
        }
        let default = self.get(default_topic)?;
        if default_topic == AUTO_CREATE_TOPIC && default.perm & PERM_INHERIT == 0 {
            return None;
        }
        if default.perm & PERM_INHERIT == 0 {
            return None;
        }
        let mut tc = TopicConfig::new(topic);
        let queues = queue_nums.clamp(1, default.write_queue_nums.max(1));
        tc.read_queue_nums = queues;
        tc.write_queue_nums = queues;
        tc.perm = default.perm & !PERM_INHERIT;
        tc.topic_sys_flag = sys_flag;
        tc.topic_filter_type = default.topic_filter_type;
        tracing::info!(topic, from = default_topic, queues, "auto-created topic on send");
        Some(self.insert_new(tc))
    }

    /// 4.9.4's `createTopicInSendMessageBackMethod`: retry and DLQ topics.
    pub fn create_if_absent(&self, topic: &str, queues: u32, perm: u32, sys_flag: i32) -> Arc<TopicConfig> {
        if let Some(tc) = self.get(topic) {
            return tc;
        }
        let mut tc = TopicConfig::new(topic);
        tc.read_queue_nums = queues;
        tc.write_queue_nums = queues;
        tc.perm = perm;
        tc.topic_sys_flag = sys_flag;
        self.insert_new(tc)
    }

    fn insert_new(&self, tc: TopicConfig) -> Arc<TopicConfig> {
        let created = {
            let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
            if let Some(existing) = table.get(&tc.topic_name) {
                return existing.clone();
            }
            let tc = Arc::new(tc);
            table.insert(tc.topic_name.clone(), tc.clone());
            tc
        };
        self.persist();
        self.changed.notify_one();
        created
    }

    /// A number that changes whenever a topic is created, changed or removed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Writes `topics.json` (new data version).
    pub fn persist(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let snapshot: Vec<Arc<TopicConfig>> =
            self.table.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        {
            let mut file = self.meta.topics();
            file.topic_config_table = snapshot.iter().map(|tc| (tc.topic_name.clone(), (**tc).clone())).collect();
            file.data_version.next();
        }
        if let Err(e) = self.meta.persist_topics() {
            tracing::error!(error = %e, "could not persist topics.json");
        }
    }

    /// What REGISTER_BROKER sends. With the broker's permission lacking read or write, every
    /// topic advertises the reduced permission (as 4.9.4 does after `wipeWritePermOfBroker`).
    pub fn register_snapshot(&self, broker_permission: u32) -> TopicConfigSerializeWrapper {
        let data_version = self.meta.topics().data_version;
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let topic_config_table = table
            .values()
            .map(|tc| {
                let mut tc = (**tc).clone();
                if broker_permission & (PERM_READ | PERM_WRITE) != PERM_READ | PERM_WRITE {
                    tc.perm &= broker_permission | PERM_INHERIT;
                }
                (tc.topic_name.clone(), tc)
            })
            .collect();
        TopicConfigSerializeWrapper { data_version, topic_config_table }
    }
}

/// Makes `current` hold exactly `table` (a slave taking its master's table); returns whether
/// anything changed (nothing is written when not).
pub(crate) fn replace_table<V: PartialEq>(
    current: &RwLock<HashMap<String, Arc<V>>>,
    table: std::collections::BTreeMap<String, V>,
) -> bool {
    let same = {
        let now = current.read().unwrap_or_else(|e| e.into_inner());
        now.len() == table.len() && table.iter().all(|(k, v)| now.get(k).is_some_and(|c| **c == *v))
    };
    if !same {
        *current.write().unwrap_or_else(|e| e.into_inner()) =
            table.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
    }
    !same
}
