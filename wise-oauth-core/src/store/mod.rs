//! Where links live: the [`TokenStore`] and [`PendingStore`] traits and the built-in stores.
//!
//! A store only ever sees [`LinkRecord`]s whose token values are sealed by the library
//! (encrypted when a key is configured), so any store, built-in or your own, gets
//! encryption at rest for free.

use std::any::Any;
use std::fmt::{self, Debug};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use thiserror::Error;

use crate::ids::{LinkKey, ProfileId, UserId};

/// Boxed error of a store backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The version of a stored link, for compare-and-swap writes. Starts at 1 and grows by one
/// with every successful [`TokenStore::save`].
///
/// ```
/// use wise_oauth_core::Version;
/// let first = Version::new(1);
/// assert_eq!(first.next(), Version::new(2));
/// assert_eq!(first.get(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(u64);

impl Version {
    /// Wraps a version number read back from a store.
    pub const fn new(version: u64) -> Self {
        Self(version)
    }

    /// The version number, for a store's column.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The version after this one (saturating at `u64::MAX`).
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

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
///
/// ```
/// use wise_oauth_core::SealedTokens;
/// let sealed = SealedTokens::new(vec![1, 2, 3]);
/// assert_eq!(sealed.as_bytes(), [1, 2, 3]);
/// assert_eq!(format!("{sealed:?}"), "SealedTokens(3 bytes)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SealedTokens(pub(crate) Vec<u8>);

impl SealedTokens {
    /// Wraps bytes read back from a store, exactly as they were written.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes to store, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

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
    /// The Wise user the link belongs to (`GET /v1/me` → `id` at link time), which ties
    /// Wise's `users#state-change` webhooks to links. `None` for links made before the
    /// library recorded it, or when Wise did not answer at link time.
    pub wise_user_id: Option<u64>,
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
            wise_user_id: None,
        }
    }

    /// The record with its [`wise_user_id`](Self::wise_user_id) set (stores call it when
    /// reading a row back; `None` for rows written before the column existed).
    ///
    /// ```
    /// # use std::time::UNIX_EPOCH;
    /// use wise_oauth_core::{LinkRecord, LinkStatus, ProfileId, SealedTokens};
    /// let record = LinkRecord::new(
    ///     ProfileId::new(30000000).unwrap(),
    ///     LinkStatus::Active,
    ///     UNIX_EPOCH,
    ///     UNIX_EPOCH,
    ///     UNIX_EPOCH,
    ///     SealedTokens::new(vec![1]),
    /// )
    /// .with_wise_user_id(Some(10000001));
    /// assert_eq!(record.wise_user_id, Some(10000001));
    /// ```
    #[must_use]
    pub fn with_wise_user_id(mut self, wise_user_id: Option<u64>) -> Self {
        self.wise_user_id = wise_user_id;
        self
    }
}

/// Identifies the holder of a refresh lease (random per attempt).
///
/// ```
/// use wise_oauth_core::LeaseHolder;
/// let holder = LeaseHolder::new(7);
/// assert_eq!(holder.get(), 7);
/// assert_ne!(LeaseHolder::random(), LeaseHolder::random());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseHolder(u128);

impl LeaseHolder {
    /// A fresh random holder id.
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// Wraps a holder id read back from a store.
    pub const fn new(id: u128) -> Self {
        Self(id)
    }

    /// The holder id, for a store's column.
    pub const fn get(self) -> u128 {
        self.0
    }
}

/// What went wrong in a store. "Absent" is never an error: it is `Ok(None)`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A compare-and-swap write found another version than expected.
    #[error("the link was changed concurrently (version conflict)")]
    Conflict,
    /// The store does not offer this operation (e.g. [`TokenStore::list_links`] on a store
    /// that cannot list).
    #[error("the token store does not support {0}")]
    Unsupported(&'static str),
    /// The backend is unreachable or failed; the operation may succeed later.
    #[error("token store unavailable")]
    Unavailable(#[source] BoxError),
    /// A stored value cannot be decoded or authenticated (tampered, foreign or truncated).
    #[error("stored link is corrupt: {0}")]
    Corrupt(&'static str),
    /// A pending store holds as many flows (or owners) as it may: a flow of an owner that
    /// has none is refused until flows complete or expire. Flows of other owners are never
    /// evicted to make room (see [`PendingStore::insert`]).
    #[error("the pending-flow store is full")]
    Full,
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

    /// Lists the links of `environment` and `client_id`, at most `limit` (capped at
    /// [`MAX_LINK_PAGE`]) users after the cursor `after`, in ascending user-id order (see
    /// [`LinkPage`]). Optional: the default answers [`StoreError::Unsupported`].
    async fn list_links(
        &self,
        environment: &str,
        client_id: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<LinkPage, StoreError> {
        let _ = (environment, client_id, after, limit);
        Err(StoreError::Unsupported("list_links"))
    }

    /// The users of `environment` and `client_id` whose link belongs to the Wise user
    /// `wise_user_id` ([`LinkRecord::wise_user_id`]), at most [`MAX_LINK_PAGE`], in any
    /// order; unlinked users are not listed. Used to act on Wise's webhooks, which name the
    /// Wise user. Optional: the default answers [`StoreError::Unsupported`] (webhooks then
    /// answer 500, and Wise delivers again later).
    async fn links_of_wise_user(
        &self,
        environment: &str,
        client_id: &str,
        wise_user_id: u64,
    ) -> Result<Vec<UserId>, StoreError> {
        let _ = (environment, client_id, wise_user_id);
        Err(StoreError::Unsupported("links_of_wise_user"))
    }

    /// Whether links outlive the process (a database, a file, a server). The library
    /// refuses to keep durable links unencrypted in [production](crate::Environment::is_production)
    /// unless the app says so (see
    /// [`WiseOAuthBuilder::allow_unencrypted_store`](crate::WiseOAuthBuilder::allow_unencrypted_store)).
    /// Default: `true`; only stores that lose everything on restart, like
    /// [`MemoryTokenStore`], answer `false`.
    fn is_durable(&self) -> bool {
        true
    }
}

/// The server-side half of a link flow in progress, keyed by the hash of its `state`.
///
/// Entries expire after their TTL and are consumed at most once: `take` is an atomic
/// read-and-delete, so a replayed `state` finds nothing.
#[async_trait]
pub trait PendingStore: Send + Sync + Debug + 'static {
    /// Stores a pending flow owned by `owner` under `state_hash` for `ttl`.
    ///
    /// Fairness under a flood: a store keeps at most [`MAX_PENDING_PER_USER`] flows per
    /// owner and drops *that owner's* oldest beyond that. A store with a global bound (all
    /// built-in stores have one) never evicts another owner's flow to make room: when it is
    /// full, an owner that already has flows replaces its own oldest, and an owner without
    /// one is refused with [`StoreError::Full`] (the link start answers 503).
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

/// A shared store is a store: pass an `Arc` (for example an `Arc<dyn TokenStore>` that
/// other parts of the app also use) wherever a [`TokenStore`] is expected.
#[async_trait]
impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
        (**self).load(key).await
    }

    async fn save(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        (**self).save(key, record, expected).await
    }

    async fn delete(&self, key: &LinkKey) -> Result<bool, StoreError> {
        (**self).delete(key).await
    }

    async fn acquire_lease(
        &self,
        key: &LinkKey,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        (**self).acquire_lease(key, holder, ttl).await
    }

    async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) -> Result<(), StoreError> {
        (**self).release_lease(key, holder).await
    }

    async fn list_links(
        &self,
        environment: &str,
        client_id: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<LinkPage, StoreError> {
        (**self)
            .list_links(environment, client_id, after, limit)
            .await
    }

    async fn links_of_wise_user(
        &self,
        environment: &str,
        client_id: &str,
        wise_user_id: u64,
    ) -> Result<Vec<UserId>, StoreError> {
        (**self)
            .links_of_wise_user(environment, client_id, wise_user_id)
            .await
    }

    fn is_durable(&self) -> bool {
        (**self).is_durable()
    }
}

/// A shared pending store is a pending store (see the [`TokenStore`] impl for `Arc`).
#[async_trait]
impl<T: PendingStore + ?Sized> PendingStore for Arc<T> {
    async fn insert(
        &self,
        state_hash: &[u8; 32],
        owner: &LinkKey,
        pending: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        (**self).insert(state_hash, owner, pending, ttl).await
    }

    async fn take(&self, state_hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).take(state_hash).await
    }
}

/// `store` as the library holds it, an `Arc<D>` (`D` a `dyn` store trait): a store that
/// already is an `Arc<D>` is kept as it is (no second `Arc` around it); any other store is
/// put in a new `Arc` by `new`.
pub(crate) fn shared<S: Any, D: ?Sized + 'static>(
    store: S,
    new: impl FnOnce(S) -> Arc<D>,
) -> Arc<D> {
    let mut slot = Some(store);
    if let Some(shared) = (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<Arc<D>>>()
        .and_then(Option::take)
    {
        return shared;
    }
    match slot {
        Some(store) => new(store),
        None => unreachable!("only a matching downcast empties the slot"),
    }
}

/// How many link flows one app user may have in progress at once.
pub const MAX_PENDING_PER_USER: usize = 8;

mod changes;
mod changes_memory;
mod listing;
mod memory;
mod pending_memory;

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;

pub use changes::{ChangeEvent, LinkChange, LinkChanges};
pub use changes_memory::MemoryLinkChanges;
pub use listing::{LinkPage, MAX_LINK_PAGE};
pub use memory::MemoryTokenStore;
pub use pending_memory::MemoryPendingStore;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_store_is_kept_as_it_is() {
        let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
        let kept = shared(store.clone(), |s| Arc::new(s) as Arc<dyn TokenStore>);
        assert!(Arc::ptr_eq(&store, &kept));
        let pending: Arc<dyn PendingStore> = Arc::new(MemoryPendingStore::default());
        let kept = shared(pending.clone(), |s| Arc::new(s) as Arc<dyn PendingStore>);
        assert!(Arc::ptr_eq(&pending, &kept));
        // Any other store (an `Arc` of a concrete store included) gets an `Arc` of its own.
        let concrete = Arc::new(MemoryTokenStore::new());
        let wrapped = shared(concrete.clone(), |s| Arc::new(s) as Arc<dyn TokenStore>);
        assert_eq!(Arc::strong_count(&concrete), 2);
        drop(wrapped);
        assert_eq!(Arc::strong_count(&concrete), 1);
    }
}
