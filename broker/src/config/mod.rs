//! `broker.properties` parsed into a typed [`BrokerConfig`], then validated.
//!
//! # Loading
//!
//! [`BrokerConfig::load`] reads a file (at most [`PROPERTIES_FILE_BYTES_MAX`]), [`properties::parse`]
//! splits it into keys and values with Java `.properties` syntax, each known key is parsed into its
//! typed field, and [`BrokerConfig::validate`] checks the rules that span fields. Keys this broker
//! does not know are returned in [`Loaded::unknown_keys`] so the caller logs them in one warning
//! ([`Loaded::warn_unknown`]) instead of dropping them silently as RocketMQ does.
//!
//! Defaults that depend on the machine (host name, `HOME`, `NAMESRV_ADDR`, CPU count) come from
//! [`HostDefaults`], passed explicitly by the `*_for` constructors so tests do not read the
//! environment.
//!
//! # Where we differ from RocketMQ 4.9.4, on purpose
//!
//! | RocketMQ | here |
//! |---|---|
//! | unknown keys are ignored silently | listed in one warning, with a hint for old or mis-cased names (`mapedFileSizeCommitLog`) |
//! | a value that does not parse is ignored silently and the default stays | [`ConfigError::InvalidValue`] naming the key, the value and what is allowed |
//! | `Boolean.parseBoolean`: anything but `true` (any case) is false | only `true`/`false`, any case |
//! | numbers and enums with a trailing blank fail to parse (and are then ignored) | numbers, booleans and enums are trimmed first |
//! | `brokerIP1`, `brokerIP2`, `namesrvAddr` keep trailing blanks (a classic cause of unreachable brokers) | trimmed; other strings and paths keep them, as in Java |
//! | `haListenPort` is always overwritten with `listenPort + 1` | `listenPort + 1` unless the key is set |
//! | `enableDLegerCommitLog=true` starts a DLedger broker | refused: DLedger is not supported, and its CommitLog format differs |
//! | `diskSpaceWarningLevelRatio`, `diskSpaceCleanForciblyRatio` are JVM system properties (`rocketmq.broker.*`) | ordinary keys |
//! | the file is read as ISO-8859-1 | UTF-8 (a leading BOM is skipped); a file that is not UTF-8 is read as ISO-8859-1 |
//! | a SLAVE with `brokerId <= 0` exits at startup with a message | [`ConfigError::InvalidValue`] |
//!
//! Kept as RocketMQ does: masters get `brokerId` 0 whatever the file says; `diskMaxUsedSpaceRatio`
//! is clamped to 10..=95; `registerNameServerPeriod` is clamped to 10,000..=60,000 ms; the last of
//! duplicate keys wins.
//!
//! New keys (not in RocketMQ): `httpListenPort`, `amqpListenPort`, `amqpDefaultUser`,
//! `amqpDefaultPass`, `amqpUsers`, `amqpFrameMax`, `amqpChannelMax`, `amqpHeartbeat`, `pluginDir`,
//! `sqlFilterEngine`, `sqlFilterPlugin`, `dashboardLogin`, `dashboardUser`, `dashboardPasswordHash`,
//! `runtimeWorkerThreads`, `haSlaveSpinMicros`.

pub mod properties;
#[cfg(test)]
mod tests;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::store::{DEFAULT_DELAY_LEVEL_MS, FlushDiskType, StoreConfig};
use values::*;

pub use properties::PROPERTIES_FILE_BYTES_MAX;

/// What can go wrong loading a broker config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("properties text of {bytes} bytes exceeds the {bytes_max}-byte limit")]
    TooLarge { bytes: u64, bytes_max: u64 },
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("invalid value {value:?} for {key}: expected {allowed}")]
    InvalidValue { key: String, value: String, allowed: String },
}

fn invalid(key: &str, value: impl fmt::Display, allowed: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue { key: key.to_owned(), value: value.to_string(), allowed: allowed.into() }
}

/// `brokerRole`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerRole {
    /// `ASYNC_MASTER`: a send is acknowledged without waiting for a slave.
    AsyncMaster,
    /// `SYNC_MASTER`: a send waits until a slave has the message (`slaveTimeout`).
    SyncMaster,
    /// `SLAVE`: replicates a master of the same `brokerName`; refuses writes.
    Slave,
}

impl BrokerRole {
    /// The Java enum name (`ASYNC_MASTER`, `SYNC_MASTER`, `SLAVE`).
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerRole::AsyncMaster => "ASYNC_MASTER",
            BrokerRole::SyncMaster => "SYNC_MASTER",
            BrokerRole::Slave => "SLAVE",
        }
    }

    pub fn is_master(self) -> bool {
        self != BrokerRole::Slave
    }
}

impl fmt::Display for BrokerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Java enum name of a flush mode (`ASYNC_FLUSH`, `SYNC_FLUSH`).
pub fn flush_disk_type_name(flush: FlushDiskType) -> &'static str {
    match flush {
        FlushDiskType::Async => "ASYNC_FLUSH",
        FlushDiskType::Sync => "SYNC_FLUSH",
    }
}

/// Machine-dependent inputs to the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostDefaults {
    /// Default `brokerName`.
    pub hostname: String,
    /// `storePathRootDir` defaults to `<home_dir>/store`.
    pub home_dir: PathBuf,
    /// Default `namesrvAddr`.
    pub namesrv_addr: Option<String>,
    /// Sizes the default thread pools.
    pub cpus: usize,
}

impl HostDefaults {
    /// Reads the running machine: host name from `/proc/sys/kernel/hostname`, else `$HOSTNAME`,
    /// else `DEFAULT_BROKER` (RocketMQ's fallback); `$HOME`, else `.`; `$NAMESRV_ADDR`; the CPUs
    /// this process may use.
    pub fn detect() -> HostDefaults {
        let non_empty = |s: String| {
            let t = s.trim();
            (!t.is_empty()).then(|| t.to_owned())
        };
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .and_then(non_empty)
            .or_else(|| std::env::var("HOSTNAME").ok().and_then(non_empty))
            .unwrap_or_else(|| "DEFAULT_BROKER".to_owned());
        let home_dir =
            std::env::var_os("HOME").filter(|h| !h.is_empty()).map_or_else(|| PathBuf::from("."), PathBuf::from);
        let namesrv_addr = std::env::var("NAMESRV_ADDR").ok().and_then(non_empty);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        HostDefaults { hostname, home_dir, namesrv_addr, cpus }
    }
}

/// Every setting of one broker. Each field names its Java key, default and unit.
#[derive(Clone, Debug, PartialEq)]
pub struct BrokerConfig {
    // --- identity and addresses ---
    /// `brokerClusterName`, default `DefaultCluster`.
    pub broker_cluster_name: String,
    /// `brokerName`, default the host name (RocketMQ's sample configs use `broker-a`).
    pub broker_name: String,
    /// `brokerId`, default 0. Forced to 0 for masters by [`BrokerConfig::validate`]; a slave needs 1
    /// or more.
    pub broker_id: i64,
    /// `brokerRole`, default `ASYNC_MASTER`.
    pub broker_role: BrokerRole,
    /// `brokerPermission`, bits 4 read, 2 write, 1 inherit; default 6 (read and write).
    pub broker_permission: u32,
    /// `namesrvAddr`, default `$NAMESRV_ADDR`; `host:port` entries separated by `;`. Trimmed.
    pub namesrv_addr: Option<String>,
    /// The entries of [`namesrv_addr`](Self::namesrv_addr), trimmed, empty ones dropped. Derived:
    /// recomputed by [`BrokerConfig::validate`].
    pub namesrv_addrs: Vec<String>,
    /// `listenPort`, default 10911. The VIP port is `listenPort - 2`, the HA port `listenPort + 1`.
    pub listen_port: u16,
    /// `brokerIP1`, default none (detected at startup): the address clients connect to and the
    /// store host written into messages. Trimmed.
    pub broker_ip1: Option<String>,
    /// `brokerIP2`, default none (same as `brokerIP1`): the address slaves replicate from. Trimmed.
    pub broker_ip2: Option<String>,
    /// `bindAddress` (RocketMQ 5's key), default none, meaning every interface (`0.0.0.0`): the IP
    /// the listen, VIP and HA ports bind to, so several brokers can share a host on 127.0.0.x.
    /// Trimmed.
    pub bind_address: Option<String>,

    // --- store paths and file sizes ---
    /// `storePathRootDir`, default `~/store` (`$HOME/store`).
    pub store_path_root_dir: PathBuf,
    /// `storePathCommitLog`, default none, meaning `<storePathRootDir>/commitlog`; see
    /// [`BrokerConfig::commit_log_dir`].
    pub store_path_commit_log: Option<PathBuf>,
    /// `mappedFileSizeCommitLog`, bytes, default 1,073,741,824 (1 GiB); 64 KiB to 2 GiB - 1.
    pub mapped_file_size_commit_log_bytes: usize,
    /// `mappedFileSizeConsumeQueue`, bytes, default 6,000,000 (300,000 units of 20 bytes).
    pub mapped_file_size_consume_queue_bytes: usize,
    /// `maxMessageSize`, bytes of body, default 4,194,304 (4 MiB).
    pub max_message_size_bytes: usize,

    // --- retention and disk space ---
    /// `deleteWhen`, hours of the day (0-23) at which expired files are deleted, `;`-separated;
    /// default `04`. Empty: only when the disk is fuller than `diskMaxUsedSpaceRatio`.
    pub delete_when_hours: Vec<u32>,
    /// `fileReservedTime`, hours a CommitLog file is kept after its last write, default 72
    /// (RocketMQ's sample configs use 48).
    pub file_reserved_time_hours: u64,
    /// `diskMaxUsedSpaceRatio`, percent, default 75, clamped to 10..=95: above it expired files are
    /// deleted at any hour.
    pub disk_max_used_space_ratio_percent: u32,
    /// `diskSpaceWarningLevelRatio` (a system property in RocketMQ), fraction, default 0.90: above
    /// it writes are refused as disk full.
    pub disk_space_warning_level_ratio: f64,
    /// `diskSpaceCleanForciblyRatio` (a system property in RocketMQ), fraction, default 0.85: above
    /// it even unexpired files are deleted, oldest first.
    pub disk_space_clean_forcibly_ratio: f64,
    /// `cleanResourceInterval`, ms, default 10,000: how often retention and disk checks run.
    pub clean_resource_interval_ms: u64,
    /// `cleanFileForciblyEnable`, default true.
    pub clean_file_forcibly_enable: bool,

    // --- writing and flushing ---
    /// `flushDiskType`, default `ASYNC_FLUSH`.
    pub flush_disk_type: FlushDiskType,
    /// `useReentrantLockWhenPutMessage`, default true.
    pub use_reentrant_lock_when_put_message: bool,
    /// `flushIntervalCommitLog`, ms, default 500.
    pub flush_interval_commit_log_ms: u64,
    /// `flushCommitLogLeastPages`, pages of 4 KiB, default 4.
    pub flush_commit_log_least_pages: usize,
    /// `flushCommitLogThoroughInterval`, ms, default 10,000: a flush ignores the least-pages rule
    /// at least this often.
    pub flush_commit_log_thorough_interval_ms: u64,
    /// `flushIntervalConsumeQueue`, ms, default 1,000.
    pub flush_interval_consume_queue_ms: u64,
    /// `flushConsumeQueueLeastPages`, pages of 4 KiB, default 2.
    pub flush_consume_queue_least_pages: usize,
    /// `syncFlushTimeout`, ms, default 5,000: a SYNC_FLUSH send waits this long for the disk.
    pub sync_flush_timeout_ms: u64,
    /// `checkCRCOnRecover`, default true.
    pub check_crc_on_recover: bool,
    /// `transientStorePoolEnable`, default false. Accepted and ignored: there is no off-heap write
    /// buffer pool here.
    pub transient_store_pool_enable: bool,
    /// `enableDLegerCommitLog`, default false; `true` is refused.
    pub enable_dleger_commit_log: bool,

    // --- index and delayed messages ---
    /// `messageIndexEnable`, default true.
    pub message_index_enable: bool,
    /// `maxHashSlotNum`, slots per IndexFile, default 5,000,000.
    pub max_hash_slot_num: usize,
    /// `maxIndexNum`, entries per IndexFile, default 20,000,000.
    pub max_index_num: usize,
    /// `messageDelayLevel`, ms per level 1..; default `1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m
    /// 20m 30m 1h 2h` (units s, m, h, d).
    pub message_delay_level_ms: Vec<u64>,

    // --- topics, subscriptions, threads, polling ---
    /// `autoCreateTopicEnable`, default true: unknown topics are created from `TBW102`.
    pub auto_create_topic_enable: bool,
    /// `autoCreateSubscriptionGroup`, default true.
    pub auto_create_subscription_group: bool,
    /// `defaultTopicQueueNums`, queues, default 8.
    pub default_topic_queue_nums: u32,
    /// `sendMessageThreadPoolNums`, threads, default min(CPUs, 4).
    pub send_message_thread_pool_nums: usize,
    /// `pullMessageThreadPoolNums`, threads, default 16 + 2 × CPUs.
    pub pull_message_thread_pool_nums: usize,
    /// `longPollingEnable`, default true.
    pub long_polling_enable: bool,
    /// `shortPollingTimeMills`, ms, default 1,000: how long a pull waits when long polling is off.
    pub short_polling_time_ms: u64,
    /// `enablePropertyFilter`, default false (as 4.9.4): whether SQL92 subscriptions are served.
    pub enable_property_filter: bool,
    /// `flushConsumerOffsetInterval`, ms, default 5,000: how often consumer offsets are persisted.
    pub flush_consumer_offset_interval_ms: u64,

    // --- replication (HA) ---
    /// `slaveReadEnable`, default false: whether consumers may be sent to a slave.
    pub slave_read_enable: bool,
    /// `accessMessageInMemoryMaxRatio`, percent of RAM, default 40: with `slaveReadEnable`, a pull
    /// further behind the CommitLog end than this share of memory is told to go to the slave.
    pub access_message_in_memory_max_ratio: u32,
    /// `slaveTimeout`, ms, default 3,000: a SYNC_MASTER send waits this long for a slave.
    pub slave_timeout_ms: u64,
    /// `haMasterAddress`, `host:port` of the master's HA port, default none (learned from the name
    /// server). Trimmed.
    pub ha_master_address: Option<String>,
    /// `haListenPort`, default none, meaning `listenPort + 1`; see [`BrokerConfig::ha_port`].
    pub ha_listen_port: Option<u16>,
    /// `haSendHeartbeatInterval`, ms, default 5,000.
    pub ha_send_heartbeat_interval_ms: u64,
    /// `haHousekeepingInterval`, ms, default 20,000: an HA connection silent this long is closed.
    pub ha_housekeeping_interval_ms: u64,
    /// `haTransferBatchSize`, bytes per chunk, default 32,768.
    pub ha_transfer_batch_size_bytes: usize,
    /// `haSlaveFallbehindMax`, bytes, default 268,435,456 (256 MiB): a slave further behind does not
    /// count for SYNC_MASTER.
    pub ha_slave_fallbehind_max_bytes: u64,
    /// `haSlaveSpinMicros`, µs, default 50 (not in RocketMQ): after each report a slave polls for
    /// the master's next burst this long before it sleeps, within a quarter of one CPU; 0 never
    /// polls. See `ha::slave`.
    pub ha_slave_spin_us: u64,

    // --- transactions ---
    /// `transactionTimeOut`, ms, default 6,000: a half message older than this is checked back.
    pub transaction_time_out_ms: u64,
    /// `transactionCheckMax`, checks, default 15: then the half message is discarded.
    pub transaction_check_max: u32,
    /// `transactionCheckInterval`, ms, default 60,000.
    pub transaction_check_interval_ms: u64,

    // --- name server registration ---
    /// `registerNameServerPeriod`, ms, default 30,000, clamped to 10,000..=60,000.
    pub register_name_server_period_ms: u64,
    /// `registerBrokerTimeoutMills`, ms, default 6,000.
    pub register_broker_timeout_ms: u64,
    /// `forceRegister`, default true.
    pub force_register: bool,
    /// `compressedRegister`, default false.
    pub compressed_register: bool,

    // --- trace and ACL ---
    /// `traceTopicEnable`, default false.
    pub trace_topic_enable: bool,
    /// `msgTraceTopicName`, default `RMQ_SYS_TRACE_TOPIC`.
    pub msg_trace_topic_name: String,
    /// `aclEnable`, default false.
    pub acl_enable: bool,

    /// `runtimeWorkerThreads`, default 0 (automatic: one less than the CPUs, at least 1): the
    /// threads that serve every door's connections and requests. The store's dispatcher,
    /// flusher and prefault threads and the HA threads are apart; the automatic value leaves
    /// them a CPU.
    pub runtime_worker_threads: usize,

    // --- doors of this broker (not in RocketMQ) ---
    /// `httpListenPort`, default 8080; 0 turns the HTTP gateway off.
    pub http_listen_port: u16,
    /// `amqpListenPort`, default 5672; 0 turns the AMQP gateway off.
    pub amqp_listen_port: u16,
    /// `amqpDefaultUser`, the AMQP door's one user, default `guest`. As in RabbitMQ, the user
    /// `guest` may only log in from a loopback address.
    pub amqp_default_user: String,
    /// `amqpDefaultPass`, that user's password, default `guest`.
    pub amqp_default_pass: String,
    /// `amqpUsers`, more AMQP users and the vhosts each may open, default none:
    /// `user:password:vhost,vhost;user:password:vhost` (the vhosts named here exist, with `/`).
    /// Never printed, like the passwords it holds.
    pub amqp_users: String,
    /// `amqpFrameMax`, bytes, default 131,072 (RabbitMQ's); the largest frame the AMQP door
    /// offers in `connection.tune` (4,096 to 1 MiB).
    pub amqp_frame_max_bytes: u32,
    /// `amqpChannelMax`, default 2,047 (RabbitMQ's); channels per AMQP connection.
    pub amqp_channel_max: u16,
    /// `amqpHeartbeat`, seconds, default 60 (RabbitMQ's); 0 offers no heartbeats.
    pub amqp_heartbeat_s: u16,
    /// `pluginDir`, directory of WebAssembly plugins, default none (no plugins).
    pub plugin_dir: Option<PathBuf>,
    /// `sqlFilterEngine`, `builtin` (default) or `plugin`: what evaluates SQL92 subscriptions.
    pub sql_filter_engine: crate::filter::SqlFilterEngine,
    /// `sqlFilterPlugin`, the SQL92 filter component (`sql92_filter.wasm`, built from
    /// `plugins/sql92-filter`), default none; required by `sqlFilterEngine=plugin`.
    pub sql_filter_plugin: Option<PathBuf>,
    /// `dashboardLogin`: `auto` (default: login on unless the HTTP door binds a loopback
    /// address), `on` or `off`. Whether the console (`/dashboard/`) and the HTTP door's write
    /// requests from browsers need a logged-in user (see `gateway-http`'s `auth.rs`).
    pub dashboard_login: DashboardLogin,
    /// `dashboardUser`, the console's user, default none (no user: nobody can log in, so with
    /// login on the console is read-only).
    pub dashboard_user: Option<String>,
    /// `dashboardPasswordHash`, that user's password as
    /// `pbkdf2-sha256:<iterations>:<salt hex>:<derived key hex>`, default none. No default
    /// password is shipped; the README shows how to make one.
    pub dashboard_password_hash: Option<String>,
}

/// `dashboardLogin`: when the console needs a logged-in user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DashboardLogin {
    /// On unless the HTTP door binds a loopback address only.
    Auto,
    On,
    Off,
}

impl DashboardLogin {
    pub fn name(self) -> &'static str {
        match self {
            DashboardLogin::Auto => "auto",
            DashboardLogin::On => "on",
            DashboardLogin::Off => "off",
        }
    }
}

/// A parsed and validated config, with the keys that were not recognised.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    pub config: BrokerConfig,
    /// Keys present in the text that this broker does not know, sorted and without duplicates.
    pub unknown_keys: Vec<String>,
}

impl Loaded {
    /// Logs the unknown keys, if any, as one warning.
    pub fn warn_unknown(&self) {
        if let Some(keys) = describe_unknown_keys(&self.unknown_keys) {
            tracing::warn!(message = "Ignoring config keys this broker does not know.", %keys);
        }
    }
}

/// The unknown keys as one line, each with a hint where one helps; `None` if there are none.
pub fn describe_unknown_keys(keys: &[String]) -> Option<String> {
    if keys.is_empty() {
        return None;
    }
    let described: Vec<String> = keys
        .iter()
        .map(|key| match unknown_key_hint(key) {
            Some(hint) => format!("{key} ({hint})"),
            None => key.clone(),
        })
        .collect();
    Some(described.join(", "))
}

fn unknown_key_hint(key: &str) -> Option<String> {
    let renamed = match key {
        "mapedFileSizeCommitLog" => Some("mappedFileSizeCommitLog"),
        "mapedFileSizeConsumeQueue" => Some("mappedFileSizeConsumeQueue"),
        _ => None,
    };
    if let Some(new) = renamed {
        return Some(format!("renamed {new} in RocketMQ 4.6"));
    }
    KEYS.iter().find(|spec| spec.key.eq_ignore_ascii_case(key)).map(|spec| format!("did you mean {}?", spec.key))
}

impl Default for BrokerConfig {
    /// Same as [`BrokerConfig::defaults`].
    fn default() -> BrokerConfig {
        BrokerConfig::defaults()
    }
}

impl BrokerConfig {
    /// The 4.9.4 defaults for this machine ([`HostDefaults::detect`]).
    pub fn defaults() -> BrokerConfig {
        BrokerConfig::defaults_for(&HostDefaults::detect())
    }

    /// The 4.9.4 defaults, with the machine-dependent ones taken from `host`.
    pub fn defaults_for(host: &HostDefaults) -> BrokerConfig {
        let cpus = host.cpus.max(1);
        let namesrv_addr = host.namesrv_addr.clone();
        BrokerConfig {
            broker_cluster_name: "DefaultCluster".to_owned(),
            broker_name: host.hostname.clone(),
            broker_id: 0,
            broker_role: BrokerRole::AsyncMaster,
            broker_permission: 6,
            namesrv_addrs: namesrv_addr.as_deref().map(split_namesrv_addr).unwrap_or_default(),
            namesrv_addr,
            listen_port: 10911,
            broker_ip1: None,
            broker_ip2: None,
            bind_address: None,
            store_path_root_dir: host.home_dir.join("store"),
            store_path_commit_log: None,
            mapped_file_size_commit_log_bytes: 1024 * 1024 * 1024,
            mapped_file_size_consume_queue_bytes: 300_000 * 20,
            max_message_size_bytes: 4 * 1024 * 1024,
            delete_when_hours: vec![4],
            file_reserved_time_hours: 72,
            disk_max_used_space_ratio_percent: 75,
            disk_space_warning_level_ratio: 0.90,
            disk_space_clean_forcibly_ratio: 0.85,
            clean_resource_interval_ms: 10_000,
            clean_file_forcibly_enable: true,
            flush_disk_type: FlushDiskType::Async,
            use_reentrant_lock_when_put_message: true,
            flush_interval_commit_log_ms: 500,
            flush_commit_log_least_pages: 4,
            flush_commit_log_thorough_interval_ms: 10_000,
            flush_interval_consume_queue_ms: 1_000,
            flush_consume_queue_least_pages: 2,
            sync_flush_timeout_ms: 5_000,
            check_crc_on_recover: true,
            transient_store_pool_enable: false,
            enable_dleger_commit_log: false,
            message_index_enable: true,
            max_hash_slot_num: 5_000_000,
            max_index_num: 20_000_000,
            message_delay_level_ms: DEFAULT_DELAY_LEVEL_MS.to_vec(),
            auto_create_topic_enable: true,
            auto_create_subscription_group: true,
            default_topic_queue_nums: 8,
            send_message_thread_pool_nums: cpus.min(4),
            pull_message_thread_pool_nums: 16 + cpus * 2,
            long_polling_enable: true,
            short_polling_time_ms: 1_000,
            enable_property_filter: false,
            flush_consumer_offset_interval_ms: 5_000,
            slave_read_enable: false,
            access_message_in_memory_max_ratio: 40,
            slave_timeout_ms: 3_000,
            ha_master_address: None,
            ha_listen_port: None,
            ha_send_heartbeat_interval_ms: 5_000,
            ha_housekeeping_interval_ms: 20_000,
            ha_transfer_batch_size_bytes: 32 * 1024,
            ha_slave_fallbehind_max_bytes: 256 * 1024 * 1024,
            ha_slave_spin_us: 50,
            transaction_time_out_ms: 6_000,
            transaction_check_max: 15,
            transaction_check_interval_ms: 60_000,
            register_name_server_period_ms: 30_000,
            register_broker_timeout_ms: 6_000,
            force_register: true,
            compressed_register: false,
            trace_topic_enable: false,
            msg_trace_topic_name: "RMQ_SYS_TRACE_TOPIC".to_owned(),
            acl_enable: false,
            http_listen_port: 8080,
            amqp_listen_port: 5672,
            runtime_worker_threads: 0,
            amqp_default_user: "guest".to_owned(),
            amqp_default_pass: "guest".to_owned(),
            amqp_users: String::new(),
            amqp_frame_max_bytes: 131_072,
            amqp_channel_max: 2047,
            amqp_heartbeat_s: 60,
            plugin_dir: None,
            sql_filter_engine: crate::filter::SqlFilterEngine::Builtin,
            sql_filter_plugin: None,
            dashboard_login: DashboardLogin::Auto,
            dashboard_user: None,
            dashboard_password_hash: None,
        }
    }

    /// Reads and parses a `.properties` file with this machine's defaults.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Io`] if the file cannot be read, [`ConfigError::TooLarge`] if it is larger
    /// than [`PROPERTIES_FILE_BYTES_MAX`] (checked before reading it), and everything
    /// [`BrokerConfig::from_properties_str`] returns.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        BrokerConfig::load_for(path, &HostDefaults::detect())
    }

    /// [`BrokerConfig::load`] with explicit machine defaults.
    ///
    /// # Errors
    ///
    /// As [`BrokerConfig::load`].
    pub fn load_for(path: &Path, host: &HostDefaults) -> Result<Loaded, ConfigError> {
        BrokerConfig::from_properties_str_for(&read_properties_file(path)?, host)
    }

    /// Parses `.properties` text over this machine's defaults and validates the result.
    ///
    /// # Errors
    ///
    /// [`ConfigError::TooLarge`] and [`ConfigError::Syntax`] from [`properties::parse`],
    /// [`ConfigError::InvalidValue`] for a value that does not parse or breaks a rule of
    /// [`BrokerConfig::validate`].
    pub fn from_properties_str(text: &str) -> Result<Loaded, ConfigError> {
        BrokerConfig::from_properties_str_for(text, &HostDefaults::detect())
    }

    /// [`BrokerConfig::from_properties_str`] with explicit machine defaults.
    ///
    /// # Errors
    ///
    /// As [`BrokerConfig::from_properties_str`].
    pub fn from_properties_str_for(text: &str, host: &HostDefaults) -> Result<Loaded, ConfigError> {
        // As in java.util.Properties the last of duplicate keys wins; the map also sorts them.
        let values: BTreeMap<String, String> =
            properties::parse(text)?.into_iter().map(|entry| (entry.key, entry.value)).collect();
        let mut config = BrokerConfig::defaults_for(host);
        let mut unknown_keys = Vec::new();
        for (key, value) in &values {
            match KEYS.iter().find(|spec| spec.key == key) {
                Some(spec) => (spec.apply)(&mut config, value)?,
                None => unknown_keys.push(key.clone()),
            }
        }
        config.validate()?;
        Ok(Loaded { config, unknown_keys })
    }

    /// Every key this broker reads, in the order [`BrokerConfig::to_properties`] writes them.
    pub fn keys() -> impl Iterator<Item = &'static str> {
        KEYS.iter().map(|spec| spec.key)
    }

    /// The config as `.properties` text with every key that has a value (unset options are left
    /// out). For a config that passed [`BrokerConfig::validate`],
    /// [`BrokerConfig::from_properties_str`] reads it back to an equal config.
    pub fn to_properties(&self) -> String {
        let mut out = String::new();
        for spec in KEYS {
            if let Some(value) = (spec.show)(self) {
                out.push_str(&properties::escape_key(spec.key));
                out.push('=');
                out.push_str(&properties::escape_value(&value));
                out.push('\n');
            }
        }
        out
    }

    /// Applies RocketMQ's adjustments and checks the rules between and within fields:
    ///
    /// * masters get `brokerId` 0 (as RocketMQ does); a SLAVE needs `brokerId` >= 1;
    /// * `diskMaxUsedSpaceRatio` is clamped to 10..=95 and `registerNameServerPeriod` to
    ///   10,000..=60,000 ms (as RocketMQ does); `namesrv_addrs` is recomputed;
    /// * `listenPort` is 3..=65534 so that the VIP and HA ports exist, and the broker's ports differ;
    /// * `mappedFileSizeCommitLog` is at least 64 KiB; `maxMessageSize` is 1 to
    ///   `mappedFileSizeCommitLog - 1`; `deleteWhen` hours are 0..=23; and the other ranges named in
    ///   the errors.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidValue`] for the first rule broken.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        if self.broker_role.is_master() {
            self.broker_id = 0;
        } else if self.broker_id <= 0 {
            return Err(invalid("brokerId", self.broker_id, "1 or more when brokerRole is SLAVE"));
        }
        self.disk_max_used_space_ratio_percent = self.disk_max_used_space_ratio_percent.clamp(10, 95);
        self.register_name_server_period_ms = self.register_name_server_period_ms.clamp(10_000, 60_000);

        for (key, name) in [("brokerClusterName", &self.broker_cluster_name), ("brokerName", &self.broker_name)] {
            if name.trim().is_empty() {
                return Err(invalid(key, name, "a non-empty name"));
            }
        }
        if self.broker_permission > 7 {
            return Err(invalid("brokerPermission", self.broker_permission, "0 to 7 (4 read, 2 write, 1 inherit)"));
        }

        self.namesrv_addrs = match &self.namesrv_addr {
            None => Vec::new(),
            Some(raw) => {
                let addrs = split_namesrv_addr(raw);
                if addrs.is_empty() || !addrs.iter().all(|a| is_host_port(a)) {
                    return Err(invalid(
                        "namesrvAddr",
                        raw,
                        "host:port entries separated by ';', e.g. 127.0.0.1:9876;192.168.0.1:9876",
                    ));
                }
                addrs
            }
        };
        if let Some(addr) = &self.bind_address
            && addr.parse::<std::net::IpAddr>().is_err()
        {
            return Err(invalid("bindAddress", addr, "an IP address such as 0.0.0.0 or 127.0.0.2"));
        }
        for (key, addr) in [("brokerIP1", &self.broker_ip1), ("brokerIP2", &self.broker_ip2)] {
            if let Some(addr) = addr
                && (addr.is_empty() || addr.contains(char::is_whitespace))
            {
                return Err(invalid(key, addr, "an IP address or host name without blanks"));
            }
        }
        if let Some(addr) = &self.ha_master_address
            && !is_host_port(addr)
        {
            return Err(invalid("haMasterAddress", addr, "host:port of the master's HA port"));
        }

        self.validate_ports()?;
        if self.sql_filter_engine == crate::filter::SqlFilterEngine::Plugin && self.sql_filter_plugin.is_none() {
            return Err(invalid("sqlFilterEngine", "plugin", "builtin, or plugin with sqlFilterPlugin set"));
        }

        if self.store_path_root_dir.as_os_str().is_empty() {
            return Err(invalid("storePathRootDir", "", "a directory"));
        }
        let int_max = i32::MAX as usize;
        if !(64 * 1024..=int_max).contains(&self.mapped_file_size_commit_log_bytes) {
            return Err(invalid(
                "mappedFileSizeCommitLog",
                self.mapped_file_size_commit_log_bytes,
                format!("65536 (64 KiB) to {int_max} bytes"),
            ));
        }
        if !(20..=int_max).contains(&self.mapped_file_size_consume_queue_bytes) {
            return Err(invalid(
                "mappedFileSizeConsumeQueue",
                self.mapped_file_size_consume_queue_bytes,
                format!("20 (one unit) to {int_max} bytes"),
            ));
        }
        if self.max_message_size_bytes == 0 || self.max_message_size_bytes >= self.mapped_file_size_commit_log_bytes {
            return Err(invalid(
                "maxMessageSize",
                self.max_message_size_bytes,
                format!(
                    "1 to {} bytes (less than mappedFileSizeCommitLog)",
                    self.mapped_file_size_commit_log_bytes - 1
                ),
            ));
        }
        if let Some(hour) = self.delete_when_hours.iter().find(|&&h| h > 23) {
            return Err(invalid("deleteWhen", hour, "hours 0 to 23 separated by ';', e.g. 04 or 04;16"));
        }
        if self.file_reserved_time_hours > i32::MAX as u64 {
            return Err(invalid("fileReservedTime", self.file_reserved_time_hours, format!("0 to {} hours", i32::MAX)));
        }
        for (key, ratio) in [
            ("diskSpaceWarningLevelRatio", self.disk_space_warning_level_ratio),
            ("diskSpaceCleanForciblyRatio", self.disk_space_clean_forcibly_ratio),
        ] {
            if !(ratio > 0.0 && ratio <= 1.0) {
                return Err(invalid(key, ratio, "a number greater than 0 and at most 1, e.g. 0.90"));
            }
        }

        for (key, value) in [
            ("cleanResourceInterval", self.clean_resource_interval_ms),
            ("flushIntervalCommitLog", self.flush_interval_commit_log_ms),
            ("flushCommitLogThoroughInterval", self.flush_commit_log_thorough_interval_ms),
            ("flushIntervalConsumeQueue", self.flush_interval_consume_queue_ms),
            ("syncFlushTimeout", self.sync_flush_timeout_ms),
            ("slaveTimeout", self.slave_timeout_ms),
            ("haSendHeartbeatInterval", self.ha_send_heartbeat_interval_ms),
            ("haHousekeepingInterval", self.ha_housekeeping_interval_ms),
            ("haTransferBatchSize", self.ha_transfer_batch_size_bytes as u64),
            ("shortPollingTimeMills", self.short_polling_time_ms),
            ("transactionCheckInterval", self.transaction_check_interval_ms),
            ("registerBrokerTimeoutMills", self.register_broker_timeout_ms),
            ("defaultTopicQueueNums", u64::from(self.default_topic_queue_nums)),
            ("sendMessageThreadPoolNums", self.send_message_thread_pool_nums as u64),
            ("pullMessageThreadPoolNums", self.pull_message_thread_pool_nums as u64),
            ("maxHashSlotNum", self.max_hash_slot_num as u64),
            ("maxIndexNum", self.max_index_num as u64),
        ] {
            if value == 0 {
                return Err(invalid(key, value, "1 or more"));
            }
        }
        // IndexFile: 40-byte header, 4 bytes per slot, 20 per entry; RocketMQ sizes it in an int.
        let index_file_bytes = (self.max_hash_slot_num as u64)
            .saturating_mul(4)
            .saturating_add((self.max_index_num as u64).saturating_mul(20))
            .saturating_add(40);
        if index_file_bytes > i32::MAX as u64 {
            return Err(invalid(
                "maxIndexNum",
                self.max_index_num,
                format!("an IndexFile of at most {} bytes (40 + 4 x maxHashSlotNum + 20 x maxIndexNum)", i32::MAX),
            ));
        }
        if self.message_delay_level_ms.is_empty()
            || self.message_delay_level_ms.iter().any(|ms| !ms.is_multiple_of(1000))
        {
            return Err(invalid(
                "messageDelayLevel",
                show_delay_levels(&self.message_delay_level_ms),
                "at least one level, each a whole number of seconds",
            ));
        }
        if self.enable_dleger_commit_log {
            return Err(invalid("enableDLegerCommitLog", true, "false (DLedger is not supported)"));
        }
        let topic = &self.msg_trace_topic_name;
        if topic.is_empty() || topic.len() > crate::store::format::TOPIC_BYTES_MAX {
            return Err(invalid(
                "msgTraceTopicName",
                topic,
                format!("a topic name of 1 to {} bytes", crate::store::format::TOPIC_BYTES_MAX),
            ));
        }
        Ok(())
    }

    fn validate_ports(&self) -> Result<(), ConfigError> {
        if !(3..=65534).contains(&self.listen_port) {
            return Err(invalid(
                "listenPort",
                self.listen_port,
                "3 to 65534 (listenPort - 2 and listenPort + 1 must be ports too)",
            ));
        }
        if self.ha_listen_port == Some(0) {
            return Err(invalid("haListenPort", 0, "1 to 65535"));
        }
        let ports = [
            ("listenPort - 2 (VIP port)", self.vip_port()),
            ("listenPort", self.listen_port),
            ("haListenPort", self.ha_port()),
            ("httpListenPort", self.http_listen_port),
            ("amqpListenPort", self.amqp_listen_port),
        ];
        for (i, &(key, port)) in ports.iter().enumerate() {
            if port == 0 {
                continue;
            }
            if let Some(&(other, _)) = ports[..i].iter().find(|&&(_, p)| p == port) {
                return Err(invalid(key, port, format!("a port not already used by {other}")));
            }
        }
        Ok(())
    }

    /// The VIP ("fast") remoting port, `listenPort - 2` (10909 by default).
    pub fn vip_port(&self) -> u16 {
        self.listen_port.saturating_sub(2)
    }

    /// Worker threads of the broker's runtime: `runtimeWorkerThreads`, or when it is 0 one less
    /// than the CPUs this process may use, at least 1. On a small host shared with clients (or
    /// a slave), a worker per CPU loses more to waking and stealing between workers than the
    /// extra worker gains.
    pub fn runtime_workers(&self) -> usize {
        match self.runtime_worker_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1)).max(1),
            n => n,
        }
    }

    /// The HA port: `haListenPort` if set, else `listenPort + 1` (10912 by default).
    pub fn ha_port(&self) -> u16 {
        self.ha_listen_port.unwrap_or(self.listen_port.saturating_add(1))
    }

    /// `storePathCommitLog` if set, else `<storePathRootDir>/commitlog`.
    pub fn commit_log_dir(&self) -> PathBuf {
        self.store_path_commit_log.clone().unwrap_or_else(|| self.store_path_root_dir.join("commitlog"))
    }

    /// The store's settings: paths, file sizes, flushing, retention, index and delay levels.
    pub fn store_config(&self) -> StoreConfig {
        let mut store = StoreConfig::new(&self.store_path_root_dir);
        store.commit_log_dir = self.commit_log_dir();
        store.commit_log_file_bytes = self.mapped_file_size_commit_log_bytes;
        store.consume_queue_file_bytes = self.mapped_file_size_consume_queue_bytes;
        store.flush_disk_type = self.flush_disk_type;
        store.flush_interval_commit_log_ms = self.flush_interval_commit_log_ms;
        store.flush_commit_log_least_pages = self.flush_commit_log_least_pages;
        store.flush_commit_log_thorough_interval_ms = self.flush_commit_log_thorough_interval_ms;
        store.flush_interval_consume_queue_ms = self.flush_interval_consume_queue_ms;
        store.sync_flush_timeout_ms = self.sync_flush_timeout_ms;
        store.message_bytes_max = self.max_message_size_bytes;
        store.message_index_enable = self.message_index_enable;
        store.index_hash_slots = self.max_hash_slot_num;
        store.index_entries_max = self.max_index_num;
        store.check_crc_on_recover = self.check_crc_on_recover;
        store.file_reserved_time_hours = self.file_reserved_time_hours;
        store.delete_when_hours = self.delete_when_hours.clone();
        store.disk_max_used_space_ratio_percent = self.disk_max_used_space_ratio_percent;
        store.disk_space_clean_forcibly_ratio = self.disk_space_clean_forcibly_ratio;
        store.disk_space_warning_level_ratio = self.disk_space_warning_level_ratio;
        store.clean_file_forcibly_enable = self.clean_file_forcibly_enable;
        store.clean_resource_interval_ms = self.clean_resource_interval_ms;
        store.message_delay_level_ms = self.message_delay_level_ms.clone();
        store
    }
}

/// Text from file bytes: UTF-8 without a leading BOM, else ISO-8859-1 as Java reads it.
/// Reads a `.properties` file of at most [`PROPERTIES_FILE_BYTES_MAX`] (checked before reading)
/// as text: UTF-8 (a BOM is skipped), anything else as ISO-8859-1, as Java reads a stream.
///
/// # Errors
///
/// [`ConfigError::Io`] if the file cannot be read, [`ConfigError::TooLarge`] over the limit.
pub fn read_properties_file(path: &Path) -> Result<String, ConfigError> {
    let io_error = |source| ConfigError::Io { path: path.to_owned(), source };
    let bytes_max = PROPERTIES_FILE_BYTES_MAX as u64;
    let file = File::open(path).map_err(io_error)?;
    let len = file.metadata().map_err(io_error)?.len();
    if len > bytes_max {
        return Err(ConfigError::TooLarge { bytes: len, bytes_max });
    }
    let mut bytes = Vec::new();
    // The file may grow between the check and the read: read one byte past the limit at most.
    file.take(bytes_max + 1).read_to_end(&mut bytes).map_err(io_error)?;
    if bytes.len() as u64 > bytes_max {
        return Err(ConfigError::TooLarge { bytes: bytes.len() as u64, bytes_max });
    }
    Ok(decode_text(bytes))
}

fn decode_text(bytes: Vec<u8>) -> String {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    match std::str::from_utf8(body) {
        Ok(text) => text.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

fn split_namesrv_addr(raw: &str) -> Vec<String> {
    raw.split(';').map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned).collect()
}

/// `host:port` or `[v6]:port`, as RocketMQ splits it at the last `:`.
fn is_host_port(addr: &str) -> bool {
    match addr.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok_and(|p| p != 0)
        }
        None => false,
    }
}

// ---------------------------------------------------------------------------------------------
// The key table: one row per Java key, driving parsing, `to_properties` and the unknown-key check.

struct KeySpec {
    key: &'static str,
    apply: fn(&mut BrokerConfig, &str) -> Result<(), ConfigError>,
    show: fn(&BrokerConfig) -> Option<String>,
}

macro_rules! key_table {
    ($( $key:literal => $field:ident : $parse:expr, $show:expr; )*) => {
        const KEYS: &[KeySpec] = &[$(
            KeySpec {
                key: $key,
                apply: |config, raw| {
                    config.$field = ($parse)($key, raw)?;
                    Ok(())
                },
                show: |config| ($show)(&config.$field),
            },
        )*];
    };
}

key_table! {
    "brokerClusterName" => broker_cluster_name: text, show;
    "brokerName" => broker_name: text, show;
    "brokerId" => broker_id: int, show;
    "brokerRole" => broker_role: broker_role, show;
    "brokerPermission" => broker_permission: int, show;
    "namesrvAddr" => namesrv_addr: trimmed_opt, show_opt;
    "listenPort" => listen_port: int, show;
    "brokerIP1" => broker_ip1: trimmed_opt, show_opt;
    "brokerIP2" => broker_ip2: trimmed_opt, show_opt;
    "bindAddress" => bind_address: trimmed_opt, show_opt;
    "storePathRootDir" => store_path_root_dir: path, show_path;
    "storePathCommitLog" => store_path_commit_log: path_opt, show_path_opt;
    "mappedFileSizeCommitLog" => mapped_file_size_commit_log_bytes: int, show;
    "mappedFileSizeConsumeQueue" => mapped_file_size_consume_queue_bytes: int, show;
    "maxMessageSize" => max_message_size_bytes: int, show;
    "deleteWhen" => delete_when_hours: hours, show_hours;
    "fileReservedTime" => file_reserved_time_hours: int, show;
    "diskMaxUsedSpaceRatio" => disk_max_used_space_ratio_percent: percent_clamped, show;
    "diskSpaceWarningLevelRatio" => disk_space_warning_level_ratio: ratio, show;
    "diskSpaceCleanForciblyRatio" => disk_space_clean_forcibly_ratio: ratio, show;
    "cleanResourceInterval" => clean_resource_interval_ms: int, show;
    "cleanFileForciblyEnable" => clean_file_forcibly_enable: boolean, show;
    "flushDiskType" => flush_disk_type: flush_disk_type, show_flush_disk_type;
    "useReentrantLockWhenPutMessage" => use_reentrant_lock_when_put_message: boolean, show;
    "flushIntervalCommitLog" => flush_interval_commit_log_ms: int, show;
    "flushCommitLogLeastPages" => flush_commit_log_least_pages: int, show;
    "flushCommitLogThoroughInterval" => flush_commit_log_thorough_interval_ms: int, show;
    "flushIntervalConsumeQueue" => flush_interval_consume_queue_ms: int, show;
    "flushConsumeQueueLeastPages" => flush_consume_queue_least_pages: int, show;
    "syncFlushTimeout" => sync_flush_timeout_ms: int, show;
    "checkCRCOnRecover" => check_crc_on_recover: boolean, show;
    "transientStorePoolEnable" => transient_store_pool_enable: boolean, show;
    "enableDLegerCommitLog" => enable_dleger_commit_log: boolean, show;
    "messageIndexEnable" => message_index_enable: boolean, show;
    "maxHashSlotNum" => max_hash_slot_num: int, show;
    "maxIndexNum" => max_index_num: int, show;
    "messageDelayLevel" => message_delay_level_ms: delay_levels, show_delay_levels_opt;
    "autoCreateTopicEnable" => auto_create_topic_enable: boolean, show;
    "autoCreateSubscriptionGroup" => auto_create_subscription_group: boolean, show;
    "defaultTopicQueueNums" => default_topic_queue_nums: int, show;
    "sendMessageThreadPoolNums" => send_message_thread_pool_nums: int, show;
    "pullMessageThreadPoolNums" => pull_message_thread_pool_nums: int, show;
    "longPollingEnable" => long_polling_enable: boolean, show;
    "shortPollingTimeMills" => short_polling_time_ms: int, show;
    "slaveReadEnable" => slave_read_enable: boolean, show;
    "accessMessageInMemoryMaxRatio" => access_message_in_memory_max_ratio: int, show;
    "enablePropertyFilter" => enable_property_filter: boolean, show;
    "flushConsumerOffsetInterval" => flush_consumer_offset_interval_ms: int, show;
    "slaveTimeout" => slave_timeout_ms: int, show;
    "haMasterAddress" => ha_master_address: trimmed_opt, show_opt;
    "haListenPort" => ha_listen_port: int_opt, show_opt;
    "haSendHeartbeatInterval" => ha_send_heartbeat_interval_ms: int, show;
    "haHousekeepingInterval" => ha_housekeeping_interval_ms: int, show;
    "haTransferBatchSize" => ha_transfer_batch_size_bytes: int, show;
    "haSlaveFallbehindMax" => ha_slave_fallbehind_max_bytes: int, show;
    "haSlaveSpinMicros" => ha_slave_spin_us: int, show;
    "transactionTimeOut" => transaction_time_out_ms: int, show;
    "transactionCheckMax" => transaction_check_max: int, show;
    "transactionCheckInterval" => transaction_check_interval_ms: int, show;
    "registerNameServerPeriod" => register_name_server_period_ms: int, show;
    "registerBrokerTimeoutMills" => register_broker_timeout_ms: int, show;
    "forceRegister" => force_register: boolean, show;
    "compressedRegister" => compressed_register: boolean, show;
    "traceTopicEnable" => trace_topic_enable: boolean, show;
    "msgTraceTopicName" => msg_trace_topic_name: text, show;
    "aclEnable" => acl_enable: boolean, show;
    "httpListenPort" => http_listen_port: int, show;
    "amqpListenPort" => amqp_listen_port: int, show;
    "runtimeWorkerThreads" => runtime_worker_threads: int, show;
    "amqpDefaultUser" => amqp_default_user: text, show;
    "amqpDefaultPass" => amqp_default_pass: text, show_secret;
    "amqpUsers" => amqp_users: text, show_secret;
    "amqpFrameMax" => amqp_frame_max_bytes: amqp_frame_max, show;
    "amqpChannelMax" => amqp_channel_max: int, show;
    "amqpHeartbeat" => amqp_heartbeat_s: int, show;
    "pluginDir" => plugin_dir: path_opt, show_path_opt;
    "sqlFilterEngine" => sql_filter_engine: sql_filter_engine, show_sql_filter_engine;
    "sqlFilterPlugin" => sql_filter_plugin: path_opt, show_path_opt;
    "dashboardLogin" => dashboard_login: dashboard_login, show_dashboard_login;
    "dashboardUser" => dashboard_user: trimmed_opt, show_opt;
    "dashboardPasswordHash" => dashboard_password_hash: trimmed_opt, show_secret_opt;
}
