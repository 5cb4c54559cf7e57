//! Resolving a token to a [`Caller`], and the CLI's superuser upserts. The login flows of
//! all auth collections are in [`crate::auth`].

use crate::auth::{auth_collection, find_by};
use crate::caller::Caller;
use crate::error::CoreError;
use crate::records::{self, RequestMeta};
use crate::App;
use galley_sql::Sql;
use galley_store::{Conn, ConnExt};
use serde_json::{json, Map, Value};

pub const SUPERUSERS: &str = "_superusers";

/// Resolves a token to its caller; anything invalid is a guest, as in PocketBase.
pub async fn authenticate(app: &App, token: &str) -> Caller {
    authenticate_as(app, token, crate::auth::tokens::Kind::Auth).await
}

/// Resolves a token of one kind (auth, or file for protected downloads) to its caller.
pub async fn authenticate_as(app: &App, token: &str, kind: crate::auth::tokens::Kind) -> Caller {
    let Ok(claims) = galley_auth::jwt::unverified_claims(token) else {
        return Caller::Guest;
    };
    if claims.get("type").and_then(Value::as_str) != Some(kind.type_claim()) {
        return Caller::Guest;
    }
    let (Some(id), Some(col_id)) = (
        claims.get("id").and_then(Value::as_str).map(str::to_owned),
        claims.get("collectionId").and_then(Value::as_str),
    ) else {
        return Caller::Guest;
    };
    let Some(col) = app.schema().by_id(col_id).filter(|c| c.is_auth()).cloned() else {
        return Caller::Guest;
    };
    let col2 = col.clone();
    let rec = app
        .store
        .read(move |c: &mut dyn Conn| find_by(c, &col2, "id", &id, false))
        .await;
    let Ok(Some(record)) = rec else {
        return Caller::Guest;
    };
    match crate::auth::tokens::verify(token, kind, &col, &record) {
        Some(_) => Caller::Record {
            collection: col,
            record,
        },
        None => Caller::Guest,
    }
}

/// Creates the superuser or sets its password (the CLI's `superuser upsert`).
pub async fn upsert(app: &App, email: &str, password: &str) -> Result<bool, CoreError> {
    let col = auth_collection(app, SUPERUSERS)?;
    let (col2, e) = (col.clone(), email.to_owned());
    let existing = app
        .store
        .read(move |c: &mut dyn Conn| find_by(c, &col2, "email", &e, true))
        .await?;
    // The CLI acts as a superuser.
    let su = Caller::Record {
        collection: col.clone(),
        record: Map::new(),
    };
    let meta = RequestMeta {
        method: "POST".into(),
        context: "cli".into(),
        ..Default::default()
    };
    let mut body = json!({"password": password, "passwordConfirm": password})
        .as_object()
        .cloned()
        .unwrap_or_default();
    match existing {
        Some(r) => {
            let id = r
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            records::update(app, SUPERUSERS, &id, body, vec![], &su, &meta, &[]).await?;
            Ok(false)
        }
        None => {
            body.insert("email".into(), json!(email));
            body.insert("verified".into(), json!(true));
            records::create(app, SUPERUSERS, body, vec![], &su, &meta, &[]).await?;
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
            sql.push("DELETE FROM ")
                .ident(&col.name)
                .push(" WHERE ")
                .push(&d.lower(&d.quote("email")));
            sql.push(" = ").push_param_with(e, |p| d.lower(p));
            Ok(c.execute_sql(&sql)? > 0)
        })
        .await
}

/// How many superusers exist (to print set-up help on first start).
pub async fn count(app: &App) -> Result<i64, CoreError> {
    app.store
        .read(|c: &mut dyn Conn| -> Result<i64, CoreError> {
            Ok(c.query("SELECT COUNT(*) AS n FROM \"_superusers\"", &[])?
                .first()
                .map(|r| r.int("n"))
                .unwrap_or(0))
        })
        .await
}
