//! The data API of server-side code (JavaScript hooks, Rust extensions): acting as the
//! system, so no rule applies, over a connection inside a job, so a hook's reads and
//! writes take part in the transaction it runs in. Writes go through the one write path
//! (`write::create`/`update`, `delete::delete`), so validation, other hooks, events and
//! file removals behave exactly as for the API.

use super::{delete, where_clause, write};
use crate::context::{Caller, Input, RequestMeta, WriteCtx};
use crate::error::CoreError;
use crate::rows::{from_row, load};
use crate::rules::RuleCtx;
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt};
use galley_types::{Collection, Schema};
use serde_json::{Map, Value};

/// The caller server-side code acts as: a superuser that is no record.
pub fn caller(schema: &Schema) -> Caller {
    match schema.find("_superusers") {
        Some(col) => Caller::Record {
            collection: col.clone(),
            record: Map::new(),
        },
        None => Caller::Guest,
    }
}

/// Which records [`find`] returns; empty parts select everything.
#[derive(Debug, Default, Clone)]
pub struct Find {
    /// A filter in the filter language (parameters already bound).
    pub filter: String,
    pub sort: String,
    /// 0: no limit.
    pub limit: usize,
    pub offset: usize,
    /// `field = value` (case-insensitively for text when the flag is set).
    pub equals: Option<(String, Value, bool)>,
    pub ids: Option<Vec<String>>,
}

fn conditions(
    c: &mut dyn Conn,
    schema: &Schema,
    col: &Collection,
    q: &Find,
) -> Result<Vec<Sql>, CoreError> {
    let d = c.dialect();
    let caller = caller(schema);
    let meta = RequestMeta::default();
    let ctx = RuleCtx::new(schema, col, &caller, &meta, d);
    let mut conds = Vec::new();
    if let Some(f) = ctx.filter(&q.filter)? {
        conds.push(f);
    }
    if let Some((field, value, nocase)) = &q.equals {
        let f = col
            .field(field)
            .ok_or_else(|| CoreError::bad_request(format!("Unknown field {field:?}.")))?;
        let mut s = Sql::new(d);
        let v = f.to_sql(value, d);
        if *nocase {
            s.push("LOWER(").ident(&f.name).push(") = LOWER(");
            s.push_param(v).push(")");
        } else {
            s.ident(&f.name).push(" = ").push_param(v);
        }
        conds.push(s);
    }
    if let Some(ids) = &q.ids {
        let mut s = Sql::new(d);
        s.ident("id").push(" IN (");
        if ids.is_empty() {
            s.push("NULL");
        }
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                s.push(", ");
            }
            s.push_param(SqlValue::from(id.as_str()));
        }
        s.push(")");
        conds.push(s);
    }
    Ok(conds)
}

/// Records of `col` matching `q`, every field included (hidden ones too).
pub fn find(
    c: &mut dyn Conn,
    schema: &Schema,
    col: &Collection,
    q: &Find,
) -> Result<Vec<Map<String, Value>>, CoreError> {
    let d = c.dialect();
    let conds = conditions(c, schema, col, q)?;
    let caller = caller(schema);
    let meta = RequestMeta::default();
    let order = RuleCtx::new(schema, col, &caller, &meta, d).sort(&q.sort)?;
    let mut sql = Sql::new(d);
    sql.push("SELECT * FROM ").ident(&col.name);
    where_clause(&mut sql, &conds);
    sql.push(" ORDER BY ");
    if let Some(o) = order {
        sql.append(&o).push(", ");
    }
    sql.qualified(&col.name, d.rowid());
    if q.limit > 0 || q.offset > 0 {
        let limit = if q.limit == 0 {
            i64::MAX
        } else {
            q.limit as i64
        };
        sql.push(" LIMIT ").push_param(limit);
        sql.push(" OFFSET ").push_param(q.offset as i64);
    }
    Ok(c.query_sql(&sql)?
        .into_iter()
        .map(|r| from_row(col, r))
        .collect())
}

/// How many records of `col` match `q` (its sort and paging are ignored).
pub fn count(
    c: &mut dyn Conn,
    schema: &Schema,
    col: &Collection,
    q: &Find,
) -> Result<i64, CoreError> {
    let conds = conditions(c, schema, col, q)?;
    let mut sql = Sql::new(c.dialect());
    sql.push("SELECT COUNT(*) AS n FROM ").ident(&col.name);
    where_clause(&mut sql, &conds);
    Ok(c.count_sql(&sql)?)
}

/// One record by id, every field included.
pub fn find_by_id(
    c: &mut dyn Conn,
    col: &Collection,
    id: &str,
) -> Result<Map<String, Value>, CoreError> {
    load(c, col, id)
}

/// Creates (`id` None) or updates a record from `data`, as the write path does for a
/// superuser; a `password` value must already be a hash. Returns the stored record.
pub fn save(
    c: &mut dyn Conn,
    ctx: &WriteCtx,
    col: &Collection,
    id: Option<&str>,
    mut data: Map<String, Value>,
) -> Result<Map<String, Value>, CoreError> {
    let mut input = Input::default();
    if col.is_auth() {
        data.remove("passwordConfirm");
        if let Some(Value::String(hash)) = data.remove("password") {
            if !hash.is_empty() {
                input.password_hash = Some(hash);
            }
        }
    }
    // Galley's own keys of a record export are not fields.
    data.remove("collectionId");
    data.remove("collectionName");
    data.remove("expand");
    data.retain(|k, _| col.field(k).is_some());
    match id {
        None => {
            input.values = data;
            write::create(c, ctx, col, input)
        }
        Some(id) => {
            // Only what changed is submitted, so the modifiers and the checks of unchanged
            // values (an old file name, a relation) behave as for an API update.
            let stored = load(c, col, id)?;
            data.retain(|k, v| stored.get(k) != Some(v) && k != "id");
            if let Some(h) = &input.password_hash {
                if stored.get("password").and_then(Value::as_str) == Some(h.as_str()) {
                    input.password_hash = None;
                }
            }
            input.values = data;
            write::update(c, ctx, col, id, input)
        }
    }
}

/// Deletes a record (with PocketBase's cascades), as for a superuser.
pub fn remove(
    c: &mut dyn Conn,
    ctx: &WriteCtx,
    col: &Collection,
    id: &str,
) -> Result<(), CoreError> {
    load(c, col, id)?;
    delete::delete_cascading(c, ctx, col, id, 0)
}
