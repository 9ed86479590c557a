//! The cost of [`WiseClient`](wise_oauth::WiseClient) per call: `client.get` of a small
//! emulator route (`GET /v1/me`) against a bare reqwest GET of the same route with the same
//! bearer token, over a reqwest client with the same settings as the library's shared one
//! (rustls, no redirects, no referer, the configured connect and total timeouts and user
//! agent), both on loopback with keep-alive, both decoding the JSON answer.
//!
//! What the client adds: the token from the manager's cache, the path checks and URL, a
//! correlation id per call, the `wise_oauth.api_call` span, the bounded body read and the
//! classification of the answer.
//!
//! `cargo bench --bench client` (add `-- --warm-up-time 2 --measurement-time 10` for a
//! steadier run). After criterion's four functions it prints a paired measurement
//! (`api_call/paired`): rounds of one call of each kind in rotating order, the medians and
//! the median per-round differences; `cargo bench --bench client -- paired` runs only that
//! (the filter matches none of criterion's functions), which `scripts/bench.sh` does three
//! times with the process pinned to one core (`taskset -c 0`). The bar: at most 1 µs added
//! to the median of a call over the bare call that sends the same headers (a fresh UUID v4
//! correlation id, made the usual way, with `uuid::Uuid::new_v4`, and `Accept`). Beside it:
//! - the bare call that reads its token from the manager (`wise.token(&user)`) first, as
//!   hand-written code must;
//! - the bare call with only the token, which sends no correlation id at all.

#![allow(missing_docs)] // criterion_group! makes a public fn

#[path = "support/mod.rs"]
mod support;

use criterion::{criterion_group, Criterion};
use serde::de::IgnoredAny;
use wise_oauth::{MemoryTokenStore, WiseClient};

/// The emulator with a linked user, the bare client and the user's `WiseClient`.
struct Setup {
    _emulator: Emulator,
    bare: reqwest::Client,
    url: String,
    token: String,
    client: WiseClient,
    wise: wise_oauth::WiseOAuth,
    user: wise_oauth::UserId,
}

/// The emulator, serving on a thread and runtime of its own until this is dropped: the
/// measured calls run on a current-thread runtime where nothing else runs but their own
/// connections, so both sides pay the same scheduling and the difference is the client's
/// work.
struct Emulator {
    handle: wise_oauth_mock::MockWiseHandle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn emulator() -> Emulator {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mock = support::start_mock().await;
            support::ensure_wise_user(&mock, "bench@example.com");
            ready_tx.send(mock.clone()).unwrap();
            let _ = stopped.await;
            drop(mock);
        });
    });
    let handle = ready_rx.recv().expect("the emulator starts");
    Emulator {
        handle,
        _stop: stop,
    }
}

/// The runtime the calls are measured on: one thread, as described at [`Emulator`].
fn measuring_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

impl Setup {
    fn new(rt: &tokio::runtime::Runtime) -> Setup {
        let emulator = emulator();
        let mock = &emulator.handle;
        let (wise, token) = rt.block_on(async {
            // On the system clock, as in production (the other benches follow the
            // emulator's clock, whose reads lock the emulator's state).
            let wise = wise_oauth::WiseOAuth::builder(support::config(mock))
                .store(MemoryTokenStore::new())
                .build()
                .unwrap();
            let user = support::user(support::BENCH_USER);
            let http = support::no_redirect_client();
            support::link(&wise, mock, &http, &user, "bench@example.com").await;
            let token = wise.token(&user).await.unwrap();
            let token = token.access_token().expose_secret().to_owned();
            (wise, token)
        });
        let config = wise.config();
        let bare = support::bare_client(config);
        let url = format!("{}/v1/me", config.api_url().as_str().trim_end_matches('/'));
        let setup = Setup {
            _emulator: emulator,
            bare,
            url,
            token,
            client: wise.client(&support::user(support::BENCH_USER)),
            wise,
            user: support::user(support::BENCH_USER),
        };
        // Sanity: both succeed before being measured (and open their keep-alive connection).
        rt.block_on(async {
            setup.bare_plain_call().await;
            setup.bare_call().await;
            setup.bare_token_call().await;
            setup.client_call().await;
        });
        setup
    }

    /// A bare GET with the bearer token, the JSON answer decoded.
    async fn bare_plain_call(&self) {
        let res = self
            .bare
            .get(&self.url)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body = res.bytes().await.unwrap();
        std::hint::black_box(serde_json::from_slice::<IgnoredAny>(&body).unwrap());
    }

    /// The bare GET with the headers the client sends on every call too (a fresh
    /// correlation id, which the emulator echoes, and `Accept: application/json`), so the
    /// difference to the client is the library's own work.
    async fn bare_call(&self) {
        support::bare_get(&self.bare, &self.url, &self.token).await;
    }

    /// [`bare_call`](Self::bare_call) with the token read from the manager first
    /// (`wise.token(&user)`), as a hand-written call must: the difference to the client is
    /// then only the client's own work, not where the token comes from.
    async fn bare_token_call(&self) {
        let token = self.wise.token(&self.user).await.unwrap();
        support::bare_get(&self.bare, &self.url, token.access_token().expose_secret()).await;
    }

    /// `client.get("/v1/me")`.
    async fn client_call(&self) {
        std::hint::black_box(self.client.get::<IgnoredAny>("/v1/me").await.unwrap());
    }
}

fn client_vs_bare(c: &mut Criterion) {
    let rt = measuring_runtime();
    let setup = Setup::new(&rt);
    let mut group = c.benchmark_group("api_call");
    group.bench_function("bare_reqwest", |b| {
        b.to_async(&rt).iter(|| setup.bare_plain_call());
    });
    group.bench_function("bare_reqwest_with_correlation_id", |b| {
        b.to_async(&rt).iter(|| setup.bare_call());
    });
    group.bench_function("bare_reqwest_with_token_from_manager", |b| {
        b.to_async(&rt).iter(|| setup.bare_token_call());
    });
    group.bench_function("wise_client", |b| {
        b.to_async(&rt).iter(|| setup.client_call());
    });
    group.finish();
}

/// Rounds of the paired measurement.
const PAIRED_ROUNDS: usize = 20_000;

/// The kinds of call in a round, in the order of [`paired`]'s figures.
const KINDS: [&str; 4] = [
    "bare_reqwest_with_correlation_id",
    "bare_with_token_from_manager",
    "bare_reqwest",
    "wise_client",
];

/// The same comparison in rounds: each round makes one call of each kind (the bare call
/// with the headers the client sends, the same that first reads the token from the manager,
/// the bare call with only the token, the client), in an order that rotates from round to
/// round, and times each; the medians of each and of the per-round differences to the
/// client are printed. On a shared machine this is steadier than comparing criterion runs
/// made seconds apart, since the calls of a round see the same load.
fn paired(rt: &tokio::runtime::Runtime, setup: &Setup) {
    let mut times: [Vec<f64>; 4] = Default::default();
    rt.block_on(async {
        for round in 0..PAIRED_ROUNDS {
            for k in 0..KINDS.len() {
                let kind = (round + k) % KINDS.len();
                let t = match kind {
                    0 => timed(setup.bare_call()).await,
                    1 => timed(setup.bare_token_call()).await,
                    2 => timed(setup.bare_plain_call()).await,
                    _ => timed(setup.client_call()).await,
                };
                times[kind].push(t);
            }
        }
    });
    let client = 3;
    let over = |reference: usize| -> (f64, f64) {
        let mut diffs: Vec<f64> = times[reference]
            .iter()
            .zip(&times[client])
            .map(|(r, c)| c - r)
            .collect();
        let of_medians = median(&mut times[client].clone()) - median(&mut times[reference].clone());
        (of_medians, median(&mut diffs))
    };
    let differences: Vec<String> = (0..client)
        .map(|reference| {
            let (of_medians, per_round) = over(reference);
            format!(
                "client minus {}: difference of medians {of_medians:.2} µs, median of \
                 per-round differences {per_round:.2} µs",
                KINDS[reference]
            )
        })
        .collect();
    let medians: Vec<String> = KINDS
        .iter()
        .zip(&mut times)
        .map(|(kind, times)| format!("median {kind} {:.2} µs", median(times)))
        .collect();
    println!(
        "api_call/paired ({PAIRED_ROUNDS} rounds): {}; {}",
        medians.join(", "),
        differences.join("; ")
    );
}

async fn timed(call: impl std::future::Future<Output = ()>) -> f64 {
    let start = std::time::Instant::now();
    call.await;
    start.elapsed().as_secs_f64() * 1e6
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

criterion_group!(benches, client_vs_bare);

fn main() {
    benches();
    // `cargo test --benches` runs each function once as a test: no paired rounds then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = measuring_runtime();
    let setup = Setup::new(&rt);
    paired(&rt, &setup);
    Criterion::default().configure_from_args().final_summary();
}
