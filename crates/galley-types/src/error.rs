use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One field's validation failure, in PocketBase's `{code, message[, params]}` shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

impl FieldError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        FieldError {
            code: code.to_owned(),
            message: message.into(),
            params: None,
        }
    }

    pub fn with_params(mut self, params: Value) -> Self {
        self.params = Some(params);
        self
    }

    pub fn required() -> Self {
        FieldError::new("validation_required", "Cannot be blank.")
    }

    pub fn invalid_value() -> Self {
        FieldError::new("validation_invalid_value", "Invalid value.")
    }
}

/// Validation failures keyed by field name (sorted, so messages are deterministic).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldErrors(pub BTreeMap<String, FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, field: &str, e: FieldError) {
        self.0.entry(field.to_owned()).or_insert(e);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn single(field: &str, e: FieldError) -> Self {
        let mut f = Self::new();
        f.add(field, e);
        f
    }
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.0 {
            m.insert(k.clone(), serde_json::to_value(v).unwrap_or(Value::Null));
        }
        Value::Object(m)
    }
}
