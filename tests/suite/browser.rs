//! A cookie-keeping HTTP client that never follows redirects, so tests see every hop.

use reqwest::header::{ACCEPT, LOCATION};
use reqwest::{Response, StatusCode};

use super::TestApp;

/// One browser: its own cookie jar, redirects off.
pub(crate) struct Browser {
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
}

/// The value of the hidden form field `name` in an emulator page.
pub(crate) fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no hidden field {name} in page:\n{html}"))
        + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    html[start..end].to_owned()
}

/// A query parameter of a URL (decoded).
pub(crate) fn query_param(url: &str, name: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).expect("absolute URL");
    let value = parsed
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned());
    value
}

pub(crate) fn location(res: &Response) -> String {
    res.headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location in a {} answer", res.status()))
        .to_str()
        .expect("ascii Location")
        .to_owned()
}

pub(crate) fn header<'a>(res: &'a Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

impl Browser {
    pub(crate) fn new(app: &TestApp) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: app.base_url.clone(),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        if path.starts_with("http://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Logs in to the demo app as `user`.
    pub(crate) async fn login(&self, user: &str) {
        let res = self.get_html(&format!("/demo/login?user={user}")).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "demo login");
    }

    /// GET like a browser navigation (Accept: text/html).
    pub(crate) async fn get_html(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .header(ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
            .send()
            .await
            .expect("GET")
    }

    /// GET like an API client (Accept: application/json).
    pub(crate) async fn get_json(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .expect("GET")
    }

    /// `GET /wise/status` as JSON.
    pub(crate) async fn status(&self) -> serde_json::Value {
        let res = self.get_json("/wise/status").await;
        assert_eq!(res.status(), StatusCode::OK, "status");
        res.json().await.expect("status JSON")
    }

    /// `GET /api/profile`: the status and the JSON body.
    pub(crate) async fn api_profile(&self) -> (StatusCode, serde_json::Value) {
        let res = self.get_json("/api/profile").await;
        let status = res.status();
        (status, res.json().await.expect("JSON body"))
    }

    /// `GET /wise/connect[?return_to=]`: the authorize URL it redirects to.
    pub(crate) async fn start_connect(&self, return_to: Option<&str>) -> String {
        let path = match return_to {
            Some(r) => format!("/wise/connect?return_to={}", url_encode(r)),
            None => "/wise/connect".to_owned(),
        };
        let res = self.get_html(&path).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "connect redirects");
        let cookie = header(&res, "set-cookie")
            .expect("binding cookie")
            .to_owned();
        assert!(cookie.starts_with("wise_oauth_binding="), "{cookie}");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        location(&res)
    }

    async fn emulator_post(&self, authorize_url: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(authorize_url)
            .header(ACCEPT, "text/html")
            .form(form)
            .send()
            .await
            .expect("POST to the emulator")
    }

    /// Signs in at the emulator's pages and chooses `decision` (`approve` / `deny`) for
    /// `profile_id`; returns the callback URL Wise redirects to (not followed).
    pub(crate) async fn decide_at_emulator(
        &self,
        authorize_url: &str,
        email: &str,
        profile_id: u64,
        decision: &str,
    ) -> String {
        let page = self.get_html(authorize_url).await;
        assert_eq!(page.status(), StatusCode::OK, "emulator login page");
        let session = hidden_field(&page.text().await.expect("page"), "session");
        let res = self
            .emulator_post(
                authorize_url,
                &[
                    ("session", &session),
                    ("step", "login"),
                    ("email", email),
                    ("password", "password1"),
                ],
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "emulator login");
        let html = res.text().await.expect("page");
        if html.contains("name=\"profileId\"") {
            let pid = profile_id.to_string();
            let res = self
                .emulator_post(
                    authorize_url,
                    &[
                        ("session", &session),
                        ("step", "profile"),
                        ("profileId", &pid),
                    ],
                )
                .await;
            assert_eq!(res.status(), StatusCode::OK, "emulator profile choice");
        }
        let res = self
            .emulator_post(
                authorize_url,
                &[
                    ("session", &session),
                    ("step", "consent"),
                    ("decision", decision),
                ],
            )
            .await;
        assert!(
            res.status().is_redirection(),
            "emulator consent: {}",
            res.status()
        );
        location(&res)
    }

    /// The whole link: connect, the emulator's forms (approve), the callback. Returns the
    /// callback's answer.
    pub(crate) async fn link(&self, email: &str, profile_id: u64) -> Response {
        let authorize = self.start_connect(None).await;
        let callback = self
            .decide_at_emulator(&authorize, email, profile_id, "approve")
            .await;
        self.get_html(&callback).await
    }

    /// `POST /wise/disconnect` with extra headers.
    pub(crate) async fn disconnect(&self, headers: &[(&str, &str)]) -> Response {
        let mut req = self.client.post(self.url("/wise/disconnect?return_to=/"));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        req.send().await.expect("POST disconnect")
    }
}

pub(crate) fn url_encode(s: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", &[("v", s)])
        .expect("url")
        .query()
        .expect("query")
        .trim_start_matches("v=")
        .to_owned()
}
