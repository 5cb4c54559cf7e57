//! The collections service: list, view, create, update, delete and truncate collections.
//! A schema change and its DDL run in one write job, so they commit together or not at all.

mod import;
mod validate;

use crate::app::App;
use crate::catalog::{self, ddl};
use crate::context::{Caller, ListResult, Page, Request, RequestMeta, WriteCtx};
use crate::error::CoreError;
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt};
use galley_types::{Collection, Field};
use serde_json::{json, Value};
use std::sync::Arc;

pub use import::import;
pub use validate::parse_collection;

/// Who asks for a collection change. PocketBase's automigrate writes a migration file for
/// the changes a superuser makes (API, dashboard), not for those code makes (hooks,
/// migrations: a migration that wrote migrations would never end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Request,
    Code,
}

pub use crate::context::request_hooks::SchemaHook;

/// Tells the App's schema hook of a change a superuser made. The change is committed
/// already: a hook that fails is logged, the answer stays a success.
async fn changed(app: &App, by: By, old: Option<Collection>, new: Option<Collection>) {
    if by != By::Request {
        return;
    }
    if let Some(h) = app.schema_hook.get() {
        if let Err(e) = h.changed(old, new).await {
            tracing::error!(error = %e, "the schema hook failed (no migration file written)");
        }
    }
}

/// `_collections` described as a collection, so that the collections list takes the same
/// `filter` and `sort` language as records (fields id, name, type, system, created, updated).
fn meta_collection() -> Collection {
    use galley_types::field::{AutodateOptions, FieldKind, RequiredOnly, TextOptions};
    let mut fields = vec![galley_types::collection::id_field()];
    fields.push(Field::new("name", FieldKind::Text(TextOptions::default())));
    fields.push(Field::new("type", FieldKind::Text(TextOptions::default())));
    fields.push(Field::new(
        "system",
        FieldKind::Bool(RequiredOnly::default()),
    ));
    for n in ["created", "updated"] {
        fields.push(Field::new(
            n,
            FieldKind::Autodate(AutodateOptions {
                on_create: true,
                on_update: n == "updated",
            }),
        ));
    }
    Collection {
        id: "_collections".into(),
        name: "_collections".into(),
        kind: galley_types::CollectionType::Base,
        system: true,
        fields,
        indexes: vec![],
        rules: Default::default(),
        auth: None,
        view_query: None,
        created: String::new(),
        updated: String::new(),
    }
}

pub async fn list(
    app: &App,
    caller: &Caller,
    page: Page,
    filter: &str,
    sort: &str,
) -> Result<ListResult<Value>, CoreError> {
    let meta = meta_collection();
    let schema = galley_types::Schema::new(0, vec![meta.clone()]);
    let d = app.store.dialect();
    let req = RequestMeta::default();
    let ctx = crate::rules::RuleCtx::new(&schema, &meta, caller, &req, d);
    let cond = ctx.filter(filter)?;
    let order = ctx.sort(sort)?;
    let mut sql = Sql::new(d);
    sql.push("SELECT * FROM ").ident("_collections");
    let mut count = Sql::new(d);
    count
        .push("SELECT COUNT(*) AS n FROM ")
        .ident("_collections");
    if let Some(c) = &cond {
        sql.push(" WHERE ").append(c);
        count.push(" WHERE ").append(c);
    }
    sql.push(" ORDER BY ");
    if let Some(o) = &order {
        sql.append(o).push(", ");
    }
    sql.ident("created").push(", ").ident("name");
    sql.push(" LIMIT ")
        .push_param(page.per_page as i64)
        .push(" OFFSET ")
        .push_param(((page.page - 1) * page.per_page) as i64);
    let skip = page.skip_total;
    let (cols, total) = app
        .store
        .read(move |c: &mut dyn Conn| -> Result<_, CoreError> {
            let cols = c
                .query_sql(&sql)?
                .iter()
                .map(catalog::parse_row)
                .collect::<Result<Vec<_>, _>>()?;
            let total = if skip {
                None
            } else {
                Some(
                    c.query_sql(&count)?
                        .first()
                        .map(|r| r.int("n"))
                        .unwrap_or(0) as usize,
                )
            };
            Ok((cols, total))
        })
        .await?;
    Ok(ListResult::new(
        cols.iter().map(Collection::to_json).collect(),
        page,
        total,
    ))
}

pub fn find(app: &App, id_or_name: &str) -> Result<Arc<Collection>, CoreError> {
    app.schema()
        .find(id_or_name)
        .cloned()
        .ok_or_else(CoreError::not_found)
}

pub async fn create(app: &App, body: Value, by: By) -> Result<Collection, CoreError> {
    let schema = app.schema();
    let col = parse_collection(&schema, None, &body)?;
    let out = col.clone();
    let node = app.node_id.clone();
    app.store
        .write(move |c: &mut dyn Conn| -> Result<(), CoreError> {
            let d = c.dialect();
            c.batch(&ddl::create_table(d, &col))?;
            create_indexes(c, &col, "Failed to create collection.")?;
            catalog::insert_row(c, &col)
                .map_err(|e| unique_name_error(e, "Failed to create collection."))?;
            crate::bus::notify_schema(c, &node)
        })
        .await?;
    app.reload_schema().await?;
    changed(app, by, None, find(app, &out.id).ok().map(|c| (*c).clone())).await;
    Ok(out)
}

fn unique_name_error(e: CoreError, message: &str) -> CoreError {
    match e {
        CoreError::Internal(m) if m.contains("unique") || m.contains("UNIQUE") => {
            CoreError::BadRequest {
                message: message.into(),
                data: json!({"name": {"code": "validation_collection_name_exists", "message": "Collection name must be unique (case insensitive)."}}),
            }
        }
        other => other,
    }
}

pub async fn update(
    app: &App,
    id_or_name: &str,
    body: Value,
    by: By,
) -> Result<Collection, CoreError> {
    let schema = app.schema();
    let old = find(app, id_or_name)?;
    let new = parse_collection(&schema, Some(&old), &body)?;
    let out = new.clone();
    let old = (*old).clone();
    let before = old.clone();
    let node = app.node_id.clone();
    app.store
        .write(move |c: &mut dyn Conn| -> Result<(), CoreError> {
            apply_schema_change(c, &old, &new)?;
            catalog::update_row(c, &new)
                .map_err(|e| unique_name_error(e, "Failed to update collection."))?;
            crate::bus::notify_schema(c, &node)
        })
        .await?;
    app.reload_schema().await?;
    let after = find(app, &out.id).ok().map(|c| (*c).clone());
    changed(app, by, Some(before), after).await;
    Ok(out)
}

/// Alters the table of `old` into the table of `new` (rename, columns, indexes).
fn apply_schema_change(
    c: &mut dyn Conn,
    old: &Collection,
    new: &Collection,
) -> Result<(), CoreError> {
    let d = c.dialect();
    for s in ddl::drop_index_statements(d, old) {
        c.batch(&s)?;
    }
    if old.name != new.name {
        c.batch(&format!(
            "ALTER TABLE {} RENAME TO {}",
            d.quote(&old.name),
            d.quote(&new.name)
        ))?;
    }
    let table = d.quote(&new.name);
    for of in &old.fields {
        if !new.fields.iter().any(|f| f.id == of.id) {
            c.batch(&format!(
                "ALTER TABLE {table} DROP COLUMN {}",
                d.quote(&of.name)
            ))?;
        }
    }
    for nf in &new.fields {
        let Some(of) = old.fields.iter().find(|f| f.id == nf.id) else {
            c.batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {}",
                ddl::column_def(d, nf)
            ))?;
            continue;
        };
        if of.name != nf.name {
            c.batch(&format!(
                "ALTER TABLE {table} RENAME COLUMN {} TO {}",
                d.quote(&of.name),
                d.quote(&nf.name)
            ))?;
        }
        if of.column_type() != nf.column_type() {
            convert_column(c, &new.name, of, nf)?;
        }
    }
    create_indexes(c, new, "Failed to update collection.")
}

/// Creates the indexes of `col`. An index the data cannot satisfy (a unique index over
/// duplicate values) is the client's error, reported on that index as PocketBase does.
fn create_indexes(c: &mut dyn Conn, col: &Collection, message: &str) -> Result<(), CoreError> {
    for (i, s) in ddl::index_statements(c.dialect(), col)?
        .into_iter()
        .enumerate()
    {
        match c.batch(&s) {
            Ok(()) => {}
            Err(galley_store::StoreError::UniqueViolation { .. }) => {
                return Err(CoreError::BadRequest {
                    message: message.into(),
                    data: json!({"indexes": {i.to_string(): {
                        "code": "validation_invalid_index_expression",
                        "message": "Failed to create the index: the existing values are not unique.",
                    }}}),
                })
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Rewrites a column whose storage changes (single ↔ multiple value), converting every
/// value with the new field's casting rules.
fn convert_column(
    c: &mut dyn Conn,
    table: &str,
    old: &Field,
    new: &Field,
) -> Result<(), CoreError> {
    let d = c.dialect();
    let mut sel = Sql::new(d);
    sel.push("SELECT ")
        .ident("id")
        .push(", ")
        .ident(&new.name)
        .push(" AS v FROM ")
        .ident(table);
    let rows = c.query_sql(&sel)?;
    let converted: Vec<(String, SqlValue)> = rows
        .into_iter()
        .map(|mut r| {
            let id = r.text("id");
            let v = old.from_sql(r.take("v"));
            let v = new.prepare(&v).unwrap_or_else(|_| new.zero_value());
            (id, new.to_sql(&v, d))
        })
        .collect();
    c.batch(&format!(
        "ALTER TABLE {} DROP COLUMN {}",
        d.quote(table),
        d.quote(&new.name)
    ))?;
    c.batch(&format!(
        "ALTER TABLE {} ADD COLUMN {}",
        d.quote(table),
        ddl::column_def(d, new)
    ))?;
    for (id, v) in converted {
        let mut up = Sql::new(d);
        up.push("UPDATE ")
            .ident(table)
            .push(" SET ")
            .ident(&new.name)
            .push(" = ")
            .push_param(v);
        up.push(" WHERE ").ident("id").push(" = ").push_param(id);
        c.execute_sql(&up)?;
    }
    Ok(())
}

pub async fn delete(app: &App, id_or_name: &str, by: By) -> Result<(), CoreError> {
    let col = find(app, id_or_name)?;
    if col.system {
        return Err(CoreError::bad_request(
            "System collections cannot be deleted.",
        ));
    }
    let schema = app.schema();
    let referencing: Vec<String> = schema
        .all()
        .iter()
        .filter(|o| o.id != col.id)
        .filter(|o| {
            o.fields
                .iter()
                .any(|f| f.relation().is_some_and(|r| r.collection_id == col.id))
        })
        .map(|o| o.name.clone())
        .collect();
    if !referencing.is_empty() {
        return Err(CoreError::bad_request(format!(
            "The collection is referenced by the relation fields of {}. Remove those fields first.",
            referencing.join(", ")
        )));
    }
    let col = (*col).clone();
    let before = col.clone();
    let col_id = col.id.clone();
    let node = app.node_id.clone();
    app.store
        .write(move |c: &mut dyn Conn| -> Result<(), CoreError> {
            let d = c.dialect();
            for s in ddl::drop_index_statements(d, &col) {
                c.batch(&s)?;
            }
            c.batch(&format!("DROP TABLE {}", d.quote(&col.name)))?;
            catalog::delete_row(c, &col.id)?;
            crate::bus::notify_schema(c, &node)
        })
        .await?;
    crate::files::remove_collection(app, &col_id).await;
    app.reload_schema().await?;
    changed(app, by, Some(before), None).await;
    Ok(())
}

/// Deletes every record of a collection, with the same cascade rules as deleting each one.
pub async fn truncate(app: &App, req: &Request, id_or_name: &str) -> Result<(), CoreError> {
    let col = find(app, id_or_name)?;
    crate::records::write_published(
        app,
        app.write_ctx(&req.caller, &req.meta),
        move |c: &mut dyn Conn, ctx: &WriteCtx| -> Result<(), CoreError> {
            let mut sel = Sql::new(c.dialect());
            sel.push("SELECT ")
                .ident("id")
                .push(" FROM ")
                .ident(&col.name);
            let ids: Vec<String> = c.query_sql(&sel)?.iter().map(|r| r.text("id")).collect();
            for id in ids {
                crate::records::delete::delete_cascading(c, ctx, &col, &id, 0)?;
            }
            Ok(())
        },
    )
    .await
}
