//! `SqliteTokenStore`: the conformance suite, restarts, migrations, corrupt rows, outages.
#![cfg(feature = "sqlite")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{assert_corrupt, assert_unavailable, key, record, Guarded};
use sqlx::SqlitePool;
use tempfile::TempDir;
use wise_oauth_core::{LeaseHolder, PendingStore, StoreError, TokenStore, Version};
use wise_oauth_sqlx::{SetupError, SqliteTokenStore};

fn url(dir: &Path) -> String {
    format!("sqlite:{}?mode=rwc", dir.join("links.db").display())
}

/// A store in a fresh file in a fresh temp dir (removed when the store is dropped).
async fn fresh() -> Guarded<SqliteTokenStore> {
    let dir = TempDir::new().unwrap();
    let store = SqliteTokenStore::connect(&url(dir.path())).await.unwrap();
    Guarded {
        store,
        _guard: Box::new(dir),
    }
}

wise_oauth_core::token_store_conformance!(sqlite_tokens, async { crate::fresh().await });
wise_oauth_core::pending_store_conformance!(sqlite_pending, async { crate::fresh().await });

#[tokio::test]
async fn listing_is_supported() {
    common::assert_lists_links(&fresh().await).await;
}

#[tokio::test]
async fn links_are_found_by_wise_user() {
    common::assert_finds_links_of_wise_user(&fresh().await).await;
}

/// A database made before the Wise user id existed (schema 1): the migration adds the
/// column; the old row reads back without a Wise user id, and can then be given one.
#[tokio::test]
async fn an_old_schema_row_gains_the_wise_user_column() {
    let dir = TempDir::new().unwrap();
    let store = SqliteTokenStore::connect(&url(dir.path())).await.unwrap();
    let pool = store.pool().clone();
    // Back to schema 1, with a link written by that version.
    for statement in [
        "DROP INDEX wise_oauth_links_wise_user",
        "ALTER TABLE wise_oauth_links DROP COLUMN wise_user_id",
        "DELETE FROM wise_oauth_migrations WHERE version > 1",
        "INSERT INTO wise_oauth_links (environment, client_id, user_id, profile_id, status,
             access_expires_at, linked_at, updated_at, sealed_tokens, version)
         VALUES ('sandbox', 'client-1', 'old', 7, 'active', 1, 1, 1, X'0102', 3)",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    assert_eq!(migrations(&pool, "wise_oauth_").await, vec![1]);
    let store = SqliteTokenStore::connect(&url(dir.path())).await.unwrap();
    let expected: Vec<i64> = (1..=SqliteTokenStore::SCHEMA_VERSION).collect();
    assert_eq!(migrations(store.pool(), "wise_oauth_").await, expected);
    let old = store.load(&key("old")).await.unwrap().unwrap();
    assert_eq!(old.version, Version::new(3));
    assert_eq!(old.value.wise_user_id, None);
    assert_eq!(old.value.sealed_tokens.as_bytes(), [1, 2]);
    assert!(store
        .links_of_wise_user("sandbox", "client-1", 10000001)
        .await
        .unwrap()
        .is_empty());
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

#[tokio::test]
async fn restart_keeps_link_version_lease_and_pending_flow() {
    let dir = TempDir::new().unwrap();
    let k = key("restart");
    {
        let store = SqliteTokenStore::connect(&url(dir.path())).await.unwrap();
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
    let store = SqliteTokenStore::connect(&url(dir.path())).await.unwrap();
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

async fn migrations(pool: &SqlitePool, prefix: &str) -> Vec<i64> {
    sqlx::query_scalar(&format!(
        "SELECT version FROM {prefix}migrations ORDER BY version"
    ))
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn migration_is_idempotent_and_safe_concurrently() {
    let dir = TempDir::new().unwrap();
    let url = url(dir.path());
    // Three pools create the same fresh file at once.
    let connect = || {
        let url = url.clone();
        async move { SqliteTokenStore::connect(&url).await }
    };
    let results = futures_join3(connect(), connect(), connect()).await;
    let stores: Vec<SqliteTokenStore> = results.into_iter().map(Result::unwrap).collect();
    stores[0]
        .save(&key("u"), &record(1, b"x"), None)
        .await
        .unwrap();
    // And again, sequentially, over the existing tables.
    let again = SqliteTokenStore::connect(&url).await.unwrap();
    again.migrate().await.unwrap();
    let expected: Vec<i64> = (1..=SqliteTokenStore::SCHEMA_VERSION).collect();
    assert_eq!(migrations(again.pool(), "wise_oauth_").await, expected);
    assert_eq!(
        again.load(&key("u")).await.unwrap().unwrap().version,
        Version::new(1)
    );
}

async fn futures_join3<T>(
    a: impl std::future::Future<Output = T> + Send + 'static,
    b: impl std::future::Future<Output = T> + Send + 'static,
    c: impl std::future::Future<Output = T> + Send + 'static,
) -> Vec<T>
where
    T: Send + 'static,
{
    let (a, b, c) = (tokio::spawn(a), tokio::spawn(b), tokio::spawn(c));
    vec![a.await.unwrap(), b.await.unwrap(), c.await.unwrap()]
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let store = fresh().await;
    sqlx::query("INSERT INTO wise_oauth_migrations (version, applied_at) VALUES (999, 0)")
        .execute(store.store.pool())
        .await
        .unwrap();
    match store.store.migrate().await {
        Err(SetupError::SchemaTooNew { found: 999, .. }) => {}
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn table_prefixes_are_separate_and_validated() {
    let dir = TempDir::new().unwrap();
    let pool = SqlitePool::connect(&url(dir.path())).await.unwrap();
    let a = SqliteTokenStore::builder(pool.clone())
        .table_prefix("app_a_")
        .build()
        .await
        .unwrap();
    let b = SqliteTokenStore::builder(pool.clone())
        .build()
        .await
        .unwrap();
    a.save(&key("u"), &record(1, b"a"), None).await.unwrap();
    assert_eq!(b.load(&key("u")).await.unwrap(), None);
    let expected: Vec<i64> = (1..=SqliteTokenStore::SCHEMA_VERSION).collect();
    assert_eq!(migrations(&pool, "app_a_").await, expected);
    for bad in ["x; DROP TABLE y", "Upper", "1x", "a\"b"] {
        match SqliteTokenStore::builder(pool.clone())
            .table_prefix(bad)
            .build()
            .await
        {
            Err(SetupError::InvalidName { .. }) => {}
            other => panic!("{bad:?}: expected InvalidName, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn undecodable_rows_are_corrupt_not_absent() {
    let store = fresh().await;
    let pool = store.store.pool();
    for (user, column, value) in [
        ("bad-status", "status", "'ACTIVE'"),
        ("zero-version", "version", "0"),
        ("negative-version", "version", "-3"),
        ("zero-profile", "profile_id", "0"),
    ] {
        let k = key(user);
        store.save(&k, &record(5, b"x"), None).await.unwrap();
        sqlx::query(&format!(
            "UPDATE wise_oauth_links SET {column} = {value} WHERE user_id = ?1"
        ))
        .bind(user)
        .execute(pool)
        .await
        .unwrap();
        assert_corrupt(user, store.load(&k).await);
    }
}

#[tokio::test]
async fn unlink_wipes_the_tokens_and_relink_continues_versions() {
    let store = fresh().await;
    let k = key("u");
    let v1 = store
        .save(&k, &record(5, b"secret sealed tokens"), None)
        .await
        .unwrap();
    store
        .save(&k, &record(5, b"secret sealed tokens 2"), Some(v1))
        .await
        .unwrap();
    assert!(store.delete(&k).await.unwrap());
    let (tokens, profile): (Vec<u8>, i64) = sqlx::query_as(
        "SELECT sealed_tokens, profile_id FROM wise_oauth_links WHERE user_id = 'u'",
    )
    .fetch_one(store.store.pool())
    .await
    .unwrap();
    assert!(
        tokens.is_empty(),
        "unlink left the sealed tokens in the database"
    );
    assert_eq!(profile, 0);
    assert_eq!(store.load(&k).await.unwrap(), None);
    assert_eq!(
        store.save(&k, &record(6, b"new"), None).await.unwrap(),
        Version::new(3)
    );
}

#[tokio::test]
async fn expired_pending_flows_are_purged_and_the_cap_holds() {
    let store = fresh().await;
    let k = key("u");
    for i in 0..5u8 {
        store
            .insert(&[i; 32], &k, b"short", Duration::from_millis(1))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let other = key("other");
    store
        .insert(&[100; 32], &other, b"live", Duration::from_secs(60))
        .await
        .unwrap();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM wise_oauth_pending")
        .fetch_one(store.store.pool())
        .await
        .unwrap();
    assert_eq!(count, 1, "expired flows were not purged");
    for i in 0..20u8 {
        store
            .insert(&[i + 1; 32], &other, b"flood", Duration::from_secs(60))
            .await
            .unwrap();
    }
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM wise_oauth_pending")
        .fetch_one(store.store.pool())
        .await
        .unwrap();
    assert_eq!(count as usize, wise_oauth_core::MAX_PENDING_PER_USER);
}

#[tokio::test]
async fn closed_database_is_unavailable_not_absent() {
    let store = fresh().await;
    let k = key("u");
    store.save(&k, &record(1, b"x"), None).await.unwrap();
    store.store.pool().close().await;
    assert_unavailable("load", store.load(&k).await);
    assert_unavailable(
        "save",
        store
            .save(&k, &record(1, b"y"), Some(Version::new(1)))
            .await,
    );
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
}

#[tokio::test]
async fn missing_directory_is_a_setup_error() {
    let dir = TempDir::new().unwrap();
    let url = format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("no/such/dir/x.db").display()
    );
    match SqliteTokenStore::connect(&url).await {
        Err(SetupError::Connect(_)) => {}
        other => panic!("expected SetupError::Connect, got {other:?}"),
    }
}

#[tokio::test]
async fn debug_shows_no_path() {
    let dir = TempDir::new().unwrap();
    let store = SqliteTokenStore::connect(&url(dir.path())).await.unwrap();
    let debug = format!("{store:?}");
    assert!(debug.contains("SqliteTokenStore"), "{debug}");
    assert!(
        !debug.contains("links.db"),
        "Debug shows the database path: {debug}"
    );
    let builder = format!("{:?}", SqliteTokenStore::builder(store.pool().clone()));
    assert!(!builder.contains("links.db"), "{builder}");
}

#[tokio::test]
async fn in_memory_database_keeps_its_data() {
    let store = SqliteTokenStore::connect("sqlite::memory:").await.unwrap();
    store.save(&key("u"), &record(1, b"x"), None).await.unwrap();
    assert_eq!(
        store.load(&key("u")).await.unwrap().unwrap().version,
        Version::new(1)
    );
    assert!(matches!(
        store.save(&key("u"), &record(1, b"x"), None).await,
        Err(StoreError::Conflict)
    ));
}
