use galley_sql::SqlValue;
use std::sync::Arc;

/// One result row: column names (shared by all rows of a result) and values.
#[derive(Debug, Clone)]
pub struct Row {
    pub columns: Arc<[String]>,
    pub values: Vec<SqlValue>,
}

impl Row {
    pub fn get(&self, name: &str) -> Option<&SqlValue> {
        self.columns
            .iter()
            .position(|c| c == name)
            .map(|i| &self.values[i])
    }

    /// Removes and returns a column's value (cheap: no clone of large text).
    pub fn take(&mut self, name: &str) -> SqlValue {
        match self.columns.iter().position(|c| c == name) {
            Some(i) => std::mem::replace(&mut self.values[i], SqlValue::Null),
            None => SqlValue::Null,
        }
    }

    pub fn text(&self, name: &str) -> String {
        match self.get(name) {
            Some(SqlValue::Text(s)) => s.clone(),
            Some(SqlValue::Int(i)) => i.to_string(),
            Some(SqlValue::Real(f)) => f.to_string(),
            Some(SqlValue::Json(j)) => j.to_string(),
            Some(SqlValue::Timestamp(t)) => t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string(),
            Some(SqlValue::Bool(b)) => b.to_string(),
            _ => String::new(),
        }
    }

    pub fn opt_text(&self, name: &str) -> Option<String> {
        match self.get(name) {
            None | Some(SqlValue::Null) => None,
            Some(_) => Some(self.text(name)),
        }
    }

    pub fn int(&self, name: &str) -> i64 {
        self.get(name).and_then(SqlValue::as_i64).unwrap_or(0)
    }

    pub fn bool(&self, name: &str) -> bool {
        self.int(name) != 0
    }

    /// A JSON column, whether the engine returned JSON or JSON text.
    pub fn json(&self, name: &str) -> serde_json::Value {
        match self.get(name) {
            Some(SqlValue::Json(j)) => j.clone(),
            Some(SqlValue::Text(s)) => serde_json::from_str(s).unwrap_or(serde_json::Value::Null),
            _ => serde_json::Value::Null,
        }
    }
}

impl Row {
    /// A number column as `f64` whichever way the engine returned it (SQLite's NUMERIC
    /// affinity gives back `3` for `3.0`; PostgreSQL gives `3.0`).
    pub fn real(&self, name: &str) -> f64 {
        match self.get(name) {
            Some(SqlValue::Real(f)) => *f,
            Some(SqlValue::Int(i)) => *i as f64,
            Some(SqlValue::Bool(b)) => f64::from(u8::from(*b)),
            Some(SqlValue::Text(s)) => s.trim().parse().unwrap_or(0.0),
            _ => 0.0,
        }
    }

    /// A timestamp column: PostgreSQL returns `timestamptz`, SQLite the stored text
    /// (`2006-01-02 15:04:05.000Z`, or `''` for empty, which gives `None`).
    pub fn timestamp(&self, name: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.get(name) {
            Some(SqlValue::Timestamp(t)) => Some(*t),
            Some(SqlValue::Text(s)) => parse_timestamp(s),
            _ => None,
        }
    }
}

/// Parses the wire format `2006-01-02 15:04:05.000Z` and RFC 3339 (`T` separator, offsets).
pub(crate) fn parse_timestamp(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(&s.replacen(' ', "T", 1)))
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|| {
            // Naive forms without a zone are UTC.
            [
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S",
            ]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
            .map(|n| n.and_utc())
        })
}

/// The column names a unique index covers, from its column list as the engine reports it:
/// `title`, `"title" COLLATE NOCASE`, `LOWER("name")`, `lower((name)::text)`.
pub(crate) fn index_columns(list: &str) -> Vec<String> {
    split_top_level(list)
        .into_iter()
        .filter_map(|part| {
            // The innermost parenthesised text holds the column of an expression.
            let mut s = part.trim();
            while let (Some(open), Some(close)) = (s.rfind('('), s.find(')')) {
                if open < close {
                    s = &s[open + 1..close];
                } else {
                    break;
                }
            }
            let s = s.split("::").next().unwrap_or(s).trim();
            let ident = if let Some(rest) = s.strip_prefix('"') {
                rest.split('"').next().unwrap_or(rest)
            } else if let Some(rest) = s.strip_prefix('`') {
                rest.split('`').next().unwrap_or(rest)
            } else {
                s.split_whitespace().next().unwrap_or(s)
            };
            let ident = ident.rsplit('.').next().unwrap_or(ident).trim();
            (!ident.is_empty()).then(|| ident.to_owned())
        })
        .collect()
}

fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    let mut parts = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            '"' | '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_columns_of_expressions() {
        assert_eq!(index_columns("title"), ["title"]);
        assert_eq!(index_columns("a, b"), ["a", "b"]);
        assert_eq!(index_columns("\"title\" COLLATE NOCASE"), ["title"]);
        assert_eq!(index_columns("LOWER(\"name\")"), ["name"]);
        assert_eq!(index_columns("lower((name)::text)"), ["name"]);
        assert_eq!(
            index_columns("lower(name::text), \"Slug\""),
            ["name", "Slug"]
        );
        assert_eq!(index_columns("posts.title"), ["title"]);
    }

    #[test]
    fn timestamps_parse() {
        let t = parse_timestamp("2024-01-02 03:04:05.678Z").expect("wire format");
        assert_eq!(t.timestamp_millis(), 1_704_164_645_678);
        assert_eq!(parse_timestamp("2024-01-02T03:04:05.678+00:00"), Some(t));
        assert_eq!(parse_timestamp("2024-01-02 03:04:05.678"), Some(t));
        assert_eq!(parse_timestamp(""), None);
        assert_eq!(parse_timestamp("soon"), None);
    }
}
