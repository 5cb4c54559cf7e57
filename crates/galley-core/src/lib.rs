//! Galley's services. Each takes the [`App`] (store, schema snapshot, settings) and a
//! [`Request`] (caller and request metadata), and returns domain results or a
//! [`CoreError`]; none of them sees HTTP.
//!
//! Record operations are synchronous functions over a [`galley_store::Conn`], so that one
//! request, or a whole batch, runs as a single write job (one transaction).
//!
//! The modules form a ladder; each imports only the rungs below it (no import circles):
//!
//! 1. the floor: `error`, `context` (caller, request metadata, paging, the write context and
//!    its record hooks), `rules` (the rule context), `settings`, `rows` (loading and shaping
//!    stored records), `tokens`, `bus` (NOTIFY to other nodes), `catalog` (the stored
//!    schema), `rate_rules`, `mail`, `picker`;
//! 2. `app`: the running backend every service is handed;
//! 3. `identity` (token → caller), then `files`;
//! 4. `records` (list, view, create, update, delete; the write path calls hooks, never
//!    auth or realtime);
//! 5. `realtime` (delivery), `auth` (flows, and the auth collections' record hook),
//!    `collections`, `batch`, `superusers`, `jobs` (the queue for superusers), `webhooks` (the outgoing webhooks' record hook
//!    and delivery job), `brokers` (the outbox hook and publishers, over `webhooks`);
//! 6. `boot`: `App::open`, the one place that knows them all.
//!
//! Architecture invariant: this crate never formats HTTP responses and never writes
//! engine-specific SQL; SQL differences go through [`galley_sql::Dialect`].

pub mod app;
pub mod auth;
pub mod batch;
mod boot;
pub mod brokers;
pub mod bus;
pub mod catalog;
pub mod collections;
pub mod context;
pub mod error;
pub mod files;
pub mod identity;
pub mod jobs;
pub mod mail;
pub mod picker;
pub mod rate_rules;
pub mod realtime;
pub mod records;
pub mod rows;
pub mod rules;
pub mod settings;
pub mod superusers;
pub mod tokens;
pub mod webhooks;

pub use app::{App, AppConfig};
pub use context::{Caller, ListResult, Page, Request, RequestMeta};
pub use error::CoreError;
