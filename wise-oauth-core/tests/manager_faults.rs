//! Wise misbehaving during refreshes (timeouts, 5xx, HTML, 429, dropped connections, lost
//! responses, a rejected client): nothing stored is lost, and a later call succeeds.

mod manager_support;

use std::sync::Arc;
use std::time::Duration;

use manager_support::*;
use wise_oauth_core::{LinkStatus, TokenError};
use wise_oauth_mock::Fault;

/// Links a user, expires the token, runs `during` (which injects faults), calls `token()`
/// and checks the invariants; returns the env and the first result.
async fn fault_case(
    settings: Settings,
    fault: Fault,
) -> (
    Env,
    wise_oauth_core::UserId,
    Result<wise_oauth_core::ValidToken, TokenError>,
) {
    let env = Env::with(false, settings).await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    env.mock.advance_clock(EXPIRED);
    env.mock.inject_fault(fault);
    let result = env.wise.token(&u).await;
    (env, u, result)
}

/// After a failed refresh: the record is untouched and its refresh token still valid; once
/// the per-link budget has passed, a call succeeds with a token Wise accepts.
async fn recovers(env: &Env, u: &wise_oauth_core::UserId, before: &Stored) {
    let after = env.stored(u).await;
    assert_eq!(after.status, LinkStatus::Active);
    assert!(env.mock.refresh_token_is_valid(&after.refresh_token));
    assert_eq!(after.refresh_token, before.refresh_token);
    env.mock.clear_faults();
    env.mock.advance_clock(PAST_BUDGET);
    let token = env.wise.token(u).await.unwrap();
    let stored = env.stored(u).await;
    assert_eq!(token.access_token().expose_secret(), stored.access_token);
    assert!(env.mock.access_token_is_valid(&stored.access_token));
    assert!(env.mock.refresh_token_is_valid(&stored.refresh_token));
}

async fn failing_case(settings: Settings, fault: Fault) {
    let env = Env::with(false, settings).await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let before = env.stored(&u).await;
    env.mock.advance_clock(EXPIRED);
    env.mock.inject_fault(fault);
    let err = env.wise.token(&u).await.unwrap_err();
    assert!(matches!(err, TokenError::Unavailable { .. }), "{err:?}");
    assert_eq!(
        env.stored(&u).await.sealed,
        before.sealed,
        "record untouched"
    );
    // Within the budget: no further call to Wise.
    let calls = env.refreshes();
    assert!(matches!(
        env.wise.token(&u).await,
        Err(TokenError::Unavailable { .. })
    ));
    assert_eq!(env.refreshes(), calls);
    recovers(&env, &u, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_leave_the_link_intact() {
    failing_case(
        Settings::default(),
        Fault::status("token:refresh_token", 500, r#"{"error":"server_error"}"#).times(3),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_502_leaves_the_link_intact() {
    failing_case(
        Settings::default(),
        Fault::status_with_type(
            "token:refresh_token",
            502,
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
            "text/html",
        )
        .times(3),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_200_leaves_the_link_intact() {
    failing_case(
        Settings::default(),
        Fault::status("token:refresh_token", 200, "{\"access_token\":").times(3),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_leave_the_link_intact() {
    failing_case(
        Settings::default(),
        Fault::drop_connection("token:refresh_token").times(3),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_leave_the_link_intact() {
    let settings = Settings {
        request_timeout: Duration::from_millis(300),
        max_attempts: 2,
        ..Settings::default()
    };
    let env = Env::with(false, settings).await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let before = env.stored(&u).await;
    env.mock.advance_clock(EXPIRED);
    env.mock
        .inject_fault(Fault::delay("token:refresh_token", Duration::from_millis(900)).times(2));
    let err = env.wise.token(&u).await.unwrap_err();
    assert!(matches!(err, TokenError::Unavailable { .. }), "{err:?}");
    assert_eq!(env.stored(&u).await.sealed, before.sealed);
    // The emulator drops a request whose client gave up: nothing was issued.
    assert_eq!(env.refresh_successes(), 0);
    recovers(&env, &u, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_with_long_retry_after_fails_fast_with_retry_after() {
    let (env, u, result) = fault_case(
        Settings::default(),
        Fault::rate_limit("token:refresh_token", 3600),
    )
    .await;
    let err = result.unwrap_err();
    assert_eq!(
        err.retry_after(),
        Some(Duration::from_secs(3600)),
        "{err:?}"
    );
    assert_eq!(env.refreshes(), 1, "no retry against a long Retry-After");
    let before = env.stored(&u).await;
    recovers(&env, &u, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_with_short_retry_after_is_retried() {
    let (env, u, result) = fault_case(
        Settings::default(),
        Fault::rate_limit("token:refresh_token", 1),
    )
    .await;
    let token = result.unwrap();
    assert_eq!(env.refreshes(), 2);
    assert_eq!(
        token.access_token().expose_secret(),
        env.stored(&u).await.access_token
    );
    assert!(env
        .mock
        .access_token_is_valid(token.access_token().expose_secret()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_response_is_retried_with_the_same_refresh_token() {
    let (env, u, result) = fault_case(
        Settings::default(),
        Fault::drop_after_processing("token:refresh_token"),
    )
    .await;
    let token = result.unwrap();
    assert_eq!(env.refresh_successes(), 2, "Wise processed both");
    let stored = env.stored(&u).await;
    assert_eq!(token.access_token().expose_secret(), stored.access_token);
    assert!(env.mock.access_token_is_valid(&stored.access_token));
    assert!(env.mock.refresh_token_is_valid(&stored.refresh_token));
    assert_eq!(stored.status, LinkStatus::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_client_touches_no_link_and_opens_the_breaker() {
    let env = Env::new().await;
    let mut users = Vec::new();
    for i in 0..20 {
        let email = format!("user{i}@example.com");
        new_wise_user(&env.mock, &email);
        let u = user(&format!("app-user-{i}"));
        link(&env.wise, &env.mock, &u, &email).await;
        users.push(u);
    }
    let mut before = Vec::new();
    for u in &users {
        before.push(env.stored(u).await);
    }
    let bad = instance(
        &env.mock,
        Arc::new(env.store.clone()),
        &EventLog::default(),
        &Settings {
            client_secret: "not-the-secret".to_owned(),
            ..Settings::default()
        },
    );
    env.mock.advance_clock(EXPIRED);
    let tasks: Vec<_> = users
        .iter()
        .cloned()
        .map(|u| {
            let bad = bad.clone();
            tokio::spawn(async move { bad.token(&u).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap_err(), TokenError::Misconfigured);
    }
    assert!(env.refreshes() >= 1);
    // The breaker is open now: later requests make no call to Wise at all.
    let calls = env.refreshes();
    for u in &users {
        assert_eq!(bad.token(u).await.unwrap_err(), TokenError::Misconfigured);
    }
    assert_eq!(env.refreshes(), calls, "the breaker stopped further calls");
    for (u, b) in users.iter().zip(&before) {
        let after = env.stored(u).await;
        assert_eq!(&after, b, "record of {u} unchanged");
        assert!(env.mock.refresh_token_is_valid(&after.refresh_token));
    }
    // The correctly configured instance still refreshes every link.
    for u in &users {
        let token = env.wise.token(u).await.unwrap();
        assert!(env
            .mock
            .access_token_is_valid(token.access_token().expose_secret()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_lifetime_tokens_still_refresh_at_most_once_per_30_seconds() {
    let (env, u, result) = fault_case(
        Settings::default(),
        Fault::status(
            "token:refresh_token",
            200,
            r#"{"access_token":"short-lived","token_type":"bearer","expires_in":0,"scope":"transfers"}"#,
        ),
    )
    .await;
    // Whatever the first caller got, the stored refresh token is the valid one.
    drop(result);
    let stored = env.stored(&u).await;
    assert!(env.mock.refresh_token_is_valid(&stored.refresh_token));
    assert_eq!(env.refreshes(), 1);
    for _ in 0..10 {
        let err = env.wise.token(&u).await.unwrap_err();
        assert!(
            err.retry_after()
                .is_some_and(|d| d <= Duration::from_secs(30)),
            "{err:?}"
        );
    }
    assert_eq!(env.refreshes(), 1);
    env.mock.advance_clock(PAST_BUDGET);
    let token = env.wise.token(&u).await.unwrap();
    assert_eq!(env.refreshes(), 2);
    assert!(env
        .mock
        .access_token_is_valid(token.access_token().expose_secret()));
}
