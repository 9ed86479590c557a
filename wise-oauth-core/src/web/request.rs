//! What the routes need to know about a request, filled in by an adapter.

use super::framework::Framework;

/// The request facts the routes and rejections decide on: method, path and query, and the
/// few headers that matter (`Accept`, `Origin`, `Sec-Fetch-Site`, `X-Requested-With`,
/// `Content-Type`, `Cookie`, and Wise's webhook headers `X-Signature-SHA256`,
/// `X-Delivery-Id`, `X-Test-Notification`). Every other header is ignored; in particular
/// the user is never taken from a header.
///
/// ```
/// # mod wise_oauth { pub use wise_oauth_core::*; }
/// use wise_oauth::web::RequestInfo;
/// let mut req = RequestInfo::new("GET", "/balances?currency=EUR");
/// req.header("accept", b"text/html,application/xhtml+xml;q=0.9");
/// assert!(req.is_browser());
/// assert_eq!(req.path(), "/balances");
/// assert_eq!(req.raw_query(), "currency=EUR");
/// ```
///
/// `Debug` shows the path without its query (a callback's query carries the code and the
/// state) and the cookies' names only (the binding cookie's value binds a flow).
#[derive(Clone, Default)]
pub struct RequestInfo {
    method: String,
    path_and_query: String,
    accept: Vec<String>,
    origin: Vec<String>,
    sec_fetch_site: Vec<String>,
    x_requested_with: bool,
    content_type: Vec<String>,
    cookies: Vec<String>,
    webhook_signature: Vec<String>,
    delivery_id: Vec<String>,
    test_notification: Vec<String>,
}

impl std::fmt::Debug for RequestInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cookie_names: Vec<&str> = self
            .cookies
            .iter()
            .flat_map(|header| header.split(';'))
            .filter_map(|pair| pair.split_once('=').map(|(name, _)| name.trim()))
            .collect();
        f.debug_struct("RequestInfo")
            .field("method", &self.method)
            .field("path", &self.path())
            .field("has_query", &!self.raw_query().is_empty())
            .field("accept", &self.accept)
            .field("origin", &self.origin)
            .field("sec_fetch_site", &self.sec_fetch_site)
            .field("x_requested_with", &self.x_requested_with)
            .field("content_type", &self.content_type)
            .field("cookies", &cookie_names)
            .finish()
    }
}

impl RequestInfo {
    /// A request with this method and raw (still percent-encoded) path and query.
    pub fn new(method: &str, path_and_query: &str) -> Self {
        RequestInfo {
            method: method.to_ascii_uppercase(),
            path_and_query: path_and_query.to_owned(),
            ..RequestInfo::default()
        }
    }

    /// The facts of a framework's request: method, path and query as the browser sent
    /// them, and every header line (only the ones listed above are kept).
    pub fn of<F: Framework>(req: &F::Request) -> Self {
        let pq = F::path_and_query(req).map_or("/", F::path_and_query_str);
        let mut info = RequestInfo::new(F::method(req).as_ref(), pq);
        for (name, value) in F::headers(req) {
            info.header(name, value);
        }
        info
    }

    /// Records one header (call it once per header line; repeated names accumulate).
    /// Names are case-insensitive; values that are not UTF-8 are ignored.
    pub fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let Ok(value) = std::str::from_utf8(value) else {
            return self;
        };
        let value = value.trim().to_owned();
        match name.to_ascii_lowercase().as_str() {
            "accept" => self.accept.push(value),
            "origin" => self.origin.push(value),
            "sec-fetch-site" => self.sec_fetch_site.push(value),
            "x-requested-with" => self.x_requested_with = true,
            "content-type" => self.content_type.push(value),
            "cookie" => self.cookies.push(value),
            "x-signature-sha256" => self.webhook_signature.push(value),
            "x-delivery-id" => self.delivery_id.push(value),
            "x-test-notification" => self.test_notification.push(value),
            _ => {}
        }
        self
    }

    /// The method, upper case.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }

    /// The raw query string (without `?`, still percent-encoded; empty when absent).
    pub fn raw_query(&self) -> &str {
        self.path_and_query.split_once('?').map_or("", |(_, q)| q)
    }

    /// The path and query as received.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// Whether to answer like to a browser (redirects, HTML) rather than to an API client
    /// (JSON): `Accept` lists `text/html` (with a non-zero quality) and no
    /// `X-Requested-With` header is present.
    pub fn is_browser(&self) -> bool {
        !self.x_requested_with
            && self.accept.iter().flat_map(|a| a.split(',')).any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or("");
                media.eq_ignore_ascii_case("text/html")
                    && !parts.any(|p| {
                        p.split_once('=').is_some_and(|(k, v)| {
                            k.trim().eq_ignore_ascii_case("q")
                                && v.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
                        })
                    })
            })
    }

    /// Whether a state-changing request provably comes from the app's own pages (see the
    /// [module rules](crate::web)). `app_origin` is `scheme://host[:port]` of the
    /// configured redirect URI.
    pub fn is_same_origin(&self, app_origin: &str) -> bool {
        if !self.sec_fetch_site.is_empty() {
            return self.sec_fetch_site.len() == 1
                && self.sec_fetch_site[0].eq_ignore_ascii_case("same-origin")
                && self.origin_matches_if_present(app_origin);
        }
        if !self.origin.is_empty() {
            return self.origin_matches_if_present(app_origin);
        }
        self.x_requested_with || self.is_json_body()
    }

    fn origin_matches_if_present(&self, app_origin: &str) -> bool {
        match self.origin.as_slice() {
            [] => true,
            [one] => one.eq_ignore_ascii_case(app_origin),
            _ => false,
        }
    }

    /// Whether the body is declared as JSON (`application/json`, parameters allowed).
    pub fn is_json_body(&self) -> bool {
        matches!(self.content_type.as_slice(), [ct] if ct
            .split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")))
    }

    /// The `X-Signature-SHA256` header of a webhook delivery: `None` when absent or sent
    /// more than once (an ambiguous signature is no signature).
    pub(crate) fn webhook_signature(&self) -> Option<&str> {
        match self.webhook_signature.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// The `X-Delivery-Id` header (the first one).
    pub(crate) fn delivery_id(&self) -> Option<&str> {
        self.delivery_id.first().map(String::as_str)
    }

    /// Whether `X-Test-Notification: true` was sent.
    pub(crate) fn is_test_notification(&self) -> bool {
        self.test_notification
            .iter()
            .any(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The value of a cookie. When the browser sent several cookies with that name, the
    /// first one (the most specific path) wins.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .flat_map(|line| line.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.trim_matches('"'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_query_and_no_cookie_value() {
        let state = "S7aTeS7aTeS7aTeS7aTeS7aTeS7aTeS7aTeS7aTeS7a";
        let binding = "B1nD1nGB1nD1nGB1nD1nGB1nD1nGB1nD1nGB1nD1nG";
        let mut r = RequestInfo::new("GET", &format!("/wise/callback?code=CODE-X&state={state}"));
        r.header(
            "cookie",
            format!("demo_session=abc; __Host-wise_oauth_binding={binding}").as_bytes(),
        );
        let shown = format!("{r:?}");
        for secret in [state, binding, "CODE-X", "abc"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("/wise/callback"), "{shown}");
        assert!(shown.contains("__Host-wise_oauth_binding"), "{shown}");
    }

    fn req(headers: &[(&str, &str)]) -> RequestInfo {
        let mut r = RequestInfo::new("post", "/wise/disconnect");
        for (n, v) in headers {
            r.header(n, v.as_bytes());
        }
        r
    }

    const APP: &str = "http://127.0.0.1:3000";

    #[test]
    fn browser_detection() {
        assert!(req(&[("Accept", "text/html")]).is_browser());
        assert!(req(&[("accept", "application/json, TEXT/HTML;q=0.5")]).is_browser());
        assert!(!req(&[("accept", "text/html;q=0")]).is_browser());
        assert!(!req(&[("accept", "*/*")]).is_browser());
        assert!(!req(&[]).is_browser());
        assert!(!req(&[("accept", "text/html"), ("x-requested-with", "fetch")]).is_browser());
    }

    #[test]
    fn same_origin_rule() {
        assert!(req(&[("sec-fetch-site", "same-origin")]).is_same_origin(APP));
        assert!(req(&[("sec-fetch-site", "same-origin"), ("origin", APP)]).is_same_origin(APP));
        assert!(
            !req(&[("sec-fetch-site", "same-origin"), ("origin", "http://evil")])
                .is_same_origin(APP)
        );
        for site in ["cross-site", "same-site", "none", ""] {
            assert!(
                !req(&[("sec-fetch-site", site), ("x-requested-with", "x")]).is_same_origin(APP)
            );
        }
        assert!(req(&[("origin", APP)]).is_same_origin(APP));
        assert!(!req(&[("origin", "null")]).is_same_origin(APP));
        assert!(!req(&[("origin", "http://127.0.0.1:3000.evil.com")]).is_same_origin(APP));
        assert!(!req(&[("origin", APP), ("origin", "http://evil")]).is_same_origin(APP));
        assert!(!req(&[]).is_same_origin(APP));
        assert!(!req(&[("content-type", "application/x-www-form-urlencoded")]).is_same_origin(APP));
        assert!(!req(&[("content-type", "text/plain")]).is_same_origin(APP));
        assert!(req(&[("x-requested-with", "XMLHttpRequest")]).is_same_origin(APP));
        assert!(req(&[("content-type", "application/json; charset=utf-8")]).is_same_origin(APP));
    }

    #[test]
    fn cookies() {
        let r = req(&[
            ("cookie", "a=1; wise_oauth_binding=abc; b=2"),
            ("cookie", "wise_oauth_binding=zzz"),
        ]);
        assert_eq!(r.cookie("wise_oauth_binding"), Some("abc"));
        assert_eq!(r.cookie("c"), None);
        assert_eq!(r.raw_query(), "");
    }
}
