//! The Wasm plugin admin codes (`protocol::request::PLUGIN_*`, 49001..=49007) and the hooks that
//! the pull, send and transaction-check paths call (`crate::plugin` does the work).
//!
//! | code | request | answer |
//! |---|---|---|
//! | PLUGIN_DEPLOY | `name`, optional `role` and `params` (a JSON object of strings); body: the component | the deployment (JSON) |
//! | PLUGIN_LIST | | `{"plugins": [...], "bindings": [...]}` |
//! | PLUGIN_DESCRIBE | `name` | summary, bindings, counters (JSON) |
//! | PLUGIN_BIND | `name`, `role`, `group` and/or `topic`, optional `failOpen` | SUCCESS |
//! | PLUGIN_UNBIND | `role`, `group` and/or `topic` | SUCCESS, or a remark that nothing was bound |
//! | PLUGIN_REMOVE | `name` | SUCCESS |
//! | PLUGIN_LOGS | `name`, optional `last` (lines, default 100) | log lines (JSON) |
//!
//! A slave refuses the changing codes: it follows its master's plugins
//! (`Plugins::install_snapshot`).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde::Serialize;

use super::error::{Error, Result};
use super::{BrokerInner, Role as BrokerRole, ok};
use crate::plugin::{Binding, Decision, PluginMessage, Resolution, Role, RouteDecision};
use crate::protocol::{
    Headers, PERM_READ, PERM_WRITE, RETRY_GROUP_TOPIC_PREFIX, TopicConfig, body, dlq_topic, request,
};
use crate::remoting::RemotingCommand;
use crate::store::format::{Scanned, StoredRecord, scan_record};

/// Log lines `PLUGIN_LOGS` returns unless asked otherwise, and at most.
const LOG_LINES_DEFAULT: usize = 100;
const LOG_LINES_MAX: usize = crate::plugin::limits::LOG_LINES_MAX;

fn plugin_error(e: crate::plugin::PluginError) -> Error {
    Error::System(e.to_string())
}

#[derive(Serialize)]
struct ListBody {
    plugins: Vec<crate::plugin::PluginSummary>,
    bindings: Vec<Binding>,
}

/// Serves a plugin admin code; `None` for any other code.
pub async fn handle(broker: &Arc<BrokerInner>, req: &RemotingCommand) -> Option<Result<RemotingCommand>> {
    let changes = matches!(
        req.code,
        request::PLUGIN_DEPLOY | request::PLUGIN_BIND | request::PLUGIN_UNBIND | request::PLUGIN_REMOVE
    );
    if changes && broker.role() == BrokerRole::Slave {
        return Some(Err(Error::NoPermission(
            "this broker is a slave: it follows its master's plugins; deploy and bind on the master".into(),
        )));
    }
    let p = &broker.plugins;
    Some(match req.code {
        request::PLUGIN_DEPLOY => deploy(broker, req),
        request::PLUGIN_LIST => {
            Ok(ok().with_body(body::to_json(&ListBody { plugins: p.list(), bindings: p.bindings() })))
        }
        request::PLUGIN_DESCRIBE => req
            .required::<String>("name")
            .map_err(Error::from)
            .and_then(|n| p.describe(&n).map_err(plugin_error))
            .map(|d| ok().with_body(body::to_json(&d))),
        request::PLUGIN_BIND => binding(req, true).and_then(|b| p.bind(b).map_err(plugin_error)).map(|()| ok()),
        request::PLUGIN_UNBIND => binding(req, false)
            .and_then(|b| p.unbind(&b).map_err(plugin_error))
            .map(|removed| if removed { ok() } else { ok().with_remark("nothing was bound there") }),
        request::PLUGIN_REMOVE => req
            .required::<String>("name")
            .map_err(Error::from)
            .and_then(|n| p.remove(&n).map_err(plugin_error))
            .map(|()| ok()),
        request::PLUGIN_LOGS => (|| {
            let name: String = req.required("name")?;
            let last = req.optional::<usize>("last")?.unwrap_or(LOG_LINES_DEFAULT).min(LOG_LINES_MAX);
            let lines = p.logs(&name, last).map_err(plugin_error)?;
            Ok(ok().with_body(body::to_json(&lines)))
        })(),
        _ => return None,
    })
}

fn deploy(broker: &Arc<BrokerInner>, req: &RemotingCommand) -> Result<RemotingCommand> {
    let name: String = req.required("name")?;
    let role = match req.optional::<String>("role")? {
        Some(r) if !r.trim().is_empty() => Some(
            Role::parse(&r)
                .ok_or_else(|| Error::System(format!("role `{r}`: use filter, router or transaction-checker")))?,
        ),
        _ => None,
    };
    let params: Vec<(String, String)> = match req.optional::<String>("params")? {
        None => Vec::new(),
        Some(text) if text.trim().is_empty() => Vec::new(),
        Some(text) => {
            let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
                .map_err(|e| Error::Body(format!("params must be a JSON object of strings: {e}")))?;
            map.into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => Ok((k, s)),
                    other => Ok((k, other.to_string())),
                })
                .collect::<Result<_>>()?
        }
    };
    let wasm = req.body.clone();
    let summary =
        tokio::task::block_in_place(|| broker.plugins.deploy(&name, &wasm, params, role)).map_err(plugin_error)?;
    tracing::info!(plugin = %name, role = %summary.role, version = summary.version, bytes = wasm.len(), "plugin deployed");
    Ok(ok().with_body(body::to_json(&summary)))
}

fn binding(req: &RemotingCommand, named: bool) -> Result<Binding> {
    let role: String = req.required("role")?;
    let role = Role::parse(&role)
        .ok_or_else(|| Error::System(format!("role `{role}`: use filter, router or transaction-checker")))?;
    Ok(Binding {
        role,
        plugin: if named { req.required("name")? } else { String::new() },
        group: req.optional::<String>("group")?.filter(|g| !g.is_empty()),
        topic: req.optional::<String>("topic")?.filter(|t| !t.is_empty()),
        fail_open: req.optional::<bool>("failOpen")?.unwrap_or(false),
    })
}

/// What a bound filter made of a pull's messages.
pub(super) struct PullFilter {
    /// Per message: deliver it?
    pub pass: Vec<bool>,
    /// Messages decided, from the first: the pull must not move past the first undecided one.
    pub decided: usize,
    /// Indexes of poison messages (the plugin traps on them): see [`dead_letter_poison`].
    pub poison: Vec<usize>,
}

impl PullFilter {
    /// Both filters: a message passes if both pass it, decided as far as both decided.
    pub fn and(a: Option<PullFilter>, b: Option<PullFilter>) -> Option<PullFilter> {
        match (a, b) {
            (Some(a), Some(b)) => Some(PullFilter {
                pass: a.pass.iter().zip(&b.pass).map(|(x, y)| *x && *y).collect(),
                decided: a.decided.min(b.decided),
                poison: {
                    let mut p = a.poison;
                    p.extend(b.poison.iter().filter(|i| !p.contains(i)).copied().collect::<Vec<_>>());
                    p
                },
            }),
            (a, b) => a.or(b),
        }
    }
}

/// Runs the filter bound to (group, topic), if any, over a pull's stored records.
pub(super) fn filter_pull(broker: &BrokerInner, group: &str, topic: &str, records: &[Bytes]) -> Option<PullFilter> {
    let filter = broker.plugins.bound_filter(group, topic)?;
    decide(records, |msgs| Some(filter.run(msgs)))
}

/// With `sqlFilterEngine=plugin`: the SQL92 plugin's verdicts on a pull's stored records for
/// the subscription `expression` (fail closed, as a bound filter).
pub(super) fn sql_pull(broker: &BrokerInner, expression: &str, records: &[Bytes]) -> PullFilter {
    let Some(component) = broker.config.sql_filter_plugin.as_deref() else {
        // `validate` refuses the engine without a component; nothing can be decided here.
        return PullFilter { pass: vec![false; records.len()], decided: 0, poison: Vec::new() };
    };
    let decide_all = |msgs: &[PluginMessage<'_>]| {
        // The first use of an expression compiles the component: tell the runtime we block.
        let run = || broker.plugins.filter_sql(component, expression, msgs);
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        Some(if multi_thread { tokio::task::block_in_place(run) } else { run() })
    };
    decide(records, decide_all).unwrap_or(PullFilter {
        pass: vec![false; records.len()],
        decided: 0,
        poison: Vec::new(),
    })
}

/// Decodes `records` and asks `run` for a decision per readable one.
fn decide(records: &[Bytes], run: impl FnOnce(&[PluginMessage<'_>]) -> Option<Vec<Decision>>) -> Option<PullFilter> {
    let mut readable = Vec::with_capacity(records.len());
    let mut msgs = Vec::with_capacity(records.len());
    for r in records {
        let rec = match scan_record(r, false) {
            Scanned::Record(rec) => Some(PluginMessage::from_record(&rec)),
            _ => None,
        };
        readable.push(rec.is_some());
        msgs.extend(rec);
    }
    let decisions = run(&msgs)?;
    let mut pass = Vec::with_capacity(records.len());
    let mut decided = records.len();
    let mut poison = Vec::new();
    let mut d = decisions.iter();
    for (i, readable) in readable.into_iter().enumerate() {
        // An unreadable record is not delivered (as the SQL92 path does).
        let verdict = if readable { d.next().copied().unwrap_or(Decision::Undecided) } else { Decision::Drop };
        if verdict == Decision::Undecided && decided == records.len() {
            decided = i;
        }
        if verdict == Decision::Poison && i < decided {
            poison.push(i);
        }
        pass.push(verdict == Decision::Pass);
    }
    Some(PullFilter { pass, decided, poison })
}

/// Keeps a copy of each poison message of a pull (a filter traps on it, so `group` never gets
/// it) in the group's dead-letter topic, where it can be read, inspected and resent, as RocketMQ
/// keeps messages a group could not consume. Only decided messages count (the pull moves past
/// them); a slave, which cannot write, only logs. The append does not wait for a flush.
pub(super) fn dead_letter_poison(broker: &BrokerInner, group: &str, records: &[Bytes], pf: &PullFilter) {
    for &i in pf.poison.iter().filter(|&&i| i < pf.decided) {
        let Some(Scanned::Record(rec)) = records.get(i).map(|r| scan_record(r, false)) else { continue };
        let (topic, queue_id, offset) = (rec.topic.to_owned(), rec.queue_id, rec.queue_offset);
        if broker.role() == BrokerRole::Slave {
            tracing::warn!(%group, %topic, queue_id, offset, "a poison message is not copied to the dead-letter topic on a slave");
            continue;
        }
        let dlq = dlq_topic(group);
        broker.topics.create_if_absent(&dlq, 1, PERM_READ | PERM_WRITE, 0);
        let (_, props) = super::pop::copy_properties(&rec);
        let mut msg = rec.to_input();
        msg.topic = dlq;
        msg.queue_id = 0;
        msg.store_host = broker.store_host;
        msg.properties = crate::protocol::encode_properties(props.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        broker.metrics.record_dlq(group);
        let group = group.to_owned();
        broker.store.put_messages_then(std::slice::from_ref(&msg), move |r| match r {
            Ok(_) => tracing::info!(%group, %topic, queue_id, offset, "poison message copied to the dead-letter topic"),
            Err(e) => tracing::warn!(%group, %topic, queue_id, offset, error = %e, "could not copy a poison message to the dead-letter topic"),
        });
    }
}

/// The pull body of the decided, passing records.
pub(super) fn filtered_body(records: &[Bytes], f: &PullFilter, mut keep: impl FnMut(&[u8]) -> bool) -> BytesMut {
    let passing = records.iter().zip(&f.pass).take(f.decided).filter(|(_, pass)| **pass);
    let mut out = BytesMut::with_capacity(passing.map(|(r, _)| r.len()).sum());
    for (r, pass) in records.iter().zip(&f.pass).take(f.decided) {
        if *pass && keep(r) {
            out.extend_from_slice(r);
        }
    }
    out
}

/// Applies the router bound to `topic` (single sends only; retry and DLQ topics are never
/// routed). Returns the new (topic, its config, queue id) when the plugin moves the message.
pub(super) fn route_send(
    broker: &BrokerInner,
    tc: &TopicConfig,
    queue_id: u32,
    properties: &str,
    body: &[u8],
    born_timestamp: i64,
) -> Result<Option<(String, Arc<TopicConfig>, u32)>> {
    let topic = tc.topic_name.as_str();
    if topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) || topic.starts_with(crate::protocol::DLQ_GROUP_TOPIC_PREFIX) {
        return Ok(None);
    }
    let msg = PluginMessage {
        queue_id,
        sys_flag: 0,
        queue_offset: 0,
        commitlog_offset: 0,
        born_timestamp,
        store_timestamp: 0,
        reconsume_times: 0,
        topic,
        properties,
        body,
    };
    let queues = tc.write_queue_nums.max(1);
    match broker.plugins.route(topic, queues, &msg) {
        None | Some(RouteDecision::Keep) => Ok(None),
        Some(RouteDecision::Queue(q)) => {
            let tc = broker.topics.get(topic).ok_or_else(|| Error::TopicNotExist(topic.to_owned()))?;
            Ok(Some((topic.to_owned(), tc, q % queues)))
        }
        Some(RouteDecision::Topic(t, q)) => {
            let Some(target) = broker.topics.get(&t) else {
                return Err(Error::TopicNotExist(format!(
                    "the router of topic {topic} sent the message to topic[{t}], which does not exist"
                )));
            };
            if target.perm & PERM_WRITE == 0 {
                return Err(Error::NoPermission(format!(
                    "the router of topic {topic} sent the message to topic[{t}], which is not writable"
                )));
            }
            let q = q.unwrap_or(queue_id) % target.write_queue_nums.max(1);
            Ok(Some((t, target, q)))
        }
        Some(RouteDecision::Reject(why)) => {
            Err(Error::MessageIllegal(format!("rejected by the router of topic {topic}: {why}")))
        }
    }
}

/// Asks the checker bound to the half message's producer group: Some(true) commit, Some(false)
/// roll back, None ask the producer (no checker, `unknown`, or the plugin failed).
pub(super) fn check_half(broker: &BrokerInner, rec: &StoredRecord<'_>, producer_group: &str) -> Option<bool> {
    match broker.plugins.check(producer_group, &PluginMessage::from_record(rec))? {
        Resolution::Commit => Some(true),
        Resolution::Rollback => Some(false),
        Resolution::Unknown => None,
    }
}
