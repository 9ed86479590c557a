//! How long after instance A stored a refreshed link instance B serves the new token,
//! through change notifications (PostgreSQL `LISTEN`/`NOTIFY`, Redis pub/sub, and the
//! in-process channel for reference).
//!
//! Two `WiseOAuth` handles in one process, each with its own store connection and its own
//! listening connection, on loopback. Per round: B holds the current token in its cache
//! (fresh by its clock, which is frozen, so B never revalidates on its own); A refreshes
//! (`token_after_unauthorized`) and its `Refreshed` event (emitted right after the store
//! write) stamps the start; B is asked for its token in a loop (each ask is a cache read
//! that yields between tries) until it hands out A's new token, which stamps the end.
//!
//! `cargo bench --bench propagation --features postgres,redis` with `DATABASE_URL` and/or
//! `REDIS_URL` set (rows without one are skipped); `PROPAGATION_ROUNDS` (200) per store.
//! Prints one `figure` line per value.
#![allow(missing_docs)]

#[path = "support/mod.rs"]
mod support;

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{config, ensure_wise_user, link, no_redirect_client, user, MockClock};
use wise_oauth::redis::redis;
use wise_oauth::redis::{RedisLinkChanges, RedisTokenStore};
use wise_oauth::sqlx::{PostgresLinkChanges, PostgresTokenStore};
use wise_oauth::{
    LinkChanges, MemoryLinkChanges, MemoryTokenStore, TokenStore, WiseEvent, WiseOAuth,
};
use wise_oauth_mock::MockWiseHandle;

const EMAIL: &str = "propagation@example.com";

fn instance(
    mock: &MockWiseHandle,
    store: Arc<dyn TokenStore>,
    changes: impl LinkChanges,
    refreshed: Option<Arc<Mutex<Option<Instant>>>>,
) -> WiseOAuth {
    let mut builder = WiseOAuth::builder(config(mock))
        .store(store)
        .clock(MockClock(mock.clone()))
        .changes(changes);
    if let Some(stamp) = refreshed {
        builder = builder.on_event(move |event: &WiseEvent| {
            if matches!(event, WiseEvent::Refreshed { .. }) {
                *stamp.lock().unwrap() = Some(Instant::now());
            }
        });
    }
    builder.build().unwrap()
}

/// The propagation delays of `rounds` refreshes from `a` to `b`.
async fn measure(
    mock: &MockWiseHandle,
    a: &WiseOAuth,
    b: &WiseOAuth,
    stamp: &Mutex<Option<Instant>>,
    rounds: usize,
) -> Vec<Duration> {
    let u = user(&format!("propagation-{:016x}", rand::random::<u64>()));
    link(a, mock, &no_redirect_client(), &u, EMAIL).await;
    let mut current = b.token(&u).await.unwrap();
    let mut delays = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        *stamp.lock().unwrap() = None;
        let fresh = a
            .token_after_unauthorized(&u, current.access_token())
            .await
            .expect("A refreshes");
        let stored = stamp.lock().unwrap().expect("A's Refreshed event");
        let deadline = Instant::now() + Duration::from_secs(25);
        loop {
            let served = b.token(&u).await.expect("B serves a token");
            if served.access_token().expose_secret() == fresh.access_token().expose_secret() {
                delays.push(stored.elapsed());
                current = served;
                break;
            }
            assert!(Instant::now() < deadline, "B never served the new token");
            tokio::task::yield_now().await;
        }
    }
    delays
}

fn report(name: &str, mut delays: Vec<Duration>) {
    delays.sort();
    let at = |q: f64| {
        let i = ((delays.len() as f64 * q).ceil() as usize).clamp(1, delays.len()) - 1;
        delays[i].as_secs_f64() * 1000.0
    };
    println!(
        "figure propagation.{name} rounds={} p50_ms={:.3} p99_ms={:.3} max_ms={:.3}",
        delays.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::var("PROPAGATION_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    let mock = support::start_mock().await;
    ensure_wise_user(&mock, EMAIL);
    // No clock-driven revalidation or expiry during the run: only notifications propagate.
    mock.freeze_clock();

    {
        let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
        let changes = MemoryLinkChanges::new();
        let stamp = Arc::new(Mutex::new(None));
        let a = instance(&mock, store.clone(), changes.clone(), Some(stamp.clone()));
        let b = instance(&mock, store, changes, None);
        report("memory", measure(&mock, &a, &b, &stamp, rounds).await);
    }

    match std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
    {
        Some(url) => {
            let schema = format!("wise_propagation_{}", std::process::id());
            let options = sqlx::postgres::PgConnectOptions::from_str(&url).unwrap();
            let open = || async {
                let pool = sqlx::PgPool::connect_with(options.clone()).await.unwrap();
                PostgresTokenStore::builder(pool)
                    .schema(&schema)
                    .build()
                    .await
                    .unwrap()
            };
            let (store_a, store_b) = (open().await, open().await);
            let stamp = Arc::new(Mutex::new(None));
            let a = instance(
                &mock,
                Arc::new(store_a.clone()),
                PostgresLinkChanges::listen(&store_a).await.unwrap(),
                Some(stamp.clone()),
            );
            let b = instance(
                &mock,
                Arc::new(store_b.clone()),
                PostgresLinkChanges::listen(&store_b).await.unwrap(),
                None,
            );
            report("postgres", measure(&mock, &a, &b, &stamp, rounds).await);
            drop((a, b));
            sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(store_a.pool())
                .await
                .unwrap();
        }
        None => println!("SKIPPED propagation.postgres: set DATABASE_URL"),
    }

    match std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => {
            let prefix = format!("wise-propagation-{}:", std::process::id());
            let open = || async {
                let client = redis::Client::open(url.as_str()).unwrap();
                let conn = redis::aio::ConnectionManager::new(client.clone())
                    .await
                    .unwrap();
                let store = RedisTokenStore::builder(conn)
                    .key_prefix(&prefix)
                    .build()
                    .unwrap();
                let changes = RedisLinkChanges::listen(client, &store).await.unwrap();
                (store, changes)
            };
            let ((store_a, changes_a), (store_b, changes_b)) = (open().await, open().await);
            let stamp = Arc::new(Mutex::new(None));
            let a = instance(&mock, Arc::new(store_a), changes_a, Some(stamp.clone()));
            let b = instance(&mock, Arc::new(store_b), changes_b, None);
            report("redis", measure(&mock, &a, &b, &stamp, rounds).await);
        }
        None => println!("SKIPPED propagation.redis: set REDIS_URL"),
    }
}
