//! Message ids as RocketMQ forms them.
//!
//! * The offset message id: store host IPv4 (4 bytes) + port (4) + CommitLog offset (8), as 32
//!   uppercase hex characters (IPv6: 16 + 4 + 8 bytes, 56 characters). Returned by sends and read
//!   back by VIEW_MESSAGE_BY_ID and END_TRANSACTION.
//! * The client's unique id (`UNIQ_KEY`), set by producers; a broker creates one in the same shape
//!   (IPv4, pid, a per-process value, ms since the start of the month, counter) for messages that
//!   arrive without one (HTTP and AMQP publishes).

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};

/// The offset message id of a record stored by `store_host` at `commit_log_offset`.
pub fn offset_msg_id(store_host: SocketAddr, commit_log_offset: u64) -> String {
    let mut bytes = Vec::with_capacity(28);
    match store_host.ip() {
        IpAddr::V4(ip) => bytes.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => bytes.extend_from_slice(&ip.octets()),
    }
    bytes.extend_from_slice(&(store_host.port() as u32).to_be_bytes());
    bytes.extend_from_slice(&commit_log_offset.to_be_bytes());
    hex_upper(&bytes)
}

/// Splits an offset message id into the store host and the CommitLog offset.
pub fn decode_offset_msg_id(id: &str) -> Option<(SocketAddr, u64)> {
    let bytes = unhex(id)?;
    let (ip, rest): (IpAddr, &[u8]) = match bytes.len() {
        16 => (IpAddr::from(<[u8; 4]>::try_from(&bytes[..4]).ok()?), &bytes[4..]),
        28 => (IpAddr::from(<[u8; 16]>::try_from(&bytes[..16]).ok()?), &bytes[16..]),
        _ => return None,
    };
    let port = u32::from_be_bytes(rest[..4].try_into().ok()?);
    let offset = u64::from_be_bytes(rest[4..12].try_into().ok()?);
    Some((SocketAddr::new(ip, u16::try_from(port).ok()?), offset))
}

/// A fresh unique id in the Java client's `UNIQ_KEY` shape.
pub fn new_unique_id(host: IpAddr) -> String {
    static COUNTER: AtomicU16 = AtomicU16::new(0);
    let mut bytes = Vec::with_capacity(28);
    match host {
        IpAddr::V4(ip) => bytes.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => bytes.extend_from_slice(&ip.octets()),
    }
    bytes.extend_from_slice(&(std::process::id() as u16).to_be_bytes());
    bytes.extend_from_slice(&(std::process::id().rotate_left(16) ^ 0x5A5A_5A5A).to_be_bytes());
    let now = chrono::Utc::now();
    let month_start =
        now.date_naive().with_day0(0).and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc().timestamp_millis());
    let since = now.timestamp_millis() - month_start.unwrap_or(0);
    bytes.extend_from_slice(&(since as u32).to_be_bytes());
    bytes.extend_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    hex_upper(&bytes)
}

use chrono::Datelike;

pub fn hex_upper(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02X}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 64 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}
