//! The read path of the manager's link cache: `get` of a cached link, the one cache call
//! of `WiseToken` on a fresh token. The cache is the core's own policy type (this bench
//! includes its source), full at the default capacity of 100,000 UUID user ids, holding an
//! `Arc` per link as the link cache does.
//!
//! `cargo bench --bench link_cache` (add `-- --warm-up-time 1 --measurement-time 3` for a
//! quick run). `one_user` reads the same id again and again (the `hot_path` bench's case);
//! `many_users` walks 4,096 cached ids, so the lookups miss the CPU caches more often.

#![allow(missing_docs)] // criterion_group! makes a public fn

#[path = "../wise-oauth-core/src/manager/cache/s3fifo.rs"]
#[allow(dead_code, unused_imports)]
mod s3fifo;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use wise_oauth::UserId;

const CAPACITY: usize = 100_000;

fn link_cache_get(c: &mut Criterion) {
    let ids: Vec<UserId> = (0..CAPACITY)
        .map(|_| UserId::new(uuid::Uuid::new_v4().to_string()).unwrap())
        .collect();
    let cache = s3fifo::S3Fifo::new(CAPACITY);
    for id in &ids {
        cache.insert_unless(id.clone(), Arc::new([0_u8; 160]), |_| false);
    }
    // Shards fill unevenly: a full cache has dropped a few of the ids.
    let sample: Vec<&UserId> = ids
        .iter()
        .filter(|id| cache.get(*id).is_some())
        .step_by(CAPACITY / 4096)
        .take(4096)
        .collect();
    let mut group = c.benchmark_group("link_cache");
    group.bench_function("one_user", |b| {
        let id = sample[0];
        b.iter(|| black_box(cache.get(black_box(id))));
    });
    group.bench_function("many_users", |b| {
        let mut next = 0;
        b.iter(|| {
            next = (next + 1) % sample.len();
            black_box(cache.get(sample[next]))
        });
    });
    group.finish();
}

criterion_group!(benches, link_cache_get);
criterion_main!(benches);
