//! Record create and update inside a write job.

use super::input;
use crate::context::{Caller, Change, Input, RequestMeta, WriteCtx, WriteOp};
use crate::error::CoreError;
use crate::rules::{Access, RuleCtx};
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt, StoreError};
use galley_types::field::{as_strings, FieldKind};
use galley_types::{Collection, FieldError, FieldErrors, Schema};
use serde_json::{json, Map, Value};

fn rule_ctx<'a>(ctx: &'a WriteCtx, col: &'a Collection, c: &dyn Conn) -> RuleCtx<'a> {
    RuleCtx::new(&ctx.schema, col, &ctx.caller, &ctx.meta, c.dialect())
}

/// `@request.body`: every submitted key, with field keys (modifiers resolved) replaced by
/// the field's resulting value.
fn request_body(
    col: &Collection,
    input: &Map<String, Value>,
    values: &Map<String, Value>,
) -> Map<String, Value> {
    let mut body = Map::new();
    for (k, v) in input {
        let name = k
            .strip_suffix(":autogenerate")
            .or_else(|| k.strip_prefix('+'))
            .or_else(|| k.strip_suffix('+'))
            .or_else(|| k.strip_suffix('-'))
            .unwrap_or(k);
        match col.field_ci(name) {
            Some(f) => {
                body.insert(
                    f.name.clone(),
                    values.get(&f.name).cloned().unwrap_or(Value::Null),
                );
            }
            None => {
                body.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    body
}

/// Validates every field and checks that relations point at existing records.
fn validate(
    c: &mut dyn Conn,
    ctx: &WriteCtx,
    col: &Collection,
    values: &Map<String, Value>,
    mut errors: FieldErrors,
) -> Result<FieldErrors, CoreError> {
    for f in &col.fields {
        if errors.0.contains_key(&f.name) || matches!(f.kind, FieldKind::Password(_)) {
            continue;
        }
        let v = values
            .get(&f.name)
            .cloned()
            .unwrap_or_else(|| f.zero_value());
        if let Err(e) = f.validate(&v) {
            errors.add(&f.name, e);
            continue;
        }
        if let Some(rel) = f.relation() {
            let ids = as_strings(&v);
            if ids.is_empty() {
                continue;
            }
            let target = if rel.collection_id == col.id {
                Some(col.name.clone())
            } else {
                ctx.schema.by_id(&rel.collection_id).map(|t| t.name.clone())
            };
            let Some(target) = target else {
                errors.add(
                    &f.name,
                    FieldError::new(
                        "validation_missing_rel_records",
                        "Failed to find all relation records with the provided ids.",
                    ),
                );
                continue;
            };
            let mut sql = Sql::new(c.dialect());
            sql.push("SELECT COUNT(*) AS n FROM ")
                .ident(&target)
                .push(" WHERE ")
                .ident("id")
                .push(" IN (");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push_param(id.as_str());
            }
            sql.push(")");
            let found = c.query_sql(&sql)?.first().map(|r| r.int("n")).unwrap_or(0);
            if found != ids.len() as i64 {
                errors.add(
                    &f.name,
                    FieldError::new(
                        "validation_missing_rel_records",
                        "Failed to find all relation records with the provided ids.",
                    ),
                );
            }
        }
    }
    Ok(errors)
}

fn unique_error(columns: Vec<String>, message: &str) -> CoreError {
    let mut errors = FieldErrors::new();
    for c in if columns.is_empty() {
        vec!["id".to_owned()]
    } else {
        columns
    } {
        errors.add(
            &c,
            FieldError::new("validation_not_unique", "Value must be unique."),
        );
    }
    CoreError::validation(message, errors)
}

fn map_write_err(e: StoreError, message: &str) -> CoreError {
    match e {
        StoreError::UniqueViolation { columns } => unique_error(columns, message),
        other => other.into(),
    }
}

fn check_rule_after_write(
    c: &mut dyn Conn,
    rctx: &RuleCtx<'_>,
    access: Access,
    id: &str,
    fail: CoreError,
) -> Result<(), CoreError> {
    if !crate::rules::record_satisfies(c, rctx.collection, id, access)? {
        return Err(fail);
    }
    Ok(())
}

/// Inserts `values` (every field, already validated) as a row of `col`.
pub fn insert_row(
    c: &mut dyn Conn,
    col: &Collection,
    values: &Map<String, Value>,
) -> Result<(), galley_store::StoreError> {
    let d = c.dialect();
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO ").ident(&col.name).push(" (");
    for (i, f) in col.fields.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.ident(&f.name);
    }
    sql.push(") VALUES (");
    for (i, f) in col.fields.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        let v = values.get(&f.name).cloned().unwrap_or(Value::Null);
        sql.push_param(f.to_sql(&v, d));
    }
    sql.push(")");
    c.execute_sql(&sql)?;
    Ok(())
}

pub fn create(
    c: &mut dyn Conn,
    ctx: &WriteCtx,
    col: &Collection,
    input: Input,
) -> Result<Map<String, Value>, CoreError> {
    const FAILED: &str = "Failed to create record.";
    if !ctx.caller.is_superuser() && col.rules.create_rule.is_none() {
        return Err(CoreError::superuser_only());
    }
    let superuser = ctx.caller.is_superuser();
    let mut values: Map<String, Value> = col
        .fields
        .iter()
        .map(|f| (f.name.clone(), f.zero_value()))
        .collect();
    let mut errors = input::apply(col, &mut values, &input.values, true, superuser);
    crate::files::check_names(col, None, &values, &input.new_files, &mut errors);
    if let Some(id) = &input.preset_id {
        if values
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            values.insert("id".into(), json!(id));
        }
    }
    let now = galley_types::datetime::now_string();
    for f in &col.fields {
        match &f.kind {
            FieldKind::Autodate(o) if o.on_create => {
                values.insert(f.name.clone(), json!(now));
            }
            FieldKind::Text(o)
                if !o.autogenerate_pattern.is_empty()
                    && values
                        .get(&f.name)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .is_empty() =>
            {
                let gen = galley_types::ids::generate_from_pattern(&o.autogenerate_pattern)
                    .unwrap_or_default();
                values.insert(f.name.clone(), json!(gen));
            }
            FieldKind::Password(_) => {
                values.insert(
                    f.name.clone(),
                    json!(input.password_hash.clone().unwrap_or_default()),
                );
            }
            _ => {}
        }
    }
    let mut pending = Some(errors);
    let input = &input;
    ctx.around(c, WriteOp::Create, col, &mut values, &mut |c, values| {
        let mut errors = pending.take().unwrap_or_default();
        ctx.each_hook(|h| {
            h.before_create(
                c,
                ctx,
                &mut Change {
                    collection: col,
                    old: None,
                    record: values,
                    input,
                    errors: &mut errors,
                },
            )
        })?;
        let errors = validate(c, ctx, col, values, errors)?;
        if !errors.is_empty() {
            return Err(CoreError::validation(FAILED, errors));
        }
        let id = values
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let body = request_body(col, &input.values, values);
        let rctx = rule_ctx(ctx, col, c).with_body(&body);
        let access = rctx.access(&col.rules.create_rule)?;
        insert_row(c, col, values).map_err(|e| map_write_err(e, FAILED))?;
        // The rule sees the stored row, in the same transaction; failing it rolls the insert back.
        check_rule_after_write(c, &rctx, access, &id, CoreError::bad_request(FAILED))?;
        ctx.emit("create", col, values);
        ctx.each_hook(|h| h.after_create(c, ctx, col, values))
    })?;
    Ok(values)
}

/// An update checked by [`check_update`]: the stored record, the record with the submitted
/// values applied, and the errors of that application.
pub struct CheckedUpdate {
    pub old: Map<String, Value>,
    pub values: Map<String, Value>,
    pub errors: FieldErrors,
}

/// Loads record `id` for an update by `caller` with the submitted `values` and checks the
/// update rule: 403 when it is superusers only, 404 when the record is missing or the rule
/// refuses.
pub fn check_update(
    c: &mut dyn Conn,
    schema: &Schema,
    caller: &Caller,
    meta: &RequestMeta,
    col: &Collection,
    id: &str,
    submitted: &Map<String, Value>,
) -> Result<CheckedUpdate, CoreError> {
    let superuser = caller.is_superuser();
    if !superuser && col.rules.update_rule.is_none() {
        return Err(CoreError::superuser_only());
    }
    // Load without the rule: the rule needs `@request.body`, which depends on the stored
    // values through the modifiers.
    let mut values = crate::rows::load(c, col, id)?;
    let old = values.clone();
    let errors = input::apply(col, &mut values, submitted, false, superuser);
    let body = request_body(col, submitted, &values);
    let rctx = RuleCtx::new(schema, col, caller, meta, c.dialect()).with_body(&body);
    let access = rctx.access(&col.rules.update_rule)?;
    check_rule_after_write(c, &rctx, access, id, CoreError::not_found())?;
    Ok(CheckedUpdate {
        old,
        values,
        errors,
    })
}

pub fn update(
    c: &mut dyn Conn,
    ctx: &WriteCtx,
    col: &Collection,
    id: &str,
    input: Input,
) -> Result<Map<String, Value>, CoreError> {
    const FAILED: &str = "Failed to update record.";
    let CheckedUpdate {
        old,
        mut values,
        mut errors,
    } = check_update(
        c,
        &ctx.schema,
        &ctx.caller,
        &ctx.meta,
        col,
        id,
        &input.values,
    )?;
    let files = crate::files::has_files(col);
    if files {
        crate::files::check_names(col, Some(&old), &values, &input.new_files, &mut errors);
    }
    let now = galley_types::datetime::now_string();
    for f in &col.fields {
        match &f.kind {
            FieldKind::Autodate(o) if o.on_update => {
                values.insert(f.name.clone(), json!(now));
            }
            FieldKind::Password(_) => {
                if let Some(h) = &input.password_hash {
                    values.insert(f.name.clone(), json!(h));
                }
            }
            _ => {}
        }
    }
    let mut pending = Some(errors);
    let input = &input;
    ctx.around(c, WriteOp::Update, col, &mut values, &mut |c, values| {
        let mut errors = pending.take().unwrap_or_default();
        ctx.each_hook(|h| {
            h.before_update(
                c,
                ctx,
                &mut Change {
                    collection: col,
                    old: Some(&old),
                    record: values,
                    input,
                    errors: &mut errors,
                },
            )
        })?;
        let errors = validate(c, ctx, col, values, errors)?;
        if !errors.is_empty() {
            return Err(CoreError::validation(FAILED, errors));
        }
        let d = c.dialect();
        let mut sql = Sql::new(d);
        sql.push("UPDATE ").ident(&col.name).push(" SET ");
        let mut first = true;
        for f in col.fields.iter().filter(|f| f.name != "id") {
            if !first {
                sql.push(", ");
            }
            first = false;
            let v = values.get(&f.name).cloned().unwrap_or(Value::Null);
            sql.ident(&f.name).push(" = ").push_param(f.to_sql(&v, d));
        }
        sql.push(" WHERE ")
            .ident("id")
            .push(" = ")
            .push_param(SqlValue::from(id));
        c.execute_sql(&sql).map_err(|e| map_write_err(e, FAILED))?;
        if files {
            crate::files::note_replaced(&ctx.removals, col, id, &old, values);
        }
        ctx.emit("update", col, values);
        ctx.each_hook(|h| h.after_update(c, ctx, col, &old, values))
    })?;
    Ok(values)
}
