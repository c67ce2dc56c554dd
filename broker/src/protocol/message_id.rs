//! Message ids as RocketMQ forms them.
//!
//! * The offset message id: store host IPv4 (4 bytes) + port (4) + CommitLog offset (8), as 32
//!   uppercase hex characters (IPv6: 16 + 4 + 8 bytes, 56 characters). Returned by sends and read
//!   back by VIEW_MESSAGE_BY_ID and END_TRANSACTION.
//! * The client's unique id (`UNIQ_KEY`), set by producers; a broker creates one in the same shape
//!   (IPv4, pid, a per-process value, ms since the start of the month, counter) with
//!   [`UniqueIds`], for our own producers and for messages that arrive without one.

use std::net::{IpAddr, SocketAddr};

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

/// Makes `UNIQ_KEY` values in the Java client's shape (IP, pid as 16 bits, a per-process value,
/// milliseconds since the start of the month, a 16-bit counter; uppercase hex) without a system
/// call or formatting machinery per id: the first three parts are encoded once.
pub struct UniqueIds {
    prefix: String,
    /// (start of the current month, start of the next), ms since the epoch.
    month: std::sync::Mutex<(i64, i64)>,
    counter: std::sync::atomic::AtomicU16,
}

impl UniqueIds {
    pub fn new(ip: std::net::IpAddr) -> UniqueIds {
        let mut prefix = String::with_capacity(40);
        match ip {
            std::net::IpAddr::V4(v4) => push_hex(&mut prefix, &v4.octets()),
            std::net::IpAddr::V6(v6) => push_hex(&mut prefix, &v6.octets()),
        }
        let pid = std::process::id();
        push_hex(&mut prefix, &(pid as u16).to_be_bytes());
        // Java uses the class loader's hash; any per-process value does.
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        push_hex(&mut prefix, &(pid.rotate_left(16) ^ nanos).to_be_bytes());
        UniqueIds {
            prefix,
            month: std::sync::Mutex::new((0, 0)),
            counter: std::sync::atomic::AtomicU16::new(nanos as u16),
        }
    }

    pub fn next(&self) -> String {
        use chrono::{Datelike, TimeZone};
        let now = chrono::Utc::now().timestamp_millis();
        let start = {
            let mut month = self.month.lock().unwrap_or_else(|e| e.into_inner());
            if now < month.0 || now >= month.1 {
                let today = chrono::Utc::now().date_naive();
                let first = today.with_day(1).unwrap_or(today);
                let next = if first.month() == 12 {
                    chrono::NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
                } else {
                    chrono::NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
                };
                let ms = |d: chrono::NaiveDate| {
                    d.and_hms_opt(0, 0, 0).map(|t| chrono::Utc.from_utc_datetime(&t).timestamp_millis())
                };
                *month = (ms(first).unwrap_or(0), next.and_then(ms).unwrap_or(i64::MAX));
            }
            month.0
        };
        let mut id = String::with_capacity(self.prefix.len() + 12);
        id.push_str(&self.prefix);
        push_hex(&mut id, &((now - start) as u32).to_be_bytes());
        push_hex(&mut id, &self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_be_bytes());
        id
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `bytes` as uppercase hex (a table lookup: ids are made on every send).
fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(HEX_DIGITS[(b >> 4) as usize] as char);
        out.push(HEX_DIGITS[(b & 0xF) as usize] as char);
    }
}

pub fn hex_upper(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 64 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}
