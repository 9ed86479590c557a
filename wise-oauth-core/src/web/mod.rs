//! Framework-neutral HTTP behaviour shared by the axum and actix-web adapters.
//!
//! Every response decision of the ready-made routes and of the `WiseToken` rejections lives
//! here, so both adapters behave byte for byte the same. An adapter only
//!
//! 1. builds a [`RequestInfo`] from the request (method, path and query, a few headers),
//! 2. resolves the app's logged-in user (never from the query string or a header),
//! 3. calls one of the route functions ([`connect`], [`callback`], [`status`],
//!    [`disconnect`], [`mobile_start`], [`mobile_complete`]) or [`token_rejection`], and
//! 4. translates the returned [`Reply`] into its framework's response type.
//!
//! # Rules the routes apply
//!
//! * **Who is the user.** Every route takes the user the adapter resolved from the app's
//!   own login. Without one, the route answers 401 ([`not_logged_in`]) before it touches
//!   any store.
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

mod html;
mod mount;
mod reply;
mod request;
mod routes;

pub use mount::{InvalidPrefix, Mount, DEFAULT_PREFIX};
pub use reply::{Body, Reply};
pub use request::RequestInfo;
pub use routes::{
    callback, connect, disconnect, mobile_complete, mobile_start, not_logged_in, not_set_up,
    status, token_rejection, RejectionKind, MAX_MOBILE_BODY,
};
