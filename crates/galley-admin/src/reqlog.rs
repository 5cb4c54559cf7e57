//! The request log: the last [`CAPACITY`] API requests of this process, in memory, and the
//! requests/errors chart drawn from it as SVG.
//!
//! In memory and per node on purpose: recording must cost nothing on the request path (one
//! short lock, no IO), and a bounded ring means a request storm cannot grow memory. Lost on
//! restart; persisting to the auxiliary database (DESIGN §12) is a later step.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::fmt::Write;
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

/// A bar chart of requests (and, overlaid, errors) per bucket; `labels` name the first and
/// last bucket. Only SVG presentation attributes, no inline CSS (the CSP forbids it).
pub fn chart_svg(counts: &[(u32, u32)], first_label: &str, last_label: &str) -> String {
    const W: f64 = 720.0;
    const H: f64 = 180.0;
    const PAD_L: f64 = 40.0;
    const PAD_B: f64 = 24.0;
    let max = counts.iter().map(|c| c.0).max().unwrap_or(0).max(1);
    let n = counts.len().max(1) as f64;
    let bw = (W - PAD_L) / n;
    let ph = H - PAD_B - 8.0;
    let total: u32 = counts.iter().map(|c| c.0).sum();
    let errors: u32 = counts.iter().map(|c| c.1).sum();
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg"><title id="chart-title">Requests and errors over time: {total} requests, {errors} errors</title>"#
    );
    let _ = write!(
        s,
        r##"<line x1="{PAD_L}" y1="{y}" x2="{W}" y2="{y}" stroke="#8a94a6" stroke-width="1"/>"##,
        y = H - PAD_B
    );
    let _ = write!(
        s,
        r##"<text x="{x}" y="14" font-size="11" fill="#3b4558" text-anchor="end">{max}</text><text x="{x}" y="{y}" font-size="11" fill="#3b4558" text-anchor="end">0</text>"##,
        x = PAD_L - 6.0,
        y = H - PAD_B
    );
    for (i, (req, err)) in counts.iter().enumerate() {
        let x = PAD_L + i as f64 * bw;
        if *req > 0 {
            let h = ph * f64::from(*req) / f64::from(max);
            let _ = write!(
                s,
                r##"<rect class="bar-req" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="#3d6fd6"><title>{req} requests</title></rect>"##,
                y = H - PAD_B - h,
                w = (bw - 1.0).max(1.0)
            );
        }
        if *err > 0 {
            let h = ph * f64::from(*err) / f64::from(max);
            let _ = write!(
                s,
                r##"<rect class="bar-err" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="#c62828"><title>{err} errors</title></rect>"##,
                y = H - PAD_B - h,
                w = (bw - 1.0).max(1.0)
            );
        }
    }
    let _ = write!(
        s,
        r##"<text x="{PAD_L}" y="{y}" font-size="11" fill="#3b4558">{a}</text><text x="{W}" y="{y}" font-size="11" fill="#3b4558" text-anchor="end">{b}</text></svg>"##,
        y = H - 6.0,
        a = escape(first_label),
        b = escape(last_label)
    );
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
        let svg = chart_svg(&h, "<a>", "now");
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("3 requests, 2 errors"));
        assert!(svg.contains("&lt;a&gt;"));
        assert_eq!(svg.matches("class=\"bar-err\"").count(), 2);
    }
}
