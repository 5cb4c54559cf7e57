use super::ok;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Body, Query};
use crate::AppState;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use galley_core::batch::{self, BatchRequest};
use serde_json::{Map, Value};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/batch", post(run))
}

fn invalid() -> ApiError {
    ApiError::bad_request("Invalid batch request data.")
}

async fn run(
    State(app): State<AppState>,
    Auth(c): Auth,
    q: Query,
    body: Body,
) -> ApiResult<Response> {
    let requests = match body.values.get("requests") {
        Some(Value::Array(a)) => a.clone(),
        None | Some(Value::Null) => vec![],
        Some(_) => return Err(invalid()),
    };
    let mut parsed = Vec::with_capacity(requests.len());
    for r in requests {
        let Value::Object(r) = r else {
            return Err(invalid());
        };
        let text = |k: &str| {
            r.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let obj = |k: &str| match r.get(k) {
            Some(Value::Object(o)) => Ok(o.clone()),
            None | Some(Value::Null) => Ok(Map::new()),
            Some(_) => Err(invalid()),
        };
        let mut headers = Map::new();
        for (k, v) in obj("headers")? {
            if !k.eq_ignore_ascii_case("authorization") {
                headers.insert(k.to_ascii_lowercase().replace('-', "_"), v);
            }
        }
        parsed.push(BatchRequest {
            method: text("method"),
            url: text("url"),
            body: obj("body")?,
            headers,
        });
    }
    Ok(ok(batch::run(&app, parsed, &c).await?, &q))
}
