//! PostgreSQL-only behaviour: a database outage under a running server, and native column
//! types as other tools see them.

use galley_store::testing::{server_addr, with_database, Proxy, TempPgDatabase};
use galley_testkit::{Engine, Method, TestServer};
use serde_json::json;
use std::time::Duration;

/// The database goes away under a running server: requests answer 503 in PocketBase's
/// error shape, never hang, and succeed again by themselves once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_gives_503_then_recovers() {
    let Some(db) = TempPgDatabase::create().await else {
        return;
    };
    let proxy = Proxy::start(server_addr(db.url())).await;
    let via_proxy =
        with_database(&format!("postgres://postgres@{}/x", proxy.addr), db.name()).expect("url");
    let user = db
        .url()
        .split("://")
        .nth(1)
        .and_then(|s| s.split('@').next())
        .unwrap_or("postgres")
        .to_owned();
    let via_proxy = via_proxy.replacen("postgres@", &format!("{user}@"), 1);
    let srv = TestServer::start_with(Engine::Postgres, |cfg| {
        cfg.database_url = Some(via_proxy.clone())
    })
    .await
    .expect("server");
    srv.create_collection(json!({"name": "notes", "listRule": "", "createRule": "", "fields": [{"name": "text", "type": "text"}]}))
        .await;
    srv.create_record("notes", json!({"text": "before"})).await;

    proxy.cut().await;
    let started = std::time::Instant::now();
    let r = srv
        .guest(Method::GET, "/api/collections/notes/records", None)
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["status"], 503);
    assert!(r.body["data"].is_object());
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("unavailable"),
        "{}",
        r.body
    );
    let w = srv
        .guest(
            Method::POST,
            "/api/collections/notes/records",
            Some(json!({"text": "during"})),
        )
        .await;
    assert_eq!(w.status, 503, "{}", w.body);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "requests must fail fast, took {:?}",
        started.elapsed()
    );
    // The API itself still answers (liveness); readiness says the database is away.
    assert_eq!(
        srv.guest(Method::GET, "/api/health", None).await.status,
        200
    );
    let r = srv.guest(Method::GET, "/api/health/ready", None).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["status"], 503);

    proxy.restore().await;
    let mut ok = None;
    for _ in 0..50 {
        let r = srv
            .guest(Method::GET, "/api/collections/notes/records", None)
            .await;
        if r.status == 200 {
            ok = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = ok.expect("the server recovers once the database is back");
    let texts: Vec<_> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["text"].clone())
        .collect();
    assert_eq!(
        texts,
        vec![json!("before")],
        "the failed write left nothing behind"
    );
    srv.create_record("notes", json!({"text": "after"})).await;
    let r = srv.guest(Method::GET, "/api/health/ready", None).await;
    assert_eq!(
        r.body,
        json!({"message": "API is ready.", "code": 200, "data": {}})
    );
}

/// A collection is a real table with PostgreSQL's own column types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_are_tables_with_native_types() {
    let Some(srv) = TestServer::start(Engine::Postgres).await else {
        return;
    };
    srv.create_collection(json!({"name": "things", "fields": [
        {"name": "title", "type": "text"},
        {"name": "n", "type": "number"},
        {"name": "ok", "type": "bool"},
        {"name": "at", "type": "date"},
        {"name": "meta", "type": "json"},
        {"name": "tags", "type": "select", "maxSelect": 2, "values": ["a", "b"]}
    ]}))
    .await;
    let rows = srv
        .app
        .store_for_tests()
        .read(|c: &mut dyn galley_store::Conn| {
            c.query(
                "SELECT column_name::text AS name, data_type::text AS ty FROM information_schema.columns WHERE table_name = 'things' ORDER BY column_name",
                &[],
            )
        })
        .await
        .expect("columns");
    let types: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.text("name"), r.text("ty")))
        .collect();
    let expect = |n: &str, t: &str| {
        assert!(
            types.contains(&(n.to_owned(), t.to_owned())),
            "{n} should be {t}: {types:?}"
        )
    };
    expect("id", "text");
    expect("title", "text");
    expect("n", "double precision");
    expect("ok", "boolean");
    expect("at", "timestamp with time zone");
    expect("meta", "jsonb");
    expect("tags", "jsonb");
}
