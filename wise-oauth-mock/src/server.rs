//! The router, the shared state handle, common headers, and the accept loop.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tower::Service as _;

use crate::error::{json_response, OAuthError};
use crate::faults::{ConnKill, Fault};
use crate::state::State;
use crate::tls::TlsServer;
use crate::{api, authorize, balances, control, token};

/// Largest request body the emulator accepts.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;
/// Bodies up to this size are read to the end before the 413, so the client sees it.
const DRAIN_LIMIT: usize = 32 * 1024 * 1024;

/// Shared handle to the emulator state, used as axum state.
#[derive(Clone, Debug)]
pub(crate) struct App {
    state: Arc<Mutex<State>>,
    /// Ticks after every finished late completion.
    late_done: Arc<watch::Sender<()>>,
}

impl App {
    pub(crate) fn new(state: State) -> Self {
        App {
            state: Arc::new(Mutex::new(state)),
            late_done: Arc::new(watch::channel(()).0),
        }
    }

    /// Locks the state (a poisoned lock is recovered: state is always left consistent).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a processed late completion and wakes the waiters.
    pub(crate) fn late_completed(&self) {
        self.lock().stats.late_completions += 1;
        self.late_done.send_replace(());
    }

    /// Waits until the stats count at least `n` late completions.
    pub(crate) async fn wait_late_completions(&self, n: u64) {
        let mut rx = self.late_done.subscribe();
        while self.lock().stats.late_completions < n {
            // The sender lives as long as `self`, so this only returns on a tick.
            let _ = rx.changed().await;
        }
    }

    /// Applies the built-in rate limit to a request of `client_id` (when known):
    /// `Some(429 response)` when it is over the limit.
    pub(crate) fn rate_limit(&self, client_id: Option<&str>) -> Option<Response> {
        let retry_after = self.lock().rate_limited(client_id?)?;
        Some(crate::faults::rate_limit_response(retry_after))
    }

    /// Takes one use of a fault matching `keys`, counting it.
    pub(crate) fn take_fault(&self, keys: &[&str]) -> Option<Fault> {
        let mut s = self.lock();
        let f = s.faults.take(keys);
        if f.is_some() {
            s.stats.faults_applied += 1;
        }
        f
    }
}

/// Why a body could not be read.
pub(crate) enum BodyError {
    TooLarge,
    Broken,
}

impl BodyError {
    pub(crate) fn into_oauth(self) -> OAuthError {
        match self {
            BodyError::TooLarge => OAuthError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "Request body too large",
            ),
            BodyError::Broken => OAuthError::invalid_request("Could not read the request body"),
        }
    }
}

/// Reads a body up to [`BODY_LIMIT`] bytes.
pub(crate) async fn read_body(mut body: Body) -> Result<Bytes, BodyError> {
    let mut buf = BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Broken)?;
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if total <= BODY_LIMIT {
                buf.extend_from_slice(&data);
            } else if total > DRAIN_LIMIT {
                return Err(BodyError::TooLarge);
            }
        }
    }
    if total > BODY_LIMIT {
        return Err(BodyError::TooLarge);
    }
    Ok(buf.freeze())
}

/// Whether the content type is `application/x-www-form-urlencoded` (any parameters).
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Parses a form body or query into pairs, keeping duplicates.
pub(crate) fn parse_pairs(raw: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(raw)
        .map_err(|_| OAuthError::invalid_request("Malformed form body"))
}

/// The single value of `name`; `Err` names a duplicated parameter.
pub(crate) fn single<'a>(
    pairs: &'a [(String, String)],
    name: &str,
) -> Result<Option<&'a str>, String> {
    let mut it = pairs.iter().filter(|(k, _)| k == name);
    let first = it.next().map(|(_, v)| v.as_str());
    if it.next().is_some() {
        return Err(name.to_owned());
    }
    Ok(first)
}

/// The first parameter name that appears more than once.
pub(crate) fn duplicated(pairs: &[(String, String)]) -> Option<&str> {
    pairs
        .iter()
        .enumerate()
        .find(|(i, (k, _))| pairs[..*i].iter().any(|(k2, _)| k2 == k))
        .map(|(_, (k, _))| k.as_str())
}

pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route(
            "/oauth/authorize",
            get(authorize::get_page).post(authorize::post_page),
        )
        .route(
            "/oauth/authorize/",
            get(authorize::get_page).post(authorize::post_page),
        )
        .route("/oauth/token", post(token::token))
        .route("/{version}/oauth/token", post(token::versioned_token))
        .route("/v1/me", get(api::me))
        .route("/v2/profiles", get(api::profiles_v2))
        .route("/v2/profiles/{id}", get(api::profile_v2))
        .route("/v1/profiles", get(api::profiles_v1))
        .route("/v1/user/signup/registration_code", post(api::signup))
        .route("/v1/users/exists", post(api::users_exists))
        .route("/v1/user/claim-account", post(api::claim_account))
        .route(
            "/v4/profiles/{profile_id}/balances",
            get(balances::balances),
        )
        .route(
            "/v1/profiles/{profile_id}/balance-statements/{balance_id}/statement.json",
            get(balances::statement),
        )
        .route("/v1/one-time-token/status", get(balances::ott_status))
        .route(
            "/v1/one-time-token/sms/verify",
            post(balances::ott_sms_verify),
        )
        .merge(control::routes())
        .merge(crate::webhooks::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), common))
        .with_state(app)
}

async fn not_found(req: Request) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": "not_found", "error_description": format!("No endpoint {} {}", req.method(), truncate(req.uri().path(), 200))}),
    )
}

async fn method_not_allowed(req: Request) -> Response {
    json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"error": "invalid_request", "error_description": format!("Request method '{}' is not supported", truncate(req.method().as_str(), 20))}),
    )
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The stats key of a request: `METHOD /path` with the matched route.
fn endpoint_key(method: &Method, matched: Option<&str>, path: &str) -> String {
    let p = match matched {
        Some("/{version}/oauth/token") => "/oauth/token",
        Some("/oauth/authorize/") => "/oauth/authorize",
        Some(m) => m,
        None => truncate(path, 200),
    };
    format!("{method} {p}")
}

/// Counts the request and adds `x-trace-id` and the correlation id to the response.
async fn common(AxState(app): AxState<App>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/__mock") {
        let matched = req
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let key = endpoint_key(req.method(), matched, path);
        app.lock().stats.hit_endpoint(key);
    }
    let correlation = req
        .headers()
        .get("x-external-correlation-id")
        .filter(|v| !v.is_empty() && v.len() <= 36)
        .cloned();
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string()) {
        h.insert("x-trace-id", v);
    }
    if let Some(c) = correlation {
        h.insert("x-external-correlation-id", c);
    }
    resp
}

/// Accepts connections until `shutdown` fires (over TLS when `tls` is set); each
/// connection can be killed by a fault.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<TlsServer>>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match &tls {
                    Some(tls) => {
                        let (tls, router) = (tls.clone(), router.clone());
                        conns.spawn(async move { tls.serve(stream, router).await });
                    }
                    None => {
                        let _ = stream.set_nodelay(true);
                        conns.spawn(serve_conn(stream, router.clone()));
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

/// Serves HTTP/1.1 on one connection (plain TCP or TLS).
pub(crate) async fn serve_conn<S>(stream: S, router: Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let kill = ConnKill::default();
    let k = kill.clone();
    let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(k.clone());
        let mut router = router.clone();
        async move { router.call(req).await }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        res = conn => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        () = kill.0.notified() => {
            tracing::debug!("connection dropped by an injected fault");
        }
    }
}
