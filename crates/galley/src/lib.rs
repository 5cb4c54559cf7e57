//! The composition root as a library: the API and the dashboard side by side behind one
//! stack of layers, and the server loop. The binary (`main.rs`) and the end-to-end harness
//! (galley-testkit) both serve exactly this.
//!
//! No global allocator here: jemalloc is the binary's choice alone (`main.rs`).

use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::Response;
use axum::{Extension, Router};
use galley_core::{App, AppConfig, CoreError};
use galley_hooks::{Hooks, HooksConfig};
use galley_ops::Ops;
use std::net::SocketAddr;
use std::sync::Arc;

pub mod extend;
pub mod tls;

pub use galley_hooks;

/// An open backend and what extends it: the App and the server-side hooks.
#[derive(Clone)]
pub struct Server {
    pub app: Arc<App>,
    pub hooks: Option<Hooks>,
    /// Routes of Rust extensions (`extend::Builder::routes`).
    routes: Option<Router<Arc<App>>>,
}

impl From<Arc<App>> for Server {
    fn from(app: Arc<App>) -> Self {
        Server {
            app,
            hooks: None,
            routes: None,
        }
    }
}

impl Server {
    /// Opens the App with the hook files of `hooks.dir` taking part in its writes, then
    /// hands the hooks the App (`onBootstrap` runs here). A hook file that fails to load
    /// stops the start with its file and line.
    pub async fn open(config: AppConfig, hooks: Option<HooksConfig>) -> Result<Server, CoreError> {
        let mut b = extend::Builder::new(config);
        if let Some(h) = hooks {
            b = b.js_hooks(h);
        }
        b.open().await
    }
}

/// The routes hook files added: tried before the API's own routes (as `routerAdd` does in
/// PocketBase), inside the auth, log and rate-limit layers.
async fn hook_routes(
    axum::extract::State(hooks): axum::extract::State<Hooks>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    match hooks.handle(req).await {
        Ok(resp) => resp,
        Err(req) => next.run(req).await,
    }
}

/// The whole server: every `/api/` route and every `/_/` page. The dashboard sits inside
/// the same layers as the API (so its pages get the same security headers and CORS); the
/// rate limit and the request log look only at `/api/` paths.
pub fn router(server: impl Into<Server>, ops: &Ops) -> Router {
    let Server { app, hooks, routes } = server.into();
    let logs = ops.logs.clone();
    let mut router = galley_api::router()
        .merge(galley_admin::router(logs.clone()))
        .merge(routes.unwrap_or_default());
    if let Some(h) = hooks {
        router = router.layer(from_fn_with_state(h, hook_routes));
    }
    let router = router
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
    let router = if ops.traces {
        router.layer(from_fn(galley_ops::traces::trace_requests))
    } else {
        router
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
            let (app, metrics, logs) = (app.clone(), metrics.clone(), logs.clone());
            async move {
                // The queue's counts are a query: a scrape waits for it only briefly.
                let counts =
                    tokio::time::timeout(std::time::Duration::from_secs(2), app.jobs().counts())
                        .await
                        .ok()
                        .and_then(Result::ok);
                let text = metrics.render(&app, Some(&logs), counts.as_deref());
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
    app: impl Into<Server>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app: Server = app.into();
    let ops = Ops::open(app.app.clone(), false)
        .await
        .map_err(|e| std::io::Error::other(format!("cannot open the log store: {e}")))?;
    serve_with(listener, app, ops, shutdown).await
}

/// How long a shutdown waits for requests in flight before it drops them.
pub const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Where the server listens: plain HTTP always, HTTPS as well when certificates are given.
pub struct Listeners {
    pub http: tokio::net::TcpListener,
    pub https: Option<(tokio::net::TcpListener, Arc<tls::Certificates>)>,
}

impl From<tokio::net::TcpListener> for Listeners {
    fn from(http: tokio::net::TcpListener) -> Self {
        Listeners { http, https: None }
    }
}

fn tune(tcp: &tokio::net::TcpStream) {
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(STALLED_PEER)) {
        tracing::debug!(error = %e, "cannot set TCP_USER_TIMEOUT");
    }
}

/// [`serve`] with the operations the caller opened (the binary points its app-log layer at
/// the log store and serves the metrics), on every listener of `listeners`. When `shutdown`
/// resolves: stops accepting, ends the realtime streams (their clients reconnect), lets
/// requests in flight finish for up to [`DRAIN_DEADLINE`], runs the hooks' `onTerminate`,
/// then writes the queued log entries and returns.
pub async fn serve_with(
    listeners: impl Into<Listeners>,
    app: impl Into<Server>,
    ops: Ops,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let Listeners { http, https } = listeners.into();
    let server: Server = app.into();
    if let Some(h) = &server.hooks {
        h.serve()
            .await
            .map_err(|e| std::io::Error::other(format!("onServe: {e}")))?;
    }
    // Webhooks may not target this server: every address it answers on.
    let https_tcp = https.as_ref().map(|(tcp, _)| tcp);
    for addr in std::iter::once(&http)
        .chain(https_tcp)
        .filter_map(|l| l.local_addr().ok())
    {
        server.app.add_listening(addr);
    }
    let app_for_drain = server.app.clone();
    let hooks = server.hooks.clone();
    let router = router(server, &ops);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let draining = Arc::new(tokio::sync::Notify::new());
    {
        let (app, draining) = (app_for_drain, draining.clone());
        tokio::spawn(async move {
            shutdown.await;
            // Open streams would hold the graceful shutdown forever.
            let n = app.realtime.disconnect_all(None);
            tracing::info!(realtime_clients = n, "draining: ended the realtime streams");
            draining.notify_one();
            let _ = stop_tx.send(true);
        });
    }
    let plain = axum::serve(
        http.tap_io(|tcp| tune(tcp)),
        router
            .clone()
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stopped(stop_rx.clone()));
    let secure = match https {
        Some((tcp, certs)) => {
            let config = certs
                .server_config()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let listener = tls::TlsListener::new(tcp, config, tune)?.tap_io(|_| {});
            Some(
                axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(stopped(stop_rx)),
            )
        }
        None => None,
    };
    let serving = async move {
        let secure = async move {
            match secure {
                Some(s) => s.await,
                None => Ok(()),
            }
        };
        let (a, b) = tokio::join!(std::future::IntoFuture::into_future(plain), secure);
        a.and(b)
    };
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
    if let Some(h) = hooks {
        h.terminate().await;
    }
    ops.logs.close().await;
    served
}
