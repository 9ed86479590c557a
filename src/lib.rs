//! Wise OAuth for axum and actix-web: the facade over `wise-oauth-core` and the adapters.
//!
//! Everything of the framework-agnostic core is re-exported at the root
//! ([`WiseOAuth`], [`WiseConfig`], the stores, the errors, ...); see the
//! [`wise_oauth_core`] documentation for a quick start. The framework adapters live in
//! feature-gated modules:
//!
//! | feature | module | contents |
//! |---|---|---|
//! | `axum` | `wise_oauth::axum` | routes (`/wise/connect`, `/wise/callback`, ...) and the `WiseToken` extractor |
//! | `actix` | `wise_oauth::actix` | the same for actix-web |
//! | `sqlite`, `postgres` | `wise_oauth::sqlx` | durable token stores (SQLite; PostgreSQL shared by several instances) |
//! | `redis` | `wise_oauth::redis` | the shared token and pending store on Redis |

pub use wise_oauth_core::*;

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
