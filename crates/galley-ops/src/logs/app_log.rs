//! The app's own warnings and errors into the stored logs: a `tracing` layer that the
//! binary installs at start, before any log store exists, and points at the store once
//! the server has opened it ([`AppLogLayer::attach`]).

use super::{LogEntry, Logs, ERROR, WARN};
use arc_swap::ArcSwapOption;
use serde_json::{Map, Value};
use std::sync::{Arc, Weak};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

/// Forwards WARN and ERROR events to the attached [`Logs`] (none before `attach`).
#[derive(Clone, Default)]
pub struct AppLogLayer {
    sink: Arc<ArcSwapOption<Weak<Logs>>>,
}

impl AppLogLayer {
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, events go to `logs`.
    pub fn attach(&self, logs: &Arc<Logs>) {
        self.sink.store(Some(Arc::new(Arc::downgrade(logs))));
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    data: Map<String, Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.data.insert(field.name().into(), value.into());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.data.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.data.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.data.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.data.insert(field.name().into(), text.into());
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for AppLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => ERROR,
            Level::WARN => WARN,
            _ => return,
        };
        // The log store's own troubles must not feed back into it.
        if meta.target().starts_with("galley_ops::logs") {
            return;
        }
        let Some(logs) = self.sink.load().as_ref().and_then(|w| w.upgrade()) else {
            return;
        };
        let mut f = Fields::default();
        event.record(&mut f);
        f.data.insert("type".into(), "app".into());
        f.data.insert("target".into(), meta.target().into());
        logs.push(LogEntry {
            created: chrono::Utc::now(),
            level,
            message: f.message,
            data: f.data,
        });
    }
}
