//! The hooks' part of the durable queue: `cronAdd` entries and `jobAdd` kinds become
//! entries and handlers of the App's job queue, kept in step with the hook files on every
//! (re)load; `$jobs.enqueue` adds a job, inside the hook's transaction when there is one.

use crate::events::log_plain;
use crate::{engine, Shared};
use galley_core::{App, CoreError};
use galley_jobs::{JobError, NewJob};
use serde_json::{json, Value};
use std::sync::{Arc, Weak};

/// A `$jobs.enqueue({...})` argument as a job.
pub(crate) fn new_job(a: &Value) -> Result<NewJob, CoreError> {
    let kind = a["kind"].as_str().unwrap_or_default();
    if kind.is_empty() {
        return Err(CoreError::bad_request("$jobs.enqueue: a job needs a kind."));
    }
    let mut job = NewJob::new(kind, a["payload"].clone()).priority(
        a["priority"]
            .as_i64()
            .unwrap_or(0)
            .clamp(i32::MIN as i64, i32::MAX as i64) as i32,
    );
    if let Some(at) = a["runAt"].as_str() {
        let t = galley_types::datetime::parse(at)
            .or_else(|| {
                chrono::DateTime::parse_from_rfc3339(at)
                    .ok()
                    .map(|t| t.to_utc())
            })
            .ok_or_else(|| {
                CoreError::bad_request(format!("$jobs.enqueue: invalid runAt {at:?}."))
            })?;
        job = job.run_at(t);
    }
    if let Some(k) = a["uniqueKey"].as_str() {
        job = job.unique_key(k);
    }
    if let Some(n) = a["maxAttempts"].as_u64().filter(|n| *n > 0) {
        job = job.max_attempts(n.min(1000) as u32);
    }
    if let Some(q) = a["queue"].as_str().filter(|q| !q.is_empty()) {
        job = job.queue(q);
    }
    Ok(job)
}

/// Makes the App's cron entries and job handlers match the current registry.
pub(crate) fn sync(shared: &Arc<Shared>, app: &App) {
    let reg = shared.registry();
    let jobs = app.jobs();
    let mut added = shared.crons.lock();
    for id in added.drain(..) {
        if !reg.crons.iter().any(|c| c.id == id) {
            jobs.cron_remove(&id);
        }
    }
    for id in &reg.cron_removes {
        jobs.cron_remove(id);
    }
    for c in &reg.crons {
        let weak: Weak<Shared> = Arc::downgrade(shared);
        let id = c.id.clone();
        let r = jobs.cron_add(c.id.clone(), &c.expression, move || {
            let (weak, id) = (weak.clone(), id.clone());
            async move {
                let Some(s) = weak.upgrade() else { return };
                // The handler of the hooks loaded now (a reload may have changed it).
                let Some(handler) = s
                    .registry()
                    .crons
                    .iter()
                    .find(|c| c.id == id)
                    .map(|c| c.handler)
                else {
                    return;
                };
                let s2 = s.clone();
                let out = s
                    .pool
                    .run(move || {
                        engine::with(&s2, |js| {
                            engine::call(
                                js,
                                "plain",
                                vec![json!([handler]).to_string(), "{}".into()],
                            )
                        })
                    })
                    .await;
                if let Some(out) = out {
                    log_plain(&format!("cron {id}"), out);
                }
            }
        });
        match r {
            Ok(()) => added.push(c.id.clone()),
            Err(e) => {
                tracing::error!(target: "hooks", cron = %c.id, error = %e, "cron entry not added")
            }
        }
    }
    for kind in reg.jobs.keys() {
        let weak: Weak<Shared> = Arc::downgrade(shared);
        let kind2 = kind.clone();
        jobs.register(kind.clone(), move |job| {
            let (weak, kind) = (weak.clone(), kind2.clone());
            async move {
                let s = weak
                    .upgrade()
                    .ok_or_else(|| JobError::retry("the server is stopping"))?;
                let handler = s.registry().jobs.get(&kind).copied().ok_or_else(|| {
                    JobError::retry(format!("no handler for {kind:?} in the hooks"))
                })?;
                let payload =
                    serde_json::to_string(&job).map_err(|e| JobError::permanent(e.to_string()))?;
                let s2 = s.clone();
                let out = s
                    .pool
                    .run(move || {
                        engine::with(&s2, |js| {
                            engine::call(js, "job", vec![handler.to_string(), payload])
                        })
                    })
                    .await
                    .ok_or_else(|| JobError::retry("hooks pool stopped"))?
                    .map_err(|e| JobError::retry(e.to_string()))?;
                let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
                match v.get("error") {
                    Some(err) => Err(JobError::retry(
                        err["log"]
                            .as_str()
                            .or(err["message"].as_str())
                            .unwrap_or("the job failed")
                            .to_owned(),
                    )),
                    None => Ok(()),
                }
            }
        });
    }
}
