//! Change notifications over Redis pub/sub.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;
use wise_oauth_core::{ChangeEvent, LinkChange, LinkChanges, StoreError};

use crate::error::{op_error, SetupError};
use crate::store::RedisTokenStore;

/// How many changes a slow subscriber may fall behind before it counts as having missed
/// some.
const CAPACITY: usize = 4096;
/// After this long without a message the subscribed connection is pinged.
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// How long the ping (and each reconnection attempt) may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnection back-off: from the first to the last, doubling.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// [`LinkChanges`] over Redis pub/sub, for the instances sharing a [`RedisTokenStore`].
///
/// - `publish` is one `PUBLISH {prefix}changes payload` on the store's connection; the
///   payload is [`LinkChange::to_payload`] (the link key and version, no token).
/// - A pub/sub connection of its own `SUBSCRIBE`s to `{prefix}changes`, in a background
///   task that ends when the last clone is dropped. When that connection is lost (or does
///   not answer a ping after 30 s of silence) the task reconnects with a back-off from
///   50 ms to 5 s and, once subscribed again, sends [`ChangeEvent::Missed`]: the instances
///   drop their cached links, as messages published meanwhile were lost. Until then they
///   fall back to their revalidation period.
///
/// ```no_run
/// use wise_oauth_redis::{redis, RedisLinkChanges, RedisTokenStore};
///
/// # async fn run() -> Result<(), wise_oauth_redis::SetupError> {
/// let url = "redis://127.0.0.1:6379";
/// let store = RedisTokenStore::connect(url).await?;
/// let client = redis::Client::open(url).map_err(wise_oauth_redis::SetupError::Connect)?;
/// let changes = RedisLinkChanges::listen(client, &store).await?;
/// // WiseOAuth::builder(config).store(store).changes(changes)
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisLinkChanges {
    shared: Arc<Shared>,
}

struct Shared {
    conn: ConnectionManager,
    channel: String,
    sender: broadcast::Sender<ChangeEvent>,
    listener: AbortHandle,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl fmt::Debug for RedisLinkChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the client: its connection info may hold a password.
        f.debug_struct("RedisLinkChanges")
            .field("channel", &self.shared.channel)
            .finish_non_exhaustive()
    }
}

impl RedisLinkChanges {
    /// Opens a pub/sub connection with `client` (the same server as the store),
    /// subscribes to the store's channel and starts the background task. Publishes through
    /// the store's connection. Must be called inside a Tokio runtime.
    pub async fn listen(
        client: redis::Client,
        store: &RedisTokenStore,
    ) -> Result<Self, SetupError> {
        let channel = format!("{}changes", store.key_prefix());
        let subscription = subscribe(&client, &channel)
            .await
            .map_err(SetupError::Connect)?;
        let sender = broadcast::channel(CAPACITY).0;
        let task = tokio::spawn(run(client, channel.clone(), sender.clone(), subscription));
        Ok(Self {
            shared: Arc::new(Shared {
                conn: store.connection().clone(),
                channel,
                sender,
                listener: task.abort_handle(),
            }),
        })
    }

    /// The pub/sub channel.
    pub fn channel(&self) -> &str {
        &self.shared.channel
    }
}

#[async_trait]
impl LinkChanges for RedisLinkChanges {
    async fn publish(&self, change: &LinkChange) -> Result<(), StoreError> {
        redis::cmd("PUBLISH")
            .arg(&self.shared.channel)
            .arg(change.to_payload())
            .query_async::<i64>(&mut self.shared.conn.clone())
            .await
            .map(drop)
            .map_err(op_error)
    }

    fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.shared.sender.subscribe()
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<(PubSubSink, PubSubStream)> {
    let (mut sink, stream) = client.get_async_pubsub().await?.split();
    sink.subscribe(channel).await?;
    Ok((sink, stream))
}

/// Forwards messages; on a lost connection resubscribes (with back-off) and sends `Missed`
/// once subscribed again.
async fn run(
    client: redis::Client,
    channel: String,
    sender: broadcast::Sender<ChangeEvent>,
    mut subscription: (PubSubSink, PubSubStream),
) {
    loop {
        forward(&mut subscription, &sender).await;
        tracing::warn!("link change subscription lost its connection; reconnecting");
        let mut backoff = FIRST_BACKOFF;
        subscription = loop {
            match tokio::time::timeout(CHECK_TIMEOUT, subscribe(&client, &channel)).await {
                Ok(Ok(subscription)) => break subscription,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "link change subscription cannot reconnect")
                }
                Err(_) => tracing::warn!("link change subscription reconnection timed out"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        };
        tracing::info!("link change subscription reconnected; cached links are dropped");
        let _ = sender.send(ChangeEvent::Missed);
    }
}

/// Forwards messages until the connection is lost.
async fn forward(
    (sink, stream): &mut (PubSubSink, PubSubStream),
    sender: &broadcast::Sender<ChangeEvent>,
) {
    loop {
        match tokio::time::timeout(IDLE_CHECK, stream.next()).await {
            Ok(Some(message)) => {
                let change = std::str::from_utf8(message.get_payload_bytes())
                    .ok()
                    .and_then(LinkChange::from_payload);
                if let Some(change) = change {
                    let _ = sender.send(ChangeEvent::Changed(change));
                }
            }
            Ok(None) => return,
            Err(_silence) => {
                let pong = tokio::time::timeout(CHECK_TIMEOUT, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    return;
                }
            }
        }
    }
}
