//! Background work: a durable job queue in the database (`_jobs`, on SQLite and
//! PostgreSQL), handlers registered by kind, and cron schedules run on one node per tick.
//!
//! The Rust API, in the order a caller meets it:
//!
//! * **Enqueue inside a write job** with [`enqueue`]`(conn, &NewJob)`: the job exists if and
//!   only if that write job commits (a record write, a batch, a record hook's transaction).
//! * **Enqueue outside** with [`Jobs::enqueue`] (its own write job), or many at once with
//!   [`Jobs::enqueue_many`] (one write job).
//! * [`NewJob`] carries the kind, a JSON payload (at most [`queue::MAX_PAYLOAD`] bytes), and
//!   optionally a run-at time, a priority (higher runs first; default 0), a unique key (no
//!   second live job with the same key is added: [`Enqueued::Duplicate`]) and the maximum
//!   number of attempts (default 10).
//! * **Handle a kind** with [`Jobs::register`]`(kind, |job| async { … })`; a handler returns
//!   `Ok(())` (the job is deleted) or a [`JobError`]: retried with exponential backoff and
//!   jitter ([`JobError::retry`]) until its attempts run out, then kept as `dead` with the
//!   error; [`JobError::permanent`] goes straight to `dead`. Dead jobs can be retried
//!   ([`Jobs::retry`]).
//! * **Cron** with [`Jobs::cron_add`]`(id, expression, callback)` and [`Jobs::cron_remove`];
//!   [`Jobs::crons`] lists the entries (what `GET /api/crons` answers) and
//!   [`Jobs::cron_run`] runs one now. Expressions are parsed by [`cron::Schedule`].
//!
//! Delivery is at least once: a handler may run again after a crash (its lease lapses and
//! the job is claimed again), so handlers should be idempotent (jobs carry a stable id).
//!
//! Architecture invariant: below galley-core (knows no records, rules or HTTP); engine SQL
//! only through the Dialect; a job's row is written in the caller's transaction.

pub mod backoff;
pub mod brokers;
pub mod cron;
pub mod queue;
pub mod webhook;
mod worker;

pub use queue::{enqueue, Enqueued, Job, JobInfo};

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use galley_store::{Store, StoreError};

/// A boxed future, as handlers and cron callbacks return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Runs a job of one kind.
pub type Handler = Arc<dyn Fn(Job) -> BoxFuture<Result<(), JobError>> + Send + Sync>;

/// A cron entry's work.
pub type CronFn = Arc<dyn Fn() -> BoxFuture<()> + Send + Sync>;

/// Failures of the queue's API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Bad input from the caller (kind, names, attempts).
    #[error("{0}")]
    Invalid(String),
    #[error("the job payload is larger than {max} bytes")]
    PayloadTooLarge { max: usize },
    #[error(transparent)]
    Cron(#[from] cron::CronError),
    #[error("no such job")]
    NotFound,
    /// The job is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    pub message: String,
    /// `false`: no further attempts, the job is dead at once.
    pub retry: bool,
}

impl JobError {
    /// A failure worth another attempt (after the backoff).
    pub fn retry(message: impl Into<String>) -> Self {
        JobError {
            message: message.into(),
            retry: true,
        }
    }

    /// A failure that another attempt would repeat (bad payload): the job is dead at once.
    pub fn permanent(message: impl Into<String>) -> Self {
        JobError {
            message: message.into(),
            retry: false,
        }
    }
}

/// A job to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub kind: String,
    pub payload: serde_json::Value,
    /// A label for the dashboard (every worker takes every queue). Default `default`.
    pub queue: String,
    /// Higher runs first among due jobs. Default 0.
    pub priority: i32,
    /// Not before this time; `None`: now.
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Runs at most this many times (1-1000). Default 10.
    pub max_attempts: u32,
    /// At most one live (queued or running) job per key.
    pub unique_key: Option<String>,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        NewJob {
            kind: kind.into(),
            payload,
            queue: "default".into(),
            priority: 0,
            run_at: None,
            max_attempts: 10,
            unique_key: None,
        }
    }

    pub fn run_at(mut self, at: chrono::DateTime<chrono::Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    pub fn priority(mut self, p: i32) -> Self {
        self.priority = p;
        self
    }

    pub fn unique_key(mut self, k: impl Into<String>) -> Self {
        self.unique_key = Some(k.into());
        self
    }

    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    pub fn queue(mut self, q: impl Into<String>) -> Self {
        self.queue = q.into();
        self
    }
}

/// How this node works the queue.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Jobs run at once on this node; 0: this node enqueues but runs none (and no crons).
    pub concurrency: usize,
    /// Jobs claimed per claim (one write job).
    pub batch: usize,
    /// How long a claim holds a job; a heartbeat extends it every third of it while the
    /// job runs, so only a stopped or hung node lets it lapse.
    pub lease: Duration,
    /// A run longer than this fails (and is retried).
    pub timeout: Duration,
    /// The first retry's delay; doubled per attempt, up to `backoff_max`, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// The longest idle wait between looks at the table (wake-ups make it rarely matter).
    pub poll: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            concurrency: 32,
            batch: 128,
            lease: Duration::from_secs(30),
            timeout: Duration::from_secs(300),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(3600),
            poll: Duration::from_secs(1),
        }
    }
}

/// A cron entry as `GET /api/crons` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CronInfo {
    pub id: String,
    pub expression: String,
}

struct CronEntry {
    id: String,
    expression: String,
    schedule: cron::Schedule,
    run: CronFn,
}

/// The queue of one process: handlers, cron entries and the workers. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<Store>,
    pub(crate) config: JobsConfig,
    /// This process's worker id (the `worker` of the rows it leases).
    pub(crate) node: String,
    handlers: RwLock<HashMap<String, Handler>>,
    crons: RwLock<Vec<CronEntry>>,
    pub(crate) runtime: Mutex<worker::Runtime>,
    /// A NOTIFY to the other nodes is wanted (see [`Jobs::enqueue`]); one is sent at a time.
    pub(crate) notify_pending: std::sync::atomic::AtomicBool,
    pub(crate) notify_wake: tokio::sync::Notify,
    pub(crate) counters: Counters,
}

/// What this process's workers did since it started (for metrics).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) running: std::sync::atomic::AtomicU64,
    pub(crate) succeeded: std::sync::atomic::AtomicU64,
    pub(crate) retried: std::sync::atomic::AtomicU64,
    pub(crate) dead: std::sync::atomic::AtomicU64,
}

/// A reading of this process's job counters ([`Jobs::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobStats {
    /// Handlers running now.
    pub running: u64,
    /// Runs that succeeded.
    pub succeeded: u64,
    /// Runs that failed and were queued again (backoff).
    pub retried: u64,
    /// Runs that failed for good (the job is kept as dead).
    pub dead: u64,
}

impl Jobs {
    pub fn new(store: Arc<Store>, config: JobsConfig) -> Jobs {
        Jobs {
            inner: Arc::new(Inner {
                store,
                config,
                node: galley_types::ids::secret(20),
                handlers: Default::default(),
                crons: Default::default(),
                runtime: Default::default(),
                notify_pending: Default::default(),
                notify_wake: tokio::sync::Notify::new(),
                counters: Counters::default(),
            }),
        }
    }

    pub fn config(&self) -> &JobsConfig {
        &self.inner.config
    }

    /// Enqueues `job` in a write job of its own (see [`enqueue`] to enqueue inside one).
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued, JobsError> {
        queue::validate(&job)?;
        let r = self
            .inner
            .store
            .write(move |c| queue::insert(c, &job, false))
            .await?;
        if matches!(r, Enqueued::New(_)) {
            worker::wake_local();
            self.notify_nodes();
        }
        Ok(r)
    }

    /// Enqueues many jobs in one write job (one commit for all): each is new or a
    /// duplicate of a live job with its unique key, in order. Nothing is added if any is
    /// invalid.
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, JobsError> {
        for j in &jobs {
            queue::validate(j)?;
        }
        let r = self
            .inner
            .store
            .write(move |c| {
                jobs.iter()
                    .map(|j| queue::insert(c, j, false))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        if r.iter().any(|e| matches!(e, Enqueued::New(_))) {
            worker::wake_local();
            self.notify_nodes();
        }
        Ok(r)
    }

    /// Sets the handler of `kind` (replacing any). Jobs of a kind without a handler on the
    /// node that claims them fail and are retried (another node may have one).
    pub fn register<F, Fut>(&self, kind: impl Into<String>, f: F)
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let h: Handler = Arc::new(move |job| Box::pin(f(job)));
        if let Ok(mut m) = self.inner.handlers.write() {
            m.insert(kind.into(), h);
        }
    }

    /// Whether `kind` has a handler on this node.
    pub fn has_handler(&self, kind: &str) -> bool {
        self.inner
            .handlers
            .read()
            .is_ok_and(|m| m.contains_key(kind))
    }

    pub(crate) fn handler(&self, kind: &str) -> Option<Handler> {
        self.inner.handlers.read().ok()?.get(kind).cloned()
    }

    /// Adds the cron entry `id` (or replaces it, keeping its place in the list): `run` is
    /// called at every minute that `expression` matches (UTC), on one node only when several
    /// share a PostgreSQL database (each tick is claimed in `_cronRuns`). An invalid
    /// expression is a [`JobsError::Cron`] and changes nothing.
    pub fn cron_add<F, Fut>(
        &self,
        id: impl Into<String>,
        expression: &str,
        run: F,
    ) -> Result<(), JobsError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let id = id.into();
        if id.trim().is_empty() || id.len() > queue::MAX_NAME {
            return Err(JobsError::Invalid(format!(
                "a cron id must be 1-{} characters",
                queue::MAX_NAME
            )));
        }
        let schedule = cron::Schedule::parse(expression)?;
        let entry = CronEntry {
            id: id.clone(),
            expression: expression.trim().to_owned(),
            schedule,
            run: Arc::new(move || Box::pin(run())),
        };
        if let Ok(mut list) = self.inner.crons.write() {
            match list.iter_mut().find(|e| e.id == id) {
                Some(e) => *e = entry,
                None => list.push(entry),
            }
        }
        Ok(())
    }

    /// Removes the cron entry `id`; false when there was none.
    pub fn cron_remove(&self, id: &str) -> bool {
        let Ok(mut list) = self.inner.crons.write() else {
            return false;
        };
        let before = list.len();
        list.retain(|e| e.id != id);
        list.len() != before
    }

    /// The cron entries, in the order they were added.
    pub fn crons(&self) -> Vec<CronInfo> {
        self.inner
            .crons
            .read()
            .map(|l| {
                l.iter()
                    .map(|e| CronInfo {
                        id: e.id.clone(),
                        expression: e.expression.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Starts entry `id` now on this node, in the background; false when there is none.
    pub fn cron_run(&self, id: &str) -> bool {
        let run = self
            .inner
            .crons
            .read()
            .ok()
            .and_then(|l| l.iter().find(|e| e.id == id).map(|e| e.run.clone()));
        match run {
            Some(f) => {
                tokio::spawn(f());
                true
            }
            None => false,
        }
    }

    /// The entries due at minute `at`, with their callbacks.
    pub(crate) fn due_crons(&self, at: chrono::DateTime<chrono::Utc>) -> Vec<(String, CronFn)> {
        self.inner
            .crons
            .read()
            .map(|l| {
                l.iter()
                    .filter(|e| e.schedule.matches(at))
                    .map(|e| (e.id.clone(), e.run.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One job.
    pub async fn get(&self, id: &str) -> Result<Option<JobInfo>, JobsError> {
        let id = id.to_owned();
        self.inner.store.read(move |c| queue::get(c, &id)).await
    }

    /// Jobs in `state` (`queued`, `running`, `dead`; any for `None`), newest first.
    pub async fn list(
        &self,
        state: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<JobInfo>, JobsError> {
        let state = state.map(str::to_owned);
        let limit = limit.min(1000);
        self.inner
            .store
            .read(move |c| queue::list(c, state.as_deref(), limit, offset))
            .await
    }

    /// This process's job counters (no query).
    pub fn stats(&self) -> JobStats {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.inner.counters;
        JobStats {
            running: c.running.load(Relaxed),
            succeeded: c.succeeded.load(Relaxed),
            retried: c.retried.load(Relaxed),
            dead: c.dead.load(Relaxed),
        }
    }

    /// Jobs per state.
    pub async fn counts(&self) -> Result<Vec<(String, i64)>, JobsError> {
        self.inner.store.read(queue::counts).await
    }

    /// Queues dead job `id` again with fresh attempts.
    pub async fn retry(&self, id: &str) -> Result<(), JobsError> {
        let id = id.to_owned();
        self.inner.store.write(move |c| queue::retry(c, &id)).await
    }

    /// Deletes a queued or dead job.
    pub async fn delete(&self, id: &str) -> Result<(), JobsError> {
        let id = id.to_owned();
        self.inner.store.write(move |c| queue::delete(c, &id)).await
    }
}
