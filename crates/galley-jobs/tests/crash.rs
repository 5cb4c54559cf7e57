//! Crash rounds (issue 15 item 9): a child process (this test binary again) runs 8
//! producers and the workers; it is killed with SIGKILL at a random moment, five times.
//! Then a last child drains the queue. Every enqueue the child acknowledged (printed after
//! its commit) must have run to completion, and no two runs of one unique key may overlap
//! in time (a killed run ends at its kill).

use galley_jobs::{Enqueued, Jobs, JobsConfig, NewJob};
use galley_store::testing::TempPgDatabase;
use galley_store::{Store, StoreConfig, StoreError};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DIR: &str = "GALLEY_CRASH_DIR";
const URL: &str = "GALLEY_CRASH_URL";
const MODE: &str = "GALLEY_CRASH_MODE";

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

async fn open(dir: &str, url: Option<String>) -> Arc<Store> {
    Arc::new(
        Store::open(&StoreConfig {
            database_url: url,
            data_dir: dir.into(),
            pool_size: 4,
            sync_full: false,
        })
        .await
        .expect("open store"),
    )
}

/// The child: with MODE=work, 8 producers enqueue (printing `ack <id>` after each commit)
/// while the workers run; with MODE=drain, workers only, until the queue is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by crash_rounds as a child process"]
async fn crash_child() {
    let (Ok(dir), Ok(mode)) = (std::env::var(DIR), std::env::var(MODE)) else {
        return;
    };
    let url = std::env::var(URL).ok().filter(|u| !u.is_empty());
    let store = open(&dir, url).await;
    store
        .write(|c| {
            c.batch("CREATE TABLE IF NOT EXISTS crash_runs (job TEXT NOT NULL, ukey TEXT NOT NULL, started BIGINT NOT NULL, ended BIGINT NULL)")
        })
        .await
        .expect("table");
    let jobs = Jobs::new(
        store.clone(),
        JobsConfig {
            concurrency: 16,
            lease: Duration::from_millis(900),
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
            poll: Duration::from_millis(50),
            ..Default::default()
        },
    );
    let s2 = store.clone();
    jobs.register("crash", move |job| {
        let store = s2.clone();
        async move {
            let key = job.unique_key.clone().unwrap_or_default();
            let (id, k) = (job.id.clone(), key.clone());
            let started = now_us();
            store
                .write(move |c| {
                    let d = c.dialect();
                    let sql = format!(
                        "INSERT INTO crash_runs (job, ukey, started) VALUES ({}, {}, {})",
                        d.placeholder(1),
                        d.placeholder(2),
                        d.placeholder(3)
                    );
                    c.execute(&sql, &[id.into(), k.into(), started.into()])
                })
                .await
                .map_err(|e| galley_jobs::JobError::retry(e.to_string()))?;
            tokio::time::sleep(Duration::from_millis(5 + (started % 20) as u64)).await;
            let id = job.id.clone();
            store
                .write(move |c| {
                    let d = c.dialect();
                    let sql = format!(
                        "UPDATE crash_runs SET ended = {} WHERE job = {} AND started = {}",
                        d.placeholder(1),
                        d.placeholder(2),
                        d.placeholder(3)
                    );
                    c.execute(&sql, &[now_us().into(), id.into(), started.into()])
                })
                .await
                .map_err(|e| galley_jobs::JobError::retry(e.to_string()))?;
            Ok(())
        }
    });
    jobs.start();
    if mode == "drain" {
        let mut empty_since: Option<Instant> = None;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            // libtest may print "test crash_child ... " before our lines.
            let n = store
                .read(|c| {
                    Ok::<_, StoreError>(
                        c.query("SELECT COUNT(*) AS n FROM \"_jobs\"", &[])?[0].int("n"),
                    )
                })
                .await
                .expect("count");
            if n == 0 {
                let since = *empty_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(500) {
                    println!("drained");
                    return;
                }
            } else {
                empty_since = None;
            }
        }
    }
    let round: u64 = std::env::var("GALLEY_CRASH_ROUND")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let mut tasks = Vec::new();
    for p in 0..8u64 {
        let jobs = jobs.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let n = round * 1_000_000 + p * 100_000 + i;
                let job = NewJob::new("crash", json!({"n": n})).unique_key(format!("k{}", n % 24));
                match jobs.enqueue(job).await {
                    Ok(Enqueued::New(id)) => println!("ack {id}"),
                    Ok(Enqueued::Duplicate(_)) => {}
                    Err(e) => println!("err {e}"),
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

fn child(dir: &str, url: &str, mode: &str, round: u32) -> std::process::Child {
    Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR, dir)
        .env(URL, url)
        .env(MODE, mode)
        .env("GALLEY_CRASH_ROUND", round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child")
}

async fn rounds(url: Option<String>) {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().to_string_lossy().into_owned();
    let u = url.clone().unwrap_or_default();
    let mut acked: HashSet<String> = HashSet::new();
    let mut kills: Vec<i64> = Vec::new();
    for round in 1..=5u32 {
        let mut c = child(&d, &u, "work", round);
        let out = c.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.split("ack ").nth(1).map(str::to_owned))
                // A line cut by the kill is not an acknowledgement.
                .filter(|id| id.len() == 15)
                .collect::<Vec<_>>()
        });
        let run = 700 + u64::from(round) * 173 % 900;
        std::thread::sleep(Duration::from_millis(run));
        c.kill().expect("SIGKILL");
        kills.push(now_us());
        let _ = c.wait();
        let got = reader.join().expect("reader");
        assert!(
            !got.is_empty(),
            "round {round}: the child acknowledged nothing"
        );
        acked.extend(got);
    }
    let mut c = child(&d, &u, "drain", 0);
    let out = c.stdout.take().expect("stdout");
    let t0 = Instant::now();
    let drained = std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.ends_with("drained"))
    });
    while c.try_wait().expect("wait").is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the drain did not finish"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(drained.join().expect("reader"), "the drain child failed");

    let store = open(&d, url).await;
    let runs = store
        .read(|c: &mut dyn galley_store::Conn| -> Result<_, StoreError> {
            c.query(
                "SELECT job, ukey, started, ended FROM crash_runs ORDER BY started",
                &[],
            )
        })
        .await
        .expect("runs");
    let completed: HashSet<String> = runs
        .iter()
        .filter(|r| r.get("ended").is_some_and(|v| v.as_i64().is_some()))
        .map(|r| r.text("job"))
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !completed.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged jobs never completed: {:?}",
        lost.len(),
        acked.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    // No overlapping runs of one key; a run cut by a kill ends at that kill.
    let mut by_key: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    for r in &runs {
        let start = r.int("started");
        let end = r.get("ended").and_then(|v| v.as_i64()).unwrap_or_else(|| {
            kills
                .iter()
                .copied()
                .find(|k| *k >= start)
                .unwrap_or(i64::MAX)
        });
        by_key.entry(r.text("ukey")).or_default().push((start, end));
    }
    for (k, mut v) in by_key {
        v.sort_unstable();
        for w in v.windows(2) {
            assert!(
                w[1].0 >= w[0].1,
                "key {k}: runs overlap: {:?} and {:?}",
                w[0],
                w[1]
            );
        }
    }
    let reruns = runs.len() - completed.len().min(runs.len());
    println!(
        "{} acknowledged jobs over 5 kill -9 rounds, all completed; {} runs in all ({} cut by a kill or run again)",
        acked.len(),
        runs.len(),
        reruns
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_rounds_sqlite() {
    rounds(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_rounds_postgres() {
    let Some(db) = TempPgDatabase::create().await else {
        return;
    };
    rounds(Some(db.url().to_owned())).await;
    drop(db);
}
