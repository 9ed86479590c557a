//! The wise-oauth demo on axum: `cargo run --example axum`.
//!
//! With no environment it starts the embedded Wise emulator and the app, and prints both
//! URLs and the demo login. Open the app, log in with any name, click "Connect Wise" and
//! sign in at the emulator as `alice@example.com` / `password1`.
//!
//! With `WISE_CLIENT_ID`, `WISE_CLIENT_SECRET` and `WISE_REDIRECT_URI` (and optionally
//! `WISE_ENV`, see `WiseConfig::from_env`) it talks to Wise instead; the redirect URI must
//! then be `http://127.0.0.1:PORT/wise/callback` or your public URL's `/wise/callback`.
//! `PORT` sets the app's port (default 3000). With `--features metrics` the app serves the
//! library's figures at `/metrics` (Prometheus text format).
//!
//! `DATABASE_URL` (`sqlite:/path/wise.db?mode=rwc`, `postgres://...` or `redis://...`)
//! keeps links in that database instead of memory, encrypted at rest with the keys of
//! `WISE_TOKEN_KEYS` (`id:BASE64_32_BYTES,...`); without it a fixed demo-only key is used,
//! with a warning.

#[path = "demo/mod.rs"]
mod demo;

use demo::shared::{self, Demo};
use wise_oauth::{WiseConfig, WiseOAuth};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wise_oauth=info".into()),
        )
        .init();

    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().map_err(|_| "PORT must be a port number")?,
        Err(_) => 3000,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let app_url = format!("http://{}", listener.local_addr()?);

    // DATABASE_URL (sqlite:, postgres: or redis:) or memory; encrypted at rest when durable.
    let storage = shared::Storage::from_env().await?;
    let (wise, emulator) = if std::env::var_os("WISE_CLIENT_ID").is_some() {
        let wise = storage
            .apply(WiseOAuth::builder(WiseConfig::from_env()?))?
            .build()?;
        (wise, None)
    } else {
        let emulator = wise_oauth_mock::MockWise::builder().start().await?;
        let wise = shared::emulator_wise(&app_url, &emulator, &storage)?;
        (wise, Some(emulator))
    };

    println!();
    println!("  wise-oauth demo (axum)");
    println!("  app:       {app_url}/");
    println!("  store:     {}", storage.kind);
    match &emulator {
        Some(emulator) => {
            println!("  emulator:  {} (Wise stand-in)", emulator.base_url());
            println!("  demo login: {app_url}/demo/login?user=alice");
            println!("  Wise login at the emulator: alice@example.com / password1");
        }
        None => println!(
            "  Wise:      {} ({})",
            wise.config().environment().authorize_url(),
            wise.config().environment().name()
        ),
    }
    println!();

    let app = demo::axum_app::app(Demo::new(wise.clone()));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // Let a token refresh that is under way finish and store its result.
    wise.shutdown(std::time::Duration::from_secs(10)).await;
    Ok(())
}
