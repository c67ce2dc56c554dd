//! What an operator and a client observe: `connection.blocked` when the broker's disk counts as
//! full (seen by lapin, and a publish on a raw socket, which unlike lapin keeps sending while
//! blocked, is nacked rather than confirmed), the `rocketmq_amqp_*` metric families moving by
//! the right amounts as lapin publishes, consumes and acknowledges, and the per-queue ready and
//! unacknowledged gauges following a queue until it is deleted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{AMQPClass, basic, channel, confirm, connection, queue as amqp_queue};
use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;

use super::vhosts::Opened;
use super::{DELIVERY_WAIT, Door, Raw, declare_opts, publish, queue};
use crate::support::free_port;

/// The next frame on `r` that `pick` accepts (others, such as heartbeats, are skipped).
fn next_matching<T>(r: &mut Raw, what: &str, mut pick: impl FnMut(&AMQPFrame) -> Option<T>) -> T {
    loop {
        match r.next() {
            Some(f) => {
                if let Some(t) = pick(&f) {
                    return t;
                }
            }
            None => panic!("the socket closed before {what}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_blocks_connections_and_refuses_publishes() {
    // Any disk is more than 0.01% used: from the store's first disk check on, writes are refused
    // as disk full, which the door announces with connection.blocked.
    let door = Door::start("diskSpaceWarningLevelRatio=0.0001\ncleanResourceInterval=200");
    // lapin advertises the connection.blocked capability and records the notice in its status.
    let conn = door.connect().await;
    let deadline = Instant::now() + DELIVERY_WAIT;
    while !conn.status().blocked() {
        assert!(Instant::now() < deadline, "lapin was not told connection.blocked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // lapin holds publishes while blocked; a raw client that sends anyway gets a nack, never an ack.
    let port = door.port;
    let answer = tokio::task::spawn_blocking(move || {
        let (mut r, opened) = Raw::open(port, "guest", "guest", "/", true);
        assert_eq!(opened, Opened::Ok);
        let reason = next_matching(&mut r, "connection.blocked", |f| match f {
            AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Blocked(b))) => {
                Some(b.reason.as_str().to_owned())
            }
            _ => None,
        });
        r.send(&AMQPFrame::Method(1, AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}))));
        next_matching(&mut r, "channel.open-ok", |f| {
            matches!(f, AMQPFrame::Method(1, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)))).then_some(())
        });
        let select = confirm::Select { nowait: false };
        r.send(&AMQPFrame::Method(1, AMQPClass::Confirm(confirm::AMQPMethod::Select(select))));
        next_matching(&mut r, "confirm.select-ok", |f| {
            matches!(f, AMQPFrame::Method(1, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)))).then_some(())
        });
        let declare = amqp_queue::Declare {
            queue: "held".into(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        };
        r.send(&AMQPFrame::Method(1, AMQPClass::Queue(amqp_queue::AMQPMethod::Declare(declare))));
        next_matching(&mut r, "queue.declare-ok", |f| {
            matches!(f, AMQPFrame::Method(1, AMQPClass::Queue(amqp_queue::AMQPMethod::DeclareOk(_)))).then_some(())
        });
        let publish =
            basic::Publish { exchange: "".into(), routing_key: "held".into(), mandatory: false, immediate: false };
        r.send(&AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Publish(publish))));
        let header = AMQPContentHeader { class_id: 60, body_size: 4, properties: basic::AMQPProperties::default() };
        r.send(&AMQPFrame::Header(1, header));
        r.send(&AMQPFrame::Body(1, b"full".to_vec()));
        let confirm = next_matching(&mut r, "the publish's confirm", |f| match f {
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(a))) => Some(("ack", a.delivery_tag)),
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Nack(n))) => Some(("nack", n.delivery_tag)),
            _ => None,
        });
        (reason, confirm)
    })
    .await
    .unwrap();
    assert!(!answer.0.is_empty(), "connection.blocked carries a reason");
    assert_eq!(answer.1, ("nack", 1), "a publish while the disk is full is nacked");
}

/// One scrape: `(name, labels) → value`.
type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

async fn scrape(http: &reqwest::Client, port: u16) -> Samples {
    let text = http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap().text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    scrape
        .samples
        .into_iter()
        .filter(|s| s.metric.starts_with("rocketmq_amqp_"))
        .filter_map(|s| {
            let v = match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                _ => return None,
            };
            let mut labels: Vec<(String, String)> = s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            labels.sort();
            Some(((s.metric, labels), v))
        })
        .collect()
}

/// An expected figure: family, labels, value (for a `_total` counter: the change).
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// The value of `name` with exactly `labels` (0 when absent).
fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut key: Vec<(String, String)> = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    key.sort();
    samples.get(&(name.to_owned(), key)).copied().unwrap_or(0.0)
}

/// Scrapes until every `(family, labels, expected)` holds (counters as the change since
/// `before`, gauges as they are), or fails with what differs at the deadline.
async fn expect_metrics(http: &reqwest::Client, port: u16, before: &Samples, rows: &[Expected<'_>]) {
    let deadline = Instant::now() + DELIVERY_WAIT;
    loop {
        let now = scrape(http, port).await;
        let wrong: Vec<String> = rows
            .iter()
            .filter_map(|(name, labels, want)| {
                let got = if name.ends_with("_total") {
                    value(&now, name, labels) - value(before, name, labels)
                } else {
                    value(&now, name, labels)
                };
                (got != *want).then(|| format!("{name}{labels:?}: {got}, expected {want}"))
            })
            .collect();
        if wrong.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "metrics differ:\n{}", wrong.join("\n"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_families_count_what_clients_do() {
    let http_port = free_port();
    let door = Door::start(&format!("httpListenPort={http_port}"));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let before = scrape(&http, http_port).await;
    let conn = door.connect().await;
    let pubs = conn.create_channel().await.unwrap();
    pubs.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    queue(&pubs, "metered", declare_opts()).await;
    for i in 0..3 {
        publish(&pubs, "", "metered", format!("m{i}").as_bytes(), BasicProperties::default()).await;
    }
    // Unroutable: one dropped, one returned (mandatory); both still confirmed.
    publish(&pubs, "", "nobody", b"dropped", BasicProperties::default()).await;
    pubs.basic_publish(
        "".into(),
        "nobody".into(),
        BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
        b"returned",
        BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    // Consume the three with manual acks; one is nacked with requeue and comes back redelivered.
    let ch = conn.create_channel().await.unwrap();
    let mut consumer = ch
        .basic_consume("metered".into(), "meter".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let mut acked = 0;
    let mut nacked = false;
    while acked < 3 {
        let d = tokio::time::timeout(DELIVERY_WAIT, consumer.next()).await.expect("delivery").unwrap().unwrap();
        if !nacked {
            nacked = true;
            d.nack(BasicNackOptions { requeue: true, multiple: false }).await.unwrap();
        } else {
            d.ack(BasicAckOptions::default()).await.unwrap();
            acked += 1;
        }
    }
    assert!(pubs.basic_get("metered".into(), BasicGetOptions::default()).await.unwrap().is_none());
    let rows: &[Expected<'_>] = &[
        ("rocketmq_amqp_connections", &[], 1.0),
        ("rocketmq_amqp_channels", &[], 2.0),
        ("rocketmq_amqp_consumers", &[], 1.0),
        ("rocketmq_amqp_connections_opened_total", &[], 1.0),
        ("rocketmq_amqp_messages_received_total", &[], 5.0),
        ("rocketmq_amqp_messages_received_confirm_total", &[], 5.0),
        ("rocketmq_amqp_messages_confirmed_total", &[], 5.0),
        ("rocketmq_amqp_messages_nacked_total", &[], 0.0),
        ("rocketmq_amqp_messages_routed_total", &[("exchange_type", "direct")], 3.0),
        ("rocketmq_amqp_messages_unroutable_dropped_total", &[("exchange_type", "direct")], 1.0),
        ("rocketmq_amqp_messages_unroutable_returned_total", &[("exchange_type", "direct")], 1.0),
        ("rocketmq_amqp_messages_delivered_total", &[("method", "consume"), ("ack_mode", "manual")], 4.0),
        ("rocketmq_amqp_messages_redelivered_total", &[], 1.0),
        ("rocketmq_amqp_messages_acknowledged_total", &[], 3.0),
        ("rocketmq_amqp_messages_rejected_total", &[("requeue", "true")], 1.0),
        ("rocketmq_amqp_messages_get_empty_total", &[], 1.0),
    ];
    expect_metrics(&http, http_port, &before, rows).await;
    // Closing the connection takes its channels and consumer with it.
    conn.close(200, "bye".into()).await.unwrap();
    let rows: &[Expected<'_>] = &[
        ("rocketmq_amqp_connections", &[], 0.0),
        ("rocketmq_amqp_channels", &[], 0.0),
        ("rocketmq_amqp_consumers", &[], 0.0),
        ("rocketmq_amqp_connections_closed_total", &[], 1.0),
    ];
    expect_metrics(&http, http_port, &before, rows).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_gauges_show_ready_and_unacked_until_the_queue_is_deleted() {
    let http_port = free_port();
    let door = Door::start(&format!("httpListenPort={http_port}"));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let conn = door.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    queue(&ch, "depth", declare_opts()).await;
    queue(&ch, "other", declare_opts()).await;
    for i in 0..5 {
        publish(&ch, "", "depth", format!("d{i}").as_bytes(), BasicProperties::default()).await;
    }
    let labels: &[(&str, &str)] = &[("vhost", "/"), ("queue", "depth")];
    let ready = "rocketmq_amqp_queue_messages_ready";
    let unacked = "rocketmq_amqp_queue_messages_unacked";
    expect_metrics(&http, http_port, &Samples::new(), &[(ready, labels, 5.0), (unacked, labels, 0.0)]).await;
    // Two taken with manual acks and not acknowledged: 3 ready, 2 unacknowledged.
    let mut taken = Vec::new();
    for _ in 0..2 {
        let got = ch.basic_get("depth".into(), BasicGetOptions { no_ack: false }).await.unwrap().expect("a message");
        taken.push(got);
    }
    expect_metrics(&http, http_port, &Samples::new(), &[(ready, labels, 3.0), (unacked, labels, 2.0)]).await;
    taken[0].delivery.ack(BasicAckOptions::default()).await.unwrap();
    expect_metrics(&http, http_port, &Samples::new(), &[(ready, labels, 3.0), (unacked, labels, 1.0)]).await;
    let other: &[(&str, &str)] = &[("vhost", "/"), ("queue", "other")];
    expect_metrics(&http, http_port, &Samples::new(), &[(ready, other, 0.0), (unacked, other, 0.0)]).await;
    assert!(scrape(&http, http_port).await.contains_key(&key(ready, other)), "an empty queue has its series");
    // Deleting the queue removes its series; the other queue keeps its own.
    ch.queue_delete("depth".into(), QueueDeleteOptions::default()).await.unwrap();
    let deadline = Instant::now() + DELIVERY_WAIT;
    loop {
        let now = scrape(&http, http_port).await;
        let present: Vec<&str> =
            [ready, unacked].into_iter().filter(|name| now.contains_key(&key(name, labels))).collect();
        if present.is_empty() {
            assert!(now.contains_key(&key(ready, other)), "the other queue's series stay");
            break;
        }
        assert!(Instant::now() < deadline, "series of the deleted queue still scraped: {present:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The key of `name` with exactly `labels` in [`Samples`].
fn key(name: &str, labels: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
    let mut l: Vec<(String, String)> = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    l.sort();
    (name.to_owned(), l)
}
