//! The in-memory pending-flow store: bounded per owner and in total, with TTLs.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::ids::LinkKey;
use crate::store::{PendingStore, StoreError, MAX_PENDING_PER_USER};

/// How many owners (app users with a link flow in progress) a [`MemoryPendingStore`] keeps
/// by default.
const DEFAULT_OWNER_CAPACITY: usize = 100_000;
/// Sweep expired entries every this many inserts.
const SWEEP_EVERY: u64 = 4096;

/// An in-memory [`PendingStore`] with a hard memory bound.
///
/// - at most [`MAX_PENDING_PER_USER`] flows per owner: a new flow drops the owner's oldest;
/// - at most `capacity` owners (default 100 000): a new owner evicts the owner that was
///   least recently used;
/// - entries expire after their TTL (measured with [`Instant`]) and are consumed by
///   [`PendingStore::take`] at most once.
///
/// So 10⁶ flow starts from one user hold at most [`MAX_PENDING_PER_USER`] entries and do not
/// disturb other users' flows. Clones share the same entries. With several app instances,
/// use a shared store (the callback may reach another instance than the start).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use wise_oauth_core::{LinkKey, MemoryPendingStore, PendingStore, UserId};
///
/// let store = MemoryPendingStore::default();
/// let owner = LinkKey::new("sandbox", "my-client", UserId::new("user-1").unwrap());
/// store.insert(&[7; 32], &owner, b"pending", Duration::from_secs(1800)).await.unwrap();
/// assert_eq!(store.take(&[7; 32]).await.unwrap().as_deref(), Some(&b"pending"[..]));
/// assert_eq!(store.take(&[7; 32]).await.unwrap(), None); // consumed once
/// # });
/// ```
#[derive(Clone)]
pub struct MemoryPendingStore {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    capacity: usize,
    entries: HashMap<[u8; 32], Entry>,
    owners: HashMap<LinkKey, Owner>,
    /// Owners by last use (tick of their last insert), oldest first.
    lru: BTreeMap<u64, LinkKey>,
    tick: u64,
}

struct Entry {
    owner: LinkKey,
    data: Vec<u8>,
    expires: Instant,
}

struct Owner {
    /// The owner's state hashes, oldest first.
    states: VecDeque<[u8; 32]>,
    last_used: u64,
}

impl Default for MemoryPendingStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_OWNER_CAPACITY)
    }
}

impl MemoryPendingStore {
    /// A store keeping up to 100 000 owners (same as `Default`).
    pub fn new() -> Self {
        Self::default()
    }

    /// A store keeping up to `owners` owners (at least 1), each with at most
    /// [`MAX_PENDING_PER_USER`] flows.
    pub fn with_capacity(owners: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                capacity: owners.max(1),
                entries: HashMap::new(),
                owners: HashMap::new(),
                lru: BTreeMap::new(),
                tick: 0,
            })),
        }
    }

    /// How many flows the store holds (including expired ones not yet swept).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the store holds no flow.
    pub fn is_empty(&self) -> bool {
        self.lock().entries.is_empty()
    }

    /// How many owners have flows in the store.
    pub fn owners(&self) -> usize {
        self.lock().owners.len()
    }

    // Never held across an await.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryPendingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryPendingStore")
            .field("capacity", &inner.capacity)
            .field("owners", &inner.owners.len())
            .field("entries", &inner.entries.len())
            .finish()
    }
}

impl Inner {
    /// Removes an entry and its place in its owner's list.
    fn remove_entry(&mut self, state_hash: &[u8; 32]) -> Option<Entry> {
        let entry = self.entries.remove(state_hash)?;
        if let Some(owner) = self.owners.get_mut(&entry.owner) {
            owner.states.retain(|s| s != state_hash);
            if owner.states.is_empty() {
                let last_used = owner.last_used;
                self.owners.remove(&entry.owner);
                self.lru.remove(&last_used);
            }
        }
        Some(entry)
    }

    /// Evicts the least recently used owner; `false` when there is none.
    fn evict_least_recently_used_owner(&mut self) -> bool {
        let Some((_, owner)) = self.lru.pop_first() else {
            return false;
        };
        if let Some(slot) = self.owners.remove(&owner) {
            for state in slot.states {
                self.entries.remove(&state);
            }
        }
        true
    }

    fn sweep_expired(&mut self, now: Instant) {
        let expired: Vec<[u8; 32]> = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires <= now)
            .map(|(k, _)| *k)
            .collect();
        for state in expired {
            self.remove_entry(&state);
        }
    }
}

#[async_trait]
impl PendingStore for MemoryPendingStore {
    async fn insert(
        &self,
        state_hash: &[u8; 32],
        owner: &LinkKey,
        pending: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let expires = now
            .checked_add(ttl)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if tick % SWEEP_EVERY == 0 {
            inner.sweep_expired(now);
        }
        // A state hash is unique in practice; a repeat replaces the earlier flow.
        inner.remove_entry(state_hash);

        if let Some(slot) = inner.owners.get_mut(owner) {
            let previous = std::mem::replace(&mut slot.last_used, tick);
            slot.states.push_back(*state_hash);
            let mut dropped = Vec::new();
            while slot.states.len() > MAX_PENDING_PER_USER {
                if let Some(oldest) = slot.states.pop_front() {
                    dropped.push(oldest);
                }
            }
            inner.lru.remove(&previous);
            inner.lru.insert(tick, owner.clone());
            for state in dropped {
                inner.entries.remove(&state);
            }
        } else {
            while inner.owners.len() >= inner.capacity {
                if !inner.evict_least_recently_used_owner() {
                    break;
                }
            }
            inner.owners.insert(
                owner.clone(),
                Owner {
                    states: VecDeque::from([*state_hash]),
                    last_used: tick,
                },
            );
            inner.lru.insert(tick, owner.clone());
        }
        inner.entries.insert(
            *state_hash,
            Entry {
                owner: owner.clone(),
                data: pending.to_vec(),
                expires,
            },
        );
        Ok(())
    }

    async fn take(&self, state_hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        let entry = self.lock().remove_entry(state_hash);
        Ok(entry.filter(|e| now < e.expires).map(|e| e.data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    fn owner(name: &str) -> LinkKey {
        LinkKey::new("sandbox", "c", UserId::new(name).unwrap())
    }

    fn hash(n: u64) -> [u8; 32] {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&n.to_be_bytes());
        h
    }

    const TTL: Duration = Duration::from_secs(1800);

    #[tokio::test]
    async fn one_owner_flooding_stays_bounded_and_others_still_work() {
        let store = MemoryPendingStore::default();
        store
            .insert(&hash(u64::MAX), &owner("bob"), b"bob", TTL)
            .await
            .unwrap();
        let attacker = owner("mallory");
        for i in 0..100_000u64 {
            store.insert(&hash(i), &attacker, b"x", TTL).await.unwrap();
        }
        {
            let inner = store.lock();
            assert_eq!(inner.owners[&attacker].states.len(), MAX_PENDING_PER_USER);
            assert_eq!(inner.entries.len(), MAX_PENDING_PER_USER + 1);
            assert_eq!(inner.lru.len(), 2);
        }
        // The newest flows of the attacker survive, the oldest are gone.
        assert_eq!(
            store.take(&hash(99_999)).await.unwrap().as_deref(),
            Some(&b"x"[..])
        );
        assert_eq!(store.take(&hash(0)).await.unwrap(), None);
        assert_eq!(
            store.take(&hash(u64::MAX)).await.unwrap().as_deref(),
            Some(&b"bob"[..])
        );
    }

    #[tokio::test]
    async fn global_capacity_evicts_least_recently_used_owner() {
        let store = MemoryPendingStore::with_capacity(3);
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            store
                .insert(&hash(i as u64), &owner(name), name.as_bytes(), TTL)
                .await
                .unwrap();
        }
        // "a" starts another flow: now "b" is the least recently used owner.
        store
            .insert(&hash(10), &owner("a"), b"a2", TTL)
            .await
            .unwrap();
        store
            .insert(&hash(20), &owner("d"), b"d", TTL)
            .await
            .unwrap();
        assert_eq!(store.owners(), 3);
        assert_eq!(store.take(&hash(1)).await.unwrap(), None, "b was evicted");
        for h in [0, 10, 2, 20] {
            assert!(store.take(&hash(h)).await.unwrap().is_some(), "{h}");
        }
        assert!(store.is_empty());
        assert_eq!(store.owners(), 0);
        assert!(store.lock().lru.is_empty());
    }

    #[tokio::test]
    async fn many_owners_stay_within_capacity() {
        let store = MemoryPendingStore::with_capacity(100);
        for i in 0..10_000u64 {
            store
                .insert(&hash(i), &owner(&format!("u{i}")), b"x", TTL)
                .await
                .unwrap();
        }
        let inner = store.lock();
        assert_eq!(inner.owners.len(), 100);
        assert_eq!(inner.entries.len(), 100);
        assert_eq!(inner.lru.len(), 100);
    }

    #[tokio::test]
    async fn expired_entries_are_not_returned_and_are_swept() {
        let store = MemoryPendingStore::default();
        store
            .insert(&hash(1), &owner("a"), b"x", Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(store.take(&hash(1)).await.unwrap(), None);
        assert!(store.is_empty());
        for i in 0..SWEEP_EVERY {
            store
                .insert(&hash(i), &owner(&format!("u{i}")), b"x", Duration::ZERO)
                .await
                .unwrap();
        }
        assert!(store.len() <= 2, "{}", store.len());
    }

    #[tokio::test]
    async fn repeated_state_hash_replaces_the_flow() {
        let store = MemoryPendingStore::default();
        store
            .insert(&hash(1), &owner("a"), b"first", TTL)
            .await
            .unwrap();
        store
            .insert(&hash(1), &owner("b"), b"second", TTL)
            .await
            .unwrap();
        assert_eq!(store.owners(), 1);
        assert_eq!(
            store.take(&hash(1)).await.unwrap().as_deref(),
            Some(&b"second"[..])
        );
        assert_eq!(store.owners(), 0);
    }
}
