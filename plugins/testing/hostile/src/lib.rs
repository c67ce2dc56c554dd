//! TEST FIXTURE: a filter that misbehaves on purpose, for the broker's sandbox tests. Never deploy
//! it anywhere else.
//!
//! Parameter `mode`:
//! * `loop`: never returns (the call deadline must stop it);
//! * `bomb`: allocates until the memory cap stops it;
//! * `panic`: panics on every call;
//! * `trap-on-key` (with `key`): panics on a batch holding a message with that key, passes the rest;
//! * `fail-until` (with `until`, Unix ms): panics on every call before that time, then passes;
//! * `pass`: passes everything (the "fixed" version).

use rocketmq_plugin_sdk::{Filter, Level, Message, Needs, Params, export_filter, log, now_millis};

pub struct Hostile {
    mode: String,
    key: String,
    until: u64,
}

impl Filter for Hostile {
    const NAME: &'static str = "hostile-filter";
    const NEEDS: Needs = Needs { topic: false, tags: false, keys: true, properties: false, body: false };

    fn create(p: &Params) -> Result<Self, String> {
        let mode = p.required("mode")?.to_owned();
        if !["loop", "bomb", "panic", "trap-on-key", "fail-until", "pass"].contains(&mode.as_str()) {
            return Err(format!("unknown mode `{mode}`"));
        }
        let until = p.get("until").map(|u| u.parse::<u64>().map_err(|_| "`until` is Unix ms")).transpose()?;
        Ok(Hostile { mode, key: p.get("key").unwrap_or("").to_owned(), until: until.unwrap_or(0) })
    }

    fn matches(&self, msg: &Message<'_>) -> Result<bool, String> {
        match self.mode.as_str() {
            "loop" => {
                let mut x = 0u64;
                loop {
                    x = x.wrapping_add(1);
                    std::hint::black_box(x);
                }
            }
            "bomb" => {
                // Reserve (grow memory) in 4 MiB steps without touching the pages, so the cap
                // is what stops it, not the deadline.
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = Vec::with_capacity(4 << 20);
                    chunk.push(7u8);
                    hoard.push(chunk);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("this plugin always panics"),
            "trap-on-key" if msg.keys().any(|k| k == self.key) => {
                log(Level::Error, "poison key seen; panicking");
                panic!("poison message")
            }
            "fail-until" if now_millis() < self.until => panic!("not yet"),
            _ => Ok(true),
        }
    }
}

export_filter!(Hostile);
