use super::{ok, require_superuser};
use crate::error::ApiResult;
use crate::extract::{Auth, Body, Query};
use crate::AppState;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/settings", get(view).patch(update))
        .route("/api/settings/test/s3", axum::routing::post(test_s3))
}

async fn view(State(app): State<AppState>, Auth(c): Auth, q: Query) -> ApiResult<Response> {
    require_superuser(&c)?;
    Ok(ok(app.settings().public_json(), &q))
}

async fn update(
    State(app): State<AppState>,
    Auth(c): Auth,
    q: Query,
    body: Body,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    let s = app.update_settings(Value::Object(body.values)).await?;
    Ok(ok(s.public_json(), &q))
}

async fn test_s3(State(app): State<AppState>, Auth(c): Auth, body: Body) -> ApiResult<Response> {
    require_superuser(&c)?;
    let fs = body
        .values
        .get("filesystem")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    galley_core::files::test_s3(&app, &fs).await?;
    Ok(super::no_content())
}
