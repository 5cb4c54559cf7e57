use super::Caller;
use serde_json::{Map, Value};

/// The parts of a request that rules may look at (`@request.*`).
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub method: String,
    pub context: String,
    pub query: Map<String, Value>,
    pub headers: Map<String, Value>,
}

/// One request as services see it: who asks, and what rules may read of the request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub caller: Caller,
    pub meta: RequestMeta,
}

impl Request {
    pub fn new(caller: Caller, meta: RequestMeta) -> Self {
        Request { caller, meta }
    }

    /// A request made by the server itself on behalf of `caller` (CLI, dashboard, flows).
    pub fn internal(caller: Caller, method: &str) -> Self {
        Request {
            caller,
            meta: RequestMeta {
                method: method.into(),
                context: "default".into(),
                ..Default::default()
            },
        }
    }
}
