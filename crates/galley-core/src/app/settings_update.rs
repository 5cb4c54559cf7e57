//! Saving settings: a patch merged into the current settings, validated, written to
//! `_params`, then applied to this process (storage, limits).

use super::App;
use crate::error::CoreError;
use crate::settings::Settings;
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt};
use serde_json::{json, Value};

impl App {
    /// Applies a partial update, validating the few settings Galley acts on.
    pub async fn update_settings(&self, patch: Value) -> Result<Settings, CoreError> {
        let app = self;
        if !patch.is_object() {
            return Err(CoreError::bad_request(
                "Failed to load the submitted data due to invalid formatting.",
            ));
        }
        let mut next = app.settings().as_ref().clone();
        crate::settings::merge(&mut next.0, &patch);
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
        let realtime = crate::settings::realtime_errors(next.0.get("realtime"));
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
            Some(crate::settings::storage_from_settings(
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
}
