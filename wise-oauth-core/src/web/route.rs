//! The table of the ready-made routes, and serving one of them.

use super::framework::Framework;
use super::plugin::Plugin;
use super::reply::Reply;
use super::request::RequestInfo;
use super::routes;
use super::webhooks;

/// One of the ready-made routes; an adapter registers each of [`Route::ALL`] at
/// [`Plugin::routes`]' path with [`Route::method`], and answers it with [`Plugin::serve`].
///
/// ```
/// # mod wise_oauth { pub use wise_oauth_core::*; }
/// use wise_oauth::web::{Route, RouteMethod};
/// assert_eq!(Route::Callback.path(), "/callback");
/// assert_eq!(Route::Disconnect.method(), RouteMethod::Post);
/// assert!(Route::MobileComplete.reads_body());
/// assert_eq!(Route::Webhooks.path(), "/webhooks");
/// assert_eq!(Route::Webhooks.body_limit(), wise_oauth_core::MAX_WEBHOOK_BODY);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// `GET {prefix}/connect`: [`connect`](super::connect).
    Connect,
    /// `GET {prefix}/callback`: [`callback`](super::callback).
    Callback,
    /// `GET {prefix}/status`: [`status`](super::status).
    Status,
    /// `POST {prefix}/disconnect`: [`disconnect`](super::disconnect).
    Disconnect,
    /// `POST {prefix}/mobile/start`: [`mobile_start`](super::mobile_start).
    MobileStart,
    /// `POST {prefix}/mobile/complete`: [`mobile_complete`](super::mobile_complete).
    MobileComplete,
    /// `POST {prefix}/webhooks`: [`webhooks`](super::webhooks), called by Wise.
    Webhooks,
}

/// The method a [`Route`] answers; GET routes also answer HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteMethod {
    /// GET (and HEAD).
    Get,
    /// POST.
    Post,
}

impl Route {
    /// Every route, in the order adapters register them.
    pub const ALL: [Route; 7] = [
        Route::Connect,
        Route::Callback,
        Route::Status,
        Route::Disconnect,
        Route::MobileStart,
        Route::MobileComplete,
        Route::Webhooks,
    ];

    /// The path under the mount, starting with `/`.
    pub fn path(self) -> &'static str {
        match self {
            Route::Connect => "/connect",
            Route::Callback => "/callback",
            Route::Status => "/status",
            Route::Disconnect => "/disconnect",
            Route::MobileStart => "/mobile/start",
            Route::MobileComplete => "/mobile/complete",
            Route::Webhooks => "/webhooks",
        }
    }

    /// The method it answers.
    pub fn method(self) -> RouteMethod {
        match self {
            Route::Connect | Route::Callback | Route::Status => RouteMethod::Get,
            Route::Disconnect | Route::MobileStart | Route::MobileComplete | Route::Webhooks => {
                RouteMethod::Post
            }
        }
    }

    /// Whether it reads the request body (at most [`body_limit`](Self::body_limit) bytes
    /// are needed; an adapter reads one byte more, or passes a longer body, so the route
    /// answers 413). Other routes get an empty body.
    pub fn reads_body(self) -> bool {
        matches!(self, Route::MobileComplete | Route::Webhooks)
    }

    /// The largest body the route accepts, in bytes:
    /// [`MAX_MOBILE_BODY`](super::MAX_MOBILE_BODY) for [`Route::MobileComplete`],
    /// [`MAX_WEBHOOK_BODY`](crate::MAX_WEBHOOK_BODY) for [`Route::Webhooks`], 0 for the
    /// routes that read none.
    pub fn body_limit(self) -> usize {
        match self {
            Route::MobileComplete => super::MAX_MOBILE_BODY,
            Route::Webhooks => crate::MAX_WEBHOOK_BODY,
            _ => 0,
        }
    }
}

impl<F: Framework> Plugin<F> {
    /// Answers `route` for this request: reads the request facts and the user, then runs
    /// the route's function. `body` is the request body for [`Route::reads_body`], else
    /// empty.
    pub async fn serve(&self, route: Route, req: &F::Request, body: &[u8]) -> Reply {
        let info = RequestInfo::of::<F>(req);
        // Wise calls the webhook route, not a user: its signature is its authentication.
        let user = match route {
            Route::Webhooks => None,
            _ => self.user(req).await,
        };
        let (wise, user, mount, hooks) = (self.wise(), user.as_ref(), self.mount(), self.hooks());
        match route {
            Route::Webhooks => webhooks::webhooks(wise, &info, body).await,
            Route::Connect => routes::connect(wise, user, &info, mount, hooks).await,
            Route::Callback => routes::callback(wise, user, &info, mount, hooks).await,
            Route::Status => routes::status(wise, user, &info, mount, hooks).await,
            Route::Disconnect => routes::disconnect(wise, user, &info, mount, hooks).await,
            Route::MobileStart => routes::mobile_start(wise, user, &info, mount, hooks).await,
            Route::MobileComplete => {
                routes::mobile_complete(wise, user, &info, mount, hooks, body).await
            }
        }
    }
}
