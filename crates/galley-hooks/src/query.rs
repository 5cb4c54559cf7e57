//! `$app.db().newQuery(sql).bind({...}).all()/one()/execute()`: the hook's own SQL, with
//! values only as bound parameters (`{:name}` placeholders), never spliced into the text.

use galley_core::CoreError;
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt};
use serde_json::{json, Map, Value};

/// Rows one query may return to a hook (a bound on the memory a hook can pull in).
const MAX_ROWS: usize = 100_000;

fn param(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Int(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

fn build(c: &dyn Conn, text: &str, params: &Map<String, Value>) -> Result<Sql, CoreError> {
    let mut sql = Sql::new(c.dialect());
    let mut rest = text;
    while let Some(i) = rest.find("{:") {
        let Some(j) = rest[i..].find('}') else { break };
        let name = &rest[i + 2..i + j];
        if name.is_empty()
            || !name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            sql.push(&rest[..i + 2]);
            rest = &rest[i + 2..];
            continue;
        }
        let v = params
            .get(name)
            .ok_or_else(|| CoreError::bad_request(format!("Missing query parameter {name:?}.")))?;
        sql.push(&rest[..i]);
        sql.push_param(param(v));
        rest = &rest[i + j + 1..];
    }
    sql.push(rest);
    Ok(sql)
}

fn value(v: SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Int(i) => json!(i),
        SqlValue::Real(f) => json!(f),
        SqlValue::Text(s) => Value::String(s),
        SqlValue::Bool(b) => Value::Bool(b),
        SqlValue::Json(j) => j,
        SqlValue::Timestamp(t) => json!(galley_types::datetime::format(&t)),
    }
}

pub(crate) fn run(
    c: &mut dyn Conn,
    text: &str,
    params: &Map<String, Value>,
    mode: &str,
) -> Result<Value, CoreError> {
    let sql = build(c, text, params)?;
    if mode == "execute" {
        let n = c
            .execute_sql(&sql)
            .map_err(|e| CoreError::bad_request(format!("Query failed: {e}")))?;
        return Ok(json!({ "rowsAffected": n }));
    }
    let rows = c
        .query_sql(&sql)
        .map_err(|e| CoreError::bad_request(format!("Query failed: {e}")))?;
    if rows.len() > MAX_ROWS {
        return Err(CoreError::bad_request(format!(
            "The query returned more than {MAX_ROWS} rows; add a LIMIT."
        )));
    }
    let take = if mode == "one" { 1 } else { rows.len() };
    Ok(Value::Array(
        rows.into_iter()
            .take(take)
            .map(|r| {
                let cols = r.columns.clone();
                Value::Object(
                    cols.iter()
                        .cloned()
                        .zip(r.values.into_iter().map(value))
                        .collect(),
                )
            })
            .collect(),
    ))
}
