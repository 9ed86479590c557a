//! Framework-agnostic core of wise-oauth.
//!
//! Connect your users' Wise accounts over OAuth 2.0 and get a valid access token for any of
//! them at any time. The adapters `wise-oauth-axum` and `wise-oauth-actix` add ready-made
//! routes and a `WiseToken` extractor on top of this crate.

// Module map (one concept per file):
// config   - WiseConfig, Environment presets, from_env
// secret   - redacted newtypes for secrets
// ids      - UserId, ProfileId, LinkKey
// clock    - Clock trait
// token    - TokenSet and expiry arithmetic
// response - the lenient parser of Wise's token JSON
// endpoint - the token endpoint client (four grants, retries, error classification)
// api      - the few Wise API calls the library makes (profiles, signup)
// seal     - sealing token records (plain or AEAD-encrypted) for stores
// store    - TokenStore / PendingStore traits and the built-in stores
// manager  - the hot path: cache, proactive refresh, single flight, leases
// events   - hooks for linked / refreshed / relink required / unlinked
// flow     - the link state machine (start, callback, mobile)
// wise     - the WiseOAuth handle and its builder

mod clock;
mod ids;
mod secret;
mod store;
mod token;

pub use clock::{Clock, SystemClock};
pub use ids::{InvalidProfileId, InvalidUserId, LinkKey, ProfileId, UserId, MAX_USER_ID_LEN};
pub use secret::{
    AccessToken, AuthorizationCode, ClientSecret, CsrfState, PkceVerifier, RefreshToken,
    RegistrationCode,
};
pub use store::{
    BoxError, LeaseHolder, LinkRecord, LinkStatus, PendingStore, SealedTokens, StoreError,
    TokenStore, Version, Versioned, MAX_PENDING_PER_USER,
};
pub use token::TokenSet;
