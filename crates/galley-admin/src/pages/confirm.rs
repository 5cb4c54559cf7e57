//! The public pages that mailed links open (`{APP_URL}/_/#/auth/confirm-…/{TOKEN}`, as in
//! PocketBase): confirm a verification, set a new password, confirm an email change. The
//! script turns the hash route into `/_/confirm?kind=…&token=…`; no sign-in is needed, the
//! token is the authority, and the flows in galley-core verify it.

use crate::form::PublicForm;
use crate::layout::{bare, csrf};
use crate::pages::auth::{pre_ok, pre_token, with_pre_cookie};
use crate::{is_https, AppState};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use galley_core::auth::flows;
use maud::{html, Markup};

/// The auth collection a token belongs to (its signature is checked by the flow).
fn collection_of(app: &AppState, token: &str) -> Option<String> {
    galley_core::tokens::unverified_auth_collection(&app.schema(), token).map(|c| c.name.clone())
}

fn title(kind: &str) -> &'static str {
    match kind {
        "verification" => "Confirm your email",
        "password-reset" => "Choose a new password",
        "email-change" => "Confirm your new email",
        _ => "Invalid link",
    }
}

fn form(kind: &str, token: &str, pre: &str, error: Option<Markup>) -> Markup {
    html! {
        h1 { (title(kind)) }
        @if let Some(e) = error { (e) }
        form method="post" action="/_/confirm" {
            (csrf(pre))
            input type="hidden" name="kind" value=(kind);
            input type="hidden" name="token" value=(token);
            @match kind {
                "password-reset" => {
                    label for="password" { "New password" }
                    input #password type="password" name="password" required autocomplete="new-password";
                    label for="passwordConfirm" { "New password again" }
                    input #passwordConfirm type="password" name="passwordConfirm" required autocomplete="new-password";
                    button.primary type="submit" { "Set the new password" }
                }
                "email-change" => {
                    label for="password" { "Your password" }
                    input #password type="password" name="password" required autocomplete="current-password";
                    button.primary type="submit" { "Confirm the new email" }
                }
                _ => { button.primary type="submit" { "Confirm my email" } }
            }
        }
    }
}

pub async fn page(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let q = super::query(q.as_deref());
    let kind = q.get("kind").map(String::as_str).unwrap_or("");
    let token = q.get("token").map(String::as_str).unwrap_or("");
    if title(kind) == "Invalid link" || collection_of(&app, token).is_none() {
        let mut r = bare(
            "Invalid link",
            html! { h1 { "Invalid or expired link" } p { "Ask for a new email and use its link." } },
        );
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    }
    let (pre, fresh) = pre_token(&headers);
    with_pre_cookie(
        bare(title(kind), form(kind, token, &pre, None)),
        &pre,
        fresh,
        is_https(&headers),
    )
}

pub async fn submit(
    State(app): State<AppState>,
    headers: HeaderMap,
    PublicForm(f): PublicForm,
) -> Response {
    if !pre_ok(&headers, &f) {
        return crate::layout::forbidden();
    }
    let (kind, token) = (f.get("kind"), f.get("token"));
    let Some(col) = collection_of(&app, token) else {
        return bare("Invalid link", html! { h1 { "Invalid or expired link" } });
    };
    let res = match kind {
        "verification" => flows::confirm_verification(&app, &col, token).await,
        "password-reset" => {
            flows::confirm_password_reset(
                &app,
                &col,
                token,
                f.get("password"),
                f.get("passwordConfirm"),
            )
            .await
        }
        "email-change" => flows::confirm_email_change(&app, &col, token, f.get("password")).await,
        _ => return bare("Invalid link", html! { h1 { "Invalid link" } }),
    };
    match res {
        Ok(()) => bare(
            title(kind),
            html! {
                h1 { "Done" }
                p.flash role="status" { (match kind {
                    "verification" => "Your email is confirmed.",
                    "password-reset" => "Your password is changed. Sign in with it in the app.",
                    _ => "Your new email is confirmed. Sign in with it in the app.",
                }) }
            },
        ),
        Err(e) => {
            let mut r = bare(
                title(kind),
                form(
                    kind,
                    token,
                    f.get("csrf"),
                    Some(crate::layout::core_error(&e)),
                ),
            );
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
    }
}
