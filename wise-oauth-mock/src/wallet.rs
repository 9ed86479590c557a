//! Money a profile holds (balances seeded per profile, statement lines) and the SCA
//! one-time tokens that guard the statement.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::clock::fmt_millis;

/// How long an uncleared one-time token lives (`validity` 3600 in every documented
/// example).
pub(crate) const OTT_VALIDITY: Duration = Duration::from_secs(3600);
/// A cleared SCA opens a session for low-risk calls this long.
pub(crate) const SCA_SESSION: Duration = Duration::from_secs(5 * 60);
/// The action a statement's one-time token is bound to.
pub(crate) const STATEMENT_ACTION: &str = "BALANCE__GET_STATEMENT";

/// One balance of a profile.
#[derive(Debug, Clone)]
pub(crate) struct Balance {
    pub(crate) id: u64,
    pub(crate) currency: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) name: Option<&'static str>,
    /// The available amount, in minor units (cents).
    pub(crate) cents: i64,
    pub(crate) created_at: SystemTime,
}

/// A one-time token issued with an SCA 403.
#[derive(Debug, Clone)]
pub(crate) struct OneTimeToken {
    pub(crate) user_id: u64,
    pub(crate) action: &'static str,
    pub(crate) approved: bool,
    pub(crate) used: bool,
    pub(crate) issued_at: SystemTime,
}

/// What a request carrying (or not) `x-2fa-approval` gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScaVerdict {
    /// Go ahead (`approved`: the request cleared SCA with its one-time token).
    Pass { approved: bool },
    /// 403 REJECTED with this new one-time token.
    Challenge(String),
}

/// Balances per profile and SCA state per user.
#[derive(Debug, Default)]
pub(crate) struct Wallet {
    balances: HashMap<u64, Vec<Balance>>,
    tokens: HashMap<String, OneTimeToken>,
    /// Until when each user's SCA session for low-risk calls lasts.
    sessions: HashMap<u64, SystemTime>,
}

/// Money as a JSON number (two decimals at most, as Wise writes them).
pub(crate) fn money(cents: i64, currency: &str) -> Value {
    let text = format!("{}.{:02}", cents / 100, (cents % 100).abs());
    let text = if cents < 0 && cents > -100 {
        format!("-{text}")
    } else {
        text
    };
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    json!({"value": value, "currency": currency})
}

impl Balance {
    pub(crate) fn json(&self) -> Value {
        json!({
            "id": self.id,
            "currency": self.currency,
            "type": self.kind,
            "name": self.name,
            "icon": null,
            "investmentState": "NOT_INVESTED",
            "amount": money(self.cents, self.currency),
            "reservedAmount": money(0, self.currency),
            "cashAmount": money(self.cents, self.currency),
            "totalWorth": money(self.cents, self.currency),
            "creationTime": fmt_millis(self.created_at),
            "modificationTime": fmt_millis(self.created_at),
            "visible": true,
        })
    }
}

impl Wallet {
    /// The profile's balances, seeded on first use from its id (the same on every run):
    /// STANDARD EUR and GBP, and a SAVINGS EUR jar.
    pub(crate) fn balances(&mut self, profile_id: u64, now: SystemTime) -> &[Balance] {
        self.balances.entry(profile_id).or_insert_with(|| {
            let n = i64::try_from(profile_id % 1000).unwrap_or(0);
            let base = (profile_id % 1_000_000) * 10 + 200_000;
            vec![
                Balance {
                    id: base + 1,
                    currency: "EUR",
                    kind: "STANDARD",
                    name: None,
                    cents: 31_086 + n * 100,
                    created_at: now,
                },
                Balance {
                    id: base + 2,
                    currency: "GBP",
                    kind: "STANDARD",
                    name: None,
                    cents: 120_000 + n,
                    created_at: now,
                },
                Balance {
                    id: base + 3,
                    currency: "EUR",
                    kind: "SAVINGS",
                    name: Some("Holiday"),
                    cents: 5_000,
                    created_at: now,
                },
            ]
        })
    }

    /// Decides an SCA-protected call of `user_id` for `action`: a valid approved one-time
    /// token (used up now) or a running SCA session passes; anything else is challenged
    /// with a new token (an uncleared, used, expired or foreign token included).
    pub(crate) fn sca(
        &mut self,
        user_id: u64,
        action: &'static str,
        presented: Option<&str>,
        now: SystemTime,
    ) -> ScaVerdict {
        if let Some(ott) = presented {
            let valid = self.tokens.get_mut(ott).filter(|t| {
                t.user_id == user_id
                    && t.action == action
                    && t.approved
                    && !t.used
                    && now < t.issued_at + OTT_VALIDITY
            });
            if let Some(token) = valid {
                token.used = true;
                self.sessions.insert(user_id, now + SCA_SESSION);
                return ScaVerdict::Pass { approved: true };
            }
        } else if self
            .sessions
            .get(&user_id)
            .is_some_and(|until| now < *until)
        {
            return ScaVerdict::Pass { approved: false };
        }
        let ott = uuid::Uuid::new_v4().to_string();
        self.tokens.insert(
            ott.clone(),
            OneTimeToken {
                user_id,
                action,
                approved: false,
                used: false,
                issued_at: now,
            },
        );
        ScaVerdict::Challenge(ott)
    }

    /// The user clears the challenges of `ott`; `false` for an unknown token.
    pub(crate) fn approve(&mut self, ott: &str) -> bool {
        match self.tokens.get_mut(ott) {
            Some(token) => {
                token.approved = true;
                true
            }
            None => false,
        }
    }

    /// A one-time token of `user_id`, for its status call.
    pub(crate) fn token(&self, ott: &str, user_id: u64) -> Option<&OneTimeToken> {
        self.tokens.get(ott).filter(|t| t.user_id == user_id)
    }

    /// Ends every SCA session (the next protected call is challenged again).
    pub(crate) fn end_sessions(&mut self) {
        self.sessions.clear();
    }
}

impl OneTimeToken {
    /// The status object (`oneTimeTokenProperties`): one SMS challenge, passed once
    /// approved.
    pub(crate) fn status_json(&self, ott: &str, now: SystemTime) -> Value {
        let left = (self.issued_at + OTT_VALIDITY)
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        json!({"oneTimeTokenProperties": {
            "oneTimeToken": ott,
            "challenges": [{
                "primaryChallenge": {"type": "SMS", "viewData": {"attributes": {"userId": self.user_id}}},
                "alternatives": [],
                "required": true,
                "passed": self.approved,
            }],
            "validity": left,
            "actionType": self.action,
            "userId": self.user_id,
        }})
    }
}
