//! Auth endpoints of auth collections, and Galley's dev outbox. The login and mail-sending
//! POSTs take a [`LimitedBody`], which counts them against the per-IP auth rate limit once
//! their body has been read (a malformed body is a 400 first, and does not count).

use super::{no_content, ok, require_superuser};
use crate::error::ApiResult;
use crate::extract::{Auth, Body, LimitedBody, Query};
use crate::AppState;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use galley_core::auth::{self, alert, flows, oauth2, otp, Origin};
use galley_core::App;
use serde_json::{json, Value};
use std::net::SocketAddr;

pub fn router() -> Router<AppState> {
    let c = "/api/collections/{collection}";
    Router::new()
        .route(&format!("{c}/auth-methods"), get(auth_methods))
        .route(&format!("{c}/auth-with-password"), post(auth_with_password))
        .route(&format!("{c}/auth-refresh"), post(auth_refresh))
        .route(&format!("{c}/impersonate/{{id}}"), post(impersonate))
        .route(&format!("{c}/request-otp"), post(request_otp))
        .route(&format!("{c}/auth-with-otp"), post(auth_with_otp))
        .route(&format!("{c}/auth-with-oauth2"), post(auth_with_oauth2))
        .route(
            "/api/oauth2-redirect",
            get(oauth2_redirect_get).post(oauth2_redirect_post),
        )
        .route(
            &format!("{c}/request-verification"),
            post(request_verification),
        )
        .route(
            &format!("{c}/confirm-verification"),
            post(confirm_verification),
        )
        .route(
            &format!("{c}/request-password-reset"),
            post(request_password_reset),
        )
        .route(
            &format!("{c}/confirm-password-reset"),
            post(confirm_password_reset),
        )
        .route(
            &format!("{c}/request-email-change"),
            post(request_email_change),
        )
        .route(
            &format!("{c}/confirm-email-change"),
            post(confirm_email_change),
        )
        .route("/api/settings/test/email", post(test_email))
        .route("/api/galley/outbox", get(outbox))
}

use galley_http::client_ip;

/// The connection's peer address, when the server was started with connect info.
struct Peer(Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = crate::error::ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// Where a login comes from, for auth alerts.
fn origin(app: &App, peer: &Peer, headers: &HeaderMap) -> Origin {
    Origin {
        ip: client_ip(app, peer.0, headers),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    }
}

fn text(body: &Body, k: &str) -> String {
    match body.values.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn mfa_id(body: &Body, q: &Query) -> Option<String> {
    Some(text(body, "mfaId"))
        .filter(|s| !s.is_empty())
        .or_else(|| q.get("mfaId").map(str::to_owned))
}

async fn auth_methods(
    State(app): State<AppState>,
    Path(col): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    Ok(ok(flows::auth_methods(&app, &col).await?, &q))
}

async fn auth_with_password(
    State(app): State<AppState>,
    Auth(c): Auth,
    peer: Peer,
    headers: HeaderMap,
    Path(col): Path<String>,
    q: Query,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Response> {
    let identity_field = body
        .values
        .get("identityField")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let res = auth::auth_with_password(
        &app,
        &col,
        &text(&body, "identity"),
        &text(&body, "password"),
        identity_field,
        mfa_id(&body, &q).as_deref(),
        &c,
    )
    .await?;
    alert::after_login(&app, &col, &res, origin(&app, &peer, &headers));
    authed(&app, &col, "password", res, &c, &q).await
}

/// An auth answer, through the `onRecordAuthRequest` hooks when any listens.
async fn authed(
    app: &App,
    col: &str,
    method: &str,
    res: galley_core::auth::AuthResult,
    c: &galley_core::Caller,
    q: &Query,
) -> ApiResult<Response> {
    use galley_core::context::request_hooks::{NextRequest, RequestEvent};
    let Some(h) = super::records::hooks(app, RequestEvent::Auth, col) else {
        return Ok(ok(res, q));
    };
    let mut answer = super::IntoBody::into_body(res);
    answer["authMethod"] = Value::String(method.to_owned());
    let req = galley_core::Request::new(
        c.clone(),
        galley_core::RequestMeta {
            method: "POST".into(),
            context: "default".into(),
            ..Default::default()
        },
    );
    let next: NextRequest = Box::new(|answer| Box::pin(async move { Ok(answer) }));
    let uri = axum::http::Uri::default();
    super::records::hooked(
        h,
        RequestEvent::Auth,
        &req,
        &uri,
        None,
        Some(answer),
        q,
        next,
    )
    .await
}

fn raw_token(headers: &HeaderMap) -> String {
    let s = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim();
    match s.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => s[7..].trim().to_owned(),
        _ => s.to_owned(),
    }
}

async fn auth_refresh(
    State(app): State<AppState>,
    Auth(c): Auth,
    headers: HeaderMap,
    Path(col): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let res = auth::auth_refresh(&app, &col, &c, &raw_token(&headers)).await?;
    authed(&app, &col, "refresh", res, &c, &q).await
}

async fn impersonate(
    State(app): State<AppState>,
    Auth(c): Auth,
    Path((col, id)): Path<(String, String)>,
    q: Query,
    body: Body,
) -> ApiResult<Response> {
    Ok(ok(
        flows::impersonate(&app, &col, &id, body.values.get("duration"), &c).await?,
        &q,
    ))
}

async fn request_otp(
    State(app): State<AppState>,
    Auth(c): Auth,
    Path(col): Path<String>,
    q: Query,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Response> {
    Ok(ok(
        otp::request_otp(&app, &col, &text(&body, "email"), &c).await?,
        &q,
    ))
}

async fn auth_with_otp(
    State(app): State<AppState>,
    Auth(c): Auth,
    peer: Peer,
    headers: HeaderMap,
    Path(col): Path<String>,
    q: Query,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Response> {
    let res = otp::auth_with_otp(
        &app,
        &col,
        &text(&body, "otpId"),
        &text(&body, "password"),
        mfa_id(&body, &q).as_deref(),
        &c,
    )
    .await?;
    alert::after_login(&app, &col, &res, origin(&app, &peer, &headers));
    authed(&app, &col, "otp", res, &c, &q).await
}

async fn auth_with_oauth2(
    State(app): State<AppState>,
    Auth(c): Auth,
    peer: Peer,
    headers: HeaderMap,
    Path(col): Path<String>,
    q: Query,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Response> {
    let mut redirect_url = text(&body, "redirectURL");
    if redirect_url.is_empty() {
        // The pre-0.23 spelling.
        redirect_url = text(&body, "redirectUrl");
    }
    let create_data = match body.values.get("createData") {
        Some(Value::Object(m)) => m.clone(),
        None | Some(Value::Null) => Default::default(),
        Some(_) => {
            return Err(crate::error::ApiError::bad_request(
                "An error occurred while loading the submitted data.",
            ))
        }
    };
    let form = oauth2::Form {
        provider: text(&body, "provider"),
        code: text(&body, "code"),
        code_verifier: text(&body, "codeVerifier"),
        redirect_url,
        create_data,
    };
    let res = oauth2::auth_with_oauth2(&app, &col, form, mfa_id(&body, &q).as_deref(), &c).await?;
    alert::after_login(&app, &col, &res, origin(&app, &peer, &headers));
    authed(&app, &col, "oauth2", res, &c, &q).await
}

/// The end of the SDK's popup flow; answers as PocketBase does without its bundled UI.
fn oauth2_redirect_reply(app: &App, params: &[(String, String)]) -> Response {
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let (kind, text) = if oauth2::redirect(
        app,
        get("state"),
        get("code"),
        get("error"),
        get("user"),
    ) {
        (
            "text/html; charset=utf-8",
            "Auth completed. You can close this window and go back to the app.",
        )
    } else {
        (
            "text/plain; charset=utf-8",
            "Failed to authenticate. You can close this window and go back to the app to try again.",
        )
    };
    let mut r = Response::new(axum::body::Body::from(text));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    r
}

async fn oauth2_redirect_get(
    State(app): State<AppState>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or_default()).unwrap_or_default();
    oauth2_redirect_reply(&app, &params)
}

/// Apple's `response_mode=form_post` lands here. The raw form is parsed as text: a code
/// must not go through the body extractor's number inference.
async fn oauth2_redirect_post(State(app): State<AppState>, body: axum::body::Bytes) -> Response {
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    oauth2_redirect_reply(&app, &params)
}

async fn request_verification(
    State(app): State<AppState>,
    Auth(c): Auth,
    Path(col): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Response> {
    flows::request_verification(&app, &col, &text(&body, "email"), &c).await?;
    Ok(no_content())
}

async fn confirm_verification(
    State(app): State<AppState>,
    Path(col): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Response> {
    flows::confirm_verification(&app, &col, &text(&body, "token")).await?;
    Ok(no_content())
}

async fn request_password_reset(
    State(app): State<AppState>,
    Auth(c): Auth,
    Path(col): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Response> {
    flows::request_password_reset(&app, &col, &text(&body, "email"), &c).await?;
    Ok(no_content())
}

async fn confirm_password_reset(
    State(app): State<AppState>,
    Path(col): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Response> {
    flows::confirm_password_reset(
        &app,
        &col,
        &text(&body, "token"),
        &text(&body, "password"),
        &text(&body, "passwordConfirm"),
    )
    .await?;
    Ok(no_content())
}

async fn request_email_change(
    State(app): State<AppState>,
    Auth(c): Auth,
    Path(col): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Response> {
    flows::request_email_change(&app, &col, &text(&body, "newEmail"), &c).await?;
    Ok(no_content())
}

async fn confirm_email_change(
    State(app): State<AppState>,
    Path(col): Path<String>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Response> {
    flows::confirm_email_change(&app, &col, &text(&body, "token"), &text(&body, "password"))
        .await?;
    Ok(no_content())
}

async fn test_email(State(app): State<AppState>, Auth(c): Auth, body: Body) -> ApiResult<Response> {
    require_superuser(&c)?;
    let col = text(&body, "collection");
    flows::test_email(
        &app,
        &text(&body, "email"),
        &text(&body, "template"),
        Some(col.as_str()),
    )
    .await?;
    Ok(no_content())
}

/// `GET /api/galley/outbox` (Galley extension): mails kept while SMTP is not enabled.
async fn outbox(State(app): State<AppState>, Auth(c): Auth, q: Query) -> ApiResult<Response> {
    require_superuser(&c)?;
    let items = app.outbox().await?;
    Ok(ok(json!({"items": items, "totalItems": items.len()}), &q))
}
