//! The records service: list, view, create, update, delete, with the collection's rules.

pub mod delete;
pub mod expand;
pub mod input;
pub mod system;
pub mod write;

use crate::app::App;
use crate::context::{
    Caller, Input, ListResult, Page, RecordEvent, Request, RequestMeta, WriteCtx,
};
use crate::error::CoreError;
use crate::files::Upload;
use crate::rows::{from_row, load, load_checked, present};
use crate::rules::{Access, RuleCtx};
use galley_sql::Sql;
use galley_store::{Conn, ConnExt};
use galley_types::{Collection, CollectionType};
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub fn find_collection(app: &App, id_or_name: &str) -> Result<Arc<Collection>, CoreError> {
    app.schema()
        .find(id_or_name)
        .cloned()
        .ok_or_else(|| CoreError::NotFound("Missing collection context.".into()))
}

/// A submitted record: its values (one JSON object whatever the content type) and the
/// files of a multipart body, already spooled to disk.
#[derive(Debug, Default)]
pub struct RecordBody {
    pub values: Map<String, Value>,
    pub uploads: Vec<Upload>,
}

impl RecordBody {
    pub fn json(values: Map<String, Value>) -> Self {
        RecordBody {
            values,
            uploads: vec![],
        }
    }
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
    req: &Request,
    col_name: &str,
    q: ListQuery,
) -> Result<ListResult<Value>, CoreError> {
    let (caller, meta) = (&req.caller, &req.meta);
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
                .map(|r| from_row(&col2, r))
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
    let items = recs.iter().map(|r| present(&col, r, caller)).collect();
    Ok(ListResult::new(items, q.page, total))
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

pub async fn view(
    app: &App,
    req: &Request,
    col_name: &str,
    id: &str,
    expand: &[Vec<String>],
) -> Result<Value, CoreError> {
    let (caller, meta) = (&req.caller, &req.meta);
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
    Ok(present(&col, &rec, caller))
}

/// Runs a record write job and publishes its record events: to the other nodes inside the
/// transaction (NOTIFY, PostgreSQL), to this node's realtime clients after the commit; files
/// the job dropped (or its deleted records held) are removed after the commit.
pub async fn write_published<T: Send + 'static>(
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
            crate::bus::notify_events(c, &node, &ctx.events)?;
            Ok::<_, CoreError>(r)
        })
        .await?;
    let events = RecordEvent::take(&events);
    crate::files::remove_committed(app, &events, &removals).await;
    app.publish(events).await;
    Ok(out)
}

impl App {
    /// Runs `job` as one write transaction for `caller`, publishing its record events and
    /// removing dropped files after the commit, as every record write does.
    pub async fn write<T: Send + 'static>(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        job: impl FnOnce(&mut dyn galley_store::Conn, &WriteCtx) -> Result<T, CoreError>
            + Send
            + 'static,
    ) -> Result<T, CoreError> {
        write_published(self, self.write_ctx(caller, meta), job).await
    }
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
        return Ok(present(col, &rec, caller));
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
    Ok(present(col, &rec, caller))
}

fn writable(col: &Collection) -> Result<(), CoreError> {
    if col.kind == CollectionType::View {
        return Err(CoreError::bad_request("Unsupported collection type."));
    }
    Ok(())
}

/// The password keys of a submitted auth record (`password`, `passwordConfirm`,
/// `oldPassword`), taken out of its values before anything else reads them.
#[derive(Debug, Default)]
pub struct PasswordInput {
    password: Option<Value>,
    confirm: Option<Value>,
    old: Option<String>,
}

impl PasswordInput {
    /// Takes the password keys out of `values` (nothing for a non-auth collection).
    pub fn take(col: &Collection, values: &mut Map<String, Value>) -> PasswordInput {
        if !col.is_auth() {
            return PasswordInput::default();
        }
        PasswordInput {
            password: values.remove("password"),
            confirm: values.remove("passwordConfirm"),
            old: values
                .remove("oldPassword")
                .and_then(|v| v.as_str().map(str::to_owned))
                .filter(|s| !s.is_empty()),
        }
    }

    /// Whether this write will cost a password hash or verification.
    pub fn costs_work(&self) -> bool {
        self.password.is_some() || self.old.is_some()
    }
}

/// Validates and hashes a submitted `password` before the write job.
pub async fn prepare_input(
    app: &App,
    col: &Collection,
    mut values: Map<String, Value>,
    is_create: bool,
) -> Result<Input, CoreError> {
    let pw = PasswordInput::take(col, &mut values);
    hash_input(app, col, pw, values, is_create).await
}

/// Validates and hashes the password taken by [`PasswordInput::take`]: call it only once
/// the write is known to be allowed as far as it can be before its job ([`may_write`]).
pub async fn hash_input(
    app: &App,
    col: &Collection,
    pw: PasswordInput,
    values: Map<String, Value>,
    is_create: bool,
) -> Result<Input, CoreError> {
    let mut input = Input::default();
    if col.is_auth() {
        let failed = if is_create {
            "Failed to create record."
        } else {
            "Failed to update record."
        };
        let PasswordInput {
            password,
            confirm,
            old,
        } = pw;
        input.old_password = old;
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
    if col.name == galley_types::collection::WEBHOOKS {
        check_webhook_target(app, &values, is_create).await?;
    }
    input.values = values;
    Ok(input)
}

/// A webhook's URL whose name resolves to a refused address (or to this server) is a 400
/// when the webhook is saved. Resolved here, before the write job, because DNS must not run
/// on the writer; the record hook checks the rest inside the job, and every delivery
/// resolves and checks again (DNS answers change).
async fn check_webhook_target(
    app: &App,
    values: &Map<String, Value>,
    is_create: bool,
) -> Result<(), CoreError> {
    let Some(url) = values.get("url").and_then(Value::as_str) else {
        return Ok(());
    };
    use galley_jobs::webhook::{self as wh, TargetError};
    let policy = app.webhook_policy();
    // What needs no DNS is the record hook's to report, with the other fields' errors.
    let Ok(target) = wh::check_url(url, &policy) else {
        return Ok(());
    };
    // A name that does not resolve now may later: accepted, checked at delivery.
    match wh::resolve(&target, &policy).await {
        Ok(_) | Err(TargetError::Unresolved(_)) => Ok(()),
        Err(e) => {
            let mut errors = galley_types::FieldErrors::new();
            errors.add(
                "url",
                galley_types::FieldError::new("validation_invalid_url", e.to_string()),
            );
            Err(CoreError::validation(
                if is_create {
                    "Failed to create record."
                } else {
                    "Failed to update record."
                },
                errors,
            ))
        }
    }
}

/// What a write is about to do, for [`may_write`].
pub enum Intent<'a> {
    Create,
    Update(&'a str),
    /// A batch upsert: an update if record `id` exists, else a create.
    Upsert(&'a str),
}

/// Checks what can be checked of a write before its job, so that a refused write costs a
/// read at most, never the work done outside the job (a password hash, stored uploads):
/// superusers-only rules, and for an update that the record exists and passes the update
/// rule with `values` as `@request.body`. The job checks everything again.
pub async fn may_write(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    col: &Arc<Collection>,
    intent: Intent<'_>,
    values: &Map<String, Value>,
) -> Result<(), CoreError> {
    let may_create = || {
        if col.rules.create_rule.is_none() && !caller.is_superuser() {
            return Err(CoreError::superuser_only());
        }
        Ok(())
    };
    let (id, upsert) = match intent {
        Intent::Create => return may_create(),
        Intent::Update(id) => (id.to_owned(), false),
        Intent::Upsert("") => return may_create(),
        Intent::Upsert(id) => (id.to_owned(), true),
    };
    let (schema, col2, caller2, meta, values) = (
        app.schema(),
        col.clone(),
        caller.clone(),
        meta.clone(),
        values.clone(),
    );
    let update = app
        .store
        .read(move |c: &mut dyn Conn| {
            if upsert && !crate::rows::exists(c, &col2, &id)? {
                return Ok(false);
            }
            write::check_update(c, &schema, &caller2, &meta, &col2, &id, &values)?;
            Ok::<_, CoreError>(true)
        })
        .await?;
    if update {
        Ok(())
    } else {
        may_create()
    }
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

pub async fn create(
    app: &App,
    req: &Request,
    col_name: &str,
    body: RecordBody,
    expand: &[Vec<String>],
) -> Result<Value, CoreError> {
    let (caller, meta) = (&req.caller, &req.meta);
    let RecordBody { values, uploads } = body;
    const FAILED: &str = "Failed to create record.";
    let col = find_collection(app, col_name)?;
    writable(&col)?;
    let mut values = values;
    let pw = PasswordInput::take(&col, &mut values);
    if pw.costs_work() || !uploads.is_empty() {
        may_write(app, caller, meta, &col, Intent::Create, &values).await?;
    }
    let mut input = hash_input(app, &col, pw, values, true).await?;
    let staged = if uploads.is_empty() {
        crate::files::Staged::default()
    } else {
        let id = id_for_uploads(&col, &input);
        input.preset_id = Some(id.clone());
        crate::files::stage(app, &col, &id, uploads, &mut input, FAILED).await?
    };
    let col2 = col.clone();
    let rec = match write_published(app, app.write_ctx(caller, meta), move |c, ctx| {
        write::create(c, ctx, &col2, input)
    })
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

pub async fn update(
    app: &App,
    req: &Request,
    col_name: &str,
    id: &str,
    body: RecordBody,
    expand: &[Vec<String>],
) -> Result<Value, CoreError> {
    let (caller, meta) = (&req.caller, &req.meta);
    let RecordBody { values, uploads } = body;
    const FAILED: &str = "Failed to update record.";
    let col = find_collection(app, col_name)?;
    writable(&col)?;
    let mut values = values;
    let pw = PasswordInput::take(&col, &mut values);
    if pw.costs_work() || !uploads.is_empty() {
        may_write(app, caller, meta, &col, Intent::Update(id), &values).await?;
    }
    let mut input = hash_input(app, &col, pw, values, false).await?;
    verify_old_password(app, &col, id, &mut input).await?;
    let staged = if uploads.is_empty() {
        crate::files::Staged::default()
    } else {
        crate::files::stage(app, &col, id, uploads, &mut input, FAILED).await?
    };
    let (col2, id2) = (col.clone(), id.to_owned());
    let rec = match write_published(app, app.write_ctx(caller, meta), move |c, ctx| {
        write::update(c, ctx, &col2, &id2, input)
    })
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

pub async fn remove(app: &App, req: &Request, col_name: &str, id: &str) -> Result<(), CoreError> {
    let (caller, meta) = (&req.caller, &req.meta);
    let col = find_collection(app, col_name)?;
    writable(&col)?;
    let id2 = id.to_owned();
    write_published(app, app.write_ctx(caller, meta), move |c, ctx| {
        delete::delete(c, ctx, &col, &id2)
    })
    .await
}

/// Verifies a submitted `oldPassword` against the stored hash before the write job, so no
/// hashing happens on the writer; the job checks the hash is still the same.
pub async fn verify_old_password(
    app: &App,
    col: &Collection,
    id: &str,
    input: &mut Input,
) -> Result<(), CoreError> {
    let Some(old) = input
        .old_password
        .clone()
        .filter(|_| col.is_auth() && input.password_hash.is_some())
    else {
        return Ok(());
    };
    let (name, id) = (col.name.clone(), id.to_owned());
    let hash = app
        .store
        .read(
            move |c: &mut dyn Conn| -> Result<Option<String>, CoreError> {
                let mut sql = Sql::new(c.dialect());
                sql.push("SELECT ")
                    .ident("password")
                    .push(" AS h FROM ")
                    .ident(&name)
                    .push(" WHERE ")
                    .ident("id")
                    .push(" = ")
                    .push_param(id);
                Ok(c.query_sql(&sql)?.into_iter().next().map(|r| r.text("h")))
            },
        )
        .await?;
    if app.verify_password(old, hash.clone()).await {
        input.old_password_verified = hash;
    }
    Ok(())
}
