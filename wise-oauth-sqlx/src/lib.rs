//! Durable token stores for [wise-oauth](wise_oauth_core) on SQL databases, built on
//! [sqlx](https://docs.rs/sqlx):
//!
//! - [`SqliteTokenStore`] (feature `sqlite`): one file, for a single instance of your app.
//! - [`PostgresTokenStore`] (feature `postgres`): the shared store when several instances
//!   serve the same users: compare-and-swap writes, the refresh lease and pending link flows
//!   all live in the database, so any instance can refresh any link (one at a time) and a
//!   link flow started on one instance completes on another.
//!
//! Both implement [`TokenStore`](wise_oauth_core::TokenStore) (links, versions, leases) and
//! [`PendingStore`](wise_oauth_core::PendingStore) (link flows in progress), create and
//! migrate their tables on start, and use runtime-checked queries only, so building your
//! app needs no database.
//!
//! # Encryption at rest
//!
//! These stores never see a token in the clear unless you chose not to encrypt: the library
//! seals every record before it reaches a store (with AEAD when you configure
//! `EncryptionKeys`, bound to the environment, client id, user and profile), and the stores
//! keep the sealed bytes byte for byte in a `BLOB`/`BYTEA` column. So nothing here encrypts
//! anything; configure the keys on the `WiseOAuth` builder and keep them outside the
//! database. The other columns (profile id, status, expiry and timestamps) are plain, for
//! your own queries and status pages. Pending link flows are sealed by the library too.
//!
//! # Tables
//!
//! With the default prefix `wise_oauth_` (see the builders for a schema or another prefix):
//!
//! | table | key | columns |
//! |---|---|---|
//! | `wise_oauth_links` | `(environment, client_id, user_id)` | `profile_id`, `status` (`active` / `needs_relink`), `access_expires_at`, `linked_at`, `updated_at` (unix nanoseconds), `sealed_tokens`, `version`, `unlinked_at` |
//! | `wise_oauth_leases` | `(environment, client_id, user_id)` | `holder` (16 bytes), `until` (Postgres `TIMESTAMPTZ` on the database clock; SQLite unix nanoseconds) |
//! | `wise_oauth_pending` | `state_hash` | `seq`, owner `(environment, client_id, user_id)`, `payload`, `created_at`, `expires_at` |
//! | `wise_oauth_migrations` | `version` | `applied_at` |
//!
//! The pending flows are bounded per owner (`MAX_PENDING_PER_USER`, the owner's oldest go
//! first) and in total (`max_pending_flows` on the builders, default
//! [`DEFAULT_MAX_PENDING_FLOWS`]): when the live flows reach the total, an owner that has
//! flows replaces its own oldest and an owner without one is refused with
//! `StoreError::Full`. No owner's flow is evicted for another's. The total is checked with a
//! count over the expiry index on each insert; concurrent inserts of different owners on
//! PostgreSQL may exceed it by at most their number.
//!
//! Unlinking keeps the link's row as a tombstone (tokens wiped, profile id zeroed,
//! `unlinked_at` set) so that linking again continues the version sequence: a write
//! prepared against the old link can never match the new one.
//!
//! `TokenStore::list_links` (for jobs that walk every linked user) reads keyset pages in
//! byte order of the user ids, tombstones left out: over the primary key in SQLite, over a
//! partial index `(environment, client_id, user_id COLLATE "C") WHERE unlinked_at IS NULL`
//! (`wise_oauth_links_listing`, schema version 2) in PostgreSQL.
//!
//! The three parts of a link key are separate columns of a composite primary key, so no two
//! keys can collide whatever characters they contain. Profile ids are `BIGINT`.
//!
//! # Errors
//!
//! Building a store reports a [`SetupError`]. Once built, a store reports
//! `StoreError::Unavailable` when the database cannot be reached or a query fails (never
//! "absent"), and `StoreError::Corrupt` for a row it cannot decode (unknown status, a version
//! below 1, a zero profile id, a time out of range).

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod common;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres_changes;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use common::{SetupError, DEFAULT_MAX_PENDING_FLOWS, DEFAULT_TABLE_PREFIX, MAX_NAME_LEN};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresTokenStore, PostgresTokenStoreBuilder};
#[cfg(feature = "postgres")]
pub use postgres_changes::PostgresLinkChanges;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteTokenStore, SqliteTokenStoreBuilder};
