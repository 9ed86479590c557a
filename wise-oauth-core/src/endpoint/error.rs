//! Errors of the token endpoint, classified by Wise's `error` field first, the status second.

use std::time::Duration;

use thiserror::Error;

/// The `error` code of an OAuth error response (RFC 6749 section 5.2). The free-text
/// `error_description` is never kept: Wise sometimes echoes secrets in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// `invalid_grant`: the code, refresh token or registration code is dead.
    InvalidGrant,
    /// `invalid_client`: the client id or secret is wrong.
    InvalidClient,
    /// `unauthorized_client`: the client may not use this grant.
    UnauthorizedClient,
    /// `invalid_request`: a parameter is missing or malformed.
    InvalidRequest,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `invalid_scope`.
    InvalidScope,
    /// Any other code.
    Other,
}

impl OAuthErrorCode {
    /// Maps an `error` string (exact, lowercase as RFC 6749 defines them).
    pub fn parse(code: &str) -> Self {
        match code.trim() {
            "invalid_grant" => Self::InvalidGrant,
            "invalid_client" => Self::InvalidClient,
            "unauthorized_client" => Self::UnauthorizedClient,
            "invalid_request" => Self::InvalidRequest,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            _ => Self::Other,
        }
    }

    /// The RFC 6749 spelling (`"other"` for [`OAuthErrorCode::Other`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidClient => "invalid_client",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::InvalidRequest => "invalid_request",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::Other => "other",
        }
    }
}

/// Why a call to Wise's token endpoint failed. `Display` and `Debug` never contain a token,
/// a secret or the response body.
///
/// ```
/// use wise_oauth_core::EndpointError;
/// let err = EndpointError::InvalidGrant { status: 400 };
/// assert!(err.needs_relink());
/// assert!(!err.is_transient());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// `invalid_grant` in a 4xx answer: the grant is dead; the user must link again (or the
    /// registration code be re-exchanged). The only answer that kills a link.
    #[error("Wise rejected the grant (invalid_grant, HTTP {status})")]
    InvalidGrant {
        /// The HTTP status it came with (400 or 401 at Wise).
        status: u16,
    },
    /// HTTP 403 without an `invalid_grant` code: a WAF, a CDN or an mTLS gateway in front of
    /// Wise. Transient; never a reason to touch a link (Wise's own 403 for a user who changed
    /// their email carries `invalid_grant`).
    #[error("the Wise token request was refused by a gateway (HTTP 403)")]
    Forbidden,
    /// `invalid_client` or `unauthorized_client`: the application's configuration is wrong.
    /// Never a reason to touch a user's link.
    #[error("Wise rejected the client credentials ({})", code.as_str())]
    Client {
        /// The OAuth error code.
        code: OAuthErrorCode,
    },
    /// Any other 4xx (or an unrecognised error object in a 200).
    #[error("Wise rejected the token request (HTTP {status})")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The OAuth error code, if the body had one.
        code: Option<OAuthErrorCode>,
    },
    /// HTTP 429; `retry_after` comes from the `Retry-After` header.
    #[error("Wise rate-limited the token request")]
    RateLimited {
        /// How long Wise asked us to wait.
        retry_after: Option<Duration>,
    },
    /// A 5xx or a connection dropped after the request was (maybe) sent.
    #[error("the Wise token endpoint is unavailable")]
    Unavailable {
        /// The HTTP status, if a response arrived.
        status: Option<u16>,
        /// How long Wise asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The request or the response body took longer than the configured timeout.
    #[error("the Wise token request timed out")]
    Timeout,
    /// No connection could be made (the request was certainly not sent).
    #[error("could not connect to the Wise token endpoint")]
    Connect,
    /// A 2xx whose body is not a usable token response.
    #[error("malformed token response: {reason}")]
    MalformedResponse {
        /// What was wrong (a fixed phrase, never a body excerpt).
        reason: &'static str,
    },
    /// The token endpoint answered with a redirect, which is never followed.
    #[error("the Wise token endpoint answered with a redirect (HTTP {status}), not followed")]
    Redirected {
        /// The 3xx status.
        status: u16,
    },
}

impl EndpointError {
    /// Classifies an error response by its `error` code first, then by its status.
    pub(crate) fn from_response(
        status: u16,
        code: Option<OAuthErrorCode>,
        retry_after: Option<Duration>,
    ) -> Self {
        match code {
            Some(OAuthErrorCode::InvalidGrant) if (400..500).contains(&status) => {
                return Self::InvalidGrant { status }
            }
            Some(code @ (OAuthErrorCode::InvalidClient | OAuthErrorCode::UnauthorizedClient)) => {
                return Self::Client { code }
            }
            _ => {}
        }
        match status {
            300..=399 => Self::Redirected { status },
            429 => Self::RateLimited { retry_after },
            403 => Self::Forbidden,
            408 | 500..=599 => Self::Unavailable {
                status: Some(status),
                retry_after,
            },
            _ => Self::Rejected { status, code },
        }
    }

    /// The user must link again: Wise answered `invalid_grant` with a 4xx status.
    pub fn needs_relink(&self) -> bool {
        matches!(self, Self::InvalidGrant { .. })
    }

    /// Trying again later may succeed: rate limits, outages, gateway 403s, timeouts,
    /// connection failures and malformed 2xx bodies (an error object in a 200 included).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Unavailable { .. }
                | Self::Forbidden
                | Self::Timeout
                | Self::Connect
                | Self::MalformedResponse { .. }
        )
    }

    /// The application's configuration is wrong (client credentials, or an endpoint URL
    /// that redirects).
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::Client { .. } | Self::Redirected { .. })
    }

    /// How long Wise asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } | Self::Unavailable { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_prefers_the_error_code() {
        let c = |s, code| EndpointError::from_response(s, code, None);
        assert_eq!(
            c(401, Some(OAuthErrorCode::InvalidGrant)),
            EndpointError::InvalidGrant { status: 401 }
        );
        assert_eq!(
            c(400, Some(OAuthErrorCode::InvalidClient)),
            EndpointError::Client {
                code: OAuthErrorCode::InvalidClient
            }
        );
        assert_eq!(
            c(500, Some(OAuthErrorCode::UnauthorizedClient)),
            EndpointError::Client {
                code: OAuthErrorCode::UnauthorizedClient
            }
        );
        assert_eq!(c(403, None), EndpointError::Forbidden);
        assert_eq!(
            c(403, Some(OAuthErrorCode::InvalidGrant)),
            EndpointError::InvalidGrant { status: 403 }
        );
        // invalid_grant outside a 4xx is not Wise's verdict on the grant.
        assert!(c(502, Some(OAuthErrorCode::InvalidGrant)).is_transient());
        assert!(!c(502, Some(OAuthErrorCode::InvalidGrant)).needs_relink());
        assert_eq!(
            c(400, Some(OAuthErrorCode::InvalidRequest)),
            EndpointError::Rejected {
                status: 400,
                code: Some(OAuthErrorCode::InvalidRequest)
            }
        );
        assert_eq!(c(307, None), EndpointError::Redirected { status: 307 });
        assert!(c(502, None).is_transient());
        assert!(c(429, None).is_transient());
        assert!(!c(403, None).needs_relink());
        assert!(c(403, None).is_transient());
        assert!(c(401, Some(OAuthErrorCode::InvalidClient)).is_configuration());
    }

    #[test]
    fn display_is_fixed_text() {
        let e = EndpointError::MalformedResponse {
            reason: "body is not JSON",
        };
        assert_eq!(e.to_string(), "malformed token response: body is not JSON");
    }
}
