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
use std::time::Duration;

/// Most jobs committed in one transaction; bounds the latency a job can add to others.
const MAX_GROUP: usize = 256;

/// How long a statement waits for a lock held by another process before failing.
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of [`SqliteStore::open_with`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Reader connections (at least 1).
    pub readers: usize,
    /// `synchronous=FULL` instead of NORMAL.
    pub sync_full: bool,
    /// SQLite `busy_timeout`: how long to wait for another process's lock.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            readers: 4,
            sync_full: false,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
        }
    }
}

/// A write job queued for the writer thread.
trait WriteJob: Send {
    /// Runs the job inside its savepoint; true when it returned `Ok`. May panic.
    fn run(&mut self, c: &mut SqliteConn) -> bool;
    /// Hands the outcome to the caller: `None` once the job's changes are committed (or it
    /// returned its own error), `Some(e)` when they were not.
    fn finish(self: Box<Self>, err: Option<StoreError>);
}

struct Pending<T, E, F> {
    f: Option<F>,
    out: Option<Result<T, E>>,
    tx: tokio::sync::oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> WriteJob for Pending<T, E, F>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
{
    fn run(&mut self, c: &mut SqliteConn) -> bool {
        let Some(f) = self.f.take() else { return false };
        let r = f(c);
        let ok = r.is_ok();
        self.out = Some(r);
        ok
    }

    fn finish(self: Box<Self>, err: Option<StoreError>) {
        let r = match (self.out, err) {
            (Some(Ok(_)), Some(e)) => Err(E::from(e)),
            (Some(r), _) => r,
            (None, e) => Err(E::from(e.unwrap_or_else(|| {
                StoreError::Query("the write job did not run".into())
            }))),
        };
        let _ = self.tx.send(r);
    }
}

/// A read job for one of the reader threads.
trait ReadJob: Send {
    fn run(self: Box<Self>, c: &mut SqliteConn);
}

struct PendingRead<F, T, E> {
    f: F,
    tx: tokio::sync::oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> ReadJob for PendingRead<F, T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
{
    fn run(self: Box<Self>, c: &mut SqliteConn) {
        let PendingRead { f, tx } = *self;
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(c)));
        // A job that left a transaction open would pin an old snapshot for every later
        // reader of this connection.
        if !c.conn.is_autocommit() {
            let _ = c.conn.execute_batch("ROLLBACK");
        }
        let _ = tx.send(
            r.unwrap_or_else(|_| Err(StoreError::Query("the read job panicked".into()).into())),
        );
    }
}

/// Counters kept by the writer thread.
#[derive(Default)]
struct WriterCounts {
    groups: std::sync::atomic::AtomicU64,
    jobs: std::sync::atomic::AtomicU64,
}

pub struct SqliteStore {
    path: PathBuf,
    counts: Arc<WriterCounts>,
    jobs: Mutex<Option<Sender<Box<dyn WriteJob>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Reader threads, each owning one connection, take jobs from this queue: no thread is
    /// created or woken per read beyond the one that runs it.
    reads: Sender<Box<dyn ReadJob>>,
    /// The time limit of a read job in milliseconds (0: none).
    read_timeout: Arc<std::sync::atomic::AtomicU64>,
}

/// How many SQLite virtual-machine steps run between two looks at a reader's deadline.
const PROGRESS_STEPS: std::os::raw::c_int = 4000;

/// The writer connection and the count cache it invalidates.
struct Writer {
    c: SqliteConn,
    counts: Arc<CountCache>,
}

fn open_conn(path: &Path, opts: &SqliteOptions, read_only: bool) -> Result<Connection, StoreError> {
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
    let sync = if opts.sync_full { "FULL" } else { "NORMAL" };
    conn.busy_timeout(opts.busy_timeout).map_err(map_err)?;
    // Only the writer switches the journal mode (that needs a write lock); WAL is then a
    // property of the file that readers pick up.
    if !read_only {
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| startup_err(path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Config(format!(
                "cannot switch {} to WAL mode (it stays {mode:?}); put the data directory on a local file system",
                path.display()
            )));
        }
    }
    conn.execute_batch(&format!(
        "PRAGMA journal_size_limit = 200000000;
         PRAGMA synchronous = {sync};
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -32000;"
    ))
    .map_err(|e| startup_err(path, e))?;
    if read_only {
        conn.execute_batch("PRAGMA query_only = 1;")
            .map_err(map_err)?;
    }
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

fn startup_err(path: &Path, e: rusqlite::Error) -> StoreError {
    match map_err(e) {
        StoreError::Unavailable(m) => StoreError::Config(format!(
            "the database {} is locked by another process ({m}); stop the other Galley using this data directory",
            path.display()
        )),
        StoreError::Query(m) | StoreError::Config(m) => StoreError::Config(format!(
            "cannot set up the database {}: {m}. Is it a SQLite database on a local, writable file system?",
            path.display()
        )),
        other => other,
    }
}

impl SqliteStore {
    pub fn open(dir: &Path, readers: usize, sync_full: bool) -> Result<Self, StoreError> {
        Self::open_with(
            dir,
            &SqliteOptions {
                readers,
                sync_full,
                ..SqliteOptions::default()
            },
        )
    }

    pub fn open_with(dir: &Path, opts: &SqliteOptions) -> Result<Self, StoreError> {
        Self::open_file(dir, "data.db", opts)
    }

    /// A database file other than `data.db` in `dir` (the auxiliary database of the logs:
    /// its own writer thread, so logging never queues behind data writes).
    pub fn open_file(dir: &Path, file: &str, opts: &SqliteOptions) -> Result<Self, StoreError> {
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
        let path = dir.join(file);
        let writer_conn = open_conn(&path, opts, false)?;
        let counts = Arc::new(CountCache::default());
        let (reads, read_queue) = crossbeam_channel::unbounded::<Box<dyn ReadJob>>();
        let read_timeout = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let epoch = std::time::Instant::now();
        let now_ms = move || u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        for i in 0..opts.readers.max(1) {
            let mut c = SqliteConn::new(open_conn(&path, opts, true)?, false);
            c.counts = Some(counts.clone());
            // The running job's deadline (ms since `epoch`); the progress handler stops the
            // statement once it has passed (SQLITE_INTERRUPT).
            let deadline = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
            let d = deadline.clone();
            c.conn.progress_handler(
                PROGRESS_STEPS,
                Some(move || now_ms() > d.load(std::sync::atomic::Ordering::Relaxed)),
            );
            let queue = read_queue.clone();
            let limit = read_timeout.clone();
            std::thread::Builder::new()
                .name(format!("galley-sqlite-reader-{i}"))
                .spawn(move || {
                    use std::sync::atomic::Ordering::Relaxed;
                    // Ends when the store (the queue's sender) is dropped.
                    while let Ok(job) = queue.recv() {
                        let ms = limit.load(Relaxed);
                        deadline.store(
                            if ms == 0 {
                                u64::MAX
                            } else {
                                now_ms().saturating_add(ms)
                            },
                            Relaxed,
                        );
                        job.run(&mut c);
                        deadline.store(u64::MAX, Relaxed);
                    }
                })
                .map_err(|e| StoreError::Config(format!("cannot start a reader thread: {e}")))?;
        }
        let (tx, rx) = crossbeam_channel::unbounded::<Box<dyn WriteJob>>();
        let writer_counts = Arc::new(WriterCounts::default());
        let wc = writer_counts.clone();
        let writer = std::thread::Builder::new()
            .name("galley-sqlite-writer".into())
            .spawn(move || {
                writer_loop(
                    Writer {
                        c: SqliteConn::new(writer_conn, true),
                        counts,
                    },
                    rx,
                    &wc,
                )
            })
            .map_err(|e| StoreError::Config(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            path,
            counts: writer_counts,
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            reads,
            read_timeout,
        })
    }

    /// See [`crate::Store::set_read_timeout`] (milliseconds, 0: none).
    pub fn set_read_timeout(&self, ms: u64) {
        self.read_timeout
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> crate::StoreStats {
        use std::sync::atomic::Ordering::Relaxed;
        let write_queue = match self.jobs.lock() {
            Ok(g) => g.as_ref().map_or(0, |q| q.len() as u64),
            Err(_) => 0,
        };
        crate::StoreStats {
            write_queue,
            read_queue: self.reads.len() as u64,
            write_groups: self.counts.groups.load(Relaxed),
            write_jobs: self.counts.jobs.load(Relaxed),
            ..Default::default()
        }
    }

    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Box<dyn ReadJob> = Box::new(PendingRead { f, tx });
        if self.reads.send(job).is_err() {
            return Err(StoreError::Closed.into());
        }
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Query("the read job did not run".into()).into()))
    }

    /// Queues `f` for the writer thread. Returns after the group holding it has committed;
    /// the job's own error (or any statement error inside it) rolls back only this job.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Box<dyn WriteJob> = Box::new(Pending {
            f: Some(f),
            out: None,
            tx,
        });
        let sent = match self.jobs.lock() {
            Ok(g) => g.as_ref().is_some_and(|q| q.send(job).is_ok()),
            Err(_) => false,
        };
        if !sent {
            return Err(StoreError::Closed.into());
        }
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Query("the writer thread stopped".into()).into()))
    }

    /// Stops accepting writes, waits until every queued write has committed, checkpoints the
    /// WAL. Reads keep working.
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

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and stop on its own.
        if let Ok(mut g) = self.jobs.lock() {
            g.take();
        }
    }
}

/// A consistent copy of the database at `dest` (which must not exist), made by `VACUUM
/// INTO` on a connection of its own: one read transaction over a WAL snapshot, so writers
/// go on while it runs and the copy holds every write committed before it began.
pub fn backup_file(src: &Path, dest: &Path) -> Result<(), StoreError> {
    let conn = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(map_err)?;
    conn.busy_timeout(DEFAULT_BUSY_TIMEOUT).map_err(map_err)?;
    let dest = dest
        .to_str()
        .ok_or_else(|| StoreError::Config("the backup path is not UTF-8".into()))?;
    conn.execute("VACUUM INTO ?1", [dest]).map_err(map_err)?;
    Ok(())
}

/// Why a file cannot become this server's database.
#[derive(Debug, thiserror::Error)]
pub enum NotGalley {
    #[error("it is not a SQLite database, or a damaged one: {0}")]
    Damaged(String),
    #[error("it is a SQLite database, but not one that Galley made")]
    Foreign,
}

/// Checks that `path` is a sound SQLite database (`PRAGMA integrity_check`) made by Galley
/// (its system migrations are recorded). Opens it read-only; for files about to replace the
/// data (a restored backup).
pub fn check_galley_file(path: &Path) -> Result<(), NotGalley> {
    let damaged = |e: rusqlite::Error| NotGalley::Damaged(e.to_string());
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(damaged)?;
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(damaged)?;
    if check != "ok" {
        return Err(NotGalley::Damaged(check));
    }
    let first = crate::migrations::FIRST;
    let ours: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('_collections', '_params', '_migrations')",
            [],
            |r| r.get(0),
        )
        .map_err(damaged)?;
    if ours != 3 {
        return Err(NotGalley::Foreign);
    }
    let recorded: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM \"_migrations\" WHERE \"file\" = ?1",
            [first],
            |r| r.get(0),
        )
        .map_err(|_| NotGalley::Foreign)?;
    if recorded == 0 {
        return Err(NotGalley::Foreign);
    }
    Ok(())
}

fn writer_loop(mut w: Writer, rx: Receiver<Box<dyn WriteJob>>, stats: &WriterCounts) {
    while let Ok(first) = rx.recv() {
        let mut group = Vec::with_capacity(16);
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        stats
            .groups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        stats
            .jobs
            .fetch_add(group.len() as u64, std::sync::atomic::Ordering::Relaxed);
        // Odd for the whole group: counts taken now may see part of it.
        w.counts.bump();
        run_group(&mut w.c, group, &w.counts);
    }
    // Flush the WAL into the main file on a clean shutdown.
    let _ = w.c.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
}

/// Runs a group of jobs in one transaction, each in its own savepoint, and commits it.
/// Every job is finished exactly once, whatever fails.
fn run_group(c: &mut SqliteConn, group: Vec<Box<dyn WriteJob>>, counts: &CountCache) {
    // Back to even once the group's transaction is over (committed or not), before any job
    // of it gets its result, so a client that saw its write succeed never reads an older
    // count.
    struct Even<'a>(&'a CountCache, bool);
    impl Drop for Even<'_> {
        fn drop(&mut self) {
            if !self.1 {
                self.0.bump();
            }
        }
    }
    let mut even = Even(counts, false);
    let mut queue = group.into_iter();
    loop {
        if let Err(e) = c.conn.execute_batch("BEGIN IMMEDIATE") {
            let err = map_err(e);
            tracing::error!(error = %err, "cannot begin a write transaction");
            if !c.conn.is_autocommit() {
                let _ = c.conn.execute_batch("ROLLBACK");
            }
            queue.for_each(|j| j.finish(Some(err.clone())));
            return;
        }
        let mut ran: Vec<Box<dyn WriteJob>> = Vec::new();
        let mut restart = false;
        for mut job in queue.by_ref() {
            if let Err(e) = exec_cached(&c.conn, "SAVEPOINT galley_job") {
                job.finish(Some(map_err(e)));
                continue;
            }
            c.failure = None;
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job.run(c)));
            let failure = c.failure.take();
            if c.conn.is_autocommit() {
                // The transaction ended inside the job: it ran COMMIT/ROLLBACK itself, or
                // SQLite rolled everything back (disk full, I/O error). What the earlier jobs
                // of the group wrote is not known to be durable; they all fail.
                let err = failure.unwrap_or_else(|| {
                    StoreError::Query("the write transaction ended inside a job (jobs must not run BEGIN/COMMIT/ROLLBACK)".into())
                });
                tracing::error!(error = %err, "write transaction lost; failing its group");
                job.finish(Some(err.clone()));
                ran.drain(..).for_each(|j| j.finish(Some(err.clone())));
                restart = true;
                break;
            }
            let keep = match (&outcome, &failure) {
                (Ok(true), None) => true,
                (Err(_), _) => {
                    tracing::error!("a write job panicked; its changes were rolled back");
                    false
                }
                _ => false,
            };
            if !keep {
                let _ = exec_cached(&c.conn, "ROLLBACK TO galley_job");
            }
            let _ = exec_cached(&c.conn, "RELEASE galley_job");
            match outcome {
                Ok(true) if failure.is_none() => ran.push(job),
                Ok(true) => job.finish(failure.map(swallowed)),
                // The job's own error is its result.
                Ok(false) => job.finish(None),
                Err(_) => job.finish(Some(StoreError::Query(
                    "the write job panicked; its changes were rolled back".into(),
                ))),
            }
        }
        if !restart || !c.conn.is_autocommit() {
            let committed = c.conn.execute_batch("COMMIT");
            if !restart && !even.1 {
                even.1 = true;
                counts.bump();
            }
            match committed {
                Ok(()) => ran.into_iter().for_each(|j| j.finish(None)),
                Err(e) => {
                    let err = map_err(e);
                    tracing::error!(error = %err, "group commit failed");
                    if !c.conn.is_autocommit() {
                        let _ = c.conn.execute_batch("ROLLBACK");
                    }
                    ran.into_iter().for_each(|j| j.finish(Some(err.clone())));
                }
            }
        }
        if !restart {
            return;
        }
    }
}

/// Per-job statements, prepared once (`execute_batch` would parse them every time).
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// The error a job gets when one of its statements failed but it returned `Ok` anyway.
/// PostgreSQL aborts the transaction after a failed statement, so both engines refuse to
/// commit such a job; a job that means to recover must avoid the error (`ON CONFLICT`).
fn swallowed(e: StoreError) -> StoreError {
    match e {
        StoreError::Query(m) => StoreError::Query(format!(
            "a statement in this write job failed ({m}); the job was rolled back"
        )),
        other => other,
    }
}

/// Counts taken by readers, valid while no write has committed since: a seqlock-style
/// version the writer makes odd for the whole of a group transaction and even again after
/// its COMMIT (or ROLLBACK), before any job in the group gets its result. A count is only
/// stored or used while the version is even and the same before and after, so it always
/// describes the committed state at that version.
#[derive(Default)]
pub(crate) struct CountCache {
    version: std::sync::atomic::AtomicU64,
    entries: Mutex<std::collections::HashMap<String, (u64, i64)>>,
}

/// Distinct count queries kept; the cache is emptied when it fills.
const COUNT_CACHE_LEN: usize = 1024;

impl CountCache {
    fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The writer: entering (odd) or leaving (even) a transaction.
    fn bump(&self) {
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn get(&self, key: &str, version: u64) -> Option<i64> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(v, _)| *v == version)
            .map(|(_, n)| *n)
    }

    fn put(&self, key: String, version: u64, n: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= COUNT_CACHE_LEN {
                entries.clear();
            }
            entries.insert(key, (version, n));
        }
    }
}

pub(crate) struct SqliteConn {
    conn: Connection,
    /// The writer records the first statement error of the running job here.
    track: bool,
    failure: Option<StoreError>,
    /// Readers: counts shared with the other readers (none on the writer).
    counts: Option<Arc<CountCache>>,
}

impl SqliteConn {
    fn new(conn: Connection, track: bool) -> Self {
        SqliteConn {
            conn,
            track,
            failure: None,
            counts: None,
        }
    }

    fn fail<T>(&mut self, e: rusqlite::Error) -> Result<T, StoreError> {
        let mut err = map_err(e);
        if let StoreError::UniqueViolation { columns } = &mut err {
            resolve_index(&self.conn, columns);
        }
        if self.track && self.failure.is_none() {
            self.failure = Some(err.clone());
        }
        Err(err)
    }
}

/// SQLite names an expression index instead of its columns (`index 'idx_x'`); look the
/// index up to report the columns it covers.
fn resolve_index(conn: &Connection, columns: &mut Vec<String>) {
    let [only] = columns.as_slice() else { return };
    let Some(name) = only
        .strip_prefix("index '")
        .and_then(|n| n.strip_suffix('\''))
    else {
        return;
    };
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?1",
            [name],
            |r| r.get(0),
        )
        .ok();
    let Some(sql) = sql else { return };
    // CREATE UNIQUE INDEX "idx" ON "t" (LOWER("name")) [WHERE …]
    let Some(on) = sql.find(" ON ").or_else(|| sql.find(" on ")) else {
        return;
    };
    let rest = &sql[on..];
    let Some(open) = rest.find('(') else { return };
    let mut depth = 0;
    for (i, ch) in rest[open..].char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    let found = crate::row::index_columns(&rest[open + 1..open + i]);
                    if !found.is_empty() {
                        *columns = found;
                    }
                    return;
                }
            }
            _ => {}
        }
    }
}

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
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            SqlValue::Text(String::from_utf8_lossy(t).into_owned())
        }
    }
}

fn map_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == rusqlite::ErrorCode::OperationInterrupted {
            return StoreError::TimedOut;
        }
        if matches!(
            f.code,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
        ) {
            return StoreError::Unavailable(e.to_string());
        }
    }
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
        match query_rows(&self.conn, sql, params) {
            Ok(rows) => Ok(rows),
            Err(e) => self.fail(e),
        }
    }

    fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        let r = self.conn.prepare_cached(sql).and_then(|mut stmt| {
            let bound: Vec<SqlV> = params.iter().map(to_sqlite).collect();
            stmt.execute(rusqlite::params_from_iter(bound.iter()))
        });
        match r {
            Ok(n) => Ok(n as u64),
            Err(e) => self.fail(e),
        }
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        match self.conn.execute_batch(sql) {
            Ok(()) => Ok(()),
            Err(e) => self.fail(e),
        }
    }

    fn count(&mut self, sql: &str, params: &[SqlValue]) -> Result<i64, StoreError> {
        let Some(cache) = self.counts.clone() else {
            return Ok(self
                .query(sql, params)?
                .first()
                .map(|r| r.int("n"))
                .unwrap_or(0));
        };
        let key = format!("{sql}\u{0}{params:?}");
        let before = cache.version();
        if before % 2 == 0 {
            if let Some(n) = cache.get(&key, before) {
                return Ok(n);
            }
        }
        let n = self
            .query(sql, params)?
            .first()
            .map(|r| r.int("n"))
            .unwrap_or(0);
        if before % 2 == 0 && cache.version() == before {
            cache.put(key, before, n);
        }
        Ok(n)
    }
}

fn query_rows(conn: &Connection, sql: &str, params: &[SqlValue]) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let bound: Vec<SqlV> = params.iter().map(to_sqlite).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(bound.iter()))?;
    let mut out = Vec::new();
    // Column names are read after the first step: a cached statement is re-prepared there
    // when the schema changed (ALTER TABLE), and may then have other columns.
    let mut columns: Option<Arc<[String]>> = None;
    while let Some(r) = rows.next()? {
        let cols = columns.get_or_insert_with(|| {
            r.as_ref()
                .column_names()
                .into_iter()
                .map(str::to_owned)
                .collect()
        });
        let mut values = Vec::with_capacity(cols.len());
        for i in 0..cols.len() {
            values.push(from_sqlite(r.get_ref(i)?));
        }
        out.push(Row {
            columns: cols.clone(),
            values,
        });
    }
    Ok(out)
}
