//! The `WiseToken` extractor and its rejection.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use wise_oauth_core::web::{
    Extraction, LinkedToken, Plugin, Rejection, RejectionKind, RequestInfo,
};

use crate::convert::{response, status};
use crate::framework::Actix;

/// A valid Wise access token of the logged-in user's linked profile.
///
/// Taking it as a handler argument is all it needs: the token is fresh (refreshed
/// transparently, once, when it was close to expiry), and the handler never runs when the
/// user is not logged in, not linked or must re-link; see [`WiseTokenRejection`].
/// [`OptionalWiseToken`] gives `None` instead when the user has no usable link.
///
/// Its accessors (`access_token`, `profile_id`, `expires_at`, `user`, `valid_token`,
/// `wise`) are those of the [`LinkedToken`] it dereferences to.
///
/// Requires [`WiseRoutes::configure`](crate::WiseRoutes::configure) on the `App`.
///
/// ```
/// # mod wise_oauth { pub use wise_oauth_core::*; pub mod actix { pub use wise_oauth_actix::*; } }
/// use wise_oauth::actix::WiseToken;
///
/// async fn profile(token: WiseToken) -> String {
///     // Call Wise with `Authorization: Bearer {token.access_token().expose_secret()}`.
///     format!("linked to profile {}", token.profile_id())
/// }
/// ```
#[derive(Clone, Debug)]
pub struct WiseToken(LinkedToken<Actix>);

impl Deref for WiseToken {
    type Target = LinkedToken<Actix>;

    fn deref(&self) -> &LinkedToken<Actix> {
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
    /// # mod wise_oauth { pub use wise_oauth_core::*; pub mod actix { pub use wise_oauth_actix::*; } }
    /// use actix_web::HttpRequest;
    /// use wise_oauth::actix::WiseToken;
    ///
    /// async fn profiles(token: WiseToken, req: HttpRequest) -> String {
    ///     match token.client_for(&req).profiles().await {
    ///         Ok(profiles) => format!("{} profiles", profiles.len()),
    ///         Err(e) => e.to_string(),
    ///     }
    /// }
    /// ```
    pub fn client_for(&self, req: &HttpRequest) -> wise_oauth_core::WiseClient {
        self.0.client_for_request(req)
    }

    /// Wise answered 401 to this token: gets the newer token another request stored, or
    /// refreshes once. Call it at most once per failed API call. The rejection is the one
    /// the extractor would have given for the same request (e.g. a redirect into the link
    /// flow when Wise revoked the link).
    pub async fn after_unauthorized(&self) -> Result<WiseToken, WiseTokenRejection> {
        match self.0.after_unauthorized().await {
            Ok(token) => Ok(WiseToken(token)),
            Err(rejection) => Err(WiseTokenRejection(rejection)),
        }
    }
}

/// Why [`WiseToken`] could not be extracted; answers (through [`ResponseError`]) with the
/// status and body described under [`RejectionKind`] (shared with the axum adapter).
///
/// Return it from a handler (`Result<_, WiseTokenRejection>` or `?` into
/// `actix_web::Error`) to give the same answer as the extractor.
#[derive(Debug)]
pub struct WiseTokenRejection(Rejection);

impl From<Rejection> for WiseTokenRejection {
    fn from(rejection: Rejection) -> Self {
        WiseTokenRejection(rejection)
    }
}

impl From<LinkedToken<Actix>> for WiseToken {
    fn from(token: LinkedToken<Actix>) -> Self {
        WiseToken(token)
    }
}

impl WiseTokenRejection {
    /// Why the extraction failed.
    pub fn kind(&self) -> RejectionKind {
        self.0.kind()
    }

    /// The status code it answers with.
    pub fn status(&self) -> StatusCode {
        status(self.0.reply().status.as_u16())
    }
}

impl fmt::Display for WiseTokenRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for WiseTokenRejection {}

impl ResponseError for WiseTokenRejection {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        response(self.0.reply().clone())
    }
}

/// What the extractor answers (in a 500) when the plugin's app data is missing.
const NOT_SET_UP_HINT: &str = "this route has no wise-oauth plugin in its app data, so \
    WiseToken cannot find it. Either the App never calls \
    `.configure(|cfg| wise_routes.configure(cfg))` (wise_oauth_actix::WiseRoutes::configure), \
    or it calls it only inside a `web::scope` and this route is outside that scope (app data \
    set in a scope reaches only the scope's own routes): call it on the App itself";

/// The plugin registered as app data by [`WiseRoutes::configure`](crate::WiseRoutes::configure).
fn plugin(req: &HttpRequest) -> Result<Arc<Plugin<Actix>>, WiseTokenRejection> {
    match req.app_data::<web::Data<Plugin<Actix>>>() {
        Some(data) => Ok(Arc::clone(data)),
        None => Err(not_set_up(req)),
    }
}

/// The 500 for a route outside the plugin's app data; out of line, as it is rare.
#[cold]
#[inline(never)]
fn not_set_up(req: &HttpRequest) -> WiseTokenRejection {
    WiseTokenRejection(Rejection::not_set_up(
        &RequestInfo::of::<Actix>(req),
        NOT_SET_UP_HINT,
    ))
}

impl FromRequest for WiseToken {
    type Error = WiseTokenRejection;
    type Future = Extraction<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        match plugin(req) {
            Ok(plugin) => LinkedToken::extract(req, plugin),
            Err(rejection) => Extraction::ready(Err(rejection)),
        }
    }
}

/// `Some(token)` for a linked user, `None` when the user has not linked Wise or must
/// re-link; every other failure (not logged in, Wise unavailable, plugin not set up) is
/// still rejected like [`WiseToken`].
///
/// Prefer it over `Option<WiseToken>`: actix-web's blanket `Option<T>` extractor turns
/// *every* failure into `None`, so a handler taking `Option<WiseToken>` also runs for a
/// user who is not logged in or while Wise is unreachable. `OptionalWiseToken` answers
/// exactly like `Option<WiseToken>` does in the axum adapter.
///
/// ```
/// # mod wise_oauth { pub use wise_oauth_core::*; pub mod actix { pub use wise_oauth_actix::*; } }
/// use wise_oauth::actix::OptionalWiseToken;
///
/// async fn home(OptionalWiseToken(token): OptionalWiseToken) -> String {
///     match token {
///         Some(t) => format!("linked to {}", t.profile_id()),
///         None => "connect Wise at /wise/connect".to_owned(),
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct OptionalWiseToken(pub Option<WiseToken>);

impl OptionalWiseToken {
    /// The token, if the user has a usable link.
    pub fn into_inner(self) -> Option<WiseToken> {
        self.0
    }
}

impl FromRequest for OptionalWiseToken {
    type Error = WiseTokenRejection;
    type Future = Extraction<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        match plugin(req) {
            Ok(plugin) => {
                LinkedToken::extract_optional(req, plugin).map(|r| r.map(OptionalWiseToken))
            }
            Err(rejection) => Extraction::ready(Err(rejection)),
        }
    }
}
