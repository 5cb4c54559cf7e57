//! Backups as PocketBase makes them: a zip of the data (`data.db`, `auxiliary.db`, the local
//! `storage/` files) in `<data dir>/backups`, listed, downloaded, uploaded, deleted and
//! restored through `/api/backups`. SQLite only: on PostgreSQL every call is a 400 that
//! points at the database's own tools.
//!
//! A backup is made while the server runs: each database is copied by `VACUUM INTO` inside
//! one read transaction (a WAL snapshot), so writers never wait and the copy holds every write
//! committed before it began. A restore is checked and unpacked into `.pending_restore`
//! beside the data, then the server restarts; [`apply_pending_restore`] swaps the files in
//! before the store opens again, so no connection ever sees a half-replaced database.
//!
//! Hostile input: keys are `[a-z0-9_-]+.zip` (no path can be named), uploads must be zips,
//! a restore unpacks only `data.db`, `auxiliary.db` and `storage/…` entries with safe
//! relative names, stops past a bound on unpacked bytes (zip bombs), and refuses a
//! `data.db` that is damaged or was not made by Galley.

use crate::logs::Logs;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use galley_core::{App, CoreError};
use galley_files::Storage;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const DIR: &str = "backups";
const PENDING: &str = ".pending_restore";
const BEFORE: &str = ".before_restore";
const MAX_KEY: usize = 150;
/// A restore unpacks at most this many times the zip's size (and never more than
/// [`MAX_UNPACKED`]): a database compresses well, but not by thousands.
const MAX_RATIO: u64 = 200;
const MAX_UNPACKED: u64 = 256 << 30;
const MAX_ENTRIES: usize = 1_000_000;

const POSTGRES: &str = "Backups are made by Galley only for SQLite data. On PostgreSQL use the database's own tools: pg_dump for copies, continuous archiving for point-in-time recovery (see README, Backups).";

/// A backup's bytes, for a download.
pub struct BackupFile {
    pub len: u64,
    pub body: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
}

pub struct Backups {
    app: Arc<App>,
    logs: Arc<Logs>,
    /// One backup or restore at a time.
    busy: tokio::sync::Mutex<()>,
    restart: tokio::sync::Notify,
    restart_requested: AtomicBool,
}

fn validation(field: &str, code: &str, message: &str) -> CoreError {
    CoreError::BadRequest {
        message: "An error occurred while validating the submitted data.".into(),
        data: json!({field: {"code": code, "message": message}}),
    }
}

fn s3_err(e: galley_files::FilesError) -> CoreError {
    CoreError::bad_request(format!("Backups storage (S3): {e}"))
}

fn io_err(what: &str, e: impl std::fmt::Display) -> CoreError {
    CoreError::Internal(format!("{what}: {e}"))
}

/// The cron entry of scheduled backups (PocketBase's id, so `GET /api/crons` answers alike).
pub const AUTO_BACKUP_CRON: &str = "__pbAutoBackup__";
/// Scheduled backups' names start with this; only they are pruned to `cronMaxKeep`.
pub const AUTO_PREFIX: &str = "@auto_pb_backup_";

/// A key that may name a stored backup: [`valid_key`], or a scheduled backup's name (whose
/// `@` no client can choose, as in PocketBase).
pub fn stored_key(key: &str) -> bool {
    valid_key(key.strip_prefix('@').unwrap_or(key))
}

/// PocketBase's key rule: lowercase letters, digits, `_` and `-`, then `.zip`.
pub fn valid_key(key: &str) -> bool {
    key.len() <= MAX_KEY
        && key.strip_suffix(".zip").is_some_and(|stem| {
            !stem.is_empty()
                && stem
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        })
}

impl Backups {
    pub fn new(app: Arc<App>, logs: Arc<Logs>) -> Self {
        Backups {
            app,
            logs,
            busy: tokio::sync::Mutex::new(()),
            restart: tokio::sync::Notify::new(),
            restart_requested: AtomicBool::new(false),
        }
    }

    fn dir(&self) -> PathBuf {
        self.app.config.data_dir.join(DIR)
    }

    /// The S3 bucket of `settings.backups.s3` when it is enabled; `None`: the local folder.
    fn s3(&self) -> Result<Option<Storage>, CoreError> {
        let settings = self.app.settings();
        let s3 = &settings.backups.s3;
        if !s3.enabled {
            return Ok(None);
        }
        let backend = galley_files::Backend::S3(galley_files::S3Config {
            bucket: s3.bucket.clone(),
            region: s3.region.clone(),
            endpoint: s3.endpoint.clone(),
            access_key: s3.access_key.clone(),
            secret: s3.secret.expose().to_owned(),
            force_path_style: s3.force_path_style,
        });
        Storage::open(&backend)
            .map(Some)
            .map_err(|e| CoreError::bad_request(format!("Backups storage (S3): {e}")))
    }

    fn sqlite_only(&self) -> Result<(), CoreError> {
        if self.app.is_sqlite() {
            Ok(())
        } else {
            Err(CoreError::bad_request(POSTGRES))
        }
    }

    /// Resolves when a restore has asked the server to restart.
    pub async fn restart_requested(&self) {
        loop {
            let wait = self.restart.notified();
            if self.restart_requested.load(Ordering::SeqCst) {
                return;
            }
            wait.await;
        }
    }

    pub fn is_restart_requested(&self) -> bool {
        self.restart_requested.load(Ordering::SeqCst)
    }

    /// `GET /api/backups`: `[{key, size, modified}]`, by key.
    pub async fn list(&self) -> Result<Value, CoreError> {
        self.sqlite_only()?;
        if let Some(s3) = self.s3()? {
            let mut out = Vec::new();
            for key in s3
                .list(&galley_files::Key::default())
                .await
                .map_err(s3_err)?
            {
                if !stored_key(&key) {
                    continue;
                }
                if let Some(m) = s3
                    .head(&galley_files::Key::from(key.as_str()))
                    .await
                    .map_err(s3_err)?
                {
                    out.push(json!({"key": key, "size": m.size, "modified": galley_types::datetime::format(&m.last_modified)}));
                }
            }
            return Ok(Value::Array(out));
        }
        let dir = self.dir();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(json!([])),
                Err(e) => return Err(io_err("reading the backups folder", e)),
            };
            for e in rd.flatten() {
                let key = e.file_name().to_string_lossy().into_owned();
                let Ok(meta) = e.metadata() else { continue };
                if !stored_key(&key) || !meta.is_file() {
                    continue;
                }
                let modified = meta
                    .modified()
                    .ok()
                    .map(chrono::DateTime::<chrono::Utc>::from)
                    .map(|t| galley_types::datetime::format(&t))
                    .unwrap_or_default();
                out.push((key, meta.len(), modified));
            }
            out.sort();
            Ok(Value::Array(
                out.into_iter()
                    .map(|(key, size, modified)| json!({"key": key, "size": size, "modified": modified}))
                    .collect(),
            ))
        })
        .await
        .map_err(|e| io_err("listing backups", e))?
    }

    /// `POST /api/backups`: a new backup named `name`, or PocketBase's default name.
    pub async fn create(&self, name: Option<&str>) -> Result<(), CoreError> {
        self.sqlite_only()?;
        let key = match name.filter(|n| !n.is_empty()) {
            Some(n) => n.to_owned(),
            None => self.new_key("pb_backup_"),
        };
        if !valid_key(&key) {
            return Err(validation(
                "name",
                "validation_match_invalid",
                "Must be in a valid format.",
            ));
        }
        self.write_backup(key).await
    }

    /// Makes backup `key` (already checked).
    async fn write_backup(&self, key: String) -> Result<(), CoreError> {
        let _busy = self.busy.try_lock().map_err(|_| {
            CoreError::bad_request("Try again later: another backup or restore is running.")
        })?;
        let dir = self.dir();
        let s3 = self.s3()?;
        let exists = match &s3 {
            Some(s) => s
                .head(&galley_files::Key::from(key.as_str()))
                .await
                .map_err(s3_err)?
                .is_some(),
            None => dir.join(&key).exists(),
        };
        if exists {
            return Err(validation(
                "name",
                "validation_backup_name_exists",
                "The backup file name is invalid or already exists.",
            ));
        }
        std::fs::create_dir_all(&dir).map_err(|e| io_err("creating the backups folder", e))?;
        let data_dir = self.app.config.data_dir.clone();
        let work = tempfile::Builder::new()
            .prefix(".backup_")
            .tempdir_in(&data_dir)
            .map_err(|e| io_err("creating a work folder", e))?;
        self.app
            .backup_database_to(work.path().join("data.db"))
            .await?;
        self.logs
            .backup_to(work.path().join("auxiliary.db"))
            .await?;
        let work_path = work.path().to_owned();
        let part = dir.join(format!(".{key}.part"));
        let (part2, key2, local) = (part.clone(), key.clone(), s3.is_none());
        tokio::task::spawn_blocking(move || -> Result<(), CoreError> {
            let r = write_zip(&part2, &work_path, &data_dir.join("storage"));
            if let Err(e) = r {
                let _ = std::fs::remove_file(&part2);
                return Err(io_err("writing the backup", e));
            }
            if local {
                std::fs::rename(&part2, dir.join(&key2))
                    .map_err(|e| io_err("naming the backup", e))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| io_err("the backup task", e))??;
        drop(work);
        if let Some(s) = s3 {
            let r = s
                .put_file(&galley_files::Key::from(key.as_str()), &part)
                .await;
            let _ = std::fs::remove_file(&part);
            r.map_err(s3_err)?;
        }
        Ok(())
    }

    /// PocketBase's generated name: `prefix`, the app's name in snake case, the UTC time.
    fn new_key(&self, prefix: &str) -> String {
        let app: String = self
            .app
            .settings()
            .meta
            .app_name
            .to_lowercase()
            .chars()
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
            .take(50)
            .collect();
        let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S");
        if app.is_empty() {
            format!("{prefix}{stamp}.zip")
        } else {
            format!("{prefix}{app}_{stamp}.zip")
        }
    }

    /// Keeps the backups schedule in step with `settings.backups.cron`: the cron entry
    /// [`AUTO_BACKUP_CRON`] exists while the setting is not empty, on every node's list
    /// (the jobs crate runs each tick on one node only).
    pub fn follow_schedule(self: &Arc<Self>) {
        let mut changes = self.app.settings_changes();
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut current = String::new();
            loop {
                let Some(this) = weak.upgrade() else { return };
                let cron = this.app.settings().backups.cron.clone();
                if cron != current {
                    this.set_schedule(&cron);
                    current = cron;
                }
                drop(this);
                if changes.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    fn set_schedule(self: &Arc<Self>, cron: &str) {
        let jobs = self.app.jobs();
        if cron.is_empty() {
            jobs.cron_remove(AUTO_BACKUP_CRON);
            return;
        }
        let weak = Arc::downgrade(self);
        let added = jobs.cron_add(AUTO_BACKUP_CRON, cron, move || {
            let this = weak.upgrade();
            async move {
                if let Some(this) = this {
                    this.scheduled().await;
                }
            }
        });
        if let Err(e) = added {
            tracing::error!(cron, error = %e, "the backups schedule was refused");
        }
    }

    /// One scheduled backup, then the oldest scheduled ones beyond `cronMaxKeep` go.
    pub async fn scheduled(&self) {
        let key = self.new_key(AUTO_PREFIX);
        if let Err(e) = self.write_backup(key.clone()).await {
            tracing::error!(backup = %key, error = %e, "scheduled backup failed");
            return;
        }
        tracing::info!(backup = %key, "scheduled backup made");
        let keep = usize::try_from(self.app.settings().backups.cron_max_keep).unwrap_or(0);
        if keep == 0 {
            return;
        }
        if let Err(e) = self.prune(keep).await {
            tracing::error!(error = %e, "cannot remove old scheduled backups");
        }
    }

    /// Deletes the scheduled backups but the `keep` most recent.
    async fn prune(&self, keep: usize) -> Result<(), CoreError> {
        let listed = self.list().await?;
        let mut auto: Vec<(String, String)> = listed
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| {
                let key = b["key"].as_str()?;
                key.starts_with(AUTO_PREFIX).then(|| {
                    (
                        b["modified"].as_str().unwrap_or("").to_owned(),
                        key.to_owned(),
                    )
                })
            })
            .collect();
        // Newest first: by time, then by name (whose stamp breaks ties within a second).
        auto.sort_by(|a, b| b.cmp(a));
        for (_, key) in auto.into_iter().skip(keep) {
            self.delete(&key).await?;
        }
        Ok(())
    }

    /// The bytes of backup `key`, for a download.
    pub async fn open(&self, key: &str) -> Result<BackupFile, CoreError> {
        self.sqlite_only()?;
        if !stored_key(key) {
            return Err(CoreError::not_found());
        }
        if let Some(s) = self.s3()? {
            let k = galley_files::Key::from(key);
            let meta = s
                .head(&k)
                .await
                .map_err(s3_err)?
                .ok_or_else(CoreError::not_found)?;
            let body = s
                .stream(&k, 0..meta.size)
                .await
                .map_err(s3_err)?
                .map_err(std::io::Error::other)
                .boxed();
            return Ok(BackupFile {
                len: meta.size,
                body,
            });
        }
        let path = self.dir().join(key);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|_| CoreError::not_found())?;
        let meta = file.metadata().await.map_err(|_| CoreError::not_found())?;
        if !meta.is_file() {
            return Err(CoreError::not_found());
        }
        let body = futures_util::stream::unfold(file, |mut f| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 64 << 10];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        })
        .boxed();
        Ok(BackupFile {
            len: meta.len(),
            body,
        })
    }

    /// `DELETE /api/backups/{key}`.
    pub async fn delete(&self, key: &str) -> Result<(), CoreError> {
        self.sqlite_only()?;
        if let Some(s) = self.s3()? {
            let k = galley_files::Key::from(key);
            if !stored_key(key) || s.head(&k).await.map_err(s3_err)?.is_none() {
                return Err(CoreError::bad_request(
                    "Invalid or already deleted backup file.",
                ));
            }
            return s.delete(&k).await.map_err(s3_err);
        }
        let path = self.dir().join(key);
        if !stored_key(key) || !path.is_file() {
            return Err(CoreError::bad_request(
                "Invalid or already deleted backup file.",
            ));
        }
        std::fs::remove_file(&path).map_err(|e| io_err("deleting the backup", e))
    }

    /// `POST /api/backups/upload`: a zip (checked as one) stored under its file name.
    pub async fn upload(&self, name: &str, file: &Path, head: &[u8]) -> Result<(), CoreError> {
        self.sqlite_only()?;
        if !head.starts_with(b"PK\x03\x04") && !head.starts_with(b"PK\x05\x06") {
            return Err(validation(
                "file",
                "validation_invalid_mime_type",
                &format!("{name:?} mime type must be one of: application/zip."),
            ));
        }
        if !valid_key(name) {
            return Err(validation(
                "file",
                "validation_match_invalid",
                "The file name must be lowercase letters, digits, _ and -, ending in .zip.",
            ));
        }
        let dir = self.dir();
        let s3 = self.s3()?;
        let dest = dir.join(name);
        let exists = match &s3 {
            Some(s) => s
                .head(&galley_files::Key::from(name))
                .await
                .map_err(s3_err)?
                .is_some(),
            None => dest.exists(),
        };
        if exists {
            return Err(validation(
                "file",
                "validation_backup_name_exists",
                "Backup file with the specified name already exists.",
            ));
        }
        let src = file.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            std::fs::File::open(&src)
                .ok()
                .and_then(|f| zip::ZipArchive::new(std::io::BufReader::new(f)).ok())
                .is_some()
        })
        .await
        .unwrap_or(false);
        if !ok {
            return Err(validation(
                "file",
                "validation_invalid_mime_type",
                &format!("{name:?} is not a readable zip archive."),
            ));
        }
        if let Some(s) = s3 {
            s.put_file(&galley_files::Key::from(name), file)
                .await
                .map_err(s3_err)?;
            return Ok(());
        }
        std::fs::create_dir_all(&dir).map_err(|e| io_err("creating the backups folder", e))?;
        // The spooled upload is in the data folder too, so this is a rename, not a copy.
        if std::fs::rename(file, &dest).is_err() {
            std::fs::copy(file, &dest).map_err(|e| io_err("storing the upload", e))?;
        }
        Ok(())
    }

    /// `POST /api/backups/{key}/restore`: checks and unpacks the backup beside the data, then
    /// asks the server to restart, which swaps it in ([`apply_pending_restore`]).
    pub async fn restore(&self, key: &str) -> Result<(), CoreError> {
        self.sqlite_only()?;
        let missing = || CoreError::bad_request("Missing or invalid backup file.");
        if !stored_key(key) {
            return Err(missing());
        }
        let _busy = self.busy.try_lock().map_err(|_| {
            CoreError::bad_request("Try again later: another backup or restore is running.")
        })?;
        let data_dir = self.app.config.data_dir.clone();
        // From S3, the zip is fetched into the data folder first (and removed after).
        let (path, fetched) = match self.s3()? {
            Some(s) => {
                let k = galley_files::Key::from(key);
                let meta = s.head(&k).await.map_err(s3_err)?.ok_or_else(missing)?;
                let tmp = tempfile::Builder::new()
                    .prefix(".restore_")
                    .suffix(".zip")
                    .tempfile_in(&data_dir)
                    .map_err(|e| io_err("creating a temporary file", e))?
                    .into_temp_path();
                let mut out = tokio::fs::File::create(&tmp)
                    .await
                    .map_err(|e| io_err("fetching the backup", e))?;
                let mut body = s.stream(&k, 0..meta.size).await.map_err(s3_err)?;
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(s3_err)?;
                    tokio::io::AsyncWriteExt::write_all(&mut out, &chunk)
                        .await
                        .map_err(|e| io_err("fetching the backup", e))?;
                }
                tokio::io::AsyncWriteExt::flush(&mut out)
                    .await
                    .map_err(|e| io_err("fetching the backup", e))?;
                (tmp.to_path_buf(), Some(tmp))
            }
            None => {
                let path = self.dir().join(key);
                if !path.is_file() {
                    return Err(missing());
                }
                (path, None)
            }
        };
        tokio::task::spawn_blocking(move || unpack(&path, &data_dir))
            .await
            .map_err(|e| io_err("the restore task", e))??;
        drop(fetched);
        self.restart_requested.store(true, Ordering::SeqCst);
        self.restart.notify_waiters();
        Ok(())
    }
}

fn write_zip(dest: &Path, work: &Path, storage: &Path) -> std::io::Result<()> {
    let file = std::fs::File::create(dest)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for name in ["data.db", "auxiliary.db"] {
        let p = work.join(name);
        if p.is_file() {
            zip.start_file(name, opts)?;
            std::io::copy(&mut std::fs::File::open(&p)?, &mut zip)?;
        }
    }
    if storage.is_dir() {
        let mut stack = vec![storage.to_owned()];
        while let Some(d) = stack.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(&d)?.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let ft = e.file_type()?;
                let p = e.path();
                if ft.is_dir() {
                    stack.push(p);
                } else if ft.is_file() {
                    let rel = p.strip_prefix(storage).map_err(std::io::Error::other)?;
                    let name = format!(
                        "storage/{}",
                        rel.components()
                            .map(|c| c.as_os_str().to_string_lossy())
                            .collect::<Vec<_>>()
                            .join("/")
                    );
                    zip.start_file(name, opts)?;
                    std::io::copy(&mut std::fs::File::open(&p)?, &mut zip)?;
                }
                // Symbolic links are not followed: a backup holds the data folder only.
            }
        }
    }
    zip.finish()?.flush()?;
    Ok(())
}

fn bad(msg: &str) -> CoreError {
    CoreError::bad_request(msg)
}

/// Where an entry goes under the restore folder, or `None` for entries a restore ignores
/// (PocketBase's `types.d.ts`, anything else). A name that tries to leave the folder is an
/// error, not a skip.
fn target(name: &str) -> Result<Option<PathBuf>, CoreError> {
    let unsafe_name = || bad("The backup holds a file with an unsafe name.");
    if name.starts_with('/') || name.contains('\\') || name.contains('\0') {
        return Err(unsafe_name());
    }
    let parts: Vec<&str> = name.split('/').collect();
    if parts
        .iter()
        .any(|p| *p == ".." || *p == "." || (p.is_empty()))
        && !name.ends_with('/')
    {
        return Err(unsafe_name());
    }
    match parts.as_slice() {
        ["data.db"] | ["auxiliary.db"] => Ok(Some(PathBuf::from(name))),
        ["storage", rest @ ..] if !rest.is_empty() && !name.ends_with('/') => {
            if rest.iter().any(|p| p.is_empty() || *p == ".." || *p == ".") {
                return Err(unsafe_name());
            }
            Ok(Some(
                rest.iter()
                    .fold(PathBuf::from("storage"), |acc, p| acc.join(p)),
            ))
        }
        _ => Ok(None),
    }
}

/// Unpacks `zip_path` into `<data>/.pending_restore` after checking it.
fn unpack(zip_path: &Path, data_dir: &Path) -> Result<(), CoreError> {
    let not_zip = || bad("The backup is not a readable zip archive.");
    let file = std::fs::File::open(zip_path).map_err(|e| io_err("opening the backup", e))?;
    let zip_size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|_| not_zip())?;
    if zip.len() > MAX_ENTRIES {
        return Err(bad("The backup holds too many files."));
    }
    let mut has_data = false;
    for i in 0..zip.len() {
        let e = zip.by_index_raw(i).map_err(|_| not_zip())?;
        if e.name() == "data.db" {
            has_data = true;
        }
        target(e.name())?;
    }
    if !has_data {
        return Err(bad(
            "The backup holds no data.db: it is not a backup of Galley data.",
        ));
    }
    let budget = zip_size
        .saturating_mul(MAX_RATIO)
        .clamp(16 << 20, MAX_UNPACKED);
    let tmp = data_dir.join(format!("{PENDING}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io_err("creating the restore folder", e))?;
    let r = (|| -> Result<(), CoreError> {
        let mut left = budget;
        for i in 0..zip.len() {
            let mut e = zip.by_index(i).map_err(|_| not_zip())?;
            let Some(rel) = target(e.name())? else {
                continue;
            };
            let dest = tmp.join(&rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| io_err("creating the restore folder", e))?;
            }
            let mut out =
                std::fs::File::create(&dest).map_err(|e| io_err("unpacking the backup", e))?;
            let n = std::io::copy(&mut (&mut e).take(left + 1), &mut out)
                .map_err(|_| bad("The backup is damaged: an entry does not unpack."))?;
            if n > left {
                return Err(bad(
                    "The backup unpacks to far more than its size (a zip bomb?); nothing was restored.",
                ));
            }
            left -= n;
        }
        galley_store::sqlite::check_galley_file(&tmp.join("data.db")).map_err(|e| {
            bad(&format!(
                "The backup's data.db cannot be restored: {e}. Nothing was changed."
            ))
        })?;
        Ok(())
    })();
    if let Err(e) = r {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let pending = data_dir.join(PENDING);
    let _ = std::fs::remove_dir_all(&pending);
    std::fs::rename(&tmp, &pending).map_err(|e| io_err("preparing the restore", e))
}

/// Swaps a restore prepared by [`Backups::restore`] into `data_dir`; call before the store
/// opens. The replaced files are kept in `.before_restore` (the last restore's only).
/// Returns whether a restore was applied.
pub fn apply_pending_restore(data_dir: &Path) -> std::io::Result<bool> {
    let pending = data_dir.join(PENDING);
    if !pending.is_dir() {
        return Ok(false);
    }
    let before = data_dir.join(BEFORE);
    let _ = std::fs::remove_dir_all(&before);
    std::fs::create_dir_all(&before)?;
    for name in [
        "data.db",
        "data.db-wal",
        "data.db-shm",
        "auxiliary.db",
        "auxiliary.db-wal",
        "auxiliary.db-shm",
        "storage",
    ] {
        let p = data_dir.join(name);
        if p.exists() {
            std::fs::rename(&p, before.join(name))?;
        }
    }
    for name in ["data.db", "auxiliary.db", "storage"] {
        let p = pending.join(name);
        if p.exists() {
            std::fs::rename(&p, data_dir.join(name))?;
        }
    }
    std::fs::remove_dir_all(&pending)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_no_path() {
        for ok in ["a.zip", "pb_backup_x_2026.zip", "a-b_c1.zip"] {
            assert!(valid_key(ok), "{ok}");
        }
        for no in [
            "../x.zip", "a/b.zip", "UP.zip", "noext", ".zip", "x y.zip", "a.zip/", "a\\b.zip",
            "..zip",
        ] {
            assert!(!valid_key(no), "{no}");
        }
        assert!(!valid_key(&format!("{}.zip", "a".repeat(150))));
    }

    #[test]
    fn entry_names_stay_inside() {
        assert_eq!(
            target("data.db").ok().flatten(),
            Some(PathBuf::from("data.db"))
        );
        assert_eq!(
            target("storage/c/r/f.png").ok().flatten(),
            Some(PathBuf::from("storage/c/r/f.png"))
        );
        assert_eq!(target("types.d.ts").ok().flatten(), None);
        assert_eq!(target("storage/").ok().flatten(), None);
        for bad in [
            "../data.db",
            "/etc/passwd",
            "storage/../../x",
            "storage/a/../../b",
            "a\\..\\b",
            "storage//x",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }
}
