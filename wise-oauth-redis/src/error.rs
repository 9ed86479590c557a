//! Setup errors, and how driver errors of store operations map to [`StoreError`].

use thiserror::Error;
use wise_oauth_core::StoreError;

/// Why a store could not be set up (a bad key prefix, or no connection to Redis).
///
/// Once a store is built, its operations report [`StoreError`] instead.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The key prefix is not accepted (see
    /// [`RedisTokenStoreBuilder::key_prefix`](crate::RedisTokenStoreBuilder::key_prefix)).
    #[error("invalid key prefix: use at most 64 printable ASCII characters without spaces, braces or *?[]\\")]
    InvalidKeyPrefix,
    /// The URL is invalid, or Redis is unreachable or refused the connection.
    #[error("could not connect to Redis")]
    Connect(#[source] redis::RedisError),
}

/// Maps a driver error of a store operation: a value of the wrong type or shape is
/// corrupt; everything else (connection, timeout, server errors) means the store is
/// unavailable. Never "absent".
pub(crate) fn op_error(err: redis::RedisError) -> StoreError {
    if err.kind() == redis::ErrorKind::TypeError {
        return StoreError::Corrupt("undecodable value in the Redis store");
    }
    if err.code() == Some("WRONGTYPE") {
        return StoreError::Corrupt("a key of the Redis store holds a value of another type");
    }
    StoreError::Unavailable(Box::new(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_store_errors() {
        let io =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(op_error(io), StoreError::Unavailable(_)));
        let ty = redis::RedisError::from((redis::ErrorKind::TypeError, "bad"));
        assert!(matches!(op_error(ty), StoreError::Corrupt(_)));
    }
}
