//! The link state machine: start (authorize URL + pending state) and completion (consume
//! the state, exchange the code, verify the profile, persist the link).
//!
//! Completion order (the state is consumed before any call to Wise): parse the raw
//! callback → atomically take the pending flow (consumed even when a later check fails)
//! → check environment/client, kind, age,
//! owner user and browser binding → only then any outbound call: under the link's lease,
//! exchange the code (with the PKCE verifier from the pending record), verify the
//! `profileId` hint through the Wise API, and install the link.

mod callback;
mod cookie;
mod error;
mod pending;
mod pkce;
mod registration;
mod return_to;
mod state;
mod veto;

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt as _;

use url::Url;

use crate::api::WiseApi;
use crate::clock::TimeSource;
use crate::config::WiseConfig;
use crate::endpoint::TokenEndpoint;
use crate::ids::{LinkKey, LinkNamespace, ProfileId, UserId};
use crate::manager::TokenManager;
use crate::seal::Sealer;
use crate::secret::{AccessToken, CsrfState};
use crate::store::PendingStore;

pub(crate) use cookie::FlowCookie;
pub use cookie::{BINDING_COOKIE_NAME, SECURE_BINDING_COOKIE_NAME};
pub use error::{CallbackProblem, FlowError, ProviderErrorCode, Registration, RegistrationError};
pub(crate) use return_to::local_or_root;
pub use return_to::DEFAULT_RETURN_TO;
pub use veto::ProfileCheck;

use callback::{Callback, CallbackOutcome, ParseFailure};
use pending::{FlowKind, PendingLink, FLOW_TTL};

/// The longest `claim_account_code` accepted, in bytes.
const MAX_CLAIM_CODE_LEN: usize = 512;

/// Options of [`WiseOAuth::start_link`](crate::WiseOAuth::start_link); [`LinkOptions::default`]
/// sets none.
///
/// `Debug` redacts the claim-account code.
#[derive(Clone, Default)]
#[must_use]
pub struct LinkOptions {
    return_to: Option<String>,
    claim_account_code: Option<String>,
}

impl LinkOptions {
    /// No options: the browser returns to [`DEFAULT_RETURN_TO`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the browser goes after linking: a local path such as `/settings/wise`.
    /// Anything else (absolute URLs, `//host`, backslashes, control characters, ...) is
    /// replaced by [`DEFAULT_RETURN_TO`]. Default: `/`.
    pub fn return_to(mut self, path: impl Into<String>) -> Self {
        self.return_to = Some(path.into());
        self
    }

    /// The `claim_account_code` of Wise's prefilled-KYC flow (from
    /// `POST /v1/user/claim-account`; lives 5 minutes). Default: none.
    pub fn claim_account_code(mut self, code: impl Into<String>) -> Self {
        self.claim_account_code = Some(code.into());
        self
    }
}

impl fmt::Debug for LinkOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkOptions")
            .field("return_to", &self.return_to)
            .field(
                "claim_account_code",
                &self.claim_account_code.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// A started web link flow: send the browser to [`authorize_url`](Self::authorize_url)
/// (303) with the [`set_cookie`](Self::set_cookie) header.
///
/// `Debug` hides the URL's query (it carries the state) and the cookie value.
#[derive(Clone)]
pub struct LinkStart {
    authorize_url: Url,
    set_cookie: String,
}

impl LinkStart {
    /// The Wise authorization page URL (with `client_id`, `redirect_uri`, `state`, ...).
    pub fn authorize_url(&self) -> &Url {
        &self.authorize_url
    }

    /// The complete `Set-Cookie` header value of the browser-binding cookie.
    pub fn set_cookie(&self) -> &str {
        &self.set_cookie
    }
}

fn url_without_query(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

impl fmt::Debug for LinkStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkStart")
            .field("authorize_url", &url_without_query(&self.authorize_url))
            .field("set_cookie", &"[redacted]")
            .finish()
    }
}

/// A started mobile link flow: open [`authorize_url`](Self::authorize_url) in the system
/// browser (never a WebView); Wise redirects to the mobile redirect URI (a deep link) with
/// `code`, `state` and `profileId`, which the app sends to the backend.
///
/// There is no binding cookie: the flow is bound to the app user only.
#[derive(Clone)]
pub struct MobileLinkStart {
    authorize_url: Url,
    state: CsrfState,
}

impl MobileLinkStart {
    /// The Wise authorization page URL.
    pub fn authorize_url(&self) -> &Url {
        &self.authorize_url
    }

    /// The flow's `state` (also inside the URL), for apps that check the deep link
    /// themselves before forwarding it.
    pub fn state(&self) -> &CsrfState {
        &self.state
    }
}

impl fmt::Debug for MobileLinkStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MobileLinkStart")
            .field("authorize_url", &url_without_query(&self.authorize_url))
            .field("state", &self.state)
            .finish()
    }
}

/// What a mobile app forwards to its backend of the deep link Wise redirected to, for
/// [`WiseOAuth::complete_mobile_link`](crate::WiseOAuth::complete_mobile_link).
///
/// ```
/// use wise_oauth_core::MobileCallback;
/// // The fields, for example from a JSON body `{"code", "state", "profileId"}`:
/// let fields = MobileCallback::Fields { code: "abc", state: "xyz", profile_id: Some("30000000") };
/// // Or the deep link's raw query (also carries `error=access_denied`):
/// let query = MobileCallback::Query("error=access_denied&state=xyz");
/// # let _ = (fields, query);
/// ```
#[derive(Clone, Copy)]
pub enum MobileCallback<'a> {
    /// The deep link's `code`, `state` and `profileId` (if any).
    Fields {
        /// The `code` parameter.
        code: &'a str,
        /// The `state` parameter.
        state: &'a str,
        /// The `profileId` parameter, a hint verified through the Wise API.
        profile_id: Option<&'a str>,
    },
    /// The deep link's raw query string, still percent-encoded (without or with the
    /// leading `?`).
    Query(&'a str),
}

impl fmt::Debug for MobileCallback<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fields { profile_id, .. } => f
                .debug_struct("Fields")
                .field("code", &"[redacted]")
                .field("state", &"[redacted]")
                .field("profile_id", profile_id)
                .finish(),
            Self::Query(_) => f.write_str("Query([redacted])"),
        }
    }
}

/// A [`MobileCallback`] moved into the completion task.
pub(crate) enum OwnedMobileCallback {
    Fields {
        code: String,
        state: String,
        profile_id: Option<String>,
    },
    Query(String),
}

impl From<MobileCallback<'_>> for OwnedMobileCallback {
    fn from(callback: MobileCallback<'_>) -> Self {
        match callback {
            MobileCallback::Fields {
                code,
                state,
                profile_id,
            } => Self::Fields {
                code: code.to_owned(),
                state: state.to_owned(),
                profile_id: profile_id.map(str::to_owned),
            },
            MobileCallback::Query(query) => Self::Query(query.to_owned()),
        }
    }
}

/// A completed link: the verified profile and where to send the browser (303).
///
/// The browser-binding cookie is left in place: it identifies the browser, not one flow,
/// so a flow started in another tab can still complete (it expires after 30 minutes;
/// [`WiseOAuth::clear_binding_cookie`](crate::WiseOAuth::clear_binding_cookie) removes it,
/// e.g. at logout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCompleted {
    profile_id: ProfileId,
    return_to: String,
}

impl LinkCompleted {
    /// The Wise profile now linked (verified through the Wise API).
    pub fn profile_id(&self) -> ProfileId {
        self.profile_id
    }

    /// The local path given when the flow started (validated then), or `/`.
    pub fn return_to(&self) -> &str {
        &self.return_to
    }
}

/// The link flows (web, mobile, registration) and the state they own: the pending store,
/// the sealer of pending records, the configuration's URLs and the app's profile check.
/// Completed links are handed to the [`TokenManager`], which owns the tokens.
pub(crate) struct LinkFlow {
    config: WiseConfig,
    endpoint: Arc<TokenEndpoint>,
    api: WiseApi,
    manager: TokenManager,
    pending: Arc<dyn PendingStore>,
    sealer: Arc<Sealer>,
    clock: TimeSource,
    profile_check: Option<Arc<dyn ProfileCheck>>,
    namespace: LinkNamespace,
    /// Permits of the link completions running at once (the exchange cap).
    exchanges: tokio::sync::Semaphore,
}

/// The parts a [`LinkFlow`] is made of.
pub(crate) struct LinkFlowParts {
    pub(crate) config: WiseConfig,
    pub(crate) endpoint: Arc<TokenEndpoint>,
    pub(crate) api: WiseApi,
    pub(crate) manager: TokenManager,
    pub(crate) pending: Arc<dyn PendingStore>,
    pub(crate) sealer: Arc<Sealer>,
    pub(crate) clock: TimeSource,
    pub(crate) profile_check: Option<Arc<dyn ProfileCheck>>,
    pub(crate) namespace: LinkNamespace,
    /// How many link completions may run at once.
    pub(crate) max_concurrent_exchanges: usize,
}

impl fmt::Debug for LinkFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkFlow")
            .field("pending", &self.pending)
            .field("profile_check", &self.profile_check.is_some())
            .finish_non_exhaustive()
    }
}

impl LinkFlow {
    pub(crate) fn new(parts: LinkFlowParts) -> Self {
        let LinkFlowParts {
            config,
            endpoint,
            api,
            manager,
            pending,
            sealer,
            clock,
            profile_check,
            namespace,
            max_concurrent_exchanges,
        } = parts;
        Self {
            config,
            endpoint,
            api,
            manager,
            pending,
            sealer,
            clock,
            profile_check,
            namespace,
            exchanges: tokio::sync::Semaphore::new(max_concurrent_exchanges),
        }
    }

    /// How many link completions may start now (the exchange cap's free permits).
    #[cfg(test)]
    pub(crate) fn exchange_permits(&self) -> usize {
        self.exchanges.available_permits()
    }

    /// Whether the binding cookie carries `Secure`.
    pub(crate) fn secure_cookie(&self) -> bool {
        cookie::secure_for(self.config.redirect_uri())
    }

    fn redirect_uri(&self, kind: FlowKind) -> Result<&str, FlowError> {
        match kind {
            FlowKind::Web => Ok(self.config.redirect_uri()),
            FlowKind::Mobile => self
                .config
                .mobile_redirect_uri()
                .ok_or(FlowError::Misconfigured),
        }
    }

    /// Origins an `iss` callback parameter may name.
    fn issuers(&self) -> [String; 2] {
        [
            self.config.authorize_url().origin().ascii_serialization(),
            self.config.api_url().origin().ascii_serialization(),
        ]
    }

    /// Creates the pending flow and the authorization URL.
    pub(crate) async fn start_flow(
        &self,
        user: &UserId,
        options: &LinkOptions,
        binding: Option<&str>,
        kind: FlowKind,
    ) -> Result<(Url, CsrfState), FlowError> {
        let redirect_uri = self.redirect_uri(kind)?;
        if let Some(code) = &options.claim_account_code {
            if code.is_empty()
                || code.len() > MAX_CLAIM_CODE_LEN
                || !code.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(FlowError::InvalidClaimAccountCode);
            }
        }
        let key = self.link_key(user);
        let state = state::new_state();
        let state_hash = state::hash(state.expose_secret());
        let verifier = self.config.pkce().then(pkce::new_verifier);
        let return_to = return_to::sanitize(options.return_to.as_deref());
        let pending = PendingLink {
            environment: key.environment().to_owned(),
            client_id: key.client_id().to_owned(),
            user: user.as_str().to_owned(),
            binding_hash: binding.map(state::hash),
            pkce: verifier.clone(),
            return_to,
            kind,
            created_at: self.clock.now(),
        };
        let sealed = pending.seal(&self.sealer, &state_hash);
        self.pending
            .insert(&state_hash, &key, &sealed, FLOW_TTL)
            .await
            .map_err(|e| {
                tracing::warn!(user = %user, error = %e, "pending store unavailable at link start");
                // A full store frees room as flows complete or expire (30 minutes at most).
                let full = matches!(e, crate::store::StoreError::Full);
                FlowError::Unavailable {
                    retry_after: full.then_some(std::time::Duration::from_secs(60)),
                }
            })?;

        let mut url = self.config.authorize_url().clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", self.config.client_id())
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("state", state.expose_secret());
            if let Some(verifier) = &verifier {
                query
                    .append_pair("code_challenge", &pkce::challenge_s256(verifier))
                    .append_pair("code_challenge_method", "S256");
            }
            if let Some(code) = &options.claim_account_code {
                query.append_pair("claim_account_code", code);
            }
        }
        tracing::debug!(user = %user, kind = ?kind, pkce = verifier.is_some(), "link flow started");
        Ok((url, state))
    }

    /// Starts a web flow, reusing the browser's binding id when it has a valid one.
    pub(crate) async fn start_web(
        &self,
        user: &UserId,
        options: &LinkOptions,
        binding_cookie: Option<&str>,
    ) -> Result<LinkStart, FlowError> {
        let binding = cookie::binding_id(binding_cookie);
        let (authorize_url, _state) = self
            .start_flow(user, options, Some(&binding), FlowKind::Web)
            .await?;
        Ok(LinkStart {
            authorize_url,
            set_cookie: FlowCookie::set(&binding, self.secure_cookie()),
        })
    }

    /// Starts a mobile flow.
    pub(crate) async fn start_mobile(&self, user: &UserId) -> Result<MobileLinkStart, FlowError> {
        let (authorize_url, state) = self
            .start_flow(user, &LinkOptions::new(), None, FlowKind::Mobile)
            .await?;
        Ok(MobileLinkStart {
            authorize_url,
            state,
        })
    }

    /// Completes a web flow from the raw callback query.
    pub(crate) async fn complete_web(
        &self,
        user: &UserId,
        raw_query: &str,
        binding_cookie: Option<&str>,
    ) -> Result<LinkCompleted, FlowError> {
        self.complete_web_returning(user, raw_query, binding_cookie)
            .await
            .map_err(|(e, _)| e)
    }

    /// [`LinkFlow::complete_web`] that also gives a failure the flow's `return_to`, once
    /// the callback was tied to this user's flow in this browser (before that, nothing of
    /// the record is trusted: `None`).
    pub(crate) async fn complete_web_returning(
        &self,
        user: &UserId,
        raw_query: &str,
        binding_cookie: Option<&str>,
    ) -> Result<LinkCompleted, (FlowError, Option<String>)> {
        let issuers = self.issuers();
        let issuers = [issuers[0].as_str(), issuers[1].as_str()];
        let parsed = callback::parse(raw_query, &issuers);
        let mut return_to = None;
        self.complete(user, parsed, binding_cookie, FlowKind::Web, &mut return_to)
            .await
            .map_err(|e| (e, return_to))
    }

    /// Completes a mobile flow from what the app forwarded.
    pub(crate) async fn complete_mobile(
        &self,
        user: &UserId,
        callback: &OwnedMobileCallback,
    ) -> Result<LinkCompleted, FlowError> {
        let parsed = match callback {
            OwnedMobileCallback::Fields {
                code,
                state,
                profile_id,
            } => callback::from_fields(code, state, profile_id.as_deref()),
            OwnedMobileCallback::Query(raw_query) => {
                let issuers = self.issuers();
                let issuers = [issuers[0].as_str(), issuers[1].as_str()];
                callback::parse(raw_query, &issuers)
            }
        };
        self.complete(user, parsed, None, FlowKind::Mobile, &mut None)
            .await
    }

    /// Takes (and drops) the pending flow of `state`, if any: a failed callback still
    /// consumes its state.
    async fn discard(&self, state: &CsrfState) {
        if state::is_well_formed(state.expose_secret()) {
            let hash = state::hash(state.expose_secret());
            if let Err(e) = self.pending.take(&hash).await {
                tracing::warn!(error = %e, "could not discard the pending flow of a rejected callback");
            }
        }
    }

    async fn complete(
        &self,
        user: &UserId,
        parsed: Result<Callback, ParseFailure>,
        binding_cookie: Option<&str>,
        kind: FlowKind,
        trusted_return_to: &mut Option<String>,
    ) -> Result<LinkCompleted, FlowError> {
        let result = self
            .complete_inner(user, parsed, binding_cookie, kind, trusted_return_to)
            .await;
        crate::metrics::link_outcome(result.as_ref().map(|_| ()).map_err(FlowError::reason));
        match &result {
            Ok(done) => {
                tracing::info!(user = %user, profile_id = %done.profile_id, "Wise account linked");
            }
            Err(e) => {
                tracing::info!(user = %user, reason = e.reason(), "link flow failed");
            }
        }
        result
    }

    async fn complete_inner(
        &self,
        user: &UserId,
        parsed: Result<Callback, ParseFailure>,
        binding_cookie: Option<&str>,
        kind: FlowKind,
        trusted_return_to: &mut Option<String>,
    ) -> Result<LinkCompleted, FlowError> {
        let callback = match parsed {
            Ok(callback) => callback,
            Err(failure) => {
                if let Some(state) = &failure.state {
                    self.discard(state).await;
                }
                return Err(failure.error);
            }
        };

        // 1. Consume the state atomically, before any other check or outbound call (I5).
        if !state::is_well_formed(callback.state.expose_secret()) {
            return Err(FlowError::UnknownState);
        }
        // The exchange cap, before the state is consumed: a refused callback can be repeated.
        let Ok(_permit) = self.exchanges.try_acquire() else {
            return Err(FlowError::Busy);
        };
        let _exchanging = crate::metrics::Live::exchange();
        let state_hash = state::hash(callback.state.expose_secret());
        let sealed = self.pending.take(&state_hash).await.map_err(|e| {
            tracing::warn!(error = %e, "pending store unavailable at link completion");
            FlowError::Unavailable { retry_after: None }
        })?;
        let Some(sealed) = sealed else {
            return Err(FlowError::UnknownState);
        };
        let pending = PendingLink::open(&self.sealer, &state_hash, &sealed).map_err(|e| {
            tracing::warn!(error = %e, "pending flow record cannot be opened");
            FlowError::UnknownState
        })?;

        // 2. Checks on the consumed record.
        let key = self.link_key(user);
        if !pending.client_is(&key) {
            return Err(FlowError::EnvironmentMismatch);
        }
        if pending.kind != kind {
            return Err(FlowError::WrongFlow);
        }
        if pending.is_expired(self.clock.now()) {
            return Err(FlowError::UnknownState);
        }
        if !pending.owner_is(&key) {
            return Err(FlowError::UserMismatch);
        }
        if kind == FlowKind::Web {
            let bound = match (pending.binding_hash, binding_cookie) {
                (Some(expected), Some(cookie)) => {
                    state::hashes_equal(&expected, &state::hash(cookie))
                }
                _ => false,
            };
            if !bound {
                return Err(FlowError::BrowserMismatch);
            }
        }
        // The flow is this user's, in this browser: its return_to may take a failure back.
        *trusted_return_to = Some(pending.return_to.clone());

        // 3. What Wise said.
        let (code, hint) = match callback.outcome {
            CallbackOutcome::Denied => return Err(FlowError::Denied),
            CallbackOutcome::Error(code) => return Err(FlowError::ProviderError { code }),
            CallbackOutcome::Code { code, profile_id } => (code, profile_id),
        };

        // 4. Exchange, verify, persist: serialized with refreshes of the same link.
        let redirect_uri = self.redirect_uri(kind)?;
        let verifier = pending.pkce;
        let work = async {
            let response = self
                .endpoint
                .exchange_code(&code, redirect_uri, verifier.as_ref())
                .await
                .map_err(FlowError::Exchange)?;
            let tokens = response.into_token_set(None).map_err(FlowError::Exchange)?;
            let profile_id = self
                .verify_profile(user, &tokens.access_token, hint)
                .await?;
            let wise_user_id = self.wise_user_id(&tokens.access_token).await;
            self.manager
                .install_link(&key, profile_id, wise_user_id, tokens)
                .await
                .map_err(FlowError::from_token_error)?;
            Ok::<_, FlowError>(profile_id)
        };
        let profile_id = self
            .manager
            .with_lease(&key, work)
            .await
            .map_err(FlowError::from_token_error)??;
        Ok(LinkCompleted {
            profile_id,
            return_to: pending.return_to.clone(),
        })
    }

    /// Turns the callback's `profileId` hint into a verified profile id: the new token must
    /// see it (and Wise must not mark it hidden or deactivated). Without a hint, the token
    /// must see exactly one visible profile.
    async fn verify_profile(
        &self,
        user: &UserId,
        token: &AccessToken,
        hint: Option<ProfileId>,
    ) -> Result<ProfileId, FlowError> {
        let profile = match hint {
            Some(id) => match self.api.profile(token, id).await {
                Ok(Some(profile)) if profile.id == id && profile.visible => profile,
                Ok(_) => {
                    tracing::warn!(profile_id = %id, "callback profileId is not visible to the granted token");
                    return Err(FlowError::ProfileRejected);
                }
                Err(e) => return Err(FlowError::ProfileLookup(e)),
            },
            None => {
                let profiles = self
                    .api
                    .profiles(token)
                    .await
                    .map_err(FlowError::ProfileLookup)?;
                let mut visible = profiles.into_iter().filter(|p| p.visible);
                match (visible.next(), visible.next()) {
                    (Some(only), None) => only,
                    _ => return Err(FlowError::NoProfile),
                }
            }
        };
        if let Some(check) = &self.profile_check {
            let verdict = AssertUnwindSafe(check.accept(user, &profile, token))
                .catch_unwind()
                .await;
            if !matches!(verdict, Ok(true)) {
                tracing::info!(user = %user, profile_id = %profile.id, "the app's profile check rejected the link");
                return Err(FlowError::ProfileRejected);
            }
        }
        Ok(profile.id)
    }

    /// The Wise user the new token belongs to (`GET /v1/me`), which ties Wise's webhooks to
    /// the link. Best effort: the grant is already issued (and a previous link's refresh
    /// token dead), so a failed lookup stores the link without it rather than lose it.
    async fn wise_user_id(&self, token: &AccessToken) -> Option<u64> {
        match self.api.me(token).await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(error = %e, "GET /v1/me failed: the link is stored without its Wise user id, so webhooks cannot reach it");
                None
            }
        }
    }

    /// The link key of `user` in this configuration.
    pub(crate) fn link_key(&self, user: &UserId) -> LinkKey {
        self.namespace.key(user)
    }
}
