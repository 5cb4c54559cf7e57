//! A minimal NATS client for publishing: the text protocol (INFO, CONNECT, PING/PONG,
//! HPUB, MSG/HMSG) over one TCP connection. With JetStream, a publish carries a
//! `Nats-Msg-Id` header (the stream drops duplicates within its window) and waits for the
//! stream's ack; without it, a publish is flushed with a PING.
//!
//! Every read is bounded (line length, payload size, time-outs); the connection is dropped
//! on any error and the caller reconnects.

use super::{BrokerError, Stream};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const MAX_LINE: usize = 64 * 1024;
const MAX_PAYLOAD: usize = 8 << 20;

fn err(m: impl Into<String>) -> BrokerError {
    BrokerError(m.into())
}

pub struct Nats {
    io: BufReader<Stream>,
    /// The server has JetStream.
    pub jetstream: bool,
    max_payload: usize,
    inbox: String,
    next: u64,
    timeout: Duration,
}

/// One protocol line, bounded in length and time.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    io: &mut R,
    timeout: Duration,
) -> Result<String, BrokerError> {
    let mut buf = Vec::new();
    let n = tokio::time::timeout(timeout, async {
        io.take(MAX_LINE as u64).read_until(b'\n', &mut buf).await
    })
    .await
    .map_err(|_| err("NATS did not answer in time"))?
    .map_err(|e| err(format!("NATS connection: {e}")))?;
    if n == 0 || !buf.ends_with(b"\n") {
        return Err(err("NATS closed the connection or sent a line too long"));
    }
    Ok(String::from_utf8_lossy(&buf).trim_end().to_owned())
}

/// One message the server delivered to our inbox.
struct Msg {
    status: Option<u16>,
    payload: Vec<u8>,
}

impl Nats {
    /// Connects to `nats://[user:pass@]host:port` (or `host:port`); `tls://` asks for TLS
    /// (the server must offer it; its certificate is checked against the web PKI roots).
    pub async fn connect(url: &str, timeout: Duration) -> Result<Nats, BrokerError> {
        let (tls, rest) = match url.strip_prefix("tls://") {
            Some(r) => (true, r),
            None => (false, url.strip_prefix("nats://").unwrap_or(url)),
        };
        let (auth, addr) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let addr = addr.trim_end_matches('/');
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| err("connecting to NATS timed out"))?
            .map_err(|e| err(format!("cannot connect to NATS at {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        // The server speaks first, in the clear (INFO); TLS starts after it.
        let mut plain = BufReader::new(stream);
        let info = read_line(&mut plain, timeout).await?;
        let info = info
            .strip_prefix("INFO ")
            .ok_or_else(|| err(format!("not a NATS server: {info:.80}")))?;
        let info: serde_json::Value =
            serde_json::from_str(info).map_err(|e| err(format!("NATS INFO: {e}")))?;
        let io: Stream = if tls {
            let offered = info["tls_required"].as_bool() == Some(true)
                || info["tls_available"].as_bool() == Some(true);
            if !offered {
                return Err(err(format!(
                    "the NATS server at {addr} does not offer TLS (the URL asks for tls://)"
                )));
            }
            let s = tokio::time::timeout(
                timeout,
                super::tls(plain.into_inner(), super::host_of(addr), "NATS"),
            )
            .await
            .map_err(|_| err("the TLS handshake with NATS timed out"))??;
            s
        } else if info["tls_required"].as_bool() == Some(true) {
            return Err(err(format!(
                "the NATS server at {addr} requires TLS: use a tls:// URL"
            )));
        } else {
            Box::new(plain.into_inner())
        };
        let mut c = Nats {
            io: BufReader::new(io),
            jetstream: false,
            max_payload: 1 << 20,
            inbox: format!("_INBOX.galley.{}", galley_types::ids::record_id()),
            next: 0,
            timeout,
        };
        c.jetstream = info["jetstream"].as_bool().unwrap_or(false);
        if let Some(m) = info["max_payload"].as_u64() {
            c.max_payload = usize::try_from(m).unwrap_or(MAX_PAYLOAD).min(MAX_PAYLOAD);
        }
        if info["headers"].as_bool() != Some(true) {
            return Err(err(
                "the NATS server does not support headers (needs 2.2 or later)",
            ));
        }
        let mut connect = serde_json::json!({
            "verbose": false, "pedantic": false, "headers": true, "no_responders": true,
            "tls_required": tls,
            "lang": "rust-galley", "version": env!("CARGO_PKG_VERSION"), "protocol": 1,
        });
        if let Some(a) = auth {
            match a.split_once(':') {
                Some((u, p)) => {
                    connect["user"] = u.into();
                    connect["pass"] = p.into();
                }
                None => connect["auth_token"] = a.into(),
            }
        }
        let sub = format!("CONNECT {connect}\r\nSUB {}.* 1\r\nPING\r\n", c.inbox);
        c.write(sub.as_bytes()).await?;
        c.pong().await?;
        Ok(c)
    }

    /// Publishes `payload` on `subject`: with JetStream, deduplicated by `msg_id` and
    /// acknowledged by the stream that captures the subject; otherwise flushed.
    pub async fn publish(
        &mut self,
        subject: &str,
        msg_id: &str,
        payload: &[u8],
    ) -> Result<(), BrokerError> {
        if !self.jetstream {
            self.hpub(subject, None, &[("Nats-Msg-Id", msg_id)], payload)
                .await?;
            self.write(b"PING\r\n").await?;
            return self.pong().await;
        }
        let reply = self
            .hpub_request(subject, &[("Nats-Msg-Id", msg_id)], payload)
            .await?;
        let m = self.reply(&reply).await?;
        if m.status == Some(503) {
            return Err(err(format!("no JetStream stream captures {subject:?}")));
        }
        let ack: serde_json::Value =
            serde_json::from_slice(&m.payload).map_err(|e| err(format!("JetStream ack: {e}")))?;
        if let Some(e) = ack.get("error") {
            return Err(err(format!("JetStream refused the message: {e}")));
        }
        Ok(())
    }

    /// A request (JetStream API calls): the reply's payload.
    pub async fn request(&mut self, subject: &str, payload: &[u8]) -> Result<Vec<u8>, BrokerError> {
        let reply = self.hpub_request(subject, &[], payload).await?;
        let m = self.reply(&reply).await?;
        if m.status == Some(503) {
            return Err(err(format!("no responders on {subject:?}")));
        }
        Ok(m.payload)
    }

    /// Creates the JetStream stream `name` over `subjects` unless it exists.
    pub async fn ensure_stream(
        &mut self,
        name: &str,
        subjects: &[String],
    ) -> Result<(), BrokerError> {
        let info = self
            .request(&format!("$JS.API.STREAM.INFO.{name}"), b"")
            .await?;
        let info: serde_json::Value = serde_json::from_slice(&info).unwrap_or_default();
        if info.get("error").is_none() {
            return Ok(());
        }
        let cfg = serde_json::json!({"name": name, "subjects": subjects, "storage": "file"});
        let r = self
            .request(
                &format!("$JS.API.STREAM.CREATE.{name}"),
                cfg.to_string().as_bytes(),
            )
            .await?;
        let r: serde_json::Value = serde_json::from_slice(&r).unwrap_or_default();
        match r.get("error") {
            None => Ok(()),
            Some(e) => Err(err(format!("cannot create JetStream stream {name}: {e}"))),
        }
    }

    async fn hpub_request(
        &mut self,
        subject: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) -> Result<String, BrokerError> {
        self.next += 1;
        let reply = format!("{}.{}", self.inbox, self.next);
        self.hpub(subject, Some(&reply), headers, payload).await?;
        Ok(reply)
    }

    async fn hpub(
        &mut self,
        subject: &str,
        reply: Option<&str>,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) -> Result<(), BrokerError> {
        if subject.is_empty() || subject.contains(|c: char| c.is_whitespace()) {
            return Err(err(format!("invalid NATS subject {subject:?}")));
        }
        let mut h = String::from("NATS/1.0\r\n");
        for (k, v) in headers {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        h.push_str("\r\n");
        let total = h.len() + payload.len();
        if total > self.max_payload {
            return Err(err(format!(
                "message of {total} bytes over the server's max_payload"
            )));
        }
        let mut out = match reply {
            Some(r) => format!("HPUB {subject} {r} {} {total}\r\n", h.len()),
            None => format!("HPUB {subject} {} {total}\r\n", h.len()),
        }
        .into_bytes();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
        self.write(&out).await
    }

    async fn write(&mut self, b: &[u8]) -> Result<(), BrokerError> {
        tokio::time::timeout(self.timeout, self.io.get_mut().write_all(b))
            .await
            .map_err(|_| err("writing to NATS timed out"))?
            .map_err(|e| err(format!("NATS connection: {e}")))
    }

    async fn line(&mut self) -> Result<String, BrokerError> {
        read_line(&mut self.io, self.timeout).await
    }

    /// Reads protocol lines until PONG, answering PINGs.
    async fn pong(&mut self) -> Result<(), BrokerError> {
        loop {
            match self.next_event().await? {
                Event::Pong => return Ok(()),
                Event::Msg(..) | Event::Other => {}
            }
        }
    }

    /// Reads until the message for `reply` arrives.
    async fn reply(&mut self, reply: &str) -> Result<Msg, BrokerError> {
        loop {
            if let Event::Msg(subject, m) = self.next_event().await? {
                if subject == reply {
                    return Ok(m);
                }
            }
        }
    }

    async fn next_event(&mut self) -> Result<Event, BrokerError> {
        let line = self.line().await?;
        let mut parts = line.split_whitespace();
        match parts.next().unwrap_or_default() {
            "PING" => {
                self.write(b"PONG\r\n").await?;
                Ok(Event::Other)
            }
            "PONG" => Ok(Event::Pong),
            "+OK" | "INFO" => Ok(Event::Other),
            "-ERR" => Err(err(format!("NATS: {line}"))),
            op @ ("MSG" | "HMSG") => {
                let args: Vec<&str> = parts.collect();
                let subject = args.first().copied().unwrap_or_default().to_owned();
                let (hlen, total) = if op == "HMSG" {
                    let n = args.len();
                    let h: usize = args
                        .get(n.wrapping_sub(2))
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let t: usize = args.last().and_then(|s| s.parse().ok()).unwrap_or(0);
                    (h, t)
                } else {
                    (0, args.last().and_then(|s| s.parse().ok()).unwrap_or(0))
                };
                if total > MAX_PAYLOAD || hlen > total {
                    return Err(err("NATS message too large"));
                }
                let mut data = vec![0u8; total + 2];
                tokio::time::timeout(self.timeout, self.io.read_exact(&mut data))
                    .await
                    .map_err(|_| err("NATS did not answer in time"))?
                    .map_err(|e| err(format!("NATS connection: {e}")))?;
                data.truncate(total);
                let status = (hlen > 0)
                    .then(|| {
                        let head = String::from_utf8_lossy(&data[..hlen]).into_owned();
                        head.lines()
                            .next()
                            .and_then(|l| l.split_whitespace().nth(1))
                            .and_then(|s| s.parse().ok())
                    })
                    .flatten();
                Ok(Event::Msg(
                    subject,
                    Msg {
                        status,
                        payload: data[hlen..].to_vec(),
                    },
                ))
            }
            _ => Ok(Event::Other),
        }
    }
}

enum Event {
    Pong,
    Msg(String, Msg),
    Other,
}
