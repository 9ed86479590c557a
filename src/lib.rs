//! Wise OAuth for axum and actix-web: the facade over `wise-oauth-core` and the adapters.
pub use wise_oauth_core::*;
