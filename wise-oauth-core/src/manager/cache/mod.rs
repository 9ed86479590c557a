//! The in-memory view of links: what the hot path reads without any I/O.
//!
//! [`LinkCache`] is the link-specific layer (versions, tombstones of unlinked links) over
//! [`S3Fifo`], a sharded map with S3-FIFO eviction; [`entry`] is what it holds per link.

mod entry;
mod s3fifo;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use self::s3fifo::S3Fifo;
use crate::ids::{LinkKey, UserId};
use crate::store::Version;

pub(super) use self::entry::{CacheEntry, CacheState, Thresholds};

/// The cache of links keyed by the user (a manager serves the links of one environment and
/// client). Eviction only costs a store read: the store is the durable home of every link.
///
/// A sharded `RwLock`ed map rather than a general-purpose cache: the hot path is one hash of
/// the user id, one uncontended read lock and one lookup, with no write and no allocation
/// (about 50 ns, against about 270 ns for a `moka` lookup), which keeps `WiseToken` under its
/// 1 µs budget. The eviction policy is S3-FIFO (see [`S3Fifo`]): on a Zipf workload its hit
/// ratio is above LRU's, and a burst of one-off users does not push out the regular ones.
#[derive(Debug)]
pub(super) struct LinkCache {
    links: S3Fifo<UserId, Arc<CacheEntry>>,
    /// Links deleted here recently: the last version they had, and until when an offer of
    /// that version or an older one is refused (a read that raced the unlink).
    tombstones: Mutex<Tombstones>,
}

/// The tombstones, and the size at which the expired ones are next swept out.
#[derive(Debug)]
struct Tombstones {
    by_user: HashMap<UserId, (Version, SystemTime)>,
    sweep_at: usize,
}

/// The tombstone map is swept of expired entries once it reaches this size (or twice its
/// size after the last sweep, whichever is more).
const TOMBSTONE_SWEEP: usize = 1024;

impl LinkCache {
    /// A cache of at most `capacity` links.
    pub(super) fn new(capacity: u64) -> Self {
        Self {
            links: S3Fifo::new(usize::try_from(capacity).unwrap_or(usize::MAX)),
            tombstones: Mutex::new(Tombstones {
                by_user: HashMap::new(),
                sweep_at: TOMBSTONE_SWEEP,
            }),
        }
    }

    /// How many links the cache holds at most.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.links.capacity()
    }

    /// The cached entry of `user`'s link: one read lock, no allocation.
    #[inline]
    pub(super) fn get(&self, user: &UserId) -> Option<Arc<CacheEntry>> {
        self.links.get(user)
    }

    /// `look` at the cached entry of `user`'s link under its shard's read lock: one read
    /// lock, no allocation, and no reference count touched unless `look` clones.
    #[inline]
    pub(super) fn read<R>(
        &self,
        user: &UserId,
        look: impl FnOnce(&Arc<CacheEntry>) -> R,
    ) -> Option<R> {
        self.links.read(user, look)
    }

    /// Stores `entry` unless the cache holds a newer version that is still within its
    /// revalidation period (a slow reader must not put back a token a refresh just
    /// replaced), or the link was unlinked at this version or a later one. Returns the entry
    /// that is cached afterwards (or `entry` itself, uncached, when it was refused).
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
        let version = entry.version;
        self.links
            .insert_unless(key.user().clone(), Arc::new(entry), |existing| {
                existing.version > version && now < existing.revalidate_at
            })
    }

    /// Stores `entry` unconditionally (after our own successful write).
    pub(super) fn put(&self, key: &LinkKey, entry: CacheEntry) -> Arc<CacheEntry> {
        self.links
            .insert_unless(key.user().clone(), Arc::new(entry), |_| false)
    }

    /// Forgets an unlinked link and refuses offers of its `last` version (or older) until
    /// `until`: a reader that loaded it before the delete must not cache it again. A
    /// tombstone is only ever dropped once expired (`now` on the manager's clock).
    pub(super) fn bury(
        &self,
        key: &LinkKey,
        last: Option<Version>,
        now: SystemTime,
        until: SystemTime,
    ) {
        if let Some(last) = last {
            let mut tombstones = self
                .tombstones
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if tombstones.by_user.len() >= tombstones.sweep_at {
                tombstones.by_user.retain(|_, (_, t)| *t > now);
                tombstones.sweep_at = TOMBSTONE_SWEEP.max(2 * tombstones.by_user.len());
            }
            tombstones.by_user.insert(key.user().clone(), (last, until));
        }
        self.invalidate(key);
    }

    fn buried_version(&self, user: &UserId, now: SystemTime) -> Option<Version> {
        let tombstones = self
            .tombstones
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (version, until) = tombstones.by_user.get(user)?;
        (now < *until).then_some(*version)
    }

    /// Forgets `key`'s link.
    pub(super) fn invalidate(&self, key: &LinkKey) {
        self.links.remove(key.user());
    }

    /// Forgets `key`'s link if the cached entry is older than `version` (another instance
    /// wrote it). A newer entry cached between the check and the removal may go too: a
    /// forgotten entry only costs a store read.
    pub(super) fn drop_older(&self, key: &LinkKey, version: Version) {
        if self
            .links
            .get(key.user())
            .is_some_and(|entry| entry.version < version)
        {
            self.links.remove(key.user());
        }
    }

    /// Forgets every link (changes may have been missed); tombstones stay.
    pub(super) fn clear(&self) {
        self.links.clear();
    }
}
