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

/// Loopback, private (RFC 1918, unique local), shared (CGNAT), link-local, unspecified,
/// multicast, documentation and reserved addresses: everything but the public internet.
pub fn is_refused(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 of any v4
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x2002) // 6to4 of any v4
        }
    }
}

fn refused_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0/24
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15
        || o[0] >= 240
}

/// A checked target: the URL and, once resolved, the addresses it may connect to.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: reqwest::Url,
    host: String,
    port: u16,
}

/// Checks what can be checked without DNS: an http(s) URL with a host, no credentials; a
/// literal address or `localhost` name in a refused range unless `allow_private`; not
/// `this_server` (the app URL: scheme, host and port compared).
pub fn check_url(
    url: &str,
    allow_private: bool,
    this_server: Option<&str>,
) -> Result<Target, TargetError> {
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
    if let Some(me) = this_server.and_then(|s| reqwest::Url::parse(s).ok()) {
        if me.host_str().map(str::to_ascii_lowercase).as_deref() == Some(host.as_str())
            && me.port_or_known_default() == Some(port)
        {
            return Err(TargetError::SelfTarget);
        }
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if !allow_private {
        if let Ok(ip) = bare.parse::<IpAddr>() {
            if is_refused(ip) {
                return Err(TargetError::Private);
            }
        }
        if bare == "localhost" || bare.ends_with(".localhost") || bare.ends_with(".local") {
            return Err(TargetError::Private);
        }
    }
    Ok(Target {
        url: u,
        host: bare.to_owned(),
        port,
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

/// Posts `body` to `target`, signed, once: resolves the host, refuses private addresses
/// unless `allow_private`, connects only to the checked address, follows no redirect, and
/// gives up after `timeout`.
pub async fn deliver(
    target: &Target,
    allow_private: bool,
    key: &[u8],
    id: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Attempt, TargetError> {
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
    let Some(addr) = addrs
        .iter()
        .copied()
        .find(|a| allow_private || !is_refused(a.ip()))
    else {
        return Err(if addrs.is_empty() {
            TargetError::Unresolved("no address".into())
        } else {
            TargetError::Private
        });
    };
    let client = reqwest::Client::builder()
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

    #[test]
    fn refuses_private_targets() {
        for bad in [
            "ftp://example.com/",
            "example.com",
            "http://",
            "http://u:p@example.com/",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                check_url(bad, false, None).err(),
                Some(TargetError::Invalid),
                "{bad}"
            );
        }
        for private in [
            "http://127.0.0.1/",
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
                check_url(private, false, None).err(),
                Some(TargetError::Private),
                "{private}"
            );
            assert!(check_url(private, true, None).is_ok(), "{private}");
        }
        assert!(check_url("https://hooks.example.com/in", false, None).is_ok());
        assert!(check_url("http://8.8.8.8/", false, None).is_ok());
        assert_eq!(
            check_url(
                "http://127.0.0.1:8090/api/x",
                true,
                Some("http://127.0.0.1:8090")
            )
            .err(),
            Some(TargetError::SelfTarget)
        );
        assert!(check_url(
            "http://127.0.0.1:9000/",
            true,
            Some("http://127.0.0.1:8090")
        )
        .is_ok());
    }
}
