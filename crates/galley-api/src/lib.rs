//! Galley's HTTP API: one axum router per API group, merged in [`router`]. Handlers parse
//! input into domain types, call a `galley-core` service and shape the JSON; every error
//! becomes PocketBase's `{data, message, status}` in [`error`].
//!
//! The `galley` crate composes this router beside the dashboard's and puts the layers
//! around both: galley-http's shared ones and this crate's [`middleware`].
//!
//! Architecture invariant: no SQL and no business rule lives here.

pub mod error;
pub mod extract;
pub mod middleware;
mod routes;

use axum::Router;
use galley_core::App;
use std::sync::Arc;

pub type AppState = Arc<App>;

/// Every `/api/` route, without layers (see [`middleware`] for the API's own).
pub fn router() -> Router<AppState> {
    routes::router()
}
