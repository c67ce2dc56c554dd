//! The console's login and who may write through the HTTP door.
//!
//! Login is on when `dashboardLogin=on`, or with `auto` (the default) when the door binds an
//! address other than loopback; it is off with `off` or a loopback-only door. With login on:
//!
//! | request | reads (`GET`) | writes (every other method on `/v1/...`) |
//! |---|---|---|
//! | from a browser (it sends `Origin` or `Sec-Fetch-*`) | allowed | only with the session cookie of a logged-in user |
//! | with `Authorization: Basic` of the configured user | allowed | allowed |
//! | other clients, data plane (publish, receive, ack, nack, change invisible time, transactions) | allowed | allowed, as before (authentication of the data plane is the ACL's work) |
//! | other clients, admin (topics, groups, offsets, dead letters, plugins) | allowed | allowed from a loopback peer without `Forwarded`/`X-Forwarded-For`; otherwise 401 |
//!
//! A session is a random 256-bit token in the cookie `rmq_session` (`HttpOnly`,
//! `SameSite=Strict`, `Path=/`), valid for [`SESSION_TTL_MS`]; a write with a session whose
//! `Origin` is not this host is refused. The password is stored only as PBKDF2-HMAC-SHA256:
//! `dashboardPasswordHash=pbkdf2-sha256:<iterations>:<salt hex>:<32-byte key hex>`. No default
//! user or password exists: with login on and no user configured, browser writes are refused and
//! the console says how to configure one.
//!
//! Limits: [`SESSIONS_MAX`] sessions (the oldest is dropped), [`LOGIN_FAILURE_DELAY_MS`] before
//! a refused login answers, [`PBKDF2_ITERATIONS_MAX`] iterations, credentials of at most
//! [`CREDENTIAL_BYTES_MAX`] bytes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use broker::config::DashboardLogin;
use hmac::{Hmac, Mac};
use hyper::header::HeaderMap;
use sha2::Sha256;

/// The session cookie's name.
pub const COOKIE: &str = "rmq_session";
/// How long a session lasts, ms (12 hours).
pub const SESSION_TTL_MS: u64 = 12 * 3600 * 1000;
/// Sessions kept at once; a new login past this drops the oldest.
pub const SESSIONS_MAX: usize = 1024;
/// A refused login answers after this long, ms (slows password guessing).
pub const LOGIN_FAILURE_DELAY_MS: u64 = 500;
/// Most PBKDF2 iterations accepted in `dashboardPasswordHash`.
pub const PBKDF2_ITERATIONS_MAX: u32 = 10_000_000;
/// Longest user name or password looked at.
pub const CREDENTIAL_BYTES_MAX: usize = 1024;
const TOKEN_BYTES: usize = 32;
const DERIVED_KEY_BYTES: usize = 32;

/// What to tell an operator who must configure a user.
pub const CONFIGURE_HINT: &str = "set dashboardUser and dashboardPasswordHash \
    (pbkdf2-sha256:<iterations>:<salt hex>:<key hex>, see the README's Dashboard section) in broker.properties \
    and restart, or bind the HTTP door to a loopback address (bindAddress=127.0.0.1)";

/// The console's login settings, resolved at start.
#[derive(Clone, Debug)]
pub struct Login {
    /// Whether writes from browsers need a logged-in user.
    pub required: bool,
    user: Option<(String, PasswordHash)>,
}

/// A parsed `dashboardPasswordHash`.
#[derive(Clone, Debug)]
struct PasswordHash {
    iterations: u32,
    salt: Vec<u8>,
    key: Vec<u8>,
}

/// Who made a request, as far as writes are concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Login is off: anyone may write.
    Open,
    /// A logged-in console user (session cookie) or Basic credentials of the configured user.
    User(String),
    /// Not logged in.
    Anonymous,
}

impl Login {
    /// Login off: everything is open (the door on loopback, or tests).
    pub fn off() -> Login {
        Login { required: false, user: None }
    }

    /// Resolves `dashboardLogin` for a door bound to `bind_host`.
    ///
    /// # Errors
    ///
    /// A malformed `dashboardPasswordHash`, or only one of user and hash set.
    pub fn resolve(
        mode: DashboardLogin,
        bind_host: &str,
        user: Option<&str>,
        password_hash: Option<&str>,
    ) -> Result<Login, String> {
        let required = match mode {
            DashboardLogin::On => true,
            DashboardLogin::Off => false,
            DashboardLogin::Auto => !is_loopback_host(bind_host),
        };
        let user = match (user, password_hash) {
            (Some(u), Some(h)) => Some((u.to_owned(), PasswordHash::parse(h)?)),
            (None, None) => None,
            (Some(_), None) => return Err("dashboardUser is set but dashboardPasswordHash is not".into()),
            (None, Some(_)) => return Err("dashboardPasswordHash is set but dashboardUser is not".into()),
        };
        Ok(Login { required, user })
    }

    /// Whether a user is configured.
    pub fn configured(&self) -> bool {
        self.user.is_some()
    }

    /// Checks a user name and password against the configured user.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let Some((name, hash)) = &self.user else { return false };
        if user.len() > CREDENTIAL_BYTES_MAX || password.len() > CREDENTIAL_BYTES_MAX {
            return false;
        }
        let derived = pbkdf2(password.as_bytes(), &hash.salt, hash.iterations);
        constant_time_eq(&derived, &hash.key) & constant_time_eq(user.as_bytes(), name.as_bytes())
    }
}

impl PasswordHash {
    fn parse(text: &str) -> Result<PasswordHash, String> {
        let bad = |why: &str| {
            format!("dashboardPasswordHash: {why} (expected pbkdf2-sha256:<iterations>:<salt hex>:<key hex>)")
        };
        let parts: Vec<&str> = text.trim().split(':').collect();
        let [scheme, iterations, salt, key] = parts[..] else { return Err(bad("not four fields")) };
        if scheme != "pbkdf2-sha256" {
            return Err(bad(&format!("unknown scheme {scheme:?}")));
        }
        let iterations: u32 = iterations.parse().map_err(|_| bad("iterations is not a number"))?;
        if !(1..=PBKDF2_ITERATIONS_MAX).contains(&iterations) {
            return Err(bad(&format!("iterations must be 1 to {PBKDF2_ITERATIONS_MAX}")));
        }
        let salt = from_hex(salt).ok_or_else(|| bad("the salt is not hex"))?;
        let key = from_hex(key).ok_or_else(|| bad("the key is not hex"))?;
        if salt.len() < 8 {
            return Err(bad("the salt must be at least 8 bytes"));
        }
        if key.len() != DERIVED_KEY_BYTES {
            return Err(bad("the key must be 32 bytes (64 hex digits)"));
        }
        Ok(PasswordHash { iterations, salt, key })
    }
}

/// PBKDF2-HMAC-SHA256 with one 32-byte block (RFC 8018, section 5.2).
pub fn pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> [u8; DERIVED_KEY_BYTES] {
    let Ok(mac) = Hmac::<Sha256>::new_from_slice(password) else { return [0; DERIVED_KEY_BYTES] };
    let mut first = mac.clone();
    first.update(salt);
    first.update(&1u32.to_be_bytes());
    let mut u: [u8; DERIVED_KEY_BYTES] = first.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        let mut next = mac.clone();
        next.update(&u);
        u = next.finalize().into_bytes().into();
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether a bind host is loopback only (`127.x`, `::1`, `localhost`).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The logged-in sessions.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, (String, Instant)>>,
}

impl Sessions {
    /// A new session for `user`; its token.
    pub fn create(&self, user: &str) -> String {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::fill(&mut bytes);
        let token = to_hex(&bytes);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, (_, expires)| *expires > now);
        while map.len() >= SESSIONS_MAX {
            let Some(oldest) = map.iter().min_by_key(|(_, (_, e))| *e).map(|(k, _)| k.clone()) else { break };
            map.remove(&oldest);
        }
        map.insert(token.clone(), (user.to_owned(), now + Duration::from_millis(SESSION_TTL_MS)));
        token
    }

    /// The user of a live session.
    pub fn user(&self, token: &str) -> Option<String> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(token).filter(|(_, expires)| *expires > Instant::now()).map(|(u, _)| u.clone())
    }

    pub fn remove(&self, token: &str) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(token);
    }
}

/// The session token in the request's cookies.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers.get_all("cookie").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (name, value) = c.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty() && value.len() <= 2 * TOKEN_BYTES).then(|| value.to_owned())
    })
}

/// The `Set-Cookie` value of a new session (or, with `None`, one that ends it).
pub fn cookie(token: Option<&str>) -> String {
    match token {
        Some(t) => format!("{COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", SESSION_TTL_MS / 1000),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

/// Whether a browser sent the request (fetch metadata or an `Origin`).
pub fn from_browser(headers: &HeaderMap) -> bool {
    headers.contains_key("origin") || headers.contains_key("sec-fetch-site") || headers.contains_key("sec-fetch-mode")
}

/// Whether `Origin`, when present, names the host the request was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("");
    origin.split_once("://").is_some_and(|(_, h)| h.trim_end_matches('/') == host)
}

/// Whether the peer is this machine and no proxy says it forwards someone else.
pub fn local_peer(peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
    peer.is_some_and(|p| p.ip().is_loopback())
        && !headers.contains_key("forwarded")
        && !headers.contains_key("x-forwarded-for")
}

/// `Authorization: Basic` credentials.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let v = headers.get("authorization")?.to_str().ok()?;
    let (scheme, data) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || data.len() > 4 * CREDENTIAL_BYTES_MAX {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(data.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

#[cfg(test)]
mod tests {
    //! Password hashes, loopback hosts and cookies.

    use super::*;

    #[test]
    fn pbkdf2_matches_rfc_7914_vector() {
        // RFC 7914 section 11: PBKDF2-HMAC-SHA256, P="passwd", S="salt", c=1.
        let k = pbkdf2(b"passwd", b"salt", 1);
        assert_eq!(to_hex(&k), "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc");
    }

    #[test]
    fn password_hashes_parse_and_verify() {
        let salt = b"0123456789abcdef";
        let key = pbkdf2(b"s3cret", salt, 1000);
        let text = format!("pbkdf2-sha256:1000:{}:{}", to_hex(salt), to_hex(&key));
        let login = Login::resolve(DashboardLogin::Auto, "0.0.0.0", Some("admin"), Some(&text)).unwrap();
        assert!(login.required && login.configured());
        assert!(login.verify("admin", "s3cret"));
        assert!(!login.verify("admin", "s3cret!"));
        assert!(!login.verify("root", "s3cret"));
        for bad in [
            "sha256:1:00:00",
            "pbkdf2-sha256:x:0011223344556677:00",
            "pbkdf2-sha256:1:zz:00",
            "pbkdf2-sha256:1:00112233:00",
        ] {
            assert!(Login::resolve(DashboardLogin::On, "0.0.0.0", Some("a"), Some(bad)).is_err(), "{bad}");
        }
        assert!(Login::resolve(DashboardLogin::On, "0.0.0.0", Some("a"), None).is_err());
    }

    #[test]
    fn auto_login_follows_the_bind_address() {
        for (host, required) in
            [("127.0.0.1", false), ("::1", false), ("localhost", false), ("0.0.0.0", true), ("10.1.2.3", true)]
        {
            assert_eq!(Login::resolve(DashboardLogin::Auto, host, None, None).unwrap().required, required, "{host}");
        }
        assert!(!Login::resolve(DashboardLogin::Off, "0.0.0.0", None, None).unwrap().required);
        assert!(Login::resolve(DashboardLogin::On, "127.0.0.1", None, None).unwrap().required);
    }

    #[test]
    fn sessions_and_cookies() {
        let s = Sessions::default();
        let t = s.create("admin");
        let mut h = HeaderMap::new();
        h.insert("cookie", format!("a=b; {COOKIE}={t}; c=d").parse().unwrap());
        assert_eq!(session_token(&h).as_deref(), Some(t.as_str()));
        assert_eq!(s.user(&t).as_deref(), Some("admin"));
        s.remove(&t);
        assert_eq!(s.user(&t), None);
        assert!(cookie(Some("x")).contains("HttpOnly; SameSite=Strict"));
    }
}
