//! Multi-factor authentication: with `mfa.enabled` (and `mfa.rule` holding, empty = always),
//! a first successful method answers `401 {"mfaId"}` and stores a pending session in
//! `_mfas`; the login completes when a *different* method succeeds with that `mfaId`
//! within `mfa.duration` seconds.

use super::{record_rule_holds, Method};
use crate::app::App;
use crate::error::CoreError;
use crate::rows::rec_id;
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt};
use galley_types::Collection;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Lets the login through, or answers with the MFA step to take.
pub async fn check(
    app: &App,
    col: &Arc<Collection>,
    record: &Map<String, Value>,
    method: Method,
    mfa_id: Option<&str>,
) -> Result<(), CoreError> {
    let Some(opts) = col
        .auth
        .as_ref()
        .map(|a| a.mfa.clone())
        .filter(|m| m.enabled)
    else {
        return Ok(());
    };
    let (col_id, rec) = (col.id.clone(), rec_id(record));
    if let Some(id) = mfa_id.filter(|s| !s.is_empty()) {
        let (id, col_id2, rec2) = (id.to_owned(), col_id.clone(), rec.clone());
        let row = app
            .store
            .read(move |c: &mut dyn Conn| -> Result<_, CoreError> {
                let mut sql = Sql::new(c.dialect());
                sql.push("SELECT * FROM \"_mfas\" WHERE \"id\" = ")
                    .push_param(id);
                sql.push(" AND \"collectionRef\" = ")
                    .push_param(col_id2)
                    .push(" AND \"recordRef\" = ")
                    .push_param(rec2);
                Ok(c.query_sql(&sql)?.into_iter().next())
            })
            .await?;
        let now = chrono::Utc::now();
        let fresh = row
            .as_ref()
            .and_then(|r| r.timestamp("created"))
            .is_some_and(|t| (now - t).num_seconds() < opts.duration);
        let Some(row) = row.filter(|_| fresh) else {
            return Err(CoreError::bad_request("Invalid or expired MFA session."));
        };
        if row.text("method") == method.as_str() {
            return Err(CoreError::bad_request(
                "A different authentication method is required.",
            ));
        }
        let id = row.text("id");
        app.store
            .write(move |c: &mut dyn Conn| -> Result<(), CoreError> {
                let mut sql = Sql::new(c.dialect());
                sql.push("DELETE FROM \"_mfas\" WHERE \"id\" = ")
                    .push_param(id);
                c.execute_sql(&sql)?;
                Ok(())
            })
            .await?;
        return Ok(());
    }
    let rule = if opts.rule.trim().is_empty() {
        None
    } else {
        Some(opts.rule.clone())
    };
    if let Some(rule) = rule {
        if !record_rule_holds(app, col, record, Some(rule)).await? {
            return Ok(());
        }
    }
    let id = galley_types::ids::generate_from_pattern("[a-z0-9]{15}").unwrap_or_default();
    let id2 = id.clone();
    app.store
        .write(move |c: &mut dyn Conn| -> Result<(), CoreError> {
            let now = galley_types::datetime::now();
            let mut sql = Sql::new(c.dialect());
            sql.push("INSERT INTO \"_mfas\" (\"id\", \"collectionRef\", \"recordRef\", \"method\", \"created\", \"updated\") VALUES (");
            sql.push_param(id2).push(", ").push_param(col_id).push(", ").push_param(rec).push(", ").push_param(method.as_str());
            sql.push(", ").push_param(SqlValue::Timestamp(now)).push(", ").push_param(SqlValue::Timestamp(now)).push(")");
            c.execute_sql(&sql)?;
            Ok(())
        })
        .await?;
    Err(CoreError::MfaRequired(id))
}
