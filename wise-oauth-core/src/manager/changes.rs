//! Following the other instances' writes through a [`LinkChanges`] channel.
//!
//! After each write of a link (refresh stored, re-link mark, new link, unlink) the manager
//! publishes a [`LinkChange`] from a task of its own. A listener task, started when the
//! handle is built and ended when it is dropped, applies the other instances' changes: a
//! cached entry older than the announced version is dropped (the next request reads the
//! store), a deleted link is forgotten and its cached version refused for a revalidation
//! period, and whoever waits on that link's lease is woken at once instead of at its next
//! poll. [`ChangeEvent::Missed`] (or a lagging receiver) forgets the whole cache and wakes
//! every waiter. Nothing waits for a notification: polling and revalidation stay as they
//! were, so a lost channel costs latency, never correctness.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::{lock, Inner, TokenManager};
use crate::ids::{LinkKey, LinkNamespace};
use crate::store::{ChangeEvent, LinkChange, LinkChanges, Version};

/// The manager's side of change notifications: the channel (once connected) and the
/// wakers of the requests waiting on a lease.
#[derive(Debug, Default)]
pub(super) struct ChangeFeed {
    channel: OnceLock<Channel>,
    /// One `Notify` per link someone in this process waits on; removed by the last
    /// [`Watch`] of the link.
    waiting: Mutex<HashMap<LinkKey, Arc<Notify>>>,
}

#[derive(Debug)]
struct Channel {
    changes: Arc<dyn LinkChanges>,
    /// Only this environment's and client's links are in the cache.
    namespace: LinkNamespace,
    /// This handle's id in the changes it publishes.
    origin: u64,
    listener: AbortHandle,
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        if let Some(channel) = self.channel.get() {
            channel.listener.abort();
        }
    }
}

/// Interest in the changes of one link, held while waiting for its lease.
pub(super) struct Watch<'a> {
    feed: &'a ChangeFeed,
    key: LinkKey,
    notify: Arc<Notify>,
}

impl Watch<'_> {
    /// A future that completes at the next change of the link (or a missed-changes event)
    /// after this call: it is registered at once, so a change that lands while the caller
    /// still checks the store is not lost.
    pub(super) fn notified(&self) -> Pin<Box<Notified<'_>>> {
        let mut notified = Box::pin(self.notify.notified());
        notified.as_mut().enable();
        notified
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let mut waiting = lock(&self.feed.waiting);
        // Clones are only made under this lock: two references left are the map's and ours.
        if Arc::strong_count(&self.notify) == 2 {
            waiting.remove(&self.key);
        }
    }
}

impl ChangeFeed {
    /// Interest in `key`'s changes, or `None` when no channel is configured.
    pub(super) fn watch(&self, key: &LinkKey) -> Option<Watch<'_>> {
        self.channel.get()?;
        let notify = lock(&self.waiting)
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone();
        Some(Watch {
            feed: self,
            key: key.clone(),
            notify,
        })
    }

    fn wake(&self, key: &LinkKey) {
        if let Some(notify) = lock(&self.waiting).get(key) {
            notify.notify_waiters();
        }
    }

    fn wake_all(&self) {
        for notify in lock(&self.waiting).values() {
            notify.notify_waiters();
        }
    }
}

/// The builder was given a channel outside a Tokio runtime (the listener needs one).
#[derive(Debug)]
pub(crate) struct NoRuntime;

impl TokenManager {
    /// Publishes this handle's writes on `changes` and applies the others' (links of
    /// `namespace` only). Starts the listener task; call it once, inside a Tokio runtime.
    pub(crate) fn follow_changes(
        &self,
        changes: Arc<dyn LinkChanges>,
        namespace: LinkNamespace,
    ) -> Result<(), NoRuntime> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NoRuntime)?;
        let receiver = changes.subscribe();
        let listener = runtime.spawn(listen(Arc::downgrade(&self.inner), receiver));
        let channel = Channel {
            changes,
            namespace,
            origin: rand::random(),
            listener: listener.abort_handle(),
        };
        if let Err(channel) = self.inner.feed.channel.set(channel) {
            channel.listener.abort();
        }
        Ok(())
    }

    /// Announces our write of `key` (`None`: deleted) from a task of its own.
    pub(super) fn publish_change(&self, key: &LinkKey, version: Option<Version>) {
        let Some(channel) = self.inner.feed.channel.get() else {
            return;
        };
        let changes = channel.changes.clone();
        let change = LinkChange::new(key.clone(), version, channel.origin);
        tokio::spawn(async move {
            if let Err(e) = changes.publish(&change).await {
                tracing::warn!(
                    error = %e,
                    "link change notification failed; other instances revalidate on their own"
                );
            }
        });
    }

    /// Applies another instance's change of a link.
    fn apply_change(&self, change: &LinkChange) {
        let Some(channel) = self.inner.feed.channel.get() else {
            return;
        };
        let key = change.key();
        if change.origin() == channel.origin || channel.namespace.key(key.user()) != *key {
            return;
        }
        match change.version() {
            Some(version) => self.inner.cache.drop_older(key, version),
            None => {
                // Unlinked: what we cached (that version or older) must not come back from
                // a read that raced the delete.
                let cached = self.inner.cache.get(key.user()).map(|e| e.version);
                let now = self.inner.clock.now();
                let until = now + self.inner.settings.revalidate_after;
                self.inner.cache.bury(key, cached, now, until);
            }
        }
        self.inner.feed.wake(key);
    }

    /// Changes may have been missed: forget every cached link and wake every waiter.
    fn forget_all(&self) {
        self.inner.cache.clear();
        self.inner.feed.wake_all();
    }
}

/// The listener task: holds the manager weakly, so dropping the last handle ends it (the
/// feed also aborts it then).
async fn listen(manager: Weak<Inner>, mut receiver: tokio::sync::broadcast::Receiver<ChangeEvent>) {
    loop {
        let event = receiver.recv().await;
        let Some(inner) = manager.upgrade() else {
            return;
        };
        let manager = TokenManager { inner };
        match event {
            Ok(ChangeEvent::Changed(change)) => manager.apply_change(&change),
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "link change notifications lagged; cache dropped");
                manager.forget_all();
            }
            Ok(_) => manager.forget_all(),
            Err(RecvError::Closed) => {
                tracing::warn!(
                    "link change channel closed; cached links are revalidated on their own"
                );
                return;
            }
        }
    }
}
