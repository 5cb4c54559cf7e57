//! The request log: the last [`CAPACITY`] API requests of this process, in memory, filled
//! by [`log_requests`] and read by the dashboard's logs page.
//!
//! In memory and per node on purpose: recording must cost nothing on the request path (one
//! short lock, no IO), and a bounded ring means a request storm cannot grow memory. Lost on
//! restart; persisting to the auxiliary database (DESIGN §12) is a later step.

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use galley_core::Caller;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;

pub const CAPACITY: usize = 5000;
/// Longest path kept (the rest is cut: a log line is not a place for megabyte URLs).
const MAX_PATH: usize = 300;

#[derive(Debug, Clone)]
pub struct Entry {
    pub time: DateTime<Utc>,
    pub method: String,
    /// Without the query string: queries may carry tokens (`?token=` on file downloads).
    pub path: String,
    pub status: u16,
    pub duration_us: u64,
    /// `guest`, `superuser` or `auth:<collection>`.
    pub caller: String,
    pub ip: String,
}

#[derive(Clone, Default)]
pub struct RequestLog {
    inner: Arc<Mutex<VecDeque<Entry>>>,
}

impl RequestLog {
    pub fn push(&self, mut e: Entry) {
        if e.path.len() > MAX_PATH {
            let mut cut = MAX_PATH;
            while !e.path.is_char_boundary(cut) {
                cut -= 1;
            }
            e.path.truncate(cut);
        }
        let mut q = self.inner.lock();
        if q.len() >= CAPACITY {
            q.pop_front();
        }
        q.push_back(e);
    }

    /// Entries passing `keep`, newest first, at most `limit`.
    pub fn recent(&self, limit: usize, keep: impl Fn(&Entry) -> bool) -> Vec<Entry> {
        let q = self.inner.lock();
        q.iter()
            .rev()
            .filter(|e| keep(e))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Requests and errors (status ≥ 400) per bucket over the `buckets` × `width` up to `now`.
    pub fn histogram(
        &self,
        now: DateTime<Utc>,
        width: ChronoDuration,
        buckets: usize,
        keep: impl Fn(&Entry) -> bool,
    ) -> Vec<(u32, u32)> {
        let mut out = vec![(0u32, 0u32); buckets];
        let span = width * buckets as i32;
        let start = now - span;
        let q = self.inner.lock();
        for e in q
            .iter()
            .filter(|e| e.time > start && e.time <= now && keep(e))
        {
            let off = (e.time - start).num_milliseconds().max(0) as i128;
            let w = width.num_milliseconds().max(1) as i128;
            let i = ((off / w) as usize).min(buckets.saturating_sub(1));
            out[i].0 += 1;
            if e.status >= 400 {
                out[i].1 += 1;
            }
        }
        out
    }
}

/// Records each API request in the request log (`/_/logs`); the dashboard's own pages are
/// not API traffic and are left out. Runs inside the API's authentication, so each entry
/// knows its caller.
pub async fn log_requests(State(log): State<RequestLog>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let start = std::time::Instant::now();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let ip = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let caller = match req.extensions().get::<Caller>() {
        Some(c) if c.is_superuser() => "superuser".to_owned(),
        Some(Caller::Record { collection, .. }) => format!("auth:{}", collection.name),
        _ => "guest".to_owned(),
    };
    let res = next.run(req).await;
    log.push(Entry {
        time: Utc::now(),
        method,
        path,
        status: res.status().as_u16(),
        duration_us: start.elapsed().as_micros().min(u64::MAX as u128) as u64,
        caller,
        ip,
    });
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(time: DateTime<Utc>, status: u16) -> Entry {
        Entry {
            time,
            method: "GET".into(),
            path: "/api/x".into(),
            status,
            duration_us: 10,
            caller: "guest".into(),
            ip: "127.0.0.1".into(),
        }
    }

    #[test]
    fn ring_is_bounded_and_newest_first() {
        let log = RequestLog::default();
        let now = Utc::now();
        for i in 0..CAPACITY + 5 {
            let mut e = entry(now, 200);
            e.path = format!("/api/{i}");
            log.push(e);
        }
        let all = log.recent(usize::MAX, |_| true);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].path, format!("/api/{}", CAPACITY + 4));
        let long = "é".repeat(400);
        log.push(Entry {
            path: long,
            ..entry(now, 200)
        });
        assert!(log.recent(1, |_| true)[0].path.len() <= MAX_PATH);
    }

    #[test]
    fn histogram_counts_requests_and_errors() {
        let log = RequestLog::default();
        let now = Utc::now();
        log.push(entry(now - ChronoDuration::seconds(30), 200));
        log.push(entry(now - ChronoDuration::seconds(20), 404));
        log.push(entry(now - ChronoDuration::seconds(90), 500));
        log.push(entry(now - ChronoDuration::hours(2), 200));
        let h = log.histogram(now, ChronoDuration::minutes(1), 60, |_| true);
        assert_eq!(h.len(), 60);
        assert_eq!(h[59], (2, 1));
        assert_eq!(h[58], (1, 1));
        assert_eq!(h.iter().map(|x| x.0).sum::<u32>(), 3);
    }
}
