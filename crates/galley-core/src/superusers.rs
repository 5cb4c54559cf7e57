//! The CLI's superuser upserts and deletes. Resolving tokens is in [`crate::identity`]; the
//! login flows of all auth collections are in [`crate::auth`].

use crate::app::App;
use crate::auth::auth_collection;
use crate::context::{Caller, Request, RequestMeta};
use crate::error::CoreError;
pub use crate::identity::SUPERUSERS;
use crate::records::{self, RecordBody};
use crate::rows::find_by;
use galley_sql::Sql;
use galley_store::{Conn, ConnExt};
use serde_json::{json, Map, Value};

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
    let req = Request::new(
        su,
        RequestMeta {
            method: "POST".into(),
            context: "cli".into(),
            ..Default::default()
        },
    );
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
            records::update(app, &req, SUPERUSERS, &id, RecordBody::json(body), &[]).await?;
            Ok(false)
        }
        None => {
            body.insert("email".into(), json!(email));
            body.insert("verified".into(), json!(true));
            records::create(app, &req, SUPERUSERS, RecordBody::json(body), &[]).await?;
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
