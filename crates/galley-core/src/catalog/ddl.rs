//! DDL for record tables, through the dialect. Identifiers come only from validated
//! collection and field names and are always quoted.

use crate::error::CoreError;
use galley_sql::Dialect;
use galley_types::index::IndexDef;
use galley_types::{Collection, Field};

pub fn column_def(d: &Dialect, f: &Field) -> String {
    if f.is_primary_key() {
        format!("{} {}", d.quote(&f.name), d.primary_key_def())
    } else {
        format!("{} {}", d.quote(&f.name), d.column_def(f.column_type()))
    }
}

pub fn create_table(d: &Dialect, col: &Collection) -> String {
    let mut cols: Vec<String> = col.fields.iter().map(|f| column_def(d, f)).collect();
    if let Some(r) = d.rowid_column_def() {
        cols.push(r.to_owned());
    }
    format!("CREATE TABLE {} ({})", d.quote(&col.name), cols.join(", "))
}

pub fn index_statements(d: &Dialect, col: &Collection) -> Result<Vec<String>, CoreError> {
    col.indexes
        .iter()
        .map(|s| {
            IndexDef::parse(s)
                .map(|i| i.to_sql(d, &col.name))
                .map_err(|e| CoreError::Internal(format!("stored index {s:?} is invalid: {e}")))
        })
        .collect()
}

pub fn drop_index_statements(d: &Dialect, col: &Collection) -> Vec<String> {
    col.indexes
        .iter()
        .filter_map(|s| IndexDef::parse(s).ok())
        .map(|i| format!("DROP INDEX IF EXISTS {}", d.quote(&i.name)))
        .collect()
}
