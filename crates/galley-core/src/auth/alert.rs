//! Auth alerts: with `authAlert.enabled`, a login from an origin (client IP + user agent)
//! that is not among the record's recent ones mails the record, except on its very first
//! login. The last 5 origins per record are kept in `_authOrigins`. All of it runs on a
//! spawned task after the response is decided, so the login never waits for it; the API
//! layer calls [`after_login`] with the auth response of a password, OTP or OAuth2 login.

use super::Origin;
use crate::app::App;
use crate::error::CoreError;
use crate::mail;
use crate::rows::{rec_id, rec_str};
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt};
use galley_types::Collection;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Origins remembered per record, as PocketBase.
const KEEP: usize = 5;

fn fingerprint(o: &Origin) -> String {
    Sha256::digest(format!("{}{}", o.ip, o.user_agent).as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// After a successful login of collection `col_name` answered with `response`: records
/// its origin and mails an alert when the origin is new, on a spawned task.
pub fn after_login(app: &Arc<App>, col_name: &str, response: &super::AuthResult, origin: Origin) {
    let Ok(col) = super::auth_collection(app, col_name) else {
        return;
    };
    let enabled = col.auth.as_ref().is_some_and(|a| a.auth_alert.enabled);
    if !enabled {
        return;
    }
    let id = response.record_id();
    if id.is_empty() {
        return;
    }
    let (app, id) = (app.clone(), id.to_owned());
    tokio::spawn(async move {
        let res = async {
            let Some(record) = super::find(&app, &col, "id", &id, false).await? else {
                return Ok(());
            };
            run(&app, &col, &record, &origin).await
        };
        if let Err(e) = res.await {
            tracing::warn!(error = %e, "auth alert bookkeeping failed");
        }
    });
}

async fn run(
    app: &App,
    col: &Arc<Collection>,
    record: &Map<String, Value>,
    origin: &Origin,
) -> Result<(), CoreError> {
    let fp = fingerprint(origin);
    let (col_id, rec) = (col.id.clone(), rec_id(record));
    let alert = app
        .store
        .write(move |c: &mut dyn Conn| -> Result<bool, CoreError> {
            let now = galley_types::datetime::now();
            let mut sel = Sql::new(c.dialect());
            sel.push("SELECT \"id\", \"fingerprint\" FROM \"_authOrigins\" WHERE \"collectionRef\" = ")
                .push_param(col_id.as_str())
                .push(" AND \"recordRef\" = ")
                .push_param(rec.as_str())
                .push(" ORDER BY \"updated\" DESC");
            let rows = c.query_sql(&sel)?;
            let known = rows.iter().find(|r| r.text("fingerprint") == fp).map(|r| r.text("id"));
            let first = rows.is_empty();
            match &known {
                Some(id) => {
                    let mut up = Sql::new(c.dialect());
                    up.push("UPDATE \"_authOrigins\" SET \"updated\" = ")
                        .push_param(SqlValue::Timestamp(now))
                        .push(" WHERE \"id\" = ")
                        .push_param(id.as_str());
                    c.execute_sql(&up)?;
                }
                None => {
                    let mut ins = Sql::new(c.dialect());
                    ins.push("INSERT INTO \"_authOrigins\" (\"id\", \"collectionRef\", \"recordRef\", \"fingerprint\", \"created\", \"updated\") VALUES (");
                    ins.push_param(galley_types::ids::record_id()).push(", ").push_param(col_id.as_str()).push(", ").push_param(rec.as_str());
                    ins.push(", ").push_param(fp.as_str()).push(", ").push_param(SqlValue::Timestamp(now)).push(", ").push_param(SqlValue::Timestamp(now)).push(")");
                    c.execute_sql(&ins)?;
                }
            }
            // Keep the newest KEEP (the one just touched is the newest).
            let others: Vec<String> = rows
                .iter()
                .map(|r| r.text("id"))
                .filter(|id| Some(id) != known.as_ref())
                .collect();
            for id in others.iter().skip(KEEP - 1) {
                let mut del = Sql::new(c.dialect());
                del.push("DELETE FROM \"_authOrigins\" WHERE \"id\" = ").push_param(id.as_str());
                c.execute_sql(&del)?;
            }
            Ok(known.is_none() && !first)
        })
        .await?;
    let email = rec_str(record, "email");
    if !alert || email.is_empty() {
        return Ok(());
    }
    let Some(t) = col
        .auth
        .as_ref()
        .map(|a| a.auth_alert.email_template.clone())
    else {
        return Ok(());
    };
    let info = escape_html(&format!(
        "{} - {} {}",
        galley_types::datetime::now_string(),
        origin.ip,
        origin.user_agent
    ));
    let settings = app.settings();
    let m = mail::render(
        &t,
        &settings,
        email,
        &mail::Vars {
            alert_info: &info,
            ..Default::default()
        },
    );
    app.send_mail(m).await?;
    Ok(())
}
