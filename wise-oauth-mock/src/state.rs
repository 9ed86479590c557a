//! The emulator's whole state, guarded by one mutex, and the rules that change it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Value};

use crate::clock::{fmt_millis, fmt_nanos, now_with, secs_between};
use crate::error::{MockError, OAuthError};
use crate::faults::FaultQueue;
use crate::limits::{RateLimit, RateLog};
use crate::stats::Stats;
use crate::users::{CreatedUser, IssuedTokens, NewProfile, NewUser, ProfileKind};

/// Default access-token lifetime: `expires_in` 43199.
pub(crate) const ACCESS_TTL: Duration = Duration::from_secs(43_199);
/// The shortest configurable access-token lifetime.
pub(crate) const MIN_ACCESS_TTL: Duration = Duration::from_secs(1);
/// Refresh-token lifetime: 20 years (7305 days).
pub(crate) const REFRESH_TTL: Duration = Duration::from_secs(7305 * 86_400);
/// Authorization codes live 30 minutes.
pub(crate) const CODE_TTL: Duration = Duration::from_secs(30 * 60);
/// Login sessions of the authorize pages live 30 minutes.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(30 * 60);
/// Claim-account codes live 5 minutes.
pub(crate) const CLAIM_TTL: Duration = Duration::from_secs(5 * 60);
/// The sandbox 2FA code.
pub(crate) const TWO_FACTOR_CODE: &str = "111111";

/// A registered OAuth client.
#[derive(Debug, Clone)]
pub(crate) struct ClientConfig {
    pub(crate) id: String,
    pub(crate) secret: String,
    pub(crate) redirect_uris: Vec<String>,
}

/// What `reset` returns to.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) clients: Vec<ClientConfig>,
    pub(crate) auto_approve: Option<String>,
    pub(crate) rotate: bool,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) access_ttl: Duration,
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: u64,
    pub(crate) email: String,
    pub(crate) password: String,
    pub(crate) two_factor: bool,
    pub(crate) profiles: Vec<u64>,
    /// (client id, registration code) when created through the signup API.
    pub(crate) registration_code: Option<(String, String)>,
    pub(crate) reclaimed: bool,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Profile {
    pub(crate) id: u64,
    pub(crate) user_id: u64,
    pub(crate) kind: ProfileKind,
    pub(crate) name: String,
    pub(crate) public_id: String,
    pub(crate) created_at: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PkceMethod {
    S256,
    Plain,
}

#[derive(Debug, Clone)]
pub(crate) struct Pkce {
    pub(crate) method: PkceMethod,
    pub(crate) challenge: String,
}

#[derive(Debug, Clone)]
pub(crate) struct CodeRecord {
    client_id: String,
    redirect_uri: String,
    user_id: u64,
    profile_id: u64,
    expires_at: SystemTime,
    pkce: Option<Pkce>,
    used: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    App,
    User { user_id: u64, profile_id: u64 },
}

#[derive(Debug, Clone)]
pub(crate) struct AccessRecord {
    pub(crate) client_id: String,
    pub(crate) owner: Owner,
    expires_at: SystemTime,
    revoked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshStatus {
    Active,
    Revoked,
    Replaced,
    EmailChanged,
}

#[derive(Debug, Clone)]
struct RefreshRecord {
    client_id: String,
    user_id: u64,
    profile_id: u64,
    expires_at: SystemTime,
    status: RefreshStatus,
    last_access: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Link {
    access_token: Option<String>,
    refresh_token: Option<String>,
}

/// Where a login on the authorize pages stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Login,
    TwoFactor { user_id: u64 },
    Profile { user_id: u64 },
    Consent { user_id: u64, profile_id: u64 },
}

/// The validated parameters of an authorization request.
#[derive(Debug, Clone)]
pub(crate) struct AuthParams {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) state: Option<String>,
    pub(crate) pkce: Option<Pkce>,
}

#[derive(Debug, Clone)]
pub(crate) struct AuthSession {
    pub(crate) params: AuthParams,
    pub(crate) stage: Stage,
    pub(crate) expires_at: SystemTime,
}

/// The mutable world of one emulator.
#[derive(Debug)]
pub(crate) struct State {
    config: Config,
    pub(crate) clients: BTreeMap<String, ClientConfig>,
    users: Vec<User>,
    profiles: Vec<Profile>,
    codes: HashMap<String, CodeRecord>,
    access: HashMap<String, AccessRecord>,
    refresh: HashMap<String, RefreshRecord>,
    links: BTreeMap<(String, u64, u64), Link>,
    sessions: HashMap<String, AuthSession>,
    claim_codes: HashMap<String, (u64, SystemTime)>,
    pub(crate) faults: FaultQueue,
    pub(crate) stats: Stats,
    pub(crate) clock_offset: Duration,
    /// The real time at which the clock was frozen (`now` is then this plus the offset).
    clock_frozen_at: Option<SystemTime>,
    pub(crate) auto_approve: Option<String>,
    pub(crate) rotate: bool,
    rate_limit: Option<RateLimit>,
    rate_log: RateLog,
    access_ttl: Duration,
    next_user_id: u64,
    next_profile_id: u64,
    /// Balances per profile and SCA one-time tokens.
    pub(crate) wallet: crate::wallet::Wallet,
    /// Webhook subscriptions and the deliveries made.
    pub(crate) webhooks: crate::webhooks::Registry,
}

/// A short opaque random string.
pub(crate) fn random_code(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl State {
    pub(crate) fn new(config: Config) -> Self {
        let clients = config
            .clients
            .iter()
            .map(|c| (c.id.clone(), c.clone()))
            .collect();
        let mut s = State {
            clients,
            users: Vec::new(),
            profiles: Vec::new(),
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            links: BTreeMap::new(),
            sessions: HashMap::new(),
            claim_codes: HashMap::new(),
            faults: FaultQueue::default(),
            stats: Stats::default(),
            clock_offset: Duration::ZERO,
            clock_frozen_at: None,
            auto_approve: config.auto_approve.clone(),
            rotate: config.rotate,
            rate_limit: config.rate_limit,
            rate_log: RateLog::default(),
            access_ttl: config.access_ttl.max(MIN_ACCESS_TTL),
            next_user_id: 10_000_001,
            next_profile_id: 30_000_000,
            wallet: crate::wallet::Wallet::default(),
            webhooks: crate::webhooks::Registry::default(),
            config,
        };
        s.seed();
        s
    }

    fn seed(&mut self) {
        let seeds = [
            NewUser {
                email: "alice@example.com".into(),
                password: "password1".into(),
                two_factor: false,
                profiles: vec![
                    NewProfile::personal("Alice Example"),
                    NewProfile::business("Alice Example Ltd"),
                ],
            },
            NewUser {
                email: "bob@example.com".into(),
                password: "password1".into(),
                two_factor: true,
                profiles: vec![NewProfile::personal("Bob Example")],
            },
        ];
        for u in seeds {
            let _ = self.create_user(u, None);
        }
    }

    /// Back to the configuration the emulator started with.
    pub(crate) fn reset(&mut self) {
        *self = State::new(self.config.clone());
    }

    pub(crate) fn now(&self) -> SystemTime {
        match self.clock_frozen_at {
            Some(t) => t.checked_add(self.clock_offset).unwrap_or(t),
            None => now_with(self.clock_offset),
        }
    }

    pub(crate) fn advance_clock(&mut self, by: Duration) {
        self.clock_offset = self.clock_offset.saturating_add(by);
    }

    pub(crate) fn clock_frozen(&self) -> bool {
        self.clock_frozen_at.is_some()
    }

    /// Freezes or thaws the clock. Thawing resumes from the frozen time, or from the
    /// real time when that is later (the clock never goes back).
    pub(crate) fn set_clock_frozen(&mut self, frozen: bool) {
        match (frozen, self.clock_frozen_at) {
            (true, None) => self.clock_frozen_at = Some(SystemTime::now()),
            (false, Some(_)) => {
                let stopped_at = self.now();
                self.clock_frozen_at = None;
                self.clock_offset = stopped_at
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
            }
            _ => {}
        }
    }

    // ----- rate limit and lifetimes ----------------------------------------------------

    pub(crate) fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }

    /// Sets or clears the limit; every client's windows start afresh.
    pub(crate) fn set_rate_limit(&mut self, limit: Option<RateLimit>) {
        self.rate_limit = limit;
        self.rate_log.clear();
    }

    /// Applies the rate limit to one request of `client_id` (registered clients only):
    /// `Some(retry_after_secs)` when it is over the limit, counted in the stats.
    pub(crate) fn rate_limited(&mut self, client_id: &str) -> Option<u64> {
        let limit = self.rate_limit?;
        if !self.clients.contains_key(client_id) {
            return None;
        }
        let now = self.now();
        let retry_after = self.rate_log.admit(limit, client_id, now).err()?;
        self.stats.rate_limited += 1;
        Some(retry_after)
    }

    /// The client an access token was issued to (expired and revoked tokens included).
    pub(crate) fn token_client(&self, token: &str) -> Option<&str> {
        self.access.get(token).map(|a| a.client_id.as_str())
    }

    pub(crate) fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// Lifetime of access tokens issued from now on (at least [`MIN_ACCESS_TTL`]).
    pub(crate) fn set_access_ttl(&mut self, ttl: Duration) {
        self.access_ttl = ttl.max(MIN_ACCESS_TTL);
    }

    // ----- clients -------------------------------------------------------------------

    pub(crate) fn register_client(&mut self, client: ClientConfig) {
        self.clients.insert(client.id.clone(), client);
    }

    pub(crate) fn add_redirect_uri(&mut self, client_id: &str, uri: &str) -> Result<(), MockError> {
        let c = self
            .clients
            .get_mut(client_id)
            .ok_or_else(|| MockError::UnknownClient(client_id.to_owned()))?;
        if !c.redirect_uris.iter().any(|u| u == uri) {
            c.redirect_uris.push(uri.to_owned());
        }
        Ok(())
    }

    /// Checks client credentials; `Err` is the `invalid_client` error.
    pub(crate) fn authenticate_client(&self, id: &str, secret: &str) -> Result<(), OAuthError> {
        match self.clients.get(id) {
            Some(c) if constant_eq(c.secret.as_bytes(), secret.as_bytes()) => Ok(()),
            _ => Err(OAuthError::bare(StatusCode::UNAUTHORIZED, "invalid_client")),
        }
    }

    pub(crate) fn redirect_registered(&self, client_id: &str, uri: &str) -> bool {
        self.clients
            .get(client_id)
            .is_some_and(|c| c.redirect_uris.iter().any(|u| u == uri))
    }

    // ----- users and profiles ----------------------------------------------------------

    pub(crate) fn create_user(
        &mut self,
        u: NewUser,
        registration_code: Option<(String, String)>,
    ) -> Result<CreatedUser, MockError> {
        let email = u.email.trim().to_owned();
        if !valid_email(&email) {
            return Err(MockError::InvalidInput(format!("invalid email {email:?}")));
        }
        if self.user_by_email(&email).is_some() {
            return Err(MockError::UserExists(email));
        }
        let now = self.now();
        let id = self.next_user_id;
        self.next_user_id += 1;
        let mut profile_ids = Vec::new();
        for p in u.profiles {
            let pid = self.next_profile_id;
            self.next_profile_id += 1;
            self.profiles.push(Profile {
                id: pid,
                user_id: id,
                kind: p.kind,
                name: p.name,
                public_id: uuid(),
                created_at: now,
            });
            profile_ids.push(pid);
        }
        let personal_name = profile_ids
            .iter()
            .filter_map(|pid| self.profile(*pid))
            .find(|p| p.kind == ProfileKind::Personal)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| email.split('@').next().unwrap_or("User").to_owned());
        let mut parts = personal_name.splitn(2, ' ');
        let first_name = parts.next().unwrap_or("").to_owned();
        let last_name = parts.next().unwrap_or("").to_owned();
        self.users.push(User {
            id,
            email,
            password: u.password,
            two_factor: u.two_factor,
            profiles: profile_ids.clone(),
            registration_code,
            reclaimed: false,
            first_name,
            last_name,
        });
        Ok(CreatedUser {
            user_id: id,
            profile_ids,
        })
    }

    pub(crate) fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email.trim()))
    }

    fn user_id_by_email(&self, email: &str) -> Result<u64, MockError> {
        self.user_by_email(email)
            .map(|u| u.id)
            .ok_or_else(|| MockError::UnknownUser(email.to_owned()))
    }

    pub(crate) fn user(&self, id: u64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    fn user_mut(&mut self, id: u64) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.id == id)
    }

    pub(crate) fn profile(&self, id: u64) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.id == id)
    }

    pub(crate) fn profile_ids(&self, email: &str) -> Vec<u64> {
        self.user_by_email(email)
            .map(|u| u.profiles.clone())
            .unwrap_or_default()
    }

    /// Checks email and password; returns the user id.
    pub(crate) fn login(&self, email: &str, password: &str) -> Option<u64> {
        self.user_by_email(email)
            .filter(|u| constant_eq(u.password.as_bytes(), password.as_bytes()))
            .map(|u| u.id)
    }

    // ----- user actions --------------------------------------------------------------

    fn set_refresh_status(&mut self, user_id: u64, status: RefreshStatus) {
        for r in self.refresh.values_mut() {
            // An email change marks every token of the user (refresh then answers 403).
            let applies =
                r.status == RefreshStatus::Active || status == RefreshStatus::EmailChanged;
            if r.user_id == user_id && applies {
                r.status = status;
            }
        }
    }

    fn revoke_access(&mut self, user_id: u64) {
        for a in self.access.values_mut() {
            if matches!(a.owner, Owner::User { user_id: u, .. } if u == user_id) {
                a.revoked = true;
            }
        }
    }

    /// The user reclaims the account: the registration code is dead and refresh tokens are revoked.
    pub(crate) fn reclaim(&mut self, email: &str) -> Result<(), MockError> {
        let id = self.user_id_by_email(email)?;
        if let Some(u) = self.user_mut(id) {
            u.reclaimed = true;
        }
        self.set_refresh_status(id, RefreshStatus::Revoked);
        Ok(())
    }

    /// The user revokes the app: every token is dead.
    pub(crate) fn revoke(&mut self, email: &str) -> Result<(), MockError> {
        let id = self.user_id_by_email(email)?;
        self.set_refresh_status(id, RefreshStatus::Revoked);
        self.revoke_access(id);
        Ok(())
    }

    /// The user changes email: every token is revoked and refresh answers 403.
    pub(crate) fn change_email(&mut self, email: &str, new_email: &str) -> Result<(), MockError> {
        let id = self.user_id_by_email(email)?;
        if !valid_email(new_email) {
            return Err(MockError::InvalidInput(format!(
                "invalid email {new_email:?}"
            )));
        }
        if self.user_by_email(new_email).is_some_and(|u| u.id != id) {
            return Err(MockError::UserExists(new_email.to_owned()));
        }
        if let Some(u) = self.user_mut(id) {
            u.email = new_email.trim().to_owned();
        }
        self.set_refresh_status(id, RefreshStatus::EmailChanged);
        self.revoke_access(id);
        Ok(())
    }

    pub(crate) fn enable_2fa(&mut self, email: &str) -> Result<(), MockError> {
        let id = self.user_id_by_email(email)?;
        if let Some(u) = self.user_mut(id) {
            u.two_factor = true;
        }
        Ok(())
    }

    /// "Enhanced security": 2FA on and refresh tokens revoked.
    pub(crate) fn enhanced_security(&mut self, email: &str) -> Result<(), MockError> {
        self.enable_2fa(email)?;
        let id = self.user_id_by_email(email)?;
        self.set_refresh_status(id, RefreshStatus::Revoked);
        Ok(())
    }

    // ----- authorize sessions and codes -----------------------------------------------

    pub(crate) fn new_session(&mut self, params: AuthParams) -> String {
        let now = self.now();
        self.sessions.retain(|_, s| s.expires_at > now);
        let sid = random_code(32);
        self.sessions.insert(
            sid.clone(),
            AuthSession {
                params,
                stage: Stage::Login,
                expires_at: now + SESSION_TTL,
            },
        );
        sid
    }

    pub(crate) fn session(&self, sid: &str) -> Option<&AuthSession> {
        let now = self.now();
        self.sessions.get(sid).filter(|s| s.expires_at > now)
    }

    pub(crate) fn set_stage(&mut self, sid: &str, stage: Stage) {
        if let Some(s) = self.sessions.get_mut(sid) {
            s.stage = stage;
        }
    }

    pub(crate) fn end_session(&mut self, sid: &str) {
        self.sessions.remove(sid);
    }

    pub(crate) fn issue_code(
        &mut self,
        params: &AuthParams,
        user_id: u64,
        profile_id: u64,
    ) -> String {
        let now = self.now();
        self.codes.retain(|_, c| c.expires_at > now && !c.used);
        let code = random_code(12);
        self.codes.insert(
            code.clone(),
            CodeRecord {
                client_id: params.client_id.clone(),
                redirect_uri: params.redirect_uri.clone(),
                user_id,
                profile_id,
                expires_at: now + CODE_TTL,
                pkce: params.pkce.clone(),
                used: false,
            },
        );
        code
    }

    // ----- grants ----------------------------------------------------------------------

    pub(crate) fn grant_client_credentials(&mut self, client_id: &str) -> Value {
        let now = self.now();
        let at = uuid();
        let exp = now + self.access_ttl;
        self.access.insert(
            at.clone(),
            AccessRecord {
                client_id: client_id.to_owned(),
                owner: Owner::App,
                expires_at: exp,
                revoked: false,
            },
        );
        json!({
            "access_token": at,
            "token_type": "bearer",
            "expires_in": secs_between(exp, now),
            "expires_at": fmt_millis(exp),
            "scope": "transfers",
        })
    }

    pub(crate) fn grant_authorization_code(
        &mut self,
        client_id: &str,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> Result<Value, OAuthError> {
        let now = self.now();
        let rec = self
            .codes
            .get_mut(code)
            .ok_or_else(|| OAuthError::invalid_grant("Invalid authorization code"))?;
        if rec.used {
            return Err(OAuthError::invalid_grant(
                "Authorization code has already been used",
            ));
        }
        if rec.expires_at <= now {
            return Err(OAuthError::invalid_grant("Authorization code has expired"));
        }
        if rec.client_id != client_id {
            return Err(OAuthError::invalid_grant(
                "Authorization code was issued to another client",
            ));
        }
        if rec.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant("Redirect URI mismatch"));
        }
        if let Some(pkce) = &rec.pkce {
            let Some(v) = verifier else {
                return Err(OAuthError::invalid_grant("Missing code_verifier"));
            };
            if !pkce_matches(pkce, v) {
                return Err(OAuthError::invalid_grant("PKCE verification failed"));
            }
        }
        rec.used = true;
        let (user_id, profile_id) = (rec.user_id, rec.profile_id);
        Ok(self.new_link_tokens(client_id, user_id, profile_id))
    }

    pub(crate) fn grant_registration_code(
        &mut self,
        client_id: &str,
        email: &str,
        registration_code: &str,
    ) -> Result<Value, OAuthError> {
        let bad = || {
            OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_grant",
                "Invalid user credentials.",
            )
        };
        let user = self.user_by_email(email).ok_or_else(bad)?;
        let ok = match &user.registration_code {
            Some((cid, rc)) => {
                cid == client_id && constant_eq(rc.as_bytes(), registration_code.as_bytes())
            }
            None => false,
        };
        if !ok || user.reclaimed {
            return Err(bad());
        }
        let (user_id, profile_id) = (user.id, user.profiles.first().copied().unwrap_or(0));
        Ok(self.new_link_tokens(client_id, user_id, profile_id))
    }

    pub(crate) fn grant_refresh(
        &mut self,
        client_id: &str,
        token: &str,
    ) -> Result<Value, OAuthError> {
        let now = self.now();
        let rec = self
            .refresh
            .get(token)
            .cloned()
            .ok_or_else(|| OAuthError::invalid_grant("Invalid refresh token"))?;
        if rec.client_id != client_id {
            return Err(OAuthError::invalid_grant(
                "Refresh token was issued to another client",
            ));
        }
        match rec.status {
            RefreshStatus::Active => {}
            RefreshStatus::EmailChanged => {
                return Err(OAuthError::new(
                    StatusCode::FORBIDDEN,
                    "invalid_grant",
                    "All tokens were revoked because the user changed their email",
                ))
            }
            RefreshStatus::Revoked | RefreshStatus::Replaced => {
                return Err(OAuthError::invalid_grant("Refresh token has been revoked"))
            }
        }
        if rec.expires_at <= now {
            return Err(OAuthError::invalid_grant("Refresh token has expired"));
        }
        if let Some(old) = &rec.last_access {
            if let Some(a) = self.access.get_mut(old) {
                a.revoked = true;
            }
        }
        let (at, at_exp) = self.mint_user_access(client_id, rec.user_id, rec.profile_id, now);
        let (rt, rt_exp) = if self.rotate {
            if let Some(r) = self.refresh.get_mut(token) {
                r.status = RefreshStatus::Replaced;
            }
            let rt = uuid();
            let exp = now + REFRESH_TTL;
            self.refresh.insert(
                rt.clone(),
                RefreshRecord {
                    client_id: client_id.to_owned(),
                    user_id: rec.user_id,
                    profile_id: rec.profile_id,
                    expires_at: exp,
                    status: RefreshStatus::Active,
                    last_access: Some(at.clone()),
                },
            );
            (rt, exp)
        } else {
            if let Some(r) = self.refresh.get_mut(token) {
                r.last_access = Some(at.clone());
            }
            (token.to_owned(), rec.expires_at)
        };
        let link = self
            .links
            .entry((client_id.to_owned(), rec.user_id, rec.profile_id))
            .or_default();
        link.access_token = Some(at.clone());
        link.refresh_token = Some(rt.clone());
        Ok(user_token_body(&at, at_exp, now, &rt, rt_exp))
    }

    fn mint_user_access(
        &mut self,
        client_id: &str,
        user_id: u64,
        profile_id: u64,
        now: SystemTime,
    ) -> (String, SystemTime) {
        let at = uuid();
        let exp = now + self.access_ttl;
        self.access.insert(
            at.clone(),
            AccessRecord {
                client_id: client_id.to_owned(),
                owner: Owner::User {
                    user_id,
                    profile_id,
                },
                expires_at: exp,
                revoked: false,
            },
        );
        (at, exp)
    }

    /// A code or registration grant: new access and refresh token; the link's old refresh
    /// token dies, its last access token lives on.
    fn new_link_tokens(&mut self, client_id: &str, user_id: u64, profile_id: u64) -> Value {
        let now = self.now();
        let key = (client_id.to_owned(), user_id, profile_id);
        if let Some(old) = self.links.get(&key).and_then(|l| l.refresh_token.clone()) {
            if let Some(r) = self.refresh.get_mut(&old) {
                if r.status == RefreshStatus::Active {
                    r.status = RefreshStatus::Replaced;
                }
            }
        }
        let (at, at_exp) = self.mint_user_access(client_id, user_id, profile_id, now);
        let rt = uuid();
        let rt_exp = now + REFRESH_TTL;
        self.refresh.insert(
            rt.clone(),
            RefreshRecord {
                client_id: client_id.to_owned(),
                user_id,
                profile_id,
                expires_at: rt_exp,
                status: RefreshStatus::Active,
                last_access: Some(at.clone()),
            },
        );
        self.links.insert(
            key,
            Link {
                access_token: Some(at.clone()),
                refresh_token: Some(rt.clone()),
            },
        );
        user_token_body(&at, at_exp, now, &rt, rt_exp)
    }

    // ----- token checks ---------------------------------------------------------------

    pub(crate) fn access_valid(&self, token: &str) -> Option<&AccessRecord> {
        let now = self.now();
        self.access
            .get(token)
            .filter(|a| !a.revoked && a.expires_at > now)
    }

    pub(crate) fn refresh_valid(&self, token: &str) -> bool {
        let now = self.now();
        self.refresh
            .get(token)
            .is_some_and(|r| r.status == RefreshStatus::Active && r.expires_at > now)
    }

    pub(crate) fn user_tokens(&self, email: &str) -> Vec<IssuedTokens> {
        let Some(user) = self.user_by_email(email) else {
            return Vec::new();
        };
        self.links
            .iter()
            .filter(|((_, uid, _), _)| *uid == user.id)
            .filter_map(|((cid, _, pid), link)| {
                let access_token = link
                    .access_token
                    .clone()
                    .filter(|t| self.access_valid(t).is_some());
                let refresh_token = link.refresh_token.clone().filter(|t| self.refresh_valid(t));
                (access_token.is_some() || refresh_token.is_some()).then(|| IssuedTokens {
                    client_id: cid.clone(),
                    profile_id: *pid,
                    access_token,
                    refresh_token,
                })
            })
            .collect()
    }

    // ----- claim account -------------------------------------------------------------

    pub(crate) fn new_claim_code(&mut self, user_id: u64) -> String {
        let now = self.now();
        self.claim_codes.retain(|_, (_, exp)| *exp > now);
        let code = random_code(24);
        self.claim_codes
            .insert(code.clone(), (user_id, now + CLAIM_TTL));
        code
    }

    /// Whether the registration code matches the user's (true when the user has none).
    pub(crate) fn registration_code_matches(&self, user_id: u64, code: &str) -> bool {
        match self
            .user(user_id)
            .and_then(|u| u.registration_code.as_ref())
        {
            Some((_, rc)) => constant_eq(rc.as_bytes(), code.as_bytes()),
            None => true,
        }
    }
}

fn user_token_body(
    at: &str,
    exp: SystemTime,
    now: SystemTime,
    rt: &str,
    rt_exp: SystemTime,
) -> Value {
    json!({
        "access_token": at,
        "token_type": "bearer",
        "refresh_token": rt,
        "expires_in": secs_between(exp, now),
        "expires_at": fmt_millis(exp),
        "refresh_token_expires_in": secs_between(rt_exp, now),
        "refresh_token_expires_at": fmt_millis(rt_exp),
        "scope": "transfers",
        "created_at": fmt_nanos(now),
    })
}

fn pkce_matches(pkce: &Pkce, verifier: &str) -> bool {
    use base64::Engine as _;
    use sha2::Digest as _;
    let computed = match pkce.method {
        PkceMethod::Plain => verifier.to_owned(),
        PkceMethod::S256 => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes())),
    };
    constant_eq(computed.as_bytes(), pkce.challenge.as_bytes())
}

/// Length-independent comparison that does not stop at the first difference.
pub(crate) fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A plausible email: one `@`, something on both sides, a dot in the domain, no spaces.
pub(crate) fn valid_email(e: &str) -> bool {
    let e = e.trim();
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && e.len() <= 254
}
