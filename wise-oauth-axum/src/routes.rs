//! The ready-made routes and the layer that lets `WiseToken` find the plugin.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http::request::Parts;
use wise_oauth_core::web::{Plugin, PluginBuilder, Route, RouteMethod, MAX_MOBILE_BODY};
use wise_oauth_core::{UserId, WiseOAuth};

use crate::convert::response;
use crate::framework::Axum;

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
    /// An invalid prefix makes [`WiseRoutes::router`] panic (like an invalid axum route).
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

    /// The routes, for `Router::merge`. Works with any app state `S`.
    ///
    /// # Panics
    ///
    /// When the prefix is invalid.
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let plugin = self.0.build();
        let mut router = Router::new();
        for (route, path) in plugin.routes() {
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

    /// The layer that lets [`WiseToken`](crate::WiseToken) find the plugin on your own
    /// routes. Without it, the extractor answers 500 with a hint.
    ///
    /// # Panics
    ///
    /// When the prefix is invalid.
    pub fn layer(&self) -> WiseLayer {
        WiseLayer(self.0.build())
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
pub struct WiseLayer(Arc<Plugin<Axum>>);

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
    plugin: Arc<Plugin<Axum>>,
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

/// Every route: the body when the route reads one, then the core's answer.
async fn serve(
    State(plugin): State<Arc<Plugin<Axum>>>,
    route: Route,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = if route.reads_body() {
        // At most one byte more than allowed; the core answers 413 for anything longer.
        match axum::body::to_bytes(body, MAX_MOBILE_BODY + 1).await {
            Ok(bytes) => bytes,
            Err(_) => Bytes::from(vec![0; MAX_MOBILE_BODY + 1]),
        }
    } else {
        Bytes::new()
    };
    response(plugin.serve(route, &parts, &body).await)
}
