//! The token manager: the hot path from "which user" to "a valid access token".
//!
//! * A fresh token in the in-memory cache is handed out with no I/O (a cache lookup and a
//!   clock read).
//! * Inside the refresh window the current token is served and one background refresh
//!   starts.
//! * An expired token joins (or leads) the single refresh of that link: one spawned task
//!   per link in this process, and one lease holder across instances. The new tokens are
//!   written (compare-and-swap) before anyone sees them.
//! * A 4xx `invalid_grant` marks the link as needing a re-link (tokens kept); client
//!   errors open a breaker and touch no record; transient errors leave the record as is.
//! * Every call to Wise's refresh is fenced by the link's lease (see `lease`): a short
//!   lease, renewed while its holder works, extended and checked before each attempt.

mod app_token;
mod cache;
mod changes;
mod deactivation;
mod error;
mod lease;
mod refresh;
mod single_flight;
#[cfg(test)]
mod tests;
mod types;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

pub use error::TokenError;
pub use types::{LinkView, ValidToken};

use self::app_token::AppTokenCache;
use self::cache::{CacheEntry, CacheState, LinkCache, Thresholds};
use self::changes::ChangeFeed;
pub(crate) use self::changes::NoRuntime;
use self::lease::HeldLease;
pub(crate) use self::lease::LEASE_MARGIN;
use self::refresh::{Breaker, LeaseWait, Pacing, RefreshPause, Rotation, Unpersisted};
use self::single_flight::{Flights, Reason};
use crate::clock::TimeSource;
use crate::config::WiseConfig;
use crate::endpoint::TokenEndpoint;
use crate::events::{Events, WiseEvent};
use crate::ids::{LinkKey, ProfileId, UserId};
use crate::seal::Sealer;
use crate::secret::AccessToken;
use crate::store::{LeaseHolder, LinkRecord, LinkStatus, StoreError, TokenStore, Versioned};
use crate::token::TokenSet;

/// Tunables of the manager. Built from the [`WiseConfig`] with fixed defaults for the rest.
#[derive(Debug, Clone)]
pub(crate) struct ManagerSettings {
    /// Refresh proactively this long before expiry (config, default 6 h); scaled down to
    /// half the lifetime of a short-lived token.
    pub(crate) refresh_window: Duration,
    /// Never hand out a token with less than this left (config, default 60 s); scaled down
    /// to a tenth of the lifetime of a short-lived token.
    pub(crate) skew: Duration,
    /// How long a refresh lease lasts in the store between heartbeats (10 s).
    pub(crate) lease_ttl: Duration,
    /// Timeout of one refresh call to Wise (3 s).
    pub(crate) refresh_timeout: Duration,
    /// After a refresh call timed out, how long after its sending Wise may still complete
    /// it; the next attempt waits until then, and a call is sent only while the lease
    /// outlasts it (twice the refresh timeout; below `lease_ttl - LEASE_MARGIN`).
    pub(crate) late_completion_bound: Duration,
    /// A cached entry older than this is re-read from the store (builder, default 30 s).
    pub(crate) revalidate_after: Duration,
    /// How long the breaker stays open after `invalid_client` (60 s).
    pub(crate) breaker_open_for: Duration,
    /// Maximum number of links held in the in-memory cache ([`DEFAULT_CACHE_CAPACITY`]).
    pub(crate) cache_capacity: u64,
    /// Refresh calls to Wise in flight at once from this process (32).
    pub(crate) max_concurrent_refreshes: usize,
}

/// The default capacity of the link cache, in links.
pub(crate) const DEFAULT_CACHE_CAPACITY: u64 = 100_000;
/// The default lease TTL.
pub(crate) const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// The default timeout of one refresh call.
pub(crate) const DEFAULT_REFRESH_TIMEOUT: Duration = Duration::from_secs(3);

impl Default for ManagerSettings {
    fn default() -> Self {
        Self {
            refresh_window: Duration::from_secs(6 * 3600),
            skew: Duration::from_secs(60),
            lease_ttl: DEFAULT_LEASE_TTL,
            refresh_timeout: DEFAULT_REFRESH_TIMEOUT,
            late_completion_bound: DEFAULT_REFRESH_TIMEOUT * 2,
            revalidate_after: Duration::from_secs(30),
            breaker_open_for: Duration::from_secs(60),
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            max_concurrent_refreshes: 32,
        }
    }
}

impl ManagerSettings {
    /// The defaults with `refresh_window` and `skew` from the configuration.
    pub(crate) fn from_config(config: &WiseConfig) -> Self {
        Self {
            refresh_window: config.refresh_window(),
            skew: config.skew(),
            ..Self::default()
        }
    }

    fn thresholds(&self) -> Thresholds {
        Thresholds {
            skew: self.skew,
            refresh_window: self.refresh_window,
            revalidate_after: self.revalidate_after,
        }
    }

    /// How long a request waits for a refresh (its own, or another holder's lease) before
    /// it is answered "try again shortly"; the refresh itself goes on.
    pub(crate) fn max_wait(&self) -> Duration {
        self.lease_ttl + self.refresh_timeout
    }
}

/// The cache could not answer a token request alone: when it was asked, and what it held.
#[derive(Debug)]
pub(crate) struct CacheMiss {
    now: SystemTime,
    cached: Option<Arc<CacheEntry>>,
}

/// What the link cache said, read under its lock.
enum Cached {
    /// A usable token; `true` when its refresh window has begun.
    Fresh(ValidToken, bool),
    /// The link must be made again.
    Relink,
    /// An entry that must be revalidated or refreshed first.
    Stale(Arc<CacheEntry>),
}

/// Hands out valid access tokens for links; see the module docs. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct TokenManager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn TokenStore>,
    endpoint: Arc<TokenEndpoint>,
    sealer: Arc<Sealer>,
    clock: TimeSource,
    events: Events,
    settings: ManagerSettings,
    thresholds: Thresholds,
    cache: LinkCache,
    flights: Flights,
    /// Refreshed sets whose store write failed: no second refresh while one exists.
    unpersisted: Mutex<HashMap<LinkKey, Arc<Unpersisted>>>,
    /// When each link may call Wise's refresh again (success gap, failure backoff).
    pacing: Mutex<HashMap<LinkKey, Pacing>>,
    /// Every refresh of this process waits while Wise's `Retry-After` lasts.
    pause: RefreshPause,
    /// Whether Wise rotates refresh tokens, as observed.
    rotation: Rotation,
    breaker: Breaker,
    /// Bounds concurrent refresh calls (see [`ManagerSettings::max_concurrent_refreshes`]).
    refresh_permits: tokio::sync::Semaphore,
    app: AppTokenCache,
    /// Change notifications between instances (none unless configured).
    feed: ChangeFeed,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn store_error(e: &StoreError) -> TokenError {
    match e {
        StoreError::Corrupt(_) => TokenError::Corrupt,
        _ => TokenError::Unavailable {
            retry_after: Some(Duration::from_secs(1)),
        },
    }
}

impl TokenManager {
    /// Builds the manager. `endpoint` and `sealer` are shared with the link flow.
    pub(crate) fn new(
        store: Arc<dyn TokenStore>,
        endpoint: Arc<TokenEndpoint>,
        sealer: Arc<Sealer>,
        clock: TimeSource,
        events: Events,
        settings: ManagerSettings,
    ) -> Self {
        let thresholds = settings.thresholds();
        let permits = settings.max_concurrent_refreshes.max(1);
        Self {
            inner: Arc::new(Inner {
                store,
                endpoint,
                sealer,
                clock,
                events,
                cache: LinkCache::new(settings.cache_capacity),
                thresholds,
                settings,
                flights: Flights::default(),
                unpersisted: Mutex::new(HashMap::new()),
                pacing: Mutex::new(HashMap::new()),
                pause: RefreshPause::default(),
                rotation: Rotation::default(),
                breaker: Breaker::default(),
                refresh_permits: tokio::sync::Semaphore::new(permits),
                app: AppTokenCache::default(),
                feed: ChangeFeed::default(),
            }),
        }
    }

    /// A valid access token for `user`'s link, refreshing it when needed.
    ///
    /// Fresh cached token: no I/O (see [`token_cached`](Self::token_cached)). Inside the
    /// refresh window: the current token, plus one background refresh. Expired: waits for
    /// the single refresh of the link.
    pub(crate) async fn token_for(
        &self,
        user: &UserId,
        key: impl Fn() -> LinkKey,
    ) -> Result<ValidToken, TokenError> {
        match self.token_cached(user, &key) {
            Ok(answer) => answer,
            // Boxed: the slow path's state (store reads, the refresh) would otherwise make
            // every caller's future as large as itself, and the fast path pays to move that.
            Err(miss) => Box::pin(self.token_missed(&key(), miss)).await,
        }
    }

    /// What the cache alone answers for `user`, with no I/O and no allocation: a fresh
    /// token (starting the link's background refresh inside the refresh window) or the
    /// re-link verdict. `Err`: the store or a refresh must be asked, by
    /// [`token_missed`](Self::token_missed). The link key is built by `key` only when a
    /// background refresh starts.
    #[inline]
    pub(crate) fn token_cached(
        &self,
        user: &UserId,
        key: impl FnOnce() -> LinkKey,
    ) -> Result<Result<ValidToken, TokenError>, CacheMiss> {
        let now = self.inner.clock.now();
        // Decided under the shard's read lock; the background refresh starts after it.
        let cached = self.inner.cache.read(user, |entry| {
            if now < entry.revalidate_at {
                match &entry.state {
                    CacheState::Active {
                        valid,
                        usable_until,
                        refresh_at,
                    } if now < *usable_until => {
                        return Cached::Fresh(valid.clone(), now >= *refresh_at);
                    }
                    CacheState::NeedsRelink { .. } => return Cached::Relink,
                    CacheState::Active { .. } => {}
                }
            }
            Cached::Stale(entry.clone())
        });
        match cached {
            Some(Cached::Fresh(valid, false)) => {
                crate::metrics::cache_hit();
                Ok(Ok(valid))
            }
            other => self.token_cached_otherwise(other, now, key),
        }
    }

    /// [`token_cached`](Self::token_cached) for every answer but a fresh token outside its
    /// refresh window: out of line, so that the code of the common case stays short.
    #[cold]
    #[inline(never)]
    fn token_cached_otherwise(
        &self,
        cached: Option<Cached>,
        now: SystemTime,
        key: impl FnOnce() -> LinkKey,
    ) -> Result<Result<ValidToken, TokenError>, CacheMiss> {
        match cached {
            Some(Cached::Fresh(valid, refresh)) => {
                crate::metrics::cache_hit();
                if refresh {
                    self.background_refresh(&key(), now);
                }
                Ok(Ok(valid))
            }
            Some(Cached::Relink) => {
                crate::metrics::cache_hit();
                Ok(Err(TokenError::RelinkRequired))
            }
            Some(Cached::Stale(entry)) => {
                crate::metrics::cache_miss();
                Err(CacheMiss {
                    now,
                    cached: Some(entry),
                })
            }
            None => {
                crate::metrics::cache_miss();
                Err(CacheMiss { now, cached: None })
            }
        }
    }

    /// The answer [`token_cached`](Self::token_cached) could not give: reads the store,
    /// joins or leads the link's refresh.
    pub(crate) async fn token_missed(
        &self,
        key: &LinkKey,
        miss: CacheMiss,
    ) -> Result<ValidToken, TokenError> {
        self.token_slow(key, miss.now, miss.cached).await
    }

    /// The cache could not answer: read the store, then decide.
    async fn token_slow(
        &self,
        key: &LinkKey,
        now: SystemTime,
        cached: Option<Arc<CacheEntry>>,
    ) -> Result<ValidToken, TokenError> {
        if self.has_unpersisted(key) {
            return Err(TokenError::Unavailable {
                retry_after: Some(Duration::from_secs(1)),
            });
        }
        // The cached token has expired: join (or lead) the link's single refresh rather
        // than queue one store read per request (a herd of requests on an expired link
        // would otherwise wait for the pool one by one). The refresh re-reads the store
        // under its lease before calling Wise, so a sibling's refresh, a relink or an
        // unlink elsewhere is still seen, and a store that is down still means no call.
        if let Some(entry) = &cached {
            if matches!(&entry.state, CacheState::Active { usable_until, .. } if now >= *usable_until)
            {
                return self.join_refresh(key, Reason::Expired).await;
            }
        }
        let entry = match self.inner.store.load(key).await {
            Ok(None) => {
                self.inner.cache.invalidate(key);
                return Err(TokenError::NotLinked);
            }
            Ok(Some(record)) => self.cache_record(key, &record, now).await?,
            Err(e) => {
                // The store is down (or the row is corrupt): a cached token that is still
                // valid keeps working; anything else must wait (never refresh what we
                // could not persist).
                tracing::warn!(error = %e, "token store read failed");
                match cached {
                    Some(entry) if !matches!(e, StoreError::Corrupt(_)) => {
                        let extended = entry.extended(now, self.inner.thresholds);
                        match &extended.state {
                            CacheState::Active {
                                valid,
                                usable_until,
                                ..
                            } if now < *usable_until => {
                                let valid = valid.clone();
                                self.inner.cache.put(key, extended);
                                return Ok(valid);
                            }
                            // A re-link verdict past its revalidation is not served from
                            // memory: the store (down now) may hold a newer link.
                            CacheState::NeedsRelink { .. } | CacheState::Active { .. } => {
                                return Err(store_error(&e))
                            }
                        }
                    }
                    _ => return Err(store_error(&e)),
                }
            }
        };
        match &entry.state {
            CacheState::Active {
                valid,
                usable_until,
                refresh_at,
            } if now < *usable_until => {
                if now >= *refresh_at {
                    self.background_refresh(key, now);
                }
                Ok(valid.clone())
            }
            CacheState::NeedsRelink { .. } => Err(TokenError::RelinkRequired),
            CacheState::Active { .. } => self.join_refresh(key, Reason::Expired).await,
        }
    }

    /// Wise answered 401 for `rejected`: re-read the store (a sibling may have refreshed,
    /// which kills the previous access token) and use a newer token, or refresh once.
    pub(crate) async fn token_after_unauthorized(
        &self,
        key: &LinkKey,
        rejected: &AccessToken,
    ) -> Result<ValidToken, TokenError> {
        if self.has_unpersisted(key) {
            return Err(TokenError::Unavailable {
                retry_after: Some(Duration::from_secs(1)),
            });
        }
        let now = self.inner.clock.now();
        let record = match self.inner.store.load(key).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                self.inner.cache.invalidate(key);
                return Err(TokenError::NotLinked);
            }
            Err(e) => return Err(store_error(&e)),
        };
        let entry = self.cache_record(key, &record, now).await?;
        match &entry.state {
            CacheState::NeedsRelink { .. } => return Err(TokenError::RelinkRequired),
            CacheState::Active {
                valid,
                usable_until,
                ..
            } if now < *usable_until && !valid.same_token(rejected) => return Ok(valid.clone()),
            CacheState::Active { .. } => {}
        }
        let rejected = Arc::new(rejected.clone());
        // A flight already running may have been started for another reason and end with
        // the rejected token (its fencing saw it as fresh); then lead one of our own.
        for _ in 0..2 {
            let valid = self
                .join_refresh(key, Reason::Unauthorized(rejected.clone()))
                .await?;
            if !valid.same_token(&rejected) {
                return Ok(valid);
            }
        }
        Err(TokenError::Unavailable {
            retry_after: Some(Duration::from_secs(1)),
        })
    }

    /// What the app may show about the link; `None` when the user has no link.
    pub(crate) async fn status(&self, key: &LinkKey) -> Result<Option<LinkView>, TokenError> {
        match self.inner.store.load(key).await {
            Ok(None) => Ok(None),
            Ok(Some(record)) => Ok(Some(LinkView {
                profile_id: record.value.profile_id,
                expires_at: record.value.access_expires_at,
                relink_required: record.value.status == LinkStatus::NeedsRelink
                    || !self.opens(key, &record),
            })),
            Err(e) => match self.inner.cache.get(key.user()) {
                Some(entry) if !matches!(e, StoreError::Corrupt(_)) => Ok(Some(LinkView {
                    profile_id: entry.profile_id(),
                    expires_at: entry.expires_at(),
                    relink_required: entry.status() == LinkStatus::NeedsRelink,
                })),
                _ => Err(store_error(&e)),
            },
        }
    }

    /// Runs `work` while holding the link's refresh lease (renewed while it runs), so that
    /// a relink (exchange and save) or an unlink is serialized with refreshes on every
    /// instance. Waits for the lease, bounded by [`ManagerSettings::max_wait`].
    pub(crate) async fn with_lease<T>(
        &self,
        key: &LinkKey,
        work: impl Future<Output = T>,
    ) -> Result<T, TokenError> {
        let holder = LeaseHolder::random();
        let LeaseWait::Acquired(granted_at) = self.acquire_lease_waiting(key, holder, None).await?
        else {
            unreachable!("a wait without a reason only ends with the lease");
        };
        // Dropped on every path (also when the caller's future is dropped or `work`
        // panics): the heartbeat stops and the lease runs out within one TTL.
        let lease = HeldLease::start(
            self.inner.store.clone(),
            key.clone(),
            holder,
            self.inner.settings.lease_ttl,
            granted_at,
        );
        let out = work.await;
        lease.release().await;
        Ok(out)
    }

    /// Stores a new grant as the link's active record (the latest grant wins), with the
    /// Wise user it belongs to when known, updates the cache and emits
    /// [`WiseEvent::Linked`]. Call it inside [`TokenManager::with_lease`].
    pub(crate) async fn install_link(
        &self,
        key: &LinkKey,
        profile_id: ProfileId,
        wise_user_id: Option<u64>,
        tokens: TokenSet,
    ) -> Result<(), TokenError> {
        let now = self.inner.clock.now();
        let sealed = self
            .inner
            .sealer
            .seal(key, profile_id, &tokens)
            .map_err(|e| store_error(&e))?;
        let record = LinkRecord::new(
            profile_id,
            LinkStatus::Active,
            tokens.expires_at,
            now,
            now,
            sealed,
        )
        .with_wise_user_id(wise_user_id);
        let mut delay = Duration::from_millis(25);
        let mut last_error = TokenError::unavailable();
        let mut saved = None;
        for _ in 0..6 {
            let expected = match self.inner.store.load(key).await {
                Ok(current) => current.map(|c| c.version),
                Err(StoreError::Corrupt(_)) => return Err(TokenError::Corrupt),
                Err(e) => {
                    last_error = store_error(&e);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            match self.inner.store.save(key, &record, expected).await {
                Ok(version) => {
                    saved = Some(version);
                    break;
                }
                // Someone wrote in between (a refresh whose lease expired): retry on the
                // new version; this grant is newer and wins.
                Err(StoreError::Conflict) => continue,
                Err(e) => {
                    last_error = store_error(&e);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        }
        let Some(version) = saved else {
            return Err(last_error);
        };
        // A new grant supersedes any unpersisted refresh and resets the refresh budget.
        lock(&self.inner.unpersisted).remove(key);
        lock(&self.inner.pacing).remove(key);
        self.inner.cache.put(
            key,
            CacheEntry::active(
                key.user(),
                &tokens,
                profile_id,
                version,
                now,
                self.inner.thresholds,
            ),
        );
        self.publish_change(key, Some(version));
        self.inner.events.emit(&WiseEvent::Linked {
            user: key.user().clone(),
            profile_id,
        });
        Ok(())
    }

    /// Deletes the link (record, cache, any unpersisted refresh) and emits
    /// [`WiseEvent::Unlinked`] if there was one. Holds the link's lease while it does, so
    /// no refresh of this link is in flight on any instance, and leaves a tombstone in the
    /// cache so that a read that raced the delete cannot put the token back.
    pub(crate) async fn unlink(&self, key: &LinkKey) -> Result<bool, TokenError> {
        let store = &self.inner.store;
        let work = async {
            let last = store.load(key).await.ok().flatten().map(|r| r.version);
            let existed = store.delete(key).await.map_err(|e| store_error(&e))?;
            let now = self.inner.clock.now();
            let until = now + self.inner.settings.revalidate_after;
            self.inner.cache.bury(key, last, now, until);
            lock(&self.inner.unpersisted).remove(key);
            lock(&self.inner.pacing).remove(key);
            Ok::<_, TokenError>(existed)
        };
        let existed = self.with_lease(key, work).await??;
        if existed {
            self.publish_change(key, None);
            self.inner.events.emit(&WiseEvent::Unlinked {
                user: key.user().clone(),
            });
        }
        Ok(existed)
    }

    /// Opens a stored record and caches it (unless a newer one is cached).
    async fn cache_record(
        &self,
        key: &LinkKey,
        record: &Versioned<LinkRecord>,
        now: SystemTime,
    ) -> Result<Arc<CacheEntry>, TokenError> {
        let entry = self.entry_for(key, record, now)?;
        Ok(self.inner.cache.offer(key, entry, now))
    }

    fn entry_for(
        &self,
        key: &LinkKey,
        record: &Versioned<LinkRecord>,
        now: SystemTime,
    ) -> Result<CacheEntry, TokenError> {
        let r = &record.value;
        let needs_relink = || {
            CacheEntry::needs_relink(
                r.profile_id,
                r.access_expires_at,
                record.version,
                now,
                self.inner.thresholds,
            )
        };
        if r.status == LinkStatus::NeedsRelink {
            return Ok(needs_relink());
        }
        match self.open(key, record) {
            Ok(tokens) => Ok(CacheEntry::active(
                key.user(),
                &tokens,
                r.profile_id,
                record.version,
                now,
                self.inner.thresholds,
            )),
            // A record the configured keys cannot open is offered a re-link, like a link
            // Wise rejected: cached as such until the next revalidation, kept in the store.
            Err(_) => Ok(needs_relink()),
        }
    }

    /// Opens a stored record's tokens. A record that does not open (sealed under a key
    /// that is not configured, plain while keys are, or tampered) is reported with the key
    /// ids involved (never key material) and answered [`TokenError::RelinkRequired`]: the
    /// user links again, which replaces it. The record itself is left as it is, so
    /// configuring the missing key brings the link back.
    fn open(&self, key: &LinkKey, record: &Versioned<LinkRecord>) -> Result<TokenSet, TokenError> {
        let sealed = &record.value.sealed_tokens;
        self.inner
            .sealer
            .open(key, record.value.profile_id, sealed)
            .map_err(|e| {
                tracing::error!(
                    user = %key.user(),
                    record_key = %Sealer::sealed_with(sealed.as_bytes()),
                    configured_keys = ?self.inner.sealer.key_ids(),
                    error = %e,
                    "a stored link cannot be opened with the configured encryption keys; \
                     the user is asked to link again (the record is kept)"
                );
                TokenError::RelinkRequired
            })
    }

    /// Whether the record's tokens open (see [`TokenManager::open`], which reports those
    /// that do not).
    fn opens(&self, key: &LinkKey, record: &Versioned<LinkRecord>) -> bool {
        self.open(key, record).is_ok()
    }

    /// The sealer of token records (for re-sealing).
    pub(crate) fn sealer(&self) -> &Sealer {
        &self.inner.sealer
    }

    /// The store the links live in.
    /// The token endpoint, whose HTTP client every call to Wise shares.
    pub(crate) fn endpoint(&self) -> &TokenEndpoint {
        &self.inner.endpoint
    }

    /// The source of "now".
    pub(crate) fn clock(&self) -> &TimeSource {
        &self.inner.clock
    }

    pub(crate) fn store(&self) -> &Arc<dyn TokenStore> {
        &self.inner.store
    }

    fn has_unpersisted(&self, key: &LinkKey) -> bool {
        lock(&self.inner.unpersisted).contains_key(key)
    }

    #[cfg(test)]
    pub(crate) fn settings(&self) -> &ManagerSettings {
        &self.inner.settings
    }

    /// How many links the cache holds at most.
    #[cfg(test)]
    pub(crate) fn cache_capacity(&self) -> usize {
        self.inner.cache.capacity()
    }
}
