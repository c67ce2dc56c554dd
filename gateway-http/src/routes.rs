//! The routes: parse the request, call [`Messaging`], shape the JSON answer. Every route has a
//! template (`/v1/topics/{topic}/messages`) that labels its metrics; raw paths never do.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use broker::messaging::{self, GroupInfo, Message, Messaging, OutgoingMessage, ReceiveRequest};
use broker::metrics::Metrics;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::{Body, Shared, console};

/// The producer group of HTTP publishes when the request names none.
pub const DEFAULT_PRODUCER_GROUP: &str = "HTTP_PRODUCER";
/// Receive defaults: messages, lease (30 s as the draft contract), wait.
const RECEIVE_MAX_DEFAULT: usize = 16;
const INVISIBLE_MS_DEFAULT: u64 = 30_000;
/// Messages per pull when `max` is not given.
const PULL_MAX_DEFAULT: usize = 32;
/// How long one round of a stream waits before it sends a keep-alive comment.
const STREAM_PING_MS: u64 = 15_000;
/// Messages one query by key returns when `max` is not given.
const QUERY_MAX_DEFAULT: usize = 32;
/// Queues of a topic created over HTTP without counts (RocketMQ's `updateTopic` default), and the
/// most one may ask for.
const TOPIC_QUEUES_DEFAULT: u32 = 8;
const TOPIC_QUEUES_MAX: u32 = 1024;
/// A new group's `retryMaxTimes` and retry queues (RocketMQ's defaults).
const GROUP_RETRY_MAX_TIMES_DEFAULT: i32 = 16;
const GROUP_RETRY_QUEUES_DEFAULT: u32 = 1;
/// A refused body up to this size is read and dropped before answering 413 (8 MiB).
const DRAIN_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Headers of a raw publish.
const HEADER_TAG: &str = "rmq-tag";
const HEADER_KEYS: &str = "rmq-keys";
const HEADER_PROPERTY_PREFIX: &str = "rmq-property-";
const HEADER_DELAY_MS: &str = "rmq-delay-ms";
const HEADER_QUEUE_ID: &str = "rmq-queue-id";
const HEADER_TRANSACTIONAL: &str = "rmq-transactional";
const HEADER_PRODUCER_GROUP: &str = "rmq-producer-group";

/// Plugin administration over HTTP (implemented on `broker::plugin::Plugins`).
pub trait PluginAdmin: Send + Sync {
    /// Deploys (or replaces) `name` from the component bytes; `role` if the caller insists on one.
    fn deploy(&self, name: &str, wasm: &[u8], params: Vec<(String, String)>, role: Option<&str>) -> PluginResult;
    fn list(&self) -> PluginResult;
    fn describe(&self, name: &str) -> PluginResult;
    fn remove(&self, name: &str) -> PluginResult;
    /// Binds `name` in a role to a group and/or topic.
    fn bind(&self, name: &str, spec: &Value) -> PluginResult;
    fn unbind(&self, name: &str, spec: &Value) -> PluginResult;
    /// The last lines of a plugin's log (`{"lines": [...]}`).
    fn logs(&self, name: &str) -> PluginResult {
        Err(PluginFailure::NotFound(format!("no log for plugin {name}")))
    }
}

/// What a plugin operation answers: JSON, or why not.
pub type PluginResult = std::result::Result<Value, PluginFailure>;

/// Why a plugin operation failed.
#[derive(Debug)]
pub enum PluginFailure {
    NotFound(String),
    BadRequest(String),
    Conflict(String),
}

impl From<PluginFailure> for Error {
    fn from(f: PluginFailure) -> Error {
        match f {
            PluginFailure::NotFound(m) => Error::PluginNotFound(m),
            PluginFailure::BadRequest(m) => Error::Plugin(m),
            PluginFailure::Conflict(m) => Error::PluginConflict(m),
        }
    }
}

/// Serves one request and records its metrics.
pub(crate) async fn handle<M: Messaging>(shared: &Arc<Shared<M>>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let segments: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    let route = route_template(&segments);
    if matches!(method, Method::GET | Method::HEAD)
        && let Some(r) = console_file(&path, req.headers())
    {
        shared.metrics.record_http(method.as_str(), route, r.status().as_u16(), started.elapsed());
        return r;
    }
    let response = match shared.in_flight.try_acquire() {
        Ok(_permit) => match dispatch(shared, req, &segments).await {
            Ok(r) => r,
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::warn!(%method, route, error = %e, "HTTP request failed");
                }
                e.into_response()
            }
        },
        Err(_) => Error::Busy { retry_after_s: shared.limits.retry_after_s }.into_response(),
    };
    shared.metrics.record_http(method.as_str(), route, response.status().as_u16(), started.elapsed());
    response
}

/// The console's files and the redirects to them.
fn console_file(path: &str, headers: &HeaderMap) -> Option<Response<Body>> {
    match path {
        "/" | "/dashboard" => Some(crate::dashboard::redirect()),
        _ => crate::dashboard::file(path.strip_prefix(crate::dashboard::PREFIX)?, headers)
            .or_else(|| Some(Error::NotFound(path.to_owned()).into_response())),
    }
}

/// `GET /metrics` and `/livez` only (the name server's scrape port).
pub(crate) fn metrics_only(metrics: &Metrics, req: &Request<Incoming>) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => metrics_response(metrics),
        (&Method::GET, "/livez") => json_response(StatusCode::OK, &json!({"status": "ok"})),
        _ => Error::NotFound(req.uri().path().to_owned()).into_response(),
    }
}

fn metrics_response(metrics: &Metrics) -> Response<Body> {
    Response::builder()
        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
        .body(Body::full(metrics.render()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// The template of a path, for metric labels (bounded: one of the routes, or `other`).
pub fn route_template(s: &[String]) -> &'static str {
    let s: Vec<&str> = s.iter().map(String::as_str).collect();
    match s[..] {
        [] => "/",
        ["dashboard", ..] => "/dashboard/",
        ["livez"] => "/livez",
        ["readyz"] => "/readyz",
        ["metrics"] => "/metrics",
        ["v1", "openapi.json"] => "/v1/openapi.json",
        ["v1", "cluster"] => "/v1/cluster",
        ["v1", "cluster", "overview"] => "/v1/cluster/overview",
        ["v1", "session"] => "/v1/session",
        ["v1", "topics", _, "route"] => "/v1/topics/{topic}/route",
        ["v1", "groups", _, "consumers"] => "/v1/groups/{group}/consumers",
        ["v1", "groups", _, "offsets", "reset"] => "/v1/groups/{group}/offsets/reset",
        ["v1", "groups", _, "dead-letters", "resend"] => "/v1/groups/{group}/dead-letters/resend",
        ["v1", "plugins", _, "logs"] => "/v1/plugins/{plugin}/logs",
        ["v1", "amqp", "overview"] => "/v1/amqp/overview",
        ["v1", "amqp", "exchanges"] => "/v1/amqp/exchanges",
        ["v1", "amqp", "queues"] => "/v1/amqp/queues",
        ["v1", "amqp", "bindings"] => "/v1/amqp/bindings",
        ["v1", "topics"] => "/v1/topics",
        ["v1", "topics", _] => "/v1/topics/{topic}",
        ["v1", "topics", _, "messages"] => "/v1/topics/{topic}/messages",
        ["v1", "topics", _, "messages", _] => "/v1/topics/{topic}/messages/{messageId}",
        ["v1", "topics", _, "queues"] => "/v1/topics/{topic}/queues",
        ["v1", "topics", _, "queues", _, "messages"] => "/v1/topics/{topic}/queues/{queueId}/messages",
        ["v1", "groups"] => "/v1/groups",
        ["v1", "groups", _] => "/v1/groups/{group}",
        ["v1", "groups", _, "lag"] => "/v1/groups/{group}/lag",
        ["v1", "groups", _, "offsets"] => "/v1/groups/{group}/offsets",
        ["v1", "groups", _, "topics", _, "receive"] => "/v1/groups/{group}/topics/{topic}/receive",
        ["v1", "groups", _, "topics", _, "stream"] => "/v1/groups/{group}/topics/{topic}/stream",
        ["v1", "groups", _, "topics", _, "ack"] => "/v1/groups/{group}/topics/{topic}/ack",
        ["v1", "groups", _, "topics", _, "nack"] => "/v1/groups/{group}/topics/{topic}/nack",
        ["v1", "groups", _, "topics", _, "change-invisible-duration"] => {
            "/v1/groups/{group}/topics/{topic}/change-invisible-duration"
        }
        ["v1", "groups", _, "topics", _, "messages", _] => "/v1/groups/{group}/topics/{topic}/messages/{receiptHandle}",
        ["v1", "transactions", _, "commit"] => "/v1/transactions/{transactionId}/commit",
        ["v1", "transactions", _, "rollback"] => "/v1/transactions/{transactionId}/rollback",
        ["v1", "plugins"] => "/v1/plugins",
        ["v1", "plugins", _] => "/v1/plugins/{plugin}",
        ["v1", "plugins", _, "bindings"] => "/v1/plugins/{plugin}/bindings",
        _ => "other",
    }
}

async fn dispatch<M: Messaging>(
    shared: &Arc<Shared<M>>,
    req: Request<Incoming>,
    s: &[String],
) -> Result<Response<Body>> {
    let m = &*shared.messaging;
    let method = req.method().clone();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let seg: Vec<&str> = s.iter().map(String::as_str).collect();
    let not_allowed = || Error::MethodNotAllowed { method: method.to_string(), route: route_template(s).to_owned() };
    let caller = console::authorize(shared, &req, &seg)?;
    match (&method, &seg[..]) {
        (_, ["v1", "session"]) => console::session(shared, req, &caller).await,
        (&Method::GET, ["v1", "cluster", "overview"]) => console::cluster_overview(m).await,
        (&Method::GET, ["v1", "topics"]) if console::paged(&query) => console::topics_page(m, &query).await,
        (&Method::GET, ["v1", "groups"]) if console::paged(&query) => console::groups_page(m, &query).await,
        (&Method::GET, ["v1", "topics", topic, "route"]) => console::topic_route(m, topic).await,
        (&Method::GET, ["v1", "groups", group, "consumers"]) => console::group_consumers(m, group).await,
        (&Method::POST, ["v1", "groups", group, "offsets", "reset"]) => {
            console::reset_offsets(shared, req, group, &caller).await
        }
        (&Method::POST, ["v1", "groups", group, "dead-letters", "resend"]) => {
            console::resend(shared, req, group, &caller).await
        }
        (&Method::GET, ["v1", "amqp", what @ ("overview" | "exchanges" | "queues" | "bindings")]) => {
            crate::amqp::get(shared, what, &query).await
        }
        (&Method::GET, ["livez"]) => Ok(json_response(StatusCode::OK, &json!({"status": "ok"}))),
        (&Method::GET, ["readyz"]) => {
            let r = m.readiness().await;
            let ok = r.store_recovered && r.registered && r.disk_ok;
            let body = json!({
                "status": if ok { "ok" } else { "not ready" },
                "checks": {
                    "store_recovered": r.store_recovered,
                    "registered_with_name_server": r.registered,
                    "disk_below_limit": r.disk_ok,
                    "writable": r.writable,
                },
            });
            Ok(json_response(if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body))
        }
        (&Method::GET, ["metrics"]) => Ok(metrics_response(&shared.metrics)),
        (&Method::GET, ["v1", "openapi.json"]) => Ok(json_response(StatusCode::OK, &crate::openapi::document())),
        (&Method::GET, ["v1", "cluster"]) => {
            let brokers: Vec<Value> = m
                .cluster()
                .await?
                .into_iter()
                .map(|b| {
                    json!({"cluster": b.cluster, "broker_name": b.name, "broker_id": b.id, "addr": b.addr,
                           "role": b.role, "name_servers": b.name_servers})
                })
                .collect();
            Ok(json_response(StatusCode::OK, &json!({ "brokers": brokers })))
        }
        (&Method::GET, ["v1", "topics"]) => {
            let topics: Vec<Value> = m.topics().await?.iter().map(topic_json).collect();
            Ok(json_response(StatusCode::OK, &json!({ "topics": topics })))
        }
        (_, ["v1", "topics", topic]) => match method {
            Method::GET => Ok(json_response(StatusCode::OK, &topic_json(&m.topic(topic).await?))),
            Method::PUT => {
                #[derive(Deserialize)]
                struct Spec {
                    read_queues: Option<u32>,
                    write_queues: Option<u32>,
                }
                let body = read_body(shared, req).await?;
                let spec: Spec =
                    if body.is_empty() { Spec { read_queues: None, write_queues: None } } else { parse_json(&body)? };
                let queues = |q: Option<u32>| q.unwrap_or(TOPIC_QUEUES_DEFAULT).clamp(1, TOPIC_QUEUES_MAX);
                let t = m.put_topic(topic, queues(spec.read_queues), queues(spec.write_queues)).await?;
                Ok(json_response(StatusCode::OK, &topic_json(&t)))
            }
            Method::DELETE => {
                m.delete_topic(topic).await?;
                Ok(no_content())
            }
            _ => Err(not_allowed()),
        },
        (_, ["v1", "topics", topic, "messages"]) => match method {
            Method::POST => publish(shared, req, topic, &query).await,
            Method::GET if !query.contains_key("key") && (query.contains_key("begin") || query.contains_key("end")) => {
                console::messages_by_time(m, topic, &query).await
            }
            Method::GET => {
                let key = query
                    .get("key")
                    .ok_or_else(|| Error::BadParameter("the query needs key= (or begin= and end=)".into()))?;
                let max = query_num(&query, "max")?.map_or(QUERY_MAX_DEFAULT, |n: usize| n);
                let found: Vec<Value> =
                    m.messages_by_key(topic, key, max).await?.iter().map(|msg| message_json(msg, None)).collect();
                Ok(json_response(StatusCode::OK, &json!({ "messages": found })))
            }
            _ => Err(not_allowed()),
        },
        (&Method::GET, ["v1", "topics", topic, "messages", id]) => {
            let msg = m.message_by_id(topic, id).await?;
            if accepts(req.headers(), "application/octet-stream") {
                return Ok(Response::builder()
                    .header("content-type", "application/octet-stream")
                    .body(Body::full(msg.body))
                    .unwrap_or_else(|_| Response::new(Body::empty())));
            }
            let delivery = console::delivery_json(m, &msg).await;
            Ok(json_response(StatusCode::OK, &message_json(&msg, Some(json!({ "delivery": delivery })))))
        }
        (&Method::GET, ["v1", "topics", topic, "queues"]) => {
            let t = m.topic(topic).await?;
            Ok(json_response(StatusCode::OK, &json!({ "queues": queues_json(&t) })))
        }
        (&Method::GET, ["v1", "topics", topic, "queues", queue, "messages"]) => {
            let queue: u32 = queue.parse().map_err(|_| Error::BadParameter(format!("queue id {queue:?}")))?;
            pull(shared, &req, topic, queue, &query).await
        }
        (&Method::GET, ["v1", "groups"]) => {
            let groups: Vec<Value> = m.groups().await?.iter().map(group_json).collect();
            Ok(json_response(StatusCode::OK, &json!({ "groups": groups })))
        }
        (_, ["v1", "groups", group]) => match method {
            Method::GET => Ok(json_response(StatusCode::OK, &group_json(&m.group(group).await?))),
            Method::PUT => {
                #[derive(Deserialize)]
                struct Spec {
                    retry_max_times: Option<i32>,
                    consume_enable: Option<bool>,
                    retry_queues: Option<u32>,
                }
                let body = read_body(shared, req).await?;
                let spec: Spec = if body.is_empty() {
                    Spec { retry_max_times: None, consume_enable: None, retry_queues: None }
                } else {
                    parse_json(&body)?
                };
                let old = m.group(group).await.ok();
                let info = GroupInfo {
                    name: (*group).to_owned(),
                    consume_enable: spec.consume_enable.or(old.as_ref().map(|o| o.consume_enable)).unwrap_or(true),
                    retry_max_times: spec
                        .retry_max_times
                        .or(old.as_ref().map(|o| o.retry_max_times))
                        .unwrap_or(GROUP_RETRY_MAX_TIMES_DEFAULT),
                    retry_queues: spec
                        .retry_queues
                        .or(old.as_ref().map(|o| o.retry_queues))
                        .unwrap_or(GROUP_RETRY_QUEUES_DEFAULT),
                };
                Ok(json_response(StatusCode::OK, &group_json(&m.put_group(info).await?)))
            }
            Method::DELETE => {
                m.delete_group(group).await?;
                Ok(no_content())
            }
            _ => Err(not_allowed()),
        },
        (&Method::GET, ["v1", "groups", group, "lag"]) => {
            let progress = m.progress(group, query.get("topic").map(String::as_str)).await?;
            let total: u64 = progress.iter().map(|p| p.lag).sum();
            let queues: Vec<Value> = progress
                .iter()
                .map(|p| {
                    json!({"topic": p.topic, "queue_id": p.queue_id, "broker_offset": p.broker_offset,
                           "consumer_offset": p.consumer_offset, "committed": p.consumer_offset >= 0,
                           "lag": p.lag, "inflight": p.inflight})
                })
                .collect();
            Ok(json_response(StatusCode::OK, &json!({"group": group, "total_lag": total, "queues": queues})))
        }
        (_, ["v1", "groups", group, "offsets"]) => match method {
            Method::GET => {
                let progress = m.progress(group, query.get("topic").map(String::as_str)).await?;
                let offsets: Vec<Value> = progress
                    .iter()
                    .map(|p| json!({"topic": p.topic, "queue_id": p.queue_id, "offset": p.consumer_offset}))
                    .collect();
                Ok(json_response(StatusCode::OK, &json!({ "offsets": offsets })))
            }
            Method::PUT => {
                #[derive(Deserialize)]
                struct Commit {
                    topic: String,
                    queue_id: u32,
                    offset: u64,
                }
                let c: Commit = parse_json(&read_body(shared, req).await?)?;
                m.commit_offset(group, &c.topic, c.queue_id, c.offset).await?;
                Ok(no_content())
            }
            _ => Err(not_allowed()),
        },
        (&Method::POST, ["v1", "groups", group, "topics", topic, "receive"]) => {
            #[derive(Deserialize, Default)]
            struct Receive {
                max: Option<usize>,
                invisible_ms: Option<u64>,
                wait_ms: Option<u64>,
                tag: Option<String>,
            }
            let body = read_body(shared, req).await?;
            let r: Receive = if body.is_empty() { Receive::default() } else { parse_json(&body)? };
            let request = ReceiveRequest {
                group: (*group).to_owned(),
                topic: (*topic).to_owned(),
                max: r.max.unwrap_or(RECEIVE_MAX_DEFAULT),
                invisible_ms: r.invisible_ms.unwrap_or(INVISIBLE_MS_DEFAULT),
                wait_ms: r.wait_ms.unwrap_or(0),
                tag_filter: r.tag,
            };
            let _poll = long_poll_slot(shared, request.wait_ms)?;
            let got = m.receive(request).await?;
            let messages: Vec<Value> = got.iter().map(received_json).collect();
            Ok(json_response(StatusCode::OK, &json!({ "messages": messages })))
        }
        (&Method::GET, ["v1", "groups", group, "topics", topic, "stream"]) => {
            receive_stream(shared, &req, group, topic, &query)
        }
        (&Method::POST, ["v1", "groups", group, "topics", topic, "ack"]) => {
            #[derive(Deserialize)]
            struct Acks {
                receipt_handles: Vec<String>,
            }
            let a: Acks = parse_json(&read_body(shared, req).await?)?;
            let mut results = Vec::with_capacity(a.receipt_handles.len());
            for h in &a.receipt_handles {
                results.push((h.clone(), m.ack(group, topic, h).await));
            }
            Ok(multi_status(results))
        }
        (&Method::DELETE, ["v1", "groups", group, "topics", topic, "messages", handle]) => {
            m.ack(group, topic, handle).await?;
            Ok(no_content())
        }
        (&Method::POST, ["v1", "groups", group, "topics", topic, "nack"]) => {
            #[derive(Deserialize)]
            struct Nacks {
                receipt_handles: Vec<String>,
                delay_ms: Option<u64>,
            }
            let n: Nacks = parse_json(&read_body(shared, req).await?)?;
            let mut results = Vec::with_capacity(n.receipt_handles.len());
            for h in &n.receipt_handles {
                results.push((h.clone(), m.nack(group, topic, h, n.delay_ms.unwrap_or(0)).await));
            }
            Ok(multi_status(results))
        }
        (&Method::POST, ["v1", "groups", group, "topics", topic, "change-invisible-duration"]) => {
            #[derive(Deserialize)]
            struct Change {
                receipt_handle: String,
                invisible_ms: u64,
            }
            let c: Change = parse_json(&read_body(shared, req).await?)?;
            let lease = m.change_invisible(group, topic, &c.receipt_handle, c.invisible_ms).await?;
            Ok(json_response(
                StatusCode::OK,
                &json!({"receipt_handle": lease.receipt_handle, "invisible_until": rfc3339(lease.invisible_until_ms)}),
            ))
        }
        (&Method::POST, ["v1", "transactions", id, action @ ("commit" | "rollback")]) => {
            m.end_transaction(id, *action == "commit").await?;
            Ok(no_content())
        }
        (_, ["v1", "plugins", ..]) => plugins(shared, req, &seg[2..], &query).await,
        (_, [..]) if route_template(s) != "other" => Err(not_allowed()),
        _ => Err(Error::NotFound(format!("{method} /{}", s.join("/")))),
    }
}

/// A long-poll or stream slot; `None` when the request does not wait.
fn long_poll_slot<M: Messaging>(shared: &Shared<M>, wait_ms: u64) -> Result<Option<tokio::sync::SemaphorePermit<'_>>> {
    if wait_ms == 0 {
        return Ok(None);
    }
    shared.long_polls.try_acquire().map(Some).map_err(|_| Error::Busy { retry_after_s: shared.limits.retry_after_s })
}

async fn publish<M: Messaging>(
    shared: &Arc<Shared<M>>,
    req: Request<Incoming>,
    topic: &str,
    query: &BTreeMap<String, String>,
) -> Result<Response<Body>> {
    let headers = req.headers().clone();
    let content_type = header_str(&headers, "content-type").unwrap_or("application/octet-stream").to_ascii_lowercase();
    let group = header_str(&headers, HEADER_PRODUCER_GROUP)
        .map(str::to_owned)
        .or_else(|| query.get("producer_group").cloned())
        .unwrap_or_else(|| DEFAULT_PRODUCER_GROUP.to_owned());
    let body = read_body(shared, req).await?;
    let (messages, batch) = if content_type.starts_with("application/json") {
        parse_publish_json(&body)?
    } else if content_type.starts_with("multipart/") {
        return Err(Error::UnsupportedMediaType(format!("{content_type} is not accepted for messages")));
    } else {
        (vec![raw_message(&headers, body)?], false)
    };
    let max = shared.messaging.message_bytes_max();
    if let Some(m) = messages.iter().find(|m| m.body.len() > max) {
        return Err(messaging::Error::BodyTooLarge { bytes: m.body.len(), max }.into());
    }
    let published = shared.messaging.publish(topic, messages, &group).await?;
    let results: Vec<PublishedJson<'_>> = published
        .iter()
        .map(|p| PublishedJson {
            status: p.status,
            message_id: &p.message_id,
            offset_message_id: &p.offset_message_id,
            topic: &p.topic,
            queue_id: p.queue_id,
            queue_offset: p.queue_offset,
            durability: p.durability.as_str(),
            transaction_id: p.transaction_id.as_deref(),
        })
        .collect();
    // Serialized straight from the typed answer (the hot path of a publish).
    let (status, text) = if batch {
        (StatusCode::OK, serde_json::to_string(&BatchJson { results: &results }))
    } else {
        (StatusCode::CREATED, serde_json::to_string(&results.first()))
    };
    let text = text.map_err(|e| messaging::Error::Internal(e.to_string()))?;
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::full(text))
        .unwrap_or_else(|_| Response::new(Body::empty())))
}

/// One published message as answered.
#[derive(serde::Serialize)]
struct PublishedJson<'a> {
    status: &'static str,
    message_id: &'a str,
    offset_message_id: &'a str,
    topic: &'a str,
    queue_id: u32,
    queue_offset: u64,
    durability: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_id: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct BatchJson<'a> {
    results: &'a [PublishedJson<'a>],
}

#[derive(Deserialize)]
struct JsonMessage {
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    body_encoding: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    queue_id: Option<u32>,
    #[serde(default)]
    transaction: Option<Value>,
    /// A batch: the messages (the other fields of the outer object are then ignored).
    #[serde(default)]
    messages: Option<Vec<JsonMessage>>,
}

/// One message, or a batch (`messages`), parsed straight into the typed shape (no intermediate
/// JSON tree: this is the hot path of a batch publish).
fn parse_publish_json(body: &[u8]) -> Result<(Vec<OutgoingMessage>, bool)> {
    let mut top: JsonMessage = serde_json::from_slice(body).map_err(|e| Error::BadJson(e.to_string()))?;
    if let Some(list) = top.messages.take() {
        if list.is_empty() {
            return Err(Error::BadParameter("\"messages\" is empty".into()));
        }
        if list.iter().any(|m| m.messages.is_some()) {
            return Err(Error::BadParameter("a message of a batch cannot hold \"messages\"".into()));
        }
        let msgs = list.into_iter().map(json_message).collect::<Result<Vec<_>>>()?;
        return Ok((msgs, true));
    }
    Ok((vec![json_message(top)?], false))
}

fn json_message(j: JsonMessage) -> Result<OutgoingMessage> {
    let encoding = j.body_encoding.as_deref().unwrap_or("utf8");
    let body = match (j.body, encoding) {
        (None, _) => Bytes::new(),
        (Some(Value::String(s)), "base64") => {
            Bytes::from(BASE64.decode(s.as_bytes()).map_err(|e| Error::BadBase64(e.to_string()))?)
        }
        (Some(Value::String(s)), "utf8" | "text") => Bytes::from(s),
        (Some(v), "json") => Bytes::from(v.to_string()),
        (Some(v @ (Value::Object(_) | Value::Array(_))), "utf8") => Bytes::from(v.to_string()),
        (Some(_), other) => {
            return Err(Error::BadParameter(format!("body_encoding {other:?} is not utf8, base64 or json")));
        }
    };
    let transactional = match j.transaction {
        None | Some(Value::Bool(false)) | Some(Value::Null) => false,
        Some(_) => true,
    };
    Ok(OutgoingMessage {
        body,
        tag: j.tag,
        keys: j.keys,
        properties: j.properties.into_iter().collect(),
        delay_ms: j.delay_ms,
        queue_id: j.queue_id,
        transactional,
    })
}

fn raw_message(headers: &HeaderMap, body: Bytes) -> Result<OutgoingMessage> {
    let num = |name: &str| -> Result<Option<u64>> {
        header_str(headers, name)
            .map(|v| v.trim().parse::<u64>().map_err(|_| Error::BadParameter(format!("header {name}: {v:?}"))))
            .transpose()
    };
    let mut properties = Vec::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(HEADER_PROPERTY_PREFIX) {
            let value = value.to_str().map_err(|_| Error::BadParameter(format!("header {name} is not text")))?;
            properties.push((key.to_owned(), value.to_owned()));
        }
    }
    Ok(OutgoingMessage {
        body,
        tag: header_str(headers, HEADER_TAG).map(str::to_owned),
        keys: header_str(headers, HEADER_KEYS)
            .map(|k| k.split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default(),
        properties,
        delay_ms: num(HEADER_DELAY_MS)?,
        queue_id: num(HEADER_QUEUE_ID)?.map(|q| q.min(u32::MAX as u64) as u32),
        transactional: header_str(headers, HEADER_TRANSACTIONAL).is_some_and(|v| v.eq_ignore_ascii_case("true")),
    })
}

/// The stream format a request asks for with `Accept`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StreamKind {
    Sse,
    Ndjson,
}

fn stream_kind(headers: &HeaderMap) -> Option<StreamKind> {
    if accepts(headers, "text/event-stream") {
        Some(StreamKind::Sse)
    } else if accepts(headers, "application/x-ndjson") {
        Some(StreamKind::Ndjson)
    } else {
        None
    }
}

fn stream_response(kind: StreamKind, body: Body) -> Response<Body> {
    let ct = match kind {
        StreamKind::Sse => "text/event-stream",
        StreamKind::Ndjson => "application/x-ndjson",
    };
    Response::builder()
        .header("content-type", ct)
        .header("cache-control", "no-cache")
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn event(kind: StreamKind, id: &str, data: &Value) -> Bytes {
    match kind {
        StreamKind::Sse => Bytes::from(format!("event: message\nid: {id}\ndata: {data}\n\n")),
        StreamKind::Ndjson => Bytes::from(format!("{data}\n")),
    }
}

fn ping(kind: StreamKind) -> Option<Bytes> {
    (kind == StreamKind::Sse).then(|| Bytes::from_static(b": ping\n\n"))
}

async fn pull<M: Messaging>(
    shared: &Arc<Shared<M>>,
    req: &Request<Incoming>,
    topic: &str,
    queue: u32,
    query: &BTreeMap<String, String>,
) -> Result<Response<Body>> {
    let m = &shared.messaging;
    let t = m.topic(topic).await?;
    let bounds = t.queues.iter().find(|(q, _, _)| *q == queue).map(|(_, lo, hi)| (*lo, *hi));
    let Some((min, max_offset)) = bounds else {
        return Err(messaging::Error::BadRequest(format!("queue {queue} of topic {topic} does not exist")).into());
    };
    let last_event = header_str(req.headers(), "last-event-id").and_then(|v| v.trim().parse::<u64>().ok());
    let offset = match (last_event, query.get("offset").map(String::as_str)) {
        (Some(id), _) => id + 1,
        (None, None | Some("earliest")) => min,
        (None, Some("latest")) => max_offset,
        (None, Some(o)) => o.parse().map_err(|_| Error::BadParameter(format!("offset {o:?}")))?,
    };
    let max = query_num(query, "max")?.unwrap_or(PULL_MAX_DEFAULT);
    let wait_ms: u64 = query_num(query, "wait_ms")?.unwrap_or(0);
    if let Some(kind) = stream_kind(req.headers()) {
        if shared.long_polls.available_permits() == 0 {
            return Err(Error::Busy { retry_after_s: shared.limits.retry_after_s });
        }
        let (tx, body) = Body::channel();
        let shared = shared.clone();
        let topic = topic.to_owned();
        tokio::spawn(async move {
            let Ok(_slot) = shared.long_polls.try_acquire() else { return };
            let mut offset = offset;
            loop {
                let batch = match shared.messaging.pull(&topic, queue, offset, max, STREAM_PING_MS).await {
                    Ok(b) => b,
                    Err(_) => return,
                };
                if batch.messages.is_empty()
                    && let Some(p) = ping(kind)
                    && tx.send(p).await.is_err()
                {
                    return;
                }
                for msg in &batch.messages {
                    let chunk = event(kind, &msg.queue_offset.to_string(), &message_json(msg, None));
                    if tx.send(chunk).await.is_err() {
                        return;
                    }
                }
                offset = batch.next_offset;
                if tx.is_closed() {
                    return;
                }
            }
        });
        return Ok(stream_response(kind, body));
    }
    let _poll = long_poll_slot(shared, wait_ms)?;
    let batch = m.pull(topic, queue, offset, max, wait_ms).await?;
    let messages: Vec<Value> = batch.messages.iter().map(|msg| message_json(msg, None)).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"messages": messages, "next_offset": batch.next_offset, "min_offset": batch.min_offset,
                "max_offset": batch.max_offset, "offset_moved": batch.offset_moved}),
    ))
}

fn receive_stream<M: Messaging>(
    shared: &Arc<Shared<M>>,
    req: &Request<Incoming>,
    group: &str,
    topic: &str,
    query: &BTreeMap<String, String>,
) -> Result<Response<Body>> {
    let kind = stream_kind(req.headers()).unwrap_or(StreamKind::Sse);
    let invisible_ms = query_num(query, "invisible_ms")?.unwrap_or(INVISIBLE_MS_DEFAULT);
    let max = query_num(query, "max")?.unwrap_or(RECEIVE_MAX_DEFAULT);
    if shared.long_polls.available_permits() == 0 {
        return Err(Error::Busy { retry_after_s: shared.limits.retry_after_s });
    }
    let (tx, body) = Body::channel();
    let shared = shared.clone();
    let (group, topic, tag) = (group.to_owned(), topic.to_owned(), query.get("tag").cloned());
    tokio::spawn(async move {
        let Ok(_slot) = shared.long_polls.try_acquire() else { return };
        loop {
            let request = ReceiveRequest {
                group: group.clone(),
                topic: topic.clone(),
                max,
                invisible_ms,
                wait_ms: STREAM_PING_MS,
                tag_filter: tag.clone(),
            };
            let got = match shared.messaging.receive(request).await {
                Ok(g) => g,
                Err(e) => {
                    let _ = tx.send(event(kind, "error", &json!({"error": e.to_string()}))).await;
                    return;
                }
            };
            if got.is_empty()
                && let Some(p) = ping(kind)
                && tx.send(p).await.is_err()
            {
                return;
            }
            for r in &got {
                if tx.send(event(kind, &r.receipt_handle, &received_json(r))).await.is_err() {
                    return;
                }
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    Ok(stream_response(kind, body))
}

async fn plugins<M: Messaging>(
    shared: &Arc<Shared<M>>,
    req: Request<Incoming>,
    rest: &[&str],
    query: &BTreeMap<String, String>,
) -> Result<Response<Body>> {
    let Some(p) = shared.plugins.clone() else {
        return Err(messaging::Error::NotSupported("plugins are not enabled on this broker".into()).into());
    };
    let method = req.method().clone();
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    match (&method, rest) {
        (&Method::GET, []) => ok(p.list()?),
        (&Method::GET, [name]) => ok(p.describe(name)?),
        (&Method::GET, [name, "logs"]) => ok(p.logs(name)?),
        (&Method::PUT, [name]) => {
            let role = query.get("role").cloned();
            let params: Vec<(String, String)> =
                query.iter().filter_map(|(k, v)| k.strip_prefix("param.").map(|k| (k.to_owned(), v.clone()))).collect();
            let wasm = read_body(shared, req).await?;
            let v = p.deploy(name, &wasm, params, role.as_deref())?;
            Ok(json_response(StatusCode::CREATED, &v))
        }
        (&Method::DELETE, [name]) => {
            p.remove(name)?;
            Ok(no_content())
        }
        (&Method::POST | &Method::PUT, [name, "bindings"]) => {
            let spec: Value = parse_json(&read_body(shared, req).await?)?;
            ok(p.bind(name, &spec)?)
        }
        (&Method::DELETE, [name, "bindings"]) => {
            let spec: Value = parse_json(&read_body(shared, req).await?)?;
            p.unbind(name, &spec)?;
            Ok(no_content())
        }
        _ => Err(Error::MethodNotAllowed { method: method.to_string(), route: "/v1/plugins".to_owned() }),
    }
}

/// 204 when every handle succeeded, the error itself for a single handle, else 207 with one
/// result per handle.
fn multi_status(results: Vec<(String, std::result::Result<(), messaging::Error>)>) -> Response<Body> {
    if results.iter().all(|(_, r)| r.is_ok()) {
        return no_content();
    }
    if results.len() == 1 {
        let Some((_, Err(e))) = results.into_iter().next() else { return no_content() };
        return Error::Messaging(e).into_response();
    }
    let items: Vec<Value> = results
        .into_iter()
        .map(|(h, r)| match r {
            Ok(()) => json!({"receipt_handle": h, "status": 204}),
            Err(e) => {
                let e = Error::Messaging(e);
                json!({"receipt_handle": h, "status": e.status().as_u16(), "code": e.code().0, "detail": e.to_string()})
            }
        })
        .collect();
    json_response(StatusCode::MULTI_STATUS, &json!({ "results": items }))
}

/// Reads the whole body: refused at once when `Content-Length` is over the limit, cut off when
/// the bytes go over it, and timed out when they do not arrive in time.
///
/// A body over the limit but under [`DRAIN_BYTES_MAX`] is read to its end and dropped before the
/// 413 goes out, so a client still uploading sees the answer instead of a reset connection.
pub(crate) async fn read_body<M: Messaging>(shared: &Shared<M>, req: Request<Incoming>) -> Result<Bytes> {
    let max = shared.body_bytes_max;
    let ms = shared.limits.body_read_timeout_ms;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    if let Some(len) = header_str(req.headers(), "content-length").and_then(|v| v.trim().parse::<u64>().ok())
        && len > max as u64
    {
        if len <= DRAIN_BYTES_MAX as u64 {
            drain(req.into_body(), deadline).await;
        }
        return Err(Error::BodyTooLarge { max });
    }
    let mut body = req.into_body();
    let mut out = bytes::BytesMut::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(Error::BodyTimeout { ms }),
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Err(e))) => return Err(Error::BadParameter(format!("reading the body: {e}"))),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else { continue };
        if out.len() + data.len() > max {
            drain(body, deadline).await;
            return Err(Error::BodyTooLarge { max });
        }
        out.extend_from_slice(&data);
    }
}

/// Reads and drops the rest of a refused body: at most [`DRAIN_BYTES_MAX`] bytes, until
/// `deadline`.
async fn drain(mut body: Incoming, deadline: tokio::time::Instant) {
    let mut seen = 0usize;
    while seen <= DRAIN_BYTES_MAX {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(f))) => seen += f.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::BadJson(e.to_string()))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn accepts(headers: &HeaderMap, media: &str) -> bool {
    header_str(headers, "accept").is_some_and(|a| a.split(',').any(|p| p.trim().starts_with(media)))
}

pub(crate) fn query_num<T: std::str::FromStr>(q: &BTreeMap<String, String>, name: &str) -> Result<Option<T>> {
    q.get(name)
        .map(|v| v.parse::<T>().map_err(|_| Error::BadParameter(format!("query parameter {name}={v:?}"))))
        .transpose()
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

/// `%XX` decoding; invalid escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::full(v.to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

pub(crate) fn no_content() -> Response<Body> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A message as JSON: the body as UTF-8 text when it is, else base64 (`body_encoding` says which).
pub fn message_json(m: &Message, extra: Option<Value>) -> Value {
    let (body, encoding) = match std::str::from_utf8(&m.body) {
        Ok(s) => (s.to_owned(), "utf8"),
        Err(_) => (BASE64.encode(&m.body), "base64"),
    };
    let properties: serde_json::Map<String, Value> =
        m.properties.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    let mut v = json!({
        "message_id": m.message_id,
        "offset_message_id": m.offset_message_id,
        "topic": m.topic,
        "queue_id": m.queue_id,
        "queue_offset": m.queue_offset,
        "tag": m.tag,
        "keys": m.keys,
        "properties": properties,
        "born_timestamp": rfc3339(m.born_timestamp_ms),
        "store_timestamp": rfc3339(m.store_timestamp_ms),
        "reconsume_times": m.reconsume_times,
        "body": body,
        "body_encoding": encoding,
        "body_size": m.body.len(),
    });
    if let (Some(Value::Object(extra)), Value::Object(map)) = (extra, &mut v) {
        map.extend(extra);
    }
    v
}

fn received_json(r: &messaging::Received) -> Value {
    message_json(
        &r.message,
        Some(json!({
            "receipt_handle": r.receipt_handle,
            "delivery_attempt": r.delivery_attempt,
            "invisible_until": rfc3339(r.invisible_until_ms),
        })),
    )
}

fn queues_json(t: &messaging::TopicInfo) -> Vec<Value> {
    t.queues.iter().map(|(q, lo, hi)| json!({"queue_id": q, "min_offset": lo, "max_offset": hi})).collect()
}

pub(crate) fn topic_json(t: &messaging::TopicInfo) -> Value {
    json!({"name": t.name, "read_queues": t.read_queues, "write_queues": t.write_queues, "perm": t.perm,
           "queues": queues_json(t)})
}

pub(crate) fn group_json(g: &GroupInfo) -> Value {
    json!({"name": g.name, "consume_enable": g.consume_enable, "retry_max_times": g.retry_max_times,
           "retry_queues": g.retry_queues})
}

#[cfg(test)]
mod tests {
    //! Query decoding and route templates.

    use super::*;

    #[test]
    fn percent_decoding() {
        for (raw, decoded) in [("a%20b", "a b"), ("%zz", "%zz"), ("%4", "%4"), ("x%2Fy", "x/y"), ("", "")] {
            assert_eq!(percent_decode(raw), decoded);
        }
    }

    #[test]
    fn templates_are_bounded() {
        let t =
            |p: &str| route_template(&p.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>());
        assert_eq!(t("/v1/topics/orders/messages"), "/v1/topics/{topic}/messages");
        assert_eq!(
            t("/v1/groups/g/topics/t/messages/HANDLE"),
            "/v1/groups/{group}/topics/{topic}/messages/{receiptHandle}"
        );
        assert_eq!(t("/no/such/thing"), "other");
    }
}
