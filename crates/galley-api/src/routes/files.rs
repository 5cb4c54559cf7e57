//! `GET /api/files/{collection}/{record}/{filename}` (thumbnails, downloads, ranges) and
//! `POST /api/files/token`.

use super::ok;
use crate::error::ApiResult;
use crate::extract::{Auth, Meta, Query};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use futures_util::TryStreamExt;
use galley_core::files;
use galley_http::AllowFraming;
use serde_json::json;
use std::ops::Range;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/files/token", post(token)).route(
        "/api/files/{collection}/{record}/{filename}",
        get(download).head(download),
    )
}

async fn token(Auth(c): Auth, q: Query) -> ApiResult<Response> {
    Ok(ok(json!({"token": files::file_token(&c)?}), &q))
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq)]
enum Ranged {
    Whole,
    Part(Range<u64>),
    Unsatisfiable,
}

/// One `bytes=` range (`a-b`, `a-`, `-n`). Several ranges are answered with the whole file,
/// which HTTP allows; anything unparsable is ignored the same way.
fn parse_range(h: Option<&HeaderValue>, size: u64) -> Ranged {
    let Some(spec) = h
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| s.parse::<u64>().ok();
    let range = match (a.is_empty(), b.is_empty()) {
        (true, false) => match num(b) {
            Some(0) => return Ranged::Unsatisfiable,
            Some(n) => size.saturating_sub(n)..size,
            None => return Ranged::Whole,
        },
        (false, _) => {
            let Some(start) = num(a) else {
                return Ranged::Whole;
            };
            let end = if b.is_empty() {
                size
            } else {
                match num(b) {
                    Some(e) if e >= start => e.saturating_add(1).min(size),
                    _ => return Ranged::Whole,
                }
            };
            if start >= size {
                return Ranged::Unsatisfiable;
            }
            start..end
        }
        (true, true) => return Ranged::Whole,
    };
    Ranged::Part(range)
}

fn http_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn not_modified(headers: &HeaderMap, modified: chrono::DateTime<chrono::Utc>) -> bool {
    let Some(since) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::NaiveDateTime::parse_from_str(v, "%a, %d %b %Y %H:%M:%S GMT").ok())
    else {
        return false;
    };
    modified.timestamp() <= since.and_utc().timestamp()
}

fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "t" | "true" | "T" | "TRUE" | "True"))
}

async fn download(
    State(app): State<AppState>,
    Meta(m): Meta,
    Path((collection, record, filename)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
    q: Query,
) -> ApiResult<Response> {
    let d = files::open(
        &app,
        &collection,
        &record,
        &filename,
        q.get("thumb").filter(|t| !t.is_empty()),
        q.get("token"),
        &m,
    )
    .await?;
    let disposition = if d.inline && !truthy(q.get("download")) {
        "inline"
    } else {
        "attachment"
    };
    let quoted = d.filename.replace(['"', '\\'], "_");
    let mut res = Response::builder()
        .header(
            header::CONTENT_DISPOSITION,
            format!("{disposition}; filename=\"{quoted}\""),
        )
        .header(header::CONTENT_TYPE, d.content_type.as_str())
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox",
        )
        .header(
            header::CACHE_CONTROL,
            "max-age=2592000, stale-while-revalidate=86400",
        )
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::LAST_MODIFIED, http_date(d.last_modified))
        .extension(AllowFraming);
    if not_modified(&headers, d.last_modified) {
        return res
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(internal);
    }
    let range = match parse_range(headers.get(header::RANGE), d.size) {
        Ranged::Whole => 0..d.size,
        Ranged::Part(r) => {
            res = res.status(StatusCode::PARTIAL_CONTENT).header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), d.size),
            );
            r
        }
        Ranged::Unsatisfiable => {
            return res
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{}", d.size))
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(Body::from("invalid range: failed to overlap\n"))
                .map_err(internal);
        }
    };
    res = res.header(header::CONTENT_LENGTH, range.end - range.start);
    if method == Method::HEAD {
        return res.body(Body::empty()).map_err(internal);
    }
    let stream = d
        .storage
        .stream(&d.key, range)
        .await
        .map_err(|e| galley_core::CoreError::internal(&e))?
        .map_err(std::io::Error::other);
    res.body(Body::from_stream(stream)).map_err(internal)
}

fn internal(e: axum::http::Error) -> crate::error::ApiError {
    crate::error::ApiError(galley_core::CoreError::internal(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str, size: u64) -> Ranged {
        parse_range(Some(&HeaderValue::from_str(s).expect("header")), size)
    }

    #[test]
    fn ranges() {
        assert_eq!(r("bytes=2-4", 11), Ranged::Part(2..5));
        assert_eq!(r("bytes=2-", 11), Ranged::Part(2..11));
        assert_eq!(r("bytes=-3", 11), Ranged::Part(8..11));
        assert_eq!(r("bytes=-30", 11), Ranged::Part(0..11));
        assert_eq!(r("bytes=5-100", 11), Ranged::Part(5..11));
        assert_eq!(r("bytes=50-60", 11), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=-0", 11), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=4-2", 11), Ranged::Whole);
        assert_eq!(r("bytes=0-1,3-4", 11), Ranged::Whole);
        assert_eq!(r("items=0-1", 11), Ranged::Whole);
        assert_eq!(r("bytes=a-b", 11), Ranged::Whole);
        assert_eq!(r("bytes=18446744073709551615-", 11), Ranged::Unsatisfiable);
        assert_eq!(parse_range(None, 11), Ranged::Whole);
    }
}
