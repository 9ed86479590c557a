//! The in-memory pending-flow store: bounded per owner and in total, with TTLs.

use std::collections::{HashMap, VecDeque};
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
/// When full, sweep expired entries at most this often before refusing a new owner.
const FULL_SWEEP_GAP: Duration = Duration::from_secs(1);

/// An in-memory [`PendingStore`] with a hard memory bound and per-owner fairness.
///
/// - at most [`MAX_PENDING_PER_USER`] flows per owner: a new flow drops the owner's oldest;
/// - at most `capacity` owners (default 100 000), so at most `capacity` ×
///   [`MAX_PENDING_PER_USER`] flows: when full, a flow of a new owner is refused with
///   [`StoreError::Full`] (after expired flows are swept); no owner's flow is ever evicted
///   by another owner's;
/// - entries expire after their TTL (measured with [`Instant`]) and are consumed by
///   [`PendingStore::take`] at most once.
///
/// So 10⁶ flow starts from one user hold at most [`MAX_PENDING_PER_USER`] entries and do not
/// disturb other users' flows, and a flood from many accounts cannot push out the flows
/// already in progress. Clones share the same entries. With several app instances, use a
/// shared store (the callback may reach another instance than the start).
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
    /// Each owner's state hashes, oldest first.
    owners: HashMap<LinkKey, VecDeque<[u8; 32]>>,
    tick: u64,
    last_full_sweep: Option<Instant>,
}

struct Entry {
    owner: LinkKey,
    data: Vec<u8>,
    expires: Instant,
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
                tick: 0,
                last_full_sweep: None,
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
        if let Some(states) = self.owners.get_mut(&entry.owner) {
            states.retain(|s| s != state_hash);
            if states.is_empty() {
                self.owners.remove(&entry.owner);
            }
        }
        Some(entry)
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

    /// Room for a new owner: sweeps expired flows (at most once per [`FULL_SWEEP_GAP`]
    /// while full) and tells whether an owner may be added.
    fn room_for_new_owner(&mut self, now: Instant) -> bool {
        if self.owners.len() < self.capacity {
            return true;
        }
        let due = self
            .last_full_sweep
            .is_none_or(|at| now.saturating_duration_since(at) >= FULL_SWEEP_GAP);
        if due {
            self.last_full_sweep = Some(now);
            self.sweep_expired(now);
        }
        self.owners.len() < self.capacity
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
        if inner.tick % SWEEP_EVERY == 0 {
            inner.sweep_expired(now);
        }
        // A state hash is unique in practice; a repeat replaces the earlier flow.
        inner.remove_entry(state_hash);

        if let Some(states) = inner.owners.get_mut(owner) {
            states.push_back(*state_hash);
            let mut dropped = Vec::new();
            while states.len() > MAX_PENDING_PER_USER {
                if let Some(oldest) = states.pop_front() {
                    dropped.push(oldest);
                }
            }
            for state in dropped {
                inner.entries.remove(&state);
            }
        } else {
            if !inner.room_for_new_owner(now) {
                return Err(StoreError::Full);
            }
            inner
                .owners
                .insert(owner.clone(), VecDeque::from([*state_hash]));
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
            assert_eq!(inner.owners[&attacker].len(), MAX_PENDING_PER_USER);
            assert_eq!(inner.entries.len(), MAX_PENDING_PER_USER + 1);
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
    async fn a_full_store_refuses_new_owners_and_never_evicts_others() {
        let store = MemoryPendingStore::with_capacity(3);
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            store
                .insert(&hash(i as u64), &owner(name), name.as_bytes(), TTL)
                .await
                .unwrap();
        }
        // A new owner is refused: nobody's flow is pushed out for it.
        assert!(matches!(
            store.insert(&hash(20), &owner("d"), b"d", TTL).await,
            Err(StoreError::Full)
        ));
        // An owner with flows keeps starting flows (its own oldest go beyond the cap).
        for i in 0..(MAX_PENDING_PER_USER as u64 + 5) {
            store
                .insert(&hash(100 + i), &owner("a"), b"a", TTL)
                .await
                .unwrap();
        }
        assert_eq!(store.owners(), 3);
        for h in [1, 2] {
            assert!(store.take(&hash(h)).await.unwrap().is_some(), "{h}");
        }
        assert_eq!(store.take(&hash(0)).await.unwrap(), None, "a's own oldest");
        // Owners that finished make room again.
        store
            .insert(&hash(20), &owner("d"), b"d", TTL)
            .await
            .unwrap();
        assert_eq!(
            store.take(&hash(20)).await.unwrap().as_deref(),
            Some(&b"d"[..])
        );
    }

    #[tokio::test]
    async fn a_full_store_sweeps_expired_flows_before_refusing() {
        let store = MemoryPendingStore::with_capacity(2);
        store
            .insert(&hash(1), &owner("a"), b"a", Duration::ZERO)
            .await
            .unwrap();
        store
            .insert(&hash(2), &owner("b"), b"b", TTL)
            .await
            .unwrap();
        store
            .insert(&hash(3), &owner("c"), b"c", TTL)
            .await
            .unwrap();
        assert_eq!(store.owners(), 2);
        assert!(store.take(&hash(2)).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn many_owners_stay_within_capacity() {
        let store = MemoryPendingStore::with_capacity(100);
        let mut refused = 0;
        for i in 0..10_000u64 {
            match store
                .insert(&hash(i), &owner(&format!("u{i}")), b"x", TTL)
                .await
            {
                Ok(()) => {}
                Err(StoreError::Full) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(refused, 10_000 - 100);
        {
            let inner = store.lock();
            assert_eq!(inner.owners.len(), 100);
            assert_eq!(inner.entries.len(), 100);
        }
        // The first 100 owners kept their flows.
        assert!(store.take(&hash(0)).await.unwrap().is_some());
        assert!(store.take(&hash(99)).await.unwrap().is_some());
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
