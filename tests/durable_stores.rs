//! Durable, shared and encrypted token stores end to end (SQLite and PostgreSQL through
//! `WiseOAuth`, the demo app and the emulator):
//!
//! - several instances on one PostgreSQL database refresh an expired link exactly once;
//! - the instance holding the refresh lease dies mid-refresh: another one refreshes once
//!   the lease expired, and nothing is lost;
//! - after linking through the demo app, no token appears in a dump of the database;
//! - restarting the demo app on the same database keeps the link (no refresh needed);
//! - records are sealed (encrypted) with keys and plain without, and round-trip.
//!
//! The PostgreSQL tests need `WISE_TEST_DATABASE_URL` or `DATABASE_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`, set by `.ci/run`); without one they print
//! "SKIPPED" and pass. Each works in a schema of its own, dropped at the end.

#[path = "../examples/demo/mod.rs"]
mod demo;
// The behaviour suite's app helpers (`TestApp`, `Browser`); its cases run elsewhere.
mod pg_schema;
mod store_support;
#[allow(unused_macros, unused_imports)]
mod suite;

use std::time::Duration;

use demo::shared::Storage;
use pg_schema::{database_url, TestSchema};
use store_support::*;
use wise_oauth::{EncryptionKeys, TokenError, TokenStore, WiseOAuth};
use wise_oauth_mock::{Fault, MockWise};

// ----- the lease TTL setter ----------------------------------------------------------------

#[tokio::test]
async fn lease_ttl_is_validated() {
    let emulator = start_emulator().await;
    let build = |ttl: Option<Duration>| {
        let mut builder = WiseOAuth::builder(config(&emulator));
        if let Some(ttl) = ttl {
            builder = builder.lease_ttl(ttl);
        }
        builder.build()
    };
    assert!(build(None).is_ok(), "default");
    for ok in [2, 3, 30, 300] {
        assert!(build(Some(Duration::from_secs(ok))).is_ok(), "{ok} s");
    }
    for bad in [
        Duration::ZERO,
        Duration::from_secs(1),
        Duration::from_millis(1999),
        Duration::from_secs(301),
        Duration::from_secs(3600),
    ] {
        let err = build(Some(bad)).expect_err("out of range");
        assert!(err.to_string().contains("lease_ttl"), "{err}");
    }
}

// ----- several instances on one PostgreSQL database ----------------------------------------

/// Three instances (own caches and managers, own pools) × 100 concurrent requests for one
/// expired link: exactly one refresh at Wise, and all 300 get the same token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_refresh_an_expired_link_once() {
    let Some(url) = database_url("three_instances_refresh_an_expired_link_once") else {
        return;
    };
    let schema = TestSchema::new(url);
    let emulator = start_emulator().await;
    let keys = EncryptionKeys::new().key("k1", [7; 32]);
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(instance(
            &emulator,
            schema.store().await,
            Some(keys.clone()),
            Duration::from_secs(30),
        ));
    }
    herd_refreshes_once(&emulator, &instances).await;
}

/// The instance holding the lease dies mid-refresh (its runtime is shut down while Wise is
/// answering slowly): another instance refreshes once the lease expired, exactly one
/// refresh succeeds, and the stored refresh token is valid at Wise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_holder_killed_mid_refresh_loses_nothing() {
    let Some(url) = database_url("lease_holder_killed_mid_refresh_loses_nothing") else {
        return;
    };
    const LEASE: Duration = Duration::from_secs(2);
    let schema = TestSchema::new(url);
    let emulator = start_emulator().await;
    let b_store = schema.store().await;
    let b = instance(&emulator, b_store.clone(), None, LEASE);
    let user = user("killed");
    link(&b, &emulator, &user).await;
    emulator.advance_clock(PAST_EXPIRY);
    emulator.inject_fault(Fault::delay(
        "token:refresh_token",
        Duration::from_secs(120),
    ));

    // Instance A on a runtime (and thread) of its own; it starts the refresh.
    let a_store = schema.store().await; // a pool of its own, moved into A's runtime below
    let (a_runtime, _a_request) = {
        let (emulator, user) = (emulator.clone(), user.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let a = rt.block_on(async { instance(&emulator, a_store, None, LEASE) });
            let request = rt.spawn(async move { a.token(&user).await.map(|_| ()) });
            (rt, request)
        })
        .join()
        .expect("instance A's thread")
    };

    let c = instance(&emulator, schema.store().await, None, LEASE);
    killed_holder_loses_nothing(&emulator, a_runtime, &b, &b_store, &user, &c).await;
}

// ----- sealed records, with and without keys -----------------------------------------------

/// Links a user through a `WiseOAuth` without keys and one with keys, on `make()` stores:
/// the plain record holds the tokens in clear, the sealed one does not; both read back
/// (in fresh instances), and the sealed one only with the key.
async fn sealed_and_plain_records<S, F, Fut>(make: F)
where
    S: TokenStore + wise_oauth::PendingStore + Clone,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    let emulator = start_emulator().await;
    let keys = EncryptionKeys::new().key("k1", [1; 32]);
    let ttl = Duration::from_secs(30);
    for encrypted in [false, true] {
        let store = make().await;
        let keys_used = encrypted.then(|| keys.clone());
        let wise = instance(&emulator, store.clone(), keys_used.clone(), ttl);
        let user = user(if encrypted { "sealed" } else { "plain" });
        link(&wise, &emulator, &user).await;
        let tokens = emulator_tokens(&emulator);
        let record = store
            .load(&wise.link_key(&user))
            .await
            .expect("load")
            .expect("linked");
        let sealed = record.value.sealed_tokens.as_bytes();
        if encrypted {
            assert_no_token("sealed record", sealed, &tokens);
        } else {
            assert_eq!(plain_tokens(sealed), tokens, "the plain record");
        }
        // Round trip: a fresh instance (empty cache) reads the record from the store.
        let fresh = instance(&emulator, make().await, keys_used, ttl);
        let token = fresh.token(&user).await.expect("read back");
        assert_eq!(token.access_token().expose_secret(), tokens.0);
        if encrypted {
            let no_keys = instance(&emulator, make().await, None, ttl);
            let wrong = EncryptionKeys::new().key("k1", [2; 32]);
            let wrong_keys = instance(&emulator, make().await, Some(wrong), ttl);
            for (what, wise) in [("no keys", no_keys), ("a wrong key", wrong_keys)] {
                match wise.token(&user).await {
                    Err(TokenError::RelinkRequired) => {}
                    other => panic!("with {what}: expected TokenError::RelinkRequired (the record does not open), got {other:?}"),
                }
            }
        }
    }
    assert_eq!(emulator.stats().token_requests("refresh_token"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_records_are_sealed_with_keys_and_plain_without() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("wise.db").display());
    sealed_and_plain_records(|| {
        let url = url.clone();
        async move {
            wise_oauth::sqlx::SqliteTokenStore::connect(&url)
                .await
                .expect("SQLite store")
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_records_are_sealed_with_keys_and_plain_without() {
    let Some(url) = database_url("postgres_records_are_sealed_with_keys_and_plain_without") else {
        return;
    };
    let schema = TestSchema::new(url);
    sealed_and_plain_records(|| schema.store()).await;
}

// ----- the demo app on a durable store -----------------------------------------------------

/// Reads the SQLite database file and its write-ahead log.
fn sqlite_bytes(path: &std::path::Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).expect("database file");
    let wal = path.with_file_name(format!(
        "{}-wal",
        path.file_name().unwrap().to_string_lossy()
    ));
    if let Ok(more) = std::fs::read(wal) {
        bytes.extend(more);
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_demo_app_stores_no_token_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.db");
    let url = format!("sqlite:{}?mode=rwc", path.display());
    let emulator = MockWise::builder().start().await.unwrap();
    let storage = Storage::connect(&url).await.expect("SQLite storage");
    let demo = RunningDemo::start(&storage, &emulator).await;
    link_through_demo(&demo.app, "dana").await;
    let tokens = emulator_tokens(&emulator);
    let bytes = sqlite_bytes(&path);
    assert!(
        contains(&bytes, b"wise_oauth_links"),
        "the dump holds the tables"
    );
    assert_no_token("SQLite database file and WAL", &bytes, &tokens);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_demo_app_stores_no_token_in_clear() {
    let Some(url) = database_url("postgres_demo_app_stores_no_token_in_clear") else {
        return;
    };
    let schema = TestSchema::new(url);
    let emulator = MockWise::builder().start().await.unwrap();
    let storage = Storage::durable("PostgreSQL", schema.store().await);
    let demo = RunningDemo::start(&storage, &emulator).await;
    link_through_demo(&demo.app, "dana").await;
    let tokens = emulator_tokens(&emulator);
    let dump = schema.dump().await;
    assert!(
        dump.contains(&PERSONAL.to_string()),
        "the dump holds the link: {dump}"
    );
    assert_no_token("PostgreSQL dump", dump.as_bytes(), &tokens);
    demo.stop().await;
}

/// Link, stop the app, start it again on the same database (`reopen`): still linked, same
/// token, no refresh and no new code exchange.
async fn restart_keeps_the_link<F, Fut>(reopen: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Storage>,
{
    let emulator = MockWise::builder().start().await.unwrap();
    let first = RunningDemo::start(&reopen().await, &emulator).await;
    let before = link_through_demo(&first.app, "erin").await;
    first.stop().await;

    let second = RunningDemo::start(&reopen().await, &emulator).await;
    // Demo sessions live in memory: log in again.
    let browser = second.app.browser("erin").await;
    let status = browser.status().await;
    assert_eq!(status["linked"], true, "{status}");
    assert_eq!(status["profile_id"], PERSONAL);
    assert_eq!(fingerprint(&browser).await, before, "the same token");
    assert_eq!(second.app.refresh_calls(), 0, "no refresh needed");
    assert_eq!(second.app.code_calls(), 1, "linked once");
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restart_keeps_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("demo.db").display());
    restart_keeps_the_link(|| {
        let url = url.clone();
        async move { Storage::connect(&url).await.expect("SQLite storage") }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_keeps_the_link() {
    let Some(url) = database_url("postgres_restart_keeps_the_link") else {
        return;
    };
    let schema = TestSchema::new(url);
    restart_keeps_the_link(|| async { Storage::durable("PostgreSQL", schema.store().await) }).await;
}

#[test]
fn storage_refuses_other_urls() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(Storage::connect("mysql://localhost/db"))
        .expect_err("not supported");
    assert!(err.contains("sqlite:"), "{err}");
}
