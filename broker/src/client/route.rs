//! The route cache: topic routes from the name servers, the queues producers and consumers derive
//! from them, and the broker addresses every route has named.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::lock;
use crate::protocol::body::{MessageQueue, TopicRouteData};
use crate::protocol::{PERM_READ, PERM_WRITE};

/// A topic's route and the queues derived from it.
#[derive(Debug, Clone)]
pub struct TopicRoute {
    pub topic: String,
    pub route: Arc<TopicRouteData>,
    /// Queues producers send to: `writeQueueNums` per broker whose queue data is writable and
    /// that has a master (id 0), brokers in name order.
    pub write_queues: Vec<MessageQueue>,
    /// Queues consumers read: `readQueueNums` per broker whose queue data is readable.
    pub read_queues: Vec<MessageQueue>,
    /// Borrowed from `TBW102` because the topic is not known yet.
    pub fallback: bool,
    fetched: Instant,
}

impl TopicRoute {
    /// Derives the queue lists of `route` for `topic`.
    pub fn new(topic: &str, route: TopicRouteData, fallback: bool) -> TopicRoute {
        let mut queue_datas: Vec<_> = route.queue_datas.iter().collect();
        queue_datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
        let mut write_queues = Vec::new();
        let mut read_queues = Vec::new();
        for qd in queue_datas {
            let has_master = route
                .broker_datas
                .iter()
                .any(|bd| bd.broker_name == qd.broker_name && bd.broker_addrs.contains_key(&0));
            if qd.perm & PERM_WRITE != 0 && has_master {
                write_queues.extend((0..qd.write_queue_nums).map(|queue_id| MessageQueue {
                    broker_name: qd.broker_name.clone(),
                    queue_id,
                    topic: topic.to_owned(),
                }));
            }
            if qd.perm & PERM_READ != 0 {
                read_queues.extend((0..qd.read_queue_nums).map(|queue_id| MessageQueue {
                    broker_name: qd.broker_name.clone(),
                    queue_id,
                    topic: topic.to_owned(),
                }));
            }
        }
        TopicRoute {
            topic: topic.to_owned(),
            route: Arc::new(route),
            write_queues,
            read_queues,
            fallback,
            fetched: Instant::now(),
        }
    }
}

/// Routes by topic and broker addresses by broker name; shared by the tasks of one client.
pub struct RouteCache {
    ttl: Duration,
    fallback_ttl: Duration,
    topics: Mutex<HashMap<String, Arc<TopicRoute>>>,
    /// brokerName → brokerId → address, from every route seen.
    brokers: Mutex<BTreeMap<String, BTreeMap<u64, String>>>,
}

impl RouteCache {
    pub fn new(ttl: Duration, fallback_ttl: Duration) -> RouteCache {
        RouteCache { ttl, fallback_ttl, topics: Mutex::new(HashMap::new()), brokers: Mutex::new(BTreeMap::new()) }
    }

    /// The cached route of `topic` if it is younger than its time to live.
    pub fn fresh(&self, topic: &str) -> Option<Arc<TopicRoute>> {
        let topics = lock(&self.topics);
        let r = topics.get(topic)?;
        let ttl = if r.fallback { self.fallback_ttl } else { self.ttl };
        (r.fetched.elapsed() < ttl).then(|| r.clone())
    }

    /// The cached route of `topic`, however old.
    pub fn get(&self, topic: &str) -> Option<Arc<TopicRoute>> {
        lock(&self.topics).get(topic).cloned()
    }

    /// Stores `route` for `topic` and learns its broker addresses.
    pub fn store(&self, topic: &str, route: TopicRouteData, fallback: bool) -> Arc<TopicRoute> {
        {
            let mut brokers = lock(&self.brokers);
            for bd in &route.broker_datas {
                brokers.insert(bd.broker_name.clone(), bd.broker_addrs.clone());
            }
        }
        let r = Arc::new(TopicRoute::new(topic, route, fallback));
        lock(&self.topics).insert(topic.to_owned(), r.clone());
        r
    }

    /// Forgets `topic`'s route, so the next use fetches it again.
    pub fn invalidate(&self, topic: &str) {
        lock(&self.topics).remove(topic);
    }

    /// The address of `broker_name`'s broker `broker_id` (0 = master).
    pub fn broker_addr(&self, broker_name: &str, broker_id: u64) -> Option<String> {
        lock(&self.brokers).get(broker_name)?.get(&broker_id).cloned()
    }

    /// Any address of `broker_name`, the master first.
    pub fn any_broker_addr(&self, broker_name: &str) -> Option<String> {
        lock(&self.brokers).get(broker_name)?.values().next().cloned()
    }

    /// Every known broker address (masters only if asked).
    pub fn all_broker_addrs(&self, masters_only: bool) -> Vec<String> {
        let brokers = lock(&self.brokers);
        let mut out: Vec<String> = brokers
            .values()
            .flat_map(|addrs| addrs.iter())
            .filter(|(id, _)| !masters_only || **id == 0)
            .map(|(_, a)| a.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The broker names known, with their addresses by id.
    pub fn brokers(&self) -> BTreeMap<String, BTreeMap<u64, String>> {
        lock(&self.brokers).clone()
    }
}
