//! Change notifications between two instances on one store (in-process channel): after a
//! refresh, a re-link mark or an unlink on instance A, instance B stops serving what it had
//! cached at once, well before its 30 s revalidation (the clock used here never gets
//! there), and a request waiting on B for A's lease returns with A's token.

mod manager_support;

use std::time::{Duration, Instant};

use manager_support::*;
use wise_oauth_core::{MemoryLinkChanges, TokenError, UserId, ValidToken, WiseOAuth};
use wise_oauth_mock::Fault;

/// How long B may take to notice (the revalidation period is 30 s).
const NOTICE_WITHIN: Duration = Duration::from_secs(5);

fn instance_on(env: &Env, changes: &MemoryLinkChanges, events: &EventLog) -> WiseOAuth {
    WiseOAuth::builder(config(&env.mock, &Settings::default()))
        .store(env.store.clone())
        .clock(MockClock(env.mock.clone()))
        .on_event(events.handler())
        .changes(changes.clone())
        .build()
        .unwrap()
}

fn secret(token: &ValidToken) -> String {
    token.access_token().expose_secret().to_owned()
}

/// Asks `wise` for `user`'s token until `done` accepts the answer (deadline: NOTICE_WITHIN).
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
        assert!(Instant::now() < deadline, "B did not notice: {what}");
        tokio::task::yield_now().await;
    }
}

/// An emulator with ALICE, one channel, instances A and B on it, `user` linked by A and
/// B's (fresh) token cached.
async fn two_instances(user: &UserId) -> (Env, WiseOAuth, WiseOAuth, ValidToken) {
    let env = Env::new().await;
    let changes = MemoryLinkChanges::new();
    let a = instance_on(&env, &changes, &EventLog::default());
    let b = instance_on(&env, &changes, &EventLog::default());
    link(&a, &env.mock, user, ALICE).await;
    let cached = b.token(user).await.unwrap();
    (env, a, b, cached)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_serves_the_new_token_right_after_a_refreshes() {
    let u = user("notify-refresh");
    let (env, a, b, old) = two_instances(&u).await;
    let fresh = a
        .token_after_unauthorized(&u, old.access_token())
        .await
        .unwrap();
    assert_ne!(secret(&fresh), secret(&old));
    assert!(
        !env.mock.access_token_is_valid(&secret(&old)),
        "Wise killed it"
    );

    let served = answer_until(&b, &u, "the refresh", |t| {
        t.as_ref().is_ok_and(|t| secret(t) == secret(&fresh))
    })
    .await
    .unwrap();
    assert!(env.mock.access_token_is_valid(&secret(&served)));
    assert_eq!(env.refreshes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlink_on_a_makes_b_answer_not_linked() {
    let u = user("notify-unlink");
    let (_env, a, b, _old) = two_instances(&u).await;
    assert!(a.unlink(&u).await.unwrap());
    answer_until(&b, &u, "the unlink", |t| {
        matches!(t, Err(TokenError::NotLinked))
    })
    .await
    .unwrap_err();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relink_mark_on_a_reaches_b() {
    let u = user("notify-relink");
    let (env, a, b, old) = two_instances(&u).await;
    env.mock.revoke(ALICE);
    let marked = a.token_after_unauthorized(&u, old.access_token()).await;
    assert!(
        matches!(marked, Err(TokenError::RelinkRequired)),
        "{marked:?}"
    );
    answer_until(&b, &u, "the re-link mark", |t| {
        matches!(t, Err(TokenError::RelinkRequired))
    })
    .await
    .unwrap_err();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_on_b_takes_the_token_a_stored() {
    let u = user("notify-waiter");
    let (env, a, b, _old) = two_instances(&u).await;
    env.mock.inject_fault(Fault::delay(
        "token:refresh_token",
        Duration::from_millis(300),
    ));
    env.mock.advance_clock(EXPIRED);

    let leader = tokio::spawn({
        let (a, u) = (a.clone(), u.clone());
        async move { a.token(&u).await }
    });
    // A holds the lease and its call to Wise is under way.
    wait_for("A's refresh call", || env.refreshes() == 1).await;
    let waited = b.token(&u).await.unwrap();
    let led = leader.await.unwrap().unwrap();

    assert_eq!(secret(&waited), secret(&led));
    assert!(env.mock.access_token_is_valid(&secret(&waited)));
    assert_eq!(
        env.refreshes(),
        1,
        "B waited for A instead of refreshing again"
    );
    assert_eq!(env.refresh_successes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_changes_make_b_forget_its_cache() {
    let u = user("notify-missed");
    let env = Env::new().await;
    // B listens on a channel that A does not publish on: every change of A is "lost".
    let (a_channel, b_channel) = (MemoryLinkChanges::new(), MemoryLinkChanges::new());
    let a = instance_on(&env, &a_channel, &EventLog::default());
    let b = instance_on(&env, &b_channel, &EventLog::default());
    link(&a, &env.mock, &u, ALICE).await;
    let old = b.token(&u).await.unwrap();
    let fresh = a
        .token_after_unauthorized(&u, old.access_token())
        .await
        .unwrap();

    // Without a notification B serves the token Wise killed (until its revalidation).
    let stale = b.token(&u).await.unwrap();
    assert_eq!(secret(&stale), secret(&old));
    assert!(!env.mock.access_token_is_valid(&secret(&stale)));

    // The channel reconnects and says it may have missed changes: B forgets its cache.
    b_channel.announce_missed();
    answer_until(&b, &u, "the missed changes", |t| {
        t.as_ref().is_ok_and(|t| secret(t) == secret(&fresh))
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_changes_leave_the_instance_serving_what_it_stored() {
    let u = user("notify-own");
    let (env, a, _b, _old) = two_instances(&u).await;
    let cached = a.token(&u).await.unwrap();
    // A hears its own announcement too; it keeps serving what it stored.
    let fresh = a
        .token_after_unauthorized(&u, cached.access_token())
        .await
        .unwrap();
    for _ in 0..10 {
        assert_eq!(secret(&a.token(&u).await.unwrap()), secret(&fresh));
    }
    assert_eq!(env.refreshes(), 1);
}

#[test]
fn a_channel_needs_a_runtime_at_build() {
    let mock_free_config = wise_oauth_core::WiseConfig::builder(
        CLIENT_ID,
        wise_oauth_core::ClientSecret::new(CLIENT_SECRET),
        REDIRECT_URI,
    )
    .build()
    .unwrap();
    let built = WiseOAuth::builder(mock_free_config)
        .changes(MemoryLinkChanges::new())
        .build();
    assert!(built.is_err());
}
