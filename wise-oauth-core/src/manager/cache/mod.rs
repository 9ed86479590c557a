//! The in-memory view of links: what the hot path reads without any I/O.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use super::types::ValidToken;
use crate::ids::{LinkKey, ProfileId, UserId};
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
    pub(super) skew: Duration,
    pub(super) refresh_window: Duration,
    pub(super) revalidate_after: Duration,
}

impl Thresholds {
    /// The skew for this token: the configured one, or a tenth of its lifetime if shorter.
    pub(super) fn skew_for(&self, tokens: &TokenSet) -> Duration {
        self.skew.min(lifetime(tokens) / 10)
    }

    /// The refresh window for this token: the configured one, or half its lifetime if
    /// shorter, so a short-lived token is refreshed about once per lifetime, not on every use.
    pub(super) fn window_for(&self, tokens: &TokenSet) -> Duration {
        self.refresh_window.min(lifetime(tokens) / 2)
    }
}

fn lifetime(tokens: &TokenSet) -> Duration {
    tokens
        .expires_at
        .duration_since(tokens.obtained_at)
        .unwrap_or(Duration::ZERO)
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
                    .checked_sub(t.skew_for(tokens))
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                refresh_at: expires_at
                    .checked_sub(t.window_for(tokens))
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
///
/// A fixed set of `RwLock`ed maps rather than a general-purpose cache: the hot path is one
/// uncontended read lock and a hash lookup (about 50 ns here, against about 270 ns for a
/// `moka` lookup), which keeps `WiseToken` under its 1 µs budget. Each shard holds at most
/// its share of the capacity; a full shard drops an arbitrary entry to make room.
#[derive(Debug)]
pub(super) struct LinkCache {
    shards: Box<[Shard]>,
    per_shard: usize,
    /// Links deleted here recently: the last version they had, and until when an offer of
    /// that version or an older one is refused (a read that raced the unlink).
    tombstones: std::sync::Mutex<HashMap<UserId, (Version, SystemTime)>>,
}

/// Keyed by the user alone: a manager serves the links of one environment and client.
type Shard = RwLock<HashMap<UserId, Arc<CacheEntry>>>;

const SHARDS: usize = 16;

impl LinkCache {
    pub(super) fn new(capacity: u64) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(SHARDS);
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            per_shard: capacity / SHARDS,
            tombstones: std::sync::Mutex::default(),
        }
    }

    /// Spreads users over the shards from the last bytes of the id: no second hash of the
    /// key on the hot path (the shard's map hashes it once more, with SipHash). Ids that
    /// share their endings only share a lock; correctness does not depend on the spread.
    fn shard(&self, user: &UserId) -> &Shard {
        let bytes = user.as_str().as_bytes();
        let tail = &bytes[bytes.len().saturating_sub(4)..];
        let mix = tail.iter().fold(bytes.len(), |acc, b| {
            acc.wrapping_mul(31).wrapping_add(usize::from(*b))
        });
        &self.shards[mix % SHARDS]
    }

    #[inline]
    pub(super) fn get(&self, user: &UserId) -> Option<Arc<CacheEntry>> {
        read(self.shard(user)).get(user).cloned()
    }

    /// Stores `entry` unless the cache holds a newer version that is still within its
    /// revalidation period (a slow reader must not put back a token a refresh just
    /// replaced). Returns the entry that is cached afterwards.
    pub(super) fn offer(
        &self,
        key: &LinkKey,
        entry: CacheEntry,
        now: SystemTime,
    ) -> Arc<CacheEntry> {
        if let Some(last) = self.buried_version(key.user(), now) {
            if entry.version <= last {
                return Arc::new(entry);
            }
        }
        let mut shard = write(self.shard(key.user()));
        if let Some(existing) = shard.get(key.user()) {
            if existing.version > entry.version && now < existing.revalidate_at {
                return existing.clone();
            }
        }
        let entry = Arc::new(entry);
        self.insert(&mut shard, key, entry.clone());
        entry
    }

    /// Stores `entry` unconditionally (after our own successful write).
    pub(super) fn put(&self, key: &LinkKey, entry: CacheEntry) -> Arc<CacheEntry> {
        let entry = Arc::new(entry);
        self.insert(&mut write(self.shard(key.user())), key, entry.clone());
        entry
    }

    /// Forgets an unlinked link and refuses offers of its `last` version (or older) until
    /// `until`: a reader that loaded it before the delete must not cache it again.
    pub(super) fn bury(&self, key: &LinkKey, last: Option<Version>, until: SystemTime) {
        if let Some(last) = last {
            let mut tombstones = self
                .tombstones
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if tombstones.len() >= 1024 {
                tombstones.retain(|_, (_, t)| *t > until);
            }
            tombstones.insert(key.user().clone(), (last, until));
        }
        self.invalidate(key);
    }

    fn buried_version(&self, user: &UserId, now: SystemTime) -> Option<Version> {
        let tombstones = self
            .tombstones
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (version, until) = tombstones.get(user)?;
        (now < *until).then_some(*version)
    }

    pub(super) fn invalidate(&self, key: &LinkKey) {
        write(self.shard(key.user())).remove(key.user());
    }

    fn insert(
        &self,
        shard: &mut HashMap<UserId, Arc<CacheEntry>>,
        key: &LinkKey,
        entry: Arc<CacheEntry>,
    ) {
        if shard.len() >= self.per_shard && !shard.contains_key(key.user()) {
            if let Some(victim) = shard.keys().next().cloned() {
                shard.remove(&victim);
            }
        }
        shard.insert(key.user().clone(), entry);
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{AccessToken, RefreshToken};
    use std::time::Duration;

    fn entry(version: u64, now: SystemTime) -> CacheEntry {
        let tokens = TokenSet::new(
            AccessToken::new(format!("at-{version}")),
            RefreshToken::new("rt"),
            now + Duration::from_secs(3600),
            now,
        );
        let t = Thresholds {
            skew: Duration::from_secs(60),
            refresh_window: Duration::from_secs(600),
            revalidate_after: Duration::from_secs(30),
        };
        CacheEntry::active(
            &tokens,
            ProfileId::new(1).unwrap(),
            Version(version),
            now,
            t,
        )
    }

    fn key(user: &str) -> LinkKey {
        LinkKey::new("sandbox", "client", UserId::new(user).unwrap())
    }

    #[test]
    fn an_older_version_does_not_replace_a_newer_fresh_one() {
        let cache = LinkCache::new(100);
        let now = SystemTime::now();
        cache.put(&key("a"), entry(2, now));
        assert_eq!(
            cache.offer(&key("a"), entry(1, now), now).version,
            Version(2)
        );
        // Once the newer entry is due for revalidation, the store's answer wins.
        let later = now + Duration::from_secs(31);
        assert_eq!(
            cache.offer(&key("a"), entry(1, later), later).version,
            Version(1)
        );
        cache.invalidate(&key("a"));
        assert!(cache.get(key("a").user()).is_none());
    }

    #[test]
    fn capacity_is_bounded() {
        let cache = LinkCache::new(64);
        let now = SystemTime::now();
        for i in 0..10_000 {
            cache.put(&key(&format!("user-{i}")), entry(1, now));
        }
        let held: usize = cache.shards.iter().map(|s| read(s).len()).sum();
        assert!(held <= 64, "{held}");
        assert!(
            cache.get(key("user-9999").user()).is_some(),
            "the newest entry is kept"
        );
    }
}
