//! SQLite: dynamically typed values, dates and JSON stored as text, one node.

use super::{is_index, Dialect, Engine};
use crate::{ColumnType, SqlValue};

pub static SQLITE: Dialect = Dialect {
    engine: &Sqlite,
    placeholder: '?',
};

#[derive(Debug)]
struct Sqlite;

impl Engine for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn column_def(&self, ty: ColumnType) -> &'static str {
        match ty {
            ColumnType::Text => "TEXT DEFAULT '' NOT NULL",
            ColumnType::Number => "NUMERIC DEFAULT 0 NOT NULL",
            ColumnType::Bool => "BOOLEAN DEFAULT FALSE NOT NULL",
            ColumnType::Timestamp => "TEXT DEFAULT '' NOT NULL",
            ColumnType::Json => "JSON DEFAULT NULL",
            ColumnType::JsonArray => "JSON DEFAULT '[]' NOT NULL",
            ColumnType::JsonPoint => "JSON DEFAULT '{\"lon\":0,\"lat\":0}' NOT NULL",
        }
    }

    fn rowid_column_def(&self) -> Option<&'static str> {
        None
    }

    fn rowid(&self) -> &'static str {
        "_rowid_"
    }

    fn migration_lock(&self) -> Option<&'static str> {
        // The single writer thread already serialises every write.
        None
    }

    fn notify(&self) -> Option<&'static str> {
        None
    }

    fn empty_timestamp(&self) -> SqlValue {
        SqlValue::Text(String::new())
    }

    fn nocase_index_key(&self, quoted: &str) -> String {
        format!("{quoted} COLLATE NOCASE")
    }

    fn bool_literal(&self, b: bool) -> &'static str {
        if b {
            "1"
        } else {
            "0"
        }
    }

    fn dynamic_typing(&self) -> bool {
        true
    }

    fn param_cast(&self, _ty: ColumnType) -> &'static str {
        ""
    }

    fn json_param(&self, doc: serde_json::Value) -> SqlValue {
        SqlValue::Text(doc.to_string())
    }

    fn to_text(&self, expr: &str, _ty: ColumnType) -> String {
        expr.to_owned()
    }

    fn to_number(&self, expr: &str, _ty: ColumnType) -> Option<String> {
        Some(expr.to_owned())
    }

    fn null_safe_op(&self, eq: bool) -> &'static str {
        if eq {
            "IS"
        } else {
            "IS NOT"
        }
    }

    fn null_safe_eq(&self, x: &str, y: &str, eq: bool) -> String {
        format!("{x} {} {y}", self.null_safe_op(eq))
    }

    fn not_empty_text(&self, x: &str) -> String {
        format!("({x} IS NOT '' AND {x} IS NOT NULL)")
    }

    fn like(&self) -> &'static str {
        // ASCII case-insensitive by default.
        "LIKE"
    }

    fn rejects_dangling_like_escape(&self) -> bool {
        false
    }

    fn now(&self) -> &'static str {
        "strftime('%Y-%m-%d %H:%M:%fZ')"
    }

    fn clamp_unit(&self, x: &str) -> String {
        format!("MIN(1.0, MAX(-1.0, {x}))")
    }

    fn strftime_format(&self, fmt: &str) -> Option<String> {
        Some(fmt.to_owned())
    }

    fn strftime(&self, fmt: &str, time: &str, modifiers: &[String]) -> Option<String> {
        let mut s = format!("strftime({fmt}, {time}");
        for m in modifiers {
            s.push_str(", ");
            s.push_str(m);
        }
        s.push(')');
        Some(s)
    }

    fn nulls_order(&self, _desc: bool) -> &'static str {
        ""
    }

    fn skip_locked(&self) -> &'static str {
        ""
    }

    fn optimize(&self) -> &'static str {
        "PRAGMA optimize"
    }

    fn serial_key_def(&self) -> &'static str {
        "INTEGER PRIMARY KEY AUTOINCREMENT"
    }

    fn xact_horizon(&self) -> Option<&'static str> {
        None
    }

    fn binary_collation(&self) -> &'static str {
        ""
    }

    fn json_each(&self, expr: &str, quoted_alias: &str) -> String {
        format!("json_each({expr}) {quoted_alias}")
    }

    fn json_array_length(&self, expr: &str) -> String {
        format!(
            "(CASE WHEN json_valid({expr}) AND json_type({expr}) = 'array' THEN json_array_length({expr}) ELSE 0 END)"
        )
    }

    fn json_array_contains(&self, col: &str, param: &str) -> String {
        format!(
            "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid({col}) THEN {col} ELSE '[]' END) WHERE json_each.value = {param})"
        )
    }

    fn json_extract(&self, expr: &str, segments: &[String]) -> String {
        let mut path = String::from("$");
        for s in segments {
            // Unlike json_value, an empty segment counts as an index here (`$[]`).
            if s.chars().all(|c| c.is_ascii_digit()) {
                path.push('[');
                path.push_str(s);
                path.push(']');
            } else {
                path.push('.');
                path.push('"');
                path.push_str(&s.replace('"', ""));
                path.push('"');
            }
        }
        format!("JSON_EXTRACT({expr}, '{}')", path.replace('\'', "''"))
    }

    fn json_value(&self, expr: &str, segments: &[String]) -> String {
        let mut path = String::from("$");
        for s in segments {
            if is_index(s) {
                path.push('[');
                path.push_str(s);
                path.push(']');
            } else {
                path.push('.');
                path.push_str(s);
            }
        }
        format!("JSON_EXTRACT({expr}, '{}')", path.replace('\'', "''"))
    }
}
