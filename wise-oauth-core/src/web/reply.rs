//! The framework-neutral response an adapter translates.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, REFERRER_POLICY, RETRY_AFTER};
use http::{HeaderName, HeaderValue, StatusCode};

/// The body of a [`Reply`]. Its content type is already among [`Reply::headers`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// No body.
    Empty,
    /// A small HTML page (`text/html; charset=utf-8`).
    Html(String),
    /// A JSON document (`application/json`).
    Json(String),
}

impl Body {
    /// The body bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Body::Empty => Vec::new(),
            Body::Html(s) | Body::Json(s) => s.into_bytes(),
        }
    }

    /// The body as text (empty for [`Body::Empty`]).
    pub fn as_str(&self) -> &str {
        match self {
            Body::Empty => "",
            Body::Html(s) | Body::Json(s) => s,
        }
    }
}

/// A complete HTTP answer: status, headers (content type included) and body.
///
/// Adapters copy it into their framework's response verbatim; `Set-Cookie` may appear
/// several times.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The headers, in order; names may repeat (`Set-Cookie`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: Body,
}

impl Reply {
    fn new(status: StatusCode, body: Body) -> Self {
        let mut reply = Reply {
            status,
            headers: Vec::new(),
            body,
        };
        match &reply.body {
            Body::Empty => {}
            Body::Html(_) => reply.push(CONTENT_TYPE, "text/html; charset=utf-8"),
            Body::Json(_) => reply.push(CONTENT_TYPE, "application/json"),
        }
        reply
    }

    pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Self {
        Reply::new(status, Body::Json(value.to_string())).no_store()
    }

    pub(crate) fn html(status: StatusCode, page: String) -> Self {
        Reply::new(status, Body::Html(page)).no_store()
    }

    /// `303 See Other` to `location`; the caller guarantees it is a safe URL.
    pub(crate) fn see_other(location: &str) -> Self {
        let mut reply = Reply::new(StatusCode::SEE_OTHER, Body::Empty);
        reply.push(LOCATION, location);
        reply.no_store()
    }

    /// Adds a header whose value is known to be valid; an invalid one is dropped (never
    /// panics) and logged.
    pub(crate) fn push(&mut self, name: HeaderName, value: &str) {
        match HeaderValue::from_str(value) {
            Ok(v) => self.headers.push((name, v)),
            Err(_) => tracing::warn!(header = %name, "wise-oauth: dropped an invalid header value"),
        }
    }

    pub(crate) fn with(mut self, name: HeaderName, value: &str) -> Self {
        self.push(name, value);
        self
    }

    fn no_store(self) -> Self {
        self.with(CACHE_CONTROL, "no-store")
    }

    pub(crate) fn no_referrer(self) -> Self {
        self.with(REFERRER_POLICY, "no-referrer")
    }

    pub(crate) fn retry_after(self, seconds: u64) -> Self {
        self.with(RETRY_AFTER, &seconds.to_string())
    }

    /// The first value of a header, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.to_str().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_header_values_are_dropped_not_panicking() {
        let reply = Reply::see_other("/a\r\nSet-Cookie: x=1");
        assert_eq!(reply.header("location"), None);
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }

    #[test]
    fn json_and_html_carry_their_content_type() {
        let reply = Reply::json(StatusCode::OK, &serde_json::json!({"a": 1}));
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.body.as_str(), r#"{"a":1}"#);
        let reply = Reply::html(StatusCode::OK, "<p>x</p>".into());
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8")
        );
    }
}
