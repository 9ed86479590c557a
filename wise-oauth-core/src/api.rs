//! The few Wise API calls the library makes: profiles (to verify the callback's
//! `profileId`) and user signup with a registration code.

use std::fmt;
use std::time::Duration;

use ::http::header::{ACCEPT, AUTHORIZATION, RETRY_AFTER};
use ::http::{HeaderValue, Method};
use serde_json::Value;
use tracing::field::Empty;
use tracing::Instrument as _;
use url::Url;

use crate::clock::TimeSource;
use crate::config::WiseConfig;
use crate::endpoint::http::{read_bounded, trace_id, CORRELATION_HEADER};
use crate::endpoint::retry::{next_wait, parse_retry_after, Repeatable, RETRY_BUDGET};
use crate::endpoint::{CorrelationId, TokenEndpoint, WiseError};
use crate::ids::ProfileId;
use crate::secret::{AccessToken, RegistrationCode};

/// The kind of a Wise profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProfileKind {
    /// `PERSONAL` (`personal` in the legacy API).
    Personal,
    /// `BUSINESS` (`business` in the legacy API).
    Business,
    /// Anything else.
    Other,
}

/// The parts of a Wise profile the library uses.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProfileSummary {
    /// The profile id.
    pub id: ProfileId,
    /// Personal or business.
    pub kind: ProfileKind,
    /// `fullName` (or the business / first + last name), if Wise sent one.
    pub full_name: Option<String>,
    /// `false` when Wise marks the profile `HIDDEN` or `DEACTIVATED` (`true` when it says
    /// nothing).
    pub visible: bool,
}

/// The result of creating a Wise user with a registration code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignupOutcome {
    /// The user was created.
    Created {
        /// Wise's id of the new user.
        wise_user_id: u64,
    },
    /// A Wise account with this email exists (409 `NOT_UNIQUE`): use the link flow.
    AlreadyExists,
}

fn malformed(reason: &'static str) -> WiseError {
    WiseError::MalformedResponse { reason }
}

/// A raw response: status, body and the SCA header.
struct Raw {
    status: u16,
    body: bytes::Bytes,
    sca: Option<String>,
    retry_after: Option<Duration>,
}

/// Client of the Wise REST API (same HTTP client as the token endpoint).
#[derive(Clone)]
pub(crate) struct WiseApi {
    http: reqwest::Client,
    base: Url,
    clock: TimeSource,
    max_attempts: u32,
    request_timeout: Duration,
}

impl fmt::Debug for WiseApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WiseApi")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl WiseApi {
    /// An API client sharing `endpoint`'s HTTP client and clock, based at the API URL.
    pub(crate) fn new(config: &WiseConfig, endpoint: &TokenEndpoint) -> Self {
        Self {
            http: endpoint.http().clone(),
            base: config.api_url().clone(),
            clock: endpoint.clock().clone(),
            max_attempts: config.max_attempts(),
            request_timeout: config.request_timeout(),
        }
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// `GET /v2/profiles/{id}`: `Ok(None)` when the token cannot see that profile (403
    /// without SCA headers, or 404); a 403 with SCA headers is [`WiseError::Sca`].
    pub(crate) async fn profile(
        &self,
        token: &AccessToken,
        id: ProfileId,
    ) -> Result<Option<ProfileSummary>, WiseError> {
        let id_text = id.to_string();
        let raw = self
            .send(
                Method::GET,
                &["v2", "profiles", &id_text],
                token,
                None,
                Repeatable::Yes,
                "profile",
            )
            .await?;
        match raw.status {
            200..=299 => {
                let value = json(&raw.body)?;
                let profile = parse_profile(&value)?;
                if profile.id != id {
                    return Err(malformed(
                        "profile id in the response differs from the request",
                    ));
                }
                Ok(Some(profile))
            }
            403 if raw.sca.is_some() => Err(classify(raw)),
            403 | 404 => Ok(None),
            _ => Err(classify(raw)),
        }
    }

    /// `GET /v2/profiles`: every profile the token can see.
    pub(crate) async fn profiles(
        &self,
        token: &AccessToken,
    ) -> Result<Vec<ProfileSummary>, WiseError> {
        let raw = self
            .send(
                Method::GET,
                &["v2", "profiles"],
                token,
                None,
                Repeatable::Yes,
                "profiles",
            )
            .await?;
        if !(200..300).contains(&raw.status) {
            return Err(classify(raw));
        }
        match json(&raw.body)? {
            Value::Array(items) => items.iter().map(parse_profile).collect(),
            _ => Err(malformed("profiles response is not an array")),
        }
    }

    /// `GET /v1/me`: the id of the Wise user the token belongs to (what Wise's
    /// `users#state-change` webhooks name).
    pub(crate) async fn me(&self, token: &AccessToken) -> Result<u64, WiseError> {
        let raw = self
            .send(
                Method::GET,
                &["v1", "me"],
                token,
                None,
                Repeatable::Yes,
                "me",
            )
            .await?;
        if !(200..300).contains(&raw.status) {
            return Err(classify(raw));
        }
        match json(&raw.body)?.get("id") {
            Some(Value::Number(n)) => n.as_u64().filter(|id| *id != 0),
            Some(Value::String(s)) => s.parse::<ProfileId>().ok().map(ProfileId::get),
            _ => None,
        }
        .ok_or(malformed("user id is missing or invalid"))
    }

    /// `POST /v3/applications/{clientKey}/subscriptions` with a client-credentials token:
    /// subscribes `url` to `trigger_on` for the whole application; the subscription id.
    pub(crate) async fn subscribe(
        &self,
        app_token: &AccessToken,
        client_key: &str,
        name: &str,
        trigger_on: &str,
        url: &str,
    ) -> Result<String, WiseError> {
        let body = serde_json::json!({
            "name": name,
            "trigger_on": trigger_on,
            "delivery": {"version": "2.0.0", "url": url},
        });
        let raw = self
            .send(
                Method::POST,
                &["v3", "applications", client_key, "subscriptions"],
                app_token,
                Some(body),
                Repeatable::OnlyIfNotSent,
                "subscribe",
            )
            .await?;
        if !(200..300).contains(&raw.status) {
            return Err(classify(raw));
        }
        json(&raw.body)?
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or(malformed("subscription response has no id"))
    }

    /// `POST /v1/user/signup/registration_code` with a client-credentials token.
    /// 409 (`NOT_UNIQUE`) → [`SignupOutcome::AlreadyExists`].
    pub(crate) async fn signup(
        &self,
        app_token: &AccessToken,
        email: &str,
        code: &RegistrationCode,
        language: Option<&str>,
    ) -> Result<SignupOutcome, WiseError> {
        let mut body = serde_json::json!({
            "email": email,
            "registrationCode": code.expose_secret(),
        });
        if let Some(language) = language {
            body["language"] = Value::String(language.to_owned());
        }
        let raw = self
            .send(
                Method::POST,
                &["v1", "user", "signup", "registration_code"],
                app_token,
                Some(body),
                Repeatable::OnlyIfNotSent,
                "signup",
            )
            .await?;
        match raw.status {
            200..=299 => match json(&raw.body)?.get("id").and_then(Value::as_u64) {
                Some(id) => Ok(SignupOutcome::Created { wise_user_id: id }),
                None => Err(malformed("signup response has no numeric id")),
            },
            409 => Ok(SignupOutcome::AlreadyExists),
            _ => Err(classify(raw)),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &[&str],
        token: &AccessToken,
        body: Option<Value>,
        repeatable: Repeatable,
        operation: &'static str,
    ) -> Result<Raw, WiseError> {
        let correlation_id = CorrelationId::new();
        let span = tracing::info_span!(
            "wise_oauth.api_request",
            operation,
            correlation_id = %correlation_id,
            attempt = Empty,
            status = Empty,
            trace_id = Empty,
        );
        let url = self.url(path);
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| WiseError::Unauthorized)?;
        bearer.set_sensitive(true);
        let body = body.map(|b| b.to_string());
        async {
            let started = tokio::time::Instant::now();
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                tracing::Span::current().record("attempt", attempt);
                let mut request = self
                    .http
                    .request(method.clone(), url.clone())
                    .header(AUTHORIZATION, bearer.clone())
                    .header(ACCEPT, "application/json")
                    .header(CORRELATION_HEADER, correlation_id.as_str())
                    .timeout(
                        RETRY_BUDGET
                            .saturating_sub(started.elapsed())
                            .min(self.request_timeout),
                    );
                if let Some(body) = &body {
                    request = request
                        .header(::http::header::CONTENT_TYPE, "application/json")
                        .body(body.clone());
                }
                let endpoint = crate::metrics::WiseEndpoint::of_operation(operation);
                let result = crate::metrics::timed(endpoint, self.attempt(request)).await;
                let err = match result {
                    Ok(raw) => match classify_retryable(&raw) {
                        None => return Ok(raw),
                        Some(err) => err,
                    },
                    Err(err) => err,
                };
                let wait = next_wait(
                    repeatable,
                    &err,
                    attempt,
                    self.max_attempts,
                    started.elapsed(),
                );
                match wait {
                    Some(wait) => {
                        tracing::info!(attempt, error = %err, "Wise API call failed, retrying");
                        tokio::time::sleep(wait).await;
                    }
                    None => {
                        tracing::warn!(attempt, error = %err, "Wise API call failed");
                        return Err(err);
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn attempt(&self, request: reqwest::RequestBuilder) -> Result<Raw, WiseError> {
        let mut response = request.send().await.map_err(WiseError::transport)?;
        let status = response.status().as_u16();
        let span = tracing::Span::current();
        span.record("status", status);
        if let Some(id) = trace_id(response.headers()) {
            span.record("trace_id", id);
        }
        if (300..400).contains(&status) {
            return Err(WiseError::Redirected { status });
        }
        let headers = response.headers();
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| parse_retry_after(v, self.clock.now()));
        let sca = headers
            .get("x-2fa-approval")
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 128
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .map(str::to_owned);
        let body = read_bounded(&mut response)
            .await
            .map_err(|e| e.into_wise_error("body is larger than 64 KiB"))?;
        Ok(Raw {
            status,
            body,
            sca,
            retry_after,
        })
    }
}

/// Transient statuses (retried per the policy); `None` for everything else.
fn classify_retryable(raw: &Raw) -> Option<WiseError> {
    match raw.status {
        429 | 408 | 500..=599 => Some(classify_status(raw)),
        _ => None,
    }
}

fn classify_status(raw: &Raw) -> WiseError {
    match (raw.status, &raw.sca) {
        (401, _) => WiseError::Unauthorized,
        (403, Some(one_time_token)) => WiseError::Sca {
            one_time_token: one_time_token.clone(),
        },
        (status, _) => WiseError::from_status(status, None, raw.retry_after),
    }
}

fn classify(raw: Raw) -> WiseError {
    classify_status(&raw)
}

fn json(body: &[u8]) -> Result<Value, WiseError> {
    serde_json::from_slice(body).map_err(|_| malformed("body is not JSON"))
}

pub(crate) fn parse_profile(value: &Value) -> Result<ProfileSummary, WiseError> {
    let obj = value
        .as_object()
        .ok_or(malformed("profile is not a JSON object"))?;
    let id = match obj.get("id") {
        Some(Value::Number(n)) => n.as_u64().and_then(ProfileId::new),
        Some(Value::String(s)) => s.parse::<ProfileId>().ok(),
        _ => None,
    }
    .ok_or(malformed("profile id is missing or invalid"))?;
    let kind = match obj.get("type").and_then(Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case("personal") => ProfileKind::Personal,
        Some(t) if t.eq_ignore_ascii_case("business") => ProfileKind::Business,
        _ => ProfileKind::Other,
    };
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let details = obj.get("details");
    let full_name = text(obj.get("fullName"))
        .or_else(|| text(obj.get("businessName")))
        .or_else(|| text(details.and_then(|d| d.get("name"))))
        .or_else(|| {
            let first = text(
                obj.get("firstName")
                    .or_else(|| details.and_then(|d| d.get("firstName"))),
            );
            let last = text(
                obj.get("lastName")
                    .or_else(|| details.and_then(|d| d.get("lastName"))),
            );
            match (first, last) {
                (Some(f), Some(l)) => Some(format!("{f} {l}")),
                (f, l) => f.or(l),
            }
        });
    let visible = match obj.get("currentState").and_then(Value::as_str) {
        Some(state) => state.eq_ignore_ascii_case("visible"),
        None => true,
    };
    Ok(ProfileSummary {
        id,
        kind,
        full_name,
        visible,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_in_both_shapes() {
        let v2: Value = serde_json::from_str(
            r#"{"id":30000001,"type":"BUSINESS","fullName":"Acme Ltd","currentState":"VISIBLE","extra":1}"#,
        )
        .unwrap();
        let p = parse_profile(&v2).unwrap();
        assert_eq!(p.id.get(), 30000001);
        assert_eq!(p.kind, ProfileKind::Business);
        assert_eq!(p.full_name.as_deref(), Some("Acme Ltd"));
        assert!(p.visible);
        let v1: Value = serde_json::from_str(
            r#"{"id":30000000,"type":"personal","details":{"firstName":"Alice","lastName":"Smith"}}"#,
        )
        .unwrap();
        let p = parse_profile(&v1).unwrap();
        assert_eq!(p.kind, ProfileKind::Personal);
        assert_eq!(p.full_name.as_deref(), Some("Alice Smith"));
        let hidden: Value = serde_json::from_str(r#"{"id":5,"currentState":"HIDDEN"}"#).unwrap();
        assert!(!parse_profile(&hidden).unwrap().visible);
        for bad in [
            r#"{"id":0}"#,
            r#"{"id":-1}"#,
            r#"{"id":"+5"}"#,
            r#"{}"#,
            "[]",
            r#"{"id":1.5}"#,
        ] {
            let v: Value = serde_json::from_str(bad).unwrap();
            assert!(parse_profile(&v).is_err(), "{bad}");
        }
    }

    #[test]
    fn sca_and_statuses_are_classified() {
        let raw = |status, sca: Option<&str>| Raw {
            status,
            body: bytes::Bytes::new(),
            sca: sca.map(str::to_owned),
            retry_after: Some(Duration::from_secs(1)),
        };
        assert_eq!(
            classify(raw(403, Some("ott-1"))),
            WiseError::Sca {
                one_time_token: "ott-1".into()
            }
        );
        assert_eq!(
            classify(raw(403, None)),
            WiseError::Rejected {
                status: 403,
                code: None
            }
        );
        assert_eq!(classify(raw(401, None)), WiseError::Unauthorized);
        assert!(classify(raw(503, None)).is_transient());
        assert_eq!(
            classify(raw(429, None)).retry_after(),
            Some(Duration::from_secs(1))
        );
        assert!(classify_retryable(&raw(404, None)).is_none());
    }
}
