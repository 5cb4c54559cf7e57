//! Authentication with auth-collection records (superusers included): password login,
//! token refresh, resolving a token to a [`Caller`], and the CLI's superuser upserts.

use crate::caller::Caller;
use crate::error::CoreError;
use crate::records::{self, output, RequestMeta};
use crate::App;
use galley_sql::Sql;
use galley_store::{Conn, ConnExt};
use galley_types::Collection;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub const SUPERUSERS: &str = "_superusers";

fn auth_collection(app: &App, name: &str) -> Result<Arc<Collection>, CoreError> {
    app.schema()
        .find(name)
        .filter(|c| c.is_auth())
        .cloned()
        .ok_or_else(|| CoreError::NotFound("Missing or invalid auth collection context.".into()))
}

/// Issues an auth token for `record`.
pub fn issue_token(col: &Collection, record: &Map<String, Value>) -> Result<String, CoreError> {
    let auth = col.auth.as_ref().ok_or_else(|| CoreError::Internal("not an auth collection".into()))?;
    let key = record.get("tokenKey").and_then(Value::as_str).unwrap_or_default();
    let exp = chrono::Utc::now().timestamp() + auth.auth_token.duration;
    let claims = json!({
        "collectionId": col.id,
        "exp": exp,
        "id": record.get("id").cloned().unwrap_or(Value::Null),
        "refreshable": true,
        "type": "auth",
    });
    let claims = claims.as_object().cloned().unwrap_or_default();
    Ok(galley_auth::jwt::sign(&claims, &format!("{key}{}", auth.auth_token.secret)))
}

fn find_by(c: &mut dyn Conn, col: &Collection, field: &str, value: &str, ci: bool) -> Result<Option<Map<String, Value>>, CoreError> {
    let d = c.dialect();
    let mut sql = Sql::new(d);
    sql.push("SELECT * FROM ").ident(&col.name).push(" WHERE ");
    if ci {
        sql.push(&d.lower(&d.quote(field))).push(" = ").push_param_with(value, |p| d.lower(p));
    } else {
        sql.ident(field).push(" = ").push_param(value);
    }
    sql.push(" LIMIT 1");
    Ok(c.query_sql(&sql)?.into_iter().next().map(|r| output::from_row(col, r)))
}

/// Resolves a token to its caller; anything invalid is a guest, as in PocketBase.
pub async fn authenticate(app: &App, token: &str) -> Caller {
    let Ok(claims) = galley_auth::jwt::unverified_claims(token) else { return Caller::Guest };
    if claims.get("type").and_then(Value::as_str) != Some("auth") {
        return Caller::Guest;
    }
    let (Some(id), Some(col_id)) = (
        claims.get("id").and_then(Value::as_str).map(str::to_owned),
        claims.get("collectionId").and_then(Value::as_str),
    ) else {
        return Caller::Guest;
    };
    let Some(col) = app.schema().by_id(col_id).filter(|c| c.is_auth()).cloned() else { return Caller::Guest };
    let col2 = col.clone();
    let rec = app.store.read(move |c: &mut dyn Conn| find_by(c, &col2, "id", &id, false)).await;
    let Ok(Some(record)) = rec else { return Caller::Guest };
    let Some(auth) = &col.auth else { return Caller::Guest };
    let key = record.get("tokenKey").and_then(Value::as_str).unwrap_or_default();
    let secret = format!("{key}{}", auth.auth_token.secret);
    match galley_auth::jwt::verify(token, &secret, chrono::Utc::now().timestamp()) {
        Ok(_) => Caller::Record { collection: col, record },
        Err(_) => Caller::Guest,
    }
}

fn auth_response(col: &Collection, record: &Map<String, Value>) -> Result<Value, CoreError> {
    let token = issue_token(col, record)?;
    let viewer = Caller::Record { collection: Arc::new(col.clone()), record: record.clone() };
    Ok(json!({"record": output::present(col, record, &viewer), "token": token}))
}

/// `POST /api/collections/{c}/auth-with-password`.
pub async fn auth_with_password(app: &App, col_name: &str, identity: &str, password: &str, identity_field: Option<&str>) -> Result<Value, CoreError> {
    const FAILED: &str = "Failed to authenticate.";
    let col = auth_collection(app, col_name)?;
    let auth = col.auth.clone().ok_or_else(|| CoreError::Internal("auth options missing".into()))?;
    if !auth.password_auth.enabled {
        return Err(CoreError::bad_request("The collection is not configured to allow password authentication."));
    }
    let mut errors = galley_types::FieldErrors::new();
    if identity.is_empty() || identity.chars().count() > 255 {
        errors.add("identity", galley_types::FieldError::required());
    }
    if password.is_empty() || password.chars().count() > 255 {
        errors.add("password", galley_types::FieldError::required());
    }
    if !errors.is_empty() {
        return Err(CoreError::validation("An error occurred while validating the submitted data.", errors));
    }
    let fields: Vec<String> = match identity_field {
        Some(f) if auth.password_auth.identity_fields.iter().any(|x| x == f) => vec![f.to_owned()],
        Some(_) => return Err(CoreError::bad_request(FAILED)),
        None => auth.password_auth.identity_fields.clone(),
    };
    let (col2, ident) = (col.clone(), identity.to_owned());
    let record = app
        .store
        .read(move |c: &mut dyn Conn| -> Result<_, CoreError> {
            for f in &fields {
                if col2.field(f).is_none() {
                    continue;
                }
                if let Some(r) = find_by(c, &col2, f, &ident, f == "email")? {
                    return Ok(Some(r));
                }
            }
            Ok(None)
        })
        .await?;
    let hash = record.as_ref().and_then(|r| r.get("password")).and_then(Value::as_str).map(str::to_owned);
    // Unknown identities run a dummy verification so both cases take the same time.
    let ok = app.verify_password(password.to_owned(), hash).await;
    match record {
        Some(r) if ok => auth_response(&col, &r),
        _ => Err(CoreError::bad_request(FAILED)),
    }
}

/// `POST /api/collections/{c}/auth-refresh`.
pub async fn auth_refresh(app: &App, col_name: &str, caller: &Caller) -> Result<Value, CoreError> {
    let col = auth_collection(app, col_name)?;
    match caller {
        Caller::Guest => Err(CoreError::Unauthorized("The request requires valid record authorization token.".into())),
        Caller::Record { collection, record } if collection.id == col.id => auth_response(&col, record),
        Caller::Record { collection, .. } => Err(CoreError::Forbidden(format!(
            "The request requires auth record from {} collection.",
            collection.name
        ))),
    }
}

/// Creates the superuser or sets its password (the CLI's `superuser upsert`).
pub async fn upsert(app: &App, email: &str, password: &str) -> Result<bool, CoreError> {
    let col = auth_collection(app, SUPERUSERS)?;
    let (col2, e) = (col.clone(), email.to_owned());
    let existing = app.store.read(move |c: &mut dyn Conn| find_by(c, &col2, "email", &e, true)).await?;
    // The CLI acts as a superuser.
    let su = Caller::Record { collection: col.clone(), record: Map::new() };
    let meta = RequestMeta { method: "POST".into(), context: "cli".into(), ..Default::default() };
    let mut body = json!({"password": password, "passwordConfirm": password}).as_object().cloned().unwrap_or_default();
    match existing {
        Some(r) => {
            let id = r.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
            records::update(app, SUPERUSERS, &id, body, &su, &meta, &[]).await?;
            Ok(false)
        }
        None => {
            body.insert("email".into(), json!(email));
            body.insert("verified".into(), json!(true));
            records::create(app, SUPERUSERS, body, &su, &meta, &[]).await?;
            Ok(true)
        }
    }
}

/// Deletes a superuser by email (the CLI's `superuser delete`). Returns whether one existed.
pub async fn delete(app: &App, email: &str) -> Result<bool, CoreError> {
    let col = auth_collection(app, SUPERUSERS)?;
    let e = email.to_owned();
    app.store
        .write(move |c: &mut dyn Conn| -> Result<bool, CoreError> {
            let d = c.dialect();
            let mut sql = Sql::new(d);
            sql.push("DELETE FROM ").ident(&col.name).push(" WHERE ").push(&d.lower(&d.quote("email")));
            sql.push(" = ").push_param_with(e, |p| d.lower(p));
            Ok(c.execute_sql(&sql)? > 0)
        })
        .await
}

/// How many superusers exist (to print set-up help on first start).
pub async fn count(app: &App) -> Result<i64, CoreError> {
    app.store
        .read(|c: &mut dyn Conn| -> Result<i64, CoreError> {
            Ok(c.query("SELECT COUNT(*) AS n FROM \"_superusers\"", &[])?.first().map(|r| r.int("n")).unwrap_or(0))
        })
        .await
}
