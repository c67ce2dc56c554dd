//! Messages as a plugin sees them: one byte buffer plus a packed index of 12 u64 words per
//! message (the layout is documented on `msg-batch` in `wit/plugin.wit`).

use crate::store::format::{MessageInput, StoredRecord, tags_code};

use super::Needs;

/// u64 words per message in the packed index.
pub const INDEX_WORDS: usize = 12;

const PROPERTY_TAGS: &str = "TAGS";
const PROPERTY_KEYS: &str = "KEYS";

/// The fields of one message a plugin may read, borrowed from a stored record or a send.
#[derive(Debug, Clone, Copy)]
pub struct PluginMessage<'a> {
    pub queue_id: u32,
    pub sys_flag: i32,
    pub queue_offset: u64,
    pub commitlog_offset: u64,
    pub born_timestamp: i64,
    pub store_timestamp: i64,
    pub reconsume_times: i32,
    pub topic: &'a str,
    /// RocketMQ's encoding: name 0x01 value 0x02.
    pub properties: &'a str,
    pub body: &'a [u8],
}

impl<'a> PluginMessage<'a> {
    pub fn from_record(r: &StoredRecord<'a>) -> PluginMessage<'a> {
        PluginMessage {
            queue_id: r.queue_id,
            sys_flag: r.sys_flag,
            queue_offset: r.queue_offset,
            commitlog_offset: r.physical_offset,
            born_timestamp: r.born_timestamp,
            store_timestamp: r.store_timestamp,
            reconsume_times: r.reconsume_times,
            topic: r.topic,
            properties: r.properties,
            body: r.body,
        }
    }

    /// A message being sent (not stored yet: offsets and store time are 0).
    pub fn from_input(m: &'a MessageInput) -> PluginMessage<'a> {
        PluginMessage {
            queue_id: m.queue_id,
            sys_flag: m.sys_flag,
            queue_offset: 0,
            commitlog_offset: 0,
            born_timestamp: m.born_timestamp,
            store_timestamp: 0,
            reconsume_times: m.reconsume_times,
            topic: &m.topic,
            properties: &m.properties,
            body: &m.body,
        }
    }

    pub fn tags(&self) -> Option<&'a str> {
        property(self.properties, PROPERTY_TAGS)
    }

    pub fn tags_code(&self) -> i64 {
        tags_code(self.tags())
    }
}

/// `store::format::property` on bytes (the hot path of every plugin call looks up TAGS and KEYS):
/// the first pair named `key` with a non-empty value. Pairs are found with `memchr`.
fn property<'a>(encoded: &'a str, key: &str) -> Option<&'a str> {
    const NAME_VALUE_SEPARATOR: u8 = 1;
    const PROPERTY_SEPARATOR: u8 = 2;
    let bytes = encoded.as_bytes();
    let mut start = 0;
    while start <= bytes.len() {
        let end = memchr::memchr(PROPERTY_SEPARATOR, &bytes[start..]).map_or(bytes.len(), |i| start + i);
        let value =
            bytes[start..end].strip_prefix(key.as_bytes()).and_then(|v| v.strip_prefix(&[NAME_VALUE_SEPARATOR]));
        if let Some(value) = value
            && !value.is_empty()
        {
            // The separators are ASCII, so these are char boundaries.
            return encoded.get(end - value.len()..end);
        }
        start = end + 1;
    }
    None
}

/// `start << 32 | len`; spans past 4 GiB cannot occur (batches are far smaller), saturated anyway.
fn span(start: usize, len: usize) -> u64 {
    ((start.min(u32::MAX as usize) as u64) << 32) | len.min(u32::MAX as usize) as u64
}

/// Where `value` (a sub-slice of `props`) sits in `props`.
fn offset_in(props: &str, value: &str) -> usize {
    value.as_ptr() as usize - props.as_ptr() as usize
}

/// Appends one message to the batch buffers, copying only what `needs` asks for. Tags and keys
/// point into the copied properties when those are copied.
pub fn push(m: &PluginMessage<'_>, needs: Needs, data: &mut Vec<u8>, index: &mut Vec<u64>) {
    let tags = m.tags();
    push_tagged(m, tags, tags_code(tags), needs, data, index);
}

/// [`push`] with the message's tags and their hash code already looked up.
pub fn push_tagged(
    m: &PluginMessage<'_>,
    tags: Option<&str>,
    code: i64,
    needs: Needs,
    data: &mut Vec<u8>,
    index: &mut Vec<u64>,
) {
    let keys = || property(m.properties, PROPERTY_KEYS);
    let put = |bytes: &[u8], data: &mut Vec<u8>| {
        let start = data.len();
        data.extend_from_slice(bytes);
        span(start, bytes.len())
    };
    let topic = if needs.topic { put(m.topic.as_bytes(), data) } else { 0 };
    let (props, tags_span, keys_span);
    if needs.properties {
        let base = data.len();
        props = put(m.properties.as_bytes(), data);
        let within = |v: Option<&str>| v.map(|v| span(base + offset_in(m.properties, v), v.len())).unwrap_or(0);
        tags_span = if needs.tags { within(tags) } else { 0 };
        keys_span = if needs.keys { within(keys()) } else { 0 };
    } else {
        props = 0;
        tags_span = match (needs.tags, tags) {
            (true, Some(t)) => put(t.as_bytes(), data),
            _ => 0,
        };
        keys_span = match keys().filter(|_| needs.keys) {
            Some(k) => put(k.as_bytes(), data),
            None => 0,
        };
    }
    let body = if needs.body { put(m.body, data) } else { 0 };
    index.extend_from_slice(&[
        u64::from(m.queue_id) | (u64::from(m.sys_flag as u32) << 32),
        m.queue_offset,
        m.commitlog_offset,
        m.born_timestamp as u64,
        m.store_timestamp as u64,
        code as u64,
        m.reconsume_times as u32 as u64,
        topic,
        tags_span,
        keys_span,
        props,
        body,
    ]);
}

/// Bit `i` of a bitmap (missing words read as clear).
pub fn bit(map: &[u64], i: usize) -> bool {
    map.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}
