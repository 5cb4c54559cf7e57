//! Starting, seeding and stopping the servers under test.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const EMAIL: &str = "bench@example.com";
pub const PASSWORD: &str = "Bench-Pass-12345";
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    GalleySqlite,
    GalleyPostgres,
    PocketBase,
    /// The HTTP ceiling server (`galley-bench fixed-json-server`).
    Ceiling,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::GalleySqlite => "galley-sqlite",
            Kind::GalleyPostgres => "galley-pg",
            Kind::PocketBase => "pocketbase",
            Kind::Ceiling => "axum-ceiling",
        }
    }
}

pub struct Server {
    pub kind: Kind,
    pub base: String,
    pub child: Child,
    pub ids: Arc<Vec<String>>,
    pub idle_rss_kib: u64,
    /// Database created for this run (PostgreSQL), dropped on stop.
    pub pg_db: Option<String>,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, wait up to 5 s, then SIGKILL; drops the run's PostgreSQL database.
    pub fn stop(&mut self) {
        let pid = self.child.id();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let t0 = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if t0.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        if let Some(db) = self.pg_db.take() {
            if let Err(e) = psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")) {
                eprintln!("warning: could not drop PostgreSQL database {db}: {e:#}");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) || self.pg_db.is_some() {
            self.stop();
        }
    }
}

pub fn psql(sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            PG_ADMIN_URL,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .context("running psql (is the PostgreSQL client installed?)")?;
    if !out.status.success() {
        bail!(
            "psql -c {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(l.local_addr()?.port())
}

fn run_checked(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child> {
    let f = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let f2 = f.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(f)
        .stderr(f2)
        .spawn()
        .context("spawning server")
}

/// The hook file every server runs (Galley `--hooks-dir`, PocketBase `--hooksDir`), for the
/// hook workloads: one route, one pass-through request hook.
pub const HOOKS_JS: &str = r#"routerAdd("GET", "/bench/hello/{name}", (e) => {
    return e.json(200, { message: "Hello " + e.request.pathValue("name") })
})
onRecordCreateRequest((e) => e.next(), "hposts")
"#;

fn hooks_dir(work: &Path) -> Result<String> {
    let d = work.join("hooks");
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join("bench.pb.js"), HOOKS_JS)?;
    Ok(d.display().to_string())
}

/// Starts one server (superuser created first) and waits for /api/health.
pub async fn start(
    kind: Kind,
    bin: &Path,
    work: &Path,
    run_id: &str,
) -> Result<(Child, String, Option<String>)> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let dir = work.join(kind.name());
    std::fs::create_dir_all(&dir)?;
    let log = work.join(format!("{}.log", kind.name()));
    let mut pg_db = None;
    let child = match kind {
        Kind::GalleySqlite | Kind::GalleyPostgres => {
            let data = dir.join("galley_data");
            let mut extra: Vec<String> = vec!["--dir".into(), data.display().to_string()];
            if kind == Kind::GalleyPostgres {
                let db = format!("galley_bench_{run_id}");
                psql(&format!("CREATE DATABASE {db}"))
                    .context("creating the benchmark database")?;
                pg_db = Some(db.clone());
                extra.push("--database-url".into());
                extra.push(format!("postgres://postgres@127.0.0.1:5432/{db}"));
            }
            run_checked(
                Command::new(bin)
                    .args(["superuser", "upsert", EMAIL, PASSWORD])
                    .args(&extra),
                "galley superuser upsert",
            )?;
            spawn_logged(
                Command::new(bin)
                    .args(["serve", "--http", &addr, "--hooks-dir", &hooks_dir(work)?])
                    .args(&extra),
                &log,
            )?
        }
        Kind::PocketBase => {
            let data = dir.join("pb_data").display().to_string();
            let mig = dir.join("pb_migrations").display().to_string();
            run_checked(
                Command::new(bin).args([
                    "superuser",
                    "upsert",
                    EMAIL,
                    PASSWORD,
                    "--dir",
                    &data,
                    "--migrationsDir",
                    &mig,
                ]),
                "pocketbase superuser upsert",
            )?;
            spawn_logged(
                Command::new(bin).args([
                    "serve",
                    "--http",
                    &addr,
                    "--dir",
                    &data,
                    "--migrationsDir",
                    &mig,
                    "--automigrate=false",
                    "--hooksDir",
                    &hooks_dir(work)?,
                ]),
                &log,
            )?
        }
        Kind::Ceiling => spawn_logged(
            Command::new(bin).args(["fixed-json-server", "--http", &addr]),
            &log,
        )?,
    };
    let base = format!("http://{addr}");
    let mut child = child;
    let health = if kind == Kind::Ceiling {
        format!("{base}/")
    } else {
        format!("{base}/api/health")
    };
    let client = reqwest::Client::new();
    let t0 = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(db) = &pg_db {
                let _ = psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
            }
            bail!(
                "{} exited ({st}) before it was ready; log {}:\n{tail}",
                kind.name(),
                log.display()
            );
        }
        if let Ok(r) = client.get(&health).send().await {
            if r.status().is_success() {
                break;
            }
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            bail!(
                "{} was not ready on {health} after 60 s; log {}",
                kind.name(),
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((child, base, pg_db))
}

pub async fn superuser_token(client: &reqwest::Client, base: &str) -> Result<String> {
    let r = client
        .post(format!(
            "{base}/api/collections/_superusers/auth-with-password"
        ))
        .json(&serde_json::json!({"identity": EMAIL, "password": PASSWORD}))
        .send()
        .await?;
    let status = r.status();
    let v: serde_json::Value = r.json().await?;
    match v.get("token").and_then(|t| t.as_str()) {
        Some(t) if status.is_success() => Ok(t.to_owned()),
        _ => bail!("superuser login on {base} failed: {status} {v}"),
    }
}

/// Creates the posts collection (public rules) and `n` records with `parallel` concurrent
/// creates; returns the ids.
pub async fn seed(
    client: &reqwest::Client,
    base: &str,
    n: u64,
    parallel: u64,
) -> Result<Vec<String>> {
    let token = superuser_token(client, base).await?;
    let schema = serde_json::json!({
        "name": "posts",
        "type": "base",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "body", "type": "text"},
            {"name": "views", "type": "number"},
            {"name": "published", "type": "bool"},
        ],
    });
    let r = client
        .post(format!("{base}/api/collections"))
        .header("Authorization", &token)
        .json(&schema)
        .send()
        .await?;
    if !r.status().is_success() {
        let st = r.status();
        bail!(
            "creating the posts collection on {base}: {st} {}",
            r.text().await.unwrap_or_default()
        );
    }
    // The same collection under another name, written through a pass-through request hook.
    let mut hposts = schema.clone();
    hposts["name"] = serde_json::json!("hposts");
    let r = client
        .post(format!("{base}/api/collections"))
        .header("Authorization", &token)
        .json(&hposts)
        .send()
        .await?;
    if !r.status().is_success() {
        let st = r.status();
        bail!(
            "creating the hposts collection on {base}: {st} {}",
            r.text().await.unwrap_or_default()
        );
    }
    // PocketBase's default; ask Galley for the same (a server without the setting may refuse).
    let r = client
        .patch(format!("{base}/api/settings"))
        .header("Authorization", &token)
        .json(&serde_json::json!({"rateLimits": {"enabled": false}}))
        .send()
        .await?;
    if !r.status().is_success() {
        eprintln!(
            "[bench] note: {base} refused PATCH /api/settings rateLimits.enabled=false ({})",
            r.status()
        );
    }
    let mut tasks = Vec::new();
    for w in 0..parallel {
        let client = client.clone();
        let url = format!("{base}/api/collections/posts/records");
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut i = w;
            while i < n {
                let r = client
                    .post(&url)
                    .json(&crate::load::post_body(i))
                    .send()
                    .await?;
                let st = r.status();
                let v: serde_json::Value = r.json().await?;
                match v.get("id").and_then(|x| x.as_str()) {
                    Some(id) if st.is_success() => ids.push(id.to_owned()),
                    _ => bail!("seeding record {i}: {st} {v}"),
                }
                i += parallel;
            }
            Ok::<_, anyhow::Error>(ids)
        }));
    }
    let mut ids = Vec::with_capacity(n as usize);
    for t in tasks {
        ids.extend(t.await??);
    }
    Ok(ids)
}

pub fn work_dir(root: &Path) -> Result<PathBuf> {
    let d = root.join(format!("run-{}", std::process::id()));
    if d.exists() {
        std::fs::remove_dir_all(&d)?;
    }
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
