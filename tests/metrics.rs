//! The figures of the `metrics` feature, read through a small test recorder after real
//! flows over loopback against the emulator: links (one completed, one refused), cache hits
//! and misses, a refresh, a refresh Wise rejects (`invalid_grant`), a refresh that keeps
//! failing (503), a second instance waiting for the first one's lease, and the latency of
//! every call to Wise. Also: no label carries a user id or a token.
//!
//! The recorder is global to this test binary, so the whole scenario is one test.

#[path = "../examples/demo/mod.rs"]
mod demo;
mod store_support;
#[allow(unused_macros, unused_imports)]
mod suite;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use store_support::{config, start_emulator, user, PAST_EXPIRY};
use wise_oauth::{FlowError, MemoryPendingStore, MemoryTokenStore, TokenError, WiseOAuth};
use wise_oauth_mock::{Fault, MockWiseHandle, NewUser};

// ----- a small recorder -------------------------------------------------------------------

#[derive(Debug, Default)]
struct Count(AtomicU64);

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

/// A gauge that also remembers its highest value.
#[derive(Debug, Default)]
struct Level {
    now: Mutex<(f64, f64)>,
}

impl GaugeFn for Level {
    fn increment(&self, value: f64) {
        let mut g = self.now.lock().unwrap();
        g.0 += value;
        g.1 = g.1.max(g.0);
    }
    fn decrement(&self, value: f64) {
        self.now.lock().unwrap().0 -= value;
    }
    fn set(&self, value: f64) {
        let mut g = self.now.lock().unwrap();
        g.0 = value;
        g.1 = g.1.max(value);
    }
}

#[derive(Debug, Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

#[derive(Debug, Default)]
struct Figures {
    counters: Mutex<HashMap<String, Arc<Count>>>,
    gauges: Mutex<HashMap<String, Arc<Level>>>,
    histograms: Mutex<HashMap<String, Arc<Samples>>>,
}

/// `name{k=v,...}` with the labels sorted.
fn render(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    if labels.is_empty() {
        key.name().to_owned()
    } else {
        format!("{}{{{}}}", key.name(), labels.join(","))
    }
}

#[derive(Debug, Clone, Default)]
struct TestRecorder(Arc<Figures>);

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut map = self.0.counters.lock().unwrap();
        Counter::from_arc(map.entry(render(key)).or_default().clone())
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut map = self.0.gauges.lock().unwrap();
        Gauge::from_arc(map.entry(render(key)).or_default().clone())
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut map = self.0.histograms.lock().unwrap();
        Histogram::from_arc(map.entry(render(key)).or_default().clone())
    }
}

impl TestRecorder {
    fn counter(&self, key: &str) -> u64 {
        self.0
            .counters
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |c| c.0.load(Ordering::Relaxed))
    }

    /// (current, highest)
    fn gauge(&self, key: &str) -> (f64, f64) {
        self.0
            .gauges
            .lock()
            .unwrap()
            .get(key)
            .map_or((0.0, 0.0), |g| *g.now.lock().unwrap())
    }

    fn samples(&self, key: &str) -> Vec<f64> {
        self.0
            .histograms
            .lock()
            .unwrap()
            .get(key)
            .map(|h| h.0.lock().unwrap().clone())
            .unwrap_or_default()
    }

    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.0.counters.lock().unwrap().keys().cloned().collect();
        keys.extend(self.0.gauges.lock().unwrap().keys().cloned());
        keys.extend(self.0.histograms.lock().unwrap().keys().cloned());
        keys
    }
}

const HIT: &str = "wise_oauth_token_cache_total{result=hit}";
const MISS: &str = "wise_oauth_token_cache_total{result=miss}";
const TOKEN_CALLS: &str = "wise_oauth_wise_request_duration_seconds{endpoint=token}";

// ----- the scenario -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn figures_after_real_flows() {
    let recorder = TestRecorder::default();
    metrics::set_global_recorder(recorder.clone()).expect("the only recorder");
    let r = &recorder;

    let emulator = start_emulator().await;
    let tokens = Arc::new(MemoryTokenStore::default());
    let pending = Arc::new(MemoryPendingStore::default());
    let instance = || {
        WiseOAuth::builder(config(&emulator))
            .store(tokens.clone())
            .pending_store(pending.clone())
            .clock(demo::shared::EmulatorClock(emulator.clone()))
            .build()
            .expect("wise-oauth")
    };
    let a = instance();
    let b = instance();
    let (ok, relink, flaky, herd) = (
        user("metrics-ok"),
        user("metrics-relink"),
        user("metrics-flaky"),
        user("metrics-herd"),
    );

    // Links (each to a Wise user of its own): four complete, one unknown state is refused.
    for u in [&ok, &relink, &flaky, &herd] {
        link_own(&a, &emulator, u).await;
    }
    assert_eq!(r.counter("wise_oauth_link_total{outcome=linked}"), 4);
    let refused = a
        .complete_link(&ok, &format!("code=x&state={}", "A".repeat(43)), None)
        .await;
    assert!(matches!(refused, Err(FlowError::UnknownState)));
    assert_eq!(r.counter("wise_oauth_link_total{outcome=unknown_state}"), 1);
    assert!(
        r.samples("wise_oauth_wise_request_duration_seconds{endpoint=profile}")
            .len()
            >= 4
    );
    assert_eq!(
        r.gauge("wise_oauth_code_exchanges_in_flight"),
        (0.0, 1.0),
        "one exchange at a time, none left"
    );

    // Cache: instance A linked them (hits); instance B has an empty cache (a miss).
    let (hits, misses) = (r.counter(HIT), r.counter(MISS));
    a.token(&ok).await.expect("token");
    a.token(&ok).await.expect("token");
    b.token(&ok).await.expect("token");
    assert_eq!(r.counter(HIT) - hits, 2);
    assert_eq!(r.counter(MISS) - misses, 1);

    // Expired: a refresh that succeeds.
    emulator.advance_clock(PAST_EXPIRY);
    let misses = r.counter(MISS);
    a.token(&ok).await.expect("refreshed token");
    assert_eq!(r.counter(MISS) - misses, 1);
    assert_eq!(r.counter("wise_oauth_refresh_total{outcome=success}"), 1);

    // Instance B waits for A's lease while A's refresh is held at Wise.
    emulator.inject_fault(Fault::delay(
        "token:refresh_token",
        Duration::from_millis(800),
    ));
    let refreshes = emulator.stats().token_requests("refresh_token");
    let a_herd = {
        let (a, herd) = (a.clone(), herd.clone());
        tokio::spawn(async move { a.token(&herd).await.map(|t| t.access_token().clone()) })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while emulator.stats().token_requests("refresh_token") == refreshes {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A's refresh reached Wise"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let from_b = b.token(&herd).await.expect("B gets A's token");
    let from_a = a_herd.await.expect("A").expect("A's token");
    assert_eq!(
        from_a.expose_secret(),
        from_b.access_token().expose_secret()
    );
    assert!(r.counter("wise_oauth_lease_waits_total") >= 1);
    assert_eq!(r.counter("wise_oauth_refresh_total{outcome=success}"), 2);
    assert_eq!(
        emulator.stats().token_requests("refresh_token"),
        refreshes + 1
    );

    // Wise rejects the refresh token: re-link required.
    emulator.inject_fault(Fault::status(
        "token:refresh_token",
        400,
        r#"{"error":"invalid_grant","error_description":"revoked"}"#,
    ));
    assert!(matches!(
        a.token(&relink).await,
        Err(TokenError::RelinkRequired)
    ));
    assert_eq!(
        r.counter("wise_oauth_refresh_total{outcome=relink_required}"),
        1
    );
    assert_eq!(r.counter("wise_oauth_relink_required_total"), 1);

    // Wise keeps answering 503: a transient failure, the link untouched.
    emulator.inject_fault(Fault::status("token:refresh_token", 503, "").times(20));
    assert!(matches!(
        a.token(&flaky).await,
        Err(TokenError::Unavailable { .. })
    ));
    emulator.clear_faults();
    assert_eq!(r.counter("wise_oauth_refresh_total{outcome=transient}"), 1);
    assert_eq!(r.counter("wise_oauth_relink_required_total"), 1);

    // Every HTTP attempt to the token endpoint was timed, none twice.
    let timed = r.samples(TOKEN_CALLS);
    assert_eq!(timed.len() as u64, emulator.stats().total_token_requests());
    assert!(timed.iter().all(|s| s.is_finite() && *s >= 0.0));
    assert!(
        timed.iter().any(|s| *s >= 0.7),
        "the delayed refresh shows its 800 ms"
    );

    let (now, peak) = r.gauge("wise_oauth_refresh_in_flight");
    assert_eq!(now, 0.0, "no refresh left running");
    assert!(peak >= 1.0);
    assert_eq!(r.gauge("wise_oauth_unpersisted_sets").0, 0.0);

    // Fixed label sets: no user id, no token, no path in any key.
    let (access, refresh) = emulator_tokens(&emulator, &ok);
    for key in r.keys() {
        assert!(key.starts_with("wise_oauth_"), "{key}");
        assert!(!key.contains("metrics-"), "a user id in {key}");
        assert!(!key.contains(&access) && !key.contains(&refresh), "{key}");
        assert!(!key.contains('/') && !key.contains('@'), "{key}");
    }
}

fn email_of(user: &wise_oauth::UserId) -> String {
    format!("{}@example.com", user.as_str())
}

/// Links `user` to a Wise user of its own (created at the emulator) through the whole flow.
async fn link_own(wise: &WiseOAuth, emulator: &MockWiseHandle, user: &wise_oauth::UserId) {
    let email = email_of(user);
    emulator
        .create_user(NewUser::new(&email, "password1"))
        .expect("emulator user");
    store_support::link_as(wise, emulator, user, &email).await;
}

/// The tokens the emulator holds for `user`'s Wise user: (access, refresh).
fn emulator_tokens(emulator: &MockWiseHandle, user: &wise_oauth::UserId) -> (String, String) {
    let issued = emulator.user_tokens(&email_of(user));
    let access = issued
        .iter()
        .find_map(|t| t.access_token.clone())
        .expect("an access token");
    let refresh = issued
        .iter()
        .find_map(|t| t.refresh_token.clone())
        .expect("a refresh token");
    (access, refresh)
}
