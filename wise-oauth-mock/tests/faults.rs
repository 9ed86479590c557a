//! Every fault kind, over real HTTP.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use wise_oauth_mock::{Fault, FaultKind};

#[tokio::test]
async fn status_fault_with_html_body_then_normal_again() {
    let wise = start().await;
    wise.inject_fault(
        Fault::status_with_type(
            "token",
            502,
            "<html><h1>502 Bad Gateway</h1></html>",
            "text/html",
        )
        .times(2),
    );
    for _ in 0..2 {
        let resp = http()
            .post(format!("{}/oauth/token", wise.base_url()))
            .basic_auth("wise-demo-client", Some("wise-demo-secret"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(resp.text().await.unwrap().contains("502"));
    }
    assert_eq!(
        token(&wise, &[("grant_type", "client_credentials")])
            .await
            .0,
        StatusCode::OK
    );
    let stats = wise.stats();
    assert_eq!(stats.token_requests("client_credentials"), 3);
    assert_eq!(stats.token_successes("client_credentials"), 1);
    assert_eq!(
        stats.token_outcomes("client_credentials", "fault:status"),
        2
    );
    assert_eq!(stats.faults_applied, 2);
}

#[tokio::test]
async fn garbage_200_body() {
    let wise = start().await;
    wise.inject_fault(Fault::status("token", 200, "this is not json"));
    let resp = http()
        .post(format!("{}/oauth/token", wise.base_url()))
        .basic_auth("wise-demo-client", Some("wise-demo-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "this is not json");
}

#[tokio::test]
async fn grant_specific_fault_only_hits_that_grant() {
    let wise = start().await;
    let (at, rt) = link(&wise, "alice@example.com").await;
    wise.inject_fault(Fault::status(
        "token:refresh_token",
        503,
        "{\"error\":\"server_error\"}",
    ));
    assert_eq!(
        token(&wise, &[("grant_type", "client_credentials")])
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(refresh(&wise, &rt).await.0, StatusCode::SERVICE_UNAVAILABLE);
    // The faulted refresh did not process: the access token still lives.
    assert!(wise.access_token_is_valid(&at));
    assert_eq!(refresh(&wise, &rt).await.0, StatusCode::OK);
    assert_eq!(wise.stats().token_requests("refresh_token"), 2);
}

#[tokio::test]
async fn rate_limit_fault() {
    let wise = start().await;
    let (at, _) = link(&wise, "alice@example.com").await;
    wise.inject_fault(Fault::rate_limit("profiles", 7));
    let resp = get_api(&wise, "/v2/profiles", &at).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(resp.headers()["x-rate-limited-by"], "wise-public-api");
    assert_eq!(
        get_api(&wise, "/v2/profiles", &at).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn sca_fault() {
    let wise = start().await;
    let (at, _) = link(&wise, "alice@example.com").await;
    wise.inject_fault(Fault::sca("me"));
    let resp = get_api(&wise, "/v1/me", &at).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()["x-2fa-approval-result"], "REJECTED");
    assert!(is_uuid(resp.headers()["x-2fa-approval"].to_str().unwrap()));
}

#[tokio::test]
async fn delay_fault_then_normal_answer() {
    let wise = start().await;
    wise.inject_fault(Fault::delay("token", Duration::from_millis(300)));
    let t = Instant::now();
    let (status, _) = token(&wise, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(300));
    // Delay combined with a status.
    wise.inject_fault(Fault::status("token", 500, "{}").with_delay(Duration::from_millis(100)));
    let t = Instant::now();
    assert_eq!(
        token(&wise, &[("grant_type", "client_credentials")])
            .await
            .0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(t.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn drop_closes_the_connection_before_processing() {
    let wise = start().await;
    let (at, rt) = link(&wise, "alice@example.com").await;
    wise.inject_fault(Fault::drop_connection("token:refresh_token"));
    let err = http()
        .post(format!("{}/oauth/token", wise.base_url()))
        .basic_auth("wise-demo-client", Some("wise-demo-secret"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
        ])
        .send()
        .await
        .expect_err("connection must be dropped");
    assert!(!err.is_status());
    assert!(wise.access_token_is_valid(&at), "nothing was processed");
    assert_eq!(
        wise.stats().token_outcomes("refresh_token", "fault:drop"),
        1
    );
    assert_eq!(refresh(&wise, &rt).await.0, StatusCode::OK);
}

#[tokio::test]
async fn drop_after_processing_loses_the_response_but_applies_the_refresh() {
    let wise = start().await;
    let (at, rt) = link(&wise, "alice@example.com").await;
    wise.inject_fault(Fault::drop_after_processing("token:refresh_token"));
    let result = http()
        .post(format!("{}/oauth/token", wise.base_url()))
        .basic_auth("wise-demo-client", Some("wise-demo-secret"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
        ])
        .send()
        .await;
    assert!(result.is_err(), "no response must arrive");
    assert!(!wise.access_token_is_valid(&at), "the refresh was applied");
    let tokens = wise.user_tokens("alice@example.com");
    assert_ne!(tokens[0].access_token.as_deref(), Some(at.as_str()));
    assert_eq!(wise.stats().token_successes("refresh_token"), 1);
    assert_eq!(
        wise.stats().token_outcomes("refresh_token", "ok:dropped"),
        1
    );
    // The refresh token (no rotation) still works.
    assert_eq!(refresh(&wise, &rt).await.0, StatusCode::OK);
}

#[tokio::test]
async fn late_completion_applies_a_refresh_the_client_gave_up_on() {
    let wise = start().await;
    let (at, rt) = link(&wise, "alice@example.com").await;
    wise.inject_fault(Fault::late_completion(
        "token:refresh_token",
        Duration::from_millis(1500),
    ));
    let result = http()
        .post(format!("{}/oauth/token", wise.base_url()))
        .basic_auth("wise-demo-client", Some("wise-demo-secret"))
        .timeout(Duration::from_millis(250))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
        ])
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout(), "the client gave up");
    // Held, not processed yet, when the client left...
    let stats = wise.stats();
    assert_eq!(stats.late_completions, 0);
    assert_eq!(stats.token_in_flight, 1, "the request is still held");
    assert!(wise.access_token_is_valid(&at));
    // ...but completed later all the same.
    tokio::time::timeout(Duration::from_secs(10), wise.wait_for_late_completions(1))
        .await
        .expect("the late completion happened");
    assert!(
        !wise.access_token_is_valid(&at),
        "the late refresh killed it"
    );
    assert_eq!(
        get_api(&wise, "/v1/me", &at).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let tokens = wise.user_tokens("alice@example.com");
    let new_at = tokens[0].access_token.clone().expect("a new access token");
    assert_ne!(new_at, at);
    assert_eq!(
        get_api(&wise, "/v1/me", &new_at).await.status(),
        StatusCode::OK
    );
    let stats = wise.stats();
    assert_eq!(stats.late_completions, 1);
    assert_eq!(stats.token_in_flight, 0);
    assert_eq!(stats.faults_applied, 1);
    assert_eq!(stats.token_requests("refresh_token"), 1);
    assert_eq!(stats.token_successes("refresh_token"), 1);
    assert_eq!(stats.token_outcomes("refresh_token", "ok:late"), 1);
    assert_eq!(stats.token_outcomes("refresh_token", "ok"), 0);
}

#[tokio::test]
async fn late_completion_answers_a_client_that_waits() {
    let wise = start().await;
    let (at, rt) = link(&wise, "alice@example.com").await;
    wise.inject_fault(Fault::late_completion(
        "token:refresh_token",
        Duration::from_millis(300),
    ));
    let t = Instant::now();
    let (status, body) = refresh(&wise, &rt).await;
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "the request was held"
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let new_at = body["access_token"].as_str().unwrap();
    assert_ne!(new_at, at);
    assert!(wise.access_token_is_valid(new_at));
    assert!(!wise.access_token_is_valid(&at));
    // Already processed when the answer came: the wait returns at once.
    tokio::time::timeout(Duration::from_secs(5), wise.wait_for_late_completions(1))
        .await
        .expect("counted");
    assert_eq!(wise.stats().token_outcomes("refresh_token", "ok:late"), 1);
    // A late completion that fails is counted with its error.
    wise.inject_fault(Fault::late_completion(
        "token:refresh_token",
        Duration::from_millis(10),
    ));
    assert_eq!(
        refresh(&wise, "no-such-token").await.0,
        StatusCode::BAD_REQUEST
    );
    let stats = wise.stats();
    assert_eq!(stats.late_completions, 2);
    assert_eq!(
        stats.token_outcomes("refresh_token", "invalid_grant:late"),
        1
    );
    assert_eq!(stats.token_successes("refresh_token"), 1);
}

#[tokio::test]
async fn late_completion_at_the_api_over_the_control_api() {
    let wise = start().await;
    let c = http();
    let resp = c
        .post(format!("{}/__mock/faults", wise.base_url()))
        .json(
            &serde_json::json!({"endpoint": "signup", "kind": "late_completion", "delay_ms": 1500}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let (status, cc) = token(&wise, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK);
    let result = c
        .post(format!(
            "{}/v1/user/signup/registration_code",
            wise.base_url()
        ))
        .bearer_auth(cc["access_token"].as_str().unwrap())
        .timeout(Duration::from_millis(250))
        .json(&serde_json::json!({"email": "late@example.com", "registrationCode": "r".repeat(32)}))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout(), "the client gave up");
    assert!(wise.profile_ids("late@example.com").is_empty(), "not yet");
    tokio::time::timeout(Duration::from_secs(10), wise.wait_for_late_completions(1))
        .await
        .expect("the late completion happened");
    assert_eq!(
        wise.profile_ids("late@example.com").len(),
        1,
        "user created"
    );
    let stats: Value = get_json(&c, format!("{}/__mock/stats", wise.base_url())).await;
    assert_eq!(stats["late_completions"], 1);
    assert_eq!(stats["faults_applied"], 1);
}

#[tokio::test]
async fn any_target_and_api_drop() {
    let wise = start().await;
    let (at, _) = link(&wise, "alice@example.com").await;
    wise.inject_fault(Fault::new(
        "any",
        FaultKind::Status {
            status: 500,
            body: "{}".into(),
            content_type: None,
        },
    ));
    assert_eq!(
        get_api(&wise, "/v1/me", &at).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    wise.inject_fault(Fault::drop_connection("GET /v2/profiles/{id}"));
    assert!(http()
        .get(format!("{}/v2/profiles/30000000", wise.base_url()))
        .bearer_auth(&at)
        .send()
        .await
        .is_err());
    assert_eq!(
        get_api(&wise, "/v2/profiles/30000000", &at).await.status(),
        StatusCode::OK
    );
    // Faults on the authorize page.
    wise.inject_fault(Fault::status_with_type(
        "authorize",
        503,
        "<h1>down</h1>",
        "text/html",
    ));
    assert_eq!(
        http()
            .get(authorize_url(&wise, &[]))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    wise.inject_fault(Fault::status("token", 500, "{}"));
    wise.clear_faults();
    assert_eq!(
        token(&wise, &[("grant_type", "client_credentials")])
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn faults_over_the_control_api() {
    let wise = start().await;
    let c = http();
    let url = format!("{}/__mock/faults", wise.base_url());
    let resp = c
        .post(&url)
        .json(&serde_json::json!([
            {"endpoint": "token", "times": 1, "kind": "rate_limit", "retry_after": 3},
            {"endpoint": "token", "kind": "sca", "delay_ms": 10},
            {"endpoint": "token", "kind": "drop"}
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let listed: Value = c.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(listed[0]["kind"], "rate_limit");
    let (s1, _) = token(&wise, &[("grant_type", "client_credentials")]).await;
    let (s2, _) = token(&wise, &[("grant_type", "client_credentials")]).await;
    assert_eq!(
        (s1, s2),
        (StatusCode::TOO_MANY_REQUESTS, StatusCode::FORBIDDEN)
    );
    let dropped = c
        .post(format!("{}/oauth/token", wise.base_url()))
        .basic_auth("wise-demo-client", Some("wise-demo-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await;
    assert!(dropped.is_err());
    let resp = c
        .post(&url)
        .json(&serde_json::json!({"endpoint": "token", "kind": "explode"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = c.delete(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}
