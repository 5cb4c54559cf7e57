//! Test support (cargo feature `testing`): a throwaway PostgreSQL database per test.
//!
//! Tests get the server from `GALLEY_TEST_DATABASE_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`). When it is unset, PostgreSQL tests fail with
//! a message saying to set it, so CI never skips them silently, unless
//! `GALLEY_SKIP_POSTGRES=1` is set explicitly.

use crate::StoreError;
use std::sync::atomic::{AtomicU32, Ordering};

pub const DATABASE_URL_ENV: &str = "GALLEY_TEST_DATABASE_URL";
pub const SKIP_ENV: &str = "GALLEY_SKIP_POSTGRES";

/// The PostgreSQL server URL for tests; `None` only when `GALLEY_SKIP_POSTGRES=1`.
///
/// # Panics
/// When `GALLEY_TEST_DATABASE_URL` is unset (and skipping was not asked for).
pub fn postgres_url() -> Option<String> {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        return None;
    }
    match std::env::var(DATABASE_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => panic!(
            "PostgreSQL tests need a server: set {DATABASE_URL_ENV}=postgres://USER@HOST:PORT/DB \
             (e.g. postgres://postgres@127.0.0.1:5432/test; each test creates and drops its own database), \
             or set {SKIP_ENV}=1 to skip them explicitly"
        ),
    }
}

/// A fresh database `galley_test_…` on the test server, dropped (with its connections)
/// when this value is dropped.
#[derive(Debug)]
pub struct TempPgDatabase {
    name: String,
    url: String,
    server_url: String,
}

impl TempPgDatabase {
    /// Creates a database on the server from [`postgres_url`]; `None` when PostgreSQL
    /// tests are skipped explicitly.
    ///
    /// # Panics
    /// When the variable is unset, or the database cannot be created.
    pub async fn create() -> Option<TempPgDatabase> {
        let url = postgres_url()?;
        match Self::create_on(&url).await {
            Ok(db) => Some(db),
            Err(e) => panic!("cannot create a test database on {DATABASE_URL_ENV}={url}: {e}"),
        }
    }

    /// Creates a database on the server that `server_url` (any database on it) points to.
    pub async fn create_on(server_url: &str) -> Result<TempPgDatabase, StoreError> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!(
            "galley_test_{}_{}_{}",
            std::process::id(),
            nanos,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let url = with_database(server_url, &name)?;
        admin(server_url, &format!("CREATE DATABASE \"{name}\"")).await?;
        Ok(TempPgDatabase {
            name,
            url,
            server_url: server_url.to_owned(),
        })
    }

    /// URL of the new database, for `StoreConfig::database_url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TempPgDatabase {
    fn drop(&mut self) {
        // Drop may run inside an async runtime: do the work on a thread of its own.
        let server = self.server_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => rt.block_on(admin(&server, &sql)),
                Err(e) => Err(StoreError::Query(e.to_string())),
            }
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("warning: cannot drop test database {}: {e}", self.name);
        }
    }
}

/// Runs one statement on a short-lived connection of its own.
async fn admin(server_url: &str, sql: &str) -> Result<(), StoreError> {
    let (client, conn) = tokio_postgres::connect(server_url, tokio_postgres::NoTls)
        .await
        .map_err(|e| StoreError::Config(format!("cannot connect to {server_url}: {e}")))?;
    let task = tokio::spawn(conn);
    let r = client
        .batch_execute(sql)
        .await
        .map_err(|e| StoreError::Query(e.to_string()));
    drop(client);
    let _ = task.await;
    r
}

/// `server_url` with its database replaced by `db`.
pub fn with_database(server_url: &str, db: &str) -> Result<String, StoreError> {
    let Some(scheme_end) = server_url.find("://") else {
        return Err(StoreError::Config(format!(
            "{DATABASE_URL_ENV} must be a URL like postgres://USER@HOST:PORT/DB"
        )));
    };
    let after = scheme_end + 3;
    let (base, query) = match server_url.find('?') {
        Some(q) => server_url.split_at(q),
        None => (server_url, ""),
    };
    let authority_end = base[after..].find('/').map_or(base.len(), |i| after + i);
    Ok(format!("{}/{db}{query}", &base[..authority_end]))
}

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// The `host:port` of a PostgreSQL URL (`localhost` as 127.0.0.1).
///
/// # Panics
/// On a URL that does not parse.
pub fn server_addr(url: &str) -> SocketAddr {
    let cfg: tokio_postgres::Config = url.parse().expect("proxy");
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
    format!("{host}:{port}").parse().expect("proxy")
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy");
        let addr = listener.local_addr().expect("proxy");
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
                tasks.lock().expect("proxy").push(t);
            }
        });
        *self.listener.lock().expect("proxy") = Some(h);
    }

    pub async fn cut(&self) {
        let l = self.listener.lock().expect("proxy").take();
        if let Some(l) = l {
            l.abort();
            let _ = l.await;
        }
        let tasks: Vec<_> = self.tasks.lock().expect("proxy").drain(..).collect();
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
    }

    pub async fn restore(&self) {
        let sock = tokio::net::TcpSocket::new_v4().expect("proxy");
        sock.set_reuseaddr(true).expect("proxy");
        sock.bind(self.addr).expect("proxy");
        self.serve(sock.listen(128).expect("proxy"));
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database() {
        let u = |s| with_database(s, "x").expect("url");
        assert_eq!(u("postgres://p@h:5432/test"), "postgres://p@h:5432/x");
        assert_eq!(u("postgres://p@h:5432"), "postgres://p@h:5432/x");
        assert_eq!(
            u("postgresql://p:w@h/test?sslmode=disable"),
            "postgresql://p:w@h/x?sslmode=disable"
        );
    }
}
