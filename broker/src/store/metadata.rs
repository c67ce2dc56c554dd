//! The JSON metadata files in `<root>/config/`: topics, consumer offsets, subscription groups and
//! delay offsets, read and written in the shapes RocketMQ 4.9.4 uses.
//!
//! | file | type | Java writer |
//! |---|---|---|
//! | `topics.json` | [`TopicTable`] | `TopicConfigManager` (`TopicConfigSerializeWrapper`) |
//! | `consumerOffset.json` | [`ConsumerOffsets`] | `ConsumerOffsetManager` |
//! | `subscriptionGroup.json` | [`SubscriptionGroupTable`] | `SubscriptionGroupManager` |
//! | `delayOffset.json` | [`DelayOffsets`] | `DelayOffsetSerializeWrapper` |
//!
//! # Format written
//!
//! RocketMQ persists with fastjson 1.2.69 `JSON.toJSONString(obj, true)`.
//! [`ConfigFile::to_fastjson`] reproduces that byte for byte, except for the order of map entries
//! (see the deviations below):
//!
//! * Indentation is one tab per level; no space after `:`; no trailing newline.
//! * An object written from a Java bean (the file itself, `dataVersion`, each topic or group
//!   config) puts every property on its own line, sorted by name, and its `}` on a line of its own.
//! * A map with string keys (`topicConfigTable`, `offsetTable`'s `topic@group` level) puts each
//!   entry on its own line; an empty one is `{}`.
//! * A map with integer keys (queue id or delay level → offset) writes the keys **unquoted**, all
//!   entries on one line, then a newline and the `}` at the map's own indent:
//!
//! ```text
//! {
//!     "offsetTable":{
//!         "T@g1":{0:12,1:9
//!         }
//!     }
//! }
//! ```
//!
//! Each 4-space step above is one tab in the file, which reads
//! `"{\n\t\"offsetTable\":{\n\t\t\"T@g1\":{0:12,1:9\n\t\t}\n\t}\n}"`.
//!
//! # Format read
//!
//! [`ConfigFile::parse`] accepts both fastjson's bare integer keys and standard quoted keys (a
//! pre-pass quotes bare integer keys outside strings, then serde_json parses). Unknown members
//! (`attributes`, 5.x's `dataVersion` in `consumerOffset.json`, …) are ignored; missing members
//! take the Java defaults. Files over [`METADATA_FILE_BYTES_MAX`] are refused before they are read.
//! Nothing in here panics on any input.
//!
//! # Durability sequence ([`write_atomically`])
//!
//! 1. Write `<file>.tmp` in full and fsync it.
//! 2. If `<file>` exists, copy it to `<file>.bak` and fsync the copy.
//! 3. Rename `<file>.tmp` over `<file>`.
//! 4. Fsync the directory.
//!
//! A crash at any step leaves `<file>` either old or new, never torn. [`load`] falls back to
//! `<file>.bak` when `<file>` is missing, empty or unparsable, as `ConfigManager.load` does.
//!
//! # Deviations from RocketMQ
//!
//! * Map entries are written in sorted key order; Java writes `ConcurrentHashMap` order. Readers
//!   (fastjson, this module) do not care.
//! * RocketMQ deletes `<file>` before renaming and fsyncs nothing; we rename over it and fsync.
//! * A main file that is unparsable while its `.bak` is unusable too is an error here
//!   ([`Error::Corrupt`]); Java logs it and starts with whatever it had.
//! * `null` members are refused (fastjson never writes them for these types).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Error, Result};

/// Largest metadata file [`load`] reads: 64 MiB. Checked against the file's length before reading.
pub const METADATA_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Permission bit: the topic may be read (`PermName.PERM_READ`).
pub const PERM_READ: u32 = 1 << 2;
/// Permission bit: the topic may be written (`PermName.PERM_WRITE`).
pub const PERM_WRITE: u32 = 1 << 1;
/// Permission bit: new topics may inherit this topic's config (`PermName.PERM_INHERIT`).
pub const PERM_INHERIT: u32 = 1;

/// `DataVersion`: bumped whenever a table changes, so the name server can tell stale
/// registrations from fresh ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DataVersion {
    /// Wall-clock ms of the last change.
    pub timestamp: i64,
    /// Number of changes.
    pub counter: i64,
}

impl Default for DataVersion {
    /// Counter 0 stamped now, as Java's `new DataVersion()`.
    fn default() -> DataVersion {
        DataVersion { timestamp: now_ms(), counter: 0 }
    }
}

impl DataVersion {
    /// Records a change: counter + 1, timestamp now (`nextVersion`).
    pub fn next(&mut self) {
        self.timestamp = now_ms();
        self.counter = self.counter.wrapping_add(1);
    }
}

/// `TopicFilterType`, written by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TopicFilterType {
    /// `SINGLE_TAG` (the default).
    #[default]
    SingleTag,
    /// `MULTI_TAG`.
    MultiTag,
}

impl TopicFilterType {
    /// The Java enum constant's name.
    pub fn as_str(self) -> &'static str {
        match self {
            TopicFilterType::SingleTag => "SINGLE_TAG",
            TopicFilterType::MultiTag => "MULTI_TAG",
        }
    }
}

impl Serialize for TopicFilterType {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TopicFilterType {
    /// Accepts the name (what fastjson writes) or the ordinal (what fastjson also reads).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        match &value {
            serde_json::Value::String(s) if s == "SINGLE_TAG" => Ok(TopicFilterType::SingleTag),
            serde_json::Value::String(s) if s == "MULTI_TAG" => Ok(TopicFilterType::MultiTag),
            serde_json::Value::Number(n) if n.as_u64() == Some(0) => Ok(TopicFilterType::SingleTag),
            serde_json::Value::Number(n) if n.as_u64() == Some(1) => Ok(TopicFilterType::MultiTag),
            _ => Err(serde::de::Error::custom(format!("unknown topicFilterType {value}"))),
        }
    }
}

/// `TopicConfig`: one topic's queues and permissions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfig {
    /// `topicName`.
    pub topic_name: String,
    /// `readQueueNums`, default 16.
    pub read_queue_nums: u32,
    /// `writeQueueNums`, default 16.
    pub write_queue_nums: u32,
    /// `perm`: [`PERM_READ`] | [`PERM_WRITE`] | [`PERM_INHERIT`] bits, default 6 (read, write).
    pub perm: u32,
    /// `topicFilterType`, default `SINGLE_TAG`.
    pub topic_filter_type: TopicFilterType,
    /// `topicSysFlag`, default 0.
    pub topic_sys_flag: i32,
    /// `order`, default false.
    pub order: bool,
}

impl Default for TopicConfig {
    fn default() -> TopicConfig {
        TopicConfig::new("")
    }
}

impl TopicConfig {
    /// A topic with Java's defaults: 16 read and 16 write queues, read-write.
    pub fn new(topic_name: impl Into<String>) -> TopicConfig {
        TopicConfig {
            topic_name: topic_name.into(),
            read_queue_nums: 16,
            write_queue_nums: 16,
            perm: PERM_READ | PERM_WRITE,
            topic_filter_type: TopicFilterType::SingleTag,
            topic_sys_flag: 0,
            order: false,
        }
    }

    fn to_node(&self) -> Node<'_> {
        Node::Bean(vec![
            ("order", Node::Bool(self.order)),
            ("perm", Node::Int(self.perm.into())),
            ("readQueueNums", Node::Int(self.read_queue_nums.into())),
            ("topicFilterType", Node::Str(self.topic_filter_type.as_str())),
            ("topicName", Node::Str(&self.topic_name)),
            ("topicSysFlag", Node::Int(self.topic_sys_flag.into())),
            ("writeQueueNums", Node::Int(self.write_queue_nums.into())),
        ])
    }
}

/// `topics.json`: every topic of the broker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicTable {
    /// `dataVersion`.
    pub data_version: DataVersion,
    /// `topicConfigTable`, by topic name.
    pub topic_config_table: BTreeMap<String, TopicConfig>,
}

/// `consumerOffset.json`: committed offsets by `topic@group`, then queue id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerOffsets {
    /// `offsetTable`: `"topic@group"` → queue id → next offset to consume.
    pub offset_table: BTreeMap<String, BTreeMap<u32, i64>>,
}

/// Separator of topic and group in [`ConsumerOffsets::offset_table`] keys.
const TOPIC_GROUP_SEPARATOR: char = '@';

impl ConsumerOffsets {
    /// The `offsetTable` key of a topic and group.
    pub fn key(topic: &str, group: &str) -> String {
        format!("{topic}{TOPIC_GROUP_SEPARATOR}{group}")
    }

    /// The committed offset of one queue (`queryOffset`), `None` if never committed.
    pub fn offset(&self, topic: &str, group: &str, queue_id: u32) -> Option<i64> {
        self.offset_table.get(&Self::key(topic, group))?.get(&queue_id).copied()
    }

    /// Every committed queue offset of a group on a topic.
    pub fn offsets(&self, topic: &str, group: &str) -> Option<&BTreeMap<u32, i64>> {
        self.offset_table.get(&Self::key(topic, group))
    }

    /// Records a committed offset (`commitOffset`). A smaller offset than before is accepted, as
    /// in Java (a consumer may rewind).
    pub fn commit(&mut self, topic: &str, group: &str, queue_id: u32, offset: i64) {
        self.offset_table.entry(Self::key(topic, group)).or_default().insert(queue_id, offset);
    }

    /// Groups with offsets on `topic` (`whichGroupByTopic`).
    pub fn groups_of_topic(&self, topic: &str) -> BTreeSet<&str> {
        self.pairs().filter(|(t, _)| *t == topic).map(|(_, g)| g).collect()
    }

    /// Topics on which `group` has offsets (`whichTopicByConsumer`).
    pub fn topics_of_group(&self, group: &str) -> BTreeSet<&str> {
        self.pairs().filter(|(_, g)| *g == group).map(|(t, _)| t).collect()
    }

    /// Forgets every offset of `group` (`removeOffset`).
    pub fn remove_group(&mut self, group: &str) {
        self.offset_table.retain(|key, _| split_key(key).is_none_or(|(_, g)| g != group));
    }

    /// `(topic, group)` of every well-formed key.
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.offset_table.keys().filter_map(|key| split_key(key))
    }
}

/// Splits `topic@group`; keys with no or more than one separator are skipped, as in Java.
fn split_key(key: &str) -> Option<(&str, &str)> {
    let (topic, group) = key.split_once(TOPIC_GROUP_SEPARATOR)?;
    (!group.contains(TOPIC_GROUP_SEPARATOR)).then_some((topic, group))
}

/// `SubscriptionGroupConfig`: one consumer group's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupConfig {
    /// `groupName`.
    pub group_name: String,
    /// `consumeEnable`, default true.
    pub consume_enable: bool,
    /// `consumeFromMinEnable`, default true.
    pub consume_from_min_enable: bool,
    /// `consumeBroadcastEnable`, default true.
    pub consume_broadcast_enable: bool,
    /// `retryQueueNums`, default 1.
    pub retry_queue_nums: u32,
    /// `retryMaxTimes`, default 16.
    pub retry_max_times: i32,
    /// `brokerId`, default 0 (the master).
    pub broker_id: u64,
    /// `whichBrokerWhenConsumeSlowly`, default 1.
    pub which_broker_when_consume_slowly: u64,
    /// `notifyConsumerIdsChangedEnable`, default true.
    pub notify_consumer_ids_changed_enable: bool,
}

impl Default for SubscriptionGroupConfig {
    fn default() -> SubscriptionGroupConfig {
        SubscriptionGroupConfig::new("")
    }
}

impl SubscriptionGroupConfig {
    /// A group with Java's defaults.
    pub fn new(group_name: impl Into<String>) -> SubscriptionGroupConfig {
        SubscriptionGroupConfig {
            group_name: group_name.into(),
            consume_enable: true,
            consume_from_min_enable: true,
            consume_broadcast_enable: true,
            retry_queue_nums: 1,
            retry_max_times: 16,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
        }
    }

    fn to_node(&self) -> Node<'_> {
        Node::Bean(vec![
            ("brokerId", Node::Int(clamp_u64(self.broker_id))),
            ("consumeBroadcastEnable", Node::Bool(self.consume_broadcast_enable)),
            ("consumeEnable", Node::Bool(self.consume_enable)),
            ("consumeFromMinEnable", Node::Bool(self.consume_from_min_enable)),
            ("groupName", Node::Str(&self.group_name)),
            ("notifyConsumerIdsChangedEnable", Node::Bool(self.notify_consumer_ids_changed_enable)),
            ("retryMaxTimes", Node::Int(self.retry_max_times.into())),
            ("retryQueueNums", Node::Int(self.retry_queue_nums.into())),
            ("whichBrokerWhenConsumeSlowly", Node::Int(clamp_u64(self.which_broker_when_consume_slowly))),
        ])
    }
}

/// `subscriptionGroup.json`: every consumer group of the broker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupTable {
    /// `dataVersion`.
    pub data_version: DataVersion,
    /// `subscriptionGroupTable`, by group name.
    pub subscription_group_table: BTreeMap<String, SubscriptionGroupConfig>,
}

/// `delayOffset.json`: how far each delay level's queue of `SCHEDULE_TOPIC_XXXX` is delivered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DelayOffsets {
    /// `offsetTable`: delay level (1-based) → next offset of queue `level - 1` to deliver.
    pub offset_table: BTreeMap<u32, i64>,
}

impl DelayOffsets {
    /// The delivered offset of a delay level, `None` if never recorded.
    pub fn offset(&self, level: u32) -> Option<i64> {
        self.offset_table.get(&level).copied()
    }

    /// Records a delivered offset of a delay level.
    pub fn update(&mut self, level: u32, offset: i64) {
        self.offset_table.insert(level, offset);
    }
}

/// Why a metadata file's text was refused.
#[derive(Debug, thiserror::Error)]
#[error("{reason} (near byte {offset})")]
pub struct ParseError {
    /// Byte offset in the original text, approximately where parsing stopped.
    pub offset: u64,
    /// What was wrong, lower case.
    pub reason: String,
}

/// One of the four metadata files.
pub trait ConfigFile: Default + DeserializeOwned {
    /// The file's name in `<root>/config/`.
    const FILE_NAME: &'static str;

    /// The file's text as fastjson's pretty format writes it (see the module docs).
    fn to_fastjson(&self) -> String;

    /// Parses a file's text: fastjson's (bare integer keys) or standard JSON.
    ///
    /// # Errors
    ///
    /// [`ParseError`] for text that is not JSON of this file's shape.
    fn parse(bytes: &[u8]) -> std::result::Result<Self, ParseError> {
        parse_lenient(bytes)
    }
}

impl ConfigFile for TopicTable {
    const FILE_NAME: &'static str = "topics.json";

    fn to_fastjson(&self) -> String {
        let topics = self.topic_config_table.iter().map(|(k, v)| (k.as_str(), v.to_node()));
        Node::Bean(vec![
            ("dataVersion", data_version_node(&self.data_version)),
            ("topicConfigTable", Node::StrMap(topics.collect())),
        ])
        .render()
    }
}

impl ConfigFile for ConsumerOffsets {
    const FILE_NAME: &'static str = "consumerOffset.json";

    fn to_fastjson(&self) -> String {
        let table = self.offset_table.iter().map(|(k, queues)| (k.as_str(), int_map_node(queues)));
        Node::Bean(vec![("offsetTable", Node::StrMap(table.collect()))]).render()
    }
}

impl ConfigFile for SubscriptionGroupTable {
    const FILE_NAME: &'static str = "subscriptionGroup.json";

    fn to_fastjson(&self) -> String {
        let groups = self.subscription_group_table.iter().map(|(k, v)| (k.as_str(), v.to_node()));
        Node::Bean(vec![
            ("dataVersion", data_version_node(&self.data_version)),
            ("subscriptionGroupTable", Node::StrMap(groups.collect())),
        ])
        .render()
    }
}

impl ConfigFile for DelayOffsets {
    const FILE_NAME: &'static str = "delayOffset.json";

    fn to_fastjson(&self) -> String {
        Node::Bean(vec![("offsetTable", int_map_node(&self.offset_table))]).render()
    }
}

fn data_version_node(version: &DataVersion) -> Node<'static> {
    Node::Bean(vec![("counter", Node::Int(version.counter)), ("timestamp", Node::Int(version.timestamp))])
}

fn int_map_node(map: &BTreeMap<u32, i64>) -> Node<'static> {
    Node::IntMap(map.iter().map(|(k, v)| (i64::from(*k), *v)).collect())
}

/// Java longs are signed; values past `i64::MAX` cannot come from Java and are clamped.
fn clamp_u64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A value as fastjson sees it: beans and maps print differently.
enum Node<'a> {
    /// A Java bean: properties one per line, names sorted.
    Bean(Vec<(&'static str, Node<'a>)>),
    /// A map with string keys: entries one per line.
    StrMap(Vec<(&'a str, Node<'a>)>),
    /// A map with integer keys and values: entries on one line, keys unquoted.
    IntMap(Vec<(i64, i64)>),
    Str(&'a str),
    Int(i64),
    Bool(bool),
}

impl Node<'_> {
    fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out
    }

    /// Writes the node at nesting depth `indent` (fastjson's `indentCount`).
    fn write(&self, out: &mut String, indent: usize) {
        match self {
            Node::Bean(fields) => {
                debug_assert!(fields.is_sorted_by_key(|(name, _)| *name), "bean properties out of order");
                out.push('{');
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, indent + 1);
                    push_string(out, name);
                    out.push(':');
                    value.write(out, indent + 1);
                }
                if !fields.is_empty() {
                    newline(out, indent);
                }
                out.push('}');
            }
            Node::StrMap(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, indent + 1);
                    push_string(out, key);
                    out.push(':');
                    value.write(out, indent + 1);
                }
                if !entries.is_empty() {
                    newline(out, indent);
                }
                out.push('}');
            }
            Node::IntMap(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&key.to_string());
                    out.push(':');
                    out.push_str(&value.to_string());
                }
                if !entries.is_empty() {
                    newline(out, indent);
                }
                out.push('}');
            }
            Node::Str(s) => push_string(out, s),
            Node::Int(n) => out.push_str(&n.to_string()),
            Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        }
    }
}

/// fastjson's `println`: a newline, then a tab per level.
fn newline(out: &mut String, indent: usize) {
    out.push('\n');
    for _ in 0..indent {
        out.push('\t');
    }
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
fn push_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let code = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[code >> 4]));
                out.push(char::from(HEX[code & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parses fastjson or standard JSON into `T`.
pub fn parse_lenient<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, ParseError> {
    let (quoted, inserted) = quote_integer_keys(bytes);
    serde_json::from_slice(&quoted).map_err(|err| {
        let at = offset_of(&quoted, err.line(), err.column());
        let original = at - inserted.partition_point(|&p| p < at);
        let mut reason = err.to_string();
        if err.line() > 0
            && let Some(cut) = reason.rfind(" at line ")
        {
            reason.truncate(cut);
        }
        ParseError { offset: original as u64, reason }
    })
}

/// Quotes integer object keys that stand bare (`{0:12}` → `{"0":12}`), outside strings only.
/// Returns the new text and the positions in it of the quotes that were inserted.
fn quote_integer_keys(input: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::with_capacity(input.len() + input.len() / 8);
    let mut inserted = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut key_may_follow = false;
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.push(b);
                i += 1;
            }
            b'{' | b',' => {
                key_may_follow = true;
                out.push(b);
                i += 1;
            }
            b'-' | b'0'..=b'9' if key_may_follow => {
                let rest = input.get(i + 1..).unwrap_or_default();
                let end = i + 1 + rest.iter().take_while(|c| c.is_ascii_digit()).count();
                let token = input.get(i..end).unwrap_or_default();
                let after = input.get(end..).unwrap_or_default();
                let next = after.iter().find(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'));
                if next == Some(&b':') {
                    inserted.push(out.len());
                    out.push(b'"');
                    out.extend_from_slice(token);
                    inserted.push(out.len());
                    out.push(b'"');
                } else {
                    out.extend_from_slice(token);
                }
                key_may_follow = false;
                i = end;
            }
            _ => {
                in_string = b == b'"';
                key_may_follow = false;
                out.push(b);
                i += 1;
            }
        }
    }
    (out, inserted)
}

/// The byte offset of serde_json's 1-based line and column, clamped to the text.
fn offset_of(text: &[u8], line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        text.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(line - 2).map_or(text.len(), |(i, _)| i + 1)
    };
    line_start.saturating_add(column.saturating_sub(1)).min(text.len())
}

/// `<path><suffix>`, e.g. `topics.json.bak`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new content, never a mix;
/// the old content is kept in `<path>.bak`. The steps are in the module docs.
///
/// # Errors
///
/// [`Error::Io`] (or [`Error::DiskFull`]) naming the file whose operation failed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(Error::io(dir))?;

    let tmp = sibling(path, ".tmp");
    let mut file = File::create(&tmp).map_err(Error::io(&tmp))?;
    file.write_all(bytes).map_err(Error::io(&tmp))?;
    file.sync_all().map_err(Error::io(&tmp))?;
    drop(file);

    if path.exists() {
        let bak = sibling(path, ".bak");
        fs::copy(path, &bak).map_err(Error::io(&bak))?;
        File::open(&bak).and_then(|f| f.sync_all()).map_err(Error::io(&bak))?;
    }

    fs::rename(&tmp, path).map_err(Error::io(path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io(dir))
}

/// Loads a metadata file: `Ok(None)` when neither it nor its `.bak` exists.
///
/// A missing or empty file falls back to `<path>.bak`, as does an unparsable one.
///
/// # Errors
///
/// [`Error::Corrupt`] naming `path` when it cannot be parsed and `<path>.bak` cannot stand in
/// (naming the `.bak` when only that exists and it is unparsable); [`Error::Io`] when a file cannot
/// be read.
pub fn load<T: ConfigFile>(path: &Path) -> Result<Option<T>> {
    load_limited(path, METADATA_FILE_BYTES_MAX)
}

/// [`load`] with a size limit of `bytes_max`.
fn load_limited<T: ConfigFile>(path: &Path, bytes_max: u64) -> Result<Option<T>> {
    let bak = sibling(path, ".bak");
    match read_one::<T>(path, bytes_max)? {
        Loaded::Parsed(value) => Ok(Some(value)),
        Loaded::Absent => match read_one::<T>(&bak, bytes_max)? {
            Loaded::Parsed(value) => {
                tracing::warn!(file = %path.display(), "missing or empty; loaded its backup");
                Ok(Some(value))
            }
            Loaded::Absent => Ok(None),
            Loaded::Corrupt(e) => Err(Error::Corrupt { file: bak, offset: e.offset, reason: e.reason }),
        },
        Loaded::Corrupt(e) => {
            tracing::warn!(file = %path.display(), error = %e, "unparsable; trying its backup");
            let fallback = match read_one::<T>(&bak, bytes_max) {
                Ok(Loaded::Parsed(value)) => {
                    tracing::warn!(file = %path.display(), "loaded its backup");
                    return Ok(Some(value));
                }
                Ok(Loaded::Absent) => "no backup".to_owned(),
                Ok(Loaded::Corrupt(b)) => format!("backup unparsable too: {b}"),
                Err(b) => format!("backup unreadable: {b}"),
            };
            Err(Error::Corrupt { file: path.to_owned(), offset: e.offset, reason: format!("{}; {fallback}", e.reason) })
        }
    }
}

enum Loaded<T> {
    /// Missing or empty.
    Absent,
    Parsed(T),
    Corrupt(ParseError),
}

/// Reads and parses one file, refusing it unread if it is larger than `bytes_max`.
fn read_one<T: ConfigFile>(path: &Path, bytes_max: u64) -> Result<Loaded<T>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Absent),
        Err(e) => return Err(Error::io(path)(e)),
    };
    let len = file.metadata().map_err(Error::io(path))?.len();
    let too_large = |len: u64| ParseError {
        offset: bytes_max,
        reason: format!("file of {len} bytes exceeds the limit of {bytes_max} bytes"),
    };
    if len > bytes_max {
        return Ok(Loaded::Corrupt(too_large(len)));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(bytes_max.saturating_add(1)).read_to_end(&mut bytes).map_err(Error::io(path))?;
    let read = bytes.len() as u64;
    if read > bytes_max {
        return Ok(Loaded::Corrupt(too_large(read)));
    }
    if bytes.is_empty() {
        return Ok(Loaded::Absent);
    }
    Ok(match T::parse(&bytes) {
        Ok(value) => Loaded::Parsed(value),
        Err(e) => Loaded::Corrupt(e),
    })
}

/// One file's content and the lock that orders its writes.
#[derive(Debug)]
struct Slot<T> {
    data: Mutex<T>,
    persisting: Mutex<()>,
}

/// The four metadata files of a store, loaded and kept in memory.
///
/// Change a table through its guard ([`MetadataFiles::topics`], …), drop the guard, then call the
/// matching `persist_*`. Holding a table's guard while persisting that table deadlocks.
#[derive(Debug)]
pub struct MetadataFiles {
    dir: PathBuf,
    topics: Slot<TopicTable>,
    consumer_offsets: Slot<ConsumerOffsets>,
    subscription_groups: Slot<SubscriptionGroupTable>,
    delay_offsets: Slot<DelayOffsets>,
}

impl MetadataFiles {
    /// Loads the files in `dir` (normally `StoreConfig::metadata_dir()`), creating the directory;
    /// absent files start empty (with a fresh [`DataVersion`]).
    ///
    /// # Errors
    ///
    /// As [`load`]; [`Error::Io`] if `dir` cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<MetadataFiles> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        Ok(MetadataFiles {
            topics: Slot::load(&dir)?,
            consumer_offsets: Slot::load(&dir)?,
            subscription_groups: Slot::load(&dir)?,
            delay_offsets: Slot::load(&dir)?,
            dir,
        })
    }

    /// The directory of the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `topics.json`'s table.
    pub fn topics(&self) -> MutexGuard<'_, TopicTable> {
        lock(&self.topics.data)
    }

    /// `consumerOffset.json`'s table.
    pub fn consumer_offsets(&self) -> MutexGuard<'_, ConsumerOffsets> {
        lock(&self.consumer_offsets.data)
    }

    /// `subscriptionGroup.json`'s table.
    pub fn subscription_groups(&self) -> MutexGuard<'_, SubscriptionGroupTable> {
        lock(&self.subscription_groups.data)
    }

    /// `delayOffset.json`'s table.
    pub fn delay_offsets(&self) -> MutexGuard<'_, DelayOffsets> {
        lock(&self.delay_offsets.data)
    }

    /// Writes `topics.json` from the table as it is now.
    ///
    /// # Errors
    ///
    /// As [`write_atomically`].
    pub fn persist_topics(&self) -> Result<()> {
        self.topics.persist(&self.dir)
    }

    /// Writes `consumerOffset.json` from the table as it is now.
    ///
    /// # Errors
    ///
    /// As [`write_atomically`].
    pub fn persist_consumer_offsets(&self) -> Result<()> {
        self.consumer_offsets.persist(&self.dir)
    }

    /// Writes `subscriptionGroup.json` from the table as it is now.
    ///
    /// # Errors
    ///
    /// As [`write_atomically`].
    pub fn persist_subscription_groups(&self) -> Result<()> {
        self.subscription_groups.persist(&self.dir)
    }

    /// Writes `delayOffset.json` from the table as it is now.
    ///
    /// # Errors
    ///
    /// As [`write_atomically`].
    pub fn persist_delay_offsets(&self) -> Result<()> {
        self.delay_offsets.persist(&self.dir)
    }

    /// Writes all four files (at shutdown); stops at the first error.
    ///
    /// # Errors
    ///
    /// As [`write_atomically`].
    pub fn persist_all(&self) -> Result<()> {
        self.persist_topics()?;
        self.persist_consumer_offsets()?;
        self.persist_subscription_groups()?;
        self.persist_delay_offsets()
    }
}

impl<T: ConfigFile> Slot<T> {
    fn load(dir: &Path) -> Result<Slot<T>> {
        let path = dir.join(T::FILE_NAME);
        let data = load::<T>(&path)?.unwrap_or_default();
        Ok(Slot { data: Mutex::new(data), persisting: Mutex::new(()) })
    }

    /// Serializes under the table's lock, then writes outside it. `persisting` is held across
    /// both, so writes reach the disk in the order their snapshots were taken.
    fn persist(&self, dir: &Path) -> Result<()> {
        let _persisting = lock(&self.persisting);
        let text = lock(&self.data).to_fastjson();
        write_atomically(&dir.join(T::FILE_NAME), text.as_bytes())
    }
}

/// Locks a mutex; a panic elsewhere while holding it leaves plain data, still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wall-clock ms since the epoch (0 if the clock is before it).
fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
