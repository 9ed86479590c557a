//! Where links live: the [`TokenStore`] and [`PendingStore`] traits and the built-in stores.
//!
//! A store only ever sees [`LinkRecord`]s whose token values are sealed by the library
//! (encrypted when a key is configured), so any store, built-in or your own, gets
//! encryption at rest for free.

use std::fmt::{self, Debug};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use thiserror::Error;

use crate::ids::{LinkKey, ProfileId};

/// Boxed error of a store backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The version of a stored link, for compare-and-swap writes. Starts at 1 and grows by one
/// with every successful [`TokenStore::save`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u64);

/// A value together with the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The version the value was read at.
    pub version: Version,
    /// The value.
    pub value: T,
}

/// Whether a link can be used or needs the user to link again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkStatus {
    /// The tokens are (as far as we know) valid.
    Active,
    /// Wise rejected the refresh token (`invalid_grant` in a 4xx answer): the user must link again.
    /// The record is kept until the app unlinks or the user links again.
    NeedsRelink,
}

impl LinkStatus {
    /// A stable lowercase name, for store columns (`"active"`, `"needs_relink"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::NeedsRelink => "needs_relink",
        }
    }

    /// Parses [`LinkStatus::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "needs_relink" => Some(Self::NeedsRelink),
            _ => None,
        }
    }
}

/// Sealed token bytes: opaque to stores; `Debug` shows only the length.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedTokens(pub Vec<u8>);

impl Debug for SealedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedTokens({} bytes)", self.0.len())
    }
}

/// What a [`TokenStore`] persists for one link.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkRecord {
    /// The verified Wise profile the link grants access to.
    pub profile_id: ProfileId,
    /// Active, or waiting for the user to link again.
    pub status: LinkStatus,
    /// When the current access token expires (plain, for queries and status pages).
    pub access_expires_at: SystemTime,
    /// When the user linked (first code exchange of this link).
    pub linked_at: SystemTime,
    /// When this record was last written.
    pub updated_at: SystemTime,
    /// The token values, sealed by the library. Store them byte for byte.
    pub sealed_tokens: SealedTokens,
}

impl LinkRecord {
    /// Assembles a record (used by store implementations when reading rows back).
    pub fn new(
        profile_id: ProfileId,
        status: LinkStatus,
        access_expires_at: SystemTime,
        linked_at: SystemTime,
        updated_at: SystemTime,
        sealed_tokens: SealedTokens,
    ) -> Self {
        Self {
            profile_id,
            status,
            access_expires_at,
            linked_at,
            updated_at,
            sealed_tokens,
        }
    }
}

/// Identifies the holder of a refresh lease (random per attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseHolder(pub u128);

impl LeaseHolder {
    /// A fresh random holder id.
    pub fn random() -> Self {
        Self(rand::random())
    }
}

/// What went wrong in a store. "Absent" is never an error: it is `Ok(None)`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A compare-and-swap write found another version than expected.
    #[error("the link was changed concurrently (version conflict)")]
    Conflict,
    /// The backend is unreachable or failed; the operation may succeed later.
    #[error("token store unavailable")]
    Unavailable(#[source] BoxError),
    /// A stored value cannot be decoded or authenticated (tampered, foreign or truncated).
    #[error("stored link is corrupt: {0}")]
    Corrupt(&'static str),
}

/// The durable home of links. Object safe; the library holds it as `Arc<dyn TokenStore>`.
///
/// Contract (checked by the conformance suite behind the `test-util` feature):
/// - `load` returns `Ok(None)` for an absent link and `Err` only when the store is down or
///   the record is corrupt; it never turns an error into "absent".
/// - `save` is a compare-and-swap on the version: with `expected == None` it inserts only if
///   no record exists; with `Some(v)` it replaces only the record at version `v`. Otherwise
///   it returns [`StoreError::Conflict`] and changes nothing. It returns the new version.
/// - versions never repeat for a key, not even after `delete`: a record inserted after an
///   unlink continues from the last version, so a late write that expected a version from
///   before the unlink is rejected.
/// - leases are independent of records (a lease may exist for a key with no record), expire
///   after their TTL, and are released only by their holder.
#[async_trait]
pub trait TokenStore: Send + Sync + Debug + 'static {
    /// Reads the link for `key`.
    async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError>;

    /// Writes `record` if the stored version is `expected` (see the trait docs).
    async fn save(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        expected: Option<Version>,
    ) -> Result<Version, StoreError>;

    /// Deletes the link; `Ok(true)` if there was one. Only an explicit unlink calls this.
    async fn delete(&self, key: &LinkKey) -> Result<bool, StoreError>;

    /// Takes the refresh lease of `key` for `ttl`, or extends it if `holder` already has it.
    /// `Ok(false)` when someone else holds an unexpired lease.
    async fn acquire_lease(
        &self,
        key: &LinkKey,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Releases the lease if `holder` still has it (compare-and-delete); otherwise does nothing.
    async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) -> Result<(), StoreError>;
}

/// The server-side half of a link flow in progress, keyed by the hash of its `state`.
///
/// Entries expire after their TTL and are consumed at most once: `take` is an atomic
/// read-and-delete, so a replayed `state` finds nothing.
#[async_trait]
pub trait PendingStore: Send + Sync + Debug + 'static {
    /// Stores a pending flow owned by `owner` under `state_hash` for `ttl`. A store keeps at
    /// most [`MAX_PENDING_PER_USER`] flows per owner and drops the oldest beyond that.
    async fn insert(
        &self,
        state_hash: &[u8; 32],
        owner: &LinkKey,
        pending: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// Removes and returns the pending flow under `state_hash`, if present and not expired.
    async fn take(&self, state_hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError>;
}

/// How many link flows one app user may have in progress at once.
pub const MAX_PENDING_PER_USER: usize = 8;

mod changes;
mod changes_memory;
mod memory;
mod pending_memory;

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;

pub use changes::{ChangeEvent, LinkChange, LinkChanges};
pub use changes_memory::MemoryLinkChanges;
pub use memory::MemoryTokenStore;
pub use pending_memory::MemoryPendingStore;
