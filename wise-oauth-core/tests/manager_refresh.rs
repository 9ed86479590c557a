//! The token manager's hot path and refresh behaviour, through the public `WiseOAuth`
//! handle against the emulator over loopback.

mod manager_support;

use std::sync::Arc;
use std::time::Duration;

use manager_support::*;
use wise_oauth_core::{LinkStatus, TokenError, WiseEvent};
use wise_oauth_mock::Fault;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_token_makes_no_token_endpoint_calls() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let calls = env.mock.stats().total_token_requests();
    let first = env.wise.token(&u).await.unwrap();
    for _ in 0..100 {
        let again = env.wise.token(&u).await.unwrap();
        assert_eq!(
            again.access_token().expose_secret(),
            first.access_token().expose_secret()
        );
    }
    assert_eq!(env.mock.stats().total_token_requests(), calls);
    assert!(env
        .mock
        .access_token_is_valid(first.access_token().expose_secret()));
    assert_eq!(first.profile_id().get(), env.mock.profile_ids(ALICE)[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_window_serves_current_token_and_refreshes_once_in_background() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let linked = env.stored(&u).await;
    env.mock.advance_clock(IN_WINDOW);

    let served = env.wise.token(&u).await.unwrap();
    assert_eq!(served.access_token().expose_secret(), linked.access_token);
    // More requests while the background refresh runs: still one refresh.
    for _ in 0..20 {
        env.wise.token(&u).await.unwrap();
    }
    env.events.wait_until(|e| e.iter().any(refreshed)).await;
    assert_eq!(env.refreshes(), 1);

    let after = env.wise.token(&u).await.unwrap();
    let stored = env.stored(&u).await;
    assert_ne!(after.access_token().expose_secret(), linked.access_token);
    assert_eq!(after.access_token().expose_secret(), stored.access_token);
    assert!(env.mock.access_token_is_valid(&stored.access_token));
    assert_eq!(env.refreshes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_refreshed_once_and_stored_before_use() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let linked = env.stored(&u).await;
    env.mock.advance_clock(EXPIRED);

    let token = env.wise.token(&u).await.unwrap();
    assert_eq!(env.refreshes(), 1);
    let stored = env.stored(&u).await;
    assert_eq!(token.access_token().expose_secret(), stored.access_token);
    assert!(stored.version > linked.version);
    assert!(env.mock.access_token_is_valid(&stored.access_token));
    assert!(token.expires_at() > env.mock.now());
    // And now it is fresh again: no more calls.
    env.wise.token(&u).await.unwrap();
    assert_eq!(env.refreshes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn herd_of_500_on_an_expired_link_makes_one_refresh() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    env.mock.advance_clock(EXPIRED);

    let start = Arc::new(tokio::sync::Barrier::new(500));
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let wise = env.wise.clone();
            let u = u.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                wise.token(&u).await
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        let token = task.await.unwrap().unwrap();
        tokens.push(token.access_token().expose_secret().to_owned());
    }
    assert_eq!(env.refreshes(), 1);
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "all callers got the same token");
    assert_eq!(tokens[0], env.stored(&u).await.access_token);
    assert!(env.mock.access_token_is_valid(&tokens[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn herd_across_three_instances_sharing_a_store_makes_one_refresh() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let others = [
        env.sibling(&EventLog::default()),
        env.sibling(&EventLog::default()),
    ];
    // Every instance has the link cached before it expires.
    for wise in others.iter().chain([&env.wise]) {
        wise.token(&u).await.unwrap();
    }
    env.mock.advance_clock(EXPIRED);

    let instances = [env.wise.clone(), others[0].clone(), others[1].clone()];
    let start = Arc::new(tokio::sync::Barrier::new(300));
    let mut tasks = Vec::new();
    for wise in &instances {
        for _ in 0..100 {
            let wise = wise.clone();
            let u = u.clone();
            let start = start.clone();
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                wise.token(&u).await
            }));
        }
    }
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(
            task.await
                .unwrap()
                .unwrap()
                .access_token()
                .expose_secret()
                .to_owned(),
        );
    }
    assert_eq!(env.refreshes(), 1);
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens, vec![env.stored(&u).await.access_token]);
}

async fn rotation_case(rotate: bool) {
    let env = Env::with(rotate, Settings::default()).await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let linked = env.stored(&u).await;
    for round in 1..=3u64 {
        env.mock.advance_clock(EXPIRED);
        let token = env.wise.token(&u).await.unwrap();
        assert_eq!(env.refreshes(), round);
        let stored = env.stored(&u).await;
        assert_eq!(token.access_token().expose_secret(), stored.access_token);
        assert!(env.mock.refresh_token_is_valid(&stored.refresh_token));
        let issued = env.mock.user_tokens(ALICE);
        assert!(issued
            .iter()
            .any(|t| t.refresh_token.as_deref() == Some(stored.refresh_token.as_str())));
        if rotate {
            assert_ne!(stored.refresh_token, linked.refresh_token);
            assert!(!env.mock.refresh_token_is_valid(&linked.refresh_token));
        } else {
            assert_eq!(stored.refresh_token, linked.refresh_token);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_refresh_tokens_are_stored() {
    rotation_case(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_rotating_refresh_token_is_kept() {
    rotation_case(false).await;
}

async fn dead_link_case(kill: impl FnOnce(&wise_oauth_mock::MockWiseHandle)) {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let before = env.stored(&u).await;
    kill(&env.mock);
    env.mock.advance_clock(EXPIRED);

    assert_eq!(
        env.wise.token(&u).await.unwrap_err(),
        TokenError::RelinkRequired
    );
    assert_eq!(env.refreshes(), 1);
    let after = env.stored(&u).await;
    assert_eq!(after.status, LinkStatus::NeedsRelink);
    assert_eq!(after.sealed, before.sealed, "tokens kept (I1)");
    assert!(env.wise.status(&u).await.unwrap().unwrap().relink_required);
    assert_eq!(
        env.events
            .count(|e| matches!(e, WiseEvent::RelinkRequired { .. })),
        1
    );

    // No more Wise calls for this link: not from this instance, not after the budget, not
    // from another instance reading the store.
    for _ in 0..10 {
        assert_eq!(
            env.wise.token(&u).await.unwrap_err(),
            TokenError::RelinkRequired
        );
    }
    env.mock.advance_clock(HOUR);
    assert_eq!(
        env.wise.token(&u).await.unwrap_err(),
        TokenError::RelinkRequired
    );
    let other = env.sibling(&EventLog::default());
    assert_eq!(
        other.token(&u).await.unwrap_err(),
        TokenError::RelinkRequired
    );
    let rejected = wise_oauth_core::AccessToken::new(before.access_token.clone());
    assert_eq!(
        other
            .token_after_unauthorized(&u, &rejected)
            .await
            .unwrap_err(),
        TokenError::RelinkRequired
    );
    assert_eq!(env.refreshes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclaimed_account_requires_relink_and_keeps_the_record() {
    dead_link_case(|mock| mock.reclaim(ALICE)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_account_requires_relink_and_keeps_the_record() {
    dead_link_case(|mock| mock.revoke(ALICE)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_email_403_requires_relink() {
    dead_link_case(|mock| mock.change_email(ALICE, "alice.new@example.com")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relink_after_relink_required_works_again() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    env.mock.revoke(ALICE);
    env.mock.advance_clock(EXPIRED);
    assert_eq!(
        env.wise.token(&u).await.unwrap_err(),
        TokenError::RelinkRequired
    );
    link(&env.wise, &env.mock, &u, ALICE).await;
    let token = env.wise.token(&u).await.unwrap();
    assert!(env
        .mock
        .access_token_is_valid(token.access_token().expose_secret()));
    assert_eq!(env.stored(&u).await.status, LinkStatus::Active);
    assert_eq!(env.refreshes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_request_does_not_cancel_the_refresh() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    env.mock.advance_clock(EXPIRED);
    // Hold Wise's answer long enough to drop the waiting request while the refresh runs.
    env.mock.inject_fault(Fault::delay(
        "token:refresh_token",
        Duration::from_millis(1500),
    ));

    let wise = env.wise.clone();
    let waiting = {
        let u = u.clone();
        tokio::spawn(async move { wise.token(&u).await })
    };
    wait_for("the refresh request to reach Wise", || env.refreshes() == 1).await;
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());

    env.events.wait_until(|e| e.iter().any(refreshed)).await;
    let token = env.wise.token(&u).await.unwrap();
    assert_eq!(env.refreshes(), 1, "the next call made no Wise call");
    assert_eq!(
        token.access_token().expose_secret(),
        env.stored(&u).await.access_token
    );
    assert!(env
        .mock
        .access_token_is_valid(token.access_token().expose_secret()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_running_refresh_to_be_stored() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let linked = env.stored(&u).await;
    env.mock.advance_clock(EXPIRED);
    env.mock.inject_fault(Fault::delay(
        "token:refresh_token",
        Duration::from_millis(800),
    ));

    let wise = env.wise.clone();
    let waiting = {
        let u = u.clone();
        tokio::spawn(async move { wise.token(&u).await })
    };
    wait_for("the refresh request to reach Wise", || env.refreshes() == 1).await;
    // The server stops taking requests: the request is gone, the refresh is not.
    waiting.abort();
    // A bound shorter than Wise's answer reports that a refresh is still running...
    assert!(!env.wise.shutdown(Duration::from_millis(1)).await);
    // ...and a sufficient one returns once the refreshed tokens are stored.
    assert!(env.wise.shutdown(Duration::from_secs(20)).await);
    let stored = env.stored(&u).await;
    assert!(
        stored.version > linked.version,
        "stored before shutdown returned"
    );
    assert!(env.mock.access_token_is_valid(&stored.access_token));
    assert_eq!(env.refresh_successes(), 1);
    // Nothing running: returns at once.
    assert!(env.wise.shutdown(Duration::ZERO).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_after_unauthorized_picks_up_a_sibling_refresh() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let b = env.sibling(&EventLog::default());
    let old = b.token(&u).await.unwrap();

    // Instance A refreshes (inside the window), which kills B's cached token at Wise.
    env.mock.advance_clock(IN_WINDOW);
    env.wise.token(&u).await.unwrap();
    env.events.wait_until(|e| e.iter().any(refreshed)).await;
    assert_eq!(env.refreshes(), 1);
    assert!(!env
        .mock
        .access_token_is_valid(old.access_token().expose_secret()));

    let newer = b
        .token_after_unauthorized(&u, old.access_token())
        .await
        .unwrap();
    assert_ne!(
        newer.access_token().expose_secret(),
        old.access_token().expose_secret()
    );
    assert_eq!(
        newer.access_token().expose_secret(),
        env.stored(&u).await.access_token
    );
    assert!(env
        .mock
        .access_token_is_valid(newer.access_token().expose_secret()));
    assert_eq!(env.refreshes(), 1);
    // B's cache now holds the newer token too.
    assert_eq!(
        b.token(&u).await.unwrap().access_token().expose_secret(),
        newer.access_token().expose_secret()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_after_unauthorized_refreshes_once_when_the_store_has_nothing_newer() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let old = env.wise.token(&u).await.unwrap();
    let newer = env
        .wise
        .token_after_unauthorized(&u, old.access_token())
        .await
        .unwrap();
    assert_eq!(env.refreshes(), 1);
    assert_ne!(
        newer.access_token().expose_secret(),
        old.access_token().expose_secret()
    );
    assert_eq!(
        newer.access_token().expose_secret(),
        env.stored(&u).await.access_token
    );
    // The same 401 again within the budget does not call Wise again.
    let again = env
        .wise
        .token_after_unauthorized(&u, old.access_token())
        .await
        .unwrap();
    assert_eq!(
        again.access_token().expose_secret(),
        newer.access_token().expose_secret()
    );
    assert_eq!(env.refreshes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_fire_in_order_after_the_writes() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    env.mock.advance_clock(EXPIRED);
    env.wise.token(&u).await.unwrap();
    env.mock.revoke(ALICE);
    env.mock.advance_clock(EXPIRED);
    assert_eq!(
        env.wise.token(&u).await.unwrap_err(),
        TokenError::RelinkRequired
    );
    assert!(env.wise.unlink(&u).await.unwrap());
    assert!(
        !env.wise.unlink(&u).await.unwrap(),
        "second unlink finds nothing"
    );
    assert_eq!(env.wise.token(&u).await.unwrap_err(), TokenError::NotLinked);
    assert!(env.wise.status(&u).await.unwrap().is_none());

    let profile_id = wise_oauth_core::ProfileId::new(env.mock.profile_ids(ALICE)[0]).unwrap();
    assert_eq!(
        env.events.all(),
        vec![
            WiseEvent::Linked {
                user: u.clone(),
                profile_id
            },
            WiseEvent::Refreshed {
                user: u.clone(),
                profile_id
            },
            WiseEvent::RelinkRequired {
                user: u.clone(),
                profile_id
            },
            WiseEvent::Unlinked { user: u.clone() },
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_linked_user_gets_not_linked_without_wise_calls() {
    let env = Env::new().await;
    assert_eq!(
        env.wise.token(&user("nobody")).await.unwrap_err(),
        TokenError::NotLinked
    );
    assert_eq!(env.mock.stats().total_token_requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_token_is_cached_and_fetched_once_by_concurrent_callers() {
    let env = Env::new().await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let wise = env.wise.clone();
            tokio::spawn(async move { wise.app_token().await })
        })
        .collect();
    let mut values = Vec::new();
    for task in tasks {
        values.push(task.await.unwrap().unwrap().expose_secret().to_owned());
    }
    values.dedup();
    assert_eq!(values.len(), 1);
    assert_eq!(env.mock.stats().token_requests("client_credentials"), 1);
    env.mock.advance_clock(EXPIRED);
    let renewed = env.wise.app_token().await.unwrap();
    assert_ne!(renewed.expose_secret(), values[0]);
    assert_eq!(env.mock.stats().token_requests("client_credentials"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_on_one_instance_reaches_the_others_within_the_revalidation_bound() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let b = env.sibling(&EventLog::default());
    b.token(&u).await.unwrap();
    assert!(env.wise.unlink(&u).await.unwrap());
    assert_eq!(env.wise.token(&u).await.unwrap_err(), TokenError::NotLinked);
    env.mock.advance_clock(PAST_BUDGET);
    assert_eq!(b.token(&u).await.unwrap_err(), TokenError::NotLinked);
    assert!(b.status(&u).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relink_racing_a_refresh_keeps_the_newest_grant() {
    let env = Env::new().await;
    let u = user("u1");
    link(&env.wise, &env.mock, &u, ALICE).await;
    let b = env.sibling(&EventLog::default());
    env.mock.advance_clock(EXPIRED);
    // A's refresh is slow at Wise; B relinks the same user meanwhile.
    env.mock.inject_fault(Fault::delay(
        "token:refresh_token",
        Duration::from_millis(700),
    ));
    let refreshing = {
        let wise = env.wise.clone();
        let u = u.clone();
        tokio::spawn(async move { wise.token(&u).await })
    };
    wait_for("the refresh to reach Wise", || env.refreshes() == 1).await;
    link(&b, &env.mock, &u, ALICE).await;
    let _ = refreshing.await.unwrap();

    // The store holds the newest grant (B's), and Wise accepts it.
    let stored = env.stored(&u).await;
    assert_eq!(stored.status, LinkStatus::Active);
    assert!(env.mock.refresh_token_is_valid(&stored.refresh_token));
    let latest = env
        .mock
        .user_tokens(ALICE)
        .into_iter()
        .find_map(|t| t.refresh_token)
        .unwrap();
    assert_eq!(stored.refresh_token, latest);
    let token = b.token(&u).await.unwrap();
    assert!(env
        .mock
        .access_token_is_valid(token.access_token().expose_secret()));
}
