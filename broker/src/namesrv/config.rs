//! `namesrv.properties`: the name server's settings, with RocketMQ's keys where RocketMQ has one
//! (`listenPort` from `NettyServerConfig`, `kvConfigPath` and `orderMessageEnable` from
//! `NamesrvConfig`, `bindAddress` from 5.x's `NettyServerConfig`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::ConfigError;
use crate::config::properties;

/// The name server's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamesrvConfig {
    /// `listenPort`, default 9876 (0 picks a free port).
    pub listen_port: u16,
    /// `bindAddress` (RocketMQ 5.x; `listenAddress` is read as a synonym), default `0.0.0.0`.
    pub bind_address: String,
    /// `kvConfigPath`, default `~/namesrv/kvConfig.json` (Java: `user.home`/namesrv/kvConfig.json).
    pub kv_config_path: PathBuf,
    /// `orderMessageEnable`, default false: route answers carry `orderTopicConf` from the
    /// `ORDER_TOPIC_CONFIG` KV namespace.
    pub order_message_enable: bool,
    /// `brokerExpiredMillis`, default 120,000 ms (Java: `BROKER_CHANNEL_EXPIRED_TIME`, not a key):
    /// a broker not registered for this long is dropped.
    pub broker_expired_ms: u64,
    /// `scanNotActiveBrokerInterval`, default 10,000 ms (a key in 5.x): how often expired brokers
    /// are looked for. The first scan runs after 5 s or one interval, whichever is shorter.
    pub scan_not_active_broker_interval_ms: u64,
    /// `serverChannelMaxIdleTimeSeconds`, default 120 s: a connection silent this long is closed.
    pub server_channel_max_idle_time_s: u64,
    /// `httpListenPort` (not in RocketMQ), default 0 (off): a small HTTP port on `bindAddress`
    /// serving `/metrics` (Prometheus) and `/livez`.
    pub http_listen_port: u16,
}

/// A parsed config and the keys that were not recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedConfig {
    pub config: NamesrvConfig,
    /// Keys present in the text that the name server does not know, sorted, without duplicates.
    pub unknown_keys: Vec<String>,
}

impl LoadedConfig {
    /// Logs the unknown keys, if any, as one warning.
    pub fn warn_unknown(&self) {
        if let Some(keys) = self.describe_unknown() {
            tracing::warn!(message = "Ignoring config keys the name server does not know.", %keys);
        }
    }

    /// The unknown keys as one line, with a hint for a key that differs from a known one only in
    /// case; `None` if there are none.
    pub fn describe_unknown(&self) -> Option<String> {
        if self.unknown_keys.is_empty() {
            return None;
        }
        let described: Vec<String> = self
            .unknown_keys
            .iter()
            .map(|key| match KEYS.iter().find(|k| k.eq_ignore_ascii_case(key)) {
                Some(known) => format!("{key} (did you mean {known}?)"),
                None => key.clone(),
            })
            .collect();
        Some(described.join(", "))
    }
}

/// The keys [`NamesrvConfig`] reads, in the order [`NamesrvConfig::to_properties`] writes them.
pub const KEYS: [&str; 8] = [
    "bindAddress",
    "brokerExpiredMillis",
    "httpListenPort",
    "kvConfigPath",
    "listenPort",
    "orderMessageEnable",
    "scanNotActiveBrokerInterval",
    "serverChannelMaxIdleTimeSeconds",
];

/// Synonyms read for a key of [`KEYS`].
const ALIASES: [(&str, &str); 1] = [("listenAddress", "bindAddress")];

impl Default for NamesrvConfig {
    fn default() -> NamesrvConfig {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        NamesrvConfig {
            listen_port: 9876,
            bind_address: "0.0.0.0".to_owned(),
            kv_config_path: home.join("namesrv").join("kvConfig.json"),
            order_message_enable: false,
            broker_expired_ms: 120_000,
            scan_not_active_broker_interval_ms: 10_000,
            server_channel_max_idle_time_s: 120,
            http_listen_port: 0,
        }
    }
}

impl NamesrvConfig {
    /// Reads a `.properties` file over the defaults.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Io`] if the file cannot be read, [`ConfigError::TooLarge`] over
    /// [`properties::PROPERTIES_FILE_BYTES_MAX`] (checked before reading), and what
    /// [`NamesrvConfig::from_properties_str`] returns.
    pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
        NamesrvConfig::from_properties_str(&crate::config::read_properties_file(path)?)
    }

    /// Parses `.properties` text over the defaults; the last of duplicate keys wins.
    ///
    /// # Errors
    ///
    /// [`ConfigError::TooLarge`] and [`ConfigError::Syntax`] from the parser,
    /// [`ConfigError::InvalidValue`] for a value that does not parse or is out of range.
    pub fn from_properties_str(text: &str) -> Result<LoadedConfig, ConfigError> {
        let values: BTreeMap<String, String> =
            properties::parse(text)?.into_iter().map(|entry| (entry.key, entry.value)).collect();
        let mut config = NamesrvConfig::default();
        let mut unknown_keys = Vec::new();
        for (key, value) in &values {
            let key = ALIASES.iter().find(|(alias, _)| alias == key).map_or(key.as_str(), |(_, k)| k);
            if !config.apply(key, value)? {
                unknown_keys.push(key.to_owned());
            }
        }
        Ok(LoadedConfig { config, unknown_keys })
    }

    /// Sets `key` from its text; `Ok(false)` when the key is not one of [`KEYS`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidValue`] when the value does not parse or is out of range.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        let value = value.trim();
        match key {
            "listenPort" => self.listen_port = number(key, value, 0, u64::from(u16::MAX))? as u16,
            "httpListenPort" => self.http_listen_port = number(key, value, 0, u64::from(u16::MAX))? as u16,
            "bindAddress" => {
                if value.is_empty() {
                    return Err(invalid(key, value, "a host name or IP address"));
                }
                self.bind_address = value.to_owned();
            }
            "kvConfigPath" => {
                if value.is_empty() {
                    return Err(invalid(key, value, "a file path"));
                }
                self.kv_config_path = PathBuf::from(value);
            }
            "orderMessageEnable" => self.order_message_enable = value.eq_ignore_ascii_case("true"),
            "brokerExpiredMillis" => self.broker_expired_ms = number(key, value, 1, u64::MAX)?,
            "scanNotActiveBrokerInterval" => self.scan_not_active_broker_interval_ms = number(key, value, 1, u64::MAX)?,
            "serverChannelMaxIdleTimeSeconds" => {
                self.server_channel_max_idle_time_s = number(key, value, 1, u64::MAX / 1000)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The settings as `.properties` text, one `key=value` line per key of [`KEYS`], sorted (what
    /// GET_NAMESRV_CONFIG answers).
    pub fn to_properties(&self) -> String {
        let mut out = String::new();
        for key in KEYS {
            let value = match key {
                "bindAddress" => self.bind_address.clone(),
                "brokerExpiredMillis" => self.broker_expired_ms.to_string(),
                "httpListenPort" => self.http_listen_port.to_string(),
                "kvConfigPath" => self.kv_config_path.display().to_string(),
                "listenPort" => self.listen_port.to_string(),
                "orderMessageEnable" => self.order_message_enable.to_string(),
                "scanNotActiveBrokerInterval" => self.scan_not_active_broker_interval_ms.to_string(),
                _ => self.server_channel_max_idle_time_s.to_string(),
            };
            out.push_str(&properties::escape_key(key));
            out.push('=');
            out.push_str(&properties::escape_value(&value));
            out.push('\n');
        }
        out
    }

    /// `bindAddress:listenPort`, with IPv6 hosts in brackets.
    pub fn listen_addr(&self) -> String {
        if self.bind_address.contains(':') && !self.bind_address.starts_with('[') {
            format!("[{}]:{}", self.bind_address, self.listen_port)
        } else {
            format!("{}:{}", self.bind_address, self.listen_port)
        }
    }
}

fn number(key: &str, value: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(key, value, format!("an integer from {min} to {max}"))),
    }
}

fn invalid(key: &str, value: &str, allowed: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue { key: key.to_owned(), value: value.to_owned(), allowed: allowed.into() }
}
