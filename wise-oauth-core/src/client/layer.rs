//! A tower layer that authorizes requests of any tower HTTP client stack as a linked user,
//! with the same one retry after a 401 as [`WiseClient`](super::WiseClient).

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

use super::call::bearer;
use crate::ids::{LinkKey, UserId};
use crate::store::BoxError;
use crate::wise::WiseOAuth;

/// Adds `Authorization: Bearer <the user's current token>` to every request and, when the
/// answer is a 401, asks the token manager for a newer token and sends the request once
/// more (a 401 means Wise did not process it). For apps that bring their own tower HTTP
/// client; the request body must be `Clone` so that it can be sent again, and the
/// repeated request carries the method, URI, version and headers of the first (not its
/// extensions).
///
/// Errors are boxed (tower's convention): the inner service's, or a
/// [`TokenError`](crate::TokenError) when no valid token exists (not linked, re-link
/// required, ...). The answer to the repeated request is returned as is, a second 401
/// included.
///
/// ```
/// use tower::Layer as _;
/// use wise_oauth_core::{UserId, WiseAuthLayer, WiseOAuth};
///
/// fn authorize<S>(wise: &WiseOAuth, user: &UserId, http_client: S) -> wise_oauth_core::WiseAuthService<S> {
///     WiseAuthLayer::new(wise, user).layer(http_client)
/// }
/// ```
#[derive(Clone)]
pub struct WiseAuthLayer {
    wise: WiseOAuth,
    user: UserId,
    key: LinkKey,
}

impl fmt::Debug for WiseAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WiseAuthLayer")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl WiseAuthLayer {
    /// Authorizes as `user`'s link.
    pub fn new(wise: &WiseOAuth, user: &UserId) -> Self {
        Self {
            key: wise.link_key(user),
            wise: wise.clone(),
            user: user.clone(),
        }
    }
}

impl<S> Layer<S> for WiseAuthLayer {
    type Service = WiseAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WiseAuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of a [`WiseAuthLayer`].
#[derive(Clone)]
pub struct WiseAuthService<S> {
    inner: S,
    layer: WiseAuthLayer,
}

impl<S> fmt::Debug for WiseAuthService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WiseAuthService")
            .field("user", &self.layer.user)
            .finish_non_exhaustive()
    }
}

impl<S, B, RB> Service<Request<B>> for WiseAuthService<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Clone + Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The ready clone serves this call; `self.inner` takes the fresh one.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let layer = self.layer.clone();
        Box::pin(async move {
            let manager = &layer.wise.manager();
            let token = manager.token_for(&layer.user, || layer.key.clone()).await?;
            let again = copy(&req);
            let mut first = req;
            first.headers_mut().insert(AUTHORIZATION, bearer(&token)?);
            let resp = inner.call(first).await.map_err(Into::into)?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            drop(resp);
            let newer = manager
                .token_after_unauthorized(&layer.key, token.access_token())
                .await?;
            let mut second = again;
            second.headers_mut().insert(AUTHORIZATION, bearer(&newer)?);
            poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            inner.call(second).await.map_err(Into::into)
        })
    }
}

/// The request again: method, URI, version, headers and body.
fn copy<B: Clone>(req: &Request<B>) -> Request<B> {
    let mut out = Request::new(req.body().clone());
    *out.method_mut() = req.method().clone();
    *out.uri_mut() = req.uri().clone();
    *out.version_mut() = req.version();
    *out.headers_mut() = req.headers().clone();
    out
}
