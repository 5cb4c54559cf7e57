use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use galley_core::Caller;
use tower_http::cors::{AllowHeaders, Any, CorsLayer};

/// Resolves the `Authorization` header (raw token or `Bearer …`) to a [`Caller`] stored in
/// the request's extensions. Invalid tokens make a guest, as in PocketBase.
pub async fn authenticate(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            let s = s.trim();
            match s.get(..7) {
                Some(p) if p.eq_ignore_ascii_case("bearer ") => s[7..].trim().to_owned(),
                _ => s.to_owned(),
            }
        })
        .filter(|t| !t.is_empty() && t.len() < 8192);
    let caller = match token {
        Some(t) => galley_core::superusers::authenticate(&app, &t).await,
        None => Caller::Guest,
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

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
