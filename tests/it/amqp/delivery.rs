//! Delivery control over lapin: `channel.flow(active=false)` stops deliveries to the channel
//! until `active=true`, and messages delivered but not acknowledged before a clean restart come
//! again with `redelivered` set (those never delivered without it).

use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, ChannelFlowOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;

use super::{DELIVERY_WAIT, Door, QUIET, declare_opts, publish, queue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_flow_pauses_deliveries() {
    let door = Door::start("");
    let conn = door.connect().await;
    let pubs = conn.create_channel().await.unwrap();
    pubs.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    queue(&pubs, "flowq", declare_opts()).await;
    let ch = conn.create_channel().await.unwrap();
    let mut consumer = ch
        .basic_consume(
            "flowq".into(),
            "f".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let active = ch.channel_flow(ChannelFlowOptions { active: false }).await.unwrap();
    assert!(!active, "flow-ok echoes active=false");
    publish(&pubs, "", "flowq", b"held", BasicProperties::default()).await;
    assert!(tokio::time::timeout(QUIET, consumer.next()).await.is_err(), "a delivery while flow is off");
    let passive = QueueDeclareOptions { passive: true, ..declare_opts() };
    let q = pubs.queue_declare("flowq".into(), passive, FieldTable::default()).await.unwrap();
    assert_eq!(q.message_count(), 1, "the message waits in the queue");
    let active = ch.channel_flow(ChannelFlowOptions { active: true }).await.unwrap();
    assert!(active, "flow-ok echoes active=true");
    let d =
        tokio::time::timeout(DELIVERY_WAIT, consumer.next()).await.expect("delivery after flow on").unwrap().unwrap();
    assert_eq!(d.data, b"held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_deliveries_come_back_redelivered_after_a_restart() {
    let mut door = Door::start("");
    {
        let conn = door.connect().await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        queue(&ch, "again", QueueDeclareOptions { durable: true, ..declare_opts() }).await;
        for body in ["r0", "r1", "r2"] {
            publish(&ch, "", "again", body.as_bytes(), BasicProperties::default().with_delivery_mode(2)).await;
        }
        // Two delivered, never acknowledged.
        for want in ["r0", "r1"] {
            let m = ch.basic_get("again".into(), BasicGetOptions::default()).await.unwrap().expect(want);
            assert_eq!(m.delivery.data, want.as_bytes());
            assert!(!m.delivery.redelivered);
        }
    }
    door.restart();
    let conn = door.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let mut got = Vec::new();
    while let Some(m) = ch.basic_get("again".into(), BasicGetOptions { no_ack: true }).await.unwrap() {
        got.push((String::from_utf8_lossy(&m.delivery.data).into_owned(), m.delivery.redelivered));
    }
    let want = [("r0".to_owned(), true), ("r1".to_owned(), true), ("r2".to_owned(), false)];
    assert_eq!(got, want);
}
