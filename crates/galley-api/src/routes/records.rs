use super::{no_content, ok, page};
use crate::error::ApiResult;
use crate::extract::{Query, RecordBody, Req};
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use galley_core::records::{self, ListQuery};

fn body(b: crate::extract::Body) -> records::RecordBody {
    records::RecordBody {
        values: b.values,
        uploads: b.files,
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/collections/{collection}/records",
            get(list).post(create),
        )
        .route(
            "/api/collections/{collection}/records/{id}",
            get(view).patch(update).delete(remove),
        )
}

async fn list(
    State(app): State<AppState>,
    Req(r): Req,
    Path(col): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let lq = ListQuery {
        page: page(&q)?,
        filter: q.get("filter").unwrap_or_default().to_owned(),
        sort: q.get("sort").unwrap_or_default().to_owned(),
        expand: expand(&q)?,
    };
    Ok(ok(records::list(&app, &r, &col, lq).await?, &q))
}

async fn view(
    State(app): State<AppState>,
    Req(r): Req,
    Path((col, id)): Path<(String, String)>,
    q: Query,
) -> ApiResult<Response> {
    Ok(ok(
        records::view(&app, &r, &col, &id, &expand(&q)?).await?,
        &q,
    ))
}

async fn create(
    State(app): State<AppState>,
    Req(r): Req,
    Path(col): Path<String>,
    q: Query,
    RecordBody(b): RecordBody,
) -> ApiResult<Response> {
    Ok(ok(
        records::create(&app, &r, &col, body(b), &expand(&q)?).await?,
        &q,
    ))
}

async fn update(
    State(app): State<AppState>,
    Req(r): Req,
    Path((col, id)): Path<(String, String)>,
    q: Query,
    RecordBody(b): RecordBody,
) -> ApiResult<Response> {
    Ok(ok(
        records::update(&app, &r, &col, &id, body(b), &expand(&q)?).await?,
        &q,
    ))
}

async fn remove(
    State(app): State<AppState>,
    Req(r): Req,
    Path((col, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    records::remove(&app, &r, &col, &id).await?;
    Ok(no_content())
}

fn expand(q: &Query) -> ApiResult<Vec<Vec<String>>> {
    Ok(records::expand::parse(q.get("expand").unwrap_or_default())?)
}
