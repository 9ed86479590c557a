//! Change notifications between the handles of one process.

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::store::changes::{ChangeEvent, LinkChange, LinkChanges};
use crate::store::StoreError;

/// How many changes a slow subscriber may fall behind before it counts as having missed
/// some (and forgets its whole cache).
const CAPACITY: usize = 4096;

/// In-process [`LinkChanges`]: clones share one channel, so several `WiseOAuth` handles on
/// one [`MemoryTokenStore`](crate::MemoryTokenStore) (several app instances in a test)
/// learn of each other's refreshes and unlinks at once.
///
/// ```
/// use wise_oauth_core::{ClientSecret, MemoryLinkChanges, MemoryTokenStore, WiseConfig, WiseOAuth};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let config = WiseConfig::builder("id", ClientSecret::new("s"), "https://app.example.com/cb")
///     .build()
///     .unwrap();
/// let (store, changes) = (MemoryTokenStore::new(), MemoryLinkChanges::new());
/// let a = WiseOAuth::builder(config.clone())
///     .store(store.clone())
///     .changes(changes.clone())
///     .build()
///     .unwrap();
/// let b = WiseOAuth::builder(config).store(store).changes(changes).build().unwrap();
/// # let _ = (a, b);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct MemoryLinkChanges {
    sender: broadcast::Sender<ChangeEvent>,
}

impl Default for MemoryLinkChanges {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl MemoryLinkChanges {
    /// A new channel (same as `Default`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Tells every subscriber that it may have missed changes ([`ChangeEvent::Missed`]), as
    /// a networked channel does after a reconnect; for tests of that path.
    pub fn announce_missed(&self) {
        let _ = self.sender.send(ChangeEvent::Missed);
    }
}

#[async_trait]
impl LinkChanges for MemoryLinkChanges {
    async fn publish(&self, change: &LinkChange) -> Result<(), StoreError> {
        // No subscriber is not an error: nobody has anything cached.
        let _ = self.sender.send(ChangeEvent::Changed(change.clone()));
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{LinkKey, UserId};
    use crate::store::Version;

    #[tokio::test]
    async fn clones_share_one_channel() {
        let a = MemoryLinkChanges::new();
        let b = a.clone();
        let mut rx = b.subscribe();
        let key = LinkKey::new("sandbox", "c", UserId::new("u").unwrap());
        let change = LinkChange::new(key, Some(Version(3)), 9);
        a.publish(&change).await.unwrap();
        a.announce_missed();
        assert_eq!(rx.recv().await.unwrap(), ChangeEvent::Changed(change));
        assert_eq!(rx.recv().await.unwrap(), ChangeEvent::Missed);
    }
}
