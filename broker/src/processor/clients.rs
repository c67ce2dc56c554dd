//! Who is connected: consumer groups (members, subscriptions, NOTIFY_CONSUMER_IDS_CHANGED on
//! membership change), producer groups (for transaction check-backs), subscription group configs,
//! and the heartbeat / unregister / consumer-list / client-config requests.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::{BrokerInner, ok};
use crate::filter::Subscription;
use crate::protocol::body::{self, ConsumerData, ConsumerIdList, HeartbeatData, SubscriptionData};
use crate::protocol::{Headers, PERM_READ, PERM_WRITE, SubscriptionGroupConfig, request, retry_topic};
use crate::remoting::{Connection, RemotingCommand};
use crate::store::metadata::MetadataFiles;

/// A client that has not sent a heartbeat for this long is dropped (Java: 120 s).
pub const CLIENT_EXPIRED_MS: u64 = 120_000;

/// One member of a consumer or producer group.
#[derive(Clone)]
pub struct Member {
    pub conn: Connection,
    pub client_id: String,
    pub language: &'static str,
    pub version: i32,
    pub last_update: Instant,
}

/// A subscription as the pull path uses it: the client's data and its parsed filter.
#[derive(Clone)]
pub struct ActiveSubscription {
    pub data: SubscriptionData,
    pub filter: Arc<Subscription>,
}

#[derive(Default)]
pub struct ConsumerGroup {
    pub members: HashMap<u64, Member>,
    pub subscriptions: HashMap<String, ActiveSubscription>,
    pub consume_type: String,
    pub message_model: String,
    pub consume_from_where: String,
    pub last_update: Option<Instant>,
}

impl ConsumerGroup {
    pub fn client_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.members.values().map(|m| m.client_id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

#[derive(Default)]
pub struct Clients {
    consumers: RwLock<HashMap<String, ConsumerGroup>>,
    producers: RwLock<HashMap<String, HashMap<u64, Member>>>,
}

impl Clients {
    /// Registers or refreshes a consumer; returns true if the group's membership changed.
    fn register_consumer(&self, member: Member, data: &ConsumerData) -> Result<bool> {
        let mut subs = HashMap::new();
        for s in &data.subscription_data_set {
            let filter = Subscription::parse(s.expression_type.as_deref(), &s.sub_string).map_err(|e| {
                Error::SubscriptionParseFailed(format!("subscription {:?} of {}: {e}", s.sub_string, s.topic))
            })?;
            subs.insert(s.topic.clone(), ActiveSubscription { data: s.clone(), filter: Arc::new(filter) });
        }
        let mut groups = self.consumers.write().unwrap_or_else(|e| e.into_inner());
        let group = groups.entry(data.group_name.clone()).or_default();
        let id = member.conn.id();
        let changed = match group.members.get(&id) {
            Some(old) => old.client_id != member.client_id,
            None => true,
        };
        group.members.insert(id, member);
        group.consume_type = data.consume_type.clone().unwrap_or_default();
        group.message_model = data.message_model.clone().unwrap_or_default();
        group.consume_from_where = data.consume_from_where.clone().unwrap_or_default();
        group.last_update = Some(Instant::now());
        // Keep an unchanged subscription's filter (and its version) as it is.
        for (topic, sub) in subs {
            match group.subscriptions.get(&topic) {
                Some(old)
                    if old.data.sub_string == sub.data.sub_string
                        && old.data.expression_type == sub.data.expression_type =>
                {
                    if sub.data.sub_version > old.data.sub_version {
                        group.subscriptions.insert(topic, sub);
                    }
                }
                _ => {
                    group.subscriptions.insert(topic, sub);
                }
            }
        }
        Ok(changed)
    }

    fn register_producer(&self, group: &str, member: Member) {
        let mut producers = self.producers.write().unwrap_or_else(|e| e.into_inner());
        producers.entry(group.to_owned()).or_default().insert(member.conn.id(), member);
    }

    /// Removes one connection from a consumer group; returns the remaining members to notify.
    fn unregister_consumer(&self, group: &str, conn_id: u64) -> Option<Vec<Connection>> {
        let mut groups = self.consumers.write().unwrap_or_else(|e| e.into_inner());
        let g = groups.get_mut(group)?;
        g.members.remove(&conn_id)?;
        if g.members.is_empty() {
            groups.remove(group);
            return Some(Vec::new());
        }
        Some(g.members.values().map(|m| m.conn.clone()).collect())
    }

    fn unregister_producer(&self, group: &str, conn_id: u64) {
        let mut producers = self.producers.write().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = producers.get_mut(group) {
            g.remove(&conn_id);
            if g.is_empty() {
                producers.remove(group);
            }
        }
    }

    /// Drops a connection everywhere; returns (group, members left) for each consumer group it
    /// was in, so the caller can notify them.
    pub fn connection_closed(&self, conn_id: u64) -> Vec<(String, Vec<Connection>)> {
        let groups: Vec<String> = {
            let g = self.consumers.read().unwrap_or_else(|e| e.into_inner());
            g.iter().filter(|(_, v)| v.members.contains_key(&conn_id)).map(|(k, _)| k.clone()).collect()
        };
        let mut out = Vec::new();
        for group in groups {
            if let Some(left) = self.unregister_consumer(&group, conn_id) {
                out.push((group, left));
            }
        }
        let pgroups: Vec<String> = {
            let p = self.producers.read().unwrap_or_else(|e| e.into_inner());
            p.iter().filter(|(_, v)| v.contains_key(&conn_id)).map(|(k, _)| k.clone()).collect()
        };
        for g in pgroups {
            self.unregister_producer(&g, conn_id);
        }
        out
    }

    /// Members whose last heartbeat is older than [`CLIENT_EXPIRED_MS`]; closes and removes them.
    pub fn expire(&self, now: Instant) -> Vec<(String, Vec<Connection>)> {
        let limit = Duration::from_millis(CLIENT_EXPIRED_MS);
        let mut stale = Vec::new();
        {
            let g = self.consumers.read().unwrap_or_else(|e| e.into_inner());
            for (group, info) in g.iter() {
                for m in info.members.values() {
                    if now.duration_since(m.last_update) > limit {
                        stale.push(m.conn.clone());
                        tracing::info!(group, client = %m.client_id, "consumer expired (no heartbeat for 120 s)");
                    }
                }
            }
            let p = self.producers.read().unwrap_or_else(|e| e.into_inner());
            for members in p.values() {
                for m in members.values() {
                    if now.duration_since(m.last_update) > limit {
                        stale.push(m.conn.clone());
                    }
                }
            }
        }
        let mut out = Vec::new();
        for conn in stale {
            out.extend(self.connection_closed(conn.id()));
            conn.close();
        }
        out
    }

    pub fn with_group<T>(&self, group: &str, f: impl FnOnce(&ConsumerGroup) -> T) -> Option<T> {
        self.consumers.read().unwrap_or_else(|e| e.into_inner()).get(group).map(f)
    }

    pub fn consumer_group_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.consumers.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        v.sort();
        v
    }

    pub fn subscription(&self, group: &str, topic: &str) -> Option<ActiveSubscription> {
        self.consumers.read().unwrap_or_else(|e| e.into_inner()).get(group)?.subscriptions.get(topic).cloned()
    }

    /// Consumer groups with a subscription to `topic`.
    pub fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        let g = self.consumers.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<String> =
            g.iter().filter(|(_, info)| info.subscriptions.contains_key(topic)).map(|(k, _)| k.clone()).collect();
        v.sort();
        v
    }

    /// A live connection of a producer group (the transaction check-back goes there).
    pub fn producer_channel(&self, group: &str) -> Option<Connection> {
        let p = self.producers.read().unwrap_or_else(|e| e.into_inner());
        p.get(group)?.values().filter(|m| !m.conn.is_closed()).max_by_key(|m| m.last_update).map(|m| m.conn.clone())
    }

    pub fn producer_members(&self, group: &str) -> Vec<Member> {
        let p = self.producers.read().unwrap_or_else(|e| e.into_inner());
        p.get(group).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    pub fn consumer_members(&self, group: &str) -> Vec<Member> {
        self.with_group(group, |g| g.members.values().cloned().collect()).unwrap_or_default()
    }
}

/// Subscription group configs (`subscriptionGroup.json`), auto-created as 4.9.4 does.
pub struct Groups {
    table: RwLock<HashMap<String, Arc<SubscriptionGroupConfig>>>,
    meta: Arc<MetadataFiles>,
    auto_create: bool,
}

impl Groups {
    pub fn load(meta: Arc<MetadataFiles>, auto_create: bool) -> Groups {
        let table = meta
            .subscription_groups()
            .subscription_group_table
            .iter()
            .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
            .collect();
        Groups { table: RwLock::new(table), meta, auto_create }
    }

    pub fn get(&self, group: &str) -> Option<Arc<SubscriptionGroupConfig>> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).get(group).cloned()
    }

    /// `findSubscriptionGroupConfig`: the group's config, created with defaults when
    /// `autoCreateSubscriptionGroup` is on.
    pub fn find_or_create(&self, group: &str) -> Option<Arc<SubscriptionGroupConfig>> {
        if let Some(g) = self.get(group) {
            return Some(g);
        }
        if !self.auto_create {
            return None;
        }
        let created = {
            let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
            if let Some(g) = t.get(group) {
                return Some(g.clone());
            }
            let g = Arc::new(SubscriptionGroupConfig::new(group));
            t.insert(group.to_owned(), g.clone());
            g
        };
        tracing::info!(group, "auto-created subscription group");
        self.persist();
        Some(created)
    }

    pub fn put(&self, config: SubscriptionGroupConfig) {
        self.table.write().unwrap_or_else(|e| e.into_inner()).insert(config.group_name.clone(), Arc::new(config));
        self.persist();
    }

    /// A slave takes its master's whole group table (4.9.4's `syncSubscriptionGroupConfig`);
    /// returns whether anything changed.
    pub fn replace_all(&self, table: std::collections::BTreeMap<String, SubscriptionGroupConfig>) -> bool {
        if !super::topics::replace_table(&self.table, table) {
            return false;
        }
        self.persist();
        true
    }

    pub fn remove(&self, group: &str) -> bool {
        let existed = self.table.write().unwrap_or_else(|e| e.into_inner()).remove(group).is_some();
        if existed {
            self.persist();
        }
        existed
    }

    pub fn all(&self) -> Vec<Arc<SubscriptionGroupConfig>> {
        let mut v: Vec<_> = self.table.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        v.sort_by(|a, b| a.group_name.cmp(&b.group_name));
        v
    }

    pub fn persist(&self) {
        let snapshot: Vec<Arc<SubscriptionGroupConfig>> =
            self.table.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        {
            let mut file = self.meta.subscription_groups();
            file.subscription_group_table = snapshot.iter().map(|g| (g.group_name.clone(), (**g).clone())).collect();
            file.data_version.next();
        }
        if let Err(e) = self.meta.persist_subscription_groups() {
            tracing::error!(error = %e, "could not persist subscriptionGroup.json");
        }
    }
}

fn member(conn: &Connection, req: &RemotingCommand, client_id: &str) -> Member {
    Member {
        conn: conn.clone(),
        client_id: client_id.to_owned(),
        language: req.language_name(),
        version: req.version,
        last_update: Instant::now(),
    }
}

/// HEART_BEAT (34).
pub fn heartbeat(broker: &BrokerInner, conn: &Connection, req: &RemotingCommand) -> Result<RemotingCommand> {
    let hb: HeartbeatData = body::parse(&req.body).map_err(Error::Body)?;
    for data in &hb.consumer_data_set {
        let Some(group_config) = broker.groups.find_or_create(&data.group_name) else {
            continue;
        };
        // Every consumer group gets its retry topic (createTopicInSendMessageBackMethod).
        let topic_sys_flag = if data.unit_mode { 1 } else { 0 };
        broker.topics.create_if_absent(
            &retry_topic(&data.group_name),
            group_config.retry_queue_nums.max(1),
            PERM_READ | PERM_WRITE,
            topic_sys_flag,
        );
        let changed = broker.clients.register_consumer(member(conn, req, &hb.client_id), data)?;
        if changed {
            tracing::info!(group = %data.group_name, client = %hb.client_id, "consumer group membership changed");
            if group_config.notify_consumer_ids_changed_enable {
                notify_ids_changed(broker, &data.group_name);
            }
        }
    }
    for p in &hb.producer_data_set {
        broker.clients.register_producer(&p.group_name, member(conn, req, &hb.client_id));
    }
    Ok(ok())
}

/// Sends NOTIFY_CONSUMER_IDS_CHANGED (oneway) to every member of `group`.
pub fn notify_ids_changed(broker: &BrokerInner, group: &str) {
    let members = broker.clients.consumer_members(group);
    notify_connections(group, members.iter().map(|m| &m.conn));
}

pub fn notify_connections<'a>(group: &str, conns: impl Iterator<Item = &'a Connection>) {
    for conn in conns {
        conn.send_oneway(
            RemotingCommand::request(request::NOTIFY_CONSUMER_IDS_CHANGED).with_field("consumerGroup", group),
        );
    }
}

/// UNREGISTER_CLIENT (35).
pub fn unregister_client(broker: &BrokerInner, conn: &Connection, req: &RemotingCommand) -> Result<RemotingCommand> {
    if let Some(group) = req.optional::<String>("producerGroup")? {
        broker.clients.unregister_producer(&group, conn.id());
    }
    if let Some(group) = req.optional::<String>("consumerGroup")?
        && let Some(left) = broker.clients.unregister_consumer(&group, conn.id())
    {
        let notify = broker.groups.get(&group).is_none_or(|g| g.notify_consumer_ids_changed_enable);
        if notify {
            notify_connections(&group, left.iter());
        }
    }
    Ok(ok())
}

/// GET_CONSUMER_LIST_BY_GROUP (38).
pub fn consumer_list(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let group: String = req.required("consumerGroup")?;
    match broker.clients.with_group(&group, |g| g.client_ids()) {
        Some(ids) if !ids.is_empty() => Ok(ok().with_body(body::to_json(&ConsumerIdList { consumer_id_list: ids }))),
        _ => Err(Error::System(format!("no consumer for this group, {group}"))),
    }
}

/// CHECK_CLIENT_CONFIG (46): is this (SQL92) subscription acceptable?
pub fn check_client_config(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct CheckClientRequestBody {
        #[serde(default)]
        subscription_data: Option<SubscriptionData>,
    }
    let body: CheckClientRequestBody = body::parse(&req.body).map_err(Error::Body)?;
    if let Some(s) = body.subscription_data {
        let parsed = Subscription::parse(s.expression_type.as_deref(), &s.sub_string)
            .map_err(|e| Error::SubscriptionParseFailed(format!("{e}")))?;
        if matches!(parsed, Subscription::Sql(_)) && !broker.config.enable_property_filter {
            return Err(Error::System("The broker does not support consumer to filter message by SQL92".into()));
        }
    }
    Ok(ok())
}
