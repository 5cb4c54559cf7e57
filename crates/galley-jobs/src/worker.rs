//! The workers of one process: a dispatcher that claims due jobs in batches (one write job
//! per batch: on SQLite through the single writer, on PostgreSQL with SKIP LOCKED) up to the
//! configured concurrency, a task per job, a completer that records finished runs in
//! batches, a heartbeat that extends the leases of running jobs, and the cron scheduler.

use crate::queue::{self, Job, Outcome};
use crate::{backoff, JobError, Jobs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinHandle;

/// Wake-ups of this process's dispatchers by enqueues on SQLite (PostgreSQL uses NOTIFY).
/// Process-wide because [`queue::enqueue`] sees only a connection; a spurious wake costs one
/// claim. The generation closes the race between a dispatcher's last claim and its wait.
static WAKE: LazyLock<Notify> = LazyLock::new(Notify::new);
static WAKE_GEN: AtomicU64 = AtomicU64::new(0);

pub(crate) fn wake_local() {
    WAKE_GEN.fetch_add(1, Ordering::SeqCst);
    WAKE.notify_waiters();
}

#[derive(Default)]
pub(crate) struct Runtime {
    tasks: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    stop: Arc<Notify>,
    permits: Option<Arc<Semaphore>>,
}

struct Done {
    id: String,
    attempt: i64,
    outcome: Outcome,
}

impl Jobs {
    /// Starts this node's workers and cron scheduler (nothing with `concurrency` 0). Call
    /// once, inside a tokio runtime, after the handlers are registered.
    pub fn start(&self) {
        let Ok(mut rt) = self.inner.runtime.lock() else {
            return;
        };
        if !rt.tasks.is_empty() || self.inner.config.concurrency == 0 {
            return;
        }
        let permits = Arc::new(Semaphore::new(self.inner.config.concurrency));
        rt.permits = Some(permits.clone());
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (stopping, stop) = (rt.stopping.clone(), rt.stop.clone());
        rt.tasks
            .push(tokio::spawn(heartbeat(self.clone(), permits.clone())));
        rt.tasks.push(tokio::spawn(dispatch(
            self.clone(),
            permits,
            done_tx,
            stopping,
            stop,
        )));
        rt.tasks.push(tokio::spawn(complete(self.clone(), done_rx)));
        rt.tasks.push(tokio::spawn(schedule(self.clone())));
        if self.inner.store.dialect().notify().is_some() {
            rt.tasks.push(tokio::spawn(notify_nodes(self.clone())));
        }
    }

    /// Asks the notifier to wake the other nodes' workers (PostgreSQL).
    pub(crate) fn notify_nodes(&self) {
        if !self.inner.notify_pending.swap(true, Ordering::SeqCst) {
            self.inner.notify_wake.notify_one();
        }
    }

    /// Stops claiming, waits up to `grace` for running jobs, then gives the unfinished ones
    /// back to the queue. Safe to call more than once.
    pub async fn stop(&self, grace: Duration) {
        let (tasks, permits) = {
            let Ok(mut rt) = self.inner.runtime.lock() else {
                return;
            };
            rt.stopping.store(true, Ordering::SeqCst);
            rt.stop.notify_waiters();
            (std::mem::take(&mut rt.tasks), rt.permits.take())
        };
        if tasks.is_empty() {
            return;
        }
        // All permits back means no job is running.
        if let Some(p) = permits {
            let n = u32::try_from(self.inner.config.concurrency).unwrap_or(u32::MAX);
            let _ = tokio::time::timeout(grace, p.acquire_many(n)).await;
            // Let the completer write what finished.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for t in &tasks {
            t.abort();
        }
        let node = self.inner.node.clone();
        if let Err(e) = self
            .inner
            .store
            .write(move |c| queue::release(c, &node))
            .await
        {
            tracing::warn!(error = %e, "could not release this node's running jobs; their leases will lapse");
        }
    }

    /// Stops this node's tasks as a crash would: no release, running jobs keep their
    /// lease until it lapses. For tests of at-least-once delivery.
    #[doc(hidden)]
    pub fn abort_for_tests(&self) {
        if let Ok(mut rt) = self.inner.runtime.lock() {
            rt.stopping.store(true, Ordering::SeqCst);
            for t in rt.tasks.drain(..) {
                t.abort();
            }
        }
    }

    /// Runs the cron entries due at minute `at` that this node wins (see
    /// [`Jobs::cron_add`]), and waits for them. The scheduler calls it every minute; tests
    /// call it to simulate a tick.
    #[doc(hidden)]
    pub async fn run_due_crons(&self, at: chrono::DateTime<chrono::Utc>) -> usize {
        let tick = at.timestamp() / 60 * 60_000;
        let mut ran = 0;
        for (id, run) in self.due_crons(at) {
            let key = id.clone();
            let won = self
                .inner
                .store
                .write(move |c| queue::claim_cron_tick(c, &key, tick))
                .await;
            match won {
                Ok(true) => {
                    ran += 1;
                    if let Err(e) = tokio::spawn(run()).await {
                        tracing::warn!(cron = %id, error = %e, "cron entry panicked");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(cron = %id, error = %e, "cannot claim a cron run"),
            }
        }
        ran
    }
}

async fn dispatch(
    jobs: Jobs,
    permits: Arc<Semaphore>,
    done: mpsc::UnboundedSender<Done>,
    stopping: Arc<AtomicBool>,
    stop: Arc<Notify>,
) {
    let inner = &jobs.inner;
    let cfg = &inner.config;
    let mut notes = inner.store.listen(queue::CHANNEL);
    let mut last_reclaim = 0i64;
    loop {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let wake = WAKE.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let gen = WAKE_GEN.load(Ordering::SeqCst);
        let Ok(first) = permits.clone().acquire_owned().await else {
            return;
        };
        let mut held = vec![first];
        while held.len() < cfg.batch {
            match permits.clone().try_acquire_owned() {
                Ok(p) => held.push(p),
                Err(_) => break,
            }
        }
        let want = held.len();
        let node = inner.node.clone();
        let lease = i64::try_from(cfg.lease.as_millis()).unwrap_or(i64::MAX / 2);
        let now = queue::now_ms();
        // Lapsed leases are looked for at most every tenth of a lease.
        let reclaim = now - last_reclaim >= lease / 10;
        if reclaim {
            last_reclaim = now;
        }
        let claimed = inner
            .store
            .write(move |c| {
                if reclaim {
                    queue::reclaim(c, now)?;
                }
                queue::claim(c, &node, want, now, now + lease)
            })
            .await;
        let claimed = match claimed {
            Ok(j) => j,
            Err(e) => {
                drop(held);
                tracing::warn!(error = %e, "cannot claim jobs; trying again in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let got = claimed.len();
        for job in claimed {
            let Some(permit) = held.pop() else { break };
            let jobs = jobs.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let (id, attempt) = (job.id.clone(), job.attempt);
                let outcome = run_one(&jobs, job).await;
                let _ = done.send(Done {
                    id,
                    attempt,
                    outcome,
                });
                drop(permit);
            });
        }
        drop(held);
        if got == want || WAKE_GEN.load(Ordering::SeqCst) != gen {
            continue;
        }
        if let Some(rx) = notes.as_mut() {
            while rx.try_recv().is_ok() {}
        }
        // Idle: sleep until woken, the next due time or the poll interval.
        let next = inner.store.read(queue::next_due).await.ok().flatten();
        let poll = i64::try_from(cfg.poll.as_millis()).unwrap_or(1000);
        let wait = next.map_or(poll, |t| (t - queue::now_ms()).clamp(0, poll));
        if wait == 0 {
            continue;
        }
        let note = async {
            match notes.as_mut() {
                Some(rx) => {
                    if rx.recv().await.is_none() {
                        std::future::pending::<()>().await
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = &mut wake => {}
            _ = note => {}
            _ = stop.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())) => {}
        }
    }
}

async fn run_one(jobs: &Jobs, job: Job) -> Outcome {
    let c = &jobs.inner.counters;
    c.running.fetch_add(1, Ordering::Relaxed);
    let outcome = run_handler(jobs, job).await;
    c.running.fetch_sub(1, Ordering::Relaxed);
    let counter = match outcome {
        Outcome::Done => &c.succeeded,
        Outcome::Retry { .. } => &c.retried,
        Outcome::Dead { .. } => &c.dead,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    outcome
}

async fn run_handler(jobs: &Jobs, job: Job) -> Outcome {
    let cfg = &jobs.inner.config;
    let (kind, attempt, max) = (job.kind.clone(), job.attempt, job.max_attempts);
    let result = match jobs.handler(&kind) {
        None => Err(JobError::retry(format!(
            "no handler for job kind {kind:?} on this node"
        ))),
        Some(h) => match tokio::time::timeout(cfg.timeout, tokio::spawn(h(job))).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(JobError::retry(format!("the handler panicked: {e}"))),
            Err(_) => Err(JobError::retry(format!(
                "timed out after {} s",
                cfg.timeout.as_secs()
            ))),
        },
    };
    match result {
        Ok(()) => Outcome::Done,
        Err(e) if !e.retry || attempt >= max => Outcome::Dead { error: e.message },
        Err(e) => {
            let d = backoff::delay(attempt, cfg.backoff_base, cfg.backoff_max);
            Outcome::Retry {
                at: queue::now_ms() + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4),
                error: e.message,
            }
        }
    }
}

async fn complete(jobs: Jobs, mut rx: mpsc::UnboundedReceiver<Done>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 1000 {
            match rx.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let results: Arc<Vec<(String, i64, Outcome)>> = Arc::new(
            batch
                .into_iter()
                .map(|d| (d.id, d.attempt, d.outcome))
                .collect(),
        );
        loop {
            let node = jobs.inner.node.clone();
            let r = results.clone();
            match jobs
                .inner
                .store
                .write(move |c| queue::finish(c, &node, &r))
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    // The leases stay extended meanwhile, so no other node runs them again.
                    tracing::warn!(error = %e, "cannot record finished jobs; trying again in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

async fn heartbeat(jobs: Jobs, permits: Arc<Semaphore>) {
    let lease = jobs.inner.config.lease;
    let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(10)));
    loop {
        tick.tick().await;
        // Every permit free: nothing runs here, so no write (an idle node stays quiet).
        if permits.available_permits() >= jobs.inner.config.concurrency {
            continue;
        }
        let node = jobs.inner.node.clone();
        let until = queue::now_ms() + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        if let Err(e) = jobs
            .inner
            .store
            .write(move |c| queue::heartbeat(c, &node, until))
            .await
        {
            tracing::warn!(error = %e, "cannot extend job leases");
        }
    }
}

/// Sends one NOTIFY for every burst of enqueues made through [`Jobs::enqueue`]: one
/// transaction at a time, so NOTIFY's commit lock never serialises the enqueues themselves.
async fn notify_nodes(jobs: Jobs) {
    loop {
        jobs.inner.notify_wake.notified().await;
        if !jobs.inner.notify_pending.swap(false, Ordering::SeqCst) {
            continue;
        }
        let r = jobs
            .inner
            .store
            .write(|c| {
                if let Some(sql) = c.dialect().notify() {
                    c.query(
                        sql,
                        &[
                            galley_sql::SqlValue::from(queue::CHANNEL),
                            galley_sql::SqlValue::from(""),
                        ],
                    )?;
                }
                Ok::<_, galley_store::StoreError>(())
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot wake the other nodes' workers");
        }
    }
}

/// Wakes at the start of every minute and runs the entries due then.
async fn schedule(jobs: Jobs) {
    loop {
        let now = chrono::Utc::now();
        let next_minute = (now.timestamp() / 60 + 1) * 60;
        let wait = (next_minute * 1000 - now.timestamp_millis()).max(0);
        tokio::time::sleep(Duration::from_millis(wait.unsigned_abs() + 5)).await;
        let Some(at) = chrono::DateTime::from_timestamp(next_minute, 0) else {
            continue;
        };
        let jobs2 = jobs.clone();
        // Long entries do not delay the next minute's.
        tokio::spawn(async move { jobs2.run_due_crons(at).await });
    }
}
