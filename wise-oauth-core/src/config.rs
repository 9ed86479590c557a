//! Configuration: [`WiseConfig`], the [`Environment`] presets and [`WiseConfig::from_env`].

use std::fmt;
use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use thiserror::Error;
use url::Url;

use crate::secret::ClientSecret;

static PRODUCTION_API: LazyLock<Url> =
    LazyLock::new(|| Url::parse("https://api.wise.com").expect("static URL"));
static PRODUCTION_AUTHORIZE: LazyLock<Url> =
    LazyLock::new(|| Url::parse("https://wise.com/oauth/authorize/").expect("static URL"));
static SANDBOX_API: LazyLock<Url> =
    LazyLock::new(|| Url::parse("https://api.wise-sandbox.com").expect("static URL"));
static SANDBOX_AUTHORIZE: LazyLock<Url> =
    LazyLock::new(|| Url::parse("https://wise-sandbox.com/oauth/authorize/").expect("static URL"));
static PRODUCTION_MTLS_API: LazyLock<Url> =
    LazyLock::new(|| Url::parse("https://api-mtls.transferwise.com").expect("static URL"));
static SANDBOX_MTLS_API: LazyLock<Url> =
    LazyLock::new(|| Url::parse("https://api-mtls.wise-sandbox.com").expect("static URL"));

/// The default proactive refresh window (refresh this long before expiry).
pub const DEFAULT_REFRESH_WINDOW: Duration = Duration::from_secs(6 * 3600);
/// The default hard skew: a token with less than this left is treated as expired.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);
/// The default TCP/TLS connect timeout for calls to Wise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default total timeout of one HTTP request to Wise (connect to last body byte).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The default number of attempts (first try included) of a retryable call to Wise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The largest accepted `max_attempts`.
pub(crate) const MAX_ATTEMPTS_LIMIT: u32 = 10;

/// A Wise environment: the API host (token endpoint and REST API) and the web host of the
/// authorization page.
///
/// ```
/// use wise_oauth_core::Environment;
/// let env = Environment::Sandbox;
/// assert_eq!(env.name(), "sandbox");
/// assert_eq!(env.api_url().as_str(), "https://api.wise-sandbox.com/");
/// assert_eq!(env.authorize_url().as_str(), "https://wise-sandbox.com/oauth/authorize/");
/// assert_eq!(Environment::legacy_sandbox().name(), "sandbox-legacy");
///
/// // The mTLS hosts are the same Wise environment: same name, so the same stored links.
/// let mtls = Environment::ProductionMtls;
/// assert_eq!(mtls.name(), "production");
/// assert_eq!(mtls.api_url().as_str(), "https://api-mtls.transferwise.com/");
/// assert!(mtls.is_production() && !Environment::SandboxMtls.is_production());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Environment {
    /// `https://api.wise.com` + `https://wise.com/oauth/authorize/`.
    Production,
    /// `https://api.wise-sandbox.com` + `https://wise-sandbox.com/oauth/authorize/` (the default).
    #[default]
    Sandbox,
    /// Production over mTLS: `https://api-mtls.transferwise.com` (Wise has no
    /// `api-mtls.wise.com`) + `https://wise.com/oauth/authorize/`. Needs a client
    /// certificate ([`WiseConfigBuilder::client_identity`]) and Wise's CA
    /// ([`WiseConfigBuilder::root_certificate`]). Named `"production"`: links stored while
    /// using [`Environment::Production`] keep working.
    ProductionMtls,
    /// The sandbox over mTLS: `https://api-mtls.wise-sandbox.com` +
    /// `https://wise-sandbox.com/oauth/authorize/`. Named `"sandbox"`, like
    /// [`Environment::Sandbox`].
    SandboxMtls,
    /// Any other pair of URLs, e.g. the legacy TransferWise hosts, a gateway or the
    /// emulator. Plain `http` is accepted only for loopback hosts. `name` becomes part of
    /// every stored link's key, so keep it stable.
    Custom {
        /// A stable name for this environment (1 to 64 characters, no control characters).
        name: String,
        /// The API base URL (may carry a path prefix such as `/gateway`).
        api_url: Url,
        /// The full URL of the authorization page.
        authorize_url: Url,
    },
}

impl Environment {
    /// The legacy TransferWise sandbox hosts, as a custom environment named
    /// `"sandbox-legacy"`: `https://api.sandbox.transferwise.tech` +
    /// `https://sandbox.transferwise.tech/oauth/authorize/`.
    pub fn legacy_sandbox() -> Self {
        Self::Custom {
            name: "sandbox-legacy".to_owned(),
            api_url: Url::parse("https://api.sandbox.transferwise.tech").expect("static URL"),
            authorize_url: Url::parse("https://sandbox.transferwise.tech/oauth/authorize/")
                .expect("static URL"),
        }
    }

    /// A custom environment from two URL strings, validated like [`WiseConfigBuilder::build`] does.
    ///
    /// ```
    /// use wise_oauth_core::Environment;
    /// let env = Environment::custom("emulator", "http://127.0.0.1:8080",
    ///     "http://127.0.0.1:8080/oauth/authorize").unwrap();
    /// assert_eq!(env.name(), "emulator");
    /// assert!(Environment::custom("x", "http://example.com", "https://example.com/a").is_err());
    /// ```
    pub fn custom(
        name: impl Into<String>,
        api_url: &str,
        authorize_url: &str,
    ) -> Result<Self, ConfigError> {
        let env = Self::Custom {
            name: name.into(),
            api_url: Url::parse(api_url).map_err(|_| ConfigError::InvalidUrl {
                setting: "api_url",
                reason: "not an absolute URL",
            })?,
            authorize_url: Url::parse(authorize_url).map_err(|_| ConfigError::InvalidUrl {
                setting: "authorize_url",
                reason: "not an absolute URL",
            })?,
        };
        env.validate()?;
        Ok(env)
    }

    /// The stable name (`"production"`, `"sandbox"` or the custom name), used in link keys.
    pub fn name(&self) -> &str {
        match self {
            Self::Production | Self::ProductionMtls => "production",
            Self::Sandbox | Self::SandboxMtls => "sandbox",
            Self::Custom { name, .. } => name,
        }
    }

    /// The API base URL.
    pub fn api_url(&self) -> &Url {
        match self {
            Self::Production => &PRODUCTION_API,
            Self::Sandbox => &SANDBOX_API,
            Self::ProductionMtls => &PRODUCTION_MTLS_API,
            Self::SandboxMtls => &SANDBOX_MTLS_API,
            Self::Custom { api_url, .. } => api_url,
        }
    }

    /// The authorization page URL.
    pub fn authorize_url(&self) -> &Url {
        match self {
            Self::Production | Self::ProductionMtls => &PRODUCTION_AUTHORIZE,
            Self::Sandbox | Self::SandboxMtls => &SANDBOX_AUTHORIZE,
            Self::Custom { authorize_url, .. } => authorize_url,
        }
    }

    /// Whether this is Wise's production (over its TLS-only or its mTLS host).
    pub fn is_production(&self) -> bool {
        matches!(self, Self::Production | Self::ProductionMtls)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Self::Custom { name, .. } = self {
            if name.is_empty()
                || name.chars().count() > 64
                || name.chars().any(char::is_control)
                || name == "production"
                || name == "sandbox"
            {
                return Err(ConfigError::Invalid {
                    setting: "environment",
                    reason: "a custom environment needs a name of 1 to 64 characters without \
                             control characters, other than \"production\" and \"sandbox\"",
                });
            }
        }
        check_web_url(self.api_url(), "api_url")?;
        check_web_url(self.authorize_url(), "authorize_url")?;
        if self.api_url().query().is_some() {
            return Err(ConfigError::InvalidUrl {
                setting: "api_url",
                reason: "must not have a query",
            });
        }
        Ok(())
    }
}

/// Whether `url`'s host is a loopback address or `localhost`.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// https anywhere, http only on loopback; no credentials, no fragment.
fn check_web_url(url: &Url, setting: &'static str) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(url) => {}
        "http" => {
            return Err(ConfigError::InvalidUrl {
                setting,
                reason: "plain http is allowed only for loopback hosts (127.0.0.1, ::1, localhost)",
            })
        }
        _ => {
            return Err(ConfigError::InvalidUrl {
                setting,
                reason: "must be an https URL",
            })
        }
    }
    if url.host().is_none() {
        return Err(ConfigError::InvalidUrl {
            setting,
            reason: "has no host",
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::InvalidUrl {
            setting,
            reason: "must not carry credentials",
        });
    }
    if url.fragment().is_some() {
        return Err(ConfigError::InvalidUrl {
            setting,
            reason: "must not have a fragment",
        });
    }
    Ok(())
}

/// An invalid setting, reported once by [`WiseConfigBuilder::build`] or
/// [`WiseConfig::from_env`]. Never carries a secret value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required environment variable is not set (or empty).
    #[error("environment variable {var} is not set: expected {expected}")]
    MissingEnv {
        /// The variable's name.
        var: &'static str,
        /// What it should contain.
        expected: &'static str,
    },
    /// An environment variable has an unusable value.
    #[error("environment variable {var} is invalid: expected {expected}")]
    InvalidEnv {
        /// The variable's name.
        var: &'static str,
        /// What it should contain.
        expected: &'static str,
    },
    /// A URL setting is unusable.
    #[error("{setting} is invalid: {reason}")]
    InvalidUrl {
        /// The setting (`redirect_uri`, `mobile_redirect_uri`, `api_url`, `authorize_url`).
        setting: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// Any other unusable setting.
    #[error("{setting} is invalid: {reason}")]
    Invalid {
        /// The setting's name.
        setting: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("the HTTP client could not be built")]
    HttpClient,
}

/// An invalid setting as an I/O error (kind `InvalidInput`), so `?` works in actix-web's
/// usual `main() -> std::io::Result<()>`.
///
/// ```
/// use wise_oauth_core::{ClientSecret, WiseConfig};
///
/// fn main() -> std::io::Result<()> {
///     let secret = ClientSecret::new("s3cr3t");
///     let config = WiseConfig::builder("my-client", secret, "https://app.example.com/wise/callback")
///         .build()?;
///     # let _ = config;
///     let bad = WiseConfig::builder("my-client", ClientSecret::new("s"), "not a url").build();
///     let io: std::io::Error = bad.unwrap_err().into();
///     assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
///     Ok(())
/// }
/// ```
impl From<ConfigError> for std::io::Error {
    fn from(e: ConfigError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    }
}

impl ConfigError {
    /// Rewrites a builder error into one that names the environment variable it came from.
    fn for_env(self, var: &'static str, expected: &'static str) -> Self {
        match self {
            Self::MissingEnv { .. } | Self::InvalidEnv { .. } => self,
            _ => Self::InvalidEnv { var, expected },
        }
    }
}

/// Everything the library needs to talk to Wise. Cheap to clone; `Debug` redacts the secret.
///
/// ```
/// use wise_oauth_core::{ClientSecret, Environment, WiseConfig};
/// let config = WiseConfig::builder("my-client", ClientSecret::new("s3cr3t"),
///         "https://app.example.com/wise/callback")
///     .environment(Environment::Production)
///     .api_version("2026Q3")
///     .build()
///     .unwrap();
/// assert_eq!(config.token_url().as_str(), "https://api.wise.com/2026Q3/oauth/token");
/// assert!(!format!("{config:?}").contains("s3cr3t"));
/// ```
#[derive(Clone)]
pub struct WiseConfig {
    environment: Environment,
    client_id: String,
    client_secret: ClientSecret,
    redirect_uri: String,
    redirect_uri_secure: bool,
    mobile_redirect_uri: Option<String>,
    api_version: Option<String>,
    pkce: bool,
    refresh_window: Duration,
    skew: Duration,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_attempts: u32,
    client_identity: Option<Vec<u8>>,
    root_certificates: Vec<Vec<u8>>,
    user_agent: String,
    token_url: Url,
}

impl fmt::Debug for WiseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WiseConfig")
            .field("environment", &self.environment)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("redirect_uri", &self.redirect_uri)
            .field("mobile_redirect_uri", &self.mobile_redirect_uri)
            .field("api_version", &self.api_version)
            .field("pkce", &self.pkce)
            .field("refresh_window", &self.refresh_window)
            .field("skew", &self.skew)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_attempts", &self.max_attempts)
            .field(
                "client_identity",
                &self.client_identity.as_ref().map(|_| "[redacted]"),
            )
            .field("root_certificates", &self.root_certificates.len())
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

/// Builder of [`WiseConfig`]. Setters never fail; [`build`](Self::build) validates once.
#[must_use]
#[derive(Clone)]
pub struct WiseConfigBuilder {
    environment: Environment,
    client_id: String,
    client_secret: ClientSecret,
    redirect_uri: String,
    mobile_redirect_uri: Option<String>,
    api_version: Option<String>,
    pkce: bool,
    refresh_window: Duration,
    skew: Duration,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_attempts: u32,
    client_identity: Option<Vec<u8>>,
    root_certificates: Vec<Vec<u8>>,
    user_agent: Option<String>,
}

impl fmt::Debug for WiseConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WiseConfigBuilder")
            .field("environment", &self.environment)
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

impl WiseConfigBuilder {
    /// The Wise environment. Default: [`Environment::Sandbox`].
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// A second redirect URI for the mobile flow, typically a custom-scheme deep link such as
    /// `myapp://wise/callback` (an `https` URL works too). Default: none (mobile flow off).
    pub fn mobile_redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.mobile_redirect_uri = Some(uri.into());
        self
    }

    /// A global API version (`YYYYQn`, e.g. `2026Q3`) prefixed to the token path
    /// (`/2026Q3/oauth/token`). Default: none (`/oauth/token`).
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = Some(version.into());
        self
    }

    /// Send a PKCE (S256) challenge with every authorization request. Default: `false`,
    /// because Wise does not document PKCE (it is harmless to turn on).
    pub fn pkce(mut self, enabled: bool) -> Self {
        self.pkce = enabled;
        self
    }

    /// Refresh a token proactively when less than this is left. Default: 6 hours.
    pub fn refresh_window(mut self, window: Duration) -> Self {
        self.refresh_window = window;
        self
    }

    /// A token with less than this left is treated as expired. Default: 60 seconds.
    pub fn skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// TCP/TLS connect timeout of calls to Wise. Default: 5 seconds.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Total timeout of one HTTP request to Wise, body included. Default: 15 seconds.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Attempts (first try included) of a call that is safe to retry, 1 to 10. Default: 3.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// A client certificate and its private key (PEM, concatenated: the certificate chain,
    /// then the PKCS#8, RSA or SEC1 key) for mTLS to Wise's `api-mtls.*` hosts
    /// ([`Environment::ProductionMtls`], [`Environment::SandboxMtls`]). Wise issues the
    /// certificate from your CSR, with the client id as its CN. Sent to every host the
    /// client calls (token endpoint and API). Default: none.
    pub fn client_identity(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.client_identity = Some(pem.into());
        self
    }

    /// Trusts one more certificate authority (PEM; a bundle of several works too) on top of
    /// the built-in web roots: Wise's mTLS hosts need the per-environment "Wise
    /// certificate" from the Developer Hub. May be called several times. Default: none
    /// (only the built-in roots).
    pub fn root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// The `User-Agent` of calls to Wise. Default: `wise-oauth/<version>`.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Validates every setting and builds the configuration.
    pub fn build(self) -> Result<WiseConfig, ConfigError> {
        self.environment.validate()?;
        if self.client_id.is_empty()
            || self.client_id.len() > 256
            || self.client_id.chars().any(char::is_control)
        {
            return Err(ConfigError::Invalid {
                setting: "client_id",
                reason: "must be 1 to 256 bytes without control characters",
            });
        }
        let secret = self.client_secret.expose_secret();
        if secret.is_empty() || secret.len() > 1024 || secret.chars().any(char::is_control) {
            return Err(ConfigError::Invalid {
                setting: "client_secret",
                reason: "must be 1 to 1024 bytes without control characters",
            });
        }
        let redirect = validate_redirect_uri(&self.redirect_uri, "redirect_uri", false)?;
        let redirect_uri_secure = redirect.scheme() == "https";
        if let Some(mobile) = &self.mobile_redirect_uri {
            validate_redirect_uri(mobile, "mobile_redirect_uri", true)?;
        }
        if let Some(version) = &self.api_version {
            if !is_api_version(version) {
                return Err(ConfigError::Invalid {
                    setting: "api_version",
                    reason: "must look like 2026Q3 (four digits, Q, 1 to 4)",
                });
            }
        }
        for (setting, value) in [
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if value.is_zero() || value > Duration::from_secs(300) {
                return Err(ConfigError::Invalid {
                    setting,
                    reason: "must be more than zero and at most 300 seconds",
                });
            }
        }
        if self.skew > Duration::from_secs(3600) {
            return Err(ConfigError::Invalid {
                setting: "skew",
                reason: "must be at most one hour",
            });
        }
        if self.refresh_window > Duration::from_secs(11 * 3600) {
            return Err(ConfigError::Invalid {
                setting: "refresh_window",
                reason: "must be at most 11 hours (Wise access tokens live 12 hours)",
            });
        }
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS_LIMIT {
            return Err(ConfigError::Invalid {
                setting: "max_attempts",
                reason: "must be between 1 and 10",
            });
        }
        if let Some(pem) = &self.client_identity {
            // Loading it into a TLS client also checks the key type and that the key
            // belongs to the certificate.
            let usable = reqwest::Identity::from_pem(pem).is_ok_and(|identity| {
                reqwest::Client::builder()
                    .use_rustls_tls()
                    .tls_built_in_root_certs(false)
                    .identity(identity)
                    .build()
                    .is_ok()
            });
            if !usable {
                return Err(ConfigError::Invalid {
                    setting: "client_identity",
                    reason: "must be a PEM certificate chain followed by its private key",
                });
            }
        }
        for pem in &self.root_certificates {
            if !reqwest::Certificate::from_pem_bundle(pem).is_ok_and(|certs| !certs.is_empty()) {
                return Err(ConfigError::Invalid {
                    setting: "root_certificate",
                    reason: "must be one or more PEM certificates",
                });
            }
        }
        let user_agent = self
            .user_agent
            .unwrap_or_else(|| concat!("wise-oauth/", env!("CARGO_PKG_VERSION")).to_owned());
        if http::HeaderValue::from_str(&user_agent).is_err() || user_agent.is_empty() {
            return Err(ConfigError::Invalid {
                setting: "user_agent",
                reason: "must be a non-empty, valid header value",
            });
        }
        let token_url = build_token_url(self.environment.api_url(), self.api_version.as_deref())?;
        Ok(WiseConfig {
            environment: self.environment,
            client_id: self.client_id,
            client_secret: self.client_secret,
            redirect_uri: self.redirect_uri,
            redirect_uri_secure,
            mobile_redirect_uri: self.mobile_redirect_uri,
            api_version: self.api_version,
            pkce: self.pkce,
            refresh_window: self.refresh_window,
            skew: self.skew,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            max_attempts: self.max_attempts,
            client_identity: self.client_identity,
            root_certificates: self.root_certificates,
            user_agent,
            token_url,
        })
    }
}

const PEM_CERT_EXPECTED: &str = "PEM certificate text, or the path of a readable file holding it";

/// The PEM text of a variable: its value when it looks like PEM, else the file it names.
/// Errors name the variable, never its content.
fn read_pem(
    var: &'static str,
    value: &str,
    expected: &'static str,
) -> Result<Vec<u8>, ConfigError> {
    let value = value.trim();
    if value.starts_with("-----BEGIN ") {
        return Ok(value.as_bytes().to_vec());
    }
    match std::fs::read(value) {
        Ok(bytes) if !bytes.is_empty() => Ok(bytes),
        _ => Err(ConfigError::InvalidEnv { var, expected }),
    }
}

/// `WISE_MTLS_CERT` + `WISE_MTLS_KEY` (both or neither) and `WISE_CA_CERT`.
fn pem_from_env(
    get: &impl Fn(&str) -> Option<String>,
    mut builder: WiseConfigBuilder,
) -> Result<WiseConfigBuilder, ConfigError> {
    const KEY_EXPECTED: &str =
        "the PEM private key of WISE_MTLS_CERT, or the path of a readable file holding it";
    match (get("WISE_MTLS_CERT"), get("WISE_MTLS_KEY")) {
        (Some(cert), Some(key)) => {
            let mut pem = read_pem("WISE_MTLS_CERT", &cert, PEM_CERT_EXPECTED)?;
            pem.push(b'\n');
            pem.extend_from_slice(&read_pem("WISE_MTLS_KEY", &key, KEY_EXPECTED)?);
            builder = builder.client_identity(pem);
        }
        (Some(_), None) => {
            return Err(ConfigError::MissingEnv {
                var: "WISE_MTLS_KEY",
                expected: KEY_EXPECTED,
            })
        }
        (None, Some(_)) => {
            return Err(ConfigError::MissingEnv {
                var: "WISE_MTLS_CERT",
                expected: "the PEM client certificate Wise issued (set with WISE_MTLS_KEY)",
            })
        }
        (None, None) => {}
    }
    if let Some(ca) = get("WISE_CA_CERT") {
        builder = builder.root_certificate(read_pem("WISE_CA_CERT", &ca, PEM_CERT_EXPECTED)?);
    }
    Ok(builder)
}

fn is_api_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 6
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'Q'
        && (b'1'..=b'4').contains(&b[5])
}

fn build_token_url(api: &Url, version: Option<&str>) -> Result<Url, ConfigError> {
    let mut url = api.clone();
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|_| ConfigError::InvalidUrl {
                setting: "api_url",
                reason: "cannot be a base URL",
            })?;
        segments.pop_if_empty();
        if let Some(v) = version {
            segments.push(v);
        }
        segments.push("oauth").push("token");
    }
    Ok(url)
}

/// Validates a redirect URI: parses, https or loopback http; for the mobile URI a custom
/// scheme is accepted too. The string itself is kept byte for byte.
fn validate_redirect_uri(
    raw: &str,
    setting: &'static str,
    allow_custom_scheme: bool,
) -> Result<Url, ConfigError> {
    if raw.is_empty() || raw.len() > 2048 || raw.chars().any(|c| c.is_control() || c == ' ') {
        return Err(ConfigError::InvalidUrl {
            setting,
            reason:
                "must be a non-empty URL of at most 2048 bytes without spaces or control characters",
        });
    }
    let url = Url::parse(raw).map_err(|_| ConfigError::InvalidUrl {
        setting,
        reason: "not an absolute URL",
    })?;
    if url.fragment().is_some() || raw.contains('#') {
        return Err(ConfigError::InvalidUrl {
            setting,
            reason: "must not have a fragment",
        });
    }
    match url.scheme() {
        "http" | "https" => check_web_url(&url, setting)?,
        "javascript" | "data" | "file" | "blob" | "about" | "vbscript" | "ftp" | "ws" | "wss" => {
            return Err(ConfigError::InvalidUrl {
                setting,
                reason: "this URL scheme is not allowed",
            })
        }
        _ if allow_custom_scheme => {}
        _ => {
            return Err(ConfigError::InvalidUrl {
                setting,
                reason: "must be https, or http on a loopback host",
            })
        }
    }
    Ok(url)
}

impl WiseConfig {
    /// Starts a builder with the three settings Wise issues per application. The redirect
    /// URI is kept byte for byte (Wise compares it exactly, query string included).
    pub fn builder(
        client_id: impl Into<String>,
        client_secret: ClientSecret,
        redirect_uri: impl Into<String>,
    ) -> WiseConfigBuilder {
        WiseConfigBuilder {
            environment: Environment::default(),
            client_id: client_id.into(),
            client_secret,
            redirect_uri: redirect_uri.into(),
            mobile_redirect_uri: None,
            api_version: None,
            pkce: false,
            refresh_window: DEFAULT_REFRESH_WINDOW,
            skew: DEFAULT_SKEW,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            client_identity: None,
            root_certificates: Vec::new(),
            user_agent: None,
        }
    }

    /// Reads the configuration from the process environment:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `WISE_ENV` | `sandbox` (default when unset), `production`, `sandbox-legacy` or `custom` |
    /// | `WISE_CLIENT_ID` | the OAuth client id (required) |
    /// | `WISE_CLIENT_SECRET` | the OAuth client secret (required) |
    /// | `WISE_REDIRECT_URI` | the registered redirect URI, exactly (required) |
    /// | `WISE_MOBILE_REDIRECT_URI` | optional deep-link redirect URI |
    /// | `WISE_API_URL`, `WISE_AUTHORIZE_URL` | required with `WISE_ENV=custom`, refused otherwise |
    /// | `WISE_ENV_NAME` | optional name of a custom environment (default `custom`) |
    /// | `WISE_API_VERSION` | optional, e.g. `2026Q3` |
    /// | `WISE_MTLS_CERT`, `WISE_MTLS_KEY` | optional, together: the mTLS client certificate (chain) and its private key |
    /// | `WISE_CA_CERT` | optional: one more trusted CA, e.g. Wise's mTLS CA |
    ///
    /// `WISE_ENV` also takes `production-mtls` and `sandbox-mtls` (the `api-mtls.*` hosts,
    /// see [`Environment::ProductionMtls`]). The three PEM variables hold either the PEM
    /// text itself or the path of a file holding it.
    ///
    /// An error names the variable and says what it should contain.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `get` (for tests).
    ///
    /// ```
    /// use wise_oauth_core::{ConfigError, WiseConfig};
    /// let vars = [("WISE_CLIENT_ID", "id"), ("WISE_CLIENT_SECRET", "secret"),
    ///              ("WISE_REDIRECT_URI", "https://app.example.com/cb")];
    /// let config = WiseConfig::from_env_with(|name| {
    ///     vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    /// }).unwrap();
    /// assert_eq!(config.environment().name(), "sandbox");
    ///
    /// let err = WiseConfig::from_env_with(|_| None).unwrap_err();
    /// assert!(matches!(err, ConfigError::MissingEnv { var: "WISE_CLIENT_ID", .. }));
    /// ```
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let required = |var: &'static str, expected: &'static str| {
            get(var).ok_or(ConfigError::MissingEnv { var, expected })
        };
        const ENV_EXPECTED: &str =
            "one of sandbox, production, sandbox-mtls, production-mtls, sandbox-legacy, custom";
        const API_EXPECTED: &str =
            "an https URL (http only for loopback hosts) of the Wise API, e.g. https://api.wise.com";
        const AUTH_EXPECTED: &str =
            "an https URL (http only for loopback hosts) of the authorization page";
        let env_name = get("WISE_ENV").map(|v| v.trim().to_ascii_lowercase());
        let custom = env_name.as_deref() == Some("custom");
        if !custom {
            for var in ["WISE_API_URL", "WISE_AUTHORIZE_URL", "WISE_ENV_NAME"] {
                if get(var).is_some() {
                    return Err(ConfigError::InvalidEnv {
                        var,
                        expected: "to be set only together with WISE_ENV=custom",
                    });
                }
            }
        }
        let environment = match env_name.as_deref() {
            None | Some("sandbox") => Environment::Sandbox,
            Some("production") => Environment::Production,
            Some("production-mtls") => Environment::ProductionMtls,
            Some("sandbox-mtls") => Environment::SandboxMtls,
            Some("sandbox-legacy") => Environment::legacy_sandbox(),
            Some("custom") => {
                let api = required("WISE_API_URL", API_EXPECTED)?;
                let api_url = Url::parse(api.trim()).map_err(|_| ConfigError::InvalidEnv {
                    var: "WISE_API_URL",
                    expected: API_EXPECTED,
                })?;
                check_web_url(&api_url, "api_url")
                    .map_err(|e| e.for_env("WISE_API_URL", API_EXPECTED))?;
                let auth = required("WISE_AUTHORIZE_URL", AUTH_EXPECTED)?;
                let name = get("WISE_ENV_NAME").unwrap_or_else(|| "custom".to_owned());
                let authorize_url =
                    Url::parse(auth.trim()).map_err(|_| ConfigError::InvalidEnv {
                        var: "WISE_AUTHORIZE_URL",
                        expected: AUTH_EXPECTED,
                    })?;
                check_web_url(&authorize_url, "authorize_url")
                    .map_err(|e| e.for_env("WISE_AUTHORIZE_URL", AUTH_EXPECTED))?;
                let env = Environment::Custom {
                    name,
                    api_url,
                    authorize_url,
                };
                env.validate().map_err(|e| {
                    e.for_env(
                        "WISE_ENV_NAME",
                        "1 to 64 characters, other than production and sandbox",
                    )
                })?;
                env
            }
            Some(_) => {
                return Err(ConfigError::InvalidEnv {
                    var: "WISE_ENV",
                    expected: ENV_EXPECTED,
                })
            }
        };
        let client_id = required("WISE_CLIENT_ID", "the OAuth client id Wise issued")?;
        let client_secret = required("WISE_CLIENT_SECRET", "the OAuth client secret Wise issued")?;
        const REDIRECT_EXPECTED: &str =
            "the redirect URI registered at Wise, exactly (https, or http on a loopback host)";
        let redirect_uri = required("WISE_REDIRECT_URI", REDIRECT_EXPECTED)?;
        const MOBILE_EXPECTED: &str =
            "a deep-link redirect URI such as myapp://wise/callback, or an https URL";
        validate_redirect_uri(&redirect_uri, "redirect_uri", false)
            .map_err(|e| e.for_env("WISE_REDIRECT_URI", REDIRECT_EXPECTED))?;
        let mut builder = WiseConfig::builder(
            client_id.trim(),
            ClientSecret::new(client_secret.trim()),
            redirect_uri,
        )
        .environment(environment);
        if let Some(mobile) = get("WISE_MOBILE_REDIRECT_URI") {
            validate_redirect_uri(&mobile, "mobile_redirect_uri", true)
                .map_err(|e| e.for_env("WISE_MOBILE_REDIRECT_URI", MOBILE_EXPECTED))?;
            builder = builder.mobile_redirect_uri(mobile);
        }
        if let Some(version) = get("WISE_API_VERSION") {
            let version = version.trim();
            if !is_api_version(version) {
                return Err(ConfigError::InvalidEnv {
                    var: "WISE_API_VERSION",
                    expected: "a global API version such as 2026Q3",
                });
            }
            builder = builder.api_version(version);
        }
        builder = pem_from_env(&get, builder)?;
        builder.build().map_err(|e| match e {
            ConfigError::Invalid {
                setting: "client_id",
                ..
            } => ConfigError::InvalidEnv {
                var: "WISE_CLIENT_ID",
                expected: "1 to 256 bytes without control characters",
            },
            ConfigError::Invalid {
                setting: "client_secret",
                ..
            } => ConfigError::InvalidEnv {
                var: "WISE_CLIENT_SECRET",
                expected: "1 to 1024 bytes without control characters",
            },
            ConfigError::Invalid {
                setting: "client_identity",
                ..
            } => ConfigError::InvalidEnv {
                var: "WISE_MTLS_CERT",
                expected: "a PEM certificate (chain) matching the private key in WISE_MTLS_KEY",
            },
            ConfigError::Invalid {
                setting: "root_certificate",
                ..
            } => ConfigError::InvalidEnv {
                var: "WISE_CA_CERT",
                expected: PEM_CERT_EXPECTED,
            },
            other => other,
        })
    }

    /// The Wise environment.
    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    /// The OAuth client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The OAuth client secret.
    pub fn client_secret(&self) -> &ClientSecret {
        &self.client_secret
    }

    /// The redirect URI, exactly as configured (sent byte for byte).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Whether the redirect URI is `https` (false only for loopback `http` in development);
    /// cookies get the `Secure` attribute when this is true.
    pub fn redirect_uri_is_https(&self) -> bool {
        self.redirect_uri_secure
    }

    /// The mobile (deep-link) redirect URI, if configured.
    pub fn mobile_redirect_uri(&self) -> Option<&str> {
        self.mobile_redirect_uri.as_deref()
    }

    /// The global API version prefix of the token path, if configured.
    pub fn api_version(&self) -> Option<&str> {
        self.api_version.as_deref()
    }

    /// Whether authorization requests carry a PKCE challenge.
    pub fn pkce(&self) -> bool {
        self.pkce
    }

    /// The proactive refresh window.
    pub fn refresh_window(&self) -> Duration {
        self.refresh_window
    }

    /// The hard expiry skew.
    pub fn skew(&self) -> Duration {
        self.skew
    }

    /// The connect timeout of calls to Wise.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The total timeout of one HTTP request to Wise.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Attempts (first try included) of a retryable call.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The `User-Agent` of calls to Wise.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }

    /// Whether an mTLS client identity is configured.
    pub fn has_client_identity(&self) -> bool {
        self.client_identity.is_some()
    }

    /// The mTLS identity PEM (private key inside: crate-internal).
    pub(crate) fn client_identity(&self) -> Option<&[u8]> {
        self.client_identity.as_deref()
    }

    /// The extra trusted CAs (PEM), in the order given.
    pub fn root_certificates(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.root_certificates.iter().map(Vec::as_slice)
    }

    /// The API base URL (from the environment).
    pub fn api_url(&self) -> &Url {
        self.environment.api_url()
    }

    /// The authorization page URL (from the environment).
    pub fn authorize_url(&self) -> &Url {
        self.environment.authorize_url()
    }

    /// The token endpoint: `{api}/[{version}/]oauth/token`.
    pub fn token_url(&self) -> Url {
        self.token_url.clone()
    }
}
