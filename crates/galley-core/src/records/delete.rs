//! Record deletion with PocketBase's cascade over relation references.

use crate::context::{WriteCtx, WriteOp};
use crate::error::CoreError;
use crate::rows::{from_row, load, load_checked};
use crate::rules::RuleCtx;
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt};
use galley_types::field::string_list;
use galley_types::Collection;
use serde_json::Value;

/// Deep cascades beyond this are refused rather than risking unbounded work.
const MAX_CASCADE_DEPTH: usize = 16;

const BLOCKED: &str =
    "Failed to delete record. Make sure that the record is not part of a required relation reference.";

pub fn delete(
    c: &mut dyn Conn,
    ctx: &WriteCtx,
    col: &Collection,
    id: &str,
) -> Result<(), CoreError> {
    let rctx = RuleCtx::new(&ctx.schema, col, &ctx.caller, &ctx.meta, c.dialect());
    load_checked(c, &rctx, &col.rules.delete_rule, id)?;
    delete_cascading(c, ctx, col, id, 0)
}

/// Removes `id` from every relation that references it (deleting referencing records whose
/// `cascadeDelete` relation becomes empty, refusing when a required one would), then the
/// record itself.
pub fn delete_cascading(
    c: &mut dyn Conn,
    ctx: &WriteCtx,
    col: &Collection,
    id: &str,
    depth: usize,
) -> Result<(), CoreError> {
    if depth > MAX_CASCADE_DEPTH {
        return Err(CoreError::bad_request(
            "Failed to delete record: the cascade is too deep.",
        ));
    }
    let d = c.dialect();
    let mut record = match load(c, col, id) {
        Ok(r) => r,
        Err(CoreError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    ctx.around(c, WriteOp::Delete, col, &mut record, &mut |c, record| {
        ctx.each_hook(|h| h.before_delete(c, ctx, col, record))?;
        // Delete first so that self-references and cycles see the record gone.
        let mut del = Sql::new(d);
        del.push("DELETE FROM ")
            .ident(&col.name)
            .push(" WHERE ")
            .ident("id")
            .push(" = ")
            .push_param(id);
        if c.execute_sql(&del)? == 0 {
            return Ok(());
        }
        ctx.each_hook(|h| h.after_delete(c, ctx, col, record))?;
        ctx.emit("delete", col, record);
        for other in ctx.schema.all() {
            for f in &other.fields {
                let Some(rel) = f.relation() else { continue };
                if rel.collection_id != col.id {
                    continue;
                }
                let mut sel = Sql::new(d);
                sel.push("SELECT * FROM ")
                    .ident(&other.name)
                    .push(" WHERE ");
                if f.is_multiple() {
                    let col_ref = format!("{}.{}", d.quote(&other.name), d.quote(&f.name));
                    sel.push_param_with(SqlValue::from(id), |p| d.json_array_contains(&col_ref, p));
                } else {
                    sel.ident(&f.name).push(" = ").push_param(id);
                }
                let rows = c.query_sql(&sel)?;
                for r in rows {
                    let mut rec = from_row(other, r);
                    let rid = rec
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let current = rec.get(&f.name).cloned().unwrap_or(Value::Null);
                    let remaining: Vec<String> = string_list(&current)
                        .into_iter()
                        .filter(|x| x != id)
                        .collect();
                    if remaining.is_empty() {
                        if rel.cascade_delete {
                            delete_cascading(c, ctx, other, &rid, depth + 1)?;
                            continue;
                        }
                        if rel.required {
                            return Err(CoreError::bad_request(BLOCKED));
                        }
                    }
                    let next = if f.is_multiple() {
                        Value::Array(remaining.into_iter().map(Value::String).collect())
                    } else {
                        Value::String(remaining.into_iter().next_back().unwrap_or_default())
                    };
                    let mut up = Sql::new(d);
                    up.push("UPDATE ")
                        .ident(&other.name)
                        .push(" SET ")
                        .ident(&f.name)
                        .push(" = ")
                        .push_param(f.to_sql(&next, d));
                    up.push(" WHERE ").ident("id").push(" = ").push_param(rid);
                    c.execute_sql(&up)?;
                    rec.insert(f.name.clone(), next);
                    ctx.emit("update", other, &rec);
                }
            }
        }
        Ok(())
    })
}
