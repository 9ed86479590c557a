//! The authorization pages over real HTTP.

mod common;

use common::*;
use reqwest::StatusCode;
use wise_oauth_mock::{MockWise, DEMO_CLIENT_ID};

#[tokio::test]
async fn alice_login_profile_consent_redirects_with_code_state_profile() {
    let wise = start().await;
    let params = login_and_approve(&wise, "alice@example.com", Some(30000001), &[]).await;
    let code = param(&params, "code").expect("code");
    assert!(!code.is_empty() && code.len() <= 32);
    assert_eq!(param(&params, "state"), Some("st-123"));
    assert_eq!(param(&params, "profileId"), Some("30000001"));
    let names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["code", "state", "profileId"]);
    assert_eq!(wise.stats().endpoint_requests("GET /oauth/authorize"), 1);
    assert_eq!(wise.stats().endpoint_requests("POST /oauth/authorize"), 3);
}

#[tokio::test]
async fn bob_needs_2fa_wrong_code_then_111111() {
    let wise = start().await;
    let c = http();
    let html = c
        .get(authorize_url(&wise, &[]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sid = session_of(&html);
    let resp = post_step(
        &c,
        &wise,
        &sid,
        &[
            ("step", "login"),
            ("email", "bob@example.com"),
            ("password", "password1"),
        ],
    )
    .await;
    let html = resp.text().await.unwrap();
    assert!(html.contains("name=\"code\""), "2FA page expected");
    // Skipping ahead to consent is refused.
    let resp = post_step(
        &c,
        &wise,
        &sid,
        &[("step", "consent"), ("decision", "approve")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = post_step(&c, &wise, &sid, &[("step", "2fa"), ("code", "123456")]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.text().await.unwrap().contains("not right"));
    let resp = post_step(&c, &wise, &sid, &[("step", "2fa"), ("code", "111111")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("30000002"));
    let resp = post_step(
        &c,
        &wise,
        &sid,
        &[("step", "profile"), ("profileId", "30000002")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = post_step(
        &c,
        &wise,
        &sid,
        &[("step", "consent"), ("decision", "approve")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let (_, params) = location_params(&resp);
    assert_eq!(param(&params, "profileId"), Some("30000002"));
    // The session is consumed.
    let resp = post_step(
        &c,
        &wise,
        &sid,
        &[("step", "consent"), ("decision", "approve")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none());
}

#[tokio::test]
async fn wrong_password_and_foreign_profile_are_rejected() {
    let wise = start().await;
    let c = http();
    let html = c
        .get(authorize_url(&wise, &[]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sid = session_of(&html);
    let resp = post_step(
        &c,
        &wise,
        &sid,
        &[
            ("step", "login"),
            ("email", "alice@example.com"),
            ("password", "nope"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("Incorrect email or password"));
    let resp = post_step(
        &c,
        &wise,
        &sid,
        &[
            ("step", "login"),
            ("email", "alice@example.com"),
            ("password", "password1"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Bob's profile is not Alice's to choose.
    let resp = post_step(
        &c,
        &wise,
        &sid,
        &[("step", "profile"), ("profileId", "30000002")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn deny_redirects_with_access_denied_and_state() {
    let wise = start().await;
    let c = http();
    let html = c
        .get(authorize_url(&wise, &[]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sid = session_of(&html);
    post_step(
        &c,
        &wise,
        &sid,
        &[
            ("step", "login"),
            ("email", "alice@example.com"),
            ("password", "password1"),
        ],
    )
    .await;
    post_step(
        &c,
        &wise,
        &sid,
        &[("step", "profile"), ("profileId", "30000000")],
    )
    .await;
    let resp = post_step(
        &c,
        &wise,
        &sid,
        &[("step", "consent"), ("decision", "deny")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let (base, params) = location_params(&resp);
    assert_eq!(base, REDIRECT);
    assert_eq!(param(&params, "error"), Some("access_denied"));
    assert!(param(&params, "error_description").is_some());
    assert_eq!(param(&params, "state"), Some("st-123"));
    assert!(param(&params, "code").is_none());
}

#[tokio::test]
async fn bad_client_or_redirect_gets_error_page_without_redirect() {
    let wise = start().await;
    let c = http();
    let cases = [
        vec![("client_id", "nope"), ("redirect_uri", REDIRECT)],
        vec![
            ("client_id", DEMO_CLIENT_ID),
            ("redirect_uri", "http://127.0.0.1:3000/wise/callback/"),
        ],
        vec![
            ("client_id", DEMO_CLIENT_ID),
            ("redirect_uri", "http://127.0.0.1:3000/wise/callback?x=1"),
        ],
        vec![
            ("client_id", DEMO_CLIENT_ID),
            ("redirect_uri", "https://evil.example/cb"),
        ],
        vec![("client_id", DEMO_CLIENT_ID)],
        vec![("redirect_uri", REDIRECT)],
        vec![
            ("client_id", DEMO_CLIENT_ID),
            ("client_id", DEMO_CLIENT_ID),
            ("redirect_uri", REDIRECT),
        ],
    ];
    for q in cases {
        let url = format!(
            "{}?{}",
            wise.authorize_url(),
            serde_urlencoded::to_string(&q).unwrap()
        );
        let resp = c.get(url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{q:?}");
        assert!(resp.headers().get("location").is_none());
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
}

#[tokio::test]
async fn trailing_slash_variant_serves_the_same_pages() {
    let wise = start().await;
    let url = authorize_url(&wise, &[]).replace("/oauth/authorize?", "/oauth/authorize/?");
    let c = http();
    let resp = c.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let sid = session_of(&resp.text().await.unwrap());
    let resp = c
        .post(format!("{}/", wise.authorize_url()))
        .form(&[
            ("session", sid.as_str()),
            ("step", "login"),
            ("email", "alice@example.com"),
            ("password", "password1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("profileId"));
    assert_eq!(wise.stats().endpoint_requests("GET /oauth/authorize"), 1);
}

#[tokio::test]
async fn auto_approve_and_mobile_custom_scheme() {
    let wise = MockWise::builder()
        .auto_approve("bob@example.com")
        .start()
        .await
        .unwrap();
    let url = format!(
        "{}?{}",
        wise.authorize_url(),
        serde_urlencoded::to_string([
            ("client_id", DEMO_CLIENT_ID),
            ("redirect_uri", "wiseoauthdemo://wise/callback"),
            ("state", "m1"),
        ])
        .unwrap()
    );
    let resp = http().get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let (base, params) = location_params(&resp);
    assert_eq!(base, "wiseoauthdemo://wise/callback");
    assert_eq!(param(&params, "profileId"), Some("30000002"));
    assert_eq!(param(&params, "state"), Some("m1"));
}

#[tokio::test]
async fn registered_uri_with_query_keeps_its_query() {
    let wise = start().await;
    wise.register_redirect_uri(DEMO_CLIENT_ID, "http://127.0.0.1:3000/cb?tenant=a b");
    wise.set_auto_approve(Some("alice@example.com"));
    let url = format!(
        "{}?{}",
        wise.authorize_url(),
        serde_urlencoded::to_string([
            ("client_id", DEMO_CLIENT_ID),
            ("redirect_uri", "http://127.0.0.1:3000/cb?tenant=a b")
        ])
        .unwrap()
    );
    let resp = http().get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let loc = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        loc.starts_with("http://127.0.0.1:3000/cb?tenant=a b&code="),
        "{loc}"
    );
}

#[tokio::test]
async fn pages_escape_what_they_echo() {
    let wise = start().await;
    let evil = "<script>alert(1)</script>";
    wise.register_client(evil, "s", [REDIRECT]);
    let url = format!(
        "{}?{}",
        wise.authorize_url(),
        serde_urlencoded::to_string([("client_id", evil), ("redirect_uri", REDIRECT)]).unwrap()
    );
    let c = http();
    let html = c.get(url).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;"));
    let sid = session_of(&html);
    let resp = post_step(
        &c,
        &wise,
        &sid,
        &[
            ("step", "login"),
            ("email", "\"><img src=x>"),
            ("password", "x"),
        ],
    )
    .await;
    let html = resp.text().await.unwrap();
    assert!(!html.contains("<img"));
}

#[tokio::test]
async fn invalid_response_type_and_pkce_method_redirect_with_errors() {
    let wise = start().await;
    let resp = http()
        .get(authorize_url(&wise, &[]).replace("response_type=code", "response_type=token"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let (_, p) = location_params(&resp);
    assert_eq!(param(&p, "error"), Some("unsupported_response_type"));
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let resp = http()
        .get(authorize_url(
            &wise,
            &[
                ("code_challenge", challenge),
                ("code_challenge_method", "S512"),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let (_, p) = location_params(&resp);
    assert_eq!(param(&p, "error"), Some("invalid_request"));
    assert_eq!(param(&p, "state"), Some("st-123"));
}

#[tokio::test]
async fn unknown_session_is_an_error_page() {
    let wise = start().await;
    let resp = post_step(
        &http(),
        &wise,
        "nope",
        &[("step", "login"), ("email", "a@b.c"), ("password", "x")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none());
}
