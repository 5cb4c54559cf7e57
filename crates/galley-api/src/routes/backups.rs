//! `/api/backups`: galley-ops' backups in PocketBase's shapes, superusers only (downloads
//! with a superuser's file token in `?token=`, as PocketBase).

use super::{no_content, ok, require_superuser};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Body, Query};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use galley_core::CoreError;
use galley_ops::Backups;
use serde_json::Value;
use std::sync::Arc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/backups", get(list).post(create))
        .route("/api/backups/upload", post(upload))
        .route("/api/backups/{key}", get(download).delete(remove))
        .route("/api/backups/{key}/restore", post(restore))
}

async fn list(
    Extension(b): Extension<Arc<Backups>>,
    Auth(c): Auth,
    q: Query,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    Ok(ok(b.list().await?, &q))
}

async fn create(
    Extension(b): Extension<Arc<Backups>>,
    Auth(c): Auth,
    body: Body,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    let name = match body.values.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::bad_request(
                "An error occurred while loading the submitted data.",
            ))
        }
    };
    b.create(name.as_deref()).await?;
    Ok(no_content())
}

async fn upload(
    Extension(b): Extension<Arc<Backups>>,
    Auth(c): Auth,
    body: Body,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    let Some(f) = body.files.iter().find(|f| f.key == "file") else {
        return Err(ApiError(CoreError::BadRequest {
            message: "An error occurred while validating the submitted data.".into(),
            data: serde_json::json!({"file": {"code": "validation_required", "message": "Cannot be blank."}}),
        }));
    };
    b.upload(&f.original_name, &f.temp, &f.head).await?;
    Ok(no_content())
}

async fn download(
    State(app): State<AppState>,
    Extension(b): Extension<Arc<Backups>>,
    Path(key): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let token = q.get("token").unwrap_or_default();
    let caller = if token.is_empty() {
        galley_core::Caller::Guest
    } else {
        galley_core::identity::authenticate_as(&app, token, galley_core::tokens::Kind::File).await
    };
    if !caller.is_superuser() {
        return Err(ApiError(CoreError::Forbidden(
            "Insufficient permissions to access the resource.".into(),
        )));
    }
    let file = b.open(&key).await?;
    let (len, stream) = (file.len, file.body);
    let mut res = Response::new(axum::body::Body::from_stream(stream));
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{key}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

async fn remove(
    Extension(b): Extension<Arc<Backups>>,
    Auth(c): Auth,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    b.delete(&key).await?;
    Ok(no_content())
}

async fn restore(
    Extension(b): Extension<Arc<Backups>>,
    Auth(c): Auth,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    require_superuser(&c)?;
    b.restore(&key).await?;
    Ok(no_content())
}
