//! Realtime over SSE: PocketBase's protocol, events after commit only, rule-checked delivery.

use galley_testkit::sse::SseClient;
use galley_testkit::{both_engines, Method, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(3);
const QUIET: Duration = Duration::from_millis(600);

async fn subscribe(srv: &TestServer, sse: &SseClient, token: Option<&str>, topics: Value) -> u16 {
    srv.send(
        Method::POST,
        "/api/realtime",
        token,
        Some(json!({"clientId": sse.client_id, "subscriptions": topics})),
    )
    .await
    .status
}

async fn posts(srv: &TestServer) {
    srv.create_collection(json!({
        "name": "posts", "listRule": "public = true", "viewRule": "public = true",
        "fields": [{"name": "title", "type": "text"}, {"name": "public", "type": "bool"}, {"name": "secret", "type": "text", "hidden": true}]
    }))
    .await;
}

both_engines! {
    async fn events_follow_the_list_rule(srv) {
        posts(&srv).await;
        let mut sse = SseClient::connect(&srv.url).await;
        assert_eq!(sse.client_id.len(), 40);
        assert_eq!(subscribe(&srv, &sse, None, json!(["posts/*"])).await, 204);

        srv.create_record("posts", json!({"title": "private", "public": false})).await;
        let open = srv.create_record("posts", json!({"title": "open", "public": true, "secret": "s"})).await;
        let e = sse.next(WAIT).await.expect("create event");
        assert_eq!(e.event, "posts/*");
        assert_eq!(e.id, sse.client_id);
        assert_eq!(e.data["action"], "create");
        assert_eq!(e.data["record"]["title"], "open");
        assert_eq!(e.data["record"]["id"], open["id"]);
        assert_eq!(e.data["record"]["collectionName"], "posts");
        assert!(e.data["record"].get("secret").is_none(), "hidden fields stay hidden: {}", e.data);

        let id = open["id"].as_str().expect("id");
        let r = srv.su(Method::PATCH, &format!("/api/collections/posts/records/{id}"), Some(json!({"title": "open2"}))).await;
        assert_eq!(r.status, 200);
        let e = sse.next(WAIT).await.expect("update event");
        assert_eq!((e.data["action"].as_str(), e.data["record"]["title"].as_str()), (Some("update"), Some("open2")));

        let r = srv.su(Method::DELETE, &format!("/api/collections/posts/records/{id}"), None).await;
        assert_eq!(r.status, 204);
        let e = sse.next(WAIT).await.expect("delete event");
        assert_eq!((e.data["action"].as_str(), e.data["record"]["id"].as_str()), (Some("delete"), Some(id)));
        assert!(sse.next(QUIET).await.is_none(), "the private record never arrives");
    }

    async fn record_topics_and_options(srv) {
        posts(&srv).await;
        let a = srv.create_record("posts", json!({"title": "a", "public": true})).await;
        let b = srv.create_record("posts", json!({"title": "b", "public": true})).await;
        let (a, b) = (a["id"].as_str().expect("id").to_owned(), b["id"].as_str().expect("id").to_owned());
        let mut sse = SseClient::connect(&srv.url).await;
        let opts = "%7B%22query%22%3A%7B%22fields%22%3A%22id%2Ctitle%22%7D%7D";
        let topic = format!("posts/{a}?options={opts}");
        assert_eq!(subscribe(&srv, &sse, None, json!([topic])).await, 204);
        srv.su(Method::PATCH, &format!("/api/collections/posts/records/{b}"), Some(json!({"title": "b2"}))).await;
        srv.su(Method::PATCH, &format!("/api/collections/posts/records/{a}"), Some(json!({"title": "a2"}))).await;
        let e = sse.next(WAIT).await.expect("event for a");
        assert_eq!(e.event, topic, "the event is named by the exact subscription");
        assert_eq!(e.data["record"], json!({"id": a, "title": "a2"}));
        assert!(sse.next(QUIET).await.is_none(), "no event for b");
    }

    async fn rolled_back_writes_send_nothing(srv) {
        posts(&srv).await;
        srv.enable_batch().await;
        let mut sse = SseClient::connect(&srv.url).await;
        subscribe(&srv, &sse, Some(&srv.token.clone()), json!(["posts/*"])).await;
        let r = srv.su(Method::POST, "/api/batch", Some(json!({"requests": [
            {"method": "POST", "url": "/api/collections/posts/records", "body": {"title": "x", "public": true}},
            {"method": "POST", "url": "/api/collections/nope/records", "body": {}}
        ]}))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(sse.next(QUIET).await.is_none(), "a rolled-back batch publishes nothing");
        let r = srv.su(Method::POST, "/api/batch", Some(json!({"requests": [
            {"method": "POST", "url": "/api/collections/posts/records", "body": {"title": "y", "public": false}}
        ]}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let e = sse.next(WAIT).await.expect("superusers see everything");
        assert_eq!(e.data["record"]["title"], "y");
    }

    async fn users_only_receive_their_own_records(srv) {
        let member = srv.member_token().await;
        let members = srv.su(Method::GET, "/api/collections/members", None).await.body;
        srv.create_collection(json!({
            "name": "notes", "listRule": "owner = @request.auth.id", "viewRule": "owner = @request.auth.id",
            "fields": [{"name": "text", "type": "text"}, {"name": "owner", "type": "relation", "collectionId": members["id"]}]
        })).await;
        let me = srv.send(Method::POST, "/api/collections/members/auth-refresh", Some(&member), None).await.body["record"]["id"].clone();
        let mut sse = SseClient::connect(&srv.url).await;
        assert_eq!(subscribe(&srv, &sse, Some(&member), json!(["notes/*"])).await, 204);
        srv.create_record("notes", json!({"text": "someone else's"})).await;
        srv.create_record("notes", json!({"text": "mine", "owner": me})).await;
        let e = sse.next(WAIT).await.expect("own note");
        assert_eq!(e.data["record"]["text"], "mine");
        assert!(sse.next(QUIET).await.is_none());
        // The auth of a client is fixed by its first authenticated subscription.
        assert_eq!(subscribe(&srv, &sse, Some(&srv.token.clone()), json!(["notes/*"])).await, 403);
    }

    async fn subscribers_sharing_a_topic_each_get_what_their_auth_and_options_allow(srv) {
        // Delivery checks an event once per (auth, rule, options) group: the groups must not
        // leak into each other.
        let alice = srv.member_token().await;
        let creds = json!({"email": "bob@example.com", "password": "Member-Pass-2", "passwordConfirm": "Member-Pass-2"});
        assert_eq!(srv.guest(Method::POST, "/api/collections/members/records", Some(creds)).await.status, 200);
        let bob = srv.guest(Method::POST, "/api/collections/members/auth-with-password",
            Some(json!({"identity": "bob@example.com", "password": "Member-Pass-2"}))).await.body["token"].as_str().expect("token").to_owned();
        let members = srv.su(Method::GET, "/api/collections/members", None).await.body;
        srv.create_collection(json!({
            "name": "notes", "listRule": "owner = @request.auth.id || public = true", "viewRule": "owner = @request.auth.id",
            "fields": [{"name": "text", "type": "text"}, {"name": "public", "type": "bool"}, {"name": "owner", "type": "relation", "collectionId": members["id"]}]
        })).await;
        let mut ids = vec![];
        for t in [&alice, &bob] {
            let r = srv.send(Method::POST, "/api/collections/members/auth-refresh", Some(t), None).await;
            ids.push(r.body["record"]["id"].as_str().expect("id").to_owned());
        }
        let (alice_id, bob_id) = (ids[0].clone(), ids[1].clone());
        let fields = "notes/*?options=%7B%22query%22%3A%7B%22fields%22%3A%22text%22%7D%7D";
        let mut a1 = SseClient::connect(&srv.url).await;
        let mut a2 = SseClient::connect(&srv.url).await;
        let mut b = SseClient::connect(&srv.url).await;
        let mut g1 = SseClient::connect(&srv.url).await;
        let mut g2 = SseClient::connect(&srv.url).await;
        let mut g_fields = SseClient::connect(&srv.url).await;
        assert_eq!(subscribe(&srv, &a1, Some(&alice), json!(["notes/*"])).await, 204);
        assert_eq!(subscribe(&srv, &a2, Some(&alice), json!(["notes/*"])).await, 204);
        assert_eq!(subscribe(&srv, &b, Some(&bob), json!(["notes/*"])).await, 204);
        assert_eq!(subscribe(&srv, &g1, None, json!(["notes/*"])).await, 204);
        assert_eq!(subscribe(&srv, &g2, None, json!(["notes/*"])).await, 204);
        assert_eq!(subscribe(&srv, &g_fields, None, json!([fields])).await, 204);

        srv.create_record("notes", json!({"text": "alice's", "owner": alice_id})).await;
        srv.create_record("notes", json!({"text": "bob's", "owner": bob_id})).await;
        let open = srv.create_record("notes", json!({"text": "open", "public": true})).await;
        for c in [&mut a1, &mut a2] {
            let e = c.next(WAIT).await.expect("alice's note");
            assert_eq!((e.event.as_str(), e.data["record"]["text"].as_str()), ("notes/*", Some("alice's")));
            assert_eq!(c.next(WAIT).await.expect("open note").data["record"]["text"], "open");
        }
        assert_eq!(b.next(WAIT).await.expect("bob's note").data["record"]["text"], "bob's");
        assert_eq!(b.next(WAIT).await.expect("open note").data["record"]["text"], "open");
        for g in [&mut g1, &mut g2] {
            let e = g.next(WAIT).await.expect("open note");
            assert_eq!(e.data["record"]["id"], open["id"]);
            assert_eq!(e.data["record"]["text"], "open");
            assert_eq!(e.data["record"]["collectionName"], "notes");
        }
        let e = g_fields.next(WAIT).await.expect("open note, shaped by fields");
        assert_eq!(e.event, fields);
        assert_eq!(e.data["record"], json!({"text": "open"}));
        for c in [&mut a1, &mut a2, &mut b, &mut g1, &mut g2, &mut g_fields] {
            assert!(c.next(QUIET).await.is_none(), "nothing else arrives");
        }
    }

    async fn protocol_errors(srv) {
        let r = srv.guest(Method::POST, "/api/realtime", Some(json!({"clientId": "nope", "subscriptions": []}))).await;
        assert_eq!((r.status, r.body["message"].as_str()), (404, Some("Missing or invalid client id.")));
        let r = srv.guest(Method::POST, "/api/realtime", Some(json!({"subscriptions": []}))).await;
        assert_eq!(r.status, 400);
        let sse = SseClient::connect(&srv.url).await;
        let many: Vec<String> = (0..1001).map(|i| format!("posts/{i}")).collect();
        assert_eq!(subscribe(&srv, &sse, None, json!(many)).await, 400);
        assert_eq!(subscribe(&srv, &sse, None, json!(["x".repeat(3000)])).await, 400);
        assert_eq!(subscribe(&srv, &sse, None, json!([])).await, 204);
        srv.assert_healthy().await;
    }

    async fn connection_and_subscription_limits_come_from_settings(srv) {
        let s = srv.su(Method::GET, "/api/settings", None).await;
        assert_eq!(s.body["realtime"], json!({"maxConnections": 10000, "maxConnectionsPerIP": 100, "maxSubscriptionsPerClient": 1000}));
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"realtime": {"maxConnections": 0, "maxSubscriptionsPerClient": 1001}}))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.code_at("/realtime/maxConnections"), Some("validation_invalid_value"));
        assert_eq!(r.code_at("/realtime/maxSubscriptionsPerClient"), Some("validation_invalid_value"));
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"realtime": {"maxConnections": "2"}}))).await;
        assert_eq!(r.code_at("/realtime/maxConnections"), Some("validation_invalid_value"), "{}", r.body);
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"realtime": {"maxConnections": 2, "maxSubscriptionsPerClient": 3}}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["realtime"], json!({"maxConnections": 2, "maxConnectionsPerIP": 100, "maxSubscriptionsPerClient": 3}));
        // Guests may not change them.
        let r = srv.guest(Method::PATCH, "/api/settings", Some(json!({"realtime": {"maxConnections": 100}}))).await;
        assert_ne!(r.status, 200);

        let first = SseClient::connect(&srv.url).await;
        let second = SseClient::connect(&srv.url).await;
        let r = srv.guest(Method::GET, "/api/realtime", None).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.body, json!({"data": {}, "message": "Too many realtime connections (the limit is 2). Try again later.", "status": 503}));
        // The WebSocket endpoint shares the limit and answers before upgrading.
        let ws_url = format!("{}/api/realtime/ws", srv.url.replace("http://", "ws://"));
        match tokio_tungstenite::connect_async(ws_url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 503);
                let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).expect("json body");
                assert_eq!(body["message"], "Too many realtime connections (the limit is 2). Try again later.");
            }
            other => panic!("expected 503, got {other:?}"),
        }

        let four = json!(["posts/*", "posts/a", "posts/b", "posts/c"]);
        let r = srv.send(Method::POST, "/api/realtime", None, Some(json!({"clientId": first.client_id, "subscriptions": four}))).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.body["data"]["subscriptions"], json!({"code": "validation_length_too_long", "message": "The length must be no more than 3."}));
        assert_eq!(subscribe(&srv, &first, None, json!(["posts/*", "posts/a", "posts/b"])).await, 204);

        // A closed connection frees its place.
        drop(second);
        let mut freed = false;
        for _ in 0..50 {
            if srv.app.realtime.len() < 2 {
                freed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(freed, "the closed stream left the hub");
        let third = SseClient::connect(&srv.url).await;
        assert_eq!(third.client_id.len(), 40);
        // Raising the limit takes effect without a restart.
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"realtime": {"maxConnections": 3}}))).await;
        assert_eq!((r.status, &r.body["realtime"]), (200, &json!({"maxConnections": 3, "maxConnectionsPerIP": 100, "maxSubscriptionsPerClient": 3})));
        let _fourth = SseClient::connect(&srv.url).await;
        assert_eq!(srv.app.realtime.len(), 3);
        drop(first);
    }
}

/// Two Galley nodes on one PostgreSQL database: a subscriber on node A receives events for
/// writes made through node B, and A learns of B's schema changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_nodes_on_postgres() {
    let Some(a) = TestServer::start(galley_testkit::Engine::Postgres).await else {
        return;
    };
    let url = a.app.config.database_url.clone().expect("postgres url");
    let b = TestServer::start_with(galley_testkit::Engine::Postgres, |cfg| {
        cfg.database_url = Some(url)
    })
    .await
    .expect("node b");
    // Created through B; A must see the new collection without a restart.
    b.create_collection(json!({"name": "feed", "listRule": "", "viewRule": "", "fields": [{"name": "text", "type": "text"}]}))
        .await;
    let mut seen = false;
    for _ in 0..50 {
        if a.guest(Method::GET, "/api/collections/feed/records", None)
            .await
            .status
            == 200
        {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "node A reloads the schema after node B's change");
    let mut sse = SseClient::connect(&a.url).await;
    assert_eq!(subscribe(&a, &sse, None, json!(["feed/*"])).await, 204);
    let rec = b.create_record("feed", json!({"text": "from b"})).await;
    let e = sse
        .next(Duration::from_secs(5))
        .await
        .expect("event from the other node");
    assert_eq!(e.data["action"], "create");
    assert_eq!(e.data["record"]["text"], "from b");
    assert_eq!(e.data["record"]["id"], rec["id"]);
    let id = rec["id"].as_str().expect("id");
    assert_eq!(
        b.su(
            Method::DELETE,
            &format!("/api/collections/feed/records/{id}"),
            None
        )
        .await
        .status,
        204
    );
    let e = sse
        .next(Duration::from_secs(5))
        .await
        .expect("delete from the other node");
    assert_eq!(
        (e.data["action"].as_str(), e.data["record"]["id"].as_str()),
        (Some("delete"), Some(id))
    );
    assert!(
        sse.next(Duration::from_millis(500)).await.is_none(),
        "each event arrives once"
    );
}

/// A client that stops reading is disconnected once its queue is full; memory stays bounded
/// and other clients keep receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_disconnected() {
    let srv = TestServer::start(galley_testkit::Engine::Sqlite)
        .await
        .expect("server");
    srv.create_collection(
        json!({"name": "blobs", "listRule": "", "fields": [{"name": "body", "type": "editor"}]}),
    )
    .await;
    srv.enable_batch().await;
    // A client that subscribes and then never reads its stream.
    let stalled = SseClient::connect(&srv.url).await;
    assert_eq!(
        subscribe(&srv, &stalled, None, json!(["blobs/*"])).await,
        204
    );
    let mut live = SseClient::connect(&srv.url).await;
    assert_eq!(subscribe(&srv, &live, None, json!(["blobs/*"])).await, 204);
    assert_eq!(srv.app.realtime.len(), 2);
    let body = "x".repeat(60_000);
    let mut received = 0;
    for _ in 0..40 {
        let requests: Vec<_> = (0..25)
            .map(|_| json!({"method": "POST", "url": "/api/collections/blobs/records", "body": {"body": body}}))
            .collect();
        let r = srv
            .su(
                Method::POST,
                "/api/batch",
                Some(json!({"requests": requests})),
            )
            .await;
        assert_eq!(r.status, 200);
        // The live client keeps up.
        while let Some(e) = live.next(Duration::from_millis(50)).await {
            assert_eq!(e.data["action"], "create");
            received += 1;
        }
        if srv.app.realtime.len() == 1 {
            break;
        }
    }
    assert_eq!(srv.app.realtime.len(), 1, "the stalled client was dropped");
    while let Some(_e) = live.next(Duration::from_millis(300)).await {
        received += 1;
    }
    assert!(
        received >= 25,
        "the live client received its events ({received})"
    );
    drop(stalled);
}
