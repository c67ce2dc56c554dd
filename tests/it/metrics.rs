//! `/metrics` of the real `mqbroker` (on its HTTP port) and `mqnamesrv` (its `httpListenPort`):
//! the text parses with a Prometheus text parser, the counters move when messages flow through
//! either door, and `promtool check metrics` (Debian's `prometheus` package) finds no naming
//! problems. promtool must be installed (`.ci/run` installs it); the check never skips.

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::json;

use crate::http::{Door, block_on};
use crate::support::{Process, START_TIMEOUT, free_broker_port, free_port, write_config};

/// The samples of one scrape: `(name, labels, value)`.
fn parse(text: &str) -> Vec<(String, std::collections::BTreeMap<String, String>, f64)> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{text}"));
    scrape
        .samples
        .into_iter()
        .map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
                prometheus_parse::Value::Summary(_) => 0.0,
            };
            let labels = s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            (s.metric, labels, value)
        })
        .collect()
}

fn value(
    samples: &[(String, std::collections::BTreeMap<String, String>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| *v)
        .sum()
}

/// `promtool check metrics` on the text: no output means no problems.
fn promtool(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!("promtool is missing ({e}): `apt-get install prometheus`, as .ci/run does"),
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let problems = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && problems.trim().is_empty(), "promtool check metrics:\n{problems}");
}

#[test]
fn broker_metrics_parse_move_with_traffic_and_pass_promtool() {
    let door = Door::start("");
    block_on(async {
        let scrape = || async {
            let r = door.http.get(door.url("/metrics")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.text().await.unwrap()
        };
        let before = parse(&scrape().await);
        door.topic("metered", 1).await;
        for i in 0..5 {
            let (s, _) = door.post("/v1/topics/metered/messages", &json!({"body": format!("m{i}")})).await;
            assert_eq!(s, StatusCode::CREATED);
        }
        let got = door.receive("meter_group", "metered", 5, 30_000, 0).await;
        assert_eq!(got.len(), 5);
        let (s, _) = door.get("/v1/topics/metered/queues/0/messages?offset=0").await;
        assert_eq!(s, StatusCode::OK);
        let text = scrape().await;
        let after = parse(&text);
        let http_in = [("topic", "metered"), ("protocol", "http")];
        assert_eq!(value(&before, "rocketmq_messages_in_total", &http_in), 0.0);
        assert_eq!(value(&after, "rocketmq_messages_in_total", &http_in), 5.0, "{text}");
        assert_eq!(value(&after, "rocketmq_throughput_in_bytes_total", &http_in), 10.0);
        assert_eq!(value(&after, "rocketmq_messages_out_total", &http_in), 10.0, "5 received + 5 pulled");
        assert_eq!(
            value(
                &after,
                "rocketmq_consumer_inflight_messages",
                &[("topic", "metered"), ("consumer_group", "meter_group")]
            ),
            5.0
        );
        assert!(value(&after, "rocketmq_pop_requests_total", &[("protocol", "http"), ("result", "messages")]) >= 1.0);
        assert!(value(&after, "rocketmq_storage_size_bytes", &[("storage_type", "commitlog")]) > 0.0);
        assert!(value(&after, "rocketmq_storage_disk_usage_ratio", &[]) > 0.0);
        assert!(value(&after, "rocketmq_connections", &[("protocol", "http")]) >= 1.0);
        assert!(
            value(&after, "http_server_request_duration_seconds", &[("http_route", "/v1/topics/:topic/messages")])
                >= 5.0,
            "{text}"
        );
        // The native door counts too: a POP through it moves the remoting families.
        let pop = broker::remoting::RemotingCommand::request(broker::protocol::request::POP_MESSAGE)
            .with_field("consumerGroup", "native_meter")
            .with_field("topic", "metered")
            .with_field("queueId", -1)
            .with_field("maxMsgNums", 5)
            .with_field("invisibleTime", 30_000)
            .with_field("pollTime", 1000)
            .with_field("bornTime", 0)
            .with_field("initMode", 0);
        let client = broker::remoting::Client::default();
        let r = client.invoke(&door.cluster.broker_addr, pop, std::time::Duration::from_secs(10)).await.unwrap();
        assert_eq!(r.code, 0, "{:?}", r.remark);
        let text = scrape().await;
        let after = parse(&text);
        let pop_ok = [("protocol", "remoting"), ("request_code", "POP_MESSAGE"), ("response_code", "SUCCESS")];
        assert_eq!(value(&after, "rocketmq_requests_total", &pop_ok), 1.0, "{text}");
        // `client` still holds its connection to the native door.
        assert!(value(&after, "rocketmq_connections", &[("protocol", "remoting")]) >= 1.0, "{text}");
        assert_eq!(
            value(&after, "rocketmq_messages_out_total", &[("topic", "metered"), ("protocol", "remoting")]),
            5.0
        );
        assert!(!text.contains("receipt_handle") && !text.contains("message_id"), "no per-message labels");
        promtool(&text);
    });
}

#[test]
fn name_server_serves_its_own_metrics_port() {
    let dir = tempfile::tempdir().unwrap();
    let (port, http) = (free_port(), free_port());
    let config = dir.path().join("namesrv.properties");
    std::fs::write(
        &config,
        format!("listenPort={port}\nhttpListenPort={http}\nkvConfigPath={}\n", dir.path().join("kv.json").display()),
    )
    .unwrap();
    let mut ns = Process::start_namesrv(&config);
    ns.wait_for("Name server metrics on /metrics", START_TIMEOUT);
    let text = block_on(async {
        let r = reqwest::get(format!("http://127.0.0.1:{http}/metrics")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.unwrap()
    });
    let samples = parse(&text);
    assert!(samples.iter().any(|(n, _, _)| n == "rocketmq_namesrv_topics"), "{text}");
    promtool(&text);
    // A broker registers: the gauges follow at the next scrape.
    let broker_port = free_broker_port();
    let broker_config = write_config(
        dir.path(),
        &format!("listenPort={broker_port}\nnamesrvAddr=127.0.0.1:{port}\nbrokerIP1=127.0.0.1"),
    );
    let mut broker = Process::start(&broker_config);
    broker.wait_for("Broker started", START_TIMEOUT);
    let text = block_on(async {
        reqwest::get(format!("http://127.0.0.1:{http}/metrics")).await.unwrap().text().await.unwrap()
    });
    let samples = parse(&text);
    assert_eq!(value(&samples, "rocketmq_namesrv_brokers", &[("cluster", "TestCluster")]), 1.0, "{text}");
    assert!(value(&samples, "rocketmq_namesrv_topics", &[]) >= 1.0, "the broker's system topics: {text}");
}
