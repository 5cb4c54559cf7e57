//! The Rust extension API: the same events, routes and (with the jobs queue) cron jobs as
//! the JavaScript hooks, registered on a [`Builder`] in a binary of the team's own.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use galley::extend::{Builder, RecordEvent};
//! let server = Builder::new(galley_core::AppConfig::new("./galley_data"))
//!     .on_record_create(&["orders"], |e: &mut RecordEvent<'_, '_>| {
//!         if e.record.get("qty").and_then(|v| v.as_i64()).unwrap_or(0) <= 0 {
//!             return Err(galley_core::CoreError::bad_request("Quantity must be positive."));
//!         }
//!         e.next()
//!     })
//!     .open()
//!     .await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8090").await?;
//! galley::serve(listener, server, std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! Record events run inside the write's transaction, on the connection of the write
//! (`e.conn`, with `galley_core::records::system` for reads and saves in it); `e.next()`
//! is the rest of the write. After-success events run once the write committed. Routes are
//! axum routes with the App as state, inside the same layers as the API (auth, logs, rate
//! limits, CORS).

use crate::Server;
use axum::Router;
use galley_core::context::{Next, RecordEvent as Committed, RecordHook, WriteCtx, WriteOp};
use galley_core::{App, AppConfig, CoreError};
use galley_hooks::{Hooks, HooksConfig};
use galley_store::Conn;
use galley_types::Collection;
use serde_json::{Map, Value};
use std::sync::Arc;

/// One record write as a Rust handler sees it, inside the transaction.
pub struct RecordEvent<'a, 'n> {
    pub conn: &'a mut dyn Conn,
    pub ctx: &'a WriteCtx,
    pub collection: &'a Collection,
    pub record: &'a mut Map<String, Value>,
    next: &'a mut Next<'n>,
    called: bool,
}

impl RecordEvent<'_, '_> {
    /// The rest of the write (validation, the statement, the rule); call it once, or not
    /// at all to skip the write. Named as PocketBase's `e.next()`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<(), CoreError> {
        if self.called {
            return Err(CoreError::Internal("e.next() called twice".into()));
        }
        self.called = true;
        (self.next)(self.conn, self.record)
    }
}

type InTx = Arc<dyn Fn(&mut RecordEvent<'_, '_>) -> Result<(), CoreError> + Send + Sync>;
type AfterCommit = Arc<dyn Fn(&Arc<App>, &Committed) + Send + Sync>;

struct Handler<F> {
    op: WriteOp,
    collections: Vec<String>,
    f: F,
}

fn matches(collections: &[String], col: &Collection) -> bool {
    collections.is_empty() || collections.iter().any(|c| c == &col.name || c == &col.id)
}

/// The record hook the builder's handlers make, in registration order.
struct RustHooks {
    in_tx: Vec<Handler<InTx>>,
    after: Vec<Handler<AfterCommit>>,
    app: std::sync::OnceLock<std::sync::Weak<App>>,
}

impl RecordHook for RustHooks {
    fn wraps(&self, op: WriteOp, col: &Collection) -> bool {
        self.in_tx
            .iter()
            .any(|h| h.op == op && matches(&h.collections, col))
    }

    fn around(
        &self,
        c: &mut dyn Conn,
        ctx: &WriteCtx,
        op: WriteOp,
        col: &Collection,
        record: &mut Map<String, Value>,
        next: &mut Next<'_>,
    ) -> Result<(), CoreError> {
        let chain: Vec<&InTx> = self
            .in_tx
            .iter()
            .filter(|h| h.op == op && matches(&h.collections, col))
            .map(|h| &h.f)
            .collect();
        run_chain(&chain, c, ctx, col, record, next)
    }

    fn wants_committed(&self) -> bool {
        !self.after.is_empty()
    }

    fn committed(&self, events: &[Committed]) {
        let Some(app) = self.app.get().and_then(std::sync::Weak::upgrade) else {
            return;
        };
        let schema = app.schema();
        for ev in events {
            let op = ev.op();
            let Some(col) = schema.find(&ev.collection_id) else {
                continue;
            };
            for h in self
                .after
                .iter()
                .filter(|h| h.op == op && matches(&h.collections, col))
            {
                (h.f)(&app, ev);
            }
        }
    }
}

fn run_chain(
    chain: &[&InTx],
    c: &mut dyn Conn,
    ctx: &WriteCtx,
    col: &Collection,
    record: &mut Map<String, Value>,
    next: &mut Next<'_>,
) -> Result<(), CoreError> {
    let Some((first, rest)) = chain.split_first() else {
        return next(c, record);
    };
    let mut inner =
        |c: &mut dyn Conn, r: &mut Map<String, Value>| run_chain(rest, c, ctx, col, r, next);
    let mut e = RecordEvent {
        conn: c,
        ctx,
        collection: col,
        record,
        next: &mut inner,
        called: false,
    };
    first(&mut e)
}

/// A Galley server with Rust extensions (and, optionally, JavaScript hooks).
pub struct Builder {
    config: AppConfig,
    hooks: Option<HooksConfig>,
    in_tx: Vec<Handler<InTx>>,
    after: Vec<Handler<AfterCommit>>,
    extra: Vec<Arc<dyn RecordHook>>,
    routes: Router<Arc<App>>,
}

impl Builder {
    pub fn new(config: AppConfig) -> Builder {
        Builder {
            config,
            hooks: None,
            in_tx: vec![],
            after: vec![],
            extra: vec![],
            routes: Router::new(),
        }
    }

    /// JavaScript hook files too (`HooksConfig::dir`).
    pub fn js_hooks(mut self, hooks: HooksConfig) -> Self {
        self.hooks = Some(hooks);
        self
    }

    fn on(
        mut self,
        op: WriteOp,
        collections: &[&str],
        f: impl Fn(&mut RecordEvent<'_, '_>) -> Result<(), CoreError> + Send + Sync + 'static,
    ) -> Self {
        self.in_tx.push(Handler {
            op,
            collections: collections.iter().map(|s| s.to_string()).collect(),
            f: Arc::new(f),
        });
        self
    }

    /// PocketBase's `onRecordCreate`: around each create of these collections (all when
    /// empty), inside its transaction.
    pub fn on_record_create(
        self,
        collections: &[&str],
        f: impl Fn(&mut RecordEvent<'_, '_>) -> Result<(), CoreError> + Send + Sync + 'static,
    ) -> Self {
        self.on(WriteOp::Create, collections, f)
    }

    /// PocketBase's `onRecordUpdate`.
    pub fn on_record_update(
        self,
        collections: &[&str],
        f: impl Fn(&mut RecordEvent<'_, '_>) -> Result<(), CoreError> + Send + Sync + 'static,
    ) -> Self {
        self.on(WriteOp::Update, collections, f)
    }

    /// PocketBase's `onRecordDelete`.
    pub fn on_record_delete(
        self,
        collections: &[&str],
        f: impl Fn(&mut RecordEvent<'_, '_>) -> Result<(), CoreError> + Send + Sync + 'static,
    ) -> Self {
        self.on(WriteOp::Delete, collections, f)
    }

    /// PocketBase's `onRecordAfterCreateSuccess` / `...Update...` / `...Delete...` (by
    /// `op`): after the commit, on a blocking thread, before the answer.
    pub fn on_record_after_success(
        mut self,
        op: WriteOp,
        collections: &[&str],
        f: impl Fn(&Arc<App>, &Committed) + Send + Sync + 'static,
    ) -> Self {
        self.after.push(Handler {
            op,
            collections: collections.iter().map(|s| s.to_string()).collect(),
            f: Arc::new(f),
        });
        self
    }

    /// Any [`RecordHook`] (the trait the handlers above are made into).
    pub fn record_hook(mut self, hook: Arc<dyn RecordHook>) -> Self {
        self.extra.push(hook);
        self
    }

    /// Routes of your own (PocketBase's `routerAdd`), with the App as state.
    pub fn routes(mut self, routes: Router<Arc<App>>) -> Self {
        self.routes = self.routes.merge(routes);
        self
    }

    /// Opens the App with everything registered taking part.
    pub async fn open(self) -> Result<Server, CoreError> {
        let hooks = match self.hooks {
            Some(h) => Some(Hooks::load(h).map_err(|e| CoreError::Unavailable(e.to_string()))?),
            None => None,
        };
        let rust = Arc::new(RustHooks {
            in_tx: self.in_tx,
            after: self.after,
            app: std::sync::OnceLock::new(),
        });
        let mut record_hooks: Vec<Arc<dyn RecordHook>> = vec![rust.clone()];
        record_hooks.extend(self.extra);
        record_hooks.extend(hooks.iter().map(|h| h.record_hook()));
        let app = App::open_with(self.config, record_hooks).await?;
        let _ = rust.app.set(Arc::downgrade(&app));
        if let Some(h) = &hooks {
            h.start(&app).await?;
        }
        Ok(Server {
            app,
            hooks,
            routes: Some(self.routes),
        })
    }
}
