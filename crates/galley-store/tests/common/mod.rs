//! Shared test support: one test body, run on SQLite (temporary directory) and on
//! PostgreSQL (a fresh database on `GALLEY_TEST_DATABASE_URL`, dropped afterwards).
#![allow(dead_code, clippy::unwrap_used)]

use galley_sql::{Dialect, Engine};
pub use galley_store::testing::TempPgDatabase;
use galley_store::{Store, StoreConfig};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// A store under test and what keeps its database alive.
pub struct Ctx {
    pub store: Arc<Store>,
    pub cfg: StoreConfig,
    /// Dropped after the store (field order): drops the PostgreSQL database.
    pub pg: Option<TempPgDatabase>,
    pub dir: tempfile::TempDir,
}

impl Ctx {
    pub fn config(dir: &tempfile::TempDir, url: Option<String>) -> StoreConfig {
        StoreConfig {
            database_url: url,
            data_dir: dir.path().join("pb_data"),
            pool_size: 4,
            sync_full: false,
        }
    }

    pub async fn sqlite() -> Ctx {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Self::config(&dir, None);
        let store = Store::open(&cfg).await.unwrap();
        Ctx {
            store: Arc::new(store),
            cfg,
            pg: None,
            dir,
        }
    }

    /// `None` only when PostgreSQL tests are skipped explicitly (`GALLEY_SKIP_POSTGRES=1`).
    pub async fn postgres() -> Option<Ctx> {
        let pg = TempPgDatabase::create().await?;
        let dir = tempfile::tempdir().unwrap();
        let cfg = Self::config(&dir, Some(pg.url().to_owned()));
        let store = Store::open(&cfg).await.unwrap();
        Some(Ctx {
            store: Arc::new(store),
            cfg,
            pg: Some(pg),
            dir,
        })
    }

    pub fn is_pg(&self) -> bool {
        self.store.dialect().engine == Engine::Postgres
    }

    pub fn d(&self) -> &'static Dialect {
        self.store.dialect()
    }
}

/// Runs each named `async fn(Ctx)` on both engines, as `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Ctx::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match $crate::common::Ctx::postgres().await {
                    Some(ctx) => super::$name(ctx).await,
                    None => eprintln!("skipped: GALLEY_SKIP_POSTGRES=1"),
                }
            }
        }
    )*};
}

/// Test SQL is written with `$1` placeholders; SQLite gets `?1`.
pub fn q(d: &Dialect, sql: &str) -> String {
    match d.engine {
        Engine::Sqlite => sql.replace('$', "?"),
        Engine::Postgres => sql.to_owned(),
    }
}

/// `url` pointing at `addr` instead of its own host and port.
pub fn via(url: &str, addr: SocketAddr) -> String {
    let start = url.find("://").unwrap() + 3;
    let rest = &url[start..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    format!(
        "{}{}{addr}{}",
        &url[..start],
        &authority[..host_start],
        &rest[end..]
    )
}

/// The PostgreSQL server address of `url`.
pub fn server_addr(url: &str) -> SocketAddr {
    let cfg: tokio_postgres::Config = url.parse().unwrap();
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let host = if host == "localhost" {
        "127.0.0.1".to_owned()
    } else {
        host
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}").parse().unwrap()
}

/// A TCP proxy in front of PostgreSQL that a test can cut (listener closed, every
/// connection dropped: clients see refused connections) and restore on the same port.
pub struct Proxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let p = Proxy {
            addr,
            upstream,
            tasks: Arc::default(),
            listener: Mutex::new(None),
        };
        p.serve(listener);
        p
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let tasks = self.tasks.clone();
        let upstream = self.upstream;
        let h = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let t = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                tasks.lock().unwrap().push(t);
            }
        });
        *self.listener.lock().unwrap() = Some(h);
    }

    pub async fn cut(&self) {
        let l = self.listener.lock().unwrap().take();
        if let Some(l) = l {
            l.abort();
            let _ = l.await;
        }
        let tasks: Vec<_> = self.tasks.lock().unwrap().drain(..).collect();
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
    }

    pub async fn restore(&self) {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_reuseaddr(true).unwrap();
        sock.bind(self.addr).unwrap();
        self.serve(sock.listen(128).unwrap());
    }
}
