//! The plugin handle the routes and the extractor share.

use std::fmt;
use std::ops::Deref;

use super::framework::Framework;
use super::hooks::Hooks;
use super::mount::Mount;
use super::resolver::{Resolver, UserFuture};
use super::route::Route;
use super::setup::{check_callback, SetupError};
use crate::{UserId, WiseOAuth};

/// What an adapter's routes and its `WiseToken` extractor share: the handle, the mount,
/// how to find the user and the app's [`Hooks`]. Built by a
/// [`PluginBuilder`](super::PluginBuilder); an adapter keeps it in its framework's app
/// state (axum: the router state through `FromRef`, actix-web: app data), where its
/// `WiseToken` extractor finds it.
pub struct Plugin<F: Framework> {
    wise: WiseOAuth,
    mount: Mount,
    resolver: Option<Resolver<F>>,
    hooks: Hooks,
}

impl<F: Framework> Plugin<F> {
    pub(crate) fn new(
        wise: WiseOAuth,
        mount: Mount,
        resolver: Option<Resolver<F>>,
        hooks: Hooks,
    ) -> Self {
        Plugin {
            wise,
            mount,
            resolver,
            hooks,
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

    /// The app's hooks into the plugin's answers.
    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// The logged-in user of a request: the app's resolver (sync or async) when it
    /// registered one, otherwise the [`WiseUser`](super::WiseUser) extension. `None`: not
    /// logged in. Only an async resolver allocates (its boxed future).
    pub async fn user(&self, req: &F::Request) -> Option<UserId> {
        match self.user_now(req) {
            Ok(user) => user.map(CurrentUser::into_owned),
            Err(pending) => pending.await,
        }
    }

    /// The user when it is known without waiting (the extension, a sync resolver), else
    /// the async resolver's future.
    #[inline]
    pub(crate) fn user_now<'r>(
        &self,
        req: &'r F::Request,
    ) -> Result<Option<CurrentUser<'r, F>>, UserFuture> {
        match &self.resolver {
            None => Ok(F::wise_user(req).map(CurrentUser::Lent)),
            Some(Resolver::Sync(resolve)) => Ok(resolve(req).map(CurrentUser::Owned)),
            Some(Resolver::Async(resolve)) => Err(resolve(req)),
        }
    }

    /// The full path of each route under the mount, in [`Route::ALL`] order, for the
    /// adapter to register.
    ///
    /// # Errors
    ///
    /// [`SetupError::CallbackMismatch`] when the callback route is not the path of the
    /// configured redirect URI: Wise would send every user to a path with no route.
    pub fn routes(&self) -> Result<impl Iterator<Item = (Route, String)> + '_, SetupError> {
        check_callback(
            self.wise.config().redirect_uri(),
            &self.mount.path(Route::Callback.path()),
        )?;
        Ok(Route::ALL
            .into_iter()
            .map(|route| (route, self.mount.path(route.path()))))
    }
}

/// The user of a request as [`Plugin::user_now`] knows it: lent by the framework (the
/// `WiseUser` extension) or given by a sync resolver.
pub(crate) enum CurrentUser<'r, F: Framework> {
    Lent(F::User<'r>),
    Owned(UserId),
}

impl<F: Framework> CurrentUser<'_, F> {
    /// The id, cloned only when it was lent.
    pub(crate) fn into_owned(self) -> UserId {
        match self {
            CurrentUser::Lent(user) => UserId::clone(&user),
            CurrentUser::Owned(user) => user,
        }
    }
}

impl<F: Framework> Deref for CurrentUser<'_, F> {
    type Target = UserId;

    #[inline]
    fn deref(&self) -> &UserId {
        match self {
            CurrentUser::Lent(user) => user,
            CurrentUser::Owned(user) => user,
        }
    }
}

impl<F: Framework> fmt::Debug for Plugin<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("mount", &self.mount)
            .field("user", &ResolverDebug(self.resolver.as_ref()))
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

/// Debug for the resolver slot without printing the closure.
pub(crate) struct ResolverDebug<'a, F: Framework>(pub(crate) Option<&'a Resolver<F>>);

impl<F: Framework> fmt::Debug for ResolverDebug<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            None => "WiseUser extension",
            Some(Resolver::Sync(_)) => "custom",
            Some(Resolver::Async(_)) => "custom (async)",
        })
    }
}
