//! A seeded, randomized fault schedule for the refresh protocol.
//!
//! Per seed: three `WiseOAuth` instances in one process over one store (memory, and
//! PostgreSQL when `DATABASE_URL` is set; with injected slow and failing loads and saves,
//! lost save replies, and leases the store forgets while their holder works), the emulator over loopback injecting random
//! delays longer than the client timeout, dropped connections, lost responses, late
//! completions of abandoned calls, 5xx, 429, gateway 403s and error objects in a 200, and
//! now and then a fourth instance whose runtime is killed in the middle of its refresh.
//! Each round expires every link and lets all instances ask for tokens at once; after
//! quiescence an invariant checker asserts:
//! - every link is still stored, active (no needless re-link), and its stored refresh and
//!   access tokens are valid at the emulator (nothing lost);
//! - every access token handed out in the round is still valid at the emulator (none was
//!   killed by a refresh of our own making), unless the store lost a lease in that round:
//!   two holders may then both refresh, by design, and a handler that holds the token the
//!   other refresh killed must get a live one from `token_after_unauthorized` (the 401
//!   path);
//! - Wise issued at most one new token set per link per round, plus two for each fault that
//!   made an outcome ambiguous (a lost response, a late completion, a killed holder): the
//!   call Wise completed unseen, and the refresh that follows once it must have ended. A
//!   client timeout is such a fault even when no fault caused it (a slow machine), so the
//!   checker counts the timeouts the library logged. A lost lease counts as two such
//!   faults.
//!
//! Real HTTP and real time (the emulator and the manager cannot share a paused clock), made
//! repeatable where it matters: the fault schedule, the store's faults and the kill points
//! all come from the seed. `SIM_SEEDS=N` runs N seeds (default 8 on memory, 4 on
//! PostgreSQL), `SIM_SEED=S` replays one; a failing seed prints itself. `scripts/soak.sh`
//! runs thousands.

// The core's test helpers (emulator, flow, stored tokens), shared with its own tests.
#[path = "../wise-oauth-core/tests/manager_support/mod.rs"]
mod manager_support;
mod pg_schema;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use manager_support::*;
use pg_schema::{database_url, TestSchema};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wise_oauth_core::{
    async_trait, LeaseHolder, LinkKey, LinkRecord, LinkStatus, MemoryTokenStore, StoreError,
    TokenStore, UserId, Version, Versioned, WiseOAuth,
};
use wise_oauth_mock::{Fault, MockWiseHandle};

const INSTANCES: usize = 3;
const LINKS: usize = 3;
const ROUNDS: usize = 3;
const CALLS_PER_LINK: usize = 2;
const LEASE_TTL: Duration = Duration::from_secs(4);
const REFRESH_TIMEOUT: Duration = Duration::from_millis(800);
const LATE_BOUND: Duration = Duration::from_millis(2000);

/// Refresh calls the library gave up on after its timeout, seen in its logs: each one may
/// have been completed by Wise unseen (also when the machine, not a fault, was slow).
static TIMEOUTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

struct TimeoutCounter;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TimeoutCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Visit(bool);
        impl tracing::field::Visit for Visit {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "error" && format!("{value:?}").contains("timed out") {
                    self.0 = true;
                }
            }
        }
        let mut visit = Visit(false);
        event.record(&mut visit);
        if visit.0 {
            TIMEOUTS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn count_timeouts() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::Layer as _;
    // `SIM_LOG=info` (an env-filter) also prints the library's logs, for a replay.
    let log = std::env::var("SIM_LOG").ok().map(|filter| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(tracing_subscriber::EnvFilter::new(filter))
    });
    let subscriber = tracing_subscriber::registry()
        .with(TimeoutCounter)
        .with(log);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// A store that, while switched on, fails or slows its calls at random (seeded), and
/// forgets leases while their holders work.
#[derive(Debug, Clone)]
struct ChaosStore {
    inner: Arc<dyn TokenStore>,
    on: Arc<AtomicBool>,
    rng: Arc<Mutex<StdRng>>,
    /// The holder of each link's lease as granted through this store.
    holders: Arc<Mutex<HashMap<LinkKey, LeaseHolder>>>,
    /// Leases forgotten so far.
    lost: Arc<AtomicU64>,
}

enum Chaos {
    None,
    Fail,
    Slow(Duration),
    /// Apply the write, then report a failure (the reply was lost).
    FailAfter,
    /// Forget the link's lease (a failover that loses it), then answer normally.
    LoseLease,
}

impl ChaosStore {
    fn roll(&self) -> Chaos {
        if !self.on.load(Ordering::SeqCst) {
            return Chaos::None;
        }
        let mut rng = self.rng.lock().unwrap();
        match rng.gen_range(0..200) {
            0..=11 => Chaos::Fail,
            12..=17 => Chaos::FailAfter,
            18..=41 => Chaos::Slow(Duration::from_millis(rng.gen_range(5..150))),
            42 => Chaos::LoseLease,
            _ => Chaos::None,
        }
    }

    /// The store forgets the lease of `key`, whoever holds it.
    async fn lose_lease(&self, key: &LinkKey) {
        let holder = self.holders.lock().unwrap().remove(key);
        if let Some(holder) = holder {
            if self.inner.release_lease(key, holder).await.is_ok() {
                self.lost.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

fn down() -> StoreError {
    StoreError::Unavailable("injected store fault".into())
}

#[async_trait]
impl TokenStore for ChaosStore {
    async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
        match self.roll() {
            Chaos::Fail => Err(down()),
            Chaos::Slow(d) => {
                tokio::time::sleep(d).await;
                self.inner.load(key).await
            }
            Chaos::LoseLease => {
                self.lose_lease(key).await;
                self.inner.load(key).await
            }
            Chaos::None | Chaos::FailAfter => self.inner.load(key).await,
        }
    }

    async fn save(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        match self.roll() {
            Chaos::Fail => Err(down()),
            Chaos::FailAfter => {
                self.inner.save(key, record, expected).await?;
                Err(down())
            }
            Chaos::Slow(d) => {
                tokio::time::sleep(d).await;
                self.inner.save(key, record, expected).await
            }
            Chaos::None | Chaos::LoseLease => self.inner.save(key, record, expected).await,
        }
    }

    async fn delete(&self, key: &LinkKey) -> Result<bool, StoreError> {
        self.inner.delete(key).await
    }

    async fn acquire_lease(
        &self,
        key: &LinkKey,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        if let Chaos::Slow(d) = self.roll() {
            tokio::time::sleep(d / 4).await;
        }
        let granted = self.inner.acquire_lease(key, holder, ttl).await?;
        if granted {
            self.holders.lock().unwrap().insert(key.clone(), holder);
        }
        Ok(granted)
    }

    async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) -> Result<(), StoreError> {
        {
            let mut holders = self.holders.lock().unwrap();
            if holders.get(key) == Some(&holder) {
                holders.remove(key);
            }
        }
        self.inner.release_lease(key, holder).await
    }
}

fn instance_on(mock: &MockWiseHandle, store: &ChaosStore) -> WiseOAuth {
    WiseOAuth::builder(config(mock, &Settings::default()))
        .store(store.clone())
        .clock(MockClock(mock.clone()))
        .lease_ttl(LEASE_TTL)
        .refresh_timeout(REFRESH_TIMEOUT)
        .late_completion_bound(LATE_BOUND)
        .build()
        .unwrap()
}

/// A random fault for the refresh grant; `true` when it can make an outcome ambiguous
/// (Wise may have issued tokens whose answer we never saw).
fn random_fault(rng: &mut StdRng) -> (Fault, bool) {
    let e = "token:refresh_token";
    let slow = Duration::from_millis(rng.gen_range(900..1800));
    match rng.gen_range(0..9) {
        0 => (Fault::delay(e, slow), false),
        1 => (Fault::drop_connection(e), false),
        2 => (Fault::drop_after_processing(e), true),
        3 => (Fault::late_completion(e, slow), true),
        4 => (Fault::status(e, 500, r#"{"error":"server_error"}"#), false),
        5 => (
            Fault::status_with_type(e, 502, "<h1>Bad gateway</h1>", "text/html"),
            false,
        ),
        6 => (Fault::rate_limit(e, 1), false),
        7 => (
            Fault::status_with_type(e, 403, "<h1>Blocked</h1>", "text/html"),
            false,
        ),
        _ => (Fault::status(e, 200, r#"{"error":"invalid_grant"}"#), false),
    }
}

/// Where the links live: the store the instances share, and how to open another handle on
/// it (a pool of its own, for an instance on a runtime of its own).
enum Backend {
    Memory(MemoryTokenStore),
    Postgres(TestSchema),
}

impl Backend {
    async fn open(&self) -> Arc<dyn TokenStore> {
        match self {
            Backend::Memory(store) => Arc::new(store.clone()),
            Backend::Postgres(schema) => Arc::new(schema.store().await),
        }
    }
}

/// Starts a refresh on an instance of its own runtime (and its own store handle) and kills
/// that runtime once the emulator has the call, leaving its lease and maybe an abandoned
/// call behind.
fn killed_mid_refresh(mock: &MockWiseHandle, chaos: &ChaosStore, backend: &Backend, user: &UserId) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store = ChaosStore {
        inner: runtime.block_on(backend.open()),
        ..chaos.clone()
    };
    let wise = {
        let _enter = runtime.enter();
        instance_on(mock, &store)
    };
    let before = mock.stats().token_requests("refresh_token");
    let user = user.clone();
    runtime.spawn(async move {
        let _ = wise.token(&user).await;
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while mock.stats().token_requests("refresh_token") == before
        && std::time::Instant::now() < deadline
    {
        std::thread::yield_now();
    }
    runtime.shutdown_background();
}

async fn quiesce(mock: &MockWiseHandle, instances: &[WiseOAuth]) {
    for wise in instances {
        assert!(
            wise.shutdown(Duration::from_secs(30)).await,
            "refreshes drained"
        );
    }
    wait_for("the emulator to finish every token request", || {
        mock.stats().token_in_flight == 0
    })
    .await;
}

async fn run_seed(seed: u64, backend: Arc<Backend>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let rotate = rng.gen_bool(0.5);
    let mock = start_mock(rotate).await;
    eprintln!("  refresh-token rotation: {rotate}");
    let store = ChaosStore {
        inner: backend.open().await,
        on: Arc::new(AtomicBool::new(false)),
        rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed ^ 0x5eed))),
        holders: Arc::default(),
        lost: Arc::default(),
    };
    let instances: Vec<WiseOAuth> = (0..INSTANCES).map(|_| instance_on(&mock, &store)).collect();
    let mut users = Vec::new();
    for i in 0..LINKS {
        let email = format!("sim{i}@example.com");
        new_wise_user(&mock, &email);
        let u = user(&format!("sim-user-{i}"));
        link(&instances[i % INSTANCES], &mock, &u, &email).await;
        users.push(u);
    }
    let key = |u: &UserId| instances[0].link_key(u);

    for round in 0..ROUNDS {
        let issued_before = mock.stats().token_successes("refresh_token");
        let timeouts_before = TIMEOUTS.load(Ordering::SeqCst);
        let lost_before = store.lost.load(Ordering::SeqCst);
        let mut versions_before = Vec::new();
        for u in &users {
            versions_before.push(stored(store.inner.as_ref(), &key(u)).await.version.get());
        }
        mock.advance_clock(EXPIRED);
        let mut ambiguous = 0u64;
        for _ in 0..rng.gen_range(0..4) {
            let (fault, may_issue) = random_fault(&mut rng);
            let times = rng.gen_range(1..=2);
            if may_issue {
                ambiguous += u64::from(times);
            }
            eprintln!("  round {round}: {:?} x{times}", fault.kind);
            mock.inject_fault(fault.times(times));
        }
        if rng.gen_bool(0.3) {
            let victim = users[rng.gen_range(0..LINKS)].clone();
            eprintln!("  round {round}: an instance dies refreshing {victim}");
            let (m, st, b) = (mock.clone(), store.clone(), backend.clone());
            tokio::task::spawn_blocking(move || killed_mid_refresh(&m, &st, &b, &victim))
                .await
                .unwrap();
            // Its call may still be completed by Wise after it died.
            ambiguous += 1;
        }
        // Leases the store forgot in this round: two holders may then both refresh.
        let lost_leases = || store.lost.load(Ordering::SeqCst) - lost_before;
        // Faults that can leave Wise holding tokens we never saw, or a token of ours dead.
        let faulted =
            || ambiguous + TIMEOUTS.load(Ordering::SeqCst) - timeouts_before + 2 * lost_leases();
        store.on.store(true, Ordering::SeqCst);
        let mut calls = Vec::new();
        for (i, wise) in instances.iter().enumerate() {
            for u in &users {
                for _ in 0..CALLS_PER_LINK {
                    let (wise, u, mock) = (wise.clone(), u.clone(), mock.clone());
                    calls.push(tokio::spawn(async move {
                        let result = wise.token(&u).await;
                        // Valid at the emulator when handed out?
                        let alive = result.as_ref().ok().map(|t| {
                            (
                                mock.access_token_is_valid(t.access_token().expose_secret()),
                                t.clone(),
                            )
                        });
                        (i, u, result.err(), alive)
                    }));
                }
            }
        }
        let mut handed_out = Vec::new();
        for call in calls {
            let (i, u, err, alive) = call.await.unwrap();
            if let Some(err) = &err {
                // With rotation, a lost answer (a dropped response, a late completion, a
                // killed holder's call) can leave Wise holding the only live refresh token:
                // that re-link is forced by the fault. Anything else must be transient.
                let forced = rotate && faulted() > 0;
                assert!(
                    matches!(err, wise_oauth_core::TokenError::Unavailable { .. })
                        || (forced && matches!(err, wise_oauth_core::TokenError::RelinkRequired)),
                    "seed {seed} round {round}: instance {i} got {err:?} for {u}"
                );
            }
            if let Some((valid_then, token)) = alive {
                assert!(
                    valid_then || lost_leases() > 0,
                    "seed {seed} round {round}: instance {i} handed out a dead token for {u}"
                );
                handed_out.push((u, token));
            }
        }
        store.on.store(false, Ordering::SeqCst);
        quiesce(&mock, &instances).await;
        mock.clear_faults();

        let mut relink = Vec::new();
        for (i, u) in users.iter().enumerate() {
            let s = stored(store.inner.as_ref(), &key(u)).await;
            // Forced by the fault: Wise rotated the refresh token in an answer we never saw
            // (the link is marked, or will be on its next refresh if the store failed the
            // marking write).
            let lost = s.status == LinkStatus::NeedsRelink
                || !mock.refresh_token_is_valid(&s.refresh_token);
            if lost && rotate && faulted() > 0 {
                eprintln!("  round {round}: {u} must re-link (rotated token lost to a fault)");
                relink.push(i);
                continue;
            }
            assert_eq!(
                s.status,
                LinkStatus::Active,
                "seed {seed} round {round}: needless re-link of {u}"
            );
            assert!(
                mock.refresh_token_is_valid(&s.refresh_token),
                "seed {seed} round {round}: stored refresh token of {u} is dead"
            );
        }
        let lost = lost_leases();
        if lost > 0 {
            eprintln!("  round {round}: the store lost {lost} lease(s)");
        }
        for (u, token) in &handed_out {
            if mock.access_token_is_valid(token.access_token().expose_secret()) {
                continue;
            }
            assert!(
                lost > 0,
                "seed {seed} round {round}: a token handed out for {u} was killed by a later refresh"
            );
            // A second holder's refresh killed it: Wise answers the handler 401, and the 401
            // path gives it a live token.
            let live = after_unauthorized(&instances[0], &mock, u, token).await;
            assert!(
                live,
                "seed {seed} round {round}: no live token for {u} after a 401"
            );
            eprintln!(
                "  round {round}: a token of {u} killed by a second holder; the 401 path recovered"
            );
        }
        let issued = mock.stats().token_successes("refresh_token") - issued_before;
        let timeouts = TIMEOUTS.load(Ordering::SeqCst) - timeouts_before;
        let mut versions = Vec::new();
        for (i, u) in users.iter().enumerate() {
            versions.push((
                versions_before[i],
                stored(store.inner.as_ref(), &key(u)).await.version.get(),
            ));
        }
        assert!(
            issued <= LINKS as u64 + 2 * (ambiguous + timeouts + 2 * lost) + LINKS as u64 * u64::from(lost > 0),
            "seed {seed} round {round}: {issued} token sets issued for {LINKS} links \
             ({ambiguous} ambiguous faults, {timeouts} timeouts, {lost} lost leases); outcomes {:?}; versions {versions:?}",
            mock.stats()
                .grants
                .get("refresh_token")
                .map(|g| g.outcomes.clone())
        );
        for i in relink {
            link(
                &instances[0],
                &mock,
                &users[i],
                &format!("sim{i}@example.com"),
            )
            .await;
        }
        // Whatever failed in this round, the next request after it gets a live token.
        for u in &users {
            let mut token = None;
            let mut errors = Vec::new();
            for _ in 0..3 {
                match instances[0].token(u).await {
                    Ok(t) => {
                        token = Some(t);
                        break;
                    }
                    // A failure backoff (at most a few seconds here) may still run.
                    Err(e) => {
                        let wait = e.retry_after().unwrap_or(Duration::from_secs(1));
                        mock.advance_clock(wait + Duration::from_secs(1));
                        errors.push(e);
                    }
                }
            }
            let token =
                token.unwrap_or_else(|| panic!("seed {seed} round {round}: {u} stuck: {errors:?}"));
            let live = mock.access_token_is_valid(token.access_token().expose_secret())
                || (lost > 0 && after_unauthorized(&instances[0], &mock, u, &token).await);
            assert!(
                live,
                "seed {seed} round {round}: dead token for {u} after the round"
            );
        }
        quiesce(&mock, &instances).await;
    }
    mock.shutdown().await;
}

/// What a handler does when Wise answers 401 to `token`: asks for a newer one (a few
/// times, past any backoff); whether it got a live one.
async fn after_unauthorized(
    wise: &WiseOAuth,
    mock: &MockWiseHandle,
    u: &UserId,
    token: &wise_oauth_core::ValidToken,
) -> bool {
    for _ in 0..3 {
        match wise.token_after_unauthorized(u, token.access_token()).await {
            Ok(newer) => return mock.access_token_is_valid(newer.access_token().expose_secret()),
            Err(e) => {
                let wait = e.retry_after().unwrap_or(Duration::from_secs(1));
                mock.advance_clock(wait + Duration::from_secs(1));
            }
        }
    }
    false
}

/// The seeds to run: `SIM_SEED` alone, or `SIM_SEEDS` (default `default`) from `SIM_BASE`.
fn seeds(default: u64) -> Vec<u64> {
    if let Ok(one) = std::env::var("SIM_SEED") {
        return vec![one.parse().expect("SIM_SEED is a number")];
    }
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (n, base) = (var("SIM_SEEDS", default), var("SIM_BASE", 0));
    (base..base + n).collect()
}

/// Runs the seeds on memory, then on PostgreSQL (skipped without a database URL); one test,
/// so that the timeouts counted from the logs are this run's alone. `SIM_STORE=memory` or
/// `postgres` runs one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_fault_schedules_keep_every_invariant() {
    count_timeouts();
    let only = std::env::var("SIM_STORE").unwrap_or_default();
    if only != "postgres" {
        for seed in seeds(8) {
            eprintln!(
                "simulation seed {seed} on memory (replay: SIM_STORE=memory SIM_SEED={seed})"
            );
            run_seed(seed, Arc::new(Backend::Memory(MemoryTokenStore::default()))).await;
        }
    }
    if only == "memory" {
        return;
    }
    let Some(url) = database_url("seeded_fault_schedules_keep_every_invariant (PostgreSQL)") else {
        return;
    };
    for seed in seeds(4) {
        eprintln!(
            "simulation seed {seed} on PostgreSQL (replay: SIM_STORE=postgres SIM_SEED={seed})"
        );
        run_seed(
            seed,
            Arc::new(Backend::Postgres(TestSchema::new(url.clone()))),
        )
        .await;
    }
}
