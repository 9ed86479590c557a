//! `POST {prefix}/webhooks`: Wise's webhook deliveries.

use http::StatusCode;
use serde_json::json;

use super::reply::Reply;
use super::request::RequestInfo;
use crate::{WebhookDelivery, WebhookError, WebhookOutcome, WiseOAuth, MAX_WEBHOOK_BODY};

/// `POST {prefix}/webhooks`: hands a delivery from Wise to
/// [`WiseOAuth::handle_webhook`] with its raw `body` (at most [`MAX_WEBHOOK_BODY`] bytes)
/// and its `X-Signature-SHA256`, `X-Delivery-Id` and `X-Test-Notification` headers.
///
/// Answers `200 {"ok": true, "outcome": ...}` (`duplicate`, `test_notification`,
/// `ignored` or `user_deactivated` with `relinked`); `400 {"error": "missing_signature" |
/// "invalid_signature" | "malformed_event"}` for a delivery that changed nothing; 413 for
/// a larger body; 503 with `Retry-After` when the store is unavailable (Wise delivers
/// again); 500 when the store cannot find links by Wise user. Takes no app user and no
/// cross-site check: Wise calls it, and the signature is its authentication.
pub async fn webhooks(wise: &WiseOAuth, req: &RequestInfo, body: &[u8]) -> Reply {
    if body.len() > MAX_WEBHOOK_BODY {
        return failure(&WebhookError::TooLarge);
    }
    let delivery = WebhookDelivery::new(body)
        .signature(req.webhook_signature())
        .delivery_id(req.delivery_id())
        .test_notification(req.is_test_notification());
    match wise.handle_webhook(&delivery).await {
        Ok(outcome) => {
            let body = match outcome {
                WebhookOutcome::Duplicate => json!({"ok": true, "outcome": "duplicate"}),
                WebhookOutcome::TestNotification => {
                    json!({"ok": true, "outcome": "test_notification"})
                }
                WebhookOutcome::UserDeactivated { relinked, .. } => {
                    json!({"ok": true, "outcome": "user_deactivated", "relinked": relinked})
                }
                _ => json!({"ok": true, "outcome": "ignored"}),
            };
            Reply::json(StatusCode::OK, &body)
        }
        Err(e) => failure(&e),
    }
}

fn failure(error: &WebhookError) -> Reply {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reply = Reply::json(status, &json!({"ok": false, "error": error.reason()}));
    match error {
        WebhookError::Unavailable { retry_after } => {
            let secs = retry_after.map_or(5, |d| d.as_secs().max(1));
            reply.retry_after(secs)
        }
        _ => reply,
    }
}
