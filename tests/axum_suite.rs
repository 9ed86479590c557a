//! The behaviour suite (tests/suite) against the axum adapter, over real TCP on loopback,
//! plus the axum-specific checks (extractor set-up, `Option<WiseToken>`).

#[path = "../examples/demo/mod.rs"]
mod demo;
mod suite;

use axum::routing::get;
use axum::Router;
use reqwest::StatusCode;
use wise_oauth::axum::{WiseRoutes, WiseToken};
use wise_oauth::UserId;

fn serve_demo(listener: std::net::TcpListener, demo: std::sync::Arc<demo::shared::Demo>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    let app = demo::axum_app::app(demo);
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
}

async fn start() -> suite::TestApp {
    suite::TestApp::start(serve_demo).await
}

async fn start_with(setup: suite::Setup) -> suite::TestApp {
    suite::TestApp::start_with(setup, serve_demo).await
}

suite::behaviour_suite!(start);
suite::hardening_suite!(start_with);

/// Serves `router` on a free port; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

#[tokio::test]
async fn optional_token_is_none_when_not_linked_and_custom_resolver_and_prefix_work() {
    let app = start().await;
    #[derive(Clone)]
    struct Me(&'static str);
    let wise = app.wise_with_callback("/integrations/wise/callback");
    let routes = WiseRoutes::new(wise)
        .prefix("/integrations/wise")
        .user_resolver(|parts| {
            parts
                .extensions
                .get::<Me>()
                .and_then(|m| UserId::new(m.0).ok())
        });
    let router = Router::new()
        .route(
            "/t",
            get(|t: Option<WiseToken>| async move { format!("{}", t.is_some()) }),
        )
        .route("/must", get(|_t: WiseToken| async { "never" }))
        .merge(routes.router())
        .layer(axum::Extension(Me("zed")))
        .with_state(routes.plugin());
    let base = serve(router).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client.get(format!("{base}/t")).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "false");
    let res = client
        .get(format!("{base}/must?x=1"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()["location"],
        "/integrations/wise/connect?return_to=%2Fmust%3Fx%3D1"
    );
    let res = client
        .get(format!("{base}/integrations/wise/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[test]
#[should_panic(expected = "invalid prefix")]
fn invalid_prefix_panics_at_build() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start());
    let _: Router = WiseRoutes::new(app.wise.clone()).prefix("wise/").router();
}

/// `WiseToken::client_for(&headers)` sends the request's `X-External-Correlation-Id` (else
/// its `X-Request-Id`) to Wise: the emulator echoes the id it received.
#[tokio::test]
async fn the_request_correlation_id_reaches_wise() {
    let app = start().await;
    let b = app.browser("cory").await;
    b.link("alice@example.com", 30000000).await;
    let routes = WiseRoutes::new(app.wise.clone()).user_resolver(|_| UserId::new("cory").ok());
    let router = Router::new()
        .route(
            "/echo",
            get(|t: WiseToken, headers: axum::http::HeaderMap| async move {
                let resp = t
                    .client_for(&headers)
                    .send::<()>(axum::http::Method::GET, "/v1/me", None)
                    .await
                    .expect("call Wise");
                let echoed = resp.headers().get("x-external-correlation-id").cloned();
                echoed
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            }),
        )
        .merge(routes.router())
        .with_state(routes.plugin());
    let base = serve(router).await;
    let client = reqwest::Client::new();
    let echo = |headers: &'static [(&'static str, &'static str)]| {
        let mut req = client.get(format!("{base}/echo"));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(echo(&[("x-request-id", "req-7")]).await, "req-7");
    assert_eq!(
        echo(&[
            ("x-request-id", "req-7"),
            ("x-external-correlation-id", "job-1")
        ])
        .await,
        "job-1"
    );
    let fresh = echo(&[]).await;
    assert!(
        !fresh.is_empty() && fresh != "req-7",
        "a fresh id without one: {fresh}"
    );
    assert_ne!(echo(&[("x-request-id", "two words")]).await, "two words");
}

/// The hooked app of `suite::hooks` on axum: login URL, failed links back into the app,
/// the app's pages and an async resolver over its session store.
async fn start_hooked() -> suite::TestApp {
    use axum::extract::Query;
    use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
    use axum::response::IntoResponse;
    use std::collections::HashMap;
    use suite::hooks::{Sessions, TestPages, LOGIN_URL};

    suite::TestApp::start(|listener, demo| {
        let sessions = Sessions::default();
        let resolver_sessions = sessions.clone();
        let routes = WiseRoutes::new(demo.wise.clone())
            .login_url(LOGIN_URL)
            .error_redirect(true)
            .pages(TestPages)
            .async_user_resolver(move |parts| {
                let cookie = parts.headers.get(COOKIE).and_then(|v| v.to_str().ok());
                resolver_sessions.resolve(cookie)
            });
        routes.check().expect("hooked app settings");
        let login = move |Query(q): Query<HashMap<String, String>>| {
            let sessions = sessions.clone();
            async move {
                let Some(user) = q.get("user") else {
                    return "the app's login page".into_response();
                };
                let sid = sessions.start(user).await;
                let next = q.get("next").cloned().unwrap_or_else(|| "/".into());
                (
                    StatusCode::SEE_OTHER,
                    [(LOCATION, next), (SET_COOKIE, format!("sid={sid}; Path=/"))],
                )
                    .into_response()
            }
        };
        let router = Router::new()
            .route("/login", get(login))
            .route(
                "/must",
                axum::routing::any(|t: WiseToken| async move { t.profile_id().to_string() }),
            )
            .merge(routes.router())
            .with_state(routes.plugin());
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    })
    .await
}

suite::hooks::hooks_suite!(start_hooked);

/// A redirect URI whose path is not the mounted callback route is refused when the routes
/// are built, naming both paths; `check` returns the same error.
#[tokio::test]
async fn mismatched_redirect_uri_is_refused_naming_both_paths() {
    let app = start().await; // redirect URI: {base}/wise/callback
    let routes = WiseRoutes::new(app.wise.clone()).prefix("/integrations/wise");
    let error = routes.check().unwrap_err().to_string();
    assert!(
        error.contains("`/wise/callback`") && error.contains("`/integrations/wise/callback`"),
        "{error}"
    );
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _: Router = routes.router();
    }))
    .unwrap_err();
    let message = panic.downcast_ref::<String>().expect("panic message");
    assert!(message.starts_with("wise-oauth-axum: "), "{message}");
    assert!(message.contains(&error), "{message}");
    // The matching prefix builds.
    let _: Router = WiseRoutes::new(app.wise.clone()).prefix("/wise").router();
    assert!(WiseRoutes::new(app.wise.clone())
        .login_url("//evil")
        .check()
        .is_err());
}
