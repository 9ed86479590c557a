//! Wise's webhooks, over real HTTP on loopback, through both adapters' `POST
//! /wise/webhooks` route: the emulator links users (auto-approve), signs and delivers
//! `users#state-change` with its own test key, and the tests craft their own deliveries
//! (signed by the emulator's key) for the signature vectors and the ordering cases.
//!
//! Every case runs once on axum and once on actix-web (`webhook_cases!`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wise_oauth::{
    async_trait, ClientSecret, Environment, LeaseHolder, LinkKey, LinkRecord, MemoryLinkChanges,
    MemoryTokenStore, StoreError, TokenError, TokenStore, UserId, Version, Versioned,
    WebhookDelivery, WebhookKey, WebhookOutcome, WiseConfig, WiseEvent, WiseOAuth,
};
use wise_oauth_mock::{
    MockWise, MockWiseHandle, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, WEBHOOK_PUBLIC_KEY_PEM,
};

const ALICE: &str = "alice@example.com";
/// Alice's Wise user id in the emulator's seed data.
const ALICE_ID: u64 = 10000001;
const BOB: &str = "bob@example.com";
const BOB_ID: u64 = 10000002;

/// The published sandbox test vector: a valid signature, but by Wise's sandbox key, which
/// the app under test (configured with the emulator's key) does not trust.
const SANDBOX_VECTOR_BODY: &str = r#"{"data":{"resource":{"id":49983981,"profile_id":16055450,"account_id":14124090,"type":"transfer"},"current_state":"incoming_payment_waiting","previous_state":null,"occurred_at":"2021-08-23T10:12:50Z"},"subscription_id":"90aa8e14-4ef1-4a56-861c-f3c9cde097ea","event_type":"transfers#state-change","schema_version":"2.0.0","sent_at":"2021-08-23T10:12:50Z"}"#;
const SANDBOX_VECTOR_SIGNATURE: &str = "wKcKCYXAzxNgiu7xmoDm943NUni7Rz33QN8JkEA9dWSGebgndonabgSj18Y4C08OrwVmueGsED2s00M7DtJVcYKOS1i3G4TMVx+mgM3aL9djMBkQtiYNBFUd6wrPI7ZUNHv/TrlKSjTMc+6JFvUvJ7owY3z85e3I4jLRLJowMFvO8kvCJ60+1pY9wDwZvtZ//WS93LrwGjk9Dvwzpmu0w+P4J75tETT5qC3Uv0y5G2yO8SEoO3yNP/tg/BOli02niHb53vEOUWUb9bly6thnfMoXoiV/osoGxgF20R58RlvkAmezyyl1Sv542TfS2DpiwVnmjjjkCyXeSUcKookYLQ==";

/// The memory store, whose lookups by Wise user can be switched off (a store outage).
#[derive(Debug, Clone, Default)]
struct Store {
    links: MemoryTokenStore,
    lookups_down: Arc<AtomicBool>,
}

#[async_trait]
impl TokenStore for Store {
    async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
        self.links.load(key).await
    }

    async fn save(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        self.links.save(key, record, expected).await
    }

    async fn delete(&self, key: &LinkKey) -> Result<bool, StoreError> {
        self.links.delete(key).await
    }

    async fn acquire_lease(
        &self,
        key: &LinkKey,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.links.acquire_lease(key, holder, ttl).await
    }

    async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) -> Result<(), StoreError> {
        self.links.release_lease(key, holder).await
    }

    async fn links_of_wise_user(
        &self,
        environment: &str,
        client_id: &str,
        wise_user_id: u64,
    ) -> Result<Vec<UserId>, StoreError> {
        if self.lookups_down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("store down (test)".into()));
        }
        self.links
            .links_of_wise_user(environment, client_id, wise_user_id)
            .await
    }
}

#[derive(Debug, Clone, Copy)]
enum Adapter {
    Axum,
    Actix,
}

/// The app under test: the plugin's routes (the user from an `x-test-user` header, this
/// test app's own login), a memory store the test can read, and the events it emitted; its
/// change channel and configuration, for a [sibling](TestApp::sibling) instance.
struct TestApp {
    base: String,
    emulator: MockWiseHandle,
    wise: WiseOAuth,
    store: Store,
    events: Arc<Mutex<Vec<WiseEvent>>>,
    http: reqwest::Client,
    config: WiseConfig,
    changes: MemoryLinkChanges,
}

/// One instance on `store` and `changes`, trusting the emulator's webhook key, recording its
/// events in `events`.
fn instance(
    config: &WiseConfig,
    store: &Store,
    changes: &MemoryLinkChanges,
    events: &Arc<Mutex<Vec<WiseEvent>>>,
) -> WiseOAuth {
    let seen = events.clone();
    WiseOAuth::builder(config.clone())
        .store(store.clone())
        .changes(changes.clone())
        .webhook_keys([WebhookKey::from_pem(WEBHOOK_PUBLIC_KEY_PEM).expect("emulator key")])
        .on_event(move |e: &WiseEvent| seen.lock().unwrap().push(e.clone()))
        .build()
        .expect("wise-oauth")
}

fn test_user(value: Option<&str>) -> Option<UserId> {
    UserId::new(value?).ok()
}

impl TestApp {
    async fn start(adapter: Adapter) -> TestApp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let emulator = MockWise::builder().start().await.expect("emulator");
        let redirect_uri = format!("{base}/wise/callback");
        emulator.register_redirect_uri(DEMO_CLIENT_ID, &redirect_uri);
        let environment =
            Environment::custom("emulator", &emulator.base_url(), &emulator.authorize_url())
                .expect("emulator URLs");
        let config = WiseConfig::builder(
            DEMO_CLIENT_ID,
            ClientSecret::new(DEMO_CLIENT_SECRET),
            redirect_uri,
        )
        .environment(environment)
        .build()
        .expect("config");
        let store = Store::default();
        let changes = MemoryLinkChanges::new();
        let events = Arc::new(Mutex::new(Vec::new()));
        let wise = instance(&config, &store, &changes, &events);
        match adapter {
            Adapter::Axum => {
                let routes =
                    wise_oauth::axum::WiseRoutes::new(wise.clone()).user_resolver(|parts| {
                        test_user(
                            parts
                                .headers
                                .get("x-test-user")
                                .and_then(|v| v.to_str().ok()),
                        )
                    });
                let app = axum::Router::new()
                    .merge(routes.router())
                    .with_state(routes.plugin());
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
            }
            Adapter::Actix => {
                let routes =
                    wise_oauth::actix::WiseRoutes::new(wise.clone()).user_resolver(|req| {
                        test_user(
                            req.headers()
                                .get("x-test-user")
                                .and_then(|v| v.to_str().ok()),
                        )
                    });
                let server = actix_web::HttpServer::new(move || {
                    let routes = routes.clone();
                    actix_web::App::new().configure(move |cfg| routes.configure(cfg))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .expect("listen")
                .run();
                tokio::spawn(async move { server.await.expect("serve") });
            }
        }
        TestApp {
            base,
            emulator,
            wise,
            store,
            events,
            http: reqwest::Client::new(),
            config,
            changes,
        }
    }

    /// A second instance of the app (no routes of its own): the same store and change
    /// channel, its own cache, delivery-id memory and events.
    fn sibling(&self) -> (WiseOAuth, Arc<Mutex<Vec<WiseEvent>>>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let wise = instance(&self.config, &self.store, &self.changes, &events);
        (wise, events)
    }

    /// Links app user `user` to the first profile of the Wise account `email` through the
    /// routes (connect, the emulator's auto-approval, the callback).
    async fn link(&self, user: &str, email: &str) {
        self.emulator.set_auto_approve(Some(email));
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let location =
            |res: &reqwest::Response| res.headers()["location"].to_str().unwrap().to_owned();
        let res = browser
            .get(format!("{}/wise/connect", self.base))
            .header("x-test-user", user)
            .header(ACCEPT, "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "connect");
        let res = browser.get(location(&res)).send().await.unwrap();
        assert!(res.status().is_redirection(), "auto-approve");
        let res = browser
            .get(location(&res))
            .header("x-test-user", user)
            .header(ACCEPT, "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "callback");
        assert!(!self.relink_required(user).await);
    }

    /// `POST /wise/webhooks` with `body` and `headers`: the status and the JSON answer.
    async fn deliver(&self, body: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}/wise/webhooks", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Delivers `body` signed with the emulator's key under `delivery_id`.
    async fn deliver_signed(&self, body: &str, delivery_id: &str) -> (StatusCode, Value) {
        let signature = self.emulator.sign_webhook(body.as_bytes());
        self.deliver(
            body,
            &[
                ("x-signature-sha256", &signature),
                ("x-delivery-id", delivery_id),
            ],
        )
        .await
    }

    async fn relink_required(&self, user: &str) -> bool {
        let user = UserId::new(user).unwrap();
        self.wise
            .status(&user)
            .await
            .unwrap()
            .expect("linked")
            .relink_required
    }

    /// The users the events hook was told must re-link, in order.
    fn relink_events(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                WiseEvent::RelinkRequired { user, .. } => Some(user.as_str().to_owned()),
                _ => None,
            })
            .collect()
    }

    async fn stored_wise_user(&self, user: &str) -> Option<u64> {
        let key = LinkKey::new("emulator", DEMO_CLIENT_ID, UserId::new(user).unwrap());
        self.store
            .load(&key)
            .await
            .unwrap()
            .unwrap()
            .value
            .wise_user_id
    }
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A `users#state-change` body as Wise sends it.
fn user_state(user_id: u64, state: &str, occurred_at: SystemTime) -> String {
    json!({
        "data": {
            "resource": {"id": user_id, "type": "user"},
            "previous_state": "ACTIVE",
            "current_state": state,
            "occurred_at": rfc3339(occurred_at),
        },
        "subscription_id": "f5b51f77-e14a-433b-9f7c-fc2834ffcff5",
        "event_type": "users#state-change",
        "schema_version": "2.0.0",
        "sent_at": rfc3339(occurred_at),
    })
    .to_string()
}

fn soon() -> SystemTime {
    SystemTime::now() + Duration::from_secs(1)
}

/// A valid signature marks the link once; a missing header, a body changed by one byte, a
/// signature of another key or of no key change nothing; a replayed delivery id is acted
/// on once, and the same event under a new id changes nothing more.
async fn signature_vectors_and_replays(app: &TestApp) {
    app.link("u1", ALICE).await;
    let body = user_state(ALICE_ID, "DEACTIVATED", soon());
    let signature = app.emulator.sign_webhook(body.as_bytes());

    let (status, answer) = app.deliver(&body, &[("x-delivery-id", "d-0")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "missing_signature");

    // One byte changed ("2.0.0" → "2.0.1"), same signature.
    let changed = body.replacen("2.0.0", "2.0.1", 1);
    assert_eq!(changed.len(), body.len());
    let (status, answer) = app
        .deliver(&changed, &[("x-signature-sha256", &signature)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "invalid_signature");

    // A genuine signature, by a key the app does not trust (Wise's sandbox key).
    let (status, answer) = app
        .deliver(
            SANDBOX_VECTOR_BODY,
            &[("x-signature-sha256", SANDBOX_VECTOR_SIGNATURE)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "invalid_signature");

    for garbage in ["", "not base64!", "AAAA"] {
        let (status, _) = app.deliver(&body, &[("x-signature-sha256", garbage)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{garbage:?}");
    }
    // Two signature headers are ambiguous: no signature.
    let (status, answer) = app
        .deliver(
            &body,
            &[
                ("x-signature-sha256", &signature),
                ("x-signature-sha256", &signature),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "missing_signature");

    assert!(
        !app.relink_required("u1").await,
        "rejected deliveries changed nothing"
    );
    assert!(app.relink_events().is_empty());
    let token = app.wise.token(&UserId::new("u1").unwrap()).await;
    assert!(token.is_ok(), "the link still works: {token:?}");

    let (status, answer) = app.deliver_signed(&body, "d-1").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"], "user_deactivated");
    assert_eq!(answer["relinked"], 1);
    assert!(app.relink_required("u1").await);
    assert_eq!(app.relink_events(), ["u1"]);

    // Wise's retry of the same delivery.
    let (status, answer) = app.deliver_signed(&body, "d-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["outcome"], "duplicate");
    // The same event delivered again under a new id (a second subscription, or another
    // instance's memory): idempotent.
    let (status, answer) = app.deliver_signed(&body, "d-2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["relinked"], 0);
    assert_eq!(app.relink_events(), ["u1"], "acted on once");
    let token = app.wise.token(&UserId::new("u1").unwrap()).await;
    assert!(
        matches!(token, Err(TokenError::RelinkRequired)),
        "{token:?}"
    );
}

/// Deliveries arrive out of order: a reactivation and, after it, the deactivation that
/// preceded it, both older than the user's current grant. Neither undoes the newer grant;
/// a deactivation newer than the grant does mark it.
async fn an_older_event_does_not_undo_a_newer_grant(app: &TestApp) {
    app.link("u1", ALICE).await;
    let now = SystemTime::now();
    let deactivated = user_state(ALICE_ID, "DEACTIVATED", now - Duration::from_secs(3600));
    let reactivated = user_state(ALICE_ID, "ACTIVE", now - Duration::from_secs(1800));
    let (status, answer) = app.deliver_signed(&reactivated, "newer").await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );
    let (status, answer) = app.deliver_signed(&deactivated, "older").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["outcome"], "user_deactivated");
    assert_eq!(answer["relinked"], 0, "the grant is newer than the event");
    assert!(!app.relink_required("u1").await);
    assert!(app.relink_events().is_empty());
    assert!(app.wise.token(&UserId::new("u1").unwrap()).await.is_ok());

    // A deactivation stamped a minute before the grant is within the clock tolerance
    // (Wise's clock and ours may disagree by minutes): applied. The older one delivered
    // after it changes nothing.
    let newer = user_state(ALICE_ID, "DEACTIVATED", now - Duration::from_secs(60));
    let (_, answer) = app.deliver_signed(&newer, "newest").await;
    assert_eq!(answer["relinked"], 1);
    let (_, answer) = app.deliver_signed(&deactivated, "older-again").await;
    assert_eq!(answer["relinked"], 0);
    assert_eq!(app.relink_events(), ["u1"]);
}

/// The emulator deactivates alice: its signed delivery reaches the route, both of alice's
/// links need a re-link (the hook fired for each), bob's link is untouched. A redelivery
/// is acted on once; reactivation sends a webhook that changes nothing; a plain revoke
/// sends none (as at Wise).
async fn the_emulators_deactivation_reaches_the_route(app: &TestApp) {
    app.link("u1", ALICE).await;
    app.link("u2", ALICE).await;
    app.link("u3", BOB).await;
    assert_eq!(app.stored_wise_user("u1").await, Some(ALICE_ID));
    assert_eq!(app.stored_wise_user("u3").await, Some(BOB_ID));
    let subscription = app
        .emulator
        .subscribe_webhooks(&format!("{}/wise/webhooks", app.base))
        .expect("a loopback URL is accepted");
    assert_eq!(subscription.trigger_on, "users#state-change");
    let refreshes = app.emulator.stats().token_requests("refresh_token");

    app.emulator.deactivate(ALICE);
    app.emulator.wait_for_webhook_deliveries(1).await;
    let deliveries = app.emulator.webhook_deliveries();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, Some(200), "{deliveries:?}");
    assert!(app.relink_required("u1").await && app.relink_required("u2").await);
    assert!(!app.relink_required("u3").await);
    let mut relinked = app.relink_events();
    relinked.sort();
    assert_eq!(relinked, ["u1", "u2"]);
    for user in ["u1", "u2"] {
        let token = app.wise.token(&UserId::new(user).unwrap()).await;
        assert!(
            matches!(token, Err(TokenError::RelinkRequired)),
            "{token:?}"
        );
    }
    assert_eq!(
        app.emulator.stats().token_requests("refresh_token"),
        refreshes,
        "the webhook, not a failed refresh, marked the links"
    );

    // Wise's retry: same id, same bytes.
    let status = app
        .emulator
        .redeliver_webhook(&deliveries[0].delivery_id)
        .await;
    assert_eq!(status, Some(200));
    assert_eq!(app.relink_events().len(), 2, "acted on once");

    app.emulator.reactivate(ALICE);
    app.emulator.wait_for_webhook_deliveries(3).await;
    let deliveries = app.emulator.webhook_deliveries();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[1].status, Some(200));
    assert!(deliveries[1].body.contains(r#""current_state":"ACTIVE""#));
    assert!(app.relink_required("u1").await, "old tokens stay dead");

    app.emulator.revoke(BOB);
    assert_eq!(
        app.emulator.webhook_deliveries().len(),
        2,
        "no webhook on revoke"
    );
    assert!(!app.relink_required("u3").await);
}

/// A link stored before Wise user ids were recorded (the column migrated, the value
/// unknown) learns its Wise user through `backfill_wise_user_id`, once; the emulator's
/// deactivation then reaches it.
async fn an_old_link_learns_its_wise_user_and_then_gets_deactivations(app: &TestApp) {
    app.link("u1", ALICE).await;
    let key = LinkKey::new("emulator", DEMO_CLIENT_ID, UserId::new("u1").unwrap());
    let stored = app.store.load(&key).await.unwrap().unwrap();
    let old = stored.value.clone().with_wise_user_id(None);
    app.store
        .save(&key, &old, Some(stored.version))
        .await
        .unwrap();
    app.emulator
        .subscribe_webhooks(&format!("{}/wise/webhooks", app.base))
        .unwrap();
    // Without its Wise user the link cannot be found: a deactivation passes it by.
    let early = user_state(ALICE_ID, "DEACTIVATED", soon());
    let (_, answer) = app.deliver_signed(&early, "before-backfill").await;
    assert_eq!(answer["relinked"], 0);
    let user = UserId::new("u1").unwrap();
    let calls = app.emulator.stats().endpoint_requests("GET /v1/me");
    assert_eq!(
        app.wise.backfill_wise_user_id(&user).await.unwrap(),
        ALICE_ID
    );
    assert_eq!(app.stored_wise_user("u1").await, Some(ALICE_ID));
    assert_eq!(
        app.wise.backfill_wise_user_id(&user).await.unwrap(),
        ALICE_ID
    );
    assert_eq!(
        app.emulator.stats().endpoint_requests("GET /v1/me"),
        calls + 1,
        "a known id is not asked again"
    );
    let nobody = UserId::new("nobody").unwrap();
    assert!(app.wise.backfill_wise_user_id(&nobody).await.is_err());
    app.emulator.deactivate(ALICE);
    app.emulator.wait_for_webhook_deliveries(1).await;
    assert!(app.relink_required("u1").await);
    assert_eq!(app.relink_events(), ["u1"]);
}

/// The app subscribes its route through Wise's application API (client-credentials
/// token); the emulator's deactivation then arrives under that subscription. Another
/// application's client key is refused.
async fn the_library_subscribes_its_route(app: &TestApp) {
    app.link("u1", ALICE).await;
    let url = format!("{}/wise/webhooks", app.base);
    let id = app
        .wise
        .subscribe_webhooks(DEMO_CLIENT_ID, &url)
        .await
        .expect("subscribed");
    assert!(app
        .wise
        .subscribe_webhooks("someone-else", &url)
        .await
        .is_err());
    app.emulator.deactivate(ALICE);
    app.emulator.wait_for_webhook_deliveries(1).await;
    let deliveries = app.emulator.webhook_deliveries();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].subscription_id, id);
    assert_eq!(deliveries[0].status, Some(200));
    assert!(app.relink_required("u1").await);
    assert_eq!(app.relink_events(), ["u1"]);
}

/// The store is down when a deactivation arrives: 503 with `Retry-After`, nothing changed
/// and the delivery not remembered, so Wise's retry of the same delivery id applies it.
async fn a_store_outage_is_a_503_and_the_retry_applies(app: &TestApp) {
    app.link("u1", ALICE).await;
    let body = user_state(ALICE_ID, "DEACTIVATED", soon());
    app.store.lookups_down.store(true, Ordering::SeqCst);
    let signature = app.emulator.sign_webhook(body.as_bytes());
    let res = app
        .http
        .post(format!("{}/wise/webhooks", app.base))
        .header("x-signature-sha256", &signature)
        .header("x-delivery-id", "retry-me")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert!(!app.relink_required("u1").await);
    assert!(app.relink_events().is_empty());
    app.store.lookups_down.store(false, Ordering::SeqCst);
    let (status, answer) = app.deliver_signed(&body, "retry-me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["relinked"], 1, "{answer}");
    assert_eq!(app.relink_events(), ["u1"]);

    // The same through the emulator: its delivery gets the 503 and is due again a minute
    // later (emulator clock), when the store is back.
    app.link("u3", BOB).await;
    app.emulator
        .subscribe_webhooks(&format!("{}/wise/webhooks", app.base))
        .unwrap();
    app.store.lookups_down.store(true, Ordering::SeqCst);
    app.emulator.deactivate(BOB);
    app.emulator.wait_for_webhook_deliveries(1).await;
    let delivery = app.emulator.webhook_deliveries().remove(0);
    assert_eq!(delivery.status, Some(503));
    assert!(delivery.next_attempt_at.is_some());
    assert_eq!(app.emulator.deliver_due_webhooks().await, 0, "not due yet");
    assert!(!app.relink_required("u3").await);
    app.store.lookups_down.store(false, Ordering::SeqCst);
    app.emulator.advance_clock(Duration::from_secs(61));
    assert_eq!(app.emulator.deliver_due_webhooks().await, 1);
    let delivery = app.emulator.webhook_deliveries().remove(0);
    assert_eq!((delivery.status, delivery.attempts), (Some(200), 2));
    assert_eq!(delivery.next_attempt_at, None);
    assert!(app.relink_required("u3").await);
    assert_eq!(app.relink_events(), ["u1", "u3"]);
}

/// Verified deliveries that do not concern links change nothing: a test notification, a
/// profile event, a deactivation of a Wise user nobody linked; a signed body that is not
/// an event is a 400; an oversized body a 413.
async fn other_deliveries_change_nothing(app: &TestApp) {
    app.link("u1", ALICE).await;
    let body = user_state(ALICE_ID, "DEACTIVATED", soon());
    let signature = app.emulator.sign_webhook(body.as_bytes());
    let (status, answer) = app
        .deliver(
            &body,
            &[
                ("x-signature-sha256", &signature),
                ("x-delivery-id", "t-1"),
                ("x-test-notification", "true"),
            ],
        )
        .await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (StatusCode::OK, Some("test_notification"))
    );
    let profile = json!({
        "data": {"resource": {"type": "profile", "id": 30000000}, "current_state": "not_verified",
                 "occurred_at": rfc3339(soon())},
        "event_type": "profiles#verification-state-change", "schema_version": "2.0.0",
    })
    .to_string();
    let (status, answer) = app.deliver_signed(&profile, "p-1").await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );
    let nobody = user_state(99_999_999, "DEACTIVATED", soon());
    let (status, answer) = app.deliver_signed(&nobody, "n-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["relinked"], 0);
    let (status, answer) = app.deliver_signed("[1, 2, 3]", "m-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "malformed_event");
    let huge = format!(
        "{{\"pad\":\"{}\"}}",
        "x".repeat(wise_oauth::MAX_WEBHOOK_BODY)
    );
    let (status, _) = app.deliver_signed(&huge, "h-1").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!app.relink_required("u1").await);
    assert!(app.relink_events().is_empty());
}

/// Two instances behind one load balancer, faults combined: both hold alice's fresh token
/// in their caches; the deactivation reaches A while the store's look-ups are down (503,
/// nothing changed); Wise's retry of the same delivery lands on B, which marks the link;
/// A's cached token is dropped by the change channel, not by its 30 s revalidation; a
/// second retry on A (which never recorded the id) finds the link settled. One mark, one
/// event across both instances, no call to Wise's token endpoint.
async fn a_deactivation_reaches_every_instance(app: &TestApp) {
    app.link("u1", ALICE).await;
    let u1 = UserId::new("u1").unwrap();
    let (b, b_events) = app.sibling();
    app.wise.token(&u1).await.expect("A serves alice's token");
    b.token(&u1).await.expect("B caches alice's token");
    let refreshes = app.emulator.stats().token_requests("refresh_token");

    let body = user_state(ALICE_ID, "DEACTIVATED", soon());
    let signature = app.emulator.sign_webhook(body.as_bytes());
    app.store.lookups_down.store(true, Ordering::SeqCst);
    let (status, _) = app.deliver_signed(&body, "lb-retry").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    app.store.lookups_down.store(false, Ordering::SeqCst);
    assert!(app.wise.token(&u1).await.is_ok(), "the 503 changed nothing");

    let delivery = WebhookDelivery::new(body.as_bytes())
        .signature(Some(&signature))
        .delivery_id(Some("lb-retry"));
    let outcome = b
        .handle_webhook(&delivery)
        .await
        .expect("B applies the retry");
    assert!(
        matches!(
            outcome,
            WebhookOutcome::UserDeactivated {
                wise_user_id: ALICE_ID,
                relinked: 1
            }
        ),
        "{outcome:?}"
    );
    assert!(matches!(
        b.token(&u1).await,
        Err(TokenError::RelinkRequired)
    ));
    // A learns it from the change channel (its cached entry is younger than 30 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if matches!(app.wise.token(&u1).await, Err(TokenError::RelinkRequired)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "A still serves the dead token"
        );
        tokio::task::yield_now().await;
    }

    let (status, answer) = app.deliver_signed(&body, "lb-retry").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["relinked"], 0, "already settled: {answer}");
    let b_relinks = b_events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, WiseEvent::RelinkRequired { .. }))
        .count();
    assert_eq!(
        (app.relink_events().len(), b_relinks),
        (0, 1),
        "one event in all"
    );
    assert_eq!(
        app.emulator.stats().token_requests("refresh_token"),
        refreshes
    );
}

macro_rules! webhook_cases {
    ($($case:ident),* $(,)?) => {
        mod axum_adapter {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let app = super::TestApp::start(super::Adapter::Axum).await;
                    super::$case(&app).await;
                }
            )*
        }
        mod actix_adapter {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let app = super::TestApp::start(super::Adapter::Actix).await;
                    super::$case(&app).await;
                }
            )*
        }
    };
}

webhook_cases!(
    signature_vectors_and_replays,
    an_older_event_does_not_undo_a_newer_grant,
    the_emulators_deactivation_reaches_the_route,
    other_deliveries_change_nothing,
    a_store_outage_is_a_503_and_the_retry_applies,
    an_old_link_learns_its_wise_user_and_then_gets_deactivations,
    the_library_subscribes_its_route,
    a_deactivation_reaches_every_instance,
);
