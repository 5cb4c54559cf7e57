//! One-time passwords by email: `request-otp` stores an argon2id-hashed code of
//! `otp.length` digits in `_otps` and mails it; `auth-with-otp` accepts it within
//! `otp.duration` seconds, at most 5 attempts, once.

use super::{auth_collection, field_error, find, respond, Method};
use crate::app::App;
use crate::context::Caller;
use crate::error::CoreError;
use crate::mail;
use crate::rows::{rec_id, rec_str};
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt};
use galley_types::Collection;
use rand::Rng;
use serde_json::{json, Value};
use std::sync::Arc;

pub const MAX_ATTEMPTS: i64 = 5;
const INVALID: &str = "Invalid or expired OTP.";

fn otp_enabled(col: &Collection) -> Result<galley_types::collection::OtpOptions, CoreError> {
    col.auth
        .as_ref()
        .map(|a| a.otp.clone())
        .filter(|o| o.enabled)
        .ok_or_else(|| {
            CoreError::Forbidden(
                "The collection is not configured to allow OTP authentication.".into(),
            )
        })
}

pub(crate) fn is_email(s: &str) -> bool {
    galley_types::Field::new("email", galley_types::FieldKind::Email(Default::default()))
        .validate(&json!(s))
        .is_ok()
}

/// Validates a submitted `email` as PocketBase's forms do.
pub(crate) fn check_email(field: &str, email: &str) -> Result<(), CoreError> {
    if email.trim().is_empty() {
        return Err(field_error(
            field,
            "validation_required",
            "Cannot be blank.",
        ));
    }
    if email.len() > 255 || !is_email(email) {
        return Err(field_error(
            field,
            "validation_is_email",
            "Must be a valid email address.",
        ));
    }
    Ok(())
}

fn random_digits(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// `POST /api/collections/{c}/request-otp`: always `{"otpId"}`, known email or not.
pub async fn request_otp(
    app: &App,
    col_name: &str,
    email: &str,
    requester: &Caller,
) -> Result<Value, CoreError> {
    let col = auth_collection(app, col_name)?;
    let opts = otp_enabled(&col)?;
    check_email("email", email)?;
    app.auth.limit_identity(requester, &col, email)?;
    let record = find(app, &col, "email", email, true).await?;
    let code = random_digits(opts.length.clamp(4, 20) as usize);
    // Hash in both cases: the same work whether the account exists.
    let hash = app.hash_password(code.clone()).await?;
    let otp_id = galley_types::ids::generate_from_pattern("[a-z0-9]{15}").unwrap_or_default();
    let (col2, id2, rec2, to) = (
        col.clone(),
        otp_id.clone(),
        record.as_ref().map(rec_id),
        email.to_owned(),
    );
    let duration = opts.duration;
    app.store
        .write(move |c: &mut dyn Conn| -> Result<(), CoreError> {
            let now = galley_types::datetime::now();
            // Expired codes of this collection go in both cases.
            let mut del = Sql::new(c.dialect());
            del.push("DELETE FROM \"_otps\" WHERE \"collectionRef\" = ").push_param(col2.id.as_str());
            del.push(" AND \"created\" < ").push_param(SqlValue::Timestamp(now - chrono::Duration::seconds(duration)));
            c.execute_sql(&del)?;
            if let Some(rec) = rec2 {
                let mut sql = Sql::new(c.dialect());
                sql.push("INSERT INTO \"_otps\" (\"id\", \"collectionRef\", \"recordRef\", \"password\", \"sentTo\", \"attempts\", \"created\", \"updated\") VALUES (");
                sql.push_param(id2).push(", ").push_param(col2.id.as_str()).push(", ").push_param(rec).push(", ").push_param(hash);
                sql.push(", ").push_param(to).push(", ").push_param(0i64).push(", ").push_param(SqlValue::Timestamp(now));
                sql.push(", ").push_param(SqlValue::Timestamp(now)).push(")");
                c.execute_sql(&sql)?;
            }
            Ok(())
        })
        .await?;
    if let Some(r) = &record {
        let settings = app.settings();
        let m = mail::render(
            &opts.email_template,
            &settings,
            rec_str(r, "email"),
            &mail::Vars {
                otp: &code,
                ..Default::default()
            },
        );
        app.send_mail(m).await?;
    }
    Ok(json!({"otpId": otp_id}))
}

/// `POST /api/collections/{c}/auth-with-otp`.
pub async fn auth_with_otp(
    app: &App,
    col_name: &str,
    otp_id: &str,
    password: &str,
    mfa_id: Option<&str>,
    requester: &Caller,
) -> Result<super::AuthResult, CoreError> {
    let col = auth_collection(app, col_name)?;
    let opts = otp_enabled(&col)?;
    let mut errors = galley_types::FieldErrors::new();
    if otp_id.is_empty() {
        errors.add("otpId", galley_types::FieldError::required());
    }
    if password.is_empty() {
        errors.add("password", galley_types::FieldError::required());
    }
    if !errors.is_empty() {
        return Err(CoreError::validation(super::INVALID_DATA, errors));
    }
    app.auth.limit_identity(requester, &col, otp_id)?;
    let (col2, id2) = (col.clone(), otp_id.to_owned());
    // Count the attempt first, in the same job that reads the row.
    let row = app
        .store
        .write(move |c: &mut dyn Conn| -> Result<_, CoreError> {
            let mut up = Sql::new(c.dialect());
            up.push("UPDATE \"_otps\" SET \"attempts\" = \"attempts\" + 1 WHERE \"id\" = ")
                .push_param(id2.as_str());
            up.push(" AND \"collectionRef\" = ")
                .push_param(col2.id.as_str());
            c.execute_sql(&up)?;
            let mut sql = Sql::new(c.dialect());
            sql.push("SELECT * FROM \"_otps\" WHERE \"id\" = ")
                .push_param(id2)
                .push(" AND \"collectionRef\" = ")
                .push_param(col2.id.as_str());
            Ok(c.query_sql(&sql)?.into_iter().next())
        })
        .await?;
    let now = chrono::Utc::now();
    let row = row.filter(|r| {
        r.timestamp("created")
            .is_some_and(|t| (now - t).num_seconds() < opts.duration)
    });
    if row
        .as_ref()
        .is_some_and(|r| r.real("attempts") as i64 > MAX_ATTEMPTS)
    {
        return Err(CoreError::TooManyRequests {
            retry_after: opts.duration.max(1) as u64,
        });
    }
    let hash = row.as_ref().map(|r| r.text("password"));
    let ok = app.verify_password(password.to_owned(), hash).await;
    let Some(row) = row.filter(|_| ok) else {
        return Err(CoreError::bad_request(INVALID));
    };
    let record = find(app, &col, "id", &row.text("recordRef"), false)
        .await?
        .ok_or_else(|| CoreError::bad_request(INVALID))?;
    let mfa_on = col.auth.as_ref().is_some_and(|a| a.mfa.enabled);
    let verify_now = record.get("verified") != Some(&Value::Bool(true))
        && row
            .text("sentTo")
            .eq_ignore_ascii_case(rec_str(&record, "email"));
    let (col2, otp_row, rec_id2) = (col.clone(), row.text("id"), rec_id(&record));
    let record = app
        .store
        .write(move |c: &mut dyn Conn| -> Result<_, CoreError> {
            let mut del = Sql::new(c.dialect());
            del.push("DELETE FROM \"_otps\" WHERE \"id\" = ")
                .push_param(otp_row);
            c.execute_sql(&del)?;
            if verify_now {
                // As PocketBase: proving the mailbox verifies it; without MFA, a password set
                // by whoever created the unverified account stops working.
                let mut up = Sql::new(c.dialect());
                up.push("UPDATE ")
                    .ident(&col2.name)
                    .push(" SET ")
                    .ident("verified")
                    .push(" = ")
                    .push_param(true);
                if !mfa_on {
                    up.push(", ")
                        .ident("password")
                        .push(" = ")
                        .push_param(format!("!{}", galley_types::ids::secret(30)));
                    up.push(", ")
                        .ident("tokenKey")
                        .push(" = ")
                        .push_param(galley_types::ids::secret(50));
                }
                up.push(" WHERE ")
                    .ident("id")
                    .push(" = ")
                    .push_param(rec_id2.as_str());
                c.execute_sql(&up)?;
            }
            super::find_by(c, &col2, "id", &rec_id2, false)
        })
        .await?
        .ok_or_else(|| CoreError::bad_request(INVALID))?;
    let col: Arc<Collection> = col;
    respond(app, &col, &record, requester, Some(Method::Otp), mfa_id).await
}
