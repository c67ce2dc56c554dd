//! How an AMQP message becomes a RocketMQ message and back.
//!
//! | AMQP | RocketMQ message |
//! |---|---|
//! | body | body, unchanged |
//! | routing key | `TAGS` when it is a valid tag (not empty, no `\|\|`), and property `AMQP_RK` |
//! | exchange | property `AMQP_EX` |
//! | the whole content header (all properties, typed `headers`) | property `AMQP_PROPS`: the AMQP encoding of the property list, base64 (lossless) |
//! | `message-id` | first of `KEYS` |
//! | `content-type`, `correlation-id`, `type`, `app-id` and string or integer `headers` | also user properties (`content_type`, ..., header name), so native consumers and SQL92 filters see them |
//!
//! A message that a native producer wrote has no `AMQP_PROPS`: its user properties become
//! `headers` (long strings), its tag the routing key, its message id `message-id`, its born time
//! `timestamp`, and `delivery-mode` is 2.

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::basic::{AMQPProperties, gen_properties, parse_properties};
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
use base64::Engine;
use broker::messaging::{Message, OutgoingMessage};
use bytes::Bytes;

use crate::model::{value_int, value_text};

pub const PROP_EXCHANGE: &str = "AMQP_EX";
pub const PROP_ROUTING_KEY: &str = "AMQP_RK";
pub const PROP_PROPERTIES: &str = "AMQP_PROPS";
/// The encoded property list is capped (the broker's properties field is 32 KiB in total).
pub const PROPERTIES_BYTES_MAX: usize = 16 * 1024;

/// A message as a consumer receives it.
pub struct Delivery {
    pub exchange: String,
    pub routing_key: String,
    pub properties: AMQPProperties,
    pub body: Bytes,
}

/// Encodes the AMQP property list (flags then values), as in a content header frame.
pub fn encode_properties(p: &AMQPProperties) -> Option<Vec<u8>> {
    let ctx: WriteContext<Vec<u8>> = Vec::new().into();
    gen_properties(p)(ctx).ok().map(|c| c.into_inner().0)
}

/// A short string from any text, cut at 255 bytes on a character boundary.
pub fn short(text: &str) -> ShortString {
    let mut end = text.len().min(255);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::try_new(&text[..end]).unwrap_or_default()
}

/// Whether a routing key can be a RocketMQ tag.
fn tag_safe(key: &str) -> bool {
    !key.is_empty() && !key.contains("||") && key.len() <= 255
}

/// The RocketMQ message for one publish. `None` when the properties are too large.
pub fn to_outgoing(
    exchange: &str,
    routing_key: &str,
    properties: &AMQPProperties,
    body: Bytes,
) -> Option<OutgoingMessage> {
    let encoded = encode_properties(properties)?;
    if encoded.len() > PROPERTIES_BYTES_MAX {
        return None;
    }
    let mut props = vec![
        (PROP_EXCHANGE.to_owned(), exchange.to_owned()),
        (PROP_ROUTING_KEY.to_owned(), routing_key.to_owned()),
        (PROP_PROPERTIES.to_owned(), base64::engine::general_purpose::STANDARD.encode(encoded)),
    ];
    let mut add = |name: &str, v: &Option<ShortString>| {
        if let Some(v) = v {
            props.push((name.to_owned(), v.as_str().to_owned()));
        }
    };
    add("content_type", properties.content_type());
    add("correlation_id", properties.correlation_id());
    add("type", properties.kind());
    add("app_id", properties.app_id());
    if let Some(h) = properties.headers() {
        for (k, v) in h {
            let name = k.as_str();
            if !safe_property(name) || name.starts_with("AMQP_") {
                continue;
            }
            let text = value_text(v).or_else(|| value_int(v).map(|i| i.to_string()));
            if let Some(t) = text.filter(|t| safe_property(t)) {
                props.push((name.to_owned(), t));
            }
        }
    }
    let keys = properties.message_id().iter().map(|m| m.as_str().to_owned()).filter(|k| safe_property(k)).collect();
    Some(OutgoingMessage {
        body,
        tag: tag_safe(routing_key).then(|| routing_key.to_owned()),
        keys,
        properties: props,
        ..OutgoingMessage::default()
    })
}

/// RocketMQ's property separators (1 and 2) may not appear in names or values.
fn safe_property(s: &str) -> bool {
    !s.is_empty() && !s.bytes().any(|b| b == 1 || b == 2)
}

/// What a consumer receives for a stored message.
pub fn to_delivery(m: &Message) -> Delivery {
    let prop = |name: &str| m.properties.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let amqp = prop(PROP_PROPERTIES)
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|bytes| parse_properties(&bytes[..]).ok().map(|(_, p)| p));
    let routing_key = prop(PROP_ROUTING_KEY).map(str::to_owned).or_else(|| m.tag.clone()).unwrap_or_default();
    let exchange = prop(PROP_EXCHANGE).unwrap_or("").to_owned();
    let properties = amqp.unwrap_or_else(|| native_properties(m));
    Delivery { exchange, routing_key, properties, body: m.body.clone() }
}

fn native_properties(m: &Message) -> AMQPProperties {
    let mut headers = FieldTable::default();
    for (k, v) in &m.properties {
        if let Ok(name) = ShortString::try_new(k.as_str()) {
            headers.insert(name, AMQPValue::LongString(LongString::from(v.as_bytes())));
        }
    }
    let id = m.keys.first().cloned().unwrap_or_else(|| m.message_id.clone());
    AMQPProperties::default()
        .with_headers(headers)
        .with_message_id(short(&id))
        .with_delivery_mode(2)
        .with_timestamp(u64::try_from(m.born_timestamp_ms / 1000).unwrap_or(0))
}

/// The message's `expiration` property in ms, if it is a valid one.
pub fn expiration_ms(p: &AMQPProperties) -> Option<u64> {
    p.expiration().as_ref().and_then(|e| e.as_str().parse().ok())
}

/// An outgoing message as if it had been stored (for dead-lettering one that never was).
pub fn as_stored(m: &OutgoingMessage) -> Message {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    Message {
        message_id: String::new(),
        offset_message_id: String::new(),
        topic: String::new(),
        queue_id: 0,
        queue_offset: 0,
        tag: m.tag.clone(),
        keys: m.keys.clone(),
        properties: m.properties.clone(),
        born_timestamp_ms: now,
        store_timestamp_ms: now,
        reconsume_times: 0,
        body: m.body.clone(),
    }
}
