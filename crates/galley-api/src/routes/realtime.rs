//! `GET /api/realtime` (SSE) and `POST /api/realtime` (set subscriptions), PocketBase's
//! protocol: `PB_CONNECT` first, then events named exactly like the subscription.

use super::no_content;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Body};
use crate::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use galley_core::{Caller, CoreError};
use galley_realtime::SubscribeError;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

/// A stream with no event for this long is closed (the SDK reconnects), as PocketBase does.
const IDLE: Duration = Duration::from_secs(5 * 60);
/// Comment lines that keep proxies from cutting a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

pub fn router() -> Router<AppState> {
    Router::new().route("/api/realtime", get(connect).post(subscribe))
}

/// Removes the client from the hub when its stream ends, however it ends.
struct Registration {
    app: AppState,
    id: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.app.realtime.disconnect(&self.id);
    }
}

/// Where a realtime client connects from: the client IP (behind a trusted proxy, the
/// address it forwards), which connections are counted by and subscriptions must match.
pub(crate) fn origin(app: &AppState, addr: SocketAddr, headers: &HeaderMap) -> String {
    galley_http::client_ip(app, Some(addr), headers)
}

async fn connect(
    State(app): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let (id, rx) = match app.realtime.connect(&origin(&app, addr, &headers)) {
        Ok(c) => c,
        Err(full) => return ApiError(too_many_connections(full)).into_response(),
    };
    // The stream owns the registration and the queue, so the client leaves the hub as soon
    // as hyper drops the response body (connection closed), not at the next event.
    let state = StreamState {
        _reg: Registration {
            app: app.clone(),
            id: id.clone(),
        },
        id,
        rx: Some(rx),
        connected: false,
        deadline: tokio::time::Instant::now() + app.config.realtime_max_age,
    };
    let stream = futures_util::stream::unfold(state, next_event);
    let mut res = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    let h = res.headers_mut();
    h.insert(
        "cache-control",
        axum::http::HeaderValue::from_static("no-store"),
    );
    h.insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    res
}

/// The answer when `realtime.maxConnections` clients are connected (SSE and WebSocket), or
/// `realtime.maxConnectionsPerIP` from the caller's address (429, as a rate limit).
pub(crate) fn too_many_connections(full: galley_realtime::Full) -> CoreError {
    if full.per_ip {
        return CoreError::TooManyRequests { retry_after: 60 };
    }
    CoreError::Overloaded(format!(
        "Too many realtime connections (the limit is {}). Try again later.",
        full.limit
    ))
}

struct StreamState {
    _reg: Registration,
    id: String,
    /// `None` once the stream has ended.
    rx: Option<galley_realtime::Inbox>,
    connected: bool,
    deadline: tokio::time::Instant,
}

/// `PB_CONNECT` first, then the client's queue until the hub drops it (too slow, or its
/// auth revoked), it stays idle for `IDLE` or it reaches `AppConfig::realtime_max_age`.
async fn next_event(mut st: StreamState) -> Option<(Result<Event, Infallible>, StreamState)> {
    if !st.connected {
        st.connected = true;
        let connect = Event::default()
            .id(&st.id)
            .event("PB_CONNECT")
            .data(json!({"clientId": st.id}).to_string());
        return Some((Ok(connect), st));
    }
    let rx = st.rx.as_mut()?;
    let wait = IDLE.min(
        st.deadline
            .saturating_duration_since(tokio::time::Instant::now()),
    );
    match tokio::time::timeout(wait, rx.recv()).await {
        Ok(Some(m)) => {
            let ev = Event::default().id(&st.id).event(m.event).data(m.data);
            Some((Ok(ev), st))
        }
        Ok(None) | Err(_) => None,
    }
}

async fn subscribe(
    State(app): State<AppState>,
    Auth(caller): Auth,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let id = body
        .values
        .get("clientId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if id.is_empty() || id.len() > 255 {
        return Err(ApiError(CoreError::BadRequest {
            message: "Failed to load the submitted data due to invalid formatting.".into(),
            data: json!({"clientId": {"code": "validation_required", "message": "Cannot be blank."}}),
        }));
    }
    let topics: Vec<String> = match body.values.get("subscriptions") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "Failed to load the submitted data due to invalid formatting.",
            ))
        }
    };
    let auth = match &caller {
        Caller::Guest => None,
        c => Some(c.clone()),
    };
    match app
        .realtime
        .subscribe(&id, &origin(&app, addr, &headers), auth, &topics)
    {
        Ok(()) => Ok(no_content()),
        Err(SubscribeError::UnknownClient) => Err(ApiError(CoreError::NotFound(
            "Missing or invalid client id.".into(),
        ))),
        Err(SubscribeError::AuthMismatch) => Err(ApiError(CoreError::Forbidden(
            "The current and the previous request authorization don't match.".into(),
        ))),
        Err(SubscribeError::OriginMismatch) => {
            Err(ApiError::bad_request("Invalid realtime client."))
        }
        Err(SubscribeError::TooMany(limit)) => Err(ApiError(CoreError::BadRequest {
            message: "Failed to load the submitted data due to invalid formatting.".into(),
            data: json!({"subscriptions": {"code": "validation_length_too_long", "message": format!("The length must be no more than {limit}.")}}),
        })),
        Err(SubscribeError::TooLong(bytes)) => Err(ApiError(CoreError::BadRequest {
            message: "Failed to load the submitted data due to invalid formatting.".into(),
            data: json!({"subscriptions": {"code": "validation_length_too_long", "message": format!("The subscriptions must total at most {bytes} bytes.")}}),
        })),
        Err(SubscribeError::BadTopic(t)) => Err(ApiError(CoreError::BadRequest {
            message: "Failed to load the submitted data due to invalid formatting.".into(),
            data: json!({"subscriptions": {"code": "validation_invalid_value", "message": format!("Invalid subscription {t:?}.")}}),
        })),
    }
}
