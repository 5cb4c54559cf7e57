//! Hooks around record API requests (PocketBase's `onRecordCreateRequest`, ...): code above
//! galley-core (the JavaScript hooks) sees the request and its record, may change the
//! record before the service runs (`e.next()`), change the answer, or answer itself.
//! The API calls them; services know nothing of them.

use super::Request;
use crate::error::CoreError;
use galley_types::Collection;
use serde_json::{Map, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestEvent {
    List,
    View,
    Create,
    Update,
    Delete,
    Auth,
    /// `onRecordEnrich`: each record an answer carries.
    Enrich,
}

/// A record API request as hooks see it.
pub struct RecordRequest {
    pub event: RequestEvent,
    pub collection: Arc<Collection>,
    pub request: Request,
    /// Create: the submitted values; update and delete: the stored record (update: with the
    /// submitted values over it); view: the answer's record.
    pub record: Option<Map<String, Value>>,
    /// List and auth: the answer as the service made it.
    pub answer: Option<Value>,
    /// The request's path and query string, for `e.request`.
    pub path: String,
    pub query: String,
}

/// An answer a hook wrote itself (`e.json(...)`, `e.string(...)`, ...).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

pub enum Outcome {
    /// The answer of `next` (or, for list/view/auth, the answer as the hooks left it).
    Answer(Value),
    Reply(Reply),
}

/// The rest of the request: for create and update it receives the values the hooks set
/// on `e.record` (to submit over the body); for list, view and auth the answer as the
/// hooks left it; it returns the answer.
pub type NextRequest = Box<dyn FnOnce(Value) -> BoxFuture<Result<Value, CoreError>> + Send>;

pub trait RequestHooks: Send + Sync {
    /// Whether any hook listens to `event` on `col` (when not, the API skips the hooks).
    fn wraps(&self, event: RequestEvent, col: &Collection) -> bool;

    fn around(
        &self,
        req: RecordRequest,
        next: NextRequest,
    ) -> BoxFuture<Result<Outcome, CoreError>>;

    /// The records of an answer of `col` as the hooks leave them (`onRecordEnrich`: hide
    /// fields, add computed ones), in order.
    fn enrich(
        &self,
        col: Arc<Collection>,
        request: Request,
        records: Vec<Value>,
    ) -> BoxFuture<Result<Vec<Value>, CoreError>> {
        let _ = (col, request);
        Box::pin(async move { Ok(records) })
    }

    /// `onMailerSend`: a mail (`{to, subject, html}`) about to be sent, as the hooks leave
    /// it; `None` when a hook stopped it. Called by the mail job, so after the commit of
    /// the write that queued it.
    fn mail(&self, mail: Value) -> BoxFuture<Result<Option<Value>, CoreError>> {
        Box::pin(async move { Ok(Some(mail)) })
    }
}

/// Told of each collection change a superuser asked for (`collections::By::Request`) once
/// it is committed: `old` is `None` for a create, `new` is `None` for a delete. Code above
/// galley-core sets it (`App::set_schema_hook`); the automigrate of the JavaScript hooks is
/// one. Here on the floor, beside the other hooks, so that the App can hold it without
/// importing the collections service.
pub trait SchemaHook: Send + Sync {
    fn changed(
        &self,
        old: Option<galley_types::Collection>,
        new: Option<galley_types::Collection>,
    ) -> BoxFuture<Result<(), crate::error::CoreError>>;
}
