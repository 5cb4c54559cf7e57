//! The auth options of a submitted collection body (`oauth2`, `mfa`, `otp`, `authAlert`,
//! the mail templates) and the indexes every auth collection must have.

use galley_types::collection::auth_indexes;
use galley_types::index::IndexDef;
use galley_types::AuthOptions;
use serde_json::{json, Map, Value};

fn invalid(errors: &mut Map<String, Value>, key: &str, message: &str) {
    errors.insert(
        key.into(),
        json!({"code": "validation_invalid_value", "message": message}),
    );
}

fn merged<T: serde::Serialize + serde::de::DeserializeOwned>(
    current: &T,
    patch: &Value,
) -> Option<T> {
    let mut v = serde_json::to_value(current).ok()?;
    crate::settings::merge(&mut v, patch);
    serde_json::from_value(v).ok()
}

/// Applies the submitted options to `a`, recording errors under their keys.
pub fn apply(a: &mut AuthOptions, body: &Map<String, Value>, errors: &mut Map<String, Value>) {
    if let Some(v) = body.get("authAlert") {
        match merged(&a.auth_alert, v) {
            Some(x) => a.auth_alert = x,
            None => invalid(errors, "authAlert", "Invalid auth alert options."),
        }
    }
    if let Some(v) = body.get("mfa") {
        match merged(&a.mfa, v) {
            Some(x) if (10..=86400).contains(&x.duration) => a.mfa = x,
            Some(_) => {
                errors.insert("mfa".into(), json!({"duration": {"code": "validation_invalid_value", "message": "Must be between 10 and 86400 seconds."}}));
            }
            None => invalid(errors, "mfa", "Invalid MFA options."),
        }
        if !a.mfa.rule.is_empty() && galley_expr::parse(&a.mfa.rule).is_err() {
            errors.insert(
                "mfa".into(),
                json!({"rule": {"code": "validation_invalid_rule", "message": "Invalid rule."}}),
            );
        }
    }
    if let Some(v) = body.get("otp") {
        match merged(&a.otp, v) {
            Some(x) if (10..=86400).contains(&x.duration) && (4..=20).contains(&x.length) => a.otp = x,
            Some(_) => invalid(errors, "otp", "The duration must be between 10 and 86400 seconds and the length between 4 and 20."),
            None => invalid(errors, "otp", "Invalid OTP options."),
        }
    }
    if let Some(v) = body.get("oauth2") {
        let old_providers = a.oauth2.providers.clone();
        let mut patch = v.clone();
        // A submitted providers list replaces the old one, keeping secrets not resent.
        if let Some(Value::Array(ps)) = patch.get_mut("providers") {
            for p in ps.iter_mut().filter_map(Value::as_object_mut) {
                if p.get("clientSecret")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .is_empty()
                {
                    let old = old_providers
                        .iter()
                        .find(|o| o.get("name") == p.get("name"));
                    if let Some(sec) = old.and_then(|o| o.get("clientSecret")) {
                        p.insert("clientSecret".into(), sec.clone());
                    }
                }
            }
        }
        let mut cur = serde_json::to_value(&a.oauth2).unwrap_or(Value::Null);
        if let (Some(o), Some(ps)) = (cur.as_object_mut(), patch.get("providers")) {
            o.insert("providers".into(), ps.clone());
        }
        crate::settings::merge(&mut cur, &patch);
        match serde_json::from_value::<galley_types::collection::OAuth2Options>(cur) {
            Ok(mut x) => match normalize_providers(&x.providers) {
                Ok(ps) => {
                    x.providers = ps;
                    a.oauth2 = x;
                }
                Err(e) => {
                    errors.insert("oauth2".into(), json!({"providers": e}));
                }
            },
            Err(_) => invalid(errors, "oauth2", "Invalid OAuth2 options."),
        }
    }
    for key in [
        "verificationTemplate",
        "resetPasswordTemplate",
        "confirmEmailChangeTemplate",
    ] {
        let Some(v) = body.get(key) else { continue };
        let slot = match key {
            "verificationTemplate" => &mut a.verification_template,
            "resetPasswordTemplate" => &mut a.reset_password_template,
            _ => &mut a.confirm_email_change_template,
        };
        match merged(slot, v) {
            Some(t) if !t.subject.trim().is_empty() && !t.body.trim().is_empty() => *slot = t,
            _ => invalid(errors, key, "The subject and body are required."),
        }
    }
}

/// What `_superusers` may not have, as PocketBase: OAuth2 is refused (a provider vouching
/// for an address would sign a superuser in, or up), password sign-in stays on, and OTP
/// only comes with MFA (an inbox alone is not a superuser login).
pub fn superusers(a: &mut AuthOptions, errors: &mut Map<String, Value>) {
    if a.oauth2.enabled {
        errors.insert(
            "oauth2".into(),
            json!({"enabled": {"code": "validation_invalid_value", "message": "OAuth2 cannot be enabled for superusers."}}),
        );
    }
    a.password_auth.enabled = true;
    if a.otp.enabled {
        a.mfa.enabled = true;
    }
}

/// Providers in PocketBase's stored shape (`pkce` null unless set, `extra` an object), or
/// the per-index errors: a name (unique) and a client id are required. Names outside the
/// presets are custom OIDC providers (endpoints or `extra.issuer`/`extra.discoveryURL`).
fn normalize_providers(ps: &[Value]) -> Result<Vec<Value>, Value> {
    let mut out = Vec::with_capacity(ps.len());
    let mut errs = Map::new();
    let mut seen = std::collections::HashSet::new();
    for (i, p) in ps.iter().enumerate() {
        let empty = Map::new();
        let o = p.as_object().unwrap_or(&empty);
        let s = |k: &str| {
            o.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        let mut e = Map::new();
        let name = s("name");
        if name.is_empty() {
            e.insert(
                "name".into(),
                json!({"code": "validation_required", "message": "Cannot be blank."}),
            );
        } else if !seen.insert(name.clone()) {
            e.insert("name".into(), json!({"code": "validation_duplicated_provider", "message": "The provider is already registered."}));
        }
        if s("clientId").is_empty() {
            e.insert(
                "clientId".into(),
                json!({"code": "validation_required", "message": "Cannot be blank."}),
            );
        }
        if !e.is_empty() {
            errs.insert(i.to_string(), Value::Object(e));
            continue;
        }
        out.push(json!({
            "pkce": o.get("pkce").and_then(Value::as_bool),
            "name": name,
            "clientId": s("clientId"),
            "clientSecret": s("clientSecret"),
            "authURL": s("authURL"),
            "tokenURL": s("tokenURL"),
            "userInfoURL": s("userInfoURL"),
            "displayName": s("displayName"),
            "extra": o.get("extra").filter(|v| v.is_object()).cloned().unwrap_or_else(|| json!({})),
        }));
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(Value::Object(errs))
    }
}

/// Adds PocketBase's unique indexes on `tokenKey` and `email` unless a unique single-column
/// index on that field is already there.
pub fn ensure_indexes(id: &str, name: &str, indexes: &mut Vec<String>) {
    let has_unique = |indexes: &[String], col: &str| {
        indexes
            .iter()
            .filter_map(|s| IndexDef::parse(s).ok())
            .any(|i| i.unique && i.columns.len() == 1 && i.columns[0].name == col)
    };
    let defaults = auth_indexes(id, name);
    for (col, def) in [("tokenKey", &defaults[0]), ("email", &defaults[1])] {
        if !has_unique(indexes, col) {
            indexes.push(def.clone());
        }
    }
}
