//! The wise-oauth demo on actix-web: `cargo run --example actix`.
//!
//! The same demo as `cargo run --example axum`, served by the actix-web adapter, so the two
//! can be compared. With no environment it starts the embedded Wise emulator and the app,
//! and prints both URLs and the demo login. Open the app, log in with any name, click
//! "Connect Wise" and sign in at the emulator as `alice@example.com` / `password1`.
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

#[path = "demo"]
#[allow(dead_code)]
mod demo {
    pub(crate) mod actix_app;
    pub(crate) mod shared;
}

use std::io;

use actix_web::HttpServer;
use demo::shared::{self, Demo};
use wise_oauth::{WiseConfig, WiseOAuth};

// actix-web's usual `main`: a `ConfigError` converts into `io::Error` by itself; the demo's
// own errors (plain strings) go through `io::Error::other`.
#[actix_web::main]
async fn main() -> io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wise_oauth=info".into()),
        )
        .init();

    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| io::Error::other("PORT must be a port number"))?,
        Err(_) => 3000,
    };
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    let app_url = format!("http://{}", listener.local_addr()?);

    // DATABASE_URL (sqlite:, postgres: or redis:) or memory; encrypted at rest when durable.
    let storage = shared::Storage::from_env()
        .await
        .map_err(io::Error::other)?;
    let (wise, emulator) = if std::env::var_os("WISE_CLIENT_ID").is_some() {
        let wise = storage
            .apply(WiseOAuth::builder(WiseConfig::from_env()?))
            .map_err(io::Error::other)?
            .build()?;
        (wise, None)
    } else {
        let emulator = wise_oauth_mock::MockWise::builder().start().await?;
        let wise =
            shared::emulator_wise(&app_url, &emulator, &storage).map_err(io::Error::other)?;
        (wise, Some(emulator))
    };

    println!();
    println!("  wise-oauth demo (actix-web)");
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

    let demo = Demo::new(wise.clone());
    // actix-web stops gracefully on Ctrl-C by itself.
    HttpServer::new(move || demo::actix_app::app(demo.clone()))
        .listen(listener)?
        .run()
        .await?;
    // Let a token refresh that is under way finish and store its result.
    wise.shutdown(std::time::Duration::from_secs(10)).await;
    Ok(())
}
