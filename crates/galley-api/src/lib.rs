//! Galley's HTTP layer: one axum router per API group, merged in [`router`]. Handlers parse
//! input into domain types, call a `galley-core` service and shape the JSON; every error
//! becomes PocketBase's `{data, message, status}` in [`error`].
//!
//! Architecture invariant: no SQL and no business rule lives here.

pub mod error;
pub mod extract;
mod middleware;
mod routes;

use axum::Router;
use galley_core::App;
use std::net::SocketAddr;
use std::sync::Arc;

pub type AppState = Arc<App>;

/// The whole API.
pub fn router(app: AppState) -> Router {
    let requests = galley_admin::RequestLog::default();
    routes::router()
        .merge(galley_admin::router(requests.clone()))
        // Inside the request log (a 429 is logged) and `authenticate` (rules have audiences).
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            middleware::rate_limit,
        ))
        // Inside `authenticate`, so each entry knows its caller.
        .layer(axum::middleware::from_fn_with_state(
            requests,
            middleware::log_requests,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            middleware::authenticate,
        ))
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(middleware::cors())
        .with_state(app)
}

/// A connection whose peer acknowledges nothing for this long is aborted by the kernel
/// (`TCP_USER_TIMEOUT`, which also ends zero-window probing). Without it a client that stops
/// reading, after the realtime hub has dropped it, would hold a task, hyper's buffers and a
/// full socket send buffer for as long as it keeps the connection open.
const STALLED_PEER: std::time::Duration = std::time::Duration::from_secs(60);

/// Serves the API on `listener` until `shutdown` resolves, then drains open requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let svc = router(app).into_make_service_with_connect_info::<SocketAddr>();
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = socket2::SockRef::from(&*tcp).set_tcp_user_timeout(Some(STALLED_PEER)) {
            tracing::debug!(error = %e, "cannot set TCP_USER_TIMEOUT");
        }
    });
    axum::serve(listener, svc)
        .with_graceful_shutdown(shutdown)
        .await
}
