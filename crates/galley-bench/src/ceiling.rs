//! The ceilings of this machine: what a minimal axum handler serves over loopback, and what
//! raw rusqlite does for point reads and single-row inserts on the same table shape.

use crate::load::Stats;
use anyhow::{Context, Result};
use rusqlite::{params, Connection};
use std::path::Path;
use std::time::{Duration, Instant};

/// `galley-bench fixed-json-server`: axum on the default multi-thread runtime, one route.
pub async fn fixed_json_server(http: &str) -> Result<()> {
    use axum::{routing::get, Json, Router};
    let app = Router::new().route(
        "/",
        get(|| async {
            Json(serde_json::json!({"id": "abcdefghijklmno", "title": "Post number 1", "views": 42, "published": true}))
        }),
    );
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .with_context(|| format!("binding {http}"))?;
    axum::serve(listener, app).await?;
    Ok(())
}

fn open(path: &Path) -> Result<Connection> {
    let c = Connection::open(path)?;
    c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))?;
    // The same pragmas as Galley's SQLite store.
    c.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32000;",
    )?;
    c.busy_timeout(Duration::from_secs(10))?;
    Ok(c)
}

fn id(i: u64) -> String {
    format!("r{i:014}")
}

/// Creates the posts table with `n` rows (one transaction) and returns its path.
pub fn prepare(dir: &Path, n: u64) -> Result<std::path::PathBuf> {
    let path = dir.join("ceiling.db");
    let _ = std::fs::remove_file(&path);
    let mut c = open(&path)?;
    c.execute_batch(
        "CREATE TABLE posts (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '',
           views NUMERIC NOT NULL DEFAULT 0, published BOOLEAN NOT NULL DEFAULT FALSE,
           created TEXT NOT NULL DEFAULT '', updated TEXT NOT NULL DEFAULT '');",
    )?;
    let tx = c.transaction()?;
    {
        let mut st = tx.prepare("INSERT INTO posts (id, title, body, views, published, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)")?;
        for i in 0..n {
            let b = crate::load::post_body(i);
            st.execute(params![
                id(i),
                b["title"].as_str(),
                b["body"].as_str(),
                b["views"].as_u64(),
                b["published"].as_bool(),
                "2026-01-01 00:00:00.000Z"
            ])?;
        }
    }
    tx.commit()?;
    Ok(path)
}

/// Point reads by primary key (prepared, cached statement) on `threads` connections.
pub fn point_reads(path: &Path, n: u64, threads: usize, duration: Duration) -> Result<Stats> {
    let end = Instant::now() + duration;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let path = path.to_owned();
            std::thread::spawn(move || -> Result<Vec<u32>> {
                let c = open(&path)?;
                let mut lat = Vec::new();
                let mut i = (t as u64 * 7919) % n;
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let mut st = c.prepare_cached("SELECT id, title, body, views, published, created, updated FROM posts WHERE id = ?1")?;
                    let row: (String, String, String, f64, bool, String, String) = st.query_row([id(i)], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
                    })?;
                    std::hint::black_box(row);
                    lat.push(u32::try_from(t0.elapsed().as_nanos().div_ceil(1000)).unwrap_or(u32::MAX));
                    i = (i + 104_729) % n;
                }
                Ok(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(
            h.join()
                .map_err(|_| anyhow::anyhow!("reader thread panicked"))??,
        );
    }
    Ok(Stats::from_latencies(
        all,
        0,
        0,
        duration.as_secs_f64(),
        None,
    ))
}

/// Single-row autocommit inserts on one connection (SQLite has one writer).
pub fn inserts(path: &Path, duration: Duration) -> Result<Stats> {
    let c = open(path)?;
    let end = Instant::now() + duration;
    let mut lat = Vec::new();
    let mut i = 10_000_000u64;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let b = crate::load::post_body(i);
        let mut st = c.prepare_cached(
            "INSERT INTO posts (id, title, body, views, published, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        )?;
        st.execute(params![
            id(i),
            b["title"].as_str(),
            b["body"].as_str(),
            b["views"].as_u64(),
            b["published"].as_bool(),
            "2026-01-01 00:00:00.000Z"
        ])?;
        lat.push(u32::try_from(t0.elapsed().as_nanos().div_ceil(1000)).unwrap_or(u32::MAX));
        i += 1;
    }
    Ok(Stats::from_latencies(
        lat,
        0,
        0,
        duration.as_secs_f64(),
        None,
    ))
}
