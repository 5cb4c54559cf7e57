//! Galley's admin dashboard at `/_/`: server-rendered HTML (maud), our own small CSS and JS
//! embedded in the binary. Handlers call the `galley-core` services directly, as the
//! signed-in superuser; they never make HTTP calls to the API.
//!
//! Architecture invariant: every state-changing request carries the session's CSRF token;
//! everything rendered goes through maud's escaping (the SVG chart escapes its own labels);
//! no SQL and no business rule here.

mod chart;
mod form;
mod layout;
mod pages;
pub mod session;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use galley_core::{App, Caller};
use galley_ops::Logs;
use hmac::{Hmac, Mac};
use serde_json::Value;
use session::Sessions;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

pub type AppState = Arc<App>;

/// The dashboard's own state, one per server.
pub struct Console {
    pub sessions: Sessions,
    pub logs: Arc<Logs>,
}

/// The dashboard's routes, all under `/_/`. `logs` is the log store that the request-log
/// layer (galley-ops, put around the API and the dashboard by the `galley` crate) fills.
pub fn router(logs: Arc<Logs>) -> Router<AppState> {
    let console = Arc::new(Console {
        sessions: Sessions::default(),
        logs,
    });
    use pages::{auth, collections, confirm, jobs, logs, records, settings, webhooks};
    Router::new()
        .route("/_", get(|| async { redirect("/_/") }))
        .route("/_/", get(collections::home))
        .route("/_/assets/admin.css", get(css))
        .route("/_/assets/admin.js", get(js))
        .route("/_/install", get(auth::install_page).post(auth::install))
        .route("/_/login", get(auth::login_page).post(auth::login))
        .route("/_/logout", post(auth::logout))
        .route(
            "/_/collections/new",
            get(collections::new_page).post(collections::create),
        )
        .route(
            "/_/collections/{name}",
            get(collections::edit_page).post(collections::update),
        )
        .route(
            "/_/collections/{name}/delete",
            get(collections::delete_page).post(collections::delete),
        )
        .route("/_/collections/{name}/records", get(records::list))
        .route(
            "/_/collections/{name}/records/new",
            get(records::new_page).post(records::create),
        )
        .route(
            "/_/collections/{name}/records/delete",
            post(records::bulk_delete),
        )
        .route(
            "/_/collections/{name}/records/{id}",
            get(records::edit_page).post(records::update),
        )
        .route(
            "/_/collections/{name}/records/{id}/auth",
            post(records::auth_action),
        )
        .route("/_/settings", get(settings::view).post(settings::save))
        .route("/_/logs", get(logs::view))
        .route("/_/jobs", get(jobs::view).post(jobs::act))
        .route("/_/webhooks", get(webhooks::list).post(webhooks::redeliver))
        .route(
            "/_/webhooks/new",
            get(webhooks::new_page).post(webhooks::create),
        )
        .route(
            "/_/webhooks/{id}",
            get(webhooks::edit_page).post(webhooks::update),
        )
        .route("/_/api/check-rule", post(collections::check_rule))
        .route("/_/confirm", get(confirm::page).post(confirm::submit))
        .route("/_/{*rest}", get(|| async { layout::not_found() }))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(dashboard_headers))
        .layer(Extension(console))
}

/// The one-time install token: derived from a per-process random key and this server's
/// node id, so it is only known to whoever can read the server's output. It works only while
/// no superuser exists, which makes it single-use.
pub fn install_token(app: &App) -> String {
    static KEY: OnceLock<String> = OnceLock::new();
    let key = KEY.get_or_init(session::random_token);
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(b"galley-install:");
    mac.update(app.node_id.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The path of the install page, with its token.
pub fn install_path(app: &App) -> String {
    format!("/_/install?token={}", install_token(app))
}

const CSS: &str = include_str!("assets/admin.css");
const JS: &str = include_str!("assets/admin.js");

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(ct: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// Security headers of every dashboard response. The CSP allows only our own script and
/// style files: no inline script, no inline style, no framing.
async fn dashboard_headers(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    // Server time of the page, for the browser's devtools and the render-time budget test.
    if let Ok(v) = HeaderValue::from_str(&format!(
        "app;dur={:.1}",
        start.elapsed().as_secs_f64() * 1000.0
    )) {
        h.insert("server-timing", v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

pub(crate) fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub(crate) fn console(parts: &Parts) -> Option<Arc<Console>> {
    parts.extensions.get::<Arc<Console>>().cloned()
}

pub(crate) fn cookie_header(h: &HeaderMap) -> &str {
    h.get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Whether the browser reached us over HTTPS (directly or through a proxy that says so).
pub(crate) fn is_https(h: &HeaderMap) -> bool {
    h.get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A signed-in superuser; extracting it redirects to the sign-in page otherwise.
pub struct Admin {
    pub caller: Caller,
    pub email: String,
    pub session_id: String,
    pub csrf: String,
    pub console: Arc<Console>,
}

impl Admin {
    /// Checks the CSRF token of a submitted form: the refusal to send, if any.
    pub(crate) fn check(&self, form: &form::FormData) -> Option<Response> {
        (!session::csrf_ok(&self.csrf, form.get("csrf"))).then(layout::forbidden)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let console = console(parts).ok_or_else(layout::internal)?;
        let sid = session::cookie(cookie_header(&parts.headers), session::SESSION_COOKIE)
            .unwrap_or("")
            .to_owned();
        let Some(s) = console.sessions.get(&sid, Instant::now()) else {
            return Err(redirect("/_/login"));
        };
        let col = galley_core::auth::auth_collection(app, galley_core::superusers::SUPERUSERS)
            .map_err(|_| layout::internal())?;
        let rec = galley_core::records::find_by_id(app, col.clone(), &s.superuser_id).await;
        let record = match rec {
            Ok(r)
                if r.get("tokenKey").and_then(Value::as_str).unwrap_or("")
                    == s.token_key.as_str() =>
            {
                r
            }
            _ => {
                // The superuser is gone or changed its password: the session ends.
                console.sessions.remove(&sid);
                return Err(redirect("/_/login"));
            }
        };
        Ok(Admin {
            email: record
                .get("email")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            caller: Caller::Record {
                collection: col,
                record,
            },
            session_id: sid,
            csrf: s.csrf,
            console,
        })
    }
}
