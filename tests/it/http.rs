//! The HTTP door of the real `mqbroker`, driven with a real HTTP client (reqwest) and, for a few
//! cases, the real `curl` binary: publish (raw, JSON, batch), pull with long polling and as a
//! stream, the simple consumer (leases, ack, nack to retry and DLQ, change invisible time, receipt
//! handles), queries, admin, plugins, health, bad input, and the served OpenAPI document walked
//! path by path. Pop on the native door is checked with the broker's own remoting client, and
//! interoperability with `rocketmq-client-rust` both ways.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Cluster, START_TIMEOUT, free_port};

/// A name server and a broker with its HTTP door on a free port.
pub struct Door {
    pub cluster: Cluster,
    pub base: String,
    pub http: reqwest::Client,
}

impl Door {
    /// Starts the cluster with `extra` broker settings and waits for the HTTP door.
    pub fn start(extra: &str) -> Door {
        let port = free_port();
        let mut cluster = Cluster::start(&format!("httpListenPort={port}\n{extra}"));
        cluster.broker.wait_for("HTTP door listening", START_TIMEOUT);
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        Door { cluster, base: format!("http://127.0.0.1:{port}"), http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        answer(self.http.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn send_json(&self, method: reqwest::Method, path: &str, body: &Value) -> (StatusCode, Value) {
        answer(self.http.request(method, self.url(path)).json(body).send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send_json(reqwest::Method::PUT, path, body).await
    }

    /// Creates `topic` with `queues` read and write queues.
    pub async fn topic(&self, topic: &str, queues: u32) {
        let (s, v) =
            self.put(&format!("/v1/topics/{topic}"), &json!({"read_queues": queues, "write_queues": queues})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    /// Receives for `group` on `topic`.
    pub async fn receive(&self, group: &str, topic: &str, max: usize, invisible_ms: u64, wait_ms: u64) -> Vec<Value> {
        let (s, v) = self
            .post(
                &format!("/v1/groups/{group}/topics/{topic}/receive"),
                &json!({"max": max, "invisible_ms": invisible_ms, "wait_ms": wait_ms}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["messages"].as_array().cloned().unwrap_or_default()
    }

    pub async fn ack(&self, group: &str, topic: &str, handle: &str) -> (StatusCode, Value) {
        self.post(&format!("/v1/groups/{group}/topics/{topic}/ack"), &json!({"receipt_handles": [handle]})).await
    }
}

/// The status and the JSON body (`null` when empty or not JSON).
pub async fn answer(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A tokio runtime for one test.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(f)
}

fn body_of(m: &Value) -> &str {
    m["body"].as_str().unwrap_or_default()
}

/// Runs the real `curl` with `args`; returns stdout, asserting it ran.
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(args).output().unwrap_or_else(|e| panic!("run curl: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn publish_pull_query_and_health() {
    let door = Door::start("autoCreateTopicEnable=false\nmaxMessageSize=65536");
    block_on(async {
        let (s, v) = door.get("/livez").await;
        assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
        let (s, v) = door.get("/readyz").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["checks"]["registered_with_name_server"], json!(true));
        door.topic("orders", 2).await;

        // Raw publish with the real curl: tag, keys and a property in headers.
        let file = door.cluster.dir.path().join("order.json");
        std::fs::write(&file, b"{\"id\":42}").unwrap();
        let out = curl(&[
            "-sS",
            "-X",
            "POST",
            &door.url("/v1/topics/orders/messages"),
            "-H",
            "RMQ-Tag: created",
            "-H",
            "RMQ-Keys: order-42, customer-7",
            "-H",
            "RMQ-Property-region: eu",
            "-H",
            "RMQ-Queue-Id: 0",
            "-w",
            "\n%{http_code}",
            "--data-binary",
            &format!("@{}", file.display()),
        ]);
        let (json_text, code) = out.rsplit_once('\n').unwrap();
        assert_eq!(code, "201", "{out}");
        let raw: Value = serde_json::from_str(json_text).unwrap();
        assert_eq!(raw["status"], "SEND_OK");
        assert_eq!(raw["durability"], "memory");
        assert_eq!(raw["queue_id"], 0);
        let raw_id = raw["message_id"].as_str().unwrap().to_owned();

        // JSON: one message with a base64 body, then a batch.
        let (s, one) = door
            .post(
                "/v1/topics/orders/messages",
                &json!({"body": "AAEC/w==", "body_encoding": "base64", "tag": "bin", "keys": ["bin-1"], "queue_id": 1}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{one}");
        let batch: Vec<Value> =
            (0..5).map(|i| json!({"body": format!("batch {i}"), "keys": [format!("b-{i}")]})).collect();
        let (s, v) = door.post("/v1/topics/orders/messages", &json!({ "messages": batch })).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), 5);
        let offsets: Vec<u64> = results.iter().map(|r| r["queue_offset"].as_u64().unwrap()).collect();
        assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "one batch, consecutive offsets: {offsets:?}");
        assert!(results.iter().all(|r| r["queue_id"] == results[0]["queue_id"]), "{v}");

        // Pull queue 0 from the start: the raw message, intact.
        let (s, v) = door.get("/v1/topics/orders/queues/0/messages?offset=0").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let first = &v["messages"][0];
        assert_eq!(body_of(first), "{\"id\":42}");
        assert_eq!(first["tag"], "created");
        assert_eq!(first["keys"], json!(["order-42", "customer-7"]));
        assert_eq!(first["properties"]["region"], "eu");
        assert_eq!(first["message_id"], raw_id.as_str());
        // The binary body comes back as base64.
        let (_, v) = door.get("/v1/topics/orders/queues/1/messages?offset=0&max=1").await;
        assert_eq!(
            (v["messages"][0]["body"].as_str(), v["messages"][0]["body_encoding"].as_str()),
            (Some("AAEC/w=="), Some("base64"))
        );

        // Long polling: a parked pull returns as soon as a message arrives.
        let (_, q) = door.get("/v1/topics/orders/queues").await;
        let end = q["queues"][0]["max_offset"].as_u64().unwrap();
        let parked = {
            let http = door.http.clone();
            let url = door.url(&format!("/v1/topics/orders/queues/0/messages?offset={end}&wait_ms=20000"));
            tokio::spawn(async move {
                let started = Instant::now();
                let (s, v) = answer(http.get(url).send().await.unwrap()).await;
                (s, v, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(700)).await;
        let (s, _) = door.post("/v1/topics/orders/messages", &json!({"body": "wake up", "queue_id": 0})).await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, v, waited) = parked.await.unwrap();
        assert_eq!(s, StatusCode::OK);
        assert_eq!(body_of(&v["messages"][0]), "wake up", "{v}");
        assert!(waited >= Duration::from_millis(500) && waited < Duration::from_secs(10), "waited {waited:?}");
        // An empty long poll is 200 with no messages after its wait.
        let started = Instant::now();
        let (s, v) = door.get(&format!("/v1/topics/orders/queues/0/messages?offset={}&wait_ms=300", end + 1)).await;
        assert_eq!((s, v["messages"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));
        assert!(started.elapsed() >= Duration::from_millis(250));

        // The stream variant with the real curl -N: the backlog of queue 0 as SSE events.
        let out = curl(&[
            "-sS",
            "-N",
            "--max-time",
            "2",
            "-H",
            "Accept: text/event-stream",
            &door.url("/v1/topics/orders/queues/0/messages?offset=0"),
        ]);
        assert!(out.contains("event: message\nid: 0\n") && out.contains("wake up"), "{out}");

        // Queries: by message id, by offset message id, by key.
        let (s, v) = door.get(&format!("/v1/topics/orders/messages/{raw_id}")).await;
        assert_eq!((s, body_of(&v)), (StatusCode::OK, "{\"id\":42}"), "{v}");
        let offset_id = raw["offset_message_id"].as_str().unwrap();
        let (s, v) = door.get(&format!("/v1/topics/orders/messages/{offset_id}")).await;
        assert_eq!((s, v["message_id"].as_str()), (StatusCode::OK, Some(raw_id.as_str())));
        let (s, v) = door.get("/v1/topics/orders/messages?key=customer-7").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["messages"].as_array().map(Vec::len), Some(1), "{v}");
        let (s, _) = door.get("/v1/topics/orders/messages/7F00000100002A9F0000000000FFFFFF").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let _ = one;

        // Admin views.
        let (s, v) = door.get("/v1/topics").await;
        assert!(s == StatusCode::OK && v["topics"].as_array().unwrap().iter().any(|t| t["name"] == "orders"));
        let (s, v) = door.get("/v1/cluster").await;
        assert_eq!((s, v["brokers"][0]["broker_name"].as_str()), (StatusCode::OK, Some("broker-test")));
    });
}

#[test]
fn bad_input_gets_the_right_status_and_the_broker_keeps_serving() {
    let door = Door::start("autoCreateTopicEnable=false\nmaxMessageSize=1024");
    block_on(async {
        door.topic("bad", 1).await;
        let addr = door.base.trim_start_matches("http://").to_owned();
        // A slow client that never finishes its body: answered 408 after the body timeout, while
        // other requests are served meanwhile.
        let slow = {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.write_all(
                    b"POST /v1/topics/bad/messages HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly ten b",
                )
                .unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                String::from_utf8_lossy(&buf[..n]).into_owned()
            })
        };
        let json_post = |body: &'static str| {
            door.http
                .post(door.url("/v1/topics/bad/messages"))
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        let cases: Vec<(&str, StatusCode, &str, reqwest::Response)> = vec![
            ("malformed JSON", StatusCode::BAD_REQUEST, "BAD_REQUEST", json_post("{\"body\": ").await.unwrap()),
            (
                "bad base64",
                StatusCode::BAD_REQUEST,
                "ILLEGAL_MESSAGE",
                json_post("{\"body\": \"***\", \"body_encoding\": \"base64\"}").await.unwrap(),
            ),
            (
                "unknown topic",
                StatusCode::NOT_FOUND,
                "TOPIC_NOT_FOUND",
                door.http.post(door.url("/v1/topics/nosuch/messages")).body("x").send().await.unwrap(),
            ),
            (
                "message over maxMessageSize",
                StatusCode::PAYLOAD_TOO_LARGE,
                "MESSAGE_BODY_TOO_LARGE",
                door.http.post(door.url("/v1/topics/bad/messages")).body(vec![b'x'; 2048]).send().await.unwrap(),
            ),
            (
                "body over the request limit",
                StatusCode::PAYLOAD_TOO_LARGE,
                "MESSAGE_BODY_TOO_LARGE",
                door.http.post(door.url("/v1/topics/bad/messages")).body(vec![b'x'; 200_000]).send().await.unwrap(),
            ),
            (
                "bad queue id header",
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                door.http
                    .post(door.url("/v1/topics/bad/messages"))
                    .header("rmq-queue-id", "x")
                    .body("x")
                    .send()
                    .await
                    .unwrap(),
            ),
            (
                "unknown route",
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                door.http.get(door.url("/v2/whatever")).send().await.unwrap(),
            ),
            (
                "method not allowed",
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                door.http.patch(door.url("/v1/topics/bad")).send().await.unwrap(),
            ),
        ];
        for (what, status, code, r) in cases {
            assert_eq!(r.status(), status, "{what}");
            let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            assert_eq!(ct, "application/problem+json", "{what}");
            let (_, v) = answer(r).await;
            assert_eq!(v["code"], code, "{what}: {v}");
            assert_eq!(v["status"], status.as_u16(), "{what}");
        }
        // A huge header: refused by the HTTP layer (431), the connection closed.
        let r = door.http.get(door.url("/livez")).header("x-huge", "h".repeat(100_000)).send().await;
        assert!(r.map(|r| r.status() == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).unwrap_or(true));
        // Others are served while the slow client waits.
        let (s, _) = door.get("/livez").await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = door.post("/v1/topics/bad/messages", &json!({"body": "fine"})).await;
        assert_eq!(s, StatusCode::CREATED);
        let answer = slow.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "the slow client gets 408: {answer:?}");
        let (s, _) = door.get("/readyz").await;
        assert_eq!(s, StatusCode::OK);
    });
}

#[test]
fn simple_consumer_leases_acks_nacks_and_dead_letters() {
    let mut door = Door::start("autoCreateTopicEnable=false");
    let (g, t) = ("billing", "jobs");
    let (first_handle, held_id) = block_on(async {
        door.topic(t, 1).await;
        let (s, v) = door.put(&format!("/v1/groups/{g}"), &json!({"retry_max_times": 1})).await;
        assert_eq!((s, v["retry_max_times"].as_i64()), (StatusCode::OK, Some(1)), "{v}");
        for body in ["one", "two", "three"] {
            let (s, _) = door.post(&format!("/v1/topics/{t}/messages"), &json!({"body": body})).await;
            assert_eq!(s, StatusCode::CREATED);
        }
        let got = door.receive(g, t, 3, 1000, 0).await;
        let bodies: Vec<&str> = got.iter().map(body_of).collect();
        assert_eq!(bodies, ["one", "two", "three"]);
        assert!(got.iter().all(|m| m["delivery_attempt"] == 1));
        // Nothing more while the leases run.
        assert!(door.receive(g, t, 3, 1000, 0).await.is_empty());
        let handle = |i: usize| got[i]["receipt_handle"].as_str().unwrap().to_owned();
        // Ack "one" (twice: harmless); leave "two"; nack "three".
        assert_eq!(door.ack(g, t, &handle(0)).await.0, StatusCode::NO_CONTENT);
        assert_eq!(door.ack(g, t, &handle(0)).await.0, StatusCode::NO_CONTENT);
        let (s, v) =
            door.post(&format!("/v1/groups/{g}/topics/{t}/nack"), &json!({"receipt_handles": [handle(2)]})).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        // A forged or altered handle is refused with 400.
        let h1 = handle(1);
        let (payload, tag) = h1.split_once('.').unwrap();
        let flipped =
            format!("{}{}.{tag}", &payload[..payload.len() - 1], if payload.ends_with('A') { "B" } else { "A" });
        for bad in [flipped.as_str(), "not-a-handle", &format!("{payload}.AAAAAAAAAAAAAAAAAAAAAA")] {
            let (s, v) = door.ack(g, t, bad).await;
            assert_eq!((s, v["code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_RECEIPT_HANDLE")), "{bad}");
        }
        // "three" comes back at once (nack), "two" after its invisible time; "one" never.
        let mut again = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while again.len() < 2 && Instant::now() < deadline {
            again.extend(door.receive(g, t, 3, 10_000, 3000).await);
        }
        let mut bodies: Vec<&str> = again.iter().map(body_of).collect();
        bodies.sort_unstable();
        assert_eq!(bodies, ["three", "two"], "{again:?}");
        assert!(again.iter().all(|m| m["delivery_attempt"] == 2 && m["topic"] == t), "{again:?}");
        // Both are leased again from the group's pop retry topic: the lag view counts them in
        // flight there, and nothing on the topic's own queue.
        let (s, v) = door.get(&format!("/v1/groups/{g}/lag?topic={t}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let inflight = |own: bool| -> u64 {
            v["queues"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|q| (q["topic"] == t) == own)
                .map(|q| q["inflight"].as_u64().unwrap())
                .sum()
        };
        assert_eq!((inflight(true), inflight(false)), (0, 2), "{v}");
        // The first lease of "two" expired: its handle is reported as such.
        let (s, v) = door.ack(g, t, &h1).await;
        assert_eq!((s, v["code"].as_str()), (StatusCode::GONE, Some("INVALID_RECEIPT_HANDLE")), "{v}");
        // Change the invisible time of "two": the new handle works, the old one is gone.
        let two = again.iter().find(|m| body_of(m) == "two").unwrap();
        let old = two["receipt_handle"].as_str().unwrap();
        let (s, v) = door
            .post(
                &format!("/v1/groups/{g}/topics/{t}/change-invisible-duration"),
                &json!({"receipt_handle": old, "invisible_ms": 60000}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let new = v["receipt_handle"].as_str().unwrap().to_owned();
        assert_ne!(new, old);
        assert_eq!(door.ack(g, t, old).await.0, StatusCode::GONE);
        // "three": nacked again it exceeds retry_max_times (1) and goes to the DLQ.
        let three = again.iter().find(|m| body_of(m) == "three").unwrap();
        let (s, _) = door
            .post(&format!("/v1/groups/{g}/topics/{t}/nack"), &json!({"receipt_handles": [three["receipt_handle"]]}))
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let dlq = format!("%DLQ%{g}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut dead = Vec::new();
        while dead.is_empty() && Instant::now() < deadline {
            let (s, v) = door
                .get(&format!("/v1/topics/{}/queues/0/messages?offset=0&wait_ms=1000", dlq.replace('%', "%25")))
                .await;
            if s == StatusCode::OK {
                dead = v["messages"].as_array().cloned().unwrap_or_default();
            } else {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        assert_eq!(dead.iter().map(body_of).collect::<Vec<_>>(), ["three"], "{dead:?}");
        assert!(door.receive(g, t, 3, 1000, 1500).await.is_empty(), "nothing left to deliver");
        (new, two["message_id"].as_str().unwrap().to_owned())
    });
    // The lease of "two" (60 s) survives a restart: not delivered again, and its handle still
    // acknowledges it.
    door.cluster.restart_broker();
    door.cluster.broker.wait_for("HTTP door listening", START_TIMEOUT);
    block_on(async {
        assert!(door.receive(g, t, 3, 1000, 500).await.is_empty(), "the lease of {held_id} survived the restart");
        let (s, v) = door.ack(g, t, &first_handle).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        let (s, v) = door.get(&format!("/v1/groups/{g}/lag?topic={t}")).await;
        assert_eq!((s, v["total_lag"].as_u64()), (StatusCode::OK, Some(0)), "{v}");
    });
}

#[test]
fn pop_ack_and_change_invisible_time_on_the_native_door() {
    use broker::protocol::request;
    use broker::remoting::{Client, RemotingCommand};
    let door = Door::start("");
    let addr = door.cluster.broker_addr.clone();
    block_on(async {
        door.topic("native", 1).await;
        for body in ["n1", "n2"] {
            door.post("/v1/topics/native/messages", &json!({"body": body})).await;
        }
        let client = Client::default();
        let timeout = Duration::from_secs(10);
        let pop = RemotingCommand::request(request::POP_MESSAGE)
            .with_field("consumerGroup", "native_pop")
            .with_field("topic", "native")
            .with_field("queueId", -1)
            .with_field("maxMsgNums", 2)
            .with_field("invisibleTime", 2000)
            .with_field("pollTime", 1000)
            .with_field("bornTime", 0)
            .with_field("initMode", 0);
        let r = client.invoke(&addr, pop.clone(), timeout).await.unwrap();
        assert_eq!(r.code, 0, "{:?}", r.remark);
        let pop_time: i64 = r.field("popTime").unwrap().parse().unwrap();
        assert_eq!(r.field("msgOffsetInfo"), Some("0 0 0,1"));
        assert_eq!(r.field("startOffsetInfo"), Some("0 0 0"));
        assert!(r.body.windows(2).any(|w| w == b"n1") && r.body.windows(2).any(|w| w == b"n2"));
        // extraInfo as a RocketMQ 5 client builds it.
        let extra = |offset: u64, pop_time: i64| format!("0 {pop_time} 2000 0 0 broker-test 0 {offset}");
        let ack = RemotingCommand::request(request::ACK_MESSAGE)
            .with_field("consumerGroup", "native_pop")
            .with_field("topic", "native")
            .with_field("queueId", 0)
            .with_field("extraInfo", extra(0, pop_time))
            .with_field("offset", 0);
        assert_eq!(client.invoke(&addr, ack, timeout).await.unwrap().code, 0);
        let change = RemotingCommand::request(request::CHANGE_MESSAGE_INVISIBLETIME)
            .with_field("consumerGroup", "native_pop")
            .with_field("topic", "native")
            .with_field("queueId", 0)
            .with_field("extraInfo", extra(1, pop_time))
            .with_field("offset", 1)
            .with_field("invisibleTime", 1000);
        let r = client.invoke(&addr, change.clone(), timeout).await.unwrap();
        assert_eq!(r.code, 0, "{:?}", r.remark);
        let new_pop_time: i64 = r.field("popTime").unwrap().parse().unwrap();
        assert!(new_pop_time > pop_time);
        // The old lease is gone.
        assert_ne!(client.invoke(&addr, change, timeout).await.unwrap().code, 0);
        // n2 comes back from the pop retry topic with reconsumeTimes 1; n1 does not.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = client.invoke(&addr, pop.clone().with_field("pollTime", 2000), timeout).await.unwrap();
            if r.code == 0 {
                assert!(r.body.windows(2).any(|w| w == b"n2") && !r.body.windows(2).any(|w| w == b"n1"));
                assert!(
                    r.field("msgOffsetInfo").unwrap().starts_with("1 0 "),
                    "from the retry topic: {:?}",
                    r.field("msgOffsetInfo")
                );
                break;
            }
            assert!(Instant::now() < deadline, "n2 was not redelivered");
        }
    });
}

#[test]
fn openapi_document_validates_and_every_path_answers_as_documented() {
    let door = Door::start("");
    block_on(async {
        let (s, doc) = door.get("/v1/openapi.json").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(doc["openapi"], "3.1.0");
        validate_openapi(&door, &doc);
        door.topic("walk", 1).await;
        let (_, published) = door.post("/v1/topics/walk/messages", &json!({"body": "w", "keys": ["k1"]})).await;
        let id = published["message_id"].as_str().unwrap().to_owned();
        let got = door.receive("walkers", "walk", 1, 30000, 0).await;
        let handle = got[0]["receipt_handle"].as_str().unwrap().to_owned();
        door.put("/v1/groups/walkers", &json!({})).await;
        let values: BTreeMap<&str, String> = [
            ("topic", "walk".to_owned()),
            ("group", "walkers".to_owned()),
            ("queueId", "0".to_owned()),
            ("messageId", id),
            ("receiptHandle", handle.clone()),
            ("transactionId", "broker-test:0:0:HTTP_PRODUCER".to_owned()),
            ("plugin", "no-such-plugin".to_owned()),
        ]
        .into_iter()
        .collect();
        let bodies: BTreeMap<&str, Value> = [
            ("putTopic", json!({"read_queues": 1, "write_queues": 1})),
            ("publish", json!({"body": "walked"})),
            ("putGroup", json!({"retry_max_times": 3})),
            ("commitOffset", json!({"topic": "walk", "queue_id": 0, "offset": 0})),
            ("receive", json!({"max": 1, "invisible_ms": 1000})),
            ("ack", json!({"receipt_handles": [handle]})),
            ("nack", json!({"receipt_handles": [handle]})),
            ("changeInvisibleDuration", json!({"receipt_handle": handle, "invisible_ms": 5000})),
            ("bindPlugin", json!({"role": "filter", "group": "walkers", "topic": "walk"})),
            ("unbindPlugin", json!({"role": "filter", "group": "walkers", "topic": "walk"})),
        ]
        .into_iter()
        .collect();
        let mut checked = 0;
        // Deletes last, so the other operations find what they name.
        let mut ops: Vec<(String, String, Value)> = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                ops.push((method.clone(), path.clone(), op.clone()));
            }
        }
        ops.sort_by_key(|(m, _, _)| m == "delete");
        for (method, path, op) in ops {
            let id = op["operationId"].as_str().unwrap();
            let mut url = path.clone();
            for (name, value) in &values {
                url = url.replace(&format!("{{{name}}}"), value);
            }
            assert!(!url.contains('{'), "no sample value for {path}");
            if id == "queryByKey" {
                url.push_str("?key=k1");
            }
            let mut req = door.http.request(method.to_uppercase().parse().unwrap(), door.url(&url));
            if let Some(b) = bodies.get(id) {
                req = req.json(b);
            } else if id == "deployPlugin" {
                req = req.header("content-type", "application/wasm").body(b"\0asm not really".to_vec());
            }
            if id == "receiveStream" {
                req = req.timeout(Duration::from_secs(2));
            }
            let r = req.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = r.status().as_u16().to_string();
            assert!(
                op["responses"].get(&status).is_some(),
                "{method} {path} answered {status}, not among {:?}",
                op["responses"].as_object().unwrap().keys().collect::<Vec<_>>()
            );
            checked += 1;
        }
        assert!(checked >= 30, "walked {checked} operations");
    });
}

/// Validates the document with `openapi-spec-validator` (which must be installed: `.ci/run`
/// installs it), and checks the structure this crate relies on.
fn validate_openapi(door: &Door, doc: &Value) {
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'));
        for (method, op) in item.as_object().unwrap() {
            assert!(["get", "put", "post", "delete"].contains(&method.as_str()), "{method}");
            assert!(op["operationId"].is_string() && op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let in_path: Vec<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
            assert_eq!(params, in_path, "{method} {path}");
        }
    }
    let file = door.cluster.dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let run = Command::new("python3").args(["-m", "openapi_spec_validator"]).arg(&file).output();
    match run {
        Ok(out) if out.status.success() => {}
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("No module named") => {
            panic!(
                "openapi-spec-validator is missing: `python3 -m pip install openapi-spec-validator`, as .ci/run does"
            )
        }
        Ok(out) => panic!(
            "the OpenAPI document does not validate:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("run python3: {e}"),
    }
}

/// Interoperability (acceptance 2): a message published over HTTP reaches the unmodified
/// `rocketmq-client-rust` push consumer with tag, keys and properties intact, and one sent by that
/// client's producer is received over HTTP with the same fields.
#[test]
fn http_and_the_rocketmq_client_interoperate_both_ways() {
    use crate::native::{
        ARRIVAL, Inbox, Listener, Recorder, Subscription, eventually, message, serial, start_producer,
        start_push_consumer, with_client,
    };
    let _serial = serial();
    let door = Door::start("");
    let namesrv = door.cluster.namesrv_addr.clone();
    with_client(async |rt| {
        door.topic("from_http", 2).await;
        door.topic("from_client", 2).await;
        // HTTP -> push consumer (subscribed to one tag: the other message must not arrive).
        let inbox = Inbox::default();
        let mut consumer = start_push_consumer(
            &rt,
            &namesrv,
            "CG_http_interop",
            "from_http",
            Subscription::Tag("wanted"),
            Listener::Concurrently(Recorder::new(&inbox)),
            |b| b,
        )
        .await;
        let r = door
            .http
            .post(door.url("/v1/topics/from_http/messages"))
            .header("rmq-tag", "wanted")
            .header("rmq-keys", "k-1,k-2")
            .header("rmq-property-region", "eu")
            .body("over http")
            .send()
            .await
            .unwrap();
        let (s, published) = answer(r).await;
        assert_eq!(s, StatusCode::CREATED, "{published}");
        let (s, _) = door.post("/v1/topics/from_http/messages", &json!({"body": "unwanted", "tag": "other"})).await;
        assert_eq!(s, StatusCode::CREATED);
        assert!(eventually(ARRIVAL, || inbox.len() >= 1).await, "the push consumer got nothing");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let got = inbox.snapshot();
        assert_eq!(got.len(), 1, "only the tagged message: {got:?}");
        let m = &got[0];
        assert_eq!(m.body, b"over http");
        assert_eq!(m.tags.as_deref(), Some("wanted"));
        assert_eq!(m.keys.as_deref(), Some("k-1 k-2"));
        assert_eq!(m.prop("region"), Some("eu"));
        assert_eq!(m.id, published["message_id"].as_str().unwrap());
        consumer.shutdown().await;

        // Producer -> HTTP simple consumer.
        let mut producer = start_producer(&rt, &namesrv, "PG_http_interop").await;
        let sent = producer
            .send(message("from_client", Some("native"), &["nk-1", "nk-2"], b"over remoting", &[("color", "blue")]))
            .await
            .expect("send");
        let sent_id = sent.and_then(|r| r.msg_id.map(|id| id.to_string())).unwrap_or_default();
        let got = door.receive("http_reader", "from_client", 4, 30_000, 5_000).await;
        assert_eq!(got.len(), 1, "{got:?}");
        let m = &got[0];
        assert_eq!(body_of(m), "over remoting");
        assert_eq!(m["tag"], "native");
        assert_eq!(m["keys"], json!(["nk-1", "nk-2"]));
        assert_eq!(m["properties"]["color"], "blue");
        assert_eq!(m["message_id"].as_str(), Some(sent_id.as_str()), "{m}");
        assert_eq!(
            door.ack("http_reader", "from_client", m["receipt_handle"].as_str().unwrap()).await.0,
            StatusCode::NO_CONTENT
        );
        producer.shutdown().await;
    });
}

/// Plugins over HTTP: a component uploaded with `PUT /v1/plugins/{name}` and bound with `POST
/// .../bindings` runs in the broker (a native consumer of the bound group gets only what the
/// filter passes, and so does an HTTP receive of a bound group), its counters show in `/metrics`,
/// and a bound plugin cannot be removed.
#[test]
fn plugins_are_uploaded_bound_and_removed_over_http() {
    use crate::native::{
        ARRIVAL, Inbox, Listener, QUIET, Recorder, Subscription, eventually, serial, start_push_consumer, with_client,
    };
    let _serial = serial();
    let wasm =
        std::fs::read(broker::plugin::examples::build().unwrap_or_else(|e| panic!("{e}")).join("json_filter.wasm"))
            .unwrap();
    let door = Door::start("");
    let namesrv = door.cluster.namesrv_addr.clone();
    with_client(async |rt| {
        door.topic("plugged", 1).await;
        let r = door
            .http
            .put(door.url("/v1/plugins/eu_only?role=filter&param.field=order.region&param.equals=eu"))
            .header("content-type", "application/wasm")
            .body(wasm.clone())
            .send()
            .await
            .unwrap();
        let (s, v) = answer(r).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["name"], "eu_only");
        let (s, v) = door
            .post("/v1/plugins/eu_only/bindings", &json!({"role": "filter", "group": "CG_eu", "topic": "plugged"}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = door.get("/v1/plugins").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["plugins"][0]["name"], "eu_only", "{v}");
        assert_eq!(v["bindings"][0]["plugin"], "eu_only", "{v}");
        // A bound plugin is not removed.
        let r = door.http.delete(door.url("/v1/plugins/eu_only")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CONFLICT);

        for (i, region) in ["eu", "us", "eu", "apac"].iter().enumerate() {
            let body = json!({"order": {"region": region, "n": i}}).to_string();
            let (s, _) = door
                .post("/v1/topics/plugged/messages", &json!({"body": body, "properties": {"seq": i.to_string()}}))
                .await;
            assert_eq!(s, StatusCode::CREATED);
        }
        let inbox = Inbox::default();
        let mut consumer = start_push_consumer(
            &rt,
            &namesrv,
            "CG_eu",
            "plugged",
            Subscription::Tag("*"),
            Listener::Concurrently(Recorder::new(&inbox)),
            |b| b,
        )
        .await;
        assert!(eventually(ARRIVAL, || inbox.len() >= 2).await, "the filtered consumer got {}", inbox.len());
        tokio::time::sleep(QUIET).await;
        let mut seqs: Vec<String> = inbox.snapshot().iter().filter_map(|r| r.prop("seq").map(str::to_owned)).collect();
        seqs.sort();
        assert_eq!(seqs, ["0", "2"], "only the eu orders pass");
        consumer.shutdown().await;

        let text = door.http.get(door.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let calls = text
            .lines()
            .find(|l| l.starts_with("rocketmq_plugin_invocations_total{") && l.contains("plugin=\"eu_only\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok());
        assert!(calls.is_some_and(|c| c >= 1.0), "plugin calls in /metrics: {calls:?}");
        let timed = text
            .lines()
            .find(|l| {
                l.starts_with("rocketmq_plugin_invocation_duration_seconds_count{") && l.contains("plugin=\"eu_only\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok());
        assert!(timed.is_some_and(|t| t >= 1.0), "plugin call latency histogram in /metrics: {timed:?}");

        // The HTTP simple consumer of a bound group is filtered the same way.
        let spec = json!({"role": "filter", "group": "CG_eu_http", "topic": "plugged"});
        let (s, v) = door.post("/v1/plugins/eu_only/bindings", &spec).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let got = door.receive("CG_eu_http", "plugged", 8, 30_000, 2_000).await;
        let seqs: Vec<&str> = got.iter().filter_map(|m| m["properties"]["seq"].as_str()).collect();
        assert_eq!(seqs, ["0", "2"], "{got:?}");

        for group in ["CG_eu", "CG_eu_http"] {
            let r = door
                .http
                .delete(door.url("/v1/plugins/eu_only/bindings"))
                .json(&json!({"role": "filter", "group": group, "topic": "plugged"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
        }
        let r = door.http.delete(door.url("/v1/plugins/eu_only")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let (s, v) = door.get("/v1/plugins/eu_only").await;
        assert_eq!((s, v["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")));
    });
}

/// A transactional half message over HTTP is invisible until committed; a rolled-back one never
/// shows.
#[test]
fn transactional_publish_commits_and_rolls_back_over_http() {
    let door = Door::start("");
    block_on(async {
        door.topic("tx", 1).await;
        let mut ids = Vec::new();
        for body in ["kept", "dropped"] {
            let (s, v) = door.post("/v1/topics/tx/messages", &json!({"body": body, "transaction": true})).await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            ids.push(v["transaction_id"].as_str().unwrap().to_owned());
        }
        let (_, v) = door.get("/v1/topics/tx/queues/0/messages?offset=0").await;
        assert_eq!(v["messages"].as_array().map(Vec::len), Some(0), "half messages are invisible: {v}");
        let r = door.http.post(door.url(&format!("/v1/transactions/{}/commit", ids[0]))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let r = door.http.post(door.url(&format!("/v1/transactions/{}/rollback", ids[1]))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let (_, v) = door.get("/v1/topics/tx/queues/0/messages?offset=0&wait_ms=5000").await;
        let bodies: Vec<&str> = v["messages"].as_array().unwrap().iter().map(body_of).collect();
        assert_eq!(bodies, ["kept"], "{v}");
        let r = door.http.post(door.url("/v1/transactions/garbage/commit")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    });
}
