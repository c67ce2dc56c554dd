//! Unit tests of the plugin host's pure parts: the batch layout, the health state, bindings,
//! parameters and the refusal of things that are not components.

use std::time::{Duration, Instant};

use super::batch::{INDEX_WORDS, PluginMessage, bit, push};
use super::limits::*;
use super::stats::Health;
use super::*;

fn message<'a>(props: &'a str, body: &'a [u8]) -> PluginMessage<'a> {
    PluginMessage {
        queue_id: 3,
        sys_flag: 0,
        queue_offset: 42,
        commitlog_offset: 4096,
        born_timestamp: 1_000,
        store_timestamp: 2_000,
        reconsume_times: 1,
        topic: "orders",
        properties: props,
        body,
    }
}

fn span_of(data: &[u8], word: u64) -> &[u8] {
    let (start, len) = ((word >> 32) as usize, (word & 0xFFFF_FFFF) as usize);
    &data[start..start + len]
}

#[test]
fn the_packed_index_points_at_every_field_it_was_asked_for() {
    let props = "TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2\u{2}region\u{1}eu\u{2}";
    let all = Needs { topic: true, tags: true, keys: true, properties: true, body: true };
    let no_props = Needs { properties: false, body: false, ..all };
    for needs in [all, no_props] {
        let (mut data, mut index) = (Vec::new(), Vec::new());
        push(&message(props, b"hello"), needs, &mut data, &mut index);
        push(&message("", b""), needs, &mut data, &mut index);
        assert_eq!(index.len(), 2 * INDEX_WORDS);
        assert_eq!(index[0], 3, "queue id, sys flag 0");
        assert_eq!(index[1], 42);
        assert_eq!(index[5] as i64, crate::store::format::tags_code(Some("TagA")));
        assert_eq!(span_of(&data, index[7]), b"orders");
        assert_eq!(span_of(&data, index[8]), b"TagA");
        assert_eq!(span_of(&data, index[9]), b"k1 k2");
        let want_props: &[u8] = if needs.properties { props.as_bytes() } else { b"" };
        assert_eq!(span_of(&data, index[10]), want_props);
        let want_body: &[u8] = if needs.body { b"hello" } else { b"" };
        assert_eq!(span_of(&data, index[11]), want_body);
        assert_eq!(span_of(&data, index[INDEX_WORDS + 8]), b"", "no tags on the second message");
    }
}

#[test]
fn tags_and_keys_are_found_as_the_stores_property_lookup_finds_them() {
    let cases = [
        "TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2",
        "KEYS\u{1}\u{2}TAGS\u{1}\u{2}TAGS\u{1}second\u{2}KEYS\u{1}k",
        "TAGSX\u{1}no\u{2}XTAGS\u{1}no\u{2}KEYS",
        "",
        "TAGS\u{1}a\u{1}b\u{2}KEYS\u{1}\u{1}",
        "\u{2}\u{2}TAGS\u{1}é\u{2}",
    ];
    for props in cases {
        let m = message(props, b"");
        assert_eq!(m.tags(), crate::store::format::property(props, "TAGS"), "{props:?}");
        let (mut data, mut index) = (Vec::new(), Vec::new());
        let only_keys = Needs { topic: false, tags: false, keys: true, properties: false, body: false };
        push(&m, only_keys, &mut data, &mut index);
        let want = crate::store::format::property(props, "KEYS").unwrap_or("");
        assert_eq!(span_of(&data, index[9]), want.as_bytes(), "{props:?}");
    }
}

#[test]
fn bitmaps_read_missing_words_as_clear() {
    let map = [0b101u64, 1];
    let got: Vec<bool> = (0..3).map(|i| bit(&map, i)).collect();
    assert_eq!(got, [true, false, true]);
    assert!(bit(&map, 64));
    assert!(!bit(&map, 200));
}

#[test]
fn quarantine_starts_after_repeated_failures_and_a_good_probe_ends_it() {
    let h = Health::default();
    let t0 = Instant::now();
    for i in 0..QUARANTINE_FAILURES - 1 {
        assert_eq!(h.failure(t0), None, "failure {i} alone does not quarantine");
    }
    let (entered, backoff) = h.failure(t0).expect("the last failure quarantines");
    assert!(entered);
    assert_eq!(backoff, Duration::from_millis(QUARANTINE_BACKOFF_MS_MIN));
    assert!(!h.admit(t0), "quarantined: not called");
    let later = t0 + backoff;
    assert!(h.admit(later), "one probe after the backoff");
    assert!(!h.admit(later), "only one");
    let (entered, longer) = h.failure(later).expect("a failed probe extends the quarantine");
    assert!(!entered);
    assert_eq!(longer, backoff * 2);
    assert!(h.admit(later + longer));
    assert!(h.success(), "a good probe lifts it");
    assert!(h.admit(later + longer));
    assert!(!h.success(), "nothing to lift any more");
}

#[test]
fn bindings_need_their_attachment_points() {
    let cases = [
        (Role::Filter, Some("g"), Some("t"), true),
        (Role::Filter, Some("g"), None, false),
        (Role::Filter, None, Some("t"), false),
        (Role::Router, None, Some("t"), true),
        (Role::Router, Some("g"), None, false),
        (Role::Checker, Some("pg"), None, true),
        (Role::Checker, None, Some("t"), false),
    ];
    for (role, group, topic, ok) in cases {
        let b = Binding {
            role,
            plugin: "p".into(),
            group: group.map(String::from),
            topic: topic.map(String::from),
            fail_open: false,
        };
        assert_eq!(b.check().is_ok(), ok, "{role} group={group:?} topic={topic:?}");
    }
}

#[test]
fn params_files_are_name_value_lines() {
    let p = parse_params("# comment\nexpression = a > 1 AND b = 'x'\n\nmode=loop\n").unwrap();
    assert_eq!(p, vec![("expression".into(), "a > 1 AND b = 'x'".into()), ("mode".into(), "loop".into())]);
    assert!(parse_params("no equals sign").is_err());
}

#[test]
fn deploy_refuses_what_is_not_a_component_before_compiling_anything_big() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = Plugins::open(dir.path(), None);
    let core_module = b"\0asm\x01\0\0\0";
    let cases: [(&str, &[u8], &str); 4] = [
        ("bad name!", b"\0asm", "plugin name"),
        ("text", b"hello world", "not a WebAssembly file"),
        ("core", core_module, "core WebAssembly module, not a component"),
        ("junk", b"\0asm\x0d\0\x01\0garbage", "not a valid component"),
    ];
    for (name, wasm, want) in cases {
        let e = plugins.deploy(name, wasm, Vec::new(), None).unwrap_err().to_string();
        assert!(e.contains(want), "{name}: {e}");
    }
    let big = vec![0u8; PLUGIN_WASM_BYTES_MAX + 1];
    let e = plugins.deploy("big", &big, Vec::new(), None).unwrap_err();
    assert!(matches!(e, PluginError::TooLarge { .. }), "{e}");
    assert!(plugins.list().is_empty());
    assert!(plugins.filter("g", "t", &[]).is_none(), "nothing bound");
}

#[test]
fn snapshots_round_trip_an_empty_set_and_refuse_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = Plugins::open(dir.path(), None);
    let snap = plugins.snapshot();
    plugins.install_snapshot(&snap).unwrap();
    assert!(plugins.install_snapshot(b"{not json").is_err());
    assert_eq!(unhex(&hex(&[0, 1, 0xab, 0xff])), Some(vec![0, 1, 0xab, 0xff]));
    assert_eq!(unhex("abc"), None);
    assert_eq!(unhex("zz"), None);
}

// The example plugins in the real host (built once per test process).

fn wasm(name: &str) -> Vec<u8> {
    super::examples::read(name).unwrap_or_else(|e| panic!("{e}"))
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn filter_binding(plugin: &str, group: &str, topic: &str) -> Binding {
    Binding {
        role: Role::Filter,
        plugin: plugin.into(),
        group: Some(group.into()),
        topic: Some(topic.into()),
        fail_open: false,
    }
}

fn encoded(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}\u{1}{v}\u{2}")).collect()
}

#[test]
fn the_sql92_plugin_follows_rocketmqs_grammar_in_the_real_host() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = Plugins::open(dir.path(), None);
    let sql = wasm("sql92_filter");
    let msg_props = encoded(&[("a", "5"), ("region", "eu-west"), ("TAGS", "TagA"), ("flag", "true"), ("s", "abc")]);
    let msg = message(&msg_props, b"");
    // (expression, Some(match) or None for "could not evaluate")
    let cases: &[(&str, Option<bool>)] = &[
        ("a = 5", Some(true)),
        ("a > 4 AND a < 6", Some(true)),
        ("a BETWEEN 1 AND 4", Some(false)),
        ("a NOT BETWEEN 1 AND 4", Some(true)),
        ("region IN ('eu-west', 'us')", Some(true)),
        ("region NOT IN ('eu-west')", Some(false)),
        ("missing IS NULL", Some(true)),
        ("a IS NOT NULL", Some(true)),
        ("missing = 1", Some(false)),
        ("NOT (missing = 1)", Some(false)),
        ("region CONTAINS 'west'", Some(true)),
        ("region STARTSWITH 'eu'", Some(true)),
        ("region ENDSWITH 'east'", Some(false)),
        ("region NOT ENDSWITH 'east'", Some(true)),
        ("TAGS = 'TagA' OR a > 100", Some(true)),
        ("flag = TRUE", Some(true)),
        ("a >= 5.0 AND a <= 5e0", Some(true)),
        ("a = -5 OR a = +5", Some(true)),
        ("a <> 5", Some(false)),
        ("s = 'it''s'", Some(false)),
        ("s > 'abd'", None),
        ("(a = 5 OR a = 6) and not (region = 'us')", Some(true)),
        ("not region = 'us'", Some(false)),
    ];
    for (i, (expr, want)) in cases.iter().enumerate() {
        let name = format!("sql{i}");
        plugins.deploy(&name, &sql, params(&[("expression", expr)]), Some(Role::Filter)).unwrap();
        plugins.bind(filter_binding(&name, &format!("g{i}"), "t")).unwrap();
        let got = plugins.filter(&format!("g{i}"), "t", &[msg]).unwrap();
        let want_decision = if *want == Some(true) { Decision::Pass } else { Decision::Drop };
        assert_eq!(got, vec![want_decision], "{expr}");
        let errors = plugins.describe(&name).unwrap().counters.errors;
        assert_eq!(errors, u64::from(want.is_none()), "{expr}: per-message errors");
    }
    for bad in ["a = ", "a IN ()", "(a = 1", "a = 'x", "a BETWEEN 1", "a = 1 b"] {
        let e = plugins.deploy("bad", &sql, params(&[("expression", bad)]), None).unwrap_err();
        assert!(matches!(e, PluginError::CreateFailed(_)), "{bad}: {e}");
        assert!(e.to_string().contains("bad expression"), "{bad}: {e}");
    }
}

#[test]
fn an_instance_is_replaced_after_its_call_budget() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = Plugins::open(dir.path(), None);
    plugins.deploy("sql", &wasm("sql92_filter"), params(&[("expression", "a = 5")]), None).unwrap();
    plugins.bind(filter_binding("sql", "g", "t")).unwrap();
    let props = encoded(&[("a", "5")]);
    let created = || plugins.describe("sql").unwrap().counters.instances_created;
    let at_deploy = created();
    // One instance serves the first INSTANCE_CALLS_MAX calls (a prefilter call included), then
    // exactly one fresh instance takes over: not one per call, and not never.
    for _ in 0..super::limits::INSTANCE_CALLS_MAX + 1 {
        assert_eq!(plugins.filter("g", "t", &[message(&props, b"")]).unwrap(), vec![Decision::Pass]);
    }
    assert_eq!(created(), at_deploy + 1, "the worn-out instance was replaced once");
}

#[test]
fn the_tag_prefilter_drops_by_hash_code_and_the_full_match_checks_the_string() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = Plugins::open(dir.path(), None);
    plugins.deploy("tags", &wasm("sql92_filter"), params(&[("tags", "TagA || TagC")]), None).unwrap();
    plugins.bind(filter_binding("tags", "g", "t")).unwrap();
    let props: Vec<String> = ["TagA", "TagB", "TagC", ""].iter().map(|t| encoded(&[("TAGS", t)])).collect();
    let msgs: Vec<_> = props.iter().map(|p| message(p, b"")).collect();
    let got = plugins.filter("g", "t", &msgs).unwrap();
    assert_eq!(got, vec![Decision::Pass, Decision::Drop, Decision::Pass, Decision::Drop]);
    let c = plugins.describe("tags").unwrap().counters;
    assert_eq!((c.messages_in, c.messages_passed), (4, 2));
}

#[test]
fn deploy_errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = Plugins::open(dir.path(), None);
    /// (deployment name, component, parameters, expected role, what the error must say)
    type Case<'a> = (&'a str, Vec<u8>, Vec<(String, String)>, Option<Role>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("router-as-filter", wasm("key_router"), vec![], Some(Role::Filter), "wrong world: the component is a router"),
        (
            "no-params",
            wasm("sql92_filter"),
            vec![],
            None,
            "`create` failed: invalid configuration: give an `expression`",
        ),
        ("bad-mode", wasm("hostile_filter"), params(&[("mode", "nope")]), None, "unknown mode `nope`"),
        ("checker", wasm("property_checker"), params(&[("property", "p")]), None, "give `commit` and/or `rollback`"),
    ];
    for (name, bytes, p, role, want) in cases {
        let e = plugins.deploy(name, &bytes, p, role).unwrap_err().to_string();
        assert!(e.contains(want), "{name}: {e}");
    }
    assert!(plugins.list().is_empty(), "nothing refused was installed");
}

#[test]
fn hostile_filters_fail_closed_get_quarantined_and_poison_is_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = Plugins::open(dir.path(), None);
    let hostile = wasm("hostile_filter");
    let keys: Vec<String> = (0..16).map(|i| encoded(&[("KEYS", &format!("k{i}"))])).collect();
    let msgs: Vec<_> = keys.iter().map(|p| message(p, b"")).collect();
    for (mode, trap) in [("loop", "deadline"), ("bomb", "memory"), ("panic", "panic")] {
        plugins.deploy(mode, &hostile, params(&[("mode", mode)]), None).unwrap();
        plugins.bind(filter_binding(mode, mode, "t")).unwrap();
        for _ in 0..QUARANTINE_FAILURES {
            let got = plugins.filter(mode, "t", &msgs).unwrap();
            assert!(got.iter().all(|d| *d == Decision::Undecided), "{mode}: fail closed: {got:?}");
        }
        let d = plugins.describe(mode).unwrap();
        let c = &d.counters;
        let by_kind = match trap {
            "deadline" => c.traps.deadline,
            "memory" => c.traps.memory,
            _ => c.traps.panic,
        };
        assert!(by_kind >= 3, "{mode}: traps by kind {c:?}");
        assert_eq!(c.quarantines, 1, "{mode}: {c:?}");
        assert!(d.summary.quarantined);
        let calls = c.calls;
        let got = plugins.filter(mode, "t", &msgs).unwrap();
        assert!(got.iter().all(|d| *d == Decision::Undecided));
        assert_eq!(plugins.describe(mode).unwrap().counters.calls, calls, "{mode}: quarantined, not called");
        if mode == "loop" {
            assert!(c.deadline_hits >= 3);
        }
    }
    // A trap on one message: that message is pinned as poison, the others are decided.
    plugins.deploy("poison", &hostile, params(&[("mode", "trap-on-key"), ("key", "k11")]), None).unwrap();
    plugins.bind(filter_binding("poison", "p", "t")).unwrap();
    let got = plugins.filter("p", "t", &msgs).unwrap();
    let want: Vec<Decision> = (0..16).map(|i| if i == 11 { Decision::Poison } else { Decision::Pass }).collect();
    assert_eq!(got, want);
    let c = plugins.describe("poison").unwrap().counters;
    assert_eq!((c.poison_messages, c.quarantines), (1, 0), "{c:?}");
    assert!(plugins.logs("poison", 50).unwrap().iter().any(|l| l.message.contains("poison key seen")));
    // Fail open delivers when the plugin cannot decide.
    let mut open = filter_binding("panic", "open", "t");
    open.fail_open = true;
    plugins.bind(open).unwrap();
    assert!(plugins.filter("open", "t", &msgs).unwrap().iter().all(|d| *d == Decision::Pass));
}

#[test]
fn a_quarantined_plugin_recovers_after_its_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = Plugins::open(dir.path(), None);
    // Compiled once here, so the timed deploy below is a cache hit.
    plugins.deploy("warm", &wasm("hostile_filter"), params(&[("mode", "pass")]), None).unwrap();
    let until = crate::store::now_ms() + 1_000;
    plugins
        .deploy(
            "flaky",
            &wasm("hostile_filter"),
            params(&[("mode", "fail-until"), ("until", &until.to_string())]),
            None,
        )
        .unwrap();
    plugins.bind(filter_binding("flaky", "g", "t")).unwrap();
    let p = encoded(&[("KEYS", "k")]);
    let msgs = [message(&p, b"")];
    for _ in 0..QUARANTINE_FAILURES {
        assert_eq!(plugins.filter("g", "t", &msgs).unwrap(), vec![Decision::Undecided]);
    }
    assert_eq!(plugins.describe("flaky").unwrap().counters.quarantines, 1);
    let past_until = u64::try_from(until - crate::store::now_ms()).unwrap_or(0);
    std::thread::sleep(Duration::from_millis(past_until.max(QUARANTINE_BACKOFF_MS_MIN) + 100));
    assert_eq!(plugins.filter("g", "t", &msgs).unwrap(), vec![Decision::Pass], "the probe passes");
    let d = plugins.describe("flaky").unwrap();
    assert_eq!(d.counters.recoveries, 1);
    assert!(!d.summary.quarantined);
}

#[test]
fn routers_and_checkers_decide_and_everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let plugins = Plugins::open(dir.path(), None);
        let router = params(&[("divert-property", "flag"), ("divert-value", "vip"), ("divert-topic", "vip-orders")]);
        plugins.deploy("router", &wasm("key_router"), router, Some(Role::Router)).unwrap();
        plugins
            .bind(Binding {
                role: Role::Router,
                plugin: "router".into(),
                group: None,
                topic: Some("orders".into()),
                fail_open: false,
            })
            .unwrap();
        let checker = params(&[("property", "state"), ("commit", "paid"), ("rollback", "cancelled")]);
        plugins.deploy("checker", &wasm("property_checker"), checker, None).unwrap();
        plugins
            .bind(Binding {
                role: Role::Checker,
                plugin: "checker".into(),
                group: Some("pg".into()),
                topic: None,
                fail_open: false,
            })
            .unwrap();
    }
    let plugins = Plugins::open(dir.path(), None);
    assert_eq!(plugins.list().len(), 2);
    assert_eq!(plugins.bindings().len(), 2);
    let keyed = encoded(&[("KEYS", "order-7")]);
    let want_queue = {
        let mut h: u32 = 0x811c_9dc5;
        for b in "order-7".bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        h % 8
    };
    assert_eq!(plugins.route("orders", 8, &message(&keyed, b"")), Some(RouteDecision::Queue(want_queue)));
    let vip = encoded(&[("flag", "vip")]);
    assert_eq!(plugins.route("orders", 8, &message(&vip, b"")), Some(RouteDecision::Topic("vip-orders".into(), None)));
    assert_eq!(plugins.route("other", 8, &message(&vip, b"")), None, "not bound there");
    for (state, want) in
        [("paid", Resolution::Commit), ("cancelled", Resolution::Rollback), ("new", Resolution::Unknown)]
    {
        let p = encoded(&[("state", state)]);
        assert_eq!(plugins.check("pg", &message(&p, b"")), Some(want), "{state}");
    }
    assert_eq!(plugins.check("other", &message("", b"")), None);
    // A new version swaps in; the counters carry on; the old file goes.
    let before = plugins.describe("checker").unwrap().counters.calls;
    let v2 = plugins
        .deploy("checker", &wasm("property_checker"), params(&[("property", "state"), ("commit", "new")]), None)
        .unwrap();
    assert_eq!(v2.version, 2);
    let p = encoded(&[("state", "new")]);
    assert_eq!(plugins.check("pg", &message(&p, b"")), Some(Resolution::Commit));
    assert_eq!(plugins.describe("checker").unwrap().counters.calls, before + 1);
    assert!(dir.path().join("plugins/wasm/checker.v2.wasm").exists());
    assert!(!dir.path().join("plugins/wasm/checker.v1.wasm").exists());
    // Removing a bound plugin is refused; unbound it goes.
    assert!(plugins.remove("checker").unwrap_err().to_string().contains("unbind it first"));
    let at =
        Binding { role: Role::Checker, plugin: String::new(), group: Some("pg".into()), topic: None, fail_open: false };
    assert!(plugins.unbind(&at).unwrap());
    plugins.remove("checker").unwrap();
    assert_eq!(plugins.list().len(), 1);
    // A slave takes the master's set.
    let slave_dir = tempfile::tempdir().unwrap();
    let slave = Plugins::open(slave_dir.path(), None);
    slave.install_snapshot(&plugins.snapshot()).unwrap();
    assert_eq!(
        slave.list().iter().map(|s| (s.name.clone(), s.version)).collect::<Vec<_>>(),
        vec![("router".to_string(), 1)]
    );
    assert_eq!(slave.bindings(), plugins.bindings());
}

#[test]
fn plugin_dir_files_are_deployed_at_start_once_per_change() {
    let store = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("eu.wasm"), wasm("sql92_filter")).unwrap();
    std::fs::write(dir.path().join("eu.params"), "# the subscription\nexpression = region = 'eu'\n").unwrap();
    std::fs::write(dir.path().join("broken.wasm"), b"not a component").unwrap();
    let version = |p: &Plugins| p.list().iter().find(|s| s.name == "eu").map(|s| s.version);
    {
        let plugins = Plugins::open(store.path(), Some(dir.path()));
        assert_eq!(version(&plugins), Some(1));
        assert_eq!(plugins.list().len(), 1, "the broken file is refused, the rest loads");
        let d = plugins.describe("eu").unwrap();
        assert_eq!(d.summary.params, params(&[("expression", "region = 'eu'")]));
    }
    let plugins = Plugins::open(store.path(), Some(dir.path()));
    assert_eq!(version(&plugins), Some(1), "unchanged: not redeployed");
    drop(plugins);
    std::fs::write(dir.path().join("eu.params"), "expression = region = 'us'\n").unwrap();
    let plugins = Plugins::open(store.path(), Some(dir.path()));
    assert_eq!(version(&plugins), Some(2), "changed parameters: a new version");
}

#[test]
fn the_sql92_engine_makes_one_instance_per_expression_and_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = Plugins::open(dir.path(), None);
    let component = dir.path().join("sql92_filter.wasm");
    std::fs::write(&component, wasm("sql92_filter")).unwrap();
    let props: Vec<String> = (0..6).map(|i| encoded(&[("TAGS", "TagA"), ("a", &i.to_string())])).collect();
    let msgs: Vec<PluginMessage<'_>> = props.iter().map(|p| message(p, b"")).collect();
    let (pass, drop) = (Decision::Pass, Decision::Drop);
    let want = [drop, drop, drop, pass, pass, pass];
    assert_eq!(plugins.filter_sql(&component, "a > 2", &msgs), want);
    assert_eq!(plugins.filter_sql(&component, "a > 2", &msgs), want, "reused");
    assert_eq!(plugins.filter_sql(&component, "a = 1", &msgs), [drop, pass, drop, drop, drop, drop]);
    let created = plugins.logs(SQL_ENGINE_NAME, 100).unwrap();
    let created = created.iter().filter(|l| l.message.contains("created")).count();
    assert_eq!(created, 2, "one instance set per distinct expression");
    assert!(plugins.list().is_empty() && plugins.bindings().is_empty(), "no deployment, no binding");
    // An expression the plugin refuses, or no component: nothing is decided (fail closed).
    assert_eq!(plugins.filter_sql(&component, "a >", &msgs), vec![Decision::Undecided; 6]);
    let other = Plugins::open(&dir.path().join("other"), None);
    assert_eq!(other.filter_sql(&dir.path().join("missing.wasm"), "a > 2", &msgs), vec![Decision::Undecided; 6]);
    // At start: a missing component is an error, a real one is compiled and created.
    let missing = other.start_sql_engine(&dir.path().join("missing.wasm")).unwrap_err();
    assert!(missing.contains("missing.wasm"), "{missing}");
    plugins.start_sql_engine(&component).unwrap();
}

#[test]
fn the_sql92_engine_evicts_the_least_recently_used_expression() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = Plugins::open(dir.path(), None);
    let component = dir.path().join("sql92_filter.wasm");
    std::fs::write(&component, wasm("sql92_filter")).unwrap();
    let props = encoded(&[("a", "0")]);
    let msgs = [message(&props, b"")];
    let created = |expression: &str| {
        let logs = plugins.logs(SQL_ENGINE_NAME, 1000).unwrap();
        logs.iter().filter(|l| l.message.contains(&format!("`{expression}` created"))).count()
    };
    for i in 0..crate::plugin::limits::SQL_ENGINE_EXPRESSIONS_MAX {
        plugins.filter_sql(&component, &format!("a = {i}"), &msgs);
    }
    // `a = 0` is used again, so `a = 1` is now the least recently used; a new one evicts it.
    plugins.filter_sql(&component, "a = 0", &msgs);
    plugins.filter_sql(&component, "a = 99", &msgs);
    plugins.filter_sql(&component, "a = 0", &msgs);
    plugins.filter_sql(&component, "a = 1", &msgs);
    assert_eq!(created("a = 0"), 1, "kept: recently used");
    assert_eq!(created("a = 1"), 2, "evicted, then made again");
}
