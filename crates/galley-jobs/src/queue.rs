//! The `_jobs` table, as synchronous functions over a [`Conn`]: they run inside a caller's
//! write job (so an enqueue commits or rolls back with it) or inside the worker's own jobs.
//!
//! States: `queued` (waiting for `runAt`), `running` (leased by `worker` until
//! `leaseUntil`), `dead` (out of attempts, kept with `lastError`). A finished job's row is
//! deleted. Times are milliseconds since the epoch. The only SQL that differs between the
//! engines is the claim's `FOR UPDATE SKIP LOCKED` ([`galley_sql::Dialect::skip_locked`])
//! and the wake-up NOTIFY ([`galley_sql::Dialect::notify`]).

use crate::{JobsError, NewJob};
use galley_sql::{Dialect, SqlValue};
use galley_store::{Conn, ConnExt, Row};
use serde::Serialize;

/// The PostgreSQL channel that wakes workers on every node when a job is enqueued.
pub const CHANNEL: &str = "galley_jobs";

/// Largest payload accepted, in bytes of JSON.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Longest kind, queue or unique key.
pub const MAX_NAME: usize = 200;

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// SQL text with `$n`/`?` placeholders numbered by the dialect: `{}` in `text` marks each.
fn sql(d: &Dialect, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = 0;
    let mut rest = text;
    while let Some(i) = rest.find("{}") {
        out.push_str(&rest[..i]);
        n += 1;
        d.placeholder_into(&mut out, n);
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    out
}

/// `({}, {}, …)` with `n` placeholders.
fn placeholders(n: usize) -> String {
    let mut s = String::from("(");
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str("{}");
    }
    s.push(')');
    s
}

/// What an enqueue did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job with this id.
    New(String),
    /// A live job (queued or running) already has the unique key: nothing was added; its id.
    Duplicate(String),
}

impl Enqueued {
    pub fn id(&self) -> &str {
        match self {
            Enqueued::New(id) | Enqueued::Duplicate(id) => id,
        }
    }
}

/// Checks what a caller controls: kind, queue, unique key, payload size, attempts.
pub(crate) fn validate(job: &NewJob) -> Result<String, JobsError> {
    if job.kind.trim().is_empty() || job.kind.len() > MAX_NAME {
        return Err(JobsError::Invalid(format!(
            "the job kind must be 1-{MAX_NAME} characters"
        )));
    }
    if job.queue.len() > MAX_NAME || job.unique_key.as_ref().is_some_and(|k| k.len() > MAX_NAME) {
        return Err(JobsError::Invalid(format!(
            "queue names and unique keys are at most {MAX_NAME} characters"
        )));
    }
    if job.max_attempts == 0 || job.max_attempts > 1000 {
        return Err(JobsError::Invalid(
            "maxAttempts must be between 1 and 1000".into(),
        ));
    }
    let payload = serde_json::to_string(&job.payload)
        .map_err(|e| JobsError::Invalid(format!("payload: {e}")))?;
    if payload.len() > MAX_PAYLOAD {
        return Err(JobsError::PayloadTooLarge { max: MAX_PAYLOAD });
    }
    Ok(payload)
}

/// Adds `job` in the caller's write job: it exists if and only if that job commits. With a
/// unique key that a live job already holds, nothing is added ([`Enqueued::Duplicate`]).
///
/// Workers of this process are woken when the enqueuing job commits (on SQLite, the claim
/// that follows runs on the same writer thread, after it); on PostgreSQL a NOTIFY, delivered
/// at commit, wakes the workers of every node.
pub fn enqueue(c: &mut dyn Conn, job: &NewJob) -> Result<Enqueued, JobsError> {
    insert(c, job, true)
}

/// `notify`: send the wake-up NOTIFY in this transaction. [`crate::Jobs::enqueue`] does not:
/// on PostgreSQL every transaction that NOTIFYs commits under one global lock (commits with
/// their fsyncs become serial), so it wakes this process after the commit and other nodes
/// with one NOTIFY of its own for any number of enqueues.
pub(crate) fn insert(c: &mut dyn Conn, job: &NewJob, notify: bool) -> Result<Enqueued, JobsError> {
    let payload = validate(job)?;
    let d = c.dialect();
    let id = galley_types::ids::record_id();
    let now = now_ms();
    let run_at = job.run_at.map_or(now, |t| t.timestamp_millis());
    let q = sql(
        d,
        "INSERT INTO \"_jobs\" (\"id\", \"kind\", \"queue\", \"payload\", \"priority\", \"runAt\", \"attempts\", \"maxAttempts\", \"uniqueKey\", \"state\", \"leaseUntil\", \"worker\", \"lastError\", \"created\", \"updated\")
         VALUES ({}, {}, {}, {}, {}, {}, 0, {}, {}, 'queued', 0, '', '', {}, {}) ON CONFLICT DO NOTHING RETURNING \"id\"",
    );
    let inserted = c.query(
        &q,
        &[
            SqlValue::Text(id),
            SqlValue::Text(job.kind.clone()),
            SqlValue::Text(job.queue.clone()),
            SqlValue::Text(payload),
            SqlValue::Int(job.priority.into()),
            SqlValue::Int(run_at),
            SqlValue::Int(job.max_attempts.into()),
            job.unique_key
                .clone()
                .map_or(SqlValue::Null, SqlValue::Text),
            SqlValue::Int(now),
            SqlValue::Int(now),
        ],
    )?;
    let Some(row) = inserted.into_iter().next() else {
        let existing = match &job.unique_key {
            Some(k) => c
                .query_one(
                    &sql(
                        d,
                        "SELECT \"id\" FROM \"_jobs\" WHERE \"uniqueKey\" = {} AND \"state\" IN ('queued', 'running')",
                    ),
                    &[SqlValue::Text(k.clone())],
                )?
                .map(|r| r.text("id"))
                .unwrap_or_default(),
            None => String::new(),
        };
        return Ok(Enqueued::Duplicate(existing));
    };
    match d.notify() {
        Some(sql) if notify => {
            c.query(sql, &[SqlValue::from(CHANNEL), SqlValue::from("")])?;
        }
        // Early on PostgreSQL (a claim may run before the commit and miss the job), which
        // the caller's own wake-up after the commit covers.
        _ => crate::worker::wake_local(),
    }
    Ok(Enqueued::New(row.text("id")))
}

/// A job as a worker runs it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub queue: String,
    pub payload: serde_json::Value,
    pub priority: i64,
    /// This run's number, from 1.
    pub attempt: i64,
    pub max_attempts: i64,
    pub unique_key: Option<String>,
}

const COLUMNS: &str = "\"id\", \"kind\", \"queue\", \"payload\", \"priority\", \"runAt\", \"attempts\", \"maxAttempts\", \"uniqueKey\", \"state\", \"leaseUntil\", \"worker\", \"lastError\", \"created\", \"updated\"";

fn job_from(r: &Row) -> Job {
    Job {
        id: r.text("id"),
        kind: r.text("kind"),
        queue: r.text("queue"),
        payload: serde_json::from_str(&r.text("payload")).unwrap_or(serde_json::Value::Null),
        priority: r.int("priority"),
        attempt: r.int("attempts"),
        max_attempts: r.int("maxAttempts"),
        unique_key: r.opt_text("uniqueKey"),
    }
}

/// Puts jobs whose lease lapsed (their worker stopped or hung) back in the queue, or marks
/// them dead when that was their last attempt. Returns how many.
pub(crate) fn reclaim(c: &mut dyn Conn, now: i64) -> Result<u64, JobsError> {
    let q = sql(
        c.dialect(),
        "UPDATE \"_jobs\" SET
            \"state\" = CASE WHEN \"attempts\" >= \"maxAttempts\" THEN 'dead' ELSE 'queued' END,
            \"lastError\" = 'the lease expired: the worker running it stopped or hung',
            \"worker\" = '', \"leaseUntil\" = 0, \"updated\" = {}
         WHERE \"state\" = 'running' AND \"leaseUntil\" < {}",
    );
    Ok(c.execute(&q, &[SqlValue::Int(now), SqlValue::Int(now)])?)
}

/// Leases up to `limit` due jobs to `worker` until `lease_until`, best first (priority, then
/// run time), counting an attempt for each.
pub(crate) fn claim(
    c: &mut dyn Conn,
    worker: &str,
    limit: usize,
    now: i64,
    lease_until: i64,
) -> Result<Vec<Job>, JobsError> {
    let d = c.dialect();
    let q = sql(
        d,
        &format!(
            "UPDATE \"_jobs\" SET \"state\" = 'running', \"attempts\" = \"attempts\" + 1, \"leaseUntil\" = {{}}, \"worker\" = {{}}, \"updated\" = {{}}
             WHERE \"id\" IN (SELECT \"id\" FROM \"_jobs\" WHERE \"state\" = 'queued' AND \"runAt\" <= {{}}
                 ORDER BY \"priority\" DESC, \"runAt\", \"id\" LIMIT {{}}{skip})
             RETURNING {COLUMNS}",
            skip = d.skip_locked()
        ),
    );
    let rows = c.query(
        &q,
        &[
            SqlValue::Int(lease_until),
            SqlValue::Text(worker.to_owned()),
            SqlValue::Int(now),
            SqlValue::Int(now),
            SqlValue::Int(limit as i64),
        ],
    )?;
    let mut jobs: Vec<(i64, i64, Job)> = rows
        .iter()
        .map(|r| (r.int("priority"), r.int("runAt"), job_from(r)))
        .collect();
    jobs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    Ok(jobs.into_iter().map(|j| j.2).collect())
}

/// Extends the leases of the jobs `worker` is running.
pub(crate) fn heartbeat(
    c: &mut dyn Conn,
    worker: &str,
    lease_until: i64,
) -> Result<u64, JobsError> {
    let q = sql(
        c.dialect(),
        "UPDATE \"_jobs\" SET \"leaseUntil\" = {} WHERE \"state\" = 'running' AND \"worker\" = {}",
    );
    Ok(c.execute(
        &q,
        &[
            SqlValue::Int(lease_until),
            SqlValue::Text(worker.to_owned()),
        ],
    )?)
}

/// How a run ended.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Done,
    /// Run again at this time.
    Retry {
        at: i64,
        error: String,
    },
    Dead {
        error: String,
    },
}

/// Records finished runs of `worker`: done jobs are deleted, failed ones rescheduled or
/// marked dead. A run whose lease another worker took over in the meantime changes nothing
/// (the row's worker or attempt differs).
pub(crate) fn finish(
    c: &mut dyn Conn,
    worker: &str,
    results: &[(String, i64, Outcome)],
) -> Result<(), JobsError> {
    let d = c.dialect();
    let now = now_ms();
    let done: Vec<&String> = results
        .iter()
        .filter(|r| matches!(r.2, Outcome::Done))
        .map(|r| &r.0)
        .collect();
    for chunk in done.chunks(500) {
        let q = sql(
            d,
            &format!(
                "DELETE FROM \"_jobs\" WHERE \"worker\" = {{}} AND \"state\" = 'running' AND \"id\" IN {}",
                placeholders(chunk.len())
            ),
        );
        let mut params = vec![SqlValue::Text(worker.to_owned())];
        params.extend(chunk.iter().map(|id| SqlValue::Text((*id).clone())));
        c.execute(&q, &params)?;
    }
    let upd = sql(
        d,
        "UPDATE \"_jobs\" SET \"state\" = {}, \"runAt\" = {}, \"lastError\" = {}, \"worker\" = '', \"leaseUntil\" = 0, \"updated\" = {}
         WHERE \"id\" = {} AND \"worker\" = {} AND \"attempts\" = {} AND \"state\" = 'running'",
    );
    for (id, attempt, outcome) in results {
        let (state, at, error) = match outcome {
            Outcome::Done => continue,
            Outcome::Retry { at, error } => ("queued", *at, error),
            Outcome::Dead { error } => ("dead", now, error),
        };
        c.execute(
            &upd,
            &[
                SqlValue::from(state),
                SqlValue::Int(at),
                SqlValue::Text(truncate(error, 4000)),
                SqlValue::Int(now),
                SqlValue::Text(id.clone()),
                SqlValue::Text(worker.to_owned()),
                SqlValue::Int(*attempt),
            ],
        )?;
    }
    Ok(())
}

/// Gives `worker`'s unfinished jobs back to the queue (a graceful stop), without counting
/// the interrupted attempt.
pub(crate) fn release(c: &mut dyn Conn, worker: &str) -> Result<u64, JobsError> {
    let q = sql(
        c.dialect(),
        "UPDATE \"_jobs\" SET \"state\" = 'queued', \"attempts\" = \"attempts\" - 1, \"worker\" = '', \"leaseUntil\" = 0
         WHERE \"state\" = 'running' AND \"worker\" = {}",
    );
    Ok(c.execute(&q, &[SqlValue::Text(worker.to_owned())])?)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// When the next queued job is due or the next lease lapses (ms), if any.
pub(crate) fn next_due(c: &mut dyn Conn) -> Result<Option<i64>, JobsError> {
    let r = c.query_one(
        "SELECT MIN(\"runAt\") AS q, (SELECT MIN(\"leaseUntil\") FROM \"_jobs\" WHERE \"state\" = 'running') AS l FROM \"_jobs\" WHERE \"state\" = 'queued'",
        &[],
    )?;
    Ok(r.and_then(|r| {
        let q = r.get("q").and_then(SqlValue::as_i64);
        let l = r.get("l").and_then(SqlValue::as_i64);
        match (q, l) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }))
}

/// A stored job as the dashboard and the API show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    pub id: String,
    pub kind: String,
    pub queue: String,
    pub payload: serde_json::Value,
    pub priority: i64,
    pub run_at: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    pub unique_key: Option<String>,
    pub state: String,
    pub lease_until: i64,
    pub last_error: String,
    pub created: i64,
    pub updated: i64,
}

fn info_from(r: &Row) -> JobInfo {
    JobInfo {
        id: r.text("id"),
        kind: r.text("kind"),
        queue: r.text("queue"),
        payload: serde_json::from_str(&r.text("payload")).unwrap_or(serde_json::Value::Null),
        priority: r.int("priority"),
        run_at: r.int("runAt"),
        attempts: r.int("attempts"),
        max_attempts: r.int("maxAttempts"),
        unique_key: r.opt_text("uniqueKey"),
        state: r.text("state"),
        lease_until: r.int("leaseUntil"),
        last_error: r.text("lastError"),
        created: r.int("created"),
        updated: r.int("updated"),
    }
}

/// One job by id.
pub fn get(c: &mut dyn Conn, id: &str) -> Result<Option<JobInfo>, JobsError> {
    let q = sql(
        c.dialect(),
        &format!("SELECT {COLUMNS} FROM \"_jobs\" WHERE \"id\" = {{}}"),
    );
    Ok(c.query_one(&q, &[SqlValue::Text(id.to_owned())])?
        .map(|r| info_from(&r)))
}

/// Jobs in `state` (any when `None`), newest first, at most `limit` from `offset`.
pub fn list(
    c: &mut dyn Conn,
    state: Option<&str>,
    limit: usize,
    offset: usize,
) -> Result<Vec<JobInfo>, JobsError> {
    let d = c.dialect();
    let (filter, mut params) = match state {
        Some(s) => ("WHERE \"state\" = {} ", vec![SqlValue::Text(s.to_owned())]),
        None => ("", vec![]),
    };
    let q = sql(
        d,
        &format!(
            "SELECT {COLUMNS} FROM \"_jobs\" {filter}ORDER BY \"created\" DESC, \"id\" LIMIT {{}} OFFSET {{}}"
        ),
    );
    params.push(SqlValue::Int(limit as i64));
    params.push(SqlValue::Int(offset as i64));
    Ok(c.query(&q, &params)?.iter().map(info_from).collect())
}

/// How many jobs are in each state.
pub fn counts(c: &mut dyn Conn) -> Result<Vec<(String, i64)>, JobsError> {
    Ok(c.query(
        "SELECT \"state\", COUNT(*) AS n FROM \"_jobs\" GROUP BY \"state\" ORDER BY \"state\"",
        &[],
    )?
    .iter()
    .map(|r| (r.text("state"), r.int("n")))
    .collect())
}

/// Queues a dead job again with a fresh set of attempts. `NotFound` when no dead job has
/// this id; `Conflict` when a live job holds its unique key.
pub fn retry(c: &mut dyn Conn, id: &str) -> Result<(), JobsError> {
    let d = c.dialect();
    let Some(job) = get(c, id)? else {
        return Err(JobsError::NotFound);
    };
    if job.state != "dead" {
        return Err(JobsError::Conflict("only dead jobs can be retried".into()));
    }
    if let Some(k) = &job.unique_key {
        let live = c.query_one(
            &sql(
                d,
                "SELECT 1 AS x FROM \"_jobs\" WHERE \"uniqueKey\" = {} AND \"state\" IN ('queued', 'running')",
            ),
            &[SqlValue::Text(k.clone())],
        )?;
        if live.is_some() {
            return Err(JobsError::Conflict(
                "a live job already holds this job's unique key".into(),
            ));
        }
    }
    let now = now_ms();
    c.execute(
        &sql(
            d,
            "UPDATE \"_jobs\" SET \"state\" = 'queued', \"attempts\" = 0, \"runAt\" = {}, \"updated\" = {} WHERE \"id\" = {} AND \"state\" = 'dead'",
        ),
        &[SqlValue::Int(now), SqlValue::Int(now), SqlValue::Text(id.to_owned())],
    )?;
    if let Some(notify) = d.notify() {
        c.query(notify, &[SqlValue::from(CHANNEL), SqlValue::from("")])?;
    } else {
        crate::worker::wake_local();
    }
    Ok(())
}

/// Deletes a queued or dead job (a running one cannot be taken from its worker).
pub fn delete(c: &mut dyn Conn, id: &str) -> Result<(), JobsError> {
    let d = c.dialect();
    let n = c.execute(
        &sql(
            d,
            "DELETE FROM \"_jobs\" WHERE \"id\" = {} AND \"state\" <> 'running'",
        ),
        &[SqlValue::Text(id.to_owned())],
    )?;
    if n == 0 {
        return match get(c, id)? {
            None => Err(JobsError::NotFound),
            Some(_) => Err(JobsError::Conflict(
                "a running job cannot be deleted".into(),
            )),
        };
    }
    Ok(())
}

/// Claims the scheduled run of cron entry `id` at `tick` (ms) for this node: true for
/// exactly one of the nodes that ask (the others see the updated `lastRun`).
pub(crate) fn claim_cron_tick(c: &mut dyn Conn, id: &str, tick: i64) -> Result<bool, JobsError> {
    let d = c.dialect();
    c.execute(
        &sql(
            d,
            "INSERT INTO \"_cronRuns\" (\"id\", \"lastRun\") VALUES ({}, 0) ON CONFLICT DO NOTHING",
        ),
        &[SqlValue::Text(id.to_owned())],
    )?;
    let n = c.execute(
        &sql(
            d,
            "UPDATE \"_cronRuns\" SET \"lastRun\" = {} WHERE \"id\" = {} AND \"lastRun\" < {}",
        ),
        &[
            SqlValue::Int(tick),
            SqlValue::Text(id.to_owned()),
            SqlValue::Int(tick),
        ],
    )?;
    Ok(n == 1)
}
