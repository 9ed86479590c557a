//! Change notifications over PostgreSQL `LISTEN`/`NOTIFY`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;
use wise_oauth_core::{ChangeEvent, LinkChange, LinkChanges, StoreError};

use crate::common::{op_error, SetupError};
use crate::postgres::PostgresTokenStore;

/// How many changes a slow subscriber may fall behind before it counts as having missed
/// some.
const CAPACITY: usize = 4096;
/// After this long without a notification the listening connection is checked.
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// How long the check (and each reconnection attempt) may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnection back-off: from the first to the last, doubling.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// PostgreSQL channel names are identifiers: at most 63 bytes.
const MAX_CHANNEL_LEN: usize = 63;

/// [`LinkChanges`] over PostgreSQL `LISTEN`/`NOTIFY`, for the instances sharing a
/// [`PostgresTokenStore`].
///
/// - `publish` is one `SELECT pg_notify(channel, payload)` on the store's pool; the payload
///   is [`LinkChange::to_payload`] (the link key and version, no token).
/// - One connection of its own (not from the store's pool) `LISTEN`s on the channel, in a
///   background task that ends when the last clone is dropped. When that connection is
///   lost (or fails the check made after 30 s of silence) the task reconnects with a
///   back-off from 50 ms to 5 s and, once it listens again, sends
///   [`ChangeEvent::Missed`]: the instances drop their cached links, as notifications sent
///   meanwhile were lost. Until then they fall back to their revalidation period.
/// - The channel is `{schema}.{table prefix}changes` (a hash of it when longer than 63
///   bytes), so stores in different schemas or with different prefixes do not hear each
///   other.
///
/// ```no_run
/// use wise_oauth_sqlx::{PostgresLinkChanges, PostgresTokenStore};
///
/// # async fn run() -> Result<(), wise_oauth_sqlx::SetupError> {
/// let store = PostgresTokenStore::connect("postgres://app@db.internal/app").await?;
/// let changes = PostgresLinkChanges::listen(&store).await?;
/// // WiseOAuth::builder(config).store(store).changes(changes)
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresLinkChanges {
    shared: Arc<Shared>,
}

struct Shared {
    pool: PgPool,
    channel: String,
    sender: broadcast::Sender<ChangeEvent>,
    listener: AbortHandle,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl fmt::Debug for PostgresLinkChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresLinkChanges")
            .field("channel", &self.shared.channel)
            .finish_non_exhaustive()
    }
}

impl PostgresLinkChanges {
    /// Opens the listening connection (with the store's connect options), `LISTEN`s on the
    /// store's channel and starts the background task. Must be called inside a Tokio
    /// runtime.
    pub async fn listen(store: &PostgresTokenStore) -> Result<Self, SetupError> {
        let pool = store.pool().clone();
        let channel = channel_name(store.schema_name(), store.table_prefix());
        // A pool of one connection of its own: the store's pool keeps all its connections,
        // and closing it does not end the listener.
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(CHECK_TIMEOUT)
            .connect_lazy_with((*pool.connect_options()).clone());
        let listener = listen_on(&listen_pool, &channel)
            .await
            .map_err(SetupError::Connect)?;
        let sender = broadcast::channel(CAPACITY).0;
        let task = tokio::spawn(run(listen_pool, channel.clone(), sender.clone(), listener));
        Ok(Self {
            shared: Arc::new(Shared {
                pool,
                channel,
                sender,
                listener: task.abort_handle(),
            }),
        })
    }

    /// The notification channel.
    pub fn channel(&self) -> &str {
        &self.shared.channel
    }
}

#[async_trait]
impl LinkChanges for PostgresLinkChanges {
    async fn publish(&self, change: &LinkChange) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.shared.channel)
            .bind(change.to_payload())
            .execute(&self.shared.pool)
            .await
            .map(drop)
            .map_err(op_error)
    }

    fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.shared.sender.subscribe()
    }
}

/// `{schema}.{prefix}changes`, or a stable hash of it (FNV-1a) when too long.
fn channel_name(schema: Option<&str>, prefix: &str) -> String {
    let name = format!("{}.{prefix}changes", schema.unwrap_or(""));
    if name.len() <= MAX_CHANNEL_LEN {
        return name;
    }
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("wise_oauth_changes_{hash:016x}")
}

async fn listen_on(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // We reconnect ourselves, so that "listening again" is known before `Missed` is sent.
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    listener.listen(channel).await?;
    Ok(listener)
}

/// Forwards notifications; on a lost connection reconnects (with back-off) and sends
/// `Missed` once listening again.
async fn run(
    pool: PgPool,
    channel: String,
    sender: broadcast::Sender<ChangeEvent>,
    mut listener: PgListener,
) {
    loop {
        forward(&mut listener, &sender).await;
        tracing::warn!("link change listener lost its connection; reconnecting");
        drop(listener);
        let mut backoff = FIRST_BACKOFF;
        listener = loop {
            match tokio::time::timeout(CHECK_TIMEOUT, listen_on(&pool, &channel)).await {
                Ok(Ok(listener)) => break listener,
                Ok(Err(e)) => tracing::warn!(error = %e, "link change listener cannot reconnect"),
                Err(_) => tracing::warn!("link change listener reconnection timed out"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        };
        tracing::info!("link change listener reconnected; cached links are dropped");
        let _ = sender.send(ChangeEvent::Missed);
    }
}

/// Forwards notifications until the connection is lost.
async fn forward(listener: &mut PgListener, sender: &broadcast::Sender<ChangeEvent>) {
    loop {
        match tokio::time::timeout(IDLE_CHECK, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => {
                if let Some(change) = LinkChange::from_payload(notification.payload()) {
                    let _ = sender.send(ChangeEvent::Changed(change));
                }
            }
            Ok(Ok(None) | Err(_)) => return,
            Err(_silence) => {
                let alive = tokio::time::timeout(
                    CHECK_TIMEOUT,
                    sqlx::query("SELECT 1").execute(&mut *listener),
                )
                .await;
                if !matches!(alive, Ok(Ok(_))) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_fit_an_identifier_and_differ_per_schema_and_prefix() {
        assert_eq!(channel_name(None, "wise_oauth_"), ".wise_oauth_changes");
        assert_eq!(channel_name(Some("app"), ""), "app.changes");
        let long_a = channel_name(Some(&"a".repeat(40)), &"p".repeat(40));
        let long_b = channel_name(Some(&"b".repeat(40)), &"p".repeat(40));
        assert!(long_a.len() <= MAX_CHANNEL_LEN && long_b.len() <= MAX_CHANNEL_LEN);
        assert_ne!(long_a, long_b);
        assert_eq!(long_a, channel_name(Some(&"a".repeat(40)), &"p".repeat(40)));
    }
}
