//! Field definitions (PocketBase's JSON shape) and the normalisation and validation of the
//! values stored in them.

use crate::datetime;
use crate::error::FieldError;
use galley_sql::{ColumnType, Dialect, SqlValue};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Largest JSON nesting depth accepted in a json field (PocketBase has none; DESIGN §16).
pub const MAX_JSON_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Field {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub presentable: bool,
    #[serde(default)]
    pub help: String,
    #[serde(flatten)]
    pub kind: FieldKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FieldKind {
    Text(TextOptions),
    Number(NumberOptions),
    Bool(RequiredOnly),
    Email(DomainOptions),
    Url(DomainOptions),
    Editor(EditorOptions),
    Date(DateOptions),
    Autodate(AutodateOptions),
    Select(SelectOptions),
    Json(JsonOptions),
    Relation(RelationOptions),
    File(FileOptions),
    GeoPoint(RequiredOnly),
    Password(PasswordOptions),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TextOptions {
    pub autogenerate_pattern: String,
    pub max: i64,
    pub min: i64,
    pub pattern: String,
    pub primary_key: bool,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NumberOptions {
    pub max: Option<f64>,
    pub min: Option<f64>,
    pub only_int: bool,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RequiredOnly {
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DomainOptions {
    #[serde(serialize_with = "list_or_empty")]
    pub except_domains: Option<Vec<String>>,
    #[serde(serialize_with = "list_or_empty")]
    pub only_domains: Option<Vec<String>>,
    pub required: bool,
}

/// PocketBase prints unset domain lists as `[]`, never `null`.
fn list_or_empty<S: serde::Serializer>(v: &Option<Vec<String>>, s: S) -> Result<S::Ok, S::Error> {
    v.as_deref().unwrap_or_default().serialize(s)
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EditorOptions {
    #[serde(rename = "convertURLs")]
    pub convert_urls: bool,
    pub max_size: i64,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DateOptions {
    pub max: String,
    pub min: String,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AutodateOptions {
    pub on_create: bool,
    pub on_update: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SelectOptions {
    pub max_select: i64,
    pub required: bool,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct JsonOptions {
    pub max_size: i64,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RelationOptions {
    pub cascade_delete: bool,
    pub collection_id: String,
    pub max_select: i64,
    pub min_select: i64,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FileOptions {
    pub max_select: i64,
    pub max_size: i64,
    pub mime_types: Vec<String>,
    pub protected: bool,
    pub required: bool,
    pub thumbs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PasswordOptions {
    pub cost: i64,
    pub max: i64,
    pub min: i64,
    pub pattern: String,
    pub required: bool,
}

impl Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl Field {
    pub fn new(name: &str, kind: FieldKind) -> Field {
        let mut f = Field {
            id: String::new(),
            name: name.to_owned(),
            system: false,
            hidden: false,
            presentable: false,
            help: String::new(),
            kind,
        };
        f.id = crate::ids::field_id(f.type_name(), name);
        f
    }

    pub fn system(mut self) -> Field {
        self.system = true;
        self
    }

    pub fn hidden(mut self) -> Field {
        self.hidden = true;
        self
    }

    /// The field as PocketBase's JSON (keys sorted as PocketBase prints them).
    pub fn to_json(&self) -> Value {
        let mut m = match serde_json::to_value(&self.kind) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        m.insert("id".into(), json!(self.id));
        m.insert("name".into(), json!(self.name));
        m.insert("system".into(), json!(self.system));
        m.insert("hidden".into(), json!(self.hidden));
        m.insert("presentable".into(), json!(self.presentable));
        if !matches!(self.kind, FieldKind::Autodate(_)) {
            m.insert("help".into(), json!(self.help));
        }
        let mut keys: Vec<_> = m.into_iter().collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        Value::Object(keys.into_iter().collect())
    }

    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            FieldKind::Text(_) => "text",
            FieldKind::Number(_) => "number",
            FieldKind::Bool(_) => "bool",
            FieldKind::Email(_) => "email",
            FieldKind::Url(_) => "url",
            FieldKind::Editor(_) => "editor",
            FieldKind::Date(_) => "date",
            FieldKind::Autodate(_) => "autodate",
            FieldKind::Select(_) => "select",
            FieldKind::Json(_) => "json",
            FieldKind::Relation(_) => "relation",
            FieldKind::File(_) => "file",
            FieldKind::GeoPoint(_) => "geoPoint",
            FieldKind::Password(_) => "password",
        }
    }

    /// Whether the field holds several values (a JSON array of strings).
    pub fn is_multiple(&self) -> bool {
        match &self.kind {
            FieldKind::Select(o) => o.max_select > 1,
            FieldKind::Relation(o) => o.max_select > 1,
            FieldKind::File(o) => o.max_select > 1,
            _ => false,
        }
    }

    pub fn is_required(&self) -> bool {
        match &self.kind {
            FieldKind::Text(o) => o.required,
            FieldKind::Number(o) => o.required,
            FieldKind::Bool(o) | FieldKind::GeoPoint(o) => o.required,
            FieldKind::Email(o) | FieldKind::Url(o) => o.required,
            FieldKind::Editor(o) => o.required,
            FieldKind::Date(o) => o.required,
            FieldKind::Autodate(_) => false,
            FieldKind::Select(o) => o.required,
            FieldKind::Json(o) => o.required,
            FieldKind::Relation(o) => o.required,
            FieldKind::File(o) => o.required,
            FieldKind::Password(o) => o.required,
        }
    }

    pub fn is_primary_key(&self) -> bool {
        matches!(&self.kind, FieldKind::Text(o) if o.primary_key)
    }

    pub fn relation(&self) -> Option<&RelationOptions> {
        match &self.kind {
            FieldKind::Relation(o) => Some(o),
            _ => None,
        }
    }

    pub fn column_type(&self) -> ColumnType {
        if self.is_multiple() {
            return ColumnType::JsonArray;
        }
        match &self.kind {
            FieldKind::Number(_) => ColumnType::Number,
            FieldKind::Bool(_) => ColumnType::Bool,
            FieldKind::Date(_) | FieldKind::Autodate(_) => ColumnType::Timestamp,
            FieldKind::Json(_) => ColumnType::Json,
            FieldKind::GeoPoint(_) => ColumnType::JsonPoint,
            _ => ColumnType::Text,
        }
    }

    /// The value a record shows for this field when nothing was stored.
    pub fn zero_value(&self) -> Value {
        if self.is_multiple() {
            return json!([]);
        }
        match &self.kind {
            FieldKind::Number(_) => json!(0),
            FieldKind::Bool(_) => json!(false),
            FieldKind::Json(_) => Value::Null,
            FieldKind::GeoPoint(_) => json!({"lon": 0, "lat": 0}),
            _ => json!(""),
        }
    }

    /// Casts a submitted value to this field's canonical JSON form, as PocketBase's loose
    /// casting does (`"12"` for a number field becomes `12`). Input that cannot be read as
    /// the field's type at all is an error rather than a silent zero.
    pub fn prepare(&self, raw: &Value) -> Result<Value, FieldError> {
        if self.is_multiple() {
            return Ok(Value::Array(
                string_list(raw).into_iter().map(Value::String).collect(),
            ));
        }
        match &self.kind {
            FieldKind::Number(_) => match raw {
                Value::Null => Ok(json!(0)),
                Value::Number(n) => Ok(number_json(n.as_f64().unwrap_or(0.0))),
                Value::Bool(b) => Ok(json!(*b as i64)),
                Value::String(s) if s.trim().is_empty() => Ok(json!(0)),
                Value::String(s) => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(number_json)
                    .ok_or_else(|| {
                        FieldError::new("validation_invalid_number", "Must be a valid number.")
                    }),
                _ => Err(FieldError::new(
                    "validation_invalid_number",
                    "Must be a valid number.",
                )),
            },
            FieldKind::Bool(_) => match raw {
                Value::Null => Ok(json!(false)),
                Value::Bool(b) => Ok(json!(*b)),
                Value::Number(n) => Ok(json!(n.as_f64().unwrap_or(0.0) != 0.0)),
                Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "" | "0" | "f" | "false" => Ok(json!(false)),
                    "1" | "t" | "true" => Ok(json!(true)),
                    _ => Err(FieldError::new(
                        "validation_invalid_bool",
                        "Must be a valid boolean.",
                    )),
                },
                _ => Err(FieldError::new(
                    "validation_invalid_bool",
                    "Must be a valid boolean.",
                )),
            },
            FieldKind::Date(_) | FieldKind::Autodate(_) => match raw {
                Value::Null => Ok(json!("")),
                Value::String(s) if s.trim().is_empty() => Ok(json!("")),
                Value::String(s) => datetime::normalize(s).map(Value::String).ok_or_else(|| {
                    FieldError::new("validation_invalid_date", "Must be a valid date.")
                }),
                _ => Err(FieldError::new(
                    "validation_invalid_date",
                    "Must be a valid date.",
                )),
            },
            FieldKind::Json(_) => Ok(match raw {
                Value::String(s) => json_from_string(s),
                other => other.clone(),
            }),
            FieldKind::GeoPoint(_) => prepare_geo(raw),
            FieldKind::Select(_) | FieldKind::Relation(_) | FieldKind::File(_) => {
                // A single-value field given several values keeps the last one.
                Ok(Value::String(string_list(raw).pop().unwrap_or_default()))
            }
            _ => match raw {
                Value::Null => Ok(json!("")),
                Value::String(s) => Ok(json!(s)),
                Value::Number(n) => Ok(json!(n.to_string())),
                Value::Bool(b) => Ok(json!(b.to_string())),
                _ => Err(FieldError::new(
                    "validation_invalid_value",
                    "Must be a string.",
                )),
            },
        }
    }

    /// Validates a prepared value. Relation existence and uniqueness need the database and
    /// are checked by the records service.
    pub fn validate(&self, v: &Value) -> Result<(), FieldError> {
        let empty = is_empty_value(v);
        if empty {
            if self.is_required() && !matches!(self.kind, FieldKind::GeoPoint(_)) {
                return Err(FieldError::required());
            }
            if !matches!(self.kind, FieldKind::Relation(_) | FieldKind::GeoPoint(_)) {
                return Ok(());
            }
        }
        match &self.kind {
            FieldKind::Text(o) => {
                let s = v.as_str().unwrap_or_default();
                check_length(s, o.min, if o.max <= 0 { 5000 } else { o.max })?;
                check_pattern(&o.pattern, s)?;
                if o.primary_key {
                    check_primary_key(s)?;
                }
                Ok(())
            }
            FieldKind::Password(o) => {
                let s = v.as_str().unwrap_or_default();
                // bcrypt compatibility caps passwords at 71 characters, as PocketBase does.
                check_length(s, o.min, if o.max <= 0 { 71 } else { o.max.min(71) })?;
                check_pattern(&o.pattern, s)
            }
            FieldKind::Number(o) => {
                let f = v.as_f64().unwrap_or(0.0);
                if o.only_int && f.fract() != 0.0 {
                    return Err(FieldError::new(
                        "validation_only_int_constraint",
                        "Decimal numbers are not allowed.",
                    ));
                }
                if let Some(min) = o.min {
                    if f < min {
                        return Err(FieldError::new(
                            "validation_min_number_constraint",
                            format!("Must be larger than {}.", number_json(min)),
                        )
                        .with_params(json!({"min": number_json(min)})));
                    }
                }
                if let Some(max) = o.max {
                    if f > max {
                        return Err(FieldError::new(
                            "validation_max_number_constraint",
                            format!("Must be less than {}.", number_json(max)),
                        )
                        .with_params(json!({"max": number_json(max)})));
                    }
                }
                Ok(())
            }
            FieldKind::Bool(_) | FieldKind::Autodate(_) => Ok(()),
            FieldKind::Email(o) => {
                let s = v.as_str().unwrap_or_default();
                if !is_email(s) {
                    return Err(FieldError::new(
                        "validation_is_email",
                        "Must be a valid email address.",
                    ));
                }
                let domain = s.rsplit('@').next().unwrap_or_default();
                check_domain(
                    o,
                    domain,
                    "validation_email_domain_not_allowed",
                    "Email domain is not allowed.",
                )
            }
            FieldKind::Url(o) => {
                let s = v.as_str().unwrap_or_default();
                let host = url_host(s).ok_or_else(|| {
                    FieldError::new("validation_invalid_url", "Must be a valid url.")
                })?;
                check_domain(
                    o,
                    &host,
                    "validation_url_domain_not_allowed",
                    "Url domain is not allowed.",
                )
            }
            FieldKind::Editor(o) => {
                let max = if o.max_size <= 0 { 5 << 20 } else { o.max_size };
                if v.as_str().unwrap_or_default().len() as i64 > max {
                    return Err(FieldError::new(
                        "validation_content_size_limit",
                        format!("The maximum allowed content size is {max} bytes."),
                    )
                    .with_params(json!({"max": max})));
                }
                Ok(())
            }
            FieldKind::Date(o) => {
                let t = v.as_str().and_then(datetime::parse);
                if let (Some(t), Some(min)) = (t, datetime::parse(&o.min)) {
                    if t < min {
                        return Err(FieldError::new(
                            "validation_min_date_constraint",
                            format!("Must be no less than {}.", datetime::format(&min)),
                        ));
                    }
                }
                if let (Some(t), Some(max)) = (t, datetime::parse(&o.max)) {
                    if t > max {
                        return Err(FieldError::new(
                            "validation_max_date_constraint",
                            format!("Must be no more than {}.", datetime::format(&max)),
                        ));
                    }
                }
                Ok(())
            }
            FieldKind::Select(o) => {
                let values = as_strings(v);
                for s in &values {
                    if !o.values.contains(s) {
                        return Err(FieldError::new(
                            "validation_invalid_value",
                            format!("Invalid value {s}."),
                        )
                        .with_params(json!({"value": s})));
                    }
                }
                let max = o.max_select.max(1);
                if values.len() as i64 > max {
                    return Err(too_many(max));
                }
                Ok(())
            }
            FieldKind::Relation(o) => {
                let values = as_strings(v);
                let max = o.max_select.max(1);
                if values.len() as i64 > max {
                    return Err(too_many(max));
                }
                if !values.is_empty() && (values.len() as i64) < o.min_select {
                    return Err(FieldError::new(
                        "validation_not_enough_values",
                        format!("Select at least {}.", o.min_select),
                    )
                    .with_params(json!({"minSelect": o.min_select})));
                }
                if values.is_empty() && o.required {
                    return Err(FieldError::required());
                }
                Ok(())
            }
            FieldKind::File(o) => {
                let max = o.max_select.max(1);
                if as_strings(v).len() as i64 > max {
                    return Err(FieldError::new(
                        "validation_too_many_files",
                        format!("The maximum allowed files is {max}."),
                    )
                    .with_params(json!({"maxSelect": max})));
                }
                Ok(())
            }
            FieldKind::Json(o) => {
                let max = if o.max_size <= 0 { 1 << 20 } else { o.max_size };
                if json_depth(v) > MAX_JSON_DEPTH {
                    return Err(FieldError::new(
                        "validation_json_depth_limit",
                        format!("The maximum allowed JSON nesting depth is {MAX_JSON_DEPTH}."),
                    ));
                }
                let size = serde_json::to_string(v).map(|s| s.len()).unwrap_or(0) as i64;
                if size > max {
                    return Err(FieldError::new(
                        "validation_json_size_limit",
                        format!("The maximum allowed JSON size is {max} bytes."),
                    )
                    .with_params(json!({"max": max})));
                }
                Ok(())
            }
            FieldKind::GeoPoint(o) => {
                let lon = v.get("lon").and_then(Value::as_f64).unwrap_or(0.0);
                let lat = v.get("lat").and_then(Value::as_f64).unwrap_or(0.0);
                if o.required && lon == 0.0 && lat == 0.0 {
                    return Err(FieldError::required());
                }
                if !(-90.0..=90.0).contains(&lat) {
                    return Err(FieldError::new(
                        "validation_invalid_latitude",
                        "Latitude must be between -90 and 90 degrees.",
                    ));
                }
                if !(-180.0..=180.0).contains(&lon) {
                    return Err(FieldError::new(
                        "validation_invalid_longitude",
                        "Longitude must be between -180 and 180 degrees.",
                    ));
                }
                Ok(())
            }
        }
    }

    /// Converts a prepared value into the value bound for this field's column.
    pub fn to_sql(&self, v: &Value, dialect: &Dialect) -> SqlValue {
        match self.column_type() {
            ColumnType::Text => SqlValue::Text(match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            }),
            ColumnType::Number => SqlValue::Real(v.as_f64().unwrap_or(0.0)),
            ColumnType::Bool => SqlValue::Bool(v.as_bool().unwrap_or(false)),
            ColumnType::Timestamp => match v.as_str().and_then(datetime::parse) {
                Some(t) => SqlValue::Timestamp(t),
                None => empty_timestamp(dialect),
            },
            ColumnType::Json => match v {
                Value::Null => SqlValue::Null,
                other => SqlValue::Json(other.clone()),
            },
            ColumnType::JsonArray | ColumnType::JsonPoint => SqlValue::Json(v.clone()),
        }
    }

    /// Reads a stored column back into the field's JSON form, whichever engine stored it.
    pub fn from_sql(&self, v: SqlValue) -> Value {
        match self.column_type() {
            ColumnType::Text => match v {
                SqlValue::Text(s) => Value::String(s),
                SqlValue::Null => json!(""),
                SqlValue::Int(i) => json!(i.to_string()),
                SqlValue::Real(f) => json!(f.to_string()),
                SqlValue::Bool(b) => json!(b.to_string()),
                SqlValue::Json(j) => json!(j.to_string()),
                SqlValue::Timestamp(t) => json!(datetime::format(&t)),
            },
            ColumnType::Number => match v {
                SqlValue::Int(i) => json!(i),
                SqlValue::Real(f) => number_json(f),
                SqlValue::Text(s) => s.parse::<f64>().map(number_json).unwrap_or(json!(0)),
                SqlValue::Bool(b) => json!(b as i64),
                _ => json!(0),
            },
            ColumnType::Bool => match v {
                SqlValue::Bool(b) => json!(b),
                SqlValue::Int(i) => json!(i != 0),
                SqlValue::Real(f) => json!(f != 0.0),
                SqlValue::Text(s) => json!(s == "1" || s.eq_ignore_ascii_case("true")),
                _ => json!(false),
            },
            ColumnType::Timestamp => match v {
                SqlValue::Timestamp(t) => json!(datetime::format(&t)),
                SqlValue::Text(s) => json!(s),
                _ => json!(""),
            },
            ColumnType::Json | ColumnType::JsonArray | ColumnType::JsonPoint => {
                let parsed = match v {
                    SqlValue::Json(j) => j,
                    SqlValue::Text(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
                    SqlValue::Int(i) => json!(i),
                    SqlValue::Real(f) => number_json(f),
                    SqlValue::Bool(b) => json!(b),
                    _ => Value::Null,
                };
                match (self.column_type(), parsed) {
                    (ColumnType::JsonArray, Value::Array(a)) => Value::Array(a),
                    (ColumnType::JsonArray, _) => json!([]),
                    (ColumnType::JsonPoint, Value::Null) => self.zero_value(),
                    (_, p) => p,
                }
            }
        }
    }
}

/// The empty value of a timestamp column: `''` on SQLite (as PocketBase stores it), NULL on
/// PostgreSQL, whose timestamptz has no empty string.
pub fn empty_timestamp(dialect: &Dialect) -> SqlValue {
    dialect.empty_timestamp()
}

/// A float as JSON, integral values printed without a fraction as PocketBase does.
pub fn number_json(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        json!(f as i64)
    } else {
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(json!(0))
    }
}

pub fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
    }
}

fn too_many(max: i64) -> FieldError {
    FieldError::new(
        "validation_too_many_values",
        format!("Select no more than {max}."),
    )
    .with_params(json!({"maxSelect": max}))
}

/// Strings of a single or multi value, empty ones dropped and duplicates removed in order.
pub fn string_list(raw: &Value) -> Vec<String> {
    let items: Vec<String> = match raw {
        Value::Null => vec![],
        Value::Array(a) => a.iter().filter_map(scalar_string).collect(),
        other => scalar_string(other).into_iter().collect(),
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for s in items {
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn as_strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Value::String(s) if !s.is_empty() => vec![s.clone()],
        _ => vec![],
    }
}

fn json_from_string(s: &str) -> Value {
    let t = s.trim_start();
    let looks_json = matches!(t.chars().next(), Some('0'..='9' | '-' | '"' | '[' | '{'))
        || matches!(t.trim_end(), "null" | "true" | "false");
    if looks_json {
        if let Ok(v) = serde_json::from_str::<Value>(s) {
            return v;
        }
    }
    Value::String(s.to_owned())
}

fn prepare_geo(raw: &Value) -> Result<Value, FieldError> {
    let v = match raw {
        Value::String(s) if !s.is_empty() => serde_json::from_str(s).unwrap_or(Value::Null),
        other => other.clone(),
    };
    match v {
        Value::Null => Ok(json!({"lon": 0, "lat": 0})),
        Value::String(_) => Ok(json!({"lon": 0, "lat": 0})),
        Value::Object(o) => {
            let lon = o.get("lon").and_then(Value::as_f64).unwrap_or(0.0);
            let lat = o.get("lat").and_then(Value::as_f64).unwrap_or(0.0);
            Ok(json!({"lon": number_json(lon), "lat": number_json(lat)}))
        }
        _ => Err(FieldError::new(
            "validation_invalid_value",
            "Invalid geo point.",
        )),
    }
}

/// Nesting depth, computed without recursion so hostile input cannot overflow the stack.
pub fn json_depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    max
}

/// Length in characters (runes) between `min` and `max`, with PocketBase's codes.
fn check_length(s: &str, min: i64, max: i64) -> Result<(), FieldError> {
    let n = s.chars().count() as i64;
    if n < min {
        return Err(FieldError::new(
            "validation_min_text_constraint",
            format!("Must be at least {min} character(s)."),
        )
        .with_params(json!({"min": min})));
    }
    if n > max {
        return Err(FieldError::new(
            "validation_max_text_constraint",
            format!("Must be no more than {max} character(s)."),
        )
        .with_params(json!({"max": max})));
    }
    Ok(())
}

fn check_pattern(pattern: &str, s: &str) -> Result<(), FieldError> {
    if pattern.is_empty() {
        return Ok(());
    }
    match cached_regex(pattern) {
        Some(re) if re.is_match(s) => Ok(()),
        _ => Err(FieldError::new(
            "validation_invalid_format",
            "Invalid value format.",
        )),
    }
}

/// Compiled field patterns, by source: compiling a regex costs far more than matching it,
/// and every create validates the `id` pattern. Bounded: cleared when full.
fn cached_regex(pattern: &str) -> Option<regex::Regex> {
    use std::collections::HashMap;
    use std::sync::{OnceLock, RwLock};
    const MAX: usize = 512;
    static CACHE: OnceLock<RwLock<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.read().ok().and_then(|c| c.get(pattern).cloned()) {
        return hit;
    }
    let compiled = regex::Regex::new(pattern).ok();
    if let Ok(mut c) = cache.write() {
        if c.len() >= MAX {
            c.clear();
        }
        c.insert(pattern.to_owned(), compiled.clone());
    }
    compiled
}

fn check_primary_key(s: &str) -> Result<(), FieldError> {
    const FORBIDDEN: &[char] = &[
        '.', '/', '\\', '|', '"', '\'', '`', '<', '>', ':', '?', '*', '%', '$', '\0', '\t', '\n',
        '\r', ' ',
    ];
    if s.chars().any(|c| FORBIDDEN.contains(&c)) {
        return Err(FieldError::new(
            "validation_forbidden_pk_character",
            "Forbidden primary key character.",
        ));
    }
    let upper = s.to_ascii_uppercase();
    let reserved = ["CON", "PRN", "AUX", "NUL"].contains(&upper.as_str())
        || ((upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.len() == 4
            && upper.as_bytes()[3].is_ascii_digit()
            && upper.as_bytes()[3] != b'0');
    if reserved {
        return Err(FieldError::new(
            "validation_reserved_pk",
            "The primary key is a reserved name.",
        ));
    }
    Ok(())
}

fn check_domain(o: &DomainOptions, domain: &str, code: &str, msg: &str) -> Result<(), FieldError> {
    let d = domain.to_ascii_lowercase();
    if let Some(only) = o.only_domains.as_ref().filter(|v| !v.is_empty()) {
        if !only.iter().any(|x| x.eq_ignore_ascii_case(&d)) {
            return Err(FieldError::new(code, msg));
        }
    }
    if let Some(except) = &o.except_domains {
        if except.iter().any(|x| x.eq_ignore_ascii_case(&d)) {
            return Err(FieldError::new(code, msg));
        }
    }
    Ok(())
}

/// A practical email check: one `@`, a non-empty local part without spaces, a dotted-or-not
/// domain of letters, digits, hyphens and dots.
pub fn is_email(s: &str) -> bool {
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || local.contains('@') || domain.is_empty() {
        return false;
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    })
}

/// The host of an absolute http(s)-like URL, or `None` if it is not one.
pub fn url_host(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if host_port.starts_with('[') {
        host_port.split(']').next()?.trim_start_matches('[')
    } else {
        host_port.split(':').next()?
    };
    if host.is_empty() {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(max: i64) -> Field {
        Field::new(
            "title",
            FieldKind::Text(TextOptions {
                max,
                ..Default::default()
            }),
        )
    }

    #[test]
    fn field_json_shape_matches_pocketbase() {
        let f = Field::new(
            "id",
            FieldKind::Text(TextOptions {
                autogenerate_pattern: "[a-z0-9]{15}".into(),
                max: 15,
                min: 15,
                pattern: "^[a-z0-9]+$".into(),
                primary_key: true,
                required: true,
            }),
        )
        .system();
        let expected = r#"{"autogeneratePattern":"[a-z0-9]{15}","help":"","hidden":false,"id":"text3208210256","max":15,"min":15,"name":"id","pattern":"^[a-z0-9]+$","presentable":false,"primaryKey":true,"required":true,"system":true,"type":"text"}"#;
        assert_eq!(serde_json::to_string(&f).expect("json"), expected);
        let back: Field = serde_json::from_str(expected).expect("parse");
        assert_eq!(back, f);
    }

    #[test]
    fn unknown_type_is_an_error() {
        assert!(serde_json::from_str::<Field>(r#"{"name":"x","type":"nope"}"#).is_err());
    }

    #[test]
    fn text_limits() {
        let f = text(3);
        assert!(f.validate(&json!("abc")).is_ok());
        assert_eq!(
            f.validate(&json!("abcd")).unwrap_err().code,
            "validation_max_text_constraint"
        );
        assert!(text(0).validate(&json!("x".repeat(5000))).is_ok());
        assert!(text(0).validate(&json!("x".repeat(5001))).is_err());
    }

    #[test]
    fn number_casting() {
        let f = Field::new("n", FieldKind::Number(NumberOptions::default()));
        assert_eq!(f.prepare(&json!("12")).expect("n"), json!(12));
        assert_eq!(f.prepare(&json!(1.5)).expect("n"), json!(1.5));
        assert!(f.prepare(&json!("abc")).is_err());
        assert!(f.prepare(&json!("NaN")).is_err());
    }

    #[test]
    fn multi_select_dedupes() {
        let f = Field::new(
            "tags",
            FieldKind::Select(SelectOptions {
                max_select: 3,
                values: vec!["a".into(), "b".into()],
                required: false,
            }),
        );
        assert_eq!(
            f.prepare(&json!(["a", "a", "b"])).expect("p"),
            json!(["a", "b"])
        );
        assert_eq!(f.prepare(&json!("a")).expect("p"), json!(["a"]));
        assert_eq!(
            f.validate(&json!(["c"])).unwrap_err().code,
            "validation_invalid_value"
        );
    }

    #[test]
    fn deep_json_is_rejected() {
        let f = Field::new("j", FieldKind::Json(JsonOptions::default()));
        let mut v = json!(1);
        for _ in 0..100 {
            v = json!([v]);
        }
        assert_eq!(
            f.validate(&v).unwrap_err().code,
            "validation_json_depth_limit"
        );
    }

    #[test]
    fn emails_and_urls() {
        assert!(is_email("a.b@example.com"));
        assert!(!is_email("a b@example.com"));
        assert!(!is_email("nope"));
        assert_eq!(
            url_host("https://Example.com:8080/x?y").as_deref(),
            Some("example.com")
        );
        assert!(url_host("example.com").is_none());
    }
}
