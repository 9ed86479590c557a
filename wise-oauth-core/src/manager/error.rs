//! The error of the token manager: what the caller should do next.

use std::time::Duration;

use thiserror::Error;

/// Why no valid token can be handed out. Each variant tells the caller what to do.
///
/// Never carries a token, a secret or a response body.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The user has not linked a Wise account: send them through the link flow.
    #[error("the user has not linked a Wise account")]
    NotLinked,
    /// Wise rejected the link (`invalid_grant`, revoked or changed account): the user must
    /// link again. The stored record is kept, marked as needing a re-link. Also the answer
    /// for a stored record the configured encryption keys cannot open (sealed under a key
    /// that is no longer configured, or tampered with): that record is kept unchanged (an
    /// error log names the key ids), and linking again replaces it.
    #[error("the Wise link must be renewed: the user has to link again")]
    RelinkRequired,
    /// Wise or the token store is unavailable right now; try again later.
    #[error("Wise or the token store is temporarily unavailable")]
    Unavailable {
        /// How long to wait before trying again, when known.
        retry_after: Option<Duration>,
    },
    /// Wise rejected the OAuth client itself (`invalid_client` / `unauthorized_client`) or
    /// the configuration is otherwise unusable. No user record was touched; fix the
    /// configuration.
    #[error("the OAuth client configuration was rejected by Wise")]
    Misconfigured,
    /// The store returned a link it cannot decode (a damaged row: the store's own
    /// columns, not the sealed tokens). Repair or delete the row.
    #[error("the stored link cannot be decoded")]
    Corrupt,
}

impl TokenError {
    /// How long to wait before retrying, for [`TokenError::Unavailable`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// Whether the user must go through the link flow ([`TokenError::NotLinked`] or
    /// [`TokenError::RelinkRequired`]).
    pub fn needs_link(&self) -> bool {
        matches!(self, Self::NotLinked | Self::RelinkRequired)
    }

    pub(crate) fn unavailable() -> Self {
        Self::Unavailable { retry_after: None }
    }
}
