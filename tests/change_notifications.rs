//! Change notifications between two instances over PostgreSQL `LISTEN`/`NOTIFY` and Redis
//! pub/sub, with the emulator on loopback:
//!
//! - after A refreshes a link, B (whose cached token is fresh by its clock, and whose
//!   revalidation period never ends during the test) serves A's new token at once, not the
//!   one Wise killed;
//! - a request on B waiting for A's lease returns A's token: one refresh in all;
//! - the listening connections are killed (`pg_terminate_backend`, `CLIENT KILL`): the
//!   channel reconnects, says it may have missed changes, and notifications work again;
//! - an unlink on A makes B answer "not linked".
//!
//! PostgreSQL needs `WISE_TEST_DATABASE_URL` or `DATABASE_URL`, Redis `WISE_TEST_REDIS_URL`
//! or `REDIS_URL`; without them the tests print "SKIPPED" and pass.

mod pg_schema;

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use pg_schema::{database_url, TestSchema};
use wise_oauth::redis::redis;
use wise_oauth::redis::{RedisLinkChanges, RedisTokenStore};
use wise_oauth::sqlx::PostgresLinkChanges;
use wise_oauth::{
    ChangeEvent, ClientSecret, Clock, Environment, LinkChanges, PendingStore, TokenError,
    TokenStore, UserId, ValidToken, WiseConfig, WiseOAuth,
};
use wise_oauth_mock::{Fault, MockWise, MockWiseHandle, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};

const ALICE: &str = "alice@example.com";
const PAST_EXPIRY: Duration = Duration::from_secs(13 * 3600);
const REDIRECT_URI: &str = "http://127.0.0.1:9/wise/callback";
/// How long B may take to notice a change (its revalidation period is 30 s).
const NOTICE_WITHIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct EmulatorClock(MockWiseHandle);

impl Clock for EmulatorClock {
    fn now(&self) -> SystemTime {
        self.0.now()
    }
}

async fn start_emulator() -> MockWiseHandle {
    let emulator = MockWise::builder()
        .start()
        .await
        .expect("start the emulator");
    emulator.register_redirect_uri(DEMO_CLIENT_ID, REDIRECT_URI);
    emulator
}

fn instance(
    emulator: &MockWiseHandle,
    store: impl TokenStore + PendingStore + Clone,
    changes: impl LinkChanges,
) -> WiseOAuth {
    let env = Environment::custom("emulator", &emulator.base_url(), &emulator.authorize_url())
        .expect("emulator URLs");
    let config = WiseConfig::builder(
        DEMO_CLIENT_ID,
        ClientSecret::new(DEMO_CLIENT_SECRET),
        REDIRECT_URI,
    )
    .environment(env)
    .build()
    .expect("configuration");
    WiseOAuth::builder(config)
        .store(store.clone())
        .pending_store(store)
        .clock(EmulatorClock(emulator.clone()))
        .changes(changes)
        .build()
        .expect("wise-oauth")
}

async fn link(wise: &WiseOAuth, emulator: &MockWiseHandle, user: &UserId) {
    emulator.set_auto_approve(Some(ALICE));
    let start = wise
        .start_link(user, &Default::default(), None)
        .await
        .expect("start link");
    let cookie = start
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
    let location = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let query = location.query().expect("callback query").to_owned();
    wise.complete_link(user, &query, Some(&cookie))
        .await
        .expect("complete link");
}

fn secret(token: &ValidToken) -> String {
    token.access_token().expose_secret().to_owned()
}

fn refreshes(emulator: &MockWiseHandle) -> u64 {
    emulator.stats().token_requests("refresh_token")
}

/// Asks `wise` for `user`'s token until `done` accepts the answer.
async fn answer_until(
    wise: &WiseOAuth,
    user: &UserId,
    what: &str,
    done: impl Fn(&Result<ValidToken, TokenError>) -> bool,
) -> Result<ValidToken, TokenError> {
    let deadline = Instant::now() + NOTICE_WITHIN;
    loop {
        let answer = wise.token(user).await;
        if done(&answer) {
            return answer;
        }
        assert!(Instant::now() < deadline, "B did not notice {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A refreshes (Wise rejected `old`); B must serve A's token next.
async fn refresh_on_a_reaches_b(
    emulator: &MockWiseHandle,
    a: &WiseOAuth,
    b: &WiseOAuth,
    user: &UserId,
    old: &ValidToken,
    what: &str,
) -> ValidToken {
    let fresh = a
        .token_after_unauthorized(user, old.access_token())
        .await
        .expect("A refreshes");
    assert!(
        !emulator.access_token_is_valid(&secret(old)),
        "Wise killed it"
    );
    let served = answer_until(b, user, what, |t| {
        t.as_ref().is_ok_and(|t| secret(t) == secret(&fresh))
    })
    .await
    .unwrap();
    assert!(emulator.access_token_is_valid(&secret(&served)));
    served
}

/// The whole story on one pair of instances; `kill` cuts every listening connection.
async fn two_instances_follow_each_other<K, F>(
    emulator: &MockWiseHandle,
    a: WiseOAuth,
    b: WiseOAuth,
    b_changes: &dyn LinkChanges,
    kill: K,
) where
    K: Fn() -> F,
    F: Future<Output = ()>,
{
    let user = UserId::new("notified-user").unwrap();
    link(&a, emulator, &user).await;
    let old = b.token(&user).await.expect("B caches the link");

    // 1. A refresh on A reaches B at once.
    let served = refresh_on_a_reaches_b(emulator, &a, &b, &user, &old, "A's refresh").await;
    assert_eq!(refreshes(emulator), 1);

    // 2. B waits on A's lease and takes A's token: one refresh.
    emulator.inject_fault(Fault::delay(
        "token:refresh_token",
        Duration::from_millis(300),
    ));
    emulator.advance_clock(PAST_EXPIRY);
    let leader = tokio::spawn({
        let (a, user) = (a.clone(), user.clone());
        async move { a.token(&user).await }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while refreshes(emulator) < 2 {
        assert!(Instant::now() < deadline, "A's refresh did not start");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let waited = b.token(&user).await.expect("B waits for A");
    let led = leader.await.unwrap().expect("A refreshes");
    assert_eq!(secret(&waited), secret(&led));
    assert!(emulator.access_token_is_valid(&secret(&waited)));
    assert_ne!(secret(&waited), secret(&served));
    assert_eq!(refreshes(emulator), 2, "B waited instead of refreshing");

    // 3. The listening connections die: they come back, say so, and work again.
    let mut events = b_changes.subscribe();
    kill().await;
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(ChangeEvent::Missed) = events.recv().await {
                return;
            }
        }
    })
    .await
    .expect("B's channel reconnects and reports missed changes");
    let cached = b.token(&user).await.unwrap();
    refresh_on_a_reaches_b(
        emulator,
        &a,
        &b,
        &user,
        &cached,
        "a refresh after the reconnect",
    )
    .await;
    assert_eq!(refreshes(emulator), 3);

    // 4. An unlink on A.
    assert!(a.unlink(&user).await.unwrap());
    answer_until(&b, &user, "the unlink", |t| {
        matches!(t, Err(TokenError::NotLinked))
    })
    .await
    .unwrap_err();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_follow_each_other() {
    let Some(url) = database_url("postgres_instances_follow_each_other") else {
        return;
    };
    let schema = TestSchema::new(url);
    let emulator = start_emulator().await;
    let (store_a, store_b) = (schema.store().await, schema.store().await);
    let changes_a = PostgresLinkChanges::listen(&store_a).await.expect("listen");
    let changes_b = PostgresLinkChanges::listen(&store_b).await.expect("listen");
    let a = instance(&emulator, store_a.clone(), changes_a);
    let b = instance(&emulator, store_b, changes_b.clone());
    let kill = || async {
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE query LIKE 'LISTEN %' AND query LIKE '%' || $1 || '%'",
        )
        .bind(changes_b.channel())
        .fetch_all(store_a.pool())
        .await
        .expect("terminate the listeners");
        assert_eq!(killed, [true, true], "both instances' listeners");
    };
    two_instances_follow_each_other(&emulator, a, b, &changes_b, kill).await;
}

fn redis_url(test: &str) -> Option<String> {
    let url = std::env::var("WISE_TEST_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!(
            "SKIPPED {test}: set REDIS_URL or WISE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379)"
        );
    }
    url
}

async fn redis_instance(
    emulator: &MockWiseHandle,
    url: &str,
    prefix: &str,
) -> (WiseOAuth, RedisLinkChanges, RedisTokenStore) {
    let client = redis::Client::open(url).expect("a valid Redis URL");
    let conn = redis::aio::ConnectionManager::new(client.clone())
        .await
        .expect("connect to Redis");
    let store = RedisTokenStore::builder(conn)
        .key_prefix(prefix)
        .build()
        .expect("store");
    let changes = RedisLinkChanges::listen(client, &store)
        .await
        .expect("subscribe");
    (
        instance(emulator, store.clone(), changes.clone()),
        changes,
        store,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_instances_follow_each_other() {
    let Some(url) = redis_url("redis_instances_follow_each_other") else {
        return;
    };
    let prefix = format!("wise-notify-{:016x}:", rand::random::<u64>());
    let emulator = start_emulator().await;
    let (a, _, store) = redis_instance(&emulator, &url, &prefix).await;
    let (b, changes_b, _) = redis_instance(&emulator, &url, &prefix).await;
    let kill = || async {
        // Every pub/sub client of the server: the test's two subscriptions among them.
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut store.connection().clone())
            .await
            .expect("kill the subscriptions");
        assert!(killed >= 2, "both instances' subscriptions ({killed})");
    };
    two_instances_follow_each_other(&emulator, a, b, &changes_b, kill).await;
}
