//! The ready-made routes and the plugin value that `WiseToken` reads from the router state.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http::request::Parts;
use wise_oauth_core::web::{Pages, Plugin, PluginBuilder, Route, RouteMethod, SetupError};
use wise_oauth_core::{UserId, WiseOAuth};

use crate::convert::response;
use crate::framework::Axum;

/// Configures the routes and the [`WisePlugin`] that [`WiseToken`](crate::WiseToken) reads
/// from the router state; build both from the same value so they agree on the prefix and
/// on how to find the user.
///
/// ```
/// # mod wise_oauth { pub use wise_oauth_core::*; pub mod axum { pub use wise_oauth_axum::*; } }
/// # fn demo(wise: wise_oauth::WiseOAuth) {
/// use axum::Router;
/// use wise_oauth::axum::WiseRoutes;
/// use wise_oauth::UserId;
///
/// #[derive(Clone)]
/// struct CurrentUser { id: String } // what your auth middleware inserts
///
/// let routes = WiseRoutes::new(wise)
///     .prefix("/integrations/wise")
///     .user_resolver(|parts| {
///         let user = parts.extensions.get::<CurrentUser>()?;
///         UserId::new(&user.id).ok()
///     });
/// let app: Router = Router::new().merge(routes.router()).with_state(routes.plugin());
/// # }
/// ```
#[must_use]
#[derive(Clone, Debug)]
pub struct WiseRoutes(PluginBuilder<Axum>);

impl WiseRoutes {
    /// Routes for this handle, under the prefix `/wise`, with the user taken from the
    /// [`WiseUser`](crate::WiseUser) request extension.
    pub fn new(wise: WiseOAuth) -> Self {
        WiseRoutes(PluginBuilder::new(wise))
    }

    /// The path prefix of the routes. Default `/wise`. `""` puts them at the root; otherwise
    /// it starts with `/` and has no trailing slash. The callback route
    /// (`{prefix}/callback`) must be the path of the configured redirect URI. Prefer this
    /// over `Router::nest`, so redirects into the link flow point at the right URL.
    /// An invalid prefix, or a callback route that is not the redirect URI's path, makes
    /// [`WiseRoutes::router`] panic (like an invalid axum route); [`WiseRoutes::check`]
    /// returns the same [`SetupError`].
    pub fn prefix(self, prefix: impl Into<String>) -> Self {
        WiseRoutes(self.0.prefix(prefix))
    }

    /// Tells the plugin how to find the logged-in user in a request head, e.g. from the
    /// extension your own auth middleware inserts. Return `None` for "not logged in".
    /// Default: the [`WiseUser`](crate::WiseUser) extension.
    pub fn user_resolver<F>(self, resolve: F) -> Self
    where
        F: Fn(&Parts) -> Option<UserId> + Send + Sync + 'static,
    {
        WiseRoutes(self.0.user_resolver(resolve))
    }

    /// [`WiseRoutes::user_resolver`] for a lookup that awaits, e.g. a session store: read
    /// what you need from the request head (a cookie) and return a future that owns it.
    /// A `WiseToken` extraction then boxes its work and copies the few request facts a
    /// rejection needs; with the sync resolver or the default, a cached token costs no
    /// allocation.
    ///
    /// ```
    /// # mod wise_oauth { pub use wise_oauth_core::*; pub mod axum { pub use wise_oauth_axum::*; } }
    /// # fn demo(wise: wise_oauth::WiseOAuth) {
    /// use std::collections::HashMap;
    /// use std::sync::Arc;
    /// use tokio::sync::RwLock;
    /// use wise_oauth::axum::WiseRoutes;
    /// use wise_oauth::UserId;
    ///
    /// // session id -> user id: your session store (a database, Redis, ...)
    /// let sessions: Arc<RwLock<HashMap<String, String>>> = Arc::default();
    /// let routes = WiseRoutes::new(wise).async_user_resolver(move |parts| {
    ///     let sid = parts.headers.get("cookie").and_then(|c| c.to_str().ok())
    ///         .and_then(|c| c.split("; ").find_map(|kv| kv.strip_prefix("sid=")))
    ///         .map(str::to_owned);
    ///     let sessions = sessions.clone();
    ///     async move {
    ///         let user = sessions.read().await.get(&sid?)?.clone();
    ///         UserId::new(user).ok()
    ///     }
    /// });
    /// # }
    /// ```
    pub fn async_user_resolver<F, Fut>(self, resolve: F) -> Self
    where
        F: Fn(&Parts) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Option<UserId>> + Send + 'static,
    {
        WiseRoutes(self.0.async_user_resolver(resolve))
    }

    /// Where a logged-out user logs in: a browser GET is redirected (303) there instead of
    /// getting the plugin's 401 page; `{return_to}` in it becomes the percent-encoded path
    /// to come back to (`/login?next={return_to}`). A local path or an absolute `http(s)`
    /// URL. Default: none (a 401 page linking to `/`). See
    /// [`Hooks::login_url`](wise_oauth_core::web::Hooks::login_url).
    pub fn login_url(self, url: impl Into<String>) -> Self {
        WiseRoutes(self.0.login_url(url))
    }

    /// On a declined or failed link, redirect the browser back into the app (the flow's
    /// `return_to` with `wise_error=<reason>`, e.g. `/settings?wise_error=access_denied`)
    /// instead of showing the plugin's error page. Default: off. See
    /// [`Hooks::error_redirect`](wise_oauth_core::web::Hooks::error_redirect).
    pub fn error_redirect(self, on: bool) -> Self {
        WiseRoutes(self.0.error_redirect(on))
    }

    /// Renders the plugin's HTML pages your way (branding, translation); see [`Pages`].
    /// Default: the plugin's own pages.
    pub fn pages(self, pages: impl Pages) -> Self {
        WiseRoutes(self.0.pages(pages))
    }

    /// The checks [`WiseRoutes::router`] makes, as a value: an invalid prefix or login URL,
    /// or a configured redirect URI whose path is not the callback route.
    ///
    /// ```
    /// # mod wise_oauth { pub use wise_oauth_core::*; pub mod axum { pub use wise_oauth_axum::*; } }
    /// # fn demo(wise: wise_oauth::WiseOAuth) -> Result<(), Box<dyn std::error::Error>> {
    /// use wise_oauth::axum::WiseRoutes;
    ///
    /// let wise_routes = WiseRoutes::new(wise).prefix("/integrations/wise");
    /// wise_routes.check()?; // before serving, in `main`
    /// # Ok(()) }
    /// ```
    pub fn check(&self) -> Result<(), SetupError> {
        self.0.check()
    }

    /// The routes, for `Router::merge`. Works with any app state `S`.
    ///
    /// # Panics
    ///
    /// When the settings are invalid (see [`WiseRoutes::check`]): the message names what to
    /// change, e.g. both paths when the redirect URI is not the callback route.
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let plugin = self.0.build();
        let routes = match plugin.routes() {
            Ok(routes) => routes.collect::<Vec<_>>(),
            Err(e) => panic!("wise-oauth-axum: {e}"),
        };
        let mut router = Router::new();
        for (route, path) in routes {
            let handler = move |state, request| serve(state, route, request);
            router = router.route(
                &path,
                match route.method() {
                    RouteMethod::Get => get(handler),
                    RouteMethod::Post => post(handler),
                },
            );
        }
        router.with_state(plugin)
    }

    /// The plugin, for the router state: [`WiseToken`](crate::WiseToken) takes it from
    /// there through [`FromRef`](axum::extract::FromRef). An app without state of its own
    /// ends its router with `.with_state(wise_routes.plugin())`; an app with state keeps a
    /// [`WisePlugin`] in it and implements `FromRef<AppState> for WisePlugin`.
    ///
    /// ```
    /// # mod wise_oauth { pub use wise_oauth_core::*; pub mod axum { pub use wise_oauth_axum::*; } }
    /// # fn demo(wise: wise_oauth::WiseOAuth) {
    /// use axum::extract::FromRef;
    /// use axum::Router;
    /// use wise_oauth::axum::{WisePlugin, WiseRoutes};
    ///
    /// #[derive(Clone)]
    /// struct AppState {
    ///     wise: WisePlugin,
    ///     greeting: &'static str, // the app's own state
    /// }
    ///
    /// impl FromRef<AppState> for WisePlugin {
    ///     fn from_ref(state: &AppState) -> Self {
    ///         state.wise.clone()
    ///     }
    /// }
    ///
    /// let wise_routes = WiseRoutes::new(wise);
    /// let state = AppState { wise: wise_routes.plugin(), greeting: "hello" };
    /// let app: Router = Router::new().merge(wise_routes.router()).with_state(state);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// When the prefix or the login URL is invalid (see [`WiseRoutes::check`]).
    pub fn plugin(&self) -> WisePlugin {
        WisePlugin(self.0.build())
    }
}

/// The routes with the defaults: `WiseRoutes::new(wise).router()`.
pub fn router<S>(wise: WiseOAuth) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    WiseRoutes::new(wise).router()
}

/// The plugin in the router state: what [`WiseToken`](crate::WiseToken) reads its
/// configuration from (see [`WiseRoutes::plugin`]). Cheap to clone.
///
/// A handler taking `WiseToken` on a router whose state gives no `WisePlugin` is a compile
/// error, not a 500 at run time:
///
/// ```compile_fail
/// # mod wise_oauth { pub use wise_oauth_core::*; pub mod axum { pub use wise_oauth_axum::*; } }
/// use axum::{routing::get, Router};
/// use wise_oauth::axum::WiseToken;
///
/// async fn balances(_token: WiseToken) {}
/// let app: Router = Router::new().route("/balances", get(balances)); // no WisePlugin state
/// ```
#[derive(Clone, Debug)]
pub struct WisePlugin(Arc<Plugin<Axum>>);

impl WisePlugin {
    pub(crate) fn into_inner(self) -> Arc<Plugin<Axum>> {
        self.0
    }
}

/// Every route: the body when the route reads one, then the core's answer.
async fn serve(
    State(plugin): State<Arc<Plugin<Axum>>>,
    route: Route,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = if route.reads_body() {
        // At most one byte more than allowed; the core answers 413 for anything longer.
        match axum::body::to_bytes(body, route.body_limit() + 1).await {
            Ok(bytes) => bytes,
            Err(_) => Bytes::from(vec![0; route.body_limit() + 1]),
        }
    } else {
        Bytes::new()
    };
    response(plugin.serve(route, &parts, &body).await)
}
