//! Galley's file storage: where record files live (local disk or S3 through object_store),
//! how stored names are made, what type a file is, and thumbnails.
//! Knows nothing of HTTP, records or rules.

pub mod mime;
pub mod names;
pub mod storage;
#[cfg(feature = "thumbs")]
pub mod thumbs;

pub use object_store::path::Path as Key;
pub use storage::{Backend, ObjectMeta, S3Config, Storage};

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("file not found")]
    NotFound,
    #[error("storage is misconfigured: {0}")]
    Config(String),
    #[error("storage failed: {0}")]
    Backend(String),
    #[error("cannot make a thumbnail: {0}")]
    Image(String),
    #[error("storage i/o failed: {0}")]
    Io(#[from] std::io::Error),
}
