//! Headers every response gets, API and dashboard alike (the dashboard adds its own CSP
//! inside these), and PocketBase's permissive CORS.

use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowHeaders, Any, CorsLayer};

/// Response marker: leave out `X-Frame-Options`.
#[derive(Debug, Clone, Copy)]
pub struct AllowFraming;

pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let framing = res.extensions().get::<AllowFraming>().is_some();
    let h = res.headers_mut();
    h.insert(
        "x-xss-protection",
        HeaderValue::from_static("1; mode=block"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // Files may be shown in frames (PocketBase drops the header for them).
    if !framing {
        h.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
    }
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    res
}

pub fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::PATCH,
            Method::POST,
            Method::DELETE,
        ])
        .allow_headers(AllowHeaders::mirror_request())
}
