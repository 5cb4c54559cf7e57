//! Recent API requests with filters, and their chart (SVG drawn here on the server).

use crate::chart::chart_svg;
use crate::layout::page;
use crate::{Admin, AppState};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use chrono::{Duration, Utc};
use galley_http::reqlog::{Entry, CAPACITY};
use maud::{html, PreEscaped};

const SHOWN: usize = 200;

pub async fn view(State(app): State<AppState>, admin: Admin, RawQuery(q): RawQuery) -> Response {
    let q = super::query(q.as_deref());
    let method = q
        .get("method")
        .cloned()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let path = q.get("path").cloned().unwrap_or_default();
    let status = q.get("status").cloned().unwrap_or_default();
    let caller = q.get("caller").cloned().unwrap_or_default();
    let range = q.get("range").cloned().unwrap_or_else(|| "1h".into());
    let keep = |e: &Entry| {
        (method.is_empty() || e.method == method)
            && (path.is_empty() || e.path.contains(path.as_str()))
            && match status.as_str() {
                "" => true,
                "ok" => e.status < 400,
                "errors" => e.status >= 400,
                "4xx" => (400..500).contains(&e.status),
                "5xx" => e.status >= 500,
                _ => true,
            }
            && (caller.is_empty()
                || e.caller == caller
                || (caller == "auth" && e.caller.starts_with("auth:")))
    };
    let (width, buckets, label) = match range.as_str() {
        "10m" => (Duration::seconds(10), 60, "10 minutes ago"),
        "24h" => (Duration::minutes(30), 48, "24 hours ago"),
        _ => (Duration::minutes(1), 60, "1 hour ago"),
    };
    let now = Utc::now();
    let counts = admin.console.requests.histogram(now, width, buckets, keep);
    let svg = chart_svg(&counts, label, "now");
    let entries = admin.console.requests.recent(SHOWN, keep);
    let select = |name: &str, id: &str, label: &str, cur: &str, opts: &[(&str, &str)]| {
        html! {
            div.field {
                label for=(id) { (label) }
                select id=(id) name=(name) {
                    @for (v, l) in opts { option value=(v) selected[cur == *v] { (l) } }
                }
            }
        }
    };
    let body = html! {
        h1 { "Logs" }
        p.help { "The last API requests this server handled (kept in memory, at most " (CAPACITY) "; lost on restart)." }
        form.filterbar method="get" action="/_/logs" {
            (select("method", "l-method", "Method", &method, &[("", "any"), ("GET", "GET"), ("POST", "POST"), ("PATCH", "PATCH"), ("DELETE", "DELETE")]))
            (select("status", "l-status", "Status", &status, &[("", "any"), ("ok", "success"), ("errors", "errors (≥ 400)"), ("4xx", "4xx"), ("5xx", "5xx")]))
            (select("caller", "l-caller", "Caller", &caller, &[("", "any"), ("guest", "guest"), ("superuser", "superuser"), ("auth", "auth record")]))
            (select("range", "l-range", "Chart range", &range, &[("10m", "10 minutes"), ("1h", "1 hour"), ("24h", "24 hours")]))
            div.field {
                label for="l-path" { "Path contains" }
                input #l-path type="search" name="path" value=(path);
            }
            button type="submit" { "Apply" }
        }
        figure.chartbox {
            (PreEscaped(svg))
            figcaption { span.key.key-req { "requests" } " " span.key.key-err { "errors" } }
        }
        div.scroll {
            table.logs {
                caption { (entries.len()) " most recent matching requests" }
                thead { tr { th scope="col" { "Time (UTC)" } th scope="col" { "Method" } th scope="col" { "Path" } th scope="col" { "Status" } th scope="col" { "Duration" } th scope="col" { "Caller" } th scope="col" { "IP" } } }
                tbody {
                    @for e in &entries {
                        tr.(if e.status >= 400 { "err" } else { "ok" }) {
                            td { (e.time.format("%H:%M:%S%.3f")) }
                            td { (e.method) }
                            td { code { (e.path) } }
                            td { (e.status) }
                            td { (format!("{:.1} ms", e.duration_us as f64 / 1000.0)) }
                            td { (e.caller) }
                            td { (e.ip) }
                        }
                    }
                    @if entries.is_empty() { tr { td colspan="7" { "No requests match." } } }
                }
            }
        }
    };
    page(&app, &admin, "Logs", None, body)
}
