//! A small AMQP load program (lapin), the same for this broker and RabbitMQ: publish with
//! confirms, publish without confirms, consume with prefetch 100 and manual acks (one per
//! message, sent without waiting for the previous one).
//!
//! `cargo run --release -p gateway-amqp --example amqp_bench -- <amqp-uri> <messages> [body-bytes]`
//! prints one line per phase: messages, seconds, messages per second.

use std::collections::VecDeque;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

/// Confirms outstanding at most in the confirm phase.
const CONFIRM_WINDOW: usize = 1000;

fn line(phase: &str, n: usize, started: Instant) {
    let s = started.elapsed().as_secs_f64();
    let rate = n as f64 / s;
    let text = format!("{phase:<24} {n:>8} msgs {s:>8.2} s {rate:>10.0} msg/s\n");
    std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes()).expect("stdout");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let uri = args.get(1).cloned().unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50_000);
    let size: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let body = vec![b'x'; size];
    let conn = Connection::connect(&uri, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    ch.queue_declare("bench".into(), durable, FieldTable::default()).await?;
    ch.queue_purge("bench".into(), QueuePurgeOptions::default()).await?;
    let persistent = BasicProperties::default().with_delivery_mode(2);

    // 1. Publish with confirms (a window of outstanding confirms).
    let cch = conn.create_channel().await?;
    cch.confirm_select(ConfirmSelectOptions::default()).await?;
    let started = Instant::now();
    let mut window = VecDeque::new();
    for _ in 0..n {
        let c = cch
            .basic_publish("".into(), "bench".into(), BasicPublishOptions::default(), &body, persistent.clone())
            .await?;
        window.push_back(c);
        if window.len() >= CONFIRM_WINDOW
            && let Some(c) = window.pop_front()
        {
            assert!(c.await?.is_ack());
        }
    }
    for c in window {
        assert!(c.await?.is_ack());
    }
    line("publish, confirms", n, started);

    // 2. Publish without confirms (timed until a round trip after the last one).
    let started = Instant::now();
    for _ in 0..n {
        ch.basic_publish("".into(), "bench".into(), BasicPublishOptions::default(), &body, persistent.clone()).await?;
    }
    ch.queue_declare("bench".into(), durable, FieldTable::default()).await?;
    line("publish, no confirms", n, started);

    // 3. Consume 2n with prefetch 100 and an ack per message.
    let rch = conn.create_channel().await?;
    rch.basic_qos(100, BasicQosOptions::default()).await?;
    let mut consumer = rch
        .basic_consume("bench".into(), "bench".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    // Each delivery is acknowledged on its own (no `multiple`); the acks are not awaited one
    // by one before the next delivery is taken (an ack has no reply in AMQP: awaiting it here
    // would only measure the client's own hand-off to its I/O thread).
    let started = Instant::now();
    let mut got = 0;
    let mut acks = FuturesUnordered::new();
    while got < 2 * n {
        tokio::select! {
            d = consumer.next() => {
                let Some(d) = d else { break };
                let d = d?;
                acks.push(async move { d.ack(BasicAckOptions::default()).await });
                got += 1;
            }
            Some(acked) = acks.next(), if !acks.is_empty() => {
                acked?;
            }
        }
    }
    while let Some(acked) = acks.next().await {
        acked?;
    }
    line("consume, prefetch 100", got, started);
    conn.close(200, "done".into()).await?;
    Ok(())
}
