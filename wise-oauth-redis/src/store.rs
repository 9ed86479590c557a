//! The Redis store: shared by every instance of the app.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use wise_oauth_core::{
    LeaseHolder, LinkKey, LinkPage, LinkRecord, PendingStore, StoreError, TokenStore, UserId,
    Version, Versioned, MAX_LINK_PAGE, MAX_PENDING_PER_USER,
};

use crate::error::{op_error, SetupError};
use crate::keys::{
    is_link_tag, is_state_member, link_tag, state_member, validate_prefix, Keys, DEFAULT_KEY_PREFIX,
};
use crate::record::{self, LOAD_FIELDS, RECORD_FIELDS};

/// Compare-and-swap write of a link hash. `KEYS[1]`: the link; `KEYS[2]`: the users index
/// of its environment and client; `KEYS[3]`: its Wise-users index; `ARGV[1]`: the expected
/// version (empty: insert only if no record); `ARGV[2..7]`: the record fields; `ARGV[8]`:
/// the user id; `ARGV[9]`: the Wise user id (empty: none). Returns the new version, or nil
/// on a conflict. The version lives in field `v`, which an unlink keeps, so
/// a link created again continues the sequence. The user joins the index in the same
/// script, so a listing never misses a saved link.
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local live = redis.call('HEXISTS', KEYS[1], 'sealed_tokens') == 1
if ARGV[1] == '' then
  if live then return false end
elseif not live or redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then
  return false
end
local old = redis.call('HGET', KEYS[1], 'wise_user_id')
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'profile_id', ARGV[2], 'status', ARGV[3],
  'access_expires_at', ARGV[4], 'linked_at', ARGV[5], 'updated_at', ARGV[6],
  'sealed_tokens', ARGV[7])
redis.call('ZADD', KEYS[2], 0, ARGV[8])
if old and old ~= ARGV[9] then redis.call('ZREM', KEYS[3], old .. ':' .. ARGV[8]) end
if ARGV[9] == '' then
  redis.call('HDEL', KEYS[1], 'wise_user_id')
else
  redis.call('HSET', KEYS[1], 'wise_user_id', ARGV[9])
  redis.call('ZADD', KEYS[3], 0, ARGV[9] .. ':' .. ARGV[8])
end
return v
",
    )
});

/// Unlinks: removes the record fields `ARGV[2..]` of the link `KEYS[1]` (field `v` stays as
/// the tombstone) and the user `ARGV[1]` from the users index `KEYS[2]` and from the
/// Wise-users index `KEYS[3]`, atomically. Returns how many fields were removed.
static UNLINK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local wise_user = redis.call('HGET', KEYS[1], 'wise_user_id')
if wise_user then redis.call('ZREM', KEYS[3], wise_user .. ':' .. ARGV[1]) end
local removed = redis.call('HDEL', KEYS[1], unpack(ARGV, 2))
redis.call('ZREM', KEYS[2], ARGV[1])
return removed
",
    )
});

/// Takes the lease with `SET NX PX`, or extends it when `ARGV[1]` already holds it.
/// `KEYS[1]`: the lease; `ARGV[2]`: the TTL in milliseconds. Returns 1 when held.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
",
    )
});

/// Compare-and-delete of the lease `KEYS[1]` held by `ARGV[1]`.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// Adds flow `ARGV[1]` as the newest of the owner's index `KEYS[1]` (a sorted set scored by
/// a per-owner sequence), keeps the index alive at least `ARGV[3]` ms, trims it to the
/// newest `ARGV[2]` flows and returns the members it dropped.
static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local seq = 1
if last[2] then seq = tonumber(last[2]) + 1 end
redis.call('ZADD', KEYS[1], seq, ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if over <= 0 then return {} end
local dropped = redis.call('ZRANGE', KEYS[1], 0, over - 1)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
return dropped
",
    )
});

/// Admits owner `ARGV[1]` to the owners index `KEYS[1]` for `ARGV[2]` ms: drops the owners
/// whose flows all expired (Redis server time), keeps an owner already present (extending
/// its time), adds a new one only while fewer than `ARGV[3]` are present. Returns 1 when
/// admitted, 0 when full.
static ADMIT_OWNER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local expires = now + tonumber(ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'GT', expires, ARGV[1])
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], expires, ARGV[1])
return 1
",
    )
});

/// The default of [`RedisTokenStoreBuilder::max_pending_owners`].
pub const DEFAULT_MAX_PENDING_OWNERS: u64 = 100_000;

/// Deletes the flow `KEYS[1]` only if it still belongs to the owner whose header is
/// `ARGV[1]` (the state may have been stored again for another owner since).
static DROP_FLOW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// Leases and pending flows never live longer than this (100 years, in milliseconds).
const MAX_TTL_MILLIS: u64 = 100 * 366 * 24 * 3600 * 1000;

/// A TTL in whole milliseconds for `PX`, rounded up, at least 1 ms and at most 100 years.
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_nanos().div_ceil(1_000_000))
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_TTL_MILLIS)
}

fn holder_arg(holder: LeaseHolder) -> String {
    format!("{:032x}", holder.get())
}

/// The shared [`TokenStore`] and [`PendingStore`] for several instances of your app, in
/// Redis (6.2 or newer).
///
/// - A link is one hash, `{prefix}{env:client:user}:link`: the version in field `v` and
///   the record's fields (the sealed token bytes as they are). A save is a server-side
///   script that compares the version and writes, atomically; an unlink removes every
///   field but `v`, so linking again continues the version sequence.
/// - The refresh lease is `{prefix}{env:client:user}:lease`, taken with `SET NX PX` (in a
///   script that also lets its holder extend it) and released by a compare-and-delete on
///   the holder. It expires on the **Redis server's** clock.
/// - A pending flow is `{prefix}flow:<state hash>`, written with `PX` (Redis keeps the
///   TTL) and taken with `GETDEL`, so a flow started on one instance completes on any
///   other, exactly once. Each owner's flows are indexed in `{prefix}{env:client:user}:flows`
///   to keep at most [`MAX_PENDING_PER_USER`] of them (the owner's oldest go first), and
///   the owners with flows in `{prefix}flow-owners`, to admit at most
///   [`max_pending_owners`](RedisTokenStoreBuilder::max_pending_owners) of them: when full, a
///   new owner is refused with `StoreError::Full` and nobody's flow is evicted for it (the
///   cap is checked and taken in one script; an owner leaves the index when its last flow is
///   taken or expires).
/// - The users of each environment and client are a sorted set,
///   `{prefix}{env:client}:users`, with every score 0 so that members sort by their bytes.
///   The save and unlink scripts change it together with the link, so
///   [`list_links`](TokenStore::list_links) pages (one `ZRANGE … BYLEX LIMIT`) are exact:
///   complete, without tombstones, and stable under concurrent writes (keyset cursors).
///   A `SCAN … MATCH` walk instead would read the whole keyspace for every page and return
///   keys in no order.
/// - The links of each Wise user (for webhooks) are members `<wise user id>:<user id>` of
///   `{prefix}{env:client}:wise-users`, kept by the same scripts. A link saved by an
///   earlier version has no `wise_user_id` field and is not in it until the user links again.
/// - The hash tag `{env:client:user}` (each part percent-encoded, so no two link keys share
///   one and it never contains a brace) keeps one link's keys in one cluster slot.
/// - Every call is one command or one script; nothing stays locked across a call to Wise.
///
/// The store holds a [`ConnectionManager`]: one multiplexed connection, shared by clones
/// of the store and reconnected after a failure. While Redis is unreachable, calls fail
/// with `StoreError::Unavailable`.
///
/// ```no_run
/// use wise_oauth_redis::{redis, RedisTokenStore};
///
/// # async fn run() -> Result<(), wise_oauth_redis::SetupError> {
/// let store = RedisTokenStore::connect("redis://127.0.0.1:6379").await?;
///
/// // Or over a connection you already have, under a prefix of your own:
/// let client = redis::Client::open("redis://cache.internal/2").map_err(wise_oauth_redis::SetupError::Connect)?;
/// let conn = redis::aio::ConnectionManager::new(client).await.map_err(wise_oauth_redis::SetupError::Connect)?;
/// let store = RedisTokenStore::builder(conn).key_prefix("myapp:wise:").build()?;
/// // WiseOAuth::builder(config).store(store.clone()).pending_store(store)
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisTokenStore {
    conn: ConnectionManager,
    keys: Keys,
    max_owners: u64,
}

impl fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the connection info: it may hold a password.
        f.debug_struct("RedisTokenStore")
            .field("key_prefix", &self.keys.prefix())
            .field("max_pending_owners", &self.max_owners)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisTokenStore`] over an existing connection. Created by
/// [`RedisTokenStore::builder`].
#[must_use]
pub struct RedisTokenStoreBuilder {
    conn: ConnectionManager,
    prefix: String,
    max_owners: u64,
}

impl fmt::Debug for RedisTokenStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenStoreBuilder")
            .field("key_prefix", &self.prefix)
            .field("max_pending_owners", &self.max_owners)
            .finish_non_exhaustive()
    }
}

impl RedisTokenStoreBuilder {
    /// The prefix of every key the store writes. Default: `wise-oauth:`. At most 64
    /// printable ASCII characters without spaces, braces or `*?[]\` (checked by
    /// [`build`](Self::build)); may be empty.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How many owners (app users) may have link flows in progress at once, each with at
    /// most `MAX_PENDING_PER_USER` flows (at least 1). When full, a flow of a new owner is
    /// refused (`StoreError::Full`, the link start answers 503) and no owner's flow is
    /// evicted for it. Default: [`DEFAULT_MAX_PENDING_OWNERS`] (100 000).
    pub fn max_pending_owners(mut self, owners: u64) -> Self {
        self.max_owners = owners;
        self
    }

    /// Validates the settings. Makes no call to Redis.
    pub fn build(self) -> Result<RedisTokenStore, SetupError> {
        validate_prefix(&self.prefix)?;
        Ok(RedisTokenStore {
            conn: self.conn,
            keys: Keys::new(self.prefix),
            max_owners: self.max_owners.max(1),
        })
    }
}

impl RedisTokenStore {
    /// Connects to `url` (`redis://[:password@]host[:port][/db]`, or `rediss://` when the
    /// `redis` crate has TLS enabled) with 5 s connect and response timeouts and two
    /// reconnection attempts about a second apart, and uses the default key prefix. Must be called inside a tokio runtime, which then runs the
    /// connection.
    pub async fn connect(url: &str) -> Result<Self, SetupError> {
        let client = redis::Client::open(url).map_err(SetupError::Connect)?;
        // Reconnecting waits at most about 1 s between two attempts, so a call made while
        // Redis is away fails within seconds (well inside a refresh lease) instead of
        // waiting for the driver's default back-off of up to a minute.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(5))
            .set_response_timeout(Duration::from_secs(5))
            .set_factor(2)
            .set_max_delay(1000)
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(SetupError::Connect)?;
        Self::builder(conn).build()
    }

    /// A builder over an existing connection (key prefix).
    pub fn builder(conn: ConnectionManager) -> RedisTokenStoreBuilder {
        RedisTokenStoreBuilder {
            conn,
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            max_owners: DEFAULT_MAX_PENDING_OWNERS,
        }
    }

    /// The connection the store uses.
    pub fn connection(&self) -> &ConnectionManager {
        &self.conn
    }

    /// The prefix of every key the store writes.
    pub fn key_prefix(&self) -> &str {
        self.keys.prefix()
    }
}

#[async_trait]
impl TokenStore for RedisTokenStore {
    async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
        let values: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(self.keys.link(key))
            .arg(&LOAD_FIELDS[..])
            .query_async(&mut self.conn.clone())
            .await
            .map_err(op_error)?;
        record::decode(values)
    }

    async fn save(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        let fields = record::encode(record)?;
        let expected = expected.map(|v| v.get().to_string()).unwrap_or_default();
        let mut invocation = SAVE.key(self.keys.link(key));
        invocation
            .key(self.keys.users_of(key))
            .key(self.keys.wise_users(key.environment(), key.client_id()))
            .arg(expected);
        for field in &fields {
            invocation.arg(&field[..]);
        }
        invocation
            .arg(key.user().as_str())
            .arg(record::encode_wise_user(record));
        let new_version: Option<i64> = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(op_error)?;
        match new_version {
            Some(v) => record::version(v),
            None => Err(StoreError::Conflict),
        }
    }

    async fn delete(&self, key: &LinkKey) -> Result<bool, StoreError> {
        // Field `v` stays as a tombstone: a link created again continues the version
        // sequence, so a stale write of the old link can never match.
        let removed: i64 = UNLINK
            .key(self.keys.link(key))
            .key(self.keys.users_of(key))
            .key(self.keys.wise_users(key.environment(), key.client_id()))
            .arg(key.user().as_str())
            .arg(&RECORD_FIELDS[..])
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(op_error)?;
        Ok(removed > 0)
    }

    async fn acquire_lease(
        &self,
        key: &LinkKey,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let held: i64 = ACQUIRE
            .key(self.keys.lease(key))
            .arg(holder_arg(holder))
            .arg(ttl_millis(ttl))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(op_error)?;
        Ok(held == 1)
    }

    async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) -> Result<(), StoreError> {
        let _released: i64 = RELEASE
            .key(self.keys.lease(key))
            .arg(holder_arg(holder))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(op_error)?;
        Ok(())
    }

    /// One `ZRANGE … BYLEX LIMIT` on the users index of the environment and client: keyset
    /// pages in byte order of the user ids, `O(log n + limit)`, complete and without
    /// duplicates because the index changes only inside the save and unlink scripts.
    async fn list_links(
        &self,
        environment: &str,
        client_id: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<LinkPage, StoreError> {
        let limit = limit.clamp(1, MAX_LINK_PAGE);
        let start = after.map_or_else(|| "-".to_owned(), |a| format!("({}", a.as_str()));
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.users(environment, client_id))
            .arg(start)
            .arg("+")
            .arg("BYLEX")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(op_error)?;
        let users = members
            .into_iter()
            .map(|m| {
                UserId::new(m)
                    .map_err(|_| StoreError::Corrupt("invalid user id in the users index"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LinkPage::new(users, limit))
    }

    /// One `ZRANGE … BYLEX` on the Wise-users index: the members `<id>:<user>` of this
    /// Wise user (the id is digits only, so `[<id>:` to `(<id>;` holds exactly them).
    async fn links_of_wise_user(
        &self,
        environment: &str,
        client_id: &str,
        wise_user_id: u64,
    ) -> Result<Vec<UserId>, StoreError> {
        let prefix = format!("{wise_user_id}:");
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.wise_users(environment, client_id))
            .arg(format!("[{prefix}"))
            .arg(format!("({wise_user_id};"))
            .arg("BYLEX")
            .arg("LIMIT")
            .arg(0)
            .arg(MAX_LINK_PAGE)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(op_error)?;
        members
            .into_iter()
            .map(|m| {
                m.strip_prefix(&prefix)
                    .and_then(|user| UserId::new(user).ok())
                    .ok_or(StoreError::Corrupt(
                        "invalid member in the Wise-users index",
                    ))
            })
            .collect()
    }
}

#[async_trait]
impl PendingStore for RedisTokenStore {
    async fn insert(
        &self,
        state_hash: &[u8; 32],
        owner: &LinkKey,
        pending: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let tag = link_tag(owner);
        let member = state_member(state_hash);
        let ttl = ttl_millis(ttl);
        let admitted: i64 = ADMIT_OWNER
            .key(self.keys.flow_owners())
            .arg(&tag)
            .arg(ttl)
            .arg(self.max_owners)
            .invoke_async(&mut conn)
            .await
            .map_err(op_error)?;
        if admitted == 0 {
            return Err(StoreError::Full);
        }
        // The index first: a failure after it leaves at most an index entry without a flow.
        let dropped: Vec<String> = ENQUEUE
            .key(self.keys.flows_of_tag(&tag))
            .arg(&member)
            .arg(MAX_PENDING_PER_USER)
            .arg(ttl)
            .invoke_async(&mut conn)
            .await
            .map_err(op_error)?;
        let header = record::flow_header(&tag);
        let mut value = Vec::with_capacity(header.len() + pending.len());
        value.extend_from_slice(&header);
        value.extend_from_slice(pending);
        redis::cmd("SET")
            .arg(self.keys.flow(&member))
            .arg(value)
            .arg("PX")
            .arg(ttl)
            .query_async::<()>(&mut conn)
            .await
            .map_err(op_error)?;
        // The owner keeps its newest MAX_PENDING_PER_USER flows. Members that are not state
        // hashes cannot come from this store and are skipped.
        for old in dropped
            .iter()
            .filter(|m| **m != member && is_state_member(m))
        {
            let _deleted: i64 = DROP_FLOW
                .key(self.keys.flow(old))
                .arg(&header[..])
                .invoke_async(&mut conn)
                .await
                .map_err(op_error)?;
        }
        Ok(())
    }

    async fn take(&self, state_hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        let member = state_member(state_hash);
        let value: Option<Vec<u8>> = redis::cmd("GETDEL")
            .arg(self.keys.flow(&member))
            .query_async(&mut conn)
            .await
            .map_err(op_error)?;
        let Some(value) = value else { return Ok(None) };
        let (tag, pending) = record::split_flow(&value)
            .filter(|(tag, _)| is_link_tag(tag))
            .ok_or(StoreError::Corrupt("undecodable pending flow"))?;
        // The flow is consumed; dropping it from its owner's index only frees its place in
        // the cap. If that fails, the index entry expires with the index or is trimmed later.
        let _unindexed: Result<i64, _> = redis::cmd("ZREM")
            .arg(self.keys.flows_of_tag(tag))
            .arg(&member)
            .query_async(&mut conn)
            .await;
        // Its owner's last flow: the owner leaves the owners index (else it expires there).
        let left: Result<i64, _> = redis::cmd("ZCARD")
            .arg(self.keys.flows_of_tag(tag))
            .query_async(&mut conn)
            .await;
        if left == Ok(0) {
            let _gone: Result<i64, _> = redis::cmd("ZREM")
                .arg(self.keys.flow_owners())
                .arg(tag)
                .query_async(&mut conn)
                .await;
        }
        Ok(Some(pending.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_and_are_bounded() {
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::from_nanos(1)), 1);
        assert_eq!(ttl_millis(Duration::from_micros(1500)), 2);
        assert_eq!(ttl_millis(Duration::from_secs(30)), 30_000);
        assert_eq!(ttl_millis(Duration::MAX), MAX_TTL_MILLIS);
    }

    #[test]
    fn holders_are_fixed_width_hex() {
        assert_eq!(holder_arg(LeaseHolder::new(1)), format!("{:0>32}", "1"));
        assert_eq!(holder_arg(LeaseHolder::new(u128::MAX)), "f".repeat(32));
    }
}
