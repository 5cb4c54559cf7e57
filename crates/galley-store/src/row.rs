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
        self.columns.iter().position(|c| c == name).map(|i| &self.values[i])
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
