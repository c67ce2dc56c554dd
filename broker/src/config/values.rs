//! The value types of the broker's keys: each parser turns `(key, raw value)` into a typed value
//! or a [`ConfigError`] naming both; each `show_*` writes a value back as the properties text
//! (`None`: not shown, as a secret).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::{BrokerRole, ConfigError, DashboardLogin, FlushDiskType, flush_disk_type_name, invalid};

/// Integer types a key can hold, with their range for error messages.
pub(super) trait Int: FromStr + fmt::Display + Copy {
    const MIN: Self;
    const MAX: Self;
}

macro_rules! int_types {
    ($($t:ty),*) => {
        $(impl Int for $t {
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
        })*
    };
}

int_types!(u16, u32, u64, usize, i64);

pub(super) fn int<T: Int>(key: &str, raw: &str) -> Result<T, ConfigError> {
    raw.trim().parse().map_err(|_| invalid(key, raw, format!("an integer from {} to {}", T::MIN, T::MAX)))
}

/// Empty or blank: unset.
pub(super) fn int_opt<T: Int>(key: &str, raw: &str) -> Result<Option<T>, ConfigError> {
    if raw.trim().is_empty() { Ok(None) } else { int(key, raw).map(Some) }
}

/// `amqpFrameMax`: AMQP 0-9-1's smallest frame (4,096) to 1 MiB.
pub(super) fn amqp_frame_max(key: &str, raw: &str) -> Result<u32, ConfigError> {
    let value: u32 = int(key, raw)?;
    if !(4096..=1024 * 1024).contains(&value) {
        return Err(invalid(key, raw, "4096 to 1048576 bytes"));
    }
    Ok(value)
}

pub(super) fn boolean(key: &str, raw: &str) -> Result<bool, ConfigError> {
    let value = raw.trim();
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(invalid(key, raw, "true or false (RocketMQ would silently read this as false)"))
    }
}

/// Kept as written, trailing blanks included, as Java does.
pub(super) fn text(_key: &str, raw: &str) -> Result<String, ConfigError> {
    Ok(raw.to_owned())
}

/// Trimmed; empty means unset.
pub(super) fn trimmed_opt(_key: &str, raw: &str) -> Result<Option<String>, ConfigError> {
    let value = raw.trim();
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

pub(super) fn path(_key: &str, raw: &str) -> Result<PathBuf, ConfigError> {
    Ok(PathBuf::from(raw))
}

/// Blank means unset; otherwise kept as written.
pub(super) fn path_opt(_key: &str, raw: &str) -> Result<Option<PathBuf>, ConfigError> {
    Ok((!raw.trim().is_empty()).then(|| PathBuf::from(raw)))
}

pub(super) fn ratio(key: &str, raw: &str) -> Result<f64, ConfigError> {
    match raw.trim().parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(invalid(key, raw, "a number greater than 0 and at most 1, e.g. 0.90")),
    }
}

/// Any integer; RocketMQ clamps it to 10..=95.
pub(super) fn percent_clamped(key: &str, raw: &str) -> Result<u32, ConfigError> {
    let value: i64 =
        raw.trim().parse().map_err(|_| invalid(key, raw, "an integer percentage (clamped to 10 to 95)"))?;
    // Clamped into 10..=95, so the cast is exact.
    Ok(value.clamp(10, 95) as u32)
}

pub(super) fn broker_role(key: &str, raw: &str) -> Result<BrokerRole, ConfigError> {
    match raw.trim() {
        "ASYNC_MASTER" => Ok(BrokerRole::AsyncMaster),
        "SYNC_MASTER" => Ok(BrokerRole::SyncMaster),
        "SLAVE" => Ok(BrokerRole::Slave),
        _ => Err(invalid(key, raw, "ASYNC_MASTER, SYNC_MASTER or SLAVE")),
    }
}

pub(super) fn sql_filter_engine(key: &str, raw: &str) -> Result<crate::filter::SqlFilterEngine, ConfigError> {
    match raw.trim() {
        "builtin" => Ok(crate::filter::SqlFilterEngine::Builtin),
        "plugin" => Ok(crate::filter::SqlFilterEngine::Plugin),
        _ => Err(invalid(key, raw, "builtin or plugin")),
    }
}

pub(super) fn show_sql_filter_engine(value: &crate::filter::SqlFilterEngine) -> Option<String> {
    Some(value.name().to_owned())
}

pub(super) fn flush_disk_type(key: &str, raw: &str) -> Result<FlushDiskType, ConfigError> {
    match raw.trim() {
        "ASYNC_FLUSH" => Ok(FlushDiskType::Async),
        "SYNC_FLUSH" => Ok(FlushDiskType::Sync),
        _ => Err(invalid(key, raw, "ASYNC_FLUSH or SYNC_FLUSH")),
    }
}

/// `deleteWhen`: hours separated by `;`; empty entries are skipped. Range is checked by `validate`.
pub(super) fn hours(key: &str, raw: &str) -> Result<Vec<u32>, ConfigError> {
    let allowed = "hours 0 to 23 separated by ';', e.g. 04 or 04;16";
    raw.split(';')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| h.parse::<u32>().map_err(|_| invalid(key, raw, allowed)))
        .collect()
}

const DELAY_UNITS_MS: [(char, u64); 4] = [('d', 86_400_000), ('h', 3_600_000), ('m', 60_000), ('s', 1_000)];

/// `messageDelayLevel`: whitespace-separated levels like `5s`, `2m`, `1h`, `1d`.
pub(super) fn delay_levels(key: &str, raw: &str) -> Result<Vec<u64>, ConfigError> {
    let error = || invalid(key, raw, "levels like \"1s 5s 10s 30s 1m 2h 1d\": whole numbers with unit s, m, h or d");
    let levels = raw
        .split_whitespace()
        .map(|level| {
            let unit = level.chars().last().ok_or_else(error)?;
            let (_, unit_ms) = DELAY_UNITS_MS.iter().find(|(c, _)| *c == unit).ok_or_else(error)?;
            // The unit is one ASCII byte.
            let count: u64 = level[..level.len() - 1].parse().map_err(|_| error())?;
            count.checked_mul(*unit_ms).ok_or_else(error)
        })
        .collect::<Result<Vec<u64>, ConfigError>>()?;
    if levels.is_empty() {
        return Err(error());
    }
    Ok(levels)
}

// --- value printers: typed value -> raw value, `None` to leave the key out ---

pub(super) fn show<T: fmt::Display>(value: &T) -> Option<String> {
    Some(value.to_string())
}

/// A password is never printed.
pub(super) fn show_secret(_value: &str) -> Option<String> {
    None
}

pub(super) fn show_secret_opt(_value: &Option<String>) -> Option<String> {
    None
}

pub(super) fn dashboard_login(key: &str, raw: &str) -> Result<DashboardLogin, ConfigError> {
    match raw.trim() {
        "auto" => Ok(DashboardLogin::Auto),
        "on" | "true" => Ok(DashboardLogin::On),
        "off" | "false" => Ok(DashboardLogin::Off),
        _ => Err(invalid(key, raw, "auto, on or off")),
    }
}

pub(super) fn show_dashboard_login(value: &DashboardLogin) -> Option<String> {
    Some(value.name().to_owned())
}

pub(super) fn show_opt<T: fmt::Display>(value: &Option<T>) -> Option<String> {
    value.as_ref().map(T::to_string)
}

pub(super) fn show_path(value: &Path) -> Option<String> {
    Some(value.display().to_string())
}

pub(super) fn show_path_opt(value: &Option<PathBuf>) -> Option<String> {
    value.as_ref().map(|p| p.display().to_string())
}

pub(super) fn show_flush_disk_type(value: &FlushDiskType) -> Option<String> {
    Some(flush_disk_type_name(*value).to_owned())
}

pub(super) fn show_hours(value: &[u32]) -> Option<String> {
    Some(value.iter().map(|h| format!("{h:02}")).collect::<Vec<_>>().join(";"))
}

pub(super) fn show_delay_levels(levels: &[u64]) -> String {
    let level = |ms: u64| {
        let (unit, unit_ms) = DELAY_UNITS_MS
            .iter()
            .find(|(_, unit_ms)| ms > 0 && ms.is_multiple_of(*unit_ms))
            .copied()
            .unwrap_or(('s', 1_000));
        format!("{}{unit}", ms / unit_ms)
    };
    levels.iter().map(|&ms| level(ms)).collect::<Vec<_>>().join(" ")
}

pub(super) fn show_delay_levels_opt(levels: &[u64]) -> Option<String> {
    Some(show_delay_levels(levels))
}
