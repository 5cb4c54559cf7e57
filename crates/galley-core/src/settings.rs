//! Runtime settings, stored in `_params` (row `settings`) in PocketBase's JSON shape and held
//! as one typed [`Settings`] value.
//!
//! Everything that becomes settings goes through [`Settings::decode`]: the stored row when the
//! app opens, and a PATCH merged over the current settings ([`Settings::patched`]). Keys that
//! are missing (rows written by older versions, partial patches) take their defaults; keys
//! Galley does not know are dropped, as PocketBase ignores them; a value of the wrong type is a
//! field error (a 400 for a PATCH; for a stored row a logged warning, and its default
//! applies). [`Settings::validate`] then checks the ranges Galley enforces.
//!
//! The write-only secrets (`smtp.password`, `s3.secret`, `backups.s3.secret`) are [`Secret`]s:
//! skipped whenever a `Settings` is serialized, so what clients see can never carry them; only
//! [`Settings::to_stored`] writes them. A PATCH that omits them keeps the stored ones, because
//! a patch is merged over the stored form.

use crate::error::CoreError;
use galley_files::Storage;
use galley_sql::Sql;
use galley_store::{Conn, ConnExt};
use galley_types::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fmt;

/// Most realtime connections a setting may allow: far above what one process serves, low
/// enough that the count stays a real bound.
const MAX_CONNECTIONS_SETTING: i64 = 1_000_000;

/// Wrongly typed values reported at most: each costs one more decoding pass, and a 400 with
/// this many says enough.
const MAX_REPORTED: usize = 100;

/// The message of a refused PATCH, as before settings were typed.
const INVALID_MESSAGE: &str = "An error occurred while submitting the form.";

/// The settings, in PocketBase's JSON shape (field order is the order clients see).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Settings {
    #[serde(rename = "superuserIPs")]
    pub superuser_ips: Vec<String>,
    pub smtp: Smtp,
    pub backups: Backups,
    pub s3: S3,
    pub meta: Meta,
    pub rate_limits: RateLimits,
    pub trusted_proxy: TrustedProxy,
    pub batch: Batch,
    pub logs: Logs,
    /// Galley's own: PocketBase has no connection limit; memory per client is bounded by its
    /// queue, so the count bounds the whole.
    pub realtime: Realtime,
    /// Galley's own: outgoing webhooks (`_webhooks` records).
    pub webhooks: Webhooks,
    /// Galley's own: committed record events published to NATS and RabbitMQ.
    pub brokers: Brokers,
    /// Galley's own: how long a read's statements may run.
    pub queries: Queries,
}

/// Reads (lists, views, counts, expands) whose statements run longer than `timeLimitMs`
/// are stopped and answered with a 400, so that a slow filter cannot hold a database
/// connection; 0 turns the limit off. Writes are not limited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Queries {
    pub time_limit_ms: i64,
}

/// The default of `queries.timeLimitMs`.
pub const DEFAULT_QUERY_TIME_LIMIT_MS: i64 = 10_000;

impl Default for Queries {
    fn default() -> Self {
        Queries {
            time_limit_ms: DEFAULT_QUERY_TIME_LIMIT_MS,
        }
    }
}

/// A write-only value. It has no `Serialize`, so it cannot reach a response by accident, and
/// `Debug` does not print it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(empty)"
        } else {
            "Secret(***)"
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Smtp {
    pub enabled: bool,
    /// PocketBase's `int`; the mailer falls back to 587 when it is not a port number.
    pub port: i64,
    pub host: String,
    pub username: String,
    /// `PLAIN` or `LOGIN`; empty lets the mailer choose.
    pub auth_method: String,
    /// Implicit TLS from the first byte (SMTPS); otherwise STARTTLS when offered.
    pub tls: bool,
    pub local_name: String,
    #[serde(skip_serializing)]
    pub password: Secret,
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp {
            enabled: false,
            port: 587,
            host: "smtp.example.com".into(),
            username: String::new(),
            auth_method: String::new(),
            tls: false,
            local_name: String::new(),
            password: Secret::default(),
        }
    }
}

/// S3-compatible storage (record files in `s3`, backups in `backups.s3`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct S3 {
    pub enabled: bool,
    pub bucket: String,
    pub region: String,
    pub endpoint: String,
    pub access_key: String,
    #[serde(skip_serializing)]
    pub secret: Secret,
    pub force_path_style: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Backups {
    pub cron: String,
    pub cron_max_keep: i64,
    pub s3: S3,
}

impl Default for Backups {
    fn default() -> Self {
        Backups {
            cron: String::new(),
            cron_max_keep: 3,
            s3: S3::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Meta {
    pub accent_color: String,
    pub app_name: String,
    #[serde(rename = "appURL")]
    pub app_url: String,
    pub sender_name: String,
    pub sender_address: String,
    pub hide_controls: bool,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            accent_color: "#1055c9".into(),
            app_name: "Galley".into(),
            app_url: "http://localhost:8090".into(),
            sender_name: "Support".into(),
            sender_address: "support@example.com".into(),
            hide_controls: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RateLimits {
    pub rules: Vec<RateLimitRule>,
    #[serde(rename = "excludedIPs")]
    pub excluded_ips: Vec<String>,
    pub enabled: bool,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            rules: Vec::new(),
            excluded_ips: Vec::new(),
            // Galley limits auth requests by default (DESIGN §16); a superuser may switch it off.
            enabled: true,
        }
    }
}

/// One `rateLimits.rules` item (PocketBase's `RateLimitRule`). Not range-checked: as before
/// settings were typed, a rule without a label or a positive duration never applies, and a
/// negative `maxRequests` allows nothing (see `rate_rules`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RateLimitRule {
    pub label: String,
    /// `""` (everyone), `@guest` or `@auth`.
    pub audience: String,
    /// Seconds.
    pub duration: i64,
    pub max_requests: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TrustedProxy {
    /// Headers that carry the client IP, tried in order.
    pub headers: Vec<String>,
    #[serde(rename = "useLeftmostIP")]
    pub use_leftmost_ip: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Batch {
    pub enabled: bool,
    pub max_requests: i64,
    /// Seconds.
    pub timeout: i64,
    /// Bytes; 0 means PocketBase's default (128 MiB).
    pub max_body_size: i64,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            enabled: false,
            max_requests: 50,
            timeout: 3,
            max_body_size: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Logs {
    pub max_data_size: i64,
    pub max_days: i64,
    pub min_level: i64,
    #[serde(rename = "logIP")]
    pub log_ip: bool,
    pub log_auth_id: bool,
}

impl Default for Logs {
    fn default() -> Self {
        Logs {
            max_data_size: 0,
            max_days: 5,
            min_level: 0,
            log_ip: true,
            log_auth_id: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Realtime {
    pub max_connections: i64,
    /// Clients connected at once from one IP address (Galley's; PocketBase has none).
    #[serde(rename = "maxConnectionsPerIP")]
    pub max_connections_per_ip: i64,
    pub max_subscriptions_per_client: i64,
}

impl Default for Realtime {
    fn default() -> Self {
        Realtime {
            max_connections: galley_realtime::MAX_CONNECTIONS as i64,
            max_connections_per_ip: galley_realtime::MAX_CONNECTIONS_PER_IP as i64,
            max_subscriptions_per_client: galley_realtime::MAX_SUBSCRIPTIONS as i64,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Webhooks {
    /// Deliver to loopback, private and link-local addresses too (targets on the user's
    /// own network). Off by default: a webhook URL is a request the server makes on a
    /// superuser's behalf.
    pub allow_private_networks: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Brokers {
    pub nats: NatsBroker,
    pub rabbitmq: RabbitBroker,
    /// Events that may wait in one broker's outbox (while it is down or slow). At the
    /// bound, new events for that broker are dropped, not the writes: the write commits,
    /// its event is not queued for that broker, an error is logged, and consumers see a gap
    /// in the collection's `seq`.
    pub max_pending: i64,
}

/// The default bound of a broker's outbox: hours of a busy app's writes, a few hundred MB
/// of rows at most.
pub const MAX_PENDING_DEFAULT: i64 = 100_000;
const MAX_PENDING_LIMIT: i64 = 100_000_000;

impl Default for Brokers {
    fn default() -> Self {
        Brokers {
            nats: NatsBroker::default(),
            rabbitmq: RabbitBroker::default(),
            max_pending: MAX_PENDING_DEFAULT,
        }
    }
}

/// Events go to `<subjectPrefix>.<collection>.<event>`; with JetStream, into `stream`
/// (created over `<subjectPrefix>.>` when missing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NatsBroker {
    pub enabled: bool,
    /// `nats://[user:pass@]host:port`, or `tls://…` for TLS (the server must offer it).
    pub url: String,
    pub subject_prefix: String,
    pub stream: String,
}

impl Default for NatsBroker {
    fn default() -> Self {
        NatsBroker {
            enabled: false,
            url: "nats://127.0.0.1:4222".into(),
            subject_prefix: "galley".into(),
            stream: "GALLEY".into(),
        }
    }
}

/// Events go to the durable topic exchange `exchange` with routing key
/// `<collection>.<event>`, persistent, with publisher confirms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RabbitBroker {
    pub enabled: bool,
    pub host: String,
    pub port: i64,
    pub vhost: String,
    pub username: String,
    pub exchange: String,
    /// AMQPS: TLS from the first byte (RabbitMQ's TLS port is usually 5671).
    pub tls: bool,
    #[serde(skip_serializing)]
    pub password: Secret,
}

impl Default for RabbitBroker {
    fn default() -> Self {
        RabbitBroker {
            enabled: false,
            host: "127.0.0.1".into(),
            port: 5672,
            vhost: "/".into(),
            username: "guest".into(),
            exchange: "galley".into(),
            tls: false,
            password: Secret::default(),
        }
    }
}

/// Why settings were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("the settings must be a JSON object")]
    NotAnObject,
    /// Values of the wrong type or out of range, in the order of the settings' fields.
    #[error("invalid settings: {}", .0.iter().map(|i| i.key()).collect::<Vec<_>>().join(", "))]
    Invalid(Vec<Invalid>),
}

/// One refused value: where it is (keys and list indexes from the root) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub path: Vec<String>,
    pub error: FieldError,
}

impl Invalid {
    /// The dotted key, for logs.
    pub fn key(&self) -> String {
        self.path.join(".")
    }
}

impl From<SettingsError> for CoreError {
    fn from(e: SettingsError) -> Self {
        match e {
            SettingsError::NotAnObject => CoreError::bad_request(
                "Failed to load the submitted data due to invalid formatting.",
            ),
            SettingsError::Invalid(invalid) => CoreError::BadRequest {
                message: INVALID_MESSAGE.into(),
                data: nested_errors(&invalid),
            },
        }
    }
}

/// PocketBase's nested `data`: `{"batch": {"maxRequests": {code, message}}}`, list items
/// keyed by their index.
fn nested_errors(invalid: &[Invalid]) -> Value {
    fn insert_at(map: &mut Map<String, Value>, path: &[String], error: Value) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        if rest.is_empty() {
            map.entry(first.clone()).or_insert(error);
            return;
        }
        // Where an error for a whole value already stands, its parts add nothing.
        if let Value::Object(child) = map
            .entry(first.clone())
            .or_insert_with(|| Value::Object(Map::new()))
        {
            insert_at(child, rest, error);
        }
    }
    let mut data = Map::new();
    for i in invalid {
        let error = serde_json::to_value(&i.error).unwrap_or_default();
        insert_at(&mut data, &i.path, error);
    }
    Value::Object(data)
}

/// A value Galley checks beyond its type. Every failure of the field, a wrong type included,
/// answers with the check's message, as before settings were typed.
struct Check {
    path: [&'static str; 2],
    message: String,
    ok: fn(&Settings) -> bool,
}

fn checks() -> [Check; 7] {
    [
        Check {
            path: ["queries", "timeLimitMs"],
            message: "Must be 0 (no limit) or between 50 and 3600000 milliseconds.".into(),
            ok: |s| {
                s.queries.time_limit_ms == 0 || (50..=3_600_000).contains(&s.queries.time_limit_ms)
            },
        },
        // The type is the whole check; kept here for its message.
        Check {
            path: ["batch", "enabled"],
            message: "Must be a boolean.".into(),
            ok: |_| true,
        },
        Check {
            path: ["batch", "maxRequests"],
            message: "Must be between 1 and 10000.".into(),
            ok: |s| (1..=10_000).contains(&s.batch.max_requests),
        },
        Check {
            path: ["realtime", "maxConnections"],
            message: format!("Must be a whole number between 1 and {MAX_CONNECTIONS_SETTING}."),
            ok: |s| (1..=MAX_CONNECTIONS_SETTING).contains(&s.realtime.max_connections),
        },
        Check {
            path: ["realtime", "maxConnectionsPerIP"],
            message: format!("Must be a whole number between 1 and {MAX_CONNECTIONS_SETTING}."),
            ok: |s| (1..=MAX_CONNECTIONS_SETTING).contains(&s.realtime.max_connections_per_ip),
        },
        Check {
            path: ["realtime", "maxSubscriptionsPerClient"],
            message: format!(
                "Must be a whole number between 1 and {}.",
                galley_realtime::MAX_SUBSCRIPTIONS
            ),
            ok: |s| {
                (1..=galley_realtime::MAX_SUBSCRIPTIONS as i64)
                    .contains(&s.realtime.max_subscriptions_per_client)
            },
        },
        Check {
            path: ["brokers", "maxPending"],
            message: format!("Must be a whole number between 1 and {MAX_PENDING_LIMIT}."),
            ok: |s| (1..=MAX_PENDING_LIMIT).contains(&s.brokers.max_pending),
        },
    ]
}

/// `nats://` or `tls://` (or no scheme), optional credentials, `host:port`.
fn valid_nats_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tls://"))
        .unwrap_or(url);
    if rest.contains("://") || url.len() > 2048 {
        return false;
    }
    let addr = rest.rsplit_once('@').map_or(rest, |(_, a)| a);
    let addr = addr.strip_suffix('/').unwrap_or(addr);
    match addr.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

impl Check {
    fn invalid(&self) -> Invalid {
        Invalid {
            path: self.path.iter().map(|s| s.to_string()).collect(),
            error: FieldError::new("validation_invalid_value", self.message.clone()),
        }
    }
}

impl Settings {
    /// Reads settings from their JSON. Missing keys take their defaults and unknown keys are
    /// dropped. Each value of the wrong type is reported, and taken out so that its default
    /// applies, until the rest decodes: one call reports them all (a list reports its first
    /// bad item, since an item has no default of its own and the whole list is taken out).
    pub fn decode(mut value: Value) -> (Settings, Vec<Invalid>) {
        let mut invalid = Vec::new();
        objects_only(&mut value, &template(), &mut Vec::new(), &mut invalid);
        loop {
            let e = match serde_path_to_error::deserialize::<_, Settings>(&value) {
                Ok(s) => return (s, invalid),
                Err(e) => e,
            };
            let path: Vec<String> = e.path().iter().map(segment).collect();
            invalid.extend(type_errors(&path));
            if invalid.len() >= MAX_REPORTED || !take_out(&mut value, &path) {
                return (Settings::default(), invalid);
            }
        }
    }

    /// The ranges Galley enforces (the types are the decoder's business).
    pub fn validate(&self) -> Vec<Invalid> {
        let mut invalid: Vec<Invalid> = checks()
            .iter()
            .filter(|c| !(c.ok)(self))
            .map(Check::invalid)
            .collect();
        invalid.extend(self.invalid_superuser_ips());
        invalid.extend(self.invalid_backups());
        if !valid_nats_url(&self.brokers.nats.url) {
            invalid.push(Invalid {
                path: vec!["brokers".into(), "nats".into(), "url".into()],
                error: FieldError::new(
                    "validation_invalid_url",
                    "Must be nats://[user:pass@]host:port, or tls://… for TLS.",
                ),
            });
        }
        invalid
    }

    /// Decoded and validated: the way in for settings a client sent.
    pub fn from_json(value: Value) -> Result<Settings, SettingsError> {
        let (settings, mut invalid) = Settings::decode(value);
        // A value of the wrong type was replaced by its default, which passes its check, so
        // no field is reported twice.
        invalid.extend(settings.validate());
        if invalid.is_empty() {
            return Ok(settings);
        }
        let template = template();
        invalid.sort_by_cached_key(|i| field_order(&template, &i.path));
        Err(SettingsError::Invalid(invalid))
    }

    /// These settings with `patch` applied as a PATCH does: merged over the stored form
    /// (objects key by key, anything else replaces, so omitted secrets stay), then checked.
    pub fn patched(&self, patch: &Value) -> Result<Settings, SettingsError> {
        if !patch.is_object() {
            return Err(SettingsError::NotAnObject);
        }
        let mut merged = self.to_stored();
        merge(&mut merged, patch);
        Settings::from_json(merged)
    }

    /// The settings as sent to clients: secrets are never serialized.
    pub fn public_json(&self) -> Value {
        // Plain structs with string keys: serializing cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The settings as stored in `_params`: the public form plus the secrets.
    pub fn to_stored(&self) -> Value {
        let mut v = self.public_json();
        merge(
            &mut v,
            &json!({
                "smtp": {"password": self.smtp.password.expose()},
                "brokers": {"rabbitmq": {"password": self.brokers.rabbitmq.password.expose()}},
                "s3": {"secret": self.s3.secret.expose()},
                "backups": {"s3": {"secret": self.backups.s3.secret.expose()}},
            }),
        );
        v
    }

    pub fn batch_enabled(&self) -> bool {
        self.batch.enabled
    }

    /// Whether the auth endpoints are rate limited (`rateLimits.enabled`, on by default).
    pub fn rate_limits_enabled(&self) -> bool {
        self.rate_limits.enabled
    }

    pub fn batch_max_requests(&self) -> usize {
        usize::try_from(self.batch.max_requests).unwrap_or(0)
    }

    /// `queries.timeLimitMs` (`None`: no limit).
    pub fn query_time_limit(&self) -> Option<std::time::Duration> {
        u64::try_from(self.queries.time_limit_ms)
            .ok()
            .filter(|ms| *ms > 0)
            .map(std::time::Duration::from_millis)
    }

    /// `realtime.maxConnections`, `maxConnectionsPerIP` and `maxSubscriptionsPerClient`.
    pub fn realtime_limits(&self) -> galley_realtime::Limits {
        let get = |n: i64, default: usize| usize::try_from(n).unwrap_or(default);
        galley_realtime::Limits {
            max_connections: get(
                self.realtime.max_connections,
                galley_realtime::MAX_CONNECTIONS,
            ),
            max_per_ip: get(
                self.realtime.max_connections_per_ip,
                galley_realtime::MAX_CONNECTIONS_PER_IP,
            ),
            max_subscriptions: get(
                self.realtime.max_subscriptions_per_client,
                galley_realtime::MAX_SUBSCRIPTIONS,
            ),
        }
    }
}

fn segment(s: &serde_path_to_error::Segment) -> String {
    use serde_path_to_error::Segment;
    match s {
        Segment::Seq { index } => index.to_string(),
        Segment::Map { key } => key.clone(),
        Segment::Enum { variant } => variant.clone(),
        Segment::Unknown => "?".into(),
    }
}

/// Every key with a value of its type, each list holding one item: where a wrong value's
/// message and the order of errors are read from, so they follow the types above.
fn template() -> Value {
    let mut s = Settings {
        superuser_ips: vec![String::new()],
        ..Settings::default()
    };
    s.rate_limits.rules = vec![RateLimitRule::default()];
    s.rate_limits.excluded_ips = vec![String::new()];
    s.trusted_proxy.headers = vec![String::new()];
    s.to_stored()
}

/// The template's value at `path` (list indexes all lead to the one item).
fn template_at<'a>(template: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(template, |at, key| match at {
        Value::Object(o) => o.get(key),
        Value::Array(a) => a.first(),
        _ => None,
    })
}

/// Sort key: each key's position among its siblings in the template, or a list index.
fn field_order(template: &Value, path: &[String]) -> Vec<usize> {
    let mut at = Some(template);
    path.iter()
        .map(|key| match at {
            Some(Value::Object(o)) => {
                let pos = o.keys().position(|k| k == key).unwrap_or(usize::MAX);
                at = o.get(key);
                pos
            }
            Some(Value::Array(a)) => {
                at = a.first();
                key.parse().unwrap_or(usize::MAX)
            }
            _ => usize::MAX,
        })
        .collect()
}

/// The errors for a value of the wrong type at `path`: a checked field's own message; for a
/// section that is not an object, each checked field in it (it has none of them); otherwise
/// what the template says the value must be.
fn type_errors(path: &[String]) -> Vec<Invalid> {
    let checks = checks();
    let under: Vec<Invalid> = checks
        .iter()
        .filter(|c| {
            !path.is_empty()
                && c.path.len() >= path.len()
                && c.path.iter().zip(path).all(|(a, b)| a == b)
        })
        .map(Check::invalid)
        .collect();
    if !under.is_empty() {
        return under;
    }
    let message = match template_at(&template(), path) {
        Some(Value::Bool(_)) => "Must be a boolean.",
        Some(Value::Number(_)) => "Must be a whole number.",
        Some(Value::String(_)) => "Must be a string.",
        Some(Value::Array(_)) => "Must be a list.",
        Some(Value::Object(_)) => "Must be an object.",
        _ => "Invalid value.",
    };
    vec![Invalid {
        path: path.to_vec(),
        error: FieldError::new("validation_invalid_value", message),
    }]
}

/// serde reads a struct from a list too (fields by position); a section is an object only,
/// as in PocketBase, so a list where the template has an object is reported and replaced by
/// an empty object (all defaults) before serde sees it.
fn objects_only(
    value: &mut Value,
    template: &Value,
    path: &mut Vec<String>,
    invalid: &mut Vec<Invalid>,
) {
    if template.is_object() && value.is_array() {
        invalid.extend(type_errors(path));
        *value = Value::Object(Map::new());
        return;
    }
    match (value, template) {
        (Value::Object(v), Value::Object(t)) => {
            for (k, item) in v.iter_mut() {
                if let Some(tk) = t.get(k) {
                    path.push(k.clone());
                    objects_only(item, tk, path, invalid);
                    path.pop();
                }
            }
        }
        (Value::Array(items), Value::Array(t)) => {
            if let Some(t0) = t.first() {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(i.to_string());
                    objects_only(item, t0, path, invalid);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

fn descend<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |at, key| match at {
        Value::Object(o) => o.get_mut(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
        _ => None,
    })
}

/// Removes the value at `path` so that its default applies; an item of a list removes the
/// list. False when there is nothing to remove (the root itself is wrong).
fn take_out(value: &mut Value, path: &[String]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    if matches!(descend(value, parent), Some(Value::Array(_))) {
        return take_out(value, parent);
    }
    match descend(value, parent) {
        Some(Value::Object(o)) => o.remove(last).is_some(),
        _ => false,
    }
}

/// Recursively merges `patch` into `base` (objects merge, everything else replaces).
pub(crate) fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// The stored settings. A row from an older version may lack keys (defaults apply) or hold a
/// value of the wrong type, which earlier versions stored unchecked: that value's default
/// applies and the server still starts.
pub fn load(c: &mut dyn Conn) -> Result<Settings, CoreError> {
    let mut sql = Sql::new(c.dialect());
    sql.push("SELECT \"value\" FROM \"_params\" WHERE \"id\" = ")
        .push_param("settings");
    let Some(row) = c.query_sql(&sql)?.into_iter().next() else {
        return Ok(Settings::default());
    };
    let (settings, invalid) = Settings::decode(row.json("value"));
    for i in &invalid {
        tracing::warn!(key = %i.key(), error = %i.error.message, "stored setting ignored; its default applies");
    }
    // Out of range only if written by hand; kept as they are, as before, but said.
    for i in settings.validate() {
        tracing::warn!(key = %i.key(), error = %i.error.message, "stored setting out of range");
    }
    Ok(settings)
}

/// Builds the storage the settings ask for: S3 when `s3.enabled`, else the data dir.
pub fn storage_from_settings(
    settings: &Settings,
    data_dir: &std::path::Path,
) -> Result<Storage, CoreError> {
    let s3 = &settings.s3;
    let backend = if s3.enabled {
        galley_files::Backend::S3(galley_files::S3Config {
            bucket: s3.bucket.clone(),
            region: s3.region.clone(),
            endpoint: s3.endpoint.clone(),
            access_key: s3.access_key.clone(),
            secret: s3.secret.expose().to_owned(),
            force_path_style: s3.force_path_style,
        })
    } else {
        galley_files::Backend::Local(data_dir.join("storage"))
    };
    Storage::open(&backend).map_err(|e| CoreError::bad_request(format!("File storage: {e}")))
}

/// An IP address or a CIDR subnet (`10.0.0.0/8`, `::1`, `fd00::/8`).
fn parse_ip_net(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let s = s.trim();
    let (ip, bits) = match s.split_once('/') {
        Some((ip, bits)) => (ip, Some(bits)),
        None => (s, None),
    };
    let ip: std::net::IpAddr = ip.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        None => max,
        Some(b) if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) && b.len() <= 3 => {
            b.parse::<u8>().ok().filter(|b| *b <= max)?
        }
        Some(_) => return None,
    };
    Some((ip, bits))
}

fn in_net(ip: std::net::IpAddr, (net, bits): (std::net::IpAddr, u8)) -> bool {
    use std::net::IpAddr;
    // An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`) is that IPv4 client.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let (a, b, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    if shift >= 128 {
        return true;
    }
    (a >> shift) == (b >> shift)
}

impl Settings {
    /// `superuserIPs` items that are neither an IP nor a CIDR subnet (PocketBase's code,
    /// misspelling included).
    fn invalid_superuser_ips(&self) -> Vec<Invalid> {
        self.superuser_ips
            .iter()
            .enumerate()
            .filter(|(_, s)| parse_ip_net(s).is_none())
            .map(|(i, _)| Invalid {
                path: vec!["superuserIPs".into(), i.to_string()],
                error: FieldError::new(
                    "validation_invlaid_ip_or_subnet",
                    "Invalid IP or CIDR subnet.",
                ),
            })
            .collect()
    }

    /// PocketBase's checks of the backups schedule: a cron expression (5 fields or a macro)
    /// and, when there is one, at least one backup to keep.
    fn invalid_backups(&self) -> Vec<Invalid> {
        let mut invalid = Vec::new();
        let b = &self.backups;
        if !b.cron.is_empty() && galley_jobs::cron::Schedule::parse(&b.cron).is_err() {
            invalid.push(Invalid {
                path: vec!["backups".into(), "cron".into()],
                error: FieldError::new(
                    "validation_invalid_cron",
                    "Invalid cron expression - must be a valid macro or to have exactly 5 space separated segments.",
                ),
            });
        }
        if !b.cron.is_empty() && b.cron_max_keep == 0 {
            invalid.push(Invalid {
                path: vec!["backups".into(), "cronMaxKeep".into()],
                error: FieldError::required(),
            });
        } else if b.cron_max_keep < 0 {
            invalid.push(Invalid {
                path: vec!["backups".into(), "cronMaxKeep".into()],
                error: FieldError::new(
                    "validation_min_greater_equal_than_required",
                    "Must be no less than 1.",
                )
                .with_params(json!({"threshold": 1})),
            });
        }
        invalid
    }

    /// Whether a superuser may call from `ip`: always when `superuserIPs` is empty, else
    /// only from an address inside one of its entries.
    pub fn superuser_ip_allowed(&self, ip: &str) -> bool {
        if self.superuser_ips.is_empty() {
            return true;
        }
        let Ok(ip) = ip.trim().parse::<std::net::IpAddr>() else {
            return false;
        };
        self.superuser_ips
            .iter()
            .filter_map(|s| parse_ip_net(s))
            .any(|net| in_net(ip, net))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(patch: Value) -> Value {
        match Settings::default().patched(&patch) {
            Err(e) => match CoreError::from(e) {
                CoreError::BadRequest { data, .. } => data,
                other => panic!("{other:?}"),
            },
            Ok(_) => panic!("accepted {patch}"),
        }
    }

    #[test]
    fn public_shape_is_pocketbases() {
        let v = Settings::default().public_json();
        let keys: Vec<&String> = v
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            [
                "superuserIPs",
                "smtp",
                "backups",
                "s3",
                "meta",
                "rateLimits",
                "trustedProxy",
                "batch",
                "logs",
                "realtime",
                "webhooks",
                "brokers",
                "queries"
            ]
        );
        assert_eq!(
            v["smtp"].to_string(),
            r#"{"enabled":false,"port":587,"host":"smtp.example.com","username":"","authMethod":"","tls":false,"localName":""}"#
        );
        assert_eq!(
            v["meta"].to_string(),
            r##"{"accentColor":"#1055c9","appName":"Galley","appURL":"http://localhost:8090","senderName":"Support","senderAddress":"support@example.com","hideControls":false}"##
        );
        assert_eq!(
            v["rateLimits"].to_string(),
            r#"{"rules":[],"excludedIPs":[],"enabled":true}"#
        );
        assert_eq!(
            v["logs"].to_string(),
            r#"{"maxDataSize":0,"maxDays":5,"minLevel":0,"logIP":true,"logAuthId":false}"#
        );
    }

    #[test]
    fn secrets_are_stored_but_never_public() {
        let s = Settings::default()
            .patched(&json!({"smtp": {"password": "pw"}, "s3": {"secret": "a"}, "backups": {"s3": {"secret": "b"}}}))
            .expect("valid");
        assert_eq!(s.smtp.password.expose(), "pw");
        let public = s.public_json().to_string();
        assert!(!public.contains("pw") && !public.contains("\"a\"") && !public.contains("\"b\""));
        assert!(!format!("{s:?}").contains("pw"));
        // A patch without them keeps them.
        let s = s
            .patched(&json!({"smtp": {"username": "u"}}))
            .expect("valid");
        assert_eq!(s.smtp.password.expose(), "pw");
        assert_eq!(s.backups.s3.secret.expose(), "b");
        assert_eq!(Settings::decode(s.to_stored()).0, s, "round trip");
    }

    #[test]
    fn old_rows_default_and_unknown_keys_drop() {
        let (s, invalid) = Settings::decode(json!({"batch": {"enabled": true}, "extra": 1}));
        assert!(invalid.is_empty());
        assert!(s.batch.enabled);
        assert_eq!(s.batch.max_requests, 50);
        assert_eq!(s.meta, Meta::default());
        assert!(s.public_json().get("extra").is_none());
    }

    #[test]
    fn every_wrong_type_is_reported() {
        assert_eq!(
            errors(
                json!({"smtp": {"port": "x", "tls": 1}, "meta": {"appName": null}, "superuserIPs": [1]})
            ),
            json!({
                "superuserIPs": {"0": {"code": "validation_invalid_value", "message": "Must be a string."}},
                "smtp": {
                    "port": {"code": "validation_invalid_value", "message": "Must be a whole number."},
                    "tls": {"code": "validation_invalid_value", "message": "Must be a boolean."},
                },
                "meta": {"appName": {"code": "validation_invalid_value", "message": "Must be a string."}},
            })
        );
        assert_eq!(
            errors(json!({"rateLimits": {"rules": [{"label": "x", "duration": "60"}, 5]}})),
            json!({"rateLimits": {"rules": {
                "0": {"duration": {"code": "validation_invalid_value", "message": "Must be a whole number."}},
                "1": {"code": "validation_invalid_value", "message": "Must be an object."},
            }}})
        );
        assert_eq!(
            errors(json!({"logs": []})),
            json!({"logs": {"code": "validation_invalid_value", "message": "Must be an object."}})
        );
        // Not read by position either.
        assert_eq!(
            errors(json!({"rateLimits": {"rules": [["/api/", "", 10, 5]]}})),
            json!({"rateLimits": {"rules": {"0": {"code": "validation_invalid_value", "message": "Must be an object."}}}})
        );
    }

    #[test]
    fn checked_fields_keep_their_messages() {
        let batch = json!({
            "enabled": {"code": "validation_invalid_value", "message": "Must be a boolean."},
            "maxRequests": {"code": "validation_invalid_value", "message": "Must be between 1 and 10000."},
        });
        assert_eq!(
            errors(json!({"batch": {"enabled": "yes", "maxRequests": "many"}})),
            json!({"batch": batch})
        );
        assert_eq!(
            errors(json!({"batch": {"enabled": null, "maxRequests": 0}})),
            json!({"batch": batch})
        );
        assert_eq!(errors(json!({"batch": 5})), json!({"batch": batch}));
        let data = errors(
            json!({"realtime": {"maxConnections": 0, "maxSubscriptionsPerClient": "3"}, "batch": {"maxRequests": 10001}}),
        );
        assert_eq!(
            data.to_string(),
            json!({
                "batch": {"maxRequests": {"code": "validation_invalid_value", "message": "Must be between 1 and 10000."}},
                "realtime": {
                    "maxConnections": {"code": "validation_invalid_value", "message": "Must be a whole number between 1 and 1000000."},
                    "maxSubscriptionsPerClient": {"code": "validation_invalid_value", "message": "Must be a whole number between 1 and 1000."},
                },
            })
            .to_string(),
            "in the order of the fields"
        );
    }

    #[test]
    fn not_an_object() {
        assert_eq!(
            Settings::default().patched(&json!([1])),
            Err(SettingsError::NotAnObject)
        );
        let (s, invalid) = Settings::decode(json!("x"));
        assert_eq!(s, Settings::default());
        assert_eq!(invalid.len(), 1);
    }

    #[test]
    fn superuser_ips_are_ips_or_subnets() {
        let mut s = Settings::default();
        assert!(
            s.superuser_ip_allowed("203.0.113.9"),
            "empty list allows all"
        );
        s.superuser_ips = vec![
            "10.0.0.1".into(),
            "192.168.0.0/16".into(),
            "fd00::/8".into(),
        ];
        for ok in ["10.0.0.1", "192.168.44.2", "::ffff:192.168.1.1", "fd12::1"] {
            assert!(s.superuser_ip_allowed(ok), "{ok}");
        }
        for no in ["10.0.0.2", "127.0.0.1", "fe80::1", "", "nope"] {
            assert!(!s.superuser_ip_allowed(no), "{no}");
        }
        s.superuser_ips = vec!["0.0.0.0/0".into()];
        assert!(s.superuser_ip_allowed("8.8.8.8"));
        s.superuser_ips = vec![
            "bad".into(),
            "10.0.0.1".into(),
            "::1".into(),
            "10.0.0.0/33".into(),
            "1.2.3.4/".into(),
            "1.2.3.4/+8".into(),
        ];
        let bad: Vec<String> = s.validate().iter().map(Invalid::key).collect();
        assert_eq!(
            bad,
            [
                "superuserIPs.0",
                "superuserIPs.3",
                "superuserIPs.4",
                "superuserIPs.5"
            ]
        );
    }
}
