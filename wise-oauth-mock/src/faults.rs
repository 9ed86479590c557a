//! Scripted faults: the next N calls to an endpoint misbehave.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

use crate::error::json_response;
use crate::server::App;

/// What an injected fault does.
///
/// JSON (`POST /__mock/faults`) uses an internal `kind` tag next to the [`Fault`] fields,
/// e.g. `{"endpoint":"token","kind":"status","status":502,"body":"<h1>Bad gateway</h1>","content_type":"text/html"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FaultKind {
    /// Only wait [`Fault::delay_ms`], then answer normally.
    Delay,
    /// Answer with this status and raw body (default content type `application/json`).
    Status {
        /// HTTP status code.
        status: u16,
        /// Raw response body.
        #[serde(default)]
        body: String,
        /// Content type; `application/json` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_type: Option<String>,
    },
    /// 429 with `Retry-After: <retry_after>` and `X-Rate-Limited-By: wise-public-api`.
    RateLimit {
        /// Seconds for the `Retry-After` header.
        retry_after: u64,
    },
    /// SCA: 403 with `x-2fa-approval-result: REJECTED` and `x-2fa-approval: <uuid>`.
    Sca,
    /// Close the connection without any response, before processing the request.
    Drop,
    /// Process the request fully (tokens are issued, old ones die), then close the
    /// connection without sending the response.
    DropAfterProcessing,
    /// Hold the request for [`Fault::delay_ms`], then process it fully even if the client
    /// has given up and closed the connection meanwhile (Wise completing a call the client
    /// abandoned after its timeout): a refresh issues new tokens and kills the previous
    /// access token. The response goes out if the client is still there. Works on every
    /// faultable endpoint; the processing runs in its own task, so a client that leaves
    /// does not cancel it. Counted in [`Stats::late_completions`](crate::Stats) once
    /// processed, with token outcome `ok:late` / `<error>:late`; await it with
    /// [`MockWiseHandle::wait_for_late_completions`](crate::MockWiseHandle::wait_for_late_completions).
    LateCompletion,
}

impl FaultKind {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            FaultKind::Delay => "delay",
            FaultKind::Status { .. } => "status",
            FaultKind::RateLimit { .. } => "rate_limit",
            FaultKind::Sca => "sca",
            FaultKind::Drop => "drop",
            FaultKind::DropAfterProcessing => "drop_after_processing",
            FaultKind::LateCompletion => "late_completion",
        }
    }
}

/// A fault for the next [`Fault::times`] requests to [`Fault::endpoint`].
///
/// Endpoint keys: `token` (any grant), `token:<grant_type>` (only that grant, e.g.
/// `token:refresh_token`), `authorize`, `me`, `profiles` (all profile reads),
/// `signup`, `users_exists`, `claim_account`, an exact key such as
/// `GET /v2/profiles/{id}`, or `any`. The control API is never faulted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Which endpoint the fault targets.
    pub endpoint: String,
    /// How many matching requests it affects (default 1).
    #[serde(default = "one")]
    pub times: u32,
    /// Delay before the fault (or the normal answer) in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// The chance, in percent (1 to 100), that the fault hits a matching request; when it
    /// does not, the request goes on to the next fault in the queue (or is answered
    /// normally) and no use is taken. Absent: every matching request. Drawn from the
    /// emulator's seeded generator, so a sequence of requests sees the same draws on every
    /// run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// A fault of `kind` for the next request to `endpoint`.
    pub fn new(endpoint: impl Into<String>, kind: FaultKind) -> Self {
        Fault {
            endpoint: endpoint.into(),
            times: 1,
            delay_ms: None,
            percent: None,
            kind,
        }
    }

    /// Answer `status` with a JSON `body`.
    pub fn status(endpoint: impl Into<String>, status: u16, body: impl Into<String>) -> Self {
        Self::new(
            endpoint,
            FaultKind::Status {
                status,
                body: body.into(),
                content_type: None,
            },
        )
    }

    /// Answer `status` with a raw `body` of the given content type (e.g. an HTML 502 page).
    pub fn status_with_type(
        endpoint: impl Into<String>,
        status: u16,
        body: impl Into<String>,
        content_type: impl Into<String>,
    ) -> Self {
        Self::new(
            endpoint,
            FaultKind::Status {
                status,
                body: body.into(),
                content_type: Some(content_type.into()),
            },
        )
    }

    /// Wait `delay`, then answer normally.
    pub fn delay(endpoint: impl Into<String>, delay: Duration) -> Self {
        Self::new(endpoint, FaultKind::Delay).with_delay(delay)
    }

    /// 429 with `Retry-After: retry_after_secs`.
    pub fn rate_limit(endpoint: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(
            endpoint,
            FaultKind::RateLimit {
                retry_after: retry_after_secs,
            },
        )
    }

    /// SCA 403.
    pub fn sca(endpoint: impl Into<String>) -> Self {
        Self::new(endpoint, FaultKind::Sca)
    }

    /// Close the connection before processing.
    pub fn drop_connection(endpoint: impl Into<String>) -> Self {
        Self::new(endpoint, FaultKind::Drop)
    }

    /// Process, then close the connection without a response (the lost response).
    pub fn drop_after_processing(endpoint: impl Into<String>) -> Self {
        Self::new(endpoint, FaultKind::DropAfterProcessing)
    }

    /// Hold the request for `delay`, then process it even when the client has left (see
    /// [`FaultKind::LateCompletion`]).
    pub fn late_completion(endpoint: impl Into<String>, delay: Duration) -> Self {
        Self::new(endpoint, FaultKind::LateCompletion).with_delay(delay)
    }

    /// Affect the next `n` matching requests (at least 1).
    pub fn times(mut self, n: u32) -> Self {
        self.times = n.max(1);
        self
    }

    /// Hit each matching request with this chance only (clamped to 1 to 100 percent), so
    /// that "5 % of refreshes fail" can run for as long as a test or bench needs.
    pub fn percent(mut self, percent: u8) -> Self {
        self.percent = Some(percent.clamp(1, 100));
        self
    }

    /// Add a delay before the fault takes effect.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay_ms = Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        self
    }
}

/// The pending faults.
#[derive(Debug)]
pub(crate) struct FaultQueue {
    faults: Vec<Fault>,
    /// Draws for [`Fault::percent`]; a fixed seed, so runs repeat.
    rng: StdRng,
}

/// The seed of the draws for [`Fault::percent`].
const FAULT_SEED: u64 = 0x5741_5345;

impl Default for FaultQueue {
    fn default() -> Self {
        Self {
            faults: Vec::new(),
            rng: StdRng::seed_from_u64(FAULT_SEED),
        }
    }
}

impl FaultQueue {
    pub(crate) fn push(&mut self, fault: Fault) {
        if fault.times > 0 {
            self.faults.push(fault);
        }
    }

    pub(crate) fn list(&self) -> Vec<Fault> {
        self.faults.clone()
    }

    pub(crate) fn clear(&mut self) {
        self.faults.clear();
    }

    /// Takes one use of the first fault that matches any of `keys` (or targets `any`) and,
    /// for a fault with a [`percent`](Fault::percent), wins its draw.
    pub(crate) fn take(&mut self, keys: &[&str]) -> Option<Fault> {
        let rng = &mut self.rng;
        let idx = self.faults.iter().position(|f| {
            (f.endpoint == "any" || keys.contains(&f.endpoint.as_str()))
                && f.percent.is_none_or(|p| rng.gen_range(0..100u8) < p)
        })?;
        let f = &mut self.faults[idx];
        f.times -= 1;
        let out = f.clone();
        if f.times == 0 {
            self.faults.remove(idx);
        }
        Some(out)
    }
}

/// A per-connection switch: notifying it closes the TCP connection without a response.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnKill(pub(crate) Arc<Notify>);

/// What the handler should do after the fault's first phase.
pub(crate) enum FaultAction {
    /// Answer normally.
    Proceed,
    /// Process, then drop the connection.
    DropAfter,
    /// Send this response instead.
    Respond(Response),
}

/// Runs the first phase of a fault: delay, then a replacement response, a drop, or nothing.
pub(crate) async fn begin(fault: Option<&Fault>, kill: Option<&ConnKill>) -> FaultAction {
    let Some(fault) = fault else {
        return FaultAction::Proceed;
    };
    if let Some(ms) = fault.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    match &fault.kind {
        FaultKind::Delay | FaultKind::LateCompletion => FaultAction::Proceed,
        FaultKind::DropAfterProcessing => FaultAction::DropAfter,
        FaultKind::Drop => drop_now(kill).await,
        FaultKind::Status {
            status,
            body,
            content_type,
        } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = (status, body.clone()).into_response();
            let ct = content_type.as_deref().unwrap_or("application/json");
            let ct = HeaderValue::from_str(ct)
                .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
            resp.headers_mut().insert(header::CONTENT_TYPE, ct);
            FaultAction::Respond(resp)
        }
        FaultKind::RateLimit { retry_after } => {
            FaultAction::Respond(rate_limit_response(*retry_after))
        }
        FaultKind::Sca => {
            let ott = uuid::Uuid::new_v4().to_string();
            let mut resp = json_response(
                StatusCode::FORBIDDEN,
                &json!({
                    "timestamp": crate::clock::fmt_millis(std::time::SystemTime::now()),
                    "status": 403,
                    "error": "Forbidden",
                    "message": "You are forbidden to send this request",
                }),
            );
            let h = resp.headers_mut();
            h.insert(
                "x-2fa-approval-result",
                HeaderValue::from_static("REJECTED"),
            );
            if let Ok(v) = HeaderValue::from_str(&ott) {
                h.insert("x-2fa-approval", v);
            }
            FaultAction::Respond(resp)
        }
    }
}

/// 429 with `Retry-After`, `X-Rate-Limited-By: wise-public-api` and a JSON body (the
/// `rate_limit` fault and the built-in rate limit answer alike).
pub(crate) fn rate_limit_response(retry_after: u64) -> Response {
    let mut resp = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({"error": "too_many_requests", "error_description": "Rate limit exceeded"}),
    );
    let h = resp.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    h.insert(
        "x-rate-limited-by",
        HeaderValue::from_static("wise-public-api"),
    );
    resp
}

/// A late completion: waits the fault's delay, then runs `work` (the processing) in a
/// task of its own and answers with its response. Dropping this future (hyper does so
/// when the client disconnects) leaves the task running to the end.
pub(crate) async fn complete_late(
    app: &App,
    fault: &Fault,
    work: impl FnOnce() -> Response + Send + 'static,
) -> Response {
    let delay = Duration::from_millis(fault.delay_ms.unwrap_or(0));
    let app = app.clone();
    let task = tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let resp = work();
        app.late_completed();
        resp
    });
    task.await.unwrap_or_else(|_| {
        json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": "server_error", "error_description": "late completion failed"}),
        )
    })
}

/// Closes the connection and never returns; without a connection switch, answers 500.
pub(crate) async fn drop_now(kill: Option<&ConnKill>) -> FaultAction {
    match kill {
        Some(k) => {
            k.0.notify_one();
            std::future::pending::<()>().await;
            FaultAction::Proceed
        }
        None => FaultAction::Respond(json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": "server_error", "error_description": "connection drop unavailable"}),
        )),
    }
}

/// Finishes a handler's response, honouring `DropAfter`.
pub(crate) async fn finish(drop_after: bool, kill: Option<&ConnKill>, resp: Response) -> Response {
    if drop_after {
        if let FaultAction::Respond(r) = drop_now(kill).await {
            return r;
        }
    }
    resp
}
