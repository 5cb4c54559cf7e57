//! Operations around the server, composed by the `galley` crate: the stored logs (request
//! logs and the app's warnings and errors, [`logs`]), the Prometheus metrics
//! ([`metrics`]), backups ([`backups`]) and traces ([`traces`]).
//!
//! Sits below both front-ends (the API serves `/api/logs`, the dashboard draws them) and
//! above galley-core, whose services and expression engine it uses.
//!
//! Architecture invariant: recording is never on the request's critical path (logs: a
//! bounded queue, when it is full entries are dropped and counted; metrics: atomics), so
//! requests never wait for operations.

pub mod backups;
pub mod logs;
pub mod metrics;
pub mod traces;

pub use backups::Backups;
pub use logs::{LogEntry, Logs};
pub use metrics::Metrics;

use galley_core::{App, CoreError};
use std::sync::Arc;

/// What one server keeps for operations: its log store, and its metrics when a metrics
/// listener was asked for (`None`: no per-request upkeep at all).
#[derive(Clone)]
pub struct Ops {
    pub logs: Arc<Logs>,
    pub metrics: Option<Arc<Metrics>>,
    pub backups: Arc<Backups>,
    /// Requests get their trace spans (set when traces are exported).
    pub traces: bool,
}

impl Ops {
    /// Opens the log store of `app`; `metrics` turns the request metrics on.
    pub async fn open(app: Arc<App>, metrics: bool) -> Result<Ops, CoreError> {
        let logs = Logs::open(app.clone()).await?;
        let backups = Arc::new(Backups::new(app, logs.clone()));
        backups.follow_schedule();
        Ok(Ops {
            backups,
            logs,
            metrics: metrics.then(|| Arc::new(Metrics::new())),
            traces: false,
        })
    }
}
