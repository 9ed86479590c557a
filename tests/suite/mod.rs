//! The behaviour suite, written once against "an app on a port" and run for every adapter.
//!
//! An adapter's test file (e.g. `tests/axum_suite.rs`) does three things:
//!
//! ```ignore
//! #[path = "../examples/demo/mod.rs"] mod demo;   // the demo app (same for the example)
//! mod suite;
//! async fn start() -> suite::TestApp {
//!     suite::TestApp::start(|listener, demo| { /* serve demo app on listener */ }).await
//! }
//! suite::behaviour_suite!(start);                 // one #[tokio::test] per behaviour
//! ```
//!
//! The app under test must serve the demo routes (`GET /demo/login?user=`, `GET /profile`
//! (HTML-aware, uses `WiseToken`), `GET /api/profile` (JSON with `profile_id` and
//! `token_fingerprint`)) and the plugin routes under `/wise`. Each test gets its own
//! emulator (interactive, not auto-approve) and app on `127.0.0.1:0`.
#![allow(dead_code)]

pub(crate) mod browser;
pub(crate) mod cases;
pub(crate) mod hardening;
pub(crate) mod hooks;

use std::sync::Arc;

use wise_oauth::{ClientSecret, Environment, WiseConfig, WiseOAuth};
use wise_oauth_mock::{MockWise, MockWiseHandle, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};

use crate::demo::shared::{self, Demo, EmulatorClock};

pub(crate) use browser::Browser;

/// A running app with its emulator.
pub(crate) struct TestApp {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub(crate) base_url: String,
    pub(crate) emulator: MockWiseHandle,
    pub(crate) wise: WiseOAuth,
}

impl TestApp {
    /// Binds `127.0.0.1:0`, starts the emulator with the app's redirect URI registered,
    /// builds the library with a clock following the emulator, and hands the listener and
    /// the demo state to `serve`, which must start serving in the background.
    pub(crate) async fn start(serve: impl FnOnce(std::net::TcpListener, Arc<Demo>)) -> TestApp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let (wise, emulator) = shared::emulator_backend(&base_url).await;
        serve(listener, Demo::new(wise.clone()));
        TestApp {
            base_url,
            emulator,
            wise,
        }
    }

    /// Like [`TestApp::start`], with the library built as `setup` says.
    pub(crate) async fn start_with(
        setup: Setup,
        serve: impl FnOnce(std::net::TcpListener, Arc<Demo>),
    ) -> TestApp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let emulator = MockWise::builder()
            .start()
            .await
            .expect("start the emulator");
        let redirect_uri = setup
            .redirect_uri
            .unwrap_or_else(|| format!("{base_url}/wise/callback"));
        emulator.register_redirect_uri(DEMO_CLIENT_ID, &redirect_uri);
        let environment =
            Environment::custom("emulator", &emulator.base_url(), &emulator.authorize_url())
                .expect("emulator URLs");
        let config = WiseConfig::builder(
            DEMO_CLIENT_ID,
            ClientSecret::new(DEMO_CLIENT_SECRET),
            redirect_uri,
        )
        .environment(environment)
        .build()
        .expect("configuration");
        let mut builder = WiseOAuth::builder(config).clock(EmulatorClock(emulator.clone()));
        if let Some(n) = setup.max_concurrent_exchanges {
            builder = builder.max_concurrent_exchanges(n);
        }
        let wise = builder.build().expect("wise-oauth");
        serve(listener, Demo::new(wise.clone()));
        TestApp {
            base_url,
            emulator,
            wise,
        }
    }

    /// A new browser (own cookie jar) logged in to the demo app as `user`.
    pub(crate) async fn browser(&self, user: &str) -> Browser {
        let b = Browser::new(self);
        b.login(user).await;
        b
    }

    /// A second handle on the same emulator whose redirect URI is `{base_url}{callback_path}`
    /// (registered with the emulator), for routes under another prefix.
    pub(crate) fn wise_with_callback(&self, callback_path: &str) -> WiseOAuth {
        let redirect_uri = format!("{}{callback_path}", self.base_url);
        self.emulator
            .register_redirect_uri(DEMO_CLIENT_ID, &redirect_uri);
        let environment = Environment::custom(
            "emulator",
            &self.emulator.base_url(),
            &self.emulator.authorize_url(),
        )
        .expect("emulator URLs");
        let config = WiseConfig::builder(
            DEMO_CLIENT_ID,
            ClientSecret::new(DEMO_CLIENT_SECRET),
            redirect_uri,
        )
        .environment(environment)
        .build()
        .expect("configuration");
        WiseOAuth::builder(config).build().expect("wise-oauth")
    }

    /// All POSTs the emulator's token endpoint has seen.
    pub(crate) fn token_calls(&self) -> u64 {
        self.emulator.stats().total_token_requests()
    }

    pub(crate) fn refresh_calls(&self) -> u64 {
        self.emulator.stats().token_requests("refresh_token")
    }

    pub(crate) fn code_calls(&self) -> u64 {
        self.emulator.stats().token_requests("authorization_code")
    }
}

/// How a hardening case wants the library built (see [`TestApp::start_with`]).
#[derive(Debug, Default, Clone)]
pub(crate) struct Setup {
    /// The configured (and registered) redirect URI instead of the app's own `http` one;
    /// the app still listens on plain `http` on loopback.
    pub(crate) redirect_uri: Option<String>,
    /// [`wise_oauth::WiseOAuthBuilder::max_concurrent_exchanges`].
    pub(crate) max_concurrent_exchanges: Option<usize>,
}

/// Expands to one `#[tokio::test]` per hardening case (tests/suite/hardening.rs); each
/// case builds its app with `$start_with(Setup)`.
macro_rules! hardening_suite {
    ($start_with:path) => {
        $crate::suite::hardening_suite!(@tests $start_with;
            secure_binding_cookie_has_the_host_prefix,
            exchange_cap_answers_busy_and_loses_no_code,
            one_browser_flooding_connect_leaves_other_users_flows_intact,
            error_pages_link_only_to_local_paths,
            metrics_page_in_prometheus_format,
        );
    };
    (@tests $start_with:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                suite::hardening::$name($start_with).await;
            }
        )*
    };
}
pub(crate) use hardening_suite;

/// Expands to one `#[tokio::test]` per behaviour, each on a fresh app from `$start`.
macro_rules! behaviour_suite {
    ($start:path) => {
        $crate::suite::behaviour_suite!(@tests $start;
            full_link_lifecycle,
            not_logged_in_gets_401_everywhere,
            status_never_shows_a_token,
            callback_without_state_is_rejected,
            replayed_state_is_rejected,
            state_from_another_browser_is_rejected,
            state_of_another_app_user_is_rejected,
            access_denied_is_a_clean_page,
            error_description_is_escaped,
            hostile_return_to_lands_on_root,
            malformed_profile_id_is_rejected_before_exchange,
            foreign_profile_id_is_rejected_and_nothing_stored,
            duplicated_parameters_are_rejected,
            oversized_query_is_rejected,
            implicit_flow_parameters_are_rejected,
            cross_site_disconnect_is_refused,
            same_origin_disconnect_for_json_clients,
            user_is_never_taken_from_query_or_header,
            mobile_link_flow,
            mobile_routes_refuse_cross_site,
            two_tabs_link_and_the_later_grant_wins,
            sca_protected_statement_walkthrough,
        );
    };
    (@tests $start:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let app = $start().await;
                suite::cases::$name(&app).await;
            }
        )*
    };
}
pub(crate) use behaviour_suite;
