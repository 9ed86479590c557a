//! One refresh per link in this process: a spawned task shared by every waiter.
//!
//! The task is `tokio::spawn`ed, so a waiter that is dropped (a client disconnecting)
//! does not cancel it; the result is persisted before any waiter sees it. A drop guard
//! inside the task removes the in-flight entry however the task ends (result, panic,
//! runtime shutdown), and a `JoinError` becomes [`TokenError::Unavailable`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{lock, Inner, TokenError, TokenManager, ValidToken};
use crate::ids::LinkKey;
use crate::secret::AccessToken;

pub(super) type FlightResult = Result<ValidToken, TokenError>;
pub(super) type SharedFlight = Shared<BoxFuture<'static, FlightResult>>;

/// Why a refresh is wanted; decides when a stored token already satisfies it (fencing).
#[derive(Debug, Clone)]
pub(super) enum Reason {
    /// The cached token is inside the refresh window (background refresh).
    Window,
    /// The cached token is expired (or within the skew).
    Expired,
    /// Wise answered 401 for this token.
    Unauthorized(Arc<AccessToken>),
}

#[derive(Debug, Default)]
pub(super) struct Flights {
    map: Mutex<HashMap<LinkKey, (u64, SharedFlight)>>,
    next_id: AtomicU64,
}

/// Removes the in-flight entry `id` of `key` when the task ends in any way.
struct FlightGuard {
    inner: Weak<Inner>,
    key: LinkKey,
    id: u64,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            let mut map = lock(&inner.flights.map);
            if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
                map.remove(&self.key);
            }
        }
    }
}

impl TokenManager {
    /// Joins the refresh in flight for `key`, or starts one, and waits for its result.
    /// The wait is bounded by [`ManagerSettings::max_wait`](super::ManagerSettings::max_wait);
    /// the refresh itself goes on after a waiter gives up.
    pub(super) async fn join_refresh(&self, key: &LinkKey, reason: Reason) -> FlightResult {
        let bound = self.inner.settings.max_wait();
        match tokio::time::timeout(bound, self.flight(key, reason)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(TokenError::Unavailable {
                retry_after: Some(std::time::Duration::from_secs(1)),
            }),
        }
    }

    /// Starts a refresh in the background unless one is running or the link's refresh
    /// budget is spent. Never waits.
    pub(super) fn background_refresh(&self, key: &LinkKey, now: SystemTime) {
        if self.attempt_wait(key, &Reason::Window, now).is_some()
            || self.inner.breaker.is_open(now)
            || self.inner.pause.remaining(now).is_some()
        {
            return;
        }
        drop(self.flight(key, Reason::Window));
    }

    /// The shared future of the refresh of `key`, started if none is running.
    pub(super) fn flight(&self, key: &LinkKey, reason: Reason) -> SharedFlight {
        let (handle_tx, handle_rx) = oneshot::channel::<JoinHandle<FlightResult>>();
        let id = self.inner.flights.next_id.fetch_add(1, Ordering::Relaxed);
        let flight = {
            let mut map = lock(&self.inner.flights.map);
            if let Some((_, flight)) = map.get(key) {
                return flight.clone();
            }
            let flight = async move {
                let Ok(handle) = handle_rx.await else {
                    return Err(TokenError::unavailable());
                };
                match handle.await {
                    Ok(result) => result,
                    Err(e) => {
                        tracing::error!(panicked = e.is_panic(), "token refresh task failed");
                        Err(TokenError::unavailable())
                    }
                }
            }
            .boxed()
            .shared();
            // Registered before the task exists, so the task's guard always finds it.
            map.insert(key.clone(), (id, flight.clone()));
            flight
        };
        let guard = FlightGuard {
            inner: Arc::downgrade(&self.inner),
            key: key.clone(),
            id,
        };
        let manager = self.clone();
        let task_key = key.clone();
        let handle = tokio::spawn(async move {
            let _guard = guard;
            manager.run_refresh(&task_key, reason).await
        });
        // Our clone of the shared future keeps the receiver alive, so this cannot fail;
        // the task runs on whether or not anyone awaits it.
        let _ = handle_tx.send(handle);
        flight
    }

    /// Waits until every refresh running in this process has ended (its result persisted
    /// or given up, an unpersisted set written), or `within` has passed. `true` when none is left running.
    pub(crate) async fn drain(&self, within: std::time::Duration) -> bool {
        let running: Vec<SharedFlight> = lock(&self.inner.flights.map)
            .values()
            .map(|(_, flight)| flight.clone())
            .collect();
        let all = async {
            futures::future::join_all(running).await;
            // Sets Wise issued that the store has not taken yet: their writer keeps trying;
            // exiting before it succeeds would lose them.
            while !lock(&self.inner.unpersisted).is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(within, all).await.is_ok()
    }

    #[cfg(test)]
    pub(crate) fn flights_in_progress(&self) -> usize {
        lock(&self.inner.flights.map).len()
    }
}
