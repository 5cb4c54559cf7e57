//! The stored logs: request logs and the app's warnings and errors, in PocketBase's `_logs`
//! shape (`id`, `created`, `level`, `message`, `data`), kept in an auxiliary database.
//!
//! On SQLite the table lives in its own file, `auxiliary.db` beside `data.db`, with its own
//! writer thread, so logging never queues behind data writes; on PostgreSQL it is a table of
//! the same database reached through a separate small pool (every node writes there, so the
//! dashboard sees every node's requests).
//!
//! Recording never waits: [`Logs::push`] hands the entry to a bounded channel and, when that
//! is full, drops it and counts the drop. One task drains the channel and writes a batch per
//! job. Filters and sorts are the records' language, compiled by galley-core's rules over a
//! collection that describes the table ([`meta_collection`]).

mod app_log;
mod layer;

pub use app_log::AppLogLayer;
pub use layer::{log_requests, RequestId};

use chrono::{DateTime, Utc};
use galley_core::rules::RuleCtx;
use galley_core::{App, Caller, CoreError, ListResult, Page, RequestMeta};
use galley_sql::{Dialect, Sql};
use galley_store::{Conn, ConnExt, Store};
use galley_types::{Collection, Field};
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// PocketBase's (slog's) levels.
pub const DEBUG: i64 = -4;
pub const INFO: i64 = 0;
pub const WARN: i64 = 4;
pub const ERROR: i64 = 8;

/// The table, on both engines.
pub const TABLE: &str = "_logs";
/// The SQLite file beside `data.db` (PocketBase's name).
pub const AUX_FILE: &str = "auxiliary.db";

/// Entries waiting to be written; beyond this, new ones are dropped (and counted).
const QUEUE: usize = 10_000;
/// Largest batch written in one job.
const BATCH: usize = 500;
/// How often the writer drains the queue.
const GATHER: Duration = Duration::from_millis(200);
/// How often old entries are deleted (`settings.logs.maxDays`).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Stats span at most this many hourly rows (a year), whatever the filter.
const MAX_STATS_ROWS: i64 = 24 * 366;

/// One log line.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub created: DateTime<Utc>,
    pub level: i64,
    pub message: String,
    pub data: Map<String, Value>,
}

enum Msg {
    Entry(LogEntry),
    /// Write what is queued, then answer.
    Flush(oneshot::Sender<()>),
}

struct Shared {
    app: Arc<App>,
    store: Store,
    meta: Collection,
}

/// The log store of one server.
pub struct Logs {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Msg>,
    dropped: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

/// `_logs` described as a collection, so that filters and sorts compile through the one
/// expression engine (fields `id, created, level, message, data`; `data.*` are JSON paths).
pub fn meta_collection() -> Collection {
    use galley_types::field::{AutodateOptions, FieldKind, JsonOptions, NumberOptions};
    let fields = vec![
        galley_types::collection::id_field(),
        Field::new(
            "created",
            FieldKind::Autodate(AutodateOptions {
                on_create: true,
                on_update: false,
            }),
        ),
        Field::new("level", FieldKind::Number(NumberOptions::default())),
        Field::new(
            "message",
            FieldKind::Text(galley_types::field::TextOptions::default()),
        ),
        Field::new("data", FieldKind::Json(JsonOptions::default())),
    ];
    Collection {
        id: TABLE.into(),
        name: TABLE.into(),
        kind: galley_types::CollectionType::Base,
        system: true,
        fields,
        indexes: vec![],
        rules: Default::default(),
        auth: None,
        view_query: None,
        created: String::new(),
        updated: String::new(),
    }
}

fn schema_ddl(d: &Dialect, meta: &Collection) -> String {
    let table = galley_core::catalog::ddl::create_table(d, meta).replacen(
        "CREATE TABLE ",
        "CREATE TABLE IF NOT EXISTS ",
        1,
    );
    format!(
        "{table};
         CREATE INDEX IF NOT EXISTS {} ON {} ({});
         CREATE INDEX IF NOT EXISTS {} ON {} ({});",
        d.quote("_logs_created_idx"),
        d.quote(TABLE),
        d.quote("created"),
        d.quote("_logs_level_idx"),
        d.quote(TABLE),
        d.quote("level"),
    )
}

fn store_err(e: galley_store::StoreError) -> CoreError {
    CoreError::from(e)
}

impl Logs {
    /// Opens (and creates) the log table for `app`'s engine and starts the writer task.
    pub async fn open(app: Arc<App>) -> Result<Arc<Logs>, CoreError> {
        let store = match &app.config.database_url {
            Some(url) => Store::Postgres(
                galley_store::postgres::PgStore::open(url, 2)
                    .await
                    .map_err(store_err)?,
            ),
            None => Store::Sqlite(
                galley_store::sqlite::SqliteStore::open_file(
                    &app.config.data_dir,
                    AUX_FILE,
                    &galley_store::sqlite::SqliteOptions {
                        readers: 2,
                        ..Default::default()
                    },
                )
                .map_err(store_err)?,
            ),
        };
        let meta = meta_collection();
        let ddl = schema_ddl(store.dialect(), &meta);
        store
            .write(move |c: &mut dyn Conn| -> Result<(), CoreError> {
                if let Some(lock) = c.dialect().migration_lock() {
                    // Two nodes starting at once must not both create the table.
                    c.batch(lock)?;
                }
                c.batch(&ddl)?;
                Ok(())
            })
            .await?;
        let shared = Arc::new(Shared { app, store, meta });
        // PocketBase's entry (same id and schedule), so "run now" in the dashboard applies
        // the retention at once; the writer also applies it on its own timer.
        let weak = Arc::downgrade(&shared);
        let added = shared
            .app
            .jobs()
            .cron_add(LOGS_CLEANUP_CRON, "0 */6 * * *", move || {
                let shared = weak.upgrade();
                async move {
                    if let Some(shared) = shared {
                        retain(&shared).await;
                    }
                }
            });
        if let Err(e) = added {
            tracing::error!(error = %e, "the logs clean-up cron entry was refused");
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let written = Arc::new(AtomicU64::new(0));
        tokio::spawn(writer(shared.clone(), rx, written.clone()));
        Ok(Arc::new(Logs {
            shared,
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            written,
        }))
    }

    pub fn app(&self) -> &Arc<App> {
        &self.shared.app
    }

    /// Queues `entry` unless `settings.logs` leaves it out (`maxDays` 0 turns logging off,
    /// `minLevel`, `logIP`, `logAuthId`). Never waits: a full queue drops the entry.
    pub fn push(&self, mut entry: LogEntry) {
        let settings = self.shared.app.settings();
        let s = &settings.logs;
        if s.max_days <= 0 || entry.level < s.min_level {
            return;
        }
        if !s.log_ip {
            entry.data.remove("userIP");
            entry.data.remove("remoteIP");
        }
        if !s.log_auth_id {
            entry.data.remove("authId");
        }
        if self.tx.try_send(Msg::Entry(entry)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Entries dropped because the queue was full (or the writer had stopped).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Entries written so far by this process.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Returns once everything queued before the call is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Writes what is queued and closes the store.
    pub async fn close(&self) {
        self.flush().await;
        self.shared.store.close().await;
    }

    fn ctx_parts(&self) -> (galley_types::Schema, &'static Dialect) {
        (
            galley_types::Schema::new(0, vec![self.shared.meta.clone()]),
            self.shared.store.dialect(),
        )
    }

    fn condition(&self, caller: &Caller, filter: &str) -> Result<Option<Sql>, CoreError> {
        let (schema, d) = self.ctx_parts();
        let req = RequestMeta::default();
        RuleCtx::new(&schema, &self.shared.meta, caller, &req, d).filter(filter)
    }

    /// `GET /api/logs`: a page of entries in the filter and sort language (superusers only;
    /// the caller checks that). Without a sort, in the order written (as PocketBase).
    pub async fn list(
        &self,
        caller: &Caller,
        page: Page,
        filter: &str,
        sort: &str,
    ) -> Result<ListResult<Value>, CoreError> {
        let (schema, d) = self.ctx_parts();
        let req = RequestMeta::default();
        let ctx = RuleCtx::new(&schema, &self.shared.meta, caller, &req, d);
        let cond = ctx.filter(filter)?;
        let order = ctx.sort(sort)?;
        let mut sql = Sql::new(d);
        sql.push("SELECT * FROM ").ident(TABLE);
        let mut count = Sql::new(d);
        count.push("SELECT COUNT(*) AS n FROM ").ident(TABLE);
        if let Some(c) = &cond {
            sql.push(" WHERE ").append(c);
            count.push(" WHERE ").append(c);
        }
        sql.push(" ORDER BY ");
        match &order {
            Some(o) => {
                sql.append(o).push(", ").ident(d.rowid());
            }
            None => {
                sql.ident(d.rowid());
            }
        }
        sql.push(" LIMIT ")
            .push_param(page.per_page as i64)
            .push(" OFFSET ")
            .push_param(((page.page - 1) * page.per_page) as i64);
        let meta = self.shared.meta.clone();
        let skip = page.skip_total;
        let (items, total) = self
            .shared
            .store
            .read(move |c: &mut dyn Conn| -> Result<_, CoreError> {
                let items: Vec<Value> = c
                    .query_sql(&sql)?
                    .into_iter()
                    .map(|r| entry_json(&meta, r))
                    .collect();
                let total = if skip {
                    None
                } else {
                    Some(c.count_sql(&count)?.max(0) as usize)
                };
                Ok((items, total))
            })
            .await?;
        Ok(ListResult::new(items, page, total))
    }

    /// `GET /api/logs/{id}`.
    pub async fn view(&self, id: &str) -> Result<Value, CoreError> {
        let d = self.shared.store.dialect();
        let mut sql = Sql::new(d);
        sql.push("SELECT * FROM ")
            .ident(TABLE)
            .push(" WHERE ")
            .ident("id")
            .push(" = ")
            .push_param(id.to_owned());
        let meta = self.shared.meta.clone();
        self.shared
            .store
            .read(move |c: &mut dyn Conn| -> Result<_, CoreError> {
                c.query_sql(&sql)?
                    .into_iter()
                    .next()
                    .map(|r| entry_json(&meta, r))
                    .ok_or_else(CoreError::not_found)
            })
            .await
    }

    /// `GET /api/logs/stats`: entries per hour (`[{total, date}]`, oldest first).
    pub async fn stats(&self, caller: &Caller, filter: &str) -> Result<Value, CoreError> {
        let rows = self.grouped(caller, filter, "%Y-%m-%d %H:00:00").await?;
        Ok(Value::Array(
            rows.into_iter()
                .map(|(date, total, _)| {
                    let mut m = Map::new();
                    m.insert("total".into(), total.into());
                    m.insert("date".into(), format!("{date}.000Z").into());
                    Value::Object(m)
                })
                .collect(),
        ))
    }

    /// Entries and errors (level ≥ [`ERROR`]) per `fmt` bucket (a strftime format over
    /// `created`), oldest first; the dashboard's chart.
    pub async fn grouped(
        &self,
        caller: &Caller,
        filter: &str,
        fmt: &str,
    ) -> Result<Vec<(String, i64, i64)>, CoreError> {
        let d = self.shared.store.dialect();
        let cond = self.condition(caller, filter)?;
        // The formats are this crate's constants, so the literal is inlined (a bound
        // parameter would have to be repeated in GROUP BY on PostgreSQL).
        let key = d
            .strftime_format(fmt)
            .filter(|f| !f.contains('\''))
            .and_then(|f| d.strftime(&format!("'{f}'"), &d.quote("created"), &[]))
            .ok_or_else(|| CoreError::Internal(format!("strftime format {fmt:?}")))?;
        let mut sql = Sql::new(d);
        sql.push("SELECT ")
            .push(&key)
            .push(" AS k, COUNT(*) AS n, SUM(CASE WHEN ")
            .ident("level")
            .push(" >= ")
            .push_param(ERROR)
            .push(" THEN 1 ELSE 0 END) AS e FROM ")
            .ident(TABLE);
        if let Some(c) = &cond {
            sql.push(" WHERE ").append(c);
        }
        sql.push(" GROUP BY k ORDER BY k DESC LIMIT ")
            .push_param(MAX_STATS_ROWS);
        let mut rows = self
            .shared
            .store
            .read(move |c: &mut dyn Conn| -> Result<_, CoreError> {
                Ok(c.query_sql(&sql)?
                    .into_iter()
                    .map(|r| (r.text("k"), r.int("n"), r.int("e")))
                    .collect::<Vec<_>>())
            })
            .await?;
        rows.reverse();
        Ok(rows)
    }

    /// A consistent copy of the log database in the file `dest` (SQLite).
    pub async fn backup_to(&self, dest: std::path::PathBuf) -> Result<(), CoreError> {
        Ok(self.shared.store.backup_to(dest).await?)
    }

    /// `DELETE /api/logs`: removes every entry.
    pub async fn delete_all(&self) -> Result<(), CoreError> {
        let sql = format!("DELETE FROM {}", self.shared.store.dialect().quote(TABLE));
        self.shared
            .store
            .write(move |c: &mut dyn Conn| -> Result<(), CoreError> {
                c.execute(&sql, &[])?;
                Ok(())
            })
            .await
    }
}

fn entry_json(meta: &Collection, row: galley_store::Row) -> Value {
    let mut rec = galley_core::rows::from_row(meta, row);
    // PocketBase's key order.
    let mut m = Map::new();
    for k in ["id", "created", "data", "message", "level"] {
        let v = rec.remove(k).unwrap_or(Value::Null);
        let v = match (k, v) {
            ("data", Value::Null) => Value::Object(Map::new()),
            ("level", Value::Number(n)) => n.as_f64().map_or(0, |f| f as i64).into(),
            (_, v) => v,
        };
        m.insert(k.into(), v);
    }
    Value::Object(m)
}

/// Drains the queue on a timer rather than awaiting each entry: an entry then costs the
/// request no wake-up of another thread (a waiting receiver would be woken by every send,
/// which measured as a large share of logging's cost).
async fn writer(shared: Arc<Shared>, mut rx: mpsc::Receiver<Msg>, written: Arc<AtomicU64>) {
    use tokio::sync::mpsc::error::TryRecvError;
    let mut last_retention: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(GATHER);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if last_retention.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
            last_retention = Some(tokio::time::Instant::now());
            retain(&shared).await;
        }
        let mut batch: Vec<LogEntry> = Vec::new();
        let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
        let mut open = true;
        loop {
            match rx.try_recv() {
                Ok(Msg::Entry(e)) => {
                    batch.push(e);
                    if batch.len() >= BATCH {
                        write_logged(&shared, std::mem::take(&mut batch), &written).await;
                    }
                }
                // Everything queued before it is in `batch`: write, then answer.
                Ok(Msg::Flush(w)) => {
                    waiting.push(w);
                    break;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            write_logged(&shared, batch, &written).await;
        }
        for w in waiting {
            let _ = w.send(());
        }
        if !open {
            return;
        }
    }
}

async fn write_logged(shared: &Shared, rows: Vec<LogEntry>, written: &AtomicU64) {
    let n = rows.len() as u64;
    match write_batch(shared, rows).await {
        Ok(()) => {
            written.fetch_add(n, Ordering::Relaxed);
        }
        // Not through tracing's error level: the app-log layer would queue it again.
        Err(e) => {
            tracing::info!(target: "galley_ops::logs", error = %e, lost = n, "cannot write log entries")
        }
    }
}

async fn write_batch(shared: &Shared, rows: Vec<LogEntry>) -> Result<(), CoreError> {
    let d = shared.store.dialect();
    let fields: Vec<Field> = shared.meta.fields.clone();
    let field = |n: &str| fields.iter().find(|f| f.name == n).cloned();
    let (Some(created_f), Some(data_f)) = (field("created"), field("data")) else {
        return Err(CoreError::Internal("log table fields".into()));
    };
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO ").ident(TABLE).push(" (");
    for (i, c) in ["id", "created", "level", "message", "data"]
        .iter()
        .enumerate()
    {
        if i > 0 {
            sql.push(", ");
        }
        sql.ident(c);
    }
    sql.push(") VALUES ");
    let max_data = data_limit(shared.app.settings().logs.max_data_size);
    for (i, mut e) in rows.into_iter().enumerate() {
        fit_data(&mut e.data, max_data);
        if i > 0 {
            sql.push(", ");
        }
        let created = Value::String(galley_types::datetime::format(&e.created));
        sql.push("(")
            .push_param(galley_types::ids::record_id())
            .push(", ")
            .push_param(created_f.to_sql(&created, d))
            .push(", ")
            .push_param(e.level as f64)
            .push(", ")
            .push_param(e.message)
            .push(", ")
            .push_param(data_f.to_sql(&Value::Object(e.data), d))
            .push(")");
    }
    shared
        .store
        .write(move |c: &mut dyn Conn| -> Result<(), CoreError> {
            c.execute_sql(&sql)?;
            Ok(())
        })
        .await
}

/// Deletes entries older than `settings.logs.maxDays`.
/// `settings.logs.maxDataSize` in bytes; 0 means PocketBase's default of about 16 KB.
fn data_limit(setting: i64) -> usize {
    match usize::try_from(setting) {
        Ok(0) | Err(_) => DEFAULT_MAX_DATA,
        Ok(n) => n,
    }
}

const DEFAULT_MAX_DATA: usize = 16 << 10;
/// What a shortened string ends with.
const CUT: &str = "...";

/// Shortens an entry's `data` until its JSON is at most `max` bytes, on a best-effort
/// basis as PocketBase does: nested values give way to a marker first, then the longest
/// strings are cut (a request's URL or error message, which carry what a caller sends);
/// top-level keys and numbers stay, so the entry keeps its shape for filters.
fn fit_data(data: &mut Map<String, Value>, max: usize) {
    let size = |d: &Map<String, Value>| serde_json::to_vec(d).map(|v| v.len()).unwrap_or(0);
    let mut over = size(data).saturating_sub(max);
    if over == 0 {
        return;
    }
    let nested: Vec<String> = data
        .iter()
        .filter(|(_, v)| v.is_object() || v.is_array())
        .map(|(k, _)| k.clone())
        .collect();
    for k in nested {
        if over == 0 {
            return;
        }
        data.insert(k, Value::String(CUT.into()));
        over = size(data).saturating_sub(max);
    }
    let mut strings: Vec<(&String, usize)> = data
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k, s.len())))
        .collect();
    strings.sort_by_key(|s| std::cmp::Reverse(s.1));
    let keys: Vec<String> = strings.iter().map(|(k, _)| (*k).clone()).collect();
    for k in keys {
        if over == 0 {
            return;
        }
        if let Some(Value::String(s)) = data.get_mut(&k) {
            let keep = s.len().saturating_sub(over + CUT.len());
            let mut at = keep;
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            s.truncate(at);
            s.push_str(CUT);
        }
        over = size(data).saturating_sub(max);
    }
}

/// The logs clean-up cron entry (PocketBase's id; galley-core lists it first as a no-op).
const LOGS_CLEANUP_CRON: &str = "__pbLogsCleanup__";

async fn retain(shared: &Shared) {
    let days = shared.app.settings().logs.max_days.clamp(0, 100_000);
    let d = shared.store.dialect();
    let Some(created_f) = shared.meta.field("created").cloned() else {
        return;
    };
    let cutoff = Utc::now() - chrono::Duration::days(days);
    let mut sql = Sql::new(d);
    sql.push("DELETE FROM ")
        .ident(TABLE)
        .push(" WHERE ")
        .ident("created")
        .push(" < ")
        .push_param(created_f.to_sql(&Value::String(galley_types::datetime::format(&cutoff)), d));
    let r = shared
        .store
        .write(move |c: &mut dyn Conn| -> Result<u64, CoreError> { Ok(c.execute_sql(&sql)?) })
        .await;
    if let Err(e) = r {
        tracing::info!(target: "galley_ops::logs", error = %e, "cannot delete old log entries");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_is_cut_to_the_limit() {
        let mut d = Map::new();
        d.insert(
            "url".into(),
            json!("/api/x?q=".to_owned() + &"é".repeat(5000)),
        );
        d.insert("status".into(), json!(200));
        d.insert("details".into(), json!({"deep": "x".repeat(3000)}));
        d.insert("error".into(), json!("short"));
        fit_data(&mut d, 1000);
        let len = serde_json::to_vec(&d).unwrap().len();
        assert!(len <= 1000, "{len}");
        assert_eq!(d["status"], json!(200));
        assert_eq!(d["error"], json!("short"));
        assert!(d["url"].as_str().unwrap().starts_with("/api/x?q="));
        assert!(d["url"].as_str().unwrap().ends_with(CUT));
        // Small enough already: untouched.
        let mut small = Map::new();
        small.insert("a".into(), json!("b"));
        let before = small.clone();
        fit_data(&mut small, 100);
        assert_eq!(small, before);
        assert_eq!(data_limit(0), DEFAULT_MAX_DATA);
        assert_eq!(data_limit(-5), DEFAULT_MAX_DATA);
        assert_eq!(data_limit(1234), 1234);
    }

    #[test]
    fn ddl_creates_table_once() {
        let meta = meta_collection();
        let s = schema_ddl(&galley_sql::SQLITE, &meta);
        assert!(s.starts_with("CREATE TABLE IF NOT EXISTS \"_logs\""), "{s}");
        let p = schema_ddl(&galley_sql::POSTGRES, &meta);
        assert!(p.contains("_rowid"), "{p}");
    }
}
