//! What record create and update do differently for auth collections: `verified` and
//! `email` need manage access, a password change needs `oldPassword` unless the caller
//! manages the record, the tokenKey rotates on password or email change, and an auth
//! record id is unique across all auth collections; a deleted auth record's rows in the
//! auth system tables go with it. All of it runs as a [`RecordHook`] inside the write job.

use crate::context::{Change, RecordHook, WriteCtx};
use crate::error::CoreError;
use crate::rules::RuleCtx;
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

/// The auth collections' part of the record write path (installed by `App::open`).
pub struct AuthRecords;

impl RecordHook for AuthRecords {
    /// An auth record id must be unique across auth collections; only a manager may
    /// create a verified record (checked after the insert, see `after_create`).
    fn before_create(
        &self,
        c: &mut dyn Conn,
        ctx: &WriteCtx,
        change: &mut Change<'_>,
    ) -> Result<(), CoreError> {
        let col = change.collection;
        if !col.is_auth() {
            return Ok(());
        }
        let (values, errors) = (&*change.record, &mut *change.errors);
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
        if wants_verified(values) && !ctx.caller.is_superuser() && !manage_possible(ctx, col) {
            errors.add("verified", mismatch());
        }
        Ok(())
    }

    /// After the insert (same transaction): a non-manager may not create verified records;
    /// the manage rule needs the inserted row, so it is checked here.
    fn after_create(
        &self,
        c: &mut dyn Conn,
        ctx: &WriteCtx,
        col: &Collection,
        record: &Map<String, Value>,
    ) -> Result<(), CoreError> {
        if !col.is_auth() || !wants_verified(record) || ctx.caller.is_superuser() {
            return Ok(());
        }
        let id = crate::rows::rec_id(record);
        if !can_manage(c, ctx, col, &id)? {
            let mut e = FieldErrors::new();
            e.add("verified", mismatch());
            return Err(CoreError::validation("Failed to create record.", e));
        }
        Ok(())
    }

    /// Checks an update of an auth record: `change.old` is the stored record,
    /// `change.record` the result. Rotates the tokenKey when the password or the email
    /// changes.
    fn before_update(
        &self,
        c: &mut dyn Conn,
        ctx: &WriteCtx,
        change: &mut Change<'_>,
    ) -> Result<(), CoreError> {
        let col = change.collection;
        let Some(old) = change.old.filter(|_| col.is_auth()) else {
            return Ok(());
        };
        let (values, input, errors) = (&mut *change.record, change.input, &mut *change.errors);
        let id = crate::rows::rec_id(old);
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

    fn after_delete(
        &self,
        c: &mut dyn Conn,
        _ctx: &WriteCtx,
        col: &Collection,
        record: &Map<String, Value>,
    ) -> Result<(), CoreError> {
        if col.is_auth() {
            forget_record(c, col, &crate::rows::rec_id(record))?;
        }
        Ok(())
    }
}

fn wants_verified(values: &Map<String, Value>) -> bool {
    values.get("verified") == Some(&Value::Bool(true))
}

/// Whether the caller could manage some record of `col` (signed in, and a manage rule set).
fn manage_possible(ctx: &WriteCtx, col: &Collection) -> bool {
    ctx.caller.id().is_some() && col.auth.as_ref().is_some_and(|a| a.manage_rule.is_some())
}

/// Removes what the auth system tables hold about a deleted auth record (its OAuth2 links,
/// login origins, pending OTPs and MFA sessions), in the deleting job.
pub fn forget_record(c: &mut dyn Conn, col: &Collection, id: &str) -> Result<(), CoreError> {
    for table in ["_externalAuths", "_authOrigins", "_otps", "_mfas"] {
        let mut sql = Sql::new(c.dialect());
        sql.push("DELETE FROM ")
            .ident(table)
            .push(" WHERE ")
            .ident("collectionRef")
            .push(" = ")
            .push_param(col.id.as_str())
            .push(" AND ")
            .ident("recordRef")
            .push(" = ")
            .push_param(id);
        c.execute_sql(&sql)?;
    }
    Ok(())
}
