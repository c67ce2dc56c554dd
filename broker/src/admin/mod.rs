//! Administration: the admin request bodies with 4.9.4's JSON shapes (shared with
//! [`crate::processor::admin`]) and the `mqadmin` command line (sub-commands and flags as
//! RocketMQ's, output as its tables or `--json`, non-zero exit codes on failure).
//!
//! | file | what |
//! |---|---|
//! | `body.rs` | `TopicStatsTable`, `ConsumeStats`, connections, ...; the object-key JSON reader and writer |
//! | `cli.rs` | argument parsing, help, exit codes, output |
//! | `commands.rs` | the sub-commands, over [`crate::client::MqClient`] |
//! | `plugin.rs` | `plugin deploy\|list\|describe\|bind\|unbind\|remove\|logs` (Wasm plugins) |
//!
//! Exit codes of `mqadmin`: 0 success, 1 a failure at a server (or the connection), 2 a usage
//! error (unknown command or flag, missing or malformed value), 3 nothing found (no route, no
//! message, no consume stats).

pub mod body;
pub mod cli;
mod commands;
mod plugin;
#[cfg(test)]
mod tests;

pub use cli::run;
