//! How the app tells the plugin who the logged-in user is: a sync or an async function of
//! its framework's request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::framework::Framework;
use crate::UserId;

/// The future of an async resolver, boxed once per call.
pub(crate) type UserFuture = Pin<Box<dyn Future<Output = Option<UserId>> + Send + 'static>>;

/// A sync resolver over the framework's request.
type SyncFn<R> = dyn Fn(&R) -> Option<UserId> + Send + Sync + 'static;

/// An async resolver over the framework's request, its future boxed.
type AsyncFn<R> = dyn Fn(&R) -> UserFuture + Send + Sync + 'static;

/// The app's resolver. The sync form is a plain call on the hot path; only the async form
/// boxes its future.
pub(crate) enum Resolver<F: Framework> {
    /// A lookup in the request itself (an extension, a header of a trusted proxy).
    Sync(Arc<SyncFn<F::Request>>),
    /// A lookup that awaits (a session store).
    Async(Arc<AsyncFn<F::Request>>),
}

impl<F: Framework> Clone for Resolver<F> {
    fn clone(&self) -> Self {
        match self {
            Resolver::Sync(f) => Resolver::Sync(Arc::clone(f)),
            Resolver::Async(f) => Resolver::Async(Arc::clone(f)),
        }
    }
}

impl<F: Framework> Resolver<F> {
    pub(crate) fn sync<G>(resolve: G) -> Self
    where
        G: Fn(&F::Request) -> Option<UserId> + Send + Sync + 'static,
    {
        Resolver::Sync(Arc::new(resolve))
    }

    pub(crate) fn asynchronous<G, Fut>(resolve: G) -> Self
    where
        G: Fn(&F::Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<UserId>> + Send + 'static,
    {
        Resolver::Async(Arc::new(move |req| Box::pin(resolve(req)) as UserFuture))
    }
}
