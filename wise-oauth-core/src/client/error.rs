//! The error of a call through [`WiseClient`](super::WiseClient): no token for the user, or
//! Wise's answer (one model, [`WiseError`]), or a request that could not be built.

use std::time::Duration;

use thiserror::Error;

use crate::endpoint::WiseError;
use crate::manager::TokenError;

/// Why a call through a [`WiseClient`](super::WiseClient) failed. `Display` and `Debug`
/// never contain a token or a response body.
///
/// * [`Token`](Self::Token): no valid token for the user. [`TokenError::RelinkRequired`]
///   also covers a link Wise revoked (its 401 led to a refresh that Wise refused with
///   `invalid_grant`; the link is marked): send the user through the link flow.
/// * [`Wise`](Self::Wise): Wise's answer, classified once for the whole library:
///   [`WiseError::Sca`] (repeat the call with
///   [`WiseClient::with_sca_approval`](super::WiseClient::with_sca_approval) once the user
///   cleared the challenge), [`WiseError::RateLimited`] with its `Retry-After`,
///   [`WiseError::Unavailable`] (5xx), [`WiseError::Unauthorized`] (a 401 again after the
///   one retry with a newer token), [`WiseError::Rejected`] (other 4xx), ...
/// * [`InvalidRequest`](Self::InvalidRequest): the call never left the process.
///
/// ```
/// use wise_oauth_core::{ClientError, TokenError, WiseError};
/// let sca = ClientError::from(WiseError::Sca { one_time_token: "ott-1".into() });
/// assert_eq!(sca.sca_one_time_token(), Some("ott-1"));
/// assert!(ClientError::from(TokenError::RelinkRequired).needs_relink());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No valid token for the user (not linked, re-link required, store or Wise down).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Wise answered with an error, or could not be reached.
    #[error(transparent)]
    Wise(#[from] WiseError),
    /// The request could not be built: the path is not a plain absolute path, or the body
    /// does not serialize to JSON. Nothing was sent.
    #[error("invalid Wise API request: {reason}")]
    InvalidRequest {
        /// What was wrong (a fixed phrase).
        reason: &'static str,
    },
}

impl ClientError {
    /// The user must go through the link flow (again): not linked, or Wise rejected the
    /// link.
    pub fn needs_relink(&self) -> bool {
        match self {
            Self::Token(e) => e.needs_link(),
            Self::Wise(e) => e.needs_relink(),
            Self::InvalidRequest { .. } => false,
        }
    }

    /// The one-time token of an SCA challenge (`x-2fa-approval`), when Wise asked for
    /// strong customer authentication.
    pub fn sca_one_time_token(&self) -> Option<&str> {
        match self {
            Self::Wise(WiseError::Sca { one_time_token }) => Some(one_time_token),
            _ => None,
        }
    }

    /// Trying again later may succeed (rate limit, outage, timeout, store down).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Token(TokenError::Unavailable { .. }) => true,
            Self::Wise(e) => e.is_transient(),
            _ => false,
        }
    }

    /// How long Wise (or the manager) asked to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Token(e) => e.retry_after(),
            Self::Wise(e) => e.retry_after(),
            Self::InvalidRequest { .. } => None,
        }
    }
}
