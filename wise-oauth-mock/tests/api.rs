//! The API endpoints around linking, tokens on them, and common headers.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn app_token(wise: &wise_oauth_mock::MockWiseHandle) -> String {
    let (_, body) = token(wise, &[("grant_type", "client_credentials")]).await;
    body["access_token"].as_str().unwrap().to_owned()
}

async fn post_json(
    wise: &wise_oauth_mock::MockWiseHandle,
    path: &str,
    bearer: &str,
    body: Value,
) -> (StatusCode, Value) {
    let resp = http()
        .post(format!("{}{path}", wise.base_url()))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

#[tokio::test]
async fn me_and_profiles_show_only_the_consented_profile() {
    let wise = start().await;
    let p = login_and_approve(&wise, "alice@example.com", Some(30000001), &[]).await;
    let (_, body) = exchange(&wise, param(&p, "code").unwrap()).await;
    let at = body["access_token"].as_str().unwrap();

    let me: Value = get_api(&wise, "/v1/me", at).await.json().await.unwrap();
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["id"], 10000001);
    assert_eq!(me["details"]["firstName"], "Alice");

    let list: Value = get_api(&wise, "/v2/profiles", at)
        .await
        .json()
        .await
        .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], 30000001);
    assert_eq!(list[0]["type"], "BUSINESS");
    assert_eq!(list[0]["userId"], 10000001);
    assert!(list[0]["businessName"].is_string());

    let one = get_api(&wise, "/v2/profiles/30000001", at).await;
    assert_eq!(one.status(), StatusCode::OK);
    assert_eq!(one.json::<Value>().await.unwrap()["id"], 30000001);
    // Alice's other profile is not visible through this token; others do not exist for it.
    assert_eq!(
        get_api(&wise, "/v2/profiles/30000000", at).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get_api(&wise, "/v2/profiles/30000002", at).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_api(&wise, "/v2/profiles/99999999", at).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_api(&wise, "/v2/profiles/+30000001", at).await.status(),
        StatusCode::NOT_FOUND
    );

    let legacy: Value = get_api(&wise, "/v1/profiles", at)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        legacy,
        json!([{"id": 30000001, "type": "business", "details": legacy[0]["details"].clone()}])
    );

    let (_, bob) = link(&wise, "bob@example.com").await;
    let _ = bob;
    let stats = wise.stats();
    assert_eq!(stats.endpoint_requests("GET /v2/profiles/{id}"), 5);
    assert_eq!(stats.endpoint_requests("GET /v1/me"), 1);
}

#[tokio::test]
async fn personal_profile_shape() {
    let wise = start().await;
    let (at, _) = link(&wise, "bob@example.com").await;
    let list: Value = get_api(&wise, "/v2/profiles", &at)
        .await
        .json()
        .await
        .unwrap();
    let p = &list[0];
    assert_eq!(p["type"], "PERSONAL");
    assert_eq!(p["firstName"], "Bob");
    assert_eq!(p["lastName"], "Example");
    assert!(p["publicId"].as_str().is_some_and(is_uuid));
    assert_eq!(p["currentState"], "VISIBLE");
    let legacy: Value = get_api(&wise, "/v1/profiles", &at)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(legacy[0]["type"], "personal");
}

#[tokio::test]
async fn bad_bearer_tokens_get_invalid_token_with_the_token_echoed() {
    let wise = start().await;
    for path in [
        "/v1/me",
        "/v2/profiles",
        "/v2/profiles/30000000",
        "/v1/profiles",
    ] {
        let resp = get_api(&wise, path, "not-a-token").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"error": "invalid_token", "error_description": "not-a-token"})
        );
    }
    let resp = http()
        .get(format!("{}/v1/me", wise.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "unauthorized");
    // An application token cannot read user data.
    let app = app_token(&wise).await;
    assert_eq!(
        get_api(&wise, "/v1/me", &app).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn signup_statuses_and_users_exists() {
    let wise = start().await;
    let app = app_token(&wise).await;
    let code = "c".repeat(32);
    let path = "/v1/user/signup/registration_code";
    let (status, body) = post_json(
        &wise,
        path,
        &app,
        json!({"email": "carol@example.com", "registrationCode": code, "language": "en"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["email"], "carol@example.com");
    assert_eq!(body["active"], true);
    assert!(body["id"].is_u64() && body["name"].is_null() && body["details"].is_null());
    let (status, body) = post_json(
        &wise,
        path,
        &app,
        json!({"email": "alice@example.com", "registrationCode": code}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["errors"][0]["code"], "NOT_UNIQUE");
    let (status, body) = post_json(
        &wise,
        path,
        &app,
        json!({"email": "dave@example.com", "registrationCode": "short"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["code"], "Size");
    let (status, body) = post_json(&wise, path, &app, json!({"email": "dave@example.com"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["code"], "NotNull");
    let (status, _) = post_json(
        &wise,
        path,
        &app,
        json!({"email": "not an email", "registrationCode": code}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // A user token may not sign users up.
    let (at, _) = link(&wise, "alice@example.com").await;
    let (status, _) = post_json(
        &wise,
        path,
        &at,
        json!({"email": "eve@example.com", "registrationCode": code}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = post_json(
        &wise,
        "/v1/users/exists",
        &app,
        json!({"email": "carol@example.com"}),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"exists": true})));
    let (_, body) = post_json(
        &wise,
        "/v1/users/exists",
        &app,
        json!({"email": "nobody@example.com"}),
    )
    .await;
    assert_eq!(body, json!({"exists": false}));
}

#[tokio::test]
async fn claim_account_returns_a_code() {
    let wise = start().await;
    let (at, _) = link(&wise, "alice@example.com").await;
    let (status, body) = post_json(
        &wise,
        "/v1/user/claim-account",
        &at,
        json!({"registrationCode": "x".repeat(32)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["claimAccountCode"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    let (status, _) = post_json(&wise, "/v1/user/claim-account", &at, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn correlation_id_is_echoed_only_when_short_and_trace_id_is_always_there() {
    let wise = start().await;
    let c = http();
    let id = "123e4567-e89b-12d3-a456-426614174000";
    for path in ["/oauth/token", "/v1/me", "/nope"] {
        let resp = c
            .post(format!("{}{path}", wise.base_url()))
            .header("X-External-Correlation-Id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["x-external-correlation-id"], id);
        assert!(!resp.headers()["x-trace-id"].is_empty());
    }
    let resp = c
        .post(format!("{}/oauth/token", wise.base_url()))
        .header("X-External-Correlation-Id", "x".repeat(37))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("x-external-correlation-id").is_none());
    let resp = c.get(wise.authorize_url()).send().await.unwrap();
    assert!(resp.headers().get("x-external-correlation-id").is_none());
    assert!(resp.headers().contains_key("x-trace-id"));
}
