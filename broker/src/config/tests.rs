//! Unit tests of the config module: `.properties` syntax, typed values, validation, the shipped
//! `conf/` files, and a fixed-seed fuzz loop.

use std::path::{Path, PathBuf};

use super::properties::{self, Entry};
use super::*;

fn host() -> HostDefaults {
    HostDefaults { hostname: "test-host".to_owned(), home_dir: PathBuf::from("/home/t"), namesrv_addr: None, cpus: 8 }
}

fn load(text: &str) -> Result<Loaded, ConfigError> {
    BrokerConfig::from_properties_str_for(text, &host())
}

fn pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    properties::parse(text)
        .map(|entries| entries.into_iter().map(|e| (e.key, e.value)).collect())
        .map_err(|e| e.to_string())
}

#[test]
fn properties_syntax() {
    let rows: &[(&str, &[(&str, &str)])] = &[
        ("", &[]),
        ("\n\n  \n\t\n", &[]),
        ("a=b", &[("a", "b")]),
        ("a:b", &[("a", "b")]),
        ("a b", &[("a", "b")]),
        ("a = b", &[("a", "b")]),
        ("a : b", &[("a", "b")]),
        ("a \t=\t b", &[("a", "b")]),
        ("a\x0c:b", &[("a", "b")]),
        ("a     b", &[("a", "b")]),
        ("a==b", &[("a", "=b")]),
        ("a = = b", &[("a", "= b")]),
        ("a b=c", &[("a", "b=c")]),
        ("a", &[("a", "")]),
        ("a=", &[("a", "")]),
        ("a   ", &[("a", "")]),
        ("=b", &[("", "b")]),
        // Trailing blanks are part of the value; leading blanks of the line are not.
        ("a=b  ", &[("a", "b  ")]),
        ("   a=b", &[("a", "b")]),
        ("\x0c\ta=b", &[("a", "b")]),
        // Comments: only as the first non-blank character of a natural line.
        ("# c\n! c\na=b", &[("a", "b")]),
        ("   # c\n\t! c", &[]),
        ("a=b#c", &[("a", "b#c")]),
        ("\\#a=b", &[("#a", "b")]),
        ("# a comment does not continue \\\na=b", &[("a", "b")]),
        // Escaped separators and blanks in keys.
        ("a\\=b=c", &[("a=b", "c")]),
        ("a\\:b:c", &[("a:b", "c")]),
        ("a\\ b c", &[("a b", "c")]),
        ("a\\\\=b", &[("a\\", "b")]),
        // Line continuations.
        ("a=b\\\n   c", &[("a", "bc")]),
        ("a=b\\\r\n\t c\\\n d", &[("a", "bcd")]),
        ("a=b\\\rc", &[("a", "bc")]),
        ("a=b\\\\\nc=d", &[("a", "b\\"), ("c", "d")]),
        ("a=b\\\\\\\nc", &[("a", "b\\c")]),
        ("a=b\\\n\nc=d", &[("a", "b"), ("c", "d")]),
        ("a=b\\\n   \nc=d", &[("a", "b"), ("c", "d")]),
        ("a=b\\", &[("a", "b")]),
        ("a=b\\\n", &[("a", "b")]),
        ("a=b\\\n# not a comment", &[("a", "b# not a comment")]),
        ("ke\\\n  y=v", &[("key", "v")]),
        ("a\\\n =b", &[("a", "b")]),
        // Escapes.
        ("a=\\t\\n\\r\\f", &[("a", "\t\n\r\x0c")]),
        ("a=\\u0041\\u00e9\\u00E9", &[("a", "Aéé")]),
        ("a=\\uD83D\\uDE00", &[("a", "\u{1F600}")]),
        ("\\u0041=b", &[("A", "b")]),
        ("a=\\q\\=\\:", &[("a", "q=:")]),
        ("a=\\\\", &[("a", "\\")]),
        ("a=\\ b", &[("a", " b")]),
        ("a=é ü", &[("a", "é ü")]),
        // Line endings.
        ("a=b\rc=d", &[("a", "b"), ("c", "d")]),
        ("a=b\r\nc=d\r\n", &[("a", "b"), ("c", "d")]),
        ("a=b\n\rc=d", &[("a", "b"), ("c", "d")]),
        // Duplicates are all returned, in order.
        ("a=1\na=2", &[("a", "1"), ("a", "2")]),
    ];
    for (text, expected) in rows {
        let expected: Vec<(String, String)> =
            expected.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        assert_eq!(pairs(text), Ok(expected), "text {text:?}");
    }
}

#[test]
fn properties_line_numbers() {
    let entries = properties::parse("# c\n\na=b\\\n c\r\nd=e").unwrap();
    assert_eq!(
        entries,
        vec![
            Entry { key: "a".to_owned(), value: "bc".to_owned(), line: 3 },
            Entry { key: "d".to_owned(), value: "e".to_owned(), line: 5 },
        ]
    );
}

#[test]
fn properties_syntax_errors() {
    let rows: &[(&str, &str)] = &[
        ("a=\\u12G4", r#"line 1: malformed \uxxxx escape "\u12G": expected four hex digits"#),
        ("x=1\na=\\u12", r#"line 2: malformed \uxxxx escape "\u12": expected four hex digits"#),
        ("a=\\u", r#"line 1: malformed \uxxxx escape "\u": expected four hex digits"#),
        ("\\u00=b", r#"line 1: malformed \uxxxx escape "\u00": expected four hex digits"#),
        ("a=b\\\n  \\u00", r#"line 1: malformed \uxxxx escape "\u00": expected four hex digits"#),
        ("a=\\uD83D", r"line 1: unpaired UTF-16 surrogate \uD83D"),
        ("a=\\uD83Dx", r"line 1: unpaired UTF-16 surrogate \uD83D"),
        ("a=\\uD83D\\u0041", r"line 1: unpaired UTF-16 surrogate \uD83D"),
        ("a=\\uDE00", r"line 1: unpaired UTF-16 surrogate \uDE00"),
    ];
    for (text, expected) in rows {
        assert_eq!(pairs(text), Err((*expected).to_owned()), "text {text:?}");
    }
}

/// A field of a loaded config, printed for comparison.
type Field = fn(&BrokerConfig) -> String;

#[test]
fn typed_values() {
    let rows: &[(&str, Field, &str)] = &[
        ("", |c| c.broker_cluster_name.clone(), "DefaultCluster"),
        ("", |c| c.broker_name.clone(), "test-host"),
        ("", |c| format!("{:?}", c.store_path_root_dir), "\"/home/t/store\""),
        ("", |c| format!("{:?}", c.commit_log_dir()), "\"/home/t/store/commitlog\""),
        ("", |c| format!("{}/{}", c.send_message_thread_pool_nums, c.pull_message_thread_pool_nums), "4/32"),
        ("", |c| format!("{}/{}/{}", c.vip_port(), c.listen_port, c.ha_port()), "10909/10911/10912"),
        ("", |c| format!("{:?}", c.namesrv_addr), "None"),
        ("", |c| format!("{:?}", c.message_delay_level_ms.len()), "18"),
        ("listenPort=10921", |c| format!("{}/{}", c.vip_port(), c.ha_port()), "10919/10922"),
        ("listenPort=10921\nhaListenPort=20000", |c| c.ha_port().to_string(), "20000"),
        ("listenPort = 10931  ", |c| c.listen_port.to_string(), "10931"),
        ("listenPort=+10931", |c| c.listen_port.to_string(), "10931"),
        // Trimmed on purpose: trailing blanks in addresses are a classic misconfiguration.
        ("brokerIP1=10.0.0.1   ", |c| format!("{:?}", c.broker_ip1), "Some(\"10.0.0.1\")"),
        ("brokerIP2=\t10.0.0.2 ", |c| format!("{:?}", c.broker_ip2), "Some(\"10.0.0.2\")"),
        ("brokerIP1=", |c| format!("{:?}", c.broker_ip1), "None"),
        ("haMasterAddress= 10.0.0.1:10912 ", |c| format!("{:?}", c.ha_master_address), "Some(\"10.0.0.1:10912\")"),
        // Other strings keep trailing blanks, as in Java.
        ("brokerName=broker-a  ", |c| format!("{:?}", c.broker_name), "\"broker-a  \""),
        ("brokerName=\\u0062roker", |c| c.broker_name.clone(), "broker"),
        (
            "namesrvAddr= 127.0.0.1:9876;10.0.0.2:9876; ",
            |c| format!("{:?} {:?}", c.namesrv_addr, c.namesrv_addrs),
            "Some(\"127.0.0.1:9876;10.0.0.2:9876;\") [\"127.0.0.1:9876\", \"10.0.0.2:9876\"]",
        ),
        ("namesrvAddr=[::1]:9876", |c| format!("{:?}", c.namesrv_addrs), "[\"[::1]:9876\"]"),
        ("namesrvAddr=", |c| format!("{:?} {:?}", c.namesrv_addr, c.namesrv_addrs), "None []"),
        ("brokerRole=SLAVE\nbrokerId=2", |c| format!("{} {}", c.broker_role, c.broker_id), "SLAVE 2"),
        ("brokerRole= SYNC_MASTER ", |c| format!("{:?}", c.broker_role), "SyncMaster"),
        // Masters are forced to brokerId 0, as RocketMQ does.
        ("brokerId=3", |c| c.broker_id.to_string(), "0"),
        ("brokerRole=SYNC_MASTER\nbrokerId=-1", |c| c.broker_id.to_string(), "0"),
        ("flushDiskType=SYNC_FLUSH", |c| format!("{:?}", c.flush_disk_type), "Sync"),
        ("autoCreateTopicEnable=FALSE", |c| c.auto_create_topic_enable.to_string(), "false"),
        ("slaveReadEnable=True ", |c| c.slave_read_enable.to_string(), "true"),
        ("deleteWhen=04;16", |c| format!("{:?}", c.delete_when_hours), "[4, 16]"),
        ("deleteWhen=4;;23;", |c| format!("{:?}", c.delete_when_hours), "[4, 23]"),
        ("deleteWhen=", |c| format!("{:?}", c.delete_when_hours), "[]"),
        ("fileReservedTime=48", |c| c.file_reserved_time_hours.to_string(), "48"),
        // Clamped, as RocketMQ does.
        ("diskMaxUsedSpaceRatio=99", |c| c.disk_max_used_space_ratio_percent.to_string(), "95"),
        ("diskMaxUsedSpaceRatio=5", |c| c.disk_max_used_space_ratio_percent.to_string(), "10"),
        ("diskMaxUsedSpaceRatio=-3", |c| c.disk_max_used_space_ratio_percent.to_string(), "10"),
        ("registerNameServerPeriod=1000", |c| c.register_name_server_period_ms.to_string(), "10000"),
        ("registerNameServerPeriod=90000", |c| c.register_name_server_period_ms.to_string(), "60000"),
        ("diskSpaceWarningLevelRatio=0.95", |c| c.disk_space_warning_level_ratio.to_string(), "0.95"),
        ("diskSpaceCleanForciblyRatio=1", |c| c.disk_space_clean_forcibly_ratio.to_string(), "1"),
        (
            "messageDelayLevel=1s 2m 3h 1d",
            |c| format!("{:?}", c.message_delay_level_ms),
            "[1000, 120000, 10800000, 86400000]",
        ),
        ("messageDelayLevel=  5s\t10s  ", |c| format!("{:?}", c.message_delay_level_ms), "[5000, 10000]"),
        ("storePathRootDir=/data/rmq", |c| format!("{:?}", c.commit_log_dir()), "\"/data/rmq/commitlog\""),
        (
            "storePathRootDir=/data/rmq\nstorePathCommitLog=/fast/cl",
            |c| format!("{:?}", c.commit_log_dir()),
            "\"/fast/cl\"",
        ),
        ("storePathCommitLog=", |c| format!("{:?}", c.store_path_commit_log), "None"),
        // The last of duplicate keys wins, so an earlier bad value does not matter.
        ("listenPort=1\nlistenPort=10811", |c| c.listen_port.to_string(), "10811"),
        ("mappedFileSizeCommitLog=65536\nmaxMessageSize=65535", |c| c.max_message_size_bytes.to_string(), "65535"),
        ("httpListenPort=0\namqpListenPort=0", |c| format!("{}/{}", c.http_listen_port, c.amqp_listen_port), "0/0"),
        ("haSlaveSpinMicros=0", |c| c.ha_slave_spin_us.to_string(), "0"),
        ("", |c| c.ha_slave_spin_us.to_string(), "50"),
        ("runtimeWorkerThreads=3", |c| c.runtime_workers().to_string(), "3"),
        ("runtimeWorkerThreads=0", |c| (c.runtime_workers() >= 1).to_string(), "true"),
        ("pluginDir=/opt/plugins", |c| format!("{:?}", c.plugin_dir), "Some(\"/opt/plugins\")"),
        (
            "amqpDefaultUser=app\namqpDefaultPass=s3cret\namqpFrameMax=65536\namqpChannelMax=16\namqpHeartbeat=0",
            |c| {
                let (u, p, f) = (&c.amqp_default_user, &c.amqp_default_pass, c.amqp_frame_max_bytes);
                format!("{u}/{p}/{f}/{}/{}", c.amqp_channel_max, c.amqp_heartbeat_s)
            },
            "app/s3cret/65536/16/0",
        ),
        ("transientStorePoolEnable=true", |c| c.transient_store_pool_enable.to_string(), "true"),
        ("msgTraceTopicName=MY_TRACE", |c| c.msg_trace_topic_name.clone(), "MY_TRACE"),
        ("brokerPermission=4", |c| c.broker_permission.to_string(), "4"),
        ("haSlaveFallbehindMax=1073741824", |c| c.ha_slave_fallbehind_max_bytes.to_string(), "1073741824"),
    ];
    for (text, field, expected) in rows {
        match load(text) {
            Ok(loaded) => assert_eq!(field(&loaded.config), *expected, "text {text:?}"),
            Err(error) => panic!("text {text:?}: unexpected error: {error}"),
        }
    }
}

#[test]
fn invalid_values_name_key_value_and_allowed() {
    let rows: &[(&str, &str)] = &[
        ("flushDiskType=FAST", r#"invalid value "FAST" for flushDiskType: expected ASYNC_FLUSH or SYNC_FLUSH"#),
        (
            "flushDiskType=async_flush",
            r#"invalid value "async_flush" for flushDiskType: expected ASYNC_FLUSH or SYNC_FLUSH"#,
        ),
        ("brokerRole=master", r#"invalid value "master" for brokerRole: expected ASYNC_MASTER, SYNC_MASTER or SLAVE"#),
        (
            "aclEnable=yes",
            r#"invalid value "yes" for aclEnable: expected true or false (RocketMQ would silently read this as false)"#,
        ),
        ("listenPort=abc", r#"invalid value "abc" for listenPort: expected an integer from 0 to 65535"#),
        ("listenPort=70000", r#"invalid value "70000" for listenPort: expected an integer from 0 to 65535"#),
        ("listenPort=1 0", r#"invalid value "1 0" for listenPort: expected an integer from 0 to 65535"#),
        (
            "listenPort=2",
            r#"invalid value "2" for listenPort: expected 3 to 65534 (listenPort - 2 and listenPort + 1 must be ports too)"#,
        ),
        (
            "listenPort=65535",
            r#"invalid value "65535" for listenPort: expected 3 to 65534 (listenPort - 2 and listenPort + 1 must be ports too)"#,
        ),
        (
            "fileReservedTime=-1",
            r#"invalid value "-1" for fileReservedTime: expected an integer from 0 to 18446744073709551615"#,
        ),
        ("brokerRole=SLAVE", r#"invalid value "0" for brokerId: expected 1 or more when brokerRole is SLAVE"#),
        (
            "brokerRole=SLAVE\nbrokerId=-1",
            r#"invalid value "-1" for brokerId: expected 1 or more when brokerRole is SLAVE"#,
        ),
        ("brokerName=\\  ", r#"invalid value "  " for brokerName: expected a non-empty name"#),
        ("brokerName= ", r#"invalid value "" for brokerName: expected a non-empty name"#),
        ("brokerClusterName=", r#"invalid value "" for brokerClusterName: expected a non-empty name"#),
        (
            "brokerPermission=8",
            r#"invalid value "8" for brokerPermission: expected 0 to 7 (4 read, 2 write, 1 inherit)"#,
        ),
        (
            "mappedFileSizeCommitLog=1000",
            r#"invalid value "1000" for mappedFileSizeCommitLog: expected 65536 (64 KiB) to 2147483647 bytes"#,
        ),
        (
            "mappedFileSizeConsumeQueue=19",
            r#"invalid value "19" for mappedFileSizeConsumeQueue: expected 20 (one unit) to 2147483647 bytes"#,
        ),
        (
            "maxMessageSize=0",
            r#"invalid value "0" for maxMessageSize: expected 1 to 1073741823 bytes (less than mappedFileSizeCommitLog)"#,
        ),
        (
            "mappedFileSizeCommitLog=65536\nmaxMessageSize=65536",
            r#"invalid value "65536" for maxMessageSize: expected 1 to 65535 bytes (less than mappedFileSizeCommitLog)"#,
        ),
        (
            "deleteWhen=24",
            r#"invalid value "24" for deleteWhen: expected hours 0 to 23 separated by ';', e.g. 04 or 04;16"#,
        ),
        (
            "deleteWhen=4am",
            r#"invalid value "4am" for deleteWhen: expected hours 0 to 23 separated by ';', e.g. 04 or 04;16"#,
        ),
        (
            "messageDelayLevel=1s 5x",
            r#"invalid value "1s 5x" for messageDelayLevel: expected levels like "1s 5s 10s 30s 1m 2h 1d": whole numbers with unit s, m, h or d"#,
        ),
        (
            "messageDelayLevel=",
            r#"invalid value "" for messageDelayLevel: expected levels like "1s 5s 10s 30s 1m 2h 1d": whole numbers with unit s, m, h or d"#,
        ),
        (
            "messageDelayLevel=s",
            r#"invalid value "s" for messageDelayLevel: expected levels like "1s 5s 10s 30s 1m 2h 1d": whole numbers with unit s, m, h or d"#,
        ),
        (
            "messageDelayLevel=99999999999999999d",
            r#"invalid value "99999999999999999d" for messageDelayLevel: expected levels like "1s 5s 10s 30s 1m 2h 1d": whole numbers with unit s, m, h or d"#,
        ),
        (
            "namesrvAddr=127.0.0.1",
            r#"invalid value "127.0.0.1" for namesrvAddr: expected host:port entries separated by ';', e.g. 127.0.0.1:9876;192.168.0.1:9876"#,
        ),
        (
            "namesrvAddr=;",
            r#"invalid value ";" for namesrvAddr: expected host:port entries separated by ';', e.g. 127.0.0.1:9876;192.168.0.1:9876"#,
        ),
        (
            "namesrvAddr=a:9876;b:0",
            r#"invalid value "a:9876;b:0" for namesrvAddr: expected host:port entries separated by ';', e.g. 127.0.0.1:9876;192.168.0.1:9876"#,
        ),
        (
            "brokerIP1=10.0.0.1 10.0.0.2",
            r#"invalid value "10.0.0.1 10.0.0.2" for brokerIP1: expected an IP address or host name without blanks"#,
        ),
        (
            "haMasterAddress=10.0.0.1",
            r#"invalid value "10.0.0.1" for haMasterAddress: expected host:port of the master's HA port"#,
        ),
        (
            "enableDLegerCommitLog=true",
            r#"invalid value "true" for enableDLegerCommitLog: expected false (DLedger is not supported)"#,
        ),
        (
            "diskSpaceWarningLevelRatio=1.5",
            r#"invalid value "1.5" for diskSpaceWarningLevelRatio: expected a number greater than 0 and at most 1, e.g. 0.90"#,
        ),
        (
            "diskSpaceCleanForciblyRatio=NaN",
            r#"invalid value "NaN" for diskSpaceCleanForciblyRatio: expected a number greater than 0 and at most 1, e.g. 0.90"#,
        ),
        (
            "diskSpaceCleanForciblyRatio=0",
            r#"invalid value "0" for diskSpaceCleanForciblyRatio: expected a number greater than 0 and at most 1, e.g. 0.90"#,
        ),
        (
            "diskMaxUsedSpaceRatio=high",
            r#"invalid value "high" for diskMaxUsedSpaceRatio: expected an integer percentage (clamped to 10 to 95)"#,
        ),
        (
            "haListenPort=10911",
            r#"invalid value "10911" for haListenPort: expected a port not already used by listenPort"#,
        ),
        ("haListenPort=0", r#"invalid value "0" for haListenPort: expected 1 to 65535"#),
        (
            "httpListenPort=10912",
            r#"invalid value "10912" for httpListenPort: expected a port not already used by haListenPort"#,
        ),
        (
            "amqpListenPort=10909",
            r#"invalid value "10909" for amqpListenPort: expected a port not already used by listenPort - 2 (VIP port)"#,
        ),
        ("amqpFrameMax=100", r#"invalid value "100" for amqpFrameMax: expected 4096 to 1048576 bytes"#),
        ("dashboardLogin=maybe", r#"invalid value "maybe" for dashboardLogin: expected auto, on or off"#),
        ("defaultTopicQueueNums=0", r#"invalid value "0" for defaultTopicQueueNums: expected 1 or more"#),
        ("flushIntervalCommitLog=0", r#"invalid value "0" for flushIntervalCommitLog: expected 1 or more"#),
        (
            "maxIndexNum=200000000",
            r#"invalid value "200000000" for maxIndexNum: expected an IndexFile of at most 2147483647 bytes (40 + 4 x maxHashSlotNum + 20 x maxIndexNum)"#,
        ),
        ("msgTraceTopicName=", r#"invalid value "" for msgTraceTopicName: expected a topic name of 1 to 127 bytes"#),
        ("a=\\uZZZZ", r#"line 1: malformed \uxxxx escape "\uZ": expected four hex digits"#),
    ];
    for (text, expected) in rows {
        match load(text) {
            Ok(loaded) => panic!("text {text:?}: expected an error, got {:?}", loaded.config),
            Err(error) => assert_eq!(error.to_string(), *expected, "text {text:?}"),
        }
    }
}

#[test]
fn unknown_keys_are_sorted_and_described() {
    let loaded = load("zeta=1\nalpha=2\nmapedFileSizeCommitLog=1\nlistenport=1\nalpha=3\nlistenPort=10911").unwrap();
    assert_eq!(loaded.unknown_keys, ["alpha", "listenport", "mapedFileSizeCommitLog", "zeta"]);
    assert_eq!(
        describe_unknown_keys(&loaded.unknown_keys).as_deref(),
        Some(
            "alpha, listenport (did you mean listenPort?), \
             mapedFileSizeCommitLog (renamed mappedFileSizeCommitLog in RocketMQ 4.6), zeta"
        )
    );
    // Without a subscriber this logs nothing; it must not panic either way.
    loaded.warn_unknown();
    assert_eq!(describe_unknown_keys(&[]), None);
    assert!(load("listenPort=10911").unwrap().unknown_keys.is_empty());
}

#[test]
fn namesrv_addr_defaults_from_host() {
    let host = HostDefaults { namesrv_addr: Some("10.1.1.1:9876;10.1.1.2:9876".to_owned()), ..host() };
    let loaded = BrokerConfig::from_properties_str_for("", &host).unwrap();
    assert_eq!(loaded.config.namesrv_addrs, ["10.1.1.1:9876", "10.1.1.2:9876"]);
    let loaded = BrokerConfig::from_properties_str_for("namesrvAddr=127.0.0.1:9876", &host).unwrap();
    assert_eq!(loaded.config.namesrv_addrs, ["127.0.0.1:9876"]);
}

#[test]
fn defaults_round_trip_through_properties() {
    let defaults = BrokerConfig::defaults_for(&host());
    let mut validated = defaults.clone();
    validated.validate().unwrap();
    assert_eq!(validated, defaults, "the defaults are already valid");
    assert_eq!(load(&defaults.to_properties()).unwrap(), Loaded { config: defaults, unknown_keys: Vec::new() });
    // The process's own defaults are valid as well.
    BrokerConfig::defaults().validate().unwrap();
}

#[test]
fn every_key_round_trips() {
    let mut config = BrokerConfig::defaults_for(&host());
    config.broker_cluster_name = "C: one = two # three".to_owned();
    config.broker_name = " lead and trail ".to_owned();
    config.broker_role = BrokerRole::Slave;
    config.broker_id = 2;
    config.broker_permission = 4;
    config.namesrv_addr = Some("127.0.0.1:9876;10.0.0.1:9876".to_owned());
    config.namesrv_addrs = vec!["127.0.0.1:9876".to_owned(), "10.0.0.1:9876".to_owned()];
    config.listen_port = 20911;
    config.broker_ip1 = Some("10.0.0.5".to_owned());
    config.broker_ip2 = Some("10.0.0.6".to_owned());
    config.store_path_root_dir = PathBuf::from("/data/my store\\x");
    config.store_path_commit_log = Some(PathBuf::from("/fast/commitlog"));
    config.mapped_file_size_commit_log_bytes = 1 << 20;
    config.mapped_file_size_consume_queue_bytes = 20 * 1000;
    config.max_message_size_bytes = 1000;
    config.delete_when_hours = vec![0, 4, 23];
    config.file_reserved_time_hours = 1;
    config.disk_max_used_space_ratio_percent = 90;
    config.disk_space_warning_level_ratio = 0.93;
    config.disk_space_clean_forcibly_ratio = 0.8;
    config.clean_resource_interval_ms = 1;
    config.clean_file_forcibly_enable = false;
    config.flush_disk_type = FlushDiskType::Sync;
    config.use_reentrant_lock_when_put_message = false;
    config.flush_interval_commit_log_ms = 2;
    config.flush_commit_log_least_pages = 0;
    config.flush_commit_log_thorough_interval_ms = 3;
    config.flush_interval_consume_queue_ms = 4;
    config.flush_consume_queue_least_pages = 5;
    config.sync_flush_timeout_ms = 6;
    config.check_crc_on_recover = false;
    config.transient_store_pool_enable = true;
    config.message_index_enable = false;
    config.max_hash_slot_num = 7;
    config.max_index_num = 8;
    config.message_delay_level_ms = vec![0, 1_000, 90_000, 3_600_000, 172_800_000];
    config.auto_create_topic_enable = false;
    config.auto_create_subscription_group = false;
    config.default_topic_queue_nums = 9;
    config.send_message_thread_pool_nums = 10;
    config.pull_message_thread_pool_nums = 11;
    config.long_polling_enable = false;
    config.short_polling_time_ms = 12;
    config.slave_read_enable = true;
    config.slave_timeout_ms = 13;
    config.bind_address = Some("10.0.0.8".to_owned());
    config.ha_master_address = Some("10.0.0.7:10912".to_owned());
    config.ha_listen_port = Some(30000);
    config.ha_send_heartbeat_interval_ms = 14;
    config.ha_housekeeping_interval_ms = 15;
    config.ha_transfer_batch_size_bytes = 16;
    config.ha_slave_fallbehind_max_bytes = 17;
    config.transaction_time_out_ms = 18;
    config.transaction_check_max = 19;
    config.transaction_check_interval_ms = 20;
    config.register_name_server_period_ms = 10_001;
    config.register_broker_timeout_ms = 21;
    config.force_register = false;
    config.compressed_register = true;
    config.trace_topic_enable = true;
    config.msg_trace_topic_name = "TRACE_T".to_owned();
    config.acl_enable = true;
    config.http_listen_port = 0;
    config.amqp_listen_port = 5673;
    config.runtime_worker_threads = 4;
    config.amqp_default_user = "app".to_owned();
    config.amqp_frame_max_bytes = 65_536;
    config.amqp_channel_max = 64;
    config.amqp_heartbeat_s = 30;
    config.plugin_dir = Some(PathBuf::from("/opt/plugins"));
    config.sql_filter_engine = crate::filter::SqlFilterEngine::Plugin;
    config.sql_filter_plugin = Some(PathBuf::from("/opt/plugins/sql92_filter.wasm"));
    config.dashboard_login = DashboardLogin::On;
    config.dashboard_user = Some("ops".to_owned());

    let text = config.to_properties();
    // Passwords are never written (GET_BROKER_CONFIG serves this text).
    let keys: Vec<&str> = BrokerConfig::keys()
        .filter(|k| !["amqpDefaultPass", "amqpUsers", "dashboardPasswordHash"].contains(k))
        .collect();
    let written: Vec<String> = properties::parse(&text).unwrap().into_iter().map(|e| e.key).collect();
    assert_eq!(written, keys, "every key is written once, in table order");
    let loaded = load(&text).unwrap();
    assert!(loaded.unknown_keys.is_empty());
    assert_eq!(loaded.config, config, "text:\n{text}");
}

#[test]
fn keys_are_unique_and_documented() {
    let keys: Vec<&str> = BrokerConfig::keys().collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), keys.len(), "duplicate key in the table");
    let source = include_str!("mod.rs");
    for key in keys {
        assert!(source.contains(&format!("/// `{key}`")), "field of {key} lacks a doc comment naming it");
    }
}

#[test]
fn store_config_carries_the_store_keys() {
    let text = "storePathRootDir=/data/rmq\nmappedFileSizeCommitLog=1048576\nmappedFileSizeConsumeQueue=60000\n\
                flushDiskType=SYNC_FLUSH\nflushIntervalCommitLog=200\nflushCommitLogLeastPages=8\n\
                flushCommitLogThoroughInterval=2000\nflushIntervalConsumeQueue=300\nsyncFlushTimeout=700\n\
                maxMessageSize=65536\nmessageIndexEnable=false\nmaxHashSlotNum=100\nmaxIndexNum=400\n\
                checkCRCOnRecover=false\nfileReservedTime=12\ndeleteWhen=01;13\ndiskMaxUsedSpaceRatio=80\n\
                diskSpaceCleanForciblyRatio=0.7\ndiskSpaceWarningLevelRatio=0.8\ncleanFileForciblyEnable=false\n\
                cleanResourceInterval=500\nmessageDelayLevel=1s 1m";
    let store = load(text).unwrap().config.store_config();
    let got = format!(
        "{:?} {:?} {} {} {:?} {} {} {} {} {} {} {} {} {} {} {} {:?} {} {} {} {} {} {:?}",
        store.root_dir,
        store.commit_log_dir,
        store.commit_log_file_bytes,
        store.consume_queue_file_bytes,
        store.flush_disk_type,
        store.flush_interval_commit_log_ms,
        store.flush_commit_log_least_pages,
        store.flush_commit_log_thorough_interval_ms,
        store.flush_interval_consume_queue_ms,
        store.sync_flush_timeout_ms,
        store.message_bytes_max,
        store.message_index_enable,
        store.index_hash_slots,
        store.index_entries_max,
        store.check_crc_on_recover,
        store.file_reserved_time_hours,
        store.delete_when_hours,
        store.disk_max_used_space_ratio_percent,
        store.disk_space_clean_forcibly_ratio,
        store.disk_space_warning_level_ratio,
        store.clean_file_forcibly_enable,
        store.clean_resource_interval_ms,
        store.message_delay_level_ms,
    );
    assert_eq!(
        got,
        "\"/data/rmq\" \"/data/rmq/commitlog\" 1048576 60000 Sync 200 8 2000 300 700 65536 false 100 400 \
         false 12 [1, 13] 80 0.7 0.8 false 500 [1000, 60000]"
    );
    let store = load("storePathCommitLog=/fast/cl").unwrap().config.store_config();
    assert_eq!(store.commit_log_dir, Path::new("/fast/cl"));
    assert_eq!(store.root_dir, Path::new("/home/t/store"));
}

fn conf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            conf_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "properties" || e == "conf") {
            out.push(path);
        }
    }
}

#[test]
fn shipped_conf_files_load_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
    let mut files = Vec::new();
    conf_files(&root, &mut files);
    files.sort();
    assert!(files.len() >= 14, "found only {files:?}");
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name == "namesrv.properties" {
            let text = std::fs::read_to_string(path).unwrap();
            let keys: Vec<String> = properties::parse(&text).unwrap().into_iter().map(|e| e.key).collect();
            assert_eq!(keys, ["listenPort"], "{}", path.display());
            continue;
        }
        let loaded = match BrokerConfig::load_for(path, &host()) {
            Ok(loaded) => loaded,
            Err(error) => panic!("{}: {error}", path.display()),
        };
        assert!(loaded.unknown_keys.is_empty(), "{}: unknown keys {:?}", path.display(), loaded.unknown_keys);
        let config = &loaded.config;
        let dir = path.parent().and_then(Path::file_name).and_then(|d| d.to_str()).unwrap_or_default();
        let expected_role = match (dir, name.ends_with("-s.properties")) {
            (_, true) => BrokerRole::Slave,
            ("2m-2s-sync", false) => BrokerRole::SyncMaster,
            _ => BrokerRole::AsyncMaster,
        };
        assert_eq!(config.broker_role, expected_role, "{}", path.display());
        assert_eq!(config.broker_id, i64::from(expected_role == BrokerRole::Slave), "{}", path.display());
        assert_eq!(config.flush_disk_type, FlushDiskType::Async, "{}", path.display());
        assert_eq!(config.broker_cluster_name, "DefaultCluster", "{}", path.display());
    }
}

#[test]
fn file_reading() {
    let dir = tempfile::tempdir().unwrap();

    let path = dir.path().join("latin1.properties");
    std::fs::write(&path, b"brokerName=caf\xe9\nlistenPort=10811\n").unwrap();
    let config = BrokerConfig::load_for(&path, &host()).unwrap().config;
    assert_eq!((config.broker_name.as_str(), config.listen_port), ("caf\u{e9}", 10811));

    let path = dir.path().join("bom.properties");
    std::fs::write(&path, b"\xEF\xBB\xBFlistenPort=10711\nbrokerName=caf\xc3\xa9\n").unwrap();
    let loaded = BrokerConfig::load_for(&path, &host()).unwrap();
    assert_eq!((loaded.config.broker_name.as_str(), loaded.config.listen_port), ("caf\u{e9}", 10711));
    assert!(loaded.unknown_keys.is_empty());

    let path = dir.path().join("big.properties");
    let mut big = "# filler\n".repeat(PROPERTIES_FILE_BYTES_MAX / 9 + 1).into_bytes();
    big.truncate(PROPERTIES_FILE_BYTES_MAX + 1);
    std::fs::write(&path, &big).unwrap();
    let error = BrokerConfig::load_for(&path, &host()).unwrap_err();
    assert_eq!(error.to_string(), "properties text of 1048577 bytes exceeds the 1048576-byte limit");

    let text = String::from_utf8(big).unwrap();
    assert!(matches!(load(&text), Err(ConfigError::TooLarge { bytes: 1_048_577, bytes_max: 1_048_576 })));
    assert!(load(&text[..PROPERTIES_FILE_BYTES_MAX]).is_ok());

    let missing = dir.path().join("missing.properties");
    let error = BrokerConfig::load_for(&missing, &host()).unwrap_err();
    assert!(matches!(error, ConfigError::Io { .. }));
    assert!(error.to_string().starts_with(&format!("cannot read {}: ", missing.display())), "{error}");
}

/// A tiny xorshift64 generator, so the fuzz loop is reproducible without extra crates.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn fuzz_parser_never_panics_and_escaping_round_trips() {
    const ALPHABET: &[&str] = &[
        "\\",
        "\\",
        "u",
        "U",
        "=",
        ":",
        " ",
        "\t",
        "\x0c",
        "\n",
        "\r",
        "#",
        "!",
        "a",
        "0",
        "D",
        "8",
        "F",
        "e",
        "é",
        "\u{1F600}",
        "\\u",
        "\\uD83D",
        "\\uDE00",
        "\\u00e9",
        "listenPort",
        "brokerRole",
        "SLAVE",
        "10911",
        ";",
    ];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let text = if rng.below(4) == 0 {
            let bytes: Vec<u8> = (0..rng.below(96)).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            (0..rng.below(48)).map(|_| ALPHABET[rng.below(ALPHABET.len())]).collect()
        };
        let _ = load(&text);
        if let Ok(entries) = properties::parse(&text) {
            // Whatever was read, writing it back escaped reads back the same.
            let written: String = entries
                .iter()
                .map(|e| format!("{}={}\n", properties::escape_key(&e.key), properties::escape_value(&e.value)))
                .collect();
            let reread: Vec<(String, String)> =
                properties::parse(&written).unwrap().into_iter().map(|e| (e.key, e.value)).collect();
            let original: Vec<(String, String)> = entries.into_iter().map(|e| (e.key, e.value)).collect();
            assert_eq!(reread, original, "text {text:?}, written {written:?}");
        }
    }
}
