//! Errors: the public [`MockError`] and the JSON error responses the server sends.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// An error from a control operation on the emulator (for example creating a user).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MockError {
    /// A user with this email already exists.
    UserExists(String),
    /// No user has this email.
    UnknownUser(String),
    /// No client has this id.
    UnknownClient(String),
    /// The input was rejected; the text says why.
    InvalidInput(String),
}

impl std::fmt::Display for MockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MockError::UserExists(e) => write!(f, "a user with email {e} already exists"),
            MockError::UnknownUser(e) => write!(f, "no user with email {e}"),
            MockError::UnknownClient(c) => write!(f, "no client with id {c}"),
            MockError::InvalidInput(m) => write!(f, "invalid input: {m}"),
        }
    }
}

impl std::error::Error for MockError {}

/// An OAuth-style error (`{"error":..,"error_description":..}`) with its status.
#[derive(Debug, Clone)]
pub(crate) struct OAuthError {
    pub(crate) status: StatusCode,
    pub(crate) error: &'static str,
    pub(crate) description: Option<String>,
}

impl OAuthError {
    pub(crate) fn new(status: StatusCode, error: &'static str, description: &str) -> Self {
        OAuthError {
            status,
            error,
            description: Some(description.to_owned()),
        }
    }

    pub(crate) fn bare(status: StatusCode, error: &'static str) -> Self {
        OAuthError {
            status,
            error,
            description: None,
        }
    }

    pub(crate) fn invalid_request(description: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub(crate) fn invalid_grant(description: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    pub(crate) fn body(&self) -> Value {
        match &self.description {
            Some(d) => json!({"error": self.error, "error_description": d}),
            None => json!({"error": self.error}),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut resp = json_response(self.status, &self.body());
        if self.status == StatusCode::UNAUTHORIZED && self.error == "invalid_client" {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oauth2/client\""),
            );
        }
        resp
    }
}

/// A JSON response with `Cache-Control: no-store`.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// Wise's validation-error shape: `{"errors":[{"code","message","path","arguments"}]}`.
pub(crate) fn validation_error(
    status: StatusCode,
    code: &str,
    message: &str,
    path: &str,
    arguments: Value,
) -> Response {
    json_response(
        status,
        &json!({"errors": [{"code": code, "message": message, "path": path, "arguments": arguments}]}),
    )
}
