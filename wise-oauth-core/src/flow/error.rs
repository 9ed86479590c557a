//! Errors of the link flow and of user registration.
//!
//! Every error has an HTTP status for the adapters and a stable snake_case
//! [`reason`](FlowError::reason) for machine-readable bodies. No variant carries a token,
//! code, state, secret, response body or any other free text.

use std::time::Duration;

use http::StatusCode;
use thiserror::Error;

use crate::endpoint::WiseError;
use crate::manager::TokenError;

/// What is wrong with a callback query (the detail of [`FlowError::MalformedCallback`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum CallbackProblem {
    /// The query, or one value in it, is longer than allowed.
    #[error("the query or a parameter is too long")]
    Oversized,
    /// A parameter appears more than once (`profileId` spellings count as one name).
    #[error("a parameter appears more than once")]
    DuplicateParameter,
    /// Invalid percent-encoding, or the decoded bytes are not UTF-8.
    #[error("invalid percent-encoding or not UTF-8")]
    InvalidEncoding,
    /// A decoded value contains a control character.
    #[error("a parameter contains a control character")]
    ControlCharacter,
    /// Implicit-flow parameters (`access_token`, `id_token`, `token`, ...) are present.
    #[error("implicit-flow parameters are not accepted")]
    ImplicitGrantParameter,
    /// `profileId` is not a canonical profile id (`^[1-9][0-9]{0,18}$`).
    #[error("profileId is not a canonical profile id")]
    InvalidProfileId,
    /// `code` is empty or has characters a code never has.
    #[error("the authorization code is malformed")]
    InvalidCode,
    /// Neither `code` nor `error` is present.
    #[error("neither code nor error is present")]
    MissingCode,
    /// Both `code` and `error` are present.
    #[error("both code and error are present")]
    ConflictingParameters,
    /// An `iss` parameter names another issuer than the configured Wise environment.
    #[error("unexpected issuer")]
    UnexpectedIssuer,
}

impl CallbackProblem {
    /// A stable snake_case name of the problem.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oversized => "oversized",
            Self::DuplicateParameter => "duplicate_parameter",
            Self::InvalidEncoding => "invalid_encoding",
            Self::ControlCharacter => "control_character",
            Self::ImplicitGrantParameter => "implicit_grant_parameter",
            Self::InvalidProfileId => "invalid_profile_id",
            Self::InvalidCode => "invalid_code",
            Self::MissingCode => "missing_code",
            Self::ConflictingParameters => "conflicting_parameters",
            Self::UnexpectedIssuer => "unexpected_issuer",
        }
    }
}

/// The `error` code of an error callback other than `access_denied` (RFC 6749 4.1.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_response_type`
    UnsupportedResponseType,
    /// `invalid_scope`
    InvalidScope,
    /// `server_error`
    ServerError,
    /// `temporarily_unavailable`
    TemporarilyUnavailable,
    /// Any other value (the value itself is not kept).
    Other,
}

impl ProviderErrorCode {
    /// Classifies an `error` value; `access_denied` is not a provider error (see
    /// [`FlowError::Denied`]) and maps to [`ProviderErrorCode::Other`] here.
    pub(crate) fn parse(value: &str) -> Self {
        match value {
            "invalid_request" => Self::InvalidRequest,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_response_type" => Self::UnsupportedResponseType,
            "invalid_scope" => Self::InvalidScope,
            "server_error" => Self::ServerError,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            _ => Self::Other,
        }
    }

    /// The RFC 6749 name (`"other"` for unknown values).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::Other => "other",
        }
    }
}

impl std::fmt::Display for ProviderErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a failed call to Wise means for the answer of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Try again later (503).
    Unavailable,
    /// The app's setup is wrong (500).
    Misconfigured,
    /// Wise refused the single-use code (400): start again.
    CodeRejected,
    /// Wise's answer was unusable or a refusal (502).
    Failed,
}

impl Failure {
    /// A failed code exchange. A malformed 200 or a redirect is fatal for a single-use code
    /// (not "try later").
    fn of_exchange(e: &WiseError) -> Self {
        match e {
            WiseError::MalformedResponse { .. } | WiseError::Redirected { .. } => Self::Failed,
            e if e.is_configuration() => Self::Misconfigured,
            e if e.needs_relink() => Self::CodeRejected,
            e if e.is_transient() => Self::Unavailable,
            _ => Self::Failed,
        }
    }

    /// A failed registration-code grant: a refusal (the user reclaimed the account) is not
    /// "try later".
    fn of_grant(e: &WiseError) -> Self {
        match e {
            e if e.is_transient() => Self::Unavailable,
            e if e.is_configuration() => Self::Misconfigured,
            _ => Self::Failed,
        }
    }

    /// A failed API call (profile lookup, signup): an unusable answer is not "try later".
    fn of_api_call(e: &WiseError) -> Self {
        match e {
            WiseError::MalformedResponse { .. } => Self::Failed,
            e if e.is_transient() => Self::Unavailable,
            _ => Self::Failed,
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
            Self::CodeRejected => StatusCode::BAD_REQUEST,
            Self::Failed => StatusCode::BAD_GATEWAY,
        }
    }

    /// The reason, with `failed` for [`Failure::Failed`].
    fn reason(self, failed: &'static str) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Misconfigured => "misconfigured",
            Self::CodeRejected => "code_rejected",
            Self::Failed => failed,
        }
    }
}

/// Why starting or completing a link flow failed.
///
/// | variant | [`status`](Self::status) | [`reason`](Self::reason) |
/// |---|---|---|
/// | `MalformedCallback` | 400 | `malformed_callback` |
/// | `MissingState` | 400 | `missing_state` |
/// | `UnknownState` (unknown, replayed or expired) | 400 | `unknown_state` |
/// | `BrowserMismatch` | 400 | `browser_mismatch` |
/// | `UserMismatch` | 400 | `user_mismatch` |
/// | `EnvironmentMismatch` | 400 | `environment_mismatch` |
/// | `WrongFlow` | 400 | `wrong_flow` |
/// | `Denied` (the user said no: not our failure) | 400 | `access_denied` |
/// | `InvalidClaimAccountCode` (the app passed an unusable one) | 400 | `invalid_claim_account_code` |
/// | `ProviderError` | 502 (503 for `temporarily_unavailable`) | `provider_error` |
/// | `Exchange` | 400 `code_rejected` (`invalid_grant`, 403) / 500 `misconfigured` (`invalid_client`) / 503 `unavailable` (transient) / 502 `exchange_failed` (malformed, other) | |
/// | `ProfileRejected` | 400 | `profile_rejected` |
/// | `NoProfile` | 400 | `no_profile` |
/// | `ProfileLookup` | 503 `unavailable` (transient) / 502 `profile_lookup_failed` | |
/// | `Unavailable` | 503 | `unavailable` |
/// | `Misconfigured` | 500 | `misconfigured` |
/// | `Busy` (over [`max_concurrent_exchanges`](crate::WiseOAuthBuilder::max_concurrent_exchanges)) | 503 | `busy` |
///
/// In every case but `Busy` the flow's state was consumed: the user starts a new flow.
/// `Busy` consumed nothing: the same callback can be repeated.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum FlowError {
    /// The callback query is malformed.
    #[error("malformed callback: {problem}")]
    MalformedCallback {
        /// What is wrong.
        problem: CallbackProblem,
    },
    /// The callback has no `state`.
    #[error("the callback has no state")]
    MissingState,
    /// The `state` is unknown, was already used, or is older than 30 minutes.
    #[error("unknown, used or expired state")]
    UnknownState,
    /// The flow was started in another browser (binding cookie missing or different).
    #[error("the flow was started in another browser")]
    BrowserMismatch,
    /// The flow was started by another app user.
    #[error("the flow was started by another user")]
    UserMismatch,
    /// The flow was started for another Wise environment or OAuth client.
    #[error("the flow belongs to another Wise environment or client")]
    EnvironmentMismatch,
    /// A web flow completed as mobile, or the other way round.
    #[error("the flow was started as another kind of flow (web or mobile)")]
    WrongFlow,
    /// The user declined at Wise (`error=access_denied`).
    #[error("the user declined the link at Wise")]
    Denied,
    /// The `claim_account_code` given to start the flow is empty, longer than 512 bytes or
    /// not printable ASCII (Wise issues it from `POST /v1/user/claim-account`).
    #[error("the claim account code is empty, too long or not printable ASCII")]
    InvalidClaimAccountCode,
    /// Wise redirected back with an error other than `access_denied`.
    #[error("Wise returned an error: {code}")]
    ProviderError {
        /// Wise's `error` code.
        code: ProviderErrorCode,
    },
    /// The code exchange failed.
    #[error("the code exchange failed: {0}")]
    Exchange(#[source] WiseError),
    /// The callback's `profileId` is not a profile the new token can see: nothing was stored.
    #[error("the profile id is not accessible with the granted token")]
    ProfileRejected,
    /// The linked account has no profile, or several and the callback named none.
    #[error("no single profile could be determined for the linked account")]
    NoProfile,
    /// Checking the profile through the Wise API failed: nothing was stored.
    #[error("the profile lookup failed: {0}")]
    ProfileLookup(#[source] WiseError),
    /// A store or the link lease is unavailable; try again later.
    #[error("temporarily unavailable")]
    Unavailable {
        /// How long to wait, when known.
        retry_after: Option<Duration>,
    },
    /// The library is misconfigured (for example no mobile redirect URI, or Wise rejects
    /// the client credentials).
    #[error("wise-oauth is misconfigured")]
    Misconfigured,
    /// Too many link completions run at once on this instance: nothing was consumed, repeat
    /// the same callback after `Retry-After` (see
    /// [`WiseOAuthBuilder::max_concurrent_exchanges`](crate::WiseOAuthBuilder::max_concurrent_exchanges)).
    #[error("too many links are being completed at once; repeat the callback shortly")]
    Busy,
}

impl FlowError {
    /// The HTTP status an adapter answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedCallback { .. }
            | Self::MissingState
            | Self::UnknownState
            | Self::BrowserMismatch
            | Self::UserMismatch
            | Self::EnvironmentMismatch
            | Self::WrongFlow
            | Self::Denied
            | Self::InvalidClaimAccountCode
            | Self::ProfileRejected
            | Self::NoProfile => StatusCode::BAD_REQUEST,
            Self::ProviderError {
                code: ProviderErrorCode::TemporarilyUnavailable,
            } => StatusCode::SERVICE_UNAVAILABLE,
            Self::ProviderError { .. } => StatusCode::BAD_GATEWAY,
            Self::Exchange(e) => Failure::of_exchange(e).status(),
            Self::ProfileLookup(e) => Failure::of_api_call(e).status(),
            Self::Unavailable { .. } | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable snake_case reason for machine-readable bodies.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MalformedCallback { .. } => "malformed_callback",
            Self::MissingState => "missing_state",
            Self::UnknownState => "unknown_state",
            Self::BrowserMismatch => "browser_mismatch",
            Self::UserMismatch => "user_mismatch",
            Self::EnvironmentMismatch => "environment_mismatch",
            Self::WrongFlow => "wrong_flow",
            Self::Denied => "access_denied",
            Self::InvalidClaimAccountCode => "invalid_claim_account_code",
            Self::ProviderError { .. } => "provider_error",
            Self::Exchange(e) => Failure::of_exchange(e).reason("exchange_failed"),
            Self::ProfileRejected => "profile_rejected",
            Self::NoProfile => "no_profile",
            Self::ProfileLookup(e) => Failure::of_api_call(e).reason("profile_lookup_failed"),
            Self::Unavailable { .. } => "unavailable",
            Self::Misconfigured => "misconfigured",
            Self::Busy => "busy",
        }
    }

    /// How long to wait before retrying, for 503 answers (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after } => *retry_after,
            Self::Busy => Some(Duration::from_secs(1)),
            Self::Exchange(e) if Failure::of_exchange(e) == Failure::Unavailable => e.retry_after(),
            Self::ProfileLookup(e) if Failure::of_api_call(e) == Failure::Unavailable => {
                e.retry_after()
            }
            _ => None,
        }
    }

    /// Whether the user should simply start linking again (every 4xx of the flow).
    pub fn is_client_error(&self) -> bool {
        self.status().is_client_error()
    }

    pub(crate) fn from_token_error(e: TokenError) -> Self {
        match e {
            TokenError::Misconfigured => Self::Misconfigured,
            TokenError::Unavailable { retry_after } => Self::Unavailable { retry_after },
            _ => Self::Unavailable { retry_after: None },
        }
    }
}

/// The outcome of [`WiseOAuth::register_user`](crate::WiseOAuth::register_user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Registration {
    /// A Wise user was created and linked to the app user.
    Linked {
        /// The verified profile of the new link.
        profile_id: crate::ids::ProfileId,
    },
    /// The email already belongs to a Wise user (409 `NOT_UNIQUE`): send the user through
    /// the link flow ([`WiseOAuth::start_link`](crate::WiseOAuth::start_link)) instead.
    UseLinkFlow,
}

/// Why registering a user failed. No link was stored in any case.
///
/// | variant | [`status`](Self::status) | [`reason`](Self::reason) |
/// |---|---|---|
/// | `InvalidEmail` | 400 | `invalid_email` |
/// | `InvalidRegistrationCode` | 400 | `invalid_registration_code` |
/// | `Signup` / `Grant` (Wise refused) | 502 | `registration_rejected` |
/// | `Signup` / `Grant` / `ProfileLookup` (transient) | 503 | `unavailable` |
/// | `Grant` (`invalid_client`) | 500 | `misconfigured` |
/// | `ProfileLookup` | 502 | `profile_lookup_failed` |
/// | `NoProfile` | 409 | `no_profile` |
/// | `Unavailable` | 503 | `unavailable` |
/// | `Misconfigured` | 500 | `misconfigured` |
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// The email is empty, too long or not an address.
    #[error("invalid email address")]
    InvalidEmail,
    /// The registration code is shorter than 32 characters, longer than 1024 or not
    /// printable ASCII.
    #[error("invalid registration code (32 to 1024 printable ASCII characters)")]
    InvalidRegistrationCode,
    /// Wise refused the signup call.
    #[error("Wise rejected the signup: {0}")]
    Signup(#[source] WiseError),
    /// Wise refused the registration-code grant (for example the user reclaimed the account).
    #[error("Wise rejected the registration code grant: {0}")]
    Grant(#[source] WiseError),
    /// The new user has no profile yet, so there is nothing to link.
    #[error("the registered user has no single profile to link")]
    NoProfile,
    /// Reading the new user's profiles failed.
    #[error("the profile lookup failed: {0}")]
    ProfileLookup(#[source] WiseError),
    /// A store, the lease or Wise is temporarily unavailable.
    #[error("temporarily unavailable")]
    Unavailable {
        /// How long to wait, when known.
        retry_after: Option<Duration>,
    },
    /// The library is misconfigured, or Wise rejects the client credentials.
    #[error("wise-oauth is misconfigured")]
    Misconfigured,
}

impl RegistrationError {
    /// The HTTP status an adapter answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidEmail | Self::InvalidRegistrationCode => StatusCode::BAD_REQUEST,
            Self::Signup(e) | Self::ProfileLookup(e) => Failure::of_api_call(e).status(),
            Self::Grant(e) => Failure::of_grant(e).status(),
            Self::NoProfile => StatusCode::CONFLICT,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable snake_case reason for machine-readable bodies.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidEmail => "invalid_email",
            Self::InvalidRegistrationCode => "invalid_registration_code",
            Self::Signup(e) => Failure::of_api_call(e).reason("registration_rejected"),
            Self::Grant(e) => Failure::of_grant(e).reason("registration_rejected"),
            Self::ProfileLookup(e) => Failure::of_api_call(e).reason("profile_lookup_failed"),
            Self::NoProfile => "no_profile",
            Self::Unavailable { .. } => "unavailable",
            Self::Misconfigured => "misconfigured",
        }
    }

    /// How long to wait before retrying, for 503 answers.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after } => *retry_after,
            Self::Grant(e) if Failure::of_grant(e) == Failure::Unavailable => e.retry_after(),
            Self::Signup(e) | Self::ProfileLookup(e)
                if Failure::of_api_call(e) == Failure::Unavailable =>
            {
                e.retry_after()
            }
            _ => None,
        }
    }

    pub(crate) fn from_token_error(e: TokenError) -> Self {
        match e {
            TokenError::Misconfigured => Self::Misconfigured,
            TokenError::Unavailable { retry_after } => Self::Unavailable { retry_after },
            _ => Self::Unavailable { retry_after: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_reasons_are_stable() {
        let cases: Vec<(FlowError, u16, &str)> = vec![
            (
                FlowError::MalformedCallback {
                    problem: CallbackProblem::DuplicateParameter,
                },
                400,
                "malformed_callback",
            ),
            (FlowError::MissingState, 400, "missing_state"),
            (FlowError::UnknownState, 400, "unknown_state"),
            (FlowError::BrowserMismatch, 400, "browser_mismatch"),
            (FlowError::UserMismatch, 400, "user_mismatch"),
            (FlowError::EnvironmentMismatch, 400, "environment_mismatch"),
            (FlowError::WrongFlow, 400, "wrong_flow"),
            (FlowError::Denied, 400, "access_denied"),
            (
                FlowError::ProviderError {
                    code: ProviderErrorCode::ServerError,
                },
                502,
                "provider_error",
            ),
            (
                FlowError::ProviderError {
                    code: ProviderErrorCode::TemporarilyUnavailable,
                },
                503,
                "provider_error",
            ),
            (
                FlowError::Exchange(WiseError::InvalidGrant { status: 400 }),
                400,
                "code_rejected",
            ),
            (
                FlowError::Exchange(WiseError::Timeout { source: None }),
                503,
                "unavailable",
            ),
            (
                FlowError::Exchange(WiseError::Client {
                    code: crate::endpoint::OAuthErrorCode::InvalidClient,
                }),
                500,
                "misconfigured",
            ),
            (
                FlowError::Exchange(WiseError::MalformedResponse { reason: "x" }),
                502,
                "exchange_failed",
            ),
            (FlowError::ProfileRejected, 400, "profile_rejected"),
            (FlowError::NoProfile, 400, "no_profile"),
            (
                FlowError::ProfileLookup(WiseError::Timeout { source: None }),
                503,
                "unavailable",
            ),
            (
                FlowError::ProfileLookup(WiseError::Rejected {
                    status: 400,
                    code: None,
                }),
                502,
                "profile_lookup_failed",
            ),
            (
                FlowError::Unavailable {
                    retry_after: Some(Duration::from_secs(3)),
                },
                503,
                "unavailable",
            ),
            (FlowError::Misconfigured, 500, "misconfigured"),
        ];
        for (error, status, reason) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            assert_eq!(error.reason(), reason, "{error:?}");
            assert!(reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        assert_eq!(
            FlowError::Unavailable {
                retry_after: Some(Duration::from_secs(3))
            }
            .retry_after(),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn token_errors_map_to_flow_errors() {
        assert!(matches!(
            FlowError::from_token_error(TokenError::Misconfigured),
            FlowError::Misconfigured
        ));
        let e = FlowError::from_token_error(TokenError::Unavailable {
            retry_after: Some(Duration::from_secs(2)),
        });
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(e.status().as_u16(), 503);
    }

    #[test]
    fn registration_errors_have_statuses() {
        assert_eq!(RegistrationError::InvalidEmail.status().as_u16(), 400);
        assert_eq!(RegistrationError::NoProfile.reason(), "no_profile");
        let e = RegistrationError::Grant(WiseError::InvalidGrant { status: 401 });
        assert_eq!(
            (e.status().as_u16(), e.reason()),
            (502, "registration_rejected")
        );
        let e = RegistrationError::Signup(WiseError::RateLimited {
            retry_after: Some(Duration::from_secs(5)),
        });
        assert_eq!((e.status().as_u16(), e.reason()), (503, "unavailable"));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
    }
}
