//! Webhooks: subscriptions, signed deliveries of `users#state-change`, and their control API.
//!
//! Like Wise, the emulator signs each delivery's raw body with RSASSA-PKCS1-v1_5 / SHA-256
//! (`X-Signature-SHA256`, base64) and gives it a fresh `X-Delivery-Id` (a UUID). It signs
//! with a fixed **test** key pair of its own (`keys/webhook-test-key.pem`, public half at
//! `GET /__mock/webhook-key`): Wise's private keys are not public, so an app under test
//! configures this public key instead of Wise's. Deliveries are made once, in the
//! background, to every subscription of the event type. A delivery not answered with 200
//! is due again 1, 2, 4 … minutes later (then daily; at most 25 attempts, as at Wise) on
//! the emulator clock, and is sent again byte for byte (same id, same signature) when the
//! test asks for due deliveries ([`MockWiseHandle::deliver_due_webhooks`](crate::MockWiseHandle::deliver_due_webhooks))
//! or for one delivery.
//!
//! Subscriptions come from the control API or from Wise's application API,
//! `/v3/applications/{clientKey}/subscriptions` (create, list, get, delete,
//! `test-notifications`) with a client-credentials token; the emulator's client key is the
//! client id.
// Early-return helpers hand back a ready `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use crate::clock::fmt_millis;
use crate::error::{json_response, MockError};
use crate::server::App;
use crate::state::Owner;

/// The emulator's webhook signing key (PKCS#8): a test key, never Wise's.
const TEST_PRIVATE_KEY_PEM: &str = include_str!("../keys/webhook-test-key.pem");

/// The public half of the emulator's webhook test key (SubjectPublicKeyInfo PEM), what an
/// app under test configures to verify the emulator's deliveries. It is not Wise's key:
/// an app that trusts only Wise's keys rejects the emulator's deliveries.
pub const WEBHOOK_PUBLIC_KEY_PEM: &str = include_str!("../keys/webhook-test-key.pub.pem");

/// The only event type the emulator delivers.
const USER_STATE_CHANGE: &str = "users#state-change";

/// How long a delivery waits for the receiver's answer (Wise waits 5 s).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The most attempts of one delivery (Wise: 25 over about two weeks).
const MAX_ATTEMPTS: u32 = 25;

/// How long after its `attempt`-th failed attempt a delivery is due again: 1, 2, 4 …
/// minutes for the first 11 retries, then a day.
fn retry_delay(attempt: u32) -> Duration {
    if attempt <= 11 {
        Duration::from_secs(60 << (attempt - 1))
    } else {
        Duration::from_secs(24 * 3600)
    }
}

static SIGNER: LazyLock<RsaKeyPair> = LazyLock::new(|| {
    let base64: String = TEST_PRIVATE_KEY_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD
        .decode(base64)
        .expect("embedded test key is base64");
    RsaKeyPair::from_pkcs8(&der).expect("embedded test key is a PKCS#8 RSA key")
});

static HTTP: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(DELIVERY_TIMEOUT)
        .build()
        .expect("HTTP client for webhook deliveries")
});

/// `X-Signature-SHA256` of `body` with the emulator's test key (base64).
pub(crate) fn sign(body: &[u8]) -> String {
    let mut signature = vec![0; SIGNER.public().modulus_len()];
    SIGNER
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            body,
            &mut signature,
        )
        .expect("RSA signing");
    STANDARD.encode(signature)
}

/// A webhook subscription, as the control API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookSubscription {
    /// The subscription id (a UUID).
    pub id: String,
    /// Its name (`control` for one made through the control API).
    pub name: String,
    /// The application (client key) it belongs to (empty for the control API's).
    pub client_key: String,
    /// Where deliveries go.
    pub url: String,
    /// The event type (`users#state-change`).
    pub trigger_on: String,
}

/// One delivery the emulator made, as the control API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookDelivery {
    /// `X-Delivery-Id`.
    pub delivery_id: String,
    /// The subscription it was made for.
    pub subscription_id: String,
    /// Where it was sent.
    pub url: String,
    /// The event type.
    pub event_type: String,
    /// The receiver's status of the last attempt; `None` while in flight or when it could
    /// not be reached.
    pub status: Option<u16>,
    /// Attempts so far (the first delivery and every redelivery).
    pub attempts: u32,
    /// The signed body, exactly as sent.
    pub body: String,
    /// `X-Signature-SHA256`, exactly as sent.
    pub signature: String,
    /// Sent with `X-Test-Notification: true` (dummy data).
    pub test_notification: bool,
    /// When the next attempt is due (emulator clock, RFC 3339); `None` once answered 200
    /// or after the last attempt.
    pub next_attempt_at: Option<String>,
    #[serde(skip)]
    next_due: Option<SystemTime>,
}

/// Subscriptions and deliveries (part of the emulator state; reset with it).
#[derive(Debug)]
pub(crate) struct Registry {
    subscriptions: Vec<WebhookSubscription>,
    deliveries: Vec<WebhookDelivery>,
    /// Finished attempts, for waiters.
    finished: u64,
    done: watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            subscriptions: Vec::new(),
            deliveries: Vec::new(),
            finished: 0,
            done: watch::channel(0).0,
        }
    }
}

/// Whether the emulator may deliver to `url`: `https://` anywhere, plain `http://` only to
/// a loopback host (as the spec's assumption allows), and no query string (as at Wise).
fn acceptable_url(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    parsed.query().is_none()
        && match parsed.scheme() {
            "https" => parsed.host_str().is_some(),
            "http" => loopback,
            _ => false,
        }
}

impl Registry {
    /// Registers a subscription; `None` for a URL the emulator does not deliver to.
    pub(crate) fn subscribe(&mut self, url: &str) -> Option<WebhookSubscription> {
        self.add("control", "", USER_STATE_CHANGE, url)
    }

    fn add(
        &mut self,
        name: &str,
        client_key: &str,
        trigger_on: &str,
        url: &str,
    ) -> Option<WebhookSubscription> {
        if !acceptable_url(url) {
            return None;
        }
        let subscription = WebhookSubscription {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            client_key: client_key.to_owned(),
            url: url.to_owned(),
            trigger_on: trigger_on.to_owned(),
        };
        self.subscriptions.push(subscription.clone());
        Some(subscription)
    }

    pub(crate) fn subscriptions(&self) -> Vec<WebhookSubscription> {
        self.subscriptions.clone()
    }

    pub(crate) fn deliveries(&self) -> Vec<WebhookDelivery> {
        self.deliveries.clone()
    }

    /// Queues one signed delivery of a `users#state-change` event per subscription; returns
    /// their ids.
    fn queue_user_state(
        &mut self,
        user_id: u64,
        previous: &str,
        current: &str,
        occurred_at: &str,
    ) -> Vec<String> {
        let mut ids = Vec::new();
        let subscriptions = self
            .subscriptions
            .iter()
            .filter(|s| s.trigger_on == USER_STATE_CHANGE);
        for subscription in subscriptions {
            let mut data = json!({
                "resource": {"id": user_id, "type": "user"},
                "previous_state": previous,
                "current_state": current,
                "occurred_at": occurred_at,
            });
            if current == "DEACTIVATED" {
                data["deactivation_type"] = json!("ACCOUNT_CLOSURE");
                data["deactivation_reason"] = json!("REQUESTED_BY_CUSTOMER_CS");
            }
            let body = json!({
                "data": data,
                "subscription_id": subscription.id,
                "event_type": USER_STATE_CHANGE,
                "schema_version": "2.0.0",
                "sent_at": occurred_at,
            })
            .to_string();
            let delivery = WebhookDelivery {
                delivery_id: uuid::Uuid::new_v4().to_string(),
                subscription_id: subscription.id.clone(),
                url: subscription.url.clone(),
                event_type: USER_STATE_CHANGE.to_owned(),
                status: None,
                attempts: 0,
                signature: sign(body.as_bytes()),
                body,
                test_notification: false,
                next_attempt_at: None,
                next_due: None,
            };
            ids.push(delivery.delivery_id.clone());
            self.deliveries.push(delivery);
        }
        ids
    }

    /// Queues a test notification of `subscription` (dummy data, ids 0, as at Wise).
    fn queue_test(&mut self, subscription: &WebhookSubscription, at: &str) -> String {
        let body = json!({
            "data": {
                "resource": {"id": 0, "type": "user"},
                "previous_state": "ACTIVE",
                "current_state": "DEACTIVATED",
                "occurred_at": at,
            },
            "subscription_id": subscription.id,
            "event_type": subscription.trigger_on,
            "schema_version": "2.0.0",
            "sent_at": at,
        })
        .to_string();
        let delivery = WebhookDelivery {
            delivery_id: uuid::Uuid::new_v4().to_string(),
            subscription_id: subscription.id.clone(),
            url: subscription.url.clone(),
            event_type: subscription.trigger_on.clone(),
            status: None,
            attempts: 0,
            signature: sign(body.as_bytes()),
            body,
            test_notification: true,
            next_attempt_at: None,
            next_due: None,
        };
        let id = delivery.delivery_id.clone();
        self.deliveries.push(delivery);
        id
    }

    /// Counts an attempt of `delivery_id` at `now` and what the receiver answered; a
    /// failed one is due again after [`retry_delay`].
    fn record(&mut self, delivery_id: &str, status: Option<u16>, now: SystemTime) {
        if let Some(d) = self
            .deliveries
            .iter_mut()
            .find(|d| d.delivery_id == delivery_id)
        {
            d.attempts += 1;
            d.status = status;
            d.next_due = (status != Some(200) && d.attempts < MAX_ATTEMPTS)
                .then(|| now + retry_delay(d.attempts));
            d.next_attempt_at = d.next_due.map(fmt_millis);
        }
        self.finished += 1;
        self.done.send_replace(self.finished);
    }
}

/// Sends one delivery (its stored bytes and headers) and records the answer.
async fn attempt(app: &App, delivery_id: &str) -> Option<u16> {
    let delivery = app
        .lock()
        .webhooks
        .deliveries
        .iter()
        .find(|d| d.delivery_id == delivery_id)
        .cloned()?;
    let mut request = HTTP
        .post(&delivery.url)
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Signature-SHA256", &delivery.signature)
        .header("X-Delivery-Id", &delivery.delivery_id);
    if delivery.test_notification {
        request = request.header("X-Test-Notification", "true");
    }
    let status = request
        .body(delivery.body.clone())
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16());
    tracing::info!(delivery_id, status, "webhook delivered");
    let mut s = app.lock();
    let now = s.now();
    s.webhooks.record(delivery_id, status, now);
    status
}

/// Sends again, one after the other, every delivery whose retry is due by the emulator
/// clock; how many were sent.
pub(crate) async fn deliver_due(app: &App) -> usize {
    let due: Vec<String> = {
        let s = app.lock();
        let now = s.now();
        s.webhooks
            .deliveries
            .iter()
            .filter(|d| d.next_due.is_some_and(|at| at <= now))
            .map(|d| d.delivery_id.clone())
            .collect()
    };
    for id in &due {
        attempt(app, id).await;
    }
    due.len()
}

/// Delivers `ids` in the background, one task each.
fn deliver(app: &App, ids: Vec<String>) {
    for id in ids {
        let app = app.clone();
        tokio::spawn(async move { attempt(&app, &id).await });
    }
}

/// The user's account is deactivated: every token is revoked (refresh answers 400
/// `invalid_grant`, API calls 401) and `users#state-change` → `DEACTIVATED` is delivered.
pub(crate) fn deactivate(app: &App, email: &str) -> Result<(), MockError> {
    change_state(app, email, "ACTIVE", "DEACTIVATED")
}

/// The account is active again (old tokens stay dead) and `users#state-change` → `ACTIVE`
/// is delivered.
pub(crate) fn reactivate(app: &App, email: &str) -> Result<(), MockError> {
    change_state(app, email, "DEACTIVATED", "ACTIVE")
}

fn change_state(app: &App, email: &str, previous: &str, current: &str) -> Result<(), MockError> {
    let ids = {
        let mut s = app.lock();
        let user_id = s
            .user_by_email(email)
            .map(|u| u.id)
            .ok_or_else(|| MockError::UnknownUser(email.to_owned()))?;
        if current == "DEACTIVATED" {
            s.revoke(email)?;
        }
        let occurred_at = fmt_millis(s.now());
        s.webhooks
            .queue_user_state(user_id, previous, current, &occurred_at)
    };
    deliver(app, ids);
    Ok(())
}

/// Sends a delivery again, byte for byte (same id and signature); the receiver's status.
pub(crate) async fn redeliver(app: &App, delivery_id: &str) -> Result<Option<u16>, MockError> {
    let known = app
        .lock()
        .webhooks
        .deliveries
        .iter()
        .any(|d| d.delivery_id == delivery_id);
    if !known {
        return Err(MockError::InvalidInput(format!(
            "unknown delivery {delivery_id:?}"
        )));
    }
    Ok(attempt(app, delivery_id).await)
}

/// Waits until at least `n` delivery attempts have finished.
pub(crate) async fn wait_for_deliveries(app: &App, n: u64) {
    loop {
        let mut rx = app.lock().webhooks.done.subscribe();
        loop {
            if *rx.borrow_and_update() >= n {
                return;
            }
            // A reset replaces the registry (and its sender): subscribe to the new one.
            if rx.changed().await.is_err() {
                break;
            }
        }
    }
}

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/__mock/webhook-key", get(public_key))
        .route(
            "/__mock/webhooks/subscriptions",
            get(list_subscriptions).post(subscribe),
        )
        .route("/__mock/webhooks/deliveries", get(list_deliveries))
        .route("/__mock/webhooks/deliver-due", post(deliver_due_route))
        .route(
            "/__mock/webhooks/deliveries/{id}/redeliver",
            post(redeliver_route),
        )
        .route(
            "/v3/applications/{client_key}/subscriptions",
            get(v3_list).post(v3_create),
        )
        .route(
            "/v3/applications/{client_key}/subscriptions/{id}",
            get(v3_get).delete(v3_delete),
        )
        .route(
            "/v3/applications/{client_key}/subscriptions/{id}/test-notifications",
            post(v3_test),
        )
}

/// The client id of a valid client-credentials token in `Authorization: Bearer`, when it
/// is the application `client_key`; otherwise the 401 / 403 to answer.
fn application(app: &App, headers: &HeaderMap, client_key: &str) -> Result<(), Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let s = app.lock();
    let record = token.as_deref().and_then(|t| s.access_valid(t));
    match record {
        None => Err(json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "unauthorized", "error_description": "Full authentication is required to access this resource"}),
        )),
        Some(r) if matches!(r.owner, Owner::App) && r.client_id == client_key => Ok(()),
        Some(_) => Err(json_response(
            StatusCode::FORBIDDEN,
            &json!({"error": "forbidden", "error_description": "application subscriptions need this application's client-credentials token"}),
        )),
    }
}

fn v3_json(s: &WebhookSubscription, created_at: &str) -> serde_json::Value {
    json!({
        "id": s.id,
        "name": s.name,
        "delivery": {"version": "2.0.0", "url": s.url},
        "trigger_on": s.trigger_on,
        "scope": {"domain": "application", "id": s.client_key},
        "created_by": {"type": "application", "id": s.client_key},
        "created_at": created_at,
    })
}

#[derive(Deserialize)]
struct V3Delivery {
    version: String,
    url: String,
}

#[derive(Deserialize)]
struct V3Subscription {
    name: String,
    trigger_on: String,
    delivery: V3Delivery,
}

async fn v3_create(
    AxState(app): AxState<App>,
    Path(client_key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = application(&app, &headers, &client_key) {
        return r;
    }
    let invalid = |msg: &str| {
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({"errors": [{"code": "NOT_VALID", "message": msg}]}),
        )
    };
    let Ok(new) = serde_json::from_slice::<V3Subscription>(&body) else {
        return invalid("name, trigger_on and delivery {version, url} are required");
    };
    if new.name.is_empty() || new.trigger_on.is_empty() || new.delivery.version.is_empty() {
        return invalid("name, trigger_on and delivery.version must not be empty");
    }
    let mut s = app.lock();
    let created_at = fmt_millis(s.now());
    match s
        .webhooks
        .add(&new.name, &client_key, &new.trigger_on, &new.delivery.url)
    {
        Some(subscription) => json_response(StatusCode::OK, &v3_json(&subscription, &created_at)),
        None => invalid("delivery.url must be https, or http to a loopback host, without a query"),
    }
}

async fn v3_list(
    AxState(app): AxState<App>,
    Path(client_key): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = application(&app, &headers, &client_key) {
        return r;
    }
    let s = app.lock();
    let now = fmt_millis(s.now());
    let list: Vec<_> = s
        .webhooks
        .subscriptions
        .iter()
        .filter(|sub| sub.client_key == client_key)
        .map(|sub| v3_json(sub, &now))
        .collect();
    json_response(StatusCode::OK, &json!(list))
}

fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": "not_found", "error_description": "no such subscription"}),
    )
}

async fn v3_get(
    AxState(app): AxState<App>,
    Path((client_key, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = application(&app, &headers, &client_key) {
        return r;
    }
    let s = app.lock();
    let now = fmt_millis(s.now());
    match s
        .webhooks
        .subscriptions
        .iter()
        .find(|sub| sub.id == id && sub.client_key == client_key)
    {
        Some(sub) => json_response(StatusCode::OK, &v3_json(sub, &now)),
        None => not_found(),
    }
}

async fn v3_delete(
    AxState(app): AxState<App>,
    Path((client_key, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = application(&app, &headers, &client_key) {
        return r;
    }
    let mut s = app.lock();
    let before = s.webhooks.subscriptions.len();
    s.webhooks
        .subscriptions
        .retain(|sub| !(sub.id == id && sub.client_key == client_key));
    if s.webhooks.subscriptions.len() == before {
        return not_found();
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn v3_test(
    AxState(app): AxState<App>,
    Path((client_key, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = application(&app, &headers, &client_key) {
        return r;
    }
    let (delivery_id, created_at) = {
        let mut s = app.lock();
        let Some(subscription) = s
            .webhooks
            .subscriptions
            .iter()
            .find(|sub| sub.id == id && sub.client_key == client_key)
            .cloned()
        else {
            return not_found();
        };
        let at = fmt_millis(s.now());
        (s.webhooks.queue_test(&subscription, &at), at)
    };
    deliver(&app, vec![delivery_id.clone()]);
    json_response(
        StatusCode::OK,
        &json!([{"delivery_id": delivery_id, "created_at": created_at}]),
    )
}

async fn public_key() -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        WEBHOOK_PUBLIC_KEY_PEM,
    )
        .into_response()
}

#[derive(Deserialize)]
struct NewSubscription {
    url: String,
    #[serde(default)]
    trigger_on: Option<String>,
}

async fn subscribe(AxState(app): AxState<App>, body: Bytes) -> Response {
    let bad = |msg: &str| {
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_request", "error_description": msg}),
        )
    };
    let Ok(new) = serde_json::from_slice::<NewSubscription>(&body) else {
        return bad("expected {\"url\": \"http://127.0.0.1:<port>/wise/webhooks\"}");
    };
    if new
        .trigger_on
        .as_deref()
        .is_some_and(|t| t != USER_STATE_CHANGE)
    {
        return bad("the emulator delivers only users#state-change");
    }
    match app.lock().webhooks.subscribe(&new.url) {
        Some(subscription) => json_response(StatusCode::CREATED, &json!(subscription)),
        None => bad("url must be https, or http to a loopback host, without a query"),
    }
}

async fn list_subscriptions(AxState(app): AxState<App>) -> Response {
    json_response(StatusCode::OK, &json!(app.lock().webhooks.subscriptions()))
}

async fn list_deliveries(AxState(app): AxState<App>) -> Response {
    json_response(StatusCode::OK, &json!(app.lock().webhooks.deliveries()))
}

async fn deliver_due_route(AxState(app): AxState<App>) -> Response {
    let sent = deliver_due(&app).await;
    json_response(StatusCode::OK, &json!({"sent": sent}))
}

async fn redeliver_route(AxState(app): AxState<App>, Path(id): Path<String>) -> Response {
    match redeliver(&app, &id).await {
        Ok(status) => json_response(
            StatusCode::OK,
            &json!({"delivery_id": id, "status": status}),
        ),
        Err(e) => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "unknown_delivery", "error_description": e.to_string()}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    #[test]
    fn signatures_verify_with_the_published_test_key_and_not_with_a_changed_body() {
        let body = br#"{"event_type":"users#state-change"}"#;
        let signature = STANDARD.decode(sign(body)).unwrap();
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, SIGNER.public());
        assert!(public.verify(body, &signature).is_ok());
        assert!(public.verify(b"{}", &signature).is_err());
        // The published PEM is the public half of the signing key (its DER ends with the
        // key's RSAPublicKey).
        let spki: String = WEBHOOK_PUBLIC_KEY_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let spki = STANDARD.decode(spki).unwrap();
        assert!(spki.ends_with(SIGNER.public().as_ref()));
    }

    #[test]
    fn retries_follow_wises_schedule() {
        let minutes: Vec<u64> = (1..=12).map(|a| retry_delay(a).as_secs() / 60).collect();
        assert_eq!(minutes, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1440]);
        let mut registry = Registry::default();
        let sub = registry.subscribe("http://127.0.0.1:9/h").unwrap();
        let id = registry.queue_test(&sub, "2026-01-01T00:00:00Z");
        let t0 = SystemTime::UNIX_EPOCH;
        registry.record(&id, Some(503), t0);
        assert_eq!(registry.deliveries[0].next_due, Some(t0 + retry_delay(1)));
        registry.record(&id, Some(200), t0);
        assert_eq!(registry.deliveries[0].next_due, None);
        for _ in 3..MAX_ATTEMPTS {
            registry.record(&id, None, t0);
        }
        assert_eq!(registry.deliveries[0].attempts, MAX_ATTEMPTS - 1);
        assert!(registry.deliveries[0].next_due.is_some());
        registry.record(&id, None, t0);
        assert_eq!(
            registry.deliveries[0].next_due, None,
            "the 25th attempt is the last"
        );
    }

    #[test]
    fn only_https_or_loopback_urls_without_query_are_accepted() {
        for good in [
            "http://127.0.0.1:8080/wise/webhooks",
            "http://localhost/hook",
            "https://hooks.example.com/wise",
        ] {
            assert!(acceptable_url(good), "{good}");
        }
        for bad in [
            "http://hooks.example.com/wise",
            "https://hooks.example.com/wise?x=1",
            "ftp://127.0.0.1/x",
            "not a url",
        ] {
            assert!(!acceptable_url(bad), "{bad}");
        }
    }
}
