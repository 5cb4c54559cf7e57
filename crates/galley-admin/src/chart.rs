//! The entries/errors chart of the logs page, drawn as SVG from the stored logs' counts per
//! bucket.

use std::fmt::Write;

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

    #[test]
    fn bars_counts_and_escaped_labels() {
        let mut h = vec![(0u32, 0u32); 60];
        h[58] = (1, 1);
        h[59] = (2, 1);
        let svg = chart_svg(&h, "<a>", "now");
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("3 requests, 2 errors"));
        assert!(svg.contains("&lt;a&gt;"));
        assert_eq!(svg.matches("class=\"bar-err\"").count(), 2);
    }
}
