//! Consumer offsets (QUERY_CONSUMER_OFFSET 14, UPDATE_CONSUMER_OFFSET 15) and queue offsets
//! (GET_MAX_OFFSET 30, GET_MIN_OFFSET 31, SEARCH_OFFSET_BY_TIMESTAMP 29,
//! GET_EARLIEST_MSG_STORETIME 32).

use super::error::{Error, Result};
use super::{BrokerInner, ok};
use crate::protocol::Headers;
use crate::remoting::RemotingCommand;
use crate::store::format::{Scanned, scan_record};

/// QUERY_CONSUMER_OFFSET: the committed offset; for a group that never committed on a queue
/// whose first message is still there, 0 (so a new group starts at the beginning of a young
/// queue, as 4.9.4 does); otherwise QUERY_NOT_FOUND.
pub fn query_consumer_offset(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let group: String = req.required("consumerGroup")?;
    let topic: String = req.required("topic")?;
    let queue_id: u32 = req.required("queueId")?;
    if let Some(offset) = broker.meta.consumer_offsets().offset(&topic, &group, queue_id)
        && offset >= 0
    {
        return Ok(ok().with_field("offset", offset));
    }
    if broker.store.min_offset(&topic, queue_id) == 0 {
        return Ok(ok().with_field("offset", 0));
    }
    Err(Error::QueryNotFound("Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first".into()))
}

/// UPDATE_CONSUMER_OFFSET.
pub fn update_consumer_offset(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let group: String = req.required("consumerGroup")?;
    let topic: String = req.required("topic")?;
    let queue_id: u32 = req.required("queueId")?;
    let offset: i64 = req.required("commitOffset")?;
    broker.commit_offset(&group, &topic, queue_id, offset);
    Ok(ok())
}

pub fn max_offset(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let topic: String = req.required("topic")?;
    let queue_id: u32 = req.required("queueId")?;
    Ok(ok().with_field("offset", broker.store.max_offset(&topic, queue_id)))
}

pub fn min_offset(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let topic: String = req.required("topic")?;
    let queue_id: u32 = req.required("queueId")?;
    Ok(ok().with_field("offset", broker.store.min_offset(&topic, queue_id)))
}

pub fn search_offset_by_timestamp(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let topic: String = req.required("topic")?;
    let queue_id: u32 = req.required("queueId")?;
    let timestamp: i64 = req.required("timestamp")?;
    Ok(ok().with_field("offset", broker.store.offset_by_time(&topic, queue_id, timestamp)))
}

/// The store time of the message at `offset` of a queue, if it is still there.
pub fn store_time_at(broker: &BrokerInner, topic: &str, queue_id: u32, offset: u64) -> Option<i64> {
    let r = broker.store.get_messages(topic, queue_id, offset, 1, usize::MAX, None);
    let first = r.messages.first()?;
    match scan_record(first, false) {
        Scanned::Record(rec) => Some(rec.store_timestamp),
        _ => None,
    }
}

pub fn earliest_msg_store_time(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let topic: String = req.required("topic")?;
    let queue_id: u32 = req.required("queueId")?;
    let min = broker.store.min_offset(&topic, queue_id);
    let ts = store_time_at(broker, &topic, queue_id, min).unwrap_or(-1);
    Ok(ok().with_field("timestamp", ts))
}
