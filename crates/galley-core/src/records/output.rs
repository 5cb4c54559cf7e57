//! Rows to record JSON, with what each caller may see.

use crate::caller::Caller;
use galley_store::Row;
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
