//! `PUT /api/collections/import`: many collections created, updated and (with
//! `deleteMissing`) deleted in one write job, so the schema changes all together or not at
//! all. Each submitted collection is validated as a create or update would validate it,
//! against the schema as the collections before it in the list leave it.

use super::{apply_schema_change, create_indexes, parse_collection, unique_name_error};
use crate::app::App;
use crate::catalog::{self, ddl};
use crate::error::CoreError;
use galley_store::Conn;
use galley_types::{Collection, Schema};
use serde_json::{json, Map, Value};

/// At most this many collections in one import (each is validated and altered in one job).
const MAX_IMPORT: usize = 1000;
const FAILED: &str = "Failed to import collections.";
/// PocketBase's system collections that Galley keeps as plain tables (not collections): an
/// export from PocketBase lists them, and importing it leaves them as they are.
const PLAIN_TABLES: [&str; 3] = ["_mfas", "_otps", "_authOrigins"];

enum Change {
    Create(Collection),
    Update(Box<(Collection, Collection)>),
    Delete(Collection),
}

/// A field error map as PocketBase prints it inside the import message: messages only.
fn messages(v: &Value) -> Value {
    match v {
        Value::Object(m) if m.contains_key("code") && m.contains_key("message") => {
            m["message"].clone()
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), messages(v)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

fn failure(message: String) -> CoreError {
    CoreError::BadRequest {
        message: FAILED.into(),
        data: json!({"collections": {"code": "validation_collections_import_failure", "message": message}}),
    }
}

fn invalid(name: &str, id: &str, e: CoreError) -> CoreError {
    let detail = match e {
        CoreError::BadRequest { message, data } => {
            if data.as_object().is_some_and(|m| !m.is_empty()) {
                serde_json::to_string_pretty(&messages(&data)).unwrap_or(message)
            } else {
                message
            }
        }
        other => return other,
    };
    failure(format!(
        "Data validations failed for collection \"{name}\" ({id}):\n{detail}."
    ))
}

/// Imports `collections` (PocketBase's collection JSON, as the list and view endpoints give
/// it); with `delete_missing`, non-system collections not in the list are deleted.
pub async fn import(app: &App, body: &Value) -> Result<(), CoreError> {
    let blank = || CoreError::BadRequest {
        message: "An error occurred while validating the submitted data.".into(),
        data: json!({"collections": {"code": "validation_required", "message": "Cannot be blank."}}),
    };
    let items = match body.get("collections") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) | Some(Value::Null) | None => return Err(blank()),
        Some(_) => {
            return Err(CoreError::bad_request(
                "An error occurred while loading the submitted data.",
            ))
        }
    };
    if items.len() > MAX_IMPORT {
        return Err(failure(format!(
            "At most {MAX_IMPORT} collections can be imported at once."
        )));
    }
    let delete_missing = match body.get("deleteMissing") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(CoreError::bad_request(
                "An error occurred while loading the submitted data.",
            ))
        }
    };

    let current = app.schema();
    let mut working: Vec<Collection> = current.all().iter().map(|c| (**c).clone()).collect();
    let mut changes: Vec<Change> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for item in items {
        let schema = Schema::new(0, working.clone());
        let name = item.get("name").and_then(Value::as_str).unwrap_or("");
        if PLAIN_TABLES.contains(&name) {
            continue;
        }
        // By id, else by name: an export from PocketBase names system collections whose ids
        // differ here.
        let old = item
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .and_then(|id| schema.by_id(id))
            .or_else(|| schema.find(name))
            .map(|c| (**c).clone());
        if let Some(o) = &old {
            if seen.contains(&o.id) {
                return Err(failure(format!(
                    "The collection \"{name}\" ({}) is listed more than once.",
                    o.id
                )));
            }
        }
        let new = parse_collection(&schema, old.as_ref(), item).map_err(|e| {
            let kind = item.get("type").and_then(Value::as_str).unwrap_or("base");
            let id = old
                .as_ref()
                .map(|o| o.id.clone())
                .or_else(|| item.get("id").and_then(Value::as_str).map(str::to_owned))
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| galley_types::ids::collection_id(kind, name));
            invalid(name, &id, e)
        })?;
        seen.push(new.id.clone());
        match old {
            Some(o) => {
                if let Some(slot) = working.iter_mut().find(|c| c.id == o.id) {
                    *slot = new.clone();
                }
                if o != new {
                    changes.push(Change::Update(Box::new((o, new))));
                }
            }
            None => {
                working.push(new.clone());
                changes.push(Change::Create(new));
            }
        }
    }
    if delete_missing {
        let (gone, kept): (Vec<Collection>, Vec<Collection>) = working
            .into_iter()
            .partition(|c| !c.system && !seen.contains(&c.id));
        for g in &gone {
            if let Some(user) = kept.iter().find(|k| {
                k.fields
                    .iter()
                    .any(|f| f.relation().is_some_and(|r| r.collection_id == g.id))
            }) {
                return Err(failure(format!(
                    "The collection \"{}\" cannot be deleted: the relation fields of \"{}\" reference it.",
                    g.name, user.name
                )));
            }
        }
        // Deletions first, so a name they free can be taken by the collections after them.
        let mut ordered: Vec<Change> = gone.into_iter().map(Change::Delete).collect();
        ordered.append(&mut changes);
        changes = ordered;
    }
    if changes.is_empty() {
        return Ok(());
    }
    let removed: Vec<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Delete(col) => Some(col.id.clone()),
            _ => None,
        })
        .collect();
    let node = app.node_id.clone();
    app.store
        .write(move |c: &mut dyn Conn| -> Result<(), CoreError> {
            let d = c.dialect();
            for change in &changes {
                match change {
                    Change::Delete(col) => {
                        for s in ddl::drop_index_statements(d, col) {
                            c.batch(&s)?;
                        }
                        c.batch(&format!("DROP TABLE {}", d.quote(&col.name)))?;
                        catalog::delete_row(c, &col.id)?;
                    }
                    Change::Update(pair) => {
                        let (old, new) = &**pair;
                        apply_schema_change(c, old, new).map_err(|e| import_error(new, e))?;
                        catalog::update_row(c, new)
                            .map_err(|e| unique_name_error(e, FAILED))
                            .map_err(|e| import_error(new, e))?;
                    }
                    Change::Create(new) => {
                        c.batch(&ddl::create_table(d, new))?;
                        create_indexes(c, new, FAILED).map_err(|e| import_error(new, e))?;
                        catalog::insert_row(c, new)
                            .map_err(|e| unique_name_error(e, FAILED))
                            .map_err(|e| import_error(new, e))?;
                    }
                }
            }
            crate::bus::notify_schema(c, &node)
        })
        .await?;
    for id in removed {
        crate::files::remove_collection(app, &id).await;
    }
    app.reload_schema().await
}

fn import_error(col: &Collection, e: CoreError) -> CoreError {
    match e {
        e @ CoreError::BadRequest { .. } => invalid(&col.name, &col.id, e),
        other => other,
    }
}
