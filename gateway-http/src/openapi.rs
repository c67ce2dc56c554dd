//! The OpenAPI 3.1 document served at `/v1/openapi.json`: the contract this server implements
//! (trimmed from the draft in the design notes: no AMQP admin (the AMQP routes are read-only
//! views, 404 while the AMQP door is off), no idempotency keys, no plugin state, no transaction
//! check-back polling; plus the routes the web console uses). Writes may
//! need a logged-in console user (`auth.rs`): 401 `UNAUTHORIZED` is then possible on any of
//! them. It is built from one table, [`OPERATIONS`],
//! which the integration tests walk: every operation listed answers as documented.

use serde_json::{Map, Value, json};

/// One operation: method, path, summary, query parameters, request body media types, and the
/// statuses it answers with.
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub id: &'static str,
    pub summary: &'static str,
    pub query: &'static [&'static str],
    pub body: &'static [&'static str],
    pub responses: &'static [u16],
}

const JSON: &str = "application/json";

/// Every operation served.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        method: "get",
        path: "/livez",
        id: "livez",
        summary: "Liveness",
        query: &[],
        body: &[],
        responses: &[200],
    },
    Operation {
        method: "get",
        path: "/readyz",
        id: "readyz",
        summary: "Readiness: store recovered, registered with a name server, disk below the limit",
        query: &[],
        body: &[],
        responses: &[200, 503],
    },
    Operation {
        method: "get",
        path: "/metrics",
        id: "metrics",
        summary: "Prometheus text exposition",
        query: &[],
        body: &[],
        responses: &[200],
    },
    Operation {
        method: "get",
        path: "/v1/openapi.json",
        id: "openapi",
        summary: "This document",
        query: &[],
        body: &[],
        responses: &[200],
    },
    Operation {
        method: "get",
        path: "/v1/cluster",
        id: "cluster",
        summary: "Brokers behind this door",
        query: &[],
        body: &[],
        responses: &[200],
    },
    Operation {
        method: "get",
        path: "/v1/cluster/overview",
        id: "clusterOverview",
        summary: "Name servers and every broker of the cluster with its role, version, TPS, disk use and HA lag",
        query: &[],
        body: &[],
        responses: &[200],
    },
    Operation {
        method: "get",
        path: "/v1/session",
        id: "getSession",
        summary: "The console's login state: whether login is required, configured, and who is logged in",
        query: &[],
        body: &[],
        responses: &[200],
    },
    Operation {
        method: "post",
        path: "/v1/session",
        id: "login",
        summary: "Log in {user, password}: sets the HttpOnly, SameSite=Strict session cookie",
        query: &[],
        body: &[JSON],
        responses: &[200, 400, 401],
    },
    Operation {
        method: "delete",
        path: "/v1/session",
        id: "logout",
        summary: "Log out (ends the session)",
        query: &[],
        body: &[],
        responses: &[204],
    },
    Operation {
        method: "get",
        path: "/v1/topics",
        id: "listTopics",
        summary: "List topics; with any of offset, limit (default 50, at most 500), q (name contains, any case) or \
                  kind (normal, retry, dlq, system, all) one page and the total",
        query: &["offset", "limit", "q", "kind"],
        body: &[],
        responses: &[200, 400],
    },
    Operation {
        method: "get",
        path: "/v1/topics/{topic}",
        id: "getTopic",
        summary: "A topic and its queues",
        query: &[],
        body: &[],
        responses: &[200, 404],
    },
    Operation {
        method: "put",
        path: "/v1/topics/{topic}",
        id: "putTopic",
        summary: "Create or update a topic (`read_queues`, `write_queues`, default 8)",
        query: &[],
        body: &[JSON],
        responses: &[200, 400],
    },
    Operation {
        method: "delete",
        path: "/v1/topics/{topic}",
        id: "deleteTopic",
        summary: "Delete a topic",
        query: &[],
        body: &[],
        responses: &[204, 404],
    },
    Operation {
        method: "post",
        path: "/v1/topics/{topic}/messages",
        id: "publish",
        summary: "Publish: raw body (metadata in RMQ-Tag, RMQ-Keys, RMQ-Property-*, RMQ-Delay-Ms, RMQ-Queue-Id, \
                  RMQ-Transactional headers), one JSON message, or a JSON batch {\"messages\": [...]}",
        query: &["producer_group"],
        body: &[JSON, "application/octet-stream"],
        responses: &[200, 201, 400, 404, 413, 415, 429],
    },
    Operation {
        method: "get",
        path: "/v1/topics/{topic}/messages",
        id: "queryByKey",
        summary: "Messages with a key; or, without key, those stored between begin and end (ms since the epoch; \
                  a bounded scan, `partial` when it stopped early)",
        query: &["key", "max", "begin", "end"],
        body: &[],
        responses: &[200, 400, 404],
    },
    Operation {
        method: "get",
        path: "/v1/topics/{topic}/messages/{messageId}",
        id: "getMessage",
        summary: "A message by message id or offset message id, with its delivery status per consumer group \
                  (Accept: application/octet-stream for the raw body)",
        query: &[],
        body: &[],
        responses: &[200, 404],
    },
    Operation {
        method: "get",
        path: "/v1/topics/{topic}/queues",
        id: "listQueues",
        summary: "Queues with their min and max offsets",
        query: &[],
        body: &[],
        responses: &[200, 404],
    },
    Operation {
        method: "get",
        path: "/v1/topics/{topic}/route",
        id: "topicRoute",
        summary: "The topic's route as the name servers publish it (brokers, addresses, queue counts, perm)",
        query: &[],
        body: &[],
        responses: &[200, 404, 503],
    },
    Operation {
        method: "get",
        path: "/v1/topics/{topic}/queues/{queueId}/messages",
        id: "pull",
        summary: "Pull by offset (earliest, latest or a number), long polling with wait_ms; \
                  Accept: text/event-stream or application/x-ndjson streams",
        query: &["offset", "max", "wait_ms"],
        body: &[],
        responses: &[200, 400, 404],
    },
    Operation {
        method: "get",
        path: "/v1/groups",
        id: "listGroups",
        summary: "List consumer groups; with any of offset, limit (default 50, at most 500) or q one page, the \
                  total, and each group's total lag and members",
        query: &["offset", "limit", "q"],
        body: &[],
        responses: &[200, 400],
    },
    Operation {
        method: "get",
        path: "/v1/groups/{group}",
        id: "getGroup",
        summary: "A consumer group",
        query: &[],
        body: &[],
        responses: &[200, 404],
    },
    Operation {
        method: "put",
        path: "/v1/groups/{group}",
        id: "putGroup",
        summary: "Create or update a group (`retry_max_times`, `consume_enable`, `retry_queues`)",
        query: &[],
        body: &[JSON],
        responses: &[200, 400],
    },
    Operation {
        method: "delete",
        path: "/v1/groups/{group}",
        id: "deleteGroup",
        summary: "Delete a group",
        query: &[],
        body: &[],
        responses: &[204, 404],
    },
    Operation {
        method: "get",
        path: "/v1/groups/{group}/consumers",
        id: "groupConsumers",
        summary: "The group's online consumers (client id, address, language, version) and subscriptions",
        query: &[],
        body: &[],
        responses: &[200],
    },
    Operation {
        method: "post",
        path: "/v1/groups/{group}/offsets/reset",
        id: "resetOffsets",
        summary: "Reset the group's offsets on a topic {topic, to: earliest|latest|timestamp, timestamp_ms, dry_run}; \
                  dry_run previews; works for offline groups (online consumers are told)",
        query: &[],
        body: &[JSON],
        responses: &[200, 400, 404],
    },
    Operation {
        method: "post",
        path: "/v1/groups/{group}/dead-letters/resend",
        id: "resendDeadLetters",
        summary: "Send dead letters of %DLQ%<group> back to the group {message_ids}; 207 with one result each \
                  when some fail; resending one again answers the first result",
        query: &[],
        body: &[JSON],
        responses: &[200, 207, 400],
    },
    Operation {
        method: "get",
        path: "/v1/groups/{group}/lag",
        id: "groupLag",
        summary: "Consumer progress and lag per queue (`committed` false where the group has no offset; lag is never \
                  negative; `inflight` counts the simple consumer's open leases on that queue, and the queues of \
                  the group's pop retry topic are listed while leases are open there)",
        query: &["topic"],
        body: &[],
        responses: &[200, 404],
    },
    Operation {
        method: "get",
        path: "/v1/groups/{group}/offsets",
        id: "getOffsets",
        summary: "Committed offsets",
        query: &["topic"],
        body: &[],
        responses: &[200, 404],
    },
    Operation {
        method: "put",
        path: "/v1/groups/{group}/offsets",
        id: "commitOffset",
        summary: "Commit an offset {topic, queue_id, offset}",
        query: &[],
        body: &[JSON],
        responses: &[204, 400, 404],
    },
    Operation {
        method: "post",
        path: "/v1/groups/{group}/topics/{topic}/receive",
        id: "receive",
        summary: "Simple consumer: receive {max, invisible_ms, wait_ms, tag} with receipt handles",
        query: &[],
        body: &[JSON],
        responses: &[200, 400, 404, 429],
    },
    Operation {
        method: "get",
        path: "/v1/groups/{group}/topics/{topic}/stream",
        id: "receiveStream",
        summary: "Simple consumer as a stream (SSE, id = receipt handle; or NDJSON)",
        query: &["invisible_ms", "max", "tag"],
        body: &[],
        responses: &[200, 429],
    },
    Operation {
        method: "post",
        path: "/v1/groups/{group}/topics/{topic}/ack",
        id: "ack",
        summary: "Acknowledge {receipt_handles}",
        query: &[],
        body: &[JSON],
        responses: &[204, 207, 400, 410],
    },
    Operation {
        method: "post",
        path: "/v1/groups/{group}/topics/{topic}/nack",
        id: "nack",
        summary: "Give back {receipt_handles, delay_ms}: redelivered through the retry topic, then the DLQ",
        query: &[],
        body: &[JSON],
        responses: &[204, 207, 400, 410],
    },
    Operation {
        method: "post",
        path: "/v1/groups/{group}/topics/{topic}/change-invisible-duration",
        id: "changeInvisibleDuration",
        summary: "Replace a lease {receipt_handle, invisible_ms}; answers the new handle",
        query: &[],
        body: &[JSON],
        responses: &[200, 400, 410],
    },
    Operation {
        method: "delete",
        path: "/v1/groups/{group}/topics/{topic}/messages/{receiptHandle}",
        id: "ackOne",
        summary: "Acknowledge one handle",
        query: &[],
        body: &[],
        responses: &[204, 400, 410],
    },
    Operation {
        method: "post",
        path: "/v1/transactions/{transactionId}/commit",
        id: "commit",
        summary: "Commit a half message",
        query: &[],
        body: &[],
        responses: &[204, 400, 404],
    },
    Operation {
        method: "post",
        path: "/v1/transactions/{transactionId}/rollback",
        id: "rollback",
        summary: "Roll back a half message",
        query: &[],
        body: &[],
        responses: &[204, 400, 404],
    },
    Operation {
        method: "get",
        path: "/v1/plugins",
        id: "listPlugins",
        summary: "Deployed plugins",
        query: &[],
        body: &[],
        responses: &[200, 501],
    },
    Operation {
        method: "put",
        path: "/v1/plugins/{plugin}",
        id: "deployPlugin",
        summary: "Upload a component (raw application/wasm); `role` and `param.<name>` in the query",
        query: &["role"],
        body: &["application/wasm"],
        responses: &[201, 400, 413, 501],
    },
    Operation {
        method: "get",
        path: "/v1/plugins/{plugin}",
        id: "describePlugin",
        summary: "A plugin, its bindings and counters",
        query: &[],
        body: &[],
        responses: &[200, 404, 501],
    },
    Operation {
        method: "get",
        path: "/v1/plugins/{plugin}/logs",
        id: "pluginLogs",
        summary: "The last lines of a plugin's log",
        query: &[],
        body: &[],
        responses: &[200, 404, 501],
    },
    Operation {
        method: "delete",
        path: "/v1/plugins/{plugin}",
        id: "removePlugin",
        summary: "Remove a plugin (refused while bound)",
        query: &[],
        body: &[],
        responses: &[204, 400, 404, 501],
    },
    Operation {
        method: "post",
        path: "/v1/plugins/{plugin}/bindings",
        id: "bindPlugin",
        summary: "Bind {role, group, topic, fail_open}",
        query: &[],
        body: &[JSON],
        responses: &[200, 400, 404, 501],
    },
    Operation {
        method: "delete",
        path: "/v1/plugins/{plugin}/bindings",
        id: "unbindPlugin",
        summary: "Unbind {role, group, topic}",
        query: &[],
        body: &[JSON],
        responses: &[204, 400, 404, 501],
    },
    Operation {
        method: "get",
        path: "/v1/amqp/overview",
        id: "amqpOverview",
        summary: "The AMQP door: connections, channels, consumers, exchanges, queues, bindings, and messages ready \
                  and unacknowledged over the first 1,000 queues (404 while the door is off: amqpListenPort=0)",
        query: &[],
        body: &[],
        responses: &[200, 404],
    },
    Operation {
        method: "get",
        path: "/v1/amqp/exchanges",
        id: "amqpExchanges",
        summary: "AMQP exchanges (type, durable, auto-delete, internal, arguments), paged: offset, limit (default \
                  50, at most 500), q (name contains, any case); 404 while the door is off",
        query: &["offset", "limit", "q"],
        body: &[],
        responses: &[200, 400, 404],
    },
    Operation {
        method: "get",
        path: "/v1/amqp/queues",
        id: "amqpQueues",
        summary: "AMQP queues with their RocketMQ topic, messages ready and unacknowledged, and consumers (tag, \
                  peer, channel, prefetch, ack mode), paged: offset, limit, q, name (exact); 404 while the door is off",
        query: &["offset", "limit", "q", "name"],
        body: &[],
        responses: &[200, 400, 404],
    },
    Operation {
        method: "get",
        path: "/v1/amqp/bindings",
        id: "amqpBindings",
        summary: "AMQP bindings (source exchange, destination, routing key, arguments), paged: offset, limit, q \
                  (source, destination or key contains), queue (bindings to that queue); 404 while the door is off",
        query: &["offset", "limit", "q", "queue"],
        body: &[],
        responses: &[200, 400, 404],
    },
];

fn reason(status: u16) -> &'static str {
    hyper::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Response")
}

/// The document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for op in OPERATIONS {
        let mut params: Vec<Value> = op
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(op.query.iter().map(|name| json!({"name": name, "in": "query", "schema": {"type": "string"}})));
        let mut responses = Map::new();
        for status in op.responses {
            let content = match status {
                204 => None,
                s if *s >= 400 => {
                    Some(json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}))
                }
                _ if op.path == "/metrics" => Some(json!({"text/plain": {"schema": {"type": "string"}}})),
                _ => Some(json!({"application/json": {"schema": {"type": "object"}}})),
            };
            let mut r = json!({"description": reason(*status)});
            if let Some(c) = content {
                r["content"] = c;
            }
            responses.insert(status.to_string(), r);
        }
        let mut operation = json!({
            "operationId": op.id,
            "summary": op.summary,
            "parameters": params,
            "responses": responses,
        });
        if !op.body.is_empty() {
            let content: Map<String, Value> =
                op.body.iter().map(|media| ((*media).to_owned(), json!({"schema": {}}))).collect();
            operation["requestBody"] = json!({"required": false, "content": content});
        }
        let entry = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        entry[op.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "RocketMQ-compatible broker: HTTP door",
            "version": "1.0.0",
            "summary": "Publish and consume with curl; admin, plugins, health and metrics",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details; `code` is RocketMQ 5's error name",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "code": {"type": "string"},
                        "rmq_code": {"type": "integer"},
                    },
                    "required": ["title", "status", "code"],
                },
            },
        },
    })
}
