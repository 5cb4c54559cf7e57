//! The request-log layer: every `/api/` request becomes a log entry in PocketBase's shape
//! (`data.type = "request"`, `method`, `url`, `status`, `execTime`, `auth`, `authId`,
//! `userIP`, `remoteIP`, `referer`, `userAgent`, `error`, `details`) plus its `requestId`,
//! which the answer also carries as `X-Request-Id`.

use super::{LogEntry, Logs, ERROR, INFO};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use galley_core::Caller;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The request's id: the client's or proxy's `X-Request-Id` when it is a short token,
/// otherwise a new random one. In the request's extensions for handlers and spans.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

const HEADER: &str = "x-request-id";
/// Longest text kept of a URL or a header (a log line is no place for megabytes).
const MAX_TEXT: usize = 2000;

fn request_id(headers: &HeaderMap) -> String {
    if let Some(v) = headers.get(HEADER).and_then(|v| v.to_str().ok()) {
        if !v.is_empty()
            && v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return v.to_owned();
        }
    }
    galley_types::ids::random_from(b"0123456789abcdef", 20)
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut at = MAX_TEXT;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
    s
}

/// The path and query, with the values of `token` parameters hidden: file downloads carry
/// file tokens there, and the log is readable by every superuser for days.
pub fn redacted_url(uri: &axum::http::Uri) -> String {
    let path = uri.path();
    let Some(q) = uri.query() else {
        return cut(path.to_owned());
    };
    let q: Vec<String> = q
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("token") => format!("{k}=***"),
            _ => kv.to_owned(),
        })
        .collect();
    cut(format!("{path}?{}", q.join("&")))
}

fn header(headers: &HeaderMap, name: axum::http::HeaderName) -> String {
    cut(headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned())
}

/// Records each API request (the dashboard's pages are not API traffic). Runs inside the
/// API's authentication, so each entry knows its caller. Successful requests to the logs
/// API itself are not logged, as in PocketBase (reading the logs would fill them).
pub async fn log_requests(State(logs): State<Arc<Logs>>, mut req: Request, next: Next) -> Response {
    let id = request_id(req.headers());
    let api = req.uri().path().starts_with("/api/");
    // Logging off (`maxDays` 0): nothing is gathered at all.
    let keep = logs.app().settings().logs.max_days > 0;
    if !api || !keep {
        req.extensions_mut().insert(RequestId(id.clone()));
        let mut res = next.run(req).await;
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut().insert(HEADER, v);
        }
        return res;
    }
    let start = std::time::Instant::now();
    let method = req.method().as_str().to_owned();
    let url = redacted_url(req.uri());
    let logs_api = req.uri().path().starts_with("/api/logs");
    let peer = galley_http::peer(req.extensions());
    let user_ip = galley_http::client_ip(logs.app(), peer, req.headers());
    let remote_ip = peer.map(|p| p.ip().to_string()).unwrap_or_default();
    let referer = header(req.headers(), axum::http::header::REFERER);
    let user_agent = header(req.headers(), axum::http::header::USER_AGENT);
    let (auth, auth_id) = match req.extensions().get::<Caller>() {
        Some(c @ Caller::Record { collection, .. }) => (
            collection.name.clone(),
            c.id().unwrap_or_default().to_owned(),
        ),
        _ => (String::new(), String::new()),
    };
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HEADER, v);
    }
    let status = res.status().as_u16();
    // The console's request line (off unless `RUST_LOG` asks for `galley::request=debug`).
    tracing::debug!(target: "galley::request", request_id = %id, %method, %url, status, ms = start.elapsed().as_secs_f64() * 1000.0);
    let level = if status >= 400 { ERROR } else { INFO };
    if (logs_api && status < 400) || level < logs.app().settings().logs.min_level {
        return res;
    }
    let exec_ms = start.elapsed().as_secs_f64() * 1000.0;
    let mut data = Map::new();
    data.insert("type".into(), "request".into());
    data.insert("method".into(), method.clone().into());
    data.insert("url".into(), url.clone().into());
    data.insert("status".into(), status.into());
    data.insert("execTime".into(), exec_ms.into());
    data.insert("auth".into(), auth.into());
    if !auth_id.is_empty() {
        data.insert("authId".into(), auth_id.into());
    }
    data.insert("userIP".into(), user_ip.into());
    data.insert("remoteIP".into(), remote_ip.into());
    data.insert("referer".into(), referer.into());
    data.insert("userAgent".into(), user_agent.into());
    data.insert("requestId".into(), id.into());
    if let Some(note) = res.extensions().get::<galley_http::ErrorNote>() {
        data.insert("error".into(), Value::String(note.message.clone()));
        if !note.details.is_empty() {
            data.insert("details".into(), Value::String(cut(note.details.clone())));
        }
    }
    logs.push(LogEntry {
        created: chrono::Utc::now(),
        level,
        message: format!("{method} {url}"),
        data,
    });
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hidden_in_urls() {
        let u: axum::http::Uri = "/api/files/c/r/a.png?thumb=10x10&token=abc.def&x=1"
            .parse()
            .expect("value");
        assert_eq!(
            redacted_url(&u),
            "/api/files/c/r/a.png?thumb=10x10&token=***&x=1"
        );
        let u: axum::http::Uri = "/api/health".parse().expect("value");
        assert_eq!(redacted_url(&u), "/api/health");
    }

    #[test]
    fn request_ids_are_taken_only_when_safe() {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert(HEADER, HeaderValue::from_static("a b"));
        let id = request_id(&h);
        assert_eq!(id.len(), 20);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
