//! The hot path in instructions: what one request costs an axum app, counted by
//! `valgrind --tool=callgrind` (deterministic, unlike a timing), for the plugin and for the
//! references it is held against. `scripts/bench.sh instructions` runs it and prints the
//! table.
//!
//! ```text
//! cargo bench --bench instructions -- <variant> <requests>
//! valgrind --tool=callgrind --toggle-collect='*instructions::measured*' <bench binary> <variant> <requests>
//! ```
//!
//! One process measures one variant. It builds the variant's app once and finalizes it
//! with `.with_state(..)`, as `axum::serve` runs a router (a `Router<S>` left unfinalized
//! rebuilds each handler's route on every request, a path no served app takes); sends one
//! warm-up request; then, inside [`measured`], drives `<requests>` requests through the
//! router's `tower::Service` (`ServiceExt::ready` + `call`, the same router every time) on
//! a current-thread tokio runtime, reads each body and checks each answers 200. Every
//! request goes through the same auth middleware, which names the user (a `WiseUser`
//! extension, as in `support::axum_app`), and every handler has the same body; only the
//! extractor differs:
//!
//! | variant | extractor |
//! |---|---|
//! | `noop` | a unit struct whose `FromRequestParts` returns `Ok`: the baseline, what axum spends on any extractor |
//! | `wise` | the plugin: its layer ([`WiseRoutes::layer`]) and `WiseToken`, on a fresh cached token of a user linked once through the real flow against the emulator |
//! | `naive` | a `Mutex<HashMap<String, String>>` in the app state, read under the lock by the middleware's user id, the token string cloned: the naive reference |
//! | `sessions` | tower-sessions with its `MemoryStore` (the token in a session created before the run, the request carrying its cookie): a session-store reference |
//!
//! Every variant's requests carry the same `Cookie` header (only `sessions` reads it), so
//! they cost the same to build. Nothing on the measured path does I/O: the emulator and the
//! link happen before, on a thread of their own, and callgrind collects only inside [`measured`] (`--toggle-collect`).
//! Every variant's process has a second thread (`wise` the emulator's, the others a parked
//! one), so that glibc's malloc takes the same multi-threaded paths in all of them, as in
//! any served app. The script runs each variant at two request counts and takes the difference, so what is
//! paid once inside [`measured`] (the first poll, growing buffers) cancels out too:
//! instructions per request = (Ir(N2) − Ir(N1)) / (N2 − N1).
//!
//! Without a variant (as `cargo bench` runs every bench target), every variant runs 1,000
//! requests and prints its wall-clock time per request: a check that each answers 200, not
//! the measurement.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tower::{Service, ServiceExt};
use tower_sessions::session::{Id, Record};
use tower_sessions::{MemoryStore, Session, SessionManagerLayer, SessionStore};
use wise_oauth::axum::{WiseRoutes, WiseToken, WiseUser};
use wise_oauth::{MemoryTokenStore, UserId, WiseOAuth};

/// The one route every variant serves.
const PATH: &str = "/data";
/// The token the naive map and the session hold (the shape of a Wise access token).
const NAIVE_TOKEN: &str = "0f7b4b8e-3d1a-4c55-9a57-6c1f0e2b9d44";
/// The session key of the token in the `sessions` variant.
const SESSION_KEY: &str = "wise_token";
const VARIANTS: [&str; 5] = ["noop", "noop_state", "wise", "naive", "sessions"];

/// The handler body every variant shares: keep the extracted value alive, answer a short
/// text (the same as `support::axum_app`'s handlers).
fn answer<T>(extracted: &T) -> String {
    black_box(extracted);
    format!("profile {}", black_box(30_000_000u64))
}

/// The auth middleware of every variant: names the user, as an app's login would.
fn with_auth<S: Clone + Send + Sync + 'static>(router: Router<S>, user: UserId) -> Router<S> {
    router.layer(middleware::from_fn(move |mut req: Request, next: Next| {
        let user = user.clone();
        async move {
            req.extensions_mut().insert(WiseUser::new(user));
            let response: Response = next.run(req).await;
            response
        }
    }))
}

/// The baseline extractor: nothing to do.
struct Noop;

impl<S: Send + Sync> FromRequestParts<S> for Noop {
    type Rejection = Infallible;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(Noop)
    }
}

async fn noop_handler(extracted: Noop) -> String {
    answer(&extracted)
}

async fn wise_handler(extracted: WiseToken) -> String {
    answer(&extracted)
}

/// The naive reference's app state: every user's token in one locked map.
#[derive(Clone, Default)]
struct NaiveState(Arc<Mutex<HashMap<String, String>>>);

/// The naive extractor: the token of the middleware's user, cloned out of the map.
struct NaiveToken(String);

impl FromRequestParts<NaiveState> for NaiveToken {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, state: &NaiveState) -> Result<Self, StatusCode> {
        let user = parts
            .extensions
            .get::<WiseUser>()
            .ok_or(StatusCode::UNAUTHORIZED)?;
        let tokens = state
            .0
            .lock()
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        tokens
            .get(user.id().as_str())
            .cloned()
            .map(NaiveToken)
            .ok_or(StatusCode::UNAUTHORIZED)
    }
}

async fn naive_handler(extracted: NaiveToken) -> String {
    answer(&extracted.0)
}

/// The session-store extractor: the token read out of the request's session.
struct SessionToken(String);

impl<S: Send + Sync> FromRequestParts<S> for SessionToken {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, StatusCode> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(status, _)| status)?;
        session
            .get::<String>(SESSION_KEY)
            .await
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
            .map(SessionToken)
            .ok_or(StatusCode::UNAUTHORIZED)
    }
}

async fn sessions_handler(extracted: SessionToken) -> String {
    answer(&extracted.0)
}

/// A built variant: the finalized router, the `Cookie` header its requests carry, and what
/// must outlive the run (the emulator's thread).
struct App {
    router: Router,
    cookie: HeaderValue,
    _emulator: Option<Emulator>,
}

/// The emulator, serving on a thread and runtime of its own until this is dropped.
struct Emulator {
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts the emulator on a thread of its own, links `user` through the real flow and
/// warms the manager's cache. All that allocates in that thread's malloc arena: the
/// measuring thread's heap stays the same from run to run, and so do its counts (linking
/// on the measuring thread left a heap whose shape varied with the set-up's timing, and
/// the steady-state cost of a request with it, by up to 1 %).
fn linked(user: &UserId) -> (WiseOAuth, Emulator) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let user = user.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mock = support::start_mock().await;
            support::ensure_wise_user(&mock, "bench@example.com");
            // The system clock, as a served app has it (the emulator's clock is real time
            // too, so the token stays fresh for the whole run).
            let wise = WiseOAuth::builder(support::config(&mock))
                .store(MemoryTokenStore::new())
                .build()
                .unwrap();
            let http = support::no_redirect_client();
            support::link(&wise, &mock, &http, &user, "bench@example.com").await;
            // Warm the manager's cache, as any request after the link does.
            wise.token(&user).await.unwrap();
            ready_tx.send(wise).unwrap();
            // Serve until the run is over.
            let _ = stopped.await;
            drop(mock);
        });
    });
    let wise = ready_rx.recv().expect("the emulator thread links the user");
    (wise, Emulator { _stop: stop })
}

/// A cookie of the same shape as a tower-sessions one, for the variants that read none.
fn unread_cookie() -> HeaderValue {
    HeaderValue::from_str(&format!("id={}", Id::default())).unwrap()
}

fn build(rt: &tokio::runtime::Runtime, variant: &str) -> App {
    let user = support::user(support::BENCH_USER);
    match variant {
        "noop" => App {
            router: with_auth(Router::new().route(PATH, get(noop_handler)), user).with_state(()),
            cookie: unread_cookie(),
            _emulator: None,
        },
        // The same with a state of one `Arc`, as `wise` and `naive` have: axum clones the
        // boxed handler service with its state on every request, which allocates unless the
        // state is zero-sized like `()`.
        "noop_state" => App {
            router: with_auth(Router::new().route(PATH, get(noop_handler)), user)
                .with_state(Arc::new(0u64)),
            cookie: unread_cookie(),
            _emulator: None,
        },
        "wise" => {
            let (wise, emulator) = linked(&user);
            let routes = WiseRoutes::new(wise);
            let router = Router::new().route(PATH, get(wise_handler));
            App {
                router: with_auth(router, user).with_state(routes.plugin()),
                cookie: unread_cookie(),
                _emulator: Some(emulator),
            }
        }
        "naive" => {
            let state = NaiveState::default();
            state
                .0
                .lock()
                .unwrap()
                .insert(user.as_str().to_owned(), NAIVE_TOKEN.to_owned());
            let router = Router::new().route(PATH, get(naive_handler));
            App {
                router: with_auth(router, user).with_state(state),
                cookie: unread_cookie(),
                _emulator: None,
            }
        }
        "sessions" => {
            // The user signed in before: a session holding the token, in the store.
            let store = MemoryStore::default();
            let mut record = Record {
                id: Id::default(),
                data: HashMap::from([(SESSION_KEY.to_owned(), NAIVE_TOKEN.into())]),
                expiry_date: time::OffsetDateTime::now_utc() + time::Duration::days(1),
            };
            rt.block_on(store.create(&mut record)).unwrap();
            let cookie = HeaderValue::from_str(&format!("id={}", record.id)).unwrap();
            let router = Router::new()
                .route(PATH, get(sessions_handler))
                .layer(SessionManagerLayer::new(store).with_secure(false));
            App {
                router: with_auth(router, user).with_state(()),
                cookie,
                _emulator: None,
            }
        }
        other => panic!("unknown variant {other:?}: one of {VARIANTS:?}"),
    }
}

/// One request through the router's `tower::Service`, its body read; checks the 200.
async fn request(router: &mut Router, cookie: &HeaderValue) {
    let request = axum::http::Request::get(PATH)
        .header(header::COOKIE, cookie.clone())
        .body(Body::empty())
        .unwrap();
    let service = ServiceExt::<axum::http::Request<Body>>::ready(router)
        .await
        .unwrap();
    let response = service.call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    black_box(body);
}

/// The measured part, and all callgrind collects (`--toggle-collect`): `requests`
/// requests, one after the other, on the current-thread runtime.
#[inline(never)]
fn measured(rt: &tokio::runtime::Runtime, app: &mut App, requests: u64) {
    rt.block_on(async {
        for _ in 0..requests {
            request(&mut app.router, &app.cookie).await;
        }
    });
}

/// Builds `variant`, warms the router up with one request, then runs [`measured`].
fn run(variant: &str, requests: u64) -> Duration {
    // A second thread in every variant, parked for the whole run: glibc's malloc takes
    // lock-free single-thread paths while a process has one thread, and `wise` has the
    // emulator's. Without it the variants with one thread paid about 75 instructions less
    // per request in malloc and free for the same allocations; a served app is never
    // single-threaded.
    let (_unpark, parked) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let _ = parked.recv();
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut app = build(&rt, variant);
    rt.block_on(request(&mut app.router, &app.cookie));
    let start = Instant::now();
    measured(&rt, &mut app, requests);
    start.elapsed()
}

fn main() {
    // `cargo bench` appends `--bench`; it carries no value here.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.as_slice() {
        [] => {
            for variant in VARIANTS {
                let elapsed = run(variant, 1_000);
                println!(
                    "{variant}: 1000 requests answered 200, {:.2} µs per request (wall clock; \
                     the figure is the instruction count: scripts/bench.sh instructions)",
                    elapsed.as_secs_f64() * 1e6 / 1_000.0
                );
            }
        }
        [variant, requests] => {
            let requests: u64 = requests.parse().expect("a request count");
            run(variant, requests);
            println!("REQUESTS {variant} {requests}");
        }
        _ => {
            eprintln!("usage: instructions [<variant> <requests>], variant one of {VARIANTS:?}");
            std::process::exit(2);
        }
    }
}
