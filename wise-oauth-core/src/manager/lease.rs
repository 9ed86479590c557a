//! A held refresh lease: renewed in the background while its holder works (heartbeat), and
//! checked before every call to Wise (fencing).
//!
//! The lease is the only thing that keeps two instances from calling Wise's refresh for one
//! link at once, and a refresh kills the previous access token at once. So a call is sent
//! only when the lease is known to be ours for as long as Wise may still complete the call
//! (the late-completion bound, which covers the call's timeout): the holder extends it
//! right before the call, counts its validity from the instant *before* the extension was
//! sent (the store may have applied it at any point after that), and skips the call if
//! less than that bound plus [`LEASE_MARGIN`] is left. The builder guarantees
//! `lease_ttl > late_completion_bound + LEASE_MARGIN`, so a prompt store always leaves
//! enough, and a holder that dies mid-call cannot be followed by another instance's
//! refresh before its abandoned call has ended at Wise.
//!
//! Between calls (backoff, the wait after an ambiguous timeout, the store write) a
//! heartbeat task renews the lease every third of its TTL, so leases can be short: a killed
//! holder stalls the other instances for one TTL, not for the longest refresh.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::lock;
use crate::ids::LinkKey;
use crate::store::{LeaseHolder, StoreError, TokenStore};

/// Time kept in hand beyond a call's timeout before the lease would run out (store
/// latency, timer slack).
pub(crate) const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// Why a call to Wise was not sent.
#[derive(Debug)]
pub(super) enum Fenced {
    /// Someone else holds the lease now (ours expired, or the store lost it).
    Lost,
    /// The store did not confirm the lease in time; we cannot prove it is ours.
    Store(StoreError),
}

/// The lease of one link, held by this process until dropped.
#[derive(Debug)]
pub(super) struct HeldLease {
    store: Arc<dyn TokenStore>,
    key: LinkKey,
    holder: LeaseHolder,
    ttl: Duration,
    state: Arc<Mutex<LeaseState>>,
    heartbeat: JoinHandle<()>,
    /// Released or handed on: nothing left for `Drop` to do.
    settled: bool,
}

#[derive(Debug)]
struct LeaseState {
    /// The lease is ours at least until this instant (counted from before the request that
    /// last confirmed it).
    valid_until: Instant,
    /// Someone else took it: no more calls under this lease.
    lost: bool,
    /// A call we gave up on may still be completed by Wise until then: the lease is not
    /// given up before (see [`HeldLease::guard`]).
    guard_until: Option<Instant>,
}

impl HeldLease {
    /// Starts the heartbeat of a lease that `holder` was just granted; `granted_at` is the
    /// instant before the successful `acquire_lease` was sent.
    pub(super) fn start(
        store: Arc<dyn TokenStore>,
        key: LinkKey,
        holder: LeaseHolder,
        ttl: Duration,
        granted_at: Instant,
    ) -> Self {
        let state = Arc::new(Mutex::new(LeaseState {
            valid_until: granted_at + ttl,
            lost: false,
            guard_until: None,
        }));
        let heartbeat = tokio::spawn(heartbeat(
            store.clone(),
            key.clone(),
            holder,
            ttl,
            state.clone(),
        ));
        Self {
            store,
            key,
            holder,
            ttl,
            state,
            heartbeat,
            settled: false,
        }
    }

    /// Keeps other holders out until `until` even after this value is released: a call we
    /// abandoned may still be completed by Wise until then.
    pub(super) fn guard(&self, until: Instant) {
        let mut state = lock(&self.state);
        state.guard_until = Some(state.guard_until.map_or(until, |g| g.max(until)));
    }

    /// How long the guard set by [`guard`](Self::guard) still lasts.
    pub(super) fn guarded_for(&self) -> Duration {
        lock(&self.state).guard_until.map_or(Duration::ZERO, |g| {
            g.saturating_duration_since(Instant::now())
        })
    }

    /// The holder id (handed on when the lease outlives this value).
    pub(super) fn holder(&self) -> LeaseHolder {
        self.holder
    }

    /// Extends the lease now and succeeds only if it is then ours for at least `needed`.
    pub(super) async fn fence(&self, needed: Duration) -> Result<(), Fenced> {
        if lock(&self.state).lost {
            return Err(Fenced::Lost);
        }
        let before = Instant::now();
        match self
            .store
            .acquire_lease(&self.key, self.holder, self.ttl)
            .await
        {
            Ok(true) => {
                let mut state = lock(&self.state);
                state.valid_until = state.valid_until.max(before + self.ttl);
                let left = state.valid_until.saturating_duration_since(Instant::now());
                if left >= needed {
                    Ok(())
                } else {
                    Err(Fenced::Store(StoreError::Unavailable(
                        "the store took too long to extend the refresh lease".into(),
                    )))
                }
            }
            Ok(false) => {
                lock(&self.state).lost = true;
                Err(Fenced::Lost)
            }
            Err(e) => Err(Fenced::Store(e)),
        }
    }

    /// Stops the heartbeat and releases the lease (compare-and-delete on the holder).
    pub(super) async fn release(mut self) {
        self.settled = true;
        self.heartbeat.abort();
        let guarded = self.guarded_for();
        if !guarded.is_zero() {
            // Leave it to expire when the abandoned call must have ended.
            let _ = self
                .store
                .acquire_lease(&self.key, self.holder, guarded)
                .await;
            return;
        }
        if let Err(e) = self.store.release_lease(&self.key, self.holder).await {
            // It expires on its own after its TTL.
            tracing::warn!(error = %e, "token store lease release failed");
        }
    }

    /// Stops the heartbeat and leaves the lease to expire (or to its next user).
    pub(super) fn keep(mut self) -> LeaseHolder {
        self.settled = true;
        self.heartbeat.abort();
        self.holder
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.heartbeat.abort();
        if self.settled {
            return;
        }
        // Dropped without `release` (a panic, a cancelled future): release it from a task,
        // so that others need not wait for the TTL.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            let key = self.key.clone();
            let holder = self.holder;
            runtime.spawn(async move {
                let _ = store.release_lease(&key, holder).await;
            });
        }
    }
}

async fn heartbeat(
    store: Arc<dyn TokenStore>,
    key: LinkKey,
    holder: LeaseHolder,
    ttl: Duration,
    state: Arc<Mutex<LeaseState>>,
) {
    let period = (ttl / 3).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(period).await;
        let before = Instant::now();
        match store.acquire_lease(&key, holder, ttl).await {
            Ok(true) => {
                let mut s = lock(&state);
                s.valid_until = s.valid_until.max(before + ttl);
            }
            Ok(false) => {
                lock(&state).lost = true;
                return;
            }
            // The next beat tries again; `fence` refuses calls once the lease may be gone.
            Err(e) => tracing::warn!(error = %e, "refresh lease renewal failed"),
        }
    }
}
