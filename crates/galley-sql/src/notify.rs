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

impl Dialect {
    /// The stored value of an empty date: `''` on SQLite (as PocketBase stores it), NULL on
    /// PostgreSQL, whose timestamptz has no empty string.
    pub fn empty_timestamp(&self) -> crate::SqlValue {
        match self.engine {
            Engine::Sqlite => crate::SqlValue::Text(String::new()),
            Engine::Postgres => crate::SqlValue::Null,
        }
    }

    /// A case-insensitive index key over a quoted column: `COLLATE NOCASE` on SQLite, an
    /// expression index on `LOWER(col)` on PostgreSQL.
    pub fn nocase_index_key(&self, quoted: &str) -> String {
        match self.engine {
            Engine::Sqlite => format!("{quoted} COLLATE NOCASE"),
            Engine::Postgres => format!("(LOWER({quoted}))"),
        }
    }
}
