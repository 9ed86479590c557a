//! The measurements `scripts/bench.sh` runs, one per process so each figure is clean:
//!
//! ```text
//! cargo bench --bench figures -- memory [--links 1000000]
//! cargo bench --bench figures -- herd   [--store memory|postgres] [--instances 1|3] [--requests 1000]
//! cargo bench --bench figures -- flow   [--flows 2000] [--concurrency 8]
//! cargo bench --bench figures -- serve  [--adapter axum|actix] [--store memory|postgres]
//! cargo bench --bench figures -- waves  [--store memory|postgres] [--links 10000] [--instances 3]
//!                                       [--bound 32] [--delay-ms 1000] [--faults 0|5]
//! cargo bench --bench figures -- cache  [--keys 100000] [--capacity 10000] [--requests 2000000]
//! ```
//!
//! Each prints `FIGURE <name> <value>` lines for the script (and a readable line on
//! stderr). `serve` prints `PORT <port>` and serves `/with` (a handler taking `WiseToken`)
//! and `/without` (the same handler without it) until killed, for `wrk`.
//! The PostgreSQL store needs `--features postgres` and `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); it works in a schema of its own, dropped at
//! the end.

#[path = "support/mod.rs"]
mod support;

// The link cache's policy and its yardstick, as the core compiles them (both are std only).
#[path = "../wise-oauth-core/src/manager/cache/s3fifo.rs"]
#[allow(dead_code, unused_imports)]
mod s3fifo;
#[path = "../wise-oauth-core/src/manager/cache/sim.rs"]
mod sim;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;
use wise_oauth::{LinkKey, MemoryTokenStore, TokenStore, UserId, WiseOAuth};
use wise_oauth_mock::{Fault, MockWiseHandle};

struct Args(Vec<String>);

impl Args {
    fn command(&self) -> &str {
        self.0
            .iter()
            .find(|a| !a.starts_with("--"))
            .map_or("", String::as_str)
    }

    fn get(&self, name: &str, default: &str) -> String {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    fn num(&self, name: &str, default: usize) -> usize {
        self.get(name, &default.to_string())
            .parse()
            .expect("a number")
    }
}

fn figure(name: &str, value: impl std::fmt::Display) {
    println!("FIGURE {name} {value}");
    std::io::stdout().flush().unwrap();
}

fn main() {
    // `cargo bench` appends `--bench`; it carries no value here.
    let args = Args(
        std::env::args()
            .skip(1)
            .filter(|a| a != "--bench")
            .collect(),
    );
    match args.command() {
        "memory" => memory(&args),
        "herd" => runtime().block_on(herd(&args)),
        "flow" => runtime().block_on(flow(&args)),
        "serve" => serve(&args),
        "waves" => runtime().block_on(waves(&args)),
        "cache" => cache(&args),
        // `cargo bench` without arguments runs every bench target: a quick memory figure
        // keeps it meaningful without the script.
        "" => {
            eprintln!(
                "figures: no command; running `memory --links 100000` (see scripts/bench.sh)"
            );
            memory(&Args(vec![
                "memory".into(),
                "--links".into(),
                "100000".into(),
            ]));
        }
        other => panic!("unknown command {other:?}: memory | herd | flow | serve | waves | cache"),
    }
}

// ----- link cache ---------------------------------------------------------------------

/// Hit ratio of the manager's link cache (S3-FIFO) and of an exact LRU of the same capacity
/// on seeded Zipf traces (s = 0.8, 1.1), a miss inserting the key as the manager does. The
/// user ids are UUIDs; the cache is the core's own policy type keyed by `UserId`.
fn cache(args: &Args) {
    let keys = args.num("--keys", 100_000);
    let capacity = args.num("--capacity", 10_000);
    let requests = args.num("--requests", 2_000_000);
    let ids: Vec<UserId> = (0..keys)
        .map(|_| UserId::new(uuid::Uuid::new_v4().to_string()).unwrap())
        .collect();
    for (name, s) in [("0_8", 0.8), ("1_1", 1.1)] {
        let trace = sim::zipf_trace(keys, s, requests, 42);
        let lru = sim::lru_hit_ratio(&trace, capacity);
        let cache = s3fifo::S3Fifo::new(capacity);
        let mut hits = 0;
        for &i in &trace {
            if cache.get(&ids[i]).is_some() {
                hits += 1;
            } else {
                cache.insert_unless(ids[i].clone(), i, |_| false);
            }
        }
        let ours = sim::ratio(hits, trace.len());
        eprintln!(
            "cache: Zipf s={s}, {keys} keys, capacity {capacity}, {requests} requests: \
             S3-FIFO {ours:.3}, LRU {lru:.3}"
        );
        figure(&format!("cache.s{name}.s3fifo"), format!("{ours:.3}"));
        figure(&format!("cache.s{name}.lru"), format!("{lru:.3}"));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ----- memory -------------------------------------------------------------------------

/// Resident set size of this process, in bytes (`/proc/self/statm`, second field).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // Linux page size on every machine this runs on (x86-64 and aarch64 with 4 KiB pages).
    pages * 4096
}

/// Resident memory growth per link with `--links` links in a `MemoryTokenStore`. The record
/// is the library's own: a user linked through the flow against the emulator (UUID tokens),
/// sealed as the library seals it; every link gets its own copy of it and a UUID user id.
fn memory(args: &Args) {
    let links = args.num("--links", 1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (key_of, record) = rt.block_on(async {
        let mock = support::start_mock().await;
        support::ensure_wise_user(&mock, "memory@example.com");
        let store = MemoryTokenStore::new();
        let wise = support::wise(&mock, Arc::new(store.clone()));
        let user = support::user("memory-sample");
        let http = support::no_redirect_client();
        support::link(&wise, &mock, &http, &user, "memory@example.com").await;
        let record = store
            .load(&wise.link_key(&user))
            .await
            .unwrap()
            .expect("a stored link")
            .value;
        mock.shutdown().await;
        (wise, record)
    });
    let sealed_len = record.sealed_tokens.as_bytes().len();
    // Ids made before the first reading, so only the store's share is measured.
    let users: Vec<String> = (0..links)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let store = MemoryTokenStore::new();
    let before = rss_bytes();
    rt.block_on(async {
        for id in &users {
            let key: LinkKey = key_of.link_key(&UserId::new(id).unwrap());
            let mut value = record.clone();
            value.sealed_tokens = record.sealed_tokens.clone();
            store.save(&key, &value, None).await.unwrap();
        }
    });
    let after = rss_bytes();
    assert_eq!(store.len(), links);
    let per_link = (after.saturating_sub(before)) as f64 / links as f64;
    eprintln!(
        "memory: {links} links, sealed record {sealed_len} B, user id 36 B, RSS {} -> {} MiB, {per_link:.0} B/link",
        before >> 20,
        after >> 20
    );
    figure("memory.links", links);
    figure("memory.sealed_bytes", sealed_len);
    figure("memory.bytes_per_link", format!("{per_link:.0}"));
    drop(users);
}

// ----- stores -------------------------------------------------------------------------

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The stores of a run: `count` handles (one pool each, like separate app instances) on
/// the same data, and how to clean up.
struct Stores {
    stores: Vec<Arc<dyn TokenStore>>,
    #[cfg(feature = "postgres")]
    schema: Option<(String, sqlx::PgPool)>,
    /// The key prefix of a Redis run and a connection to delete its keys with.
    #[cfg(feature = "redis")]
    redis: Option<(String, wise_oauth::redis::redis::aio::ConnectionManager)>,
}

impl Stores {
    async fn open(kind: &str, count: usize) -> Self {
        match kind {
            "memory" => {
                let store = MemoryTokenStore::new();
                Self {
                    stores: (0..count)
                        .map(|_| Arc::new(store.clone()) as Arc<dyn TokenStore>)
                        .collect(),
                    #[cfg(feature = "postgres")]
                    schema: None,
                    #[cfg(feature = "redis")]
                    redis: None,
                }
            }
            #[cfg(feature = "redis")]
            "redis" => {
                use wise_oauth::redis::redis;
                let url = std::env::var("REDIS_URL")
                    .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
                let prefix = format!("wise-bench-{}:", std::process::id());
                let client = redis::Client::open(url.as_str()).expect("a Redis URL");
                let mut stores: Vec<Arc<dyn TokenStore>> = Vec::new();
                let mut admin = None;
                // One connection each, like separate app instances.
                for _ in 0..count {
                    let conn = redis::aio::ConnectionManager::new(client.clone())
                        .await
                        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
                    let store = wise_oauth::redis::RedisTokenStore::builder(conn.clone())
                        .key_prefix(&prefix)
                        .build()
                        .expect("build the Redis store");
                    admin.get_or_insert(conn);
                    stores.push(Arc::new(store));
                }
                Self {
                    stores,
                    #[cfg(feature = "postgres")]
                    schema: None,
                    redis: admin.map(|conn| (prefix, conn)),
                }
            }
            #[cfg(feature = "postgres")]
            "postgres" => {
                let url = database_url();
                let schema = format!("wise_bench_{}", std::process::id());
                let mut stores: Vec<Arc<dyn TokenStore>> = Vec::new();
                let mut admin = None;
                for _ in 0..count {
                    let pool = sqlx::postgres::PgPoolOptions::new()
                        .max_connections(10)
                        .connect(&url)
                        .await
                        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
                    let store = wise_oauth_sqlx::PostgresTokenStore::builder(pool.clone())
                        .schema(&schema)
                        .build()
                        .await
                        .expect("build the PostgreSQL store");
                    admin.get_or_insert(pool);
                    stores.push(Arc::new(store));
                }
                Self {
                    stores,
                    schema: admin.map(|pool| (schema, pool)),
                    #[cfg(feature = "redis")]
                    redis: None,
                }
            }
            other => panic!(
                "store {other:?} is not available (memory, postgres with --features postgres, \
                 redis with --features redis)"
            ),
        }
    }

    async fn close(self) {
        #[cfg(feature = "postgres")]
        if let Some((schema, pool)) = self.schema {
            sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&pool)
                .await
                .expect("drop the bench schema");
        }
        #[cfg(feature = "redis")]
        if let Some((prefix, mut conn)) = self.redis {
            use wise_oauth::redis::redis::AsyncCommands as _;
            let keys: Vec<String> = conn
                .keys(format!("{prefix}*"))
                .await
                .expect("list the bench keys");
            for chunk in keys.chunks(500) {
                let _: () = conn.del(chunk).await.expect("delete the bench keys");
            }
        }
    }
}

// ----- refresh herd -------------------------------------------------------------------

/// One request through the axum app, in process; its status.
async fn get(app: &axum::Router, path: &str) -> u16 {
    let req = Request::get(path).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status().as_u16();
    let _ = axum::body::to_bytes(response.into_body(), 1024).await;
    status
}

/// `--requests` concurrent requests (through the axum app with `WiseToken`) for one link
/// whose token has expired, spread over `--instances` app instances on one store. The
/// emulator answers refreshes after `REFRESH_DELAY`; the single refresh of another link
/// measured just before is the emulator's refresh latency.
async fn herd(args: &Args) {
    const REFRESH_DELAY: Duration = Duration::from_millis(100);
    let store_kind = args.get("--store", "memory");
    let instances = args.num("--instances", 1);
    let requests = args.num("--requests", 1000);
    let mock = support::start_mock().await;
    support::ensure_wise_user(&mock, "herd@example.com");
    support::ensure_wise_user(&mock, "solo@example.com");
    let stores = Stores::open(&store_kind, instances).await;
    let wises: Vec<WiseOAuth> = stores
        .stores
        .iter()
        .map(|s| support::wise(&mock, s.clone()))
        .collect();
    let http = support::no_redirect_client();
    let (herd_user, solo_user) = (support::user("herd-user"), support::user("solo-user"));
    support::link(&wises[0], &mock, &http, &herd_user, "herd@example.com").await;
    support::link(&wises[0], &mock, &http, &solo_user, "solo@example.com").await;
    let apps: Vec<axum::Router> = wises
        .iter()
        .map(|w| support::axum_app::app(w.clone(), herd_user.clone()))
        .collect();
    // Every instance has the fresh token cached, as in a running deployment.
    for app in &apps {
        assert_eq!(get(app, "/with").await, 200);
    }
    let solo_app = support::axum_app::app(wises[0].clone(), solo_user.clone());
    assert_eq!(get(&solo_app, "/with").await, 200);

    // Past the access token's 12 h lifetime; refreshes take REFRESH_DELAY at the emulator.
    mock.advance_clock(Duration::from_secs(13 * 3600));
    mock.inject_fault(Fault::delay("token:refresh_token", REFRESH_DELAY).times(u32::MAX));

    let refreshes = || mock.stats().token_requests("refresh_token");
    let before = refreshes();
    let started = Instant::now();
    assert_eq!(get(&solo_app, "/with").await, 200);
    let solo = started.elapsed();
    assert_eq!(refreshes() - before, 1, "the solo refresh");

    let before = refreshes();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(requests);
    for i in 0..requests {
        let app = apps[i % apps.len()].clone();
        tasks.push(tokio::spawn(async move {
            let status = get(&app, "/with").await;
            (status, started.elapsed())
        }));
    }
    let mut last = Duration::ZERO;
    let mut ok = 0;
    for task in tasks {
        let (status, at) = task.await.unwrap();
        ok += usize::from(status == 200);
        last = last.max(at);
    }
    let herd_refreshes = refreshes() - before;
    eprintln!(
        "herd ({store_kind}, {instances} instance(s)): {requests} requests, {ok} ok, {herd_refreshes} refresh(es) at the emulator, last response after {:.1} ms; one refresh alone: {:.1} ms",
        last.as_secs_f64() * 1e3,
        solo.as_secs_f64() * 1e3
    );
    figure("herd.requests", requests);
    figure("herd.ok", ok);
    figure("herd.refreshes", herd_refreshes);
    figure("herd.solo_ms", format!("{:.1}", solo.as_secs_f64() * 1e3));
    figure("herd.last_ms", format!("{:.1}", last.as_secs_f64() * 1e3));
    drop(apps);
    drop(wises);
    stores.close().await;
    mock.shutdown().await;
}

// ----- token waves --------------------------------------------------------------------

/// The refresh faults of a wave with `percent` random faults: as many kinds as there are
/// percent points, one point each, every one after Wise's usual delay. The one that can make
/// an outcome ambiguous (Wise issues tokens whose answer is lost) is listed first.
fn wave_faults(percent: u8, delay: Duration) -> Vec<Fault> {
    let e = "token:refresh_token";
    let kinds = [
        Fault::drop_after_processing(e),
        Fault::status(e, 503, r#"{"error":"temporarily_unavailable"}"#),
        Fault::status_with_type(e, 502, "<h1>Bad gateway</h1>", "text/html"),
        Fault::drop_connection(e),
        Fault::rate_limit(e, 1),
        Fault::status_with_type(e, 403, "<h1>Blocked</h1>", "text/html"),
    ];
    kinds
        .into_iter()
        .cycle()
        .take(usize::from(percent))
        .map(|f| f.with_delay(delay).percent(1).times(u32::MAX))
        .collect()
}

/// What one request of a wave saw: how long until it held a live token, or that it gave up.
enum Asked {
    Served(Duration),
    Failed(String),
}

/// `--links` links whose tokens all expire at once, each asked for on every one of
/// `--instances` instances on one store, as a client would: a request answered "try again"
/// retries after the `Retry-After` it was given. Wise answers each refresh after
/// `--delay-ms`; `--faults` percent of refreshes fail at random (a lost answer, 503, an HTML
/// 502 or 403, a dropped connection, a 429). Each instance makes at most `--bound` refresh
/// calls at once. Reports the refreshes Wise saw and issued, the duration, the wait of the
/// requests (p50, p99) and the most refresh calls in flight at once at the emulator.
async fn waves(args: &Args) {
    let store_kind = args.get("--store", "postgres");
    let links = args.num("--links", 10_000);
    let instances = args.num("--instances", 3);
    let bound = args.num("--bound", 32);
    let delay = Duration::from_millis(args.num("--delay-ms", 1000) as u64);
    let faults = u8::try_from(args.num("--faults", 0)).expect("a percentage");
    let mock = support::start_mock().await;
    let stores = Stores::open(&store_kind, instances).await;
    let wises: Vec<WiseOAuth> = stores
        .stores
        .iter()
        .map(|s| {
            WiseOAuth::builder(support::config(&mock))
                .store(s.clone())
                .clock(support::MockClock(mock.clone()))
                .max_concurrent_refreshes(bound)
                .build()
                .unwrap()
        })
        .collect();
    let http = support::no_redirect_client();
    let started = Instant::now();
    let mut users = Vec::with_capacity(links);
    for i in 0..links {
        let email = format!("wave{i}@example.com");
        support::ensure_wise_user(&mock, &email);
        let user = support::user(&format!("wave-user-{i}"));
        support::link(&wises[i % instances], &mock, &http, &user, &email).await;
        users.push(user);
    }
    eprintln!(
        "waves: {links} links made through the flow in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    mock.advance_clock(Duration::from_secs(13 * 3600));
    for fault in wave_faults(faults, delay) {
        mock.inject_fault(fault);
    }
    mock.inject_fault(Fault::delay("token:refresh_token", delay).times(u32::MAX));
    let before = mock.stats();
    mock.reset_token_in_flight_peak();
    let give_up = Duration::from_secs(600);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(links * instances);
    for user in &users {
        for wise in &wises {
            let (wise, user, mock) = (wise.clone(), user.clone(), mock.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    match wise.token(&user).await {
                        Ok(token)
                            if mock.access_token_is_valid(token.access_token().expose_secret()) =>
                        {
                            return Asked::Served(started.elapsed());
                        }
                        Ok(_) => return Asked::Failed("a dead token".into()),
                        Err(e) if e.retry_after().is_some() && started.elapsed() < give_up => {
                            tokio::time::sleep(e.retry_after().unwrap_or_default()).await;
                        }
                        Err(e) => return Asked::Failed(e.to_string()),
                    }
                }
            }));
        }
    }
    let mut waits = Vec::with_capacity(tasks.len());
    let mut failures = std::collections::BTreeMap::<String, usize>::new();
    for task in tasks {
        match task.await.unwrap() {
            Asked::Served(wait) => waits.push(wait),
            Asked::Failed(why) => *failures.entry(why).or_default() += 1,
        }
    }
    let duration = started.elapsed();
    for wise in &wises {
        assert!(
            wise.shutdown(Duration::from_secs(60)).await,
            "refreshes drained"
        );
    }
    let after = mock.stats();
    let grant = "refresh_token";
    let requests = after.token_requests(grant) - before.token_requests(grant);
    let issued = after.token_successes(grant) - before.token_successes(grant);
    let lost =
        after.token_outcomes(grant, "ok:dropped") - before.token_outcomes(grant, "ok:dropped");
    let rate_limited = after.token_outcomes(grant, "fault:rate_limit")
        - before.token_outcomes(grant, "fault:rate_limit");
    waits.sort();
    let pct = |p: f64| {
        waits
            .get(((waits.len() as f64 * p) as usize).min(waits.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    eprintln!(
        "waves ({store_kind}, {instances} instances, bound {bound}, {faults} % faults): \
         {} of {} requests served, failures {failures:?}; {requests} refresh calls, {issued} \
         token sets issued for {links} links ({lost} answers lost, {rate_limited} 429s); \
         {:.1} s; wait p50 {:.0} ms, p99 {:.0} ms; at most {} calls in flight at Wise",
        waits.len(),
        links * instances,
        duration.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        after.token_in_flight_peak,
    );
    eprintln!(
        "waves: wait deciles (ms): {:?}",
        (1..10)
            .map(|d| pct(f64::from(d) / 10.0).round())
            .collect::<Vec<_>>()
    );
    figure("waves.links", links);
    figure("waves.requests", links * instances);
    figure("waves.served", waits.len());
    figure("waves.refresh_calls", requests);
    figure("waves.issued", issued);
    figure("waves.lost_answers", lost);
    figure("waves.seconds", format!("{:.1}", duration.as_secs_f64()));
    figure("waves.p50_ms", format!("{:.0}", pct(0.5)));
    figure("waves.p99_ms", format!("{:.0}", pct(0.99)));
    figure("waves.peak", after.token_in_flight_peak);
    drop(wises);
    stores.close().await;
    mock.shutdown().await;
}

// ----- link flow ----------------------------------------------------------------------

#[derive(Default, Clone, Copy)]
struct FlowTimes {
    start: Duration,
    consent: Duration,
    complete: Duration,
}

/// One whole link flow for `user`: start (library), consent at the emulator (the
/// browser's hop, auto-approve), callback (library: state, exchange, profile check,
/// persist).
async fn one_flow(wise: &WiseOAuth, http: &reqwest::Client, user: &UserId) -> FlowTimes {
    let t0 = Instant::now();
    let start = wise
        .start_link(user, &Default::default(), None)
        .await
        .unwrap();
    let cookie = start
        .set_cookie()
        .split(';')
        .next()
        .and_then(|c| c.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap();
    let t1 = Instant::now();
    let response = http
        .get(start.authorize_url().clone())
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let query = location.query().unwrap().to_owned();
    let t2 = Instant::now();
    wise.complete_link(user, &query, Some(&cookie))
        .await
        .unwrap();
    let t3 = Instant::now();
    FlowTimes {
        start: t1 - t0,
        consent: t2 - t1,
        complete: t3 - t2,
    }
}

/// Median of the round trip of the calls the callback makes to Wise, made with a bare
/// client: a token-endpoint POST and a profile list GET.
async fn emulator_round_trips(mock: &MockWiseHandle, bearer: &str) -> Duration {
    let client = reqwest::Client::new();
    let base = mock.base_url();
    let mut samples = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let r = client
            .post(format!("{base}/oauth/token"))
            .basic_auth(support::CLIENT_ID, Some(support::CLIENT_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let _ = r.bytes().await;
        let r = client
            .get(format!("{base}/v2/profiles"))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let _ = r.bytes().await;
        samples.push(t.elapsed());
    }
    samples.sort();
    samples[samples.len() / 2]
}

async fn flow(args: &Args) {
    let flows = args.num("--flows", 2000);
    let concurrency = args.num("--concurrency", 8).max(1);
    let mock = support::start_mock().await;
    support::ensure_wise_user(&mock, "flow@example.com");
    mock.set_auto_approve(Some("flow@example.com"));
    let store = MemoryTokenStore::new();
    let wise = support::wise(&mock, Arc::new(store.clone()));
    let http = support::no_redirect_client();
    // Warm-up (connections, lazy statics), and what one flow asks of the emulator.
    let stats_before = mock.stats();
    one_flow(&wise, &http, &support::user("flow-warmup")).await;
    let stats_after = mock.stats();
    let calls: Vec<String> = stats_after
        .endpoints
        .iter()
        .filter(|(k, v)| stats_before.endpoint_requests(k) != **v)
        .map(|(k, v)| format!("{k} x{}", v - stats_before.endpoint_requests(k)))
        .collect();
    eprintln!("flow: one flow asks the emulator for: {}", calls.join(", "));

    // Sequential flows: the time of each step.
    let sequential = 300.min(flows);
    let mut times = Vec::with_capacity(sequential);
    for i in 0..sequential {
        times.push(one_flow(&wise, &http, &support::user(&format!("seq-{i}"))).await);
    }
    let median = |f: fn(&FlowTimes) -> Duration| {
        let mut v: Vec<Duration> = times.iter().map(f).collect();
        v.sort();
        v[v.len() / 2]
    };
    let (start, consent, complete) = (
        median(|t| t.start),
        median(|t| t.consent),
        median(|t| t.complete),
    );
    let token = wise.token(&support::user("seq-0")).await.unwrap();
    let wise_calls = emulator_round_trips(&mock, token.access_token().expose_secret()).await;
    let total = start + consent + complete;
    let library = (start + complete).saturating_sub(wise_calls);
    let share = library.as_secs_f64() / total.as_secs_f64();

    // Throughput: `flows` flows, `concurrency` at a time.
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (wise, http, next) = (wise.clone(), http.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= flows {
                    break;
                }
                one_flow(&wise, &http, &support::user(&format!("par-{i}"))).await;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    let per_second = flows as f64 / elapsed.as_secs_f64();
    let us = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1e6);
    eprintln!(
        "flow: {flows} flows x{concurrency} in {:.2} s = {per_second:.0} flows/s; sequential medians: start {} µs, consent {} µs, callback {} µs; Wise calls of the callback {} µs; library share {:.0}%",
        elapsed.as_secs_f64(),
        us(start),
        us(consent),
        us(complete),
        us(wise_calls),
        share * 100.0
    );
    figure("flow.flows", flows);
    figure("flow.concurrency", concurrency);
    figure("flow.per_second", format!("{per_second:.0}"));
    figure("flow.median_us", us(total));
    figure("flow.start_us", us(start));
    figure("flow.consent_us", us(consent));
    figure("flow.callback_us", us(complete));
    figure("flow.wise_calls_us", us(wise_calls));
    figure("flow.library_us", us(library));
    figure("flow.library_share_pct", format!("{:.0}", share * 100.0));
    mock.shutdown().await;
}

// ----- HTTP server for wrk --------------------------------------------------------------

/// Serves the measured app on loopback until killed. The emulator and the setup run on a
/// tokio runtime of their own; the app on the adapter's usual server with 2 workers.
fn serve(args: &Args) {
    let adapter = args.get("--adapter", "axum");
    let store_kind = args.get("--store", "memory");
    let workers = args.num("--workers", 2);
    let setup = runtime();
    let (mock, wise, stores) = setup.block_on(async {
        let mock = support::start_mock().await;
        support::ensure_wise_user(&mock, "serve@example.com");
        let stores = Stores::open(&store_kind, 1).await;
        // The system clock, as a served app has it: the emulator's clock runs in real time
        // here, but reading it locks the emulator's state, a cost no production request
        // pays (the other figures follow the emulator's clock to move time).
        let wise = wise_oauth::WiseOAuth::builder(support::config(&mock))
            .store(stores.stores[0].clone())
            .build()
            .unwrap();
        let http = support::no_redirect_client();
        let user = support::user(support::BENCH_USER);
        support::link(&wise, &mock, &http, &user, "serve@example.com").await;
        wise.token(&user).await.unwrap();
        (mock, wise, stores)
    });
    let user = support::user(support::BENCH_USER);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    println!("PORT {port}");
    std::io::stdout().flush().unwrap();
    eprintln!(
        "serve: {adapter} app on 127.0.0.1:{port} with the {store_kind} store, {workers} workers"
    );
    match adapter.as_str() {
        "axum" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = support::axum_app::app(wise, user);
                axum::serve(listener, app).await.unwrap();
            });
        }
        "actix" => {
            actix_web::rt::System::new().block_on(async move {
                actix_web::HttpServer::new(move || {
                    support::actix_app::app(wise.clone(), user.clone())
                })
                .workers(workers)
                .listen(listener)
                .unwrap()
                .run()
                .await
                .unwrap();
            });
        }
        other => panic!("unknown adapter {other:?}: axum | actix"),
    }
    setup.block_on(async {
        stores.close().await;
        mock.shutdown().await;
    });
}
