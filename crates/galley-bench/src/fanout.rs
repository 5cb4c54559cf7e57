//! SSE fan-out: N subscribers on `GET /api/realtime`, each subscribed to `posts/*`, then
//! records created at a steady rate; every (event, subscriber) delivery is timed.
//!
//! The subscribers are raw TCP streams with a hand-rolled HTTP/1.1 response reader (chunked
//! decoding and a scan for the event marker), one small task each, so that 10,000 of them
//! fit beside the server on two cores: a full HTTP client per stream would cost more CPU and
//! memory than the server under test.

use crate::load::{self, Stats};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};

#[derive(Clone, Debug)]
pub struct Plan {
    pub subscribers: usize,
    pub events: usize,
    /// Creates per second.
    pub rate: f64,
    /// Connections being opened (and subscribed) at once.
    pub connect_parallel: usize,
}

/// The figures of one fan-out run against one server.
#[derive(Clone, Debug, Serialize)]
pub struct FanoutRow {
    pub target: String,
    pub subscribers: usize,
    /// Subscribers that connected and subscribed (the rest failed; see `first_error`).
    pub subscribed: usize,
    pub events: usize,
    pub rate_per_s: f64,
    /// Creates per second the writer actually achieved.
    pub achieved_rate_per_s: f64,
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub lost: u64,
    /// Streams the server ended before the last event (e.g. dropped as too slow).
    pub streams_ended_early: usize,
    /// Delivery latency over all (event, subscriber) pairs, from the create's response (the
    /// commit is before it): deliveries that beat the response count as 0.
    pub latency: Stats,
    /// Of those, how many arrived before the writer had the create's response.
    pub before_response: u64,
    /// The same pairs, from the moment the create request was sent: the fair comparison,
    /// since PocketBase broadcasts before it answers the create and Galley after.
    pub latency_from_request: Stats,
    /// Per event, the time until its last subscriber had it (from the create request).
    pub last_subscriber: Stats,
    /// The writer's creates.
    pub create: Stats,
    /// Seconds from the first connect to all subscribers subscribed.
    pub connect_all_s: f64,
    /// Per subscriber: TCP connect until `PB_CONNECT` was read.
    pub connect: Stats,
    /// Per subscriber: `POST /api/realtime` round trip.
    pub subscribe: Stats,
    pub idle_rss_kib: u64,
    /// RSS with every subscriber connected and subscribed, before the first event.
    pub connected_rss_kib: u64,
    /// (connected − idle) / subscribed.
    pub kib_per_connection: f64,
    /// Peak RSS sampled while the events were delivered.
    pub peak_rss_kib: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// The soft and hard limits on open files of this process (from /proc/self/limits).
pub fn nofile_limits() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    let mut it = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .map(|v| {
            if v == "unlimited" {
                Some(u64::MAX)
            } else {
                v.parse().ok()
            }
        });
    Some((it.next()??, it.next()??))
}

/// Raises this process's soft open-file limit to the hard one (children inherit it), with
/// util-linux `prlimit` because the workspace forbids the unsafe code a direct setrlimit
/// needs. Returns the soft limit in force afterwards.
pub fn raise_nofile() -> Option<u64> {
    let (soft, hard) = nofile_limits()?;
    if soft < hard {
        let pid = std::process::id().to_string();
        let lim = if hard == u64::MAX {
            "unlimited".to_owned()
        } else {
            hard.to_string()
        };
        let _ = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={lim}:{lim}")])
            .status();
    }
    nofile_limits().map(|(s, _)| s)
}

/// What every subscriber task shares.
struct Shared {
    addr: SocketAddr,
    base: String,
    client: reqwest::Client,
    events: usize,
    /// Time zero of all arrival stamps.
    t0: Instant,
    delivered: AtomicU64,
    complete: AtomicUsize,
    /// Subscribers that gave up before subscribing.
    failed: AtomicUsize,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Shared {
    /// Records why a subscriber gave up before subscribing (called once per such subscriber).
    fn error(&self, e: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.first_error.lock() {
            g.get_or_insert(e);
        }
    }
    fn stamp(&self) -> u32 {
        u32::try_from(self.t0.elapsed().as_micros()).unwrap_or(u32::MAX)
    }
}

struct SubOut {
    /// Arrival per event (µs since t0), `u32::MAX` when it never came.
    arrivals: Vec<u32>,
    connect_us: u32,
    subscribe_us: u32,
    ended_early: bool,
}

/// Event marker the writer puts in each title: `"title":"rt-<seq>"`.
const MARKER: &[u8] = b"\"title\":\"rt-";

/// Incremental HTTP/1.1 response body reader: `Transfer-Encoding: chunked` or not.
struct Body {
    raw: Vec<u8>,
    chunked: bool,
    /// Bytes left in the current chunk; `None` while reading a size line.
    left: Option<usize>,
    /// Decoded bytes not yet split into SSE frames.
    sse: Vec<u8>,
    done: bool,
}

impl Body {
    /// Moves what can be decoded from `raw` to `sse`.
    fn decode(&mut self) {
        if !self.chunked {
            self.sse.append(&mut self.raw);
            return;
        }
        let mut pos = 0;
        loop {
            match self.left {
                None => {
                    let Some(nl) = find(&self.raw[pos..], b"\r\n") else {
                        break;
                    };
                    let line = &self.raw[pos..pos + nl];
                    let hex = line.split(|&b| b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| usize::from_str_radix(h.trim(), 16).ok());
                    pos += nl + 2;
                    match size {
                        Some(0) | None => {
                            self.done = true;
                            break;
                        }
                        // The chunk and its trailing CRLF.
                        Some(n) => self.left = Some(n + 2),
                    }
                }
                Some(n) => {
                    let avail = self.raw.len() - pos;
                    if avail == 0 {
                        break;
                    }
                    let take = avail.min(n);
                    // The last two bytes of a chunk are its CRLF, not data.
                    let data_left = n.saturating_sub(2);
                    let data = take.min(data_left);
                    self.sse.extend_from_slice(&self.raw[pos..pos + data]);
                    pos += take;
                    self.left = if n == take { None } else { Some(n - take) };
                }
            }
        }
        self.raw.drain(..pos);
    }
}

/// Skips to each occurrence of the needle's first byte: 10,000 subscribers scan every event,
/// and a comparison at every offset made the harness, not the server, the bottleneck.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = 0;
    while let Some(p) = hay.get(i..)?.iter().position(|&b| b == first) {
        let j = i + p;
        if hay[j..].starts_with(needle) {
            return Some(j);
        }
        i = j + 1;
    }
    None
}

/// `\n\n` ends an SSE frame; searched byte by byte from where the last search stopped.
fn frame_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from.max(1);
    while i < buf.len() {
        if buf[i] == b'\n' && buf[i - 1] == b'\n' {
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

async fn write_all(s: &TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        s.writable().await?;
        match s.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads once into `buf` (appending); 0 at EOF.
async fn read_some(s: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut tmp = [0u8; 4096];
    loop {
        s.readable().await?;
        match s.try_read(&mut tmp) {
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// One subscriber: connect, read `PB_CONNECT`, subscribe, then time each event.
async fn subscriber(
    sh: Arc<Shared>,
    permit: Arc<Semaphore>,
    ready: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) -> SubOut {
    let mut out = SubOut {
        arrivals: vec![u32::MAX; sh.events],
        connect_us: u32::MAX,
        subscribe_us: u32::MAX,
        ended_early: false,
    };
    let guard = permit.acquire_owned().await;
    let t = Instant::now();
    let stream = match TcpStream::connect(sh.addr).await {
        Ok(s) => s,
        Err(e) => {
            sh.error(format!("connect: {e}"));
            return out;
        }
    };
    let _ = stream.set_nodelay(true);
    let req = format!(
        "GET /api/realtime HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        sh.addr
    );
    if let Err(e) = write_all(&stream, req.as_bytes()).await {
        sh.error(format!("sending GET /api/realtime: {e}"));
        return out;
    }
    let mut head = Vec::with_capacity(1024);
    let header_end = loop {
        match read_some(&stream, &mut head).await {
            Ok(0) | Err(_) => {
                sh.error("the server closed the stream before its headers".into());
                return out;
            }
            Ok(_) => {}
        }
        if let Some(p) = find(&head, b"\r\n\r\n") {
            break p + 4;
        }
        if head.len() > 16 * 1024 {
            sh.error("response headers too long".into());
            return out;
        }
    };
    let headers = String::from_utf8_lossy(&head[..header_end]).to_ascii_lowercase();
    if !headers.starts_with("http/1.1 200") {
        sh.error(format!(
            "GET /api/realtime: {}",
            String::from_utf8_lossy(&head[..head.len().min(300)])
        ));
        return out;
    }
    let mut body = Body {
        raw: head.split_off(header_end),
        chunked: headers.contains("transfer-encoding: chunked"),
        left: None,
        sse: Vec::with_capacity(2048),
        done: false,
    };
    drop(head);
    // Until PB_CONNECT: its data holds the client id.
    let mut scanned = 0;
    let client_id = loop {
        body.decode();
        if let Some(end) = frame_end(&body.sse, scanned) {
            let frame: Vec<u8> = body.sse.drain(..end).collect();
            scanned = 0;
            let key = b"\"clientId\":\"";
            if let Some(p) = find(&frame, key) {
                let rest = &frame[p + key.len()..];
                let q = rest.iter().position(|&b| b == b'"').unwrap_or(rest.len());
                break String::from_utf8_lossy(&rest[..q]).into_owned();
            }
            continue;
        }
        scanned = body.sse.len().saturating_sub(1);
        if body.done || matches!(read_some(&stream, &mut body.raw).await, Ok(0) | Err(_)) {
            sh.error("the stream ended before PB_CONNECT".into());
            return out;
        }
    };
    out.connect_us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
    let t = Instant::now();
    let r = sh
        .client
        .post(format!("{}/api/realtime", sh.base))
        .json(&serde_json::json!({"clientId": client_id, "subscriptions": ["posts/*"]}))
        .send()
        .await;
    match r {
        Ok(r) if r.status().as_u16() == 204 => {}
        Ok(r) => {
            let st = r.status();
            let b = r.text().await.unwrap_or_default();
            sh.error(format!("POST /api/realtime: {st} {b}"));
            return out;
        }
        Err(e) => {
            sh.error(format!("POST /api/realtime: {e}"));
            return out;
        }
    }
    out.subscribe_us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
    drop(guard);
    ready.fetch_add(1, Ordering::Relaxed);

    let mut got = 0usize;
    scanned = 0;
    loop {
        body.decode();
        let now = sh.stamp();
        let mut start = 0;
        while let Some(end) = frame_end(&body.sse[start..], scanned) {
            let frame = &body.sse[start..start + end];
            if let Some(p) = find(frame, MARKER) {
                let digits = &frame[p + MARKER.len()..];
                let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
                if let Some(seq) = std::str::from_utf8(&digits[..n])
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok())
                {
                    if seq < out.arrivals.len() && out.arrivals[seq] == u32::MAX {
                        out.arrivals[seq] = now;
                        got += 1;
                        sh.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            start += end;
            scanned = 0;
        }
        body.sse.drain(..start);
        scanned = body.sse.len().saturating_sub(1);
        if got == sh.events {
            sh.complete.fetch_add(1, Ordering::Relaxed);
            break;
        }
        if body.done {
            out.ended_early = true;
            break;
        }
        tokio::select! {
            r = read_some(&stream, &mut body.raw) => {
                if matches!(r, Ok(0) | Err(_)) {
                    out.ended_early = true;
                    break;
                }
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    // Hold the connection until every subscriber is done, so that the server keeps all of
    // them for the whole run.
    let _ = stop.wait_for(|s| *s).await;
    drop(stream);
    out
}

fn stats_of(mut v: Vec<u32>, seconds: f64) -> Stats {
    v.retain(|x| *x != u32::MAX);
    Stats::from_latencies(v, 0, 0, seconds, None)
}

/// Runs the fan-out against one server (`base` is `http://127.0.0.1:PORT`; the posts
/// collection exists with a public list rule).
pub async fn run(target: &str, base: &str, pid: u32, plan: &Plan) -> Result<FanoutRow> {
    let addr: SocketAddr = base
        .trim_start_matches("http://")
        .parse()
        .with_context(|| format!("parsing {base}"))?;
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(plan.connect_parallel)
        .timeout(Duration::from_secs(60))
        .build()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss_kib = load::rss_kib(pid).unwrap_or(0);
    let sh = Arc::new(Shared {
        addr,
        base: base.to_owned(),
        client: client.clone(),
        events: plan.events,
        t0: Instant::now(),
        delivered: AtomicU64::new(0),
        complete: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        first_error: std::sync::Mutex::new(None),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(plan.connect_parallel.max(1)));
    let ready = Arc::new(AtomicUsize::new(0));
    let t_connect = Instant::now();
    let mut tasks = Vec::with_capacity(plan.subscribers);
    for _ in 0..plan.subscribers {
        tasks.push(tokio::spawn(subscriber(
            sh.clone(),
            permits.clone(),
            ready.clone(),
            stop_rx.clone(),
        )));
    }
    // All subscribed, or every connect attempt has ended (some failed).
    let connect_deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = ready.load(Ordering::Relaxed) + sh.failed.load(Ordering::Relaxed);
        if done >= plan.subscribers || Instant::now() > connect_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_all_s = t_connect.elapsed().as_secs_f64();
    let subscribed = ready.load(Ordering::Relaxed);
    eprintln!(
        "[bench] sse-fanout {target}: {subscribed}/{} subscribed in {connect_all_s:.1} s",
        plan.subscribers
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connected_rss_kib = load::rss_kib(pid).unwrap_or(0);

    // The writer: one create every 1/rate s, sequentially.
    let rss_stop = Arc::new(AtomicBool::new(false));
    let sampler = load::sample_rss(pid, rss_stop.clone());
    let url = format!("{base}/api/collections/posts/records");
    let w0 = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / plan.rate.max(0.001));
    // Open loop: each create starts on its schedule whatever the previous ones take, so a
    // server whose creates are slow gets the same offered load as one whose are fast.
    let mut writes = Vec::with_capacity(plan.events);
    if subscribed > 0 {
        for seq in 0..plan.events {
            let due = w0 + interval * seq as u32;
            tokio::time::sleep_until(due.into()).await;
            let (client, url, sh) = (client.clone(), url.clone(), sh.clone());
            writes.push(tokio::spawn(async move {
                let sent = sh.stamp();
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .json(&serde_json::json!({
                        "title": format!("rt-{seq}"),
                        "body": "fan-out",
                        "views": seq,
                        "published": true,
                    }))
                    .send()
                    .await;
                let ok = match r {
                    Ok(r) => {
                        let st = r.status();
                        let b = r.bytes().await;
                        st.is_success() && b.is_ok()
                    }
                    Err(_) => false,
                };
                let lat = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
                (sent, sh.stamp(), ok.then_some(lat))
            }));
        }
    }
    let mut sent = vec![u32::MAX; plan.events];
    let mut answered = vec![u32::MAX; plan.events];
    let mut create_lat = Vec::with_capacity(plan.events);
    let mut create_errors = 0u64;
    for (seq, w) in writes.into_iter().enumerate() {
        match w.await {
            Ok((s, a, Some(lat))) => {
                sent[seq] = s;
                answered[seq] = a;
                create_lat.push(lat);
            }
            _ => create_errors += 1,
        }
    }
    let write_s = w0.elapsed().as_secs_f64();
    // Wait for the deliveries: all complete, or no progress for 10 s.
    let mut last = sh.delivered.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    while sh.complete.load(Ordering::Relaxed) < subscribed {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let d = sh.delivered.load(Ordering::Relaxed);
        if d != last {
            last = d;
            last_change = Instant::now();
        } else if last_change.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    rss_stop.store(true, Ordering::Relaxed);
    let peak_rss_kib = sampler.await.unwrap_or(0);
    let _ = stop_tx.send(true);
    let mut outs = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(o) = t.await {
            outs.push(o);
        }
    }

    let mut lat = Vec::new();
    let mut lat_req = Vec::new();
    let mut before_response = 0u64;
    let mut last_per_event = vec![0u32; plan.events];
    let mut delivered = 0u64;
    let mut ended_early = 0;
    let mut connect = Vec::new();
    let mut subscribe = Vec::new();
    for o in &outs {
        if o.subscribe_us == u32::MAX {
            continue;
        }
        connect.push(o.connect_us);
        subscribe.push(o.subscribe_us);
        ended_early += usize::from(o.ended_early);
        for (seq, &a) in o.arrivals.iter().enumerate() {
            if a == u32::MAX || answered[seq] == u32::MAX {
                continue;
            }
            delivered += 1;
            if a < answered[seq] {
                before_response += 1;
            }
            lat.push(a.saturating_sub(answered[seq]));
            let d = a.saturating_sub(sent[seq]);
            lat_req.push(d);
            last_per_event[seq] = last_per_event[seq].max(d);
        }
    }
    let created = plan.events as u64 - create_errors;
    let expected = created * subscribed as u64;
    let row = FanoutRow {
        target: target.to_owned(),
        subscribers: plan.subscribers,
        subscribed,
        events: plan.events,
        rate_per_s: plan.rate,
        achieved_rate_per_s: if write_s > 0.0 {
            created as f64 / write_s
        } else {
            0.0
        },
        expected_deliveries: expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        streams_ended_early: ended_early,
        latency: stats_of(lat, write_s),
        before_response,
        latency_from_request: stats_of(lat_req, write_s),
        last_subscriber: stats_of(
            last_per_event
                .iter()
                .zip(&answered)
                .filter(|(_, a)| **a != u32::MAX)
                .map(|(l, _)| *l)
                .collect(),
            write_s,
        ),
        create: Stats::from_latencies(create_lat, create_errors, 0, write_s, None),
        connect_all_s,
        connect: stats_of(connect, connect_all_s),
        subscribe: stats_of(subscribe, connect_all_s),
        idle_rss_kib,
        connected_rss_kib,
        kib_per_connection: if subscribed > 0 {
            (connected_rss_kib as f64 - idle_rss_kib as f64) / subscribed as f64
        } else {
            0.0
        },
        peak_rss_kib,
        first_error: sh.first_error.lock().ok().and_then(|g| g.clone()),
    };
    eprintln!(
        "[bench] sse-fanout {target}: {} subscribers × {} events: delivered {}/{} (lost {}), from the create request p50 {:.2} ms p99 {:.2} ms max {:.2} ms, {:.1} KiB/connection{}",
        row.subscribed,
        row.events,
        row.delivered,
        row.expected_deliveries,
        row.lost,
        row.latency_from_request.p50_ms,
        row.latency_from_request.p99_ms,
        row.latency_from_request.max_ms,
        row.kib_per_connection,
        row.first_error
            .as_deref()
            .map(|e| format!("  (first error: {e})"))
            .unwrap_or_default()
    );
    if subscribed == 0 {
        bail!(
            "no subscriber could subscribe to {target}: {}",
            row.first_error.as_deref().unwrap_or("?")
        );
    }
    // Let the server notice the closed streams before anything else runs against it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_chunks_split_anywhere() {
        let wire = b"5\r\nid:ab\r\n3;x=1\r\n\n\n\n\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut b = Body {
                raw: wire[..split].to_vec(),
                chunked: true,
                left: None,
                sse: vec![],
                done: false,
            };
            b.decode();
            b.raw.extend_from_slice(&wire[split..]);
            b.decode();
            assert_eq!(b.sse, b"id:ab\n\n\n", "split at {split}");
            assert!(b.done);
        }
        assert_eq!(frame_end(b"a\n\nb", 0), Some(3));
        assert_eq!(find(b"x\"t\"t\"title\":\"rt-1", MARKER), Some(5));
        assert_eq!(find(b"\"titl", MARKER), None);
        assert_eq!(find(b"", MARKER), None);
        assert_eq!(frame_end(b"a\nb\n", 0), None);
    }
}
