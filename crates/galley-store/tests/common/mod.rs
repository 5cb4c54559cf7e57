//! Shared test support: one test body, run on SQLite (temporary directory) and on
//! PostgreSQL (a fresh database on `GALLEY_TEST_DATABASE_URL`, dropped afterwards).
#![allow(dead_code, clippy::unwrap_used)]

use galley_sql::Dialect;
pub use galley_store::testing::TempPgDatabase;
use galley_store::{Store, StoreConfig};
use std::net::SocketAddr;
use std::sync::Arc;

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
        self.pg.is_some()
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

/// Test SQL is written with `$1` placeholders; each becomes the dialect's own (`?1`).
pub fn q(d: &Dialect, sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        match rest[at + 1..at + 1 + digits].parse::<usize>() {
            Ok(n) => out.push_str(&d.placeholder(n)),
            Err(_) => out.push('$'),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out
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
#[allow(unused_imports)]
pub use galley_store::testing::{server_addr, Proxy};
