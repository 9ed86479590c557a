//! `RedisTokenStore`: the conformance suites, several instances racing, restarts, the key
//! layout, corrupt values and a Redis that goes away and comes back.
//!
//! Needs `WISE_TEST_REDIS_URL` or `REDIS_URL` (e.g. `redis://127.0.0.1:6379`, set by
//! `.ci/run`); without one the Redis tests print "SKIPPED" and pass. Each test works under
//! a random key prefix of its own, whose keys are deleted at the end.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use wise_oauth_core::{
    LeaseHolder, LinkKey, LinkRecord, LinkStatus, PendingStore, ProfileId, SealedTokens,
    StoreError, TokenStore, UserId, Version, Versioned,
};
use wise_oauth_redis::redis::{self, aio::ConnectionManager, IntoConnectionInfo};
use wise_oauth_redis::{RedisTokenStore, SetupError};

fn redis_url(test: &str) -> Option<String> {
    let url = std::env::var("WISE_TEST_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!(
            "SKIPPED {test}: set REDIS_URL or WISE_TEST_REDIS_URL \
             (e.g. redis://127.0.0.1:6379) to run the Redis store tests"
        );
    }
    url
}

/// The key prefix of one test; its keys are deleted when this is dropped, also when the
/// test panics.
struct TestPrefix {
    url: String,
    prefix: String,
}

impl TestPrefix {
    fn new(url: String) -> Self {
        Self {
            url,
            prefix: format!("wise-test-{:016x}:", rand::random::<u64>()),
        }
    }

    async fn connection(&self) -> ConnectionManager {
        let client = redis::Client::open(self.url.as_str()).expect("a valid Redis URL");
        ConnectionManager::new(client)
            .await
            .expect("connect to the test Redis")
    }

    async fn store(&self) -> RedisTokenStore {
        RedisTokenStore::builder(self.connection().await)
            .key_prefix(&self.prefix)
            .build()
            .expect("build the store")
    }

    /// The names of every key under the prefix, sorted.
    async fn keys(&self) -> Vec<String> {
        let mut conn = self.connection().await;
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        keys.sort();
        keys
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        // A blocking connection: drop may run inside the test's runtime.
        let cleanup = || -> redis::RedisResult<()> {
            let mut conn = redis::Client::open(self.url.as_str())?.get_connection()?;
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{}*", self.prefix))
                    .arg("COUNT")
                    .arg(1000)
                    .query(&mut conn)?;
                if !keys.is_empty() {
                    redis::cmd("DEL").arg(keys).query::<()>(&mut conn)?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        };
        if let Err(err) = cleanup() {
            eprintln!("could not delete the keys of {}: {err}", self.prefix);
        }
    }
}

/// A store plus the prefix whose keys it must delete at the end.
struct Guarded {
    store: RedisTokenStore,
    _prefix: TestPrefix,
}

impl fmt::Debug for Guarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.store.fmt(f)
    }
}

#[async_trait]
impl TokenStore for Guarded {
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
    ) -> Result<wise_oauth_core::LinkPage, StoreError> {
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
impl PendingStore for Guarded {
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

/// A fresh store under a fresh prefix (for the conformance cases), or `None` when skipped.
async fn fresh(test: &str) -> Option<Guarded> {
    let prefix = TestPrefix::new(redis_url(test)?);
    let store = prefix.store().await;
    Some(Guarded {
        store,
        _prefix: prefix,
    })
}

macro_rules! conformance {
    ($suite:ident; $($case:ident),* $(,)?) => {
        mod $suite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(store) = crate::fresh(stringify!($case)).await else { return };
                    wise_oauth_core::conformance::$suite::$case(&store).await;
                }
            )*
        }
    };
}

conformance!(token_store;
    absent_is_none,
    insert_if_absent_conflicts,
    cas_conflict_changes_nothing,
    cas_on_absent_link_conflicts,
    versions_start_at_one_and_grow_by_one,
    delete_removes_only_that_link,
    stale_write_after_delete_and_relink_is_rejected,
    racing_inserts_one_wins,
    racing_cas_writes_one_wins,
    lease_is_exclusive,
    lease_is_reentrant_for_its_holder,
    lease_is_released_only_by_its_holder,
    lease_without_record,
    leases_are_independent_of_records,
    leases_are_per_key,
    vanished_holders_lease_can_be_taken,
    late_write_after_lease_expiry_is_rejected,
    keys_are_injective,
    record_round_trips,
    sealed_bytes_round_trip,
    list_links_pages_in_user_order,
);

conformance!(pending_store;
    absent_take_is_none,
    take_returns_the_flow_once,
    concurrent_takes_yield_once,
    expired_is_none,
    per_owner_cap_drops_oldest,
    other_owners_are_unaffected,
    pending_bytes_round_trip,
);

/// `Arc` of a store as a store (the whole-suite runners build one per case).
#[derive(Debug, Clone)]
struct Shared(Arc<Guarded>);

#[async_trait]
impl TokenStore for Shared {
    async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
        self.0.load(key).await
    }
    async fn save(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        self.0.save(key, record, expected).await
    }
    async fn delete(&self, key: &LinkKey) -> Result<bool, StoreError> {
        self.0.delete(key).await
    }
    async fn acquire_lease(
        &self,
        key: &LinkKey,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.0.acquire_lease(key, holder, ttl).await
    }
    async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) -> Result<(), StoreError> {
        self.0.release_lease(key, holder).await
    }
    async fn list_links(
        &self,
        environment: &str,
        client_id: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<wise_oauth_core::LinkPage, StoreError> {
        self.0
            .list_links(environment, client_id, after, limit)
            .await
    }

    async fn links_of_wise_user(
        &self,
        environment: &str,
        client_id: &str,
        wise_user_id: u64,
    ) -> Result<Vec<UserId>, StoreError> {
        self.0
            .links_of_wise_user(environment, client_id, wise_user_id)
            .await
    }
}

#[async_trait]
impl PendingStore for Shared {
    async fn insert(
        &self,
        state_hash: &[u8; 32],
        owner: &LinkKey,
        pending: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.0.insert(state_hash, owner, pending, ttl).await
    }
    async fn take(&self, state_hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.take(state_hash).await
    }
}

/// The store lists links itself (the conformance case would skip a store answering
/// `Unsupported`), through the users index.
#[tokio::test]
async fn listing_is_supported() {
    let Some(store) = fresh("listing_is_supported").await else {
        return;
    };
    let k = key("listed");
    let page = store
        .list_links("sandbox", "client-1", None, 10)
        .await
        .unwrap();
    assert!(page.users.is_empty());
    store.save(&k, &record(1, b"x"), None).await.unwrap();
    let page = store
        .list_links("sandbox", "client-1", None, 10)
        .await
        .unwrap();
    assert_eq!(page.users, [k.user().clone()]);
}

/// The links of a Wise user are found through the Wise-users index, which follows
/// re-saves (another Wise user) and unlinks.
#[tokio::test]
async fn links_are_found_by_wise_user() {
    let Some(store) = fresh("links_are_found_by_wise_user").await else {
        return;
    };
    let of = |id| record(1, b"x").with_wise_user_id(id);
    let (a, b, c) = (key("wu-a"), key("wu:b"), key("wu-c"));
    let elsewhere = LinkKey::new("production", "client-1", UserId::new("wu-e").unwrap());
    store.save(&a, &of(Some(77)), None).await.unwrap();
    store.save(&b, &of(Some(77)), None).await.unwrap();
    store.save(&c, &of(Some(778)), None).await.unwrap();
    store.save(&elsewhere, &of(Some(77)), None).await.unwrap();
    let found = |id| {
        let store = &store;
        async move {
            let mut users = store
                .links_of_wise_user("sandbox", "client-1", id)
                .await
                .unwrap();
            users.sort();
            users
                .iter()
                .map(|u| u.as_str().to_owned())
                .collect::<Vec<_>>()
        }
    };
    // 778 shares the digits of 77 but is another user.
    assert_eq!(found(77).await, ["wu-a", "wu:b"]);
    assert_eq!(found(778).await, ["wu-c"]);
    assert!(found(7).await.is_empty());
    let loaded = store.load(&a).await.unwrap().unwrap();
    assert_eq!(loaded.value.wise_user_id, Some(77));
    store
        .save(&a, &of(None), Some(loaded.version))
        .await
        .unwrap();
    assert_eq!(found(77).await, ["wu:b"]);
    assert_eq!(
        store.load(&a).await.unwrap().unwrap().value.wise_user_id,
        None
    );
    assert!(store.delete(&b).await.unwrap());
    assert!(found(77).await.is_empty());
}

/// A link hash written before the Wise user id existed (no `wise_user_id` field) loads
/// without one and joins the index when it is saved with one.
#[tokio::test]
async fn a_link_written_by_the_previous_version_reads_without_a_wise_user() {
    let Some(url) = redis_url("a_link_written_by_the_previous_version_reads_without_a_wise_user")
    else {
        return;
    };
    let prefix = TestPrefix::new(url);
    let store = prefix.store().await;
    let mut conn = prefix.connection().await;
    let link = format!("{}{{sandbox:client-1:old}}:link", prefix.prefix);
    redis::cmd("HSET")
        .arg(&link)
        .arg(&[
            ("v", "3"),
            ("profile_id", "7"),
            ("status", "active"),
            ("access_expires_at", "1"),
            ("linked_at", "1"),
            ("updated_at", "1"),
            ("sealed_tokens", "xy"),
        ])
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let old = store.load(&key("old")).await.unwrap().unwrap();
    assert_eq!(old.version, Version::new(3));
    assert_eq!(old.value.wise_user_id, None);
    let with_user = old.value.clone().with_wise_user_id(Some(10000001));
    store
        .save(&key("old"), &with_user, Some(old.version))
        .await
        .unwrap();
    let found = store
        .links_of_wise_user("sandbox", "client-1", 10000001)
        .await
        .unwrap();
    assert_eq!(found, [key("old").user().clone()]);
}

/// The whole suites in one go, so a case added to the core later runs here too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_conformance_suites() {
    let Some(store) = fresh("whole_conformance_suites").await else {
        return;
    };
    let store = Shared(Arc::new(store));
    wise_oauth_core::conformance::run_token_store_suite(|| store.clone()).await;
    wise_oauth_core::conformance::run_pending_store_suite(|| store.clone()).await;
}

fn key(user: &str) -> LinkKey {
    LinkKey::new("sandbox", "client-1", UserId::new(user).unwrap())
}

fn record(profile: u64, sealed: &[u8]) -> LinkRecord {
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

const MINUTE: Duration = Duration::from_secs(60);

/// A link's keys share one hash tag; a flow's key and the owners index hold no tag; nothing
/// else is written; unlinking leaves only the version behind.
#[tokio::test]
async fn key_layout_and_tombstone() {
    let Some(url) = redis_url("key_layout_and_tombstone") else {
        return;
    };
    let prefix = TestPrefix::new(url);
    let store = prefix.store().await;
    let k = LinkKey::new("sandbox", "client-1", UserId::new("a:b {c}").unwrap());
    store.save(&k, &record(7, b"sealed"), None).await.unwrap();
    assert!(store
        .acquire_lease(&k, LeaseHolder::new(1), MINUTE)
        .await
        .unwrap());
    store
        .insert(&[0xab; 32], &k, b"flow", MINUTE)
        .await
        .unwrap();
    let p = &prefix.prefix;
    let tag = "{sandbox:client-1:a%3Ab%20%7Bc%7D}";
    let mut expected = vec![
        format!("{p}{{sandbox:client-1}}:users"),
        format!("{p}{tag}:flows"),
        format!("{p}{tag}:lease"),
        format!("{p}{tag}:link"),
        format!("{p}flow:{}", "ab".repeat(32)),
        // The owners with flows in progress, for the global cap.
        format!("{p}flow-owners"),
    ];
    expected.sort();
    assert_eq!(prefix.keys().await, expected);

    let mut conn = prefix.connection().await;
    let link = format!("{p}{tag}:link");
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(&link)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(fields.len(), 7, "{fields:?}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{p}{tag}:lease"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=60_000).contains(&ttl), "the lease has a TTL: {ttl}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&link)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(ttl, -1, "links do not expire");

    assert!(store.delete(&k).await.unwrap());
    let left: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(&link)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        left,
        vec![("v".to_owned(), "1".to_owned())],
        "the tombstone"
    );
    let users: i64 = redis::cmd("EXISTS")
        .arg(format!("{p}{{sandbox:client-1}}:users"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(users, 0, "the unlinked user left the users index");
    assert_eq!(
        store.take(&[0xab; 32]).await.unwrap().as_deref(),
        Some(&b"flow"[..])
    );
    let flows: i64 = redis::cmd("ZCARD")
        .arg(format!("{p}{tag}:flows"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(flows, 0, "a taken flow leaves its owner's index");
}

/// A taken flow frees its place under the cap: 8 flows, 1 completed, 1 started → all 8
/// live ones stay. A state stored again for another owner is not dropped by the first.
#[tokio::test]
async fn taken_flows_free_their_place_and_owners_are_respected() {
    let Some(url) = redis_url("taken_flows_free_their_place_and_owners_are_respected") else {
        return;
    };
    let prefix = TestPrefix::new(url);
    let store = prefix.store().await;
    let owner = key("u");
    let states: Vec<[u8; 32]> = (0..9u8).map(|i| [i; 32]).collect();
    for s in &states[..8] {
        store.insert(s, &owner, b"flow", MINUTE).await.unwrap();
    }
    assert!(store.take(&states[3]).await.unwrap().is_some());
    store
        .insert(&states[8], &owner, b"flow", MINUTE)
        .await
        .unwrap();
    for (i, s) in states.iter().enumerate().filter(|(i, _)| *i != 3) {
        assert!(store.take(s).await.unwrap().is_some(), "flow #{i} was lost");
    }

    // State 42 moves from `owner` to `other`; `owner` then floods: `other`'s flow stays.
    let other = key("other");
    store
        .insert(&[42; 32], &owner, b"mine", MINUTE)
        .await
        .unwrap();
    store
        .insert(&[42; 32], &other, b"theirs", MINUTE)
        .await
        .unwrap();
    for i in 0..20u8 {
        store
            .insert(&[100 + i; 32], &owner, b"x", MINUTE)
            .await
            .unwrap();
    }
    assert_eq!(
        store.take(&[42; 32]).await.unwrap().as_deref(),
        Some(&b"theirs"[..])
    );
}

#[tokio::test]
async fn restart_keeps_link_version_lease_and_pending_flow() {
    let Some(url) = redis_url("restart") else {
        return;
    };
    let prefix = TestPrefix::new(url);
    let k = key("restart");
    {
        let store = prefix.store().await;
        let v1 = store.save(&k, &record(7, b"first"), None).await.unwrap();
        store
            .save(&k, &record(7, b"second"), Some(v1))
            .await
            .unwrap();
        assert!(store
            .acquire_lease(&k, LeaseHolder::new(1), MINUTE)
            .await
            .unwrap());
        store.insert(&[9; 32], &k, b"flow", MINUTE).await.unwrap();
    }
    let store = prefix.store().await;
    let stored = store.load(&k).await.unwrap().expect("link survived");
    assert_eq!(stored.version, Version::new(2));
    assert_eq!(stored.value, record(7, b"second"));
    assert!(!store
        .acquire_lease(&k, LeaseHolder::new(2), MINUTE)
        .await
        .unwrap());
    assert_eq!(
        store.take(&[9; 32]).await.unwrap().as_deref(),
        Some(&b"flow"[..])
    );
}

/// Three instances (three connections) under one prefix: of racing CAS writes, inserts and
/// lease grabs exactly one wins; a flow started on one instance completes on another, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_race_one_winner() {
    let Some(url) = redis_url("three_instances_race_one_winner") else {
        return;
    };
    let prefix = TestPrefix::new(url);
    let instances = [
        prefix.store().await,
        prefix.store().await,
        prefix.store().await,
    ];
    for round in 0..5 {
        let k = key(&format!("race-{round}"));
        let inserts = futures::future::join_all((0..30).map(|i| {
            let (store, k) = (instances[i % 3].clone(), k.clone());
            tokio::spawn(async move { store.save(&k, &record(1, &[i as u8]), None).await })
        }))
        .await;
        let won: Vec<Version> = inserts
            .into_iter()
            .filter_map(|r| match r.unwrap() {
                Ok(v) => Some(v),
                Err(StoreError::Conflict) => None,
                Err(e) => panic!("unexpected {e:?}"),
            })
            .collect();
        assert_eq!(won, vec![Version::new(1)], "racing inserts");

        let writes = futures::future::join_all((0..30).map(|i| {
            let (store, k) = (instances[i % 3].clone(), k.clone());
            tokio::spawn(async move {
                store
                    .save(&k, &record(2, &[i as u8]), Some(Version::new(1)))
                    .await
                    .map(|v| (i, v))
            })
        }))
        .await;
        let won: Vec<(usize, Version)> = writes
            .into_iter()
            .filter_map(|r| match r.unwrap() {
                Ok(v) => Some(v),
                Err(StoreError::Conflict) => None,
                Err(e) => panic!("unexpected {e:?}"),
            })
            .collect();
        assert_eq!(won.len(), 1, "racing CAS writes: {won:?}");
        let (winner, version) = won[0];
        assert_eq!(version, Version::new(2));
        let stored = instances[(winner + 1) % 3].load(&k).await.unwrap().unwrap();
        assert_eq!(stored.value, record(2, &[winner as u8]));

        let grabs = futures::future::join_all((0..30u128).map(|h| {
            let (store, k) = (instances[h as usize % 3].clone(), k.clone());
            tokio::spawn(async move {
                store
                    .acquire_lease(&k, LeaseHolder::new(h + 1), MINUTE)
                    .await
            })
        }))
        .await;
        let holders = grabs
            .into_iter()
            .filter(|r| *r.as_ref().unwrap().as_ref().unwrap())
            .count();
        assert_eq!(holders, 1, "racing leases");
    }

    instances[0]
        .insert(&[42; 32], &key("flow"), b"pending", MINUTE)
        .await
        .unwrap();
    let takes = futures::future::join_all((0..9).map(|i| {
        let store = instances[1 + i % 2].clone();
        tokio::spawn(async move { store.take(&[42; 32]).await })
    }))
    .await;
    let found: Vec<Vec<u8>> = takes
        .into_iter()
        .filter_map(|r| r.unwrap().unwrap())
        .collect();
    assert_eq!(found, vec![b"pending".to_vec()]);
}

/// Values the store did not write (another type at its key, missing or bad fields) are
/// `Corrupt`, never "absent".
#[tokio::test]
async fn foreign_values_are_corrupt() {
    let Some(url) = redis_url("foreign_values_are_corrupt") else {
        return;
    };
    let prefix = TestPrefix::new(url);
    let store = prefix.store().await;
    let mut conn = prefix.connection().await;
    let p = &prefix.prefix;
    let link = |user: &str| format!("{p}{{sandbox:client-1:{user}}}:link");

    redis::cmd("SET")
        .arg(link("string"))
        .arg("x")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    for (user, fields) in [
        ("partial", vec![("v", "1"), ("sealed_tokens", "x")]),
        (
            "status",
            vec![
                ("v", "1"),
                ("profile_id", "7"),
                ("status", "ACTIVE"),
                ("access_expires_at", "1"),
                ("linked_at", "1"),
                ("updated_at", "1"),
                ("sealed_tokens", "x"),
            ],
        ),
    ] {
        redis::cmd("HSET")
            .arg(link(user))
            .arg(fields)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
    for user in ["string", "partial", "status"] {
        match store.load(&key(user)).await {
            Err(StoreError::Corrupt(_)) => {}
            other => panic!("{user}: expected Corrupt, got {other:?}"),
        }
    }
    match store.save(&key("string"), &record(1, b"x"), None).await {
        Err(StoreError::Corrupt(_)) => {}
        other => panic!("save over a string: expected Corrupt, got {other:?}"),
    }

    // A flow value without a valid owner header.
    redis::cmd("SET")
        .arg(format!("{p}flow:{}", "00".repeat(32)))
        .arg("\0\0\0\x50short")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    match store.take(&[0; 32]).await {
        Err(StoreError::Corrupt(_)) => {}
        other => panic!("foreign flow: expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn setup_errors() {
    let conn_err = RedisTokenStore::connect("redis://127.0.0.1:1").await;
    assert!(
        matches!(conn_err, Err(SetupError::Connect(_))),
        "{conn_err:?}"
    );
    assert!(matches!(
        RedisTokenStore::connect("mysql://x").await,
        Err(SetupError::Connect(_))
    ));
    let Some(url) = redis_url("setup_errors") else {
        return;
    };
    let prefix = TestPrefix::new(url);
    for bad in ["a b", "{x}", "a*"] {
        let built = RedisTokenStore::builder(prefix.connection().await)
            .key_prefix(bad)
            .build();
        assert!(
            matches!(built, Err(SetupError::InvalidKeyPrefix)),
            "{bad:?}"
        );
    }
    let store = prefix.store().await;
    let shown = format!("{store:?}");
    assert!(shown.contains(&prefix.prefix), "{shown}");
}

/// A TCP proxy in front of Redis that can be cut (listener and connections closed) and
/// brought back on the same port.
struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(addr: SocketAddr, upstream: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Proxy {
            addr,
            upstream,
            task: Some(task),
        }
    }

    /// Closes the listener and every proxied connection.
    async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    async fn restore(&mut self) {
        *self = Proxy::start(self.addr, self.upstream).await;
    }
}

/// While Redis cannot be reached every call is `Unavailable` (no hang, no panic, never
/// "absent"); once it is back the same store works again and nothing was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_is_unavailable_then_recovers() {
    let Some(url) = redis_url("unreachable_redis_is_unavailable_then_recovers") else {
        return;
    };
    let prefix = TestPrefix::new(url.clone());
    let mut info = url.as_str().into_connection_info().unwrap();
    let redis::ConnectionAddr::Tcp(host, port) = &info.addr else {
        eprintln!("SKIPPED unreachable_redis_is_unavailable_then_recovers: not a TCP URL");
        return;
    };
    let upstream = tokio::net::lookup_host((host.as_str(), *port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let mut proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), upstream).await;
    info.addr = redis::ConnectionAddr::Tcp("127.0.0.1".into(), proxy.addr.port());
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(2))
        .set_factor(2)
        .set_max_delay(500)
        .set_number_of_retries(1);
    let conn = ConnectionManager::new_with_config(redis::Client::open(info).unwrap(), config)
        .await
        .unwrap();
    let store = RedisTokenStore::builder(conn)
        .key_prefix(&prefix.prefix)
        .build()
        .unwrap();
    let k = key("outage");
    let v1 = store.save(&k, &record(1, b"kept"), None).await.unwrap();

    proxy.cut().await;
    let bounded = |what: &'static str| {
        move |r: Result<Result<(), StoreError>, tokio::time::error::Elapsed>| match r {
            Ok(Err(StoreError::Unavailable(_))) => {}
            Ok(other) => panic!("{what}: expected Unavailable, got {other:?}"),
            Err(_) => panic!("{what}: hung"),
        }
    };
    let limit = Duration::from_secs(20);
    use tokio::time::timeout;
    bounded("load")(timeout(limit, async { store.load(&k).await.map(drop) }).await);
    bounded("save")(
        timeout(limit, async {
            store
                .save(&k, &record(1, b"lost"), Some(v1))
                .await
                .map(drop)
        })
        .await,
    );
    bounded("delete")(timeout(limit, async { store.delete(&k).await.map(drop) }).await);
    bounded("acquire")(
        timeout(limit, async {
            store
                .acquire_lease(&k, LeaseHolder::new(1), MINUTE)
                .await
                .map(drop)
        })
        .await,
    );
    bounded("release")(timeout(limit, store.release_lease(&k, LeaseHolder::new(1))).await);
    bounded("insert")(timeout(limit, store.insert(&[1; 32], &k, b"f", MINUTE)).await);
    bounded("take")(timeout(limit, async { store.take(&[1; 32]).await.map(drop) }).await);

    proxy.restore().await;
    // The connection manager reconnects after a failed call; wait for it, bounded.
    let deadline = SystemTime::now() + Duration::from_secs(30);
    let stored = loop {
        match store.load(&k).await {
            Ok(found) => break found,
            Err(StoreError::Unavailable(_)) if SystemTime::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("Redis did not come back: {err:?}"),
        }
    };
    let stored = stored.expect("the link survived the outage");
    assert_eq!(stored.version, v1);
    assert_eq!(stored.value, record(1, b"kept"));
    proxy.cut().await;
}

/// The owner cap: new owners beyond `max_pending_owners` are refused (`Full`) without
/// evicting anyone, an owner with flows keeps starting them, and an owner whose last flow
/// was taken frees its place.
#[tokio::test]
async fn owner_cap_refuses_new_owners_and_frees_on_take() {
    let Some(url) = redis_url("owner_cap_refuses_new_owners_and_frees_on_take") else {
        return;
    };
    let prefix = TestPrefix::new(url);
    let conn = prefix.store().await.connection().clone();
    let store = RedisTokenStore::builder(conn)
        .key_prefix(&prefix.prefix)
        .max_pending_owners(2)
        .build()
        .unwrap();
    let owner = |n: &str| LinkKey::new("sandbox", "c", UserId::new(n).unwrap());
    store
        .insert(&[1; 32], &owner("a"), b"a", MINUTE)
        .await
        .unwrap();
    store
        .insert(&[2; 32], &owner("b"), b"b", MINUTE)
        .await
        .unwrap();
    assert!(matches!(
        store.insert(&[3; 32], &owner("c"), b"c", MINUTE).await,
        Err(StoreError::Full)
    ));
    for i in 10..30u8 {
        store
            .insert(&[i; 32], &owner("a"), b"a", MINUTE)
            .await
            .unwrap();
    }
    assert_eq!(
        store.take(&[2; 32]).await.unwrap().as_deref(),
        Some(&b"b"[..])
    );
    store
        .insert(&[3; 32], &owner("c"), b"c", MINUTE)
        .await
        .unwrap();
    assert_eq!(
        store.take(&[3; 32]).await.unwrap().as_deref(),
        Some(&b"c"[..])
    );
    assert_eq!(
        store.take(&[29; 32]).await.unwrap().as_deref(),
        Some(&b"a"[..])
    );
}
