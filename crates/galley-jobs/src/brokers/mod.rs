//! Publishing to message brokers: minimal clients for NATS (JetStream when the server has
//! it) and RabbitMQ (AMQP 0-9-1 with publisher confirms). Hand-written rather than
//! async-nats / lapin: a publisher needs a handful of protocol messages, and those crates
//! bring their own TLS stacks and dozens of dependencies (see docs/ARCHITECTURE.md).

pub mod amqp;
pub mod nats;

/// A broker connection or publish failed; the caller reconnects and retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BrokerError(pub String);
