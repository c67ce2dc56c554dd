//! Wasm plugins (issue 5's acceptance 2–5) against a real `mqnamesrv` + `mqbroker`: the example
//! plugins of `plugins/` (built here, once, for `wasm32-wasip2`) are deployed and bound with the
//! real `mqadmin plugin ...` commands, and driven with the unmodified `rocketmq-client-rust`
//! producer, push consumer and transactional producer.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rocketmq_client_rust::{LocalTransactionState, TransactionListener, TransactionMQProducer};
use rocketmq_model::common::message::MessageTrait;
use rocketmq_model::common::message::message_ext::MessageExt;

use crate::native::{
    ARRIVAL, Inbox, Listener, QUIET, Received, Recorder, Subscription, client_config, eventually, message, seqs,
    serial, start_producer, start_push_consumer, with_client,
};
use crate::support::Cluster;

/// The directory holding the built example plugins (`sql92_filter.wasm`, ...).
fn plugins_dir() -> PathBuf {
    broker::plugin::examples::build().unwrap_or_else(|e| panic!("{e}"))
}

fn wasm(name: &str) -> String {
    plugins_dir().join(format!("{name}.wasm")).display().to_string()
}

/// A finished `mqadmin` run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
}

/// `mqadmin plugin <args> -b <broker>` (with the cluster's name server).
fn plugin(c: &Cluster, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_mqadmin"))
        .arg("plugin")
        .args(args)
        .args(["-b", &c.broker_addr, "-n", &c.namesrv_addr])
        .env_remove("NAMESRV_ADDR")
        .output()
        .expect("run mqadmin");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `mqadmin plugin <args>` and asserts it succeeded.
#[track_caller]
fn plugin_ok(c: &Cluster, args: &[&str]) -> Run {
    let r = plugin(c, args);
    assert_eq!(r.code, 0, "mqadmin plugin {args:?}\nstdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    r
}

/// `mqadmin updateTopic` with `queues` read and write queues.
fn create_topic(c: &Cluster, topic: &str, queues: u32) {
    let q = queues.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_mqadmin"))
        .args(["updateTopic", "-b", &c.broker_addr, "-t", topic, "-r", &q, "-w", &q, "-n", &c.namesrv_addr])
        .output()
        .expect("run mqadmin");
    assert!(out.status.success(), "updateTopic {topic}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A plugin's counters (`plugin describe --json`).
fn counters(c: &Cluster, name: &str) -> serde_json::Value {
    plugin_ok(c, &["describe", "-p", name, "--json"]).json()["counters"].clone()
}

fn count(v: &serde_json::Value, path: &[&str]) -> u64 {
    path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or(0)
}

/// Distinct deliveries by `seq`, and whether any message was delivered twice.
fn distinct_seqs(received: &[Received]) -> (Vec<usize>, usize) {
    let all = seqs(received, "seq");
    let mut distinct = all.clone();
    distinct.dedup();
    let dups = all.len() - distinct.len();
    (distinct, dups)
}

/// Message `i` of the filter test: properties `a` (missing on every 8th), `b`, and a JSON body
/// whose `order.region` cycles (every 7th body is not JSON).
fn filter_message(i: usize) -> (Vec<(String, String)>, String) {
    let mut props =
        vec![("seq".to_owned(), i.to_string()), ("b".to_owned(), if i.is_multiple_of(3) { "y" } else { "x" }.into())];
    if i % 8 != 7 {
        props.push(("a".to_owned(), (i % 10).to_string()));
    }
    let region = ["eu", "us", "apac"][i % 3];
    let body =
        if i % 7 == 6 { "not json".to_owned() } else { format!(r#"{{"order":{{"region":"{region}","n":{i}}}}}"#) };
    (props, body)
}

fn sql_matches(i: usize) -> bool {
    i % 8 != 7 && i % 10 > 5 && !i.is_multiple_of(3)
}

fn json_matches(i: usize) -> bool {
    i % 7 != 6 && i.is_multiple_of(3)
}

#[test]
fn filter_plugins_deliver_exactly_the_matching_messages_and_bad_deploys_are_refused() {
    const N: usize = 84;
    let _serial = serial();
    let _ = plugins_dir();
    let mut cluster = Cluster::start("");
    let params_file = cluster.dir.path().join("sql.params");
    std::fs::write(&params_file, "# the subscription\nexpression = a > 5 AND b = 'x'\n").unwrap();
    let params_file = params_file.display().to_string();
    plugin_ok(&cluster, &["deploy", "-p", "sql", "-f", &wasm("sql92_filter"), "-r", "filter", "-F", &params_file]);
    plugin_ok(
        &cluster,
        &["deploy", "-p", "json", "-f", &wasm("json_filter"), "-a", r#"{"field":"order.region","equals":"eu"}"#],
    );
    plugin_ok(&cluster, &["bind", "-p", "sql", "-r", "filter", "-g", "CG_plugin_sql", "-t", "TopicPluginFilter"]);
    plugin_ok(&cluster, &["bind", "-p", "json", "-r", "filter", "-g", "CG_plugin_json", "-t", "TopicPluginFilter"]);

    // Deploy errors say what is wrong, and install nothing.
    let not_component = cluster.dir.path().join("junk.wasm");
    std::fs::write(&not_component, b"\0asm\x01\0\0\0this is not a component").unwrap();
    let too_large = cluster.dir.path().join("large.wasm");
    std::fs::write(&too_large, vec![0u8; broker::plugin::limits::PLUGIN_WASM_BYTES_MAX + 1]).unwrap();
    let (junk, large) = (not_component.display().to_string(), too_large.display().to_string());
    let router = wasm("key_router");
    let sql = wasm("sql92_filter");
    let refusals: [(&[&str], &str); 4] = [
        (&["deploy", "-p", "junk", "-f", &junk], "not a component"),
        (&["deploy", "-p", "wrong", "-f", &router, "-r", "filter"], "wrong world: the component is a router"),
        (&["deploy", "-p", "bad", "-f", &sql, "-a", r#"{"expression":"a >"}"#], "`create` failed"),
        (&["deploy", "-p", "large", "-f", &large], "the limit is"),
    ];
    for (args, want) in refusals {
        let r = plugin(&cluster, args);
        assert_eq!(r.code, 1, "{args:?} is refused\n{}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(want), "{args:?}: want {want:?} in\n{}", r.stderr);
    }
    let list = plugin_ok(&cluster, &["list", "--json"]).json();
    let names: Vec<&str> = list["plugins"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["json", "sql"], "only the good deployments: {list}");

    let namesrv = cluster.namesrv_addr.clone();
    let mut failure = None;
    with_client(async |rt| {
        let topic = "TopicPluginFilter";
        let mut producer = start_producer(&rt, &namesrv, "PG_plugin_filter").await;
        for i in 0..N {
            let (props, body) = filter_message(i);
            let props: Vec<(&str, &str)> = props.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            producer.send(message(topic, Some("TagA"), &[], body.as_bytes(), &props)).await.expect("send");
        }
        let want_sql: Vec<usize> = (0..N).filter(|&i| sql_matches(i)).collect();
        let want_json: Vec<usize> = (0..N).filter(|&i| json_matches(i)).collect();
        let (sql_inbox, json_inbox, all_inbox) = (Inbox::default(), Inbox::default(), Inbox::default());
        let mut consumers = Vec::new();
        for (group, inbox) in
            [("CG_plugin_sql", &sql_inbox), ("CG_plugin_json", &json_inbox), ("CG_plugin_none", &all_inbox)]
        {
            let listener = Listener::Concurrently(Recorder::new(inbox));
            consumers
                .push(start_push_consumer(&rt, &namesrv, group, topic, Subscription::Tag("*"), listener, |b| b).await);
        }
        let arrived = eventually(ARRIVAL, || {
            sql_inbox.len() >= want_sql.len() && json_inbox.len() >= want_json.len() && all_inbox.len() >= N
        })
        .await;
        if arrived {
            tokio::time::sleep(QUIET).await;
        }
        for mut c in consumers {
            c.shutdown().await;
        }
        producer.shutdown().await;
        let got_sql = seqs(&sql_inbox.snapshot(), "seq");
        let got_json = seqs(&json_inbox.snapshot(), "seq");
        let got_all = seqs(&all_inbox.snapshot(), "seq");
        let want_all: Vec<usize> = (0..N).collect();
        if got_sql != want_sql || got_json != want_json || got_all != want_all {
            failure = Some(format!(
                "sql:  want {want_sql:?}\n      got  {got_sql:?}\njson: want {want_json:?}\n      got  {got_json:?}\n\
                 unbound group got {} of {N}",
                got_all.len()
            ));
        }
    });
    if let Some(failure) = failure {
        panic!("{failure}\nbroker log tail:\n{}", cluster.broker.tail(40));
    }
    let json = counters(&cluster, "json");
    let not_json = (0..N).filter(|i| i % 7 == 6).count() as u64;
    assert!(count(&json, &["errors"]) >= not_json, "bodies not JSON are errors: {json}");
    assert!(count(&json, &["calls"]) > 0 && count(&json, &["messagesPassed"]) >= N as u64 / 7, "{json}");

    // Deployments and bindings survive a restart.
    cluster.restart_broker();
    let list = plugin_ok(&cluster, &["list", "--json"]).json();
    assert_eq!(list["plugins"].as_array().map(Vec::len), Some(2), "{list}");
    assert_eq!(list["bindings"].as_array().map(Vec::len), Some(2), "{list}");
    let text = plugin_ok(&cluster, &["list"]).stdout;
    assert!(text.contains("sql") && text.contains("CG_plugin_json"), "{text}");
}

/// The queue the key router puts a key on (`plugins/key-router`: FNV-1a 32 of the first key).
fn fnv1a32(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Answers every check with "unknown" and counts them per `state-seq`.
#[derive(Clone, Default)]
struct NeverDecides {
    checks: Arc<Mutex<BTreeMap<String, usize>>>,
}

fn property_of<K: AsRef<str>, V: AsRef<str>>(props: &std::collections::HashMap<K, V>, key: &str) -> String {
    props.iter().find(|(k, _)| k.as_ref() == key).map(|(_, v)| v.as_ref().to_owned()).unwrap_or_default()
}

impl TransactionListener for NeverDecides {
    fn execute_local_transaction(
        &self,
        _: &dyn MessageTrait,
        _: Option<&(dyn Any + Send + Sync)>,
    ) -> LocalTransactionState {
        LocalTransactionState::Unknown
    }

    fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        let key = format!("{}-{}", property_of(msg.properties(), "state"), property_of(msg.properties(), "seq"));
        *self.checks.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default() += 1;
        LocalTransactionState::Unknown
    }
}

#[test]
fn a_router_spreads_keys_and_diverts_flagged_messages_and_a_checker_resolves_half_messages() {
    const QUEUES: u32 = 8;
    const KEYED: usize = 40;
    const BATCH: usize = 5;
    let _serial = serial();
    let _ = plugins_dir();
    let mut cluster = Cluster::start("transactionCheckInterval=1000\ntransactionTimeOut=1000");
    create_topic(&cluster, "TopicRouted", QUEUES);
    create_topic(&cluster, "TopicVip", 2);
    let router = r#"{"divert-property":"tier","divert-value":"vip","divert-topic":"TopicVip"}"#;
    plugin_ok(&cluster, &["deploy", "-p", "router", "-f", &wasm("key_router"), "-r", "router", "-a", router]);
    plugin_ok(&cluster, &["bind", "-p", "router", "-r", "router", "-t", "TopicRouted"]);
    let checker = r#"{"property":"state","commit":"paid","rollback":"cancelled"}"#;
    plugin_ok(&cluster, &["deploy", "-p", "checker", "-f", &wasm("property_checker"), "-a", checker]);
    plugin_ok(&cluster, &["bind", "-p", "checker", "-r", "transaction-checker", "-g", "PG_plugin_tx"]);

    let namesrv = cluster.namesrv_addr.clone();
    let mut failure = None;
    with_client(async |rt| {
        // The router: keyed messages go to fnv1a32(key) % 8 whatever queue the producer picked;
        // every 5th is flagged and goes to TopicVip instead.
        let mut producer = start_producer(&rt, &namesrv, "PG_plugin_route").await;
        for i in 0..KEYED {
            let (seq, key) = (i.to_string(), format!("order-{i}"));
            let tier = if i % 5 == 0 { "vip" } else { "std" };
            let msg = message("TopicRouted", Some("TagR"), &[&key], b"routed", &[("seq", &seq), ("tier", tier)]);
            producer.send(msg).await.expect("send");
        }
        // A batch is one append to one queue: the router decides for all of it from its first
        // message (its key, its tier).
        for (tier, first_key) in [("vip", "batch-vip"), ("std", "batch-std")] {
            let batch: Vec<_> = (0..BATCH)
                .map(|j| {
                    let (bseq, key) = (j.to_string(), format!("{first_key}-{j}"));
                    let key = if j == 0 { first_key.to_owned() } else { key };
                    message("TopicRouted", Some("TagR"), &[&key], b"batched", &[("bseq", &bseq), ("tier", tier)])
                })
                .collect();
            producer.send_batch(batch).await.expect("batch send");
        }
        let (routed, vip) = (Inbox::default(), Inbox::default());
        let mut c1 = start_push_consumer(
            &rt,
            &namesrv,
            "CG_plugin_routed",
            "TopicRouted",
            Subscription::Tag("*"),
            Listener::Concurrently(Recorder::new(&routed)),
            |b| b,
        )
        .await;
        let mut c2 = start_push_consumer(
            &rt,
            &namesrv,
            "CG_plugin_vip",
            "TopicVip",
            Subscription::Tag("*"),
            Listener::Concurrently(Recorder::new(&vip)),
            |b| b,
        )
        .await;

        // The checker: the producer never decides; the plugin commits "paid", rolls back
        // "cancelled" and leaves "pending" to the producer's check-back.
        let decider = NeverDecides::default();
        let mut tx_producer = TransactionMQProducer::builder(rt.clone())
            .client_config(client_config(&namesrv))
            .producer_group("PG_plugin_tx")
            .topics(vec!["TopicPluginTx"])
            .send_msg_timeout(10_000)
            .transaction_listener(decider.clone())
            .build();
        tx_producer.start().await.expect("start the transaction producer");
        let states = ["paid", "cancelled", "pending"];
        for i in 0..9 {
            let (seq, state) = (i.to_string(), states[i % 3]);
            let msg = message("TopicPluginTx", Some("TagT"), &[], b"half", &[("seq", &seq), ("state", state)]);
            tx_producer.send_message_in_transaction::<(), _>(msg, None).await.expect("transactional send");
        }
        let tx = Inbox::default();
        let mut c3 = start_push_consumer(
            &rt,
            &namesrv,
            "CG_plugin_tx",
            "TopicPluginTx",
            Subscription::Tag("*"),
            Listener::Concurrently(Recorder::new(&tx)),
            |b| b,
        )
        .await;

        let want_vip: Vec<usize> = (0..KEYED).filter(|i| i % 5 == 0).collect();
        let want_routed: Vec<usize> = (0..KEYED).filter(|i| i % 5 != 0).collect();
        let want_tx: Vec<usize> = (0..9).filter(|i| i % 3 == 0).collect();
        let arrived = eventually(ARRIVAL, || {
            routed.len() >= want_routed.len() + BATCH
                && vip.len() >= want_vip.len() + BATCH
                && tx.len() >= want_tx.len()
        })
        .await;
        let pending_checked = eventually(ARRIVAL, || {
            decider.checks.lock().unwrap_or_else(|e| e.into_inner()).keys().filter(|k| k.starts_with("pending")).count()
                >= 3
        })
        .await;
        tokio::time::sleep(QUIET).await;
        for c in [&mut c1, &mut c2, &mut c3] {
            c.shutdown().await;
        }
        producer.shutdown().await;
        tx_producer.shutdown().await;

        let mut problems = Vec::new();
        let got_routed = routed.snapshot();
        let got_vip = vip.snapshot();
        if seqs(&got_routed, "seq") != want_routed {
            problems.push(format!("routed: want {want_routed:?}, got {:?}", seqs(&got_routed, "seq")));
        }
        let want_batch: Vec<usize> = (0..BATCH).collect();
        let batch_queue = fnv1a32("batch-std") % QUEUES;
        if seqs(&got_routed, "bseq") != want_batch || got_routed.iter().any(|r| r.prop("tier") == Some("vip")) {
            problems.push(format!("routed batch: want {want_batch:?}, got {:?}", seqs(&got_routed, "bseq")));
        }
        for r in got_routed.iter().filter(|r| r.prop("bseq").is_some()) {
            if r.queue_id != batch_queue as i32 {
                problems.push(format!("batch message on queue {}, the router says {batch_queue}", r.queue_id));
            }
        }
        if seqs(&got_vip, "bseq") != want_batch {
            problems.push(format!("vip batch: want {want_batch:?}, got {:?}", seqs(&got_vip, "bseq")));
        }
        for r in got_routed.iter().filter(|r| r.prop("seq").is_some()) {
            let key = r.keys.clone().unwrap_or_default();
            let want_q = fnv1a32(&key) % QUEUES;
            if r.queue_id != want_q as i32 {
                problems.push(format!("{key} on queue {}, the router says {want_q}", r.queue_id));
            }
        }
        let used: std::collections::BTreeSet<i32> = got_routed.iter().map(|r| r.queue_id).collect();
        if used.len() < 4 {
            problems.push(format!("keys spread over only {used:?}"));
        }
        if seqs(&got_vip, "seq") != want_vip || got_vip.iter().any(|r| r.prop("tier") != Some("vip")) {
            problems.push(format!("vip: want {want_vip:?}, got {:?}", seqs(&got_vip, "seq")));
        }
        let got_tx = seqs(&tx.snapshot(), "seq");
        let checks = decider.checks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if !arrived || got_tx != want_tx {
            problems.push(format!("transactions: want {want_tx:?} (paid), got {got_tx:?}; check-backs {checks:?}"));
        }
        let asked_decided: Vec<&String> = checks.keys().filter(|k| !k.starts_with("pending")).collect();
        if !pending_checked || !asked_decided.is_empty() {
            problems.push(format!("the producer was asked about {checks:?}: only `pending` ones should be"));
        }
        if !problems.is_empty() {
            failure = Some(problems.join("\n"));
        }
    });
    if let Some(failure) = failure {
        panic!("{failure}\nbroker log tail:\n{}", cluster.broker.tail(40));
    }
    let c = counters(&cluster, "checker");
    assert!(count(&c, &["messagesPassed"]) >= 6, "the checker decided 6 halves: {c}");
    let r = counters(&cluster, "router");
    assert!(count(&r, &["messagesIn"]) >= KEYED as u64, "{r}");
}

#[test]
fn hostile_plugins_are_contained_and_the_other_groups_keep_being_served() {
    const N: usize = 24;
    const POISON: usize = 7;
    let _serial = serial();
    let _ = plugins_dir();
    let mut cluster = Cluster::start("");
    let topic = "TopicHostile";
    let hostile = wasm("hostile_filter");
    let modes: [(&str, String); 5] = [
        ("loop", r#"{"mode":"loop"}"#.into()),
        ("bomb", r#"{"mode":"bomb"}"#.into()),
        ("panic", r#"{"mode":"panic"}"#.into()),
        ("poison", format!(r#"{{"mode":"trap-on-key","key":"k{POISON}"}}"#)),
        // Fails (panics) for the first seconds of the test, then works: quarantine, then recovery.
        ("flaky", String::new()),
    ];
    for (name, params) in &modes {
        let params = if *name == "flaky" {
            format!(r#"{{"mode":"fail-until","until":"{}"}}"#, broker::store::now_ms() + 6_000)
        } else {
            params.clone()
        };
        plugin_ok(&cluster, &["deploy", "-p", name, "-f", &hostile, "-a", &params]);
        plugin_ok(&cluster, &["bind", "-p", name, "-r", "filter", "-g", &format!("CG_h_{name}"), "-t", topic]);
    }
    let namesrv = cluster.namesrv_addr.clone();
    let mut failure = None;
    with_client(async |rt| {
        let mut producer = start_producer(&rt, &namesrv, "PG_hostile").await;
        for i in 0..N {
            let (seq, key) = (i.to_string(), format!("k{i}"));
            producer.send(message(topic, Some("TagH"), &[&key], b"h", &[("seq", &seq)])).await.expect("send");
        }
        let groups = ["loop", "bomb", "panic", "poison", "flaky", "plain"];
        let inboxes: Vec<Inbox> = groups.iter().map(|_| Inbox::default()).collect();
        let mut consumers = Vec::new();
        for (g, inbox) in groups.iter().zip(&inboxes) {
            let group = format!("CG_h_{g}");
            let listener = Listener::Concurrently(Recorder::new(inbox));
            consumers
                .push(start_push_consumer(&rt, &namesrv, &group, topic, Subscription::Tag("*"), listener, |b| b).await);
        }
        let by = |g: &str| &inboxes[groups.iter().position(|x| *x == g).unwrap_or(0)];
        let served =
            eventually(ARRIVAL, || by("plain").len() >= N && by("poison").len() >= N - 1 && by("flaky").len() >= N)
                .await;
        tokio::time::sleep(QUIET).await;

        let mut problems = Vec::new();
        let all: Vec<usize> = (0..N).collect();
        let but_poison: Vec<usize> = (0..N).filter(|&i| i != POISON).collect();
        for (g, want) in [("plain", &all), ("poison", &but_poison), ("flaky", &all)] {
            let (got, dups) = distinct_seqs(&by(g).snapshot());
            if !served || &got != want || dups != 0 {
                problems.push(format!("{g}: want {want:?}, got {got:?} ({dups} duplicates)"));
            }
        }
        for g in ["loop", "bomb", "panic"] {
            if by(g).len() != 0 {
                problems.push(format!("{g}: a failing filter delivered {:?}", seqs(&by(g).snapshot(), "seq")));
            }
        }
        // A fixed version of the panicking plugin: its group gets every message, once (the
        // failures did not move its offsets).
        let fixed = std::thread::spawn({
            let (broker, ns, hostile) = (cluster.broker_addr.clone(), namesrv.clone(), hostile.clone());
            move || {
                Command::new(env!("CARGO_BIN_EXE_mqadmin"))
                    .args(["plugin", "deploy", "-p", "panic", "-f", &hostile, "-a", r#"{"mode":"pass"}"#])
                    .args(["-b", &broker, "-n", &ns])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            }
        });
        let deployed = eventually(ARRIVAL, || fixed.is_finished()).await && fixed.join().unwrap_or(false);
        let recovered = eventually(ARRIVAL, || by("panic").len() >= N).await;
        if recovered {
            tokio::time::sleep(QUIET).await;
        }
        let (got, dups) = distinct_seqs(&by("panic").snapshot());
        if !deployed || got != all || dups != 0 {
            problems.push(format!("panic, fixed: want all {N} once, got {got:?} ({dups} duplicates)"));
        }
        // The poison message is not lost: a copy waits in the poison group's dead-letter topic.
        let dead = Inbox::default();
        consumers.push(
            start_push_consumer(
                &rt,
                &namesrv,
                "CG_h_dlq_reader",
                "%DLQ%CG_h_poison",
                Subscription::Tag("*"),
                Listener::Concurrently(Recorder::new(&dead)),
                |b| b,
            )
            .await,
        );
        let copied = eventually(ARRIVAL, || dead.len() >= 1).await;
        tokio::time::sleep(QUIET).await;
        let got = dead.snapshot();
        let from = got.first().and_then(|r| r.prop("RETRY_TOPIC").map(str::to_owned));
        if !copied || seqs(&got, "seq") != [POISON] || from.as_deref() != Some(topic) {
            problems.push(format!(
                "dead letters of CG_h_poison: want seq {POISON} from {topic}, got {:?} from {from:?}",
                seqs(&got, "seq")
            ));
        }
        for mut c in consumers {
            c.shutdown().await;
        }
        producer.shutdown().await;
        if !problems.is_empty() {
            failure = Some(problems.join("\n"));
        }
    });
    if let Some(failure) = failure {
        panic!("{failure}\nbroker log tail:\n{}", cluster.broker.tail(60));
    }
    let c = counters(&cluster, "loop");
    assert!(count(&c, &["traps", "deadline"]) >= 3 && count(&c, &["deadlineHits"]) >= 3, "loop: {c}");
    assert!(count(&c, &["quarantines"]) >= 1 && count(&c, &["fallbacks"]) >= 1, "loop: {c}");
    let c = counters(&cluster, "bomb");
    assert!(count(&c, &["traps", "memory"]) >= 3 && count(&c, &["quarantines"]) >= 1, "bomb: {c}");
    let c = counters(&cluster, "panic");
    assert!(count(&c, &["traps", "panic"]) >= 3 && count(&c, &["quarantines"]) >= 1, "panic: {c}");
    let c = counters(&cluster, "poison");
    assert!(count(&c, &["poisonMessages"]) >= 1, "poison: the one message is pinned: {c}");
    assert_eq!(count(&c, &["quarantines"]), 0, "poison: the plugin works on the others: {c}");
    let c = counters(&cluster, "flaky");
    assert!(count(&c, &["quarantines"]) >= 1 && count(&c, &["recoveries"]) >= 1, "flaky: {c}");
    let logs = plugin_ok(&cluster, &["logs", "-p", "poison"]).stdout;
    assert!(logs.contains("poison key seen") && logs.contains("not delivered"), "poison log:\n{logs}");
    let list = plugin_ok(&cluster, &["list"]).stdout;
    assert!(list.contains("QUARANTINED"), "the loop and bomb plugins show as quarantined:\n{list}");
}

#[test]
fn a_version_swap_under_a_running_consumer_loses_and_duplicates_nothing() {
    const N: usize = 300;
    let _serial = serial();
    let _ = plugins_dir();
    let mut cluster = Cluster::start("");
    let topic = "TopicSwap";
    let sql = wasm("sql92_filter");
    plugin_ok(&cluster, &["deploy", "-p", "swap", "-f", &sql, "-a", r#"{"expression":"keep = 'y'"}"#]);
    plugin_ok(&cluster, &["bind", "-p", "swap", "-r", "filter", "-g", "CG_swap", "-t", topic]);
    let namesrv = cluster.namesrv_addr.clone();
    let mut failure = None;
    with_client(async |rt| {
        let inbox = Inbox::default();
        let mut consumer = start_push_consumer(
            &rt,
            &namesrv,
            "CG_swap",
            topic,
            Subscription::Tag("*"),
            Listener::Concurrently(Recorder::new(&inbox)),
            |b| b,
        )
        .await;
        let mut producer = start_producer(&rt, &namesrv, "PG_swap").await;
        // Versions 2, 3 and 4 (the same predicate, written differently) are deployed while
        // messages flow and the consumer pulls.
        let expressions = ["keep IN ('y')", "NOT (keep <> 'y')"];
        let mut swaps = Vec::new();
        for i in 0..N {
            if i % 100 == 50 {
                let expr = expressions[swaps.len() % expressions.len()];
                let (broker, ns, sql) = (cluster.broker_addr.clone(), namesrv.clone(), sql.clone());
                let params = serde_json::json!({ "expression": expr }).to_string();
                swaps.push(std::thread::spawn(move || {
                    Command::new(env!("CARGO_BIN_EXE_mqadmin"))
                        .args(["plugin", "deploy", "-p", "swap", "-f", &sql, "-a", &params, "-b", &broker, "-n", &ns])
                        .output()
                        .map(|o| o.status.success())
                        .unwrap_or(false)
                }));
            }
            let (seq, keep) = (i.to_string(), if i % 2 == 0 { "y" } else { "n" });
            producer
                .send(message(topic, Some("TagS"), &[], b"s", &[("seq", &seq), ("keep", keep)]))
                .await
                .expect("send");
            if i % 5 == 0 {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
        let all_deployed = eventually(ARRIVAL, || swaps.iter().all(|s| s.is_finished())).await
            && swaps.into_iter().all(|s| s.join().unwrap_or(false));
        let want: Vec<usize> = (0..N).filter(|i| i % 2 == 0).collect();
        let arrived = eventually(ARRIVAL, || inbox.len() >= want.len()).await;
        if arrived {
            tokio::time::sleep(QUIET).await;
        }
        consumer.shutdown().await;
        producer.shutdown().await;
        let (got, dups) = distinct_seqs(&inbox.snapshot());
        if !all_deployed || got != want || dups != 0 {
            let missing: Vec<_> = want.iter().filter(|i| !got.contains(i)).collect();
            let extra: Vec<_> = got.iter().filter(|i| !want.contains(i)).collect();
            failure = Some(format!(
                "deployed: {all_deployed}; missing {missing:?}; not matching {extra:?}; {dups} duplicates"
            ));
        }
    });
    if let Some(failure) = failure {
        panic!("{failure}\nbroker log tail:\n{}", cluster.broker.tail(40));
    }
    let d = plugin_ok(&cluster, &["describe", "-p", "swap", "--json"]).json();
    assert_eq!(d["summary"]["version"], 1 + N as u64 / 100, "a swap per 100 messages: {d}");
    assert!(count(&d["counters"], &["messagesPassed"]) >= N as u64 / 2, "{d}");
}

/// `sqlFilterEngine=plugin`: a consumer's own SQL92 subscription (`MessageSelector.bySql`) is
/// evaluated by the SQL92 plugin, one instance per distinct expression, and each group receives
/// exactly its matching messages.
#[test]
fn sql92_subscriptions_run_on_the_sql92_plugin_when_it_is_the_engine() {
    const N: usize = 60;
    let _serial = serial();
    let config = format!("enablePropertyFilter=true\nsqlFilterEngine=plugin\nsqlFilterPlugin={}", wasm("sql92_filter"));
    let mut cluster = Cluster::start(&config);
    let namesrv = cluster.namesrv_addr.clone();
    let mut failure = None;
    let (first, second) = ("a > 5 AND b = 'x'", "b = 'y' OR a IS NULL");
    with_client(async |rt| {
        let topic = "TopicSqlEngine";
        let mut producer = start_producer(&rt, &namesrv, "PG_sql_engine").await;
        for i in 0..N {
            let (props, body) = filter_message(i);
            let props: Vec<(&str, &str)> = props.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            producer.send(message(topic, Some("TagA"), &[], body.as_bytes(), &props)).await.expect("send");
        }
        let want_first: Vec<usize> = (0..N).filter(|&i| sql_matches(i)).collect();
        let want_second: Vec<usize> = (0..N).filter(|&i| i.is_multiple_of(3) || i % 8 == 7).collect();
        let (first_inbox, second_inbox) = (Inbox::default(), Inbox::default());
        let mut consumers = Vec::new();
        for (group, expr, inbox) in
            [("CG_sql_engine_1", first, &first_inbox), ("CG_sql_engine_2", second, &second_inbox)]
        {
            let listener = Listener::Concurrently(Recorder::new(inbox));
            consumers
                .push(start_push_consumer(&rt, &namesrv, group, topic, Subscription::Sql(expr), listener, |b| b).await);
        }
        let arrived =
            eventually(ARRIVAL, || first_inbox.len() >= want_first.len() && second_inbox.len() >= want_second.len())
                .await;
        if arrived {
            tokio::time::sleep(QUIET).await;
        }
        for mut c in consumers {
            c.shutdown().await;
        }
        producer.shutdown().await;
        let got_first = seqs(&first_inbox.snapshot(), "seq");
        let got_second = seqs(&second_inbox.snapshot(), "seq");
        if got_first != want_first || got_second != want_second {
            failure = Some(format!(
                "{first}: want {want_first:?}\n      got  {got_first:?}\n{second}: want {want_second:?}\n      got  {got_second:?}"
            ));
        }
    });
    if let Some(failure) = failure {
        panic!("{failure}\nbroker log tail:\n{}", cluster.broker.tail(40));
    }
    // The plugin decided, not the built-in evaluator: one engine instance per expression.
    let logs = plugin_ok(&cluster, &["logs", "-p", broker::plugin::SQL_ENGINE_NAME]).stdout;
    for expr in [first, second] {
        let created = format!("engine for SQL92 subscription `{expr}` created");
        assert_eq!(logs.matches(&created).count(), 1, "{created:?} once in\n{logs}");
    }
}
