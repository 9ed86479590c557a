//! Pending-flow floods against every built-in pending store, through `WiseOAuth` and the
//! emulator: one owner starting flow after flow pushes out only its own oldest flows, many
//! owners filling the store are refused (503) rather than evicting anyone, and a flow
//! started before the flood still completes. Memory, SQLite and PostgreSQL (the latter
//! needs `DATABASE_URL`, else it prints "SKIPPED" and passes; it works in a schema of its
//! own).

#[path = "../examples/demo/mod.rs"]
mod demo;
mod pg_schema;
mod store_support;
#[allow(unused_macros, unused_imports)]
mod suite;

use std::time::Duration;

use pg_schema::{database_url, TestSchema};
use store_support::*;
use wise_oauth::sqlx::{PostgresTokenStore, SqliteTokenStore};
use wise_oauth::{
    FlowError, LinkStart, MemoryPendingStore, MemoryTokenStore, PendingStore, TokenStore, UserId,
    WiseOAuth, MAX_PENDING_PER_USER,
};
use wise_oauth_mock::MockWiseHandle;

/// A started flow, approved at the emulator: what the callback will carry.
struct Approved {
    query: String,
    binding: String,
}

async fn start_and_approve(wise: &WiseOAuth, user: &UserId) -> Approved {
    let start = wise
        .start_link(user, &Default::default(), None)
        .await
        .expect("start");
    approve(&start).await
}

async fn approve(start: &LinkStart) -> Approved {
    let binding = start
        .set_cookie()
        .split(';')
        .next()
        .and_then(|c| c.split_once('='))
        .map(|(_, v)| v.to_owned())
        .expect("binding cookie");
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(start.authorize_url().clone())
        .send()
        .await
        .expect("authorize");
    assert!(response.status().is_redirection(), "{}", response.status());
    let location = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    Approved {
        query: location.query().expect("callback query").to_owned(),
        binding,
    }
}

async fn complete(wise: &WiseOAuth, user: &UserId, flow: &Approved) -> Result<(), FlowError> {
    wise.complete_link(user, &flow.query, Some(&flow.binding))
        .await
        .map(|_| ())
}

/// The victim and mallory start a flow each; 40 other owners fill the (small) store until
/// it refuses them; mallory floods the full store with 100 more starts; then the victim's
/// flow, mallory's newest and an accepted owner's flow complete, mallory's oldest does not.
async fn flood_spares_other_owners<T, P>(emulator: &MockWiseHandle, tokens: T, pending: P)
where
    T: TokenStore,
    P: PendingStore,
{
    emulator.set_auto_approve(Some(ALICE));
    let wise = WiseOAuth::builder(config(emulator))
        .store(tokens)
        .pending_store(pending)
        .build()
        .expect("wise-oauth");
    let victim = user("victim");
    let mallory = user("mallory");
    let victim_flow = start_and_approve(&wise, &victim).await;
    let mallory_first = start_and_approve(&wise, &mallory).await;

    // Many owners fill the store: the late ones are refused, nobody is evicted.
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..40 {
        let sybil = user(&format!("sybil-{i}"));
        match wise.start_link(&sybil, &Default::default(), None).await {
            Ok(start) => accepted.push((sybil, start)),
            Err(FlowError::Unavailable { retry_after }) => {
                assert_eq!(retry_after, Some(Duration::from_secs(60)));
                refused += 1;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(refused > 0, "the store filled up");
    assert!(!accepted.is_empty(), "until it was full");

    // One owner floods the full store: only its own oldest flows go.
    let mut newest = None;
    for _ in 0..100 {
        newest = Some(
            wise.start_link(&mallory, &Default::default(), None)
                .await
                .expect("an owner with flows may start more"),
        );
    }
    let mallory_newest = approve(&newest.expect("a flow")).await;

    complete(&wise, &victim, &victim_flow)
        .await
        .expect("the victim's flow completes");
    assert!(matches!(
        complete(&wise, &mallory, &mallory_first).await,
        Err(FlowError::UnknownState)
    ));
    complete(&wise, &mallory, &mallory_newest)
        .await
        .expect("mallory's newest flow completes");
    let (sybil, start) = &accepted[0];
    complete(&wise, sybil, &approve(start).await)
        .await
        .expect("an accepted sybil flow completes");
    assert_eq!(emulator.stats().token_requests("authorization_code"), 3);
    assert!(MAX_PENDING_PER_USER < 100);
}

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
