//! The encryption policy end to end (the library on the emulator, memory, SQLite and
//! PostgreSQL stores):
//!
//! - a durable store in production without keys is a build error, unless the app opts out
//!   with `allow_unencrypted_store()`;
//! - a record sealed under an older key is re-sealed under the primary key on its next
//!   write (a refresh);
//! - `WiseOAuth::reseal` walks every link of a listing store and reports what it did (also
//!   racing refreshes, and moving a store written in clear to encryption);
//! - a record the configured keys cannot open is reported (key ids, no key material) and
//!   offered a re-link through the axum extractor, never a 500 and never deleted.
//!
//! The PostgreSQL test needs `WISE_TEST_DATABASE_URL` or `DATABASE_URL`; without one it
//! prints "SKIPPED" and passes.

#[path = "../examples/demo/mod.rs"]
mod demo;
mod pg_schema;
mod store_support;
#[allow(unused_macros, unused_imports)]
mod suite;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use demo::shared::EmulatorClock;
use pg_schema::{database_url, TestSchema};
use store_support::*;
use wise_oauth::axum::{WiseRoutes, WiseToken};
use wise_oauth::{
    ClientSecret, ConfigError, EncryptionKeys, Environment, MemoryTokenStore, TokenError,
    TokenStore, UserId, WiseConfig, WiseOAuth,
};
use wise_oauth_mock::MockWiseHandle;

fn k0() -> EncryptionKeys {
    EncryptionKeys::new().key("k0", [10; 32])
}

fn k1() -> EncryptionKeys {
    EncryptionKeys::new().key("k1", [11; 32])
}

/// After the rotation: k2 is the primary key, k1 still opens old records.
fn k2_k1() -> EncryptionKeys {
    EncryptionKeys::new()
        .key("k2", [12; 32])
        .key("k1", [11; 32])
}

fn k2() -> EncryptionKeys {
    EncryptionKeys::new().key("k2", [12; 32])
}

/// An app instance on `store` (its own pending store) with `keys`, on the emulator's clock.
fn app(
    emulator: &MockWiseHandle,
    store: &(impl TokenStore + Clone),
    keys: EncryptionKeys,
) -> WiseOAuth {
    WiseOAuth::builder(config(emulator))
        .store(store.clone())
        .encryption(keys)
        .clock(EmulatorClock(emulator.clone()))
        .build()
        .expect("wise-oauth")
}

/// The key id in a stored record's header (`None` for a plain record).
async fn stored_key_id(store: &impl TokenStore, wise: &WiseOAuth, user: &UserId) -> Option<String> {
    let record = store
        .load(&wise.link_key(user))
        .await
        .expect("load")
        .expect("linked");
    let sealed = record.value.sealed_tokens.as_bytes();
    match sealed.first() {
        Some(1) => {
            let len = usize::from(sealed[1]);
            Some(String::from_utf8(sealed[2..2 + len].to_vec()).unwrap())
        }
        _ => None,
    }
}

// ----- the production policy ---------------------------------------------------------------

#[tokio::test]
async fn a_durable_store_in_production_needs_keys_or_an_explicit_opt_out() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("wise.db").display());
    let sqlite = wise_oauth::sqlx::SqliteTokenStore::connect(&url)
        .await
        .expect("SQLite store");
    let config = |env: Environment| {
        WiseConfig::builder("id", ClientSecret::new("s"), "https://app.example.com/cb")
            .environment(env)
            .build()
            .unwrap()
    };
    let refused = |result: Result<WiseOAuth, ConfigError>, what: &str| match result {
        Err(ConfigError::Invalid {
            setting: "encryption",
            reason,
        }) => assert!(
            reason.contains("allow_unencrypted_store"),
            "{what}: {reason}"
        ),
        other => panic!("{what}: expected the encryption error, got {other:?}"),
    };
    for env in [Environment::Production, Environment::ProductionMtls] {
        let builder = || WiseOAuth::builder(config(env.clone()));
        refused(builder().store(sqlite.clone()).build(), "SQLite");
        let shared: Arc<dyn TokenStore> = Arc::new(sqlite.clone());
        refused(
            builder().store(shared).build(),
            "a shared Arc<dyn TokenStore>",
        );
        // The opt-out, keys, or a store that is not durable.
        builder()
            .store(sqlite.clone())
            .allow_unencrypted_store()
            .build()
            .expect("opted out");
        builder()
            .store(sqlite.clone())
            .encryption(k1())
            .build()
            .expect("with keys");
        builder().build().expect("the default in-memory store");
        builder()
            .store(MemoryTokenStore::new())
            .build()
            .expect("an in-memory store");
    }
    // Outside production a durable store may stay plain.
    WiseOAuth::builder(config(Environment::Sandbox))
        .store(sqlite.clone())
        .build()
        .expect("sandbox");
    assert!(sqlite.is_durable() && !MemoryTokenStore::new().is_durable());
}

// ----- re-sealing on write -------------------------------------------------------------------

async fn resealed_on_next_write(store: impl TokenStore + Clone) {
    let emulator = start_emulator().await;
    let user = user("rotated");
    let old = app(&emulator, &store, k1());
    link(&old, &emulator, &user).await;
    assert_eq!(
        stored_key_id(&store, &old, &user).await.as_deref(),
        Some("k1")
    );

    // After the rotation a read opens the k1 record and writes nothing.
    let rotated = app(&emulator, &store, k2_k1());
    let before = rotated
        .token(&user)
        .await
        .expect("k1 record read with k2,k1");
    assert_eq!(
        stored_key_id(&store, &rotated, &user).await.as_deref(),
        Some("k1")
    );

    // The next write (a refresh past expiry) seals under k2.
    emulator.advance_clock(PAST_EXPIRY);
    let after = rotated.token(&user).await.expect("refreshed");
    assert_ne!(
        before.access_token().expose_secret(),
        after.access_token().expose_secret()
    );
    assert_eq!(emulator.stats().token_requests("refresh_token"), 1);
    assert_eq!(
        stored_key_id(&store, &rotated, &user).await.as_deref(),
        Some("k2")
    );
    // k1 alone no longer opens it; k2 alone does.
    let k1_only = app(&emulator, &store, k1());
    assert_eq!(
        k1_only.token(&user).await.unwrap_err(),
        TokenError::RelinkRequired
    );
    let k2_only = app(&emulator, &store, k2());
    let read = k2_only.token(&user).await.expect("k2 opens the new record");
    assert_eq!(
        read.access_token().expose_secret(),
        after.access_token().expose_secret()
    );
}

#[tokio::test]
async fn memory_records_under_an_older_key_are_resealed_on_their_next_write() {
    resealed_on_next_write(MemoryTokenStore::new()).await;
}

#[tokio::test]
async fn sqlite_records_under_an_older_key_are_resealed_on_their_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("wise.db").display());
    let store = wise_oauth::sqlx::SqliteTokenStore::connect(&url)
        .await
        .expect("SQLite store");
    resealed_on_next_write(store).await;
}

// ----- reseal over a listing store -----------------------------------------------------------

async fn reseal_reports_every_link(store: impl TokenStore + Clone) {
    let emulator = start_emulator().await;
    let under_k1 = app(&emulator, &store, k1());
    let users: Vec<UserId> = ["a", "b", "c"].into_iter().map(user).collect();
    for u in &users {
        link(&under_k1, &emulator, u).await;
    }
    // One link under a key that is gone by now.
    let lost = user("lost");
    link(&app(&emulator, &store, k0()), &emulator, &lost).await;
    let lost_key = under_k1.link_key(&lost);
    let lost_before = store.load(&lost_key).await.unwrap().unwrap();

    let rotated = app(&emulator, &store, k2_k1());
    // One link made after the rotation: already under k2.
    let fresh = user("d-fresh");
    link(&rotated, &emulator, &fresh).await;
    let mut tokens_before = Vec::new();
    for u in &users {
        tokens_before.push(rotated.token(u).await.unwrap());
    }

    let a_key = rotated.link_key(&users[0]);
    let a_before = store.load(&a_key).await.unwrap().unwrap().value;
    assert!(a_before.wise_user_id.is_some(), "recorded at link time");
    let report = rotated.reseal().await.expect("reseal");
    // Only the sealing (and the write time) changed.
    let a_after = store.load(&a_key).await.unwrap().unwrap().value;
    assert_ne!(a_after.sealed_tokens, a_before.sealed_tokens);
    assert_eq!(
        (
            a_after.profile_id,
            a_after.status,
            a_after.access_expires_at,
            a_after.linked_at,
            a_after.wise_user_id
        ),
        (
            a_before.profile_id,
            a_before.status,
            a_before.access_expires_at,
            a_before.linked_at,
            a_before.wise_user_id
        )
    );
    assert_eq!(
        (
            report.resealed(),
            report.already_current(),
            report.unreadable(),
            report.skipped()
        ),
        (3, 1, 1, 0),
        "{report}"
    );
    assert_eq!(report.unreadable_key_ids().collect::<Vec<_>>(), ["k0"]);
    assert_eq!(
        report.to_string(),
        "3 re-sealed, 1 already current, 1 unreadable, 0 skipped"
    );

    // Every readable link is under k2 now, with the same tokens, readable by k2 alone;
    // nothing was refreshed.
    let k2_only = app(&emulator, &store, k2());
    for (u, before) in users.iter().zip(&tokens_before) {
        assert_eq!(
            stored_key_id(&store, &rotated, u).await.as_deref(),
            Some("k2")
        );
        let read = k2_only
            .token(u)
            .await
            .expect("k2 opens the resealed record");
        assert_eq!(
            read.access_token().expose_secret(),
            before.access_token().expose_secret()
        );
    }
    assert_eq!(emulator.stats().token_requests("refresh_token"), 0);
    // The unreadable link is kept exactly as it was.
    assert_eq!(store.load(&lost_key).await.unwrap().unwrap(), lost_before);

    // Once more: nothing left to do.
    let again = rotated.reseal().await.expect("reseal again");
    assert_eq!(
        (
            again.resealed(),
            again.already_current(),
            again.unreadable()
        ),
        (0, 4, 1)
    );
}

#[tokio::test]
async fn reseal_over_a_memory_store_reports_counts() {
    reseal_reports_every_link(MemoryTokenStore::new()).await;
}

#[tokio::test]
async fn reseal_over_a_sqlite_store_reports_counts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("wise.db").display());
    let store = wise_oauth::sqlx::SqliteTokenStore::connect(&url)
        .await
        .expect("SQLite store");
    reseal_reports_every_link(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reseal_over_a_postgres_store_reports_counts() {
    let Some(url) = database_url("reseal_over_a_postgres_store_reports_counts") else {
        return;
    };
    let schema = TestSchema::new(url);
    reseal_reports_every_link(schema.store().await).await;
}

/// A re-seal racing a herd of refreshes (Wise rotating refresh tokens, so a lost refresh
/// result would leave a dead refresh token stored): every link ends under the primary key,
/// each refreshed exactly once, and the stored refresh tokens still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reseal_racing_refreshes_loses_no_refresh_token() {
    const USERS: usize = 6;
    let emulator = start_emulator().await;
    emulator.set_rotate_refresh_tokens(true);
    let store = MemoryTokenStore::new();
    let under_k1 = app(&emulator, &store, k1());
    let mut users = Vec::new();
    for i in 0..USERS {
        let email = format!("racer{i}@example.com");
        emulator
            .create_user(wise_oauth_mock::NewUser::new(&email, "password1"))
            .unwrap();
        let u = user(&format!("racer-{i}"));
        link_as(&under_k1, &emulator, &u, &email).await;
        users.push(u);
    }
    let rotated = app(&emulator, &store, k2_k1());
    emulator.advance_clock(PAST_EXPIRY);

    let mut requests = Vec::new();
    for u in &users {
        for _ in 0..20 {
            let (wise, u) = (rotated.clone(), u.clone());
            requests.push(tokio::spawn(async move { wise.token(&u).await }));
        }
    }
    let reseal = tokio::spawn({
        let rotated = rotated.clone();
        async move { rotated.reseal().await }
    });
    for request in requests {
        request.await.unwrap().expect("a refreshed token");
    }
    let report = reseal.await.unwrap().expect("reseal");
    assert_eq!(
        report.resealed() + report.already_current(),
        USERS as u64,
        "{report}"
    );
    assert_eq!((report.unreadable(), report.skipped()), (0, 0), "{report}");
    assert_eq!(
        emulator.stats().token_successes("refresh_token"),
        USERS as u64,
        "one refresh per link"
    );

    // Under k2 now, and the stored refresh tokens are the live ones: one more expiry and a
    // fresh k2-only instance refreshes every link.
    emulator.advance_clock(PAST_EXPIRY);
    let k2_only = app(&emulator, &store, k2());
    for u in &users {
        assert_eq!(
            stored_key_id(&store, &rotated, u).await.as_deref(),
            Some("k2")
        );
        let token = k2_only
            .token(u)
            .await
            .expect("refresh with the stored token");
        assert!(emulator.access_token_is_valid(token.access_token().expose_secret()));
    }
    assert_eq!(
        emulator.stats().token_successes("refresh_token"),
        2 * USERS as u64
    );
}

/// A store written in clear, then keys: without the migration switch its links are
/// unreadable (re-link); with it they keep working and `reseal` encrypts them all.
#[tokio::test]
async fn plain_records_move_to_encryption_with_open_unencrypted_records() {
    let emulator = start_emulator().await;
    let store = MemoryTokenStore::new();
    let plain = WiseOAuth::builder(config(&emulator))
        .store(store.clone())
        .clock(EmulatorClock(emulator.clone()))
        .build()
        .unwrap();
    let users: Vec<UserId> = ["p1", "p2"].into_iter().map(user).collect();
    for u in &users {
        link(&plain, &emulator, u).await;
        assert_eq!(stored_key_id(&store, &plain, u).await, None, "plain");
    }

    // Keys only: the plain records do not open.
    let strict = app(&emulator, &store, k1());
    assert_eq!(
        strict.token(&users[0]).await.unwrap_err(),
        TokenError::RelinkRequired
    );
    let report = strict.reseal().await.unwrap();
    assert_eq!((report.resealed(), report.unreadable()), (0, 2), "{report}");
    assert_eq!(report.unreadable_key_ids().collect::<Vec<_>>(), ["(plain)"]);

    // Keys plus the migration switch: they open, and reseal encrypts them.
    let migrating = WiseOAuth::builder(config(&emulator))
        .store(store.clone())
        .encryption(k1())
        .open_unencrypted_records()
        .clock(EmulatorClock(emulator.clone()))
        .build()
        .unwrap();
    migrating
        .token(&users[0])
        .await
        .expect("a plain record opens");
    let report = migrating.reseal().await.unwrap();
    assert_eq!((report.resealed(), report.unreadable()), (2, 0), "{report}");
    // A fresh instance with the keys alone opens them (`strict` keeps its cached re-link
    // verdict until it re-reads the store).
    let after = app(&emulator, &store, k1());
    for u in &users {
        assert_eq!(
            stored_key_id(&store, &migrating, u).await.as_deref(),
            Some("k1")
        );
        after
            .token(u)
            .await
            .expect("encrypted now: keys alone open it");
    }
    assert_eq!(emulator.stats().token_requests("refresh_token"), 0);
}

#[tokio::test]
async fn reseal_needs_a_store_that_lists() {
    #[derive(Debug, Clone, Default)]
    struct NoListing(MemoryTokenStore);
    #[wise_oauth::async_trait]
    impl TokenStore for NoListing {
        async fn load(
            &self,
            key: &wise_oauth::LinkKey,
        ) -> Result<Option<wise_oauth::Versioned<wise_oauth::LinkRecord>>, wise_oauth::StoreError>
        {
            self.0.load(key).await
        }
        async fn save(
            &self,
            key: &wise_oauth::LinkKey,
            record: &wise_oauth::LinkRecord,
            expected: Option<wise_oauth::Version>,
        ) -> Result<wise_oauth::Version, wise_oauth::StoreError> {
            self.0.save(key, record, expected).await
        }
        async fn delete(&self, key: &wise_oauth::LinkKey) -> Result<bool, wise_oauth::StoreError> {
            self.0.delete(key).await
        }
        async fn acquire_lease(
            &self,
            key: &wise_oauth::LinkKey,
            holder: wise_oauth::LeaseHolder,
            ttl: Duration,
        ) -> Result<bool, wise_oauth::StoreError> {
            self.0.acquire_lease(key, holder, ttl).await
        }
        async fn release_lease(
            &self,
            key: &wise_oauth::LinkKey,
            holder: wise_oauth::LeaseHolder,
        ) -> Result<(), wise_oauth::StoreError> {
            self.0.release_lease(key, holder).await
        }
    }
    let emulator = start_emulator().await;
    let wise = app(&emulator, &NoListing::default(), k1());
    match wise.reseal().await {
        Err(wise_oauth::StoreError::Unsupported(what)) => assert_eq!(what, "list_links"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

// ----- unreadable records --------------------------------------------------------------------

/// Collects everything logged.
#[derive(Clone, Default)]
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LogSink;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// An app restarted with a key set that cannot open the stored link: the log names the key
/// ids (no key material), the extractor answers "re-link" (401 JSON, or a 303 into the link
/// flow for a browser), the record is kept, and linking again works.
#[tokio::test(flavor = "current_thread")]
async fn an_unreadable_record_is_offered_a_relink_through_the_axum_extractor() {
    let sink = LogSink::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let emulator = start_emulator().await;
    let store = MemoryTokenStore::new();
    let user = user("keys-lost");
    link(&app(&emulator, &store, k1()), &emulator, &user).await;
    let key_record = |wise: &WiseOAuth| wise.link_key(&user);
    // Restarted with another key only: k1 is not configured any more.
    let wise = app(&emulator, &store, k2());
    let before = store.load(&key_record(&wise)).await.unwrap().unwrap();

    assert_eq!(
        wise.token(&user).await.unwrap_err(),
        TokenError::RelinkRequired
    );
    let status = wise.status(&user).await.unwrap().expect("still linked");
    assert!(status.relink_required);
    let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("cannot be opened with the configured encryption keys")
            && logs.contains("record_key=k1")
            && logs.contains("k2"),
        "{logs}"
    );
    for material in ["CwsLCwsL", "DAwMDAwM", "11, 11, 11", "12, 12, 12"] {
        assert!(!logs.contains(material), "key material in the logs: {logs}");
    }

    // The axum extractor offers the re-link.
    let routes = WiseRoutes::new(wise.clone()).user_resolver({
        let user = user.clone();
        move |_parts| Some(user.clone())
    });
    let router = Router::new()
        .route("/must", get(|_t: WiseToken| async { "never" }))
        .merge(routes.router())
        .with_state(routes.plugin());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client
        .get(format!("{base}/must"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "wise_relink_required", "{body}");
    assert!(
        body["connect_url"]
            .as_str()
            .unwrap()
            .contains("/wise/connect"),
        "{body}"
    );
    let res = client
        .get(format!("{base}/must"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "a browser is sent into the link flow");

    // Nothing was written, nothing refreshed: the refresh token is still stored.
    assert_eq!(
        store.load(&key_record(&wise)).await.unwrap().unwrap(),
        before
    );
    assert_eq!(emulator.stats().token_requests("refresh_token"), 0);

    // Linking again replaces the record, under the configured key.
    link(&wise, &emulator, &user).await;
    wise.token(&user).await.expect("linked again");
    assert_eq!(
        stored_key_id(&store, &wise, &user).await.as_deref(),
        Some("k2")
    );
    assert!(!wise.status(&user).await.unwrap().unwrap().relink_required);
}
