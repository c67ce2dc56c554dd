//! The door's state for the web console, read-only: [`AmqpConsole`] over the model (exchanges,
//! bindings, queues) and the queues' actors (depth, unacknowledged messages, consumers). It shows
//! vhost `/` only (the console's AMQP page has no vhost yet); connection, channel and consumer
//! counts are the door's, all vhosts together.
//!
//! A queue's figures live in its actor, so they are asked with [`Cmd::Snapshot`]: every request
//! goes out first, then the answers are collected against one deadline, so a page of queues
//! costs about one round trip however many it holds. A queue whose actor does not answer within
//! [`QUEUE_ANSWER_TIMEOUT_MS`] is listed without figures.
//!
//! | limit | value |
//! |---|---|
//! | time for the queues of one request to answer | [`QUEUE_ANSWER_TIMEOUT_MS`], 1,000 ms |
//! | queues one call to `queues` asks | [`QUEUES_PER_CALL_MAX`], 500 |
//! | queues summed in the overview's totals | [`TOTALS_QUEUES_MAX`], 1,000 |

use std::sync::Arc;
use std::time::Duration;

use amq_protocol::types::{AMQPValue, FieldTable};
use broker::messaging::Messaging;
use broker::messaging::console::{
    AmqpBinding, AmqpConsole, AmqpConsumer, AmqpExchange, AmqpFuture, AmqpOverview, AmqpQueue, AmqpQueueFigures,
};
use serde_json::{Map, Value};

use crate::model::Dest;
use crate::queue::{Cmd, QueueHandle, Snapshot};
use crate::{DEFAULT_VHOST, Shared};

/// How long the queues of one request have to answer, ms.
pub const QUEUE_ANSWER_TIMEOUT_MS: u64 = 1_000;
/// Queues one call to [`AmqpConsole::queues`] asks at most (the rest are left out).
pub const QUEUES_PER_CALL_MAX: usize = 500;
/// Queues (the first by name) whose figures the overview sums.
pub const TOTALS_QUEUES_MAX: usize = 1_000;

/// The console's view of a running door.
pub(crate) struct View<M: Messaging> {
    pub shared: Arc<Shared<M>>,
}

impl<M: Messaging> View<M> {
    fn handles(&self, names: &[String]) -> Vec<Arc<QueueHandle>> {
        let model = self.shared.model.read().unwrap_or_else(|e| e.into_inner());
        let Some(v) = model.vhosts.get(DEFAULT_VHOST) else { return Vec::new() };
        names.iter().filter_map(|n| v.queues.get(n).cloned()).collect()
    }

    fn sorted_names(&self) -> Vec<String> {
        let model = self.shared.model.read().unwrap_or_else(|e| e.into_inner());
        let Some(v) = model.vhosts.get(DEFAULT_VHOST) else { return Vec::new() };
        let mut names: Vec<String> = v.queues.keys().cloned().collect();
        names.sort();
        names
    }
}

/// Asks every queue for its snapshot, then waits for the answers until one deadline.
async fn snapshots(handles: &[Arc<QueueHandle>]) -> Vec<Option<Snapshot>> {
    let pending: Vec<_> = handles
        .iter()
        .map(|q| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            q.send(Cmd::Snapshot(tx));
            rx
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(QUEUE_ANSWER_TIMEOUT_MS);
    let mut out = Vec::with_capacity(pending.len());
    for rx in pending {
        out.push(tokio::time::timeout_at(deadline, rx).await.ok().and_then(Result::ok));
    }
    out
}

fn figures(s: Snapshot) -> AmqpQueueFigures {
    AmqpQueueFigures {
        ready: u64::from(s.ready),
        unacked: s.unacked as u64,
        consumers: s
            .consumers
            .into_iter()
            .map(|c| AmqpConsumer {
                tag: c.tag,
                connection: c.conn,
                peer: c.peer.to_string(),
                channel: c.channel,
                prefetch: c.prefetch,
                channel_prefetch: c.channel_prefetch,
                manual_ack: !c.no_ack,
                exclusive: c.exclusive,
                unacked: c.unacked as u64,
            })
            .collect(),
    }
}

impl<M: Messaging> AmqpConsole for View<M> {
    fn overview(&self) -> AmqpFuture<'_, AmqpOverview> {
        Box::pin(async move {
            let (exchanges, bindings, queues) = {
                let model = self.shared.model.read().unwrap_or_else(|e| e.into_inner());
                model.vhosts.get(DEFAULT_VHOST).map_or((0, 0, 0), |v| {
                    let bindings = v.exchanges.values().map(|x| x.bindings.len()).sum();
                    (v.exchanges.len(), bindings, v.queues.len())
                })
            };
            let mut names = self.sorted_names();
            names.truncate(TOTALS_QUEUES_MAX);
            let answers = snapshots(&self.handles(&names)).await;
            let mut o = AmqpOverview {
                connections: u64::try_from(self.shared.metrics.connections.get()).unwrap_or(0),
                channels: u64::try_from(self.shared.metrics.channels.get()).unwrap_or(0),
                consumers: u64::try_from(self.shared.metrics.consumers.get()).unwrap_or(0),
                exchanges,
                queues,
                bindings,
                ..AmqpOverview::default()
            };
            for s in answers.into_iter().flatten() {
                o.messages_ready += u64::from(s.ready);
                o.messages_unacked += s.unacked as u64;
                o.queues_counted += 1;
            }
            o
        })
    }

    fn exchanges(&self) -> Vec<AmqpExchange> {
        let model = self.shared.model.read().unwrap_or_else(|e| e.into_inner());
        let Some(v) = model.vhosts.get(DEFAULT_VHOST) else { return Vec::new() };
        let mut out: Vec<AmqpExchange> = v
            .exchanges
            .values()
            .map(|x| AmqpExchange {
                name: x.name.clone(),
                kind: x.kind.as_str().to_owned(),
                durable: x.durable,
                auto_delete: x.auto_delete,
                internal: x.internal,
                arguments: table_json(&x.arguments),
                bindings: x.bindings.len(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn bindings(&self) -> Vec<AmqpBinding> {
        let model = self.shared.model.read().unwrap_or_else(|e| e.into_inner());
        let Some(v) = model.vhosts.get(DEFAULT_VHOST) else { return Vec::new() };
        let mut out: Vec<AmqpBinding> = v
            .exchanges
            .values()
            .flat_map(|x| {
                x.bindings.iter().map(|b| {
                    let (destination, destination_type) = match &b.dest {
                        Dest::Queue(q) => (q.clone(), "queue"),
                        Dest::Exchange(e) => (e.clone(), "exchange"),
                    };
                    AmqpBinding {
                        source: x.name.clone(),
                        destination,
                        destination_type,
                        routing_key: b.key.clone(),
                        arguments: table_json(&b.arguments),
                    }
                })
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.source, &a.destination, &a.routing_key).cmp(&(&b.source, &b.destination, &b.routing_key))
        });
        out
    }

    fn queue_names(&self) -> Vec<String> {
        self.sorted_names()
    }

    fn queues(&self, mut names: Vec<String>) -> AmqpFuture<'_, Vec<AmqpQueue>> {
        Box::pin(async move {
            names.truncate(QUEUES_PER_CALL_MAX);
            let handles = self.handles(&names);
            let answers = snapshots(&handles).await;
            handles
                .iter()
                .zip(answers)
                .map(|(q, s)| AmqpQueue {
                    name: q.name.clone(),
                    durable: q.durable,
                    exclusive: q.exclusive_owner.is_some(),
                    auto_delete: q.auto_delete,
                    arguments: table_json(&q.arguments),
                    topic: q.topic.clone(),
                    group: q.group.clone(),
                    figures: s.map(figures),
                })
                .collect()
        })
    }
}

/// An AMQP field table as a JSON object.
pub fn table_json(t: &FieldTable) -> Value {
    Value::Object(t.inner().iter().map(|(k, v)| (k.as_str().to_owned(), value_json(v))).collect::<Map<_, _>>())
}

/// An AMQP value as JSON: numbers, strings, booleans, tables and arrays as themselves; a
/// decimal or byte array as text.
pub fn value_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::Float(f) => serde_json::Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number),
        AMQPValue::Double(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        AMQPValue::FieldTable(t) => table_json(t),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value_json).collect()),
        AMQPValue::Void => Value::Null,
        AMQPValue::DecimalValue(d) => Value::String(format!("{}e-{}", d.value, d.scale)),
        AMQPValue::ByteArray(b) => Value::String(b.as_slice().iter().map(|x| format!("{x:02x}")).collect()),
        other => {
            if let Some(s) = crate::model::value_text(other) {
                Value::String(s)
            } else if let Some(n) = crate::model::value_int(other) {
                i64::try_from(n).map_or_else(|_| Value::String(n.to_string()), |n| Value::Number(n.into()))
            } else {
                Value::Null
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! AMQP values as JSON.

    use amq_protocol::types::{FieldArray, LongString};
    use serde_json::json;

    use super::*;

    #[test]
    fn values_as_json() {
        let mut inner = FieldTable::default();
        inner.insert("n".into(), AMQPValue::ShortInt(-3));
        let rows = [
            (AMQPValue::LongString(LongString::from("dlx")), json!("dlx")),
            (AMQPValue::LongLongInt(60_000), json!(60_000)),
            (AMQPValue::LongUInt(7), json!(7)),
            (AMQPValue::Boolean(true), json!(true)),
            (AMQPValue::Void, json!(null)),
            (AMQPValue::Double(0.5), json!(0.5)),
            (AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::ShortShortUInt(1)])), json!([1])),
            (AMQPValue::FieldTable(inner), json!({"n": -3})),
        ];
        for (v, want) in rows {
            assert_eq!(value_json(&v), want, "{v:?}");
        }
    }
}
