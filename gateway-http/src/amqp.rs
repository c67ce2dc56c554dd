//! `/v1/amqp/...`: the AMQP door's exchanges, queues (depth, unacknowledged messages,
//! consumers) and bindings, read-only, for the web console. The door is reached through
//! [`AmqpConsole`] (implemented by `gateway-amqp`, handed over by `mqbroker`), so this crate does
//! not depend on it. With the door off (`amqpListenPort=0`) every route answers 404
//! `the AMQP door is off: amqpListenPort=0`.
//!
//! Lists are paged like the topics and groups lists (`offset`, `limit` up to 500, `q`: the name
//! contains it, any case) and answer `{<items>, total, offset, limit}`. Only the queues of the
//! page are asked for their figures; one that does not answer in time has `null` figures and
//! `"state": "no answer"`.

use std::collections::BTreeMap;

use broker::messaging::Messaging;
use broker::messaging::console::{AmqpBinding, AmqpConsole, AmqpExchange, AmqpQueue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use crate::console::page;
use crate::error::{Error, Result};
use crate::routes::json_response;
use crate::{Body, Shared};

/// `GET /v1/amqp/<what>`.
pub(crate) async fn get<M: Messaging>(
    shared: &Shared<M>,
    what: &str,
    query: &BTreeMap<String, String>,
) -> Result<Response<Body>> {
    let Some(amqp) = shared.amqp.as_deref() else { return Err(Error::AmqpOff) };
    match what {
        "overview" => Ok(json_response(StatusCode::OK, &overview_json(amqp).await)),
        "exchanges" => {
            let (offset, limit, q) = page(query)?;
            let all: Vec<AmqpExchange> =
                amqp.exchanges().into_iter().filter(|x| q.is_empty() || x.name.to_lowercase().contains(&q)).collect();
            let items: Vec<Value> = all.iter().skip(offset).take(limit).map(exchange_json).collect();
            Ok(paged("exchanges", items, all.len(), offset, limit))
        }
        "bindings" => {
            let (offset, limit, q) = page(query)?;
            let queue = query.get("queue");
            let all: Vec<AmqpBinding> = amqp
                .bindings()
                .into_iter()
                .filter(|b| queue.is_none_or(|n| b.destination_type == "queue" && &b.destination == n))
                .filter(|b| {
                    q.is_empty()
                        || [&b.source, &b.destination, &b.routing_key].iter().any(|s| s.to_lowercase().contains(&q))
                })
                .collect();
            let items: Vec<Value> = all.iter().skip(offset).take(limit).map(binding_json).collect();
            Ok(paged("bindings", items, all.len(), offset, limit))
        }
        "queues" => {
            let (offset, limit, q) = page(query)?;
            let names: Vec<String> = amqp
                .queue_names()
                .into_iter()
                .filter(|n| query.get("name").is_none_or(|want| n == want))
                .filter(|n| q.is_empty() || n.to_lowercase().contains(&q))
                .collect();
            let total = names.len();
            let shown: Vec<String> = names.into_iter().skip(offset).take(limit).collect();
            let items: Vec<Value> = amqp.queues(shown).await.iter().map(queue_json).collect();
            Ok(paged("queues", items, total, offset, limit))
        }
        _ => Err(Error::NotFound(format!("GET /v1/amqp/{what}"))),
    }
}

fn paged(key: &str, items: Vec<Value>, total: usize, offset: usize, limit: usize) -> Response<Body> {
    let mut v = json!({"total": total, "offset": offset, "limit": limit});
    v[key] = Value::Array(items);
    json_response(StatusCode::OK, &v)
}

async fn overview_json(amqp: &dyn AmqpConsole) -> Value {
    let o = amqp.overview().await;
    json!({
        "connections": o.connections, "channels": o.channels, "consumers": o.consumers,
        "exchanges": o.exchanges, "queues": o.queues, "bindings": o.bindings,
        "messages_ready": o.messages_ready, "messages_unacknowledged": o.messages_unacked,
        "queues_counted": o.queues_counted,
    })
}

fn exchange_json(x: &AmqpExchange) -> Value {
    json!({"name": x.name, "type": x.kind, "durable": x.durable, "auto_delete": x.auto_delete,
           "internal": x.internal, "arguments": x.arguments, "bindings": x.bindings})
}

fn binding_json(b: &AmqpBinding) -> Value {
    json!({"source": b.source, "destination": b.destination, "destination_type": b.destination_type,
           "routing_key": b.routing_key, "arguments": b.arguments})
}

fn queue_json(q: &AmqpQueue) -> Value {
    let f = q.figures.as_ref();
    let consumers: Vec<Value> = f
        .map(|f| {
            f.consumers
                .iter()
                .map(|c| {
                    json!({"consumer_tag": c.tag, "connection": c.connection, "peer": c.peer, "channel": c.channel,
                           "prefetch_count": c.prefetch, "channel_prefetch_count": c.channel_prefetch,
                           "ack_mode": if c.manual_ack { "manual" } else { "auto" }, "exclusive": c.exclusive,
                           "messages_unacknowledged": c.unacked})
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "name": q.name, "durable": q.durable, "exclusive": q.exclusive, "auto_delete": q.auto_delete,
        "arguments": q.arguments, "topic": q.topic, "group": q.group,
        "state": if f.is_some() { "running" } else { "no answer" },
        "messages_ready": f.map(|f| f.ready),
        "messages_unacknowledged": f.map(|f| f.unacked),
        "messages": f.map(|f| f.ready + f.unacked),
        "consumers": f.map(|f| f.consumers.len()),
        "consumer_details": consumers,
    })
}
