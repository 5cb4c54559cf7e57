//! The cross-node bus, write side: inside a write job, record events and schema changes
//! are sent to the other nodes with PostgreSQL's NOTIFY, which is transactional, so only
//! committed changes travel (`realtime` holds the receiving side).

use crate::context::Events;
use crate::error::CoreError;
use galley_store::Conn;
use serde_json::json;

/// The PostgreSQL notification channel that carries record events and schema changes
/// between nodes.
pub const CHANNEL: &str = "galley_events";
/// NOTIFY payloads must stay under 8000 bytes; larger records travel as their id and are
/// read back by the receiving node.
const MAX_PAYLOAD: usize = 7900;

/// Inside a write job: tells the other nodes about the job's record events. NOTIFY is
/// transactional, so they hear of it only if the job commits.
pub fn notify_events(c: &mut dyn Conn, node: &str, events: &Events) -> Result<(), CoreError> {
    let Some(stmt) = c.dialect().notify() else {
        return Ok(());
    };
    let evs = events.lock().map(|e| e.clone()).unwrap_or_default();
    for ev in evs {
        let mut payload =
            json!({"n": node, "a": ev.action, "c": ev.collection_id, "r": ev.record}).to_string();
        if payload.len() > MAX_PAYLOAD {
            payload = json!({"n": node, "a": ev.action, "c": ev.collection_id, "id": ev.record.get("id")}).to_string();
        }
        c.execute(stmt, &[CHANNEL.into(), payload.into()])?;
    }
    Ok(())
}

/// Inside a schema-changing write job: the other nodes reload their schema on commit.
pub fn notify_schema(c: &mut dyn Conn, node: &str) -> Result<(), CoreError> {
    if let Some(stmt) = c.dialect().notify() {
        c.execute(
            stmt,
            &[
                CHANNEL.into(),
                json!({"n": node, "schema": true}).to_string().into(),
            ],
        )?;
    }
    Ok(())
}
