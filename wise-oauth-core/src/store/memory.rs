//! The in-memory token store: the default, for development, tests and single-instance apps.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::ids::{LinkKey, UserId};
use crate::store::{
    LeaseHolder, LinkPage, LinkRecord, StoreError, TokenStore, Version, Versioned, MAX_LINK_PAGE,
};

/// An in-memory [`TokenStore`]: links live as long as the process.
///
/// Clones share the same links, so one store can be handed to several `WiseOAuth`
/// handles in a test to play several app instances. It never evicts a link: only
/// [`TokenStore::delete`] (an explicit unlink) removes one. Versions keep growing across a
/// delete and a new link of the same key, so a stale compare-and-swap write of the old link
/// cannot overwrite the new one. Leases expire by the monotonic clock ([`Instant`]); a
/// lease with a zero TTL is expired at once.
///
/// Use a durable store (SQLite, Postgres) when links must survive a restart or several
/// instances run.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use wise_oauth_core::{LinkKey, MemoryTokenStore, TokenStore, UserId};
///
/// let store = MemoryTokenStore::default();
/// let shared = store.clone(); // same links
/// let key = LinkKey::new("sandbox", "my-client", UserId::new("user-1").unwrap());
/// assert!(shared.load(&key).await.unwrap().is_none());
/// assert_eq!(store.len(), 0);
/// # });
/// ```
#[derive(Clone, Default)]
pub struct MemoryTokenStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// Links by environment and client (almost always one pair per store), then by user.
    scopes: Vec<Scope>,
    /// Last version of deleted links, so a re-created link continues the sequence.
    deleted: HashMap<LinkKey, Version>,
    leases: HashMap<LinkKey, Lease>,
    /// Sweep expired leases when `leases` grows beyond this.
    lease_sweep_at: usize,
}

/// The links of one environment and OAuth client. Kept compact, because a store may hold
/// millions of links: the environment and client are stored once here rather than in every
/// key, the user id is a `Box<str>`, and the record is boxed so the table's (up to half
/// empty) buckets stay 24 bytes wide.
struct Scope {
    environment: Arc<str>,
    client_id: Arc<str>,
    links: HashMap<Box<str>, Box<Versioned<LinkRecord>>>,
}

impl Scope {
    fn is(&self, key: &LinkKey) -> bool {
        *self.environment == *key.environment() && *self.client_id == *key.client_id()
    }
}

impl Inner {
    fn scope(&self, key: &LinkKey) -> Option<&Scope> {
        self.scopes.iter().find(|s| s.is(key))
    }

    fn scope_mut(&mut self, key: &LinkKey) -> Option<&mut Scope> {
        self.scopes.iter_mut().find(|s| s.is(key))
    }

    fn get(&self, key: &LinkKey) -> Option<&Versioned<LinkRecord>> {
        self.scope(key)?
            .links
            .get(key.user().as_str())
            .map(|b| &**b)
    }

    fn len(&self) -> usize {
        self.scopes.iter().map(|s| s.links.len()).sum()
    }
}

struct Lease {
    holder: LeaseHolder,
    until: Instant,
}

impl Lease {
    fn is_live(&self, now: Instant) -> bool {
        now < self.until
    }
}

const INITIAL_LEASE_SWEEP: usize = 1024;

impl MemoryTokenStore {
    /// An empty store (same as `Default`).
    pub fn new() -> Self {
        Self::default()
    }

    /// How many links the store holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store holds no link.
    pub fn is_empty(&self) -> bool {
        self.lock().len() == 0
    }

    // Never held across an await: every method locks, works and unlocks synchronously.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryTokenStore")
            .field("links", &inner.len())
            .field("leases", &inner.leases.len())
            .finish()
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    /// `false`: links live only as long as the process.
    fn is_durable(&self) -> bool {
        false
    }

    async fn list_links(
        &self,
        environment: &str,
        client_id: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<LinkPage, StoreError> {
        let limit = limit.clamp(1, MAX_LINK_PAGE);
        let inner = self.lock();
        let Some(scope) = inner
            .scopes
            .iter()
            .find(|s| *s.environment == *environment && *s.client_id == *client_id)
        else {
            return Ok(LinkPage::default());
        };
        let mut users: Vec<&str> = scope
            .links
            .keys()
            .map(|k| &**k)
            .filter(|u| after.is_none_or(|a| *u > a.as_str()))
            .collect();
        users.sort_unstable();
        users.truncate(limit);
        let users = users
            .into_iter()
            .filter_map(|u| UserId::new(u).ok())
            .collect();
        Ok(LinkPage::new(users, limit))
    }

    /// A scan of the scope's links (webhooks are rare; the memory store is for one
    /// instance and tests).
    async fn links_of_wise_user(
        &self,
        environment: &str,
        client_id: &str,
        wise_user_id: u64,
    ) -> Result<Vec<UserId>, StoreError> {
        let inner = self.lock();
        let Some(scope) = inner
            .scopes
            .iter()
            .find(|s| *s.environment == *environment && *s.client_id == *client_id)
        else {
            return Ok(Vec::new());
        };
        Ok(scope
            .links
            .iter()
            .filter(|(_, link)| link.value.wise_user_id == Some(wise_user_id))
            .filter_map(|(user, _)| UserId::new(&**user).ok())
            .take(MAX_LINK_PAGE)
            .collect())
    }

    async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
        Ok(self.lock().get(key).cloned())
    }

    async fn save(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        let mut inner = self.lock();
        let current = inner.get(key).map(|v| v.version);
        if current != expected {
            return Err(StoreError::Conflict);
        }
        let previous = current.or_else(|| inner.deleted.get(key).copied());
        let version = Version::new(previous.map_or(1, |v| v.get().saturating_add(1)));
        if previous.is_some() {
            inner.deleted.remove(key);
        }
        let value = Versioned {
            version,
            value: record.clone(),
        };
        let index = match inner.scopes.iter().position(|s| s.is(key)) {
            Some(index) => index,
            None => {
                inner.scopes.push(Scope {
                    environment: Arc::from(key.environment()),
                    client_id: Arc::from(key.client_id()),
                    links: HashMap::new(),
                });
                inner.scopes.len() - 1
            }
        };
        let links = &mut inner.scopes[index].links;
        match links.get_mut(key.user().as_str()) {
            // Rewritten in place: the key and the box are reused.
            Some(slot) => **slot = value,
            None => {
                links.insert(Box::from(key.user().as_str()), Box::new(value));
            }
        }
        Ok(version)
    }

    async fn delete(&self, key: &LinkKey) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let removed = inner
            .scope_mut(key)
            .and_then(|scope| scope.links.remove(key.user().as_str()));
        match removed {
            Some(old) => {
                inner.deleted.insert(key.clone(), old.version);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn acquire_lease(
        &self,
        key: &LinkKey,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        // A TTL too large for the clock is as good as forever.
        let until = now
            .checked_add(ttl)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        let mut inner = self.lock();
        if let Some(lease) = inner.leases.get_mut(key) {
            if lease.holder != holder && lease.is_live(now) {
                return Ok(false);
            }
            *lease = Lease { holder, until };
            return Ok(true);
        }
        if inner.leases.len() >= inner.lease_sweep_at.max(INITIAL_LEASE_SWEEP) {
            inner.leases.retain(|_, lease| lease.is_live(now));
            inner.lease_sweep_at = (inner.leases.len() * 2).max(INITIAL_LEASE_SWEEP);
        }
        inner.leases.insert(key.clone(), Lease { holder, until });
        Ok(true)
    }

    async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner
            .leases
            .get(key)
            .is_some_and(|lease| lease.holder == holder)
        {
            inner.leases.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::ids::{ProfileId, UserId};
    use crate::store::{LinkStatus, SealedTokens};

    fn key(user: &str) -> LinkKey {
        LinkKey::new("sandbox", "c", UserId::new(user).unwrap())
    }

    fn record(byte: u8) -> LinkRecord {
        let t: SystemTime = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        LinkRecord::new(
            ProfileId::new(1).unwrap(),
            LinkStatus::Active,
            t,
            t,
            t,
            SealedTokens::new(vec![byte; 4]),
        )
    }

    #[tokio::test]
    async fn clones_share_links() {
        let a = MemoryTokenStore::default();
        let b = a.clone();
        a.save(&key("u"), &record(1), None).await.unwrap();
        assert_eq!(b.load(&key("u")).await.unwrap().unwrap().value, record(1));
        assert_eq!(b.len(), 1);
        assert!(!format!("{b:?}").contains("SealedTokens"));
    }

    #[tokio::test]
    async fn links_are_found_by_wise_user() {
        let store = MemoryTokenStore::default();
        let of = |id| record(1).with_wise_user_id(id);
        store.save(&key("a"), &of(Some(7)), None).await.unwrap();
        store.save(&key("b"), &of(Some(7)), None).await.unwrap();
        store.save(&key("c"), &of(Some(8)), None).await.unwrap();
        store.save(&key("d"), &of(None), None).await.unwrap();
        let other = LinkKey::new("production", "c", UserId::new("e").unwrap());
        store.save(&other, &of(Some(7)), None).await.unwrap();
        let mut found = store.links_of_wise_user("sandbox", "c", 7).await.unwrap();
        found.sort();
        assert_eq!(
            found,
            [UserId::new("a").unwrap(), UserId::new("b").unwrap()]
        );
        assert!(store.delete(&key("a")).await.unwrap());
        let found = store.links_of_wise_user("sandbox", "c", 7).await.unwrap();
        assert_eq!(found, [UserId::new("b").unwrap()]);
        assert!(store
            .links_of_wise_user("sandbox", "other", 7)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn versions_continue_after_delete() {
        let store = MemoryTokenStore::default();
        let v1 = store.save(&key("u"), &record(1), None).await.unwrap();
        assert_eq!(v1, Version::new(1));
        assert!(store.delete(&key("u")).await.unwrap());
        let v2 = store.save(&key("u"), &record(2), None).await.unwrap();
        assert_eq!(v2, Version::new(2));
        assert!(matches!(
            store.save(&key("u"), &record(3), Some(v1)).await,
            Err(StoreError::Conflict)
        ));
    }

    #[tokio::test]
    async fn zero_ttl_lease_is_expired_at_once() {
        let store = MemoryTokenStore::default();
        let (h1, h2) = (LeaseHolder::new(1), LeaseHolder::new(2));
        assert!(store
            .acquire_lease(&key("u"), h1, Duration::ZERO)
            .await
            .unwrap());
        assert!(store
            .acquire_lease(&key("u"), h2, Duration::from_secs(60))
            .await
            .unwrap());
        assert!(!store
            .acquire_lease(&key("u"), h1, Duration::from_secs(60))
            .await
            .unwrap());
        // A huge TTL does not overflow.
        assert!(store
            .acquire_lease(&key("v"), h1, Duration::MAX)
            .await
            .unwrap());
        assert!(!store
            .acquire_lease(&key("v"), h2, Duration::ZERO)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn expired_leases_are_swept() {
        let store = MemoryTokenStore::default();
        for i in 0..5000 {
            let k = key(&format!("user-{i}"));
            store
                .acquire_lease(&k, LeaseHolder::new(i), Duration::ZERO)
                .await
                .unwrap();
        }
        assert!(store.lock().leases.len() <= 2 * INITIAL_LEASE_SWEEP);
    }
}
