//! Server-side logic: PocketBase's JavaScript hooks (`*.pb.js`) on QuickJS.
//!
//! The entry is [`Hooks`]: `Hooks::load` reads the hooks folder, `Hooks::record_hook` is
//! the [`RecordHook`] that the App runs inside every record write, `Hooks::start` hands it
//! the App once open (runs `onBootstrap`, watches the folder), and `Hooks::handle` answers
//! the routes the files added (`routerAdd`); `migrate` runs migration files and
//! `automigrate` writes them for the schema changes superusers make. Rooms: `registry` (what the files
//! registered), `loader` (reading them), `engine` (a QuickJS engine per thread, limits),
//! `ops` (the native operations behind `$app`, `$security`, `$http`, ...), `js/prelude.js`
//! (PocketBase's JavaScript API over those operations), `routes` (HTTP), `events` (record
//! events).

mod automigrate;
mod engine;
mod events;
mod http;
mod jobs;
mod loader;
mod mail;
pub mod migrate;
mod ops;
mod pool;
mod query;
mod registry;
mod requests;
mod routes;
mod security;

pub use engine::EngineError;
pub use loader::LoadError;
pub use registry::Registry;

use arc_swap::ArcSwap;
use galley_core::context::RecordHook;
use galley_core::{App, CoreError};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// How hooks run.
#[derive(Debug, Clone)]
pub struct HooksConfig {
    /// The folder of `*.pb.js` files; `None`: no hook files (Rust extensions only).
    pub dir: Option<PathBuf>,
    /// Longest one invocation may run (a `while (true)` ends here with a 500).
    pub timeout: Duration,
    /// Heap of one engine; a huge allocation fails that invocation with a 500.
    pub memory_limit: usize,
    /// JavaScript stack of one engine (deep recursion throws a RangeError).
    pub stack_limit: usize,
    /// Threads that run routes and after-commit hooks.
    pub pool_size: usize,
    /// Reload when a file of the folder changes.
    pub watch: bool,
    /// PocketBase's automigrate: the migrations folder that collection changes made through
    /// the collections API or the dashboard are written into; `None`: off.
    pub automigrate: Option<PathBuf>,
}

impl Default for HooksConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        HooksConfig {
            dir: None,
            timeout: Duration::from_secs(30),
            memory_limit: 64 << 20,
            stack_limit: 512 << 10,
            // Handlers block while their own writes commit (`e.next()` of a request hook
            // holds its thread for the write), so many more threads than cores; each makes
            // its engine only when first used.
            pool_size: (cores * 8).max(16),
            watch: true,
            automigrate: None,
        }
    }
}

static IDS: AtomicUsize = AtomicUsize::new(1);

pub(crate) struct Shared {
    id: usize,
    config: HooksConfig,
    registry: ArcSwap<Registry>,
    generation: AtomicU64,
    app: OnceLock<Weak<App>>,
    handle: tokio::runtime::Handle,
    http: reqwest::Client,
    pool: pool::Pool,
    /// Cron ids this instance added to the App's queue (removed when a reload drops them).
    crons: parking_lot::Mutex<Vec<String>>,
    /// Collections' JSON as the engines get it, by id; the `Arc` kept with it is the
    /// collection it was made from (a schema change makes a new one).
    collection_json: parking_lot::Mutex<CollectionJson>,
}

/// By collection id: the collection a JSON text was made from, and the text.
type CollectionJson = std::collections::HashMap<String, (Arc<galley_types::Collection>, Arc<str>)>;

impl Shared {
    fn app(&self) -> Option<Arc<App>> {
        self.app.get().and_then(Weak::upgrade)
    }

    fn registry(&self) -> Arc<Registry> {
        self.registry.load_full()
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn dir_string(&self) -> String {
        self.config
            .dir
            .as_ref()
            .and_then(|d| d.canonicalize().ok())
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    }

    /// `col` as JSON text, made once per version of the collection.
    fn collection_json(&self, col: &Arc<galley_types::Collection>) -> Arc<str> {
        let mut cache = self.collection_json.lock();
        if let Some((c, json)) = cache.get(&col.id) {
            if Arc::ptr_eq(c, col) {
                return json.clone();
            }
        }
        let json: Arc<str> = col.to_json().to_string().into();
        if cache.len() > 1024 {
            cache.clear();
        }
        cache.insert(col.id.clone(), (col.clone(), json.clone()));
        json
    }

    /// The JSON of a collection handed by reference: cached when it is the schema's own.
    fn collection_json_of(
        &self,
        schema: &galley_types::Schema,
        col: &galley_types::Collection,
    ) -> Arc<str> {
        match schema.find(&col.id) {
            Some(arc) if std::ptr::eq(arc.as_ref(), col) => self.collection_json(arc),
            _ => col.to_json().to_string().into(),
        }
    }

    /// Waits for `fut` on this (non-async) thread.
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.handle.block_on(fut)
    }

    fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(fut)
    }
}

/// The hooks of one server.
#[derive(Clone)]
pub struct Hooks(Arc<Shared>);

impl Hooks {
    /// Loads the hook files of `config.dir` (must run inside the Tokio runtime). A file
    /// that fails to load is an error naming its file and line.
    pub fn load(config: HooksConfig) -> Result<Hooks, LoadError> {
        let pool = pool::Pool::new(config.pool_size);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|e| LoadError::Io("$http".into(), e.to_string()))?;
        let shared = Arc::new(Shared {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            config,
            registry: ArcSwap::from_pointee(Registry::default()),
            generation: AtomicU64::new(1),
            app: OnceLock::new(),
            handle: tokio::runtime::Handle::current(),
            http,
            pool,
            crons: Default::default(),
            collection_json: Default::default(),
        });
        let hooks = Hooks(shared);
        hooks.reload()?;
        Ok(hooks)
    }

    /// Reads the folder again; on success the new hooks replace the old at once (engines
    /// start over on their next call), on failure the old ones stay.
    pub fn reload(&self) -> Result<(), LoadError> {
        let files = match &self.0.config.dir {
            Some(d) => loader::files(d, ".pb.js")?,
            None => vec![],
        };
        let reg = loader::load(&self.0, &files)?;
        self.0.registry.store(Arc::new(reg));
        self.0.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(app) = self.0.app() {
            jobs::sync(&self.0, &app);
        }
        Ok(())
    }

    /// Evaluates `source` as the hook file `name` would load (registrations checked as a
    /// load checks them) without installing anything; the number of registrations.
    pub fn check(&self, name: &str, source: &str) -> Result<usize, LoadError> {
        let regs = loader::evaluate(&self.0, name, source)?;
        let n = regs.len();
        Registry::default()
            .add(regs)
            .map_err(|message| LoadError::Js {
                file: name.to_owned(),
                line: 0,
                message,
            })?;
        Ok(n)
    }

    /// What the files registered.
    pub fn registry(&self) -> Arc<Registry> {
        self.0.registry()
    }

    /// The hook the App runs inside every record write (install it with
    /// `App::open_with`).
    pub fn record_hook(&self) -> Arc<dyn RecordHook> {
        Arc::new(events::JsRecordHook(self.0.clone()))
    }

    /// Hands the open App to the hooks, runs `onBootstrap` handlers and, when configured,
    /// watches the folder for changes.
    pub async fn start(&self, app: &Arc<App>) -> Result<(), CoreError> {
        let _ = self.0.app.set(Arc::downgrade(app));
        app.set_request_hooks(Arc::new(requests::JsRequestHooks(self.0.clone())));
        if let Some(dir) = &self.0.config.automigrate {
            automigrate::install(app, dir.clone());
        }
        jobs::sync(&self.0, app);
        events::bootstrap(&self.0, "onBootstrap", serde_json::json!({})).await?;
        if self.0.config.watch {
            if let Some(dir) = self.0.config.dir.clone() {
                watch(Arc::downgrade(&self.0), dir);
            }
        }
        Ok(())
    }

    /// Runs the `onServe` handlers (the server is about to accept requests).
    pub async fn serve(&self) -> Result<(), CoreError> {
        events::bootstrap(&self.0, "onServe", serde_json::json!({})).await
    }

    /// Runs the `onTerminate` handlers (the server stopped serving and is about to close;
    /// `e.isRestart` is false: Galley restarts only after a backup restore, as a new
    /// process). A failure is logged.
    pub async fn terminate(&self) {
        let fields = serde_json::json!({"isRestart": false});
        if let Err(e) = events::bootstrap(&self.0, "onTerminate", fields).await {
            tracing::error!(target: "hooks", error = %e, "onTerminate failed");
        }
    }

    /// Answers a request with the route a hook file added, or gives it back.
    pub async fn handle(
        &self,
        req: axum::extract::Request,
    ) -> Result<axum::response::Response, axum::extract::Request> {
        routes::handle(&self.0, req).await
    }
}

/// Polls the folder (names, sizes, modification times of its `.js` files) and reloads on
/// a change; a broken file is logged with its line and the running hooks stay.
fn watch(shared: Weak<Shared>, dir: PathBuf) {
    let stamp = move |dir: &PathBuf| -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
        loader::files(dir, ".js")
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let m = std::fs::metadata(&p).ok();
                let len = m.as_ref().map_or(0, |m| m.len());
                let t = m.and_then(|m| m.modified().ok());
                (p, len, t)
            })
            .collect()
    };
    let _ = std::thread::Builder::new()
        .name("galley-hooks-watch".into())
        .spawn(move || {
            let mut last = stamp(&dir);
            loop {
                std::thread::sleep(Duration::from_millis(300));
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let now = stamp(&dir);
                if now == last {
                    continue;
                }
                last = now;
                let _guard = shared.handle.enter();
                match Hooks(shared).reload() {
                    Ok(()) => tracing::info!(dir = %dir.display(), "hooks reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "hooks not reloaded; the previous ones stay")
                    }
                }
            }
        });
}
