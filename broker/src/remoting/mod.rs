//! RocketMQ's remoting protocol: frames, the two header encodings, a server that runs one task per
//! connection, and a client that correlates responses by `opaque`.
//!
//! This module knows nothing of topics or the store: handlers get a [`RemotingCommand`] and answer
//! one (or nothing, for oneway requests).
//!
//! # Limits
//!
//! | limit | value | constant |
//! |---|---|---|
//! | frame (length word) | 16 MiB | [`FRAME_BYTES_MAX`] |
//! | header | the frame less the header word | checked in [`codec`] |
//! | connections per server | 65,536 | [`ServerLimits::connections_max`] |
//! | idle connection | 120 s | [`ServerLimits::idle_timeout_ms`] |

pub mod accept;
pub mod client;
pub mod codec;
pub mod command;
pub mod server;
#[cfg(test)]
mod tests;

pub use client::{Client, ClientOptions};
pub use codec::{FRAME_BYTES_MAX, FrameDecoder};
pub use command::{ExtFields, RemotingCommand, SerializeType, VERSION_4_9_4};
pub use server::{Connection, Handler, Server, ServerLimits};

/// What can go wrong on a remoting connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {bytes} bytes is over the limit of {max_bytes} bytes")]
    FrameTooLarge { bytes: u64, max_bytes: usize },
    #[error("malformed frame: {0}")]
    BadFrame(String),
    #[error("malformed header: {0}")]
    BadHeader(String),
    #[error("connecting to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("no response from {addr} within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u64 },
    #[error("connection to {addr} closed")]
    ConnectionClosed { addr: String },
}
