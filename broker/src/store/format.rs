//! Byte-exact on-disk layouts of Apache RocketMQ 4.9.4: the CommitLog record, the ConsumeQueue
//! unit, the IndexFile, file naming, and the hashes RocketMQ stores.
//!
//! All integers are big-endian (Java `ByteBuffer` order).
//!
//! # CommitLog record (IPv4 hosts; IPv6 hosts widen fields 10 and 12 to 20 bytes)
//!
//! | #  | field                     | bytes | notes                                          |
//! |----|---------------------------|-------|------------------------------------------------|
//! | 1  | TOTALSIZE                 | 4     | whole record, this field included              |
//! | 2  | MAGICCODE                 | 4     | `0xDAA320A7`; end-of-file filler `0xCBD43194`   |
//! | 3  | BODYCRC                   | 4     | CRC32 of the body `& 0x7FFFFFFF`               |
//! | 4  | QUEUEID                   | 4     |                                                |
//! | 5  | FLAG                      | 4     | producer's flag                                |
//! | 6  | QUEUEOFFSET               | 8     | entry index in the ConsumeQueue                |
//! | 7  | PHYSICALOFFSET            | 8     | CommitLog offset of this record                |
//! | 8  | SYSFLAG                   | 4     | see `SYS_FLAG_*`                               |
//! | 9  | BORNTIMESTAMP             | 8     | producer clock, ms                             |
//! | 10 | BORNHOST                  | 8     | 4 address bytes + port as i32                  |
//! | 11 | STORETIMESTAMP            | 8     | broker clock, ms                               |
//! | 12 | STOREHOSTADDRESS          | 8     | 4 address bytes + port as i32                  |
//! | 13 | RECONSUMETIMES            | 4     |                                                |
//! | 14 | PreparedTransactionOffset | 8     |                                                |
//! | 15 | BODY                      | 4 + n | i32 length, bytes                              |
//! | 16 | TOPIC                     | 1 + n | one length byte (at most 127)                  |
//! | 17 | PROPERTIES                | 2 + n | i16 length, `key\x01value\x02...` in UTF-8     |
//!
//! A record never spans two files: when `record + 8` bytes do not fit in what is left, the writer
//! stores `[remaining i32][0xCBD43194 i32]` and goes on in the next file.
//!
//! # ConsumeQueue unit (20 bytes)
//!
//! | field            | bytes |
//! |------------------|-------|
//! | CommitLog offset | 8     |
//! | record size      | 4     |
//! | tags code        | 8     |
//!
//! Entry `n` of a queue lives at byte `n * 20` of the queue's stream; files hold 300,000 units.
//!
//! # File names
//!
//! CommitLog and ConsumeQueue files are named by the stream offset of their first byte, as 20
//! decimal digits (`00000000001073741824`). IndexFiles are named by their creation time,
//! `yyyyMMddHHmmssSSS` in local time.
//!
//! # Durability steps of an append
//!
//! 1. The record is encoded in memory with its queue offset, physical offset and store time.
//! 2. Bytes `[4..]` are copied into the mapped file, then the 4-byte TOTALSIZE: a crash between
//!    leaves a zero length, which recovery reads as the end of the log.
//! 3. The write position is published (`Release`); readers and the dispatcher may now see it.
//! 4. SYNC_FLUSH: the appender waits until the flusher's msync covers its end offset (group commit).
//! 5. The dispatcher turns the record into a ConsumeQueue unit and index entries.
//! 6. Every `flushIntervalConsumeQueue` ms ConsumeQueues and index are flushed, then the
//!    checkpoint records the store times they cover, then the checkpoint itself is fsynced.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Magic of a message record.
pub const MESSAGE_MAGIC: u32 = 0xDAA3_20A7;
/// Magic of the end-of-file filler.
pub const BLANK_MAGIC: u32 = 0xCBD4_3194;
/// The filler needs its length and magic.
pub const END_FILE_MIN_BLANK_BYTES: usize = 8;

/// Bytes of a record with IPv4 hosts and empty body, topic and properties.
pub const RECORD_FIXED_BYTES_V4: usize = 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8 + 4 + 1 + 2;
const _: () = assert!(RECORD_FIXED_BYTES_V4 == 91);

/// Longest topic a 4.x record can hold (one signed length byte).
pub const TOPIC_BYTES_MAX: usize = 127;
/// Longest properties string (a signed 16-bit length).
pub const PROPERTIES_BYTES_MAX: usize = i16::MAX as usize;

pub const CQ_UNIT_BYTES: usize = 20;
const _: () = assert!(CQ_UNIT_BYTES == 8 + 4 + 8);
/// Size RocketMQ stores in the units that pad a queue starting mid-file.
pub const CQ_PAD_SIZE: i32 = i32::MAX;

pub const SYS_FLAG_COMPRESSED: i32 = 0x1;
pub const SYS_FLAG_MULTI_TAGS: i32 = 0x2;
pub const SYS_FLAG_TRANSACTION_MASK: i32 = 0xC;
pub const TRANSACTION_NOT_TYPE: i32 = 0x0;
pub const TRANSACTION_PREPARED_TYPE: i32 = 0x4;
pub const TRANSACTION_COMMIT_TYPE: i32 = 0x8;
pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0xC;
pub const SYS_FLAG_BORN_HOST_V6: i32 = 0x10;
pub const SYS_FLAG_STORE_HOST_V6: i32 = 0x20;

/// Property separators.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
pub const PROPERTY_SEPARATOR: char = '\u{2}';

pub const PROPERTY_KEYS: &str = "KEYS";
pub const PROPERTY_TAGS: &str = "TAGS";
pub const PROPERTY_DELAY: &str = "DELAY";
pub const PROPERTY_UNIQ_KEY: &str = "UNIQ_KEY";
pub const PROPERTY_REAL_TOPIC: &str = "REAL_TOPIC";
pub const PROPERTY_REAL_QUEUE_ID: &str = "REAL_QID";
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";

/// A message as the store receives it, before it has offsets and a store time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageInput {
    pub topic: String,
    pub queue_id: u32,
    pub flag: i32,
    pub body: Vec<u8>,
    /// Encoded properties (`key\x01value\x02...`).
    pub properties: String,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
}

impl MessageInput {
    /// Bytes of the stored record.
    pub fn record_bytes(&self) -> usize {
        RECORD_FIXED_BYTES_V4
            + host_extra_bytes(&self.born_host)
            + host_extra_bytes(&self.store_host)
            + self.body.len()
            + self.topic.len()
            + self.properties.len()
    }

    pub fn transaction_type(&self) -> i32 {
        self.sys_flag & SYS_FLAG_TRANSACTION_MASK
    }
}

fn host_extra_bytes(addr: &SocketAddr) -> usize {
    if addr.is_ipv6() { 12 } else { 0 }
}

/// The fields that the store assigns when it appends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub queue_offset: u64,
    pub physical_offset: u64,
    pub store_timestamp: i64,
}

/// Appends the record of `msg` at `placement` to `out`. The caller has checked the topic and
/// properties lengths (see [`check_lengths`]).
pub fn encode_record(msg: &MessageInput, placement: Placement, out: &mut Vec<u8>) {
    let len = msg.record_bytes();
    out.reserve(len);
    let mut sys_flag = msg.sys_flag & !(SYS_FLAG_BORN_HOST_V6 | SYS_FLAG_STORE_HOST_V6);
    if msg.born_host.is_ipv6() {
        sys_flag |= SYS_FLAG_BORN_HOST_V6;
    }
    if msg.store_host.is_ipv6() {
        sys_flag |= SYS_FLAG_STORE_HOST_V6;
    }
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&MESSAGE_MAGIC.to_be_bytes());
    out.extend_from_slice(&body_crc(&msg.body).to_be_bytes());
    out.extend_from_slice(&msg.queue_id.to_be_bytes());
    out.extend_from_slice(&msg.flag.to_be_bytes());
    out.extend_from_slice(&placement.queue_offset.to_be_bytes());
    out.extend_from_slice(&placement.physical_offset.to_be_bytes());
    out.extend_from_slice(&sys_flag.to_be_bytes());
    out.extend_from_slice(&msg.born_timestamp.to_be_bytes());
    put_host(out, &msg.born_host);
    out.extend_from_slice(&placement.store_timestamp.to_be_bytes());
    put_host(out, &msg.store_host);
    out.extend_from_slice(&msg.reconsume_times.to_be_bytes());
    out.extend_from_slice(&msg.prepared_transaction_offset.to_be_bytes());
    out.extend_from_slice(&(msg.body.len() as u32).to_be_bytes());
    out.extend_from_slice(&msg.body);
    out.push(msg.topic.len() as u8);
    out.extend_from_slice(msg.topic.as_bytes());
    out.extend_from_slice(&(msg.properties.len() as u16).to_be_bytes());
    out.extend_from_slice(msg.properties.as_bytes());
}

/// Appends an end-of-file filler covering `remaining` bytes.
pub fn encode_blank(remaining: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&(remaining as u32).to_be_bytes());
    out.extend_from_slice(&BLANK_MAGIC.to_be_bytes());
}

fn put_host(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&(addr.port() as i32).to_be_bytes());
}

/// CRC32 (IEEE) of a body, masked to 31 bits as RocketMQ stores it.
pub fn body_crc(body: &[u8]) -> u32 {
    crc32fast::hash(body) & 0x7FFF_FFFF
}

/// Why a message cannot be stored as a 4.x record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LengthError {
    TopicTooLong { bytes: usize },
    TopicEmpty,
    PropertiesTooLong { bytes: usize },
}

pub fn check_lengths(msg: &MessageInput) -> Result<(), LengthError> {
    if msg.topic.is_empty() {
        return Err(LengthError::TopicEmpty);
    }
    if msg.topic.len() > TOPIC_BYTES_MAX {
        return Err(LengthError::TopicTooLong { bytes: msg.topic.len() });
    }
    if msg.properties.len() > PROPERTIES_BYTES_MAX {
        return Err(LengthError::PropertiesTooLong { bytes: msg.properties.len() });
    }
    Ok(())
}

/// A record read back from the CommitLog, borrowing its variable parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord<'a> {
    pub total_size: u32,
    pub body_crc: u32,
    pub queue_id: u32,
    pub flag: i32,
    pub queue_offset: u64,
    pub physical_offset: u64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: &'a [u8],
    pub topic: &'a str,
    pub properties: &'a str,
}

impl StoredRecord<'_> {
    pub fn transaction_type(&self) -> i32 {
        self.sys_flag & SYS_FLAG_TRANSACTION_MASK
    }

    pub fn property(&self, key: &str) -> Option<&str> {
        property(self.properties, key)
    }

    /// The MessageInput this record was made from (used when a message is copied elsewhere).
    pub fn to_input(&self) -> MessageInput {
        MessageInput {
            topic: self.topic.to_string(),
            queue_id: self.queue_id,
            flag: self.flag,
            body: self.body.to_vec(),
            properties: self.properties.to_string(),
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            born_host: self.born_host,
            store_host: self.store_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: self.prepared_transaction_offset,
        }
    }
}

/// What lies at a position of a CommitLog file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scanned<'a> {
    Record(StoredRecord<'a>),
    /// End-of-file filler of this many bytes: the file's data ends here.
    Blank(u32),
    /// Zeros or too few bytes: nothing was ever (completely) written here.
    End,
    /// Bytes that are not a valid record.
    Corrupt(&'static str),
}

/// Reads the record at the start of `buf`, validating its structure and, if `check_crc`, its
/// body CRC. Never panics, whatever `buf` holds.
pub fn scan_record(buf: &[u8], check_crc: bool) -> Scanned<'_> {
    let mut r = Reader { buf, pos: 0 };
    let Some(total) = r.u32() else { return Scanned::End };
    if total == 0 {
        return Scanned::End;
    }
    let Some(magic) = r.u32() else { return Scanned::Corrupt("truncated magic") };
    if magic == BLANK_MAGIC {
        return Scanned::Blank(total);
    }
    if magic != MESSAGE_MAGIC {
        return Scanned::Corrupt("bad magic");
    }
    let total_usize = total as usize;
    if total_usize < RECORD_FIXED_BYTES_V4 || total_usize > buf.len() {
        return Scanned::Corrupt("record length out of range");
    }
    let rec = &buf[..total_usize];
    match parse_fields(rec, total, check_crc) {
        Ok(record) => Scanned::Record(record),
        Err(reason) => Scanned::Corrupt(reason),
    }
}

fn parse_fields(rec: &[u8], total: u32, check_crc: bool) -> Result<StoredRecord<'_>, &'static str> {
    const T: &str = "record shorter than its fields";
    let mut r = Reader { buf: rec, pos: 8 };
    let body_crc_stored = r.u32().ok_or(T)?;
    let queue_id = r.u32().ok_or(T)?;
    let flag = r.u32().ok_or(T)? as i32;
    let queue_offset = r.u64().ok_or(T)?;
    let physical_offset = r.u64().ok_or(T)?;
    let sys_flag = r.u32().ok_or(T)? as i32;
    let born_timestamp = r.u64().ok_or(T)? as i64;
    let born_host = r.host(sys_flag & SYS_FLAG_BORN_HOST_V6 != 0).ok_or(T)?;
    let store_timestamp = r.u64().ok_or(T)? as i64;
    let store_host = r.host(sys_flag & SYS_FLAG_STORE_HOST_V6 != 0).ok_or(T)?;
    let reconsume_times = r.u32().ok_or(T)? as i32;
    let prepared_transaction_offset = r.u64().ok_or(T)? as i64;
    let body_len = r.u32().ok_or(T)? as usize;
    let body = r.bytes(body_len).ok_or("body length past the record")?;
    let topic_len = r.u8().ok_or(T)? as usize;
    if topic_len > TOPIC_BYTES_MAX {
        return Err("topic length over 127");
    }
    let topic = r.bytes(topic_len).ok_or("topic length past the record")?;
    let props_len = r.u16().ok_or(T)? as usize;
    let props = r.bytes(props_len).ok_or("properties length past the record")?;
    if r.pos != rec.len() {
        return Err("field lengths do not add up to the record length");
    }
    if check_crc && body_crc(body) != body_crc_stored {
        return Err("body CRC mismatch");
    }
    let topic = std::str::from_utf8(topic).map_err(|_| "topic is not UTF-8")?;
    let properties = std::str::from_utf8(props).map_err(|_| "properties are not UTF-8")?;
    Ok(StoredRecord {
        total_size: total,
        body_crc: body_crc_stored,
        queue_id,
        flag,
        queue_offset,
        physical_offset,
        sys_flag,
        born_timestamp,
        born_host,
        store_timestamp,
        store_host,
        reconsume_times,
        prepared_transaction_offset,
        body,
        topic,
        properties,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.bytes(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.bytes(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.bytes(8)?.try_into().ok()?))
    }
    fn host(&mut self, v6: bool) -> Option<SocketAddr> {
        let ip = if v6 {
            let o: [u8; 16] = self.bytes(16)?.try_into().ok()?;
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            let o: [u8; 4] = self.bytes(4)?.try_into().ok()?;
            IpAddr::V4(Ipv4Addr::from(o))
        };
        let port = self.u32()?;
        Some(SocketAddr::new(ip, port as u16))
    }
}

/// One ConsumeQueue unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CqUnit {
    pub physical_offset: u64,
    pub size: i32,
    pub tags_code: i64,
}

impl CqUnit {
    pub const PAD: CqUnit = CqUnit { physical_offset: 0, size: CQ_PAD_SIZE, tags_code: 0 };

    pub fn encode(&self) -> [u8; CQ_UNIT_BYTES] {
        let mut b = [0u8; CQ_UNIT_BYTES];
        b[0..8].copy_from_slice(&self.physical_offset.to_be_bytes());
        b[8..12].copy_from_slice(&self.size.to_be_bytes());
        b[12..20].copy_from_slice(&self.tags_code.to_be_bytes());
        b
    }

    /// Decodes a unit; `None` for a short slice.
    pub fn decode(b: &[u8]) -> Option<CqUnit> {
        Some(CqUnit {
            physical_offset: u64::from_be_bytes(b.get(0..8)?.try_into().ok()?),
            size: i32::from_be_bytes(b.get(8..12)?.try_into().ok()?),
            tags_code: i64::from_be_bytes(b.get(12..20)?.try_into().ok()?),
        })
    }

    /// A unit that was never written (all zeros).
    pub fn is_empty(&self) -> bool {
        self.physical_offset == 0 && self.size == 0 && self.tags_code == 0
    }

    pub fn is_pad(&self) -> bool {
        self.size == CQ_PAD_SIZE && self.physical_offset == 0
    }
}

/// Java's `String.hashCode()`: UTF-16 code units, `h = 31 * h + c`, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// tagsCode of a tag: its Java hash, sign-extended; 0 when there is no tag.
pub fn tags_code(tags: Option<&str>) -> i64 {
    match tags {
        Some(t) if !t.is_empty() => i64::from(java_string_hash(t)),
        _ => 0,
    }
}

/// The IndexFile key hash: `|hashCode|`, with `i32::MIN` mapped to 0.
pub fn index_key_hash(key: &str) -> u32 {
    let h = java_string_hash(key);
    if h == i32::MIN { 0 } else { h.unsigned_abs() }
}

/// 20-digit file name of a stream offset.
pub fn offset_file_name(offset: u64) -> String {
    format!("{offset:020}")
}

/// Parses a 20-digit file name; `None` for anything else.
pub fn parse_offset_file_name(name: &str) -> Option<u64> {
    if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// Iterates `key\x01value\x02...` pairs, accepting a missing trailing separator and dropping
/// entries with an empty key or value (as 4.9.4 does).
pub fn properties(encoded: &str) -> impl Iterator<Item = (&str, &str)> {
    encoded.split(PROPERTY_SEPARATOR).filter_map(|kv| {
        let (k, v) = kv.split_once(NAME_VALUE_SEPARATOR)?;
        (!k.is_empty() && !v.is_empty()).then_some((k, v))
    })
}

pub fn property<'a>(encoded: &'a str, key: &str) -> Option<&'a str> {
    properties(encoded).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// Encodes pairs as 4.9.4 does (no trailing separator); pairs with an empty key or value are
/// left out, since a reader would drop them anyway.
pub fn encode_properties<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if k.is_empty() || v.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(PROPERTY_SEPARATOR);
        }
        out.push_str(k);
        out.push(NAME_VALUE_SEPARATOR);
        out.push_str(v);
    }
    out
}

#[cfg(test)]
mod tests;
