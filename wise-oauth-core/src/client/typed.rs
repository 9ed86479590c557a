//! The calls partners make first: profiles, balances and a balance statement (SCA
//! protected), with tolerant types (unknown fields ignored, unknown enum values kept as
//! text).

use std::fmt;
use std::time::SystemTime;

use http::Method;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::call::Prepared;
use super::error::ClientError;
use super::WiseClient;
use crate::api::{parse_profile, ProfileSummary};
use crate::endpoint::WiseError;
use crate::ids::ProfileId;

/// An amount of money: the decimal exactly as Wise's JSON wrote it (up to 15 significant
/// digits; never rounded through a float's longer expansion) and its currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    value: String,
    currency: String,
}

impl Money {
    /// The decimal value as text, e.g. `310.86` or `-12.5`.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The ISO 4217 currency code.
    pub fn currency(&self) -> &str {
        &self.currency
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.value, self.currency)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            value: serde_json::Number,
            currency: String,
        }
        let raw = Raw::deserialize(deserializer)?;
        Ok(Money {
            value: raw.value.to_string(),
            currency: raw.currency,
        })
    }
}

fn visible_by_default() -> bool {
    true
}

/// A balance of a profile (`GET /v4/profiles/{profileId}/balances`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Balance {
    /// The balance id (the `balanceId` of a statement).
    pub id: u64,
    /// The ISO 4217 currency code.
    pub currency: String,
    /// `STANDARD` or `SAVINGS` (any other value kept as sent).
    #[serde(rename = "type")]
    pub kind: String,
    /// The name of a savings balance ("jar").
    #[serde(default)]
    pub name: Option<String>,
    /// The available amount (what can fund transfers).
    pub amount: Money,
    /// Reserved for pending transactions.
    #[serde(default)]
    pub reserved_amount: Option<Money>,
    /// Cash held.
    #[serde(default)]
    pub cash_amount: Option<Money>,
    /// Total worth.
    #[serde(default)]
    pub total_worth: Option<Money>,
    /// Whether the balance is shown to the user.
    #[serde(default = "visible_by_default")]
    pub visible: bool,
}

/// What statement to fetch: one currency over an interval (at most 469 days at Wise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementQuery {
    currency: String,
    interval_start: String,
    interval_end: String,
    flat: bool,
}

impl StatementQuery {
    /// The `currency` statement from `start` to `end` (sent as ISO-8601 UTC), one line per
    /// transaction (`COMPACT`).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use wise_oauth_core::StatementQuery;
    /// let end = SystemTime::now();
    /// let query = StatementQuery::new("EUR", end - Duration::from_secs(30 * 86_400), end);
    /// # let _ = query;
    /// ```
    pub fn new(currency: impl Into<String>, start: SystemTime, end: SystemTime) -> Self {
        Self {
            currency: currency.into(),
            interval_start: iso(start),
            interval_end: iso(end),
            flat: false,
        }
    }

    /// Fees on lines of their own (`FLAT`) instead of `COMPACT`.
    pub fn flat(mut self) -> Self {
        self.flat = true;
        self
    }

    fn query_string(&self) -> String {
        let kind = if self.flat { "FLAT" } else { "COMPACT" };
        serde_urlencoded::to_string([
            ("currency", self.currency.as_str()),
            ("intervalStart", self.interval_start.as_str()),
            ("intervalEnd", self.interval_end.as_str()),
            ("type", kind),
        ])
        .unwrap_or_default()
    }
}

fn iso(at: SystemTime) -> String {
    OffsetDateTime::from(at)
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::from(at))
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// A balance statement (`GET /v1/profiles/{profileId}/balance-statements/{balanceId}/statement.json`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Statement {
    /// The balance at the end of the interval.
    #[serde(default)]
    pub end_of_statement_balance: Option<Money>,
    /// The transactions of the interval.
    #[serde(default)]
    pub transactions: Vec<StatementTransaction>,
}

/// One line of a [`Statement`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct StatementTransaction {
    /// `DEBIT` or `CREDIT` (any other value kept as sent).
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened (ISO-8601, as sent).
    pub date: String,
    /// The amount (negative for a debit).
    pub amount: Money,
    /// The fees.
    #[serde(default)]
    pub total_fees: Option<Money>,
    /// The balance after it.
    #[serde(default)]
    pub running_balance: Option<Money>,
    /// Wise's reference.
    #[serde(default)]
    pub reference_number: Option<String>,
    /// The `details` object as sent (`type`, `description`, ...).
    #[serde(default)]
    pub details: Value,
}

impl StatementTransaction {
    /// `details.description`, if any.
    pub fn description(&self) -> Option<&str> {
        self.details.get("description").and_then(Value::as_str)
    }
}

impl WiseClient {
    /// `GET /v2/profiles`: the profiles the user's token can see.
    pub async fn profiles(&self) -> Result<Vec<ProfileSummary>, ClientError> {
        let resp = self
            .execute(Prepared::new(Method::GET, "/v2/profiles", None, "profiles"))
            .await?;
        match resp.json::<Value>()? {
            Value::Array(items) => items
                .iter()
                .map(|item| parse_profile(item).map_err(ClientError::from))
                .collect(),
            _ => Err(WiseError::MalformedResponse {
                reason: "profiles response is not an array",
            }
            .into()),
        }
    }

    /// `GET /v4/profiles/{profile}/balances?types=...`: the profile's balances of these
    /// types (`STANDARD`, `SAVINGS`; `STANDARD` when `types` is empty).
    pub async fn balances(
        &self,
        profile: ProfileId,
        types: &[&str],
    ) -> Result<Vec<Balance>, ClientError> {
        if !types
            .iter()
            .all(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        {
            return Err(ClientError::InvalidRequest {
                reason: "balance types are upper-case words such as STANDARD",
            });
        }
        let types = if types.is_empty() {
            "STANDARD".to_owned()
        } else {
            types.join(",")
        };
        let path = format!("/v4/profiles/{profile}/balances?types={types}");
        self.execute(Prepared::new(Method::GET, &path, None, "balances"))
            .await?
            .json()
    }

    /// `GET /v1/profiles/{profile}/balance-statements/{balance_id}/statement.json`: SCA
    /// protected. Without a recent strong authentication Wise answers
    /// [`WiseError::Sca`](crate::WiseError::Sca): let the user clear the challenge, then
    /// repeat through [`WiseClient::with_sca_approval`].
    pub async fn statement(
        &self,
        profile: ProfileId,
        balance_id: u64,
        query: &StatementQuery,
    ) -> Result<Statement, ClientError> {
        let path = format!(
            "/v1/profiles/{profile}/balance-statements/{balance_id}/statement.json?{}",
            query.query_string()
        );
        self.execute(Prepared::new(Method::GET, &path, None, "statement"))
            .await?
            .json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_keeps_the_decimal_text() {
        let b: Balance = serde_json::from_str(
            r#"{"id":200001,"currency":"EUR","type":"STANDARD","name":null,"icon":{"type":"EMOJI","value":"x"},
            "investmentState":"INVESTING","amount":{"value":10000594.71,"currency":"EUR"},
            "reservedAmount":{"value":0,"currency":"EUR"},"cashAmount":{"value":310.86,"currency":"EUR"},
            "totalWorth":{"value":-0.1,"currency":"EUR"},"visible":true}"#,
        )
        .unwrap();
        assert_eq!(b.amount.value(), "10000594.71");
        assert_eq!(b.reserved_amount.unwrap().value(), "0");
        assert_eq!(b.cash_amount.unwrap().to_string(), "310.86 EUR");
        assert_eq!(b.total_worth.unwrap().value(), "-0.1");
    }

    #[test]
    fn the_statement_query_is_iso_utc() {
        let start = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let q = StatementQuery::new("EUR", start, start).flat();
        assert_eq!(
            q.query_string(),
            "currency=EUR&intervalStart=2023-11-14T22%3A13%3A20Z&intervalEnd=2023-11-14T22%3A13%3A20Z&type=FLAT"
        );
    }
}
