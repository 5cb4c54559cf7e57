//! Hooks around record API requests (`onRecordCreateRequest`, `onRecordsListRequest`, ...):
//! run on the pool; `e.next()` is the rest of the request (the service for a write, the
//! answer as the handlers left it for a read).

use crate::engine;
use crate::events::on_pool;
use crate::{ops, Shared};
use galley_core::context::request_hooks::{
    BoxFuture, NextRequest, Outcome, RecordRequest, Reply, RequestEvent, RequestHooks,
};
use galley_core::{Caller, CoreError};
use galley_types::Collection;
use serde_json::{json, Value};
use std::sync::Arc;

pub(crate) struct JsRequestHooks(pub(crate) Arc<Shared>);

fn event(e: RequestEvent) -> &'static str {
    match e {
        RequestEvent::List => "onRecordsListRequest",
        RequestEvent::View => "onRecordViewRequest",
        RequestEvent::Create => "onRecordCreateRequest",
        RequestEvent::Update => "onRecordUpdateRequest",
        RequestEvent::Delete => "onRecordDeleteRequest",
        RequestEvent::Auth => "onRecordAuthRequest",
        RequestEvent::Enrich => "onRecordEnrich",
    }
}

/// The `e.request`/`e.auth` part of an event, as JSON for the engine.
fn http_json(shared: &Shared, req: &galley_core::Request, path: &str, query: &str) -> String {
    let (auth, auth_col) = match &req.caller {
        Caller::Record { collection, record } => (
            Value::Object(record.clone()),
            Value::String(shared.collection_json(collection).to_string()),
        ),
        Caller::Guest => (Value::Null, Value::Null),
    };
    json!({
        "method": req.meta.method,
        "path": path,
        "query": query,
        "headers": req.meta.headers,
        "pathParams": {},
        "body": "",
        "auth": auth,
        "authCollection": auth_col,
        "ip": "",
    })
    .to_string()
}

impl RequestHooks for JsRequestHooks {
    fn mail(&self, mail: Value) -> BoxFuture<Result<Option<Value>, CoreError>> {
        let shared = self.0.clone();
        Box::pin(async move {
            let ids = shared.registry().handlers("onMailerSend", "", "");
            if ids.is_empty() {
                return Ok(Some(mail));
            }
            let args = vec![json!(ids).to_string(), mail.to_string()];
            let v = on_pool(&shared, move |s| {
                engine::with(s, |js| engine::call(js, "mailer", args))
            })
            .await?;
            Ok(v.get("mail").filter(|m| !m.is_null()).cloned())
        })
    }

    fn enrich(
        &self,
        col: Arc<Collection>,
        request: galley_core::Request,
        records: Vec<Value>,
    ) -> BoxFuture<Result<Vec<Value>, CoreError>> {
        let shared = self.0.clone();
        Box::pin(async move {
            let ids = shared
                .registry()
                .handlers("onRecordEnrich", &col.name, &col.id);
            if ids.is_empty() || records.is_empty() {
                return Ok(records);
            }
            let args = vec![
                json!(ids).to_string(),
                http_json(&shared, &request, "", ""),
                shared.collection_json(&col).to_string(),
                Value::Array(records).to_string(),
            ];
            let v = on_pool(&shared, move |s| {
                engine::with(s, |js| engine::call(js, "enrich", args))
            })
            .await?;
            match v.get("records") {
                Some(Value::Array(r)) => Ok(r.clone()),
                _ => Err(CoreError::Internal("onRecordEnrich: no records".into())),
            }
        })
    }

    fn wraps(&self, e: RequestEvent, col: &Collection) -> bool {
        !self
            .0
            .registry()
            .handlers(event(e), &col.name, &col.id)
            .is_empty()
    }

    fn around(
        &self,
        req: RecordRequest,
        next: NextRequest,
    ) -> BoxFuture<Result<Outcome, CoreError>> {
        let shared = self.0.clone();
        Box::pin(async move {
            let col = req.collection.clone();
            let ids = shared
                .registry()
                .handlers(event(req.event), &col.name, &col.id);
            let http = http_json(&shared, &req.request, &req.path, &req.query);
            let payload = json!({
                "record": req.record,
                "answer": req.answer,
            })
            .to_string();
            let col_json = shared.collection_json(&col).to_string();
            let name = event(req.event).to_owned();
            let answer = Arc::new(parking_lot::Mutex::new(None));
            let slot = answer.clone();
            let v = on_pool(&shared, move |s| {
                let (out, answer) = ops::with_request(next, || {
                    engine::with(s, |js| {
                        engine::call(
                            js,
                            "request",
                            vec![name, json!(ids).to_string(), http, payload, col_json],
                        )
                    })
                });
                *slot.lock() = answer;
                out
            })
            .await?;
            let answer = answer.lock().take();
            let reply = &v["reply"];
            if reply["set"] == json!(true) {
                return Ok(Outcome::Reply(Reply {
                    status: reply["status"].as_u64().unwrap_or(200) as u16,
                    content_type: reply["type"].as_str().unwrap_or_default().to_owned(),
                    body: reply["body"].as_str().unwrap_or_default().to_owned(),
                    headers: v["headers"]
                        .as_object()
                        .map(|h| {
                            h.iter()
                                .map(|(k, v)| {
                                    (k.clone(), v.as_str().unwrap_or_default().to_owned())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }));
            }
            if v["called"] == json!(true) {
                return Ok(Outcome::Answer(answer.unwrap_or(Value::Null)));
            }
            // Neither e.next() nor an answer of its own: PocketBase writes nothing (200).
            Ok(Outcome::Reply(Reply {
                status: 200,
                content_type: String::new(),
                body: String::new(),
                headers: vec![],
            }))
        })
    }
}
