//! The queue against both engines, through a real `Store`: enqueue inside committed and
//! rolled-back writes, runs, backoff, dead jobs and retry, unique keys, lapsed leases, and
//! cron ticks claimed by one node only.

use galley_jobs::{Enqueued, JobError, Jobs, JobsConfig, JobsError, NewJob};
use galley_store::testing::TempPgDatabase;
use galley_store::{Store, StoreConfig, StoreError};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A store on a fresh data dir or database; keep the guard alive as long as the store.
struct Db {
    dir: tempfile::TempDir,
    pg: Option<TempPgDatabase>,
}

impl Db {
    async fn new(pg: bool) -> Option<Db> {
        let pg = if pg {
            Some(TempPgDatabase::create().await?)
        } else {
            None
        };
        Some(Db {
            dir: tempfile::tempdir().expect("dir"),
            pg,
        })
    }

    async fn open(&self) -> Arc<Store> {
        Arc::new(
            Store::open(&StoreConfig {
                database_url: self.pg.as_ref().map(|d| d.url().to_owned()),
                data_dir: self.dir.path().to_owned(),
                pool_size: 4,
                sync_full: false,
            })
            .await
            .expect("open store"),
        )
    }
}

fn fast() -> JobsConfig {
    JobsConfig {
        concurrency: 8,
        lease: Duration::from_millis(600),
        backoff_base: Duration::from_millis(40),
        backoff_max: Duration::from_millis(200),
        poll: Duration::from_millis(100),
        ..Default::default()
    }
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn count_rows(store: &Store) -> i64 {
    store
        .read(|c| {
            Ok::<_, StoreError>(c.query("SELECT COUNT(*) AS n FROM \"_jobs\"", &[])?[0].int("n"))
        })
        .await
        .expect("count")
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = super::Db::new(false).await.expect("sqlite");
                super::$name(db).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = super::Db::new(true).await {
                    super::$name(db).await
                }
            }
        }
    )*};
}

both!(
    enqueue_commits_with_the_write,
    runs_and_deletes,
    backoff_then_dead_then_retry,
    permanent_failure_is_dead_at_once,
    unique_keys,
    lapsed_lease_runs_again,
    priority_and_run_at,
    cron_tick_on_one_node,
    bad_input,
    enqueue_many_in_one_write,
);

async fn enqueue_commits_with_the_write(db: Db) {
    let store = db.open().await;
    // Rolled back: the write job fails after enqueueing.
    let r: Result<(), JobsError> = store
        .write(|c| {
            galley_jobs::enqueue(c, &NewJob::new("noop", json!({"n": 1})))?;
            Err(JobsError::Invalid("the write fails".into()))
        })
        .await;
    assert!(r.is_err());
    assert_eq!(
        count_rows(&store).await,
        0,
        "a rolled-back write left a job"
    );
    // Committed.
    let e = store
        .write(|c| galley_jobs::enqueue(c, &NewJob::new("noop", json!({"n": 2}))))
        .await
        .expect("enqueue");
    let Enqueued::New(id) = e else {
        panic!("not new: {e:?}")
    };
    let jobs = Jobs::new(store.clone(), fast());
    let info = jobs.get(&id).await.expect("get").expect("stored");
    assert_eq!(
        (info.kind.as_str(), info.state.as_str()),
        ("noop", "queued")
    );
    assert_eq!(info.payload, json!({"n": 2}));
    assert_eq!((info.attempts, info.max_attempts), (0, 10));
    // It runs once workers start.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    jobs.register("noop", move |job| {
        let s = s.clone();
        async move {
            s.lock()
                .expect("lock")
                .push((job.id, job.payload, job.attempt));
            Ok(())
        }
    });
    jobs.start();
    wait_until("the job to run", || seen.lock().expect("lock").len() == 1).await;
    assert_eq!(
        seen.lock().expect("lock")[0],
        (id.clone(), json!({"n": 2}), 1)
    );
    let start = Instant::now();
    while count_rows(&store).await != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "done job not deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    jobs.stop(Duration::from_secs(1)).await;
}

async fn runs_and_deletes(db: Db) {
    let store = db.open().await;
    let jobs = Jobs::new(store.clone(), fast());
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    jobs.register("count", move |_| {
        let n = n2.clone();
        async move {
            n.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    jobs.start();
    for i in 0..300 {
        jobs.enqueue(NewJob::new("count", json!(i)))
            .await
            .expect("enqueue");
    }
    wait_until("300 runs", || n.load(Ordering::SeqCst) >= 300).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(n.load(Ordering::SeqCst), 300, "a job ran twice");
    let start = Instant::now();
    while count_rows(&store).await != 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "rows left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    jobs.stop(Duration::from_secs(1)).await;
}

async fn backoff_then_dead_then_retry(db: Db) {
    let store = db.open().await;
    let jobs = Jobs::new(store.clone(), fast());
    let times = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (t2, f2) = (times.clone(), fail.clone());
    jobs.register("flaky", move |job| {
        let (t, f) = (t2.clone(), f2.clone());
        async move {
            t.lock().expect("lock").push(Instant::now());
            if f.load(Ordering::SeqCst) {
                Err(JobError::retry(format!(
                    "partner down (attempt {})",
                    job.attempt
                )))
            } else {
                Ok(())
            }
        }
    });
    jobs.start();
    let id = jobs
        .enqueue(NewJob::new("flaky", json!({})).max_attempts(4))
        .await
        .expect("enqueue")
        .id()
        .to_owned();
    wait_until("4 attempts", || times.lock().expect("lock").len() == 4).await;
    // Dead, with the last error, after exactly max_attempts runs.
    let start = Instant::now();
    let info = loop {
        let info = jobs.get(&id).await.expect("get").expect("kept");
        if info.state == "dead" {
            break info;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not dead: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(info.attempts, 4);
    assert_eq!(info.last_error, "partner down (attempt 4)");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(times.lock().expect("lock").len(), 4, "a dead job ran again");
    // The gaps grow (40 ms · 2^n, jitter 0.5-1.5, capped at 200 ms).
    let t = times.lock().expect("lock").clone();
    let gaps: Vec<Duration> = t.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= Duration::from_millis(20), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(80), "{gaps:?}");
    assert!(gaps.iter().all(|g| *g < Duration::from_secs(2)), "{gaps:?}");
    let dead = jobs.list(Some("dead"), 10, 0).await.expect("list");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, id);
    // Retry: fresh attempts, runs, succeeds, is gone.
    fail.store(false, Ordering::SeqCst);
    jobs.retry(&id).await.expect("retry");
    wait_until("the retried run", || times.lock().expect("lock").len() == 5).await;
    let start = Instant::now();
    while jobs.get(&id).await.expect("get").is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "retried job not deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(jobs.retry(&id).await, Err(JobsError::NotFound)));
    jobs.stop(Duration::from_secs(1)).await;
}

async fn permanent_failure_is_dead_at_once(db: Db) {
    let store = db.open().await;
    let jobs = Jobs::new(store.clone(), fast());
    jobs.register("bad", |_| async { Err(JobError::permanent("bad payload")) });
    jobs.start();
    let id = jobs
        .enqueue(NewJob::new("bad", json!(null)))
        .await
        .expect("enqueue")
        .id()
        .to_owned();
    let start = Instant::now();
    loop {
        let info = jobs.get(&id).await.expect("get").expect("kept");
        if info.state == "dead" {
            assert_eq!(
                (info.attempts, info.last_error.as_str()),
                (1, "bad payload")
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A dead job can be deleted; a missing one is NotFound.
    jobs.delete(&id).await.expect("delete");
    assert!(matches!(jobs.delete(&id).await, Err(JobsError::NotFound)));
    jobs.stop(Duration::from_secs(1)).await;
}

async fn unique_keys(db: Db) {
    let store = db.open().await;
    let jobs = Jobs::new(store.clone(), fast());
    let a = jobs
        .enqueue(NewJob::new("k", json!(1)).unique_key("user:1"))
        .await
        .expect("a");
    let Enqueued::New(a_id) = a else {
        panic!("{a:?}")
    };
    let b = jobs
        .enqueue(NewJob::new("k", json!(2)).unique_key("user:1"))
        .await
        .expect("b");
    assert_eq!(b, Enqueued::Duplicate(a_id.clone()));
    // Inside one write job too; and another key is fine.
    let (c, d) = store
        .write(|c| {
            Ok::<_, JobsError>((
                galley_jobs::enqueue(c, &NewJob::new("k", json!(3)).unique_key("user:1"))?,
                galley_jobs::enqueue(c, &NewJob::new("k", json!(4)).unique_key("user:2"))?,
            ))
        })
        .await
        .expect("in a job");
    assert_eq!(c, Enqueued::Duplicate(a_id.clone()));
    assert!(matches!(d, Enqueued::New(_)));
    assert_eq!(count_rows(&store).await, 2);
    // Once the job has run, the key is free again; two keys never run at once.
    let running = Arc::new(AtomicUsize::new(0));
    let overlap = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let (r2, o2, d2) = (running.clone(), overlap.clone(), done.clone());
    jobs.register("k", move |_| {
        let (r, o, d) = (r2.clone(), o2.clone(), d2.clone());
        async move {
            if r.fetch_add(1, Ordering::SeqCst) > 1 {
                o.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
            r.fetch_sub(1, Ordering::SeqCst);
            d.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    jobs.start();
    wait_until("both keys to run", || done.load(Ordering::SeqCst) == 2).await;
    let start = Instant::now();
    while count_rows(&store).await != 0 {
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = jobs
        .enqueue(NewJob::new("k", json!(5)).unique_key("user:1"))
        .await
        .expect("again");
    assert!(
        matches!(again, Enqueued::New(ref id) if *id != a_id),
        "{again:?}"
    );
    jobs.stop(Duration::from_secs(1)).await;
}

/// A node claims a job and stops without finishing it (as if killed): once the lease
/// lapses another node runs it; the stopped node's late finish changes nothing.
async fn lapsed_lease_runs_again(db: Db) {
    let store = db.open().await;
    let crashed = Jobs::new(store.clone(), fast());
    let started = Arc::new(AtomicUsize::new(0));
    let s2 = started.clone();
    crashed.register("slow", move |_| {
        let s = s2.clone();
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    crashed.start();
    let id = crashed
        .enqueue(NewJob::new("slow", json!({"x": 1})).max_attempts(3))
        .await
        .expect("enqueue")
        .id()
        .to_owned();
    wait_until("the first run", || started.load(Ordering::SeqCst) == 1).await;
    let info = crashed.get(&id).await.expect("get").expect("row");
    assert_eq!((info.state.as_str(), info.attempts), ("running", 1));
    // Kill: stop the tasks without releasing the job (no graceful stop).
    crashed.abort_for_tests();
    let t0 = Instant::now();
    let survivor = Jobs::new(store.clone(), fast());
    let ran = Arc::new(Mutex::new(Vec::new()));
    let r2 = ran.clone();
    survivor.register("slow", move |job| {
        let r = r2.clone();
        async move {
            r.lock()
                .expect("lock")
                .push((job.id, job.attempt, Instant::now()));
            Ok(())
        }
    });
    survivor.start();
    wait_until("the re-run", || ran.lock().expect("lock").len() == 1).await;
    let (rid, attempt, at) = ran.lock().expect("lock")[0].clone();
    assert_eq!((rid.as_str(), attempt), (id.as_str(), 2));
    // Not before the lease (600 ms from the claim) lapsed.
    assert!(
        at - t0 >= Duration::from_millis(300),
        "re-run after {:?}",
        at - t0
    );
    let start = Instant::now();
    while survivor.get(&id).await.expect("get").is_some() {
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    survivor.stop(Duration::from_secs(1)).await;
}

async fn priority_and_run_at(db: Db) {
    let store = db.open().await;
    let jobs = Jobs::new(
        store.clone(),
        JobsConfig {
            concurrency: 1,
            batch: 1,
            ..fast()
        },
    );
    let order = Arc::new(Mutex::new(Vec::new()));
    let o2 = order.clone();
    jobs.register("p", move |job| {
        let o = o2.clone();
        async move {
            o.lock()
                .expect("lock")
                .push(job.payload.as_str().unwrap_or_default().to_owned());
            Ok(())
        }
    });
    let later = chrono::Utc::now() + chrono::Duration::milliseconds(700);
    jobs.enqueue(NewJob::new("p", json!("later")).run_at(later).priority(100))
        .await
        .expect("later");
    jobs.enqueue(NewJob::new("p", json!("low")).priority(-1))
        .await
        .expect("low");
    jobs.enqueue(NewJob::new("p", json!("mid")))
        .await
        .expect("mid");
    jobs.enqueue(NewJob::new("p", json!("high")).priority(5))
        .await
        .expect("high");
    let t0 = Instant::now();
    jobs.start();
    wait_until("four runs", || order.lock().expect("lock").len() == 4).await;
    assert_eq!(
        *order.lock().expect("lock"),
        ["high", "mid", "low", "later"]
    );
    assert!(t0.elapsed() >= Duration::from_millis(400));
    jobs.stop(Duration::from_secs(1)).await;
}

/// Two nodes on one database with the same cron entry: each tick runs once, on one node.
async fn cron_tick_on_one_node(db: Db) {
    let a_store = db.open().await;
    let b_store = if db.pg.is_some() {
        db.open().await
    } else {
        a_store.clone()
    };
    let runs = Arc::new(AtomicUsize::new(0));
    let (a, b) = (Jobs::new(a_store, fast()), Jobs::new(b_store, fast()));
    for j in [&a, &b] {
        let r = runs.clone();
        j.cron_add("tick", "*/5 * * * *", move || {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
            }
        })
        .expect("add");
    }
    let t = chrono::DateTime::parse_from_rfc3339("2026-12-02T08:15:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    let (ra, rb) = tokio::join!(a.run_due_crons(t), b.run_due_crons(t));
    assert_eq!(ra + rb, 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // The same tick again: nobody; the next due one: one node; a minute not due: nobody.
    assert_eq!(a.run_due_crons(t).await + b.run_due_crons(t).await, 0);
    let t2 = t + chrono::Duration::minutes(5);
    let (ra, rb) = tokio::join!(a.run_due_crons(t2), b.run_due_crons(t2));
    assert_eq!(ra + rb, 1);
    let t3 = t2 + chrono::Duration::minutes(1);
    assert_eq!(a.run_due_crons(t3).await + b.run_due_crons(t3).await, 0);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // Listing, replacing in place, removing, running now.
    a.cron_add("other", "@hourly", || async {}).expect("add");
    a.cron_add("tick", "0 0 * * *", || async {})
        .expect("replace");
    let list: Vec<(String, String)> = a
        .crons()
        .into_iter()
        .map(|c| (c.id, c.expression))
        .collect();
    assert_eq!(
        list,
        [
            ("tick".into(), "0 0 * * *".into()),
            ("other".into(), "@hourly".into())
        ]
    );
    assert!(matches!(
        a.cron_add("bad", "61 * * * *", || async {}),
        Err(JobsError::Cron(_))
    ));
    assert_eq!(a.crons().len(), 2);
    assert!(a.cron_remove("other"));
    assert!(!a.cron_remove("other"));
    assert!(!a.cron_run("other"));
    let before = runs.load(Ordering::SeqCst);
    assert!(b.cron_run("tick"));
    wait_until("the manual run", || {
        runs.load(Ordering::SeqCst) == before + 1
    })
    .await;
}

async fn bad_input(db: Db) {
    let store = db.open().await;
    let jobs = Jobs::new(store.clone(), fast());
    let big = "x".repeat(galley_jobs::queue::MAX_PAYLOAD + 1);
    assert!(matches!(
        jobs.enqueue(NewJob::new("k", json!(big))).await,
        Err(JobsError::PayloadTooLarge { .. })
    ));
    assert!(matches!(
        jobs.enqueue(NewJob::new("", json!(1))).await,
        Err(JobsError::Invalid(_))
    ));
    assert!(matches!(
        jobs.enqueue(NewJob::new("k", json!(1)).max_attempts(0))
            .await,
        Err(JobsError::Invalid(_))
    ));
    // Inside a write job, the error fails that job.
    let r = store
        .write(move |c| galley_jobs::enqueue(c, &NewJob::new("k", json!(big))))
        .await;
    assert!(r.is_err());
    assert_eq!(count_rows(&store).await, 0);
}

async fn enqueue_many_in_one_write(db: Db) {
    let store = db.open().await;
    let jobs = Jobs::new(store.clone(), fast());
    let r = jobs
        .enqueue_many(vec![
            NewJob::new("m", json!(1)).unique_key("u"),
            NewJob::new("m", json!(2)).unique_key("u"),
            NewJob::new("m", json!(3)),
        ])
        .await
        .expect("many");
    let Enqueued::New(first) = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(r[1], Enqueued::Duplicate(first.clone()));
    assert!(matches!(r[2], Enqueued::New(_)));
    assert_eq!(count_rows(&store).await, 2);
    // One invalid job: nothing is added.
    let bad = jobs
        .enqueue_many(vec![NewJob::new("m", json!(4)), NewJob::new("", json!(5))])
        .await;
    assert!(matches!(bad, Err(JobsError::Invalid(_))));
    assert_eq!(count_rows(&store).await, 2);
}
