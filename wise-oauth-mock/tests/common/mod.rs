//! Helpers shared by the integration tests: a no-redirect client and the HTML flow.
#![allow(dead_code, unreachable_pub)]

use reqwest::{redirect, Client, Response, StatusCode};
use serde_json::Value;
use wise_oauth_mock::{MockWise, MockWiseHandle, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};

pub const REDIRECT: &str = "http://127.0.0.1:3000/wise/callback";

pub async fn start() -> MockWiseHandle {
    MockWise::builder().start().await.expect("start emulator")
}

pub fn http() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("client")
}

/// The value of a hidden `session` field in a page.
pub fn session_of(html: &str) -> String {
    let marker = "name=\"session\" value=\"";
    let start = html.find(marker).expect("session field") + marker.len();
    let end = html[start..].find('"').expect("end of value") + start;
    html[start..end].to_owned()
}

/// Query parameters of a `Location` header.
pub fn location_params(resp: &Response) -> (String, Vec<(String, String)>) {
    let loc = resp
        .headers()
        .get("location")
        .expect("location header")
        .to_str()
        .expect("ascii location")
        .to_owned();
    let (base, query) = loc.split_once('?').unwrap_or((&loc, ""));
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).expect("query");
    (base.to_owned(), pairs)
}

pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub fn authorize_url(wise: &MockWiseHandle, extra: &[(&str, &str)]) -> String {
    let mut q = vec![
        ("client_id", DEMO_CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("state", "st-123"),
        ("response_type", "code"),
    ];
    q.extend_from_slice(extra);
    format!(
        "{}?{}",
        wise.authorize_url(),
        serde_urlencoded::to_string(&q).expect("encode")
    )
}

pub async fn post_step(
    c: &Client,
    wise: &MockWiseHandle,
    session: &str,
    fields: &[(&str, &str)],
) -> Response {
    let mut form = vec![("session", session)];
    form.extend_from_slice(fields);
    c.post(wise.authorize_url())
        .form(&form)
        .send()
        .await
        .expect("post step")
}

/// Walks the pages as `email` (2FA with 111111 when asked), picks `profile` (or the
/// first offered) and approves. Returns the redirect's query parameters.
pub async fn login_and_approve(
    wise: &MockWiseHandle,
    email: &str,
    profile: Option<u64>,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let c = http();
    let page = c
        .get(authorize_url(wise, extra))
        .send()
        .await
        .expect("authorize");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    let sid = session_of(&html);
    let resp = post_step(
        &c,
        wise,
        &sid,
        &[
            ("step", "login"),
            ("email", email),
            ("password", "password1"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut html = resp.text().await.expect("html");
    if html.contains("name=\"code\"") {
        let resp = post_step(&c, wise, &sid, &[("step", "2fa"), ("code", "111111")]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        html = resp.text().await.expect("html");
    }
    assert!(html.contains("name=\"profileId\""), "profile page: {html}");
    let pid = profile
        .unwrap_or_else(|| wise.profile_ids(email)[0])
        .to_string();
    let resp = post_step(&c, wise, &sid, &[("step", "profile"), ("profileId", &pid)]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.expect("html");
    assert!(html.contains("value=\"approve\""));
    let resp = post_step(
        &c,
        wise,
        &sid,
        &[("step", "consent"), ("decision", "approve")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let (base, params) = location_params(&resp);
    assert_eq!(base, REDIRECT);
    params
}

/// A code for `email` through auto-approve (first profile).
pub async fn auto_code(wise: &MockWiseHandle, email: &str, extra: &[(&str, &str)]) -> String {
    wise.set_auto_approve(Some(email));
    let resp = http()
        .get(authorize_url(wise, extra))
        .send()
        .await
        .expect("authorize");
    wise.set_auto_approve(None);
    assert_eq!(resp.status(), StatusCode::FOUND);
    let (_, params) = location_params(&resp);
    param(&params, "code").expect("code").to_owned()
}

pub async fn token(wise: &MockWiseHandle, form: &[(&str, &str)]) -> (StatusCode, Value) {
    token_at(
        wise,
        "/oauth/token",
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        form,
    )
    .await
}

pub async fn token_at(
    wise: &MockWiseHandle,
    path: &str,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let resp = http()
        .post(format!("{}{path}", wise.base_url()))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .expect("token call");
    let status = resp.status();
    let body = resp.json::<Value>().await.expect("json body");
    (status, body)
}

pub async fn exchange(wise: &MockWiseHandle, code: &str) -> (StatusCode, Value) {
    token(
        wise,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", DEMO_CLIENT_ID),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await
}

/// A linked user's tokens: (access, refresh).
pub async fn link(wise: &MockWiseHandle, email: &str) -> (String, String) {
    let code = auto_code(wise, email, &[]).await;
    let (status, body) = exchange(wise, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["access_token"].as_str().expect("at").to_owned(),
        body["refresh_token"].as_str().expect("rt").to_owned(),
    )
}

pub async fn refresh(wise: &MockWiseHandle, rt: &str) -> (StatusCode, Value) {
    token(
        wise,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await
}

pub async fn get_api(wise: &MockWiseHandle, path: &str, bearer: &str) -> Response {
    http()
        .get(format!("{}{path}", wise.base_url()))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("api call")
}

pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// GETs `url` and parses the JSON body (the control API's reads).
pub async fn get_json(client: &Client, url: String) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// POSTs `body` as JSON to `url` and parses the JSON answer (the control API's writes).
pub async fn post_json(
    client: &Client,
    url: String,
    body: &serde_json::Value,
) -> serde_json::Value {
    client
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
