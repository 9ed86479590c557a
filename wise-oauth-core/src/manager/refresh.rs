//! The refresh itself: lease, fencing re-read, the call to Wise, CAS save, and what
//! happens on each kind of failure.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use tracing::field::Empty;
use tracing::Instrument as _;

use super::cache::CacheEntry;
use super::lease::{Fenced, HeldLease, LEASE_MARGIN};
use super::single_flight::Reason;
use super::{lock, store_error, TokenError, TokenManager, ValidToken};
use crate::endpoint::retry::{next_wait, Repeatable, MAX_HONOURED_RETRY_AFTER, RETRY_BUDGET};
use crate::endpoint::TokenResponse;
use crate::endpoint::{CorrelationId, WiseError};
use crate::events::WiseEvent;
use crate::ids::LinkKey;
use crate::metrics::RefreshOutcome;
use crate::store::{
    LeaseHolder, LinkRecord, LinkStatus, StoreError, TokenStore, Version, Versioned,
};
use crate::token::TokenSet;

/// Opened by `invalid_client` / `unauthorized_client`: no more refresh calls until it
/// closes. Holds the closing instant as nanoseconds since the epoch (0 = closed).
#[derive(Debug, Default)]
pub(super) struct Breaker {
    open_until: AtomicU64,
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Breaker {
    pub(super) fn is_open(&self, now: SystemTime) -> bool {
        nanos(now) < self.open_until.load(Ordering::Relaxed)
    }

    pub(super) fn open(&self, now: SystemTime, duration: Duration) {
        self.open_until
            .store(nanos(now + duration), Ordering::Relaxed);
    }
}

/// A refreshed set that Wise issued but the store did not accept yet. While it exists the
/// link is not refreshed again (the previous tokens may be dead at Wise) and nothing is
/// handed out (I3); a background task keeps trying to write it.
#[derive(Debug)]
pub(super) struct Unpersisted {
    record: LinkRecord,
    expected: Version,
    tokens: TokenSet,
    holder: LeaseHolder,
    /// Counts the held set in `wise_oauth_unpersisted_sets` while it lives.
    _held: crate::metrics::Live,
}

/// The longest pause between two looks at a lease another instance holds.
const LEASE_POLL_MAX: Duration = Duration::from_millis(20);

/// The longest pause between two refreshes of one link (after success or failure).
const MAX_REFRESH_GAP: Duration = Duration::from_secs(30);

/// When a link may call Wise's refresh again (this process's view).
#[derive(Debug, Clone, Copy)]
pub(super) struct Pacing {
    /// Transient failures in a row (0 after a success).
    failures: u32,
    /// No refresh call before this instant (injected clock).
    next_at: SystemTime,
    /// The one skip of the post-success gap for a 401 was used.
    bypassed: bool,
    /// The lease this process keeps taken for the failure backoff (reused by the next try).
    held: Option<LeaseHolder>,
}

impl Pacing {
    fn after_success(next_at: SystemTime) -> Self {
        Self {
            failures: 0,
            next_at,
            bypassed: false,
            held: None,
        }
    }
}

/// A pause of every refresh of this process, set by a 429 with `Retry-After` (capped at
/// 30 s: one answer must not freeze every link for an hour; the link that got it backs off
/// on its own). Instants on the injected clock.
#[derive(Debug, Default)]
pub(super) struct RefreshPause {
    until: std::sync::Mutex<Option<SystemTime>>,
}

impl RefreshPause {
    /// How long the pause still lasts at `now`, if any.
    pub(super) fn remaining(&self, now: SystemTime) -> Option<Duration> {
        let until = (*lock(&self.until))?;
        let left = until.duration_since(now).unwrap_or(Duration::ZERO);
        (!left.is_zero()).then_some(left)
    }

    fn extend(&self, now: SystemTime, by: Duration) {
        let at = now + by.min(MAX_REFRESH_GAP);
        let mut until = lock(&self.until);
        if until.is_none_or(|u| u < at) {
            *until = Some(at);
        }
    }
}

/// Whether Wise rotates refresh tokens, as seen on this process's refreshes (Wise does
/// not document it). Unknown until the first successful refresh.
#[derive(Debug)]
pub(super) struct Rotation(std::sync::atomic::AtomicU8);

impl Default for Rotation {
    fn default() -> Self {
        Self(std::sync::atomic::AtomicU8::new(ROTATION_UNKNOWN))
    }
}

const ROTATION_UNKNOWN: u8 = 0;
const ROTATION_ROTATES: u8 = 1;
const ROTATION_KEEPS: u8 = 2;

impl Rotation {
    fn observe(&self, sent: &TokenSet, fresh: &TokenSet) {
        let seen = if sent.refresh_token.expose_secret() == fresh.refresh_token.expose_secret() {
            ROTATION_KEEPS
        } else {
            ROTATION_ROTATES
        };
        self.0.store(seen, Ordering::Relaxed);
    }

    /// Wise was seen to keep the refresh token on refresh.
    fn keeps_refresh_tokens(&self) -> bool {
        self.0.load(Ordering::Relaxed) == ROTATION_KEEPS
    }
}

/// What to do with the lease after a refresh attempt.
enum LeaseFate {
    Release,
    /// Handed to the background writer of an unpersisted set.
    Keep,
    /// Keep it taken for this backoff (capped at one TTL) after a transient failure.
    HoldFor(Duration),
    /// Lost or stale: release it and start over from the lease.
    Fenced,
}

/// How a wait for the lease ended.
pub(super) enum LeaseWait {
    /// Ours, counted from this instant (taken before the request that granted it).
    Acquired(tokio::time::Instant),
    /// Someone else's refresh became visible in the store while we waited.
    Settled(ValidToken),
}

const STORE_WRITE_ATTEMPTS: u32 = 4;

/// A store write whose panic (a bug in a store or its driver) counts as a failed write, so
/// a set Wise already issued is kept and retried instead of being lost with the task.
async fn save_contained(
    store: &dyn TokenStore,
    key: &LinkKey,
    record: &LinkRecord,
    expected: Version,
) -> Result<Version, StoreError> {
    match AssertUnwindSafe(store.save(key, record, Some(expected)))
        .catch_unwind()
        .await
    {
        Ok(result) => result,
        Err(_panic) => {
            tracing::error!("token store panicked while saving; treated as unavailable");
            Err(StoreError::Unavailable("token store panicked".into()))
        }
    }
}

/// Why [`TokenManager::call_refresh`] did not return Wise's answer.
enum Stop {
    /// Wise answered with an error (after the retries that were safe).
    Wise(WiseError),
    /// The lease is no longer provably ours, or the record changed since the fencing read:
    /// the call was not sent. Start over from the lease.
    Fenced,
    /// The store failed while fencing.
    Store(StoreError),
}

/// How many times a refresh goes back to the lease after being fenced out.
const FENCED_ROUNDS: u32 = 3;

impl TokenManager {
    /// Body of the spawned refresh task of one link.
    pub(super) async fn run_refresh(
        &self,
        key: &LinkKey,
        reason: Reason,
    ) -> Result<ValidToken, TokenError> {
        if self.has_unpersisted(key) {
            return Err(TokenError::Unavailable {
                retry_after: Some(Duration::from_secs(1)),
            });
        }
        if self.inner.breaker.is_open(self.inner.clock.now()) {
            return Err(TokenError::Misconfigured);
        }
        if let Some(wait) = self.backoff_wait(key, self.inner.clock.now()) {
            return Err(TokenError::Unavailable {
                retry_after: Some(wait),
            });
        }
        // The permit comes before the lease: a lease must never run out while its holder
        // queues for a permit (another instance would then refresh the same link).
        let _permit = self.inner.refresh_permits.acquire().await;
        let _in_flight = crate::metrics::Live::refresh();
        let mut reuse = self.take_backoff_lease(key);
        for _ in 0..FENCED_ROUNDS {
            let holder = reuse.take().unwrap_or_else(LeaseHolder::random);
            let granted_at = match self
                .acquire_lease_waiting(key, holder, Some(&reason))
                .await?
            {
                LeaseWait::Settled(valid) => return Ok(valid),
                LeaseWait::Acquired(at) => at,
            };
            let lease = HeldLease::start(
                self.inner.store.clone(),
                key.clone(),
                holder,
                self.inner.settings.lease_ttl,
                granted_at,
            );
            let outcome = AssertUnwindSafe(self.refresh_locked(key, &reason, &lease))
                .catch_unwind()
                .await;
            match outcome {
                Ok((result, LeaseFate::Keep)) => {
                    lease.keep();
                    return result;
                }
                Ok((result, LeaseFate::Release)) => {
                    lease.release().await;
                    return result;
                }
                Ok((result, LeaseFate::HoldFor(backoff))) => {
                    // The failure backoff is shared with the other instances: the lease
                    // stays taken for it (at most one TTL), so they wait instead of calling.
                    // Never shorter than the guard of a call we gave up on.
                    let hold = backoff
                        .min(self.inner.settings.lease_ttl)
                        .max(lease.guarded_for());
                    let holder = lease.keep();
                    let _ = self.inner.store.acquire_lease(key, holder, hold).await;
                    if let Some(p) = lock(&self.inner.pacing).get_mut(key) {
                        p.held = Some(holder);
                    }
                    return result;
                }
                Ok((_, LeaseFate::Fenced)) => {
                    lease.release().await;
                }
                Err(_panic) => {
                    tracing::error!("token refresh panicked; lease released");
                    lease.release().await;
                    return Err(TokenError::unavailable());
                }
            }
        }
        Err(TokenError::unavailable())
    }

    /// Takes the store lease of `key`, waiting (bounded) while another holder has it.
    /// With a `reason`, a waiter returns early when the store shows that another
    /// instance's refresh already satisfied it.
    pub(super) async fn acquire_lease_waiting(
        &self,
        key: &LinkKey,
        holder: LeaseHolder,
        reason: Option<&Reason>,
    ) -> Result<LeaseWait, TokenError> {
        let s = &self.inner.settings;
        let ttl = s.lease_ttl;
        let deadline = tokio::time::Instant::now() + s.max_wait();
        let mut delay = Duration::from_millis(5);
        // Another instance's write of this link (announced on the change channel, when
        // there is one) ends a pause at once; the poll below stays as the fallback.
        let watch = self.inner.feed.watch(key);
        let mut waited = false;
        loop {
            let changed = watch.as_ref().map(|w| w.notified());
            let before = tokio::time::Instant::now();
            match self.inner.store.acquire_lease(key, holder, ttl).await {
                Ok(true) => return Ok(LeaseWait::Acquired(before)),
                Ok(false) => crate::metrics::lease_contended(&mut waited),
                Err(e) => {
                    tracing::warn!(error = %e, "token store lease failed");
                    return Err(store_error(&e));
                }
            }
            if let Some(reason) = reason {
                let now = self.inner.clock.now();
                match self.inner.store.load(key).await {
                    Ok(None) => {
                        self.inner.cache.invalidate(key);
                        return Err(TokenError::NotLinked);
                    }
                    Ok(Some(record)) => {
                        if record.value.status == LinkStatus::NeedsRelink {
                            self.cache_record(key, &record, now).await?;
                            return Err(TokenError::RelinkRequired);
                        }
                        let tokens = self.open(key, &record)?;
                        if self.satisfies(reason, &tokens, now) {
                            let valid = self.cache_tokens(key, &record, &tokens, now).await;
                            return Ok(LeaseWait::Settled(valid));
                        }
                    }
                    Err(e) => return Err(store_error(&e)),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(TokenError::Unavailable {
                    retry_after: Some(Duration::from_secs(1)),
                });
            }
            match changed {
                Some(changed) => {
                    tokio::select! {
                        () = changed => {}
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                None => tokio::time::sleep(delay).await,
            }
            // Capped low: the refresh being waited for usually takes one Wise round trip
            // (~100 ms), and a waiter that sleeps past its end adds that oversleep to every
            // request queued behind it (the refresh herd bench, benches/figures.rs). One
            // waiter per link and instance polls, so 20 ms costs the store little.
            delay = (delay * 2).min(LEASE_POLL_MAX);
        }
    }

    pub(super) async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) {
        if let Err(e) = self.inner.store.release_lease(key, holder).await {
            // The lease expires on its own after its TTL.
            tracing::warn!(error = %e, "token store lease release failed");
        }
    }

    /// Whether `tokens` (just read from the store) already give what `reason` asks for.
    fn satisfies(&self, reason: &Reason, tokens: &TokenSet, now: SystemTime) -> bool {
        let t = &self.inner.thresholds;
        match reason {
            Reason::Expired => tokens.is_usable(now, t.skew_for(tokens)),
            Reason::Window => tokens.remaining(now) > t.window_for(tokens),
            Reason::Unauthorized(rejected) => {
                tokens.access_token.expose_secret() != rejected.expose_secret()
                    && tokens.is_usable(now, t.skew_for(tokens))
            }
        }
    }

    /// How long until this link may call Wise's refresh again, if it may not now. A 401
    /// on a token just refreshed may skip the post-success interval once (a sibling call
    /// that landed late killed it); a failure backoff is never skipped.
    pub(super) fn attempt_wait(
        &self,
        key: &LinkKey,
        reason: &Reason,
        now: SystemTime,
    ) -> Option<Duration> {
        let mut pacing = lock(&self.inner.pacing);
        let entry = pacing.get_mut(key)?;
        let wait = entry
            .next_at
            .duration_since(now)
            .ok()
            .filter(|d| !d.is_zero())?;
        if entry.failures == 0 && matches!(reason, Reason::Unauthorized(_)) && !entry.bypassed {
            entry.bypassed = true;
            return None;
        }
        Some(wait)
    }

    /// The rest of this link's failure backoff, if it is backing off.
    fn backoff_wait(&self, key: &LinkKey, now: SystemTime) -> Option<Duration> {
        let pacing = lock(&self.inner.pacing);
        let p = pacing.get(key).filter(|p| p.failures > 0)?;
        p.next_at.duration_since(now).ok().filter(|d| !d.is_zero())
    }

    /// The holder of the lease kept taken for this link's backoff, to take it over.
    fn take_backoff_lease(&self, key: &LinkKey) -> Option<LeaseHolder> {
        lock(&self.inner.pacing).get_mut(key)?.held.take()
    }

    /// A refresh succeeded: the next one for this link waits a quarter of the new token's
    /// lifetime (1 s to 30 s), so a token Wise issues nearly expired cannot start a loop.
    fn record_success(&self, key: &LinkKey, tokens: &TokenSet, now: SystemTime) {
        let lifetime = tokens
            .expires_at
            .duration_since(tokens.obtained_at)
            .unwrap_or(Duration::ZERO);
        let gap = (lifetime / 4).clamp(Duration::from_secs(1), MAX_REFRESH_GAP);
        self.pace(key, now, Pacing::after_success(now + gap));
    }

    /// A refresh failed transiently: exponential backoff from 1 s, capped at 30 s.
    fn record_failure(&self, key: &LinkKey, now: SystemTime) -> Duration {
        let failures = lock(&self.inner.pacing)
            .get(key)
            .map_or(0, |p| p.failures)
            .saturating_add(1);
        let backoff = Duration::from_secs(1)
            .saturating_mul(1 << (failures - 1).min(5))
            .min(MAX_REFRESH_GAP);
        self.pace(
            key,
            now,
            Pacing {
                failures,
                next_at: now + backoff,
                bypassed: true,
                held: None,
            },
        );
        backoff
    }

    fn pace(&self, key: &LinkKey, now: SystemTime, pacing: Pacing) {
        let mut map = lock(&self.inner.pacing);
        if map.len() >= 10_000 {
            map.retain(|_, p| p.next_at > now);
        }
        map.insert(key.clone(), pacing);
    }

    async fn cache_tokens(
        &self,
        key: &LinkKey,
        record: &Versioned<LinkRecord>,
        tokens: &TokenSet,
        now: SystemTime,
    ) -> ValidToken {
        let entry = CacheEntry::active(
            key.user(),
            tokens,
            record.value.profile_id,
            record.version,
            now,
            self.inner.thresholds,
        );
        let valid = match &entry.state {
            super::cache::CacheState::Active { valid, .. } => valid.clone(),
            _ => unreachable!("built as active"),
        };
        self.inner.cache.offer(key, entry, now);
        valid
    }

    /// The refresh proper, with the lease held.
    async fn refresh_locked(
        &self,
        key: &LinkKey,
        reason: &Reason,
        lease: &HeldLease,
    ) -> (Result<ValidToken, TokenError>, LeaseFate) {
        let now = self.inner.clock.now();
        // Fencing: the record as it is now, under the lease.
        let current = match self.inner.store.load(key).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                self.inner.cache.invalidate(key);
                return (Err(TokenError::NotLinked), LeaseFate::Release);
            }
            Err(e) => return (Err(store_error(&e)), LeaseFate::Release),
        };
        if current.value.status == LinkStatus::NeedsRelink {
            let result = self.cache_record(key, &current, now).await;
            return (
                result.and(Err(TokenError::RelinkRequired)),
                LeaseFate::Release,
            );
        }
        let tokens = match self.open(key, &current) {
            Ok(tokens) => tokens,
            Err(e) => return (Err(e), LeaseFate::Release),
        };
        if self.satisfies(reason, &tokens, now) {
            let valid = self.cache_tokens(key, &current, &tokens, now).await;
            return (Ok(valid), LeaseFate::Release);
        }
        if let Some(wait) = self.attempt_wait(key, reason, now) {
            return (
                Err(TokenError::Unavailable {
                    retry_after: Some(wait),
                }),
                LeaseFate::Release,
            );
        }
        if self.inner.breaker.is_open(now) {
            return (Err(TokenError::Misconfigured), LeaseFate::Release);
        }
        match self.call_refresh(key, &current, &tokens, lease).await {
            Ok(response) => match response.into_token_set(Some(&tokens.refresh_token)) {
                Ok(fresh) => {
                    crate::metrics::refresh(RefreshOutcome::Success);
                    self.inner.rotation.observe(&tokens, &fresh);
                    self.record_success(key, &fresh, self.inner.clock.now());
                    self.persist_refreshed(key, &current, fresh, lease.holder())
                        .await
                }
                Err(e) => {
                    crate::metrics::refresh(RefreshOutcome::InvalidResponse);
                    tracing::warn!(error = %e, "unusable refresh response");
                    let backoff = self.record_failure(key, self.inner.clock.now());
                    (
                        Err(TokenError::Unavailable {
                            retry_after: Some(backoff),
                        }),
                        LeaseFate::HoldFor(backoff),
                    )
                }
            },
            Err(Stop::Fenced) => {
                crate::metrics::refresh(RefreshOutcome::Fenced);
                (Err(TokenError::unavailable()), LeaseFate::Fenced)
            }
            Err(Stop::Store(e)) => {
                crate::metrics::refresh(RefreshOutcome::StoreError);
                (Err(store_error(&e)), LeaseFate::Release)
            }
            Err(Stop::Wise(e)) if e.needs_relink() => {
                crate::metrics::refresh(RefreshOutcome::RelinkRequired);
                tracing::info!(error = %e, "Wise rejected the refresh token");
                (
                    self.mark_needs_relink(key, &current).await,
                    LeaseFate::Release,
                )
            }
            Err(Stop::Wise(e)) if e.is_configuration() => {
                crate::metrics::refresh(RefreshOutcome::ClientRejected);
                tracing::error!(
                    error = %e,
                    "Wise rejected the OAuth client; refreshes paused, no link touched"
                );
                self.inner
                    .breaker
                    .open(self.inner.clock.now(), self.inner.settings.breaker_open_for);
                (Err(TokenError::Misconfigured), LeaseFate::Release)
            }
            Err(Stop::Wise(e)) => {
                crate::metrics::refresh(RefreshOutcome::Transient);
                tracing::warn!(error = %e, "token refresh failed; link unchanged");
                let backoff = self.record_failure(key, self.inner.clock.now());
                let retry_after = e.retry_after().map_or(backoff, |ra| ra.max(backoff));
                (
                    Err(TokenError::Unavailable {
                        retry_after: Some(retry_after),
                    }),
                    LeaseFate::HoldFor(backoff),
                )
            }
        }
    }

    /// Calls Wise's refresh, retrying what is safe, and sends each attempt only while the
    /// lease is provably ours for the whole attempt and the record is still `current`.
    async fn call_refresh(
        &self,
        key: &LinkKey,
        current: &Versioned<LinkRecord>,
        tokens: &TokenSet,
        lease: &HeldLease,
    ) -> Result<TokenResponse, Stop> {
        let s = &self.inner.settings;
        let endpoint = &self.inner.endpoint;
        let correlation_id = CorrelationId::new();
        let span = tracing::info_span!(
            "wise_oauth.token_request",
            grant = "refresh_token",
            correlation_id = %correlation_id,
            attempt = Empty,
            status = Empty,
            trace_id = Empty,
        );
        async {
            let started = tokio::time::Instant::now();
            let mut attempt = 0u32;
            // The send time of the last attempt that timed out (Wise may still complete it).
            let mut abandoned: Option<tokio::time::Instant> = None;
            loop {
                attempt += 1;
                tracing::Span::current().record("attempt", attempt);
                if let Some(pause) = self.inner.pause.remaining(self.inner.clock.now()) {
                    // Wise rate-limited this instance: every link waits, not just one.
                    if pause > MAX_HONOURED_RETRY_AFTER || started.elapsed() + pause >= RETRY_BUDGET
                    {
                        return Err(Stop::Wise(WiseError::RateLimited {
                            retry_after: Some(pause),
                        }));
                    }
                    tokio::time::sleep(pause).await;
                }
                // Ours for as long as Wise may complete this call, even if we die now.
                match lease.fence(s.late_completion_bound + LEASE_MARGIN).await {
                    Ok(()) => {}
                    Err(Fenced::Lost) => return Err(Stop::Fenced),
                    Err(Fenced::Store(e)) => return Err(Stop::Store(e)),
                }
                match self.inner.store.load(key).await {
                    Ok(Some(r)) if r.version == current.version => {}
                    Ok(_) => return Err(Stop::Fenced),
                    Err(e) => return Err(Stop::Store(e)),
                }
                let sent = tokio::time::Instant::now();
                let err = match endpoint
                    .refresh_attempt(&tokens.refresh_token, correlation_id.as_str(), s.refresh_timeout)
                    .await
                {
                    Ok(response) => {
                        let kept = response
                            .refresh_token
                            .as_ref()
                            .is_none_or(|r| r.expose_secret() == tokens.refresh_token.expose_secret());
                        let pending = abandoned
                            .take()
                            .map(|at| (at + s.late_completion_bound).saturating_duration_since(tokio::time::Instant::now()))
                            .filter(|left| !left.is_zero());
                        match pending {
                            // We retried at once after a timeout (rotation unknown) and learn
                            // now that Wise keeps refresh tokens: the abandoned call, if Wise
                            // completes it, will kill the access token just issued. Wait it
                            // out and refresh once more, so the token we hand out is issued
                            // after the last refresh Wise processes.
                            Some(left) if kept && started.elapsed() + left < RETRY_BUDGET => {
                                tracing::info!("waiting out an abandoned refresh call before using the new token");
                                tokio::time::sleep(left).await;
                                continue;
                            }
                            _ => return Ok(response),
                        }
                    }
                    Err(err) => err,
                };
                if matches!(err, WiseError::Timeout { .. }) {
                    abandoned = Some(sent);
                    lease.guard(sent + s.late_completion_bound);
                }
                if let WiseError::RateLimited {
                    retry_after: Some(ra),
                } = &err
                {
                    self.inner.pause.extend(self.inner.clock.now(), *ra);
                }
                let Some(mut wait) = next_wait(
                    Repeatable::Yes,
                    &err,
                    attempt,
                    endpoint.max_attempts(),
                    started.elapsed(),
                ) else {
                    return Err(Stop::Wise(err));
                };
                if matches!(err, WiseError::Timeout { .. }) && self.inner.rotation.keeps_refresh_tokens() {
                    // Ambiguous: Wise may still complete the call we gave up on. When Wise
                    // keeps refresh tokens, a completion after our next attempt would kill
                    // the access token that attempt returned, after we handed it out; so the
                    // next attempt waits until the abandoned one must have ended at Wise
                    // (`late_completion_bound` after it was sent) and is then the last
                    // refresh Wise processes: its access token stays valid. When Wise
                    // rotates them (or we have not seen which yet), waiting would be wrong:
                    // a late completion kills the refresh token we hold and issues one we
                    // never see, so the retry goes out at once and, if it lands first, the
                    // late completion fails harmlessly on the rotated token. (A dropped
                    // connection is not waited for: the server ended that exchange.) The
                    // heartbeat holds the lease meanwhile.
                    wait = wait.max(s.late_completion_bound.saturating_sub(sent.elapsed()));
                    abandoned = None;
                    if started.elapsed() + wait >= RETRY_BUDGET {
                        return Err(Stop::Wise(err));
                    }
                }
                tracing::info!(
                    attempt,
                    error = %err,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "token refresh failed, retrying"
                );
                tokio::time::sleep(wait).await;
            }
        }
        .instrument(span)
        .await
    }

    /// Writes a refreshed set (CAS on the version read under the lease) before anyone sees
    /// it; on a lasting store failure keeps it as the link's unpersisted set.
    async fn persist_refreshed(
        &self,
        key: &LinkKey,
        current: &Versioned<LinkRecord>,
        fresh: TokenSet,
        holder: LeaseHolder,
    ) -> (Result<ValidToken, TokenError>, LeaseFate) {
        let now = self.inner.clock.now();
        let profile_id = current.value.profile_id;
        let sealed = match self.inner.sealer.seal(key, profile_id, &fresh) {
            Ok(sealed) => sealed,
            Err(e) => {
                tracing::error!(error = %e, "cannot seal refreshed tokens");
                return (Err(store_error(&e)), LeaseFate::Release);
            }
        };
        let record = LinkRecord {
            status: LinkStatus::Active,
            access_expires_at: fresh.expires_at,
            updated_at: now,
            sealed_tokens: sealed,
            ..current.value.clone()
        };
        let mut delay = Duration::from_millis(20);
        for attempt in 1..=STORE_WRITE_ATTEMPTS {
            match save_contained(self.inner.store.as_ref(), key, &record, current.version).await {
                Ok(version) => {
                    let valid = self.finish_refresh(key, &fresh, profile_id, version).await;
                    return (Ok(valid), LeaseFate::Release);
                }
                Err(StoreError::Conflict) => {
                    // Someone wrote after our fencing read (our lease was lost, or a relink
                    // won): the stored record is the newer truth, unless it is a re-link
                    // mark.
                    return (
                        self.persist_over_relink_mark(key, &record, &fresh).await,
                        LeaseFate::Release,
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "saving refreshed tokens failed");
                    if attempt < STORE_WRITE_ATTEMPTS {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
        // Keep the set: the previous access token is dead at Wise, and with rotation the
        // previous refresh token too. No second refresh while it exists.
        tracing::error!("token store keeps failing; holding the refreshed tokens in memory");
        let slot = Arc::new(Unpersisted {
            record,
            expected: current.version,
            tokens: fresh,
            holder,
            _held: crate::metrics::Live::unpersisted(),
        });
        lock(&self.inner.unpersisted).insert(key.clone(), slot.clone());
        self.inner.cache.invalidate(key);
        let manager = self.clone();
        let key = key.clone();
        tokio::spawn(async move { manager.write_unpersisted(&key, slot).await });
        (
            Err(TokenError::Unavailable {
                retry_after: Some(Duration::from_secs(1)),
            }),
            LeaseFate::Keep,
        )
    }

    /// Our refresh lost the race to write: adopts what is stored, except a re-link mark,
    /// which our set replaces. Such a mark was written by a sibling that refreshed the same
    /// version after losing the lease with us, and whose `invalid_grant` answered a refresh
    /// token that our call had just rotated away: Wise issuing our set proves the grant was
    /// alive after that. (Were the grant revoked after our call, the next refresh learns it
    /// again, at the cost of one call.) Without this, a lost lease under rotation would send
    /// the user through the link flow while we hold valid tokens.
    async fn persist_over_relink_mark(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        fresh: &TokenSet,
    ) -> Result<ValidToken, TokenError> {
        let latest = match self.inner.store.load(key).await {
            Ok(Some(latest)) if latest.value.status == LinkStatus::NeedsRelink => latest,
            Ok(Some(latest)) => return self.adopt(key, &latest, self.inner.clock.now()).await,
            Ok(None) => {
                self.inner.cache.invalidate(key);
                return Err(TokenError::NotLinked);
            }
            Err(e) => return Err(store_error(&e)),
        };
        match save_contained(self.inner.store.as_ref(), key, record, latest.version).await {
            Ok(version) => {
                tracing::info!("refreshed tokens replace a sibling's re-link mark");
                Ok(self
                    .finish_refresh(key, fresh, record.profile_id, version)
                    .await)
            }
            Err(StoreError::Conflict) => self.adopt_stored(key).await,
            Err(e) => Err(store_error(&e)),
        }
    }

    /// After a successful write: cache, event, and the token for the waiters.
    async fn finish_refresh(
        &self,
        key: &LinkKey,
        fresh: &TokenSet,
        profile_id: crate::ids::ProfileId,
        version: Version,
    ) -> ValidToken {
        let now = self.inner.clock.now();
        let entry = CacheEntry::active(
            key.user(),
            fresh,
            profile_id,
            version,
            now,
            self.inner.thresholds,
        );
        let entry = self.inner.cache.put(key, entry);
        self.publish_change(key, Some(version));
        self.inner.events.emit(&WiseEvent::Refreshed {
            user: key.user().clone(),
            profile_id,
        });
        match &entry.state {
            super::cache::CacheState::Active { valid, .. } => valid.clone(),
            _ => unreachable!("built as active"),
        }
    }

    /// Background writer of an unpersisted set: retries with backoff until the store takes
    /// it, someone else wrote the link, or the slot was dropped (unlink / new grant).
    async fn write_unpersisted(&self, key: &LinkKey, slot: Arc<Unpersisted>) {
        let ttl = self.inner.settings.lease_ttl;
        let mut delay = Duration::from_millis(100);
        loop {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            let still_ours = lock(&self.inner.unpersisted)
                .get(key)
                .is_some_and(|s| Arc::ptr_eq(s, &slot));
            if !still_ours {
                self.release_lease(key, slot.holder).await;
                return;
            }
            // Keep the lease while we hold tokens nobody else knows about.
            let _ = self.inner.store.acquire_lease(key, slot.holder, ttl).await;
            let outcome =
                save_contained(self.inner.store.as_ref(), key, &slot.record, slot.expected).await;
            match outcome {
                Ok(version) => {
                    self.drop_slot(key, &slot);
                    self.finish_refresh(key, &slot.tokens, slot.record.profile_id, version)
                        .await;
                    self.release_lease(key, slot.holder).await;
                    return;
                }
                Err(StoreError::Conflict) => {
                    tracing::warn!("link changed while the refreshed tokens were unpersisted");
                    self.drop_slot(key, &slot);
                    self.inner.cache.invalidate(key);
                    self.release_lease(key, slot.holder).await;
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "still cannot save refreshed tokens"),
            }
        }
    }

    fn drop_slot(&self, key: &LinkKey, slot: &Arc<Unpersisted>) {
        let mut map = lock(&self.inner.unpersisted);
        if map.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            map.remove(key);
        }
    }

    /// Wise said `invalid_grant` (in a 4xx). Unless a sibling changed the record meanwhile, mark
    /// it as needing a re-link, keeping its tokens (I1).
    async fn mark_needs_relink(
        &self,
        key: &LinkKey,
        current: &Versioned<LinkRecord>,
    ) -> Result<ValidToken, TokenError> {
        let now = self.inner.clock.now();
        match self.inner.store.load(key).await {
            Ok(Some(latest)) if latest.version != current.version => {
                return self.adopt(key, &latest, now).await;
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                self.inner.cache.invalidate(key);
                return Err(TokenError::NotLinked);
            }
            // Cannot tell whether a sibling refreshed: leave the record, retry later.
            Err(e) => return Err(store_error(&e)),
        }
        let record = LinkRecord {
            status: LinkStatus::NeedsRelink,
            updated_at: now,
            ..current.value.clone()
        };
        match self
            .inner
            .store
            .save(key, &record, Some(current.version))
            .await
        {
            Ok(version) => {
                self.relink_marked(key, &record, version, now);
                Err(TokenError::RelinkRequired)
            }
            Err(StoreError::Conflict) => self.adopt_stored(key).await,
            Err(e) => {
                // Remember it here so this instance stops calling Wise; the store learns it
                // on the next attempt.
                tracing::warn!(error = %e, "cannot mark the link as needing a re-link");
                let entry = CacheEntry::needs_relink(
                    record.profile_id,
                    record.access_expires_at,
                    current.version,
                    now,
                    self.inner.thresholds,
                );
                self.inner.cache.put(key, entry);
                Err(TokenError::RelinkRequired)
            }
        }
    }

    /// Re-reads the record and uses it as it is.
    async fn adopt_stored(&self, key: &LinkKey) -> Result<ValidToken, TokenError> {
        let now = self.inner.clock.now();
        match self.inner.store.load(key).await {
            Ok(Some(record)) => self.adopt(key, &record, now).await,
            Ok(None) => {
                self.inner.cache.invalidate(key);
                Err(TokenError::NotLinked)
            }
            Err(e) => Err(store_error(&e)),
        }
    }

    async fn adopt(
        &self,
        key: &LinkKey,
        record: &Versioned<LinkRecord>,
        now: SystemTime,
    ) -> Result<ValidToken, TokenError> {
        if record.value.status == LinkStatus::NeedsRelink {
            self.cache_record(key, record, now).await?;
            return Err(TokenError::RelinkRequired);
        }
        let tokens = self.open(key, record)?;
        let valid = self.cache_tokens(key, record, &tokens, now).await;
        if tokens.is_usable(now, self.inner.thresholds.skew_for(&tokens)) {
            Ok(valid)
        } else {
            Err(TokenError::unavailable())
        }
    }
}
