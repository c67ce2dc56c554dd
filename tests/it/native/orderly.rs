//! Orderly consumption (acceptance 7): messages sent with a queue selector by key are consumed
//! by an orderly consumer in send order per key (the broker's LOCK_BATCH_MQ / UNLOCK_BATCH_MQ).

use std::collections::BTreeMap;

use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;

use super::{
    ARRIVAL, Inbox, Listener, QUIET, Recorder, Subscription, eventually, message, serial, start_producer,
    start_push_consumer, with_client,
};
use crate::support::Cluster;

const KEYS: usize = 10;
const PER_KEY: usize = 20;

#[test]
fn an_orderly_consumer_gets_each_keys_messages_in_send_order() {
    let _serial = serial();
    let mut cluster = Cluster::start("");
    let namesrv = cluster.namesrv_addr.clone();
    let mut failure = None;
    with_client(async |rt| {
        let topic = "TopicOrder";
        let mut producer = start_producer(&rt, &namesrv, "PG_order").await;
        // Interleaved: key 0 seq 0, key 1 seq 0, ..., key 0 seq 1, ...
        for seq in 0..PER_KEY {
            for key in 0..KEYS {
                let (k, s) = (key.to_string(), seq.to_string());
                let msg =
                    message(topic, Some("TagO"), &[&format!("order-{key}")], b"in order", &[("key", &k), ("seq", &s)]);
                let result = producer
                    .send_with_selector(
                        msg,
                        |mqs: &[MessageQueue], _msg: &Message, key: &usize| Some(mqs[key % mqs.len()].clone()),
                        key,
                    )
                    .await
                    .unwrap_or_else(|e| panic!("send key {key} seq {seq}: {e}"))
                    .expect("a sync send returns a result");
                let queue = result.message_queue.expect("send result names the queue");
                assert!(queue.queue_id() >= 0, "{queue:?}");
            }
        }

        let inbox = Inbox::default();
        let mut consumer = start_push_consumer(
            &rt,
            &namesrv,
            "CG_order",
            topic,
            Subscription::Tag("*"),
            Listener::Orderly(Recorder::new(&inbox)),
            |b| b,
        )
        .await;
        let arrived = eventually(ARRIVAL, || inbox.len() >= KEYS * PER_KEY).await;
        if arrived {
            tokio::time::sleep(QUIET).await;
        }
        consumer.shutdown().await;
        producer.shutdown().await;

        let mut per_key: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut queues: BTreeMap<usize, Vec<i32>> = BTreeMap::new();
        for r in inbox.snapshot() {
            let (Some(key), Some(seq)) = (r.prop("key"), r.prop("seq")) else { continue };
            let key: usize = key.parse().unwrap();
            per_key.entry(key).or_default().push(seq.parse().unwrap());
            queues.entry(key).or_default().push(r.queue_id);
        }
        let in_order: Vec<usize> = (0..PER_KEY).collect();
        let mut problems = Vec::new();
        for key in 0..KEYS {
            let got = per_key.get(&key).cloned().unwrap_or_default();
            if got != in_order {
                problems.push(format!("key {key}: consumed seqs {got:?}"));
            }
            let q = queues.get(&key).cloned().unwrap_or_default();
            if q.windows(2).any(|w| w[0] != w[1]) {
                problems.push(format!("key {key}: spread over queues {q:?}"));
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
