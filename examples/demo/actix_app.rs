//! The demo app on actix-web: the same routes, pages and login as `axum_app`.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use actix_web::middleware::{from_fn, Next};
use actix_web::{guard, web, App, Error, HttpMessage, HttpResponse, ResponseError};
use serde_json::json;
use wise_oauth::actix::{WiseRoutes, WiseToken, WiseTokenRejection, WiseUser};

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
    App::new()
        .app_data(web::Data::from(demo))
        .configure(|cfg| wise_routes.configure(cfg))
        .route("/", get().to(home))
        .route("/demo/login", get().to(login))
        .route("/demo/logout", web::post().to(logout))
        .route("/profile", get().to(profile_page))
        .route("/api/profile", get().to(profile_api))
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

async fn profile_page(demo: web::Data<Demo>, token: WiseToken) -> HttpResponse {
    match fetch(&demo, token).await {
        Ok((token, profile)) => html(
            actix_web::http::StatusCode::OK,
            shared::profile_page(token.profile_id(), &profile),
        ),
        Err(Failure::Rejected(rejection)) => rejection.error_response(),
        Err(Failure::Wise(message)) => html(
            actix_web::http::StatusCode::BAD_GATEWAY,
            shared::error_page("Wise error", &message),
        ),
    }
}

async fn profile_api(demo: web::Data<Demo>, token: WiseToken) -> HttpResponse {
    match fetch(&demo, token).await {
        Ok((token, profile)) => HttpResponse::Ok().json(json!({
            "user": token.user().as_str(),
            "profile_id": token.profile_id().get(),
            "token_fingerprint": shared::fingerprint(token.access_token().expose_secret()),
            "profile": profile,
        })),
        Err(Failure::Rejected(rejection)) => rejection.error_response(),
        Err(Failure::Wise(message)) => HttpResponse::BadGateway()
            .insert_header((CONTENT_TYPE, "application/json"))
            .body(json!({ "error": "wise_error", "message": message }).to_string()),
    }
}
