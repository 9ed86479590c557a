//! The Redis store end to end (through `WiseOAuth`, the demo app and the emulator), the
//! same scenarios `tests/durable_stores.rs` runs on PostgreSQL:
//!
//! - three instances on one Redis refresh an expired link exactly once;
//! - the instance holding the refresh lease dies mid-refresh: another one refreshes once
//!   the lease expired, and nothing is lost;
//! - records are sealed (encrypted) with keys and plain without, and round-trip;
//! - after linking through the demo app, no token appears in a dump of the keys;
//! - restarting the demo app on the same Redis keeps the link (no refresh needed).
//!
//! Needs `WISE_TEST_REDIS_URL` or `REDIS_URL` (e.g. `redis://127.0.0.1:6379`, set by
//! `.ci/run`); without one the tests print "SKIPPED" and pass. Each test works under a
//! random key prefix of its own, whose keys are deleted at the end.

#[path = "../examples/demo/mod.rs"]
mod demo;
// The behaviour suite's app helpers (`TestApp`, `Browser`); its cases run elsewhere.
mod store_support;
#[allow(unused_macros, unused_imports)]
mod suite;

use std::time::Duration;

use demo::shared::Storage;
use store_support::*;
use wise_oauth::redis::redis::{self, aio::ConnectionManager};
use wise_oauth::redis::RedisTokenStore;
use wise_oauth::{EncryptionKeys, TokenError, TokenStore};
use wise_oauth_mock::{Fault, MockWise};

// ----- a key prefix of one test ------------------------------------------------------------

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

    /// A store of its own (own connection, as another instance would have).
    async fn store(&self) -> RedisTokenStore {
        let client = redis::Client::open(self.url.as_str()).expect("a valid Redis URL");
        let conn = ConnectionManager::new(client)
            .await
            .expect("connect to the test Redis");
        RedisTokenStore::builder(conn)
            .key_prefix(&self.prefix)
            .build()
            .expect("build the store")
    }

    fn keys(&self, conn: &mut redis::Connection) -> redis::RedisResult<Vec<String>> {
        let mut all = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query(conn)?;
            all.extend(keys);
            if next == 0 {
                return Ok(all);
            }
            cursor = next;
        }
    }

    /// Every key under the prefix with its whole value (names, fields, members and
    /// values as stored), as one byte string.
    fn dump(&self) -> Vec<u8> {
        let mut conn = redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection())
            .expect("connect for the dump");
        let mut dump = Vec::new();
        for key in self.keys(&mut conn).expect("SCAN") {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
            let parts: Vec<Vec<u8>> = match kind.as_str() {
                "string" => vec![redis::cmd("GET").arg(&key).query(&mut conn).unwrap()],
                "hash" => redis::cmd("HGETALL").arg(&key).query(&mut conn).unwrap(),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query(&mut conn)
                    .unwrap(),
                "none" => Vec::new(), // expired meanwhile
                other => panic!("unexpected key type {other} at {key}"),
            };
            dump.extend_from_slice(key.as_bytes());
            for part in parts {
                dump.push(b'\n');
                dump.extend(part);
            }
            dump.push(b'\n');
        }
        dump
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        // A blocking connection: drop may run inside the test's runtime.
        let cleanup = || -> redis::RedisResult<()> {
            let mut conn = redis::Client::open(self.url.as_str())?.get_connection()?;
            let keys = self.keys(&mut conn)?;
            for chunk in keys.chunks(500) {
                redis::cmd("DEL").arg(chunk).query::<()>(&mut conn)?;
            }
            Ok(())
        };
        if let Err(err) = cleanup() {
            eprintln!("could not delete the keys of {}: {err}", self.prefix);
        }
    }
}

// ----- the library on the emulator ---------------------------------------------------------

// ----- several instances on one Redis ------------------------------------------------------

/// Three instances (own caches and managers, own connections) × 100 concurrent requests
/// for one expired link: exactly one refresh at Wise, and all 300 get the same token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_three_instances_refresh_an_expired_link_once() {
    let Some(url) = redis_url("redis_three_instances_refresh_an_expired_link_once") else {
        return;
    };
    let prefix = TestPrefix::new(url);
    let emulator = start_emulator().await;
    let keys = EncryptionKeys::new().key("k1", [7; 32]);
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(instance(
            &emulator,
            prefix.store().await,
            Some(keys.clone()),
            Duration::from_secs(30),
        ));
    }
    herd_refreshes_once(&emulator, &instances).await;
}

/// The instance holding the lease dies mid-refresh (its runtime is shut down while Wise is
/// answering slowly): another instance refreshes once the lease expired in Redis, exactly
/// one refresh succeeds, and the stored refresh token is valid at Wise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lease_holder_killed_mid_refresh_loses_nothing() {
    let Some(url) = redis_url("redis_lease_holder_killed_mid_refresh_loses_nothing") else {
        return;
    };
    const LEASE: Duration = Duration::from_secs(2);
    let prefix = TestPrefix::new(url);
    let emulator = start_emulator().await;
    let b_store = prefix.store().await;
    let b = instance(&emulator, b_store.clone(), None, LEASE);
    let user = user("killed");
    link(&b, &emulator, &user).await;
    emulator.advance_clock(PAST_EXPIRY);
    emulator.inject_fault(Fault::delay(
        "token:refresh_token",
        Duration::from_secs(120),
    ));

    // Instance A on a runtime (and thread) of its own, with its own Redis connection (run
    // by that runtime, so it dies with it); it starts the refresh.
    let (a_runtime, _a_request) = {
        let (emulator, user) = (emulator.clone(), user.clone());
        let (url, key_prefix) = (prefix.url.clone(), prefix.prefix.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let a = rt.block_on(async {
                let client = redis::Client::open(url.as_str()).unwrap();
                let conn = ConnectionManager::new(client).await.unwrap();
                let store = RedisTokenStore::builder(conn)
                    .key_prefix(key_prefix)
                    .build()
                    .unwrap();
                instance(&emulator, store, None, LEASE)
            });
            let request = rt.spawn(async move { a.token(&user).await.map(|_| ()) });
            (rt, request)
        })
        .join()
        .expect("instance A's thread")
    };

    let c = instance(&emulator, prefix.store().await, None, LEASE);
    killed_holder_loses_nothing(&emulator, a_runtime, &b, &b_store, &user, &c).await;
}

// ----- sealed records, with and without keys -----------------------------------------------

/// Links a user through a `WiseOAuth` without keys and one with keys: the plain record
/// holds the tokens in clear, the sealed one does not; both read back (in fresh instances,
/// own connections), and the sealed one only with the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_records_are_sealed_with_keys_and_plain_without() {
    let Some(url) = redis_url("redis_records_are_sealed_with_keys_and_plain_without") else {
        return;
    };
    let prefix = TestPrefix::new(url);
    let emulator = start_emulator().await;
    let keys = EncryptionKeys::new().key("k1", [1; 32]);
    let ttl = Duration::from_secs(30);
    for encrypted in [false, true] {
        let store = prefix.store().await;
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
        let fresh = instance(&emulator, prefix.store().await, keys_used, ttl);
        let token = fresh.token(&user).await.expect("read back");
        assert_eq!(token.access_token().expose_secret(), tokens.0);
        if encrypted {
            let no_keys = instance(&emulator, prefix.store().await, None, ttl);
            let wrong = EncryptionKeys::new().key("k1", [2; 32]);
            let wrong_keys = instance(&emulator, prefix.store().await, Some(wrong), ttl);
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

// ----- the demo app on Redis ---------------------------------------------------------------

/// After linking through the demo app on Redis (encrypted at rest with keys), no token the
/// emulator issued appears in a dump of the prefix's keys and values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_demo_app_stores_no_token_in_clear() {
    let Some(url) = redis_url("redis_demo_app_stores_no_token_in_clear") else {
        return;
    };
    let prefix = TestPrefix::new(url);
    let emulator = MockWise::builder().start().await.unwrap();
    let storage = Storage::durable("Redis", prefix.store().await);
    let demo = RunningDemo::start(&storage, &emulator).await;
    link_through_demo(&demo.app, "dana").await;
    let tokens = emulator_tokens(&emulator);
    let dump = prefix.dump();
    assert!(
        contains(&dump, PERSONAL.to_string().as_bytes()) && contains(&dump, b"sealed_tokens"),
        "the dump holds the link: {}",
        String::from_utf8_lossy(&dump)
    );
    assert_no_token("Redis dump", &dump, &tokens);
    demo.stop().await;
}

/// Link, stop the app, start it again on the same Redis (a new connection): still linked,
/// same token, no refresh and no new code exchange.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_keeps_the_link() {
    let Some(url) = redis_url("redis_restart_keeps_the_link") else {
        return;
    };
    let prefix = TestPrefix::new(url);
    let emulator = MockWise::builder().start().await.unwrap();
    let first =
        RunningDemo::start(&Storage::durable("Redis", prefix.store().await), &emulator).await;
    let before = link_through_demo(&first.app, "erin").await;
    first.stop().await;

    let second =
        RunningDemo::start(&Storage::durable("Redis", prefix.store().await), &emulator).await;
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

/// The demo's `DATABASE_URL` takes a `redis://` URL (connecting writes nothing).
#[tokio::test]
async fn demo_storage_connects_to_redis_urls() {
    let Some(url) = redis_url("demo_storage_connects_to_redis_urls") else {
        return;
    };
    let storage = Storage::connect(&url).await.expect("Redis storage");
    assert_eq!(storage.kind, "Redis");
    assert!(storage.is_durable());
}

// ----- pending-flow floods -----------------------------------------------------------------

/// The flood scenario of `tests/pending_flood.rs` on Redis: one owner flooding pushes out
/// only its own oldest flows, new owners beyond `max_pending_owners` are refused, a flow
/// started before the flood completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pending_store_flood() {
    let Some(url) = redis_url("redis_pending_store_flood") else {
        return;
    };
    let prefix = TestPrefix::new(url);
    let client = redis::Client::open(prefix.url.as_str()).expect("a valid Redis URL");
    let conn = ConnectionManager::new(client)
        .await
        .expect("connect to the test Redis");
    let store = RedisTokenStore::builder(conn)
        .key_prefix(&prefix.prefix)
        .max_pending_owners(6)
        .build()
        .expect("build the store");
    let emulator = start_emulator().await;
    flood_spares_other_owners(&emulator, store.clone(), store).await;
}
