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

/// A mail template: subject and HTML body with `{APP_NAME}`, `{APP_URL}`, `{TOKEN}`,
/// `{OTP}`, `{ALERT_INFO}` placeholders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailTemplate {
    pub subject: String,
    pub body: String,
}

impl EmailTemplate {
    fn new(subject: &str, body: &str) -> Self {
        EmailTemplate {
            subject: subject.into(),
            body: body.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthAlert {
    pub enabled: bool,
    pub email_template: EmailTemplate,
}

/// OAuth2 options. Provider entries keep PocketBase's shape (`name`, `clientId`,
/// `clientSecret`, `authURL`, ...); `clientSecret` is never sent to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2Options {
    #[serde(default)]
    pub providers: Vec<Value>,
    #[serde(default = "default_mapped_fields")]
    pub mapped_fields: Value,
    #[serde(default)]
    pub enabled: bool,
}

fn default_mapped_fields() -> Value {
    json!({"id": "", "name": "", "username": "", "avatarURL": ""})
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MfaOptions {
    pub enabled: bool,
    pub duration: i64,
    #[serde(default)]
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtpOptions {
    pub enabled: bool,
    pub duration: i64,
    pub length: i64,
    pub email_template: EmailTemplate,
}

const FOOTER: &str = "<p>\n  Thanks,<br/>\n  {APP_NAME} team\n</p>";

fn default_auth_alert() -> AuthAlert {
    AuthAlert {
        enabled: true,
        email_template: EmailTemplate::new(
            "Login from a new location",
            &format!("<p>Hello,</p>\n<p>We noticed a login to your {{APP_NAME}} account from a new location:</p>\n<p><em>{{ALERT_INFO}}</em></p>\n<p><strong>If this wasn't you, you should immediately change your {{APP_NAME}} account password to revoke access from all other locations.</strong></p>\n<p>If this was you, you may disregard this email.</p>\n{FOOTER}"),
        ),
    }
}
fn default_oauth2() -> OAuth2Options {
    OAuth2Options {
        providers: vec![],
        mapped_fields: default_mapped_fields(),
        enabled: false,
    }
}
fn default_mfa() -> MfaOptions {
    MfaOptions {
        enabled: false,
        duration: 600,
        rule: String::new(),
    }
}
fn default_otp() -> OtpOptions {
    OtpOptions {
        enabled: false,
        duration: 180,
        length: 8,
        email_template: EmailTemplate::new(
            "OTP for {APP_NAME}",
            &format!("<p>Hello,</p>\n<p>Your one-time password is: <strong>{{OTP}}</strong></p>\n<p><i>If you didn't ask for the one-time password, you can ignore this email.</i></p>\n{FOOTER}"),
        ),
    }
}
fn default_verification_template() -> EmailTemplate {
    EmailTemplate::new(
        "Verify your {APP_NAME} email",
        &format!("<p>Hello,</p>\n<p>Thank you for joining us at {{APP_NAME}}.</p>\n<p>Click on the button below to verify your email address.</p>\n<p>\n  <a class=\"btn\" href=\"{{APP_URL}}/_/#/auth/confirm-verification/{{TOKEN}}\" target=\"_blank\" rel=\"noopener\">Verify</a>\n</p>\n<p><i>If you didn't recently register, please ignore this email.</i></p>\n{FOOTER}"),
    )
}
fn default_reset_password_template() -> EmailTemplate {
    EmailTemplate::new(
        "Reset your {APP_NAME} password",
        &format!("<p>Hello,</p>\n<p>Click on the button below to reset your password.</p>\n<p>\n  <a class=\"btn\" href=\"{{APP_URL}}/_/#/auth/confirm-password-reset/{{TOKEN}}\" target=\"_blank\" rel=\"noopener\">Reset password</a>\n</p>\n<p><i>If you didn't ask to reset your password, please ignore this email.</i></p>\n{FOOTER}"),
    )
}
fn default_confirm_email_change_template() -> EmailTemplate {
    EmailTemplate::new(
        "Confirm your {APP_NAME} new email address",
        &format!("<p>Hello,</p>\n<p>Click on the button below to confirm your new email address.</p>\n<p>\n  <a class=\"btn\" href=\"{{APP_URL}}/_/#/auth/confirm-email-change/{{TOKEN}}\" target=\"_blank\" rel=\"noopener\">Confirm new email</a>\n</p>\n<p><i>If you didn't ask to change your email address, please ignore this email.</i></p>\n{FOOTER}"),
    )
}

/// Options of an auth collection, in PocketBase's key order. Token secrets and OAuth2
/// client secrets are stored but never sent to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthOptions {
    pub auth_rule: Option<String>,
    pub manage_rule: Option<String>,
    #[serde(default = "default_auth_alert")]
    pub auth_alert: AuthAlert,
    #[serde(default = "default_oauth2")]
    pub oauth2: OAuth2Options,
    pub password_auth: PasswordAuth,
    #[serde(default = "default_mfa")]
    pub mfa: MfaOptions,
    #[serde(default = "default_otp")]
    pub otp: OtpOptions,
    pub auth_token: TokenConfig,
    pub password_reset_token: TokenConfig,
    pub email_change_token: TokenConfig,
    pub verification_token: TokenConfig,
    pub file_token: TokenConfig,
    #[serde(default = "default_verification_template")]
    pub verification_template: EmailTemplate,
    #[serde(default = "default_reset_password_template")]
    pub reset_password_template: EmailTemplate,
    #[serde(default = "default_confirm_email_change_template")]
    pub confirm_email_change_template: EmailTemplate,
    /// Any other option submitted, kept and returned so a round trip loses nothing.
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
            auth_alert: default_auth_alert(),
            oauth2: default_oauth2(),
            password_auth: PasswordAuth {
                enabled: true,
                identity_fields: vec!["email".into()],
            },
            mfa: default_mfa(),
            otp: default_otp(),
            auth_token: tok(auth_duration),
            password_reset_token: tok(1800),
            email_change_token: tok(1800),
            verification_token: tok(86400),
            file_token: tok(180),
            verification_template: default_verification_template(),
            reset_password_template: default_reset_password_template(),
            confirm_email_change_template: default_confirm_email_change_template(),
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
                if let Some(Value::Array(ps)) =
                    o.get_mut("oauth2").and_then(|v| v.get_mut("providers"))
                {
                    for p in ps.iter_mut().filter_map(Value::as_object_mut) {
                        p.remove("clientSecret");
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

/// The unique indexes every auth collection has (tokenKey, non-empty email), as PocketBase
/// names and prints them.
pub fn auth_indexes(id: &str, name: &str) -> Vec<String> {
    vec![
        format!("CREATE UNIQUE INDEX `idx_tokenKey_{id}` ON `{name}` (`tokenKey`)"),
        format!("CREATE UNIQUE INDEX `idx_email_{id}` ON `{name}` (`email`) WHERE `email` != ''"),
    ]
}

/// `_externalAuths`, PocketBase's system collection of OAuth2 links: an auth record may
/// list and delete (unlink) its own, nobody creates or edits them through the API.
pub fn external_auths_collection(now: &str) -> Collection {
    let text = |name: &str| {
        Field::new(
            name,
            FieldKind::Text(TextOptions {
                required: true,
                ..Default::default()
            }),
        )
        .system()
    };
    let mut fields = vec![id_field()];
    fields.extend(
        ["collectionRef", "recordRef", "provider", "providerId"]
            .into_iter()
            .map(text),
    );
    fields.extend(autodate_fields().map(Field::system));
    let own = Some(
        "@request.auth.id != '' && recordRef = @request.auth.id && collectionRef = @request.auth.collectionId"
            .to_owned(),
    );
    Collection {
        id: crate::ids::collection_id("base", EXTERNAL_AUTHS),
        name: EXTERNAL_AUTHS.into(),
        kind: CollectionType::Base,
        system: true,
        fields,
        indexes: vec![
            "CREATE UNIQUE INDEX `idx_externalAuths_record_provider` ON `_externalAuths` (collectionRef, recordRef, provider)".into(),
            "CREATE UNIQUE INDEX `idx_externalAuths_collection_provider` ON `_externalAuths` (collectionRef, provider, providerId)".into(),
        ],
        rules: Rules {
            list_rule: own.clone(),
            view_rule: own.clone(),
            create_rule: None,
            update_rule: None,
            delete_rule: own,
        },
        auth: None,
        view_query: None,
        created: now.to_owned(),
        updated: now.to_owned(),
    }
}

pub const EXTERNAL_AUTHS: &str = "_externalAuths";

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
        indexes: auth_indexes("pbc_3142635823", "_superusers"),
        rules: Rules::default(),
        auth: Some(auth),
        view_query: None,
        created: now.to_owned(),
        updated: now.to_owned(),
    }
}

pub const WEBHOOKS: &str = "_webhooks";
pub const WEBHOOK_DELIVERIES: &str = "_webhookDeliveries";

/// Outgoing webhooks (Galley's own): records managed by superusers through the records
/// API. `secret` is a Standard Webhooks `whsec_` secret, generated when omitted, hidden.
pub fn webhooks_collection(now: &str) -> Collection {
    let text = |name: &str, required: bool, max: i64| {
        Field::new(
            name,
            FieldKind::Text(TextOptions {
                required,
                max,
                ..Default::default()
            }),
        )
    };
    let mut fields = vec![id_field()];
    fields.push(text("name", true, 200));
    fields.push(text("collection", true, 100));
    fields.push(Field::new(
        "events",
        FieldKind::Select(crate::field::SelectOptions {
            max_select: 3,
            required: true,
            values: vec!["create".into(), "update".into(), "delete".into()],
        }),
    ));
    fields.push(Field::new(
        "url",
        FieldKind::Url(crate::field::DomainOptions {
            required: true,
            ..Default::default()
        }),
    ));
    fields.push(
        Field::new(
            "secret",
            FieldKind::Text(TextOptions {
                autogenerate_pattern: "whsec_[A-Za-z0-9]{32}".into(),
                pattern: "^whsec_[A-Za-z0-9+/=]+$".into(),
                max: 400,
                required: true,
                ..Default::default()
            }),
        )
        .hidden(),
    );
    fields.push(text("filter", false, 2000));
    fields.push(Field::new(
        "active",
        FieldKind::Bool(crate::field::RequiredOnly::default()),
    ));
    fields.extend(autodate_fields());
    let fields = fields.into_iter().map(Field::system).collect();
    Collection {
        id: crate::ids::collection_id("base", WEBHOOKS),
        name: WEBHOOKS.into(),
        kind: CollectionType::Base,
        system: true,
        fields,
        indexes: vec!["CREATE INDEX `idx_webhooks_collection` ON `_webhooks` (collection)".into()],
        rules: Rules::default(),
        auth: None,
        view_query: None,
        created: now.to_owned(),
        updated: now.to_owned(),
    }
}

/// One delivery of a record event to a webhook: what was sent and how it went. Written by
/// the server; superusers read (and may delete) them.
pub fn webhook_deliveries_collection(now: &str) -> Collection {
    let text = |name: &str| Field::new(name, FieldKind::Text(TextOptions::default()));
    let number = |name: &str| {
        Field::new(
            name,
            FieldKind::Number(crate::field::NumberOptions {
                only_int: true,
                ..Default::default()
            }),
        )
    };
    let mut fields = vec![id_field()];
    fields.extend(["webhook", "event", "collection", "record"].map(text));
    fields.push(Field::new(
        "payload",
        FieldKind::Json(crate::field::JsonOptions::default()),
    ));
    fields.push(Field::new(
        "status",
        FieldKind::Select(crate::field::SelectOptions {
            max_select: 1,
            required: false,
            values: vec!["pending".into(), "delivered".into(), "failed".into()],
        }),
    ));
    fields.extend(["attempts", "responseCode", "duration"].map(number));
    fields.push(text("error"));
    fields.extend(autodate_fields());
    let fields = fields.into_iter().map(Field::system).collect();
    Collection {
        id: crate::ids::collection_id("base", WEBHOOK_DELIVERIES),
        name: WEBHOOK_DELIVERIES.into(),
        kind: CollectionType::Base,
        system: true,
        fields,
        indexes: vec![
            "CREATE INDEX `idx_webhookDeliveries_webhook` ON `_webhookDeliveries` (webhook)".into(),
        ],
        rules: Rules::default(),
        auth: None,
        view_query: None,
        created: now.to_owned(),
        updated: now.to_owned(),
    }
}
