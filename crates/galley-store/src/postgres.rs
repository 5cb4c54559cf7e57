//! PostgreSQL engine: a deadpool pool of tokio-postgres clients. A job runs on a blocking
//! thread that drives the async client with `Handle::block_on`, so service code is written
//! once, synchronously, for both engines.
//!
//! Failure behaviour callers rely on:
//! * the server unreachable, restarting or out of connections, or no free pooled connection
//!   within [`PgOptions::wait_timeout`] → [`StoreError::Unavailable`]; dead connections are
//!   dropped from the pool and the next job connects again, so the store recovers by itself;
//! * a write job is one transaction; its error, its panic, or any failed statement inside it
//!   rolls it back (PostgreSQL aborts a transaction after a failed statement, so a job that
//!   swallows a statement error and returns `Ok` still fails);
//! * a connection whose state is unknown after a job (panic, failed ROLLBACK) is discarded,
//!   never handed to the next job.

use crate::{Conn, Row, StoreError};
use deadpool_postgres::{
    Manager, ManagerConfig, Object, ObjectId, Pool, PoolError, RecyclingMethod, Runtime,
};
use galley_sql::{Dialect, SqlValue, POSTGRES};
use std::io::ErrorKind;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

/// Options of [`PgStore::open_with`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Most pooled connections (at least 2).
    pub pool_size: usize,
    /// How long a job waits for a free connection before failing with `Unavailable`.
    pub wait_timeout: Duration,
    /// How long opening one connection may take (unless the URL sets `connect_timeout`).
    pub connect_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 8,
            wait_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

pub struct PgStore {
    pool: Pool,
    /// For connections outside the pool (LISTEN).
    cfg: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// `true` once closed. Every job holds a read guard while it runs, so `close` (the
    /// writer) waits for the jobs in flight.
    gate: Arc<tokio::sync::RwLock<bool>>,
    /// Counters and the read time limit, behind one pointer (keeps [`crate::Store`] small).
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Write jobs started, for metrics.
    writes: std::sync::atomic::AtomicU64,
    /// The time limit of a read job's statements in milliseconds (0: none).
    read_timeout: std::sync::atomic::AtomicU64,
    /// The `statement_timeout` each pooled connection's session has (none listed: 0, the
    /// server's default is not assumed). Reads set it when it differs, writes override it
    /// with `SET LOCAL` in their `BEGIN`, so neither costs a round trip in the steady state.
    session_timeouts: std::sync::Mutex<std::collections::HashMap<ObjectId, u64>>,
}

impl PgStore {
    pub async fn open(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        Self::open_with(
            url,
            &PgOptions {
                pool_size,
                ..PgOptions::default()
            },
        )
        .await
    }

    pub async fn open_with(url: &str, opts: &PgOptions) -> Result<Self, StoreError> {
        let tls_choice = crate::postgres_tls::choose(url);
        let tls = crate::postgres_tls::connector(&tls_choice)?;
        let url = tls_choice.url.as_str();
        let mut cfg: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Config(format!(
                "invalid database URL: {e}. Expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
            ))
        })?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(opts.connect_timeout);
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name("galley");
        }
        // Notice a vanished server on idle pooled connections within about a minute.
        // (A server that vanishes without closing the socket would otherwise hang a job for
        // the kernel's default of about 11 minutes of probes.)
        if cfg.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            cfg.keepalives_idle(Duration::from_secs(30));
        }
        if cfg.get_keepalives_interval().is_none() {
            cfg.keepalives_interval(Duration::from_secs(10));
        }
        if cfg.get_keepalives_retries().is_none() {
            cfg.keepalives_retries(3);
        }
        let target = describe_target(&cfg);
        let listen_cfg = cfg.clone();
        let mgr = Manager::from_config(
            cfg,
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(opts.pool_size.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.wait_timeout))
            .create_timeout(Some(opts.connect_timeout + Duration::from_secs(1)))
            .recycle_timeout(Some(opts.wait_timeout))
            .build()
            .map_err(|e| {
                StoreError::Config(format!("cannot create the PostgreSQL connection pool: {e}"))
            })?;
        // Fail at start-up with a clear message rather than on the first request.
        let client = pool.get().await.map_err(|e| startup_error(&target, e))?;
        drop(client);
        Ok(PgStore {
            pool,
            cfg: listen_cfg,
            tls,
            gate: Arc::new(tokio::sync::RwLock::new(false)),
            shared: Default::default(),
        })
    }

    /// See [`crate::Store::set_read_timeout`] (milliseconds, 0: none).
    pub fn set_read_timeout(&self, ms: u64) {
        self.shared
            .read_timeout
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Listens on a notification channel on a dedicated connection (LISTEN cannot share a
    /// pooled one) and forwards each payload, plus an empty one each time LISTEN is (again)
    /// in place: notifications sent while disconnected are lost, so a receiver catches up
    /// then. Notifications are wake-ups: when the receiver lags by more than its queue, the
    /// excess is dropped rather than queued without bound. Ends when the receiver is dropped.
    pub fn listen(&self, channel: &str) -> tokio::sync::mpsc::Receiver<String> {
        use futures_util::StreamExt;
        let (tx, rx) = tokio::sync::mpsc::channel::<String>(1024);
        let cfg = self.cfg.clone();
        let tls = self.tls.clone();
        let listen = format!("LISTEN {}", galley_sql::POSTGRES.quote(channel));
        tokio::spawn(async move {
            while !tx.is_closed() {
                if let Ok((client, mut conn)) = cfg.connect(tls.clone()).await {
                    let (ntx, mut nrx) = tokio::sync::mpsc::unbounded_channel::<String>();
                    let driver = tokio::spawn(async move {
                        let mut messages =
                            futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                        while let Some(Ok(m)) = messages.next().await {
                            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                                if ntx.send(n.payload().to_owned()).is_err() {
                                    break;
                                }
                            }
                        }
                    });
                    if client.batch_execute(&listen).await.is_ok() {
                        let mut p = Some(String::new());
                        while let Some(note) = p {
                            match tx.try_send(note) {
                                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => break,
                                Ok(()) | Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {}
                            }
                            p = nrx.recv().await;
                        }
                    }
                    driver.abort();
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        rx
    }

    /// Runs `f` on a pooled connection; as one transaction when `write`.
    pub async fn run<T, E, F>(&self, write: bool, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
    {
        let guard = self.gate.clone().read_owned().await;
        if *guard {
            return Err(StoreError::Closed.into());
        }
        let client = self.pool.get().await.map_err(pool_error)?;
        if write {
            self.shared
                .writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let handle = Handle::current();
        let pool = self.pool.clone();
        let id = Object::id(&client);
        let shared = self.shared.clone();
        let limit = shared
            .read_timeout
            .load(std::sync::atomic::Ordering::Relaxed);
        // What to send before the job: reads need the session's timeout to be the limit.
        let set_session = {
            let mut m = shared
                .session_timeouts
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if m.len() > 4096 {
                m.clear(); // ids of connections long gone; the live ones are set again
            }
            let current = m.get(&id).copied().unwrap_or(0);
            (!write && current != limit).then_some(limit)
        };
        tokio::task::spawn_blocking(move || {
            let _guard = guard;
            let mut c = PgConn {
                client,
                handle,
                write,
                failure: None,
                ddl: false,
                broken: false,
            };
            if let Some(ms) = set_session {
                if let Err(e) = c.simple(&format!("SET statement_timeout = {ms}")) {
                    shared
                        .session_timeouts
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id);
                    drop(Object::take(c.client));
                    return Err(map_err(e).into());
                }
                shared
                    .session_timeouts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, ms);
            }
            let r = c.run_job(f);
            if c.ddl {
                // Cached statements of every pooled connection may now describe old columns.
                pool.manager().statement_caches.clear();
            }
            if c.broken || c.client.is_closed() {
                shared
                    .session_timeouts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                drop(Object::take(c.client));
            }
            r
        })
        .await
        .unwrap_or_else(|_| Err(StoreError::Query("the database task failed".into()).into()))
    }

    pub fn stats(&self) -> crate::StoreStats {
        let s = self.pool.status();
        let writes = self
            .shared
            .writes
            .load(std::sync::atomic::Ordering::Relaxed);
        crate::StoreStats {
            write_queue: s.waiting as u64,
            read_queue: 0,
            write_groups: writes,
            write_jobs: writes,
            pool_size: s.size as u64,
            pool_idle: s.available as u64,
            pool_max: s.max_size as u64,
        }
    }

    /// Stops accepting jobs, waits for the ones in flight, closes the pool.
    pub async fn close(&self) {
        let mut closed = self.gate.write().await;
        *closed = true;
        self.pool.close();
    }
}

/// `host:port` of the configured server, for messages.
fn describe_target(cfg: &tokio_postgres::Config) -> String {
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let db = cfg.get_dbname().or(cfg.get_user()).unwrap_or("postgres");
    format!("{host}:{port}, database \"{db}\"")
}

fn io_kind(e: &tokio_postgres::Error) -> Option<ErrorKind> {
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        src = s.source();
    }
    None
}

fn startup_error(target: &str, e: PoolError) -> StoreError {
    let msg = match &e {
        PoolError::Timeout(_) => format!(
            "timed out connecting to PostgreSQL at {target}. Check the host and port in the database URL, and that no firewall drops the connection"
        ),
        PoolError::Backend(be) => match be.as_db_error() {
            Some(db) if *db.code() == SqlState::INVALID_CATALOG_NAME => format!(
                "{} (at {target}). Create the database first (e.g. `createdb NAME` or `CREATE DATABASE NAME`), or fix the database name in the URL",
                db.message()
            ),
            Some(db)
                if *db.code() == SqlState::INVALID_PASSWORD
                    || *db.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                format!(
                    "PostgreSQL at {target} refused the login: {}. Check the user and password in the database URL (and pg_hba.conf)",
                    db.message()
                )
            }
            Some(db) => format!("PostgreSQL at {target} refused the connection: {}", db.message()),
            None => match io_kind(be) {
                Some(ErrorKind::ConnectionRefused) => format!(
                    "cannot connect to PostgreSQL at {target}: connection refused. Is PostgreSQL running there, and are the host and port in the database URL right?"
                ),
                Some(ErrorKind::TimedOut) => format!(
                    "timed out connecting to PostgreSQL at {target}. Check the host and port in the database URL, and that no firewall drops the connection"
                ),
                _ => format!(
                    "cannot connect to PostgreSQL at {target}: {be}. Check the host, port, user, password and database in the database URL"
                ),
            },
        },
        other => format!("cannot connect to PostgreSQL at {target}: {other}"),
    };
    StoreError::Config(msg)
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Closed => StoreError::Closed,
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
            StoreError::Unavailable("no free database connection within the wait timeout".into())
        }
        PoolError::Timeout(t) => {
            StoreError::Unavailable(format!("timed out connecting to the database ({t:?})"))
        }
        PoolError::Backend(be) => match map_err(be) {
            StoreError::Query(m) => StoreError::Unavailable(m),
            other => other,
        },
        other => StoreError::Unavailable(other.to_string()),
    }
}

struct PgConn {
    client: Object,
    handle: Handle,
    write: bool,
    /// First statement error of a write job: PostgreSQL has aborted its transaction.
    failure: Option<StoreError>,
    /// The job changed the schema; cached statements must be forgotten.
    ddl: bool,
    /// The connection's state is unknown; drop it rather than return it to the pool.
    broken: bool,
}

impl PgConn {
    fn run_job<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnOnce(&mut dyn Conn) -> Result<T, E>,
    {
        if self.write {
            // The session may carry the reads' time limit; writes are not limited.
            if let Err(e) = self
                .simple("BEGIN; SET LOCAL statement_timeout = 0")
                .map_err(map_err)
            {
                self.broken = true;
                self.ddl = false;
                return Err(e.into());
            }
        }
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(self)));
        let failure = self.failure.take();
        match r {
            Err(_) => {
                tracing::error!("a database job panicked; its changes were rolled back");
                self.rollback();
                if !self.write {
                    self.broken = true;
                }
                Err(StoreError::Query(
                    "the database job panicked; its changes were rolled back".into(),
                )
                .into())
            }
            Ok(Err(e)) => {
                self.rollback();
                Err(e)
            }
            Ok(Ok(v)) if !self.write => Ok(v),
            Ok(Ok(v)) => {
                if let Some(fail) = failure {
                    self.rollback();
                    return Err(swallowed(fail).into());
                }
                match self.simple("COMMIT") {
                    Ok(()) => Ok(v),
                    Err(e) => {
                        let err = map_err(e);
                        if matches!(err, StoreError::Unavailable(_)) {
                            self.broken = true;
                        }
                        self.rollback();
                        Err(err.into())
                    }
                }
            }
        }
    }

    fn rollback(&mut self) {
        if self.write && self.simple("ROLLBACK").is_err() {
            self.broken = true;
        }
        self.ddl = false;
    }

    fn simple(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.handle.block_on(self.client.batch_execute(sql))
    }

    /// Maps an error, remembering the first one of a write job.
    fn fail<T>(&mut self, sql: &str, e: tokio_postgres::Error) -> Result<T, StoreError> {
        if let Some(db) = e.as_db_error() {
            if *db.code() == SqlState::FEATURE_NOT_SUPPORTED && db.message().contains("cached plan")
            {
                // "cached plan must not change result type": the table changed under a cached
                // statement (possibly by another node); prepare it afresh next time.
                self.client.statement_cache.remove(sql, &[]);
            }
        }
        let err = match (&self.failure, e.code()) {
            (Some(first), Some(&SqlState::IN_FAILED_SQL_TRANSACTION)) => StoreError::Query(format!(
                "an earlier statement of this write job failed ({first}); PostgreSQL ignores the rest of the transaction"
            )),
            _ => map_err(e),
        };
        if matches!(err, StoreError::Unavailable(_)) {
            self.broken = true;
        }
        if self.write && self.failure.is_none() {
            self.failure = Some(err.clone());
        }
        Err(err)
    }

    fn note_ddl(&mut self, sql: &str) {
        let head = sql
            .trim_start()
            .get(..8)
            .unwrap_or_default()
            .to_ascii_uppercase();
        if ["CREATE", "ALTER", "DROP", "TRUNCATE", "COMMENT"]
            .iter()
            .any(|k| head.starts_with(k))
        {
            self.ddl = true;
        }
    }

    fn run_query(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let client = &self.client;
        let bound: Vec<Param<'_>> = params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            bound.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        self.handle.block_on(async {
            let stmt = client.prepare_cached(sql).await?;
            client.query(&stmt, &refs).await
        })
    }
}

/// See the SQLite engine: a job that swallowed a statement error cannot commit.
fn swallowed(e: StoreError) -> StoreError {
    match e {
        StoreError::Query(m) => StoreError::Query(format!(
            "a statement in this write job failed ({m}); the job was rolled back"
        )),
        other => other,
    }
}

fn map_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION {
            // detail: "Key (title)=(x) already exists." / "Key (lower(name::text))=(x) …"
            let columns = db
                .detail()
                .and_then(|d| d.strip_prefix("Key ("))
                .and_then(|d| d.split_once(")=("))
                .map(|(cols, _)| crate::row::index_columns(cols))
                .unwrap_or_default();
            return StoreError::UniqueViolation { columns };
        }
        if *code == SqlState::QUERY_CANCELED {
            return StoreError::TimedOut;
        }
        let c = code.code();
        if c.starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::TOO_MANY_CONNECTIONS
            || *code == SqlState::INVALID_CATALOG_NAME
        {
            return StoreError::Unavailable(format!("{c}: {}", db.message()));
        }
        return StoreError::Query(format!("{c}: {}", db.message()));
    }
    if e.is_closed() || io_kind(&e).is_some() {
        return StoreError::Unavailable(e.to_string());
    }
    StoreError::Query(e.to_string())
}

#[derive(Debug)]
struct Param<'a>(&'a SqlValue);

type BoxErr = Box<dyn std::error::Error + Sync + Send>;

fn bad(v: &str, ty: &Type) -> BoxErr {
    format!("cannot store {v:?} in a {ty} column").into()
}

fn parse_num<N: std::str::FromStr + Default>(s: &str, ty: &Type) -> Result<N, BoxErr> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(N::default());
    }
    t.parse().map_err(|_| bad(s, ty))
}

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxErr> {
        use SqlValue as V;
        let text_like = matches!(
            *ty,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
        );
        match self.0 {
            V::Null => Ok(IsNull::Yes),
            V::Text(s) => match *ty {
                Type::FLOAT8 => parse_num::<f64>(s, ty)?.to_sql(ty, out),
                Type::FLOAT4 => parse_num::<f32>(s, ty)?.to_sql(ty, out),
                Type::INT8 => parse_num::<i64>(s, ty)?.to_sql(ty, out),
                Type::INT4 => parse_num::<i32>(s, ty)?.to_sql(ty, out),
                Type::INT2 => parse_num::<i16>(s, ty)?.to_sql(ty, out),
                Type::BOOL => match s.trim() {
                    "1" | "true" | "TRUE" | "True" | "t" => true.to_sql(ty, out),
                    "" | "0" | "false" | "FALSE" | "False" | "f" => false.to_sql(ty, out),
                    _ => Err(bad(s, ty)),
                },
                Type::JSON | Type::JSONB => serde_json::from_str::<serde_json::Value>(s)
                    .unwrap_or_else(|_| serde_json::Value::String(s.clone()))
                    .to_sql(ty, out),
                // An empty datetime is NULL on PostgreSQL (`''` on SQLite).
                Type::TIMESTAMPTZ | Type::TIMESTAMP if s.trim().is_empty() => Ok(IsNull::Yes),
                Type::TIMESTAMPTZ => crate::row::parse_timestamp(s)
                    .ok_or_else(|| bad(s, ty))?
                    .to_sql(ty, out),
                Type::TIMESTAMP => crate::row::parse_timestamp(s)
                    .ok_or_else(|| bad(s, ty))?
                    .naive_utc()
                    .to_sql(ty, out),
                _ => s.as_str().to_sql(&Type::TEXT, out),
            },
            V::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)
                    .map_err(|_| bad(&i.to_string(), ty))?
                    .to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)
                    .map_err(|_| bad(&i.to_string(), ty))?
                    .to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::JSON | Type::JSONB => serde_json::Value::from(*i).to_sql(ty, out),
                _ if text_like => i.to_string().to_sql(&Type::TEXT, out),
                _ => (*i as f64).to_sql(&Type::FLOAT8, out),
            },
            V::Real(f) => match *ty {
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                Type::INT8 => (*f as i64).to_sql(ty, out),
                Type::INT4 => (*f as i32).to_sql(ty, out),
                Type::INT2 => (*f as i16).to_sql(ty, out),
                Type::BOOL => (*f != 0.0).to_sql(ty, out),
                Type::JSON | Type::JSONB => serde_json::json!(f).to_sql(ty, out),
                _ if text_like => f.to_string().to_sql(&Type::TEXT, out),
                _ => f.to_sql(&Type::FLOAT8, out),
            },
            V::Bool(b) => match *ty {
                Type::INT8 => i64::from(*b).to_sql(ty, out),
                Type::INT4 => i32::from(*b).to_sql(ty, out),
                Type::INT2 => i16::from(*b).to_sql(ty, out),
                Type::FLOAT8 => f64::from(u8::from(*b)).to_sql(ty, out),
                Type::JSON | Type::JSONB => serde_json::Value::Bool(*b).to_sql(ty, out),
                _ if text_like => b.to_string().to_sql(&Type::TEXT, out),
                _ => b.to_sql(&Type::BOOL, out),
            },
            V::Json(j) => match *ty {
                _ if text_like => j.to_string().to_sql(&Type::TEXT, out),
                Type::JSON => j.to_sql(ty, out),
                _ => j.to_sql(&Type::JSONB, out),
            },
            V::Timestamp(t) => match *ty {
                _ if text_like => t
                    .format("%Y-%m-%d %H:%M:%S%.3fZ")
                    .to_string()
                    .to_sql(&Type::TEXT, out),
                Type::TIMESTAMP => t.naive_utc().to_sql(ty, out),
                _ => t.to_sql(&Type::TIMESTAMPTZ, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// `numeric` decoded from PostgreSQL's binary form (base-10000 digits), to `Int` when it is
/// whole and fits, else `Real`: `SUM(bigint)` and `AVG(…)` return numeric.
struct Numeric(SqlValue);

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxErr> {
        let word = |i: usize| -> Result<u16, BoxErr> {
            raw.get(i..i + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or_else(|| "short numeric".into())
        };
        let ndigits = word(0)? as usize;
        let weight = word(2)? as i16 as i32;
        let sign = word(4)?;
        let dscale = word(6)?;
        match sign {
            0xC000 => return Ok(Numeric(SqlValue::Real(f64::NAN))),
            0xD000 => return Ok(Numeric(SqlValue::Real(f64::INFINITY))),
            0xF000 => return Ok(Numeric(SqlValue::Real(f64::NEG_INFINITY))),
            _ => {}
        }
        let digits = (0..ndigits)
            .map(|i| word(8 + 2 * i))
            .collect::<Result<Vec<_>, _>>()?;
        let mut int_part = String::new();
        if weight >= 0 {
            for idx in 0..=weight as usize {
                let d = digits.get(idx).copied().unwrap_or(0);
                if int_part.is_empty() {
                    int_part.push_str(&d.to_string());
                } else {
                    int_part.push_str(&format!("{d:04}"));
                }
            }
        }
        let mut frac = "0000".repeat((-weight - 1).max(0) as usize);
        for (idx, d) in digits.iter().enumerate() {
            if weight < idx as i32 {
                frac.push_str(&format!("{d:04}"));
            }
        }
        if int_part.is_empty() {
            int_part.push('0');
        }
        let neg = if sign == 0x4000 { "-" } else { "" };
        if dscale == 0 {
            if let Ok(i) = format!("{neg}{int_part}").parse::<i64>() {
                return Ok(Numeric(SqlValue::Int(i)));
            }
        }
        let text = format!(
            "{neg}{int_part}.{}",
            if frac.is_empty() { "0" } else { &frac }
        );
        Ok(Numeric(SqlValue::Real(
            text.parse().map_err(|_| "bad numeric")?,
        )))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

/// `uuid` as its usual hyphenated text.
struct Uuid(String);

impl<'a> FromSql<'a> for Uuid {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxErr> {
        if raw.len() != 16 {
            return Err("bad uuid".into());
        }
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Uuid(format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }
}

/// `void` (the result of `SELECT pg_advisory_xact_lock(…)` and friends).
struct Void;

impl<'a> FromSql<'a> for Void {
    fn from_sql(_: &Type, _: &'a [u8]) -> Result<Self, BoxErr> {
        Ok(Void)
    }
    fn from_sql_null(_: &Type) -> Result<Self, BoxErr> {
        Ok(Void)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::VOID
    }
}

fn decode(row: &tokio_postgres::Row, i: usize) -> Result<SqlValue, tokio_postgres::Error> {
    fn get<'a, T: FromSql<'a>>(
        row: &'a tokio_postgres::Row,
        i: usize,
    ) -> Result<Option<T>, tokio_postgres::Error> {
        row.try_get::<_, Option<T>>(i)
    }
    let ty = row.columns()[i].type_();
    let v = match *ty {
        Type::BOOL => get::<bool>(row, i)?.map(SqlValue::Bool),
        Type::INT2 => get::<i16>(row, i)?.map(|v| SqlValue::Int(v.into())),
        Type::INT4 => get::<i32>(row, i)?.map(|v| SqlValue::Int(v.into())),
        Type::INT8 => get::<i64>(row, i)?.map(SqlValue::Int),
        Type::OID => get::<u32>(row, i)?.map(|v| SqlValue::Int(v.into())),
        Type::FLOAT4 => get::<f32>(row, i)?.map(|v| SqlValue::Real(v.into())),
        Type::FLOAT8 => get::<f64>(row, i)?.map(SqlValue::Real),
        Type::NUMERIC => get::<Numeric>(row, i)?.map(|n| n.0),
        Type::JSON | Type::JSONB => get::<serde_json::Value>(row, i)?.map(SqlValue::Json),
        Type::TIMESTAMPTZ => get::<chrono::DateTime<chrono::Utc>>(row, i)?.map(SqlValue::Timestamp),
        Type::TIMESTAMP => {
            get::<chrono::NaiveDateTime>(row, i)?.map(|n| SqlValue::Timestamp(n.and_utc()))
        }
        Type::DATE => get::<chrono::NaiveDate>(row, i)?
            .map(|d| SqlValue::Text(d.format("%Y-%m-%d").to_string())),
        Type::TIME => get::<chrono::NaiveTime>(row, i)?
            .map(|t| SqlValue::Text(t.format("%H:%M:%S%.f").to_string())),
        Type::UUID => get::<Uuid>(row, i)?.map(|u| SqlValue::Text(u.0)),
        Type::BYTEA => get::<Vec<u8>>(row, i)?
            .map(|b| SqlValue::Text(String::from_utf8_lossy(&b).into_owned())),
        Type::CHAR => get::<i8>(row, i)?.map(|c| SqlValue::Text(char::from(c as u8).to_string())),
        Type::VOID => get::<Void>(row, i)?.map(|_| SqlValue::Null),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::NAME_ARRAY => {
            get::<Vec<Option<String>>>(row, i)?.map(|v| SqlValue::Json(serde_json::json!(v)))
        }
        Type::INT8_ARRAY => {
            get::<Vec<Option<i64>>>(row, i)?.map(|v| SqlValue::Json(serde_json::json!(v)))
        }
        Type::INT4_ARRAY => {
            get::<Vec<Option<i32>>>(row, i)?.map(|v| SqlValue::Json(serde_json::json!(v)))
        }
        // text, varchar, bpchar, name, citext, …; anything else fails with its type name.
        _ => get::<String>(row, i)?.map(SqlValue::Text),
    };
    Ok(v.unwrap_or(SqlValue::Null))
}

fn decode_rows(rows: &[tokio_postgres::Row]) -> Result<Vec<Row>, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let columns: Arc<[String]> = first
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    rows.iter()
        .map(|r| {
            let values = (0..columns.len())
                .map(|i| {
                    decode(r, i).map_err(|e| {
                        StoreError::Query(format!(
                            "cannot read column \"{}\" of type {}: {e}; cast it in the query (e.g. ::text)",
                            columns[i],
                            r.columns()[i].type_()
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Row { columns: columns.clone(), values })
        })
        .collect()
}

impl Conn for PgConn {
    fn dialect(&self) -> &'static Dialect {
        &POSTGRES
    }

    fn query(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        self.note_ddl(sql);
        let mut rows = self.run_query(sql, params);
        if !self.write {
            // Outside a transaction a statement whose cached plan went stale can simply be
            // prepared again.
            if let Err(e) = &rows {
                if e.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED) {
                    self.client.statement_cache.remove(sql, &[]);
                    rows = self.run_query(sql, params);
                }
            }
        }
        match rows {
            Ok(rows) => decode_rows(&rows),
            Err(e) => self.fail(sql, e),
        }
    }

    fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        self.note_ddl(sql);
        let client = &self.client;
        let bound: Vec<Param<'_>> = params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            bound.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let r = self.handle.block_on(async {
            let stmt = client.prepare_cached(sql).await?;
            client.execute(&stmt, &refs).await
        });
        match r {
            Ok(n) => Ok(n),
            Err(e) => self.fail(sql, e),
        }
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        // Batches are for DDL and migrations: assume they changed the schema.
        self.ddl = true;
        match self.simple(sql) {
            Ok(()) => Ok(()),
            Err(e) => self.fail(sql, e),
        }
    }
}
