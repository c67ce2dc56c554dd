//! The core of the broker: configuration and the message store (remoting, name server and
//! processors follow in their own modules).
//!
//! # Limits
//!
//! | limit | default | key |
//! |---|---|---|
//! | message body | 4 MiB | `maxMessageSize` |
//! | topic name | 127 bytes | (record format) |
//! | properties | 32,767 bytes | (record format) |
//! | CommitLog file | 1 GiB | `mappedFileSizeCommitLog` |
//! | ConsumeQueue file | 300,000 units | `mappedFileSizeConsumeQueue` |
//! | IndexFile | 5,000,000 slots, 20,000,000 entries | `maxHashSlotNum`, `maxIndexNum` |
//!
//! # Modules
//!
//! * [`config`]: `broker.properties` parsed into typed settings.
//! * [`store`]: CommitLog, ConsumeQueue, IndexFile, flush, recovery, retention, metadata files.

pub mod client;
pub mod config;
pub mod filter;
pub mod namesrv;
pub mod processor;
pub mod protocol;
pub mod remoting;
pub mod store;
