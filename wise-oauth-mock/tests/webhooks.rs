//! Webhooks: the application subscription API (client-credentials token), signed
//! deliveries to a receiver on loopback, test notifications, redelivery, and which user
//! actions send a webhook.

mod common;

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use common::{http, link, start, token};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wise_oauth_mock::{MockWiseHandle, DEMO_CLIENT_ID};

/// One delivery as the receiver saw it: headers of interest and the raw body.
#[derive(Debug, Clone)]
struct Received {
    signature: Option<String>,
    delivery_id: Option<String>,
    test: bool,
    body: String,
}

/// A receiver on loopback that records every delivery and answers `status`.
async fn receiver(status: u16) -> (String, Arc<Mutex<Vec<Received>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let log = log.clone();
            async move {
                let text = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                log.lock().unwrap().push(Received {
                    signature: text("x-signature-sha256"),
                    delivery_id: text("x-delivery-id"),
                    test: text("x-test-notification").as_deref() == Some("true"),
                    body,
                });
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn app_token(wise: &MockWiseHandle) -> String {
    let (status, body) = token(wise, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK);
    body["access_token"].as_str().unwrap().to_owned()
}

fn subscriptions_url(wise: &MockWiseHandle, client_key: &str) -> String {
    format!(
        "{}/v3/applications/{client_key}/subscriptions",
        wise.base_url()
    )
}

#[tokio::test]
async fn the_application_api_needs_the_applications_own_token() {
    let wise = start().await;
    let client = http();
    let body = json!({"name": "n", "trigger_on": "users#state-change",
                      "delivery": {"version": "2.0.0", "url": "https://hooks.example.com/w"}});
    let url = subscriptions_url(&wise, DEMO_CLIENT_ID);
    let res = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (user_access, _) = link(&wise, "alice@example.com").await;
    let res = client
        .post(&url)
        .bearer_auth(&user_access)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "a user token");
    let app = app_token(&wise).await;
    let res = client
        .post(subscriptions_url(&wise, "another-app"))
        .bearer_auth(&app)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "another application");
    for bad in [
        json!({"trigger_on": "users#state-change", "delivery": {"version": "2.0.0", "url": "https://h.example.com/"}}),
        json!({"name": "n", "trigger_on": "users#state-change", "delivery": {"version": "2.0.0", "url": "http://h.example.com/"}}),
        json!({"name": "n", "trigger_on": "users#state-change", "delivery": {"version": "2.0.0", "url": "https://h.example.com/?q=1"}}),
    ] {
        let res = client
            .post(&url)
            .bearer_auth(&app)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    assert!(wise.webhook_deliveries().is_empty());
    let res = client.get(&url).bearer_auth(&app).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!([]));
}

#[tokio::test]
async fn subscriptions_are_created_listed_tested_and_deleted() {
    let wise = start().await;
    let (hook, seen) = receiver(200).await;
    let client = http();
    let app = app_token(&wise).await;
    let url = subscriptions_url(&wise, DEMO_CLIENT_ID);
    let created: Value = client
        .post(&url)
        .bearer_auth(&app)
        .json(
            &json!({"name": "Link events", "trigger_on": "users#state-change",
                      "delivery": {"version": "2.0.0", "url": hook}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["scope"],
        json!({"domain": "application", "id": DEMO_CLIENT_ID})
    );
    assert_eq!(created["delivery"]["url"], hook.as_str());
    let listed: Value = client
        .get(&url)
        .bearer_auth(&app)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let tests: Value = client
        .post(format!("{url}/{id}/test-notifications"))
        .bearer_auth(&app)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    wise.wait_for_webhook_deliveries(1).await;
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert!(got[0].test);
    assert_eq!(
        got[0].delivery_id.as_deref(),
        tests[0]["delivery_id"].as_str()
    );
    assert!(
        got[0].body.contains(r#""id":0"#),
        "dummy data: {}",
        got[0].body
    );
    assert!(got[0].signature.is_some());

    let res = client
        .delete(format!("{url}/{id}"))
        .bearer_auth(&app)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = client
        .get(format!("{url}/{id}"))
        .bearer_auth(&app)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    wise.deactivate("alice@example.com");
    assert_eq!(
        wise.webhook_deliveries().len(),
        1,
        "no subscription, no delivery"
    );
}

#[tokio::test]
async fn a_deactivation_is_delivered_signed_revokes_tokens_and_can_be_redelivered() {
    let wise = start().await;
    let (hook, seen) = receiver(500).await;
    let (access, _refresh) = link(&wise, "alice@example.com").await;
    assert!(wise
        .subscribe_webhooks("http://example.com/plain-http")
        .is_none());
    let subscription = wise.subscribe_webhooks(&hook).unwrap();
    wise.revoke("bob@example.com");
    wise.reclaim("bob@example.com");
    assert!(
        wise.webhook_deliveries().is_empty(),
        "revoke and reclaim send none"
    );

    wise.deactivate("alice@example.com");
    assert!(
        !wise.access_token_is_valid(&access),
        "deactivation revokes tokens"
    );
    wise.wait_for_webhook_deliveries(1).await;
    let deliveries = wise.webhook_deliveries();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, Some(500));
    assert_eq!(deliveries[0].subscription_id, subscription.id);
    let first = seen.lock().unwrap()[0].clone();
    let event: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(event["event_type"], "users#state-change");
    assert_eq!(
        event["data"]["resource"],
        json!({"id": 10000001, "type": "user"})
    );
    assert_eq!(event["data"]["current_state"], "DEACTIVATED");
    assert_eq!(
        first.signature.as_deref(),
        Some(wise.sign_webhook(first.body.as_bytes()).as_str())
    );
    assert!(!first.test);

    // A redelivery is the same request byte for byte.
    assert_eq!(
        wise.redeliver_webhook(&deliveries[0].delivery_id).await,
        Some(500)
    );
    let again = seen.lock().unwrap()[1].clone();
    assert_eq!(again.body, first.body);
    assert_eq!(again.signature, first.signature);
    assert_eq!(again.delivery_id, first.delivery_id);
    assert_eq!(wise.webhook_deliveries()[0].attempts, 2);

    // The public key is served for apps under test.
    let pem = http()
        .get(format!("{}/__mock/webhook-key", wise.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(pem, wise_oauth_mock::WEBHOOK_PUBLIC_KEY_PEM);
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
}
