//! The door's one error type, [`Fail`], and the one place where failures become AMQP 0-9-1 reply
//! codes and RabbitMQ-style reply texts (`NOT_FOUND - no queue 'q' in vhost '/'`, with the
//! connection's vhost).
//!
//! Codes 311 to 406 are soft errors: the server closes only the channel (`channel.close`). Codes
//! 320 and 501 to 541 are hard errors: the server closes the whole connection
//! (`connection.close`), as the specification's constants table says and RabbitMQ does.

use broker::messaging::Error as MessagingError;

/// `CONTENT_TOO_LARGE`: a message larger than the door accepts.
pub const CONTENT_TOO_LARGE: u16 = 311;
/// `NO_ROUTE`: an unroutable `mandatory` message (in `basic.return`).
pub const NO_ROUTE: u16 = 312;
/// `CONNECTION_FORCED`: the broker shuts down.
pub const CONNECTION_FORCED: u16 = 320;
pub const ACCESS_REFUSED: u16 = 403;
pub const NOT_FOUND: u16 = 404;
pub const RESOURCE_LOCKED: u16 = 405;
pub const PRECONDITION_FAILED: u16 = 406;
pub const FRAME_ERROR: u16 = 501;
pub const SYNTAX_ERROR: u16 = 502;
pub const COMMAND_INVALID: u16 = 503;
pub const CHANNEL_ERROR: u16 = 504;
pub const UNEXPECTED_FRAME: u16 = 505;
pub const NOT_ALLOWED: u16 = 530;
pub const NOT_IMPLEMENTED: u16 = 540;
pub const INTERNAL_ERROR: u16 = 541;

/// A failure answered with `channel.close` (soft code) or `connection.close` (hard code).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code} {text}")]
pub struct Fail {
    pub code: u16,
    /// The full reply text, name first (`NOT_FOUND - ...`).
    pub text: String,
}

/// The constant's name RabbitMQ puts in front of a reply text.
pub fn code_name(code: u16) -> &'static str {
    match code {
        CONTENT_TOO_LARGE => "CONTENT_TOO_LARGE",
        NO_ROUTE => "NO_ROUTE",
        CONNECTION_FORCED => "CONNECTION_FORCED",
        ACCESS_REFUSED => "ACCESS_REFUSED",
        NOT_FOUND => "NOT_FOUND",
        RESOURCE_LOCKED => "RESOURCE_LOCKED",
        PRECONDITION_FAILED => "PRECONDITION_FAILED",
        FRAME_ERROR => "FRAME_ERROR",
        SYNTAX_ERROR => "SYNTAX_ERROR",
        COMMAND_INVALID => "COMMAND_INVALID",
        CHANNEL_ERROR => "CHANNEL_ERROR",
        UNEXPECTED_FRAME => "UNEXPECTED_FRAME",
        NOT_ALLOWED => "NOT_ALLOWED",
        NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
        _ => "INTERNAL_ERROR",
    }
}

impl Fail {
    pub fn new(code: u16, detail: impl std::fmt::Display) -> Fail {
        Fail { code, text: format!("{} - {detail}", code_name(code)) }
    }

    /// Whether the code closes the connection rather than the channel.
    pub fn is_hard(&self) -> bool {
        self.code == CONNECTION_FORCED || self.code >= 500
    }

    pub fn not_found(kind: &str, name: &str, vhost: &str) -> Fail {
        Fail::new(NOT_FOUND, format!("no {kind} '{name}' in vhost '{vhost}'"))
    }

    pub fn precondition(detail: impl std::fmt::Display) -> Fail {
        Fail::new(PRECONDITION_FAILED, detail)
    }

    pub fn access_refused(detail: impl std::fmt::Display) -> Fail {
        Fail::new(ACCESS_REFUSED, detail)
    }

    pub fn command_invalid(detail: impl std::fmt::Display) -> Fail {
        Fail::new(COMMAND_INVALID, detail)
    }

    pub fn internal(detail: impl std::fmt::Display) -> Fail {
        Fail::new(INTERNAL_ERROR, detail)
    }
}

/// The one mapping from the broker's errors: a full disk or store trouble is the broker's
/// (541, hard), a refused message is the client's (406, soft).
impl From<MessagingError> for Fail {
    fn from(e: MessagingError) -> Fail {
        match e {
            MessagingError::BodyTooLarge { .. } | MessagingError::BadRequest(_) => Fail::precondition(e),
            MessagingError::Forbidden(_) => Fail::access_refused(e),
            MessagingError::TopicNotFound(_) | MessagingError::MessageNotFound(_) => {
                Fail::new(NOT_FOUND, e.to_string())
            }
            other => Fail::internal(other),
        }
    }
}
