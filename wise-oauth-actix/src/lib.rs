//! actix-web routes and the [`WiseToken`] extractor for wise-oauth.
//!
//! Add Wise to an existing actix-web app: your users connect their Wise accounts through
//! ready-made routes, and any handler that takes a [`WiseToken`] gets a valid access token
//! for the logged-in user, refreshed transparently.
//!
//! Apps depend on the `wise-oauth` crate with its `actix` feature and find this crate's
//! items at `wise_oauth::actix` (the examples below are written that way); the
//! `wise-oauth` docs hold the complete quick starts and the production guide.
//!
//! # Quick start
//!
//! ```no_run
//! # mod wise_oauth { pub use wise_oauth_core::*; pub mod actix { pub use wise_oauth_actix::*; } }
//! use actix_web::body::MessageBody;
//! use actix_web::dev::{ServiceRequest, ServiceResponse};
//! use actix_web::middleware::{from_fn, Next};
//! use actix_web::{web, App, Error, HttpMessage, HttpServer};
//! use wise_oauth::actix::{WiseRoutes, WiseToken, WiseUser};
//! use wise_oauth::{UserId, WiseConfig, WiseOAuth};
//!
//! // Any handler: a valid token of the logged-in user's linked Wise profile.
//! // Not linked yet? Browsers are sent through /wise/connect, API clients get a 401 JSON.
//! async fn balances(token: WiseToken) -> String {
//!     format!("Wise profile {}", token.profile_id())
//! }
//!
//! // Your own login, unchanged: it only tells the plugin who the user is.
//! async fn auth(
//!     req: ServiceRequest,
//!     next: Next<impl MessageBody>,
//! ) -> Result<ServiceResponse<impl MessageBody>, Error> {
//!     let session_user = Some("user-42"); // look up your session here
//!     if let Some(id) = session_user.and_then(|id| UserId::new(id).ok()) {
//!         req.extensions_mut().insert(WiseUser::new(id));
//!     }
//!     next.call(req).await
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let wise = WiseOAuth::builder(WiseConfig::from_env()?).build()?;
//!     let wise_routes = WiseRoutes::new(wise); // prefix "/wise" by default
//!     wise_routes.check()?; // e.g. a redirect URI whose path is not the callback route
//!
//!     HttpServer::new(move || {
//!         App::new()
//!             // /wise/connect, /wise/callback, /wise/status, ... and the app data
//!             // that lets `WiseToken` find the plugin
//!             .configure(|cfg| wise_routes.configure(cfg))
//!             .route("/balances", web::get().to(balances))
//!             .wrap(from_fn(auth))
//!     })
//!     .bind(("127.0.0.1", 3000))?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! With the defaults, `App::new().configure(wise_oauth::actix::routes(wise.clone()))` is
//! the one-liner.
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
//! The GET routes also answer HEAD, and a wrong method gets 405 with `Allow`, like axum.
//! The behaviour is defined once in [`wise_oauth_core::web`] and shared with the axum
//! adapter, so both answer byte for byte the same; one behaviour suite runs against both.
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
//! user (`req.extensions_mut().insert(WiseUser::new(id))`). If your login already has its
//! own way (an extension of your own type, `actix-identity`, `actix-session`), register a
//! resolver over the `&HttpRequest` instead: [`WiseRoutes::user_resolver`], or
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
//! [`WiseToken`] fails with a [`WiseTokenRejection`] (a [`ResponseError`](actix_web::ResponseError))
//! whose [`RejectionKind`] tells why: a browser GET that is not linked (or must re-link) is
//! redirected into the link flow with `return_to` set to the current path; an API request
//! gets 401 with `{"error": "wise_not_linked" | "wise_relink_required", "connect_url": ...}`;
//! an outage gets 503 with `Retry-After`; a missing [`WiseRoutes::configure`] gets 500 with
//! a hint.
//!
//! [`OptionalWiseToken`] is `None` when the user has no usable link and rejects every other
//! failure, like `Option<WiseToken>` in the axum adapter. (A plain `Option<WiseToken>`
//! also compiles, through actix-web's own `Option<T>` extractor, but that one is `None` on
//! *any* failure.)
//!
//! # Runtime
//!
//! Token refreshes run as detached `tokio` tasks; actix-web's workers are tokio runtimes,
//! so this works unchanged under `#[actix_web::main]` and under `#[tokio::main]`. A refresh
//! started by one worker is shared with requests on every other worker.

mod convert;
mod extract;
mod framework;
mod routes;

pub use extract::{OptionalWiseToken, WiseToken, WiseTokenRejection};
pub use framework::Actix;
pub use routes::{routes, WiseRoutes};
pub use wise_oauth_core::web::{RejectionKind, WiseUser};
