//! Request counters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counters for one grant type at the token endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantStats {
    /// Every POST to the token endpoint with this `grant_type`, any outcome.
    pub requests: u64,
    /// Requests for which tokens were issued (including `drop_after_processing` and
    /// `late_completion` ones).
    pub successes: u64,
    /// Counts by outcome: `ok`, an OAuth error code (`invalid_grant`, ...),
    /// `fault:<kind>` when a fault replaced the response, `ok:dropped` /
    /// `<error>:dropped` for `drop_after_processing`, `ok:late` / `<error>:late` for
    /// `late_completion`, `rate_limited` when the [rate limit](crate::RateLimit)
    /// refused the request.
    pub outcomes: BTreeMap<String, u64>,
}

/// A snapshot of the emulator's request counters (`GET /__mock/stats`).
///
/// Grant keys are the `grant_type` as sent; `(missing)` when absent and
/// `(unparsed)` when the body was not a form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests by endpoint key, e.g. `POST /oauth/token`, `GET /v2/profiles/{id}`.
    pub endpoints: BTreeMap<String, u64>,
    /// Token-endpoint requests by grant type.
    pub grants: BTreeMap<String, GrantStats>,
    /// How many injected faults fired.
    pub faults_applied: u64,
    /// Token-endpoint requests being handled right now, late completions included: zero
    /// means nothing more will change tokens until the next request.
    #[serde(default)]
    pub token_in_flight: u64,
    /// The most token-endpoint requests in flight at once since the emulator started or
    /// [`MockWiseHandle::reset_token_in_flight_peak`](crate::MockWiseHandle::reset_token_in_flight_peak):
    /// how many refreshes a client sent at once.
    #[serde(default)]
    pub token_in_flight_peak: u64,
    /// Requests refused with 429 by the [rate limit](crate::RateLimit), token endpoint
    /// and API together (injected `rate_limit` faults are not counted here).
    #[serde(default)]
    pub rate_limited: u64,
    /// Requests held by a [`late_completion`](crate::FaultKind::LateCompletion) fault that
    /// have been processed, whether or not the client was still there for the answer.
    #[serde(default)]
    pub late_completions: u64,
}

impl Stats {
    /// All POSTs to the token endpoint with that `grant_type`, any outcome (faulted ones included).
    pub fn token_requests(&self, grant_type: &str) -> u64 {
        self.grants.get(grant_type).map_or(0, |g| g.requests)
    }

    /// Successful token issues for that grant.
    pub fn token_successes(&self, grant_type: &str) -> u64 {
        self.grants.get(grant_type).map_or(0, |g| g.successes)
    }

    /// How often that grant ended with `outcome` (see [`GrantStats::outcomes`]).
    pub fn token_outcomes(&self, grant_type: &str, outcome: &str) -> u64 {
        self.grants
            .get(grant_type)
            .and_then(|g| g.outcomes.get(outcome).copied())
            .unwrap_or(0)
    }

    /// Requests to an endpoint key such as `"POST /oauth/token"`, `"GET /v2/profiles"`,
    /// `"GET /oauth/authorize"` (versioned token paths and the trailing-slash authorize
    /// path count under the plain key).
    pub fn endpoint_requests(&self, key: &str) -> u64 {
        self.endpoints.get(key).copied().unwrap_or(0)
    }

    /// All requests to the token endpoint.
    pub fn total_token_requests(&self) -> u64 {
        self.grants.values().map(|g| g.requests).sum()
    }

    pub(crate) fn hit_endpoint(&mut self, key: String) {
        *self.endpoints.entry(key).or_default() += 1;
    }

    pub(crate) fn token_request(&mut self, grant: &str) {
        self.grants.entry(grant.to_owned()).or_default().requests += 1;
    }

    pub(crate) fn token_outcome(&mut self, grant: &str, outcome: &str, success: bool) {
        let g = self.grants.entry(grant.to_owned()).or_default();
        if success {
            g.successes += 1;
        }
        *g.outcomes.entry(outcome.to_owned()).or_default() += 1;
    }
}
