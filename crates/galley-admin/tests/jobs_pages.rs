//! The background-work pages: jobs by state with their errors, retry and delete (CSRF
//! checked), cron entries run from the page, and the webhooks page.

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use galley_core::{App, AppConfig};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

struct Ctx {
    app: Arc<App>,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

/// Every request comes from one TCP peer, 127.0.0.1 (as through a reverse proxy).
async fn start_with(configure: impl FnOnce(&mut AppConfig)) -> Ctx {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = AppConfig::new(dir.path());
    configure(&mut cfg);
    let app = App::open(cfg).await.expect("open");
    let logs = galley_ops::Logs::open(app.clone()).await.expect("logs");
    let router = galley_admin::router(logs)
        .with_state(app.clone())
        .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    Ctx {
        app,
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

/// Installs the first superuser through the install page and returns the session cookie and
/// its CSRF token.
async fn signed_in(c: &Ctx) -> (String, String) {
    let token = galley_admin::install_token(&c.app);
    let (res, body) = send(c, get(&format!("/_/install?token={token}"), "")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let pre = csrf_in(&body);
    let form = format!("csrf={pre}&token={token}&email=first%40example.com&password=first-pass-123&passwordConfirm=first-pass-123");
    let (res, _) = send(c, post("/_/install", &format!("galley_csrf={pre}"), &form)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let session = format!(
        "galley_session={}",
        cookie_value(&set_cookie(&res, "galley_session").expect("session"))
    );
    let (_, body) = send(c, get("/_/jobs", &session)).await;
    (session.clone(), csrf_in(&body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_crons_and_webhooks_pages() {
    let c = start_with(|cfg| {
        cfg.jobs.backoff_base = Duration::from_millis(20);
    })
    .await;
    let (session, csrf) = signed_in(&c).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let r2 = runs.clone();
    c.app.jobs().register("report", move |_| {
        let r = r2.clone();
        async move {
            if r.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(galley_jobs::JobError::permanent("<b>printer on fire</b>"))
            } else {
                Ok(())
            }
        }
    });
    let id = c
        .app
        .jobs()
        .enqueue(galley_jobs::NewJob::new("report", serde_json::json!({})))
        .await
        .expect("enqueue")
        .id()
        .to_owned();
    for _ in 0..200 {
        if c.app
            .jobs()
            .get(&id)
            .await
            .expect("get")
            .is_some_and(|j| j.state == "dead")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (res, body) = send(&c, get("/_/jobs?state=dead", &session)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(body.contains("dead (1)"), "{body}");
    assert!(body.contains(&id) && body.contains("report"));
    // The error is escaped.
    assert!(
        body.contains("&lt;b&gt;printer on fire&lt;/b&gt;"),
        "{body}"
    );
    // Built-in cron entries are listed.
    assert!(body.contains("__pbOTPCleanup__") && body.contains("0 */6 * * *"));

    // Retry: refused without the CSRF token, done with it; the second run succeeds.
    let (res, _) = send(
        &c,
        post("/_/jobs", &session, &format!("action=retry&id={id}")),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let (res, _) = send(
        &c,
        post(
            "/_/jobs",
            &session,
            &format!("csrf={csrf}&action=retry&id={id}"),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/_/jobs?done=queued");
    for _ in 0..200 {
        if c.app.jobs().get(&id).await.expect("get").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(c.app.jobs().get(&id).await.expect("get").is_none());
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // Retrying what is gone is refused, not an error page.
    let (res, _) = send(
        &c,
        post(
            "/_/jobs",
            &session,
            &format!("csrf={csrf}&action=retry&id={id}"),
        ),
    )
    .await;
    assert_eq!(location(&res), "/_/jobs?done=refused");

    // Delete a queued job (scheduled later).
    let later = c
        .app
        .jobs()
        .enqueue(
            galley_jobs::NewJob::new("report", serde_json::json!({}))
                .run_at(chrono::Utc::now() + chrono::Duration::hours(1)),
        )
        .await
        .expect("enqueue")
        .id()
        .to_owned();
    let (_, body) = send(&c, get("/_/jobs?state=queued", &session)).await;
    assert!(body.contains(&later));
    let (res, _) = send(
        &c,
        post(
            "/_/jobs",
            &session,
            &format!("csrf={csrf}&action=delete&id={later}"),
        ),
    )
    .await;
    assert_eq!(location(&res), "/_/jobs?done=deleted");
    assert!(c.app.jobs().get(&later).await.expect("get").is_none());

    // Run a cron entry now.
    let ran = Arc::new(AtomicUsize::new(0));
    let r3 = ran.clone();
    c.app
        .jobs()
        .cron_add("digest", "@daily", move || {
            let r = r3.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
            }
        })
        .expect("cron");
    let (res, _) = send(
        &c,
        post(
            "/_/jobs",
            &session,
            &format!("csrf={csrf}&action=cron&id=digest"),
        ),
    )
    .await;
    assert_eq!(location(&res), "/_/jobs?done=started");
    for _ in 0..100 {
        if ran.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    let (res, _) = send(
        &c,
        post(
            "/_/jobs",
            &session,
            &format!("csrf={csrf}&action=cron&id=nope"),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Webhooks page.
    let (res, body) = send(&c, get("/_/webhooks", &session)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(body.contains("No deliveries yet.") && body.contains("/_/webhooks/new"));
    let (res, _) = send(
        &c,
        post("/_/webhooks", &session, &format!("csrf={csrf}&id=missing")),
    )
    .await;
    assert_eq!(location(&res), "/_/webhooks?done=refused");
}

/// `a=b&c=d` with each value percent-encoded.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A receiver on loopback that counts the POSTs it gets and keeps their `webhook-id`s.
async fn receiver() -> (Arc<std::sync::Mutex<Vec<String>>>, String) {
    let got: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let state = got.clone();
    let app = axum::Router::new()
        .route(
            "/in",
            axum::routing::post(
                |axum::extract::State(s): axum::extract::State<
                    Arc<std::sync::Mutex<Vec<String>>>,
                >,
                 headers: axum::http::HeaderMap| async move {
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    s.lock().expect("lock").push(id);
                    StatusCode::OK
                },
            ),
        )
        .with_state(state);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/in", l.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (got, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_created_edited_delivered_and_redelivered_from_the_dashboard() {
    let c = start_with(|_| {}).await;
    let (session, csrf) = signed_in(&c).await;
    let col = serde_json::json!({"name": "posts", "type": "base", "fields": [{"name": "title", "type": "text"}]});
    galley_core::collections::create(&c.app, col, galley_core::collections::By::Code)
        .await
        .expect("collection");
    let (got, url) = receiver().await;

    // The form offers the collections a webhook may watch, not system ones.
    let (res, body) = send(&c, get("/_/webhooks/new", &session)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(body.contains("<option value=\"posts\""), "{body}");
    assert!(!body.contains("<option value=\"_superusers\""));

    // A loopback target while private networks are not allowed: refused, the form shown
    // again with the field's message and what was typed.
    let fields_with = |url: &str, events: &[&str], filter: &str| {
        let mut p = vec![
            ("csrf", csrf.as_str()),
            ("name", "to receiver"),
            ("collection", "posts"),
            ("url", url),
            ("filter", filter),
            ("active", "on"),
        ];
        p.extend(events.iter().map(|e| ("events", *e)));
        form(&p)
    };
    let fields = |url: &str, events: &[&str]| fields_with(url, events, "title != 'skip'");
    let (res, body) = send(
        &c,
        post("/_/webhooks/new", &session, &fields(&url, &["create"])),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        body.contains("Failed to create record.") && body.contains("allowPrivateNetworks"),
        "{body}"
    );
    assert!(body.contains(&url), "the submitted URL is kept in the form");
    // Without the CSRF token: refused.
    let (res, _) = send(&c, post("/_/webhooks/new", &session, "name=x")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    c.app
        .update_settings(serde_json::json!({"webhooks": {"allowPrivateNetworks": true}}))
        .await
        .expect("settings");
    let (res, _) = send(
        &c,
        post("/_/webhooks/new", &session, &fields(&url, &["create"])),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(&res).to_owned();
    assert!(
        to.starts_with("/_/webhooks/") && to.ends_with("?done=created"),
        "{to}"
    );
    let id = to
        .trim_start_matches("/_/webhooks/")
        .trim_end_matches("?done=created")
        .to_owned();
    let posts = galley_core::records::find_collection(&c.app, "_webhooks").expect("col");
    let stored = galley_core::records::find_by_id(&c.app, posts, &id)
        .await
        .expect("stored");
    assert_eq!(stored["events"], serde_json::json!(["create"]));
    assert_eq!(stored["filter"], "title != 'skip'");
    assert_eq!(stored["active"], true);
    let secret = stored["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"), "a secret is generated");

    // Listed, and its page shows the form filled in.
    let (_, body) = send(&c, get("/_/webhooks", &session)).await;
    assert!(
        body.contains("to receiver") && body.contains(&format!("/_/webhooks/{id}")),
        "{body}"
    );
    let (res, body) = send(&c, get(&format!("/_/webhooks/{id}"), &session)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        body.contains(&url) && body.contains("title != 'skip'"),
        "{body}"
    );
    assert!(!body.contains(&secret), "the secret is never shown");

    // Edit: also on update; a bad filter is refused; an empty secret keeps the old one.
    let (res, body) = send(
        &c,
        post(
            &format!("/_/webhooks/{id}"),
            &session,
            &fields_with(&url, &["create", "update"], "nofield = 1"),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("Failed to update record.") && body.contains("filter"),
        "{body}"
    );
    let (res, _) = send(
        &c,
        post(
            &format!("/_/webhooks/{id}"),
            &session,
            &fields(&url, &["create", "update"]),
        ),
    )
    .await;
    assert_eq!(location(&res), format!("/_/webhooks/{id}?done=saved"));
    let posts = galley_core::records::find_collection(&c.app, "_webhooks").expect("col");
    let stored = galley_core::records::find_by_id(&c.app, posts, &id)
        .await
        .expect("stored");
    assert_eq!(stored["events"], serde_json::json!(["create", "update"]));
    assert_eq!(stored["secret"].as_str(), Some(secret.as_str()));

    // A write delivers; the delivery is listed on the webhook's page; redeliver sends it
    // again with the same webhook-id and comes back to that page.
    let req = galley_core::Request::internal(
        galley_core::records::system::caller(&c.app.schema()),
        "POST",
    );
    let mut rec = serde_json::Map::new();
    rec.insert("title".into(), serde_json::json!("hello"));
    galley_core::records::create(
        &c.app,
        &req,
        "posts",
        galley_core::records::RecordBody::json(rec),
        &[],
    )
    .await
    .expect("record");
    for _ in 0..200 {
        if got.lock().expect("lock").len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = got.lock().expect("lock").clone();
    assert_eq!(first.len(), 1);
    let delivery = first[0].clone();
    let mut page = String::new();
    for _ in 0..100 {
        page = send(&c, get(&format!("/_/webhooks/{id}"), &session))
            .await
            .1;
        if page.contains("delivered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        page.contains(&delivery) && page.contains("delivered") && page.contains("posts create"),
        "{page}"
    );
    let (res, _) = send(
        &c,
        post(
            "/_/webhooks",
            &session,
            &form(&[("csrf", &csrf), ("id", &delivery), ("back", &id)]),
        ),
    )
    .await;
    assert_eq!(location(&res), format!("/_/webhooks/{id}?done=queued"));
    for _ in 0..200 {
        if got.lock().expect("lock").len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*got.lock().expect("lock"), vec![delivery.clone(), delivery]);
    // Unknown webhook: not found.
    let (res, _) = send(&c, get("/_/webhooks/nope", &session)).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
