//! The demo app on axum.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRef, Query, Request, State};
use axum::http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use wise_oauth::axum::{WisePlugin, WiseRoutes, WiseToken, WiseTokenRejection, WiseUser};

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
    Router::new()
        .route("/", get(home))
        .route("/demo/login", get(login))
        .route("/demo/logout", post(logout))
        .route("/profile", get(profile_page))
        .route("/api/profile", get(profile_api))
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

enum Failure {
    /// The library's own answer (e.g. a redirect into the link flow).
    Rejected(WiseTokenRejection),
    /// Wise answered something unexpected.
    Wise(String),
}

/// Calls `/v2/profiles/{id}` with the token; on a 401 asks the library for a newer token
/// once (it re-reads the store or refreshes).
async fn fetch(demo: &Demo, token: WiseToken) -> Result<(WiseToken, serde_json::Value), Failure> {
    let id = token.profile_id();
    match demo
        .fetch_profile(token.access_token().expose_secret(), id)
        .await
    {
        Ok(Some(profile)) => Ok((token, profile)),
        Ok(None) => {
            let token = token
                .after_unauthorized()
                .await
                .map_err(Failure::Rejected)?;
            match demo
                .fetch_profile(token.access_token().expose_secret(), id)
                .await
            {
                Ok(Some(profile)) => Ok((token, profile)),
                Ok(None) => Err(Failure::Wise("Wise rejected the token".to_owned())),
                Err(e) => Err(Failure::Wise(e)),
            }
        }
        Err(e) => Err(Failure::Wise(e)),
    }
}

async fn profile_page(State(demo): State<Arc<Demo>>, token: WiseToken) -> Response {
    match fetch(&demo, token).await {
        Ok((token, profile)) => {
            Html(shared::profile_page(token.profile_id(), &profile)).into_response()
        }
        Err(Failure::Rejected(rejection)) => rejection.into_response(),
        Err(Failure::Wise(message)) => (
            StatusCode::BAD_GATEWAY,
            Html(shared::error_page("Wise error", &message)),
        )
            .into_response(),
    }
}

async fn profile_api(State(demo): State<Arc<Demo>>, token: WiseToken) -> Response {
    match fetch(&demo, token).await {
        Ok((token, profile)) => Json(json!({
            "user": token.user().as_str(),
            "profile_id": token.profile_id().get(),
            "token_fingerprint": shared::fingerprint(token.access_token().expose_secret()),
            "profile": profile,
        }))
        .into_response(),
        Err(Failure::Rejected(rejection)) => rejection.into_response(),
        Err(Failure::Wise(message)) => (
            StatusCode::BAD_GATEWAY,
            [(CONTENT_TYPE, "application/json")],
            json!({ "error": "wise_error", "message": message }).to_string(),
        )
            .into_response(),
    }
}
