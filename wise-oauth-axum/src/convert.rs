//! The core's reply as an axum response.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use wise_oauth_core::web::Reply;

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
