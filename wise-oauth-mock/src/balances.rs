//! Balances and the SCA-protected balance statement of the consented profile, and the
//! one-time-token calls around SCA.
// Early-return helpers hand back a ready `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use axum::extract::{Request, State as AxState};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::api::{forbidden, run, user_caller};
use crate::clock::fmt_millis;
use crate::error::{json_response, validation_error};
use crate::server::App;
use crate::state::State;
use crate::wallet::{money, ScaVerdict, STATEMENT_ACTION};

/// The numeric path segment after `after` (e.g. the id after `profiles`).
fn id_after(parts: &Parts, after: &str) -> Option<u64> {
    let mut segments = parts.uri.path().split('/');
    segments.by_ref().find(|s| *s == after)?;
    let raw = segments.next()?;
    (!raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) && !raw.starts_with('0'))
        .then(|| raw.parse().ok())
        .flatten()
}

fn query(parts: &Parts) -> Vec<(String, String)> {
    serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn missing(field: &str) -> Response {
    validation_error(
        StatusCode::BAD_REQUEST,
        "NotNull",
        "must not be null",
        field,
        json!([field]),
    )
}

/// The caller's user id when the token was granted for the profile in the path; the 403
/// of "profile not yours" otherwise.
fn owner_of_path(s: &State, parts: &Parts) -> Result<u64, Response> {
    let (user_id, consented) = user_caller(s, parts)?;
    match id_after(parts, "profiles") {
        Some(id) if id == consented => Ok(user_id),
        _ => Err(forbidden(s, parts)),
    }
}

/// `GET /v4/profiles/{profileId}/balances?types=STANDARD[,SAVINGS]`
pub(crate) async fn balances(AxState(app): AxState<App>, req: Request) -> Response {
    run(
        app,
        req,
        &["balances", "GET /v4/profiles/{profile_id}/balances"],
        |s, parts, _| {
            if let Err(r) = owner_of_path(s, parts) {
                return r;
            }
            let pairs = query(parts);
            let Some(types) = param(&pairs, "types") else {
                return missing("types");
            };
            let types: Vec<&str> = types.split(',').map(str::trim).collect();
            if types.iter().any(|t| *t != "STANDARD" && *t != "SAVINGS") {
                return validation_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID",
                    "types must be STANDARD or SAVINGS",
                    "types",
                    json!(["types"]),
                );
            }
            let now = s.now();
            let profile_id = id_after(parts, "profiles").unwrap_or(0);
            let list: Vec<Value> = s
                .wallet
                .balances(profile_id, now)
                .iter()
                .filter(|b| types.contains(&b.kind))
                .map(|b| b.json())
                .collect();
            json_response(StatusCode::OK, &Value::Array(list))
        },
    )
    .await
}

/// SCA's 403: `x-2fa-approval-result: REJECTED` and a new one-time token.
fn sca_required(s: &State, parts: &Parts, ott: &str) -> Response {
    let mut resp = json_response(
        StatusCode::FORBIDDEN,
        &json!({
            "timestamp": fmt_millis(s.now()),
            "status": 403,
            "error": "Forbidden",
            "message": "You are forbidden to send this request",
            "path": parts.uri.path(),
        }),
    );
    let h = resp.headers_mut();
    h.insert(
        "x-2fa-approval-result",
        HeaderValue::from_static("REJECTED"),
    );
    if let Ok(v) = HeaderValue::from_str(ott) {
        h.insert("x-2fa-approval", v);
    }
    resp
}

/// `GET /v1/profiles/{profileId}/balance-statements/{balanceId}/statement.json`: SCA
/// protected (a cleared one-time token in `x-2fa-approval`, or a 5-minute SCA session).
pub(crate) async fn statement(AxState(app): AxState<App>, req: Request) -> Response {
    run(
        app,
        req,
        &[
            "statement",
            "GET /v1/profiles/{profile_id}/balance-statements/{balance_id}/statement.json",
        ],
        |s, parts, _| {
            let user_id = match owner_of_path(s, parts) {
                Ok(u) => u,
                Err(r) => return r,
            };
            let pairs = query(parts);
            for field in ["currency", "intervalStart", "intervalEnd"] {
                if param(&pairs, field).is_none() {
                    return missing(field);
                }
            }
            let now = s.now();
            let profile_id = id_after(parts, "profiles").unwrap_or(0);
            let balance_id = id_after(parts, "balance-statements");
            let Some(balance) = s
                .wallet
                .balances(profile_id, now)
                .iter()
                .find(|b| Some(b.id) == balance_id)
                .cloned()
            else {
                return validation_error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "Balance not found",
                    "balanceId",
                    json!([]),
                );
            };
            let presented = parts
                .headers
                .get("x-2fa-approval")
                .and_then(|v| v.to_str().ok())
                .map(str::trim);
            let approved = match s.wallet.sca(user_id, STATEMENT_ACTION, presented, now) {
                ScaVerdict::Challenge(ott) => return sca_required(s, parts, &ott),
                ScaVerdict::Pass { approved } => approved,
            };
            let c = balance.currency;
            let credit = balance.cents + 18_914;
            let body = json!({
                "accountHolder": {"type": "PERSONAL", "address": {"addressFirstLine": "1 Example Street", "city": "London", "postCode": "EC1A 1BB", "stateCode": null, "countryName": "United Kingdom"}, "firstName": "Alice", "lastName": "Example"},
                "issuer": {"name": "Wise Payments Limited", "firstLine": "56 Shoreditch High Street", "city": "London", "postCode": "E1 6JJ", "stateCode": null, "country": "United Kingdom"},
                "bankDetails": null,
                "transactions": [
                    {"type": "CREDIT", "date": param(&pairs, "intervalStart"), "amount": money(credit, c), "totalFees": money(0, c),
                     "details": {"type": "DEPOSIT", "description": "Received money"}, "exchangeDetails": null,
                     "runningBalance": money(credit, c), "referenceNumber": format!("TRANSFER-{}", balance.id)},
                    {"type": "DEBIT", "date": param(&pairs, "intervalEnd"), "amount": money(-18_914, c), "totalFees": money(0, c),
                     "details": {"type": "CARD", "description": "Card transaction"}, "exchangeDetails": null,
                     "runningBalance": money(balance.cents, c), "referenceNumber": format!("CARD-{}", balance.id)},
                ],
                "endOfStatementBalance": money(balance.cents, c),
                "query": {"intervalStart": param(&pairs, "intervalStart"), "intervalEnd": param(&pairs, "intervalEnd"), "currency": param(&pairs, "currency"), "accountId": balance.id},
            });
            let mut resp = json_response(StatusCode::OK, &body);
            if approved {
                resp.headers_mut().insert(
                    "x-2fa-approval-result",
                    HeaderValue::from_static("APPROVED"),
                );
            }
            resp
        },
    )
    .await
}

fn one_time_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get("one-time-token")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

fn unknown_token() -> Response {
    validation_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "One-time token not found",
        "One-Time-Token",
        json!([]),
    )
}

/// `GET /v1/one-time-token/status` (`One-Time-Token` header): the challenges to clear.
pub(crate) async fn ott_status(AxState(app): AxState<App>, req: Request) -> Response {
    run(
        app,
        req,
        &["one_time_token", "GET /v1/one-time-token/status"],
        |s, parts, _| {
            let (user_id, _) = match user_caller(s, parts) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let ott = one_time_token(parts).unwrap_or_default();
            let now = s.now();
            match s.wallet.token(&ott, user_id) {
                Some(t) => json_response(StatusCode::OK, &t.status_json(&ott, now)),
                None => unknown_token(),
            }
        },
    )
    .await
}

/// `POST /v1/one-time-token/sms/verify` `{"otpCode":"111111"}` (`One-Time-Token` header):
/// the sandbox's fixed code clears the SMS challenge.
pub(crate) async fn ott_sms_verify(AxState(app): AxState<App>, req: Request) -> Response {
    run(
        app,
        req,
        &["one_time_token", "POST /v1/one-time-token/sms/verify"],
        |s, parts, raw| {
            let (user_id, _) = match user_caller(s, parts) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let ott = one_time_token(parts).unwrap_or_default();
            if s.wallet.token(&ott, user_id).is_none() {
                return unknown_token();
            }
            let code = serde_json::from_slice::<Value>(raw)
                .ok()
                .and_then(|v| v.get("otpCode").and_then(Value::as_str).map(str::to_owned));
            if code.as_deref() != Some(crate::state::TWO_FACTOR_CODE) {
                return validation_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID",
                    "The code is not valid",
                    "otpCode",
                    json!([]),
                );
            }
            s.wallet.approve(&ott);
            let now = s.now();
            match s.wallet.token(&ott, user_id) {
                Some(t) => json_response(StatusCode::OK, &t.status_json(&ott, now)),
                None => unknown_token(),
            }
        },
    )
    .await
}
