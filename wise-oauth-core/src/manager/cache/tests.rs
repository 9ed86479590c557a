//! The link cache's properties: versions and tombstones, a bounded size, shards that spread
//! any ids, a hit ratio at least LRU's on a Zipf workload, and scan resistance.

use std::time::{Duration, SystemTime};

use super::*;
use crate::ids::ProfileId;
use crate::secret::{AccessToken, RefreshToken};
use crate::token::TokenSet;

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
        &UserId::new("entry-user").unwrap(),
        &tokens,
        ProfileId::new(1).unwrap(),
        Version::new(version),
        now,
        t,
    )
}

fn key(user: &str) -> LinkKey {
    LinkKey::new("sandbox", "client", UserId::new(user).unwrap())
}

/// Replays `trace` (indices into `keys`) as the manager does: a read, and on a miss an
/// offer of the entry loaded from the store. Returns the hit ratio.
fn replay(cache: &LinkCache, keys: &[LinkKey], trace: &[usize]) -> f64 {
    let now = SystemTime::now();
    let mut hits = 0;
    for &i in trace {
        if cache.get(keys[i].user()).is_some() {
            hits += 1;
        } else {
            cache.offer(&keys[i], entry(1, now), now);
        }
    }
    sim::ratio(hits, trace.len())
}

#[test]
fn an_older_version_does_not_replace_a_newer_fresh_one() {
    let cache = LinkCache::new(100);
    let now = SystemTime::now();
    cache.put(&key("a"), entry(2, now));
    assert_eq!(
        cache.offer(&key("a"), entry(1, now), now).version,
        Version::new(2)
    );
    // Once the newer entry is due for revalidation, the store's answer wins.
    let later = now + Duration::from_secs(31);
    assert_eq!(
        cache.offer(&key("a"), entry(1, later), later).version,
        Version::new(1)
    );
    cache.invalidate(&key("a"));
    assert!(cache.get(key("a").user()).is_none());
}

#[test]
fn a_buried_version_is_refused_until_its_deadline_however_many_unlinks_follow() {
    let cache = LinkCache::new(100_000);
    let now = SystemTime::now();
    let until = now + Duration::from_secs(30);
    cache.put(&key("first"), entry(3, now));
    cache.bury(&key("first"), Some(Version::new(3)), now, until);
    // A burst of unlinks, each with the same lifetime, a little later.
    for i in 0..5_000 {
        let at = now + Duration::from_millis(i);
        cache.bury(
            &key(&format!("other-{i}")),
            Some(Version::new(1)),
            at,
            at + Duration::from_secs(30),
        );
    }
    let before_deadline = now + Duration::from_secs(10);
    cache.offer(&key("first"), entry(3, before_deadline), before_deadline);
    assert!(
        cache.get(key("first").user()).is_none(),
        "a read that raced the unlink put the token back"
    );
    // After the deadline the store is the judge again (the record is gone, so a stale read
    // cannot happen then; a new link has a newer version anyway).
    cache.offer(&key("first"), entry(4, before_deadline), before_deadline);
    assert!(cache.get(key("first").user()).is_some());
}

#[test]
fn the_capacity_is_never_exceeded() {
    let now = SystemTime::now();
    for capacity in [1_u64, 7, 64, 1_000, 5_000] {
        let cache = LinkCache::new(capacity);
        assert_eq!(cache.links.capacity() as u64, capacity);
        for i in 0..3 * capacity {
            let k = key(&format!("user-{i}"));
            cache.put(&k, entry(1, now));
            // Read some back so that entries move to the main queue too.
            if i % 3 == 0 {
                cache.get(key(&format!("user-{}", i / 2)).user());
            }
            if capacity < 100 || i % 97 == 0 {
                let held = cache.links.len();
                assert!(held as u64 <= capacity, "{held} > {capacity}");
            }
            assert!(cache.get(k.user()).is_some(), "the newest entry is kept");
        }
        // Full: every shard holds exactly its share.
        assert_eq!(cache.links.len() as u64, capacity);
    }
}

#[test]
fn ids_sharing_a_long_prefix_or_suffix_spread_over_the_shards() {
    let families: [fn(usize) -> String; 3] = [
        // Same length, same 28-byte ending (a UUID-like id with a counter up front).
        |i| format!("{i:08}-0000-4000-8000-000000000000"),
        // Same long prefix.
        |i| format!("tenant-acme-corporation/users/{i:08}"),
        // Same prefix and suffix, one differing byte pair in the middle.
        |i| format!("org:acme:{:02x}:user@example.com", i % 256),
    ];
    for family in families {
        let cache = LinkCache::new(1_000_000);
        let ids = if family(0) == family(256) {
            256
        } else {
            16_000
        };
        for i in 0..ids {
            cache.put(&key(&family(i)), entry(1, SystemTime::now()));
        }
        let lens = cache.links.shard_lens();
        assert_eq!(lens.len(), 16);
        let mean = ids as f64 / lens.len() as f64;
        let max = *lens.iter().max().unwrap() as f64;
        // Random placement gives a max about 1.1 times the mean for 16,000 ids, 1.6 for 256.
        let bound = if ids > 1_000 { 1.25 } else { 2.5 };
        assert!(max <= bound * mean, "{}: shard loads {lens:?}", family(0));
    }
}

#[test]
fn the_hit_ratio_on_a_zipf_workload_is_at_least_lrus() {
    const KEYS: usize = 100_000;
    const CAPACITY: usize = 10_000;
    let keys: Vec<LinkKey> = (0..KEYS).map(|i| key(&format!("user-{i}"))).collect();
    for seed in [1, 2] {
        let trace = sim::zipf_trace(KEYS, 1.1, 400_000, seed);
        let lru = sim::lru_hit_ratio(&trace, CAPACITY);
        let ours = replay(&LinkCache::new(CAPACITY as u64), &keys, &trace);
        assert!(ours >= lru, "seed {seed}: S3-FIFO {ours:.3} < LRU {lru:.3}");
    }
}

#[test]
fn a_frequently_read_link_survives_a_scan_of_one_off_users() {
    let cache = LinkCache::new(1_000);
    let now = SystemTime::now();
    let regulars: Vec<LinkKey> = (0..100).map(|i| key(&format!("regular-{i}"))).collect();
    for k in &regulars {
        cache.put(k, entry(1, now));
    }
    for _ in 0..2 {
        for k in &regulars {
            assert!(cache.get(k.user()).is_some());
        }
    }
    // Ten times the capacity of users seen once (a crawler, a batch job, a sign-up burst).
    for i in 0..10_000 {
        cache.put(&key(&format!("once-{i}")), entry(1, now));
    }
    let kept = regulars
        .iter()
        .filter(|k| cache.get(k.user()).is_some())
        .count();
    assert_eq!(kept, regulars.len(), "the scan pushed out regular users");
}
