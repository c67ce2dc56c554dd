//! Queries through the client API (acceptance 9): QUERY_MESSAGE by key and VIEW_MESSAGE_BY_ID
//! by the offset message id a send returns. (`mqadmin queryMsgByKey/ById` are tested with
//! `mqadmin`.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{ARRIVAL, message, serial, start_producer, with_client};
use crate::support::Cluster;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn query_by_key_and_view_by_message_id_return_the_message() {
    const N: usize = 5;
    let _serial = serial();
    let mut cluster = Cluster::start("");
    let namesrv = cluster.namesrv_addr.clone();
    let mut failure = None;
    with_client(async |rt| {
        let topic = "TopicQuery";
        let mut producer = start_producer(&rt, &namesrv, "PG_query").await;
        let begin = now_ms() - 60_000;
        let mut offset_ids = Vec::new();
        for i in 0..N {
            let body = format!("queried body {i}");
            let result = producer
                .send(message(topic, Some("TagQ"), &[&format!("order-{i}"), "shared-key"], body.as_bytes(), &[]))
                .await
                .expect("send")
                .expect("a sync send returns a result");
            offset_ids.push(result.offset_msg_id.clone().expect("the send result carries the offset message id"));
        }
        let end = now_ms() + 60_000;

        // The index is built asynchronously after the append, in append order: ask for the last
        // message's key until it answers, then every earlier message is indexed too.
        let last = format!("order-{}", N - 1);
        let deadline = tokio::time::Instant::now() + ARRIVAL;
        let indexed = loop {
            match producer.query_message(topic, &last, 32, begin, end).await {
                Ok(found) if !found.message_list().is_empty() => break Ok(()),
                other if tokio::time::Instant::now() > deadline => break Err(format!("{:?}", other.map(|_| ()))),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let by_key = match indexed {
            Ok(()) => producer.query_message(topic, "order-3", 32, begin, end).await.map_err(|e| format!("{e:?}")),
            Err(e) => Err(e),
        };
        match by_key {
            Ok(found) => {
                let bodies: Vec<String> = found
                    .message_list()
                    .iter()
                    .map(|m| String::from_utf8_lossy(&m.body().unwrap_or_default()).into_owned())
                    .collect();
                if bodies != ["queried body 3"] {
                    failure = Some(format!("query by key order-3 returned {bodies:?}"));
                }
            }
            Err(e) => failure = Some(format!("query by key order-3 found nothing within {ARRIVAL:?}: {e}")),
        }
        if failure.is_none() {
            match producer.query_message(topic, "shared-key", 32, begin, end).await {
                Ok(found) if found.message_list().len() == N => {}
                Ok(found) => failure = Some(format!("query by shared-key found {} of {N}", found.message_list().len())),
                Err(e) => failure = Some(format!("query by shared-key: {e}")),
            }
        }
        if failure.is_none() {
            for (i, id) in offset_ids.iter().enumerate() {
                match producer.view_message(topic, id).await {
                    Ok(m) if m.body().as_deref() == Some(format!("queried body {i}").as_bytes()) => {}
                    Ok(m) => failure = Some(format!("view {id} returned another message: {m:?}")),
                    Err(e) => failure = Some(format!("view {id}: {e}")),
                }
            }
        }
        producer.shutdown().await;
    });
    if let Some(failure) = failure {
        panic!("{failure}\nbroker log tail:\n{}", cluster.broker.tail(40));
    }
}
