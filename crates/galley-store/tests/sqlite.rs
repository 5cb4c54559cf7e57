//! SQLite-only behaviour: locks held by another process, WAL, reader connections, jobs that
//! end the transaction themselves.
#![allow(clippy::unwrap_used)]

mod common;

use common::Ctx;
use galley_sql::SqlValue as V;
use galley_store::sqlite::{SqliteOptions, SqliteStore};
use galley_store::{ConnExt, Store, StoreError};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn insert(s: &Store, id: &str) -> Result<u64, StoreError> {
    let id = id.to_owned();
    s.write(move |c| c.execute("INSERT INTO \"o\" (\"id\") VALUES (?1)", &[V::Text(id)]))
        .await
}

async fn count(s: &Store) -> i64 {
    s.read(|c| c.query_one("SELECT COUNT(*) AS n FROM \"o\"", &[]))
        .await
        .unwrap()
        .unwrap()
        .int("n")
}

async fn with_table() -> Ctx {
    let ctx = Ctx::sqlite().await;
    ctx.store
        .write(|c| c.batch("CREATE TABLE \"o\" (\"id\" TEXT PRIMARY KEY)"))
        .await
        .unwrap();
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_elsewhere_fails_writes_without_hanging() {
    let ctx = with_table().await;
    ctx.store.close().await;
    let dir = ctx.cfg.data_dir.clone();
    // Another process (here: another connection) holds the write lock.
    let other = rusqlite::Connection::open(dir.join("data.db")).unwrap();
    other
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO \"o\" VALUES ('other');")
        .unwrap();

    let opts = SqliteOptions {
        readers: 2,
        sync_full: false,
        busy_timeout: Duration::from_millis(200),
    };
    let s = Arc::new(Store::Sqlite(SqliteStore::open_with(&dir, &opts).unwrap()));
    let start = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { insert(&s, &format!("w{i}")).await })
        })
        .collect();
    for t in tasks {
        let r = tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("a write hung")
            .unwrap();
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    // Readers are not blocked by a writer in WAL mode.
    assert_eq!(count(&s).await, 0);

    other.execute_batch("COMMIT").unwrap();
    insert(&s, "after").await.unwrap();
    assert_eq!(count(&s).await, 2);
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_and_readers_are_set_up() {
    let ctx = with_table().await;
    let mode = ctx
        .store
        .read(|c| c.query_one("PRAGMA journal_mode", &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mode.values[0], V::from("wal"));
    let fk = ctx
        .store
        .read(|c| c.query_one("PRAGMA foreign_keys", &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fk.values[0], V::Int(1));
    let sync = ctx
        .store
        .write(|c| c.query_one("PRAGMA synchronous", &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sync.values[0], V::Int(1), "synchronous=NORMAL");
    // Reader connections cannot write.
    let r = ctx
        .store
        .read(|c| c.execute("INSERT INTO \"o\" VALUES ('x')", &[]))
        .await;
    assert!(matches!(r, Err(StoreError::Query(_))), "{r:?}");
    assert_eq!(count(&ctx.store).await, 0);
    // A read job that leaves a transaction open does not pin an old snapshot.
    ctx.store
        .read(|c| c.batch("BEGIN; SELECT COUNT(*) FROM \"o\";"))
        .await
        .unwrap();
    for i in 0..10 {
        insert(&ctx.store, &i.to_string()).await.unwrap();
        let reads: Vec<_> = (0..6)
            .map(|_| {
                let s = ctx.store.clone();
                tokio::spawn(async move { count(&s).await })
            })
            .collect();
        for r in reads {
            assert_eq!(r.await.unwrap(), i + 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_ending_the_transaction_fails_and_the_writer_goes_on() {
    let ctx = with_table().await;
    for stmt in ["COMMIT", "ROLLBACK"] {
        let r = ctx
            .store
            .write(move |c| {
                c.execute("INSERT INTO \"o\" VALUES ('rogue')", &[])?;
                c.batch(stmt)
            })
            .await;
        assert!(r.is_err(), "{stmt}: {r:?}");
        ctx.store
            .write(|c| c.execute("DELETE FROM \"o\" WHERE \"id\" = 'rogue'", &[]))
            .await
            .unwrap();
    }
    insert(&ctx.store, "fine").await.unwrap();
    assert_eq!(count(&ctx.store).await, 1);
}

#[tokio::test]
async fn works_on_a_current_thread_runtime() {
    let ctx = with_table().await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = ctx.store.clone();
            tokio::spawn(async move { insert(&s, &i.to_string()).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(count(&ctx.store).await, 20);
}

#[tokio::test]
async fn an_unusable_data_dir_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let r = SqliteStore::open(&file.join("sub"), 1, false);
    assert!(
        matches!(&r, Err(StoreError::Config(m)) if m.contains("--dir")),
        "{:?}",
        r.err()
    );
    // A data.db that is not a database.
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("data.db"),
        b"this is not a sqlite database, just text that is long enough",
    )
    .unwrap();
    let r = SqliteStore::open(&bad, 1, false);
    assert!(
        matches!(&r, Err(StoreError::Config(m)) if m.contains("data.db")),
        "{:?}",
        r.err()
    );
}
