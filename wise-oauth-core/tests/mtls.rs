//! mTLS over real TLS on loopback: the emulator serves HTTPS with a CA of its own and
//! requires a client certificate (like Wise's `api-mtls.*` hosts); the library trusts that
//! CA and presents the certificate the emulator issued.
//!
//! - without a client certificate, or with one from another CA, the code exchange fails
//!   with `WiseError::Tls { ClientCertificateRefused }` (a configuration error naming mTLS,
//!   never retried, never a re-link), and Wise's token endpoint is never reached;
//! - without the CA the server is untrusted (`ServerCertificateUntrusted`);
//! - with both, linking, the token exchange, a refresh and an API call work;
//! - the same settings come from `WISE_MTLS_CERT`, `WISE_MTLS_KEY` and `WISE_CA_CERT`.

mod manager_support;

use std::time::Duration;

use manager_support::MockClock;
use wise_oauth_core::{
    ClientError, ClientSecret, ConfigError, Environment, FlowError, MemoryTokenStore, TlsProblem,
    TokenError, TokenStore, UserId, WiseConfig, WiseError, WiseOAuth,
};
use wise_oauth_mock::{ClientAuth, ClientIdentity, MockWise, MockWiseHandle, DEMO_CLIENT_ID};

const SECRET: &str = wise_oauth_mock::DEMO_CLIENT_SECRET;
const REDIRECT_URI: &str = "http://127.0.0.1:3000/wise/callback";
const ALICE: &str = "alice@example.com";

async fn mtls_emulator() -> MockWiseHandle {
    let emulator = MockWise::builder()
        .tls(ClientAuth::Required)
        .auto_approve(ALICE)
        .start()
        .await
        .expect("start the emulator");
    assert!(emulator.base_url().starts_with("https://127.0.0.1:"));
    emulator
}

/// The library on the emulator, trusting its CA when `trust_ca`, presenting `identity`.
fn wise(emulator: &MockWiseHandle, identity: Option<&ClientIdentity>, trust_ca: bool) -> WiseOAuth {
    wise_on(emulator, identity, trust_ca, MemoryTokenStore::new())
}

/// Like [`wise`], on `store`.
fn wise_on(
    emulator: &MockWiseHandle,
    identity: Option<&ClientIdentity>,
    trust_ca: bool,
    store: MemoryTokenStore,
) -> WiseOAuth {
    let env = Environment::custom("emulator", &emulator.base_url(), &emulator.authorize_url())
        .expect("emulator URLs");
    let mut config = WiseConfig::builder(DEMO_CLIENT_ID, ClientSecret::new(SECRET), REDIRECT_URI)
        .environment(env)
        .max_attempts(3);
    if let Some(identity) = identity {
        config = config.client_identity(identity.to_pem());
    }
    if trust_ca {
        config = config.root_certificate(emulator.ca_certificate_pem().expect("TLS on"));
    }
    WiseOAuth::builder(config.build().expect("configuration"))
        .store(store)
        .clock(MockClock(emulator.clone()))
        .build()
        .expect("wise-oauth")
}

/// The callback query for a flow of `wise`: the "browser" (which has a certificate of its
/// own) opens the authorize page, auto-approved, and reads the redirect.
async fn authorize(
    emulator: &MockWiseHandle,
    wise: &WiseOAuth,
    user: &UserId,
) -> (String, Option<String>) {
    let start = wise
        .start_link(user, &Default::default(), None)
        .await
        .expect("start link");
    let cookie = start
        .set_cookie()
        .split(';')
        .next()
        .and_then(|c| c.split_once('='))
        .map(|(_, v)| v.to_owned());
    let browser_identity = emulator.issue_client_identity("browser").unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(
            reqwest::Certificate::from_pem(emulator.ca_certificate_pem().unwrap().as_bytes())
                .unwrap(),
        )
        .identity(reqwest::Identity::from_pem(browser_identity.to_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = browser
        .get(start.authorize_url().clone())
        .send()
        .await
        .expect("authorize page over mTLS");
    assert!(response.status().is_redirection(), "{}", response.status());
    let location = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    (location.query().expect("callback query").to_owned(), cookie)
}

fn tls_problem(err: &FlowError) -> TlsProblem {
    match err {
        FlowError::Exchange(WiseError::Tls { problem, source }) => {
            assert!(
                source.is_some(),
                "the transport failure is kept as the source"
            );
            *problem
        }
        other => panic!("expected a TLS error of the exchange, got {other:?}"),
    }
}

#[tokio::test]
async fn without_a_client_certificate_the_exchange_fails_with_a_typed_mtls_error() {
    let emulator = mtls_emulator().await;
    let wise = wise(&emulator, None, true);
    let user = UserId::new("no-cert").unwrap();
    let (query, cookie) = authorize(&emulator, &wise, &user).await;
    let err = wise
        .complete_link(&user, &query, cookie.as_deref())
        .await
        .expect_err("no client certificate");
    assert_eq!(tls_problem(&err), TlsProblem::ClientCertificateRefused);
    assert!(err.to_string().contains("mTLS"), "{err}");
    assert_eq!(err.status().as_u16(), 500, "a configuration error");
    assert_eq!(err.reason(), "misconfigured");
    // The handshake failed: no request reached the token endpoint, and none was repeated.
    assert_eq!(emulator.stats().token_requests("authorization_code"), 0);
    assert!(matches!(
        wise.token(&user).await,
        Err(TokenError::NotLinked)
    ));
    // The client-credentials grant fails the same way, as a configuration error.
    assert_eq!(
        wise.app_token().await.unwrap_err(),
        TokenError::Misconfigured
    );
    assert_eq!(emulator.stats().token_requests("client_credentials"), 0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let emulator = mtls_emulator().await;
    let other = MockWise::builder()
        .tls(ClientAuth::Required)
        .start()
        .await
        .unwrap();
    let foreign = other.issue_client_identity(DEMO_CLIENT_ID).unwrap();
    let wise = wise(&emulator, Some(&foreign), true);
    let user = UserId::new("foreign-cert").unwrap();
    let (query, cookie) = authorize(&emulator, &wise, &user).await;
    let err = wise
        .complete_link(&user, &query, cookie.as_deref())
        .await
        .expect_err("a foreign client certificate");
    assert_eq!(tls_problem(&err), TlsProblem::ClientCertificateRefused);
    assert_eq!(emulator.stats().token_requests("authorization_code"), 0);
    other.shutdown().await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn without_the_ca_the_server_is_untrusted() {
    let emulator = mtls_emulator().await;
    let identity = emulator.issue_client_identity(DEMO_CLIENT_ID).unwrap();
    let wise = wise(&emulator, Some(&identity), false);
    let user = UserId::new("no-ca").unwrap();
    let (query, cookie) = authorize(&emulator, &wise, &user).await;
    let err = wise
        .complete_link(&user, &query, cookie.as_deref())
        .await
        .expect_err("an untrusted server");
    assert_eq!(tls_problem(&err), TlsProblem::ServerCertificateUntrusted);
    assert!(err.to_string().contains("not trusted"), "{err}");
    assert_eq!(emulator.stats().token_requests("authorization_code"), 0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn with_the_right_certificate_link_refresh_and_api_calls_work() {
    let emulator = mtls_emulator().await;
    let identity = emulator.issue_client_identity(DEMO_CLIENT_ID).unwrap();
    let wise = wise(&emulator, Some(&identity), true);
    let user = UserId::new("mtls-user").unwrap();
    let (query, cookie) = authorize(&emulator, &wise, &user).await;
    let done = wise
        .complete_link(&user, &query, cookie.as_deref())
        .await
        .expect("link over mTLS");
    assert_eq!(done.profile_id().get(), 30000000);
    assert_eq!(emulator.stats().token_requests("authorization_code"), 1);

    let first = wise.token(&user).await.expect("token");
    assert!(emulator.access_token_is_valid(first.access_token().expose_secret()));

    // Past the access token's lifetime: one refresh over mTLS.
    emulator.advance_clock(Duration::from_secs(13 * 3600));
    let second = wise.token(&user).await.expect("refreshed token");
    assert_ne!(
        first.access_token().expose_secret(),
        second.access_token().expose_secret()
    );
    assert_eq!(emulator.stats().token_requests("refresh_token"), 1);
    assert!(emulator.access_token_is_valid(second.access_token().expose_secret()));

    // An API call as the user.
    let profiles = wise.client(&user).profiles().await.expect("API call");
    assert!(
        profiles.iter().any(|p| p.id.get() == 30000000),
        "{profiles:?}"
    );
    emulator.shutdown().await;
}

/// An instance that lost its client certificate (another deployment on the same store):
/// its API calls and refreshes fail as configuration errors naming mTLS, and the link is
/// neither marked for re-linking nor changed, so a correctly configured instance goes on.
#[tokio::test]
async fn a_missing_certificate_never_marks_the_link() {
    let emulator = mtls_emulator().await;
    let identity = emulator.issue_client_identity(DEMO_CLIENT_ID).unwrap();
    let store = MemoryTokenStore::new();
    let good = wise_on(&emulator, Some(&identity), true, store.clone());
    let bad = wise_on(&emulator, None, true, store.clone());
    let user = UserId::new("cert-lost").unwrap();
    let (query, cookie) = authorize(&emulator, &good, &user).await;
    good.complete_link(&user, &query, cookie.as_deref())
        .await
        .expect("link over mTLS");
    let key = good.link_key(&user);
    let stored = store.load(&key).await.unwrap().expect("linked");

    // The token is still valid: the API call itself is refused at the handshake.
    match bad.client(&user).profiles().await {
        Err(ClientError::Wise(WiseError::Tls { problem, .. })) => {
            assert_eq!(problem, TlsProblem::ClientCertificateRefused)
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    // Expired: the refresh is refused at the handshake; a configuration error.
    emulator.advance_clock(Duration::from_secs(13 * 3600));
    assert_eq!(
        bad.token(&user).await.unwrap_err(),
        TokenError::Misconfigured
    );
    assert_eq!(emulator.stats().token_requests("refresh_token"), 0);
    let status = bad.status(&user).await.unwrap().expect("still linked");
    assert!(!status.relink_required);
    assert_eq!(store.load(&key).await.unwrap(), Some(stored), "unchanged");
    // The configured instance refreshes with the stored refresh token.
    let token = good.token(&user).await.expect("refresh over mTLS");
    assert!(emulator.access_token_is_valid(token.access_token().expose_secret()));
    assert_eq!(emulator.stats().token_successes("refresh_token"), 1);
    emulator.shutdown().await;
}

// ----- the environment -------------------------------------------------------------------

fn vars<'a>(pairs: &'a [(&'a str, String)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

#[tokio::test]
async fn mtls_settings_come_from_the_environment() {
    let emulator = mtls_emulator().await;
    let identity = emulator.issue_client_identity(DEMO_CLIENT_ID).unwrap();
    let dir = std::env::temp_dir().join(format!("wise-mtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert_file = dir.join("client-cert.pem");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&cert_file, identity.certificate_pem()).unwrap();
    std::fs::write(&ca_file, emulator.ca_certificate_pem().unwrap()).unwrap();

    let base = [
        ("WISE_ENV", "custom".to_owned()),
        ("WISE_API_URL", emulator.base_url()),
        ("WISE_AUTHORIZE_URL", emulator.authorize_url()),
        ("WISE_CLIENT_ID", DEMO_CLIENT_ID.to_owned()),
        ("WISE_CLIENT_SECRET", SECRET.to_owned()),
        ("WISE_REDIRECT_URI", REDIRECT_URI.to_owned()),
    ];
    // A file path for the certificate and the CA, the PEM text itself for the key.
    let mut all = base.to_vec();
    all.extend([
        ("WISE_MTLS_CERT", cert_file.display().to_string()),
        ("WISE_MTLS_KEY", identity.private_key_pem().to_owned()),
        ("WISE_CA_CERT", ca_file.display().to_string()),
    ]);
    let config = WiseConfig::from_env_with(vars(&all)).expect("mTLS from the environment");
    assert!(config.has_client_identity());
    assert_eq!(config.root_certificates().count(), 1);
    assert!(!format!("{config:?}").contains("PRIVATE KEY"));
    // The configuration works over mTLS: a client-credentials token.
    let wise = WiseOAuth::builder(config).build().unwrap();
    wise.app_token()
        .await
        .expect("client credentials over mTLS");
    assert_eq!(emulator.stats().token_requests("client_credentials"), 1);

    // A certificate without its key, or a key without its certificate.
    for (set, missing) in [
        ("WISE_MTLS_CERT", "WISE_MTLS_KEY"),
        ("WISE_MTLS_KEY", "WISE_MTLS_CERT"),
    ] {
        let mut one = base.to_vec();
        one.push((set, identity.certificate_pem().to_owned()));
        match WiseConfig::from_env_with(vars(&one)) {
            Err(ConfigError::MissingEnv { var, .. }) => assert_eq!(var, missing),
            other => panic!("{set} alone: {other:?}"),
        }
    }
    // Unreadable paths and unusable PEM name the variable, never its content.
    let key_text = identity.private_key_pem().to_owned();
    let other_key = emulator
        .issue_client_identity("other")
        .unwrap()
        .private_key_pem()
        .to_owned();
    let cases: [(&str, &str, String); 5] = [
        (
            "WISE_CA_CERT",
            "WISE_CA_CERT",
            "/nonexistent/ca.pem".to_owned(),
        ),
        (
            "WISE_CA_CERT",
            "WISE_CA_CERT",
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----".to_owned(),
        ),
        (
            "WISE_MTLS_CERT",
            "WISE_MTLS_CERT",
            "/nonexistent/cert.pem".to_owned(),
        ),
        // A certificate with a key that is not a key.
        (
            "WISE_MTLS_KEY",
            "WISE_MTLS_CERT",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----".to_owned(),
        ),
        // Another certificate's key.
        ("WISE_MTLS_KEY", "WISE_MTLS_CERT", other_key),
    ];
    for (var, named, value) in cases {
        let mut bad = base.to_vec();
        if var != "WISE_MTLS_CERT" {
            bad.push(("WISE_MTLS_CERT", identity.certificate_pem().to_owned()));
        }
        if var != "WISE_MTLS_KEY" {
            bad.push(("WISE_MTLS_KEY", key_text.clone()));
        }
        bad.push((var, value.clone()));
        let err = WiseConfig::from_env_with(vars(&bad)).expect_err(var);
        match &err {
            ConfigError::InvalidEnv { var: v, .. } => assert_eq!(*v, named, "{var}: {err}"),
            other => panic!("{var}: {other:?}"),
        }
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("BEGIN") && !shown.contains("nonexistent"),
            "{shown}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
    emulator.shutdown().await;
}

#[test]
fn mtls_presets_keep_the_environment_name() {
    let vars_for = |env: &str| {
        let pairs = [
            ("WISE_ENV", env.to_owned()),
            ("WISE_CLIENT_ID", "id".to_owned()),
            ("WISE_CLIENT_SECRET", "secret".to_owned()),
            ("WISE_REDIRECT_URI", "https://app.example.com/cb".to_owned()),
        ];
        WiseConfig::from_env_with(vars(&pairs)).unwrap()
    };
    let production = vars_for("production-mtls");
    assert_eq!(production.environment(), &Environment::ProductionMtls);
    assert_eq!(
        production.token_url().as_str(),
        "https://api-mtls.transferwise.com/oauth/token"
    );
    assert_eq!(
        production.authorize_url().as_str(),
        "https://wise.com/oauth/authorize/"
    );
    let sandbox = vars_for("sandbox-mtls");
    assert_eq!(
        sandbox.token_url().as_str(),
        "https://api-mtls.wise-sandbox.com/oauth/token"
    );
    // Same names as the TLS-only hosts: the stored links stay the same.
    assert_eq!(production.environment().name(), "production");
    assert_eq!(sandbox.environment().name(), "sandbox");
    assert!(production.environment().is_production());
    assert!(!sandbox.environment().is_production());
}
