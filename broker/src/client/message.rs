//! Messages: [`Message`] to send, [`MessageExt`] as received (decoded from the stored record
//! layout that pull, VIEW_MESSAGE_BY_ID, QUERY_MESSAGE and CHECK_TRANSACTION_STATE bodies carry),
//! and the SEND_BATCH_MESSAGE body.
//!
//! Batch body: per message `[int totalSize][int magic=0][int bodyCRC=0][int flag][int bodyLen]
//! [body][short propertiesLen][properties]`, where `totalSize` counts the whole item.

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};

use super::{Error, Result};
use crate::protocol::message_id::offset_msg_id;
use crate::protocol::{encode_properties, parse_properties, property};
use crate::store::format::{
    PROPERTIES_BYTES_MAX, PROPERTY_DELAY, PROPERTY_KEYS, PROPERTY_TAGS, PROPERTY_UNIQ_KEY, SYS_FLAG_COMPRESSED,
    Scanned, StoredRecord, scan_record,
};

/// Bytes of a batch item besides its body and properties.
const BATCH_ITEM_FIXED_BYTES: usize = 4 + 4 + 4 + 4 + 4 + 2;

/// A message to send: topic, user flag, body and properties (tags, keys, user properties).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    /// The user flag (Java's `Message.flag`), stored as is.
    pub flag: i32,
    pub body: Bytes,
    properties: Vec<(String, String)>,
}

impl Message {
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Message {
        Message { topic: topic.into(), flag: 0, body: body.into(), properties: Vec::new() }
    }

    /// Sets the tag (`TAGS`), which brokers filter on.
    pub fn with_tags(self, tags: impl Into<String>) -> Message {
        self.with_property(PROPERTY_TAGS, tags)
    }

    /// Sets the keys (`KEYS`, space separated), which the broker indexes for QUERY_MESSAGE.
    pub fn with_keys<I, S>(self, keys: I) -> Message
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined = keys.into_iter().map(|k| k.as_ref().to_owned()).collect::<Vec<_>>().join(" ");
        self.with_property(PROPERTY_KEYS, joined)
    }

    /// Sets a property (user or system), replacing an earlier value.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Message {
        self.set_property(key, value);
        self
    }

    /// Delivers the message after delay level `level` (1 = 1 s ... 18 = 2 h); 0 clears it.
    pub fn with_delay_level(mut self, level: u32) -> Message {
        if level == 0 {
            self.remove_property(PROPERTY_DELAY);
            self
        } else {
            self.with_property(PROPERTY_DELAY, level.to_string())
        }
    }

    pub fn set_property(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.properties.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.properties.push((key, value)),
        }
    }

    pub fn remove_property(&mut self, key: &str) -> Option<String> {
        let i = self.properties.iter().position(|(k, _)| k == key)?;
        Some(self.properties.remove(i).1)
    }

    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// All properties in the order they were set.
    pub fn properties(&self) -> &[(String, String)] {
        &self.properties
    }

    pub fn tags(&self) -> Option<&str> {
        self.property(PROPERTY_TAGS)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.property(PROPERTY_KEYS).unwrap_or("").split(' ').filter(|k| !k.is_empty())
    }

    /// The client's unique id (`UNIQ_KEY`), set by the producer when it sends.
    pub fn unique_id(&self) -> Option<&str> {
        self.property(PROPERTY_UNIQ_KEY)
    }

    /// The properties in the wire encoding (`k\x01v\x02k\x01v`).
    pub fn encoded_properties(&self) -> String {
        encode_properties(self.properties.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Checks what the broker would refuse: separators inside property names or values, and an
    /// encoding longer than the record format allows.
    pub(crate) fn check_properties(&self) -> Result<()> {
        for (k, v) in &self.properties {
            if k.contains(['\u{1}', '\u{2}']) || v.contains(['\u{1}', '\u{2}']) {
                return Err(Error::Invalid(format!("property {k:?} contains a separator character")));
            }
        }
        Ok(())
    }
}

/// A received message: the stored record's fields, the body sharing the response's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageExt {
    pub topic: String,
    pub queue_id: u32,
    pub queue_offset: u64,
    /// Where the record starts in the broker's CommitLog.
    pub commit_log_offset: u64,
    /// The record's length in bytes.
    pub store_size: u32,
    pub body_crc: u32,
    pub flag: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    /// The body as stored (still compressed if [`MessageExt::is_compressed`]).
    pub body: Bytes,
    /// The properties in the wire encoding; see [`MessageExt::property`].
    pub properties_raw: String,
}

impl MessageExt {
    fn from_record(record: &StoredRecord<'_>, buf: &Bytes) -> MessageExt {
        // `record.body` borrows from `buf`; find it again as a range so the body shares `buf`.
        let start = (record.body.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
        let end = start.saturating_add(record.body.len());
        let body = if end <= buf.len() { buf.slice(start..end) } else { Bytes::copy_from_slice(record.body) };
        MessageExt {
            topic: record.topic.to_owned(),
            queue_id: record.queue_id,
            queue_offset: record.queue_offset,
            commit_log_offset: record.physical_offset,
            store_size: record.total_size,
            body_crc: record.body_crc,
            flag: record.flag,
            sys_flag: record.sys_flag,
            born_timestamp: record.born_timestamp,
            born_host: record.born_host,
            store_timestamp: record.store_timestamp,
            store_host: record.store_host,
            reconsume_times: record.reconsume_times,
            prepared_transaction_offset: record.prepared_transaction_offset,
            body,
            properties_raw: record.properties.to_owned(),
        }
    }

    pub fn property(&self, key: &str) -> Option<&str> {
        property(&self.properties_raw, key)
    }

    /// All properties, parsed (entries with an empty name or value are dropped, as Java does).
    pub fn properties(&self) -> Vec<(String, String)> {
        parse_properties(&self.properties_raw)
    }

    pub fn tags(&self) -> Option<&str> {
        self.property(PROPERTY_TAGS)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.property(PROPERTY_KEYS).unwrap_or("").split(' ').filter(|k| !k.is_empty())
    }

    /// The message id Java reports: the client's `UNIQ_KEY`, else the offset id.
    pub fn msg_id(&self) -> String {
        match self.property(PROPERTY_UNIQ_KEY) {
            Some(id) => id.to_owned(),
            None => self.offset_msg_id(),
        }
    }

    /// The broker's id of this record: store host and CommitLog offset.
    pub fn offset_msg_id(&self) -> String {
        offset_msg_id(self.store_host, self.commit_log_offset)
    }

    /// Whether the body is compressed (sysFlag 0x1; this client does not inflate it).
    pub fn is_compressed(&self) -> bool {
        self.sys_flag & SYS_FLAG_COMPRESSED != 0
    }
}

/// Decodes the stored records of a pull (or query, view, check) body, back to back. With
/// `check_crc` each body's CRC is verified.
///
/// # Errors
/// [`Error::Decode`] at the first record that is truncated or malformed.
pub fn decode_messages(body: &Bytes, check_crc: bool) -> Result<Vec<MessageExt>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < body.len() {
        match scan_record(&body[pos..], check_crc) {
            Scanned::Record(r) => {
                out.push(MessageExt::from_record(&r, body));
                pos += r.total_size as usize;
            }
            Scanned::Blank(_) => return Err(Error::decode("messages", format!("filler record at byte {pos}"))),
            Scanned::End => return Err(Error::decode("messages", format!("truncated record at byte {pos}"))),
            Scanned::Corrupt(why) => return Err(Error::decode("messages", format!("at byte {pos}: {why}"))),
        }
    }
    Ok(out)
}

/// Encodes the SEND_BATCH_MESSAGE body of `messages` (each with its own properties; the producer
/// sets every `UNIQ_KEY` first).
///
/// # Errors
/// [`Error::Invalid`] when a message's properties are too long for the format.
pub fn encode_batch(messages: &[Message]) -> Result<Bytes> {
    let mut out = BytesMut::with_capacity(messages.iter().map(|m| BATCH_ITEM_FIXED_BYTES + m.body.len() + 64).sum());
    for m in messages {
        let props = m.encoded_properties();
        if props.len() > PROPERTIES_BYTES_MAX {
            return Err(Error::Invalid(format!("properties of {} bytes are over {PROPERTIES_BYTES_MAX}", props.len())));
        }
        let total = BATCH_ITEM_FIXED_BYTES + m.body.len() + props.len();
        let total = i32::try_from(total).map_err(|_| Error::Invalid("batch item over 2 GiB".into()))?;
        out.put_i32(total);
        out.put_i32(0); // magic
        out.put_i32(0); // body CRC
        out.put_i32(m.flag);
        out.put_i32(m.body.len() as i32);
        out.put_slice(&m.body);
        out.put_i16(props.len() as i16);
        out.put_slice(props.as_bytes());
    }
    Ok(out.freeze())
}

/// Decodes a SEND_BATCH_MESSAGE body into messages (topic left empty; bodies share `body`).
///
/// # Errors
/// [`Error::Decode`] when an item's lengths do not fit the buffer or each other.
pub fn decode_batch(body: &Bytes) -> Result<Vec<Message>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let bad = |pos: usize, why: &str| Error::decode("batch", format!("item at byte {pos}: {why}"));
    while pos < body.len() {
        let item = &body[pos..];
        if item.len() < BATCH_ITEM_FIXED_BYTES {
            return Err(bad(pos, "shorter than the fixed fields"));
        }
        let total = be_i32(&item[0..4]);
        let total = usize::try_from(total).map_err(|_| bad(pos, "negative size"))?;
        if total < BATCH_ITEM_FIXED_BYTES || total > item.len() {
            return Err(bad(pos, "size out of range"));
        }
        let flag = be_i32(&item[12..16]);
        let body_len = usize::try_from(be_i32(&item[16..20])).map_err(|_| bad(pos, "negative body length"))?;
        let body_end =
            20usize.checked_add(body_len).filter(|&e| e + 2 <= total).ok_or_else(|| bad(pos, "body length"))?;
        let props_len = u16::from_be_bytes([item[body_end], item[body_end + 1]]) as usize;
        if body_end + 2 + props_len != total {
            return Err(bad(pos, "lengths do not add up to the size"));
        }
        let props = std::str::from_utf8(&item[body_end + 2..total]).map_err(|_| bad(pos, "properties not UTF-8"))?;
        out.push(Message {
            topic: String::new(),
            flag,
            body: body.slice(pos + 20..pos + body_end),
            properties: parse_properties(props),
        });
        pos += total;
    }
    Ok(out)
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
