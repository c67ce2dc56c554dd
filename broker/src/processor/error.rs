//! The processors' error enum, and the one place where errors become response codes.

use crate::protocol::{HeaderError, response};
use crate::remoting::RemotingCommand;
use crate::store;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Header(#[from] HeaderError),
    #[error("bad request body: {0}")]
    Body(String),
    #[error("{0}")]
    TopicNotExist(String),
    #[error("{0}")]
    NoPermission(String),
    #[error("{0}")]
    MessageIllegal(String),
    #[error("{0}")]
    SubscriptionGroupNotExist(String),
    #[error("{0}")]
    SubscriptionNotExist(String),
    #[error("{0}")]
    SubscriptionNotLatest(String),
    #[error("{0}")]
    SubscriptionParseFailed(String),
    #[error("{0}")]
    ServiceNotAvailable(String),
    #[error("{0}")]
    QueryNotFound(String),
    #[error("{0}")]
    System(String),
    #[error("store: {0}")]
    Store(#[from] store::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The response code and remark a client gets for this error.
    pub fn code(&self) -> i32 {
        match self {
            Error::Header(_) | Error::Body(_) | Error::System(_) => response::SYSTEM_ERROR,
            Error::TopicNotExist(_) => response::TOPIC_NOT_EXIST,
            Error::NoPermission(_) => response::NO_PERMISSION,
            Error::MessageIllegal(_) => response::MESSAGE_ILLEGAL,
            Error::SubscriptionGroupNotExist(_) => response::SUBSCRIPTION_GROUP_NOT_EXIST,
            Error::SubscriptionNotExist(_) => response::SUBSCRIPTION_NOT_EXIST,
            Error::SubscriptionNotLatest(_) => response::SUBSCRIPTION_NOT_LATEST,
            Error::SubscriptionParseFailed(_) => response::SUBSCRIPTION_PARSE_FAILED,
            Error::ServiceNotAvailable(_) => response::SERVICE_NOT_AVAILABLE,
            Error::QueryNotFound(_) => response::QUERY_NOT_FOUND,
            Error::Store(e) => match e {
                store::Error::MessageTooLarge { .. } | store::Error::InvalidMessage(_) => response::MESSAGE_ILLEGAL,
                store::Error::DiskFull(_) | store::Error::ShutDown => response::SERVICE_NOT_AVAILABLE,
                store::Error::FlushTimeout { .. } => response::FLUSH_DISK_TIMEOUT,
                _ => response::SYSTEM_ERROR,
            },
        }
    }

    pub fn into_response(self) -> RemotingCommand {
        let code = self.code();
        RemotingCommand::error(code, self.to_string())
    }
}
