//! Connect your users' Wise accounts over OAuth 2.0 from axum or actix-web, and call Wise
//! on their behalf with an access token that is always valid.
//!
//! This is the crate to depend on: everything of the framework-agnostic core is
//! re-exported at the root ([`WiseOAuth`], [`WiseConfig`], [`EncryptionKeys`], the stores,
//! the errors, ...), the adapters and durable stores live in feature-gated modules, and
//! every example in these docs is written against it (`use wise_oauth::...`).
//!
//! | feature | module | contents |
//! |---|---|---|
//! | `axum` | `wise_oauth::axum` | routes (`/wise/connect`, `/wise/callback`, ...) and the `WiseToken` extractor |
//! | `actix` | `wise_oauth::actix` | the same for actix-web |
//! | `sqlite`, `postgres` | `wise_oauth::sqlx` | durable token stores (SQLite; PostgreSQL shared by several instances) |
//! | `redis` | `wise_oauth::redis` | the shared token and pending store on Redis |
//! | `test-util` | [`conformance`], [`token_store_conformance!`], [`pending_store_conformance!`] | the store conformance suite and the fault-injecting `FaultyStore`, for your own store |
//!
//! The quick starts below (one per adapter, shown with its feature) are complete programs;
//! [`docs::production`] is the guide to a deployment: durable store, keys, rotation,
//! several instances, shutdown, monitoring.
//!
//! # The app's hooks
//!
//! Both adapters' `WiseRoutes` take the same hooks (defined once in [`web::Hooks`]):
//! `login_url("/login?next={return_to}")` sends a logged-out browser to your login instead
//! of a 401 page; `error_redirect(true)` brings a declined or failed link back into your
//! app (`/settings?wise_error=access_denied`) instead of the plugin's error page;
//! `pages(...)` renders the plugin's HTML pages your way ([`web::Pages`]: branding,
//! translation); `async_user_resolver(...)` finds the user through an `.await` (a session
//! store). `check()` returns what `router()` / `configure()` would refuse at start-up,
//! e.g. a redirect URI whose path is not the mounted callback route.
//!
//! # Your own store
//!
//! With the `test-util` feature (as a dev-dependency), a custom [`TokenStore`] and
//! [`PendingStore`] run the whole conformance suite through this crate alone (your crate
//! needs `tokio` with `macros` and `rt-multi-thread` for the generated tests);
//! `examples/custom_store.rs` is a complete store that does:
//!
//! ```
//! # #[cfg(feature = "test-util")]
//! # mod tests {
//! use wise_oauth::{MemoryPendingStore, MemoryTokenStore};
//!
//! // One #[tokio::test] per rule, each on a fresh store (`async { .. }` works too).
//! wise_oauth::token_store_conformance!(my_tokens, MemoryTokenStore::default());
//! wise_oauth::pending_store_conformance!(my_pending, MemoryPendingStore::default());
//! # }
//! ```
#![cfg_attr(feature = "axum", doc = "")]
#![cfg_attr(feature = "axum", doc = include_str!("../docs/quick-start-axum.md"))]
#![cfg_attr(feature = "actix", doc = "")]
#![cfg_attr(feature = "actix", doc = include_str!("../docs/quick-start-actix.md"))]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub use wise_oauth_core::*;

/// The store conformance suite (feature `test-util`): the cases, the `FaultyStore`
/// wrapper that injects store outages, and the macros that generate one test per case.
#[cfg(feature = "test-util")]
pub use wise_oauth_core::{conformance, pending_store_conformance, token_store_conformance};

/// The axum adapter: ready-made routes and the `WiseToken` extractor
/// (see the `wise-oauth-axum` crate).
#[cfg(feature = "axum")]
pub mod axum {
    pub use wise_oauth_axum::*;
}

/// The actix-web adapter: ready-made routes (`App::configure`), the `WiseToken` extractor
/// and its `ResponseError` rejection (see the `wise-oauth-actix` crate).
#[cfg(feature = "actix")]
pub mod actix {
    pub use wise_oauth_actix::*;
}

/// Durable stores: [`SqliteTokenStore`](wise_oauth_sqlx::SqliteTokenStore) (feature
/// `sqlite`) and [`PostgresTokenStore`](wise_oauth_sqlx::PostgresTokenStore) (feature
/// `postgres`), from the `wise-oauth-sqlx` crate.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod sqlx {
    pub use wise_oauth_sqlx::*;
}

/// The shared store on Redis: [`RedisTokenStore`](wise_oauth_redis::RedisTokenStore)
/// (feature `redis`), from the `wise-oauth-redis` crate.
#[cfg(feature = "redis")]
pub mod redis {
    pub use wise_oauth_redis::*;
}

/// Guides, with every code block compiled as a doctest of this crate.
pub mod docs {
    #[cfg(all(feature = "axum", feature = "postgres", feature = "redis"))]
    #[doc = include_str!("../docs/production.md")]
    pub mod production {}

    /// The README's examples, compiled (not rendered).
    #[cfg(all(doctest, feature = "axum", feature = "actix", feature = "postgres"))]
    #[doc = include_str!("../README.md")]
    pub struct Readme;
}
