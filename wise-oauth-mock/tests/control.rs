//! The control API over HTTP, the handle's helpers, and several emulators at once.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wise_oauth_mock::{MockWise, NewProfile, NewUser, ProfileKind, DEMO_CLIENT_ID};

async fn control(
    wise: &wise_oauth_mock::MockWiseHandle,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let c = http();
    let url = format!("{}/__mock{path}", wise.base_url());
    let req = match method {
        "GET" => c.get(url),
        "DELETE" => c.delete(url),
        _ => c.post(url),
    };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let resp = req.send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

#[tokio::test]
async fn stats_tokens_and_user_actions_over_http() {
    let wise = start().await;
    let (at, rt) = link(&wise, "alice@example.com").await;
    let (status, stats) = control(&wise, "GET", "/stats", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["endpoints"]["POST /oauth/token"], 1);
    assert_eq!(stats["grants"]["authorization_code"]["requests"], 1);
    assert_eq!(stats["grants"]["authorization_code"]["successes"], 1);
    assert_eq!(stats["grants"]["authorization_code"]["outcomes"]["ok"], 1);

    let (status, tokens) = control(&wise, "GET", "/users/alice@example.com/tokens", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        tokens,
        json!([{"client_id": DEMO_CLIENT_ID, "profile_id": 30000000, "access_token": at, "refresh_token": rt}])
    );
    let (status, _) = control(&wise, "GET", "/users/nobody@example.com/tokens", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for action in ["enable-2fa", "reclaim", "revoke", "enhanced-security"] {
        let (status, _) = control(
            &wise,
            "POST",
            &format!("/users/alice@example.com/{action}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{action}");
    }
    assert!(!wise.access_token_is_valid(&at));
    let (status, _) = control(&wise, "POST", "/users/alice@example.com/explode", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, rt) = link(&wise, "bob@example.com").await;
    let (status, _) = control(
        &wise,
        "POST",
        "/users/bob@example.com/change-email",
        Some(json!({"new_email": "bobby@example.com"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(refresh(&wise, &rt).await.0, StatusCode::FORBIDDEN);
    let (status, v) = control(&wise, "GET", &format!("/tokens/{rt}"), None).await;
    assert_eq!(
        (status, v["refresh_token_valid"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    // Control calls are not counted.
    assert_eq!(
        wise.stats()
            .endpoints
            .keys()
            .filter(|k| k.contains("__mock"))
            .count(),
        0
    );
}

#[tokio::test]
async fn create_users_over_http_and_through_the_handle() {
    let wise = start().await;
    let (status, created) = control(
        &wise,
        "POST",
        "/users",
        Some(json!({"email": "carol@example.com", "password": "pw", "two_factor": true,
                    "profiles": [{"kind": "business", "name": "Carol Ltd"}, {"kind": "personal", "name": "Carol C"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["profile_ids"], json!([30000003, 30000004]));
    let (status, _) = control(
        &wise,
        "POST",
        "/users",
        Some(json!({"email": "carol@example.com", "password": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = control(&wise, "POST", "/users", Some(json!({"nope": 1}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let made = wise
        .create_user(NewUser {
            email: "dan@example.com".into(),
            password: "pw".into(),
            two_factor: false,
            profiles: vec![
                NewProfile {
                    kind: ProfileKind::Personal,
                    name: "Dan D".into(),
                },
                NewProfile::business("Dan Ltd"),
            ],
        })
        .unwrap();
    assert_eq!(made.profile_ids, wise.profile_ids("dan@example.com"));
    assert!(wise
        .create_user(NewUser::new("dan@example.com", "x"))
        .is_err());
    assert!(wise.create_user(NewUser::new("not-an-email", "x")).is_err());
    let (_, v) = control(&wise, "GET", "/users/dan@example.com/profiles", None).await;
    assert_eq!(v["profile_ids"], json!(made.profile_ids));
}

#[tokio::test]
async fn clock_config_clients_and_reset_over_http() {
    let wise = start().await;
    let (status, v) = control(&wise, "POST", "/clock", Some(json!({"advance_secs": 3600}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["offset_secs"], 3600);
    assert_eq!(wise.clock_offset().as_secs(), 3600);
    let (_, v) = control(&wise, "GET", "/clock", None).await;
    assert!(v["now"].is_string());

    let (status, v) = control(
        &wise,
        "POST",
        "/config",
        Some(json!({"auto_approve": "bob@example.com", "rotate_refresh_tokens": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["rotate_refresh_tokens"], true);
    let resp = http().get(authorize_url(&wise, &[])).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    control(
        &wise,
        "POST",
        "/config",
        Some(json!({"auto_approve": null})),
    )
    .await;
    assert_eq!(
        http()
            .get(authorize_url(&wise, &[]))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let (status, _) = control(&wise, "POST", "/clients", Some(json!({"client_id": "c2", "client_secret": "s2", "redirect_uris": ["https://app.example/cb"]}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = control(
        &wise,
        "POST",
        "/clients/c2/redirect-uris",
        Some(json!({"uri": "app2://cb"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = token_at(
        &wise,
        "/oauth/token",
        "c2",
        "s2",
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = control(&wise, "POST", "/reset", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(wise.clock_offset().as_secs(), 0);
    assert_eq!(wise.stats().total_token_requests(), 0);
    let (status, _) = token_at(
        &wise,
        "/oauth/token",
        "c2",
        "s2",
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wise.profile_ids("alice@example.com"),
        vec![30000000, 30000001]
    );
}

#[tokio::test]
async fn handle_reset_clears_tokens() {
    let wise = start().await;
    let (at, rt) = link(&wise, "alice@example.com").await;
    wise.reset();
    assert!(!wise.access_token_is_valid(&at));
    assert!(!wise.refresh_token_is_valid(&rt));
    assert!(wise.user_tokens("alice@example.com").is_empty());
}

#[tokio::test]
async fn two_emulators_in_one_process_are_independent() {
    let a = MockWise::builder().start().await.unwrap();
    let b = MockWise::builder()
        .client("b-client", "b-secret", ["http://127.0.0.1:4000/cb"])
        .rotate_refresh_tokens(true)
        .start()
        .await
        .unwrap();
    assert_ne!(a.addr(), b.addr());
    let (at, _) = link(&a, "alice@example.com").await;
    assert!(a.access_token_is_valid(&at));
    assert!(!b.access_token_is_valid(&at));
    let (status, _) = token_at(
        &b,
        "/oauth/token",
        "b-client",
        "b-secret",
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = token_at(
        &b,
        "/oauth/token",
        DEMO_CLIENT_ID,
        "wise-demo-secret",
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.stats().total_token_requests(), 1);
    assert_eq!(b.stats().total_token_requests(), 2);
    let b_url = b.base_url();
    b.shutdown().await;
    assert!(http().get(format!("{b_url}/v1/me")).send().await.is_err());
    assert_eq!(get_api(&a, "/v1/me", &at).await.status(), StatusCode::OK);
    a.shutdown().await;
}
