//! Applying a submitted body to a record: plain keys, the `field+` / `+field` / `field-`
//! modifiers and `field:autogenerate`, with PocketBase's loose casting.

use galley_types::field::{string_list, FieldKind};
use galley_types::{Collection, Field, FieldError, FieldErrors};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Set,
    Append,
    Prepend,
    Subtract,
    Autogenerate,
}

fn split_key(key: &str) -> (&str, Op) {
    if let Some(n) = key.strip_suffix(":autogenerate") {
        (n, Op::Autogenerate)
    } else if let Some(n) = key.strip_prefix('+') {
        (n, Op::Prepend)
    } else if let Some(n) = key.strip_suffix('+') {
        (n, Op::Append)
    } else if let Some(n) = key.strip_suffix('-') {
        (n, Op::Subtract)
    } else {
        (key, Op::Set)
    }
}

/// Fields a client may never write directly.
fn client_writable(col: &Collection, f: &Field, superuser: bool) -> bool {
    if matches!(f.kind, FieldKind::Autodate(_) | FieldKind::Password(_)) {
        return false;
    }
    if col.is_auth() && f.name == "tokenKey" {
        return false;
    }
    !f.hidden || superuser
}

/// Applies `input` to `values` (the record's current or zero values). Returns the
/// per-field casting errors; validation of the result is separate.
pub fn apply(
    col: &Collection,
    values: &mut Map<String, Value>,
    input: &Map<String, Value>,
    is_create: bool,
    superuser: bool,
) -> FieldErrors {
    let mut errors = FieldErrors::new();
    let mut entries: Vec<(&String, &Value)> = input.iter().collect();
    // Shorter keys first: `views` before `views+`, as PocketBase applies them.
    entries.sort_by_key(|(k, _)| k.len());
    for (key, raw) in entries {
        let (name, op) = split_key(key);
        let Some(f) = col.field_ci(name) else {
            continue;
        };
        if f.name == "id" && !is_create {
            continue;
        }
        if !client_writable(col, f, superuser) {
            continue;
        }
        let current = values
            .get(&f.name)
            .cloned()
            .unwrap_or_else(|| f.zero_value());
        let next = match op {
            Op::Set => f.prepare(raw),
            Op::Autogenerate => match &f.kind {
                FieldKind::Text(o) if !o.autogenerate_pattern.is_empty() => {
                    let base = raw.as_str().unwrap_or_default();
                    let gen = galley_types::ids::generate_from_pattern(&o.autogenerate_pattern)
                        .unwrap_or_default();
                    Ok(json!(format!("{base}{gen}")))
                }
                _ => continue,
            },
            Op::Append | Op::Prepend | Op::Subtract => match modify(f, &current, raw, op) {
                Some(r) => r,
                None => continue,
            },
        };
        match next {
            Ok(v) => {
                values.insert(f.name.clone(), v);
            }
            Err(e) => errors.add(&f.name, e),
        }
    }
    errors
}

fn modify(f: &Field, current: &Value, raw: &Value, op: Op) -> Option<Result<Value, FieldError>> {
    match &f.kind {
        FieldKind::Number(_) => {
            let delta = match f.prepare(raw) {
                Ok(v) => v.as_f64().unwrap_or(0.0),
                Err(e) => return Some(Err(e)),
            };
            let cur = current.as_f64().unwrap_or(0.0);
            let n = if op == Op::Subtract {
                cur - delta
            } else {
                cur + delta
            };
            Some(Ok(galley_types::field::number_json(n)))
        }
        FieldKind::Select(_) | FieldKind::Relation(_) | FieldKind::File(_) => {
            let mut list = string_list(current);
            let items = string_list(raw);
            match op {
                Op::Append => list.extend(items),
                Op::Prepend => {
                    let mut l = items;
                    l.extend(list);
                    list = l;
                }
                _ => list.retain(|x| !items.contains(x)),
            }
            Some(f.prepare(&Value::Array(list.into_iter().map(Value::String).collect())))
        }
        _ => None,
    }
}
