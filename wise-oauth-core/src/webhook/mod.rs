//! Wise's webhooks for linked accounts: verify a delivery, drop duplicates, and act on the
//! events that concern links.
//!
//! Wise signs every delivery: `X-Signature-SHA256` is the base64 RSASSA-PKCS1-v1_5 /
//! SHA-256 signature of the raw body, made with Wise's key of the environment
//! ([`WebhookKey`]). [`WiseOAuth::handle_webhook`](crate::WiseOAuth::handle_webhook)
//! checks it over the bytes exactly as received, before reading anything else.
//!
//! The one event that concerns links is `users#state-change` with `current_state`
//! `DEACTIVATED`: Wise has revoked every token of that Wise user. Every link of that user
//! that was granted before the event is marked as needing a re-link (the events hook gets
//! [`WiseEvent::RelinkRequired`](crate::WiseEvent::RelinkRequired), the caches of every
//! instance drop the link through the change feed). Links are tied to Wise users by
//! [`LinkRecord::wise_user_id`](crate::LinkRecord::wise_user_id), learnt from `GET /v1/me`
//! at link time.
//!
//! Wise does not promise order or single delivery, so:
//! - a delivery id (`X-Delivery-Id`) already acted on is answered at once
//!   ([`WebhookOutcome::Duplicate`]);
//! - handling is idempotent and ordered by `occurred_at`: a deactivation marks only links
//!   that are still active and were granted before it (allowing 5 minutes of clock
//!   difference between Wise and this server), so a replay changes nothing and a late
//!   event never undoes a newer grant (a user who re-linked after the event stays linked).

mod dedup;
mod event;
mod key;

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

pub use key::{InvalidWebhookKey, WebhookKey};

use self::dedup::SeenDeliveries;
use self::event::Event;
use crate::config::Environment;
use crate::ids::LinkNamespace;
use crate::manager::{TokenError, TokenManager};
use crate::store::StoreError;

/// The largest webhook body accepted, in bytes (Wise's events are a few hundred bytes).
pub const MAX_WEBHOOK_BODY: usize = 64 * 1024;

/// How many delivery ids each instance remembers by default
/// ([`WiseOAuthBuilder::webhook_dedup_capacity`](crate::WiseOAuthBuilder::webhook_dedup_capacity)).
pub const DEFAULT_WEBHOOK_DEDUP_CAPACITY: usize = 10_000;

/// The most delivery ids the builder accepts to remember.
pub(crate) const MAX_WEBHOOK_DEDUP_CAPACITY: usize = 1_000_000;

/// How long a delivery is processed before Wise is answered "try again" (Wise waits 5 s
/// for an answer); the processing itself goes on.
const PROCESSING_DEADLINE: Duration = Duration::from_secs(4);

/// One delivery as received: the raw body and the headers Wise sends with it.
///
/// ```
/// use wise_oauth_core::WebhookDelivery;
/// let body = br#"{"event_type":"users#state-change","data":{}}"#;
/// let delivery = WebhookDelivery::new(body)
///     .signature(Some("c2lnbmF0dXJl"))
///     .delivery_id(Some("6f1c1d2e-0000-4000-8000-000000000001"))
///     .test_notification(false);
/// assert_eq!(delivery.body(), body);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct WebhookDelivery<'a> {
    body: &'a [u8],
    signature: Option<&'a str>,
    delivery_id: Option<&'a str>,
    test_notification: bool,
}

impl<'a> WebhookDelivery<'a> {
    /// A delivery of `body`, the request body exactly as received (never re-serialized).
    pub fn new(body: &'a [u8]) -> Self {
        Self {
            body,
            signature: None,
            delivery_id: None,
            test_notification: false,
        }
    }

    /// The `X-Signature-SHA256` header, if present.
    #[must_use]
    pub fn signature(mut self, value: Option<&'a str>) -> Self {
        self.signature = value;
        self
    }

    /// The `X-Delivery-Id` header, if present.
    #[must_use]
    pub fn delivery_id(mut self, value: Option<&'a str>) -> Self {
        self.delivery_id = value;
        self
    }

    /// Whether `X-Test-Notification: true` was sent (a test from Wise's subscription page:
    /// dummy data, verified but not acted on).
    #[must_use]
    pub fn test_notification(mut self, test: bool) -> Self {
        self.test_notification = test;
        self
    }

    /// The raw body.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

/// What a verified delivery led to. Answer Wise with 200 for each of them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookOutcome {
    /// This instance already acted on this `X-Delivery-Id`: nothing done.
    Duplicate,
    /// `X-Test-Notification: true`: verified, not acted on.
    TestNotification,
    /// A valid event that does not concern links (another type, another state), or one
    /// the library does not act on: nothing done.
    Ignored,
    /// `users#state-change` → `DEACTIVATED` for `wise_user_id`: `relinked` links (granted
    /// before the event and still active) were marked as needing a re-link; 0 when a
    /// previous delivery or a newer grant already settled them.
    UserDeactivated {
        /// The Wise user id (`data.resource.id`).
        wise_user_id: u64,
        /// How many links this delivery marked.
        relinked: usize,
    },
}

/// Why a delivery was not accepted. A rejected delivery changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// No `X-Signature-SHA256` header (400).
    #[error("the delivery has no X-Signature-SHA256 header")]
    MissingSignature,
    /// The signature is not valid base64, or no configured key verifies it over the body
    /// (400). Also when no key is configured (a custom environment without
    /// [`webhook_keys`](crate::WiseOAuthBuilder::webhook_keys)).
    #[error("the webhook signature does not verify against a configured key")]
    InvalidSignature,
    /// The body is larger than [`MAX_WEBHOOK_BODY`] (413).
    #[error("the webhook body is too large")]
    TooLarge,
    /// Signed, but not a Wise event (no JSON object with an `event_type`) (400).
    #[error("the webhook body is not a Wise event")]
    MalformedEvent,
    /// The token store cannot find links by Wise user
    /// ([`TokenStore::links_of_wise_user`](crate::TokenStore::links_of_wise_user)) (500).
    #[error("the token store cannot find the links of a Wise user")]
    Unsupported,
    /// The store (or a link's lease) is not available now (503); Wise delivers again
    /// later, and handling the same event again is harmless.
    #[error("the links cannot be updated right now")]
    Unavailable {
        /// When to expect success, if known.
        retry_after: Option<Duration>,
    },
}

impl WebhookError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingSignature | Self::InvalidSignature | Self::MalformedEvent => 400,
            Self::TooLarge => 413,
            Self::Unsupported => 500,
            Self::Unavailable { .. } => 503,
        }
    }

    /// A stable machine-readable reason (`missing_signature`, `invalid_signature`,
    /// `too_large`, `malformed_event`, `unsupported_store`, `unavailable`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::InvalidSignature => "invalid_signature",
            Self::TooLarge => "too_large",
            Self::MalformedEvent => "malformed_event",
            Self::Unsupported => "unsupported_store",
            Self::Unavailable { .. } => "unavailable",
        }
    }
}

/// The keys deliveries are checked against by default: the environment's own.
pub(crate) fn default_keys(environment: &Environment) -> Vec<WebhookKey> {
    match environment {
        Environment::Production => vec![WebhookKey::production()],
        Environment::Sandbox => vec![WebhookKey::sandbox()],
        _ => Vec::new(),
    }
}

/// The webhook handler of one handle: its keys and the delivery ids it acted on.
#[derive(Debug)]
pub(crate) struct Webhooks {
    keys: Vec<WebhookKey>,
    seen: Arc<SeenDeliveries>,
}

impl Webhooks {
    pub(crate) fn new(keys: Vec<WebhookKey>, dedup_capacity: usize) -> Self {
        Self {
            keys,
            seen: Arc::new(SeenDeliveries::new(dedup_capacity)),
        }
    }

    /// Verifies the signature over the raw body against every configured key.
    fn verify(&self, delivery: &WebhookDelivery<'_>) -> Result<(), WebhookError> {
        if delivery.body.len() > MAX_WEBHOOK_BODY {
            return Err(WebhookError::TooLarge);
        }
        let signature = delivery.signature.ok_or(WebhookError::MissingSignature)?;
        let signature = key::decode_signature(signature).ok_or(WebhookError::InvalidSignature)?;
        if self.keys.is_empty() {
            tracing::warn!("a webhook arrived but no webhook key is configured (custom environment): set WiseOAuthBuilder::webhook_keys");
            return Err(WebhookError::InvalidSignature);
        }
        if self
            .keys
            .iter()
            .any(|key| key.verifies(delivery.body, &signature))
        {
            Ok(())
        } else {
            Err(WebhookError::InvalidSignature)
        }
    }

    /// Handles one delivery (see the module docs).
    pub(crate) async fn handle(
        &self,
        manager: &TokenManager,
        namespace: &LinkNamespace,
        delivery: &WebhookDelivery<'_>,
    ) -> Result<WebhookOutcome, WebhookError> {
        if let Err(e) = self.verify(delivery) {
            tracing::warn!(reason = e.reason(), "webhook delivery rejected");
            return Err(e);
        }
        let delivery_id = delivery.delivery_id.map(str::trim).unwrap_or_default();
        if self.seen.contains(delivery_id) {
            tracing::debug!(delivery_id, "webhook delivery already handled");
            return Ok(WebhookOutcome::Duplicate);
        }
        if delivery.test_notification {
            self.seen.remember(delivery_id);
            return Ok(WebhookOutcome::TestNotification);
        }
        let Some(event) = Event::parse(delivery.body) else {
            tracing::warn!(delivery_id, "signed webhook body is not a Wise event");
            return Err(WebhookError::MalformedEvent);
        };
        let Some(wise_user_id) = event.deactivated_user() else {
            tracing::debug!(delivery_id, event_type = %event.event_type, "webhook event ignored");
            self.seen.remember(delivery_id);
            return Ok(WebhookOutcome::Ignored);
        };
        let occurred_at = event.occurred_at.unwrap_or_else(|| manager.clock().now());
        // In a task of its own: it finishes (and remembers the delivery) even when Wise
        // stops waiting or the request is dropped.
        let (manager, namespace) = (manager.clone(), namespace.clone());
        let (seen, id) = (self.seen.clone(), delivery_id.to_owned());
        let task = tokio::spawn(async move {
            let result = deactivate(&manager, &namespace, wise_user_id, occurred_at).await;
            match &result {
                Ok(relinked) => {
                    seen.remember(&id);
                    tracing::info!(wise_user_id, relinked, delivery_id = %id, "Wise user deactivated: links need a re-link");
                }
                Err(e) => {
                    tracing::warn!(wise_user_id, delivery_id = %id, error = %e, "webhook deactivation not applied; Wise will deliver again");
                }
            }
            result
        });
        match tokio::time::timeout(PROCESSING_DEADLINE, task).await {
            Ok(Ok(result)) => result.map(|relinked| WebhookOutcome::UserDeactivated {
                wise_user_id,
                relinked,
            }),
            Ok(Err(e)) => {
                tracing::error!(panicked = e.is_panic(), "webhook task failed");
                Err(WebhookError::Unavailable { retry_after: None })
            }
            Err(_elapsed) => Err(WebhookError::Unavailable {
                retry_after: Some(PROCESSING_DEADLINE),
            }),
        }
    }
}

/// Marks every link of `wise_user_id` granted before `occurred_at`; how many were marked.
async fn deactivate(
    manager: &TokenManager,
    namespace: &LinkNamespace,
    wise_user_id: u64,
    occurred_at: std::time::SystemTime,
) -> Result<usize, WebhookError> {
    let users = manager
        .store()
        .links_of_wise_user(namespace.environment(), namespace.client_id(), wise_user_id)
        .await
        .map_err(|e| match e {
            StoreError::Unsupported(_) => WebhookError::Unsupported,
            _ => WebhookError::Unavailable {
                retry_after: Some(Duration::from_secs(1)),
            },
        })?;
    let mut relinked = 0;
    for user in users {
        let key = namespace.key(&user);
        match manager
            .relink_after_deactivation(&key, wise_user_id, occurred_at)
            .await
        {
            Ok(true) => relinked += 1,
            Ok(false) => {}
            Err(TokenError::Corrupt) => {
                tracing::error!(user = %user, "stored link cannot be read; left as it is");
            }
            Err(e) => {
                return Err(WebhookError::Unavailable {
                    retry_after: e.retry_after(),
                })
            }
        }
    }
    Ok(relinked)
}
