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

/// One lock per key, so that concurrent requests for one derived object (a thumbnail) wait
/// for the first one to make it instead of each making it.
#[derive(Default)]
pub struct KeyLocks {
    inner:
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// Keys whose object could not be made, newest last, at most [`MAX_FAILED`].
    failed: std::sync::Mutex<(
        std::collections::HashSet<String>,
        std::collections::VecDeque<String>,
    )>,
}

/// Most failed keys remembered (the oldest are forgotten first).
pub const MAX_FAILED: usize = 10_000;

impl KeyLocks {
    /// The lock of `key` (created on first use).
    pub fn get(&self, key: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(key.to_owned()).or_default().clone()
    }

    /// Forgets `key` once its object exists (later requests find the object).
    pub fn done(&self, key: &str) {
        if let Ok(mut m) = self.inner.lock() {
            m.remove(key);
        }
    }

    /// Remembers that `key`'s object cannot be made (the same input fails again), so later
    /// requests do not spend the work again; forgets its lock.
    pub fn failed(&self, key: &str) {
        self.done(key);
        let mut f = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if f.0.insert(key.to_owned()) {
            f.1.push_back(key.to_owned());
            while f.1.len() > MAX_FAILED {
                if let Some(old) = f.1.pop_front() {
                    f.0.remove(&old);
                }
            }
        }
    }

    /// Whether making `key`'s object failed before.
    pub fn has_failed(&self, key: &str) -> bool {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .contains(key)
    }
}
