//! Graceful shutdown: open realtime streams end (so they cannot hold the drain forever),
//! and the server stops promptly.

use futures_util::StreamExt;
use galley_testkit::{both_engines, Method};
use std::time::{Duration, Instant};

both_engines! {
    async fn shutdown_ends_realtime_streams_and_finishes(srv) {
        let mut srv = srv;
        let res = srv.request(Method::GET, "/api/realtime").send().await.expect("sse");
        assert_eq!(res.status(), 200);
        let mut body = res.bytes_stream();
        let first = body.next().await.expect("PB_CONNECT").expect("bytes");
        assert!(String::from_utf8_lossy(&first).contains("PB_CONNECT"));
        let started = Instant::now();
        // Stops the server (the same drain as SIGTERM) and serves the data again.
        tokio::time::timeout(Duration::from_secs(8), srv.restart()).await.expect("the drain finished");
        assert!(started.elapsed() < galley::DRAIN_DEADLINE, "took {:?}", started.elapsed());
        // The stream ended rather than hanging.
        let rest = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(chunk) = body.next().await {
                if chunk.is_err() {
                    break;
                }
            }
        })
        .await;
        assert!(rest.is_ok(), "the realtime stream was closed");
        assert_eq!(srv.guest(Method::GET, "/api/health", None).await.status, 200);
    }
}
