//! A faithful, stateful emulator of Wise's OAuth 2.0 surface, for tests and demos.
//!
//! It serves the authorization pages (login, 2FA, profile choice, consent), the token
//! endpoint with its four grants, the profile and user API calls made around linking,
//! and a control API under `/__mock/` for counters, user actions, faults and the clock.
//! It implements Wise's OAuth 2.0 behaviour as the rest of this documentation describes it
//! (the pages, the grants and their errors, the API calls, the faults), independently: it
//! shares no code with the client library, so tests that drive one against the other check
//! both.
//!
//! ```
//! use wise_oauth_mock::{MockWise, DEMO_CLIENT_ID};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let wise = MockWise::builder()
//!     .auto_approve("alice@example.com")
//!     .start()
//!     .await?;
//! assert!(wise.base_url().starts_with("http://127.0.0.1:"));
//! assert_eq!(wise.authorize_url(), format!("{}/oauth/authorize", wise.base_url()));
//! assert_eq!(wise.profile_ids("alice@example.com"), vec![30000000, 30000001]);
//! assert_eq!(wise.stats().token_requests("authorization_code"), 0);
//! # let _ = DEMO_CLIENT_ID;
//! wise.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Seed data
//!
//! | user | password | 2FA | profiles (ids are stable) |
//! |---|---|---|---|
//! | `alice@example.com` (user id 10000001) | `password1` | no | personal `30000000`, business `30000001` |
//! | `bob@example.com` (user id 10000002) | `password1` | yes, code `111111` | personal `30000002` |
//!
//! New users get user ids from 10000003 and profile ids from 30000003 on.
//! Unless [`MockWiseBuilder::client`] is called, the demo client [`DEMO_CLIENT_ID`] /
//! [`DEMO_CLIENT_SECRET`] with [`DEMO_REDIRECT_URIS`] is registered.
//!
//! # Behaviour in short
//!
//! * `GET /oauth/authorize[/]`: exact `client_id` / `redirect_uri` check (error page, no
//!   redirect); HTML forms without JavaScript; fields `email`, `password`, `code`
//!   (2FA, `111111`), `profileId`, `decision` (`approve` / `deny`). Approve redirects
//!   (302) with `code`, `state`, `profileId`; deny with `error=access_denied`,
//!   `error_description`, `state`. PKCE (`S256`, `plain`) is enforced when a challenge
//!   was sent.
//! * `POST /oauth/token` and `POST /{YYYY}Q{1-4}/oauth/token`: HTTP Basic, form body,
//!   grants `authorization_code`, `refresh_token`, `registration_code`,
//!   `client_credentials`. Codes are single-use and live 30 minutes; access tokens
//!   43199 s unless configured ([`MockWiseBuilder::access_token_lifetime`],
//!   [`MockWiseHandle::set_access_token_lifetime`], at least 1 s; `expires_in` /
//!   `expires_at` and the API's expiry check follow it); refresh tokens 20 years; UUID
//!   token values; a refresh kills the previous access token; a new code grant kills the
//!   link's old refresh token (its last access token lives on); rotation off unless
//!   switched on.
//! * `GET /v1/me`, `GET /v2/profiles`, `GET /v2/profiles/{id}`, `GET /v1/profiles`,
//!   `POST /v1/user/signup/registration_code`, `POST /v1/users/exists`,
//!   `POST /v1/user/claim-account`. A user token sees only its consented profile.
//! * Every response has `x-trace-id`; `X-External-Correlation-Id` (≤ 36 chars) is echoed.
//! * Optional per-client [`RateLimit`] (off by default; Wise documents 100/s and
//!   1,000/min): over it, token and API calls get 429 with `Retry-After` (whole seconds
//!   until a slot frees) and `X-Rate-Limited-By: wise-public-api`, counted in
//!   [`Stats::rate_limited`]. Sliding windows on the emulator clock.
//! * Faults ([`Fault`]): status replies, delays, 429, SCA 403, dropped connections before
//!   or after processing, and late completion ([`FaultKind::LateCompletion`]): the request
//!   is held, then processed in a task of its own even after the client timed out and
//!   left (Wise finishing an abandoned call); [`MockWiseHandle::wait_for_late_completions`]
//!   awaits it.
//! * Webhooks: `users#state-change` is delivered to every registered subscription when a
//!   user is deactivated (every token revoked) or reactivated, signed
//!   (`X-Signature-SHA256`, RSA-SHA256) with the emulator's own test key
//!   ([`WEBHOOK_PUBLIC_KEY_PEM`], never Wise's) and carrying a fresh `X-Delivery-Id`. As at
//!   Wise, the other user actions (revoke, reclaim, ...) send no webhook.
//! * The clock is real time plus an offset that only moves forward
//!   ([`MockWiseHandle::advance_clock`]); it can be frozen
//!   ([`MockWiseHandle::freeze_clock`]) so that expiry and rate-limit windows do not
//!   depend on how fast a test runs.
//! * Control API: `GET /__mock/stats`, `GET /__mock/users/{email}/tokens`,
//!   `POST /__mock/users/{email}/{reclaim|revoke|change-email|enable-2fa|enhanced-security}`,
//!   `POST /__mock/users`, `POST|GET|DELETE /__mock/faults`,
//!   `POST /__mock/users/{email}/{deactivate|reactivate}` (with a webhook),
//!   `POST|GET /__mock/webhooks/subscriptions` (`{"url"}`), `GET /__mock/webhooks/deliveries`,
//!   `POST /__mock/webhooks/deliveries/{id}/redeliver`, `POST /__mock/webhooks/deliver-due`
//!   (retries due by the emulator clock), `GET /__mock/webhook-key`,
//!   and Wise's own `/v3/applications/{clientKey}/subscriptions[/{id}[/test-notifications]]`
//!   (client-credentials token; the client key is the client id),
//!   `POST|GET /__mock/clock` (`{"advance_secs", "advance_ms", "frozen"}`),
//!   `POST|GET /__mock/config` (`{"auto_approve", "rotate_refresh_tokens", "rate_limit":
//!   {"per_second", "per_minute"} | null, "access_token_lifetime_secs"}`, fields optional),
//!   `POST /__mock/clients`, `POST /__mock/reset`. Each is also a method on
//!   [`MockWiseHandle`].

mod api;
mod authorize;
mod balances;
mod clock;
mod control;
mod error;
mod faults;
mod handle;
mod html;
mod limits;
mod server;
mod state;
mod stats;
mod tls;
mod token;
mod users;
mod wallet;
mod webhooks;

pub use error::MockError;
pub use faults::{Fault, FaultKind};
pub use handle::{
    MockWise, MockWiseBuilder, MockWiseHandle, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET,
    DEMO_REDIRECT_URIS,
};
pub use limits::RateLimit;
pub use stats::{GrantStats, Stats};
pub use tls::{ClientAuth, ClientIdentity};
pub use users::{CreatedUser, IssuedTokens, NewProfile, NewUser, ProfileKind};
pub use webhooks::{WebhookDelivery, WebhookSubscription, WEBHOOK_PUBLIC_KEY_PEM};
