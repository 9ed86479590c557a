//! A successful answer of Wise to a call through the client.

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ClientError;
use crate::endpoint::http::trace_id;
use crate::endpoint::WiseError;

/// A 2xx answer of Wise: status, headers and the body (read whole, bounded). `Debug` shows
/// the status and the body's length, never its content.
#[derive(Clone)]
pub struct WiseResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl fmt::Debug for WiseResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WiseResponse")
            .field("status", &self.status.as_u16())
            .field("trace_id", &self.trace_id())
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl WiseResponse {
    pub(crate) fn new(status: StatusCode, headers: HeaderMap, body: Bytes) -> Self {
        Self {
            status,
            headers,
            body,
        }
    }

    /// The HTTP status (a 2xx).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Wise's `x-trace-id` (quote it in support requests), when it looks like one.
    pub fn trace_id(&self) -> Option<&str> {
        trace_id(&self.headers)
    }

    /// The raw body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body decoded from JSON; [`WiseError::MalformedResponse`] when it is not `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        decode(&self.body)
    }
}

/// Decodes a JSON body (an empty body reads as `null`, so `()` and `Option<T>` accept it).
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ClientError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"null".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|_| {
        ClientError::Wise(WiseError::MalformedResponse {
            reason: "body is not the expected JSON",
        })
    })
}
