//! The cross-node bus (PostgreSQL). Write side: inside a write job, each record event and
//! schema change becomes a row of `_events`, numbered by the database, and one NOTIFY wakes
//! the other nodes; both are transactional, so only committed changes travel. Read side
//! ([`Reader`]): after a wake-up (or a LISTEN reconnect) a node reads the rows it has not
//! seen. NOTIFY carries nothing (any database role may LISTEN and NOTIFY on any channel):
//! records never leave the tables, and a forged notification costs one read of
//! `_events` that finds nothing new. `realtime` drives the reader.

use crate::context::{Events, RecordEvent};
use crate::error::CoreError;
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The PostgreSQL notification channel that wakes the other nodes.
pub const CHANNEL: &str = "galley_events";
/// How long rows stay in `_events`: a node that cannot read for longer misses events (its
/// realtime clients reconnect and reload, as after a restart).
pub const RETENTION_MS: i64 = 10 * 60 * 1000;
/// Numbers a reader keeps waiting for at most (each is a transaction that took a number and
/// has not committed yet); past this the oldest are given up.
const MAX_GAPS: usize = 256;
/// Rows read at once.
const PAGE: i64 = 500;

/// Inside a write job: records the job's events for the other nodes, visible to them only
/// if the job commits.
pub fn notify_events(c: &mut dyn Conn, node: &str, events: &Events) -> Result<(), CoreError> {
    let Some(stmt) = c.dialect().notify() else {
        return Ok(());
    };
    let evs = events.lock().unwrap_or_else(|p| p.into_inner());
    if evs.is_empty() {
        return Ok(());
    }
    for ev in evs.iter() {
        let record = serde_json::to_string(&ev.record).unwrap_or_default();
        insert(c, node, ev.action, &ev.collection_id, &record)?;
    }
    c.execute(stmt, &[CHANNEL.into(), "".into()])?;
    Ok(())
}

/// Inside a schema-changing write job: the other nodes reload their schema on commit.
pub fn notify_schema(c: &mut dyn Conn, node: &str) -> Result<(), CoreError> {
    let Some(stmt) = c.dialect().notify() else {
        return Ok(());
    };
    insert(c, node, "schema", "", "")?;
    c.execute(stmt, &[CHANNEL.into(), "".into()])?;
    Ok(())
}

fn insert(
    c: &mut dyn Conn,
    node: &str,
    kind: &str,
    collection: &str,
    record: &str,
) -> Result<(), CoreError> {
    let mut sql = Sql::new(c.dialect());
    sql.push("INSERT INTO \"_events\" (\"node\", \"kind\", \"collection\", \"record\", \"created\") VALUES (")
        .push_param(node)
        .push(", ")
        .push_param(kind)
        .push(", ")
        .push_param(collection)
        .push(", ")
        .push_param(record)
        .push(", ")
        .push_param(chrono::Utc::now().timestamp_millis())
        .push(")");
    c.execute_sql(&sql)?;
    Ok(())
}

/// Deletes the rows older than [`RETENTION_MS`] (any node may; doing it twice is harmless).
pub fn prune(c: &mut dyn Conn) -> Result<(), CoreError> {
    let mut sql = Sql::new(c.dialect());
    sql.push("DELETE FROM \"_events\" WHERE \"created\" < ")
        .push_param(chrono::Utc::now().timestamp_millis() - RETENTION_MS);
    c.execute_sql(&sql)?;
    Ok(())
}

/// What another node committed.
#[derive(Debug)]
pub enum BusEvent {
    Record(RecordEvent),
    Schema,
}

/// One node's position in `_events`. Numbers are taken when a row is inserted, not when its
/// transaction commits, so number 7 may become visible after number 8: a number skipped by
/// a read is a gap, kept and asked for again until it appears or the transactions that may
/// hold it have all ended (then it was rolled back). Rows come out in the order they became
/// visible, which is commit order.
#[derive(Debug, Default)]
pub struct Reader {
    /// The highest number read.
    last: i64,
    /// Numbers below `last` not seen yet → the transaction-id horizon (`xmax`) when they were
    /// first missed: once every transaction below it has ended, the gap is final.
    gaps: BTreeMap<i64, i64>,
}

impl Reader {
    /// Starts after the rows already there (a node does not replay history at start).
    pub fn start(c: &mut dyn Conn) -> Result<Reader, CoreError> {
        let last = c
            .query_one("SELECT COALESCE(MAX(\"id\"), 0) AS n FROM \"_events\"", &[])?
            .map(|r| r.int("n"))
            .unwrap_or(0);
        Ok(Reader {
            last,
            gaps: BTreeMap::new(),
        })
    }

    /// The committed events not read yet, other nodes' only (`node` is this one).
    pub fn read(&mut self, c: &mut dyn Conn, node: &str) -> Result<Vec<BusEvent>, CoreError> {
        let Some(horizon) = c.dialect().xact_horizon() else {
            return Ok(vec![]);
        };
        // Taken before the rows: a transaction below this xmin had ended before they were read.
        let before = c
            .query_one(horizon, &[])?
            .map(|r| r.int("xmin"))
            .unwrap_or(0);
        let mut out = Vec::new();
        loop {
            let rows = self.page(c)?;
            let n = rows.len();
            for r in rows {
                let id = r.int("id");
                if id > self.last + 1 {
                    // Numbers skipped: their transactions (which took them before this row's
                    // did, so had their ids then) may still commit.
                    let after = c
                        .query_one(horizon, &[])?
                        .map(|r| r.int("xmax"))
                        .unwrap_or(i64::MAX);
                    for g in self.last + 1..id {
                        if self.gaps.len() >= MAX_GAPS {
                            self.gaps.pop_first();
                        }
                        self.gaps.insert(g, after);
                    }
                }
                if id > self.last {
                    self.last = id;
                } else if self.gaps.remove(&id).is_none() {
                    continue;
                }
                if r.text("node") == node {
                    continue;
                }
                if let Some(ev) = decode(&r) {
                    out.push(ev);
                }
            }
            if n < PAGE as usize {
                break;
            }
        }
        self.gaps.retain(|_, xmax| *xmax > before);
        Ok(out)
    }

    fn page(&self, c: &mut dyn Conn) -> Result<Vec<galley_store::Row>, CoreError> {
        let mut sql = Sql::new(c.dialect());
        sql.push("SELECT \"id\", \"node\", \"kind\", \"collection\", \"record\" FROM \"_events\" WHERE \"id\" > ")
            .push_param(self.last);
        if !self.gaps.is_empty() {
            sql.push(" OR \"id\" IN (");
            for (i, g) in self.gaps.keys().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push_param(SqlValue::Int(*g));
            }
            sql.push(")");
        }
        sql.push(" ORDER BY \"id\" LIMIT ").push_param(PAGE);
        Ok(c.query_sql(&sql)?)
    }
}

fn decode(r: &galley_store::Row) -> Option<BusEvent> {
    let action = match r.text("kind").as_str() {
        "schema" => return Some(BusEvent::Schema),
        "create" => "create",
        "update" => "update",
        "delete" => "delete",
        _ => return None,
    };
    let record: Map<String, Value> = serde_json::from_str(&r.text("record")).ok()?;
    Some(BusEvent::Record(RecordEvent {
        action,
        collection_id: r.text("collection"),
        record,
    }))
}
