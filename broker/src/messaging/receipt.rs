//! Receipt handles of the simple consumer: opaque strings that say which lease a message was
//! received under, signed so that a client cannot forge or alter one.
//!
//! Layout: `base64url(payload) "." base64url(tag)`, where `payload` is the newline-separated text
//! `v1, broker name, group, topic, queue id, queue offset, pop time ms, invisible-until ms` and
//! `tag` the first [`TAG_BYTES`] bytes of HMAC-SHA256(key, payload). The topic is the one the
//! message was read from (the pop retry topic for a redelivery). Names cannot hold a newline
//! (RocketMQ's name grammar), so the fields split unambiguously.
//!
//! The key is 32 random bytes in `<storePathRootDir>/config/receiptHandleKey` (hex), made at the
//! first start: a restarted broker verifies the handles it gave out before, and brokers given the
//! same file verify each other's (a gateway in front of several brokers can check a handle before
//! routing it).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key file, under `<storePathRootDir>/config/`.
pub const KEY_FILE: &str = "receiptHandleKey";
/// Longest handle accepted (checked before decoding).
pub const HANDLE_BYTES_MAX: usize = 1024;
/// Bytes of the HMAC kept in a handle.
pub const TAG_BYTES: usize = 16;
const KEY_BYTES: usize = 32;
const VERSION: &str = "v1";

/// The lease a handle names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handle {
    pub broker_name: String,
    pub group: String,
    pub topic: String,
    pub queue_id: u32,
    pub queue_offset: u64,
    pub pop_time_ms: i64,
    pub invisible_until_ms: i64,
}

/// The signing key.
#[derive(Clone)]
pub struct ReceiptKey([u8; KEY_BYTES]);

impl std::fmt::Debug for ReceiptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReceiptKey(..)")
    }
}

impl ReceiptKey {
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> ReceiptKey {
        ReceiptKey(bytes)
    }

    /// Reads `<dir>/receiptHandleKey`, or makes one from the system's random source and writes it.
    ///
    /// # Errors
    ///
    /// The file exists but does not hold 64 hex digits, or it cannot be read or written.
    pub fn load_or_create(dir: &Path) -> std::io::Result<ReceiptKey> {
        let path = dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_hex(text.trim()).map(ReceiptKey).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} does not hold {} hex digits", path.display(), KEY_BYTES * 2),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; KEY_BYTES];
                std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut key)?;
                let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
                crate::store::metadata::write_atomically(&path, hex.as_bytes())
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                Ok(ReceiptKey(key))
            }
            Err(e) => Err(e),
        }
    }

    fn tag(&self, payload: &[u8]) -> [u8; TAG_BYTES] {
        // HMAC takes keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// The handle's text.
    pub fn encode(&self, h: &Handle) -> String {
        let payload = format!(
            "{VERSION}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            h.broker_name, h.group, h.topic, h.queue_id, h.queue_offset, h.pop_time_ms, h.invisible_until_ms
        );
        let tag = self.tag(payload.as_bytes());
        format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(tag))
    }

    /// Checks the signature and splits the fields.
    ///
    /// # Errors
    ///
    /// A description of what is wrong: too long, not base64url, bad signature, bad fields.
    pub fn decode(&self, text: &str) -> Result<Handle, String> {
        if text.len() > HANDLE_BYTES_MAX {
            return Err(format!("longer than {HANDLE_BYTES_MAX} bytes"));
        }
        let (payload, tag) = text.split_once('.').ok_or("not a receipt handle")?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| "not base64url")?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| "not base64url")?;
        if tag.len() != TAG_BYTES {
            return Err("signature does not match".into());
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(&payload);
        mac.verify_truncated_left(&tag).map_err(|_| "signature does not match")?;
        let text = std::str::from_utf8(&payload).map_err(|_| "not UTF-8")?;
        let f: Vec<&str> = text.split('\n').collect();
        let [version, broker, group, topic, queue, offset, pop, until] = f[..] else {
            return Err("wrong number of fields".into());
        };
        if version != VERSION {
            return Err(format!("unknown version {version:?}"));
        }
        let bad = |what: &str| format!("bad {what}");
        Ok(Handle {
            broker_name: broker.to_owned(),
            group: group.to_owned(),
            topic: topic.to_owned(),
            queue_id: queue.parse().map_err(|_| bad("queue id"))?,
            queue_offset: offset.parse().map_err(|_| bad("queue offset"))?,
            pop_time_ms: pop.parse().map_err(|_| bad("pop time"))?,
            invisible_until_ms: until.parse().map_err(|_| bad("deadline"))?,
        })
    }
}

fn parse_hex(text: &str) -> Option<[u8; KEY_BYTES]> {
    if text.len() != KEY_BYTES * 2 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; KEY_BYTES];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    //! Round trip, and every kind of tampering refused.

    use super::*;

    fn handle() -> Handle {
        Handle {
            broker_name: "broker-a".into(),
            group: "billing".into(),
            topic: "orders".into(),
            queue_id: 3,
            queue_offset: 1042,
            pop_time_ms: 1_700_000_000_000,
            invisible_until_ms: 1_700_000_060_000,
        }
    }

    #[test]
    fn round_trip() {
        let key = ReceiptKey::from_bytes([7; 32]);
        let text = key.encode(&handle());
        assert_eq!(key.decode(&text).unwrap(), handle());
    }

    #[test]
    fn tampering_is_refused() {
        let key = ReceiptKey::from_bytes([7; 32]);
        let text = key.encode(&handle());
        let other = ReceiptKey::from_bytes([8; 32]);
        assert!(other.decode(&text).is_err(), "another key");
        let (payload, tag) = text.split_once('.').unwrap();
        let mut forged = handle();
        forged.queue_offset = 1;
        let forged_payload = other.encode(&forged);
        let cases = [
            String::new(),
            "garbage".to_owned(),
            format!("{payload}."),
            format!("{}.{tag}", forged_payload.split_once('.').unwrap().0),
            format!("{payload}.{}", &tag[..tag.len() - 2]),
            format!("{payload}x.{tag}"),
            "a".repeat(HANDLE_BYTES_MAX + 1),
        ];
        for case in cases {
            assert!(key.decode(&case).is_err(), "{case:?} accepted");
        }
    }

    #[test]
    fn key_file_is_made_once_and_reread() {
        let dir = tempfile::tempdir().unwrap();
        let a = ReceiptKey::load_or_create(dir.path()).unwrap();
        let b = ReceiptKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.0, b.0);
        std::fs::write(dir.path().join(KEY_FILE), "nothex").unwrap();
        assert!(ReceiptKey::load_or_create(dir.path()).is_err());
    }
}
