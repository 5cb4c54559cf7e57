//! Runtime settings stored in `_params` (row `settings`), PocketBase's shape.

use crate::error::CoreError;
use galley_files::Storage;
use galley_sql::Sql;
use galley_store::{Conn, ConnExt};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct Settings(pub Value);

impl Default for Settings {
    fn default() -> Self {
        Settings(json!({
            "superuserIPs": [],
            "smtp": {"enabled": false, "port": 587, "host": "smtp.example.com", "username": "", "authMethod": "", "tls": false, "localName": ""},
            "backups": {"cron": "", "cronMaxKeep": 3, "s3": {"enabled": false, "bucket": "", "region": "", "endpoint": "", "accessKey": "", "forcePathStyle": false}},
            "s3": {"enabled": false, "bucket": "", "region": "", "endpoint": "", "accessKey": "", "forcePathStyle": false},
            "meta": {"accentColor": "#1055c9", "appName": "Galley", "appURL": "http://localhost:8090", "senderName": "Support", "senderAddress": "support@example.com", "hideControls": false},
            // Galley limits auth requests by default (DESIGN §16); a superuser may switch it off.
            "rateLimits": {"rules": [], "excludedIPs": [], "enabled": true},
            "trustedProxy": {"headers": [], "useLeftmostIP": false},
            "batch": {"enabled": false, "maxRequests": 50, "timeout": 3, "maxBodySize": 0},
            "logs": {"maxDataSize": 0, "maxDays": 5, "minLevel": 0, "logIP": true, "logAuthId": false},
            // Galley's own: PocketBase has no connection limit; memory per client is bounded
            // by its queue, so the count bounds the whole.
            "realtime": {
                "maxConnections": galley_realtime::MAX_CONNECTIONS,
                "maxSubscriptionsPerClient": galley_realtime::MAX_SUBSCRIPTIONS
            }
        }))
    }
}

impl Settings {
    pub fn batch_enabled(&self) -> bool {
        self.0
            .pointer("/batch/enabled")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
    /// Whether the auth endpoints are rate limited (`rateLimits.enabled`, on by default).
    pub fn rate_limits_enabled(&self) -> bool {
        self.0
            .pointer("/rateLimits/enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }
    pub fn batch_max_requests(&self) -> usize {
        self.0
            .pointer("/batch/maxRequests")
            .and_then(Value::as_u64)
            .unwrap_or(50) as usize
    }
    /// `realtime.maxConnections` and `realtime.maxSubscriptionsPerClient` (validated on update).
    pub fn realtime_limits(&self) -> galley_realtime::Limits {
        let get = |k: &str, default: usize| {
            self.0
                .pointer(k)
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(default)
        };
        galley_realtime::Limits {
            max_connections: get("/realtime/maxConnections", galley_realtime::MAX_CONNECTIONS),
            max_subscriptions: get(
                "/realtime/maxSubscriptionsPerClient",
                galley_realtime::MAX_SUBSCRIPTIONS,
            ),
        }
    }
    /// The settings as sent to clients (write-only secrets removed).
    pub fn public_json(&self) -> Value {
        let mut v = self.0.clone();
        for p in ["/smtp", "/s3", "/backups/s3"] {
            if let Some(Value::Object(o)) = v.pointer_mut(p) {
                o.remove("password");
                o.remove("secret");
            }
        }
        v
    }
}

/// Most realtime connections a setting may allow: far above what one process serves, low
/// enough that the count stays a real bound.
const MAX_CONNECTIONS_SETTING: i64 = 1_000_000;

pub(crate) fn realtime_errors(realtime: Option<&Value>) -> serde_json::Map<String, Value> {
    let mut errors = serde_json::Map::new();
    let mut check = |key: &str, max: i64| match realtime
        .and_then(|r| r.get(key))
        .and_then(Value::as_i64)
    {
        Some(n) if (1..=max).contains(&n) => {}
        _ => {
            errors.insert(
                    key.into(),
                    json!({"code": "validation_invalid_value", "message": format!("Must be a whole number between 1 and {max}.")}),
                );
        }
    };
    check("maxConnections", MAX_CONNECTIONS_SETTING);
    check(
        "maxSubscriptionsPerClient",
        galley_realtime::MAX_SUBSCRIPTIONS as i64,
    );
    errors
}

/// Recursively merges `patch` into `base` (objects merge, everything else replaces).
pub(crate) fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

pub fn load(c: &mut dyn Conn) -> Result<Settings, CoreError> {
    let mut sql = Sql::new(c.dialect());
    sql.push("SELECT \"value\" FROM \"_params\" WHERE \"id\" = ")
        .push_param("settings");
    let mut s = Settings::default();
    if let Some(row) = c.query_sql(&sql)?.into_iter().next() {
        merge(&mut s.0, &row.json("value"));
    }
    Ok(s)
}

/// Builds the storage the settings ask for: S3 when `s3.enabled`, else the data dir.
pub fn storage_from_settings(
    settings: &Settings,
    data_dir: &std::path::Path,
) -> Result<Storage, CoreError> {
    let s3 = settings.0.get("s3").cloned().unwrap_or(Value::Null);
    let backend = if s3.get("enabled").and_then(Value::as_bool) == Some(true) {
        let text = |k: &str| {
            s3.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        galley_files::Backend::S3(galley_files::S3Config {
            bucket: text("bucket"),
            region: text("region"),
            endpoint: text("endpoint"),
            access_key: text("accessKey"),
            secret: text("secret"),
            force_path_style: s3.get("forcePathStyle").and_then(Value::as_bool) == Some(true),
        })
    } else {
        galley_files::Backend::Local(data_dir.join("storage"))
    };
    Storage::open(&backend).map_err(|e| CoreError::bad_request(format!("File storage: {e}")))
}
