//! Realtime over WebSocket: the same topics and rule checks as SSE, and resume with the last
//! event id after a reconnect.

use futures_util::{SinkExt, StreamExt};
use galley_testkit::{both_engines, TestServer};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(srv: &TestServer) -> (Ws, Value) {
    let url = format!("{}/api/realtime/ws", srv.url.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect");
    let hello = next(&mut ws, Duration::from_secs(3))
        .await
        .expect("connect message");
    assert_eq!(hello["type"], "connect");
    assert_eq!(hello["clientId"].as_str().map(str::len), Some(40));
    (ws, hello)
}

async fn next(ws: &mut Ws, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(t.as_str()).ok(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

both_engines! {
    async fn websocket_events_follow_rules(srv) {
        srv.create_collection(json!({"name": "posts", "listRule": "public = true", "fields": [
            {"name": "title", "type": "text"}, {"name": "public", "type": "bool"}]})).await;
        let (mut ws, _) = connect(&srv).await;
        send(&mut ws, json!({"type": "subscribe", "subscriptions": ["posts/*"]})).await;
        assert_eq!(next(&mut ws, Duration::from_secs(3)).await.expect("ack")["type"], "subscribed");
        srv.create_record("posts", json!({"title": "hidden", "public": false})).await;
        let rec = srv.create_record("posts", json!({"title": "shown", "public": true})).await;
        let e = next(&mut ws, Duration::from_secs(3)).await.expect("event");
        assert_eq!(e["type"], "event");
        assert_eq!(e["topic"], "posts/*");
        assert_eq!(e["data"]["action"], "create");
        assert_eq!(e["data"]["record"]["id"], rec["id"]);
        assert!(e["id"].as_u64().expect("event id") > 0);
        assert!(next(&mut ws, Duration::from_millis(400)).await.is_none(), "the hidden record is never sent");
        send(&mut ws, json!({"type": "nope"})).await;
        assert_eq!(next(&mut ws, Duration::from_secs(3)).await.expect("error")["type"], "error");
        send(&mut ws, json!({"type": "subscribe", "subscriptions": ["x"], "token": "garbage"})).await;
        assert_eq!(next(&mut ws, Duration::from_secs(3)).await.expect("error")["type"], "error");
    }

    async fn websocket_resume_after_reconnect(srv) {
        srv.create_collection(json!({"name": "notes", "listRule": "", "fields": [{"name": "text", "type": "text"}]})).await;
        let (mut ws, _) = connect(&srv).await;
        send(&mut ws, json!({"type": "subscribe", "subscriptions": ["notes/*"], "token": srv.token})).await;
        next(&mut ws, Duration::from_secs(3)).await.expect("ack");
        srv.create_record("notes", json!({"text": "one"})).await;
        let first = next(&mut ws, Duration::from_secs(3)).await.expect("event one");
        let last_seen = first["id"].as_u64().expect("id");
        drop(ws);
        // Missed while disconnected.
        srv.create_record("notes", json!({"text": "two"})).await;
        srv.create_record("notes", json!({"text": "three"})).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (mut ws, _) = connect(&srv).await;
        send(&mut ws, json!({"type": "subscribe", "subscriptions": ["notes/*"], "token": srv.token, "lastEventId": last_seen})).await;
        assert_eq!(next(&mut ws, Duration::from_secs(3)).await.expect("ack")["type"], "subscribed");
        let mut texts = vec![];
        while let Some(e) = next(&mut ws, Duration::from_millis(800)).await {
            assert!(e["id"].as_u64().expect("id") > last_seen);
            texts.push(e["data"]["record"]["text"].as_str().unwrap_or_default().to_owned());
        }
        assert_eq!(texts, ["two", "three"]);
    }

    async fn websocket_subscription_limit_comes_from_settings(srv) {
        let r = srv.su(reqwest::Method::PATCH, "/api/settings", Some(json!({"realtime": {"maxSubscriptionsPerClient": 2}}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let (mut ws, _) = connect(&srv).await;
        send(&mut ws, json!({"type": "subscribe", "subscriptions": ["a/*", "b/*", "c/*"]})).await;
        assert_eq!(next(&mut ws, Duration::from_secs(3)).await.expect("error"), json!({"type": "error", "message": "At most 2 subscriptions."}));
        send(&mut ws, json!({"type": "subscribe", "subscriptions": ["a/*", "b/*"]})).await;
        assert_eq!(next(&mut ws, Duration::from_secs(3)).await.expect("ack"), json!({"type": "subscribed", "subscriptions": ["a/*", "b/*"]}));
        assert_eq!(srv.app.realtime.limits().max_subscriptions, 2);
    }
}

/// A WebSocket client that stops reading is dropped from the hub once its queue is full, and
/// when it reads again it gets what was queued, then the close code 4000 with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_slow_clients_are_closed_with_4000() {
    let srv = TestServer::start(galley_testkit::Engine::Sqlite)
        .await
        .expect("server");
    srv.create_collection(
        json!({"name": "blobs", "listRule": "", "fields": [{"name": "body", "type": "editor"}]}),
    )
    .await;
    srv.enable_batch().await;
    let (mut stalled, _) = connect(&srv).await;
    send(
        &mut stalled,
        json!({"type": "subscribe", "subscriptions": ["blobs/*"]}),
    )
    .await;
    assert_eq!(
        next(&mut stalled, Duration::from_secs(3))
            .await
            .expect("ack")["type"],
        "subscribed"
    );
    assert_eq!(srv.app.realtime.len(), 1);
    let body = "x".repeat(60_000);
    for _ in 0..60 {
        let requests: Vec<_> = (0..25)
            .map(|_| json!({"method": "POST", "url": "/api/collections/blobs/records", "body": {"body": body}}))
            .collect();
        let r = srv
            .su(
                reqwest::Method::POST,
                "/api/batch",
                Some(json!({"requests": requests})),
            )
            .await;
        assert_eq!(r.status, 200);
        if srv.app.realtime.is_empty() {
            break;
        }
    }
    assert!(
        srv.app.realtime.is_empty(),
        "the stalled client was dropped"
    );
    let mut events = 0;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), stalled.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => events += 1,
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = close.expect("close frame");
    assert_eq!(u16::from(frame.code), 4000);
    assert_eq!(
        frame.reason.as_str(),
        "too slow: events were not read fast enough"
    );
    assert!(events > 0, "what was queued before the drop still arrives");
}
