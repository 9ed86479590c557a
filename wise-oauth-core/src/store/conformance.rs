//! The store conformance suite (feature `test-util`): the assertions every [`TokenStore`] and
//! [`PendingStore`] must pass, built-in or your own, plus [`FaultyStore`], a wrapper that
//! injects store outages into tests.
//!
//! # Running the suite against your store
//!
//! In one line of a test file (your crate needs `tokio` with the `macros` and
//! `rt-multi-thread` features as a dev-dependency, and `wise-oauth-core` with the
//! `test-util` feature):
//!
//! ```
//! # mod wrapper {
//! use wise_oauth_core::{MemoryPendingStore, MemoryTokenStore};
//!
//! // A module `memory_tokens` with one #[tokio::test] per case, each with a fresh store:
//! wise_oauth_core::token_store_conformance!(memory_tokens, MemoryTokenStore::default());
//! wise_oauth_core::pending_store_conformance!(memory_pending, MemoryPendingStore::default());
//! # }
//! ```
//!
//! A store that needs `.await` to be built takes an `async` block:
//!
//! ```ignore
//! wise_oauth_core::token_store_conformance!(postgres, async {
//!     PostgresTokenStore::connect(&std::env::var("DATABASE_URL").unwrap()).await.unwrap()
//! });
//! ```
//!
//! Each case is a named test (`memory_tokens::racing_cas_writes_one_wins`, ...), so a failure
//! names the broken rule. The cases only touch keys under a random environment name, so they
//! can share a database with other data and run in parallel. Lease and TTL cases wait for a
//! few tens of milliseconds of real time: do not pause tokio's clock around them.
//!
//! The functions in [`token_store`] and [`pending_store`] are the cases themselves;
//! [`run_token_store_suite`] and [`run_pending_store_suite`] run them all in one test.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::ids::{LinkKey, ProfileId, UserId};
use crate::store::{
    LeaseHolder, LinkPage, LinkRecord, LinkStatus, PendingStore, SealedTokens, StoreError,
    TokenStore, Version, Versioned, MAX_LINK_PAGE,
};

/// Generates a module `$name` with one `#[tokio::test]` per [`TokenStore`] conformance case
/// (see [`conformance`](crate::conformance)). The second argument builds a fresh store: an
/// expression, or an `async { .. }` block.
#[macro_export]
macro_rules! token_store_conformance {
    (@cases $name:ident, $make:block; $($case:ident),* $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let store = $make;
                    $crate::conformance::token_store::$case(&store).await;
                }
            )*
        }
    };
    (@all $name:ident, $make:block) => {
        $crate::token_store_conformance!(@cases $name, $make;
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
    };
    ($name:ident, async $make:block) => {
        $crate::token_store_conformance!(@all $name, { async $make.await });
    };
    ($name:ident, $make:expr) => {
        $crate::token_store_conformance!(@all $name, { $make });
    };
}

/// Generates a module `$name` with one `#[tokio::test]` per [`PendingStore`] conformance
/// case (see [`conformance`](crate::conformance)). The second argument builds a fresh store:
/// an expression, or an `async { .. }` block.
#[macro_export]
macro_rules! pending_store_conformance {
    (@cases $name:ident, $make:block; $($case:ident),* $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let store = $make;
                    $crate::conformance::pending_store::$case(&store).await;
                }
            )*
        }
    };
    (@all $name:ident, $make:block) => {
        $crate::pending_store_conformance!(@cases $name, $make;
            absent_take_is_none,
            take_returns_the_flow_once,
            concurrent_takes_yield_once,
            expired_is_none,
            per_owner_cap_drops_oldest,
            other_owners_are_unaffected,
            pending_bytes_round_trip,
        );
    };
    ($name:ident, async $make:block) => {
        $crate::pending_store_conformance!(@all $name, { async $make.await });
    };
    ($name:ident, $make:expr) => {
        $crate::pending_store_conformance!(@all $name, { $make });
    };
}

/// Runs every [`TokenStore`] case against fresh stores from `make`, in one test.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// wise_oauth_core::conformance::run_token_store_suite(wise_oauth_core::MemoryTokenStore::default).await;
/// # });
/// ```
pub async fn run_token_store_suite<S: TokenStore>(make: impl Fn() -> S) {
    use token_store::*;
    absent_is_none(&make()).await;
    insert_if_absent_conflicts(&make()).await;
    cas_conflict_changes_nothing(&make()).await;
    cas_on_absent_link_conflicts(&make()).await;
    versions_start_at_one_and_grow_by_one(&make()).await;
    delete_removes_only_that_link(&make()).await;
    stale_write_after_delete_and_relink_is_rejected(&make()).await;
    racing_inserts_one_wins(&make()).await;
    racing_cas_writes_one_wins(&make()).await;
    lease_is_exclusive(&make()).await;
    lease_is_reentrant_for_its_holder(&make()).await;
    lease_is_released_only_by_its_holder(&make()).await;
    lease_without_record(&make()).await;
    leases_are_independent_of_records(&make()).await;
    leases_are_per_key(&make()).await;
    vanished_holders_lease_can_be_taken(&make()).await;
    late_write_after_lease_expiry_is_rejected(&make()).await;
    keys_are_injective(&make()).await;
    record_round_trips(&make()).await;
    sealed_bytes_round_trip(&make()).await;
    list_links_pages_in_user_order(&make()).await;
}

/// Runs every [`PendingStore`] case against fresh stores from `make`, in one test.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// wise_oauth_core::conformance::run_pending_store_suite(wise_oauth_core::MemoryPendingStore::default).await;
/// # });
/// ```
pub async fn run_pending_store_suite<S: PendingStore>(make: impl Fn() -> S) {
    use pending_store::*;
    absent_take_is_none(&make()).await;
    take_returns_the_flow_once(&make()).await;
    concurrent_takes_yield_once(&make()).await;
    expired_is_none(&make()).await;
    per_owner_cap_drops_oldest(&make()).await;
    other_owners_are_unaffected(&make()).await;
    pending_bytes_round_trip(&make()).await;
}

/// A random environment name, so every case works on keys no other case (or run) uses.
fn fresh_environment() -> String {
    format!("cf-{:016x}", rand::random::<u64>())
}

fn user(id: &str) -> UserId {
    UserId::new(id).expect("conformance user ids are valid")
}

fn at_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Waits real (not tokio) time, so TTLs measured by any clock have passed.
async fn wait_real(duration: Duration) {
    let waited = tokio::task::spawn_blocking(move || std::thread::sleep(duration)).await;
    waited.expect("sleeping thread panicked");
}

/// A short TTL for "vanished holder" leases, and how long to wait for it to lapse.
const SHORT_TTL: Duration = Duration::from_millis(1);
const LAPSE: Duration = Duration::from_millis(50);
const LONG_TTL: Duration = Duration::from_secs(60);

fn ok<T>(what: &str, result: Result<T, StoreError>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{what}: unexpected store error: {err:?}"),
    }
}

fn expect_conflict<T: fmt::Debug>(what: &str, result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Conflict) => {}
        other => panic!("{what}: expected StoreError::Conflict, got {other:?}"),
    }
}

/// The [`TokenStore`] cases. Each takes a store and panics with a message on a violation.
pub mod token_store {
    use super::*;

    struct Case {
        environment: String,
    }

    impl Case {
        fn new() -> Self {
            Self {
                environment: fresh_environment(),
            }
        }

        fn key(&self, id: &str) -> LinkKey {
            LinkKey::new(&self.environment, "conformance-client", user(id))
        }
    }

    /// A record whose every field differs from the others, so swapped columns show.
    fn record(profile: u64, sealed: &[u8]) -> LinkRecord {
        LinkRecord::new(
            ProfileId::new(profile).expect("non-zero profile id"),
            LinkStatus::Active,
            at_millis(1_750_043_199_123),
            at_millis(1_749_913_600_456),
            at_millis(1_750_000_000_789),
            SealedTokens::new(sealed.to_vec()),
        )
    }

    async fn load(store: &dyn TokenStore, key: &LinkKey) -> Option<Versioned<LinkRecord>> {
        ok("load", store.load(key).await)
    }

    /// Loading a link that was never saved is `Ok(None)`, not an error.
    pub async fn absent_is_none(store: &dyn TokenStore) {
        let case = Case::new();
        assert_eq!(load(store, &case.key("nobody")).await, None);
    }

    /// Saving with `expected = None` over an existing link is a conflict and changes nothing.
    pub async fn insert_if_absent_conflicts(store: &dyn TokenStore) {
        let case = Case::new();
        let key = case.key("u");
        let v1 = ok(
            "first insert",
            store.save(&key, &record(1, b"first"), None).await,
        );
        expect_conflict(
            "second insert",
            store.save(&key, &record(2, b"second"), None).await,
        );
        let stored = load(store, &key).await.expect("link present");
        assert_eq!(stored.version, v1);
        assert_eq!(stored.value, record(1, b"first"));
    }

    /// A compare-and-swap with a wrong version is a conflict and changes nothing.
    pub async fn cas_conflict_changes_nothing(store: &dyn TokenStore) {
        let case = Case::new();
        let key = case.key("u");
        let v1 = ok("insert", store.save(&key, &record(1, b"one"), None).await);
        for wrong in [
            Version::new(v1.get() + 1),
            Version::new(v1.get() + 100),
            Version::new(0),
        ] {
            expect_conflict(
                "save with a wrong version",
                store.save(&key, &record(2, b"two"), Some(wrong)).await,
            );
        }
        let stored = load(store, &key).await.expect("link present");
        assert_eq!(stored.version, v1, "a failed CAS changed the version");
        assert_eq!(
            stored.value,
            record(1, b"one"),
            "a failed CAS changed the record"
        );
    }

    /// A compare-and-swap on an absent link is a conflict and creates nothing.
    pub async fn cas_on_absent_link_conflicts(store: &dyn TokenStore) {
        let case = Case::new();
        let key = case.key("u");
        expect_conflict(
            "CAS on an absent link",
            store
                .save(&key, &record(1, b"x"), Some(Version::new(1)))
                .await,
        );
        assert_eq!(load(store, &key).await, None, "a failed CAS created a link");
    }

    /// The first version is 1; each successful save adds one; a load returns the version.
    pub async fn versions_start_at_one_and_grow_by_one(store: &dyn TokenStore) {
        let case = Case::new();
        let key = case.key("u");
        let mut version = ok("insert", store.save(&key, &record(1, b"v"), None).await);
        assert_eq!(version, Version::new(1), "the first version of a new link");
        for round in 2..=5u8 {
            let next = ok(
                "CAS save",
                store.save(&key, &record(1, &[round]), Some(version)).await,
            );
            assert_eq!(
                next,
                Version::new(version.get() + 1),
                "versions grow by one"
            );
            let stored = load(store, &key).await.expect("link present");
            assert_eq!(stored.version, next);
            assert_eq!(stored.value.sealed_tokens.as_bytes(), [round]);
            version = next;
        }
    }

    /// Delete removes the link (`true`), then reports `false`; other links stay.
    pub async fn delete_removes_only_that_link(store: &dyn TokenStore) {
        let case = Case::new();
        let (a, b) = (case.key("a"), case.key("b"));
        ok("insert a", store.save(&a, &record(1, b"a"), None).await);
        ok("insert b", store.save(&b, &record(2, b"b"), None).await);
        assert!(
            ok("delete a", store.delete(&a).await),
            "delete of a present link"
        );
        assert_eq!(load(store, &a).await, None);
        assert!(
            !ok("delete a again", store.delete(&a).await),
            "delete of an absent link"
        );
        assert!(!ok("delete unknown", store.delete(&case.key("c")).await));
        assert_eq!(
            load(store, &b).await.expect("b present").value,
            record(2, b"b")
        );
    }

    /// A write based on a link that was deleted and linked again must not overwrite the new
    /// link (versions must not restart at a value the old link had).
    pub async fn stale_write_after_delete_and_relink_is_rejected(store: &dyn TokenStore) {
        let case = Case::new();
        let key = case.key("u");
        let old = ok(
            "insert",
            store.save(&key, &record(1, b"old grant"), None).await,
        );
        assert!(ok("unlink", store.delete(&key).await));
        let new = ok(
            "relink",
            store.save(&key, &record(2, b"new grant"), None).await,
        );
        expect_conflict(
            "stale write of the deleted link",
            store
                .save(&key, &record(1, b"stale refresh"), Some(old))
                .await,
        );
        let stored = load(store, &key).await.expect("link present");
        assert_eq!(stored.version, new);
        assert_eq!(stored.value, record(2, b"new grant"));
    }

    const RACERS: usize = 32;

    /// Of many concurrent inserts of one link, exactly one wins; the others conflict.
    pub async fn racing_inserts_one_wins(store: &dyn TokenStore) {
        let case = Case::new();
        let key = case.key("u");
        let records: Vec<LinkRecord> = (0..RACERS).map(|i| record(1, &[i as u8])).collect();
        let results =
            futures::future::join_all(records.iter().map(|r| store.save(&key, r, None))).await;
        assert_single_winner(store, &key, &records, results, None).await;
    }

    /// Of many concurrent saves expecting the same version, exactly one wins.
    pub async fn racing_cas_writes_one_wins(store: &dyn TokenStore) {
        let case = Case::new();
        let key = case.key("u");
        let v1 = ok("insert", store.save(&key, &record(1, b"base"), None).await);
        let records: Vec<LinkRecord> = (0..RACERS).map(|i| record(1, &[i as u8])).collect();
        let results =
            futures::future::join_all(records.iter().map(|r| store.save(&key, r, Some(v1)))).await;
        assert_single_winner(store, &key, &records, results, Some(v1)).await;
    }

    async fn assert_single_winner(
        store: &dyn TokenStore,
        key: &LinkKey,
        records: &[LinkRecord],
        results: Vec<Result<Version, StoreError>>,
        base: Option<Version>,
    ) {
        let mut winner = None;
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(version) => {
                    assert!(winner.is_none(), "two concurrent writers both won");
                    winner = Some((i, version));
                }
                Err(StoreError::Conflict) => {}
                Err(err) => panic!("a racing writer got {err:?} instead of Conflict"),
            }
        }
        let (index, version) = winner.expect("no concurrent writer won");
        if let Some(base) = base {
            assert_eq!(version, Version::new(base.get() + 1));
        }
        let stored = load(store, key).await.expect("link present");
        assert_eq!(
            stored.version, version,
            "the store holds another version than the winner's"
        );
        assert_eq!(
            stored.value, records[index],
            "the store holds another record than the winner's"
        );
    }

    /// A live lease cannot be taken by another holder.
    pub async fn lease_is_exclusive(store: &dyn TokenStore) {
        let case = Case::new();
        let key = case.key("u");
        let (h1, h2) = (LeaseHolder::new(1), LeaseHolder::new(2));
        assert!(ok(
            "h1 acquires",
            store.acquire_lease(&key, h1, LONG_TTL).await
        ));
        assert!(!ok(
            "h2 acquires",
            store.acquire_lease(&key, h2, LONG_TTL).await
        ));
        assert!(!ok(
            "h2 acquires again",
            store.acquire_lease(&key, h2, LONG_TTL).await
        ));
    }

    /// The holder may acquire its lease again (to extend it).
    pub async fn lease_is_reentrant_for_its_holder(store: &dyn TokenStore) {
        let case = Case::new();
        let key = case.key("u");
        let (h1, h2) = (LeaseHolder::new(1), LeaseHolder::new(2));
        assert!(ok(
            "h1 acquires",
            store.acquire_lease(&key, h1, SHORT_TTL).await
        ));
        assert!(ok(
            "h1 extends",
            store.acquire_lease(&key, h1, LONG_TTL).await
        ));
        wait_real(LAPSE).await;
        // The extension holds beyond the first, short TTL.
        assert!(!ok(
            "h2 acquires",
            store.acquire_lease(&key, h2, LONG_TTL).await
        ));
        assert!(ok(
            "h1 extends again",
            store.acquire_lease(&key, h1, LONG_TTL).await
        ));
    }

    /// Only the holder's release frees the lease; another holder's release does nothing.
    pub async fn lease_is_released_only_by_its_holder(store: &dyn TokenStore) {
        let case = Case::new();
        let key = case.key("u");
        let (h1, h2) = (LeaseHolder::new(1), LeaseHolder::new(2));
        assert!(ok(
            "h1 acquires",
            store.acquire_lease(&key, h1, LONG_TTL).await
        ));
        ok("h2 releases", store.release_lease(&key, h2).await);
        assert!(!ok(
            "h2 acquires",
            store.acquire_lease(&key, h2, LONG_TTL).await
        ));
        ok("h1 releases", store.release_lease(&key, h1).await);
        assert!(ok(
            "h2 acquires after release",
            store.acquire_lease(&key, h2, LONG_TTL).await
        ));
        // Releasing twice or releasing a free lease is fine.
        ok("h1 releases again", store.release_lease(&key, h1).await);
        ok(
            "release of unknown key",
            store.release_lease(&case.key("free"), h1).await,
        );
        assert!(!ok(
            "h1 acquires",
            store.acquire_lease(&key, h1, LONG_TTL).await
        ));
    }

    /// A lease can be taken for a key without a record, and does not create one.
    pub async fn lease_without_record(store: &dyn TokenStore) {
        let case = Case::new();
        let key = case.key("unlinked");
        assert!(ok(
            "acquire",
            store
                .acquire_lease(&key, LeaseHolder::new(1), LONG_TTL)
                .await
        ));
        assert_eq!(load(store, &key).await, None, "a lease created a link");
        // A link can still be inserted while the lease is held.
        ok(
            "insert under lease",
            store.save(&key, &record(1, b"x"), None).await,
        );
    }

    /// Saving and deleting a link neither frees nor breaks its lease.
    pub async fn leases_are_independent_of_records(store: &dyn TokenStore) {
        let case = Case::new();
        let key = case.key("u");
        let (h1, h2) = (LeaseHolder::new(1), LeaseHolder::new(2));
        assert!(ok(
            "h1 acquires",
            store.acquire_lease(&key, h1, LONG_TTL).await
        ));
        let v1 = ok("insert", store.save(&key, &record(1, b"a"), None).await);
        ok("save", store.save(&key, &record(1, b"b"), Some(v1)).await);
        assert!(!ok(
            "h2 acquires after save",
            store.acquire_lease(&key, h2, LONG_TTL).await
        ));
        assert!(ok("delete", store.delete(&key).await));
        assert!(!ok(
            "h2 acquires after delete",
            store.acquire_lease(&key, h2, LONG_TTL).await
        ));
        ok("h1 releases", store.release_lease(&key, h1).await);
        assert!(ok(
            "h2 acquires",
            store.acquire_lease(&key, h2, LONG_TTL).await
        ));
    }

    /// A lease on one key does not block another key.
    pub async fn leases_are_per_key(store: &dyn TokenStore) {
        let case = Case::new();
        let (a, b) = (case.key("a"), case.key("b"));
        assert!(ok(
            "h1 on a",
            store.acquire_lease(&a, LeaseHolder::new(1), LONG_TTL).await
        ));
        assert!(ok(
            "h2 on b",
            store.acquire_lease(&b, LeaseHolder::new(2), LONG_TTL).await
        ));
        let other_client = LinkKey::new(&case.environment, "other-client", user("a"));
        assert!(ok(
            "h2 on a of another client",
            store
                .acquire_lease(&other_client, LeaseHolder::new(2), LONG_TTL)
                .await
        ));
    }

    /// The lease of a holder that vanished (crashed) can be taken once its TTL passed.
    pub async fn vanished_holders_lease_can_be_taken(store: &dyn TokenStore) {
        let case = Case::new();
        let key = case.key("u");
        assert!(ok(
            "h1 acquires",
            store
                .acquire_lease(&key, LeaseHolder::new(1), SHORT_TTL)
                .await
        ));
        wait_real(LAPSE).await;
        assert!(ok(
            "h2 acquires an expired lease",
            store
                .acquire_lease(&key, LeaseHolder::new(2), LONG_TTL)
                .await
        ));
        assert!(!ok(
            "h1 comes back",
            store
                .acquire_lease(&key, LeaseHolder::new(1), LONG_TTL)
                .await
        ));
    }

    /// Holder 1 reads v1, its lease expires mid-refresh, holder 2 takes the lease and saves
    /// v2; holder 1's late write expecting v1 is rejected and its release frees nothing.
    pub async fn late_write_after_lease_expiry_is_rejected(store: &dyn TokenStore) {
        let case = Case::new();
        let key = case.key("u");
        let (h1, h2, h3) = (
            LeaseHolder::new(1),
            LeaseHolder::new(2),
            LeaseHolder::new(3),
        );
        let v1 = ok("insert", store.save(&key, &record(1, b"v1"), None).await);

        assert!(ok(
            "h1 acquires",
            store.acquire_lease(&key, h1, SHORT_TTL).await
        ));
        let read_by_h1 = load(store, &key).await.expect("link present").version;
        assert_eq!(read_by_h1, v1);
        wait_real(LAPSE).await; // h1 is paused; its lease expires

        assert!(ok(
            "h2 acquires",
            store.acquire_lease(&key, h2, LONG_TTL).await
        ));
        let read_by_h2 = load(store, &key).await.expect("link present").version;
        let v2 = ok(
            "h2 saves",
            store
                .save(&key, &record(1, b"v2 by h2"), Some(read_by_h2))
                .await,
        );

        expect_conflict(
            "h1's late write",
            store
                .save(&key, &record(1, b"late v2 by h1"), Some(read_by_h1))
                .await,
        );
        ok("h1 releases", store.release_lease(&key, h1).await);
        assert!(!ok(
            "h3 acquires",
            store.acquire_lease(&key, h3, LONG_TTL).await
        ));
        let stored = load(store, &key).await.expect("link present");
        assert_eq!(stored.version, v2);
        assert_eq!(stored.value, record(1, b"v2 by h2"));
    }

    /// Keys whose parts contain separators, quotes, SQL, hash tags, unicode or maximal
    /// lengths, and keys differing only in environment or client, are all distinct.
    pub async fn keys_are_injective(store: &dyn TokenStore) {
        let env = fresh_environment();
        let env_a = format!("{env}:a");
        let mut keys: Vec<LinkKey> = Vec::new();
        let mut add = |environment: &str, client: &str, id: &str| {
            keys.push(LinkKey::new(environment, client, user(id)));
        };
        // Shifting a separator between parts.
        add(&env, "c", "a:b");
        add(&env, "b:c", "a");
        add(&env, "c:a", "b");
        add(&env_a, "c", "b");
        add(&env, "a:c", "b");
        add(&env, "c", "a/b");
        add(&env, "c/a", "b");
        add(&env, "c", "a|b");
        add(&env, "c|a", "b");
        add(&env, "c", "a\\b");
        add(&env, "c", "a.b");
        add(&env, "c", "a b");
        add(&env, "c", "a%3Ab");
        add(&env, "c", "a::b");
        // Same user, other environment or client.
        add(&env, "c", "user");
        add(&format!("{env}-production"), "c", "user");
        add(&env, "c2", "user");
        add(&env, "C", "user");
        // Case, whitespace and normalisation differences.
        add(&env, "c", "User");
        add(&env, "c", "user ");
        add(&env, "c", " user");
        add(&env, "c", "\u{fc}");
        add(&env, "c", "u\u{308}");
        // Quotes, SQL, patterns and hash tags.
        add(&env, "c", "'");
        add(&env, "c", "\"");
        add(&env, "c", "`");
        add(&env, "c", "'; DROP TABLE x; --");
        add(&env, "c", "Robert'); DROP TABLE links;--");
        add(&env, "c", "{hash}");
        add(&env, "c", "{hash}:x");
        add(&env, "c", "*");
        add(&env, "c", "?");
        add(&env, "c", "[a-z]");
        add(&env, "c", "%");
        add(&env, "c", "_");
        add(&env, "c", "$1");
        // Unicode (NUL-free: user ids reject control characters).
        add(&env, "c", "ユーザー");
        add(&env, "c", "🦀");
        add(&env, "c", "\u{202e}rtl");
        add(&env, "ユーザー", "c");
        // Longest ids: 256 bytes of ASCII and of two-byte characters, and 255 bytes.
        add(&env, "c", &"x".repeat(256));
        add(&env, "c", &"x".repeat(255));
        add(&env, "c", &"\u{e9}".repeat(128));

        for (i, key) in keys.iter().enumerate() {
            let saved = store
                .save(key, &record(i as u64 + 1, &(i as u32).to_be_bytes()), None)
                .await;
            match saved {
                Ok(_) => {}
                Err(StoreError::Conflict) => {
                    panic!("key #{i} {key:?} collides with an earlier key")
                }
                Err(err) => panic!("key #{i} {key:?}: unexpected store error: {err:?}"),
            }
        }
        for (i, key) in keys.iter().enumerate() {
            let stored = load(store, key)
                .await
                .unwrap_or_else(|| panic!("key #{i} {key:?} lost"));
            assert_eq!(
                stored.value,
                record(i as u64 + 1, &(i as u32).to_be_bytes()),
                "key #{i} {key:?} returned another key's record"
            );
        }
        assert!(ok("delete", store.delete(&keys[0]).await));
        for (i, key) in keys.iter().enumerate().skip(1) {
            assert!(
                load(store, key).await.is_some(),
                "deleting key #0 removed key #{i} {key:?}"
            );
        }
    }

    /// Every field of a record comes back as saved (timestamps to the millisecond at least),
    /// for both statuses and a large profile id.
    pub async fn record_round_trips(store: &dyn TokenStore) {
        let case = Case::new();
        let key = case.key("u");
        let mut first = record(i64::MAX as u64, b"sealed");
        first.status = LinkStatus::NeedsRelink;
        let v1 = ok("insert", store.save(&key, &first, None).await);
        assert_eq!(load(store, &key).await.expect("link present").value, first);

        let second = LinkRecord::new(
            ProfileId::new(30_000_001).expect("non-zero"),
            LinkStatus::Active,
            at_millis(4_102_444_800_001), // 2100-01-01
            at_millis(1_000),
            at_millis(1_750_000_000_999),
            SealedTokens::new(b"other".to_vec()),
        );
        ok("update", store.save(&key, &second, Some(v1)).await);
        assert_eq!(load(store, &key).await.expect("link present").value, second);
    }

    /// Sealed token bytes of 0 to 64 KiB with every byte value come back byte for byte,
    /// also when a long value is replaced by a shorter one.
    pub async fn sealed_bytes_round_trip(store: &dyn TokenStore) {
        let case = Case::new();
        let lengths = [0usize, 1, 2, 255, 256, 1000, 4096, 65_535, 65_536];
        let pattern = |len: usize, salt: usize| -> Vec<u8> {
            (0..len).map(|i| ((i * 31 + salt) % 256) as u8).collect()
        };
        for len in lengths {
            let key = case.key(&format!("len-{len}"));
            let bytes = pattern(len, 7);
            let v1 = ok("insert", store.save(&key, &record(1, &bytes), None).await);
            let stored = load(store, &key).await.expect("link present");
            assert!(
                stored.value.sealed_tokens.as_bytes() == bytes,
                "{len} bytes did not round-trip"
            );
            let shorter = pattern(len / 2, 3);
            ok(
                "update",
                store.save(&key, &record(1, &shorter), Some(v1)).await,
            );
            let stored = load(store, &key).await.expect("link present");
            assert!(
                stored.value.sealed_tokens.as_bytes() == shorter,
                "{len}/2 bytes after update"
            );
        }
        let every_value: Vec<u8> = (0..=255u8).collect();
        let random: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
        for (name, bytes) in [("every-value", every_value), ("random", random)] {
            let key = case.key(name);
            ok("insert", store.save(&key, &record(1, &bytes), None).await);
            let stored = load(store, &key).await.expect("link present");
            assert!(
                stored.value.sealed_tokens.as_bytes() == bytes,
                "{name} bytes did not round-trip"
            );
        }
    }

    /// [`TokenStore::list_links`] pages through exactly the existing links of one
    /// environment and client: ascending byte order of the user ids, at most `limit` per page
    /// (a `limit` beyond [`MAX_LINK_PAGE`] is capped, not an error), keyset cursors that need
    /// not name a stored user, links needing a re-link included, unlinked ones (tombstones),
    /// lease-only keys and other environments or clients left out, and no user twice when
    /// links are added or removed between pages.
    ///
    /// Listing is optional: a store answering [`StoreError::Unsupported`] skips this case
    /// (and says so on stderr), so stores written before listing existed keep passing.
    pub async fn list_links_pages_in_user_order(store: &dyn TokenStore) {
        let case = Case::new();
        let client = "conformance-client";
        let list = |after: Option<UserId>, limit: usize| {
            let environment = case.environment.clone();
            async move {
                store
                    .list_links(&environment, client, after.as_ref(), limit)
                    .await
            }
        };
        match list(None, 10).await {
            Err(StoreError::Unsupported(_)) => {
                eprintln!("SKIPPED list_links_pages_in_user_order: {store:?} does not list links");
                return;
            }
            result => {
                let empty = ok("list_links on an empty scope", result);
                assert_eq!(
                    empty,
                    LinkPage::default(),
                    "a scope without links lists nothing"
                );
            }
        }

        // Ids whose byte order differs from naive orders (case, length, numbers, unicode).
        let mut ids: Vec<String> = [
            "b",
            "a",
            "B",
            "a b",
            "aa",
            "a%",
            "user-10",
            "user-2",
            "\u{e4}",
            "\u{1f980}",
            "z",
            "'; DROP TABLE x; --",
            "{tag}",
            "*",
            "_",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain(["x".repeat(256), "\u{e9}".repeat(128)])
        .collect();
        for (i, id) in ids.iter().enumerate() {
            let mut rec = record(i as u64 + 1, b"listed");
            if i % 3 == 0 {
                rec.status = LinkStatus::NeedsRelink;
            }
            ok("insert", store.save(&case.key(id), &rec, None).await);
        }
        // Not listed: an unlinked user (a tombstone in stores that keep one), a key with only
        // a lease, and the same users under another environment and another client.
        let gone = case.key("gone");
        ok(
            "insert",
            store.save(&gone, &record(99, b"gone"), None).await,
        );
        assert!(ok("delete", store.delete(&gone).await));
        let lease_only = case.key("lease-only");
        assert!(ok(
            "acquire",
            store
                .acquire_lease(&lease_only, LeaseHolder::random(), LONG_TTL)
                .await
        ));
        let other_env = format!("{}-other", case.environment);
        for (environment, client) in [(other_env.as_str(), client), (&case.environment, "other")] {
            for id in ["a", "c", "zz"] {
                let key = LinkKey::new(environment, client, user(id));
                ok("insert", store.save(&key, &record(7, b"other"), None).await);
            }
        }
        // Unlinked and linked again: listed once.
        let back = case.key("back");
        let v1 = ok("insert", store.save(&back, &record(5, b"back"), None).await);
        assert!(ok("delete", store.delete(&back).await));
        ok(
            "insert again",
            store.save(&back, &record(5, b"back"), None).await,
        );
        let again = load(store, &back).await.expect("linked again");
        assert!(again.version > v1, "linking again continues the versions");
        ids.push("back".to_owned());
        ids.sort_unstable();

        // One page with everything; a limit past the cap is capped, not an error.
        let all = ok("list_links", list(None, usize::MAX).await);
        let names = |page: &LinkPage| -> Vec<String> {
            page.users.iter().map(|u| u.as_str().to_owned()).collect()
        };
        assert_eq!(names(&all), ids, "one page lists every link in byte order");
        assert!(ids.len() < MAX_LINK_PAGE);

        // Pages of three, with a link added behind and one ahead of the cursor after the
        // first page, and a listed one removed: each user at most once, in order.
        let first = ok("list_links", list(None, 3).await);
        assert_eq!(names(&first), ids[..3], "the first page");
        assert_eq!(
            first.next.as_ref().map(UserId::as_str),
            Some(ids[2].as_str())
        );
        ok(
            "insert behind",
            store.save(&case.key("!"), &record(3, b"x"), None).await,
        );
        ok(
            "insert ahead",
            store.save(&case.key("zzz"), &record(3, b"x"), None).await,
        );
        assert!(ok("delete ahead", store.delete(&case.key("z")).await));
        let mut walked = names(&first);
        let mut cursor = first.next;
        let mut pages = 1;
        while let Some(after) = cursor.take() {
            let page = ok("list_links", list(Some(after), 3).await);
            assert!(page.users.len() <= 3, "a page holds at most `limit` users");
            walked.extend(names(&page));
            cursor = page.next;
            pages += 1;
            assert!(pages <= ids.len() + 2, "the walk does not end");
        }
        let mut expected = ids.clone();
        expected.retain(|id| id != "z");
        expected.push("zzz".to_owned());
        expected.sort_unstable();
        assert_eq!(walked, expected, "the walk over pages of three");

        // A cursor that names no stored user starts after it.
        let page = ok("list_links", list(Some(user("a0")), 2).await);
        let after_a0: Vec<&String> = expected.iter().filter(|id| id.as_str() > "a0").collect();
        assert_eq!(
            names(&page),
            after_a0[..2]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        );
        let past_the_end = ok(
            "list_links",
            list(Some(user(&"\u{10ffff}".repeat(8))), 5).await,
        );
        assert_eq!(
            past_the_end,
            LinkPage::default(),
            "a cursor past the last user"
        );
    }
}

/// The [`PendingStore`] cases. Each takes a store and panics with a message on a violation.
pub mod pending_store {
    use super::*;
    use crate::store::MAX_PENDING_PER_USER;

    const TTL: Duration = Duration::from_secs(1800);

    fn state() -> [u8; 32] {
        rand::random()
    }

    struct Case {
        environment: String,
    }

    impl Case {
        fn new() -> Self {
            Self {
                environment: fresh_environment(),
            }
        }

        fn owner(&self, client: &str, id: &str) -> LinkKey {
            LinkKey::new(&self.environment, client, user(id))
        }
    }

    async fn insert(store: &dyn PendingStore, s: &[u8; 32], owner: &LinkKey, data: &[u8]) {
        ok("insert", store.insert(s, owner, data, TTL).await);
    }

    async fn take(store: &dyn PendingStore, s: &[u8; 32]) -> Option<Vec<u8>> {
        ok("take", store.take(s).await)
    }

    /// Taking an unknown state is `Ok(None)`.
    pub async fn absent_take_is_none(store: &dyn PendingStore) {
        assert_eq!(take(store, &state()).await, None);
    }

    /// A flow is returned by the first take only; a replay finds nothing.
    pub async fn take_returns_the_flow_once(store: &dyn PendingStore) {
        let case = Case::new();
        let (s1, s2) = (state(), state());
        let owner = case.owner("c", "u");
        insert(store, &s1, &owner, b"flow one").await;
        insert(store, &s2, &owner, b"flow two").await;
        assert_eq!(take(store, &s1).await.as_deref(), Some(&b"flow one"[..]));
        assert_eq!(
            take(store, &s1).await,
            None,
            "a replayed state found its flow again"
        );
        assert_eq!(take(store, &s2).await.as_deref(), Some(&b"flow two"[..]));
    }

    /// Of many concurrent takes of one state, exactly one gets the flow.
    pub async fn concurrent_takes_yield_once(store: &dyn PendingStore) {
        let case = Case::new();
        let s = state();
        insert(store, &s, &case.owner("c", "u"), b"flow").await;
        let results = futures::future::join_all((0..16).map(|_| store.take(&s))).await;
        let found = results
            .into_iter()
            .map(|r| ok("concurrent take", r))
            .filter(Option::is_some)
            .count();
        assert_eq!(found, 1, "{found} concurrent takes got the flow");
    }

    /// A flow whose TTL has passed is not returned.
    pub async fn expired_is_none(store: &dyn PendingStore) {
        let case = Case::new();
        let owner = case.owner("c", "u");
        let (short, long) = (state(), state());
        ok(
            "insert short",
            store.insert(&short, &owner, b"short", SHORT_TTL).await,
        );
        ok(
            "insert long",
            store.insert(&long, &owner, b"long", LONG_TTL).await,
        );
        wait_real(LAPSE).await;
        assert_eq!(
            take(store, &short).await,
            None,
            "an expired flow was returned"
        );
        assert_eq!(take(store, &long).await.as_deref(), Some(&b"long"[..]));
    }

    /// An owner keeps at most `MAX_PENDING_PER_USER` flows; the oldest are dropped first.
    pub async fn per_owner_cap_drops_oldest(store: &dyn PendingStore) {
        let case = Case::new();
        let owner = case.owner("c", "u");
        let extra = 3;
        let states: Vec<[u8; 32]> = (0..MAX_PENDING_PER_USER + extra).map(|_| state()).collect();
        for (i, s) in states.iter().enumerate() {
            insert(store, s, &owner, &(i as u32).to_be_bytes()).await;
        }
        for (i, s) in states.iter().enumerate() {
            let taken = take(store, s).await;
            if i < extra {
                assert_eq!(
                    taken, None,
                    "flow #{i} should have been dropped as one of the oldest"
                );
            } else {
                assert_eq!(
                    taken,
                    Some((i as u32).to_be_bytes().to_vec()),
                    "flow #{i} was lost"
                );
            }
        }
    }

    /// One owner starting many flows (also owners whose key only differs by where a separator
    /// falls) does not drop other owners' flows.
    pub async fn other_owners_are_unaffected(store: &dyn PendingStore) {
        let case = Case::new();
        let flooder = case.owner("c", "a:b");
        let lookalike = case.owner("c:a", "b");
        let other_client = case.owner("c2", "a:b");
        let bystander = case.owner("c", "bob");
        let (s_look, s_client, s_bob) = (state(), state(), state());
        insert(store, &s_look, &lookalike, b"lookalike").await;
        insert(store, &s_client, &other_client, b"other client").await;
        insert(store, &s_bob, &bystander, b"bob").await;
        for _ in 0..(MAX_PENDING_PER_USER * 4) {
            insert(store, &state(), &flooder, b"flood").await;
        }
        assert_eq!(
            take(store, &s_look).await.as_deref(),
            Some(&b"lookalike"[..])
        );
        assert_eq!(
            take(store, &s_client).await.as_deref(),
            Some(&b"other client"[..])
        );
        assert_eq!(take(store, &s_bob).await.as_deref(), Some(&b"bob"[..]));
    }

    /// Pending bytes of 0 to 16 KiB with every byte value come back byte for byte.
    pub async fn pending_bytes_round_trip(store: &dyn PendingStore) {
        let case = Case::new();
        let owner = case.owner("c", "u");
        for len in [0usize, 1, 255, 256, 4096, 16_384] {
            let bytes: Vec<u8> = (0..len).map(|i| ((i * 31 + 7) % 256) as u8).collect();
            let s = state();
            insert(store, &s, &owner, &bytes).await;
            assert!(
                take(store, &s).await == Some(bytes),
                "{len} bytes did not round-trip"
            );
        }
    }
}

/// The error a [`FaultyStore`] injects, inside [`StoreError::Unavailable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedFault;

impl fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("injected store fault")
    }
}

impl std::error::Error for InjectedFault {}

fn injected() -> StoreError {
    StoreError::Unavailable(Box::new(InjectedFault))
}

#[derive(Debug, Default)]
struct Faults {
    fail_loads: AtomicBool,
    fail_saves: AtomicBool,
    fail_next_saves: AtomicU64,
    lose_next_save_replies: AtomicU64,
    panic_next_saves: AtomicU64,
    fail_deletes: AtomicBool,
    fail_leases: AtomicBool,
    fail_pending: AtomicBool,
    loads: AtomicU64,
    saves: AtomicU64,
    successful_saves: AtomicU64,
    lease_calls: AtomicU64,
}

/// Takes one from a countdown; `true` if it was positive.
fn take_one(counter: &AtomicU64) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// A store wrapper that fails on command, for testing how the library survives outages.
///
/// Clones share the switches and the wrapped store, so a test keeps one clone to flip
/// switches while the library uses another. Failures are
/// [`StoreError::Unavailable`] wrapping [`InjectedFault`]; a failed call does not reach the
/// wrapped store.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use wise_oauth_core::conformance::FaultyStore;
/// use wise_oauth_core::{LinkKey, MemoryTokenStore, StoreError, TokenStore, UserId};
///
/// let store = FaultyStore::new(MemoryTokenStore::default());
/// let key = LinkKey::new("sandbox", "c", UserId::new("u").unwrap());
/// store.set_fail_loads(true);
/// assert!(matches!(store.load(&key).await, Err(StoreError::Unavailable(_))));
/// store.set_fail_loads(false);
/// assert!(store.load(&key).await.unwrap().is_none());
/// assert_eq!(store.load_calls(), 2);
/// # });
/// ```
pub struct FaultyStore<S> {
    inner: Arc<S>,
    faults: Arc<Faults>,
}

impl<S> Clone for FaultyStore<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            faults: Arc::clone(&self.faults),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for FaultyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("inner", &self.inner)
            .field("faults", &self.faults)
            .finish()
    }
}

impl<S> FaultyStore<S> {
    /// Wraps `inner`; no fault is switched on.
    pub fn new(inner: S) -> Self {
        Self {
            inner: Arc::new(inner),
            faults: Arc::default(),
        }
    }

    /// The wrapped store (to inspect it behind the faults).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Makes every `load` fail (`true`) or work again (`false`).
    pub fn set_fail_loads(&self, fail: bool) {
        self.faults.fail_loads.store(fail, Ordering::SeqCst);
    }

    /// Makes every `save` fail (`true`) or work again (`false`).
    pub fn set_fail_saves(&self, fail: bool) {
        self.faults.fail_saves.store(fail, Ordering::SeqCst);
    }

    /// Makes the next `n` saves fail without writing (replaces an earlier count).
    pub fn fail_next_saves(&self, n: u64) {
        self.faults.fail_next_saves.store(n, Ordering::SeqCst);
    }

    /// Makes the next `n` saves write but then report a failure (a lost reply: the caller
    /// cannot know the write happened).
    pub fn lose_next_save_replies(&self, n: u64) {
        self.faults
            .lose_next_save_replies
            .store(n, Ordering::SeqCst);
    }

    /// Makes the next `n` saves panic without writing (a bug in a store or a driver).
    pub fn panic_next_saves(&self, n: u64) {
        self.faults.panic_next_saves.store(n, Ordering::SeqCst);
    }

    /// Makes every `delete` fail (`true`) or work again (`false`).
    pub fn set_fail_deletes(&self, fail: bool) {
        self.faults.fail_deletes.store(fail, Ordering::SeqCst);
    }

    /// Makes every lease call (acquire and release) fail (`true`) or work again (`false`).
    pub fn set_fail_leases(&self, fail: bool) {
        self.faults.fail_leases.store(fail, Ordering::SeqCst);
    }

    /// Makes every [`PendingStore`] call fail (`true`) or work again (`false`).
    pub fn set_fail_pending(&self, fail: bool) {
        self.faults.fail_pending.store(fail, Ordering::SeqCst);
    }

    /// Switches every fault on (a store that is down) or every switch off; also clears the
    /// countdowns of [`fail_next_saves`](Self::fail_next_saves) and friends when `false`.
    pub fn set_down(&self, down: bool) {
        self.set_fail_loads(down);
        self.set_fail_saves(down);
        self.set_fail_deletes(down);
        self.set_fail_leases(down);
        self.set_fail_pending(down);
        if !down {
            self.fail_next_saves(0);
            self.lose_next_save_replies(0);
            self.panic_next_saves(0);
        }
    }

    /// How many times `load` was called (failed calls included).
    pub fn load_calls(&self) -> u64 {
        self.faults.loads.load(Ordering::SeqCst)
    }

    /// How many times `save` was called (failed calls included).
    pub fn save_calls(&self) -> u64 {
        self.faults.saves.load(Ordering::SeqCst)
    }

    /// How many saves reached the wrapped store and succeeded there.
    pub fn successful_saves(&self) -> u64 {
        self.faults.successful_saves.load(Ordering::SeqCst)
    }

    /// How many times `acquire_lease` was called (failed calls included).
    pub fn lease_calls(&self) -> u64 {
        self.faults.lease_calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<S: TokenStore> TokenStore for FaultyStore<S> {
    async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
        self.faults.loads.fetch_add(1, Ordering::SeqCst);
        if self.faults.fail_loads.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.load(key).await
    }

    async fn save(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        self.faults.saves.fetch_add(1, Ordering::SeqCst);
        if take_one(&self.faults.panic_next_saves) {
            panic!("FaultyStore: injected panic in save");
        }
        if self.faults.fail_saves.load(Ordering::SeqCst) || take_one(&self.faults.fail_next_saves) {
            return Err(injected());
        }
        let version = self.inner.save(key, record, expected).await?;
        self.faults.successful_saves.fetch_add(1, Ordering::SeqCst);
        if take_one(&self.faults.lose_next_save_replies) {
            return Err(injected());
        }
        Ok(version)
    }

    async fn delete(&self, key: &LinkKey) -> Result<bool, StoreError> {
        if self.faults.fail_deletes.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.delete(key).await
    }

    async fn acquire_lease(
        &self,
        key: &LinkKey,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.faults.lease_calls.fetch_add(1, Ordering::SeqCst);
        if self.faults.fail_leases.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.acquire_lease(key, holder, ttl).await
    }

    async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) -> Result<(), StoreError> {
        if self.faults.fail_leases.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.release_lease(key, holder).await
    }

    /// Passed through; fails like a load while loads fail.
    async fn list_links(
        &self,
        environment: &str,
        client_id: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<LinkPage, StoreError> {
        if self.faults.fail_loads.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner
            .list_links(environment, client_id, after, limit)
            .await
    }
}

#[async_trait]
impl<S: PendingStore> PendingStore for FaultyStore<S> {
    async fn insert(
        &self,
        state_hash: &[u8; 32],
        owner: &LinkKey,
        pending: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        if self.faults.fail_pending.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.insert(state_hash, owner, pending, ttl).await
    }

    async fn take(&self, state_hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        if self.faults.fail_pending.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.take(state_hash).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryPendingStore, MemoryTokenStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_token_store_passes_the_suite() {
        run_token_store_suite(MemoryTokenStore::default).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_pending_store_passes_the_suite() {
        run_pending_store_suite(MemoryPendingStore::default).await;
    }

    fn key() -> LinkKey {
        LinkKey::new("sandbox", "c", user("u"))
    }

    fn rec() -> LinkRecord {
        LinkRecord::new(
            ProfileId::new(1).expect("non-zero"),
            LinkStatus::Active,
            at_millis(1),
            at_millis(1),
            at_millis(1),
            SealedTokens::new(vec![1]),
        )
    }

    /// A store that breaks the contract: blind writes (no compare-and-swap), versions that
    /// restart after a delete, and leases anyone can take.
    #[derive(Debug, Default)]
    struct BrokenStore {
        links: std::sync::Mutex<std::collections::HashMap<LinkKey, Versioned<LinkRecord>>>,
    }

    #[async_trait]
    impl TokenStore for BrokenStore {
        async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
            Ok(self.links.lock().unwrap().get(key).cloned())
        }
        async fn save(
            &self,
            key: &LinkKey,
            record: &LinkRecord,
            _expected: Option<Version>,
        ) -> Result<Version, StoreError> {
            let mut links = self.links.lock().unwrap();
            let version = Version::new(links.get(key).map_or(1, |v| v.version.get() + 1));
            let value = record.clone();
            links.insert(key.clone(), Versioned { version, value });
            Ok(version)
        }
        async fn delete(&self, key: &LinkKey) -> Result<bool, StoreError> {
            Ok(self.links.lock().unwrap().remove(key).is_some())
        }
        async fn acquire_lease(
            &self,
            _key: &LinkKey,
            _holder: LeaseHolder,
            _ttl: Duration,
        ) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn release_lease(&self, _: &LinkKey, _: LeaseHolder) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// A store without listing (the trait's default) passes the listing case by skipping it.
    #[tokio::test]
    async fn listing_case_skips_stores_that_cannot_list() {
        token_store::list_links_pages_in_user_order(&BrokenStore::default()).await;
    }

    /// The listing case is not vacuous: a store that lists in insertion order fails it.
    #[tokio::test]
    async fn listing_case_catches_unordered_pages() {
        #[derive(Debug, Default)]
        struct Unordered(MemoryTokenStore, std::sync::Mutex<Vec<LinkKey>>);
        #[async_trait]
        impl TokenStore for Unordered {
            async fn load(
                &self,
                key: &LinkKey,
            ) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
                self.0.load(key).await
            }
            async fn save(
                &self,
                key: &LinkKey,
                record: &LinkRecord,
                expected: Option<Version>,
            ) -> Result<Version, StoreError> {
                self.1.lock().unwrap().push(key.clone());
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
            async fn release_lease(
                &self,
                key: &LinkKey,
                holder: LeaseHolder,
            ) -> Result<(), StoreError> {
                self.0.release_lease(key, holder).await
            }
            async fn list_links(
                &self,
                environment: &str,
                client_id: &str,
                _after: Option<&UserId>,
                limit: usize,
            ) -> Result<LinkPage, StoreError> {
                let users = self
                    .1
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|k| k.environment() == environment && k.client_id() == client_id)
                    .map(|k| k.user().clone())
                    .take(limit)
                    .collect();
                Ok(LinkPage::new(users, limit))
            }
        }
        let outcome = tokio::spawn(async {
            token_store::list_links_pages_in_user_order(&Unordered::default()).await;
        })
        .await;
        assert!(outcome.is_err(), "an unordered listing passed");
    }

    /// The cases are not vacuous: each of these fails against the broken store.
    #[tokio::test]
    async fn the_suite_catches_a_broken_store() {
        macro_rules! must_fail {
            ($($case:ident),*) => {$(
                let outcome = tokio::spawn(async {
                    token_store::$case(&BrokenStore::default()).await;
                })
                .await;
                assert!(outcome.is_err(), concat!(stringify!($case), " passed a broken store"));
            )*};
        }
        must_fail!(
            insert_if_absent_conflicts,
            cas_conflict_changes_nothing,
            cas_on_absent_link_conflicts,
            stale_write_after_delete_and_relink_is_rejected,
            racing_inserts_one_wins,
            racing_cas_writes_one_wins,
            lease_is_exclusive,
            lease_is_released_only_by_its_holder,
            late_write_after_lease_expiry_is_rejected
        );
    }

    #[tokio::test]
    async fn faulty_store_fails_next_saves_then_recovers() {
        let store = FaultyStore::new(MemoryTokenStore::default());
        let observer = store.clone();
        observer.fail_next_saves(2);
        for _ in 0..2 {
            assert!(matches!(
                store.save(&key(), &rec(), None).await,
                Err(StoreError::Unavailable(_))
            ));
        }
        assert_eq!(store.inner().len(), 0, "a failed save wrote");
        assert_eq!(
            store.save(&key(), &rec(), None).await.unwrap(),
            Version::new(1)
        );
        assert_eq!((observer.save_calls(), observer.successful_saves()), (3, 1));
    }

    #[tokio::test]
    async fn faulty_store_lost_reply_writes() {
        let store = FaultyStore::new(MemoryTokenStore::default());
        store.lose_next_save_replies(1);
        let err = store.save(&key(), &rec(), None).await.unwrap_err();
        let StoreError::Unavailable(source) = err else {
            panic!("expected Unavailable");
        };
        assert!(source.downcast_ref::<InjectedFault>().is_some());
        assert_eq!(
            store.load(&key()).await.unwrap().unwrap().version,
            Version::new(1)
        );
    }

    #[tokio::test]
    async fn faulty_store_down_fails_everything() {
        let store = FaultyStore::new(MemoryTokenStore::default());
        store.set_down(true);
        assert!(store.load(&key()).await.is_err());
        assert!(store.save(&key(), &rec(), None).await.is_err());
        assert!(store.delete(&key()).await.is_err());
        assert!(store
            .acquire_lease(&key(), LeaseHolder::new(1), LONG_TTL)
            .await
            .is_err());
        assert!(store
            .release_lease(&key(), LeaseHolder::new(1))
            .await
            .is_err());
        store.set_down(false);
        assert!(store
            .acquire_lease(&key(), LeaseHolder::new(1), LONG_TTL)
            .await
            .unwrap());
        assert_eq!(store.lease_calls(), 2);

        let pending = FaultyStore::new(MemoryPendingStore::default());
        pending.set_fail_pending(true);
        assert!(pending
            .insert(&[0; 32], &key(), b"x", LONG_TTL)
            .await
            .is_err());
        assert!(pending.take(&[0; 32]).await.is_err());
    }

    #[tokio::test]
    async fn faulty_store_panics_on_command() {
        let store = FaultyStore::new(MemoryTokenStore::default());
        store.panic_next_saves(1);
        let clone = store.clone();
        let joined = tokio::spawn(async move { clone.save(&key(), &rec(), None).await }).await;
        assert!(joined.unwrap_err().is_panic());
        assert_eq!(
            store.save(&key(), &rec(), None).await.unwrap(),
            Version::new(1)
        );
    }
}
