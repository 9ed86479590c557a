//! Framework-neutral parts of the demo app.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wise_oauth::{
    ClientSecret, Clock, Environment, LinkView, ProfileId, UserId, WiseConfig, WiseOAuth,
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
}

impl Demo {
    pub(crate) fn new(wise: WiseOAuth) -> Arc<Self> {
        let api_base = wise
            .config()
            .api_url()
            .as_str()
            .trim_end_matches('/')
            .to_owned();
        Arc::new(Demo {
            wise,
            api_base,
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

    /// `GET /v2/profiles/{id}` with the user's token: `Ok(None)` on a 401 (token
    /// rejected), `Err` on anything else unexpected.
    pub(crate) async fn fetch_profile(
        &self,
        token: &str,
        profile: ProfileId,
    ) -> Result<Option<serde_json::Value>, String> {
        let url = format!("{}/v2/profiles/{}", self.api_base, profile);
        let res = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|_| "Wise cannot be reached".to_owned())?;
        match res.status().as_u16() {
            200 => res
                .json()
                .await
                .map(Some)
                .map_err(|_| "unexpected answer from Wise".to_owned()),
            401 => Ok(None),
            code => Err(format!("Wise answered {code}")),
        }
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

/// Starts the emulator and builds the library against it. `app_base` is
/// `http://127.0.0.1:PORT`; its `/wise/callback` is registered with the emulator.
pub(crate) async fn emulator_backend(app_base: &str) -> (WiseOAuth, MockWiseHandle) {
    let emulator = MockWise::builder()
        .start()
        .await
        .expect("start the emulator");
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
    let wise = WiseOAuth::builder(config)
        .clock(EmulatorClock(emulator.clone()))
        .build()
        .expect("wise-oauth");
    (wise, emulator)
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

fn when(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{secs} (unix time)")
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

/// The page showing the linked profile.
pub(crate) fn profile_page(profile_id: ProfileId, profile: &serde_json::Value) -> String {
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
    layout(
        "Your Wise profile",
        &format!(
            "<div class=\"card\"><dl><dt>Name</dt><dd class=\"name\">{}</dd>\
<dt>Profile id</dt><dd>{profile_id}</dd><dt>Type</dt><dd>{}</dd></dl></div>\
<p><a href=\"/\">Back home</a></p>",
            esc(name.trim()),
            esc(&field("type")),
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
