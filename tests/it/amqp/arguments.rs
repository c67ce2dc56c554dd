//! Queue arguments and transactions over lapin: `x-expires` (an unused queue is deleted, one with a
//! consumer is not), `x-overflow=reject-publish-dlx` (the refused publish is nacked and
//! dead-lettered with reason `maxlen`), acknowledgements held by a transaction until
//! `tx.commit` (dropped by `tx.rollback`), and a redeclare with other arguments refused with 406.

use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection};

use super::{DELIVERY_WAIT, Door, code, dead_letter_target, declare_opts, dlx_args, drain, publish, queue, take_dead};

/// Waits until a passive declare of `name` answers 404, declaring no more often than every
/// `every` (a declare counts as a use, so polls must be further apart than `x-expires`).
async fn wait_gone(conn: &Connection, name: &str, every: Duration) -> Option<u16> {
    let passive = QueueDeclareOptions { passive: true, ..declare_opts() };
    tokio::time::timeout(DELIVERY_WAIT, async {
        loop {
            tokio::time::sleep(every).await;
            // A 404 closes the channel: a fresh one per probe.
            let ch = conn.create_channel().await.unwrap();
            if let Err(e) = ch.queue_declare(name.into(), passive, FieldTable::default()).await {
                return code(&e);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("queue {name} still there after {DELIVERY_WAIT:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_queue_expires_and_one_with_a_consumer_does_not() {
    let door = Door::start("");
    let conn = door.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongInt(300));
    ch.queue_declare("brief".into(), declare_opts(), args.clone()).await.unwrap();
    ch.queue_declare("watched".into(), declare_opts(), args).await.unwrap();
    let consumer = ch
        .basic_consume("watched".into(), "w".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    assert_eq!(wait_gone(&conn, "brief", Duration::from_secs(1)).await, Some(404));
    // The queue with a consumer was never unused: it is still there.
    let probe = conn.create_channel().await.unwrap();
    let passive = QueueDeclareOptions { passive: true, ..declare_opts() };
    probe.queue_declare("watched".into(), passive, FieldTable::default()).await.expect("a consumed queue stays");
    // Once its consumer leaves, it goes too.
    ch.basic_cancel("w".into(), BasicCancelOptions::default()).await.unwrap();
    drop(consumer);
    assert_eq!(wait_gone(&conn, "watched", Duration::from_secs(1)).await, Some(404));
    // An x-expires that is not a positive integer is refused (406).
    let mut zero = FieldTable::default();
    zero.insert("x-expires".into(), AMQPValue::LongInt(0));
    let ch = conn.create_channel().await.unwrap();
    let err = ch.queue_declare("never".into(), declare_opts(), zero).await.unwrap_err();
    assert_eq!(code(&err), Some(406), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_publish_dlx_nacks_and_dead_letters() {
    let door = Door::start("");
    let conn = door.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    dead_letter_target(&ch).await;
    let args = dlx_args(&[
        ("x-max-length", AMQPValue::LongInt(1)),
        ("x-overflow", AMQPValue::LongString(LongString::from("reject-publish-dlx"))),
    ]);
    ch.queue_declare("capped".into(), declare_opts(), args).await.unwrap();
    let mut acks = Vec::new();
    for body in ["c0", "c1", "c2"] {
        let confirm = ch
            .basic_publish(
                "".into(),
                "capped".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        acks.push(confirm.is_ack());
    }
    assert_eq!(acks, [true, false, false], "publishes over x-max-length are nacked");
    let dead = take_dead(&ch, "dead", 2).await;
    assert_eq!(
        dead,
        [("c1".into(), "maxlen".into(), "capped".into()), ("c2".into(), "maxlen".into(), "capped".into())],
        "the refused publishes are dead-lettered"
    );
    assert_eq!(drain(&ch, "capped").await, ["c0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_in_a_transaction_wait_for_commit() {
    let door = Door::start("");
    let conn = door.connect().await;
    let pubs = conn.create_channel().await.unwrap();
    pubs.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    queue(&pubs, "txacks", declare_opts()).await;
    for body in ["a", "b"] {
        publish(&pubs, "", "txacks", body.as_bytes(), BasicProperties::default()).await;
    }
    // Rolled back: the held ack never happens, so both come back when the channel closes.
    let ch = conn.create_channel().await.unwrap();
    ch.tx_select().await.unwrap();
    let first = ch.basic_get("txacks".into(), BasicGetOptions::default()).await.unwrap().expect("a");
    let second = ch.basic_get("txacks".into(), BasicGetOptions::default()).await.unwrap().expect("b");
    assert_eq!((first.delivery.data.as_slice(), second.delivery.data.as_slice()), (&b"a"[..], &b"b"[..]));
    first.delivery.ack(BasicAckOptions::default()).await.unwrap();
    ch.tx_rollback().await.unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.tx_select().await.unwrap();
    let mut back = Vec::new();
    for _ in 0..2 {
        let m = ch.basic_get("txacks".into(), BasicGetOptions::default()).await.unwrap().expect("requeued");
        back.push((String::from_utf8_lossy(&m.delivery.data).into_owned(), m.delivery.redelivered, m));
    }
    let seen: Vec<(&str, bool)> = back.iter().map(|(b, r, _)| (b.as_str(), *r)).collect();
    assert_eq!(seen, [("a", true), ("b", true)], "both come back, redelivered, after a rollback");
    // Committed: the acknowledged one is gone, the other comes back when the channel closes.
    back[0].2.delivery.ack(BasicAckOptions::default()).await.unwrap();
    ch.tx_commit().await.unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let left: Vec<String> = drain(&ch, "txacks").await;
    assert_eq!(left, ["b"], "the committed ack took effect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeclare_must_repeat_the_queue_arguments() {
    let door = Door::start("");
    let conn = door.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let mut ttl = FieldTable::default();
    ttl.insert("x-message-ttl".into(), AMQPValue::LongInt(60_000));
    ch.queue_declare("kept".into(), declare_opts(), ttl.clone()).await.unwrap();
    // The same value in another integer width, and a passive declare without arguments: fine.
    let mut ttl_long = FieldTable::default();
    ttl_long.insert("x-message-ttl".into(), AMQPValue::LongLongInt(60_000));
    ch.queue_declare("kept".into(), declare_opts(), ttl_long).await.expect("an equal value in another width");
    let passive = QueueDeclareOptions { passive: true, ..declare_opts() };
    ch.queue_declare("kept".into(), passive, FieldTable::default()).await.expect("passive ignores arguments");
    // Each of these closes the channel with 406 and names the argument, as RabbitMQ does.
    let mut other_ttl = FieldTable::default();
    other_ttl.insert("x-message-ttl".into(), AMQPValue::LongInt(1_000));
    let mut dlx = ttl.clone();
    dlx.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(LongString::from("dlx")));
    let durable = QueueDeclareOptions { durable: true, ..declare_opts() };
    let rows = [
        (declare_opts(), other_ttl, "inequivalent arg 'x-message-ttl'"),
        (declare_opts(), FieldTable::default(), "received none but current is the value '60000'"),
        (declare_opts(), dlx, "inequivalent arg 'x-dead-letter-exchange'"),
        (durable, ttl.clone(), "inequivalent arg 'durable'"),
    ];
    for (opts, args, text) in rows {
        let ch = conn.create_channel().await.unwrap();
        let err = ch.queue_declare("kept".into(), opts, args.clone()).await.unwrap_err();
        assert_eq!(code(&err), Some(406), "{args:?}: {err}");
        assert!(format!("{err:?}").contains(text), "{args:?}: {err:?} should say {text}");
    }
    // The refusals changed nothing: the queue still has its arguments and takes messages.
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("kept".into(), declare_opts(), ttl).await.expect("the original arguments still match");
    assert!(conn.status().connected(), "a 406 closes the channel, not the connection");
}
