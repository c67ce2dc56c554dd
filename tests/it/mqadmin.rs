//! `mqadmin` against a live `mqnamesrv` + `mqbroker`: every sub-command run as a process, its
//! table text, its `--json` output and its exit code checked (including failing cases).

use std::process::Command;
use std::time::{Duration, Instant};

use broker::client::{ClientConfig, MqClient, PullConsumer};
use broker::protocol::body::MessageQueue;
use broker::protocol::request;

use crate::support::Cluster;

/// A finished `mqadmin` run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

fn mqadmin_env(namesrv: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mqadmin"));
    cmd.args(args).env_remove("NAMESRV_ADDR");
    if let Some(ns) = namesrv {
        cmd.env("NAMESRV_ADDR", ns);
    }
    let out = cmd.output().expect("run mqadmin");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `mqadmin <args> -n <namesrv>`.
fn mqadmin(c: &Cluster, args: &[&str]) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-n", &c.namesrv_addr]);
    mqadmin_env(None, &all)
}

/// Runs until the exit code is 0 (topics reach the name server, messages the index,
/// asynchronously), at most 20 s.
fn mqadmin_until_ok(c: &Cluster, args: &[&str]) -> Run {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = mqadmin(c, args);
        if r.code == 0 || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs with `--json` until `done` holds for the output, at most 20 s; returns the last output.
fn json_until(c: &Cluster, args: &[&str], done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let j = mqadmin(c, args).json();
        if done(&j) || Instant::now() > deadline {
            return j;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[track_caller]
fn expect(r: &Run, code: i32, needles: &[&str], what: &str) {
    assert_eq!(r.code, code, "{what}: exit code\nstdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    for n in needles {
        assert!(r.stdout.contains(n), "{what}: no {n:?} in stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    }
}

/// The GET_BROKER_RUNTIME_INFO keys rocketmq-exporter reads without a default.
const EXPORTER_RUNTIME_KEYS: &[&str] = &[
    "msgPutTotalTodayNow",
    "msgGetTotalTodayNow",
    "msgPutTotalTodayMorning",
    "msgGetTotalTodayMorning",
    "msgPutTotalYesterdayMorning",
    "msgGetTotalYesterdayMorning",
    "putMessageDistributeTime",
    "putTps",
    "getMissTps",
    "getTransferedTps",
    "getTotalTps",
    "getFoundTps",
    "commitLogDirCapacity",
    "sendThreadPoolQueueHeadWaitTimeMills",
    "queryThreadPoolQueueHeadWaitTimeMills",
    "pullThreadPoolQueueHeadWaitTimeMills",
    "remainHowManyDataToFlush",
    "queryThreadPoolQueueSize",
    "pullThreadPoolQueueSize",
    "sendThreadPoolQueueSize",
    "bootTimestamp",
    "commitLogMinOffset",
    "commitLogMaxOffset",
    "runtime",
    "dispatchMaxBuffer",
    "brokerVersion",
    "brokerVersionDesc",
    "consumeQueueDiskRatio",
    "commitLogDiskRatio",
    "pageCacheLockTimeMills",
    "getMessageEntireTimeMax",
    "putMessageTimesTotal",
    "startAcceptSendRequestTimeStamp",
    "putMessageEntireTimeMax",
    "earliestMessageTimeStamp",
    "remainTransientStoreBufferNumbs",
    "queryThreadPoolQueueCapacity",
    "sendThreadPoolQueueCapacity",
    "pullThreadPoolQueueCapacity",
    "putMessageAverageSize",
    "dispatchBehindBytes",
    "putMessageSizeTotal",
];

#[test]
fn every_command_against_a_live_cluster() {
    let c = Cluster::start("");
    let addr = c.broker_addr.clone();

    // Cluster and broker views.
    let r = mqadmin(&c, &["clusterList"]);
    expect(&r, 0, &["#Cluster Name", "#InTPS(LOAD)", "TestCluster", "broker-test", &addr, "V4_9_4"], "clusterList");
    let j = mqadmin(&c, &["clusterList", "--json"]).json();
    assert_eq!(j["brokers"][0]["cluster"], "TestCluster");
    assert_eq!(j["brokers"][0]["addr"], addr.as_str());
    expect(&mqadmin(&c, &["clusterList", "-m"]), 0, &["#InTotalToday", "broker-test"], "clusterList -m");
    let r = mqadmin(&c, &["brokerStatus", "-b", &addr]);
    expect(
        &r,
        0,
        &["brokerVersionDesc", "V4_9_4", "putTps", "getTransferedTps", "commitLogDiskRatio", "bootTimestamp"],
        "brokerStatus",
    );
    let j = mqadmin(&c, &["brokerStatus", "-c", "TestCluster", "--json"]).json();
    assert_eq!(j[addr.as_str()]["brokerVersion"], "401");
    // Every key rocketmq-exporter's BrokerRuntimeStats parses (it fails on a missing one).
    for key in EXPORTER_RUNTIME_KEYS {
        assert!(j[addr.as_str()][key].is_string(), "runtime info lacks {key}: {j}");
    }
    let tps = j[addr.as_str()]["putTps"].as_str().unwrap();
    assert_eq!(tps.split(' ').filter(|v| v.parse::<f64>().is_ok()).count(), 3, "putTps {tps:?}");
    let r = mqadmin(&c, &["getBrokerConfig", "-b", &addr]);
    expect(
        &r,
        0,
        &[&format!("============{addr}============"), "brokerClusterName", "TestCluster", "brokerName"],
        "getBrokerConfig",
    );
    let j = mqadmin(&c, &["getBrokerConfig", "-c", "TestCluster", "--json"]).json();
    assert_eq!(j[addr.as_str()]["brokerName"], "broker-test");

    // Topics: create on a broker and on a cluster, see them in routes, lists and status.
    let r = mqadmin(&c, &["updateTopic", "-b", &addr, "-t", "AdminTopic", "-r", "4", "-w", "4"]);
    expect(
        &r,
        0,
        &[
            &format!("create topic to {addr} success."),
            "TopicConfig [topicName=AdminTopic, readQueueNums=4, writeQueueNums=4, perm=RW-",
        ],
        "updateTopic -b",
    );
    let r = mqadmin(&c, &["updateTopic", "-c", "TestCluster", "-t", "AdminTopic2", "-r", "2", "-w", "2", "-p", "4"]);
    expect(&r, 0, &["success.", "perm=R--"], "updateTopic -c");
    let r = mqadmin_until_ok(&c, &["topicRoute", "-t", "AdminTopic"]);
    expect(&r, 0, &["\"brokerName\": \"broker-test\"", "\"readQueueNums\": 4"], "topicRoute");
    let r = mqadmin_until_ok(&c, &["topicRoute", "-t", "AdminTopic2", "-l"]);
    expect(&r, 0, &["#ClusterName", "TestCluster", "broker-test"], "topicRoute -l");
    let j = mqadmin(&c, &["topicRoute", "-t", "AdminTopic", "--json"]).json();
    assert_eq!(j["queueDatas"][0]["writeQueueNums"], 4);
    let r = mqadmin(&c, &["topicList"]);
    expect(&r, 0, &["AdminTopic\n", "AdminTopic2\n"], "topicList");
    let r = mqadmin(&c, &["topicList", "-c"]);
    expect(&r, 0, &["#Cluster Name", "#Consumer Group", "TestCluster", "AdminTopic"], "topicList -c");

    // Messages: send (to a chosen queue and anywhere), then find them every way.
    let mut sent = Vec::new();
    for (body, key, tag) in [("hello-0", "key0", "TagA"), ("hello-1", "key1", "TagB"), ("hello-2", "key2", "TagA")] {
        let r = mqadmin(
            &c,
            &[
                "sendMessage",
                "-t",
                "AdminTopic",
                "-p",
                body,
                "-k",
                key,
                "-c",
                tag,
                "-b",
                "broker-test",
                "-i",
                "1",
                "--json",
            ],
        );
        assert_eq!(r.code, 0, "sendMessage: {}\n{}", r.stdout, r.stderr);
        let j = r.json();
        assert_eq!(j["sendStatus"], "SEND_OK");
        assert_eq!(j["queueId"], 1);
        sent.push(j);
    }
    let r = mqadmin(&c, &["sendMessage", "-t", "AdminTopic", "-p", "plain"]);
    expect(&r, 0, &["#Broker Name", "#Send Result", "SEND_OK", "broker-test"], "sendMessage table");

    let r = mqadmin(&c, &["topicStatus", "-t", "AdminTopic"]);
    expect(&r, 0, &["#Broker Name", "#Min Offset", "#Max Offset", "#Last Updated", "broker-test"], "topicStatus");
    // The last send may still be on its way into the ConsumeQueue.
    let total = |j: &serde_json::Value| -> i64 {
        j["queues"].as_array().unwrap().iter().map(|q| q["maxOffset"].as_i64().unwrap()).sum()
    };
    let j = json_until(&c, &["topicStatus", "-t", "AdminTopic", "--json"], |j| total(j) == 4);
    let queues = j["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 4);
    assert_eq!(total(&j), 4, "{j}");
    assert_eq!(queues[1]["maxOffset"], 3);
    assert!(queues[1]["lastUpdateTimestamp"].as_i64().unwrap() > 0);

    let msg_id = sent[1]["msgId"].as_str().unwrap();
    let offset_id = sent[1]["offsetMsgId"].as_str().unwrap();
    let r = mqadmin_until_ok(&c, &["queryMsgByKey", "-t", "AdminTopic", "-k", "key1"]);
    expect(&r, 0, &["#Message ID", "#QID", "#Offset", msg_id], "queryMsgByKey");
    let r = mqadmin(&c, &["queryMsgById", "-i", offset_id]);
    expect(&r, 0, &[offset_id, "AdminTopic", "[key1]", "[TagB]", "hello-1", "Store Host:"], "queryMsgById");
    let j = mqadmin(&c, &["queryMsgById", "-i", offset_id, "--json"]).json();
    assert_eq!(j["messages"][0]["body"], "hello-1");
    assert_eq!(j["messages"][0]["queueOffset"], 1);
    let r = mqadmin(&c, &["queryMsgByOffset", "-t", "AdminTopic", "-b", "broker-test", "-i", "1", "-o", "2"]);
    expect(&r, 0, &["hello-2", "[key2]", "Queue Offset:        2"], "queryMsgByOffset");
    let r = mqadmin(&c, &["consumeMessage", "-t", "AdminTopic", "-b", "broker-test", "-i", "1"]);
    expect(&r, 0, &["Consume ok", "BODY: hello-0", "BODY: hello-1", "BODY: hello-2"], "consumeMessage");
    let j = mqadmin(&c, &["consumeMessage", "-t", "AdminTopic", "-c", "2", "-i", "1", "-o", "1", "--json"]).json();
    let bodies: Vec<&str> = j["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["hello-1", "hello-2"]);

    // Subscription groups and a live consumer: progress, connections, reset.
    let r = mqadmin(&c, &["updateSubGroup", "-b", &addr, "-g", "AdminGroup", "-r", "3", "-q", "1"]);
    expect(
        &r,
        0,
        &[&format!("create subscription group to {addr} success."), "groupName=AdminGroup", "retryMaxTimes=3"],
        "updateSubGroup",
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = MqClient::new(ClientConfig::new(c.namesrv_addr.clone()));
    let consumer = PullConsumer::new(client.clone(), "AdminGroup");
    consumer.subscribe("AdminTopic", "*");
    let queue = MessageQueue { broker_name: "broker-test".into(), queue_id: 1, topic: "AdminTopic".into() };
    rt.block_on(async {
        consumer.queues("AdminTopic").await.unwrap();
        consumer.heartbeat().await.unwrap();
        consumer.commit_offset(&queue, 2).await.unwrap();
    });
    // The wire shapes Java's admin tools parse: maps keyed by MessageQueue objects.
    rt.block_on(async {
        let stats = client
            .invoke_broker(&addr, client.request(request::GET_TOPIC_STATS_INFO).with_field("topic", "AdminTopic"))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&stats.body).into_owned();
        assert!(
            text.starts_with(r#"{"offsetTable":{{"brokerName":"broker-test","queueId":0,"topic":"AdminTopic"}:{"#),
            "{text}"
        );
        let consume = client
            .invoke_broker(&addr, client.request(request::GET_CONSUME_STATS).with_field("consumerGroup", "AdminGroup"))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&consume.body).into_owned();
        assert!(text.starts_with(r#"{"consumeTps":"#) && text.contains(r#""offsetTable":{{"brokerName":"#), "{text}");
        assert!(text.contains(r#":{"brokerOffset":3,"consumerOffset":2,"lastTimestamp":"#), "{text}");
    });
    let r = mqadmin_until_ok(&c, &["consumerConnection", "-g", "AdminGroup"]);
    expect(
        &r,
        0,
        &[
            client.client_id(),
            "Below is subscription:",
            "Topic: AdminTopic",
            "SubExpression: *",
            "ConsumeType: CONSUME_ACTIVELY",
            "MessageModel: CLUSTERING",
        ],
        "consumerConnection",
    );
    let r = mqadmin_until_ok(&c, &["consumerProgress", "-g", "AdminGroup"]);
    expect(
        &r,
        0,
        &[
            "#Topic",
            "#Broker Name",
            "#QID",
            "#Broker Offset",
            "#Consumer Offset",
            "#Client IP",
            "#Diff",
            "#LastTime",
            "Consume TPS:",
            "Diff Total: 2",
        ],
        "consumerProgress -g",
    );
    let j = mqadmin(&c, &["consumerProgress", "-g", "AdminGroup", "--json"]).json();
    let q1 = j["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["topic"] == "AdminTopic" && q["queueId"] == 1)
        .unwrap()
        .clone();
    assert_eq!(
        (q1["brokerOffset"].as_i64(), q1["consumerOffset"].as_i64(), q1["diff"].as_i64()),
        (Some(3), Some(2), Some(1))
    );
    assert!(q1["lastTimestamp"].as_i64().unwrap() > 0);
    let r = mqadmin(&c, &["consumerProgress"]);
    expect(&r, 0, &["#Group", "#Count", "#Diff Total", "AdminGroup"], "consumerProgress");

    let r = mqadmin(&c, &["resetOffsetByTime", "-g", "AdminGroup", "-t", "AdminTopic", "-s", "0"]);
    expect(
        &r,
        0,
        &[
            "rollback consumer offset by specified group[AdminGroup], topic[AdminTopic]",
            "#brokerName",
            "#queueId",
            "#offset",
        ],
        "resetOffsetByTime",
    );
    let j = mqadmin(&c, &["resetOffsetByTime", "-g", "AdminGroup", "-t", "AdminTopic", "-s", "now", "--json"]).json();
    let q1 = j["offsets"].as_array().unwrap().iter().find(|q| q["queueId"] == 1).unwrap().clone();
    assert_eq!(q1["offset"], 3, "reset to now moves to the end: {j}");
    let stored = rt.block_on(consumer.fetch_consume_offset(&queue)).unwrap();
    assert_eq!(stored, Some(3));
    let j = mqadmin(
        &c,
        &["resetOffsetByTime", "-g", "AdminGroup", "-t", "AdminTopic", "-s", "2000-01-01#00:00:00:000", "--json"],
    )
    .json();
    let q1 = j["offsets"].as_array().unwrap().iter().find(|q| q["queueId"] == 1).unwrap().clone();
    assert_eq!(q1["offset"], 0);
    drop(consumer);
    drop(client);
    drop(rt);

    // Deletions.
    let r = mqadmin(&c, &["deleteSubGroup", "-b", &addr, "-g", "AdminGroup"]);
    expect(
        &r,
        0,
        &[&format!("delete subscription group [AdminGroup] from broker [{addr}] success.")],
        "deleteSubGroup",
    );
    let r = mqadmin(&c, &["deleteTopic", "-c", "TestCluster", "-t", "AdminTopic2"]);
    expect(
        &r,
        0,
        &[
            "delete topic [AdminTopic2] from cluster [TestCluster] success.",
            "delete topic [AdminTopic2] from NameServer success.",
        ],
        "deleteTopic",
    );
    let r = mqadmin(&c, &["topicRoute", "-t", "AdminTopic2"]);
    assert_eq!(r.code, 3, "route of a deleted topic: {}\n{}", r.stdout, r.stderr);

    // Failures: non-zero exit codes and the reason on stderr, data-driven.
    let failing: &[(&[&str], i32, &str)] = &[
        (&["topicRoute", "-t", "NoSuchTopic"], 3, "NoSuchTopic"),
        (&["topicStatus", "-t", "NoSuchTopic"], 3, "NoSuchTopic"),
        (&["updateTopic", "-t", "Bad Topic!", "-b", &addr], 2, "illegal characters"),
        (&["updateTopic", "-t", "TBW102", "-b", &addr], 1, "system topic"),
        (&["updateTopic", "-t", "X"], 2, "-b"),
        (&["topicRoute"], 2, "missing required option -t"),
        (&["clusterList", "--bogus"], 2, "unknown option"),
        (&["noSuchCommand"], 2, "unknown command"),
        (&["queryMsgByKey", "-t", "AdminTopic", "-k", "no-such-key"], 3, "no message"),
        (&["queryMsgById", "-i", "not-an-id"], 3, "no message"),
        (&["queryMsgByOffset", "-t", "AdminTopic", "-b", "broker-test", "-i", "1", "-o", "99"], 3, "no message"),
        (&["consumerConnection", "-g", "NoSuchGroup"], 3, "NoSuchGroup"),
        (&["consumerProgress", "-g", "NoSuchGroup"], 3, "NoSuchGroup"),
        (&["getBrokerConfig", "-c", "NoSuchCluster"], 3, "NoSuchCluster"),
        (&["brokerStatus", "-b", "127.0.0.1:1"], 1, "127.0.0.1:1"),
        (&["resetOffsetByTime", "-g", "G", "-t", "AdminTopic", "-s", "yesterday"], 2, "timestamp"),
        (&["resetOffsetByTime", "-g", "NeverSeenGroup", "-t", "AdminTopic", "-s", "now"], 1, "NeverSeenGroup"),
    ];
    for (args, code, needle) in failing {
        let r = mqadmin(&c, args);
        assert_eq!(r.code, *code, "{args:?}: exit code\nstdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: no {needle:?} in stderr:\n{}", r.stderr);
    }
    let j = mqadmin(&c, &["topicRoute", "-t", "NoSuchTopic", "--json"]).json();
    assert_eq!(j["kind"], "notFound");

    // NAMESRV_ADDR instead of -n; help exits 0.
    let r = mqadmin_env(Some(&c.namesrv_addr), &["topicList"]);
    expect(&r, 0, &["AdminTopic\n"], "topicList with NAMESRV_ADDR");
    expect(&mqadmin_env(None, &["help", "updateTopic"]), 0, &["-t,--topic", "-c,--clusterName"], "help");
}

#[test]
fn no_name_server_is_a_failure() {
    let r = mqadmin_env(None, &["clusterList"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("NAMESRV_ADDR"), "{}", r.stderr);
    let r = mqadmin_env(None, &["clusterList", "-n", "127.0.0.1:1"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let r = mqadmin_env(None, &[]);
    assert_eq!(r.code, 2);
    assert!(r.stdout.contains("clusterList"));
}
