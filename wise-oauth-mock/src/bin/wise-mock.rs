//! `wise-mock`: run the Wise OAuth emulator from the command line.
//!
//! The first line printed is the base URL; the rest is a short guide.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wise_oauth_mock::{
    ClientAuth, MockWise, MockWiseHandle, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URIS,
};

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
    --tls                     Serve HTTPS (a CA and server certificate made at start)
    --mtls                    Serve HTTPS and require a client certificate issued by that CA,
                              like Wise's api-mtls hosts
    --tls-dir DIR             Where --tls/--mtls write ca.pem (trust it) and, with --mtls,
                              client.pem (certificate + key for the client id)
                              [default: the system temp directory]
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
    tls: Option<ClientAuth>,
    tls_dir: Option<PathBuf>,
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
        tls: None,
        tls_dir: None,
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
            "--rotate-refresh-tokens" | "--tls" | "--mtls" => {
                if inline.is_some() {
                    return Err(format!("{flag} takes no value"));
                }
                match flag.as_str() {
                    "--tls" => args.tls = Some(args.tls.unwrap_or(ClientAuth::None)),
                    "--mtls" => args.tls = Some(ClientAuth::Required),
                    _ => args.rotate = true,
                }
            }
            "--tls-dir" => args.tls_dir = Some(PathBuf::from(value("--tls-dir")?)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.tls_dir.is_some() && args.tls.is_none() {
        return Err("--tls-dir needs --tls or --mtls".to_owned());
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
    if let Some(client_auth) = args.tls {
        builder = builder.tls(client_auth);
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
    if args.tls.is_some() {
        let dir = args.tls_dir.clone().unwrap_or_else(std::env::temp_dir);
        match write_tls_files(&wise, &dir, &args.client_id) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                eprintln!(
                    "wise-mock: cannot write the TLS files to {}: {e}",
                    dir.display()
                );
                wise.shutdown().await;
                return ExitCode::FAILURE;
            }
        }
    }
    println!("control API:     {base}/__mock/stats   (Ctrl-C to stop)");
    let _ = tokio::signal::ctrl_c().await;
    wise.shutdown().await;
    ExitCode::SUCCESS
}

/// Writes the CA certificate and, for mTLS, a client identity for `client_id` into `dir`
/// (named after the port, so several emulators can share it); returns what to print.
fn write_tls_files(
    wise: &MockWiseHandle,
    dir: &Path,
    client_id: &str,
) -> std::io::Result<Vec<String>> {
    let port = wise.addr().port();
    let mut lines = Vec::new();
    if let Some(ca) = wise.ca_certificate_pem() {
        let path = dir.join(format!("wise-mock-{port}-ca.pem"));
        std::fs::write(&path, ca)?;
        lines.push(format!(
            "CA certificate:  {} (WISE_CA_CERT)",
            path.display()
        ));
    }
    if wise.requires_client_certificate() {
        if let Some(identity) = wise.issue_client_identity(client_id) {
            let cert = dir.join(format!("wise-mock-{port}-client-cert.pem"));
            let key = dir.join(format!("wise-mock-{port}-client-key.pem"));
            std::fs::write(&cert, identity.certificate_pem())?;
            write_private(&key, identity.private_key_pem())?;
            lines.push(format!(
                "client cert:     {} (WISE_MTLS_CERT)",
                cert.display()
            ));
            lines.push(format!(
                "client key:      {} (WISE_MTLS_KEY)",
                key.display()
            ));
        }
    }
    Ok(lines)
}

/// Writes a private key readable by its owner only (where the platform has modes).
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, contents.as_bytes())
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
        assert!(a.tls.is_none());
    }

    #[test]
    fn tls_flags() {
        let Ok(Parsed::Run(a)) = p(&["--tls"]) else {
            panic!("parse failed")
        };
        assert_eq!(a.tls, Some(ClientAuth::None));
        let Ok(Parsed::Run(a)) = p(&["--tls", "--mtls", "--tls-dir", "/tmp/x"]) else {
            panic!("parse failed")
        };
        assert_eq!(a.tls, Some(ClientAuth::Required));
        assert_eq!(a.tls_dir.as_deref(), Some(Path::new("/tmp/x")));
        // --mtls then --tls stays mTLS.
        let Ok(Parsed::Run(a)) = p(&["--mtls", "--tls"]) else {
            panic!("parse failed")
        };
        assert_eq!(a.tls, Some(ClientAuth::Required));
        assert!(p(&["--tls-dir", "/tmp/x"]).is_err());
        assert!(p(&["--mtls=yes"]).is_err());
    }
}
