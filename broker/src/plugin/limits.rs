//! Every limit of the plugin host, with its unit.

/// Largest component `plugin deploy` accepts.
pub const PLUGIN_WASM_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Linear memory one plugin instance may grow to (a memory bomb traps here).
pub const INSTANCE_MEMORY_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Address space reserved per pooled memory: the whole 32-bit range, so compiled code needs no
/// bounds check on loads and stores (the guard pages trap instead); growth is still capped at
/// `INSTANCE_MEMORY_BYTES_MAX`. Virtual only: 128 slots reserve 512 GiB of address space.
pub const MEMORY_RESERVATION_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Guard region after each pooled memory.
pub const MEMORY_GUARD_BYTES: usize = 2 * 1024 * 1024;
/// Wasm stack per call.
pub const WASM_STACK_BYTES_MAX: usize = 512 * 1024;
/// Live instances across all plugins (the pooling allocator's slots).
pub const POOL_INSTANCES_MAX: u32 = 128;
/// Core instances (and tables) one component may hold (a Rust component has a handful).
pub const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
/// Linear memories one component may hold.
pub const MEMORIES_PER_INSTANCE_MAX: usize = 2;
/// An instance is dropped, not pooled again, after this many calls or once its linear memory
/// has grown past this size (a guest heap only grows and fragments; a fresh instance is cheap).
pub const INSTANCE_CALLS_MAX: u32 = 4_096;
pub const INSTANCE_MEMORY_RECYCLE_BYTES: usize = 8 * 1024 * 1024;
/// Idle instances kept per plugin version.
pub const POOL_IDLE_PER_PLUGIN_MAX: usize = 4;
/// The epoch ticker's period: the deadline's resolution.
pub const EPOCH_TICK_MS: u64 = 1;
/// Deadline of instantiation plus `create`.
pub const CREATE_DEADLINE_MS: u64 = 1_000;
/// Deadline of a filter or router call: a base plus a share per message.
pub const CALL_DEADLINE_BASE_MS: u64 = 20;
pub const CALL_DEADLINE_PER_MESSAGE_US: u64 = 50;
/// Deadline of a transaction check call.
pub const CHECK_DEADLINE_MS: u64 = 200;
/// Messages per plugin call (a plugin's `max-batch` is clamped to this).
pub const BATCH_MESSAGES_MAX: usize = 1024;
/// Batch-level failures (not pinned on one message) within the window that quarantine a plugin.
pub const QUARANTINE_FAILURES: usize = 3;
pub const QUARANTINE_WINDOW_MS: u64 = 60_000;
/// First quarantine; doubled after each failed probe, up to the maximum.
pub const QUARANTINE_BACKOFF_MS_MIN: u64 = 1_000;
pub const QUARANTINE_BACKOFF_MS_MAX: u64 = 300_000;
/// How long a pull whose filter failed waits before answering "nothing yet" (so the consumer
/// does not spin against a broken plugin).
pub const FILTER_FAILURE_HOLD_MS: u64 = 200;
/// Lines kept per plugin for `mqadmin plugin logs`, and the length a line is cut to.
pub const LOG_LINES_MAX: usize = 256;
pub const LOG_LINE_CHARS_MAX: usize = 512;
/// Plugin log lines per second forwarded to the broker log (the buffer keeps them all).
pub const LOG_LINES_PER_SECOND_MAX: u32 = 20;
/// A plugin's own counters (`counter-add`).
pub const CUSTOM_COUNTERS_MAX: usize = 32;
pub const CUSTOM_COUNTER_NAME_CHARS_MAX: usize = 64;
/// Name and version strings a plugin reports.
pub const PLUGIN_INFO_CHARS_MAX: usize = 64;
/// Deployment names: `[A-Za-z0-9_-]`, at most this long.
pub const PLUGIN_NAME_CHARS_MAX: usize = 64;
/// Parameters per deployment, and bytes of all of them.
pub const PARAMS_MAX: usize = 64;
pub const PARAMS_BYTES_MAX: usize = 64 * 1024;
/// Distinct SQL92 expressions the SQL92 engine keeps an instance set for (`sqlFilterEngine=plugin`);
/// one more evicts another. Each holds pool slots (`POOL_INSTANCES_MAX` in all).
pub const SQL_ENGINE_EXPRESSIONS_MAX: usize = 16;
