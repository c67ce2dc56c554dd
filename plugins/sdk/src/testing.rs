//! Unit-testing a plugin natively (`cargo test`, no Wasm): build messages the way the broker
//! packs them and run your [`Filter`](crate::Filter), [`Router`](crate::Router) or
//! [`Checker`](crate::Checker) on them. Host calls (`log`, `counter_add`, `now_millis`) are not
//! available natively; test code that does not call them, and run the plugin in the broker
//! (`mqadmin plugin deploy`) for the rest.
//!
//! ```
//! use rocketmq_plugin_sdk::testing::{TestMessage, filter, params};
//! use rocketmq_plugin_sdk::{Filter, Message, Params};
//!
//! struct EuOnly;
//!
//! impl Filter for EuOnly {
//!     fn create(_params: &Params) -> Result<Self, String> {
//!         Ok(EuOnly)
//!     }
//!     fn matches(&self, msg: &Message) -> Result<bool, String> {
//!         Ok(msg.property("region") == Some("eu"))
//!     }
//! }
//!
//! let got = filter::<EuOnly>(&params(&[]), &[TestMessage::new().property("region", "eu")]);
//! assert_eq!(got, vec![Ok(true)]);
//! ```

use crate::message::{Batch, INDEX_WORDS};
use crate::{Checker, Filter, Params, Resolution, Route, RouteContext, Router};

/// A message to test with; unset fields are empty.
#[derive(Debug, Clone, Default)]
pub struct TestMessage {
    pub topic: String,
    pub tags: Option<String>,
    pub keys: Vec<String>,
    pub properties: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl TestMessage {
    pub fn new() -> TestMessage {
        TestMessage::default()
    }

    pub fn topic(mut self, t: &str) -> TestMessage {
        self.topic = t.to_owned();
        self
    }

    pub fn tags(mut self, t: &str) -> TestMessage {
        self.tags = Some(t.to_owned());
        self
    }

    pub fn key(mut self, k: &str) -> TestMessage {
        self.keys.push(k.to_owned());
        self
    }

    pub fn property(mut self, name: &str, value: &str) -> TestMessage {
        self.properties.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, b: impl AsRef<[u8]>) -> TestMessage {
        self.body = b.as_ref().to_vec();
        self
    }
}

/// Java's `String.hashCode` of the tags, as the ConsumeQueue stores it.
fn java_hash(s: &str) -> i64 {
    let mut h: i32 = 0;
    for u in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(u));
    }
    i64::from(h)
}

fn span(data: &mut Vec<u8>, bytes: &[u8]) -> u64 {
    let start = data.len() as u64;
    data.extend_from_slice(bytes);
    (start << 32) | bytes.len() as u64
}

/// Packs messages as the broker does: one buffer and [`INDEX_WORDS`] u64 words per message.
pub fn pack(msgs: &[TestMessage]) -> (Vec<u8>, Vec<u64>) {
    let (mut data, mut index) = (Vec::new(), Vec::new());
    for m in msgs {
        let mut props = String::new();
        if let Some(t) = &m.tags {
            props.push_str(&format!("TAGS\u{1}{t}\u{2}"));
        }
        if !m.keys.is_empty() {
            props.push_str(&format!("KEYS\u{1}{}\u{2}", m.keys.join(" ")));
        }
        for (k, v) in &m.properties {
            props.push_str(&format!("{k}\u{1}{v}\u{2}"));
        }
        let mut w = [0u64; INDEX_WORDS];
        w[5] = m.tags.as_deref().map_or(0, java_hash) as u64;
        w[7] = span(&mut data, m.topic.as_bytes());
        w[8] = span(&mut data, m.tags.as_deref().unwrap_or("").as_bytes());
        w[9] = span(&mut data, m.keys.join(" ").as_bytes());
        w[10] = span(&mut data, props.as_bytes());
        w[11] = span(&mut data, &m.body);
        index.extend_from_slice(&w);
    }
    (data, index)
}

/// Parameters from pairs.
pub fn params(pairs: &[(&str, &str)]) -> Params {
    Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

/// Creates `F` from `params` (panicking if `create` refuses them) and matches each message
/// (the prefilter first, if `F` has one: a message it drops is `Ok(false)`).
pub fn filter<F: Filter>(params: &Params, msgs: &[TestMessage]) -> Vec<Result<bool, String>> {
    let f = F::create(params).unwrap_or_else(|e| panic!("create refused the parameters: {e}"));
    let (data, index) = pack(msgs);
    Batch::new(&data, &index)
        .iter()
        .map(
            |m| {
                if F::HAS_PREFILTER && f.prefilters() && !f.prefilter(m.tags_code()) {
                    Ok(false)
                } else {
                    f.matches(&m)
                }
            },
        )
        .collect()
}

/// Creates `R` from `params` and routes each message of a send to `topic` with `write_queues`.
pub fn route<R: Router>(params: &Params, topic: &str, write_queues: u32, msgs: &[TestMessage]) -> Vec<Route> {
    let r = R::create(params).unwrap_or_else(|e| panic!("create refused the parameters: {e}"));
    let ctx = RouteContext { topic: topic.to_owned(), write_queues };
    let (data, index) = pack(msgs);
    Batch::new(&data, &index).iter().map(|m| r.route(&ctx, &m)).collect()
}

/// Creates `C` from `params` and checks each half message.
pub fn check<C: Checker>(params: &Params, msgs: &[TestMessage]) -> Vec<Resolution> {
    let c = C::create(params).unwrap_or_else(|e| panic!("create refused the parameters: {e}"));
    let (data, index) = pack(msgs);
    Batch::new(&data, &index).iter().map(|m| c.check(&m)).collect()
}
