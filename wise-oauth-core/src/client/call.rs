//! One call through the client: the token, the request, the one retry after a 401, and
//! the bounded retries of safe methods.

use crate::metrics::WiseEndpoint;
use std::future::{ready, Future, Ready};
use std::time::Duration;

use futures::future::Either;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use tracing::field::Empty;
use tracing::instrument::Instrumented;
use tracing::{Instrument as _, Span};
use url::Url;

use super::error::ClientError;
use super::response::WiseResponse;
use super::{WiseClient, MAX_RESPONSE_BYTES};
use crate::endpoint::http::{read_bounded_to, trace_id, CORRELATION_HEADER};
use crate::endpoint::retry::{backoff, parse_retry_after, MAX_HONOURED_RETRY_AFTER};
use crate::endpoint::{CorrelationId, WiseError};
use crate::manager::ValidToken;

/// The header that carries an approved SCA one-time token.
pub(crate) const APPROVAL_HEADER: &str = "x-2fa-approval";
/// [`APPROVAL_HEADER`] as a header name, parsed at compile time.
const APPROVAL: HeaderName = HeaderName::from_static(APPROVAL_HEADER);
/// [`CORRELATION_HEADER`] as a header name, parsed at compile time.
const CORRELATION: HeaderName = HeaderName::from_static(CORRELATION_HEADER);
/// The time budget of one logical call's retries (the 401 retry aside).
pub(crate) const CALL_RETRY_BUDGET: Duration = Duration::from_secs(10);

/// A request, checked and ready to be sent (again).
pub(super) struct Prepared<'p> {
    method: Method,
    path: &'p str,
    body: Option<Bytes>,
    operation: &'static str,
}

impl<'p> Prepared<'p> {
    /// Checks `path`: absolute, visible ASCII, no fragment, no `.` or `..` segment (so the
    /// call stays under the API base URL).
    pub(super) fn new(
        method: Method,
        path: &'p str,
        body: Option<Bytes>,
        operation: &'static str,
    ) -> Result<Self, ClientError> {
        if !valid_path(path) {
            return Err(ClientError::InvalidRequest {
                reason:
                    "the path must be absolute, visible ASCII, without fragment or dot segments",
            });
        }
        Ok(Self {
            method,
            path,
            body,
            operation,
        })
    }
}

/// The base URL with `path` (checked by [`valid_path`], with its query) under its own
/// path: the base is parsed once, a call parses only its path and query. The same URL as
/// parsing `{base}{path}` (see the tests).
pub(crate) fn url_under(base: &Url, path: &str) -> Url {
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    };
    let mut url = base.clone();
    match base.path() {
        "/" => url.set_path(path),
        prefix => url.set_path(&format!("{}{path}", prefix.trim_end_matches('/'))),
    }
    url.set_query(query);
    url
}

/// The checks of [`Prepared::new`]: absolute, visible ASCII, no fragment or backslash, no
/// dot segment before the query.
pub(crate) fn valid_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.get(1) == Some(&b'/') {
        return false;
    }
    // One pass: the bytes, and each path segment as it ends (the query has none).
    let mut segment = 1;
    let mut in_query = false;
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        if !b.is_ascii_graphic() || b == b'#' || b == b'\\' {
            return false;
        }
        if !in_query && (b == b'/' || b == b'?') {
            if dot_segment(&bytes[segment..i]) {
                return false;
            }
            segment = i + 1;
            in_query = b == b'?';
        }
    }
    in_query || !dot_segment(&bytes[segment..])
}

/// `.` or `..`, each dot maybe percent-encoded (`%2e`, `.%2E`, ...): the segments a URL
/// parser resolves away.
fn dot_segment(segment: &[u8]) -> bool {
    fn after_dot(s: &[u8]) -> Option<&[u8]> {
        s.strip_prefix(b".").or_else(|| {
            s.get(..3)
                .filter(|p| p.eq_ignore_ascii_case(b"%2e"))
                .map(|_| &s[3..])
        })
    }
    after_dot(segment).is_some_and(|rest| rest.is_empty() || after_dot(rest) == Some(&[]))
}

/// The correlation id of a call: the client's own (see [`WiseClient::with_correlation_id`])
/// or a fresh one.
enum Correlation<'a> {
    Given(&'a HeaderValue),
    Fresh(CorrelationId),
}

impl Correlation<'_> {
    /// The header value of one attempt.
    fn header_value(&self) -> HeaderValue {
        match self {
            Correlation::Given(id) => (*id).clone(),
            Correlation::Fresh(id) => id.header_value(),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Correlation::Given(id) => id.to_str().unwrap_or(""),
            Correlation::Fresh(id) => id.as_str(),
        }
    }
}

/// The call's `wise_oauth.api_call` span, or none when no subscriber wants it: nothing to
/// enter, record or log per poll then. Tracing's own first check (the level enabled
/// anywhere) is made before the macro, which would otherwise evaluate the fields for the
/// `log` crate while no subscriber is set.
fn call_span(req: &Prepared<'_>, correlation: &Correlation<'_>) -> Span {
    if tracing::Level::INFO > tracing::level_filters::STATIC_MAX_LEVEL
        || tracing::Level::INFO > tracing::level_filters::LevelFilter::current()
    {
        return Span::none();
    }
    let span = tracing::info_span!(
        "wise_oauth.api_call",
        operation = req.operation,
        method = %req.method,
        path = req.path.split('?').next().unwrap_or(""),
        correlation_id = correlation.as_str(),
        attempt = Empty,
        status = Empty,
        trace_id = Empty,
    );
    if span.is_disabled() {
        Span::none()
    } else {
        span
    }
}

/// A call's future: the call, or its error found before anything was sent.
type Call<'a, F> = Either<Instrumented<F>, Ready<Result<WiseResponse, ClientError>>>;

// Every step is a plain fn that does its synchronous part at once and returns the future
// of the rest, rather than an `async fn`: an `async fn` keeps its arguments twice in its
// future (as given, and moved into its body), and a call's future is what every call
// writes, moves and polls. The rare paths (a 401's new token, a retry's wait) are boxed.
impl WiseClient {
    /// `req`'s call: checked, given its correlation id and its `wise_oauth.api_call` span.
    pub(super) fn execute<'a>(
        &'a self,
        req: Result<Prepared<'a>, ClientError>,
    ) -> Call<'a, impl Future<Output = Result<WiseResponse, ClientError>> + 'a> {
        let req = match req {
            Ok(req) => req,
            Err(e) => return Either::Right(ready(Err(e))),
        };
        let correlation = match &self.correlation_id {
            Some(id) => Correlation::Given(id),
            None => Correlation::Fresh(CorrelationId::new()),
        };
        let span = call_span(&req, &correlation);
        Either::Left(self.run(req, correlation, span.clone()).instrument(span))
    }

    /// The attempts: the 401 repeated once with a newer token, safe methods within the
    /// retry budget.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would hold its arguments twice in the call's future"
    )]
    fn run<'a>(
        &'a self,
        req: Prepared<'a>,
        correlation: Correlation<'a>,
        span: Span,
    ) -> impl Future<Output = Result<WiseResponse, ClientError>> + 'a {
        async move {
            let manager = &self.manager;
            let mut token = manager.token_for(&self.user, || self.key.clone()).await?;
            let mut reauthorized = false;
            let mut started = None;
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                span.record("attempt", attempt);
                let sent = self.attempt(&req, &token, &correlation, &span);
                // The answer is classified before anything else is awaited: the response
                // is not kept in the call's future beside the awaits below.
                let err = match crate::metrics::timed(WiseEndpoint::Api, sent).await {
                    Ok(resp) if resp.status().is_success() => return Ok(resp),
                    Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => None,
                    Ok(resp) => Some(classify(&resp, manager.clock().now())),
                    Err(err) => Some(err),
                };
                let Some(err) = err else {
                    if reauthorized {
                        tracing::warn!("Wise answered 401 to the newer token too");
                        return Err(WiseError::Unauthorized.into());
                    }
                    // Wise did not process the call: whatever its method, it is repeated
                    // once with the token the manager finds newer (re-read from the store,
                    // or from the link's one refresh).
                    reauthorized = true;
                    tracing::info!("Wise answered 401; repeating once with a newer token");
                    token =
                        Box::pin(manager.token_after_unauthorized(&self.key, token.access_token()))
                            .await?;
                    continue;
                };
                // The budget runs from the first failure (a success never reads the clock).
                let started = *started.get_or_insert_with(tokio::time::Instant::now);
                match retry_wait(
                    &req.method,
                    &err,
                    attempt,
                    self.max_attempts,
                    started.elapsed(),
                ) {
                    Some(wait) => {
                        tracing::info!(attempt, error = %err, "Wise API call failed, retrying");
                        Box::pin(tokio::time::sleep(wait)).await;
                    }
                    None => {
                        tracing::warn!(attempt, error = %err, "Wise API call failed");
                        return Err(err.into());
                    }
                }
            }
        }
    }

    /// One attempt: the request is built and handed to the HTTP client at once; the future
    /// is its answer, the body read within [`MAX_RESPONSE_BYTES`].
    fn attempt<'s>(
        &self,
        req: &Prepared<'_>,
        token: &ValidToken,
        correlation: &Correlation<'_>,
        span: &'s Span,
    ) -> impl Future<Output = Result<WiseResponse, WiseError>> + 's {
        // Nothing is sent before the first poll.
        let sent = self
            .request(req, token, correlation)
            .map(reqwest::RequestBuilder::send);
        async move {
            let mut response = sent?.await.map_err(WiseError::transport)?;
            let status = received(&response, span)?;
            let body = read_bounded_to(&mut response, MAX_RESPONSE_BYTES)
                .await
                .map_err(|e| e.into_wise_error("body is larger than 1 MiB"))?;
            let headers = std::mem::take(response.headers_mut());
            Ok(WiseResponse::new(status, headers, body))
        }
    }

    /// The HTTP request of `req` with `token`; a token that is no header value cannot be
    /// valid at Wise either.
    fn request(
        &self,
        req: &Prepared<'_>,
        token: &ValidToken,
        correlation: &Correlation<'_>,
    ) -> Result<reqwest::RequestBuilder, WiseError> {
        let mut request = self
            .http
            .request(req.method.clone(), url_under(&self.base_url, req.path))
            .header(AUTHORIZATION, bearer(token)?)
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(CORRELATION, correlation.header_value());
        if let Some(approval) = &self.approval {
            request = request.header(APPROVAL, approval.clone());
        }
        if let Some(body) = &req.body {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.clone());
        }
        Ok(request)
    }
}

/// The answer's status, recorded in the call's span with Wise's trace id; a redirect is
/// refused.
fn received(response: &reqwest::Response, span: &Span) -> Result<StatusCode, WiseError> {
    let status = response.status();
    if !span.is_disabled() {
        span.record("status", status.as_u16());
        if let Some(id) = trace_id(response.headers()) {
            span.record("trace_id", id);
        }
    }
    if status.is_redirection() {
        return Err(WiseError::Redirected {
            status: status.as_u16(),
        });
    }
    Ok(status)
}

/// `Bearer <token>`; a token that is no header value cannot be valid at Wise either.
pub(crate) fn bearer(token: &ValidToken) -> Result<HeaderValue, WiseError> {
    let mut value = String::with_capacity(7 + token.access_token().expose_secret().len());
    value.push_str("Bearer ");
    value.push_str(token.access_token().expose_secret());
    let mut value = HeaderValue::try_from(value).map_err(|_| WiseError::Unauthorized)?;
    value.set_sensitive(true);
    Ok(value)
}

/// Classifies a non-2xx answer other than 401.
pub(crate) fn classify(resp: &WiseResponse, now: std::time::SystemTime) -> WiseError {
    classify_parts(resp.status().as_u16(), resp.headers(), now)
}

pub(crate) fn classify_parts(
    status: u16,
    headers: &HeaderMap,
    now: std::time::SystemTime,
) -> WiseError {
    if status == 401 {
        return WiseError::Unauthorized;
    }
    if status == 403 {
        if let Some(one_time_token) = sca_token(headers) {
            return WiseError::Sca {
                one_time_token: one_time_token.to_owned(),
            };
        }
    }
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| parse_retry_after(v, now));
    WiseError::from_status(status, None, retry_after)
}

/// The one-time token of an SCA 403 (`x-2fa-approval`, unless the result says it was
/// approved), if it looks like one.
fn sca_token(headers: &HeaderMap) -> Option<&str> {
    let approved = headers
        .get("x-2fa-approval-result")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("APPROVED"));
    if approved {
        return None;
    }
    headers
        .get(APPROVAL_HEADER)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The wait before repeating a failed call, or `None` to give up: GET and HEAD repeat
/// outages and timeouts (honouring a short `Retry-After`); every method repeats a
/// connection that could not be opened; nothing repeats a 429, an SCA 403 or a 4xx.
pub(crate) fn retry_wait(
    method: &Method,
    err: &WiseError,
    attempt: u32,
    max_attempts: u32,
    elapsed: Duration,
) -> Option<Duration> {
    if attempt >= max_attempts {
        return None;
    }
    let safe = *method == Method::GET || *method == Method::HEAD;
    let wait = match err {
        WiseError::Connect { .. } => backoff(attempt),
        WiseError::Unavailable { retry_after, .. } if safe => match retry_after {
            Some(ra) if *ra > MAX_HONOURED_RETRY_AFTER => return None,
            Some(ra) => *ra,
            None => backoff(attempt),
        },
        WiseError::Timeout { .. } if safe => backoff(attempt),
        _ => return None,
    };
    (elapsed.saturating_add(wait) < CALL_RETRY_BUDGET).then_some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_under_the_base_are_those_parsed_whole() {
        let paths = [
            "/v1/me",
            "/v4/profiles/1/balances?types=STANDARD,SAVINGS",
            "/v1/profiles/2/balance-statements/3/statement.json?currency=EUR&intervalStart=2023-11-14T22%3A13%3A20Z&type=COMPACT",
            "/a/b.json?x=%20y&z",
            "/a%20b/c",
            "/",
            "/a?",
            "/a/'quoted'/<x>?q=\"v\"|{}^`",
        ];
        for base in [
            "http://127.0.0.1:8080",
            "https://api.wise.com",
            "https://api.sandbox.transferwise.tech/v3",
            "http://[::1]:9/prefix/v1",
        ] {
            let parsed = Url::parse(base).unwrap();
            for path in paths {
                assert!(valid_path(path), "{path}");
                assert_eq!(
                    url_under(&parsed, path),
                    Url::parse(&format!("{base}{path}")).unwrap(),
                    "{base} + {path}"
                );
            }
        }
    }

    #[test]
    fn paths_stay_under_the_base() {
        for ok in [
            "/v1/me",
            "/v4/profiles/1/balances?types=STANDARD,SAVINGS",
            "/a/b.json",
        ] {
            assert!(valid_path(ok), "{ok}");
        }
        for bad in [
            "v1/me",
            "//evil.example/x",
            "/a/../b",
            "/a/./b",
            "/a/%2e%2e/b",
            "/a/.%2E/b",
            "/a/%2e./b",
            "/a/%2E",
            "/..",
            "/a/..?q",
            "/a b",
            "/a#f",
            "/a\\b",
            "",
        ] {
            assert!(!valid_path(bad), "{bad}");
        }
    }

    #[test]
    fn a_valid_path_is_kept_as_it_is_and_the_others_are_refused() {
        // Every path of three segments made of dots, encoded dots and letters: one that
        // passes is not resolved away by the URL parser, one that fails would be (or starts
        // with `//`).
        let pieces = [
            "", ".", "..", "...", "%2e", "%2E", ".%2e", "%2e.", "%2e%2E", "a", ".a", "a.", "%2ea",
        ];
        let base = Url::parse("https://api.sandbox.transferwise.tech/v3").unwrap();
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let path = format!("/{a}/{b}/{c}");
                    let kept = url_under(&base, &path).path() == format!("/v3{path}");
                    assert_eq!(valid_path(&path), kept && !a.is_empty(), "{path}");
                    let queried = format!("/{a}/{b}?{c}/..");
                    let kept = url_under(&base, &queried).path() == format!("/v3/{a}/{b}");
                    assert_eq!(valid_path(&queried), kept && !a.is_empty(), "{queried}");
                }
            }
        }
    }

    #[test]
    fn only_safe_methods_repeat_outages() {
        let z = Duration::ZERO;
        let s502 = WiseError::Unavailable {
            status: Some(502),
            retry_after: None,
            source: None,
        };
        assert!(retry_wait(&Method::GET, &s502, 1, 3, z).is_some());
        assert!(retry_wait(&Method::GET, &s502, 3, 3, z).is_none());
        assert!(retry_wait(&Method::POST, &s502, 1, 3, z).is_none());
        assert!(retry_wait(&Method::DELETE, &s502, 1, 3, z).is_none());
        let timeout = WiseError::Timeout { source: None };
        assert!(retry_wait(&Method::PUT, &timeout, 1, 3, z).is_none());
        let connect = WiseError::Connect { source: None };
        assert!(retry_wait(&Method::POST, &connect, 1, 3, z).is_some());
        let limited = WiseError::RateLimited {
            retry_after: Some(Duration::from_secs(1)),
        };
        assert!(retry_wait(&Method::GET, &limited, 1, 3, z).is_none());
        assert!(retry_wait(&Method::GET, &s502, 1, 3, CALL_RETRY_BUDGET).is_none());
    }

    #[test]
    fn sca_needs_the_one_time_token() {
        let now = std::time::SystemTime::UNIX_EPOCH;
        let mut h = HeaderMap::new();
        assert_eq!(
            classify_parts(403, &h, now),
            WiseError::Rejected {
                status: 403,
                code: None
            }
        );
        h.insert(
            "x-2fa-approval-result",
            HeaderValue::from_static("REJECTED"),
        );
        h.insert(APPROVAL_HEADER, HeaderValue::from_static("bb676aeb-7c4d"));
        assert_eq!(
            classify_parts(403, &h, now),
            WiseError::Sca {
                one_time_token: "bb676aeb-7c4d".into()
            }
        );
        h.insert(APPROVAL_HEADER, HeaderValue::from_static("not a token"));
        assert!(matches!(
            classify_parts(403, &h, now),
            WiseError::Rejected { .. }
        ));
        let mut limited = HeaderMap::new();
        limited.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        assert_eq!(
            classify_parts(429, &limited, now).retry_after(),
            Some(Duration::from_secs(5))
        );
    }
}
