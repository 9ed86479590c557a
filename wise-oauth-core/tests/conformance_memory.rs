//! The store conformance suite against the built-in in-memory stores.

use std::time::Duration;

use wise_oauth_core::conformance::FaultyStore;
use wise_oauth_core::{
    LinkKey, LinkRecord, LinkStatus, MemoryPendingStore, MemoryTokenStore, ProfileId, SealedTokens,
    StoreError, TokenStore, UserId, Version,
};

wise_oauth_core::token_store_conformance!(memory_token_store, MemoryTokenStore::default());
wise_oauth_core::pending_store_conformance!(memory_pending_store, MemoryPendingStore::default());

// The async form, and a wrapper that passes calls through unchanged when no fault is on.
wise_oauth_core::token_store_conformance!(faulty_token_store_without_faults, async {
    FaultyStore::new(MemoryTokenStore::default())
});
wise_oauth_core::pending_store_conformance!(faulty_pending_store_without_faults, async {
    FaultyStore::new(MemoryPendingStore::default())
});

fn record(byte: u8) -> LinkRecord {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    LinkRecord::new(
        ProfileId::new(1).unwrap(),
        LinkStatus::Active,
        t,
        t,
        t,
        SealedTokens::new(vec![byte]),
    )
}

/// Writers on separate tasks (truly parallel on the multi-thread runtime), sharing the store
/// through clones: exactly one compare-and-swap wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_tasks_racing_cas_one_wins() {
    let store = MemoryTokenStore::default();
    let key = LinkKey::new("sandbox", "c", UserId::new("u").unwrap());
    let v1 = store.save(&key, &record(0), None).await.unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(32));
    let tasks: Vec<_> = (1..=32u8)
        .map(|i| {
            let (store, key, barrier) = (store.clone(), key.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.save(&key, &record(i), Some(v1)).await
            })
        })
        .collect();
    let mut wins = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(v) => wins.push(v),
            Err(StoreError::Conflict) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(wins, [Version::new(2)]);
    assert_eq!(
        store.load(&key).await.unwrap().unwrap().version,
        Version::new(2)
    );
}
