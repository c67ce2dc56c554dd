//! LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ (42): which client of a group owns a queue for orderly
//! consumption. A lock lapses after 60 s without renewal (clients renew every 20 s).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::{BrokerInner, ok};
use crate::protocol::body::{self, LockBatchRequestBody, LockBatchResponseBody, MessageQueue};
use crate::remoting::RemotingCommand;

/// Java: `rocketmq.broker.rebalance.lockMaxLiveTime`.
pub const LOCK_MAX_LIVE_MS: u64 = 60_000;

/// Queue to (owner client id, last lock time).
type LockTable = HashMap<MessageQueue, (String, Instant)>;

#[derive(Default)]
pub struct QueueLocks {
    groups: Mutex<HashMap<String, LockTable>>,
}

impl QueueLocks {
    /// Locks what it can for `client_id`; returns the queues it now holds among those asked.
    pub fn lock(&self, group: &str, client_id: &str, queues: &[MessageQueue], now: Instant) -> Vec<MessageQueue> {
        let live = Duration::from_millis(LOCK_MAX_LIVE_MS);
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let table = groups.entry(group.to_owned()).or_default();
        let mut held = Vec::new();
        for mq in queues {
            let entry = table.get(mq);
            let free = match entry {
                None => true,
                Some((owner, at)) => owner == client_id || now.duration_since(*at) > live,
            };
            if free {
                if let Some((owner, _)) = entry
                    && owner != client_id
                {
                    tracing::info!(group, ?mq, old = %owner, new = client_id, "queue lock expired and moved");
                }
                table.insert(mq.clone(), (client_id.to_owned(), now));
                held.push(mq.clone());
            }
        }
        held
    }

    pub fn unlock(&self, group: &str, client_id: &str, queues: &[MessageQueue]) {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(table) = groups.get_mut(group) {
            for mq in queues {
                if table.get(mq).is_some_and(|(owner, _)| owner == client_id) {
                    table.remove(mq);
                }
            }
        }
    }
}

pub fn lock_batch(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let body: LockBatchRequestBody = body::parse(&req.body).map_err(Error::Body)?;
    let held = broker.locks.lock(&body.consumer_group, &body.client_id, &body.mq_set, Instant::now());
    Ok(ok().with_body(body::to_json(&LockBatchResponseBody { lock_ok_mq_set: held })))
}

pub fn unlock_batch(broker: &BrokerInner, req: &RemotingCommand) -> Result<RemotingCommand> {
    let body: LockBatchRequestBody = body::parse(&req.body).map_err(Error::Body)?;
    broker.locks.unlock(&body.consumer_group, &body.client_id, &body.mq_set);
    Ok(ok())
}
