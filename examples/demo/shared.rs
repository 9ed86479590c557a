//! Framework-neutral parts of the demo app.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wise_oauth::redis::RedisTokenStore;
use wise_oauth::sqlx::{PostgresTokenStore, SqliteTokenStore};
use wise_oauth::{
    Balance, ClientError, ClientSecret, Clock, EncryptionKeys, Environment, InvalidKeys, LinkView,
    PendingStore, ProfileId, Statement, StatementQuery, TokenStore, UserId, WiseClient, WiseConfig,
    WiseOAuth, WiseOAuthBuilder,
};
use wise_oauth_mock::{MockWise, MockWiseHandle, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};

/// The demo's session cookie.
pub(crate) const SESSION_COOKIE: &str = "demo_session";
/// The mobile deep link registered for the emulator's demo client.
pub(crate) const MOBILE_REDIRECT_URI: &str = "wiseoauthdemo://wise/callback";

/// The library's clock follows the emulator's, so advancing the emulator clock makes the
/// app see its tokens expire too.
#[derive(Debug, Clone)]
pub(crate) struct EmulatorClock(pub(crate) MockWiseHandle);

impl Clock for EmulatorClock {
    fn now(&self) -> SystemTime {
        self.0.now()
    }
}

/// Everything the demo pages need.
#[derive(Debug)]
pub(crate) struct Demo {
    pub(crate) wise: WiseOAuth,
    /// Base URL of the Wise API (the emulator or Wise).
    pub(crate) api_base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) sessions: Sessions,
    /// The demo runs against the embedded emulator (environment `emulator`), whose control
    /// API can approve an SCA challenge in the user's place.
    pub(crate) on_emulator: bool,
}

/// The demo's Prometheus exporter (with `--features metrics`): the process's global
/// `metrics` recorder, installed by the first [`Demo::new`]. `None` when another recorder
/// was installed first.
#[cfg(feature = "metrics")]
fn prometheus() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// The body of `GET /metrics` (Prometheus text format 0.0.4), or `None` without an
/// exporter. Histogram upkeep runs at each scrape.
#[cfg(feature = "metrics")]
pub(crate) fn metrics_text() -> Option<String> {
    let handle = prometheus()?;
    handle.run_upkeep();
    Some(handle.render())
}

/// The content type of [`metrics_text`].
#[cfg(feature = "metrics")]
pub(crate) const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Demo {
    pub(crate) fn new(wise: WiseOAuth) -> Arc<Self> {
        #[cfg(feature = "metrics")]
        let _ = prometheus();
        let api_base = wise
            .config()
            .api_url()
            .as_str()
            .trim_end_matches('/')
            .to_owned();
        let on_emulator = wise.config().environment().name() == "emulator";
        Arc::new(Demo {
            wise,
            api_base,
            on_emulator,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(15))
                .build()
                .expect("HTTP client"),
            sessions: Sessions::default(),
        })
    }

    /// The user of a `Cookie` header, if it carries a known demo session.
    pub(crate) fn user_from_cookies(&self, cookie_header: &str) -> Option<UserId> {
        cookie_header
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(name, _)| *name == SESSION_COOKIE)
            .and_then(|(_, value)| self.sessions.user(value))
    }
}

/// In-memory demo sessions: random id → user.
#[derive(Debug, Default)]
pub(crate) struct Sessions(Mutex<HashMap<String, UserId>>);

impl Sessions {
    /// Starts a session; returns the `Set-Cookie` value.
    pub(crate) fn login(&self, user: UserId) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.0.lock().expect("sessions").insert(id.clone(), user);
        format!("{SESSION_COOKIE}={id}; HttpOnly; SameSite=Lax; Path=/")
    }

    fn user(&self, id: &str) -> Option<UserId> {
        self.0.lock().expect("sessions").get(id).cloned()
    }

    /// The `Set-Cookie` value that ends the session cookie.
    pub(crate) fn logout_cookie() -> String {
        format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0")
    }
}

/// A demo user name: 1 to 64 letters, digits, `-`, `_`, `.` or `@`.
pub(crate) fn demo_user(name: &str) -> Option<UserId> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    ok.then(|| UserId::new(name).ok()).flatten()
}

/// A short, non-reversible fingerprint of an access token (never show the token itself).
pub(crate) fn fingerprint(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The demo's fixed key for encryption at rest when `WISE_TOKEN_KEYS` is unset. It is in
/// the source code, so it protects nothing: demo data only. (The library itself never
/// defaults a key.)
const DEMO_ONLY_KEY: [u8; 32] = *b"wise-oauth-demo-key-NOT-A-SECRET";

/// Where the demo keeps links and link flows: `DATABASE_URL` (`sqlite:`, `postgres:` or
/// `redis:`)
/// or, when unset, memory (lost on restart).
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    tokens: Arc<dyn TokenStore>,
    pending: Arc<dyn PendingStore>,
    /// `memory`, `SQLite`, `PostgreSQL` or `Redis`.
    pub(crate) kind: &'static str,
}

impl Storage {
    /// The in-memory stores.
    pub(crate) fn memory() -> Storage {
        Storage {
            tokens: Arc::new(wise_oauth::MemoryTokenStore::default()),
            pending: Arc::new(wise_oauth::MemoryPendingStore::default()),
            kind: "memory",
        }
    }

    /// A durable store used for both links and link flows.
    pub(crate) fn durable<S: TokenStore + PendingStore + Clone>(
        kind: &'static str,
        store: S,
    ) -> Storage {
        Storage {
            tokens: Arc::new(store.clone()),
            pending: Arc::new(store),
            kind,
        }
    }

    /// Opens `sqlite:...`, `postgres://...` (tables created on first use) or `redis://...`.
    pub(crate) async fn connect(url: &str) -> Result<Storage, String> {
        if url.starts_with("sqlite:") {
            let store = SqliteTokenStore::connect(url)
                .await
                .map_err(|e| format!("DATABASE_URL (SQLite): {e}"))?;
            Ok(Storage::durable("SQLite", store))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let store = PostgresTokenStore::connect(url)
                .await
                .map_err(|e| format!("DATABASE_URL (PostgreSQL): {e}"))?;
            Ok(Storage::durable("PostgreSQL", store))
        } else if url.starts_with("redis:") || url.starts_with("rediss:") {
            let store = RedisTokenStore::connect(url)
                .await
                .map_err(|e| format!("DATABASE_URL (Redis): {e}"))?;
            Ok(Storage::durable("Redis", store))
        } else {
            Err("DATABASE_URL must start with sqlite:, postgres:// or redis://".to_owned())
        }
    }

    /// From `DATABASE_URL`; memory when it is unset or empty.
    pub(crate) async fn from_env() -> Result<Storage, String> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Storage::connect(&url).await,
            _ => Ok(Storage::memory()),
        }
    }

    pub(crate) fn is_durable(&self) -> bool {
        self.kind != "memory"
    }

    /// Puts the stores on `builder`, with encryption at rest: the keys of
    /// `WISE_TOKEN_KEYS` when set; otherwise, for a durable store only, the demo-only key
    /// (with a loud warning).
    pub(crate) fn apply(&self, builder: WiseOAuthBuilder) -> Result<WiseOAuthBuilder, String> {
        let builder = builder
            .store(self.tokens.clone())
            .pending_store(self.pending.clone());
        match EncryptionKeys::from_env() {
            Ok(keys) => Ok(builder.encryption(keys)),
            Err(InvalidKeys::NotSet { .. }) if self.is_durable() => {
                eprintln!(
                    "\n  WARNING: WISE_TOKEN_KEYS is not set: tokens in the {} store are \
                     encrypted with a\n  fixed DEMO-ONLY key that is public in the source \
                     code. Never use it for real data;\n  set WISE_TOKEN_KEYS=\"k1:<32 random \
                     bytes in base64>\" (e.g. k1:$(openssl rand -base64 32)).\n",
                    self.kind
                );
                Ok(builder.encryption(EncryptionKeys::new().key("demo-only", DEMO_ONLY_KEY)))
            }
            Err(InvalidKeys::NotSet { .. }) => Ok(builder),
            Err(e) => Err(format!("WISE_TOKEN_KEYS: {e}")),
        }
    }
}

/// Starts the emulator and builds the library against it, with the in-memory stores.
/// `app_base` is `http://127.0.0.1:PORT`; its `/wise/callback` is registered with the
/// emulator.
pub(crate) async fn emulator_backend(app_base: &str) -> (WiseOAuth, MockWiseHandle) {
    let emulator = MockWise::builder()
        .start()
        .await
        .expect("start the emulator");
    let wise = emulator_wise(app_base, &emulator, &Storage::memory()).expect("wise-oauth");
    (wise, emulator)
}

/// Builds the library against a running `emulator` (registering `app_base`'s callback with
/// it) on `storage`.
pub(crate) fn emulator_wise(
    app_base: &str,
    emulator: &MockWiseHandle,
    storage: &Storage,
) -> Result<WiseOAuth, String> {
    let redirect_uri = format!("{app_base}/wise/callback");
    emulator.register_redirect_uri(DEMO_CLIENT_ID, &redirect_uri);
    let environment =
        Environment::custom("emulator", &emulator.base_url(), &emulator.authorize_url())
            .expect("emulator URLs");
    let config = WiseConfig::builder(
        DEMO_CLIENT_ID,
        ClientSecret::new(DEMO_CLIENT_SECRET),
        redirect_uri,
    )
    .environment(environment)
    .mobile_redirect_uri(MOBILE_REDIRECT_URI)
    .build()
    .expect("emulator configuration");
    // The emulator signs its webhooks (`POST /wise/webhooks`) with a test key of its own.
    let emulator_key = wise_oauth::WebhookKey::from_pem(wise_oauth_mock::WEBHOOK_PUBLIC_KEY_PEM)
        .expect("the emulator's webhook key");
    let builder = WiseOAuth::builder(config)
        .clock(EmulatorClock(emulator.clone()))
        .webhook_keys([emulator_key]);
    storage
        .apply(builder)?
        .build()
        .map_err(|e| format!("wise-oauth: {e}"))
}

/// Minimal HTML escaping for the demo pages.
pub(crate) fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}}\
h1{{font-size:1.5rem}}.card{{border:1px solid #ddd;border-radius:.5rem;padding:1rem 1.25rem;margin:1rem 0}}\
button{{background:#9fe870;border:0;border-radius:2rem;padding:.5rem 1.1rem;font-weight:600;cursor:pointer}}\
button.secondary{{background:#eee}}form{{display:inline}}input{{padding:.4rem;margin-right:.4rem}}\
a{{color:#163300}}dt{{font-weight:600}}dd{{margin:0 0 .5rem}}</style></head>\
<body><h1>{title}</h1>{body}</body></html>\n",
        title = esc(title)
    )
}

/// `2026-11-26 23:19:07 UTC`.
fn when(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(&format)
        .unwrap_or_else(|_| "an unknown time".to_owned())
}

/// The home page. `status` is `Err(message)` when it could not be read.
pub(crate) fn home_page(
    user: Option<&UserId>,
    status: Result<Option<LinkView>, String>,
    prefix: &str,
) -> String {
    let Some(user) = user else {
        return layout(
            "Wise OAuth demo",
            "<div class=\"card\"><p>Log in to the demo app with any name.</p>\
<form method=\"get\" action=\"/demo/login\"><input name=\"user\" value=\"alice\" \
pattern=\"[A-Za-z0-9@._-]{1,64}\" required><button>Log in</button></form></div>",
        );
    };
    let link = match status {
        Ok(Some(view)) if view.relink_required => format!(
            "<p>Your Wise link to profile <b>{}</b> was revoked or expired.</p>\
<form method=\"get\" action=\"{prefix}/connect\"><button>Connect again</button></form> {}",
            view.profile_id,
            disconnect_button(prefix)
        ),
        Ok(Some(view)) => format!(
            "<p>Linked to Wise profile <b>{}</b>; the access token expires at {}.</p>\
<p><a href=\"/profile\">Show my Wise profile</a> · <a href=\"{prefix}/status\">status JSON</a></p>{}",
            view.profile_id,
            when(view.expires_at),
            disconnect_button(prefix)
        ),
        Ok(None) => format!(
            "<p>No Wise account linked yet.</p>\
<form method=\"get\" action=\"{prefix}/connect\"><input type=\"hidden\" name=\"return_to\" value=\"/profile\">\
<button>Connect Wise</button></form>"
        ),
        Err(message) => format!("<p>Link status unavailable: {}</p>", esc(&message)),
    };
    layout(
        "Wise OAuth demo",
        &format!(
            "<div class=\"card\"><p>Logged in as <b>{}</b>.</p>\
<form method=\"post\" action=\"/demo/logout\"><button class=\"secondary\">Log out</button></form></div>\
<div class=\"card\">{link}</div>",
            esc(user.as_str())
        ),
    )
}

fn disconnect_button(prefix: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{prefix}/disconnect?return_to=/\">\
<button class=\"secondary\">Disconnect</button></form>"
    )
}

/// What a demo page handler answers, for the adapters to turn into their response type.
pub(crate) enum Answer {
    /// An HTML page with this status.
    Page(u16, String),
    /// `303 See Other` to this location (e.g. into the link flow).
    Redirect(String),
}

/// Where a page sends a user whose link Wise no longer accepts (`return_to` is one of the
/// demo's plain paths): the plugin's connect route,
/// back to `return_to` afterwards.
fn connect_again(return_to: &str) -> Answer {
    let query = format!("return_to={}", return_to.replace('/', "%2F"));
    Answer::Redirect(format!("/wise/connect?{query}"))
}

/// A failed call to Wise as a page: into the link flow when the link must be made again,
/// a 503 when Wise asks to wait, a 502 otherwise.
fn failure(error: &ClientError, return_to: &str) -> Answer {
    if error.needs_relink() {
        return connect_again(return_to);
    }
    let status = if error.is_transient() { 503 } else { 502 };
    Answer::Page(status, error_page("Wise error", &error.to_string()))
}

/// A failed call to Wise as a JSON answer: 401 with the connect URL when the link must be
/// made again (as the plugin's own rejection), 503 when Wise asks to wait, 502 otherwise.
pub(crate) fn api_failure(error: &ClientError, return_to: &str) -> (u16, serde_json::Value) {
    if error.needs_relink() {
        let query = format!("return_to={}", return_to.replace('/', "%2F"));
        return (
            401,
            serde_json::json!({
                "error": "wise_relink_required",
                "connect_url": format!("/wise/connect?{query}"),
            }),
        );
    }
    let status = if error.is_transient() { 503 } else { 502 };
    (
        status,
        serde_json::json!({ "error": "wise_error", "message": error.to_string() }),
    )
}

/// `GET /v2/profiles/{id}` and the profile's balances through the user's client: the
/// current token on every call, a 401 repeated once with a newer token by the client.
pub(crate) async fn profile_and_balances(
    client: &WiseClient,
    profile: ProfileId,
) -> Result<(serde_json::Value, Vec<Balance>), ClientError> {
    let details = client
        .get::<serde_json::Value>(&format!("/v2/profiles/{profile}"))
        .await?;
    let balances = client.balances(profile, &["STANDARD"]).await?;
    Ok((details, balances))
}

/// `GET /profile`: the linked profile and its balances.
pub(crate) async fn profile_answer(client: &WiseClient, profile: ProfileId) -> Answer {
    match profile_and_balances(client, profile).await {
        Ok((details, balances)) => Answer::Page(200, profile_page(profile, &details, &balances)),
        Err(e) => failure(&e, "/profile"),
    }
}

/// The statement of the last 30 days that the demo asks for.
fn statement_query(currency: &str) -> StatementQuery {
    let end = SystemTime::now();
    StatementQuery::new(
        currency,
        end - std::time::Duration::from_secs(30 * 86_400),
        end,
    )
}

/// A balance and currency from the statement page's query or form, if well formed.
pub(crate) fn statement_params(params: &HashMap<String, String>) -> Option<(u64, String)> {
    let balance = params.get("balance")?.parse().ok()?;
    let currency = params.get("currency")?;
    let ok = currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase());
    ok.then(|| (balance, currency.clone()))
}

/// `GET /statement?balance=&currency=`: the first call of an SCA-protected endpoint. Wise
/// answers 403 with a one-time token until the user cleared the challenge: the page
/// explains it and (on the emulator) offers to approve it.
pub(crate) async fn statement_answer(
    demo: &Demo,
    client: &WiseClient,
    profile: ProfileId,
    balance: u64,
    currency: &str,
) -> Answer {
    match client
        .statement(profile, balance, &statement_query(currency))
        .await
    {
        Ok(statement) => Answer::Page(200, statement_page(currency, &statement, false)),
        Err(e) => match e.sca_one_time_token() {
            Some(ott) => Answer::Page(200, sca_page(demo, ott, balance, currency)),
            None => failure(&e, "/profile"),
        },
    }
}

/// `POST /statement/approve` (form: `ott`, `balance`, `currency`): clears the challenge at
/// the emulator (in place of the user approving in Wise's app), then repeats the call
/// with `x-2fa-approval: <one-time token>` through `with_sca_approval`.
pub(crate) async fn statement_approved_answer(
    demo: &Demo,
    client: &WiseClient,
    profile: ProfileId,
    params: &HashMap<String, String>,
) -> Answer {
    let (Some((balance, currency)), Some(ott)) = (statement_params(params), params.get("ott"))
    else {
        return Answer::Page(
            400,
            error_page("Statement", "Missing balance, currency or token."),
        );
    };
    let approving = match client.with_sca_approval(ott) {
        Ok(approving) => approving,
        Err(e) => return Answer::Page(400, error_page("Statement", &e.to_string())),
    };
    if !demo.on_emulator {
        return Answer::Page(
            400,
            error_page(
                "Statement",
                "Only the emulator can approve a challenge for the user.",
            ),
        );
    }
    if let Err(message) = demo.approve_at_emulator(ott).await {
        return Answer::Page(502, error_page("Emulator error", &message));
    }
    match approving
        .statement(profile, balance, &statement_query(&currency))
        .await
    {
        Ok(statement) => Answer::Page(200, statement_page(&currency, &statement, true)),
        Err(e) => failure(&e, "/profile"),
    }
}

impl Demo {
    /// `POST /__mock/sca/{ott}/approve` on the emulator's control API: what the user's
    /// approval in Wise's app does at Wise.
    async fn approve_at_emulator(&self, ott: &str) -> Result<(), String> {
        let url = format!("{}/__mock/sca/{ott}/approve", self.api_base);
        let res = self
            .http
            .post(url)
            .send()
            .await
            .map_err(|_| "the emulator cannot be reached".to_owned())?;
        match res.status().as_u16() {
            200 => Ok(()),
            code => Err(format!("the emulator answered {code}")),
        }
    }
}

/// The page showing the linked profile and its balances.
pub(crate) fn profile_page(
    profile_id: ProfileId,
    profile: &serde_json::Value,
    balances: &[Balance],
) -> String {
    let field = |name: &str| {
        profile
            .get(name)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_else(|| "-".to_owned())
    };
    let name = profile
        .get("fullName")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .or_else(|| {
            let d = profile.get("details")?;
            let first = d.get("firstName").and_then(|v| v.as_str()).unwrap_or("");
            let last = d.get("lastName").and_then(|v| v.as_str()).unwrap_or("");
            let company = d.get("name").and_then(|v| v.as_str());
            Some(company.map_or_else(|| format!("{first} {last}"), str::to_owned))
        })
        .unwrap_or_default();
    let rows: String = balances
        .iter()
        .map(|b| {
            format!(
                "<li class=\"balance\"><b>{}</b> {} · <a href=\"/statement?balance={}&amp;currency={}\">statement</a></li>",
                esc(b.amount.value()),
                esc(&b.currency),
                b.id,
                esc(&b.currency)
            )
        })
        .collect();
    let balances = if rows.is_empty() {
        "<p>No balances.</p>".to_owned()
    } else {
        format!("<ul>{rows}</ul><p>A statement needs strong customer authentication (SCA).</p>")
    };
    layout(
        "Your Wise profile",
        &format!(
            "<div class=\"card\"><dl><dt>Name</dt><dd class=\"name\">{}</dd>\
<dt>Profile id</dt><dd>{profile_id}</dd><dt>Type</dt><dd>{}</dd></dl></div>\
<div class=\"card\"><h2>Balances</h2>{balances}</div>\
<p><a href=\"/\">Back home</a></p>",
            esc(name.trim()),
            esc(&field("type")),
        ),
    )
}

/// The SCA challenge explained, with the approve button on the emulator.
fn sca_page(demo: &Demo, ott: &str, balance: u64, currency: &str) -> String {
    let action = if demo.on_emulator {
        format!(
            "<p>This demo runs against the Wise emulator, which can approve the challenge in \
your place:</p><form method=\"post\" action=\"/statement/approve\">\
<input type=\"hidden\" name=\"ott\" value=\"{}\"><input type=\"hidden\" name=\"balance\" value=\"{balance}\">\
<input type=\"hidden\" name=\"currency\" value=\"{}\"><button>Approve and show the statement</button></form>",
            esc(ott),
            esc(currency)
        )
    } else {
        "<p>Approve the request in the Wise app, then repeat the call with the one-time token \
(<code>WiseClient::with_sca_approval</code>).</p>"
            .to_owned()
    };
    layout(
        "Strong customer authentication",
        &format!(
            "<div class=\"card sca\"><p>Wise protects balance statements with strong customer \
authentication: it answered <b>403</b> with a one-time token (<code>x-2fa-approval</code>). \
Once you clear the challenge, the same call repeated with that token in \
<code>x-2fa-approval</code> succeeds.</p>{action}</div><p><a href=\"/profile\">Back to the profile</a></p>"
        ),
    )
}

/// The statement, after the SCA challenge was cleared (`approved`) or not needed.
fn statement_page(currency: &str, statement: &Statement, approved: bool) -> String {
    let lines: String = statement
        .transactions
        .iter()
        .map(|t| {
            format!(
                "<li class=\"transaction\">{} · {} {} · {}</li>",
                esc(&t.date),
                esc(t.amount.value()),
                esc(t.amount.currency()),
                esc(t.description().unwrap_or(&t.kind))
            )
        })
        .collect();
    let end = statement
        .end_of_statement_balance
        .as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string);
    let note = if approved {
        "<p>Approved: the call was repeated with the one-time token.</p>"
    } else {
        ""
    };
    layout(
        &format!("{currency} statement, last 30 days"),
        &format!(
            "{note}<div class=\"card statement\"><ul>{lines}</ul><p>End balance: <b>{}</b></p></div>\
<p><a href=\"/profile\">Back to the profile</a></p>",
            esc(&end)
        ),
    )
}

/// A plain error page.
pub(crate) fn error_page(title: &str, message: &str) -> String {
    layout(
        title,
        &format!("<p>{}</p><p><a href=\"/\">Back home</a></p>", esc(message)),
    )
}
