//! axum, as the core's shared web code reads it.

use axum::extract::OriginalUri;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::Method;
use wise_oauth_core::web::{Framework, WiseUser};
use wise_oauth_core::UserId;

/// axum, for the core's generic web types: a [`WiseToken`](crate::WiseToken) dereferences
/// to a [`LinkedToken<Axum>`](wise_oauth_core::web::LinkedToken). Requests are read from
/// their head ([`Parts`]).
#[derive(Debug)]
pub enum Axum {}

impl Framework for Axum {
    const ADAPTER: &'static str = "wise-oauth-axum";

    type Request = Parts;
    type Method = Method;
    type PathAndQuery = PathAndQuery;
    type User<'r> = &'r UserId;

    #[inline]
    fn method(req: &Parts) -> &Method {
        &req.method
    }

    /// From the original URI when the router is nested (`Router::nest` strips a prefix).
    #[inline]
    fn path_and_query(req: &Parts) -> Option<&PathAndQuery> {
        req.extensions
            .get::<OriginalUri>()
            .map_or(&req.uri, |o| &o.0)
            .path_and_query()
    }

    #[inline]
    fn path_and_query_str(pq: &PathAndQuery) -> &str {
        pq.as_str()
    }

    #[inline]
    fn headers(req: &Parts) -> impl Iterator<Item = (&str, &[u8])> {
        req.headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
    }

    #[inline]
    fn wise_user(req: &Parts) -> Option<&UserId> {
        req.extensions.get::<WiseUser>().map(WiseUser::id)
    }
}
