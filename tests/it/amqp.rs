//! The AMQP 0-9-1 door of the real `mqbroker`, driven with the unmodified `lapin` client:
//! routing through each exchange type (a table of cases), publisher confirms, mandatory returns,
//! `basic.get`, prefetch, ack/nack/reject with and without requeue, consumer cancel (by the
//! client and by queue deletion), exclusive and auto-delete queues, durability across a clean
//! restart and a `kill -9`, bad input on raw sockets answered with RabbitMQ's reply codes, and
//! interoperability with the HTTP door through a queue over a RocketMQ topic. The submodules
//! cover queue arguments and transactions (`arguments`), `channel.flow` and `redelivered` after a
//! restart (`delivery`), virtual hosts and users (`vhosts`), `connection.blocked` and the
//! metric families (`observed`), and the metadata a slave copies from its master (`replication`).

mod arguments;
mod delivery;
mod observed;
mod replication;
mod vhosts;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use amq_protocol::frame::{AMQPFrame, WriteContext, gen_frame, parse_frame};
use amq_protocol::protocol::{AMQPClass, channel as amqp_channel, connection as amqp_connection};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions, ExchangeBindOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ErrorKind, ExchangeKind};

use crate::support::{Cluster, START_TIMEOUT, free_port};

/// How long a test waits for one delivery (a shared 2-core machine, debug builds).
const DELIVERY_WAIT: Duration = Duration::from_secs(30);
/// How long a test waits before asserting that nothing more was delivered.
const QUIET: Duration = Duration::from_millis(1500);

/// A name server and a broker with the AMQP door on a free port.
struct Door {
    cluster: Cluster,
    port: u16,
}

impl Door {
    fn start(extra: &str) -> Door {
        let port = free_port();
        let mut cluster = Cluster::start(&format!("amqpListenPort={port}\n{extra}"));
        cluster.broker.wait_for("AMQP door listening", START_TIMEOUT);
        Door { cluster, port }
    }

    fn uri(&self, user: &str, pass: &str) -> String {
        format!("amqp://{user}:{pass}@127.0.0.1:{}/%2f", self.port)
    }

    async fn connect(&self) -> Connection {
        Connection::connect(&self.uri("guest", "guest"), ConnectionProperties::default()).await.expect("connect")
    }

    fn restart(&mut self) {
        self.cluster.restart_broker();
        self.cluster.broker.wait_for("AMQP door listening", START_TIMEOUT);
    }
}

fn declare_opts() -> QueueDeclareOptions {
    QueueDeclareOptions::default()
}

async fn queue(ch: &Channel, name: &str, opts: QueueDeclareOptions) -> lapin::Queue {
    ch.queue_declare(name.into(), opts, FieldTable::default()).await.expect("queue.declare")
}

/// A fanout exchange `dlx` with a queue `dead` bound to it: where the dead-lettering tests look.
async fn dead_letter_target(ch: &Channel) {
    ch.exchange_declare("dlx".into(), ExchangeKind::Fanout, ExchangeDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    queue(ch, "dead", declare_opts()).await;
    ch.queue_bind("dead".into(), "dlx".into(), "".into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .unwrap();
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    ch.basic_publish(exchange.into(), key.into(), BasicPublishOptions::default(), body, props)
        .await
        .expect("basic.publish")
        .await
        .expect("confirm");
}

/// Everything `basic.get` returns from `queue` now, acknowledged.
async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.expect("basic.get") {
        out.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    out.sort();
    out
}

/// The reply code of a lapin error that carries one.
fn code(e: &lapin::Error) -> Option<u16> {
    match e.kind() {
        ErrorKind::ProtocolError(p) => Some(p.get_id()),
        _ => None,
    }
}

fn headers(pairs: &[(&str, &str)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), AMQPValue::LongString(LongString::from(*v)));
    }
    t
}

/// Header names and values.
type Pairs = &'static [(&'static str, &'static str)];

/// One routing case: an exchange of `kind`, bindings `(queue, key, binding headers)`, publishes
/// `(routing key, message headers, body)`, and what each queue must hold afterwards.
struct RouteCase {
    kind: ExchangeKind,
    bindings: &'static [(&'static str, &'static str, Pairs)],
    publishes: &'static [(&'static str, Pairs, &'static str)],
    expect: &'static [(&'static str, &'static [&'static str])],
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_exchange_type_routes_as_rabbitmq_does() {
    let door = Door::start("");
    let conn = door.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let cases = [
        RouteCase {
            kind: ExchangeKind::Direct,
            bindings: &[("q1", "red", &[]), ("q2", "green", &[]), ("q3", "red", &[])],
            publishes: &[("red", &[], "r"), ("green", &[], "g"), ("blue", &[], "b")],
            expect: &[("q1", &["r"]), ("q2", &["g"]), ("q3", &["r"])],
        },
        RouteCase {
            kind: ExchangeKind::Fanout,
            bindings: &[("q1", "", &[]), ("q2", "ignored", &[])],
            publishes: &[("any", &[], "a"), ("", &[], "b")],
            expect: &[("q1", &["a", "b"]), ("q2", &["a", "b"])],
        },
        RouteCase {
            kind: ExchangeKind::Topic,
            bindings: &[("q1", "*.orange.*", &[]), ("q2", "*.*.rabbit", &[]), ("q2", "lazy.#", &[]), ("q3", "#", &[])],
            publishes: &[
                ("quick.orange.rabbit", &[], "1"),
                ("lazy.orange.elephant", &[], "2"),
                ("quick.orange.fox", &[], "3"),
                ("lazy.brown.fox", &[], "4"),
                ("lazy", &[], "5"),
                ("quick.brown.fox", &[], "6"),
                ("orange", &[], "7"),
            ],
            expect: &[
                ("q1", &["1", "2", "3"]),
                ("q2", &["1", "2", "4", "5"]),
                ("q3", &["1", "2", "3", "4", "5", "6", "7"]),
            ],
        },
        RouteCase {
            kind: ExchangeKind::Headers,
            bindings: &[
                ("q1", "", &[("x-match", "all"), ("format", "pdf"), ("type", "report")]),
                ("q2", "", &[("x-match", "any"), ("format", "pdf"), ("type", "log")]),
            ],
            publishes: &[
                ("", &[("format", "pdf"), ("type", "report")], "pdf-report"),
                ("", &[("format", "pdf"), ("type", "log")], "pdf-log"),
                ("", &[("format", "zip"), ("type", "log")], "zip-log"),
                ("", &[("format", "zip"), ("type", "report")], "zip-report"),
            ],
            expect: &[("q1", &["pdf-report"]), ("q2", &["pdf-log", "pdf-report", "zip-log"])],
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let x = format!("x{i}");
        ch.exchange_declare(
            x.as_str().into(),
            case.kind.clone(),
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        for (q, key, args) in case.bindings {
            let q = format!("{x}.{q}");
            queue(&ch, &q, declare_opts()).await;
            ch.queue_bind(
                q.as_str().into(),
                x.as_str().into(),
                (*key).into(),
                QueueBindOptions::default(),
                headers(args),
            )
            .await
            .unwrap();
        }
        for (key, h, body) in case.publishes {
            let props = BasicProperties::default().with_headers(headers(h));
            publish(&ch, &x, key, body.as_bytes(), props).await;
        }
        for (q, want) in case.expect {
            let got = drain(&ch, &format!("{x}.{q}")).await;
            let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
            want.sort();
            assert_eq!(got, want, "case {i} ({:?}), queue {q}", case.kind);
        }
    }
    // The default exchange routes by queue name; exchange-to-exchange bindings are followed.
    queue(&ch, "plain", declare_opts()).await;
    publish(&ch, "", "plain", b"direct-to-queue", BasicProperties::default()).await;
    assert_eq!(drain(&ch, "plain").await, ["direct-to-queue"]);
    ch.exchange_declare(
        "upstream".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_bind("x0".into(), "upstream".into(), "".into(), ExchangeBindOptions::default(), FieldTable::default())
        .await
        .unwrap();
    publish(&ch, "upstream", "red", b"via-e2e", BasicProperties::default()).await;
    assert_eq!(drain(&ch, "x0.q1").await, ["via-e2e"]);
    assert_eq!(drain(&ch, "x0.q3").await, ["via-e2e"]);
    assert_eq!(drain(&ch, "x0.q2").await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_returns_get_and_properties() {
    let door = Door::start("");
    let conn = door.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    queue(&ch, "jobs", declare_opts()).await;
    // Many publishes without waiting, then all confirmations.
    for i in 0..200 {
        ch.basic_publish(
            "".into(),
            "jobs".into(),
            BasicPublishOptions::default(),
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let returned = ch.wait_for_confirms().await.unwrap();
    assert!(returned.is_empty());
    // An unroutable mandatory message comes back (312 NO_ROUTE) and is still acknowledged.
    let confirm = ch
        .basic_publish(
            "".into(),
            "nobody-home".into(),
            BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
            b"lost",
            BasicProperties::default().with_priority(7),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    let ret = confirm.take_message().expect("basic.return before the ack");
    assert_eq!(ret.reply_code, 312);
    assert_eq!(ret.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(ret.delivery.data, b"lost");
    // basic.get: the first message and the count of those left.
    let got = ch.basic_get("jobs".into(), BasicGetOptions::default()).await.unwrap().expect("a message");
    assert_eq!(got.delivery.data, b"m0");
    assert_eq!(got.message_count, 199);
    assert!(!got.delivery.redelivered);
    got.delivery.ack(BasicAckOptions::default()).await.unwrap();
    queue(&ch, "empty", declare_opts()).await;
    assert!(ch.basic_get("empty".into(), BasicGetOptions::default()).await.unwrap().is_none());
    // Every property and header type comes back as it was sent.
    let mut h = FieldTable::default();
    h.insert("s".into(), AMQPValue::LongString("text".into()));
    h.insert("i8".into(), AMQPValue::ShortShortInt(-8));
    h.insert("u16".into(), AMQPValue::ShortUInt(16));
    h.insert("i32".into(), AMQPValue::LongInt(-32));
    h.insert("i64".into(), AMQPValue::LongLongInt(-64));
    h.insert("f".into(), AMQPValue::Float(1.5));
    h.insert("d".into(), AMQPValue::Double(2.5));
    h.insert("b".into(), AMQPValue::Boolean(true));
    h.insert("t".into(), AMQPValue::Timestamp(1_700_000_000));
    h.insert("bytes".into(), AMQPValue::ByteArray(vec![0, 1, 2].into()));
    h.insert(
        "arr".into(),
        AMQPValue::FieldArray(vec![AMQPValue::LongInt(1), AMQPValue::LongString("x".into())].into()),
    );
    h.insert("nested".into(), AMQPValue::FieldTable(headers(&[("k", "v")])));
    h.insert("void".into(), AMQPValue::Void);
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(h)
        .with_delivery_mode(2)
        .with_priority(3)
        .with_correlation_id("corr".into())
        .with_reply_to("replies".into())
        .with_expiration("600000".into())
        .with_message_id("id-1".into())
        .with_timestamp(1_700_000_001)
        .with_type("kind".into())
        .with_user_id("guest".into())
        .with_app_id("app".into());
    queue(&ch, "props", declare_opts()).await;
    publish(&ch, "", "props", b"", props.clone()).await;
    let got = ch.basic_get("props".into(), BasicGetOptions { no_ack: true }).await.unwrap().expect("a message");
    assert_eq!(got.delivery.properties, props);
    assert!(got.delivery.data.is_empty());
    // Transactions: rolled-back publishes vanish, committed ones arrive.
    let tch = conn.create_channel().await.unwrap();
    tch.tx_select().await.unwrap();
    queue(&tch, "txq", declare_opts()).await;
    for body in [b"rolled-back-1", b"rolled-back-2"] {
        tch.basic_publish("".into(), "txq".into(), BasicPublishOptions::default(), body, BasicProperties::default())
            .await
            .unwrap();
    }
    tch.tx_rollback().await.unwrap();
    tch.basic_publish(
        "".into(),
        "txq".into(),
        BasicPublishOptions::default(),
        b"committed",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    tch.tx_commit().await.unwrap();
    assert_eq!(drain(&tch, "txq").await, ["committed"]);
    // A body larger than a frame is split and joined again.
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    publish(&ch, "", "props", &big, BasicProperties::default()).await;
    let got = ch.basic_get("props".into(), BasicGetOptions { no_ack: true }).await.unwrap().expect("a message");
    assert_eq!(got.delivery.data, big);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_ack_nack_reject_and_redelivery() {
    let door = Door::start("");
    let conn = door.connect().await;
    let pubs = conn.create_channel().await.unwrap();
    pubs.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    queue(&pubs, "work", declare_opts()).await;
    for i in 0..10 {
        publish(&pubs, "", "work", format!("w{i}").as_bytes(), BasicProperties::default()).await;
    }
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(3, BasicQosOptions::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume("work".into(), "c1".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let mut first = Vec::new();
    for _ in 0..3 {
        let d = tokio::time::timeout(DELIVERY_WAIT, consumer.next()).await.expect("delivery").unwrap().unwrap();
        first.push(d);
    }
    // Prefetch 3: nothing more while three are unacknowledged.
    assert!(tokio::time::timeout(QUIET, consumer.next()).await.is_err(), "a fourth delivery beyond prefetch 3");
    let bodies: Vec<&[u8]> = first.iter().map(|d| d.data.as_slice()).collect();
    assert_eq!(bodies, [b"w0", b"w1", b"w2"]);
    // nack with requeue: w0 comes back, redelivered; reject without requeue: w1 is gone; ack w2.
    first[0].nack(BasicNackOptions { requeue: true, multiple: false }).await.unwrap();
    first[1].reject(BasicRejectOptions { requeue: false }).await.unwrap();
    first[2].ack(BasicAckOptions::default()).await.unwrap();
    let mut seen = Vec::new();
    let mut last = None;
    while seen.len() < 8 {
        let d = tokio::time::timeout(DELIVERY_WAIT, consumer.next()).await.expect("delivery").unwrap().unwrap();
        seen.push((String::from_utf8_lossy(&d.data).into_owned(), d.redelivered));
        if seen.len() % 3 == 0 || seen.len() == 8 {
            d.ack(BasicAckOptions { multiple: true }).await.unwrap();
        }
        last = Some(d);
    }
    drop(last);
    assert_eq!(seen[0], ("w0".to_owned(), true), "the requeued message first, redelivered: {seen:?}");
    let rest: Vec<&str> = seen[1..].iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(rest, ["w3", "w4", "w5", "w6", "w7", "w8", "w9"]);
    assert!(seen[1..].iter().all(|(_, r)| !r));
    // Unacknowledged messages go back when their channel closes, and come again redelivered.
    publish(&pubs, "", "work", b"again", BasicProperties::default()).await;
    let d = tokio::time::timeout(DELIVERY_WAIT, consumer.next()).await.expect("delivery").unwrap().unwrap();
    assert_eq!(d.data, b"again");
    ch.close(200, "bye".into()).await.unwrap();
    let ch2 = conn.create_channel().await.unwrap();
    let got = ch2.basic_get("work".into(), BasicGetOptions::default()).await.unwrap().expect("requeued on close");
    assert_eq!(got.delivery.data, b"again");
    assert!(got.delivery.redelivered);
    // Acknowledging an unknown tag closes the channel with 406.
    got.delivery.ack(BasicAckOptions::default()).await.unwrap();
    let err = ch2.basic_ack(999, BasicAckOptions::default()).await;
    let ok_after = ch2
        .queue_declare("work".into(), QueueDeclareOptions { passive: true, ..declare_opts() }, FieldTable::default())
        .await;
    // (The 406 itself is checked on a raw socket in `bad_input_is_answered_with_rabbitmq_codes`:
    // lapin may see the close before it sends the next method.)
    assert!(err.is_err() || ok_after.is_err(), "the channel is closed after an unknown delivery tag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_exclusive_and_auto_delete_queues() {
    let door = Door::start("");
    let conn = door.connect().await;
    let ch = conn.create_channel().await.unwrap();
    // Consumer cancel by the client: no more deliveries to it.
    queue(&ch, "c", declare_opts()).await;
    let consumer = ch
        .basic_consume("c".into(), "tag-1".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    ch.basic_cancel("tag-1".into(), BasicCancelOptions::default()).await.unwrap();
    drop(consumer);
    ch.basic_publish("".into(), "c".into(), BasicPublishOptions::default(), b"kept", BasicProperties::default())
        .await
        .unwrap();
    let got = tokio::time::timeout(DELIVERY_WAIT, async {
        loop {
            if let Some(m) = ch.basic_get("c".into(), BasicGetOptions { no_ack: true }).await.unwrap() {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(got.delivery.data, b"kept");
    // Deleting a queue cancels its consumers (consumer_cancel_notify): the stream ends.
    queue(&ch, "doomed", declare_opts()).await;
    let mut consumer = ch
        .basic_consume("doomed".into(), "tag-2".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let other = conn.create_channel().await.unwrap();
    other.queue_delete("doomed".into(), QueueDeleteOptions::default()).await.unwrap();
    let end = tokio::time::timeout(DELIVERY_WAIT, consumer.next()).await.expect("the consumer ends");
    assert!(end.is_none(), "the consumer stream ends on a broker cancel: {end:?}");
    // An exclusive queue: locked to its connection (405), gone when the connection closes.
    let owner = door.connect().await;
    let och = owner.create_channel().await.unwrap();
    queue(&och, "mine", QueueDeclareOptions { exclusive: true, ..declare_opts() }).await;
    let passive = QueueDeclareOptions { passive: true, ..declare_opts() };
    let err = other.queue_declare("mine".into(), passive, FieldTable::default()).await.unwrap_err();
    assert_eq!(code(&err), Some(405), "{err}");
    // A server-named auto-delete queue vanishes after its last consumer cancels.
    let anon = och
        .queue_declare("".into(), QueueDeclareOptions { auto_delete: true, ..declare_opts() }, FieldTable::default())
        .await
        .unwrap();
    let anon_name = anon.name().as_str().to_owned();
    assert!(anon_name.starts_with("amq.gen-"), "{anon_name}");
    let c = och
        .basic_consume(anon_name.as_str().into(), "t".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    och.basic_cancel("t".into(), BasicCancelOptions::default()).await.unwrap();
    drop(c);
    owner.close(200, "bye".into()).await.unwrap();
    let probe = conn.create_channel().await.unwrap();
    for name in ["mine", anon_name.as_str()] {
        let gone = tokio::time::timeout(DELIVERY_WAIT, async {
            loop {
                let ch = conn.create_channel().await.unwrap();
                match ch.queue_declare(name.into(), passive, FieldTable::default()).await {
                    Err(e) => return code(&e),
                    Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
        .await
        .expect("the queue goes away");
        assert_eq!(gone, Some(404), "{name}");
    }
    drop(probe);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_queue_and_messages_survive_a_restart() {
    let mut door = Door::start("");
    {
        let conn = door.connect().await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        queue(&ch, "keep", QueueDeclareOptions { durable: true, ..declare_opts() }).await;
        queue(&ch, "temp", declare_opts()).await;
        ch.exchange_declare(
            "logs".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind("keep".into(), "logs".into(), "".into(), QueueBindOptions::default(), FieldTable::default())
            .await
            .unwrap();
        for i in 0..5 {
            publish(&ch, "logs", "", format!("k{i}").as_bytes(), BasicProperties::default().with_delivery_mode(2))
                .await;
        }
        // One consumed and acknowledged before the restart: it must not come back.
        let got = ch.basic_get("keep".into(), BasicGetOptions::default()).await.unwrap().unwrap();
        assert_eq!(got.delivery.data, b"k0");
        got.delivery.ack(BasicAckOptions::default()).await.unwrap();
        // Wait until the acknowledgement reached the queue (the next get sees k1).
        let peek = ch.basic_get("keep".into(), BasicGetOptions::default()).await.unwrap().unwrap();
        assert_eq!(peek.delivery.data, b"k1");
        conn.close(200, "bye".into()).await.unwrap();
    }
    door.restart();
    let conn = door.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let passive = QueueDeclareOptions { passive: true, ..declare_opts() };
    let q = ch.queue_declare("keep".into(), passive, FieldTable::default()).await.unwrap();
    assert_eq!(q.message_count(), 4);
    assert_eq!(drain(&ch, "keep").await, ["k1", "k2", "k3", "k4"]);
    // The durable exchange and binding came back too.
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    publish(&ch, "logs", "", b"after", BasicProperties::default()).await;
    assert_eq!(drain(&ch, "keep").await, ["after"]);
    let err = ch.queue_declare("temp".into(), passive, FieldTable::default()).await.unwrap_err();
    assert_eq!(code(&err), Some(404), "a non-durable queue does not survive: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_kill_9() {
    let mut door = Door::start("flushDiskType=SYNC_FLUSH");
    let count = 300;
    {
        let conn = door.connect().await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        queue(&ch, "safe", QueueDeclareOptions { durable: true, ..declare_opts() }).await;
        for i in 0..count {
            ch.basic_publish(
                "".into(),
                "safe".into(),
                BasicPublishOptions::default(),
                format!("s{i:04}").as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap();
        }
        assert!(ch.wait_for_confirms().await.unwrap().is_empty());
        door.cluster.broker.child.kill().unwrap();
        let _ = door.cluster.broker.child.wait();
    }
    door.cluster.broker = crate::support::Process::start(&door.cluster.broker_config);
    door.cluster.broker.wait_for("AMQP door listening", START_TIMEOUT);
    let conn = door.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let got = drain(&ch, "safe").await;
    let want: Vec<String> = (0..count).map(|i| format!("s{i:04}")).collect();
    assert_eq!(got, want);
}

// --- bad input on raw sockets ---

fn encode(frame: &AMQPFrame) -> Vec<u8> {
    let ctx: WriteContext<Vec<u8>> = Vec::new().into();
    gen_frame(frame)(ctx).unwrap().into_inner().0
}

/// A raw connection that did the handshake.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(DELIVERY_WAIT)).unwrap();
        Raw { s, buf: Vec::new() }
    }

    fn send(&mut self, frame: &AMQPFrame) {
        self.s.write_all(&encode(frame)).unwrap();
    }

    /// The next frame, or `None` when the socket closed.
    fn next(&mut self) -> Option<AMQPFrame> {
        loop {
            if let Ok((rest, f)) = parse_frame(&self.buf[..]) {
                let used = self.buf.len() - rest.len();
                self.buf.drain(..used);
                return Some(f);
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn handshake(port: u16) -> Raw {
        let mut r = Raw::connect(port);
        r.s.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
        assert!(matches!(
            r.next(),
            Some(AMQPFrame::Method(0, AMQPClass::Connection(amqp_connection::AMQPMethod::Start(_))))
        ));
        let ok = amqp_connection::StartOk {
            client_properties: FieldTable::default(),
            mechanism: "PLAIN".into(),
            response: "\0guest\0guest".into(),
            locale: "en_US".into(),
        };
        r.send(&AMQPFrame::Method(0, AMQPClass::Connection(amqp_connection::AMQPMethod::StartOk(ok))));
        let Some(AMQPFrame::Method(0, AMQPClass::Connection(amqp_connection::AMQPMethod::Tune(t)))) = r.next() else {
            panic!("no tune")
        };
        let tune_ok = amqp_connection::TuneOk { channel_max: t.channel_max, frame_max: t.frame_max, heartbeat: 0 };
        r.send(&AMQPFrame::Method(0, AMQPClass::Connection(amqp_connection::AMQPMethod::TuneOk(tune_ok))));
        let open = amqp_connection::Open { virtual_host: "/".into() };
        r.send(&AMQPFrame::Method(0, AMQPClass::Connection(amqp_connection::AMQPMethod::Open(open))));
        assert!(matches!(
            r.next(),
            Some(AMQPFrame::Method(0, AMQPClass::Connection(amqp_connection::AMQPMethod::OpenOk(_))))
        ));
        r
    }

    /// The reply code of the `connection.close` the server sends next.
    fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.next()? {
                AMQPFrame::Method(0, AMQPClass::Connection(amqp_connection::AMQPMethod::Close(c))) => {
                    return Some(c.reply_code);
                }
                _ => continue,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_with_rabbitmq_codes() {
    let door = Door::start("");
    let port = door.port;
    // A healthy connection that must stay unaffected by everything below.
    let healthy = door.connect().await;
    let hch = healthy.create_channel().await.unwrap();
    queue(&hch, "alive", declare_opts()).await;

    let raw = tokio::task::spawn_blocking(move || {
        let mut results = Vec::new();
        // Garbage before the protocol header: the server answers with its header and closes.
        let mut r = Raw::connect(port);
        r.s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut got = Vec::new();
        let _ = r.s.read_to_end(&mut got);
        results.push(("garbage before the header", got == b"AMQP\x00\x00\x09\x01"));
        // Another protocol version: the same.
        let mut r = Raw::connect(port);
        r.s.write_all(b"AMQP\x01\x01\x00\x0a").unwrap();
        let mut got = Vec::new();
        let _ = r.s.read_to_end(&mut got);
        results.push(("AMQP 0-10 header", got == b"AMQP\x00\x00\x09\x01"));
        // Garbage after the handshake: 501 FRAME_ERROR.
        let mut r = Raw::handshake(port);
        r.s.write_all(&[0x77; 16]).unwrap();
        results.push(("garbage after the header", r.close_code() == Some(501)));
        // A frame larger than frame_max: 501, before the payload is sent.
        let mut r = Raw::handshake(port);
        let mut head = vec![3u8, 0, 1];
        head.extend_from_slice(&(10_000_000u32).to_be_bytes());
        r.s.write_all(&head).unwrap();
        results.push(("frame over frame_max", r.close_code() == Some(501)));
        // A method on a channel that is not open: 504 CHANNEL_ERROR.
        let mut r = Raw::handshake(port);
        r.send(&AMQPFrame::Method(
            5,
            AMQPClass::Channel(amqp_channel::AMQPMethod::Flow(amqp_channel::Flow { active: true })),
        ));
        results.push(("method on a closed channel", r.close_code() == Some(504)));
        // Acknowledging an unknown delivery tag: channel.close 406 PRECONDITION_FAILED.
        let mut r = Raw::handshake(port);
        r.send(&AMQPFrame::Method(1, AMQPClass::Channel(amqp_channel::AMQPMethod::Open(amqp_channel::Open {}))));
        let opened =
            matches!(r.next(), Some(AMQPFrame::Method(1, AMQPClass::Channel(amqp_channel::AMQPMethod::OpenOk(_)))));
        let ack = amq_protocol::protocol::basic::Ack { delivery_tag: 999, multiple: false };
        r.send(&AMQPFrame::Method(1, AMQPClass::Basic(amq_protocol::protocol::basic::AMQPMethod::Ack(ack))));
        let closed = loop {
            match r.next() {
                Some(AMQPFrame::Method(1, AMQPClass::Channel(amqp_channel::AMQPMethod::Close(c)))) => {
                    break Some(c.reply_code);
                }
                Some(_) => continue,
                None => break None,
            }
        };
        results.push(("unknown delivery tag", opened && closed == Some(406)));
        // basic.publish with immediate=true: connection.close 540 NOT_IMPLEMENTED.
        let mut r = Raw::handshake(port);
        r.send(&AMQPFrame::Method(1, AMQPClass::Channel(amqp_channel::AMQPMethod::Open(amqp_channel::Open {}))));
        let _open_ok = r.next();
        let publish = amq_protocol::protocol::basic::Publish {
            exchange: "".into(),
            routing_key: "alive".into(),
            mandatory: false,
            immediate: true,
        };
        r.send(&AMQPFrame::Method(1, AMQPClass::Basic(amq_protocol::protocol::basic::AMQPMethod::Publish(publish))));
        results.push(("immediate=true", r.close_code() == Some(540)));
        // Wrong credentials: 403 ACCESS_REFUSED.
        let mut r = Raw::connect(port);
        r.s.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
        let _start = r.next();
        let ok = amqp_connection::StartOk {
            client_properties: FieldTable::default(),
            mechanism: "PLAIN".into(),
            response: "\0guest\0wrong".into(),
            locale: "en_US".into(),
        };
        r.send(&AMQPFrame::Method(0, AMQPClass::Connection(amqp_connection::AMQPMethod::StartOk(ok))));
        results.push(("wrong credentials", r.close_code() == Some(403)));
        results
    })
    .await
    .unwrap();
    for (case, ok) in raw {
        assert!(ok, "{case}");
    }
    // Through lapin: wrong password, unknown exchange type (503).
    let err = Connection::connect(&door.uri("guest", "nope"), ConnectionProperties::default()).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::ProtocolError(p) if p.get_id() == 403) || code(&err).is_none(), "{err}");
    let c = door.connect().await;
    let ch = c.create_channel().await.unwrap();
    let err = ch
        .exchange_declare(
            "weird".into(),
            ExchangeKind::Custom("no-such-type".into()),
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(503), "{err}");
    // The healthy connection still works.
    hch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    publish(&hch, "", "alive", b"still here", BasicProperties::default()).await;
    assert_eq!(drain(&hch, "alive").await, ["still here"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_over_a_topic_meets_the_http_door() {
    let http_port = free_port();
    let door = Door::start(&format!("httpListenPort={http_port}"));
    door.cluster.broker.seen.iter().for_each(drop);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let base = format!("http://127.0.0.1:{http_port}");
    let s = http
        .put(format!("{base}/v1/topics/Orders"))
        .json(&serde_json::json!({"read_queues": 1, "write_queues": 1}))
        .send()
        .await
        .unwrap()
        .status();
    assert!(s.is_success(), "{s}");
    // A message a RocketMQ producer (here: the HTTP door) wrote is read over AMQP.
    let s = http
        .post(format!("{base}/v1/topics/Orders/messages"))
        .json(&serde_json::json!({"body": "from-http", "tag": "eu", "properties": {"region": "eu"}}))
        .send()
        .await
        .unwrap();
    assert!(s.status().is_success(), "{:?}", s.text().await);
    let conn = door.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-rocketmq-topic".into(), AMQPValue::LongString("Orders".into()));
    ch.queue_declare("orders".into(), declare_opts(), args).await.unwrap();
    let got =
        ch.basic_get("orders".into(), BasicGetOptions { no_ack: true }).await.unwrap().expect("the native message");
    assert_eq!(got.delivery.data, b"from-http");
    assert_eq!(got.delivery.routing_key.as_str(), "eu");
    let region = got.delivery.properties.headers().as_ref().and_then(|h| h.inner().get("region").cloned());
    assert_eq!(region, Some(AMQPValue::LongString("eu".into())));
    // A message published over AMQP is a RocketMQ message: routing key as tag, properties kept.
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    publish(&ch, "", "orders", b"from-amqp", BasicProperties::default().with_content_type("text/plain".into())).await;
    let pulled: serde_json::Value = http
        .get(format!("{base}/v1/topics/Orders/queues/0/messages?offset=1&max=10"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = pulled.to_string();
    assert!(text.contains("orders"), "the routing key is the tag: {text}");
    assert!(text.contains("text/plain"), "content_type is a property: {text}");
}

/// `x-death` reason and first-death queue of a dead-lettered message.
fn death_of(props: &BasicProperties) -> (String, String) {
    let h = props.headers().clone().unwrap_or_default();
    let text = |k: &str| match h.inner().get(k) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => format!("{other:?}"),
    };
    assert!(matches!(h.inner().get("x-death"), Some(AMQPValue::FieldArray(_))), "x-death header: {h:?}");
    (text("x-first-death-reason"), text("x-first-death-queue"))
}

/// Waits until `queue` holds `n` messages and takes them (body, reason, first queue).
async fn take_dead(ch: &Channel, queue: &str, n: usize) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    tokio::time::timeout(DELIVERY_WAIT, async {
        while out.len() < n {
            match ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap() {
                Some(m) => {
                    let (reason, q) = death_of(&m.delivery.properties);
                    out.push((String::from_utf8_lossy(&m.delivery.data).into_owned(), reason, q));
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} dead letters in {queue}; got {out:?}"));
    out.sort();
    out
}

fn dlx_args(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("dlx".into()));
    for (k, v) in extra {
        t.insert((*k).into(), v.clone());
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_lettering_by_reject_ttl_and_max_length() {
    let door = Door::start("");
    let conn = door.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    dead_letter_target(&ch).await;
    // Rejected without requeue.
    ch.queue_declare("rej".into(), declare_opts(), dlx_args(&[])).await.unwrap();
    publish(&ch, "", "rej", b"no-thanks", BasicProperties::default()).await;
    let m = ch.basic_get("rej".into(), BasicGetOptions::default()).await.unwrap().expect("a message");
    m.delivery.reject(BasicRejectOptions { requeue: false }).await.unwrap();
    assert_eq!(take_dead(&ch, "dead", 1).await, [("no-thanks".into(), "rejected".into(), "rej".into())]);
    // Expired by the queue's TTL with no consumer on the queue.
    ch.queue_declare("ttl".into(), declare_opts(), dlx_args(&[("x-message-ttl", AMQPValue::LongInt(200))]))
        .await
        .unwrap();
    publish(&ch, "", "ttl", b"t1", BasicProperties::default()).await;
    publish(&ch, "", "ttl", b"t2", BasicProperties::default()).await;
    let dead = take_dead(&ch, "dead", 2).await;
    assert_eq!(dead, [("t1".into(), "expired".into(), "ttl".into()), ("t2".into(), "expired".into(), "ttl".into())]);
    assert!(ch.basic_get("ttl".into(), BasicGetOptions::default()).await.unwrap().is_none());
    // Over x-max-length (drop-head): the oldest leave, dead-lettered as maxlen.
    ch.queue_declare("short".into(), declare_opts(), dlx_args(&[("x-max-length", AMQPValue::LongInt(2))]))
        .await
        .unwrap();
    for i in 0..5 {
        publish(&ch, "", "short", format!("s{i}").as_bytes(), BasicProperties::default()).await;
    }
    let dead = take_dead(&ch, "dead", 3).await;
    let bodies: Vec<&str> = dead.iter().map(|(b, _, _)| b.as_str()).collect();
    assert_eq!(bodies, ["s0", "s1", "s2"]);
    assert!(dead.iter().all(|(_, r, q)| r == "maxlen" && q == "short"), "{dead:?}");
    assert_eq!(drain(&ch, "short").await, ["s3", "s4"]);
    // x-overflow=reject-publish: a publish over the limit is nacked.
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(2));
    args.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
    ch.queue_declare("full".into(), declare_opts(), args).await.unwrap();
    let mut acks = Vec::new();
    for i in 0..3 {
        let c = ch
            .basic_publish(
                "".into(),
                "full".into(),
                BasicPublishOptions::default(),
                format!("f{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        acks.push(c.is_ack());
    }
    assert_eq!(acks, [true, true, false]);
    assert_eq!(drain(&ch, "full").await, ["f0", "f1"]);
}

/// Interoperability with the unmodified `rocketmq-client-rust`: what its producer sends to a
/// topic is read over AMQP through a queue declared over that topic (tag as routing key,
/// properties as headers), and what AMQP publishes to that queue reaches its push consumer (routing
/// key as tag, AMQP properties as message properties).
#[test]
fn a_queue_over_a_topic_meets_the_rocketmq_client() {
    use crate::native::{
        ARRIVAL, Inbox, Listener, Recorder, Subscription, eventually, message, serial, start_producer,
        start_push_consumer, with_client,
    };
    let _serial = serial();
    let door = Door::start("");
    let namesrv = door.cluster.namesrv_addr.clone();
    with_client(async |rt| {
        let mut producer = start_producer(&rt, &namesrv, "PG_amqp_interop").await;
        producer
            .send(message("native_orders", Some("from-native"), &["nk-1"], b"over remoting", &[("color", "blue")]))
            .await
            .expect("send");
        producer.shutdown().await;
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let conn = door.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let mut args = FieldTable::default();
        args.insert("x-rocketmq-topic".into(), AMQPValue::LongString("native_orders".into()));
        ch.queue_declare("native".into(), declare_opts(), args).await.unwrap();
        // The producer's send returned once the message was stored; it reaches the topic's
        // queue a moment later (the ConsumeQueue is built asynchronously), so poll.
        let got = tokio::time::timeout(DELIVERY_WAIT, async {
            loop {
                match ch.basic_get("native".into(), BasicGetOptions { no_ack: true }).await.unwrap() {
                    Some(m) => return m,
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
        .await
        .expect("the native message");
        assert_eq!(got.delivery.data, b"over remoting");
        assert_eq!(got.delivery.routing_key.as_str(), "from-native");
        let color = got.delivery.properties.headers().as_ref().and_then(|h| h.inner().get("color").cloned());
        assert_eq!(color, Some(AMQPValue::LongString("blue".into())));
        assert_eq!(
            got.delivery.properties.message_id().as_ref().map(|m| m.as_str().to_owned()),
            Some("nk-1".to_owned())
        );
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        let props = BasicProperties::default().with_content_type("text/plain".into()).with_message_id("amqp-1".into());
        publish(&ch, "", "native", b"over amqp", props).await;
    });
    with_client(async |rt| {
        let inbox = Inbox::default();
        let mut consumer = start_push_consumer(
            &rt,
            &namesrv,
            "CG_amqp_interop",
            "native_orders",
            Subscription::Tag("native"),
            Listener::Concurrently(Recorder::new(&inbox)),
            |b| b,
        )
        .await;
        assert!(eventually(ARRIVAL, || inbox.len() >= 1).await, "the push consumer got nothing");
        let got = inbox.snapshot();
        let m = &got[0];
        assert_eq!(m.body, b"over amqp");
        assert_eq!(m.tags.as_deref(), Some("native"));
        assert_eq!(m.keys.as_deref(), Some("amqp-1"));
        assert_eq!(m.prop("content_type"), Some("text/plain"));
        consumer.shutdown().await;
    });
}
