//! `$http.send({url, method, body, headers, timeout})`: an outgoing request from a hook,
//! bounded in time (its own timeout, never beyond the hook's limit) and in the size of
//! the answer it reads.

use crate::Shared;
use galley_core::CoreError;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// The most of an answer a hook reads (PocketBase reads it whole; a hook's memory is
/// bounded, so the answer is too).
const MAX_BODY: usize = 16 << 20;

pub(crate) fn send(shared: &Shared, a: &Value) -> Result<Value, CoreError> {
    let url = a["url"].as_str().unwrap_or_default().to_owned();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(CoreError::bad_request(format!(
            "$http.send: {url:?} is not an http(s) URL"
        )));
    }
    let method = reqwest::Method::from_bytes(a["method"].as_str().unwrap_or("GET").as_bytes())
        .map_err(|_| CoreError::bad_request("$http.send: invalid method"))?;
    let secs = a["timeout"].as_f64().unwrap_or(120.0).max(0.001);
    let timeout = Duration::from_secs_f64(secs).min(shared.config.timeout);
    let mut req = shared.http.request(method, &url).timeout(timeout);
    if let Some(h) = a["headers"].as_object() {
        for (k, v) in h {
            req = req.header(
                k.as_str(),
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string()),
            );
        }
    }
    let body = a["body"].as_str().unwrap_or_default().to_owned();
    if !body.is_empty() {
        req = req.body(body);
    }
    // The host only: a URL's query may carry a secret, and spans leave the process.
    let host = reqwest::Url::parse(&url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let _span = tracing::info_span!(target: "galley_trace", "http.send", otel.kind = "client", server.address = %host).entered();
    shared.block_on(async move {
        let mut resp = req
            .send()
            .await
            .map_err(|e| CoreError::bad_request(format!("$http.send to {url} failed: {e}")))?;
        let status = resp.status().as_u16();
        let mut headers = Map::new();
        for (k, v) in resp.headers() {
            headers.insert(
                k.as_str().to_owned(),
                json!([v.to_str().unwrap_or_default()]),
            );
        }
        let mut raw = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| CoreError::bad_request(format!("$http.send to {url} failed: {e}")))?
        {
            if raw.len() + chunk.len() > MAX_BODY {
                return Err(CoreError::bad_request(format!(
                    "$http.send: the answer of {url} is larger than {} MiB",
                    MAX_BODY >> 20
                )));
            }
            raw.extend_from_slice(&chunk);
        }
        Ok(json!({
            "statusCode": status,
            "headers": headers,
            "raw": String::from_utf8_lossy(&raw),
        }))
    })
}
