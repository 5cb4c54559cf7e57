//! The one database interface Galley's services use, over two engines:
//!
//! * SQLite ([`sqlite`]): one writer thread owns the write connection and commits queued
//!   write jobs together (group commit), each job in its own SAVEPOINT so a failing job
//!   rolls back alone; a pool of reader connections serves reads.
//! * PostgreSQL ([`postgres`]): a connection pool; each write job is one transaction.
//!
//! Services write their logic once, as a synchronous closure over [`Conn`], and hand it to
//! [`Store::read`] or [`Store::write`]; the closure runs off the async runtime.
//!
//! Architecture invariant: SQL that differs between engines lives in [`galley_sql::Dialect`];
//! engine-specific code in this crate only binds values, decodes rows and maps errors.

mod error;
pub mod migrations;
pub mod postgres;
mod postgres_tls;
mod row;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::StoreError;
pub use row::Row;

use galley_sql::{Dialect, Sql, SqlValue};
use std::time::Duration;

/// A connection inside a read or a write job.
///
/// In a write job, a statement that fails fails the whole job on both engines, even if the
/// job returns `Ok` afterwards (PostgreSQL aborts the transaction after an error, and SQLite
/// follows suit so code behaves the same on both): avoid expected errors in SQL instead
/// (`ON CONFLICT`, `IF NOT EXISTS`). Jobs must not run `BEGIN`/`COMMIT`/`ROLLBACK`.
/// Read jobs run each statement on its own (no snapshot across statements).
pub trait Conn {
    fn dialect(&self) -> &'static Dialect;
    fn query(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError>;
    fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError>;
    /// Runs several `;`-separated statements without parameters (DDL, migrations).
    fn batch(&mut self, sql: &str) -> Result<(), StoreError>;
    /// Runs a query returning one row with an integer column `n` (a `COUNT(*) AS n`).
    /// SQLite's readers may answer from counts taken since the last commit: a count of the
    /// same query over unchanged data is the same number, and it costs a full scan.
    fn count(&mut self, sql: &str, params: &[SqlValue]) -> Result<i64, StoreError> {
        Ok(self
            .query(sql, params)?
            .first()
            .map(|r| r.int("n"))
            .unwrap_or(0))
    }
}

/// Conveniences over [`Conn`] for [`Sql`] fragments.
pub trait ConnExt: Conn {
    fn query_sql(&mut self, sql: &Sql) -> Result<Vec<Row>, StoreError> {
        self.query(&sql.text, &sql.params)
    }
    fn execute_sql(&mut self, sql: &Sql) -> Result<u64, StoreError> {
        self.execute(&sql.text, &sql.params)
    }
    fn count_sql(&mut self, sql: &Sql) -> Result<i64, StoreError> {
        self.count(&sql.text, &sql.params)
    }
    fn query_one(&mut self, sql: &str, params: &[SqlValue]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}
impl<C: Conn + ?Sized> ConnExt for C {}

/// Options for opening a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `postgres://…` for PostgreSQL; otherwise ignored.
    pub database_url: Option<String>,
    /// Directory holding `data.db` for SQLite.
    pub data_dir: std::path::PathBuf,
    /// SQLite reader connections / PostgreSQL pool size.
    pub pool_size: usize,
    /// SQLite `synchronous=FULL` instead of NORMAL.
    pub sync_full: bool,
}

/// What the store is doing now, for metrics (read at scrape time, never on the request path).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Write jobs queued and not yet started (SQLite: for the writer thread; PostgreSQL:
    /// callers waiting for a pooled connection, reads included).
    pub write_queue: u64,
    /// Read jobs waiting for a reader connection (SQLite).
    pub read_queue: u64,
    /// Write transactions committed or rolled back (SQLite: groups; PostgreSQL: jobs).
    pub write_groups: u64,
    /// Write jobs run in them (SQLite: `write_jobs / write_groups` is the mean group size).
    pub write_jobs: u64,
    /// PostgreSQL pool: connections open, idle, and the pool's limit (0 on SQLite).
    pub pool_size: u64,
    pub pool_idle: u64,
    pub pool_max: u64,
}

/// A database, whichever engine runs it.
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens the configured engine and runs the embedded system migrations.
    pub async fn open(cfg: &StoreConfig) -> Result<Store, StoreError> {
        let store = match &cfg.database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Store::Postgres(postgres::PgStore::open(url, cfg.pool_size).await?)
            }
            Some(url) => {
                // Never echo a password.
                let shown = match (url.find("://"), url.rfind('@')) {
                    (Some(s), Some(at)) if at > s => format!("{}://…{}", &url[..s], &url[at..]),
                    _ => url.chars().take(40).collect(),
                };
                return Err(StoreError::Config(format!(
                    "unsupported database URL {shown:?}: use postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE, or omit it for embedded SQLite"
                )));
            }
            None => Store::Sqlite(sqlite::SqliteStore::open(
                &cfg.data_dir,
                cfg.pool_size,
                cfg.sync_full,
            )?),
        };
        store.write(migrations::run).await?;
        Ok(store)
    }

    /// Notifications published on `channel` (PostgreSQL `NOTIFY`, delivered only when the
    /// sending transaction commits), and an empty one after each (re)connection; `None` on
    /// SQLite, which has one node. Any role that can connect may NOTIFY: treat a payload as
    /// a wake-up, never as data.
    pub fn listen(&self, channel: &str) -> Option<tokio::sync::mpsc::Receiver<String>> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(p) => Some(p.listen(channel)),
        }
    }

    /// A consistent copy of the database in the file `dest` (SQLite only: on PostgreSQL the
    /// database's own tools, pg_dump and point-in-time recovery, are the way).
    pub async fn backup_to(&self, dest: std::path::PathBuf) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => {
                let path = s.path().to_owned();
                tokio::task::spawn_blocking(move || sqlite::backup_file(&path, &dest))
                    .await
                    .map_err(|_| StoreError::Query("the backup task failed".into()))?
            }
            Store::Postgres(_) => Err(StoreError::Config(
                "backups of PostgreSQL are made with its own tools (pg_dump, point-in-time recovery)".into(),
            )),
        }
    }

    pub fn stats(&self) -> StoreStats {
        match self {
            Store::Sqlite(s) => s.stats(),
            Store::Postgres(p) => p.stats(),
        }
    }

    pub fn dialect(&self) -> &'static Dialect {
        match self {
            Store::Sqlite(_) => &galley_sql::SQLITE,
            Store::Postgres(_) => &galley_sql::POSTGRES,
        }
    }

    /// Sets the time limit of each read job's statements (`None`: no limit). A statement
    /// past it is stopped and fails with [`StoreError::TimedOut`], so that a slow query
    /// (a client's filter over unindexed columns) cannot hold a reader or a pooled
    /// connection. Write jobs are not limited.
    pub fn set_read_timeout(&self, limit: Option<Duration>) {
        let ms = limit.map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        match self {
            Store::Sqlite(s) => s.set_read_timeout(ms),
            Store::Postgres(p) => p.set_read_timeout(ms),
        }
    }

    /// OpenTelemetry's `db.system` name of the engine.
    fn system_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgresql",
        }
    }

    /// Runs `f` on a read connection, off the async runtime.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
    {
        use tracing::Instrument;
        // Target `galley_trace`: exported as a child of the request's span with
        // `--otlp-endpoint`, skipped at no cost otherwise (galley_ops::traces).
        let span =
            tracing::info_span!(target: "galley_trace", "db.read", db.system = self.system_name());
        match self {
            Store::Sqlite(s) => s.read(f).instrument(span).await,
            Store::Postgres(p) => p.run(false, f).instrument(span).await,
        }
    }

    /// Runs `f` atomically: everything it wrote commits, or nothing does if it returns an
    /// error. Returns only after the commit is durable.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
    {
        use tracing::Instrument;
        let span =
            tracing::info_span!(target: "galley_trace", "db.write", db.system = self.system_name());
        match self {
            Store::Sqlite(s) => s.write(f).instrument(span).await,
            Store::Postgres(p) => p.run(true, f).instrument(span).await,
        }
    }

    /// Stops accepting writes and waits for queued (SQLite) or running (PostgreSQL) ones to
    /// commit; later writes fail with [`StoreError::Closed`].
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(p) => p.close().await,
        }
    }
}
