//! QUERY_MESSAGE (12) by key or unique id, and VIEW_MESSAGE_BY_ID (33) by CommitLog offset.

use bytes::BytesMut;

use super::error::{Error, Result};
use super::{BrokerInner, ok};
use crate::protocol::Headers;
use crate::remoting::RemotingCommand;

/// Most messages one query returns (Java: `maxMsgsNumBatch` 64).
pub const QUERY_MESSAGES_MAX: usize = 64;

pub fn query_message(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let topic: String = req.required("topic")?;
    let key: String = req.required("key")?;
    let max: i32 = req.required("maxNum")?;
    let begin: i64 = req.required("beginTimestamp")?;
    let end: i64 = req.required("endTimestamp")?;
    let max = (max.max(1) as usize).min(QUERY_MESSAGES_MAX);
    let found = broker.store.query_by_key(&topic, &key, max, begin, end);
    if found.is_empty() {
        return Err(Error::QueryNotFound("can not find message, maybe time range not correct".into()));
    }
    let mut body = BytesMut::with_capacity(found.iter().map(|m| m.len()).sum());
    for m in &found {
        body.extend_from_slice(m);
    }
    Ok(ok()
        .with_field("indexLastUpdateTimestamp", crate::store::now_ms())
        .with_field("indexLastUpdatePhyoffset", broker.store.dispatched_offset())
        .with_body(body.freeze()))
}

pub fn view_message_by_id(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let offset: i64 = req.required("offset")?;
    let Ok(offset) = u64::try_from(offset) else {
        return Err(Error::System(format!("can not find message by the offset, {offset}")));
    };
    match broker.store.message_at(offset) {
        Some(m) => Ok(ok().with_body(m)),
        None => Err(Error::System(format!("can not find message by the offset, {offset}"))),
    }
}
