//! The ready-made routes and the token rejections, framework-neutral.

use std::time::Duration;

use http::header::SET_COOKIE;
use http::StatusCode;
use serde_json::json;

use super::hooks::{Hooks, ERROR_PARAM};
use super::html;
use super::mount::Mount;
use super::pages::Page;
use super::reply::Reply;
use super::request::RequestInfo;
use crate::{
    FlowError, LinkOptions, LinkView, MobileCallback, TokenError, UserId, WiseOAuth,
    DEFAULT_RETURN_TO,
};

/// The largest JSON body [`mobile_complete`] accepts, in bytes.
pub const MAX_MOBILE_BODY: usize = 8 * 1024;

/// The longest query string [`connect`] and [`disconnect`] accept, in bytes.
const MAX_QUERY: usize = 4 * 1024;

/// `Retry-After` sent with a 503 when the cause gave no better value, in seconds.
const DEFAULT_RETRY_AFTER: u64 = 5;

/// Why a `WiseToken` extraction was rejected; each kind has a fixed status and body (see
/// [`token_rejection`], [`not_logged_in`] and [`not_set_up`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// No logged-in app user: 401, JSON reason `not_logged_in`.
    NotLoggedIn,
    /// The user has not linked Wise: a browser is redirected to connect, others get 401
    /// with reason `wise_not_linked`.
    NotLinked,
    /// Wise rejected the link: like [`RejectionKind::NotLinked`], reason
    /// `wise_relink_required`.
    RelinkRequired,
    /// Wise or the store is down: 503 with `Retry-After`, reason `wise_unavailable`.
    Unavailable,
    /// The OAuth client or the stored link is unusable: 500, reason `wise_misconfigured`.
    Misconfigured,
    /// The adapter was not set up for this route: 500, reason `wise_not_set_up`, with a
    /// hint naming what is missing.
    NotSetUp,
}

impl RejectionKind {
    /// The stable machine-readable reason of the JSON body (`error` field).
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotLoggedIn => "not_logged_in",
            Self::NotLinked => "wise_not_linked",
            Self::RelinkRequired => "wise_relink_required",
            Self::Unavailable => "wise_unavailable",
            Self::Misconfigured => "wise_misconfigured",
            Self::NotSetUp => "wise_not_set_up",
        }
    }

    /// The kind for a [`TokenError`].
    pub fn of(error: &TokenError) -> Self {
        match error {
            TokenError::NotLinked => Self::NotLinked,
            TokenError::RelinkRequired => Self::RelinkRequired,
            TokenError::Unavailable { .. } => Self::Unavailable,
            _ => Self::Misconfigured,
        }
    }
}

fn retry_secs(d: Option<Duration>) -> u64 {
    d.map_or(DEFAULT_RETRY_AFTER, |d| {
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    })
}

fn error_json(status: StatusCode, reason: &str, message: &str) -> Reply {
    Reply::json(status, &json!({ "error": reason, "message": message }))
}

/// The answer to a request without a logged-in app user. Routes answer it before touching
/// any store.
///
/// With a login URL ([`Hooks::login_url`]) a browser GET or HEAD is redirected (303) there,
/// to come back to the current path; otherwise it is a 401: a page linking to the login URL
/// (or `/`) for browsers, `{"error": "not_logged_in", "message", "login_url"?}` for API
/// clients.
pub fn not_logged_in(req: &RequestInfo, hooks: &Hooks) -> Reply {
    let back = if matches!(req.method(), "GET" | "HEAD") {
        req.path_and_query()
    } else {
        DEFAULT_RETURN_TO
    };
    logged_out(req, hooks, back)
}

/// [`not_logged_in`], coming back to `back` after the login.
fn logged_out(req: &RequestInfo, hooks: &Hooks, back: &str) -> Reply {
    let reason = RejectionKind::NotLoggedIn.reason();
    let login = hooks.login_url_for(back);
    if !req.is_browser() {
        let mut body = json!({ "error": reason, "message": "log in first" });
        if let Some(url) = &login {
            body["login_url"] = json!(url);
        }
        return Reply::json(StatusCode::UNAUTHORIZED, &body);
    }
    match &login {
        Some(url) if matches!(req.method(), "GET" | "HEAD") => Reply::see_other(url),
        _ => hooks.page(&Page::new(
            StatusCode::UNAUTHORIZED,
            reason,
            "Please log in",
            "Log in first, then connect your Wise account.",
            Some(
                login
                    .as_deref()
                    .map_or(("/", "Home"), |url| (url, "Log in")),
            ),
        )),
    }
}

/// 500 for an adapter that was not set up; `hint` names what is missing (it is logged and
/// included in the body, as it only concerns the app's own wiring). The page is the
/// plugin's own: without the plugin, the app's [`Hooks`] are unknown.
pub fn not_set_up(req: &RequestInfo, hint: &'static str) -> Reply {
    tracing::error!(hint, "wise-oauth: the adapter is not set up");
    let reason = RejectionKind::NotSetUp.reason();
    if req.is_browser() {
        Reply::html(
            StatusCode::INTERNAL_SERVER_ERROR,
            html::page("Wise is not set up", hint, None),
        )
    } else {
        Reply::json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({ "error": reason, "hint": hint }),
        )
    }
}

/// The answer to a failed `WiseToken` extraction.
///
/// A GET or HEAD from a browser that is not linked (or must re-link) is redirected (303)
/// into the link flow with `return_to` set to the current path and query; other requests
/// get 401 with `{"error": "wise_not_linked" | "wise_relink_required", "connect_url": ...}`.
/// An outage is 503 with `Retry-After`; a configuration problem is 500. Pages are
/// rendered by the app's [`Pages`](super::Pages).
pub fn token_rejection(
    error: &TokenError,
    req: &RequestInfo,
    mount: &Mount,
    hooks: &Hooks,
) -> Reply {
    let kind = RejectionKind::of(error);
    let browser = req.is_browser();
    match kind {
        RejectionKind::NotLinked | RejectionKind::RelinkRequired => {
            let connect = mount.connect_url(Some(req.path_and_query()));
            if browser && matches!(req.method(), "GET" | "HEAD") {
                Reply::see_other(&connect)
            } else if browser {
                hooks.page(&Page::new(
                    StatusCode::UNAUTHORIZED,
                    kind.reason(),
                    "Connect your Wise account",
                    "This page needs a linked Wise account.",
                    Some((&connect, "Connect Wise")),
                ))
            } else {
                Reply::json(
                    StatusCode::UNAUTHORIZED,
                    &json!({
                        "error": kind.reason(),
                        "message": if kind == RejectionKind::NotLinked {
                            "link a Wise account first"
                        } else {
                            "the Wise link expired or was revoked: link again"
                        },
                        "connect_url": connect,
                    }),
                )
            }
        }
        RejectionKind::Unavailable => {
            let secs = retry_secs(error.retry_after());
            let reply = if browser {
                hooks.page(&Page::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    kind.reason(),
                    "Wise is unavailable",
                    "Wise cannot be reached right now. Please try again in a moment.",
                    Some((req.path_and_query(), "Try again")),
                ))
            } else {
                Reply::json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({ "error": kind.reason(), "retry_after": secs }),
                )
            };
            reply.retry_after(secs)
        }
        _ => {
            tracing::error!(error = %error, "wise-oauth: no token because of a configuration problem");
            if browser {
                hooks.page(&Page::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    kind.reason(),
                    "Wise is misconfigured",
                    "The Wise connection of this site is misconfigured.",
                    None,
                ))
            } else {
                error_json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    kind.reason(),
                    "the Wise integration is misconfigured",
                )
            }
        }
    }
}

/// The origin (`scheme://host[:port]`) of the configured redirect URI: the app's own origin
/// for the cross-site check (never derived from `Host`).
fn app_origin(wise: &WiseOAuth) -> String {
    url::Url::parse(wise.config().redirect_uri())
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// The single value of `name` in a raw query: `Ok(None)` when absent, `Err` when
/// repeated, too long or not decodable.
fn single_param(raw_query: &str, name: &str) -> Result<Option<String>, ()> {
    if raw_query.len() > MAX_QUERY {
        return Err(());
    }
    let mut found = None;
    for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        if k == name {
            if found.is_some() {
                return Err(());
            }
            found = Some(v.into_owned());
        }
    }
    Ok(found)
}

fn log_flow_error(error: &FlowError) {
    let reason = error.reason();
    if error.status().is_server_error() {
        tracing::warn!(reason, error = %error, "wise-oauth: link flow failed");
    } else {
        tracing::info!(reason, "wise-oauth: link flow rejected");
    }
}

fn flow_error_reply(error: &FlowError, req: &RequestInfo, mount: &Mount, hooks: &Hooks) -> Reply {
    let status = error.status();
    let reason = error.reason();
    log_flow_error(error);
    let (title, message) = match reason {
        "access_denied" => (
            "Wise account not connected",
            "You declined to connect your Wise account. Nothing was changed.",
        ),
        "unavailable" => (
            "Wise is unavailable",
            "Wise cannot be reached right now. Please try again in a moment.",
        ),
        "misconfigured" => (
            "Wise is misconfigured",
            "The Wise connection of this site is misconfigured.",
        ),
        "user_mismatch" => (
            "Wise account not connected",
            "This link was started by another user of this site. Please start again.",
        ),
        "browser_mismatch" => (
            "Wise account not connected",
            "This link was started in another browser. Please start again here.",
        ),
        "busy" => (
            "Wise account not connected yet",
            "Many accounts are being connected right now. Please reload this page in a moment.",
        ),
        "unknown_state" => (
            "Wise account not connected",
            "This link has expired or was already used. Please start again.",
        ),
        _ => (
            "Wise account not connected",
            "The answer from Wise could not be accepted. Please start again.",
        ),
    };
    let mut reply = if req.is_browser() || req.method() == "GET" {
        hooks.page(&Page::new(
            status,
            reason,
            title,
            message,
            Some((&mount.connect_url(None), "Connect Wise again")),
        ))
    } else {
        error_json(status, reason, message)
    };
    if status == StatusCode::SERVICE_UNAVAILABLE {
        reply = reply.retry_after(retry_secs(error.retry_after()));
    }
    reply.no_referrer()
}

/// `GET {prefix}/connect[?return_to=/local/path]`: starts a web link and redirects (303)
/// to Wise's authorization page, setting the browser-binding cookie. A `return_to` that is
/// not a local path (or is repeated) is replaced by `/`.
pub async fn connect(
    wise: &WiseOAuth,
    user: Option<&UserId>,
    req: &RequestInfo,
    mount: &Mount,
    hooks: &Hooks,
) -> Reply {
    let Some(user) = user else {
        return not_logged_in(req, hooks);
    };
    let mut options = LinkOptions::default();
    if let Some(return_to) = single_param(req.raw_query(), "return_to").ok().flatten() {
        options = options.return_to(return_to);
    }
    match wise
        .start_link(user, &options, req.cookie(wise.binding_cookie_name()))
        .await
    {
        Ok(start) => Reply::see_other(start.authorize_url().as_str())
            .with(SET_COOKIE, start.set_cookie())
            .no_referrer(),
        Err(e) => flow_error_reply(&e, req, mount, hooks),
    }
}

/// `GET {prefix}/callback?...`: completes a web link from Wise's redirect.
///
/// Success: 303 to the `return_to` recorded at the start (never read from the callback).
/// Failure: a small escaped HTML page with the flow error's status (4xx for anything the
/// request got wrong), or, with [`Hooks::error_redirect`], a 303 back into the app with
/// `wise_error=<reason>`. Without a logged-in user: [`not_logged_in`], coming back to the
/// connect route (the code and state never travel to the login page). Every answer has
/// `Cache-Control: no-store` and `Referrer-Policy: no-referrer`.
pub async fn callback(
    wise: &WiseOAuth,
    user: Option<&UserId>,
    req: &RequestInfo,
    mount: &Mount,
    hooks: &Hooks,
) -> Reply {
    let Some(user) = user else {
        return logged_out(req, hooks, &mount.connect_url(None)).no_referrer();
    };
    match wise
        .complete_link_returning(
            user,
            req.raw_query(),
            req.cookie(wise.binding_cookie_name()),
        )
        .await
    {
        // The binding cookie stays: it identifies the browser, not one flow, so a flow
        // started in another tab of the same browser can still complete.
        Ok(done) => Reply::see_other(done.return_to()).no_referrer(),
        Err((e, return_to)) if hooks.redirects_errors() => {
            log_flow_error(&e);
            let back = return_to.as_deref().unwrap_or(DEFAULT_RETURN_TO);
            Reply::see_other(&with_error_param(back, e.reason())).no_referrer()
        }
        Err((e, _)) => flow_error_reply(&e, req, mount, hooks),
    }
}

/// `path` (a safe local path) with `wise_error=<reason>` added to its query.
fn with_error_param(path: &str, reason: &str) -> String {
    let (base, fragment) = path.split_once('#').unwrap_or((path, ""));
    let sep = if base.ends_with('?') || base.ends_with('&') {
        ""
    } else if base.contains('?') {
        "&"
    } else {
        "?"
    };
    let fragment = if fragment.is_empty() {
        String::new()
    } else {
        format!("#{fragment}")
    };
    format!("{base}{sep}{ERROR_PARAM}={reason}{fragment}")
}

fn status_json(view: Option<&LinkView>) -> serde_json::Value {
    match view {
        Some(v) => json!({
            "linked": true,
            "profile_id": v.profile_id.get(),
            "expires_at": rfc3339(v.expires_at),
            "relink_required": v.relink_required,
        }),
        None => json!({
            "linked": false,
            "profile_id": null,
            "expires_at": null,
            "relink_required": false,
        }),
    }
}

fn rfc3339(t: std::time::SystemTime) -> Option<String> {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// `GET {prefix}/status`: `{"linked", "profile_id", "expires_at", "relink_required"}` as
/// JSON; never a token.
pub async fn status(
    wise: &WiseOAuth,
    user: Option<&UserId>,
    req: &RequestInfo,
    mount: &Mount,
    hooks: &Hooks,
) -> Reply {
    let Some(user) = user else {
        return not_logged_in(req, hooks);
    };
    match wise.status(user).await {
        Ok(view) => Reply::json(StatusCode::OK, &status_json(view.as_ref())),
        Err(e) => token_rejection(&e, &RequestInfo::new("GET", req.path()), mount, hooks),
    }
}

/// `POST {prefix}/disconnect[?return_to=/local/path]`: removes the user's link.
///
/// Refused with 403 unless the request is same-origin (see the module rules). A browser
/// form post is redirected (303) to `return_to` (default `/`); other clients get
/// `{"linked": false, "removed": bool}`.
pub async fn disconnect(
    wise: &WiseOAuth,
    user: Option<&UserId>,
    req: &RequestInfo,
    mount: &Mount,
    hooks: &Hooks,
) -> Reply {
    let Some(user) = user else {
        return not_logged_in(req, hooks);
    };
    if !req.is_same_origin(&app_origin(wise)) {
        return cross_site(req, hooks);
    }
    match wise.unlink(user).await {
        Ok(removed) => {
            if req.is_browser() {
                let target = single_param(req.raw_query(), "return_to")
                    .ok()
                    .flatten()
                    .filter(|p| is_plain_local_path(p))
                    .unwrap_or_else(|| "/".to_owned());
                Reply::see_other(&target)
            } else {
                Reply::json(
                    StatusCode::OK,
                    &json!({ "linked": false, "removed": removed }),
                )
            }
        }
        Err(e) => token_rejection(
            &e,
            &RequestInfo::new("POST", &mount.path("/disconnect")),
            mount,
            hooks,
        ),
    }
}

fn cross_site(req: &RequestInfo, hooks: &Hooks) -> Reply {
    tracing::info!("wise-oauth: refused a cross-site state-changing request");
    let reason = "cross_site_request";
    let message = "cross-site request refused: send it from the app's own pages, or add an \
                   X-Requested-With header";
    if req.is_browser() {
        hooks.page(&Page::new(
            StatusCode::FORBIDDEN,
            reason,
            "Request refused",
            message,
            Some(("/", "Home")),
        ))
    } else {
        error_json(StatusCode::FORBIDDEN, reason, message)
    }
}

/// A conservative local path for the disconnect redirect: `/` then unreserved path and
/// query characters, no `//`, no `\`, no `%` escapes.
fn is_plain_local_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && p.len() <= 512
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~?=&".contains(&b))
}

/// `POST {prefix}/mobile/start`: starts a link for a native app whose redirect URI is a
/// custom-scheme deep link. Answers `{"authorize_url": ..., "state": ...}`; the app opens
/// the URL in a browser tab and, when its deep link is called, posts `code`, `state` and
/// `profileId` to [`mobile_complete`]. Same cross-site rule as [`disconnect`].
pub async fn mobile_start(
    wise: &WiseOAuth,
    user: Option<&UserId>,
    req: &RequestInfo,
    mount: &Mount,
    hooks: &Hooks,
) -> Reply {
    let Some(user) = user else {
        return not_logged_in(req, hooks);
    };
    if !req.is_same_origin(&app_origin(wise)) {
        return cross_site(req, hooks);
    }
    match wise.start_mobile_link(user).await {
        Ok(start) => Reply::json(
            StatusCode::OK,
            &json!({
                "authorize_url": start.authorize_url().as_str(),
                "state": start.state().expose_secret(),
            }),
        ),
        Err(e) => flow_error_reply(&e, req, mount, hooks),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MobileComplete {
    code: String,
    state: String,
    #[serde(alias = "profileId", alias = "profileID", alias = "profileid", default)]
    profile_id: Option<serde_json::Value>,
}

/// `POST {prefix}/mobile/complete` with a JSON body `{"code", "state", "profileId"?}`
/// (at most [`MAX_MOBILE_BODY`] bytes): completes a mobile link and answers
/// `{"linked": true, "profile_id": N}`, or a JSON error with the flow error's status.
pub async fn mobile_complete(
    wise: &WiseOAuth,
    user: Option<&UserId>,
    req: &RequestInfo,
    mount: &Mount,
    hooks: &Hooks,
    body: &[u8],
) -> Reply {
    let Some(user) = user else {
        return not_logged_in(req, hooks);
    };
    if !req.is_same_origin(&app_origin(wise)) {
        return cross_site(req, hooks);
    }
    if !req.is_json_body() {
        return error_json(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "json_required",
            "send the body as application/json",
        );
    }
    if body.len() > MAX_MOBILE_BODY {
        return error_json(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the body is too large",
        );
    }
    let Ok(input) = serde_json::from_slice::<MobileComplete>(body) else {
        return error_json(
            StatusCode::BAD_REQUEST,
            "malformed_body",
            "expected {\"code\", \"state\", \"profileId\"}",
        );
    };
    let profile = match &input.profile_id {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            return error_json(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                "profileId must be a number",
            );
        }
    };
    let mut api = RequestInfo::new("POST", req.path());
    api.header("accept", b"application/json");
    match wise
        .complete_mobile_link(
            user,
            MobileCallback::Fields {
                code: &input.code,
                state: &input.state,
                profile_id: profile.as_deref(),
            },
        )
        .await
    {
        Ok(done) => Reply::json(
            StatusCode::OK,
            &json!({ "linked": true, "profile_id": done.profile_id().get() }),
        ),
        Err(e) => flow_error_reply(&e, &api, mount, hooks),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientSecret, WiseConfig};

    /// A handle without a mobile redirect URI, so a mobile start fails (misconfigured).
    fn wise() -> WiseOAuth {
        let config = WiseConfig::builder(
            "client",
            ClientSecret::new("secret"),
            "https://app.example.com/integrations/wise/callback",
        )
        .build()
        .unwrap();
        WiseOAuth::builder(config).build().unwrap()
    }

    #[tokio::test]
    async fn mobile_errors_link_to_the_mount_of_the_routes() {
        let mount = Mount::new("/integrations/wise").unwrap();
        let mut req = RequestInfo::new("POST", "/integrations/wise/mobile/start");
        req.header("accept", b"text/html")
            .header("sec-fetch-site", b"same-origin");
        let user = UserId::new("u").unwrap();
        let reply = mobile_start(&wise(), Some(&user), &req, &mount, &Hooks::default()).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        let page = reply.body.as_str();
        assert!(
            page.contains("href=\"/integrations/wise/connect\""),
            "{page}"
        );
    }

    #[test]
    fn error_param_is_added_to_the_query() {
        assert_eq!(
            with_error_param("/", "access_denied"),
            "/?wise_error=access_denied"
        );
        assert_eq!(with_error_param("/s?a=1", "x"), "/s?a=1&wise_error=x");
        assert_eq!(
            with_error_param("/s?a=1#top", "x"),
            "/s?a=1&wise_error=x#top"
        );
        assert_eq!(with_error_param("/s#top", "x"), "/s?wise_error=x#top");
    }
}
