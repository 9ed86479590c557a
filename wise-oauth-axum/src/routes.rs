//! The ready-made routes and the plugin value that `WiseToken` reads from the router state.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http::request::Parts;
use wise_oauth_core::web::{Plugin, PluginBuilder, Route, RouteMethod};
use wise_oauth_core::{UserId, WiseOAuth};

use crate::convert::response;
use crate::framework::Axum;

/// Configures the routes and the [`WisePlugin`] that [`WiseToken`](crate::WiseToken) reads
/// from the router state; build both from the same value so they agree on the prefix and
/// on how to find the user.
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

    /// The plugin, for the router state: [`WiseToken`](crate::WiseToken) takes it from
    /// there through [`FromRef`](axum::extract::FromRef). An app without state of its own
    /// ends its router with `.with_state(wise_routes.plugin())`; an app with state keeps a
    /// [`WisePlugin`] in it and implements `FromRef<AppState> for WisePlugin`.
    ///
    /// ```
    /// # fn demo(wise: wise_oauth_core::WiseOAuth) {
    /// use axum::extract::FromRef;
    /// use axum::Router;
    /// use wise_oauth_axum::{WisePlugin, WiseRoutes};
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
    /// When the prefix is invalid.
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
/// use axum::{routing::get, Router};
/// use wise_oauth_axum::WiseToken;
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
