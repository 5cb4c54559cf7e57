//! `GET /api/realtime/ws`: the realtime topics over a WebSocket, with resume (Galley's
//! extension; docs/realtime-websocket.md describes the protocol).

use crate::error::ApiError;
use crate::AppState;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use galley_core::{Caller, CoreError};
use galley_realtime::{Dropped, SubscribeError};
use serde_json::{json, Value};
use std::net::SocketAddr;

/// Close code for a client dropped because it did not keep up.
const CLOSE_TOO_SLOW: u16 = 4000;
/// Close code for a client whose account was deleted or whose tokens were revoked.
const CLOSE_AUTH_REVOKED: u16 = 4001;
/// Close code for a client that missed events (the server fell behind): reload.
const CLOSE_MISSED: u16 = 4002;
/// Close code (RFC 6455 "going away") at the session's maximum age.
const CLOSE_MAX_AGE: u16 = 1001;
/// Close code (RFC 6455 "try again later") when the connection limit was reached after the
/// upgrade.
const CLOSE_TRY_AGAIN: u16 = 1013;
/// Largest client frame accepted.
const MAX_FRAME: usize = 1 << 20;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/realtime/ws", get(upgrade))
}

async fn upgrade(
    State(app): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let ip = super::realtime::origin(&app, addr, &headers);
    // Refused before the upgrade when possible, so that clients get PocketBase's error JSON;
    // `session` checks again (another client may take the last place meanwhile).
    if let Err(full) = app.realtime.is_full(&ip) {
        return ApiError(super::realtime::too_many_connections(full)).into_response();
    }
    ws.max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| session(app, ip, socket))
        .into_response()
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(WsMessage::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}

struct Registration {
    app: AppState,
    id: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.app.realtime.disconnect(&self.id);
    }
}

async fn send(socket: &mut WebSocket, v: Value) -> bool {
    socket
        .send(WsMessage::Text(Utf8Bytes::from(v.to_string())))
        .await
        .is_ok()
}

async fn session(app: AppState, ip: String, mut socket: WebSocket) {
    let (id, mut rx) = match app.realtime.connect(&ip) {
        Ok(c) => c,
        Err(_) => {
            let _ = socket
                .send(WsMessage::Close(Some(CloseFrame {
                    code: CLOSE_TRY_AGAIN,
                    reason: Utf8Bytes::from_static("too many realtime connections"),
                })))
                .await;
            return;
        }
    };
    let _reg = Registration {
        app: app.clone(),
        id: id.clone(),
    };
    if !send(
        &mut socket,
        json!({"type": "connect", "clientId": id, "lastEventId": app.journal.last()}),
    )
    .await
    {
        return;
    }
    let max_age = tokio::time::sleep(app.config.realtime_max_age);
    tokio::pin!(max_age);
    loop {
        tokio::select! {
            () = &mut max_age => {
                close(&mut socket, CLOSE_MAX_AGE, "maximum session age: reconnect").await;
                return;
            }
            msg = rx.recv() => match msg {
                Some(m) => {
                    let frame = format!(
                        "{{\"type\":\"event\",\"id\":{},\"topic\":{},\"data\":{}}}",
                        m.seq,
                        Value::String(m.event),
                        m.data
                    );
                    if socket.send(WsMessage::Text(Utf8Bytes::from(frame))).await.is_err() {
                        return;
                    }
                }
                None => {
                    let (code, reason) = match rx.reason() {
                        Some(Dropped::AuthRevoked) => (CLOSE_AUTH_REVOKED, "the account's sessions were revoked: sign in again"),
                        Some(Dropped::Missed) => (CLOSE_MISSED, "events were lost: reconnect and reload your data"),
                        _ => (CLOSE_TOO_SLOW, "too slow: events were not read fast enough"),
                    };
                    close(&mut socket, code, reason).await;
                    return;
                }
            },
            frame = socket.recv() => match frame {
                Some(Ok(WsMessage::Text(t))) => {
                    let reply = handle(&app, &id, &ip, t.as_str()).await;
                    for r in reply {
                        if !send(&mut socket, r).await {
                            return;
                        }
                    }
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

fn error(message: &str) -> Value {
    json!({"type": "error", "message": message})
}

/// One client command: `{"type":"subscribe","subscriptions":[…],"token":"…","lastEventId":N}`.
async fn handle(app: &AppState, id: &str, ip: &str, text: &str) -> Vec<Value> {
    let Ok(Value::Object(cmd)) = serde_json::from_str::<Value>(text) else {
        return vec![error(
            "Send a JSON object such as {\"type\":\"subscribe\",\"subscriptions\":[\"posts/*\"]}.",
        )];
    };
    if cmd.get("type").and_then(Value::as_str) != Some("subscribe") {
        return vec![error(
            "Unknown message type: only \"subscribe\" is understood.",
        )];
    }
    let topics: Vec<String> = match cmd.get("subscriptions") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => return vec![error("subscriptions must be an array of topics.")],
    };
    let caller = match cmd.get("token").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => galley_core::identity::authenticate(app, t).await,
        _ => Caller::Guest,
    };
    if matches!(caller, Caller::Guest)
        && cmd
            .get("token")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty())
    {
        return vec![error(
            &CoreError::Unauthorized("The token is invalid or expired.".into()).to_string(),
        )];
    }
    let auth = match &caller {
        Caller::Guest => None,
        c => Some(c.clone()),
    };
    match app.realtime.subscribe(id, ip, auth, &topics) {
        Ok(()) => {}
        Err(SubscribeError::AuthMismatch) => {
            return vec![error(
                "The current and the previous request authorization don't match.",
            )]
        }
        Err(SubscribeError::TooMany(limit)) => {
            return vec![error(&format!("At most {limit} subscriptions."))]
        }
        Err(SubscribeError::TooLong(bytes)) => {
            return vec![error(&format!(
                "The subscriptions must total at most {bytes} bytes."
            ))]
        }
        Err(SubscribeError::BadTopic(t)) => {
            return vec![error(&format!("Invalid subscription {t:?}."))]
        }
        Err(SubscribeError::UnknownClient | SubscribeError::OriginMismatch) => {
            return vec![error("Invalid realtime client.")]
        }
    }
    let mut out = vec![json!({"type": "subscribed", "subscriptions": topics})];
    if let Some(last) = cmd.get("lastEventId").and_then(Value::as_u64) {
        if !galley_core::realtime::replay(app, id, last).await {
            out.push(json!({"type": "reload", "reason": format!("events after {last} are no longer kept: reload your data")}));
        }
    }
    out
}
