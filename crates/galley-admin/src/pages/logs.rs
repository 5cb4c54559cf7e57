//! The stored logs (galley-ops: every node's on PostgreSQL) with filters, and their chart
//! (SVG drawn here on the server). The form's choices become a filter in the records'
//! filter language, so the page and `GET /api/logs` select entries the same way.

use crate::chart::chart_svg;
use crate::layout::page;
use crate::{Admin, AppState};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use chrono::{Duration, NaiveDateTime, Utc};
use galley_core::Page;
use maud::{html, PreEscaped};
use serde_json::Value;

const SHOWN: usize = 200;

/// A text in the filter language's quotes.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The form's choices as one filter (choices outside the offered ones are ignored).
fn form_filter(method: &str, status: &str, caller: &str, path: &str, extra: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    if ["GET", "POST", "PATCH", "PUT", "DELETE"].contains(&method) {
        parts.push(format!("data.method = '{method}'"));
    }
    match status {
        "ok" => parts.push("data.status < 400".into()),
        "errors" => parts.push("data.status >= 400".into()),
        "4xx" => parts.push("data.status >= 400 && data.status < 500".into()),
        "5xx" => parts.push("data.status >= 500".into()),
        _ => {}
    }
    match caller {
        "guest" => parts.push("data.auth = ''".into()),
        "superuser" => parts.push("data.auth = '_superusers'".into()),
        "auth" => parts.push("data.auth != '' && data.auth != '_superusers'".into()),
        _ => {}
    }
    if !path.is_empty() {
        parts.push(format!("data.url ~ {}", quoted(path)));
    }
    if !extra.trim().is_empty() {
        parts.push(format!("({extra})"));
    }
    parts.join(" && ")
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v["data"][key].as_str().unwrap_or_default()
}

pub async fn view(State(app): State<AppState>, admin: Admin, RawQuery(q): RawQuery) -> Response {
    let q = super::query(q.as_deref());
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let method = get("method").to_ascii_uppercase();
    let (path, status, caller, extra) = (get("path"), get("status"), get("caller"), get("filter"));
    let range = q.get("range").cloned().unwrap_or_else(|| "1h".into());
    let filter = form_filter(&method, &status, &caller, &path, &extra);
    let (width, buckets, label, fmt) = match range.as_str() {
        "10m" => (
            Duration::seconds(10),
            60,
            "10 minutes ago",
            "%Y-%m-%d %H:%M:%S",
        ),
        "24h" => (Duration::minutes(30), 48, "24 hours ago", "%Y-%m-%d %H:%M"),
        _ => (Duration::minutes(1), 60, "1 hour ago", "%Y-%m-%d %H:%M"),
    };
    let now = Utc::now();
    let start = now - width * buckets;
    let since = format!(
        "created > {}",
        quoted(&galley_types::datetime::format(&start))
    );
    let chart_filter = if filter.is_empty() {
        since
    } else {
        format!("{since} && ({filter})")
    };
    let logs = &admin.console.logs;
    let mut counts = vec![(0u32, 0u32); buckets as usize];
    let mut problem: Option<String> = None;
    match logs.grouped(&admin.caller, &chart_filter, fmt).await {
        Ok(rows) => {
            for (key, n, e) in rows {
                let key = if fmt.ends_with("%M") {
                    format!("{key}:00")
                } else {
                    key
                };
                let Ok(t) = NaiveDateTime::parse_from_str(&key, "%Y-%m-%d %H:%M:%S") else {
                    continue;
                };
                let off = (t.and_utc() - start).num_milliseconds().max(0);
                let i = ((off / width.num_milliseconds().max(1)) as usize).min(counts.len() - 1);
                counts[i].0 += n.clamp(0, u32::MAX as i64) as u32;
                counts[i].1 += e.clamp(0, u32::MAX as i64) as u32;
            }
        }
        Err(e) => problem = Some(e.to_string()),
    }
    let svg = chart_svg(&counts, label, "now");
    let page_of = Page {
        page: 1,
        per_page: SHOWN,
        skip_total: false,
    };
    let (entries, total) = match logs.list(&admin.caller, page_of, &filter, "-created").await {
        Ok(r) => (r.items, r.total_items),
        Err(e) => {
            problem.get_or_insert(e.to_string());
            (Vec::new(), 0)
        }
    };
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
        p.help { "API requests and the server's warnings and errors, kept for " (app.settings().logs.max_days) " days (Settings → logs)." }
        form.filterbar method="get" action="/_/logs" {
            (select("method", "l-method", "Method", &method, &[("", "any"), ("GET", "GET"), ("POST", "POST"), ("PATCH", "PATCH"), ("DELETE", "DELETE")]))
            (select("status", "l-status", "Status", &status, &[("", "any"), ("ok", "success"), ("errors", "errors (≥ 400)"), ("4xx", "4xx"), ("5xx", "5xx")]))
            (select("caller", "l-caller", "Caller", &caller, &[("", "any"), ("guest", "guest"), ("superuser", "superuser"), ("auth", "auth record")]))
            (select("range", "l-range", "Chart range", &range, &[("10m", "10 minutes"), ("1h", "1 hour"), ("24h", "24 hours")]))
            div.field {
                label for="l-path" { "URL contains" }
                input #l-path type="search" name="path" value=(path);
            }
            div.field {
                label for="l-filter" { "Filter" }
                input #l-filter type="search" name="filter" value=(extra) placeholder="data.status >= 500 && level > 0";
            }
            button type="submit" { "Apply" }
        }
        @if let Some(p) = &problem { p.error role="alert" { (p) } }
        figure.chartbox {
            (PreEscaped(svg))
            figcaption { span.key.key-req { "entries" } " " span.key.key-err { "errors" } }
        }
        div.scroll {
            table.logs {
                caption { (entries.len()) " most recent of " (total) " matching entries" }
                thead { tr { th scope="col" { "Time (UTC)" } th scope="col" { "Level" } th scope="col" { "Message" } th scope="col" { "Status" } th scope="col" { "Duration" } th scope="col" { "Auth" } th scope="col" { "IP" } th scope="col" { "Request id" } } }
                tbody {
                    @for e in &entries {
                        @let level = e["level"].as_i64().unwrap_or(0);
                        tr.(if level >= 8 { "err" } else { "ok" }) {
                            td { (e["created"].as_str().unwrap_or_default()) }
                            td { (match level { l if l >= 8 => "ERROR", l if l >= 4 => "WARN", l if l >= 0 => "INFO", _ => "DEBUG" }) }
                            td { code { (e["message"].as_str().unwrap_or_default()) } }
                            td { @if let Some(s) = e["data"]["status"].as_i64() { (s) } }
                            td { @if let Some(ms) = e["data"]["execTime"].as_f64() { (format!("{ms:.1} ms")) } }
                            td { (text(e, "auth")) }
                            td { (text(e, "userIP")) }
                            td { code { (text(e, "requestId")) } }
                        }
                    }
                    @if entries.is_empty() { tr { td colspan="8" { "No entries match." } } }
                }
            }
        }
    };
    page(&app, &admin, "Logs", None, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_choices_become_one_filter() {
        assert_eq!(form_filter("", "", "", "", ""), "");
        assert_eq!(
            form_filter("GET", "4xx", "guest", "it's", ""),
            "data.method = 'GET' && data.status >= 400 && data.status < 500 && data.auth = '' && data.url ~ 'it\\'s'"
        );
        assert_eq!(
            form_filter("DROP", "x", "y", "", "level > 0"),
            "(level > 0)"
        );
    }
}
