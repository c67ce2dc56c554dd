//! Retry and dead letters (acceptance 5): a listener answering "consume later" gets the message
//! again through `%RETRY%<group>`, and after `maxReconsumeTimes` it lands in `%DLQ%<group>`,
//! where another consumer reads it.

use std::time::Duration;

use super::{
    ARRIVAL, Inbox, Listener, QUIET, Recorder, Subscription, eventually, message, serial, start_producer,
    start_push_consumer, with_client,
};
use crate::support::Cluster;

/// Redeliveries before the dead-letter queue (set on the consumer, sent in CONSUMER_SEND_MSG_BACK).
const MAX_RECONSUME_TIMES: i32 = 2;

#[test]
fn consume_later_retries_through_the_retry_topic_then_dead_letters() {
    let _serial = serial();
    // Retries use delay level 3 + reconsumeTimes; 1 s levels keep the test short.
    let levels = vec!["1s"; 18].join(" ");
    let mut cluster = Cluster::start(&format!("messageDelayLevel={levels}"));
    let namesrv = cluster.namesrv_addr.clone();
    let mut failure = None;
    with_client(async |rt| {
        let topic = "TopicRetry";
        let group = "CG_retry";
        let dlq = format!("%DLQ%{group}");
        let mut producer = start_producer(&rt, &namesrv, "PG_retry").await;
        let sent = producer
            .send(message(topic, Some("TagR"), &["retry-key"], b"please retry me", &[("p", "v")]))
            .await
            .expect("send")
            .expect("a sync send returns a result");
        let id = sent.msg_id.expect("msg id").as_str().to_owned();

        let attempts = Inbox::default();
        let mut refuser = Recorder::new(&attempts);
        refuser.reconsume_later = true;
        let mut consumer = start_push_consumer(
            &rt,
            &namesrv,
            group,
            topic,
            Subscription::Tag("*"),
            Listener::Concurrently(refuser),
            |b| b.max_reconsume_times(MAX_RECONSUME_TIMES),
        )
        .await;
        // The first delivery, then one per retry; a retry topic created after the consumer
        // started is found at its next route poll (10 s).
        let want = 1 + MAX_RECONSUME_TIMES as usize;
        let all = eventually(ARRIVAL + Duration::from_secs(15), || attempts.len() >= want).await;
        let seen = attempts.snapshot();
        let times: Vec<i32> = seen.iter().map(|r| r.reconsume_times).collect();
        if !all {
            failure = Some(format!("{} of {want} deliveries (reconsume times {times:?})", seen.len()));
            return;
        }

        // The dead-lettered copy is readable from the DLQ by another group.
        let dead = Inbox::default();
        let mut reader = start_push_consumer(
            &rt,
            &namesrv,
            "CG_dlq_reader",
            &dlq,
            Subscription::Tag("*"),
            Listener::Concurrently(Recorder::new(&dead)),
            |b| b,
        )
        .await;
        let in_dlq = eventually(ARRIVAL, || dead.len() >= 1).await;
        // No further redelivery after the DLQ (the next one would be due within 1 s).
        tokio::time::sleep(QUIET).await;
        reader.shutdown().await;
        consumer.shutdown().await;
        producer.shutdown().await;

        let seen = attempts.snapshot();
        let times: Vec<i32> = seen.iter().map(|r| r.reconsume_times).collect();
        let mut problems = Vec::new();
        if times != (0..=MAX_RECONSUME_TIMES).collect::<Vec<_>>() {
            problems.push(format!("reconsume times of the deliveries {times:?}, want 0..={MAX_RECONSUME_TIMES}"));
        }
        for r in &seen {
            if r.id != id || r.topic != topic || r.body != b"please retry me" || r.keys.as_deref() != Some("retry-key")
            {
                problems.push(format!("redelivery differs from the message sent ({id}): {r:?}"));
            }
        }
        let dead = dead.snapshot();
        if !in_dlq || dead.len() != 1 {
            problems.push(format!("{dlq} holds {} deliveries, want 1: {dead:?}", dead.len()));
        }
        for r in &dead {
            if r.body != b"please retry me"
                || r.keys.as_deref() != Some("retry-key")
                || r.prop("p") != Some("v")
                || r.prop("RETRY_TOPIC") != Some(topic)
            {
                problems.push(format!("the dead letter differs from the message sent: {r:?}"));
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
