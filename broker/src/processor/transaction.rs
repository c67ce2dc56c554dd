//! Transactions: END_TRANSACTION (commit or roll back a half message) and the check-back service
//! that asks the producer group about half messages left unresolved.

use std::sync::Arc;

use super::BrokerInner;
use super::error::{Error, Result};
use crate::remoting::{Connection, RemotingCommand};

#[derive(Default)]
pub struct Transactions {}

pub async fn end_transaction(
    broker: &Arc<BrokerInner>,
    conn: &Connection,
    req: &RemotingCommand,
) -> Result<RemotingCommand> {
    let _ = (broker, conn, req);
    Err(Error::System("END_TRANSACTION is not served yet".into()))
}

pub fn start(broker: &Arc<BrokerInner>) -> Vec<tokio::task::JoinHandle<()>> {
    let _ = broker;
    Vec::new()
}
