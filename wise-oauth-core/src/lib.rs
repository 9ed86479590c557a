//! Framework-agnostic core of wise-oauth.
//!
//! Connect your users' Wise accounts over OAuth 2.0 and get a valid access token for any of
//! them at any time. The adapters `wise-oauth-axum` and `wise-oauth-actix` add ready-made
//! routes and a `WiseToken` extractor on top of this crate.
//!
//! Apps depend on the `wise-oauth` crate, which re-exports everything here at its root
//! (`wise_oauth::WiseOAuth`, ...); the examples below are written that way, and the
//! `wise-oauth` docs hold the quick starts per framework and the production guide.
//!
//! # Quick start
//!
//! Build one [`WiseOAuth`] handle at startup, then drive the link flow from two routes of
//! your app (the adapters do exactly this for you) and ask for tokens anywhere:
//!
//! ```no_run
//! # mod wise_oauth { pub use wise_oauth_core::*; }
//! use wise_oauth::{LinkOptions, UserId, WiseConfig, WiseOAuth, BINDING_COOKIE_NAME};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // WISE_ENV, WISE_CLIENT_ID, WISE_CLIENT_SECRET, WISE_REDIRECT_URI, ...
//! let wise = WiseOAuth::builder(WiseConfig::from_env()?).build()?;
//! // The user comes from your own login, never from the request's query or headers.
//! let user = UserId::new("user-42")?;
//!
//! // GET /wise/connect: redirect (303) to Wise with the browser-binding cookie.
//! // value of the cookie named wise.binding_cookie_name() (`__Host-wise_oauth_binding` with https)
//! let browser_cookie: Option<&str> = None;
//! let options = LinkOptions::default().return_to("/settings");
//! let start = wise.start_link(&user, &options, browser_cookie).await?;
//! let (location, set_cookie) = (start.authorize_url().as_str(), start.set_cookie());
//! # let _ = (location, set_cookie);
//!
//! // GET /wise/callback?code=..&state=..&profileId=..: pass the RAW query string.
//! let raw_query = "code=...&state=...&profileId=30000000";
//! match wise.complete_link(&user, raw_query, browser_cookie).await {
//!     // 303 to done.return_to()
//!     Ok(done) => println!("linked profile {} -> {}", done.profile_id(), done.return_to()),
//!     // error.status() and error.reason() ("unknown_state", "access_denied", ...)
//!     Err(error) => eprintln!("{} {}", error.status(), error.reason()),
//! }
//! # let _ = BINDING_COOKIE_NAME;
//!
//! // Anywhere later: an access token that is valid (refreshed and stored when needed).
//! let token = wise.token(&user).await?;
//! let bearer = token.access_token().expose_secret();
//! # let _ = bearer;
//! # Ok(())
//! # }
//! ```
//!
//! # Calling Wise as the user
//!
//! A [`WiseClient`] makes the calls themselves: each takes the user's current token, a 401
//! (another instance refreshed the link) is repeated once with the newer token, and Wise's
//! answers come back typed (re-link, rate limited with `Retry-After`, SCA required, ...):
//!
//! ```no_run
//! # mod wise_oauth { pub use wise_oauth_core::*; }
//! use wise_oauth::{UserId, WiseConfig, WiseOAuth};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let wise = WiseOAuth::builder(WiseConfig::from_env()?).build()?;
//! let user = UserId::new("user-42")?;
//! // In a handler: `token.client()` on the adapters' `WiseToken`.
//! let client = wise.client(&user);
//! for profile in client.profiles().await? {
//!     for balance in client.balances(profile.id, &["STANDARD"]).await? {
//!         println!("{}: {}", balance.id, balance.amount);
//!     }
//! }
//! let me: serde_json::Value = client.get("/v1/me").await?;
//! # let _ = me;
//! # Ok(())
//! # }
//! ```
//!
//! Production deployments add a durable [`TokenStore`] with [`WiseOAuthBuilder::store`],
//! a shared [`PendingStore`] when several instances serve the callback, and
//! [`EncryptionKeys`] with [`WiseOAuthBuilder::encryption`].
//!
//! The link flow binds each `state` to the app user and to the browser, consumes it
//! exactly once before any call to Wise, verifies the callback's `profileId` through the
//! Wise API, and accepts `return_to` only as a local path given at the start.

// Module map (one concept per file):
// config   - WiseConfig, Environment presets, from_env
// secret   - redacted newtypes for secrets
// ids      - UserId, ProfileId, LinkKey
// clock    - Clock trait
// token    - TokenSet and expiry arithmetic
// response - the lenient parser of Wise's token JSON
// endpoint - the token endpoint client (four grants, retries, error classification)
// api      - the few Wise API calls the library makes (profiles, signup)
// client   - WiseClient: calls to Wise as a linked user (401 recovery, typed outcomes), tower layer
// seal     - sealing token records (plain or AEAD-encrypted) for stores
// reseal   - WiseOAuth::reseal: every stored link under the primary key, with a report
// store    - TokenStore / PendingStore traits and the built-in stores
// manager  - the hot path: cache, proactive refresh, single flight, leases
// events   - hooks for linked / refreshed / relink required / unlinked
// flow     - the link state machine (start, callback, mobile)
// webhook  - Wise's webhooks: signature check, dedup, deactivations mark links for re-link
// wise     - the WiseOAuth handle and its builder
// metrics  - counters, gauges, histograms through the `metrics` crate (feature `metrics`)
// web      - everything the adapters share: routes, token extraction, rejections, plugin

mod api;
mod client;
mod clock;
mod config;
mod endpoint;
mod events;
mod flow;
mod ids;
mod manager;
mod reseal;
mod seal;
mod secret;
mod store;
mod token;
mod webhook;
mod wise;

pub mod metrics;
pub mod web;

pub use api::{ProfileKind, ProfileSummary};
/// Re-exported so custom [`TokenStore`], [`PendingStore`] and [`ProfileCheck`] implementations
/// need no extra dependency.
pub use async_trait::async_trait;
pub use client::{
    Balance, ClientError, Money, Statement, StatementQuery, StatementTransaction, WiseAuthLayer,
    WiseAuthService, WiseClient, WiseResponse, MAX_RESPONSE_BYTES,
};
pub use clock::{Clock, SystemClock};
pub use config::{
    ConfigError, Environment, WiseConfig, WiseConfigBuilder, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_ATTEMPTS, DEFAULT_REFRESH_WINDOW, DEFAULT_REQUEST_TIMEOUT, DEFAULT_SKEW,
};
pub use endpoint::{OAuthErrorCode, TlsProblem, TransportError, WiseError};
pub use events::{EventHandler, WiseEvent};
pub use flow::{
    CallbackProblem, FlowError, LinkCompleted, LinkOptions, LinkStart, MobileCallback,
    MobileLinkStart, ProfileCheck, ProviderErrorCode, Registration, RegistrationError,
    BINDING_COOKIE_NAME, DEFAULT_RETURN_TO, SECURE_BINDING_COOKIE_NAME,
};
pub use ids::{InvalidProfileId, InvalidUserId, LinkKey, ProfileId, UserId, MAX_USER_ID_LEN};
pub use manager::{LinkView, TokenError, ValidToken};
pub use reseal::ResealReport;
pub use seal::{EncryptionKeys, InvalidKeys};
pub use secret::{AccessToken, ClientSecret, CsrfState, RegistrationCode};
#[cfg(any(test, feature = "test-util"))]
pub use store::conformance;
pub use store::{
    BoxError, LeaseHolder, LinkPage, LinkRecord, LinkStatus, PendingStore, SealedTokens,
    StoreError, TokenStore, Version, Versioned, MAX_LINK_PAGE, MAX_PENDING_PER_USER,
};
pub use store::{ChangeEvent, LinkChange, LinkChanges, MemoryLinkChanges};
pub use store::{MemoryPendingStore, MemoryTokenStore};
pub use webhook::{
    InvalidWebhookKey, WebhookDelivery, WebhookError, WebhookKey, WebhookOutcome,
    DEFAULT_WEBHOOK_DEDUP_CAPACITY, MAX_WEBHOOK_BODY,
};
pub use wise::{WiseOAuth, WiseOAuthBuilder};
