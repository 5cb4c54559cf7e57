//! Galley's services. Each takes the [`App`] (store, schema snapshot, settings) and a
//! [`Caller`], and returns domain results or a [`CoreError`]; none of them sees HTTP.
//!
//! Record operations are synchronous functions over a [`galley_store::Conn`], so that one
//! request, or a whole batch, runs as a single write job (one transaction).
//!
//! Architecture invariant: this crate never formats HTTP responses and never writes
//! engine-specific SQL; SQL differences go through [`galley_sql::Dialect`].

pub mod app;
pub mod auth;
pub mod batch;
pub mod caller;
pub mod collections;
pub mod error;
pub mod files;
pub mod picker;
pub mod rate_rules;
pub mod realtime;
pub mod records;
pub mod rules;
pub mod settings;
pub mod superusers;

pub use app::{App, AppConfig};
pub use caller::Caller;
pub use error::CoreError;
pub use records::RequestMeta;
