//! The one shared HTTP client and the helpers every call to Wise uses.

use std::future::Future;

use bytes::Bytes;
use http::HeaderMap;
use reqwest::redirect::Policy;

use super::response::MAX_BODY_BYTES;
use crate::config::{ConfigError, WiseConfig};

use super::{TransportError, WiseError};

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

/// Reads at most [`MAX_BODY_BYTES`] (see [`read_bounded_to`]).
pub(crate) fn read_bounded(
    response: &mut reqwest::Response,
) -> impl Future<Output = Result<Bytes, BodyError>> + '_ {
    read_bounded_to(response, MAX_BODY_BYTES)
}

/// Reads at most `max` bytes of `response`'s body, chunk by chunk; a body that comes in one
/// chunk (most of Wise's answers) is that chunk, not copied. The response is borrowed: its
/// headers stay where they are while the body is read.
pub(crate) async fn read_bounded_to(
    response: &mut reqwest::Response,
    max: usize,
) -> Result<Bytes, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(BodyError::TooLarge);
    }
    // The body while it is one chunk; `joined` once a second chunk came.
    let mut single: Option<Bytes> = None;
    let mut joined = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::of)? {
        let read = single.as_ref().map_or(joined.len(), Bytes::len);
        if read + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        match single.take() {
            None if joined.is_empty() => single = Some(chunk),
            first => {
                joined.extend_from_slice(first.as_deref().unwrap_or_default());
                joined.extend_from_slice(&chunk);
            }
        }
    }
    Ok(single.unwrap_or_else(|| Bytes::from(joined)))
}

impl BodyError {
    /// The error of a call whose body could not be read; `too_large` says the bound.
    pub(crate) fn into_wise_error(self, too_large: &'static str) -> WiseError {
        match self {
            BodyError::Timeout(source) => WiseError::Timeout {
                source: Some(source),
            },
            BodyError::Dropped(source) => WiseError::Unavailable {
                status: None,
                retry_after: None,
                source: Some(source),
            },
            BodyError::TooLarge => WiseError::MalformedResponse { reason: too_large },
        }
    }

    fn of(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            BodyError::Timeout(TransportError::new(e))
        } else {
            BodyError::Dropped(TransportError::new(e))
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
