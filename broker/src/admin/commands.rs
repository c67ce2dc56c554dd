//! The `mqadmin` sub-commands: each asks the name server and brokers over the remoting protocol
//! and returns RocketMQ's table text plus the same data as JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::{Value, json};

use super::body::{
    ConsumeStats, ConsumerConnection, GroupList, OffsetWrapper, ResetOffsetBody, TopicOffset, TopicStatsTable,
    version_desc,
};
use super::cli::{Args, CliError, Report};
use crate::client::{ClientConfig, Message, MessageExt, MqClient, Producer, PullRequest, PullStatus, pull_flag};
use crate::protocol::body::{self, ClusterInfo, KvTable, MessageQueue, TopicList, TopicRouteData};
use crate::protocol::message_id::decode_offset_msg_id;
use crate::protocol::{
    AUTO_CREATE_TOPIC, PERM_INHERIT, PERM_READ, PERM_WRITE, RETRY_GROUP_TOPIC_PREFIX, SubscriptionGroupConfig,
    check_topic_name, dlq_topic, request, response, retry_topic,
};
use crate::remoting::RemotingCommand;

type Result<T> = std::result::Result<T, CliError>;

/// Consumer group of the pulls `queryMsgByOffset` and `consumeMessage` make without `-g`.
const TOOLS_CONSUMER_GROUP: &str = "TOOLS_CONSUMER";
/// Producer group of `sendMessage`.
const TOOLS_PRODUCER_GROUP: &str = "TOOLS_PRODUCER";
/// Messages `consumeMessage` prints when `-c` is not given (RocketMQ's default).
const CONSUME_MESSAGE_COUNT_DEFAULT: u64 = 128;
/// Messages `queryMsgByKey` asks each broker for.
const QUERY_BY_KEY_MAX: u32 = 64;

/// Runs one sub-command.
pub async fn execute(name: &str, args: &Args) -> Result<Report> {
    if name.starts_with("plugin ") {
        return super::plugin::execute(name, args).await;
    }
    let admin = Admin { client: MqClient::new(ClientConfig::from_env_or(args.namesrv.as_deref())) };
    match name {
        "clusterList" => admin.cluster_list(args).await,
        "topicList" => admin.topic_list(args).await,
        "topicRoute" => admin.topic_route(args).await,
        "topicStatus" => admin.topic_status(args).await,
        "updateTopic" => admin.update_topic(args).await,
        "deleteTopic" => admin.delete_topic(args).await,
        "updateSubGroup" => admin.update_sub_group(args).await,
        "deleteSubGroup" => admin.delete_sub_group(args).await,
        "consumerProgress" => admin.consumer_progress(args).await,
        "consumerConnection" => admin.consumer_connection(args).await,
        "brokerStatus" => admin.broker_status(args).await,
        "queryMsgById" => admin.query_msg_by_id(args).await,
        "queryMsgByKey" => admin.query_msg_by_key(args).await,
        "queryMsgByOffset" => admin.query_msg_by_offset(args).await,
        "resetOffsetByTime" => admin.reset_offset_by_time(args).await,
        "sendMessage" => admin.send_message(args).await,
        "consumeMessage" => admin.consume_message(args).await,
        "getBrokerConfig" => admin.get_broker_config(args).await,
        other => Err(CliError::Usage(format!("unknown command {other:?}"))),
    }
}

/// `yyyy-MM-dd HH:mm:ss` in local time (Java's `UtilAll.formatDate`).
pub fn format_time(ms: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => ms.to_string(),
    }
}

/// `yyyy-MM-dd HH:mm:ss,SSS` in local time (Java's `UtilAll.timeMillisToHumanString2`).
pub fn format_time_ms(ms: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S,%3f").to_string(),
        None => ms.to_string(),
    }
}

/// A timestamp flag: `now`, milliseconds, or `yyyy-MM-dd#HH:mm:ss:SSS` (local time).
///
/// # Errors
/// [`CliError::Usage`] for anything else.
pub fn parse_timestamp(s: &str) -> Result<i64> {
    use chrono::TimeZone;
    let s = s.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(crate::store::now_ms());
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d#%H:%M:%S:%3f")
        .ok()
        .and_then(|t| chrono::Local.from_local_datetime(&t).earliest())
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| CliError::Usage(format!("timestamp {s:?} is not now, milliseconds or yyyy-MM-dd#HH:mm:ss:SSS")))
}

/// Java's `PermName.perm2String`: `RW-`, `R--`, `-WX`.
pub fn perm_string(perm: u32) -> String {
    let mut s = String::new();
    s.push(if perm & PERM_READ != 0 { 'R' } else { '-' });
    s.push(if perm & PERM_WRITE != 0 { 'W' } else { '-' });
    s.push(if perm & PERM_INHERIT != 0 { 'X' } else { '-' });
    s
}

/// Java's `UtilAll.frontStringAtLeast`: at most `n` characters.
fn front(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn broker_error(addr: &str, resp: &RemotingCommand) -> CliError {
    CliError::Failed(format!("CODE: {} DESC: {} (from {addr})", resp.code, resp.remark.as_deref().unwrap_or("")))
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    body::parse(bytes).map_err(|e| CliError::Failed(format!("malformed {what}: {e}")))
}

/// The master (`brokerId` 0) address of a broker, else any of its addresses.
fn master_addr(addrs: &BTreeMap<u64, String>) -> Option<&String> {
    addrs.get(&0).or_else(|| addrs.values().next())
}

fn message_json(m: &MessageExt) -> Value {
    let props: serde_json::Map<String, Value> =
        m.properties().into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    json!({
        "msgId": m.msg_id(),
        "offsetMsgId": m.offset_msg_id(),
        "topic": m.topic,
        "tags": m.tags(),
        "keys": m.keys().collect::<Vec<_>>(),
        "queueId": m.queue_id,
        "queueOffset": m.queue_offset,
        "commitLogOffset": m.commit_log_offset,
        "reconsumeTimes": m.reconsume_times,
        "bornTimestamp": m.born_timestamp,
        "storeTimestamp": m.store_timestamp,
        "bornHost": m.born_host.to_string(),
        "storeHost": m.store_host.to_string(),
        "sysFlag": m.sys_flag,
        "properties": props,
        "body": String::from_utf8_lossy(&m.body),
    })
}

/// The detail block of `queryMsgById` (RocketMQ's `printMsg`), with the body added.
fn message_detail(m: &MessageExt) -> String {
    let mut s = String::new();
    let keys: Vec<&str> = m.keys().collect();
    let props: Vec<String> = m.properties().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let rows = [
        ("OffsetID:", m.offset_msg_id()),
        ("Topic:", m.topic.clone()),
        ("Tags:", format!("[{}]", m.tags().unwrap_or("null"))),
        ("Keys:", format!("[{}]", if keys.is_empty() { "null".to_owned() } else { keys.join(" ") })),
        ("Queue ID:", m.queue_id.to_string()),
        ("Queue Offset:", m.queue_offset.to_string()),
        ("CommitLog Offset:", m.commit_log_offset.to_string()),
        ("Reconsume Times:", m.reconsume_times.to_string()),
        ("Born Timestamp:", format_time_ms(m.born_timestamp)),
        ("Store Timestamp:", format_time_ms(m.store_timestamp)),
        ("Born Host:", m.born_host.to_string()),
        ("Store Host:", m.store_host.to_string()),
        ("System Flag:", m.sys_flag.to_string()),
        ("Properties:", format!("{{{}}}", props.join(", "))),
        ("Message Body:", String::from_utf8_lossy(&m.body).into_owned()),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "{k:<20} {v}");
    }
    s
}

struct Admin {
    client: MqClient,
}

impl Admin {
    async fn namesrv_call(&self, cmd: RemotingCommand) -> Result<RemotingCommand> {
        let (addr, resp) = self.client.invoke_namesrv(cmd).await?;
        if resp.code != response::SUCCESS {
            return Err(broker_error(&addr, &resp));
        }
        Ok(resp)
    }

    async fn broker_call(&self, addr: &str, cmd: RemotingCommand) -> Result<RemotingCommand> {
        let resp = self.client.invoke_broker(addr, cmd).await?;
        if resp.code != response::SUCCESS {
            return Err(broker_error(addr, &resp));
        }
        Ok(resp)
    }

    async fn cluster_info(&self) -> Result<ClusterInfo> {
        let resp = self.namesrv_call(self.client.request(request::GET_BROKER_CLUSTER_INFO)).await?;
        decode("cluster info", &resp.body)
    }

    /// `(brokerName, brokerId, addr)` of every broker of a cluster; masters only if asked.
    async fn cluster_brokers(&self, cluster: &str, masters_only: bool) -> Result<Vec<(String, u64, String)>> {
        let info = self.cluster_info().await?;
        let Some(names) = info.cluster_addr_table.get(cluster) else {
            return Err(CliError::NotFound(format!("cluster {cluster:?} not found in the name server")));
        };
        let mut out = Vec::new();
        let mut names = names.clone();
        names.sort();
        for name in names {
            let Some(bd) = info.broker_addr_table.get(&name) else { continue };
            for (id, addr) in &bd.broker_addrs {
                if !masters_only || *id == 0 {
                    out.push((name.clone(), *id, addr.clone()));
                }
            }
        }
        Ok(out)
    }

    /// The broker addresses a `-b addr | -c cluster` command goes to.
    async fn targets(&self, args: &Args, masters_only: bool) -> Result<Vec<String>> {
        if let Some(b) = args.get('b') {
            return Ok(vec![b.to_owned()]);
        }
        if let Some(c) = args.get('c') {
            let addrs: Vec<String> =
                self.cluster_brokers(c, masters_only).await?.into_iter().map(|(_, _, a)| a).collect();
            if addrs.is_empty() {
                return Err(CliError::NotFound(format!("cluster {c:?} has no broker")));
            }
            return Ok(addrs);
        }
        Err(CliError::Usage("one of -b <brokerAddr> or -c <clusterName> is required".into()))
    }

    async fn route(&self, topic: &str) -> Result<TopicRouteData> {
        Ok((*self.client.fetch_route(topic).await?).clone())
    }

    /// `(brokerName, master address)` of every broker in a route.
    fn route_masters(route: &TopicRouteData) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = route
            .broker_datas
            .iter()
            .filter_map(|bd| master_addr(&bd.broker_addrs).map(|a| (bd.broker_name.clone(), a.clone())))
            .collect();
        v.sort();
        v
    }

    async fn runtime_info(&self, addr: &str) -> Result<BTreeMap<String, String>> {
        let resp = self.broker_call(addr, self.client.request(request::GET_BROKER_RUNTIME_INFO)).await?;
        Ok(decode::<KvTable>("runtime info", &resp.body)?.table)
    }

    async fn cluster_list(&self, args: &Args) -> Result<Report> {
        let info = self.cluster_info().await?;
        let more = args.has('m');
        let mut text = String::new();
        if more {
            let _ = writeln!(
                text,
                "{:<16}  {:<32} {:>14} {:>14} {:>14} {:>14}",
                "#Cluster Name", "#Broker Name", "#InTotalYest", "#OutTotalYest", "#InTotalToday", "#OutTotalToday"
            );
        } else {
            let _ = writeln!(
                text,
                "{:<16}  {:<22}  {:<4}  {:<22} {:<16} {:>19} {:>19} {:>10} {:>5} {:>6}",
                "#Cluster Name",
                "#Broker Name",
                "#BID",
                "#Addr",
                "#Version",
                "#InTPS(LOAD)",
                "#OutTPS(LOAD)",
                "#PCWait(ms)",
                "#Hour",
                "#SPACE"
            );
        }
        let mut rows = Vec::new();
        for (cluster, names) in &info.cluster_addr_table {
            let mut names = names.clone();
            names.sort();
            for name in names {
                let Some(bd) = info.broker_addr_table.get(&name) else { continue };
                for (id, addr) in &bd.broker_addrs {
                    let (kv, error) = match self.runtime_info(addr).await {
                        Ok(kv) => (kv, None),
                        Err(e) => (BTreeMap::new(), Some(e.to_string())),
                    };
                    let g = |k: &str| kv.get(k).cloned().unwrap_or_default();
                    let first = |k: &str| g(k).split(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                    let num = |k: &str| g(k).parse::<i64>().unwrap_or(0);
                    let (put_tps, get_tps) = (first("putTps"), first("getTransferedTps"));
                    let earliest = num("earliestMessageTimeStamp");
                    let hour =
                        if earliest > 0 { (crate::store::now_ms() - earliest) as f64 / 3_600_000.0 } else { 0.0 };
                    let space = g("commitLogDiskRatio").parse::<f64>().unwrap_or(0.0);
                    let in_yest = num("msgPutTotalTodayMorning") - num("msgPutTotalYesterdayMorning");
                    let out_yest = num("msgGetTotalTodayMorning") - num("msgGetTotalYesterdayMorning");
                    let in_today = num("msgPutTotalTodayNow") - num("msgPutTotalTodayMorning");
                    let out_today = num("msgGetTotalTodayNow") - num("msgGetTotalTodayMorning");
                    if more {
                        let _ = writeln!(
                            text,
                            "{:<16}  {:<32} {:>14} {:>14} {:>14} {:>14}",
                            cluster, name, in_yest, out_yest, in_today, out_today
                        );
                    } else {
                        let _ = writeln!(
                            text,
                            "{:<16}  {:<22}  {:<4}  {:<22} {:<16} {:>19} {:>19} {:>10} {:>5} {:>6}",
                            cluster,
                            name,
                            id,
                            addr,
                            g("brokerVersionDesc"),
                            format!(
                                "{put_tps:9.2}({},{}ms)",
                                g("sendThreadPoolQueueSize"),
                                g("sendThreadPoolQueueHeadWaitTimeMills")
                            ),
                            format!(
                                "{get_tps:9.2}({},{}ms)",
                                g("pullThreadPoolQueueSize"),
                                g("pullThreadPoolQueueHeadWaitTimeMills")
                            ),
                            g("pageCacheLockTimeMills"),
                            format!("{hour:2.2}"),
                            format!("{space:.4}")
                        );
                    }
                    rows.push(json!({
                        "cluster": cluster, "brokerName": name, "brokerId": id, "addr": addr,
                        "version": g("brokerVersionDesc"), "inTps": put_tps, "outTps": get_tps,
                        "pageCacheLockTimeMills": num("pageCacheLockTimeMills"), "hour": hour,
                        "commitLogDiskRatio": space, "inTotalYest": in_yest, "outTotalYest": out_yest,
                        "inTotalToday": in_today, "outTotalToday": out_today, "error": error,
                    }));
                }
            }
        }
        Ok(Report { text, json: json!({ "brokers": rows }) })
    }

    async fn topic_names(&self) -> Result<Vec<String>> {
        let resp = self.namesrv_call(self.client.request(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).await?;
        let mut list = decode::<TopicList>("topic list", &resp.body)?.topic_list;
        list.sort();
        list.dedup();
        Ok(list)
    }

    async fn topic_list(&self, args: &Args) -> Result<Report> {
        let topics = self.topic_names().await?;
        if !args.has('c') {
            let mut text = String::new();
            for t in &topics {
                let _ = writeln!(text, "{t}");
            }
            return Ok(Report { text, json: json!({ "topicList": topics }) });
        }
        let mut text = format!("{:<20}  {:<48}  {:<48}\n", "#Cluster Name", "#Topic", "#Consumer Group");
        let mut rows = Vec::new();
        for topic in &topics {
            if topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) || topic.starts_with(crate::protocol::DLQ_GROUP_TOPIC_PREFIX)
            {
                continue;
            }
            let Ok(route) = self.route(topic).await else { continue };
            let cluster = route.broker_datas.first().map(|b| b.cluster.clone()).unwrap_or_default();
            let mut groups = Vec::new();
            if let Some((_, addr)) = Self::route_masters(&route).first() {
                let cmd = self.client.request(request::QUERY_TOPIC_CONSUME_BY_WHO).with_field("topic", topic);
                if let Ok(resp) = self.broker_call(addr, cmd).await
                    && let Ok(list) = decode::<GroupList>("group list", &resp.body)
                {
                    groups = list.group_list;
                }
            }
            groups.sort();
            let shown = if groups.is_empty() { vec![String::new()] } else { groups.clone() };
            for g in &shown {
                let _ = writeln!(text, "{:<20}  {:<48}  {:<48}", front(&cluster, 20), front(topic, 48), front(g, 48));
            }
            rows.push(json!({ "cluster": cluster, "topic": topic, "consumerGroups": groups }));
        }
        Ok(Report { text, json: json!({ "topics": rows }) })
    }

    async fn topic_route(&self, args: &Args) -> Result<Report> {
        let topic = args.need('t')?;
        let route = self.route(topic).await?;
        let json = serde_json::to_value(&route).unwrap_or_default();
        let text = if args.has('l') {
            let mut s = format!(
                "{:<45} {:<32} {:<50} {:<10} {:<11} {:<5}\n",
                "#ClusterName", "#BrokerName", "#BrokerAddrs", "#ReadQueue", "#WriteQueue", "#Perm"
            );
            let (mut reads, mut writes) = (0, 0);
            for bd in &route.broker_datas {
                let addrs: Vec<String> = bd.broker_addrs.iter().map(|(id, a)| format!("{id}:{a}")).collect();
                for q in route.queue_datas.iter().filter(|q| q.broker_name == bd.broker_name) {
                    reads += q.read_queue_nums;
                    writes += q.write_queue_nums;
                    let _ = writeln!(
                        s,
                        "{:<45} {:<32} {:<50} {:<10} {:<11} {:<5}",
                        bd.cluster,
                        bd.broker_name,
                        addrs.join(", "),
                        q.read_queue_nums,
                        q.write_queue_nums,
                        q.perm
                    );
                }
            }
            let _ = writeln!(
                s,
                "\nTotal: {} brokers, {reads} read queues, {writes} write queues",
                route.broker_datas.len()
            );
            s
        } else {
            format!("{}\n", serde_json::to_string_pretty(&route).unwrap_or_default())
        };
        Ok(Report { text, json })
    }

    async fn topic_status(&self, args: &Args) -> Result<Report> {
        let topic = args.need('t')?;
        let route = self.route(topic).await?;
        let mut table = TopicStatsTable::default();
        for (_, addr) in Self::route_masters(&route) {
            let cmd = self.client.request(request::GET_TOPIC_STATS_INFO).with_field("topic", topic);
            let resp = self.broker_call(&addr, cmd).await?;
            let part =
                TopicStatsTable::parse(&resp.body).map_err(|e| CliError::Failed(format!("malformed stats: {e}")))?;
            table.offset_table.extend(part.offset_table);
        }
        let mut queues: Vec<(&MessageQueue, &TopicOffset)> = table.offset_table.iter().collect();
        queues.sort_by(|a, b| {
            (&a.0.topic, &a.0.broker_name, a.0.queue_id).cmp(&(&b.0.topic, &b.0.broker_name, b.0.queue_id))
        });
        let mut text = format!(
            "{:<32}  {:<4}  {:<20}  {:<20}    {}\n",
            "#Broker Name", "#QID", "#Min Offset", "#Max Offset", "#Last Updated"
        );
        let mut rows = Vec::new();
        for (mq, o) in queues {
            let last =
                if o.last_update_timestamp > 0 { format_time_ms(o.last_update_timestamp) } else { String::new() };
            let _ = writeln!(
                text,
                "{:<32}  {:<4}  {:<20}  {:<20}    {}",
                front(&mq.broker_name, 32),
                mq.queue_id,
                o.min_offset,
                o.max_offset,
                last
            );
            rows.push(json!({
                "brokerName": mq.broker_name, "queueId": mq.queue_id, "minOffset": o.min_offset,
                "maxOffset": o.max_offset, "lastUpdateTimestamp": o.last_update_timestamp,
            }));
        }
        Ok(Report { text, json: json!({ "topic": topic, "queues": rows }) })
    }

    async fn update_topic(&self, args: &Args) -> Result<Report> {
        let topic = args.need('t')?;
        check_topic_name(topic).map_err(CliError::Usage)?;
        let read: u32 = args.parse('r')?.unwrap_or(8);
        let write: u32 = args.parse('w')?.unwrap_or(8);
        let perm: u32 = args.parse('p')?.unwrap_or(PERM_READ | PERM_WRITE);
        let order = args.bool('o').unwrap_or(false);
        let targets = self.targets(args, true).await?;
        let mut text = String::new();
        for addr in &targets {
            let cmd = self
                .client
                .request(request::UPDATE_AND_CREATE_TOPIC)
                .with_field("topic", topic)
                .with_field("defaultTopic", AUTO_CREATE_TOPIC)
                .with_field("readQueueNums", read)
                .with_field("writeQueueNums", write)
                .with_field("perm", perm)
                .with_field("topicFilterType", "SINGLE_TAG")
                .with_field("topicSysFlag", 0)
                .with_field("order", order);
            self.broker_call(addr, cmd).await?;
            let _ = writeln!(text, "create topic to {addr} success.");
        }
        let _ = writeln!(
            text,
            "TopicConfig [topicName={topic}, readQueueNums={read}, writeQueueNums={write}, perm={}, topicFilterType=SINGLE_TAG, topicSysFlag=0, order={order}]",
            perm_string(perm)
        );
        let json = json!({
            "brokers": targets,
            "topicConfig": {"topicName": topic, "readQueueNums": read, "writeQueueNums": write, "perm": perm,
                "topicFilterType": "SINGLE_TAG", "topicSysFlag": 0, "order": order},
        });
        Ok(Report { text, json })
    }

    /// Deletes a topic on every broker of a cluster, then on every name server.
    async fn delete_topic_in_cluster(&self, topic: &str, cluster: &str, text: &mut String) -> Result<Vec<String>> {
        let brokers = self.cluster_brokers(cluster, false).await?;
        for (_, _, addr) in &brokers {
            let cmd = self.client.request(request::DELETE_TOPIC_IN_BROKER).with_field("topic", topic);
            self.broker_call(addr, cmd).await?;
        }
        let _ = writeln!(text, "delete topic [{topic}] from cluster [{cluster}] success.");
        for ns in self.client.name_servers().to_vec() {
            let cmd = self
                .client
                .request(request::DELETE_TOPIC_IN_NAMESRV)
                .with_field("topic", topic)
                .with_field("clusterName", cluster);
            self.broker_call(&ns, cmd).await?;
        }
        let _ = writeln!(text, "delete topic [{topic}] from NameServer success.");
        Ok(brokers.into_iter().map(|(_, _, a)| a).collect())
    }

    async fn delete_topic(&self, args: &Args) -> Result<Report> {
        let topic = args.need('t')?;
        let cluster = args.need('c')?;
        let mut text = String::new();
        let brokers = self.delete_topic_in_cluster(topic, cluster, &mut text).await?;
        Ok(Report { text, json: json!({ "topic": topic, "cluster": cluster, "brokers": brokers }) })
    }

    async fn update_sub_group(&self, args: &Args) -> Result<Report> {
        let group = args.need('g')?;
        let mut config = SubscriptionGroupConfig::new(group);
        if let Some(v) = args.bool('s') {
            config.consume_enable = v;
        }
        if let Some(v) = args.bool('m') {
            config.consume_from_min_enable = v;
        }
        if let Some(v) = args.bool('d') {
            config.consume_broadcast_enable = v;
        }
        if let Some(v) = args.parse('q')? {
            config.retry_queue_nums = v;
        }
        if let Some(v) = args.parse('r')? {
            config.retry_max_times = v;
        }
        if let Some(v) = args.parse('i')? {
            config.broker_id = v;
        }
        if let Some(v) = args.parse('w')? {
            config.which_broker_when_consume_slowly = v;
        }
        if let Some(v) = args.bool('a') {
            config.notify_consumer_ids_changed_enable = v;
        }
        let targets = self.targets(args, true).await?;
        let mut text = String::new();
        for addr in &targets {
            let cmd =
                self.client.request(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(body::to_json(&config));
            self.broker_call(addr, cmd).await?;
            let _ = writeln!(text, "create subscription group to {addr} success.");
        }
        let c = &config;
        let _ = writeln!(
            text,
            "SubscriptionGroupConfig [groupName={}, consumeEnable={}, consumeFromMinEnable={}, consumeBroadcastEnable={}, retryQueueNums={}, retryMaxTimes={}, brokerId={}, whichBrokerWhenConsumeSlowly={}, notifyConsumerIdsChangedEnable={}]",
            c.group_name,
            c.consume_enable,
            c.consume_from_min_enable,
            c.consume_broadcast_enable,
            c.retry_queue_nums,
            c.retry_max_times,
            c.broker_id,
            c.which_broker_when_consume_slowly,
            c.notify_consumer_ids_changed_enable
        );
        let json =
            json!({ "brokers": targets, "subscriptionGroupConfig": serde_json::to_value(&config).unwrap_or_default() });
        Ok(Report { text, json })
    }

    async fn delete_sub_group(&self, args: &Args) -> Result<Report> {
        let group = args.need('g')?;
        let remove_offset = args.bool('r').unwrap_or(false);
        let targets = self.targets(args, true).await?;
        let mut text = String::new();
        for addr in &targets {
            let cmd = self
                .client
                .request(request::DELETE_SUBSCRIPTIONGROUP)
                .with_field("groupName", group)
                .with_field("removeOffset", remove_offset);
            self.broker_call(addr, cmd).await?;
            match args.get('c') {
                Some(c) => {
                    let _ = writeln!(
                        text,
                        "delete subscription group [{group}] from broker [{addr}] in cluster [{c}] success."
                    );
                }
                None => {
                    let _ = writeln!(text, "delete subscription group [{group}] from broker [{addr}] success.");
                }
            }
        }
        // As RocketMQ does for -c: the group's retry and dead-letter topics go too.
        if let Some(c) = args.get('c') {
            for topic in [retry_topic(group), dlq_topic(group)] {
                if let Err(e) = self.delete_topic_in_cluster(&topic, c, &mut text).await {
                    let _ = writeln!(text, "delete topic [{topic}] from cluster [{c}] failed: {e}");
                }
            }
        }
        Ok(Report { text, json: json!({ "group": group, "brokers": targets, "removeOffset": remove_offset }) })
    }

    /// GET_CONSUME_STATS on every broker of the group's retry topic, merged.
    async fn consume_stats(&self, group: &str, topic: Option<&str>) -> Result<ConsumeStats> {
        let route = self.route(&retry_topic(group)).await.map_err(|e| match e {
            CliError::NotFound(_) => {
                CliError::NotFound(format!("consumer group {group:?} not found (no route for its retry topic)"))
            }
            other => other,
        })?;
        let mut stats = ConsumeStats::default();
        for (_, addr) in Self::route_masters(&route) {
            let mut cmd = self.client.request(request::GET_CONSUME_STATS).with_field("consumerGroup", group);
            if let Some(t) = topic {
                cmd = cmd.with_field("topic", t);
            }
            let resp = self.broker_call(&addr, cmd).await?;
            let part = ConsumeStats::parse(&resp.body)
                .map_err(|e| CliError::Failed(format!("malformed consume stats: {e}")))?;
            stats.consume_tps += part.consume_tps;
            stats.offset_table.extend(part.offset_table);
        }
        Ok(stats)
    }

    /// GET_CONSUMER_CONNECTION_LIST from `addr`, or from the first broker of the group's retry
    /// topic that knows the group.
    async fn consumer_connection_info(&self, group: &str, addr: Option<&str>) -> Result<ConsumerConnection> {
        let addrs = match addr {
            Some(a) => vec![a.to_owned()],
            None => Self::route_masters(&self.route(&retry_topic(group)).await?).into_iter().map(|(_, a)| a).collect(),
        };
        let mut last = CliError::NotFound(format!("consumer group {group:?} has no broker"));
        for addr in addrs {
            let cmd = self.client.request(request::GET_CONSUMER_CONNECTION_LIST).with_field("consumerGroup", group);
            let resp = self.client.invoke_broker(&addr, cmd).await?;
            match resp.code {
                response::SUCCESS => {
                    let cc: ConsumerConnection = decode("consumer connection", &resp.body)?;
                    if !cc.connection_set.is_empty() {
                        return Ok(cc);
                    }
                    last = CliError::Failed(format!(
                        "CODE: {} DESC: the consumer group[{group}] not online",
                        response::CONSUMER_NOT_ONLINE
                    ));
                }
                _ => last = broker_error(&addr, &resp),
            }
        }
        Err(last)
    }

    async fn consumer_progress(&self, args: &Args) -> Result<Report> {
        match args.get('g') {
            Some(g) => self.group_progress(g, args.get('t')).await,
            None => self.all_groups_progress().await,
        }
    }

    async fn group_progress(&self, group: &str, topic: Option<&str>) -> Result<Report> {
        let stats = self.consume_stats(group, topic).await?;
        if stats.offset_table.is_empty() {
            return Err(CliError::NotFound(format!(
                "Not found the consumer group consume stats, because return offset table is empty, maybe the consumer not consume any message (group {group})"
            )));
        }
        // Which client holds which queue: RocketMQ's default averaging strategy over the
        // connected clients (Java asks each client; we estimate as the client would allocate).
        let clients: Vec<String> = match self.consumer_connection_info(group, None).await {
            Ok(cc) => {
                let mut ids: Vec<String> = cc.connection_set.into_iter().map(|c| c.client_id).collect();
                ids.sort();
                ids.dedup();
                ids
            }
            Err(_) => Vec::new(),
        };
        let mut mqs: Vec<(&MessageQueue, &OffsetWrapper)> = stats.offset_table.iter().collect();
        mqs.sort_by(|a, b| {
            (&a.0.topic, &a.0.broker_name, a.0.queue_id).cmp(&(&b.0.topic, &b.0.broker_name, b.0.queue_id))
        });
        let owners = allocate_averagely(&mqs.iter().map(|(mq, _)| (*mq).clone()).collect::<Vec<_>>(), &clients);
        let mut text = format!(
            "{:<64}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20} {:<20}  {}\n",
            "#Topic", "#Broker Name", "#QID", "#Broker Offset", "#Consumer Offset", "#Client IP", "#Diff", "#LastTime"
        );
        let mut rows = Vec::new();
        let mut diff_total = 0i64;
        for (mq, w) in &mqs {
            let diff = w.broker_offset - w.consumer_offset;
            diff_total += diff;
            let last = if w.last_timestamp == 0 { "N/A".to_owned() } else { format_time(w.last_timestamp) };
            let ip = owners
                .get(*mq)
                .map(|id| id.split('@').next().unwrap_or(id).to_owned())
                .unwrap_or_else(|| "N/A".to_owned());
            let _ = writeln!(
                text,
                "{:<64}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20} {:<20}  {}",
                front(&mq.topic, 64),
                front(&mq.broker_name, 32),
                mq.queue_id,
                w.broker_offset,
                w.consumer_offset,
                ip,
                diff,
                last
            );
            rows.push(json!({
                "topic": mq.topic, "brokerName": mq.broker_name, "queueId": mq.queue_id,
                "brokerOffset": w.broker_offset, "consumerOffset": w.consumer_offset, "clientIp": ip,
                "diff": diff, "lastTimestamp": w.last_timestamp,
            }));
        }
        let _ = writeln!(text);
        let _ = writeln!(text, "Consume TPS: {:.2}", stats.consume_tps);
        let _ = writeln!(text, "Diff Total: {diff_total}");
        Ok(Report {
            text,
            json: json!({ "group": group, "queues": rows, "consumeTps": stats.consume_tps, "diffTotal": diff_total }),
        })
    }

    async fn all_groups_progress(&self) -> Result<Report> {
        let topics = self.topic_names().await?;
        let mut text = format!(
            "{:<64}  {:<6}  {:<24} {:<5}  {:<14}  {:<7}  {}\n",
            "#Group", "#Count", "#Version", "#Type", "#Model", "#TPS", "#Diff Total"
        );
        let mut rows = Vec::new();
        for topic in topics {
            let Some(group) = topic.strip_prefix(RETRY_GROUP_TOPIC_PREFIX) else { continue };
            let stats = self.consume_stats(group, None).await.ok();
            let cc = self.consumer_connection_info(group, None).await.ok();
            let count = cc.as_ref().map_or(0, |c| c.connection_set.len());
            let tps = stats.as_ref().map_or(0.0, |s| s.consume_tps);
            let diff = stats.as_ref().map_or(0, ConsumeStats::total_diff);
            let version = match cc.as_ref().and_then(ConsumerConnection::min_version) {
                Some(v) if count > 0 => version_desc(v),
                _ => "OFFLINE".to_owned(),
            };
            let consume_type = cc.as_ref().and_then(|c| c.consume_type.clone()).unwrap_or_default();
            let type_desc = match (count, consume_type.as_str()) {
                (0, _) => "",
                (_, "CONSUME_ACTIVELY") => "PULL",
                _ => "PUSH",
            };
            let model = if count > 0 && consume_type == "CONSUME_PASSIVELY" {
                cc.as_ref().and_then(|c| c.message_model.clone()).unwrap_or_default()
            } else {
                String::new()
            };
            let _ = writeln!(
                text,
                "{:<64}  {:<6}  {:<24} {:<5}  {:<14}  {:<7}  {}",
                front(group, 64),
                count,
                version,
                type_desc,
                model,
                tps as i64,
                diff
            );
            rows.push(json!({
                "group": group, "count": count, "version": version, "type": type_desc, "model": model,
                "consumeTps": tps, "diffTotal": diff,
            }));
        }
        Ok(Report { text, json: json!({ "groups": rows }) })
    }

    async fn consumer_connection(&self, args: &Args) -> Result<Report> {
        let group = args.need('g')?;
        let cc = self.consumer_connection_info(group, args.get('b')).await?;
        let mut text = String::new();
        for (i, c) in cc.connection_set.iter().enumerate() {
            let _ = writeln!(
                text,
                "{:03}  {:<32} {:<22} {:<8} {}",
                i + 1,
                c.client_id,
                c.client_addr,
                c.language,
                version_desc(c.version)
            );
        }
        text.push_str("\nBelow is subscription:");
        for (i, s) in cc.subscription_table.values().enumerate() {
            let _ = writeln!(text, "{:03}  Topic: {:<40} SubExpression: {}", i + 1, s.topic, s.sub_string);
        }
        let _ = writeln!(text);
        let _ = writeln!(text, "ConsumeType: {}", cc.consume_type.as_deref().unwrap_or(""));
        let _ = writeln!(text, "MessageModel: {}", cc.message_model.as_deref().unwrap_or(""));
        let _ = writeln!(text, "ConsumeFromWhere: {}", cc.consume_from_where.as_deref().unwrap_or(""));
        Ok(Report { text, json: serde_json::to_value(&cc).unwrap_or_default() })
    }

    async fn broker_status(&self, args: &Args) -> Result<Report> {
        let single = args.get('b').is_some();
        let targets = self.targets(args, false).await?;
        let mut text = String::new();
        let mut all = serde_json::Map::new();
        for addr in &targets {
            let kv = self.runtime_info(addr).await?;
            for (k, v) in &kv {
                if single {
                    let _ = writeln!(text, "{k:<32}: {v}");
                } else {
                    let _ = writeln!(text, "{addr:<24} {k:<32}: {v}");
                }
            }
            all.insert(addr.clone(), serde_json::to_value(&kv).unwrap_or_default());
        }
        Ok(Report { text, json: Value::Object(all) })
    }

    async fn query_msg_by_id(&self, args: &Args) -> Result<Report> {
        let ids = args.need('i')?;
        let mut text = String::new();
        let mut found = Vec::new();
        for id in ids.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if decode_offset_msg_id(id).is_none() {
                return Err(CliError::NotFound(format!(
                    "query message by id finished, but no message: {id:?} is not an offset message id \
                     (for a client message id use queryMsgByKey/queryMsgByUniqueKey with the topic)"
                )));
            }
            let m = self.client.view_message(id).await.map_err(|e| match e.code() {
                Some(_) => CliError::NotFound(format!("query message by id {id} finished, but no message: {e}")),
                None => CliError::from(e),
            })?;
            text.push_str(&message_detail(&m));
            text.push('\n');
            found.push(message_json(&m));
        }
        Ok(Report { text, json: json!({ "messages": found }) })
    }

    async fn query_msg_by_key(&self, args: &Args) -> Result<Report> {
        let topic = args.need('t')?;
        let key = args.need('k')?;
        let mut msgs = self.client.query_message(topic, key, QUERY_BY_KEY_MAX, 0, i64::MAX, false).await?;
        if msgs.is_empty() {
            return Err(CliError::NotFound(format!(
                "query message by key {key:?} in topic {topic} finished, but no message"
            )));
        }
        msgs.sort_by_key(|m| (m.queue_id, m.queue_offset));
        let mut text = format!("{:<50} {:>4} {:>40}\n", "#Message ID", "#QID", "#Offset");
        for m in &msgs {
            let _ = writeln!(text, "{:<50} {:>4} {:>40}", m.msg_id(), m.queue_id, m.queue_offset);
        }
        Ok(Report { text, json: json!({ "messages": msgs.iter().map(message_json).collect::<Vec<_>>() }) })
    }

    async fn pull_one(
        &self,
        group: &str,
        queue: &MessageQueue,
        offset: u64,
        max: u32,
    ) -> Result<crate::client::PullResult> {
        let addr = self.client.master_addr_for(&queue.topic, &queue.broker_name).await?;
        let mut req = PullRequest::new(group, queue.clone(), offset);
        req.sys_flag = pull_flag::SUBSCRIPTION;
        req.max_msg_nums = max;
        req.suspend_timeout_ms = 0;
        Ok(self.client.pull_message(&addr, &req, false).await?)
    }

    async fn query_msg_by_offset(&self, args: &Args) -> Result<Report> {
        let topic = args.need('t')?;
        let broker_name = args.need('b')?;
        let queue_id: u32 = args.parse('i')?.unwrap_or(0);
        let offset: u64 = args.parse('o')?.unwrap_or(0);
        let queue = MessageQueue { broker_name: broker_name.to_owned(), queue_id, topic: topic.to_owned() };
        let result = self.pull_one(TOOLS_CONSUMER_GROUP, &queue, offset, 1).await?;
        let Some(m) = result.messages.into_iter().find(|m| m.queue_offset == offset) else {
            return Err(CliError::NotFound(format!(
                "no message at offset {offset} of {topic}:{broker_name}:{queue_id} ({:?}, queue holds {}..{})",
                result.status, result.min_offset, result.max_offset
            )));
        };
        Ok(Report { text: message_detail(&m), json: json!({ "messages": [message_json(&m)] }) })
    }

    async fn reset_offset_by_time(&self, args: &Args) -> Result<Report> {
        let group = args.need('g')?;
        let topic = args.need('t')?;
        let ts_text = args.need('s')?;
        let timestamp = parse_timestamp(ts_text)?;
        let force = args.bool('f').unwrap_or(true);
        let route = self.route(topic).await?;
        let mut all = ResetOffsetBody::default();
        for (_, addr) in Self::route_masters(&route) {
            let cmd = self
                .client
                .request(request::INVOKE_BROKER_TO_RESET_OFFSET)
                .with_field("topic", topic)
                .with_field("group", group)
                .with_field("timestamp", timestamp)
                .with_field("isForce", force)
                .with_field("isC", args.has('c'));
            let resp = self.broker_call(&addr, cmd).await?;
            let part =
                ResetOffsetBody::parse(&resp.body).map_err(|e| CliError::Failed(format!("malformed reply: {e}")))?;
            all.offset_table.extend(part.offset_table);
        }
        let mut text = format!(
            "rollback consumer offset by specified group[{group}], topic[{topic}], force[{force}], timestamp(string)[{ts_text}], timestamp(long)[{timestamp}]\n"
        );
        let _ = writeln!(text, "{:<40}  {:<40}  {:<40}", "#brokerName", "#queueId", "#offset");
        let mut rows = Vec::new();
        for (mq, offset) in &all.offset_table {
            let _ = writeln!(text, "{:<40}  {:<40}  {:<40}", front(&mq.broker_name, 32), mq.queue_id, offset);
            rows.push(json!({ "brokerName": mq.broker_name, "queueId": mq.queue_id, "offset": offset }));
        }
        Ok(Report {
            text,
            json: json!({ "group": group, "topic": topic, "timestamp": timestamp, "force": force, "offsets": rows }),
        })
    }

    async fn send_message(&self, args: &Args) -> Result<Report> {
        let topic = args.need('t')?;
        check_topic_name(topic).map_err(CliError::Usage)?;
        let mut msg = Message::new(topic, args.need('p')?.as_bytes().to_vec());
        if let Some(k) = args.get('k') {
            msg = msg.with_keys([k]);
        }
        if let Some(t) = args.get('c') {
            msg = msg.with_tags(t);
        }
        let producer = Producer::new(self.client.clone(), TOOLS_PRODUCER_GROUP);
        let queue_id: Option<u32> = args.parse('i')?;
        let result = match (args.get('b'), queue_id) {
            (Some(b), Some(q)) => {
                let mq = MessageQueue { broker_name: b.to_owned(), queue_id: q, topic: topic.to_owned() };
                producer.send_to_queue(msg, &mq).await
            }
            (None, Some(q)) => producer.send_to_queue_id(msg, q).await,
            (Some(b), None) => {
                let queues = producer.publish_queues(topic).await?;
                match queues.iter().find(|q| q.broker_name == b) {
                    Some(mq) => producer.send_to_queue(msg, mq).await,
                    None => {
                        return Err(CliError::NotFound(format!("broker {b} has no writable queue of topic {topic}")));
                    }
                }
            }
            (None, None) => producer.send(msg).await,
        };
        let r = result?;
        let mut text = format!("{:<32}  {:<4}  {:<20}    {}\n", "#Broker Name", "#QID", "#Send Result", "#MsgId");
        let _ = writeln!(
            text,
            "{:<32}  {:<4}  {:<20}    {}",
            r.queue.broker_name,
            r.queue.queue_id,
            r.status.name(),
            r.msg_id
        );
        let json = json!({
            "brokerName": r.queue.broker_name, "queueId": r.queue.queue_id, "queueOffset": r.queue_offset,
            "sendStatus": r.status.name(), "msgId": r.msg_id, "offsetMsgId": r.offset_msg_id,
        });
        if r.status != crate::client::SendStatus::SendOk {
            if !args.json {
                print!("{text}");
            }
            return Err(CliError::Failed(format!("send status {}", r.status.name())));
        }
        Ok(Report { text, json })
    }

    async fn consume_message(&self, args: &Args) -> Result<Report> {
        let topic = args.need('t')?;
        let group = args.get('g').unwrap_or(TOOLS_CONSUMER_GROUP).to_owned();
        let count: u64 = args.parse('c')?.unwrap_or(CONSUME_MESSAGE_COUNT_DEFAULT);
        let start_offset: Option<u64> = args.parse('o')?;
        let begin = args.get('s').map(parse_timestamp).transpose()?;
        let end = args.get('e').map(parse_timestamp).transpose()?;
        let queue_id: Option<u32> = args.parse('i')?;
        let mut queues = self.client.subscribe_queues(topic).await?;
        queues.retain(|q| args.get('b').is_none_or(|b| q.broker_name == b) && queue_id.is_none_or(|i| q.queue_id == i));
        queues.sort_by(|a, b| (&a.broker_name, a.queue_id).cmp(&(&b.broker_name, b.queue_id)));
        if queues.is_empty() {
            return Err(CliError::NotFound(format!("topic {topic} has no readable queue matching -b/-i")));
        }
        let mut text = String::new();
        let mut consumed = Vec::new();
        'queues: for queue in &queues {
            let mut offset = match (start_offset, begin) {
                (Some(o), _) => o,
                (None, Some(ts)) => self.client.search_offset(queue, ts).await?,
                (None, None) => self.client.min_offset(queue).await?,
            };
            let last = match end {
                Some(ts) => self.client.search_offset(queue, ts).await?,
                None => self.client.max_offset(queue).await?,
            };
            while offset < last {
                let want = (count - consumed.len() as u64).min(32) as u32;
                let r = self.pull_one(&group, queue, offset, want.max(1)).await?;
                match r.status {
                    PullStatus::Found => {
                        text.push_str("Consume ok\n");
                        for m in &r.messages {
                            if m.queue_offset >= last {
                                break;
                            }
                            let _ = writeln!(
                                text,
                                "MSGID: {} MessageExt [topic={}, queueId={}, queueOffset={}, tags={}, keys={}, storeTimestamp={}] BODY: {}",
                                m.msg_id(),
                                m.topic,
                                m.queue_id,
                                m.queue_offset,
                                m.tags().unwrap_or(""),
                                m.keys().collect::<Vec<_>>().join(" "),
                                m.store_timestamp,
                                String::from_utf8_lossy(&m.body)
                            );
                            consumed.push(message_json(m));
                            if consumed.len() as u64 >= count {
                                break 'queues;
                            }
                        }
                    }
                    PullStatus::NoMatchedMsg => {
                        let _ = writeln!(text, "{queue:?} no matched msg. status=NO_MATCHED_MSG, offset={offset}");
                    }
                    PullStatus::NoNewMsg | PullStatus::OffsetIllegal => {
                        let _ = writeln!(text, "{queue:?} print msg finished. status={:?}, offset={offset}", r.status);
                        break;
                    }
                }
                if r.next_begin_offset <= offset {
                    break;
                }
                offset = r.next_begin_offset;
            }
        }
        Ok(Report { text, json: json!({ "topic": topic, "messages": consumed }) })
    }

    async fn get_broker_config(&self, args: &Args) -> Result<Report> {
        let mut targets: Vec<(String, u64)> = Vec::new();
        if let Some(b) = args.get('b') {
            targets.push((b.to_owned(), 0));
        } else if let Some(c) = args.get('c') {
            targets = self.cluster_brokers(c, false).await?.into_iter().map(|(_, id, a)| (a, id)).collect();
        } else {
            return Err(CliError::Usage("one of -b <brokerAddr> or -c <clusterName> is required".into()));
        }
        let single = args.get('b').is_some();
        let mut text = String::new();
        let mut all = serde_json::Map::new();
        for (addr, id) in &targets {
            let resp = self.broker_call(addr, self.client.request(request::GET_BROKER_CONFIG)).await?;
            let body = String::from_utf8_lossy(&resp.body).into_owned();
            let props = crate::config::properties::parse(&body)
                .map_err(|e| CliError::Failed(format!("malformed broker config from {addr}: {e}")))?;
            match (single, *id) {
                (true, _) => {
                    let _ = writeln!(text, "============{addr}============");
                }
                (false, 0) => {
                    let _ = writeln!(text, "============Master: {addr}============");
                }
                (false, _) => {
                    let _ = writeln!(text, "============My Master: {addr}============");
                }
            }
            let mut map = serde_json::Map::new();
            for e in &props {
                let _ = writeln!(text, "{:<50}=  {}", e.key, e.value);
                map.insert(e.key.clone(), Value::String(e.value.clone()));
            }
            text.push('\n');
            all.insert(addr.clone(), Value::Object(map));
        }
        Ok(Report { text, json: Value::Object(all) })
    }
}

/// RocketMQ's `AllocateMessageQueueAveragely` per topic: which client id each queue goes to.
fn allocate_averagely(mqs: &[MessageQueue], clients: &[String]) -> BTreeMap<MessageQueue, String> {
    let mut out = BTreeMap::new();
    if clients.is_empty() {
        return out;
    }
    let topics: BTreeSet<&str> = mqs.iter().map(|q| q.topic.as_str()).collect();
    for topic in topics {
        let queues: Vec<&MessageQueue> = mqs.iter().filter(|q| q.topic == topic).collect();
        let (n, c) = (queues.len(), clients.len());
        for (index, client) in clients.iter().enumerate() {
            let modulo = n % c;
            let size = if n <= c {
                1
            } else if modulo > 0 && index < modulo {
                n / c + 1
            } else {
                n / c
            };
            let start = if modulo > 0 && index < modulo { index * size } else { index * size + modulo };
            for i in 0..size.min(n.saturating_sub(start)) {
                if let Some(q) = queues.get((start + i) % n) {
                    out.insert((*q).clone(), client.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
pub(super) fn allocate_for_tests(mqs: &[MessageQueue], clients: &[String]) -> BTreeMap<MessageQueue, String> {
    allocate_averagely(mqs, clients)
}
