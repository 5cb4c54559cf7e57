use crate::{Dialect, Engine};

impl Dialect {
    /// The statement that publishes `(channel, payload)` to every node when the current
    /// transaction commits; `None` where there is only one node (SQLite).
    pub fn notify(&self) -> Option<&'static str> {
        match self.engine {
            Engine::Sqlite => None,
            Engine::Postgres => Some("SELECT pg_notify($1::text, $2::text)"),
        }
    }
}
