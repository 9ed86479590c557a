//! Pending-flow floods against every built-in pending store, through `WiseOAuth` and the
//! emulator: one owner starting flow after flow pushes out only its own oldest flows, many
//! owners filling the store are refused (503) rather than evicting anyone, and a flow
//! started before the flood still completes. Memory, SQLite and PostgreSQL (the latter
//! needs `DATABASE_URL`, else it prints "SKIPPED" and passes; it works in a schema of its
//! own). Redis runs the same scenario in `tests/redis_store.rs`.

#[path = "../examples/demo/mod.rs"]
mod demo;
mod pg_schema;
mod store_support;
#[allow(unused_macros, unused_imports)]
mod suite;

use pg_schema::{database_url, TestSchema};
use store_support::*;
use wise_oauth::sqlx::{PostgresTokenStore, SqliteTokenStore};
use wise_oauth::{MemoryPendingStore, MemoryTokenStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_pending_store_flood() {
    let emulator = start_emulator().await;
    flood_spares_other_owners(
        &emulator,
        MemoryTokenStore::default(),
        MemoryPendingStore::with_capacity(6),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_pending_store_flood() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("wise.db").display());
    let pool = sqlx_sqlite_pool(&url).await;
    let store = SqliteTokenStore::builder(pool)
        .max_pending_flows(20)
        .build()
        .await
        .expect("SQLite store");
    let emulator = start_emulator().await;
    flood_spares_other_owners(&emulator, store.clone(), store).await;
}

async fn sqlx_sqlite_pool(url: &str) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(url).await.expect("SQLite pool")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pending_store_flood() {
    let Some(url) = database_url("postgres_pending_store_flood") else {
        return;
    };
    let schema = TestSchema::new(url);
    let store = PostgresTokenStore::builder(schema.pool().await)
        .schema(schema.name())
        .max_pending_flows(20)
        .build()
        .await
        .expect("PostgreSQL store");
    let emulator = start_emulator().await;
    flood_spares_other_owners(&emulator, store.clone(), store).await;
}
