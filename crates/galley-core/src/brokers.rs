//! Committed record events published to NATS and RabbitMQ (`settings.brokers`) through a
//! transactional outbox: a record hook adds one `_brokerOutbox` row per enabled broker in
//! the write's transaction (so an event exists iff its write commits), numbered per
//! collection by `_brokerSeq`, whose row lock makes the writers of one collection take
//! numbers in commit order. One node at a time (a lease in `_leases`) publishes each
//! broker's rows in (collection, number) order, stops a collection at its first failure
//! (order is kept), and deletes a row only after the broker acknowledged it: at least once,
//! duplicates carry the same message id (`Nats-Msg-Id`, AMQP `message-id`).

use crate::app::App;
use crate::context::{RecordHook, WriteCtx};
use crate::error::CoreError;
use crate::settings::Settings;
use galley_jobs::brokers::{amqp, nats, BrokerError};
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt, StoreError};
use galley_types::Collection;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const TARGETS: [&str; 2] = ["nats", "rabbitmq"];
/// How long a node's turn as publisher lasts without renewal.
const LEASE_MS: i64 = 10_000;
const BATCH: i64 = 200;

/// The record hook and the publishers' wake-up.
#[derive(Default)]
pub struct Brokers {
    app: OnceLock<Weak<App>>,
    wake: Notify,
    /// Per target (in [`TARGETS`] order): rows waiting in the outbox, as last counted
    /// (every second, all nodes' rows) plus what this node added since.
    pending: [AtomicI64; 2],
    /// Per target: events dropped at the bound since the process started, and when the
    /// last error about it was logged.
    dropped: [AtomicU64; 2],
    logged: [Mutex<Option<Instant>>; 2],
}

/// How often the outbox is counted against `brokers.maxPending`.
const COUNT_EVERY: Duration = Duration::from_secs(1);
/// At most one log line a minute per broker while events are dropped.
const LOG_EVERY: Duration = Duration::from_secs(60);

impl Brokers {
    fn settings(&self) -> Option<Arc<Settings>> {
        self.app.get()?.upgrade().map(|a| a.settings())
    }

    /// Whether `target`'s outbox has room for one more event; at the bound the event is
    /// dropped and counted, and an error logged (at most once a minute).
    fn admit(&self, i: usize, max: i64) -> bool {
        if self.pending[i].load(Ordering::Relaxed) < max {
            self.pending[i].fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let dropped = self.dropped[i].fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut last) = self.logged[i].lock() {
            if last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                *last = Some(Instant::now());
                tracing::error!(
                    target = TARGETS[i],
                    max_pending = max,
                    dropped_since_start = dropped,
                    "broker outbox full (brokers.maxPending): new events for this broker are dropped, the writes are kept; consumers see gaps in seq"
                );
            }
        }
        false
    }

    /// Events dropped at the bound since the process started, per target
    /// (`nats`, `rabbitmq`).
    pub fn dropped(&self) -> [(&'static str, u64); 2] {
        [0, 1].map(|i| (TARGETS[i], self.dropped[i].load(Ordering::Relaxed)))
    }

    fn emit(
        &self,
        c: &mut dyn Conn,
        ctx: &WriteCtx,
        col: &Collection,
        event: &'static str,
        record: &Map<String, Value>,
    ) -> Result<(), CoreError> {
        if col.name.starts_with('_') {
            return Ok(());
        }
        let Some(s) = self.settings() else {
            return Ok(());
        };
        let (nats_on, rabbit_on) = (s.brokers.nats.enabled, s.brokers.rabbitmq.enabled);
        if !nats_on && !rabbit_on {
            return Ok(());
        }
        let d = c.dialect();
        let mut ins = Sql::new(d);
        ins.push("INSERT INTO \"_brokerSeq\" (\"collection\", \"seq\") VALUES (")
            .push_param(col.id.as_str())
            .push(", 0) ON CONFLICT DO NOTHING");
        c.execute_sql(&ins)?;
        let mut next = Sql::new(d);
        next.push("UPDATE \"_brokerSeq\" SET \"seq\" = \"seq\" + 1 WHERE \"collection\" = ")
            .push_param(col.id.as_str())
            .push(" RETURNING \"seq\"");
        let seq = c.query_sql(&next)?.first().map_or(0, |r| r.int("seq"));
        let id = galley_types::ids::record_id();
        let mut body = crate::webhooks::event_payload(ctx, col, event, record);
        if let Some(o) = body.as_object_mut() {
            o.insert("id".into(), Value::String(id.clone()));
            o.insert("seq".into(), Value::from(seq));
        }
        let body = body.to_string();
        for (i, (target, on)) in [("nats", nats_on), ("rabbitmq", rabbit_on)]
            .into_iter()
            .enumerate()
        {
            // The seq is taken either way: a dropped event leaves a gap consumers can see.
            if !on || !self.admit(i, s.brokers.max_pending) {
                continue;
            }
            let subject = match target {
                "nats" => format!("{}.{}.{event}", s.brokers.nats.subject_prefix, col.name),
                _ => format!("{}.{event}", col.name),
            };
            let mut row = Sql::new(d);
            row.push("INSERT INTO \"_brokerOutbox\" (\"id\", \"target\", \"collection\", \"seq\", \"subject\", \"body\", \"created\") VALUES (")
                .push_param(format!("{id}:{target}"))
                .push(", ")
                .push_param(target)
                .push(", ")
                .push_param(col.id.as_str())
                .push(", ")
                .push_param(SqlValue::Int(seq))
                .push(", ")
                .push_param(subject)
                .push(", ")
                .push_param(body.as_str())
                .push(", ")
                .push_param(SqlValue::Int(chrono::Utc::now().timestamp_millis()))
                .push(")");
            c.execute_sql(&row)?;
        }
        // Early wake-ups find nothing until the commit; the publishers poll anyway.
        self.wake.notify_waiters();
        Ok(())
    }
}

impl RecordHook for Brokers {
    fn after_create(
        &self,
        c: &mut dyn Conn,
        ctx: &WriteCtx,
        col: &Collection,
        record: &Map<String, Value>,
    ) -> Result<(), CoreError> {
        self.emit(c, ctx, col, "create", record)
    }

    fn after_update(
        &self,
        c: &mut dyn Conn,
        ctx: &WriteCtx,
        col: &Collection,
        _old: &Map<String, Value>,
        record: &Map<String, Value>,
    ) -> Result<(), CoreError> {
        self.emit(c, ctx, col, "update", record)
    }

    fn after_delete(
        &self,
        c: &mut dyn Conn,
        ctx: &WriteCtx,
        col: &Collection,
        record: &Map<String, Value>,
    ) -> Result<(), CoreError> {
        self.emit(c, ctx, col, "delete", record)
    }
}

/// Starts one publisher per broker for `app` (they idle while the broker is disabled).
pub fn start(app: &Arc<App>, hook: &Arc<Brokers>) {
    let _ = hook.app.set(Arc::downgrade(app));
    for target in TARGETS {
        tokio::spawn(publish_loop(Arc::downgrade(app), hook.clone(), target));
    }
    tokio::spawn(count_loop(Arc::downgrade(app), hook.clone()));
}

/// Counts the outbox of each enabled broker every [`COUNT_EVERY`], for the bound (rows
/// other nodes added and rows published since are seen here).
async fn count_loop(app: Weak<App>, hook: Arc<Brokers>) {
    loop {
        tokio::time::sleep(COUNT_EVERY).await;
        let Some(app) = app.upgrade() else { return };
        let s = app.settings();
        if !s.brokers.nats.enabled && !s.brokers.rabbitmq.enabled {
            continue;
        }
        let counted = app
            .store
            .read(|c: &mut dyn Conn| {
                c.query(
                    "SELECT \"target\", COUNT(*) AS n FROM \"_brokerOutbox\" GROUP BY \"target\"",
                    &[],
                )
            })
            .await;
        match counted {
            Ok(rows) => {
                for (i, t) in TARGETS.iter().enumerate() {
                    let n = rows
                        .iter()
                        .find(|r| r.text("target") == *t)
                        .map_or(0, |r| r.int("n"));
                    hook.pending[i].store(n, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot count the broker outbox"),
        }
    }
}

enum Conn2 {
    Nats(nats::Nats),
    Rabbit(amqp::Amqp, String),
}

struct Row {
    id: String,
    collection: String,
    subject: String,
    body: String,
}

async fn publish_loop(app: Weak<App>, hook: Arc<Brokers>, target: &'static str) {
    let mut conn: Option<(Conn2, String)> = None;
    let mut failures = 0u32;
    loop {
        let wait = if failures == 0 {
            Duration::from_millis(200)
        } else {
            Duration::from_millis(250 << failures.min(7))
        };
        if !backoff(&app, &hook, target, wait).await {
            failures = 0;
        }
        let Some(app) = app.upgrade() else { return };
        let settings = app.settings();
        let key = config_key(&settings, target);
        let Some(key) = key else {
            conn = None;
            continue;
        };
        match turn(&app, target).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(target, error = %e, "broker lease");
                continue;
            }
        }
        if conn.as_ref().is_some_and(|(_, k)| *k != key) {
            conn = None;
        }
        let rows = match pending(&app, target).await {
            Ok(r) if r.is_empty() => continue,
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(target, error = %e, "cannot read the broker outbox");
                continue;
            }
        };
        if conn.is_none() {
            match connect(&settings, target).await {
                Ok(c) => conn = Some((c, key)),
                Err(e) => {
                    failures += 1;
                    tracing::warn!(target, error = %e, "cannot connect to the broker; events wait in the outbox");
                    continue;
                }
            }
        }
        let Some((c, _)) = conn.as_mut() else {
            continue;
        };
        let mut done = Vec::new();
        let mut failed = false;
        // In (collection, seq) order; the first failure ends the round, so nothing is
        // published ahead of an earlier event of its collection.
        for r in &rows {
            let msg_id = r.id.split(':').next().unwrap_or_default();
            let res = match c {
                Conn2::Nats(n) => n.publish(&r.subject, msg_id, r.body.as_bytes()).await,
                Conn2::Rabbit(a, exchange) => {
                    a.publish(exchange, &r.subject, msg_id, r.body.as_bytes())
                        .await
                }
            };
            match res {
                Ok(()) => done.push(r.id.clone()),
                Err(e) => {
                    tracing::warn!(target, collection = %r.collection, error = %e, "publish failed; retrying");
                    failed = true;
                    // The connection may be broken: start afresh next round.
                    break;
                }
            }
        }
        if failed {
            conn = None;
            failures += 1;
        } else {
            failures = 0;
        }
        if !done.is_empty() {
            if let Err(e) = delete(&app, done).await {
                tracing::warn!(target, error = %e, "cannot clear published events (they will be sent again)");
            }
            if !failed {
                // More may be waiting.
                hook.wake.notify_one();
            }
        }
    }
}

/// Waits up to `wait` or until a write wakes the publishers; false when the broker's
/// settings changed meanwhile (a fixed URL is tried at once, without the failures' backoff).
async fn backoff(app: &Weak<App>, hook: &Brokers, target: &str, wait: Duration) -> bool {
    let key = |app: &Weak<App>| {
        app.upgrade()
            .and_then(|a| config_key(&a.settings(), target))
    };
    let before = key(app);
    let deadline = Instant::now() + wait;
    loop {
        let step = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        tokio::select! {
            _ = hook.wake.notified() => return true,
            _ = tokio::time::sleep(step) => {}
        }
        if key(app) != before {
            return false;
        }
        if Instant::now() >= deadline {
            return true;
        }
    }
}

/// What identifies a broker's connection settings (a change reconnects); `None` when the
/// broker is disabled.
fn config_key(s: &Settings, target: &str) -> Option<String> {
    match target {
        "nats" if s.brokers.nats.enabled => Some(format!("{:?}", s.brokers.nats)),
        "rabbitmq" if s.brokers.rabbitmq.enabled => {
            let r = &s.brokers.rabbitmq;
            Some(format!(
                "{}:{}{}:{}:{}:{}:{}",
                r.host,
                r.port,
                r.vhost,
                r.username,
                r.exchange,
                r.tls,
                r.password.expose().len()
            ))
        }
        _ => None,
    }
}

async fn connect(s: &Settings, target: &str) -> Result<Conn2, BrokerError> {
    let timeout = Duration::from_secs(5);
    if target == "nats" {
        let cfg = &s.brokers.nats;
        let mut n = nats::Nats::connect(&cfg.url, timeout).await?;
        if n.jetstream && !cfg.stream.is_empty() {
            n.ensure_stream(&cfg.stream, &[format!("{}.>", cfg.subject_prefix)])
                .await?;
        }
        return Ok(Conn2::Nats(n));
    }
    let r = &s.brokers.rabbitmq;
    let mut a = amqp::Amqp::connect(&amqp::AmqpConfig {
        host: r.host.clone(),
        port: u16::try_from(r.port).unwrap_or(5672),
        vhost: r.vhost.clone(),
        username: r.username.clone(),
        password: r.password.expose().to_owned(),
        timeout,
        tls: r.tls,
    })
    .await?;
    if !r.exchange.is_empty() {
        a.declare_exchange(&r.exchange).await?;
    }
    Ok(Conn2::Rabbit(a, r.exchange.clone()))
}

/// Takes or renews this node's turn as `target`'s publisher.
async fn turn(app: &App, target: &'static str) -> Result<bool, StoreError> {
    let node = app.node_id.clone();
    app.store
        .write(move |c: &mut dyn Conn| {
            let d = c.dialect();
            let now = chrono::Utc::now().timestamp_millis();
            let mut ins = Sql::new(d);
            ins.push("INSERT INTO \"_leases\" (\"id\", \"holder\", \"until\") VALUES (")
                .push_param(format!("broker:{target}"))
                .push(", '', 0) ON CONFLICT DO NOTHING");
            c.execute_sql(&ins)?;
            let mut upd = Sql::new(d);
            upd.push("UPDATE \"_leases\" SET \"holder\" = ")
                .push_param(node.as_str())
                .push(", \"until\" = ")
                .push_param(SqlValue::Int(now + LEASE_MS))
                .push(" WHERE \"id\" = ")
                .push_param(format!("broker:{target}"))
                .push(" AND (\"holder\" = ")
                .push_param(node.as_str())
                .push(" OR \"until\" < ")
                .push_param(SqlValue::Int(now))
                .push(")");
            Ok(c.execute_sql(&upd)? == 1)
        })
        .await
}

async fn pending(app: &App, target: &'static str) -> Result<Vec<Row>, StoreError> {
    app.store
        .read(move |c: &mut dyn Conn| {
            let mut q = Sql::new(c.dialect());
            q.push("SELECT \"id\", \"collection\", \"subject\", \"body\" FROM \"_brokerOutbox\" WHERE \"target\" = ")
                .push_param(target)
                .push(" ORDER BY \"collection\", \"seq\" LIMIT ")
                .push_param(SqlValue::Int(BATCH));
            Ok(c.query_sql(&q)?
                .iter()
                .map(|r| Row {
                    id: r.text("id"),
                    collection: r.text("collection"),
                    subject: r.text("subject"),
                    body: r.text("body"),
                })
                .collect())
        })
        .await
}

async fn delete(app: &App, ids: Vec<String>) -> Result<(), StoreError> {
    app.store
        .write(move |c: &mut dyn Conn| {
            for chunk in ids.chunks(200) {
                let mut q = Sql::new(c.dialect());
                q.push("DELETE FROM \"_brokerOutbox\" WHERE \"id\" IN (");
                for (i, id) in chunk.iter().enumerate() {
                    if i > 0 {
                        q.push(", ");
                    }
                    q.push_param(id.as_str());
                }
                q.push(")");
                c.execute_sql(&q)?;
            }
            Ok(())
        })
        .await
}
