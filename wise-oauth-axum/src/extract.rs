//! The `WiseToken` extractor and its rejection.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use wise_oauth_core::web::{self, Mount, RejectionKind, Reply, RequestInfo};
use wise_oauth_core::{AccessToken, ProfileId, TokenError, UserId, ValidToken, WiseOAuth};

use crate::convert::{original_uri, request_info, response};
use crate::routes::Plugin;

/// A valid Wise access token of the logged-in user's linked profile.
///
/// Taking it as a handler argument is all it needs: the token is fresh (refreshed
/// transparently, once, when it was close to expiry), and the handler never runs when the
/// user is not logged in, not linked or must re-link; see [`WiseTokenRejection`].
/// `Option<WiseToken>` gives `None` instead when the user has no usable link.
///
/// Requires [`WiseRoutes::layer`](crate::WiseRoutes::layer) on the router.
///
/// ```
/// use wise_oauth_axum::WiseToken;
///
/// async fn profile(token: WiseToken) -> String {
///     // Call Wise with `Authorization: Bearer {token.access_token().expose_secret()}`.
///     format!("linked to profile {}", token.profile_id())
/// }
/// ```
#[derive(Clone)]
pub struct WiseToken {
    token: ValidToken,
    user: UserId,
    plugin: Arc<Plugin>,
    head: RequestHead,
}

/// What a later rejection (from [`WiseToken::after_unauthorized`]) needs of the request:
/// reference-counted clones of the request's own bytes (no copy, no header map), turned
/// into a [`RequestInfo`] only when used.
#[derive(Clone)]
struct RequestHead {
    method: http::Method,
    path: Option<http::uri::PathAndQuery>,
    /// The `Accept` header (several are joined with `,`: they form one list).
    accept: Option<http::HeaderValue>,
    requested_with: bool,
}

const X_REQUESTED_WITH: http::HeaderName = http::HeaderName::from_static("x-requested-with");

impl RequestHead {
    fn of(parts: &Parts) -> Self {
        let uri = original_uri(parts);
        RequestHead {
            method: parts.method.clone(),
            path: uri.path_and_query().cloned(),
            accept: accept_value(parts.headers.get_all(http::header::ACCEPT).iter()),
            requested_with: parts.headers.contains_key(X_REQUESTED_WITH),
        }
    }

    fn info(&self) -> RequestInfo {
        let pq = self.path.as_ref().map_or("/", |pq| pq.as_str());
        let mut info = RequestInfo::new(self.method.as_str(), pq);
        if let Some(accept) = &self.accept {
            info.header("accept", accept.as_bytes());
        }
        if self.requested_with {
            info.header("x-requested-with", b"1");
        }
        info
    }
}

fn accept_value<'a>(
    mut values: impl Iterator<Item = &'a http::HeaderValue>,
) -> Option<http::HeaderValue> {
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(first.clone());
    };
    let mut joined = first.as_bytes().to_vec();
    for value in std::iter::once(second).chain(values) {
        joined.push(b',');
        joined.extend_from_slice(value.as_bytes());
    }
    http::HeaderValue::from_bytes(&joined).ok()
}

impl fmt::Debug for WiseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WiseToken")
            .field("user", &self.user)
            .field("token", &self.token)
            .finish()
    }
}

impl WiseToken {
    /// The access token, for `Authorization: Bearer ...` on Wise API calls.
    pub fn access_token(&self) -> &AccessToken {
        self.token.access_token()
    }

    /// The linked Wise profile.
    pub fn profile_id(&self) -> ProfileId {
        self.token.profile_id()
    }

    /// When the access token expires.
    pub fn expires_at(&self) -> SystemTime {
        self.token.expires_at()
    }

    /// The app user the token belongs to.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The underlying core token.
    pub fn valid_token(&self) -> &ValidToken {
        &self.token
    }

    /// The handle, for other calls (e.g. [`WiseOAuth::status`]).
    pub fn wise(&self) -> &WiseOAuth {
        &self.plugin.wise
    }

    /// Wise answered 401 to this token: gets the newer token another request stored, or
    /// refreshes once. Call it at most once per failed API call. The rejection is the one
    /// the extractor would have given for the same request (e.g. a redirect into the link
    /// flow when Wise revoked the link).
    pub async fn after_unauthorized(&self) -> Result<WiseToken, WiseTokenRejection> {
        match self
            .plugin
            .wise
            .token_after_unauthorized(&self.user, self.token.access_token())
            .await
        {
            Ok(token) => Ok(WiseToken {
                token,
                ..self.clone()
            }),
            Err(e) => Err(WiseTokenRejection::new(
                &e,
                &self.head.info(),
                &self.plugin.mount,
            )),
        }
    }
}

/// Why [`WiseToken`] could not be extracted; answers with the status and body described
/// under [`RejectionKind`] (shared with the actix-web adapter).
#[derive(Debug)]
pub struct WiseTokenRejection {
    kind: RejectionKind,
    reply: Reply,
}

impl WiseTokenRejection {
    fn new(error: &TokenError, req: &RequestInfo, mount: &Mount) -> Self {
        WiseTokenRejection {
            kind: RejectionKind::of(error),
            reply: web::token_rejection(error, req, mount),
        }
    }

    /// Why the extraction failed.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The status code it answers with.
    pub fn status(&self) -> http::StatusCode {
        self.reply.status
    }
}

impl fmt::Display for WiseTokenRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no Wise token: {}", self.kind.reason())
    }
}

impl std::error::Error for WiseTokenRejection {}

impl IntoResponse for WiseTokenRejection {
    fn into_response(self) -> Response {
        response(self.reply)
    }
}

const NOT_SET_UP_HINT: &str = "WiseToken needs the plugin layer: add \
    `.layer(wise_routes.layer())` (wise_oauth_axum::WiseRoutes::layer) to the router";

type Extracted = Result<WiseToken, (TokenError, RequestInfo, Arc<Plugin>)>;

/// The success path touches no header beyond the ones kept in [`RequestHead`]; the full
/// [`RequestInfo`] is built only for a rejection.
async fn extract(parts: &Parts) -> Result<Extracted, WiseTokenRejection> {
    let Some(plugin) = parts.extensions.get::<Arc<Plugin>>().cloned() else {
        return Err(WiseTokenRejection {
            kind: RejectionKind::NotSetUp,
            reply: web::not_set_up(&request_info(parts), NOT_SET_UP_HINT),
        });
    };
    let Some(user) = plugin.user(parts) else {
        return Err(WiseTokenRejection {
            kind: RejectionKind::NotLoggedIn,
            reply: web::not_logged_in(&request_info(parts)),
        });
    };
    Ok(match plugin.wise.token(&user).await {
        Ok(token) => Ok(WiseToken {
            token,
            user,
            plugin,
            head: RequestHead::of(parts),
        }),
        Err(e) => Err((e, request_info(parts), plugin)),
    })
}

impl<S: Send + Sync> FromRequestParts<S> for WiseToken {
    type Rejection = WiseTokenRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        extract(parts)
            .await?
            .map_err(|(e, req, plugin)| WiseTokenRejection::new(&e, &req, &plugin.mount))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for WiseToken {
    type Rejection = WiseTokenRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match extract(parts).await? {
            Ok(token) => Ok(Some(token)),
            Err((e, _, _)) if e.needs_link() => Ok(None),
            Err((e, req, plugin)) => Err(WiseTokenRejection::new(&e, &req, &plugin.mount)),
        }
    }
}
