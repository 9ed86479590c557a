//! Metrics: what the library counts and measures, through the [`metrics`](https://docs.rs/metrics/0.24) facade crate.
//!
//! With the `metrics` feature (off by default), the library records the figures below with
//! the `metrics` 0.24 macros; the app installs the recorder/exporter it wants (Prometheus,
//! StatsD, OpenTelemetry, ...). Without the feature nothing of this is compiled in.
//!
//! Every label has a fixed, small set of values written in the source: never a user id, a
//! profile id, a path or a token. Names and labels are static, so recording allocates
//! nothing: on the hot path (a token served from the cache) the cost is one counter
//! increment.
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `wise_oauth_token_cache_total` | counter | `result`: `hit`, `miss` | a token request answered from the in-memory cache with no I/O (`hit`), or that went to the store or a refresh (`miss`) |
//! | `wise_oauth_refresh_total` | counter | `outcome`: `success`, `relink_required`, `client_rejected`, `transient`, `invalid_response`, `store_error`, `fenced` | one refresh of a link that called Wise ended (after its retries): tokens renewed; Wise rejected the refresh token (`invalid_grant`, the link now needs a re-link); Wise rejected the OAuth client (`invalid_client`: a configuration problem, the breaker opens); Wise unreachable, timed out, 5xx or 429; an unusable 200; the store failed while fencing; another holder took the link meanwhile |
//! | `wise_oauth_refresh_in_flight` | gauge | | refreshes running in this process (spawned refresh tasks) |
//! | `wise_oauth_lease_waits_total` | counter | | a refresh or a link completion found the link's lease held (by another instance or task) and waited for it |
//! | `wise_oauth_relink_required_total` | counter | | a link was marked as needing a re-link (re-link events) |
//! | `wise_oauth_unpersisted_sets` | gauge | | refreshed token sets the store could not take, held in memory and retried in the background (the link answers 503 meanwhile) |
//! | `wise_oauth_link_total` | counter | `outcome`: `linked` or a [`FlowError::reason`](crate::FlowError::reason) (`access_denied`, `unknown_state`, `busy`, ...) | a link callback (web or mobile) finished |
//! | `wise_oauth_code_exchanges_in_flight` | gauge | | link completions holding one of the code-exchange permits ([`WiseOAuthBuilder::max_concurrent_exchanges`](crate::WiseOAuthBuilder::max_concurrent_exchanges)) |
//! | `wise_oauth_wise_request_duration_seconds` | histogram | `endpoint`: `token`, `profile`, `profiles`, `signup`, `api` | one HTTP attempt to Wise, from sending to the end of the body: `POST /oauth/token` (every grant), the profile look-ups of the link flow, the signup of `register_user`, and the calls of a [`WiseClient`](crate::WiseClient) |
//!
//! # Example: Prometheus
//!
//! ```ignore
//! // Cargo.toml: metrics-exporter-prometheus = { version = "0.18", default-features = false }
//! let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
//! // GET /metrics: prometheus.render()
//! ```
//!
//! The demo (`cargo run --example axum --features metrics`) serves them at `/metrics`.

/// The Wise endpoint of a timed HTTP attempt (the `endpoint` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WiseEndpoint {
    /// `POST /oauth/token`.
    Token,
    /// `GET /v2/profiles/{id}`.
    Profile,
    /// `GET /v2/profiles`.
    Profiles,
    /// `POST /v1/user/signup/registration_code`.
    Signup,
    /// A call of a `WiseClient`.
    Api,
}

impl WiseEndpoint {
    /// The endpoint of a library API operation (`api.rs` names them).
    pub(crate) fn of_operation(operation: &str) -> Self {
        match operation {
            "profile" => Self::Profile,
            "profiles" => Self::Profiles,
            "signup" => Self::Signup,
            _ => Self::Api,
        }
    }
}

/// How a refresh that called Wise ended (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshOutcome {
    Success,
    RelinkRequired,
    ClientRejected,
    Transient,
    InvalidResponse,
    StoreError,
    Fenced,
}

/// A token request answered from the cache.
#[inline]
pub(crate) fn cache_hit() {
    #[cfg(feature = "metrics")]
    ::metrics::counter!("wise_oauth_token_cache_total", "result" => "hit").increment(1);
}

/// A token request the cache could not answer alone.
#[inline]
pub(crate) fn cache_miss() {
    #[cfg(feature = "metrics")]
    ::metrics::counter!("wise_oauth_token_cache_total", "result" => "miss").increment(1);
}

/// A refresh that called Wise ended.
#[inline]
pub(crate) fn refresh(outcome: RefreshOutcome) {
    #[cfg(feature = "metrics")]
    {
        use ::metrics::counter;
        let counter = match outcome {
            RefreshOutcome::Success => counter!("wise_oauth_refresh_total", "outcome" => "success"),
            RefreshOutcome::RelinkRequired => {
                counter!("wise_oauth_refresh_total", "outcome" => "relink_required")
            }
            RefreshOutcome::ClientRejected => {
                counter!("wise_oauth_refresh_total", "outcome" => "client_rejected")
            }
            RefreshOutcome::Transient => {
                counter!("wise_oauth_refresh_total", "outcome" => "transient")
            }
            RefreshOutcome::InvalidResponse => {
                counter!("wise_oauth_refresh_total", "outcome" => "invalid_response")
            }
            RefreshOutcome::StoreError => {
                counter!("wise_oauth_refresh_total", "outcome" => "store_error")
            }
            RefreshOutcome::Fenced => counter!("wise_oauth_refresh_total", "outcome" => "fenced"),
        };
        counter.increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}

/// A lease acquisition found the lease held. `waited` is the acquisition's own flag: only
/// its first contention counts.
#[inline]
pub(crate) fn lease_contended(waited: &mut bool) {
    if !std::mem::replace(waited, true) {
        #[cfg(feature = "metrics")]
        ::metrics::counter!("wise_oauth_lease_waits_total").increment(1);
    }
}

/// A link was marked as needing a re-link.
#[inline]
pub(crate) fn relink_required() {
    #[cfg(feature = "metrics")]
    ::metrics::counter!("wise_oauth_relink_required_total").increment(1);
}

/// A link callback finished: `Ok` or the flow error's reason.
#[inline]
pub(crate) fn link_outcome(reason: Result<(), &'static str>) {
    #[cfg(feature = "metrics")]
    match reason {
        Ok(()) => ::metrics::counter!("wise_oauth_link_total", "outcome" => "linked").increment(1),
        // A fixed set: `FlowError::reason` returns one of its literals.
        Err(reason) => {
            ::metrics::counter!("wise_oauth_link_total", "outcome" => reason).increment(1)
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = reason;
}

/// Times `attempt`, one HTTP attempt to Wise at `endpoint` (from this call: await it at
/// once). Not an `async fn`: that would hold `attempt` twice in the caller's future, once
/// as the argument and once being awaited; without the feature this is `attempt` itself.
#[inline]
pub(crate) fn timed<F: std::future::Future>(
    endpoint: WiseEndpoint,
    attempt: F,
) -> impl std::future::Future<Output = F::Output> {
    #[cfg(feature = "metrics")]
    {
        use futures::FutureExt as _;
        let started = std::time::Instant::now();
        attempt.map(move |out| {
            record_duration(endpoint, started.elapsed().as_secs_f64());
            out
        })
    }
    #[cfg(not(feature = "metrics"))]
    {
        let _ = endpoint;
        attempt
    }
}

#[cfg(feature = "metrics")]
fn record_duration(endpoint: WiseEndpoint, seconds: f64) {
    use ::metrics::histogram;
    let histogram = match endpoint {
        WiseEndpoint::Token => {
            histogram!("wise_oauth_wise_request_duration_seconds", "endpoint" => "token")
        }
        WiseEndpoint::Profile => {
            histogram!("wise_oauth_wise_request_duration_seconds", "endpoint" => "profile")
        }
        WiseEndpoint::Profiles => {
            histogram!("wise_oauth_wise_request_duration_seconds", "endpoint" => "profiles")
        }
        WiseEndpoint::Signup => {
            histogram!("wise_oauth_wise_request_duration_seconds", "endpoint" => "signup")
        }
        WiseEndpoint::Api => {
            histogram!("wise_oauth_wise_request_duration_seconds", "endpoint" => "api")
        }
    };
    histogram.record(seconds);
}

/// Counts one running thing in a gauge while alive (a refresh task, an unpersisted set, an
/// exchange permit). Zero-sized and inert without the feature.
#[derive(Debug)]
#[must_use]
pub(crate) struct Live {
    #[cfg(feature = "metrics")]
    gauge: ::metrics::Gauge,
}

impl Live {
    /// A refresh task runs (`wise_oauth_refresh_in_flight`).
    pub(crate) fn refresh() -> Self {
        Self::of(
            #[cfg(feature = "metrics")]
            ::metrics::gauge!("wise_oauth_refresh_in_flight"),
        )
    }

    /// An unpersisted set is held (`wise_oauth_unpersisted_sets`).
    pub(crate) fn unpersisted() -> Self {
        Self::of(
            #[cfg(feature = "metrics")]
            ::metrics::gauge!("wise_oauth_unpersisted_sets"),
        )
    }

    /// A code exchange permit is held (`wise_oauth_code_exchanges_in_flight`).
    pub(crate) fn exchange() -> Self {
        Self::of(
            #[cfg(feature = "metrics")]
            ::metrics::gauge!("wise_oauth_code_exchanges_in_flight"),
        )
    }

    fn of(#[cfg(feature = "metrics")] gauge: ::metrics::Gauge) -> Self {
        #[cfg(feature = "metrics")]
        gauge.increment(1.0);
        Self {
            #[cfg(feature = "metrics")]
            gauge,
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        self.gauge.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_operations_map_to_their_endpoint() {
        assert_eq!(WiseEndpoint::of_operation("profile"), WiseEndpoint::Profile);
        assert_eq!(
            WiseEndpoint::of_operation("profiles"),
            WiseEndpoint::Profiles
        );
        assert_eq!(WiseEndpoint::of_operation("signup"), WiseEndpoint::Signup);
        assert_eq!(WiseEndpoint::of_operation("get"), WiseEndpoint::Api);
    }

    #[test]
    fn a_lease_acquisition_counts_its_first_contention_only() {
        let mut waited = false;
        lease_contended(&mut waited);
        assert!(waited);
        lease_contended(&mut waited);
        assert!(waited);
    }

    /// Without the feature the gauge guards are zero-sized: nothing is compiled in.
    #[cfg(not(feature = "metrics"))]
    #[test]
    fn without_the_feature_nothing_is_kept() {
        assert_eq!(std::mem::size_of::<Live>(), 0);
    }

    /// With the feature, each figure lands under its documented name and fixed labels.
    #[cfg(feature = "metrics")]
    #[test]
    fn figures_use_the_documented_names_and_labels() {
        use std::sync::{Arc, Mutex};

        use ::metrics::{
            Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
        };

        #[derive(Default)]
        struct Names(Mutex<Vec<String>>);
        impl Names {
            fn add(&self, key: &Key) {
                let labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                self.0
                    .lock()
                    .unwrap()
                    .push(format!("{}{:?}", key.name(), labels));
            }
        }
        #[derive(Default, Clone)]
        struct Rec(Arc<Names>);
        impl Recorder for Rec {
            fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
                self.0.add(key);
                Counter::noop()
            }
            fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
                self.0.add(key);
                Gauge::noop()
            }
            fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
                self.0.add(key);
                Histogram::noop()
            }
        }
        let rec = Rec::default();
        ::metrics::with_local_recorder(&rec, || {
            cache_hit();
            cache_miss();
            refresh(RefreshOutcome::Fenced);
            relink_required();
            link_outcome(Err("busy"));
            drop(Live::refresh());
        });
        assert_eq!(
            *rec.0 .0.lock().unwrap(),
            [
                r#"wise_oauth_token_cache_total["result=hit"]"#,
                r#"wise_oauth_token_cache_total["result=miss"]"#,
                r#"wise_oauth_refresh_total["outcome=fenced"]"#,
                "wise_oauth_relink_required_total[]",
                r#"wise_oauth_link_total["outcome=busy"]"#,
                "wise_oauth_refresh_in_flight[]",
            ]
        );
    }
}
