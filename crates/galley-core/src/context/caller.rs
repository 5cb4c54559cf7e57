use galley_types::Collection;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Who is making a request, resolved from its token.
#[derive(Debug, Clone, Default)]
pub enum Caller {
    #[default]
    Guest,
    /// A record of an auth collection (`_superusers` included).
    Record {
        collection: Arc<Collection>,
        record: Map<String, Value>,
    },
}

impl Caller {
    pub fn is_superuser(&self) -> bool {
        matches!(self, Caller::Record { collection, .. } if collection.name == "_superusers")
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            Caller::Record { record, .. } => record.get("id").and_then(Value::as_str),
            Caller::Guest => None,
        }
    }

    pub fn collection(&self) -> Option<&Arc<Collection>> {
        match self {
            Caller::Record { collection, .. } => Some(collection),
            Caller::Guest => None,
        }
    }
}

impl Caller {
    /// The view the expression engine gets of this caller (`@request.auth.*`).
    pub fn auth_info(&self) -> Option<galley_expr::AuthInfo> {
        match self {
            Caller::Guest => None,
            Caller::Record { collection, record } => Some(galley_expr::AuthInfo {
                collection_id: collection.id.clone(),
                collection_name: collection.name.clone(),
                record: record.clone(),
                is_superuser: self.is_superuser(),
            }),
        }
    }
}
