//! PostgreSQL-only behaviour: outages, pool limits, start-up errors.
//! Needs `GALLEY_TEST_DATABASE_URL` (fails without it unless `GALLEY_SKIP_POSTGRES=1`).
#![allow(clippy::unwrap_used)]

mod common;

use common::{Proxy, TempPgDatabase};
use galley_sql::SqlValue as V;
use galley_store::postgres::{PgOptions, PgStore};
use galley_store::{migrations, ConnExt, Store, StoreConfig, StoreError};
use std::future::Future;
use std::time::{Duration, Instant};

async fn open_with(url: &str, opts: &PgOptions) -> Store {
    let s = Store::Postgres(PgStore::open_with(url, opts).await.unwrap());
    s.write(migrations::run).await.unwrap();
    s.write(|c| c.batch("CREATE TABLE IF NOT EXISTS \"o\" (\"id\" TEXT PRIMARY KEY)"))
        .await
        .unwrap();
    s
}

async fn insert(s: &Store, id: &str) -> Result<u64, StoreError> {
    let id = id.to_owned();
    s.write(move |c| c.execute("INSERT INTO \"o\" (\"id\") VALUES ($1)", &[V::Text(id)]))
        .await
}

async fn count(s: &Store) -> Result<i64, StoreError> {
    s.read(|c| {
        Ok(c.query_one("SELECT COUNT(*) AS n FROM \"o\"", &[])?
            .map_or(0, |r| r.int("n")))
    })
    .await
}

/// Opens `n` pooled connections by running `n` slow reads at once.
async fn warm(s: &std::sync::Arc<Store>, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.read(|c| c.batch("SELECT pg_sleep(0.05)")).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Fails the test if `f` takes longer than `secs`: nothing may hang during an outage.
async fn within<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for more than {secs} s"))
}

fn unavailable<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(r, Err(StoreError::Unavailable(_))),
        "{what}: expected Unavailable, got {r:?}"
    );
}

/// Retries `insert` until it succeeds; every failure on the way must be `Unavailable`.
async fn recovers(s: &Store, id: &str) {
    let start = Instant::now();
    loop {
        match within(10, "a write after the restore", insert(s, id)).await {
            Ok(_) => return,
            Err(StoreError::Unavailable(_)) if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the store did not recover: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_gives_unavailable_then_recovers() {
    let Some(db) = TempPgDatabase::create().await else {
        return;
    };
    let proxy = Proxy::start(common::server_addr(db.url())).await;
    let url = common::via(db.url(), proxy.addr);
    let opts = PgOptions {
        pool_size: 4,
        wait_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
    };
    let s = open_with(&url, &opts).await;
    insert(&s, "before").await.unwrap();
    // Several pooled connections exist when the server goes away.
    let s = std::sync::Arc::new(s);
    warm(&s, 4).await;

    proxy.cut().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..3 {
        unavailable(
            within(
                8,
                "a write during the outage",
                insert(&s, &format!("during{i}")),
            )
            .await,
            "write",
        );
        unavailable(
            within(8, "a read during the outage", count(&s)).await,
            "read",
        );
    }

    proxy.restore().await;
    recovers(&s, "after").await;
    assert_eq!(count(&s).await.unwrap(), 2);
    for i in 0..10 {
        insert(&s, &format!("more{i}")).await.unwrap();
    }

    // The connection dies in the middle of a job.
    let job = {
        let s = s.clone();
        tokio::spawn(async move {
            s.write(|c| {
                c.execute("INSERT INTO \"o\" (\"id\") VALUES ('mid')", &[])?;
                std::thread::sleep(Duration::from_millis(400));
                c.execute("INSERT INTO \"o\" (\"id\") VALUES ('mid2')", &[])
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    proxy.cut().await;
    unavailable(
        within(8, "a job cut mid-way", job).await.unwrap(),
        "mid-job",
    );
    proxy.restore().await;
    recovers(&s, "after2").await;
    let n = count(&s).await.unwrap();
    assert_eq!(n, 13, "the cut job must not have committed");
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backends_are_replaced() {
    let Some(db) = TempPgDatabase::create().await else {
        return;
    };
    let s = open_with(db.url(), &PgOptions::default()).await;
    insert(&s, "a").await.unwrap();

    // A job whose own connection is killed fails as Unavailable; the next one gets a new one.
    let r = s
        .write(|c| {
            c.execute("INSERT INTO \"o\" (\"id\") VALUES ('ghost')", &[])?;
            c.query("SELECT pg_terminate_backend(pg_backend_pid())", &[])
        })
        .await;
    unavailable(r, "own backend terminated");
    insert(&s, "b").await.unwrap();

    // Every pooled connection killed from outside (an operator, a failover).
    let s = std::sync::Arc::new(s);
    warm(&s, 8).await;
    let admin = Store::Postgres(PgStore::open(db.url(), 2).await.unwrap());
    let killed = admin
        .read(|c| {
            c.query(
                "SELECT pg_terminate_backend(pid) AS k FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'galley'",
                &[],
            )
        })
        .await
        .unwrap();
    assert!(killed.len() >= 4, "killed {} backends", killed.len());
    admin.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Killed connections are noticed (closed clients) and replaced, not handed out.
    insert(&s, "c").await.unwrap();
    for i in 0..10 {
        insert(&s, &format!("d{i}")).await.unwrap();
    }
    assert_eq!(count(&s).await.unwrap(), 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_wait_is_bounded() {
    let Some(db) = TempPgDatabase::create().await else {
        return;
    };
    let opts = PgOptions {
        pool_size: 2,
        wait_timeout: Duration::from_millis(300),
        ..PgOptions::default()
    };
    let s = std::sync::Arc::new(open_with(db.url(), &opts).await);
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.read(|_| {
                    std::thread::sleep(Duration::from_millis(1500));
                    Ok::<_, StoreError>(())
                })
                .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    unavailable(count(&s).await, "pool exhausted");
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "waited {:?}",
        start.elapsed()
    );
    for b in busy {
        b.await.unwrap().unwrap();
    }
    assert_eq!(count(&s).await.unwrap(), 0);
}

fn config_error(r: Result<Store, StoreError>) -> String {
    match r {
        Err(StoreError::Config(m)) => m,
        Err(e) => panic!("expected a configuration error, got {e:?}"),
        Ok(_) => panic!("expected a configuration error, the store opened"),
    }
}

fn cfg(url: &str) -> StoreConfig {
    StoreConfig {
        database_url: Some(url.to_owned()),
        data_dir: "/nonexistent".into(),
        pool_size: 2,
        sync_full: false,
    }
}

#[tokio::test]
async fn startup_errors_say_what_to_fix() {
    // Malformed URL.
    let m = config_error(Store::open(&cfg("postgres://postgres@127.0.0.1:notaport/test")).await);
    assert!(
        m.contains("invalid database URL") && m.contains("postgres://USER"),
        "{m}"
    );
    // Not a PostgreSQL URL; the password is not echoed.
    let m = config_error(Store::open(&cfg("mysql://root:hunter2@db/galley")).await);
    assert!(
        m.contains("unsupported database URL") && !m.contains("hunter2"),
        "{m}"
    );
    // Nothing listens on the port.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let m = within(
        10,
        "opening an unreachable port",
        Store::open(&cfg(&format!("postgres://postgres@{free}/test"))),
    )
    .await;
    let m = config_error(m);
    assert!(
        m.contains("connection refused")
            && m.contains(&free.port().to_string())
            && m.contains("running"),
        "{m}"
    );
    // An sslrootcert that does not exist is named in the error.
    let m = config_error(
        Store::open(&cfg(
            "postgres://postgres@127.0.0.1:5432/test?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ))
        .await,
    );
    assert!(m.contains("/nonexistent/ca.pem"), "{m}");

    // Wrong database name on a real server.
    let Some(server) = galley_store::testing::postgres_url() else {
        return;
    };
    let url = galley_store::testing::with_database(&server, "galley_no_such_database").unwrap();
    let m = config_error(Store::open(&cfg(&url)).await);
    assert!(
        m.contains("galley_no_such_database")
            && m.contains("does not exist")
            && m.contains("CREATE DATABASE"),
        "{m}"
    );
    // Wrong user.
    let url = server.replacen("://", "://galley_no_such_user@", 1);
    let url = match url
        .find('@')
        .and_then(|first| url[first + 1..].find('@').map(|i| (first, first + 1 + i)))
    {
        // The server URL had its own user: drop it.
        Some((first, second)) => format!("{}{}", &url[..first], &url[second..]),
        None => url,
    };
    let m = config_error(Store::open(&cfg(&url)).await);
    assert!(
        m.contains("galley_no_such_user") || m.contains("login") || m.contains("refused"),
        "{m}"
    );
}

/// `#[tokio::test]` defaults to a current-thread runtime: jobs must not deadlock there.
#[tokio::test]
async fn works_on_a_current_thread_runtime() {
    let Some(db) = TempPgDatabase::create().await else {
        return;
    };
    let s = std::sync::Arc::new(open_with(db.url(), &PgOptions::default()).await);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(
            async move { insert(&s, &i.to_string()).await },
        ));
    }
    for t in tasks {
        within(20, "a write on a current-thread runtime", t)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(count(&s).await.unwrap(), 20);
    s.close().await;
    assert_eq!(count(&s).await, Err(StoreError::Closed));
}

/// `sslmode=require` encrypts the connection (libpq's meaning: the certificate is not
/// checked); `verify-full` checks it, so the machine's self-signed certificate is refused
/// with a clear start-up error.
#[tokio::test]
async fn tls_to_postgres() {
    let Some(db) = TempPgDatabase::create().await else {
        return;
    };
    let ssl_on = {
        let s = Store::open(&cfg(db.url())).await.unwrap();
        let on = s
            .read(|c: &mut dyn galley_store::Conn| c.query("SHOW ssl", &[]))
            .await
            .unwrap()
            .first()
            .map(|r| r.text("ssl"))
            == Some("on".to_owned());
        s.close().await;
        on
    };
    if !ssl_on {
        eprintln!("skipping TLS checks: this PostgreSQL server has ssl=off");
        return;
    }
    let sep = if db.url().contains('?') { '&' } else { '?' };
    let s = Store::open(&cfg(&format!("{}{sep}sslmode=require", db.url())))
        .await
        .unwrap();
    let rows = s
        .read(|c: &mut dyn galley_store::Conn| {
            c.query(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
        })
        .await
        .unwrap();
    assert!(rows[0].bool("ssl"), "the connection is encrypted");
    s.close().await;
    let m = config_error(Store::open(&cfg(&format!("{}{sep}sslmode=verify-full", db.url()))).await);
    assert!(
        m.to_lowercase().contains("certificate") || m.contains("tls") || m.contains("TLS"),
        "{m}"
    );
}
