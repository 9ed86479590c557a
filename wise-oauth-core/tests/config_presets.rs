//! WiseConfig, Environment presets and from_env_with.

use std::collections::HashMap;
use std::time::Duration;

use wise_oauth_core::{ClientSecret, ConfigError, Environment, WiseConfig};

fn builder(redirect: &str) -> wise_oauth_core::WiseConfigBuilder {
    WiseConfig::builder("client-1", ClientSecret::new("SECRET-CANARY"), redirect)
}

#[test]
fn presets_have_the_documented_hosts() {
    let p = Environment::Production;
    assert_eq!(p.name(), "production");
    assert_eq!(p.api_url().as_str(), "https://api.wise.com/");
    assert_eq!(
        p.authorize_url().as_str(),
        "https://wise.com/oauth/authorize/"
    );
    let s = Environment::Sandbox;
    assert_eq!(s.name(), "sandbox");
    assert_eq!(s.api_url().as_str(), "https://api.wise-sandbox.com/");
    assert_eq!(
        s.authorize_url().as_str(),
        "https://wise-sandbox.com/oauth/authorize/"
    );
    let l = Environment::legacy_sandbox();
    assert_eq!(l.name(), "sandbox-legacy");
    assert_eq!(
        l.api_url().as_str(),
        "https://api.sandbox.transferwise.tech/"
    );
    assert_eq!(
        l.authorize_url().as_str(),
        "https://sandbox.transferwise.tech/oauth/authorize/"
    );
    assert_eq!(Environment::default(), Environment::Sandbox);
}

#[test]
fn defaults_are_documented_values() {
    let c = builder("https://app.example.com/wise/callback")
        .build()
        .unwrap();
    assert_eq!(c.environment(), &Environment::Sandbox);
    assert!(!c.pkce());
    assert_eq!(c.refresh_window(), Duration::from_secs(6 * 3600));
    assert_eq!(c.skew(), Duration::from_secs(60));
    assert_eq!(c.connect_timeout(), Duration::from_secs(5));
    assert_eq!(c.request_timeout(), Duration::from_secs(15));
    assert_eq!(c.max_attempts(), 3);
    assert!(c.user_agent().starts_with("wise-oauth/"));
    assert!(c.redirect_uri_is_https());
    assert_eq!(
        c.token_url().as_str(),
        "https://api.wise-sandbox.com/oauth/token"
    );
    assert_eq!(c.client_id(), "client-1");
    assert_eq!(c.client_secret().expose_secret(), "SECRET-CANARY");
}

#[test]
fn token_url_with_version_prefix_and_path_prefix() {
    let c = builder("https://app.example.com/cb")
        .environment(Environment::Production)
        .api_version("2026Q3")
        .build()
        .unwrap();
    assert_eq!(
        c.token_url().as_str(),
        "https://api.wise.com/2026Q3/oauth/token"
    );
    assert_eq!(c.api_version(), Some("2026Q3"));
    let gw = Environment::custom(
        "gateway",
        "https://sandbox.transferwise.tech/gateway/",
        "https://sandbox.transferwise.tech/oauth/authorize/",
    )
    .unwrap();
    let c = builder("https://app.example.com/cb")
        .environment(gw.clone())
        .build()
        .unwrap();
    assert_eq!(
        c.token_url().as_str(),
        "https://sandbox.transferwise.tech/gateway/oauth/token"
    );
    let c = builder("https://app.example.com/cb")
        .environment(gw)
        .api_version("2026Q4")
        .build()
        .unwrap();
    assert_eq!(
        c.token_url().as_str(),
        "https://sandbox.transferwise.tech/gateway/2026Q4/oauth/token"
    );
    for bad in ["2026q3", "2026Q5", "26Q3", "2026Q3/../x", "", "v1"] {
        assert!(
            matches!(
                builder("https://app.example.com/cb")
                    .api_version(bad)
                    .build(),
                Err(ConfigError::Invalid {
                    setting: "api_version",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn redirect_uri_is_kept_byte_for_byte() {
    let raw = "https://app.example.com/wise/callback?tenant=a%2Fb&x=1";
    let c = builder(raw).build().unwrap();
    assert_eq!(c.redirect_uri(), raw);
}

#[test]
fn http_redirect_uri_only_for_loopback() {
    for ok in [
        "http://127.0.0.1:3000/wise/callback",
        "http://localhost:8080/cb",
        "http://[::1]:8080/cb",
        "http://127.1.2.3/cb",
    ] {
        let c = builder(ok).build().unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert!(!c.redirect_uri_is_https());
    }
    for bad in [
        "http://app.example.com/cb",
        "http://10.0.0.1/cb",
        "http://localhost.evil.com/cb",
        "ftp://app.example.com/cb",
        "javascript:alert(1)",
        "myapp://cb",
        "https://app.example.com/cb#frag",
        "https://user:pw@app.example.com/cb",
        "/relative/cb",
        "",
        "https://app.example.com/c b",
    ] {
        assert!(
            matches!(
                builder(bad).build(),
                Err(ConfigError::InvalidUrl {
                    setting: "redirect_uri",
                    ..
                })
            ),
            "{bad:?} should be rejected"
        );
    }
}

#[test]
fn mobile_redirect_uri_may_use_a_custom_scheme() {
    let c = builder("https://app.example.com/cb")
        .mobile_redirect_uri("wiseoauthdemo://wise/callback")
        .build()
        .unwrap();
    assert_eq!(
        c.mobile_redirect_uri(),
        Some("wiseoauthdemo://wise/callback")
    );
    assert!(builder("https://app.example.com/cb")
        .mobile_redirect_uri("https://app.example.com/m")
        .build()
        .is_ok());
    for bad in [
        "javascript:alert(1)",
        "data:text/html,x",
        "file:///etc/passwd",
        "http://evil.example.com/cb",
        "myapp://cb#x",
        "not a uri",
    ] {
        assert!(
            matches!(
                builder("https://app.example.com/cb")
                    .mobile_redirect_uri(bad)
                    .build(),
                Err(ConfigError::InvalidUrl {
                    setting: "mobile_redirect_uri",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn custom_environments_are_validated() {
    assert!(Environment::custom(
        "emu",
        "http://127.0.0.1:9/",
        "http://127.0.0.1:9/oauth/authorize"
    )
    .is_ok());
    assert!(matches!(
        Environment::custom("emu", "http://api.example.com", "https://example.com/a"),
        Err(ConfigError::InvalidUrl {
            setting: "api_url",
            ..
        })
    ));
    assert!(matches!(
        Environment::custom("emu", "https://api.example.com", "http://example.com/a"),
        Err(ConfigError::InvalidUrl {
            setting: "authorize_url",
            ..
        })
    ));
    assert!(Environment::custom(
        "emu",
        "https://api.example.com?x=1",
        "https://example.com/a"
    )
    .is_err());
    assert!(Environment::custom("", "https://api.example.com", "https://example.com/a").is_err());
    assert!(Environment::custom(
        "production",
        "https://api.example.com",
        "https://example.com/a"
    )
    .is_err());
    // A hand-built Custom variant is validated by build().
    let env = Environment::Custom {
        name: "x".into(),
        api_url: "http://api.example.com".parse().unwrap(),
        authorize_url: "https://example.com/a".parse().unwrap(),
    };
    assert!(builder("https://app.example.com/cb")
        .environment(env)
        .build()
        .is_err());
}

#[test]
fn other_settings_are_validated_once_in_build() {
    let b = || builder("https://app.example.com/cb");
    assert!(matches!(
        WiseConfig::builder("", ClientSecret::new("s"), "https://a.example/cb").build(),
        Err(ConfigError::Invalid {
            setting: "client_id",
            ..
        })
    ));
    assert!(matches!(
        WiseConfig::builder("id", ClientSecret::new(""), "https://a.example/cb").build(),
        Err(ConfigError::Invalid {
            setting: "client_secret",
            ..
        })
    ));
    assert!(b().max_attempts(0).build().is_err());
    assert!(b().max_attempts(11).build().is_err());
    assert!(b().max_attempts(10).build().is_ok());
    assert!(b().request_timeout(Duration::ZERO).build().is_err());
    assert!(b().connect_timeout(Duration::ZERO).build().is_err());
    assert!(b()
        .refresh_window(Duration::from_secs(12 * 3600))
        .build()
        .is_err());
    assert!(b().user_agent("bad\nagent").build().is_err());
    assert!(matches!(
        b().client_identity(b"not a pem".to_vec()).build(),
        Err(ConfigError::Invalid {
            setting: "client_identity",
            ..
        })
    ));
    let c = b()
        .pkce(true)
        .skew(Duration::from_secs(30))
        .refresh_window(Duration::from_secs(3600))
        .build()
        .unwrap();
    assert!(c.pkce());
    assert_eq!(c.skew(), Duration::from_secs(30));
    assert_eq!(c.refresh_window(), Duration::from_secs(3600));
    assert!(!c.has_client_identity());
}

#[test]
fn debug_redacts_the_secret() {
    let c = builder("https://app.example.com/cb").build().unwrap();
    let text = format!("{c:?}");
    assert!(!text.contains("SECRET-CANARY"), "{text}");
    assert!(text.contains("client-1"));
    let b = builder("https://app.example.com/cb");
    assert!(!format!("{b:?}").contains("SECRET-CANARY"));
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

const BASE: [(&str, &str); 3] = [
    ("WISE_CLIENT_ID", "client-env"),
    ("WISE_CLIENT_SECRET", "SECRET-CANARY"),
    ("WISE_REDIRECT_URI", "https://app.example.com/wise/callback"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v = BASE.to_vec();
    v.extend_from_slice(extra);
    v
}

#[test]
fn from_env_reads_every_variable() {
    let c = WiseConfig::from_env_with(env_of(&with(&[
        ("WISE_ENV", "production"),
        ("WISE_MOBILE_REDIRECT_URI", "myapp://wise/callback"),
        ("WISE_API_VERSION", "2026Q3"),
    ])))
    .unwrap();
    assert_eq!(c.environment(), &Environment::Production);
    assert_eq!(c.client_id(), "client-env");
    assert_eq!(c.client_secret().expose_secret(), "SECRET-CANARY");
    assert_eq!(c.redirect_uri(), "https://app.example.com/wise/callback");
    assert_eq!(c.mobile_redirect_uri(), Some("myapp://wise/callback"));
    assert_eq!(
        c.token_url().as_str(),
        "https://api.wise.com/2026Q3/oauth/token"
    );

    let c = WiseConfig::from_env_with(env_of(&BASE)).unwrap();
    assert_eq!(
        c.environment(),
        &Environment::Sandbox,
        "sandbox when WISE_ENV is unset"
    );
    let c = WiseConfig::from_env_with(env_of(&with(&[("WISE_ENV", "sandbox-legacy")]))).unwrap();
    assert_eq!(c.environment().name(), "sandbox-legacy");

    let c = WiseConfig::from_env_with(env_of(&with(&[
        ("WISE_ENV", "custom"),
        ("WISE_API_URL", "http://127.0.0.1:8089"),
        (
            "WISE_AUTHORIZE_URL",
            "http://127.0.0.1:8089/oauth/authorize",
        ),
    ])))
    .unwrap();
    assert_eq!(c.environment().name(), "custom");
    assert_eq!(c.token_url().as_str(), "http://127.0.0.1:8089/oauth/token");
}

fn env_err(pairs: &[(&str, &str)]) -> ConfigError {
    WiseConfig::from_env_with(env_of(pairs)).unwrap_err()
}

#[test]
fn from_env_errors_name_the_variable() {
    let missing = |var: &str| {
        BASE.iter()
            .copied()
            .filter(|(k, _)| *k != var)
            .collect::<Vec<_>>()
    };
    for var in ["WISE_CLIENT_ID", "WISE_CLIENT_SECRET", "WISE_REDIRECT_URI"] {
        let err = env_err(&missing(var));
        assert!(
            matches!(err, ConfigError::MissingEnv { var: v, .. } if v == var),
            "{err:?}"
        );
        assert!(err.to_string().contains(var), "{err}");
    }
    // Empty counts as missing.
    let mut empty = BASE.to_vec();
    empty[0] = ("WISE_CLIENT_ID", "  ");
    assert!(matches!(
        env_err(&empty),
        ConfigError::MissingEnv {
            var: "WISE_CLIENT_ID",
            ..
        }
    ));

    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[("WISE_ENV", "staging")], "WISE_ENV"),
        (&[("WISE_ENV", "custom")], "WISE_API_URL"),
        (
            &[
                ("WISE_ENV", "custom"),
                ("WISE_API_URL", "http://api.example.com"),
            ],
            "WISE_API_URL",
        ),
        (
            &[
                ("WISE_ENV", "custom"),
                ("WISE_API_URL", "https://api.example.com"),
                ("WISE_AUTHORIZE_URL", "nope"),
            ],
            "WISE_AUTHORIZE_URL",
        ),
        (
            &[("WISE_API_URL", "https://api.example.com")],
            "WISE_API_URL",
        ),
        (&[("WISE_API_VERSION", "latest")], "WISE_API_VERSION"),
        (
            &[("WISE_MOBILE_REDIRECT_URI", "javascript:alert(1)")],
            "WISE_MOBILE_REDIRECT_URI",
        ),
    ];
    for (extra, var) in cases {
        let err = env_err(&with(extra));
        let named = match &err {
            ConfigError::MissingEnv { var, .. } | ConfigError::InvalidEnv { var, .. } => *var,
            other => panic!("{extra:?}: {other:?}"),
        };
        assert_eq!(named, var, "{extra:?}");
        assert!(err.to_string().contains(var));
        assert!(err.to_string().contains("expected"));
    }
    let mut bad_redirect = BASE.to_vec();
    bad_redirect[2] = ("WISE_REDIRECT_URI", "http://app.example.com/cb");
    assert!(matches!(
        env_err(&bad_redirect),
        ConfigError::InvalidEnv {
            var: "WISE_REDIRECT_URI",
            ..
        }
    ));
    // Errors never contain the secret.
    assert!(!format!("{:?}", env_err(&missing("WISE_REDIRECT_URI"))).contains("CANARY"));
}

#[test]
fn client_identity_accepts_a_pem_certificate_and_key() {
    // A throwaway self-signed test certificate (never used anywhere else).
    let pem = include_bytes!("fixtures/test_client_identity.pem");
    let c = builder("https://app.example.com/cb")
        .environment(
            Environment::custom(
                "mtls",
                "https://api-mtls.wise-sandbox.com",
                "https://wise-sandbox.com/oauth/authorize/",
            )
            .unwrap(),
        )
        .client_identity(pem.to_vec())
        .build()
        .unwrap();
    assert!(c.has_client_identity());
    assert!(!format!("{c:?}").contains("PRIVATE KEY"));
    // A certificate without its key is refused.
    let cert_only: Vec<u8> = String::from_utf8_lossy(pem)
        .split("-----BEGIN PRIVATE KEY-----")
        .next()
        .unwrap()
        .as_bytes()
        .to_vec();
    assert!(matches!(
        builder("https://app.example.com/cb")
            .client_identity(cert_only)
            .build(),
        Err(ConfigError::Invalid {
            setting: "client_identity",
            ..
        })
    ));
}
