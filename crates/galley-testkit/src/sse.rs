//! A minimal server-sent-events client for realtime tests.

use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: Value,
}

pub struct SseClient {
    resp: reqwest::Response,
    buf: String,
    /// Bytes of a character split between two chunks.
    partial: Vec<u8>,
    pub client_id: String,
    /// The server ended the stream (`next` then answers `None` at once).
    pub ended: bool,
}

impl SseClient {
    /// Connects to `GET /api/realtime` and reads the `PB_CONNECT` event.
    pub async fn connect(base_url: &str) -> SseClient {
        let resp = reqwest::Client::new()
            .get(format!("{base_url}/api/realtime"))
            .send()
            .await
            .expect("sse connect");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut c = SseClient {
            resp,
            buf: String::new(),
            partial: Vec::new(),
            client_id: String::new(),
            ended: false,
        };
        let first = c.next(Duration::from_secs(5)).await.expect("PB_CONNECT");
        assert_eq!(first.event, "PB_CONNECT");
        assert_eq!(
            first.id,
            first.data["clientId"].as_str().unwrap_or_default()
        );
        c.client_id = first.id;
        c
    }

    /// The next event, or `None` if none arrives within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim_start().to_owned();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim_start().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if event.is_empty() && data.is_empty() {
                    continue; // keep-alive comment
                }
                return Some(SseEvent {
                    id,
                    event,
                    data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
                });
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => {
                    self.partial.extend_from_slice(&bytes);
                    let valid = match std::str::from_utf8(&self.partial) {
                        Ok(_) => self.partial.len(),
                        Err(e) if e.error_len().is_none() => e.valid_up_to(),
                        Err(_) => self.partial.len(),
                    };
                    let rest = self.partial.split_off(valid);
                    self.buf.push_str(&String::from_utf8_lossy(&self.partial));
                    self.partial = rest;
                }
                Ok(Ok(None) | Err(_)) => {
                    self.ended = true;
                    return None;
                }
                Err(_) => return None,
            }
        }
    }
}
