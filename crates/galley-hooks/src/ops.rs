//! The native operations behind the JavaScript API (`__native(op, json)`).
//!
//! Data operations run on the connection of the transaction the thread is in (a record
//! hook inside a write, or `$app.runInTransaction`), else as their own read or write job.
//! Answers are JSON: `{"ok": value}` or `{"err": {status, message, data}}`; no operation
//! panics or throws into JavaScript except through that shape.

use crate::Shared;
use galley_core::collections::By;
use galley_core::context::request_hooks::NextRequest;
use galley_core::context::{Next, WriteCtx};
use galley_core::records::system;
use galley_core::{App, CoreError, RequestMeta};
use galley_store::Conn;
use rquickjs::Ctx;
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

type Record = Map<String, Value>;
type Job = Box<dyn FnOnce(&mut dyn Conn, &WriteCtx) + Send>;

/// A transaction the current thread's JavaScript is inside.
pub(crate) enum Frame {
    /// A record hook on the thread that holds the connection (`next` continues the write).
    Local {
        conn: *mut (dyn Conn + 'static),
        ctx: *const WriteCtx,
        next: Option<*mut Next<'static>>,
        called: bool,
    },
    /// `$app.runInTransaction` from a route: the write job runs on the store's thread and
    /// takes operations from this channel; dropping the sender rolls it back.
    Remote {
        jobs: crossbeam_channel::Sender<Result<Job, bool>>,
        done: Option<tokio::task::JoinHandle<Result<(), CoreError>>>,
    },
    /// A record API request's hooks: `next` is the rest of the request.
    Request {
        next: Option<galley_core::context::request_hooks::NextRequest>,
        /// What `next` answered: kept here, handed to JavaScript only when a handler
        /// reads `e.record` after `e.next()` (`nextAnswer`).
        answer: Option<Value>,
    },
}

thread_local! {
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// How many frames this thread has (to cut back to after a call, whatever JS did).
pub(crate) fn depth() -> usize {
    FRAMES.with(|f| f.borrow().len())
}

/// Drops the frames above `depth` (a remote transaction left open by a hook that was
/// interrupted rolls back, as its sender is dropped).
pub(crate) fn truncate(depth: usize) {
    let dropped: Vec<Frame> = FRAMES.with(|f| {
        let mut f = f.borrow_mut();
        let n = f.len().min(depth);
        f.split_off(n)
    });
    drop(dropped);
}

/// Runs `f` with a local frame for `c`, `ctx` and `next` on this thread's stack.
pub(crate) fn with_local<R>(
    c: &mut dyn Conn,
    ctx: &WriteCtx,
    next: Option<&mut Next<'_>>,
    f: impl FnOnce() -> R,
) -> (R, bool) {
    // SAFETY: the pointers are only dereferenced by operations called from `f` on this
    // thread, while this function's borrows are alive; the frame is popped before return.
    #[allow(unsafe_code)]
    let frame = unsafe {
        Frame::Local {
            conn: std::mem::transmute::<*mut (dyn Conn + '_), *mut (dyn Conn + 'static)>(c),
            ctx,
            next: next.map(|n| std::mem::transmute::<*mut Next<'_>, *mut Next<'static>>(n)),
            called: false,
        }
    };
    let depth = depth();
    FRAMES.with(|f| f.borrow_mut().push(frame));
    let r = f();
    let called = FRAMES.with(|f| {
        let f = f.borrow();
        matches!(f.get(depth), Some(Frame::Local { called: true, .. }))
    });
    truncate(depth);
    (r, called)
}

/// Runs `f` with the rest of a record request as `e.next()`.
/// Runs `f` with `next` as the rest of the request; also returns what `next` answered,
/// when it was called.
pub(crate) fn with_request<R>(
    next: galley_core::context::request_hooks::NextRequest,
    f: impl FnOnce() -> R,
) -> (R, Option<Value>) {
    let depth = depth();
    FRAMES.with(|fr| {
        fr.borrow_mut().push(Frame::Request {
            next: Some(next),
            answer: None,
        })
    });
    let r = f();
    let answer = FRAMES.with(|fr| match fr.borrow_mut().get_mut(depth) {
        Some(Frame::Request { answer, .. }) => answer.take(),
        _ => None,
    });
    truncate(depth);
    (r, answer)
}

/// The innermost request frame's `next` or answer.
fn request_frame<T>(
    f: impl FnOnce(&mut Option<NextRequest>, &mut Option<Value>) -> T,
) -> Option<T> {
    FRAMES.with(|fr| {
        fr.borrow_mut()
            .iter_mut()
            .rev()
            .find_map(|frame| match frame {
                Frame::Request { next, answer } => Some((next, answer)),
                _ => None,
            })
            .map(|(n, a)| f(n, a))
    })
}

fn next_request(shared: &Shared, a: Value) -> Result<Value, CoreError> {
    match request_frame(|next, _| next.take()).flatten() {
        Some(next) => {
            let answer = shared.block_on(next(a))?;
            request_frame(|_, slot| *slot = Some(answer));
            Ok(Value::Null)
        }
        None => Err(bad("e.next() was already called")),
    }
}

/// Whether this thread's JavaScript is inside a transaction.
fn in_transaction() -> bool {
    FRAMES.with(|f| {
        f.borrow()
            .iter()
            .any(|fr| matches!(fr, Frame::Local { .. } | Frame::Remote { .. }))
    })
}

fn err_json(status: u16, message: &str, data: Value) -> String {
    json!({"err": {"status": status, "message": message, "data": data}}).to_string()
}

fn core_err(e: CoreError) -> String {
    if matches!(e, CoreError::Internal(_) | CoreError::Unavailable(_)) {
        tracing::error!(error = %e, "hook operation failed");
    }
    json!({ "err": galley_api::error::body(&e) }).to_string()
}

pub(crate) fn dispatch(shared: &Arc<Shared>, _ctx: &Ctx<'_>, op: &str, args: &str) -> String {
    let args: Value = match serde_json::from_str(args) {
        Ok(v) => v,
        Err(e) => return err_json(400, &format!("{op}: invalid arguments: {e}"), json!({})),
    };
    match run(shared, op, args) {
        Ok(v) => json!({ "ok": v }).to_string(),
        Err(e) => core_err(e),
    }
}

fn bad(m: impl Into<String>) -> CoreError {
    CoreError::bad_request(m.into())
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn app(shared: &Shared) -> Result<Arc<App>, CoreError> {
    shared
        .app()
        .ok_or_else(|| CoreError::Unavailable("The application is not ready yet.".into()))
}

fn run(shared: &Arc<Shared>, op: &str, a: Value) -> Result<Value, CoreError> {
    match op {
        "log" => {
            let level = s(&a[0]);
            let msg = s(&a[1]);
            match level {
                "error" => tracing::error!(target: "hooks", "{msg}"),
                "warn" => tracing::warn!(target: "hooks", "{msg}"),
                "debug" => tracing::debug!(target: "hooks", "{msg}"),
                _ => tracing::info!(target: "hooks", "{msg}"),
            }
            Ok(Value::Null)
        }
        "source" => {
            let id = a.as_u64().unwrap_or(u64::MAX) as usize;
            let reg = shared.registry();
            reg.sources
                .get(id)
                .map(|s| json!(s))
                .ok_or_else(|| bad("unknown handler"))
        }
        "now" => Ok(json!(galley_types::datetime::now_string())),
        "getenv" => Ok(json!(std::env::var(s(&a)).unwrap_or_default())),
        "dataDir" => Ok(json!(app(shared)?.config.data_dir.to_string_lossy())),
        "sleep" => {
            let ms = a
                .as_u64()
                .unwrap_or(0)
                .min(shared.config.timeout.as_millis() as u64);
            std::thread::sleep(Duration::from_millis(ms));
            Ok(Value::Null)
        }
        "randomString" => {
            let n = a[0].as_u64().unwrap_or(0).min(1 << 20) as usize;
            let alphabet = s(&a[1]);
            Ok(json!(crate::security::random_string(n, alphabet)))
        }
        "jwtCreate" => crate::security::jwt_create(&a[0], s(&a[1]), a[2].as_i64().unwrap_or(0)),
        "jwtParse" => crate::security::jwt_parse(s(&a[0]), a[1].as_str()),
        "equal" => Ok(json!(galley_auth::jwt::secrets_equal(s(&a[0]), s(&a[1])))),
        "sha256" | "sha512" => Ok(json!(crate::security::digest(op, s(&a)))),
        "hmac" => Ok(json!(crate::security::hmac(s(&a[0]), s(&a[1]), s(&a[2])))),
        "hashPassword" => galley_auth::password::hash(s(&a))
            .map(|h| json!(h))
            .map_err(|e| CoreError::internal(&e)),
        "verifyPassword" => Ok(json!(
            !s(&a[0]).is_empty() && galley_auth::password::verify(s(&a[1]), s(&a[0]))
        )),
        "resolveModule" => crate::loader::resolve_module(shared, s(&a)),
        "http" => crate::http::send(shared, &a),
        "settings" => {
            let app = app(shared)?;
            serde_json::to_value(&*app.settings()).map_err(|e| CoreError::internal(&e))
        }
        "mail" => {
            let jobs: Vec<_> = crate::mail::mails(&a)?
                .iter()
                .map(galley_core::mail::job)
                .collect();
            in_tx(shared, true, move |c, _| {
                for j in &jobs {
                    galley_jobs::enqueue(c, j).map_err(|e| CoreError::internal(&e))?;
                }
                Ok(())
            })?;
            Ok(Value::Null)
        }
        "collection" => {
            let app = app(shared)?;
            let col = app
                .schema()
                .find(s(&a))
                .cloned()
                .ok_or_else(|| CoreError::NotFound(galley_core::error::NOT_FOUND.into()))?;
            Ok(col.to_json())
        }
        "collections" => {
            let app = app(shared)?;
            let types: Vec<String> = a
                .as_array()
                .map(|v| v.iter().map(|t| s(t).to_owned()).collect())
                .unwrap_or_default();
            let schema = app.schema();
            let out: Vec<Value> = schema
                .all()
                .iter()
                .filter(|c| types.is_empty() || types.iter().any(|t| t == c.kind.as_str()))
                .map(|c| c.to_json())
                .collect();
            Ok(Value::Array(out))
        }
        "saveCollection" | "deleteCollection" if in_transaction() => Err(bad(
            "Galley changes collections in schema jobs of their own: change them outside runInTransaction and record hooks",
        )),
        "saveCollection" => {
            let app = app(shared)?;
            let id = s(&a["id"]).to_owned();
            let exists = !id.is_empty() && app.schema().find(&id).is_some();
            let col = shared.block_on(async {
                if exists {
                    galley_core::collections::update(&app, &id, a, By::Code).await
                } else {
                    galley_core::collections::create(&app, a, By::Code).await
                }
            })?;
            Ok(col.to_json())
        }
        "deleteCollection" => {
            let app = app(shared)?;
            let name = s(&a).to_owned();
            shared.block_on(galley_core::collections::delete(&app, &name, By::Code))?;
            Ok(Value::Null)
        }
        "enqueue" => {
            let job = crate::jobs::new_job(&a)?;
            let out = in_tx(shared, true, move |c, _| {
                galley_jobs::enqueue(c, &job).map_err(|e| CoreError::bad_request(e.to_string()))
            })?;
            Ok(json!(out.id()))
        }
        "txBegin" => tx_begin(shared),
        "txEnd" => tx_end(shared, a[1].as_bool().unwrap_or(false)),
        "next" => next(a),
        "nextRequest" => next_request(shared, a),
        "nextAnswer" => Ok(request_frame(|_, answer| answer.clone())
            .flatten()
            .unwrap_or(Value::Null)),
        "findById" | "find" | "count" | "save" | "delete" | "query" | "validate" => {
            data_op(shared, op, a)
        }
        other => Err(bad(format!("unknown operation {other:?}"))),
    }
}

/// Continues the write a record hook wraps, with the record as JavaScript left it.
fn next(a: Value) -> Result<Value, CoreError> {
    let Value::Object(mut record) = a else {
        return Err(bad("e.next(): the record is not an object"));
    };
    let target = FRAMES.with(|f| {
        let mut f = f.borrow_mut();
        match f.last_mut() {
            Some(Frame::Local {
                conn,
                next: Some(next),
                called,
                ..
            }) if !*called => {
                *called = true;
                Some((*conn, *next))
            }
            _ => None,
        }
    });
    let Some((conn, next)) = target else {
        return Ok(Value::Null);
    };
    // SAFETY: see `with_local`: the frame's borrows outlive this call, made on its thread
    // while nothing else uses the connection (the JavaScript that called us is waiting).
    #[allow(unsafe_code)]
    let (c, next) = unsafe { (&mut *conn, &mut *next) };
    next(c, &mut record)?;
    Ok(Value::Object(record))
}

/// Runs `job` on the connection of the thread's innermost transaction, or as its own job.
fn in_tx<T: Send + 'static>(
    shared: &Arc<Shared>,
    write: bool,
    job: impl FnOnce(&mut dyn Conn, Option<&WriteCtx>) -> Result<T, CoreError> + Send + 'static,
) -> Result<T, CoreError> {
    enum Where {
        Local(*mut (dyn Conn + 'static), *const WriteCtx),
        Remote(crossbeam_channel::Sender<Result<Job, bool>>),
        None,
    }
    let at = FRAMES.with(|f| {
        let f = f.borrow();
        let tx = f
            .iter()
            .rev()
            .find(|fr| matches!(fr, Frame::Local { .. } | Frame::Remote { .. }));
        match tx {
            Some(Frame::Local { conn, ctx, .. }) => Where::Local(*conn, *ctx),
            Some(Frame::Remote { jobs, .. }) => Where::Remote(jobs.clone()),
            _ => Where::None,
        }
    });
    match at {
        Where::Local(conn, ctx) => {
            // SAFETY: see `with_local`.
            #[allow(unsafe_code)]
            let (c, ctx) = unsafe { (&mut *conn, &*ctx) };
            job(c, Some(ctx))
        }
        Where::Remote(jobs) => {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let work: Job = Box::new(move |c, ctx| {
                let _ = tx.send(job(c, Some(ctx)));
            });
            jobs.send(Ok(work))
                .map_err(|_| CoreError::Unavailable("The transaction has ended.".into()))?;
            rx.recv()
                .map_err(|_| CoreError::Unavailable("The transaction has ended.".into()))?
        }
        Where::None => {
            let app = app(shared)?;
            if write {
                let caller = system::caller(&app.schema());
                let meta = RequestMeta::default();
                shared.block_on(app.write(&caller, &meta, move |c, ctx| job(c, Some(ctx))))
            } else {
                shared.block_on(app.read(move |c| job(c, None)))
            }
        }
    }
}

fn tx_begin(shared: &Arc<Shared>) -> Result<Value, CoreError> {
    if in_transaction() {
        // Already inside a transaction: PocketBase runs the nested one in it.
        return Ok(json!(0));
    }
    let app = app(shared)?;
    let (jobs, rx) = crossbeam_channel::unbounded::<Result<Job, bool>>();
    let limit = shared.config.timeout;
    let caller = system::caller(&app.schema());
    let app2 = app.clone();
    let done = shared.spawn(async move {
        app2.write(&caller, &RequestMeta::default(), move |c, ctx| loop {
            match rx.recv_timeout(limit) {
                Ok(Ok(job)) => job(c, ctx),
                Ok(Err(true)) => return Ok(()),
                Ok(Err(false)) | Err(_) => {
                    return Err(CoreError::bad_request("The transaction was rolled back."))
                }
            }
        })
        .await
    });
    FRAMES.with(|f| {
        f.borrow_mut().push(Frame::Remote {
            jobs,
            done: Some(done),
        })
    });
    Ok(json!(1))
}

fn tx_end(shared: &Arc<Shared>, commit: bool) -> Result<Value, CoreError> {
    let top = FRAMES.with(|f| {
        let mut f = f.borrow_mut();
        match f.last() {
            Some(Frame::Remote { .. }) => f.pop(),
            _ => None,
        }
    });
    let Some(Frame::Remote { jobs, done }) = top else {
        return Ok(Value::Null);
    };
    let _ = jobs.send(Err(commit));
    drop(jobs);
    let Some(done) = done else {
        return Ok(Value::Null);
    };
    match shared.block_on(done) {
        Ok(Ok(())) => Ok(Value::Null),
        // The JavaScript error that rolled it back is already on its way up.
        Ok(Err(_)) if !commit => Ok(Value::Null),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(CoreError::internal(&e)),
    }
}

fn collection(
    shared: &Shared,
    id: &str,
) -> Result<(Arc<galley_types::Schema>, Arc<galley_types::Collection>), CoreError> {
    let app = app(shared)?;
    let schema = app.schema();
    let col = schema
        .find(id)
        .cloned()
        .ok_or_else(|| CoreError::NotFound("Missing collection context.".into()))?;
    Ok((schema, col))
}

fn find_query(a: &Value) -> Result<system::Find, CoreError> {
    let params = a["params"].as_object().cloned().unwrap_or_default();
    let filter = galley_expr::bind_params(s(&a["filter"]), &params)
        .map_err(|e| bad(format!("Invalid filter: {e}")))?;
    Ok(system::Find {
        filter,
        sort: s(&a["sort"]).to_owned(),
        limit: a["limit"].as_u64().unwrap_or(0) as usize,
        offset: a["offset"].as_u64().unwrap_or(0) as usize,
        equals: a.get("field").and_then(Value::as_str).map(|f| {
            (
                f.to_owned(),
                a["value"].clone(),
                a["nocase"].as_bool().unwrap_or(false),
            )
        }),
        ids: a["ids"]
            .as_array()
            .map(|ids| ids.iter().map(|v| s(v).to_owned()).collect()),
    })
}

fn data_op(shared: &Arc<Shared>, op: &str, a: Value) -> Result<Value, CoreError> {
    match op {
        "findById" => {
            let (_, col) = collection(shared, s(&a[0]))?;
            let id = s(&a[1]).to_owned();
            let rec = in_tx(shared, false, move |c, _| system::find_by_id(c, &col, &id)).map_err(
                |e| match e {
                    CoreError::NotFound(_) => {
                        CoreError::NotFound(galley_core::error::NOT_FOUND.into())
                    }
                    other => other,
                },
            )?;
            Ok(Value::Object(rec))
        }
        "find" => {
            let (schema, col) = collection(shared, s(&a["c"]))?;
            let q = find_query(&a)?;
            let recs = in_tx(shared, false, move |c, _| {
                system::find(c, &schema, &col, &q)
            })?;
            Ok(Value::Array(recs.into_iter().map(Value::Object).collect()))
        }
        "count" => {
            let (schema, col) = collection(shared, s(&a["c"]))?;
            let q = find_query(&a)?;
            Ok(json!(in_tx(shared, false, move |c, _| system::count(
                c, &schema, &col, &q
            ))?))
        }
        "save" | "validate" => {
            let (schema, col) = collection(shared, s(&a["c"]))?;
            let id = a["id"].as_str().map(str::to_owned);
            let mut data: Record = a["data"].as_object().cloned().unwrap_or_default();
            hash_plain_password(&col, &mut data)?;
            let validate_only = op == "validate";
            let rec = in_tx(shared, true, move |c, ctx| {
                let ctx = ctx.expect("a write job has its context");
                let sys = ctx.acting_as(system::caller(&schema));
                if validate_only {
                    // Validation is the write without its commit: a savepoint undone.
                    return Err(CoreError::bad_request(
                        "$app.validate is not offered by Galley; $app.save validates",
                    ));
                }
                system::save(c, &sys, &col, id.as_deref(), data)
            })?;
            Ok(Value::Object(rec))
        }
        "delete" => {
            let (schema, col) = collection(shared, s(&a[0]))?;
            let id = s(&a[1]).to_owned();
            in_tx(shared, true, move |c, ctx| {
                let ctx = ctx.expect("a write job has its context");
                system::remove(c, &ctx.acting_as(system::caller(&schema)), &col, &id)
            })?;
            Ok(Value::Null)
        }
        "query" => {
            let sql = s(&a["sql"]).to_owned();
            let params = a["params"].as_object().cloned().unwrap_or_default();
            let mode = s(&a["mode"]).to_owned();
            let write = mode == "execute";
            in_tx(shared, write, move |c, _| {
                crate::query::run(c, &sql, &params, &mode)
            })
        }
        _ => Err(bad("unknown operation")),
    }
}

/// A plain-text `password` set through `record.set` is hashed here, as PocketBase's
/// password field hashes what it is given.
fn hash_plain_password(col: &galley_types::Collection, data: &mut Record) -> Result<(), CoreError> {
    if !col.is_auth() {
        return Ok(());
    }
    if let Some(Value::String(p)) = data.get("password") {
        if !p.is_empty() && !p.starts_with("$argon2") && !p.starts_with("$2") {
            let h = galley_auth::password::hash(p).map_err(|e| CoreError::internal(&e))?;
            data.insert("password".into(), json!(h));
        }
    }
    Ok(())
}
