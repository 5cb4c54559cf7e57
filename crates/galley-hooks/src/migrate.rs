//! Migrations as files, in PocketBase's format: each `*.js` file of the migrations folder
//! calls `migrate((app) => {...}, (app) => {...})` once. `up` applies the pending files in
//! name order and records each in `_migrations` (PocketBase's table, shared with the
//! system migrations); `down` reverts the newest ones. Each function runs with `$app` as
//! its argument; a migration that throws stops the run there, naming its file.
//!
//! Departure: PocketBase runs each migration in one transaction. Galley runs its
//! statements as their own writes (collection changes are schema jobs of their own), so a
//! migration that fails half-way leaves its first changes; it is not recorded, and fixing
//! it and running `up` again applies it.

use crate::loader::{self, LoadError};
use crate::registry::Registration;
use crate::{engine, Hooks, Shared};
use galley_core::records::system;
use galley_core::{CoreError, RequestMeta};
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{file}: {message}")]
    Failed { file: String, message: String },
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("{0}")]
    Io(String),
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The `up` and `down` sources of one migration file.
fn functions(
    shared: &Arc<Shared>,
    path: &Path,
) -> Result<(Option<String>, Option<String>), MigrateError> {
    let regs = loader::registrations(shared, path)?;
    let mut found = None;
    for r in regs {
        if let Registration::Migration { up, down } = r {
            if found.is_some() {
                return Err(MigrateError::Failed {
                    file: name_of(path),
                    message: "a migration file calls migrate() once".into(),
                });
            }
            found = Some((up, down));
        }
    }
    found.ok_or_else(|| MigrateError::Failed {
        file: name_of(path),
        message: "the file does not call migrate(up, down)".into(),
    })
}

async fn applied(hooks: &Hooks) -> Result<Vec<String>, MigrateError> {
    let app = app(hooks)?;
    Ok(app
        .read(|c: &mut dyn Conn| {
            Ok(
                c.query("SELECT file FROM _migrations ORDER BY applied, file", &[])?
                    .iter()
                    .map(|r| r.text("file"))
                    .collect(),
            )
        })
        .await?)
}

fn app(hooks: &Hooks) -> Result<Arc<galley_core::App>, MigrateError> {
    hooks
        .0
        .app()
        .ok_or_else(|| MigrateError::Io("the application is not open".into()))
}

async fn record(hooks: &Hooks, file: &str, add: bool) -> Result<(), MigrateError> {
    record_on(&*app(hooks)?, file, add).await
}

/// Marks `file` applied (`add`) or not in `_migrations`.
pub(crate) async fn record_on(
    app: &galley_core::App,
    file: &str,
    add: bool,
) -> Result<(), MigrateError> {
    let caller = system::caller(&app.schema());
    let file = file.to_owned();
    app.write(
        &caller,
        &RequestMeta::default(),
        move |c: &mut dyn Conn, _| {
            let mut sql = Sql::new(c.dialect());
            if add {
                sql.push("INSERT INTO _migrations (file, applied) VALUES (")
                    .push_param(SqlValue::Text(file))
                    .push(", ")
                    .push_param(SqlValue::Int(chrono::Utc::now().timestamp_micros()))
                    .push(")");
            } else {
                sql.push("DELETE FROM _migrations WHERE file = ")
                    .push_param(SqlValue::Text(file));
            }
            c.execute_sql(&sql)?;
            Ok(())
        },
    )
    .await?;
    Ok(())
}

/// Runs one migration function with `$app`, on a hooks thread.
async fn run(hooks: &Hooks, file: &str, source: String) -> Result<(), MigrateError> {
    let s = hooks.0.clone();
    let out = hooks
        .0
        .pool
        .run(move || engine::with(&s, |js| engine::call(js, "migration", vec![source])))
        .await
        .ok_or_else(|| MigrateError::Io("hooks pool stopped".into()))?;
    let out = out.map_err(|e| MigrateError::Failed {
        file: file.to_owned(),
        message: e.to_string(),
    })?;
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    if let Some(err) = v.get("error") {
        let message = err["log"]
            .as_str()
            .or(err["message"].as_str())
            .unwrap_or_default()
            .to_owned();
        return Err(MigrateError::Failed {
            file: file.to_owned(),
            message,
        });
    }
    Ok(())
}

/// Applies the pending migration files of `dir`; returns their names.
pub async fn up(hooks: &Hooks, dir: &Path) -> Result<Vec<String>, MigrateError> {
    let done = applied(hooks).await?;
    let mut out = Vec::new();
    for path in loader::files(dir, ".js")? {
        let file = name_of(&path);
        if done.contains(&file) {
            continue;
        }
        let (up, _) = functions(&hooks.0, &path)?;
        if let Some(src) = up {
            run(hooks, &file, src).await?;
        }
        record(hooks, &file, true).await?;
        tracing::info!(%file, "migration applied");
        out.push(file);
    }
    Ok(out)
}

/// Reverts the newest `n` applied migrations whose files are in `dir`; returns their names.
pub async fn down(hooks: &Hooks, dir: &Path, n: usize) -> Result<Vec<String>, MigrateError> {
    let files = loader::files(dir, ".js")?;
    let done = applied(hooks).await?;
    let mut out = Vec::new();
    for file in done.iter().rev() {
        if out.len() >= n {
            break;
        }
        let Some(path) = files.iter().find(|p| &name_of(p) == file) else {
            continue;
        };
        let (_, down) = functions(&hooks.0, path)?;
        if let Some(src) = down {
            run(hooks, file, src).await?;
        }
        record(hooks, file, false).await?;
        tracing::info!(%file, "migration reverted");
        out.push(file.clone());
    }
    Ok(out)
}

/// Writes a new, empty migration file `<unix time>_<name>.js` into `dir`.
pub fn create(dir: &Path, name: &str) -> Result<PathBuf, MigrateError> {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.trim_matches('_').is_empty() {
        return Err(MigrateError::Io(
            "a migration needs a name of letters or digits, e.g. `galley migrate create add_posts`"
                .into(),
        ));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| MigrateError::Io(format!("{}: {e}", dir.display())))?;
    let path = dir.join(format!("{}_{name}.js", chrono::Utc::now().timestamp()));
    std::fs::write(&path, TEMPLATE)
        .map_err(|e| MigrateError::Io(format!("{}: {e}", path.display())))?;
    Ok(path)
}

const TEMPLATE: &str = r#"/// A migration in PocketBase's format: `up` applies it, `down` reverts it.
migrate((app) => {
  // e.g.
  // const collection = new Collection({ name: "posts", type: "base", fields: [{ name: "title", type: "text" }] })
  // app.save(collection)
}, (app) => {
  // e.g.
  // app.delete(app.findCollectionByNameOrId("posts"))
})
"#;
