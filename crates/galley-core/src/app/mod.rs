//! The running backend as every service sees it: the store, the current schema snapshot and
//! settings, password hashing, and the per-process state of realtime, auth flows, thumbnails
//! and rate limits. [`App::open`] (in `boot.rs`) builds it.
//!
//! Architecture invariant: this module imports only the floor (`context`, `error`,
//! `settings`, `rate_rules`) and leaf crates; services import it, never the reverse.

mod auth_state;
mod background;
mod settings_update;

pub(crate) use background::start as start_background;

pub use auth_state::{AuthState, RESEND_WINDOW};

use crate::context::{Caller, RecordEvent, RecordHooks, RequestMeta, WriteCtx};
use crate::error::CoreError;
use crate::settings::Settings;
use arc_swap::ArcSwap;
use galley_store::Store;
use galley_types::Schema;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{Mutex, Semaphore};

#[derive(Debug, Clone)]
pub struct AppConfig {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub pool_size: usize,
    pub sync_full: bool,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Password hashes computed at once; each argon2id hash takes ~19 MiB and tens of ms.
    pub hash_concurrency: usize,
    /// Rate limits of the auth endpoints (on by default).
    pub auth_limits: galley_auth::ratelimit::AuthLimits,
    /// How this node works the job queue (mail, webhooks, user jobs, crons).
    pub jobs: galley_jobs::JobsConfig,
    /// Download OAuth2 avatars from non-public addresses too (an identity provider on the
    /// operator's own network). Off: an avatar URL is user data at some providers.
    pub oauth2_private_avatars: bool,
    /// Longest life of one realtime connection, SSE or WebSocket (clients reconnect).
    pub realtime_max_age: std::time::Duration,
}

impl AppConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        AppConfig {
            data_dir: data_dir.into(),
            database_url: None,
            pool_size: 8,
            sync_full: false,
            body_limit: 32 << 20,
            // One hash per core at most: each holds ~19 MiB of work memory for its thread.
            hash_concurrency: std::thread::available_parallelism()
                .map(|n| n.get().min(4))
                .unwrap_or(2),
            auth_limits: Default::default(),
            jobs: Default::default(),
            oauth2_private_avatars: false,
            realtime_max_age: std::time::Duration::from_secs(30 * 60),
        }
    }
}

/// The addresses this process serves HTTP on, shared by the App (which learns them as the
/// server starts) and the record hook (which refuses webhooks that target them).
#[derive(Debug, Clone, Default)]
pub struct Listening(Arc<std::sync::Mutex<Vec<std::net::SocketAddr>>>);

impl Listening {
    pub(crate) fn add(&self, addr: std::net::SocketAddr) {
        if let Ok(mut l) = self.0.lock() {
            l.push(addr);
        }
    }

    /// What a webhook may target under `settings`.
    pub(crate) fn policy(
        &self,
        settings: &crate::settings::Settings,
    ) -> galley_jobs::webhook::Policy {
        galley_jobs::webhook::Policy {
            allow_private: settings.webhooks.allow_private_networks,
            app_url: Some(settings.meta.app_url.clone()),
            listening: self.0.lock().map(|l| l.clone()).unwrap_or_default(),
        }
    }
}

/// Realtime clients, known by their caller.
pub type RealtimeHub = galley_realtime::Hub<Caller>;

/// The running backend: store, current schema snapshot and settings.
pub struct App {
    /// Private so that every front-end reaches data through the services; tests that check
    /// storage directly use [`App::store_for_tests`] (feature `testing`).
    pub(crate) store: Arc<Store>,
    /// The durable job queue over the same store (`App::jobs`).
    pub(crate) jobs: galley_jobs::Jobs,
    pub config: AppConfig,
    pub(crate) schema: ArcSwap<Schema>,
    pub(crate) settings: ArcSwap<Settings>,
    /// Counts settings saves, so that code above can follow them ([`App::settings_changes`]).
    pub(crate) settings_version: tokio::sync::watch::Sender<u64>,
    pub(crate) schema_reload: Mutex<u64>,
    pub(crate) hash_permits: Semaphore,
    pub(crate) hashers: HashThreads,
    /// This process's id among the nodes sharing a database (realtime fan-out).
    pub node_id: String,
    /// Recent realtime events, for WebSocket resume.
    pub journal: galley_realtime::Journal<RecordEvent>,
    /// Realtime clients and their subscriptions.
    pub realtime: RealtimeHub,
    pub(crate) events: std::sync::OnceLock<tokio::sync::mpsc::Sender<Vec<RecordEvent>>>,
    /// Hooks around record API requests, set once by the code that extends the App.
    pub(crate) request_hooks:
        std::sync::OnceLock<Arc<dyn crate::context::request_hooks::RequestHooks>>,
    /// Told of each collection change a superuser asks for (automigrate), set once by the
    /// code that extends the App.
    pub(crate) schema_hook: std::sync::OnceLock<Arc<dyn crate::context::request_hooks::SchemaHook>>,
    /// Auth flows' state: rate limiters, OAuth2 client, resend throttle.
    pub auth: AuthState,
    /// Where record files live (rebuilt when the `s3` settings change).
    pub(crate) storage: ArcSwap<galley_files::Storage>,
    /// Thumbnails being made, by key.
    pub(crate) thumbs: galley_files::KeyLocks,
    pub(crate) thumb_permits: Semaphore,
    /// `settings.rateLimits` rules, counted per client IP.
    pub rate_limiter: crate::rate_rules::RuleLimiter,
    /// What takes part in every record write (auth collections' rules, server hooks).
    pub(crate) record_hooks: RecordHooks,
    /// The addresses this process serves HTTP on (set by the server as it starts): a
    /// webhook may not target them.
    pub(crate) listening: Listening,
}

impl App {
    /// Installs the hooks around record API requests (once; later calls are ignored).
    pub fn set_request_hooks(&self, hooks: Arc<dyn crate::context::request_hooks::RequestHooks>) {
        let _ = self.request_hooks.set(hooks);
    }

    /// The hooks around record API requests, when some code installed them.
    pub fn request_hooks(&self) -> Option<&Arc<dyn crate::context::request_hooks::RequestHooks>> {
        self.request_hooks.get()
    }

    /// Installs the hook told of collection changes asked for through the collections API
    /// or the dashboard (once; later calls are ignored).
    pub fn set_schema_hook(&self, hook: Arc<dyn crate::context::request_hooks::SchemaHook>) {
        let _ = self.schema_hook.set(hook);
    }

    /// Runs `job` on a reader connection (for code above galley-core: hooks, extensions).
    pub async fn read<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut dyn galley_store::Conn) -> Result<T, CoreError> + Send + 'static,
    ) -> Result<T, CoreError> {
        self.store.read(job).await
    }

    /// Hands committed record events to the hooks that want them (after-success hooks,
    /// before the answer) and to realtime delivery (in commit order).
    pub async fn publish(&self, events: Vec<RecordEvent>) {
        if events.is_empty() {
            return;
        }
        self.record_hooks.committed(&events).await;
        self.queue_realtime(events);
    }

    /// Queues events for realtime delivery without waiting: a write never waits for
    /// subscribers. When delivery is that far behind, the events are dropped and so is
    /// every realtime client (they reconnect and reload), and no one can resume from
    /// before: nobody silently misses an event.
    pub(crate) fn queue_realtime(&self, events: Vec<RecordEvent>) {
        let Some(tx) = self.events.get() else { return };
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = tx.try_send(events) {
            self.journal.reset();
            let n = self
                .realtime
                .disconnect_all(Some(galley_realtime::Dropped::Missed));
            tracing::warn!(
                clients = n,
                "realtime delivery fell behind; events dropped and clients disconnected"
            );
        }
    }

    /// The store, for tests that look at or set up rows directly. Only galley-testkit
    /// enables the `testing` feature; no front-end may.
    #[cfg(feature = "testing")]
    pub fn store_for_tests(&self) -> &Store {
        &self.store
    }

    pub fn schema(&self) -> Arc<Schema> {
        self.schema.load_full()
    }

    /// A write job's context for `caller`, with the current schema and record hooks.
    pub fn write_ctx(&self, caller: &Caller, meta: &RequestMeta) -> WriteCtx {
        WriteCtx::new(self.schema(), self.record_hooks.clone(), caller, meta)
    }

    /// Counts a request against `settings.rateLimits` (see [`crate::rate_rules`]).
    pub fn check_rate_rules(
        &self,
        caller: &Caller,
        ip: impl FnOnce() -> String,
        method: &str,
        path: &str,
    ) -> Result<(), CoreError> {
        self.rate_limiter
            .check(&self.settings(), &self.schema(), caller, ip, method, path)
    }

    pub fn storage(&self) -> Arc<galley_files::Storage> {
        self.storage.load_full()
    }

    pub(crate) fn set_storage(&self, s: galley_files::Storage) {
        self.storage.store(Arc::new(s));
    }

    /// Where multipart uploads are spooled before they reach storage.
    pub fn upload_dir(&self) -> PathBuf {
        upload_dir(&self.config.data_dir)
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings.load_full()
    }

    /// Records an address this process serves HTTP on (webhooks may not target it).
    pub fn add_listening(&self, addr: std::net::SocketAddr) {
        self.listening.add(addr);
    }

    /// What a webhook may target now: `settings.webhooks.allowPrivateNetworks`, never this
    /// server (`meta.appURL` and the addresses it listens on).
    pub fn webhook_policy(&self) -> galley_jobs::webhook::Policy {
        self.listening.policy(&self.settings())
    }

    /// A consistent copy of the database in the file `dest` (SQLite; `BadRequest` on
    /// PostgreSQL, whose own tools make its backups).
    pub async fn backup_database_to(&self, dest: PathBuf) -> Result<(), CoreError> {
        Ok(self.store.backup_to(dest).await?)
    }

    /// Whether the data is in SQLite (backups and restores are then Galley's to make).
    pub fn is_sqlite(&self) -> bool {
        matches!(*self.store, galley_store::Store::Sqlite(_))
    }

    /// The store's queues and counters, for metrics.
    pub fn store_stats(&self) -> galley_store::StoreStats {
        self.store.stats()
    }

    /// Readiness: one trivial query answered within `within` (`Unavailable` otherwise).
    pub async fn check_database(&self, within: std::time::Duration) -> Result<(), CoreError> {
        let ping = self
            .store
            .read(|c: &mut dyn galley_store::Conn| -> Result<(), CoreError> {
                c.query("SELECT 1 AS n", &[])?;
                Ok(())
            });
        match tokio::time::timeout(within, ping).await {
            Ok(r) => r,
            Err(_) => Err(CoreError::Unavailable(format!(
                "no answer from the database within {within:?}"
            ))),
        }
    }

    pub(crate) fn set_settings(&self, s: Settings) {
        if s.rate_limits != self.settings().rate_limits {
            self.rate_limiter.reset();
        }
        self.auth.set_limiting(s.rate_limits_enabled());
        self.realtime.set_limits(s.realtime_limits());
        self.store.set_read_timeout(s.query_time_limit());
        self.settings.store(Arc::new(s));
        self.settings_version.send_modify(|v| *v += 1);
    }

    /// Changes whenever this process's settings are saved: what follows a setting that
    /// needs work beyond reading it (the backups schedule) waits on it.
    pub fn settings_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.settings_version.subscribe()
    }

    /// Re-reads every collection after a committed schema change and swaps the snapshot.
    /// Serialised, so the last reload always reflects the last commit.
    pub async fn reload_schema(&self) -> Result<(), CoreError> {
        let mut version = self.schema_reload.lock().await;
        let collections = self.store.read(crate::catalog::load_all).await?;
        *version += 1;
        let schema = Arc::new(Schema::new(*version, collections));
        self.schema.store(schema.clone());
        // Clients authenticated by a collection that is gone lose what it granted.
        self.realtime.revise_auth(|c| match c {
            Caller::Record { collection, .. } if schema.by_id(&collection.id).is_none() => {
                galley_realtime::Revision::Drop
            }
            _ => galley_realtime::Revision::Keep,
        });
        Ok(())
    }

    /// Hashes a password on the blocking pool, a bounded number at a time.
    pub async fn hash_password(&self, password: String) -> Result<String, CoreError> {
        let _permit = self
            .hash_permits
            .acquire()
            .await
            .map_err(|e| CoreError::internal(&e))?;
        self.hashers
            .run(move || galley_auth::password::hash(&password))
            .await
            .ok_or_else(|| CoreError::Internal("the password hashing threads are gone".into()))?
            .map_err(|e| CoreError::internal(&e))
    }

    /// How many password hashes and verifications (each the cost of one argon2id run) the
    /// App has made: what a caller can make the server spend.
    pub fn password_work(&self) -> u64 {
        self.hashers.runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Verifies a password off the async threads; `None` hash does the same work and fails.
    pub async fn verify_password(&self, password: String, hash: Option<String>) -> bool {
        let Ok(_permit) = self.hash_permits.acquire().await else {
            return false;
        };
        self.hashers
            .run(move || match hash {
                Some(h) => galley_auth::password::verify(&password, &h),
                None => {
                    galley_auth::password::verify_dummy(&password);
                    false
                }
            })
            .await
            .unwrap_or(false)
    }

    /// Stops the workers (running jobs get a few seconds, then go back to the queue) and
    /// the store.
    pub async fn close(&self) {
        self.jobs.stop(std::time::Duration::from_secs(5)).await;
        self.store.close().await;
    }
}

type HashJob = Box<dyn FnOnce() + Send>;

/// A few long-lived threads for password hashing. Each argon2id hash allocates ~19 MiB; on
/// the (growing) blocking pool every new thread got its own malloc arena and kept that memory
/// (RSS reached GiBs under a login storm). A fixed set of threads reuses a fixed set of arenas.
pub(crate) struct HashThreads {
    jobs: crossbeam_channel::Sender<HashJob>,
    /// Hashes and verifications run so far.
    runs: std::sync::atomic::AtomicU64,
}

impl HashThreads {
    pub(crate) fn start(n: usize) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<HashJob>();
        for i in 0..n {
            let rx = rx.clone();
            let _ = std::thread::Builder::new()
                .name(format!("galley-hash-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                        if rx.is_empty() {
                            galley_auth::password::release_work_memory();
                        }
                    }
                });
        }
        HashThreads {
            jobs: tx,
            runs: Default::default(),
        }
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: HashJob = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.send(job).ok()?;
        rx.await.ok()
    }
}

pub(crate) fn upload_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join(".tmp_uploads")
}

/// Creates the upload spool and empties it: files left there by a crash belong to no
/// request any more.
pub(crate) fn prepare_upload_dir(data_dir: &std::path::Path) -> Result<(), CoreError> {
    let dir = upload_dir(data_dir);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| {
        CoreError::Unavailable(format!(
            "cannot create the upload folder {}: {e}; check that the data directory is writable",
            dir.display()
        ))
    })
}
