//! The records service: list, view, create, update, delete, with the collection's rules.

pub mod delete;
pub mod expand;
pub mod input;
pub mod output;
pub mod write;

use crate::caller::Caller;
use crate::collections::Page;
use crate::error::CoreError;
use crate::rules::{Access, RuleCtx};
use crate::App;
use galley_sql::Sql;
use galley_store::{Conn, ConnExt};
use galley_types::{Collection, CollectionType, Schema};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The parts of a request that rules may look at (`@request.*`).
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub method: String,
    pub context: String,
    pub query: Map<String, Value>,
    pub headers: Map<String, Value>,
}

/// What a write job needs besides the connection.
#[derive(Clone)]
pub struct WriteCtx {
    pub schema: Arc<Schema>,
    pub caller: Caller,
    pub meta: RequestMeta,
    /// Record changes made by the job, published to realtime after it commits.
    pub events: crate::realtime::Events,
    /// Files the job's updates dropped, removed from storage after it commits.
    pub removals: crate::files::Removals,
}

impl WriteCtx {
    pub fn new(schema: Arc<Schema>, caller: &Caller, meta: &RequestMeta) -> Self {
        WriteCtx {
            schema,
            caller: caller.clone(),
            meta: meta.clone(),
            events: Default::default(),
            removals: Default::default(),
        }
    }
}

/// A submitted record body; `password` plain text is replaced by its hash before the
/// write job runs, so no hashing happens on the writer.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub values: Map<String, Value>,
    pub password_hash: Option<String>,
    /// Auth collections: the submitted `oldPassword`, and the stored hash it was verified
    /// against before the job (see `auth::records`).
    pub old_password: Option<String>,
    pub old_password_verified: Option<String>,
    /// Names of the files uploaded with this request (already in storage).
    pub new_files: Vec<String>,
    /// The id a create uses when the body has none (chosen before the job when files must
    /// be stored under it).
    pub preset_id: Option<String>,
}

pub fn list_result(items: Vec<Value>, page: Page, total: Option<usize>) -> Value {
    let (total_items, total_pages): (i64, i64) = match total {
        Some(t) => (t as i64, t.div_ceil(page.per_page.max(1)) as i64),
        None => (-1, -1),
    };
    json!({"items": items, "page": page.page, "perPage": page.per_page, "totalItems": total_items, "totalPages": total_pages})
}

pub fn find_collection(app: &App, id_or_name: &str) -> Result<Arc<Collection>, CoreError> {
    app.schema()
        .find(id_or_name)
        .cloned()
        .ok_or_else(|| CoreError::NotFound("Missing collection context.".into()))
}

pub struct ListQuery {
    pub page: Page,
    pub filter: String,
    pub sort: String,
    pub expand: Vec<Vec<String>>,
}

fn where_clause(sql: &mut Sql, conds: &[Sql]) {
    for (i, c) in conds.iter().enumerate() {
        sql.push(if i == 0 { " WHERE (" } else { " AND (" });
        sql.append(c);
        sql.push(")");
    }
}

pub async fn list(
    app: &App,
    col_name: &str,
    caller: &Caller,
    meta: &RequestMeta,
    q: ListQuery,
) -> Result<Value, CoreError> {
    let col = find_collection(app, col_name)?;
    let schema = app.schema();
    let d = app.store.dialect();
    let ctx = RuleCtx::new(&schema, &col, caller, meta, d);
    let mut conds = Vec::new();
    match ctx.access(&col.rules.list_rule)? {
        Access::SuperuserOnly => return Err(CoreError::superuser_only()),
        Access::Allow => {}
        Access::Where(s) => conds.push(s),
    }
    if let Some(f) = ctx.filter(&q.filter)? {
        conds.push(f);
    }
    let order = ctx.sort(&q.sort)?;
    let mut sql = Sql::new(d);
    sql.push("SELECT * FROM ").ident(&col.name);
    where_clause(&mut sql, &conds);
    sql.push(" ORDER BY ");
    if let Some(o) = order {
        sql.append(&o).push(", ");
    }
    sql.qualified(&col.name, d.rowid());
    sql.push(" LIMIT ").push_param(q.page.per_page as i64);
    sql.push(" OFFSET ")
        .push_param(((q.page.page - 1) * q.page.per_page) as i64);
    let count = (!q.page.skip_total).then(|| {
        let mut c = Sql::new(d);
        c.push("SELECT COUNT(*) AS n FROM ").ident(&col.name);
        where_clause(&mut c, &conds);
        c
    });
    let (col2, caller2, meta2) = (col.clone(), caller.clone(), meta.clone());
    let (recs, total) = app
        .store
        .read(move |c: &mut dyn Conn| -> Result<_, CoreError> {
            let mut recs: Vec<_> = c
                .query_sql(&sql)?
                .into_iter()
                .map(|r| output::from_row(&col2, r))
                .collect();
            let total = match count {
                Some(cs) => Some(c.count_sql(&cs)?.max(0) as usize),
                None => None,
            };
            expand::Expander::new(&schema, &caller2, &meta2)
                .expand(c, &col2, &mut recs, &q.expand)?;
            Ok((recs, total))
        })
        .await?;
    let items = recs
        .iter()
        .map(|r| output::present(&col, r, caller))
        .collect();
    Ok(list_result(items, q.page, total))
}

/// Loads one record by id for internal use (realtime fan-out), whatever the rules say.
pub fn load_any(
    c: &mut dyn Conn,
    col: &Collection,
    id: &str,
) -> Result<Map<String, Value>, CoreError> {
    load(c, col, id)
}

/// Loads one record of `col` by id on a reader, whatever the rules say (404 when missing):
/// for callers that act as the system, such as the dashboard's session check.
pub async fn find_by_id(
    app: &App,
    col: Arc<Collection>,
    id: &str,
) -> Result<Map<String, Value>, CoreError> {
    let id = id.to_owned();
    app.store
        .read(move |c: &mut dyn Conn| load(c, &col, &id))
        .await
}

/// Loads one record, whatever the rules say (404 when missing).
pub(crate) fn load(
    c: &mut dyn Conn,
    col: &Collection,
    id: &str,
) -> Result<Map<String, Value>, CoreError> {
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
    Ok(output::from_row(col, row))
}

/// Loads one record if `rule` lets `caller` see it.
pub(crate) fn load_checked(
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
    Ok(output::from_row(ctx.collection, row))
}

pub async fn view(
    app: &App,
    col_name: &str,
    id: &str,
    caller: &Caller,
    meta: &RequestMeta,
    expand: &[Vec<String>],
) -> Result<Value, CoreError> {
    let col = find_collection(app, col_name)?;
    let schema = app.schema();
    let (caller2, meta2, id2, col2, expand) = (
        caller.clone(),
        meta.clone(),
        id.to_owned(),
        col.clone(),
        expand.to_vec(),
    );
    let rec = app
        .store
        .read(move |c: &mut dyn Conn| {
            let ctx = RuleCtx::new(&schema, &col2, &caller2, &meta2, c.dialect());
            let mut rec = [load_checked(c, &ctx, &col2.rules.view_rule, &id2)?];
            expand::Expander::new(&schema, &caller2, &meta2).expand(c, &col2, &mut rec, &expand)?;
            let [rec] = rec;
            Ok::<_, CoreError>(rec)
        })
        .await?;
    Ok(output::present(&col, &rec, caller))
}

/// Runs a record write job and publishes its record events: to the other nodes inside the
/// transaction (NOTIFY, PostgreSQL), to this node's realtime clients after the commit.
async fn write_published<T: Send + 'static>(
    app: &App,
    ctx: WriteCtx,
    job: impl FnOnce(&mut dyn Conn, &WriteCtx) -> Result<T, CoreError> + Send + 'static,
) -> Result<T, CoreError> {
    let events = ctx.events.clone();
    let removals = ctx.removals.clone();
    let node = app.node_id.clone();
    let out = app
        .store
        .write(move |c: &mut dyn Conn| {
            let r = job(c, &ctx)?;
            crate::realtime::notify_events(c, &node, &ctx.events)?;
            Ok::<_, CoreError>(r)
        })
        .await?;
    let events = crate::realtime::take(&events);
    crate::files::remove_committed(app, &events, &removals).await;
    app.publish(events).await;
    Ok(out)
}

/// Expands a just-written record for the response (a read after the commit).
async fn expanded(
    app: &App,
    col: &Arc<Collection>,
    rec: Map<String, Value>,
    caller: &Caller,
    meta: &RequestMeta,
    expand: &[Vec<String>],
) -> Result<Value, CoreError> {
    if expand.is_empty() {
        return Ok(output::present(col, &rec, caller));
    }
    let (schema, col2, caller2, meta2, expand) = (
        app.schema(),
        col.clone(),
        caller.clone(),
        meta.clone(),
        expand.to_vec(),
    );
    let rec = app
        .store
        .read(move |c: &mut dyn Conn| {
            let mut recs = [rec];
            expand::Expander::new(&schema, &caller2, &meta2)
                .expand(c, &col2, &mut recs, &expand)?;
            let [rec] = recs;
            Ok::<_, CoreError>(rec)
        })
        .await?;
    Ok(output::present(col, &rec, caller))
}

fn writable(col: &Collection) -> Result<(), CoreError> {
    if col.kind == CollectionType::View {
        return Err(CoreError::bad_request("Unsupported collection type."));
    }
    Ok(())
}

/// Validates and hashes a submitted `password` before the write job.
pub async fn prepare_input(
    app: &App,
    col: &Collection,
    mut values: Map<String, Value>,
    is_create: bool,
) -> Result<Input, CoreError> {
    let mut input = Input::default();
    if col.is_auth() {
        let failed = if is_create {
            "Failed to create record."
        } else {
            "Failed to update record."
        };
        let password = values.remove("password");
        let confirm = values.remove("passwordConfirm");
        input.old_password = values
            .remove("oldPassword")
            .and_then(|v| v.as_str().map(str::to_owned))
            .filter(|s| !s.is_empty());
        let pw = password
            .as_ref()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if is_create || password.is_some() {
            let field = col.field("password").cloned();
            let mut errors = galley_types::FieldErrors::new();
            if let Some(f) = &field {
                if let Err(e) = f.validate(&json!(pw)) {
                    errors.add("password", e);
                }
            }
            if confirm.as_ref().and_then(Value::as_str).unwrap_or_default() != pw {
                errors.add(
                    "passwordConfirm",
                    galley_types::FieldError::new(
                        "validation_values_mismatch",
                        "Values don't match.",
                    ),
                );
            }
            if !errors.is_empty() {
                return Err(CoreError::validation(failed, errors));
            }
            if !pw.is_empty() {
                input.password_hash = Some(app.hash_password(pw).await?);
            }
        }
    }
    input.values = values;
    Ok(input)
}

/// A create's id, chosen before the job when uploads must be stored under it.
pub(crate) fn id_for_uploads(col: &Collection, input: &Input) -> String {
    if let Some(id) = input.values.get("id").and_then(Value::as_str) {
        if !id.is_empty() {
            return id.to_owned();
        }
    }
    let pattern = match col.field("id").map(|f| &f.kind) {
        Some(galley_types::field::FieldKind::Text(o)) if !o.autogenerate_pattern.is_empty() => {
            o.autogenerate_pattern.clone()
        }
        _ => "[a-z0-9]{15}".to_owned(),
    };
    galley_types::ids::generate_from_pattern(&pattern).unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
pub async fn create(
    app: &App,
    col_name: &str,
    values: Map<String, Value>,
    uploads: Vec<crate::files::Upload>,
    caller: &Caller,
    meta: &RequestMeta,
    expand: &[Vec<String>],
) -> Result<Value, CoreError> {
    const FAILED: &str = "Failed to create record.";
    let col = find_collection(app, col_name)?;
    writable(&col)?;
    let mut input = prepare_input(app, &col, values, true).await?;
    let staged = if uploads.is_empty() {
        crate::files::Staged::default()
    } else {
        let id = id_for_uploads(&col, &input);
        input.preset_id = Some(id.clone());
        crate::files::stage(app, &col, &id, uploads, &mut input, FAILED).await?
    };
    let col2 = col.clone();
    let rec = match write_published(
        app,
        WriteCtx::new(app.schema(), caller, meta),
        move |c, ctx| write::create(c, ctx, &col2, input),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            staged.discard().await;
            return Err(e);
        }
    };
    expanded(app, &col, rec, caller, meta, expand).await
}

#[allow(clippy::too_many_arguments)]
pub async fn update(
    app: &App,
    col_name: &str,
    id: &str,
    values: Map<String, Value>,
    uploads: Vec<crate::files::Upload>,
    caller: &Caller,
    meta: &RequestMeta,
    expand: &[Vec<String>],
) -> Result<Value, CoreError> {
    const FAILED: &str = "Failed to update record.";
    let col = find_collection(app, col_name)?;
    writable(&col)?;
    let mut input = prepare_input(app, &col, values, false).await?;
    crate::auth::records::verify_old_password(app, &col, id, &mut input).await?;
    let staged = if uploads.is_empty() {
        crate::files::Staged::default()
    } else {
        // Uploads for a record that does not exist (or that the caller cannot see) are
        // refused before anything is stored; the job checks the rule again.
        let (col2, id2) = (col.clone(), id.to_owned());
        app.store
            .read(move |c: &mut dyn Conn| load(c, &col2, &id2).map(|_| ()))
            .await?;
        crate::files::stage(app, &col, id, uploads, &mut input, FAILED).await?
    };
    let (col2, id2) = (col.clone(), id.to_owned());
    let rec = match write_published(
        app,
        WriteCtx::new(app.schema(), caller, meta),
        move |c, ctx| write::update(c, ctx, &col2, &id2, input),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            staged.discard().await;
            return Err(e);
        }
    };
    expanded(app, &col, rec, caller, meta, expand).await
}

pub async fn remove(
    app: &App,
    col_name: &str,
    id: &str,
    caller: &Caller,
    meta: &RequestMeta,
) -> Result<(), CoreError> {
    let col = find_collection(app, col_name)?;
    writable(&col)?;
    let id2 = id.to_owned();
    write_published(
        app,
        WriteCtx::new(app.schema(), caller, meta),
        move |c, ctx| delete::delete(c, ctx, &col, &id2),
    )
    .await
}
