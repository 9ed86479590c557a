//! The framework-neutral response an adapter translates.

use std::fmt;

use http::header::{
    CACHE_CONTROL, CONTENT_TYPE, LOCATION, REFERRER_POLICY, RETRY_AFTER, SET_COOKIE,
};
use http::{HeaderName, HeaderValue, StatusCode};

/// The body of a [`Reply`]. Its content type is already among [`Reply::headers`].
///
/// `Debug` shows the kind and length only (a body may carry a state, as the mobile start's
/// JSON does).
#[derive(Clone, PartialEq, Eq)]
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

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Html(s) => write!(f, "Html({} bytes)", s.len()),
            Body::Json(s) => write!(f, "Json({} bytes)", s.len()),
        }
    }
}

/// A complete HTTP answer: status, headers (content type included) and body.
///
/// Adapters copy it into their framework's response verbatim; `Set-Cookie` may appear
/// several times.
///
/// `Debug` redacts what may carry a secret: the value of every `Set-Cookie` (the browser
/// binding), the query of a `Location` (the authorize URL's `state`) and the body.
#[derive(Clone)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The headers, in order; names may repeat (`Set-Cookie`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: Body,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Headers<'a>(&'a [(HeaderName, HeaderValue)]);
        impl fmt::Debug for Headers<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut list = f.debug_list();
                for (name, value) in self.0 {
                    let text = value.to_str().unwrap_or("[not text]");
                    let shown = if *name == SET_COOKIE {
                        // The name and attributes, never the value.
                        let (cookie, rest) = text.split_once(';').unwrap_or((text, ""));
                        let cookie_name = cookie.split_once('=').map_or(cookie, |(n, _)| n);
                        format!("{cookie_name}=[redacted];{rest}")
                    } else if *name == LOCATION {
                        match text.split_once(['?', '#']) {
                            Some((before, _)) => format!("{before}?[redacted]"),
                            None => text.to_owned(),
                        }
                    } else {
                        text.to_owned()
                    };
                    list.entry(&(name.as_str(), shown));
                }
                list.finish()
            }
        }
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("headers", &Headers(&self.headers))
            .field("body", &self.body)
            .finish()
    }
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

    /// `303 See Other` to `location`: an absolute `http(s)` URL with a host (Wise's
    /// authorization page) or a same-origin path with one leading `/`. Anything else (a
    /// protocol-relative `//host`, a backslash, a scheme such as `javascript:`, control
    /// characters) is replaced by `/`.
    pub(crate) fn see_other(location: &str) -> Self {
        let location = if location.starts_with('/') || !is_absolute_web_url(location) {
            crate::flow::local_or_root(location)
        } else {
            location
        };
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

/// An absolute `http`/`https` URL with a host, written in its normal form.
fn is_absolute_web_url(location: &str) -> bool {
    url::Url::parse(location).is_ok_and(|url| {
        matches!(url.scheme(), "https" | "http") && url.host().is_some() && url.as_str() == location
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_header_values_are_dropped_not_panicking() {
        let reply = Reply::see_other("/a\r\nSet-Cookie: x=1");
        assert_eq!(reply.header("location"), Some("/"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        assert_eq!(reply.headers.len(), 2, "no header was split off");
        let mut reply = Reply::see_other("/");
        reply.push(LOCATION, "/a\r\nSet-Cookie: x=1");
        assert_eq!(reply.headers.len(), 2, "an invalid value is dropped");
    }

    #[test]
    fn a_location_is_a_local_path_or_an_absolute_web_url() {
        for hostile in [
            "//evil.com",
            "///evil.com",
            "/\\evil.com",
            "\\/evil.com",
            "/%2F%2Fevil.com",
            "javascript:alert(1)",
            "http:evil.com",
            "evil.com",
            "https:/evil.com",
        ] {
            assert_eq!(
                Reply::see_other(hostile).header("location"),
                Some("/"),
                "{hostile}"
            );
        }
        for kept in [
            "/",
            "/settings?tab=1",
            "https://sandbox.transferwise.tech/oauth/authorize?client_id=a&state=b",
            "http://127.0.0.1:3000/x",
        ] {
            assert_eq!(Reply::see_other(kept).header("location"), Some(kept));
        }
    }

    #[test]
    fn debug_shows_no_cookie_value_state_or_body() {
        let state = "S7aTeS7aTeS7aTeS7aTeS7aTeS7aTeS7aTeS7aTeS7a";
        let binding = "B1nD1nGB1nD1nGB1nD1nGB1nD1nGB1nD1nGB1nD1nG";
        let reply = Reply::see_other(&format!(
            "https://wise.com/oauth/authorize?client_id=c&state={state}"
        ))
        .with(
            SET_COOKIE,
            &format!("__Host-wise_oauth_binding={binding}; Path=/; Secure"),
        );
        let json = Reply::json(StatusCode::OK, &serde_json::json!({ "state": state }));
        for shown in [
            format!("{reply:?}"),
            format!("{json:?}"),
            format!("{:?}", json.body),
        ] {
            assert!(!shown.contains(state), "{shown}");
            assert!(!shown.contains(binding), "{shown}");
        }
        let shown = format!("{reply:?}");
        assert!(
            shown.contains("__Host-wise_oauth_binding=[redacted]; Path=/; Secure"),
            "{shown}"
        );
        assert!(
            shown.contains("https://wise.com/oauth/authorize?[redacted]"),
            "{shown}"
        );
        assert!(shown.contains("303"), "{shown}");
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
