//! A minimal AMQP 0-9-1 client: what a publisher with confirms needs (connection with
//! PLAIN auth, one channel in confirm mode, exchange declare, publish and wait for the
//! broker's ack), plus queue declare/bind and `basic.get` for setup and tests.
//!
//! Every read is bounded (frame size, time-outs); the connection is dropped on any error,
//! and the caller reconnects.

use super::{BrokerError, Stream};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;
/// Largest frame accepted from the server.
const MAX_FRAME: u32 = 1 << 20;

fn err(m: impl Into<String>) -> BrokerError {
    BrokerError(m.into())
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    pub host: String,
    pub port: u16,
    pub vhost: String,
    pub username: String,
    pub password: String,
    pub timeout: Duration,
    /// AMQPS: TLS from the first byte (RabbitMQ's TLS listener, usually port 5671), the
    /// server's certificate checked against the web PKI roots.
    pub tls: bool,
}

pub struct Amqp {
    io: BufReader<Stream>,
    frame_max: u32,
    /// Delivery tag of the last publish on the confirm channel.
    tag: u64,
    timeout: Duration,
}

struct Writer(Vec<u8>);

impl Writer {
    fn method(class: u16, method: u16) -> Writer {
        let mut w = Writer(Vec::with_capacity(64));
        w.u16(class).u16(method);
        w
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn short(&mut self, s: &str) -> Result<&mut Self, BrokerError> {
        let len =
            u8::try_from(s.len()).map_err(|_| err(format!("{s:?} is longer than 255 bytes")))?;
        self.u8(len);
        self.0.extend_from_slice(s.as_bytes());
        Ok(self)
    }
    fn long(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
        self
    }
    fn empty_table(&mut self) -> &mut Self {
        self.u32(0)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], BrokerError> {
        if self.0.len() < n {
            return Err(err("truncated AMQP frame"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, BrokerError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, BrokerError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, BrokerError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, BrokerError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn short(&mut self) -> Result<String, BrokerError> {
        let n = self.u8()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn skip_long(&mut self) -> Result<(), BrokerError> {
        let n = self.u32()? as usize;
        self.take(n).map(|_| ())
    }
}

/// A message fetched by [`Amqp::get`].
#[derive(Debug, Clone)]
pub struct Got {
    pub routing_key: String,
    pub message_id: String,
    pub body: Vec<u8>,
}

impl Amqp {
    pub async fn connect(cfg: &AmqpConfig) -> Result<Amqp, BrokerError> {
        let stream = tokio::time::timeout(
            cfg.timeout,
            TcpStream::connect((cfg.host.as_str(), cfg.port)),
        )
        .await
        .map_err(|_| err("connecting to RabbitMQ timed out"))?
        .map_err(|e| err(format!("cannot connect to RabbitMQ: {e}")))?;
        let _ = stream.set_nodelay(true);
        let conn: Stream = if cfg.tls {
            tokio::time::timeout(cfg.timeout, super::tls(stream, &cfg.host, "RabbitMQ"))
                .await
                .map_err(|_| err("the TLS handshake with RabbitMQ timed out"))??
        } else {
            Box::new(stream)
        };
        let mut c = Amqp {
            io: BufReader::new(conn),
            frame_max: 131_072,
            tag: 0,
            timeout: cfg.timeout,
        };
        c.io.get_mut()
            .write_all(b"AMQP\x00\x00\x09\x01")
            .await
            .map_err(io)?;
        c.expect(0, 10, 10).await?;
        let mut auth = Vec::new();
        auth.push(0);
        auth.extend_from_slice(cfg.username.as_bytes());
        auth.push(0);
        auth.extend_from_slice(cfg.password.as_bytes());
        let mut w = Writer::method(10, 11);
        w.empty_table().short("PLAIN")?.long(&auth).short("en_US")?;
        c.send_method(0, w).await?;
        let tune = c.expect(0, 10, 30).await?;
        let mut r = Reader(&tune);
        let channel_max = r.u16()?;
        let frame_max = r.u32()?;
        if frame_max != 0 {
            c.frame_max = frame_max.clamp(4096, 131_072);
        }
        let mut w = Writer::method(10, 31);
        w.u16(channel_max).u32(c.frame_max).u16(0);
        c.send_method(0, w).await?;
        let mut w = Writer::method(10, 40);
        w.short(&cfg.vhost)?.short("")?.u8(0);
        c.send_method(0, w).await?;
        c.expect(0, 10, 41).await?;
        let mut w = Writer::method(20, 10);
        w.short("")?;
        c.send_method(1, w).await?;
        c.expect(1, 20, 11).await?;
        let mut w = Writer::method(85, 10);
        w.u8(0);
        c.send_method(1, w).await?;
        c.expect(1, 85, 11).await?;
        Ok(c)
    }

    /// Declares a durable topic exchange (no-op when it exists with the same type).
    pub async fn declare_exchange(&mut self, name: &str) -> Result<(), BrokerError> {
        let mut w = Writer::method(40, 10);
        w.u16(0).short(name)?.short("topic")?.u8(2).empty_table();
        self.send_method(1, w).await?;
        self.expect(1, 40, 11).await.map(|_| ())
    }

    /// Declares a queue (durable, or exclusive to this connection and deleted with it) and
    /// binds it to `exchange` with `key`.
    pub async fn declare_queue(
        &mut self,
        queue: &str,
        durable: bool,
        exchange: &str,
        key: &str,
    ) -> Result<(), BrokerError> {
        let mut w = Writer::method(50, 10);
        w.u16(0)
            .short(queue)?
            .u8(if durable { 2 } else { 4 | 8 })
            .empty_table();
        self.send_method(1, w).await?;
        self.expect(1, 50, 11).await?;
        let mut w = Writer::method(50, 20);
        w.u16(0)
            .short(queue)?
            .short(exchange)?
            .short(key)?
            .u8(0)
            .empty_table();
        self.send_method(1, w).await?;
        self.expect(1, 50, 21).await.map(|_| ())
    }

    /// Deletes an exchange.
    pub async fn delete_exchange(&mut self, name: &str) -> Result<(), BrokerError> {
        let mut w = Writer::method(40, 20);
        w.u16(0).short(name)?.u8(0);
        self.send_method(1, w).await?;
        self.expect(1, 40, 21).await.map(|_| ())
    }

    /// Publishes one persistent message and waits for the broker's confirm.
    pub async fn publish(
        &mut self,
        exchange: &str,
        routing_key: &str,
        message_id: &str,
        body: &[u8],
    ) -> Result<(), BrokerError> {
        let mut w = Writer::method(60, 40);
        w.u16(0).short(exchange)?.short(routing_key)?.u8(0);
        let mut frames = frame(FRAME_METHOD, 1, &w.0);
        let mut h = Writer(Vec::with_capacity(64));
        h.u16(60)
            .u16(0)
            .u64(body.len() as u64)
            .u16(0x8000 | 0x1000 | 0x0080)
            .short("application/json")?
            .u8(2)
            .short(message_id)?;
        frames.extend(frame(FRAME_HEADER, 1, &h.0));
        let chunk = (self.frame_max as usize).saturating_sub(8).max(1);
        for part in body.chunks(chunk) {
            frames.extend(frame(FRAME_BODY, 1, part));
        }
        self.write(&frames).await?;
        self.tag += 1;
        let want = self.tag;
        loop {
            let (class, method, args) = self.method(1).await?;
            let mut r = Reader(&args);
            match (class, method) {
                (60, 80) => {
                    let tag = r.u64()?;
                    let multiple = r.u8()? & 1 == 1;
                    if tag == want || (multiple && tag >= want) {
                        return Ok(());
                    }
                }
                (60, 120) => return Err(err("RabbitMQ refused the message (nack)")),
                // A returned message (mandatory is off, so none) or anything else: skip.
                _ => {}
            }
        }
    }

    /// Takes one message from `queue` (acknowledged at once); `None` when it is empty.
    pub async fn get(&mut self, queue: &str) -> Result<Option<Got>, BrokerError> {
        let mut w = Writer::method(60, 70);
        w.u16(0).short(queue)?.u8(1);
        self.send_method(1, w).await?;
        loop {
            let (class, method, args) = self.method(1).await?;
            match (class, method) {
                (60, 72) => return Ok(None),
                (60, 71) => {
                    let mut r = Reader(&args);
                    let _tag = r.u64()?;
                    let _redelivered = r.u8()?;
                    let _exchange = r.short()?;
                    let routing_key = r.short()?;
                    let (ty, _, header) = self.frame().await?;
                    if ty != FRAME_HEADER {
                        return Err(err("expected a content header"));
                    }
                    let mut r = Reader(&header);
                    let _class = r.u16()?;
                    let _weight = r.u16()?;
                    let size = r.u64()?;
                    let flags = r.u16()?;
                    let mut message_id = String::new();
                    if flags & 0x8000 != 0 {
                        r.short()?;
                    }
                    if flags & 0x4000 != 0 {
                        r.short()?;
                    }
                    if flags & 0x2000 != 0 {
                        r.skip_long()?;
                    }
                    if flags & 0x1000 != 0 {
                        r.u8()?;
                    }
                    if flags & 0x0800 != 0 {
                        r.u8()?;
                    }
                    for bit in [0x0400u16, 0x0200, 0x0100] {
                        if flags & bit != 0 {
                            r.short()?;
                        }
                    }
                    if flags & 0x0080 != 0 {
                        message_id = r.short()?;
                    }
                    if size > u64::from(MAX_FRAME) * 16 {
                        return Err(err("message too large"));
                    }
                    let mut body = Vec::with_capacity(size as usize);
                    while (body.len() as u64) < size {
                        let (ty, _, part) = self.frame().await?;
                        if ty != FRAME_BODY {
                            return Err(err("expected a body frame"));
                        }
                        body.extend_from_slice(&part);
                    }
                    return Ok(Some(Got {
                        routing_key,
                        message_id,
                        body,
                    }));
                }
                _ => {}
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), BrokerError> {
        tokio::time::timeout(self.timeout, self.io.get_mut().write_all(bytes))
            .await
            .map_err(|_| err("writing to RabbitMQ timed out"))?
            .map_err(io)
    }

    async fn send_method(&mut self, channel: u16, w: Writer) -> Result<(), BrokerError> {
        let f = frame(FRAME_METHOD, channel, &w.0);
        self.write(&f).await
    }

    async fn frame(&mut self) -> Result<(u8, u16, Vec<u8>), BrokerError> {
        tokio::time::timeout(self.timeout, async {
            loop {
                let mut head = [0u8; 7];
                self.io.read_exact(&mut head).await.map_err(io)?;
                let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
                if size > MAX_FRAME {
                    return Err(err("AMQP frame too large"));
                }
                let mut payload = vec![0u8; size as usize + 1];
                self.io.read_exact(&mut payload).await.map_err(io)?;
                if payload.pop() != Some(FRAME_END) {
                    return Err(err("bad AMQP frame end"));
                }
                if head[0] == FRAME_HEARTBEAT {
                    continue;
                }
                return Ok((head[0], u16::from_be_bytes([head[1], head[2]]), payload));
            }
        })
        .await
        .map_err(|_| err("RabbitMQ did not answer in time"))?
    }

    /// The next method frame on `channel`; a connection or channel close is an error.
    async fn method(&mut self, channel: u16) -> Result<(u16, u16, Vec<u8>), BrokerError> {
        loop {
            let (ty, ch, payload) = self.frame().await?;
            if ty != FRAME_METHOD {
                continue;
            }
            let mut r = Reader(&payload);
            let (class, method) = (r.u16()?, r.u16()?);
            if (class, method) == (10, 50) || (class, method) == (20, 40) {
                let code = r.u16()?;
                let text = r.short()?;
                return Err(err(format!(
                    "RabbitMQ closed the {}: {code} {text}",
                    if class == 10 { "connection" } else { "channel" }
                )));
            }
            if ch == channel || ch == 0 {
                return Ok((class, method, r.0.to_vec()));
            }
        }
    }

    async fn expect(
        &mut self,
        channel: u16,
        class: u16,
        method: u16,
    ) -> Result<Vec<u8>, BrokerError> {
        let (c, m, args) = self.method(channel).await?;
        if (c, m) != (class, method) {
            return Err(err(format!(
                "unexpected AMQP method {c}.{m} (wanted {class}.{method})"
            )));
        }
        Ok(args)
    }
}

fn frame(ty: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 8);
    f.push(ty);
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f.push(FRAME_END);
    f
}

fn io(e: std::io::Error) -> BrokerError {
    err(format!("RabbitMQ connection: {e}"))
}
