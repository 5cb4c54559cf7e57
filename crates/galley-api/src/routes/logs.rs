//! `/api/logs`: the stored request and app logs (galley-ops), superusers only, in
//! PocketBase's shapes.

use super::{no_content, ok, page, require_superuser};
use crate::error::ApiResult;
use crate::extract::{Auth, Query};
use crate::AppState;
use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use galley_ops::Logs;
use std::sync::Arc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/logs", get(list).delete(clear))
        .route("/api/logs/stats", get(stats))
        .route("/api/logs/{id}", get(view))
}

async fn list(
    Extension(logs): Extension<Arc<Logs>>,
    Auth(c): Auth,
    q: Query,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    let p = page(&q)?;
    let filter = q.get("filter").unwrap_or_default().to_owned();
    let sort = q.get("sort").unwrap_or_default().to_owned();
    Ok(ok(logs.list(&c, p, &filter, &sort).await?, &q))
}

async fn stats(
    Extension(logs): Extension<Arc<Logs>>,
    Auth(c): Auth,
    q: Query,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    let filter = q.get("filter").unwrap_or_default().to_owned();
    Ok(ok(logs.stats(&c, &filter).await?, &q))
}

async fn view(
    Extension(logs): Extension<Arc<Logs>>,
    Auth(c): Auth,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    Ok(ok(logs.view(&id).await?, &q))
}

async fn clear(Extension(logs): Extension<Arc<Logs>>, Auth(c): Auth) -> ApiResult<Response> {
    require_superuser(&c)?;
    logs.delete_all().await?;
    Ok(no_content())
}
