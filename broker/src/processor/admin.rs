//! The admin request codes that mqadmin, rocketmq-dashboard and rocketmq-exporter send, with
//! 4.9.4's header fields and JSON bodies (shapes in [`crate::admin::body`]).
//!
//! | code | request | answer |
//! |---|---|---|
//! | 17 | UPDATE_AND_CREATE_TOPIC | name checked, persisted, re-registered at once |
//! | 215 | DELETE_TOPIC_IN_BROKER | the topic config is removed (its queues stay on disk until retention) |
//! | 21 | GET_ALL_TOPIC_CONFIG | `TopicConfigSerializeWrapper` |
//! | 25 / 26 | UPDATE_BROKER_CONFIG / GET_BROKER_CONFIG | update refused; get: `key=value` lines, header `version` |
//! | 28 | GET_BROKER_RUNTIME_INFO | `KVTable` with the keys the exporter and dashboard parse |
//! | 200 / 201 / 207 | subscription groups | create or update / all / delete (`removeOffset`) |
//! | 202 | GET_TOPIC_STATS_INFO | `TopicStatsTable` (object keys) |
//! | 203 / 204 | consumer / producer connections | `ConsumerConnection` (206 when offline) / `ProducerConnection` |
//! | 208 | GET_CONSUME_STATS | `ConsumeStats` (object keys) |
//! | 43 / 45 | GET_ALL_CONSUMER_OFFSET / GET_ALL_DELAY_OFFSET | the two offset files |
//! | 222 | INVOKE_BROKER_TO_RESET_OFFSET | offsets committed here, RESET_CONSUMER_CLIENT_OFFSET (220) to online members |
//! | 300 | QUERY_TOPIC_CONSUME_BY_WHO | `GroupList` |
//!
//! Throughput figures (`putTps`, `getTransferedTps`, `consumeTps`) come from a sampler started on
//! the first admin request: once a second it records the broker's put/get counters, every 10 s
//! the sum of committed offsets per `topic@group`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::{BrokerInner, offsets, ok};
use crate::admin::body::{
    Connection as ConnectionInfo, ConsumeStats, ConsumerConnection, GroupList, OffsetWrapper, ProducerConnection,
    ResetOffsetBody, TopicOffset, TopicStatsTable, version_desc,
};
use crate::protocol::body::{self, KvTable, MessageQueue, TopicConfigSerializeWrapper};
use crate::protocol::{
    AUTO_CREATE_TOPIC, GROUP_NAME_BYTES_MAX, Headers, PERM_INHERIT, PERM_READ, PERM_WRITE, SubscriptionGroupConfig,
    TopicConfig, TopicFilterType, check_topic_name, request, response, valid_resource_name,
};
use crate::remoting::{Connection, RemotingCommand, VERSION_4_9_4};
use crate::store::metadata::SubscriptionGroupTable;

/// Most queues UPDATE_AND_CREATE_TOPIC accepts per topic (the largest system topic has 1024).
pub const TOPIC_QUEUE_NUMS_MAX: u32 = 1024;
/// Put/get samples kept: one a second for the 10-minute TPS window.
const RATE_SAMPLES_MAX: usize = 601;
/// Offset snapshots kept: one every 10 s for the 1-minute consume TPS window.
const OFFSET_SNAPSHOTS_MAX: usize = 7;
const OFFSET_SNAPSHOT_EVERY_TICKS: u64 = 10;
/// `PermName.PERM_PRIORITY`, the fourth permission bit.
const PERM_PRIORITY: u32 = 8;
/// The topic prefix RocketMQ reserves for system topics.
const SYSTEM_TOPIC_PREFIX: &str = "rmq_sys_";

/// Answers an admin request, or `None` when `req.code` is not an admin code we serve.
pub async fn handle(
    broker: &Arc<BrokerInner>,
    conn: &Connection,
    req: &RemotingCommand,
) -> Option<Result<RemotingCommand>> {
    let _ = conn;
    let result = match req.code {
        request::UPDATE_AND_CREATE_TOPIC => update_and_create_topic(broker, req),
        request::DELETE_TOPIC_IN_BROKER => delete_topic(broker, req),
        request::GET_ALL_TOPIC_CONFIG => Ok(all_topic_config(broker)),
        request::UPDATE_BROKER_CONFIG => Err(Error::System(
            "updating the broker config at run time is not supported: edit broker.properties and restart the broker"
                .into(),
        )),
        request::GET_BROKER_CONFIG => Ok(broker_config(broker)),
        request::GET_BROKER_RUNTIME_INFO => {
            let table = runtime_info(broker);
            Ok(ok().with_body(body::to_json(&KvTable { table })))
        }
        request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => update_subscription_group(broker, req),
        request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => Ok(all_subscription_groups(broker)),
        request::DELETE_SUBSCRIPTIONGROUP => delete_subscription_group(broker, req),
        request::GET_TOPIC_STATS_INFO => topic_stats(broker, req),
        request::GET_CONSUMER_CONNECTION_LIST => consumer_connections(broker, req),
        request::GET_PRODUCER_CONNECTION_LIST => producer_connections(broker, req),
        request::GET_CONSUME_STATS => consume_stats(broker, req),
        request::GET_ALL_CONSUMER_OFFSET => {
            let offsets = broker.meta.consumer_offsets().clone();
            Ok(ok().with_body(body::to_json(&offsets)))
        }
        request::GET_ALL_DELAY_OFFSET => {
            let offsets = broker.meta.delay_offsets().clone();
            Ok(ok().with_body(body::to_json(&offsets)))
        }
        request::INVOKE_BROKER_TO_RESET_OFFSET => reset_offset(broker, req),
        request::QUERY_TOPIC_CONSUME_BY_WHO => topic_consumed_by(broker, req),
        _ => return None,
    };
    Some(result)
}

/// Whether `topic` is one of the topics the broker owns (4.9.4's `TopicValidator.isSystemTopic`
/// plus the cluster and broker names).
pub fn is_admin_reserved_topic(broker: &BrokerInner, topic: &str) -> bool {
    crate::protocol::is_system_topic(topic)
        || matches!(topic, AUTO_CREATE_TOPIC | "BenchmarkTest" | "RMQ_SYS_TRACE_TOPIC")
        || topic == broker.config.broker_cluster_name
        || topic == broker.config.broker_name
        || topic.starts_with(SYSTEM_TOPIC_PREFIX)
}

fn parse_filter_type(v: Option<String>) -> Result<TopicFilterType> {
    match v.as_deref() {
        None | Some("") | Some("SINGLE_TAG") => Ok(TopicFilterType::SingleTag),
        Some("MULTI_TAG") => Ok(TopicFilterType::MultiTag),
        Some(other) => Err(Error::System(format!("unknown topicFilterType {other:?}"))),
    }
}

/// UPDATE_AND_CREATE_TOPIC (17).
fn update_and_create_topic(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let topic: String = req.required("topic")?;
    check_topic_name(&topic).map_err(Error::System)?;
    if is_admin_reserved_topic(broker, &topic) {
        return Err(Error::System(format!("The topic[{topic}] is conflict with system topic.")));
    }
    let read: u32 = req.required("readQueueNums")?;
    let write: u32 = req.required("writeQueueNums")?;
    let perm: u32 = req.required("perm")?;
    for (name, n) in [("readQueueNums", read), ("writeQueueNums", write)] {
        if n == 0 || n > TOPIC_QUEUE_NUMS_MAX {
            return Err(Error::System(format!("{name} {n} is out of range 1..={TOPIC_QUEUE_NUMS_MAX}")));
        }
    }
    if perm & !(PERM_READ | PERM_WRITE | PERM_INHERIT | PERM_PRIORITY) != 0 {
        return Err(Error::System(format!("perm {perm} is not a RocketMQ permission (2 W, 4 R, 6 RW)")));
    }
    let mut tc = TopicConfig::new(topic.as_str());
    tc.read_queue_nums = read;
    tc.write_queue_nums = write;
    tc.perm = perm;
    tc.topic_filter_type = parse_filter_type(req.optional("topicFilterType")?)?;
    tc.topic_sys_flag = req.optional("topicSysFlag")?.unwrap_or(0);
    tc.order = req.optional("order")?.unwrap_or(false);
    tracing::info!(topic, read, write, perm, order = tc.order, "topic created or updated by admin request");
    broker.topics.put(tc);
    Ok(ok())
}

/// DELETE_TOPIC_IN_BROKER (215).
fn delete_topic(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let topic: String = req.required("topic")?;
    if is_admin_reserved_topic(broker, &topic) {
        return Err(Error::System(format!("The topic[{topic}] is conflict with system topic.")));
    }
    if broker.topics.remove(&topic) {
        tracing::info!(topic, "topic deleted by admin request");
    }
    Ok(ok())
}

/// GET_ALL_TOPIC_CONFIG (21).
fn all_topic_config(broker: &BrokerInner) -> RemotingCommand {
    let data_version = broker.meta.topics().data_version;
    let topic_config_table = broker.topics.all().iter().map(|tc| (tc.topic_name.clone(), (**tc).clone())).collect();
    ok().with_body(body::to_json(&TopicConfigSerializeWrapper { data_version, topic_config_table }))
}

/// GET_BROKER_CONFIG (26): the running config as `key=value` lines (every key we read).
fn broker_config(broker: &BrokerInner) -> RemotingCommand {
    let version = format!("{{\"counter\":0,\"timestamp\":{}}}", broker.started_ms);
    ok().with_field("version", version).with_body(broker.config.to_properties().into_bytes())
}

/// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200).
fn update_subscription_group(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let config: SubscriptionGroupConfig = body::parse(&req.body).map_err(Error::Body)?;
    if !valid_resource_name(&config.group_name, GROUP_NAME_BYTES_MAX) {
        return Err(Error::System(format!(
            "the group name {:?} is empty, longer than {GROUP_NAME_BYTES_MAX} or has characters outside ^[%|a-zA-Z0-9_-]+$",
            config.group_name
        )));
    }
    tracing::info!(group = %config.group_name, "subscription group created or updated by admin request");
    broker.groups.put(config);
    Ok(ok())
}

/// GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201).
fn all_subscription_groups(broker: &BrokerInner) -> RemotingCommand {
    let data_version = broker.meta.subscription_groups().data_version;
    let subscription_group_table = broker.groups.all().iter().map(|g| (g.group_name.clone(), (**g).clone())).collect();
    ok().with_body(body::to_json(&SubscriptionGroupTable { data_version, subscription_group_table }))
}

/// DELETE_SUBSCRIPTIONGROUP (207), with `removeOffset` also forgetting the group's offsets.
fn delete_subscription_group(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let group: String = req.required("groupName")?;
    let remove_offset: bool = req.optional("removeOffset")?.unwrap_or(false);
    broker.groups.remove(&group);
    if remove_offset {
        broker.meta.consumer_offsets().remove_group(&group);
        if let Err(e) = broker.meta.persist_consumer_offsets() {
            tracing::error!(error = %e, "could not persist consumerOffset.json");
        }
    }
    tracing::info!(group, remove_offset, "subscription group deleted by admin request");
    Ok(ok())
}

/// GET_TOPIC_STATS_INFO (202).
fn topic_stats(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let topic: String = req.required("topic")?;
    let Some(tc) = broker.topics.get(&topic) else {
        return Err(Error::TopicNotExist(format!("topic[{topic}] not exist")));
    };
    let mut table = TopicStatsTable::default();
    for queue_id in 0..tc.write_queue_nums {
        let min = broker.store.min_offset(&topic, queue_id);
        let max = broker.store.max_offset(&topic, queue_id);
        let last = if max > 0 { offsets::store_time_at(broker, &topic, queue_id, max - 1).unwrap_or(0) } else { 0 };
        table.offset_table.insert(
            queue(broker, &topic, queue_id),
            TopicOffset { last_update_timestamp: last, max_offset: max as i64, min_offset: min as i64 },
        );
    }
    Ok(ok().with_body(table.to_json()))
}

fn queue(broker: &BrokerInner, topic: &str, queue_id: u32) -> MessageQueue {
    MessageQueue { broker_name: broker.config.broker_name.clone(), queue_id, topic: topic.to_owned() }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn connection_info(m: &super::clients::Member) -> ConnectionInfo {
    ConnectionInfo {
        client_addr: m.conn.peer().to_string(),
        client_id: m.client_id.clone(),
        language: m.language.to_owned(),
        version: m.version,
    }
}

/// GET_CONSUMER_CONNECTION_LIST (203); CONSUMER_NOT_ONLINE (206) when no member is connected.
fn consumer_connections(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let group: String = req.required("consumerGroup")?;
    let cc = broker.clients.with_group(&group, |g| {
        let mut connection_set: Vec<ConnectionInfo> = g.members.values().map(connection_info).collect();
        connection_set.sort();
        ConsumerConnection {
            connection_set,
            consume_from_where: non_empty(&g.consume_from_where),
            consume_type: non_empty(&g.consume_type),
            message_model: non_empty(&g.message_model),
            subscription_table: g.subscriptions.iter().map(|(t, s)| (t.clone(), s.data.clone())).collect(),
        }
    });
    match cc {
        Some(cc) if !cc.connection_set.is_empty() => Ok(ok().with_body(body::to_json(&cc))),
        _ => {
            Ok(RemotingCommand::error(response::CONSUMER_NOT_ONLINE, format!("the consumer group[{group}] not online")))
        }
    }
}

/// GET_PRODUCER_CONNECTION_LIST (204).
fn producer_connections(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let group: String = req.required("producerGroup")?;
    let mut connection_set: Vec<ConnectionInfo> =
        broker.clients.producer_members(&group).iter().map(connection_info).collect();
    if connection_set.is_empty() {
        return Err(Error::System(format!("the producer group[{group}] not exist")));
    }
    connection_set.sort();
    Ok(ok().with_body(body::to_json(&ProducerConnection { connection_set })))
}

/// GET_CONSUME_STATS (208): per read queue of each topic the group consumes (the one in the
/// header, else every topic it has offsets on), the queue's max offset and the group's offset.
fn consume_stats(broker: &Arc<BrokerInner>, req: &RemotingCommand) -> Result<RemotingCommand> {
    let group: String = req.required("consumerGroup")?;
    let topic: Option<String> = req.optional::<String>("topic")?.filter(|t| !t.trim().is_empty());
    let topics: Vec<String> = match topic {
        Some(t) => vec![t],
        None => broker.meta.consumer_offsets().topics_of_group(&group).into_iter().map(str::to_owned).collect(),
    };
    let subscribed_any = broker.clients.with_group(&group, |g| !g.subscriptions.is_empty()).unwrap_or(false);
    let sampler = sampler(broker);
    let mut stats = ConsumeStats::default();
    for topic in topics {
        let Some(tc) = broker.topics.get(&topic) else { continue };
        if subscribed_any && broker.clients.subscription(&group, &topic).is_none() {
            continue;
        }
        let committed = broker.meta.consumer_offsets().offsets(&topic, &group).cloned().unwrap_or_default();
        for queue_id in 0..tc.read_queue_nums {
            let broker_offset = broker.store.max_offset(&topic, queue_id) as i64;
            let consumer_offset = committed.get(&queue_id).copied().unwrap_or(0).max(0);
            let last_timestamp = match consumer_offset.checked_sub(1) {
                Some(at) if at >= 0 => offsets::store_time_at(broker, &topic, queue_id, at as u64).unwrap_or(0),
                _ => 0,
            };
            stats.offset_table.insert(
                queue(broker, &topic, queue_id),
                OffsetWrapper { broker_offset, consumer_offset, last_timestamp },
            );
        }
        stats.consume_tps += sampler.consume_tps(&crate::store::metadata::ConsumerOffsets::key(&topic, &group));
    }
    Ok(ok().with_body(stats.to_json()))
}

/// INVOKE_BROKER_TO_RESET_OFFSET (222): moves the group's offsets on every write queue of the
/// topic to the first message stored at or after `timestamp` (-1: the end of the queue). Without
/// `isForce` an offset only moves back. Unlike 4.9.4, the offsets are committed here too, so the
/// reset works for a group with no consumer online; online members also get
/// RESET_CONSUMER_CLIENT_OFFSET (220, oneway) with the new offsets.
fn reset_offset(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let topic: String = req.required("topic")?;
    let group: String = req.required("group")?;
    let timestamp: i64 = req.required("timestamp")?;
    let force: bool = req.optional("isForce")?.unwrap_or(true);
    let Some(tc) = broker.topics.get(&topic) else {
        return Err(Error::System(format!(
            "[reset-offset] reset offset failed, no topic in this broker. topic={topic}"
        )));
    };
    let committed = broker.meta.consumer_offsets().offsets(&topic, &group).cloned();
    let members = broker.clients.consumer_members(&group);
    if committed.is_none() && members.is_empty() {
        return Err(Error::System(format!(
            "The consumer group <{group}> not exist: it has no offsets on topic {topic} and no consumer online"
        )));
    }
    let committed = committed.unwrap_or_default();
    let mut body = ResetOffsetBody::default();
    for queue_id in 0..tc.write_queue_nums {
        let target = if timestamp == -1 {
            broker.store.max_offset(&topic, queue_id)
        } else {
            broker.store.offset_by_time(&topic, queue_id, timestamp)
        } as i64;
        let offset = match committed.get(&queue_id) {
            Some(&current) if !force && target >= current => current,
            _ => target,
        };
        broker.commit_offset(&group, &topic, queue_id, offset);
        body.offset_table.insert(queue(broker, &topic, queue_id), offset);
    }
    broker.persist_offsets();
    let encoded = body.to_json();
    for m in &members {
        m.conn.send_oneway(
            RemotingCommand::request(request::RESET_CONSUMER_CLIENT_OFFSET)
                .with_field("topic", &topic)
                .with_field("group", &group)
                .with_field("timestamp", timestamp)
                .with_field("isForce", force)
                .with_body(encoded.clone()),
        );
    }
    tracing::info!(group, topic, timestamp, force, online = members.len(), "consumer offsets reset by admin request");
    Ok(ok().with_body(encoded))
}

/// QUERY_TOPIC_CONSUME_BY_WHO (300): groups subscribed now or with offsets on the topic.
fn topic_consumed_by(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let topic: String = req.required("topic")?;
    let mut groups: BTreeSet<String> = broker.clients.groups_of_topic(&topic).into_iter().collect();
    groups.extend(broker.meta.consumer_offsets().groups_of_topic(&topic).into_iter().map(str::to_owned));
    Ok(ok().with_body(body::to_json(&GroupList { group_list: groups.into_iter().collect() })))
}

/// Java's `MixAll.humanReadableByteCount(bytes, false)`: `512 B`, `1.5 KiB`, `3.0 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let exp = ((bytes as f64).ln() / 1024f64.ln()).floor().min(6.0) as i32;
    let unit = "KMGTPE".chars().nth((exp - 1).max(0) as usize).unwrap_or('E');
    format!("{:.1} {unit}iB", bytes as f64 / 1024f64.powi(exp))
}

/// A double as Java's `String.valueOf` writes it (always with a decimal point).
fn java_double(v: f64) -> String {
    let s = format!("{v}");
    if s.contains(['.', 'e', 'E', 'N', 'i']) { s } else { format!("{s}.0") }
}

/// GET_BROKER_RUNTIME_INFO (28): every key rocketmq-exporter parses (it fails on a missing one),
/// plus those mqadmin and the dashboard show. Values we do not measure are 0.
pub fn runtime_info(broker: &Arc<BrokerInner>) -> BTreeMap<String, String> {
    let sampler = sampler(broker);
    let mut t = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        t.insert(k.to_owned(), v);
    };
    let puts = broker.stats.put_messages_total.load(std::sync::atomic::Ordering::Relaxed);
    let gets = broker.stats.get_messages_total.load(std::sync::atomic::Ordering::Relaxed);
    put("brokerVersionDesc", version_desc(VERSION_4_9_4));
    put("brokerVersion", VERSION_4_9_4.to_string());
    // Counters are since boot: yesterday's and this morning's marks are 0.
    for k in [
        "msgPutTotalYesterdayMorning",
        "msgPutTotalTodayMorning",
        "msgGetTotalYesterdayMorning",
        "msgGetTotalTodayMorning",
    ] {
        put(k, "0".into());
    }
    put("msgPutTotalTodayNow", puts.to_string());
    put("msgGetTotalTodayNow", gets.to_string());
    for (k, v) in [
        ("sendThreadPoolQueueSize", "0"),
        ("sendThreadPoolQueueCapacity", "10000"),
        ("pullThreadPoolQueueSize", "0"),
        ("pullThreadPoolQueueCapacity", "100000"),
        ("queryThreadPoolQueueSize", "0"),
        ("queryThreadPoolQueueCapacity", "20000"),
        ("EndTransactionQueueSize", "0"),
        ("EndTransactionThreadPoolQueueCapacity", "100000"),
        ("pageCacheLockTimeMills", "0"),
        ("sendThreadPoolQueueHeadWaitTimeMills", "0"),
        ("pullThreadPoolQueueHeadWaitTimeMills", "0"),
        ("queryThreadPoolQueueHeadWaitTimeMills", "0"),
        ("startAcceptSendRequestTimeStamp", "0"),
        ("remainTransientStoreBufferNumbs", "2147483647"),
        ("remainHowManyDataToFlush", "0 B"),
        ("putMessageEntireTimeMax", "0"),
        ("getMessageEntireTimeMax", "0"),
        ("dispatchMaxBuffer", "0"),
        ("putMessageFailedTimes", "0"),
        ("getMissTps", "0.00 0.00 0.00"),
    ] {
        put(k, v.into());
    }
    let max = broker.store.commit_log_max_offset();
    let min = broker.store.commit_log_min_offset();
    put("dispatchBehindBytes", max.saturating_sub(broker.store.dispatched_offset()).to_string());
    put("commitLogMinOffset", min.to_string());
    put("commitLogMaxOffset", max.to_string());
    // Replication (our keys; 4.9.4 shows none): the master's view of its slaves, or the slave's
    // view of its master.
    if let Some(master) = &broker.ha_master {
        let slaves = master.slaves();
        put("haConnectedSlaves", slaves.iter().filter(|s| s.acked_offset.is_some()).count().to_string());
        put("haSlaveAckOffset", master.acked_offset().to_string());
        if let Some(lag) = master.lag_bytes() {
            put("haSlaveLagBytes", lag.to_string());
        }
        let addrs: Vec<String> = slaves.iter().map(|s| s.addr.to_string()).collect();
        put("haSlaveAddrs", addrs.join(","));
    }
    if let Some(slave) = &broker.ha_slave {
        let st = slave.status();
        put("haMasterAddress", st.master_ha_addr.unwrap_or_default());
        put("haConnected", st.connected.to_string());
        put("haReplicaOffset", st.replica_offset.to_string());
        put("haMasterOffsetSeen", st.master_seen_offset.to_string());
        put("haSlaveLagBytes", st.master_seen_offset.saturating_sub(st.replica_offset).to_string());
        let master = broker.master_addr.lock().unwrap_or_else(|p| p.into_inner()).clone();
        put("masterAddr", master.unwrap_or_default());
    }
    let earliest = broker
        .store
        .message_at(min)
        .and_then(|b| match crate::store::format::scan_record(&b, false) {
            crate::store::format::Scanned::Record(r) => Some(r.store_timestamp),
            _ => None,
        })
        .unwrap_or(-1);
    put("earliestMessageTimeStamp", earliest.to_string());
    put("bootTimestamp", broker.started_ms.to_string());
    let up = broker.started.elapsed().as_secs();
    put(
        "runtime",
        format!("[ {} days, {} hours, {} minutes, {} seconds ]", up / 86_400, up / 3600 % 24, up / 60 % 60, up % 60),
    );
    put("putMessageTimesTotal", puts.to_string());
    let size_total = max.saturating_sub(min);
    put("putMessageSizeTotal", size_total.to_string());
    put("putMessageAverageSize", java_double(if puts == 0 { 0.0 } else { size_total as f64 / puts as f64 }));
    put(
        "putMessageDistributeTime",
        [
            "<=0ms",
            "0~10ms",
            "10~50ms",
            "50~100ms",
            "100~200ms",
            "200~500ms",
            "500ms~1s",
            "1~2s",
            "2~3s",
            "3~4s",
            "4~5s",
            "5~10s",
            "10s~",
        ]
        .iter()
        .map(|b| format!("[{b}]:0"))
        .collect::<Vec<_>>()
        .join(" "),
    );
    let (put_tps, get_tps) = sampler.tps_text(puts, gets);
    put("putTps", put_tps);
    put("getFoundTps", get_tps.clone());
    put("getTotalTps", get_tps.clone());
    put("getTransferedTps", get_tps);
    let store_config = broker.store.config();
    let cl_dir = &store_config.commit_log_dir;
    let cl_ratio = crate::store::disk::used_ratio(cl_dir).unwrap_or(-1.0);
    put("commitLogDiskRatio", java_double(cl_ratio));
    put(&format!("commitLogDiskRatio_{}", cl_dir.display()), java_double(cl_ratio));
    let cq_ratio = crate::store::disk::used_ratio(&store_config.consume_queue_dir()).unwrap_or(cl_ratio);
    put("consumeQueueDiskRatio", java_double(cq_ratio));
    let (total, free) = rustix::fs::statvfs(&store_config.root_dir)
        .map(|st| (st.f_blocks.saturating_mul(st.f_frsize), st.f_bavail.saturating_mul(st.f_frsize)))
        .unwrap_or((0, 0));
    put("commitLogDirCapacity", format!("Total : {}, Free : {}.", human_bytes(total), human_bytes(free)));
    let delay: Vec<(u32, i64)> = broker.meta.delay_offsets().offset_table.iter().map(|(k, v)| (*k, *v)).collect();
    for (level, offset) in delay {
        let max = broker.store.max_offset("SCHEDULE_TOPIC_XXXX", level.saturating_sub(1));
        put(&format!("scheduleMessageOffset_{level}"), format!("{offset},{max}"));
    }
    t
}

/// Counters sampled over time for the TPS figures.
struct Sampler {
    rates: Mutex<VecDeque<(Instant, u64, u64)>>,
    offsets: Mutex<VecDeque<(Instant, HashMap<String, i64>)>>,
}

impl Sampler {
    /// TPS over the last 10 s, 1 min and 10 min, from the samples (since boot when younger).
    fn tps_text(&self, puts: u64, gets: u64) -> (String, String) {
        let rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut put_parts = Vec::new();
        let mut get_parts = Vec::new();
        for window in [10u64, 60, 600] {
            let from = now.checked_sub(Duration::from_secs(window));
            let base = rates
                .iter()
                .rev()
                .find(|(at, _, _)| from.is_some_and(|f| *at <= f))
                .or_else(|| rates.front())
                .copied()
                .unwrap_or((now, puts, gets));
            let secs = now.duration_since(base.0).as_secs_f64();
            let rate = |a: u64, b: u64| if secs > 0.0 { a.saturating_sub(b) as f64 / secs } else { 0.0 };
            put_parts.push(format!("{:.2}", rate(puts, base.1)));
            get_parts.push(format!("{:.2}", rate(gets, base.2)));
        }
        (put_parts.join(" "), get_parts.join(" "))
    }

    /// Messages per second the group committed on the topic over about the last minute.
    fn consume_tps(&self, key: &str) -> f64 {
        let snaps = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
        let (Some(first), Some(last)) = (snaps.front(), snaps.back()) else { return 0.0 };
        let secs = last.0.duration_since(first.0).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        let delta = last.1.get(key).copied().unwrap_or(0) - first.1.get(key).copied().unwrap_or(0);
        delta.max(0) as f64 / secs
    }

    fn sample(&self, broker: &BrokerInner, tick: u64) {
        let puts = broker.stats.put_messages_total.load(std::sync::atomic::Ordering::Relaxed);
        let gets = broker.stats.get_messages_total.load(std::sync::atomic::Ordering::Relaxed);
        {
            let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
            rates.push_back((Instant::now(), puts, gets));
            while rates.len() > RATE_SAMPLES_MAX {
                rates.pop_front();
            }
        }
        if tick.is_multiple_of(OFFSET_SNAPSHOT_EVERY_TICKS) {
            let sums: HashMap<String, i64> = broker
                .meta
                .consumer_offsets()
                .offset_table
                .iter()
                .map(|(k, q)| (k.clone(), q.values().map(|v| (*v).max(0)).sum()))
                .collect();
            let mut snaps = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
            snaps.push_back((Instant::now(), sums));
            while snaps.len() > OFFSET_SNAPSHOTS_MAX {
                snaps.pop_front();
            }
        }
    }
}

type SamplerSlot = (Weak<BrokerInner>, Arc<Sampler>);
static SAMPLERS: Mutex<Vec<SamplerSlot>> = Mutex::new(Vec::new());

/// The broker's sampler, started (with a sample at boot time) on first use.
fn sampler(broker: &Arc<BrokerInner>) -> Arc<Sampler> {
    let mut all = SAMPLERS.lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|(w, _)| w.strong_count() > 0);
    if let Some((_, s)) = all.iter().find(|(w, _)| w.as_ptr() == Arc::as_ptr(broker)) {
        return s.clone();
    }
    let s = Arc::new(Sampler { rates: Mutex::new(VecDeque::new()), offsets: Mutex::new(VecDeque::new()) });
    s.rates.lock().unwrap_or_else(|e| e.into_inner()).push_back((broker.started, 0, 0));
    s.sample(broker, 0);
    all.push((Arc::downgrade(broker), s.clone()));
    let weak = Arc::downgrade(broker);
    let task_sampler = s.clone();
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let mut tick = 0u64;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                tick += 1;
                let Some(b) = weak.upgrade() else { return };
                if b.is_stopping() {
                    return;
                }
                task_sampler.sample(&b, tick);
            }
        });
    }
    s
}
