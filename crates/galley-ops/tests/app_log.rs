//! The app's warnings and errors reach the stored logs through `AppLogLayer`; info does not.

use galley_core::{App, AppConfig, Caller, Page};
use galley_ops::logs::AppLogLayer;
use galley_ops::Logs;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test]
async fn warnings_and_errors_are_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::open(AppConfig::new(dir.path())).await.expect("open");
    let logs = Logs::open(app.clone()).await.expect("logs");
    let layer = AppLogLayer::new();
    layer.attach(&logs);
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("not kept");
        tracing::warn!(collection = "posts", count = 3, "a rule does not compile");
        tracing::error!(detail = "disk full", "internal error");
    });
    logs.flush().await;
    assert!(dir.path().join("auxiliary.db").exists());
    let su = Caller::Guest;
    let page = Page {
        page: 1,
        per_page: 10,
        skip_total: false,
    };
    let r = logs
        .list(&su, page, "data.type = 'app'", "level")
        .await
        .expect("list");
    assert_eq!(r.total_items, 2, "{:?}", r.items);
    assert_eq!(r.items[0]["message"], "a rule does not compile");
    assert_eq!(r.items[0]["level"], 4);
    assert_eq!(r.items[0]["data"]["collection"], "posts");
    assert_eq!(r.items[0]["data"]["count"], 3);
    assert_eq!(r.items[1]["message"], "internal error");
    assert_eq!(r.items[1]["level"], 8);
    assert_eq!(r.items[1]["data"]["detail"], "disk full");
    assert_eq!(logs.dropped(), 0);
    assert_eq!(logs.written(), 2);
    logs.close().await;
}

/// A full queue drops (and counts) instead of making the request wait.
#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_drops_and_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::open(AppConfig::new(dir.path())).await.expect("open");
    let logs = Logs::open(app.clone()).await.expect("logs");
    // On this one-thread runtime the writer cannot run until we await.
    for i in 0..10_050 {
        let mut data = serde_json::Map::new();
        data.insert("i".into(), i.into());
        logs.push(galley_ops::LogEntry {
            created: chrono::Utc::now(),
            level: 0,
            message: "m".into(),
            data,
        });
    }
    assert_eq!(logs.dropped(), 50);
    logs.flush().await;
    assert_eq!(logs.written(), 10_000);
    let page = Page {
        page: 1,
        per_page: 1,
        skip_total: false,
    };
    let r = logs.list(&Caller::Guest, page, "", "").await.expect("list");
    assert_eq!(r.total_items, 10_000);
    assert_eq!(r.items[0]["data"]["i"], 0, "in the order pushed");
    logs.close().await;
}
