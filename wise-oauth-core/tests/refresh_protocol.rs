//! The refresh protocol where it used to break: a refresh outliving its lease while a
//! sibling instance takes over, gateway answers that are not Wise's verdict, an unlink
//! racing a refresh, and a rate limit that must pause the whole instance. Real HTTP to the
//! emulator on loopback; instances share one store.

mod manager_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use manager_support::*;
use tokio::sync::Notify;
use wise_oauth_core::async_trait;
use wise_oauth_core::{
    LeaseHolder, LinkKey, LinkRecord, LinkStatus, MemoryTokenStore, StoreError, TokenError,
    TokenStore, Version, Versioned, WiseOAuth,
};
use wise_oauth_mock::Fault;

/// An instance with its own lease and refresh timings.
fn timed_instance(
    env: &Env,
    events: &EventLog,
    lease_ttl: Duration,
    refresh_timeout: Duration,
) -> WiseOAuth {
    WiseOAuth::builder(config(&env.mock, &Settings::default()))
        .store(env.store.clone())
        .clock(MockClock(env.mock.clone()))
        .on_event(events.handler())
        .lease_ttl(lease_ttl)
        .refresh_timeout(refresh_timeout)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_wise_reply_never_outlives_the_lease_while_a_sibling_takes_over() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let events = EventLog::default();
    let a = timed_instance(
        &env,
        &events,
        Duration::from_secs(2),
        Duration::from_millis(400),
    );
    let b = timed_instance(
        &env,
        &events,
        Duration::from_secs(2),
        Duration::from_millis(400),
    );
    env.mock.advance_clock(EXPIRED);
    // Wise sits on A's first refresh for longer than A's whole lease.
    env.mock
        .inject_fault(Fault::delay("token:refresh_token", Duration::from_secs(3)));
    let first = {
        let a = a.clone();
        let u = u.clone();
        tokio::spawn(async move { a.token(&u).await })
    };
    wait_for("A's refresh to reach Wise", || env.refreshes() == 1).await;
    // B asks while A's call hangs; under the old protocol B refreshed once A's lease ran
    // out and A's late success then killed B's stored access token.
    let second = b.token(&u).await;
    let first = first.await.unwrap();
    let stored = env.stored(&u).await;
    assert!(
        env.mock.access_token_is_valid(&stored.access_token),
        "the stored access token is alive at Wise"
    );
    for result in [first, second] {
        match result {
            Ok(token) => assert!(
                env.mock
                    .access_token_is_valid(token.access_token().expose_secret()),
                "a handed-out token is alive at Wise"
            ),
            Err(e) => assert!(matches!(e, TokenError::Unavailable { .. }), "{e:?}"),
        }
    }
    assert_eq!(stored.status, LinkStatus::Active);
    // The abandoned call was dropped by the emulator. The retry went out at once (whether
    // Wise rotates refresh tokens was not known yet) and, once its answer showed that Wise
    // keeps them, one more refresh followed after the abandoned call's bound: at most two.
    assert!((1..=2).contains(&env.refresh_successes()));
}

async fn transient_answer_keeps_the_link(fault: Fault) {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let before = env.stored(&u).await;
    env.mock.advance_clock(EXPIRED);
    env.mock.inject_fault(fault.times(3));
    let err = env.wise.token(&u).await.unwrap_err();
    assert!(matches!(err, TokenError::Unavailable { .. }), "{err:?}");
    let after = env.stored(&u).await;
    assert_eq!(after.status, LinkStatus::Active, "not marked for re-link");
    assert_eq!(after.sealed, before.sealed);
    assert!(
        env.events.count(|e| !refreshed(e)) <= 1,
        "{:?}",
        env.events.all()
    );
    env.mock.clear_faults();
    env.mock.advance_clock(PAST_BUDGET);
    let token = env.wise.token(&u).await.unwrap();
    assert!(env
        .mock
        .access_token_is_valid(token.access_token().expose_secret()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_403_without_an_oauth_error_keeps_the_link() {
    transient_answer_keeps_the_link(Fault::status_with_type(
        "token:refresh_token",
        403,
        "<html><body>Request blocked by WAF</body></html>",
        "text/html",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_carrying_invalid_grant_keeps_the_link() {
    transient_answer_keeps_the_link(Fault::status(
        "token:refresh_token",
        200,
        r#"{"error":"invalid_grant","error_description":"proxy"}"#,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_carrying_invalid_grant_keeps_the_link() {
    transient_answer_keeps_the_link(Fault::status(
        "token:refresh_token",
        503,
        r#"{"error":"invalid_grant"}"#,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_invalid_grant_still_asks_for_a_relink() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    env.mock.advance_clock(EXPIRED);
    env.mock.revoke(ALICE);
    let err = env.wise.token(&u).await.unwrap_err();
    assert!(matches!(err, TokenError::RelinkRequired), "{err:?}");
    assert_eq!(env.stored(&u).await.status, LinkStatus::NeedsRelink);
    assert_eq!(env.refreshes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_every_refresh_of_the_instance() {
    let env = Env::new().await;
    let (u1, u2) = (user("u1"), user("u2"));
    new_wise_user(&env.mock, "carol@example.com");
    link(&env.wise, &env.mock, &u1, ALICE).await;
    link(&env.wise, &env.mock, &u2, "carol@example.com").await;
    env.mock.advance_clock(EXPIRED);
    env.mock
        .inject_fault(Fault::rate_limit("token:refresh_token", 3600));
    let err = env.wise.token(&u1).await.unwrap_err();
    assert!(matches!(err, TokenError::Unavailable { .. }), "{err:?}");
    assert_eq!(env.refreshes(), 1);
    // Another link of the same instance does not call Wise while the pause lasts.
    let err = env.wise.token(&u2).await.unwrap_err();
    assert!(
        err.retry_after().is_some_and(|d| d > Duration::ZERO),
        "{err:?}"
    );
    assert_eq!(env.refreshes(), 1, "paused, no call to Wise");
    // After the (capped) pause, both links refresh.
    env.mock.advance_clock(PAST_BUDGET);
    env.wise.token(&u2).await.unwrap();
    env.wise.token(&u1).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_backs_off_briefly_not_for_thirty_seconds() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    env.mock.advance_clock(EXPIRED);
    env.mock.inject_fault(
        Fault::status("token:refresh_token", 500, r#"{"error":"server_error"}"#).times(3),
    );
    let err = env.wise.token(&u).await.unwrap_err();
    let retry_after = err.retry_after().expect("a retry hint");
    assert!(retry_after <= Duration::from_secs(2), "{retry_after:?}");
    env.mock.clear_faults();
    // Two seconds later (not thirty) the link refreshes again.
    env.mock.advance_clock(Duration::from_secs(2));
    let token = env.wise.token(&u).await.unwrap();
    assert!(env
        .mock
        .access_token_is_valid(token.access_token().expose_secret()));
}

/// A store whose next successful `save` waits, after writing, until it is let go; counts
/// lease attempts that were refused.
#[derive(Debug, Clone, Default)]
struct GatedStore {
    inner: MemoryTokenStore,
    armed: Arc<std::sync::atomic::AtomicBool>,
    saved: Arc<Notify>,
    release: Arc<Notify>,
    deletes: Arc<AtomicU64>,
    refused_leases: Arc<AtomicU64>,
}

#[async_trait]
impl TokenStore for GatedStore {
    async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
        self.inner.load(key).await
    }

    async fn save(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        let version = self.inner.save(key, record, expected).await?;
        if self.armed.swap(false, Ordering::SeqCst) {
            let released = self.release.notified();
            self.saved.notify_one();
            released.await;
        }
        Ok(version)
    }

    async fn delete(&self, key: &LinkKey) -> Result<bool, StoreError> {
        self.deletes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(key).await
    }

    async fn acquire_lease(
        &self,
        key: &LinkKey,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let granted = self.inner.acquire_lease(key, holder, ttl).await?;
        if !granted {
            self.refused_leases.fetch_add(1, Ordering::SeqCst);
        }
        Ok(granted)
    }

    async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) -> Result<(), StoreError> {
        self.inner.release_lease(key, holder).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlink_racing_a_refresh_leaves_no_token_behind() {
    let mock = start_mock(false).await;
    let store = GatedStore::default();
    let events = EventLog::default();
    let wise = WiseOAuth::builder(config(&mock, &Settings::default()))
        .store(store.clone())
        .clock(MockClock(mock.clone()))
        .on_event(events.handler())
        .build()
        .unwrap();
    let u = user("u1");
    link(&wise, &mock, &u, ALICE).await;
    mock.advance_clock(EXPIRED);
    // The refresh writes its tokens, then stalls before it caches and hands them out.
    store.armed.store(true, Ordering::SeqCst);
    let saved = store.saved.notified();
    let refresh = {
        let wise = wise.clone();
        let u = u.clone();
        tokio::spawn(async move { wise.token(&u).await })
    };
    saved.await;
    let unlink = {
        let wise = wise.clone();
        let u = u.clone();
        tokio::spawn(async move { wise.unlink(&u).await })
    };
    // The unlink either deleted at once (the old protocol) or is waiting for the lease.
    wait_for("the unlink to act or wait", || {
        store.deletes.load(Ordering::SeqCst) > 0 || store.refused_leases.load(Ordering::SeqCst) > 0
    })
    .await;
    store.release.notify_one();
    let _ = refresh.await.unwrap();
    assert!(unlink.await.unwrap().unwrap(), "there was a link to delete");
    assert!(store
        .inner
        .load(&wise.link_key(&u))
        .await
        .unwrap()
        .is_none());
    let after = wise.token(&u).await;
    assert!(
        matches!(after, Err(TokenError::NotLinked)),
        "no token after an unlink: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_whose_browser_leaves_still_completes_the_link() {
    let env = Env::new().await;
    let u = user("u1");
    let (query, cookie) = consent(&env.wise, &env.mock, &u, ALICE).await;
    // Wise takes its time issuing the grant; the browser gives up meanwhile.
    env.mock.inject_fault(Fault::delay(
        "token:authorization_code",
        Duration::from_millis(300),
    ));
    let callback = {
        let wise = env.wise.clone();
        let u = u.clone();
        tokio::spawn(async move { wise.complete_link(&u, &query, Some(&cookie)).await })
    };
    wait_for("the code exchange to reach Wise", || {
        env.mock.stats().token_requests("authorization_code") == 1
    })
    .await;
    callback.abort();
    assert!(callback.await.unwrap_err().is_cancelled());
    env.events
        .wait_until(|events| {
            events
                .iter()
                .any(|e| matches!(e, wise_oauth_core::WiseEvent::Linked { .. }))
        })
        .await;
    // The next visit shows the link as made, with a token Wise accepts.
    let view = env.wise.status(&u).await.unwrap().expect("linked");
    assert!(!view.relink_required);
    let token = env.wise.token(&u).await.unwrap();
    assert!(env
        .mock
        .access_token_is_valid(token.access_token().expose_secret()));
    assert_eq!(env.mock.stats().token_requests("authorization_code"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_completion_of_an_abandoned_refresh_does_not_kill_the_handed_out_token() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let events = EventLog::default();
    let wise = WiseOAuth::builder(config(&env.mock, &Settings::default()))
        .store(env.store.clone())
        .clock(MockClock(env.mock.clone()))
        .on_event(events.handler())
        .lease_ttl(Duration::from_secs(3))
        .refresh_timeout(Duration::from_millis(300))
        .late_completion_bound(Duration::from_millis(1500))
        .build()
        .unwrap();
    // One calm refresh first: it shows that Wise keeps refresh tokens (the emulator's
    // default), the case where a retry must wait out the abandoned call.
    env.mock.advance_clock(EXPIRED);
    wise.token(&u).await.unwrap();
    assert_eq!(env.refresh_successes(), 1);
    env.mock.advance_clock(EXPIRED);
    // Wise completes the next call 700 ms after it was sent, long after the client's
    // 300 ms timeout. A retry sent before then would be killed by that completion.
    env.mock.inject_fault(Fault::late_completion(
        "token:refresh_token",
        Duration::from_millis(700),
    ));
    let token = wise.token(&u).await.unwrap();
    // Both calls were processed by Wise; the one whose answer we used came last.
    wait_for("the late completion", || env.refresh_successes() == 3).await;
    assert!(
        env.mock
            .access_token_is_valid(token.access_token().expose_secret()),
        "the handed-out token survived the late completion"
    );
    let stored = env.stored(&u).await;
    assert_eq!(stored.access_token, token.access_token().expose_secret());
    assert!(env.mock.refresh_token_is_valid(&stored.refresh_token));
}

/// An instance bounded to `max` refresh calls at once.
fn bounded_instance(env: &Env, max: usize) -> WiseOAuth {
    WiseOAuth::builder(config(&env.mock, &Settings::default()))
        .store(env.store.clone())
        .clock(MockClock(env.mock.clone()))
        .max_concurrent_refreshes(max)
        .build()
        .unwrap()
}

/// Asks `wise` for every user's token at once; each must be live at the emulator.
async fn ask_all(env: &Env, wise: &WiseOAuth, users: &[wise_oauth_core::UserId]) {
    let calls: Vec<_> = users
        .iter()
        .map(|u| {
            let (wise, u) = (wise.clone(), u.clone());
            tokio::spawn(async move { wise.token(&u).await })
        })
        .collect();
    for call in calls {
        let token = call.await.unwrap().expect("a token");
        assert!(env
            .mock
            .access_token_is_valid(token.access_token().expose_secret()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_instance_keeps_to_its_bound_on_concurrent_refreshes() {
    const LINKS: u64 = 6;
    let env = Env::new().await;
    let mut users = Vec::new();
    for i in 0..LINKS {
        let email = format!("wave{i}@example.com");
        new_wise_user(&env.mock, &email);
        let u = user(&format!("wave-{i}"));
        link(&env.wise, &env.mock, &u, &email).await;
        users.push(u);
    }
    let (a, b) = (bounded_instance(&env, 2), bounded_instance(&env, 2));
    // Every link expires at once; Wise takes a while over each refresh, so the calls of
    // one instance overlap unless something bounds them.
    env.mock.advance_clock(EXPIRED);
    env.mock.inject_fault(
        Fault::delay("token:refresh_token", Duration::from_millis(300)).times(u32::MAX),
    );
    env.mock.reset_token_in_flight_peak();
    // One instance alone: two calls at Wise at once, never more.
    ask_all(&env, &a, &users).await;
    assert_eq!(env.mock.stats().token_in_flight_peak, 2);
    assert_eq!(env.refresh_successes(), LINKS);

    // Two instances on one store, every link asked on both: at most two calls each, and
    // still one refresh per link.
    env.mock.advance_clock(EXPIRED);
    env.mock.reset_token_in_flight_peak();
    tokio::join!(ask_all(&env, &a, &users), ask_all(&env, &b, &users));
    let peak = env.mock.stats().token_in_flight_peak;
    assert!((2..=4).contains(&peak), "peak {peak}");
    assert_eq!(env.refresh_successes(), 2 * LINKS);
}

/// A store that can forget a link's lease (a failover that loses it), and whose next save
/// waits, before writing, until it is let go.
#[derive(Debug, Clone, Default)]
struct ForgetfulStore {
    inner: MemoryTokenStore,
    holders: Arc<std::sync::Mutex<std::collections::HashMap<LinkKey, LeaseHolder>>>,
    armed: Arc<std::sync::atomic::AtomicBool>,
    at_save: Arc<Notify>,
    release: Arc<Notify>,
}

impl ForgetfulStore {
    async fn forget_lease(&self, key: &LinkKey) {
        let holder = self.holders.lock().unwrap().remove(key).expect("a lease");
        self.inner.release_lease(key, holder).await.unwrap();
    }
}

#[async_trait]
impl TokenStore for ForgetfulStore {
    async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
        self.inner.load(key).await
    }

    async fn save(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            let released = self.release.notified();
            self.at_save.notify_one();
            released.await;
        }
        self.inner.save(key, record, expected).await
    }

    async fn delete(&self, key: &LinkKey) -> Result<bool, StoreError> {
        self.inner.delete(key).await
    }

    async fn acquire_lease(
        &self,
        key: &LinkKey,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let granted = self.inner.acquire_lease(key, holder, ttl).await?;
        if granted {
            self.holders.lock().unwrap().insert(key.clone(), holder);
        }
        Ok(granted)
    }

    async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) -> Result<(), StoreError> {
        self.inner.release_lease(key, holder).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_under_rotation_does_not_strand_the_link() {
    // Wise rotates refresh tokens. A refreshes; the store forgets A's lease before A's
    // save; B takes the lease and refreshes with the refresh token A's call rotated away,
    // so Wise answers B `invalid_grant` and B marks the link. A's valid set must win.
    let mock = start_mock(true).await;
    let store = ForgetfulStore::default();
    let instance = || {
        WiseOAuth::builder(config(&mock, &Settings::default()))
            .store(store.clone())
            .clock(MockClock(mock.clone()))
            .build()
            .unwrap()
    };
    let (a, b) = (instance(), instance());
    let u = user("u1");
    link(&a, &mock, &u, ALICE).await;
    let key = a.link_key(&u);
    mock.advance_clock(EXPIRED);
    store.armed.store(true, Ordering::SeqCst);
    let at_save = store.at_save.notified();
    let refresh = {
        let (a, u) = (a.clone(), u.clone());
        tokio::spawn(async move { a.token(&u).await })
    };
    at_save.await;
    store.forget_lease(&key).await;
    let err = b.token(&u).await.unwrap_err();
    assert!(matches!(err, TokenError::RelinkRequired), "{err:?}");
    assert_eq!(
        stored(&store.inner, &key).await.status,
        LinkStatus::NeedsRelink
    );
    store.release.notify_one();

    let token = refresh.await.unwrap().expect("A's refreshed token");
    assert!(mock.access_token_is_valid(token.access_token().expose_secret()));
    let s = stored(&store.inner, &key).await;
    assert_eq!(s.status, LinkStatus::Active);
    assert!(mock.refresh_token_is_valid(&s.refresh_token));
    // B re-reads its cached verdict within a second (not the 30 s revalidation period of a
    // token) and serves the link: the user is not sent through the link flow.
    mock.advance_clock(Duration::from_secs(2));
    let token = b.token(&u).await.expect("B serves the link again");
    assert!(mock.access_token_is_valid(token.access_token().expose_secret()));
}
