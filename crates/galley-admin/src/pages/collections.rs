//! Collections: the list, the schema editor (fields, indexes, rules) and deletion.

use crate::form::FormData;
use crate::layout::{self, core_error, csrf, page};
use crate::{redirect, Admin, AppState};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
#[cfg(test)]
use galley_types::FieldKind;
use galley_types::{Collection, CollectionType, Field, Schema};
use maud::{html, Markup};
use serde_json::{json, Map, Value};

const RULES: [(&str, &str, &str); 5] = [
    (
        "listRule",
        "List/search rule",
        "Who may list records; also filters what they see.",
    ),
    ("viewRule", "View rule", "Who may read one record."),
    (
        "createRule",
        "Create rule",
        "Checked against the new record.",
    ),
    (
        "updateRule",
        "Update rule",
        "Checked against the record before and after.",
    ),
    ("deleteRule", "Delete rule", "Who may delete a record."),
];
const AUTH_RULES: [(&str, &str, &str); 2] = [
    (
        "authRule",
        "Auth rule",
        "Extra condition for signing in (empty: anyone with the password).",
    ),
    (
        "manageRule",
        "Manage rule",
        "Who may change other users' email, password and verified state.",
    ),
];

pub async fn home(State(app): State<AppState>, admin: Admin, RawQuery(q): RawQuery) -> Response {
    let q = super::query(q.as_deref());
    let schema = app.schema();
    let mut cols: Vec<_> = schema.all().iter().collect();
    cols.sort_by(|a, b| (a.system, &a.name).cmp(&(b.system, &b.name)));
    let body = html! {
        h1 { "Collections" }
        p { "A collection is a table: its fields, who may do what (the API rules), and its records." }
        p { a.button.primary href="/_/collections/new" { "+ New collection" } }
        div.scroll {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Fields" } th scope="col" { "Actions" } } }
                tbody {
                    @for c in &cols {
                        tr {
                            td { a href={ "/_/collections/" (c.name) "/records" } { (c.name) } @if c.system { " " span.tag { "system" } } }
                            td { (c.kind.as_str()) }
                            td { (c.fields.len()) }
                            td.actions {
                                a href={ "/_/collections/" (c.name) "/records" } { "Records" }
                                " "
                                a href={ "/_/collections/" (c.name) } { "Edit schema" }
                                " "
                                a href={ "/api/collections/" (c.name) "/records" } { "API" }
                            }
                        }
                    }
                }
            }
        }
    };
    page(
        &app,
        &admin,
        "Collections",
        layout::flash(q.get("done").map(String::as_str)),
        body,
    )
}

/// The state of the editor form (what is rendered, and what a failed save shows again).
struct Draft {
    original: Option<String>,
    name: String,
    kind: String,
    fields: Value,
    indexes: String,
    rules: Map<String, Value>,
    view_query: String,
}

impl Draft {
    fn from_collection(c: &Collection) -> Draft {
        let j = c.to_json();
        let mut rules = Map::new();
        for (k, _, _) in RULES.iter().chain(AUTH_RULES.iter()) {
            if let Some(v) = j.get(*k) {
                rules.insert((*k).into(), v.clone());
            }
        }
        Draft {
            original: Some(c.name.clone()),
            name: c.name.clone(),
            kind: c.kind.as_str().to_owned(),
            fields: j.get("fields").cloned().unwrap_or(json!([])),
            indexes: c.indexes.join("\n"),
            rules,
            view_query: c.view_query.clone().unwrap_or_default(),
        }
    }

    fn blank() -> Draft {
        let mut rules = Map::new();
        for (k, _, _) in RULES {
            rules.insert(k.into(), Value::Null);
        }
        rules.insert("authRule".into(), json!(""));
        rules.insert("manageRule".into(), Value::Null);
        Draft {
            original: None,
            name: String::new(),
            kind: "base".into(),
            fields: json!([]),
            indexes: String::new(),
            rules,
            view_query: String::new(),
        }
    }

    fn from_form(original: Option<String>, f: &FormData) -> Draft {
        let mut rules = Map::new();
        for (k, _, _) in RULES.iter().chain(AUTH_RULES.iter()) {
            let v = if f.get(&format!("lock_{k}")) == "on" {
                Value::Null
            } else {
                json!(f.get(k).trim())
            };
            rules.insert((*k).into(), v);
        }
        Draft {
            original,
            name: f.get("name").trim().to_owned(),
            kind: f.get("type").to_owned(),
            fields: serde_json::from_str(f.get("fields")).unwrap_or(Value::Null),
            indexes: f.get("indexes").to_owned(),
            rules,
            view_query: f.get("viewQuery").to_owned(),
        }
    }

    /// The body the collections service takes.
    fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        if self.original.is_none() {
            m.insert("type".into(), json!(self.kind));
        }
        if self.kind == "view" {
            m.insert("viewQuery".into(), json!(self.view_query));
        } else {
            m.insert("fields".into(), self.fields.clone());
        }
        let idx: Vec<&str> = self
            .indexes
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        m.insert("indexes".into(), json!(idx));
        for (k, v) in &self.rules {
            if self.kind != "auth" && (k == "authRule" || k == "manageRule") {
                continue;
            }
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

fn collections_json(app: &AppState) -> String {
    let list: Vec<Value> = app
        .schema()
        .all()
        .iter()
        .map(|c| json!({"id": c.id, "name": c.name}))
        .collect();
    Value::Array(list).to_string()
}

fn editor(app: &AppState, admin: &Admin, d: &Draft, error: Option<Markup>) -> Markup {
    let action = match &d.original {
        Some(n) => format!("/_/collections/{}", super::enc(n)),
        None => "/_/collections/new".to_owned(),
    };
    let fields_json = serde_json::to_string_pretty(&d.fields).unwrap_or_else(|_| "[]".into());
    // Auth-only rules are always rendered (hidden unless the type is auth), so that choosing
    // the auth type on a new collection shows them at once.
    let rules: Vec<_> = RULES.iter().chain(AUTH_RULES.iter()).collect();
    html! {
        @if let Some(e) = error { (e) }
        form #collection-form.editor method="post" action=(action) data-collections=(collections_json(app)) {
            (csrf(&admin.csrf))
            div.row {
                div {
                    label for="c-name" { "Name" }
                    input #c-name name="name" required value=(d.name) pattern="[A-Za-z0-9_]+" aria-describedby="c-name-help" autocomplete="off";
                    small #c-name-help { "Letters, digits and _; the API path is /api/collections/NAME/records." }
                }
                div {
                    label for="c-type" { "Type" }
                    @if d.original.is_some() {
                        input #c-type name="type" value=(d.kind) readonly;
                    } @else {
                        // No view type: the collections service does not take views yet.
                        select #c-type name="type" {
                            @for (v, l) in [("base", "Base (records)"), ("auth", "Auth (users who sign in)")] {
                                option value=(v) selected[d.kind == v] { (l) }
                            }
                        }
                    }
                }
            }
            section.view-only hidden[d.kind != "view"] {
                label for="c-viewQuery" { "View query (SELECT …)" }
                textarea #c-viewQuery name="viewQuery" rows="4" { (d.view_query) }
            }
            section.fields-section hidden[d.kind == "view"] {
                h2 { "Fields" }
                div #field-editor {}
                label for="c-fields" { "Fields as JSON (edited by the field editor above when scripts run)" }
                textarea #c-fields.code name="fields" rows="8" { (fields_json) }
            }
            section {
                h2 { "Indexes" }
                label for="c-indexes" { "One CREATE [UNIQUE] INDEX statement per line" }
                textarea #c-indexes.code name="indexes" rows="3" placeholder="CREATE UNIQUE INDEX idx_posts_slug ON posts (slug)" { (d.indexes) }
                div.addfield #index-builder hidden {
                    label for="idx-field" { "Add an index on" }
                    select #idx-field {}
                    label.inline { input #idx-unique type="checkbox"; " unique" }
                    button.small type="button" #add-index { "+ Add index" }
                }
            }
            section {
                h2 { "API rules" }
                p.help { "A rule is a filter expression such as " code { "@request.auth.id != \"\"" } " or " code { "author = @request.auth.id" } ". Empty: anyone. Locked: superusers only." }
                @for (k, label, help) in rules {
                    @let v = d.rules.get(*k).cloned().unwrap_or(Value::Null);
                    @let locked = v.is_null();
                    @let auth_only = AUTH_RULES.iter().any(|r| r.0 == *k);
                    fieldset.rule.auth-only[auth_only] hidden[auth_only && d.kind != "auth"] {
                        legend { (label) }
                        label.inline { input type="checkbox" name={ "lock_" (k) } checked[locked] data-lock=(k); " Locked (superusers only)" }
                        label for={ "r-" (k) } { (label) " expression" }
                        textarea.code.rule-input id={ "r-" (k) } name=(k) rows="2" data-rule=(k) disabled[locked] aria-describedby={ "s-" (k) } { (v.as_str().unwrap_or("")) }
                        small.help { (help) }
                        output.rule-status id={ "s-" (k) } aria-live="polite" {}
                    }
                }
            }
            div.actions {
                button.primary type="submit" { "Save collection" }
                @if let Some(n) = &d.original {
                    a.button href={ "/_/collections/" (n) "/records" } { "Cancel" }
                    a.button.danger href={ "/_/collections/" (n) "/delete" } { "Delete collection…" }
                } @else {
                    a.button href="/_/" { "Cancel" }
                }
            }
        }
    }
}

pub async fn new_page(State(app): State<AppState>, admin: Admin) -> Response {
    let body = html! { h1 { "New collection" } (editor(&app, &admin, &Draft::blank(), None)) };
    page(&app, &admin, "New collection", None, body)
}

pub async fn edit_page(
    State(app): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = super::query(q.as_deref());
    let Some(c) = app.schema().find(&name).cloned() else {
        return layout::not_found();
    };
    let body = html! {
        h1 { "Collection " (c.name) }
        p { a href={ "/_/collections/" (c.name) "/records" } { "Records" } " · " a href={ "/api/collections/" (c.name) "/records" } { "API: /api/collections/" (c.name) "/records" } }
        (editor(&app, &admin, &Draft::from_collection(&c), None))
    };
    page(
        &app,
        &admin,
        &c.name,
        layout::flash(q.get("done").map(String::as_str)),
        body,
    )
}

pub async fn create(State(app): State<AppState>, admin: Admin, form: FormData) -> Response {
    if let Some(r) = admin.check(&form) {
        return r;
    }
    let d = Draft::from_form(None, &form);
    match galley_core::collections::create(&app, d.body(), galley_core::collections::By::Request)
        .await
    {
        Ok(v) => {
            let name = v.name.as_str();
            redirect(&format!(
                "/_/collections/{}/records?done=created",
                super::enc(name)
            ))
        }
        Err(e) => {
            let body =
                html! { h1 { "New collection" } (editor(&app, &admin, &d, Some(core_error(&e)))) };
            let mut r = page(&app, &admin, "New collection", None, body);
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
    }
}

/// What an update would destroy: fields removed or changed to another type (their data goes).
fn destructive(old: &Collection, new_fields: &Value) -> Vec<String> {
    let new: Vec<(&str, &str, &str)> = new_fields
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    let s = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("");
                    (s("id"), s("name"), s("type"))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for f in &old.fields {
        match new.iter().find(|(id, name, _)| {
            (!id.is_empty() && *id == f.id) || (id.is_empty() && *name == f.name)
        }) {
            None => out.push(format!(
                "field \"{}\" is removed with all its values",
                f.name
            )),
            Some((_, _, t)) if !t.is_empty() && *t != f.type_name() => out.push(format!(
                "field \"{}\" changes type from {} to {}: its values are lost",
                f.name,
                f.type_name(),
                t
            )),
            _ => {}
        }
    }
    out
}

pub async fn update(
    State(app): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    if let Some(r) = admin.check(&form) {
        return r;
    }
    let Some(old) = app.schema().find(&name).cloned() else {
        return layout::not_found();
    };
    let d = Draft::from_form(Some(old.name.clone()), &form);
    let render = |err: Markup| {
        let body = html! { h1 { "Collection " (old.name) } (editor(&app, &admin, &d, Some(err))) };
        let mut r = page(&app, &admin, &old.name, None, body);
        *r.status_mut() = StatusCode::BAD_REQUEST;
        r
    };
    if old.kind != CollectionType::View {
        let losses = destructive(&old, &d.fields);
        if !losses.is_empty() && form.get("confirm") != "yes" {
            return render(html! {
                div.warning role="alert" {
                    p { strong { "This change deletes data:" } }
                    ul { @for l in &losses { li { (l) } } }
                    p { "Nothing has been saved yet. To apply it anyway, press the button below (the form keeps your edits)." }
                    button.danger type="submit" form="collection-form" name="confirm" value="yes" { "Yes, apply and delete the data" }
                }
            });
        }
    }
    match galley_core::collections::update(
        &app,
        &old.name,
        d.body(),
        galley_core::collections::By::Request,
    )
    .await
    {
        Ok(v) => {
            let name = v.name.as_str();
            redirect(&format!("/_/collections/{}?done=saved", super::enc(name)))
        }
        Err(e) => render(core_error(&e)),
    }
}

async fn record_count(app: &AppState, admin: &Admin, name: &str) -> Option<i64> {
    let v = galley_core::records::list(
        app,
        &galley_core::Request::new(admin.caller.clone(), Default::default()),
        name,
        galley_core::records::ListQuery {
            page: galley_core::Page {
                page: 1,
                per_page: 1,
                skip_total: false,
            },
            filter: String::new(),
            sort: String::new(),
            expand: vec![],
        },
    )
    .await
    .ok()?;
    Some(v.total_items)
}

pub async fn delete_page(
    State(app): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Response {
    let Some(c) = app.schema().find(&name).cloned() else {
        return layout::not_found();
    };
    let n = record_count(&app, &admin, &c.name).await;
    let body = html! {
        h1 { "Delete collection " (c.name) "?" }
        div.warning role="alert" {
            p { "This deletes the collection, its table and "
                @if let Some(n) = n { strong { (n) " records" } } @else { "all its records" }
                ", with their files. It cannot be undone." }
        }
        form method="post" action={ "/_/collections/" (c.name) "/delete" } {
            (csrf(&admin.csrf))
            label for="confirm-name" { "Type the collection's name to confirm" }
            input #confirm-name name="confirm" required autocomplete="off";
            div.actions {
                button.danger type="submit" { "Delete collection" }
                a.button href={ "/_/collections/" (c.name) } { "Cancel" }
            }
        }
    };
    page(&app, &admin, "Delete collection", None, body)
}

pub async fn delete(
    State(app): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    if let Some(r) = admin.check(&form) {
        return r;
    }
    let Some(c) = app.schema().find(&name).cloned() else {
        return layout::not_found();
    };
    if form.get("confirm") != c.name {
        let body = html! { p.error role="alert" { "The name did not match; nothing was deleted." } p { a href={ "/_/collections/" (c.name) "/delete" } { "Try again" } } };
        return page(&app, &admin, "Delete collection", None, body);
    }
    match galley_core::collections::delete(&app, &c.name, galley_core::collections::By::Request)
        .await
    {
        Ok(()) => redirect("/_/?done=deleted"),
        Err(e) => page(
            &app,
            &admin,
            "Delete collection",
            None,
            html! { (core_error(&e)) },
        ),
    }
}

/// The collection a rule is checked against: the saved one (or a blank one) with the fields
/// being edited, so that a rule may already use a field that is not saved yet.
fn draft_collection(app: &AppState, v: &Value) -> Collection {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let kind = match s("type").as_str() {
        "auth" => CollectionType::Auth,
        "view" => CollectionType::View,
        _ => CollectionType::Base,
    };
    let mut col = app
        .schema()
        .find(&s("original"))
        .map(|c| (**c).clone())
        .unwrap_or_else(|| Collection {
            id: "_draft_".into(),
            name: String::new(),
            kind,
            system: false,
            fields: vec![],
            indexes: vec![],
            rules: Default::default(),
            auth: (kind == CollectionType::Auth)
                .then(|| galley_types::collection::AuthOptions::new(604800)),
            view_query: None,
            created: String::new(),
            updated: String::new(),
        });
    let name = s("name");
    if !name.is_empty() {
        col.name = name;
    }
    if let Some(fields) = v.get("fields").and_then(Value::as_array) {
        let mut parsed: Vec<Field> = fields
            .iter()
            .filter_map(|f| serde_json::from_value::<Field>(f.clone()).ok())
            .filter(|f| !f.name.is_empty())
            .collect();
        let mut base = vec![galley_types::collection::id_field()];
        if kind == CollectionType::Auth {
            base.extend(galley_types::collection::auth_system_fields());
        }
        for b in base {
            if !parsed.iter().any(|f| f.name == b.name) {
                parsed.insert(0, b);
            }
        }
        col.fields = parsed;
    }
    col
}

/// Runs the server's parser and resolver on a rule as it is typed.
pub async fn check_rule(State(app): State<AppState>, admin: Admin, req: Request) -> Response {
    let token = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if !crate::session::csrf_ok(&admin.csrf, &token) {
        return json_response(
            StatusCode::FORBIDDEN,
            json!({"data": {}, "message": "Missing or invalid CSRF token.", "status": 403}),
        );
    }
    let Ok(bytes) = axum::body::to_bytes(req.into_body(), 256 << 10).await else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"data": {}, "message": "Request body too large.", "status": 400}),
        );
    };
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"data": {}, "message": galley_core::error::GENERIC_400, "status": 400}),
        );
    };
    let rule = v.get("rule").and_then(Value::as_str).unwrap_or("");
    if rule.trim().is_empty() {
        return json_response(
            StatusCode::OK,
            json!({"ok": true, "message": "Empty: anyone may do this."}),
        );
    }
    let col = draft_collection(&app, v.get("collection").unwrap_or(&Value::Null));
    let schema = app.schema();
    let mut all: Vec<Collection> = schema
        .all()
        .iter()
        .filter(|c| c.id != col.id && c.name != col.name)
        .map(|c| (**c).clone())
        .collect();
    all.push(col.clone());
    let draft_schema = Schema::new(0, all);
    match galley_core::rules::check_rule(&draft_schema, &col, rule) {
        Ok(()) => json_response(
            StatusCode::OK,
            json!({"ok": true, "message": "Valid rule."}),
        ),
        Err(e) => {
            // Byte offsets become character offsets, which the browser can count.
            let position = e.position.map(|p| {
                rule.get(..p.min(rule.len()))
                    .map_or(p, |s| s.chars().count())
            });
            json_response(
                StatusCode::OK,
                json!({"ok": false, "message": e.message, "position": position}),
            )
        }
    }
}

fn json_response(status: StatusCode, v: Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posts() -> Collection {
        let mut c = galley_types::collection::superusers_collection("2024-01-01 00:00:00.000Z");
        c.fields = vec![
            Field::new("title", FieldKind::Text(Default::default())),
            Field::new("views", FieldKind::Number(Default::default())),
        ];
        c
    }

    #[test]
    fn destructive_changes_are_listed() {
        let c = posts();
        let same = Value::Array(c.fields.iter().map(Field::to_json).collect());
        assert!(destructive(&c, &same).is_empty());
        let mut v = same.clone();
        v.as_array_mut().unwrap().remove(1);
        assert_eq!(destructive(&c, &v).len(), 1);
        let mut v = same.clone();
        v[0]["type"] = json!("number");
        let l = destructive(&c, &v);
        assert!(l[0].contains("changes type from text to number"), "{l:?}");
        // A renamed field keeps its id: not destructive.
        let mut v = same;
        v[0]["name"] = json!("headline");
        assert!(destructive(&c, &v).is_empty());
        assert_eq!(
            destructive(&c, &Value::Null).len(),
            2,
            "garbage drops everything: asks first"
        );
    }
}
