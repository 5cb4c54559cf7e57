//! `{:name}` placeholders of a filter replaced by literals of the language, as PocketBase's
//! `findRecordsByFilter(..., params)` binds them: a value can never change the filter's
//! structure, because it becomes one quoted string, number, boolean or `null` token.

use crate::error::ExprError;
use serde_json::{Map, Value};

/// Replaces every `{:name}` in `filter` with `params[name]` as a literal; a placeholder
/// without a value is an error naming it.
pub fn bind_params(filter: &str, params: &Map<String, Value>) -> Result<String, ExprError> {
    let mut out = String::with_capacity(filter.len());
    let mut rest = filter;
    while let Some(start) = rest.find("{:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push_str("{:");
            rest = after;
            continue;
        }
        let pos = filter.len() - rest.len() + start;
        let value = params
            .get(name)
            .ok_or_else(|| ExprError::invalid(pos, format!("missing parameter {name:?}")))?;
        literal(value, &mut out);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn literal(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => quoted(s, out),
        other => quoted(&other.to_string(), out),
    }
}

fn quoted(s: &str, out: &mut String) {
    out.push('\'');
    for ch in s.chars() {
        if ch == '\'' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bind(f: &str, p: Value) -> Result<String, ExprError> {
        bind_params(f, p.as_object().unwrap())
    }

    #[test]
    fn values_become_single_tokens() {
        assert_eq!(
            bind(
                "a = {:a} && b > {:b} && c = {:c} && d = {:d}",
                json!({"a": "x' || 1=1 || '", "b": 2.5, "c": true, "d": null})
            )
            .unwrap(),
            r"a = 'x\' || 1=1 || \'' && b > 2.5 && c = true && d = null"
        );
        assert_eq!(bind(r"a = {:a}", json!({"a": r"\"})).unwrap(), r"a = '\\'");
        let ast = crate::parse(&bind("title = {:t}", json!({"t": "it's"})).unwrap()).unwrap();
        assert_eq!(format!("{ast:?}").matches("it's").count(), 1);
    }

    #[test]
    fn missing_and_malformed_placeholders() {
        assert!(bind("a = {:nope}", json!({})).is_err());
        assert_eq!(
            bind("a = '{:' && b = '{x}'", json!({})).unwrap(),
            "a = '{:' && b = '{x}'"
        );
        assert_eq!(bind("a = {:a", json!({"a": 1})).unwrap(), "a = {:a");
    }
}
