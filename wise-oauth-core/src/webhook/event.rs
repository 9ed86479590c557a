//! The parts of a webhook event the library reads (envelope schema 2.0.0).

use std::time::SystemTime;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// The event type that carries user deactivations.
pub(crate) const USER_STATE_CHANGE: &str = "users#state-change";
/// The `current_state` of a deactivated user (every token revoked).
pub(crate) const DEACTIVATED: &str = "DEACTIVATED";

/// A verified event, as far as the library acts on it. Unknown types, fields and states are
/// kept as they come (an unknown event is not an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) event_type: String,
    /// `data.resource.type`, if any.
    pub(crate) resource_type: Option<String>,
    /// `data.resource.id` as a positive integer, if it is one.
    pub(crate) resource_id: Option<u64>,
    /// `data.current_state`, if any.
    pub(crate) current_state: Option<String>,
    /// `data.occurred_at`, else the envelope's `sent_at` (parsed leniently).
    pub(crate) occurred_at: Option<SystemTime>,
}

impl Event {
    /// Parses a body. `None` when it is not a JSON object with a string `event_type`.
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let event_type = value.get("event_type")?.as_str()?.to_owned();
        let data = value.get("data");
        let resource = data.and_then(|d| d.get("resource"));
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let resource_id = match resource.and_then(|r| r.get("id")) {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().ok()
            }
            _ => None,
        }
        .filter(|id| *id != 0);
        let occurred_at = text(data.and_then(|d| d.get("occurred_at")))
            .as_deref()
            .and_then(parse_time)
            .or_else(|| text(value.get("sent_at")).as_deref().and_then(parse_time));
        Some(Self {
            event_type,
            resource_type: text(resource.and_then(|r| r.get("type"))),
            resource_id,
            current_state: text(data.and_then(|d| d.get("current_state"))),
            occurred_at,
        })
    }

    /// The Wise user this event deactivates, if it is a deactivation.
    pub(crate) fn deactivated_user(&self) -> Option<u64> {
        let is_user = self
            .resource_type
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case("user"));
        let deactivated = self
            .current_state
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(DEACTIVATED));
        (self.event_type == USER_STATE_CHANGE && is_user && deactivated)
            .then_some(self.resource_id)
            .flatten()
    }
}

/// RFC 3339, else its first 19 characters (`YYYY-MM-DDTHH:MM:SS`) as UTC: Wise's own
/// example carries `12:34:567Z`, and some payloads carry milliseconds.
fn parse_time(text: &str) -> Option<SystemTime> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.into());
    }
    let prefix = text.get(..19)?;
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    PrimitiveDateTime::parse(prefix, format)
        .ok()
        .map(|t| t.assume_utc().into())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    const DOCS_EXAMPLE: &str = r#"{"data":{"resource":{"id":1234,"type":"user"},"previous_state":"ACTIVE","current_state":"DEACTIVATED",
  "deactivation_type":"ACCOUNT_CLOSURE","deactivation_reason":"REQUESTED_BY_CUSTOMER_CS","occurred_at":"2020-01-01T12:34:567Z"},
 "event_type":"users#state-change","schema_version":"2.0.0","sent_at":"2020-01-01T12:34:56Z",
 "subscription_id":"f5b51f77-e14a-433b-9f7c-fc2834ffcff5"}"#;

    #[test]
    fn the_documented_deactivation_parses_despite_its_timestamp() {
        let event = Event::parse(DOCS_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(event.deactivated_user(), Some(1234));
        assert_eq!(
            event.occurred_at,
            Some(UNIX_EPOCH + Duration::from_secs(1_577_882_096))
        );
    }

    #[test]
    fn timestamps_parse_leniently() {
        let at = |s| parse_time(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap());
        assert_eq!(
            at("2020-01-01T12:34:56Z"),
            Some(Duration::from_secs(1_577_882_096))
        );
        assert_eq!(
            at("2020-01-01T12:34:56.250Z"),
            Some(Duration::from_millis(1_577_882_096_250))
        );
        assert_eq!(
            at("2020-01-01T13:34:56+01:00"),
            Some(Duration::from_secs(1_577_882_096))
        );
        assert_eq!(at("2020-01-01"), None);
        assert_eq!(at("yesterday at noon, roughly"), None);
    }

    #[test]
    fn other_events_are_not_deactivations() {
        let other = [
            r#"{"event_type":"users#state-change","data":{"resource":{"id":5,"type":"user"},"current_state":"ACTIVE"}}"#,
            r#"{"event_type":"users#state-change","data":{"resource":{"id":5,"type":"profile"},"current_state":"DEACTIVATED"}}"#,
            r#"{"event_type":"users#state-change","data":{"resource":{"id":0,"type":"user"},"current_state":"DEACTIVATED"}}"#,
            r#"{"event_type":"profiles#verification-state-change","data":{"resource":{"id":5,"type":"profile"},"current_state":"not_verified"}}"#,
            r#"{"event_type":"balances#update","data":{}}"#,
        ];
        for body in other {
            let event = Event::parse(body.as_bytes()).unwrap();
            assert_eq!(event.deactivated_user(), None, "{body}");
        }
        let string_id = r#"{"event_type":"users#state-change","data":{"resource":{"id":"77"},"current_state":"deactivated"}}"#;
        assert_eq!(
            Event::parse(string_id.as_bytes())
                .unwrap()
                .deactivated_user(),
            Some(77)
        );
        for bad in ["", "[]", "{}", r#"{"event_type":5}"#, "{\"event_type\":"] {
            assert!(Event::parse(bad.as_bytes()).is_none(), "{bad}");
        }
    }
}
