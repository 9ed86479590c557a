//! The lenient parser of Wise's token JSON and the expiry arithmetic.
//!
//! Accepted: the old field set (`access_token, token_type, refresh_token, expires_in, scope`),
//! the new one (`expires_at`, `created_at` with nanoseconds, `refresh_token_expires_*`),
//! missing optional fields, unknown fields, `expires_in` as a number or numeric string.
//! Rejected with [`WiseError::MalformedResponse`]: anything that is not a JSON object,
//! wrong types, a missing or header-unsafe `access_token`, no usable expiry at all.
//! An `error` member (even in a 200) makes the body an error response.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{OAuthErrorCode, WiseError};
use crate::secret::{AccessToken, RefreshToken};
use crate::token::TokenSet;

/// The largest response body read from Wise.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;
/// The longest accepted token value.
pub(crate) const MAX_TOKEN_LEN: usize = 4096;
/// Upper bound of an access token's lifetime, counted from the send time.
pub(crate) const MAX_ACCESS_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// `expires_in` values are clamped to this (golang/oauth2 `TestExpiresInUpperBound`).
pub(crate) const MAX_EXPIRES_IN: i64 = i32::MAX as i64;

/// A successful user-grant response (authorization_code, registration_code, refresh_token).
#[derive(Debug, Clone)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: AccessToken,
    pub(crate) refresh_token: Option<RefreshToken>,
    pub(crate) expires_at: SystemTime,
    pub(crate) refresh_token_expires_at: Option<SystemTime>,
    pub(crate) scope: Option<String>,
    pub(crate) obtained_at: SystemTime,
}

impl TokenResponse {
    /// The token set to store. Keeps `previous_refresh` when Wise returned no refresh token;
    /// an error when neither exists.
    pub(crate) fn into_token_set(
        self,
        previous_refresh: Option<&RefreshToken>,
    ) -> Result<TokenSet, WiseError> {
        let refresh = match (self.refresh_token, previous_refresh) {
            (Some(new), _) => new,
            (None, Some(old)) => old.clone(),
            (None, None) => {
                return Err(WiseError::MalformedResponse {
                    reason: "no refresh_token in the response",
                })
            }
        };
        let mut set = TokenSet::new(
            self.access_token,
            refresh,
            self.expires_at,
            self.obtained_at,
        );
        set.refresh_token_expires_at = self.refresh_token_expires_at;
        set.scope = self.scope;
        Ok(set)
    }
}

/// A client-credentials (application) token.
#[derive(Debug, Clone)]
pub(crate) struct AppToken {
    pub(crate) access_token: AccessToken,
    pub(crate) expires_at: SystemTime,
}

/// The `error` code of a JSON error body, if the body is one (`None` for anything else).
pub(crate) fn error_code(body: &[u8]) -> Option<OAuthErrorCode> {
    let value: Value = serde_json::from_slice(body).ok()?;
    match value.get("error")? {
        Value::String(code) => Some(OAuthErrorCode::parse(code)),
        _ => Some(OAuthErrorCode::Other),
    }
}

fn malformed(reason: &'static str) -> WiseError {
    WiseError::MalformedResponse { reason }
}

/// Parses a 2xx body of the token endpoint. `sent_at` is the send time of the request.
pub(crate) fn parse_token_response(
    _status: u16,
    body: &[u8],
    sent_at: SystemTime,
) -> Result<TokenResponse, WiseError> {
    let obj = parse_object(body)?;
    let access_token = token_field(&obj, "access_token")?
        .ok_or(malformed("access_token is missing"))
        .map(AccessToken::new)?;
    let refresh_token = token_field(&obj, "refresh_token")?.map(RefreshToken::new);
    let scope = match obj.get("scope") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(malformed("scope is not a string")),
    };
    let expires_in = number_field(&obj, "expires_in")?;
    let created_at = obj.get("created_at").and_then(timestamp);
    let expires_at = obj.get("expires_at").and_then(timestamp);
    let expires_at = access_expiry(sent_at, expires_in, expires_at, created_at)
        .ok_or(malformed("neither expires_in nor expires_at is usable"))?;
    let refresh_token_expires_at = refresh_expiry(
        sent_at,
        number_field(&obj, "refresh_token_expires_in").unwrap_or(None),
        obj.get("refresh_token_expires_at").and_then(timestamp),
        created_at,
    );
    Ok(TokenResponse {
        access_token,
        refresh_token,
        expires_at,
        refresh_token_expires_at,
        scope,
        obtained_at: sent_at,
    })
}

/// Parses a 2xx body of a client-credentials grant (a refresh token, if any, is ignored).
pub(crate) fn parse_app_token(
    status: u16,
    body: &[u8],
    sent_at: SystemTime,
) -> Result<AppToken, WiseError> {
    let parsed = parse_token_response(status, body, sent_at)?;
    Ok(AppToken {
        access_token: parsed.access_token,
        expires_at: parsed.expires_at,
    })
}

/// Body → JSON object, turning `error` members into classified errors and checking
/// `token_type`.
fn parse_object(body: &[u8]) -> Result<Map<String, Value>, WiseError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(malformed("body is larger than 64 KiB"));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(malformed("body is empty"));
    }
    // serde_json refuses nesting deeper than 128 levels, so hostile depth is an error here.
    let value: Value = serde_json::from_slice(body).map_err(|_| malformed("body is not JSON"))?;
    let Value::Object(obj) = value else {
        return Err(malformed("body is not a JSON object"));
    };
    // An error object inside a 2xx is not a verdict from Wise's token service (a proxy or a
    // broken deployment answered): transient, never a reason to touch a link.
    match obj.get("error") {
        None | Some(Value::Null) => {}
        Some(_) => return Err(malformed("a 2xx body carrying an error object")),
    }
    match obj.get("token_type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
        Some(Value::String(_)) => return Err(malformed("token_type is not bearer")),
        Some(_) => return Err(malformed("token_type is not a string")),
    }
    Ok(obj)
}

/// A token member: absent/null → None; must be a non-empty string that fits in an HTTP
/// header (visible ASCII, no spaces).
fn token_field(obj: &Map<String, Value>, name: &'static str) -> Result<Option<String>, WiseError> {
    let reason = |kind: u8| -> &'static str {
        match (name, kind) {
            ("access_token", 0) => "access_token is not a string",
            ("access_token", 1) => "access_token is empty",
            ("access_token", _) => "access_token cannot be sent in an HTTP header",
            (_, 0) => "refresh_token is not a string",
            (_, 1) => "refresh_token is empty",
            _ => "refresh_token cannot be sent in an HTTP header",
        }
    };
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(malformed(reason(1))),
        Some(Value::String(s)) => {
            if s.len() > MAX_TOKEN_LEN || !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                Err(malformed(reason(2)))
            } else {
                Ok(Some(s.clone()))
            }
        }
        Some(_) => Err(malformed(reason(0))),
    }
}

/// A seconds member: number, numeric string or null; clamped to ±`MAX_EXPIRES_IN`.
fn number_field(obj: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, WiseError> {
    let bad = || {
        malformed(if name == "expires_in" {
            "expires_in is not a number"
        } else {
            "refresh_token_expires_in is not a number"
        })
    };
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(Some(clamp_seconds(n))),
        Some(Value::String(s)) => {
            let s = s.trim();
            let n: serde_json::Number = serde_json::from_str(s).map_err(|_| bad())?;
            Ok(Some(clamp_seconds(&n)))
        }
        Some(_) => Err(bad()),
    }
}

fn clamp_seconds(n: &serde_json::Number) -> i64 {
    if let Some(i) = n.as_i64() {
        i.clamp(-MAX_EXPIRES_IN, MAX_EXPIRES_IN)
    } else if n.as_u64().is_some() {
        MAX_EXPIRES_IN
    } else {
        let f = n.as_f64().unwrap_or(0.0);
        if f.is_nan() {
            0
        } else {
            // `as` saturates; the clamp keeps it in the int32 range.
            (f as i64).clamp(-MAX_EXPIRES_IN, MAX_EXPIRES_IN)
        }
    }
}

/// An RFC 3339 timestamp (any sub-second precision) or a number of Unix seconds
/// (milliseconds when larger than 10^11). Anything else is "unparseable" (ignored).
pub(crate) fn timestamp(value: &Value) -> Option<SystemTime> {
    match value {
        Value::String(s) => OffsetDateTime::parse(s.trim(), &Rfc3339)
            .ok()
            .map(SystemTime::from),
        Value::Number(n) => {
            let secs = n.as_f64()?;
            if !secs.is_finite() || secs < 0.0 {
                return None;
            }
            let secs = if secs > 1e11 { secs / 1000.0 } else { secs };
            let d = Duration::try_from_secs_f64(secs).ok()?;
            SystemTime::UNIX_EPOCH.checked_add(d)
        }
        _ => None,
    }
}

/// `base + secs` (secs may be negative), `None` on overflow.
fn offset(base: SystemTime, secs: i64) -> Option<SystemTime> {
    if secs >= 0 {
        base.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        base.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

/// Access-token expiry: the earliest of `expires_at`, `created_at + expires_in` and
/// `sent_at + expires_in`, clamped to `[sent_at, sent_at + 24 h]`. `None` when neither
/// `expires_in` nor `expires_at` is usable.
pub(crate) fn access_expiry(
    sent_at: SystemTime,
    expires_in: Option<i64>,
    expires_at: Option<SystemTime>,
    created_at: Option<SystemTime>,
) -> Option<SystemTime> {
    let candidates = [
        expires_at,
        expires_in.zip(created_at).and_then(|(i, c)| offset(c, i)),
        expires_in.and_then(|i| offset(sent_at, i)),
    ];
    let earliest = candidates.into_iter().flatten().min()?;
    let latest = sent_at + MAX_ACCESS_LIFETIME;
    Some(earliest.clamp(sent_at, latest))
}

/// Refresh-token expiry: the earliest of the same three candidates, never before
/// `sent_at`; `None` when Wise said nothing usable.
fn refresh_expiry(
    sent_at: SystemTime,
    expires_in: Option<i64>,
    expires_at: Option<SystemTime>,
    created_at: Option<SystemTime>,
) -> Option<SystemTime> {
    let candidates = [
        expires_at,
        expires_in.zip(created_at).and_then(|(i, c)| offset(c, i)),
        expires_in.and_then(|i| offset(sent_at, i)),
    ];
    candidates
        .into_iter()
        .flatten()
        .min()
        .map(|t| t.max(sent_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> SystemTime {
        // 2023-12-06T18:28:14Z
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_701_887_294)
    }

    fn parse(body: &str) -> Result<TokenResponse, WiseError> {
        parse_token_response(200, body.as_bytes(), t0())
    }

    fn reason(body: &str) -> &'static str {
        match parse(body) {
            Err(WiseError::MalformedResponse { reason }) => reason,
            other => panic!("expected MalformedResponse for {body:?}, got {other:?}"),
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn old_field_set() {
        let r = parse(
            r#"{"access_token":"a-1","token_type":"bearer","refresh_token":"r-1",
                "expires_in":43199,"scope":"transfers"}"#,
        )
        .unwrap();
        assert_eq!(r.access_token.expose_secret(), "a-1");
        assert_eq!(r.refresh_token.unwrap().expose_secret(), "r-1");
        assert_eq!(r.expires_at, t0() + secs(43199));
        assert_eq!(r.scope.as_deref(), Some("transfers"));
        assert_eq!(r.refresh_token_expires_at, None);
        assert_eq!(r.obtained_at, t0());
    }

    #[test]
    fn new_field_set_with_nanosecond_created_at_and_millisecond_expires_at() {
        let r = parse(
            r#"{"access_token":"01234567-89ab-cdef-0123-456789abcdef","token_type":"bearer",
                "refresh_token":"01234567-89ab-cdef-0123-456789abcdef","expires_in":43199,
                "expires_at":"2023-12-07T06:28:12.148Z","refresh_token_expires_in":628639555,
                "refresh_token_expires_at":"2043-11-27T13:49:23.552Z","scope":"transfers",
                "created_at":"2023-12-06T18:28:14.206824830Z","brand_new_field":{"x":[1]}}"#,
        )
        .unwrap();
        // expires_at (ms precision) is the earliest candidate.
        assert_eq!(
            r.expires_at,
            t0() + secs(43198) + Duration::from_millis(148)
        );
        let rt = r.refresh_token_expires_at.unwrap();
        let stated: SystemTime = OffsetDateTime::parse("2043-11-27T13:49:23.552Z", &Rfc3339)
            .unwrap()
            .into();
        let computed = t0() + secs(628_639_555);
        assert_eq!(rt, stated.min(computed));
        assert!(rt > t0() + secs(19 * 365 * 86400));
        // A created_at with nanoseconds parses exactly.
        assert_eq!(
            timestamp(&Value::String("2023-12-06T18:28:14.206824830Z".into())),
            Some(t0() + Duration::from_nanos(206_824_830))
        );
    }

    #[test]
    fn created_at_plus_expires_in_wins_when_earlier() {
        // Server clock 10 minutes behind: created_at + expires_in is earlier than send time + expires_in.
        let r =
            parse(r#"{"access_token":"a","expires_in":3600,"created_at":"2023-12-06T18:18:14Z"}"#)
                .unwrap();
        assert_eq!(r.expires_at, t0() + secs(3000));
    }

    #[test]
    fn expires_in_as_numeric_string_null_or_float() {
        assert_eq!(
            parse(r#"{"access_token":"a","expires_in":"3600"}"#)
                .unwrap()
                .expires_at,
            t0() + secs(3600)
        );
        assert_eq!(
            parse(r#"{"access_token":"a","expires_in":" 60 "}"#)
                .unwrap()
                .expires_at,
            t0() + secs(60)
        );
        assert_eq!(
            parse(r#"{"access_token":"a","expires_in":60.9}"#)
                .unwrap()
                .expires_at,
            t0() + secs(60)
        );
        // null expires_in with a usable expires_at (golang accepts null).
        let r =
            parse(r#"{"access_token":"a","expires_in":null,"expires_at":"2023-12-06T19:28:14Z"}"#)
                .unwrap();
        assert_eq!(r.expires_at, t0() + secs(3600));
    }

    #[test]
    fn expires_in_of_the_wrong_type_is_rejected() {
        // golang TestExchangeRequest_JSONResponse_Expiry: false, {} and "zzz" are rejected.
        for v in [
            "false", "true", "{}", "[]", r#""zzz""#, r#""""#, r#""1e""#, r#""NaN""#,
        ] {
            let body = format!(r#"{{"access_token":"a","expires_in":{v}}}"#);
            assert_eq!(reason(&body), "expires_in is not a number", "{v}");
        }
    }

    #[test]
    fn expires_in_upper_bound_is_clamped() {
        // golang TestExpiresInUpperBound: 1e10 -> MaxInt32 seconds; we also cap at 24 h.
        let obj: Map<String, Value> = serde_json::from_str(r#"{"expires_in":1e10}"#).unwrap();
        assert_eq!(
            number_field(&obj, "expires_in").unwrap(),
            Some(i32::MAX as i64)
        );
        let obj: Map<String, Value> =
            serde_json::from_str(r#"{"expires_in":"99999999999999999999999"}"#).unwrap();
        assert_eq!(
            number_field(&obj, "expires_in").unwrap(),
            Some(i32::MAX as i64)
        );
        let r = parse(r#"{"access_token":"a","expires_in":1e10}"#).unwrap();
        assert_eq!(r.expires_at, t0() + MAX_ACCESS_LIFETIME);
        let r = parse(r#"{"access_token":"a","expires_in":18446744073709551615}"#).unwrap();
        assert_eq!(r.expires_at, t0() + MAX_ACCESS_LIFETIME);
    }

    #[test]
    fn negative_and_zero_expires_in_clamp_to_send_time() {
        assert_eq!(
            parse(r#"{"access_token":"a","expires_in":-5}"#)
                .unwrap()
                .expires_at,
            t0()
        );
        assert_eq!(
            parse(r#"{"access_token":"a","expires_in":0}"#)
                .unwrap()
                .expires_at,
            t0()
        );
        assert_eq!(
            parse(r#"{"access_token":"a","expires_in":-9223372036854775808}"#)
                .unwrap()
                .expires_at,
            t0()
        );
        // An expires_at far in the past clamps to the send time too.
        assert_eq!(
            parse(r#"{"access_token":"a","expires_at":"1970-01-01T00:00:00Z"}"#)
                .unwrap()
                .expires_at,
            t0()
        );
    }

    #[test]
    fn expires_in_used_when_expires_at_unparseable() {
        // authlib test_expires_in_used_when_expires_at_unparseable
        for at in [r#""not a date""#, "true", "{}", r#""2023-13-45T99:99:99Z""#] {
            let body = format!(r#"{{"access_token":"a","expires_in":600,"expires_at":{at}}}"#);
            assert_eq!(parse(&body).unwrap().expires_at, t0() + secs(600), "{at}");
        }
    }

    #[test]
    fn expires_at_alone_as_string_or_number() {
        let r =
            parse(r#"{"access_token":"a","expires_at":"2023-12-06T19:28:14.5+00:00"}"#).unwrap();
        assert_eq!(r.expires_at, t0() + secs(3600) + Duration::from_millis(500));
        let r = parse(&format!(
            r#"{{"access_token":"a","expires_at":{}}}"#,
            1_701_887_294 + 60
        ))
        .unwrap();
        assert_eq!(r.expires_at, t0() + secs(60));
        let r = parse(&format!(
            r#"{{"access_token":"a","expires_at":{}}}"#,
            (1_701_887_294u64 + 60) * 1000
        ))
        .unwrap();
        assert_eq!(r.expires_at, t0() + secs(60));
    }

    #[test]
    fn no_usable_expiry_is_rejected() {
        assert_eq!(
            reason(r#"{"access_token":"a"}"#),
            "neither expires_in nor expires_at is usable"
        );
        assert_eq!(
            reason(r#"{"access_token":"a","expires_at":"soon"}"#),
            "neither expires_in nor expires_at is usable"
        );
    }

    #[test]
    fn minimal_response_with_null_optionals() {
        // oauth4webapi: null scope / refresh_token are accepted.
        let r = parse(r#"{"access_token":"a","token_type":"Bearer","expires_in":1,"scope":null,"refresh_token":null}"#)
            .unwrap();
        assert!(r.refresh_token.is_none());
        assert!(r.scope.is_none());
    }

    #[test]
    fn not_an_object_or_not_json() {
        assert_eq!(reason(""), "body is empty");
        assert_eq!(reason("  \n"), "body is empty");
        assert_eq!(
            reason("<html><body>502 Bad Gateway</body></html>"),
            "body is not JSON"
        );
        assert_eq!(reason("{\"access_token\":"), "body is not JSON");
        assert_eq!(reason("null"), "body is not a JSON object");
        assert_eq!(reason("[]"), "body is not a JSON object");
        assert_eq!(reason("\"a\""), "body is not a JSON object");
        assert_eq!(reason("42"), "body is not a JSON object");
    }

    #[test]
    fn wrong_types() {
        assert_eq!(
            reason(r#"{"access_token":"a","token_type":123,"expires_in":1}"#),
            "token_type is not a string"
        );
        assert_eq!(
            reason(r#"{"access_token":"a","token_type":"mac","expires_in":1}"#),
            "token_type is not bearer"
        );
        assert_eq!(
            reason(r#"{"access_token":5,"expires_in":1}"#),
            "access_token is not a string"
        );
        assert_eq!(
            reason(r#"{"access_token":"a","refresh_token":[],"expires_in":1}"#),
            "refresh_token is not a string"
        );
        assert_eq!(
            reason(r#"{"access_token":"a","scope":7,"expires_in":1}"#),
            "scope is not a string"
        );
    }

    #[test]
    fn missing_or_unusable_access_token() {
        assert_eq!(
            reason(r#"{"token_type":"bearer","expires_in":1}"#),
            "access_token is missing"
        );
        assert_eq!(
            reason(r#"{"access_token":null,"expires_in":1}"#),
            "access_token is missing"
        );
        assert_eq!(
            reason(r#"{"access_token":"","expires_in":1}"#),
            "access_token is empty"
        );
        for bad in ["a b", "a\\r\\nX-Evil: 1", "caf\u{e9}", "a\\u0000", "\\t"] {
            let body = format!(r#"{{"access_token":"{bad}","expires_in":1}}"#);
            assert_eq!(
                reason(&body),
                "access_token cannot be sent in an HTTP header",
                "{bad}"
            );
        }
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(
            reason(&format!(r#"{{"access_token":"{long}","expires_in":1}}"#)),
            "access_token cannot be sent in an HTTP header"
        );
        assert_eq!(
            reason(r#"{"access_token":"a","refresh_token":"r\nr","expires_in":1}"#),
            "refresh_token cannot be sent in an HTTP header"
        );
    }

    #[test]
    fn error_object_in_a_200_is_an_error() {
        // A 2xx carrying an error object is malformed (transient), never a dead grant.
        for body in [
            r#"{"error":"invalid_grant","error_description":"RT-CANARY"}"#,
            r#"{"error":"invalid_client","access_token":"a","expires_in":1}"#,
            r#"{"error":{"code":1}}"#,
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(
                e,
                WiseError::MalformedResponse {
                    reason: "a 2xx body carrying an error object"
                },
                "{body}"
            );
            assert!(e.is_transient() && !e.needs_relink(), "{body}");
        }
        let e =
            parse(r#"{"error":"server_error","error_description":"SECRET-CANARY"}"#).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("CANARY"));
    }

    #[test]
    fn oversized_and_deeply_nested_bodies_are_rejected() {
        let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(reason(&nested), "body is not JSON");
        let nested_obj = format!(
            r#"{{"access_token":"a","expires_in":1,"x":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(reason(&nested_obj), "body is not JSON");
        let big = format!(
            r#"{{"access_token":"a","expires_in":1,"pad":"{}"}}"#,
            "x".repeat(MAX_BODY_BYTES)
        );
        assert_eq!(reason(&big), "body is larger than 64 KiB");
    }

    #[test]
    fn error_code_of_error_bodies() {
        assert_eq!(
            error_code(br#"{"error":"invalid_grant"}"#),
            Some(OAuthErrorCode::InvalidGrant)
        );
        assert_eq!(
            error_code(br#"{"error":"whatever"}"#),
            Some(OAuthErrorCode::Other)
        );
        assert_eq!(error_code(b"<html>"), None);
        assert_eq!(error_code(br#"{"errors":[]}"#), None);
    }

    #[test]
    fn into_token_set_keeps_or_replaces_the_refresh_token() {
        // golang TestRefreshToken_RefreshTokenReplacement / Preservation; authlib no-refresh-token error.
        let with = parse(r#"{"access_token":"a2","refresh_token":"r2","expires_in":10}"#).unwrap();
        let without = parse(r#"{"access_token":"a2","expires_in":10}"#).unwrap();
        let old = RefreshToken::new("r1");
        assert_eq!(
            with.clone()
                .into_token_set(Some(&old))
                .unwrap()
                .refresh_token
                .expose_secret(),
            "r2"
        );
        assert_eq!(
            without
                .clone()
                .into_token_set(Some(&old))
                .unwrap()
                .refresh_token
                .expose_secret(),
            "r1"
        );
        assert_eq!(
            without.into_token_set(None).unwrap_err(),
            WiseError::MalformedResponse {
                reason: "no refresh_token in the response"
            }
        );
        let set = with.into_token_set(None).unwrap();
        assert_eq!(set.expires_at, t0() + secs(10));
        assert_eq!(set.obtained_at, t0());
    }

    #[test]
    fn token_expiry_boundary() {
        // golang TestTokenExpiry: a token with exactly `skew` left is not usable; one more
        // second is.
        let set = parse(r#"{"access_token":"a","refresh_token":"r","expires_in":120}"#)
            .unwrap()
            .into_token_set(None)
            .unwrap();
        let skew = secs(60);
        assert!(set.is_usable(t0(), skew));
        assert!(set.is_usable(t0() + secs(59), skew));
        assert!(!set.is_usable(t0() + secs(60), skew));
        assert!(!set.is_usable(t0() + secs(500), skew));
    }

    #[test]
    fn app_token_ignores_refresh_fields() {
        let t = parse_app_token(
            200,
            br#"{"access_token":"app","token_type":"bearer","expires_in":43199,"expires_at":"2023-12-07T06:28:13Z","scope":"transfers"}"#,
            t0(),
        )
        .unwrap();
        assert_eq!(t.access_token.expose_secret(), "app");
        assert_eq!(t.expires_at, t0() + secs(43199));
    }
}
