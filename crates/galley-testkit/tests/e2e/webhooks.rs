//! Outgoing webhooks end to end: `_webhooks` records through the records API, deliveries
//! to a receiver started here, signed per Standard Webhooks (checked with an HMAC written
//! here, not Galley's), filtered, retried with the same `webhook-id`, recorded in
//! `_webhookDeliveries`; only committed writes deliver; bad input is a 400.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use galley_testkit::{both_engines, both_engines_with, Method, TestServer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the receiver got: headers and body.
type Got = (axum::http::HeaderMap, Vec<u8>);

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    /// Statuses to answer, in order; 200 once empty.
    answers: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start(answers: &[u16]) -> (Receiver, String) {
        let r = Receiver::default();
        r.answers.lock().expect("lock").extend(answers);
        let state = r.clone();
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    |axum::extract::State(s): axum::extract::State<Receiver>,
                     headers: axum::http::HeaderMap,
                     body: axum::body::Bytes| async move {
                        s.got.lock().expect("lock").push((headers, body.to_vec()));
                        let code = s.answers.lock().expect("lock").pop_front().unwrap_or(200);
                        axum::http::StatusCode::from_u16(code).unwrap_or(axum::http::StatusCode::OK)
                    },
                ),
            )
            .with_state(state);
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", l.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        (r, url)
    }

    async fn wait_for(&self, n: usize) -> Vec<Got> {
        for _ in 0..300 {
            let g = self.got.lock().expect("lock").clone();
            if g.len() >= n {
                return g;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        panic!(
            "expected {n} deliveries, got {}",
            self.got.lock().expect("lock").len()
        );
    }
}

/// HMAC-SHA256 from its definition (RFC 2104), independent of Galley's.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = k
        .iter()
        .map(|b| b ^ 0x36)
        .chain(msg.iter().copied())
        .collect();
    let ih = Sha256::digest(&inner);
    let outer: Vec<u8> = k
        .iter()
        .map(|b| b ^ 0x5c)
        .chain(ih.iter().copied())
        .collect();
    Sha256::digest(&outer).to_vec()
}

fn header(h: &axum::http::HeaderMap, k: &str) -> String {
    h.get(k)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Checks the Standard Webhooks headers of one delivery and returns (webhook-id, body).
fn verified(secret: &str, h: &axum::http::HeaderMap, body: &[u8]) -> (String, Value) {
    let id = header(h, "webhook-id");
    let ts = header(h, "webhook-timestamp");
    assert!(!id.is_empty());
    let t: i64 = ts.parse().expect("timestamp");
    assert!((chrono::Utc::now().timestamp() - t).abs() < 120, "{t}");
    let key = B64
        .decode(secret.strip_prefix("whsec_").expect("whsec_"))
        .expect("b64");
    let mut msg = format!("{id}.{ts}.").into_bytes();
    msg.extend_from_slice(body);
    let want = format!("v1,{}", B64.encode(hmac_sha256(&key, &msg)));
    assert_eq!(header(h, "webhook-signature"), want);
    assert_eq!(header(h, "content-type"), "application/json");
    (id, serde_json::from_slice(body).expect("json body"))
}

async fn allow_private(srv: &TestServer) {
    let r = srv
        .su(
            Method::PATCH,
            "/api/settings",
            Some(json!({"webhooks": {"allowPrivateNetworks": true}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["webhooks"], json!({"allowPrivateNetworks": true}));
}

async fn posts(srv: &TestServer) {
    srv.create_collection(json!({"name": "posts", "type": "base", "fields": [
        {"name": "title", "type": "text"}, {"name": "status", "type": "text"},
        {"name": "note", "type": "text", "hidden": true}
    ]}))
    .await;
}

async fn webhook(srv: &TestServer, body: Value) -> Value {
    let r = srv
        .su(
            Method::POST,
            "/api/collections/_webhooks/records",
            Some(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn deliveries(srv: &TestServer, n: usize, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut items = Vec::new();
    for _ in 0..300 {
        let r = srv
            .su(
                Method::GET,
                "/api/collections/_webhookDeliveries/records?sort=created,id&perPage=100",
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        items = r.body["items"].as_array().cloned().unwrap_or_default();
        if items.len() == n && items.iter().all(&done) {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("deliveries: {items:?}");
}

both_engines! {
    async fn deliveries_signed_and_filtered(srv) {
        allow_private(&srv).await;
        posts(&srv).await;
        let (rx, url) = Receiver::start(&[]).await;
        let hook = webhook(&srv, json!({
            "name": "published posts", "collection": "posts", "events": ["create", "update", "delete"],
            "url": url, "filter": "status = 'published'", "active": true
        })).await;
        let secret = hook["secret"].as_str().expect("secret").to_owned();
        assert!(secret.starts_with("whsec_") && secret.len() == 38, "{secret}");
        // The secret is a hidden field (superusers see it).
        let def = srv.su(Method::GET, "/api/collections/_webhooks", None).await.body;
        let f = def["fields"].as_array().expect("fields").iter().find(|f| f["name"] == "secret").cloned().expect("secret field");
        assert_eq!(f["hidden"], true);

        let draft = srv.create_record("posts", json!({"title": "Draft", "status": "draft", "note": "n1"})).await;
        let live = srv.create_record("posts", json!({"title": "Live", "status": "published", "note": "n2"})).await;
        let r = srv.su(Method::PATCH, &format!("/api/collections/posts/records/{}", draft["id"].as_str().expect("id")), Some(json!({"status": "published"}))).await;
        assert_eq!(r.status, 200);
        let r = srv.su(Method::DELETE, &format!("/api/collections/posts/records/{}", live["id"].as_str().expect("id")), None).await;
        assert_eq!(r.status, 204);
        let got = rx.wait_for(3).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(rx.got.lock().expect("lock").len(), 3, "the draft's create was delivered");
        let mut seen: Vec<(String, String, String)> = Vec::new();
        let mut ids = Vec::new();
        for (h, b) in &got {
            let (id, body) = verified(&secret, h, b);
            ids.push(id);
            assert_eq!(body["collection"]["name"], "posts");
            assert_eq!(body["record"]["collectionName"], "posts");
            // As a superuser sees it: hidden fields included.
            assert!(body["record"]["note"].is_string());
            seen.push((body["event"].as_str().unwrap_or_default().into(), body["record"]["title"].as_str().unwrap_or_default().into(), body["record"]["status"].as_str().unwrap_or_default().into()));
        }
        seen.sort();
        assert_eq!(seen, [
            ("create".into(), "Live".into(), "published".into()),
            ("delete".into(), "Live".into(), "published".into()),
            ("update".into(), "Draft".into(), "published".into()),
        ]);
        let items = deliveries(&srv, 3, |d| d["status"] == "delivered").await;
        for d in &items {
            assert_eq!((d["webhook"].clone(), d["attempts"].clone(), d["responseCode"].clone(), d["error"].clone()), (hook["id"].clone(), json!(1), json!(200), json!("")));
            assert!(ids.contains(&d["id"].as_str().expect("id").to_owned()), "webhook-id is the delivery id");
        }
        let mut events: Vec<String> = items.iter().map(|d| d["event"].as_str().unwrap_or_default().to_owned()).collect();
        events.sort();
        assert_eq!(events, ["create", "delete", "update"]);
    }

    async fn auth_records_never_carry_secrets(srv) {
        allow_private(&srv).await;
        srv.create_collection(json!({"name": "people", "type": "auth", "createRule": ""})).await;
        let (rx, url) = Receiver::start(&[]).await;
        let hook = webhook(&srv, json!({"name": "people", "collection": "people", "events": ["create"], "url": url, "active": true})).await;
        srv.create_record("people", json!({"email": "a@example.com", "password": "Pass-12345", "passwordConfirm": "Pass-12345"})).await;
        let got = rx.wait_for(1).await;
        let (_, body) = verified(hook["secret"].as_str().expect("secret"), &got[0].0, &got[0].1);
        assert_eq!(body["event"], "create");
        assert_eq!(body["record"]["email"], "a@example.com");
        let text = String::from_utf8_lossy(&got[0].1).to_string();
        assert!(!text.contains("password") && !text.contains("tokenKey"), "{text}");
    }

    async fn inactive_and_other_events_do_not_deliver(srv) {
        allow_private(&srv).await;
        posts(&srv).await;
        let (rx, url) = Receiver::start(&[]).await;
        webhook(&srv, json!({"name": "off", "collection": "posts", "events": ["create"], "url": url, "active": false})).await;
        webhook(&srv, json!({"name": "deletes", "collection": "posts", "events": ["delete"], "url": url, "active": true})).await;
        srv.create_record("posts", json!({"title": "x"})).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(rx.got.lock().expect("lock").is_empty());
        let r = srv.su(Method::GET, "/api/collections/_webhookDeliveries/records", None).await;
        assert_eq!(r.body["totalItems"], 0);
    }

    async fn only_committed_writes_deliver(srv) {
        allow_private(&srv).await;
        posts(&srv).await;
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"batch": {"enabled": true}}))).await;
        assert_eq!(r.status, 200);
        let (rx, url) = Receiver::start(&[]).await;
        webhook(&srv, json!({"name": "all", "collection": "posts", "events": ["create"], "url": url, "active": true})).await;
        // The batch's second request fails: the whole batch rolls back, the first create with it.
        let r = srv.su(Method::POST, "/api/batch", Some(json!({"requests": [
            {"method": "POST", "url": "/api/collections/posts/records", "body": {"title": "rolled back"}},
            {"method": "POST", "url": "/api/collections/missing/records", "body": {}},
        ]}))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(rx.got.lock().expect("lock").is_empty());
        assert_eq!(srv.su(Method::GET, "/api/collections/_webhookDeliveries/records", None).await.body["totalItems"], 0);
        assert!(srv.app.jobs().list(None, 10, 0).await.expect("jobs").is_empty());
        // A batch that commits delivers each create.
        let r = srv.su(Method::POST, "/api/batch", Some(json!({"requests": [
            {"method": "POST", "url": "/api/collections/posts/records", "body": {"title": "one"}},
            {"method": "POST", "url": "/api/collections/posts/records", "body": {"title": "two"}},
        ]}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let got = rx.wait_for(2).await;
        let mut titles: Vec<String> = got.iter().map(|(_, b)| serde_json::from_slice::<Value>(b).expect("json")["record"]["title"].as_str().unwrap_or_default().to_owned()).collect();
        titles.sort();
        assert_eq!(titles, ["one", "two"]);
    }

    async fn bad_input(srv) {
        posts(&srv).await;
        let (_rx, url) = Receiver::start(&[]).await;
        let base = json!({"name": "h", "collection": "posts", "events": ["create"], "url": url, "active": true});
        let with = |patch: Value| {
            let mut b = base.clone();
            if let (Some(o), Some(p)) = (b.as_object_mut(), patch.as_object()) {
                o.extend(p.clone());
            }
            b
        };
        let cases = [
            // Loopback while allowPrivateNetworks is off.
            (with(json!({})), "url", "validation_invalid_url"),
            (with(json!({"url": "http://169.254.169.254/latest/meta-data"})), "url", "validation_invalid_url"),
            (with(json!({"url": "http://10.0.0.1/x"})), "url", "validation_invalid_url"),
            (with(json!({"url": "http://localhost:9000/x"})), "url", "validation_invalid_url"),
            (with(json!({"url": "ftp://example.com/x"})), "url", "validation_invalid_url"),
            (with(json!({"collection": "nope"})), "collection", "validation_invalid_collection"),
            (with(json!({"collection": "_superusers"})), "collection", "validation_invalid_collection"),
            (with(json!({"url": "https://example.com/x", "filter": "title = "})), "filter", "validation_invalid_filter"),
            (with(json!({"url": "https://example.com/x", "filter": "nofield = 1"})), "filter", "validation_invalid_filter"),
            (with(json!({"url": "https://example.com/x", "events": ["create", "nope"]})), "events", ""),
            (with(json!({"url": "https://example.com/x", "events": []})), "events", ""),
            (with(json!({"url": "https://example.com/x", "secret": "whsec_c2hvcnQ="})), "secret", "validation_invalid_secret"),
            (with(json!({"url": "https://example.com/x", "secret": "plain"})), "secret", ""),
        ];
        for (body, field, code) in cases {
            let r = srv.su(Method::POST, "/api/collections/_webhooks/records", Some(body.clone())).await;
            assert_eq!(r.status, 400, "{body} -> {}", r.body);
            assert_eq!(r.body["message"], "Failed to create record.", "{}", r.body);
            let got = r.body["data"][field]["code"].as_str().unwrap_or_default();
            assert!(!got.is_empty(), "{body} -> {}", r.body);
            if !code.is_empty() {
                assert_eq!(got, code, "{body} -> {}", r.body);
            }
        }
        // This server itself, even with private networks allowed.
        allow_private(&srv).await;
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"meta": {"appURL": srv.url}}))).await;
        assert_eq!(r.status, 200);
        let r = srv.su(Method::POST, "/api/collections/_webhooks/records", Some(with(json!({"url": format!("{}/api/health", srv.url)})))).await;
        assert_eq!((r.status, r.body["data"]["url"]["message"].clone()), (400, json!("The URL points to this server.")), "{}", r.body);
        // Updates are checked too.
        let ok = webhook(&srv, base.clone()).await;
        let r = srv.su(Method::PATCH, &format!("/api/collections/_webhooks/records/{}", ok["id"].as_str().expect("id")), Some(json!({"url": "gopher://x"}))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        // Superusers only.
        assert_eq!(srv.guest(Method::GET, "/api/collections/_webhooks/records", None).await.status, 403);
        assert_eq!(srv.guest(Method::POST, "/api/collections/_webhooks/records", Some(base.clone())).await.status, 403);
        assert_eq!(srv.guest(Method::GET, "/api/collections/_webhookDeliveries/records", None).await.status, 403);
    }
}

/// This machine's name when it resolves only to refused addresses (loopback or private, as
/// /etc/hosts usually makes it), else `None`.
async fn name_of_a_private_host() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()?
        .trim()
        .to_owned();
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((name.as_str(), 80))
        .await
        .ok()?
        .collect();
    (!name.is_empty()
        && !addrs.is_empty()
        && addrs
            .iter()
            .all(|a| galley_jobs::webhook::is_refused(a.ip())))
    .then_some(name)
}

both_engines! {
    async fn targets_are_resolved_when_saved(srv) {
        posts(&srv).await;
        let port = srv.url.rsplit(':').next().expect("port").to_owned();
        let base = json!({"name": "h", "collection": "posts", "events": ["create"], "active": true});
        let with_url = |url: String| {
            let mut b = base.clone();
            b["url"] = json!(url);
            b
        };
        // A name the resolver cannot answer now is accepted (delivery checks it again).
        let ok = webhook(&srv, with_url("https://hooks.invalid/in".into())).await;
        let ok_id = ok["id"].as_str().expect("id").to_owned();
        let private = name_of_a_private_host().await;
        if let Some(host) = &private {
            // A name (not a literal, not `localhost`) that resolves to loopback/private.
            let r = srv.su(Method::POST, "/api/collections/_webhooks/records", Some(with_url(format!("http://{host}:9/x")))).await;
            assert_eq!(r.status, 400, "{}", r.body);
            assert_eq!(r.body["message"], "Failed to create record.");
            assert_eq!(r.body["data"]["url"]["code"], "validation_invalid_url", "{}", r.body);
            assert!(r.body["data"]["url"]["message"].as_str().is_some_and(|m| m.contains("allowPrivateNetworks")), "{}", r.body);
            let r = srv.su(Method::PATCH, &format!("/api/collections/_webhooks/records/{ok_id}"), Some(json!({"url": format!("http://{host}/x")}))).await;
            assert_eq!((r.status, r.body["message"].clone(), r.body["data"]["url"]["code"].clone()), (400, json!("Failed to update record."), json!("validation_invalid_url")), "{}", r.body);
            let r = srv.su(Method::GET, &format!("/api/collections/_webhooks/records/{ok_id}"), None).await;
            assert_eq!(r.body["url"], "https://hooks.invalid/in");
        } else {
            eprintln!("skipped the resolved-name case: this machine's name does not resolve to a private address");
        }
        // With private networks allowed, this server is still refused: by the address it
        // listens on (appURL is left at its default), by `localhost`, by a name for it.
        allow_private(&srv).await;
        let mut own = vec![format!("{}/api/health", srv.url), format!("http://localhost:{port}/api/health")];
        if let Some(host) = &private {
            own.push(format!("http://{host}:{port}/api/health"));
        }
        for url in own {
            let r = srv.su(Method::POST, "/api/collections/_webhooks/records", Some(with_url(url.clone()))).await;
            assert_eq!((r.status, r.body["data"]["url"]["message"].clone()), (400, json!("The URL points to this server.")), "{url}: {}", r.body);
        }
        // Another port on this machine is the user's own network: allowed now.
        let (_rx, receiver) = Receiver::start(&[]).await;
        webhook(&srv, with_url(receiver)).await;
        if let Some(host) = &private {
            webhook(&srv, with_url(format!("http://{host}:9/x"))).await;
        }
    }
}

both_engines_with! {
    config = |c| { c.jobs.backoff_base = Duration::from_millis(50); c.jobs.backoff_max = Duration::from_millis(200); };

    async fn retries_keep_the_webhook_id(srv) {
        allow_private(&srv).await;
        posts(&srv).await;
        let (rx, url) = Receiver::start(&[500, 503]).await;
        let hook = webhook(&srv, json!({"name": "flaky", "collection": "posts", "events": ["create"], "url": url, "active": true})).await;
        srv.create_record("posts", json!({"title": "retry me"})).await;
        let got = rx.wait_for(3).await;
        let secret = hook["secret"].as_str().expect("secret");
        let ids: Vec<String> = got.iter().map(|(h, b)| verified(secret, h, b).0).collect();
        assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
        let items = deliveries(&srv, 1, |d| d["status"] == "delivered").await;
        assert_eq!((items[0]["id"].clone(), items[0]["attempts"].clone(), items[0]["responseCode"].clone()), (json!(ids[0]), json!(3), json!(200)));
    }

    async fn unreachable_target_is_recorded(srv) {
        allow_private(&srv).await;
        posts(&srv).await;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        webhook(&srv, json!({"name": "down", "collection": "posts", "events": ["create"], "url": format!("http://127.0.0.1:{port}/x"), "active": true})).await;
        srv.create_record("posts", json!({"title": "nobody home"})).await;
        let items = deliveries(&srv, 1, |d| d["attempts"].as_i64().unwrap_or(0) >= 2).await;
        assert_eq!(items[0]["status"], "pending");
        assert_eq!(items[0]["responseCode"], 0);
        assert!(items[0]["error"].as_str().unwrap_or_default().starts_with("request failed"), "{}", items[0]);
    }
}
