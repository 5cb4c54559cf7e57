//! First-run install, sign-in and sign-out.

use crate::form::{FormData, PublicForm};
use crate::layout::{bare, csrf, error_page};
use crate::session::{self, PRE_CSRF_COOKIE, SESSION_COOKIE};
use crate::{cookie_header, is_https, redirect, Admin, AppState, Console};
use axum::extract::{Extension, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use galley_core::superusers::SUPERUSERS;
use galley_core::Caller;
use galley_http::ClientIp;
use maud::html;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// The double-submit token of the pre-session forms: the cookie's value, or a new one.
pub(crate) fn pre_token(h: &HeaderMap) -> (String, bool) {
    match session::cookie(cookie_header(h), PRE_CSRF_COOKIE).filter(|v| v.len() == 43) {
        Some(v) => (v.to_owned(), false),
        None => (session::random_token(), true),
    }
}

pub(crate) fn with_pre_cookie(mut r: Response, token: &str, fresh: bool, https: bool) -> Response {
    if fresh {
        if let Ok(v) =
            HeaderValue::from_str(&session::set_cookie(PRE_CSRF_COOKIE, token, None, https))
        {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

pub(crate) fn pre_ok(h: &HeaderMap, form: &FormData) -> bool {
    let cookie = session::cookie(cookie_header(h), PRE_CSRF_COOKIE).unwrap_or("");
    session::csrf_ok(cookie, form.get("csrf"))
}

/// Starts a session for a superuser record and sends the browser to `to`.
fn sign_in(
    console: &Console,
    record: &serde_json::Map<String, Value>,
    https: bool,
    to: &str,
) -> Response {
    let id = record.get("id").and_then(Value::as_str).unwrap_or("");
    let key = record.get("tokenKey").and_then(Value::as_str).unwrap_or("");
    let sid = console.sessions.create(id, key, Instant::now());
    let mut r = redirect(to);
    for c in [
        session::set_cookie(SESSION_COOKIE, &sid, Some(session::MAX_AGE), https),
        session::clear_cookie(PRE_CSRF_COOKIE),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

async fn superuser_count(app: &AppState) -> i64 {
    galley_core::superusers::count(app).await.unwrap_or(1)
}

async fn load_superuser(app: &AppState, email: &str) -> Option<serde_json::Map<String, Value>> {
    let col = galley_core::auth::auth_collection(app, SUPERUSERS).ok()?;
    let su = Caller::Record {
        collection: col.clone(),
        record: Default::default(),
    };
    let filter = format!("email = {}", serde_json::to_string(email).ok()?);
    let list = galley_core::records::list(
        app,
        &galley_core::Request::new(su, Default::default()),
        SUPERUSERS,
        galley_core::records::ListQuery {
            page: galley_core::Page {
                page: 1,
                per_page: 1,
                skip_total: true,
            },
            filter,
            sort: String::new(),
            expand: vec![],
        },
    )
    .await
    .ok()?;
    let id = list.items.first()?.get("id")?.as_str()?;
    galley_core::records::find_by_id(app, col, id).await.ok()
}

fn install_form(token: &str, csrf_token: &str, email: &str, error: Option<&str>) -> maud::Markup {
    html! {
        h1 { "Welcome to Galley" }
        p { "Create the first superuser: the account that manages this server from this dashboard." }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form method="post" action="/_/install" {
            (csrf(csrf_token))
            input type="hidden" name="token" value=(token);
            label for="email" { "Email" }
            input #email type="email" name="email" required autocomplete="username" value=(email);
            label for="password" { "Password (at least 10 characters)" }
            input #password type="password" name="password" required minlength="10" autocomplete="new-password";
            label for="passwordConfirm" { "Password again" }
            input #passwordConfirm type="password" name="passwordConfirm" required minlength="10" autocomplete="new-password";
            button.primary type="submit" { "Create superuser and sign in" }
        }
    }
}

pub async fn install_page(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let q = super::query(q.as_deref());
    let token = q.get("token").cloned().unwrap_or_default();
    if superuser_count(&app).await > 0 {
        return bare(
            "Install",
            html! { h1 { "Already set up" } p { "A superuser exists; the install link no longer works." } p { a href="/_/login" { "Sign in" } } },
        );
    }
    if !session::csrf_ok(&crate::install_token(&app), &token) {
        return error_page(
            StatusCode::FORBIDDEN,
            "This install link is not valid. Use the link the server printed when it started.",
        );
    }
    let (pre, fresh) = pre_token(&headers);
    with_pre_cookie(
        bare("Install", install_form(&token, &pre, "", None)),
        &pre,
        fresh,
        is_https(&headers),
    )
}

pub async fn install(
    State(app): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    headers: HeaderMap,
    PublicForm(form): PublicForm,
) -> Response {
    if !pre_ok(&headers, &form) {
        return crate::layout::forbidden();
    }
    let token = form.get("token");
    if !session::csrf_ok(&crate::install_token(&app), token) {
        return error_page(StatusCode::FORBIDDEN, "This install link is not valid.");
    }
    if superuser_count(&app).await > 0 {
        return redirect("/_/login");
    }
    let (email, pw) = (form.get("email").trim(), form.get("password"));
    let pre = form.get("csrf");
    let again = |msg: &str| bare("Install", install_form(token, pre, email, Some(msg)));
    if pw != form.get("passwordConfirm") {
        return again("The passwords do not match.");
    }
    if pw.chars().count() < 10 {
        return again("The password must have at least 10 characters.");
    }
    if let Err(e) = galley_core::superusers::upsert(&app, email, pw).await {
        let msg = match &e {
            galley_core::CoreError::BadRequest { data, .. } if data.get("email").is_some() => {
                "Enter a valid email address.".to_owned()
            }
            galley_core::CoreError::BadRequest { data, .. } if data.get("password").is_some() => {
                "The password is not accepted (10 to 71 characters).".to_owned()
            }
            other => other.to_string(),
        };
        return again(&msg);
    }
    match load_superuser(&app, email).await {
        Some(rec) => sign_in(&console, &rec, is_https(&headers), "/_/?done=signedin"),
        None => redirect("/_/login"),
    }
}

fn login_form(
    csrf_token: &str,
    email: &str,
    error: Option<&str>,
    no_superuser: bool,
) -> maud::Markup {
    html! {
        h1 { "Sign in to Galley" }
        @if no_superuser {
            p.notice { "No superuser exists yet. Open the install link the server printed at start-up (" code { "/_/install?token=…" } ") to create one." }
        }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form method="post" action="/_/login" {
            (csrf(csrf_token))
            label for="email" { "Email" }
            input #email type="email" name="email" required autocomplete="username" value=(email);
            label for="password" { "Password" }
            input #password type="password" name="password" required autocomplete="current-password";
            button.primary type="submit" { "Sign in" }
        }
    }
}

pub async fn login_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let (pre, fresh) = pre_token(&headers);
    let none = superuser_count(&app).await == 0;
    with_pre_cookie(
        bare("Sign in", login_form(&pre, "", None, none)),
        &pre,
        fresh,
        is_https(&headers),
    )
}

pub async fn login(
    State(app): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    PublicForm(form): PublicForm,
) -> Response {
    if !pre_ok(&headers, &form) {
        return crate::layout::forbidden();
    }
    let email = form.get("email").trim();
    let failed = |msg: &str| {
        let mut r = bare(
            "Sign in",
            login_form(form.get("csrf"), email, Some(msg), false),
        );
        *r.status_mut() = StatusCode::BAD_REQUEST;
        r
    };
    // The API's per-IP budget for auth requests (the per-identity one is in the flow), for
    // the same client IP the API would see behind a trusted proxy.
    if app.auth.limit_ip(&Caller::Guest, &ip).is_err() {
        return failed("Too many attempts; wait a minute and try again.");
    }
    let res = galley_core::auth::auth_with_password(
        &app,
        SUPERUSERS,
        email,
        form.get("password"),
        None,
        None,
        &Caller::Guest,
    )
    .await;
    match res {
        Ok(v) => {
            let id = v.record_id().to_owned();
            if id.is_empty() {
                return failed("Invalid email or password.");
            }
            let Ok(col) = galley_core::auth::auth_collection(&app, SUPERUSERS) else {
                return crate::layout::internal();
            };
            match galley_core::records::find_by_id(&app, col, &id).await {
                Ok(r) => sign_in(&console, &r, is_https(&headers), "/_/"),
                Err(_) => crate::layout::internal(),
            }
        }
        Err(galley_core::CoreError::TooManyRequests { .. }) => {
            failed("Too many attempts; wait a minute and try again.")
        }
        Err(_) => failed("Invalid email or password."),
    }
}

pub async fn logout(admin: Admin, form: FormData) -> Response {
    if let Some(r) = admin.check(&form) {
        return r;
    }
    admin.console.sessions.remove(&admin.session_id);
    let mut r = redirect("/_/login");
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(SESSION_COOKIE)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
