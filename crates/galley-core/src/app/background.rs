//! The App's background work on the job queue (galley-jobs): mail delivery as a job kind,
//! the dev outbox, and PocketBase's built-in cron entries.

use super::App;
use crate::error::CoreError;
use crate::mail::{self, Mail};
use galley_jobs::{Job, JobError};
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt, StoreError};
use serde_json::Value;
use std::sync::{Arc, Weak};

impl App {
    /// The job queue: enqueue, handlers, cron entries (see galley-jobs' crate docs).
    pub fn jobs(&self) -> &galley_jobs::Jobs {
        &self.jobs
    }

    /// Queues `mail` for delivery (its own write job): it is sent even if the process stops
    /// before it runs, and retried while SMTP fails.
    pub async fn send_mail(&self, mail: Mail) -> Result<(), CoreError> {
        self.jobs
            .enqueue(mail::job(&mail))
            .await
            .map_err(|e| CoreError::internal(&e))?;
        Ok(())
    }

    /// The dev outbox (mail delivered while SMTP is off), oldest first.
    pub async fn outbox(&self) -> Result<Vec<Value>, CoreError> {
        Ok(self.store.read(mail::outbox_list).await?)
    }
}

/// Registers the built-in job kinds and cron entries and starts this node's workers.
pub(crate) fn start(app: &Arc<App>) {
    let weak = Arc::downgrade(app);
    app.jobs.register(mail::JOB_KIND, move |job| {
        let app = weak.clone();
        async move { deliver(app, job).await }
    });
    builtin_crons(app);
    app.jobs.start();
}

async fn deliver(app: Weak<App>, job: Job) -> Result<(), JobError> {
    let app = app
        .upgrade()
        .ok_or_else(|| JobError::retry("the server is stopping"))?;
    let mut m = mail::from_payload(&job.payload)
        .ok_or_else(|| JobError::permanent("the payload is not a mail"))?;
    if let Some(h) = app.request_hooks() {
        match h.mail(job.payload.clone()).await {
            Ok(Some(v)) => {
                m = mail::from_payload(&v)
                    .ok_or_else(|| JobError::permanent("a hook left no mail"))?;
            }
            // A hook chose not to send it.
            Ok(None) => return Ok(()),
            Err(e) => return Err(JobError::retry(e.to_string())),
        }
    }
    let config = mail::config(&app.settings());
    match &config.smtp {
        Some(smtp) => galley_mail::send(&config, smtp, &m).await.map_err(|e| {
            tracing::warn!(to = %m.to, subject = %m.subject, attempt = job.attempt, error = %e, "mail delivery failed");
            if e.is_transient() {
                JobError::retry(e.to_string())
            } else {
                JobError::permanent(e.to_string())
            }
        }),
        None => {
            tracing::info!(to = %m.to, subject = %m.subject, "mail to the dev outbox (SMTP is not enabled)");
            let id = job.id.clone();
            app.store
                .write(move |c| mail::outbox_push(c, &id, &config, &m))
                .await
                .map_err(|e: StoreError| JobError::retry(e.to_string()))
        }
    }
}

/// A built-in cron entry's work.
type Builtin = fn(Arc<App>) -> galley_jobs::BoxFuture<()>;

/// PocketBase's entries, in its order, so that `GET /api/crons` answers the same.
fn builtin_crons(app: &Arc<App>) {
    let entries: [(&str, &str, Builtin); 4] = [
        ("__pbDBOptimize__", "0 0 * * *", |app| {
            Box::pin(optimize(app))
        }),
        ("__pbMFACleanup__", "0 * * * *", |app| {
            Box::pin(expire(app, "_mfas", |a| a.mfa.duration))
        }),
        ("__pbOTPCleanup__", "0 * * * *", |app| {
            Box::pin(expire(app, "_otps", |a| a.otp.duration))
        }),
        // Listed here for its place in PocketBase's order; galley-ops, which owns the stored
        // logs, replaces this entry (same id) with its retention when it opens them.
        ("__pbLogsCleanup__", "0 */6 * * *", |_| Box::pin(async {})),
    ];
    for (id, expr, f) in entries {
        let weak = Arc::downgrade(app);
        let added = app.jobs.cron_add(id, expr, move || {
            let app = weak.upgrade();
            async move {
                if let Some(app) = app {
                    f(app).await;
                }
            }
        });
        if let Err(e) = added {
            tracing::error!(cron = id, error = %e, "built-in cron entry refused");
        }
    }
}

/// Refreshes the planner's statistics (SQLite `PRAGMA optimize`, PostgreSQL `ANALYZE`).
async fn optimize(app: Arc<App>) {
    let r = app
        .store
        .write(|c: &mut dyn Conn| c.batch(c.dialect().optimize()))
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "database optimize failed");
    }
}

/// Deletes the rows of `table` (`_otps`, `_mfas`) older than their auth collection's
/// `duration` (PocketBase's expired OTP and MFA clean-ups).
async fn expire(
    app: Arc<App>,
    table: &'static str,
    duration: fn(&galley_types::collection::AuthOptions) -> i64,
) {
    let limits: Vec<(String, i64)> = app
        .schema()
        .all()
        .iter()
        .filter_map(|c| c.auth.as_ref().map(|a| (c.id.clone(), duration(a))))
        .collect();
    let r = app
        .store
        .write(move |c: &mut dyn Conn| -> Result<(), StoreError> {
            let now = chrono::Utc::now();
            for (col, secs) in &limits {
                let mut del = Sql::new(c.dialect());
                del.push(&format!(
                    "DELETE FROM \"{table}\" WHERE \"collectionRef\" = "
                ))
                .push_param(col.as_str())
                .push(" AND \"created\" < ")
                .push_param(SqlValue::Timestamp(now - chrono::Duration::seconds(*secs)));
                c.execute_sql(&del)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = r {
        tracing::warn!(table, error = %e, "expired row clean-up failed");
    }
}
