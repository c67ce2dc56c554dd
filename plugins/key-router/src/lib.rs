//! A router: spreads messages over queues by a hash of their key, and diverts flagged messages
//! to another topic.
//!
//! Parameters (all optional):
//! * `hash`: `key` (default) puts a message with keys on queue `fnv1a32(first key) % queues`;
//!   `none` keeps the producer's queue.
//! * `divert-property`, `divert-value`, `divert-topic`: a message whose property equals the value
//!   goes to that topic (same queue id, modulo its queues).
//! * `require-key`: `true` refuses messages without keys.

use rocketmq_plugin_sdk::{Message, Needs, Params, Route, RouteContext, Router, export_router};

pub struct KeyRouter {
    hash: bool,
    divert: Option<(String, String, String)>,
    require_key: bool,
}

/// 32-bit FNV-1a: the queue of a key is `fnv1a32(key) % queues`.
pub fn fnv1a32(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl Router for KeyRouter {
    const NAME: &'static str = "key-router";
    const NEEDS: Needs = Needs { topic: false, tags: false, keys: true, properties: true, body: false };

    fn create(p: &Params) -> Result<Self, String> {
        let hash = match p.get("hash").unwrap_or("key") {
            "key" => true,
            "none" => false,
            other => return Err(format!("`hash` is `key` or `none`, not `{other}`")),
        };
        let divert = match (p.get("divert-property"), p.get("divert-value"), p.get("divert-topic")) {
            (None, None, None) => None,
            (Some(k), Some(v), Some(t)) if !t.trim().is_empty() => {
                Some((k.to_owned(), v.to_owned(), t.trim().to_owned()))
            }
            _ => return Err("`divert-property`, `divert-value` and `divert-topic` go together".into()),
        };
        let require_key = p.get("require-key") == Some("true");
        Ok(KeyRouter { hash, divert, require_key })
    }

    fn route(&self, ctx: &RouteContext, msg: &Message<'_>) -> Route {
        if let Some((k, v, t)) = &self.divert
            && msg.property(k) == Some(v.as_str())
        {
            return Route::Topic(t.clone(), None);
        }
        match msg.keys().next() {
            Some(key) if self.hash && ctx.write_queues > 0 => Route::Queue(fnv1a32(key) % ctx.write_queues),
            Some(_) => Route::Keep,
            None if self.require_key => Route::Reject("this topic needs a message key".into()),
            None => Route::Keep,
        }
    }
}

export_router!(KeyRouter);
