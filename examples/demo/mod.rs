//! The demo app behind `cargo run --example axum`, shared with the behaviour suite
//! (`tests/suite`) through `#[path]`, so the suite drives exactly the app users run.
//!
//! `shared` is framework-neutral (emulator wiring, demo sessions, pages); each adapter has
//! its own small app module with the same routes:
//!
//! | route | what |
//! |---|---|
//! | `GET /` | home page: login form, link status, Connect / Disconnect buttons |
//! | `GET /demo/login?user=NAME` | demo login: sets the `demo_session` cookie, 303 to `/` |
//! | `POST /demo/logout` | ends the demo session |
//! | `GET /profile` | HTML page using `WiseToken::client_for`: the linked profile (`/v2/profiles/{id}`) and its balances |
//! | `GET /api/profile` | the same as JSON: `{"user", "profile_id", "token_fingerprint", "profile", "balances"}` |
//! | `GET /statement?balance=&currency=` | an SCA-protected call: the statement, or Wise's challenge explained (with an approve button on the emulator) |
//! | `POST /statement/approve` | approves the one-time token at the emulator, repeats the call with `with_sca_approval`, shows the statement |
//! | `GET /metrics` | with `--features metrics`: the library's figures in the Prometheus text format (`metrics-exporter-prometheus`) |
//! | `/wise/...` | the plugin's routes |
#![allow(dead_code)]

pub(crate) mod axum_app;
pub(crate) mod shared;
