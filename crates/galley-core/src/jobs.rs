//! The job queue as a service for superusers (`/api/jobs`): enqueue a job of a kind this
//! node handles, list jobs by state, view, retry a dead job, delete a queued or dead one.
//! What a caller sends is checked field by field here, so bad input is a 400 with
//! PocketBase's per-field `data`, not a queue error.

use crate::app::App;
use crate::context::{ListResult, Page};
use crate::error::CoreError;
use galley_jobs::{queue, Enqueued, JobInfo, JobsError, NewJob};
use galley_types::{FieldError, FieldErrors};
use serde_json::{json, Map, Value};

/// The states a job can be listed by.
pub const STATES: [&str; 3] = ["queued", "running", "dead"];

const FAILED: &str = "Failed to enqueue the job.";

impl From<JobsError> for CoreError {
    fn from(e: JobsError) -> Self {
        match e {
            JobsError::Store(s) => s.into(),
            JobsError::NotFound => CoreError::not_found(),
            JobsError::Invalid(m) | JobsError::Conflict(m) => CoreError::bad_request(m),
            e @ (JobsError::PayloadTooLarge { .. } | JobsError::Cron(_)) => {
                CoreError::bad_request(e.to_string())
            }
        }
    }
}

/// The job a request body describes: `kind` (required; a kind with a handler on this
/// node), `payload` (any JSON, at most [`queue::MAX_PAYLOAD`] bytes; default `{}`), and
/// optionally `queue`, `priority`, `runAt` (a date), `maxAttempts` (1-1000), `uniqueKey`.
pub fn parse_new_job(app: &App, body: &Map<String, Value>) -> Result<NewJob, CoreError> {
    let mut errors = FieldErrors::new();
    let invalid = |code: &str, m: &str| FieldError::new(code, m);
    let text = |errors: &mut FieldErrors, key: &str| -> Option<String> {
        match body.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() <= queue::MAX_NAME => Some(s.clone()),
            Some(_) => {
                errors.add(
                    key,
                    FieldError::new(
                        "validation_invalid_value",
                        format!(
                            "Must be a string of at most {} characters.",
                            queue::MAX_NAME
                        ),
                    ),
                );
                None
            }
        }
    };
    let kind = text(&mut errors, "kind").unwrap_or_default();
    if kind.trim().is_empty() {
        errors.add("kind", invalid("validation_required", "Cannot be blank."));
    } else if !app.jobs().has_handler(&kind) {
        errors.add(
            "kind",
            invalid(
                "validation_unknown_kind",
                "No handler is registered for this job kind.",
            ),
        );
    }
    let payload = body.get("payload").cloned().unwrap_or_else(|| json!({}));
    if serde_json::to_string(&payload).map_or(0, |s| s.len()) > queue::MAX_PAYLOAD {
        errors.add(
            "payload",
            FieldError::new(
                "validation_max_size",
                format!("Must be at most {} bytes of JSON.", queue::MAX_PAYLOAD),
            ),
        );
    }
    let mut job = NewJob::new(kind, payload);
    if let Some(q) = text(&mut errors, "queue") {
        job.queue = q;
    }
    job.unique_key = text(&mut errors, "uniqueKey").filter(|k| !k.is_empty());
    let int = |errors: &mut FieldErrors, key: &str, lo: i64, hi: i64| -> Option<i64> {
        match body.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_i64().filter(|n| (lo..=hi).contains(n)) {
                Some(n) => Some(n),
                None => {
                    errors.add(
                        key,
                        FieldError::new(
                            "validation_invalid_value",
                            format!("Must be a whole number between {lo} and {hi}."),
                        ),
                    );
                    None
                }
            },
        }
    };
    if let Some(p) = int(&mut errors, "priority", i32::MIN.into(), i32::MAX.into()) {
        job.priority = p as i32;
    }
    if let Some(n) = int(&mut errors, "maxAttempts", 1, 1000) {
        job.max_attempts = n as u32;
    }
    match body.get("runAt") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(v) => match v.as_str().and_then(galley_types::datetime::parse) {
            Some(t) => job.run_at = Some(t),
            None => errors.add(
                "runAt",
                invalid("validation_invalid_datetime", "Must be a valid datetime."),
            ),
        },
    }
    if errors.is_empty() {
        Ok(job)
    } else {
        Err(CoreError::validation(FAILED, errors))
    }
}

/// Enqueues the job `body` describes: `{"id", "duplicate"}` (a duplicate is the live job
/// that already holds the unique key; nothing was added).
pub async fn enqueue(app: &App, body: &Map<String, Value>) -> Result<Value, CoreError> {
    let job = parse_new_job(app, body)?;
    Ok(match app.jobs().enqueue(job).await? {
        Enqueued::New(id) => json!({"id": id, "duplicate": false}),
        Enqueued::Duplicate(id) => json!({"id": id, "duplicate": true}),
    })
}

/// Jobs in `state` (any when `None`), newest first, one page.
pub async fn list(
    app: &App,
    state: Option<&str>,
    page: Page,
) -> Result<ListResult<JobInfo>, CoreError> {
    if let Some(s) = state.filter(|s| !STATES.contains(s)) {
        return Err(CoreError::validation(
            "Invalid state parameter.",
            FieldErrors::single(
                "state",
                FieldError::new(
                    "validation_in_invalid",
                    format!("Must be one of {}, not {s:?}.", STATES.join(", ")),
                ),
            ),
        ));
    }
    let offset = (page.page - 1).saturating_mul(page.per_page);
    let items = app.jobs().list(state, page.per_page, offset).await?;
    let total = if page.skip_total {
        None
    } else {
        let counts = app.jobs().counts().await?;
        let n: i64 = counts
            .iter()
            .filter(|(s, _)| state.is_none_or(|want| want == s))
            .map(|(_, n)| n)
            .sum();
        Some(usize::try_from(n).unwrap_or(0))
    };
    Ok(ListResult::new(items, page, total))
}

/// One job; 404 when there is none (finished jobs are deleted).
pub async fn view(app: &App, id: &str) -> Result<JobInfo, CoreError> {
    app.jobs().get(id).await?.ok_or_else(CoreError::not_found)
}
