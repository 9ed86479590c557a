//! A configurable access-token lifetime, over real HTTP, on a frozen emulator clock.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use wise_oauth_mock::MockWise;

fn ts(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().expect("timestamp"), &Rfc3339).expect("rfc3339")
}

#[tokio::test]
async fn a_30_second_token_works_until_it_expires_on_the_emulator_clock() {
    let wise = MockWise::builder()
        .access_token_lifetime(Duration::from_secs(30))
        .start()
        .await
        .unwrap();
    assert_eq!(wise.access_token_lifetime(), Duration::from_secs(30));
    wise.freeze_clock();
    let code = auto_code(&wise, "alice@example.com", &[]).await;
    let (status, body) = exchange(&wise, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Same convention as the default 43199: `expires_in` is the lifetime in whole seconds.
    assert_eq!(body["expires_in"], 30);
    let d = (ts(&body["expires_at"]) - ts(&body["created_at"])).whole_milliseconds();
    assert!((29_999..=30_000).contains(&d), "{d}");
    assert!(body["refresh_token_expires_in"].as_u64().unwrap() > 19 * 365 * 86_400);
    let at = body["access_token"].as_str().unwrap();
    assert_eq!(get_api(&wise, "/v1/me", at).await.status(), StatusCode::OK);
    wise.advance_clock(Duration::from_secs(29));
    assert_eq!(get_api(&wise, "/v1/me", at).await.status(), StatusCode::OK);
    wise.advance_clock(Duration::from_secs(2));
    let resp = get_api(&wise, "/v1/me", at).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"], "invalid_token");
    assert!(!wise.access_token_is_valid(at));
    // Refreshed and client-credentials tokens get the same lifetime.
    let (status, body) = refresh(&wise, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 30);
    let (status, body) = token(&wise, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 30);
    let cc = body["access_token"].as_str().unwrap().to_owned();
    assert!(wise.access_token_is_valid(&cc));
    wise.advance_clock(Duration::from_secs(30));
    assert!(!wise.access_token_is_valid(&cc));
}

#[tokio::test]
async fn a_new_lifetime_applies_to_tokens_issued_after_the_change() {
    let wise = start().await;
    assert_eq!(wise.access_token_lifetime(), Duration::from_secs(43_199));
    wise.freeze_clock();
    let (old_at, rt) = link(&wise, "alice@example.com").await;
    wise.set_access_token_lifetime(Duration::from_secs(60));
    let (status, body) = refresh(&wise, &rt).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 60);
    let new_at = body["access_token"].as_str().unwrap();
    // The other user's earlier token keeps its 43199 s.
    let (bob_at, _) = {
        wise.set_access_token_lifetime(Duration::from_secs(43_199));
        let t = link(&wise, "bob@example.com").await;
        wise.set_access_token_lifetime(Duration::from_secs(60));
        t
    };
    wise.advance_clock(Duration::from_secs(61));
    assert_eq!(
        get_api(&wise, "/v1/me", new_at).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get_api(&wise, "/v1/me", &bob_at).await.status(),
        StatusCode::OK
    );
    assert!(
        !wise.access_token_is_valid(&old_at),
        "killed by the refresh"
    );
    // Under one second is raised to the minimum of one second.
    wise.set_access_token_lifetime(Duration::ZERO);
    assert_eq!(wise.access_token_lifetime(), Duration::from_secs(1));
    let (_, body) = token(&wise, &[("grant_type", "client_credentials")]).await;
    assert_eq!(body["expires_in"], 1);
    let cc = body["access_token"].as_str().unwrap();
    assert!(wise.access_token_is_valid(cc));
    wise.advance_clock(Duration::from_secs(1));
    assert!(!wise.access_token_is_valid(cc));
}

#[tokio::test]
async fn lifetime_and_frozen_clock_over_the_control_api() {
    let wise = MockWise::builder()
        .access_token_lifetime(Duration::from_secs(120))
        .start()
        .await
        .unwrap();
    let c = http();
    let base = wise.base_url();
    let v: Value = get_json(&c, format!("{base}/__mock/config")).await;
    assert_eq!(
        v,
        json!({"auto_approve": null, "rotate_refresh_tokens": false, "rate_limit": null, "access_token_lifetime_secs": 120})
    );
    let resp = c
        .post(format!("{base}/__mock/config"))
        .json(&json!({"access_token_lifetime_secs": 45}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["access_token_lifetime_secs"], 45);
    assert_eq!(wise.access_token_lifetime(), Duration::from_secs(45));
    let (_, body) = token(&wise, &[("grant_type", "client_credentials")]).await;
    assert_eq!(body["expires_in"], 45);
    let resp = c
        .post(format!("{base}/__mock/config"))
        .json(&json!({"access_token_lifetime_secs": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(wise.access_token_lifetime(), Duration::from_secs(45));

    // Frozen clock: `now` does not move until advanced; thawing never goes back.
    let frozen: Value =
        post_json(&c, format!("{base}/__mock/clock"), &json!({"frozen": true})).await;
    assert_eq!(frozen["frozen"], true);
    let again: Value = get_json(&c, format!("{base}/__mock/clock")).await;
    assert_eq!(again["now"], frozen["now"]);
    let later: Value = post_json(
        &c,
        format!("{base}/__mock/clock"),
        &json!({"advance_ms": 1500}),
    )
    .await;
    let step = ts(&later["now"]) - ts(&frozen["now"]);
    assert_eq!(step.whole_milliseconds(), 1500);
    let thawed: Value = post_json(
        &c,
        format!("{base}/__mock/clock"),
        &json!({"frozen": false}),
    )
    .await;
    assert_eq!(thawed["frozen"], false);
    assert!(!wise.clock_frozen());
    assert!(ts(&thawed["now"]) >= ts(&later["now"]));

    // Reset returns to the built lifetime.
    wise.reset();
    assert_eq!(wise.access_token_lifetime(), Duration::from_secs(120));
    let (_, body) = token(&wise, &[("grant_type", "client_credentials")]).await;
    assert_eq!(body["expires_in"], 120);
}
