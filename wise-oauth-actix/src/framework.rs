//! actix-web, as the core's shared web code reads it.

use actix_web::http::uri::PathAndQuery;
use actix_web::http::Method;
use actix_web::{HttpMessage, HttpRequest};
use std::cell::Ref;
use wise_oauth_core::web::{Framework, WiseUser};
use wise_oauth_core::UserId;

/// actix-web, for the core's generic web types: a [`WiseToken`](crate::WiseToken)
/// dereferences to a [`LinkedToken<Actix>`](wise_oauth_core::web::LinkedToken). Requests
/// are read from the [`HttpRequest`].
#[derive(Debug)]
pub enum Actix {}

impl Framework for Actix {
    const ADAPTER: &'static str = "wise-oauth-actix";

    type Request = HttpRequest;
    type Method = Method;
    type PathAndQuery = PathAndQuery;
    /// actix-web lends its extensions inside a `Ref` guard: the id is read through it.
    type User<'r> = Ref<'r, UserId>;

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
    fn wise_user(req: &HttpRequest) -> Option<Ref<'_, UserId>> {
        Ref::filter_map(req.extensions(), |ext| {
            ext.get::<WiseUser>().map(WiseUser::id)
        })
        .ok()
    }
}
