//! The Wise API calls made around linking: user, profiles, signup, claim account.
// Early-return helpers hand back a ready `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use axum::extract::{Request, State as AxState};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::clock::fmt_millis;
use crate::error::{json_response, validation_error};
use crate::faults::{self, ConnKill, FaultAction, FaultKind};
use crate::server::{read_body, App};
use crate::state::{valid_email, Owner, Profile, State, User};
use crate::users::{NewProfile, NewUser, ProfileKind};

/// Who presented the bearer token.
enum Caller {
    App { client_id: String },
    User { user_id: u64, profile_id: u64 },
}

/// Reads the body, applies the rate limit and faults for `keys`, then runs `f` under the
/// state lock.
pub(crate) async fn run(
    app: App,
    req: Request,
    keys: &[&str],
    f: impl FnOnce(&mut State, &Parts, &[u8]) -> Response + Send + 'static,
) -> Response {
    let kill = req.extensions().get::<ConnKill>().cloned();
    let (parts, body) = req.into_parts();
    let raw = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_oauth().into_response(),
    };
    let client = bearer(&parts).and_then(|t| app.lock().token_client(&t).map(str::to_owned));
    if let Some(resp) = app.rate_limit(client.as_deref()) {
        return resp;
    }
    let fault = app.take_fault(keys);
    if let Some(late) = fault
        .as_ref()
        .filter(|f| f.kind == FaultKind::LateCompletion)
    {
        let worker = app.clone();
        return faults::complete_late(&app, late, move || {
            let mut s = worker.lock();
            f(&mut s, &parts, &raw)
        })
        .await;
    }
    let action = faults::begin(fault.as_ref(), kill.as_ref()).await;
    if let FaultAction::Respond(r) = action {
        return r;
    }
    let resp = {
        let mut s = app.lock();
        f(&mut s, &parts, &raw)
    };
    faults::finish(
        matches!(action, FaultAction::DropAfter),
        kill.as_ref(),
        resp,
    )
    .await
}

/// The token of an `Authorization: Bearer <token>` header (bytes decoded lossily).
fn bearer(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(header::AUTHORIZATION)?;
    let value = String::from_utf8_lossy(value.as_bytes());
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn authenticate(s: &State, parts: &Parts) -> Result<Caller, Response> {
    let unauthorized = || {
        json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "unauthorized", "error_description": "Full authentication is required to access this resource"}),
        )
    };
    let Some(token) = bearer(parts) else {
        return Err(unauthorized());
    };
    match s.access_valid(&token) {
        Some(rec) => Ok(match rec.owner {
            Owner::App => Caller::App {
                client_id: rec.client_id.clone(),
            },
            Owner::User {
                user_id,
                profile_id,
            } => Caller::User {
                user_id,
                profile_id,
            },
        }),
        None => Err(json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "invalid_token", "error_description": token}),
        )),
    }
}

/// Wise's 403 shape.
pub(crate) fn forbidden(s: &State, parts: &Parts) -> Response {
    json_response(
        StatusCode::FORBIDDEN,
        &json!({
            "timestamp": fmt_millis(s.now()),
            "status": 403,
            "error": "unauthorized",
            "message": "Unauthorized",
            "path": parts.uri.path(),
        }),
    )
}

fn not_found(parts: &Parts) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"errors": [{"code": "NOT_FOUND", "message": "Profile not found", "path": parts.uri.path(), "arguments": []}]}),
    )
}

/// The caller must be a user; returns (user id, consented profile id).
pub(crate) fn user_caller(s: &State, parts: &Parts) -> Result<(u64, u64), Response> {
    match authenticate(s, parts)? {
        Caller::User {
            user_id,
            profile_id,
        } => Ok((user_id, profile_id)),
        Caller::App { .. } => Err(forbidden(s, parts)),
    }
}

/// The caller must hold a client-credentials token; returns its client id.
fn app_caller(s: &State, parts: &Parts) -> Result<String, Response> {
    match authenticate(s, parts)? {
        Caller::App { client_id } => Ok(client_id),
        Caller::User { .. } => Err(forbidden(s, parts)),
    }
}

fn address() -> Value {
    json!({"countryCode": "GB", "firstLine": "1 Example Street", "postCode": "EC1A 1BB", "city": "London", "state": null})
}

fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "name": format!("{} {}", u.first_name, u.last_name).trim(),
        "email": u.email,
        "active": true,
        "details": {
            "firstName": u.first_name,
            "lastName": u.last_name,
            "phoneNumber": "+447700900123",
            "dateOfBirth": "1990-01-01",
            "occupation": null,
            "avatar": null,
            "primaryAddress": null,
            "address": address(),
        }
    })
}

fn split_name(name: &str) -> (String, String) {
    let mut parts = name.splitn(2, ' ');
    (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    )
}

fn profile_v2_json(p: &Profile, email: &str) -> Value {
    let mut v = json!({
        "id": p.id,
        "publicId": p.public_id,
        "userId": p.user_id,
        "type": p.kind.upper(),
        "fullName": p.name,
        "email": email,
        "currentState": "VISIBLE",
        "address": {"addressFirstLine": "1 Example Street", "city": "London", "countryIso2Code": "GB", "countryIso3Code": "gbr", "postCode": "EC1A 1BB", "stateCode": null},
        "contactDetails": {"email": email, "phoneNumber": "+447700900123"},
        "createdAt": fmt_millis(p.created_at),
        "updatedAt": fmt_millis(p.created_at),
    });
    if let Some(obj) = v.as_object_mut() {
        match p.kind {
            ProfileKind::Personal => {
                let (first, last) = split_name(&p.name);
                obj.insert("firstName".into(), json!(first));
                obj.insert("lastName".into(), json!(last));
                obj.insert("dateOfBirth".into(), json!("1990-01-01"));
            }
            ProfileKind::Business => {
                obj.insert("businessName".into(), json!(p.name));
                obj.insert("registrationNumber".into(), json!("07209813"));
                obj.insert("companyType".into(), json!("LIMITED"));
            }
        }
    }
    v
}

fn profile_v1_json(p: &Profile) -> Value {
    let details = match p.kind {
        ProfileKind::Personal => {
            let (first, last) = split_name(&p.name);
            json!({"firstName": first, "lastName": last, "dateOfBirth": "1990-01-01", "phoneNumber": "+447700900123", "avatar": null, "occupation": null, "primaryAddress": null})
        }
        ProfileKind::Business => json!({
            "name": p.name, "registrationNumber": "07209813", "companyType": "LIMITED",
            "companyRole": "OWNER", "descriptionOfBusiness": "IT_SERVICES", "primaryAddress": null, "webpage": null
        }),
    };
    json!({"id": p.id, "type": p.kind.lower(), "details": details})
}

fn consented(s: &State, user_id: u64, profile_id: u64) -> Option<(&Profile, String)> {
    let email = s.user(user_id)?.email.clone();
    s.profile(profile_id)
        .filter(|p| p.user_id == user_id)
        .map(|p| (p, email))
}

/// `GET /v1/me`
pub(crate) async fn me(AxState(app): AxState<App>, req: Request) -> Response {
    run(app, req, &["me", "GET /v1/me"], |s, parts, _| {
        let (user_id, _) = match user_caller(s, parts) {
            Ok(c) => c,
            Err(r) => return r,
        };
        match s.user(user_id) {
            Some(u) => json_response(StatusCode::OK, &user_json(u)),
            None => forbidden(s, parts),
        }
    })
    .await
}

/// `GET /v2/profiles`: only the consented profile.
pub(crate) async fn profiles_v2(AxState(app): AxState<App>, req: Request) -> Response {
    run(
        app,
        req,
        &["profiles", "GET /v2/profiles"],
        |s, parts, _| {
            let (user_id, profile_id) = match user_caller(s, parts) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let list: Vec<Value> = consented(s, user_id, profile_id)
                .map(|(p, email)| profile_v2_json(p, &email))
                .into_iter()
                .collect();
            json_response(StatusCode::OK, &Value::Array(list))
        },
    )
    .await
}

/// `GET /v2/profiles/{id}`: 200 for the consented profile, 403 for the user's other
/// profiles, 404 otherwise.
pub(crate) async fn profile_v2(AxState(app): AxState<App>, req: Request) -> Response {
    run(
        app,
        req,
        &["profiles", "profile", "GET /v2/profiles/{id}"],
        |s, parts, _| {
            let (user_id, profile_id) = match user_caller(s, parts) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let raw = parts.uri.path().rsplit('/').next().unwrap_or("");
            let id = if !raw.is_empty()
                && raw.bytes().all(|b| b.is_ascii_digit())
                && !raw.starts_with('0')
            {
                raw.parse::<u64>().ok()
            } else {
                None
            };
            let Some(id) = id else {
                return not_found(parts);
            };
            if id == profile_id {
                if let Some((p, email)) = consented(s, user_id, profile_id) {
                    return json_response(StatusCode::OK, &profile_v2_json(p, &email));
                }
            }
            match s.profile(id) {
                Some(p) if p.user_id == user_id => forbidden(s, parts),
                _ => not_found(parts),
            }
        },
    )
    .await
}

/// `GET /v1/profiles` (legacy shape, lowercase type).
pub(crate) async fn profiles_v1(AxState(app): AxState<App>, req: Request) -> Response {
    run(
        app,
        req,
        &["profiles", "GET /v1/profiles"],
        |s, parts, _| {
            let (user_id, profile_id) = match user_caller(s, parts) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let list: Vec<Value> = consented(s, user_id, profile_id)
                .map(|(p, _)| profile_v1_json(p))
                .into_iter()
                .collect();
            json_response(StatusCode::OK, &Value::Array(list))
        },
    )
    .await
}

fn parse_json(raw: &[u8]) -> Result<serde_json::Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(validation_error(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            "Request body must be a JSON object",
            "",
            json!([]),
        )),
    }
}

fn not_null(field: &str) -> Response {
    validation_error(
        StatusCode::BAD_REQUEST,
        "NotNull",
        "must not be null",
        field,
        json!([field]),
    )
}

fn string_field<'a>(
    m: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<&'a str, Response> {
    match m.get(field) {
        Some(Value::String(v)) if !v.is_empty() => Ok(v),
        _ => Err(not_null(field)),
    }
}

/// `POST /v1/user/signup/registration_code` (client-credentials token).
pub(crate) async fn signup(AxState(app): AxState<App>, req: Request) -> Response {
    run(
        app,
        req,
        &["signup", "POST /v1/user/signup/registration_code"],
        |s, parts, raw| {
            let client_id = match app_caller(s, parts) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let body = match parse_json(raw) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let email = match string_field(&body, "email") {
                Ok(e) => e.trim().to_owned(),
                Err(r) => return r,
            };
            let code = match string_field(&body, "registrationCode") {
                Ok(c) => c.to_owned(),
                Err(r) => return r,
            };
            if code.chars().count() < 32 {
                return validation_error(
                    StatusCode::BAD_REQUEST,
                    "Size",
                    "size must be between 32 and 2147483647",
                    "registrationCode",
                    json!(["registrationCode", 2_147_483_647, 32]),
                );
            }
            if !valid_email(&email) {
                return validation_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "NOT_VALID",
                    "Please enter a valid email address",
                    "email",
                    json!(["email", email]),
                );
            }
            if s.user_by_email(&email).is_some() {
                return validation_error(
                    StatusCode::CONFLICT,
                    "NOT_UNIQUE",
                    "You\u{2019}re already a member. Please login",
                    "email",
                    json!(["email", email]),
                );
            }
            let name = email.split('@').next().unwrap_or("User").to_owned();
            let new = NewUser {
                email: email.clone(),
                password: crate::state::random_code(24),
                two_factor: false,
                profiles: vec![NewProfile::personal(name)],
            };
            match s.create_user(new, Some((client_id, code))) {
                Ok(created) => json_response(
                    StatusCode::OK,
                    &json!({"id": created.user_id, "name": null, "email": email, "active": true, "details": null}),
                ),
                Err(e) => validation_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "NOT_VALID",
                    &e.to_string(),
                    "email",
                    json!(["email"]),
                ),
            }
        },
    )
    .await
}

/// `POST /v1/users/exists` (client-credentials token).
pub(crate) async fn users_exists(AxState(app): AxState<App>, req: Request) -> Response {
    run(
        app,
        req,
        &["users_exists", "POST /v1/users/exists"],
        |s, parts, raw| {
            if let Err(r) = app_caller(s, parts) {
                return r;
            }
            let body = match parse_json(raw) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let email = match string_field(&body, "email") {
                Ok(e) => e,
                Err(r) => return r,
            };
            json_response(
                StatusCode::OK,
                &json!({"exists": s.user_by_email(email).is_some()}),
            )
        },
    )
    .await
}

/// `POST /v1/user/claim-account` (user token): `{"registrationCode"}` → `{"claimAccountCode"}`.
pub(crate) async fn claim_account(AxState(app): AxState<App>, req: Request) -> Response {
    run(
        app,
        req,
        &["claim_account", "POST /v1/user/claim-account"],
        |s, parts, raw| {
            let (user_id, _) = match user_caller(s, parts) {
                Ok(c) => c,
                Err(r) => return r,
            };
            let body = match parse_json(raw) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let code = match string_field(&body, "registrationCode") {
                Ok(c) => c.to_owned(),
                Err(r) => return r,
            };
            if !s.registration_code_matches(user_id, &code) {
                return validation_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID",
                    "Invalid registration code",
                    "registrationCode",
                    json!(["registrationCode"]),
                );
            }
            let claim = s.new_claim_code(user_id);
            json_response(StatusCode::OK, &json!({"claimAccountCode": claim}))
        },
    )
    .await
}
