//! `expand=`: relations (single and multiple) and back-relations (`posts_via_author`),
//! nested up to six levels, within a budget per request ([`MAX_EXPAND_RECORDS`] fetched,
//! [`MAX_EXPAND_BYTES`] added: a 400 beyond). Each expanded record is shown only if its collection's view
//! rule lets the caller see it (with `@request.context = "expand"`).

use crate::context::Caller;
use crate::context::RequestMeta;
use crate::error::CoreError;
use crate::rows as output;
use crate::rules::{Access, RuleCtx};
use galley_sql::Sql;
use galley_store::{Conn, ConnExt};
use galley_types::field::as_strings;
use galley_types::{Collection, Schema};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Most records fetched for one relation level, so one request cannot pull a whole table.
const MAX_EXPANDED: usize = 5000;

/// Most records one request's expand may fetch, all levels together.
pub const MAX_EXPAND_RECORDS: usize = 10_000;

/// Most bytes (JSON, estimated) one request's expand may add to its answer: forward
/// relations copy a record into every record that points at it, so a small table can
/// multiply into a large answer.
pub const MAX_EXPAND_BYTES: usize = 16 << 20;

/// What the expand of one request has used of its budget.
#[derive(Default)]
struct Spent {
    records: std::cell::Cell<usize>,
    bytes: std::cell::Cell<usize>,
}

impl Spent {
    fn records(&self, n: usize) -> Result<(), CoreError> {
        self.records.set(self.records.get().saturating_add(n));
        if self.records.get() > MAX_EXPAND_RECORDS {
            return Err(CoreError::bad_request(format!(
                "The expand needs more than {MAX_EXPAND_RECORDS} records. Expand fewer relations or ask for fewer items per page."
            )));
        }
        Ok(())
    }

    fn bytes(&self, n: usize) -> Result<(), CoreError> {
        self.bytes.set(self.bytes.get().saturating_add(n));
        if self.bytes.get() > MAX_EXPAND_BYTES {
            return Err(CoreError::bad_request(format!(
                "The expanded records are larger than {} MiB. Expand fewer relations or ask for fewer items per page.",
                MAX_EXPAND_BYTES >> 20
            )));
        }
        Ok(())
    }
}

/// About how many bytes `v` takes as JSON (an upper-bound estimate, cheap to compute).
fn json_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|x| json_size(x) + 1).sum::<usize>(),
        Value::Object(o) => {
            2 + o
                .iter()
                .map(|(k, x)| k.len() + 4 + json_size(x))
                .sum::<usize>()
        }
    }
}

#[derive(Default)]
struct Tree(Vec<(String, Tree)>);

impl Tree {
    fn from_paths(paths: &[Vec<String>]) -> Tree {
        let mut t = Tree::default();
        for p in paths {
            let mut node = &mut t;
            for seg in p {
                let i = match node.0.iter().position(|(k, _)| k == seg) {
                    Some(i) => i,
                    None => {
                        node.0.push((seg.clone(), Tree::default()));
                        node.0.len() - 1
                    }
                };
                node = &mut node.0[i].1;
            }
        }
        t
    }
}

pub struct Expander<'a> {
    pub schema: &'a Schema,
    pub caller: &'a Caller,
    pub meta: RequestMeta,
    spent: Spent,
}

/// Parses an `expand` parameter into its paths (400 on a bad one).
pub fn parse(expand: &str) -> Result<Vec<Vec<String>>, CoreError> {
    if expand.trim().is_empty() {
        return Ok(vec![]);
    }
    galley_expr::parse_expand(expand)
        .map_err(|e| CoreError::bad_request(format!("Invalid expand parameter: {e}.")))
}

impl Expander<'_> {
    pub fn new<'a>(schema: &'a Schema, caller: &'a Caller, meta: &RequestMeta) -> Expander<'a> {
        let mut meta = meta.clone();
        meta.context = "expand".into();
        Expander {
            schema,
            caller,
            meta,
            spent: Spent::default(),
        }
    }

    /// Adds `expand` to each of `records` (all of collection `col`).
    pub fn expand(
        &self,
        c: &mut dyn Conn,
        col: &Collection,
        records: &mut [Map<String, Value>],
        paths: &[Vec<String>],
    ) -> Result<(), CoreError> {
        // As in PocketBase, a path with a segment that is not a relation expands nothing.
        let paths: Vec<Vec<String>> = paths
            .iter()
            .filter(|p| self.resolves(col, p))
            .cloned()
            .collect();
        if paths.is_empty() || records.is_empty() {
            return Ok(());
        }
        self.level(c, col, records, &Tree::from_paths(&paths))
    }

    /// Whether every segment of `path` is a relation (or back-relation) from the previous one.
    fn resolves(&self, col: &Collection, path: &[String]) -> bool {
        let mut cur: Arc<Collection> = match self.schema.by_id(&col.id) {
            Some(c) => c.clone(),
            None => return false,
        };
        for seg in path {
            let next = match cur.field(seg) {
                // A field the caller cannot see expands nothing (as in filters).
                Some(f) if f.hidden && !self.caller.is_superuser() => None,
                Some(f) => f
                    .relation()
                    .and_then(|rel| self.schema.by_id(&rel.collection_id).cloned()),
                None => self.back_relation(&cur, seg).map(|(other, _, _)| other),
            };
            match next {
                Some(n) => cur = n,
                None => return false,
            }
        }
        true
    }

    /// Fetches records of `target` with these ids that the caller may view.
    fn fetch(
        &self,
        c: &mut dyn Conn,
        target: &Collection,
        cond: impl FnOnce(&mut Sql),
    ) -> Result<Vec<Map<String, Value>>, CoreError> {
        let rctx = RuleCtx::new(self.schema, target, self.caller, &self.meta, c.dialect());
        let mut sql = Sql::new(c.dialect());
        sql.push("SELECT * FROM ")
            .ident(&target.name)
            .push(" WHERE (");
        cond(&mut sql);
        sql.push(")");
        match rctx.access(&target.rules.view_rule)? {
            Access::SuperuserOnly => return Ok(vec![]),
            Access::Allow => {}
            Access::Where(w) => {
                sql.push(" AND (").append(&w).push(")");
            }
        }
        sql.push(" ORDER BY ")
            .qualified(&target.name, c.dialect().rowid());
        sql.push(" LIMIT ").push_param(MAX_EXPANDED as i64);
        let rows = c.query_sql(&sql)?;
        self.spent.records(rows.len())?;
        Ok(rows
            .into_iter()
            .map(|r| output::from_row(target, r))
            .collect())
    }

    fn level(
        &self,
        c: &mut dyn Conn,
        col: &Collection,
        records: &mut [Map<String, Value>],
        tree: &Tree,
    ) -> Result<(), CoreError> {
        for (key, sub) in &tree.0 {
            if let Some(f) = col.field(key).filter(|f| f.relation().is_some()) {
                let Some(rel) = f.relation() else { continue };
                let Some(target) = self.schema.by_id(&rel.collection_id).cloned() else {
                    continue;
                };
                let mut ids: Vec<String> = records
                    .iter()
                    .flat_map(|r| as_strings(r.get(key).unwrap_or(&Value::Null)))
                    .collect();
                ids.sort();
                ids.dedup();
                let mut found = if ids.is_empty() {
                    vec![]
                } else {
                    self.fetch(c, &target, |sql| {
                        sql.ident("id").push(" IN (");
                        for (i, id) in ids.iter().enumerate() {
                            if i > 0 {
                                sql.push(", ");
                            }
                            sql.push_param(id.as_str());
                        }
                        sql.push(")");
                    })?
                };
                self.level(c, &target, &mut found, sub)?;
                let by_id: HashMap<String, (Value, usize)> = found
                    .iter()
                    .map(|r| {
                        let v = output::present(&target, r, self.caller);
                        let size = json_size(&v);
                        (
                            r.get("id")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                            (v, size),
                        )
                    })
                    .collect();
                for r in records.iter_mut() {
                    let refs = as_strings(r.get(key).unwrap_or(&Value::Null));
                    let picked: Vec<&(Value, usize)> = if f.is_multiple() {
                        refs.iter().filter_map(|id| by_id.get(id)).collect()
                    } else {
                        refs.first()
                            .and_then(|id| by_id.get(id))
                            .into_iter()
                            .collect()
                    };
                    // Each copy counts: this is where a few records multiply.
                    self.spent.bytes(picked.iter().map(|(_, n)| n).sum())?;
                    let exp = expand_map(r);
                    if f.is_multiple() {
                        if !picked.is_empty() {
                            let items = picked.into_iter().map(|(v, _)| v.clone()).collect();
                            exp.insert(key.clone(), Value::Array(items));
                        }
                    } else if let Some((v, _)) = picked.first() {
                        exp.insert(key.clone(), v.clone());
                    }
                }
            } else if let Some((other, field, single)) = self.back_relation(col, key) {
                for r in records.iter_mut() {
                    let id = r
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let d = c.dialect();
                    let mut found = self.fetch(c, &other, |sql| {
                        if other.field(&field).is_some_and(|f| f.is_multiple()) {
                            let col_ref = format!("{}.{}", d.quote(&other.name), d.quote(&field));
                            sql.push_param_with(id.as_str(), |p| {
                                d.json_array_contains(&col_ref, p)
                            });
                        } else {
                            sql.ident(&field).push(" = ").push_param(id.as_str());
                        }
                    })?;
                    self.level(c, &other, &mut found, sub)?;
                    let items: Vec<Value> = found
                        .iter()
                        .map(|x| output::present(&other, x, self.caller))
                        .collect();
                    self.spent.bytes(items.iter().map(json_size).sum())?;
                    let exp = expand_map(r);
                    if single {
                        if let Some(v) = items.into_iter().next() {
                            exp.insert(key.clone(), v);
                        }
                    } else if !items.is_empty() {
                        exp.insert(key.clone(), Value::Array(items));
                    }
                }
            }
        }
        Ok(())
    }

    /// `posts_via_author` → (posts, "author", whether it yields one record).
    fn back_relation(
        &self,
        col: &Collection,
        key: &str,
    ) -> Option<(Arc<Collection>, String, bool)> {
        let (other_name, field) = key.split_once("_via_")?;
        let other = self.schema.find(other_name)?.clone();
        let f = other.field(field)?;
        if f.relation()?.collection_id != col.id || (f.hidden && !self.caller.is_superuser()) {
            return None;
        }
        let unique = !f.is_multiple()
            && other
                .indexes
                .iter()
                .filter_map(|s| galley_types::index::IndexDef::parse(s).ok())
                .any(|i| {
                    i.unique
                        && i.columns.len() == 1
                        && i.columns[0].name == field
                        && i.where_columns().is_empty()
                });
        Some((other.clone(), field.to_owned(), unique))
    }
}

fn expand_map(r: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let e = r
        .entry("expand")
        .or_insert_with(|| Value::Object(Map::new()));
    if !e.is_object() {
        *e = Value::Object(Map::new());
    }
    match e {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}
