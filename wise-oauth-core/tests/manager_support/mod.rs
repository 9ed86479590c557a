//! Shared helpers of the token manager tests: the emulator over loopback, a clock that
//! follows the emulator's, an event recorder and a reader of stored (plain) records.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use wise_oauth_core::{
    ClientSecret, Clock, Environment, EventHandler, LinkKey, LinkStatus, MemoryTokenStore,
    TokenStore, UserId, Version, WiseConfig, WiseEvent, WiseOAuth,
};
use wise_oauth_mock::{MockWise, MockWiseHandle, NewUser};

pub const CLIENT_ID: &str = "manager-test-client";
pub const CLIENT_SECRET: &str = "manager-test-secret";
pub const REDIRECT_URI: &str = "http://127.0.0.1:3000/wise/callback";
pub const ALICE: &str = "alice@example.com";

pub const HOUR: Duration = Duration::from_secs(3600);
/// Past the 12 h lifetime of an emulator access token.
pub const EXPIRED: Duration = Duration::from_secs(13 * 3600);
/// Inside the default 6 h refresh window, still valid.
pub const IN_WINDOW: Duration = Duration::from_secs(7 * 3600);
/// Past the "one refresh per link per 30 s" budget.
pub const PAST_BUDGET: Duration = Duration::from_secs(31);

/// A clock that follows the emulator's (so advancing the emulator expires our tokens).
#[derive(Debug, Clone)]
pub struct MockClock(pub MockWiseHandle);

impl Clock for MockClock {
    fn now(&self) -> SystemTime {
        self.0.now()
    }
}

/// Records events and wakes waiters.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    inner: Arc<(Mutex<Vec<WiseEvent>>, tokio::sync::Notify)>,
}

impl EventLog {
    pub fn handler(&self) -> impl EventHandler {
        let log = self.clone();
        move |event: &WiseEvent| {
            log.inner.0.lock().unwrap().push(event.clone());
            log.inner.1.notify_waiters();
        }
    }

    pub fn all(&self) -> Vec<WiseEvent> {
        self.inner.0.lock().unwrap().clone()
    }

    pub fn count(&self, pred: impl Fn(&WiseEvent) -> bool) -> usize {
        self.inner
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| pred(e))
            .count()
    }

    /// Waits (bounded, 20 s) until `pred` holds for the recorded events.
    pub async fn wait_until(&self, pred: impl Fn(&[WiseEvent]) -> bool) {
        let wait = async {
            loop {
                let notified = self.inner.1.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if pred(&self.inner.0.lock().unwrap()) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .expect("event did not arrive");
    }
}

pub fn refreshed(e: &WiseEvent) -> bool {
    matches!(e, WiseEvent::Refreshed { .. })
}

/// Waits (bounded, 20 s) until `cond` holds; for emulator counters that have no
/// notification. Yields between checks.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let wait = async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

pub fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

pub fn no_redirect_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// How to configure a `WiseOAuth` for a test.
#[derive(Debug, Clone)]
pub struct Settings {
    pub client_secret: String,
    pub request_timeout: Duration,
    pub max_attempts: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            client_secret: CLIENT_SECRET.to_owned(),
            request_timeout: Duration::from_secs(5),
            max_attempts: 3,
        }
    }
}

pub async fn start_mock(rotate: bool) -> MockWiseHandle {
    MockWise::builder()
        .client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
        .rotate_refresh_tokens(rotate)
        .start()
        .await
        .unwrap()
}

pub fn config(mock: &MockWiseHandle, settings: &Settings) -> WiseConfig {
    let env = Environment::custom("emulator", &mock.base_url(), &mock.authorize_url()).unwrap();
    WiseConfig::builder(
        CLIENT_ID,
        ClientSecret::new(settings.client_secret.clone()),
        REDIRECT_URI,
    )
    .environment(env)
    .request_timeout(settings.request_timeout)
    .connect_timeout(Duration::from_secs(2))
    .max_attempts(settings.max_attempts)
    .build()
    .unwrap()
}

/// A `WiseOAuth` on `store`, following the emulator's clock, recording into `events`.
pub fn instance(
    mock: &MockWiseHandle,
    store: Arc<dyn TokenStore>,
    events: &EventLog,
    settings: &Settings,
) -> WiseOAuth {
    WiseOAuth::builder(config(mock, settings))
        .store(store)
        .clock(MockClock(mock.clone()))
        .on_event(events.handler())
        .build()
        .unwrap()
}

/// One emulator, one store, one instance.
pub struct Env {
    pub mock: MockWiseHandle,
    pub store: MemoryTokenStore,
    pub wise: WiseOAuth,
    pub events: EventLog,
}

impl Env {
    pub async fn new() -> Self {
        Self::with(false, Settings::default()).await
    }

    pub async fn with(rotate: bool, settings: Settings) -> Self {
        let mock = start_mock(rotate).await;
        let store = MemoryTokenStore::default();
        let events = EventLog::default();
        let wise = instance(&mock, Arc::new(store.clone()), &events, &settings);
        Self {
            mock,
            store,
            wise,
            events,
        }
    }

    /// Another instance of the app on the same store and emulator.
    pub fn sibling(&self, events: &EventLog) -> WiseOAuth {
        instance(
            &self.mock,
            Arc::new(self.store.clone()),
            events,
            &Settings::default(),
        )
    }

    pub fn key(&self, user: &UserId) -> LinkKey {
        self.wise.link_key(user)
    }

    pub fn refreshes(&self) -> u64 {
        self.mock.stats().token_requests("refresh_token")
    }

    pub fn refresh_successes(&self) -> u64 {
        self.mock.stats().token_successes("refresh_token")
    }

    pub async fn stored(&self, user: &UserId) -> Stored {
        stored(&self.store, &self.key(user)).await
    }
}

/// Links `user` to the emulator user `email` through the real flow (auto-approve).
pub async fn link(wise: &WiseOAuth, mock: &MockWiseHandle, user: &UserId, email: &str) {
    let (query, cookie) = consent(wise, mock, user, email).await;
    wise.complete_link(user, &query, Some(&cookie))
        .await
        .unwrap();
}

/// Starts a link flow and lets the emulator approve it: the callback's raw query and the
/// binding cookie's value, ready for `complete_link`.
pub async fn consent(
    wise: &WiseOAuth,
    mock: &MockWiseHandle,
    user: &UserId,
    email: &str,
) -> (String, String) {
    mock.set_auto_approve(Some(email));
    let start = wise
        .start_link(user, &Default::default(), None)
        .await
        .unwrap();
    let cookie = start
        .set_cookie()
        .split(';')
        .next()
        .and_then(|c| c.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap();
    let response = no_redirect_client()
        .get(start.authorize_url().clone())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    (location.query().unwrap().to_owned(), cookie)
}

/// Creates an emulator user with one personal profile.
pub fn new_wise_user(mock: &MockWiseHandle, email: &str) {
    mock.create_user(NewUser::new(email, "password1")).unwrap();
}

/// A stored record, opened (the tests run without encryption keys, so the sealed bytes are
/// format byte 0 followed by JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub version: Version,
    pub status: LinkStatus,
    pub access_token: String,
    pub refresh_token: String,
    pub sealed: Vec<u8>,
}

pub async fn stored(store: &dyn TokenStore, key: &LinkKey) -> Stored {
    let record = store.load(key).await.unwrap().expect("a stored link");
    let sealed = record.value.sealed_tokens.as_bytes().to_vec();
    assert_eq!(sealed[0], 0, "plain record expected in tests");
    let json: serde_json::Value = serde_json::from_slice(&sealed[1..]).unwrap();
    Stored {
        version: record.version,
        status: record.value.status,
        access_token: json["access_token"].as_str().unwrap().to_owned(),
        refresh_token: json["refresh_token"].as_str().unwrap().to_owned(),
        sealed,
    }
}
