use crate::error::ApiResult;
use crate::extract::Query;
use crate::AppState;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/health", get(health).head(health))
        .route("/api/health/ready", get(ready).head(ready))
}

/// How long readiness waits for the database before answering 503.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Readiness (for a load balancer or an orchestrator): the database answers a query.
/// `/api/health` stays liveness (the process serves HTTP), as in PocketBase.
async fn ready(State(app): State<AppState>, q: Query) -> ApiResult<Response> {
    app.check_database(READY_WITHIN).await?;
    Ok(super::ok(
        json!({"message": "API is ready.", "code": 200, "data": {}}),
        &q,
    ))
}

async fn health(q: Query) -> Response {
    super::ok(
        json!({"message": "API is healthy.", "code": 200, "data": {}}),
        &q,
    )
}
