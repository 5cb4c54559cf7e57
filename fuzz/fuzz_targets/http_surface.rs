//! The whole HTTP surface (API and dashboard) in process: random methods, paths (real route
//! shapes with fuzzed segments, or raw), query strings, headers and bodies against
//! `galley::router` over an App on a temporary SQLite directory. Never a panic, never a
//! 5xx other than 503, never a request that hangs.
//!
//! Writes go as a guest, a signed-in member or with a garbage token; a superuser's token is
//! only sent with GET and HEAD, so that no input can point the server at the network (SMTP,
//! S3, webhooks) or replace its data (restores).
#![no_main]

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tower::ServiceExt;

struct Env {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    superuser: String,
    member: String,
    member_id: String,
    post_id: String,
    _ops: galley_ops::Ops,
    _dir: tempfile::TempDir,
}

async fn call(
    router: &axum::Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let mut req = req.body(body).expect("request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))));
    let res = router.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    assert!(status.is_success(), "setup {path}: {status} {v}");
    v
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let (router, ops, superuser, member, member_id, post_id) = rt.block_on(async move {
            let mut cfg = galley_core::AppConfig::new(data);
            cfg.pool_size = 2;
            cfg.body_limit = 1 << 20;
            let server = galley::extend::Builder::new(cfg)
                .open()
                .await
                .expect("open app");
            let app = server.app.clone();
            galley_core::superusers::upsert(&app, "fuzz@example.com", "Fuzz-Pass-123")
                .await
                .expect("superuser");
            let ops = galley_ops::Ops::open(app.clone(), false)
                .await
                .expect("ops");
            let router = galley::router(server, &ops);
            let su = call(
                &router,
                Method::POST,
                "/api/collections/_superusers/auth-with-password",
                None,
                Some(serde_json::json!({"identity": "fuzz@example.com", "password": "Fuzz-Pass-123"})),
            )
            .await["token"]
                .as_str()
                .expect("token")
                .to_owned();
            let members = call(&router, Method::POST, "/api/collections", Some(&su), Some(serde_json::json!({
                "name": "members", "type": "auth", "createRule": "", "listRule": "", "viewRule": "",
                "updateRule": "id = @request.auth.id", "deleteRule": "id = @request.auth.id",
                "fields": [{"name": "name", "type": "text"}, {"name": "avatar", "type": "file", "maxSelect": 1}],
                "otp": {"enabled": true}
            }))).await["id"]
                .as_str()
                .expect("id")
                .to_owned();
            call(&router, Method::POST, "/api/collections", Some(&su), Some(serde_json::json!({
                "name": "posts", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "author = @request.auth.id", "deleteRule": "author = @request.auth.id",
                "fields": [
                    {"name": "title", "type": "text"}, {"name": "n", "type": "number"},
                    {"name": "ok", "type": "bool"}, {"name": "meta", "type": "json"},
                    {"name": "when", "type": "date"}, {"name": "kind", "type": "select", "values": ["a", "b"], "maxSelect": 2},
                    {"name": "author", "type": "relation", "collectionId": members, "maxSelect": 1},
                    {"name": "files", "type": "file", "maxSelect": 3, "protected": true},
                    {"name": "secret", "type": "text", "hidden": true},
                    {"name": "where", "type": "geoPoint"}
                ],
                "indexes": ["CREATE INDEX idx_posts_title ON posts (title)"]
            }))).await;
            let member = call(&router, Method::POST, "/api/collections/members/records", None, Some(serde_json::json!({
                "email": "m@example.com", "password": "Member-Pass-1", "passwordConfirm": "Member-Pass-1", "name": "m"
            }))).await;
            let member_id = member["id"].as_str().expect("id").to_owned();
            let member = call(&router, Method::POST, "/api/collections/members/auth-with-password", None,
                Some(serde_json::json!({"identity": "m@example.com", "password": "Member-Pass-1"}))).await["token"]
                .as_str()
                .expect("token")
                .to_owned();
            let post = call(&router, Method::POST, "/api/collections/posts/records", Some(&member), Some(serde_json::json!({
                "title": "hello", "n": 1, "author": member_id, "kind": ["a"]
            }))).await;
            let post_id = post["id"].as_str().expect("id").to_owned();
            (router, ops, su, member, member_id, post_id)
        });
        Env {
            rt,
            router,
            superuser,
            member,
            member_id,
            post_id,
            _ops: ops,
            _dir: dir,
        }
    })
}

/// Reads the fuzz input front to back.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    /// A length-prefixed slice (at most 255 bytes).
    fn chunk(&mut self) -> &'a [u8] {
        let n = usize::from(self.byte()).min(self.0.len());
        let (c, rest) = self.0.split_at(n);
        self.0 = rest;
        c
    }

    fn text(&mut self) -> String {
        String::from_utf8_lossy(self.chunk()).into_owned()
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[usize::from(self.byte()) % from.len()]
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

const METHODS: &[&str] = &[
    "GET", "GET", "POST", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS", "TRACE", "FUZZ",
];

const ROUTES: &[&str] = &[
    "/api/health",
    "/api/health/ready",
    "/api/collections",
    "/api/collections/{c}",
    "/api/collections/{c}/records",
    "/api/collections/{c}/records/{id}",
    "/api/collections/{c}/auth-with-password",
    "/api/collections/{c}/auth-refresh",
    "/api/collections/{c}/auth-methods",
    "/api/collections/{c}/auth-with-otp",
    "/api/collections/{c}/request-otp",
    "/api/collections/{c}/auth-with-oauth2",
    "/api/collections/{c}/request-password-reset",
    "/api/collections/{c}/confirm-password-reset",
    "/api/collections/{c}/request-verification",
    "/api/collections/{c}/confirm-verification",
    "/api/collections/{c}/request-email-change",
    "/api/collections/{c}/confirm-email-change",
    "/api/collections/{c}/impersonate/{id}",
    "/api/collections/{c}/truncate",
    "/api/collections/import",
    "/api/batch",
    "/api/settings",
    "/api/logs",
    "/api/logs/stats",
    "/api/logs/{id}",
    "/api/files/token",
    "/api/files/{c}/{id}/{x}",
    "/api/realtime",
    "/api/realtime/ws",
    "/api/backups",
    "/api/backups/{x}",
    "/api/crons",
    "/api/galley/outbox",
    "/api/oauth2-redirect",
    "/_/",
    "/_/login",
    "/_/collections/{c}/records",
    "/_/api/check-rule",
    "/_/{x}",
];

const COLLECTIONS: &[&str] = &["posts", "members", "_superusers", "nope", "POSTS", "%70osts"];

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json",
    "multipart/form-data; boundary=XyZ",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/octet-stream",
];

const HEADERS: &[&str] = &[
    "range",
    "if-none-match",
    "accept",
    "accept-encoding",
    "x-forwarded-for",
    "x-real-ip",
    "origin",
    "cookie",
    "last-event-id",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "x-token",
];

/// The request the input describes, or `None` when it is not a valid HTTP request at all
/// (which hyper would refuse before any handler).
fn build(env: &Env, data: &[u8]) -> Option<Request<Body>> {
    let mut inp = Input(data);
    let method = inp.pick(METHODS);
    let route = inp.byte();
    let mut path = if usize::from(route) < ROUTES.len() * 4 {
        let t = ROUTES[usize::from(route) % ROUTES.len()];
        let c = if inp.byte() % 4 == 0 {
            inp.text()
        } else {
            inp.pick(COLLECTIONS).to_owned()
        };
        let id = match inp.byte() % 4 {
            0 => env.post_id.clone(),
            1 => env.member_id.clone(),
            _ => inp.text(),
        };
        let x = inp.text();
        t.replace("{c}", &c).replace("{id}", &id).replace("{x}", &x)
    } else {
        format!("/{}", inp.text())
    };
    let query = inp.text();
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query);
    }
    let uri: axum::http::Uri = path.parse().ok()?;
    let mut req = Request::builder().method(Method::from_bytes(method.as_bytes()).ok()?).uri(uri);
    match inp.byte() % 5 {
        0 if method == "GET" || method == "HEAD" => req = req.header("authorization", &env.superuser),
        1 => req = req.header("authorization", &env.member),
        2 => req = req.header("authorization", inp.text()),
        _ => {}
    }
    match inp.byte() % 3 {
        0 => {}
        1 => req = req.header("content-type", inp.pick(CONTENT_TYPES)),
        _ => req = req.header("content-type", inp.text()),
    }
    for _ in 0..inp.byte() % 4 {
        let name = inp.pick(HEADERS);
        let value = inp.chunk();
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) {
            req = req.header(n, v);
        }
    }
    let mut req = req.body(Body::from(inp.rest().to_vec())).ok()?;
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))));
    Some(req)
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let Some(req) = build(env, data) else {
        return;
    };
    let what = format!("{} {}", req.method(), req.uri());
    let router = env.router.clone();
    env.rt.block_on(async move {
        let res = tokio::time::timeout(Duration::from_secs(20), router.oneshot(req))
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer in 20 s"))
            .expect("infallible");
        let status = res.status();
        let streaming = res
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let body = if streaming {
            // A realtime stream stays open: read its first event only.
            let _ = tokio::time::timeout(Duration::from_millis(50), res.into_body().collect()).await;
            String::new()
        } else {
            let bytes = tokio::time::timeout(Duration::from_secs(20), res.into_body().collect())
                .await
                .unwrap_or_else(|_| panic!("{what}: the body never ended"))
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            String::from_utf8_lossy(&bytes).chars().take(500).collect()
        };
        assert!(
            !status.is_server_error() || status.as_u16() == 503,
            "{what}: {status} {body}"
        );
    });
});
