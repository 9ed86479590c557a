//! Shared by the benches: the emulator, a `WiseOAuth` on it, linking a user through the
//! real flow (auto-approve), and the two apps measured (one route with the `WiseToken`
//! extractor, one identical route without it, and the references: a no-op extractor and a
//! naive `Mutex<HashMap>` one).
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use wise_oauth::{ClientSecret, Clock, Environment, TokenStore, UserId, WiseConfig, WiseOAuth};
use wise_oauth_mock::{MockWise, MockWiseHandle, NewUser};

pub const CLIENT_ID: &str = "bench-client";
pub const CLIENT_SECRET: &str = "bench-secret";
pub const REDIRECT_URI: &str = "http://127.0.0.1:3000/wise/callback";
/// The app user every hot-path request is made for.
pub const BENCH_USER: &str = "bench-user";

/// A clock that follows the emulator's, so advancing the emulator expires our tokens.
#[derive(Debug, Clone)]
pub struct MockClock(pub MockWiseHandle);

impl Clock for MockClock {
    fn now(&self) -> SystemTime {
        self.0.now()
    }
}

pub async fn start_mock() -> MockWiseHandle {
    MockWise::builder()
        .client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
        .start()
        .await
        .expect("start the emulator")
}

pub fn config(mock: &MockWiseHandle) -> WiseConfig {
    let env = Environment::custom("emulator", &mock.base_url(), &mock.authorize_url()).unwrap();
    WiseConfig::builder(CLIENT_ID, ClientSecret::new(CLIENT_SECRET), REDIRECT_URI)
        .environment(env)
        .request_timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A `WiseOAuth` on the emulator and `store`, following the emulator's clock.
pub fn wise(mock: &MockWiseHandle, store: Arc<dyn TokenStore>) -> WiseOAuth {
    WiseOAuth::builder(config(mock))
        .store(store)
        .clock(MockClock(mock.clone()))
        .build()
        .unwrap()
}

pub fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

pub fn no_redirect_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Creates the emulator user `email` (one personal profile) if it does not exist yet.
/// A reqwest client with the library's settings, as `endpoint::http::build_client` builds
/// the shared one (rustls, no redirects, no referer, the configured timeouts and agent).
pub fn bare_client(config: &WiseConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .connect_timeout(config.connect_timeout())
        .timeout(config.request_timeout())
        .user_agent(config.user_agent())
        .build()
        .unwrap()
}

/// A hand-written `GET {url}` with `token` and what `WiseClient` sends on every call too
/// (a fresh `X-External-Correlation-Id`, `Accept: application/json`), the JSON answer
/// decoded: the bare call the client is measured against.
pub async fn bare_get(http: &reqwest::Client, url: &str, token: &str) {
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    let res = http
        .get(url)
        .bearer_auth(token)
        .header("x-external-correlation-id", id)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.bytes().await.unwrap();
    std::hint::black_box(serde_json::from_slice::<serde::de::IgnoredAny>(&body).unwrap());
}

pub fn ensure_wise_user(mock: &MockWiseHandle, email: &str) {
    if mock.profile_ids(email).is_empty() {
        mock.create_user(NewUser::new(email, "password1")).unwrap();
    }
}

/// Links `user` to the emulator user `email` through the whole flow: start (authorize URL
/// and binding cookie), the emulator's consent (auto-approve), the callback (state check,
/// code exchange, profile check, persist).
pub async fn link(
    wise: &WiseOAuth,
    mock: &MockWiseHandle,
    http: &reqwest::Client,
    user: &UserId,
    email: &str,
) {
    mock.set_auto_approve(Some(email));
    let start = wise
        .start_link(user, &Default::default(), None)
        .await
        .unwrap();
    let cookie = start
        .set_cookie()
        .split(';')
        .next()
        .and_then(|c| c.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap();
    let response = http
        .get(start.authorize_url().clone())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let query = location.query().unwrap().to_owned();
    wise.complete_link(user, &query, Some(&cookie))
        .await
        .unwrap();
}

/// The naive reference the HTTP step can compare with (`/naive` in both apps): every
/// user's token in one locked map, the token string cloned out of it per request, as in
/// `benches/instructions.rs`. A static here, where an app would keep it in its state.
pub mod naive {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};

    static TOKENS: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Default::default);

    /// Gives `user` a token of the shape of a Wise access token.
    pub fn link(user: &str) {
        TOKENS.lock().unwrap().insert(
            user.to_owned(),
            "7c9d6f3e-2b1a-4e8f-9a0b-1c2d3e4f5a6b".to_owned(),
        );
    }

    /// `user`'s token, cloned.
    pub fn token(user: &str) -> Option<String> {
        TOKENS.lock().ok()?.get(user).cloned()
    }
}

/// The axum app measured: `/with` takes `WiseToken`, `/without` does not, `/noop` takes an
/// extractor that does nothing (what the framework spends on any extractor), `/naive` the
/// naive reference ([`naive`]); all behind the
/// same auth middleware (which names the user) and the plugin's layer, all answering the
/// same short text.
pub mod axum_app {
    use axum::extract::Request;
    use axum::middleware::{self, Next};
    use axum::response::Response;
    use axum::routing::get;
    use axum::Router;
    use wise_oauth::axum::{WiseRoutes, WiseToken, WiseUser};
    use wise_oauth::{UserId, WiseOAuth};

    async fn with(token: WiseToken) -> String {
        format!("profile {}", token.profile_id())
    }

    async fn without() -> String {
        // The same work as `with` minus the extractor: format a profile id.
        format!("profile {}", std::hint::black_box(30_000_000u64))
    }

    /// An extractor that does nothing: what axum spends on any one extractor.
    struct NoOp;

    impl<S: Send + Sync> axum::extract::FromRequestParts<S> for NoOp {
        type Rejection = std::convert::Infallible;

        async fn from_request_parts(
            _: &mut axum::http::request::Parts,
            _: &S,
        ) -> Result<Self, Self::Rejection> {
            Ok(NoOp)
        }
    }

    async fn noop(_: NoOp) -> String {
        format!("profile {}", std::hint::black_box(30_000_000u64))
    }

    /// The naive reference's extractor (see [`super::naive`]).
    struct Naive(String);

    impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Naive {
        type Rejection = axum::http::StatusCode;

        async fn from_request_parts(
            parts: &mut axum::http::request::Parts,
            _: &S,
        ) -> Result<Self, Self::Rejection> {
            let user = parts.extensions.get::<WiseUser>();
            user.and_then(|user| super::naive::token(user.id().as_str()))
                .map(Naive)
                .ok_or(axum::http::StatusCode::UNAUTHORIZED)
        }
    }

    async fn naive(token: Naive) -> String {
        format!("profile {}", token.0.len())
    }

    pub fn app(wise: WiseOAuth, user: UserId) -> Router {
        let routes = WiseRoutes::new(wise);
        super::naive::link(user.as_str());
        Router::new()
            .route("/with", get(with))
            .route("/without", get(without))
            .route("/noop", get(noop))
            .route("/naive", get(naive))
            .merge(routes.router())
            .layer(middleware::from_fn(move |mut req: Request, next: Next| {
                let user = user.clone();
                async move {
                    req.extensions_mut().insert(WiseUser::new(user));
                    let response: Response = next.run(req).await;
                    response
                }
            }))
            .with_state(routes.plugin())
    }
}

/// The actix-web app measured: the same four routes.
pub mod actix_app {
    use actix_web::body::MessageBody;
    use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
    use actix_web::middleware::{from_fn, Next};
    use actix_web::{web, App, Error, HttpMessage};
    use wise_oauth::actix::{WiseRoutes, WiseToken, WiseUser};
    use wise_oauth::{UserId, WiseOAuth};

    async fn with(token: WiseToken) -> String {
        format!("profile {}", token.profile_id())
    }

    async fn without() -> String {
        // The same work as `with` minus the extractor: format a profile id.
        format!("profile {}", std::hint::black_box(30_000_000u64))
    }

    /// An extractor that does nothing: what actix-web spends on any one extractor.
    struct NoOp;

    impl actix_web::FromRequest for NoOp {
        type Error = Error;
        type Future = std::future::Ready<Result<Self, Error>>;

        fn from_request(
            _: &actix_web::HttpRequest,
            _: &mut actix_web::dev::Payload,
        ) -> Self::Future {
            std::future::ready(Ok(NoOp))
        }
    }

    async fn noop(_: NoOp) -> String {
        format!("profile {}", std::hint::black_box(30_000_000u64))
    }

    /// The naive reference's extractor (see [`super::naive`]).
    struct Naive(String);

    impl actix_web::FromRequest for Naive {
        type Error = Error;
        type Future = std::future::Ready<Result<Self, Error>>;

        fn from_request(
            req: &actix_web::HttpRequest,
            _: &mut actix_web::dev::Payload,
        ) -> Self::Future {
            let token = req
                .extensions()
                .get::<WiseUser>()
                .and_then(|user| super::naive::token(user.id().as_str()));
            std::future::ready(
                token
                    .map(Naive)
                    .ok_or_else(|| actix_web::error::ErrorUnauthorized("no token")),
            )
        }
    }

    async fn naive(token: Naive) -> String {
        format!("profile {}", token.0.len())
    }

    pub fn app(
        wise: WiseOAuth,
        user: UserId,
    ) -> App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl MessageBody>,
            Error = Error,
            InitError = (),
        >,
    > {
        let routes = WiseRoutes::new(wise);
        super::naive::link(user.as_str());
        App::new()
            .configure(|cfg| routes.configure(cfg))
            .route("/with", web::get().to(with))
            .route("/without", web::get().to(without))
            .route("/noop", web::get().to(noop))
            .route("/naive", web::get().to(naive))
            .wrap(from_fn(
                move |req: ServiceRequest, next: Next<actix_web::body::BoxBody>| {
                    let user = user.clone();
                    async move {
                        req.extensions_mut().insert(WiseUser::new(user));
                        next.call(req).await
                    }
                },
            ))
    }
}
