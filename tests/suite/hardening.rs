//! Hardening cases (issue 14), each on an app built for it (`TestApp::start_with`) and run
//! against every adapter over real HTTP on loopback: the `__Host-` binding cookie, the cap
//! on concurrent code exchanges, pending-flow floods, and links on error pages.

use std::future::Future;
use std::time::Duration;

use reqwest::header::{ACCEPT, COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use wise_oauth_mock::Fault;

use super::browser::{header, location};
use super::{Setup, TestApp};

const ALICE: &str = "alice@example.com";
const HTTPS_REDIRECT_URI: &str = "https://app.example.test/wise/callback";

/// A client that keeps no cookies (the test writes the `Cookie` header itself, as a
/// browser would send a `Secure` cookie over https) and follows no redirect.
fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The `name=value` part of a `Set-Cookie` value.
fn cookie_pair(set_cookie: &str) -> (String, String) {
    let pair = set_cookie.split(';').next().expect("cookie pair");
    let (name, value) = pair.split_once('=').expect("name=value");
    (name.to_owned(), value.to_owned())
}

/// Every `href` of an HTML page.
fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap_or_default().to_owned())
        .collect()
}

fn assert_local(link: &str) {
    assert!(
        link.starts_with('/') && !link.starts_with("//") && !link.contains('\\'),
        "not a same-origin absolute path: {link:?}"
    );
}

/// With an `https` redirect URI the binding cookie is `__Host-wise_oauth_binding` (Secure,
/// Path=/, no Domain), the callback reads it under that name, and the same value under the
/// unprefixed name (what a sibling subdomain could toss) binds nothing.
pub(crate) async fn secure_binding_cookie_has_the_host_prefix<F, Fut>(start: F)
where
    F: Fn(Setup) -> Fut,
    Fut: Future<Output = TestApp>,
{
    let app = start(Setup {
        redirect_uri: Some(HTTPS_REDIRECT_URI.to_owned()),
        ..Setup::default()
    })
    .await;
    app.emulator.set_auto_approve(Some(ALICE));
    let client = bare_client();
    let base = &app.base_url;
    let login = client
        .get(format!("{base}/demo/login?user=hana"))
        .send()
        .await
        .expect("login");
    let session = cookie_pair(header(&login, "set-cookie").expect("session cookie"));
    let session = format!("{}={}", session.0, session.1);

    // Two flows: the first completes with the right cookie, the second is tried with the
    // unprefixed name.
    let mut flows = Vec::new();
    for _ in 0..2 {
        let res = client
            .get(format!("{base}/wise/connect"))
            .header(ACCEPT, "text/html")
            .header(COOKIE, &session)
            .send()
            .await
            .expect("connect");
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let set_cookie = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .find(|c| c.contains("wise_oauth_binding"))
            .expect("binding cookie");
        assert!(
            set_cookie.starts_with("__Host-wise_oauth_binding="),
            "{set_cookie}"
        );
        assert!(set_cookie.contains("; Path=/;"), "{set_cookie}");
        assert!(set_cookie.ends_with("; Secure"), "{set_cookie}");
        assert!(
            set_cookie.contains("; HttpOnly; SameSite=Lax"),
            "{set_cookie}"
        );
        assert!(
            !set_cookie.to_ascii_lowercase().contains("domain"),
            "{set_cookie}"
        );
        let (_, binding) = cookie_pair(&set_cookie);
        let authorize = location(&res);
        let res = client.get(&authorize).send().await.expect("authorize");
        assert!(res.status().is_redirection(), "{}", res.status());
        let callback = location(&res);
        assert!(
            callback.starts_with(&format!("{HTTPS_REDIRECT_URI}?")),
            "{callback}"
        );
        let query = reqwest::Url::parse(&callback)
            .expect("callback URL")
            .query()
            .expect("query")
            .to_owned();
        flows.push((binding, query));
    }
    let callback = |query: &str, cookie: String| {
        client
            .get(format!("{base}/wise/callback?{query}"))
            .header(ACCEPT, "text/html")
            .header(COOKIE, cookie)
            .send()
    };
    let (binding, query) = &flows[0];
    let res = callback(
        query,
        format!("{session}; __Host-wise_oauth_binding={binding}"),
    )
    .await
    .expect("callback");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "linked");
    assert_eq!(location(&res), "/");
    assert_eq!(app.code_calls(), 1);

    let (binding, query) = &flows[1];
    let res = callback(query, format!("{session}; wise_oauth_binding={binding}"))
        .await
        .expect("callback");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let page = res.text().await.expect("page");
    assert!(page.contains("another browser"), "{page}");
    assert_eq!(app.code_calls(), 1, "no exchange without the binding");
}

/// With `max_concurrent_exchanges(1)`, a callback arriving while another is exchanging its
/// code gets 503 `busy` with `Retry-After` and makes no call to Wise; its state was not
/// consumed, so the same callback URL links the account once repeated.
pub(crate) async fn exchange_cap_answers_busy_and_loses_no_code<F, Fut>(start: F)
where
    F: Fn(Setup) -> Fut,
    Fut: Future<Output = TestApp>,
{
    let app = start(Setup {
        max_concurrent_exchanges: Some(1),
        ..Setup::default()
    })
    .await;
    app.emulator.set_auto_approve(Some(ALICE));
    let ann = app.browser("ann").await;
    let ben = app.browser("ben").await;
    let ann_callback = location(&ann.get_html(&ann.start_connect(None).await).await);
    let ben_callback = location(&ben.get_html(&ben.start_connect(None).await).await);

    // Ann's exchange is held at Wise for a while: it holds the only permit.
    app.emulator.inject_fault(Fault::delay(
        "token:authorization_code",
        Duration::from_secs(3),
    ));
    let ann_done = tokio::spawn(async move { ann.get_html(&ann_callback).await.status() });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.code_calls() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "ann's exchange");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let res = ben.get_html(&ben_callback).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&res, "retry-after"), Some("1"));
    assert_eq!(header(&res, "cache-control"), Some("no-store"));
    let page = res.text().await.expect("page");
    assert!(page.contains("reload this page"), "{page}");
    assert_eq!(app.code_calls(), 1, "ben's code was not sent");

    assert_eq!(ann_done.await.expect("ann"), StatusCode::SEE_OTHER);
    // Ben repeats the very same callback: the state and the code are still good.
    let res = ben.get_html(&ben_callback).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "ben linked on repeat");
    assert_eq!(app.code_calls(), 2);
    let (status, body) = ben.api_profile().await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// One browser starting flow after flow pushes out only its own oldest flows: another
/// user's flow started before the flood still completes.
pub(crate) async fn one_browser_flooding_connect_leaves_other_users_flows_intact<F, Fut>(start: F)
where
    F: Fn(Setup) -> Fut,
    Fut: Future<Output = TestApp>,
{
    let app = start(Setup::default()).await;
    app.emulator.set_auto_approve(Some(ALICE));
    let victim = app.browser("victim").await;
    let victim_callback = location(&victim.get_html(&victim.start_connect(None).await).await);

    let mallory = app.browser("mallory").await;
    let first = location(&mallory.get_html(&mallory.start_connect(None).await).await);
    let mut newest = String::new();
    for _ in 0..60 {
        newest = mallory.start_connect(None).await;
    }
    let newest = location(&mallory.get_html(&newest).await);

    let res = victim.get_html(&victim_callback).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "the victim links");
    assert_eq!(location(&res), "/");
    let res = mallory.get_html(&first).await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "mallory's oldest is gone"
    );
    let res = mallory.get_html(&newest).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "mallory's newest works"
    );
    assert_eq!(app.code_calls(), 2);
}

/// Every link on the flow's error pages, and every `Location` into the flow, is a
/// same-origin absolute path (never `//host`), whatever the request carried.
pub(crate) async fn error_pages_link_only_to_local_paths<F, Fut>(start: F)
where
    F: Fn(Setup) -> Fut,
    Fut: Future<Output = TestApp>,
{
    let app = start(Setup::default()).await;
    let b = app.browser("olga").await;
    let state = "A".repeat(43);
    for query in [
        format!("code=abc&state={state}"),
        format!("error=access_denied&state={state}"),
        format!("error=server_error&state={state}&return_to=//evil.com"),
        "code=abc".to_owned(),
        format!("code=abc&state={state}&state={state}"),
    ] {
        let res = b.get_html(&format!("/wise/callback?{query}")).await;
        assert!(res.headers().get("location").is_none());
        let page = res.text().await.expect("page");
        let links = hrefs(&page);
        assert!(!links.is_empty(), "{page}");
        for link in links {
            assert_local(&link);
        }
        assert!(!page.contains("//evil"), "{page}");
    }
    for path in [
        "/profile?next=//evil.com",
        "/profile?x=%2F%2Fevil.com",
        "/profile?\\\\evil.com",
    ] {
        let res = b.get_html(path).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        let to = location(&res);
        assert_local(&to);
        assert!(to.starts_with("/wise/connect?return_to="), "{to}");
    }
    for hostile in ["//evil.com", "/%2F%2Fevil.com", "/\\evil.com"] {
        let res = b
            .client
            .post(b.url(&format!(
                "/wise/disconnect?return_to={}",
                super::browser::url_encode(hostile)
            )))
            .header("origin", &app.base_url)
            .header(ACCEPT, "text/html")
            .send()
            .await
            .expect("disconnect");
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{hostile}");
        assert_eq!(location(&res), "/", "{hostile}");
    }
}

/// With the `metrics` feature the demo serves `/metrics` in the Prometheus text format,
/// with the library's figures and no user id; without it there is no such page.
pub(crate) async fn metrics_page_in_prometheus_format<F, Fut>(start: F)
where
    F: Fn(Setup) -> Fut,
    Fut: Future<Output = TestApp>,
{
    let app = start(Setup::default()).await;
    let b = app.browser("mona").await;
    let res = b.link(ALICE, 30000000).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (status, _) = b.api_profile().await;
    assert_eq!(status, StatusCode::OK);
    let res = b.get_json("/metrics").await;
    #[cfg(feature = "metrics")]
    {
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            header(&res, "content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let text = res.text().await.expect("metrics");
        for expected in [
            "# TYPE wise_oauth_link_total counter",
            "wise_oauth_link_total{outcome=\"linked\"}",
            "wise_oauth_token_cache_total{result=\"hit\"}",
            "wise_oauth_wise_request_duration_seconds{endpoint=\"token\"",
            "wise_oauth_wise_request_duration_seconds{endpoint=\"profile\"",
            "wise_oauth_wise_request_duration_seconds{endpoint=\"api\"",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
        assert!(!text.contains("mona") && !text.contains("alice"), "{text}");
    }
    #[cfg(not(feature = "metrics"))]
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
