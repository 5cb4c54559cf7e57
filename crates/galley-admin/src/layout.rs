//! The page frame (header, navigation, collections sidebar) and shared bits of markup.

use crate::Admin;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use galley_core::{App, CoreError};
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Galley" }
            link rel="stylesheet" href="/_/assets/admin.css";
            script src="/_/assets/admin.js" defer {}
        }
    }
}

/// A signed-in page: header, sidebar of collections, `body` in `<main>`.
pub fn page(app: &App, admin: &Admin, title: &str, flash: Option<&str>, body: Markup) -> Response {
    let schema = app.schema();
    let mut cols: Vec<_> = schema.all().iter().collect();
    cols.sort_by(|a, b| (a.system, &a.name).cmp(&(b.system, &b.name)));
    let app_name = app.settings().meta.app_name.clone();
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/_/" { (app_name) }
                    nav aria-label="Main" {
                        a href="/_/" { "Collections" }
                        a href="/_/logs" { "Logs" }
                        a href="/_/jobs" { "Jobs" }
                        a href="/_/webhooks" { "Webhooks" }
                        a href="/_/settings" { "Settings" }
                    }
                    form.signout method="post" action="/_/logout" {
                        (csrf(&admin.csrf))
                        span.who { (admin.email) }
                        button type="submit" { "Sign out" }
                    }
                }
                div.wrap {
                    nav.side aria-label="Collections" {
                        h2 { "Collections" }
                        ul {
                            @for c in &cols {
                                li {
                                    a href={ "/_/collections/" (c.name) "/records" } {
                                        (c.name)
                                        @if c.is_auth() { " " span.tag { "auth" } }
                                        @if c.kind == galley_types::CollectionType::View { " " span.tag { "view" } }
                                    }
                                }
                            }
                        }
                        a.button href="/_/collections/new" { "+ New collection" }
                    }
                    main #main tabindex="-1" {
                        @if let Some(f) = flash { p.flash role="status" { (f) } }
                        (body)
                    }
                }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// A page without the signed-in frame (install, sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main #main.card { (body) }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

pub fn error_page(status: StatusCode, msg: &str) -> Response {
    let mut r = bare(
        "Error",
        html! { h1 { "Something went wrong" } p.error role="alert" { (msg) } p { a href="/_/" { "Back to the dashboard" } } },
    );
    *r.status_mut() = status;
    r
}

pub fn forbidden() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "The form had expired or did not come from this dashboard (missing or wrong CSRF token). Go back, reload the page and try again.",
    )
}

pub fn internal() -> Response {
    error_page(StatusCode::INTERNAL_SERVER_ERROR, "Internal error.")
}

pub fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, "Not found.")
}

pub fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A core error as a message and per-field details, for showing above a form.
pub fn core_error(e: &CoreError) -> Markup {
    let (msg, data) = match e {
        CoreError::BadRequest { message, data } => (message.clone(), data.clone()),
        CoreError::Internal(_) => (
            "Internal error (see the server log).".to_owned(),
            Value::Null,
        ),
        other => (other.to_string(), Value::Null),
    };
    html! {
        div.error role="alert" {
            p { strong { (msg) } }
            @if let Some(o) = data.as_object().filter(|o| !o.is_empty()) {
                ul {
                    @for (k, v) in o { li { code { (k) } ": " (field_error_text(v)) } }
                }
            }
        }
    }
}

/// `{"code","message"}` (or nested objects of them) as one line.
fn field_error_text(v: &Value) -> String {
    if let Some(m) = v.get("message").and_then(Value::as_str) {
        return m.to_owned();
    }
    match v {
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}: {}", field_error_text(v)))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// Flash messages come as a fixed code in the query, never as free text.
pub fn flash(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "created" => "Created.",
        "saved" => "Saved.",
        "deleted" => "Deleted.",
        "sent" => "Sent.",
        "signedin" => "Signed in.",
        "verification" => "Verification email sent (or queued in the dev outbox).",
        "reset" => "Password reset email sent (or queued in the dev outbox).",
        "testmail" => "Test email sent (with SMTP off it is in the dev outbox below).",
        "s3ok" => "S3 connection works.",
        "queued" => "Queued.",
        "started" => "Started.",
        "refused" => "Not possible in the item's current state.",
        _ => return None,
    })
}
