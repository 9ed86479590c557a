//! The builder that starts an emulator and the handle that controls it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::MockError;
use crate::faults::Fault;
use crate::limits::RateLimit;
use crate::server::{router, serve, App};
use crate::state::{ClientConfig, Config, State, ACCESS_TTL};
use crate::stats::Stats;
use crate::tls::{ClientAuth, ClientIdentity, TlsServer};
use crate::users::{CreatedUser, IssuedTokens, NewUser};
use crate::webhooks::{WebhookDelivery, WebhookSubscription};

/// Client id of the demo client registered when no client is configured.
pub const DEMO_CLIENT_ID: &str = "wise-demo-client";
/// Client secret of the demo client.
pub const DEMO_CLIENT_SECRET: &str = "wise-demo-secret";
/// Redirect URIs registered for the demo client (web and mobile custom scheme).
pub const DEMO_REDIRECT_URIS: &[&str] = &[
    "http://127.0.0.1:3000/wise/callback",
    "http://localhost:3000/wise/callback",
    "wiseoauthdemo://wise/callback",
];

/// Entry point: `MockWise::builder()...start().await`.
#[derive(Debug, Clone, Copy)]
pub struct MockWise;

impl MockWise {
    /// A builder with the defaults: `127.0.0.1:0`, the demo client, no auto-approve,
    /// no refresh-token rotation, no rate limit, access tokens for 43199 s.
    pub fn builder() -> MockWiseBuilder {
        MockWiseBuilder::default()
    }
}

/// Configures and starts an emulator.
#[must_use]
#[derive(Debug, Clone)]
pub struct MockWiseBuilder {
    addr: SocketAddr,
    clients: Vec<ClientConfig>,
    auto_approve: Option<String>,
    rotate: bool,
    rate_limit: Option<RateLimit>,
    access_ttl: Duration,
    tls: Option<ClientAuth>,
}

impl Default for MockWiseBuilder {
    fn default() -> Self {
        MockWiseBuilder {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            clients: Vec::new(),
            auto_approve: None,
            rotate: false,
            rate_limit: None,
            access_ttl: ACCESS_TTL,
            tls: None,
        }
    }
}

impl MockWiseBuilder {
    /// Address to listen on. Default `127.0.0.1:0` (a free port).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Registers a client with its exact redirect URIs. May be called several times.
    /// If never called, the demo client ([`DEMO_CLIENT_ID`]) is registered.
    pub fn client(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        redirect_uris: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let id = client_id.into();
        self.clients.retain(|c| c.id != id);
        self.clients.push(ClientConfig {
            id,
            secret: client_secret.into(),
            redirect_uris: redirect_uris.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Skip the pages: approve at once as this user with the user's first profile.
    /// Default: off.
    pub fn auto_approve(mut self, email: impl Into<String>) -> Self {
        self.auto_approve = Some(email.into());
        self
    }

    /// Whether a refresh returns a new refresh token (and kills the old one). Default: off.
    pub fn rotate_refresh_tokens(mut self, on: bool) -> Self {
        self.rotate = on;
        self
    }

    /// Limits requests per OAuth client; over it the emulator answers 429 with
    /// `Retry-After` (see [`RateLimit`] for what is counted and how the windows slide).
    /// Default: no limit. [`RateLimit::WISE_DEFAULT`] is Wise's documented 100/s, 1,000/min.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Lifetime of every access token (user and client-credentials): `expires_in` is its
    /// whole seconds, `expires_at` and the API's check use it exactly, on the emulator
    /// clock. Values under 1 s are raised to 1 s. Default: 43199 s.
    pub fn access_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.access_ttl = lifetime;
        self
    }

    /// Serves HTTPS instead of plain HTTP, with a certificate authority made at start
    /// ([`MockWiseHandle::ca_certificate_pem`]) and a server certificate it signs for
    /// `localhost`, `127.0.0.1` and `::1`. With [`ClientAuth::Required`] every connection
    /// must present a client certificate issued by that CA
    /// ([`MockWiseHandle::issue_client_identity`]), like Wise's `api-mtls.*` hosts.
    /// Default: plain HTTP.
    ///
    /// ```
    /// use wise_oauth_mock::{ClientAuth, MockWise};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let wise = MockWise::builder().tls(ClientAuth::Required).start().await?;
    /// assert!(wise.base_url().starts_with("https://127.0.0.1:"));
    /// assert!(wise.ca_certificate_pem().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    /// let identity = wise.issue_client_identity("wise-demo-client").unwrap();
    /// assert!(identity.private_key_pem().contains("PRIVATE KEY"));
    /// wise.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn tls(mut self, client_auth: ClientAuth) -> Self {
        self.tls = Some(client_auth);
        self
    }

    /// Binds the address and spawns the server on the current tokio runtime.
    pub async fn start(self) -> std::io::Result<MockWiseHandle> {
        let clients = if self.clients.is_empty() {
            vec![ClientConfig {
                id: DEMO_CLIENT_ID.to_owned(),
                secret: DEMO_CLIENT_SECRET.to_owned(),
                redirect_uris: DEMO_REDIRECT_URIS.iter().map(|s| (*s).to_owned()).collect(),
            }]
        } else {
            self.clients
        };
        let config = Config {
            clients,
            auto_approve: self.auto_approve,
            rotate: self.rotate,
            rate_limit: self.rate_limit,
            access_ttl: self.access_ttl,
        };
        let tls = self.tls.map(TlsServer::new).transpose()?.map(Arc::new);
        let listener = TcpListener::bind(self.addr).await?;
        let addr = listener.local_addr()?;
        let app = App::new(State::new(config));
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, router(app.clone()), tls.clone(), rx));
        Ok(MockWiseHandle {
            inner: Arc::new(Inner {
                app,
                addr,
                tls,
                shutdown: Mutex::new(Some(tx)),
                task: Mutex::new(Some(task)),
            }),
        })
    }
}

#[derive(Debug)]
struct Inner {
    app: App,
    addr: SocketAddr,
    tls: Option<Arc<TlsServer>>,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// A running emulator. Cheap to clone; every clone controls the same server.
///
/// The user-action methods panic when no user has the given email (a typo in a test
/// should fail loudly).
#[derive(Clone, Debug)]
pub struct MockWiseHandle {
    inner: Arc<Inner>,
}

fn expect<T>(r: Result<T, MockError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("wise-oauth-mock: {e}"),
    }
}

impl MockWiseHandle {
    /// `http://HOST:PORT` (`https://` with [`MockWiseBuilder::tls`]) without a trailing
    /// slash; the API and token endpoint live here.
    pub fn base_url(&self) -> String {
        let ip = match self.inner.addr.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let scheme = if self.inner.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", SocketAddr::new(ip, self.inner.addr.port()))
    }

    /// The certificate (PEM) of the CA behind the emulator's HTTPS, made at start: trust it
    /// in the client. `None` when the emulator serves plain HTTP.
    pub fn ca_certificate_pem(&self) -> Option<String> {
        self.inner.tls.as_ref().map(|tls| tls.ca_pem())
    }

    /// Whether connections must present a client certificate ([`ClientAuth::Required`]).
    pub fn requires_client_certificate(&self) -> bool {
        self.inner
            .tls
            .as_ref()
            .is_some_and(|tls| tls.client_auth() == ClientAuth::Required)
    }

    /// Issues a client certificate (and a fresh key) for mTLS, signed by the emulator's CA,
    /// with `common_name` as its CN (Wise puts the client id there). `None` when the
    /// emulator serves plain HTTP.
    ///
    /// # Panics
    ///
    /// If the certificate cannot be made (`common_name` empty, or not encodable).
    pub fn issue_client_identity(&self, common_name: &str) -> Option<ClientIdentity> {
        let tls = self.inner.tls.as_ref()?;
        match tls.issue(common_name) {
            Ok(identity) => Some(identity),
            Err(e) => panic!("{e}"),
        }
    }

    /// The authorization page: `base_url() + "/oauth/authorize"`.
    pub fn authorize_url(&self) -> String {
        format!("{}/oauth/authorize", self.base_url())
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    fn app(&self) -> &App {
        &self.inner.app
    }

    /// Registers a client at run time (replacing one with the same id).
    pub fn register_client(
        &self,
        client_id: &str,
        client_secret: &str,
        redirect_uris: impl IntoIterator<Item = impl Into<String>>,
    ) {
        self.app().lock().register_client(ClientConfig {
            id: client_id.to_owned(),
            secret: client_secret.to_owned(),
            redirect_uris: redirect_uris.into_iter().map(Into::into).collect(),
        });
    }

    /// Adds a redirect URI to an existing client. Panics if the client is unknown.
    pub fn register_redirect_uri(&self, client_id: &str, uri: &str) {
        expect(self.app().lock().add_redirect_uri(client_id, uri));
    }

    /// Turns auto-approve on (as that user) or off.
    pub fn set_auto_approve(&self, email: Option<&str>) {
        self.app().lock().auto_approve = email.map(str::to_owned);
    }

    /// Turns refresh-token rotation on or off.
    pub fn set_rotate_refresh_tokens(&self, on: bool) {
        self.app().lock().rotate = on;
    }

    /// Switches the per-client [`RateLimit`] on (or replaces it) or off (`None`); every
    /// client's windows start afresh.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        self.app().lock().set_rate_limit(limit);
    }

    /// The rate limit in force, if any.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.app().lock().rate_limit()
    }

    /// Lifetime of access tokens issued from now on (tokens already issued keep theirs);
    /// see [`MockWiseBuilder::access_token_lifetime`]. Values under 1 s are raised to 1 s.
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        self.app().lock().set_access_ttl(lifetime);
    }

    /// The lifetime given to newly issued access tokens.
    pub fn access_token_lifetime(&self) -> Duration {
        self.app().lock().access_ttl()
    }

    /// Waits until at least `n` requests held by a
    /// [`late_completion`](crate::FaultKind::LateCompletion) fault have been processed
    /// since the start or the last [`reset`](Self::reset) ([`Stats::late_completions`]),
    /// whether or not their clients were still there. Wrap it in a timeout: it waits for
    /// ever if fewer happen.
    pub async fn wait_for_late_completions(&self, n: u64) {
        self.app().wait_late_completions(n).await;
    }

    /// A snapshot of the request counters.
    pub fn stats(&self) -> Stats {
        self.app().lock().stats.clone()
    }

    /// Starts a new [`Stats::token_in_flight_peak`] from the requests in flight now.
    pub fn reset_token_in_flight_peak(&self) {
        let mut app = self.app().lock();
        app.stats.token_in_flight_peak = app.stats.token_in_flight;
    }

    /// The currently valid tokens of the user, one entry per (client, profile) link.
    pub fn user_tokens(&self, email: &str) -> Vec<IssuedTokens> {
        self.app().lock().user_tokens(email)
    }

    /// Whether this access token (user or client-credentials) is currently accepted.
    pub fn access_token_is_valid(&self, token: &str) -> bool {
        self.app().lock().access_valid(token).is_some()
    }

    /// Whether this refresh token would currently be accepted.
    pub fn refresh_token_is_valid(&self, token: &str) -> bool {
        self.app().lock().refresh_valid(token)
    }

    /// The user reclaims the account: the registration-code grant answers
    /// 401 `invalid_grant`, refresh tokens are revoked (400 `invalid_grant`).
    pub fn reclaim(&self, email: &str) {
        expect(self.app().lock().reclaim(email));
    }

    /// The user revokes the app: refresh answers 400 `invalid_grant`, access tokens die.
    pub fn revoke(&self, email: &str) {
        expect(self.app().lock().revoke(email));
    }

    /// The user's Wise account is deactivated: every token is revoked (refresh answers 400
    /// `invalid_grant`, API calls 401) and `users#state-change` → `DEACTIVATED` is
    /// delivered, in the background, to every webhook subscription
    /// ([`subscribe_webhooks`](Self::subscribe_webhooks)).
    pub fn deactivate(&self, email: &str) {
        expect(crate::webhooks::deactivate(self.app(), email));
    }

    /// The account is active again (its old tokens stay dead) and `users#state-change` →
    /// `ACTIVE` is delivered to every subscription.
    pub fn reactivate(&self, email: &str) {
        expect(crate::webhooks::reactivate(self.app(), email));
    }

    /// Subscribes `url` (`https://…`, or `http://` to a loopback host) to
    /// `users#state-change`; `None` for a URL the emulator does not deliver to.
    pub fn subscribe_webhooks(&self, url: &str) -> Option<WebhookSubscription> {
        self.app().lock().webhooks.subscribe(url)
    }

    /// Every webhook delivery made so far, oldest first.
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.app().lock().webhooks.deliveries()
    }

    /// Waits until at least `n` webhook delivery attempts (first deliveries and
    /// redeliveries) have finished.
    pub async fn wait_for_webhook_deliveries(&self, n: u64) {
        crate::webhooks::wait_for_deliveries(self.app(), n).await;
    }

    /// Sends a delivery again byte for byte (same `X-Delivery-Id` and signature), as a
    /// retry of Wise's would; the receiver's status (`None`: unreachable).
    ///
    /// # Panics
    ///
    /// For an unknown delivery id.
    pub async fn redeliver_webhook(&self, delivery_id: &str) -> Option<u16> {
        expect(crate::webhooks::redeliver(self.app(), delivery_id).await)
    }

    /// Sends again every webhook delivery whose retry is due by the emulator clock (a
    /// delivery not answered 200 is due 1, 2, 4 … minutes after each attempt, at most 25
    /// attempts); how many were sent. Move the clock with
    /// [`advance_clock`](Self::advance_clock) first.
    pub async fn deliver_due_webhooks(&self) -> usize {
        crate::webhooks::deliver_due(self.app()).await
    }

    /// `X-Signature-SHA256` for `body` with the emulator's test key (for tests that craft
    /// their own deliveries); verify it with [`WEBHOOK_PUBLIC_KEY_PEM`](crate::WEBHOOK_PUBLIC_KEY_PEM).
    pub fn sign_webhook(&self, body: &[u8]) -> String {
        crate::webhooks::sign(body)
    }

    /// The user changes email: all tokens are revoked and refresh answers 403.
    pub fn change_email(&self, email: &str, new_email: &str) {
        expect(self.app().lock().change_email(email, new_email));
    }

    /// Turns 2FA on for the user's next login.
    pub fn enable_2fa(&self, email: &str) {
        expect(self.app().lock().enable_2fa(email));
    }

    /// The user turns on "enhanced security": 2FA on and refresh tokens revoked.
    pub fn enable_enhanced_security(&self, email: &str) {
        expect(self.app().lock().enhanced_security(email));
    }

    /// The user clears the SCA challenges of `one_time_token` (the one-time token of an SCA
    /// 403); the call repeated with `x-2fa-approval: <one_time_token>` then passes, once.
    /// `false` for a token the emulator never issued.
    pub fn approve_sca(&self, one_time_token: &str) -> bool {
        self.app().lock().wallet.approve(one_time_token)
    }

    /// Ends every SCA session, so the next SCA-protected call is challenged again.
    pub fn end_sca_sessions(&self) {
        self.app().lock().wallet.end_sessions();
    }

    /// Adds a user; returns the new user id and profile ids.
    pub fn create_user(&self, user: NewUser) -> Result<CreatedUser, MockError> {
        self.app().lock().create_user(user, None)
    }

    /// The user's profile ids in order (empty for an unknown user).
    pub fn profile_ids(&self, email: &str) -> Vec<u64> {
        self.app().lock().profile_ids(email)
    }

    /// Queues a fault.
    pub fn inject_fault(&self, fault: Fault) {
        self.app().lock().faults.push(fault);
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        self.app().lock().faults.clear();
    }

    /// Moves the emulator's clock forward.
    pub fn advance_clock(&self, by: Duration) {
        self.app().lock().advance_clock(by);
    }

    /// How far the emulator clock is ahead of the real clock (while frozen: ahead of the
    /// moment it was frozen).
    pub fn clock_offset(&self) -> Duration {
        self.app().lock().clock_offset
    }

    /// Stops the emulator clock: [`now`](Self::now) stays put and moves only with
    /// [`advance_clock`](Self::advance_clock), so timing-sensitive checks (token expiry,
    /// rate-limit windows) do not depend on how fast the test runs. Idempotent.
    pub fn freeze_clock(&self) {
        self.app().lock().set_clock_frozen(true);
    }

    /// Lets the clock run again from where it stood (or from the real time, if that is
    /// later: the clock never goes back). Idempotent; [`reset`](Self::reset) also thaws.
    pub fn unfreeze_clock(&self) {
        self.app().lock().set_clock_frozen(false);
    }

    /// Whether the clock is frozen.
    pub fn clock_frozen(&self) -> bool {
        self.app().lock().clock_frozen()
    }

    /// The emulator's clock.
    pub fn now(&self) -> SystemTime {
        self.app().lock().now()
    }

    /// Back to the start: seed users, configured clients and switches (auto-approve,
    /// rotation, rate limit, access-token lifetime as built), no tokens, codes, faults or
    /// counters, clock running with offset zero. Late completions already held still
    /// finish (against the new state).
    pub fn reset(&self) {
        self.app().lock().reset();
    }

    /// Stops accepting connections, closes open ones and waits for the server task.
    pub async fn shutdown(self) {
        let tx = self
            .inner
            .shutdown
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
