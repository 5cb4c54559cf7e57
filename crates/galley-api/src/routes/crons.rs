//! `GET /api/crons` and `POST /api/crons/{id}` (run now), superusers only, with
//! PocketBase's answers; the entries live in the App's job queue (galley-jobs).

use super::{no_content, ok, require_superuser};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Query};
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use galley_core::CoreError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/crons", get(list))
        .route("/api/crons/{id}", post(run))
}

/// The entries in the order they were added: `[{"id", "expression"}]`.
async fn list(State(app): State<AppState>, Auth(c): Auth, q: Query) -> ApiResult<Response> {
    require_superuser(&c)?;
    let crons = serde_json::to_value(app.jobs().crons()).map_err(|e| CoreError::internal(&e))?;
    Ok(ok(crons, &q))
}

/// Starts the entry in the background on this node: 204 at once, 404 for an unknown id.
async fn run(
    State(app): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    if !app.jobs().cron_run(&id) {
        return Err(ApiError(CoreError::NotFound(
            "Missing or invalid cron job.".into(),
        )));
    }
    Ok(no_content())
}
