//! The gateway's errors and the one mapping to HTTP statuses: every error is an RFC 9457
//! `application/problem+json` body whose `code` is RocketMQ 5's name (`apache.rocketmq.v2.Code`)
//! and `rmq_code` its number.
//!
//! | status | when | code |
//! |---|---|---|
//! | 400 | malformed JSON, bad base64, bad parameter, forged or altered receipt handle | `BAD_REQUEST`, `ILLEGAL_MESSAGE`, `INVALID_RECEIPT_HANDLE` |
//! | 401 | a write that needs a logged-in console user (see `auth.rs`), a refused login | `UNAUTHORIZED` |
//! | 403 | topic or broker not writable / readable; a write from another origin | `FORBIDDEN` |
//! | 404 | topic, group, message, plugin or route not found; the AMQP door is off | `TOPIC_NOT_FOUND`, `CONSUMER_GROUP_NOT_FOUND`, `MESSAGE_NOT_FOUND`, `NOT_FOUND` |
//! | 405 | method not allowed on the route | `METHOD_NOT_ALLOWED` |
//! | 408 | the body did not arrive in time | `REQUEST_TIMEOUT` |
//! | 409 | conflict (plugin still bound) | `CONFLICT` |
//! | 410 | receipt handle expired or replaced | `INVALID_RECEIPT_HANDLE` |
//! | 413 | body over the limit | `MESSAGE_BODY_TOO_LARGE` |
//! | 415 | unsupported content type | `UNSUPPORTED_MEDIA_TYPE` |
//! | 429 | too many requests in flight, disk full (with `Retry-After`) | `TOO_MANY_REQUESTS` |
//! | 501 | not implemented here | `NOT_IMPLEMENTED` |
//! | 503 | broker not available: stopping, store poisoned (with `Retry-After`) | `SERVICE_UNAVAILABLE` |
//! | 504 | stored but durability not reached in time | `MASTER_PERSISTENCE_TIMEOUT` |
//! | 500 | anything else | `INTERNAL_SERVER_ERROR` |

use broker::messaging;
use hyper::{Response, StatusCode};

use crate::Body;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Messaging(#[from] messaging::Error),
    #[error("malformed JSON: {0}")]
    BadJson(String),
    #[error("body is not valid base64: {0}")]
    BadBase64(String),
    #[error("{0}")]
    BadParameter(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("request body larger than the limit of {max} bytes")]
    BodyTooLarge { max: usize },
    #[error("the request body did not arrive within {ms} ms")]
    BodyTimeout { ms: u64 },
    #[error("no route for {0}")]
    NotFound(String),
    #[error("{method} is not allowed on {route}")]
    MethodNotAllowed { method: String, route: String },
    #[error("too many requests at once; retry shortly")]
    Busy { retry_after_s: u64 },
    #[error("{0}")]
    PluginNotFound(String),
    #[error("{0}")]
    Plugin(String),
    #[error("{0}")]
    PluginConflict(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("the AMQP door is off: amqpListenPort=0")]
    AmqpOff,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn status(&self) -> StatusCode {
        use messaging::Error as M;
        match self {
            Error::Messaging(m) => match m {
                M::BadRequest(_) | M::InvalidHandle(_) => StatusCode::BAD_REQUEST,
                M::TopicNotFound(_) | M::GroupNotFound(_) | M::MessageNotFound(_) => StatusCode::NOT_FOUND,
                M::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                M::Forbidden(_) => StatusCode::FORBIDDEN,
                M::Conflict(_) => StatusCode::CONFLICT,
                M::ExpiredHandle(_) => StatusCode::GONE,
                M::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
                M::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                M::DurabilityTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
                M::NotSupported(_) => StatusCode::NOT_IMPLEMENTED,
                M::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Error::BadJson(_) | Error::BadBase64(_) | Error::BadParameter(_) | Error::Plugin(_) => {
                StatusCode::BAD_REQUEST
            }
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Error::NotFound(_) | Error::PluginNotFound(_) | Error::AmqpOff => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::PluginConflict(_) => StatusCode::CONFLICT,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        }
    }

    /// RocketMQ 5's error name and number.
    pub fn code(&self) -> (&'static str, i32) {
        match self {
            Error::Messaging(m) => (m.name(), m.rmq_code()),
            Error::BadJson(_) | Error::BadParameter(_) | Error::Plugin(_) => ("BAD_REQUEST", 40000),
            Error::BadBase64(_) => ("ILLEGAL_MESSAGE", 40009),
            Error::UnsupportedMediaType(_) => ("UNSUPPORTED_MEDIA_TYPE", 41500),
            Error::BodyTooLarge { .. } => ("MESSAGE_BODY_TOO_LARGE", 41301),
            Error::BodyTimeout { .. } => ("REQUEST_TIMEOUT", 40800),
            Error::NotFound(_) | Error::PluginNotFound(_) | Error::AmqpOff => ("NOT_FOUND", 40400),
            Error::MethodNotAllowed { .. } => ("METHOD_NOT_ALLOWED", 40500),
            Error::Busy { .. } => ("TOO_MANY_REQUESTS", 42900),
            Error::PluginConflict(_) => ("CONFLICT", 40900),
            Error::Unauthorized(_) => ("UNAUTHORIZED", 40100),
        }
    }

    /// The `application/problem+json` response.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let (code, rmq_code) = self.code();
        let title = status.canonical_reason().unwrap_or("Error");
        let problem = serde_json::json!({
            "type": format!("urn:rocketmq-broker:problem:{}", code.to_ascii_lowercase().replace('_', "-")),
            "title": title,
            "status": status.as_u16(),
            "detail": self.to_string(),
            "code": code,
            "rmq_code": rmq_code,
        });
        let mut r = Response::builder().status(status).header("content-type", "application/problem+json");
        let retry_after = match &self {
            Error::Busy { retry_after_s } => Some(*retry_after_s),
            Error::Messaging(messaging::Error::Busy(_) | messaging::Error::Unavailable(_)) => Some(1),
            _ => None,
        };
        if let Some(s) = retry_after {
            r = r.header("retry-after", s.to_string());
        }
        r.body(Body::full(problem.to_string())).unwrap_or_else(|_| Response::new(Body::empty()))
    }
}

#[cfg(test)]
mod tests {
    //! The status, RocketMQ name and `Retry-After` of each kind of error, from the one table.

    use super::*;

    #[test]
    fn statuses_codes_and_retry_after() {
        let cases: Vec<(Error, u16, &str, Option<&str>)> = vec![
            (Error::Busy { retry_after_s: 2 }, 429, "TOO_MANY_REQUESTS", Some("2")),
            (messaging::Error::Busy("disk full".into()).into(), 429, "TOO_MANY_REQUESTS", Some("1")),
            (messaging::Error::InvalidHandle("x".into()).into(), 400, "INVALID_RECEIPT_HANDLE", None),
            (messaging::Error::ExpiredHandle("x".into()).into(), 410, "INVALID_RECEIPT_HANDLE", None),
            (messaging::Error::TopicNotFound("t".into()).into(), 404, "TOPIC_NOT_FOUND", None),
            (Error::BadBase64("x".into()), 400, "ILLEGAL_MESSAGE", None),
            (Error::BodyTooLarge { max: 1 }, 413, "MESSAGE_BODY_TOO_LARGE", None),
            (Error::BodyTimeout { ms: 1 }, 408, "REQUEST_TIMEOUT", None),
            (Error::AmqpOff, 404, "NOT_FOUND", None),
        ];
        for (e, status, code, retry_after) in cases {
            assert_eq!(e.code().0, code);
            let r = e.into_response();
            assert_eq!(r.status().as_u16(), status, "{code}");
            assert_eq!(r.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/problem+json"));
            assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), retry_after, "{code}");
        }
    }
}
