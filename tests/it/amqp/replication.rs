//! The AMQP door's durable metadata on a master/slave pair: a slave copies its master's
//! `amqp.json` (exchanges, queues, bindings) byte for byte with its other metadata, runs no AMQP
//! door while it is a SLAVE, and once restarted as the master (an operator's promotion) serves
//! the copied exchange, queue and binding to lapin.

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

use super::{DELIVERY_WAIT, Door, publish, queue};
use crate::support::{Process, START_TIMEOUT, free_broker_port, free_port, write_config};

/// How long the slave may take to copy the file (its sync runs every 10 s).
const SYNC_WAIT: Duration = Duration::from_secs(60);

/// Whether `amqp.json` at `path` holds durable exchange `orders`, durable queue `orders.eu` and
/// the binding between them with key `eu`.
fn holds_the_orders_metadata(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else { return false };
    let Ok(file) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return false };
    let queue = file["queues"].as_array().is_some_and(|qs| qs.iter().any(|q| q["name"] == "orders.eu"));
    let bound = file["exchanges"].as_array().is_some_and(|xs| {
        xs.iter().any(|x| {
            x["name"] == "orders"
                && x["type"] == "direct"
                && x["durable"] == true
                && x["bindings"]
                    .as_array()
                    .is_some_and(|bs| bs.iter().any(|b| b["routingKey"] == "eu" && b["dest"]["name"] == "orders.eu"))
        })
    });
    queue && bound
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_copies_the_masters_amqp_metadata_and_serves_it_once_promoted() {
    // The master (brokerName broker-test, brokerId 0) with its AMQP door.
    let mut master = Door::start("");
    let conn = master.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    ch.exchange_declare("orders".into(), ExchangeKind::Direct, durable, FieldTable::default()).await.unwrap();
    queue(&ch, "orders.eu", QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() }).await;
    ch.queue_bind("orders.eu".into(), "orders".into(), "eu".into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .unwrap();
    conn.close(200, "bye".into()).await.unwrap();
    let master_file = master.cluster.store_dir().join("config").join("amqp.json");
    assert!(holds_the_orders_metadata(&master_file), "the master wrote its amqp.json");

    // Its slave, with an AMQP port configured: a SLAVE runs no door.
    let slave_dir = tempfile::tempdir().unwrap();
    let slave_port = free_broker_port();
    let slave_amqp_port = free_port();
    let slave_config = write_config(
        slave_dir.path(),
        &format!(
            "brokerId=1\nbrokerRole=SLAVE\nlistenPort={slave_port}\nnamesrvAddr={}\nbrokerIP1=127.0.0.1\n\
             amqpListenPort={slave_amqp_port}",
            master.cluster.namesrv_addr
        ),
    );
    let mut slave = Process::start(&slave_config);
    slave.wait_for("Broker started", START_TIMEOUT);
    slave.wait_for("AMQP door not started", START_TIMEOUT);
    assert!(TcpStream::connect(("127.0.0.1", slave_amqp_port)).is_err(), "a slave accepts no AMQP connection");

    let slave_file = slave_dir.path().join("store").join("config").join("amqp.json");
    let deadline = Instant::now() + SYNC_WAIT;
    while !holds_the_orders_metadata(&slave_file) {
        assert!(Instant::now() < deadline, "the slave did not copy amqp.json:\n{}", slave.tail(50));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        std::fs::read(&slave_file).unwrap(),
        std::fs::read(&master_file).unwrap(),
        "the slave's copy is the master's file byte for byte"
    );

    // Promotion by an operator: the master stops, the slave restarts as the master (the last of
    // duplicate keys wins) and its door serves what it copied.
    let status = master.cluster.broker.terminate();
    assert!(status.success(), "the master exits cleanly: {status:?}");
    let status = slave.terminate();
    assert!(status.success(), "the slave exits cleanly: {status:?}");
    let mut text = std::fs::read_to_string(&slave_config).unwrap();
    text.push_str("brokerId=0\nbrokerRole=ASYNC_MASTER\n");
    std::fs::write(&slave_config, text).unwrap();
    let mut promoted = Process::start(&slave_config);
    promoted.wait_for("AMQP door listening", START_TIMEOUT);
    let uri = format!("amqp://guest:guest@127.0.0.1:{slave_amqp_port}/%2f");
    let conn =
        Connection::connect(&uri, ConnectionProperties::default()).await.expect("connect to the promoted broker");
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let passive = ExchangeDeclareOptions { passive: true, ..ExchangeDeclareOptions::default() };
    ch.exchange_declare("orders".into(), ExchangeKind::Direct, passive, FieldTable::default())
        .await
        .expect("the copied exchange exists");
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    queue(&ch, "orders.eu", passive).await;
    publish(&ch, "orders", "eu", b"after the promotion", BasicProperties::default()).await;
    let deadline = Instant::now() + DELIVERY_WAIT;
    let got = loop {
        if let Some(m) = ch.basic_get("orders.eu".into(), BasicGetOptions { no_ack: true }).await.unwrap() {
            break m;
        }
        assert!(Instant::now() < deadline, "the copied binding routed nothing to orders.eu");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(got.delivery.data, b"after the promotion", "routed through the copied binding");
    conn.close(200, "bye".into()).await.unwrap();
}
