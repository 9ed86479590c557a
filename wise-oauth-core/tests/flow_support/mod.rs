//! Shared helpers of the flow and `WiseOAuth` integration tests (emulator over loopback).
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use url::Url;
use wise_oauth_core::{
    ClientSecret, Clock, Environment, FlowError, LinkCompleted, LinkStart, UserId, WiseConfig,
    WiseOAuth,
};
use wise_oauth_mock::{MockWise, MockWiseHandle};

pub const CLIENT_ID: &str = "flow-test-client";
pub const CLIENT_SECRET: &str = "flow-test-secret";
pub const REDIRECT_URI: &str = "http://127.0.0.1:3000/wise/callback";
pub const MOBILE_REDIRECT_URI: &str = "wiseoauthdemo://wise/callback";
pub const ALICE: &str = "alice@example.com";
pub const BOB: &str = "bob@example.com";

/// A clock that follows the real one plus an adjustable offset.
#[derive(Debug, Clone, Default)]
pub struct TestClock {
    offset: Arc<Mutex<Duration>>,
}

impl TestClock {
    pub fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + *self.offset.lock().unwrap()
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub client_secret: String,
    pub redirect_uri: String,
    pub pkce: bool,
    pub auto_approve: Option<&'static str>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            client_secret: CLIENT_SECRET.to_owned(),
            redirect_uri: REDIRECT_URI.to_owned(),
            pkce: false,
            auto_approve: Some(ALICE),
        }
    }
}

pub struct Env {
    pub mock: MockWiseHandle,
    pub wise: WiseOAuth,
    pub clock: TestClock,
    pub http: reqwest::Client,
    pub options: Options,
}

pub fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

pub async fn setup() -> Env {
    setup_with(Options::default()).await
}

pub async fn setup_with(options: Options) -> Env {
    let mut builder = MockWise::builder().client(
        CLIENT_ID,
        options.client_secret.clone(),
        [options.redirect_uri.clone(), MOBILE_REDIRECT_URI.to_owned()],
    );
    if let Some(email) = options.auto_approve {
        builder = builder.auto_approve(email);
    }
    let mock = builder.start().await.unwrap();
    let clock = TestClock::default();
    let wise = wise_for(&mock, &options, &clock);
    Env {
        mock,
        wise,
        clock,
        http: no_redirect_client(),
        options,
    }
}

pub fn no_redirect_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn config_for(mock: &MockWiseHandle, options: &Options) -> WiseConfig {
    let env = Environment::custom("emulator", &mock.base_url(), &mock.authorize_url()).unwrap();
    WiseConfig::builder(
        CLIENT_ID,
        ClientSecret::new(options.client_secret.clone()),
        options.redirect_uri.clone(),
    )
    .environment(env)
    .mobile_redirect_uri(MOBILE_REDIRECT_URI)
    .pkce(options.pkce)
    .build()
    .unwrap()
}

pub fn wise_for(mock: &MockWiseHandle, options: &Options, clock: &TestClock) -> WiseOAuth {
    WiseOAuth::builder(config_for(mock, options))
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// The value of the binding cookie in a `Set-Cookie` string.
pub fn cookie_value(set_cookie: &str) -> String {
    let first = set_cookie.split(';').next().unwrap();
    first.split_once('=').unwrap().1.to_owned()
}

/// A query parameter of a URL (decoded).
pub fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Env {
    /// Follows the authorize URL at the emulator (auto-approve) and returns the `Location`
    /// it redirects to.
    pub async fn authorize(&self, authorize_url: &Url) -> Url {
        let response = self.http.get(authorize_url.clone()).send().await.unwrap();
        assert!(
            response.status().is_redirection(),
            "authorize answered {}",
            response.status()
        );
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        Url::parse(&location).unwrap()
    }

    /// The raw callback query Wise sends back for this start.
    pub async fn callback_query(&self, start: &LinkStart) -> String {
        let location = self.authorize(start.authorize_url()).await;
        assert!(location.as_str().starts_with(&self.options.redirect_uri));
        location.query().unwrap().to_owned()
    }

    /// Runs a whole web flow for `user` in a browser with `cookie`.
    pub async fn link(&self, user: &UserId) -> Result<LinkCompleted, FlowError> {
        let start = self
            .wise
            .start_link(user, &Default::default(), None)
            .await
            .unwrap();
        let cookie = cookie_value(start.set_cookie());
        let query = self.callback_query(&start).await;
        self.wise.complete_link(user, &query, Some(&cookie)).await
    }

    pub fn token_calls(&self) -> u64 {
        self.mock.stats().total_token_requests()
    }

    pub fn code_exchanges(&self) -> u64 {
        self.mock.stats().token_requests("authorization_code")
    }
}

/// Replaces (or removes, with `None`) one parameter of a raw query, keeping the others
/// byte for byte.
pub fn with_param(query: &str, name: &str, value: Option<&str>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut replaced = false;
    for pair in query.split('&') {
        let key = pair.split('=').next().unwrap();
        if key == name {
            replaced = true;
            if let Some(v) = value {
                out.push(format!("{name}={v}"));
            }
        } else {
            out.push(pair.to_owned());
        }
    }
    if !replaced {
        if let Some(v) = value {
            out.push(format!("{name}={v}"));
        }
    }
    out.join("&")
}

/// A parameter of a raw query (raw, not decoded).
pub fn raw_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}
