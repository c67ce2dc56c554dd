//! The web console (issue 8): a real `mqbroker` with data in it, driven by headless Chromium
//! (Debian's `chromium`, through `playwright-core` from `tests/dashboard/`). The browser script
//! walks every page, logs in, creates a topic, sends a test message and finds it by key, resets an
//! offline group's offsets with a preview, resends a dead letter, uploads and binds a plugin, and
//! checks each page against the REST API; it saves a screenshot of every page (the folder is
//! printed) and prints how long the topics and groups pages take to show their first page with
//! 2,000 topics and 5,000 groups (reported, not asserted). Before the browser, the login rules and
//! the console's files are checked over plain HTTP.
//!
//! The AMQP page: the broker's AMQP door is on, and the real `lapin` client declares two
//! exchanges, two queues and three bindings, publishes, and keeps a consumer (manual ack,
//! prefetch 3) holding three unacknowledged messages while the browser runs; the figures of
//! `/v1/amqp/...` and of the page must be the known ones. With the door off the routes answer 404
//! and say why.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::http::{Door, answer, block_on};
use crate::support::free_port;

const USER: &str = "admin";
const PASSWORD: &str = "console-test-password";
const CHROMIUM: &str = "/usr/bin/chromium";
const BULK_TOPICS: usize = 2000;
const BULK_GROUPS: usize = 5000;
/// Requests in flight while the bulk topics and groups are created.
const BULK_CONCURRENCY: usize = 16;
/// The AMQP consumer's prefetch (`basic.qos`), so as many messages stay unacknowledged.
const AMQP_PREFETCH: u16 = 3;
/// Messages published to the direct exchange (key `order`) and to the fanout exchange.
const AMQP_DIRECT_MESSAGES: u64 = 6;
const AMQP_FANOUT_MESSAGES: u64 = 4;
/// What the AMQP page must show per queue: (name, ready, unacknowledged, consumers).
const AMQP_QUEUES: [(&str, u64, u64, u64); 2] = [
    ("console.audit", AMQP_FANOUT_MESSAGES, 0, 0),
    ("console.orders", AMQP_DIRECT_MESSAGES + AMQP_FANOUT_MESSAGES - AMQP_PREFETCH as u64, AMQP_PREFETCH as u64, 1),
];
/// The declared bindings: (source exchange, queue, routing key).
const AMQP_BINDINGS: [(&str, &str, &str); 3] = [
    ("console.direct", "console.orders", "order"),
    ("console.fanout", "console.audit", ""),
    ("console.fanout", "console.orders", ""),
];
/// The exchanges every vhost has (the default one and the `amq.*` ones).
const AMQP_PREDECLARED_EXCHANGES: usize = 6;
/// How long the AMQP figures may take to settle (a shared 2-core machine, debug builds).
const AMQP_SETTLE: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `dashboardPasswordHash` for [`PASSWORD`] (PBKDF2-HMAC-SHA256, 10,000 iterations).
fn password_hash() -> String {
    let salt = b"dashboard-test-salt";
    let key = gateway_http::auth::pbkdf2(PASSWORD.as_bytes(), salt, 10_000);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!("pbkdf2-sha256:10000:{}:{}", hex(salt), hex(&key))
}

/// Chromium and `tests/dashboard/node_modules`: present, or installed here (outside CI); with
/// `CI=true` a missing one fails the test with what to install.
fn ensure_browser() {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let modules = repo().join("tests/dashboard/node_modules/playwright-core");
    if !Path::new(CHROMIUM).exists() {
        assert!(!ci, "{CHROMIUM} is missing: .ci/run must `apt-get install -y chromium`");
        let st = Command::new("sh")
            .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium"])
            .status()
            .expect("run apt-get");
        assert!(st.success() && Path::new(CHROMIUM).exists(), "installing chromium failed");
    }
    if !modules.exists() {
        assert!(!ci, "tests/dashboard/node_modules is missing: .ci/run must `npm ci --prefix tests/dashboard`");
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(repo().join("tests/dashboard"))
            .status()
            .expect("run npm");
        assert!(st.success() && modules.exists(), "npm ci --prefix tests/dashboard failed");
    }
}

/// PUTs `paths` with `body`, [`BULK_CONCURRENCY`] at a time, asserting each answers 200.
async fn put_all(door: &Door, paths: Vec<String>, body: Value) {
    let http = door.http.clone();
    let base = door.base.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(BULK_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for p in paths {
        let (http, url, body, slots) = (http.clone(), format!("{base}{p}"), body.clone(), slots.clone());
        tasks.spawn(async move {
            let _slot = slots.acquire().await.unwrap();
            let r = http.put(&url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "PUT {url}");
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

#[test]
fn console_pages_in_a_real_browser() {
    ensure_browser();
    let wasm = broker::plugin::examples::build().unwrap_or_else(|e| panic!("{e}")).join("json_filter.wasm");
    let amqp_port = free_port();
    let door = Door::start(&format!(
        "dashboardUser={USER}\ndashboardPasswordHash={}\nautoCreateTopicEnable=true\namqpListenPort={amqp_port}",
        password_hash()
    ));
    // The AMQP clients live on their own runtime, so the consumer keeps its unacknowledged
    // messages (and the connection its heartbeats) while the browser runs.
    let amqp_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let amqp = amqp_rt.block_on(seed_amqp(amqp_port));
    block_on(amqp_figures_over_rest(&door));
    let shots = repo().join("target/dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    block_on(async {
        login_rules_and_files(&door).await;
        seed(&door).await;
        let started = Instant::now();
        put_all(
            &door,
            (0..BULK_TOPICS).map(|i| format!("/v1/topics/bulk-topic-{i:04}")).collect(),
            json!({"read_queues": 1, "write_queues": 1}),
        )
        .await;
        let topics_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        put_all(&door, (0..BULK_GROUPS).map(|i| format!("/v1/groups/bulk-group-{i:04}")).collect(), json!({})).await;
        eprintln!(
            "dashboard: created {BULK_TOPICS} topics in {topics_s:.1} s and {BULK_GROUPS} groups in {:.1} s over REST",
            started.elapsed().as_secs_f64()
        );
    });

    eprintln!("dashboard: screenshots in {}", shots.display());
    let out = Command::new("node")
        .arg(repo().join("tests/dashboard/run.mjs"))
        .env("BASE_URL", &door.base)
        .env("CONSOLE_USER", USER)
        .env("CONSOLE_PASSWORD", PASSWORD)
        .env("SCREENSHOTS", &shots)
        .env("WASM_PATH", &wasm)
        .env("CHROMIUM", CHROMIUM)
        .env("AMQP_EXPECT", amqp_expectation().to_string())
        .current_dir(repo().join("tests/dashboard"))
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stdout.lines().filter(|l| l.starts_with("TIMING") || l.starts_with("LOAD")) {
        eprintln!("dashboard: {line}");
    }
    assert!(
        out.status.success() && stdout.contains("DASHBOARD OK"),
        "the browser script failed ({}); screenshots in {}\n{stdout}\n{stderr}",
        out.status,
        shots.display()
    );
    for page in [
        "01-cluster",
        "02-topics",
        "04-messages",
        "06-groups",
        "08-dead-letters",
        "09-plugins",
        "amqp",
        "amqp-queue",
        "amqp-off",
    ] {
        assert!(shots.join(format!("{page}.png")).exists(), "screenshot {page}");
    }

    // What the browser did, seen through the REST API.
    block_on(async {
        let (s, v) = door.get("/v1/topics/console-topic").await;
        assert_eq!((s, v["read_queues"].as_u64()), (StatusCode::OK, Some(2)), "{v}");
        let (_, v) = door.get("/v1/topics/console-topic/messages?key=console-key-1").await;
        assert_eq!(v["messages"].as_array().map(Vec::len), Some(1), "{v}");
        let (_, v) = door.get("/v1/groups/billing/offsets?topic=orders").await;
        assert!(v["offsets"].as_array().unwrap().iter().all(|o| o["offset"] == 0), "{v}");
        // The resent dead letter is delivered to its group again.
        let got = door.receive("dlq_group", "jobs", 4, 30_000, 5_000).await;
        assert_eq!(got.iter().map(|m| m["body"].as_str().unwrap_or("")).collect::<Vec<_>>(), ["poison"], "{got:?}");
        let (_, v) = door.get("/v1/plugins").await;
        assert!(v["bindings"].as_array().unwrap().iter().any(|b| b["plugin"] == "console_filter"), "{v}");
    });
    // The consumer still holds its messages: the browser changed nothing on the AMQP door.
    block_on(amqp_figures_over_rest(&door));
    amqp_rt.block_on(async move {
        let AmqpClients { connection, consumer, held } = amqp;
        drop((consumer, held));
        connection.close(200, "done".into()).await.unwrap();
    });
}

/// The AMQP clients kept open while the browser runs.
struct AmqpClients {
    connection: Connection,
    consumer: lapin::Consumer,
    /// Delivered and not acknowledged.
    held: Vec<lapin::message::Delivery>,
}

/// Declares a durable direct exchange, a fanout exchange, two durable queues and the bindings of
/// [`AMQP_BINDINGS`], publishes with confirms, and consumes with manual ack and prefetch
/// [`AMQP_PREFETCH`]: the consumer takes that many messages and acknowledges none.
async fn seed_amqp(port: u16) -> AmqpClients {
    let uri = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let connection = Connection::connect(&uri, ConnectionProperties::default()).await.expect("AMQP connect");
    let ch = connection.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    ch.exchange_declare("console.direct".into(), ExchangeKind::Direct, durable, FieldTable::default()).await.unwrap();
    ch.exchange_declare(
        "console.fanout".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut audit_args = FieldTable::default();
    audit_args.insert("x-max-length".into(), AMQPValue::LongInt(10_000));
    for (name, args) in [("console.orders", FieldTable::default()), ("console.audit", audit_args)] {
        let opts = QueueDeclareOptions { durable: true, ..Default::default() };
        ch.queue_declare(name.into(), opts, args).await.unwrap();
    }
    for (exchange, queue, key) in AMQP_BINDINGS {
        ch.queue_bind(queue.into(), exchange.into(), key.into(), QueueBindOptions::default(), FieldTable::default())
            .await
            .unwrap();
    }
    let publishes = (0..AMQP_DIRECT_MESSAGES)
        .map(|i| ("console.direct", "order", format!("order-{i}")))
        .chain((0..AMQP_FANOUT_MESSAGES).map(|i| ("console.fanout", "", format!("audit-{i}"))));
    for (exchange, key, body) in publishes {
        ch.basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default(),
        )
        .await
        .expect("basic.publish")
        .await
        .expect("confirm");
    }
    let consuming = connection.create_channel().await.unwrap();
    consuming.basic_qos(AMQP_PREFETCH, BasicQosOptions::default()).await.unwrap();
    let mut consumer = consuming
        .basic_consume(
            "console.orders".into(),
            "console-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..AMQP_PREFETCH {
        let d = tokio::time::timeout(AMQP_SETTLE, consumer.next()).await.expect("a delivery").unwrap().unwrap();
        held.push(d);
    }
    AmqpClients { connection, consumer, held }
}

/// What the browser script checks the AMQP page against (besides the REST answers).
fn amqp_expectation() -> Value {
    json!({
        "queues": AMQP_QUEUES.iter().map(|(name, ready, unacked, consumers)| {
            json!({"name": name, "ready": ready, "unacked": unacked, "consumers": consumers})
        }).collect::<Vec<_>>(),
        "bindings": AMQP_BINDINGS.iter().map(|(s, d, k)| json!({"source": s, "destination": d, "routing_key": k}))
            .collect::<Vec<_>>(),
        "exchanges": [{"name": "console.direct", "type": "direct", "durable": true},
                      {"name": "console.fanout", "type": "fanout", "durable": false}],
        "consumer": {"queue": "console.orders", "tag": "console-consumer", "prefetch": AMQP_PREFETCH,
                     "unacked": AMQP_PREFETCH},
    })
}

/// `/v1/amqp/...` over plain HTTP: the queues' ready, unacknowledged and consumer figures, the
/// consumer, the exchanges, the bindings and the overview's totals are the known ones.
async fn amqp_figures_over_rest(door: &Door) {
    let figures = |v: &Value| -> Vec<(String, u64, u64, u64)> {
        v["queues"]
            .as_array()
            .map(|qs| {
                qs.iter()
                    .map(|q| {
                        let n = |k: &str| q[k].as_u64().unwrap_or(u64::MAX);
                        let name = q["name"].as_str().unwrap_or_default().to_owned();
                        (name, n("messages_ready"), n("messages_unacknowledged"), n("consumers"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let want: Vec<(String, u64, u64, u64)> =
        AMQP_QUEUES.iter().map(|(n, r, u, c)| ((*n).to_owned(), *r, *u, *c)).collect();
    let deadline = Instant::now() + AMQP_SETTLE;
    let queues = loop {
        let (s, v) = door.get("/v1/amqp/queues?q=console.").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if figures(&v) == want {
            break v;
        }
        assert!(Instant::now() < deadline, "AMQP queue figures {:?}, want {want:?}: {v}", figures(&v));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(queues["total"], 2, "{queues}");
    let orders = &queues["queues"][1];
    assert!(orders["topic"].as_str().is_some_and(|t| t.starts_with("AMQP_Q_")), "{orders}");
    let c = &orders["consumer_details"][0];
    assert_eq!(
        (c["consumer_tag"].as_str(), c["ack_mode"].as_str(), c["prefetch_count"].as_u64()),
        (Some("console-consumer"), Some("manual"), Some(u64::from(AMQP_PREFETCH))),
        "{orders}"
    );
    assert_eq!(c["messages_unacknowledged"].as_u64(), Some(u64::from(AMQP_PREFETCH)), "{orders}");
    assert!(c["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{c}");
    assert_eq!(queues["queues"][0]["arguments"], json!({"x-max-length": 10_000}), "{queues}");

    let (s, v) = door.get("/v1/amqp/exchanges?q=console.").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let exchanges: Vec<(&str, &str, bool, u64)> = v["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["name"].as_str().unwrap(),
                x["type"].as_str().unwrap(),
                x["durable"] == true,
                x["bindings"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(exchanges, [("console.direct", "direct", true, 1), ("console.fanout", "fanout", false, 2)], "{v}");

    let (s, v) = door.get("/v1/amqp/bindings").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let bindings: Vec<(&str, &str, &str, &str)> = v["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let t = |k: &str| b[k].as_str().unwrap();
            (t("source"), t("destination"), t("destination_type"), t("routing_key"))
        })
        .collect();
    let want: Vec<(&str, &str, &str, &str)> = AMQP_BINDINGS.iter().map(|(s, d, k)| (*s, *d, "queue", *k)).collect();
    assert_eq!(bindings, want, "{v}");
    let (_, v) = door.get("/v1/amqp/bindings?queue=console.audit").await;
    assert_eq!(v["total"], 1, "{v}");

    let (s, o) = door.get("/v1/amqp/overview").await;
    assert_eq!(s, StatusCode::OK, "{o}");
    let ready: u64 = AMQP_QUEUES.iter().map(|q| q.1).sum();
    let unacked: u64 = AMQP_QUEUES.iter().map(|q| q.2).sum();
    assert_eq!(
        [&o["queues"], &o["exchanges"], &o["bindings"], &o["messages_ready"], &o["messages_unacknowledged"]],
        [&json!(2), &json!(AMQP_PREDECLARED_EXCHANGES + 2), &json!(3), &json!(ready), &json!(unacked)],
        "{o}"
    );
    assert_eq!((o["connections"].as_u64(), o["consumers"].as_u64()), (Some(1), Some(1)), "{o}");
    // Paging: one queue per page, the second page holds the second name.
    let (_, v) = door.get("/v1/amqp/queues?q=console.&limit=1&offset=1").await;
    assert_eq!((v["total"].as_u64(), v["queues"][0]["name"].as_str()), (Some(2), Some("console.orders")), "{v}");
}

/// One request of the login table: what it is, method, path, headers, expected status.
type Case = (&'static str, &'static str, &'static str, Headers, u16);
type Headers = Vec<(&'static str, String)>;

/// The console's files and who may write: a table of requests and the statuses they get.
async fn login_rules_and_files(door: &Door) {
    let http = &door.http;
    // `/` redirects to the console; files have their types and revalidate with ETag.
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_redirect.get(door.url("/")).send().await.unwrap();
    assert_eq!((r.status(), r.headers()["location"].to_str().unwrap()), (StatusCode::FOUND, "/dashboard/"));
    for (path, content_type) in [
        ("/dashboard/", "text/html; charset=utf-8"),
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/pages/topics.js", "text/javascript; charset=utf-8"),
        ("/dashboard/style.css", "text/css; charset=utf-8"),
        ("/dashboard/favicon.svg", "image/svg+xml"),
    ] {
        let r = http.get(door.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["content-type"], content_type, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-cache", "{path}");
        let tag = r.headers()["etag"].clone();
        let again = http.get(door.url(path)).header("if-none-match", tag).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
    assert_eq!(http.get(door.url("/dashboard/nope.js")).send().await.unwrap().status(), StatusCode::NOT_FOUND);

    // The door binds every interface and a user is configured: login is on.
    let (s, v) = door.get("/v1/session").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["login_required"].as_bool(), v["user_configured"].as_bool(), v["can_write"].as_bool()),
        (Some(true), Some(true), Some(false)),
        "{v}"
    );

    use base64::Engine;
    let basic = |p: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{p}")));
    let origin = door.base.clone();
    let cases: Vec<Case> = vec![
        ("a browser write without a session", "PUT", "/v1/topics/rule-a", vec![("origin", origin.clone())], 401),
        (
            "a browser publish without a session",
            "POST",
            "/v1/topics/rule-a/messages",
            vec![("sec-fetch-site", "same-origin".into())],
            401,
        ),
        ("a browser read", "GET", "/v1/topics?limit=5", vec![("origin", origin.clone())], 200),
        ("a local tool's admin write (as before)", "PUT", "/v1/topics/rule-b", vec![], 200),
        ("a local tool's publish (as before)", "POST", "/v1/topics/rule-b/messages", vec![], 201),
        (
            "an admin write through a proxy",
            "PUT",
            "/v1/topics/rule-c",
            vec![("x-forwarded-for", "10.0.0.9".into())],
            401,
        ),
        (
            "a publish through a proxy (data plane)",
            "POST",
            "/v1/topics/rule-b/messages",
            vec![("x-forwarded-for", "10.0.0.9".into())],
            201,
        ),
        (
            "an admin write with Basic credentials",
            "PUT",
            "/v1/topics/rule-d",
            vec![("x-forwarded-for", "10.0.0.9".into()), ("authorization", basic(PASSWORD))],
            200,
        ),
        ("Basic with a wrong password", "PUT", "/v1/topics/rule-e", vec![("authorization", basic("nope"))], 401),
    ];
    for (what, method, path, headers, status) in cases {
        let mut req = http.request(method.parse().unwrap(), door.url(path));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        if method == "POST" {
            req = req.json(&json!({"body": "rule"}));
        }
        let (s, v) = answer(req.send().await.unwrap()).await;
        assert_eq!(s.as_u16(), status, "{what}: {v}");
        if status == 401 {
            assert_eq!(v["code"], "UNAUTHORIZED", "{what}");
        }
    }

    // Log in: a session cookie (HttpOnly, SameSite=Strict) that lets a browser write.
    let (s, _) = door.post("/v1/session", &json!({"user": USER, "password": "wrong"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let r = http.post(door.url("/v1/session")).json(&json!({"user": USER, "password": PASSWORD})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let write = |o: &str| {
        http.put(door.url("/v1/topics/rule-f"))
            .header("cookie", session.clone())
            .header("origin", o.to_owned())
            .json(&json!({}))
    };
    assert_eq!(write(&origin).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(write("http://evil.example").send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let (_, v) =
        answer(http.get(door.url("/v1/session")).header("cookie", session.clone()).send().await.unwrap()).await;
    assert_eq!((v["logged_in"].as_bool(), v["user"].as_str()), (Some(true), Some(USER)), "{v}");
    let r = http.delete(door.url("/v1/session")).header("cookie", session.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(write(&origin).send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "logged out");
}

/// Topics, messages with keys, a group with committed offsets, a dead letter.
async fn seed(door: &Door) {
    door.topic("orders", 4).await;
    for i in 0..12 {
        let (s, v) = door
            .post(
                "/v1/topics/orders/messages",
                &json!({"body": format!("{{\"order\":{{\"id\":{i},\"region\":\"eu\"}}}}"), "tag": "created",
                        "keys": [format!("order-{i}")], "properties": {"region": "eu"}}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, _) = door.put("/v1/groups/billing", &json!({})).await;
    assert_eq!(s, StatusCode::OK);
    for q in 0..4 {
        let (s, v) =
            door.put("/v1/groups/billing/offsets", &json!({"topic": "orders", "queue_id": q, "offset": 1})).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
    // A dead letter: a group allowed no redelivery gives its message back once.
    door.topic("jobs", 1).await;
    let (s, _) = door.put("/v1/groups/dlq_group", &json!({"retry_max_times": 0})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = door.post("/v1/topics/jobs/messages", &json!({"body": "poison", "keys": ["job-1"]})).await;
    assert_eq!(s, StatusCode::CREATED);
    let got = door.receive("dlq_group", "jobs", 1, 10_000, 2_000).await;
    assert_eq!(got.len(), 1);
    let (s, _) = door
        .post("/v1/groups/dlq_group/topics/jobs/nack", &json!({"receipt_handles": [got[0]["receipt_handle"]]}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, v) = door.get("/v1/topics/%25DLQ%25dlq_group/queues/0/messages?offset=0&wait_ms=1000").await;
        if s == StatusCode::OK && v["messages"].as_array().is_some_and(|m| !m.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no dead letter after 30 s: {s} {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Login follows the bind address and the configuration: a loopback-only door needs none; a
/// door on every interface without a configured user refuses browser writes and says how to
/// configure one (local tools still write, as before).
#[test]
fn login_follows_the_bind_address_and_the_configuration() {
    // (settings, login required, browser write status, user configured)
    let cases = [("bindAddress=127.0.0.1", false, 200, false), ("", true, 401, false)];
    for (extra, required, browser_write, configured) in cases {
        let door = Door::start(extra);
        block_on(async {
            let (s, v) = door.get("/v1/session").await;
            assert_eq!(s, StatusCode::OK);
            assert_eq!(v["login_required"].as_bool(), Some(required), "{extra}: {v}");
            assert_eq!(v["user_configured"].as_bool(), Some(configured), "{extra}: {v}");
            assert_eq!(v["can_write"].as_bool(), Some(!required), "{extra}: {v}");
            let r = door
                .http
                .put(door.url("/v1/topics/from-browser"))
                .header("origin", door.base.clone())
                .header("sec-fetch-site", "same-origin")
                .json(&json!({"read_queues": 2, "write_queues": 2}))
                .send()
                .await
                .unwrap();
            let (s, v) = answer(r).await;
            assert_eq!(s.as_u16(), browser_write, "{extra}: a browser write: {v}");
            if required {
                let detail = v["detail"].as_str().unwrap_or_default();
                assert!(detail.contains("dashboardUser") && detail.contains("dashboardPasswordHash"), "{detail}");
                assert!(v_hint(&door).await.contains("bindAddress=127.0.0.1"));
                let (s, v) = door.post("/v1/session", &json!({"user": "a", "password": "b"})).await;
                assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
            } else {
                let (s, v) = door.post("/v1/session", &json!({"user": "a", "password": "b"})).await;
                assert_eq!((s, v["code"].as_str()), (StatusCode::BAD_REQUEST, Some("BAD_REQUEST")), "{v}");
            }
            // A local tool writes either way (the REST door's behaviour before the console).
            door.topic("from-a-tool", 1).await;
            // The AMQP door is off in these brokers: its routes say so.
            for path in ["/v1/amqp/overview", "/v1/amqp/exchanges", "/v1/amqp/queues", "/v1/amqp/bindings"] {
                let (s, v) = door.get(path).await;
                assert_eq!((s, v["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")), "{path}: {v}");
                assert_eq!(v["detail"], "the AMQP door is off: amqpListenPort=0", "{path}");
            }
        });
    }
}

/// The configuration hint the console shows.
async fn v_hint(door: &Door) -> String {
    door.get("/v1/session").await.1["hint"].as_str().unwrap_or_default().to_owned()
}
