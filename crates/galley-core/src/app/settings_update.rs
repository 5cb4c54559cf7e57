//! Saving settings: a patch merged into the current settings, validated, written to
//! `_params`, then applied to this process (storage, limits).

use super::App;
use crate::error::CoreError;
use crate::settings::Settings;
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt};
use serde_json::Value;

impl App {
    /// Applies a partial update (PocketBase's PATCH semantics) after checking the result.
    pub async fn update_settings(&self, patch: Value) -> Result<Settings, CoreError> {
        let current = self.settings();
        let next = current.patched(&patch)?;
        // Scheduled backups would fail at every tick on PostgreSQL, whose own tools make them.
        if !self.is_sqlite()
            && !next.backups.cron.is_empty()
            && next.backups.cron != current.backups.cron
        {
            return Err(CoreError::BadRequest {
                message: "An error occurred while saving the new settings.".into(),
                data: serde_json::json!({"backups": {"cron": {
                    "code": "validation_backups_postgres",
                    "message": "Galley makes backups only of SQLite data; on PostgreSQL use pg_dump or continuous archiving (README, Backups)."
                }}}),
            });
        }
        // A changed `s3` part must describe a storage that opens, before anything is saved.
        let storage = if next.s3 != current.s3 {
            Some(crate::settings::storage_from_settings(
                &next,
                &self.config.data_dir,
            )?)
        } else {
            None
        };
        let value = next.to_stored();
        self.store
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
            self.set_storage(storage);
        }
        self.set_settings(next.clone());
        Ok(next)
    }
}
