//! The yardstick of the link cache's eviction policy: a seeded Zipf trace and an exact LRU
//! replaying it. Std only, so that `benches/figures.rs` (`figures cache`) includes this file
//! as it is and prints the same figures the unit tests assert on.

use std::collections::{BTreeMap, HashMap};

/// A reproducible trace of key ranks (`0..keys`, rank 0 the most popular) drawn from a Zipf
/// distribution with exponent `s`: rank `k` is drawn with a probability proportional to
/// `1 / (k + 1)^s`.
pub(crate) fn zipf_trace(keys: usize, s: f64, len: usize, seed: u64) -> Vec<usize> {
    let mut cdf = Vec::with_capacity(keys);
    let mut total = 0.0;
    for rank in 1..=keys {
        total += (rank as f64).powf(-s);
        cdf.push(total);
    }
    let mut rng = SplitMix64(seed);
    (0..len)
        .map(|_| {
            let u = rng.unit() * total;
            cdf.partition_point(|&c| c < u).min(keys - 1)
        })
        .collect()
}

/// The share of `trace` an exact LRU cache of `capacity` entries answers from memory, a miss
/// inserting the key.
pub(crate) fn lru_hit_ratio(trace: &[usize], capacity: usize) -> f64 {
    // Last use of each cached key, and the cached keys by last use (oldest first).
    let mut last_use: HashMap<usize, u64> = HashMap::with_capacity(capacity + 1);
    let mut by_age: BTreeMap<u64, usize> = BTreeMap::new();
    let mut hits = 0_u64;
    for (tick, &key) in (0_u64..).zip(trace) {
        if let Some(previous) = last_use.insert(key, tick) {
            by_age.remove(&previous);
            hits += 1;
        } else if last_use.len() > capacity {
            let (_, oldest) = by_age.pop_first().expect("the cache is not empty");
            last_use.remove(&oldest);
        }
        by_age.insert(tick, key);
    }
    ratio(hits, trace.len())
}

/// `hits / requests`, 0 for an empty trace.
pub(crate) fn ratio(hits: u64, requests: usize) -> f64 {
    if requests == 0 {
        return 0.0;
    }
    hits as f64 / requests as f64
}

/// SplitMix64: a tiny, seeded, good-enough generator (no dependency for a test trace).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1_u64 << 53) as f64
    }
}
