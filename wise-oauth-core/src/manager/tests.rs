//! Unit tests of the manager internals that the emulator tests cannot reach.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::*;
use crate::clock::TimeSource;
use crate::config::{Environment, WiseConfig};
use crate::ids::UserId;
use crate::secret::{ClientSecret, RefreshToken};
use crate::store::{MemoryTokenStore, Version};

/// Counts loads; panics on the next `panic_leases` lease acquisitions.
#[derive(Debug, Default)]
struct TestStore {
    inner: MemoryTokenStore,
    loads: AtomicU64,
    panic_leases: AtomicU64,
}

#[async_trait]
impl TokenStore for TestStore {
    async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(key).await
    }
    async fn save(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
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
        if self
            .panic_leases
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            panic!("TestStore: injected panic in acquire_lease");
        }
        self.inner.acquire_lease(key, holder, ttl).await
    }
    async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) -> Result<(), StoreError> {
        self.inner.release_lease(key, holder).await
    }
}

/// A manager whose token endpoint is a closed loopback port (every refresh fails fast).
async fn manager(store: Arc<TestStore>) -> TokenManager {
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{closed}");
    let config = WiseConfig::builder(
        "client",
        ClientSecret::new("secret"),
        "http://127.0.0.1:3000/cb",
    )
    .environment(Environment::custom("unit", &base, &format!("{base}/oauth/authorize")).unwrap())
    .max_attempts(1)
    .build()
    .unwrap();
    let clock = TimeSource::System;
    let endpoint = Arc::new(TokenEndpoint::new(&config, clock.clone()).unwrap());
    TokenManager::new(
        store,
        endpoint,
        Arc::new(Sealer::try_new(None).unwrap()),
        clock,
        Events::new(),
        ManagerSettings::from_config(&config),
    )
}

fn key() -> LinkKey {
    LinkKey::new("unit", "client", UserId::new("u").unwrap())
}

fn tokens(expires_at: SystemTime) -> TokenSet {
    TokenSet::new(
        AccessToken::new("at"),
        RefreshToken::new("rt"),
        expires_at,
        SystemTime::now(),
    )
}

fn profile() -> ProfileId {
    ProfileId::new(30000000).unwrap()
}

#[tokio::test]
async fn fresh_cached_token_needs_no_store_read() {
    let store = Arc::new(TestStore::default());
    let m = manager(store.clone()).await;
    let k = key();
    let expires = SystemTime::now() + Duration::from_secs(12 * 3600);
    m.install_link(&k, profile(), None, tokens(expires))
        .await
        .unwrap();
    let loads = store.loads.load(Ordering::SeqCst);
    for _ in 0..1000 {
        let t = m.token_for(k.user(), || k.clone()).await.unwrap();
        assert_eq!(t.access_token().expose_secret(), "at");
        assert_eq!(t.profile_id(), profile());
    }
    assert_eq!(store.loads.load(Ordering::SeqCst), loads);
    assert_eq!(m.flights_in_progress(), 0);
}

#[tokio::test]
async fn a_panicking_refresh_task_clears_its_flight() {
    let store = Arc::new(TestStore::default());
    let m = manager(store.clone()).await;
    let k = key();
    m.install_link(&k, profile(), None, tokens(SystemTime::now()))
        .await
        .unwrap();
    store.panic_leases.store(1, Ordering::SeqCst);
    // The task panics outside the guarded section: the JoinError becomes Unavailable and
    // the drop guard removes the in-flight entry.
    assert_eq!(
        m.token_for(k.user(), || k.clone()).await.unwrap_err(),
        TokenError::unavailable()
    );
    assert_eq!(m.flights_in_progress(), 0);
    // The next request leads a new refresh (which fails: nobody listens on the port).
    let err = m.token_for(k.user(), || k.clone()).await.unwrap_err();
    assert!(matches!(err, TokenError::Unavailable { .. }), "{err:?}");
    assert_eq!(m.flights_in_progress(), 0);
    // The failed attempt spent the link's budget: the next caller is told when to retry.
    let err = m.token_for(k.user(), || k.clone()).await.unwrap_err();
    assert!(err
        .retry_after()
        .is_some_and(|d| d <= Duration::from_secs(30)));
}

#[tokio::test]
async fn settings_come_from_the_config() {
    let m = manager(Arc::new(TestStore::default())).await;
    assert_eq!(m.settings().refresh_window, Duration::from_secs(6 * 3600));
    assert_eq!(m.settings().skew, Duration::from_secs(60));
    assert_eq!(m.settings().lease_ttl, Duration::from_secs(10));
    assert_eq!(m.settings().refresh_timeout, Duration::from_secs(3));
}

#[test]
fn breaker_opens_for_its_duration() {
    let b = Breaker::default();
    let now = SystemTime::now();
    assert!(!b.is_open(now));
    b.open(now, Duration::from_secs(60));
    assert!(b.is_open(now + Duration::from_secs(59)));
    assert!(!b.is_open(now + Duration::from_secs(60)));
}

#[test]
fn token_error_helpers() {
    assert_eq!(
        TokenError::Unavailable {
            retry_after: Some(Duration::from_secs(3))
        }
        .retry_after(),
        Some(Duration::from_secs(3))
    );
    assert!(TokenError::RelinkRequired.needs_link());
    assert!(TokenError::NotLinked.needs_link());
    assert!(!TokenError::Misconfigured.needs_link());
    let debug = format!(
        "{:?}",
        ValidToken::new(
            UserId::new("canary-user").unwrap(),
            AccessToken::new("AT-CANARY"),
            profile(),
            SystemTime::now(),
        )
    );
    assert!(!debug.contains("CANARY"), "{debug}");
}

#[tokio::test]
async fn with_lease_releases_the_lease_when_the_caller_is_dropped() {
    let store = Arc::new(TestStore::default());
    let m = manager(store.clone()).await;
    let k = key();
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
    let task = {
        let m = m.clone();
        let k = k.clone();
        tokio::spawn(async move {
            m.with_lease(&k, async move {
                entered_tx.send(()).unwrap();
                std::future::pending::<()>().await;
            })
            .await
        })
    };
    entered_rx.await.unwrap();
    let other = LeaseHolder::random();
    let ttl = Duration::from_secs(30);
    assert!(!store.acquire_lease(&k, other, ttl).await.unwrap());
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    // The guard released it from a spawned task; wait for that task, not for the TTL.
    let mut released = false;
    for _ in 0..1000 {
        if store.acquire_lease(&k, other, ttl).await.unwrap() {
            released = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(released);
}
