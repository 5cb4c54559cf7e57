//! The realtime hub: connected clients, their subscriptions (PocketBase topics) and a
//! bounded queue per client. It knows nothing of rules or records: the records service
//! decides who may see an event and hands the hub finished messages.
//!
//! Architecture invariant: a client's queue is bounded; a client that cannot keep up is
//! dropped (its stream ends with a reason), so memory stays bounded whatever clients do.

mod journal;

pub use journal::{Journal, JOURNAL_LEN};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Messages queued per client before it counts as too slow.
pub const QUEUE_LEN: usize = 512;
/// Subscriptions per client and characters per topic, as PocketBase limits them (the
/// subscription count can be lowered by settings, never raised above this).
pub const MAX_SUBSCRIPTIONS: usize = 1000;
pub const MAX_TOPIC_LEN: usize = 2500;
/// Default for the most clients (SSE and WebSocket together) connected at once.
pub const MAX_CONNECTIONS: usize = 10_000;

/// The hub's limits; changed at runtime when the settings change. Lowering a limit refuses
/// new connections or subscription sets, it does not cut existing ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_subscriptions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
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

/// What the hub keeps of a client.
pub struct Client<A> {
    pub id: String,
    tx: mpsc::Sender<Message>,
    /// The auth of the last `POST /api/realtime`, set once.
    pub auth: Option<A>,
    pub topics: Vec<Topic>,
    /// Where the SSE connection came from (subscriptions must come from the same place).
    pub origin: String,
}

/// Why a client's stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    TooSlow,
}

/// The registry. `A` is the caller type of the service layer.
pub struct Hub<A> {
    clients: Mutex<HashMap<String, Client<A>>>,
    max_connections: AtomicUsize,
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

/// A snapshot of one client's subscriptions for delivery.
pub struct Target<A> {
    pub client_id: String,
    pub auth: Option<A>,
    pub topics: Vec<Topic>,
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
    BadTopic(String),
}

/// `connect` refused: the hub already holds `limit` clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    pub limit: usize,
}

impl<A: Clone + PartialEq> Hub<A> {
    pub fn new(limits: Limits) -> Self {
        let hub = Hub {
            clients: Mutex::new(HashMap::new()),
            max_connections: AtomicUsize::new(0),
            max_subscriptions: AtomicUsize::new(0),
            dropped: std::sync::atomic::AtomicU64::new(0),
        };
        hub.set_limits(limits);
        hub
    }

    pub fn set_limits(&self, limits: Limits) {
        self.max_connections
            .store(limits.max_connections, Ordering::Relaxed);
        self.max_subscriptions.store(
            limits.max_subscriptions.min(MAX_SUBSCRIPTIONS),
            Ordering::Relaxed,
        );
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections.load(Ordering::Relaxed),
            max_subscriptions: self.max_subscriptions.load(Ordering::Relaxed),
        }
    }

    /// Whether `connect` would be refused now (a cheap early answer before a WebSocket
    /// upgrade; `connect` checks again under the lock).
    pub fn is_full(&self) -> Result<(), Full> {
        let limit = self.max_connections.load(Ordering::Relaxed);
        if self.len() >= limit {
            return Err(Full { limit });
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Client<A>>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new client, unless the connection limit is reached.
    pub fn connect(&self, origin: &str) -> Result<(String, mpsc::Receiver<Message>), Full> {
        let limit = self.max_connections.load(Ordering::Relaxed);
        let mut clients = self.lock();
        if clients.len() >= limit {
            return Err(Full { limit });
        }
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        let id = client_id();
        clients.insert(
            id.clone(),
            Client {
                id: id.clone(),
                tx,
                auth: None,
                topics: vec![],
                origin: origin.to_owned(),
            },
        );
        Ok((id, rx))
    }

    pub fn disconnect(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Drops every client (their streams end; clients reconnect elsewhere or later): the
    /// server is shutting down. Returns how many there were.
    pub fn disconnect_all(&self) -> usize {
        let mut clients = self.lock();
        let n = clients.len();
        clients.clear();
        n
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn stats(&self) -> HubStats {
        let clients = self.lock();
        HubStats {
            clients: clients.len() as u64,
            queued: clients
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
        let mut parsed = Vec::with_capacity(topics.len());
        for t in topics {
            parsed.push(Topic::parse(t).ok_or_else(|| SubscribeError::BadTopic(t.clone()))?);
        }
        let mut clients = self.lock();
        let c = clients.get_mut(id).ok_or(SubscribeError::UnknownClient)?;
        if c.origin != origin {
            return Err(SubscribeError::OriginMismatch);
        }
        if c.auth.is_some() && c.auth != auth {
            return Err(SubscribeError::AuthMismatch);
        }
        if auth.is_some() {
            c.auth = auth;
        }
        c.topics = parsed;
        Ok(())
    }

    /// The clients with at least one topic on `collection` (by name or id).
    pub fn targets(&self, collection_names: &[&str]) -> Vec<Target<A>> {
        self.lock()
            .values()
            .filter_map(|c| {
                let topics: Vec<Topic> = c
                    .topics
                    .iter()
                    .filter(|t| {
                        collection_names
                            .iter()
                            .any(|n| n.eq_ignore_ascii_case(&t.collection))
                    })
                    .cloned()
                    .collect();
                (!topics.is_empty()).then(|| Target {
                    client_id: c.id.clone(),
                    auth: c.auth.clone(),
                    topics,
                })
            })
            .collect()
    }

    /// Queues a message; a client whose queue is full is dropped.
    pub fn send(&self, id: &str, msg: Message) -> Result<(), Dropped> {
        let mut clients = self.lock();
        let Some(c) = clients.get(id) else {
            return Ok(());
        };
        match c.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                clients.remove(id);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                clients.remove(id);
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
        let Some(c) = clients.get_mut(id) else {
            return false;
        };
        let before = c.topics.len();
        c.topics.retain(|t| t.raw != topic);
        c.topics.len() != before
    }

    /// Drops the auth of clients for which `f` says so (a user deleted or logged out).
    pub fn retain_auth(&self, f: impl Fn(&A) -> bool) {
        for c in self.lock().values_mut() {
            if c.auth.as_ref().is_some_and(|a| !f(a)) {
                c.auth = None;
            }
        }
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
            max_subscriptions: 2,
        });
        let (a, _ra) = hub.connect("o").expect("first");
        let (_b, _rb) = hub.connect("o").expect("second");
        assert_eq!(hub.connect("o").err(), Some(Full { limit: 2 }));
        assert_eq!(hub.is_full(), Err(Full { limit: 2 }));
        let three: Vec<String> = vec!["p/*".into(), "q/*".into(), "r/*".into()];
        assert_eq!(
            hub.subscribe(&a, "o", None, &three),
            Err(SubscribeError::TooMany(2))
        );
        assert_eq!(hub.subscribe(&a, "o", None, &three[..2]), Ok(()));
        hub.set_limits(Limits {
            max_connections: 3,
            max_subscriptions: 5000,
        });
        assert_eq!(
            hub.limits().max_subscriptions,
            MAX_SUBSCRIPTIONS,
            "never above PocketBase's limit"
        );
        assert!(hub.connect("o").is_ok());
        hub.disconnect(&a);
        assert!(hub.is_full().is_ok());
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
