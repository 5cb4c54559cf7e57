//! The Rust extension API (`galley::extend::Builder`): record events in the transaction,
//! after-success events, routes of one's own, side by side with JavaScript hooks.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is the failure it reports

use axum::extract::State;
use axum::routing::get;
use galley::extend::{Builder, RecordEvent};
use galley_core::context::WriteOp;
use galley_core::records::system;
use galley_core::{App, CoreError};
use galley_testkit::{Engine, TestServer};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

static AFTER: AtomicUsize = AtomicUsize::new(0);

fn build(b: Builder, dir: &std::path::Path) -> Builder {
    let hooks = dir.join("js");
    std::fs::create_dir_all(&hooks).unwrap();
    // JavaScript runs after Rust on the same write: both take part.
    std::fs::write(
        hooks.join("a.pb.js"),
        r#"onRecordCreate((e) => { e.record.set("trail", e.record.getString("trail") + ",js"); e.next() }, "items")"#,
    )
    .unwrap();
    b.on_record_create(&["items"], |e: &mut RecordEvent<'_, '_>| {
        let title = e
            .record
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if title == "refuse" {
            return Err(CoreError::bad_request("Refused by Rust."));
        }
        e.record.insert("trail".into(), json!("rust"));
        e.next()?;
        // After the insert, in the same transaction: a second record, rolled back with it.
        let schema = e.ctx.schema.clone();
        let logs = schema.find("logs").cloned().unwrap();
        let sys = e.ctx.acting_as(system::caller(&schema));
        let mut data = serde_json::Map::new();
        data.insert("text".into(), json!(format!("created {title}")));
        system::save(e.conn, &sys, &logs, None, data)?;
        if title == "late" {
            return Err(CoreError::bad_request("Refused after the write."));
        }
        Ok(())
    })
    .on_record_after_success(WriteOp::Create, &["items"], |_app, ev| {
        if ev.record.get("title") == Some(&json!("count me")) {
            AFTER.fetch_add(1, Ordering::SeqCst);
        }
    })
    .routes(axum::Router::new().route(
        "/api/ext/count",
        get(|State(app): State<Arc<App>>| async move {
            let schema = app.schema();
            let col = schema.find("items").cloned().unwrap();
            let n = app
                .read(move |c| system::count(c, &schema, &col, &system::Find::default()))
                .await
                .unwrap();
            axum::Json(json!({ "items": n }))
        }),
    ))
    .js_hooks(galley::galley_hooks::HooksConfig {
        dir: Some(hooks),
        watch: false,
        ..Default::default()
    })
}

async fn run(srv: TestServer) {
    srv.create_collection(json!({"name": "items", "listRule": "", "createRule": "", "fields": [{"name": "title", "type": "text"}, {"name": "trail", "type": "text"}]}))
        .await;
    srv.create_collection(
        json!({"name": "logs", "listRule": "", "fields": [{"name": "text", "type": "text"}]}),
    )
    .await;
    let r = srv
        .guest(
            Method::POST,
            "/api/collections/items/records",
            Some(json!({"title": "a"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["trail"], "rust,js");
    assert_eq!(srv.all_records("logs").await.len(), 1);
    let r = srv
        .guest(
            Method::POST,
            "/api/collections/items/records",
            Some(json!({"title": "refuse"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["message"].clone()),
        (400, json!("Refused by Rust."))
    );
    let r = srv
        .guest(
            Method::POST,
            "/api/collections/items/records",
            Some(json!({"title": "late"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["message"].clone()),
        (400, json!("Refused after the write."))
    );
    assert_eq!(
        srv.all_records("items").await.len(),
        1,
        "the late refusal rolled the insert back"
    );
    assert_eq!(
        srv.all_records("logs").await.len(),
        1,
        "and the log record with it"
    );
    let before = AFTER.load(Ordering::SeqCst);
    let r = srv
        .guest(
            Method::POST,
            "/api/collections/items/records",
            Some(json!({"title": "count me"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        AFTER.load(Ordering::SeqCst),
        before + 1,
        "after-success ran before the answer"
    );
    let r = srv.guest(Method::GET, "/api/ext/count", None).await;
    assert_eq!(r.body, json!({"items": 2}));
}

mod rust_extensions {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        run(TestServer::start_built(Engine::Sqlite, |_| {}, build)
            .await
            .unwrap())
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(srv) = TestServer::start_built(Engine::Postgres, |_| {}, build).await {
            run(srv).await;
        }
    }
}
