//! Tokens of any lifetime: a standard OAuth server (not Wise) that issues access tokens
//! living 30 s. The refresh window and the skew scale down with the lifetime, so the token
//! is refreshed about once per lifetime and never answered "unavailable" while the server
//! is healthy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::post;
use axum::{Json, Router};
use wise_oauth_core::{
    ClientSecret, Clock, Environment, LinkRecord, LinkStatus, MemoryTokenStore, ProfileId,
    SealedTokens, TokenStore, UserId, WiseConfig, WiseOAuth,
};

const LIFETIME_SECS: u64 = 30;

/// A clock the test moves by hand.
#[derive(Debug, Clone)]
struct ManualClock(Arc<Mutex<SystemTime>>);

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

impl ManualClock {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

/// Starts the token server; returns its base URL and its count of refresh grants.
async fn token_server() -> (String, Arc<AtomicU64>) {
    let refreshes = Arc::new(AtomicU64::new(0));
    let counter = refreshes.clone();
    let app = Router::new().route(
        "/oauth/token",
        post(move |body: String| {
            let counter = counter.clone();
            async move {
                assert!(body.contains("grant_type=refresh_token"), "{body}");
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                Json(serde_json::json!({
                    "access_token": format!("AT-{n}"),
                    "token_type": "bearer",
                    "refresh_token": "RT-1",
                    "expires_in": LIFETIME_SECS,
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), refreshes)
}

fn nanos(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_nanos()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_second_token_is_refreshed_about_once_per_lifetime() {
    let (base, refreshes) = token_server().await;
    let clock = ManualClock(Arc::new(Mutex::new(SystemTime::now())));
    let env = Environment::custom("standard", &base, &format!("{base}/authorize")).unwrap();
    let config = WiseConfig::builder(
        "client",
        ClientSecret::new("secret"),
        "http://127.0.0.1:3000/wise/callback",
    )
    .environment(env)
    .build()
    .unwrap();
    let store = MemoryTokenStore::default();
    let wise = WiseOAuth::builder(config)
        .store(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    // A link as the flow would have stored it (plain format: byte 0, then JSON).
    let user = UserId::new("u1").unwrap();
    let now = clock.now();
    let expires_at = now + Duration::from_secs(LIFETIME_SECS);
    let mut sealed = vec![0u8];
    sealed.extend(
        serde_json::to_vec(&serde_json::json!({
            "v": 1,
            "access_token": "AT-0",
            "refresh_token": "RT-1",
            "expires_at": nanos(expires_at),
            "obtained_at": nanos(now),
        }))
        .unwrap(),
    );
    let record = LinkRecord::new(
        ProfileId::new(1).unwrap(),
        LinkStatus::Active,
        expires_at,
        now,
        now,
        SealedTokens::new(sealed),
    );
    store
        .save(&wise.link_key(&user), &record, None)
        .await
        .unwrap();

    // Two minutes of use, a request every 2 s: every one gets a token with time left.
    let steps = 60;
    for step in 0..steps {
        clock.advance(Duration::from_secs(2));
        let token = wise
            .token(&user)
            .await
            .unwrap_or_else(|e| panic!("step {step}: {e:?}"));
        assert!(
            token.expires_at() > clock.now(),
            "step {step}: expired token"
        );
        // Let a background refresh started by this request land before the clock moves.
        assert!(wise.shutdown(Duration::from_secs(5)).await);
    }
    let total = refreshes.load(Ordering::SeqCst);
    let elapsed = 2 * steps;
    // Window = 15 s (half the lifetime): a refresh every ~15-16 s of use.
    assert!(
        total >= elapsed / LIFETIME_SECS && total <= elapsed / (LIFETIME_SECS / 2) + 1,
        "{total} refreshes in {elapsed} s for a {LIFETIME_SECS} s token"
    );
}
