//! Name server tests: the route table driven by registrations and a clock, the processor's
//! answers (shapes, codes, remarks, KV persistence, config), and a real server over TCP.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::route::{MASTER_ID, Registration, Removed};
use super::*;
use crate::protocol::body::{self, RegisterBrokerBody, TopicConfigSerializeWrapper};
use crate::protocol::{DataVersion, TopicConfig, request, response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::remoting::{Client, RemotingCommand};

const CLUSTER: &str = "DefaultCluster";
const MASTER_A: &str = "10.0.0.1:10911";
const SLAVE_A: &str = "10.0.0.2:10911";
const MASTER_B: &str = "10.0.0.3:10911";

/// A topic config table: (topic, perm, queues).
fn topics(version: i64, list: &[(&str, u32, u32)]) -> TopicConfigSerializeWrapper {
    let mut table = BTreeMap::new();
    for &(name, perm, queues) in list {
        let mut config = TopicConfig::new(name);
        config.perm = perm;
        config.read_queue_nums = queues;
        config.write_queue_nums = queues;
        table.insert(name.to_owned(), config);
    }
    TopicConfigSerializeWrapper {
        data_version: DataVersion { timestamp: 1_000, counter: version },
        topic_config_table: table,
    }
}

/// Registers `addr` as `name`/`id` at `now` over connection `conn`.
fn register(
    table: &mut RouteTable,
    name: &str,
    addr: &str,
    id: u64,
    wrapper: &TopicConfigSerializeWrapper,
    conn: Option<u64>,
    now: u64,
) -> route::RegisterResult {
    let ha = format!("{addr}-ha");
    let reg = Registration {
        cluster_name: CLUSTER,
        broker_addr: addr,
        broker_name: name,
        broker_id: id,
        ha_server_addr: &ha,
        topic_config: wrapper,
        filter_servers: Some(&[]),
        conn_id: conn,
    };
    table.register(&reg, now)
}

fn route_json(table: &RouteTable, topic: &str) -> Option<String> {
    table.route(topic).map(|r| String::from_utf8(crate::protocol::body::to_json(&r)).unwrap())
}

/// A master and a slave of broker-a serving topic T with 4 queues.
fn master_and_slave() -> RouteTable {
    let mut table = RouteTable::new();
    let t = topics(1, &[("T", 6, 4)]);
    let master = register(&mut table, "broker-a", MASTER_A, MASTER_ID, &t, Some(1), 0);
    assert_eq!(master, route::RegisterResult::default(), "a master gets no master address");
    let slave = register(&mut table, "broker-a", SLAVE_A, 1, &t, Some(2), 0);
    assert_eq!(slave.master_addr.as_deref(), Some(MASTER_A));
    assert_eq!(slave.ha_server_addr.as_deref(), Some("10.0.0.1:10911-ha"));
    table
}

const ROUTE_T: &str = r#"{"brokerDatas":[{"brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;

#[test]
fn master_and_slave_route_has_the_exact_shape() {
    let table = master_and_slave();
    assert_eq!(route_json(&table, "T").as_deref(), Some(ROUTE_T));
    assert_eq!(route_json(&table, "nope"), None);
}

#[test]
fn only_master_registrations_update_queue_data() {
    let mut table = RouteTable::new();
    register(&mut table, "broker-a", SLAVE_A, 1, &topics(1, &[("T", 6, 4)]), None, 0);
    assert_eq!(route_json(&table, "T"), None, "a slave's topics make no route");
    let slave = register(&mut table, "broker-a", SLAVE_A, 1, &topics(1, &[("T", 6, 4)]), None, 0);
    assert_eq!(slave, route::RegisterResult::default(), "no master registered yet");
    register(&mut table, "broker-a", MASTER_A, 0, &topics(1, &[("T", 6, 8)]), None, 0);
    let route = table.route("T").unwrap();
    assert_eq!(route.queue_datas[0].write_queue_nums, 8);
}

#[test]
fn queue_data_changes_only_with_a_new_data_version() {
    let mut table = RouteTable::new();
    register(&mut table, "broker-a", MASTER_A, 0, &topics(1, &[("T", 6, 4)]), None, 0);
    // Same version, other content: ignored, as Java does.
    register(&mut table, "broker-a", MASTER_A, 0, &topics(1, &[("T", 6, 4), ("U", 6, 2)]), None, 0);
    assert!(table.route("U").is_none());
    // A new version adds U and keeps T (registrations never remove topics).
    register(&mut table, "broker-a", MASTER_A, 0, &topics(2, &[("U", 6, 2)]), None, 0);
    assert!(table.route("U").is_some());
    assert!(table.route("T").is_some());
}

#[test]
fn same_address_under_a_new_id_replaces_the_old_entry() {
    let mut table = master_and_slave();
    // The master goes away; the slave is promoted and registers its address as id 0.
    table.remove_broker_addr(MASTER_A);
    register(&mut table, "broker-a", SLAVE_A, 0, &topics(2, &[("T", 6, 4)]), None, 0);
    let route = table.route("T").unwrap();
    assert_eq!(route.broker_datas[0].broker_addrs, BTreeMap::from([(0, SLAVE_A.to_owned())]));
}

#[test]
fn brokers_expire_after_the_expiry_time() {
    let mut table = master_and_slave();
    register(&mut table, "broker-b", MASTER_B, 0, &topics(1, &[("T", 6, 2)]), None, 60_000);
    assert!(table.remove_expired(120_000, 120_000).is_empty(), "exactly 120 s is not expired yet");
    assert!(!table.any_expired(120_000, 120_000));
    let removed = table.remove_expired(120_001, 120_000);
    let mut addrs: Vec<_> = removed.iter().map(|r| r.broker_addr.as_str()).collect();
    addrs.sort();
    assert_eq!(addrs, [MASTER_A, SLAVE_A]);
    assert_eq!(
        route_json(&table, "T").as_deref(),
        Some(
            r#"{"brokerDatas":[{"brokerAddrs":{"0":"10.0.0.3:10911"},"brokerName":"broker-b","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-b","perm":6,"readQueueNums":2,"topicSysFlag":0,"writeQueueNums":2}]}"#
        )
    );
    assert_eq!(table.remove_expired(180_001, 120_000).len(), 1);
    assert_eq!(route_json(&table, "T"), None);
    assert_eq!(
        String::from_utf8(body::to_json(&table.cluster_info())).unwrap(),
        r#"{"brokerAddrTable":{},"clusterAddrTable":{}}"#
    );
    assert!(table.topics().topic_list.is_empty());
}

#[test]
fn a_slave_leaving_keeps_the_master_and_its_queues() {
    let mut table = master_and_slave();
    let removed = table.remove_broker_addr(SLAVE_A);
    assert_eq!(removed, Some(Removed { broker_addr: SLAVE_A.to_owned(), conn_id: Some(2) }));
    let route = table.route("T").unwrap();
    assert_eq!(route.broker_datas[0].broker_addrs, BTreeMap::from([(0, MASTER_A.to_owned())]));
    assert_eq!(route.queue_datas.len(), 1);
    assert_eq!(table.remove_broker_addr("1.2.3.4:5"), None);
}

#[test]
fn a_master_leaving_alone_keeps_the_queues_for_its_slave() {
    let mut table = master_and_slave();
    table.unregister(CLUSTER, MASTER_A, "broker-a", 0);
    let route = table.route("T").unwrap();
    assert_eq!(route.broker_datas[0].broker_addrs, BTreeMap::from([(1, SLAVE_A.to_owned())]));
    let slave = register(&mut table, "broker-a", SLAVE_A, 1, &topics(1, &[]), None, 0);
    assert_eq!(slave.master_addr, None, "no live master");
}

#[test]
fn unregistering_the_last_address_removes_the_broker() {
    let mut table = master_and_slave();
    assert!(table.unregister(CLUSTER, SLAVE_A, "broker-a", 1));
    assert!(table.unregister(CLUSTER, MASTER_A, "broker-a", 0));
    assert!(!table.unregister(CLUSTER, MASTER_A, "broker-a", 0), "already gone");
    assert_eq!(route_json(&table, "T"), None);
    assert!(table.cluster_info().cluster_addr_table.is_empty());
    assert!(table.live_broker(MASTER_A).is_none());
}

#[test]
fn a_closed_connection_removes_what_registered_over_it() {
    let mut table = master_and_slave();
    assert!(table.remove_connection(99).is_empty());
    assert!(table.has_connection(2));
    assert_eq!(table.remove_connection(2), [Removed { broker_addr: SLAVE_A.to_owned(), conn_id: Some(2) }]);
    // The master re-registers over a new connection; the old one closing changes nothing.
    register(&mut table, "broker-a", MASTER_A, 0, &topics(1, &[("T", 6, 4)]), Some(3), 10);
    assert!(table.remove_connection(1).is_empty());
    assert!(table.route("T").is_some());
    assert_eq!(table.remove_connection(3).len(), 1);
    assert!(table.route("T").is_none());
}

#[test]
fn write_permission_is_wiped_and_restored() {
    let mut table = master_and_slave();
    register(&mut table, "broker-a", MASTER_A, 0, &topics(2, &[("T", 6, 4), ("U", 7, 1)]), None, 0);
    register(&mut table, "broker-b", MASTER_B, 0, &topics(1, &[("T", 6, 4)]), None, 0);
    assert_eq!(table.set_write_perm("broker-a", true), 2);
    let perms = |table: &RouteTable, topic: &str| -> Vec<(String, u32)> {
        table.route(topic).unwrap().queue_datas.into_iter().map(|q| (q.broker_name, q.perm)).collect()
    };
    assert_eq!(perms(&table, "T"), [("broker-a".to_owned(), 4), ("broker-b".to_owned(), 6)]);
    assert_eq!(perms(&table, "U"), [("broker-a".to_owned(), 5)]);
    assert_eq!(table.set_write_perm("broker-a", false), 2);
    assert_eq!(perms(&table, "U"), [("broker-a".to_owned(), 6)], "ADD sets read|write, as Java does");
    assert_eq!(table.set_write_perm("nobody", true), 0);
}

#[test]
fn topic_lists_and_cluster_info() {
    let mut table = master_and_slave();
    register(&mut table, "broker-a", MASTER_A, 0, &topics(2, &[("T", 6, 4), ("A", 6, 1)]), None, 0);
    let other = Registration {
        cluster_name: "Other",
        broker_addr: MASTER_B,
        broker_name: "broker-b",
        broker_id: 0,
        ha_server_addr: "",
        topic_config: &topics(1, &[("B", 6, 1)]),
        filter_servers: None,
        conn_id: None,
    };
    table.register(&other, 0);
    let json = |v: &dyn Fn(&RouteTable) -> Vec<u8>| String::from_utf8(v(&table)).unwrap();
    assert_eq!(json(&|t| body::to_json(&t.topics())), r#"{"topicList":["A","B","T"]}"#);
    assert_eq!(json(&|t| body::to_json(&t.topics_of_cluster(CLUSTER))), r#"{"topicList":["A","T"]}"#);
    assert_eq!(json(&|t| body::to_json(&t.topics_of_cluster("nope"))), r#"{"topicList":[]}"#);
    assert_eq!(
        json(&|t| body::to_json(&t.system_topics())),
        r#"{"brokerAddr":"10.0.0.1:10911","topicList":["DefaultCluster","Other","broker-a","broker-b"]}"#
    );
    assert_eq!(
        json(&|t| body::to_json(&t.cluster_info())),
        concat!(
            r#"{"brokerAddrTable":{"#,
            r#""broker-a":{"brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false},"#,
            r#""broker-b":{"brokerAddrs":{"0":"10.0.0.3:10911"},"brokerName":"broker-b","cluster":"Other","enableActingMaster":false}},"#,
            r#""clusterAddrTable":{"DefaultCluster":["broker-a"],"Other":["broker-b"]}}"#
        )
    );
    table.delete_topic("T", Some("Other"));
    assert!(table.route("T").is_some(), "T has no queues in cluster Other");
    table.delete_topic("T", Some(CLUSTER));
    assert!(table.route("T").is_none());
    table.delete_topic("B", None);
    assert_eq!(table.topics().topic_list, ["A"]);
}

#[test]
fn unit_topic_lists_follow_the_sys_flag() {
    let mut table = RouteTable::new();
    let mut wrapper = topics(1, &[("plain", 6, 1), ("unit", 6, 1), ("sub", 6, 1), ("both", 6, 1)]);
    for (name, flag) in [("unit", 1), ("sub", 2), ("both", 3)] {
        wrapper.topic_config_table.get_mut(name).unwrap().topic_sys_flag = flag;
    }
    register(&mut table, "broker-a", MASTER_A, 0, &wrapper, None, 0);
    assert_eq!(table.unit_topics().topic_list, ["both", "unit"]);
    assert_eq!(table.has_unit_sub_topics().topic_list, ["both", "sub"]);
    assert_eq!(table.has_unit_sub_ununit_topics().topic_list, ["sub"]);
}

// --- the processor ---

struct Fixture {
    processor: Processor,
    now: Arc<AtomicU64>,
    dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicU64::new(1_000_000));
    let clock_now = now.clone();
    let config = NamesrvConfig { kv_config_path: dir.path().join("kvConfig.json"), ..NamesrvConfig::default() };
    let processor = Processor::with_clock(config, Arc::new(move || clock_now.load(Ordering::Relaxed))).unwrap();
    Fixture { processor, now, dir }
}

fn register_request(name: &str, addr: &str, id: i64, version: i64, list: &[(&str, u32, u32)]) -> RemotingCommand {
    let body = RegisterBrokerBody { filter_server_list: vec![], topic_config_serialize_wrapper: topics(version, list) };
    let body = body::to_json(&body);
    let crc = (crc32fast::hash(&body) & 0x7FFF_FFFF) as i32;
    RemotingCommand::request(request::REGISTER_BROKER)
        .with_field("brokerName", name)
        .with_field("brokerAddr", addr)
        .with_field("clusterName", CLUSTER)
        .with_field("haServerAddr", format!("{addr}-ha"))
        .with_field("brokerId", id)
        .with_field("compressed", false)
        .with_field("bodyCrc32", crc)
        .with_body(body)
}

fn route_request(topic: &str) -> RemotingCommand {
    RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_field("topic", topic)
}

fn kv_request(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
    fields.iter().fold(RemotingCommand::request(code), |r, (k, v)| r.with_field(k, v))
}

/// (code, remark) of an answer.
fn outcome(answer: &RemotingCommand) -> (i32, Option<&str>) {
    (answer.code, answer.remark.as_deref())
}

fn text(answer: &RemotingCommand) -> &str {
    std::str::from_utf8(&answer.body).unwrap()
}

#[tokio::test]
async fn register_answers_the_master_to_a_slave_and_routes_the_topic() {
    let f = fixture();
    let p = &f.processor;
    let master = p.process(Some(1), &register_request("broker-a", MASTER_A, 0, 1, &[("T", 6, 4)])).await;
    assert_eq!(outcome(&master), (0, None));
    assert_eq!(master.field("masterAddr"), None);
    assert!(master.body.is_empty(), "no order-topic config yet");
    let slave = p.process(Some(2), &register_request("broker-a", SLAVE_A, 1, 1, &[("T", 6, 4)])).await;
    assert_eq!(slave.field("masterAddr"), Some(MASTER_A));
    assert_eq!(slave.field("haServerAddr"), Some("10.0.0.1:10911-ha"));
    let route = p.process(None, &route_request("T")).await;
    assert_eq!((route.code, text(&route)), (0, ROUTE_T));
    // Old clients get quoted keys too.
    let mut old = route_request("T");
    old.version = 121;
    assert_eq!(text(&p.process(None, &old).await), ROUTE_T);
}

#[tokio::test]
async fn bad_requests_get_a_code_and_a_remark() {
    let f = fixture();
    let p = &f.processor;
    let mut bad_crc = register_request("broker-a", MASTER_A, 0, 1, &[("T", 6, 4)]);
    bad_crc.ext_fields.insert("bodyCrc32", "12345");
    let mut no_crc = register_request("broker-a", MASTER_A, 0, 1, &[("T", 6, 4)]);
    no_crc.ext_fields.insert("bodyCrc32", "0");
    let mut compressed = register_request("broker-a", MASTER_A, 0, 1, &[]);
    compressed.ext_fields.insert("compressed", "true");
    let mut garbage = register_request("broker-a", MASTER_A, 0, 1, &[]);
    garbage.body = bytes::Bytes::from_static(b"{\"topicConfigSerializeWrapper\":");
    garbage.ext_fields.insert("bodyCrc32", "0");
    let mut no_name = register_request("broker-a", MASTER_A, 0, 1, &[]);
    no_name.ext_fields = crate::remoting::ExtFields::new();
    no_name.ext_fields.insert("brokerAddr", MASTER_A);
    let cases: Vec<(&str, RemotingCommand, i32, &str)> = vec![
        ("crc mismatch", bad_crc, 1, "crc32 not match"),
        ("compressed", compressed, 1, "compressed REGISTER_BROKER bodies are not supported"),
        ("garbage body", garbage, 1, "Failed to decode RegisterBrokerBody"),
        ("missing header", no_name, 1, "the custom field <brokerName> is null"),
        ("negative id", register_request("broker-a", MASTER_A, -1, 1, &[]), 1, "<brokerId> has an invalid value"),
        ("unknown topic", route_request("nope"), 17, "No topic route info in name server for the topic: nope"),
        ("route without topic", RemotingCommand::request(105), 1, "the custom field <topic> is null"),
        ("unknown code", RemotingCommand::request(9999), 3, "request code 9999 is not supported by the name server"),
        ("broker code", RemotingCommand::request(10), 3, "request code 10 (SEND_MESSAGE) is not supported"),
        ("data version without body", kv_request(322, &[("brokerAddr", MASTER_A)]), 1, "needs a DataVersion body"),
        (
            "kv missing",
            kv_request(101, &[("namespace", "ns"), ("key", "k")]),
            22,
            "No config item, Namespace: ns Key: k",
        ),
        ("kv list missing", kv_request(219, &[("namespace", "ns")]), 22, "No config item, Namespace: ns"),
    ];
    for (what, req, code, remark) in cases {
        let answer = p.process(None, &req).await;
        assert_eq!(answer.code, code, "{what}: {:?}", answer.remark);
        assert!(answer.remark.as_deref().unwrap_or_default().contains(remark), "{what}: {:?}", answer.remark);
    }
    assert!(p.routes().topics().topic_list.is_empty(), "no failed registration changed the table");
    assert_eq!(p.process(None, &no_crc).await.code, 0, "crc 0 skips the check");
}

#[tokio::test]
async fn no_input_makes_the_processor_panic() {
    let f = fixture();
    let p = &f.processor;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let codes = [100, 101, 102, 103, 104, 105, 106, 205, 206, 216, 219, 224, 304, 311, 318, 319, 322, 327];
    let fields =
        ["brokerName", "brokerAddr", "clusterName", "brokerId", "topic", "namespace", "key", "value", "cluster"];
    let values = ["", "0", "-1", "99999999999999999999", "true", "x", "\u{e9}", "1.5"];
    let bodies: [&[u8]; 6] =
        [b"", b"{", b"null", b"[]", b"{\"topicConfigSerializeWrapper\":{\"topicConfigTable\":{0:{}}}}", b"\xff\xfe"];
    for _ in 0..2000 {
        let mut req = RemotingCommand::request(codes[next() as usize % codes.len()]);
        for _ in 0..next() % 6 {
            req.ext_fields.insert(fields[next() as usize % fields.len()], values[next() as usize % values.len()]);
        }
        req.body = bytes::Bytes::from_static(bodies[next() as usize % bodies.len()]);
        req.version = if next() % 2 == 0 { 401 } else { 10 };
        let answer = p.process(Some(next() % 4), &req).await;
        assert!(answer.code == 0 || answer.remark.is_some(), "code {} without a remark for {req:?}", answer.code);
    }
}

#[tokio::test]
async fn expiry_and_data_version_queries_use_the_clock() {
    let f = fixture();
    let p = &f.processor;
    p.process(Some(1), &register_request("broker-a", MASTER_A, 0, 7, &[("T", 6, 4)])).await;
    let query = |counter: i64| {
        kv_request(
            322,
            &[("brokerAddr", MASTER_A), ("brokerName", "broker-a"), ("clusterName", CLUSTER), ("brokerId", "0")],
        )
        .with_body(body::to_json(&DataVersion { timestamp: 1_000, counter }))
    };
    let changed = p.process(None, &query(8)).await;
    assert_eq!(changed.field("changed"), Some("true"));
    assert_eq!(body::parse::<DataVersion>(&changed.body).unwrap(), DataVersion { timestamp: 1_000, counter: 7 });
    f.now.fetch_add(100_000, Ordering::Relaxed);
    // Unchanged: the broker counts as registered now.
    assert_eq!(p.process(None, &query(7)).await.field("changed"), Some("false"));
    f.now.fetch_add(100_000, Ordering::Relaxed);
    assert!(p.scan_not_active_brokers().is_empty());
    f.now.fetch_add(20_001, Ordering::Relaxed);
    assert_eq!(p.scan_not_active_brokers().len(), 1);
    assert_eq!(p.process(None, &route_request("T")).await.code, response::TOPIC_NOT_EXIST);
}

#[tokio::test]
async fn kv_config_is_kept_and_persisted() {
    let f = fixture();
    let p = &f.processor;
    let put = |ns: &str, k: &str, v: &str| kv_request(100, &[("namespace", ns), ("key", k), ("value", v)]);
    assert_eq!(outcome(&p.process(None, &put("ns", "k1", "v1")).await), (0, None));
    assert_eq!(p.process(None, &put("ns", "k2", "v2")).await.code, 0);
    assert_eq!(p.process(None, &put(kv::NAMESPACE_ORDER_TOPIC_CONFIG, "T", "broker-a:4")).await.code, 0);
    let get = p.process(None, &kv_request(101, &[("namespace", "ns"), ("key", "k1")])).await;
    assert_eq!((get.code, get.field("value")), (0, Some("v1")));
    let list = p.process(None, &kv_request(219, &[("namespace", "ns")])).await;
    assert_eq!(text(&list), r#"{"table":{"k1":"v1","k2":"v2"}}"#);
    assert_eq!(p.process(None, &kv_request(102, &[("namespace", "ns"), ("key", "k1")])).await.code, 0);
    assert_eq!(p.process(None, &kv_request(101, &[("namespace", "ns"), ("key", "k1")])).await.code, 22);
    let path = f.dir.path().join("kvConfig.json");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        r#"{"configTable":{"ORDER_TOPIC_CONFIG":{"T":"broker-a:4"},"ns":{"k2":"v2"}}}"#
    );
    // Registration answers carry the order-topic namespace.
    let reg = p.process(Some(1), &register_request("broker-a", MASTER_A, 0, 1, &[("T", 6, 4)])).await;
    assert_eq!(text(&reg), r#"{"table":{"T":"broker-a:4"}}"#);
    // A new processor reads the file back.
    let again = KvConfig::load(&path).unwrap();
    assert_eq!(again.get("ns", "k2").as_deref(), Some("v2"));
    assert_eq!(again.get("ns", "k1"), None);
    // Java's own file (fastjson, maybe pretty-printed) loads too; a broken one is an error.
    std::fs::write(&path, "{\n\t\"configTable\":{\n\t\t\"a\":{\n\t\t\t\"b\":\"c\"\n\t\t}\n\t}\n}").unwrap();
    assert_eq!(KvConfig::load(&path).unwrap().get("a", "b").as_deref(), Some("c"));
    std::fs::write(&path, "{\"configTable\":").unwrap();
    assert!(matches!(KvConfig::load(&path), Err(Error::KvCorrupt { .. })));
}

#[tokio::test]
async fn order_topic_conf_appears_when_enabled() {
    let f = fixture();
    let p = &f.processor;
    p.process(Some(1), &register_request("broker-a", MASTER_A, 0, 1, &[("T", 6, 4)])).await;
    let put = kv_request(100, &[("namespace", "ORDER_TOPIC_CONFIG"), ("key", "T"), ("value", "broker-a:4")]);
    p.process(None, &put).await;
    assert!(!text(&p.process(None, &route_request("T")).await).contains("orderTopicConf"));
    let update = RemotingCommand::request(318).with_body("orderMessageEnable=true\n");
    assert_eq!(outcome(&p.process(None, &update).await), (0, None));
    assert!(text(&p.process(None, &route_request("T")).await).contains(r#""orderTopicConf":"broker-a:4""#));
}

#[tokio::test]
async fn namesrv_config_is_read_and_partly_updated() {
    let f = fixture();
    let p = &f.processor;
    let get = || async { text(&p.process(None, &RemotingCommand::request(319)).await).to_owned() };
    let before = get().await;
    assert!(
        before.starts_with("bindAddress=0.0.0.0\nbrokerExpiredMillis=120000\nhttpListenPort=0\nkvConfigPath="),
        "{before}"
    );
    assert!(before.ends_with("listenPort=9876\norderMessageEnable=false\nscanNotActiveBrokerInterval=10000\nserverChannelMaxIdleTimeSeconds=120\n"));
    let cases = [
        ("brokerExpiredMillis=5000\nscanNotActiveBrokerInterval=100", 0, ""),
        ("listenPort=1234", response::NO_PERMISSION, "listenPort cannot change while the name server runs"),
        ("brokerExpiredMillis=1\nlistenPort=1234", response::NO_PERMISSION, "listenPort"),
        ("whatever=1", response::SYSTEM_ERROR, "unknown name server config keys: whatever"),
        ("brokerExpiredMillis=soon", response::SYSTEM_ERROR, "brokerExpiredMillis"),
        ("", 0, ""),
    ];
    for (body, code, remark) in cases {
        let answer = p.process(None, &RemotingCommand::request(318).with_body(body.to_owned())).await;
        assert_eq!(answer.code, code, "{body}");
        assert!(answer.remark.as_deref().unwrap_or_default().contains(remark), "{body}: {:?}", answer.remark);
    }
    let after = get().await;
    assert!(after.contains("brokerExpiredMillis=5000\n") && after.contains("scanNotActiveBrokerInterval=100\n"));
    assert_eq!(p.config().listen_port, 9876);
}

#[test]
fn config_keys_defaults_and_errors() {
    let loaded = NamesrvConfig::from_properties_str("").unwrap();
    assert_eq!(loaded.config.listen_port, 9876);
    assert_eq!(loaded.config.bind_address, "0.0.0.0");
    assert!(loaded.config.kv_config_path.ends_with("namesrv/kvConfig.json"));
    assert_eq!((loaded.config.broker_expired_ms, loaded.config.scan_not_active_broker_interval_ms), (120_000, 10_000));
    let text = "listenPort = 19876\nlistenAddress=127.0.0.1\nkvConfigPath=/tmp/kv.json\nbrokerExpiredMillis=3000\n\
                scanNotActiveBrokerInterval=200\norderMessageEnable=true\nrocketmqHome=/opt/rmq\nlistenport=1\n";
    let loaded = NamesrvConfig::from_properties_str(text).unwrap();
    let c = &loaded.config;
    assert_eq!(
        (c.listen_port, c.bind_address.as_str(), c.listen_addr()),
        (19876, "127.0.0.1", "127.0.0.1:19876".into())
    );
    assert_eq!(c.kv_config_path, std::path::PathBuf::from("/tmp/kv.json"));
    assert_eq!((c.broker_expired_ms, c.scan_not_active_broker_interval_ms, c.order_message_enable), (3000, 200, true));
    assert_eq!(loaded.unknown_keys, ["listenport", "rocketmqHome"]);
    assert_eq!(loaded.describe_unknown().unwrap(), "listenport (did you mean listenPort?), rocketmqHome");
    for bad in ["listenPort=70000", "brokerExpiredMillis=0", "bindAddress=", "scanNotActiveBrokerInterval=-5"] {
        assert!(NamesrvConfig::from_properties_str(bad).is_err(), "{bad}");
    }
    let v6 = NamesrvConfig { bind_address: "::1".into(), listen_port: 1, ..NamesrvConfig::default() };
    assert_eq!(v6.listen_addr(), "[::1]:1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("namesrv.properties");
    std::fs::write(&file, "\u{feff}listenPort=1\n").unwrap();
    assert_eq!(NamesrvConfig::load(&file).unwrap().config.listen_port, 1);
    assert!(NamesrvConfig::load(&dir.path().join("missing")).is_err());
}

// --- over the network ---

#[tokio::test]
async fn serves_brokers_and_clients_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let config = NamesrvConfig {
        listen_port: 0,
        bind_address: "127.0.0.1".into(),
        kv_config_path: dir.path().join("kvConfig.json"),
        ..NamesrvConfig::default()
    };
    let server = start(config).await.unwrap();
    let addr = server.local_addr().to_string();
    let timeout = Duration::from_secs(5);
    let client = Client::default();

    // The broker talks over a socket of its own, to close it below. (`Client::close` forgets the
    // connection but its reader keeps the socket open.)
    let mut broker = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut frame = bytes::BytesMut::new();
    register_request("broker-a", MASTER_A, 0, 1, &[("T", 6, 4)]).encode_frame(&mut frame);
    broker.write_all(&frame).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    let registered = loop {
        if let Some(answer) = crate::remoting::FrameDecoder::default().decode(&mut buf).unwrap() {
            break answer;
        }
        assert_ne!(broker.read_buf(&mut buf).await.unwrap(), 0, "closed before answering");
    };
    assert_eq!((registered.code, registered.is_response()), (0, true));
    let route = client.invoke(&addr, route_request("T"), timeout).await.unwrap();
    assert_eq!(
        (route.code, text(&route)),
        (
            0,
            r#"{"brokerDatas":[{"brokerAddrs":{"0":"10.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
        )
    );
    let unknown = client.invoke(&addr, RemotingCommand::request(12345), timeout).await.unwrap();
    assert_eq!(unknown.code, response::REQUEST_CODE_NOT_SUPPORTED);
    assert!(unknown.remark.unwrap().contains("12345"));
    let missing = client.invoke(&addr, route_request("nope"), timeout).await.unwrap();
    assert_eq!(missing.code, response::TOPIC_NOT_EXIST);

    // The broker's connection closes: it leaves the table at once.
    drop(broker);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let route = client.invoke(&addr, route_request("T"), timeout).await.unwrap();
        if route.code == response::TOPIC_NOT_EXIST {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "broker still routed after its connection closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.shutdown();
}

#[tokio::test]
async fn the_scan_expires_brokers_that_stop_registering() {
    let dir = tempfile::tempdir().unwrap();
    let config = NamesrvConfig {
        listen_port: 0,
        bind_address: "127.0.0.1".into(),
        kv_config_path: dir.path().join("kvConfig.json"),
        broker_expired_ms: 200,
        scan_not_active_broker_interval_ms: 50,
        ..NamesrvConfig::default()
    };
    let server = start(config).await.unwrap();
    let addr = server.local_addr().to_string();
    let broker = Client::default();
    let timeout = Duration::from_secs(5);
    broker.invoke(&addr, register_request("broker-a", MASTER_A, 0, 1, &[("T", 6, 4)]), timeout).await.unwrap();
    assert!(server.processor().routes().route("T").is_some());
    let deadline = tokio::time::Instant::now() + timeout;
    while server.processor().routes().route("T").is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the broker never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give the closed connection's end of file time to reach the client.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Its connection was closed by the name server, as Java does; the client reconnects.
    let request = register_request("broker-a", MASTER_A, 0, 1, &[("T", 6, 4)]);
    let again = match broker.invoke(&addr, request.clone(), timeout).await {
        Ok(answer) => answer,
        // The old connection's end of file arrived only after this request was written on it.
        Err(_) => broker.invoke(&addr, request, timeout).await.unwrap(),
    };
    assert_eq!(again.code, 0);
    assert!(server.processor().routes().route("T").is_some());
}
