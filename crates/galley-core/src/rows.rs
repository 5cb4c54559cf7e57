//! Stored rows as records: loading one by id or by a field (with or without a rule), and
//! shaping a record for what a caller may see. Below every service (records, files, auth,
//! realtime all read records through here).

use crate::context::Caller;
use crate::error::CoreError;
use crate::rules::{Access, RuleCtx};
use galley_sql::Sql;
use galley_store::{Conn, ConnExt, Row};
use galley_types::Collection;
use serde_json::{Map, Value};

/// Every field of a stored row in its JSON form (hidden ones included).
pub fn from_row(col: &Collection, mut row: Row) -> Map<String, Value> {
    let mut m = Map::new();
    for f in &col.fields {
        m.insert(f.name.clone(), f.from_sql(row.take(&f.name)));
    }
    m
}

/// May `caller` see the email of this auth record?
fn email_visible(col: &Collection, rec: &Map<String, Value>, caller: &Caller) -> bool {
    if caller.is_superuser() || rec.get("emailVisibility") == Some(&Value::Bool(true)) {
        return true;
    }
    matches!(caller, Caller::Record { collection, record }
        if collection.id == col.id && record.get("id") == rec.get("id"))
}

/// The record as `caller` sees it: `collectionId`/`collectionName` added, secrets and
/// hidden fields removed. Keys are sorted, as PocketBase prints them.
pub fn present(col: &Collection, rec: &Map<String, Value>, caller: &Caller) -> Value {
    let superuser = caller.is_superuser();
    let mut items: Vec<(String, Value)> = Vec::with_capacity(col.fields.len() + 2);
    items.push(("collectionId".into(), Value::String(col.id.clone())));
    items.push(("collectionName".into(), Value::String(col.name.clone())));
    let show_email = !col.is_auth() || email_visible(col, rec, caller);
    for f in &col.fields {
        if f.type_name() == "password" || (col.is_auth() && f.name == "tokenKey") {
            continue;
        }
        if f.hidden && !superuser {
            continue;
        }
        if col.is_auth() && f.name == "email" && !show_email {
            continue;
        }
        items.push((
            f.name.clone(),
            rec.get(&f.name).cloned().unwrap_or_else(|| f.zero_value()),
        ));
    }
    if let Some(e) = rec.get("expand") {
        items.push(("expand".into(), e.clone()));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(items.into_iter().collect())
}

/// Loads one record, whatever the rules say (404 when missing).
pub fn load(c: &mut dyn Conn, col: &Collection, id: &str) -> Result<Map<String, Value>, CoreError> {
    let mut sql = Sql::new(c.dialect());
    sql.push("SELECT * FROM ")
        .ident(&col.name)
        .push(" WHERE ")
        .ident("id")
        .push(" = ")
        .push_param(id);
    let row = c
        .query_sql(&sql)?
        .into_iter()
        .next()
        .ok_or_else(CoreError::not_found)?;
    Ok(from_row(col, row))
}

/// Whether record `id` of `col` exists, whatever the rules say.
pub fn exists(c: &mut dyn Conn, col: &Collection, id: &str) -> Result<bool, CoreError> {
    let mut sql = Sql::new(c.dialect());
    sql.push("SELECT 1 AS x FROM ")
        .ident(&col.name)
        .push(" WHERE ")
        .ident("id")
        .push(" = ")
        .push_param(id);
    Ok(!c.query_sql(&sql)?.is_empty())
}

/// Loads one record if `rule` lets `ctx`'s caller see it.
pub fn load_checked(
    c: &mut dyn Conn,
    ctx: &RuleCtx<'_>,
    rule: &Option<String>,
    id: &str,
) -> Result<Map<String, Value>, CoreError> {
    let mut sql = Sql::new(c.dialect());
    sql.push("SELECT * FROM ")
        .ident(&ctx.collection.name)
        .push(" WHERE ");
    sql.qualified(&ctx.collection.name, "id")
        .push(" = ")
        .push_param(id);
    match ctx.access(rule)? {
        Access::SuperuserOnly => return Err(CoreError::superuser_only()),
        Access::Allow => {}
        Access::Where(w) => {
            sql.push(" AND (").append(&w).push(")");
        }
    }
    let row = c
        .query_sql(&sql)?
        .into_iter()
        .next()
        .ok_or_else(CoreError::not_found)?;
    Ok(from_row(ctx.collection, row))
}

/// One record of `col` by a field's value (`ci`: case-insensitively).
pub fn find_by(
    c: &mut dyn Conn,
    col: &Collection,
    field: &str,
    value: &str,
    ci: bool,
) -> Result<Option<Map<String, Value>>, CoreError> {
    let d = c.dialect();
    let mut sql = Sql::new(d);
    sql.push("SELECT * FROM ").ident(&col.name).push(" WHERE ");
    if ci {
        sql.push(&d.lower(&d.quote(field)))
            .push(" = ")
            .push_param_with(value, |p| d.lower(p));
    } else {
        sql.ident(field).push(" = ").push_param(value);
    }
    sql.push(" LIMIT 1");
    Ok(c.query_sql(&sql)?
        .into_iter()
        .next()
        .map(|r| from_row(col, r)))
}

/// A record's id ("" when it has none).
pub fn rec_id(r: &Map<String, Value>) -> String {
    r.get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// A record's text field ("" when absent or not text).
pub fn rec_str<'a>(r: &'a Map<String, Value>, k: &str) -> &'a str {
    r.get(k).and_then(Value::as_str).unwrap_or_default()
}
