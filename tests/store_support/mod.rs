//! What the durable-store tests share (`tests/durable_stores.rs`, `tests/redis_store.rs`):
//! the library on the emulator (configuration, an app instance on a store, linking through
//! the flow), the tokens the emulator issued and the checks that none of them is stored in
//! clear, and the demo app on a store.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use reqwest::StatusCode;

use crate::demo::shared::{self, Demo, EmulatorClock, Storage};
use crate::suite::{Browser, TestApp};
use wise_oauth::{
    ClientSecret, EncryptionKeys, Environment, FlowError, LinkStart, PendingStore, TokenStore,
    UserId, WiseConfig, WiseOAuth, MAX_PENDING_PER_USER,
};
use wise_oauth_mock::{MockWise, MockWiseHandle, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};

pub const ALICE: &str = "alice@example.com";
pub const PERSONAL: u64 = 30000000;
/// Past the access token's 12 hours on the emulator's clock.
pub const PAST_EXPIRY: Duration = Duration::from_secs(13 * 3600);
/// A redirect URI registered with the emulator for the tests that call the library directly.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/wise/callback";

// ----- the library on the emulator ---------------------------------------------------------

pub async fn start_emulator() -> MockWiseHandle {
    let emulator = MockWise::builder()
        .start()
        .await
        .expect("start the emulator");
    emulator.register_redirect_uri(DEMO_CLIENT_ID, REDIRECT_URI);
    emulator
}

pub fn config(emulator: &MockWiseHandle) -> WiseConfig {
    let env = Environment::custom("emulator", &emulator.base_url(), &emulator.authorize_url())
        .expect("emulator URLs");
    WiseConfig::builder(
        DEMO_CLIENT_ID,
        ClientSecret::new(DEMO_CLIENT_SECRET),
        REDIRECT_URI,
    )
    .environment(env)
    .build()
    .expect("configuration")
}

/// One instance of an app: its own `WiseOAuth` (cache, manager) on `store`, following the
/// emulator's clock.
pub fn instance<S: TokenStore + PendingStore + Clone>(
    emulator: &MockWiseHandle,
    store: S,
    keys: Option<EncryptionKeys>,
    lease_ttl: Duration,
) -> WiseOAuth {
    let mut builder = WiseOAuth::builder(config(emulator))
        .store(store.clone())
        .pending_store(store)
        .clock(EmulatorClock(emulator.clone()))
        .lease_ttl(lease_ttl);
    if let Some(keys) = keys {
        builder = builder.encryption(keys);
    }
    builder.build().expect("wise-oauth")
}

pub fn user(name: &str) -> UserId {
    UserId::new(name).expect("user id")
}

/// Links `user` to alice's personal profile through the whole flow (auto-approve).
pub async fn link(wise: &WiseOAuth, emulator: &MockWiseHandle, user: &UserId) {
    link_as(wise, emulator, user, ALICE).await;
}

/// Links `user` to the emulator user `email` (auto-approved) through the whole flow.
pub async fn link_as(wise: &WiseOAuth, emulator: &MockWiseHandle, user: &UserId, email: &str) {
    emulator.set_auto_approve(Some(email));
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
    assert!(response.status().is_redirection(), "{}", response.status());
    let location = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let query = location.query().expect("callback query").to_owned();
    wise.complete_link(user, &query, Some(&cookie))
        .await
        .expect("complete link");
}

/// The tokens the emulator holds for alice's link: (access, refresh).
pub fn emulator_tokens(emulator: &MockWiseHandle) -> (String, String) {
    let issued = emulator.user_tokens(ALICE);
    assert_eq!(issued.len(), 1, "one link at the emulator");
    let issued = &issued[0];
    (
        issued.access_token.clone().expect("a valid access token"),
        issued.refresh_token.clone().expect("a valid refresh token"),
    )
}

/// The token values of a plain (unencrypted) sealed record: format byte 0, then JSON.
pub fn plain_tokens(sealed: &[u8]) -> (String, String) {
    assert_eq!(sealed.first(), Some(&0), "a plain record");
    let json: serde_json::Value = serde_json::from_slice(&sealed[1..]).expect("plain JSON");
    (
        json["access_token"].as_str().expect("access").to_owned(),
        json["refresh_token"].as_str().expect("refresh").to_owned(),
    )
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Neither token, in text or hex (either case), appears in `dump`.
pub fn assert_no_token(what: &str, dump: &[u8], tokens: &(String, String)) {
    for (name, token) in [("access", &tokens.0), ("refresh", &tokens.1)] {
        let hex_lower = hex(token.as_bytes());
        for form in [
            token.as_bytes(),
            hex_lower.as_bytes(),
            hex_lower.to_uppercase().as_bytes(),
        ] {
            assert!(
                !contains(dump, form),
                "the {name} token is in the {what} ({} bytes searched)",
                dump.len()
            );
        }
    }
}

/// Three instances (own caches and managers, own connections) × 100 concurrent requests for
/// one expired link: exactly one refresh at Wise, and all 300 get the same, newest token.
pub async fn herd_refreshes_once(emulator: &MockWiseHandle, instances: &[WiseOAuth]) {
    let user = user("herd");
    link(&instances[0], emulator, &user).await;
    let linked = instances[1]
        .token(&user)
        .await
        .expect("token before expiry");
    assert_eq!(emulator.stats().token_requests("refresh_token"), 0);

    emulator.advance_clock(PAST_EXPIRY);
    let mut requests = Vec::new();
    for wise in instances {
        for _ in 0..100 {
            let (wise, user) = (wise.clone(), user.clone());
            requests.push(tokio::spawn(async move { wise.token(&user).await }));
        }
    }
    let mut tokens = Vec::new();
    for request in requests {
        let token = request.await.expect("task").expect("a valid token");
        tokens.push(token.access_token().expose_secret().to_owned());
    }
    assert_eq!(tokens.len(), 300);
    assert_eq!(
        emulator.stats().token_requests("refresh_token"),
        1,
        "exactly one refresh for 3 instances x 100 requests"
    );
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "all 300 requests got the same token"
    );
    assert_ne!(tokens[0], linked.access_token().expose_secret());
    assert_eq!(emulator_tokens(emulator).0, tokens[0], "the newest token");
}

/// Instance A, on `a_runtime`, has started a refresh that Wise holds: waits until Wise has
/// it, kills A, then checks that B (on `b_store`) takes over once the lease expired, that
/// exactly one refresh completed, that the stored tokens are valid at Wise, and that `c`, a
/// fresh instance, refreshes with them after the next expiry.
pub async fn killed_holder_loses_nothing(
    emulator: &MockWiseHandle,
    a_runtime: tokio::runtime::Runtime,
    b: &WiseOAuth,
    b_store: &impl TokenStore,
    user: &UserId,
    c: &WiseOAuth,
) {
    // Wise has A's refresh (so A holds the lease); then A dies.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while emulator.stats().token_requests("refresh_token") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A's refresh never reached the emulator"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a_runtime.shutdown_background();

    // B waits for A's lease to expire, then refreshes once.
    let token = b.token(user).await.expect("B gets a token");
    let stats = emulator.stats();
    assert_eq!(stats.token_requests("refresh_token"), 2, "A's and B's");
    assert_eq!(
        stats.token_successes("refresh_token"),
        1,
        "exactly one refresh completed"
    );
    let stored = b_store
        .load(&b.link_key(user))
        .await
        .expect("load")
        .expect("still linked");
    let (access, refresh) = plain_tokens(stored.value.sealed_tokens.as_bytes());
    assert_eq!(access, token.access_token().expose_secret());
    assert!(emulator.access_token_is_valid(&access));
    assert!(
        emulator.refresh_token_is_valid(&refresh),
        "the stored refresh token is valid at Wise"
    );
    // And it works: one more expiry, one more refresh, through a fresh instance.
    emulator.advance_clock(PAST_EXPIRY);
    let again = c.token(user).await.expect("refresh with the stored token");
    assert_ne!(again.access_token().expose_secret(), access);
    assert_eq!(emulator.stats().token_successes("refresh_token"), 2);
}

// ----- the demo app on a store -------------------------------------------------------------

/// The demo app (axum) on `storage` against `emulator`, served until the handle is stopped.
pub struct RunningDemo {
    pub app: TestApp,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl RunningDemo {
    pub async fn start(storage: &Storage, emulator: &MockWiseHandle) -> RunningDemo {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let wise = shared::emulator_wise(&base_url, emulator, storage).expect("demo backend");
        let router = crate::demo::axum_app::app(Demo::new(wise.clone()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        RunningDemo {
            app: TestApp {
                base_url,
                emulator: emulator.clone(),
                wise,
            },
            stop,
            server,
        }
    }

    /// Stops serving and drops the app's `WiseOAuth` (cache, stores).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("the app stops")
            .expect("server task");
    }
}

/// Logs in as `user` and links alice's personal profile through the demo app's pages;
/// returns the token fingerprint `/api/profile` shows.
pub async fn link_through_demo(app: &TestApp, user: &str) -> String {
    let browser = app.browser(user).await;
    let res = browser.link(ALICE, PERSONAL).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "callback redirects");
    fingerprint(&browser).await
}

pub async fn fingerprint(browser: &Browser) -> String {
    let (status, body) = browser.api_profile().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["profile_id"], PERSONAL);
    body["token_fingerprint"].as_str().unwrap().to_owned()
}

// ----- pending-flow floods ----------------------------------------------------------------

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
pub async fn flood_spares_other_owners<T, P>(emulator: &MockWiseHandle, tokens: T, pending: P)
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
    // Far more than the per-owner cap.
    const { assert!(MAX_PENDING_PER_USER < 100) };
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
}
