//! The core of the broker: configuration, the message store, the remoting protocol, the name
//! server and the broker's processors.
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
//! * [`remoting`]: RocketMQ's frames and headers, a server and a client.
//! * [`protocol`]: request and response codes, header fields, JSON bodies, message ids.
//! * [`namesrv`]: the name server.
//! * [`processor`]: the broker's request processors and background services.
//! * [`filter`]: tag and SQL92 subscriptions.
//! * [`client`]: our native client (routes, producer, pull), used by the tools.
//! * [`admin`]: the `mqadmin` commands and their output.
//! * [`plugin`]: the Wasm plugin host (filters, routers, transaction checkers).

pub mod admin;
pub mod client;
pub mod config;
pub mod filter;
pub mod ha;
pub mod messaging;
pub mod metrics;
pub mod namesrv;
pub mod plugin;
pub mod processor;
pub mod protocol;
pub mod remoting;
pub mod store;
