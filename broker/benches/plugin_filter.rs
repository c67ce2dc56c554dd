//! Wasm plugin benchmark (issue 5), over the example plugins of `plugins/` (built here for
//! `wasm32-wasip2` if needed) in the broker's own host:
//!
//! 1. the per-message cost of a filter call at batch sizes 1, 32 and 256, for the tag prefilter
//!    (`sql92_filter` with `tags`), the SQL92 filter and the JSON-field filter;
//! 2. the broker-side pull path over a backlog (default 1,000,000 messages): ConsumeQueue reads of
//!    32 messages, as a consumer's pulls make them, without and with a SQL92 filter plugin
//!    bound to the group (the same record scan and plugin call as `processor::pull`);
//! 3. the send path: appends one message at a time, without and with a key router consulted
//!    before each append (as `processor::send` does).
//!
//! `cargo bench -p broker --bench plugin_filter [-- --messages N --dir PATH]`

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use broker::plugin::{Binding, PluginMessage, Plugins, Role};
use broker::store::format::{MessageInput, Scanned, StoredRecord, encode_properties, scan_record};
use broker::store::{FlushDiskType, MessageStore, StoreConfig};

/// Messages per pull (the client's default `pullBatchSize`).
const PULL_BATCH: usize = 32;
/// Bytes per pull the store may return.
const PULL_BYTES_MAX: usize = 256 * 1024;
/// Body size of the backlog's messages.
const BODY_BYTES: usize = 128;
/// Queues of the backlog topic.
const QUEUES: u32 = 4;
/// How long each filter cost case runs.
const CASE_DURATION: Duration = Duration::from_millis(1500);

struct Args {
    messages: usize,
    dir: PathBuf,
}

fn args() -> Args {
    let mut a = Args { messages: 1_000_000, dir: std::env::temp_dir() };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--messages" => a.messages = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.messages),
            "--dir" => a.dir = it.next().map(PathBuf::from).unwrap_or(a.dir),
            _ => {}
        }
    }
    a
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn bind_filter(plugins: &Plugins, name: &str, group: &str, topic: &str) {
    let b = Binding {
        role: Role::Filter,
        plugin: name.into(),
        group: Some(group.into()),
        topic: Some(topic.into()),
        fail_open: false,
    };
    plugins.bind(b).expect("bind");
}

/// Message `i`: tags alternate TagA/TagB, four properties, a JSON body of `BODY_BYTES`.
fn input(topic: &str, queue_id: u32, i: usize) -> MessageInput {
    let tag = if i.is_multiple_of(2) { "TagA" } else { "TagB" };
    let region = if i.is_multiple_of(3) { "eu" } else { "us" };
    let a = (i % 10).to_string();
    let key = format!("key-{i}");
    let mut body = format!(r#"{{"order":{{"region":"{region}","n":{i}}},"pad":""#).into_bytes();
    body.resize(BODY_BYTES - 2, b'x');
    body.extend_from_slice(b"\"}");
    MessageInput {
        topic: topic.into(),
        queue_id,
        flag: 0,
        body,
        properties: encode_properties([("TAGS", tag), ("KEYS", &key), ("region", region), ("a", &a)]),
        sys_flag: 0,
        born_timestamp: 0,
        born_host: "127.0.0.1:1".parse::<SocketAddr>().expect("address"),
        store_host: "127.0.0.1:10911".parse::<SocketAddr>().expect("address"),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

/// CPU time this thread has run, in ns (`/proc/thread-self/schedstat`): the figures below are
/// CPU time, so a busy shared machine does not inflate them (wall time is printed beside).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Part 1: ns per message of one filter call at each batch size.
fn filter_costs(plugins: &Plugins) {
    println!("== filter call cost per message (CPU ns/msg, wall ns/msg in brackets; one call per batch)");
    println!("{:<34} {:>18} {:>18} {:>18}", "filter", "batch 1", "batch 32", "batch 256");
    let inputs: Vec<MessageInput> = (0..256).map(|i| input("BenchTopic", 0, i)).collect();
    let msgs: Vec<PluginMessage<'_>> = inputs.iter().map(PluginMessage::from_input).collect();
    let cases = [
        ("baseline: passes all, reads keys", "g-pass"),
        ("tag prefilter (TagA || TagC)", "g-tags"),
        ("SQL92 (a > 4 AND region = 'eu')", "g-sql"),
        ("JSON field (order.region = eu)", "g-json"),
    ];
    for (label, group) in cases {
        let mut row = format!("{label:<34}");
        for batch in [1usize, 32, 256] {
            let slice = &msgs[..batch];
            for _ in 0..50 {
                plugins.filter(group, "BenchTopic", slice);
            }
            let (start, cpu0) = (Instant::now(), thread_cpu_ns());
            let mut calls = 0u64;
            while start.elapsed() < CASE_DURATION {
                for _ in 0..16 {
                    std::hint::black_box(plugins.filter(group, "BenchTopic", slice));
                }
                calls += 16;
            }
            let per = calls as f64 * batch as f64;
            let wall = start.elapsed().as_nanos() as f64 / per;
            let cpu = (thread_cpu_ns() - cpu0) as f64 / per;
            row.push_str(&format!(" {:>18}", format!("{cpu:.1} [{wall:.0}]")));
        }
        println!("{row}");
    }
}

/// What one pull hands back: messages and bytes that leave the broker.
fn pull_all(store: &MessageStore, plugins: Option<&Plugins>, topic: &str) -> (usize, usize, u64) {
    let (mut read, mut delivered, mut bytes) = (0usize, 0usize, 0u64);
    for q in 0..QUEUES {
        let mut offset = 0;
        loop {
            let r = store.get_messages(topic, q, offset, PULL_BATCH, PULL_BYTES_MAX, None);
            if r.messages.is_empty() {
                break;
            }
            read += r.messages.len();
            match plugins {
                None => {
                    for m in &r.messages {
                        bytes += m.len() as u64;
                        delivered += 1;
                    }
                }
                Some(p) => {
                    let decoded: Vec<StoredRecord<'_>> = r
                        .messages
                        .iter()
                        .filter_map(|m| match scan_record(m, false) {
                            Scanned::Record(rec) => Some(rec),
                            _ => None,
                        })
                        .collect();
                    let msgs: Vec<PluginMessage<'_>> = decoded.iter().map(PluginMessage::from_record).collect();
                    let d = p.filter("CG_bench", topic, &msgs).expect("a filter is bound");
                    for (m, d) in r.messages.iter().zip(d) {
                        if d == broker::plugin::Decision::Pass {
                            bytes += m.len() as u64;
                            delivered += 1;
                        }
                    }
                }
            }
            offset = r.next_begin_offset;
        }
    }
    (read, delivered, bytes)
}

/// Part 2: the pull path over a backlog, without and with a SQL92 filter plugin.
fn backlog(dir: &Path, messages: usize, plugins: &Plugins) {
    let mut config = StoreConfig::new(dir.join("store"));
    config.flush_disk_type = FlushDiskType::Async;
    config.clean_resource_interval_ms = 3_600_000;
    let store = MessageStore::open(config).expect("open the store");
    let topic = "BacklogTopic";
    let start = Instant::now();
    for i in 0..messages {
        store.put_message(input(topic, (i % QUEUES as usize) as u32, i)).expect("append");
    }
    assert!(store.wait_dispatched(Duration::from_secs(600)), "dispatch");
    println!("\n== pull path over a backlog of {messages} messages ({PULL_BATCH} per pull, {QUEUES} queues)");
    println!("(backlog written in {:.1} s)", start.elapsed().as_secs_f64());
    let mut base = 0.0;
    for (label, p) in [("no filter plugin", None), ("SQL92 plugin (a > 4 AND region = 'eu')", Some(plugins))] {
        pull_all(&store, p, topic); // warm the page cache and the instance pool
        let (start, cpu0) = (Instant::now(), thread_cpu_ns());
        let (read, delivered, bytes) = pull_all(&store, p, topic);
        let cpu_secs = (thread_cpu_ns() - cpu0) as f64 / 1e9;
        let wall_secs = start.elapsed().as_secs_f64();
        let rate = read as f64 / cpu_secs;
        if p.is_none() {
            base = rate;
        }
        println!(
            "{label:<40} {:>10.0} msgs/s per CPU-second ({:>10.0} wall) {:>8} delivered {:>7.1} MB out; {:>5.1}% of unfiltered",
            rate,
            read as f64 / wall_secs,
            delivered,
            bytes as f64 / 1e6,
            100.0 * rate / base
        );
    }
}

/// Part 3: single-message appends, without and with a router consulted first.
fn sends(dir: &Path, messages: usize, plugins: &Plugins) {
    let mut config = StoreConfig::new(dir.join("send-store"));
    config.flush_disk_type = FlushDiskType::Async;
    config.clean_resource_interval_ms = 3_600_000;
    let store = MessageStore::open(config).expect("open the store");
    let n = messages.min(200_000);
    println!("\n== send path: {n} single-message appends");
    let mut base = 0.0;
    for (label, routed) in [("no router", false), ("key router (fnv1a(key) % 8)", true)] {
        let cpu0 = thread_cpu_ns();
        for i in 0..n {
            let mut m = input("SendTopic", 0, i);
            if routed {
                let d = plugins.route("SendTopic", 8, &PluginMessage::from_input(&m));
                if let Some(broker::plugin::RouteDecision::Queue(q)) = d {
                    m.queue_id = q;
                }
            }
            store.put_message(m).expect("append");
        }
        let rate = n as f64 / ((thread_cpu_ns() - cpu0) as f64 / 1e9);
        if !routed {
            base = rate;
        }
        println!(
            "{label:<40} {rate:>12.0} msgs/s per CPU-second of the sender {:>6.1}% of unrouted",
            100.0 * rate / base
        );
    }
}

fn main() {
    let a = args();
    let wasm = |name: &str| broker::plugin::examples::read(name).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::Builder::new().prefix("plugin-bench").tempdir_in(&a.dir).expect("temp dir");
    let plugins = Plugins::open(dir.path(), None);
    let sql = wasm("sql92_filter");
    plugins.deploy("tags", &sql, params(&[("tags", "TagA || TagC")]), Some(Role::Filter)).expect("deploy tags");
    plugins
        .deploy("sql", &sql, params(&[("expression", "a > 4 AND region = 'eu'")]), Some(Role::Filter))
        .expect("deploy sql");
    plugins
        .deploy("json", &wasm("json_filter"), params(&[("field", "order.region"), ("equals", "eu")]), None)
        .expect("deploy json");
    plugins.deploy("router", &wasm("key_router"), Vec::new(), Some(Role::Router)).expect("deploy router");
    // The hostile test fixture in its harmless mode: the host's and the call's own cost.
    plugins.deploy("pass", &wasm("hostile_filter"), params(&[("mode", "pass")]), None).expect("deploy pass");
    bind_filter(&plugins, "pass", "g-pass", "BenchTopic");
    bind_filter(&plugins, "tags", "g-tags", "BenchTopic");
    bind_filter(&plugins, "sql", "g-sql", "BenchTopic");
    bind_filter(&plugins, "json", "g-json", "BenchTopic");
    bind_filter(&plugins, "sql", "CG_bench", "BacklogTopic");
    plugins
        .bind(Binding {
            role: Role::Router,
            plugin: "router".into(),
            group: None,
            topic: Some("SendTopic".into()),
            fail_open: false,
        })
        .expect("bind router");
    filter_costs(&plugins);
    backlog(dir.path(), a.messages, &plugins);
    sends(dir.path(), a.messages, &plugins);
}
