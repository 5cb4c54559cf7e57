//! Galley's pure domain model: collections and their fields, the validation and
//! normalisation of record values, ids and the wire datetime format. No IO, no async.
//!
//! Architecture invariant: nothing here knows HTTP or a particular database; field values
//! cross into SQL only as [`galley_sql::SqlValue`].

pub mod collection;
pub mod datetime;
pub mod error;
pub mod field;
pub mod ids;
pub mod index;
pub mod net;
pub mod schema;

pub use collection::{AuthOptions, Collection, CollectionType, Rules};
pub use error::{FieldError, FieldErrors};
pub use field::{Field, FieldKind};
pub use schema::Schema;
