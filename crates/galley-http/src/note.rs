//! What went wrong in a request, for the request log: the API's error answer puts an
//! [`ErrorNote`] in the response's extensions, and the log layer (galley-ops) copies it into
//! the entry as PocketBase's `error` and `details`. Never sent to the client.

/// The public message and, for internal errors, the detail that the answer hides.
#[derive(Debug, Clone, Default)]
pub struct ErrorNote {
    pub message: String,
    pub details: String,
}
