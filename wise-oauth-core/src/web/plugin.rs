//! The plugin handle the routes and the extractor share.

use std::fmt;
use std::sync::Arc;

use super::framework::Framework;
use super::mount::Mount;
use super::route::Route;
use crate::{UserId, WiseOAuth};

/// How the app tells the plugin who the logged-in user is, from its framework's request.
pub(crate) type Resolver<F> =
    Arc<dyn Fn(&<F as Framework>::Request) -> Option<UserId> + Send + Sync + 'static>;

/// What an adapter's routes and its `WiseToken` extractor share: the handle, the mount and
/// how to find the user. Built by a [`PluginBuilder`](super::PluginBuilder); an adapter
/// keeps it in its framework's app state (axum: the router state through `FromRef`,
/// actix-web: app data), where its `WiseToken` extractor finds it.
pub struct Plugin<F: Framework> {
    wise: WiseOAuth,
    mount: Mount,
    resolver: Option<Resolver<F>>,
}

impl<F: Framework> Plugin<F> {
    pub(crate) fn new(wise: WiseOAuth, mount: Mount, resolver: Option<Resolver<F>>) -> Self {
        Plugin {
            wise,
            mount,
            resolver,
        }
    }

    /// The handle.
    pub fn wise(&self) -> &WiseOAuth {
        &self.wise
    }

    /// Where the routes live.
    pub fn mount(&self) -> &Mount {
        &self.mount
    }

    /// The logged-in user of a request: the app's resolver when it registered one,
    /// otherwise the [`WiseUser`](super::WiseUser) extension. `None`: not logged in.
    pub fn user(&self, req: &F::Request) -> Option<UserId> {
        match &self.resolver {
            Some(resolve) => resolve(req),
            None => F::wise_user(req),
        }
    }

    /// The full path of each route under the mount, in [`Route::ALL`] order, for the
    /// adapter to register. Logs a warning when the callback route is not the path of the
    /// configured redirect URI (Wise would send the user elsewhere).
    pub fn routes(&self) -> impl Iterator<Item = (Route, String)> + '_ {
        let callback = self.mount.path(Route::Callback.path());
        if let Ok(uri) = self.wise.config().redirect_uri().parse::<http::Uri>() {
            if uri.path() != callback {
                tracing::warn!(
                    adapter = F::ADAPTER,
                    route = %callback,
                    redirect_uri_path = uri.path(),
                    "wise-oauth: the callback route is not the path of the configured redirect URI"
                );
            }
        }
        Route::ALL
            .into_iter()
            .map(|route| (route, self.mount.path(route.path())))
    }
}

impl<F: Framework> fmt::Debug for Plugin<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("mount", &self.mount)
            .field("user", &ResolverDebug(self.resolver.is_some()))
            .finish_non_exhaustive()
    }
}

/// Debug for the resolver slot without printing the closure.
pub(crate) struct ResolverDebug(pub(crate) bool);

impl fmt::Debug for ResolverDebug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 {
            "custom"
        } else {
            "WiseUser extension"
        })
    }
}
