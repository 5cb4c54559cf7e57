//! `/api/jobs`: the durable job queue for superusers (Galley's own; PocketBase has none):
//! enqueue, list by state, view, retry a dead job, delete a queued or dead one.

use super::{no_content, ok, page, require_superuser};
use crate::error::ApiResult;
use crate::extract::{Auth, Body, Query};
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use galley_core::{CoreError, ListResult};
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/jobs", get(list).post(enqueue))
        .route("/api/jobs/{id}", get(view).delete(remove))
        .route("/api/jobs/{id}/retry", post(retry))
}

fn to_value(v: impl serde::Serialize) -> ApiResult<Value> {
    Ok(serde_json::to_value(v).map_err(|e| CoreError::internal(&e))?)
}

/// `?state=queued|running|dead`, paged like the records list.
async fn list(State(app): State<AppState>, Auth(c): Auth, q: Query) -> ApiResult<Response> {
    require_superuser(&c)?;
    let state = q.get("state").filter(|s| !s.is_empty());
    let r = galley_core::jobs::list(&app, state, page(&q)?).await?;
    let items = r
        .items
        .iter()
        .map(to_value)
        .collect::<ApiResult<Vec<_>>>()?;
    let r = ListResult {
        items,
        page: r.page,
        per_page: r.per_page,
        total_items: r.total_items,
        total_pages: r.total_pages,
    };
    Ok(ok(r, &q))
}

/// `{"kind", "payload", "queue", "priority", "runAt", "maxAttempts", "uniqueKey"}` →
/// `{"id", "duplicate"}`.
async fn enqueue(
    State(app): State<AppState>,
    Auth(c): Auth,
    q: Query,
    body: Body,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    Ok(ok(
        galley_core::jobs::enqueue(&app, &body.values).await?,
        &q,
    ))
}

async fn view(
    State(app): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    Ok(ok(to_value(galley_core::jobs::view(&app, &id).await?)?, &q))
}

async fn retry(
    State(app): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    app.jobs().retry(&id).await.map_err(CoreError::from)?;
    Ok(no_content())
}

async fn remove(
    State(app): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    app.jobs().delete(&id).await.map_err(CoreError::from)?;
    Ok(no_content())
}
