//! The plugin's settings, as an adapter's `WiseRoutes` collects them.

use std::fmt;
use std::sync::Arc;

use super::framework::Framework;
use super::mount::{Mount, DEFAULT_PREFIX};
use super::plugin::{Plugin, Resolver, ResolverDebug};
use crate::{UserId, WiseOAuth};

/// The settings of a [`Plugin`]: the handle, the route prefix and how to find the user.
/// An adapter's `WiseRoutes` wraps it and builds the routes and the extractor's plugin
/// from the same value, so they agree.
#[must_use]
pub struct PluginBuilder<F: Framework> {
    wise: WiseOAuth,
    prefix: String,
    resolver: Option<Resolver<F>>,
}

impl<F: Framework> Clone for PluginBuilder<F> {
    fn clone(&self) -> Self {
        PluginBuilder {
            wise: self.wise.clone(),
            prefix: self.prefix.clone(),
            resolver: self.resolver.clone(),
        }
    }
}

impl<F: Framework> fmt::Debug for PluginBuilder<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginBuilder")
            .field("prefix", &self.prefix)
            .field("user", &ResolverDebug(self.resolver.is_some()))
            .finish_non_exhaustive()
    }
}

impl<F: Framework> PluginBuilder<F> {
    /// The defaults: prefix [`DEFAULT_PREFIX`], the user from the
    /// [`WiseUser`](super::WiseUser) request extension.
    pub fn new(wise: WiseOAuth) -> Self {
        PluginBuilder {
            wise,
            prefix: DEFAULT_PREFIX.to_owned(),
            resolver: None,
        }
    }

    /// The path prefix of the routes (checked by [`PluginBuilder::build`], see
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
        self.resolver = Some(Arc::new(resolve));
        self
    }

    /// The plugin.
    ///
    /// # Panics
    ///
    /// When the prefix is invalid, like an invalid route pattern of the framework.
    pub fn build(&self) -> Arc<Plugin<F>> {
        let mount = match Mount::new(&self.prefix) {
            Ok(mount) => mount,
            Err(e) => panic!("{}: invalid prefix {:?}: {e}", F::ADAPTER, self.prefix),
        };
        Arc::new(Plugin::new(self.wise.clone(), mount, self.resolver.clone()))
    }
}
