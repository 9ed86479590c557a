//! The ready-made routes, mounted through `App::configure`, and the plugin's app data.

use std::fmt;
use std::sync::Arc;

use actix_web::http::Uri;
use actix_web::{guard, web, HttpRequest, HttpResponse};
use futures::StreamExt as _;
use wise_oauth_core::web::{self as core_web, Mount, RequestInfo, MAX_MOBILE_BODY};
use wise_oauth_core::{UserId, WiseOAuth};

use crate::convert::{request_info, response};
use crate::user::{from_extension, Resolver, ResolverDebug};

/// What the routes and the extractor share: the handle, the mount and the user resolver.
/// Registered as `web::Data<Plugin>` app data.
pub(crate) struct Plugin {
    pub(crate) wise: WiseOAuth,
    pub(crate) mount: Mount,
    resolver: Option<Resolver>,
}

impl Plugin {
    pub(crate) fn user(&self, req: &HttpRequest) -> Option<UserId> {
        match &self.resolver {
            Some(resolve) => resolve(req),
            None => from_extension(req),
        }
    }
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("mount", &self.mount)
            .field("user", &ResolverDebug(&self.resolver))
            .finish_non_exhaustive()
    }
}

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
#[derive(Clone)]
pub struct WiseRoutes {
    wise: WiseOAuth,
    prefix: String,
    resolver: Option<Resolver>,
}

impl fmt::Debug for WiseRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WiseRoutes")
            .field("prefix", &self.prefix)
            .field("user", &ResolverDebug(&self.resolver))
            .finish_non_exhaustive()
    }
}

impl WiseRoutes {
    /// Routes for this handle, under the prefix `/wise`, with the user taken from the
    /// [`WiseUser`](crate::WiseUser) request extension.
    pub fn new(wise: WiseOAuth) -> Self {
        WiseRoutes {
            wise,
            prefix: core_web::DEFAULT_PREFIX.to_owned(),
            resolver: None,
        }
    }

    /// The path prefix of the routes. Default `/wise`. `""` puts them at the root; otherwise
    /// it starts with `/` and has no trailing slash. The callback route
    /// (`{prefix}/callback`) must be the path of the configured redirect URI. Prefer this
    /// over mounting inside a `web::scope`, so redirects into the link flow point at the
    /// right URL. An invalid prefix makes [`WiseRoutes::configure`] panic (like an invalid
    /// actix-web route pattern).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Tells the plugin how to find the logged-in user in a request, e.g. from the
    /// extension your own auth middleware inserts, or from `actix-identity` /
    /// `actix-session` (both read a `&HttpRequest`). Return `None` for "not logged in".
    /// Default: the [`WiseUser`](crate::WiseUser) extension.
    pub fn user_resolver<F>(mut self, resolve: F) -> Self
    where
        F: Fn(&HttpRequest) -> Option<UserId> + Send + Sync + 'static,
    {
        self.resolver = Some(Arc::new(resolve));
        self
    }

    fn plugin(&self) -> web::Data<Plugin> {
        let mount = match Mount::new(&self.prefix) {
            Ok(mount) => mount,
            Err(e) => panic!("wise-oauth-actix: invalid prefix {:?}: {e}", self.prefix),
        };
        web::Data::new(Plugin {
            wise: self.wise.clone(),
            mount,
            resolver: self.resolver.clone(),
        })
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
        let plugin = self.plugin();
        let m = &plugin.mount;
        let callback = m.path("/callback");
        if let Ok(uri) = plugin.wise.config().redirect_uri().parse::<Uri>() {
            if uri.path() != callback {
                tracing::warn!(
                    route = %callback,
                    redirect_uri_path = uri.path(),
                    "wise-oauth-actix: the callback route is not the path of the configured redirect URI"
                );
            }
        }
        // Like axum's `get`, GET routes also answer HEAD; other methods get the same 405
        // as axum (the method guard sits on the route, not on the resource, so the path
        // still matches).
        let get = || web::route().guard(guard::Any(guard::Get()).or(guard::Head()));
        // actix-web routes on the path with unreserved `%XX` escapes decoded; axum does
        // not. The guard keeps the two alike: `/wise/%73tatus` is a 404 in both. (The raw
        // path only has to end with the route, so mounting inside a scope still works.)
        let resource = |path: String, allow: &'static str| {
            let literal = path.clone();
            web::resource(path)
                .guard(guard::fn_guard(move |ctx| {
                    ctx.head().uri.path().ends_with(literal.as_str())
                }))
                .app_data(plugin.clone())
                .default_service(web::to(move || method_not_allowed(allow)))
        };
        let (g, p) = ("GET,HEAD", "POST");
        cfg.app_data(plugin.clone())
            .service(resource(m.path("/connect"), g).route(get().to(connect)))
            .service(resource(callback, g).route(get().to(callback_route)))
            .service(resource(m.path("/status"), g).route(get().to(status)))
            .service(resource(m.path("/disconnect"), p).route(web::post().to(disconnect)))
            .service(resource(m.path("/mobile/start"), p).route(web::post().to(mobile_start)))
            .service(
                resource(m.path("/mobile/complete"), p).route(web::post().to(mobile_complete)),
            );
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
        .insert_header((actix_web::http::header::ALLOW, allow))
        .finish()
}

type Shared = web::Data<Plugin>;

fn head(req: &HttpRequest, plugin: &Plugin) -> (RequestInfo, Option<UserId>) {
    (request_info(req), plugin.user(req))
}

async fn connect(p: Shared, req: HttpRequest) -> HttpResponse {
    let (info, user) = head(&req, &p);
    response(core_web::connect(&p.wise, user.as_ref(), &info, &p.mount).await)
}

async fn callback_route(p: Shared, req: HttpRequest) -> HttpResponse {
    let (info, user) = head(&req, &p);
    response(core_web::callback(&p.wise, user.as_ref(), &info, &p.mount).await)
}

async fn status(p: Shared, req: HttpRequest) -> HttpResponse {
    let (info, user) = head(&req, &p);
    response(core_web::status(&p.wise, user.as_ref(), &info).await)
}

async fn disconnect(p: Shared, req: HttpRequest) -> HttpResponse {
    let (info, user) = head(&req, &p);
    response(core_web::disconnect(&p.wise, user.as_ref(), &info, &p.mount).await)
}

async fn mobile_start(p: Shared, req: HttpRequest) -> HttpResponse {
    let (info, user) = head(&req, &p);
    response(core_web::mobile_start(&p.wise, user.as_ref(), &info).await)
}

async fn mobile_complete(p: Shared, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let (info, user) = head(&req, &p);
    // Read at most one chunk past the limit; the core answers 413 for anything longer.
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        match chunk {
            Ok(chunk) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_MOBILE_BODY {
                    break;
                }
            }
            Err(_) => {
                body = web::BytesMut::zeroed(MAX_MOBILE_BODY + 1);
                break;
            }
        }
    }
    response(core_web::mobile_complete(&p.wise, user.as_ref(), &info, &body).await)
}
