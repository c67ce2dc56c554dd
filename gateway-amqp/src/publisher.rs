//! A channel's publisher task: stores whatever publishes are waiting as one batch per queue, in
//! order. It refuses what an `x-max-length` queue with `reject-publish` has no room for (and
//! dead-letters it too with `reject-publish-dlx`), wakes the queues' actors, then confirms in
//! sequence order, coalescing runs of acks with `multiple`. Several batches wait for their
//! durability at once (see [`publish_loop`]). Publishes without confirms and outside a
//! transaction do not wait for the flush or a slave: nothing was promised about them.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{AMQPClass, basic};
use broker::messaging::{Messaging, OutgoingMessage};
use tokio::sync::{mpsc, oneshot};

use crate::queue::{Cmd, DeadLetter, Overflow, QueueHandle};
use crate::{PRODUCER_GROUP, Shared, wire};

/// Publishes waiting for one channel's publisher task.
pub const PUBLISH_QUEUE_MESSAGES: usize = 4096;
/// Publishes stored together at most (per channel, per round).
pub const PUBLISH_BATCH_MESSAGES: usize = 256;

/// A publish waiting for the publisher task.
pub(crate) enum PubItem {
    Msg {
        seq: Option<u64>,
        /// Stored only once durable as configured (confirm mode, or inside a transaction);
        /// otherwise stored without waiting for the flush or the slave.
        durable: bool,
        topics: Vec<String>,
        queues: Vec<Arc<QueueHandle>>,
        msg: Option<OutgoingMessage>,
    },
    /// Answered once everything queued before it is stored (`true` when all of it was).
    Barrier(oneshot::Sender<bool>),
}

/// Batches of one channel stored and waiting for their durability at once, at most.
pub const PUBLISH_BATCHES_IN_FLIGHT: usize = 4;

/// What storing one group of a batch answers.
type Stored = broker::messaging::Result<Vec<broker::messaging::Published>>;
/// Each group's item indexes and the answer of its store, in the order they were stored.
type Landed = Vec<(Vec<usize>, Stored)>;

/// A batch that is stored (appended, in order) and waits for its durability.
struct InFlight {
    batch: Vec<PubItem>,
    /// Refused before storing (`reject-publish`).
    failed: Vec<bool>,
    /// Resolves once every group of the batch is durable (or failed).
    landed: Pin<Box<dyn Future<Output = Landed> + Send>>,
}

/// What the loop does next.
enum Next {
    Item(Option<PubItem>),
    Landed(Landed),
}

/// Stores what a channel published, in order, one batch per queue, then confirms. Up to
/// [`PUBLISH_BATCHES_IN_FLIGHT`] batches wait for their flush (or slave) at once: a batch is
/// appended while the one before it is still being made durable, and one group commit covers
/// them all. Confirms still go out in publish order.
pub(crate) async fn publish_loop<M: Messaging>(
    shared: Arc<Shared<M>>,
    ch: u16,
    mut rx: mpsc::Receiver<PubItem>,
    out: mpsc::Sender<Vec<u8>>,
) {
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    loop {
        let room = in_flight.len() < PUBLISH_BATCHES_IN_FLIGHT;
        let next = tokio::select! {
            item = rx.recv(), if room => Next::Item(item),
            landed = front_landed(&mut in_flight), if !in_flight.is_empty() => Next::Landed(landed),
        };
        match next {
            Next::Item(None) => break,
            Next::Item(Some(first)) => {
                let mut batch = vec![first];
                while batch.len() < PUBLISH_BATCH_MESSAGES {
                    match rx.try_recv() {
                        Ok(x) => batch.push(x),
                        Err(_) => break,
                    }
                }
                // A queue's room for `reject-publish` is read from its actor: the batches before
                // must have landed in it first.
                if is_limited(&batch) {
                    while let Some(mut f) = in_flight.pop_front() {
                        let landed = f.landed.as_mut().await;
                        if !confirm(&shared, ch, &out, f, landed).await {
                            return;
                        }
                    }
                }
                in_flight.push_back(store(&shared, batch).await);
            }
            Next::Landed(landed) => {
                let Some(f) = in_flight.pop_front() else { continue };
                if !confirm(&shared, ch, &out, f, landed).await {
                    return;
                }
            }
        }
    }
    while let Some(mut f) = in_flight.pop_front() {
        let landed = f.landed.as_mut().await;
        if !confirm(&shared, ch, &out, f, landed).await {
            return;
        }
    }
}

/// Waits until the oldest batch in flight is durable (the caller checked there is one).
async fn front_landed(in_flight: &mut VecDeque<InFlight>) -> Landed {
    match in_flight.front_mut() {
        Some(f) => f.landed.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Whether a batch publishes to a queue whose `x-max-length` refuses publishes.
fn is_limited(batch: &[PubItem]) -> bool {
    batch.iter().any(|item| match item {
        PubItem::Msg { queues, msg: Some(_), .. } => {
            queues.iter().any(|q| q.overflow != Overflow::DropHead && q.max_length.is_some())
        }
        _ => false,
    })
}

/// Appends a batch, one group per topic in order, and returns it in flight.
async fn store<M: Messaging>(shared: &Arc<Shared<M>>, batch: Vec<PubItem>) -> InFlight {
    // Group the messages by topic, keeping their order.
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, item) in batch.iter().enumerate() {
        if let PubItem::Msg { topics, msg: Some(_), .. } = item {
            for t in topics {
                match groups.iter_mut().find(|(g, _)| g == t) {
                    Some((_, v)) => v.push(i),
                    None => groups.push((t.clone(), vec![i])),
                }
            }
        }
    }
    let mut failed = vec![false; batch.len()];
    let mut stores = Vec::with_capacity(groups.len());
    for (topic, mut idxs) in groups {
        // `x-max-length` with `reject-publish(-dlx)`: what does not fit is refused (nacked).
        let limited = idxs.first().and_then(|&i| match &batch[i] {
            PubItem::Msg { queues, .. } => queues
                .iter()
                .find(|q| q.topic == topic && q.overflow != Overflow::DropHead && q.max_length.is_some())
                .cloned(),
            PubItem::Barrier(_) => None,
        });
        if let Some(q) = limited {
            let (ready, _) = q.ask(Cmd::Stats).await.unwrap_or((0, 0));
            let room = q.max_length.unwrap_or(0).saturating_sub(u64::from(ready)) as usize;
            if idxs.len() > room {
                for &i in &idxs[room..] {
                    failed[i] = true;
                    if q.overflow == Overflow::RejectPublishDlx
                        && let PubItem::Msg { msg: Some(m), .. } = &batch[i]
                    {
                        dead_letter_refused(shared, &q, m);
                    }
                }
                idxs.truncate(room);
            }
            if idxs.is_empty() {
                continue;
            }
        }
        let msgs: Vec<OutgoingMessage> = idxs
            .iter()
            .filter_map(|&i| match &batch[i] {
                PubItem::Msg { msg: Some(m), .. } => Some(m.clone()),
                _ => None,
            })
            .collect();
        // One waiting publish makes the whole group wait: a later one never overtakes it.
        let wait = idxs.iter().any(|&i| matches!(&batch[i], PubItem::Msg { durable: true, .. }));
        match shared.messaging.publish_pipelined(&topic, msgs, PRODUCER_GROUP, wait) {
            Ok(stored) => stores.push((idxs, topic, Box::pin(stored))),
            Err(e) => {
                tracing::warn!(%topic, error = %e, "AMQP publish not stored");
                for &i in &idxs {
                    failed[i] = true;
                }
            }
        }
    }
    let landed = async move {
        let mut landed = Vec::with_capacity(stores.len());
        for (idxs, topic, stored) in stores {
            let answer = stored.await;
            if let Err(e) = &answer {
                tracing::warn!(%topic, error = %e, "AMQP publish not stored");
            }
            landed.push((idxs, answer));
        }
        landed
    };
    InFlight { batch, failed, landed: Box::pin(landed) }
}

/// A batch has landed: wakes its queues' actors, then confirms in sequence order (runs of acks
/// coalesced with `multiple`) and answers its barriers. False when the connection is gone.
async fn confirm<M: Messaging>(
    shared: &Shared<M>,
    ch: u16,
    out: &mpsc::Sender<Vec<u8>>,
    f: InFlight,
    landed: Landed,
) -> bool {
    let InFlight { batch, mut failed, .. } = f;
    for (idxs, answer) in landed {
        match answer {
            Ok(published) => {
                for (k, p) in published.iter().enumerate() {
                    if p.status != "SEND_OK"
                        && let Some(&i) = idxs.get(k)
                    {
                        failed[i] = true;
                    }
                }
            }
            Err(_) => {
                for &i in &idxs {
                    failed[i] = true;
                }
            }
        }
    }
    let mut poked: Vec<usize> = Vec::new();
    for item in &batch {
        if let PubItem::Msg { queues, .. } = item {
            for q in queues {
                let key = Arc::as_ptr(q) as usize;
                if !poked.contains(&key) {
                    poked.push(key);
                    q.send(Cmd::Poke);
                }
            }
        }
    }
    let mut frames = Vec::new();
    let mut run: Option<(u64, usize)> = None;
    let mut all_ok = true;
    let flush = |run: &mut Option<(u64, usize)>, frames: &mut Vec<u8>| {
        if let Some((last, n)) = run.take() {
            let ack = basic::Ack { delivery_tag: last, multiple: n > 1 };
            wire::push(frames, &AMQPFrame::Method(ch, AMQPClass::Basic(basic::AMQPMethod::Ack(ack))));
            shared.metrics.confirmed.inc_by(n as u64);
        }
    };
    for (i, item) in batch.into_iter().enumerate() {
        match item {
            PubItem::Msg { seq: Some(s), .. } => {
                if failed[i] {
                    all_ok = false;
                    flush(&mut run, &mut frames);
                    let nack = basic::Nack { delivery_tag: s, multiple: false, requeue: false };
                    wire::push(&mut frames, &AMQPFrame::Method(ch, AMQPClass::Basic(basic::AMQPMethod::Nack(nack))));
                    shared.metrics.nacked.inc();
                } else {
                    run = Some((s, run.map_or(1, |(_, n)| n + 1)));
                }
            }
            PubItem::Msg { seq: None, .. } => all_ok &= !failed[i],
            PubItem::Barrier(done) => {
                let _ = done.send(all_ok);
                all_ok = true;
            }
        }
    }
    flush(&mut run, &mut frames);
    frames.is_empty() || out.send(frames).await.is_ok()
}

/// `reject-publish-dlx`: a publish the queue had no room for goes to its dead-letter exchange
/// (reason `maxlen`), as RabbitMQ does; without one it is only refused.
fn dead_letter_refused<M: Messaging>(shared: &Shared<M>, q: &QueueHandle, m: &OutgoingMessage) {
    let Some((exchange, routing_key)) = &q.dlx else { return };
    shared.metrics.dead_lettered.with_label_values(&["maxlen"]).inc();
    let _ = shared.outlets.dead_letters.send(DeadLetter {
        vhost: q.vhost.clone(),
        queue: q.name.clone(),
        exchange: exchange.clone(),
        routing_key: routing_key.clone(),
        reason: "maxlen",
        message: crate::props::as_stored(m),
    });
}
