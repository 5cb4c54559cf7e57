//! `galley-bench jobs`: the durable queue (galley-jobs) in process, on SQLite and
//! PostgreSQL (issue 15 item 8):
//!
//! * throughput: `producers` tasks enqueue `jobs` no-op jobs, each enqueue its own write
//!   job (no batching by the producer), while this node's workers run them; the figure is
//!   jobs from the first enqueue until the table is empty (every job done and deleted);
//! * pick-up latency: one producer enqueues at a fixed rate; each job carries the time its
//!   enqueue started and the handler records how long until it ran (enqueue, commit,
//!   wake-up, claim, dispatch).

use anyhow::{Context, Result};
use galley_jobs::{Jobs, JobsConfig, NewJob};
use galley_store::{Store, StoreConfig, StoreError};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct JobsArgs {
    pub database_url: Option<String>,
    pub jobs: u64,
    pub producers: usize,
    pub rate: u64,
    pub seconds: u64,
    pub pool: usize,
    /// Jobs per enqueue call (1: `Jobs::enqueue`; more: `Jobs::enqueue_many`).
    pub batch: usize,
}

async fn open(
    url: Option<&str>,
    pool: usize,
) -> Result<(
    Arc<Store>,
    Option<galley_store::testing::TempPgDatabase>,
    tempfile::TempDir,
)> {
    let dir = tempfile::tempdir()?;
    let db = match url {
        Some(u) => Some(
            galley_store::testing::TempPgDatabase::create_on(u)
                .await
                .context("create a PostgreSQL database")?,
        ),
        None => None,
    };
    let store = Store::open(&StoreConfig {
        database_url: db.as_ref().map(|d| d.url().to_owned()),
        data_dir: dir.path().to_owned(),
        pool_size: pool,
        sync_full: false,
    })
    .await?;
    Ok((Arc::new(store), db, dir))
}

async fn rows(store: &Store) -> i64 {
    store
        .read(|c| {
            Ok::<_, StoreError>(c.query("SELECT COUNT(*) AS n FROM \"_jobs\"", &[])?[0].int("n"))
        })
        .await
        .unwrap_or(-1)
}

fn config() -> JobsConfig {
    JobsConfig {
        concurrency: 256,
        batch: 256,
        poll: Duration::from_millis(200),
        ..Default::default()
    }
}

pub async fn run(a: &JobsArgs) -> Result<()> {
    let engine = if a.database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    // Throughput.
    {
        let (store, _db, _dir) = open(a.database_url.as_deref(), a.pool).await?;
        let jobs = Jobs::new(store.clone(), config());
        let done = Arc::new(AtomicU64::new(0));
        let d2 = done.clone();
        jobs.register("noop", move |_| {
            d2.fetch_add(1, Ordering::Relaxed);
            async { Ok(()) }
        });
        jobs.start();
        let t0 = Instant::now();
        let per = a.jobs / a.producers as u64;
        let mut tasks = Vec::new();
        let batch = a.batch;
        for _ in 0..a.producers {
            let jobs = jobs.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = 0;
                while i < per {
                    let k = (batch as u64).min(per - i);
                    if batch == 1 {
                        jobs.enqueue(NewJob::new("noop", json!(i))).await?;
                    } else {
                        let many = (i..i + k).map(|n| NewJob::new("noop", json!(n))).collect();
                        jobs.enqueue_many(many).await?;
                    }
                    i += k;
                }
                Ok::<_, galley_jobs::JobsError>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let enqueued = t0.elapsed();
        let total = per * a.producers as u64;
        while done.load(Ordering::Relaxed) < total || rows(&store).await != 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if t0.elapsed() > Duration::from_secs(600) {
                anyhow::bail!("jobs did not finish in 10 minutes");
            }
        }
        let all = t0.elapsed();
        println!(
            "{engine} (pool {}, {} per enqueue): {total} no-op jobs, {} producers: enqueued in {:.2} s ({:.0}/s), enqueue to completion {:.2} s = {:.0} jobs/s",
            a.pool,
            a.batch,
            a.producers,
            enqueued.as_secs_f64(),
            total as f64 / enqueued.as_secs_f64(),
            all.as_secs_f64(),
            total as f64 / all.as_secs_f64()
        );
        jobs.stop(Duration::from_secs(1)).await;
        store.close().await;
    }
    // Pick-up latency at a fixed rate.
    {
        let (store, _db, _dir) = open(a.database_url.as_deref(), a.pool).await?;
        let jobs = Jobs::new(store.clone(), config());
        let lat: Arc<Mutex<Vec<u64>>> = Arc::default();
        let l2 = lat.clone();
        let base = Instant::now();
        jobs.register("timed", move |job| {
            let sent = job.payload.as_u64().unwrap_or(0);
            let now = base.elapsed().as_micros() as u64;
            if let Ok(mut l) = l2.lock() {
                l.push(now.saturating_sub(sent));
            }
            async { Ok(()) }
        });
        jobs.start();
        let n = a.rate * a.seconds;
        let gap = Duration::from_secs_f64(1.0 / a.rate as f64);
        let mut tick = tokio::time::interval(gap);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            tick.tick().await;
            let jobs = jobs.clone();
            tasks.spawn(async move {
                let sent = base.elapsed().as_micros() as u64;
                jobs.enqueue(NewJob::new("timed", json!(sent))).await
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        let t0 = Instant::now();
        while lat.lock().map(|l| l.len() as u64).unwrap_or(0) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if t0.elapsed() > Duration::from_secs(120) {
                anyhow::bail!("timed jobs did not all run");
            }
        }
        let mut l = lat.lock().map(|l| l.clone()).unwrap_or_default();
        l.sort_unstable();
        let p = |q: f64| l[((l.len() as f64 * q) as usize).min(l.len() - 1)] as f64 / 1000.0;
        println!(
            "{engine}: pick-up latency at {} jobs/s for {} s ({} jobs): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            a.rate,
            a.seconds,
            n,
            p(0.5),
            p(0.9),
            p(0.99),
            p(1.0)
        );
        jobs.stop(Duration::from_secs(1)).await;
        store.close().await;
    }
    Ok(())
}
