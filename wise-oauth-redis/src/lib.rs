//! The shared token store for [wise-oauth](wise_oauth_core) on Redis, built on
//! [redis-rs](https://docs.rs/redis) and its tokio connection manager.
//!
//! [`RedisTokenStore`] implements [`TokenStore`](wise_oauth_core::TokenStore) (links,
//! versions, leases) and [`PendingStore`](wise_oauth_core::PendingStore) (link flows in
//! progress) for several instances of your app that already share a Redis: any instance
//! can refresh any link (one at a time), and a link flow started on one instance completes
//! on another. It needs Redis 6.2 or newer (`GETDEL`), standalone or behind a proxy.
//!
//! ```no_run
//! use wise_oauth_redis::RedisTokenStore;
//!
//! # async fn run() -> Result<(), wise_oauth_redis::SetupError> {
//! let store = RedisTokenStore::connect("redis://127.0.0.1:6379").await?;
//! // WiseOAuth::builder(config).store(store.clone()).pending_store(store)
//! # Ok(()) }
//! ```
//!
//! # Keys
//!
//! With the default prefix `wise-oauth:` (see [`RedisTokenStoreBuilder::key_prefix`]), and
//! `{tag}` = `{environment:client_id:user_id}` with each part percent-encoded (letters,
//! digits and `-._~@` stay, every other byte is `%XX`):
//!
//! | key | type | contents |
//! |---|---|---|
//! | `wise-oauth:{tag}:link` | hash | `v` (version), `profile_id`, `status` (`active` / `needs_relink`), `access_expires_at`, `linked_at`, `updated_at` (unix nanoseconds), `sealed_tokens` |
//! | `wise-oauth:{tag}:lease` | string with TTL | the holder of the refresh lease (32 hex digits) |
//! | `wise-oauth:{environment:client_id}:users` | sorted set | the users with a link of that environment and client (all scores 0: byte order), for `list_links` |
//! | `wise-oauth:{tag}:flows` | sorted set with TTL | the state hashes of the user's pending flows, oldest first |
//! | `wise-oauth:flow:<state hash hex>` | string with TTL | the owner's tag (length first), then the sealed flow |
//!
//! The encoding of a tag is injective (no part's encoding contains `:`), so no two link
//! keys share keys whatever characters they contain; a tag never contains a brace, so in
//! Redis Cluster all keys of one link hash to one slot. The save and unlink scripts also
//! keep the users index of the link's environment and client (another slot), so that
//! `TokenStore::list_links` reads exact keyset pages with one `ZRANGE … BYLEX`: the store
//! runs on one Redis (standalone, replicated, or a proxy to one node), not on a Cluster.
//! Unlinking keeps the hash's `v` as a
//! tombstone, so linking again continues the version sequence: a write prepared against
//! the old link can never match the new one. The store sets no TTL on links: they live
//! until the app unlinks them, so run Redis with persistence (AOF or RDB) and a
//! `maxmemory-policy` that does not evict them (`noeviction`, or a `volatile-*` policy).
//!
//! # Encryption at rest
//!
//! The store never sees a token in the clear unless you chose not to encrypt: the library
//! seals every record before it reaches a store (with AEAD when you configure
//! `EncryptionKeys`, bound to the environment, client id, user and profile), and the store
//! keeps the sealed bytes byte for byte. Configure the keys on the `WiseOAuth` builder and
//! keep them outside Redis. Pending link flows are sealed by the library too.
//!
//! # Errors
//!
//! Building a store reports a [`SetupError`]. Once built, a store reports
//! `StoreError::Unavailable` when Redis cannot be reached, times out or fails a command
//! (never "absent"), and `StoreError::Corrupt` for a value it cannot decode (a missing
//! field, an unknown status, a version below 1, a zero profile id, a key of another type).

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod changes;
mod error;
mod keys;
mod record;
mod store;

/// The Redis client this crate is built on, for building a
/// [`ConnectionManager`](redis::aio::ConnectionManager) of your own.
pub use redis;

pub use changes::RedisLinkChanges;
pub use error::SetupError;
pub use keys::{DEFAULT_KEY_PREFIX, MAX_KEY_PREFIX_LEN};
pub use store::{RedisTokenStore, RedisTokenStoreBuilder, DEFAULT_MAX_PENDING_OWNERS};
