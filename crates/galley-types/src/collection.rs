use crate::field::{AutodateOptions, Field, FieldKind, PasswordOptions, RequiredOnly, TextOptions};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectionType {
    Base,
    Auth,
    View,
}

impl CollectionType {
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionType::Base => "base",
            CollectionType::Auth => "auth",
            CollectionType::View => "view",
        }
    }
}

/// The five API rules. `None` locks the action to superusers; `Some("")` opens it to anyone.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rules {
    pub list_rule: Option<String>,
    pub view_rule: Option<String>,
    pub create_rule: Option<String>,
    pub update_rule: Option<String>,
    pub delete_rule: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenConfig {
    pub duration: i64,
    #[serde(default)]
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordAuth {
    pub enabled: bool,
    pub identity_fields: Vec<String>,
}

/// Options of an auth collection. Token secrets are stored but never sent to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthOptions {
    pub auth_rule: Option<String>,
    pub manage_rule: Option<String>,
    pub password_auth: PasswordAuth,
    pub auth_token: TokenConfig,
    pub password_reset_token: TokenConfig,
    pub email_change_token: TokenConfig,
    pub verification_token: TokenConfig,
    pub file_token: TokenConfig,
    /// Options Galley keeps and returns but does not interpret yet (oauth2, mfa, otp,
    /// templates), so that a round trip through the API loses nothing.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AuthOptions {
    pub fn new(auth_duration: i64) -> Self {
        let tok = |duration| TokenConfig {
            duration,
            secret: crate::ids::secret(50),
        };
        AuthOptions {
            auth_rule: Some(String::new()),
            manage_rule: None,
            password_auth: PasswordAuth {
                enabled: true,
                identity_fields: vec!["email".into()],
            },
            auth_token: tok(auth_duration),
            password_reset_token: tok(1800),
            email_change_token: tok(1800),
            verification_token: tok(86400),
            file_token: tok(180),
            extra: Map::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    pub id: String,
    pub name: String,
    pub kind: CollectionType,
    pub system: bool,
    pub fields: Vec<Field>,
    pub indexes: Vec<String>,
    pub rules: Rules,
    pub auth: Option<AuthOptions>,
    pub view_query: Option<String>,
    pub created: String,
    pub updated: String,
}

impl Collection {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Case-insensitive field lookup, as PocketBase binds submitted keys.
    pub fn field_ci(&self, name: &str) -> Option<&Field> {
        self.field(name).or_else(|| {
            self.fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
        })
    }

    pub fn is_auth(&self) -> bool {
        self.kind == CollectionType::Auth
    }

    /// The collection in PocketBase's JSON shape, without secrets.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("listRule".into(), json!(self.rules.list_rule));
        m.insert("viewRule".into(), json!(self.rules.view_rule));
        m.insert("createRule".into(), json!(self.rules.create_rule));
        m.insert("updateRule".into(), json!(self.rules.update_rule));
        m.insert("deleteRule".into(), json!(self.rules.delete_rule));
        m.insert("name".into(), json!(self.name));
        m.insert("type".into(), json!(self.kind.as_str()));
        m.insert(
            "fields".into(),
            Value::Array(self.fields.iter().map(Field::to_json).collect()),
        );
        m.insert("indexes".into(), json!(self.indexes));
        m.insert("created".into(), json!(self.created));
        m.insert("updated".into(), json!(self.updated));
        m.insert("system".into(), json!(self.system));
        if let Some(q) = &self.view_query {
            m.insert("viewQuery".into(), json!(q));
        }
        if let Some(a) = &self.auth {
            if let Ok(Value::Object(mut o)) = serde_json::to_value(a) {
                for key in [
                    "authToken",
                    "passwordResetToken",
                    "emailChangeToken",
                    "verificationToken",
                    "fileToken",
                ] {
                    if let Some(Value::Object(t)) = o.get_mut(key) {
                        t.remove("secret");
                    }
                }
                m.extend(o);
            }
        }
        Value::Object(m)
    }

    /// The type-specific options as stored in `_collections.options` (with secrets).
    pub fn options_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(a) = &self.auth {
            if let Ok(Value::Object(o)) = serde_json::to_value(a) {
                m = o;
            }
        }
        if let Some(q) = &self.view_query {
            m.insert("viewQuery".into(), json!(q));
        }
        Value::Object(m)
    }
}

/// The `id` field every collection starts with.
pub fn id_field() -> Field {
    Field::new(
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
    .system()
}

pub fn autodate_fields() -> [Field; 2] {
    [
        Field::new(
            "created",
            FieldKind::Autodate(AutodateOptions {
                on_create: true,
                on_update: false,
            }),
        ),
        Field::new(
            "updated",
            FieldKind::Autodate(AutodateOptions {
                on_create: true,
                on_update: true,
            }),
        ),
    ]
}

/// The system fields of an auth collection, as PocketBase defines them.
pub fn auth_system_fields() -> Vec<Field> {
    vec![
        Field::new(
            "password",
            FieldKind::Password(PasswordOptions {
                min: 8,
                required: true,
                ..Default::default()
            }),
        )
        .system()
        .hidden(),
        Field::new(
            "tokenKey",
            FieldKind::Text(TextOptions {
                autogenerate_pattern: "[a-zA-Z0-9]{50}".into(),
                max: 60,
                min: 30,
                required: true,
                ..Default::default()
            }),
        )
        .system()
        .hidden(),
        Field::new(
            "email",
            FieldKind::Email(crate::field::DomainOptions {
                required: true,
                ..Default::default()
            }),
        )
        .system(),
        Field::new("emailVisibility", FieldKind::Bool(RequiredOnly::default())).system(),
        Field::new("verified", FieldKind::Bool(RequiredOnly::default())).system(),
    ]
}

/// The `_superusers` collection of a fresh instance.
pub fn superusers_collection(now: &str) -> Collection {
    let mut fields = vec![id_field()];
    fields.extend(auth_system_fields());
    fields.extend(autodate_fields().map(Field::system));
    let mut auth = AuthOptions::new(86400);
    auth.auth_rule = Some(String::new());
    Collection {
        id: crate::ids::collection_id("auth", "_superusers"),
        name: "_superusers".into(),
        kind: CollectionType::Auth,
        system: true,
        fields,
        indexes: vec![
            "CREATE UNIQUE INDEX \"idx_tokenKey_pbc_3142635823\" ON \"_superusers\" (\"tokenKey\")".into(),
            "CREATE UNIQUE INDEX \"idx_email_pbc_3142635823\" ON \"_superusers\" (\"email\") WHERE \"email\" != ''".into(),
        ],
        rules: Rules::default(),
        auth: Some(auth),
        view_query: None,
        created: now.to_owned(),
        updated: now.to_owned(),
    }
}
