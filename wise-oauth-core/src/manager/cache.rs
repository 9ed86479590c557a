//! The in-memory view of links: what the hot path reads without any I/O.

use std::sync::Arc;
use std::time::SystemTime;

use moka::future::Cache;
use moka::ops::compute::Op;

use super::types::ValidToken;
use crate::ids::{LinkKey, ProfileId};
use crate::store::{LinkStatus, Version};
use crate::token::TokenSet;

/// One cached link. Immutable; replaced as a whole.
#[derive(Debug)]
pub(super) struct CacheEntry {
    pub(super) state: CacheState,
    /// The store version this entry was read at (or written as).
    pub(super) version: Version,
    /// After this instant (injected clock) the entry is re-read from the store.
    pub(super) revalidate_at: SystemTime,
}

#[derive(Debug)]
pub(super) enum CacheState {
    Active {
        valid: ValidToken,
        /// `expires_at - skew`: hand the token out only before this.
        usable_until: SystemTime,
        /// `expires_at - refresh_window`: from here on, refresh in the background.
        refresh_at: SystemTime,
    },
    NeedsRelink {
        profile_id: ProfileId,
        expires_at: SystemTime,
    },
}

/// Precomputed thresholds so the hot path only compares instants.
#[derive(Debug, Clone, Copy)]
pub(super) struct Thresholds {
    pub(super) skew: std::time::Duration,
    pub(super) refresh_window: std::time::Duration,
    pub(super) revalidate_after: std::time::Duration,
}

impl CacheEntry {
    pub(super) fn active(
        tokens: &TokenSet,
        profile_id: ProfileId,
        version: Version,
        now: SystemTime,
        t: Thresholds,
    ) -> Self {
        let expires_at = tokens.expires_at;
        Self {
            state: CacheState::Active {
                valid: ValidToken::new(tokens.access_token.clone(), profile_id, expires_at),
                usable_until: expires_at
                    .checked_sub(t.skew)
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                refresh_at: expires_at
                    .checked_sub(t.refresh_window)
                    .unwrap_or(SystemTime::UNIX_EPOCH),
            },
            version,
            revalidate_at: now + t.revalidate_after,
        }
    }

    pub(super) fn needs_relink(
        profile_id: ProfileId,
        expires_at: SystemTime,
        version: Version,
        now: SystemTime,
        t: Thresholds,
    ) -> Self {
        Self {
            state: CacheState::NeedsRelink {
                profile_id,
                expires_at,
            },
            version,
            revalidate_at: now + t.revalidate_after,
        }
    }

    /// The same entry, trusted for another revalidation period (used while the store is down).
    pub(super) fn extended(&self, now: SystemTime, t: Thresholds) -> Self {
        let state = match &self.state {
            CacheState::Active {
                valid,
                usable_until,
                refresh_at,
            } => CacheState::Active {
                valid: valid.clone(),
                usable_until: *usable_until,
                refresh_at: *refresh_at,
            },
            CacheState::NeedsRelink {
                profile_id,
                expires_at,
            } => CacheState::NeedsRelink {
                profile_id: *profile_id,
                expires_at: *expires_at,
            },
        };
        Self {
            state,
            version: self.version,
            revalidate_at: now + t.revalidate_after,
        }
    }

    pub(super) fn status(&self) -> LinkStatus {
        match self.state {
            CacheState::Active { .. } => LinkStatus::Active,
            CacheState::NeedsRelink { .. } => LinkStatus::NeedsRelink,
        }
    }

    pub(super) fn profile_id(&self) -> ProfileId {
        match &self.state {
            CacheState::Active { valid, .. } => valid.profile_id(),
            CacheState::NeedsRelink { profile_id, .. } => *profile_id,
        }
    }

    pub(super) fn expires_at(&self) -> SystemTime {
        match &self.state {
            CacheState::Active { valid, .. } => valid.expires_at(),
            CacheState::NeedsRelink { expires_at, .. } => *expires_at,
        }
    }
}

/// The cache of links keyed by [`LinkKey`]. Eviction only costs a store read: the store is
/// the durable home of every link.
#[derive(Debug, Clone)]
pub(super) struct LinkCache {
    cache: Cache<LinkKey, Arc<CacheEntry>>,
}

impl LinkCache {
    pub(super) fn new(capacity: u64) -> Self {
        Self {
            cache: Cache::builder().max_capacity(capacity).build(),
        }
    }

    #[inline]
    pub(super) async fn get(&self, key: &LinkKey) -> Option<Arc<CacheEntry>> {
        self.cache.get(key).await
    }

    /// Stores `entry` unless the cache holds a newer version that is still within its
    /// revalidation period (a slow reader must not put back a token a refresh just
    /// replaced). Returns the entry that is cached afterwards.
    pub(super) async fn offer(
        &self,
        key: &LinkKey,
        entry: CacheEntry,
        now: SystemTime,
    ) -> Arc<CacheEntry> {
        let entry = Arc::new(entry);
        let offered = entry.clone();
        let result = self
            .cache
            .entry_by_ref(key)
            .and_compute_with(|existing| {
                let op = match existing {
                    Some(e)
                        if e.value().version > offered.version && now < e.value().revalidate_at =>
                    {
                        Op::Nop
                    }
                    _ => Op::Put(offered),
                };
                std::future::ready(op)
            })
            .await;
        use moka::ops::compute::CompResult;
        match result {
            CompResult::Unchanged(e) | CompResult::Inserted(e) | CompResult::ReplacedWith(e) => {
                e.into_value()
            }
            CompResult::StillNone(_) | CompResult::Removed(_) => entry,
        }
    }

    /// Stores `entry` unconditionally (after our own successful write).
    pub(super) async fn put(&self, key: &LinkKey, entry: CacheEntry) -> Arc<CacheEntry> {
        let entry = Arc::new(entry);
        self.cache.insert(key.clone(), entry.clone()).await;
        entry
    }

    pub(super) async fn invalidate(&self, key: &LinkKey) {
        self.cache.invalidate(key).await;
    }
}
