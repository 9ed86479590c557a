//! Framework-neutral HTTP behaviour shared by the axum and actix-web adapters.
//!
//! Every response decision of the ready-made routes and of the `WiseToken` rejections, and
//! everything both adapters do alike, lives here once, so both behave byte for byte the
//! same. An adapter is only its framework's glue:
//!
//! 1. it implements [`Framework`] for its framework's request type: where the
//!    method, path, headers, the [`WiseUser`] extension and the registered [`Plugin`] are;
//! 2. its `WiseRoutes` wraps a [`PluginBuilder`] and registers each [`Route`] of
//!    [`Plugin::routes`] with its router, answering it with [`Plugin::serve`];
//! 3. its `WiseToken` extractor wraps a [`LinkedToken`] ([`LinkedToken::extract`],
//!    [`LinkedToken::extract_optional`], whose [`Extraction`] it returns as its own future)
//!    and its rejection wraps a [`Rejection`];
//! 4. it translates the returned [`Reply`] into its framework's response type.
//!
//! The route functions ([`connect`], [`callback`], [`status`], [`disconnect`],
//! [`mobile_start`], [`mobile_complete`], [`webhooks`]) and [`token_rejection`] also work on their own,
//! from a [`RequestInfo`] and a user resolved by the caller.
//!
//! # Rules the routes apply
//!
//! * **Who is the user.** Every route takes the user the adapter resolved from the app's
//!   own login (a sync or an async resolver, or the [`WiseUser`] extension). Without one,
//!   the route answers 401, or redirects a browser to the app's login URL
//!   ([`not_logged_in`], [`Hooks::login_url`]), before it touches any store.
//! * **The app's hooks.** [`Hooks`] lead the plugin's answers into the app: its login URL,
//!   a redirect back into the app after a failed link ([`Hooks::error_redirect`]), and the
//!   look of every HTML page ([`Pages`]). JSON answers and statuses never change.
//! * **Fail fast.** A prefix, a login URL or a redirect URI the mounted routes cannot
//!   serve is a [`SetupError`] when the routes are built, naming what to change.
//! * **Browser or API client.** A request is treated as coming from a browser when its
//!   `Accept` header lists `text/html` and it carries no `X-Requested-With` header
//!   ([`RequestInfo::is_browser`]). Browsers get redirects and small HTML pages; everything
//!   else gets JSON.
//! * **Cross-site POSTs are refused** ([`RequestInfo::is_same_origin`]): a POST route
//!   answers 403 unless the request proves it came from the app's own pages. When the
//!   browser sends `Sec-Fetch-Site`, only `same-origin` passes (also `same-site`, which a
//!   sibling subdomain could forge, is refused). Otherwise, when it sends `Origin`, it must
//!   equal the origin of the configured redirect URI (never the `Host` header). A request
//!   with neither header (old browsers, native and server clients) must carry a header a
//!   cross-site HTML form cannot send: `X-Requested-With` (any value) or
//!   `Content-Type: application/json`.
//! * **The callback** answers a success with `303 See Other` to the `return_to` path
//!   recorded when the flow started, and every callback answer carries
//!   `Cache-Control: no-store` and `Referrer-Policy: no-referrer`, so the code and state
//!   never reach history, caches or third parties.
//! * **The webhook route** is called by Wise, not by a user: it takes no user and no
//!   cross-site check; the signature over the raw body is its authentication
//!   ([`webhooks`]).

mod builder;
mod framework;
mod hooks;
mod html;
mod mount;
mod pages;
mod plugin;
mod rejection;
mod reply;
mod request;
mod resolver;
mod route;
mod routes;
mod setup;
mod token;
mod user;
mod webhooks;

pub use builder::PluginBuilder;
pub use framework::Framework;
pub use hooks::{Hooks, ERROR_PARAM, RETURN_TO_PLACEHOLDER};
pub use mount::{InvalidPrefix, Mount, DEFAULT_PREFIX};
pub use pages::{escape_html, DefaultPages, Page, Pages};
pub use plugin::Plugin;
pub use rejection::Rejection;
pub use reply::{Body, Reply};
pub use request::RequestInfo;
pub use route::{Route, RouteMethod};
pub use routes::{
    callback, connect, disconnect, mobile_complete, mobile_start, not_logged_in, not_set_up,
    status, token_rejection, RejectionKind, MAX_MOBILE_BODY,
};
pub use setup::SetupError;
pub use token::{request_correlation_id, Extraction, LinkedToken};
pub use user::WiseUser;
pub use webhooks::webhooks;
