//! The routes hook files add with `routerAdd`: matched before the API's own 404, run on
//! the pool with routerUse's and the route's middlewares, answered with what the handler
//! wrote (`e.json`, `e.string`, ...) or PocketBase's error JSON for what it threw.

use crate::events::engine_error;
use crate::{engine, Shared};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use galley_core::{App, Caller};
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// The largest body a hook route reads (PocketBase's default body limit).
const MAX_BODY: usize = 32 << 20;

fn error_response(status: u16, message: &str, data: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    galley_api::error::json_response(
        status,
        &json!({"data": data, "message": message, "status": status.as_u16()}),
    )
}

fn request_json(
    shared: &Shared,
    app: &App,
    req: &axum::http::request::Parts,
    params: Vec<(String, String)>,
    body: &[u8],
) -> String {
    let mut headers = Map::new();
    for (k, v) in &req.headers {
        headers
            .entry(k.as_str().to_owned())
            .or_insert_with(|| json!(String::from_utf8_lossy(v.as_bytes())));
    }
    let peer = req
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = galley_http::client_ip(app, peer, &req.headers);
    let (auth, auth_col) = match req.extensions.get::<Caller>() {
        Some(Caller::Record { collection, record }) => (
            Value::Object(record.clone()),
            Value::String(shared.collection_json(collection).to_string()),
        ),
        _ => (Value::Null, Value::Null),
    };
    json!({
        "method": req.method.as_str(),
        "path": req.uri.path(),
        "query": req.uri.query().unwrap_or_default(),
        "headers": headers,
        "pathParams": params.into_iter().map(|(k, v)| (k, Value::String(v))).collect::<Map<String, Value>>(),
        "body": String::from_utf8_lossy(body),
        "auth": auth,
        "authCollection": auth_col,
        "ip": ip,
    })
    .to_string()
}

pub(crate) async fn handle(shared: &Arc<Shared>, req: Request) -> Result<Response, Request> {
    let reg = shared.registry();
    if !reg.has_routes() {
        return Err(req);
    }
    let Some((route, params)) = reg.route(req.method().as_str(), req.uri().path()) else {
        return Err(req);
    };
    let (handler, mws) = (route.handler, route.mws.clone());
    let params: Vec<(String, String)> = params;
    let Some(app) = shared.app() else {
        return Ok(error_response(503, "The server is starting.", json!({})));
    };
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return Ok(error_response(413, "Request entity too large", json!({}))),
    };
    let req_json = request_json(shared, &app, &parts, params, &body);
    let s = shared.clone();
    let out = shared
        .pool
        .run(move || {
            engine::with(&s, |js| {
                engine::call(js, "route", vec![req_json, handler.to_string(), mws])
            })
        })
        .await;
    let out = match out {
        Some(Ok(o)) => o,
        Some(Err(e)) => {
            let _ = engine_error(e);
            return Ok(error_response(
                500,
                galley_core::error::GENERIC_400,
                json!({}),
            ));
        }
        None => return Ok(error_response(503, "The hooks are not running.", json!({}))),
    };
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    if let Some(err) = v.get("error") {
        if let Some(log) = err["log"].as_str() {
            tracing::error!(target: "hooks", path = %parts.uri.path(), error = %log, "route handler failed");
        }
        let status = err["status"].as_u64().unwrap_or(500) as u16;
        let message = err["message"].as_str().unwrap_or_default();
        return Ok(error_response(status, message, err["data"].clone()));
    }
    let reply = &v["reply"];
    if reply["set"] != json!(true) {
        return Ok(StatusCode::OK.into_response());
    }
    let status = StatusCode::from_u16(reply["status"].as_u64().unwrap_or(200) as u16)
        .unwrap_or(StatusCode::OK);
    let mut resp = Response::new(Body::from(
        reply["body"].as_str().unwrap_or_default().to_owned(),
    ));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let Some(t) = reply["type"].as_str().filter(|t| !t.is_empty()) {
        if let Ok(v) = HeaderValue::from_str(t) {
            h.insert(axum::http::header::CONTENT_TYPE, v);
        }
    }
    if let Some(extra) = v["headers"].as_object() {
        for (k, val) in extra {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(val.as_str().unwrap_or_default()),
            ) {
                h.insert(n, v);
            }
        }
    }
    Ok(resp)
}
