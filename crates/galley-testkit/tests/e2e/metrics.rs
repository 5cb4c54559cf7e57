//! Prometheus metrics on their own listener: OpenTelemetry's HTTP server names by route
//! template, the store, realtime, the log store and the process.

use galley_testkit::{both_engines, Engine, Method, TestServer};
use serde_json::json;

async fn scrape(srv: &TestServer) -> String {
    let r = srv
        .client
        .get(&srv.metrics_url)
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    r.text().await.expect("text")
}

/// The value of the sample line that starts with `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

both_engines! {
    async fn http_store_realtime_and_process_metrics(srv) {
        srv.create_collection(json!({"name": "posts", "viewRule": "", "fields": [{"name": "title", "type": "text"}]})).await;
        let rec = srv.create_record("posts", json!({"title": "a"})).await;
        for _ in 0..3 {
            assert_eq!(srv.guest(Method::GET, "/api/health", None).await.status, 200);
        }
        let id = rec["id"].as_str().expect("id");
        for _ in 0..2 {
            assert_eq!(srv.guest(Method::GET, &format!("/api/collections/posts/records/{id}"), None).await.status, 200);
        }
        assert_eq!(srv.guest(Method::GET, "/api/collections/posts/records/nope1234567890a", None).await.status, 404);
        // Realtime: one SSE client connected while we scrape.
        let sse = srv.request(Method::GET, "/api/realtime").send().await.expect("sse");
        assert_eq!(sse.status(), 200);

        let text = scrape(&srv).await;
        let h = "http_server_request_duration_seconds";
        assert_eq!(value(&text, &format!("{h}_count{{http_request_method=\"GET\",http_route=\"/api/health\",http_response_status_code=\"200\"}}")), Some(3.0), "{text}");
        assert_eq!(value(&text, &format!("{h}_bucket{{http_request_method=\"GET\",http_route=\"/api/health\",http_response_status_code=\"200\",le=\"+Inf\"}}")), Some(3.0));
        let view = "http_request_method=\"GET\",http_route=\"/api/collections/{collection}/records/{id}\"";
        assert_eq!(value(&text, &format!("{h}_count{{{view},http_response_status_code=\"200\"}}")), Some(2.0), "{text}");
        assert_eq!(value(&text, &format!("{h}_count{{{view},http_response_status_code=\"404\"}}")), Some(1.0));
        let sum = value(&text, &format!("{h}_sum{{{view},http_response_status_code=\"200\"}}")).expect("sum");
        assert!(sum > 0.0 && sum < 10.0, "{sum}");
        assert!(text.contains("# TYPE http_server_request_duration_seconds histogram"));
        // The SSE request is still running (its handler answered; the stream goes on), the
        // scrape is on the other listener: nothing is active.
        assert_eq!(value(&text, "http_server_active_requests"), Some(0.0));

        assert!(value(&text, "galley_store_write_jobs_total").expect("jobs") >= 3.0, "{text}");
        assert!(value(&text, "galley_store_write_transactions_total").expect("groups") >= 1.0);
        assert_eq!(value(&text, "galley_store_write_queue_depth"), Some(0.0));
        assert!(value(&text, "galley_store_read_queue_depth").is_some());
        if srv.engine == Engine::Postgres {
            assert!(value(&text, "galley_store_pool_connections").expect("pool") >= 1.0, "{text}");
            assert_eq!(value(&text, "galley_store_pool_max_connections"), Some(4.0));
        } else {
            assert!(value(&text, "galley_store_pool_connections").is_none());
        }
        assert_eq!(value(&text, "galley_realtime_clients"), Some(1.0), "{text}");
        assert_eq!(value(&text, "galley_realtime_dropped_clients_total"), Some(0.0));
        assert!(value(&text, "galley_logs_written_total").is_some());
        assert_eq!(value(&text, "galley_logs_dropped_total"), Some(0.0));
        assert!(value(&text, "process_resident_memory_bytes").expect("rss") > 1e6);
        assert!(value(&text, "process_cpu_seconds_total").expect("cpu") > 0.0);
        assert!(value(&text, "process_open_fds").expect("fds") > 3.0);
        drop(sse);

        // Jobs: this node's runs by outcome, and the queue by state (all nodes).
        let jobs = srv.app.jobs();
        jobs.register("metrics_ok", |_job| async { Ok(()) });
        jobs.register("metrics_fail", |_job| async { Err(galley_jobs::JobError::permanent("no")) });
        for _ in 0..2 {
            jobs.enqueue(galley_jobs::NewJob::new("metrics_ok", json!({}))).await.expect("enqueue");
        }
        jobs.enqueue(galley_jobs::NewJob::new("metrics_fail", json!({}))).await.expect("enqueue");
        jobs.enqueue(galley_jobs::NewJob::new("metrics_later", json!({}))
            .run_at(chrono::Utc::now() + chrono::Duration::hours(1))).await.expect("enqueue");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        let text = loop {
            let text = scrape(&srv).await;
            if value(&text, "galley_jobs_runs_total{outcome=\"succeeded\"}") >= Some(2.0)
                && value(&text, "galley_jobs_runs_total{outcome=\"dead\"}") >= Some(1.0)
                // Finished runs reach the table a moment after they are counted.
                && value(&text, "galley_jobs{state=\"running\"}") == Some(0.0)
                && value(&text, "galley_jobs{state=\"dead\"}") == Some(1.0)
                || std::time::Instant::now() > deadline
            {
                break text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(value(&text, "galley_jobs_runs_total{outcome=\"succeeded\"}"), Some(2.0), "{text}");
        assert_eq!(value(&text, "galley_jobs_runs_total{outcome=\"dead\"}"), Some(1.0), "{text}");
        assert_eq!(value(&text, "galley_jobs_runs_total{outcome=\"retried\"}"), Some(0.0), "{text}");
        assert_eq!(value(&text, "galley_jobs_running"), Some(0.0));
        assert_eq!(value(&text, "galley_jobs{state=\"queued\"}"), Some(1.0), "{text}");
        assert_eq!(value(&text, "galley_jobs{state=\"dead\"}"), Some(1.0), "{text}");
        assert_eq!(value(&text, "galley_jobs{state=\"running\"}"), Some(0.0), "{text}");

        // The metrics listener serves only /metrics, and the public one has none.
        let other = srv.metrics_url.replace("/metrics", "/api/health");
        assert_eq!(srv.client.get(&other).send().await.expect("get").status(), 404);
        assert_eq!(srv.guest(Method::GET, "/metrics", None).await.status, 404);
    }
}
