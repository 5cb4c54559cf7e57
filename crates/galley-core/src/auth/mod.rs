//! Auth flows of auth collections (superusers included): password, OTP and MFA logins,
//! refresh and impersonation, verification, password reset and email change, the mailer
//! and the rate limits. The record side of auth collections (manage access, tokenKey
//! rotation) is in [`records`]; the options of a submitted collection in [`options`].
//!
//! Every flow that takes an email or identity does the same work whether it is known or
//! not (a dummy hash, the same reads) and sends mail on a spawned task, so neither the
//! answer nor its timing tells whether an account exists (DESIGN §16).

pub mod alert;
pub mod flows;
pub mod mfa;
pub mod oauth2;
pub mod options;
pub mod otp;
pub mod records;

use crate::app::App;
use crate::context::{Caller, RequestMeta};
use crate::error::CoreError;
use crate::rows::{self as output, find_by, rec_id, rec_str};
use crate::rules::RuleCtx;
use crate::tokens;
use galley_sql::Sql;
use galley_store::{Conn, ConnExt};
use galley_types::Collection;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Where a login comes from (auth alerts compare it with the record's recent origins).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: String,
    pub user_agent: String,
}

/// A successful login or refresh: the token, and the record as its owner sees it (after
/// OAuth2, also what the provider said of the user).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuthResult {
    pub record: Value,
    pub token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

impl AuthResult {
    pub fn new(record: Value, token: String) -> Self {
        AuthResult {
            record,
            token,
            meta: None,
        }
    }

    /// The id of the record that signed in.
    pub fn record_id(&self) -> &str {
        self.record
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// How a record proved who it is (MFA needs two different ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Password,
    Otp,
    OAuth2,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::Otp => "otp",
            Method::OAuth2 => "oauth2",
        }
    }
}

pub const INVALID_DATA: &str = "An error occurred while validating the submitted data.";

/// A 400 with one field error, PocketBase's shape for form errors.
pub(crate) fn field_error(field: &str, code: &str, message: &str) -> CoreError {
    CoreError::BadRequest {
        message: INVALID_DATA.into(),
        data: json!({field: {"code": code, "message": message}}),
    }
}

pub fn auth_collection(app: &App, name: &str) -> Result<Arc<Collection>, CoreError> {
    app.schema()
        .find(name)
        .filter(|c| c.is_auth())
        .cloned()
        .ok_or_else(|| CoreError::NotFound("Missing or invalid auth collection context.".into()))
}

pub(crate) async fn find(
    app: &App,
    col: &Arc<Collection>,
    field: &str,
    value: &str,
    ci: bool,
) -> Result<Option<Map<String, Value>>, CoreError> {
    let (col, field, value) = (col.clone(), field.to_owned(), value.to_owned());
    app.store
        .read(move |c: &mut dyn Conn| find_by(c, &col, &field, &value, ci))
        .await
}

/// Does `rule` (evaluated with the record itself as `@request.auth`) hold for `record`?
/// `None` never holds, `""` always does.
pub(crate) async fn record_rule_holds(
    app: &App,
    col: &Arc<Collection>,
    record: &Map<String, Value>,
    rule: Option<String>,
) -> Result<bool, CoreError> {
    let Some(rule) = rule else { return Ok(false) };
    if rule.trim().is_empty() {
        return Ok(true);
    }
    let (schema, col2, record2) = (app.schema(), col.clone(), record.clone());
    app.store
        .read(move |c: &mut dyn Conn| -> Result<bool, CoreError> {
            let caller = Caller::Record {
                collection: col2.clone(),
                record: record2.clone(),
            };
            let meta = RequestMeta {
                method: "POST".into(),
                context: "default".into(),
                ..Default::default()
            };
            let rctx = RuleCtx::new(&schema, &col2, &caller, &meta, c.dialect());
            let access = rctx.access(&Some(rule))?;
            crate::rules::record_satisfies(c, &col2, &rec_id(&record2), access)
        })
        .await
}

/// The auth response after a successful first (or second) factor: the collection's
/// `authRule`, then MFA when enabled, then a token and the record as its owner sees it.
/// `method` is `None` for impersonation (no authRule for superusers, no MFA).
pub async fn respond(
    app: &App,
    col: &Arc<Collection>,
    record: &Map<String, Value>,
    requester: &Caller,
    method: Option<Method>,
    mfa_id: Option<&str>,
) -> Result<AuthResult, CoreError> {
    let auth = col
        .auth
        .clone()
        .ok_or_else(|| CoreError::Internal("auth options missing".into()))?;
    if !requester.is_superuser()
        && !record_rule_holds(app, col, record, auth.auth_rule.clone()).await?
    {
        return Err(CoreError::Forbidden(
            "The request doesn't satisfy the collection requirements to authenticate.".into(),
        ));
    }
    if let Some(m) = method {
        mfa::check(app, col, record, m, mfa_id).await?;
    }
    let token = tokens::issue(
        tokens::Kind::Auth,
        col,
        record,
        json!({"refreshable": method.is_some()})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        None,
    )?;
    let viewer = Caller::Record {
        collection: col.clone(),
        record: record.clone(),
    };
    Ok(AuthResult::new(
        output::present(col, record, &viewer),
        token,
    ))
}

/// `POST /api/collections/{c}/auth-with-password`.
pub async fn auth_with_password(
    app: &App,
    col_name: &str,
    identity: &str,
    password: &str,
    identity_field: Option<&str>,
    mfa_id: Option<&str>,
    requester: &Caller,
) -> Result<AuthResult, CoreError> {
    const FAILED: &str = "Failed to authenticate.";
    let col = auth_collection(app, col_name)?;
    let auth = col
        .auth
        .clone()
        .ok_or_else(|| CoreError::Internal("auth options missing".into()))?;
    if !auth.password_auth.enabled {
        return Err(CoreError::Forbidden(
            "The collection is not configured to allow password authentication.".into(),
        ));
    }
    let mut errors = galley_types::FieldErrors::new();
    if identity.is_empty() || identity.chars().count() > 255 {
        errors.add("identity", galley_types::FieldError::required());
    }
    if password.is_empty() || password.chars().count() > 255 {
        errors.add("password", galley_types::FieldError::required());
    }
    if !errors.is_empty() {
        return Err(CoreError::validation(INVALID_DATA, errors));
    }
    app.auth.limit_identity(requester, &col, identity)?;
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
    let hash = record.as_ref().map(|r| rec_str(r, "password").to_owned());
    // Unknown identities run a dummy verification so both cases take the same time.
    let ok = app.verify_password(password.to_owned(), hash.clone()).await;
    let Some(record) = record.filter(|_| ok) else {
        return Err(CoreError::bad_request(FAILED));
    };
    if let Some(h) = hash.filter(|h| galley_auth::password::needs_rehash(h)) {
        rehash(app, &col, &record, &h, password).await?;
    }
    respond(
        app,
        &col,
        &record,
        requester,
        Some(Method::Password),
        mfa_id,
    )
    .await
}

/// Replaces a bcrypt (PocketBase) hash by argon2id after a successful login. The tokenKey
/// stays, so sessions survive; the update only applies if the hash is still the old one.
async fn rehash(
    app: &App,
    col: &Collection,
    record: &Map<String, Value>,
    old: &str,
    password: &str,
) -> Result<(), CoreError> {
    let new = app.hash_password(password.to_owned()).await?;
    let (name, id, old) = (col.name.clone(), rec_id(record), old.to_owned());
    app.store
        .write(move |c: &mut dyn Conn| -> Result<(), CoreError> {
            let mut sql = Sql::new(c.dialect());
            sql.push("UPDATE ")
                .ident(&name)
                .push(" SET ")
                .ident("password")
                .push(" = ")
                .push_param(new);
            sql.push(" WHERE ")
                .ident("id")
                .push(" = ")
                .push_param(id)
                .push(" AND ")
                .ident("password")
                .push(" = ")
                .push_param(old);
            c.execute_sql(&sql)?;
            Ok(())
        })
        .await
}

/// `POST /api/collections/{c}/auth-refresh`: a new token for a refreshable one; a
/// non-refreshable (impersonation) token is echoed back.
pub async fn auth_refresh(
    app: &App,
    col_name: &str,
    caller: &Caller,
    token: &str,
) -> Result<AuthResult, CoreError> {
    let col = auth_collection(app, col_name)?;
    match caller {
        Caller::Guest => Err(CoreError::Unauthorized(
            "The request requires valid record authorization token.".into(),
        )),
        Caller::Record { collection, record } if collection.id == col.id => {
            let refreshable = galley_auth::jwt::unverified_claims(token)
                .ok()
                .and_then(|c| c.get("refreshable").and_then(Value::as_bool))
                .unwrap_or(false);
            if !refreshable {
                return Ok(AuthResult::new(
                    output::present(&col, record, caller),
                    token.to_owned(),
                ));
            }
            if !record_rule_holds(
                app,
                &col,
                record,
                col.auth.as_ref().and_then(|a| a.auth_rule.clone()),
            )
            .await?
            {
                return Err(CoreError::Forbidden(
                    "The request doesn't satisfy the collection requirements to authenticate."
                        .into(),
                ));
            }
            let token = tokens::issue(
                tokens::Kind::Auth,
                &col,
                record,
                json!({"refreshable": true})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                None,
            )?;
            Ok(AuthResult::new(
                output::present(&col, record, caller),
                token,
            ))
        }
        Caller::Record { collection, .. } => Err(CoreError::Forbidden(format!(
            "The request requires auth record from {} collection.",
            collection.name
        ))),
    }
}
