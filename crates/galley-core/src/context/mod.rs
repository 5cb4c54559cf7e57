//! The floor of galley-core: the values every service takes and none of them owns — who is
//! calling ([`Caller`]), what the request carries for rules ([`RequestMeta`], bundled with
//! the caller as [`Request`]), paging ([`Page`], [`ListResult`]) and what a write job carries
//! ([`WriteCtx`]: the input, the record events and file removals it collects, and the
//! [`RecordHook`]s other modules attach to the write path).
//!
//! Architecture invariant: nothing in here imports another module of galley-core except
//! `error`; every service module may import this one.

mod caller;
mod page;
mod request;
pub mod request_hooks;
mod write;

pub use caller::Caller;
pub use page::{ListResult, Page};
pub use request::{Request, RequestMeta};
pub use write::{
    Change, Events, Input, Next, RecordEvent, RecordHook, RecordHooks, Removal, Removals, WriteCtx,
    WriteOp,
};
