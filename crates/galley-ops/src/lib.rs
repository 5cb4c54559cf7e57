//! Operations around the server, composed by the `galley` crate: the stored logs (request
//! logs and the app's warnings and errors, [`logs`]).
//!
//! Sits below both front-ends (the API serves `/api/logs`, the dashboard draws them) and
//! above galley-core, whose services and expression engine it uses.
//!
//! Architecture invariant: recording is never on the request's critical path (a bounded
//! queue; when it is full, entries are dropped and counted, requests never wait).

pub mod logs;

pub use logs::{LogEntry, Logs};
