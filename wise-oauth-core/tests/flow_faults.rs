//! The link flow when things go wrong: concurrent double submits, stores down, Wise errors,
//! environment mix-ups. In every case nothing partial is stored.

mod flow_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flow_support::*;
use wise_oauth_core::{
    BoxError, ClientSecret, Environment, FlowError, LeaseHolder, LinkKey, LinkRecord,
    MemoryPendingStore, MemoryTokenStore, PendingStore, StoreError, TokenStore, Version, Versioned,
    WiseConfig, WiseOAuth,
};
use wise_oauth_mock::Fault;

fn down() -> StoreError {
    StoreError::Unavailable(BoxError::from("store down (test)"))
}

/// A pending store that can be switched off.
#[derive(Debug, Clone, Default)]
struct SwitchablePending {
    inner: MemoryPendingStore,
    down: Arc<AtomicBool>,
}

#[async_trait]
impl PendingStore for SwitchablePending {
    async fn insert(
        &self,
        state_hash: &[u8; 32],
        owner: &LinkKey,
        pending: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(down());
        }
        self.inner.insert(state_hash, owner, pending, ttl).await
    }
    async fn take(&self, state_hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(down());
        }
        self.inner.take(state_hash).await
    }
}

/// A token store whose writes can be switched off.
#[derive(Debug, Clone, Default)]
struct FailingWrites {
    inner: MemoryTokenStore,
    fail: Arc<AtomicBool>,
}

#[async_trait]
impl TokenStore for FailingWrites {
    async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
        self.inner.load(key).await
    }
    async fn save(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(down());
        }
        self.inner.save(key, record, expected).await
    }
    async fn delete(&self, key: &LinkKey) -> Result<bool, StoreError> {
        self.inner.delete(key).await
    }
    async fn acquire_lease(
        &self,
        key: &LinkKey,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.acquire_lease(key, holder, ttl).await
    }
    async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) -> Result<(), StoreError> {
        self.inner.release_lease(key, holder).await
    }
}

#[tokio::test]
async fn concurrent_double_submit_exchanges_once() {
    let env = setup().await;
    let alice = user("app-alice");
    let start = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (wise, alice, query, cookie) = (
                env.wise.clone(),
                alice.clone(),
                query.clone(),
                cookie.clone(),
            );
            tokio::spawn(async move { wise.complete_link(&alice, &query, Some(&cookie)).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert!(matches!(e, FlowError::UnknownState), "{e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(env.code_exchanges(), 1);
}

#[tokio::test]
async fn a_flow_of_another_environment_is_rejected() {
    let env = setup().await;
    let pending = MemoryPendingStore::default();
    let make = |name: &str| {
        let environment =
            Environment::custom(name, &env.mock.base_url(), &env.mock.authorize_url()).unwrap();
        let config = WiseConfig::builder(CLIENT_ID, ClientSecret::new(CLIENT_SECRET), REDIRECT_URI)
            .environment(environment)
            .build()
            .unwrap();
        WiseOAuth::builder(config)
            .pending_store(pending.clone())
            .build()
            .unwrap()
    };
    let (sandbox, live) = (make("sandbox-like"), make("live-like"));
    let alice = user("app-alice");
    let start = sandbox
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    let e = live
        .complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap_err();
    assert!(matches!(e, FlowError::EnvironmentMismatch), "{e:?}");
    assert_eq!(e.status(), 400);
    // Consumed for both.
    let e = sandbox
        .complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap_err();
    assert!(matches!(e, FlowError::UnknownState));
    assert_eq!(env.token_calls(), 0);
}

#[tokio::test]
async fn pending_store_down_answers_503_without_token_calls() {
    let env = setup().await;
    let pending = SwitchablePending::default();
    let wise = WiseOAuth::builder(config_for(&env.mock, &Options::default()))
        .pending_store(pending.clone())
        .build()
        .unwrap();
    let alice = user("app-alice");
    let start = wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    pending.down.store(true, Ordering::SeqCst);
    let e = wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap_err();
    assert_eq!((e.status().as_u16(), e.reason()), (503, "unavailable"));
    let e = wise
        .complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap_err();
    assert_eq!((e.status().as_u16(), e.reason()), (503, "unavailable"));
    assert_eq!(env.token_calls(), 0);
    // Back up: the flow was never consumed, so it completes.
    pending.down.store(false, Ordering::SeqCst);
    wise.complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap();
}

#[tokio::test]
async fn token_store_down_after_the_exchange_stores_nothing() {
    let env = setup().await;
    let store = FailingWrites::default();
    let wise = WiseOAuth::builder(config_for(&env.mock, &Options::default()))
        .store(store.clone())
        .build()
        .unwrap();
    let alice = user("app-alice");
    let start = wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    store.fail.store(true, Ordering::SeqCst);
    let e = wise
        .complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap_err();
    assert_eq!((e.status().as_u16(), e.reason()), (503, "unavailable"));
    assert_eq!(env.code_exchanges(), 1);
    store.fail.store(false, Ordering::SeqCst);
    assert!(wise.status(&alice).await.unwrap().is_none());
}

#[tokio::test]
async fn token_endpoint_errors_map_to_statuses_and_store_nothing() {
    let env = setup().await;
    let alice = user("app-alice");
    let cases: [(Fault, u16, &str); 3] = [
        (
            Fault::rate_limit("token:authorization_code", 3600),
            503,
            "unavailable",
        ),
        (
            Fault::status(
                "token:authorization_code",
                400,
                r#"{"error":"invalid_grant","error_description":"used"}"#,
            ),
            400,
            "code_rejected",
        ),
        (
            Fault::status(
                "token:authorization_code",
                401,
                r#"{"error":"invalid_client","error_description":"bad"}"#,
            ),
            500,
            "misconfigured",
        ),
    ];
    for (fault, status, reason) in cases {
        let start = env
            .wise
            .start_link(&alice, &Default::default(), None)
            .await
            .unwrap();
        let cookie = cookie_value(start.set_cookie());
        let query = env.callback_query(&start).await;
        env.mock.inject_fault(fault);
        let e = env
            .wise
            .complete_link(&alice, &query, Some(&cookie))
            .await
            .unwrap_err();
        assert!(matches!(e, FlowError::Exchange(_)), "{e:?}");
        assert_eq!((e.status().as_u16(), e.reason()), (status, reason), "{e:?}");
        if reason == "unavailable" {
            assert_eq!(e.retry_after(), Some(Duration::from_secs(3600)));
        }
        assert!(env.wise.status(&alice).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn wrong_client_secret_is_a_configuration_error() {
    let env = setup().await;
    let wise = WiseOAuth::builder(config_for(
        &env.mock,
        &Options {
            client_secret: "not-the-secret".to_owned(),
            ..Options::default()
        },
    ))
    .build()
    .unwrap();
    let alice = user("app-alice");
    let start = wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    let e = wise
        .complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap_err();
    assert_eq!((e.status().as_u16(), e.reason()), (500, "misconfigured"));
    assert!(wise.status(&alice).await.unwrap().is_none());
}

#[tokio::test]
async fn profile_lookup_failure_stores_nothing() {
    let env = setup().await;
    let alice = user("app-alice");
    let start = env
        .wise
        .start_link(&alice, &Default::default(), None)
        .await
        .unwrap();
    let cookie = cookie_value(start.set_cookie());
    let query = env.callback_query(&start).await;
    env.mock
        .inject_fault(Fault::status("profiles", 500, r#"{"error":"boom"}"#).times(10));
    let e = env
        .wise
        .complete_link(&alice, &query, Some(&cookie))
        .await
        .unwrap_err();
    assert!(matches!(e, FlowError::ProfileLookup(_)), "{e:?}");
    assert!(e.status().is_server_error());
    env.mock.clear_faults();
    assert!(env.wise.status(&alice).await.unwrap().is_none());
}
