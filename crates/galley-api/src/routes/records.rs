use super::{no_content, ok, page, IntoBody};
use crate::error::{json_response, ApiResult};
use crate::extract::{Query, RecordBody, Req};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use galley_core::context::request_hooks::{
    NextRequest, Outcome, RecordRequest, RequestEvent, RequestHooks,
};
use galley_core::records::{self, ListQuery};
use galley_core::{App, Request};
use galley_http::ClientIp;
use galley_types::Collection;
use serde_json::{Map, Value};
use std::sync::Arc;

fn body(b: crate::extract::Body) -> records::RecordBody {
    records::RecordBody {
        values: b.values,
        uploads: b.files,
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/collections/{collection}/records",
            get(list).post(create),
        )
        .route(
            "/api/collections/{collection}/records/{id}",
            get(view).patch(update).delete(remove),
        )
}

/// The request hooks of `event` on `col`, when any listens.
pub(super) fn hooks(
    app: &App,
    event: RequestEvent,
    col: &str,
) -> Option<(Arc<dyn RequestHooks>, Arc<Collection>)> {
    let h = app.request_hooks()?;
    let c = records::find_collection(app, col).ok()?;
    h.wraps(event, &c).then(|| (h.clone(), c))
}

/// Runs the hooks of one request around `next` and answers with what they left.
#[allow(clippy::too_many_arguments)]
pub(super) async fn hooked(
    (h, collection): (Arc<dyn RequestHooks>, Arc<Collection>),
    event: RequestEvent,
    request: &Request,
    uri: &Uri,
    record: Option<Map<String, Value>>,
    answer: Option<Value>,
    q: &Query,
    next: NextRequest,
) -> ApiResult<Response> {
    let req = RecordRequest {
        event,
        collection,
        request: request.clone(),
        record,
        answer,
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
    };
    Ok(match h.around(req, next).await? {
        Outcome::Answer(Value::Null) if event == RequestEvent::Delete => no_content(),
        Outcome::Answer(v) => ok(v, q),
        Outcome::Reply(r) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
            let mut resp = if r.content_type == "application/json" {
                let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
                json_response(status, &v)
            } else {
                let mut resp = Response::new(axum::body::Body::from(r.body));
                *resp.status_mut() = status;
                if let Ok(v) = HeaderValue::from_str(&r.content_type) {
                    resp.headers_mut()
                        .insert(axum::http::header::CONTENT_TYPE, v);
                }
                resp
            };
            for (k, v) in r.headers {
                if let (Ok(k), Ok(v)) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(&v),
                ) {
                    resp.headers_mut().insert(k, v);
                }
            }
            resp
        }
    })
}

/// `answer` (a record, or a page of them when `list`) with `onRecordEnrich` applied.
pub(super) async fn enriched(
    app: &App,
    col: &str,
    r: &Request,
    mut answer: Value,
    list: bool,
) -> ApiResult<Value> {
    let Some((h, c)) = hooks(app, RequestEvent::Enrich, col) else {
        return Ok(answer);
    };
    if list {
        let items = match answer.get_mut("items") {
            Some(Value::Array(items)) => std::mem::take(items),
            _ => return Ok(answer),
        };
        answer["items"] = Value::Array(h.enrich(c, r.clone(), items).await?);
        Ok(answer)
    } else {
        let mut out = h.enrich(c, r.clone(), vec![answer]).await?;
        Ok(out.pop().unwrap_or(Value::Null))
    }
}

/// The values a hook set on `e.record`, over the submitted body (a value set by the hook
/// replaces the body's modifiers of that field).
fn merged(mut values: Map<String, Value>, changes: Value) -> Map<String, Value> {
    if let Value::Object(changes) = changes {
        for (k, v) in changes {
            for m in [format!("{k}+"), format!("+{k}"), format!("{k}-")] {
                values.remove(&m);
            }
            values.insert(k, v);
        }
    }
    values
}

async fn list(
    State(app): State<AppState>,
    Req(r): Req,
    Path(col): Path<String>,
    uri: Uri,
    q: Query,
) -> ApiResult<Response> {
    let lq = ListQuery {
        page: page(&q)?,
        filter: q.get("filter").unwrap_or_default().to_owned(),
        sort: q.get("sort").unwrap_or_default().to_owned(),
        expand: expand(&q)?,
    };
    let result = records::list(&app, &r, &col, lq).await?;
    let enrich = hooks(&app, RequestEvent::Enrich, &col).is_some();
    match hooks(&app, RequestEvent::List, &col) {
        None if !enrich => Ok(ok(result, &q)),
        None => Ok(ok(
            enriched(&app, &col, &r, result.into_body(), true).await?,
            &q,
        )),
        Some(h) => {
            let next: NextRequest = Box::new(|answer| Box::pin(async move { Ok(answer) }));
            let answer = Some(enriched(&app, &col, &r, result.into_body(), true).await?);
            hooked(h, RequestEvent::List, &r, &uri, None, answer, &q, next).await
        }
    }
}

async fn view(
    State(app): State<AppState>,
    Req(r): Req,
    Path((col, id)): Path<(String, String)>,
    uri: Uri,
    q: Query,
) -> ApiResult<Response> {
    let record = records::view(&app, &r, &col, &id, &expand(&q)?).await?;
    let record = enriched(&app, &col, &r, record, false).await?;
    match hooks(&app, RequestEvent::View, &col) {
        None => Ok(ok(record, &q)),
        Some(h) => {
            let next: NextRequest = Box::new(|answer| Box::pin(async move { Ok(answer) }));
            let record = record.as_object().cloned();
            hooked(h, RequestEvent::View, &r, &uri, record, None, &q, next).await
        }
    }
}

/// A record write that carries a password costs a hash (or a verification): it counts
/// against the per-IP auth limit, as the sign-in endpoints do, before any work.
pub(super) fn limit_password_write(
    app: &App,
    r: &Request,
    ip: &str,
    values: &Map<String, Value>,
) -> ApiResult<()> {
    if ["password", "oldPassword"]
        .iter()
        .any(|k| values.contains_key(*k))
    {
        app.auth.limit_ip(&r.caller, ip)?;
    }
    Ok(())
}

async fn create(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Req(r): Req,
    Path(col): Path<String>,
    uri: Uri,
    q: Query,
    RecordBody(b): RecordBody,
) -> ApiResult<Response> {
    let expand = expand(&q)?;
    let body = body(b);
    limit_password_write(&app, &r, &ip, &body.values)?;
    let Some(h) = hooks(&app, RequestEvent::Create, &col) else {
        return Ok(ok(
            records::create(&app, &r, &col, body, &expand).await?,
            &q,
        ));
    };
    let record = Some(body.values.clone());
    let (app2, r2) = (app.clone(), r.clone());
    let next: NextRequest = Box::new(move |changes| {
        Box::pin(async move {
            let body = records::RecordBody {
                values: merged(body.values, changes),
                uploads: body.uploads,
            };
            let v = records::create(&app2, &r2, &col, body, &expand).await?;
            enriched(&app2, &col, &r2, v, false).await.map_err(|e| e.0)
        })
    });
    hooked(h, RequestEvent::Create, &r, &uri, record, None, &q, next).await
}

async fn update(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Req(r): Req,
    Path((col, id)): Path<(String, String)>,
    uri: Uri,
    q: Query,
    RecordBody(b): RecordBody,
) -> ApiResult<Response> {
    let expand = expand(&q)?;
    let body = body(b);
    limit_password_write(&app, &r, &ip, &body.values)?;
    let Some(h) = hooks(&app, RequestEvent::Update, &col) else {
        let v = records::update(&app, &r, &col, &id, body, &expand).await?;
        return Ok(ok(enriched(&app, &col, &r, v, false).await?, &q));
    };
    // The hooks see the record as the caller may see it (never more: a hook answering with
    // `e.record` must not leak), with the submitted values over it; modifiers such as
    // `tags+` are applied by the write itself. A caller who may not view it gets the
    // service's own answer, without hooks.
    let Ok(Value::Object(mut record)) = records::view(&app, &r, &col, &id, &[]).await else {
        let v = records::update(&app, &r, &col, &id, body, &expand).await?;
        return Ok(ok(enriched(&app, &col, &r, v, false).await?, &q));
    };
    for (k, v) in &body.values {
        if h.1.field(k).is_some() {
            record.insert(k.clone(), v.clone());
        }
    }
    let (app2, r2) = (app.clone(), r.clone());
    let next: NextRequest = Box::new(move |changes| {
        Box::pin(async move {
            let body = records::RecordBody {
                values: merged(body.values, changes),
                uploads: body.uploads,
            };
            let v = records::update(&app2, &r2, &col, &id, body, &expand).await?;
            enriched(&app2, &col, &r2, v, false).await.map_err(|e| e.0)
        })
    });
    hooked(
        h,
        RequestEvent::Update,
        &r,
        &uri,
        Some(record),
        None,
        &q,
        next,
    )
    .await
}

async fn remove(
    State(app): State<AppState>,
    Req(r): Req,
    Path((col, id)): Path<(String, String)>,
    uri: Uri,
    q: Query,
) -> ApiResult<Response> {
    let Some(h) = hooks(&app, RequestEvent::Delete, &col) else {
        records::remove(&app, &r, &col, &id).await?;
        return Ok(no_content());
    };
    let Ok(Value::Object(record)) = records::view(&app, &r, &col, &id, &[]).await else {
        records::remove(&app, &r, &col, &id).await?;
        return Ok(no_content());
    };
    let (app2, r2) = (app.clone(), r.clone());
    let next: NextRequest = Box::new(move |_| {
        Box::pin(async move {
            records::remove(&app2, &r2, &col, &id).await?;
            Ok(Value::Null)
        })
    });
    hooked(
        h,
        RequestEvent::Delete,
        &r,
        &uri,
        Some(record),
        None,
        &q,
        next,
    )
    .await
}

fn expand(q: &Query) -> ApiResult<Vec<Vec<String>>> {
    Ok(records::expand::parse(q.get("expand").unwrap_or_default())?)
}
