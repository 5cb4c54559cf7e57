/// Store failures, engine-neutral. The API maps `Unavailable` to 503 and
/// `UniqueViolation` to a `validation_not_unique` field error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// A unique index was violated; `columns` names the columns when the engine says so.
    #[error("unique constraint failed: {columns:?}")]
    UniqueViolation { columns: Vec<String> },
    /// The database cannot be reached right now (connection refused, restarting, no free
    /// connection within the pool's wait timeout, SQLite file locked by another process).
    /// Transient: the same call may succeed later; the store recovers by itself.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The store is shutting down.
    #[error("database is closed")]
    Closed,
    /// Bad configuration, with what to fix.
    #[error("{0}")]
    Config(String),
    /// A read ran past the store's time limit ([`crate::Store::set_read_timeout`]) and
    /// was stopped.
    #[error("the query ran past the time limit")]
    TimedOut,
    /// A statement failed (bad SQL, constraint other than unique, IO).
    #[error("database error: {0}")]
    Query(String),
}
