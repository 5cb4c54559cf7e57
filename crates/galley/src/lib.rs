//! The composition root as a library: the API and the dashboard side by side behind one
//! stack of layers, and the server loop. The binary (`main.rs`) and the end-to-end harness
//! (galley-testkit) both serve exactly this.
//!
//! No global allocator here: jemalloc is the binary's choice alone (`main.rs`).

use axum::middleware::{from_fn, from_fn_with_state};
use axum::{Extension, Router};
use galley_core::App;
use galley_ops::Ops;
use std::net::SocketAddr;
use std::sync::Arc;

/// The whole server: every `/api/` route and every `/_/` page. The dashboard sits inside
/// the same layers as the API (so its pages get the same security headers and CORS); the
/// rate limit and the request log look only at `/api/` paths.
pub fn router(app: Arc<App>, ops: &Ops) -> Router {
    let logs = ops.logs.clone();
    let router = galley_api::router()
        .merge(galley_admin::router(logs.clone()))
        // Inside the request log (a 429 is logged) and `authenticate` (rules have audiences).
        .layer(from_fn_with_state(
            app.clone(),
            galley_api::middleware::rate_limit,
        ))
        // Inside the request log (a refusal is logged), after `authenticate` (the caller).
        .layer(from_fn_with_state(
            app.clone(),
            galley_api::middleware::superuser_ips,
        ))
        // Inside `authenticate`, so each entry knows its caller.
        .layer(from_fn_with_state(
            logs.clone(),
            galley_ops::logs::log_requests,
        ))
        .layer(Extension(logs))
        .layer(Extension(ops.backups.clone()))
        .layer(from_fn_with_state(
            app.clone(),
            galley_api::middleware::authenticate,
        ))
        .layer(from_fn(galley_http::security_headers))
        .layer(galley_http::cors());
    // Outermost, so a request's duration is all of it; absent unless asked for.
    let router = match &ops.metrics {
        Some(m) => router.layer(from_fn_with_state(m.clone(), galley_ops::metrics::track)),
        None => router,
    };
    router.with_state(app)
}

/// The metrics listener's one route, `GET /metrics` (Prometheus text). Kept off the public
/// listener: bind it to a private address.
pub fn metrics_router(app: Arc<App>, ops: &Ops) -> Router {
    let metrics = ops.metrics.clone().unwrap_or_default();
    let logs = ops.logs.clone();
    Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let text = metrics.render(&app, Some(&logs));
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    )
}

/// Serves [`metrics_router`] on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    ops: &Ops,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, metrics_router(app, ops))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A connection whose peer acknowledges nothing for this long is aborted by the kernel
/// (`TCP_USER_TIMEOUT`, which also ends zero-window probing). Without it a client that stops
/// reading, after the realtime hub has dropped it, would hold a task, hyper's buffers and a
/// full socket send buffer for as long as it keeps the connection open.
const STALLED_PEER: std::time::Duration = std::time::Duration::from_secs(60);

/// Serves [`router`] on `listener` until `shutdown` resolves, then drains open requests;
/// opens the log store itself, without metrics (see [`serve_with`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ops = Ops::open(app.clone(), false)
        .await
        .map_err(|e| std::io::Error::other(format!("cannot open the log store: {e}")))?;
    serve_with(listener, app, ops, shutdown).await
}

/// How long a shutdown waits for requests in flight before it drops them.
pub const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// [`serve`] with the operations the caller opened (the binary points its app-log layer at
/// the log store and serves the metrics). When `shutdown` resolves: stops accepting, ends
/// the realtime streams (their clients reconnect), lets requests in flight finish for up to
/// [`DRAIN_DEADLINE`], then writes the queued log entries and returns.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    ops: Ops,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let app_for_drain = app.clone();
    let svc = router(app, &ops).into_make_service_with_connect_info::<SocketAddr>();
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = socket2::SockRef::from(&*tcp).set_tcp_user_timeout(Some(STALLED_PEER)) {
            tracing::debug!(error = %e, "cannot set TCP_USER_TIMEOUT");
        }
    });
    let draining = Arc::new(tokio::sync::Notify::new());
    let shutdown = {
        let (app, draining) = (app_for_drain, draining.clone());
        async move {
            shutdown.await;
            // Open streams would hold the graceful shutdown forever.
            let n = app.realtime.disconnect_all();
            tracing::info!(realtime_clients = n, "draining: ended the realtime streams");
            draining.notify_one();
        }
    };
    let serving = axum::serve(listener, svc).with_graceful_shutdown(shutdown);
    let served = tokio::select! {
        r = serving => r,
        _ = async {
            draining.notified().await;
            tokio::time::sleep(DRAIN_DEADLINE).await;
        } => {
            tracing::warn!(deadline = ?DRAIN_DEADLINE, "requests still running at the drain deadline: dropped");
            Ok(())
        }
    };
    ops.logs.close().await;
    served
}
