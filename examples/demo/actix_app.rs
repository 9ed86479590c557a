//! The demo app on actix-web: the same routes, pages and login as `axum_app`.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use actix_web::middleware::{from_fn, Next};
use actix_web::{guard, web, App, Error, HttpMessage, HttpRequest, HttpResponse};
use serde_json::json;
use wise_oauth::actix::{WiseRoutes, WiseToken, WiseUser};

use super::shared::{self, Demo, Sessions};

/// The whole demo app: its own pages and login, plus the plugin's routes under `/wise`.
/// Call it inside the `HttpServer::new` factory (once per worker).
pub(crate) fn app(
    demo: Arc<Demo>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    let wise_routes = WiseRoutes::new(demo.wise.clone());
    let app = App::new();
    #[cfg(feature = "metrics")]
    let app = app.route("/metrics", get().to(metrics_text));
    app.app_data(web::Data::from(demo))
        .configure(|cfg| wise_routes.configure(cfg))
        .route("/", get().to(home))
        .route("/demo/login", get().to(login))
        .route("/demo/logout", web::post().to(logout))
        .route("/profile", get().to(profile_page))
        .route("/api/profile", get().to(profile_api))
        .route("/statement", get().to(statement_page))
        .route("/statement/approve", web::post().to(statement_approve))
        .wrap(from_fn(demo_auth))
}

/// A GET route that also answers HEAD, like axum's `get`.
fn get() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// The app's own login: a demo session cookie. This is the one place that tells the
/// plugin who the user is.
async fn demo_auth(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let user = req.app_data::<web::Data<Demo>>().and_then(|demo| {
        req.headers()
            .get_all(COOKIE)
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| demo.user_from_cookies(c))
    });
    if let Some(user) = user {
        req.extensions_mut().insert(WiseUser::new(user));
    }
    next.call(req).await
}

/// `GET /metrics`: the library's figures in the Prometheus text format.
#[cfg(feature = "metrics")]
async fn metrics_text() -> HttpResponse {
    match shared::metrics_text() {
        Some(text) => HttpResponse::Ok()
            .content_type(shared::METRICS_CONTENT_TYPE)
            .body(text),
        None => HttpResponse::NotFound().finish(),
    }
}

fn html(status: actix_web::http::StatusCode, page: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page)
}

async fn home(demo: web::Data<Demo>, user: Option<web::ReqData<WiseUser>>) -> HttpResponse {
    let user = user.map(|u| u.id().clone());
    let status = match &user {
        Some(u) => demo.wise.status(u).await.map_err(|e| e.to_string()),
        None => Ok(None),
    };
    html(
        actix_web::http::StatusCode::OK,
        shared::home_page(user.as_ref(), status, "/wise"),
    )
}

async fn login(demo: web::Data<Demo>, query: web::Query<HashMap<String, String>>) -> HttpResponse {
    let Some(user) = query.get("user").and_then(|u| shared::demo_user(u)) else {
        return html(
            actix_web::http::StatusCode::BAD_REQUEST,
            shared::error_page("Log in", "Use 1 to 64 letters, digits, -, _, . or @."),
        );
    };
    let cookie = demo.sessions.login(user);
    HttpResponse::SeeOther()
        .insert_header((LOCATION, "/"))
        .insert_header((SET_COOKIE, cookie))
        .finish()
}

async fn logout() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, "/"))
        .insert_header((SET_COOKIE, Sessions::logout_cookie()))
        .finish()
}

/// A shared page answer as an actix-web response.
fn answer(answer: shared::Answer) -> HttpResponse {
    match answer {
        shared::Answer::Page(status, page) => html(
            actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
            page,
        ),
        shared::Answer::Redirect(to) => HttpResponse::SeeOther()
            .insert_header((LOCATION, to))
            .finish(),
    }
}

/// The profile and its balances through `token.client_for(..)`: the client takes the
/// current token on every call and repeats a 401 once with a newer one, so the handler has
/// no 401 handling of its own; the request's `X-Request-Id` goes to Wise as the
/// correlation id.
async fn profile_page(token: WiseToken, req: HttpRequest) -> HttpResponse {
    answer(shared::profile_answer(&token.client_for(&req), token.profile_id()).await)
}

/// The first call of the SCA-protected statement: the statement, or the challenge page.
async fn statement_page(
    demo: web::Data<Demo>,
    token: WiseToken,
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let Some((balance, currency)) = shared::statement_params(&query) else {
        return answer(shared::Answer::Page(
            400,
            shared::error_page("Statement", "Pick a balance on the profile page."),
        ));
    };
    let client = token.client_for(&req);
    answer(shared::statement_answer(&demo, &client, token.profile_id(), balance, &currency).await)
}

/// The challenge approved at the emulator, then the call repeated with the one-time token.
async fn statement_approve(
    demo: web::Data<Demo>,
    token: WiseToken,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let client = token.client_for(&req);
    answer(shared::statement_approved_answer(&demo, &client, token.profile_id(), &form).await)
}

async fn profile_api(token: WiseToken, req: HttpRequest) -> HttpResponse {
    let client = token.client_for(&req);
    match shared::profile_and_balances(&client, token.profile_id()).await {
        Ok((profile, balances)) => HttpResponse::Ok().json(json!({
            "user": token.user().as_str(),
            "profile_id": token.profile_id().get(),
            "token_fingerprint": shared::fingerprint(token.access_token().expose_secret()),
            "profile": profile,
            "balances": balances.iter().map(|b| json!({
                "id": b.id, "currency": b.currency, "amount": b.amount.value(),
            })).collect::<Vec<_>>(),
        })),
        Err(e) => {
            let (status, body) = shared::api_failure(&e, "/api/profile");
            HttpResponse::build(
                actix_web::http::StatusCode::from_u16(status)
                    .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY),
            )
            .insert_header((CONTENT_TYPE, "application/json"))
            .body(body.to_string())
        }
    }
}
