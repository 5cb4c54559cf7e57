//! The realtime hub: connected clients, their subscriptions (PocketBase topics) and a
//! bounded queue per client. It knows nothing of rules or records: the records service
//! decides who may see an event and hands the hub finished messages.
//!
//! Architecture invariant: a client's queue is bounded; a client that cannot keep up is
//! dropped (its stream ends with a reason), so memory stays bounded whatever clients do.

mod journal;

pub use journal::{Journal, JOURNAL_BYTES, JOURNAL_LEN};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Messages queued per client before it counts as too slow.
pub const QUEUE_LEN: usize = 512;
/// Bytes queued per client before it counts as too slow (512 messages of 1 MB records would
/// be half a gigabyte for one client that stopped reading). One message of any size is
/// always queued when nothing else is.
pub const QUEUE_BYTES: usize = 8 << 20;
/// Subscriptions per client and characters per topic, as PocketBase limits them (the
/// subscription count can be lowered by settings, never raised above this).
pub const MAX_SUBSCRIPTIONS: usize = 1000;
pub const MAX_TOPIC_LEN: usize = 2500;
/// The most bytes of topics one client may hold (1,000 topics of 2,500 characters would be
/// 2.5 MB per client, held for its whole life).
pub const MAX_TOPIC_BYTES: usize = 128 << 10;
/// Default for the most clients (SSE and WebSocket together) connected at once.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Default for the most clients connected at once from one IP address, so that one
/// address cannot take every place.
pub const MAX_CONNECTIONS_PER_IP: usize = 100;

/// The hub's limits; changed at runtime when the settings change. Lowering a limit refuses
/// new connections or subscription sets, it does not cut existing ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_ip: usize,
    pub max_subscriptions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            max_per_ip: MAX_CONNECTIONS_PER_IP,
            max_subscriptions: MAX_SUBSCRIPTIONS,
        }
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The event's position in this node's journal (WebSocket resume); 0 for none.
    pub seq: u64,
    pub event: String,
    pub data: String,
}

/// A parsed subscription topic: `posts/*`, `posts/RECORD_ID`, `posts` (legacy for `/*`),
/// each optionally followed by `?options=<urlencoded JSON {query, headers}>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    /// The exact subscription string: events are sent under this name.
    pub raw: String,
    pub collection: String,
    /// `None` for all records of the collection.
    pub record_id: Option<String>,
    pub query: Map<String, Value>,
    pub headers: Map<String, Value>,
    /// `query` and `headers` as one string: topics with equal keys see an event the same way
    /// (for the same auth), so delivery can check and shape it once for all of them.
    pub options_key: String,
}

impl Topic {
    pub fn parse(raw: &str) -> Option<Topic> {
        if raw.is_empty() || raw.len() > MAX_TOPIC_LEN {
            return None;
        }
        let (path, opts) = match raw.split_once("?options=") {
            Some((p, o)) => (p, Some(o)),
            None => (raw.split('?').next().unwrap_or(raw), None),
        };
        let (collection, record_id) = match path.split_once('/') {
            Some((c, "*")) => (c, None),
            Some((c, id)) if !id.is_empty() => (c, Some(id.to_owned())),
            Some(_) => return None,
            None => (path, None),
        };
        if collection.is_empty() {
            return None;
        }
        let mut query = Map::new();
        let mut headers = Map::new();
        if let Some(o) = opts {
            let decoded = percent_encoding::percent_decode_str(o).decode_utf8().ok()?;
            if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&decoded) {
                if let Some(Value::Object(q)) = m.get("query") {
                    query = stringify(q);
                }
                if let Some(Value::Object(h)) = m.get("headers") {
                    headers = stringify(h)
                        .into_iter()
                        .map(|(k, v)| (k.to_ascii_lowercase().replace('-', "_"), v))
                        .collect();
                }
            }
        }
        let options_key = if query.is_empty() && headers.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&(&query, &headers)).unwrap_or_default()
        };
        Some(Topic {
            raw: raw.to_owned(),
            collection: collection.to_owned(),
            record_id,
            query,
            headers,
            options_key,
        })
    }
}

fn stringify(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), Value::String(s))
        })
        .collect()
}

/// What the hub keeps of a client. Auth and topics are shared (`Arc`) so that delivery
/// takes a snapshot under the hub's lock without copying them.
struct Client<A> {
    tx: mpsc::Sender<Message>,
    /// Bytes queued and not yet taken by the client's stream.
    queued: Arc<AtomicUsize>,
    /// Why the hub dropped the client, for its stream to tell.
    reason: Arc<Mutex<Option<Dropped>>>,
    /// The auth of the last subscription, set once.
    auth: Option<Arc<A>>,
    topics: Arc<Vec<Topic>>,
    /// Where the connection came from (subscriptions must come from the same place).
    origin: String,
}

/// Why the hub dropped a client (its stream ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Its queue was full: it did not read fast enough.
    TooSlow,
    /// The account it authenticated as was deleted or its tokens revoked (password change).
    AuthRevoked,
    /// Events were lost before delivery (the server fell behind): reload.
    Missed,
}

/// A client's side of the hub: its queued messages, then why they ended.
pub struct Inbox {
    rx: mpsc::Receiver<Message>,
    queued: Arc<AtomicUsize>,
    reason: Arc<Mutex<Option<Dropped>>>,
}

fn weight(m: &Message) -> usize {
    m.event.len() + m.data.len()
}

impl Inbox {
    /// The next message; `None` once the hub dropped the client (see [`Inbox::reason`]).
    pub async fn recv(&mut self) -> Option<Message> {
        let m = self.rx.recv().await?;
        self.queued.fetch_sub(weight(&m), Ordering::Relaxed);
        Some(m)
    }

    /// Why the hub dropped the client (`None` when it was not dropped, or shut down).
    pub fn reason(&self) -> Option<Dropped> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What delivery decides about a client's auth after its record changed.
pub enum Revision<A> {
    Keep,
    /// The same account, as it is now.
    Replace(A),
    /// Drop the client ([`Dropped::AuthRevoked`]).
    Drop,
}

#[derive(Default)]
struct Clients<A> {
    by_id: HashMap<String, Client<A>>,
    per_ip: HashMap<String, usize>,
}

impl<A> Clients<A> {
    fn remove(&mut self, id: &str, why: Option<Dropped>) -> bool {
        let Some(c) = self.by_id.remove(id) else {
            return false;
        };
        if let Some(why) = why {
            *c.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        }
        if let Some(n) = self.per_ip.get_mut(&c.origin) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&c.origin);
            }
        }
        true
    }
}

/// The registry. `A` is the caller type of the service layer.
pub struct Hub<A> {
    clients: Mutex<Clients<A>>,
    max_connections: AtomicUsize,
    max_per_ip: AtomicUsize,
    max_subscriptions: AtomicUsize,
    /// Clients dropped because their queue was full, for metrics.
    dropped: std::sync::atomic::AtomicU64,
}

/// The hub now, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    pub clients: u64,
    /// Messages queued for clients, not yet written to their sockets.
    pub queued: u64,
    /// Clients dropped as too slow since start.
    pub dropped: u64,
}

/// A snapshot of one client's subscriptions for delivery (all of them: the caller picks
/// those of the event's collection, outside the hub's lock).
pub struct Target<A> {
    pub client_id: String,
    pub auth: Option<Arc<A>>,
    pub topics: Arc<Vec<Topic>>,
}

pub fn client_id() -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..40)
        .map(|_| ALNUM[rng.gen_range(0..ALNUM.len())] as char)
        .collect()
}

#[derive(Debug, PartialEq, Eq)]
pub enum SubscribeError {
    UnknownClient,
    AuthMismatch,
    OriginMismatch,
    /// More topics than the limit (carried).
    TooMany(usize),
    /// More bytes of topics than [`MAX_TOPIC_BYTES`].
    TooLong(usize),
    BadTopic(String),
}

/// `connect` refused: the hub already holds `limit` clients (`per_ip`: from this address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    pub limit: usize,
    pub per_ip: bool,
}

impl<A: Clone + PartialEq> Hub<A> {
    pub fn new(limits: Limits) -> Self {
        let hub = Hub {
            clients: Mutex::new(Clients {
                by_id: HashMap::new(),
                per_ip: HashMap::new(),
            }),
            max_connections: AtomicUsize::new(0),
            max_per_ip: AtomicUsize::new(0),
            max_subscriptions: AtomicUsize::new(0),
            dropped: std::sync::atomic::AtomicU64::new(0),
        };
        hub.set_limits(limits);
        hub
    }

    pub fn set_limits(&self, limits: Limits) {
        self.max_connections
            .store(limits.max_connections, Ordering::Relaxed);
        self.max_per_ip.store(limits.max_per_ip, Ordering::Relaxed);
        self.max_subscriptions.store(
            limits.max_subscriptions.min(MAX_SUBSCRIPTIONS),
            Ordering::Relaxed,
        );
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections.load(Ordering::Relaxed),
            max_per_ip: self.max_per_ip.load(Ordering::Relaxed),
            max_subscriptions: self.max_subscriptions.load(Ordering::Relaxed),
        }
    }

    /// Whether `connect` from `origin` would be refused now (a cheap early answer before a
    /// WebSocket upgrade; `connect` checks again).
    pub fn is_full(&self, origin: &str) -> Result<(), Full> {
        Self::check_room(&self.lock(), self.limits(), origin)
    }

    fn check_room(clients: &Clients<A>, limits: Limits, origin: &str) -> Result<(), Full> {
        if clients.by_id.len() >= limits.max_connections {
            return Err(Full {
                limit: limits.max_connections,
                per_ip: false,
            });
        }
        if clients.per_ip.get(origin).copied().unwrap_or(0) >= limits.max_per_ip {
            return Err(Full {
                limit: limits.max_per_ip,
                per_ip: true,
            });
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clients<A>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new client from `origin` (its IP address), unless a connection limit is
    /// reached.
    pub fn connect(&self, origin: &str) -> Result<(String, Inbox), Full> {
        let limits = self.limits();
        let mut clients = self.lock();
        Self::check_room(&clients, limits, origin)?;
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        let reason = Arc::new(Mutex::new(None));
        let queued = Arc::new(AtomicUsize::new(0));
        let id = client_id();
        clients.by_id.insert(
            id.clone(),
            Client {
                tx,
                queued: queued.clone(),
                reason: reason.clone(),
                auth: None,
                topics: Arc::new(vec![]),
                origin: origin.to_owned(),
            },
        );
        *clients.per_ip.entry(origin.to_owned()).or_default() += 1;
        Ok((id, Inbox { rx, queued, reason }))
    }

    pub fn disconnect(&self, id: &str) {
        self.lock().remove(id, None);
    }

    /// Drops every client (their streams end; clients reconnect elsewhere or later), with
    /// `why` when it is not a shutdown. Returns how many there were.
    pub fn disconnect_all(&self, why: Option<Dropped>) -> usize {
        let mut clients = self.lock();
        let ids: Vec<String> = clients.by_id.keys().cloned().collect();
        for id in &ids {
            clients.remove(id, why);
        }
        ids.len()
    }

    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    pub fn stats(&self) -> HubStats {
        let clients = self.lock();
        HubStats {
            clients: clients.by_id.len() as u64,
            queued: clients
                .by_id
                .values()
                .map(|c| (c.tx.max_capacity() - c.tx.capacity()) as u64)
                .sum(),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces a client's subscriptions (PocketBase semantics: the whole set each time).
    pub fn subscribe(
        &self,
        id: &str,
        origin: &str,
        auth: Option<A>,
        topics: &[String],
    ) -> Result<(), SubscribeError> {
        let limit = self.max_subscriptions.load(Ordering::Relaxed);
        if topics.len() > limit {
            return Err(SubscribeError::TooMany(limit));
        }
        if topics.iter().map(String::len).sum::<usize>() > MAX_TOPIC_BYTES {
            return Err(SubscribeError::TooLong(MAX_TOPIC_BYTES));
        }
        let mut parsed = Vec::with_capacity(topics.len());
        for t in topics {
            parsed.push(Topic::parse(t).ok_or_else(|| SubscribeError::BadTopic(t.clone()))?);
        }
        let topics = Arc::new(parsed);
        let auth = auth.map(Arc::new);
        let mut clients = self.lock();
        let c = clients
            .by_id
            .get_mut(id)
            .ok_or(SubscribeError::UnknownClient)?;
        if c.origin != origin {
            return Err(SubscribeError::OriginMismatch);
        }
        if c.auth.is_some() && c.auth != auth {
            return Err(SubscribeError::AuthMismatch);
        }
        if auth.is_some() {
            c.auth = auth;
        }
        c.topics = topics;
        Ok(())
    }

    /// The clients with at least one topic on `collection` (by name or id).
    pub fn targets(&self, collection_names: &[&str]) -> Vec<Target<A>> {
        let on = |t: &Topic| {
            collection_names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&t.collection))
        };
        self.lock()
            .by_id
            .iter()
            .filter(|(_, c)| c.topics.iter().any(on))
            .map(|(id, c)| Target {
                client_id: id.clone(),
                auth: c.auth.clone(),
                topics: c.topics.clone(),
            })
            .collect()
    }

    /// Queues a message; a client whose queue is full ([`QUEUE_LEN`] messages or
    /// [`QUEUE_BYTES`]) is dropped.
    pub fn send(&self, id: &str, msg: Message) -> Result<(), Dropped> {
        let mut clients = self.lock();
        let Some(c) = clients.by_id.get(id) else {
            return Ok(());
        };
        let size = weight(&msg);
        let before = c.queued.load(Ordering::Relaxed);
        let sent = if before > 0 && before + size > QUEUE_BYTES {
            Err(mpsc::error::TrySendError::Full(msg))
        } else {
            c.queued.fetch_add(size, Ordering::Relaxed);
            c.tx.try_send(msg).inspect_err(|_| {
                c.queued.fetch_sub(size, Ordering::Relaxed);
            })
        };
        match sent {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                clients.remove(id, None);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                clients.remove(id, Some(Dropped::TooSlow));
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Err(Dropped::TooSlow)
            }
        }
    }

    /// Removes the subscription `topic` (exact) from client `id`; false when the client is
    /// not there or was not subscribed. The OAuth2 redirect uses it so that one redirect
    /// answers one subscription.
    pub fn take_topic(&self, id: &str, topic: &str) -> bool {
        let mut clients = self.lock();
        let Some(c) = clients.by_id.get_mut(id) else {
            return false;
        };
        if !c.topics.iter().any(|t| t.raw == topic) {
            return false;
        }
        c.topics = Arc::new(
            c.topics
                .iter()
                .filter(|t| t.raw != topic)
                .cloned()
                .collect(),
        );
        true
    }

    /// Applies `f` to every authenticated client: keeps it, replaces its auth (the same
    /// account, changed) or drops it ([`Dropped::AuthRevoked`]). Returns how many were
    /// dropped.
    pub fn revise_auth(&self, f: impl Fn(&A) -> Revision<A>) -> usize {
        let mut clients = self.lock();
        let mut gone = vec![];
        for (id, c) in clients.by_id.iter_mut() {
            let Some(a) = &c.auth else { continue };
            match f(a) {
                Revision::Keep => {}
                Revision::Replace(new) => c.auth = Some(Arc::new(new)),
                Revision::Drop => gone.push(id.clone()),
            }
        }
        for id in &gone {
            clients.remove(id, Some(Dropped::AuthRevoked));
        }
        gone.len()
    }
}

/// Formats one SSE frame as PocketBase does: the `id:` line is always the client id.
pub fn frame(client_id: &str, msg: &Message) -> String {
    let mut s = format!("id:{client_id}\nevent:{}\n", msg.event);
    for line in msg.data.split('\n') {
        s.push_str("data:");
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    s
}

/// Shared handle.
pub type SharedHub<A> = Arc<Hub<A>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_apply_to_new_connections_and_subscription_sets() {
        let hub: Hub<String> = Hub::new(Limits {
            max_connections: 2,
            max_per_ip: 100,
            max_subscriptions: 2,
        });
        let (a, _ra) = hub.connect("o").expect("first");
        let (_b, _rb) = hub.connect("o").expect("second");
        let full = Full {
            limit: 2,
            per_ip: false,
        };
        assert_eq!(hub.connect("o").err(), Some(full));
        assert_eq!(hub.is_full("o"), Err(full));
        let three: Vec<String> = vec!["p/*".into(), "q/*".into(), "r/*".into()];
        assert_eq!(
            hub.subscribe(&a, "o", None, &three),
            Err(SubscribeError::TooMany(2))
        );
        assert_eq!(hub.subscribe(&a, "o", None, &three[..2]), Ok(()));
        hub.set_limits(Limits {
            max_connections: 3,
            max_per_ip: 100,
            max_subscriptions: 5000,
        });
        assert_eq!(
            hub.limits().max_subscriptions,
            MAX_SUBSCRIPTIONS,
            "never above PocketBase's limit"
        );
        assert!(hub.connect("o").is_ok());
        hub.disconnect(&a);
        assert!(hub.is_full("o").is_ok());
    }

    #[test]
    fn connections_per_ip_and_topic_bytes_are_bounded() {
        let hub: Hub<String> = Hub::new(Limits {
            max_per_ip: 2,
            ..Limits::default()
        });
        let (a, _ra) = hub.connect("1.1.1.1").expect("first");
        let (_b, _rb) = hub.connect("1.1.1.1").expect("second");
        let full = Full {
            limit: 2,
            per_ip: true,
        };
        assert_eq!(hub.connect("1.1.1.1").err(), Some(full));
        assert!(hub.connect("2.2.2.2").is_ok(), "another address");
        hub.disconnect(&a);
        assert!(hub.connect("1.1.1.1").is_ok(), "a place freed");
        let (c, _rc) = hub.connect("3.3.3.3").expect("client");
        let long: Vec<String> = (0..60)
            .map(|i| format!("p/{i}{}", "x".repeat(2400)))
            .collect();
        assert_eq!(
            hub.subscribe(&c, "3.3.3.3", None, &long),
            Err(SubscribeError::TooLong(MAX_TOPIC_BYTES))
        );
    }

    #[test]
    fn revised_auth_drops_or_replaces_clients() {
        let hub: Hub<String> = Hub::new(Limits::default());
        let (a, mut ra) = hub.connect("o").expect("a");
        let (b, _rb) = hub.connect("o").expect("b");
        hub.subscribe(&a, "o", Some("u1".into()), &["p/*".into()])
            .expect("a");
        hub.subscribe(&b, "o", Some("u2".into()), &["p/*".into()])
            .expect("b");
        let dropped = hub.revise_auth(|x| match x.as_str() {
            "u1" => Revision::Drop,
            _ => Revision::Replace("u2'".into()),
        });
        assert_eq!(dropped, 1);
        assert_eq!(ra.reason(), Some(Dropped::AuthRevoked));
        assert!(ra.rx.try_recv().is_err());
        let t = hub.targets(&["p"]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].auth.as_deref().map(String::as_str), Some("u2'"));
    }

    #[test]
    fn parses_topics() {
        let t = Topic::parse("posts/*").expect("topic");
        assert_eq!(
            (t.collection.as_str(), t.record_id.as_deref()),
            ("posts", None)
        );
        let t = Topic::parse("posts/abc?options=%7B%22query%22%3A%7B%22expand%22%3A%22author%22%7D%2C%22headers%22%3A%7B%22X-Y%22%3A%221%22%7D%7D")
            .expect("topic");
        assert_eq!(t.record_id.as_deref(), Some("abc"));
        assert_eq!(t.query["expand"], "author");
        assert_eq!(t.headers["x_y"], "1");
        assert_eq!(Topic::parse("posts").expect("legacy").record_id, None);
        assert!(Topic::parse("").is_none());
        assert!(Topic::parse("/x").is_none());
    }

    #[test]
    fn slow_clients_are_dropped() {
        let hub: Hub<String> = Hub::new(Limits::default());
        let (id, _rx) = hub.connect("1.2.3.4").expect("client");
        for _ in 0..QUEUE_LEN {
            hub.send(
                &id,
                Message {
                    seq: 0,
                    event: "e".into(),
                    data: "{}".into(),
                },
            )
            .expect("room");
        }
        assert_eq!(
            hub.send(
                &id,
                Message {
                    seq: 0,
                    event: "e".into(),
                    data: "{}".into()
                }
            ),
            Err(Dropped::TooSlow)
        );
        assert!(hub.is_empty());
    }

    #[tokio::test]
    async fn clients_are_dropped_past_their_queued_bytes() {
        let hub: Hub<String> = Hub::new(Limits::default());
        let (id, mut rx) = hub.connect("o").expect("client");
        let big = |n: usize| Message {
            seq: 0,
            event: "e".into(),
            data: "x".repeat(n),
        };
        hub.send(&id, big(QUEUE_BYTES * 2))
            .expect("one message always fits");
        assert!(rx.recv().await.is_some());
        for _ in 0..7 {
            hub.send(&id, big(1 << 20)).expect("room");
        }
        assert_eq!(hub.send(&id, big(2 << 20)), Err(Dropped::TooSlow));
        assert_eq!(rx.reason(), Some(Dropped::TooSlow));
    }

    #[test]
    fn subscriptions_check_client_and_auth() {
        let hub: Hub<String> = Hub::new(Limits::default());
        let (id, _rx) = hub.connect("a").expect("client");
        assert_eq!(
            hub.subscribe("nope", "a", None, &[]),
            Err(SubscribeError::UnknownClient)
        );
        assert_eq!(
            hub.subscribe(&id, "b", None, &[]),
            Err(SubscribeError::OriginMismatch)
        );
        hub.subscribe(&id, "a", Some("u1".into()), &["posts/*".into()])
            .expect("ok");
        assert_eq!(
            hub.subscribe(&id, "a", Some("u2".into()), &[]),
            Err(SubscribeError::AuthMismatch)
        );
        assert_eq!(hub.targets(&["POSTS"]).len(), 1);
        assert_eq!(
            frame(
                "cid",
                &Message {
                    seq: 0,
                    event: "posts/*".into(),
                    data: "{\"a\":1}".into()
                }
            ),
            "id:cid\nevent:posts/*\ndata:{\"a\":1}\n\n"
        );
    }
}
