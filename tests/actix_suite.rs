//! The behaviour suite (tests/suite) against the actix-web adapter, over real TCP on
//! loopback, plus the actix-specific checks (app data set-up, `OptionalWiseToken`,
//! `Option<WiseToken>`, refreshes shared across actix workers).
//!
//! The actix server runs inside the test's tokio runtime (actix-server supports it): the
//! accept loop and each worker get their own thread and single-threaded runtime, so the
//! library's detached refresh tasks run on the workers' runtimes while the emulator runs
//! on the test's. One test also runs in process on actix-web's own runtime.
//!
//! `parity` sends the same requests to the axum demo and the actix demo and fails on any
//! difference in status, headers or body.

#[path = "../examples/demo"]
#[allow(dead_code)]
mod demo {
    pub(crate) mod actix_app;
    pub(crate) mod axum_app;
    pub(crate) mod shared;
}
mod suite;

use actix_web::{web, App, HttpMessage, HttpServer};
use reqwest::StatusCode;
use wise_oauth::actix::{OptionalWiseToken, WiseRoutes, WiseToken, WiseUser};
use wise_oauth::UserId;

/// Runs an actix server in the background of the current tokio runtime. When the test's
/// runtime shuts down it drops the server future, which stops the accept thread and the
/// workers (actix-server stops them when its server state is dropped).
fn spawn_server(server: actix_web::dev::Server) {
    tokio::spawn(async move { server.await.expect("serve") });
}

fn serve_demo(listener: std::net::TcpListener, demo: std::sync::Arc<demo::shared::Demo>) {
    let server = HttpServer::new(move || demo::actix_app::app(demo.clone()))
        .workers(2)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
    spawn_server(server);
}

async fn start() -> suite::TestApp {
    suite::TestApp::start(serve_demo).await
}

async fn start_with(setup: suite::Setup) -> suite::TestApp {
    suite::TestApp::start_with(setup, serve_demo).await
}

suite::behaviour_suite!(start);
suite::hardening_suite!(start_with);

/// Serves an app built by `factory` on a free port; returns its base URL.
fn serve<F, T>(factory: F) -> String
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
{
    let server = HttpServer::new(factory)
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind");
    let base = format!("http://{}", server.addrs()[0]);
    spawn_server(server.run());
    base
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Inserts `WiseUser(name)` into a request, like an app's auth middleware.
fn login_as(req: &actix_web::dev::ServiceRequest, name: &str) {
    req.extensions_mut()
        .insert(WiseUser::new(UserId::new(name).unwrap()));
}

#[tokio::test]
async fn extractor_without_app_data_answers_500_with_a_hint() {
    let app = start().await;
    let wise = app.wise.clone();
    let base = serve(move || {
        let routes = WiseRoutes::new(wise.clone());
        App::new()
            // The routes only inside a scope: their app data does not reach `/t`.
            .service(web::scope("/other").configure(|cfg| routes.configure(cfg)))
            .route("/t", web::get().to(|_t: WiseToken| async { "never" }))
            .wrap_fn(|req, srv| {
                login_as(&req, "x");
                actix_web::dev::Service::call(srv, req)
            })
    });
    let res = client()
        .get(format!("{base}/t"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "wise_not_set_up");
    let hint = body["hint"].as_str().unwrap();
    // Names the call, and the likely cause here: configured only inside a scope.
    assert!(
        hint.contains(".configure(|cfg| wise_routes.configure(cfg))")
            && hint.contains("web::scope"),
        "{body}"
    );
    // The routes themselves work inside the scope.
    let res = client()
        .get(format!("{base}/other/wise/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["linked"], false);
}

#[tokio::test]
async fn optional_token_is_none_when_not_linked_and_custom_resolver_and_prefix_work() {
    let app = start().await;
    #[derive(Clone)]
    struct Me(&'static str);
    let wise = app.wise_with_callback("/integrations/wise/callback");
    let base = serve(move || {
        let routes = WiseRoutes::new(wise.clone())
            .prefix("/integrations/wise")
            .user_resolver(|req| {
                let me = req.extensions().get::<Me>()?.clone();
                UserId::new(me.0).ok()
            });
        App::new()
            .configure(|cfg| routes.configure(cfg))
            .route(
                "/t",
                web::get().to(|t: OptionalWiseToken| async move { format!("{}", t.0.is_some()) }),
            )
            .route("/must", web::get().to(|_t: WiseToken| async { "never" }))
            .wrap_fn(|req, srv| {
                req.extensions_mut().insert(Me("zed"));
                actix_web::dev::Service::call(srv, req)
            })
    });
    let client = client();
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
    // The default prefix is not served.
    let res = client
        .get(format!("{base}/wise/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn optional_token_is_the_linked_users_token_from_the_cache_and_after_a_refresh() {
    let app = start().await;
    let res = app
        .browser("opal")
        .await
        .link("alice@example.com", 30000000)
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let wise = app.wise.clone();
    let base = serve(move || {
        App::new()
            .configure(wise_oauth::actix::routes(wise.clone()))
            .route(
                "/opt",
                web::get().to(|t: OptionalWiseToken| async move {
                    match t.into_inner() {
                        Some(t) => format!(
                            "{} {}",
                            t.user(),
                            demo::shared::fingerprint(t.access_token().expose_secret())
                        ),
                        None => "none".to_owned(),
                    }
                }),
            )
            .wrap_fn(|req, srv| {
                let user = req
                    .headers()
                    .get("x-user")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("nobody")
                    .to_owned();
                login_as(&req, &user);
                actix_web::dev::Service::call(srv, req)
            })
    });
    let opt = |user: &'static str| {
        let url = format!("{base}/opt");
        async move {
            let res = client()
                .get(url)
                .header("x-user", user)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.text().await.unwrap()
        }
    };
    // A fresh token in the cache: the extraction is ready at once.
    let cached = opt("opal").await;
    assert!(cached.starts_with("opal "), "{cached}");
    assert_eq!(opt("opal").await, cached);
    assert_eq!(opt("ivy").await, "none");
    // Past its expiry the extraction waits for the one refresh: a newer token, still `Some`.
    app.emulator
        .advance_clock(std::time::Duration::from_secs(43_200 + 120));
    let refreshed = opt("opal").await;
    assert!(refreshed.starts_with("opal "), "{refreshed}");
    assert_ne!(refreshed, cached);
    assert_eq!(app.refresh_calls(), 1);
}

#[tokio::test]
async fn optional_token_still_rejects_when_not_logged_in_but_plain_option_is_none() {
    let app = start().await;
    let wise = app.wise.clone();
    let base = serve(move || {
        App::new()
            .configure(wise_oauth::actix::routes(wise.clone()))
            .route(
                "/opt",
                web::get().to(|t: OptionalWiseToken| async move { format!("{}", t.0.is_some()) }),
            )
            .route(
                "/plain",
                web::get().to(|t: Option<WiseToken>| async move { format!("{}", t.is_some()) }),
            )
    });
    let client = client();
    let res = client
        .get(format!("{base}/opt"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "not_logged_in");
    // actix-web's blanket `Option<T>` extractor swallows every failure.
    let res = client.get(format!("{base}/plain")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "false");
}

#[tokio::test]
async fn get_routes_answer_head_and_wrong_methods_get_405_with_allow() {
    let app = start().await;
    let b = app.browser("hal").await;
    let res = b
        .client
        .head(b.url("/wise/status"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"],
        "application/json",
        "HEAD has the GET headers"
    );
    let res = b
        .client
        .post(b.url("/wise/status"))
        .header("x-requested-with", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = res.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET"), "{allow}");
    let res = b.get_html("/wise/mobile/start").await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// Many concurrent requests after expiry, spread over both actix workers (two separate
/// runtimes): all succeed with the same new token after exactly one refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_after_expiry_share_one_refresh_across_workers() {
    let app = start().await;
    app.emulator.set_auto_approve(Some("alice@example.com"));
    let b = app.browser("ola").await;
    let authorize = b.start_connect(None).await;
    let callback = suite::browser::location(&b.get_html(&authorize).await);
    assert_eq!(b.get_html(&callback).await.status(), StatusCode::SEE_OTHER);
    let (status, body) = b.api_profile().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = body["token_fingerprint"].clone();

    app.emulator
        .advance_clock(std::time::Duration::from_secs(43_200 + 120));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        // The browser's client (same session cookie); concurrent requests open several
        // connections, which the accept loop spreads over the workers.
        let client = b.client.clone();
        let url = b.url("/api/profile");
        tasks.push(tokio::spawn(async move {
            let res = client
                .get(url)
                .header("accept", "application/json")
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body: serde_json::Value = res.json().await.unwrap();
            (status, body["token_fingerprint"].clone())
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        let (status, fp) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        seen.push(fp);
    }
    assert!(
        seen.iter().all(|fp| *fp == seen[0] && *fp != first),
        "{seen:?}"
    );
    assert_eq!(app.refresh_calls(), 1, "exactly one refresh");
}

/// In process, on actix-web's own runtime (`#[actix_web::test]`, the runtime of
/// `#[actix_web::main]`): link, then a refresh past expiry runs as a detached task there.
#[actix_web::test]
async fn link_and_refresh_in_process_on_the_actix_runtime() {
    use actix_web::test::{call_service, init_service, read_body, TestRequest};

    let app = start().await;
    app.emulator.set_auto_approve(Some("alice@example.com"));
    let service = init_service(
        App::new()
            .configure(wise_oauth::actix::routes(app.wise.clone()))
            .route(
                "/fp",
                web::get().to(|t: WiseToken| async move {
                    demo::shared::fingerprint(t.access_token().expose_secret())
                }),
            )
            .wrap_fn(|req, srv| {
                login_as(&req, "zoe");
                actix_web::dev::Service::call(srv, req)
            }),
    )
    .await;

    let res = call_service(
        &service,
        TestRequest::get().uri("/wise/connect").to_request(),
    )
    .await;
    assert_eq!(res.status(), actix_web::http::StatusCode::SEE_OTHER);
    let header = |res: &actix_web::dev::ServiceResponse, name: &str| {
        res.headers()
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let binding = header(&res, "set-cookie");
    let binding = binding.split(';').next().unwrap().to_owned();
    let authorize = header(&res, "location");
    let at_wise = client().get(&authorize).send().await.unwrap();
    let callback = suite::browser::location(&at_wise);
    let callback = callback.trim_start_matches(&app.base_url).to_owned();
    let res = call_service(
        &service,
        TestRequest::get()
            .uri(&callback)
            .insert_header(("cookie", binding))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), actix_web::http::StatusCode::SEE_OTHER);

    macro_rules! fingerprint {
        () => {{
            let res = call_service(&service, TestRequest::get().uri("/fp").to_request()).await;
            assert!(res.status().is_success(), "{}", res.status());
            read_body(res).await
        }};
    }
    let first = fingerprint!();
    app.emulator
        .advance_clock(std::time::Duration::from_secs(43_200 + 120));
    let second = fingerprint!();
    assert_ne!(first, second, "a refreshed token");
    assert_eq!(fingerprint!(), second);
    assert_eq!(app.refresh_calls(), 1);
}

#[test]
#[should_panic(expected = "invalid prefix")]
fn invalid_prefix_panics_at_configure() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start());
    let routes = WiseRoutes::new(app.wise.clone()).prefix("wise/");
    let _ = App::new().configure(|cfg| routes.configure(cfg));
}

/// The hooked app of `suite::hooks` on actix-web: login URL, failed links back into the
/// app, the app's pages and an async resolver over its session store.
async fn start_hooked() -> suite::TestApp {
    use actix_web::http::header::{COOKIE, LOCATION, SET_COOKIE};
    use actix_web::HttpResponse;
    use std::collections::HashMap;
    use suite::hooks::{Sessions, TestPages, LOGIN_URL};

    async fn login(
        sessions: web::Data<Sessions>,
        q: web::Query<HashMap<String, String>>,
    ) -> HttpResponse {
        let Some(user) = q.get("user") else {
            return HttpResponse::Ok().body("the app's login page");
        };
        let sid = sessions.start(user).await;
        let next = q.get("next").cloned().unwrap_or_else(|| "/".into());
        HttpResponse::SeeOther()
            .insert_header((LOCATION, next))
            .insert_header((SET_COOKIE, format!("sid={sid}; Path=/")))
            .finish()
    }

    let mut base = None;
    let app = suite::TestApp::start(|listener, demo| {
        let sessions = Sessions::default();
        let resolver_sessions = sessions.clone();
        let routes = WiseRoutes::new(demo.wise.clone())
            .login_url(LOGIN_URL)
            .error_redirect(true)
            .pages(TestPages)
            .async_user_resolver(move |req| {
                let cookie = req.headers().get(COOKIE).and_then(|v| v.to_str().ok());
                resolver_sessions.resolve(cookie)
            });
        routes.check().expect("hooked app settings");
        let server = HttpServer::new(move || {
            let routes = routes.clone();
            App::new()
                .app_data(web::Data::new(sessions.clone()))
                .configure(|cfg| routes.configure(cfg))
                .route("/login", web::get().to(login))
                .route(
                    "/must",
                    web::route().to(|t: WiseToken| async move { t.profile_id().to_string() }),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen");
        base = Some(format!("http://{}", server.addrs()[0]));
        spawn_server(server.run());
    })
    .await;
    assert_eq!(base.as_deref(), Some(app.base_url.as_str()));
    app
}

suite::hooks::hooks_suite!(start_hooked);

/// A redirect URI whose path is not the mounted callback route is refused when the routes
/// are configured, naming both paths; `check` returns the same error.
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
        let _ = App::new().configure(|cfg| routes.configure(cfg));
    }))
    .unwrap_err();
    let message = panic.downcast_ref::<String>().expect("panic message");
    assert!(message.starts_with("wise-oauth-actix: "), "{message}");
    assert!(message.contains(&error), "{message}");
    // The matching prefix configures.
    let ok = WiseRoutes::new(app.wise.clone()).prefix("/wise");
    let _ = App::new().configure(|cfg| ok.configure(cfg));
    assert!(WiseRoutes::new(app.wise.clone())
        .login_url("//evil")
        .check()
        .is_err());
}

/// Byte-for-byte parity with the axum adapter: the same requests against the axum demo
/// and the actix demo give the same status, headers and body (after replacing what is
/// random per run: the base URLs, the state and the cookie values).
mod parity {
    use super::*;

    struct Exchange {
        method: &'static str,
        path: String,
        headers: Vec<(&'static str, &'static str)>,
        body: Vec<u8>,
    }

    fn req(method: &'static str, path: &str, headers: &[(&'static str, &'static str)]) -> Exchange {
        Exchange {
            method,
            path: path.to_owned(),
            headers: headers.to_vec(),
            body: Vec::new(),
        }
    }

    const JSON: (&str, &str) = ("accept", "application/json");
    const HTML: (&str, &str) = ("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
    const XRW: (&str, &str) = ("x-requested-with", "XMLHttpRequest");
    const CT_JSON: (&str, &str) = ("content-type", "application/json");

    fn exchanges() -> Vec<Exchange> {
        let mut all = Vec::new();
        for path in [
            "/wise/connect",
            "/wise/connect?return_to=%2Fprofile",
            "/wise/connect?return_to=https%3A%2F%2Fevil.com",
            "/wise/connect?return_to=%2Fa&return_to=%2Fb",
            "/wise/callback",
            "/wise/callback?code=x",
            "/wise/callback?code=x&state=y",
            "/wise/callback?code=x&state=y&state=z",
            "/wise/callback?error=access_denied&state=y&error_description=%3Cscript%3E",
            "/wise/callback?access_token=x&state=y",
            "/wise/callback?code=%ZZ&state=y",
            "/wise/status",
            "/wise/status?user=tara",
            "/wise/status/",
            "/wise/%73tatus",
            "/wise//status",
            "/WISE/status",
            "/wise/nope",
            "/wise/disconnect",
            "/wise/mobile/start",
            "/profile",
            "/profile?tab=1&x=%2F",
            "/api/profile",
        ] {
            all.push(req("GET", path, &[JSON]));
            all.push(req("GET", path, &[HTML]));
            all.push(req("GET", path, &[HTML, XRW]));
            all.push(req("GET", path, &[]));
        }
        for path in [
            "/wise/status",
            "/wise/connect",
            "/wise/callback?code=x&state=y",
        ] {
            all.push(req("HEAD", path, &[JSON]));
            all.push(req("POST", path, &[JSON, XRW]));
            all.push(req("PUT", path, &[]));
        }
        // `WiseToken` on a HEAD request (the demo's own routes answer HEAD like GET).
        all.push(req("HEAD", "/profile", &[JSON]));
        all.push(req("HEAD", "/profile", &[HTML]));
        for headers in [
            vec![
                HTML,
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://evil.example"),
            ],
            vec![HTML, ("sec-fetch-site", "same-site")],
            vec![JSON, ("sec-fetch-site", "cross-site"), XRW],
            vec![HTML, ("origin", "https://evil.example")],
            vec![JSON, ("origin", "null"), CT_JSON],
            vec![HTML, ("content-type", "application/x-www-form-urlencoded")],
            vec![JSON],
            vec![JSON, XRW],
            vec![HTML, XRW],
            vec![HTML, ("sec-fetch-site", "same-origin")],
        ] {
            for path in [
                "/wise/disconnect",
                "/wise/disconnect?return_to=/profile",
                "/wise/disconnect?return_to=//evil.com",
                "/wise/mobile/start",
            ] {
                all.push(req("POST", path, &headers));
            }
        }
        let mobile = |headers: &[(&'static str, &'static str)], body: &[u8]| Exchange {
            body: body.to_vec(),
            ..req("POST", "/wise/mobile/complete", headers)
        };
        all.push(mobile(
            &[CT_JSON],
            br#"{"code":"c","state":"s","profileId":1}"#,
        ));
        all.push(mobile(
            &[CT_JSON],
            br#"{"code":"c","state":"s","profileId":"x"}"#,
        ));
        all.push(mobile(
            &[CT_JSON],
            br#"{"code":"c","state":"s","profileId":true}"#,
        ));
        all.push(mobile(&[CT_JSON], br#"{"code":"c"}"#));
        all.push(mobile(&[CT_JSON], br#"{"code":"c","state":"s","extra":1}"#));
        all.push(mobile(&[CT_JSON], b"[1]"));
        all.push(mobile(&[CT_JSON], b"not json"));
        all.push(mobile(&[CT_JSON], &[b' '; 9000]));
        all.push(mobile(&[CT_JSON, HTML], &[b' '; 9000]));
        all.push(mobile(&[XRW], br#"{"code":"c","state":"s"}"#));
        all.push(mobile(&[XRW, ("content-type", "text/plain")], b"{}"));
        all.push(mobile(&[("content-type", "text/plain")], b"{}"));
        all
    }

    /// What a response looks like once the per-run randomness is replaced.
    #[derive(Debug, PartialEq)]
    struct Seen {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    fn normalize(text: &str, app: &suite::TestApp) -> String {
        let mut out = text
            .replace(&app.base_url, "{app}")
            .replace(&suite::browser::url_encode(&app.base_url), "{app}")
            .replace(&app.emulator.base_url(), "{wise}");
        // Per-run values: the state in authorize URLs, the binding and session cookies,
        // expiry times.
        for key in [
            "state=",
            "wise_oauth_binding=",
            "demo_session=",
            "\"expires_at\":\"",
            "\"state\":\"",
            // The emulators' own per-instance data, and the tokens they issued.
            "\"publicId\":\"",
            "\"createdAt\":\"",
            "\"updatedAt\":\"",
            "\"token_fingerprint\":\"",
        ] {
            let mut done = String::new();
            let mut rest = out.as_str();
            while let Some(i) = rest.find(key) {
                done.push_str(&rest[..i + key.len()]);
                rest = &rest[i + key.len()..];
                let end = rest.find(['&', ';', '"', ' ']).unwrap_or(rest.len());
                if end > 0 {
                    done.push('*');
                }
                rest = &rest[end..];
            }
            done.push_str(rest);
            out = done;
        }
        out
    }

    async fn run(app: &suite::TestApp, user: Option<&str>, e: &Exchange) -> Seen {
        let b = match user {
            Some(u) => app.browser(u).await,
            None => suite::Browser::new(app),
        };
        let method = reqwest::Method::from_bytes(e.method.as_bytes()).unwrap();
        let mut r = b
            .client
            .request(method, b.url(&e.path))
            .body(e.body.clone());
        for (n, v) in &e.headers {
            r = r.header(*n, *v);
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        let mut headers: Vec<(String, String)> = res
            .headers()
            .iter()
            .filter(|(n, _)| n.as_str() != "date")
            .map(|(n, v)| {
                let value = match n.as_str() {
                    // Varies with the normalized values; its presence must match.
                    "content-length" => "*".to_owned(),
                    _ => normalize(v.to_str().unwrap_or("<binary>"), app),
                };
                (n.as_str().to_owned(), value)
            })
            .collect();
        headers.sort();
        let body = normalize(&res.text().await.unwrap(), app);
        Seen {
            status,
            headers,
            body,
        }
    }

    async fn start_axum() -> suite::TestApp {
        suite::TestApp::start(|listener, demo| {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let app = demo::axum_app::app(demo);
            tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        })
        .await
    }

    async fn compare(user: Option<&str>, link: bool) {
        let (ax, ac) = (start_axum().await, start().await);
        if link {
            for app in [&ax, &ac] {
                app.emulator.set_auto_approve(Some("alice@example.com"));
                let b = app.browser(user.unwrap()).await;
                let authorize = b.start_connect(None).await;
                let callback = suite::browser::location(&b.get_html(&authorize).await);
                assert_eq!(b.get_html(&callback).await.status(), StatusCode::SEE_OTHER);
            }
        }
        let mut differences = Vec::new();
        for e in exchanges() {
            let (a, b) = (run(&ax, user, &e).await, run(&ac, user, &e).await);
            if a != b {
                differences.push(format!(
                    "{} {} {:?}\n  axum:  {a:?}\n  actix: {b:?}",
                    e.method, e.path, e.headers
                ));
            }
        }
        assert!(
            differences.is_empty(),
            "{} differences:\n{}",
            differences.len(),
            differences.join("\n")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn same_answers_as_axum_when_not_logged_in() {
        compare(None, false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn same_answers_as_axum_when_logged_in_but_not_linked() {
        compare(Some("pat"), false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn same_answers_as_axum_when_linked() {
        compare(Some("pat"), true).await;
    }
}

/// `WiseToken::client_for(&req)` sends the request's `X-External-Correlation-Id` (else its
/// `X-Request-Id`) to Wise: the emulator echoes the id it received.
#[tokio::test]
async fn the_request_correlation_id_reaches_wise() {
    let app = start().await;
    let b = app.browser("cory").await;
    b.link("alice@example.com", 30000000).await;
    let wise = app.wise.clone();
    let base = serve(move || {
        let routes = WiseRoutes::new(wise.clone()).user_resolver(|_| UserId::new("cory").ok());
        App::new().configure(|cfg| routes.configure(cfg)).route(
            "/echo",
            web::get().to(|t: WiseToken, req: actix_web::HttpRequest| async move {
                let resp = t
                    .client_for(&req)
                    .send::<()>(reqwest::Method::GET, "/v1/me", None)
                    .await
                    .expect("call Wise");
                let echoed = resp.headers().get("x-external-correlation-id").cloned();
                echoed
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            }),
        )
    });
    let client = client();
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
