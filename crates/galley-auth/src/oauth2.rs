//! OAuth2/OIDC providers as data: a table of presets (endpoints, scopes, where the user's
//! id, name, email and avatar sit in the userinfo JSON, and how the provider vouches for
//! the email), merged with a collection's `oauth2.providers[]` entry. Any other name is a
//! custom provider with OIDC's standard claims, configured by explicit endpoints or by
//! discovery (`extra.issuer` or `extra.discoveryURL`). One code path serves them all.
//!
//! The few HTTP requests (discovery, token, userinfo, emails) go through one reqwest client
//! with timeouts, no redirects and a cap on every response body.
//!
//! Architecture invariant: no records, settings or HTTP server types; callers map
//! [`ProviderError`] to their own answers.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// URLs as the provider client parses them (re-exported so callers need no reqwest).
pub use reqwest::Url;

/// Largest provider response read (token, userinfo, discovery documents are a few KiB).
const MAX_BODY: usize = 1 << 20;
/// Discovery documents are reused this long.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// Largest avatar downloaded into a file field (the field's own limit may be lower).
const MAX_AVATAR: usize = 10 << 20;
/// A failed discovery is tried again after this long.
const DISCOVERY_RETRY: Duration = Duration::from_secs(30);

/// How a provider says whether the email it returns belongs to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTrust {
    /// A boolean (or `"true"`) claim at this path of the user JSON.
    Claim(&'static str),
    /// The provider only returns confirmed addresses.
    Always,
    /// The provider returns addresses nobody confirmed (e.g. set by a tenant admin).
    Never,
}

/// Where the fields of the user sit in the provider's user JSON (dotted paths), and the
/// avatar as a template of `{path}` placeholders.
#[derive(Debug, Clone, Copy)]
pub struct UserMap {
    pub id: &'static str,
    pub name: &'static str,
    pub username: &'static str,
    pub email: &'static str,
    pub email_trust: EmailTrust,
    pub avatar: &'static str,
}

const OIDC_MAP: UserMap = UserMap {
    id: "sub",
    name: "name",
    username: "preferred_username",
    email: "email",
    email_trust: EmailTrust::Claim("email_verified"),
    avatar: "{picture}",
};

/// A built-in provider.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    pub display_name: &'static str,
    pub auth_url: &'static str,
    pub token_url: &'static str,
    /// Empty: the user is read from the token response's `id_token` claims.
    pub user_info_url: &'static str,
    pub scopes: &'static [&'static str],
    /// Extra query parameters of the authorization URL.
    pub auth_params: &'static [(&'static str, &'static str)],
    /// A list of `{email, primary, verified}` to take the verified primary email from
    /// when the user JSON has none that the provider vouches for.
    pub emails_url: &'static str,
    pub map: UserMap,
}

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "google",
        display_name: "Google",
        auth_url: "https://accounts.google.com/o/oauth2/v2/auth",
        token_url: "https://oauth2.googleapis.com/token",
        user_info_url: "https://www.googleapis.com/oauth2/v3/userinfo",
        scopes: &[
            "https://www.googleapis.com/auth/userinfo.profile",
            "https://www.googleapis.com/auth/userinfo.email",
        ],
        auth_params: &[],
        emails_url: "",
        map: OIDC_MAP,
    },
    Preset {
        name: "github",
        display_name: "GitHub",
        auth_url: "https://github.com/login/oauth/authorize",
        token_url: "https://github.com/login/oauth/access_token",
        user_info_url: "https://api.github.com/user",
        scopes: &["read:user", "user:email"],
        auth_params: &[],
        // The profile's public email carries no verification flag.
        emails_url: "https://api.github.com/user/emails",
        map: UserMap {
            id: "id",
            name: "name",
            username: "login",
            email: "email",
            email_trust: EmailTrust::Never,
            avatar: "{avatar_url}",
        },
    },
    Preset {
        name: "gitlab",
        display_name: "GitLab",
        auth_url: "https://gitlab.com/oauth/authorize",
        token_url: "https://gitlab.com/oauth/token",
        // GitLab's OIDC userinfo, which says whether the email is verified.
        user_info_url: "https://gitlab.com/oauth/userinfo",
        scopes: &["openid", "profile", "email"],
        auth_params: &[],
        emails_url: "",
        map: UserMap {
            username: "nickname",
            ..OIDC_MAP
        },
    },
    Preset {
        name: "microsoft",
        display_name: "Microsoft",
        auth_url: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        token_url: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        user_info_url: "https://graph.microsoft.com/v1.0/me",
        scopes: &["User.Read"],
        auth_params: &[],
        emails_url: "",
        map: UserMap {
            id: "id",
            name: "displayName",
            username: "",
            email: "mail",
            // Entra ID lets tenant admins set any `mail`: never link by it.
            email_trust: EmailTrust::Never,
            avatar: "",
        },
    },
    Preset {
        name: "apple",
        display_name: "Apple",
        auth_url: "https://appleid.apple.com/auth/authorize",
        token_url: "https://appleid.apple.com/auth/token",
        user_info_url: "",
        scopes: &["name", "email"],
        auth_params: &[("response_mode", "form_post")],
        emails_url: "",
        map: UserMap {
            username: "",
            avatar: "",
            ..OIDC_MAP
        },
    },
    Preset {
        name: "discord",
        display_name: "Discord",
        auth_url: "https://discord.com/api/oauth2/authorize",
        token_url: "https://discord.com/api/oauth2/token",
        user_info_url: "https://discord.com/api/users/@me",
        scopes: &["identify", "email"],
        auth_params: &[],
        emails_url: "",
        map: UserMap {
            id: "id",
            name: "global_name",
            username: "username",
            email: "email",
            email_trust: EmailTrust::Claim("verified"),
            avatar: "https://cdn.discordapp.com/avatars/{id}/{avatar}.png",
        },
    },
    Preset {
        name: "facebook",
        display_name: "Facebook",
        auth_url: "https://www.facebook.com/v17.0/dialog/oauth",
        token_url: "https://graph.facebook.com/v17.0/oauth/access_token",
        user_info_url: "https://graph.facebook.com/me?fields=name,email,picture.type(large)",
        scopes: &["email"],
        auth_params: &[],
        emails_url: "",
        map: UserMap {
            id: "id",
            name: "name",
            username: "",
            email: "email",
            // The Graph API returns only a confirmed primary address.
            email_trust: EmailTrust::Always,
            avatar: "{picture.data.url}",
        },
    },
];

pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// One provider ready to use: the collection's entry over its preset (or OIDC defaults).
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub display_name: String,
    pub client_id: String,
    pub client_secret: String,
    pub auth_url: String,
    pub token_url: String,
    pub user_info_url: String,
    pub scopes: Vec<String>,
    pub pkce: bool,
    pub auth_params: Vec<(String, String)>,
    pub emails_url: String,
    pub map: UserMap,
    /// The issuer an `id_token` must name, when known (discovery).
    pub issuer: String,
}

/// The user as the provider describes it (PocketBase's `AuthUser`).
#[derive(Debug, Clone, Default)]
pub struct AuthUser {
    pub id: String,
    pub name: String,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub avatar_url: String,
    pub access_token: String,
    pub refresh_token: String,
    /// PocketBase's datetime string, or empty.
    pub expiry: String,
    pub raw: Map<String, Value>,
}

impl AuthUser {
    /// The `meta` of the auth response.
    pub fn meta(&self, is_new: bool) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "username": self.username,
            "email": self.email,
            "avatarURL": self.avatar_url,
            "accessToken": self.access_token,
            "refreshToken": self.refresh_token,
            "expiry": self.expiry,
            "rawUser": self.raw,
            "isNew": is_new,
            "avatarUrl": self.avatar_url,
        })
    }
}

/// A provider's answer that cannot be used: PocketBase's 400s.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("token request failed: {0}")]
    Token(String),
    #[error("user request failed: {0}")]
    User(String),
    #[error("provider configuration: {0}")]
    Config(String),
}

/// What the collection's options give for a provider, with discovery not yet applied.
fn from_config(cfg: &Map<String, Value>) -> Option<(Provider, Option<String>)> {
    let s = |k: &str| {
        cfg.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let extra = cfg.get("extra").and_then(Value::as_object);
    let xs = |k: &str| {
        extra
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let name = s("name");
    if name.is_empty() {
        return None;
    }
    let pre = preset(&name);
    let or = |v: String, d: &str| if v.is_empty() { d.to_owned() } else { v };
    let scopes = match extra.and_then(|e| e.get("scopes")) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(t)) => t.split_whitespace().map(str::to_owned).collect(),
        _ => match pre {
            Some(p) => p.scopes.iter().map(|s| (*s).to_owned()).collect(),
            None => vec!["openid".into(), "email".into(), "profile".into()],
        },
    };
    let discovery = match (xs("discoveryURL"), xs("issuer")) {
        (d, _) if !d.is_empty() => Some(d),
        (_, i) if !i.is_empty() => Some(format!(
            "{}/.well-known/openid-configuration",
            i.trim_end_matches('/')
        )),
        _ => None,
    };
    let p = Provider {
        display_name: or(
            s("displayName"),
            pre.map_or(name.as_str(), |p| p.display_name),
        ),
        client_id: s("clientId"),
        client_secret: s("clientSecret"),
        auth_url: or(s("authURL"), pre.map_or("", |p| p.auth_url)),
        token_url: or(s("tokenURL"), pre.map_or("", |p| p.token_url)),
        user_info_url: or(s("userInfoURL"), pre.map_or("", |p| p.user_info_url)),
        scopes,
        pkce: cfg.get("pkce").and_then(Value::as_bool).unwrap_or(true),
        auth_params: pre
            .map(|p| {
                p.auth_params
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        emails_url: pre.map_or("", |p| p.emails_url).to_owned(),
        map: pre.map_or(OIDC_MAP, |p| p.map),
        issuer: xs("issuer").trim_end_matches('/').to_owned(),
        name,
    };
    Some((p, discovery))
}

fn valid_url(u: &str) -> bool {
    reqwest::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// Outgoing HTTP of the OAuth2 flows, and the discovery cache.
pub struct Client {
    http: reqwest::Client,
    discovered: Mutex<HashMap<String, (Instant, Value)>>,
}

impl Default for Client {
    fn default() -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Galley/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Client {
            http,
            discovered: Mutex::new(HashMap::new()),
        }
    }
}

/// Reads a response body of at most [`MAX_BODY`] bytes.
/// A client span for a call to a provider (exported with `--otlp-endpoint`; the host only,
/// never the query with its codes and tokens).
fn outgoing(name: &'static str, url: &str) -> tracing::Span {
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    tracing::info_span!(target: "galley_trace", "oauth2", otel.name = name, otel.kind = "client", server.address = %host)
}

async fn read_capped(mut resp: reqwest::Response) -> Result<(u16, Vec<u8>), String> {
    let status = resp.status().as_u16();
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err("response too large".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err("response too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

fn json_object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

impl Client {
    /// The collection's enabled provider `name`, discovery applied.
    pub async fn provider(
        &self,
        providers: &[Value],
        name: &str,
    ) -> Result<Option<Provider>, ProviderError> {
        let Some(cfg) = providers
            .iter()
            .filter_map(Value::as_object)
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
        else {
            return Ok(None);
        };
        let Some((mut p, discovery)) = from_config(cfg) else {
            return Ok(None);
        };
        if let Some(url) = discovery {
            let doc = self.discover(&url).await?;
            let issuer = doc
                .get("issuer")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned();
            if !p.issuer.is_empty() && issuer != p.issuer {
                return Err(ProviderError::Config(format!(
                    "discovery document of {url} names issuer {issuer:?}"
                )));
            }
            p.issuer = issuer;
            let field = |k: &str| {
                doc.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            if p.auth_url.is_empty() {
                p.auth_url = field("authorization_endpoint");
            }
            if p.token_url.is_empty() {
                p.token_url = field("token_endpoint");
            }
            if p.user_info_url.is_empty() {
                p.user_info_url = field("userinfo_endpoint");
            }
        }
        if !valid_url(&p.auth_url) || !valid_url(&p.token_url) {
            return Err(ProviderError::Config(format!(
                "provider {:?} needs authURL and tokenURL (or OIDC discovery)",
                p.name
            )));
        }
        if !p.user_info_url.is_empty() && !valid_url(&p.user_info_url) {
            return Err(ProviderError::Config(format!(
                "provider {:?} has an invalid userInfoURL",
                p.name
            )));
        }
        Ok(Some(p))
    }

    async fn discover(&self, url: &str) -> Result<Map<String, Value>, ProviderError> {
        if let Ok(cache) = self.discovered.lock() {
            match cache.get(url) {
                Some((at, Value::Object(doc))) if at.elapsed() < DISCOVERY_TTL => {
                    return Ok(doc.clone())
                }
                // A recent failure: auth-methods is public, so a provider that is down
                // must not make every call wait for its timeouts.
                Some((at, Value::Null)) if at.elapsed() < DISCOVERY_RETRY => {
                    return Err(ProviderError::Config(format!(
                        "discovery {url} failed less than {}s ago",
                        DISCOVERY_RETRY.as_secs()
                    )))
                }
                _ => {}
            }
        }
        let res = self.fetch_discovery(url).await;
        if let Ok(mut cache) = self.discovered.lock() {
            cache.retain(|_, (at, _)| at.elapsed() < DISCOVERY_TTL);
            let entry = match &res {
                Ok(doc) => Value::Object(doc.clone()),
                Err(_) => Value::Null,
            };
            cache.insert(url.to_owned(), (Instant::now(), entry));
        }
        res
    }

    async fn fetch_discovery(&self, url: &str) -> Result<Map<String, Value>, ProviderError> {
        if !valid_url(url) {
            return Err(ProviderError::Config(format!(
                "invalid discovery URL {url:?}"
            )));
        }
        let fail = |e: String| ProviderError::Config(format!("discovery {url}: {e}"));
        let resp = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let (status, body) = read_capped(resp).await.map_err(fail)?;
        json_object(&body)
            .filter(|_| (200..300).contains(&status))
            .ok_or_else(|| fail(format!("status {status}")))
    }

    /// The avatar at `url` (at most `max` bytes), for a file field, or `None`. The URL comes
    /// from the provider's user data, which users may be able to set: it is fetched only
    /// from a public address or from a host of the provider's own configured endpoints, and
    /// the connection goes to the address that was checked.
    pub async fn avatar(&self, p: &Provider, url: &str, max: usize) -> Option<Vec<u8>> {
        let u = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))?;
        let host = u.host_str()?.to_owned();
        let port = u.port_or_known_default()?;
        let trusted = [&p.auth_url, &p.token_url, &p.user_info_url]
            .iter()
            .filter_map(|e| reqwest::Url::parse(e).ok())
            .any(|e| {
                e.host_str() == Some(host.as_str()) && e.port_or_known_default() == Some(port)
            });
        let lookup = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let addr = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((lookup.as_str(), port)),
        )
        .await
        .ok()?
        .ok()?
        .next()?;
        if !trusted && !is_public(addr.ip()) {
            tracing::info!(%host, "OAuth2 avatar on a non-public address not fetched");
            return None;
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Galley/", env!("CARGO_PKG_VERSION")))
            .resolve(&host, addr)
            .build()
            .ok()?;
        let resp = client.get(u).send().await.ok()?;
        let cap = max.min(MAX_AVATAR);
        if resp.content_length().is_some_and(|n| n > cap as u64) {
            return None;
        }
        let status = resp.status().as_u16();
        let mut resp = resp;
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.ok()? {
            if body.len() + chunk.len() > cap {
                return None;
            }
            body.extend_from_slice(&chunk);
        }
        ((200..300).contains(&status) && !body.is_empty()).then_some(body)
    }

    /// Exchanges an authorization code for the user it belongs to.
    pub async fn exchange(
        &self,
        p: &Provider,
        code: &str,
        code_verifier: &str,
        redirect_url: &str,
    ) -> Result<AuthUser, ProviderError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_url),
            ("client_id", p.client_id.as_str()),
            ("client_secret", p.client_secret.as_str()),
        ];
        if p.pkce {
            form.push(("code_verifier", code_verifier));
        }
        let resp = self
            .http
            .post(&p.token_url)
            .header("accept", "application/json")
            .form(&form)
            .send()
            .instrument(outgoing("oauth2.token", &p.token_url))
            .await
            .map_err(|e| ProviderError::Token(e.to_string()))?;
        let (status, body) = read_capped(resp).await.map_err(ProviderError::Token)?;
        // Some token endpoints answer form-encoded whatever the Accept header says.
        let tok = json_object(&body)
            .or_else(|| {
                serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
                    .ok()
                    .map(|v| v.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
            })
            .unwrap_or_default();
        let text = |k: &str| {
            tok.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let access_token = text("access_token");
        if !(200..300).contains(&status) || access_token.is_empty() || tok.contains_key("error") {
            return Err(ProviderError::Token(format!(
                "status {status}, error {:?}",
                text("error")
            )));
        }
        let expiry = tok
            .get("expires_in")
            .and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .filter(|n| *n > 0)
            .map(|n| {
                galley_types::datetime::format(
                    &(chrono::Utc::now() + chrono::Duration::seconds(n.min(1 << 31))),
                )
            })
            .unwrap_or_default();
        let raw = if p.user_info_url.is_empty() {
            self.id_token_claims(p, &text("id_token"))?
        } else {
            self.get_json(&p.user_info_url, &access_token)
                .await
                .map_err(ProviderError::User)?
        };
        let mut user = map_user(&p.map, &raw);
        if !p.emails_url.is_empty() && !user.email_verified {
            if let Ok(list) = self.get_json_value(&p.emails_url, &access_token).await {
                if let Some(e) = verified_primary(&list) {
                    user.email = e;
                    user.email_verified = true;
                }
            }
        }
        if user.id.is_empty() {
            return Err(ProviderError::User("the user has no id".into()));
        }
        user.access_token = access_token;
        user.refresh_token = text("refresh_token");
        user.expiry = expiry;
        user.raw = raw;
        Ok(user)
    }

    /// The claims of an `id_token` received from the token endpoint itself. Its signature
    /// is not checked: it came straight from the provider over the connection we opened
    /// (OIDC Core 3.1.3.7), so audience, issuer and expiry are what is left to check.
    fn id_token_claims(
        &self,
        p: &Provider,
        token: &str,
    ) -> Result<Map<String, Value>, ProviderError> {
        let claims = token
            .split('.')
            .nth(1)
            .and_then(|s| B64URL.decode(s.trim_end_matches('=')).ok())
            .and_then(|b| json_object(&b))
            .ok_or_else(|| ProviderError::User("no usable id_token".into()))?;
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == &p.client_id,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(&p.client_id)),
            _ => false,
        };
        let exp_ok = claims
            .get("exp")
            .and_then(Value::as_i64)
            .is_some_and(|e| e > chrono::Utc::now().timestamp());
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let iss_ok = p.issuer.is_empty() || iss.trim_end_matches('/') == p.issuer;
        if !(aud_ok && exp_ok && iss_ok) {
            return Err(ProviderError::User(
                "id_token audience, issuer or expiry mismatch".into(),
            ));
        }
        Ok(claims)
    }

    async fn get_json_value(&self, url: &str, access_token: &str) -> Result<Value, String> {
        let resp = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .instrument(outgoing("oauth2.userinfo", url))
            .await
            .map_err(|e| e.to_string())?;
        let (status, body) = read_capped(resp).await?;
        if !(200..300).contains(&status) {
            return Err(format!("status {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }

    async fn get_json(&self, url: &str, access_token: &str) -> Result<Map<String, Value>, String> {
        match self.get_json_value(url, access_token).await? {
            Value::Object(m) => Ok(m),
            _ => Err("the user is not a JSON object".into()),
        }
    }
}

/// An address on the public internet (not loopback, private, link-local, CGNAT, ...).
fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            !(v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.is_documentation()
                || v.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])))
        }
        IpAddr::V6(v) => match v.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let seg = v.segments();
                !(v.is_loopback()
                    || v.is_unspecified()
                    || v.is_multicast()
                    || (seg[0] & 0xfe00) == 0xfc00
                    || (seg[0] & 0xffc0) == 0xfe80)
            }
        },
    }
}

fn lookup<'a>(v: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = v.get(parts.next()?)?;
    for p in parts {
        cur = cur.get(p)?;
    }
    Some(cur)
}

fn lookup_text(v: &Map<String, Value>, path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    match lookup(v, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn is_true(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Fills `{path}` placeholders; empty when one of them is empty.
fn fill_template(t: &str, v: &Map<String, Value>) -> String {
    let mut out = String::new();
    let mut rest = t;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let val = lookup_text(v, &rest[start + 1..start + len]);
        if val.is_empty() {
            return String::new();
        }
        out.push_str(&rest[..start]);
        out.push_str(&val);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

pub fn map_user(m: &UserMap, raw: &Map<String, Value>) -> AuthUser {
    let email = lookup_text(raw, m.email);
    let email_verified = !email.is_empty()
        && match m.email_trust {
            EmailTrust::Claim(path) => is_true(lookup(raw, path)),
            EmailTrust::Always => true,
            EmailTrust::Never => false,
        };
    AuthUser {
        id: lookup_text(raw, m.id),
        name: lookup_text(raw, m.name),
        username: lookup_text(raw, m.username),
        email,
        email_verified,
        avatar_url: fill_template(m.avatar, raw),
        ..Default::default()
    }
}

fn verified_primary(list: &Value) -> Option<String> {
    list.as_array()?
        .iter()
        .find(|e| is_true(e.get("primary")) && is_true(e.get("verified")))
        .and_then(|e| e.get("email"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// PKCE's S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    B64URL.encode(Sha256::digest(verifier.as_bytes()))
}

/// The authorization URL as PocketBase builds it: sorted parameters, then an empty
/// `redirect_uri=` for the client to complete.
pub fn auth_url(p: &Provider, state: &str, challenge: Option<&str>) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("client_id".into(), p.client_id.clone()),
        ("response_type".into(), "code".into()),
        ("state".into(), state.into()),
    ];
    if !p.scopes.is_empty() {
        params.push(("scope".into(), p.scopes.join(" ")));
    }
    if let Some(c) = challenge {
        params.push(("code_challenge".into(), c.into()));
        params.push(("code_challenge_method".into(), "S256".into()));
    }
    params.extend(p.auth_params.iter().cloned());
    params.sort();
    let query = serde_urlencoded::to_string(&params).unwrap_or_default();
    let sep = if p.auth_url.contains('?') { '&' } else { '?' };
    format!("{}{sep}{query}&redirect_uri=", p.auth_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_users_by_table() {
        let raw = json!({"id": 42, "global_name": "Ann", "username": "ann", "email": "a@x.io", "verified": true, "avatar": "abc"});
        let u = map_user(
            &preset("discord").expect("discord").map,
            raw.as_object().expect("obj"),
        );
        assert_eq!(
            (u.id.as_str(), u.name.as_str(), u.email_verified),
            ("42", "Ann", true)
        );
        assert_eq!(
            u.avatar_url,
            "https://cdn.discordapp.com/avatars/42/abc.png"
        );
        let raw = json!({"id": "7", "avatar": null});
        let u = map_user(
            &preset("discord").expect("discord").map,
            raw.as_object().expect("obj"),
        );
        assert_eq!(u.avatar_url, "");
        let raw = json!({"id": "m", "mail": "boss@corp.example"});
        let u = map_user(
            &preset("microsoft").expect("ms").map,
            raw.as_object().expect("obj"),
        );
        assert!(!u.email_verified, "an Entra `mail` is never trusted");
    }

    #[test]
    fn public_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn builds_auth_urls() {
        let cfg = json!({"name": "google", "clientId": "cid"});
        let (p, _) = from_config(cfg.as_object().expect("obj")).expect("provider");
        let u = auth_url(&p, "st", Some("ch"));
        assert!(u.starts_with("https://accounts.google.com/o/oauth2/v2/auth?client_id=cid&code_challenge=ch&code_challenge_method=S256&response_type=code&scope="), "{u}");
        assert!(u.ends_with("&state=st&redirect_uri="), "{u}");
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
