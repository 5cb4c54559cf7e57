//! Outgoing webhook delivery: which targets are allowed, Standard Webhooks signing
//! (<https://www.standardwebhooks.com>: `webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed with the
//! base64 bytes after `whsec_`), and one POST to an address checked before connecting.
//!
//! A target's host is resolved once per delivery and the request goes to the checked
//! address (the client is pinned to it), so a name that resolves to a public address when
//! checked and to a private one when connecting (DNS rebinding) cannot reach the private one.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Why a target or a secret is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("Must be a valid http(s) URL.")]
    Invalid,
    #[error("The URL points to a loopback, private or link-local address; set settings.webhooks.allowPrivateNetworks to allow it.")]
    Private,
    #[error("The URL points to this server.")]
    SelfTarget,
    #[error("The host could not be resolved: {0}")]
    Unresolved(String),
}

/// The secret must be `whsec_` followed by base64 (at least 16 bytes once decoded).
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let key = B64.decode(secret.strip_prefix("whsec_")?).ok()?;
    (key.len() >= 16 && key.len() <= 256).then_some(key)
}

/// `v1,<signature>` for one delivery attempt.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// Everything but the public internet (IANA's special-purpose blocks, translation and
/// tunnel prefixes): [`galley_types::net::is_public`].
pub fn is_refused(ip: IpAddr) -> bool {
    !galley_types::net::is_public(ip)
}

/// What a webhook may target, beyond being an http(s) URL.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Loopback, private and link-local addresses allowed (`settings.webhooks.allowPrivateNetworks`).
    pub allow_private: bool,
    /// This server's public URL (`settings.meta.appURL`): scheme, host and port compared.
    pub app_url: Option<String>,
    /// The addresses this server listens on: a target that reaches one of them is this server
    /// whatever name points there.
    pub listening: Vec<SocketAddr>,
}

impl Policy {
    /// Whether a connection to `addr` would reach this server's own listener.
    fn is_self(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip();
        self.listening.iter().any(|l| {
            l.port() == addr.port()
                && (l.ip() == ip
                    // Bound to every interface: loopback and "any" reach it for sure (other
                    // local interfaces are not known here; appURL covers the public name).
                    || (l.ip().is_unspecified() && (ip.is_loopback() || ip.is_unspecified()))
                    || (l.ip().is_loopback() && ip.is_loopback()))
        })
    }
}

/// A checked target: the URL and the host and port to resolve.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: reqwest::Url,
    host: String,
    port: u16,
}

/// Checks what can be checked without DNS: an http(s) URL with a host, no credentials; not
/// this server (the app URL, or a literal address or `localhost` name on a port it listens
/// on); a literal address or `localhost` name in a refused range unless allowed.
pub fn check_url(url: &str, policy: &Policy) -> Result<Target, TargetError> {
    if url.len() > 2048 {
        return Err(TargetError::Invalid);
    }
    let u = reqwest::Url::parse(url).map_err(|_| TargetError::Invalid)?;
    if !matches!(u.scheme(), "http" | "https") || !u.username().is_empty() || u.password().is_some()
    {
        return Err(TargetError::Invalid);
    }
    let host = u
        .host_str()
        .ok_or(TargetError::Invalid)?
        .to_ascii_lowercase();
    let port = u.port_or_known_default().ok_or(TargetError::Invalid)?;
    if let Some(me) = policy
        .app_url
        .as_deref()
        .and_then(|s| reqwest::Url::parse(s).ok())
    {
        if me.host_str().map(str::to_ascii_lowercase).as_deref() == Some(host.as_str())
            && me.port_or_known_default() == Some(port)
        {
            return Err(TargetError::SelfTarget);
        }
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let literal = bare.parse::<IpAddr>().ok();
    let localhost = bare == "localhost" || bare.ends_with(".localhost");
    let local_ip = literal.or(localhost.then_some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    if local_ip.is_some_and(|ip| policy.is_self(SocketAddr::new(ip, port))) {
        return Err(TargetError::SelfTarget);
    }
    if !policy.allow_private
        && (literal.is_some_and(is_refused) || localhost || bare.ends_with(".local"))
    {
        return Err(TargetError::Private);
    }
    Ok(Target {
        url: u,
        host: bare.to_owned(),
        port,
    })
}

/// Resolves `target` (once; a literal address as it is) and picks the address to connect
/// to: none that is this server, and outside the refused ranges unless allowed.
pub async fn resolve(target: &Target, policy: &Policy) -> Result<SocketAddr, TargetError> {
    let addrs: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((target.host.as_str(), target.port)),
        )
        .await
        .map_err(|_| TargetError::Unresolved("timed out".into()))?
        .map_err(|e| TargetError::Unresolved(e.to_string()))?
        .collect(),
    };
    if addrs.iter().any(|a| policy.is_self(*a)) {
        return Err(TargetError::SelfTarget);
    }
    addrs
        .iter()
        .copied()
        .find(|a| policy.allow_private || !is_refused(a.ip()))
        .ok_or(if addrs.is_empty() {
            TargetError::Unresolved("no address".into())
        } else {
            TargetError::Private
        })
}

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The HTTP status, 0 when there was no answer.
    pub status: u16,
    pub duration_ms: i64,
    /// Why it failed (empty on a 2xx).
    pub error: String,
}

impl Attempt {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Posts `body` to `target`, signed, once: resolves the host and checks its addresses
/// ([`resolve`]), connects only to the checked address, follows no redirect, and gives up
/// after `timeout`.
pub async fn deliver(
    target: &Target,
    policy: &Policy,
    key: &[u8],
    id: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Attempt, TargetError> {
    let addr = resolve(target, policy).await?;
    let client = reqwest::Client::builder()
        // A proxy would resolve the name again, past the check.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .resolve(&target.host, addr)
        .user_agent("Galley-Webhooks")
        .build()
        .map_err(|e| TargetError::Unresolved(e.to_string()))?;
    let ts = chrono::Utc::now().timestamp();
    let started = Instant::now();
    use tracing::Instrument;
    let span = tracing::info_span!(target: "galley_trace", "webhook.send", otel.kind = "client", server.address = %target.host, webhook.id = %id);
    let sent = client
        .post(target.url.clone())
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sign(key, id, ts, body))
        .body(body.to_vec())
        .send()
        .instrument(span)
        .await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    Ok(match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            Attempt {
                status,
                duration_ms,
                error: if resp.status().is_success() {
                    String::new()
                } else {
                    format!("the target answered {status}")
                },
            }
        }
        Err(e) => Attempt {
            status: 0,
            duration_ms,
            error: if e.is_timeout() {
                format!("timed out after {} ms", timeout.as_millis())
            } else {
                format!("request failed: {e}")
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("key");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none());
        assert!(secret_key("whsec_!!!").is_none());
        assert!(secret_key("whsec_c2hvcnQ=").is_none());
    }

    fn policy(allow_private: bool, app_url: Option<&str>, listening: &[&str]) -> Policy {
        Policy {
            allow_private,
            app_url: app_url.map(str::to_owned),
            listening: listening.iter().map(|a| a.parse().expect("addr")).collect(),
        }
    }

    #[test]
    fn refuses_private_targets() {
        let (strict, open) = (policy(false, None, &[]), policy(true, None, &[]));
        for bad in [
            "ftp://example.com/",
            "example.com",
            "http://",
            "http://u:p@example.com/",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                check_url(bad, &strict).err(),
                Some(TargetError::Invalid),
                "{bad}"
            );
        }
        for private in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://10.1.2.3/",
            "http://192.168.0.1:8080/x",
            "http://172.16.5.4/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
            "http://localhost:8090/",
            "http://api.localhost/",
            "https://printer.local/",
        ] {
            assert_eq!(
                check_url(private, &strict).err(),
                Some(TargetError::Private),
                "{private}"
            );
            assert!(check_url(private, &open).is_ok(), "{private}");
        }
        assert!(check_url("https://hooks.example.com/in", &strict).is_ok());
        assert!(check_url("http://8.8.8.8/", &strict).is_ok());
        let me = policy(true, Some("http://127.0.0.1:8090"), &[]);
        assert_eq!(
            check_url("http://127.0.0.1:8090/api/x", &me).err(),
            Some(TargetError::SelfTarget)
        );
        assert!(check_url("http://127.0.0.1:9000/", &me).is_ok());
        // The listener, whatever appURL says: by address, by `localhost`, and any loopback
        // address when bound to every interface.
        let bound = policy(true, Some("https://api.example.com"), &["127.0.0.1:8090"]);
        for url in ["http://127.0.0.1:8090/x", "http://localhost:8090/x"] {
            assert_eq!(
                check_url(url, &bound).err(),
                Some(TargetError::SelfTarget),
                "{url}"
            );
        }
        assert!(check_url("http://127.0.0.1:8091/x", &bound).is_ok());
        let any = policy(true, None, &["0.0.0.0:8090"]);
        for url in [
            "http://127.0.0.2:8090/x",
            "http://0.0.0.0:8090/",
            "http://[::1]:8090/",
        ] {
            assert_eq!(
                check_url(url, &any).err(),
                Some(TargetError::SelfTarget),
                "{url}"
            );
        }
        assert!(check_url("http://10.0.0.1:8090/", &any).is_ok());
    }

    #[tokio::test]
    async fn resolved_names_are_checked() {
        // `localhost` is refused by name; resolving it shows what a name that points at
        // loopback gets, and a literal is taken as it is.
        let strict = policy(false, None, &[]);
        let t = Target {
            url: reqwest::Url::parse("http://localhost:9/").expect("url"),
            host: "localhost".into(),
            port: 9,
        };
        assert_eq!(resolve(&t, &strict).await, Err(TargetError::Private));
        let open = policy(true, None, &[]);
        assert!(resolve(&t, &open).await.is_ok_and(|a| a.ip().is_loopback()));
        let bound = policy(true, None, &["127.0.0.1:9"]);
        assert_eq!(resolve(&t, &bound).await, Err(TargetError::SelfTarget));
        let nowhere = check_url("http://no-such-host.invalid/x", &strict).expect("url");
        assert!(matches!(
            resolve(&nowhere, &strict).await,
            Err(TargetError::Unresolved(_))
        ));
    }
}
