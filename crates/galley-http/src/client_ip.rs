//! The client's IP address: the TCP peer's, or the one a trusted proxy put in a header.

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use galley_core::App;
use std::net::SocketAddr;
use std::sync::Arc;

/// The client IP: the connection's, or the configured proxy header's (right-most entry
/// unless `useLeftmostIP`), as PocketBase's `trustedProxy` settings say. Empty when the
/// server runs without connect info and no proxy header applies.
pub fn client_ip(app: &App, peer: Option<SocketAddr>, headers: &HeaderMap) -> String {
    let settings = app.settings();
    let proxy = &settings.trusted_proxy;
    let leftmost = proxy.use_leftmost_ip;
    for n in &proxy.headers {
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

/// The TCP peer of a request, when the server was started with connect info.
pub fn peer(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// Headers a proxy in front of the server sets about the client (its address, the
/// forwarding chain): those of `settings.trustedProxy.headers` and the usual ones.
const FORWARDING: [&str; 9] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-client-ip",
    "cf-connecting-ip",
    "true-client-ip",
    "fly-client-ip",
];

/// Whether header `name` (any case, `_` or `-`) is one a proxy sets about the client: a
/// batch sub-request may not replace it.
pub fn is_proxy_header(app: &App, name: &str) -> bool {
    let norm = |s: &str| s.to_ascii_lowercase().replace('_', "-");
    let name = norm(name);
    FORWARDING.contains(&name.as_str())
        || app
            .settings()
            .trusted_proxy
            .headers
            .iter()
            .any(|h| norm(h) == name)
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
        Ok(ClientIp(client_ip(
            &app,
            peer(&parts.extensions),
            &parts.headers,
        )))
    }
}
