//! Sending: sync sends of a 10,000-message backlog consumed exactly once and intact (acceptance
//! 1), and async, oneway and batch sends all arriving (acceptance 2).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rocketmq_client_rust::SendStatus;

use super::{
    ARRIVAL, Inbox, Listener, QUIET, Recorder, Subscription, duplicates, eventually, message, serial, start_producer,
    start_push_consumer, with_client,
};
use crate::support::Cluster;

const TAGS: [&str; 3] = ["TagA", "TagB", "TagC"];

/// What message `i` of the sync test carries.
struct Expected {
    tags: String,
    keys: String,
    body: Vec<u8>,
    seq: String,
    note: String,
}

fn expected(i: usize) -> Expected {
    Expected {
        tags: TAGS[i % 3].to_string(),
        keys: format!("key-{i} group-{}", i % 7),
        body: format!("body of message {i}: {}", "x".repeat(i % 50)).into_bytes(),
        seq: i.to_string(),
        note: format!("ünïcödé {i} = ok"),
    }
}

#[test]
fn sync_send_of_10000_messages_is_consumed_exactly_once_intact() {
    const N: usize = 10_000;
    let _serial = serial();
    let mut cluster = Cluster::start("");
    let namesrv = cluster.namesrv_addr.clone();
    let mut failure = None;
    with_client(async |rt| {
        let topic = "TopicSync";
        let mut producer = start_producer(&rt, &namesrv, "PG_sync").await;
        let mut sent: HashMap<String, usize> = HashMap::with_capacity(N);
        let started = Instant::now();
        for i in 0..N {
            let e = expected(i);
            let keys: Vec<&str> = e.keys.split(' ').collect();
            let msg =
                message(topic, Some(&e.tags), &keys, &e.body, &[("seq", e.seq.as_str()), ("note", e.note.as_str())]);
            let result = producer
                .send(msg)
                .await
                .unwrap_or_else(|err| panic!("sync send #{i}: {err}"))
                .unwrap_or_else(|| panic!("sync send #{i} returned no result"));
            assert_eq!(result.send_status, SendStatus::SendOk, "send #{i}: {result:?}");
            let id = result.msg_id.unwrap_or_else(|| panic!("send #{i} has no msg id")).as_str().to_owned();
            assert!(sent.insert(id.clone(), i).is_none(), "two sends got message id {id}");
        }
        eprintln!("sent {N} messages in {:?}", started.elapsed());

        let inbox = Inbox::default();
        let started = Instant::now();
        let mut consumer = start_push_consumer(
            &rt,
            &namesrv,
            "CG_sync",
            topic,
            Subscription::Tag("*"),
            Listener::Concurrently(Recorder::new(&inbox)),
            // The client hands the listener one message per blocking task by default, which
            // drains 10,000 at ~240/s here; batches of 32 take a quarter of the time. The broker
            // sees the same pulls either way (both settings delivered all exactly once).
            |b| b.consume_message_batch_max_size(32),
        )
        .await;
        let all = eventually(Duration::from_secs(120), || inbox.distinct() >= N).await;
        eprintln!("consumed {} distinct of {N} in {:?}", inbox.distinct(), started.elapsed());
        if all {
            tokio::time::sleep(QUIET).await;
        }
        consumer.shutdown().await;
        producer.shutdown().await;

        let received = inbox.snapshot();
        let unknown: Vec<&str> = received.iter().filter(|r| !sent.contains_key(&r.id)).map(|r| r.id.as_str()).collect();
        let got: BTreeSet<usize> = received.iter().filter_map(|r| sent.get(&r.id).copied()).collect();
        let missing: Vec<usize> = (0..N).filter(|i| !got.contains(i)).collect();
        let dups = duplicates(&received);
        let mut wrong = Vec::new();
        for r in &received {
            let Some(&i) = sent.get(&r.id) else { continue };
            let e = expected(i);
            if r.topic != topic
                || r.tags.as_deref() != Some(e.tags.as_str())
                || r.keys.as_deref() != Some(e.keys.as_str())
                || r.body != e.body
                || r.prop("seq") != Some(e.seq.as_str())
                || r.prop("note") != Some(e.note.as_str())
            {
                wrong.push(format!("#{i}: {r:?}"));
            }
        }
        if !missing.is_empty() || !dups.is_empty() || !unknown.is_empty() || !wrong.is_empty() {
            failure = Some(format!(
                "{} deliveries; {} missing (first {:?}); {} duplicated (first {:?}); {} unknown ids (first {:?}); \
                 {} altered (first {:?})",
                received.len(),
                missing.len(),
                &missing[..missing.len().min(10)],
                dups.len(),
                &dups[..dups.len().min(10)],
                unknown.len(),
                &unknown[..unknown.len().min(5)],
                wrong.len(),
                &wrong[..wrong.len().min(3)],
            ));
        }
    });
    if let Some(failure) = failure {
        panic!("{failure}\nbroker log tail:\n{}", cluster.broker.tail(40));
    }
}

#[test]
fn async_oneway_and_batch_sends_all_arrive() {
    const EACH: usize = 100;
    const BATCH: usize = 25;
    let _serial = serial();
    let mut cluster = Cluster::start("");
    let namesrv = cluster.namesrv_addr.clone();
    let mut failure = None;
    with_client(async |rt| {
        let topic = "TopicModes";
        let mut producer = start_producer(&rt, &namesrv, "PG_modes").await;

        // Async: every callback reports success. At most ASYNC_WINDOW sends are in flight: the
        // client refuses more with `transport.admission.queue_saturated` (its own local limit).
        const ASYNC_WINDOW: usize = 16;
        let outcomes: Arc<Mutex<Vec<Result<String, String>>>> = Arc::default();
        for i in 0..EACH {
            let room = eventually(ARRIVAL, || outcomes.lock().unwrap().len() + ASYNC_WINDOW > i).await;
            assert!(room, "async send callbacks stalled at {} of {i}", outcomes.lock().unwrap().len());
            let seq = i.to_string();
            let msg =
                message(topic, Some("TagA"), &[], format!("async {i}").as_bytes(), &[("mode", "async"), ("seq", &seq)]);
            let outcomes = outcomes.clone();
            producer
                .send_with_callback(msg, move |result, error| {
                    let outcome = match (result, error) {
                        (Some(r), None) if r.send_status == SendStatus::SendOk => Ok(format!("{:?}", r.msg_id)),
                        (r, e) => Err(format!("#{i}: {r:?} {e:?}")),
                    };
                    outcomes.lock().unwrap().push(outcome);
                })
                .await
                .unwrap_or_else(|e| panic!("async send #{i}: {e}"));
        }
        let called_back = eventually(ARRIVAL, || outcomes.lock().unwrap().len() >= EACH).await;
        let outcomes = outcomes.lock().unwrap().clone();
        assert!(called_back, "only {} of {EACH} async callbacks within {ARRIVAL:?}", outcomes.len());
        let errors: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
        assert!(errors.is_empty(), "async sends failed: {errors:?}");

        // Oneway: no result to check; they must arrive all the same.
        for i in 0..EACH {
            let seq = i.to_string();
            let msg = message(
                topic,
                Some("TagB"),
                &[],
                format!("oneway {i}").as_bytes(),
                &[("mode", "oneway"), ("seq", &seq)],
            );
            producer.send_oneway(msg).await.unwrap_or_else(|e| panic!("oneway send #{i}: {e}"));
        }

        // Batches of BATCH messages, each with its own key (and id).
        let mut batch_ids: HashMap<usize, String> = HashMap::new();
        for b in 0..EACH / BATCH {
            let batch: Vec<_> = (b * BATCH..(b + 1) * BATCH)
                .map(|i| {
                    let seq = i.to_string();
                    let key = format!("batch-key-{i}");
                    message(
                        topic,
                        Some("TagC"),
                        &[&key],
                        format!("batch {i}").as_bytes(),
                        &[("mode", "batch"), ("seq", &seq)],
                    )
                })
                .collect();
            let result = producer.send_batch(batch).await.unwrap_or_else(|e| panic!("batch #{b}: {e}"));
            assert_eq!(result.send_status, SendStatus::SendOk, "batch #{b}: {result:?}");
            // The result lists the messages' own ids, in order.
            let ids: Vec<String> =
                result.msg_id.as_ref().map_or("", |ids| ids.as_str()).split(',').map(str::to_owned).collect();
            assert_eq!(ids.len(), BATCH, "batch #{b}: one id per message: {result:?}");
            for (k, id) in ids.into_iter().enumerate() {
                batch_ids.insert(b * BATCH + k, id);
            }
        }

        let inbox = Inbox::default();
        let mut consumer = start_push_consumer(
            &rt,
            &namesrv,
            "CG_modes",
            topic,
            Subscription::Tag("*"),
            Listener::Concurrently(Recorder::new(&inbox)),
            |b| b,
        )
        .await;
        let want = 3 * EACH;
        let all = eventually(ARRIVAL, || {
            let got: BTreeSet<(String, String)> = inbox
                .snapshot()
                .iter()
                .filter_map(|r| Some((r.prop("mode")?.to_owned(), r.prop("seq")?.to_owned())))
                .collect();
            got.len() >= want
        })
        .await;
        if all {
            tokio::time::sleep(QUIET).await;
        }
        consumer.shutdown().await;
        producer.shutdown().await;

        let received = inbox.snapshot();
        let mut problems = Vec::new();
        for mode in ["async", "oneway", "batch"] {
            let got: Vec<usize> = received
                .iter()
                .filter(|r| r.prop("mode") == Some(mode))
                .filter_map(|r| r.prop("seq")?.parse().ok())
                .collect();
            let distinct: BTreeSet<usize> = got.iter().copied().collect();
            let missing: Vec<usize> = (0..EACH).filter(|i| !distinct.contains(i)).collect();
            if !missing.is_empty() || got.len() != EACH {
                problems.push(format!("{mode}: {} deliveries, missing {missing:?}", got.len()));
            }
        }
        for r in received.iter().filter(|r| r.prop("mode") == Some("batch")) {
            let seq = r.prop("seq").unwrap_or("?");
            if r.keys.as_deref() != Some(format!("batch-key-{seq}").as_str())
                || r.body != format!("batch {seq}").as_bytes()
            {
                problems.push(format!("batch message altered: {r:?}"));
            }
            // A consumer sees the id the producer was given for that message.
            let sent_id = seq.parse().ok().and_then(|i: usize| batch_ids.get(&i));
            if sent_id != Some(&r.id) {
                problems.push(format!("batch message {seq} was sent as {sent_id:?} but arrives as {}: {r:?}", r.id));
            }
        }
        if !problems.is_empty() {
            failure = Some(problems.join("\n"));
        }
    });
    if let Some(failure) = failure {
        panic!("{failure}\nbroker log tail:\n{}", cluster.broker.tail(40));
    }
}
