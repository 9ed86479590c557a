//! `WiseClient` and `WiseAuthLayer` over loopback against the emulator: the 401 recovery
//! after a sibling's refresh, a revoked link, 429, the SCA cycle, and which failures are
//! repeated.

mod manager_support;

use std::time::{Duration, SystemTime};

use manager_support::*;
use serde_json::{json, Value};
use tower::{Layer as _, Service as _, ServiceExt as _};
use wise_oauth_core::{
    ClientError, LinkStatus, StatementQuery, TokenError, WiseAuthLayer, WiseError,
};
use wise_oauth_mock::Fault;

const BALANCES: &str = "GET /v4/profiles/{profile_id}/balances";
const PROFILES: &str = "GET /v2/profiles";
const STATEMENT: &str =
    "GET /v1/profiles/{profile_id}/balance-statements/{balance_id}/statement.json";
const CLAIM: &str = "POST /v1/user/claim-account";

fn hits(env: &Env, key: &str) -> u64 {
    env.mock.stats().endpoint_requests(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sibling_refreshed_the_call_is_repeated_once_with_the_stored_token() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let sibling = env.sibling(&EventLog::default());
    // The sibling caches the current token; this instance then refreshes the link (Wise
    // kills the sibling's token) while the sibling's cache still holds it.
    let old = sibling.token(&u).await.unwrap();
    env.wise
        .token_after_unauthorized(&u, old.access_token())
        .await
        .unwrap();
    assert_eq!(env.refreshes(), 1);
    assert!(!env
        .mock
        .access_token_is_valid(old.access_token().expose_secret()));

    let profiles = sibling.client(&u).profiles().await.unwrap();
    assert_eq!(profiles.len(), 1);
    assert_eq!(profiles[0].id, old.profile_id());
    // One 401, exactly one retry, and no refresh of its own.
    assert_eq!(hits(&env, PROFILES), 2);
    assert_eq!(env.refreshes(), 1);
    // A POST is repeated after a 401 too (Wise did not process it).
    let again = env.sibling(&EventLog::default());
    again.token(&u).await.unwrap();
    env.wise
        .token_after_unauthorized(&u, env.wise.token(&u).await.unwrap().access_token())
        .await
        .unwrap();
    assert_eq!(env.refreshes(), 2);
    let claimed: Value = again
        .client(&u)
        .post("/v1/user/claim-account", &json!({"registrationCode": "x"}))
        .await
        .unwrap();
    // The repeated POST reached the handler once.
    assert!(claimed["claimAccountCode"].is_string());
    assert_eq!(hits(&env, CLAIM), 2);
    assert_eq!(env.refreshes(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_revoked_at_wise_is_a_relink_and_the_link_is_marked() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let profile = env.wise.token(&u).await.unwrap().profile_id();
    env.mock.revoke(ALICE);

    let err = env
        .wise
        .client(&u)
        .balances(profile, &["STANDARD"])
        .await
        .unwrap_err();
    assert_eq!(err, ClientError::Token(TokenError::RelinkRequired));
    assert!(err.needs_relink());
    assert_eq!(env.stored(&u).await.status, LinkStatus::NeedsRelink);
    // One call to the API (its 401 led to the one refresh, which Wise refused).
    assert_eq!(hits(&env, BALANCES), 1);
    assert_eq!(env.refreshes(), 1);
    // The next call does not reach Wise at all.
    let err = env.wise.client(&u).profiles().await.unwrap_err();
    assert!(err.needs_relink());
    assert_eq!(hits(&env, PROFILES), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_401_is_typed() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let unauthorized = r#"{"error":"invalid_token","error_description":"x"}"#;
    env.mock
        .inject_fault(Fault::status("balances", 401, unauthorized).times(2));
    let profile = env.wise.token(&u).await.unwrap().profile_id();
    let err = env
        .wise
        .client(&u)
        .balances(profile, &[])
        .await
        .unwrap_err();
    assert_eq!(err, ClientError::Wise(WiseError::Unauthorized));
    assert_eq!(hits(&env, BALANCES), 2);
    // The first 401 found nothing newer in the store: one refresh, no more.
    assert_eq!(env.refreshes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_typed_with_its_retry_after_and_not_repeated() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let profile = env.wise.token(&u).await.unwrap().profile_id();
    env.mock.inject_fault(Fault::rate_limit("balances", 7));
    let err = env
        .wise
        .client(&u)
        .balances(profile, &["STANDARD"])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ClientError::Wise(WiseError::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        })
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(hits(&env, BALANCES), 1);
    // Served normally afterwards: the seeded balances.
    let balances = env
        .wise
        .client(&u)
        .balances(profile, &["STANDARD", "SAVINGS"])
        .await
        .unwrap();
    assert_eq!(balances.len(), 3);
    assert!(balances.iter().all(|b| !b.amount.value().is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sca_cycle_rejected_approved_repeated() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let client = env.wise.client(&u);
    let profile = env.wise.token(&u).await.unwrap().profile_id();
    let eur = client.balances(profile, &["STANDARD"]).await.unwrap()[0].clone();
    let end = SystemTime::now();
    let query = StatementQuery::new(&eur.currency, end - Duration::from_secs(86_400), end);

    let err = client.statement(profile, eur.id, &query).await.unwrap_err();
    let ott = err
        .sca_one_time_token()
        .expect("an SCA challenge")
        .to_owned();
    assert!(!err.needs_relink());
    // Not cleared yet: the repeated call is challenged again, with a new token.
    let err = client
        .with_sca_approval(&ott)
        .unwrap()
        .statement(profile, eur.id, &query)
        .await
        .unwrap_err();
    assert_ne!(err.sca_one_time_token(), Some(ott.as_str()));
    let ott = err.sca_one_time_token().unwrap().to_owned();

    assert!(env.mock.approve_sca(&ott));
    let statement = client
        .with_sca_approval(&ott)
        .unwrap()
        .statement(profile, eur.id, &query)
        .await
        .unwrap();
    assert_eq!(statement.end_of_statement_balance, Some(eur.amount.clone()));
    assert_eq!(statement.transactions.len(), 2);
    assert_eq!(hits(&env, STATEMENT), 3);

    // A one-time token is single use.
    env.mock.end_sca_sessions();
    let err = client
        .with_sca_approval(&ott)
        .unwrap()
        .statement(profile, eur.id, &query)
        .await
        .unwrap_err();
    assert!(err.sca_one_time_token().is_some_and(|t| t != ott));
    assert!(client.with_sca_approval("not a token").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_that_fails_with_a_5xx_is_not_repeated_a_get_is() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let client = env.wise.client(&u);

    env.mock
        .inject_fault(Fault::status("claim_account", 502, "{}").times(3));
    let err = client
        .post::<_, Value>("/v1/user/claim-account", &json!({"registrationCode": "x"}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Wise(WiseError::Unavailable {
                status: Some(502),
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(hits(&env, CLAIM), 1);
    env.mock.clear_faults();

    env.mock.inject_fault(Fault::status("profiles", 503, "{}"));
    let profiles: Value = client.get("/v2/profiles").await.unwrap();
    assert_eq!(profiles.as_array().map(Vec::len), Some(1));
    assert_eq!(hits(&env, PROFILES), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_a_correlation_id_and_bad_paths_never_leave() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let client = env.wise.client(&u).with_correlation_id("req-42");
    let resp = client
        .send::<()>(http::Method::GET, "/v1/me", None)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("x-external-correlation-id").unwrap(),
        "req-42"
    );
    assert!(resp.trace_id().is_some());
    assert!(!format!("{resp:?}").contains("email"));
    for bad in [
        "v1/me",
        "//evil.example/x",
        "/v1/../oauth/token",
        "/v1/.%2e/oauth/token",
    ] {
        let err = client.get::<Value>(bad).await.unwrap_err();
        assert!(matches!(err, ClientError::InvalidRequest { .. }), "{bad}");
    }
    let other = user("nobody");
    let err = env.wise.client(&other).profiles().await.unwrap_err();
    assert_eq!(err, ClientError::Token(TokenError::NotLinked));
}

/// The call's span exists when a subscriber enables INFO (the client skips it otherwise),
/// with the correlation id it sent and Wise's status.
#[tokio::test(flavor = "current_thread")]
async fn a_subscriber_at_info_gets_the_calls_span() {
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    // This thread only: the current-thread runtime polls the call here.
    let _default = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let client = env.wise.client(&u).with_correlation_id("req-span-7");
    client.get::<Value>("/v1/me").await.unwrap();
    let logged = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let span = logged
        .lines()
        .find(|l| l.contains("wise_oauth.api_call") && l.contains("close"))
        .unwrap_or_else(|| panic!("no closed api_call span in:\n{logged}"));
    assert!(span.contains("req-span-7"), "{span}");
    assert!(span.contains("status=200"), "{span}");
    assert!(span.contains("/v1/me"), "{span}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_layer_adds_the_token_and_recovers_a_401() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let sibling = env.sibling(&EventLog::default());
    let old = sibling.token(&u).await.unwrap();
    env.wise
        .token_after_unauthorized(&u, old.access_token())
        .await
        .unwrap();

    let http = reqwest::Client::new();
    let transport = tower::service_fn(move |req: http::Request<String>| {
        let http = http.clone();
        async move {
            let req = reqwest::Request::try_from(req)?;
            let resp = http.execute(req).await?;
            let status = resp.status();
            let body = resp.text().await?;
            Ok::<_, reqwest::Error>(http::Response::builder().status(status).body(body).unwrap())
        }
    });
    let mut service = WiseAuthLayer::new(&sibling, &u).layer(transport);
    let req = http::Request::get(format!("{}/v2/profiles", env.mock.base_url()))
        .body(String::new())
        .unwrap();
    let resp = service.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.body().contains(&old.profile_id().to_string()));
    assert_eq!(hits(&env, PROFILES), 2);
    assert_eq!(env.refreshes(), 1);

    let err = WiseAuthLayer::new(&sibling, &user("nobody"))
        .layer(tower::service_fn(|_: http::Request<String>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        }))
        .oneshot(http::Request::new(String::new()))
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<TokenError>(),
        Some(&TokenError::NotLinked)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_users_come_page_by_page() {
    let env = Env::new().await;
    for name in ["u3", "u1", "u2"] {
        link(&env.wise, &env.mock, &user(name), ALICE).await;
    }
    let first = env.wise.linked_users(None, 2).await.unwrap();
    assert_eq!(first.users, vec![user("u1"), user("u2")]);
    let second = env.wise.linked_users(first.next.as_ref(), 2).await.unwrap();
    assert_eq!(second.users, vec![user("u3")]);
    assert_eq!(second.next, None);
}
