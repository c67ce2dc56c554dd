//! The admin bodies with RocketMQ 4.9.4's JSON shapes, shared by the broker's admin processor and
//! by `mqadmin`.
//!
//! Three of them (`TopicStatsTable`, `ConsumeStats`, `ResetOffsetBody`) are maps keyed by a
//! `MessageQueue` *object*: fastjson writes `{"offsetTable":{{"brokerName":"b","queueId":0,
//! "topic":"T"}:{...}}}`, which is not standard JSON. [`write_mq_map`] writes that shape and
//! [`parse_extended`] reads it (and fastjson's bare number keys) into a `serde_json::Value` whose
//! non-string keys are replaced by their compact JSON text, which [`mq_map`] turns back into
//! [`MessageQueue`]s.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::body::{MessageQueue, SubscriptionData};

/// Deepest nesting [`parse_extended`] accepts (bytes from the network never recurse further).
pub const JSON_DEPTH_MAX: usize = 64;

/// `TopicOffset`: one queue of `GET_TOPIC_STATS_INFO`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicOffset {
    /// Store time of the newest message, 0 when the queue is empty.
    pub last_update_timestamp: i64,
    pub max_offset: i64,
    pub min_offset: i64,
}

/// `TopicStatsTable` (GET_TOPIC_STATS_INFO, 202).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicStatsTable {
    pub offset_table: BTreeMap<MessageQueue, TopicOffset>,
}

impl TopicStatsTable {
    /// fastjson's shape: object keys.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = String::from("{\"offsetTable\":");
        write_mq_map(&mut out, &self.offset_table);
        out.push('}');
        out.into_bytes()
    }

    /// Reads fastjson's shape (or ours).
    ///
    /// # Errors
    /// A description of the first malformed part.
    pub fn parse(bytes: &[u8]) -> Result<TopicStatsTable, String> {
        let v = parse_extended(bytes)?;
        Ok(TopicStatsTable { offset_table: mq_map(v.get("offsetTable"))? })
    }
}

/// `OffsetWrapper`: one queue of `GET_CONSUME_STATS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OffsetWrapper {
    /// The queue's max offset (next to be written).
    pub broker_offset: i64,
    /// The group's committed offset (0 when none).
    pub consumer_offset: i64,
    /// Store time of the last consumed message, 0 when unknown.
    pub last_timestamp: i64,
}

/// `ConsumeStats` (GET_CONSUME_STATS, 208).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsumeStats {
    pub consume_tps: f64,
    pub offset_table: BTreeMap<MessageQueue, OffsetWrapper>,
}

impl ConsumeStats {
    /// fastjson's shape: sorted members, object keys.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = String::from("{\"consumeTps\":");
        out.push_str(&json_f64(self.consume_tps));
        out.push_str(",\"offsetTable\":");
        write_mq_map(&mut out, &self.offset_table);
        out.push('}');
        out.into_bytes()
    }

    /// # Errors
    /// A description of the first malformed part.
    pub fn parse(bytes: &[u8]) -> Result<ConsumeStats, String> {
        let v = parse_extended(bytes)?;
        Ok(ConsumeStats {
            consume_tps: v.get("consumeTps").and_then(Value::as_f64).unwrap_or(0.0),
            offset_table: mq_map(v.get("offsetTable"))?,
        })
    }

    /// Sum of `brokerOffset - consumerOffset` over the queues (Java's `computeTotalDiff`).
    pub fn total_diff(&self) -> i64 {
        self.offset_table.values().map(|w| w.broker_offset - w.consumer_offset).sum()
    }
}

/// `ResetOffsetBody` (INVOKE_BROKER_TO_RESET_OFFSET reply, RESET_CONSUMER_CLIENT_OFFSET body).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResetOffsetBody {
    pub offset_table: BTreeMap<MessageQueue, i64>,
}

impl ResetOffsetBody {
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = String::from("{\"offsetTable\":");
        write_mq_map(&mut out, &self.offset_table);
        out.push('}');
        out.into_bytes()
    }

    /// # Errors
    /// A description of the first malformed part.
    pub fn parse(bytes: &[u8]) -> Result<ResetOffsetBody, String> {
        let v = parse_extended(bytes)?;
        Ok(ResetOffsetBody { offset_table: mq_map(v.get("offsetTable"))? })
    }
}

/// `Connection`: one client connection of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Connection {
    pub client_addr: String,
    pub client_id: String,
    /// `LanguageCode` name (`JAVA`, `CPP`, `RUST`, ...).
    pub language: String,
    /// The client's `MQVersion` ordinal.
    pub version: i32,
}

/// `ConsumerConnection` (GET_CONSUMER_CONNECTION_LIST, 203).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerConnection {
    pub connection_set: Vec<Connection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_from_where: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_model: Option<String>,
    pub subscription_table: BTreeMap<String, SubscriptionData>,
}

impl ConsumerConnection {
    /// The lowest client version of the group (Java's `computeMinVersion`).
    pub fn min_version(&self) -> Option<i32> {
        self.connection_set.iter().map(|c| c.version).min()
    }
}

/// `ProducerConnection` (GET_PRODUCER_CONNECTION_LIST, 204).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerConnection {
    pub connection_set: Vec<Connection>,
}

/// `GroupList` (QUERY_TOPIC_CONSUME_BY_WHO, 300).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GroupList {
    pub group_list: Vec<String>,
}

/// Java's `MQVersion.getVersionDesc` for the 4.x and 5.x ordinals (`401` is `V4_9_4`): from
/// `V4_0_0_SNAPSHOT` (212) on, every patch release has a `_SNAPSHOT` and a release entry, ten
/// patches per minor, ten minors per major.
pub fn version_desc(version: i32) -> String {
    const V4_0_0_SNAPSHOT: i32 = 212;
    if version < V4_0_0_SNAPSHOT {
        return format!("V3({version})");
    }
    let n = version - V4_0_0_SNAPSHOT;
    let major = 4 + n / 200;
    let minor = (n % 200) / 20;
    let patch = (n % 20) / 2;
    let snapshot = if n % 2 == 0 { "_SNAPSHOT" } else { "" };
    format!("V{major}_{minor}_{patch}{snapshot}")
}

/// Writes a map keyed by `MessageQueue` objects, as fastjson does.
pub fn write_mq_map<V: Serialize>(out: &mut String, map: &BTreeMap<MessageQueue, V>) {
    out.push('{');
    for (i, (mq, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(mq).unwrap_or_default());
        out.push(':');
        out.push_str(&serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
    }
    out.push('}');
}

/// A map read by [`parse_extended`] whose keys are `MessageQueue` objects (as compact JSON text).
///
/// # Errors
/// A key that is not a message queue, or a value not of type `V`.
pub fn mq_map<V: DeserializeOwned>(v: Option<&Value>) -> Result<BTreeMap<MessageQueue, V>, String> {
    let mut out = BTreeMap::new();
    let Some(v) = v else { return Ok(out) };
    let Some(obj) = v.as_object() else {
        return if v.is_null() { Ok(out) } else { Err(format!("expected an object keyed by message queues, got {v}")) };
    };
    for (k, val) in obj {
        let mq: MessageQueue =
            serde_json::from_str(k).map_err(|e| format!("map key {k:?} is not a message queue: {e}"))?;
        let val: V = serde_json::from_value(val.clone()).map_err(|e| format!("value of {k}: {e}"))?;
        out.insert(mq, val);
    }
    Ok(out)
}

/// A double as fastjson writes it (`0.0`, `12.5`); NaN and infinities as 0.0.
fn json_f64(v: f64) -> String {
    if !v.is_finite() {
        return "0.0".into();
    }
    let s = serde_json::to_string(&v).unwrap_or_else(|_| "0.0".into());
    if s.contains(['.', 'e', 'E']) { s } else { format!("{s}.0") }
}

/// Parses JSON that may have non-string object keys (fastjson's `{0:"a"}` and
/// `{{"topic":..}:..}`): string keys stay as they are; any other key becomes its compact JSON
/// text (`0`, `{"brokerName":"b","queueId":0,"topic":"T"}`).
///
/// # Errors
/// A description with the byte offset where parsing stopped.
pub fn parse_extended(bytes: &[u8]) -> Result<Value, String> {
    let mut p = Parser { b: bytes, i: 0 };
    let v = p.value(0)?;
    p.ws();
    if p.i != bytes.len() {
        return Err(format!("trailing bytes at {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn err(&self, what: &str) -> String {
        format!("{what} at byte {}", self.i)
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > JSON_DEPTH_MAX {
            return Err(self.err("nesting too deep"));
        }
        self.ws();
        match self.b.get(self.i) {
            None => Err(self.err("unexpected end")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(c) if *c == b'-' || c.is_ascii_digit() => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn literal(&mut self, word: &str, v: Value) -> Result<Value, String> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.err("bad literal"))
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        while self.i < self.b.len() && matches!(self.b[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).map_err(|_| self.err("bad number"))?;
        serde_json::from_str::<serde_json::Number>(text).map(Value::Number).map_err(|_| self.err("bad number"))
    }

    fn string(&mut self) -> Result<String, String> {
        let start = self.i;
        self.i += 1;
        loop {
            match self.b.get(self.i) {
                None => return Err(self.err("unterminated string")),
                Some(b'\\') => self.i += 2,
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(_) => self.i += 1,
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.i.min(self.b.len())]).map_err(|_| self.err("bad UTF-8"))?;
        serde_json::from_str::<String>(text).map_err(|e| format!("bad string before byte {}: {e}", self.i))
    }

    fn array(&mut self, depth: usize) -> Result<Value, String> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("expected , or ]")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, String> {
        self.i += 1;
        let mut map = serde_json::Map::new();
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Value::Object(map));
        }
        loop {
            let key = match self.value(depth + 1)? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return Err(self.err("expected :"));
            }
            self.i += 1;
            let v = self.value(depth + 1)?;
            map.insert(key, v);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.err("expected , or }")),
            }
        }
    }
}
