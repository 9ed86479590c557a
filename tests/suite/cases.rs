//! One function per behaviour; each takes a freshly started [`TestApp`].

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::browser::{header, hidden_field, location, query_param, url_encode, Browser};
use super::TestApp;

const ALICE: &str = "alice@example.com";
const PERSONAL: u64 = 30000000;
const BUSINESS: u64 = 30000001;
const BOB_PROFILE: u64 = 30000002;
/// Longer than the emulator's access-token lifetime (43199 s).
const PAST_EXPIRY: Duration = Duration::from_secs(43_200 + 120);

/// The callback answer of a successful link: 303 to a clean local URL with the hygiene
/// headers.
fn assert_clean_redirect(res: &reqwest::Response, expected: &str) {
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let loc = location(res);
    assert_eq!(loc, expected);
    assert!(!loc.contains("code") && !loc.contains("state"), "{loc}");
    assert_eq!(header(res, "cache-control"), Some("no-store"));
    assert_eq!(header(res, "referrer-policy"), Some("no-referrer"));
}

/// A failed callback: a 4xx page with the hygiene headers.
async fn assert_rejected(res: reqwest::Response) -> String {
    let status = res.status();
    assert!(status.is_client_error(), "expected a 4xx, got {status}");
    assert_eq!(header(&res, "cache-control"), Some("no-store"));
    assert_eq!(header(&res, "referrer-policy"), Some("no-referrer"));
    assert!(
        res.headers().get("location").is_none(),
        "no redirect on failure"
    );
    res.text().await.expect("body")
}

/// A browser logged in as `user` with a link to alice's personal profile.
async fn linked(app: &TestApp, user: &str) -> Browser {
    let b = app.browser(user).await;
    let res = b.link(ALICE, PERSONAL).await;
    assert_clean_redirect(&res, "/");
    b
}

pub(crate) async fn full_link_lifecycle(app: &TestApp) {
    let b = app.browser("carol").await;
    let st = b.status().await;
    assert_eq!(st["linked"], false);

    // Not linked: a browser is sent into the link flow, back to the same page afterwards.
    let res = b.get_html("/profile").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/wise/connect?return_to=%2Fprofile");

    // Connect → emulator login, profile choice, consent → callback → /profile.
    let authorize = b.start_connect(Some("/profile")).await;
    assert!(
        authorize.starts_with(&app.emulator.authorize_url()),
        "{authorize}"
    );
    let callback = b
        .decide_at_emulator(&authorize, ALICE, BUSINESS, "approve")
        .await;
    assert!(callback.starts_with(&format!("{}/wise/callback?", app.base_url)));
    assert_eq!(app.token_calls(), 0, "no token call before the callback");
    let res = b.get_html(&callback).await;
    assert_clean_redirect(&res, "/profile");
    assert_eq!(app.code_calls(), 1);

    let st = b.status().await;
    assert_eq!(st["linked"], true);
    assert_eq!(st["profile_id"], BUSINESS);
    assert_eq!(st["relink_required"], false);
    assert!(
        st["expires_at"].as_str().is_some_and(|s| s.contains('T')),
        "{st}"
    );

    let res = b.get_html("/profile").await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(page.contains(&BUSINESS.to_string()), "{page}");
    let (status, body) = b.api_profile().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["profile_id"], BUSINESS);
    assert_eq!(body["profile"]["id"], BUSINESS);
    assert_eq!(body["user"], "carol", "the token names its app user");
    let first = body["token_fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(app.refresh_calls(), 0);

    // Past expiry on the emulator's clock: still works, with exactly one refresh.
    app.emulator.advance_clock(PAST_EXPIRY);
    let (status, body) = b.api_profile().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = body["token_fingerprint"].as_str().unwrap().to_owned();
    assert_ne!(first, second, "a refreshed token");
    assert_eq!(
        body["user"], "carol",
        "a refreshed token names its app user too"
    );
    let res = b.get_html("/profile").await;
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _) = b.api_profile().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.refresh_calls(), 1, "exactly one refresh");

    // The user reclaims the account at Wise: once the token expires, re-link.
    app.emulator.reclaim(ALICE);
    app.emulator.advance_clock(PAST_EXPIRY);
    let res = b.get_html("/profile").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/wise/connect?return_to=%2Fprofile");
    let (status, body) = b.api_profile().await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "wise_relink_required");
    assert_eq!(
        body["connect_url"],
        "/wise/connect?return_to=%2Fapi%2Fprofile"
    );
    let st = b.status().await;
    assert_eq!(st["linked"], true);
    assert_eq!(st["relink_required"], true);
    let refreshes = app.refresh_calls();
    let _ = b.api_profile().await;
    assert_eq!(
        app.refresh_calls(),
        refreshes,
        "no more refresh attempts once dead"
    );

    // Re-link.
    let res = b.link(ALICE, PERSONAL).await;
    assert_clean_redirect(&res, "/");
    let st = b.status().await;
    assert_eq!(
        (st["linked"].clone(), st["relink_required"].clone()),
        (true.into(), false.into())
    );
    assert_eq!(st["profile_id"], PERSONAL);
    let (status, body) = b.api_profile().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["profile_id"], PERSONAL);

    // Disconnect from the app's own page (a same-origin form post).
    let res = b
        .disconnect(&[
            ("accept", "text/html"),
            ("origin", &app.base_url),
            ("sec-fetch-site", "same-origin"),
            ("content-type", "application/x-www-form-urlencoded"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/");
    assert_eq!(b.status().await["linked"], false);
    let (status, body) = b.api_profile().await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "wise_not_linked");
    assert_eq!(
        body["connect_url"],
        "/wise/connect?return_to=%2Fapi%2Fprofile"
    );
}

pub(crate) async fn not_logged_in_gets_401_everywhere(app: &TestApp) {
    let b = Browser::new(app);
    for path in [
        "/wise/connect",
        "/wise/callback?code=x&state=y",
        "/wise/status",
        "/profile",
        "/api/profile",
    ] {
        let res = b.get_json(path).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "not_logged_in", "{path}");
        let res = b.get_html(path).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path} (browser)");
    }
    for path in [
        "/wise/disconnect",
        "/wise/mobile/start",
        "/wise/mobile/complete",
    ] {
        let res = b
            .client
            .post(b.url(path))
            .header("x-requested-with", "test")
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(
        app.emulator.stats().endpoints.values().sum::<u64>(),
        0,
        "no call to Wise"
    );
}

pub(crate) async fn status_never_shows_a_token(app: &TestApp) {
    let b = linked(app, "dave").await;
    let st = b.status().await;
    let mut keys: Vec<_> = st.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["expires_at", "linked", "profile_id", "relink_required"]
    );
    let text = st.to_string();
    for t in app.emulator.user_tokens(ALICE) {
        for token in [t.access_token, t.refresh_token].into_iter().flatten() {
            assert!(!text.contains(&token));
        }
    }
}

/// Runs `attack` against a linked user and checks: a clear 4xx, no token-endpoint call,
/// and the stored link unchanged.
async fn unchanged_after(
    app: &TestApp,
    b: &Browser,
    attack: impl std::future::Future<Output = String>,
) -> String {
    let before = b.status().await;
    let calls = app.token_calls();
    let page = attack.await;
    assert_eq!(app.token_calls(), calls, "no token-endpoint call");
    assert_eq!(b.status().await, before, "stored link unchanged");
    page
}

pub(crate) async fn callback_without_state_is_rejected(app: &TestApp) {
    let b = linked(app, "erin").await;
    let authorize = b.start_connect(None).await;
    let callback = b
        .decide_at_emulator(&authorize, ALICE, BUSINESS, "approve")
        .await;
    let code = query_param(&callback, "code").unwrap();
    let page = unchanged_after(app, &b, async {
        assert_rejected(
            b.get_html(&format!("/wise/callback?code={code}&profileId={BUSINESS}"))
                .await,
        )
        .await
    })
    .await;
    assert!(page.contains("Connect Wise again"), "{page}");
}

pub(crate) async fn replayed_state_is_rejected(app: &TestApp) {
    let b = app.browser("frank").await;
    let authorize = b.start_connect(None).await;
    let callback = b
        .decide_at_emulator(&authorize, ALICE, PERSONAL, "approve")
        .await;
    assert_clean_redirect(&b.get_html(&callback).await, "/");
    unchanged_after(app, &b, async {
        assert_rejected(b.get_html(&callback).await).await
    })
    .await;
    assert_eq!(app.code_calls(), 1, "exactly one exchange");
}

pub(crate) async fn state_from_another_browser_is_rejected(app: &TestApp) {
    let a = linked(app, "gina").await;
    let authorize = a.start_connect(None).await;
    let callback = a
        .decide_at_emulator(&authorize, ALICE, BUSINESS, "approve")
        .await;
    // Same app user, other browser (other session, no binding cookie of this flow).
    let b = app.browser("gina").await;
    unchanged_after(app, &a, async {
        assert_rejected(b.get_html(&callback).await).await
    })
    .await;
    // The failed attempt consumed the state: the original browser cannot use it either.
    unchanged_after(app, &a, async {
        assert_rejected(a.get_html(&callback).await).await
    })
    .await;
    assert_eq!(a.status().await["profile_id"], PERSONAL);
}

pub(crate) async fn state_of_another_app_user_is_rejected(app: &TestApp) {
    let victim = linked(app, "henry").await;
    let b = app.browser("ivan").await;
    let authorize = b.start_connect(None).await;
    let callback = b
        .decide_at_emulator(&authorize, ALICE, BUSINESS, "approve")
        .await;
    // Same browser, now logged in as another app user.
    b.login("henry").await;
    unchanged_after(app, &victim, async {
        assert_rejected(b.get_html(&callback).await).await
    })
    .await;
    assert_eq!(victim.status().await["profile_id"], PERSONAL);
    b.login("ivan").await;
    assert_eq!(b.status().await["linked"], false);
}

pub(crate) async fn access_denied_is_a_clean_page(app: &TestApp) {
    let b = linked(app, "judy").await;
    let authorize = b.start_connect(None).await;
    let callback = b
        .decide_at_emulator(&authorize, ALICE, BUSINESS, "deny")
        .await;
    assert_eq!(
        query_param(&callback, "error").as_deref(),
        Some("access_denied")
    );
    let page = unchanged_after(app, &b, async {
        assert_rejected(b.get_html(&callback).await).await
    })
    .await;
    assert!(page.contains("declined"), "{page}");
}

pub(crate) async fn error_description_is_escaped(app: &TestApp) {
    let b = linked(app, "kim").await;
    let authorize = b.start_connect(None).await;
    let state = query_param(&authorize, "state").unwrap();
    let path = format!(
        "/wise/callback?error=access_denied&error_description={}&state={state}",
        url_encode("<script>alert(1)</script>")
    );
    let page = unchanged_after(app, &b, async {
        assert_rejected(b.get_html(&path).await).await
    })
    .await;
    assert!(!page.contains("<script>"), "{page}");
    // The state was consumed by the error callback.
    let page = unchanged_after(app, &b, async {
        assert_rejected(
            b.get_html(&format!("/wise/callback?code=abc&state={state}"))
                .await,
        )
        .await
    })
    .await;
    assert!(!page.contains("<script>"));
}

pub(crate) async fn hostile_return_to_lands_on_root(app: &TestApp) {
    app.emulator.set_auto_approve(Some(ALICE));
    let b = app.browser("leo").await;
    for hostile in [
        "https://evil.com",
        "//evil.com",
        "///evil.com",
        "/\\evil.com",
        "\\/evil.com",
        "/%2F%2Fevil.com",
        "http:evil.com",
        "javascript:alert(1)",
        "java%09script:",
        "/x%0d%0aLocation:%20//evil",
        "https://app.example.com.evil.com",
    ] {
        let authorize = b.start_connect(Some(hostile)).await;
        let res = b.get_html(&authorize).await;
        let callback = location(&res);
        let res = b.get_html(&callback).await;
        assert_clean_redirect(&res, "/");
    }
    // A local path is kept.
    let authorize = b.start_connect(Some("/profile?tab=1")).await;
    let callback = location(&b.get_html(&authorize).await);
    assert_clean_redirect(&b.get_html(&callback).await, "/profile?tab=1");
}

pub(crate) async fn malformed_profile_id_is_rejected_before_exchange(app: &TestApp) {
    let b = linked(app, "mia").await;
    for bad in [
        "%2B30000001",
        "0030000001",
        "%EF%BC%93",
        "123456789012345678901",
    ] {
        let authorize = b.start_connect(None).await;
        let callback = b
            .decide_at_emulator(&authorize, ALICE, BUSINESS, "approve")
            .await;
        let tampered = callback.replace(
            &format!("profileId={BUSINESS}"),
            &format!("profileId={bad}"),
        );
        assert_ne!(tampered, callback);
        unchanged_after(app, &b, async {
            assert_rejected(b.get_html(&tampered).await).await
        })
        .await;
    }
}

pub(crate) async fn foreign_profile_id_is_rejected_and_nothing_stored(app: &TestApp) {
    let b = linked(app, "nina").await;
    let before = b.status().await;
    let authorize = b.start_connect(None).await;
    let callback = b
        .decide_at_emulator(&authorize, ALICE, BUSINESS, "approve")
        .await;
    let tampered = callback.replace(
        &format!("profileId={BUSINESS}"),
        &format!("profileId={BOB_PROFILE}"),
    );
    // The hint can only be checked with the new token, so the code is exchanged once;
    // the foreign profile is refused and nothing is stored.
    let calls = app.token_calls();
    assert_rejected(b.get_html(&tampered).await).await;
    assert!(app.token_calls() <= calls + 1, "at most the one exchange");
    assert_eq!(b.status().await, before, "stored link unchanged");
    let (status, body) = b.api_profile().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["profile_id"], PERSONAL);
}

pub(crate) async fn duplicated_parameters_are_rejected(app: &TestApp) {
    let b = linked(app, "omar").await;
    for dup in ["state", "code", "profileId"] {
        let authorize = b.start_connect(None).await;
        let callback = b
            .decide_at_emulator(&authorize, ALICE, BUSINESS, "approve")
            .await;
        let value = query_param(&callback, dup).unwrap();
        let tampered = format!("{callback}&{dup}={}", url_encode(&value));
        unchanged_after(app, &b, async {
            assert_rejected(b.get_html(&tampered).await).await
        })
        .await;
    }
}

pub(crate) async fn oversized_query_is_rejected(app: &TestApp) {
    let b = linked(app, "pia").await;
    let authorize = b.start_connect(None).await;
    let callback = b
        .decide_at_emulator(&authorize, ALICE, BUSINESS, "approve")
        .await;
    let tampered = format!("{callback}&padding={}", "a".repeat(5000));
    unchanged_after(app, &b, async {
        assert_rejected(b.get_html(&tampered).await).await
    })
    .await;
    let long_code = callback.replace("code=", &format!("code={}", "c".repeat(600)));
    unchanged_after(app, &b, async {
        assert_rejected(b.get_html(&long_code).await).await
    })
    .await;
}

pub(crate) async fn implicit_flow_parameters_are_rejected(app: &TestApp) {
    let b = linked(app, "quinn").await;
    let authorize = b.start_connect(None).await;
    let callback = b
        .decide_at_emulator(&authorize, ALICE, BUSINESS, "approve")
        .await;
    let tampered = format!("{callback}&access_token=x");
    unchanged_after(app, &b, async {
        assert_rejected(b.get_html(&tampered).await).await
    })
    .await;
}

pub(crate) async fn cross_site_disconnect_is_refused(app: &TestApp) {
    let b = linked(app, "rita").await;
    let evil = "https://evil.example";
    for headers in [
        vec![("sec-fetch-site", "cross-site"), ("origin", evil)],
        vec![("sec-fetch-site", "same-site")],
        vec![
            ("sec-fetch-site", "cross-site"),
            ("x-requested-with", "XMLHttpRequest"),
        ],
        vec![("origin", evil)],
        vec![("origin", "null"), ("content-type", "application/json")],
        vec![("content-type", "application/x-www-form-urlencoded")],
        vec![("content-type", "text/plain")],
        vec![],
    ] {
        let mut h = headers.clone();
        h.push(("accept", "text/html"));
        let before = b.status().await;
        let res = b.disconnect(&h).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert_eq!(b.status().await, before, "{headers:?}");
    }
    assert_eq!(b.status().await["linked"], true);
    // GET is not a way around it.
    let res = b.get_html("/wise/disconnect").await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(b.status().await["linked"], true);
}

pub(crate) async fn same_origin_disconnect_for_json_clients(app: &TestApp) {
    let b = linked(app, "sam").await;
    let res = b
        .disconnect(&[
            ("accept", "application/json"),
            ("x-requested-with", "XMLHttpRequest"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["linked"], false);
    assert_eq!(body["removed"], true);
    assert_eq!(b.status().await["linked"], false);
    // An Origin equal to the app's own origin passes too.
    let res = b
        .disconnect(&[("accept", "application/json"), ("origin", &app.base_url)])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["removed"], false);
}

pub(crate) async fn user_is_never_taken_from_query_or_header(app: &TestApp) {
    let owner = linked(app, "tara").await;
    let other = app.browser("uma").await;
    let res = other
        .client
        .get(other.url("/api/profile?user=tara&user_id=tara"))
        .header("accept", "application/json")
        .header("x-user-id", "tara")
        .header("x-wise-user", "tara")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "wise_not_linked"
    );
    let res = other.get_json("/wise/status?user=tara").await;
    assert_eq!(res.json::<Value>().await.unwrap()["linked"], false);
    assert_eq!(owner.status().await["linked"], true);
}

pub(crate) async fn mobile_link_flow(app: &TestApp) {
    let b = app.browser("vera").await;
    let res = b
        .client
        .post(b.url("/wise/mobile/start"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let start: Value = res.json().await.unwrap();
    let authorize = start["authorize_url"].as_str().unwrap().to_owned();
    assert_eq!(
        query_param(&authorize, "redirect_uri").as_deref(),
        Some(crate::demo::shared::MOBILE_REDIRECT_URI)
    );
    let deep_link = b
        .decide_at_emulator(&authorize, ALICE, BUSINESS, "approve")
        .await;
    assert!(deep_link.starts_with("wiseoauthdemo://"), "{deep_link}");
    let q = |name: &str| query_param(&deep_link, name).unwrap();
    assert_eq!(q("state"), start["state"].as_str().unwrap());
    let body =
        serde_json::json!({ "code": q("code"), "state": q("state"), "profileId": q("profileId") });
    let complete = |body: Value| {
        b.client
            .post(b.url("/wise/mobile/complete"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let res = complete(body.clone()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let done: Value = res.json().await.unwrap();
    assert_eq!(
        done,
        serde_json::json!({ "linked": true, "profile_id": BUSINESS })
    );
    assert_eq!(b.status().await["profile_id"], BUSINESS);
    // Replay: a clean JSON 4xx, no second exchange.
    let calls = app.token_calls();
    let res = complete(body).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "unknown_state");
    assert_eq!(app.token_calls(), calls);
    // Malformed bodies.
    for bad in [
        serde_json::json!({"code": "x"}),
        serde_json::json!([1]),
        serde_json::json!({"code": "x", "state": "y", "profileId": true}),
    ] {
        let res = complete(bad).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(app.token_calls(), calls);
}

pub(crate) async fn mobile_routes_refuse_cross_site(app: &TestApp) {
    let b = app.browser("walt").await;
    for path in ["/wise/mobile/start", "/wise/mobile/complete"] {
        let res = b
            .client
            .post(b.url(path))
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
        let res = b
            .client
            .post(b.url(path))
            .header("content-type", "application/json")
            .header("sec-fetch-site", "cross-site")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(app.token_calls(), 0);
}

/// Two tabs of one browser link at once and finish in the opposite order: both callbacks
/// succeed, and the store keeps the grant Wise issued last (the earlier grant's refresh
/// token is dead at Wise), so a refresh after expiry still works.
pub(crate) async fn two_tabs_link_and_the_later_grant_wins(app: &TestApp) {
    let b = app.browser("dave").await;
    let first = b.start_connect(None).await;
    let second = b.start_connect(Some("/profile")).await;
    let first_cb = b
        .decide_at_emulator(&first, ALICE, PERSONAL, "approve")
        .await;
    let second_cb = b
        .decide_at_emulator(&second, ALICE, PERSONAL, "approve")
        .await;

    assert_clean_redirect(&b.get_html(&second_cb).await, "/profile");
    assert_clean_redirect(&b.get_html(&first_cb).await, "/");
    assert_eq!(app.code_calls(), 2);

    let (status, body) = b.api_profile().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Only the later grant's refresh token is alive at Wise: the refresh must use it.
    app.emulator.advance_clock(PAST_EXPIRY);
    let (status, body) = b.api_profile().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.refresh_calls(), 1);
    assert_eq!(b.status().await["relink_required"], false);
}

/// The profile page shows the balances (through `WiseToken::client_for`); a statement is
/// SCA-protected: the first call shows the challenge with its one-time token, approving it
/// (at the emulator) repeats the call with `x-2fa-approval` and shows the statement.
pub(crate) async fn sca_protected_statement_walkthrough(app: &TestApp) {
    let b = linked(app, "sam").await;
    let res = b.get_html("/profile").await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(page.contains("class=\"balance\""), "{page}");
    let marker = "href=\"/statement?";
    let start = page.find(marker).expect("a statement link") + marker.len() - "/statement?".len();
    let end = page[start..].find('"').unwrap() + start;
    let link = page[start..end].replace("&amp;", "&");
    let balance = query_param(&b.url(&link), "balance").unwrap();
    let currency = query_param(&b.url(&link), "currency").unwrap();

    // First call: Wise asks for strong customer authentication.
    let res = b.get_html(&link).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(page.contains("x-2fa-approval"), "{page}");
    let ott = hidden_field(&page, "ott");
    assert!(!ott.is_empty());
    assert!(!page.contains("class=\"transaction\""), "{page}");

    // Approve (the emulator stands in for the user's approval), then the repeated call.
    let res = b
        .client
        .post(b.url("/statement/approve"))
        .header("accept", "text/html")
        .form(&[
            ("ott", ott.as_str()),
            ("balance", &balance),
            ("currency", &currency),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(page.contains("Approved"), "{page}");
    assert_eq!(page.matches("class=\"transaction\"").count(), 2, "{page}");
}
