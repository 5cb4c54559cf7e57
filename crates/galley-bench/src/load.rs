//! The load generator: a fixed number of workers, each looping one kind of request for a fixed
//! duration over a shared keep-alive connection pool, recording every latency.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The workloads, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    View,
    List,
    Filter,
    Create,
    Update,
    Auth,
    /// A `routerAdd` GET route of the hook file returning JSON (bench/hooks).
    HookRoute,
    /// Create through a pass-through `onRecordCreateRequest` hook (collection `hposts`).
    HookCreate,
    /// The HTTP ceiling: `GET /` on the fixed-JSON axum server.
    FixedJson,
}

impl Workload {
    pub const SERVER: [Workload; 8] = [
        Workload::View,
        Workload::List,
        Workload::Filter,
        Workload::Create,
        Workload::Update,
        Workload::Auth,
        Workload::HookRoute,
        Workload::HookCreate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::View => "view",
            Workload::List => "list",
            Workload::Filter => "filter+sort",
            Workload::Create => "create",
            Workload::Update => "update",
            Workload::Auth => "auth",
            Workload::HookRoute => "hook-route",
            Workload::HookCreate => "hook-create",
            Workload::FixedJson => "fixed-json",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Workload::View => "GET /api/collections/posts/records/{random seeded id}",
            Workload::List => "GET /api/collections/posts/records?page=1&perPage=20 (with total count)",
            Workload::Filter => {
                "GET /api/collections/posts/records?perPage=20&filter=(published=true && views>=500)&sort=-views,title (with total count)"
            }
            Workload::Create => "POST /api/collections/posts/records {title, body(~240 B), views, published}",
            Workload::Update => "PATCH /api/collections/posts/records/{random seeded id} {views, title}",
            Workload::Auth => "POST /api/collections/_superusers/auth-with-password",
            Workload::HookRoute => {
                "GET /bench/hello/{n}: a routerAdd handler of the same hook file returning JSON"
            }
            Workload::HookCreate => {
                "POST /api/collections/hposts/records (as create) through a pass-through onRecordCreateRequest hook"
            }
            Workload::FixedJson => "GET / on a minimal axum handler returning a fixed JSON",
        }
    }

    pub fn parse(s: &str) -> Option<Workload> {
        Workload::SERVER
            .into_iter()
            .find(|w| w.name() == s || (s == "filter" && *w == Workload::Filter))
    }
}

/// What the workers need to build their requests.
pub struct Ctx {
    pub base: String,
    pub ids: Arc<Vec<String>>,
    pub email: String,
    pub password: String,
}

pub const FILTER_QUERY: &str =
    "page=1&perPage=20&filter=%28published%3Dtrue%20%26%26%20views%3E%3D500%29&sort=-views%2Ctitle";

pub fn post_body(i: u64) -> serde_json::Value {
    serde_json::json!({
        "title": format!("Post number {i}"),
        "body": format!(
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore \
             magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo \
             consequat. #{i}"
        ),
        "views": (i * 7919) % 1000,
        "published": i.is_multiple_of(2),
    })
}

fn request(
    client: &reqwest::Client,
    w: Workload,
    ctx: &Ctx,
    rng: &mut StdRng,
) -> reqwest::RequestBuilder {
    let recs = format!("{}/api/collections/posts/records", ctx.base);
    let pick = |rng: &mut StdRng| &ctx.ids[rng.gen_range(0..ctx.ids.len())];
    match w {
        Workload::View => client.get(format!("{recs}/{}", pick(rng))),
        Workload::List => client.get(format!("{recs}?page=1&perPage=20")),
        Workload::Filter => client.get(format!("{recs}?{FILTER_QUERY}")),
        Workload::Create => client
            .post(recs)
            .json(&post_body(rng.gen_range(0..1_000_000))),
        Workload::Update => {
            let id = pick(rng);
            let n: u32 = rng.gen_range(0..1000);
            client
                .patch(format!("{recs}/{id}"))
                .json(&serde_json::json!({"views": n, "title": format!("Updated {n}")}))
        }
        Workload::Auth => client
            .post(format!(
                "{}/api/collections/_superusers/auth-with-password",
                ctx.base
            ))
            .json(&serde_json::json!({"identity": ctx.email, "password": ctx.password})),
        Workload::HookRoute => client.get(format!(
            "{}/bench/hello/{}",
            ctx.base,
            rng.gen_range(0..1000)
        )),
        Workload::HookCreate => client
            .post(format!("{}/api/collections/hposts/records", ctx.base))
            .json(&post_body(rng.gen_range(0..1_000_000))),
        Workload::FixedJson => client.get(format!("{}/", ctx.base)),
    }
}

/// Latency summary of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub errors: u64,
    /// 429 answers (rate limits), counted apart from `errors`.
    pub rate_limited: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl Stats {
    pub fn from_latencies(
        mut lat_us: Vec<u32>,
        errors: u64,
        rate_limited: u64,
        seconds: f64,
        first_error: Option<String>,
    ) -> Stats {
        lat_us.sort_unstable();
        let pct = |p: f64| -> f64 {
            if lat_us.is_empty() {
                return 0.0;
            }
            let i = ((lat_us.len() as f64 * p).ceil() as usize).clamp(1, lat_us.len()) - 1;
            f64::from(lat_us[i]) / 1000.0
        };
        let requests = lat_us.len() as u64 + errors + rate_limited;
        Stats {
            requests,
            errors,
            rate_limited,
            seconds,
            rps: if seconds > 0.0 {
                lat_us.len() as f64 / seconds
            } else {
                0.0
            },
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            max_ms: lat_us.last().map(|v| f64::from(*v) / 1000.0).unwrap_or(0.0),
            first_error,
        }
    }
}

struct WorkerOut {
    lat_us: Vec<u32>,
    errors: u64,
    limited: u64,
    first_error: Option<String>,
}

/// Runs `w` with `concurrency` workers: `warmup` unrecorded, then `duration` recorded. Only
/// successful (2xx, body read) requests completed inside the recorded window count towards
/// req/s and latencies; workers start no request after the window.
pub async fn run(
    client: &reqwest::Client,
    ctx: Arc<Ctx>,
    w: Workload,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> Stats {
    let start = Instant::now();
    let record_from = start + warmup;
    let end = record_from + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let client = client.clone();
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(0x9e37_79b9 ^ worker as u64);
            let mut out = WorkerOut {
                lat_us: Vec::with_capacity(4096),
                errors: 0,
                limited: 0,
                first_error: None,
            };
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let res = request(&client, w, &ctx, &mut rng).send().await;
                let err = match res {
                    Ok(r) => {
                        let status = r.status();
                        match r.bytes().await {
                            Ok(_) if status.is_success() => None,
                            Ok(b) => Some(format!(
                                "HTTP {status}: {}",
                                String::from_utf8_lossy(&b[..b.len().min(300)])
                            )),
                            Err(e) => Some(format!("reading body: {e}")),
                        }
                    }
                    Err(e) => Some(format!("request: {e}")),
                };
                let t1 = Instant::now();
                // A request counts when it completes inside the recorded window (so slow
                // requests such as password hashing under load are counted too).
                if t1 < record_from || t1 > end {
                    continue;
                }
                match err {
                    Some(e) if e.starts_with("HTTP 429") => out.limited += 1,
                    None => out
                        .lat_us
                        .push(u32::try_from(t1.duration_since(t0).as_micros()).unwrap_or(u32::MAX)),
                    Some(e) => {
                        out.errors += 1;
                        if out.first_error.is_none() {
                            out.first_error = Some(e);
                        }
                        // Do not spin on a dead server.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            out
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut limited = 0;
    let mut first_error = None;
    for t in tasks {
        if let Ok(o) = t.await {
            lat.extend(o.lat_us);
            errors += o.errors;
            limited += o.limited;
            if first_error.is_none() {
                first_error = o.first_error;
            }
        }
    }
    Stats::from_latencies(lat, errors, limited, duration.as_secs_f64(), first_error)
}

/// Reads VmRSS (resident now) of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:")
}

/// Reads VmHWM (peak resident over the process lifetime), in KiB.
pub fn hwm_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmHWM:")
}

fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Samples VmRSS of `pid` every 50 ms until `stop`; returns the highest value seen.
pub fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut max = 0;
        while !stop.load(Ordering::Relaxed) {
            max = max.max(rss_kib(pid).unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        max.max(rss_kib(pid).unwrap_or(0))
    })
}
