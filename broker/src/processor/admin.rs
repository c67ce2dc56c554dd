//! The admin request codes that mqadmin, rocketmq-dashboard and rocketmq-exporter send.

use std::sync::Arc;

use super::BrokerInner;
use super::error::Result;
use crate::remoting::{Connection, RemotingCommand};

/// Answers an admin request, or `None` when `req.code` is not an admin code we serve.
pub async fn handle(
    broker: &Arc<BrokerInner>,
    conn: &Connection,
    req: &RemotingCommand,
) -> Option<Result<RemotingCommand>> {
    let _ = (broker, conn, req);
    None
}
