//! The token store failing around refreshes (B's `FaultyStore`): served from cache when
//! safe, never a Wise call that cannot be persisted (I2), never a token handed out before
//! it is stored (I3).

mod manager_support;

use std::sync::Arc;

use manager_support::*;
use wise_oauth_core::conformance::FaultyStore;
use wise_oauth_core::{LinkStatus, MemoryTokenStore, TokenError, TokenStore, WiseOAuth};
use wise_oauth_mock::MockWiseHandle;

struct FaultyEnv {
    mock: MockWiseHandle,
    store: FaultyStore<MemoryTokenStore>,
    wise: WiseOAuth,
    events: EventLog,
}

impl FaultyEnv {
    async fn new() -> Self {
        let mock = start_mock(false).await;
        let store = FaultyStore::new(MemoryTokenStore::default());
        let events = EventLog::default();
        let wise = instance(
            &mock,
            Arc::new(store.clone()),
            &events,
            &Settings::default(),
        );
        Self {
            mock,
            store,
            wise,
            events,
        }
    }

    async fn stored(&self, u: &wise_oauth_core::UserId) -> Stored {
        stored(
            self.store.inner() as &dyn TokenStore,
            &self.wise.link_key(u),
        )
        .await
    }

    fn refreshes(&self) -> u64 {
        self.mock.stats().token_requests("refresh_token")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_serves_a_valid_cached_token_and_never_refreshes_an_expired_one() {
    let env = FaultyEnv::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let cached = env.wise.token(&u).await.unwrap();

    // An hour later the cache entry wants revalidation, but the store is down: the token
    // is still valid, so it is served.
    env.mock.advance_clock(HOUR);
    env.store.set_down(true);
    let served = env.wise.token(&u).await.unwrap();
    assert_eq!(
        served.access_token().expose_secret(),
        cached.access_token().expose_secret()
    );
    assert!(env.store.load_calls() > 0, "the store was asked");

    // Expired while the store is down: no Wise call whose result could not be stored.
    env.mock.advance_clock(EXPIRED);
    let err = env.wise.token(&u).await.unwrap_err();
    assert!(matches!(err, TokenError::Unavailable { .. }), "{err:?}");
    assert_eq!(env.refreshes(), 0);

    env.store.set_down(false);
    let token = env.wise.token(&u).await.unwrap();
    assert_eq!(env.refreshes(), 1);
    assert_eq!(
        token.access_token().expose_secret(),
        env.stored(&u).await.access_token
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_read_failure_alone_prevents_the_refresh() {
    let env = FaultyEnv::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    env.mock.advance_clock(EXPIRED);
    env.store.set_fail_loads(true);
    assert!(matches!(
        env.wise.token(&u).await,
        Err(TokenError::Unavailable { .. })
    ));
    assert_eq!(env.refreshes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_failing_twice_then_succeeding_hands_out_the_token_after_the_write() {
    let env = FaultyEnv::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let before = env.stored(&u).await;
    let saves = env.store.successful_saves();
    env.mock.advance_clock(EXPIRED);
    env.store.fail_next_saves(2);

    let token = env.wise.token(&u).await.unwrap();
    assert_eq!(
        env.store.successful_saves(),
        saves + 1,
        "written before it was handed out"
    );
    let stored = env.stored(&u).await;
    assert!(stored.version > before.version);
    assert_eq!(token.access_token().expose_secret(), stored.access_token);
    assert!(env.mock.access_token_is_valid(&stored.access_token));
    assert_eq!(env.refreshes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lasting_save_failure_keeps_the_refreshed_set_and_allows_no_second_refresh() {
    let env = FaultyEnv::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let before = env.stored(&u).await;
    env.mock.advance_clock(EXPIRED);
    env.store.set_fail_saves(true);

    let err = env.wise.token(&u).await.unwrap_err();
    assert!(matches!(err, TokenError::Unavailable { .. }), "{err:?}");
    assert_eq!(env.refreshes(), 1);
    assert_eq!(
        env.stored(&u).await.sealed,
        before.sealed,
        "nothing written"
    );

    // Nothing is handed out (not the dead old token, not the unstored new one), and no
    // second refresh happens, even past the per-link budget.
    env.mock.advance_clock(PAST_BUDGET);
    for _ in 0..5 {
        assert!(matches!(
            env.wise.token(&u).await,
            Err(TokenError::Unavailable { .. })
        ));
    }
    let old = wise_oauth_core::AccessToken::new(before.access_token.clone());
    assert!(matches!(
        env.wise.token_after_unauthorized(&u, &old).await,
        Err(TokenError::Unavailable { .. })
    ));
    assert_eq!(env.refreshes(), 1);

    // The store comes back: the background writer stores the set Wise issued.
    env.store.set_fail_saves(false);
    env.events.wait_until(|e| e.iter().any(refreshed)).await;
    let token = env.wise.token(&u).await.unwrap();
    let stored = env.stored(&u).await;
    assert_eq!(token.access_token().expose_secret(), stored.access_token);
    assert!(env.mock.access_token_is_valid(&stored.access_token));
    assert_eq!(env.refreshes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_save_reply_adopts_the_written_record() {
    let env = FaultyEnv::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    env.mock.advance_clock(EXPIRED);
    env.store.lose_next_save_replies(1);
    let token = env.wise.token(&u).await.unwrap();
    let stored = env.stored(&u).await;
    assert_eq!(token.access_token().expose_secret(), stored.access_token);
    assert!(env.mock.access_token_is_valid(&stored.access_token));
    assert_eq!(env.refreshes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_in_the_store_mid_save_loses_nothing() {
    let env = FaultyEnv::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    env.mock.advance_clock(EXPIRED);
    env.store.panic_next_saves(1);
    // The panicking write counts as a failed write: the set Wise issued is written on the
    // retry and handed out afterwards; nothing is stuck in flight.
    let token = env.wise.token(&u).await.unwrap();
    assert_eq!(env.refreshes(), 1);
    let stored = env.stored(&u).await;
    assert_eq!(stored.status, LinkStatus::Active);
    assert_eq!(token.access_token().expose_secret(), stored.access_token);
    assert!(env.mock.access_token_is_valid(&stored.access_token));
    env.mock.advance_clock(EXPIRED);
    env.wise.token(&u).await.unwrap();
    assert_eq!(env.refreshes(), 2);
}

/// Panics on the next `panic_leases` lease acquisitions (outside the part of the refresh
/// that contains panics: the task itself dies).
#[derive(Debug)]
struct PanickyLeases {
    inner: MemoryTokenStore,
    panic_leases: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl TokenStore for PanickyLeases {
    async fn load(
        &self,
        key: &wise_oauth_core::LinkKey,
    ) -> Result<
        Option<wise_oauth_core::Versioned<wise_oauth_core::LinkRecord>>,
        wise_oauth_core::StoreError,
    > {
        self.inner.load(key).await
    }
    async fn save(
        &self,
        key: &wise_oauth_core::LinkKey,
        record: &wise_oauth_core::LinkRecord,
        expected: Option<wise_oauth_core::Version>,
    ) -> Result<wise_oauth_core::Version, wise_oauth_core::StoreError> {
        self.inner.save(key, record, expected).await
    }
    async fn delete(
        &self,
        key: &wise_oauth_core::LinkKey,
    ) -> Result<bool, wise_oauth_core::StoreError> {
        self.inner.delete(key).await
    }
    async fn acquire_lease(
        &self,
        key: &wise_oauth_core::LinkKey,
        holder: wise_oauth_core::LeaseHolder,
        ttl: std::time::Duration,
    ) -> Result<bool, wise_oauth_core::StoreError> {
        use std::sync::atomic::Ordering;
        if self
            .panic_leases
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            panic!("injected panic in acquire_lease");
        }
        self.inner.acquire_lease(key, holder, ttl).await
    }
    async fn release_lease(
        &self,
        key: &wise_oauth_core::LinkKey,
        holder: wise_oauth_core::LeaseHolder,
    ) -> Result<(), wise_oauth_core::StoreError> {
        self.inner.release_lease(key, holder).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_that_kills_the_refresh_task_clears_the_flight() {
    let mock = start_mock(false).await;
    let store = Arc::new(PanickyLeases {
        inner: MemoryTokenStore::default(),
        panic_leases: 0.into(),
    });
    let wise = instance(
        &mock,
        store.clone(),
        &EventLog::default(),
        &Settings::default(),
    );
    let u = user("u1");
    link(&wise, &mock, &u, ALICE).await;
    mock.advance_clock(EXPIRED);
    store
        .panic_leases
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let err = wise.token(&u).await.unwrap_err();
    assert!(matches!(err, TokenError::Unavailable { .. }), "{err:?}");
    assert_eq!(mock.stats().token_requests("refresh_token"), 0);
    // Nothing stuck: the next request leads a new refresh and succeeds.
    let token = wise.token(&u).await.unwrap();
    assert_eq!(mock.stats().token_requests("refresh_token"), 1);
    assert!(mock.access_token_is_valid(token.access_token().expose_secret()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_with_the_store_down_reports_unavailable_and_keeps_serving_nothing_stale() {
    let env = FaultyEnv::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    env.store.set_fail_deletes(true);
    assert!(matches!(
        env.wise.unlink(&u).await,
        Err(TokenError::Unavailable { .. })
    ));
    env.store.set_fail_deletes(false);
    assert!(env.wise.unlink(&u).await.unwrap());
    assert_eq!(env.wise.token(&u).await.unwrap_err(), TokenError::NotLinked);
}
