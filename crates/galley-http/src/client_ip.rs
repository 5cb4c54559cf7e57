//! The client's IP address: the TCP peer's, or the one a trusted proxy put in a header.

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use galley_core::App;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;

/// PocketBase's `trustedProxy` settings: the headers that carry the client IP (tried in
/// order) and whether to take the left-most entry of a list. The only place they are read.
fn trusted_proxy(app: &App) -> (Vec<String>, bool) {
    let settings = app.settings();
    let headers = settings
        .0
        .pointer("/trustedProxy/headers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let leftmost = settings
        .0
        .pointer("/trustedProxy/useLeftmostIP")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    (headers, leftmost)
}

/// The client IP: the connection's, or the configured proxy header's (right-most entry
/// unless `useLeftmostIP`), as PocketBase's `trustedProxy` settings say. Empty when the
/// server runs without connect info and no proxy header applies.
pub fn client_ip(app: &App, peer: Option<SocketAddr>, headers: &HeaderMap) -> String {
    let (names, leftmost) = trusted_proxy(app);
    for n in &names {
        if let Some(v) = headers.get(n.as_str()).and_then(|v| v.to_str().ok()) {
            let mut parts = v.split(',').map(str::trim).filter(|s| !s.is_empty());
            let ip = if leftmost {
                parts.next()
            } else {
                parts.next_back()
            };
            if let Some(ip) = ip {
                return ip.to_owned();
            }
        }
    }
    peer.map(|p| p.ip().to_string()).unwrap_or_default()
}

/// Extracts [`client_ip`] for a handler.
pub struct ClientIp(pub String);

impl<S> FromRequestParts<S> for ClientIp
where
    S: Send + Sync,
    Arc<App>: FromRef<S>,
{
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = Arc::<App>::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        Ok(ClientIp(client_ip(&app, peer, &parts.headers)))
    }
}
