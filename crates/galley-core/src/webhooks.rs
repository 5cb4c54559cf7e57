//! Outgoing webhooks: `_webhooks` records (managed by superusers through the records API)
//! say which collection and events go to which URL, optionally narrowed by a filter in the
//! rule language. A record hook, inside the write job, checks webhook records as they are
//! saved and, for every record write that matches an active webhook, adds a
//! `_webhookDeliveries` row and a `webhook` job in the same transaction: a delivery exists if
//! and only if its write commits. The job POSTs the body signed per Standard Webhooks
//! (galley-jobs' `webhook` module) and records each attempt on the delivery row; failures
//! are retried with the queue's backoff.

use crate::app::App;
use crate::app::Listening;
use crate::context::{Caller, Change, RecordHook, RequestMeta, WriteCtx};
use crate::error::CoreError;
use crate::rules::{self, RuleCtx};
use galley_jobs::webhook::{self as wh, TargetError};
use galley_jobs::{Job, JobError, NewJob};
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt, StoreError};
use galley_types::collection::{WEBHOOKS, WEBHOOK_DELIVERIES};
use galley_types::{Collection, FieldError};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The job kind of a delivery; its payload is `{"delivery": "<_webhookDeliveries id>"}`.
pub const JOB_KIND: &str = "webhook";

/// How long one attempt may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The record hook: validates `_webhooks` records and enqueues deliveries.
pub struct Webhooks {
    listening: Listening,
}

impl Webhooks {
    pub(crate) fn new(listening: Listening) -> Self {
        Webhooks { listening }
    }
}

impl RecordHook for Webhooks {
    fn before_create(
        &self,
        c: &mut dyn Conn,
        ctx: &WriteCtx,
        change: &mut Change<'_>,
    ) -> Result<(), CoreError> {
        if change.collection.name == WEBHOOKS {
            validate(c, ctx, change, &self.listening)?;
        }
        Ok(())
    }

    fn before_update(
        &self,
        c: &mut dyn Conn,
        ctx: &WriteCtx,
        change: &mut Change<'_>,
    ) -> Result<(), CoreError> {
        if change.collection.name == WEBHOOKS {
            validate(c, ctx, change, &self.listening)?;
        }
        Ok(())
    }

    fn after_create(
        &self,
        c: &mut dyn Conn,
        ctx: &WriteCtx,
        col: &Collection,
        record: &Map<String, Value>,
    ) -> Result<(), CoreError> {
        fire(c, ctx, col, "create", record)
    }

    fn after_update(
        &self,
        c: &mut dyn Conn,
        ctx: &WriteCtx,
        col: &Collection,
        _old: &Map<String, Value>,
        record: &Map<String, Value>,
    ) -> Result<(), CoreError> {
        fire(c, ctx, col, "update", record)
    }

    /// Before, so the filter can still be checked against the stored row.
    fn before_delete(
        &self,
        c: &mut dyn Conn,
        ctx: &WriteCtx,
        col: &Collection,
        record: &Map<String, Value>,
    ) -> Result<(), CoreError> {
        fire(c, ctx, col, "delete", record)
    }
}

fn text<'a>(r: &'a Map<String, Value>, k: &str) -> &'a str {
    r.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// The checks beyond the fields' own: an http(s) target outside refused ranges (unless
/// `webhooks.allowPrivateNetworks`) and not this server, an existing collection, a filter
/// that compiles against it, a usable secret. Field errors make the save a 400.
fn validate(
    c: &mut dyn Conn,
    ctx: &WriteCtx,
    change: &mut Change<'_>,
    listening: &Listening,
) -> Result<(), CoreError> {
    let settings = crate::settings::load(c)?;
    let url = text(change.record, "url");
    if !url.is_empty() {
        if let Err(e) = wh::check_url(url, &listening.policy(&settings)) {
            change.errors.add(
                "url",
                FieldError::new("validation_invalid_url", e.to_string()),
            );
        }
    }
    let name = text(change.record, "collection").to_owned();
    let target = ctx.schema.find(&name).cloned();
    match &target {
        _ if name.is_empty() => {}
        Some(col) if !col.name.starts_with('_') && col.view_query.is_none() => {
            let filter = text(change.record, "filter");
            if !filter.trim().is_empty() {
                if let Err(e) = rules::check_rule(&ctx.schema, col, filter) {
                    change.errors.add(
                        "filter",
                        FieldError::new(
                            "validation_invalid_filter",
                            format!("Invalid filter: {e}."),
                        ),
                    );
                }
            }
        }
        _ => change.errors.add(
            "collection",
            FieldError::new(
                "validation_invalid_collection",
                "Must be the name or id of a base or auth collection.",
            ),
        ),
    }
    let secret = text(change.record, "secret");
    if !secret.is_empty() && wh::secret_key(secret).is_none() {
        change.errors.add(
            "secret",
            FieldError::new(
                "validation_invalid_secret",
                "Must be whsec_ followed by base64 of 16 to 256 bytes.",
            ),
        );
    }
    Ok(())
}

/// Adds a delivery and its job for every active webhook of `col` that wants `event` and
/// whose filter admits the record.
fn fire(
    c: &mut dyn Conn,
    ctx: &WriteCtx,
    col: &Collection,
    event: &'static str,
    record: &Map<String, Value>,
) -> Result<(), CoreError> {
    // System collections (webhooks and their deliveries among them) send no webhooks.
    if col.name.starts_with('_') {
        return Ok(());
    }
    let hooks = {
        let mut q = Sql::new(c.dialect());
        q.push("SELECT \"id\", \"events\", \"filter\" FROM \"_webhooks\" WHERE \"active\" = ")
            .push_param(true)
            .push(" AND (\"collection\" = ")
            .push_param(col.name.as_str())
            .push(" OR \"collection\" = ")
            .push_param(col.id.as_str())
            .push(")");
        c.query_sql(&q)?
    };
    if hooks.is_empty() {
        return Ok(());
    }
    let Some(deliveries) = ctx.schema.find(WEBHOOK_DELIVERIES).cloned() else {
        return Ok(());
    };
    let id = text(record, "id").to_owned();
    let mut body: Option<Value> = None;
    for h in hooks {
        let wants = h
            .json("events")
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e.as_str() == Some(event)));
        if !wants {
            continue;
        }
        let filter = h.text("filter");
        if !filter.trim().is_empty() {
            // A filter is a condition on the record, not on whoever wrote it: checked as
            // a rule for a guest.
            let (guest, meta) = (Caller::Guest, RequestMeta::default());
            let rctx = RuleCtx::new(&ctx.schema, col, &guest, &meta, c.dialect());
            let access = rctx.access(&Some(filter))?;
            if !rules::record_satisfies(c, col, &id, access)? {
                continue;
            }
        }
        let body = body
            .get_or_insert_with(|| event_payload(ctx, col, event, record))
            .clone();
        let delivery = galley_types::ids::record_id();
        let now = galley_types::datetime::now_string();
        let mut row = Map::new();
        for (k, v) in [
            ("id", json!(delivery)),
            ("webhook", json!(h.text("id"))),
            ("event", json!(event)),
            ("collection", json!(col.name)),
            ("record", json!(id)),
            ("payload", body),
            ("status", json!("pending")),
            ("attempts", json!(0)),
            ("responseCode", json!(0)),
            ("duration", json!(0)),
            ("error", json!("")),
            ("created", json!(now)),
            ("updated", json!(now)),
        ] {
            row.insert(k.into(), v);
        }
        crate::records::write::insert_row(c, &deliveries, &row)?;
        galley_jobs::enqueue(c, &NewJob::new(JOB_KIND, json!({"delivery": delivery})))
            .map_err(|e| CoreError::internal(&e))?;
    }
    Ok(())
}

/// The body of webhook deliveries and broker messages: the event, the collection, and the
/// record as a superuser sees it (hidden
/// fields included; never a password hash or token key).
pub(crate) fn event_payload(
    ctx: &WriteCtx,
    col: &Collection,
    event: &str,
    record: &Map<String, Value>,
) -> Value {
    let superuser = ctx
        .schema
        .find("_superusers")
        .cloned()
        .map(|s| Caller::Record {
            collection: s,
            record: Map::new(),
        });
    let shown = crate::rows::present(col, record, &superuser.unwrap_or_default());
    json!({
        "event": event,
        "collection": {"id": col.id, "name": col.name},
        "record": shown,
    })
}

/// Registers the delivery job's handler.
pub fn start(app: &Arc<App>) {
    let weak = Arc::downgrade(app);
    app.jobs().register(JOB_KIND, move |job| {
        let app = weak.clone();
        async move { deliver(app, job).await }
    });
}

struct Pending {
    webhook: Option<(String, String, bool)>,
    body: String,
}

async fn deliver(app: Weak<App>, job: Job) -> Result<(), JobError> {
    let app = app
        .upgrade()
        .ok_or_else(|| JobError::retry("the server is stopping"))?;
    let id = job
        .payload
        .get("delivery")
        .and_then(Value::as_str)
        .ok_or_else(|| JobError::permanent("the payload names no delivery"))?
        .to_owned();
    let key = id.clone();
    let pending = app
        .store
        .read(move |c: &mut dyn Conn| -> Result<Option<Pending>, StoreError> {
            let mut q = Sql::new(c.dialect());
            q.push("SELECT d.\"payload\" AS payload, w.\"url\" AS url, w.\"secret\" AS secret, w.\"active\" AS active, w.\"id\" AS wid FROM \"_webhookDeliveries\" d LEFT JOIN \"_webhooks\" w ON w.\"id\" = d.\"webhook\" WHERE d.\"id\" = ")
                .push_param(key.as_str());
            Ok(c.query_sql(&q)?.first().map(|r| Pending {
                webhook: r
                    .opt_text("wid")
                    .filter(|w| !w.is_empty())
                    .map(|_| (r.text("url"), r.text("secret"), r.bool("active"))),
                body: r.json("payload").to_string(),
            }))
        })
        .await
        .map_err(|e| JobError::retry(e.to_string()))?;
    // Deleted with its delivery row: nothing to send.
    let Some(p) = pending else { return Ok(()) };
    let Some((url, secret, active)) = p.webhook else {
        return give_up(&app, &id, job.attempt, "the webhook was deleted").await;
    };
    if !active {
        return give_up(&app, &id, job.attempt, "the webhook is not active").await;
    }
    let policy = app.webhook_policy();
    let target = match wh::check_url(&url, &policy) {
        Ok(t) => t,
        Err(e) => return give_up(&app, &id, job.attempt, &e.to_string()).await,
    };
    let Some(key) = wh::secret_key(&secret) else {
        return give_up(
            &app,
            &id,
            job.attempt,
            "the webhook's secret is not a whsec_ secret",
        )
        .await;
    };
    let attempt = match wh::deliver(&target, &policy, &key, &id, p.body.as_bytes(), TIMEOUT).await {
        Ok(a) => a,
        Err(TargetError::Unresolved(e)) => wh::Attempt {
            status: 0,
            duration_ms: 0,
            error: format!("the host could not be resolved: {e}"),
        },
        Err(e) => return give_up(&app, &id, job.attempt, &e.to_string()).await,
    };
    let last = job.attempt >= job.max_attempts;
    let status = match (attempt.ok(), last) {
        (true, _) => "delivered",
        (false, true) => "failed",
        (false, false) => "pending",
    };
    record(&app, &id, status, job.attempt, &attempt).await?;
    if attempt.ok() {
        Ok(())
    } else {
        Err(JobError::retry(attempt.error))
    }
}

/// A delivery that no retry can help: marked failed, the job ends.
async fn give_up(app: &App, id: &str, attempt: i64, error: &str) -> Result<(), JobError> {
    let a = wh::Attempt {
        status: 0,
        duration_ms: 0,
        error: error.to_owned(),
    };
    record(app, id, "failed", attempt, &a).await?;
    Ok(())
}

async fn record(
    app: &App,
    id: &str,
    status: &'static str,
    attempts: i64,
    a: &wh::Attempt,
) -> Result<(), JobError> {
    let (id, a) = (id.to_owned(), a.clone());
    app.store
        .write(move |c: &mut dyn Conn| -> Result<(), StoreError> {
            let mut q = Sql::new(c.dialect());
            q.push("UPDATE \"_webhookDeliveries\" SET \"status\" = ")
                .push_param(status)
                .push(", \"attempts\" = ")
                .push_param(SqlValue::Real(attempts as f64))
                .push(", \"responseCode\" = ")
                .push_param(SqlValue::Real(f64::from(a.status)))
                .push(", \"duration\" = ")
                .push_param(SqlValue::Real(a.duration_ms as f64))
                .push(", \"error\" = ")
                .push_param(a.error.as_str())
                .push(", \"updated\" = ")
                .push_param(SqlValue::Timestamp(chrono::Utc::now()))
                .push(" WHERE \"id\" = ")
                .push_param(id.as_str());
            c.execute_sql(&q)?;
            Ok(())
        })
        .await
        .map_err(|e| JobError::retry(e.to_string()))
}

/// A delivery as the dashboard lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryInfo {
    pub id: String,
    pub webhook: String,
    pub event: String,
    pub collection: String,
    pub record: String,
    pub status: String,
    pub attempts: i64,
    pub response_code: i64,
    pub duration: i64,
    pub error: String,
    pub created: String,
}

/// The newest `limit` deliveries (of webhook `webhook` only, when given).
pub async fn recent_deliveries(
    app: &App,
    webhook: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryInfo>, CoreError> {
    let webhook = webhook.map(str::to_owned);
    Ok(app
        .store
        .read(move |c: &mut dyn Conn| {
            let mut q = Sql::new(c.dialect());
            q.push("SELECT \"id\", \"webhook\", \"event\", \"collection\", \"record\", \"status\", \"attempts\", \"responseCode\", \"duration\", \"error\", \"created\" FROM \"_webhookDeliveries\"");
            if let Some(w) = &webhook {
                q.push(" WHERE \"webhook\" = ").push_param(w.as_str());
            }
            q.push(" ORDER BY \"created\" DESC, \"id\" DESC LIMIT ")
                .push_param(SqlValue::Int(limit.clamp(1, 1000)));
            Ok::<_, StoreError>(
                c.query_sql(&q)?
                    .iter()
                    .map(|r| DeliveryInfo {
                        id: r.text("id"),
                        webhook: r.text("webhook"),
                        event: r.text("event"),
                        collection: r.text("collection"),
                        record: r.text("record"),
                        status: r.text("status"),
                        attempts: r.real("attempts") as i64,
                        response_code: r.real("responseCode") as i64,
                        duration: r.real("duration") as i64,
                        error: r.text("error"),
                        created: r
                            .timestamp("created")
                            .map(|t| galley_types::datetime::format(&t))
                            .unwrap_or_default(),
                    })
                    .collect(),
            )
        })
        .await?)
}

/// Sends delivery `id` again (same body and `webhook-id`), with a fresh set of attempts.
pub async fn redeliver(app: &App, id: &str) -> Result<(), CoreError> {
    let id = id.to_owned();
    app.store
        .write(move |c: &mut dyn Conn| {
            let mut q = Sql::new(c.dialect());
            q.push("UPDATE \"_webhookDeliveries\" SET \"status\" = 'pending', \"error\" = '' WHERE \"id\" = ")
                .push_param(id.as_str());
            if c.execute_sql(&q)? == 0 {
                return Err(CoreError::not_found());
            }
            galley_jobs::enqueue(c, &NewJob::new(JOB_KIND, json!({"delivery": id})))
                .map_err(|e| CoreError::internal(&e))?;
            Ok(())
        })
        .await
}
