//! A PostgreSQL schema of its own for each test that uses the database, dropped at the end;
//! the tests are skipped (and say so) without a database URL.
#![allow(dead_code, unreachable_pub)]

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};
use wise_oauth::sqlx::PostgresTokenStore;

pub fn database_url(test: &str) -> Option<String> {
    let url = std::env::var("WISE_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .ok()
        .filter(|u| u.starts_with("postgres"));
    if url.is_none() {
        eprintln!(
            "\n*** SKIPPED {test}: set DATABASE_URL (or WISE_TEST_DATABASE_URL) to a PostgreSQL \
             URL, e.g. postgres://postgres@127.0.0.1:5432/test, to run it ***\n"
        );
    }
    url
}

/// The schema of one test; dropped (with everything in it) when this is dropped, also when
/// the test panics.
pub struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    pub fn new(url: String) -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        Self {
            url,
            name: format!("wise_durable_{}", &suffix[..16]),
        }
    }

    pub async fn pool(&self) -> PgPool {
        // Tagged with the schema name, so the cleanup can end this test's connections.
        let options = PgConnectOptions::from_str(&self.url)
            .expect("a valid database URL")
            .application_name(&self.name);
        PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .expect("connect to the test database")
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new store (own pool) on this test's schema.
    pub async fn store(&self) -> PostgresTokenStore {
        PostgresTokenStore::builder(self.pool().await)
            .schema(&self.name)
            .build()
            .await
            .expect("build the store")
    }

    /// Everything stored in the schema, as text: `pg_dump` of the schema when it works,
    /// otherwise every row of every table cast to text (bytea as `\x` hex).
    pub async fn dump(&self) -> String {
        let pg_dump = std::process::Command::new("pg_dump")
            .args(["--no-owner", "--schema", &self.name, "--dbname", &self.url])
            .output();
        if let Ok(out) = pg_dump {
            if out.status.success() {
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(
                    text.contains(&self.name),
                    "pg_dump of {}: {text}",
                    self.name
                );
                return text;
            }
            eprintln!(
                "pg_dump failed ({}); dumping with SELECT instead: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let pool = self.pool().await;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
        )
        .bind(&self.name)
        .fetch_all(&pool)
        .await
        .expect("list tables");
        assert!(!tables.is_empty(), "no tables in {}", self.name);
        let mut dump = String::new();
        for table in tables {
            let rows = sqlx::query(&format!(
                "SELECT t::text FROM \"{}\".\"{table}\" t",
                self.name
            ))
            .fetch_all(&pool)
            .await
            .expect("dump a table");
            dump.push_str(&format!("-- {table}\n"));
            for row in rows {
                dump.push_str(&row.get::<String, _>(0));
                dump.push('\n');
            }
        }
        pool.close().await;
        dump
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: clean up on a thread with a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&name)
                .execute(&mut conn)
                .await?;
                sqlx::query("SET lock_timeout = '20s'")
                    .execute(&mut conn)
                    .await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        });
        if let Ok(Err(err)) = cleanup.join() {
            eprintln!("could not drop test schema {}: {err}", self.name);
        }
    }
}
