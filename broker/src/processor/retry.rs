//! CONSUMER_SEND_MSG_BACK (36): a consumer gives a message back; the broker stores a copy in
//! `%RETRY%<group>` with a delay level (`3 + reconsumeTimes` unless the client asks for one), or
//! in `%DLQ%<group>` once `maxReconsumeTimes` is reached or the client asks for it (delayLevel < 0).

use std::sync::Arc;

use super::error::{Error, Result};
use super::send::{apply_delay, pick_queue, put};
use super::{BrokerInner, Role, ok};
use crate::protocol::{self, Headers, PERM_READ, PERM_WRITE, dlq_topic, retry_topic};
use crate::remoting::{Connection, RemotingCommand};
use crate::store::format::{Scanned, scan_record};

const PROPERTY_RETRY_TOPIC: &str = "RETRY_TOPIC";
const PROPERTY_ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
const PROPERTY_DELAY: &str = "DELAY";
const PROPERTY_UNIQ_KEY: &str = "UNIQ_KEY";
/// Version ordinal of 3.4.9: newer clients' maxReconsumeTimes header is honoured.
const VERSION_3_4_9: i32 = 121;

/// `originTopic` is not read: the stored message names its topic, and `RETRY_TOPIC` keeps the
/// first one across retries.
pub async fn send_back(
    broker: &Arc<BrokerInner>,
    _conn: &Connection,
    req: &RemotingCommand,
) -> Result<RemotingCommand> {
    let offset: i64 = req.required("offset")?;
    let group: String = req.required("group")?;
    let delay_level: i32 = req.required("delayLevel")?;
    let origin_msg_id: Option<String> = req.optional("originMsgId")?;
    let max_header: Option<i32> = req.optional("maxReconsumeTimes")?;

    if broker.role() == Role::Slave {
        return Err(Error::ServiceNotAvailable("the broker is a slave and does not accept messages".into()));
    }
    let Some(gc) = broker.groups.find_or_create(&group) else {
        return Err(Error::SubscriptionGroupNotExist(format!("subscription group not exist, {group}")));
    };
    if broker.permission() & PERM_WRITE == 0 {
        return Err(Error::NoPermission(format!(
            "the broker[{}] sending message is forbidden",
            broker.config.broker_name
        )));
    }
    if gc.retry_queue_nums == 0 {
        return Ok(ok());
    }
    let Some(stored) = u64::try_from(offset).ok().and_then(|o| broker.store.message_at(o)) else {
        return Err(Error::System(format!("look message by offset failed, {offset}")));
    };
    let Scanned::Record(rec) = scan_record(&stored, false) else {
        return Err(Error::System(format!("look message by offset failed, {offset}")));
    };
    let mut props = protocol::parse_properties(rec.properties);
    if !props.iter().any(|(k, _)| k == PROPERTY_RETRY_TOPIC) {
        props.push((PROPERTY_RETRY_TOPIC.to_owned(), rec.topic.to_owned()));
    }
    let mut max_times = gc.retry_max_times;
    if req.version >= VERSION_3_4_9
        && let Some(m) = max_header
    {
        max_times = m;
    }
    let reconsume_times = rec.reconsume_times;
    let to_dlq = reconsume_times >= max_times || delay_level < 0;
    let (topic, queue_id) = if to_dlq {
        let dlq = dlq_topic(&group);
        broker.topics.create_if_absent(&dlq, 1, PERM_READ | PERM_WRITE, 0);
        props.retain(|(k, _)| k != PROPERTY_DELAY);
        (dlq, 0)
    } else {
        let retry = retry_topic(&group);
        let tc = broker.topics.create_if_absent(&retry, gc.retry_queue_nums.max(1), PERM_READ | PERM_WRITE, 0);
        let level = if delay_level == 0 { 3 + reconsume_times } else { delay_level };
        props.retain(|(k, _)| k != PROPERTY_DELAY);
        props.push((PROPERTY_DELAY.to_owned(), level.to_string()));
        let queue = pick_queue(tc.write_queue_nums);
        (retry, queue)
    };
    // The first id of a message that is retried again and again.
    let origin = origin_msg_id
        .filter(|s| !s.is_empty())
        .or_else(|| props.iter().find(|(k, _)| k == PROPERTY_ORIGIN_MESSAGE_ID).map(|(_, v)| v.clone()))
        .or_else(|| props.iter().find(|(k, _)| k == PROPERTY_UNIQ_KEY).map(|(_, v)| v.clone()))
        .unwrap_or_default();
    if !origin.is_empty() && !props.iter().any(|(k, _)| k == PROPERTY_ORIGIN_MESSAGE_ID) {
        props.push((PROPERTY_ORIGIN_MESSAGE_ID.to_owned(), origin));
    }
    let mut msg = rec.to_input();
    msg.topic = topic;
    msg.queue_id = queue_id;
    msg.reconsume_times = reconsume_times + 1;
    msg.store_host = broker.store_host;
    apply_delay(&mut msg, &mut props, broker.config.message_delay_level_ms.len());
    msg.properties = protocol::encode_properties(props.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if to_dlq {
        tracing::info!(group, reconsume_times, "message moved to the dead-letter queue");
    }
    put(broker, vec![msg]).await?;
    Ok(ok())
}
