//! `GET|POST /oauth/authorize[/]`: login, 2FA, profile choice, consent, redirect.

use axum::extract::{Request, State as AxState};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::faults::{self, ConnKill, FaultAction, FaultKind};
use crate::html::{
    consent_page, error_page, login_page, profile_page, two_factor_page, ProfileChoice,
};
use crate::server::{duplicated, is_form, parse_pairs, read_body, App};
use crate::state::{AuthParams, AuthSession, Pkce, PkceMethod, Stage, State, TWO_FACTOR_CODE};

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// A 302 to `uri` with `params` appended to its query.
fn redirect_to(uri: &str, params: &[(&str, &str)]) -> Response {
    let base = uri.split_once('#').map_or(uri, |(b, _)| b);
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if !base.contains('?') {
        "?"
    } else if base.ends_with('?') || base.ends_with('&') {
        ""
    } else {
        "&"
    };
    let location = format!("{base}{sep}{query}");
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            let mut resp = StatusCode::FOUND.into_response();
            let h = resp.headers_mut();
            h.insert(header::LOCATION, v);
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            resp
        }
        Err(_) => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Cannot redirect",
            "The registered redirect URI cannot be used in a Location header.",
        ),
    }
}

fn error_redirect(params: &AuthParams, error: &str, description: &str) -> Response {
    let mut q = vec![("error", error), ("error_description", description)];
    if let Some(st) = &params.state {
        q.push(("state", st));
    }
    redirect_to(&params.redirect_uri, &q)
}

fn approve(s: &mut State, params: &AuthParams, user_id: u64, profile_id: u64) -> Response {
    let code = s.issue_code(params, user_id, profile_id);
    let pid = profile_id.to_string();
    let mut q = vec![("code", code.as_str())];
    if let Some(st) = &params.state {
        q.push(("state", st));
    }
    q.push(("profileId", &pid));
    redirect_to(&params.redirect_uri, &q)
}

/// RFC 7636: 43 to 128 unreserved characters.
fn valid_pkce_value(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `GET /oauth/authorize[/]`: validates the request, then the login page (or auto-approve).
pub(crate) async fn get_page(AxState(app): AxState<App>, req: Request) -> Response {
    let kill = req.extensions().get::<ConnKill>().cloned();
    let fault = app.take_fault(&["authorize", "GET /oauth/authorize"]);
    if let Some(late) = fault
        .as_ref()
        .filter(|f| f.kind == FaultKind::LateCompletion)
    {
        let worker = app.clone();
        let query = req.uri().query().unwrap_or("").to_owned();
        return faults::complete_late(&app, late, move || authorize_request(&worker, &query)).await;
    }
    let action = faults::begin(fault.as_ref(), kill.as_ref()).await;
    if let FaultAction::Respond(r) = action {
        return r;
    }
    let resp = authorize_request(&app, req.uri().query().unwrap_or(""));
    faults::finish(
        matches!(action, FaultAction::DropAfter),
        kill.as_ref(),
        resp,
    )
    .await
}

fn authorize_request(app: &App, query: &str) -> Response {
    let bad = |msg: &str| error_page(StatusCode::BAD_REQUEST, "Something went wrong", msg);
    let Ok(pairs) = parse_pairs(query.as_bytes()) else {
        return bad("The authorization request is malformed.");
    };
    if let Some(d) = duplicated(&pairs) {
        return bad(&format!("The parameter {d} appears more than once."));
    }
    let mut s = app.lock();
    let Some(client_id) = get(&pairs, "client_id") else {
        return bad("The request has no client_id.");
    };
    if !s.clients.contains_key(client_id) {
        return bad("This application is not registered with Wise (unknown client_id).");
    }
    let Some(redirect_uri) = get(&pairs, "redirect_uri") else {
        return bad("The request has no redirect_uri.");
    };
    if !s.redirect_registered(client_id, redirect_uri) {
        return bad(
            "The redirect_uri does not exactly match any URI registered for this application.",
        );
    }
    let mut params = AuthParams {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        state: pairs
            .iter()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.clone()),
        pkce: None,
    };
    if let Some(rt) = get(&pairs, "response_type") {
        if rt != "code" {
            return error_redirect(
                &params,
                "unsupported_response_type",
                "Only response_type=code is supported",
            );
        }
    }
    if let Some(challenge) = get(&pairs, "code_challenge") {
        let method = match get(&pairs, "code_challenge_method").unwrap_or("plain") {
            "S256" => PkceMethod::S256,
            "plain" => PkceMethod::Plain,
            _ => {
                return error_redirect(
                    &params,
                    "invalid_request",
                    "Unsupported code_challenge_method",
                )
            }
        };
        if !valid_pkce_value(challenge) {
            return error_redirect(&params, "invalid_request", "Invalid code_challenge");
        }
        params.pkce = Some(Pkce {
            method,
            challenge: challenge.to_owned(),
        });
    }
    if let Some(email) = s.auto_approve.clone() {
        let Some(user) = s.user_by_email(&email) else {
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Auto-approve failed",
                &format!("The auto-approve user {email} does not exist."),
            );
        };
        let user_id = user.id;
        let Some(profile_id) = user.profiles.first().copied() else {
            return error_redirect(&params, "access_denied", "The user has no profile");
        };
        return approve(&mut s, &params, user_id, profile_id);
    }
    let sid = s.new_session(params);
    login_page(StatusCode::OK, &sid, client_id, "", None)
}

fn choices(s: &State, user_id: u64) -> Vec<ProfileChoice> {
    s.user(user_id)
        .map(|u| {
            u.profiles
                .iter()
                .filter_map(|pid| s.profile(*pid))
                .map(|p| ProfileChoice {
                    id: p.id,
                    kind: p.kind,
                    name: p.name.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The page for the session's current stage, with an optional error.
fn stage_page(
    s: &State,
    sid: &str,
    sess: &AuthSession,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let client = &sess.params.client_id;
    match sess.stage {
        Stage::Login => login_page(status, sid, client, "", error),
        Stage::TwoFactor { user_id } => {
            let email = s.user(user_id).map(|u| u.email.clone()).unwrap_or_default();
            two_factor_page(status, sid, &email, error)
        }
        Stage::Profile { user_id } => {
            profile_page(status, sid, client, &choices(s, user_id), error)
        }
        Stage::Consent {
            user_id,
            profile_id,
        } => match choices(s, user_id).into_iter().find(|p| p.id == profile_id) {
            Some(p) => consent_page(status, sid, client, &p, error),
            None => login_page(status, sid, client, "", error),
        },
    }
}

/// `POST /oauth/authorize[/]`: one step of the login.
pub(crate) async fn post_page(AxState(app): AxState<App>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let raw = match read_body(body).await {
        Ok(b) => b,
        Err(_) => {
            return error_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Something went wrong",
                "The form submission is too large.",
            )
        }
    };
    if !is_form(&parts.headers) {
        return error_page(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Something went wrong",
            "Expected a form submission.",
        );
    }
    let Ok(pairs) = parse_pairs(&raw) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Something went wrong",
            "The form is malformed.",
        );
    };
    if let Some(d) = duplicated(&pairs) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Something went wrong",
            &format!("The field {d} appears more than once."),
        );
    }
    let mut s = app.lock();
    let expired = || {
        error_page(
            StatusCode::BAD_REQUEST,
            "Session expired",
            "This sign-in session has expired or is unknown. Start again from the application.",
        )
    };
    let Some(sid) = get(&pairs, "session") else {
        return expired();
    };
    let Some(sess) = s.session(sid).cloned() else {
        return expired();
    };
    let client = sess.params.client_id.clone();
    match (get(&pairs, "step"), sess.stage) {
        (Some("login"), _) => {
            let email = get(&pairs, "email").unwrap_or("");
            let password = get(&pairs, "password").unwrap_or("");
            let Some(user_id) = s.login(email, password) else {
                s.set_stage(sid, Stage::Login);
                return login_page(
                    StatusCode::UNAUTHORIZED,
                    sid,
                    &client,
                    email,
                    Some("Incorrect email or password."),
                );
            };
            let two_factor = s.user(user_id).is_some_and(|u| u.two_factor);
            let stage = if two_factor {
                Stage::TwoFactor { user_id }
            } else {
                Stage::Profile { user_id }
            };
            s.set_stage(sid, stage);
            let sess = AuthSession { stage, ..sess };
            stage_page(&s, sid, &sess, StatusCode::OK, None)
        }
        (Some("2fa"), Stage::TwoFactor { user_id }) => {
            if get(&pairs, "code").map(str::trim) == Some(TWO_FACTOR_CODE) {
                let stage = Stage::Profile { user_id };
                s.set_stage(sid, stage);
                stage_page(
                    &s,
                    sid,
                    &AuthSession { stage, ..sess },
                    StatusCode::OK,
                    None,
                )
            } else {
                stage_page(
                    &s,
                    sid,
                    &sess,
                    StatusCode::UNAUTHORIZED,
                    Some("That code is not right. Try again."),
                )
            }
        }
        (Some("profile"), Stage::Profile { user_id } | Stage::Consent { user_id, .. }) => {
            let chosen = get(&pairs, "profileId")
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|id| choices(&s, user_id).iter().any(|p| p.id == *id));
            let Some(profile_id) = chosen else {
                let sess = AuthSession {
                    stage: Stage::Profile { user_id },
                    ..sess
                };
                s.set_stage(sid, sess.stage);
                return stage_page(
                    &s,
                    sid,
                    &sess,
                    StatusCode::BAD_REQUEST,
                    Some("Choose one of your profiles."),
                );
            };
            let stage = Stage::Consent {
                user_id,
                profile_id,
            };
            s.set_stage(sid, stage);
            stage_page(
                &s,
                sid,
                &AuthSession { stage, ..sess },
                StatusCode::OK,
                None,
            )
        }
        (Some("consent"), stage @ (Stage::Consent { .. } | Stage::Profile { .. })) => {
            match (get(&pairs, "decision"), stage) {
                (
                    Some("approve"),
                    Stage::Consent {
                        user_id,
                        profile_id,
                    },
                ) => {
                    s.end_session(sid);
                    approve(&mut s, &sess.params, user_id, profile_id)
                }
                (Some("deny"), _) => {
                    s.end_session(sid);
                    error_redirect(&sess.params, "access_denied", "The user denied the request")
                }
                _ => stage_page(
                    &s,
                    sid,
                    &sess,
                    StatusCode::BAD_REQUEST,
                    Some("Choose Allow or Deny."),
                ),
            }
        }
        _ => stage_page(
            &s,
            sid,
            &sess,
            StatusCode::BAD_REQUEST,
            Some("Please continue from this step."),
        ),
    }
}
