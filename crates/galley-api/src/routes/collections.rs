use super::{no_content, ok, page, require_superuser};
use crate::error::ApiResult;
use crate::extract::{Auth, Body, Query, Req};
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{delete, get, put};
use axum::Router;
use galley_core::collections;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/collections", get(list).post(create))
        .route("/api/collections/import", put(import))
        .route(
            "/api/collections/{collection}",
            get(view).patch(update).delete(remove),
        )
        .route("/api/collections/{collection}/truncate", delete(truncate))
}

async fn list(State(app): State<AppState>, Auth(c): Auth, q: Query) -> ApiResult<Response> {
    require_superuser(&c)?;
    let p = page(&q)?;
    let list = collections::list(
        &app,
        &c,
        p,
        q.get("filter").unwrap_or_default(),
        q.get("sort").unwrap_or_default(),
    )
    .await?;
    Ok(ok(list, &q))
}

async fn view(
    State(app): State<AppState>,
    Auth(c): Auth,
    Path(col): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    Ok(ok(collections::find(&app, &col)?.to_json(), &q))
}

async fn create(
    State(app): State<AppState>,
    Auth(c): Auth,
    q: Query,
    body: Body,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    Ok(ok(
        collections::create(&app, Value::Object(body.values), collections::By::Request)
            .await?
            .to_json(),
        &q,
    ))
}

/// PocketBase answers 204 (and nothing was changed if it answers anything else).
async fn import(State(app): State<AppState>, Auth(c): Auth, body: Body) -> ApiResult<Response> {
    require_superuser(&c)?;
    collections::import(&app, &Value::Object(body.values)).await?;
    Ok(no_content())
}

async fn update(
    State(app): State<AppState>,
    Auth(c): Auth,
    Path(col): Path<String>,
    q: Query,
    body: Body,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    Ok(ok(
        collections::update(
            &app,
            &col,
            Value::Object(body.values),
            collections::By::Request,
        )
        .await?
        .to_json(),
        &q,
    ))
}

async fn remove(
    State(app): State<AppState>,
    Auth(c): Auth,
    Path(col): Path<String>,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    collections::delete(&app, &col, collections::By::Request).await?;
    Ok(no_content())
}

async fn truncate(
    State(app): State<AppState>,
    Req(r): Req,
    Path(col): Path<String>,
) -> ApiResult<Response> {
    require_superuser(&r.caller)?;
    collections::truncate(&app, &r, &col).await?;
    Ok(no_content())
}
