//! Runtime settings stored in `_params` (row `settings`), PocketBase's shape.

use crate::error::CoreError;
use crate::App;
use galley_sql::{Sql, SqlValue};
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

fn realtime_errors(realtime: Option<&Value>) -> serde_json::Map<String, Value> {
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

/// Applies a partial update, validating the few settings Galley acts on.
pub async fn update(app: &App, patch: Value) -> Result<Settings, CoreError> {
    if !patch.is_object() {
        return Err(CoreError::bad_request(
            "Failed to load the submitted data due to invalid formatting.",
        ));
    }
    let mut next = app.settings().as_ref().clone();
    merge(&mut next.0, &patch);
    let batch = next.0.get("batch").cloned().unwrap_or(Value::Null);
    let mut errors = serde_json::Map::new();
    if !batch.get("enabled").is_some_and(Value::is_boolean) {
        errors.insert(
            "enabled".into(),
            json!({"code": "validation_invalid_value", "message": "Must be a boolean."}),
        );
    }
    match batch.get("maxRequests").and_then(Value::as_i64) {
        Some(n) if (1..=10_000).contains(&n) => {}
        _ => {
            errors.insert("maxRequests".into(), json!({"code": "validation_invalid_value", "message": "Must be between 1 and 10000."}));
        }
    }
    let realtime = realtime_errors(next.0.get("realtime"));
    if !errors.is_empty() || !realtime.is_empty() {
        let mut data = serde_json::Map::new();
        if !errors.is_empty() {
            data.insert("batch".into(), Value::Object(errors));
        }
        if !realtime.is_empty() {
            data.insert("realtime".into(), Value::Object(realtime));
        }
        return Err(CoreError::BadRequest {
            message: "An error occurred while submitting the form.".into(),
            data: Value::Object(data),
        });
    }
    // A changed `s3` part must describe a storage that opens, before anything is saved.
    let storage = if next.0.get("s3") != app.settings().0.get("s3") {
        Some(crate::files::storage_from_settings(
            &next,
            &app.config.data_dir,
        )?)
    } else {
        None
    };
    let value = next.0.clone();
    app.store
        .write(move |c: &mut dyn Conn| -> Result<(), CoreError> {
            let d = c.dialect();
            let now = galley_types::datetime::now();
            let mut del = Sql::new(d);
            del.push("DELETE FROM \"_params\" WHERE \"id\" = ")
                .push_param("settings");
            c.execute_sql(&del)?;
            let mut ins = Sql::new(d);
            ins.push(
                "INSERT INTO \"_params\" (\"id\", \"value\", \"created\", \"updated\") VALUES (",
            )
            .push_param("settings")
            .push(", ")
            .push_param(SqlValue::Json(value))
            .push(", ")
            .push_param(SqlValue::Timestamp(now))
            .push(", ")
            .push_param(SqlValue::Timestamp(now))
            .push(")");
            c.execute_sql(&ins)?;
            Ok(())
        })
        .await?;
    if let Some(storage) = storage {
        app.set_storage(storage);
    }
    app.set_settings(next.clone());
    Ok(next)
}

/// `POST /api/settings/test/s3`: writes, reads back and deletes a probe object in the
/// configured S3 storage (`filesystem` is `storage`; backups have no S3 storage here).
pub async fn test_s3(app: &App, filesystem: &str) -> Result<(), CoreError> {
    let failed =
        |m: String| CoreError::bad_request(format!("Failed to initialize the S3 storage: {m}"));
    let s3_enabled = |p: &str| {
        app.settings()
            .0
            .pointer(p)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    match filesystem {
        "storage" if s3_enabled("/s3/enabled") => {}
        "storage" | "backups" => {
            return Err(failed("S3 storage is not enabled.".into()));
        }
        _ => {
            return Err(CoreError::BadRequest {
                message: "An error occurred while validating the submitted data.".into(),
                data: json!({"filesystem": {"code": "validation_in_invalid", "message": "Must be a valid value."}}),
            })
        }
    }
    app.storage()
        .check()
        .await
        .map_err(|e| failed(e.to_string()))
}
