//! Delayed messages (acceptance 6): delay level 2 (5 s) is not delivered before 5 s and is
//! delivered after; a delayed message survives a broker restart.

use std::time::{Duration, Instant};

use rocketmq_client_rust::DefaultMQProducer;

use super::{
    ARRIVAL, Inbox, Listener, Recorder, Subscription, eventually, message, serial, start_producer, start_push_consumer,
    with_client,
};
use crate::support::Cluster;

/// Sends a warm-up message (creating the topic) and waits until the running consumer got it,
/// so the delayed message's timing is not mixed up with the consumer's start.
async fn warm_up(producer: &DefaultMQProducer, topic: &str, inbox: &Inbox) {
    producer.send(message(topic, None, &[], b"warm-up", &[("warmup", "1")])).await.expect("warm-up send");
    let ready = eventually(ARRIVAL, || inbox.count_with("warmup") >= 1).await;
    assert!(ready, "the warm-up message did not arrive within {ARRIVAL:?}");
}

#[test]
fn delay_level_2_is_delivered_after_5_seconds_and_not_before() {
    let _serial = serial();
    let mut cluster = Cluster::start("");
    let namesrv = cluster.namesrv_addr.clone();
    let mut failure = None;
    with_client(async |rt| {
        let topic = "TopicDelay";
        let mut producer = start_producer(&rt, &namesrv, "PG_delay").await;
        producer.send(message(topic, None, &[], b"creates the topic", &[])).await.expect("send");
        let inbox = Inbox::default();
        let mut consumer = start_push_consumer(
            &rt,
            &namesrv,
            "CG_delay",
            topic,
            Subscription::Tag("*"),
            Listener::Concurrently(Recorder::new(&inbox)),
            |b| b,
        )
        .await;
        warm_up(&producer, topic, &inbox).await;

        let mut delayed = message(topic, Some("TagD"), &["delayed-key"], b"five seconds later", &[("delayed", "1")]);
        delayed.set_delay_time_level(2);
        let sent_at = Instant::now();
        producer.send(delayed).await.expect("send the delayed message");
        let arrived = eventually(Duration::from_secs(5) + ARRIVAL, || inbox.count_with("delayed") >= 1).await;
        consumer.shutdown().await;
        producer.shutdown().await;
        let got: Vec<_> = inbox.snapshot().into_iter().filter(|r| r.prop("delayed").is_some()).collect();
        match got.as_slice() {
            [r] => {
                let after = r.at.duration_since(sent_at);
                // The broker stamps the store time in whole milliseconds.
                if after < Duration::from_millis(4_990) {
                    failure = Some(format!("delivered {after:?} after the send, before the 5 s delay: {r:?}"));
                } else if r.body != b"five seconds later" || r.keys.as_deref() != Some("delayed-key") {
                    failure = Some(format!("the delayed message was altered: {r:?}"));
                }
                eprintln!("delay level 2 delivered after {after:?}");
            }
            _ => failure = Some(format!("arrived={arrived}; deliveries of the delayed message: {got:?}")),
        }
    });
    if let Some(failure) = failure {
        panic!("{failure}\nbroker log tail:\n{}", cluster.broker.tail(40));
    }
}

#[test]
fn a_delayed_message_survives_a_broker_restart() {
    let _serial = serial();
    let mut cluster = Cluster::start("");
    let namesrv = cluster.namesrv_addr.clone();
    let cluster_ref = &mut cluster;
    let mut failure = None;
    with_client(async |rt| {
        let topic = "TopicDelayRestart";
        let mut producer = start_producer(&rt, &namesrv, "PG_delay_restart").await;
        producer.send(message(topic, None, &[], b"creates the topic", &[])).await.expect("send");
        let inbox = Inbox::default();
        let mut consumer = start_push_consumer(
            &rt,
            &namesrv,
            "CG_delay_restart",
            topic,
            Subscription::Tag("*"),
            Listener::Concurrently(Recorder::new(&inbox)),
            |b| b,
        )
        .await;
        warm_up(&producer, topic, &inbox).await;

        // Level 3 = 10 s; the broker restarts while the message waits in SCHEDULE_TOPIC_XXXX.
        let mut delayed = message(topic, Some("TagD"), &["restart-key"], b"ten seconds later", &[("delayed", "1")]);
        delayed.set_delay_time_level(3);
        let sent_at = Instant::now();
        producer.send(delayed).await.expect("send the delayed message");
        tokio::task::block_in_place(|| cluster_ref.restart_broker());
        let restarted_after = sent_at.elapsed();

        let arrived = eventually(Duration::from_secs(10) + ARRIVAL, || inbox.count_with("delayed") >= 1).await;
        consumer.shutdown().await;
        producer.shutdown().await;
        let got: Vec<_> = inbox.snapshot().into_iter().filter(|r| r.prop("delayed").is_some()).collect();
        match got.as_slice() {
            [r] => {
                let after = r.at.duration_since(sent_at);
                eprintln!("restart done {restarted_after:?} after the send; delivered after {after:?}");
                if after < Duration::from_millis(9_990) {
                    failure = Some(format!("delivered {after:?} after the send, before the 10 s delay: {r:?}"));
                } else if r.body != b"ten seconds later" || r.keys.as_deref() != Some("restart-key") {
                    failure = Some(format!("the delayed message was altered: {r:?}"));
                }
            }
            _ => failure = Some(format!("arrived={arrived}; deliveries of the delayed message: {got:?}")),
        }
    });
    if let Some(failure) = failure {
        panic!("{failure}\nbroker log tail:\n{}", cluster.broker.tail(40));
    }
}
