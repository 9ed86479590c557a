//! `PostgresTokenStore`: the conformance suite, several instances racing, restarts,
//! migrations, corrupt rows and a database that is down.
//!
//! Needs `WISE_TEST_DATABASE_URL` or `DATABASE_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`); without one the database tests print
//! "SKIPPED" and pass. Each test works in a schema of its own, dropped at the end.
#![cfg(feature = "postgres")]

mod common;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use common::{assert_corrupt, assert_unavailable, key, record, unique_suffix, Guarded};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Connection;
use wise_oauth_core::{LeaseHolder, PendingStore, StoreError, TokenStore, UserId, Version};
use wise_oauth_sqlx::{PostgresTokenStore, SetupError};

fn database_url(test: &str) -> Option<String> {
    let url = std::env::var("WISE_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!(
            "SKIPPED {test}: set DATABASE_URL or WISE_TEST_DATABASE_URL \
             (e.g. postgres://postgres@127.0.0.1:5432/test) to run the PostgreSQL store tests"
        );
    }
    url
}

/// A schema of one test; dropped (with everything in it) when this is dropped, also when
/// the test panics.
struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    fn new(url: String) -> Self {
        Self {
            url,
            name: format!("wise_test_{}", unique_suffix()),
        }
    }

    async fn pool(&self) -> PgPool {
        // Tagged with the schema name, so the cleanup can end this test's connections.
        let options = PgConnectOptions::from_str(&self.url)
            .expect("a valid database URL")
            .application_name(&self.name);
        PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .expect("connect to the test database")
    }

    async fn store(&self) -> PostgresTokenStore {
        PostgresTokenStore::builder(self.pool().await)
            .schema(&self.name)
            .build()
            .await
            .expect("build the store")
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: clean up on a thread with a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                // The test's pools may still be open (their runtime is blocked by this drop).
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&name)
                .execute(&mut conn)
                .await?;
                sqlx::query("SET lock_timeout = '20s'")
                    .execute(&mut conn)
                    .await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        });
        if let Ok(Err(err)) = cleanup.join() {
            eprintln!("could not drop test schema {}: {err}", self.name);
        }
    }
}

/// A fresh store in a fresh schema (for the conformance cases), or `None` when skipped.
async fn fresh(test: &str) -> Option<Guarded<PostgresTokenStore>> {
    let schema = TestSchema::new(database_url(test)?);
    let store = schema.store().await;
    Some(Guarded {
        store,
        _guard: Box::new(schema),
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

#[tokio::test]
async fn listing_is_supported() {
    let Some(store) = fresh("listing_is_supported").await else {
        return;
    };
    common::assert_lists_links(&store).await;
}

#[tokio::test]
async fn links_are_found_by_wise_user() {
    let Some(store) = fresh("links_are_found_by_wise_user").await else {
        return;
    };
    common::assert_finds_links_of_wise_user(&store).await;
}

/// A database made before the Wise user id existed (schema 2): the migration adds the
/// column; the old row reads back without a Wise user id, and can then be given one.
#[tokio::test]
async fn an_old_schema_row_gains_the_wise_user_column() {
    let Some(url) = database_url("an_old_schema_row_gains_the_wise_user_column") else {
        return;
    };
    let schema = TestSchema::new(url);
    let store = schema.store().await;
    let s = &schema.name;
    // Back to schema 2, with a link written by that version.
    for statement in [
        format!(r#"DROP INDEX "{s}".wise_oauth_links_wise_user"#),
        format!(r#"ALTER TABLE "{s}".wise_oauth_links DROP COLUMN wise_user_id"#),
        format!(r#"DELETE FROM "{s}".wise_oauth_migrations WHERE version > 2"#),
        format!(
            r#"INSERT INTO "{s}".wise_oauth_links (environment, client_id, user_id, profile_id,
                 status, access_expires_at, linked_at, updated_at, sealed_tokens, version)
             VALUES ('sandbox', 'client-1', 'old', 7, 'active', 1, 1, 1, '\x0102', 3)"#
        ),
    ] {
        sqlx::query(&statement).execute(store.pool()).await.unwrap();
    }
    assert_eq!(migrations(store.pool(), s).await, vec![1, 2]);
    let store = schema.store().await;
    let expected: Vec<i64> = (1..=PostgresTokenStore::SCHEMA_VERSION).collect();
    assert_eq!(migrations(store.pool(), s).await, expected);
    let old = store.load(&key("old")).await.unwrap().unwrap();
    assert_eq!(old.version, Version::new(3));
    assert_eq!(old.value.wise_user_id, None);
    assert_eq!(old.value.sealed_tokens.as_bytes(), [1, 2]);
    let relinked = old.value.clone().with_wise_user_id(Some(10000001));
    store
        .save(&key("old"), &relinked, Some(old.version))
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
    let store = Arc::new(store);
    wise_oauth_core::conformance::run_token_store_suite(|| SharedStore(store.clone())).await;
    wise_oauth_core::conformance::run_pending_store_suite(|| SharedStore(store.clone())).await;
}

/// `Arc` of a store as a store (the suites build one per case).
#[derive(Debug)]
struct SharedStore(Arc<Guarded<PostgresTokenStore>>);

#[async_trait::async_trait]
impl TokenStore for SharedStore {
    async fn load(
        &self,
        key: &wise_oauth_core::LinkKey,
    ) -> Result<Option<wise_oauth_core::Versioned<wise_oauth_core::LinkRecord>>, StoreError> {
        self.0.load(key).await
    }
    async fn save(
        &self,
        key: &wise_oauth_core::LinkKey,
        record: &wise_oauth_core::LinkRecord,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        self.0.save(key, record, expected).await
    }
    async fn delete(&self, key: &wise_oauth_core::LinkKey) -> Result<bool, StoreError> {
        self.0.delete(key).await
    }
    async fn acquire_lease(
        &self,
        key: &wise_oauth_core::LinkKey,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.0.acquire_lease(key, holder, ttl).await
    }
    async fn release_lease(
        &self,
        key: &wise_oauth_core::LinkKey,
        holder: LeaseHolder,
    ) -> Result<(), StoreError> {
        self.0.release_lease(key, holder).await
    }
    async fn list_links(
        &self,
        environment: &str,
        client_id: &str,
        after: Option<&wise_oauth_core::UserId>,
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

#[async_trait::async_trait]
impl PendingStore for SharedStore {
    async fn insert(
        &self,
        state_hash: &[u8; 32],
        owner: &wise_oauth_core::LinkKey,
        pending: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.0.insert(state_hash, owner, pending, ttl).await
    }
    async fn take(&self, state_hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.take(state_hash).await
    }
}

#[tokio::test]
async fn restart_keeps_link_version_lease_and_pending_flow() {
    let Some(url) = database_url("restart") else {
        return;
    };
    let schema = TestSchema::new(url);
    let k = key("restart");
    {
        let store = schema.store().await;
        let v1 = store.save(&k, &record(7, b"first"), None).await.unwrap();
        store
            .save(&k, &record(7, b"second"), Some(v1))
            .await
            .unwrap();
        assert!(store
            .acquire_lease(&k, LeaseHolder::new(1), Duration::from_secs(60))
            .await
            .unwrap());
        store
            .insert(&[9; 32], &k, b"flow", Duration::from_secs(60))
            .await
            .unwrap();
        store.pool().close().await;
    }
    let store = schema.store().await;
    let stored = store
        .load(&k)
        .await
        .unwrap()
        .expect("link survived the restart");
    assert_eq!(stored.version, Version::new(2));
    assert_eq!(stored.value, record(7, b"second"));
    assert!(!store
        .acquire_lease(&k, LeaseHolder::new(2), Duration::from_secs(60))
        .await
        .unwrap());
    assert_eq!(
        store.take(&[9; 32]).await.unwrap().as_deref(),
        Some(&b"flow"[..])
    );
}

/// Three instances (three pools) on one schema: of racing CAS writes, inserts and lease
/// grabs exactly one wins; a flow started on one instance completes on another, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_race_one_winner() {
    let Some(url) = database_url("three_instances_race_one_winner") else {
        return;
    };
    let schema = TestSchema::new(url);
    let instances = [
        schema.store().await,
        schema.store().await,
        schema.store().await,
    ];

    for round in 0..5 {
        let k = key(&format!("race-{round}"));
        // Racing inserts of a new link.
        let inserts = futures::future::join_all((0..30).map(|i| {
            let store = instances[i % 3].clone();
            let k = k.clone();
            tokio::spawn(async move { store.save(&k, &record(1, &[i as u8]), None).await })
        }))
        .await;
        let won: Vec<Version> = inserts
            .into_iter()
            .map(|r| r.unwrap())
            .filter_map(|r| match r {
                Ok(v) => Some(v),
                Err(StoreError::Conflict) => None,
                Err(e) => panic!("unexpected {e:?}"),
            })
            .collect();
        assert_eq!(won, vec![Version::new(1)], "racing inserts");

        // Racing CAS writes from version 1.
        let writes = futures::future::join_all((0..30).map(|i| {
            let store = instances[i % 3].clone();
            let k = k.clone();
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
            .map(|r| r.unwrap())
            .filter_map(|r| match r {
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

        // Racing lease grabs by 30 holders.
        let grabs = futures::future::join_all((0..30u128).map(|h| {
            let store = instances[h as usize % 3].clone();
            let k = k.clone();
            tokio::spawn(async move {
                store
                    .acquire_lease(&k, LeaseHolder::new(h + 1), Duration::from_secs(60))
                    .await
            })
        }))
        .await;
        let holders: Vec<usize> = grabs
            .into_iter()
            .enumerate()
            .filter_map(|(h, r)| r.unwrap().unwrap().then_some(h))
            .collect();
        assert_eq!(holders.len(), 1, "racing leases: {holders:?}");
    }

    // A link flow started on instance 0 completes on instance 1, exactly once.
    instances[0]
        .insert(&[42; 32], &key("flow"), b"pending", Duration::from_secs(60))
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

async fn migrations(pool: &PgPool, schema: &str) -> Vec<i64> {
    sqlx::query_scalar(&format!(
        "SELECT version FROM \"{schema}\".wise_oauth_migrations ORDER BY version"
    ))
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migration_is_idempotent_and_safe_concurrently() {
    let Some(url) = database_url("migration_is_idempotent_and_safe_concurrently") else {
        return;
    };
    let schema = Arc::new(TestSchema::new(url));
    // Three instances start at once on a schema that does not exist yet.
    let starts = futures::future::join_all((0..3).map(|_| {
        let schema = schema.clone();
        tokio::spawn(async move {
            PostgresTokenStore::builder(schema.pool().await)
                .schema(&schema.name)
                .build()
                .await
        })
    }))
    .await;
    let stores: Vec<PostgresTokenStore> = starts.into_iter().map(|r| r.unwrap().unwrap()).collect();
    stores[0]
        .save(&key("u"), &record(1, b"x"), None)
        .await
        .unwrap();
    // Starting again over existing tables changes nothing.
    let again = schema.store().await;
    again.migrate().await.unwrap();
    let expected: Vec<i64> = (1..=PostgresTokenStore::SCHEMA_VERSION).collect();
    assert_eq!(migrations(again.pool(), &schema.name).await, expected);
    assert_eq!(
        stores[2].load(&key("u")).await.unwrap().unwrap().version,
        Version::new(1)
    );
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let Some(url) = database_url("newer_schema_is_refused") else {
        return;
    };
    let schema = TestSchema::new(url);
    let store = schema.store().await;
    sqlx::query(&format!(
        "INSERT INTO \"{}\".wise_oauth_migrations (version) VALUES (999)",
        schema.name
    ))
    .execute(store.pool())
    .await
    .unwrap();
    match store.migrate().await {
        Err(SetupError::SchemaTooNew { found: 999, .. }) => {}
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn prefixes_and_schemas_are_separate_and_validated() {
    let Some(url) = database_url("prefixes_and_schemas_are_separate_and_validated") else {
        return;
    };
    let schema = TestSchema::new(url);
    let pool = schema.pool().await;
    let a = PostgresTokenStore::builder(pool.clone())
        .schema(&schema.name)
        .table_prefix("app_a_")
        .build()
        .await
        .unwrap();
    let b = PostgresTokenStore::builder(pool.clone())
        .schema(&schema.name)
        .build()
        .await
        .unwrap();
    a.save(&key("u"), &record(1, b"a"), None).await.unwrap();
    assert_eq!(b.load(&key("u")).await.unwrap(), None);
    for bad in ["x; DROP TABLE y", "Upper", "1x", "a\"b", "public.x"] {
        let result = PostgresTokenStore::builder(pool.clone())
            .table_prefix(bad)
            .build()
            .await;
        assert!(
            matches!(result, Err(SetupError::InvalidName { .. })),
            "prefix {bad:?}"
        );
        let result = PostgresTokenStore::builder(pool.clone())
            .schema(bad)
            .build()
            .await;
        assert!(
            matches!(result, Err(SetupError::InvalidName { .. })),
            "schema {bad:?}"
        );
    }
}

#[tokio::test]
async fn undecodable_rows_are_corrupt_not_absent() {
    let Some(url) = database_url("undecodable_rows_are_corrupt_not_absent") else {
        return;
    };
    let schema = TestSchema::new(url);
    let store = schema.store().await;
    for (user, column, value) in [
        ("bad-status", "status", "'ACTIVE'"),
        ("zero-version", "version", "0"),
        ("negative-version", "version", "-3"),
        ("zero-profile", "profile_id", "0"),
    ] {
        let k = key(user);
        store.save(&k, &record(5, b"x"), None).await.unwrap();
        sqlx::query(&format!(
            "UPDATE \"{}\".wise_oauth_links SET {column} = {value} WHERE user_id = $1",
            schema.name
        ))
        .bind(user)
        .execute(store.pool())
        .await
        .unwrap();
        assert_corrupt(user, store.load(&k).await);
    }
}

#[tokio::test]
async fn unlink_wipes_the_tokens() {
    let Some(url) = database_url("unlink_wipes_the_tokens") else {
        return;
    };
    let schema = TestSchema::new(url);
    let store = schema.store().await;
    let k = key("u");
    store
        .save(&k, &record(5, b"secret sealed tokens"), None)
        .await
        .unwrap();
    assert!(store.delete(&k).await.unwrap());
    let (tokens, profile): (Vec<u8>, i64) = sqlx::query_as(&format!(
        "SELECT sealed_tokens, profile_id FROM \"{}\".wise_oauth_links WHERE user_id = 'u'",
        schema.name
    ))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert!(
        tokens.is_empty(),
        "unlink left the sealed tokens in the database"
    );
    assert_eq!(profile, 0);
    assert_eq!(
        store.save(&k, &record(6, b"new"), None).await.unwrap(),
        Version::new(2)
    );
}

#[tokio::test]
async fn lease_expiry_follows_the_database_clock() {
    let Some(url) = database_url("lease_expiry_follows_the_database_clock") else {
        return;
    };
    let schema = TestSchema::new(url);
    let store = schema.store().await;
    let k = key("u");
    assert!(store
        .acquire_lease(&k, LeaseHolder::new(1), Duration::from_secs(30))
        .await
        .unwrap());
    let remaining: f64 = sqlx::query_scalar(&format!(
        "SELECT extract(epoch FROM until - now())::float8 FROM \"{}\".wise_oauth_leases",
        schema.name
    ))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert!(
        (25.0..=30.0).contains(&remaining),
        "lease ends {remaining} s from the db's now()"
    );
    // Moving the database's notion of the lease end into the past frees it: no local clock.
    sqlx::query(&format!(
        "UPDATE \"{}\".wise_oauth_leases SET until = now() - interval '1 second'",
        schema.name
    ))
    .execute(store.pool())
    .await
    .unwrap();
    assert!(store
        .acquire_lease(&k, LeaseHolder::new(2), Duration::from_secs(30))
        .await
        .unwrap());
}

#[tokio::test]
async fn expired_pending_flows_are_purged_and_the_cap_holds() {
    let Some(url) = database_url("expired_pending_flows_are_purged") else {
        return;
    };
    let schema = TestSchema::new(url);
    let store = schema.store().await;
    let count = || {
        let sql = format!(
            "SELECT COUNT(*) FROM \"{}\".wise_oauth_pending",
            schema.name
        );
        let pool = store.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(&sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    for i in 0..5u8 {
        store
            .insert(&[i; 32], &key("u"), b"short", Duration::from_millis(1))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    store
        .insert(&[100; 32], &key("other"), b"live", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(count().await, 1, "expired flows were not purged");
    for i in 0..20u8 {
        store
            .insert(
                &[i + 1; 32],
                &key("other"),
                b"flood",
                Duration::from_secs(60),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        count().await as usize,
        wise_oauth_core::MAX_PENDING_PER_USER
    );
}

/// A database that is down: setup fails with a Connect error, and a store built without
/// migrating answers Unavailable (never "absent") on every call. Needs no database.
#[tokio::test]
async fn database_down_is_unavailable_not_absent() {
    let url = "postgres://wise:hunter2@127.0.0.1:1/nothing";
    let started = std::time::Instant::now();
    let err = PostgresTokenStore::connect(url).await.unwrap_err();
    assert!(matches!(err, SetupError::Connect(_)), "{err:?}");
    let shown = format!("{err:?} {err}");
    assert!(!shown.contains("hunter2"), "the password leaked: {shown}");

    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy(url)
        .unwrap();
    let store = PostgresTokenStore::builder(pool)
        .auto_migrate(false)
        .build()
        .await
        .unwrap();
    let debug = format!("{store:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("wise:"),
        "{debug}"
    );
    let k = key("u");
    assert_unavailable("load", store.load(&k).await);
    assert_unavailable("save", store.save(&k, &record(1, b"x"), None).await);
    assert_unavailable("delete", store.delete(&k).await);
    assert_unavailable(
        "lease",
        store
            .acquire_lease(&k, LeaseHolder::new(1), Duration::from_secs(1))
            .await,
    );
    assert_unavailable(
        "release",
        store.release_lease(&k, LeaseHolder::new(1)).await,
    );
    assert_unavailable(
        "insert",
        store
            .insert(&[1; 32], &k, b"p", Duration::from_secs(1))
            .await,
    );
    assert_unavailable("take", store.take(&[1; 32]).await);
    match store.migrate().await {
        Err(SetupError::Connect(_)) => {}
        other => panic!("expected SetupError::Connect, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "outage detection took too long"
    );
}

#[tokio::test]
async fn debug_hides_the_password() {
    let Some(url) = database_url("debug_hides_the_password") else {
        return;
    };
    let schema = TestSchema::new(url);
    let store = schema.store().await;
    let debug = format!("{store:?}");
    assert!(debug.contains(&schema.name), "{debug}");
    assert!(
        !debug.contains("postgres://") && !debug.contains("password"),
        "{debug}"
    );
}
