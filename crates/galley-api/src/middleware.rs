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

/// `settings.superuserIPs`: when the list is not empty, superusers may act only from an
/// address in it. Refused (PocketBase's 403): calls with a superuser's token, the
/// `_superusers` collection's endpoints (so sign-in too), and every dashboard page.
pub async fn superuser_ips(
    axum::extract::State(app): axum::extract::State<crate::AppState>,
    req: Request,
    next: Next,
) -> Response {
    let settings = app.settings();
    if settings.superuser_ips.is_empty() {
        return next.run(req).await;
    }
    let path = req.uri().path();
    let dashboard = path == "/_" || path.starts_with("/_/");
    let guarded = dashboard
        || req
            .extensions()
            .get::<galley_core::Caller>()
            .is_some_and(|c| c.is_superuser())
        || superusers_path(&app, path);
    if !guarded {
        return next.run(req).await;
    }
    let peer = galley_http::peer(req.extensions());
    if settings.superuser_ip_allowed(&galley_http::client_ip(&app, peer, req.headers())) {
        return next.run(req).await;
    }
    if dashboard {
        let mut r = Response::new(axum::body::Body::from(
            "403 Forbidden: this address may not use the dashboard (settings.superuserIPs).\n",
        ));
        *r.status_mut() = axum::http::StatusCode::FORBIDDEN;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return r;
    }
    axum::response::IntoResponse::into_response(crate::error::ApiError(
        galley_core::CoreError::Forbidden("You are not allowed to perform this request.".into()),
    ))
}

fn superusers_path(app: &galley_core::App, path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/collections/") else {
        return false;
    };
    let segment = rest.split('/').next().unwrap_or_default();
    segment == "_superusers"
        || app
            .schema()
            .find("_superusers")
            .is_some_and(|c| c.id == segment)
}
