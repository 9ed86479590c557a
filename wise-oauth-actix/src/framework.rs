//! actix-web, as the core's shared web code reads it.

use std::sync::Arc;

use actix_web::http::header::{HeaderName, HeaderValue, ACCEPT};
use actix_web::http::uri::PathAndQuery;
use actix_web::http::Method;
use actix_web::{web, HttpMessage, HttpRequest};
use wise_oauth_core::web::{Framework, Plugin, WiseUser};
use wise_oauth_core::UserId;

/// actix-web, for the core's generic web types: a [`WiseToken`](crate::WiseToken)
/// dereferences to a [`LinkedToken<Actix>`](wise_oauth_core::web::LinkedToken). Requests
/// are read from the [`HttpRequest`].
#[derive(Debug)]
pub enum Actix {}

const X_REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");

impl Framework for Actix {
    const ADAPTER: &'static str = "wise-oauth-actix";
    const NOT_SET_UP_HINT: &'static str = "WiseToken needs the plugin's app data: add \
        `.configure(|cfg| wise_routes.configure(cfg))` (wise_oauth_actix::WiseRoutes::configure) \
        to the App";

    type Request = HttpRequest;
    type Method = Method;
    type PathAndQuery = PathAndQuery;
    type HeaderValue = HeaderValue;

    #[inline]
    fn method(req: &HttpRequest) -> &Method {
        req.method()
    }

    /// actix-web keeps the full original URI even inside a scope.
    #[inline]
    fn path_and_query(req: &HttpRequest) -> Option<&PathAndQuery> {
        req.uri().path_and_query()
    }

    #[inline]
    fn path_and_query_str(pq: &PathAndQuery) -> &str {
        pq.as_str()
    }

    #[inline]
    fn headers(req: &HttpRequest) -> impl Iterator<Item = (&str, &[u8])> {
        req.headers()
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
    }

    #[inline]
    fn accept(req: &HttpRequest) -> impl Iterator<Item = &HeaderValue> {
        req.headers().get_all(ACCEPT)
    }

    #[inline]
    fn has_x_requested_with(req: &HttpRequest) -> bool {
        req.headers().contains_key(X_REQUESTED_WITH)
    }

    /// Registered as `web::Data` by [`WiseRoutes::configure`](crate::WiseRoutes::configure).
    #[inline]
    fn plugin(req: &HttpRequest) -> Option<&Arc<Plugin<Actix>>> {
        req.app_data::<web::Data<Plugin<Actix>>>()
            .map(|data| &**data)
    }

    #[inline]
    fn wise_user(req: &HttpRequest) -> Option<UserId> {
        req.extensions().get::<WiseUser>().map(|u| u.id().clone())
    }
}
