//! The message store: CommitLog, ConsumeQueue and IndexFile on memory-mapped files.

mod config;
mod error;
pub mod format;
pub mod index;
pub mod mapped_file;
pub mod metadata;

pub use config::{DEFAULT_DELAY_LEVEL_MS, FlushDiskType, StoreConfig};
pub use error::{Error, Result};
