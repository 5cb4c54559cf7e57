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
pub mod mail;
pub mod mfa;
pub mod oauth2;
pub mod options;
pub mod otp;
pub mod providers;
pub mod ratelimit;
pub mod records;
pub mod tokens;

use crate::caller::Caller;
use crate::error::CoreError;
use crate::records::{output, RequestMeta};
use crate::rules::RuleCtx;
use crate::{App, AppConfig};
use galley_sql::Sql;
use galley_store::{Conn, ConnExt};
use galley_types::Collection;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Process-wide state of the auth flows.
pub struct AuthState {
    pub mailer: mail::Mailer,
    pub limits: ratelimit::AuthLimits,
    limiter: ratelimit::Limiter,
    /// Mirrors `settings.rateLimits.enabled`.
    limiting: std::sync::atomic::AtomicBool,
    /// OAuth2/OIDC outgoing HTTP and the discovery cache.
    pub oauth: providers::Client,
    /// Names that Apple posts once to the OAuth2 redirect, by authorization code, until
    /// the code is exchanged (at most a minute).
    pub redirect_names:
        std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, String)>>,
    /// When a verification or reset mail last went to a record (the resend throttle).
    resent: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// Verification and password-reset mails to one record: at most one per this window, as
/// PocketBase (later requests answer 204 without sending).
pub const RESEND_WINDOW: std::time::Duration = std::time::Duration::from_secs(120);

/// Where a login comes from (auth alerts compare it with the record's recent origins).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: String,
    pub user_agent: String,
}

impl AuthState {
    pub fn new(config: &AppConfig) -> Self {
        AuthState {
            mailer: Default::default(),
            limits: config.auth_limits,
            limiter: Default::default(),
            limiting: std::sync::atomic::AtomicBool::new(true),
            oauth: Default::default(),
            redirect_names: Default::default(),
            resent: Default::default(),
        }
    }

    /// True when mail `kind` may go to `record_id` now (and starts its window); false
    /// within [`RESEND_WINDOW`] of the last one.
    pub fn may_resend(&self, kind: &str, record_id: &str) -> bool {
        let Ok(mut m) = self.resent.lock() else {
            return true;
        };
        m.retain(|_, at| at.elapsed() < RESEND_WINDOW);
        let key = format!("{kind}:{record_id}");
        if m.contains_key(&key) {
            return false;
        }
        m.insert(key, std::time::Instant::now());
        true
    }

    /// Follows the `rateLimits.enabled` setting.
    pub fn set_limiting(&self, on: bool) {
        self.limiting
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn limiting(&self) -> bool {
        self.limiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts an auth request from client `ip` (superusers are not limited).
    pub fn limit_ip(&self, caller: &Caller, ip: &str) -> Result<(), CoreError> {
        if caller.is_superuser() || !self.limiting() {
            return Ok(());
        }
        self.limiter
            .hit(&format!("ip:{ip}"), self.limits.per_ip, self.limits.window)
    }

    /// Counts an auth request about `identity` (an email, identity or OTP id) of `col`.
    pub fn limit_identity(
        &self,
        caller: &Caller,
        col: &Collection,
        identity: &str,
    ) -> Result<(), CoreError> {
        if caller.is_superuser() || identity.is_empty() || !self.limiting() {
            return Ok(());
        }
        let key = format!("id:{}:{}", col.id, identity.to_lowercase());
        self.limiter
            .hit(&key, self.limits.per_identity, self.limits.window)
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

/// One record of `col` by a field's value (`ci`: case-insensitively).
pub(crate) fn find_by(
    c: &mut dyn Conn,
    col: &Collection,
    field: &str,
    value: &str,
    ci: bool,
) -> Result<Option<Map<String, Value>>, CoreError> {
    let d = c.dialect();
    let mut sql = Sql::new(d);
    sql.push("SELECT * FROM ").ident(&col.name).push(" WHERE ");
    if ci {
        sql.push(&d.lower(&d.quote(field)))
            .push(" = ")
            .push_param_with(value, |p| d.lower(p));
    } else {
        sql.ident(field).push(" = ").push_param(value);
    }
    sql.push(" LIMIT 1");
    Ok(c.query_sql(&sql)?
        .into_iter()
        .next()
        .map(|r| output::from_row(col, r)))
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

pub(crate) fn rec_id(r: &Map<String, Value>) -> String {
    r.get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

pub(crate) fn rec_str<'a>(r: &'a Map<String, Value>, k: &str) -> &'a str {
    r.get(k).and_then(Value::as_str).unwrap_or_default()
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
) -> Result<Value, CoreError> {
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
    Ok(json!({"record": output::present(col, record, &viewer), "token": token}))
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
) -> Result<Value, CoreError> {
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
) -> Result<Value, CoreError> {
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
                return Ok(
                    json!({"record": output::present(&col, record, caller), "token": token}),
                );
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
            Ok(json!({"record": output::present(&col, record, caller), "token": token}))
        }
        Caller::Record { collection, .. } => Err(CoreError::Forbidden(format!(
            "The request requires auth record from {} collection.",
            collection.name
        ))),
    }
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
