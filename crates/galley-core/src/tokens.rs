//! The single-purpose JWTs of auth records, with PocketBase's claims, secrets and
//! durations: each kind is signed with `record.tokenKey + collection.<kind>Token.secret`, so
//! a token only works for its purpose, and rotating the tokenKey kills all of them.

use crate::error::CoreError;
use galley_types::collection::TokenConfig;
use galley_types::Collection;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Auth,
    Verification,
    PasswordReset,
    EmailChange,
    File,
}

impl Kind {
    pub fn type_claim(self) -> &'static str {
        match self {
            Kind::Auth => "auth",
            Kind::Verification => "verification",
            Kind::PasswordReset => "passwordReset",
            Kind::EmailChange => "emailChange",
            Kind::File => "file",
        }
    }

    pub fn config(self, col: &Collection) -> Option<&TokenConfig> {
        let a = col.auth.as_ref()?;
        Some(match self {
            Kind::Auth => &a.auth_token,
            Kind::Verification => &a.verification_token,
            Kind::PasswordReset => &a.password_reset_token,
            Kind::EmailChange => &a.email_change_token,
            Kind::File => &a.file_token,
        })
    }
}

fn secret(kind: Kind, col: &Collection, record: &Map<String, Value>) -> Result<String, CoreError> {
    let cfg = kind
        .config(col)
        .ok_or_else(|| CoreError::Internal("not an auth collection".into()))?;
    let key = record
        .get("tokenKey")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok(format!("{key}{}", cfg.secret))
}

/// Signs a token of `kind` for `record`; `extra` claims are added (e.g. `email`), and
/// `duration` overrides the collection's (impersonation).
pub fn issue(
    kind: Kind,
    col: &Collection,
    record: &Map<String, Value>,
    extra: Map<String, Value>,
    duration: Option<i64>,
) -> Result<String, CoreError> {
    let cfg = kind
        .config(col)
        .ok_or_else(|| CoreError::Internal("not an auth collection".into()))?;
    let exp = chrono::Utc::now().timestamp() + duration.filter(|d| *d > 0).unwrap_or(cfg.duration);
    let mut claims = Map::new();
    claims.insert("collectionId".into(), json!(col.id));
    claims.insert("exp".into(), json!(exp));
    claims.insert(
        "id".into(),
        record.get("id").cloned().unwrap_or(Value::Null),
    );
    claims.insert("type".into(), json!(kind.type_claim()));
    claims.extend(extra);
    Ok(galley_auth::jwt::sign(&claims, &secret(kind, col, record)?))
}

/// The `id` and `collectionId` of a token of `kind`, before any signature check.
pub fn unverified_target(token: &str, kind: Kind) -> Option<(String, String)> {
    let claims = galley_auth::jwt::unverified_claims(token).ok()?;
    if claims.get("type").and_then(Value::as_str) != Some(kind.type_claim()) {
        return None;
    }
    let id = claims.get("id").and_then(Value::as_str)?.to_owned();
    let col = claims
        .get("collectionId")
        .and_then(Value::as_str)?
        .to_owned();
    Some((id, col))
}

/// The auth collection a token names (any kind), before any signature check: for a page to
/// pick the flow that will verify the token.
pub fn unverified_auth_collection(
    schema: &galley_types::Schema,
    token: &str,
) -> Option<std::sync::Arc<Collection>> {
    let claims = galley_auth::jwt::unverified_claims(token).ok()?;
    let id = claims.get("collectionId").and_then(Value::as_str)?;
    schema.by_id(id).filter(|c| c.is_auth()).cloned()
}

/// Verifies `token` as a `kind` token of `record` (signature, expiry, type, ids).
pub fn verify(
    token: &str,
    kind: Kind,
    col: &Collection,
    record: &Map<String, Value>,
) -> Option<Map<String, Value>> {
    let claims = galley_auth::jwt::verify(
        token,
        &secret(kind, col, record).ok()?,
        chrono::Utc::now().timestamp(),
    )
    .ok()?;
    let same = |k: &str, v: Option<&Value>| claims.get(k).is_some() && claims.get(k) == v;
    (claims.get("type").and_then(Value::as_str) == Some(kind.type_claim())
        && same("id", record.get("id"))
        && claims.get("collectionId").and_then(Value::as_str) == Some(col.id.as_str()))
    .then_some(claims)
}
