//! Background work: the job queue (counts, jobs by state with their errors; retry and
//! delete) and cron entries (run now). Webhooks have pages of their own (`webhooks.rs`).

use crate::form::FormData;
use crate::layout::{self, csrf, page};
use crate::{redirect, Admin, AppState};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use maud::html;

const SHOWN: usize = 100;

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

pub async fn view(State(app): State<AppState>, admin: Admin, RawQuery(q): RawQuery) -> Response {
    let q = super::query(q.as_deref());
    let state = match q.get("state").map(String::as_str) {
        Some(s @ ("queued" | "running" | "dead")) => s.to_owned(),
        _ => "dead".to_owned(),
    };
    let jobs = app.jobs();
    let counts = jobs.counts().await.unwrap_or_default();
    let count = |s: &str| counts.iter().find(|c| c.0 == s).map_or(0, |c| c.1);
    let list = jobs.list(Some(&state), SHOWN, 0).await.unwrap_or_default();
    let crons = jobs.crons();
    let body = html! {
        h1 { "Jobs" }
        section.card {
            h2 { "Queue" }
            p {
                @for s in ["queued", "running", "dead"] {
                    a href={ "/_/jobs?state=" (s) } aria-current=[(s == state).then_some("page")] {
                        (s) " (" (count(s)) ")"
                    }
                    " "
                }
            }
            @if list.is_empty() { p { "No " (state) " jobs." } }
            @else {
                table {
                    thead { tr { th { "Kind" } th { "Id" } th { "Attempts" } th { "Run at" } th { "Last error" } th { "" } } }
                    tbody {
                        @for j in &list {
                            tr {
                                td { (j.kind) }
                                td { code { (j.id) } }
                                td { (j.attempts) " / " (j.max_attempts) }
                                td { (when(j.run_at)) }
                                td { (j.last_error) }
                                td {
                                    @if j.state == "dead" {
                                        form.inline-form method="post" action="/_/jobs" {
                                            (csrf(&admin.csrf))
                                            input type="hidden" name="action" value="retry";
                                            input type="hidden" name="id" value=(j.id);
                                            button type="submit" { "Retry" }
                                        }
                                    }
                                    @if j.state != "running" {
                                        form.inline-form method="post" action="/_/jobs" {
                                            (csrf(&admin.csrf))
                                            input type="hidden" name="action" value="delete";
                                            input type="hidden" name="id" value=(j.id);
                                            button type="submit" { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card #crons {
            h2 { "Cron" }
            table {
                thead { tr { th { "Id" } th { "Expression" } th { "" } } }
                tbody {
                    @for c in &crons {
                        tr {
                            td { code { (c.id) } }
                            td { code { (c.expression) } }
                            td {
                                form.inline-form method="post" action="/_/jobs" {
                                    (csrf(&admin.csrf))
                                    input type="hidden" name="action" value="cron";
                                    input type="hidden" name="id" value=(c.id);
                                    button type="submit" { "Run now" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(
        &app,
        &admin,
        "Jobs",
        layout::flash(q.get("done").map(String::as_str)),
        body,
    )
}

pub async fn act(State(app): State<AppState>, admin: Admin, form: FormData) -> Response {
    if let Some(r) = admin.check(&form) {
        return r;
    }
    let id = form.get("id");
    let jobs = app.jobs();
    let done = match form.get("action") {
        "retry" => jobs.retry(id).await.map(|_| "queued"),
        "delete" => jobs.delete(id).await.map(|_| "deleted"),
        "cron" if jobs.cron_run(id) => Ok("started"),
        _ => return layout::not_found(),
    };
    match done {
        Ok(code) => redirect(&format!("/_/jobs?done={code}")),
        Err(e) => {
            tracing::info!(error = %e, "job action refused");
            redirect("/_/jobs?done=refused")
        }
    }
}
