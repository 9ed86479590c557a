//! Malformed requests get OAuth-style JSON errors, never a 200 and never a panic.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use wise_oauth_mock::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};

async fn expect_error(resp: reqwest::Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(resp.status(), status);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    body
}

#[tokio::test]
async fn token_endpoint_rejects_malformed_requests() {
    let wise = start().await;
    let c = http();
    let url = format!("{}/oauth/token", wise.base_url());
    let auth = |r: reqwest::RequestBuilder| r.basic_auth(DEMO_CLIENT_ID, Some(DEMO_CLIENT_SECRET));

    // wrong method
    expect_error(
        auth(c.get(&url)).send().await.unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
    )
    .await;
    expect_error(
        auth(c.put(&url)).send().await.unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
    )
    .await;
    // JSON instead of form
    let resp = auth(c.post(&url))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    // missing grant type
    let body = expect_error(
        auth(c.post(&url)).form(&[("x", "y")]).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_eq!(body["error_description"], "Missing grant type");
    // unknown grant type
    expect_error(
        auth(c.post(&url))
            .form(&[("grant_type", "password")])
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    )
    .await;
    // missing fields
    for form in [
        vec![
            ("grant_type", "authorization_code"),
            ("client_id", DEMO_CLIENT_ID),
            ("code", "x"),
        ],
        vec![
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("redirect_uri", REDIRECT),
        ],
        vec![("grant_type", "refresh_token")],
        vec![
            ("grant_type", "registration_code"),
            ("client_id", DEMO_CLIENT_ID),
            ("email", "a@b.c"),
        ],
    ] {
        expect_error(
            auth(c.post(&url)).form(&form).send().await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
    }
    // duplicated fields
    let resp = auth(c.post(&url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    // garbage and missing Basic headers
    for header in [
        "Basic !!!not-base64!!!",
        "Basic Zm9v",
        "Bearer abc",
        "Basic ",
        "Digest x",
    ] {
        let resp = c
            .post(&url)
            .header("authorization", header)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        expect_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    let resp = c
        .post(&url)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // body client_id differs from Basic
    let resp = auth(c.post(&url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "someone-else"),
        ])
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // huge body
    let huge = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(1024 * 1024)
    );
    let resp = auth(c.post(&url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request").await;
    // invalid UTF-8 in the form
    let resp = auth(c.post(&url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'g', b'=', 0xff, 0xfe])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
    // Nothing above succeeded.
    let stats = wise.stats();
    assert_eq!(stats.grants.values().map(|g| g.successes).sum::<u64>(), 0);
    assert!(stats.token_requests("(unparsed)") >= 2);
    assert!(stats.token_requests("(missing)") >= 1);
    // The server is still healthy.
    let (status, _) = token(&wise, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn api_and_unknown_paths_answer_json_errors() {
    let wise = start().await;
    let c = http();
    let resp = c
        .post(format!("{}/v1/me", wise.base_url()))
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::METHOD_NOT_ALLOWED, "invalid_request").await;
    let resp = c
        .get(format!("{}/v9/nothing", wise.base_url()))
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    let (_, body) = token(&wise, &[("grant_type", "client_credentials")]).await;
    let app = body["access_token"].as_str().unwrap();
    let resp = c
        .post(format!("{}/v1/users/exists", wise.base_url()))
        .bearer_auth(app)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.json::<Value>().await.unwrap()["errors"].is_array());
    let resp = c.delete(wise.authorize_url()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    // The authorize form refuses JSON.
    let resp = c
        .post(wise.authorize_url())
        .json(&serde_json::json!({"session": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}
