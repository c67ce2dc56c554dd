//! Master/slave replication of the CommitLog: RocketMQ 4.9's HA protocol (no DLedger).
//!
//! The slave connects to the master's HA port (`listenPort + 1` or `haListenPort`) and reports,
//! as 8 big-endian bytes, the CommitLog offset it has written up to: on connect, after it applied
//! what arrived, and at least every `haSendHeartbeatInterval`. The master streams raw CommitLog
//! bytes from there as chunks of `[offset i64][size i32][size bytes]` (at most
//! `haTransferBatchSize` each, never across a file end; `size = 0` is a heartbeat). The slave
//! appends them byte for byte at exactly `offset` and dispatches its own ConsumeQueue and index.
//!
//! A SYNC_MASTER send waits ([`Master::wait_replicated`]) until a slave reported an offset at or
//! past the end of the message, for `slaveTimeout`; with no slave, or one further behind than
//! `haSlaveFallbehindMax`, it does not wait at all. The message is stored in every case.
//!
//! | file | side |
//! |---|---|
//! | `master.rs` | the HA listener, one transfer per slave connection, the acknowledged offset |
//! | `slave.rs` | the connection to the master, appending what it sends, reporting progress |

pub mod master;
pub mod slave;

pub use master::{Master, MasterLimits, Replicated, SlaveView};
pub use slave::{Slave, SlaveLimits, SlaveStatus};

/// A slave's progress report: its CommitLog end as a big-endian i64.
pub const REPORT_BYTES: usize = 8;
/// A chunk header: `[offset i64][size i32]`.
pub const CHUNK_HEADER_BYTES: usize = 12;
/// The largest chunk a slave accepts, whatever `haTransferBatchSize` the master runs with.
pub const CHUNK_BYTES_MAX: usize = 16 * 1024 * 1024;
/// How long a connect to the master may take.
pub const CONNECT_TIMEOUT_MS: u64 = 3_000;
/// Pause between two connection attempts of a slave.
pub const RECONNECT_DELAY_MS: u64 = 1_000;
/// How often a master transfer looks for new data when nothing woke it.
pub const TRANSFER_POLL_MS: u64 = 20;

/// What can end an HA connection. The mapping to send results is in [`Replicated`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("HA connection i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("nothing received for {0} ms")]
    Silent(u64),
    #[error("the peer reported offset {reported}, beyond this master's CommitLog end {max}")]
    OffsetBeyondMaster { reported: u64, max: u64 },
    #[error("the peer reported offset {reported} after {previous}: reports must not go back")]
    OffsetWentBack { reported: u64, previous: u64 },
    #[error("the slave needs offset {needed}, which this master no longer has (its CommitLog starts at {min})")]
    OffsetGone { needed: u64, min: u64 },
    #[error("the master sent data for offset {got}, but this slave's CommitLog ends at {expected}")]
    OffsetMismatch { expected: u64, got: u64 },
    #[error("a chunk of {size} bytes is over the limit of {limit} bytes")]
    ChunkTooLarge { size: i64, limit: usize },
    #[error("store: {0}")]
    Store(#[from] crate::store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
