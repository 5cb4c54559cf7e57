//! Crash rounds for what leaves the server (issue 15 item 9): a child process (this test
//! binary again) opens the app on the test's data, and 8 producers create records while
//! webhook deliveries go to a receiver run by this test and record events are published to
//! this machine's NATS (JetStream) and RabbitMQ. The child is killed with SIGKILL at a
//! random moment, five times; then a last child drains the queue and the outbox.
//!
//! Then: every record that exists (acknowledged ones among them) was delivered to the
//! webhook receiver and published to both brokers (none lost), and every copy of one
//! record's event carries the same `webhook-id` / message id (duplicates can be dropped).

use galley_core::records::{self, system, RecordBody};
use galley_core::{AppConfig, Request, RequestMeta};
use galley_jobs::brokers::{amqp, nats};
use galley_testkit::{Engine, Method, TestServer};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DATA: &str = "GALLEY_OUT_CRASH_DATA";
const URL: &str = "GALLEY_OUT_CRASH_URL";
const MODE: &str = "GALLEY_OUT_CRASH_MODE";
const NATS_URL: &str = "nats://127.0.0.1:4222";

fn config(data: &str, url: &str) -> AppConfig {
    let mut cfg = AppConfig::new(data);
    cfg.pool_size = 4;
    cfg.database_url = Some(url.to_owned()).filter(|u| !u.is_empty());
    // Deliveries cut by a kill come back soon after the restart.
    cfg.jobs.lease = Duration::from_millis(900);
    cfg.jobs.backoff_base = Duration::from_millis(20);
    cfg.jobs.backoff_max = Duration::from_millis(200);
    cfg.jobs.poll = Duration::from_millis(50);
    cfg
}

async fn count(app: &galley_core::App, sql: &'static str) -> i64 {
    app.store_for_tests()
        .read(move |c| Ok::<_, galley_store::StoreError>(c.query(sql, &[])?[0].int("n")))
        .await
        .expect("count")
}

/// The child: with MODE=work, 8 producers create records (printing `ack <id>` after each
/// commit); with MODE=drain, nothing but the background work, until no delivery job and no
/// outbox row is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the crash rounds as a child process"]
async fn outbound_child() {
    let (Ok(data), Ok(mode)) = (std::env::var(DATA), std::env::var(MODE)) else {
        return;
    };
    let url = std::env::var(URL).unwrap_or_default();
    let server = galley::Server::open(config(&data, &url), None)
        .await
        .expect("open app");
    let app = server.app.clone();
    if mode == "drain" {
        let mut empty_since: Option<Instant> = None;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let left = count(&app, "SELECT COUNT(*) AS n FROM \"_jobs\"").await
                + count(&app, "SELECT COUNT(*) AS n FROM \"_brokerOutbox\"").await;
            if left == 0 {
                let since = *empty_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(500) {
                    println!("drained");
                    return;
                }
            } else {
                empty_since = None;
            }
        }
    }
    let mut tasks = Vec::new();
    for p in 0..8 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::new(system::caller(&app.schema()), RequestMeta::default());
            for i in 0.. {
                let mut body = serde_json::Map::new();
                body.insert("title".into(), json!(format!("p{p}-{i}")));
                match records::create(&app, &req, "posts", RecordBody::json(body), &[]).await {
                    Ok(r) => println!("ack {}", r["id"].as_str().unwrap_or_default()),
                    Err(e) => println!("err {e}"),
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

fn child(data: &str, url: &str, mode: &str) -> std::process::Child {
    Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "outbound_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DATA, data)
        .env(URL, url)
        .env(MODE, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child")
}

/// What the webhook receiver got: (webhook-id, record id).
type Receipts = Arc<Mutex<Vec<(String, String)>>>;

async fn receiver() -> (Receipts, String) {
    let got: Receipts = Arc::default();
    let state = got.clone();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(s): axum::extract::State<Receipts>,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let record = v["record"]["id"].as_str().unwrap_or_default().to_owned();
                    s.lock().expect("lock").push((id, record));
                    axum::http::StatusCode::OK
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
    (got, url)
}

/// Every message of JetStream stream `stream`: (Nats-Msg-Id, record id).
async fn stream_messages(stream: &str) -> Vec<(String, String)> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut c = nats::Nats::connect(NATS_URL, Duration::from_secs(5))
        .await
        .expect("nats");
    let mut out = Vec::new();
    for seq in 1.. {
        let r = c
            .request(
                &format!("$JS.API.STREAM.MSG.GET.{stream}"),
                json!({"seq": seq}).to_string().as_bytes(),
            )
            .await
            .expect("msg get");
        let v: Value = serde_json::from_slice(&r).expect("json");
        let Some(m) = v.get("message") else { break };
        let data = b64
            .decode(m["data"].as_str().unwrap_or_default())
            .expect("data");
        let hdrs = String::from_utf8(
            b64.decode(m["hdrs"].as_str().unwrap_or_default())
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        let id = hdrs
            .lines()
            .find_map(|l| l.strip_prefix("Nats-Msg-Id: "))
            .unwrap_or_default()
            .to_owned();
        let body: Value = serde_json::from_slice(&data).expect("body json");
        out.push((
            id,
            body["record"]["id"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let _ = c
        .request(&format!("$JS.API.STREAM.DELETE.{stream}"), b"")
        .await;
    out
}

fn rabbit() -> amqp::AmqpConfig {
    amqp::AmqpConfig {
        host: "127.0.0.1".into(),
        port: 5672,
        vhost: "/".into(),
        username: "guest".into(),
        password: "guest".into(),
        timeout: Duration::from_secs(5),
        tls: false,
    }
}

/// Checks that every record in `want` arrived and that all copies of one record's event
/// carry one id; returns how many copies were duplicates.
fn check(what: &str, want: &HashSet<String>, got: &[(String, String)]) -> usize {
    let mut ids: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (id, record) in got {
        assert!(!id.is_empty(), "{what}: a copy without an id");
        ids.entry(record.as_str()).or_default().insert(id.as_str());
    }
    let lost: Vec<&String> = want
        .iter()
        .filter(|r| !ids.contains_key(r.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{what}: {} of {} records never arrived: {:?}",
        lost.len(),
        want.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    for (record, set) in &ids {
        assert_eq!(
            set.len(),
            1,
            "{what}: record {record} came with ids {set:?}"
        );
    }
    got.len() - ids.len()
}

/// Never blocks a runtime thread: the webhook receiver runs on this runtime.
async fn rounds(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let (receipts, hook_url) = receiver().await;
    let tag = galley_types::ids::record_id();
    let (prefix, stream, exchange, queue) = (
        format!("gc{tag}"),
        format!("GC{tag}"),
        format!("galley-crash-{tag}"),
        format!("q-crash-{tag}"),
    );
    let mut rb = amqp::Amqp::connect(&rabbit()).await.expect("rabbitmq");
    rb.declare_exchange(&exchange).await.expect("exchange");
    rb.declare_queue(&queue, false, &exchange, "posts.#")
        .await
        .expect("queue");
    srv.create_collection(
        json!({"name": "posts", "type": "base", "fields": [{"name": "title", "type": "text"}]}),
    )
    .await;
    let r = srv
        .su(
            Method::PATCH,
            "/api/settings",
            Some(json!({
                "webhooks": {"allowPrivateNetworks": true},
                "brokers": {
                    "nats": {"enabled": true, "url": NATS_URL, "subjectPrefix": prefix, "stream": stream},
                    "rabbitmq": {"enabled": true, "exchange": exchange, "password": "guest"}
                }
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = srv
        .su(
            Method::POST,
            "/api/collections/_webhooks/records",
            Some(json!({"name": "crash", "collection": "posts", "events": ["create"], "url": hook_url, "active": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cfg = srv.config.clone();
    let stopped = srv.stop().await;
    let data = cfg.data_dir.to_string_lossy().into_owned();
    let url = cfg.database_url.clone().unwrap_or_default();

    let mut acked: HashSet<String> = HashSet::new();
    for round in 1..=5u64 {
        let mut c = child(&data, &url, "work");
        let out = c.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.split("ack ").nth(1).map(str::to_owned))
                // A line cut by the kill is not an acknowledgement.
                .filter(|id| id.len() == 15)
                .collect::<Vec<_>>()
        });
        // Opening the app takes a moment; then writes run for a while and are cut.
        tokio::time::sleep(Duration::from_millis(1200 + round * 211 % 700)).await;
        c.kill().expect("SIGKILL");
        let _ = c.wait();
        let got = reader.join().expect("reader");
        assert!(
            !got.is_empty(),
            "round {round}: the child acknowledged nothing"
        );
        acked.extend(got);
    }
    let mut c = child(&data, &url, "drain");
    let out = c.stdout.take().expect("stdout");
    let t0 = Instant::now();
    let drained = std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.ends_with("drained"))
    });
    while c.try_wait().expect("wait").is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "the drain did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(drained.join().expect("reader"), "the drain child failed");

    // Every record that committed, acknowledged or not.
    let srv = stopped.start(|_| {}).await;
    let stored: HashSet<String> = srv
        .app
        .store_for_tests()
        .read(|c| {
            Ok::<_, galley_store::StoreError>(
                c.query("SELECT \"id\" FROM \"posts\"", &[])?
                    .iter()
                    .map(|r| r.text("id"))
                    .collect(),
            )
        })
        .await
        .expect("posts");
    let missing: Vec<&String> = acked.difference(&stored).collect();
    assert!(missing.is_empty(), "acknowledged records lost: {missing:?}");
    let undelivered = count(
        &srv.app,
        "SELECT COUNT(*) AS n FROM \"_webhookDeliveries\" WHERE \"status\" <> 'delivered'",
    )
    .await;
    assert_eq!(undelivered, 0, "deliveries not delivered");

    let hooks = receipts.lock().expect("lock").clone();
    let hook_dups = check("webhooks", &stored, &hooks);
    let js = stream_messages(&stream).await;
    let js_dups = check("NATS", &stored, &js);
    let mut amqp_got = Vec::new();
    while let Some(m) = rb.get(&queue).await.expect("get") {
        let body: Value = serde_json::from_slice(&m.body).expect("json");
        amqp_got.push((
            m.message_id,
            body["record"]["id"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let _ = rb.delete_exchange(&exchange).await;
    let amqp_dups = check("RabbitMQ", &stored, &amqp_got);
    println!(
        "{engine:?}: {} records ({} acknowledged) over 5 kill -9 rounds, none lost; duplicates with the same id: webhooks {hook_dups}, NATS {js_dups}, RabbitMQ {amqp_dups}",
        stored.len(),
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_crash_rounds_sqlite() {
    rounds(Engine::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_crash_rounds_postgres() {
    rounds(Engine::Postgres).await
}
