//! A real S3-compatible server for tests: `moto_server` (PyPI `moto[server]`) on loopback,
//! started once per test process and stopped when the process exits. Each test gets its
//! own bucket.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct S3Server {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

static SERVER: OnceLock<S3Server> = OnceLock::new();

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start() -> S3Server {
    let bin = std::env::var("GALLEY_TEST_MOTO").unwrap_or_else(|_| "moto_server".into());
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "S3 tests need `{bin}` (an S3-compatible server on loopback): run `python3 -m pip install 'moto[server]'` (.ci/run does)"
    );
    let port = free_port();
    // A watchdog shell stops moto when this test process is gone, so no server outlives
    // the tests.
    let script = format!(
        "{bin} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $m",
        parent = std::process::id()
    );
    // The watchdog exits on its own after this process does; nobody waits for it.
    #[allow(clippy::zombie_processes)]
    let _watchdog = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on 127.0.0.1:{port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    S3Server {
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}

/// The shared server (started on first use).
pub fn server() -> &'static S3Server {
    SERVER.get_or_init(start)
}

impl S3Server {
    /// Creates a fresh bucket and returns its name (moto accepts unsigned requests).
    pub async fn new_bucket(&self) -> String {
        let name = format!("galley-test-{}", rand_suffix());
        let r = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .expect("create bucket");
        assert!(r.status().is_success(), "create bucket: {}", r.status());
        name
    }

    /// The `s3` settings for a bucket of this server.
    pub fn settings(&self, bucket: &str) -> serde_json::Value {
        serde_json::json!({"enabled": true, "bucket": bucket, "region": "us-east-1",
            "endpoint": self.endpoint, "accessKey": "test", "secret": "test-secret",
            "forcePathStyle": true})
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_micros() % 1_000_000
    )
}
