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

/// The request as the engine reads it, written straight to JSON text (borrowed).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestJson<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    path_params: Params<'a>,
    body: std::borrow::Cow<'a, str>,
    auth: Option<&'a Map<String, Value>>,
    auth_collection: Option<&'a str>,
    ip: String,
}

struct Params<'a>(&'a [(String, String)]);

impl serde::Serialize for Params<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// The headers as a JSON object (the first value of a repeated name).
struct HeadersJson<'a>(&'a axum::http::HeaderMap);

impl serde::Serialize for HeadersJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.keys().filter_map(|k| {
            self.0
                .get(k)
                .map(|v| (k.as_str(), String::from_utf8_lossy(v.as_bytes())))
        }))
    }
}

/// The request's JSON text and its headers' JSON text (parsed by the engine only when a
/// handler reads them).
fn request_json(
    shared: &Shared,
    app: &App,
    req: &axum::http::request::Parts,
    params: &[(String, String)],
    body: &[u8],
) -> (String, String) {
    let peer = req
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = galley_http::client_ip(app, peer, &req.headers);
    let col_json;
    let (auth, auth_collection) = match req.extensions.get::<Caller>() {
        Some(Caller::Record { collection, record }) => {
            col_json = shared.collection_json(collection);
            (Some(record), Some(&*col_json))
        }
        _ => (None, None),
    };
    let r = RequestJson {
        method: req.method.as_str(),
        path: req.uri.path(),
        query: req.uri.query().unwrap_or_default(),
        path_params: Params(params),
        body: String::from_utf8_lossy(body),
        auth,
        auth_collection,
        ip,
    };
    (
        serde_json::to_string(&r).unwrap_or_default(),
        serde_json::to_string(&HeadersJson(&req.headers)).unwrap_or_default(),
    )
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
    let (req_json, headers_json) = request_json(shared, &app, &parts, &params, &body);
    let s = shared.clone();
    let out = shared
        .pool
        .run(move || {
            engine::with(&s, |js| {
                engine::call(
                    js,
                    "route",
                    vec![req_json, headers_json, handler.to_string(), mws],
                )
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
    if let Some(err) = out.strip_prefix('!') {
        let err: Value = serde_json::from_str(err).unwrap_or(Value::Null);
        if let Some(log) = err["log"].as_str() {
            tracing::error!(target: "hooks", path = %parts.uri.path(), error = %log, "route handler failed");
        }
        let status = err["status"].as_u64().unwrap_or(500) as u16;
        let message = err["message"].as_str().unwrap_or_default();
        return Ok(error_response(status, message, err["data"].clone()));
    }
    // "status\ntype\nheaders\nbody"; empty: the handler answered nothing.
    let mut parts4 = out.splitn(4, '\n');
    let (Some(status), Some(kind), Some(headers)) = (parts4.next(), parts4.next(), parts4.next())
    else {
        return Ok(StatusCode::OK.into_response());
    };
    let status = status
        .parse::<u16>()
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let (kind, headers) = (kind.to_owned(), headers.to_owned());
    let body_at = out.len() - parts4.next().map_or(0, str::len);
    let mut out = out;
    let body = out.split_off(body_at);
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if !kind.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kind) {
            h.insert(axum::http::header::CONTENT_TYPE, v);
        }
    }
    if !headers.is_empty() {
        let extra: Map<String, Value> = serde_json::from_str(&headers).unwrap_or_default();
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
