//! The API's own layers: the caller from the `Authorization` header, and
//! `settings.rateLimits` (which counts only `/api/` requests). The `galley` crate puts them,
//! with galley-http's shared layers, around the API and the dashboard together.

use crate::AppState;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use galley_core::Caller;

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
    let caller = crate::extract::caller_of(req.extensions());
    let peer = galley_http::peer(req.extensions());
    let ip = || galley_http::client_ip(&app, peer, req.headers());
    if let Err(e) = app.check_rate_rules(&caller, ip, req.method().as_str(), req.uri().path()) {
        return axum::response::IntoResponse::into_response(crate::error::ApiError(e));
    }
    next.run(req).await
}
