//! Prometheus metrics with OpenTelemetry's semantic names: the HTTP server
//! (`http_server_request_duration_seconds` by method, route template and status;
//! `http_server_active_requests`), the store, realtime, the log store and the process.
//!
//! The request path only touches atomics and two read locks on maps that stop growing
//! (their keys are the route templates, methods and statuses, all bounded); everything
//! else is read when Prometheus scrapes, from the services' own counters.

use crate::logs::Logs;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use galley_core::App;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// OpenTelemetry's recommended boundaries for `http.server.request.duration` (seconds).
const BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Methods outside these are counted as `_OTHER` (OpenTelemetry's rule), so a client cannot
/// grow the label set.
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "_OTHER",
];

#[derive(Default)]
struct Histogram {
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn record(&self, secs: f64, nanos: u64) {
        let i = BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }
}

/// (method index, status) → its histogram.
type Series = Vec<((u8, u16), Arc<Histogram>)>;

/// The series of one route template.
#[derive(Default)]
struct Route {
    series: RwLock<Series>,
}

impl Route {
    fn histogram(&self, key: (u8, u16)) -> Arc<Histogram> {
        if let Ok(s) = self.series.read() {
            if let Some((_, h)) = s.iter().find(|(k, _)| *k == key) {
                return h.clone();
            }
        }
        let Ok(mut s) = self.series.write() else {
            return Arc::default();
        };
        if let Some((_, h)) = s.iter().find(|(k, _)| *k == key) {
            return h.clone();
        }
        let h = Arc::new(Histogram::default());
        s.push((key, h.clone()));
        h
    }
}

/// The HTTP server's metrics of one server.
pub struct Metrics {
    active: AtomicI64,
    routes: RwLock<HashMap<Box<str>, Arc<Route>>>,
    started: std::time::SystemTime,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            active: AtomicI64::new(0),
            routes: RwLock::new(HashMap::new()),
            started: std::time::SystemTime::now(),
        }
    }
}

fn method_index(m: &axum::http::Method) -> u8 {
    METHODS
        .iter()
        .position(|x| *x == m.as_str())
        .unwrap_or(METHODS.len() - 1) as u8
}

/// Decrements the active count however the request ends (a dropped connection included).
struct Active<'a>(&'a AtomicI64);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn route(&self, template: &str) -> Arc<Route> {
        if let Ok(m) = self.routes.read() {
            if let Some(r) = m.get(template) {
                return r.clone();
            }
        }
        let Ok(mut m) = self.routes.write() else {
            return Arc::default();
        };
        m.entry(template.into()).or_default().clone()
    }

    fn observe(&self, template: &str, method: u8, status: u16, elapsed: std::time::Duration) {
        let nanos = elapsed.as_nanos().min(u64::MAX as u128) as u64;
        self.route(template)
            .histogram((method, status))
            .record(elapsed.as_secs_f64(), nanos);
    }

    /// The exposition text: this server's HTTP metrics, then what `app` and `logs` report.
    /// The text of a scrape; `jobs_by_state` is the queue's count per state (a query the
    /// caller made, [`galley_jobs::Jobs::counts`]; `None` when it did not answer in time).
    pub fn render(
        &self,
        app: &App,
        logs: Option<&Logs>,
        jobs_by_state: Option<&[(String, i64)]>,
    ) -> String {
        let mut out = String::with_capacity(8192);
        self.render_http(&mut out);
        render_store(&mut out, app);
        render_realtime(&mut out, app);
        render_jobs(&mut out, app, jobs_by_state);
        if let Some(l) = logs {
            counter(
                &mut out,
                "galley_logs_written_total",
                "Log entries written to the log store.",
                l.written(),
            );
            counter(
                &mut out,
                "galley_logs_dropped_total",
                "Log entries dropped because the log queue was full.",
                l.dropped(),
            );
        }
        render_process(&mut out, self.started);
        out
    }

    fn render_http(&self, out: &mut String) {
        out.push_str("# HELP http_server_request_duration_seconds Duration of HTTP server requests.\n# TYPE http_server_request_duration_seconds histogram\n");
        let mut routes: Vec<(String, Arc<Route>)> = match self.routes.read() {
            Ok(m) => m.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            Err(_) => Vec::new(),
        };
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        for (template, route) in routes {
            let mut series: Series = match route.series.read() {
                Ok(s) => s.clone(),
                Err(_) => continue,
            };
            series.sort_by_key(|(k, _)| *k);
            for ((m, status), h) in series {
                let labels = format!(
                    "http_request_method=\"{}\",http_route=\"{}\",http_response_status_code=\"{status}\"",
                    METHODS[m as usize],
                    escape(&template)
                );
                let mut cumulative = 0u64;
                for (i, b) in h.buckets.iter().enumerate() {
                    cumulative += b.load(Relaxed);
                    let le = BOUNDS
                        .get(i)
                        .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
                    let _ = writeln!(
                        out,
                        "http_server_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(
                    out,
                    "http_server_request_duration_seconds_sum{{{labels}}} {}",
                    h.sum_nanos.load(Relaxed) as f64 / 1e9
                );
                let _ = writeln!(
                    out,
                    "http_server_request_duration_seconds_count{{{labels}}} {}",
                    h.count.load(Relaxed)
                );
            }
        }
        gauge(
            out,
            "http_server_active_requests",
            "HTTP requests being served.",
            self.active.load(Relaxed) as f64,
        );
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn gauge(out: &mut String, name: &str, help: &str, v: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
}

fn render_store(out: &mut String, app: &App) {
    let s = app.store_stats();
    gauge(
        out,
        "galley_store_write_queue_depth",
        "Write jobs waiting (SQLite: for the writer thread; PostgreSQL: callers waiting for a pooled connection).",
        s.write_queue as f64,
    );
    gauge(
        out,
        "galley_store_read_queue_depth",
        "Read jobs waiting for a reader connection (SQLite).",
        s.read_queue as f64,
    );
    counter(
        out,
        "galley_store_write_transactions_total",
        "Write transactions (SQLite: group commits; PostgreSQL: one per job).",
        s.write_groups,
    );
    counter(
        out,
        "galley_store_write_jobs_total",
        "Write jobs run (divided by galley_store_write_transactions_total: the mean group-commit size).",
        s.write_jobs,
    );
    if s.pool_max > 0 {
        gauge(
            out,
            "galley_store_pool_connections",
            "PostgreSQL pool connections open.",
            s.pool_size as f64,
        );
        gauge(
            out,
            "galley_store_pool_idle_connections",
            "PostgreSQL pool connections idle.",
            s.pool_idle as f64,
        );
        gauge(
            out,
            "galley_store_pool_max_connections",
            "PostgreSQL pool size limit.",
            s.pool_max as f64,
        );
    }
}

fn render_realtime(out: &mut String, app: &App) {
    let h = app.realtime.stats();
    gauge(
        out,
        "galley_realtime_clients",
        "Realtime clients connected (SSE and WebSocket).",
        h.clients as f64,
    );
    gauge(
        out,
        "galley_realtime_queued_messages",
        "Realtime messages queued for clients.",
        h.queued as f64,
    );
    counter(
        out,
        "galley_realtime_dropped_clients_total",
        "Realtime clients dropped because they did not keep up.",
        h.dropped,
    );
}

fn render_jobs(out: &mut String, app: &App, by_state: Option<&[(String, i64)]>) {
    let j = app.jobs().stats();
    gauge(
        out,
        "galley_jobs_running",
        "Job handlers running on this node.",
        j.running as f64,
    );
    let name = "galley_jobs_runs_total";
    let _ = writeln!(
        out,
        "# HELP {name} Job runs finished on this node, by outcome (retried: failed and queued again; dead: failed for good).\n# TYPE {name} counter"
    );
    for (outcome, v) in [
        ("succeeded", j.succeeded),
        ("retried", j.retried),
        ("dead", j.dead),
    ] {
        let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {v}");
    }
    if let Some(states) = by_state {
        let name = "galley_jobs";
        let _ = writeln!(
            out,
            "# HELP {name} Jobs in the queue by state (all nodes).\n# TYPE {name} gauge"
        );
        // Every state appears, so a dashboard's series do not vanish at zero.
        for state in ["queued", "running", "dead"] {
            let n = states
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "{name}{{state=\"{state}\"}} {n}");
        }
    }
}

/// Linux's `/proc/self`; nothing on other systems.
fn render_process(out: &mut String, started: std::time::SystemTime) {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
        };
        if let Some(rss) = kib("VmRSS:") {
            gauge(
                out,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                (rss * 1024) as f64,
            );
        }
        if let Some(vm) = kib("VmSize:") {
            gauge(
                out,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                (vm * 1024) as f64,
            );
        }
        if let Some(t) = kib("Threads:") {
            gauge(out, "process_threads", "OS threads.", t as f64);
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may hold spaces) start at `state`.
        if let Some(rest) = stat.rsplit_once(')').map(|x| x.1) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of stat, 12 and 13 here; USER_HZ is 100.
            let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
            let secs = (ticks(11) + ticks(12)) as f64 / 100.0;
            let _ = writeln!(
                out,
                "# HELP process_cpu_seconds_total User and system CPU time in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {secs}"
            );
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            out,
            "process_open_fds",
            "Open file descriptors.",
            dir.count() as f64,
        );
    }
    if let Ok(d) = started.duration_since(std::time::UNIX_EPOCH) {
        gauge(
            out,
            "process_start_time_seconds",
            "When the server started, in seconds since the Unix epoch.",
            d.as_secs_f64(),
        );
    }
}

/// The layer: counts the request as active while it runs and records its duration under
/// its route template (axum's `MatchedPath`; empty when no route matched).
pub async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_index(req.method());
    let template = req.extensions().get::<MatchedPath>().cloned();
    m.active.fetch_add(1, Relaxed);
    let _active = Active(&m.active);
    let res = next.run(req).await;
    let route = template.as_ref().map_or("", |t| t.as_str());
    m.observe(route, method, res.status().as_u16(), start.elapsed());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_bucket_and_render() {
        let m = Metrics::new();
        m.observe("/api/x/{id}", 0, 200, std::time::Duration::from_millis(3));
        m.observe("/api/x/{id}", 0, 200, std::time::Duration::from_millis(300));
        m.observe("/api/x/{id}", 1, 404, std::time::Duration::from_secs(20));
        let mut out = String::new();
        m.render_http(&mut out);
        let l = "http_request_method=\"GET\",http_route=\"/api/x/{id}\",http_response_status_code=\"200\"";
        assert!(
            out.contains(&format!(
                "http_server_request_duration_seconds_bucket{{{l},le=\"0.005\"}} 1\n"
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "http_server_request_duration_seconds_bucket{{{l},le=\"0.25\"}} 1\n"
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "http_server_request_duration_seconds_bucket{{{l},le=\"0.5\"}} 2\n"
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "http_server_request_duration_seconds_count{{{l}}} 2\n"
            )),
            "{out}"
        );
        assert!(out.contains("http_request_method=\"POST\",http_route=\"/api/x/{id}\",http_response_status_code=\"404\",le=\"+Inf\"} 1\n"), "{out}");
        assert!(out.contains("http_server_active_requests 0\n"));
        assert_eq!(
            method_index(&axum::http::Method::from_bytes(b"BREW").expect("method")),
            7
        );
    }

    /// The per-request upkeep, measured: a few hundred nanoseconds at most (debug builds
    /// are slower; the figure that counts is the release one in BENCHMARKS.md).
    #[test]
    fn upkeep_counts_every_request() {
        // Its cost is measured by bench/ (BENCHMARKS.md, Operations), not here.
        let m = Metrics::new();
        let d = std::time::Duration::from_micros(700);
        let route = "/api/collections/{collection}/records/{id}";
        for _ in 0..1000u32 {
            m.active.fetch_add(1, Relaxed);
            let _a = Active(&m.active);
            m.observe(route, 0, 200, d);
        }
        assert_eq!(m.active.load(Relaxed), 0);
        let text = {
            let mut out = String::new();
            m.render_http(&mut out);
            out
        };
        assert!(
            text.contains(&format!("http_server_request_duration_seconds_count{{http_request_method=\"GET\",http_route=\"{route}\",http_response_status_code=\"200\"}} 1000")),
            "{text}"
        );
    }
}
