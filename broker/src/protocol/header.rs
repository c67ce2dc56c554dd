//! Typed access to a request's custom header fields (`extFields`), with an error that names the
//! field when one is missing or malformed.

use std::str::FromStr;

use crate::remoting::{ExtFields, RemotingCommand};

/// A header field missing or not of its type. Answered with SYSTEM_ERROR and this text as remark,
/// as the Java broker answers a header it cannot decode.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("the custom field <{0}> is null")]
    Missing(&'static str),
    #[error("the custom field <{field}> has an invalid value {value:?}")]
    Invalid { field: &'static str, value: String },
}

/// Reading fields: `req.ext_fields.required::<i32>("queueId")?`.
pub trait Headers {
    fn required<T: FromStr>(&self, field: &'static str) -> Result<T, HeaderError>;
    fn optional<T: FromStr>(&self, field: &'static str) -> Result<Option<T>, HeaderError>;
    fn required_str(&self, field: &'static str) -> Result<&str, HeaderError>;
}

impl Headers for ExtFields {
    fn required<T: FromStr>(&self, field: &'static str) -> Result<T, HeaderError> {
        self.optional(field)?.ok_or(HeaderError::Missing(field))
    }

    fn optional<T: FromStr>(&self, field: &'static str) -> Result<Option<T>, HeaderError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => {
                let v = v.trim();
                // Java's Boolean.parseBoolean is lenient: anything but "true" is false.
                if std::any::type_name::<T>() == "bool" {
                    let b = if v.eq_ignore_ascii_case("true") { "true" } else { "false" };
                    return Ok(b.parse().ok());
                }
                v.parse().map(Some).map_err(|_| HeaderError::Invalid { field, value: v.to_owned() })
            }
        }
    }

    fn required_str(&self, field: &'static str) -> Result<&str, HeaderError> {
        self.get(field).ok_or(HeaderError::Missing(field))
    }
}

impl Headers for RemotingCommand {
    fn required<T: FromStr>(&self, field: &'static str) -> Result<T, HeaderError> {
        self.ext_fields.required(field)
    }
    fn optional<T: FromStr>(&self, field: &'static str) -> Result<Option<T>, HeaderError> {
        self.ext_fields.optional(field)
    }
    fn required_str(&self, field: &'static str) -> Result<&str, HeaderError> {
        self.ext_fields.required_str(field)
    }
}
