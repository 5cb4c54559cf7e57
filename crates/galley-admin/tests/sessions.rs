//! The dashboard's gatekeeping through its router: the install token, the double-submit token
//! of the pre-session forms, session cookies, CSRF on state-changing forms, sign-out.

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use galley_core::{App, AppConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;

struct Ctx {
    app: Arc<App>,
    logs: Arc<galley_ops::Logs>,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

async fn start() -> Ctx {
    start_with(|_| {}).await
}

/// Every request comes from one TCP peer, 127.0.0.1 (as through a reverse proxy).
async fn start_with(configure: impl FnOnce(&mut AppConfig)) -> Ctx {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = AppConfig::new(dir.path());
    configure(&mut cfg);
    let app = App::open(cfg).await.expect("open");
    let logs = galley_ops::Logs::open(app.clone()).await.expect("logs");
    let router = galley_admin::router(logs.clone())
        .with_state(app.clone())
        .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    Ctx {
        app,
        logs,
        router,
        _dir: dir,
    }
}

async fn send(c: &Ctx, req: Request<Body>) -> (Response, String) {
    let res = c.router.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 22).await.expect("body");
    (
        Response::from_parts(parts, Body::empty()),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn get(uri: &str, cookie: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .expect("request")
}

fn post(uri: &str, cookie: &str, form: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .expect("request")
}

fn set_cookie(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_value(set: &str) -> String {
    set.split(';')
        .next()
        .unwrap_or("")
        .split_once('=')
        .map(|x| x.1.to_owned())
        .unwrap_or_default()
}

fn csrf_in(body: &str) -> String {
    let i = body.find("name=\"csrf\" value=\"").expect("csrf input") + 19;
    body[i..].split('"').next().unwrap_or("").to_owned()
}

fn location(res: &Response) -> &str {
    res.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn install_sign_in_csrf_and_sign_out() {
    let c = start().await;
    let token = galley_admin::install_token(&c.app);
    assert_eq!(token.len(), 40);
    assert_eq!(
        token,
        galley_admin::install_token(&c.app),
        "stable for one server"
    );

    let (res, _) = send(&c, get("/_/install?token=nope", "")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let (res, _) = send(&c, get("/_/", "")).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/_/login");

    let (res, body) = send(&c, get(&format!("/_/install?token={token}"), "")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let pre = cookie_value(&set_cookie(&res, "galley_csrf").expect("pre-session cookie"));
    assert_eq!(csrf_in(&body), pre, "the form repeats the cookie's token");

    let form = |csrf: &str| {
        format!("csrf={csrf}&token={token}&email=first%40example.com&password=first-pass-123&passwordConfirm=first-pass-123")
    };
    let cookie = format!("galley_csrf={pre}");
    // A forged form (no cookie, or another token) creates nothing.
    let (res, _) = send(&c, post("/_/install", "", &form(&pre))).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let (res, _) = send(&c, post("/_/install", &cookie, &form("other"))).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        galley_core::superusers::count(&c.app).await.expect("count"),
        0
    );

    let (res, _) = send(&c, post("/_/install", &cookie, &form(&pre))).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/_/?done=signedin");
    let set = set_cookie(&res, "galley_session").expect("session cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/_/"),
        "{set}"
    );
    let session = format!("galley_session={}", cookie_value(&set));
    assert_eq!(
        galley_core::superusers::count(&c.app).await.expect("count"),
        1
    );

    // The install link is spent once a superuser exists.
    let (_, body) = send(&c, get(&format!("/_/install?token={token}"), "")).await;
    assert!(body.contains("Already set up"));
    let (res, _) = send(&c, post("/_/install", &cookie, &form(&pre))).await;
    assert_eq!(location(&res), "/_/login");

    let (res, body) = send(&c, get("/_/settings", &session)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let csrf = csrf_in(&body);
    assert_ne!(csrf, pre);
    assert!(res.headers().get(header::CONTENT_SECURITY_POLICY).is_some());

    let name = |app: &App| app.settings().meta.app_name.clone();
    let (res, _) = send(
        &c,
        post(
            "/_/settings",
            &session,
            "section=application&appName=Forged",
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let (res, _) = send(
        &c,
        post(
            "/_/settings",
            &session,
            &format!("csrf={pre}&section=application&appName=Forged"),
        ),
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "the pre-session token is not the session's"
    );
    assert_eq!(name(&c.app), "Galley");
    let (res, _) = send(
        &c,
        post(
            "/_/settings",
            &session,
            &format!("csrf={csrf}&section=application&appName=Mine"),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(name(&c.app), "Mine");

    // The rule check wants the token in a header.
    let check = |tok: &str| {
        Request::post("/_/api/check-rule")
            .header(header::COOKIE, &session)
            .header("x-csrf-token", tok)
            .body(Body::from(
                r#"{"rule":"id = ","collection":{"original":"_superusers"}}"#,
            ))
            .expect("request")
    };
    let (res, _) = send(&c, check("")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let (res, body) = send(&c, check(&csrf)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["ok"], false);
    assert!(v["position"].is_u64(), "{v}");

    let (res, _) = send(&c, post("/_/logout", &session, "")).await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "sign-out needs the token too"
    );
    let (res, _) = send(&c, post("/_/logout", &session, &format!("csrf={csrf}"))).await;
    assert_eq!(location(&res), "/_/login");
    let (res, _) = send(&c, get("/_/settings", &session)).await;
    assert_eq!(
        location(&res),
        "/_/login",
        "the session is gone server-side"
    );
    c.app.close().await;
}

#[tokio::test]
async fn a_password_change_ends_sessions() {
    let c = start().await;
    galley_core::superusers::upsert(&c.app, "a@example.com", "first-pass-123")
        .await
        .expect("upsert");
    let (res, body) = send(&c, get("/_/login", "")).await;
    let pre = cookie_value(&set_cookie(&res, "galley_csrf").expect("cookie"));
    assert_eq!(csrf_in(&body), pre);
    let cookie = format!("galley_csrf={pre}");
    let (res, body) = send(
        &c,
        post(
            "/_/login",
            &cookie,
            &format!("csrf={pre}&email=a%40example.com&password=wrong-pass-000"),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(body.contains("Invalid email or password."));
    let (res, _) = send(
        &c,
        post(
            "/_/login",
            &cookie,
            &format!("csrf={pre}&email=a%40example.com&password=first-pass-123"),
        ),
    )
    .await;
    assert_eq!(location(&res), "/_/");
    let session = format!(
        "galley_session={}",
        cookie_value(&set_cookie(&res, "galley_session").expect("session"))
    );
    let (res, _) = send(&c, get("/_/", &session)).await;
    assert_eq!(res.status(), StatusCode::OK);
    galley_core::superusers::upsert(&c.app, "a@example.com", "second-pass-123")
        .await
        .expect("upsert");
    let (res, _) = send(&c, get("/_/", &session)).await;
    assert_eq!(location(&res), "/_/login");
    c.app.close().await;
}

#[tokio::test]
async fn sign_in_behind_a_trusted_proxy_is_limited_per_client_ip() {
    let c = start_with(|cfg| {
        cfg.auth_limits.per_ip = 3;
        cfg.auth_limits.per_identity = 1000;
    })
    .await;
    galley_core::superusers::upsert(&c.app, "a@example.com", "first-pass-123")
        .await
        .expect("upsert");
    let trust = |headers: serde_json::Value| {
        c.app.update_settings(
            serde_json::json!({"trustedProxy": {"headers": headers, "useLeftmostIP": false}}),
        )
    };
    trust(serde_json::json!(["X-Forwarded-For"]))
        .await
        .expect("settings");
    let (res, _) = send(&c, get("/_/login", "")).await;
    let pre = cookie_value(&set_cookie(&res, "galley_csrf").expect("cookie"));
    let cookie = format!("galley_csrf={pre}");
    let attempt = |forwarded: Option<&str>, password: &str| {
        let mut req = post(
            "/_/login",
            &cookie,
            &format!("csrf={pre}&email=a%40example.com&password={password}"),
        );
        if let Some(f) = forwarded {
            req.headers_mut()
                .insert("x-forwarded-for", f.parse().expect("header"));
        }
        send(&c, req)
    };
    const LIMITED: &str = "Too many attempts";
    const WRONG: &str = "Invalid email or password.";

    // The right-most forwarded address is the client's: its budget runs out, not the proxy's.
    for _ in 0..3 {
        let (res, body) = attempt(Some("198.51.100.1, 203.0.113.7"), "wrong-pass-000").await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(body.contains(WRONG), "{body}");
    }
    let (_, body) = attempt(Some("203.0.113.7"), "first-pass-123").await;
    assert!(
        body.contains(LIMITED),
        "the fourth attempt of one client: {body}"
    );
    let (_, body) = attempt(Some("203.0.113.8"), "wrong-pass-000").await;
    assert!(
        body.contains(WRONG),
        "another client has its own budget: {body}"
    );
    let (res, _) = attempt(Some("203.0.113.8"), "first-pass-123").await;
    assert_eq!(location(&res), "/_/", "and can sign in");
    let (_, body) = attempt(None, "wrong-pass-000").await;
    assert!(
        body.contains(WRONG),
        "without the header, the peer's own: {body}"
    );

    // Not trusted any more: the header is ignored and every client counts as the peer, which
    // has one attempt behind it.
    trust(serde_json::json!([])).await.expect("settings");
    for client in ["203.0.113.9", "203.0.113.10"] {
        let (_, body) = attempt(Some(client), "wrong-pass-000").await;
        assert!(body.contains(WRONG), "{body}");
    }
    let (_, body) = attempt(Some("203.0.113.11"), "wrong-pass-000").await;
    assert!(
        body.contains(LIMITED),
        "one budget for everyone behind the peer: {body}"
    );
    c.app.close().await;
}

/// The logs page shows the stored entries (galley-ops), filtered in the filter language.
#[tokio::test]
async fn logs_page_reads_the_stored_logs() {
    let c = start().await;
    let token = galley_admin::install_token(&c.app);
    let (res, body) = send(&c, get(&format!("/_/install?token={token}"), "")).await;
    let pre = cookie_value(&set_cookie(&res, "galley_csrf").expect("pre-session cookie"));
    assert_eq!(csrf_in(&body), pre);
    let form = format!("csrf={pre}&token={token}&email=first%40example.com&password=first-pass-123&passwordConfirm=first-pass-123");
    let (res, _) = send(&c, post("/_/install", &format!("galley_csrf={pre}"), &form)).await;
    let session = cookie_value(&set_cookie(&res, "galley_session").expect("session"));
    let cookie = format!("galley_session={session}");
    for (status, url) in [
        (200u16, "/api/health"),
        (404, "/api/collections/gone/records"),
    ] {
        let mut data = serde_json::Map::new();
        data.insert("type".into(), "request".into());
        data.insert("method".into(), "GET".into());
        data.insert("url".into(), url.into());
        data.insert("status".into(), status.into());
        data.insert("auth".into(), "".into());
        data.insert("requestId".into(), format!("rid-{status}").into());
        c.logs.push(galley_ops::LogEntry {
            created: chrono::Utc::now(),
            level: if status >= 400 { 8 } else { 0 },
            message: format!("GET {url}"),
            data,
        });
    }
    c.logs.flush().await;
    let (res, body) = send(&c, get("/_/logs", &cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        body.contains("GET /api/health") && body.contains("rid-404"),
        "{body}"
    );
    assert!(
        body.contains("2 requests, 1 errors") || body.contains("2 requests, 1 error"),
        "chart counts: {body}"
    );
    let (_, body) = send(&c, get("/_/logs?status=errors", &cookie)).await;
    assert!(body.contains("GET /api/collections/gone/records"));
    assert!(!body.contains("GET /api/health"), "only errors: {body}");
    let (_, body) = send(&c, get("/_/logs?filter=data.status+%3D+200", &cookie)).await;
    assert!(body.contains("GET /api/health") && !body.contains("rid-404"));
    // A filter that does not parse is shown, not a failure.
    let (res, body) = send(&c, get("/_/logs?filter=%28%28", &cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(body.contains("Invalid filter parameter"), "{body}");
}
