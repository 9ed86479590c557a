//! `POST /oauth/token` and `POST /{YYYY}Q{1-4}/oauth/token`.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::error::{json_response, OAuthError};
use crate::faults::{self, ConnKill, FaultAction, FaultKind};
use crate::server::{duplicated, is_form, parse_pairs, read_body, single, App};

/// The unversioned token endpoint.
pub(crate) async fn token(State(app): State<App>, req: Request) -> Response {
    handle(app, req).await
}

/// The versioned token endpoint; the first segment must look like `2026Q3`.
pub(crate) async fn versioned_token(State(app): State<App>, req: Request) -> Response {
    let version = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    if !valid_version(version) {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "not_found", "error_description": "Unknown API version"}),
        );
    }
    handle(app, req).await
}

/// `YYYYQn` with n in 1..=4.
fn valid_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 6
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'Q'
        && (b'1'..=b'4').contains(&b[5])
}

/// Counts a token request as in flight until dropped (the handler ended or was cancelled).
struct InFlight(App);

impl InFlight {
    fn start(app: &App) -> Self {
        let mut s = app.lock();
        s.stats.token_in_flight += 1;
        s.stats.token_in_flight_peak = s.stats.token_in_flight_peak.max(s.stats.token_in_flight);
        drop(s);
        Self(app.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.stats.token_in_flight = s.stats.token_in_flight.saturating_sub(1);
    }
}

async fn handle(app: App, req: Request) -> Response {
    let in_flight = InFlight::start(&app);
    let kill = req.extensions().get::<ConnKill>().cloned();
    let (parts, body) = req.into_parts();
    let raw = match read_body(body).await {
        Ok(b) => b,
        Err(e) => {
            let err = e.into_oauth();
            let mut s = app.lock();
            s.stats.token_request("(unparsed)");
            s.stats.token_outcome("(unparsed)", err.error, false);
            return err.into_response();
        }
    };
    let pairs = if is_form(&parts.headers) {
        parse_pairs(&raw).ok()
    } else {
        None
    };
    let grant = match &pairs {
        None => "(unparsed)".to_owned(),
        Some(p) => p
            .iter()
            .find(|(k, _)| k == "grant_type")
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "(missing)".to_owned()),
    };
    app.lock().stats.token_request(&grant);
    let client = basic_auth(&parts.headers).ok().map(|(id, _)| id);
    if let Some(resp) = app.rate_limit(client.as_deref()) {
        app.lock()
            .stats
            .token_outcome(&grant, "rate_limited", false);
        return resp;
    }
    let grant_key = format!("token:{grant}");
    let fault = app.take_fault(&["token", &grant_key, "POST /oauth/token"]);
    if let Some(f) = &fault {
        if !matches!(
            f.kind,
            FaultKind::Delay | FaultKind::DropAfterProcessing | FaultKind::LateCompletion
        ) {
            let outcome = format!("fault:{}", f.kind.name());
            app.lock().stats.token_outcome(&grant, &outcome, false);
        }
    }
    if let Some(f) = fault
        .as_ref()
        .filter(|f| f.kind == FaultKind::LateCompletion)
    {
        let worker = app.clone();
        return faults::complete_late(&app, f, move || {
            // The in-flight count ends with the processing, not with the connection.
            let _in_flight = in_flight;
            respond(
                &worker,
                &grant,
                &parts.headers,
                pairs.as_deref(),
                Some("late"),
            )
        })
        .await;
    }
    let action = faults::begin(fault.as_ref(), kill.as_ref()).await;
    if let FaultAction::Respond(r) = action {
        return r;
    }
    let dropping = matches!(action, FaultAction::DropAfter);
    let suffix = dropping.then_some("dropped");
    let resp = respond(&app, &grant, &parts.headers, pairs.as_deref(), suffix);
    faults::finish(dropping, kill.as_ref(), resp).await
}

/// Processes the request and counts its outcome (`ok` or the error code, with
/// `:<suffix>` when given).
fn respond(
    app: &App,
    grant: &str,
    headers: &HeaderMap,
    pairs: Option<&[(String, String)]>,
    suffix: Option<&str>,
) -> Response {
    let result = process(app, headers, pairs);
    let outcome = |base: &str| match suffix {
        Some(sfx) => format!("{base}:{sfx}"),
        None => base.to_owned(),
    };
    let mut s = app.lock();
    match result {
        Ok(v) => {
            s.stats.token_outcome(grant, &outcome("ok"), true);
            json_response(StatusCode::OK, &v)
        }
        Err(e) => {
            s.stats.token_outcome(grant, &outcome(e.error), false);
            e.into_response()
        }
    }
}

fn process(
    app: &App,
    headers: &HeaderMap,
    pairs: Option<&[(String, String)]>,
) -> Result<Value, OAuthError> {
    let Some(pairs) = pairs else {
        return Err(if is_form(headers) {
            OAuthError::invalid_request("Malformed form body")
        } else {
            OAuthError::invalid_request(
                "Unsupported Content-Type: the body must be application/x-www-form-urlencoded",
            )
        });
    };
    if let Some(d) = duplicated(pairs) {
        return Err(OAuthError::invalid_request(&format!(
            "Duplicate parameter: {d}"
        )));
    }
    let (client_id, secret) = basic_auth(headers)?;
    let mut s = app.lock();
    s.authenticate_client(&client_id, &secret)?;
    let get = |n: &str| single(pairs, n).ok().flatten().filter(|v| !v.is_empty());
    let require = |n: &str| {
        get(n).ok_or_else(|| OAuthError::invalid_request(&format!("Missing parameter: {n}")))
    };
    if get("client_id").is_some_and(|c| c != client_id) {
        return Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id does not match the authenticated client",
        ));
    }
    match get("grant_type") {
        None => Err(OAuthError::invalid_request("Missing grant type")),
        Some("client_credentials") => Ok(s.grant_client_credentials(&client_id)),
        Some("authorization_code") => {
            require("client_id")?;
            let code = require("code")?;
            let redirect_uri = require("redirect_uri")?;
            s.grant_authorization_code(&client_id, code, redirect_uri, get("code_verifier"))
        }
        Some("registration_code") => {
            require("client_id")?;
            let email = require("email")?;
            let code = require("registration_code")?;
            s.grant_registration_code(&client_id, email, code)
        }
        Some("refresh_token") => {
            let rt = require("refresh_token")?;
            s.grant_refresh(&client_id, rt)
        }
        Some(_) => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Unsupported grant type",
        )),
    }
}

/// Decodes `Authorization: Basic base64(urlenc(id):urlenc(secret))`.
fn basic_auth(headers: &HeaderMap) -> Result<(String, String), OAuthError> {
    let unauthorized = |d: &str| OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", d);
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values
        .next()
        .ok_or_else(|| unauthorized("Client authentication (HTTP Basic) is required"))?;
    if values.next().is_some() {
        return Err(unauthorized("More than one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| unauthorized("Malformed Basic authorization header"))?;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(unauthorized("Client authentication must use HTTP Basic"));
    }
    let rest = rest.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(rest))
        .map_err(|_| unauthorized("Malformed Basic authorization header"))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| unauthorized("Malformed Basic authorization header"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| unauthorized("Malformed Basic authorization header"))?;
    let id = form_decode(id).ok_or_else(|| unauthorized("Malformed Basic authorization header"))?;
    let secret =
        form_decode(secret).ok_or_else(|| unauthorized("Malformed Basic authorization header"))?;
    if id.is_empty() {
        return Err(unauthorized("Malformed Basic authorization header"));
    }
    Ok((id, secret))
}

/// `application/x-www-form-urlencoded` decoding of one component (RFC 6749 §2.3.1).
fn form_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(valid_version("2026Q3"));
        assert!(!valid_version("2026Q5"));
        assert!(!valid_version("v1"));
        assert!(!valid_version("20260Q1"));
    }

    #[test]
    fn decode() {
        assert_eq!(
            form_decode("CLIENT_ID%3F%3F").as_deref(),
            Some("CLIENT_ID??")
        );
        assert_eq!(form_decode("a+b").as_deref(), Some("a b"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("abc%").as_deref(), Some("abc%"));
    }
}
