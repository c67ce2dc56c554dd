//! The REST routes the web console needs beyond the basic ones (all documented in `openapi.rs`):
//! the login session, paged and searched topic and group lists, topic routes, group members,
//! offset reset with a preview, dead-letter resend, the cluster overview, plugin logs; and the
//! check of who may write (the rules are in `auth.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use broker::messaging::{self, Messaging, ResetTo};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{self, Caller};
use crate::error::{Error, Result};
use crate::routes::{
    group_json, json_response, message_json, no_content, parse_json, query_num, read_body, topic_json,
};
use crate::{Body, Peer, Shared};

/// Items one page of a list holds by default, and at most.
pub const PAGE_DEFAULT: usize = 50;
pub const PAGE_MAX: usize = 500;
/// Dead letters one resend request may name.
pub const RESEND_IDS_MAX: usize = 256;
/// Messages one query by time returns by default.
const TIME_QUERY_DEFAULT: usize = 64;

/// Who is calling, and whether they may do what they ask (see `auth.rs`).
pub(crate) fn authorize<M: Messaging>(shared: &Shared<M>, req: &Request<Incoming>, seg: &[&str]) -> Result<Caller> {
    let login = &shared.login;
    if !login.required {
        return Ok(Caller::Open);
    }
    let headers = req.headers();
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if let Some(user) = auth::session_token(headers).and_then(|t| shared.sessions.user(&t)) {
        if write && !auth::same_origin(headers) {
            return Err(messaging::Error::Forbidden("a write from another origin is refused".into()).into());
        }
        return Ok(Caller::User(user));
    }
    if let Some((user, password)) = auth::basic_credentials(headers) {
        return if login.verify(&user, &password) {
            Ok(Caller::User(user))
        } else {
            Err(Error::Unauthorized("wrong user or password".into()))
        };
    }
    let session_route = matches!(seg, ["v1", "session"]);
    if !write || session_route || !matches!(seg, ["v1", ..]) {
        return Ok(Caller::Anonymous);
    }
    if auth::from_browser(headers) {
        return Err(Error::Unauthorized(if login.configured() {
            "log in to the console first".to_owned()
        } else {
            format!("writes need a logged-in user and none is configured: {}", auth::CONFIGURE_HINT)
        }));
    }
    let data_plane =
        matches!(seg, ["v1", "topics", _, "messages"] | ["v1", "groups", _, "topics", ..] | ["v1", "transactions", ..]);
    let peer = req.extensions().get::<Peer>().map(|p| p.0);
    if data_plane || auth::local_peer(peer, headers) {
        return Ok(Caller::Anonymous);
    }
    Err(Error::Unauthorized(
        "admin writes from another host need the console user's credentials (Authorization: Basic)".into(),
    ))
}

/// `/v1/session`: what the console needs to know (GET), log in (POST), log out (DELETE).
pub(crate) async fn session<M: Messaging>(
    shared: &Arc<Shared<M>>,
    req: Request<Incoming>,
    caller: &Caller,
) -> Result<Response<Body>> {
    let login = &shared.login;
    match *req.method() {
        Method::GET => {
            let user = match caller {
                Caller::User(u) => Some(u.clone()),
                _ => None,
            };
            let hint = (login.required && !login.configured()).then_some(auth::CONFIGURE_HINT);
            Ok(json_response(
                StatusCode::OK,
                &json!({"login_required": login.required, "user_configured": login.configured(),
                        "logged_in": user.is_some(), "user": user, "can_write": !login.required || user.is_some(),
                        "hint": hint}),
            ))
        }
        Method::POST => {
            #[derive(Deserialize)]
            struct Credentials {
                user: String,
                password: String,
            }
            let c: Credentials = parse_json(&read_body(shared, req).await?)?;
            if !login.required {
                return Err(Error::BadParameter("login is off on this broker (dashboardLogin)".into()));
            }
            if !login.configured() {
                return Err(Error::Unauthorized(format!("no console user is configured: {}", auth::CONFIGURE_HINT)));
            }
            if !login.verify(&c.user, &c.password) {
                tracing::warn!(user = %c.user, "Console login refused.");
                tokio::time::sleep(Duration::from_millis(auth::LOGIN_FAILURE_DELAY_MS)).await;
                return Err(Error::Unauthorized("wrong user or password".into()));
            }
            let token = shared.sessions.create(&c.user);
            tracing::info!(user = %c.user, "Console login.");
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .header("set-cookie", auth::cookie(Some(&token)))
                .header("cache-control", "no-store")
                .body(Body::full(json!({"logged_in": true, "user": c.user}).to_string()))
                .unwrap_or_else(|_| Response::new(Body::empty())))
        }
        Method::DELETE => {
            if let Some(t) = auth::session_token(req.headers()) {
                shared.sessions.remove(&t);
            }
            let mut r = no_content();
            if let Ok(v) = auth::cookie(None).parse() {
                r.headers_mut().insert("set-cookie", v);
            }
            Ok(r)
        }
        _ => Err(Error::MethodNotAllowed { method: req.method().to_string(), route: "/v1/session".into() }),
    }
}

/// `(offset, limit, lower-case search)` of a paged list.
pub(crate) fn page(query: &BTreeMap<String, String>) -> Result<(usize, usize, String)> {
    let offset = query_num(query, "offset")?.unwrap_or(0);
    let limit = query_num(query, "limit")?.unwrap_or(PAGE_DEFAULT).clamp(1, PAGE_MAX);
    Ok((offset, limit, query.get("q").map(|q| q.trim().to_lowercase()).unwrap_or_default()))
}

/// Whether a list request asks for a page (otherwise the whole list, as before paging existed).
pub(crate) fn paged(query: &BTreeMap<String, String>) -> bool {
    ["offset", "limit", "q", "kind"].iter().any(|k| query.contains_key(*k))
}

/// `normal`, `retry`, `dlq` or `system`. `brokers` holds the cluster and broker names, which
/// RocketMQ brokers also create as topics.
pub fn topic_kind(name: &str, brokers: &[String]) -> &'static str {
    if name.starts_with(broker::protocol::RETRY_GROUP_TOPIC_PREFIX) {
        "retry"
    } else if name.starts_with(broker::protocol::DLQ_GROUP_TOPIC_PREFIX) {
        "dlq"
    } else if broker::protocol::is_system_topic(name)
        || name == broker::protocol::AUTO_CREATE_TOPIC
        || SYSTEM_TOPICS.contains(&name)
        || name.starts_with("rmq_sys_")
        || name.ends_with("_REPLY_TOPIC")
        || brokers.iter().any(|b| b == name)
    {
        "system"
    } else {
        "normal"
    }
}

/// Topics RocketMQ brokers create for themselves, besides those the broker refuses sends to.
const SYSTEM_TOPICS: &[&str] = &["BenchmarkTest", "RMQ_SYS_TRACE_TOPIC"];

/// `GET /v1/topics?offset=&limit=&q=&kind=`: one page of the topics whose name contains `q`.
pub(crate) async fn topics_page<M: Messaging>(m: &M, query: &BTreeMap<String, String>) -> Result<Response<Body>> {
    let (offset, limit, q) = page(query)?;
    let kind = query.get("kind").map(String::as_str).filter(|k| !k.is_empty() && *k != "all");
    let brokers: Vec<String> =
        m.cluster().await.unwrap_or_default().into_iter().flat_map(|b| [b.cluster, b.name]).collect();
    let names: Vec<String> = m
        .topic_names()
        .await?
        .into_iter()
        .filter(|n| q.is_empty() || n.to_lowercase().contains(&q))
        .filter(|n| kind.is_none_or(|k| topic_kind(n, &brokers) == k))
        .collect();
    let mut topics = Vec::new();
    for name in names.iter().skip(offset).take(limit) {
        match m.topic(name).await {
            Ok(t) => {
                let mut v = topic_json(&t);
                v["kind"] = json!(topic_kind(name, &brokers));
                v["total_messages"] = json!(t.queues.iter().map(|(_, lo, hi)| hi.saturating_sub(*lo)).sum::<u64>());
                topics.push(v);
            }
            Err(messaging::Error::TopicNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"topics": topics, "total": names.len(), "offset": offset, "limit": limit}),
    ))
}

/// `GET /v1/groups?offset=&limit=&q=`: one page of groups with their total lag and members.
pub(crate) async fn groups_page<M: Messaging>(m: &M, query: &BTreeMap<String, String>) -> Result<Response<Body>> {
    let (offset, limit, q) = page(query)?;
    let names: Vec<String> =
        m.group_names().await?.into_iter().filter(|n| q.is_empty() || n.to_lowercase().contains(&q)).collect();
    let mut groups = Vec::new();
    for name in names.iter().skip(offset).take(limit) {
        let Ok(g) = m.group(name).await else { continue };
        let mut v = group_json(&g);
        let progress = m.progress(name, None).await.unwrap_or_default();
        v["total_lag"] = json!(progress.iter().map(|p| p.lag).sum::<u64>());
        v["topics"] = json!(progress.iter().map(|p| p.topic.as_str()).collect::<std::collections::BTreeSet<_>>());
        let rt = m.group_runtime(name).await.unwrap_or_default();
        v["members"] = json!(rt.members.len());
        v["online"] = json!(!rt.members.is_empty());
        v["message_model"] = json!(rt.message_model);
        groups.push(v);
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"groups": groups, "total": names.len(), "offset": offset, "limit": limit}),
    ))
}

/// `GET /v1/topics/{topic}/route`.
pub(crate) async fn topic_route<M: Messaging>(m: &M, topic: &str) -> Result<Response<Body>> {
    let r = m.topic_route(topic).await?;
    let brokers: Vec<Value> = r
        .brokers
        .iter()
        .map(|(name, addrs)| {
            let addrs: BTreeMap<String, &String> = addrs.iter().map(|(id, a)| (id.to_string(), a)).collect();
            json!({"broker_name": name, "addrs": addrs})
        })
        .collect();
    let queues: Vec<Value> = r
        .queues
        .iter()
        .map(|(b, rq, wq, perm)| json!({"broker_name": b, "read_queues": rq, "write_queues": wq, "perm": perm}))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"topic": topic, "brokers": brokers, "queues": queues})))
}

/// `GET /v1/groups/{group}/consumers`: online members and their subscriptions.
pub(crate) async fn group_consumers<M: Messaging>(m: &M, group: &str) -> Result<Response<Body>> {
    let rt = m.group_runtime(group).await?;
    let members: Vec<Value> = rt
        .members
        .iter()
        .map(|c| json!({"client_id": c.client_id, "addr": c.addr, "language": c.language, "version": c.version}))
        .collect();
    let subscriptions: Vec<Value> =
        rt.subscriptions.iter().map(|(t, e)| json!({"topic": t, "expression": e})).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"group": group, "online": !rt.members.is_empty(), "members": members,
                "subscriptions": subscriptions, "consume_type": rt.consume_type, "message_model": rt.message_model}),
    ))
}

/// `POST /v1/groups/{group}/offsets/reset` `{topic, to: earliest|latest|timestamp, timestamp_ms, dry_run}`.
pub(crate) async fn reset_offsets<M: Messaging>(
    shared: &Arc<Shared<M>>,
    req: Request<Incoming>,
    group: &str,
    caller: &Caller,
) -> Result<Response<Body>> {
    #[derive(Deserialize)]
    struct Reset {
        topic: String,
        #[serde(default)]
        to: Option<String>,
        #[serde(default)]
        timestamp_ms: Option<i64>,
        #[serde(default)]
        dry_run: bool,
    }
    let r: Reset = parse_json(&read_body(shared, req).await?)?;
    let to = match (r.to.as_deref(), r.timestamp_ms) {
        (Some("earliest"), _) => ResetTo::Earliest,
        (Some("latest"), _) => ResetTo::Latest,
        (Some("timestamp") | None, Some(ms)) => ResetTo::Timestamp(ms),
        (Some("timestamp") | None, None) => return Err(Error::BadParameter("\"timestamp_ms\" is required".into())),
        (Some(other), _) => {
            return Err(Error::BadParameter(format!("\"to\" is {other:?}, not earliest, latest or timestamp")));
        }
    };
    let rows = shared.messaging.reset_offsets(group, &r.topic, to, r.dry_run).await?;
    if !r.dry_run {
        tracing::info!(group, topic = %r.topic, ?to, by = ?caller, "Offsets reset over HTTP.");
    }
    let queues: Vec<Value> = rows
        .iter()
        .map(|q| {
            json!({"topic": q.topic, "queue_id": q.queue_id, "current": q.current, "target": q.target,
                   "lag_after": q.lag_after})
        })
        .collect();
    let total: u64 = rows.iter().map(|q| q.lag_after).sum();
    Ok(json_response(
        StatusCode::OK,
        &json!({"group": group, "topic": r.topic, "dry_run": r.dry_run, "queues": queues, "total_lag_after": total}),
    ))
}

/// `POST /v1/groups/{group}/dead-letters/resend` `{message_ids: [...]}`: each dead letter back to
/// the group; 200 when all went, 207 with one result each when some did not.
pub(crate) async fn resend<M: Messaging>(
    shared: &Arc<Shared<M>>,
    req: Request<Incoming>,
    group: &str,
    caller: &Caller,
) -> Result<Response<Body>> {
    #[derive(Deserialize)]
    struct Resend {
        message_ids: Vec<String>,
    }
    let r: Resend = parse_json(&read_body(shared, req).await?)?;
    if r.message_ids.is_empty() || r.message_ids.len() > RESEND_IDS_MAX {
        return Err(Error::BadParameter(format!("\"message_ids\" must hold 1 to {RESEND_IDS_MAX} ids")));
    }
    let mut results = Vec::with_capacity(r.message_ids.len());
    let mut failed = 0;
    for id in &r.message_ids {
        match shared.messaging.resend_dead_letter(group, id).await {
            Ok(p) => results.push(json!({"message_id": id, "status": 200, "resent_as": p.message_id,
                                         "topic": p.topic, "queue_offset": p.queue_offset})),
            Err(e) => {
                failed += 1;
                let e = Error::Messaging(e);
                results.push(json!({"message_id": id, "status": e.status().as_u16(), "code": e.code().0,
                                    "detail": e.to_string()}));
            }
        }
    }
    tracing::info!(group, count = r.message_ids.len(), failed, by = ?caller, "Dead letters resent over HTTP.");
    let status = if failed == 0 { StatusCode::OK } else { StatusCode::MULTI_STATUS };
    Ok(json_response(status, &json!({"group": group, "results": results})))
}

/// `GET /v1/cluster/overview`: name servers and every broker with its figures.
pub(crate) async fn cluster_overview<M: Messaging>(m: &M) -> Result<Response<Body>> {
    let o = m.cluster_overview().await?;
    let first = |v: Option<&String>| v.and_then(|s| s.split(' ').next()).and_then(|s| s.parse::<f64>().ok());
    let brokers: Vec<Value> = o
        .brokers
        .iter()
        .map(|b| {
            let rt = &b.runtime;
            let num = |k: &str| rt.get(k).and_then(|v| v.parse::<f64>().ok());
            json!({
                "cluster": b.cluster, "broker_name": b.name, "broker_id": b.id, "addr": b.addr,
                "role": if b.id == 0 { "MASTER" } else { "SLAVE" },
                "version": rt.get("brokerVersionDesc"),
                "put_tps": first(rt.get("putTps")), "get_tps": first(rt.get("getTransferedTps")),
                "disk_ratio": num("commitLogDiskRatio"),
                "ha_lag_bytes": num("haSlaveLagBytes"),
                "messages_in_total": num("msgPutTotalTodayNow"), "messages_out_total": num("msgGetTotalTodayNow"),
                "boot_timestamp_ms": num("bootTimestamp"),
                "runtime": rt, "error": b.error,
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"name_servers": o.name_servers, "brokers": brokers, "name_server_error": o.name_server_error}),
    ))
}

/// `GET /v1/topics/{topic}/messages?begin=&end=&max=`: a bounded scan by store time (ms since
/// the epoch; `end` defaults to now, `begin` to an hour before `end`).
pub(crate) async fn messages_by_time<M: Messaging>(
    m: &M,
    topic: &str,
    query: &BTreeMap<String, String>,
) -> Result<Response<Body>> {
    let end: i64 = query_num(query, "end")?.unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    let begin: i64 = query_num(query, "begin")?.unwrap_or(end - 3_600_000);
    let max: usize = query_num(query, "max")?.unwrap_or(TIME_QUERY_DEFAULT);
    let found = m.messages_by_time(topic, begin, end, max).await?;
    let messages: Vec<Value> = found.messages.iter().map(|msg| message_json(msg, None)).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"messages": messages, "partial": found.partial, "begin": begin, "end": end}),
    ))
}

/// The per-group delivery status of a message, as JSON.
pub(crate) async fn delivery_json<M: Messaging>(m: &M, msg: &messaging::Message) -> Value {
    match m.delivery(msg).await {
        Ok(d) => json!(
            d.iter()
                .map(|d| json!({"group": d.group, "status": d.status, "consumer_offset": d.consumer_offset}))
                .collect::<Vec<_>>()
        ),
        Err(_) => json!([]),
    }
}

#[cfg(test)]
mod tests {
    //! Topic kinds.

    use super::topic_kind;

    #[test]
    fn topic_kinds() {
        let brokers = ["DefaultCluster".to_owned(), "broker-a".to_owned()];
        for (name, kind) in [
            ("orders", "normal"),
            ("%RETRY%billing", "retry"),
            ("%DLQ%billing", "dlq"),
            ("TBW102", "system"),
            ("SCHEDULE_TOPIC_XXXX", "system"),
            ("RMQ_SYS_TRACE_TOPIC", "system"),
            ("DefaultCluster_REPLY_TOPIC", "system"),
            ("broker-a", "system"),
            ("broker-b", "normal"),
        ] {
            assert_eq!(topic_kind(name, &brokers), kind, "{name}");
        }
    }
}
