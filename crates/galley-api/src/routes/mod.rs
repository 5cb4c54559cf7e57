mod auth;
mod backups;
mod batch;
mod collections;
mod crons;
mod files;
mod health;
mod jobs;
mod logs;
mod realtime;
mod realtime_ws;
mod records;
mod settings;

use crate::error::{json_response, ApiError, ApiResult};
use crate::extract::Query;
use crate::AppState;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Router;
use galley_core::Page;
use galley_core::{Caller, CoreError};
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(collections::router())
        .merge(records::router())
        .merge(files::router())
        .merge(auth::router())
        .merge(batch::router())
        .merge(settings::router())
        .merge(crons::router())
        .merge(jobs::router())
        .merge(logs::router())
        .merge(backups::router())
        .merge(realtime::router())
        .merge(realtime_ws::router())
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
}

/// PocketBase has no 405: unknown GETs are "File not found.", everything else 404.
async fn not_found(method: Method) -> Response {
    let message = if method == Method::GET {
        "File not found."
    } else {
        galley_core::error::NOT_FOUND
    };
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"data": {}, "message": message, "status": 404}),
    )
}

/// A service's result as the JSON body PocketBase answers with. Results are moved into the
/// body, never copied (a `serde_json::to_value` of a page would clone every record).
pub trait IntoBody {
    fn into_body(self) -> Value;
}

impl IntoBody for Value {
    fn into_body(self) -> Value {
        self
    }
}

impl IntoBody for galley_core::ListResult<Value> {
    fn into_body(self) -> Value {
        // Built by hand: `json!` serialises its values by reference, which would copy them.
        let mut m = serde_json::Map::new();
        m.insert("items".into(), Value::Array(self.items));
        m.insert("page".into(), self.page.into());
        m.insert("perPage".into(), self.per_page.into());
        m.insert("totalItems".into(), self.total_items.into());
        m.insert("totalPages".into(), self.total_pages.into());
        Value::Object(m)
    }
}

impl IntoBody for galley_core::auth::AuthResult {
    fn into_body(self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("record".into(), self.record);
        m.insert("token".into(), Value::String(self.token));
        if let Some(meta) = self.meta {
            m.insert("meta".into(), meta);
        }
        Value::Object(m)
    }
}

impl IntoBody for Vec<galley_core::batch::BatchItem> {
    fn into_body(self) -> Value {
        Value::Array(
            self.into_iter()
                .map(|i| {
                    let mut m = serde_json::Map::new();
                    m.insert("body".into(), i.body.unwrap_or(Value::Null));
                    m.insert("status".into(), i.status.into());
                    Value::Object(m)
                })
                .collect(),
        )
    }
}

/// A 200 JSON response of a service's result, with the generic `fields=` picker applied.
pub fn ok(body: impl IntoBody, q: &Query) -> Response {
    let body = body.into_body();
    let body = match q.get("fields") {
        Some(f) if !galley_core::picker::is_valid(f) => {
            return axum::response::IntoResponse::into_response(ApiError::bad_request(
                "Invalid fields parameter.",
            ));
        }
        Some(f) => galley_core::picker::pick(body, f),
        None => body,
    };
    json_response(StatusCode::OK, &body)
}

pub fn no_content() -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

pub fn require_superuser(c: &Caller) -> ApiResult<()> {
    match c {
        _ if c.is_superuser() => Ok(()),
        // PocketBase says "record" here even on superuser-only endpoints.
        Caller::Guest => Err(ApiError(CoreError::Unauthorized(
            "The request requires valid record authorization token.".into(),
        ))),
        Caller::Record { .. } => Err(ApiError(CoreError::Forbidden(
            "The authorized record is not allowed to perform this action.".into(),
        ))),
    }
}

const MAX_PER_PAGE: i64 = 1000;

/// `page`, `perPage` and `skipTotal`, with PocketBase's defaults and limits.
pub fn page(q: &Query) -> ApiResult<Page> {
    let int = |key: &str, default: i64| -> ApiResult<i64> {
        match q.get(key).map(str::trim) {
            None | Some("") => Ok(default),
            Some(s) => s.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("Invalid {key} parameter: must be an integer."))
            }),
        }
    };
    let page = int("page", 1)?;
    // Above 1,000 PocketBase answers 1,000 items (and says so in `perPage`).
    let per_page = int("perPage", 30)?.min(MAX_PER_PAGE);
    let skip_total = matches!(
        q.get("skipTotal"),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True")
    );
    Ok(Page {
        page: if page <= 0 {
            1
        } else {
            page.min(1_000_000_000) as usize
        },
        per_page: if per_page <= 0 { 30 } else { per_page as usize },
        skip_total,
    })
}
