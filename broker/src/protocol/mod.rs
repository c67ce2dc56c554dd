//! What travels inside remoting frames: request and response codes, typed access to header
//! fields, the JSON bodies shared by the name server, the broker and the tools, and message ids.
//!
//! The persisted shapes (`TopicConfig`, `SubscriptionGroupConfig`, `DataVersion`) live in
//! [`crate::store::metadata`] and are re-exported here: the wire and the files use one shape.

pub mod body;
pub mod codes;
pub mod header;
pub mod message_id;
#[cfg(test)]
mod tests;

pub use codes::{request, response};
pub use header::{HeaderError, Headers};

pub use crate::store::metadata::{
    DataVersion, PERM_INHERIT, PERM_READ, PERM_WRITE, SubscriptionGroupConfig, TopicConfig, TopicFilterType,
};

/// The default topic whose route producers fall back to for unknown topics.
pub const AUTO_CREATE_TOPIC: &str = "TBW102";
/// Topic names: RocketMQ's `^[%|a-zA-Z0-9_-]+$`, at most this many bytes.
pub const TOPIC_NAME_BYTES_MAX: usize = 127;
/// Group names: same characters, at most this many bytes (Java: `CHARACTER_MAX_LENGTH` 255).
pub const GROUP_NAME_BYTES_MAX: usize = 255;

pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";

/// Whether `name` is a valid topic or group name (characters and length).
pub fn valid_resource_name(name: &str, max_bytes: usize) -> bool {
    !name.is_empty()
        && name.len() <= max_bytes
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-'))
}

/// Checks a topic name as 4.9.4's `Validators.checkTopic` and the broker do; the error is the
/// remark to send.
pub fn check_topic_name(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("The specified topic is blank.".into());
    }
    if topic.len() > TOPIC_NAME_BYTES_MAX {
        return Err(format!("The specified topic is longer than topic max length {TOPIC_NAME_BYTES_MAX}."));
    }
    if !valid_resource_name(topic, TOPIC_NAME_BYTES_MAX) {
        return Err(format!(
            "The specified topic[{topic}] contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
        ));
    }
    Ok(())
}

/// Topics producers may not send to directly.
pub fn is_system_topic(topic: &str) -> bool {
    matches!(
        topic,
        "SCHEDULE_TOPIC_XXXX"
            | "RMQ_SYS_TRANS_HALF_TOPIC"
            | "RMQ_SYS_TRANS_OP_HALF_TOPIC"
            | "TRANS_CHECK_MAX_TIME_TOPIC"
            | "SELF_TEST_TOPIC"
            | "OFFSET_MOVED_EVENT"
    )
}

/// `%RETRY%<group>`.
pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
}

/// `%DLQ%<group>`.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_GROUP_TOPIC_PREFIX}{group}")
}

/// Message properties (`key\x01value\x02...`) as owned pairs, parsed as 4.9.4 does: a trailing
/// separator is allowed, entries with an empty key or value are dropped. Lookups and encoding
/// are the store's ([`property`], [`encode_properties`]): the wire and the CommitLog carry one format.
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    crate::store::format::properties(text).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

pub use crate::store::format::{encode_properties, property};
