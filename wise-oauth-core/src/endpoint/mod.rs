//! The token endpoint client: the four grants, error classification, timeouts and bounded
//! retries over one shared reqwest client.

mod correlation;
mod error;
pub(crate) mod http;
mod response;
pub(crate) mod retry;

use crate::metrics::WiseEndpoint;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use ::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use ::http::HeaderValue;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use tracing::field::Empty;
use tracing::Instrument as _;
use url::Url;

use crate::clock::TimeSource;
use crate::config::{ConfigError, WiseConfig};
use crate::secret::{AuthorizationCode, PkceVerifier, RefreshToken, RegistrationCode};

use self::http::{read_bounded, trace_id, BodyError, CORRELATION_HEADER};
pub(crate) use correlation::CorrelationId;
pub use error::{OAuthErrorCode, TlsProblem, TransportError, WiseError};
pub(crate) use response::{AppToken, TokenResponse};
use retry::{next_wait, parse_retry_after, Repeatable, RETRY_BUDGET};

/// The four grants of Wise's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    AuthorizationCode,
    RegistrationCode,
    RefreshToken,
    ClientCredentials,
}

impl Grant {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RegistrationCode => "registration_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }

    fn repeatable(self) -> Repeatable {
        match self {
            Self::RefreshToken | Self::ClientCredentials => Repeatable::Yes,
            Self::AuthorizationCode | Self::RegistrationCode => Repeatable::OnlyIfNotSent,
        }
    }
}

/// Client of `POST {api}/[{version}/]oauth/token`. Cheap to clone (shares the HTTP client).
#[derive(Clone)]
pub(crate) struct TokenEndpoint {
    http: reqwest::Client,
    token_url: Url,
    client_id: Arc<str>,
    basic: HeaderValue,
    clock: TimeSource,
    max_attempts: u32,
    request_timeout: std::time::Duration,
}

impl fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpoint")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 section 2.3.1), marked
/// sensitive so that it never shows up in debug output or HTTP/2 header tables.
pub(crate) fn basic_auth(client_id: &str, client_secret: &str) -> HeaderValue {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(client_id), encode(client_secret));
    let mut value = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(credentials)))
        .expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

impl TokenEndpoint {
    /// Builds the endpoint client (and the shared HTTP client) from the configuration.
    pub(crate) fn new(config: &WiseConfig, clock: TimeSource) -> Result<Self, ConfigError> {
        let http = http::build_client(config)?;
        Ok(Self::with_client(config, clock, http))
    }

    /// Builds the endpoint client over an existing HTTP client.
    pub(crate) fn with_client(
        config: &WiseConfig,
        clock: TimeSource,
        http: reqwest::Client,
    ) -> Self {
        Self {
            http,
            token_url: config.token_url(),
            client_id: Arc::from(config.client_id()),
            basic: basic_auth(config.client_id(), config.client_secret().expose_secret()),
            clock,
            max_attempts: config.max_attempts(),
            request_timeout: config.request_timeout(),
        }
    }

    /// The shared HTTP client (no redirects, timeouts set).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The injected clock.
    pub(crate) fn clock(&self) -> &TimeSource {
        &self.clock
    }

    /// Exchanges an authorization code. `redirect_uri` must be the exact string sent to the
    /// authorization page. Retried only when the request certainly was not sent, or on a
    /// 429/503 with a short `Retry-After`: the code is single-use.
    pub(crate) async fn exchange_code(
        &self,
        code: &AuthorizationCode,
        redirect_uri: &str,
        pkce: Option<&PkceVerifier>,
    ) -> Result<TokenResponse, WiseError> {
        let mut form = vec![
            ("grant_type", Grant::AuthorizationCode.as_str()),
            ("client_id", &*self.client_id),
            ("code", code.expose_secret()),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(verifier) = pkce {
            form.push(("code_verifier", verifier.expose_secret()));
        }
        let body = encode_form(&form);
        self.call(
            Grant::AuthorizationCode,
            body,
            response::parse_token_response,
        )
        .await
    }

    /// Refreshes a user token. Transient failures are retried with the same refresh token.
    /// The token manager does not use this: it drives [`refresh_attempt`](Self::refresh_attempt)
    /// itself, to fence every attempt with its lease.
    #[cfg(test)]
    pub(crate) async fn refresh(
        &self,
        refresh_token: &RefreshToken,
    ) -> Result<TokenResponse, WiseError> {
        self.call(
            Grant::RefreshToken,
            refresh_body(refresh_token),
            response::parse_token_response,
        )
        .await
    }

    /// One refresh request, no retry, bounded by `timeout`. The caller decides whether and
    /// when to try again (see [`retry::next_wait`]); `correlation_id` is the same for every
    /// attempt of one logical refresh.
    pub(crate) async fn refresh_attempt(
        &self,
        refresh_token: &RefreshToken,
        correlation_id: &str,
        timeout: std::time::Duration,
    ) -> Result<TokenResponse, WiseError> {
        let body = refresh_body(refresh_token);
        let sent = self.attempt(
            &body,
            correlation_id,
            timeout,
            response::parse_token_response,
        );
        crate::metrics::timed(WiseEndpoint::Token, sent).await
    }

    /// The configured number of attempts of one logical call.
    pub(crate) fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Gets an application (client-credentials) token.
    pub(crate) async fn client_credentials(&self) -> Result<AppToken, WiseError> {
        let body = encode_form(&[("grant_type", Grant::ClientCredentials.as_str())]);
        self.call(Grant::ClientCredentials, body, response::parse_app_token)
            .await
    }

    /// Exchanges a registration code for the user created with `email`.
    pub(crate) async fn registration_code(
        &self,
        email: &str,
        code: &RegistrationCode,
    ) -> Result<TokenResponse, WiseError> {
        let body = encode_form(&[
            ("grant_type", Grant::RegistrationCode.as_str()),
            ("client_id", &*self.client_id),
            ("email", email),
            ("registration_code", code.expose_secret()),
        ]);
        self.call(
            Grant::RegistrationCode,
            body,
            response::parse_token_response,
        )
        .await
    }

    /// One logical token call: attempts, classification, retries, tracing.
    async fn call<T>(
        &self,
        grant: Grant,
        body: String,
        parse: fn(u16, &[u8], SystemTime) -> Result<T, WiseError>,
    ) -> Result<T, WiseError> {
        let correlation_id = CorrelationId::new();
        let span = tracing::info_span!(
            "wise_oauth.token_request",
            grant = grant.as_str(),
            correlation_id = %correlation_id,
            attempt = Empty,
            status = Empty,
            trace_id = Empty,
        );
        async {
            let started = tokio::time::Instant::now();
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                tracing::Span::current().record("attempt", attempt);
                let remaining = RETRY_BUDGET.saturating_sub(started.elapsed());
                let sent = self.attempt(
                    &body,
                    correlation_id.as_str(),
                    remaining.min(self.request_timeout),
                    parse,
                );
                let result = crate::metrics::timed(WiseEndpoint::Token, sent).await;
                let err = match result {
                    Ok(value) => {
                        tracing::debug!(attempt, "token request succeeded");
                        return Ok(value);
                    }
                    Err(err) => err,
                };
                match next_wait(
                    grant.repeatable(),
                    &err,
                    attempt,
                    self.max_attempts,
                    started.elapsed(),
                ) {
                    Some(wait) => {
                        tracing::info!(
                            attempt,
                            error = %err,
                            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                            "token request failed, retrying"
                        );
                        tokio::time::sleep(wait).await;
                    }
                    None => {
                        tracing::warn!(attempt, error = %err, "token request failed");
                        return Err(err);
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn attempt<T>(
        &self,
        body: &str,
        correlation_id: &str,
        timeout: std::time::Duration,
        parse: fn(u16, &[u8], SystemTime) -> Result<T, WiseError>,
    ) -> Result<T, WiseError> {
        let sent_at = self.clock.now();
        let mut response = self
            .http
            .post(self.token_url.clone())
            .header(AUTHORIZATION, self.basic.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .header(CORRELATION_HEADER, correlation_id)
            .timeout(timeout)
            .body(body.to_owned())
            .send()
            .await
            .map_err(WiseError::transport)?;
        let status = response.status().as_u16();
        let span = tracing::Span::current();
        span.record("status", status);
        if let Some(id) = trace_id(response.headers()) {
            span.record("trace_id", id);
        }
        if (300..400).contains(&status) {
            return Err(WiseError::Redirected { status });
        }
        let retry_after = response
            .headers()
            .get(::http::header::RETRY_AFTER)
            .and_then(|v| parse_retry_after(v, self.clock.now()));
        let success = (200..300).contains(&status);
        let body = match read_bounded(&mut response).await {
            Ok(body) => body,
            Err(BodyError::Timeout(source)) => {
                return Err(WiseError::Timeout {
                    source: Some(source),
                })
            }
            Err(BodyError::Dropped(source)) if success => {
                return Err(WiseError::Unavailable {
                    status: None,
                    retry_after: None,
                    source: Some(source),
                })
            }
            Err(BodyError::TooLarge) if success => {
                return Err(WiseError::MalformedResponse {
                    reason: "body is larger than 64 KiB",
                })
            }
            Err(_) => bytes::Bytes::new(),
        };
        if success {
            parse(status, &body, sent_at)
        } else {
            Err(WiseError::from_token_response(
                status,
                response::error_code(&body),
                retry_after,
            ))
        }
    }
}

fn refresh_body(refresh_token: &RefreshToken) -> String {
    encode_form(&[
        ("grant_type", Grant::RefreshToken.as_str()),
        ("refresh_token", refresh_token.expose_secret()),
    ])
}

fn encode_form(pairs: &[(&str, &str)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        serializer.append_pair(k, v);
    }
    serializer.finish()
}

// Test-only code lives under `tests/internal/` (outside `src/`), compiled in here as unit
// tests because it drives the crate-private endpoint and API clients. A subdirectory of
// `tests/` is not an integration-test target of its own.
#[cfg(test)]
#[path = "../../tests/internal/endpoint_emulator.rs"]
mod emulator_tests;
#[cfg(test)]
#[path = "../../tests/internal/endpoint_loopback.rs"]
mod loopback_tests;
#[cfg(test)]
#[path = "../../tests/internal/script_server.rs"]
mod test_server;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_form_encodes_id_and_secret() {
        // golang TestURLUnsafeClientConfig / oauth4webapi client_secret_basic (appendix B).
        let v = basic_auth("CLIENT_ID??", "CLIENT_SECRET??");
        let expected = format!(
            "Basic {}",
            STANDARD.encode("CLIENT_ID%3F%3F:CLIENT_SECRET%3F%3F")
        );
        assert_eq!(v.to_str().unwrap(), expected);
        assert!(v.is_sensitive());
        let v = basic_auth("id with space", "s:é/+");
        assert_eq!(
            v.to_str().unwrap(),
            format!(
                "Basic {}",
                STANDARD.encode("id+with+space:s%3A%C3%A9%2F%2B")
            )
        );
    }

    #[test]
    fn form_is_urlencoded() {
        assert_eq!(
            encode_form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "a b&c=d")
            ]),
            "grant_type=refresh_token&refresh_token=a+b%26c%3Dd"
        );
    }
}
