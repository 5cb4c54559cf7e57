//! Black-box tests of the `galley` binary: crash safety under write load (kill -9, restart,
//! every acknowledged write is there) on SQLite and PostgreSQL, HTTPS with a certificate
//! reloaded on SIGHUP, and the CLI's behaviour on start-up errors and signals.
//!
//! PostgreSQL tests use `GALLEY_TEST_DATABASE_URL` (a fresh database per test) and are skipped
//! only when `GALLEY_SKIP_POSTGRES=1`.

use galley_store::testing::TempPgDatabase;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_galley");
const EMAIL: &str = "crash-admin@example.com";
const PASSWORD: &str = "Crash-Admin-Pass-123";
const WRITERS: usize = 8;
const LOAD: Duration = Duration::from_millis(1500);

/// `galley ARGS`, without any GALLEY_* settings inherited from the environment.
fn galley(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("GALLEY_DIR")
        .env_remove("GALLEY_HTTP")
        .env_remove("GALLEY_DATABASE_URL")
        .env_remove("GALLEY_POOL_SIZE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Copies everything a pipe produces into a shared string, on a thread of its own.
fn drain(pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let out = buf.clone();
    std::thread::spawn(move || {
        let mut pipe = pipe;
        let mut chunk = [0u8; 4096];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => out
                    .lock()
                    .expect("output buffer")
                    .push_str(&String::from_utf8_lossy(&chunk[..n])),
            }
        }
    });
    buf
}

/// A running `galley` process with its output captured.
struct Proc {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut child = galley(args).spawn().expect("spawn galley");
        let stdout = drain(child.stdout.take().expect("stdout"));
        let stderr = drain(child.stderr.take().expect("stderr"));
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().expect("stdout").clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr").clone()
    }

    /// Waits for the process to exit; `None` on timeout (the process keeps running).
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the drain threads read what is left in the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until stdout contains `needle`; panics (with the output) on exit or timeout.
    fn wait_stdout(&mut self, needle: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            let out = self.stdout();
            if out.contains(needle) {
                return out;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                std::thread::sleep(Duration::from_millis(50));
                panic!(
                    "galley exited ({status}) before printing {needle:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < end,
                "galley did not print {needle:?} within {timeout:?}\nstdout:\n{out}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reap.
    fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a command that should end by itself, with a time limit.
fn run(args: &[&str], timeout: Duration) -> (ExitStatus, String, String) {
    let mut p = Proc::spawn(args);
    let status = p.wait_exit(timeout).unwrap_or_else(|| {
        panic!(
            "galley {args:?} did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
            p.stdout(),
            p.stderr()
        )
    });
    (status, p.stdout(), p.stderr())
}

/// `--dir DIR [--database-url URL]`
fn data_args(dir: &Path, db: Option<&str>) -> Vec<String> {
    let mut v = vec!["--dir".to_owned(), dir.display().to_string()];
    if let Some(url) = db {
        v.push("--database-url".to_owned());
        v.push(url.to_owned());
    }
    v
}

fn upsert_superuser(dir: &Path, db: Option<&str>) {
    let mut args = vec!["superuser", "upsert", EMAIL, PASSWORD];
    let data = data_args(dir, db);
    args.extend(data.iter().map(String::as_str));
    let (status, out, err) = run(&args, Duration::from_secs(60));
    assert!(
        status.success(),
        "superuser upsert failed ({status})\nstdout:\n{out}\nstderr:\n{err}"
    );
}

/// A server on a free port; returns it with its base URL `http://127.0.0.1:PORT`.
fn start_server(dir: &Path, db: Option<&str>) -> (Proc, String) {
    let (p, url, _) = start_server_with(dir, db, &[]);
    (p, url)
}

/// [`start_server`] with more `serve` arguments; also returns what it printed at start.
fn start_server_with(dir: &Path, db: Option<&str>, extra: &[&str]) -> (Proc, String, String) {
    let mut args = vec!["serve", "--http", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let data = data_args(dir, db);
    args.extend(data.iter().map(String::as_str));
    let mut p = Proc::spawn(&args);
    let out = p.wait_stdout("/api/ (", Duration::from_secs(60));
    let url = address_after(&out, "serving on ");
    (p, url, out)
}

/// The address printed after `label` (up to `/api/`) in the server's start-up lines.
fn address_after(out: &str, label: &str) -> String {
    out.split(label)
        .nth(1)
        .and_then(|s| s.split("/api/").next())
        .unwrap_or_else(|| panic!("no {label:?} address in {out:?}"))
        .to_owned()
}

/// `mod NAME { sqlite, postgres }`: the async test body `f(Option<&str>)` once per engine
/// (PostgreSQL on a throwaway database, skipped only with GALLEY_SKIP_POSTGRES=1).
macro_rules! on_both_engines {
    ($name:ident, $f:path) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $f(None).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                // Declared first so it is dropped last, after the server processes.
                let Some(db) = TempPgDatabase::create().await else {
                    eprintln!("PostgreSQL test skipped (GALLEY_SKIP_POSTGRES=1)");
                    return;
                };
                $f(Some(db.url())).await;
            }
        }
    };
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client")
}

async fn superuser_token(client: &reqwest::Client, url: &str) -> String {
    let r = client
        .post(format!(
            "{url}/api/collections/_superusers/auth-with-password"
        ))
        .json(&json!({"identity": EMAIL, "password": PASSWORD}))
        .send()
        .await
        .expect("auth request");
    assert_eq!(r.status(), 200, "superuser login failed");
    let body: Value = r.json().await.expect("auth json");
    body["token"].as_str().expect("token").to_owned()
}

/// Every record of `collection` as id → (writer, seq), paging with perPage=1000&skipTotal=1.
async fn all_records(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    collection: &str,
) -> HashMap<String, (i64, i64)> {
    let mut out = HashMap::new();
    for page in 1.. {
        let r = client
            .get(format!(
                "{url}/api/collections/{collection}/records?page={page}&perPage=1000&skipTotal=1"
            ))
            .header("Authorization", token)
            .send()
            .await
            .expect("list request");
        assert_eq!(r.status(), 200, "list page {page} failed");
        let body: Value = r.json().await.expect("list json");
        assert_eq!(body["totalItems"], -1, "skipTotal gives -1");
        let items = body["items"].as_array().expect("items");
        for it in items {
            let id = it["id"].as_str().expect("id").to_owned();
            let key = (
                it["writer"].as_i64().expect("writer"),
                it["seq"].as_i64().expect("seq"),
            );
            assert!(
                out.insert(id.clone(), key).is_none(),
                "record {id} listed twice"
            );
        }
        if items.len() < 1000 {
            break;
        }
    }
    out
}

/// One writer: creates records as a guest (createRule "") until told to stop or the server
/// goes away; returns (id, seq) of every create answered with 200.
async fn writer(
    url: String,
    collection: String,
    writer: i64,
    stop: Arc<AtomicBool>,
) -> (Vec<(String, i64)>, usize) {
    let client = http();
    let mut acked = Vec::new();
    let mut failures = 0;
    let mut seq = 0i64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let body = json!({"writer": writer, "seq": seq, "payload": format!("w{writer}-s{seq}-{}", "x".repeat(200))});
        let sent = client
            .post(format!("{url}/api/collections/{collection}/records"))
            .json(&body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(_) => {
                // Killed server: connection refused/reset. Not acknowledged.
                failures += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        if resp.status() != 200 {
            failures += 1;
            continue;
        }
        // Acknowledged only once the whole body (with the id) has arrived.
        if let Ok(v) = resp.json::<Value>().await {
            if let Some(id) = v["id"].as_str() {
                acked.push((id.to_owned(), seq));
            }
        }
    }
    (acked, failures)
}

async fn kill9_keeps_acknowledged_writes(db: Option<&str>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    upsert_superuser(&data, db);
    let (mut server, url) = start_server(&data, db);
    let client = http();
    let token = superuser_token(&client, &url).await;

    let collection = "crash_load";
    let r = client
        .post(format!("{url}/api/collections"))
        .header("Authorization", &token)
        .json(&json!({
            "name": collection,
            "type": "base",
            "createRule": "",
            "fields": [
                {"name": "writer", "type": "number"},
                {"name": "seq", "type": "number"},
                {"name": "payload", "type": "text"},
            ],
        }))
        .send()
        .await
        .expect("create collection");
    assert_eq!(
        r.status(),
        200,
        "create collection: {}",
        r.text().await.unwrap_or_default()
    );

    // One guest create before the load, so a broken createRule fails here clearly.
    let r = client
        .post(format!("{url}/api/collections/{collection}/records"))
        .json(&json!({"writer": -1, "seq": 0, "payload": "probe"}))
        .send()
        .await
        .expect("probe create");
    assert_eq!(
        r.status(),
        200,
        "guest create with createRule \"\": {}",
        r.text().await.unwrap_or_default()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..WRITERS as i64)
        .map(|w| tokio::spawn(writer(url.clone(), collection.to_owned(), w, stop.clone())))
        .collect();
    tokio::time::sleep(LOAD).await;
    // kill -9 while the writers are still sending.
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let mut acked: Vec<(i64, String, i64)> = Vec::new();
    let mut failures = 0;
    for (w, t) in tasks.into_iter().enumerate() {
        let (ids, f) = t.await.expect("writer task");
        failures += f;
        acked.extend(ids.into_iter().map(|(id, seq)| (w as i64, id, seq)));
    }
    eprintln!(
        "crash test ({}): {} creates acknowledged before kill -9, {failures} failed or cut off",
        if db.is_some() { "PostgreSQL" } else { "SQLite" },
        acked.len()
    );
    assert!(
        acked.len() >= 2 * WRITERS,
        "too few writes acknowledged ({}) for a meaningful test",
        acked.len()
    );

    // Restart on the same data and check every acknowledged write.
    let (server2, url2) = start_server(&data, db);
    let token2 = superuser_token(&client, &url2).await;
    let stored = all_records(&client, &url2, &token2, collection).await;
    let missing: Vec<_> = acked
        .iter()
        .filter(|(_, id, _)| !stored.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged records are missing after kill -9 and restart, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    for (w, id, seq) in &acked {
        assert_eq!(
            stored[id],
            (*w, *seq),
            "record {id} has the wrong content after restart"
        );
    }
    // Not acknowledged creates may or may not be there; nothing else may be.
    assert!(
        stored.len() <= acked.len() + failures + 1,
        "more records than were ever sent"
    );

    // The restarted server takes writes.
    let r = client
        .post(format!("{url2}/api/collections/{collection}/records"))
        .json(&json!({"writer": -2, "seq": 0, "payload": "after restart"}))
        .send()
        .await
        .expect("create after restart");
    assert_eq!(r.status(), 200);
    drop(server2);
}

on_both_engines!(kill9, kill9_keeps_acknowledged_writes);

#[test]
fn version_flag_prints_the_version() {
    let (status, out, err) = run(&["--version"], Duration::from_secs(10));
    assert!(status.success(), "--version failed: {err}");
    assert_eq!(out.trim(), format!("galley {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn serve_on_a_port_in_use_fails_clearly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let (status, out, err) = run(
        &[
            "serve",
            "--http",
            &addr,
            "--dir",
            &data.display().to_string(),
        ],
        Duration::from_secs(30),
    );
    assert!(
        !status.success(),
        "serve on a taken port succeeded\nstdout:\n{out}"
    );
    assert!(err.contains("already in use"), "stderr: {err}");
    assert!(err.contains(&addr), "stderr should name {addr}: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
}

#[test]
fn serve_with_an_unwritable_dir_fails_clearly() {
    let (status, out, err) = run(
        &["serve", "--http", "127.0.0.1:0", "--dir", "/proc/forbidden"],
        Duration::from_secs(30),
    );
    assert!(
        !status.success(),
        "serve with --dir /proc/forbidden succeeded\nstdout:\n{out}"
    );
    assert!(
        err.contains("/proc/forbidden"),
        "stderr should name the directory: {err}"
    );
    assert!(!err.contains("panicked"), "stderr: {err}");
}

#[test]
fn first_start_without_superuser_says_how_to_create_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let (mut server, _url) = start_server(&data, None);
    let out = server.wait_stdout("galley superuser upsert", Duration::from_secs(30));
    assert!(
        out.contains(&format!("--dir {}", data.display())),
        "stdout: {out}"
    );
    drop(server);

    // Once there is a superuser, the hint is gone.
    upsert_superuser(&data, None);
    let (mut server, url) = start_server(&data, None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let status = rt.block_on(async {
        http()
            .get(format!("{url}/api/health"))
            .send()
            .await
            .expect("health")
            .status()
    });
    assert_eq!(status, 200);
    server.sigterm();
    assert!(
        server.wait_exit(Duration::from_secs(30)).is_some(),
        "no exit after SIGTERM"
    );
    assert!(
        !server.stdout().contains("superuser upsert"),
        "stdout: {}",
        server.stdout()
    );
}

#[test]
fn sigterm_shuts_down_gracefully_with_exit_code_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    upsert_superuser(&data, None);
    let (mut server, url) = start_server(&data, None);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The client keeps an idle keep-alive connection open across the signal: shutdown must
    // not wait for it forever.
    let client = http();
    rt.block_on(async {
        let token = superuser_token(&client, &url).await;
        let r = client
            .get(format!("{url}/api/collections?perPage=1"))
            .header("Authorization", &token)
            .send()
            .await
            .expect("list collections");
        assert_eq!(r.status(), 200);
    });
    server.sigterm();
    let status = server
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| {
            panic!(
                "galley did not exit within 30 s of SIGTERM\nstderr:\n{}",
                server.stderr()
            )
        });
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}\nstderr:\n{}",
        server.stderr()
    );
    assert!(
        !server.stderr().contains("panicked"),
        "stderr: {}",
        server.stderr()
    );
    drop(client);

    // The data survives a clean restart.
    let (server2, url2) = start_server(&data, None);
    rt.block_on(async {
        superuser_token(&http(), &url2).await;
    });
    drop(server2);
}

#[test]
fn unreachable_database_url_fails_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let url = "postgres://postgres@127.0.0.1:1/x";
    let (status, out, err) = run(
        &[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--dir",
            &data.display().to_string(),
            "--database-url",
            url,
        ],
        Duration::from_secs(60),
    );
    assert!(
        !status.success(),
        "serve with an unreachable database succeeded\nstdout:\n{out}"
    );
    assert!(
        !err.contains("panicked"),
        "a panic instead of an error message: {err}"
    );
    assert!(
        err.contains("127.0.0.1:1"),
        "stderr should name the server: {err}"
    );
    assert!(
        err.to_lowercase().contains("postgres"),
        "stderr should say it is PostgreSQL: {err}"
    );

    // The CLI commands fail the same way.
    let (status, _, err) = run(
        &[
            "superuser",
            "upsert",
            EMAIL,
            PASSWORD,
            "--dir",
            &data.display().to_string(),
            "--database-url",
            url,
        ],
        Duration::from_secs(60),
    );
    assert!(!status.success());
    assert!(!err.contains("panicked"), "stderr: {err}");
    assert!(err.contains("127.0.0.1:1"), "stderr: {err}");
}

on_both_engines!(https_on, https::https_serves_and_reloads);

/// HTTPS (`--https`, `--tls-cert`, `--tls-key`): served with the certificate given, a
/// renewed one taken on SIGHUP, a broken one refused while the old one stays, a client that
/// never finishes its handshake holds no one else up.
mod https {
    use super::*;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::sync::Arc as StdArc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Pair {
        cert_pem: String,
        key_pem: String,
        der: CertificateDer<'static>,
    }

    fn self_signed() -> Pair {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        Pair {
            cert_pem: c.cert.pem(),
            key_pem: c.key_pair.serialize_pem(),
            der: c.cert.der().clone(),
        }
    }

    fn write(dir: &Path, p: &Pair) {
        std::fs::write(dir.join("cert.pem"), &p.cert_pem).expect("cert");
        std::fs::write(dir.join("key.pem"), &p.key_pem).expect("key");
    }

    /// One TLS connection to `addr` (trusting `trusted`): the certificate the server showed
    /// and its answer to `GET path`.
    async fn get(addr: &str, trusted: &[&Pair], path: &str) -> (CertificateDer<'static>, String) {
        let mut roots = rustls::RootCertStore::empty();
        for p in trusted {
            roots.add(p.der.clone()).expect("root");
        }
        let provider = StdArc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(StdArc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut tls = connector
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("TLS handshake");
        let shown = tls.get_ref().1.peer_certificates().expect("certificate")[0].clone();
        tls.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("write");
        let mut answer = String::new();
        let _ = tls.read_to_string(&mut answer).await;
        (shown, answer)
    }

    pub(super) async fn https_serves_and_reloads(db: Option<&str>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (self_signed(), self_signed());
        write(dir.path(), &a);
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let tls = [
            "--https",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().expect("path"),
            "--tls-key",
            key.to_str().expect("path"),
        ];
        let (mut p, http_url, out) = start_server_with(&dir.path().join("data"), db, &tls);
        let addr = address_after(&out, "HTTPS: https://");

        let (shown, answer) = get(&addr, &[&a, &b], "/api/health").await;
        assert_eq!(shown, a.der, "the certificate given at start");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("API is healthy."), "{answer}");

        // A client that connects and never speaks TLS does not hold up the next one.
        let _silent = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let (_, answer) = get(&addr, &[&a, &b], "/api/health").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        // Renewed files, SIGHUP: new connections get the new certificate.
        write(dir.path(), &b);
        let hup = |pid: u32| {
            let s = Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .expect("kill -HUP");
            assert!(s.success());
        };
        hup(p.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (shown, answer) = get(&addr, &[&a, &b], "/api/health").await;
            if shown == b.der {
                assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "SIGHUP did not load the new certificate\nstderr:\n{}",
                p.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // A broken file: refused with its reason, the certificate in use stays, the server lives.
        std::fs::write(&cert, "not a certificate").expect("write");
        hup(p.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(p.stdout() + &p.stderr()).contains("TLS certificate not reloaded") {
            assert!(
                Instant::now() < deadline,
                "no error for the broken certificate\nstdout:\n{}\nstderr:\n{}",
                p.stdout(),
                p.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!((p.stdout() + &p.stderr()).contains("holds no PEM certificate"));
        let (shown, answer) = get(&addr, &[&a, &b], "/api/health").await;
        assert_eq!(shown, b.der);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        // The plain listener serves as before.
        let r = http()
            .get(format!("{http_url}/api/health"))
            .send()
            .await
            .expect("http");
        assert_eq!(r.status(), 200);
        p.sigterm();
        let status = p
            .wait_exit(Duration::from_secs(30))
            .expect("exit after SIGTERM");
        assert!(status.success(), "{status}");
    }

    #[test]
    fn bad_tls_arguments_fail_clearly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        // --https without its files: clap's usage error.
        let (status, _, err) = run(
            &[
                "serve",
                "--http",
                "127.0.0.1:0",
                "--https",
                "127.0.0.1:0",
                "--dir",
                &d,
            ],
            Duration::from_secs(30),
        );
        assert_eq!(status.code(), Some(2), "{err}");
        assert!(
            err.contains("--tls-cert") && err.contains("--tls-key"),
            "{err}"
        );
        // Files that are not there: what is wrong and what to do.
        let missing = dir.path().join("missing.pem");
        let m = missing.to_str().expect("path");
        let (status, out, err) = run(
            &[
                "serve",
                "--http",
                "127.0.0.1:0",
                "--https",
                "127.0.0.1:0",
                "--tls-cert",
                m,
                "--tls-key",
                m,
                "--dir",
                &d,
            ],
            Duration::from_secs(30),
        );
        assert!(!status.success(), "{out}");
        assert!(
            err.contains("cannot read")
                && err.contains("missing.pem")
                && err.contains("--tls-cert"),
            "{err}"
        );
        // A key that does not belong to the certificate.
        let (a, b) = (self_signed(), self_signed());
        std::fs::write(dir.path().join("a.pem"), &a.cert_pem).expect("write");
        std::fs::write(dir.path().join("b.key"), &b.key_pem).expect("write");
        let (ca, kb) = (dir.path().join("a.pem"), dir.path().join("b.key"));
        let (status, out, err) = run(
            &[
                "serve",
                "--http",
                "127.0.0.1:0",
                "--https",
                "127.0.0.1:0",
                "--tls-cert",
                ca.to_str().expect("p"),
                "--tls-key",
                kb.to_str().expect("p"),
                "--dir",
                &d,
            ],
            Duration::from_secs(30),
        );
        assert!(!status.success(), "{out}");
        assert!(err.contains("do not belong together"), "{err}");
    }
}

on_both_engines!(traces_on, traces::requests_are_traced);

/// Traces (`--otlp-endpoint`): exported over OTLP/HTTP to a receiver started here; a
/// request's span carries its route template and status, continues the caller's
/// `traceparent`, and has the database and rule spans as children.
mod traces {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use opentelemetry_proto::tonic::trace::v1::Span;
    use prost::Message;

    type Received = Arc<Mutex<Vec<Span>>>;

    /// An OTLP/HTTP receiver on a free port: its base URL and the spans it got.
    async fn receiver() -> (String, Received) {
        let got: Received = Arc::default();
        let sink = got.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let req = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut v = sink.lock().expect("spans");
                    for rs in req.resource_spans {
                        let service = rs
                            .resource
                            .iter()
                            .flat_map(|r| &r.attributes)
                            .any(|a| a.key == "service.name"
                                && matches!(&a.value.as_ref().and_then(|v| v.value.clone()), Some(Any::StringValue(s)) if s == "galley"));
                        assert!(service, "service.name galley");
                        for ss in rs.scope_spans {
                            v.extend(ss.spans);
                        }
                    }
                    ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(l, app).await });
        (url, got)
    }

    fn attr(span: &Span, key: &str) -> Option<Any> {
        span.attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref())
            .and_then(|v| v.value.clone())
    }

    pub(super) async fn requests_are_traced(db: Option<&str>) {
        let (otlp, got) = receiver().await;
        let dir = tempfile::tempdir().expect("tempdir");
        upsert_superuser(dir.path(), db);
        let (mut p, url, _) = start_server_with(dir.path(), db, &["--otlp-endpoint", &otlp]);
        let client = http();
        let token = superuser_token(&client, &url).await;
        let r = client
            .post(format!("{url}/api/collections"))
            .header("Authorization", &token)
            .json(&json!({"name": "notes", "listRule": "id != ''", "fields": [{"name": "t", "type": "text"}]}))
            .send()
            .await
            .expect("create collection");
        assert_eq!(r.status(), 200);

        let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let parent_id = "00f067aa0ba902b7";
        let r = client
            .get(format!("{url}/api/collections/notes/records"))
            .header("traceparent", format!("00-{trace_id}-{parent_id}-01"))
            .send()
            .await
            .expect("list");
        assert_eq!(r.status(), 200);
        // Untraced callers get a trace of their own.
        let r = client
            .get(format!("{url}/api/collections/nope/records"))
            .send()
            .await
            .expect("404");
        assert_eq!(r.status(), 404);

        // SIGTERM flushes what the exporter still holds.
        p.sigterm();
        let status = p.wait_exit(Duration::from_secs(30)).expect("exit");
        assert!(status.success(), "{status}\n{}", p.stderr());
        let deadline = Instant::now() + Duration::from_secs(10);
        let spans = loop {
            let spans = got.lock().expect("spans").clone();
            if spans.iter().any(|s| {
                s.name == "GET /api/collections/{collection}/records"
                    && hex(&s.trace_id) == trace_id
            }) || Instant::now() > deadline
            {
                break spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        let req = spans
            .iter()
            .find(|s| {
                s.name == "GET /api/collections/{collection}/records"
                    && hex(&s.trace_id) == trace_id
            })
            .unwrap_or_else(|| panic!("no request span in {names:?}"));
        assert_eq!(
            hex(&req.parent_span_id),
            parent_id,
            "continues the caller's trace"
        );
        assert_eq!(req.kind, 2, "SPAN_KIND_SERVER");
        assert_eq!(
            attr(req, "http.route"),
            Some(Any::StringValue(
                "/api/collections/{collection}/records".into()
            ))
        );
        assert_eq!(
            attr(req, "http.request.method"),
            Some(Any::StringValue("GET".into()))
        );
        assert_eq!(
            attr(req, "http.response.status_code"),
            Some(Any::IntValue(200))
        );
        let children: Vec<&Span> = spans
            .iter()
            .filter(|s| s.parent_span_id == req.span_id)
            .collect();
        let child_names: Vec<&str> = children.iter().map(|s| s.name.as_str()).collect();
        assert!(child_names.contains(&"rule"), "{child_names:?}");
        let read = children
            .iter()
            .find(|s| s.name == "db.read")
            .unwrap_or_else(|| panic!("{child_names:?}"));
        let system = if db.is_some() { "postgresql" } else { "sqlite" };
        assert_eq!(
            attr(read, "db.system"),
            Some(Any::StringValue(system.into()))
        );
        assert!(read.end_time_unix_nano >= read.start_time_unix_nano);
        assert!(req.end_time_unix_nano >= read.end_time_unix_nano);

        let other = spans
            .iter()
            .find(|s| {
                s.name == "GET /api/collections/{collection}/records"
                    && attr(s, "http.response.status_code") == Some(Any::IntValue(404))
            })
            .unwrap_or_else(|| panic!("no span for the 404 in {names:?}"));
        assert_ne!(hex(&other.trace_id), trace_id);
        assert!(other.parent_span_id.is_empty(), "a root span");
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn a_bad_endpoint_fails_clearly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        let (status, _, err) = run(
            &[
                "serve",
                "--http",
                "127.0.0.1:0",
                "--otlp-endpoint",
                "collector:4318",
                "--dir",
                &d,
            ],
            Duration::from_secs(30),
        );
        assert!(!status.success());
        assert!(err.contains("not an http(s) URL"), "{err}");
    }
}
