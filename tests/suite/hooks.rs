//! The app's hooks into the plugin (login URL, a failed link back into the app, the app's
//! own pages, an async user resolver), written once and run against each adapter's
//! "hooked app" over real HTTP on loopback.
//!
//! A hooked app serves, with the plugin routes under `/wise` set up with [`LOGIN_URL`],
//! `error_redirect(true)`, [`TestPages`] and an async resolver over [`Sessions`]:
//! `GET /login?user=NAME&next=PATH` (starts a session: cookie `sid`, 303 to `next`),
//! `GET /login` (the login page) and `GET /must` (takes `WiseToken`, answers the profile id).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;
use wise_oauth::web::{escape_html, Page, Pages};
use wise_oauth::UserId;

use super::browser::{header, location, query_param, Browser};
use super::TestApp;

/// The hooked app's login URL.
pub(crate) const LOGIN_URL: &str = "/login?next={return_to}";

const ALICE: &str = "alice@example.com";
const PERSONAL: u64 = 30000000;

/// The hooked app's pages: each one says whose page it is and why it is shown.
pub(crate) struct TestPages;

impl Pages for TestPages {
    fn render(&self, page: &Page<'_>) -> String {
        let link = page
            .link()
            .map(|(href, _)| format!("<a href=\"{}\">Weiter</a>", escape_html(href)))
            .unwrap_or_default();
        format!(
            "<!doctype html><html lang=\"de\"><p id=\"app-page\" data-reason=\"{}\">Eigene Seite: \
             {}</p>{link}</html>",
            page.reason(),
            escape_html(page.title()),
        )
    }
}

/// The hooked app's session store: session id to user, read through an `.await`.
#[derive(Clone, Default)]
pub(crate) struct Sessions(Arc<tokio::sync::RwLock<HashMap<String, String>>>);

impl Sessions {
    /// Starts a session for `user`; returns its id (the `sid` cookie).
    pub(crate) async fn start(&self, user: &str) -> String {
        let sid = format!("sid-{}", uuid::Uuid::new_v4().simple());
        self.0.write().await.insert(sid.clone(), user.to_owned());
        sid
    }

    /// The async resolver: the `sid` cookie of a `Cookie` header, looked up after an
    /// `.await`.
    pub(crate) fn resolve(
        &self,
        cookie_header: Option<&str>,
    ) -> impl Future<Output = Option<UserId>> + Send + 'static {
        let sid = cookie_header.and_then(|c| {
            c.split(';')
                .find_map(|kv| kv.trim().strip_prefix("sid="))
                .map(str::to_owned)
        });
        let sessions = self.0.clone();
        async move {
            tokio::task::yield_now().await;
            let user = sessions.read().await.get(&sid?)?.clone();
            UserId::new(user).ok()
        }
    }
}

/// The page of the hooked app's own pages, if the body is one.
fn app_page_reason(body: &str) -> Option<String> {
    let start = body.find("id=\"app-page\" data-reason=\"")? + 27;
    let end = body[start..].find('"')? + start;
    Some(body[start..end].to_owned())
}

async fn logged_in(app: &TestApp, user: &str) -> Browser {
    let b = Browser::new(app);
    let res = b.get_html(&format!("/login?user={user}&next=/")).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "hooked app login");
    b
}

/// Without a session, a browser GET goes to the app's login URL and comes back where it
/// was; the callback never carries its code and state to the login page; API clients get
/// the login URL in the 401; other browser requests get the app's 401 page linking to it.
pub(crate) async fn logged_out_users_are_sent_to_the_login_url(app: &TestApp) {
    let b = Browser::new(app);
    let res = b.get_html("/must?x=1").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login?next=%2Fmust%3Fx%3D1");

    let res = b.get_html("/wise/connect?return_to=%2Fsettings").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        "/login?next=%2Fwise%2Fconnect%3Freturn_to%3D%252Fsettings"
    );

    let res = b.get_html("/wise/callback?code=secret-code&state=s1").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login?next=%2Fwise%2Fconnect");
    assert_eq!(header(&res, "referrer-policy"), Some("no-referrer"));

    let res = b.get_json("/wise/status").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "not_logged_in");
    assert_eq!(body["login_url"], "/login?next=%2Fwise%2Fstatus");

    // A browser form post cannot be repeated after a login: a 401 page links to the login.
    let res = b
        .client
        .post(b.url("/wise/disconnect"))
        .header("accept", "text/html")
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let page = res.text().await.unwrap();
    assert_eq!(app_page_reason(&page).as_deref(), Some("not_logged_in"));
    assert!(page.contains("href=\"/login?next=%2F\""), "{page}");

    // Logging in at the login URL brings the user back to where they were.
    let res = b.get_html("/login?user=lena&next=%2Fwise%2Fstatus").await;
    assert_eq!(location(&res), "/wise/status");
    let res = b.get_json("/wise/status").await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// A declined consent lands back in the app with a machine-readable reason, at the flow's
/// `return_to`; a callback that cannot be tied to the user's flow lands on `/`; nothing is
/// linked.
pub(crate) async fn failed_link_returns_to_the_app_with_the_reason(app: &TestApp) {
    let b = logged_in(app, "mia").await;
    let authorize = b.start_connect(Some("/settings?tab=wise")).await;
    let callback = b
        .decide_at_emulator(&authorize, ALICE, PERSONAL, "deny")
        .await;
    assert_eq!(
        query_param(&callback, "error").as_deref(),
        Some("access_denied")
    );
    let res = b.get_html(&callback).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        "/settings?tab=wise&wise_error=access_denied"
    );
    assert_eq!(header(&res, "cache-control"), Some("no-store"));
    assert_eq!(header(&res, "referrer-policy"), Some("no-referrer"));

    // The state was consumed: the same callback again is not this user's flow any more,
    // so its return_to is not trusted.
    let res = b.get_html(&callback).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/?wise_error=unknown_state");

    let res = b.get_json("/wise/status").await;
    let status: Value = res.json().await.unwrap();
    assert_eq!(status["linked"], false);
    assert_eq!(app.code_calls(), 0, "no code exchange for a declined link");
}

/// Every HTML page of the plugin is the app's own (status kept), JSON answers are not
/// touched.
pub(crate) async fn pages_are_rendered_by_the_app(app: &TestApp) {
    let b = logged_in(app, "nora").await;
    let res = b
        .client
        .post(b.url("/wise/disconnect"))
        .header("accept", "text/html")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        header(&res, "content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = res.text().await.unwrap();
    assert_eq!(
        app_page_reason(&page).as_deref(),
        Some("cross_site_request")
    );
    assert!(page.contains("Eigene Seite: Request refused"), "{page}");

    // A browser POST to a token-protected route of a user without a link: the app's page.
    let res = b
        .client
        .post(b.url("/must"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let page = res.text().await.unwrap();
    assert_eq!(app_page_reason(&page).as_deref(), Some("wise_not_linked"));
    assert!(
        page.contains("href=\"/wise/connect?return_to=%2Fmust\""),
        "{page}"
    );

    let res = b
        .client
        .post(b.url("/wise/disconnect"))
        .header("accept", "application/json")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "cross_site_request");
}

/// The async resolver identifies the user on the routes and in the extractor: a whole link
/// through it, then a token for that user only.
pub(crate) async fn async_resolver_finds_the_user(app: &TestApp) {
    let b = logged_in(app, "olga").await;
    let res = b.get_html("/must").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/wise/connect?return_to=%2Fmust");
    let authorize = b.start_connect(Some("/must")).await;
    let callback = b
        .decide_at_emulator(&authorize, ALICE, PERSONAL, "approve")
        .await;
    let res = b.get_html(&callback).await;
    assert_eq!(location(&res), "/must");
    let res = b.get_json("/must").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), PERSONAL.to_string());

    // Another session is another user: not linked.
    let other = logged_in(app, "pia").await;
    let res = other.get_json("/must").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "wise_not_linked");
}

/// Expands to one `#[tokio::test]` per hook case, each on a fresh hooked app from `$start`.
macro_rules! hooks_suite {
    ($start:path) => {
        mod hooks {
            use super::*;
            $crate::suite::hooks::hooks_suite!(@tests $start;
                logged_out_users_are_sent_to_the_login_url,
                failed_link_returns_to_the_app_with_the_reason,
                pages_are_rendered_by_the_app,
                async_resolver_finds_the_user,
            );
        }
    };
    (@tests $start:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let app = $start().await;
                suite::hooks::$name(&app).await;
            }
        )*
    };
}
pub(crate) use hooks_suite;
