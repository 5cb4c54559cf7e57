use super::{Caller, RequestMeta};
use crate::error::CoreError;
use galley_store::Conn;
use galley_types::{Collection, FieldErrors, Schema};
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};

/// A submitted record body; `password` plain text is replaced by its hash before the
/// write job runs, so no hashing happens on the writer.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub values: Map<String, Value>,
    pub password_hash: Option<String>,
    /// Auth collections: the submitted `oldPassword`, and the stored hash it was verified
    /// against before the job (see `records::prepare_update`).
    pub old_password: Option<String>,
    pub old_password_verified: Option<String>,
    /// Names of the files uploaded with this request (already in storage).
    pub new_files: Vec<String>,
    /// The id a create uses when the body has none (chosen before the job when files must
    /// be stored under it).
    pub preset_id: Option<String>,
}

/// One committed change to a record.
#[derive(Debug, Clone)]
pub struct RecordEvent {
    pub action: &'static str,
    pub collection_id: String,
    /// Every field, hidden ones included (shaped per subscriber on delivery).
    pub record: Map<String, Value>,
}

impl RecordEvent {
    /// Which write made this event.
    pub fn op(&self) -> WriteOp {
        match self.action {
            "create" => WriteOp::Create,
            "update" => WriteOp::Update,
            _ => WriteOp::Delete,
        }
    }

    /// Empties a job's event list (after its commit), keeping the order.
    pub fn take(events: &Events) -> Vec<RecordEvent> {
        events
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }
}

/// Events a write job collects; published only if the job commits.
pub type Events = Arc<Mutex<Vec<RecordEvent>>>;

/// A file a write dropped, to remove from storage once the write commits.
#[derive(Debug, Clone, PartialEq)]
pub struct Removal {
    pub collection_id: String,
    pub record_id: String,
    pub name: String,
}

/// Removals collected by a write job (shared with its `WriteCtx`).
pub type Removals = Arc<Mutex<Vec<Removal>>>;

/// A record about to be written, as the write path hands it to a [`RecordHook`].
pub struct Change<'a> {
    pub collection: &'a Collection,
    /// The stored record, for an update.
    pub old: Option<&'a Map<String, Value>>,
    /// Every field's value as it will be written; hooks may change it.
    pub record: &'a mut Map<String, Value>,
    pub input: &'a Input,
    /// Field errors so far; a hook adds to them to refuse the write.
    pub errors: &'a mut FieldErrors,
}

/// A part of the server that takes part in every record write, inside the write job (so
/// whatever it reads or writes commits or rolls back with the record). Auth collections'
/// rules (`auth::records`) are one; server-side hooks attach here too. Every method
/// defaults to doing nothing.
pub trait RecordHook: Send + Sync {
    /// Before an insert is validated.
    fn before_create(
        &self,
        _c: &mut dyn Conn,
        _ctx: &WriteCtx,
        _change: &mut Change<'_>,
    ) -> Result<(), CoreError> {
        Ok(())
    }

    /// After the insert and the create rule, in the same transaction.
    fn after_create(
        &self,
        _c: &mut dyn Conn,
        _ctx: &WriteCtx,
        _col: &Collection,
        _record: &Map<String, Value>,
    ) -> Result<(), CoreError> {
        Ok(())
    }

    /// Before an update is validated (`change.old` is the stored record).
    fn before_update(
        &self,
        _c: &mut dyn Conn,
        _ctx: &WriteCtx,
        _change: &mut Change<'_>,
    ) -> Result<(), CoreError> {
        Ok(())
    }

    /// After the update is written, in the same transaction.
    fn after_update(
        &self,
        _c: &mut dyn Conn,
        _ctx: &WriteCtx,
        _col: &Collection,
        _old: &Map<String, Value>,
        _record: &Map<String, Value>,
    ) -> Result<(), CoreError> {
        Ok(())
    }

    /// Before a record is deleted (cascades included), in the same transaction; an error
    /// aborts the delete.
    fn before_delete(
        &self,
        _c: &mut dyn Conn,
        _ctx: &WriteCtx,
        _col: &Collection,
        _record: &Map<String, Value>,
    ) -> Result<(), CoreError> {
        Ok(())
    }

    /// After a record is deleted (cascades included), in the same transaction.
    fn after_delete(
        &self,
        _c: &mut dyn Conn,
        _ctx: &WriteCtx,
        _col: &Collection,
        _record: &Map<String, Value>,
    ) -> Result<(), CoreError> {
        Ok(())
    }

    /// Whether [`RecordHook::around`] does anything for this write: the write path skips
    /// the hook otherwise, so a hook that wraps nothing costs nothing.
    fn wraps(&self, _op: WriteOp, _col: &Collection) -> bool {
        false
    }

    /// Wraps the rest of one record's write (the other hooks, validation, the statement,
    /// the rule): a hook may change `record` before calling `next`, fail, or not call
    /// `next` at all, which skips the write without an error (PocketBase's semantics of a
    /// handler that does not call `e.next()`). Runs inside the transaction.
    fn around(
        &self,
        c: &mut dyn Conn,
        _ctx: &WriteCtx,
        _op: WriteOp,
        _col: &Collection,
        record: &mut Map<String, Value>,
        next: &mut Next<'_>,
    ) -> Result<(), CoreError> {
        next(c, record)
    }

    /// Whether [`RecordHook::committed`] wants the events of committed writes.
    fn wants_committed(&self) -> bool {
        false
    }

    /// After a write job committed, with its events in order; on a blocking thread, before
    /// the answer is sent (PocketBase's after-success hooks). Errors are the hook's to log.
    fn committed(&self, _events: &[RecordEvent]) {}
}

/// Which write a [`RecordHook::around`] wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    Create,
    Update,
    Delete,
}

/// The rest of a record write, as [`RecordHook::around`] receives it.
pub type Next<'a> = dyn FnMut(&mut dyn Conn, &mut Map<String, Value>) -> Result<(), CoreError> + 'a;

/// The hooks attached to the write path, in the order they run.
#[derive(Clone, Default)]
pub struct RecordHooks(Arc<Vec<Arc<dyn RecordHook>>>);

impl RecordHooks {
    pub fn new(hooks: Vec<Arc<dyn RecordHook>>) -> Self {
        RecordHooks(Arc::new(hooks))
    }

    /// These hooks followed by `more`.
    pub fn with(&self, more: impl IntoIterator<Item = Arc<dyn RecordHook>>) -> Self {
        RecordHooks(Arc::new(self.0.iter().cloned().chain(more).collect()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn RecordHook>> {
        self.0.iter()
    }

    pub fn as_slice(&self) -> &[Arc<dyn RecordHook>] {
        &self.0
    }

    /// Hands committed events to the hooks that want them, off the async threads.
    pub async fn committed(&self, events: &[RecordEvent]) {
        if events.is_empty() || !self.0.iter().any(|h| h.wants_committed()) {
            return;
        }
        let (hooks, events) = (self.clone(), events.to_vec());
        let _ = tokio::task::spawn_blocking(move || {
            for h in hooks.iter().filter(|h| h.wants_committed()) {
                h.committed(&events);
            }
        })
        .await;
    }
}

/// What a write job needs besides the connection.
#[derive(Clone)]
pub struct WriteCtx {
    pub schema: Arc<Schema>,
    pub caller: Caller,
    pub meta: RequestMeta,
    /// Record changes made by the job, published to realtime after it commits.
    pub events: Events,
    /// Files the job's updates dropped, removed from storage after it commits.
    pub removals: Removals,
    pub hooks: RecordHooks,
}

impl WriteCtx {
    pub fn new(
        schema: Arc<Schema>,
        hooks: RecordHooks,
        caller: &Caller,
        meta: &RequestMeta,
    ) -> Self {
        WriteCtx {
            schema,
            caller: caller.clone(),
            meta: meta.clone(),
            events: Default::default(),
            removals: Default::default(),
            hooks,
        }
    }

    /// The same job's context acting as `caller` (server-side code acting as the system
    /// inside a request's write): events and removals stay the job's.
    pub fn acting_as(&self, caller: Caller) -> WriteCtx {
        WriteCtx {
            caller,
            ..self.clone()
        }
    }

    /// Records a change for delivery after the commit.
    pub fn emit(&self, action: &'static str, collection: &Collection, record: &Map<String, Value>) {
        if let Ok(mut e) = self.events.lock() {
            e.push(RecordEvent {
                action,
                collection_id: collection.id.clone(),
                record: record.clone(),
            });
        }
    }

    /// Runs `next` inside every hook that wraps this write, outermost first.
    pub fn around(
        &self,
        c: &mut dyn Conn,
        op: WriteOp,
        col: &Collection,
        record: &mut Map<String, Value>,
        next: &mut Next<'_>,
    ) -> Result<(), CoreError> {
        fn step(
            hooks: &[Arc<dyn RecordHook>],
            ctx: &WriteCtx,
            c: &mut dyn Conn,
            op: WriteOp,
            col: &Collection,
            record: &mut Map<String, Value>,
            next: &mut Next<'_>,
        ) -> Result<(), CoreError> {
            match hooks.iter().position(|h| h.wraps(op, col)) {
                None => next(c, record),
                Some(i) => hooks[i].around(c, ctx, op, col, record, &mut |c, r| {
                    step(&hooks[i + 1..], ctx, c, op, col, r, next)
                }),
            }
        }
        step(self.hooks.as_slice(), self, c, op, col, record, next)
    }

    /// Runs `f` for every hook, stopping at the first error.
    pub fn each_hook(
        &self,
        mut f: impl FnMut(&dyn RecordHook) -> Result<(), CoreError>,
    ) -> Result<(), CoreError> {
        for h in self.hooks.iter() {
            f(h.as_ref())?;
        }
        Ok(())
    }
}
