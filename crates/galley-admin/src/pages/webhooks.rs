//! Outgoing webhooks: the list, a form to create and edit one (saved through the records
//! service as a `_webhooks` record, so the same checks apply as over the API), and
//! deliveries (all recent ones, or one webhook's) with redeliver.

use crate::form::FormData;
use crate::layout::{self, core_error, csrf, page};
use crate::{redirect, Admin, AppState};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use galley_core::records::{self, ListQuery, RecordBody};
use galley_core::{CoreError, Page};
use galley_types::collection::WEBHOOKS;
use maud::{html, Markup};
use serde_json::{json, Map, Value};

const SHOWN: i64 = 100;
const EVENTS: [&str; 3] = ["create", "update", "delete"];

fn req(admin: &Admin) -> galley_core::Request {
    galley_core::Request::internal(admin.caller.clone(), "POST")
}

fn text<'a>(r: &'a Map<String, Value>, k: &str) -> &'a str {
    r.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// The collections a webhook may watch: base and auth collections that are not system ones.
fn targets(app: &AppState) -> Vec<String> {
    app.schema()
        .all()
        .iter()
        .filter(|c| !c.name.starts_with('_') && c.view_query.is_none())
        .map(|c| c.name.clone())
        .collect()
}

async fn deliveries_table(app: &AppState, admin: &Admin, webhook: Option<&str>) -> Markup {
    let deliveries = galley_core::webhooks::recent_deliveries(app, webhook, SHOWN)
        .await
        .unwrap_or_default();
    html! {
        section.card #deliveries {
            h2 { "Recent deliveries" }
            @if deliveries.is_empty() { p { "No deliveries yet." } }
            @else {
                table {
                    thead { tr { th { "Created" } th { "Event" } th { "Record" } th { "Status" } th { "Attempts" } th { "Code" } th { "ms" } th { "Error" } th { "" } } }
                    tbody {
                        @for d in &deliveries {
                            tr {
                                td { (d.created) }
                                td { (d.collection) " " (d.event) }
                                td { code { (d.record) } }
                                td { (d.status) }
                                td { (d.attempts) }
                                td { (d.response_code) }
                                td { (d.duration) }
                                td { (d.error) }
                                td {
                                    form.inline-form method="post" action="/_/webhooks" {
                                        (csrf(&admin.csrf))
                                        input type="hidden" name="id" value=(d.id);
                                        @if let Some(w) = webhook {
                                            input type="hidden" name="back" value=(w);
                                        }
                                        button type="submit" { "Redeliver" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `/_/webhooks`: the webhooks and the recent deliveries of all of them.
pub async fn list(State(app): State<AppState>, admin: Admin, RawQuery(q): RawQuery) -> Response {
    let q = super::query(q.as_deref());
    let hooks = records::list(
        &app,
        &req(&admin),
        WEBHOOKS,
        ListQuery {
            page: Page {
                page: 1,
                per_page: 500,
                skip_total: true,
            },
            filter: String::new(),
            sort: "name".into(),
            expand: vec![],
        },
    )
    .await
    .map(|r| r.items)
    .unwrap_or_default();
    let body = html! {
        h1 { "Webhooks" }
        p {
            a.button href="/_/webhooks/new" { "New webhook" }
            " Every delivery is also a record of "
            a href="/_/collections/_webhookDeliveries/records" { "_webhookDeliveries" } "."
        }
        section.card #webhooks {
            @if hooks.is_empty() { p { "No webhooks yet." } }
            @else {
                table {
                    thead { tr { th { "Name" } th { "Collection" } th { "Events" } th { "URL" } th { "Active" } th { "" } } }
                    tbody {
                        @for h in &hooks {
                            @let id = h["id"].as_str().unwrap_or_default();
                            tr {
                                td { a href={ "/_/webhooks/" (super::enc(id)) } { (h["name"].as_str().unwrap_or_default()) } }
                                td { (h["collection"].as_str().unwrap_or_default()) }
                                td { (h["events"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                                td { code { (h["url"].as_str().unwrap_or_default()) } }
                                td { (if h["active"].as_bool() == Some(true) { "yes" } else { "no" }) }
                                td { a href={ "/_/webhooks/" (super::enc(id)) "#deliveries" } { "Deliveries" } }
                            }
                        }
                    }
                }
            }
        }
        (deliveries_table(&app, &admin, None).await)
    };
    page(
        &app,
        &admin,
        "Webhooks",
        layout::flash(q.get("done").map(String::as_str)),
        body,
    )
}

/// The form, filled from `rec` (a stored webhook, or what was just submitted).
fn form(
    app: &AppState,
    admin: &Admin,
    rec: &Map<String, Value>,
    action: &str,
    is_new: bool,
) -> Markup {
    let events: Vec<&str> = rec
        .get("events")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let chosen = text(rec, "collection");
    html! {
        form.card method="post" action=(action) {
            (csrf(&admin.csrf))
            label for="w-name" { "Name" }
            input #w-name type="text" name="name" value=(text(rec, "name")) required;
            label for="w-collection" { "Collection" }
            select #w-collection name="collection" {
                @for c in targets(app) {
                    option value=(c) selected[c == chosen] { (c) }
                }
            }
            fieldset {
                legend { "Events" }
                @for e in EVENTS {
                    div.check {
                        input id={ "w-ev-" (e) } type="checkbox" name="events" value=(e) checked[events.contains(&e)];
                        " " label for={ "w-ev-" (e) } { (e) }
                    }
                }
            }
            label for="w-url" { "URL" }
            input #w-url type="url" name="url" value=(text(rec, "url")) required;
            label for="w-secret" { "Secret" }
            input #w-secret type="password" name="secret" autocomplete="off"
                placeholder=(if is_new { "whsec_… (empty: one is generated)" } else { "unchanged when empty" });
            label for="w-filter" { "Filter (optional, in the filter language)" }
            input #w-filter type="text" name="filter" value=(text(rec, "filter"));
            div.check {
                input #w-active type="checkbox" name="active" checked[rec.get("active").and_then(Value::as_bool).unwrap_or(is_new)];
                " " label for="w-active" { "Active" }
            }
            button type="submit" { (if is_new { "Create" } else { "Save" }) }
        }
    }
}

/// What the form submitted, as record values (an empty secret is left out: generated on
/// create, kept on update).
fn values(f: &FormData) -> Map<String, Value> {
    let mut v = Map::new();
    for k in ["name", "collection", "url", "filter"] {
        v.insert(k.into(), json!(f.get(k).trim()));
    }
    let events: Vec<&str> = f
        .all("events")
        .into_iter()
        .filter(|e| EVENTS.contains(e))
        .collect();
    v.insert("events".into(), json!(events));
    v.insert("active".into(), json!(f.has("active")));
    if !f.get("secret").is_empty() {
        v.insert("secret".into(), json!(f.get("secret")));
    }
    v
}

const NEW: &str = "/_/webhooks/new";

/// The form page posting to `action` (`NEW` for a new webhook), with the error of a refused
/// save above the form and `extra` below it.
fn form_page(
    app: &AppState,
    admin: &Admin,
    rec: &Map<String, Value>,
    action: &str,
    error: Option<&CoreError>,
    extra: Markup,
) -> Response {
    let is_new = action == NEW;
    let title = if is_new { "New webhook" } else { "Webhook" };
    let body = html! {
        p { a href="/_/webhooks" { "← Webhooks" } }
        h1 { (title) }
        @if let Some(e) = error { (core_error(e)) }
        (form(app, admin, rec, action, is_new))
        (extra)
    };
    let mut r = page(app, admin, title, None, body);
    if error.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r
}

pub async fn new_page(State(app): State<AppState>, admin: Admin) -> Response {
    let rec = Map::from_iter([("events".to_owned(), json!(EVENTS))]);
    form_page(&app, &admin, &rec, NEW, None, html! {})
}

pub async fn create(State(app): State<AppState>, admin: Admin, f: FormData) -> Response {
    if let Some(r) = admin.check(&f) {
        return r;
    }
    let vals = values(&f);
    match records::create(
        &app,
        &req(&admin),
        WEBHOOKS,
        RecordBody::json(vals.clone()),
        &[],
    )
    .await
    {
        Ok(v) => redirect(&format!(
            "/_/webhooks/{}?done=created",
            super::enc(v["id"].as_str().unwrap_or_default())
        )),
        Err(e) => form_page(&app, &admin, &vals, NEW, Some(&e), html! {}),
    }
}

async fn stored(app: &AppState, admin: &Admin, id: &str) -> Option<Map<String, Value>> {
    records::view(app, &req(admin), WEBHOOKS, id, &[])
        .await
        .ok()
        .and_then(|v| v.as_object().cloned())
}

pub async fn edit_page(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = super::query(q.as_deref());
    let Some(rec) = stored(&app, &admin, &id).await else {
        return layout::not_found();
    };
    let action = format!("/_/webhooks/{}", super::enc(&id));
    let body = html! {
        p { a href="/_/webhooks" { "← Webhooks" } }
        h1 { "Webhook " (text(&rec, "name")) }
        (form(&app, &admin, &rec, &action, false))
        (deliveries_table(&app, &admin, Some(&id)).await)
    };
    page(
        &app,
        &admin,
        "Webhook",
        layout::flash(q.get("done").map(String::as_str)),
        body,
    )
}

pub async fn update(
    State(app): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    if let Some(r) = admin.check(&f) {
        return r;
    }
    let vals = values(&f);
    let action = format!("/_/webhooks/{}", super::enc(&id));
    match records::update(
        &app,
        &req(&admin),
        WEBHOOKS,
        &id,
        RecordBody::json(vals.clone()),
        &[],
    )
    .await
    {
        Ok(_) => redirect(&format!("{action}?done=saved")),
        Err(CoreError::NotFound(_)) => layout::not_found(),
        Err(e) => {
            let deliveries = deliveries_table(&app, &admin, Some(&id)).await;
            form_page(&app, &admin, &vals, &action, Some(&e), deliveries)
        }
    }
}

/// Sends a delivery again (same body and `webhook-id`); back to the webhook's page when it
/// came from there.
pub async fn redeliver(State(app): State<AppState>, admin: Admin, f: FormData) -> Response {
    if let Some(r) = admin.check(&f) {
        return r;
    }
    let back = match f.get("back") {
        "" => "/_/webhooks".to_owned(),
        w => format!("/_/webhooks/{}", super::enc(w)),
    };
    match galley_core::webhooks::redeliver(&app, f.get("id")).await {
        Ok(()) => redirect(&format!("{back}?done=queued")),
        Err(_) => redirect(&format!("{back}?done=refused")),
    }
}
