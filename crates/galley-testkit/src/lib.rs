//! The end-to-end harness. [`TestServer::start`] opens a fresh data directory (SQLite) or
//! a fresh database (PostgreSQL, from `GALLEY_TEST_DATABASE_URL`), creates a superuser,
//! serves the real API on `127.0.0.1:0` and hands the test an HTTP client.
//! [`both_engines!`] turns one async test body into a test per engine.

pub mod s3;
pub mod smtp;

pub mod sse;

use galley_core::{App, AppConfig};
use galley_store::testing::TempPgDatabase;
use serde_json::{json, Value};
use std::sync::Arc;

pub use reqwest::{Method, StatusCode};

pub const SUPERUSER_EMAIL: &str = "admin@example.com";
pub const SUPERUSER_PASSWORD: &str = "Admin-Pass-123";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `http://127.0.0.1:PORT/metrics`: the server's Prometheus metrics (always on in tests).
    pub metrics_url: String,
    pub client: reqwest::Client,
    pub engine: Engine,
    /// A superuser auth token.
    pub token: String,
    pub app: Arc<App>,
    /// The JavaScript hooks, for servers started with them.
    pub hooks: Option<galley::galley_hooks::Hooks>,
    /// The server's logs, metrics and backups.
    pub ops: galley_ops::Ops,
    /// What the app was opened with (a restart opens it again).
    pub config: AppConfig,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    dir: Option<tempfile::TempDir>,
    _db: Option<TempPgDatabase>,
}

/// A server stopped by [`TestServer::stop`], keeping its data directory or database so
/// that [`Stopped::start`] serves the same data again (a restart).
pub struct Stopped {
    engine: Engine,
    config: AppConfig,
    dir: Option<tempfile::TempDir>,
    db: Option<TempPgDatabase>,
}

impl Stopped {
    /// Starts a server on the same data, with `configure` applied to the configuration the
    /// stopped one had.
    pub async fn start(mut self, configure: impl FnOnce(&mut AppConfig)) -> TestServer {
        configure(&mut self.config);
        let dir = self.dir.take().expect("data dir");
        let server = galley::Server::open(self.config.clone(), None)
            .await
            .expect("open app");
        TestServer::launch(self.engine, dir, self.db.take(), self.config, server).await
    }
}

/// A response read whole: status and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl TestServer {
    /// Starts a server, or `None` when PostgreSQL tests are explicitly skipped.
    pub async fn start(engine: Engine) -> Option<TestServer> {
        Self::start_with(engine, |_| {}).await
    }

    pub async fn start_with(
        engine: Engine,
        configure: impl FnOnce(&mut AppConfig),
    ) -> Option<TestServer> {
        Self::start_full(engine, configure, |_| None).await
    }

    /// A server with JavaScript hooks: `files` (name, source) are written to a `hooks`
    /// folder of its temporary directory, loaded with a 2 s time limit and watched.
    pub async fn start_with_hooks(engine: Engine, files: &[(&str, &str)]) -> Option<TestServer> {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        Self::start_full(
            engine,
            |_| {},
            move |root| {
                let dir = root.join("hooks");
                std::fs::create_dir_all(&dir).expect("hooks dir");
                for (name, src) in &files {
                    std::fs::write(dir.join(name), src).expect("hook file");
                }
                Some(galley::galley_hooks::HooksConfig {
                    dir: Some(dir),
                    timeout: std::time::Duration::from_secs(2),
                    memory_limit: 32 << 20,
                    pool_size: 4,
                    ..Default::default()
                })
            },
        )
        .await
    }

    /// The folder of a server started with [`TestServer::start_with_hooks`].
    pub fn hooks_dir(&self) -> std::path::PathBuf {
        self.dir.as_ref().expect("data dir").path().join("hooks")
    }

    pub async fn start_full(
        engine: Engine,
        configure: impl FnOnce(&mut AppConfig),
        hooks: impl FnOnce(&std::path::Path) -> Option<galley::galley_hooks::HooksConfig>,
    ) -> Option<TestServer> {
        Self::start_built(engine, configure, move |b, dir| match hooks(dir) {
            Some(h) => b.js_hooks(h),
            None => b,
        })
        .await
    }

    /// A server made by `build` from the Rust extension API's builder (its temporary
    /// directory given for hook files).
    pub async fn start_built(
        engine: Engine,
        configure: impl FnOnce(&mut AppConfig),
        build: impl FnOnce(galley::extend::Builder, &std::path::Path) -> galley::extend::Builder,
    ) -> Option<TestServer> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = AppConfig::new(dir.path().join("data"));
        cfg.pool_size = 4;
        let db = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => {
                let db = TempPgDatabase::create().await?;
                cfg.database_url = Some(db.url().to_owned());
                Some(db)
            }
        };
        configure(&mut cfg);
        let server = build(galley::extend::Builder::new(cfg.clone()), dir.path())
            .open()
            .await
            .expect("open app");
        Some(Self::launch(engine, dir, db, cfg, server).await)
    }

    async fn launch(
        engine: Engine,
        dir: tempfile::TempDir,
        db: Option<TempPgDatabase>,
        cfg: AppConfig,
        server: galley::Server,
    ) -> TestServer {
        let app = server.app.clone();
        let hooks_handle = server.hooks.clone();
        galley_core::superusers::upsert(&app, SUPERUSER_EMAIL, SUPERUSER_PASSWORD)
            .await
            .expect("superuser");
        let (url, metrics_url, ops, tx, task) = Self::serve(server).await;
        let client = reqwest::Client::builder().build().expect("client");
        let mut srv = TestServer {
            url,
            metrics_url,
            client,
            engine,
            token: String::new(),
            app,
            hooks: hooks_handle,
            ops,
            config: cfg,
            shutdown: Some(tx),
            task: Some(task),
            dir: Some(dir),
            _db: db,
        };
        let r = srv
            .send(
                Method::POST,
                "/api/collections/_superusers/auth-with-password",
                None,
                Some(json!({"identity": SUPERUSER_EMAIL, "password": SUPERUSER_PASSWORD})),
            )
            .await;
        assert_eq!(r.status, 200, "superuser login failed: {:?}", r.body);
        srv.token = r.body["token"].as_str().expect("token").to_owned();
        srv
    }

    /// Stops serving and closes the app (workers, store), keeping the data for
    /// [`Stopped::start`].
    pub async fn stop(mut self) -> Stopped {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
        self.app.close().await;
        Stopped {
            engine: self.engine,
            config: self.config.clone(),
            dir: self.dir.take(),
            db: self._db.take(),
        }
    }

    /// Serves `server` (API, dashboard, and metrics on a second listener) on fresh ports.
    async fn serve(
        server: galley::Server,
    ) -> (
        String,
        String,
        galley_ops::Ops,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let metrics_url = format!(
            "http://{}/metrics",
            metrics_listener.local_addr().expect("addr")
        );
        let app = server.app.clone();
        let ops = galley_ops::Ops::open(app.clone(), true)
            .await
            .expect("open the log store");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (metrics_tx, metrics_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let (app, ops) = (app.clone(), ops.clone());
            async move {
                let metrics = tokio::spawn({
                    let (app, ops) = (app.clone(), ops.clone());
                    async move {
                        let _ = galley::serve_metrics(metrics_listener, app, &ops, async {
                            let _ = metrics_rx.await;
                        })
                        .await;
                    }
                });
                let _ = galley::serve_with(listener, server, ops, async {
                    let _ = rx.await;
                })
                .await;
                let _ = metrics_tx.send(());
                let _ = metrics.await;
            }
        });
        (url, metrics_url, ops, tx, task)
    }

    /// Stops the server, swaps in a restore that `POST /api/backups/{key}/restore` prepared
    /// (as the binary does when it restarts), and serves the data again on new ports.
    pub async fn restart(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.app.close().await;
        galley_ops::backups::apply_pending_restore(&self.config.data_dir).expect("restore");
        let server = galley::Server::open(self.config.clone(), None)
            .await
            .expect("reopen app");
        let app = server.app.clone();
        let (url, metrics_url, ops, tx, task) = Self::serve(server).await;
        (self.url, self.metrics_url, self.ops, self.app) = (url, metrics_url, ops, app);
        self.shutdown = Some(tx);
        self.task = Some(task);
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{}", self.url, path))
    }

    /// Sends a JSON request with an optional token, returning status and JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut rb = self.request(method, path);
        if let Some(t) = token {
            rb = rb.header("Authorization", t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        Self::read(rb.send().await.expect("request")).await
    }

    pub async fn read(resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            body,
            headers,
        }
    }

    /// As the superuser.
    pub async fn su(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.send(method, path, Some(&self.token.clone()), body)
            .await
    }

    /// As a guest.
    pub async fn guest(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.send(method, path, None, body).await
    }

    /// Creates a collection as the superuser and returns its JSON, panicking on failure.
    pub async fn create_collection(&self, def: Value) -> Value {
        let r = self.su(Method::POST, "/api/collections", Some(def)).await;
        assert_eq!(r.status, 200, "create collection failed: {}", r.body);
        r.body
    }

    /// Creates a record as the superuser, panicking on failure.
    pub async fn create_record(&self, collection: &str, body: Value) -> Value {
        let r = self
            .su(
                Method::POST,
                &format!("/api/collections/{collection}/records"),
                Some(body),
            )
            .await;
        assert_eq!(r.status, 200, "create record failed: {}", r.body);
        r.body
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Defines one test per engine from one body:
///
/// ```ignore
/// galley_testkit::both_engines! {
///     async fn health(srv) {
///         assert_eq!(srv.guest(Method::GET, "/api/health", None).await.status, 200);
///     }
/// }
/// ```
#[macro_export]
macro_rules! both_engines {
    ($(async fn $name:ident($srv:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn run($srv: $crate::TestServer) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let srv = $crate::TestServer::start($crate::Engine::Sqlite).await.expect("sqlite server");
                    run(srv).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(srv) = $crate::TestServer::start($crate::Engine::Postgres).await {
                        run(srv).await
                    }
                }
            }
        )*
    };
}

/// Like [`both_engines!`], with JavaScript hook files (`&[(name, source)]`) loaded.
#[macro_export]
macro_rules! both_engines_hooks {
    (files = $files:expr; $(async fn $name:ident($srv:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn run($srv: $crate::TestServer) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let srv = $crate::TestServer::start_with_hooks($crate::Engine::Sqlite, $files).await.expect("sqlite server");
                    run(srv).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(srv) = $crate::TestServer::start_with_hooks($crate::Engine::Postgres, $files).await {
                        run(srv).await
                    }
                }
            }
        )*
    };
}

/// Like [`both_engines!`], with a configuration applied to each server before it starts:
///
/// ```ignore
/// galley_testkit::both_engines_with! {
///     config = |cfg| cfg.body_limit = 1024;
///     async fn small_bodies(srv) { /* ... */ }
/// }
/// ```
#[macro_export]
macro_rules! both_engines_with {
    (config = $conf:expr; $(async fn $name:ident($srv:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn run($srv: $crate::TestServer) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let srv = $crate::TestServer::start_with($crate::Engine::Sqlite, $conf).await.expect("sqlite server");
                    run(srv).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(srv) = $crate::TestServer::start_with($crate::Engine::Postgres, $conf).await {
                        run(srv).await
                    }
                }
            }
        )*
    };
}

impl TestServer {
    /// Sends raw bytes with an explicit content type (hostile or non-JSON bodies).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut rb = self
            .request(method, path)
            .header("Content-Type", content_type)
            .body(body);
        if let Some(t) = token {
            rb = rb.header("Authorization", t);
        }
        Self::read(rb.send().await.expect("request")).await
    }

    /// Every record of a collection as the superuser (up to 1000).
    pub async fn all_records(&self, collection: &str) -> Vec<Value> {
        let r = self
            .su(
                Method::GET,
                &format!("/api/collections/{collection}/records?perPage=1000"),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "list {collection} failed: {}", r.body);
        r.body["items"].as_array().cloned().unwrap_or_default()
    }

    /// Turns batch requests on (`PATCH /api/settings`).
    pub async fn enable_batch(&self) {
        let r = self
            .su(
                Method::PATCH,
                "/api/settings",
                Some(json!({"batch": {"enabled": true}})),
            )
            .await;
        assert_eq!(r.status, 200, "enable batch failed: {}", r.body);
    }

    /// `/api/health` still answers 200 (after a hostile request).
    pub async fn assert_healthy(&self) {
        let r = self.guest(Method::GET, "/api/health", None).await;
        assert_eq!(r.status, 200, "server unhealthy: {}", r.body);
        assert_eq!(r.body["message"], "API is healthy.");
    }
}

impl Reply {
    /// Asserts PocketBase's error shape: exactly `{data: object, message: string, status}`
    /// with `status` equal to the HTTP status and a sentence as the message.
    pub fn assert_error_shape(&self) -> &Self {
        let obj = self.body.as_object().unwrap_or_else(|| {
            panic!(
                "error body is not an object: {:?} (status {})",
                self.body, self.status
            )
        });
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["data", "message", "status"],
            "error keys: {}",
            self.body
        );
        assert!(
            self.body["data"].is_object(),
            "data must be an object: {}",
            self.body
        );
        let msg = self.body["message"]
            .as_str()
            .unwrap_or_else(|| panic!("message must be a string: {}", self.body));
        assert!(
            !msg.is_empty() && msg.ends_with('.'),
            "message must be a sentence: {msg:?}"
        );
        assert_eq!(
            self.body["status"],
            json!(self.status),
            "status field must equal the HTTP status: {}",
            self.body
        );
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "error content type"
        );
        self
    }

    /// Asserts an error with this status and message (and the error shape).
    pub fn assert_error(&self, status: u16, message: &str) -> &Self {
        assert_eq!(
            (self.status, self.body["message"].as_str()),
            (status, Some(message)),
            "body: {}",
            self.body
        );
        self.assert_error_shape()
    }

    /// The `code` of the validation error at a `data` JSON pointer such as `/title`.
    pub fn code_at(&self, pointer: &str) -> Option<&str> {
        self.body
            .pointer(&format!("/data{pointer}/code"))
            .and_then(Value::as_str)
    }
}

/// `YYYY-MM-DD HH:MM:SS.mmmZ`, PocketBase's datetime format.
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// A default record id: 15 characters of `[a-z0-9]`.
pub fn is_record_id(s: &str) -> bool {
    s.len() == 15
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// The sorted keys of a JSON object.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort_unstable();
    k
}

impl TestServer {
    /// Creates an auth collection `members` (open create rule) with one member and returns
    /// that member's auth token: a valid record token that is not a superuser's.
    pub async fn member_token(&self) -> String {
        if self
            .su(Method::GET, "/api/collections/members", None)
            .await
            .status
            == 404
        {
            self.create_collection(json!({"name": "members", "type": "auth", "createRule": ""}))
                .await;
        }
        let creds = json!({"email": "member@example.com", "password": "Member-Pass-1", "passwordConfirm": "Member-Pass-1"});
        let r = self
            .guest(
                Method::POST,
                "/api/collections/members/records",
                Some(creds),
            )
            .await;
        assert_eq!(r.status, 200, "create member: {}", r.body);
        let r = self
            .guest(
                Method::POST,
                "/api/collections/members/auth-with-password",
                Some(json!({"identity": "member@example.com", "password": "Member-Pass-1"})),
            )
            .await;
        assert_eq!(r.status, 200, "member login: {}", r.body);
        r.body["token"].as_str().expect("token").to_owned()
    }
}

/// Where a test's server keeps record files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Local,
    S3,
}

impl TestServer {
    /// Switches file storage to a fresh bucket of the shared S3 server (through
    /// `PATCH /api/settings`, as a user would) and returns the bucket.
    pub async fn use_s3(&self) -> String {
        let s3 = s3::server();
        let bucket = s3.new_bucket().await;
        let r = self
            .su(
                Method::PATCH,
                "/api/settings",
                Some(json!({"s3": s3.settings(&bucket)})),
            )
            .await;
        assert_eq!(r.status, 200, "enable s3 failed: {}", r.body);
        assert_eq!(r.body["s3"]["enabled"], true);
        assert!(
            r.body["s3"].get("secret").is_none(),
            "secret echoed: {}",
            r.body
        );
        bucket
    }

    /// Starts a server on `engine` with files on `storage`.
    pub async fn start_on(engine: Engine, storage: Storage) -> Option<TestServer> {
        let srv = TestServer::start(engine).await?;
        if storage == Storage::S3 {
            srv.use_s3().await;
        }
        Some(srv)
    }

    /// Keys in file storage under `prefix` (e.g. a collection id).
    pub async fn stored_keys(&self, prefix: &str) -> Vec<String> {
        let parts: Vec<&str> = prefix.split('/').filter(|p| !p.is_empty()).collect();
        self.app
            .storage()
            .list(&galley_files::storage::key(&parts))
            .await
            .expect("list storage")
    }
}

/// Like [`both_engines!`], times both storage backends (local disk and S3 on loopback):
/// four tests per body.
#[macro_export]
macro_rules! all_backends {
    ($(async fn $name:ident($srv:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn run($srv: $crate::TestServer) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_local() {
                    run($crate::TestServer::start_on($crate::Engine::Sqlite, $crate::Storage::Local).await.expect("server")).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_local() {
                    if let Some(srv) = $crate::TestServer::start_on($crate::Engine::Postgres, $crate::Storage::Local).await {
                        run(srv).await
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_s3() {
                    run($crate::TestServer::start_on($crate::Engine::Sqlite, $crate::Storage::S3).await.expect("server")).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_s3() {
                    if let Some(srv) = $crate::TestServer::start_on($crate::Engine::Postgres, $crate::Storage::S3).await {
                        run(srv).await
                    }
                }
            }
        )*
    };
}
