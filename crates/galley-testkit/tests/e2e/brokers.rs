//! Record events published to this machine's NATS (JetStream) and RabbitMQ through the
//! transactional outbox: only committed writes, in commit order per collection, with a
//! message id; events written while the broker is unreachable arrive once it is back.
//! Each test uses its own stream / exchange and removes it.

use galley_jobs::brokers::{amqp, nats};
use galley_testkit::{both_engines, Method, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

const NATS_URL: &str = "nats://127.0.0.1:4222";

fn tag() -> String {
    galley_types::ids::record_id()
}

async fn posts(srv: &TestServer) {
    srv.create_collection(
        json!({"name": "posts", "type": "base", "fields": [{"name": "title", "type": "text"}]}),
    )
    .await;
    let r = srv
        .su(
            Method::PATCH,
            "/api/settings",
            Some(json!({"batch": {"enabled": true}})),
        )
        .await;
    assert_eq!(r.status, 200);
}

/// Creates p0..p4 one after the other, renames p0, deletes p1, and runs a batch that rolls
/// back; returns the (event, title) sequence the broker must see.
async fn writes(srv: &TestServer) -> Vec<(String, String)> {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            srv.create_record("posts", json!({"title": format!("p{i}")}))
                .await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let r = srv
        .su(
            Method::PATCH,
            &format!("/api/collections/posts/records/{}", ids[0]),
            Some(json!({"title": "p0b"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = srv
        .su(
            Method::DELETE,
            &format!("/api/collections/posts/records/{}", ids[1]),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = srv.su(Method::POST, "/api/batch", Some(json!({"requests": [
        {"method": "POST", "url": "/api/collections/posts/records", "body": {"title": "never"}},
        {"method": "POST", "url": "/api/collections/missing/records", "body": {}},
    ]}))).await;
    assert_eq!(r.status, 400);
    let mut want: Vec<(String, String)> = (0..5)
        .map(|i| ("create".to_owned(), format!("p{i}")))
        .collect();
    want.push(("update".into(), "p0b".into()));
    want.push(("delete".into(), "p1".into()));
    want
}

fn event_of(body: &Value) -> (String, String) {
    (
        body["event"].as_str().unwrap_or_default().to_owned(),
        body["record"]["title"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The stream's messages from sequence 1: (Nats-Msg-Id header, body).
async fn stream_messages(stream: &str, n: usize) -> Vec<(String, Value)> {
    let mut c = nats::Nats::connect(NATS_URL, Duration::from_secs(5))
        .await
        .expect("nats");
    let mut out = Vec::new();
    for _ in 0..300 {
        out.clear();
        for seq in 1..=n + 1 {
            let r = c
                .request(
                    &format!("$JS.API.STREAM.MSG.GET.{stream}"),
                    json!({"seq": seq}).to_string().as_bytes(),
                )
                .await
                .expect("msg get");
            let v: Value = serde_json::from_slice(&r).expect("json");
            let Some(m) = v.get("message") else { break };
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD;
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
            out.push((id, serde_json::from_slice(&data).expect("body json")));
        }
        if out.len() >= n {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("stream {stream}: {} of {n} messages", out.len());
}

async fn delete_stream(stream: &str) {
    if let Ok(mut c) = nats::Nats::connect(NATS_URL, Duration::from_secs(5)).await {
        let _ = c
            .request(&format!("$JS.API.STREAM.DELETE.{stream}"), b"")
            .await;
    }
}

/// Rows left in the broker outbox, once the publisher had up to 5 s to finish its deletes.
async fn outbox_left(srv: &TestServer) -> i64 {
    let mut left = -1;
    for _ in 0..100 {
        left = srv
            .app
            .store_for_tests()
            .read(|c| {
                Ok::<_, galley_store::StoreError>(
                    c.query("SELECT COUNT(*) AS n FROM \"_brokerOutbox\"", &[])?[0].int("n"),
                )
            })
            .await
            .expect("count");
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    left
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

both_engines! {
    async fn nats_jetstream_in_commit_order(srv) {
        posts(&srv).await;
        let t = tag();
        let (prefix, stream) = (format!("gt{t}"), format!("GT{t}"));
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"brokers": {"nats": {"enabled": true, "url": NATS_URL, "subjectPrefix": prefix, "stream": stream}}}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["brokers"]["nats"], json!({"enabled": true, "url": NATS_URL, "subjectPrefix": prefix, "stream": stream}));
        let want = writes(&srv).await;
        let got = stream_messages(&stream, want.len()).await;
        delete_stream(&stream).await;
        assert_eq!(got.len(), want.len(), "{got:?}");
        let events: Vec<(String, String)> = got.iter().map(|(_, b)| event_of(b)).collect();
        assert_eq!(events, want);
        for (i, (id, body)) in got.iter().enumerate() {
            assert_eq!(*id, body["id"].as_str().unwrap_or_default(), "Nats-Msg-Id is the event id");
            assert_eq!(body["seq"], json!(i + 1));
            assert_eq!(body["collection"]["name"], "posts");
        }
        // Nothing left in the outbox.
        // The publisher deletes rows after the broker's ack: the last may lag the message.
        assert_eq!(outbox_left(&srv).await, 0);
    }

    async fn rabbitmq_in_commit_order(srv) {
        posts(&srv).await;
        let t = tag();
        let exchange = format!("galley-test-{t}");
        let mut c = amqp::Amqp::connect(&rabbit()).await.expect("rabbitmq");
        c.declare_exchange(&exchange).await.expect("exchange");
        let queue = format!("q-{t}");
        c.declare_queue(&queue, false, &exchange, "posts.#").await.expect("queue");
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"brokers": {"rabbitmq": {"enabled": true, "exchange": exchange, "password": "guest"}}}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body["brokers"]["rabbitmq"].get("password").is_none(), "the password is write-only");
        let want = writes(&srv).await;
        let mut got = Vec::new();
        for _ in 0..300 {
            match c.get(&queue).await.expect("get") {
                Some(m) => got.push(m),
                None if got.len() >= want.len() => break,
                None => tokio::time::sleep(Duration::from_millis(30)).await,
            }
        }
        let _ = c.delete_exchange(&exchange).await;
        let events: Vec<(String, String)> = got.iter().map(|m| event_of(&serde_json::from_slice(&m.body).expect("json"))).collect();
        assert_eq!(events, want);
        for m in &got {
            let body: Value = serde_json::from_slice(&m.body).expect("json");
            assert_eq!(m.message_id, body["id"].as_str().unwrap_or_default());
            assert_eq!(m.routing_key, format!("posts.{}", body["event"].as_str().unwrap_or_default()));
        }
    }

    async fn events_wait_while_the_broker_is_down(srv) {
        posts(&srv).await;
        let t = tag();
        let (prefix, stream) = (format!("gt{t}"), format!("GT{t}"));
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = dead.local_addr().expect("addr").port();
        drop(dead);
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"brokers": {"nats": {"enabled": true, "url": format!("nats://127.0.0.1:{port}"), "subjectPrefix": prefix, "stream": stream}}}))).await;
        assert_eq!(r.status, 200);
        srv.create_record("posts", json!({"title": "while down"})).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let waiting = srv.app.store_for_tests().read(|c| Ok::<_, galley_store::StoreError>(c.query("SELECT COUNT(*) AS n FROM \"_brokerOutbox\"", &[])?[0].int("n"))).await.expect("count");
        assert_eq!(waiting, 1);
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"brokers": {"nats": {"url": NATS_URL}}}))).await;
        assert_eq!(r.status, 200);
        let got = stream_messages(&stream, 1).await;
        delete_stream(&stream).await;
        assert_eq!(event_of(&got[0].1), ("create".to_owned(), "while down".to_owned()));
    }
}

/// The seq of each message in `stream`, in order.
fn seqs(got: &[(String, Value)]) -> Vec<i64> {
    got.iter()
        .map(|(_, b)| b["seq"].as_i64().unwrap_or(-1))
        .collect()
}

both_engines! {
    async fn outbox_is_bounded_while_the_broker_is_unreachable(srv) {
        posts(&srv).await;
        let t = tag();
        let (prefix, stream) = (format!("gt{t}"), format!("GT{t}"));
        // The real server asked for TLS, which it does not offer: nothing is published
        // (no fall-back to plain text), so events wait in the outbox, up to the bound.
        let tls_url = NATS_URL.replace("nats://", "tls://");
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"brokers": {"maxPending": 3, "nats": {"enabled": true, "url": tls_url, "subjectPrefix": prefix, "stream": stream}}}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!((r.body["brokers"]["maxPending"].clone(), r.body["brokers"]["nats"]["url"].clone()), (json!(3), json!(tls_url)));
        // Writes past the bound succeed; their events are not queued for the broker.
        for i in 0..6 {
            srv.create_record("posts", json!({"title": format!("b{i}")})).await;
        }
        assert_eq!(srv.all_records("posts").await.len(), 6);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let waiting = srv.app.store_for_tests().read(|c| Ok::<_, galley_store::StoreError>(c.query("SELECT COUNT(*) AS n FROM \"_brokerOutbox\"", &[])?[0].int("n"))).await.expect("count");
        assert_eq!(waiting, 3);
        // Still full after the count was refreshed: one more write, no more rows.
        srv.create_record("posts", json!({"title": "b6"})).await;
        let waiting = srv.app.store_for_tests().read(|c| Ok::<_, galley_store::StoreError>(c.query("SELECT COUNT(*) AS n FROM \"_brokerOutbox\"", &[])?[0].int("n"))).await.expect("count");
        assert_eq!(waiting, 3);
        // The broker back (plain URL): the kept events arrive; the next event's seq shows
        // the gap the dropped ones left.
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"brokers": {"nats": {"url": NATS_URL}}}))).await;
        assert_eq!(r.status, 200);
        let got = stream_messages(&stream, 3).await;
        assert_eq!(seqs(&got), [1, 2, 3]);
        let titles: Vec<String> = got.iter().map(|(_, b)| event_of(b).1).collect();
        assert_eq!(titles, ["b0", "b1", "b2"]);
        assert_eq!(outbox_left(&srv).await, 0);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        srv.create_record("posts", json!({"title": "after"})).await;
        let got = stream_messages(&stream, 4).await;
        delete_stream(&stream).await;
        assert_eq!(seqs(&got), [1, 2, 3, 8]);
    }

    async fn broker_settings_bad_input(srv) {
        for (patch, pointer, code) in [
            (json!({"brokers": {"maxPending": 0}}), "/data/brokers/maxPending/code", "validation_invalid_value"),
            (json!({"brokers": {"maxPending": "many"}}), "/data/brokers/maxPending/code", "validation_invalid_value"),
            (json!({"brokers": {"nats": {"url": "http://127.0.0.1:4222"}}}), "/data/brokers/nats/url/code", "validation_invalid_url"),
            (json!({"brokers": {"nats": {"url": "nats://127.0.0.1"}}}), "/data/brokers/nats/url/code", "validation_invalid_url"),
            (json!({"brokers": {"rabbitmq": {"tls": "yes"}}}), "/data/brokers/rabbitmq/tls/code", ""),
        ] {
            let r = srv.su(Method::PATCH, "/api/settings", Some(patch.clone())).await;
            assert_eq!(r.status, 400, "{patch}: {}", r.body);
            let got = r.body.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
            assert!(!got.is_empty() && (code.is_empty() || got == code), "{patch}: {}", r.body);
        }
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"brokers": {"nats": {"url": "tls://u:p@nats.example.com:4222"}, "rabbitmq": {"tls": true, "port": 5671}}}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!((r.body["brokers"]["nats"]["url"].clone(), r.body["brokers"]["rabbitmq"]["tls"].clone(), r.body["brokers"]["maxPending"].clone()), (json!("tls://u:p@nats.example.com:4222"), json!(true), json!(100000)));
    }
}

/// TLS where the settings ask for it, against this machine's plain servers: a clear error,
/// never a fall-back to plain text.
#[tokio::test]
async fn tls_to_plain_brokers_fails_clearly() {
    let e = nats::Nats::connect(
        &NATS_URL.replace("nats://", "tls://"),
        Duration::from_secs(5),
    )
    .await
    .err()
    .expect("no TLS from a plain NATS server");
    assert!(e.0.contains("does not offer TLS"), "{e}");
    let mut cfg = rabbit();
    cfg.tls = true;
    let e = amqp::Amqp::connect(&cfg)
        .await
        .err()
        .expect("no TLS from a plain AMQP port");
    assert!(e.0.contains("TLS handshake with RabbitMQ"), "{e}");
    // The same servers in plain text work.
    assert!(nats::Nats::connect(NATS_URL, Duration::from_secs(5))
        .await
        .is_ok());
    assert!(amqp::Amqp::connect(&rabbit()).await.is_ok());
}
