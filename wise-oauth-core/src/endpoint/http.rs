//! The one shared HTTP client and the helpers every call to Wise uses.

use http::HeaderMap;
use reqwest::redirect::Policy;

use super::response::MAX_BODY_BYTES;
use crate::config::{ConfigError, WiseConfig};

use super::TransportError;

/// The header carrying our correlation id to Wise.
pub(crate) const CORRELATION_HEADER: &str = "x-external-correlation-id";
/// Wise's per-request id, for support tickets.
pub(crate) const TRACE_HEADER: &str = "x-trace-id";

/// Builds the shared client: rustls, no redirects, connect + total timeouts, optional mTLS
/// identity and extra trusted CAs.
pub(crate) fn build_client(config: &WiseConfig) -> Result<reqwest::Client, ConfigError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(Policy::none())
        .referer(false)
        .connect_timeout(config.connect_timeout())
        .timeout(config.request_timeout())
        .user_agent(config.user_agent());
    if let Some(pem) = config.client_identity() {
        let identity = reqwest::Identity::from_pem(pem).map_err(|_| ConfigError::Invalid {
            setting: "client_identity",
            reason: "must be a PEM certificate chain followed by its private key",
        })?;
        builder = builder.identity(identity);
    }
    for pem in config.root_certificates() {
        let roots =
            reqwest::Certificate::from_pem_bundle(pem).map_err(|_| ConfigError::Invalid {
                setting: "root_certificate",
                reason: "must be one or more PEM certificates",
            })?;
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
    }
    builder.build().map_err(|_| ConfigError::HttpClient)
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Larger than [`MAX_BODY_BYTES`].
    TooLarge,
    /// The total timeout struck while reading (slow drip).
    Timeout(TransportError),
    /// The connection broke.
    Dropped(TransportError),
}

/// Reads at most [`MAX_BODY_BYTES`], chunk by chunk.
pub(crate) async fn read_bounded(response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    read_bounded_to(response, MAX_BODY_BYTES).await
}

/// Reads at most `max` bytes, chunk by chunk.
pub(crate) async fn read_bounded_to(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(BodyError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err(BodyError::Timeout(TransportError::new(e))),
            Err(e) => return Err(BodyError::Dropped(TransportError::new(e))),
        }
    }
}

/// Wise's `x-trace-id`, if it is a short token-like value (safe to log).
pub(crate) fn trace_id(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(TRACE_HEADER)?.to_str().ok()?;
    (!value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' || b == b':'))
    .then_some(value)
}
