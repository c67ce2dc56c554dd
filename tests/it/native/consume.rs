//! Consumer groups (acceptance 3): clustering consumers split the queues and rebalance when a
//! third joins; broadcasting consumers each receive everything.

use std::collections::BTreeSet;
use std::sync::Arc;

use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;

use super::{
    ARRIVAL, Assignment, Inbox, Listener, QUIET, Recorder, Subscription, duplicates, eventually, message, seqs, serial,
    start_producer, start_push_consumer, with_client,
};
use crate::support::Cluster;

/// Queues of an auto-created topic (`defaultTopicQueueNums`).
const QUEUES: i32 = 4;

/// Whether the consumers' latest assignments are all non-empty, pairwise disjoint and together
/// every queue.
fn split_between(assignments: &[&Assignment]) -> bool {
    let mut all = BTreeSet::new();
    let mut total = 0;
    for a in assignments {
        let Some(queues) = a.queues() else { return false };
        if queues.is_empty() {
            return false;
        }
        total += queues.len();
        all.extend(queues);
    }
    total == all.len() && all == (0..QUEUES).collect()
}

fn assignments(of: &[&Assignment]) -> Vec<Option<BTreeSet<i32>>> {
    of.iter().map(|a| a.queues()).collect()
}

#[test]
fn clustering_consumers_split_the_queues_and_rebalance_when_a_third_joins() {
    const PHASE: usize = 40;
    let _serial = serial();
    let mut cluster = Cluster::start("");
    let namesrv = cluster.namesrv_addr.clone();
    let mut failure = None;
    with_client(async |rt| {
        let topic = "TopicSplit";
        let group = "CG_split";
        let mut producer = start_producer(&rt, &namesrv, "PG_split").await;
        // Creates the topic (auto-creation from TBW102) so the consumers find its route.
        producer.send(message(topic, None, &[], b"warm-up", &[])).await.expect("warm-up send");

        let inbox = Inbox::default();
        let (a, b, c) = (Assignment::new(topic), Assignment::new(topic), Assignment::new(topic));
        let start = async |name: &'static str, assignment: &Assignment| {
            let listener: Arc<Assignment> = Arc::new(assignment.clone());
            start_push_consumer(
                &rt,
                &namesrv,
                group,
                topic,
                Subscription::Tag("*"),
                Listener::Concurrently(Recorder::named(&inbox, name)),
                move |builder| builder.message_queue_listener(Some(listener)),
            )
            .await
        };
        let mut consumer_a = start("A", &a).await;
        let mut consumer_b = start("B", &b).await;
        let split = eventually(ARRIVAL, || split_between(&[&a, &b])).await;
        assert!(split, "two consumers did not split the {QUEUES} queues: {:?}", assignments(&[&a, &b]));

        for i in 0..PHASE {
            let seq = i.to_string();
            producer.send(message(topic, None, &[], b"phase 1", &[("phase1", &seq)])).await.expect("send phase 1");
        }
        let arrived = eventually(ARRIVAL, || seqs(&inbox.snapshot(), "phase1").len() >= PHASE).await;
        let phase1: Vec<_> = inbox.snapshot().into_iter().filter(|r| r.prop("phase1").is_some()).collect();
        let by = |name: &str| phase1.iter().filter(|r| r.by == name).count();
        let dups = duplicates(&phase1);
        if !arrived || by("A") == 0 || by("B") == 0 || !dups.is_empty() {
            failure = Some(format!(
                "phase 1: {} of {PHASE} arrived (A {}, B {}), duplicates {dups:?}, assignments {:?}",
                seqs(&phase1, "phase1").len(),
                by("A"),
                by("B"),
                assignments(&[&a, &b])
            ));
            return;
        }

        let mut consumer_c = start("C", &c).await;
        let rebalanced = eventually(ARRIVAL, || split_between(&[&a, &b, &c])).await;
        if !rebalanced {
            failure =
                Some(format!("no rebalance to three consumers within {ARRIVAL:?}: {:?}", assignments(&[&a, &b, &c])));
            return;
        }
        for i in 0..PHASE {
            let seq = i.to_string();
            producer.send(message(topic, None, &[], b"phase 2", &[("phase2", &seq)])).await.expect("send phase 2");
        }
        let arrived = eventually(ARRIVAL, || seqs(&inbox.snapshot(), "phase2").len() >= PHASE).await;
        if arrived {
            tokio::time::sleep(QUIET).await;
        }
        let phase2: Vec<_> = inbox.snapshot().into_iter().filter(|r| r.prop("phase2").is_some()).collect();
        let got: BTreeSet<usize> = seqs(&phase2, "phase2").into_iter().collect();
        let by = |name: &str| phase2.iter().filter(|r| r.by == name).count();
        let dups = duplicates(&phase2);
        if got.len() != PHASE || by("A") == 0 || by("B") == 0 || by("C") == 0 || !dups.is_empty() {
            failure = Some(format!(
                "phase 2: {} of {PHASE} arrived (A {}, B {}, C {}), duplicates {dups:?}, assignments {:?}",
                got.len(),
                by("A"),
                by("B"),
                by("C"),
                assignments(&[&a, &b, &c])
            ));
        }
        for consumer in [&mut consumer_a, &mut consumer_b, &mut consumer_c] {
            consumer.shutdown().await;
        }
        producer.shutdown().await;
    });
    if let Some(failure) = failure {
        panic!("{failure}\nbroker log tail:\n{}", cluster.broker.tail(40));
    }
}

#[test]
fn broadcasting_consumers_each_receive_every_message() {
    const N: usize = 30;
    let _serial = serial();
    let mut cluster = Cluster::start("");
    let namesrv = cluster.namesrv_addr.clone();
    let mut failure = None;
    with_client(async |rt| {
        let topic = "TopicBroadcast";
        let mut producer = start_producer(&rt, &namesrv, "PG_broadcast").await;
        for i in 0..N {
            let seq = i.to_string();
            producer.send(message(topic, Some("TagA"), &[], b"to everyone", &[("seq", &seq)])).await.expect("send");
        }
        let (one, two) = (Inbox::default(), Inbox::default());
        let mut consumers = Vec::new();
        for inbox in [&one, &two] {
            consumers.push(
                start_push_consumer(
                    &rt,
                    &namesrv,
                    "CG_broadcast",
                    topic,
                    Subscription::Tag("*"),
                    Listener::Concurrently(Recorder::new(inbox)),
                    |b| b.message_model(MessageModel::Broadcasting),
                )
                .await,
            );
        }
        let all = eventually(ARRIVAL, || one.distinct() >= N && two.distinct() >= N).await;
        if all {
            tokio::time::sleep(QUIET).await;
        }
        for consumer in &mut consumers {
            consumer.shutdown().await;
        }
        producer.shutdown().await;
        let expected: Vec<usize> = (0..N).collect();
        let (one, two) = (seqs(&one.snapshot(), "seq"), seqs(&two.snapshot(), "seq"));
        if one != expected || two != expected {
            failure = Some(format!("each broadcasting consumer must get 0..{N} once:\nfirst {one:?}\nsecond {two:?}"));
        }
    });
    if let Some(failure) = failure {
        panic!("{failure}\nbroker log tail:\n{}", cluster.broker.tail(40));
    }
}
