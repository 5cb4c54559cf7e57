//! Request extractors: caller, query parameters, request bodies in JSON, multipart and
//! urlencoded form, each normalised to one JSON object.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::RequestExt;
use bytes::Bytes;
use futures_util::StreamExt;
use galley_core::files::Upload;
use galley_core::{Caller, CoreError, RequestMeta};
use galley_http::SpoolError;
use serde_json::{Map, Value};

/// Most keys read from a query string or form; more is hostile.
const MAX_PARAMS: usize = 1000;

/// The caller the authentication middleware put on a request (a guest when none).
pub fn caller_of(extensions: &axum::http::Extensions) -> Caller {
    extensions.get::<Caller>().cloned().unwrap_or_default()
}

/// The authenticated caller (set by the authentication middleware).
pub struct Auth(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Auth(caller_of(&parts.extensions)))
    }
}

/// The first value of each query parameter.
#[derive(Debug, Default, Clone)]
pub struct Query(pub Map<String, Value>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let mut m = Map::new();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|_| ApiError::bad_request("Invalid query string."))?;
        if pairs.len() > MAX_PARAMS {
            return Err(ApiError::bad_request("Too many query parameters."));
        }
        for (k, v) in pairs {
            m.entry(k).or_insert(Value::String(v));
        }
        Ok(Query(m))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = Query::parse(parts.uri.query())?;
        // Refused before the handler runs, so a write never happens under a bad `fields`.
        if q.get("fields")
            .is_some_and(|f| !galley_core::picker::is_valid(f))
        {
            return Err(ApiError::bad_request("Invalid fields parameter."));
        }
        Ok(q)
    }
}

/// `X-Some-Header` → `x_some_header`, as `@request.headers.*` names them.
fn snake_header(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

pub fn meta(method: &Method, query: &Query, headers: &HeaderMap) -> RequestMeta {
    let mut h = Map::new();
    for (k, v) in headers {
        if k == header::AUTHORIZATION {
            continue;
        }
        if let Ok(s) = v.to_str() {
            h.entry(snake_header(k.as_str()))
                .or_insert(Value::String(s.to_owned()));
        }
    }
    RequestMeta {
        method: method.as_str().to_owned(),
        context: "default".into(),
        query: query.0.clone(),
        headers: h,
    }
}

/// The request as services take it: the caller (set by the authentication middleware) and
/// what rules may read of the request.
pub struct Req(pub galley_core::Request);

impl<S: Send + Sync> FromRequestParts<S> for Req {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, ApiError> {
        let Auth(caller) = Auth::from_request_parts(parts, s).await?;
        let Meta(meta) = Meta::from_request_parts(parts, s).await?;
        Ok(Req(galley_core::Request::new(caller, meta)))
    }
}

/// Request info rules may use: method, query, headers.
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = Query::parse(parts.uri.query())?;
        Ok(Meta(meta(&parts.method, &q, &parts.headers)))
    }
}

/// A request body as one JSON object, whatever its content type, and the files of a
/// multipart body (spooled to disk as they arrive).
#[derive(Debug, Default)]
pub struct Body {
    pub values: Map<String, Value>,
    pub files: Vec<Upload>,
}

/// A body that cannot be read at all: PocketBase answers its generic 400 (§1).
fn invalid_body() -> ApiError {
    ApiError::bad_request(galley_core::error::GENERIC_400)
}

/// PocketBase's inference for form values: booleans and canonical numbers become JSON
/// values, everything else stays a string.
pub fn infer(s: &str) -> Value {
    match s {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() {
            let n = galley_types::field::number_json(f);
            let canonical = n.to_string();
            if canonical == s {
                return n;
            }
        }
    }
    Value::String(s.to_owned())
}

fn push_value(m: &mut Map<String, Value>, key: String, v: Value) {
    match m.get_mut(&key) {
        Some(Value::Array(a)) => a.push(v),
        Some(existing) => {
            let prev = existing.take();
            *existing = Value::Array(vec![prev, v]);
        }
        None => {
            m.insert(key, v);
        }
    }
}

pub fn parse_json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(invalid_body()),
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError(CoreError::TooLarge(format!(
        "Request entity too large (the limit is {limit} bytes)."
    )))
}

fn multipart_err(e: multer::Error, limit: u64) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            too_large(limit)
        }
        _ => invalid_body(),
    }
}

fn spool_err(e: std::io::Error) -> ApiError {
    ApiError(CoreError::Internal(format!(
        "spooling an upload failed: {e}"
    )))
}

/// Reads a multipart body as it arrives: plain parts into memory (at most `text_limit`
/// bytes in all), file parts straight to temporary files in `spool`, the whole body at
/// most `limit` bytes. A truncated or malformed body is a 400, an oversized one a 413.
async fn parse_multipart<S>(
    stream: S,
    boundary: String,
    limit: u64,
    text_limit: u64,
    spool: Option<&std::path::Path>,
) -> Result<Body, ApiError>
where
    S: futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(limit)
            .per_field(limit),
    );
    let mut mp = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut body = Body::default();
    let mut count = 0;
    let mut text_total: u64 = 0;
    while let Some(mut field) = mp.next_field().await.map_err(|e| multipart_err(e, limit))? {
        count += 1;
        if count > MAX_PARAMS {
            return Err(ApiError::bad_request("Too many form fields."));
        }
        let name = field.name().unwrap_or_default().to_owned();
        // An empty file input sends `filename=""`: a plain (empty) value, as in Go.
        let filename = field
            .file_name()
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        match (filename, spool) {
            (Some(filename), Some(dir)) => {
                // The whole-stream limit is multer's; the part itself has none of its own.
                let upload = galley_http::spool_file(dir, name, filename, field, u64::MAX)
                    .await
                    .map_err(|e| match e {
                        SpoolError::Read(e) => multipart_err(e, limit),
                        SpoolError::TooLarge(_) => too_large(limit),
                        SpoolError::Io(e) => spool_err(e),
                    })?;
                body.files.push(upload);
            }
            (Some(_), None) => {
                // Endpoints without file fields drop file parts unread into memory.
                while field
                    .chunk()
                    .await
                    .map_err(|e| multipart_err(e, limit))?
                    .is_some()
                {}
            }
            (None, _) => {
                let data = field.bytes().await.map_err(|e| multipart_err(e, limit))?;
                text_total += data.len() as u64;
                if text_total > text_limit {
                    return Err(too_large(text_limit));
                }
                if name == "@jsonPayload" {
                    for (k, v) in parse_json_object(&data)? {
                        body.values.insert(k, v);
                    }
                } else {
                    let s = String::from_utf8(data.to_vec()).map_err(|_| invalid_body())?;
                    push_value(&mut body.values, name, infer(&s));
                }
            }
        }
    }
    Ok(body)
}

fn multipart_boundary(headers: &HeaderMap) -> Option<Result<String, ApiError>> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !raw.to_ascii_lowercase().starts_with("multipart/form-data") {
        return None;
    }
    Some(multer::parse_boundary(raw).map_err(|_| invalid_body()))
}

impl Body {
    pub async fn parse(headers: &HeaderMap, bytes: Bytes) -> Result<Body, ApiError> {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body::default());
        }
        if let Some(boundary) = multipart_boundary(headers) {
            let len = bytes.len() as u64;
            let stream =
                futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(bytes) });
            return parse_multipart(stream, boundary?, len, len, None).await;
        }
        if ct.starts_with("application/x-www-form-urlencoded") {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&bytes).map_err(|_| invalid_body())?;
            if pairs.len() > MAX_PARAMS {
                return Err(ApiError::bad_request("Too many form fields."));
            }
            let mut values = Map::new();
            for (k, v) in pairs {
                push_value(&mut values, k, infer(&v));
            }
            return Ok(Body {
                values,
                files: vec![],
            });
        }
        if ct.is_empty() || ct.starts_with("application/json") || ct.ends_with("+json") {
            return Ok(Body {
                values: parse_json_object(&bytes)?,
                files: vec![],
            });
        }
        Err(ApiError::bad_request(format!("Unsupported Content-Type {ct:?}: send application/json, multipart/form-data or application/x-www-form-urlencoded.")))
    }
}

impl Body {
    /// Reads a body of at most `limit` bytes; multipart file parts are spooled to disk.
    pub async fn read(req: Request, app: &AppState, limit: u64) -> Result<Body, ApiError> {
        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        if let Some(boundary) = multipart_boundary(&parts.headers) {
            let stream = body
                .into_data_stream()
                .map(|r| r.map_err(std::io::Error::other));
            let dir = app.upload_dir();
            return parse_multipart(
                stream,
                boundary?,
                limit,
                app.config.body_limit as u64,
                Some(&dir),
            )
            .await;
        }
        let text_limit = app.config.body_limit;
        let bytes = axum::body::to_bytes(body, text_limit)
            .await
            .map_err(|_| too_large(text_limit as u64))?;
        Body::parse(&parts.headers, bytes).await
    }
}

impl FromRequest<AppState> for Body {
    type Rejection = ApiError;
    async fn from_request(req: Request, app: &AppState) -> Result<Self, ApiError> {
        Body::read(req, app, app.config.body_limit as u64).await
    }
}

/// The body of an auth endpoint, counted against the per-IP auth rate limit. The body is
/// read first, so a malformed one is answered with its 400 and does not count; a readable
/// one counts before the handler runs (429 past the limit).
pub struct LimitedBody(pub Body);

impl FromRequest<AppState> for LimitedBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, app: &AppState) -> Result<Self, ApiError> {
        let caller = caller_of(req.extensions());
        let ip = galley_http::client_ip(app, galley_http::peer(req.extensions()), req.headers());
        let body = Body::from_request(req, app).await?;
        app.auth.limit_ip(&caller, &ip)?;
        Ok(LimitedBody(body))
    }
}

/// The body of a record create/update: its limit grows with what the collection's file,
/// editor and json fields may hold (PocketBase's rule).
pub struct RecordBody(pub Body);

impl FromRequest<AppState> for RecordBody {
    type Rejection = ApiError;
    async fn from_request(mut req: Request, app: &AppState) -> Result<Self, ApiError> {
        let params = req
            .extract_parts::<axum::extract::RawPathParams>()
            .await
            .ok();
        let col = params.as_ref().and_then(|p| {
            p.iter()
                .find(|(k, _)| *k == "collection")
                .and_then(|(_, v)| app.schema().find(v).cloned())
        });
        let limit = match col {
            Some(c) => galley_core::files::body_limit(&c, app.config.body_limit),
            None => app.config.body_limit as u64,
        };
        Ok(RecordBody(Body::read(req, app, limit).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inference_matches_pocketbase() {
        assert_eq!(infer("true"), json!(true));
        assert_eq!(infer("12"), json!(12));
        assert_eq!(infer("1.5"), json!(1.5));
        assert_eq!(infer("012"), json!("012"));
        assert_eq!(infer("1e3"), json!("1e3"));
        assert_eq!(infer(""), json!(""));
        assert_eq!(infer("abc"), json!("abc"));
    }
}
