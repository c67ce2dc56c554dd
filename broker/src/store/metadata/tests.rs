//! Tests of the metadata files: exact fastjson text, lenient parsing, persistence and fallback.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use super::{
    ConfigFile, ConsumerOffsets, DataVersion, DelayOffsets, MetadataFiles, SubscriptionGroupConfig,
    SubscriptionGroupTable, TopicConfig, TopicFilterType, TopicTable, load, load_limited, quote_integer_keys, sibling,
    write_atomically,
};
use crate::store::Error;

const VERSION: DataVersion = DataVersion { timestamp: 1_690_000_000_000, counter: 7 };

fn topics_example() -> TopicTable {
    let mut t = TopicConfig::new("T");
    t.read_queue_nums = 4;
    t.write_queue_nums = 4;
    TopicTable { data_version: VERSION, topic_config_table: BTreeMap::from([("T".to_owned(), t)]) }
}

fn offsets_example() -> ConsumerOffsets {
    let mut o = ConsumerOffsets::default();
    o.commit("T", "g1", 0, 12);
    o.commit("T", "g1", 1, 9);
    o
}

fn groups_example() -> SubscriptionGroupTable {
    SubscriptionGroupTable {
        data_version: VERSION,
        subscription_group_table: BTreeMap::from([("g1".to_owned(), SubscriptionGroupConfig::new("g1"))]),
    }
}

fn delay_example() -> DelayOffsets {
    DelayOffsets { offset_table: BTreeMap::from([(1, 0), (2, 5), (3, 17)]) }
}

const TOPICS_TEXT: &str = concat!(
    "{\n",
    "\t\"dataVersion\":{\n",
    "\t\t\"counter\":7,\n",
    "\t\t\"timestamp\":1690000000000\n",
    "\t},\n",
    "\t\"topicConfigTable\":{\n",
    "\t\t\"T\":{\n",
    "\t\t\t\"order\":false,\n",
    "\t\t\t\"perm\":6,\n",
    "\t\t\t\"readQueueNums\":4,\n",
    "\t\t\t\"topicFilterType\":\"SINGLE_TAG\",\n",
    "\t\t\t\"topicName\":\"T\",\n",
    "\t\t\t\"topicSysFlag\":0,\n",
    "\t\t\t\"writeQueueNums\":4\n",
    "\t\t}\n",
    "\t}\n",
    "}",
);

const OFFSETS_TEXT: &str =
    concat!("{\n", "\t\"offsetTable\":{\n", "\t\t\"T@g1\":{0:12,1:9\n", "\t\t}\n", "\t}\n", "}",);

const GROUPS_TEXT: &str = concat!(
    "{\n",
    "\t\"dataVersion\":{\n",
    "\t\t\"counter\":7,\n",
    "\t\t\"timestamp\":1690000000000\n",
    "\t},\n",
    "\t\"subscriptionGroupTable\":{\n",
    "\t\t\"g1\":{\n",
    "\t\t\t\"brokerId\":0,\n",
    "\t\t\t\"consumeBroadcastEnable\":true,\n",
    "\t\t\t\"consumeEnable\":true,\n",
    "\t\t\t\"consumeFromMinEnable\":true,\n",
    "\t\t\t\"groupName\":\"g1\",\n",
    "\t\t\t\"notifyConsumerIdsChangedEnable\":true,\n",
    "\t\t\t\"retryMaxTimes\":16,\n",
    "\t\t\t\"retryQueueNums\":1,\n",
    "\t\t\t\"whichBrokerWhenConsumeSlowly\":1\n",
    "\t\t}\n",
    "\t}\n",
    "}",
);

const DELAY_TEXT: &str = concat!("{\n", "\t\"offsetTable\":{1:0,2:5,3:17\n", "\t}\n", "}");

#[test]
fn writes_fastjson_pretty_text() {
    let empty_topics = TopicTable { data_version: VERSION, ..TopicTable::default() };
    let cases: [(&str, String, &str); 7] = [
        ("topics", topics_example().to_fastjson(), TOPICS_TEXT),
        ("offsets", offsets_example().to_fastjson(), OFFSETS_TEXT),
        ("groups", groups_example().to_fastjson(), GROUPS_TEXT),
        ("delay", delay_example().to_fastjson(), DELAY_TEXT),
        ("empty offsets", ConsumerOffsets::default().to_fastjson(), "{\n\t\"offsetTable\":{}\n}"),
        ("empty delay", DelayOffsets::default().to_fastjson(), "{\n\t\"offsetTable\":{}\n}"),
        (
            "empty topics",
            empty_topics.to_fastjson(),
            concat!(
                "{\n",
                "\t\"dataVersion\":{\n",
                "\t\t\"counter\":7,\n",
                "\t\t\"timestamp\":1690000000000\n",
                "\t},\n",
                "\t\"topicConfigTable\":{}\n",
                "}",
            ),
        ),
    ];
    for (name, actual, expected) in cases {
        assert_eq!(actual, expected, "{name}");
    }
}

#[test]
fn file_names_are_rocketmqs() {
    assert_eq!(TopicTable::FILE_NAME, "topics.json");
    assert_eq!(ConsumerOffsets::FILE_NAME, "consumerOffset.json");
    assert_eq!(SubscriptionGroupTable::FILE_NAME, "subscriptionGroup.json");
    assert_eq!(DelayOffsets::FILE_NAME, "delayOffset.json");
}

#[test]
fn parses_java_text_with_bare_keys_and_unknown_members() {
    // As Java writes them (ConcurrentHashMap order, extra members from other versions).
    let offsets = concat!(
        "{\n\t\"dataVersion\":{\"counter\":3,\"timestamp\":1},\n",
        "\t\"offsetTable\":{\n",
        "\t\t\"T@g1\":{2:10,0:12,1:9\n\t\t},\n",
        "\t\t\"%RETRY%g1@g1\":{0:0\n\t\t}\n",
        "\t}\n}",
    );
    let parsed = ConsumerOffsets::parse(offsets.as_bytes()).expect("offsets");
    assert_eq!(parsed.offsets("T", "g1"), Some(&BTreeMap::from([(0, 12), (1, 9), (2, 10)])));
    assert_eq!(parsed.offset("%RETRY%g1", "g1", 0), Some(0));

    let topics = concat!(
        "{\"topicConfigTable\":{\"T\":{\"attributes\":{\"+message.type\":\"NORMAL\"},",
        "\"readQueueNums\":8,\"topicName\":\"T\",",
        "\"topicFilterType\":\"MULTI_TAG\",\"order\":true}},",
        "\"topicQueueMappingInfoMap\":{},",
        "\"dataVersion\":{\"counter\":2,\"timestamp\":5,\"stateVersion\":0}}",
    );
    let parsed = TopicTable::parse(topics.as_bytes()).expect("topics");
    let mut t = TopicConfig::new("T");
    t.read_queue_nums = 8;
    t.topic_filter_type = TopicFilterType::MultiTag;
    t.order = true;
    assert_eq!(parsed.topic_config_table, BTreeMap::from([("T".to_owned(), t)]));
    assert_eq!(parsed.data_version, DataVersion { timestamp: 5, counter: 2 });

    let groups = concat!(
        "{\"subscriptionGroupTable\":{\"g1\":{\"groupName\":\"g1\",\"consumeEnable\":false,",
        "\"retryMaxTimes\":3,\"brokerId\":1,\"consumeMessageOrderly\":false,\"attributes\":{},",
        "\"groupRetryPolicy\":{\"type\":\"CUSTOMIZED\",\"exponentialRetryPolicy\":null}}},",
        "\"forbiddenTable\":{},\"dataVersion\":{\"counter\":1,\"timestamp\":2}}",
    );
    let parsed = SubscriptionGroupTable::parse(groups.as_bytes()).expect("groups");
    let mut g = SubscriptionGroupConfig::new("g1");
    g.consume_enable = false;
    g.retry_max_times = 3;
    g.broker_id = 1;
    assert_eq!(parsed.subscription_group_table, BTreeMap::from([("g1".to_owned(), g)]));

    let delay =
        concat!("{\n\t\"dataVersion\":{\"counter\":0,\"timestamp\":0},", "\"offsetTable\":{3:17,1:0,2:5\n\t}\n}",);
    assert_eq!(DelayOffsets::parse(delay.as_bytes()).expect("delay"), delay_example());
}

#[test]
fn parses_standard_json_with_quoted_keys() {
    let cases: [(&str, DelayOffsets); 3] = [
        (r#"{"offsetTable":{"1":0,"2":5,"3":17}}"#, delay_example()),
        (r#"{"offsetTable":{"1":0, 2:5, "3":17}}"#, delay_example()),
        ("{}", DelayOffsets::default()),
    ];
    for (text, expected) in cases {
        assert_eq!(DelayOffsets::parse(text.as_bytes()).expect(text), expected, "{text}");
    }
    let offsets = r#"{"offsetTable":{"T@g1":{"0":12,"1":9}}}"#;
    assert_eq!(ConsumerOffsets::parse(offsets.as_bytes()).expect("offsets"), offsets_example());
}

#[test]
fn missing_members_take_java_defaults() {
    let topics = TopicTable::parse(br#"{"topicConfigTable":{"T":{"topicName":"T"}}}"#).expect("topics");
    let t = &topics.topic_config_table["T"];
    assert_eq!(
        (t.read_queue_nums, t.write_queue_nums, t.perm, t.topic_filter_type, t.topic_sys_flag, t.order),
        (16, 16, 6, TopicFilterType::SingleTag, 0, false)
    );
    assert_eq!(topics.data_version.counter, 0);

    let groups =
        SubscriptionGroupTable::parse(br#"{"subscriptionGroupTable":{"g":{"groupName":"g"}}}"#).expect("groups");
    assert_eq!(groups.subscription_group_table["g"], SubscriptionGroupConfig::new("g"));

    assert_eq!(ConsumerOffsets::parse(b"{}").expect("offsets"), ConsumerOffsets::default());
}

#[test]
fn topic_filter_type_by_name_or_ordinal() {
    let cases: [(&str, Option<TopicFilterType>); 5] = [
        (r#""SINGLE_TAG""#, Some(TopicFilterType::SingleTag)),
        (r#""MULTI_TAG""#, Some(TopicFilterType::MultiTag)),
        ("0", Some(TopicFilterType::SingleTag)),
        ("1", Some(TopicFilterType::MultiTag)),
        (r#""OTHER""#, None),
    ];
    for (json, expected) in cases {
        let text = format!(r#"{{"topicConfigTable":{{"T":{{"topicFilterType":{json}}}}}}}"#);
        let parsed = TopicTable::parse(text.as_bytes()).ok();
        assert_eq!(parsed.map(|t| t.topic_config_table["T"].topic_filter_type), expected, "{json}");
    }
}

#[test]
fn round_trips_through_fastjson_and_standard_json() {
    let mut odd = topics_example();
    let mut t = TopicConfig::new("q\"uo\\te\u{1}\tÄ€😀");
    t.perm = 7;
    t.topic_sys_flag = -1;
    odd.topic_config_table.insert(t.topic_name.clone(), t);

    fn check<T: ConfigFile + serde::Serialize + PartialEq + std::fmt::Debug>(value: &T) {
        let fast = value.to_fastjson();
        assert_eq!(&T::parse(fast.as_bytes()).expect("fastjson"), value, "{fast}");
        let standard = serde_json::to_vec(value).expect("serialize");
        assert_eq!(&T::parse(&standard).expect("standard"), value);
    }
    check(&topics_example());
    check(&odd);
    check(&offsets_example());
    check(&groups_example());
    check(&delay_example());
    check(&DelayOffsets { offset_table: BTreeMap::from([(0, i64::MIN), (u32::MAX, i64::MAX)]) });

    // Without integer keys the fastjson text is standard JSON.
    let value: serde_json::Value = serde_json::from_str(&odd.to_fastjson()).expect("standard json");
    assert!(value["topicConfigTable"].as_object().is_some_and(|m| m.len() == 2));
}

#[test]
fn bare_integer_keys_are_quoted_outside_strings_only() {
    let cases: [(&str, &str); 9] = [
        ("{0:1}", r#"{"0":1}"#),
        ("{ 0 : 1 , -2:3}", r#"{ "0" : 1 , "-2":3}"#),
        (r#"{"a":1,2:3}"#, r#"{"a":1,"2":3}"#),
        ("{\n\t12:9\n}", "{\n\t\"12\":9\n}"),
        (r#"{"a":[1,2]}"#, r#"{"a":[1,2]}"#),
        ("[0,1]", "[0,1]"),
        (r#"{"k{0:1}":2}"#, r#"{"k{0:1}":2}"#),
        (r#"{"k\"{0:1}":2}"#, r#"{"k\"{0:1}":2}"#),
        (r#"{"k\\":{0:1}}"#, r#"{"k\\":{"0":1}}"#),
    ];
    for (input, expected) in cases {
        let (out, inserted) = quote_integer_keys(input.as_bytes());
        assert_eq!(String::from_utf8_lossy(&out), expected, "{input}");
        assert_eq!(out.len(), input.len() + inserted.len(), "{input}");
        assert!(inserted.iter().all(|&p| out.get(p) == Some(&b'"')), "{input}");
    }
}

#[test]
fn parse_errors_point_into_the_original_text() {
    let cases: [&str; 3] = [
        "{\"offsetTable\":{\"T@g\":{0:1,1:x}}}",
        "{\n\t\"offsetTable\":{\n\t\t\"T@g\":{0:1,10:2,11:x\n\t\t}\n\t}\n}",
        "{\"offsetTable\":{\"T@g\":{0:1,1:2}},x}",
    ];
    for text in cases {
        let err = ConsumerOffsets::parse(text.as_bytes()).expect_err(text);
        let at = text.find('x').expect("marker") as u64;
        assert_eq!(err.offset, at, "{text}: {err}");
        assert!(!err.reason.contains(" at line "), "{}", err.reason);
    }
}

/// A fixed-seed xorshift64 generator.
struct XorShift(u64);

impl XorShift {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

fn parse_all(bytes: &[u8]) {
    let _ = TopicTable::parse(bytes);
    let _ = ConsumerOffsets::parse(bytes);
    let _ = SubscriptionGroupTable::parse(bytes);
    let _ = DelayOffsets::parse(bytes);
}

#[test]
fn garbage_never_panics() {
    const ALPHABET: &[u8] = b"{}[]:,\"\\0123456789-. \t\nabcdeflnrstu@TopicTablefset\xff\xc3";
    let seeds = [TOPICS_TEXT, OFFSETS_TEXT, GROUPS_TEXT, DELAY_TEXT];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..20_000 {
        let input: Vec<u8> = match round % 3 {
            0 => (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect(),
            1 => (0..rng.below(96)).map(|_| ALPHABET[rng.below(ALPHABET.len())]).collect(),
            _ => {
                let mut bytes = seeds[rng.below(seeds.len())].as_bytes().to_vec();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(bytes.len());
                    match rng.below(4) {
                        0 => bytes[at] = ALPHABET[rng.below(ALPHABET.len())],
                        1 => {
                            bytes.remove(at);
                        }
                        2 => bytes.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
                        _ => bytes.truncate(at),
                    }
                    if bytes.is_empty() {
                        break;
                    }
                }
                bytes
            }
        };
        parse_all(&input);
    }
    // Deep nesting is refused by serde_json's recursion limit, not by the stack.
    parse_all(&b"{0:".repeat(100_000));
    parse_all(&b"[".repeat(100_000));
    parse_all(&[]);
}

#[test]
fn atomic_write_keeps_a_backup_and_no_tmp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config").join("delayOffset.json");
    let bak = sibling(&path, ".bak");
    let tmp = sibling(&path, ".tmp");

    write_atomically(&path, b"first").expect("first write");
    assert_eq!(fs::read(&path).expect("read"), b"first");
    assert!(!bak.exists(), "no backup of a file that did not exist");
    assert!(!tmp.exists());

    write_atomically(&path, b"second").expect("second write");
    assert_eq!(fs::read(&path).expect("read"), b"second");
    assert_eq!(fs::read(&bak).expect("read bak"), b"first");
    assert!(!tmp.exists());
}

/// The content of a main or backup file in a load scenario.
#[derive(Clone, Copy, Debug)]
enum Content {
    Missing,
    Empty,
    Garbage,
    Valid(u32),
}

/// What `load` should give.
#[derive(Debug, PartialEq)]
enum Outcome {
    Nothing,
    Loaded(u32),
    CorruptMain,
    CorruptBak,
}

fn put(path: &Path, content: Content) {
    match content {
        Content::Missing => {}
        Content::Empty => fs::write(path, b"").expect("write"),
        Content::Garbage => fs::write(path, b"{\"offsetTable\":{1:").expect("write"),
        Content::Valid(level) => {
            let value = DelayOffsets { offset_table: BTreeMap::from([(level, 5)]) };
            fs::write(path, value.to_fastjson()).expect("write");
        }
    }
}

#[test]
fn load_falls_back_to_the_backup() {
    use Content::{Empty, Garbage, Missing, Valid};
    use Outcome::{CorruptBak, CorruptMain, Loaded, Nothing};
    let cases: [(Content, Content, Outcome); 11] = [
        (Missing, Missing, Nothing),
        (Valid(1), Missing, Loaded(1)),
        (Valid(1), Valid(2), Loaded(1)),
        (Valid(1), Garbage, Loaded(1)),
        (Garbage, Valid(2), Loaded(2)),
        (Missing, Valid(2), Loaded(2)),
        (Empty, Valid(2), Loaded(2)),
        (Empty, Missing, Nothing),
        (Garbage, Missing, CorruptMain),
        (Garbage, Garbage, CorruptMain),
        (Missing, Garbage, CorruptBak),
    ];
    for (main, backup, expected) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DelayOffsets::FILE_NAME);
        let bak = sibling(&path, ".bak");
        put(&path, main);
        put(&bak, backup);
        let actual = match load::<DelayOffsets>(&path) {
            Ok(None) => Nothing,
            Ok(Some(v)) => Loaded(v.offset_table.keys().next().copied().unwrap_or(0)),
            Err(Error::Corrupt { file, .. }) if file == path => CorruptMain,
            Err(Error::Corrupt { file, .. }) if file == bak => CorruptBak,
            Err(e) => panic!("{main:?}/{backup:?}: unexpected {e}"),
        };
        assert_eq!(actual, expected, "main {main:?}, backup {backup:?}");
    }
}

#[test]
fn oversized_file_is_refused_unread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(DelayOffsets::FILE_NAME);
    fs::write(&path, delay_example().to_fastjson()).expect("write");
    let small = DelayOffsets { offset_table: BTreeMap::from([(1, 1)]) };

    match load_limited::<DelayOffsets>(&path, 10) {
        Err(Error::Corrupt { file, reason, .. }) => {
            assert_eq!(file, path);
            assert!(reason.contains("exceeds the limit of 10 bytes"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    fs::write(sibling(&path, ".bak"), "{\"offsetTable\":{1:1}}").expect("write bak");
    let loaded = load_limited::<DelayOffsets>(&path, 30).expect("load");
    assert_eq!(loaded, Some(small));
}

#[test]
fn consumer_offset_helpers() {
    let mut o = offsets_example();
    o.commit("T", "g2", 3, 4);
    o.commit("U", "g1", 0, 1);
    o.commit("T", "g1", 1, 2);
    o.offset_table.insert("bad@key@x".to_owned(), BTreeMap::new());

    assert_eq!(o.offset("T", "g1", 1), Some(2), "a rewind is recorded");
    assert_eq!(o.offset("T", "g1", 7), None);
    assert_eq!(o.offset("V", "g1", 0), None);
    assert_eq!(o.groups_of_topic("T").into_iter().collect::<Vec<_>>(), ["g1", "g2"]);
    assert_eq!(o.topics_of_group("g1").into_iter().collect::<Vec<_>>(), ["T", "U"]);
    assert!(o.groups_of_topic("bad").is_empty());

    o.remove_group("g1");
    let keys: Vec<&str> = o.offset_table.keys().map(String::as_str).collect();
    assert_eq!(keys, ["T@g2", "bad@key@x"]);
}

#[test]
fn data_version_next_counts_and_stamps() {
    let mut v = DataVersion { timestamp: 0, counter: 41 };
    v.next();
    assert_eq!(v.counter, 42);
    assert!(v.timestamp > 1_600_000_000_000);
    assert_eq!(DataVersion::default().counter, 0);
}

#[test]
fn metadata_files_persist_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("store").join("config");

    let files = MetadataFiles::open(&config).expect("open empty");
    assert!(files.topics().topic_config_table.is_empty());
    assert!(files.consumer_offsets().offset_table.is_empty());
    assert!(files.subscription_groups().subscription_group_table.is_empty());
    assert!(files.delay_offsets().offset_table.is_empty());
    assert_eq!(files.dir(), config);

    *files.topics() = topics_example();
    *files.consumer_offsets() = offsets_example();
    *files.subscription_groups() = groups_example();
    *files.delay_offsets() = delay_example();
    files.persist_all().expect("persist");

    let expected = [
        ("topics.json", TOPICS_TEXT),
        ("consumerOffset.json", OFFSETS_TEXT),
        ("subscriptionGroup.json", GROUPS_TEXT),
        ("delayOffset.json", DELAY_TEXT),
    ];
    for (name, text) in expected {
        assert_eq!(fs::read_to_string(config.join(name)).expect(name), text, "{name}");
        assert!(!config.join(format!("{name}.tmp")).exists(), "{name}.tmp left behind");
    }

    let reopened = MetadataFiles::open(&config).expect("reopen");
    assert_eq!(*reopened.topics(), topics_example());
    assert_eq!(*reopened.consumer_offsets(), offsets_example());
    assert_eq!(*reopened.subscription_groups(), groups_example());
    assert_eq!(*reopened.delay_offsets(), delay_example());
}

#[test]
fn concurrent_persists_do_not_interleave() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Arc::new(MetadataFiles::open(dir.path()).expect("open"));
    let threads: Vec<_> = (0..8u32)
        .map(|queue_id| {
            let files = Arc::clone(&files);
            std::thread::spawn(move || {
                for offset in 0..25 {
                    files.consumer_offsets().commit("T", "g", queue_id, offset);
                    files.persist_consumer_offsets().expect("persist");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("join");
    }
    files.persist_consumer_offsets().expect("final persist");
    let path = dir.path().join(ConsumerOffsets::FILE_NAME);
    let on_disk = load::<ConsumerOffsets>(&path).expect("load").expect("present");
    assert_eq!(on_disk, *files.consumer_offsets());
    assert_eq!(on_disk.offsets("T", "g").map(BTreeMap::len), Some(8));
    assert!(!sibling(&path, ".tmp").exists());
    assert!(ConsumerOffsets::parse(&fs::read(sibling(&path, ".bak")).expect("bak")).is_ok());
}

#[test]
fn open_refuses_an_unrecoverable_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(TopicTable::FILE_NAME);
    fs::write(&path, "{\"topicConfigTable\":").expect("write");
    match MetadataFiles::open(dir.path()) {
        Err(Error::Corrupt { file, reason, .. }) => {
            assert_eq!(file, path);
            assert!(reason.contains("no backup"), "{reason}");
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
}
