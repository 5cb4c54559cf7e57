use chrono::{DateTime, Utc};

/// A value bound to a statement or read back from a row.
///
/// The variants are engine-neutral: each engine maps them to its native representation
/// (SQLite stores `Bool` as 0/1, `Timestamp` and `Json` as text; PostgreSQL uses boolean,
/// timestamptz and jsonb).
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
    Json(serde_json::Value),
    Timestamp(DateTime<Utc>),
}

impl SqlValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            SqlValue::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, SqlValue::Null)
    }

    /// The value as an integer where that is lossless (booleans count as 0/1).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            SqlValue::Int(i) => Some(*i),
            SqlValue::Real(f) if f.fract() == 0.0 => Some(*f as i64),
            SqlValue::Bool(b) => Some(*b as i64),
            SqlValue::Text(s) => s.parse().ok(),
            _ => None,
        }
    }
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> Self {
        SqlValue::Text(s.to_owned())
    }
}
impl From<String> for SqlValue {
    fn from(s: String) -> Self {
        SqlValue::Text(s)
    }
}
impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Int(v)
    }
}
impl From<f64> for SqlValue {
    fn from(v: f64) -> Self {
        SqlValue::Real(v)
    }
}
impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Bool(v)
    }
}
impl From<Option<String>> for SqlValue {
    fn from(v: Option<String>) -> Self {
        v.map_or(SqlValue::Null, SqlValue::Text)
    }
}

/// The logical type of a column, mapped to a native type by each dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text that is never NULL, `''` when empty.
    Text,
    /// A double precision number, 0 by default.
    Number,
    /// A boolean, false by default.
    Bool,
    /// A point in time; empty is NULL on PostgreSQL and `''` on SQLite.
    Timestamp,
    /// JSON that may be NULL (json fields).
    Json,
    /// A JSON array that defaults to `[]` (multi-value select/relation/file).
    JsonArray,
    /// A JSON object with a given default (geoPoint).
    JsonPoint,
}
