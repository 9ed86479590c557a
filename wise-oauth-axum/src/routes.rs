//! The ready-made routes and the layer that lets `WiseToken` find the plugin.

use std::fmt;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http::request::Parts;
use wise_oauth_core::web::{self, Mount, RequestInfo, MAX_MOBILE_BODY};
use wise_oauth_core::{UserId, WiseOAuth};

use crate::convert::{request_info, response};
use crate::user::{from_extension, Resolver, ResolverDebug};

/// What the routes and the extractor share: the handle, the mount and the user resolver.
pub(crate) struct Plugin {
    pub(crate) wise: WiseOAuth,
    pub(crate) mount: Mount,
    resolver: Option<Resolver>,
}

impl Plugin {
    pub(crate) fn user(&self, parts: &Parts) -> Option<UserId> {
        match &self.resolver {
            Some(resolve) => resolve(parts),
            None => from_extension(parts),
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

/// Configures the routes and the [`WiseToken`](crate::WiseToken) layer; build both from
/// the same value so they agree on the prefix and on how to find the user.
///
/// ```
/// # fn demo(wise: wise_oauth_core::WiseOAuth) {
/// use axum::Router;
/// use wise_oauth_axum::WiseRoutes;
/// use wise_oauth_core::UserId;
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
/// let app: Router = Router::new().merge(routes.router()).layer(routes.layer());
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
            prefix: web::DEFAULT_PREFIX.to_owned(),
            resolver: None,
        }
    }

    /// The path prefix of the routes. Default `/wise`. `""` puts them at the root; otherwise
    /// it starts with `/` and has no trailing slash. The callback route
    /// (`{prefix}/callback`) must be the path of the configured redirect URI. Prefer this
    /// over `Router::nest`, so redirects into the link flow point at the right URL.
    /// An invalid prefix makes [`WiseRoutes::router`] panic (like an invalid axum route).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Tells the plugin how to find the logged-in user in a request head, e.g. from the
    /// extension your own auth middleware inserts. Return `None` for "not logged in".
    /// Default: the [`WiseUser`](crate::WiseUser) extension.
    pub fn user_resolver<F>(mut self, resolve: F) -> Self
    where
        F: Fn(&Parts) -> Option<UserId> + Send + Sync + 'static,
    {
        self.resolver = Some(Arc::new(resolve));
        self
    }

    fn plugin(&self) -> Arc<Plugin> {
        let mount = match Mount::new(&self.prefix) {
            Ok(mount) => mount,
            Err(e) => panic!("wise-oauth-axum: invalid prefix {:?}: {e}", self.prefix),
        };
        Arc::new(Plugin {
            wise: self.wise.clone(),
            mount,
            resolver: self.resolver.clone(),
        })
    }

    /// The routes, for `Router::merge`. Works with any app state `S`.
    ///
    /// # Panics
    ///
    /// When the prefix is invalid.
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let plugin = self.plugin();
        let m = &plugin.mount;
        let callback = m.path("/callback");
        if let Ok(uri) = plugin.wise.config().redirect_uri().parse::<http::Uri>() {
            if uri.path() != callback {
                tracing::warn!(
                    route = %callback,
                    redirect_uri_path = uri.path(),
                    "wise-oauth-axum: the callback route is not the path of the configured redirect URI"
                );
            }
        }
        Router::new()
            .route(&m.path("/connect"), get(connect))
            .route(&callback, get(callback_route))
            .route(&m.path("/status"), get(status))
            .route(&m.path("/disconnect"), post(disconnect))
            .route(&m.path("/mobile/start"), post(mobile_start))
            .route(&m.path("/mobile/complete"), post(mobile_complete))
            .with_state(plugin)
    }

    /// The layer that lets [`WiseToken`](crate::WiseToken) find the plugin on your own
    /// routes. Without it, the extractor answers 500 with a hint.
    ///
    /// # Panics
    ///
    /// When the prefix is invalid.
    pub fn layer(&self) -> WiseLayer {
        WiseLayer(self.plugin())
    }
}

/// The routes with the defaults: `WiseRoutes::new(wise).router()`.
pub fn router<S>(wise: WiseOAuth) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    WiseRoutes::new(wise).router()
}

/// The extractor layer with the defaults: `WiseRoutes::new(wise).layer()`.
pub fn layer(wise: WiseOAuth) -> WiseLayer {
    WiseRoutes::new(wise).layer()
}

/// A tower layer that makes the plugin available to [`WiseToken`](crate::WiseToken);
/// from [`WiseRoutes::layer`].
#[derive(Clone, Debug)]
pub struct WiseLayer(Arc<Plugin>);

impl<S> tower::Layer<S> for WiseLayer {
    type Service = WiseService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WiseService {
            inner,
            plugin: self.0.clone(),
        }
    }
}

/// The service [`WiseLayer`] wraps around the app's routes.
#[derive(Clone, Debug)]
pub struct WiseService<S> {
    inner: S,
    plugin: Arc<Plugin>,
}

impl<S, B> tower::Service<http::Request<B>> for WiseService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.plugin.clone());
        self.inner.call(req)
    }
}

type Shared = State<Arc<Plugin>>;

fn head(parts: &Parts, plugin: &Plugin) -> (RequestInfo, Option<UserId>) {
    (request_info(parts), plugin.user(parts))
}

async fn connect(State(p): Shared, parts: Parts) -> Response {
    let (req, user) = head(&parts, &p);
    response(web::connect(&p.wise, user.as_ref(), &req, &p.mount).await)
}

async fn callback_route(State(p): Shared, parts: Parts) -> Response {
    let (req, user) = head(&parts, &p);
    response(web::callback(&p.wise, user.as_ref(), &req, &p.mount).await)
}

async fn status(State(p): Shared, parts: Parts) -> Response {
    let (req, user) = head(&parts, &p);
    response(web::status(&p.wise, user.as_ref(), &req).await)
}

async fn disconnect(State(p): Shared, parts: Parts) -> Response {
    let (req, user) = head(&parts, &p);
    response(web::disconnect(&p.wise, user.as_ref(), &req, &p.mount).await)
}

async fn mobile_start(State(p): Shared, parts: Parts) -> Response {
    let (req, user) = head(&parts, &p);
    response(web::mobile_start(&p.wise, user.as_ref(), &req).await)
}

async fn mobile_complete(State(p): Shared, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let (req, user) = head(&parts, &p);
    // Read at most one byte more than allowed; the core answers 413 for anything longer.
    let body = match axum::body::to_bytes(body, MAX_MOBILE_BODY + 1).await {
        Ok(bytes) => bytes,
        Err(_) => Bytes::from(vec![0; MAX_MOBILE_BODY + 1]),
    };
    response(web::mobile_complete(&p.wise, user.as_ref(), &req, &body).await)
}
