//! The delivery ids this instance has already acted on (bounded, oldest forgotten first).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

/// The longest delivery id remembered, in bytes (Wise sends UUIDs); a longer one is not
/// remembered, so it is handled like a delivery without an id.
const MAX_DELIVERY_ID_LEN: usize = 128;

/// Remembers up to `capacity` delivery ids of this process.
///
/// Per instance, on purpose: handling is idempotent (a deactivation marks only links that
/// are still active and older than the event, under their lease), so a delivery seen by
/// two instances, or a replay of one forgotten here, changes nothing the second time and
/// fires no second event; this set only spares the store work on Wise's retries.
#[derive(Debug)]
pub(crate) struct SeenDeliveries {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    ids: HashSet<Arc<str>>,
    order: VecDeque<Arc<str>>,
}

impl SeenDeliveries {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn usable(id: &str) -> bool {
        !id.is_empty() && id.len() <= MAX_DELIVERY_ID_LEN
    }

    /// Whether `id` was remembered.
    pub(crate) fn contains(&self, id: &str) -> bool {
        Self::usable(id) && self.lock().ids.contains(id)
    }

    /// Remembers `id`, forgetting the oldest id beyond the capacity.
    pub(crate) fn remember(&self, id: &str) {
        if !Self::usable(id) || self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        let id: Arc<str> = Arc::from(id);
        if !inner.ids.insert(id.clone()) {
            return;
        }
        inner.order.push_back(id);
        while inner.order.len() > self.capacity {
            if let Some(oldest) = inner.order.pop_front() {
                inner.ids.remove(&oldest);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_ids_are_forgotten_first() {
        let seen = SeenDeliveries::new(2);
        seen.remember("a");
        seen.remember("b");
        seen.remember("a");
        assert!(seen.contains("a") && seen.contains("b"));
        seen.remember("c");
        assert!(!seen.contains("a"));
        assert!(seen.contains("b") && seen.contains("c"));
    }

    #[test]
    fn unusable_ids_are_never_remembered() {
        let seen = SeenDeliveries::new(10);
        let long = "x".repeat(MAX_DELIVERY_ID_LEN + 1);
        seen.remember("");
        seen.remember(&long);
        assert!(!seen.contains("") && !seen.contains(&long));
        assert_eq!(seen.lock().ids.len(), 0);
    }
}
