//! The ready-made routes, mounted through `App::configure`, and the plugin's app data.

use actix_web::http::header::ALLOW;
use actix_web::{guard, web, HttpRequest, HttpResponse};
use futures::StreamExt as _;
use wise_oauth_core::web::{Pages, Plugin, PluginBuilder, Route, RouteMethod, SetupError};
use wise_oauth_core::{UserId, WiseOAuth};

use crate::convert::response;
use crate::framework::Actix;

/// Configures the routes and the app data [`WiseToken`](crate::WiseToken) reads; one
/// [`WiseRoutes::configure`] call on the `App` sets up both, so they agree on the prefix
/// and on how to find the user.
///
/// ```
/// # mod wise_oauth { pub use wise_oauth_core::*; pub mod actix { pub use wise_oauth_actix::*; } }
/// # fn demo(wise: wise_oauth::WiseOAuth) {
/// use actix_web::{App, HttpMessage, HttpServer};
/// use wise_oauth::actix::WiseRoutes;
/// use wise_oauth::UserId;
///
/// #[derive(Clone)]
/// struct CurrentUser { id: String } // what your auth middleware inserts
///
/// let routes = WiseRoutes::new(wise)
///     .prefix("/integrations/wise")
///     .user_resolver(|req| {
///         let user = req.extensions().get::<CurrentUser>()?.clone();
///         UserId::new(&user.id).ok()
///     });
/// let server = HttpServer::new(move || App::new().configure(|cfg| routes.configure(cfg)));
/// # }
/// ```
#[must_use]
#[derive(Clone, Debug)]
pub struct WiseRoutes(PluginBuilder<Actix>);

impl WiseRoutes {
    /// Routes for this handle, under the prefix `/wise`, with the user taken from the
    /// [`WiseUser`](crate::WiseUser) request extension.
    pub fn new(wise: WiseOAuth) -> Self {
        Self(PluginBuilder::new(wise))
    }

    /// The path prefix of the routes. Default `/wise`. `""` puts them at the root; otherwise
    /// it starts with `/` and has no trailing slash. The callback route
    /// (`{prefix}/callback`) must be the path of the configured redirect URI. Prefer this
    /// over mounting inside a `web::scope`, so redirects into the link flow point at the
    /// right URL. An invalid prefix, or a callback route that is not the redirect URI's
    /// path, makes [`WiseRoutes::configure`] panic (like an invalid actix-web route
    /// pattern); [`WiseRoutes::check`] returns the same [`SetupError`].
    pub fn prefix(self, prefix: impl Into<String>) -> Self {
        Self(self.0.prefix(prefix))
    }

    /// Tells the plugin how to find the logged-in user in a request, e.g. from the
    /// extension your own auth middleware inserts, or from `actix-identity` /
    /// `actix-session` (both read a `&HttpRequest`). Return `None` for "not logged in".
    /// Default: the [`WiseUser`](crate::WiseUser) extension.
    pub fn user_resolver<F>(self, resolve: F) -> Self
    where
        F: Fn(&HttpRequest) -> Option<UserId> + Send + Sync + 'static,
    {
        Self(self.0.user_resolver(resolve))
    }

    /// [`WiseRoutes::user_resolver`] for a lookup that awaits, e.g. a session store: read
    /// what you need from the request (a cookie) and return a future that owns it. A
    /// `WiseToken` extraction then boxes its work and copies the few request facts a
    /// rejection needs; with the sync resolver or the default, a cached token costs no
    /// allocation.
    ///
    /// ```
    /// # mod wise_oauth { pub use wise_oauth_core::*; pub mod actix { pub use wise_oauth_actix::*; } }
    /// # fn demo(wise: wise_oauth::WiseOAuth) {
    /// use std::collections::HashMap;
    /// use std::sync::Arc;
    /// use tokio::sync::RwLock;
    /// use wise_oauth::actix::WiseRoutes;
    /// use wise_oauth::UserId;
    ///
    /// // session id -> user id: your session store (a database, Redis, ...)
    /// let sessions: Arc<RwLock<HashMap<String, String>>> = Arc::default();
    /// let routes = WiseRoutes::new(wise).async_user_resolver(move |req| {
    ///     let sid = req.cookie("sid").map(|c| c.value().to_owned());
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
        F: Fn(&HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Option<UserId>> + Send + 'static,
    {
        Self(self.0.async_user_resolver(resolve))
    }

    /// Where a logged-out user logs in: a browser GET is redirected (303) there instead of
    /// getting the plugin's 401 page; `{return_to}` in it becomes the percent-encoded path
    /// to come back to (`/login?next={return_to}`). A local path or an absolute `http(s)`
    /// URL. Default: none (a 401 page linking to `/`). See
    /// [`Hooks::login_url`](wise_oauth_core::web::Hooks::login_url).
    pub fn login_url(self, url: impl Into<String>) -> Self {
        Self(self.0.login_url(url))
    }

    /// On a declined or failed link, redirect the browser back into the app (the flow's
    /// `return_to` with `wise_error=<reason>`, e.g. `/settings?wise_error=access_denied`)
    /// instead of showing the plugin's error page. Default: off. See
    /// [`Hooks::error_redirect`](wise_oauth_core::web::Hooks::error_redirect).
    pub fn error_redirect(self, on: bool) -> Self {
        Self(self.0.error_redirect(on))
    }

    /// Renders the plugin's HTML pages your way (branding, translation); see [`Pages`].
    /// Default: the plugin's own pages.
    pub fn pages(self, pages: impl Pages) -> Self {
        Self(self.0.pages(pages))
    }

    /// The checks [`WiseRoutes::configure`] makes, as a value: an invalid prefix or login
    /// URL, or a configured redirect URI whose path is not the callback route. Call it in
    /// `main` before `HttpServer::new`: `configure` runs inside each worker's app factory,
    /// so its panic surfaces in the worker threads rather than as an error of `main`.
    ///
    /// ```
    /// # mod wise_oauth { pub use wise_oauth_core::*; pub mod actix { pub use wise_oauth_actix::*; } }
    /// # fn demo(wise: wise_oauth::WiseOAuth) -> std::io::Result<()> {
    /// use wise_oauth::actix::WiseRoutes;
    ///
    /// let wise_routes = WiseRoutes::new(wise).prefix("/integrations/wise");
    /// wise_routes.check()?; // a SetupError converts into std::io::Error
    /// # Ok(()) }
    /// ```
    pub fn check(&self) -> Result<(), SetupError> {
        self.0.check()
    }

    /// Mounts the routes and registers the plugin as app data, for
    /// `App::new().configure(|cfg| wise_routes.configure(cfg))`. Call it on the `App`
    /// itself (not only inside a `web::scope`), so [`WiseToken`](crate::WiseToken) finds
    /// the plugin on all your routes; without it the extractor answers 500 with a hint.
    ///
    /// # Panics
    ///
    /// When the settings are invalid (see [`WiseRoutes::check`]): the message names what to
    /// change, e.g. both paths when the redirect URI is not the callback route.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let plugin = web::Data::from(self.0.build());
        let routes = match plugin.routes() {
            Ok(routes) => routes.collect::<Vec<_>>(),
            Err(e) => panic!("wise-oauth-actix: {e}"),
        };
        cfg.app_data(plugin.clone());
        for (route, path) in routes {
            // Like axum's `get`, GET routes also answer HEAD; other methods get the same
            // 405 as axum (the method guard sits on the route, not on the resource, so the
            // path still matches).
            let (method, allow) = match route.method() {
                RouteMethod::Get => (guard::Any(guard::Get()).or(guard::Head()), "GET,HEAD"),
                RouteMethod::Post => (guard::Any(guard::Post()), "POST"),
            };
            // actix-web routes on the path with unreserved `%XX` escapes decoded; axum
            // does not. The guard keeps the two alike: `/wise/%73tatus` is a 404 in both.
            // (The raw path only has to end with the route, so mounting inside a scope
            // still works.)
            let literal = path.clone();
            let raw_path = guard::fn_guard(move |ctx| ctx.head().uri.path().ends_with(&literal));
            let handler = move |plugin, req, payload| serve(plugin, route, req, payload);
            cfg.service(
                web::resource(path)
                    .guard(raw_path)
                    .app_data(plugin.clone())
                    .default_service(web::to(move || method_not_allowed(allow)))
                    .route(web::route().guard(method).to(handler)),
            );
        }
    }
}

/// The routes with the defaults, for `App::new().configure(routes(wise.clone()))`:
/// `WiseRoutes::new(wise).configure(cfg)`.
pub fn routes(wise: WiseOAuth) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| WiseRoutes::new(wise).configure(cfg)
}

/// 405 with the `Allow` value axum sends.
async fn method_not_allowed(allow: &'static str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((ALLOW, allow))
        .finish()
}

/// Every route: the body when the route reads one, then the core's answer.
async fn serve(
    plugin: web::Data<Plugin<Actix>>,
    route: Route,
    req: HttpRequest,
    mut payload: web::Payload,
) -> HttpResponse {
    let mut body = web::BytesMut::new();
    // Read at most one chunk past the limit; the core answers 413 for anything longer.
    while route.reads_body() && body.len() <= route.body_limit() {
        match payload.next().await {
            Some(Ok(chunk)) => body.extend_from_slice(&chunk),
            Some(Err(_)) => body = web::BytesMut::zeroed(route.body_limit() + 1),
            None => break,
        }
    }
    response(plugin.serve(route, &req, &body).await)
}
