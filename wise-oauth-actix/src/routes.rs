//! The ready-made routes, mounted through `App::configure`, and the plugin's app data.

use actix_web::http::header::ALLOW;
use actix_web::{guard, web, HttpRequest, HttpResponse};
use futures::StreamExt as _;
use wise_oauth_core::web::{Plugin, PluginBuilder, Route, RouteMethod};
use wise_oauth_core::{UserId, WiseOAuth};

use crate::convert::response;
use crate::framework::Actix;

/// Configures the routes and the app data [`WiseToken`](crate::WiseToken) reads; one
/// [`WiseRoutes::configure`] call on the `App` sets up both, so they agree on the prefix
/// and on how to find the user.
///
/// ```
/// # fn demo(wise: wise_oauth_core::WiseOAuth) {
/// use actix_web::{App, HttpMessage, HttpServer};
/// use wise_oauth_actix::WiseRoutes;
/// use wise_oauth_core::UserId;
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
    /// right URL. An invalid prefix makes [`WiseRoutes::configure`] panic (like an invalid
    /// actix-web route pattern).
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

    /// Mounts the routes and registers the plugin as app data, for
    /// `App::new().configure(|cfg| wise_routes.configure(cfg))`. Call it on the `App`
    /// itself (not only inside a `web::scope`), so [`WiseToken`](crate::WiseToken) finds
    /// the plugin on all your routes; without it the extractor answers 500 with a hint.
    ///
    /// # Panics
    ///
    /// When the prefix is invalid.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let plugin = web::Data::from(self.0.build());
        cfg.app_data(plugin.clone());
        for (route, path) in plugin.routes() {
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
