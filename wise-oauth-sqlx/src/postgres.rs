//! The PostgreSQL store: shared by every instance of the app.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;
use wise_oauth_core::{
    LeaseHolder, LinkKey, LinkPage, LinkRecord, PendingStore, StoreError, TokenStore, UserId,
    Version, Versioned, MAX_LINK_PAGE,
};

use crate::common::{
    clamp_duration, flows_cap, holder_to_db, link_page, op_error, page_after, page_limit,
    pending_cap, users, validate_name, version_from_db, version_to_db, EncodedRecord, LinkRow,
    SetupError, DEFAULT_MAX_PENDING_FLOWS, DEFAULT_TABLE_PREFIX, MAX_TTL_SECS, PURGE_BATCH,
};

/// The migrations, in order; entry `i` brings the schema to version `i + 1`.
/// `{t}` is replaced by the (schema-qualified, quoted) table-name prefix and `{i}` by the
/// unqualified index-name prefix.
const MIGRATIONS: &[&[&str]] = &[
    &[
        r#"CREATE TABLE IF NOT EXISTS {t}links" (
        environment TEXT NOT NULL,
        client_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        profile_id BIGINT NOT NULL,
        status TEXT NOT NULL,
        access_expires_at BIGINT NOT NULL,
        linked_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        sealed_tokens BYTEA NOT NULL,
        version BIGINT NOT NULL,
        unlinked_at BIGINT,
        PRIMARY KEY (environment, client_id, user_id)
    )"#,
        r#"CREATE TABLE IF NOT EXISTS {t}leases" (
        environment TEXT NOT NULL,
        client_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        holder BYTEA NOT NULL,
        until TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (environment, client_id, user_id)
    )"#,
        r#"CREATE TABLE IF NOT EXISTS {t}pending" (
        state_hash BYTEA PRIMARY KEY,
        seq BIGSERIAL NOT NULL,
        environment TEXT NOT NULL,
        client_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        payload BYTEA NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        expires_at TIMESTAMPTZ NOT NULL
    )"#,
        r#"CREATE INDEX IF NOT EXISTS "{i}pending_owner"
        ON {t}pending" (environment, client_id, user_id, seq)"#,
        r#"CREATE INDEX IF NOT EXISTS "{i}pending_expiry" ON {t}pending" (expires_at)"#,
    ],
    &[
        // 2: listing links in byte order of the user ids whatever the database's collation,
        // over existing links only.
        r#"CREATE INDEX IF NOT EXISTS "{i}links_listing"
        ON {t}links" (environment, client_id, user_id COLLATE "C")
        WHERE unlinked_at IS NULL"#,
    ],
    &[
        // 3: the Wise user of each link, for webhooks (NULL on links stored before).
        r#"ALTER TABLE {t}links" ADD COLUMN IF NOT EXISTS wise_user_id BIGINT"#,
        r#"CREATE INDEX IF NOT EXISTS "{i}links_wise_user"
        ON {t}links" (environment, client_id, wise_user_id)
        WHERE wise_user_id IS NOT NULL AND unlinked_at IS NULL"#,
    ],
];

/// The shared [`TokenStore`] and [`PendingStore`] for several instances of your app, in
/// PostgreSQL.
///
/// - Writes are compare-and-swap: `UPDATE … WHERE version = $v RETURNING version`, and
///   `INSERT … ON CONFLICT DO NOTHING RETURNING version` for a new link.
/// - The refresh lease is one upsert that succeeds only when the lease is free, expired or
///   already ours; it expires on the **database's** clock (`now()`), so the instances' clocks
///   do not matter. Release is a compare-and-delete on the holder.
/// - A pending flow is taken with `DELETE … RETURNING`, so a flow started on one instance
///   completes on any other, exactly once.
/// - Every call is one statement (inserting a pending flow: one short transaction); no
///   transaction stays open across calls or across a call to Wise.
/// - The tables are created and migrated when the store is built, under a
///   `pg_advisory_xact_lock`, so instances starting together migrate once.
///
/// ```no_run
/// use wise_oauth_sqlx::PostgresTokenStore;
///
/// # async fn run() -> Result<(), wise_oauth_sqlx::SetupError> {
/// let store = PostgresTokenStore::connect("postgres://app@db.internal/app").await?;
///
/// // Or in a pool you already have, in a schema of its own:
/// let pool = sqlx::PgPool::connect("postgres://app@db.internal/app").await.map_err(wise_oauth_sqlx::SetupError::Connect)?;
/// let store = PostgresTokenStore::builder(pool).schema("wise").table_prefix("").build().await?;
/// // WiseOAuth::builder(config).store(store.clone()).pending_store(store)
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresTokenStore {
    pool: PgPool,
    schema: Option<String>,
    prefix: String,
    /// `"schema"."prefix` — completed by each table suffix and a closing quote.
    table: String,
    max_pending: u64,
}

impl fmt::Debug for PostgresTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the connect options: they hold the password.
        f.debug_struct("PostgresTokenStore")
            .field("schema", &self.schema)
            .field("table_prefix", &self.prefix)
            .field("max_pending_flows", &self.max_pending)
            .field("connections", &self.pool.size())
            .field("closed", &self.pool.is_closed())
            .finish()
    }
}

/// Builds a [`PostgresTokenStore`] over an existing pool. Created by
/// [`PostgresTokenStore::builder`].
#[must_use]
pub struct PostgresTokenStoreBuilder {
    pool: PgPool,
    schema: Option<String>,
    prefix: String,
    migrate: bool,
    max_pending: u64,
}

impl fmt::Debug for PostgresTokenStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresTokenStoreBuilder")
            .field("schema", &self.schema)
            .field("table_prefix", &self.prefix)
            .field("migrate", &self.migrate)
            .field("max_pending_flows", &self.max_pending)
            .finish_non_exhaustive()
    }
}

impl PostgresTokenStoreBuilder {
    /// The schema of the tables; created if missing. Default: none (the connection's
    /// `search_path`, normally `public`). At most 40 lowercase ASCII letters, digits and
    /// underscores, not starting with a digit (checked by [`build`](Self::build)).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// The prefix of every table and index name. Default: `wise_oauth_`. Same rules as
    /// [`schema`](Self::schema), but may be empty.
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Whether [`build`](Self::build) creates and migrates the schema and tables.
    /// Default: `true`. With `false`, call [`PostgresTokenStore::migrate`] yourself before
    /// using the store; `build` then makes no database call at all.
    pub fn auto_migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// How many live pending flows the store holds at most, all owners together (at least
    /// 1). When full, an owner with flows replaces its own oldest and an owner without one
    /// is refused (`StoreError::Full`, the link start answers 503); no owner's flow is
    /// evicted for another's. Concurrent inserts of different owners may exceed the cap by
    /// at most their number. Default: [`DEFAULT_MAX_PENDING_FLOWS`](crate::DEFAULT_MAX_PENDING_FLOWS) (100 000).
    pub fn max_pending_flows(mut self, flows: u64) -> Self {
        self.max_pending = flows;
        self
    }

    /// Validates the settings and, unless disabled, creates or migrates the tables.
    pub async fn build(self) -> Result<PostgresTokenStore, SetupError> {
        validate_name(&self.prefix, "table prefix", true)?;
        if let Some(schema) = &self.schema {
            validate_name(schema, "schema name", false)?;
        }
        let table = match &self.schema {
            Some(schema) => format!("\"{schema}\".\"{}", self.prefix),
            None => format!("\"{}", self.prefix),
        };
        let store = PostgresTokenStore {
            pool: self.pool,
            schema: self.schema,
            prefix: self.prefix,
            table,
            max_pending: self.max_pending,
        };
        if self.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }
}

impl PostgresTokenStore {
    /// Connects to `url` (e.g. `postgres://app:pw@db/app`) with a pool of up to 10
    /// connections and a 10 s acquire timeout, and creates or migrates the tables with the
    /// default prefix in the default schema.
    pub async fn connect(url: &str) -> Result<Self, SetupError> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(SetupError::Connect)?;
        Self::builder(pool).build().await
    }

    /// A builder over an existing pool (schema, table prefix, migration switch).
    pub fn builder(pool: PgPool) -> PostgresTokenStoreBuilder {
        PostgresTokenStoreBuilder {
            pool,
            schema: None,
            prefix: DEFAULT_TABLE_PREFIX.to_owned(),
            migrate: true,
            max_pending: DEFAULT_MAX_PENDING_FLOWS,
        }
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema of the tables, if one was set.
    pub(crate) fn schema_name(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The prefix of the table names.
    pub(crate) fn table_prefix(&self) -> &str {
        &self.prefix
    }

    /// The newest schema version this crate knows.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// Creates the schema (if one is set and missing) and creates or migrates the tables, in
    /// one transaction under a `pg_advisory_xact_lock` keyed by schema and prefix, so
    /// instances starting together migrate once. Idempotent.
    /// [`PostgresTokenStoreBuilder::build`] calls it by default.
    pub async fn migrate(&self) -> Result<(), SetupError> {
        let mut tx = self.pool.begin().await.map_err(SetupError::Connect)?;
        match self.migrate_in(&mut tx).await {
            Ok(()) => tx.commit().await.map_err(SetupError::Migrate),
            Err(err) => {
                // Best effort; a connection that cannot roll back is closed by the pool.
                let _ = tx.rollback().await;
                Err(err)
            }
        }
    }

    async fn migrate_in(&self, conn: &mut sqlx::PgConnection) -> Result<(), SetupError> {
        let lock_name = format!(
            "wise-oauth-sqlx migrate {} {}",
            self.schema.as_deref().unwrap_or(""),
            self.prefix
        );
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(lock_name)
            .execute(&mut *conn)
            .await
            .map_err(SetupError::Migrate)?;
        if let Some(schema) = &self.schema {
            // Checked first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when
            // the schema exists.
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                    .bind(schema)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(SetupError::Migrate)?;
            if !exists {
                sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                    .execute(&mut *conn)
                    .await
                    .map_err(SetupError::Migrate)?;
            }
        }
        sqlx::query(&self.sql(
            r#"CREATE TABLE IF NOT EXISTS {t}migrations" (
                version BIGINT PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )"#,
        ))
        .execute(&mut *conn)
        .await
        .map_err(SetupError::Migrate)?;
        let current: i64 = sqlx::query_scalar(
            &self.sql(r#"SELECT COALESCE(MAX(version), 0) FROM {t}migrations""#),
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(SetupError::Migrate)?;
        if current > Self::SCHEMA_VERSION {
            return Err(SetupError::SchemaTooNew {
                found: current,
                supported: Self::SCHEMA_VERSION,
            });
        }
        for (index, statements) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            for statement in *statements {
                sqlx::query(&self.sql(statement))
                    .execute(&mut *conn)
                    .await
                    .map_err(SetupError::Migrate)?;
            }
            sqlx::query(&self.sql(r#"INSERT INTO {t}migrations" (version) VALUES ($1)"#))
                .bind(index as i64 + 1)
                .execute(&mut *conn)
                .await
                .map_err(SetupError::Migrate)?;
        }
        Ok(())
    }

    fn sql(&self, template: &str) -> String {
        template
            .replace("{t}", &self.table)
            .replace("{i}", &self.prefix)
    }
}

/// A TTL in microseconds, bounded so that `now() + ttl` stays in range.
fn ttl_micros(ttl: Duration) -> i64 {
    clamp_duration(ttl, 1_000, MAX_TTL_SECS.saturating_mul(1_000_000))
}

#[async_trait]
impl TokenStore for PostgresTokenStore {
    async fn load(&self, key: &LinkKey) -> Result<Option<Versioned<LinkRecord>>, StoreError> {
        let row = sqlx::query(&self.sql(
            r#"SELECT profile_id, status, access_expires_at, linked_at, updated_at,
                    sealed_tokens, version, wise_user_id
             FROM {t}links"
             WHERE environment = $1 AND client_id = $2 AND user_id = $3
               AND unlinked_at IS NULL"#,
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
                r#"INSERT INTO {t}links" AS l (environment, client_id, user_id, profile_id,
                     status, access_expires_at, linked_at, updated_at, sealed_tokens, version,
                     wise_user_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10)
                 ON CONFLICT (environment, client_id, user_id) DO UPDATE SET
                     profile_id = EXCLUDED.profile_id, status = EXCLUDED.status,
                     access_expires_at = EXCLUDED.access_expires_at,
                     linked_at = EXCLUDED.linked_at, updated_at = EXCLUDED.updated_at,
                     sealed_tokens = EXCLUDED.sealed_tokens, version = l.version + 1,
                     wise_user_id = EXCLUDED.wise_user_id, unlinked_at = NULL
                 WHERE l.unlinked_at IS NOT NULL
                 RETURNING version"#,
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
                r#"UPDATE {t}links" SET profile_id = $4, status = $5, access_expires_at = $6,
                     linked_at = $7, updated_at = $8, sealed_tokens = $9, version = version + 1,
                     wise_user_id = $11
                 WHERE environment = $1 AND client_id = $2 AND user_id = $3 AND version = $10
                   AND unlinked_at IS NULL
                 RETURNING version"#,
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
            r#"UPDATE {t}links" SET sealed_tokens = ''::bytea, profile_id = 0, wise_user_id = NULL,
                 unlinked_at = (extract(epoch FROM now()) * 1000000000)::bigint
             WHERE environment = $1 AND client_id = $2 AND user_id = $3
               AND unlinked_at IS NULL"#,
        ))
        .bind(key.environment())
        .bind(key.client_id())
        .bind(key.user().as_str())
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
        let won = sqlx::query(&self.sql(
            r#"INSERT INTO {t}leases" AS l (environment, client_id, user_id, holder, until)
             VALUES ($1, $2, $3, $4, now() + $5::float8 * interval '1 microsecond')
             ON CONFLICT (environment, client_id, user_id)
             DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
             WHERE l.until <= now() OR l.holder = EXCLUDED.holder
             RETURNING holder"#,
        ))
        .bind(key.environment())
        .bind(key.client_id())
        .bind(key.user().as_str())
        .bind(&holder_to_db(holder)[..])
        .bind(ttl_micros(ttl))
        .fetch_optional(&self.pool)
        .await
        .map_err(op_error)?;
        Ok(won.is_some())
    }

    async fn release_lease(&self, key: &LinkKey, holder: LeaseHolder) -> Result<(), StoreError> {
        sqlx::query(&self.sql(
            r#"DELETE FROM {t}leases"
             WHERE environment = $1 AND client_id = $2 AND user_id = $3 AND holder = $4"#,
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

    /// Keyset pages over the partial index `links_listing` (existing links only), in byte
    /// order of the user ids (`COLLATE "C"`, whatever the database's default collation).
    async fn list_links(
        &self,
        environment: &str,
        client_id: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<LinkPage, StoreError> {
        let (limit, sql_limit) = page_limit(limit);
        let rows: Vec<String> = sqlx::query_scalar(&self.sql(
            r#"SELECT user_id FROM {t}links"
             WHERE environment = $1 AND client_id = $2
               AND user_id COLLATE "C" > $3 AND unlinked_at IS NULL
             ORDER BY user_id COLLATE "C" LIMIT $4"#,
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
            r#"SELECT user_id FROM {t}links"
             WHERE environment = $1 AND client_id = $2 AND wise_user_id = $3
               AND unlinked_at IS NULL
             LIMIT $4"#,
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
impl PendingStore for PostgresTokenStore {
    async fn insert(
        &self,
        state_hash: &[u8; 32],
        owner: &LinkKey,
        pending: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(op_error)?;
        let written: Result<(), StoreError> = async {
            // Serializes inserts of one owner across instances, so the cap holds exactly and
            // two trimming transactions cannot deadlock. Released at commit or rollback.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(format!(
                    "wise-oauth pending {}:{}{}:{}{}",
                    owner.environment().len(),
                    owner.environment(),
                    owner.client_id().len(),
                    owner.client_id(),
                    owner.user().as_str()
                ))
                .execute(&mut *tx)
                .await
                .map_err(op_error)?;
            // The global cap, fair per owner: when full, the owner gives up its own oldest
            // flow; an owner without flows is refused. Nobody else's flow is touched.
            let live: i64 = sqlx::query_scalar(
                &self.sql(r#"SELECT count(*) FROM {t}pending" WHERE expires_at > now()"#),
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(op_error)?;
            if live >= flows_cap(self.max_pending) {
                let freed = sqlx::query(&self.sql(
                    r#"DELETE FROM {t}pending" WHERE state_hash IN (
                         SELECT state_hash FROM {t}pending"
                         WHERE environment = $1 AND client_id = $2 AND user_id = $3
                           AND state_hash <> $4
                         ORDER BY seq LIMIT 1)"#,
                ))
                .bind(owner.environment())
                .bind(owner.client_id())
                .bind(owner.user().as_str())
                .bind(&state_hash[..])
                .execute(&mut *tx)
                .await
                .map_err(op_error)?;
                if freed.rows_affected() == 0 {
                    return Err(StoreError::Full);
                }
            }
            sqlx::query(&self.sql(
                r#"INSERT INTO {t}pending"
                     (state_hash, environment, client_id, user_id, payload, expires_at)
                 VALUES ($1, $2, $3, $4, $5, now() + $6::float8 * interval '1 microsecond')
                 ON CONFLICT (state_hash) DO UPDATE SET
                     seq = EXCLUDED.seq, environment = EXCLUDED.environment,
                     client_id = EXCLUDED.client_id, user_id = EXCLUDED.user_id,
                     payload = EXCLUDED.payload, created_at = EXCLUDED.created_at,
                     expires_at = EXCLUDED.expires_at"#,
            ))
            .bind(&state_hash[..])
            .bind(owner.environment())
            .bind(owner.client_id())
            .bind(owner.user().as_str())
            .bind(pending)
            .bind(ttl_micros(ttl))
            .execute(&mut *tx)
            .await
            .map_err(op_error)?;
            // The owner keeps its newest MAX_PENDING_PER_USER flows.
            sqlx::query(&self.sql(
                r#"DELETE FROM {t}pending"
                 WHERE environment = $1 AND client_id = $2 AND user_id = $3
                   AND seq NOT IN (
                     SELECT seq FROM {t}pending"
                     WHERE environment = $1 AND client_id = $2 AND user_id = $3
                     ORDER BY seq DESC LIMIT $4)"#,
            ))
            .bind(owner.environment())
            .bind(owner.client_id())
            .bind(owner.user().as_str())
            .bind(pending_cap())
            .execute(&mut *tx)
            .await
            .map_err(op_error)?;
            // Opportunistic purge of expired flows, a bounded batch per insert; rows another
            // instance is purging right now are skipped rather than waited for.
            sqlx::query(&self.sql(
                r#"DELETE FROM {t}pending" WHERE state_hash IN (
                     SELECT state_hash FROM {t}pending" WHERE expires_at <= now()
                     LIMIT $1 FOR UPDATE SKIP LOCKED)"#,
            ))
            .bind(PURGE_BATCH)
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
        let row = sqlx::query(&self.sql(
            r#"DELETE FROM {t}pending" WHERE state_hash = $1
             RETURNING payload, expires_at > now() AS live"#,
        ))
        .bind(&state_hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(op_error)?;
        let Some(row) = row else { return Ok(None) };
        let live: bool = row.try_get(1).map_err(op_error)?;
        if !live {
            return Ok(None);
        }
        row.try_get(0).map(Some).map_err(op_error)
    }
}
