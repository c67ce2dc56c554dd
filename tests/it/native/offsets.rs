//! Consumer offsets survive a broker restart (acceptance 10): a group consumes, shuts down
//! (committing), the broker restarts, and the group's next consumer gets only the later messages.

use std::path::Path;
use std::time::Instant;

use broker::store::metadata::{ConsumerOffsets, load};

use super::{
    ARRIVAL, Inbox, Listener, QUIET, Recorder, Subscription, duplicates, eventually, message, seqs, serial,
    start_producer, start_push_consumer, with_client,
};
use crate::support::Cluster;

/// The group's committed offsets on `topic` summed over its queues, from the broker's
/// `config/consumerOffset.json` (RocketMQ's file; flushed every `flushConsumerOffsetInterval`).
fn committed_total(store: &Path, topic: &str, group: &str) -> i64 {
    match load::<ConsumerOffsets>(&store.join("config").join("consumerOffset.json")) {
        Ok(Some(offsets)) => offsets.offsets(topic, group).map_or(0, |o| o.values().sum()),
        _ => 0,
    }
}

#[test]
fn committed_offsets_survive_a_broker_restart() {
    const FIRST: usize = 20;
    const LATER: usize = 15;
    let _serial = serial();
    let mut cluster = Cluster::start("flushConsumerOffsetInterval=1000");
    let namesrv = cluster.namesrv_addr.clone();
    let store = cluster.store_dir();
    let cluster_ref = &mut cluster;
    let mut failure = None;
    with_client(async |rt| {
        let (topic, group) = ("TopicOffsets", "CG_offsets");
        let mut producer = start_producer(&rt, &namesrv, "PG_offsets").await;
        for i in 0..FIRST {
            let seq = i.to_string();
            producer.send(message(topic, None, &[], b"first", &[("first", &seq)])).await.expect("send");
        }
        let first = Inbox::default();
        let mut consumer = start_push_consumer(
            &rt,
            &namesrv,
            group,
            topic,
            Subscription::Tag("*"),
            Listener::Concurrently(Recorder::new(&first)),
            |b| b,
        )
        .await;
        let consumed = eventually(ARRIVAL, || first.distinct() >= FIRST).await;
        assert!(consumed, "only {} of {FIRST} consumed before the restart", first.distinct());
        consumer.shutdown().await;
        // Shutting down commits the offsets (oneway); the broker persists them periodically.
        let started = Instant::now();
        let persisted = eventually(ARRIVAL, || committed_total(&store, topic, group) >= FIRST as i64).await;
        assert!(
            persisted,
            "the broker's consumerOffset.json holds {} for {topic}@{group} after {:?}, want {FIRST}",
            committed_total(&store, topic, group),
            started.elapsed()
        );

        tokio::task::block_in_place(|| cluster_ref.restart_broker());

        for i in 0..LATER {
            let seq = i.to_string();
            producer.send(message(topic, None, &[], b"later", &[("later", &seq)])).await.expect("send after restart");
        }
        let later = Inbox::default();
        let mut consumer = start_push_consumer(
            &rt,
            &namesrv,
            group,
            topic,
            Subscription::Tag("*"),
            Listener::Concurrently(Recorder::new(&later)),
            |b| b,
        )
        .await;
        let arrived = eventually(ARRIVAL, || later.count_with("later") >= LATER).await;
        if arrived {
            tokio::time::sleep(QUIET).await;
        }
        consumer.shutdown().await;
        producer.shutdown().await;
        let received = later.snapshot();
        let redelivered = seqs(&received, "first");
        let got = seqs(&received, "later");
        let dups = duplicates(&received);
        if got != (0..LATER).collect::<Vec<_>>() || !redelivered.is_empty() || !dups.is_empty() {
            failure = Some(format!(
                "after the restart: later messages {got:?} (want 0..{LATER}), redelivered first messages \
                 {redelivered:?}, duplicates {dups:?}"
            ));
        }
    });
    if let Some(failure) = failure {
        panic!("{failure}\nbroker log tail:\n{}", cluster.broker.tail(40));
    }
}
