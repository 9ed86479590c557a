//! The demo app on axum.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRef, Query, Request, State};
use axum::http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::json;
use wise_oauth::axum::{WisePlugin, WiseRoutes, WiseToken, WiseUser};

use super::shared::{self, Demo, Sessions};

/// The app's state: its own, and the plugin `WiseToken` reads (through `FromRef`).
#[derive(Clone)]
struct AppState {
    demo: Arc<Demo>,
    wise: WisePlugin,
}

impl FromRef<AppState> for Arc<Demo> {
    fn from_ref(state: &AppState) -> Self {
        state.demo.clone()
    }
}

impl FromRef<AppState> for WisePlugin {
    fn from_ref(state: &AppState) -> Self {
        state.wise.clone()
    }
}

/// The whole demo app: its own pages and login, plus the plugin's routes under `/wise`.
pub(crate) fn app(demo: Arc<Demo>) -> Router {
    let wise_routes = WiseRoutes::new(demo.wise.clone());
    let router = Router::new();
    #[cfg(feature = "metrics")]
    let router = router.route("/metrics", get(metrics_text));
    router
        .route("/", get(home))
        .route("/demo/login", get(login))
        .route("/demo/logout", post(logout))
        .route("/profile", get(profile_page))
        .route("/api/profile", get(profile_api))
        .route("/statement", get(statement_page))
        .route("/statement/approve", post(statement_approve))
        .merge(wise_routes.router())
        .layer(middleware::from_fn_with_state(demo.clone(), demo_auth))
        .with_state(AppState {
            demo,
            wise: wise_routes.plugin(),
        })
}

/// The app's own login: a demo session cookie. This is the one place that tells the
/// plugin who the user is.
async fn demo_auth(State(demo): State<Arc<Demo>>, mut req: Request, next: Next) -> Response {
    let user = req
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| demo.user_from_cookies(c));
    if let Some(user) = user {
        req.extensions_mut().insert(WiseUser::new(user));
    }
    next.run(req).await
}

async fn home(
    State(demo): State<Arc<Demo>>,
    user: Option<axum::Extension<WiseUser>>,
) -> Html<String> {
    let user = user.map(|u| u.0.id().clone());
    let status = match &user {
        Some(u) => demo.wise.status(u).await.map_err(|e| e.to_string()),
        None => Ok(None),
    };
    Html(shared::home_page(user.as_ref(), status, "/wise"))
}

async fn login(
    State(demo): State<Arc<Demo>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(user) = query.get("user").and_then(|u| shared::demo_user(u)) else {
        return (
            StatusCode::BAD_REQUEST,
            Html(shared::error_page(
                "Log in",
                "Use 1 to 64 letters, digits, -, _, . or @.",
            )),
        )
            .into_response();
    };
    let cookie = demo.sessions.login(user);
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, "/".to_owned()), (SET_COOKIE, cookie)],
    )
        .into_response()
}

async fn logout() -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, "/".to_owned()),
            (SET_COOKIE, Sessions::logout_cookie()),
        ],
    )
        .into_response()
}

/// A shared page answer as an axum response.
/// `GET /metrics`: the library's figures in the Prometheus text format.
#[cfg(feature = "metrics")]
async fn metrics_text() -> Response {
    match shared::metrics_text() {
        Some(text) => ([(CONTENT_TYPE, shared::METRICS_CONTENT_TYPE)], text).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn answer(answer: shared::Answer) -> Response {
    match answer {
        shared::Answer::Page(status, page) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Html(page),
        )
            .into_response(),
        shared::Answer::Redirect(to) => (StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response(),
    }
}

/// The profile and its balances through `token.client_for(..)`: the client takes the
/// current token on every call and repeats a 401 once with a newer one, so the handler has
/// no 401 handling of its own; the request's `X-Request-Id` goes to Wise as the
/// correlation id.
async fn profile_page(token: WiseToken, headers: HeaderMap) -> Response {
    answer(shared::profile_answer(&token.client_for(&headers), token.profile_id()).await)
}

/// The first call of the SCA-protected statement: the statement, or the challenge page.
async fn statement_page(
    State(demo): State<Arc<Demo>>,
    token: WiseToken,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some((balance, currency)) = shared::statement_params(&query) else {
        return answer(shared::Answer::Page(
            400,
            shared::error_page("Statement", "Pick a balance on the profile page."),
        ));
    };
    let client = token.client_for(&headers);
    answer(shared::statement_answer(&demo, &client, token.profile_id(), balance, &currency).await)
}

/// The challenge approved at the emulator, then the call repeated with the one-time token.
async fn statement_approve(
    State(demo): State<Arc<Demo>>,
    token: WiseToken,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let client = token.client_for(&headers);
    answer(shared::statement_approved_answer(&demo, &client, token.profile_id(), &form).await)
}

async fn profile_api(token: WiseToken, headers: HeaderMap) -> Response {
    let client = token.client_for(&headers);
    match shared::profile_and_balances(&client, token.profile_id()).await {
        Ok((profile, balances)) => Json(json!({
            "user": token.user().as_str(),
            "profile_id": token.profile_id().get(),
            "token_fingerprint": shared::fingerprint(token.access_token().expose_secret()),
            "profile": profile,
            "balances": balances.iter().map(|b| json!({
                "id": b.id, "currency": b.currency, "amount": b.amount.value(),
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => {
            let (status, body) = shared::api_failure(&e, "/api/profile");
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                [(CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        }
    }
}
