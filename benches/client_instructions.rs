//! The API client's cost in instructions, counted by `valgrind --tool=callgrind`
//! (deterministic, unlike the wall-clock `benches/client.rs`): `WiseClient::get` of the
//! emulator's `GET /v1/me` against a bare reqwest GET of the same route that sends the same
//! headers (bearer token, a fresh `X-External-Correlation-Id`, `Accept`) and decodes the
//! same JSON. `scripts/bench.sh instructions` runs it and prints the rows.
//!
//! ```text
//! cargo bench --bench client_instructions -- <bare|client> <calls>
//! valgrind --tool=callgrind --separate-threads=yes --toggle-collect='*client_instructions::measured*' <bench binary> <bare|client> <calls>
//! ```
//!
//! The emulator serves on a thread and runtime of its own; the calls run one after the
//! other on a current-thread runtime, which also runs their connections (the user is linked
//! on it, so the client's pooled connections live there too). callgrind collects inside
//! [`measured`] on that thread, and everywhere on the emulator's thread (what the server
//! spends answering, which differs if the client sends more). The script runs each side at
//! two call counts and takes the difference, so what is paid once cancels out:
//! instructions per call = (Ir(N2) − Ir(N1)) / (N2 − N1).

#[path = "support/mod.rs"]
mod support;

use std::future::Future;
use std::pin::Pin;

use serde::de::IgnoredAny;
use wise_oauth::{MemoryTokenStore, WiseOAuth};

/// One call, boxed so that both sides run through the same [`measured`].
type Call<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// The measured part: `calls` calls, one after the other, on the current-thread runtime.
#[inline(never)]
fn measured<'a>(rt: &tokio::runtime::Runtime, call: &mut dyn FnMut() -> Call<'a>, calls: u64) {
    rt.block_on(async {
        for _ in 0..calls {
            call().await;
        }
    });
}

fn main() {
    // `cargo bench` appends `--bench`; it carries no value here.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (side, calls) = match args.as_slice() {
        [side, calls] if side == "bare" || side == "client" => {
            (side.clone(), calls.parse::<u64>().expect("a call count"))
        }
        // As `cargo bench` runs every target: a check that both sides answer.
        [] => (String::new(), 100),
        _ => {
            eprintln!("usage: client_instructions [<bare|client> <calls>]");
            std::process::exit(2);
        }
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
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
        });
    });
    let mock = ready_rx.recv().expect("the emulator starts");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let user = support::user(support::BENCH_USER);
    let (wise, token) = rt.block_on(async {
        // The system clock, as in production.
        let wise = WiseOAuth::builder(support::config(&mock))
            .store(MemoryTokenStore::new())
            .build()
            .unwrap();
        let http = support::no_redirect_client();
        support::link(&wise, &mock, &http, &user, "bench@example.com").await;
        let token = wise.token(&user).await.unwrap();
        let token = token.access_token().expose_secret().to_owned();
        (wise, token)
    });
    let config = wise.config();
    let bare = support::bare_client(config);
    let url = format!("{}/v1/me", config.api_url().as_str().trim_end_matches('/'));
    let client = wise.client(&user);
    let mut bare_call = || -> Call<'_> { Box::pin(support::bare_get(&bare, &url, &token)) };
    let mut client_call = || -> Call<'_> {
        Box::pin(async {
            std::hint::black_box(client.get::<IgnoredAny>("/v1/me").await.unwrap());
        })
    };
    if side != "client" {
        run(&rt, "bare", &mut bare_call, calls);
    }
    if side != "bare" {
        run(&rt, "client", &mut client_call, calls);
    }
}

/// Warms `call` up (both connections open, every lazy path taken once), then measures it.
fn run<'a>(
    rt: &tokio::runtime::Runtime,
    name: &str,
    call: &mut dyn FnMut() -> Call<'a>,
    calls: u64,
) {
    rt.block_on(async {
        call().await;
        call().await;
    });
    measured(rt, call, calls);
    println!("CALLS {name} {calls}");
}
