//! The plugin's settings, as an adapter's `WiseRoutes` collects them.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::framework::Framework;
use super::hooks::Hooks;
use super::mount::{Mount, DEFAULT_PREFIX};
use super::pages::Pages;
use super::plugin::{Plugin, ResolverDebug};
use super::resolver::Resolver;
use super::setup::SetupError;
use crate::{UserId, WiseOAuth};

/// The settings of a [`Plugin`]: the handle, the route prefix, how to find the user and
/// the app's [`Hooks`]. An adapter's `WiseRoutes` wraps it and builds the routes and the
/// extractor's plugin from the same value, so they agree.
#[must_use]
pub struct PluginBuilder<F: Framework> {
    wise: WiseOAuth,
    prefix: String,
    resolver: Option<Resolver<F>>,
    login_url: Option<String>,
    hooks: Hooks,
}

impl<F: Framework> Clone for PluginBuilder<F> {
    fn clone(&self) -> Self {
        PluginBuilder {
            wise: self.wise.clone(),
            prefix: self.prefix.clone(),
            resolver: self.resolver.clone(),
            login_url: self.login_url.clone(),
            hooks: self.hooks.clone(),
        }
    }
}

impl<F: Framework> fmt::Debug for PluginBuilder<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginBuilder")
            .field("prefix", &self.prefix)
            .field("user", &ResolverDebug(self.resolver.as_ref()))
            .field("login_url", &self.login_url)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl<F: Framework> PluginBuilder<F> {
    /// The defaults: prefix [`DEFAULT_PREFIX`], the user from the
    /// [`WiseUser`](super::WiseUser) request extension, [`Hooks::default`].
    pub fn new(wise: WiseOAuth) -> Self {
        PluginBuilder {
            wise,
            prefix: DEFAULT_PREFIX.to_owned(),
            resolver: None,
            login_url: None,
            hooks: Hooks::default(),
        }
    }

    /// The path prefix of the routes (checked by [`PluginBuilder::try_build`], see
    /// [`Mount::new`]). Default [`DEFAULT_PREFIX`].
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How to find the logged-in user in a request; `None` means "not logged in".
    /// Default: the [`WiseUser`](super::WiseUser) extension.
    pub fn user_resolver<G>(mut self, resolve: G) -> Self
    where
        G: Fn(&F::Request) -> Option<UserId> + Send + Sync + 'static,
    {
        self.resolver = Some(Resolver::sync(resolve));
        self
    }

    /// [`PluginBuilder::user_resolver`] for a lookup that awaits (a session store): the
    /// function reads what it needs from the request (a cookie) and returns a future that
    /// owns it. Replaces a sync resolver. An extraction then boxes its work and copies the
    /// few request facts a rejection needs; with the sync form or the default, a cached
    /// token costs no allocation ([`LinkedToken::extract`](super::LinkedToken::extract)).
    pub fn async_user_resolver<G, Fut>(mut self, resolve: G) -> Self
    where
        G: Fn(&F::Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<UserId>> + Send + 'static,
    {
        self.resolver = Some(Resolver::asynchronous(resolve));
        self
    }

    /// Where a logged-out user logs in (checked by [`PluginBuilder::try_build`]); see
    /// [`Hooks::login_url`]. Default: none (a 401 page linking to `/`).
    pub fn login_url(mut self, url: impl Into<String>) -> Self {
        self.login_url = Some(url.into());
        self
    }

    /// Whether a declined or failed link goes back into the app; see
    /// [`Hooks::error_redirect`]. Default: off.
    pub fn error_redirect(mut self, on: bool) -> Self {
        self.hooks = self.hooks.error_redirect(on);
        self
    }

    /// How the plugin's HTML pages look; see [`Pages`]. Default:
    /// [`DefaultPages`](super::DefaultPages).
    pub fn pages(mut self, pages: impl Pages) -> Self {
        self.hooks = self.hooks.pages(pages);
        self
    }

    /// The plugin, or what is wrong with the settings (the prefix, the login URL). The
    /// redirect URI is checked against the routes when they are mounted
    /// ([`Plugin::routes`]); [`PluginBuilder::check`] checks everything.
    pub fn try_build(&self) -> Result<Arc<Plugin<F>>, SetupError> {
        let mount = Mount::new(&self.prefix).map_err(|source| SetupError::InvalidPrefix {
            prefix: self.prefix.clone(),
            source,
        })?;
        let hooks = match &self.login_url {
            Some(url) => self.hooks.clone().login_url(url.as_str())?,
            None => self.hooks.clone(),
        };
        Ok(Arc::new(Plugin::new(
            self.wise.clone(),
            mount,
            self.resolver.clone(),
            hooks,
        )))
    }

    /// Every check the mounted routes make: [`PluginBuilder::try_build`], then the
    /// redirect URI against the callback route ([`Plugin::routes`]).
    pub fn check(&self) -> Result<(), SetupError> {
        self.try_build()?.routes().map(|_| ())
    }

    /// The plugin.
    ///
    /// # Panics
    ///
    /// When the settings are invalid ([`PluginBuilder::try_build`]), like an invalid route
    /// pattern of the framework.
    pub fn build(&self) -> Arc<Plugin<F>> {
        match self.try_build() {
            Ok(plugin) => plugin,
            Err(e) => panic!("{}: {e}", F::ADAPTER),
        }
    }
}
