//! `POST /api/batch`: several record writes in one transaction.

use crate::app::App;
use crate::context::{Caller, Input, RequestMeta, WriteCtx};
use crate::error::CoreError;
use crate::records::{self, delete, write};
use crate::rows as output;
use galley_store::Conn;
use galley_types::Collection;
use serde_json::{json, Map, Value};
use std::sync::Arc;

#[derive(Debug)]
pub struct BatchRequest {
    pub method: String,
    pub url: String,
    pub body: Map<String, Value>,
    pub headers: Map<String, Value>,
    /// The request's file parts (`requests.N.field` in a multipart batch body).
    pub uploads: Vec<crate::files::Upload>,
}

enum Action {
    Create,
    Upsert,
    Update(String),
    Delete(String),
}

struct Op {
    action: Action,
    collection: Arc<Collection>,
    input: Input,
    fields: Option<String>,
}

fn failed_at(i: usize, e: CoreError) -> CoreError {
    CoreError::BatchFailed {
        index: i,
        error: Box::new(e),
    }
}

/// One request's answer in a committed batch.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BatchItem {
    /// The record as the caller sees it; `None` for a delete.
    pub body: Option<Value>,
    pub status: u16,
}

fn parse_url(url: &str) -> (Vec<String>, Map<String, Value>) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let segments = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let mut q = Map::new();
    for (k, v) in serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default() {
        q.entry(k).or_insert(Value::String(v));
    }
    (segments, q)
}

fn percent_decode(s: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("x={}", s.replace('+', "%2B")))
        .ok()
        .and_then(|v| v.into_iter().next().map(|(_, v)| v))
        .unwrap_or_else(|| s.to_owned())
}

/// What the rules of a sub-request see of it.
fn meta_of(r: &BatchRequest, query: &Map<String, Value>) -> RequestMeta {
    RequestMeta {
        method: String::new(),
        context: "batch".into(),
        query: query.clone(),
        headers: r.headers.clone(),
    }
}

/// A sub-request resolved: what to do, on which collection, with which query parameters.
type Resolved = (Action, Arc<Collection>, Map<String, Value>);
/// A sub-request's outcome: its collection, the written record (none for a delete) and its
/// `fields` picker.
type Outcome = (Arc<Collection>, Option<Map<String, Value>>, Option<String>);

fn resolve(app: &App, r: &BatchRequest) -> Result<Resolved, CoreError> {
    let (seg, query) = parse_url(&r.url);
    let unsupported =
        || CoreError::bad_request(format!("Unsupported batch action {} {}.", r.method, r.url));
    if seg.len() < 4
        || seg[0] != "api"
        || seg[1] != "collections"
        || seg[3] != "records"
        || seg.len() > 5
    {
        return Err(unsupported());
    }
    let col = records::find_collection(app, &seg[2])?;
    let action = match (r.method.to_ascii_uppercase().as_str(), seg.get(4)) {
        ("POST", None) => Action::Create,
        ("PUT", None) => Action::Upsert,
        ("PATCH", Some(id)) => Action::Update(id.clone()),
        ("DELETE", Some(id)) => Action::Delete(id.clone()),
        _ => return Err(unsupported()),
    };
    Ok((action, col, query))
}

pub async fn run(
    app: &App,
    requests: Vec<BatchRequest>,
    caller: &Caller,
) -> Result<Vec<BatchItem>, CoreError> {
    let settings = app.settings();
    if !settings.batch_enabled() {
        return Err(CoreError::Forbidden(
            "Batch requests are not allowed.".into(),
        ));
    }
    if requests.is_empty() {
        return Err(CoreError::BadRequest {
            message: "Invalid batch request data.".into(),
            data: json!({"requests": {"code": "validation_required", "message": "Cannot be blank."}}),
        });
    }
    let max = settings.batch_max_requests();
    if requests.len() > max {
        return Err(CoreError::BadRequest {
            message: "Invalid batch request data.".into(),
            data: json!({"requests": {"code": "validation_length_too_long", "message": format!("The length must be no more than {max}."), "params": {"max": max, "min": 0}}}),
        });
    }
    let mut ops = Vec::with_capacity(requests.len());
    let mut staged = Vec::new();
    let discard = |staged: Vec<crate::files::Staged>| async move {
        for s in staged {
            s.discard().await;
        }
    };
    for (i, mut r) in requests.into_iter().enumerate() {
        let resolved = resolve(app, &r).map_err(|e| failed_at(i, e));
        let (action, collection, query) = match resolved {
            Ok(x) => x,
            Err(e) => {
                discard(staged).await;
                return Err(e);
            }
        };
        let is_create = matches!(action, Action::Create | Action::Upsert);
        let uploads = std::mem::take(&mut r.uploads);
        let prepared = match &action {
            Action::Delete(_) => Ok(Input::default()),
            _ => {
                // Nothing is hashed or stored for a write that is refused before its job.
                let mut values = r.body.clone();
                let pw = records::PasswordInput::take(&collection, &mut values);
                let allowed = if pw.costs_work() || !uploads.is_empty() {
                    let intent = match &action {
                        Action::Update(id) => records::Intent::Update(id),
                        Action::Upsert => records::Intent::Upsert(
                            values.get("id").and_then(Value::as_str).unwrap_or_default(),
                        ),
                        _ => records::Intent::Create,
                    };
                    let meta = meta_of(&r, &query);
                    records::may_write(app, caller, &meta, &collection, intent, &values).await
                } else {
                    Ok(())
                };
                match allowed {
                    Ok(()) => records::hash_input(app, &collection, pw, values, is_create).await,
                    Err(e) => Err(e),
                }
            }
        };
        let input = match prepared {
            Ok(mut input) if !uploads.is_empty() && !matches!(action, Action::Delete(_)) => {
                let (id, failed) = match &action {
                    Action::Update(id) => (id.clone(), "Failed to update record."),
                    _ => {
                        let id = records::id_for_uploads(&collection, &input);
                        input.preset_id = Some(id.clone());
                        (id, "Failed to create record.")
                    }
                };
                match crate::files::stage(app, &collection, &id, uploads, &mut input, failed).await
                {
                    Ok(s) => {
                        staged.push(s);
                        Ok(input)
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        let input = match input {
            Ok(input) => input,
            Err(e) => {
                discard(staged).await;
                return Err(failed_at(i, e));
            }
        };
        let fields = query
            .get("fields")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let meta = meta_of(&r, &query);
        ops.push((
            Op {
                action,
                collection,
                input,
                fields,
            },
            meta,
        ));
    }
    let schema = app.schema();
    let caller2 = caller.clone();
    let events = crate::context::Events::default();
    let events2 = events.clone();
    let removals = crate::context::Removals::default();
    let removals2 = removals.clone();
    let node = app.node_id.clone();
    let hooks = app.record_hooks.clone();
    let results = app
        .store
        .write(move |c: &mut dyn Conn| -> Result<Vec<Outcome>, CoreError> {
            let mut out = Vec::new();
            for (i, (op, meta)) in ops.into_iter().enumerate() {
                let mut ctx = WriteCtx::new(schema.clone(), hooks.clone(), &caller2, &meta);
                ctx.events = events2.clone();
                ctx.removals = removals2.clone();
                let col = op.collection.clone();
                let r = match op.action {
                    Action::Create => write::create(c, &ctx, &col, op.input).map(Some),
                    Action::Update(id) => write::update(c, &ctx, &col, &id, op.input).map(Some),
                    Action::Delete(id) => delete::delete(c, &ctx, &col, &id).map(|_| None),
                    Action::Upsert => {
                        let id = op
                            .input
                            .values
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        let exists = !id.is_empty() && crate::rows::exists(c, &col, &id)?;
                        if exists {
                            write::update(c, &ctx, &col, &id, op.input).map(Some)
                        } else {
                            write::create(c, &ctx, &col, op.input).map(Some)
                        }
                    }
                };
                let rec = r.map_err(|e| failed_at(i, e))?;
                out.push((col, rec, op.fields));
            }
            crate::bus::notify_events(c, &node, &events2)?;
            Ok(out)
        })
        .await;
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            discard(staged).await;
            return Err(e);
        }
    };
    let events = crate::context::RecordEvent::take(&events);
    crate::files::remove_committed(app, &events, &removals).await;
    app.publish(events).await;
    let items = results
        .into_iter()
        .map(|(col, rec, fields)| match rec {
            Some(r) => {
                let body = output::present(&col, &r, caller);
                let body = match fields {
                    Some(f) => crate::picker::pick(body, &f),
                    None => body,
                };
                BatchItem {
                    body: Some(body),
                    status: 200,
                }
            }
            None => BatchItem {
                body: None,
                status: 204,
            },
        })
        .collect();
    Ok(items)
}
