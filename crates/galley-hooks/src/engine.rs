//! One QuickJS engine per thread and hooks instance, made on first use and made again
//! after the hook files change or after a call that hit a limit.
//!
//! Why per thread: a record hook runs on the thread of the write it takes part in (the
//! SQLite writer, a PostgreSQL transaction's blocking thread) so that what it reads and
//! saves goes through that transaction's connection, never through a hop to another
//! thread; routes run on the hooks' own pool threads. A call that reaches Rust and back
//! into JavaScript on the same thread (a `$app.save` inside a route whose record hook is
//! JavaScript too) reuses the engine that is already running, through `ACTIVE`.

use crate::Shared;
use rquickjs::{Context, Ctx, Function, Runtime};
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Instant;

/// Why a call failed without an answer from JavaScript.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the hook ran longer than its time limit ({0} ms)")]
    Timeout(u128),
    #[error("the hook ran out of memory (limit {0} MiB)")]
    Memory(usize),
    #[error("{0}")]
    Js(String),
}

struct Engine {
    owner: usize,
    generation: u64,
    // Dropped after the context (field order).
    context: Context,
    _runtime: Runtime,
}

thread_local! {
    static ENGINES: RefCell<Vec<Engine>> = const { RefCell::new(Vec::new()) };
    static ACTIVE: Cell<Option<(usize, NonNull<rquickjs::qjs::JSContext>)>> = const { Cell::new(None) };
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static INTERRUPTED: Cell<bool> = const { Cell::new(false) };
}

fn make(shared: &Arc<Shared>) -> Result<Engine, EngineError> {
    let runtime = Runtime::new().map_err(|e| EngineError::Js(e.to_string()))?;
    runtime.set_memory_limit(shared.config.memory_limit);
    runtime.set_max_stack_size(shared.config.stack_limit);
    // A collection every 2 MiB of allocation: an engine per thread adds up, so garbage must
    // not pile up to the memory limit before QuickJS looks at it.
    runtime.set_gc_threshold(2 << 20);
    runtime.set_interrupt_handler(Some(Box::new(|| {
        let late = DEADLINE.with(|d| d.get().is_some_and(|t| Instant::now() > t));
        if late {
            INTERRUPTED.with(|i| i.set(true));
        }
        late
    })));
    let context = Context::full(&runtime).map_err(|e| EngineError::Js(e.to_string()))?;
    let weak = Arc::downgrade(shared);
    context.with(|ctx| -> Result<(), EngineError> {
        let native = Function::new(
            ctx.clone(),
            move |ctx: Ctx<'_>, op: String, args: String| match weak.upgrade() {
                Some(shared) => crate::ops::dispatch(&shared, &ctx, &op, &args),
                None => {
                    r#"{"err":{"status":503,"message":"The server is shutting down.","data":{}}}"#
                        .to_owned()
                }
            },
        )
        .map_err(|e| EngineError::Js(e.to_string()))?;
        let g = ctx.globals();
        g.set("__native", native)
            .map_err(|e| EngineError::Js(e.to_string()))?;
        let unsupported: Vec<&str> = crate::registry::UNSUPPORTED.to_vec();
        g.set("__unsupported", unsupported)
            .map_err(|e| EngineError::Js(e.to_string()))?;
        g.set("__hooks", shared.dir_string())
            .map_err(|e| EngineError::Js(e.to_string()))?;
        ctx.eval::<(), _>(include_str!("js/prelude.js"))
            .map_err(|e| EngineError::Js(describe(&ctx, e)))?;
        Ok(())
    })?;
    Ok(Engine {
        owner: shared.id,
        generation: shared.generation(),
        context,
        _runtime: runtime,
    })
}

/// Runs `f` in this thread's engine for `shared`, within the time limit (the outermost
/// call on the thread sets the deadline; nested calls share it).
pub(crate) fn with<R>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Ctx<'_>) -> Result<R, EngineError>,
) -> Result<R, EngineError> {
    if let Some((owner, raw)) = ACTIVE.with(|a| a.get()) {
        if owner == shared.id {
            // SAFETY: `raw` is the context of the engine whose `Context::with` is running
            // further up this thread's stack (it is cleared before that call returns), so it
            // is alive and locked by this thread.
            #[allow(unsafe_code)]
            let ctx = unsafe { Ctx::from_raw(raw) };
            return f(&ctx);
        }
    }
    let generation = shared.generation();
    let context = ENGINES.with(|engines| -> Result<Context, EngineError> {
        let mut engines = engines.borrow_mut();
        engines.retain(|e| e.owner != shared.id || e.generation == generation);
        if let Some(e) = engines.iter().find(|e| e.owner == shared.id) {
            return Ok(e.context.clone());
        }
        // Engines of hooks instances that are gone (tests start many servers).
        if engines.len() >= 4 {
            engines.remove(0);
        }
        let e = make(shared)?;
        let c = e.context.clone();
        engines.push(e);
        Ok(c)
    })?;
    let limit = shared.config.timeout;
    let frames = crate::ops::depth();
    DEADLINE.with(|d| d.set(Some(Instant::now() + limit)));
    INTERRUPTED.with(|i| i.set(false));
    let out = context.with(|ctx| {
        ACTIVE.with(|a| a.set(Some((shared.id, ctx.as_raw()))));
        let r = f(&ctx);
        ACTIVE.with(|a| a.set(None));
        r
    });
    DEADLINE.with(|d| d.set(None));
    // A transaction the JavaScript opened and could not end (interrupted) rolls back.
    crate::ops::truncate(frames);
    let interrupted = INTERRUPTED.with(|i| i.replace(false));
    let out = match out {
        Err(EngineError::Js(m)) if interrupted => {
            tracing::debug!(message = %m, "hook interrupted");
            Err(EngineError::Timeout(limit.as_millis()))
        }
        Err(EngineError::Js(m)) if m.contains("out of memory") => {
            Err(EngineError::Memory(shared.config.memory_limit >> 20))
        }
        other => other,
    };
    if matches!(out, Err(EngineError::Timeout(_) | EngineError::Memory(_))) {
        // A runtime stopped mid-way may hold half-built state: start clean next time.
        drop(context);
        ENGINES.with(|engines| engines.borrow_mut().retain(|e| e.owner != shared.id));
    }
    out
}

/// Runs `f` in a new engine of its own, dropped afterwards (loading the hook files).
pub(crate) fn fresh<R>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Ctx<'_>) -> Result<R, EngineError>,
) -> Result<R, EngineError> {
    let e = make(shared)?;
    DEADLINE.with(|d| d.set(Some(Instant::now() + shared.config.timeout)));
    let out = e.context.with(|ctx| f(&ctx));
    DEADLINE.with(|d| d.set(None));
    if INTERRUPTED.with(|i| i.replace(false)) {
        return Err(EngineError::Timeout(shared.config.timeout.as_millis()));
    }
    out
}

/// The text of a JavaScript exception, with its stack when there is one.
pub(crate) fn describe(ctx: &Ctx<'_>, e: rquickjs::Error) -> String {
    if !e.is_exception() {
        return e.to_string();
    }
    let v = ctx.catch();
    if let Some(ex) = v.as_exception() {
        let msg = ex.message().unwrap_or_default();
        match ex.stack() {
            Some(s) if !s.is_empty() => format!("{msg}\n{s}"),
            _ => msg,
        }
    } else if let Some(s) = v.as_string() {
        s.to_string().unwrap_or_default()
    } else {
        format!("{v:?}")
    }
}

/// Calls `__galley[name](args...)` and returns its string answer.
pub(crate) fn call(ctx: &Ctx<'_>, name: &str, args: Vec<String>) -> Result<String, EngineError> {
    let g: rquickjs::Object = ctx
        .globals()
        .get("__galley")
        .map_err(|e| EngineError::Js(describe(ctx, e)))?;
    let f: Function = g.get(name).map_err(|e| EngineError::Js(describe(ctx, e)))?;
    let mut a = rquickjs::function::Args::new(ctx.clone(), args.len());
    for s in args {
        a.push_arg(s)
            .map_err(|e| EngineError::Js(describe(ctx, e)))?;
    }
    f.call_arg::<Option<String>>(a)
        .map(Option::unwrap_or_default)
        .map_err(|e| EngineError::Js(describe(ctx, e)))
}
