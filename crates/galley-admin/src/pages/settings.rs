//! Settings: application, SMTP (with a test mail), S3, rate limits, token durations, and the
//! dev outbox of mail kept while SMTP is off.

use crate::form::FormData;
use crate::layout::{self, core_error, csrf, page};
use crate::{redirect, Admin, AppState};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use galley_core::CoreError;
use maud::{html, Markup};
use serde_json::{json, Map, Value};

const TOKENS: [(&str, &str); 5] = [
    ("authToken", "Auth token"),
    ("verificationToken", "Verification token"),
    ("passwordResetToken", "Password reset token"),
    ("emailChangeToken", "Email change token"),
    ("fileToken", "Protected file token"),
];

fn text(id: &str, name: &str, label: &str, value: &str, kind: &str) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            input id=(id) type=(kind) name=(name) value=(value) autocomplete="off";
        }
    }
}

fn check(id: &str, name: &str, label: &str, on: bool) -> Markup {
    html! { div.check { input id=(id) type="checkbox" name=(name) checked[on]; " " label for=(id) { (label) } } }
}

fn section_form(admin: &Admin, section: &str, title: &str, body: Markup, button: &str) -> Markup {
    html! {
        section.card id={ "settings-" (section) } {
            h2 { (title) }
            form method="post" action="/_/settings" {
                (csrf(&admin.csrf))
                input type="hidden" name="section" value=(section);
                (body)
                div.actions { button.primary type="submit" { (button) } }
            }
        }
    }
}

async fn render(
    app: &AppState,
    admin: &Admin,
    flash: Option<&str>,
    error: Option<Markup>,
) -> Response {
    let s = app.settings();
    let rules = serde_json::to_string_pretty(&s.rate_limits.rules).unwrap_or_default();
    let schema = app.schema();
    let auth_cols: Vec<_> = schema
        .all()
        .iter()
        .filter(|c| c.is_auth())
        .cloned()
        .collect();
    let outbox = app.outbox().await.unwrap_or_default();
    let body = html! {
        h1 { "Settings" }
        @if let Some(e) = error { (e) }
        (section_form(admin, "application", "Application", html! {
            (text("s-appName", "appName", "Application name", &s.meta.app_name, "text"))
            (text("s-appURL", "appURL", "Application URL (used in mail links)", &s.meta.app_url, "url"))
            (text("s-senderName", "senderName", "Mail sender name", &s.meta.sender_name, "text"))
            (text("s-senderAddress", "senderAddress", "Mail sender address", &s.meta.sender_address, "email"))
        }, "Save application settings"))
        (section_form(admin, "smtp", "Mail (SMTP)", html! {
            p.help { "While SMTP is off, mail is kept in the dev outbox at the bottom of this page." }
            (check("s-smtp-enabled", "enabled", "Send mail through SMTP", s.smtp.enabled))
            div.row {
                (text("s-smtp-host", "host", "Host", &s.smtp.host, "text"))
                (text("s-smtp-port", "port", "Port", &s.smtp.port.to_string(), "number"))
            }
            div.row {
                (text("s-smtp-username", "username", "Username", &s.smtp.username, "text"))
                (text("s-smtp-password", "password", "Password (empty: unchanged)", "", "password"))
            }
            (check("s-smtp-tls", "tls", "Implicit TLS (port 465); otherwise STARTTLS when offered", s.smtp.tls))
            div.field {
                label for="s-smtp-auth" { "Auth method" }
                select #s-smtp-auth name="authMethod" {
                    @for m in ["", "PLAIN", "LOGIN"] { option value=(m) selected[s.smtp.auth_method == m] { (if m.is_empty() { "default (PLAIN)" } else { m }) } }
                }
            }
            (text("s-smtp-localName", "localName", "Local name (EHLO)", &s.smtp.local_name, "text"))
        }, "Save SMTP settings"))
        section.card #settings-testmail {
            h2 { "Send a test email" }
            form method="post" action="/_/settings" {
                (csrf(&admin.csrf))
                input type="hidden" name="section" value="testmail";
                (text("s-test-email", "email", "To", &admin.email, "email"))
                div.field {
                    label for="s-test-template" { "Template" }
                    select #s-test-template name="template" {
                        @for (v, l) in [("verification", "Verification"), ("password-reset", "Password reset"), ("email-change", "Email change"), ("otp", "One-time password"), ("login-alert", "Login alert")] {
                            option value=(v) { (l) }
                        }
                    }
                }
                div.actions { button.primary type="submit" { "Send test email" } }
            }
        }
        (section_form(admin, "s3", "File storage (S3)", html! {
            p.help { "Off: files are stored in the data directory. Changing this does not move existing files." }
            (check("s-s3-enabled", "enabled", "Store files in S3-compatible storage", s.s3.enabled))
            div.row {
                (text("s-s3-bucket", "bucket", "Bucket", &s.s3.bucket, "text"))
                (text("s-s3-region", "region", "Region", &s.s3.region, "text"))
            }
            (text("s-s3-endpoint", "endpoint", "Endpoint", &s.s3.endpoint, "url"))
            div.row {
                (text("s-s3-accessKey", "accessKey", "Access key", &s.s3.access_key, "text"))
                (text("s-s3-secret", "secret", "Secret (empty: unchanged)", "", "password"))
            }
            (check("s-s3-path", "forcePathStyle", "Force path-style addressing", s.s3.force_path_style))
        }, "Save S3 settings"))
        @if s.s3.enabled {
            form.inline-form method="post" action="/_/settings" {
                (csrf(&admin.csrf)) input type="hidden" name="section" value="tests3";
                button type="submit" { "Test the S3 connection" }
            }
        }
        (section_form(admin, "ratelimits", "Rate limits", html! {
            (check("s-rl-enabled", "enabled", "Enable rate limiting", s.rate_limits.enabled))
            div.field {
                label for="s-rl-rules" { "Rules (JSON list of {label, maxRequests, duration, audience})" }
                textarea #s-rl-rules.code name="rules" rows="5" data-json { (rules) }
                output.json-status aria-live="polite" {}
            }
        }, "Save rate limits"))
        @if !auth_cols.is_empty() {
            (section_form(admin, "tokens", "Token durations (seconds)", html! {
                div.scroll {
                    table {
                        thead { tr { th scope="col" { "Collection" } @for (_, l) in TOKENS { th scope="col" { (l) } } } }
                        tbody {
                            @for c in &auth_cols {
                                @let j = c.to_json();
                                tr {
                                    th scope="row" { (c.name) }
                                    @for (k, l) in TOKENS {
                                        td {
                                            input type="number" min="0" name={ (c.name) "." (k) } value=(j.pointer(&format!("/{k}/duration")).map(|v| v.to_string()).unwrap_or_default()) aria-label={ (c.name) " " (l) " duration" };
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }, "Save token durations"))
        }
        section.card #outbox {
            h2 { "Dev outbox (" (outbox.len()) ")" }
            @if outbox.is_empty() { p { "No mail yet." } }
            ol.outbox {
                @for m in outbox.iter().rev() {
                    li {
                        p { strong.subject { (m.get("subject").and_then(Value::as_str).unwrap_or("")) } " → " span.to { (m.get("to").and_then(Value::as_str).unwrap_or("")) } " " small { (m.get("created").and_then(Value::as_str).unwrap_or("")) } }
                        details { summary { "Message source" } pre { (m.get("html").and_then(Value::as_str).unwrap_or("")) } }
                    }
                }
            }
        }
    };
    page(app, admin, "Settings", flash, body)
}

pub async fn view(State(app): State<AppState>, admin: Admin, RawQuery(q): RawQuery) -> Response {
    let q = super::query(q.as_deref());
    render(
        &app,
        &admin,
        layout::flash(q.get("done").map(String::as_str)),
        None,
    )
    .await
}

fn num(s: &str) -> Value {
    s.trim()
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| json!(s.trim()))
}

fn form_error(msg: &str) -> CoreError {
    CoreError::bad_request(msg)
}

pub async fn save(State(app): State<AppState>, admin: Admin, form: FormData) -> Response {
    if let Some(r) = admin.check(&form) {
        return r;
    }
    let on = |k: &str| form.has(k);
    let res: Result<&str, CoreError> = match form.get("section") {
        "application" => app
            .update_settings(json!({"meta": {
                "appName": form.get("appName").trim(),
                "appURL": form.get("appURL").trim(),
                "senderName": form.get("senderName").trim(),
                "senderAddress": form.get("senderAddress").trim(),
            }}))
            .await
            .map(|_| "saved"),
        "smtp" => {
            let mut smtp = json!({
                "enabled": on("enabled"),
                "host": form.get("host").trim(),
                "port": num(form.get("port")),
                "username": form.get("username"),
                "tls": on("tls"),
                "authMethod": form.get("authMethod"),
                "localName": form.get("localName").trim(),
            });
            if !form.get("password").is_empty() {
                smtp["password"] = json!(form.get("password"));
            }
            if !smtp["port"].is_i64() {
                Err(form_error("The SMTP port must be a number."))
            } else {
                app.update_settings(json!({"smtp": smtp}))
                    .await
                    .map(|_| "saved")
            }
        }
        "testmail" => galley_core::auth::flows::test_email(
            &app,
            form.get("email").trim(),
            form.get("template"),
            None,
        )
        .await
        .map(|_| "testmail"),
        "s3" => {
            let mut s3 = json!({
                "enabled": on("enabled"),
                "bucket": form.get("bucket").trim(),
                "region": form.get("region").trim(),
                "endpoint": form.get("endpoint").trim(),
                "accessKey": form.get("accessKey").trim(),
                "forcePathStyle": on("forcePathStyle"),
            });
            if !form.get("secret").is_empty() {
                s3["secret"] = json!(form.get("secret"));
            }
            app.update_settings(json!({"s3": s3}))
                .await
                .map(|_| "saved")
        }
        "tests3" => galley_core::files::test_s3(&app, "storage")
            .await
            .map(|_| "s3ok"),
        "ratelimits" => match serde_json::from_str::<Value>(form.get("rules")) {
            Ok(rules @ Value::Array(_)) => app
                .update_settings(json!({"rateLimits": {"enabled": on("enabled"), "rules": rules}}))
                .await
                .map(|_| "saved"),
            _ => Err(form_error("The rate limit rules must be a JSON list.")),
        },
        "tokens" => save_tokens(&app, &form).await.map(|_| "saved"),
        _ => Err(form_error("Unknown settings section.")),
    };
    match res {
        Ok(code) => redirect(&format!("/_/settings?done={code}")),
        Err(e) => {
            let mut r = render(&app, &admin, None, Some(core_error(&e))).await;
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
    }
}

/// Token durations live in each auth collection's options.
async fn save_tokens(app: &AppState, form: &FormData) -> Result<(), CoreError> {
    let cols: Vec<_> = app
        .schema()
        .all()
        .iter()
        .filter(|c| c.is_auth())
        .cloned()
        .collect();
    for c in cols {
        let current = c.to_json();
        let mut patch = Map::new();
        for (k, _) in TOKENS {
            let raw = form.get(&format!("{}.{k}", c.name)).trim();
            if raw.is_empty() {
                continue;
            }
            let Ok(n) = raw.parse::<i64>() else {
                return Err(form_error(
                    "Token durations must be whole numbers of seconds.",
                ));
            };
            if current
                .pointer(&format!("/{k}/duration"))
                .and_then(Value::as_i64)
                != Some(n)
            {
                patch.insert(k.into(), json!({"duration": n}));
            }
        }
        if !patch.is_empty() {
            galley_core::collections::update(
                app,
                &c.name,
                Value::Object(patch),
                galley_core::collections::By::Request,
            )
            .await?;
        }
    }
    Ok(())
}
