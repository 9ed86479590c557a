//! Helpers shared by the store tests.
#![allow(dead_code, unreachable_pub)]

use std::any::Any;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use wise_oauth_core::{
    LeaseHolder, LinkKey, LinkPage, LinkRecord, LinkStatus, PendingStore, ProfileId, SealedTokens,
    StoreError, TokenStore, UserId, Version, Versioned,
};

/// A store plus whatever must live as long as it (a temp dir, a test schema).
pub struct Guarded<S> {
    pub store: S,
    pub _guard: Box<dyn Any + Send + Sync>,
}

impl<S: fmt::Debug> fmt::Debug for Guarded<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.store.fmt(f)
    }
}

#[async_trait]
impl<S: TokenStore> TokenStore for Guarded<S> {
    async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
        self.store.load(key).await
    }

    async fn save(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        self.store.save(key, record, expected).await
    }

    async fn delete(&self, key: &LinkKey) -> Result<bool, StoreError> {
        self.store.delete(key).await
    }

    async fn acquire_lease(
        &self,
        key: &LinkKey,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.store.acquire_lease(key, holder, ttl).await
    }

    async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) -> Result<(), StoreError> {
        self.store.release_lease(key, holder).await
    }

    async fn list_links(
        &self,
        environment: &str,
        client_id: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<LinkPage, StoreError> {
        self.store
            .list_links(environment, client_id, after, limit)
            .await
    }

    async fn links_of_wise_user(
        &self,
        environment: &str,
        client_id: &str,
        wise_user_id: u64,
    ) -> Result<Vec<UserId>, StoreError> {
        self.store
            .links_of_wise_user(environment, client_id, wise_user_id)
            .await
    }
}

#[async_trait]
impl<S: PendingStore> PendingStore for Guarded<S> {
    async fn insert(
        &self,
        state_hash: &[u8; 32],
        owner: &LinkKey,
        pending: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.store.insert(state_hash, owner, pending, ttl).await
    }

    async fn take(&self, state_hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.take(state_hash).await
    }
}

/// A random lowercase hex suffix for unique names.
pub fn unique_suffix() -> String {
    format!("{:016x}", LeaseHolder::random().get() as u64)
}

pub fn key(user: &str) -> LinkKey {
    LinkKey::new("sandbox", "client-1", UserId::new(user).unwrap())
}

pub fn record(profile: u64, sealed: &[u8]) -> LinkRecord {
    let at = |s: u64| UNIX_EPOCH + Duration::new(s, 123_456_789);
    LinkRecord::new(
        ProfileId::new(profile).unwrap(),
        LinkStatus::Active,
        at(1_750_043_199),
        at(1_749_913_600),
        at(1_750_000_000),
        SealedTokens::new(sealed.to_vec()),
    )
}

pub fn now() -> SystemTime {
    SystemTime::now()
}

pub fn assert_unavailable<T: fmt::Debug>(what: &str, result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("{what}: expected StoreError::Unavailable, got {other:?}"),
    }
}

pub fn assert_corrupt<T: fmt::Debug>(what: &str, result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Corrupt(_)) => {}
        other => panic!("{what}: expected StoreError::Corrupt, got {other:?}"),
    }
}

/// The store lists links itself (the conformance case skips stores that answer
/// `Unsupported`, so this makes sure a built-in store is not skipped).
pub async fn assert_lists_links(store: &dyn TokenStore) {
    let k = key("listed");
    let environment = k.environment().to_owned();
    let before = store
        .list_links(&environment, k.client_id(), None, 10)
        .await
        .expect("the store lists links");
    store.save(&k, &record(1, b"x"), None).await.unwrap();
    let after = store
        .list_links(&environment, k.client_id(), None, 10)
        .await
        .unwrap();
    assert_eq!(after.users.len(), before.users.len() + 1);
    assert!(after.users.contains(k.user()));
}

/// The store finds the live links of a Wise user, in one environment and client, and keeps
/// that in step with re-saves (another Wise user) and unlinks.
pub async fn assert_finds_links_of_wise_user(store: &dyn TokenStore) {
    let of = |id| record(1, b"x").with_wise_user_id(id);
    let (a, b, c, d) = (key("wu-a"), key("wu-b"), key("wu-c"), key("wu-d"));
    let elsewhere = LinkKey::new("production", "client-1", UserId::new("wu-e").unwrap());
    store.save(&a, &of(Some(77)), None).await.unwrap();
    store.save(&b, &of(Some(77)), None).await.unwrap();
    store.save(&c, &of(Some(78)), None).await.unwrap();
    store.save(&d, &of(None), None).await.unwrap();
    store.save(&elsewhere, &of(Some(77)), None).await.unwrap();
    let found = |id| async move {
        let mut users = store
            .links_of_wise_user("sandbox", "client-1", id)
            .await
            .expect("the store finds links by Wise user");
        users.sort();
        users
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(found(77).await, ["wu-a", "wu-b"]);
    assert_eq!(found(78).await, ["wu-c"]);
    assert!(found(79).await.is_empty());
    let loaded = store.load(&a).await.unwrap().unwrap();
    assert_eq!(loaded.value.wise_user_id, Some(77));
    assert_eq!(
        store.load(&d).await.unwrap().unwrap().value.wise_user_id,
        None
    );
    // A later grant of another Wise user moves the link.
    store
        .save(&a, &of(Some(78)), Some(loaded.version))
        .await
        .unwrap();
    assert_eq!(found(77).await, ["wu-b"]);
    assert_eq!(found(78).await, ["wu-a", "wu-c"]);
    // An unlinked user is not found, nor is it after linking again without a Wise user.
    assert!(store.delete(&b).await.unwrap());
    assert!(found(77).await.is_empty());
    store.save(&b, &of(None), None).await.unwrap();
    assert!(found(77).await.is_empty());
}
