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
        Some(t) => galley_core::identity::authenticate(&app, &t).await,
        None => Caller::Guest,
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Records each API request in the dashboard's request log (`/_/logs`); the dashboard's own
/// pages are not API traffic and are left out.
pub async fn log_requests(
    State(log): State<galley_admin::RequestLog>,
    req: Request,
    next: Next,
) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let start = std::time::Instant::now();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let caller = match req.extensions().get::<Caller>() {
        Some(c) if c.is_superuser() => "superuser".to_owned(),
        Some(Caller::Record { collection, .. }) => format!("auth:{}", collection.name),
        _ => "guest".to_owned(),
    };
    let res = next.run(req).await;
    log.push(galley_admin::Entry {
        time: chrono::Utc::now(),
        method,
        path,
        status: res.status().as_u16(),
        duration_us: start.elapsed().as_micros().min(u64::MAX as u128) as u64,
        caller,
        ip,
    });
    res
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

/// `settings.rateLimits`: the first matching rule counts the request per client IP; over
/// its limit the answer is PocketBase's 429 with a Retry-After.
pub async fn rate_limit(
    axum::extract::State(app): axum::extract::State<crate::AppState>,
    req: Request,
    next: Next,
) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let caller = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_default();
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let ip = || crate::extract::client_ip(&app, peer, req.headers());
    if let Err(e) = app.check_rate_rules(&caller, ip, req.method().as_str(), req.uri().path()) {
        return axum::response::IntoResponse::into_response(crate::error::ApiError(e));
    }
    next.run(req).await
}
