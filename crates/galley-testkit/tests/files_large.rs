//! A 200 MB upload and download stream through the server: its memory stays within a
//! stated bound (the file never sits whole in memory), on local disk and on S3.
//! Alone in its test binary so nothing else moves the process's peak RSS: it is not a
//! module of the e2e suite (`tests/e2e/`) on purpose. There, other tests run on parallel
//! threads of the same process, and their servers' allocations would count against the
//! bound (`VmHWM` is per process); cargo runs test binaries one after another, so here
//! the measurement sees only this test.

use galley_testkit::{Engine, Method, Storage, TestServer};
use reqwest::multipart::{Form, Part};
use serde_json::json;
use sha2::{Digest, Sha256};

const SIZE: u64 = 200 << 20;
const CHUNK: usize = 1 << 20;
/// Growth of the process's peak RSS allowed while 200 MB pass through it.
const BOUND: u64 = 64 << 20;

fn chunk(i: u64) -> Vec<u8> {
    (0..CHUNK)
        .map(|j| ((i as usize * 31 + j) % 251) as u8)
        .collect()
}

/// The peak resident set size (VmHWM) in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    kb * 1024
}

/// Resets the peak RSS to the current RSS (Linux `clear_refs` 5).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs");
}

async fn roundtrip(storage: Storage) {
    let srv = TestServer::start_on(Engine::Sqlite, storage)
        .await
        .expect("server");
    srv.create_collection(
        json!({"name": "big", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "",
        "fields": [{"name": "blob", "type": "file", "maxSize": 300 << 20}]}),
    )
    .await;
    let mut expected = Sha256::new();
    for i in 0..SIZE / CHUNK as u64 {
        expected.update(chunk(i));
    }
    let expected = expected.finalize();

    reset_peak();
    let base = peak_rss();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(
        (0..SIZE / CHUNK as u64).map(|i| Ok::<_, std::io::Error>(chunk(i))),
    ));
    let form = Form::new().part(
        "blob",
        Part::stream_with_length(body, SIZE).file_name("big.bin"),
    );
    let r = srv
        .request(Method::POST, "/api/collections/big/records")
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let r = TestServer::read(r).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let upload_peak = peak_rss().saturating_sub(base);

    let id = r.body["id"].as_str().expect("id");
    let name = r.body["blob"].as_str().expect("name");
    reset_peak();
    let base = peak_rss();
    let mut resp = srv
        .request(Method::GET, &format!("/api/files/big/{id}/{name}"))
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-length"].to_str().expect("len"),
        SIZE.to_string()
    );
    let mut got = Sha256::new();
    let mut n = 0u64;
    while let Some(c) = resp.chunk().await.expect("chunk") {
        n += c.len() as u64;
        got.update(&c);
    }
    let download_peak = peak_rss().saturating_sub(base);
    assert_eq!(n, SIZE);
    assert_eq!(got.finalize(), expected, "downloaded bytes differ");
    eprintln!(
        "{storage:?}: 200 MB upload raised peak RSS by {} MiB, download by {} MiB (bound {} MiB)",
        upload_peak >> 20,
        download_peak >> 20,
        BOUND >> 20
    );
    assert!(
        upload_peak < BOUND,
        "upload: peak RSS grew by {} MiB",
        upload_peak >> 20
    );
    assert!(
        download_peak < BOUND,
        "download: peak RSS grew by {} MiB",
        download_peak >> 20
    );
    let spool: Vec<_> = std::fs::read_dir(srv.app.upload_dir())
        .expect("spool")
        .collect();
    assert!(spool.is_empty(), "spool left: {spool:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_200_mb_in_bounded_memory() {
    roundtrip(Storage::Local).await;
    roundtrip(Storage::S3).await;
}
