//! The optional per-client rate limit, over real HTTP, on a frozen emulator clock.

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use wise_oauth_mock::{MockWise, MockWiseHandle, RateLimit, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};

/// A client-credentials request on a shared (keep-alive) client; returns the response.
async fn cc(c: &Client, wise: &MockWiseHandle, id: &str, secret: &str) -> reqwest::Response {
    c.post(format!("{}/oauth/token", wise.base_url()))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token call")
}

async fn demo_cc(c: &Client, wise: &MockWiseHandle) -> StatusCode {
    cc(c, wise, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        .await
        .status()
}

/// Asserts a 429 from the rate limit with this `Retry-After`.
async fn assert_limited(resp: reqwest::Response, retry_after: &str) {
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], retry_after);
    assert_eq!(resp.headers()["x-rate-limited-by"], "wise-public-api");
    assert!(resp.headers().contains_key("x-trace-id"));
    let body: Value = resp.json().await.expect("json body");
    assert_eq!(body["error"], "too_many_requests");
}

#[tokio::test]
async fn hundred_token_requests_in_a_second_pass_the_101st_gets_429() {
    let wise = MockWise::builder()
        .rate_limit(RateLimit::WISE_DEFAULT)
        .start()
        .await
        .unwrap();
    assert_eq!(wise.rate_limit(), Some(RateLimit::default()));
    // All 101 requests fall in the same emulator second, however slow the machine.
    wise.freeze_clock();
    let c = http();
    for i in 0..100 {
        assert_eq!(demo_cc(&c, &wise).await, StatusCode::OK, "request {i}");
    }
    assert_limited(cc(&c, &wise, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET).await, "1").await;
    wise.advance_clock(Duration::from_millis(999));
    assert_limited(cc(&c, &wise, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET).await, "1").await;
    // The first request of the burst leaves the one-second window.
    wise.advance_clock(Duration::from_millis(1));
    assert_eq!(demo_cc(&c, &wise).await, StatusCode::OK);
    let stats = wise.stats();
    assert_eq!(stats.rate_limited, 2);
    assert_eq!(stats.token_requests("client_credentials"), 103);
    assert_eq!(stats.token_successes("client_credentials"), 101);
    assert_eq!(stats.token_outcomes("client_credentials", "ok"), 101);
    assert_eq!(
        stats.token_outcomes("client_credentials", "rate_limited"),
        2
    );
    assert_eq!(stats.endpoint_requests("POST /oauth/token"), 103);
    assert_eq!(stats.faults_applied, 0);
}

#[tokio::test]
async fn no_rate_limit_by_default() {
    let wise = start().await;
    assert_eq!(wise.rate_limit(), None);
    wise.freeze_clock();
    let c = http();
    for i in 0..120 {
        assert_eq!(demo_cc(&c, &wise).await, StatusCode::OK, "request {i}");
    }
    assert_eq!(wise.stats().rate_limited, 0);
}

#[tokio::test]
async fn clients_have_separate_budgets_and_api_calls_count_for_the_tokens_client() {
    let wise = start().await;
    let (at, _) = link(&wise, "alice@example.com").await;
    wise.register_client("c2", "s2", ["https://app.example/cb"]);
    wise.freeze_clock();
    wise.set_rate_limit(Some(RateLimit {
        per_second: 3,
        per_minute: 0,
    }));
    let c = http();
    // The demo client's budget: two API calls with its user token, one token request.
    assert_eq!(get_api(&wise, "/v1/me", &at).await.status(), StatusCode::OK);
    assert_eq!(
        get_api(&wise, "/v2/profiles", &at).await.status(),
        StatusCode::OK
    );
    assert_eq!(demo_cc(&c, &wise).await, StatusCode::OK);
    assert_limited(get_api(&wise, "/v1/me", &at).await, "1").await;
    assert_limited(cc(&c, &wise, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET).await, "1").await;
    // Another client is untouched.
    for _ in 0..3 {
        assert_eq!(cc(&c, &wise, "c2", "s2").await.status(), StatusCode::OK);
    }
    assert_limited(cc(&c, &wise, "c2", "s2").await, "1").await;
    // Unknown clients are not counted (they get their 401).
    assert_eq!(
        cc(&c, &wise, "nobody", "x").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(wise.stats().rate_limited, 3);
    // Switching the limit off (or changing it) starts afresh.
    wise.set_rate_limit(None);
    assert_eq!(get_api(&wise, "/v1/me", &at).await.status(), StatusCode::OK);
    wise.set_rate_limit(Some(RateLimit {
        per_second: 1,
        per_minute: 0,
    }));
    assert_eq!(get_api(&wise, "/v1/me", &at).await.status(), StatusCode::OK);
    assert_limited(get_api(&wise, "/v1/me", &at).await, "1").await;
    assert_eq!(wise.stats().rate_limited, 4);
}

#[tokio::test]
async fn per_minute_window_and_control_api() {
    let wise = start().await;
    let c = http();
    let base = wise.base_url();
    let resp = c
        .post(format!("{base}/__mock/clock"))
        .json(&json!({"frozen": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(wise.clock_frozen());
    let resp = c
        .post(format!("{base}/__mock/config"))
        .json(&json!({"rate_limit": {"per_second": 100, "per_minute": 150}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["rate_limit"],
        json!({"per_second": 100, "per_minute": 150})
    );
    assert_eq!(
        wise.rate_limit(),
        Some(RateLimit {
            per_second: 100,
            per_minute: 150
        })
    );
    for _ in 0..100 {
        assert_eq!(demo_cc(&c, &wise).await, StatusCode::OK);
    }
    assert_limited(cc(&c, &wise, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET).await, "1").await;
    wise.advance_clock(Duration::from_secs(1));
    for _ in 0..50 {
        assert_eq!(demo_cc(&c, &wise).await, StatusCode::OK);
    }
    // 150 in the minute: the burst at t0 frees its first slot at t0 + 60 s, 59 s from now.
    assert_limited(
        cc(&c, &wise, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET).await,
        "59",
    )
    .await;
    wise.advance_clock(Duration::from_secs(58));
    assert_limited(cc(&c, &wise, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET).await, "1").await;
    wise.advance_clock(Duration::from_secs(1));
    assert_eq!(demo_cc(&c, &wise).await, StatusCode::OK);
    let stats: Value = get_json(&c, format!("{base}/__mock/stats")).await;
    assert_eq!(stats["rate_limited"], 3);
    assert_eq!(
        stats["grants"]["client_credentials"]["outcomes"]["rate_limited"],
        3
    );

    // Malformed limits are refused and change nothing; null switches it off.
    let resp = c
        .post(format!("{base}/__mock/config"))
        .json(&json!({"rate_limit": {"per_second": -1}, "rotate_refresh_tokens": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = get_json(&c, format!("{base}/__mock/config")).await;
    assert_eq!(v["rotate_refresh_tokens"], false);
    assert_eq!(v["rate_limit"]["per_minute"], 150);
    let resp = c
        .post(format!("{base}/__mock/config"))
        .json(&json!({"rate_limit": null}))
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["rate_limit"], Value::Null);
    assert_eq!(wise.rate_limit(), None);
    for _ in 0..101 {
        assert_eq!(demo_cc(&c, &wise).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn reset_restores_the_built_limit() {
    let limit = RateLimit {
        per_second: 2,
        per_minute: 0,
    };
    let wise = MockWise::builder().rate_limit(limit).start().await.unwrap();
    wise.set_rate_limit(None);
    wise.reset();
    assert_eq!(wise.rate_limit(), Some(limit));
    wise.freeze_clock();
    let c = http();
    assert_eq!(demo_cc(&c, &wise).await, StatusCode::OK);
    assert_eq!(demo_cc(&c, &wise).await, StatusCode::OK);
    assert_limited(cc(&c, &wise, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET).await, "1").await;
}
