//! The cost of `WiseToken` on the hot path, in process: one request through the app's
//! router whose handler takes `WiseToken` (linked user, fresh token), against the same
//! router and an identical handler without the extractor. axum through
//! `tower::ServiceExt::oneshot`, actix-web through `actix_web::test::call_service`.
//!
//! `cargo bench --bench hot_path` (add `-- --warm-up-time 1 --measurement-time 3` for a
//! quick run). The bar: the extractor adds at most 1 µs to the median.

#![allow(missing_docs)] // criterion_group! makes a public fn

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use criterion::{criterion_group, criterion_main, Criterion};
use tower::ServiceExt;
use wise_oauth::MemoryTokenStore;

/// A linked user with a fresh token on a memory store; the emulator stays up for the run.
fn linked(
    rt: &tokio::runtime::Runtime,
) -> (wise_oauth_mock::MockWiseHandle, wise_oauth::WiseOAuth) {
    rt.block_on(async {
        let mock = support::start_mock().await;
        support::ensure_wise_user(&mock, "bench@example.com");
        let wise = support::wise(&mock, Arc::new(MemoryTokenStore::new()));
        let http = support::no_redirect_client();
        let user = support::user(support::BENCH_USER);
        support::link(&wise, &mock, &http, &user, "bench@example.com").await;
        // Warm the manager's cache, as any request after the link does.
        wise.token(&user).await.unwrap();
        (mock, wise)
    })
}

fn axum_hot_path(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_mock, wise) = linked(&rt);
    let app = support::axum_app::app(wise, support::user(support::BENCH_USER));
    let mut group = c.benchmark_group("axum");
    for path in ["/without", "/with"] {
        // Sanity: both answer 200 before being measured.
        let status = rt.block_on(async {
            let req = Request::get(path).body(Body::empty()).unwrap();
            app.clone().oneshot(req).await.unwrap().status()
        });
        assert_eq!(status, 200, "{path}");
        group.bench_function(path.trim_start_matches('/'), |b| {
            b.to_async(&rt).iter(|| {
                let app = app.clone();
                async move {
                    let req = Request::get(path).body(Body::empty()).unwrap();
                    let response = app.oneshot(req).await.unwrap();
                    let body = axum::body::to_bytes(response.into_body(), 1024)
                        .await
                        .unwrap();
                    std::hint::black_box(body)
                }
            });
        });
    }
    group.finish();
}

fn actix_hot_path(c: &mut Criterion) {
    // The emulator runs on its own tokio runtime; actix's test service on actix's own
    // (single-threaded) system, as in an actix worker.
    let tokio_rt = tokio::runtime::Runtime::new().unwrap();
    let (_mock, wise) = linked(&tokio_rt);
    let system = actix_web::rt::System::new();
    let service = system.block_on(actix_web::test::init_service(support::actix_app::app(
        wise,
        support::user(support::BENCH_USER),
    )));
    let mut group = c.benchmark_group("actix");
    for path in ["/without", "/with"] {
        let status = system.block_on(async {
            let req = actix_web::test::TestRequest::get().uri(path).to_request();
            actix_web::test::call_service(&service, req).await.status()
        });
        assert_eq!(status, 200, "{path}");
        group.bench_function(path.trim_start_matches('/'), |b| {
            b.iter(|| {
                system.block_on(async {
                    let req = actix_web::test::TestRequest::get().uri(path).to_request();
                    let response = actix_web::test::call_service(&service, req).await;
                    std::hint::black_box(actix_web::test::read_body(response).await)
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, axum_hot_path, actix_hot_path);
criterion_main!(benches);
