//! Unit tests: the object-key JSON reader and writer, the option parser, version names, the
//! queue allocation estimate.

use std::collections::BTreeMap;

use super::body::{
    ConsumeStats, OffsetWrapper, ResetOffsetBody, TopicOffset, TopicStatsTable, parse_extended, version_desc,
};
use super::cli::{COMMANDS, CliError, parse_args};
use super::commands::{allocate_for_tests, parse_timestamp, perm_string};
use crate::protocol::body::MessageQueue;

fn mq(broker: &str, queue_id: u32, topic: &str) -> MessageQueue {
    MessageQueue { broker_name: broker.into(), queue_id, topic: topic.into() }
}

#[test]
fn topic_stats_table_is_written_with_object_keys_and_read_back() {
    let mut t = TopicStatsTable::default();
    t.offset_table.insert(mq("b", 0, "T"), TopicOffset { last_update_timestamp: 7, max_offset: 5, min_offset: 0 });
    t.offset_table.insert(mq("b", 1, "T"), TopicOffset { last_update_timestamp: 0, max_offset: 0, min_offset: 0 });
    let text = String::from_utf8(t.to_json()).unwrap();
    assert_eq!(
        text,
        "{\"offsetTable\":{{\"brokerName\":\"b\",\"queueId\":0,\"topic\":\"T\"}:{\"lastUpdateTimestamp\":7,\"maxOffset\":5,\"minOffset\":0},\
         {\"brokerName\":\"b\",\"queueId\":1,\"topic\":\"T\"}:{\"lastUpdateTimestamp\":0,\"maxOffset\":0,\"minOffset\":0}}}"
    );
    assert_eq!(TopicStatsTable::parse(text.as_bytes()).unwrap(), t);
}

#[test]
fn consume_stats_round_trip_and_java_text() {
    let mut s = ConsumeStats { consume_tps: 1.5, ..Default::default() };
    s.offset_table.insert(
        mq("broker-a", 3, "TopicTest"),
        OffsetWrapper { broker_offset: 10, consumer_offset: 4, last_timestamp: 99 },
    );
    let text = String::from_utf8(s.to_json()).unwrap();
    assert!(text.starts_with("{\"consumeTps\":1.5,\"offsetTable\":{{\"brokerName\":\"broker-a\""), "{text}");
    assert_eq!(ConsumeStats::parse(text.as_bytes()).unwrap(), s);
    assert_eq!(s.total_diff(), 6);
    // What a Java broker sends: whitespace, a whole-number double, members in another order.
    let java = br#"{"offsetTable":{ {"topic":"T","brokerName":"b","queueId":2} : {"consumerOffset":1,"brokerOffset":3,"lastTimestamp":0}},"consumeTps":0.0}"#;
    let parsed = ConsumeStats::parse(java).unwrap();
    assert_eq!(parsed.offset_table[&mq("b", 2, "T")].broker_offset, 3);
    assert_eq!(
        String::from_utf8(ConsumeStats::default().to_json()).unwrap(),
        "{\"consumeTps\":0.0,\"offsetTable\":{}}"
    );
}

#[test]
fn reset_offset_body_round_trip() {
    let mut b = ResetOffsetBody::default();
    b.offset_table.insert(mq("b", 0, "T"), 42);
    let text = String::from_utf8(b.to_json()).unwrap();
    assert_eq!(text, "{\"offsetTable\":{{\"brokerName\":\"b\",\"queueId\":0,\"topic\":\"T\"}:42}}");
    assert_eq!(ResetOffsetBody::parse(text.as_bytes()).unwrap(), b);
}

#[test]
fn extended_parser_cases() {
    let cases: &[(&str, Result<&str, ()>)] = &[
        (r#"{"a":1}"#, Ok(r#"{"a":1}"#)),
        (r#"{0:"x",1:"y"}"#, Ok(r#"{"0":"x","1":"y"}"#)),
        (r#"{"s":"a\"b\\c\u00e9"}"#, Ok(r#"{"s":"a\"b\\cé"}"#)),
        (r#"[true,false,null,-1.5e3]"#, Ok(r#"[true,false,null,-1500.0]"#)),
        (r#"{[1]:2}"#, Ok(r#"{"[1]":2}"#)),
        (r#"{"a":1"#, Err(())),
        (r#"{"a" 1}"#, Err(())),
        (r#"{"a":1} x"#, Err(())),
        (r#""unterminated"#, Err(())),
        ("", Err(())),
        ("{\"a\":tru}", Err(())),
    ];
    for (input, want) in cases {
        let got = parse_extended(input.as_bytes()).map(|v| v.to_string());
        match want {
            Ok(w) => assert_eq!(got.as_deref(), Ok(*w), "input {input}"),
            Err(()) => assert!(got.is_err(), "input {input} gave {got:?}"),
        }
    }
    let deep = "[".repeat(10_000);
    assert!(parse_extended(deep.as_bytes()).is_err());
}

#[test]
fn extended_parser_never_panics_on_garbage() {
    let seeds: &[&[u8]] =
        &[b"{\"offsetTable\":{{\"a\":1}:{\"b\":[1,2]}}}", b"{\"x\":\"\\u12\"}", b"\"\\", b"-", b"{{{{"];
    for seed in seeds {
        for cut in 0..=seed.len() {
            let _ = parse_extended(&seed[..cut]);
            let _ = ConsumeStats::parse(&seed[..cut]);
            let _ = TopicStatsTable::parse(&seed[..cut]);
        }
    }
}

#[test]
fn map_with_a_key_that_is_not_a_queue_is_refused() {
    assert!(TopicStatsTable::parse(br#"{"offsetTable":{"plain":{}}}"#).is_err());
    assert!(TopicStatsTable::parse(br#"{"offsetTable":[]}"#).is_err());
    assert!(TopicStatsTable::parse(br#"{}"#).unwrap().offset_table.is_empty());
}

#[test]
fn version_names() {
    for (v, name) in [
        (401, "V4_9_4"),
        (400, "V4_9_4_SNAPSHOT"),
        (275, "V4_3_1"),
        (373, "V4_8_0"),
        (212, "V4_0_0_SNAPSHOT"),
        (412, "V5_0_0_SNAPSHOT"),
    ] {
        assert_eq!(version_desc(v), name, "{v}");
    }
}

#[test]
fn option_parsing() {
    let spec = COMMANDS.iter().find(|c| c.name == "updateTopic").unwrap();
    let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let a = parse_args(spec, &words("-t T -b 1.2.3.4:10911 --readQueueNums 4 --writeQueueNums=2 -n ns:9876 --json"))
        .unwrap();
    assert_eq!(a.get('t'), Some("T"));
    assert_eq!(a.get('r'), Some("4"));
    assert_eq!(a.get('w'), Some("2"));
    assert_eq!(a.namesrv.as_deref(), Some("ns:9876"));
    assert!(a.json);
    for bad in ["-b x", "-t T -z 1", "-t", "-t T extra", "-t T --nope"] {
        assert!(matches!(parse_args(spec, &words(bad)), Err(CliError::Usage(_))), "{bad}");
    }
    let c = COMMANDS.iter().find(|c| c.name == "clusterList").unwrap();
    assert!(parse_args(c, &words("-m")).unwrap().has('m'));
}

#[test]
fn timestamps_and_perms() {
    assert_eq!(parse_timestamp("1700000000000").unwrap(), 1_700_000_000_000);
    assert!(parse_timestamp("now").unwrap() > 1_700_000_000_000);
    assert!(parse_timestamp("2024-01-02#03:04:05:006").unwrap() > 1_700_000_000_000);
    assert!(parse_timestamp("yesterday").is_err());
    assert_eq!(perm_string(6), "RW-");
    assert_eq!(perm_string(7), "RWX");
    assert_eq!(perm_string(4), "R--");
}

#[test]
fn averaged_allocation_matches_rocketmq() {
    let mqs: Vec<MessageQueue> = (0..5).map(|i| mq("b", i, "T")).collect();
    let clients = vec!["c1".to_owned(), "c2".to_owned()];
    let got: BTreeMap<u32, String> =
        allocate_for_tests(&mqs, &clients).into_iter().map(|(q, c)| (q.queue_id, c)).collect();
    let want: BTreeMap<u32, String> =
        [(0, "c1"), (1, "c1"), (2, "c1"), (3, "c2"), (4, "c2")].into_iter().map(|(q, c)| (q, c.to_owned())).collect();
    assert_eq!(got, want);
    let one: Vec<MessageQueue> = vec![mq("b", 0, "T")];
    assert_eq!(allocate_for_tests(&one, &clients).len(), 1);
}
