//! The one place where errors become HTTP responses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use galley_core::error::GENERIC_400;
use galley_core::CoreError;
use serde_json::{json, Value};

/// A handler error: a core error, rendered as PocketBase's error JSON.
#[derive(Debug)]
pub struct ApiError(pub CoreError);

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError(CoreError::bad_request(msg))
    }
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    r
}

/// The HTTP status, message and `data` of PocketBase's error shape. Internal details are
/// never exposed (they are logged when the response is made).
fn public_parts(e: &CoreError) -> (u16, String, Value) {
    let empty = || Value::Object(Default::default());
    match e {
        CoreError::BadRequest { message, data } => (400, message.clone(), data.clone()),
        CoreError::Unauthorized(m) => (401, m.clone(), empty()),
        CoreError::Forbidden(m) => (403, m.clone(), empty()),
        CoreError::NotFound(m) => (404, m.clone(), empty()),
        CoreError::TooLarge(m) => (413, m.clone(), empty()),
        CoreError::TooManyRequests { .. } => (429, "Too Many Requests.".into(), empty()),
        CoreError::MfaRequired(_) => (401, "Missing or invalid authentication.".into(), empty()),
        CoreError::Unavailable(_) => (
            503,
            "The database is temporarily unavailable. Try again shortly.".into(),
            empty(),
        ),
        CoreError::Overloaded(m) => (503, m.clone(), empty()),
        CoreError::BatchFailed { index, error } => (
            400,
            "Batch transaction failed.".into(),
            json!({"requests": {index.to_string(): {
                "code": "batch_request_failed",
                "message": "Batch request failed.",
                "response": body(error),
            }}}),
        ),
        CoreError::Internal(_) => (500, GENERIC_400.into(), empty()),
    }
}

/// PocketBase's error body.
pub fn body(e: &CoreError) -> Value {
    if let CoreError::MfaRequired(id) = e {
        return json!({"mfaId": id});
    }
    let (status, message, data) = public_parts(e);
    json!({"data": data, "message": message, "status": status})
}

fn log(e: &CoreError) {
    match e {
        CoreError::Internal(detail) => tracing::error!(%detail, "internal error"),
        CoreError::Unavailable(detail) => tracing::warn!(%detail, "database unavailable"),
        CoreError::BatchFailed { error, .. } => log(error),
        _ => {}
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        log(&self.0);
        let (status, message, _) = public_parts(&self.0);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = json_response(status, &body(&self.0));
        let details = match &self.0 {
            CoreError::Internal(d) | CoreError::Unavailable(d) => d.clone(),
            CoreError::BadRequest { data, .. }
                if !data.as_object().is_some_and(|m| m.is_empty()) =>
            {
                data.to_string()
            }
            _ => String::new(),
        };
        r.extensions_mut()
            .insert(galley_http::ErrorNote { message, details });
        if let CoreError::TooManyRequests { retry_after } = &self.0 {
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*retry_after),
            );
        }
        r
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
