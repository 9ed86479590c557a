//! `wise-mock`: run the Wise OAuth emulator from the command line.
//!
//! The first line printed is the base URL; the rest is a short guide.

use std::net::SocketAddr;
use std::process::ExitCode;

use wise_oauth_mock::{MockWise, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URIS};

const HELP: &str = "\
wise-mock: a stateful emulator of Wise's OAuth 2.0 surface

USAGE:
    wise-mock [OPTIONS]

OPTIONS:
    --addr ADDR               Listen address [default: 127.0.0.1:8090]
    --client-id ID            Client id [default: wise-demo-client]
    --client-secret SECRET    Client secret [default: wise-demo-secret]
    --redirect-uri URI        Registered redirect URI, exact match; repeat for several
                              (e.g. a web URL and a mobile custom-scheme URL)
                              [default: http://127.0.0.1:3000/wise/callback,
                               http://localhost:3000/wise/callback,
                               wiseoauthdemo://wise/callback]
    --auto-approve EMAIL      Skip the pages: approve at once as this user with the
                              user's first profile
    --rotate-refresh-tokens   Return a new refresh token on every refresh
    -h, --help                Print this help

Seed users: alice@example.com / password1 (profiles 30000000 personal, 30000001 business),
            bob@example.com / password1 (2FA code 111111; profile 30000002).
Control API: /__mock/stats, /__mock/users, /__mock/faults, /__mock/clock, /__mock/reset.";

#[derive(Debug)]
struct Args {
    addr: SocketAddr,
    client_id: String,
    client_secret: String,
    redirect_uris: Vec<String>,
    auto_approve: Option<String>,
    rotate: bool,
}

enum Parsed {
    Run(Args),
    Help,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 8090)),
        client_id: DEMO_CLIENT_ID.to_owned(),
        client_secret: DEMO_CLIENT_SECRET.to_owned(),
        redirect_uris: Vec::new(),
        auto_approve: None,
        rotate: false,
    };
    while let Some(arg) = argv.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone().or_else(|| argv.next()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--addr" => {
                let v = value("--addr")?;
                args.addr = v
                    .parse()
                    .map_err(|_| format!("--addr: {v:?} is not an address like 127.0.0.1:8090"))?;
            }
            "--client-id" => args.client_id = value("--client-id")?,
            "--client-secret" => args.client_secret = value("--client-secret")?,
            "--redirect-uri" => args.redirect_uris.push(value("--redirect-uri")?),
            "--auto-approve" => args.auto_approve = Some(value("--auto-approve")?),
            "--rotate-refresh-tokens" => {
                if inline.is_some() {
                    return Err("--rotate-refresh-tokens takes no value".to_owned());
                }
                args.rotate = true;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.redirect_uris.is_empty() {
        args.redirect_uris = DEMO_REDIRECT_URIS.iter().map(|s| (*s).to_owned()).collect();
    }
    Ok(Parsed::Run(args))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Help) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("wise-mock: {e}\nTry `wise-mock --help`.");
            return ExitCode::from(2);
        }
    };
    let mut builder = MockWise::builder()
        .addr(args.addr)
        .client(
            &args.client_id,
            &args.client_secret,
            args.redirect_uris.clone(),
        )
        .rotate_refresh_tokens(args.rotate);
    if let Some(email) = &args.auto_approve {
        builder = builder.auto_approve(email);
    }
    let wise = match builder.start().await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("wise-mock: cannot listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let base = wise.base_url();
    println!("{base}");
    let example = format!(
        "{}?client_id={}&redirect_uri={}&state=demo-state&response_type=code",
        wise.authorize_url(),
        encode(&args.client_id),
        encode(&args.redirect_uris[0]),
    );
    println!("authorize page:  {example}");
    println!(
        "token endpoint:  {base}/oauth/token (HTTP Basic {}:<secret>)",
        args.client_id
    );
    println!("redirect URIs:   {}", args.redirect_uris.join(", "));
    match &args.auto_approve {
        Some(e) => println!("auto-approve:    {e}"),
        None => println!(
            "log in as alice@example.com / password1, or bob@example.com / password1 (2FA 111111)"
        ),
    }
    println!(
        "refresh-token rotation: {}",
        if args.rotate { "on" } else { "off" }
    );
    println!("control API:     {base}/__mock/stats   (Ctrl-C to stop)");
    let _ = tokio::signal::ctrl_c().await;
    wise.shutdown().await;
    ExitCode::SUCCESS
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Parsed, String> {
        parse(a.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn flags() {
        let Ok(Parsed::Run(a)) = p(&[
            "--addr=127.0.0.1:0",
            "--redirect-uri",
            "http://x/cb",
            "--redirect-uri",
            "app://cb",
            "--rotate-refresh-tokens",
            "--auto-approve",
            "bob@example.com",
        ]) else {
            panic!("parse failed")
        };
        assert_eq!(a.redirect_uris, vec!["http://x/cb", "app://cb"]);
        assert!(a.rotate);
        assert_eq!(a.auto_approve.as_deref(), Some("bob@example.com"));
        assert!(matches!(p(&["--help"]), Ok(Parsed::Help)));
        assert!(p(&["--addr"]).is_err());
        assert!(p(&["--nope"]).is_err());
        assert!(p(&["--addr", "nonsense"]).is_err());
    }
}
