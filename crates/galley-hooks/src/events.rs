//! Record events: `onRecordCreate`/`Update`/`Delete` wrap the write inside its transaction
//! (the handler's `e.next()` is the rest of the write), the after-success events run once
//! the write committed, `onBootstrap` once at start.

use crate::engine::{self, EngineError};
use crate::{ops, Shared};
use galley_core::context::{Next, RecordEvent, RecordHook, WriteCtx, WriteOp};
use galley_core::CoreError;
use galley_store::Conn;
use galley_types::Collection;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub(crate) struct JsRecordHook(pub(crate) Arc<Shared>);

fn event(op: WriteOp) -> &'static str {
    match op {
        WriteOp::Create => "onRecordCreate",
        WriteOp::Update => "onRecordUpdate",
        WriteOp::Delete => "onRecordDelete",
    }
}

/// A JavaScript failure as the error the write (and then the API) answers with.
pub(crate) fn js_error(v: &Value) -> CoreError {
    let status = v["status"].as_u64().unwrap_or(500);
    let message = v["message"].as_str().unwrap_or_default().to_owned();
    if let Some(log) = v["log"].as_str() {
        tracing::warn!(target: "hooks", error = %log, "hook threw");
    }
    match status {
        400 => CoreError::BadRequest {
            message,
            data: v["data"].clone(),
        },
        401 => CoreError::Unauthorized(message),
        403 => CoreError::Forbidden(message),
        404 => CoreError::NotFound(message),
        413 => CoreError::TooLarge(message),
        429 => CoreError::TooManyRequests { retry_after: 0 },
        s if (400..500).contains(&s) => CoreError::BadRequest {
            message,
            data: v["data"].clone(),
        },
        _ => CoreError::Internal(v["log"].as_str().unwrap_or(&message).to_owned()),
    }
}

pub(crate) fn engine_error(e: EngineError) -> CoreError {
    tracing::error!(target: "hooks", error = %e, "hook failed");
    CoreError::Internal(format!("hook: {e}"))
}

impl JsRecordHook {
    /// `onRecordValidate`: before the write path validates; a throw refuses the write,
    /// changes to `e.record` are kept (`e.next()` does nothing more).
    fn validate(
        &self,
        c: &mut dyn Conn,
        ctx: &WriteCtx,
        change: &mut galley_core::context::Change<'_>,
    ) -> Result<(), CoreError> {
        let shared = &self.0;
        let col = change.collection;
        let ids = shared
            .registry()
            .handlers("onRecordValidate", &col.name, &col.id);
        if ids.is_empty() {
            return Ok(());
        }
        let extra = match change.old {
            Some(old) => json!({ "original": old }).to_string(),
            None => json!({ "isNew": true }).to_string(),
        };
        let args = vec![
            "onRecordValidate".to_owned(),
            json!(ids).to_string(),
            shared.collection_json_of(&ctx.schema, col).to_string(),
            Value::Object(change.record.clone()).to_string(),
            extra,
        ];
        let (out, _) = ops::with_local(c, ctx, None, || {
            engine::with(shared, |js| engine::call(js, "record", args))
        });
        let out: Value = serde_json::from_str(&out.map_err(engine_error)?)
            .map_err(|e| CoreError::internal(&e))?;
        if let Some(err) = out.get("error") {
            return Err(js_error(err));
        }
        if let Some(Value::Object(r)) = out.get("record") {
            *change.record = r.clone();
        }
        Ok(())
    }
}

impl RecordHook for JsRecordHook {
    fn before_create(
        &self,
        c: &mut dyn Conn,
        ctx: &WriteCtx,
        change: &mut galley_core::context::Change<'_>,
    ) -> Result<(), CoreError> {
        self.validate(c, ctx, change)
    }

    fn before_update(
        &self,
        c: &mut dyn Conn,
        ctx: &WriteCtx,
        change: &mut galley_core::context::Change<'_>,
    ) -> Result<(), CoreError> {
        self.validate(c, ctx, change)
    }

    fn wraps(&self, op: WriteOp, col: &Collection) -> bool {
        !self
            .0
            .registry()
            .handlers(event(op), &col.name, &col.id)
            .is_empty()
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
        let shared = &self.0;
        let ids = shared.registry().handlers(event(op), &col.name, &col.id);
        // `e.record.original()` of an update is the stored record.
        let extra = match op {
            WriteOp::Update => {
                let id = record.get("id").and_then(Value::as_str).unwrap_or_default();
                let old = galley_core::records::system::find_by_id(c, col, id)?;
                json!({ "original": old }).to_string()
            }
            _ => "{}".to_owned(),
        };
        let args = vec![
            event(op).to_owned(),
            json!(ids).to_string(),
            shared.collection_json_of(&ctx.schema, col).to_string(),
            Value::Object(record.clone()).to_string(),
            extra,
        ];
        let (out, _) = ops::with_local(c, ctx, Some(next), || {
            engine::with(shared, |js| engine::call(js, "record", args))
        });
        let out: Value = serde_json::from_str(&out.map_err(engine_error)?)
            .map_err(|e| CoreError::internal(&e))?;
        if let Some(err) = out.get("error") {
            return Err(js_error(err));
        }
        if let Some(Value::Object(r)) = out.get("record") {
            *record = r.clone();
        }
        Ok(())
    }

    fn wants_committed(&self) -> bool {
        let reg = self.0.registry();
        [
            "onRecordAfterCreateSuccess",
            "onRecordAfterUpdateSuccess",
            "onRecordAfterDeleteSuccess",
        ]
        .iter()
        .any(|e| reg.listens(e))
    }

    fn committed(&self, events: &[RecordEvent]) {
        let shared = &self.0;
        let Some(app) = shared.app() else { return };
        let schema = app.schema();
        let reg = shared.registry();
        for ev in events {
            let name = match ev.op() {
                WriteOp::Create => "onRecordAfterCreateSuccess",
                WriteOp::Update => "onRecordAfterUpdateSuccess",
                WriteOp::Delete => "onRecordAfterDeleteSuccess",
            };
            let Some(col) = schema.find(&ev.collection_id) else {
                continue;
            };
            let ids = reg.handlers(name, &col.name, &col.id);
            if ids.is_empty() {
                continue;
            }
            let payload = json!({"collection": &*shared.collection_json(col), "record": ev.record})
                .to_string();
            let r = engine::with(shared, |js| {
                engine::call(js, "plain", vec![json!(ids).to_string(), payload])
            });
            log_plain(name, r);
        }
    }
}

pub(crate) fn log_plain(what: &str, r: Result<String, EngineError>) {
    match r.map(|s| serde_json::from_str::<Value>(&s)) {
        Ok(Ok(v)) => {
            if let Some(err) = v.get("error") {
                tracing::error!(target: "hooks", event = what, error = %err, "hook failed");
            }
        }
        Ok(Err(e)) => tracing::error!(target: "hooks", event = what, error = %e, "hook failed"),
        Err(e) => tracing::error!(target: "hooks", event = what, error = %e, "hook failed"),
    }
}

/// Runs the `onBootstrap`, `onServe` or `onTerminate` handlers once, with `fields` on
/// `e`; a failure of the first two stops the start.
pub(crate) async fn bootstrap(
    shared: &Arc<Shared>,
    event: &str,
    fields: Value,
) -> Result<(), CoreError> {
    let ids = shared.registry().handlers(event, "", "");
    if ids.is_empty() {
        return Ok(());
    }
    on_pool(shared, move |s| {
        engine::with(s, |js| {
            engine::call(
                js,
                "plain",
                vec![json!(ids).to_string(), fields.to_string()],
            )
        })
    })
    .await
    .map(|_| ())
}

/// Runs `call` (one engine call) on the pool and reads its JSON answer; a JavaScript
/// failure in it (`{"error": ...}`) is the error.
pub(crate) async fn on_pool(
    shared: &Arc<Shared>,
    call: impl FnOnce(&Arc<Shared>) -> Result<String, EngineError> + Send + 'static,
) -> Result<Value, CoreError> {
    let s = shared.clone();
    let out = shared
        .pool
        .run(move || call(&s))
        .await
        .ok_or_else(|| CoreError::Internal("hooks pool stopped".into()))?
        .map_err(engine_error)?;
    let v: Value = serde_json::from_str(&out).map_err(|e| CoreError::internal(&e))?;
    match v.get("error") {
        Some(err) => Err(js_error(err)),
        None => Ok(v),
    }
}
