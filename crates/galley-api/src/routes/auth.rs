use super::ok;
use crate::error::ApiResult;
use crate::extract::{Auth, Body, Query};
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use galley_core::superusers;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/collections/{collection}/auth-with-password", post(auth_with_password))
        .route("/api/collections/{collection}/auth-refresh", post(auth_refresh))
}

async fn auth_with_password(State(app): State<AppState>, Path(col): Path<String>, q: Query, body: Body) -> ApiResult<Response> {
    let s = |k: &str| match body.values.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let identity_field = body.values.get("identityField").and_then(Value::as_str).filter(|s| !s.is_empty());
    let res = superusers::auth_with_password(&app, &col, &s("identity"), &s("password"), identity_field).await?;
    Ok(ok(res, &q))
}

async fn auth_refresh(State(app): State<AppState>, Auth(c): Auth, Path(col): Path<String>, q: Query) -> ApiResult<Response> {
    Ok(ok(superusers::auth_refresh(&app, &col, &c).await?, &q))
}
