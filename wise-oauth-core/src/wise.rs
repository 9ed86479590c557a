//! The [`WiseOAuth`] handle: everything an app (or an adapter) calls.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::api::WiseApi;
use crate::client::{ClientError, WiseClient};
use crate::clock::{Clock, TimeSource};
use crate::config::{ConfigError, WiseConfig};
use crate::endpoint::{TokenEndpoint, WiseError};
use crate::events::{EventHandler, Events};
use crate::flow::{
    FlowCookie, FlowError, LinkCompleted, LinkFlow, LinkFlowParts, LinkOptions, LinkStart,
    MobileCallback, MobileLinkStart, OwnedMobileCallback, ProfileCheck, Registration,
    RegistrationError,
};
use crate::ids::{LinkKey, LinkNamespace, UserId};
use crate::manager::NoRuntime;
use crate::manager::{
    CacheMiss, LinkView, ManagerSettings, TokenError, TokenManager, ValidToken,
    DEFAULT_CACHE_CAPACITY, DEFAULT_LEASE_TTL, DEFAULT_REFRESH_TIMEOUT, LEASE_MARGIN,
};
use crate::seal::{EncryptionKeys, Sealer};
use crate::secret::{AccessToken, RegistrationCode};
use crate::store::{
    shared, LinkChanges, LinkPage, MemoryPendingStore, MemoryTokenStore, PendingStore, StoreError,
    TokenStore, MAX_LINK_PAGE,
};
use crate::webhook::{
    self, WebhookDelivery, WebhookError, WebhookKey, WebhookOutcome, Webhooks,
    DEFAULT_WEBHOOK_DEDUP_CAPACITY, MAX_WEBHOOK_DEDUP_CAPACITY,
};

/// The shared state behind a [`WiseOAuth`] handle: each part owns its own state, the
/// handle only delegates.
struct Core {
    config: WiseConfig,
    /// The tokens: cache, refresh protocol, store.
    manager: TokenManager,
    /// The link flows: pending store, sealer of pending records, profile check.
    flow: LinkFlow,
    /// Environment and client of every link key, shared (see [`WiseOAuth::link_key`]).
    namespace: LinkNamespace,
    /// Webhook keys and the delivery ids acted on.
    webhooks: Webhooks,
    /// The Wise API calls the handle makes itself (webhook subscriptions).
    api: WiseApi,
    /// The API base URL of every [`WiseClient`], parsed once.
    api_base: Arc<url::Url>,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WiseOAuth")
            .field("config", &self.config)
            .field("flow", &self.flow)
            .field("manager", &self.manager)
            .finish_non_exhaustive()
    }
}

/// The one handle of the library: link flows, tokens, registration.
///
/// Cheap to clone (an `Arc` inside); build it once at startup with
/// [`WiseOAuth::builder`] and share it (app state, `web::Data`, ...).
#[derive(Clone)]
pub struct WiseOAuth {
    core: Arc<Core>,
}

impl fmt::Debug for WiseOAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

/// Builds a [`WiseOAuth`]. Setters never fail; [`build`](Self::build) reports problems once.
#[must_use]
pub struct WiseOAuthBuilder {
    config: WiseConfig,
    store: Option<Arc<dyn TokenStore>>,
    pending: Option<Arc<dyn PendingStore>>,
    keys: Option<EncryptionKeys>,
    clock: Option<Arc<dyn Clock>>,
    events: Events,
    profile_check: Option<Arc<dyn ProfileCheck>>,
    lease_ttl: Option<Duration>,
    refresh_timeout: Option<Duration>,
    late_completion_bound: Option<Duration>,
    max_concurrent_refreshes: Option<usize>,
    cache_capacity: Option<u64>,
    revalidate_after: Option<Duration>,
    changes: Option<Arc<dyn LinkChanges>>,
    webhook_keys: Option<Vec<WebhookKey>>,
    webhook_dedup_capacity: Option<usize>,
    allow_unencrypted_store: bool,
    open_unencrypted_records: bool,
    max_concurrent_exchanges: Option<usize>,
}

/// The accepted range of [`WiseOAuthBuilder::lease_ttl`].
const MIN_LEASE_TTL: Duration = Duration::from_secs(2);
const MAX_LEASE_TTL: Duration = Duration::from_secs(5 * 60);
/// The largest [`WiseOAuthBuilder::max_concurrent_refreshes`].
const MAX_CONCURRENT_REFRESHES: usize = 10_000;
/// The default of [`WiseOAuthBuilder::max_concurrent_exchanges`].
pub(crate) const DEFAULT_MAX_CONCURRENT_EXCHANGES: usize = 64;
/// The largest [`WiseOAuthBuilder::max_concurrent_exchanges`].
const MAX_CONCURRENT_EXCHANGES: usize = 10_000;
/// The accepted range of [`WiseOAuthBuilder::revalidate_after`].
const MIN_REVALIDATE_AFTER: Duration = Duration::from_secs(1);
const MAX_REVALIDATE_AFTER: Duration = Duration::from_secs(10 * 60);

impl fmt::Debug for WiseOAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WiseOAuthBuilder")
            .field("config", &self.config)
            .field("store", &self.store)
            .field("pending", &self.pending)
            .field("keys", &self.keys)
            .field("clock", &self.clock)
            .field("events", &self.events)
            .field("profile_check", &self.profile_check.is_some())
            .field("lease_ttl", &self.lease_ttl)
            .field("refresh_timeout", &self.refresh_timeout)
            .field("late_completion_bound", &self.late_completion_bound)
            .field("max_concurrent_refreshes", &self.max_concurrent_refreshes)
            .field("cache_capacity", &self.cache_capacity)
            .field("revalidate_after", &self.revalidate_after)
            .field("changes", &self.changes)
            .field("webhook_keys", &self.webhook_keys)
            .field("webhook_dedup_capacity", &self.webhook_dedup_capacity)
            .field("allow_unencrypted_store", &self.allow_unencrypted_store)
            .field("open_unencrypted_records", &self.open_unencrypted_records)
            .field("max_concurrent_exchanges", &self.max_concurrent_exchanges)
            .finish()
    }
}

impl WiseOAuthBuilder {
    /// Where links (tokens) are kept. Default: a [`MemoryTokenStore`] (lost on restart;
    /// fine for tests and demos only).
    ///
    /// A store the app also uses elsewhere can be passed as an `Arc` (`Arc<S>` and
    /// `Arc<dyn TokenStore>` are stores too; an `Arc<dyn TokenStore>` is kept as it is).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use wise_oauth_core::{ClientSecret, MemoryTokenStore, TokenStore, WiseConfig, WiseOAuth};
    /// # let config = WiseConfig::builder("id", ClientSecret::new("s"), "https://app.example.com/cb")
    /// #     .build()
    /// #     .unwrap();
    /// let shared: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
    /// let wise = WiseOAuth::builder(config).store(shared.clone()).build().unwrap();
    /// # let _ = wise;
    /// ```
    pub fn store(mut self, store: impl TokenStore) -> Self {
        self.store = Some(shared(store, |s| Arc::new(s) as Arc<dyn TokenStore>));
        self
    }

    /// Where flows in progress are kept (30 minutes each). Default: a
    /// [`MemoryPendingStore`], which works only when the callback reaches the instance
    /// that started the flow; use a shared store behind a load balancer. Like
    /// [`store`](Self::store), an `Arc` of a pending store is one too.
    pub fn pending_store(mut self, store: impl PendingStore) -> Self {
        self.pending = Some(shared(store, |s| Arc::new(s) as Arc<dyn PendingStore>));
        self
    }

    /// Encrypts tokens and pending flows at rest with these keys. Default: none (stored
    /// plain; recommended only with the in-memory stores). In
    /// [production](crate::Environment::is_production), [`build`](Self::build) refuses a
    /// durable store ([`TokenStore::is_durable`]) without keys, unless
    /// [`allow_unencrypted_store`](Self::allow_unencrypted_store) was called.
    ///
    /// Records sealed under an older key (listed after the primary one) are re-sealed
    /// under the primary key on their next write, or all at once by [`WiseOAuth::reseal`].
    pub fn encryption(mut self, keys: EncryptionKeys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Lets a production handle keep refresh tokens in a durable store without
    /// [`encryption`](Self::encryption) keys: the store then holds them in clear, readable
    /// by anyone who can read the database or its backups. Default: refused (a
    /// configuration error naming `encryption`).
    ///
    /// ```
    /// # use wise_oauth_core::{ClientSecret, Environment, WiseConfig, WiseOAuth};
    /// # #[derive(Debug)] struct MyDatabaseStore(wise_oauth_core::MemoryTokenStore);
    /// # #[wise_oauth_core::async_trait]
    /// # impl wise_oauth_core::TokenStore for MyDatabaseStore {
    /// #     async fn load(&self, k: &wise_oauth_core::LinkKey) -> Result<Option<wise_oauth_core::Versioned<wise_oauth_core::LinkRecord>>, wise_oauth_core::StoreError> { self.0.load(k).await }
    /// #     async fn save(&self, k: &wise_oauth_core::LinkKey, r: &wise_oauth_core::LinkRecord, e: Option<wise_oauth_core::Version>) -> Result<wise_oauth_core::Version, wise_oauth_core::StoreError> { self.0.save(k, r, e).await }
    /// #     async fn delete(&self, k: &wise_oauth_core::LinkKey) -> Result<bool, wise_oauth_core::StoreError> { self.0.delete(k).await }
    /// #     async fn acquire_lease(&self, k: &wise_oauth_core::LinkKey, h: wise_oauth_core::LeaseHolder, t: std::time::Duration) -> Result<bool, wise_oauth_core::StoreError> { self.0.acquire_lease(k, h, t).await }
    /// #     async fn release_lease(&self, k: &wise_oauth_core::LinkKey, h: wise_oauth_core::LeaseHolder) -> Result<(), wise_oauth_core::StoreError> { self.0.release_lease(k, h).await }
    /// # }
    /// let config = WiseConfig::builder("id", ClientSecret::new("s"), "https://app.example.com/cb")
    ///     .environment(Environment::Production)
    ///     .build()
    ///     .unwrap();
    /// let store = || MyDatabaseStore(Default::default());
    /// // A durable store in production without keys is refused ...
    /// assert!(WiseOAuth::builder(config.clone()).store(store()).build().is_err());
    /// // ... unless the app says so in so many words.
    /// let wise = WiseOAuth::builder(config)
    ///     .store(store())
    ///     .allow_unencrypted_store()
    ///     .build()
    ///     .unwrap();
    /// # let _ = wise;
    /// ```
    pub fn allow_unencrypted_store(mut self) -> Self {
        self.allow_unencrypted_store = true;
        self
    }

    /// For the move to [`encryption`](Self::encryption) of a store that already holds
    /// links in clear: those records keep opening (and are encrypted on their next write,
    /// or all at once by [`WiseOAuth::reseal`]) instead of asking their users to link
    /// again. Turn it off once `reseal` reports no link left under `"(plain)"`: while it
    /// is on, a record written in clear into the store is accepted for the user of its
    /// row. Default: off (with keys, a plain record does not open). No effect without keys.
    pub fn open_unencrypted_records(mut self) -> Self {
        self.open_unencrypted_records = true;
        self
    }

    /// The source of "now". Default: [`SystemClock`](crate::SystemClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Adds an event handler (called after each store write). Default: none.
    pub fn on_event(mut self, handler: impl EventHandler) -> Self {
        self.events.push(Arc::new(handler));
        self
    }

    /// Lets the app veto a newly linked profile (for example after comparing the date of
    /// birth); see [`ProfileCheck`]. Default: none (every verified profile is accepted).
    pub fn profile_check(mut self, check: impl ProfileCheck) -> Self {
        self.profile_check = Some(Arc::new(check));
        self
    }

    /// How long a refresh lease lasts in the store. The instance refreshing a link renews
    /// it every third of this while it works; if that instance dies, the others wait at
    /// most this long before one of them takes over. Must exceed
    /// [`late_completion_bound`](Self::late_completion_bound) by more than one second: a
    /// call to Wise is only sent while the lease is ours for as long as Wise may still
    /// complete it. Default: 10 seconds; [`build`](Self::build) accepts 2 seconds to 5
    /// minutes.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = Some(ttl);
        self
    }

    /// The timeout of one refresh call to Wise (a refresh is retried, within 25 seconds,
    /// when that is safe). Default: the configuration's request timeout, at most 3 seconds,
    /// and less with a short [`lease_ttl`](Self::lease_ttl).
    pub fn refresh_timeout(mut self, timeout: Duration) -> Self {
        self.refresh_timeout = Some(timeout);
        self
    }

    /// How long after a refresh call was sent Wise may still complete it, when we gave up
    /// on it (timeout, or our process died). A retry waits until then, and no other
    /// instance may take the lease before then: a completion after a newer refresh would
    /// kill the access token that refresh handed out. Default: twice the refresh timeout;
    /// at least the refresh timeout.
    pub fn late_completion_bound(mut self, bound: Duration) -> Self {
        self.late_completion_bound = Some(bound);
        self
    }

    /// How many refresh calls to Wise this instance makes at once; further refreshes queue
    /// (a refresh takes its slot before the link's lease, so no lease runs out in the
    /// queue). With several instances, Wise sees up to this many per instance: Wise
    /// documents a limit of 100 requests per second per client, and a 429 pauses every
    /// refresh of the instance for its `Retry-After`. Default: 32; [`build`](Self::build)
    /// accepts 1 to 10 000.
    ///
    /// ```
    /// # use wise_oauth_core::{ClientSecret, WiseConfig, WiseOAuth};
    /// # let config = WiseConfig::builder("id", ClientSecret::new("s"), "https://app.example.com/cb")
    /// #     .build()
    /// #     .unwrap();
    /// let wise = WiseOAuth::builder(config).max_concurrent_refreshes(8).build().unwrap();
    /// ```
    pub fn max_concurrent_refreshes(mut self, n: usize) -> Self {
        self.max_concurrent_refreshes = Some(n);
        self
    }

    /// How many link callbacks this instance completes at once (each exchanges a code, looks
    /// up the profile and stores the link). A callback beyond the cap is answered
    /// [`FlowError::Busy`] (503 with `Retry-After`) *before* its state is consumed, so the
    /// same callback URL still works when repeated (Wise's code lives 30 minutes): no code is
    /// lost. Bounds the work a flood of callbacks can cause. Default: 64;
    /// [`build`](Self::build) accepts 1 to 10 000.
    ///
    /// ```
    /// # use wise_oauth_core::{ClientSecret, WiseConfig, WiseOAuth};
    /// # let config = WiseConfig::builder("id", ClientSecret::new("s"), "https://app.example.com/cb")
    /// #     .build()
    /// #     .unwrap();
    /// let wise = WiseOAuth::builder(config).max_concurrent_exchanges(16).build().unwrap();
    /// ```
    pub fn max_concurrent_exchanges(mut self, n: usize) -> Self {
        self.max_concurrent_exchanges = Some(n);
        self
    }

    /// How many links the manager's in-memory cache holds at most. A link outside the cache
    /// costs one store read on its next use; when the cache is full, the links used again
    /// and again stay and the ones used once go first (S3-FIFO eviction). Default: 100,000;
    /// [`build`](Self::build) rejects 0.
    pub fn cache_capacity(mut self, links: u64) -> Self {
        self.cache_capacity = Some(links);
        self
    }

    /// How long a link read from the store is served from the in-memory cache before it is
    /// read again. Within this period this instance does not see what another instance
    /// wrote (a refresh, an unlink, a re-link verdict); a token Wise rejected meanwhile is
    /// replaced by [`WiseOAuth::token_after_unauthorized`]. Shorter costs more store reads.
    /// Default: 30 seconds; [`build`](Self::build) accepts 1 second to 10 minutes.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use wise_oauth_core::{ClientSecret, WiseConfig, WiseOAuth};
    /// # let config = WiseConfig::builder("id", ClientSecret::new("s"), "https://app.example.com/cb")
    /// #     .build()
    /// #     .unwrap();
    /// let wise = WiseOAuth::builder(config)
    ///     .revalidate_after(Duration::from_secs(5))
    ///     .build()
    ///     .unwrap();
    /// # let _ = wise;
    /// ```
    pub fn revalidate_after(mut self, period: Duration) -> Self {
        self.revalidate_after = Some(period);
        self
    }

    /// Where this instance announces its writes of links and learns of the other
    /// instances' (see [`LinkChanges`]): after another instance refreshes or unlinks a
    /// link, the cached copy here is dropped and the requests waiting on it are woken at
    /// once. Default: none; each instance then re-reads a cached link from the store 30
    /// seconds after reading it, and serves the previous (already dead) access token
    /// until then. Best effort: a lost channel falls back to that. With a channel,
    /// [`build`](Self::build) must run inside a Tokio runtime (it starts the listener,
    /// which ends when the last clone of the handle is dropped).
    ///
    /// ```
    /// # use wise_oauth_core::{ClientSecret, MemoryLinkChanges, WiseConfig, WiseOAuth};
    /// # let config = WiseConfig::builder("id", ClientSecret::new("s"), "https://app.example.com/cb")
    /// #     .build()
    /// #     .unwrap();
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let wise = WiseOAuth::builder(config).changes(MemoryLinkChanges::new()).build().unwrap();
    /// # let _ = wise;
    /// # });
    /// ```
    pub fn changes(mut self, changes: impl LinkChanges) -> Self {
        self.changes = Some(Arc::new(changes));
        self
    }

    /// The keys webhook signatures are checked against (see
    /// [`WiseOAuth::handle_webhook`]); replaces the default. Default: Wise's key of the
    /// configured environment ([`WebhookKey::production`] or [`WebhookKey::sandbox`]); none
    /// for a custom environment, whose deliveries are then all rejected. Use it for the
    /// emulator's key, or to accept a new key Wise announces next to the current one.
    ///
    /// ```
    /// # use wise_oauth_core::{ClientSecret, WebhookKey, WiseConfig, WiseOAuth};
    /// # let config = WiseConfig::builder("id", ClientSecret::new("s"), "https://app.example.com/cb")
    /// #     .build()
    /// #     .unwrap();
    /// let wise = WiseOAuth::builder(config)
    ///     .webhook_keys([WebhookKey::sandbox()])
    ///     .build()
    ///     .unwrap();
    /// # let _ = wise;
    /// ```
    pub fn webhook_keys(mut self, keys: impl IntoIterator<Item = WebhookKey>) -> Self {
        self.webhook_keys = Some(keys.into_iter().collect());
        self
    }

    /// How many webhook delivery ids (`X-Delivery-Id`) this instance remembers, to answer
    /// Wise's retries of a delivery it already acted on without touching the store. The
    /// memory is per instance; handling is idempotent, so a delivery that reaches a second
    /// instance changes nothing there. Default: [`DEFAULT_WEBHOOK_DEDUP_CAPACITY`] (10,000);
    /// [`build`](Self::build) accepts 0 (off) to 1,000,000.
    pub fn webhook_dedup_capacity(mut self, ids: usize) -> Self {
        self.webhook_dedup_capacity = Some(ids);
        self
    }

    /// Builds the handle: creates the HTTP client and checks the settings.
    pub fn build(self) -> Result<WiseOAuth, ConfigError> {
        let lease_ttl = self.lease_ttl.unwrap_or(DEFAULT_LEASE_TTL);
        if !(MIN_LEASE_TTL..=MAX_LEASE_TTL).contains(&lease_ttl) {
            return Err(ConfigError::Invalid {
                setting: "lease_ttl",
                reason: "must be between 2 seconds and 5 minutes",
            });
        }
        let refresh_timeout = self.refresh_timeout.unwrap_or(
            DEFAULT_REFRESH_TIMEOUT
                .min(self.config.request_timeout())
                .min(lease_ttl.saturating_sub(LEASE_MARGIN) / 3),
        );
        if refresh_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                setting: "refresh_timeout",
                reason: "must be above zero",
            });
        }
        let late_completion_bound = self
            .late_completion_bound
            .unwrap_or(refresh_timeout * 2)
            .max(refresh_timeout);
        if lease_ttl <= late_completion_bound + LEASE_MARGIN {
            return Err(ConfigError::Invalid {
                setting: "lease_ttl",
                reason: "must exceed the late-completion bound (twice the refresh timeout by default) by more than one second",
            });
        }
        let defaults = ManagerSettings::from_config(&self.config);
        let max_concurrent_refreshes = self
            .max_concurrent_refreshes
            .unwrap_or(defaults.max_concurrent_refreshes);
        if !(1..=MAX_CONCURRENT_REFRESHES).contains(&max_concurrent_refreshes) {
            return Err(ConfigError::Invalid {
                setting: "max_concurrent_refreshes",
                reason: "must be between 1 and 10 000",
            });
        }
        let max_concurrent_exchanges = self
            .max_concurrent_exchanges
            .unwrap_or(DEFAULT_MAX_CONCURRENT_EXCHANGES);
        if !(1..=MAX_CONCURRENT_EXCHANGES).contains(&max_concurrent_exchanges) {
            return Err(ConfigError::Invalid {
                setting: "max_concurrent_exchanges",
                reason: "must be between 1 and 10 000",
            });
        }
        let cache_capacity = self.cache_capacity.unwrap_or(DEFAULT_CACHE_CAPACITY);
        if cache_capacity == 0 {
            return Err(ConfigError::Invalid {
                setting: "cache_capacity",
                reason: "must be above zero",
            });
        }
        let revalidate_after = self.revalidate_after.unwrap_or(defaults.revalidate_after);
        if !(MIN_REVALIDATE_AFTER..=MAX_REVALIDATE_AFTER).contains(&revalidate_after) {
            return Err(ConfigError::Invalid {
                setting: "revalidate_after",
                reason: "must be between 1 second and 10 minutes",
            });
        }
        let webhook_dedup_capacity = self
            .webhook_dedup_capacity
            .unwrap_or(DEFAULT_WEBHOOK_DEDUP_CAPACITY);
        if webhook_dedup_capacity > MAX_WEBHOOK_DEDUP_CAPACITY {
            return Err(ConfigError::Invalid {
                setting: "webhook_dedup_capacity",
                reason: "must be at most 1 000 000",
            });
        }
        let webhooks = Webhooks::new(
            self.webhook_keys
                .unwrap_or_else(|| webhook::default_keys(self.config.environment())),
            webhook_dedup_capacity,
        );
        let durable = self.store.as_ref().is_some_and(|store| store.is_durable());
        if durable
            && self.keys.is_none()
            && self.config.environment().is_production()
            && !self.allow_unencrypted_store
        {
            return Err(ConfigError::Invalid {
                setting: "encryption",
                reason: "a durable token store in production needs encryption keys \
                         (WiseOAuthBuilder::encryption, e.g. from WISE_TOKEN_KEYS); to store \
                         refresh tokens in clear anyway, call allow_unencrypted_store()",
            });
        }
        let clock = self.clock.map_or(TimeSource::System, TimeSource::App);
        let sealer = Arc::new(
            Sealer::try_new(self.keys)
                .map_err(|_| ConfigError::Invalid {
                    setting: "encryption",
                    reason: "the key list is empty",
                })?
                .opening_plain(self.open_unencrypted_records),
        );
        let endpoint = Arc::new(TokenEndpoint::new(&self.config, clock.clone())?);
        let api = WiseApi::new(&self.config, &endpoint);
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryTokenStore::default()));
        let pending = self
            .pending
            .unwrap_or_else(|| Arc::new(MemoryPendingStore::default()));
        let manager = TokenManager::new(
            store,
            endpoint.clone(),
            sealer.clone(),
            clock.clone(),
            self.events,
            ManagerSettings {
                lease_ttl,
                refresh_timeout,
                late_completion_bound,
                max_concurrent_refreshes,
                cache_capacity,
                revalidate_after,
                ..defaults
            },
        );
        let namespace =
            LinkNamespace::new(self.config.environment().name(), self.config.client_id());
        if let Some(changes) = self.changes {
            manager
                .follow_changes(changes, namespace.clone())
                .map_err(|NoRuntime| ConfigError::Invalid {
                    setting: "changes",
                    reason: "the change listener needs a Tokio runtime: build inside one",
                })?;
        }
        let flow = LinkFlow::new(LinkFlowParts {
            config: self.config.clone(),
            endpoint,
            api: api.clone(),
            manager: manager.clone(),
            pending,
            sealer,
            clock,
            profile_check: self.profile_check,
            namespace: namespace.clone(),
            max_concurrent_exchanges,
        });
        Ok(WiseOAuth {
            core: Arc::new(Core {
                api_base: Arc::new(WiseClient::base_url(&self.config)),
                config: self.config,
                manager,
                flow,
                namespace,
                webhooks,
                api,
            }),
        })
    }
}

impl WiseOAuth {
    /// Starts building a handle for this configuration.
    ///
    /// ```
    /// use wise_oauth_core::{ClientSecret, WiseConfig, WiseOAuth};
    /// let config = WiseConfig::builder(
    ///     "my-client",
    ///     ClientSecret::new("s3cr3t"),
    ///     "https://app.example.com/wise/callback",
    /// )
    /// .build()
    /// .unwrap();
    /// let wise = WiseOAuth::builder(config).build().unwrap();
    /// assert_eq!(wise.config().client_id(), "my-client");
    /// ```
    pub fn builder(config: WiseConfig) -> WiseOAuthBuilder {
        WiseOAuthBuilder {
            config,
            store: None,
            pending: None,
            keys: None,
            clock: None,
            events: Events::new(),
            profile_check: None,
            lease_ttl: None,
            refresh_timeout: None,
            late_completion_bound: None,
            max_concurrent_refreshes: None,
            cache_capacity: None,
            revalidate_after: None,
            changes: None,
            webhook_keys: None,
            webhook_dedup_capacity: None,
            allow_unencrypted_store: false,
            open_unencrypted_records: false,
            max_concurrent_exchanges: None,
        }
    }

    /// The API base URL every [`WiseClient`] calls under.
    pub(crate) fn api_base(&self) -> &Arc<url::Url> {
        &self.core.api_base
    }

    /// The configuration.
    pub fn config(&self) -> &WiseConfig {
        &self.core.config
    }

    /// An authorized Wise API client for `user`'s link, usable anywhere (a background job,
    /// a queue consumer, a CLI): each call takes the user's current token, and a 401 is
    /// repeated once with a newer one. See [`WiseClient`].
    ///
    /// ```no_run
    /// # async fn run(wise: wise_oauth_core::WiseOAuth) -> Result<(), Box<dyn std::error::Error>> {
    /// let user = wise_oauth_core::UserId::new("user-42")?;
    /// let profiles = wise.client(&user).profiles().await?;
    /// # let _ = profiles;
    /// # Ok(())
    /// # }
    /// ```
    pub fn client(&self, user: &UserId) -> WiseClient {
        WiseClient::new(self, user.clone())
    }

    /// One page of the users linked in this configuration (environment and client), for
    /// jobs that walk every link; pass the previous page's [`LinkPage::next`] as `after`.
    /// [`StoreError::Unsupported`] when the store cannot list.
    ///
    /// ```no_run
    /// # async fn run(wise: wise_oauth_core::WiseOAuth) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut after = None;
    /// loop {
    ///     let page = wise.linked_users(after.as_ref(), 100).await?;
    ///     for user in &page.users {
    ///         let balances = wise.client(user).profiles().await;
    ///         # let _ = balances;
    ///     }
    ///     match page.next {
    ///         Some(next) => after = Some(next),
    ///         None => break,
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn linked_users(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<LinkPage, StoreError> {
        self.core
            .manager
            .store()
            .list_links(
                self.core.config.environment().name(),
                self.core.config.client_id(),
                after,
                limit.clamp(1, MAX_LINK_PAGE),
            )
            .await
    }

    /// The token manager, for the API client's 401 recovery.
    pub(crate) fn manager(&self) -> &TokenManager {
        &self.core.manager
    }

    /// The store key of `user`'s link in this configuration (environment, client, user).
    pub fn link_key(&self, user: &UserId) -> LinkKey {
        self.core.namespace.key(user)
    }

    // ----- web link flow ------------------------------------------------------------

    /// Starts linking `user`'s Wise account from a browser.
    ///
    /// `options` may name a local path to land on afterwards and a `claim_account_code`
    /// ([`LinkOptions::default`] for none); `binding_cookie` is the value of the browser's
    /// [`binding_cookie_name`](Self::binding_cookie_name) cookie, if any (it is reused so
    /// several tabs can link at once). Redirect the browser (303) to
    /// [`LinkStart::authorize_url`] and send [`LinkStart::set_cookie`] as `Set-Cookie`.
    pub async fn start_link(
        &self,
        user: &UserId,
        options: &LinkOptions,
        binding_cookie: Option<&str>,
    ) -> Result<LinkStart, FlowError> {
        self.core
            .flow
            .start_web(user, options, binding_cookie)
            .await
    }

    /// Completes a web link flow on the callback route.
    ///
    /// `raw_query` is the callback's query string exactly as received (still
    /// percent-encoded, without or with the leading `?`); `binding_cookie` the value of
    /// the [`binding_cookie_name`](Self::binding_cookie_name) cookie. The state is consumed whatever the outcome. On
    /// success redirect (303) to [`LinkCompleted::return_to`] with
    /// `Referrer-Policy: no-referrer` and `Cache-Control: no-store`.
    pub async fn complete_link(
        &self,
        user: &UserId,
        raw_query: &str,
        binding_cookie: Option<&str>,
    ) -> Result<LinkCompleted, FlowError> {
        let (core, user) = (self.core.clone(), user.clone());
        let (query, cookie) = (raw_query.to_owned(), binding_cookie.map(str::to_owned));
        detached(async move {
            core.flow
                .complete_web(&user, &query, cookie.as_deref())
                .await
        })
        .await
    }

    /// [`WiseOAuth::complete_link`] for the ready-made callback route: a failure also
    /// carries the flow's `return_to` once the callback was tied to this user's flow in
    /// this browser.
    pub(crate) async fn complete_link_returning(
        &self,
        user: &UserId,
        raw_query: &str,
        binding_cookie: Option<&str>,
    ) -> Result<LinkCompleted, (FlowError, Option<String>)> {
        let (core, user) = (self.core.clone(), user.clone());
        let (query, cookie) = (raw_query.to_owned(), binding_cookie.map(str::to_owned));
        detached(async move {
            core.flow
                .complete_web_returning(&user, &query, cookie.as_deref())
                .await
                .map_err(|(e, return_to)| FailedCompletion(e, return_to))
        })
        .await
        .map_err(|FailedCompletion(e, return_to)| (e, return_to))
    }

    /// The `Set-Cookie` value that deletes the binding cookie (with `Secure` unless the
    /// redirect URI is plain `http`).
    pub fn clear_binding_cookie(&self) -> String {
        FlowCookie::clear(self.core.flow.secure_cookie())
    }

    /// The name of the browser-binding cookie this handle sets:
    /// [`SECURE_BINDING_COOKIE_NAME`](crate::SECURE_BINDING_COOKIE_NAME)
    /// (`__Host-wise_oauth_binding`) when the redirect URI is `https`, else
    /// [`BINDING_COOKIE_NAME`](crate::BINDING_COOKIE_NAME). Read that cookie's value for
    /// [`start_link`](Self::start_link) and [`complete_link`](Self::complete_link).
    pub fn binding_cookie_name(&self) -> &'static str {
        FlowCookie::name(self.core.flow.secure_cookie())
    }

    // ----- mobile link flow ---------------------------------------------------------

    /// Starts linking from a mobile app: the authorize URL uses the configured
    /// `mobile_redirect_uri` (a deep link). [`FlowError::Misconfigured`] when none is
    /// configured.
    pub async fn start_mobile_link(&self, user: &UserId) -> Result<MobileLinkStart, FlowError> {
        self.core.flow.start_mobile(user).await
    }

    /// Completes a mobile flow from what the app forwards of the deep link Wise called:
    /// its `code`, `state` and `profileId` ([`MobileCallback::Fields`]), or its raw query
    /// ([`MobileCallback::Query`], which also carries `error=access_denied` and the other
    /// error redirects). The state is consumed whatever the outcome.
    pub async fn complete_mobile_link(
        &self,
        user: &UserId,
        callback: MobileCallback<'_>,
    ) -> Result<LinkCompleted, FlowError> {
        let (core, user) = (self.core.clone(), user.clone());
        let callback = OwnedMobileCallback::from(callback);
        detached(async move { core.flow.complete_mobile(&user, &callback).await }).await
    }

    // ----- tokens -------------------------------------------------------------------

    /// A valid access token for `user`'s link (refreshed when needed, stored before it is
    /// handed out).
    pub async fn token(&self, user: &UserId) -> Result<ValidToken, TokenError> {
        self.core
            .manager
            .token_for(user, || self.link_key(user))
            .await
    }

    /// [`token`](Self::token) as far as the link cache answers it alone, with no I/O;
    /// `Err` when the rest must be done by [`token_missed`](Self::token_missed).
    #[inline]
    pub(crate) fn token_cached(
        &self,
        user: &UserId,
    ) -> Result<Result<ValidToken, TokenError>, CacheMiss> {
        self.core.manager.token_cached(user, || self.link_key(user))
    }

    /// The rest of [`token`](Self::token) after a [`token_cached`](Self::token_cached)
    /// miss: the store, or the link's refresh.
    pub(crate) async fn token_missed(
        &self,
        user: &UserId,
        miss: CacheMiss,
    ) -> Result<ValidToken, TokenError> {
        self.core
            .manager
            .token_missed(&self.link_key(user), miss)
            .await
    }

    /// Call when Wise answered 401 to `rejected`: returns a newer token (re-read from the
    /// store, or refreshed once).
    pub async fn token_after_unauthorized(
        &self,
        user: &UserId,
        rejected: &AccessToken,
    ) -> Result<ValidToken, TokenError> {
        self.core
            .manager
            .token_after_unauthorized(&self.link_key(user), rejected)
            .await
    }

    /// The state of `user`'s link, `None` when not linked.
    pub async fn status(&self, user: &UserId) -> Result<Option<LinkView>, TokenError> {
        self.core.manager.status(&self.link_key(user)).await
    }

    /// Deletes `user`'s link; `true` if there was one.
    pub async fn unlink(&self, user: &UserId) -> Result<bool, TokenError> {
        self.core.manager.unlink(&self.link_key(user)).await
    }

    /// For a graceful shutdown: waits until the token refreshes running in this process
    /// have finished and stored their result, for at most `within`. Call it after the
    /// server stopped taking requests; `true` when nothing was left running.
    ///
    /// ```no_run
    /// # async fn stop(wise: wise_oauth_core::WiseOAuth) {
    /// use std::time::Duration;
    /// if !wise.shutdown(Duration::from_secs(10)).await {
    ///     eprintln!("a token refresh was still running at shutdown");
    /// }
    /// # }
    /// ```
    pub async fn shutdown(&self, within: std::time::Duration) -> bool {
        self.core.manager.drain(within).await
    }

    /// A client-credentials token (cached in memory, never stored).
    pub async fn app_token(&self) -> Result<AccessToken, TokenError> {
        self.core.manager.app_token().await
    }

    // ----- webhooks -----------------------------------------------------------------

    /// Handles one webhook delivery from Wise (the adapters' `POST {prefix}/webhooks` route
    /// calls it): verifies `X-Signature-SHA256` over the raw body against the configured
    /// [`WebhookKey`]s, skips a delivery id this instance already acted on, and acts on the
    /// events that concern links: `users#state-change` → `DEACTIVATED` marks every link of
    /// that Wise user granted before the event as needing a re-link (the events hook gets
    /// [`WiseEvent::RelinkRequired`](crate::WiseEvent::RelinkRequired) for each). Answer
    /// Wise 200 on `Ok`, and [`WebhookError::status`] on `Err` (a rejected delivery changed
    /// nothing; on a 5xx Wise delivers again, which is harmless).
    ///
    /// ```no_run
    /// use wise_oauth_core::WebhookDelivery;
    /// # async fn run(wise: wise_oauth_core::WiseOAuth, body: &[u8], signature: Option<&str>, id: Option<&str>) {
    /// let delivery = WebhookDelivery::new(body).signature(signature).delivery_id(id);
    /// let status = match wise.handle_webhook(&delivery).await {
    ///     Ok(_outcome) => 200,
    ///     Err(error) => error.status(),
    /// };
    /// # let _ = status;
    /// # }
    /// ```
    pub async fn handle_webhook(
        &self,
        delivery: &WebhookDelivery<'_>,
    ) -> Result<WebhookOutcome, WebhookError> {
        self.core
            .webhooks
            .handle(&self.core.manager, &self.core.namespace, delivery)
            .await
    }

    /// Subscribes `url` (your `POST {prefix}/webhooks` route, public HTTPS on port 443) to
    /// `users#state-change` for the whole application, with a client-credentials token:
    /// `POST /v3/applications/{client_key}/subscriptions`. `client_key` is issued by Wise
    /// with your credentials and is not always the client id. Returns the subscription id.
    /// Call it once per environment (a deployment step, not at every start: each
    /// subscription gets its own copy of every event).
    ///
    /// ```no_run
    /// # async fn run(wise: wise_oauth_core::WiseOAuth) -> Result<(), Box<dyn std::error::Error>> {
    /// let id = wise
    ///     .subscribe_webhooks("my-client-key", "https://app.example.com/wise/webhooks")
    ///     .await?;
    /// println!("subscription {id}");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn subscribe_webhooks(
        &self,
        client_key: &str,
        url: &str,
    ) -> Result<String, ClientError> {
        if client_key.is_empty() || url.is_empty() {
            return Err(ClientError::InvalidRequest {
                reason: "the client key and the URL must not be empty",
            });
        }
        let token = self.app_token().await?;
        let id = self
            .core
            .api
            .subscribe(
                &token,
                client_key,
                "wise-oauth: users#state-change",
                "users#state-change",
                url,
            )
            .await?;
        Ok(id)
    }

    /// The Wise user `user`'s link belongs to, which ties Wise's webhooks to it. Links made
    /// by this version record it at link time; for a link stored before (its
    /// [`LinkRecord::wise_user_id`](crate::LinkRecord::wise_user_id) is `None`, also after
    /// the store's migration) this asks Wise (`GET /v1/me` with the user's token) and
    /// records the answer. Run it once over [`linked_users`](Self::linked_users) after
    /// upgrading, so deactivations reach the old links too; a link that already has an id
    /// costs one store read and no call to Wise.
    ///
    /// ```no_run
    /// # async fn run(wise: wise_oauth_core::WiseOAuth) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut after = None;
    /// loop {
    ///     let page = wise.linked_users(after.as_ref(), 100).await?;
    ///     for user in &page.users {
    ///         if let Err(e) = wise.backfill_wise_user_id(user).await {
    ///             eprintln!("{user}: {e}"); // e.g. a link that needs a re-link
    ///         }
    ///     }
    ///     match page.next {
    ///         Some(next) => after = Some(next),
    ///         None => break,
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn backfill_wise_user_id(&self, user: &UserId) -> Result<u64, ClientError> {
        let key = self.link_key(user);
        match self.core.manager.store().load(&key).await {
            Ok(Some(record)) => {
                if let Some(known) = record.value.wise_user_id {
                    return Ok(known);
                }
            }
            Ok(None) => return Err(ClientError::Token(TokenError::NotLinked)),
            Err(e) => {
                return Err(ClientError::Token(match e {
                    StoreError::Corrupt(_) => TokenError::Corrupt,
                    _ => TokenError::Unavailable { retry_after: None },
                }))
            }
        }
        let me: serde_json::Value = self.client(user).get("/v1/me").await?;
        let id = me
            .get("id")
            .and_then(serde_json::Value::as_u64)
            .filter(|id| *id != 0)
            .ok_or(ClientError::Wise(WiseError::MalformedResponse {
                reason: "user id is missing or invalid",
            }))?;
        Ok(self.core.manager.backfill_wise_user_id(&key, id).await?)
    }

    // ----- registration -------------------------------------------------------------

    /// Creates a Wise user for `user` with a registration code (partners whose KYC Wise
    /// relies on) and links it. An email that already has a Wise account gives
    /// [`Registration::UseLinkFlow`]: send the user through [`start_link`](Self::start_link).
    ///
    /// `code` is a random per-user secret of at least 32 characters; keep it encrypted, it
    /// can mint tokens until the user reclaims the account.
    pub async fn register_user(
        &self,
        user: &UserId,
        email: &str,
        code: &RegistrationCode,
    ) -> Result<Registration, RegistrationError> {
        self.core.flow.register(user, email, code).await
    }
}

/// Runs a link completion in a task of its own: once the state is consumed, the code
/// exchange, the profile check and the install finish even if the caller's future is
/// dropped (a browser that leaves mid-callback), so a grant Wise issued is never lost; on a
/// re-link the previous refresh token is already dead by then.
async fn detached<E: From<FlowError> + Send + 'static>(
    completion: impl Future<Output = Result<LinkCompleted, E>> + Send + 'static,
) -> Result<LinkCompleted, E> {
    match tokio::spawn(completion).await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(panicked = e.is_panic(), "link completion task failed");
            Err(FlowError::Unavailable { retry_after: None }.into())
        }
    }
}

/// A failed web completion with the `return_to` it may go back to.
struct FailedCompletion(FlowError, Option<String>);

impl From<FlowError> for FailedCompletion {
    fn from(e: FlowError) -> Self {
        FailedCompletion(e, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ClientSecret;

    fn builder() -> WiseOAuthBuilder {
        let config = WiseConfig::builder(
            "client",
            ClientSecret::new("secret"),
            "https://app.example.com/wise/callback",
        )
        .build()
        .unwrap();
        WiseOAuth::builder(config)
    }

    /// The published sandbox test vector (a `transfers#state-change` event).
    const VECTOR_BODY: &str = r#"{"data":{"resource":{"id":49983981,"profile_id":16055450,"account_id":14124090,"type":"transfer"},"current_state":"incoming_payment_waiting","previous_state":null,"occurred_at":"2021-08-23T10:12:50Z"},"subscription_id":"90aa8e14-4ef1-4a56-861c-f3c9cde097ea","event_type":"transfers#state-change","schema_version":"2.0.0","sent_at":"2021-08-23T10:12:50Z"}"#;
    const VECTOR_SIGNATURE: &str = "wKcKCYXAzxNgiu7xmoDm943NUni7Rz33QN8JkEA9dWSGebgndonabgSj18Y4C08OrwVmueGsED2s00M7DtJVcYKOS1i3G4TMVx+mgM3aL9djMBkQtiYNBFUd6wrPI7ZUNHv/TrlKSjTMc+6JFvUvJ7owY3z85e3I4jLRLJowMFvO8kvCJ60+1pY9wDwZvtZ//WS93LrwGjk9Dvwzpmu0w+P4J75tETT5qC3Uv0y5G2yO8SEoO3yNP/tg/BOli02niHb53vEOUWUb9bly6thnfMoXoiV/osoGxgF20R58RlvkAmezyyl1Sv542TfS2DpiwVnmjjjkCyXeSUcKookYLQ==";

    async fn vector_outcome(wise: &WiseOAuth) -> Result<WebhookOutcome, WebhookError> {
        let delivery = WebhookDelivery::new(VECTOR_BODY.as_bytes())
            .signature(Some(VECTOR_SIGNATURE))
            .delivery_id(Some("vector"));
        wise.handle_webhook(&delivery).await
    }

    fn with_environment(environment: crate::config::Environment) -> WiseOAuthBuilder {
        let config = WiseConfig::builder(
            "client",
            ClientSecret::new("secret"),
            "https://app.example.com/wise/callback",
        )
        .environment(environment)
        .build()
        .unwrap();
        WiseOAuth::builder(config)
    }

    #[tokio::test]
    async fn webhooks_are_checked_against_the_environments_key_by_default() {
        use crate::config::Environment;
        let sandbox = builder().build().unwrap();
        assert_eq!(vector_outcome(&sandbox).await, Ok(WebhookOutcome::Ignored));
        assert_eq!(
            vector_outcome(&sandbox).await,
            Ok(WebhookOutcome::Duplicate),
            "the same delivery id again"
        );
        let production = with_environment(Environment::Production).build().unwrap();
        assert_eq!(
            vector_outcome(&production).await,
            Err(WebhookError::InvalidSignature)
        );
        // A custom environment has no key until one is configured.
        let custom =
            Environment::custom("emulator", "http://127.0.0.1:1", "http://127.0.0.1:1/a").unwrap();
        let keyless = with_environment(custom.clone()).build().unwrap();
        assert_eq!(
            vector_outcome(&keyless).await,
            Err(WebhookError::InvalidSignature)
        );
        let configured = with_environment(custom)
            .webhook_keys([WebhookKey::production(), WebhookKey::sandbox()])
            .build()
            .unwrap();
        assert_eq!(
            vector_outcome(&configured).await,
            Ok(WebhookOutcome::Ignored)
        );
        let replaced = builder()
            .webhook_keys([WebhookKey::production()])
            .build()
            .unwrap();
        assert_eq!(
            vector_outcome(&replaced).await,
            Err(WebhookError::InvalidSignature)
        );
    }

    #[tokio::test]
    async fn the_webhook_dedup_capacity_is_checked_and_zero_turns_it_off() {
        let err = builder()
            .webhook_dedup_capacity(1_000_001)
            .build()
            .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                setting: "webhook_dedup_capacity",
                ..
            }
        ));
        let off = builder().webhook_dedup_capacity(0).build().unwrap();
        for _ in 0..2 {
            assert_eq!(vector_outcome(&off).await, Ok(WebhookOutcome::Ignored));
        }
    }

    #[test]
    fn the_cache_capacity_reaches_the_manager() {
        let default = builder().build().unwrap();
        assert_eq!(default.core.manager.settings().cache_capacity, 100_000);
        let small = builder().cache_capacity(5).build().unwrap();
        assert_eq!(small.core.manager.settings().cache_capacity, 5);
        assert_eq!(small.core.manager.cache_capacity(), 5);
    }

    #[test]
    fn the_exchange_cap_is_checked_and_reaches_the_flow() {
        for bad in [0, 10_001] {
            let err = builder()
                .max_concurrent_exchanges(bad)
                .build()
                .expect_err("out of range");
            assert!(
                err.to_string().contains("max_concurrent_exchanges"),
                "{err}"
            );
        }
        let default = builder().build().unwrap();
        assert_eq!(
            default.core.flow.exchange_permits(),
            DEFAULT_MAX_CONCURRENT_EXCHANGES
        );
        let one = builder().max_concurrent_exchanges(1).build().unwrap();
        assert_eq!(one.core.flow.exchange_permits(), 1);
    }

    #[test]
    fn the_revalidation_period_reaches_the_manager_and_is_checked() {
        let default = builder().build().unwrap();
        assert_eq!(
            default.core.manager.settings().revalidate_after,
            Duration::from_secs(30)
        );
        let short = builder()
            .revalidate_after(Duration::from_secs(1))
            .build()
            .unwrap();
        assert_eq!(
            short.core.manager.settings().revalidate_after,
            Duration::from_secs(1)
        );
        for bad in [
            Duration::ZERO,
            Duration::from_millis(999),
            Duration::from_secs(601),
        ] {
            let err = builder().revalidate_after(bad).build().unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        setting: "revalidate_after",
                        ..
                    }
                ),
                "{bad:?}: {err:?}"
            );
        }
    }
}
