//! Realtime delivery: record events, published after their transaction commits, are sent
//! to each subscribed client whose auth passes the collection's list rule (`COLL/*`) or view
//! rule (`COLL/ID`), evaluated against the changed record, with the record shaped as that
//! client may see it (hidden fields, email visibility, `expand`, `fields`).

use crate::app::App;
use crate::bus::{self, CHANNEL};
use crate::context::{Caller, RecordEvent, RequestMeta};
use crate::error::CoreError;
use crate::records::expand;
use crate::rows as output;
use crate::rules::{Access, RuleCtx};
use galley_realtime::{Message, Revision, Topic};
use galley_sql::Sql;
use galley_store::{Conn, ConnExt};
use galley_types::Collection;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Sends one client the events it missed after `seq` (checked and shaped as live ones).
/// `false` when they are no longer all kept: the client must reload its data.
pub async fn replay(app: &Arc<App>, client_id: &str, seq: u64) -> bool {
    let Some(events) = app.journal.since(seq) else {
        return false;
    };
    for (s, ev) in events {
        if let Err(e) = deliver(app, &ev, s, Some(client_id)).await {
            tracing::warn!(error = %e, "realtime replay failed");
        }
    }
    true
}

/// How often a node reads `_events` without a wake-up: a lost notification delays an event
/// at most this long, and gaps left by rolled-back transactions are settled.
const BUS_POLL: std::time::Duration = std::time::Duration::from_secs(2);
/// How often a node prunes `_events`.
const BUS_PRUNE: std::time::Duration = std::time::Duration::from_secs(60);

/// Reads other nodes' events from `_events` (PostgreSQL only) when woken by a NOTIFY, after
/// each LISTEN (re)connection and every [`BUS_POLL`], and delivers them to this node's
/// clients; reloads the schema after another node changed it.
pub fn start_listener(app: &Arc<App>) {
    let Some(mut rx) = app.store.listen(CHANNEL) else {
        return;
    };
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        let reader = loop {
            let Some(app) = weak.upgrade() else { return };
            match app.store.read(bus::Reader::start).await {
                Ok(r) => break Arc::new(std::sync::Mutex::new(r)),
                Err(e) => tracing::warn!(error = %e, "cannot read the cross-node events"),
            }
            drop(app);
            tokio::time::sleep(BUS_POLL).await;
        };
        let mut pruned = tokio::time::Instant::now();
        loop {
            if let Ok(None) = tokio::time::timeout(BUS_POLL, rx.recv()).await {
                break;
            }
            // Wake-ups carry nothing: the ones that queued up meanwhile are read by this pass.
            while rx.try_recv().is_ok() {}
            let Some(app) = weak.upgrade() else { break };
            let (r, node) = (reader.clone(), app.node_id.clone());
            let read = app
                .store
                .read(move |c: &mut dyn Conn| {
                    r.lock().unwrap_or_else(|p| p.into_inner()).read(c, &node)
                })
                .await;
            let got = match read {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the cross-node events");
                    continue;
                }
            };
            let mut batch = Vec::new();
            for ev in got {
                match ev {
                    bus::BusEvent::Record(r) => batch.push(r),
                    bus::BusEvent::Schema => {
                        if !batch.is_empty() {
                            app.queue_realtime(std::mem::take(&mut batch));
                        }
                        if let Err(e) = app.reload_schema().await {
                            tracing::warn!(error = %e, "cannot reload the schema after another node changed it");
                        }
                    }
                }
            }
            if !batch.is_empty() {
                app.queue_realtime(batch);
            }
            if pruned.elapsed() >= BUS_PRUNE {
                pruned = tokio::time::Instant::now();
                if let Err(e) = app.store.write(bus::prune).await {
                    tracing::warn!(error = %e, "cannot prune the cross-node events");
                }
            }
        }
    });
}

/// Most batches of events (one per write job) waiting for delivery; beyond, publishing
/// drops them and every client (see `App::queue_realtime`) rather than make writers wait.
pub const PENDING_EVENTS: usize = 10_000;
/// Rule checks and payloads worked out at once for one event (each on a reader connection).
const PARALLEL: usize = 8;

/// Starts the delivery task; events are delivered in commit order.
pub fn start(app: &Arc<App>) -> tokio::sync::mpsc::Sender<Vec<RecordEvent>> {
    let tx = start_delivery(app);
    start_listener(app);
    tx
}

fn start_delivery(app: &Arc<App>) -> tokio::sync::mpsc::Sender<Vec<RecordEvent>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<RecordEvent>>(PENDING_EVENTS);
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            let Some(app) = weak.upgrade() else { break };
            for ev in batch {
                revise_auth(&app, &ev);
                let size = json_size(&ev.record);
                let ev = Arc::new(ev);
                let seq = app.journal.push(ev.clone(), size);
                if let Err(e) = deliver(&app, &ev, seq, None).await {
                    tracing::warn!(error = %e, "realtime delivery failed");
                }
            }
        }
    });
    tx
}

/// Before an auth record's event is delivered: clients authenticated as it are dropped
/// when it is deleted or its tokens are revoked (a new `tokenKey`: password change), and
/// otherwise see it as it is now (rules read the new values).
fn revise_auth(app: &App, ev: &RecordEvent) {
    let Some(col) = app.schema().by_id(&ev.collection_id).cloned() else {
        return;
    };
    if !col.is_auth() {
        return;
    }
    let id = ev.record.get("id");
    app.realtime.revise_auth(|c| match c {
        Caller::Record { collection, record }
            if collection.id == col.id && record.get("id") == id =>
        {
            if ev.action == "delete" || record.get("tokenKey") != ev.record.get("tokenKey") {
                Revision::Drop
            } else {
                Revision::Replace(Caller::Record {
                    collection: col.clone(),
                    record: ev.record.clone(),
                })
            }
        }
        _ => Revision::Keep,
    });
}

/// About how many bytes a record takes in memory, to bound the journal.
fn json_size(m: &Map<String, Value>) -> usize {
    fn size(v: &Value) -> usize {
        16 + match v {
            Value::String(s) => s.len(),
            Value::Array(a) => a.iter().map(size).sum(),
            Value::Object(o) => o.iter().map(|(k, v)| k.len() + size(v)).sum(),
            _ => 0,
        }
    }
    m.iter().map(|(k, v)| 32 + k.len() + size(v)).sum()
}

/// The condition of `rule` evaluated against the values of `record`, as a virtual one-row
/// table named like the collection, so it works for deleted records too.
fn virtual_row_check(
    c: &mut dyn Conn,
    col: &Collection,
    record: &Map<String, Value>,
    cond: &Sql,
) -> Result<bool, CoreError> {
    let d = c.dialect();
    let mut sql = Sql::new(d);
    sql.push("SELECT 1 AS ok FROM (SELECT ");
    for (i, f) in col.fields.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        let v = record
            .get(&f.name)
            .cloned()
            .unwrap_or_else(|| f.zero_value());
        let cast = d.param_cast(f.column_type());
        sql.push_param_with(f.to_sql(&v, d), |p| format!("{p}{cast}"));
        sql.push(" AS ").ident(&f.name);
    }
    sql.push(") AS ")
        .ident(&col.name)
        .push(" WHERE (")
        .append(cond)
        .push(")");
    Ok(!c.query_sql(&sql)?.is_empty())
}

async fn deliver(
    app: &Arc<App>,
    ev: &Arc<RecordEvent>,
    seq: u64,
    only: Option<&str>,
) -> Result<(), CoreError> {
    let hub = &app.realtime;
    if hub.is_empty() {
        return Ok(());
    }
    let schema = app.schema();
    // A collection deleted since the event: nobody can be subscribed to it any more.
    let Some(col) = schema.by_id(&ev.collection_id).cloned() else {
        return Ok(());
    };
    let mut targets = hub.targets(&[col.name.as_str(), col.id.as_str()]);
    if let Some(id) = only {
        targets.retain(|t| t.client_id == id);
    }
    if targets.is_empty() {
        return Ok(());
    }
    let id = ev
        .record
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // The payload depends only on the caller, the rule (list or view) and the topic's
    // options, so subscribers that share all three (10,000 guests on `posts/*`) cost one
    // rule check and one serialisation per event, not one each. The distinct ones are
    // worked out in parallel.
    let mut sends: Vec<(String, String, String)> = Vec::new();
    let mut groups: HashMap<String, (Caller, Topic)> = HashMap::new();
    for t in &targets {
        let caller = t.auth.as_deref().cloned().unwrap_or_default();
        let who = caller_key(&caller);
        for topic in t.topics.iter() {
            if !(topic.collection.eq_ignore_ascii_case(&col.name)
                || topic.collection.eq_ignore_ascii_case(&col.id))
                || topic.record_id.as_deref().is_some_and(|r| r != id)
            {
                continue;
            }
            let key = format!(
                "{who}\0{}\0{}",
                u8::from(topic.record_id.is_some()),
                topic.options_key
            );
            groups
                .entry(key.clone())
                .or_insert_with(|| (caller.clone(), topic.clone()));
            sends.push((t.client_id.clone(), topic.raw.clone(), key));
        }
    }
    let mut payloads: HashMap<String, Option<String>> = HashMap::with_capacity(groups.len());
    let mut running = tokio::task::JoinSet::new();
    for (key, (caller, topic)) in groups {
        if running.len() >= PARALLEL {
            if let Some(done) = running.join_next().await {
                let (k, d) = done.map_err(|e| CoreError::internal(&e))?;
                payloads.insert(k, d?);
            }
        }
        let (app, col, ev) = (app.clone(), col.clone(), ev.clone());
        running.spawn(async move {
            let rule = if topic.record_id.is_some() {
                col.rules.view_rule.clone()
            } else {
                col.rules.list_rule.clone()
            };
            let d = payload(&app, &col, &ev, &caller, &topic, rule).await;
            (key, d)
        });
    }
    while let Some(done) = running.join_next().await {
        let (k, d) = done.map_err(|e| CoreError::internal(&e))?;
        payloads.insert(k, d?);
    }
    let mut gone: Option<String> = None;
    for (client, event, key) in sends {
        if gone.as_deref() == Some(client.as_str()) {
            continue;
        }
        let Some(Some(data)) = payloads.get(&key) else {
            continue;
        };
        if hub
            .send(
                &client,
                Message {
                    seq,
                    event,
                    data: data.clone(),
                },
            )
            .is_err()
        {
            tracing::info!(client = %client, "realtime client too slow; disconnected");
            gone = Some(client);
        }
    }
    Ok(())
}

/// Identifies a caller by everything a rule or the output shaping can read of it: the
/// whole auth record as this client holds it, not only its id (two clients of one user may
/// hold different snapshots).
fn caller_key(caller: &Caller) -> String {
    match caller {
        Caller::Guest => String::new(),
        Caller::Record { collection, record } => format!(
            "{}\0{}",
            collection.id,
            serde_json::to_string(record).unwrap_or_default()
        ),
    }
}

/// The event as `caller` may see it through `topic`, or `None` if the rule hides it.
async fn payload(
    app: &Arc<App>,
    col: &Arc<Collection>,
    ev: &RecordEvent,
    caller: &Caller,
    topic: &Topic,
    rule: Option<String>,
) -> Result<Option<String>, CoreError> {
    let meta = RequestMeta {
        method: "GET".into(),
        context: "realtime".into(),
        query: topic.query.clone(),
        headers: topic.headers.clone(),
    };
    let expand_paths = expand::parse(
        topic
            .query
            .get("expand")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    let (schema, col2, caller2, record, meta2) = (
        app.schema(),
        col.clone(),
        caller.clone(),
        ev.record.clone(),
        meta.clone(),
    );
    let visible = app
        .store
        .read(
            move |c: &mut dyn Conn| -> Result<Option<Map<String, Value>>, CoreError> {
                let rctx = RuleCtx::new(&schema, &col2, &caller2, &meta2, c.dialect());
                match rctx.access(&rule)? {
                    Access::SuperuserOnly => return Ok(None),
                    Access::Allow => {}
                    Access::Where(cond) => {
                        if !virtual_row_check(c, &col2, &record, &cond)? {
                            return Ok(None);
                        }
                    }
                }
                let mut recs = [record];
                expand::Expander::new(&schema, &caller2, &meta2).expand(
                    c,
                    &col2,
                    &mut recs,
                    &expand_paths,
                )?;
                let [r] = recs;
                Ok(Some(r))
            },
        )
        .await?;
    let Some(rec) = visible else { return Ok(None) };
    let mut shown = output::present(col, &rec, caller);
    if let Some(f) = topic.query.get("fields").and_then(Value::as_str) {
        shown = crate::picker::pick(shown, f);
    }
    Ok(Some(
        json!({"action": ev.action, "record": shown}).to_string(),
    ))
}

impl PartialEq for Caller {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Caller::Guest, Caller::Guest) => true,
            (
                Caller::Record {
                    collection: a,
                    record: ra,
                },
                Caller::Record {
                    collection: b,
                    record: rb,
                },
            ) => a.id == b.id && ra.get("id") == rb.get("id"),
            _ => false,
        }
    }
}
