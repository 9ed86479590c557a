//! The `WiseToken` extractor and its rejection.

use std::fmt;
use std::future::Future;
use std::ops::Deref;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use wise_oauth_core::web::{LinkedToken, Rejection, RejectionKind};

use crate::convert::response;
use crate::framework::Axum;
use crate::routes::WisePlugin;

/// A valid Wise access token of the logged-in user's linked profile.
///
/// Taking it as a handler argument is all it needs: the token is fresh (refreshed
/// transparently, once, when it was close to expiry), and the handler never runs when the
/// user is not logged in, not linked or must re-link; see [`WiseTokenRejection`].
/// `Option<WiseToken>` gives `None` instead when the user has no usable link.
///
/// Its accessors (`access_token`, `profile_id`, `expires_at`, `user`, `valid_token`,
/// `wise`) are those of the [`LinkedToken`] it dereferences to.
///
/// It finds the plugin in the router's state: a [`WisePlugin`] (from
/// [`WiseRoutes::plugin`](crate::WiseRoutes::plugin)) that the state gives through
/// [`FromRef`], so forgetting it is a compile error, not a 500 at run time.
///
/// ```
/// # mod wise_oauth { pub use wise_oauth_core::*; pub mod axum { pub use wise_oauth_axum::*; } }
/// use wise_oauth::axum::WiseToken;
///
/// async fn profile(token: WiseToken) -> String {
///     // Call Wise with `Authorization: Bearer {token.access_token().expose_secret()}`.
///     format!("linked to profile {}", token.profile_id())
/// }
/// ```
#[derive(Clone, Debug)]
pub struct WiseToken(LinkedToken<Axum>);

impl Deref for WiseToken {
    type Target = LinkedToken<Axum>;

    fn deref(&self) -> &LinkedToken<Axum> {
        &self.0
    }
}

impl WiseToken {
    /// An authorized Wise API client for this user that sends the incoming request's
    /// correlation id to Wise: its `X-External-Correlation-Id`, else its `X-Request-Id`
    /// (see [`request_correlation_id`](wise_oauth_core::web::request_correlation_id));
    /// without one, each call gets a fresh id, as with `client()`.
    ///
    /// The extractor copies nothing of the request, so a fresh token costs no header
    /// look-up: the headers are read here, by the handlers that ask for them.
    ///
    /// ```
    /// # mod wise_oauth { pub use wise_oauth_core::*; pub mod axum { pub use wise_oauth_axum::*; } }
    /// use axum::http::HeaderMap;
    /// use wise_oauth::axum::WiseToken;
    ///
    /// async fn profiles(token: WiseToken, headers: HeaderMap) -> String {
    ///     match token.client_for(&headers).profiles().await {
    ///         Ok(profiles) => format!("{} profiles", profiles.len()),
    ///         Err(e) => e.to_string(),
    ///     }
    /// }
    /// ```
    pub fn client_for(&self, headers: &http::HeaderMap) -> wise_oauth_core::WiseClient {
        self.0.client_for_headers(
            headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes())),
        )
    }

    /// Wise answered 401 to this token: gets the newer token another request stored, or
    /// refreshes once. Call it at most once per failed API call. The rejection is the one
    /// the extractor would have given for the same request (e.g. a redirect into the link
    /// flow when Wise revoked the link).
    pub async fn after_unauthorized(&self) -> Result<WiseToken, WiseTokenRejection> {
        let token = self.0.after_unauthorized().await?;
        Ok(WiseToken(token))
    }
}

/// Why [`WiseToken`] could not be extracted; answers with the status and body described
/// under [`RejectionKind`] (shared with the actix-web adapter).
#[derive(Debug)]
pub struct WiseTokenRejection(Rejection);

impl From<Rejection> for WiseTokenRejection {
    fn from(rejection: Rejection) -> Self {
        WiseTokenRejection(rejection)
    }
}

impl WiseTokenRejection {
    /// Why the extraction failed.
    pub fn kind(&self) -> RejectionKind {
        self.0.kind()
    }

    /// The status code it answers with.
    pub fn status(&self) -> http::StatusCode {
        self.0.reply().status
    }
}

impl fmt::Display for WiseTokenRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for WiseTokenRejection {}

impl IntoResponse for WiseTokenRejection {
    fn into_response(self) -> Response {
        response(self.0.into_reply())
    }
}

impl From<LinkedToken<Axum>> for WiseToken {
    fn from(token: LinkedToken<Axum>) -> Self {
        WiseToken(token)
    }
}

// Not `async fn`s: the core's future (ready at once for a fresh cached token) already
// yields these types, and is returned as it is rather than awaited in one more state
// machine that every request would build, poll and move.
impl<S> FromRequestParts<S> for WiseToken
where
    S: Send + Sync,
    WisePlugin: FromRef<S>,
{
    type Rejection = WiseTokenRejection;

    fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> impl Future<Output = Result<Self, Self::Rejection>> + Send {
        LinkedToken::extract(parts, WisePlugin::from_ref(state).into_inner())
    }
}

impl<S> OptionalFromRequestParts<S> for WiseToken
where
    S: Send + Sync,
    WisePlugin: FromRef<S>,
{
    type Rejection = WiseTokenRejection;

    fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> impl Future<Output = Result<Option<Self>, Self::Rejection>> + Send {
        LinkedToken::extract_optional(parts, WisePlugin::from_ref(state).into_inner())
    }
}
