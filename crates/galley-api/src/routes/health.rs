use crate::extract::Query;
use crate::AppState;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/health", get(health).head(health))
}

async fn health(q: Query) -> Response {
    super::ok(
        json!({"message": "API is healthy.", "code": 200, "data": {}}),
        &q,
    )
}
