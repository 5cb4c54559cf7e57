use super::ok;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Query, Req};
use crate::AppState;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use galley_core::batch::{self, BatchRequest};
use galley_http::ClientIp;
use serde_json::{Map, Value};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/batch", post(run))
}

fn invalid() -> ApiError {
    ApiError::bad_request("Invalid batch request data.")
}

/// PocketBase's default `batch.maxBodySize` (0 in settings): 128 MiB.
const DEFAULT_MAX_BODY: u64 = 128 << 20;

async fn run(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Req(outer): Req,
    q: Query,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    let limit = match u64::try_from(app.settings().batch.max_body_size) {
        Ok(n) if n > 0 => n,
        _ => DEFAULT_MAX_BODY,
    };
    let mut body = Body::read(req, &app, limit).await?;
    // File parts name their sub-request: `requests.N.field`.
    let mut uploads: std::collections::BTreeMap<usize, Vec<galley_core::files::Upload>> =
        Default::default();
    for mut up in std::mem::take(&mut body.files) {
        let Some((n, key)) = up
            .key
            .strip_prefix("requests.")
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(n, key)| Some((n.parse::<usize>().ok()?, key.to_owned())))
        else {
            continue;
        };
        up.key = key;
        uploads.entry(n).or_default().push(up);
    }
    let requests = match body.values.get("requests") {
        Some(Value::Array(a)) => a.clone(),
        None | Some(Value::Null) => vec![],
        Some(_) => return Err(invalid()),
    };
    let mut parsed = Vec::with_capacity(requests.len());
    for (i, r) in requests.into_iter().enumerate() {
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
        // As PocketBase: the outer request's headers, with the sub-request's over them,
        // except the caller's authorization and what a proxy set about the client.
        let mut headers = outer.meta.headers.clone();
        for (k, v) in obj("headers")? {
            if !k.eq_ignore_ascii_case("authorization") && !galley_http::is_proxy_header(&app, &k) {
                headers.insert(k.to_ascii_lowercase().replace('-', "_"), v);
            }
        }
        let body = obj("body")?;
        super::records::limit_password_write(&app, &outer, &ip, &body)?;
        parsed.push(BatchRequest {
            method: text("method"),
            url: text("url"),
            body,
            headers,
            uploads: uploads.remove(&i).unwrap_or_default(),
        });
    }
    Ok(ok(batch::run(&app, parsed, &outer.caller).await?, &q))
}
