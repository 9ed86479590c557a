//! The `WiseToken` extractor and its rejection.

use std::fmt;
use std::time::SystemTime;

use actix_web::dev::Payload;
use actix_web::http::header::{HeaderValue, ACCEPT};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use futures::future::LocalBoxFuture;
use wise_oauth_core::web::{self as core_web, Mount, RejectionKind, Reply, RequestInfo};
use wise_oauth_core::{AccessToken, ProfileId, TokenError, UserId, ValidToken, WiseOAuth};

use crate::convert::{request_info, response};
use crate::routes::Plugin;

/// A valid Wise access token of the logged-in user's linked profile.
///
/// Taking it as a handler argument is all it needs: the token is fresh (refreshed
/// transparently, once, when it was close to expiry), and the handler never runs when the
/// user is not logged in, not linked or must re-link; see [`WiseTokenRejection`].
/// [`OptionalWiseToken`] gives `None` instead when the user has no usable link.
///
/// Requires [`WiseRoutes::configure`](crate::WiseRoutes::configure) on the `App`.
///
/// ```
/// use wise_oauth_actix::WiseToken;
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
    plugin: web::Data<Plugin>,
    head: RequestHead,
}

/// What a later rejection (from [`WiseToken::after_unauthorized`]) needs of the request:
/// reference-counted clones of the request's own bytes (no copy, no header map), turned
/// into a [`RequestInfo`] only when used.
#[derive(Clone)]
struct RequestHead {
    method: Method,
    path: Option<actix_web::http::uri::PathAndQuery>,
    /// The `Accept` header (several are joined with `,`: they form one list).
    accept: Option<HeaderValue>,
    requested_with: bool,
}

const X_REQUESTED_WITH: actix_web::http::header::HeaderName =
    actix_web::http::header::HeaderName::from_static("x-requested-with");

impl RequestHead {
    fn of(req: &HttpRequest) -> Self {
        RequestHead {
            method: req.method().clone(),
            path: req.uri().path_and_query().cloned(),
            accept: accept_value(req.headers().get_all(ACCEPT)),
            requested_with: req.headers().contains_key(X_REQUESTED_WITH),
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

fn accept_value<'a>(mut values: impl Iterator<Item = &'a HeaderValue>) -> Option<HeaderValue> {
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(first.clone());
    };
    let mut joined = first.as_bytes().to_vec();
    for value in std::iter::once(second).chain(values) {
        joined.push(b',');
        joined.extend_from_slice(value.as_bytes());
    }
    HeaderValue::from_bytes(&joined).ok()
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

/// Why [`WiseToken`] could not be extracted; answers (through [`ResponseError`]) with the
/// status and body described under [`RejectionKind`] (shared with the axum adapter).
///
/// Return it from a handler (`Result<_, WiseTokenRejection>` or `?` into
/// `actix_web::Error`) to give the same answer as the extractor.
#[derive(Debug)]
pub struct WiseTokenRejection {
    kind: RejectionKind,
    reply: Reply,
}

impl WiseTokenRejection {
    fn new(error: &TokenError, req: &RequestInfo, mount: &Mount) -> Self {
        WiseTokenRejection {
            kind: RejectionKind::of(error),
            reply: core_web::token_rejection(error, req, mount),
        }
    }

    /// Why the extraction failed.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The status code it answers with.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.reply.status.as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl fmt::Display for WiseTokenRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no Wise token: {}", self.kind.reason())
    }
}

impl std::error::Error for WiseTokenRejection {}

impl ResponseError for WiseTokenRejection {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        response(self.reply.clone())
    }
}

const NOT_SET_UP_HINT: &str = "WiseToken needs the plugin's app data: add \
    `.configure(|cfg| wise_routes.configure(cfg))` (wise_oauth_actix::WiseRoutes::configure) \
    to the App";

type Extracted = Result<WiseToken, (TokenError, RequestInfo, web::Data<Plugin>)>;

/// The success path touches no header beyond the ones kept in [`RequestHead`]; the full
/// [`RequestInfo`] is built only for a rejection.
async fn extract(req: &HttpRequest) -> Result<Extracted, WiseTokenRejection> {
    let Some(plugin) = req.app_data::<web::Data<Plugin>>().cloned() else {
        return Err(WiseTokenRejection {
            kind: RejectionKind::NotSetUp,
            reply: core_web::not_set_up(&request_info(req), NOT_SET_UP_HINT),
        });
    };
    let Some(user) = plugin.user(req) else {
        return Err(WiseTokenRejection {
            kind: RejectionKind::NotLoggedIn,
            reply: core_web::not_logged_in(&request_info(req)),
        });
    };
    Ok(match plugin.wise.token(&user).await {
        Ok(token) => Ok(WiseToken {
            token,
            user,
            plugin,
            head: RequestHead::of(req),
        }),
        Err(e) => Err((e, request_info(req), plugin)),
    })
}

impl FromRequest for WiseToken {
    type Error = WiseTokenRejection;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            extract(&req)
                .await?
                .map_err(|(e, info, plugin)| WiseTokenRejection::new(&e, &info, &plugin.mount))
        })
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
/// use wise_oauth_actix::OptionalWiseToken;
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
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            match extract(&req).await? {
                Ok(token) => Ok(OptionalWiseToken(Some(token))),
                Err((e, _, _)) if e.needs_link() => Ok(OptionalWiseToken(None)),
                Err((e, info, plugin)) => Err(WiseTokenRejection::new(&e, &info, &plugin.mount)),
            }
        })
    }
}
