//! Records of a collection: the table (paging, sorting, filter, columns, bulk delete) and
//! the create/edit form with a control per field type; auth collections' user actions.

use crate::form::FormData;
use crate::layout::{self, core_error, csrf, page};
use crate::{redirect, Admin, AppState};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use galley_core::records::{self, ListQuery};
use galley_core::CoreError;
use galley_core::Page;
use galley_types::field::FieldKind;
use galley_types::{Collection, CollectionType, Field};
use maud::{html, Markup};
use serde_json::{json, Map, Value};
use std::sync::Arc;

const MAX_PER_PAGE: usize = 200;
/// Records offered in a relation picker; more are entered by id.
const PICKER_LIMIT: usize = 200;

/// The dashboard acts through the services as the signed-in superuser.
fn req(admin: &Admin) -> galley_core::Request {
    galley_core::Request::internal(admin.caller.clone(), "POST")
}

fn find(app: &AppState, name: &str) -> Option<Arc<Collection>> {
    app.schema().find(name).cloned()
}

/// Fields a table shows unless columns are chosen: the first few that read well in a cell.
fn default_columns(col: &Collection) -> Vec<String> {
    col.fields
        .iter()
        .filter(|f| !f.hidden && !matches!(f.kind, FieldKind::Password(_)) && f.name != "id")
        .filter(|f| !matches!(f.kind, FieldKind::Editor(_)))
        .take(6)
        .map(|f| f.name.clone())
        .collect()
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

fn is_image(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [".png", ".jpg", ".jpeg", ".gif", ".webp"]
        .iter()
        .any(|e| n.ends_with(e))
}

fn file_url(col: &Collection, id: &str, name: &str) -> String {
    format!(
        "/api/files/{}/{}/{}",
        super::enc(&col.id),
        super::enc(id),
        super::enc(name)
    )
}

fn cell(col: &Collection, f: &Field, rec: &Map<String, Value>) -> Markup {
    let v = rec.get(&f.name).cloned().unwrap_or(Value::Null);
    let id = rec.get("id").and_then(Value::as_str).unwrap_or("");
    match (&f.kind, &v) {
        (FieldKind::Bool(_), Value::Bool(b)) => html! { (if *b { "yes" } else { "no" }) },
        (FieldKind::File(o), _) => {
            let names = galley_types::field::as_strings(&v);
            html! {
                @for n in names.iter().take(3) {
                    @if is_image(n) && !o.protected {
                        img.thumb src={ (file_url(col, id, n)) "?thumb=100x100" } alt=(n) loading="lazy" width="40" height="40";
                    } @else { span.file { (shorten(n, 24)) } }
                    " "
                }
            }
        }
        (_, Value::String(s)) => html! { (shorten(s, 60)) },
        (_, Value::Number(n)) => html! { (n.to_string()) },
        (_, Value::Null) => html! {},
        (_, Value::Array(a)) if a.iter().all(Value::is_string) => {
            html! { (shorten(&galley_types::field::as_strings(&v).join(", "), 60)) }
        }
        (_, other) => html! { code { (shorten(&other.to_string(), 60)) } },
    }
}

pub async fn list(
    State(app): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(col) = find(&app, &name) else {
        return layout::not_found();
    };
    let q = super::query(raw.as_deref());
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default();
    let mut cols: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "col")
        .map(|(_, v)| v.clone())
        .filter(|v| col.field(v).is_some())
        .collect();
    let chosen = !cols.is_empty();
    if !chosen {
        cols = default_columns(&col);
    }
    let filter = q.get("filter").cloned().unwrap_or_default();
    let sort = q.get("sort").cloned().unwrap_or_default();
    let per_page = q
        .get("perPage")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, MAX_PER_PAGE);
    let page_no = q
        .get("page")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, 1_000_000);
    let res = records::list(
        &app,
        &req(&admin),
        &col.name,
        ListQuery {
            page: Page {
                page: page_no,
                per_page,
                skip_total: false,
            },
            filter: filter.clone(),
            sort: sort.clone(),
            expand: vec![],
        },
    )
    .await;
    let (items, total, pages, error) = match res {
        Ok(v) => (v.items, v.total_items, v.total_pages, None),
        Err(e) => (vec![], 0, 0, Some(e)),
    };
    // Links keep the other parameters.
    let link = |page_no: usize, sort: &str| {
        let mut s = format!(
            "/_/collections/{}/records?page={page_no}&perPage={per_page}",
            super::enc(&col.name)
        );
        if !filter.is_empty() {
            s += &format!("&filter={}", super::enc(&filter));
        }
        if !sort.is_empty() {
            s += &format!("&sort={}", super::enc(sort));
        }
        if chosen {
            for c in &cols {
                s += &format!("&col={}", super::enc(c));
            }
        }
        s
    };
    let writable = col.kind != CollectionType::View;
    let mut shown: Vec<&Field> = Vec::new();
    if let Some(f) = col.field("id") {
        shown.push(f);
    }
    shown.extend(
        cols.iter()
            .filter_map(|c| col.field(c))
            .filter(|f| f.name != "id"),
    );
    let body = html! {
        div.titlebar {
            h1 { (col.name) }
            div.actions {
                @if writable { a.button.primary href={ "/_/collections/" (col.name) "/records/new" } { "+ New record" } }
                a.button href={ "/_/collections/" (col.name) } { "Edit schema" }
                a.button href={ "/api/collections/" (col.name) "/records" } { "API URL" }
            }
        }
        form.filterbar method="get" action={ "/_/collections/" (col.name) "/records" } role="search" {
            label for="filter" { "Filter" }
            input #filter type="search" name="filter" value=(filter) placeholder="e.g. title ~ \"hello\" && created > \"2024-01-01\"" aria-describedby="filter-help";
            input type="hidden" name="sort" value=(sort);
            @if chosen { @for c in &cols { input type="hidden" name="col" value=(c); } }
            button type="submit" { "Apply" }
            small #filter-help { "The filter language of the API: = != > < ~ !~ with && and ||." }
        }
        details.columns {
            summary { "Columns" }
            form method="get" action={ "/_/collections/" (col.name) "/records" } {
                input type="hidden" name="filter" value=(filter);
                input type="hidden" name="sort" value=(sort);
                fieldset {
                    legend { "Show these columns" }
                    @for f in col.fields.iter().filter(|f| f.name != "id") {
                        label.inline { input type="checkbox" name="col" value=(f.name) checked[cols.contains(&f.name)]; " " (f.name) }
                    }
                }
                button type="submit" { "Show" }
            }
        }
        @if let Some(e) = &error { (core_error(e)) }
        form #bulk method="post" action={ "/_/collections/" (col.name) "/records/delete" } data-confirm="Delete the selected records? This cannot be undone." {
            (csrf(&admin.csrf))
            div.scroll {
                table.records {
                    caption { (total) " records" @if !filter.is_empty() { " matching the filter" } }
                    thead {
                        tr {
                            @if writable { th scope="col" { input type="checkbox" #select-all aria-label="Select all on this page"; } }
                            @for f in &shown {
                                @let (next, state) = if sort == f.name { (format!("-{}", f.name), "ascending") } else if sort == format!("-{}", f.name) { (String::new(), "descending") } else { (f.name.clone(), "none") };
                                th scope="col" aria-sort=(state) {
                                    a href=(link(1, &next)) { (f.name) @if state == "ascending" { " ▲" } @if state == "descending" { " ▼" } }
                                }
                            }
                        }
                    }
                    tbody {
                        @for it in &items {
                            @let rec = it.as_object().cloned().unwrap_or_default();
                            @let id = rec.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
                            tr {
                                @if writable { td { input type="checkbox" name="ids" value=(id) aria-label={ "Select " (id) }; } }
                                @for f in &shown {
                                    td {
                                        @if f.name == "id" {
                                            a href={ "/_/collections/" (col.name) "/records/" (id) } { (id) }
                                        } @else { (cell(&col, f, &rec)) }
                                    }
                                }
                            }
                        }
                        @if items.is_empty() { tr { td colspan=(shown.len() + 1) { "No records." } } }
                    }
                }
            }
            @if writable && !items.is_empty() {
                button.danger type="submit" { "Delete selected" }
            }
        }
        nav.pager aria-label="Pages" {
            @if page_no > 1 { a href=(link(page_no - 1, &sort)) rel="prev" { "← Previous" } }
            span { "Page " (page_no) " of " (pages.max(1)) }
            @if (page_no as i64) < pages { a href=(link(page_no + 1, &sort)) rel="next" { "Next →" } }
        }
    };
    page(
        &app,
        &admin,
        &col.name,
        layout::flash(q.get("done").map(String::as_str)),
        body,
    )
}

pub async fn bulk_delete(
    State(app): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    if let Some(r) = admin.check(&form) {
        return r;
    }
    let Some(col) = find(&app, &name) else {
        return layout::not_found();
    };
    for id in form.all("ids") {
        if let Err(e) = records::remove(&app, &req(&admin), &col.name, id).await {
            if !matches!(e, CoreError::NotFound(_)) {
                return page(&app, &admin, "Delete", None, core_error(&e));
            }
        }
    }
    redirect(&format!(
        "/_/collections/{}/records?done=deleted",
        super::enc(&col.name)
    ))
}

/// Options of a relation picker: (id, label) of the first records of the target.
async fn relation_options(app: &AppState, admin: &Admin, target_id: &str) -> Vec<(String, String)> {
    let Some(target) = app.schema().by_id(target_id).cloned() else {
        return vec![];
    };
    let label_field = target
        .fields
        .iter()
        .find(|f| f.presentable)
        .or_else(|| {
            ["name", "title", "email", "username", "slug"]
                .iter()
                .find_map(|n| target.field(n))
        })
        .map(|f| f.name.clone());
    let res = records::list(
        app,
        &req(admin),
        &target.name,
        ListQuery {
            page: Page {
                page: 1,
                per_page: PICKER_LIMIT,
                skip_total: true,
            },
            filter: String::new(),
            sort: String::new(),
            expand: vec![],
        },
    )
    .await;
    let Ok(v) = res else { return vec![] };
    Some(&v.items)
        .map(|a| {
            a.iter()
                .map(|r| {
                    let id = r.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
                    let label = label_field
                        .as_ref()
                        .and_then(|f| r.get(f))
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(|s| format!("{} ({id})", shorten(s, 40)))
                        .unwrap_or_else(|| id.clone());
                    (id, label)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A stored date (`2024-01-02 03:04:05.678Z`) as a `datetime-local` value (UTC).
fn date_input_value(s: &str) -> String {
    match (s.trim().get(..10), s.trim().get(11..19)) {
        (Some(d), Some(t)) => format!("{d}T{t}"),
        _ => String::new(),
    }
}

/// A `datetime-local` value (taken as UTC) as the wire format.
fn date_from_input(s: &str) -> Value {
    let s = s.trim();
    if s.is_empty() {
        return json!("");
    }
    let (d, t) = s.split_once('T').unwrap_or((s, "00:00:00"));
    let t = if t.len() == 5 {
        format!("{t}:00")
    } else {
        t.to_owned()
    };
    json!(format!("{d} {t}.000Z"))
}

fn max_select(f: &Field) -> i64 {
    match &f.kind {
        FieldKind::Select(o) => o.max_select,
        FieldKind::Relation(o) => o.max_select,
        FieldKind::File(o) => o.max_select,
        _ => 1,
    }
}

/// One form control for a field, labelled, with the current value.
async fn control(
    app: &AppState,
    admin: &Admin,
    col: &Collection,
    f: &Field,
    rec: &Map<String, Value>,
    is_new: bool,
) -> Markup {
    let id = format!("f-{}", f.name);
    let v = rec.get(&f.name).cloned().unwrap_or(Value::Null);
    let vs = v.as_str().unwrap_or("").to_owned();
    let required = f.is_required();
    let label = html! {
        label for=(id) { (f.name) @if required { " " span.req aria-hidden="true" { "*" } } " " small.type { (f.type_name()) } }
    };
    let help = html! { @if !f.help.is_empty() { small.help { (f.help) } } };
    let rec_id = rec.get("id").and_then(Value::as_str).unwrap_or("");
    match &f.kind {
        _ if f.name == "id" => html! {
            (label)
            @if is_new {
                input id=(id) name="id" value=(vs) placeholder="leave empty to generate" autocomplete="off";
            } @else { input id=(id) value=(vs) readonly; }
        },
        FieldKind::Autodate(_) => html! { (label) input id=(id) value=(vs) readonly; },
        FieldKind::Bool(_) => html! {
            div.check {
                input id=(id) type="checkbox" name=(f.name) value="true" checked[v.as_bool() == Some(true)];
                " " label for=(id) { (f.name) }
                (help)
            }
        },
        FieldKind::Number(o) => html! {
            (label)
            input id=(id) type="number" name=(f.name) step=(if o.only_int { "1" } else { "any" }) value=(match &v { Value::Number(n) => n.to_string(), _ => String::new() }) required[required];
            (help)
        },
        FieldKind::Email(_) => {
            html! { (label) input id=(id) type="email" name=(f.name) value=(vs) required[required]; (help) }
        }
        FieldKind::Url(_) => {
            html! { (label) input id=(id) type="url" name=(f.name) value=(vs) required[required]; (help) }
        }
        FieldKind::Editor(_) => {
            html! { (label) textarea id=(id) name=(f.name) rows="6" { (vs) } (help) }
        }
        FieldKind::Date(_) => html! {
            (label)
            input id=(id) type="datetime-local" step="1" name=(f.name) value=(date_input_value(&vs)) required[required];
            small.help { "UTC" }
        },
        FieldKind::Select(o) => {
            let cur = galley_types::field::as_strings(&v);
            let multi = o.max_select > 1;
            html! {
                (label)
                select id=(id) name=(f.name) multiple[multi] required[required] {
                    @if !multi { option value="" { "—" } }
                    @for opt in &o.values { option value=(opt) selected[cur.contains(opt)] { (opt) } }
                }
                (help)
            }
        }
        FieldKind::Json(_) => {
            let text = match &v {
                Value::Null => String::new(),
                other => serde_json::to_string_pretty(other).unwrap_or_default(),
            };
            html! {
                (label)
                textarea.code id=(id) name=(f.name) rows="5" data-json aria-describedby={ (id) "-status" } { (text) }
                output.json-status id={ (id) "-status" } aria-live="polite" {}
                (help)
            }
        }
        FieldKind::Relation(o) => {
            let cur = galley_types::field::as_strings(&v);
            let opts = relation_options(app, admin, &o.collection_id).await;
            let multi = o.max_select > 1;
            let target = app
                .schema()
                .by_id(&o.collection_id)
                .map(|c| c.name.clone())
                .unwrap_or_default();
            let extra: Vec<&String> = cur
                .iter()
                .filter(|c| !opts.iter().any(|(i, _)| i == *c))
                .collect();
            html! {
                (label)
                select id=(id) name=(f.name) multiple[multi] size=(if multi { "6" } else { "1" }) {
                    @if !multi { option value="" { "— none —" } }
                    @for c in &extra { option value=(c) selected { (c) } }
                    @for (i, l) in &opts { option value=(i) selected[cur.contains(i)] { (l) } }
                }
                small.help { "Records of " (target) @if opts.len() >= PICKER_LIMIT { "; only the first " (PICKER_LIMIT) " are listed — enter other ids below" } "." }
                label for={ (id) "-ids" } { "Or enter " (f.name) " ids (comma separated)" }
                input id={ (id) "-ids" } name={ (f.name) "__ids" } autocomplete="off";
            }
        }
        FieldKind::File(o) => {
            let names = galley_types::field::as_strings(&v);
            let multi = o.max_select > 1;
            html! {
                fieldset.files {
                    legend { (f.name) " " small.type { "file" } }
                    @if !names.is_empty() {
                        ul.filelist {
                            @for n in &names {
                                li {
                                    @if is_image(n) && !o.protected {
                                        img.thumb src={ (file_url(col, rec_id, n)) "?thumb=100x100" } alt={ "Preview of " (n) } width="64" height="64";
                                    }
                                    label.inline {
                                        input type="checkbox" name={ (f.name) "__keep" } value=(n) checked;
                                        " Keep "
                                        @if o.protected { (n) } @else { a href=(file_url(col, rec_id, n)) { (n) } }
                                    }
                                }
                            }
                        }
                    }
                    label for=(id) { @if names.is_empty() { "Upload" } @else if multi { "Add files" } @else { "Replace with" } }
                    input id=(id) type="file" name=(f.name) multiple[multi] accept=(o.mime_types.join(",")) data-preview={ (id) "-preview" };
                    div.previews id={ (id) "-preview" } aria-live="polite" {}
                    (help)
                }
            }
        }
        FieldKind::GeoPoint(_) => {
            let lon = v.get("lon").map(|x| x.to_string()).unwrap_or_default();
            let lat = v.get("lat").map(|x| x.to_string()).unwrap_or_default();
            html! {
                fieldset {
                    legend { (f.name) " " small.type { "geoPoint" } }
                    label for={ (id) "-lon" } { "Longitude" }
                    input id={ (id) "-lon" } type="number" step="any" name={ (f.name) ".lon" } value=(lon);
                    label for={ (id) "-lat" } { "Latitude" }
                    input id={ (id) "-lat" } type="number" step="any" name={ (f.name) ".lat" } value=(lat);
                }
            }
        }
        FieldKind::Password(_) => html! {
            (label)
            input id=(id) type="password" name=(f.name) autocomplete="new-password" placeholder=(if is_new { "" } else { "unchanged" }) required[is_new];
            label for={ (id) "Confirm" } { "Password again" }
            input id={ (id) "Confirm" } type="password" name="passwordConfirm" autocomplete="new-password" required[is_new];
        },
        FieldKind::Text(_) => {
            html! { (label) input id=(id) name=(f.name) value=(vs) required[required] autocomplete="off"; (help) }
        }
    }
}

/// Fields the form shows (auth collections' tokenKey never).
fn editable(f: &Field) -> bool {
    !(f.hidden && f.system && !matches!(f.kind, FieldKind::Password(_)))
}

async fn form_page(
    app: &AppState,
    admin: &Admin,
    col: &Collection,
    rec: &Map<String, Value>,
    is_new: bool,
    notice: Option<Markup>,
) -> Response {
    let id = rec
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let action = if is_new {
        format!("/_/collections/{}/records/new", super::enc(&col.name))
    } else {
        format!(
            "/_/collections/{}/records/{}",
            super::enc(&col.name),
            super::enc(&id)
        )
    };
    let mut controls = Vec::new();
    for f in col.fields.iter().filter(|f| editable(f)) {
        controls.push(control(app, admin, col, f, rec, is_new).await);
    }
    let title = if is_new {
        format!("New {} record", col.name)
    } else {
        format!("{} / {id}", col.name)
    };
    let body = html! {
        div.titlebar {
            h1 { (title) }
            div.actions {
                a.button href={ "/_/collections/" (col.name) "/records" } { "← All records" }
                @if !is_new { a.button href={ "/api/collections/" (col.name) "/records/" (id) } { "API URL" } }
            }
        }
        @if let Some(n) = notice { (n) }
        form.record method="post" action=(action) enctype="multipart/form-data" {
            (csrf(&admin.csrf))
            @for c in &controls { div.field { (c) } }
            div.actions { button.primary type="submit" { @if is_new { "Create" } @else { "Save" } } }
        }
        @if !is_new && col.is_auth() {
            section.authactions {
                h2 { "User actions" }
                p { "Verified: " strong #verified-state { (if rec.get("verified").and_then(Value::as_bool) == Some(true) { "yes" } else { "no" }) } }
                div.actions {
                    @if col.name != galley_core::superusers::SUPERUSERS {
                        form method="post" action={ (action) "/auth" } {
                            (csrf(&admin.csrf)) input type="hidden" name="action" value="verify";
                            button type="submit" { "Send verification email" }
                        }
                    }
                    form method="post" action={ (action) "/auth" } {
                        (csrf(&admin.csrf)) input type="hidden" name="action" value="reset";
                        button type="submit" { "Send password reset email" }
                    }
                    form method="post" action={ (action) "/auth" } {
                        (csrf(&admin.csrf)) input type="hidden" name="action" value="impersonate";
                        label for="imp-duration" { "Token duration (seconds, 0: the collection's)" }
                        input #imp-duration type="number" name="duration" min="0" value="3600";
                        button type="submit" { "Impersonate (get a token)" }
                    }
                }
            }
        }
        @if !is_new && col.kind != CollectionType::View {
            form method="post" action={ "/_/collections/" (col.name) "/records/delete" } data-confirm="Delete this record? This cannot be undone." {
                (csrf(&admin.csrf))
                input type="hidden" name="ids" value=(id);
                button.danger type="submit" { "Delete record" }
            }
        }
    };
    page(app, admin, &title, None, body)
}

pub async fn new_page(
    State(app): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Response {
    let Some(col) = find(&app, &name) else {
        return layout::not_found();
    };
    form_page(&app, &admin, &col, &Map::new(), true, None).await
}

async fn load(
    app: &AppState,
    admin: &Admin,
    col: &Collection,
    id: &str,
) -> Result<Map<String, Value>, CoreError> {
    let v = records::view(app, &req(admin), &col.name, id, &[]).await?;
    Ok(v.as_object().cloned().unwrap_or_default())
}

pub async fn edit_page(
    State(app): State<AppState>,
    admin: Admin,
    Path((name, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(col) = find(&app, &name) else {
        return layout::not_found();
    };
    let q = super::query(q.as_deref());
    match load(&app, &admin, &col, &id).await {
        Ok(rec) => {
            let notice = layout::flash(q.get("done").map(String::as_str))
                .map(|m| html! { p.flash role="status" { (m) } });
            form_page(&app, &admin, &col, &rec, false, notice).await
        }
        Err(_) => layout::not_found(),
    }
}

/// The submitted form as a record body: each field's control read back into its JSON type.
fn values(
    col: &Collection,
    form: &FormData,
    is_new: bool,
) -> Result<Map<String, Value>, CoreError> {
    let mut m = Map::new();
    let mut bad = Map::new();
    for f in col.fields.iter().filter(|f| editable(f)) {
        let n = f.name.as_str();
        let raw = form.get(n);
        match &f.kind {
            _ if n == "id" => {
                if is_new && !raw.trim().is_empty() {
                    m.insert("id".into(), json!(raw.trim()));
                }
            }
            FieldKind::Autodate(_) => {}
            FieldKind::Bool(_) => {
                m.insert(n.into(), json!(form.has(n)));
            }
            FieldKind::Number(_) => {
                let v = match raw.trim() {
                    "" => Value::Null,
                    s => s
                        .parse::<f64>()
                        .ok()
                        .and_then(|x| serde_json::Number::from_f64(x).map(Value::Number))
                        .unwrap_or_else(|| json!(s)),
                };
                m.insert(n.into(), v);
            }
            FieldKind::Date(_) => {
                m.insert(n.into(), date_from_input(raw));
            }
            FieldKind::Json(_) => {
                let v = if raw.trim().is_empty() {
                    Value::Null
                } else {
                    match serde_json::from_str::<Value>(raw) {
                        Ok(v) => v,
                        Err(e) => {
                            bad.insert(n.into(), json!({"code": "validation_invalid_json", "message": format!("Not valid JSON: {e}.")}));
                            continue;
                        }
                    }
                };
                m.insert(n.into(), v);
            }
            FieldKind::Select(_) | FieldKind::Relation(_) => {
                let mut list: Vec<String> = form
                    .all(n)
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                for extra in form
                    .get(&format!("{n}__ids"))
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    if !list.iter().any(|x| x == extra) {
                        list.push(extra.to_owned());
                    }
                }
                let v = if max_select(f) > 1 {
                    json!(list)
                } else {
                    json!(list.last().cloned().unwrap_or_default())
                };
                m.insert(n.into(), v);
            }
            FieldKind::File(_) => {
                let uploading = form.files.iter().any(|u| u.key == n);
                let keep: Vec<&str> = if max_select(f) <= 1 && uploading {
                    vec![]
                } else {
                    form.all(&format!("{n}__keep"))
                };
                if !is_new || !keep.is_empty() {
                    m.insert(n.into(), json!(keep));
                }
            }
            FieldKind::GeoPoint(_) => {
                let num = |k: &str| {
                    form.get(&format!("{n}.{k}"))
                        .trim()
                        .parse::<f64>()
                        .unwrap_or(0.0)
                };
                m.insert(n.into(), json!({"lon": num("lon"), "lat": num("lat")}));
            }
            FieldKind::Password(_) => {
                if !raw.is_empty() {
                    m.insert(n.into(), json!(raw));
                    m.insert("passwordConfirm".into(), json!(form.get("passwordConfirm")));
                }
            }
            _ => {
                m.insert(n.into(), json!(raw));
            }
        }
    }
    if !bad.is_empty() {
        return Err(CoreError::BadRequest {
            message: if is_new {
                "Failed to create record."
            } else {
                "Failed to update record."
            }
            .into(),
            data: Value::Object(bad),
        });
    }
    Ok(m)
}

/// What the form showed, for showing it again after a failed save.
fn echo(col: &Collection, v: &Map<String, Value>, old: &Map<String, Value>) -> Map<String, Value> {
    let mut r = old.clone();
    for (k, x) in v {
        if col
            .field(k)
            .is_some_and(|f| !matches!(f.kind, FieldKind::Password(_)))
        {
            r.insert(k.clone(), x.clone());
        }
    }
    r
}

pub async fn create(
    State(app): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    mut form: FormData,
) -> Response {
    if let Some(r) = admin.check(&form) {
        return r;
    }
    let Some(col) = find(&app, &name) else {
        return layout::not_found();
    };
    let uploads = std::mem::take(&mut form.files);
    let vals = match values(&col, &form, true) {
        Ok(v) => v,
        Err(e) => return failed(&app, &admin, &col, &Map::new(), true, &e).await,
    };
    match records::create(
        &app,
        &req(&admin),
        &col.name,
        records::RecordBody {
            values: vals.clone(),
            uploads,
        },
        &[],
    )
    .await
    {
        Ok(v) => {
            let id = v.get("id").and_then(Value::as_str).unwrap_or("");
            redirect(&format!(
                "/_/collections/{}/records/{}?done=created",
                super::enc(&col.name),
                super::enc(id)
            ))
        }
        Err(e) => {
            failed(
                &app,
                &admin,
                &col,
                &echo(&col, &vals, &Map::new()),
                true,
                &e,
            )
            .await
        }
    }
}

async fn failed(
    app: &AppState,
    admin: &Admin,
    col: &Collection,
    rec: &Map<String, Value>,
    is_new: bool,
    e: &CoreError,
) -> Response {
    let mut r = form_page(app, admin, col, rec, is_new, Some(core_error(e))).await;
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

pub async fn update(
    State(app): State<AppState>,
    admin: Admin,
    Path((name, id)): Path<(String, String)>,
    mut form: FormData,
) -> Response {
    if let Some(r) = admin.check(&form) {
        return r;
    }
    let Some(col) = find(&app, &name) else {
        return layout::not_found();
    };
    let Ok(old) = load(&app, &admin, &col, &id).await else {
        return layout::not_found();
    };
    let uploads = std::mem::take(&mut form.files);
    let vals = match values(&col, &form, false) {
        Ok(v) => v,
        Err(e) => return failed(&app, &admin, &col, &old, false, &e).await,
    };
    match records::update(
        &app,
        &req(&admin),
        &col.name,
        &id,
        records::RecordBody {
            values: vals.clone(),
            uploads,
        },
        &[],
    )
    .await
    {
        Ok(_) => redirect(&format!(
            "/_/collections/{}/records/{}?done=saved",
            super::enc(&col.name),
            super::enc(&id)
        )),
        Err(e) => failed(&app, &admin, &col, &echo(&col, &vals, &old), false, &e).await,
    }
}

pub async fn auth_action(
    State(app): State<AppState>,
    admin: Admin,
    Path((name, id)): Path<(String, String)>,
    form: FormData,
) -> Response {
    if let Some(r) = admin.check(&form) {
        return r;
    }
    let Some(col) = find(&app, &name).filter(|c| c.is_auth()) else {
        return layout::not_found();
    };
    let Ok(rec) = load(&app, &admin, &col, &id).await else {
        return layout::not_found();
    };
    let email = rec
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let back = |code: &str| {
        redirect(&format!(
            "/_/collections/{}/records/{}?done={code}",
            super::enc(&col.name),
            super::enc(&id)
        ))
    };
    let res = match form.get("action") {
        "verify" => {
            galley_core::auth::flows::request_verification(&app, &col.name, &email, &admin.caller)
                .await
                .map(|_| back("verification"))
        }
        "reset" => {
            galley_core::auth::flows::request_password_reset(&app, &col.name, &email, &admin.caller)
                .await
                .map(|_| back("reset"))
        }
        "impersonate" => {
            let duration = form
                .get("duration")
                .trim()
                .parse::<f64>()
                .map(|d| json!(d))
                .ok();
            match galley_core::auth::flows::impersonate(
                &app,
                &col.name,
                &id,
                duration.as_ref(),
                &admin.caller,
            )
            .await
            {
                Ok(v) => {
                    let token = v.token;
                    let notice = html! {
                        div.notice role="status" {
                            p { strong { "Impersonation token for " (email) } " (not refreshable). Send it as the " code { "Authorization" } " header to act as this user." }
                            label for="imp-token" { "Token" }
                            textarea #imp-token.code readonly rows="3" { (token) }
                        }
                    };
                    return form_page(&app, &admin, &col, &rec, false, Some(notice)).await;
                }
                Err(e) => Err(e),
            }
        }
        _ => return layout::error_page(StatusCode::BAD_REQUEST, "Unknown action."),
    };
    match res {
        Ok(r) => r,
        Err(e) => form_page(&app, &admin, &col, &rec, false, Some(core_error(&e))).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_the_date_input() {
        assert_eq!(
            date_input_value("2024-05-06 07:08:09.123Z"),
            "2024-05-06T07:08:09"
        );
        assert_eq!(date_input_value(""), "");
        assert_eq!(
            date_input_value("ééééééééééééé"),
            "",
            "no panic on odd bytes"
        );
        assert_eq!(
            date_from_input("2024-05-06T07:08:09"),
            json!("2024-05-06 07:08:09.000Z")
        );
        assert_eq!(
            date_from_input("2024-05-06T07:08"),
            json!("2024-05-06 07:08:00.000Z")
        );
        assert_eq!(date_from_input("  "), json!(""));
    }

    #[test]
    fn text_is_shortened_by_characters() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("ééééé", 2), "éé…");
    }
}
