//! The control API under `/__mock/` (JSON). Never counted, never faulted.
// Early-return helpers hand back a ready `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::clock::fmt_millis;
use crate::error::{json_response, MockError};
use crate::faults::Fault;
use crate::limits::RateLimit;
use crate::server::App;
use crate::state::{ClientConfig, State};
use crate::users::NewUser;

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/__mock/stats", get(stats))
        .route("/__mock/users", post(create_user))
        .route("/__mock/users/{email}/tokens", get(user_tokens))
        .route("/__mock/users/{email}/profiles", get(user_profiles))
        .route("/__mock/users/{email}/{action}", post(user_action))
        .route(
            "/__mock/faults",
            get(list_faults).post(add_faults).delete(clear_faults),
        )
        .route("/__mock/clock", get(get_clock).post(advance_clock))
        .route("/__mock/config", get(get_config).post(set_config))
        .route("/__mock/clients", post(add_client))
        .route(
            "/__mock/clients/{client_id}/redirect-uris",
            post(add_redirect),
        )
        .route("/__mock/tokens/{token}", get(token_status))
        .route("/__mock/sca/{ott}/approve", post(approve_sca))
        .route(
            "/__mock/sca/sessions",
            axum::routing::delete(end_sca_sessions),
        )
        .route("/__mock/reset", post(reset))
}

fn ok(v: &Value) -> Response {
    json_response(StatusCode::OK, v)
}

fn bad(msg: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": "invalid_request", "error_description": msg}),
    )
}

fn mock_error(e: &MockError) -> Response {
    let (status, code) = match e {
        MockError::UserExists(_) => (StatusCode::CONFLICT, "user_exists"),
        MockError::UnknownUser(_) => (StatusCode::NOT_FOUND, "unknown_user"),
        MockError::UnknownClient(_) => (StatusCode::NOT_FOUND, "unknown_client"),
        _ => (StatusCode::BAD_REQUEST, "invalid_request"),
    };
    json_response(
        status,
        &json!({"error": code, "error_description": e.to_string()}),
    )
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    let raw: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(raw).map_err(|e| bad(&format!("invalid JSON body: {e}")))
}

async fn stats(AxState(app): AxState<App>) -> Response {
    let stats = app.lock().stats.clone();
    ok(&json!(stats))
}

async fn create_user(AxState(app): AxState<App>, body: Bytes) -> Response {
    let user: NewUser = match parse(&body) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match app.lock().create_user(user, None) {
        Ok(created) => json_response(StatusCode::CREATED, &json!(created)),
        Err(e) => mock_error(&e),
    }
}

async fn user_tokens(AxState(app): AxState<App>, Path(email): Path<String>) -> Response {
    let s = app.lock();
    if s.user_by_email(&email).is_none() {
        return mock_error(&MockError::UnknownUser(email));
    }
    ok(&json!(s.user_tokens(&email)))
}

async fn user_profiles(AxState(app): AxState<App>, Path(email): Path<String>) -> Response {
    let s = app.lock();
    match s.user_by_email(&email) {
        Some(u) => ok(&json!({"user_id": u.id, "profile_ids": u.profiles})),
        None => mock_error(&MockError::UnknownUser(email)),
    }
}

#[derive(Deserialize)]
struct ChangeEmail {
    new_email: String,
}

async fn user_action(
    AxState(app): AxState<App>,
    Path((email, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let result = match action.as_str() {
        "reclaim" => app.lock().reclaim(&email),
        "revoke" => app.lock().revoke(&email),
        "enable-2fa" => app.lock().enable_2fa(&email),
        "enhanced-security" => app.lock().enhanced_security(&email),
        "deactivate" => crate::webhooks::deactivate(&app, &email),
        "reactivate" => crate::webhooks::reactivate(&app, &email),
        "change-email" => match parse::<ChangeEmail>(&body) {
            Ok(c) => app.lock().change_email(&email, &c.new_email),
            Err(r) => return r,
        },
        _ => {
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": "not_found", "error_description": "unknown user action; use reclaim, revoke, deactivate, reactivate, change-email, enable-2fa or enhanced-security"}),
            )
        }
    };
    match result {
        Ok(()) => ok(&json!({"ok": true})),
        Err(e) => mock_error(&e),
    }
}

async fn list_faults(AxState(app): AxState<App>) -> Response {
    ok(&json!(app.lock().faults.list()))
}

/// Accepts one fault object or an array of them.
async fn add_faults(AxState(app): AxState<App>, body: Bytes) -> Response {
    let value: Value = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let faults: Vec<Fault> = match value {
        Value::Array(_) => serde_json::from_value(value),
        other => serde_json::from_value(other).map(|f| vec![f]),
    }
    .unwrap_or_default();
    if faults.is_empty() {
        return bad("expected a fault object such as {\"endpoint\":\"token\",\"times\":1,\"kind\":\"status\",\"status\":503,\"body\":\"{}\"}");
    }
    let n = faults.len();
    let mut s = app.lock();
    for f in faults {
        s.faults.push(f);
    }
    json_response(StatusCode::CREATED, &json!({"queued": n}))
}

async fn clear_faults(AxState(app): AxState<App>) -> Response {
    app.lock().faults.clear();
    ok(&json!({"ok": true}))
}

fn clock_json(app: &App) -> Value {
    let s = app.lock();
    let offset = s.clock_offset;
    json!({
        "offset_ms": u64::try_from(offset.as_millis()).unwrap_or(u64::MAX),
        "offset_secs": offset.as_secs(),
        "now": fmt_millis(s.now()),
        "frozen": s.clock_frozen(),
    })
}

async fn get_clock(AxState(app): AxState<App>) -> Response {
    ok(&clock_json(&app))
}

#[derive(Deserialize)]
struct Advance {
    #[serde(default)]
    advance_secs: u64,
    #[serde(default)]
    advance_ms: u64,
    /// Absent: unchanged; `true` freezes, `false` thaws (applied before advancing).
    #[serde(default)]
    frozen: Option<bool>,
}

async fn advance_clock(AxState(app): AxState<App>, body: Bytes) -> Response {
    let a: Advance = match parse(&body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    {
        let mut s = app.lock();
        if let Some(frozen) = a.frozen {
            s.set_clock_frozen(frozen);
        }
        let by = std::time::Duration::from_secs(a.advance_secs)
            .saturating_add(std::time::Duration::from_millis(a.advance_ms));
        s.advance_clock(by);
    }
    ok(&clock_json(&app))
}

#[derive(Deserialize)]
struct ConfigPatch {
    /// Absent: unchanged; `null`: off; a string: that user.
    #[serde(default, deserialize_with = "present")]
    auto_approve: Option<Value>,
    #[serde(default)]
    rotate_refresh_tokens: Option<bool>,
    /// Absent: unchanged; `null`: off; `{"per_second":..,"per_minute":..}`: that limit.
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Value>,
    /// Absent: unchanged; whole seconds, at least 1.
    #[serde(default)]
    access_token_lifetime_secs: Option<u64>,
}

/// Keeps an explicit `null` as `Some(Value::Null)` (absent stays `None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

async fn set_config(AxState(app): AxState<App>, body: Bytes) -> Response {
    let patch: ConfigPatch = match parse(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let auto_approve = match patch.auto_approve {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(e)) => Some(Some(e)),
        Some(_) => return bad("auto_approve must be an email or null"),
    };
    let rate_limit = match patch.rate_limit {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => match serde_json::from_value::<RateLimit>(v) {
            Ok(l) => Some(Some(l)),
            Err(_) => {
                return bad(
                    "rate_limit must be null or {\"per_second\": <u32>, \"per_minute\": <u32>}",
                )
            }
        },
    };
    if patch.access_token_lifetime_secs == Some(0) {
        return bad("access_token_lifetime_secs must be at least 1");
    }
    // Validated in full above: a rejected patch changes nothing.
    let mut s = app.lock();
    if let Some(a) = auto_approve {
        s.auto_approve = a;
    }
    if let Some(r) = patch.rotate_refresh_tokens {
        s.rotate = r;
    }
    if let Some(l) = rate_limit {
        s.set_rate_limit(l);
    }
    if let Some(secs) = patch.access_token_lifetime_secs {
        s.set_access_ttl(std::time::Duration::from_secs(secs));
    }
    ok(&config_json(&s))
}

/// `GET /__mock/config`: the switches in force.
async fn get_config(AxState(app): AxState<App>) -> Response {
    ok(&config_json(&app.lock()))
}

fn config_json(s: &State) -> Value {
    json!({
        "auto_approve": s.auto_approve,
        "rotate_refresh_tokens": s.rotate,
        "rate_limit": s.rate_limit(),
        "access_token_lifetime_secs": s.access_ttl().as_secs(),
    })
}

#[derive(Deserialize)]
struct NewClient {
    client_id: String,
    client_secret: String,
    #[serde(default)]
    redirect_uris: Vec<String>,
}

async fn add_client(AxState(app): AxState<App>, body: Bytes) -> Response {
    let c: NewClient = match parse(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if c.client_id.is_empty() {
        return bad("client_id must not be empty");
    }
    app.lock().register_client(ClientConfig {
        id: c.client_id,
        secret: c.client_secret,
        redirect_uris: c.redirect_uris,
    });
    json_response(StatusCode::CREATED, &json!({"ok": true}))
}

#[derive(Deserialize)]
struct NewRedirect {
    uri: String,
}

async fn add_redirect(
    AxState(app): AxState<App>,
    Path(client_id): Path<String>,
    body: Bytes,
) -> Response {
    let r: NewRedirect = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match app.lock().add_redirect_uri(&client_id, &r.uri) {
        Ok(()) => ok(&json!({"ok": true})),
        Err(e) => mock_error(&e),
    }
}

async fn token_status(AxState(app): AxState<App>, Path(token): Path<String>) -> Response {
    let s = app.lock();
    ok(&json!({
        "access_token_valid": s.access_valid(&token).is_some(),
        "refresh_token_valid": s.refresh_valid(&token),
    }))
}

async fn reset(AxState(app): AxState<App>) -> Response {
    app.lock().reset();
    ok(&json!({"ok": true}))
}

/// The user clears the SCA challenges of a one-time token (404 for an unknown token).
async fn approve_sca(AxState(app): AxState<App>, Path(ott): Path<String>) -> Response {
    if app.lock().wallet.approve(&ott) {
        ok(&json!({"one_time_token": ott, "approved": true}))
    } else {
        json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "unknown_one_time_token", "error_description": "no such one-time token"}),
        )
    }
}

/// Ends every SCA session: the next protected call is challenged again.
async fn end_sca_sessions(AxState(app): AxState<App>) -> Response {
    app.lock().wallet.end_sessions();
    ok(&json!({"sca_sessions": "ended"}))
}
