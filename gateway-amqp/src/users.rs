//! Who may log in to the AMQP door and which virtual hosts each user may open.
//!
//! Two sources: the default user (`amqpDefaultUser` / `amqpDefaultPass`, vhost `/` only) and
//! `amqpUsers`, a list of `user:password:vhost,vhost` entries separated by `;`, for example
//! `amqpUsers=alice:secret:/,/orders;bob:pw2:/orders`. A vhost exists when some user may open it
//! (and `/` always exists). User names and passwords may not contain `:` or `;`; vhost names may
//! not contain `,` or `;`; surrounding blanks are trimmed. A user named twice is a configuration
//! error, as is an entry without a vhost.
//!
//! Passwords are not kept: only a SHA-256 of a per-process random salt and the password, so a
//! memory dump or a debug print shows no password. As in RabbitMQ, a user named `guest` may only
//! log in from a loopback address.

use std::collections::BTreeSet;

use sha2::Digest;

/// Users in `amqpUsers` at most.
pub const USERS_MAX: usize = 1024;
/// Vhosts one user may be given at most.
pub const VHOSTS_PER_USER_MAX: usize = 256;
/// Bytes of a user name, a password or a vhost name at most (an AMQP short string).
pub const NAME_BYTES_MAX: usize = 255;

/// Why `amqpUsers` was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsersError {
    #[error("amqpUsers entry {entry}: expected user:password:vhost[,vhost...]")]
    Shape { entry: usize },
    #[error("amqpUsers entry {entry}: a user name, password or vhost is empty or longer than {NAME_BYTES_MAX} bytes")]
    Name { entry: usize },
    #[error("amqpUsers: user '{0}' is defined twice (or is also amqpDefaultUser)")]
    Duplicate(String),
    #[error("amqpUsers: more than {USERS_MAX} users, or a user with more than {VHOSTS_PER_USER_MAX} vhosts")]
    TooMany,
}

/// One user: a name, a salted password digest and the vhosts it may open.
struct User {
    name: String,
    digest: [u8; 32],
    vhosts: BTreeSet<String>,
}

/// Every user of the door.
pub struct Users {
    salt: [u8; 16],
    users: Vec<User>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.users.iter().map(|u| u.name.as_str()).collect();
        f.debug_struct("Users").field("names", &names).finish_non_exhaustive()
    }
}

/// A salt that differs between processes (not secret; it only makes a digest useless elsewhere).
fn random_salt() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; 16];
    for half in out.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

fn digest(salt: &[u8; 16], pass: &str) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(salt);
    h.update(pass.as_bytes());
    h.finalize().into()
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= NAME_BYTES_MAX
}

impl Users {
    /// The default user (vhost `/`) and the users of `amqpUsers` (`extra`, may be empty).
    ///
    /// # Errors
    ///
    /// `extra` is not a list of `user:password:vhost[,vhost...]` entries, names a user twice, or
    /// is over the limits.
    pub fn new(default_user: &str, default_pass: &str, extra: &str) -> Result<Users, UsersError> {
        let salt = random_salt();
        let mut users = vec![User {
            name: default_user.to_owned(),
            digest: digest(&salt, default_pass),
            vhosts: BTreeSet::from([crate::DEFAULT_VHOST.to_owned()]),
        }];
        for (i, entry) in extra.split(';').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
            let entry_no = i + 1;
            let mut parts = entry.splitn(3, ':');
            let (Some(name), Some(pass), Some(vhosts)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(UsersError::Shape { entry: entry_no });
            };
            let (name, pass) = (name.trim(), pass.trim());
            let vhosts: BTreeSet<String> =
                vhosts.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect();
            if vhosts.is_empty() {
                return Err(UsersError::Shape { entry: entry_no });
            }
            if !name_ok(name) || !name_ok(pass) || !vhosts.iter().all(|v| name_ok(v)) {
                return Err(UsersError::Name { entry: entry_no });
            }
            if users.len() > USERS_MAX || vhosts.len() > VHOSTS_PER_USER_MAX {
                return Err(UsersError::TooMany);
            }
            if users.iter().any(|u| u.name == name) {
                return Err(UsersError::Duplicate(name.to_owned()));
            }
            users.push(User { name: name.to_owned(), digest: digest(&salt, pass), vhosts });
        }
        Ok(Users { salt, users })
    }

    /// Whether `name` with `pass` may log in (from a loopback address or not).
    pub fn login(&self, name: &str, pass: &str, loopback: bool) -> bool {
        if name == "guest" && !loopback {
            return false;
        }
        let d = digest(&self.salt, pass);
        self.users.iter().any(|u| u.name == name && u.digest == d)
    }

    /// Whether user `name` may open `vhost` (which then exists).
    pub fn may_open(&self, name: &str, vhost: &str) -> bool {
        self.users.iter().any(|u| u.name == name && u.vhosts.contains(vhost))
    }

    /// Every vhost some user may open, `/` included.
    pub fn vhosts(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.users.iter().flat_map(|u| u.vhosts.iter().cloned()).collect();
        out.insert(crate::DEFAULT_VHOST.to_owned());
        out
    }
}

#[cfg(test)]
mod tests {
    //! `amqpUsers` parsing, logins and vhost permissions.

    use super::*;

    #[test]
    fn logins_and_vhosts() {
        let users = Users::new("guest", "guest", " alice:secret:/,/orders ; bob:pw2:/orders;").unwrap();
        let rows = [
            ("guest", "guest", true, true),
            ("guest", "guest", false, false),
            ("guest", "nope", true, false),
            ("alice", "secret", false, true),
            ("alice", "pw2", true, false),
            ("bob", "pw2", false, true),
            ("carol", "x", true, false),
        ];
        for (name, pass, loopback, want) in rows {
            assert_eq!(users.login(name, pass, loopback), want, "{name}/{pass} loopback={loopback}");
        }
        let opens = [
            ("guest", "/", true),
            ("guest", "/orders", false),
            ("alice", "/", true),
            ("alice", "/orders", true),
            ("bob", "/", false),
            ("bob", "/orders", true),
            ("bob", "nowhere", false),
        ];
        for (name, vhost, want) in opens {
            assert_eq!(users.may_open(name, vhost), want, "{name} on {vhost}");
        }
        assert_eq!(users.vhosts().into_iter().collect::<Vec<_>>(), ["/", "/orders"]);
        assert!(!format!("{users:?}").contains("secret"));
    }

    #[test]
    fn bad_lists_are_refused() {
        let rows = [
            ("alice:secret", UsersError::Shape { entry: 1 }),
            ("alice:secret:", UsersError::Shape { entry: 1 }),
            ("ok:pw:/;:pw:/", UsersError::Name { entry: 2 }),
            ("alice:a:/;alice:b:/", UsersError::Duplicate("alice".to_owned())),
            ("guest:x:/", UsersError::Duplicate("guest".to_owned())),
        ];
        for (text, want) in rows {
            assert_eq!(Users::new("guest", "guest", text).unwrap_err(), want, "{text}");
        }
    }
}
