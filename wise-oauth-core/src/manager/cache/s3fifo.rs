//! A sharded, bounded map with S3-FIFO eviction (Yang et al., "FIFO queues are all you need
//! for cache eviction", SOSP 2023): the policy of the link cache.
//!
//! Every key is hashed once, with foldhash's quality hasher (randomly seeded per cache; about
//! 30 instructions for a user id against SipHash's 190, the largest single cost of a cache
//! read): the hash picks the shard from its middle bits and is, as it is, the key of the
//! shard's map, whose slot holds the key itself to tell two keys with one hash apart (the
//! later one takes the slot; a cache may forget anything). Ids that share a prefix or a
//! suffix spread like any others. A flood of colliding ids could only evict each other: a
//! collision replaces a slot, it never chains, so there is no slow path to aim at.
//!
//! Each shard has a small FIFO queue (a tenth of the shard) where new keys land, a main FIFO
//! queue for the rest, and a ghost queue remembering the hashes recently evicted from the
//! small one. A read only raises the slot's frequency (an atomic, at most 3, written only
//! while below 3) under the shard's read lock. When the shard is full, the small queue's
//! oldest key moves to the main queue if it was read since it came in, and is dropped (its
//! hash remembered as a ghost) otherwise; the main queue's oldest key goes back to the head
//! with its frequency lowered by one while that is above zero, and is dropped otherwise. A key
//! that comes back while it is a ghost goes straight to the main queue.
//!
//! What this buys: one-off keys (a scan, a burst of new users) pass through the small queue
//! without displacing the keys read again and again, and on skewed (Zipf) workloads the hit
//! ratio is above LRU's, for the read cost of a hash map lookup.
//!
//! Std and foldhash only: `benches/figures.rs` and `benches/link_cache.rs` include this file
//! as it is.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The most shards a cache is split into (fewer for a small capacity).
const MAX_SHARDS: usize = 16;
const _: () = assert!(MAX_SHARDS.is_power_of_two());
/// A shard holds at least this many entries unless the whole cache holds fewer.
const MIN_PER_SHARD: usize = 32;
/// A slot's frequency saturates here: three reads since it came in or was last passed over.
const MAX_FREQ: u8 = 3;

/// A bounded concurrent map from `K` to `V` with S3-FIFO eviction; see the module docs.
pub(crate) struct S3Fifo<K, V> {
    hasher: foldhash::quality::RandomState,
    shards: Box<[RwLock<Shard<K, V>>]>,
    capacity: usize,
}

impl<K, V> std::fmt::Debug for S3Fifo<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Fifo")
            .field("capacity", &self.capacity)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V: Clone> S3Fifo<K, V> {
    /// A cache of at most `capacity` entries (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let shards = shard_count(capacity);
        Self {
            hasher: foldhash::quality::RandomState::default(),
            // The first `capacity % shards` shards take one entry more: the sum is exact.
            shards: (0..shards)
                .map(|i| {
                    let extra = usize::from(i < capacity % shards);
                    RwLock::new(Shard::new(capacity / shards + extra))
                })
                .collect(),
            capacity,
        }
    }

    /// The most entries the cache holds.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The value of `key`, counting the read for the eviction policy. Takes the shard's read
    /// lock only and allocates nothing.
    #[inline]
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read(key, V::clone)
    }

    /// `look` at the value of `key` under the shard's read lock (so a reader that needs
    /// only part of the value copies only that), counting the read for the eviction
    /// policy. `look` must not use the cache.
    #[inline]
    pub(crate) fn read<Q, R>(&self, key: &Q, look: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let shard = read(self.shard(hash));
        let slot = shard.map.get(&hash)?;
        if slot.key.borrow() != key {
            return None;
        }
        slot.touch();
        Some(look(&slot.value))
    }

    /// Caches `value` for `key` unless `keep` says the value cached now should stay; returns
    /// the value cached afterwards. Replacing a value keeps its place and frequency.
    pub(crate) fn insert_unless(&self, key: K, value: V, keep: impl FnOnce(&V) -> bool) -> V {
        let hash = self.hasher.hash_one(&key);
        let mut shard = write(self.shard(hash));
        shard.insert(hash, key, value, keep)
    }

    /// Forgets `key`.
    pub(crate) fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        write(self.shard(hash)).remove(hash, key);
    }

    /// Forgets every key (and the ghosts: the cache starts over).
    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = write(shard);
            let capacity = shard.capacity;
            *shard = Shard::new(capacity);
        }
    }

    /// How many entries each shard holds.
    #[cfg(test)]
    pub(crate) fn shard_lens(&self) -> Vec<usize> {
        self.shards.iter().map(|s| read(s).map.len()).collect()
    }

    /// How many entries the cache holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shard_lens().iter().sum()
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard<K, V>> {
        // Bits 32..: the shard's map buckets by the low bits and tags by the top seven. The
        // count is a power of two (`shard_count`): a mask, not a division, picks the shard.
        // `hash >> 32` fits 32 bits, so the cast loses nothing on any target.
        let index = (hash >> 32) as usize & (self.shards.len() - 1);
        &self.shards[index]
    }
}

/// A power of two (so that [`S3Fifo::shard`] can mask) up to [`MAX_SHARDS`], so that each
/// shard holds [`MIN_PER_SHARD`] or more.
fn shard_count(capacity: usize) -> usize {
    let mut shards = MAX_SHARDS;
    while shards > 1 && capacity / shards < MIN_PER_SHARD {
        shards /= 2;
    }
    shards
}

/// One cached key and its value.
struct Slot<K, V> {
    key: K,
    value: V,
    /// Reads since the slot came in or was last passed over (at most [`MAX_FREQ`]).
    freq: AtomicU8,
    /// Which insertion this slot is; the queues name slots by hash and id.
    id: u64,
    in_main: bool,
}

impl<K, V> Slot<K, V> {
    #[inline]
    fn touch(&self) {
        // A read of a hot slot writes nothing (no cache line bouncing between cores); a lost
        // increment between racing readers only costs precision.
        let freq = self.freq.load(Ordering::Relaxed);
        if freq < MAX_FREQ {
            self.freq.store(freq + 1, Ordering::Relaxed);
        }
    }

    fn freq(&mut self) -> u8 {
        *self.freq.get_mut()
    }
}

/// A queue's name for a slot: stale once the slot is removed or replaced by a new insertion.
#[derive(Clone, Copy)]
struct Tag {
    hash: u64,
    id: u64,
}

/// One shard: its map and the three queues, under one lock.
struct Shard<K, V> {
    map: HashMap<u64, Slot<K, V>, Prehashed>,
    small: VecDeque<Tag>,
    main: VecDeque<Tag>,
    ghost: Ghost,
    /// Live slots in the small queue (the queues may also hold stale tags).
    small_len: usize,
    small_target: usize,
    capacity: usize,
    next_id: u64,
}

impl<K: Eq, V: Clone> Shard<K, V> {
    fn new(capacity: usize) -> Self {
        let small_target = (capacity / 10).max(1);
        Self {
            map: HashMap::with_hasher(Prehashed::default()),
            small: VecDeque::new(),
            main: VecDeque::new(),
            ghost: Ghost::new(capacity.saturating_sub(small_target).max(1)),
            small_len: 0,
            small_target,
            capacity,
            next_id: 0,
        }
    }

    fn insert(&mut self, hash: u64, key: K, value: V, keep: impl FnOnce(&V) -> bool) -> V {
        if let Some(slot) = self.map.get_mut(&hash) {
            if slot.key == key {
                if !keep(&slot.value) {
                    slot.value = value;
                }
                return slot.value.clone();
            }
            // Another key with the same hash: it gives its slot (and place) to this one.
            slot.key = key;
            slot.value = value.clone();
            *slot.freq.get_mut() = 0;
            return value;
        }
        if self.capacity == 0 {
            return value;
        }
        while self.map.len() >= self.capacity {
            self.evict();
        }
        let id = self.next_id;
        self.next_id += 1;
        let in_main = self.ghost.contains(hash);
        if in_main {
            self.main.push_back(Tag { hash, id });
        } else {
            self.small.push_back(Tag { hash, id });
            self.small_len += 1;
        }
        self.map.insert(
            hash,
            Slot {
                key,
                value: value.clone(),
                freq: AtomicU8::new(0),
                id,
                in_main,
            },
        );
        value
    }

    fn remove<Q>(&mut self, hash: u64, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let Some(slot) = self.map.get(&hash) else {
            return;
        };
        if slot.key.borrow() != key {
            return;
        }
        if !slot.in_main {
            self.small_len -= 1;
        }
        self.map.remove(&hash);
        // Removal leaves a stale tag behind; keep the queues within twice their live slots.
        let main_len = self.map.len() - self.small_len;
        if self.small.len() > 2 * self.small_len + MIN_PER_SHARD {
            let map = &self.map;
            self.small.retain(|tag| live(map, *tag));
        }
        if self.main.len() > 2 * main_len + MIN_PER_SHARD {
            let map = &self.map;
            self.main.retain(|tag| live(map, *tag));
        }
    }

    /// Drops one slot (the shard is full, so there is one to drop).
    fn evict(&mut self) {
        loop {
            let main_len = self.map.len() - self.small_len;
            let from_small =
                self.small_len > 0 && (self.small_len >= self.small_target || main_len == 0);
            if from_small {
                if self.evict_small() {
                    return;
                }
            } else if self.evict_main() {
                return;
            }
        }
    }

    /// Takes the small queue's oldest slot: promoted to the main queue if it was read since
    /// it came in (returns false), dropped and remembered as a ghost otherwise (true).
    fn evict_small(&mut self) -> bool {
        let Some(tag) = self.small.pop_front() else {
            return false;
        };
        let Some(slot) = self.map.get_mut(&tag.hash).filter(|s| s.id == tag.id) else {
            return false;
        };
        self.small_len -= 1;
        if slot.freq() > 0 {
            *slot.freq.get_mut() = 0;
            slot.in_main = true;
            self.main.push_back(tag);
            false
        } else {
            self.map.remove(&tag.hash);
            self.ghost.push(tag.hash);
            true
        }
    }

    /// Takes the main queue's oldest slot: back to the head with one read less if it was
    /// read (returns false), dropped otherwise (true).
    fn evict_main(&mut self) -> bool {
        let Some(tag) = self.main.pop_front() else {
            return false;
        };
        let Some(slot) = self.map.get_mut(&tag.hash).filter(|s| s.id == tag.id) else {
            return false;
        };
        let freq = slot.freq();
        if freq > 0 {
            *slot.freq.get_mut() = freq - 1;
            self.main.push_back(tag);
            false
        } else {
            self.map.remove(&tag.hash);
            true
        }
    }
}

fn live<K, V>(map: &HashMap<u64, Slot<K, V>, Prehashed>, tag: Tag) -> bool {
    map.get(&tag.hash).is_some_and(|slot| slot.id == tag.id)
}

/// The hashes last evicted from the small queue, oldest first, with a count per hash for
/// the membership test.
struct Ghost {
    order: VecDeque<u64>,
    counts: HashMap<u64, u32, Prehashed>,
    capacity: usize,
}

impl Ghost {
    fn new(capacity: usize) -> Self {
        Self {
            order: VecDeque::new(),
            counts: HashMap::with_hasher(Prehashed::default()),
            capacity,
        }
    }

    fn push(&mut self, hash: u64) {
        if self.order.len() >= self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                if let Some(count) = self.counts.get_mut(&oldest) {
                    *count -= 1;
                    if *count == 0 {
                        self.counts.remove(&oldest);
                    }
                }
            }
        }
        self.order.push_back(hash);
        *self.counts.entry(hash).or_insert(0) += 1;
    }

    fn contains(&self, hash: u64) -> bool {
        self.counts.contains_key(&hash)
    }
}

/// The maps' hasher: their keys are hashes already (from the cache's foldhash `RandomState`).
type Prehashed = BuildHasherDefault<Identity>;

/// Passes a `u64` key through as its own hash.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys come here (`write_u64`); fold anything else rather than fail.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
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

    #[test]
    fn removals_leave_no_more_than_a_bounded_trail_in_the_queues() {
        let cache: S3Fifo<String, u32> = S3Fifo::new(64);
        for i in 0..10_000 {
            let key = format!("k{}", i % 8);
            cache.insert_unless(key.clone(), i, |_| false);
            cache.remove(key.as_str());
        }
        for shard in cache.shards.iter() {
            let shard = read(shard);
            assert!(shard.small.len() + shard.main.len() <= 2 * MIN_PER_SHARD + 2);
        }
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_replaced_value_keeps_its_key_and_a_kept_one_stays() {
        let cache: S3Fifo<String, u32> = S3Fifo::new(8);
        assert_eq!(cache.insert_unless("a".into(), 1, |_| false), 1);
        assert_eq!(cache.insert_unless("a".into(), 2, |old| *old == 1), 1);
        assert_eq!(cache.insert_unless("a".into(), 3, |_| false), 3);
        assert_eq!(cache.get("a"), Some(3));
        assert_eq!(cache.get("b"), None);
        assert_eq!(cache.len(), 1);
    }
}
