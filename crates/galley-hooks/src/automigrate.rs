//! PocketBase's automigrate: each collection change a superuser makes (collections API,
//! dashboard) is written as a migration file into the migrations folder, in the text
//! PocketBase's migratecmd plugin writes (`<unix>_created_<name>.js`, `..._updated_...`,
//! `..._deleted_...`), and recorded as applied in `_migrations` so that this database does
//! not run it again; a fresh database running `migrate up` over the folder gets the same
//! schema. The texts follow plugins/migratecmd/templates.go: keys sorted, two-space
//! indents, `created`/`updated` and OAuth2 providers left out.

use crate::migrate::record_on;
use galley_core::collections::SchemaHook;
use galley_core::context::request_hooks::BoxFuture;
use galley_core::{App, CoreError};
use galley_types::Collection;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::{Arc, Weak};

const TYPES: &str = "/// <reference path=\"../pb_data/types.d.ts\" />\n";

/// The schema hook that writes the files.
pub(crate) struct AutoMigrate {
    pub(crate) app: Weak<App>,
    pub(crate) dir: PathBuf,
}

impl SchemaHook for AutoMigrate {
    fn changed(
        &self,
        old: Option<Collection>,
        new: Option<Collection>,
    ) -> BoxFuture<Result<(), CoreError>> {
        let app = self.app.clone();
        let dir = self.dir.clone();
        Box::pin(async move {
            let Some(app) = app.upgrade() else {
                return Ok(());
            };
            let (old, new) = (old.map(|c| plain(&c)), new.map(|c| plain(&c)));
            let Some(text) = template(old.as_ref(), new.as_ref()) else {
                return Ok(());
            };
            let name = file_name(old.as_ref(), new.as_ref(), chrono::Utc::now().timestamp());
            std::fs::create_dir_all(&dir)
                .map_err(|e| CoreError::Internal(format!("{}: {e}", dir.display())))?;
            let path = dir.join(&name);
            std::fs::write(&path, text)
                .map_err(|e| CoreError::Internal(format!("{}: {e}", path.display())))?;
            if let Err(e) = record_on(&app, &name, true).await {
                let _ = std::fs::remove_file(&path);
                return Err(CoreError::Internal(e.to_string()));
            }
            tracing::info!(file = %path.display(), "automigrate: migration written");
            Ok(())
        })
    }
}

/// A collection's JSON as the migration holds it.
fn plain(c: &Collection) -> Value {
    let mut v = c.to_json();
    if let Some(o) = v.as_object_mut() {
        o.remove("created");
        o.remove("updated");
        if let Some(Value::Object(oauth2)) = o.get_mut("oauth2") {
            oauth2.remove("providers");
        }
    }
    // After the removals: they may reorder the keys.
    sorted(&v)
}

/// `v` with every object's keys in order (Go's encoding/json writes maps so).
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&o[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Go's `json.MarshalIndent(v, "  ", "  ")`.
fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v)
        .unwrap_or_default()
        .replace('\n', "\n  ")
}

fn quoted(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `<unix>_<action>_<name>.js`; a name ending in "test" gets a `_` (PocketBase's rule, so
/// that no file ends in `_test.js`).
fn file_name(old: Option<&Value>, new: Option<&Value>, unix: i64) -> String {
    let (action, c) = match (old, new) {
        (Some(o), None) => ("deleted", o),
        (None, Some(n)) => ("created", n),
        (Some(o), Some(_)) => ("updated", o),
        (None, None) => ("updated", &Value::Null),
    };
    let mut name = str_of(c, "name").to_owned();
    if name.to_lowercase().ends_with("test") {
        name.push('_');
    }
    format!("{unix}_{action}_{name}.js")
}

/// The migration's text; `None` when nothing changed.
pub(crate) fn template(old: Option<&Value>, new: Option<&Value>) -> Option<String> {
    match (old, new) {
        (None, None) => None,
        (None, Some(n)) => Some(format!(
            "{TYPES}migrate((app) => {{\n  const collection = new Collection({});\n\n  return app.save(collection);\n}}, (app) => {{\n  const collection = app.findCollectionByNameOrId({});\n\n  return app.delete(collection);\n}})\n",
            pretty(n),
            quoted(str_of(n, "id"))
        )),
        (Some(o), None) => Some(format!(
            "{TYPES}migrate((app) => {{\n  const collection = app.findCollectionByNameOrId({});\n\n  return app.delete(collection);\n}}, (app) => {{\n  const collection = new Collection({});\n\n  return app.save(collection);\n}})\n",
            quoted(str_of(o, "id")),
            pretty(o)
        )),
        (Some(o), Some(n)) => diff_template(o, n),
    }
}

fn fields(v: &Value) -> &[Value] {
    v.get("fields")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn diff_template(old: &Value, new: &Value) -> Option<String> {
    let mut up: Vec<String> = Vec::new();
    let mut down: Vec<String> = Vec::new();
    let empty = Map::new();
    let (om, nm) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let skip = ["fields", "created", "updated"];
    let up_diff = diff_maps(om, nm, &skip);
    if !up_diff.is_empty() {
        let down_diff = diff_maps(nm, om, &skip);
        up.push("// update collection data".into());
        up.push(format!(
            "unmarshal({}, collection)\n",
            pretty(&sorted(&Value::Object(up_diff)))
        ));
        down.push("// update collection data".into());
        down.push(format!(
            "unmarshal({}, collection)\n",
            pretty(&sorted(&Value::Object(down_diff)))
        ));
    }
    let (of, nf) = (fields(old), fields(new));
    let find = |list: &[Value], id: &str| list.iter().position(|f| str_of(f, "id") == id);
    for (i, f) in of.iter().enumerate() {
        let id = str_of(f, "id");
        if find(nf, id).is_some() {
            continue;
        }
        up.push("// remove field".into());
        up.push(format!("collection.fields.removeById({})\n", quoted(id)));
        down.push("// add field".into());
        down.push(format!(
            "collection.fields.addAt({i}, new Field({}))\n",
            pretty(f)
        ));
    }
    for (i, f) in nf.iter().enumerate() {
        let id = str_of(f, "id");
        if find(of, id).is_some() {
            continue;
        }
        up.push("// add field".into());
        up.push(format!(
            "collection.fields.addAt({i}, new Field({}))\n",
            pretty(f)
        ));
        down.push("// remove field".into());
        down.push(format!("collection.fields.removeById({})\n", quoted(id)));
    }
    // Order-only changes are left out, as PocketBase does.
    for (i, f) in nf.iter().enumerate() {
        let Some(j) = find(of, str_of(f, "id")) else {
            continue;
        };
        if of[j] == *f {
            continue;
        }
        up.push("// update field".into());
        up.push(format!(
            "collection.fields.addAt({i}, new Field({}))\n",
            pretty(f)
        ));
        down.push("// update field".into());
        down.push(format!(
            "collection.fields.addAt({j}, new Field({}))\n",
            pretty(&of[j])
        ));
    }
    if up.is_empty() && down.is_empty() {
        return None;
    }
    Some(format!(
        "{TYPES}migrate((app) => {{\n  const collection = app.findCollectionByNameOrId({})\n\n  {}\n\n  return app.save(collection)\n}}, (app) => {{\n  const collection = app.findCollectionByNameOrId({})\n\n  {}\n\n  return app.save(collection)\n}})\n",
        quoted(str_of(old, "id")),
        up.join("\n  ").trim(),
        quoted(str_of(new, "id")),
        down.join("\n  ").trim(),
    ))
}

/// PocketBase's `diffMaps`: the keys of `new` whose values differ from `old` (objects
/// recursively), and `null` for the keys `new` lost.
fn diff_maps(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    skip: &[&str],
) -> Map<String, Value> {
    let mut diff = Map::new();
    for (k, nv) in new {
        if skip.contains(&k.as_str()) {
            continue;
        }
        match old.get(k) {
            None => {
                diff.insert(k.clone(), nv.clone());
            }
            Some(ov) if ov != nv => match (ov, nv) {
                (Value::Object(oo), Value::Object(no)) => {
                    let sub = diff_maps(oo, no, &[]);
                    if !sub.is_empty() {
                        diff.insert(k.clone(), Value::Object(sub));
                    }
                }
                _ => {
                    diff.insert(k.clone(), nv.clone());
                }
            },
            Some(_) => {}
        }
    }
    for k in old.keys() {
        if !diff.contains_key(k) && !skip.contains(&k.as_str()) && !new.contains_key(k) {
            diff.insert(k.clone(), Value::Null);
        }
    }
    diff
}

/// Installs the writer on `app` (composition root: `Hooks::start`).
pub(crate) fn install(app: &Arc<App>, dir: PathBuf) {
    app.set_schema_hook(Arc::new(AutoMigrate {
        app: Arc::downgrade(app),
        dir,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_pocketbase() {
        let c = json!({"name": "posts"});
        assert_eq!(file_name(None, Some(&c), 5), "5_created_posts.js");
        assert_eq!(file_name(Some(&c), None, 5), "5_deleted_posts.js");
        let t = json!({"name": "myTest"});
        assert_eq!(file_name(Some(&t), Some(&c), 5), "5_updated_myTest_.js");
    }

    #[test]
    fn unchanged_writes_nothing_and_a_rule_change_unmarshals() {
        let a = json!({"id": "c1", "name": "posts", "listRule": null, "fields": [{"id": "f1", "name": "t"}]});
        assert!(template(Some(&a), Some(&a)).is_none());
        let mut b = a.clone();
        b["listRule"] = json!("");
        let t = template(Some(&a), Some(&b)).unwrap();
        assert!(
            t.contains("unmarshal({\n    \"listRule\": \"\"\n  }, collection)"),
            "{t}"
        );
        assert!(
            t.contains("unmarshal({\n    \"listRule\": null\n  }, collection)"),
            "{t}"
        );
    }
}
