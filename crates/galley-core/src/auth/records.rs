//! What record create and update do differently for auth collections: `verified` and
//! `email` need manage access, a password change needs `oldPassword` unless the caller
//! manages the record, the tokenKey rotates on password or email change, and an auth
//! record id is unique across all auth collections.

use crate::error::CoreError;
use crate::records::{Input, WriteCtx};
use crate::rules::RuleCtx;
use crate::App;
use galley_sql::Sql;
use galley_store::{Conn, ConnExt};
use galley_types::{Collection, FieldError, FieldErrors};
use serde_json::{json, Map, Value};

fn mismatch() -> FieldError {
    FieldError::new("validation_values_mismatch", "Values don't match.")
}

/// Does the caller manage the stored record `id` (superuser, or the collection's
/// `manageRule` holds for it)?
pub fn can_manage(
    c: &mut dyn Conn,
    ctx: &WriteCtx,
    col: &Collection,
    id: &str,
) -> Result<bool, CoreError> {
    if ctx.caller.is_superuser() {
        return Ok(true);
    }
    let Some(rule) = col.auth.as_ref().and_then(|a| a.manage_rule.clone()) else {
        return Ok(false);
    };
    if ctx.caller.id().is_none() {
        // manageRule is for authenticated managers; a guest never manages.
        return Ok(false);
    }
    let rctx = RuleCtx::new(&ctx.schema, col, &ctx.caller, &ctx.meta, c.dialect());
    let access = rctx.access(&Some(rule))?;
    crate::rules::record_satisfies(c, col, id, access)
}

/// Checks before an insert into an auth collection; returns whether the caller must be
/// checked as a manager of the inserted row (see [`after_create`]).
pub fn before_create(
    c: &mut dyn Conn,
    ctx: &WriteCtx,
    col: &Collection,
    values: &Map<String, Value>,
    errors: &mut FieldErrors,
) -> Result<bool, CoreError> {
    let id = values.get("id").and_then(Value::as_str).unwrap_or_default();
    if !id.is_empty() && !errors.0.contains_key("id") {
        for other in ctx
            .schema
            .all()
            .iter()
            .filter(|o| o.is_auth() && o.id != col.id)
        {
            let mut sql = Sql::new(c.dialect());
            sql.push("SELECT 1 AS ok FROM ")
                .ident(&other.name)
                .push(" WHERE ")
                .ident("id")
                .push(" = ")
                .push_param(id);
            if !c.query_sql(&sql)?.is_empty() {
                errors.add(
                    "id",
                    FieldError::new(
                        "validation_invalid_auth_id",
                        "Invalid or duplicated auth record id.",
                    ),
                );
                break;
            }
        }
    }
    let wants_verified = values.get("verified") == Some(&Value::Bool(true));
    if !wants_verified || ctx.caller.is_superuser() {
        return Ok(false);
    }
    let manage_possible =
        ctx.caller.id().is_some() && col.auth.as_ref().is_some_and(|a| a.manage_rule.is_some());
    if !manage_possible {
        errors.add("verified", mismatch());
        return Ok(false);
    }
    Ok(true)
}

/// After the insert (same transaction): a non-manager may not create verified records.
pub fn after_create(
    c: &mut dyn Conn,
    ctx: &WriteCtx,
    col: &Collection,
    id: &str,
    check_manage: bool,
) -> Result<(), CoreError> {
    if check_manage && !can_manage(c, ctx, col, id)? {
        let mut e = FieldErrors::new();
        e.add("verified", mismatch());
        return Err(CoreError::validation("Failed to create record.", e));
    }
    Ok(())
}

/// Checks an update of an auth record: `old` is the stored record, `values` the result.
/// Rotates the tokenKey when the password or the email changes.
pub fn before_update(
    c: &mut dyn Conn,
    ctx: &WriteCtx,
    col: &Collection,
    old: &Map<String, Value>,
    values: &mut Map<String, Value>,
    input: &Input,
    errors: &mut FieldErrors,
) -> Result<(), CoreError> {
    let id = old
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let changed = |k: &str, values: &Map<String, Value>| values.get(k) != old.get(k);
    let email_changed = changed("email", values);
    let verified_changed = changed("verified", values);
    let password_changed = input.password_hash.is_some();
    let mut manager = None;
    let mut manages = |c: &mut dyn Conn| -> Result<bool, CoreError> {
        if manager.is_none() {
            manager = Some(can_manage(c, ctx, col, &id)?);
        }
        Ok(manager == Some(true))
    };
    if (email_changed || verified_changed) && !manages(c)? {
        if email_changed {
            errors.add("email", mismatch());
        }
        if verified_changed {
            errors.add("verified", mismatch());
        }
    }
    if password_changed && !manages(c)? {
        let stored = old
            .get("password")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match (&input.old_password, &input.old_password_verified) {
            (None, _) => errors.add("oldPassword", FieldError::required()),
            // Verified before the job against the hash that is still stored.
            (Some(_), Some(h)) if galley_auth::jwt::secrets_equal(h, stored) => {}
            (Some(_), _) => errors.add(
                "oldPassword",
                FieldError::new(
                    "validation_invalid_old_password",
                    "Missing or invalid old password.",
                ),
            ),
        }
    }
    if email_changed || password_changed {
        values.insert("tokenKey".into(), json!(galley_types::ids::secret(50)));
    }
    Ok(())
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
