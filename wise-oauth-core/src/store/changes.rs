//! Change notifications between the instances that share a [`TokenStore`](super::TokenStore).
//!
//! After an instance writes a link (a refresh, a re-link mark, a new link) or deletes it,
//! it announces the change through a [`LinkChanges`]; the other instances drop their cached
//! copy of that link and wake the requests waiting on it, instead of serving the previous
//! access token (which Wise killed with the refresh) until their cache's revalidation
//! period ends.
//!
//! Notifications are best effort: nothing depends on one arriving. A lost or late
//! notification only means that an instance learns of the change at its next revalidation
//! (30 seconds at most), or when Wise rejects the old token, as without notifications.

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::ids::{LinkKey, UserId};
use crate::store::{StoreError, Version};

/// One link was written or deleted by an instance.
///
/// ```
/// use wise_oauth_core::{LinkChange, LinkKey, UserId, Version};
///
/// let key = LinkKey::new("sandbox", "my-client", UserId::new("user-1").unwrap());
/// let change = LinkChange::new(key.clone(), Some(Version::new(7)), 42);
/// let payload = change.to_payload();
/// assert_eq!(LinkChange::from_payload(&payload), Some(change));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkChange {
    key: LinkKey,
    version: Option<Version>,
    origin: u64,
}

/// The wire form of a [`LinkChange`] (short field names: a PostgreSQL notification payload
/// must stay under 8000 bytes).
#[derive(Serialize, Deserialize)]
struct Payload<'a> {
    #[serde(rename = "o")]
    origin: u64,
    #[serde(rename = "v")]
    version: Option<u64>,
    #[serde(rename = "e", borrow)]
    environment: std::borrow::Cow<'a, str>,
    #[serde(rename = "c", borrow)]
    client_id: std::borrow::Cow<'a, str>,
    #[serde(rename = "u", borrow)]
    user: std::borrow::Cow<'a, str>,
}

impl LinkChange {
    /// The link `key` was written at `version`, or deleted (`None`), by the instance
    /// `origin` (a random id per `WiseOAuth` handle, so that an instance can skip its own
    /// announcements).
    pub fn new(key: LinkKey, version: Option<Version>, origin: u64) -> Self {
        Self {
            key,
            version,
            origin,
        }
    }

    /// The link that changed.
    pub fn key(&self) -> &LinkKey {
        &self.key
    }

    /// The version written, or `None` when the link was deleted (unlinked).
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The instance that made the change.
    pub fn origin(&self) -> u64 {
        self.origin
    }

    /// A compact text form (JSON, a few dozen bytes plus the key) for transports that carry
    /// strings, such as PostgreSQL `NOTIFY` or Redis `PUBLISH`. It holds no token.
    pub fn to_payload(&self) -> String {
        let payload = Payload {
            origin: self.origin,
            version: self.version.map(|v| v.0),
            environment: self.key.environment().into(),
            client_id: self.key.client_id().into(),
            user: self.key.user().as_str().into(),
        };
        serde_json::to_string(&payload).unwrap_or_default()
    }

    /// Parses [`to_payload`](Self::to_payload) output; `None` for anything else.
    pub fn from_payload(payload: &str) -> Option<Self> {
        let p: Payload<'_> = serde_json::from_str(payload).ok()?;
        let user = UserId::new(&*p.user).ok()?;
        let version = match p.version {
            Some(0) => return None,
            Some(v) => Some(Version(v)),
            None => None,
        };
        Some(Self {
            key: LinkKey::new(&*p.environment, &*p.client_id, user),
            version,
            origin: p.origin,
        })
    }
}

/// What a subscriber of a [`LinkChanges`] receives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeEvent {
    /// A link changed.
    Changed(LinkChange),
    /// Changes may have been missed (the channel was lost and is back): a subscriber
    /// forgets everything it cached. Send it after the channel listens again, so that no
    /// change falls between the two.
    Missed,
}

/// Carries [`LinkChange`]s between the instances sharing a store: the hook behind
/// [`WiseOAuthBuilder::changes`](crate::WiseOAuthBuilder::changes).
///
/// Built in: [`MemoryLinkChanges`](crate::MemoryLinkChanges) (instances in one process),
/// `PostgresLinkChanges` (`LISTEN`/`NOTIFY`, in `wise-oauth-sqlx`) and `RedisLinkChanges`
/// (pub/sub, in `wise-oauth-redis`). For a store of your own, implement it over any
/// broadcast channel your infrastructure has.
///
/// Contract: best effort. `publish` may fail or be lost; a receiver sees the changes
/// published after it subscribed, by any instance (its own included), in any order, and
/// receives [`ChangeEvent::Missed`] (or lags, which counts the same) when it may have lost
/// some. Delivery is never needed for correctness: the manager still re-reads every cached
/// link after its revalidation period.
///
/// ```
/// use wise_oauth_core::{async_trait, ChangeEvent, LinkChange, LinkChanges, StoreError};
/// use tokio::sync::broadcast;
///
/// /// Every instance in this process, on one channel.
/// #[derive(Debug)]
/// struct Local(broadcast::Sender<ChangeEvent>);
///
/// #[async_trait]
/// impl LinkChanges for Local {
///     async fn publish(&self, change: &LinkChange) -> Result<(), StoreError> {
///         let _ = self.0.send(ChangeEvent::Changed(change.clone())); // no receiver: fine
///         Ok(())
///     }
///
///     fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
///         self.0.subscribe()
///     }
/// }
/// # let _ = Local(broadcast::channel(16).0);
/// ```
#[async_trait]
pub trait LinkChanges: Send + Sync + Debug + 'static {
    /// Announces `change` to every subscriber, in this process and others. Called after
    /// the store write, from a task of its own (a slow channel delays no request).
    async fn publish(&self, change: &LinkChange) -> Result<(), StoreError>;

    /// A receiver of the changes published from now on. Called once per `WiseOAuth`
    /// handle, when it is built.
    fn subscribe(&self) -> broadcast::Receiver<ChangeEvent>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: &str) -> LinkKey {
        LinkKey::new("sandbox", "client \"1\"", UserId::new(user).unwrap())
    }

    #[test]
    fn payloads_round_trip_and_carry_no_more_than_the_key() {
        for change in [
            LinkChange::new(key("u:1/ü"), Some(Version(u64::MAX)), u64::MAX),
            LinkChange::new(key("u"), None, 0),
        ] {
            let payload = change.to_payload();
            assert_eq!(LinkChange::from_payload(&payload), Some(change));
        }
        let long = LinkChange::new(
            key(&"x".repeat(crate::MAX_USER_ID_LEN)),
            Some(Version::new(1)),
            1,
        );
        assert!(long.to_payload().len() < 1000);
    }

    #[test]
    fn foreign_payloads_are_refused() {
        for bad in ["", "{}", "null", r#"{"o":1,"v":0,"e":"a","c":"b","u":"c"}"#] {
            assert_eq!(LinkChange::from_payload(bad), None, "{bad}");
        }
        assert_eq!(
            LinkChange::from_payload(r#"{"o":1,"v":null,"e":"a","c":"b","u":""}"#),
            None
        );
    }
}
