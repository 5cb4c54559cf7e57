//! SQLite engine: one writer thread with group commit, a pool of reader connections.

use crate::{Conn, Row, StoreError};
use crossbeam_channel::{Receiver, Sender};
use galley_sql::{Dialect, SqlValue, SQLITE};
use rusqlite::types::{Value as SqlV, ValueRef};
use rusqlite::{ffi, Connection, OpenFlags};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Most jobs committed in one transaction; bounds the latency a job can add to others.
const MAX_GROUP: usize = 256;

type Deliver = Box<dyn FnOnce(Option<StoreError>) + Send>;
type Job = Box<dyn FnOnce(&mut dyn Conn) -> (bool, Deliver) + Send>;

pub struct SqliteStore {
    path: PathBuf,
    jobs: Mutex<Option<Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: (Sender<Connection>, Receiver<Connection>),
}

fn open_conn(path: &Path, sync_full: bool, read_only: bool) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        StoreError::Config(format!(
            "cannot open the database {}: {e}. Check that the data directory is writable, or pass --dir with one that is",
            path.display()
        ))
    })?;
    let sync = if sync_full { "FULL" } else { "NORMAL" };
    conn.execute_batch(&format!(
        "PRAGMA busy_timeout = 10000;
         PRAGMA journal_mode = WAL;
         PRAGMA journal_size_limit = 200000000;
         PRAGMA synchronous = {sync};
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -32000;"
    ))
    .map_err(map_err)?;
    if read_only {
        conn.execute_batch("PRAGMA query_only = 1;").map_err(map_err)?;
    }
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

impl SqliteStore {
    pub fn open(dir: &Path, readers: usize, sync_full: bool) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Config(format!(
                "cannot create the data directory {}: {e}. Pass --dir with a writable folder",
                dir.display()
            ))
        })?;
        let probe = dir.join(".write-test");
        std::fs::write(&probe, b"").map_err(|e| {
            StoreError::Config(format!(
                "the data directory {} is not writable: {e}. Fix its permissions or pass --dir with a writable folder",
                dir.display()
            ))
        })?;
        let _ = std::fs::remove_file(&probe);
        let path = dir.join("data.db");
        let writer_conn = open_conn(&path, sync_full, false)?;
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let writer = std::thread::Builder::new()
            .name("galley-sqlite-writer".into())
            .spawn(move || writer_loop(writer_conn, rx))
            .map_err(|e| StoreError::Query(format!("cannot start the writer thread: {e}")))?;
        let pool = crossbeam_channel::unbounded();
        for _ in 0..readers.max(1) {
            pool.0
                .send(open_conn(&path, sync_full, true)?)
                .map_err(|_| StoreError::Closed)?;
        }
        Ok(SqliteStore {
            path,
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            readers: pool,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
    {
        let (put, take) = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = take.recv().map_err(|_| StoreError::Closed)?;
            let mut c = SqliteConn(conn);
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut c)));
            let _ = put.send(c.0);
            r.unwrap_or_else(|_| Err(StoreError::Query("read job panicked".into()).into()))
        })
        .await
        .unwrap_or_else(|_| Err(StoreError::Query("read task failed".into()).into()))
    }

    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
    {
        let (otx, orx) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |c: &mut dyn Conn| {
            let r = f(c);
            let ok = r.is_ok();
            let deliver: Deliver = Box::new(move |commit_err| {
                let r = match (r, commit_err) {
                    (Ok(_), Some(e)) => Err(E::from(e)),
                    (r, _) => r,
                };
                let _ = otx.send(r);
            });
            (ok, deliver)
        });
        let sent = match self.jobs.lock() {
            Ok(g) => g.as_ref().map(|tx| tx.send(job).is_ok()).unwrap_or(false),
            Err(_) => false,
        };
        if !sent {
            return Err(StoreError::Closed.into());
        }
        orx.await.unwrap_or_else(|_| Err(StoreError::Query("write job failed".into()).into()))
    }

    pub async fn close(&self) {
        if let Ok(mut g) = self.jobs.lock() {
            g.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut g| g.take());
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

fn writer_loop(conn: Connection, rx: Receiver<Job>) {
    let mut c = SqliteConn(conn);
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        if let Err(e) = c.0.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "cannot begin a write transaction");
            // Run each job in its own attempt below; they will fail and report.
        }
        let mut delivers = Vec::with_capacity(group.len());
        for job in group {
            if c.0.execute_batch("SAVEPOINT job").is_err() {
                continue;
            }
            match std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut c))) {
                Ok((ok, deliver)) => {
                    if !ok {
                        let _ = c.0.execute_batch("ROLLBACK TO job");
                    }
                    let _ = c.0.execute_batch("RELEASE job");
                    delivers.push(deliver);
                }
                Err(_) => {
                    tracing::error!("a write job panicked; its changes were rolled back");
                    let _ = c.0.execute_batch("ROLLBACK TO job; RELEASE job");
                }
            }
        }
        match c.0.execute_batch("COMMIT") {
            Ok(()) => delivers.into_iter().for_each(|d| d(None)),
            Err(e) => {
                let _ = c.0.execute_batch("ROLLBACK");
                let msg = e.to_string();
                delivers.into_iter().for_each(|d| d(Some(StoreError::Query(msg.clone()))));
            }
        }
    }
    // Flush the WAL into the main file on a clean shutdown.
    let _ = c.0.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
}

struct SqliteConn(Connection);

fn to_sqlite(v: &SqlValue) -> SqlV {
    match v {
        SqlValue::Null => SqlV::Null,
        SqlValue::Int(i) => SqlV::Integer(*i),
        SqlValue::Real(f) => SqlV::Real(*f),
        SqlValue::Text(s) => SqlV::Text(s.clone()),
        SqlValue::Bool(b) => SqlV::Integer(*b as i64),
        SqlValue::Json(j) => SqlV::Text(j.to_string()),
        SqlValue::Timestamp(t) => SqlV::Text(t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()),
    }
}

fn from_sqlite(v: ValueRef<'_>) -> SqlValue {
    match v {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Int(i),
        ValueRef::Real(f) => SqlValue::Real(f),
        ValueRef::Text(t) | ValueRef::Blob(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
    }
}

fn map_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        {
            // "UNIQUE constraint failed: posts.title, posts.slug"
            let columns = msg
                .as_deref()
                .and_then(|m| m.split_once(':'))
                .map(|(_, cols)| {
                    cols.split(',')
                        .map(|c| c.trim().rsplit('.').next().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            return StoreError::UniqueViolation { columns };
        }
    }
    StoreError::Query(e.to_string())
}

impl Conn for SqliteConn {
    fn dialect(&self) -> &'static Dialect {
        &SQLITE
    }

    fn query(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.0.prepare_cached(sql).map_err(map_err)?;
        let columns: Arc<[String]> = stmt.column_names().into_iter().map(str::to_owned).collect();
        let n = columns.len();
        let bound: Vec<SqlV> = params.iter().map(to_sqlite).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(bound.iter())).map_err(map_err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(map_err)? {
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                values.push(from_sqlite(r.get_ref(i).map_err(map_err)?));
            }
            out.push(Row { columns: columns.clone(), values });
        }
        Ok(out)
    }

    fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        let mut stmt = self.0.prepare_cached(sql).map_err(map_err)?;
        let bound: Vec<SqlV> = params.iter().map(to_sqlite).collect();
        stmt.execute(rusqlite::params_from_iter(bound.iter()))
            .map(|n| n as u64)
            .map_err(map_err)
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.0.execute_batch(sql).map_err(map_err)
    }
}
