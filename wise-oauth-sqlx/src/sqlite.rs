//! The SQLite store: durable, one file, one instance.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;
use wise_oauth_core::{
    LeaseHolder, LinkKey, LinkPage, LinkRecord, PendingStore, StoreError, TokenStore, UserId,
    Version, Versioned, MAX_LINK_PAGE,
};

use crate::common::{
    clamp_duration, flows_cap, holder_to_db, link_page, op_error, page_after, page_limit,
    pending_cap, time_to_nanos, users, validate_name, version_from_db, version_to_db,
    EncodedRecord, LinkRow, SetupError, DEFAULT_MAX_PENDING_FLOWS, DEFAULT_TABLE_PREFIX,
    MAX_TTL_SECS, PURGE_BATCH,
};

/// The migrations, in order; entry `i` brings the schema to version `i + 1`.
/// `{p}` is replaced by the table prefix.
const MIGRATIONS: &[&[&str]] = &[
    &[
        "CREATE TABLE IF NOT EXISTS {p}links (
        environment TEXT NOT NULL,
        client_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        profile_id INTEGER NOT NULL,
        status TEXT NOT NULL,
        access_expires_at INTEGER NOT NULL,
        linked_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        sealed_tokens BLOB NOT NULL,
        version INTEGER NOT NULL,
        unlinked_at INTEGER,
        PRIMARY KEY (environment, client_id, user_id)
    ) STRICT",
        "CREATE TABLE IF NOT EXISTS {p}leases (
        environment TEXT NOT NULL,
        client_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        holder BLOB NOT NULL,
        until INTEGER NOT NULL,
        PRIMARY KEY (environment, client_id, user_id)
    ) STRICT",
        "CREATE TABLE IF NOT EXISTS {p}pending (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        state_hash BLOB NOT NULL UNIQUE,
        environment TEXT NOT NULL,
        client_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT",
        "CREATE INDEX IF NOT EXISTS {p}pending_owner
        ON {p}pending (environment, client_id, user_id, seq)",
        "CREATE INDEX IF NOT EXISTS {p}pending_expiry ON {p}pending (expires_at)",
    ],
    &[
        // 2: the Wise user of each link, for webhooks (NULL on links stored before).
        "ALTER TABLE {p}links ADD COLUMN wise_user_id INTEGER",
        "CREATE INDEX IF NOT EXISTS {p}links_wise_user
        ON {p}links (environment, client_id, wise_user_id)
        WHERE wise_user_id IS NOT NULL AND unlinked_at IS NULL",
    ],
];

/// A durable [`TokenStore`] and [`PendingStore`] in one SQLite file, for a single instance
/// of your app (several processes on one machine work too, but share nothing else: use
/// [`PostgresTokenStore`](crate::PostgresTokenStore) for several instances).
///
/// The tables are created and migrated when the store is built. Lease and pending-flow
/// expiry use this machine's clock. Writes are single statements (compare-and-swap on the
/// version column), so no transaction stays open across a call.
///
/// ```no_run
/// use wise_oauth_sqlx::SqliteTokenStore;
///
/// # async fn run() -> Result<(), wise_oauth_sqlx::SetupError> {
/// // One file, created if missing:
/// let store = SqliteTokenStore::connect("sqlite:wise-links.db?mode=rwc").await?;
///
/// // Or in a pool you already have, with your own table prefix:
/// let pool = sqlx::SqlitePool::connect("sqlite:app.db?mode=rwc").await.map_err(wise_oauth_sqlx::SetupError::Connect)?;
/// let store = SqliteTokenStore::builder(pool).table_prefix("wise_").build().await?;
/// // WiseOAuth::builder(config).store(store.clone()).pending_store(store)
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteTokenStore {
    pool: SqlitePool,
    prefix: String,
    max_pending: u64,
}

impl fmt::Debug for SqliteTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the connect options: they may hold a path or credentials.
        f.debug_struct("SqliteTokenStore")
            .field("table_prefix", &self.prefix)
            .field("max_pending_flows", &self.max_pending)
            .field("connections", &self.pool.size())
            .field("closed", &self.pool.is_closed())
            .finish()
    }
}

/// Builds a [`SqliteTokenStore`] over an existing pool. Created by
/// [`SqliteTokenStore::builder`].
#[must_use]
pub struct SqliteTokenStoreBuilder {
    pool: SqlitePool,
    prefix: String,
    migrate: bool,
    max_pending: u64,
}

impl fmt::Debug for SqliteTokenStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteTokenStoreBuilder")
            .field("table_prefix", &self.prefix)
            .field("migrate", &self.migrate)
            .field("max_pending_flows", &self.max_pending)
            .finish_non_exhaustive()
    }
}

impl SqliteTokenStoreBuilder {
    /// The prefix of every table and index name. Default: `wise_oauth_`. At most 40
    /// lowercase ASCII letters, digits and underscores, not starting with a digit (checked by
    /// [`build`](Self::build)); may be empty.
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Whether [`build`](Self::build) creates and migrates the tables. Default: `true`.
    /// With `false`, call [`SqliteTokenStore::migrate`] yourself before using the store.
    pub fn auto_migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// How many live pending flows the store holds at most, all owners together (at least
    /// 1). When full, an owner with flows replaces its own oldest and an owner without one
    /// is refused (`StoreError::Full`, the link start answers 503); no owner's flow is
    /// evicted for another's. Default: [`DEFAULT_MAX_PENDING_FLOWS`](crate::DEFAULT_MAX_PENDING_FLOWS) (100 000).
    pub fn max_pending_flows(mut self, flows: u64) -> Self {
        self.max_pending = flows;
        self
    }

    /// Validates the settings and, unless disabled, creates or migrates the tables.
    pub async fn build(self) -> Result<SqliteTokenStore, SetupError> {
        validate_name(&self.prefix, "table prefix", true)?;
        let store = SqliteTokenStore {
            pool: self.pool,
            prefix: self.prefix,
            max_pending: self.max_pending,
        };
        if self.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }
}

/// Connection attempts while the file is locked by another process's setup (about 1.4 s).
const CONNECT_ATTEMPTS: u32 = 10;

/// SQLite's `SQLITE_BUSY` (5) or `SQLITE_LOCKED` (6).
fn is_locked(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("5" | "6")))
}

impl SqliteTokenStore {
    /// Opens (with `?mode=rwc`: creates) the database at `url`, e.g.
    /// `sqlite:/var/lib/app/wise.db?mode=rwc`, in WAL mode with a 5 s busy timeout, and
    /// creates or migrates the tables with the default prefix.
    pub async fn connect(url: &str) -> Result<Self, SetupError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(SetupError::Connect)?
            .busy_timeout(Duration::from_secs(5));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let (options, pool_options) = if in_memory {
            // An in-memory database lives only while a connection is open: keep one.
            (
                options,
                SqlitePoolOptions::new()
                    .min_connections(1)
                    .max_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None),
            )
        } else {
            (
                options.journal_mode(SqliteJournalMode::Wal),
                SqlitePoolOptions::new(),
            )
        };
        // Several processes opening a new file at once race to switch it to WAL, and SQLite
        // answers that with "database is locked" without waiting for the busy timeout:
        // try again a few times before giving up.
        let mut attempt = 0;
        let pool = loop {
            match pool_options.clone().connect_with(options.clone()).await {
                Ok(pool) => break pool,
                Err(e) if attempt < CONNECT_ATTEMPTS && is_locked(&e) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt))).await;
                }
                Err(e) => return Err(SetupError::Connect(e)),
            }
        };
        Self::builder(pool).build().await
    }

    /// A builder over an existing pool (table prefix, migration switch).
    pub fn builder(pool: SqlitePool) -> SqliteTokenStoreBuilder {
        SqliteTokenStoreBuilder {
            pool,
            prefix: DEFAULT_TABLE_PREFIX.to_owned(),
            migrate: true,
            max_pending: DEFAULT_MAX_PENDING_FLOWS,
        }
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The newest schema version this crate knows.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// Creates or migrates the tables (idempotent; concurrent callers are serialized by
    /// SQLite's write lock). [`SqliteTokenStoreBuilder::build`] calls it by default.
    pub async fn migrate(&self) -> Result<(), SetupError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(SetupError::Connect)?;
        match self.migrate_in(&mut tx).await {
            Ok(()) => tx.commit().await.map_err(SetupError::Migrate),
            Err(err) => {
                // Best effort; a connection that cannot roll back is closed by the pool.
                let _ = tx.rollback().await;
                Err(err)
            }
        }
    }

    async fn migrate_in(&self, conn: &mut sqlx::SqliteConnection) -> Result<(), SetupError> {
        sqlx::query(&self.sql(
            "CREATE TABLE IF NOT EXISTS {p}migrations (
                version INTEGER PRIMARY KEY,
                applied_at INTEGER NOT NULL
            ) STRICT",
        ))
        .execute(&mut *conn)
        .await
        .map_err(SetupError::Migrate)?;
        let current: i64 =
            sqlx::query_scalar(&self.sql("SELECT COALESCE(MAX(version), 0) FROM {p}migrations"))
                .fetch_one(&mut *conn)
                .await
                .map_err(SetupError::Migrate)?;
        if current > Self::SCHEMA_VERSION {
            return Err(SetupError::SchemaTooNew {
                found: current,
                supported: Self::SCHEMA_VERSION,
            });
        }
        let now = time_to_nanos(SystemTime::now()).unwrap_or(0);
        for (index, statements) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            for statement in *statements {
                sqlx::query(&self.sql(statement))
                    .execute(&mut *conn)
                    .await
                    .map_err(SetupError::Migrate)?;
            }
            sqlx::query(
                &self.sql("INSERT INTO {p}migrations (version, applied_at) VALUES (?1, ?2)"),
            )
            .bind(index as i64 + 1)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(SetupError::Migrate)?;
        }
        Ok(())
    }

    fn sql(&self, template: &str) -> String {
        template.replace("{p}", &self.prefix)
    }
}

fn now_nanos() -> Result<i64, StoreError> {
    time_to_nanos(SystemTime::now())
}

fn expiry(now: i64, ttl: Duration) -> i64 {
    now.saturating_add(clamp_duration(
        ttl,
        1,
        MAX_TTL_SECS.saturating_mul(1_000_000_000),
    ))
}

#[async_trait]
impl TokenStore for SqliteTokenStore {
    async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
        let row = sqlx::query(&self.sql(
            "SELECT profile_id, status, access_expires_at, linked_at, updated_at,
                    sealed_tokens, version, wise_user_id
             FROM {p}links
             WHERE environment = ?1 AND client_id = ?2 AND user_id = ?3
               AND unlinked_at IS NULL",
        ))
        .bind(key.environment())
        .bind(key.client_id())
        .bind(key.user().as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(op_error)?;
        let Some(row) = row else { return Ok(None) };
        LinkRow {
            profile_id: row.try_get(0).map_err(op_error)?,
            status: row.try_get(1).map_err(op_error)?,
            access_expires_at: row.try_get(2).map_err(op_error)?,
            linked_at: row.try_get(3).map_err(op_error)?,
            updated_at: row.try_get(4).map_err(op_error)?,
            sealed_tokens: row.try_get(5).map_err(op_error)?,
            version: row.try_get(6).map_err(op_error)?,
            wise_user_id: row.try_get(7).map_err(op_error)?,
        }
        .decode()
        .map(Some)
    }

    async fn save(
        &self,
        key: &LinkKey,
        record: &LinkRecord,
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        let r = EncodedRecord::new(record)?;
        let new_version: Option<i64> = match expected {
            None => sqlx::query_scalar(&self.sql(
                "INSERT INTO {p}links AS l (environment, client_id, user_id, profile_id, status,
                     access_expires_at, linked_at, updated_at, sealed_tokens, version,
                     wise_user_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10)
                 ON CONFLICT (environment, client_id, user_id) DO UPDATE SET
                     profile_id = excluded.profile_id, status = excluded.status,
                     access_expires_at = excluded.access_expires_at,
                     linked_at = excluded.linked_at, updated_at = excluded.updated_at,
                     sealed_tokens = excluded.sealed_tokens, version = l.version + 1,
                     wise_user_id = excluded.wise_user_id, unlinked_at = NULL
                 WHERE l.unlinked_at IS NOT NULL
                 RETURNING version",
            ))
            .bind(key.environment())
            .bind(key.client_id())
            .bind(key.user().as_str())
            .bind(r.profile_id)
            .bind(r.status)
            .bind(r.access_expires_at)
            .bind(r.linked_at)
            .bind(r.updated_at)
            .bind(r.sealed_tokens)
            .bind(r.wise_user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(op_error)?,
            Some(v) => sqlx::query_scalar(&self.sql(
                "UPDATE {p}links SET profile_id = ?4, status = ?5, access_expires_at = ?6,
                     linked_at = ?7, updated_at = ?8, sealed_tokens = ?9, version = version + 1,
                     wise_user_id = ?11
                 WHERE environment = ?1 AND client_id = ?2 AND user_id = ?3 AND version = ?10
                   AND unlinked_at IS NULL
                 RETURNING version",
            ))
            .bind(key.environment())
            .bind(key.client_id())
            .bind(key.user().as_str())
            .bind(r.profile_id)
            .bind(r.status)
            .bind(r.access_expires_at)
            .bind(r.linked_at)
            .bind(r.updated_at)
            .bind(r.sealed_tokens)
            .bind(version_to_db(v)?)
            .bind(r.wise_user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(op_error)?,
        };
        match new_version {
            Some(v) => version_from_db(v),
            None => Err(StoreError::Conflict),
        }
    }

    async fn delete(&self, key: &LinkKey) -> Result<bool, StoreError> {
        // The row stays as a tombstone without tokens: a link created again continues the
        // version sequence, so a stale write of the old link can never match.
        let done = sqlx::query(&self.sql(
            "UPDATE {p}links SET sealed_tokens = X'', profile_id = 0, wise_user_id = NULL,
                 unlinked_at = ?4
             WHERE environment = ?1 AND client_id = ?2 AND user_id = ?3
               AND unlinked_at IS NULL",
        ))
        .bind(key.environment())
        .bind(key.client_id())
        .bind(key.user().as_str())
        .bind(now_nanos()?)
        .execute(&self.pool)
        .await
        .map_err(op_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn acquire_lease(
        &self,
        key: &LinkKey,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_nanos()?;
        let won = sqlx::query(&self.sql(
            "INSERT INTO {p}leases AS l (environment, client_id, user_id, holder, until)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (environment, client_id, user_id)
             DO UPDATE SET holder = excluded.holder, until = excluded.until
             WHERE l.until <= ?6 OR l.holder = excluded.holder
             RETURNING holder",
        ))
        .bind(key.environment())
        .bind(key.client_id())
        .bind(key.user().as_str())
        .bind(&holder_to_db(holder)[..])
        .bind(expiry(now, ttl))
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(op_error)?;
        Ok(won.is_some())
    }

    async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) -> Result<(), StoreError> {
        sqlx::query(&self.sql(
            "DELETE FROM {p}leases
             WHERE environment = ?1 AND client_id = ?2 AND user_id = ?3 AND holder = ?4",
        ))
        .bind(key.environment())
        .bind(key.client_id())
        .bind(key.user().as_str())
        .bind(&holder_to_db(holder)[..])
        .execute(&self.pool)
        .await
        .map_err(op_error)?;
        Ok(())
    }

    /// Keyset pages over the primary key `(environment, client_id, user_id)`: a range scan
    /// of the index, in SQLite's `BINARY` (byte) order of the user ids. Tombstones of
    /// unlinked users are skipped.
    async fn list_links(
        &self,
        environment: &str,
        client_id: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<LinkPage, StoreError> {
        let (limit, sql_limit) = page_limit(limit);
        let rows: Vec<String> = sqlx::query_scalar(&self.sql(
            "SELECT user_id FROM {p}links
             WHERE environment = ?1 AND client_id = ?2 AND user_id > ?3
               AND unlinked_at IS NULL
             ORDER BY user_id LIMIT ?4",
        ))
        .bind(environment)
        .bind(client_id)
        .bind(page_after(after))
        .bind(sql_limit)
        .fetch_all(&self.pool)
        .await
        .map_err(op_error)?;
        link_page(rows, limit)
    }

    /// One range scan of the partial index `links_wise_user`.
    async fn links_of_wise_user(
        &self,
        environment: &str,
        client_id: &str,
        wise_user_id: u64,
    ) -> Result<Vec<UserId>, StoreError> {
        let (_, sql_limit) = page_limit(MAX_LINK_PAGE);
        let rows: Vec<String> = sqlx::query_scalar(&self.sql(
            "SELECT user_id FROM {p}links
             WHERE environment = ?1 AND client_id = ?2 AND wise_user_id = ?3
               AND unlinked_at IS NULL
             LIMIT ?4",
        ))
        .bind(environment)
        .bind(client_id)
        .bind(wise_user_id as i64)
        .bind(sql_limit)
        .fetch_all(&self.pool)
        .await
        .map_err(op_error)?;
        users(rows)
    }
}

#[async_trait]
impl PendingStore for SqliteTokenStore {
    async fn insert(
        &self,
        state_hash: &[u8; 32],
        owner: &LinkKey,
        pending: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = now_nanos()?;
        // One short write transaction: the first statement writes, so it takes SQLite's
        // write lock at once (waiting under the busy timeout) instead of upgrading later.
        let mut tx = self.pool.begin().await.map_err(op_error)?;
        let written: Result<(), StoreError> = async {
            sqlx::query(&self.sql("DELETE FROM {p}pending WHERE state_hash = ?1"))
                .bind(&state_hash[..])
                .execute(&mut *tx)
                .await
                .map_err(op_error)?;
            // Opportunistic purge of expired flows, a bounded batch per insert.
            sqlx::query(&self.sql(
                "DELETE FROM {p}pending WHERE seq IN (
                     SELECT seq FROM {p}pending WHERE expires_at <= ?1 LIMIT ?2)",
            ))
            .bind(now)
            .bind(PURGE_BATCH)
            .execute(&mut *tx)
            .await
            .map_err(op_error)?;
            // The global cap, fair per owner: when full, the owner gives up its own oldest
            // flow; an owner without flows is refused. Nobody else's flow is touched.
            let live: i64 = sqlx::query_scalar(
                &self.sql("SELECT count(*) FROM {p}pending WHERE expires_at > ?1"),
            )
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(op_error)?;
            if live >= flows_cap(self.max_pending) {
                let freed = sqlx::query(&self.sql(
                    "DELETE FROM {p}pending WHERE seq = (
                         SELECT seq FROM {p}pending
                         WHERE environment = ?1 AND client_id = ?2 AND user_id = ?3
                         ORDER BY seq LIMIT 1)",
                ))
                .bind(owner.environment())
                .bind(owner.client_id())
                .bind(owner.user().as_str())
                .execute(&mut *tx)
                .await
                .map_err(op_error)?;
                if freed.rows_affected() == 0 {
                    return Err(StoreError::Full);
                }
            }
            sqlx::query(&self.sql(
                "INSERT INTO {p}pending
                     (state_hash, environment, client_id, user_id, payload, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            ))
            .bind(&state_hash[..])
            .bind(owner.environment())
            .bind(owner.client_id())
            .bind(owner.user().as_str())
            .bind(pending)
            .bind(now)
            .bind(expiry(now, ttl))
            .execute(&mut *tx)
            .await
            .map_err(op_error)?;
            // The owner keeps its newest MAX_PENDING_PER_USER flows.
            sqlx::query(&self.sql(
                "DELETE FROM {p}pending
                 WHERE environment = ?1 AND client_id = ?2 AND user_id = ?3
                   AND seq NOT IN (
                     SELECT seq FROM {p}pending
                     WHERE environment = ?1 AND client_id = ?2 AND user_id = ?3
                     ORDER BY seq DESC LIMIT ?4)",
            ))
            .bind(owner.environment())
            .bind(owner.client_id())
            .bind(owner.user().as_str())
            .bind(pending_cap())
            .execute(&mut *tx)
            .await
            .map_err(op_error)?;
            Ok(())
        }
        .await;
        match written {
            Ok(()) => tx.commit().await.map_err(op_error),
            Err(err) => {
                let _ = tx.rollback().await;
                Err(err)
            }
        }
    }

    async fn take(&self, state_hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let now = now_nanos()?;
        let row = sqlx::query(
            &self.sql("DELETE FROM {p}pending WHERE state_hash = ?1 RETURNING payload, expires_at"),
        )
        .bind(&state_hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(op_error)?;
        let Some(row) = row else { return Ok(None) };
        let expires_at: i64 = row.try_get(1).map_err(op_error)?;
        if expires_at <= now {
            return Ok(None);
        }
        row.try_get(0).map(Some).map_err(op_error)
    }
}
