//! The end-to-end API suite: one test binary (instead of one per file, each linking the
//! whole server), a module per area. Test names are `<module>::<test>::{sqlite,postgres}`
//! (`both_engines!`) or `<module>::<test>::{sqlite,postgres}_{local,s3}` (`all_backends!`).
//!
//! Everything here shares one process: one `moto_server` for the S3 tests
//! (`galley_testkit::s3`), and the default test threads. A test that needs the process to
//! itself belongs in a test target of its own, as `tests/files_large.rs` (it measures the
//! process's peak RSS).

mod expr_support;

mod auth_collections;
mod auth_flows;
mod auth_oauth2;
mod auth_security;
mod backups;
mod batch;
mod brokers;
mod collections;
mod collections_import;
mod drain;
mod errors_hostile;
mod expr_filter;
mod expr_query;
mod expr_rules;
mod extend;
mod files;
mod hardening;
mod hardening_realtime;
mod health;
mod hooks;
mod hooks_docs;
mod jobs;
mod logs;
mod mail_tls;
mod metrics;
mod pg_outage;
mod rate_limits;
mod realtime;
mod realtime_ws;
mod records;
mod settings;
mod superuser_auth;
mod superuser_ips;
mod webhooks;
