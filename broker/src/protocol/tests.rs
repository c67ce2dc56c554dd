//! Message ids, route and heartbeat JSON, properties and topic names.

use super::body::*;
use super::message_id::*;
use super::*;

#[test]
fn offset_msg_id_round_trips() {
    let host: std::net::SocketAddr = "10.1.2.3:10911".parse().unwrap();
    let id = offset_msg_id(host, 0x0012_3456_789A);
    assert_eq!(id, "0A01020300002A9F000000123456789A");
    assert_eq!(decode_offset_msg_id(&id), Some((host, 0x0012_3456_789A)));
    for bad in ["", "XYZ", "0A01", "0A01020300002A9F000000123456789AFF"] {
        assert_eq!(decode_offset_msg_id(bad), None, "{bad}");
    }
    let ids = UniqueIds::new("127.0.0.1".parse().unwrap());
    let (a, b) = (ids.next(), ids.next());
    assert_eq!(a.len(), 32);
    assert!(a.starts_with("7F000001"));
    assert_ne!(a, b);
}

#[test]
fn route_json_has_what_every_client_needs() {
    let route = TopicRouteData {
        broker_datas: vec![BrokerData {
            broker_addrs: [(0, "127.0.0.1:10911".to_string())].into(),
            broker_name: "broker-a".into(),
            cluster: "DefaultCluster".into(),
            enable_acting_master: false,
        }],
        queue_datas: vec![QueueData {
            broker_name: "broker-a".into(),
            perm: 6,
            read_queue_nums: 4,
            write_queue_nums: 4,
            topic_sys_flag: 0,
        }],
        ..Default::default()
    };
    let text = String::from_utf8(to_json(&route)).unwrap();
    assert_eq!(
        text,
        r#"{"brokerDatas":[{"brokerAddrs":{"0":"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
    );
    // fastjson's bare integer keys and the pre-4.9 member name parse too.
    let java = br#"{"brokerDatas":[{"brokerAddrs":{0:"h:1",1:"h:2"},"brokerName":"b","cluster":"c"}],"queueDatas":[{"brokerName":"b","perm":6,"readQueueNums":4,"topicSynFlag":0,"writeQueueNums":4}]}"#;
    let parsed: TopicRouteData = parse(java).unwrap();
    assert_eq!(parsed.broker_datas[0].broker_addrs[&1], "h:2");
}

#[test]
fn heartbeat_from_a_java_client_parses() {
    let body = br#"{"clientID":"10.0.0.5@12345#91234567","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"g1","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[2598919],"expressionType":"TAG","subString":"TagA","subVersion":1690000000000,"tagsSet":["TagA"],"topic":"T"}],"unitMode":false}],"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"},{"groupName":"pg"}],"heartbeatFingerprint":1}"#;
    let hb: HeartbeatData = parse(body).unwrap();
    assert_eq!(hb.consumer_data_set[0].subscription_data_set[0].code_set, vec![2598919]);
    assert_eq!(hb.producer_data_set.len(), 2);
}

#[test]
fn properties_parse_as_java_does() {
    let text = "TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2\u{2}EMPTY\u{1}\u{2}";
    assert_eq!(parse_properties(text), vec![("TAGS".into(), "TagA".into()), ("KEYS".into(), "k1 k2".into())]);
    assert_eq!(property(text, "KEYS"), Some("k1 k2"));
    assert_eq!(encode_properties([("A", "1"), ("B", "2")]), "A\u{1}1\u{2}B\u{1}2");
}

#[test]
fn topic_names_are_checked() {
    for (name, ok) in [
        ("TopicTest", true),
        ("%RETRY%g", true),
        ("a b", false),
        ("", false),
        (&"x".repeat(128), false),
        ("t/1", false),
    ] {
        assert_eq!(check_topic_name(name).is_ok(), ok, "{name}");
    }
}
