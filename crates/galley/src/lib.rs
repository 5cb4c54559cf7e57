//! The composition root as a library: the API and the dashboard side by side behind one
//! stack of layers, and the server loop. The binary (`main.rs`) and the end-to-end harness
//! (galley-testkit) both serve exactly this.
//!
//! No global allocator here: jemalloc is the binary's choice alone (`main.rs`).

use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::Response;
use axum::Router;
use galley_core::{App, AppConfig, CoreError};
use galley_hooks::{Hooks, HooksConfig};
use galley_http::RequestLog;
use std::net::SocketAddr;
use std::sync::Arc;

pub mod extend;

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
pub fn router(server: impl Into<Server>) -> Router {
    let Server { app, hooks, routes } = server.into();
    let requests = RequestLog::default();
    let mut routes = galley_api::router()
        .merge(galley_admin::router(requests.clone()))
        .merge(routes.unwrap_or_default());
    if let Some(h) = hooks {
        routes = routes.layer(from_fn_with_state(h, hook_routes));
    }
    routes
        // Inside the request log (a 429 is logged) and `authenticate` (rules have audiences).
        .layer(from_fn_with_state(
            app.clone(),
            galley_api::middleware::rate_limit,
        ))
        // Inside `authenticate`, so each entry knows its caller.
        .layer(from_fn_with_state(requests, galley_http::log_requests))
        .layer(from_fn_with_state(
            app.clone(),
            galley_api::middleware::authenticate,
        ))
        .layer(from_fn(galley_http::security_headers))
        .layer(galley_http::cors())
        .with_state(app)
}

/// A connection whose peer acknowledges nothing for this long is aborted by the kernel
/// (`TCP_USER_TIMEOUT`, which also ends zero-window probing). Without it a client that stops
/// reading, after the realtime hub has dropped it, would hold a task, hyper's buffers and a
/// full socket send buffer for as long as it keeps the connection open.
const STALLED_PEER: std::time::Duration = std::time::Duration::from_secs(60);

/// Serves [`router`] on `listener` until `shutdown` resolves, then drains open requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: impl Into<Server>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let server: Server = app.into();
    if let Some(h) = &server.hooks {
        h.serve()
            .await
            .map_err(|e| std::io::Error::other(format!("onServe: {e}")))?;
    }
    let svc = router(server).into_make_service_with_connect_info::<SocketAddr>();
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = socket2::SockRef::from(&*tcp).set_tcp_user_timeout(Some(STALLED_PEER)) {
            tracing::debug!(error = %e, "cannot set TCP_USER_TIMEOUT");
        }
    });
    axum::serve(listener, svc)
        .with_graceful_shutdown(shutdown)
        .await
}
