//! Translating between axum requests/responses and the framework-neutral web types.

use axum::body::Body;
use axum::extract::OriginalUri;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use wise_oauth_core::web::{Reply, RequestInfo};

/// The request facts for the core, from the request head. Uses the original URI when the
/// router is nested, so paths in redirects are the ones the browser saw.
pub(crate) fn request_info(parts: &Parts) -> RequestInfo {
    let uri = original_uri(parts);
    let pq = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let mut info = RequestInfo::new(parts.method.as_str(), pq);
    for (name, value) in &parts.headers {
        info.header(name.as_str(), value.as_bytes());
    }
    info
}

/// The URI the browser sent (before any `Router::nest` stripped a prefix).
pub(crate) fn original_uri(parts: &Parts) -> &http::Uri {
    parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |o| &o.0)
}

/// The core's reply as an axum response, verbatim.
pub(crate) fn response(reply: Reply) -> Response {
    let mut res = Response::new(Body::from(reply.body.into_bytes()));
    *res.status_mut() = reply.status;
    let headers = res.headers_mut();
    for (name, value) in reply.headers {
        headers.append(name, value);
    }
    res.into_response()
}
