//! Record files: uploads checked and stored before the write job (and removed again if it
//! fails), files a committed write dropped removed after the commit, downloads with
//! protected-file tokens and thumbnails made once under a bound.

use crate::app::App;
use crate::context::{Caller, Input, RecordEvent, Removal, Removals, RequestMeta};
use crate::error::CoreError;
use crate::rules::RuleCtx;
use chrono::{DateTime, Utc};
use galley_files::thumbs::ThumbSize;
use galley_files::{mime, names, storage, Key, Storage};
use galley_store::Conn;
use galley_types::field::{as_strings, FieldKind, FileOptions};
use galley_types::{Collection, Field, FieldError, FieldErrors};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// A file part of a multipart body, already spooled to a temporary file by the HTTP layer.
#[derive(Debug)]
pub struct Upload {
    /// The form key as sent: `field`, `field+` or `+field`.
    pub key: String,
    /// The client's file name (untrusted; only used to build the stored name).
    pub original_name: String,
    pub temp: tempfile::TempPath,
    pub size: u64,
    /// The first bytes, for sniffing the type.
    pub head: Vec<u8>,
}

/// Default `maxSize` of a file field: 5 MiB.
pub const DEFAULT_MAX_SIZE: i64 = 5 << 20;
/// Originals larger than this are served without a thumbnail (they would be read whole).
const MAX_THUMB_SOURCE: u64 = 64 << 20;

fn max_size(o: &FileOptions) -> i64 {
    if o.max_size <= 0 {
        DEFAULT_MAX_SIZE
    } else {
        o.max_size
    }
}

/// The largest body a record create/update of `col` may send: 32 MiB for plain fields plus
/// what its editor, json and file fields may hold (PocketBase's rule).
pub fn body_limit(col: &Collection, base: usize) -> u64 {
    let mut n = base as u64;
    for f in &col.fields {
        n += match &f.kind {
            FieldKind::Editor(o) if o.max_size > 0 => o.max_size as u64,
            FieldKind::Editor(_) => 5 << 20,
            FieldKind::Json(o) if o.max_size > 0 => o.max_size as u64,
            FieldKind::Json(_) => 1 << 20,
            FieldKind::File(o) => max_size(o) as u64 * o.max_select.max(1) as u64,
            _ => 0,
        };
    }
    n
}

fn file_options(f: &Field) -> Option<&FileOptions> {
    match &f.kind {
        FieldKind::File(o) => Some(o),
        _ => None,
    }
}

fn base_key(key: &str) -> &str {
    key.strip_prefix('+')
        .or_else(|| key.strip_suffix('+'))
        .unwrap_or(key)
}

/// Files uploaded for one write; removed again unless the write commits.
#[derive(Debug, Default)]
pub struct Staged {
    storage: Option<Arc<Storage>>,
    keys: Vec<Key>,
}

impl Staged {
    /// The write failed: its new files must not stay behind.
    pub async fn discard(self) {
        let Some(s) = self.storage else { return };
        for k in &self.keys {
            if let Err(e) = s.delete(k).await {
                tracing::warn!(key = %k, error = %e, "could not remove the upload of a failed write");
            }
        }
    }
}

/// Checks the uploads against their fields (size, type), stores them under the record and
/// adds their new names to `input` as if the client had sent them under their keys.
pub(crate) async fn stage(
    app: &App,
    col: &Collection,
    record_id: &str,
    uploads: Vec<Upload>,
    input: &mut Input,
    failed: &str,
) -> Result<Staged, CoreError> {
    if uploads.is_empty() {
        return Ok(Staged::default());
    }
    let mut errors = FieldErrors::new();
    let mut accepted: Vec<(Upload, String)> = Vec::new();
    for up in uploads {
        let Some(f) = col.field_ci(base_key(&up.key)) else {
            continue;
        };
        let Some(o) = file_options(f) else { continue };
        if errors.0.contains_key(&f.name) {
            continue;
        }
        let sniffed = mime::sniff(&up.head);
        let name = names::normalize(&up.original_name, &sniffed.ext);
        let max = max_size(o);
        if up.size > max as u64 {
            errors.add(
                &f.name,
                FieldError::new(
                    "validation_file_size_limit",
                    format!(
                        "Failed to upload {} - the maximum allowed file size is {max} bytes.",
                        up.original_name
                    ),
                )
                .with_params(json!({"file": up.original_name, "maxSize": max})),
            );
            continue;
        }
        if !o.mime_types.is_empty() && !mime::allowed(&sniffed.mime, &o.mime_types) {
            errors.add(
                &f.name,
                FieldError::new(
                    "validation_invalid_mime_type",
                    format!(
                        "\"{name}\" mime type must be one of: {}.",
                        o.mime_types.join(", ")
                    ),
                ),
            );
            continue;
        }
        accepted.push((up, name));
    }
    if !errors.is_empty() {
        return Err(CoreError::validation(failed, errors));
    }
    let store = app.storage();
    let mut staged = Staged {
        storage: Some(store.clone()),
        keys: Vec::new(),
    };
    for (up, name) in accepted {
        let key = storage::file_key(&col.id, record_id, &name);
        if let Err(e) = store.put_file(&key, &up.temp).await {
            staged.discard().await;
            return Err(CoreError::Internal(format!(
                "storing an upload failed: {e}"
            )));
        }
        staged.keys.push(key);
        // The names join the submitted values under the key they came with, after any
        // plain names sent there (PocketBase merges them the same way).
        let entry = input.values.entry(up.key.clone()).or_insert(Value::Null);
        let mut list: Vec<Value> = match entry.take() {
            Value::Null => vec![],
            Value::Array(a) => a,
            other => vec![other],
        };
        list.push(Value::String(name.clone()));
        *entry = Value::Array(list);
        input.new_files.push(name);
    }
    Ok(staged)
}

/// Inside the write job: every file name a record ends up with is either one it already had
/// or one uploaded now (a client cannot point a record at some other record's file).
pub fn check_names(
    col: &Collection,
    old: Option<&Map<String, Value>>,
    values: &Map<String, Value>,
    new_files: &[String],
    errors: &mut FieldErrors,
) {
    for f in col.fields.iter().filter(|f| file_options(f).is_some()) {
        if errors.0.contains_key(&f.name) {
            continue;
        }
        let had = old
            .and_then(|o| o.get(&f.name))
            .map(as_strings)
            .unwrap_or_default();
        let now = values.get(&f.name).map(as_strings).unwrap_or_default();
        let invalid: Vec<String> = now
            .into_iter()
            .filter(|n| !had.contains(n) && !new_files.contains(n))
            .collect();
        if !invalid.is_empty() {
            errors.add(
                &f.name,
                FieldError::new(
                    "validation_invalid_file",
                    format!("Invalid new files: [{}].", invalid.join(" ")),
                )
                .with_params(json!({"invalidFiles": invalid})),
            );
        }
    }
}

/// Update: the files the new values no longer name.
pub fn note_replaced(
    removals: &Removals,
    col: &Collection,
    id: &str,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
) {
    let Ok(mut list) = removals.lock() else {
        return;
    };
    for f in col.fields.iter().filter(|f| file_options(f).is_some()) {
        let now = new.get(&f.name).map(as_strings).unwrap_or_default();
        for name in old.get(&f.name).map(as_strings).unwrap_or_default() {
            if !now.contains(&name) {
                list.push(Removal {
                    collection_id: col.id.clone(),
                    record_id: id.to_owned(),
                    name,
                });
            }
        }
    }
}

pub fn has_files(col: &Collection) -> bool {
    col.fields.iter().any(|f| file_options(f).is_some())
}

/// After a commit: removes the files of deleted records (cascades included, found in the
/// committed events) and the files updates dropped. Failures are logged, never surfaced:
/// the write itself has happened.
pub(crate) async fn remove_committed(app: &App, events: &[RecordEvent], removals: &Removals) {
    let files = removals
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    let schema = app.schema();
    let records: Vec<(&str, String)> = events
        .iter()
        .filter(|e| e.action == "delete")
        .filter(|e| schema.by_id(&e.collection_id).is_some_and(|c| has_files(c)))
        .map(|e| (e.collection_id.as_str(), crate::rows::rec_id(&e.record)))
        .collect();
    if files.is_empty() && records.is_empty() {
        return;
    }
    let store = app.storage();
    for r in files {
        let res = store
            .delete(&storage::file_key(&r.collection_id, &r.record_id, &r.name))
            .await
            .and(
                store
                    .delete_prefix(&storage::thumbs_prefix(
                        &r.collection_id,
                        &r.record_id,
                        &r.name,
                    ))
                    .await,
            );
        if let Err(e) = res {
            tracing::warn!(removal = ?r, error = %e, "could not remove a file an update dropped");
        }
    }
    for (col, id) in records {
        if let Err(e) = store.delete_prefix(&storage::record_prefix(col, &id)).await {
            tracing::warn!(collection = col, record = %id, error = %e, "could not remove a deleted record's files");
        }
    }
}

/// After a collection is dropped: every file of its records.
pub(crate) async fn remove_collection(app: &App, collection_id: &str) {
    if let Err(e) = app
        .storage()
        .delete_prefix(&storage::key(&[collection_id]))
        .await
    {
        tracing::warn!(collection = collection_id, error = %e, "could not remove a dropped collection's files");
    }
}

/// What `GET /api/files/...` serves.
pub struct Download {
    pub storage: Arc<Storage>,
    pub key: Key,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
    pub content_type: String,
    /// The name in Content-Disposition (`50x50_name.png` for thumbnails).
    pub filename: String,
    pub inline: bool,
}

fn missing_collection() -> CoreError {
    CoreError::NotFound("Missing or invalid collection context.".into())
}

/// Resolves a download: the record must exist and name the file in one of its file fields;
/// a protected field needs a file token whose record passes the view rule.
pub async fn open(
    app: &App,
    collection: &str,
    record_id: &str,
    filename: &str,
    thumb: Option<&str>,
    file_token: Option<&str>,
    meta: &RequestMeta,
) -> Result<Download, CoreError> {
    let col = app
        .schema()
        .find(collection)
        .cloned()
        .ok_or_else(missing_collection)?;
    if !names::is_safe(filename) {
        return Err(CoreError::not_found());
    }
    let (col2, id2) = (col.clone(), record_id.to_owned());
    let rec = app
        .store
        .read(move |c: &mut dyn Conn| crate::rows::load(c, &col2, &id2))
        .await?;
    let field = col
        .fields
        .iter()
        .filter(|f| file_options(f).is_some())
        .find(|f| {
            rec.get(&f.name)
                .map(as_strings)
                .unwrap_or_default()
                .iter()
                .any(|n| n == filename)
        })
        .ok_or_else(CoreError::not_found)?;
    let opts = file_options(field).cloned().unwrap_or_default();
    if opts.protected {
        let caller = match file_token.filter(|t| !t.is_empty()) {
            Some(t) => crate::identity::authenticate_as(app, t, crate::tokens::Kind::File).await,
            None => Caller::Guest,
        };
        let mut meta = meta.clone();
        meta.context = "protectedFile".into();
        let (schema, col2, id2) = (app.schema(), col.clone(), record_id.to_owned());
        app.store
            .read(move |c: &mut dyn Conn| {
                let ctx = RuleCtx::new(&schema, &col2, &caller, &meta, c.dialect());
                crate::rows::load_checked(c, &ctx, &col2.rules.view_rule, &id2).map(|_| ())
            })
            .await
            .map_err(|e| match e {
                // A rule that only superusers pass hides the file like any other refusal.
                CoreError::Forbidden(_) => CoreError::not_found(),
                e => e,
            })?;
    }
    let store = app.storage();
    let key = storage::file_key(&col.id, record_id, filename);
    let meta = store
        .head(&key)
        .await
        .map_err(files_err)?
        .ok_or_else(CoreError::not_found)?;
    let sniffed = sniff(&store, &key, meta).await?;
    if let Some(size) = thumb.filter(|t| {
        mime::is_thumbable(&sniffed) && (*t == "100x100" || opts.thumbs.iter().any(|x| x == t))
    }) {
        if let Some(t) = ThumbSize::parse(size) {
            if meta.size <= MAX_THUMB_SOURCE {
                let file = StoredFile {
                    collection_id: &col.id,
                    record_id,
                    filename,
                    key: &key,
                    size: meta.size,
                };
                match thumbnail(app, &store, file, (size, t)).await {
                    Ok(d) => return Ok(d),
                    Err(e) => {
                        // PocketBase serves the original when a thumbnail cannot be made.
                        tracing::warn!(file = %key, thumb = size, error = %e, "thumbnail failed; serving the original");
                    }
                }
            }
        }
    }
    let content_type = mime::served_type(filename, &sniffed);
    Ok(Download {
        storage: store,
        key,
        size: meta.size,
        last_modified: meta.last_modified,
        inline: mime::is_inline(&content_type),
        content_type,
        filename: filename.to_owned(),
    })
}

fn files_err(e: galley_files::FilesError) -> CoreError {
    match e {
        galley_files::FilesError::NotFound => CoreError::not_found(),
        e => CoreError::internal(&e),
    }
}

async fn sniff(
    store: &Storage,
    key: &Key,
    m: galley_files::ObjectMeta,
) -> Result<String, CoreError> {
    let head = store
        .read(key, 0..m.size.min(mime::SNIFF_LEN as u64))
        .await
        .map_err(files_err)?;
    Ok(mime::sniff(&head).mime)
}

/// An original file as a download found it: where it sits, its key and its size.
struct StoredFile<'a> {
    collection_id: &'a str,
    record_id: &'a str,
    filename: &'a str,
    key: &'a Key,
    size: u64,
}

/// The thumbnail `size` (parsed as `t`) of `file`, made on first request.
async fn thumbnail(
    app: &App,
    store: &Arc<Storage>,
    file: StoredFile<'_>,
    (size, t): (&str, ThumbSize),
) -> Result<Download, CoreError> {
    let StoredFile {
        collection_id: col_id,
        record_id: rec_id,
        filename,
        key,
        size: src_size,
    } = file;
    let tkey = storage::thumb_key(col_id, rec_id, filename, size);
    let served = format!("{size}_{filename}");
    let existing = |m: galley_files::ObjectMeta, content_type: String| Download {
        storage: store.clone(),
        key: tkey.clone(),
        size: m.size,
        last_modified: m.last_modified,
        inline: mime::is_inline(&content_type),
        content_type,
        filename: served.clone(),
    };
    let failed = || CoreError::bad_request("The thumbnail could not be made before.");
    if app.thumbs.has_failed(tkey.as_ref()) {
        return Err(failed());
    }
    if let Some(m) = store.head(&tkey).await.map_err(files_err)? {
        let ct = sniff(store, &tkey, m).await?;
        return Ok(existing(m, ct));
    }
    let lock = app.thumbs.get(tkey.as_ref());
    let _guard = lock.lock().await;
    // Another request may have made it (or failed to) while this one waited.
    if app.thumbs.has_failed(tkey.as_ref()) {
        return Err(failed());
    }
    if let Some(m) = store.head(&tkey).await.map_err(files_err)? {
        let ct = sniff(store, &tkey, m).await?;
        return Ok(existing(m, ct));
    }
    // The permit bounds the originals in memory too, not only the decoding.
    let permit = app
        .thumb_permits
        .acquire()
        .await
        .map_err(|_| CoreError::Internal("thumbnail workers closed".into()))?;
    let src = store.read(key, 0..src_size).await.map_err(files_err)?;
    let rendered = tokio::task::spawn_blocking(move || galley_files::thumbs::render(&src, t))
        .await
        .map_err(|e| CoreError::internal(&e))?;
    drop(permit);
    let (bytes, ct) = match rendered {
        Ok(r) => r,
        Err(e) => {
            // A stored file never changes: it would fail the same way next time.
            app.thumbs.failed(tkey.as_ref());
            return Err(CoreError::bad_request(e.to_string()));
        }
    };
    store
        .put_bytes(&tkey, bytes.into())
        .await
        .map_err(files_err)?;
    app.thumbs.done(tkey.as_ref());
    let m = store
        .head(&tkey)
        .await
        .map_err(files_err)?
        .ok_or_else(CoreError::not_found)?;
    Ok(existing(m, ct.to_owned()))
}

/// `POST /api/files/token`: a short-lived file token for the calling auth record.
pub fn file_token(caller: &Caller) -> Result<String, CoreError> {
    match caller {
        Caller::Record { collection, record } => crate::tokens::issue(
            crate::tokens::Kind::File,
            collection,
            record,
            Map::new(),
            None,
        ),
        Caller::Guest => Err(CoreError::Unauthorized(
            "The request requires valid record authorization token.".into(),
        )),
    }
}

/// `POST /api/settings/test/s3`: writes, reads back and deletes a probe object in the
/// configured S3 storage (`filesystem` is `storage`; backups have no S3 storage here).
pub async fn test_s3(app: &App, filesystem: &str) -> Result<(), CoreError> {
    let failed =
        |m: String| CoreError::bad_request(format!("Failed to initialize the S3 storage: {m}"));
    match filesystem {
        "storage" if app.settings().s3.enabled => {}
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
