//! The end-to-end harness. [`TestServer::start`] opens a fresh data directory (SQLite) or
//! a fresh database (PostgreSQL, from `GALLEY_TEST_DATABASE_URL`), creates a superuser,
//! serves the real API on `127.0.0.1:0` and hands the test an HTTP client.
//! [`both_engines!`] turns one async test body into a test per engine.

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
    pub client: reqwest::Client,
    pub engine: Engine,
    /// A superuser auth token.
    pub token: String,
    pub app: Arc<App>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
    _db: Option<TempPgDatabase>,
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

    pub async fn start_with(engine: Engine, configure: impl FnOnce(&mut AppConfig)) -> Option<TestServer> {
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
        let app = App::open(cfg).await.expect("open app");
        galley_core::superusers::upsert(&app, SUPERUSER_EMAIL, SUPERUSER_PASSWORD).await.expect("superuser");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let app = app.clone();
            async move {
                let _ = galley_api::serve(listener, app, async {
                    let _ = rx.await;
                })
                .await;
            }
        });
        let client = reqwest::Client::builder().build().expect("client");
        let mut srv = TestServer {
            url,
            client,
            engine,
            token: String::new(),
            app,
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
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
        Some(srv)
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{}", self.url, path))
    }

    /// Sends a JSON request with an optional token, returning status and JSON body.
    pub async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
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
        Reply { status, body, headers }
    }

    /// As the superuser.
    pub async fn su(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.send(method, path, Some(&self.token.clone()), body).await
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
        let r = self.su(Method::POST, &format!("/api/collections/{collection}/records"), Some(body)).await;
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
