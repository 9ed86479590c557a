//! axum routes and the [`WiseToken`] extractor for wise-oauth.
//!
//! Add Wise to an existing axum app: your users connect their Wise accounts through
//! ready-made routes, and any handler that takes a [`WiseToken`] gets a valid access token
//! for the logged-in user, refreshed transparently.
//!
//! Apps depend on the `wise-oauth` crate with its `axum` feature and find this crate's
//! items at `wise_oauth::axum` (the examples below are written that way); the
//! `wise-oauth` docs hold the complete quick starts and the production guide.
//!
//! # Quick start
//!
//! ```no_run
//! # mod wise_oauth { pub use wise_oauth_core::*; pub mod axum { pub use wise_oauth_axum::*; } }
//! use axum::extract::Request;
//! use axum::middleware::{self, Next};
//! use axum::response::Response;
//! use axum::{routing::get, Router};
//! use wise_oauth::axum::{WiseRoutes, WiseToken, WiseUser};
//! use wise_oauth::{UserId, WiseConfig, WiseOAuth};
//!
//! // Any handler: a valid token of the logged-in user's linked Wise profile.
//! // Not linked yet? Browsers are sent through /wise/connect, API clients get a 401 JSON.
//! async fn balances(token: WiseToken) -> String {
//!     format!("Wise profile {}", token.profile_id())
//! }
//!
//! // Your own login, unchanged: it only tells the plugin who the user is.
//! async fn auth(mut req: Request, next: Next) -> Response {
//!     let session_user = Some("user-42"); // look up your session here
//!     if let Some(id) = session_user.and_then(|id| UserId::new(id).ok()) {
//!         req.extensions_mut().insert(WiseUser::new(id));
//!     }
//!     next.run(req).await
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let wise = WiseOAuth::builder(WiseConfig::from_env()?).build()?;
//!     let wise_routes = WiseRoutes::new(wise); // prefix "/wise" by default
//!     wise_routes.check()?; // e.g. a redirect URI whose path is not the callback route
//!
//!     let app = Router::new()
//!         .route("/balances", get(balances))
//!         .merge(wise_routes.router())   // /wise/connect, /wise/callback, /wise/status, ...
//!         .layer(middleware::from_fn(auth))
//!         .with_state(wise_routes.plugin()); // where `WiseToken` finds the plugin
//!
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! # Routes
//!
//! | route | what it does |
//! |---|---|
//! | `GET {prefix}/connect[?return_to=/path]` | starts linking: 303 to Wise, sets the browser-binding cookie; `return_to` must be a local path (anything else becomes `/`) |
//! | `GET {prefix}/callback` | the registered redirect URI: 303 to the `return_to` of the flow, `Cache-Control: no-store`, `Referrer-Policy: no-referrer`; errors are small escaped HTML pages with a 4xx (or 5xx for outages) |
//! | `GET {prefix}/status` | `{"linked", "profile_id", "expires_at", "relink_required"}`, never a token |
//! | `POST {prefix}/disconnect[?return_to=/path]` | removes the link; same-origin only (see below); a browser form post gets a 303, others `{"linked": false, "removed": bool}` |
//! | `POST {prefix}/mobile/start` | JSON `{"authorize_url", "state"}` for native apps with a custom-scheme redirect URI |
//! | `POST {prefix}/mobile/complete` | JSON body `{"code", "state", "profileId"}` → `{"linked": true, "profile_id"}` |
//!
//! The behaviour is defined once in [`wise_oauth_core::web`] and shared with the actix-web
//! adapter, so both answer byte for byte the same.
//!
//! # Fitting it into your app
//!
//! [`WiseRoutes`] takes the app's hooks (the same in both adapters, defined once in
//! [`wise_oauth_core::web::Hooks`]): [`WiseRoutes::login_url`] sends a logged-out browser
//! to your login (`/login?next={return_to}`) instead of a 401 page;
//! [`WiseRoutes::error_redirect`] brings a declined or failed link back into your app with
//! `wise_error=<reason>` (e.g. `access_denied`); [`WiseRoutes::pages`] renders the
//! plugin's HTML pages your way. A prefix, login URL or redirect URI the routes cannot
//! serve stops the app at start-up with a message naming what to change
//! ([`WiseRoutes::check`] returns it as a value).
//!
//! # Who is the user
//!
//! The plugin never reads a user id from the query string or a header. By default it reads
//! the [`WiseUser`] request extension, which your auth middleware inserts for a logged-in
//! user; `.layer(...)` covers only the routes added before it, so a route added after it
//! answers 401 `not_logged_in`. If your login already puts its own type into the
//! extensions, register a resolver instead: [`WiseRoutes::user_resolver`], or
//! [`WiseRoutes::async_user_resolver`] when the lookup awaits (a session store). Without a
//! user, every route and the extractor answer 401 (or redirect to your login URL) before
//! touching any store.
//!
//! # Cross-site requests
//!
//! The POST routes refuse (403) requests a foreign page could forge: when the browser sends
//! `Sec-Fetch-Site`, only `same-origin` passes; otherwise a sent `Origin` must equal the
//! origin of the configured redirect URI; a request with neither must carry
//! `X-Requested-With` or `Content-Type: application/json`, which a cross-site HTML form
//! cannot send. A plain HTML form on your own pages passes in every current browser.
//!
//! # Rejections
//!
//! [`WiseToken`] fails with a [`WiseTokenRejection`] whose [`RejectionKind`] tells why:
//! a browser GET that is not linked (or must re-link) is redirected into the link flow with
//! `return_to` set to the current path; an API request gets 401 with
//! `{"error": "wise_not_linked" | "wise_relink_required", "connect_url": ...}`; an outage
//! gets 503 with `Retry-After`. A router whose state gives no [`WisePlugin`] does not
//! compile with a `WiseToken` handler.
//! `Option<WiseToken>` is `None` when the user has no usable link.

mod convert;
mod extract;
mod framework;
mod routes;

pub use extract::{WiseToken, WiseTokenRejection};
pub use framework::Axum;
pub use routes::{router, WisePlugin, WiseRoutes};
pub use wise_oauth_core::web::{RejectionKind, WiseUser};
