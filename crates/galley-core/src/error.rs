use galley_store::StoreError;
use galley_types::FieldErrors;
use serde_json::Value;

/// Every failure a service can report. The API turns each into PocketBase's
/// `{data, message, status}` in one place (galley-api's `error.rs`).
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// 400 with a message and optional per-field errors or other data.
    #[error("{message}")]
    BadRequest { message: String, data: Value },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    /// 429 `Too Many Requests.`; the client may retry after this many seconds.
    #[error("too many requests")]
    TooManyRequests { retry_after: u64 },
    /// The first factor succeeded and a second one is required: 401 with only `{"mfaId"}`.
    #[error("multi-factor authentication required")]
    MfaRequired(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// 503 with this message: a configured capacity is used up (realtime connections).
    #[error("{0}")]
    Overloaded(String),
    /// Request `index` of a batch failed with `error`; the whole batch rolled back.
    #[error("batch request {index} failed: {error}")]
    BatchFailed { index: usize, error: Box<CoreError> },
    /// Never shown to the client beyond a generic message; logged in full, with the chain of
    /// causes (see [`CoreError::internal`]).
    #[error("internal error: {0}")]
    Internal(String),
}

pub const GENERIC_400: &str = "Something went wrong while processing your request.";
pub const NOT_FOUND: &str = "The requested resource wasn't found.";
pub const SUPERUSER_ONLY: &str = "Only superusers can perform this action.";

impl CoreError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        CoreError::BadRequest {
            message: message.into(),
            data: Value::Object(Default::default()),
        }
    }
    pub fn validation(message: impl Into<String>, errors: FieldErrors) -> Self {
        CoreError::BadRequest {
            message: message.into(),
            data: errors.to_json(),
        }
    }
    pub fn not_found() -> Self {
        CoreError::NotFound(NOT_FOUND.into())
    }
    pub fn superuser_only() -> Self {
        CoreError::Forbidden(SUPERUSER_ONLY.into())
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => CoreError::Unavailable(m),
            StoreError::Closed => CoreError::Unavailable("the server is shutting down".into()),
            StoreError::TimedOut => CoreError::bad_request(
                "The query took too long and was stopped. Narrow the filter or sort (fields that are not indexed make it slow).",
            ),
            other => CoreError::internal(&other),
        }
    }
}

impl CoreError {
    /// A 500 whose log line carries `e` and every error beneath it (`a: b: c`), so the cause
    /// survives into the log while the answer stays generic.
    pub fn internal(e: &(dyn std::error::Error + 'static)) -> Self {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let next = s.to_string();
            // thiserror's `#[error("{0}")]` repeats the source's text; keep it once.
            if !text.ends_with(&next) {
                text.push_str(": ");
                text.push_str(&next);
            }
            source = s.source();
        }
        CoreError::Internal(text)
    }
}

impl From<galley_auth::oauth2::ProviderError> for CoreError {
    fn from(e: galley_auth::oauth2::ProviderError) -> Self {
        use galley_auth::oauth2::ProviderError;
        tracing::info!(error = %e, "OAuth2 provider error");
        match e {
            ProviderError::Token(_) => CoreError::bad_request("Failed to fetch OAuth2 token."),
            ProviderError::User(_) => CoreError::bad_request("Failed to fetch OAuth2 user."),
            ProviderError::Config(m) => CoreError::Internal(format!("OAuth2 provider: {m}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner cause")]
    struct Inner;

    #[test]
    fn internal_errors_keep_their_causes_for_the_log() {
        match CoreError::internal(&Outer(Inner)) {
            CoreError::Internal(t) => assert_eq!(t, "outer: inner cause"),
            other => panic!("{other:?}"),
        }
    }
}
