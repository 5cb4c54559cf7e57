//! `auth-methods`, impersonation, and the mailed-token flows: verification, password reset
//! and email change. Request endpoints answer 204 whether the email is known or not, after
//! the same reads and signing work, and mail on a background task.

use super::otp::check_email;
use super::{auth_collection, field_error, find, respond, INVALID_DATA};
use crate::app::App;
use crate::context::Caller;
use crate::error::CoreError;
use crate::identity::SUPERUSERS;
use crate::mail;
use crate::rows::{rec_id, rec_str};
use crate::tokens::{self, Kind};
use galley_sql::Sql;
use galley_store::{Conn, ConnExt};
use galley_types::{Collection, FieldError, FieldErrors};
use serde_json::{json, Map, Value};
use std::sync::Arc;

fn claims(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect()
}

fn invalid_token() -> CoreError {
    field_error(
        "token",
        "validation_invalid_token",
        "Invalid or expired token.",
    )
}

fn no_superusers(col: &Collection) -> Result<(), CoreError> {
    if col.name == SUPERUSERS {
        return Err(CoreError::bad_request(
            "All superusers are verified by default.",
        ));
    }
    Ok(())
}

/// `GET /api/collections/{c}/auth-methods`.
pub async fn auth_methods(app: &App, col_name: &str) -> Result<Value, CoreError> {
    let col = auth_collection(app, col_name)?;
    let a = col
        .auth
        .clone()
        .ok_or_else(|| CoreError::Internal("auth options missing".into()))?;
    let dur = |on: bool, d: i64| if on { d } else { 0 };
    let pw = a.password_auth.enabled;
    let fields = &a.password_auth.identity_fields;
    let providers = super::oauth2::provider_infos(app, &col).await;
    let oauth_on = super::oauth2::enabled(&col);
    Ok(json!({
        "password": {"identityFields": if pw { json!(fields) } else { json!([]) }, "enabled": pw},
        "oauth2": {"providers": providers, "enabled": oauth_on},
        "mfa": {"enabled": a.mfa.enabled, "duration": dur(a.mfa.enabled, a.mfa.duration)},
        "otp": {"enabled": a.otp.enabled, "duration": dur(a.otp.enabled, a.otp.duration)},
        "authProviders": if oauth_on { json!(providers) } else { json!([]) },
        "usernamePassword": pw && fields.iter().any(|f| f == "username"),
        "emailPassword": pw && fields.iter().any(|f| f == "email"),
    }))
}

/// `POST /api/collections/{c}/impersonate/{id}`: superusers only; a non-refreshable token.
pub async fn impersonate(
    app: &App,
    col_name: &str,
    id: &str,
    duration: Option<&Value>,
    caller: &Caller,
) -> Result<super::AuthResult, CoreError> {
    let col = auth_collection(app, col_name)?;
    match caller {
        Caller::Guest => {
            return Err(CoreError::Unauthorized(
                "The request requires valid record authorization token.".into(),
            ))
        }
        c if !c.is_superuser() => {
            return Err(CoreError::Forbidden(
                "The authorized record is not allowed to perform this action.".into(),
            ))
        }
        _ => {}
    }
    let duration = match duration {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_f64() {
            Some(d) if d >= 0.0 => d as i64,
            Some(_) => {
                return Err(CoreError::BadRequest {
                    message: INVALID_DATA.into(),
                    data: json!({"duration": {"code": "validation_min_greater_equal_than_required", "message": "Must be no less than 0.", "params": {"threshold": 0}}}),
                })
            }
            None => {
                return Err(CoreError::bad_request(
                    "Failed to load the submitted data due to invalid formatting.",
                ))
            }
        },
    };
    let record = find(app, &col, "id", id, false)
        .await?
        .ok_or_else(CoreError::not_found)?;
    let mut out = respond(app, &col, &record, caller, None, None).await?;
    // `respond` signs with the collection duration; impersonation may ask for another.
    let token = tokens::issue(
        Kind::Auth,
        &col,
        &record,
        claims(&[])
            .into_iter()
            .chain([("refreshable".to_owned(), json!(false))])
            .collect(),
        Some(duration),
    )?;
    out.token = token;
    Ok(out)
}

/// The email flows that must not tell whether an account exists (verification, password
/// reset): looks the email up and signs a `kind` token for the record, or for a throwaway
/// one when there is none, so both cases cost the same (DESIGN §16). Then mails the token
/// to an existing record that `wanted` accepts, at most once per resend window per record.
async fn mail_token_by_email(
    app: &App,
    col: &Arc<Collection>,
    email: &str,
    requester: &Caller,
    kind: Kind,
    template: impl FnOnce(
        &galley_types::collection::AuthOptions,
    ) -> &galley_types::collection::EmailTemplate,
    wanted: impl FnOnce(&Map<String, Value>) -> bool,
) -> Result<(), CoreError> {
    check_email("email", email)?;
    app.auth.limit_identity(requester, col, email)?;
    let record = find(app, col, "email", email, true).await?;
    let a = col
        .auth
        .as_ref()
        .ok_or_else(|| CoreError::Internal("auth options missing".into()))?;
    let target = record
        .clone()
        .unwrap_or_else(|| claims(&[("id", "x"), ("tokenKey", "x")]));
    let token = tokens::issue(
        kind,
        col,
        &target,
        claims(&[("email", rec_str(&target, "email"))]),
        None,
    )?;
    if let Some(r) = record.filter(|r| wanted(r)).filter(|r| {
        app.auth
            .may_resend(kind.type_claim(), &format!("{}:{}", col.id, rec_id(r)))
    }) {
        let settings = app.settings();
        let m = mail::render(
            template(a),
            &settings,
            rec_str(&r, "email"),
            &mail::Vars {
                token: &token,
                ..Default::default()
            },
        );
        app.send_mail(m).await?;
    }
    Ok(())
}

/// `POST /api/collections/{c}/request-verification`: always 204.
pub async fn request_verification(
    app: &App,
    col_name: &str,
    email: &str,
    requester: &Caller,
) -> Result<(), CoreError> {
    let col = auth_collection(app, col_name)?;
    no_superusers(&col)?;
    mail_token_by_email(
        app,
        &col,
        email,
        requester,
        Kind::Verification,
        |a| &a.verification_template,
        |r| r.get("verified") != Some(&Value::Bool(true)),
    )
    .await
}

/// Loads the record a token of `kind` names and verifies the token against it.
async fn token_record(
    app: &App,
    col: &Arc<Collection>,
    token: &str,
    kind: Kind,
) -> Result<(Map<String, Value>, Map<String, Value>), CoreError> {
    if token.is_empty() {
        return Err(field_error(
            "token",
            "validation_required",
            "Cannot be blank.",
        ));
    }
    let Some((id, col_id)) = tokens::unverified_target(token, kind) else {
        return Err(invalid_token());
    };
    if col_id != col.id {
        return Err(field_error(
            "token",
            "validation_token_collection_mismatch",
            "The provided token is for different auth collection.",
        ));
    }
    let record = find(app, col, "id", &id, false)
        .await?
        .ok_or_else(invalid_token)?;
    let claims = tokens::verify(token, kind, col, &record).ok_or_else(invalid_token)?;
    Ok((record, claims))
}

/// Sets `values` on one record (and `updated`, when the collection has it).
async fn update_record(
    app: &App,
    col: &Arc<Collection>,
    id: &str,
    values: Vec<(&'static str, galley_sql::SqlValue)>,
    fail: &'static str,
) -> Result<(), CoreError> {
    let (name, id, stamp) = (
        col.name.clone(),
        id.to_owned(),
        col.field("updated").is_some(),
    );
    app.store
        .write(move |c: &mut dyn Conn| -> Result<(), CoreError> {
            let mut sql = Sql::new(c.dialect());
            sql.push("UPDATE ").ident(&name).push(" SET ");
            for (i, (k, v)) in values.into_iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.ident(k).push(" = ").push_param(v);
            }
            if stamp {
                sql.push(", ").ident("updated").push(" = ").push_param(
                    galley_sql::SqlValue::Timestamp(galley_types::datetime::now()),
                );
            }
            sql.push(" WHERE ").ident("id").push(" = ").push_param(id);
            c.execute_sql(&sql).map_err(|e| match e {
                galley_store::StoreError::UniqueViolation { .. } => CoreError::bad_request(fail),
                other => other.into(),
            })?;
            Ok(())
        })
        .await
}

/// `POST /api/collections/{c}/confirm-verification`.
pub async fn confirm_verification(app: &App, col_name: &str, token: &str) -> Result<(), CoreError> {
    let col = auth_collection(app, col_name)?;
    no_superusers(&col)?;
    if token.is_empty() {
        return Err(field_error(
            "token",
            "validation_required",
            "Cannot be blank.",
        ));
    }
    let email_claim = galley_auth::jwt::unverified_claims(token)
        .ok()
        .and_then(|c| c.get("email").and_then(Value::as_str).map(str::to_owned));
    if email_claim.is_none() {
        return Err(field_error(
            "token",
            "validation_invalid_token_claims",
            "Missing email token claim.",
        ));
    }
    let (record, claims) = token_record(app, &col, token, Kind::Verification).await?;
    if claims.get("email").and_then(Value::as_str) != Some(rec_str(&record, "email")) {
        return Err(field_error(
            "token",
            "validation_token_email_mismatch",
            "The token email doesn't match with the current auth record email.",
        ));
    }
    if record.get("verified") == Some(&Value::Bool(true)) {
        return Ok(());
    }
    update_record(
        app,
        &col,
        &rec_id(&record),
        vec![("verified", true.into())],
        "Failed to confirm verification.",
    )
    .await
}

/// `POST /api/collections/{c}/request-password-reset`: always 204.
pub async fn request_password_reset(
    app: &App,
    col_name: &str,
    email: &str,
    requester: &Caller,
) -> Result<(), CoreError> {
    let col = auth_collection(app, col_name)?;
    mail_token_by_email(
        app,
        &col,
        email,
        requester,
        Kind::PasswordReset,
        |a| &a.reset_password_template,
        |_| true,
    )
    .await
}

fn password_errors(col: &Collection, password: &str, confirm: &str, errors: &mut FieldErrors) {
    let max = 255;
    let min = col
        .field("password")
        .and_then(|f| match &f.kind {
            galley_types::FieldKind::Password(o) => Some(o.min.max(1)),
            _ => None,
        })
        .unwrap_or(8);
    let n = password.chars().count();
    if password.is_empty() {
        errors.add("password", FieldError::required());
    } else if n < min as usize || n > max {
        errors.0.insert(
            "password".into(),
            FieldError::new(
                "validation_length_out_of_range",
                format!("The length must be between {min} and {max}."),
            )
            .with_params(json!({"max": max, "min": min})),
        );
    }
    if confirm != password {
        errors.add(
            "passwordConfirm",
            FieldError::new("validation_values_mismatch", "Values don't match."),
        );
    }
}

/// `POST /api/collections/{c}/confirm-password-reset`: sets the password, verifies the
/// email the token was sent to, and rotates the tokenKey (old tokens and this one die).
pub async fn confirm_password_reset(
    app: &App,
    col_name: &str,
    token: &str,
    password: &str,
    confirm: &str,
) -> Result<(), CoreError> {
    let col = auth_collection(app, col_name)?;
    let mut errors = FieldErrors::new();
    password_errors(&col, password, confirm, &mut errors);
    let found = token_record(app, &col, token, Kind::PasswordReset).await;
    if let Err(CoreError::BadRequest { data, .. }) = &found {
        let text = |k: &str| {
            data.pointer(&format!("/token/{k}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        errors.add("token", FieldError::new(&text("code"), text("message")));
    }
    if !errors.is_empty() {
        return Err(CoreError::validation(INVALID_DATA, errors));
    }
    let (record, claims) = found?;
    let hash = app.hash_password(password.to_owned()).await?;
    let mut values: Vec<(&'static str, galley_sql::SqlValue)> = vec![
        ("password", hash.into()),
        ("tokenKey", galley_types::ids::secret(50).into()),
    ];
    if claims.get("email").and_then(Value::as_str) == Some(rec_str(&record, "email"))
        && col.name != SUPERUSERS
    {
        values.push(("verified", true.into()));
    }
    update_record(
        app,
        &col,
        &rec_id(&record),
        values,
        "Failed to reset password.",
    )
    .await
}

/// `POST /api/collections/{c}/request-email-change`: the caller's own record; the token
/// goes to the new address.
pub async fn request_email_change(
    app: &App,
    col_name: &str,
    new_email: &str,
    caller: &Caller,
) -> Result<(), CoreError> {
    let col = auth_collection(app, col_name)?;
    let Caller::Record { collection, record } = caller else {
        return Err(CoreError::Unauthorized(
            "The request requires valid record authorization token.".into(),
        ));
    };
    if collection.id != col.id {
        return Err(CoreError::Forbidden(format!(
            "The request requires auth record from {} collection.",
            col.name
        )));
    }
    check_email("newEmail", new_email)?;
    if new_email.eq_ignore_ascii_case(rec_str(record, "email")) {
        return Err(field_error(
            "newEmail",
            "validation_not_in_invalid",
            "Must not be in list.",
        ));
    }
    if find(app, &col, "email", new_email, true).await?.is_some() {
        return Err(field_error(
            "newEmail",
            "validation_invalid_new_email",
            "Invalid new email address.",
        ));
    }
    let a = col
        .auth
        .clone()
        .ok_or_else(|| CoreError::Internal("auth options missing".into()))?;
    let token = tokens::issue(
        Kind::EmailChange,
        &col,
        record,
        claims(&[("email", rec_str(record, "email")), ("newEmail", new_email)]),
        None,
    )?;
    let settings = app.settings();
    let m = mail::render(
        &a.confirm_email_change_template,
        &settings,
        new_email,
        &mail::Vars {
            token: &token,
            ..Default::default()
        },
    );
    app.send_mail(m).await?;
    Ok(())
}

/// `POST /api/collections/{c}/confirm-email-change`: needs the account password; sets the
/// email, marks it verified, rotates the tokenKey.
pub async fn confirm_email_change(
    app: &App,
    col_name: &str,
    token: &str,
    password: &str,
) -> Result<(), CoreError> {
    let col = auth_collection(app, col_name)?;
    let found = token_record(app, &col, token, Kind::EmailChange).await;
    let mut errors = FieldErrors::new();
    let hash = found
        .as_ref()
        .ok()
        .map(|(r, _)| rec_str(r, "password").to_owned());
    let password_ok = !password.is_empty() && app.verify_password(password.to_owned(), hash).await;
    if !password_ok {
        errors.add(
            "password",
            FieldError::new(
                "validation_invalid_password",
                "Missing or invalid auth record password.",
            ),
        );
    }
    let new_email = found
        .as_ref()
        .ok()
        .and_then(|(_, c)| c.get("newEmail").and_then(Value::as_str).map(str::to_owned));
    match &found {
        Err(_) => errors.add(
            "token",
            FieldError::new("validation_invalid_token", "Invalid or expired token."),
        ),
        Ok((r, c)) if c.get("email").and_then(Value::as_str) != Some(rec_str(r, "email")) => errors
            .add(
                "token",
                FieldError::new(
                    "validation_token_email_mismatch",
                    "The token email doesn't match with the current auth record email.",
                ),
            ),
        Ok(_)
            if new_email
                .as_deref()
                .is_none_or(|e| !super::otp::is_email(e)) =>
        {
            errors.add(
                "token",
                FieldError::new(
                    "validation_invalid_token_payload",
                    "Invalid token payload - newEmail must be set.",
                ),
            )
        }
        Ok(_) => {}
    }
    if !errors.is_empty() {
        return Err(CoreError::validation(INVALID_DATA, errors));
    }
    let (record, _) = found?;
    let new_email = new_email.unwrap_or_default();
    if find(app, &col, "email", &new_email, true)
        .await?
        .is_some_and(|r| rec_id(&r) != rec_id(&record))
    {
        return Err(field_error(
            "token",
            "validation_invalid_new_email",
            "Invalid new email address.",
        ));
    }
    let mut values: Vec<(&'static str, galley_sql::SqlValue)> = vec![
        ("email", new_email.into()),
        ("tokenKey", galley_types::ids::secret(50).into()),
    ];
    if col.name != SUPERUSERS {
        values.push(("verified", true.into()));
    }
    update_record(
        app,
        &col,
        &rec_id(&record),
        values,
        "Failed to confirm email change.",
    )
    .await
}

/// `POST /api/settings/test/email`: a template sent to `email`, with a dummy token or code.
pub async fn test_email(
    app: &App,
    email: &str,
    template: &str,
    col_name: Option<&str>,
) -> Result<(), CoreError> {
    check_email("email", email)?;
    let col = auth_collection(
        app,
        col_name.filter(|s| !s.is_empty()).unwrap_or(SUPERUSERS),
    )
    .map_err(|_| {
        field_error(
            "collection",
            "validation_invalid_value",
            "Missing or invalid auth collection.",
        )
    })?;
    let a = col
        .auth
        .clone()
        .ok_or_else(|| CoreError::Internal("auth options missing".into()))?;
    let t = match template {
        "verification" => a.verification_template,
        "password-reset" => a.reset_password_template,
        "email-change" => a.confirm_email_change_template,
        "otp" => a.otp.email_template,
        "login-alert" => a.auth_alert.email_template,
        "" => {
            return Err(field_error(
                "template",
                "validation_required",
                "Cannot be blank.",
            ))
        }
        _ => {
            return Err(field_error(
                "template",
                "validation_in_invalid",
                "Must be a valid value.",
            ))
        }
    };
    let settings = app.settings();
    let vars = mail::Vars {
        token: "__TEST_TOKEN__",
        otp: "123456",
        alert_info: "Test alert info",
    };
    app.send_mail(mail::render(&t, &settings, email, &vars))
        .await?;
    Ok(())
}
