//! Errors of every call to Wise (token endpoint and API): one model, classified by Wise's
//! `error` field first and the status second, with the transport failure kept as the source.

use std::fmt;
use std::sync::Arc;
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

/// The transport failure under a [`WiseError`] (reqwest's error), kept as its
/// [`source`](std::error::Error::source) for logs. Its text names the URL called, never a
/// header or a body. Any two compare equal: the variant of the [`WiseError`] says what
/// happened.
#[derive(Debug, Clone)]
pub struct TransportError(Arc<reqwest::Error>);

impl TransportError {
    pub(crate) fn new(err: reqwest::Error) -> Self {
        Self(Arc::new(err))
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

impl PartialEq for TransportError {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for TransportError {}

/// Why a call to Wise failed: the token endpoint (the four grants) or the REST API, one
/// model for both. `Display` and `Debug` never contain a token, a secret or a response
/// body.
///
/// What to do about it: [`needs_relink`](Self::needs_relink) (the user must link again),
/// [`is_transient`](Self::is_transient) (try later, after [`retry_after`](Self::retry_after)
/// when Wise said), [`is_configuration`](Self::is_configuration) (fix the app's setup).
///
/// ```
/// use wise_oauth_core::WiseError;
/// let err = WiseError::InvalidGrant { status: 400 };
/// assert!(err.needs_relink());
/// assert!(!err.is_transient());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WiseError {
    /// `invalid_grant` in a 4xx answer of the token endpoint: the grant is dead; the user
    /// must link again (or the registration code be re-exchanged). The only answer that
    /// kills a link.
    #[error("Wise rejected the grant (invalid_grant, HTTP {status})")]
    InvalidGrant {
        /// The HTTP status it came with (400 or 401 at Wise).
        status: u16,
    },
    /// `invalid_client` or `unauthorized_client`: the application's configuration is wrong.
    /// Never a reason to touch a user's link.
    #[error("Wise rejected the client credentials ({})", code.as_str())]
    Client {
        /// The OAuth error code.
        code: OAuthErrorCode,
    },
    /// HTTP 401 from the API: the access token is invalid or expired (a sibling's refresh
    /// may have replaced it).
    #[error("Wise rejected the access token (HTTP 401)")]
    Unauthorized,
    /// HTTP 403 from the API with `x-2fa-approval`: strong customer authentication is
    /// required; the user approves the one-time token, then the call is repeated with it.
    #[error("Wise requires strong customer authentication for this call")]
    Sca {
        /// The one-time-token id from `x-2fa-approval` (not a secret).
        one_time_token: String,
    },
    /// HTTP 403 from the token endpoint without an OAuth error code: a WAF, a CDN or an
    /// mTLS gateway in front of Wise. Transient; never a reason to touch a link (Wise's own
    /// 403 for a user who changed their email carries `invalid_grant`).
    #[error("the Wise token request was refused by a gateway (HTTP 403)")]
    Forbidden,
    /// Any other 4xx (or, from the token endpoint, an unrecognised error object in a 200).
    #[error("Wise rejected the request (HTTP {status})")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The OAuth error code, if the body had one.
        code: Option<OAuthErrorCode>,
    },
    /// HTTP 429; `retry_after` comes from the `Retry-After` header.
    #[error("Wise rate-limited the request")]
    RateLimited {
        /// How long Wise asked us to wait.
        retry_after: Option<Duration>,
    },
    /// A 5xx or 408, or the connection dropped after the request was (maybe) sent.
    #[error("Wise is unavailable")]
    Unavailable {
        /// The HTTP status, if a response arrived.
        status: Option<u16>,
        /// How long Wise asked us to wait.
        retry_after: Option<Duration>,
        /// The transport failure, when the connection dropped.
        #[source]
        source: Option<TransportError>,
    },
    /// The request or the response body took longer than the configured timeout.
    #[error("the request to Wise timed out")]
    Timeout {
        /// The transport failure.
        #[source]
        source: Option<TransportError>,
    },
    /// No connection could be made (the request was certainly not sent).
    #[error("could not connect to Wise")]
    Connect {
        /// The transport failure.
        #[source]
        source: Option<TransportError>,
    },
    /// A 2xx whose body is not what the call returns.
    #[error("malformed response from Wise: {reason}")]
    MalformedResponse {
        /// What was wrong (a fixed phrase, never a body excerpt).
        reason: &'static str,
    },
    /// The TLS handshake with Wise failed in a way only the app's setup can fix (see
    /// [`TlsProblem`]): an mTLS client certificate Wise refused or that is missing, or a
    /// server certificate we do not trust. Never retried; never a reason to touch a link.
    #[error("TLS with Wise failed: {problem}")]
    Tls {
        /// What was refused, and by which side.
        problem: TlsProblem,
        /// The transport failure.
        #[source]
        source: Option<TransportError>,
    },
    /// Wise answered with a redirect, which is never followed.
    #[error("Wise answered with a redirect (HTTP {status}), not followed")]
    Redirected {
        /// The 3xx status.
        status: u16,
    },
}

/// Which side of a TLS handshake refused the other (see [`WiseError::Tls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsProblem {
    /// The server refused our client certificate: none is configured (an `api-mtls.*` host
    /// requires one), it expired, or its CA is not the one the server trusts (a TLS alert
    /// such as `certificate_required`, `bad_certificate`, `unknown_ca` or `decrypt_error`
    /// during the handshake).
    ClientCertificateRefused,
    /// Our client does not trust the server's certificate (Wise's mTLS hosts need Wise's
    /// CA added with [`WiseConfigBuilder::root_certificate`](crate::WiseConfigBuilder::root_certificate)).
    ServerCertificateUntrusted,
}

impl fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ClientCertificateRefused => {
                "mTLS: the server refused the client certificate (none configured, expired, \
                 or not issued by the CA the server trusts)"
            }
            Self::ServerCertificateUntrusted => {
                "the server's certificate is not trusted (for Wise's mTLS hosts, add Wise's CA \
                 as a root certificate)"
            }
        })
    }
}

impl TlsProblem {
    /// Finds a TLS handshake refusal in `err`'s chain of sources (rustls errors wrapped in
    /// I/O errors included).
    fn find(err: &(dyn std::error::Error + 'static)) -> Option<Self> {
        use rustls::AlertDescription as Alert;
        let mut next = Some(err);
        while let Some(e) = next {
            match e.downcast_ref::<rustls::Error>() {
                Some(rustls::Error::InvalidCertificate(_)) => {
                    return Some(Self::ServerCertificateUntrusted)
                }
                Some(rustls::Error::AlertReceived(
                    Alert::CertificateRequired
                    | Alert::BadCertificate
                    | Alert::UnsupportedCertificate
                    | Alert::CertificateRevoked
                    | Alert::CertificateExpired
                    | Alert::CertificateUnknown
                    | Alert::UnknownCA
                    | Alert::AccessDenied
                    | Alert::DecryptError
                    | Alert::HandshakeFailure,
                )) => return Some(Self::ClientCertificateRefused),
                Some(_) => return None,
                None => {}
            }
            // An I/O error's `source` skips the error it wraps: look at that one too.
            if let Some(inner) = e
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
            {
                if let Some(found) = Self::find(inner) {
                    return Some(found);
                }
            }
            next = e.source();
        }
        None
    }
}

impl WiseError {
    /// Classifies an error answer of the token endpoint by its `error` code first, then by
    /// its status.
    pub(crate) fn from_token_response(
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
            403 => Self::Forbidden,
            _ => Self::from_status(status, code, retry_after),
        }
    }

    /// Classifies an answer by its status alone: 3xx, 429, 408 and 5xx, other statuses.
    pub(crate) fn from_status(
        status: u16,
        code: Option<OAuthErrorCode>,
        retry_after: Option<Duration>,
    ) -> Self {
        match status {
            300..=399 => Self::Redirected { status },
            429 => Self::RateLimited { retry_after },
            408 | 500..=599 => Self::Unavailable {
                status: Some(status),
                retry_after,
                source: None,
            },
            _ => Self::Rejected { status, code },
        }
    }

    /// A transport-level failure (no usable response).
    pub(crate) fn transport(err: reqwest::Error) -> Self {
        let (connect, timeout) = (err.is_connect(), err.is_timeout());
        let tls = TlsProblem::find(&err);
        let source = Some(TransportError::new(err));
        if let Some(problem) = tls {
            Self::Tls { problem, source }
        } else if connect {
            Self::Connect { source }
        } else if timeout {
            Self::Timeout { source }
        } else {
            Self::Unavailable {
                status: None,
                retry_after: None,
                source,
            }
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
                | Self::Timeout { .. }
                | Self::Connect { .. }
                | Self::MalformedResponse { .. }
        )
    }

    /// The application's configuration is wrong (client credentials, a Wise URL that
    /// redirects, or a TLS handshake refused: mTLS certificate, trusted CAs).
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Self::Client { .. } | Self::Redirected { .. } | Self::Tls { .. }
        )
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
        let c = |s, code| WiseError::from_token_response(s, code, None);
        assert_eq!(
            c(401, Some(OAuthErrorCode::InvalidGrant)),
            WiseError::InvalidGrant { status: 401 }
        );
        assert_eq!(
            c(400, Some(OAuthErrorCode::InvalidClient)),
            WiseError::Client {
                code: OAuthErrorCode::InvalidClient
            }
        );
        assert_eq!(
            c(500, Some(OAuthErrorCode::UnauthorizedClient)),
            WiseError::Client {
                code: OAuthErrorCode::UnauthorizedClient
            }
        );
        assert_eq!(c(403, None), WiseError::Forbidden);
        assert_eq!(
            c(403, Some(OAuthErrorCode::InvalidGrant)),
            WiseError::InvalidGrant { status: 403 }
        );
        // invalid_grant outside a 4xx is not Wise's verdict on the grant.
        assert!(c(502, Some(OAuthErrorCode::InvalidGrant)).is_transient());
        assert!(!c(502, Some(OAuthErrorCode::InvalidGrant)).needs_relink());
        assert_eq!(
            c(400, Some(OAuthErrorCode::InvalidRequest)),
            WiseError::Rejected {
                status: 400,
                code: Some(OAuthErrorCode::InvalidRequest)
            }
        );
        assert_eq!(c(307, None), WiseError::Redirected { status: 307 });
        assert!(c(502, None).is_transient());
        assert!(c(429, None).is_transient());
        assert!(!c(403, None).needs_relink());
        assert!(c(403, None).is_transient());
        assert!(c(401, Some(OAuthErrorCode::InvalidClient)).is_configuration());
    }

    #[test]
    fn tls_refusals_are_found_under_io_errors() {
        use rustls::{AlertDescription, CertificateError};
        let wrapped = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        for alert in [
            AlertDescription::CertificateRequired,
            AlertDescription::BadCertificate,
            AlertDescription::UnknownCA,
            AlertDescription::DecryptError,
        ] {
            let e = wrapped(rustls::Error::AlertReceived(alert));
            assert_eq!(
                TlsProblem::find(&e),
                Some(TlsProblem::ClientCertificateRefused),
                "{alert:?}"
            );
        }
        let untrusted = wrapped(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert_eq!(
            TlsProblem::find(&untrusted),
            Some(TlsProblem::ServerCertificateUntrusted)
        );
        // Other TLS failures and plain I/O errors stay transport errors.
        for other in [
            wrapped(rustls::Error::AlertReceived(
                AlertDescription::InternalError,
            )),
            wrapped(rustls::Error::DecryptError),
            std::io::Error::from(std::io::ErrorKind::ConnectionReset),
        ] {
            assert_eq!(TlsProblem::find(&other), None, "{other:?}");
        }
        let shown = WiseError::Tls {
            problem: TlsProblem::ClientCertificateRefused,
            source: None,
        }
        .to_string();
        assert!(shown.contains("mTLS"), "{shown}");
        let err = WiseError::Tls {
            problem: TlsProblem::ServerCertificateUntrusted,
            source: None,
        };
        assert!(err.is_configuration() && !err.is_transient() && !err.needs_relink());
    }

    #[test]
    fn display_is_fixed_text() {
        let e = WiseError::MalformedResponse {
            reason: "body is not JSON",
        };
        assert_eq!(
            e.to_string(),
            "malformed response from Wise: body is not JSON"
        );
    }
}
