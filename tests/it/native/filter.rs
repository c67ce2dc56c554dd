//! Filters (acceptance 4): a tag expression and a SQL92 expression on user properties deliver
//! exactly the matching messages.

use super::{
    ARRIVAL, Inbox, Listener, QUIET, Recorder, Subscription, eventually, message, seqs, serial, start_producer,
    start_push_consumer, with_client,
};
use crate::support::Cluster;

#[test]
fn tag_filter_delivers_exactly_the_matching_tags() {
    const N: usize = 40;
    let _serial = serial();
    let mut cluster = Cluster::start("");
    let namesrv = cluster.namesrv_addr.clone();
    let mut failure = None;
    with_client(async |rt| {
        let topic = "TopicTags";
        let tags = [Some("TagA"), Some("TagB"), Some("TagC"), None, Some("TagAB")];
        let mut producer = start_producer(&rt, &namesrv, "PG_tags").await;
        for i in 0..N {
            let seq = i.to_string();
            producer.send(message(topic, tags[i % tags.len()], &[], b"tagged", &[("seq", &seq)])).await.expect("send");
        }
        let expected: Vec<usize> = (0..N).filter(|i| matches!(tags[i % tags.len()], Some("TagA" | "TagB"))).collect();

        let inbox = Inbox::default();
        let mut consumer = start_push_consumer(
            &rt,
            &namesrv,
            "CG_tags",
            topic,
            Subscription::Tag("TagA || TagB"),
            Listener::Concurrently(Recorder::new(&inbox)),
            |b| b,
        )
        .await;
        let arrived = eventually(ARRIVAL, || inbox.len() >= expected.len()).await;
        if arrived {
            tokio::time::sleep(QUIET).await;
        }
        consumer.shutdown().await;
        producer.shutdown().await;
        let received = inbox.snapshot();
        let got = seqs(&received, "seq");
        let wrong_tags: Vec<_> =
            received.iter().filter(|r| !matches!(r.tags.as_deref(), Some("TagA" | "TagB"))).collect();
        if got != expected || !wrong_tags.is_empty() {
            failure = Some(format!("expected {expected:?}\ngot      {got:?}\nwrong tags: {wrong_tags:?}"));
        }
    });
    if let Some(failure) = failure {
        panic!("{failure}\nbroker log tail:\n{}", cluster.broker.tail(40));
    }
}

/// Message `i` of the SQL test: `a` (missing on every 8th) and `b`.
fn sql_props(i: usize) -> (Option<String>, &'static str) {
    let a = (i % 8 != 7).then(|| (i % 10).to_string());
    let b = if i.is_multiple_of(3) { "y" } else { "x" };
    (a, b)
}

#[test]
fn sql92_filter_delivers_exactly_the_matching_properties() {
    const N: usize = 60;
    let _serial = serial();
    // SQL92 filtering is off by default in RocketMQ 4.9.4.
    let mut cluster = Cluster::start("enablePropertyFilter=true");
    let namesrv = cluster.namesrv_addr.clone();
    let mut failure = None;
    with_client(async |rt| {
        let topic = "TopicSql";
        let mut producer = start_producer(&rt, &namesrv, "PG_sql").await;
        for i in 0..N {
            let seq = i.to_string();
            let (a, b) = sql_props(i);
            let mut props = vec![("seq", seq.as_str()), ("b", b)];
            if let Some(a) = &a {
                props.push(("a", a.as_str()));
            }
            producer.send(message(topic, Some("TagA"), &[], b"sql", &props)).await.expect("send");
        }
        let expected: Vec<usize> = (0..N)
            .filter(|&i| {
                let (a, b) = sql_props(i);
                a.is_some_and(|a| a.parse::<i64>().unwrap() > 5) && b == "x"
            })
            .collect();

        let inbox = Inbox::default();
        let mut consumer = start_push_consumer(
            &rt,
            &namesrv,
            "CG_sql",
            topic,
            Subscription::Sql("a > 5 AND b = 'x'"),
            Listener::Concurrently(Recorder::new(&inbox)),
            |b| b,
        )
        .await;
        let arrived = eventually(ARRIVAL, || inbox.len() >= expected.len()).await;
        if arrived {
            tokio::time::sleep(QUIET).await;
        }
        consumer.shutdown().await;
        producer.shutdown().await;
        let got = seqs(&inbox.snapshot(), "seq");
        if got != expected {
            failure = Some(format!("expected {expected:?}\ngot      {got:?}"));
        }
    });
    if let Some(failure) = failure {
        panic!("{failure}\nbroker log tail:\n{}", cluster.broker.tail(40));
    }
}
