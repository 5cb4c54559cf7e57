//! OAuth2/OIDC end to end against a fake provider on loopback (OIDC discovery, a token
//! endpoint that checks the PKCE verifier against the challenge, userinfo), the
//! `@oauth2` realtime redirect, the verification/reset resend throttle and auth alerts.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use galley_testkit::sse::SseClient;
use galley_testkit::{both_engines, Method, Reply, TestServer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PASS: &str = "Alice-Pass-1";
const CLIENT_ID: &str = "galley-test-client";
const CLIENT_SECRET: &str = "galley-test-secret";
/// A PNG signature and a few bytes: enough for type sniffing.
const AVATAR: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRfake-avatar-bytes";

#[derive(Default)]
struct FakeState {
    /// code → (PKCE challenge, redirect_uri seen at authorize, user)
    codes: HashMap<String, (String, Value)>,
    tokens: HashMap<String, Value>,
    fail_userinfo: bool,
    token_requests: usize,
}

/// A minimal OAuth2/OIDC provider.
pub(crate) struct Fake {
    pub(crate) base: String,
    state: Arc<Mutex<FakeState>>,
}

impl Fake {
    pub(crate) async fn start() -> Fake {
        use axum::extract::{Form, State};
        use axum::http::{HeaderMap, StatusCode};
        use axum::routing::{get, post};
        use axum::Json;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state: Arc<Mutex<FakeState>> = Default::default();
        type S = (String, Arc<Mutex<FakeState>>);
        async fn discovery(State((base, _)): State<S>) -> Json<Value> {
            Json(json!({
                "issuer": base,
                "authorization_endpoint": format!("{base}/authorize"),
                "token_endpoint": format!("{base}/token"),
                "userinfo_endpoint": format!("{base}/userinfo"),
            }))
        }
        async fn token(
            State((_, st)): State<S>,
            Form(f): Form<HashMap<String, String>>,
        ) -> (StatusCode, Json<Value>) {
            let mut st = st.lock().expect("lock");
            st.token_requests += 1;
            let g = |k: &str| f.get(k).cloned().unwrap_or_default();
            let bad = |e: &str| (StatusCode::BAD_REQUEST, Json(json!({"error": e})));
            if g("grant_type") != "authorization_code"
                || g("client_id") != CLIENT_ID
                || g("client_secret") != CLIENT_SECRET
            {
                return bad("invalid_client");
            }
            let Some((challenge, user)) = st.codes.remove(&g("code")) else {
                return bad("invalid_grant");
            };
            if !challenge.is_empty() && s256(&g("code_verifier")) != challenge {
                return bad("invalid_grant");
            }
            let access = format!("at-{}", st.tokens.len());
            st.tokens.insert(access.clone(), user);
            (
                StatusCode::OK,
                Json(
                    json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-1"}),
                ),
            )
        }
        async fn userinfo(State((_, st)): State<S>, h: HeaderMap) -> (StatusCode, Json<Value>) {
            let st = st.lock().expect("lock");
            if st.fail_userinfo {
                return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({})));
            }
            let tok = h
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            match st.tokens.get(tok) {
                Some(u) => (StatusCode::OK, Json(u.clone())),
                None => (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"error": "invalid_token"})),
                ),
            }
        }
        async fn avatar() -> ([(&'static str, &'static str); 1], Vec<u8>) {
            ([("content-type", "image/png")], AVATAR.to_vec())
        }
        let app = axum::Router::new()
            .route("/avatar.png", get(avatar))
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state((base.clone(), state.clone()));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake { base, state }
    }

    /// A code for `user` as the authorize step would issue it after the user consented.
    fn code(&self, challenge: &str, user: Value) -> String {
        let mut st = self.state.lock().expect("lock");
        let code = format!("code-{}-{}", st.codes.len(), st.tokens.len());
        st.codes.insert(code.clone(), (challenge.to_owned(), user));
        code
    }
}

/// `k=v&...`, form-encoded.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn s256(v: &str) -> String {
    B64.encode(Sha256::digest(v.as_bytes()))
}

/// An auth collection `people` with `providers` under oauth2.
async fn setup(srv: &TestServer, providers: Value) {
    srv.create_collection(json!({
        "name": "people", "type": "auth", "createRule": "",
        "fields": [{"name": "name", "type": "text"}, {"name": "avatar", "type": "url"}],
        "oauth2": {"enabled": true, "mappedFields": {"name": "name", "avatarURL": "avatar"}, "providers": providers},
    }))
    .await;
}

pub(crate) fn oidc(fake: &Fake) -> Value {
    json!([{"name": "oidc", "displayName": "Fake OIDC", "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
            "extra": {"issuer": fake.base}}])
}

async fn methods(srv: &TestServer) -> Value {
    let r = srv
        .guest(Method::GET, "/api/collections/people/auth-methods", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// The provider entry of auth-methods named `name`.
async fn provider_info(srv: &TestServer, name: &str) -> Value {
    methods(srv).await["oauth2"]["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .expect("provider listed")
}

async fn oauth(
    srv: &TestServer,
    provider: &str,
    code: &str,
    verifier: &str,
    extra: Value,
) -> Reply {
    let mut body = json!({"provider": provider, "code": code, "codeVerifier": verifier, "redirectURL": "http://app.test/cb"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    srv.guest(
        Method::POST,
        "/api/collections/people/auth-with-oauth2",
        Some(body),
    )
    .await
}

/// A full login: auth-methods, the provider's code for `user`, the exchange.
pub(crate) async fn login(srv: &TestServer, fake: &Fake, user: Value) -> Reply {
    let info = provider_info(srv, "oidc").await;
    let verifier = info["codeVerifier"].as_str().expect("verifier").to_owned();
    let code = fake.code(info["codeChallenge"].as_str().expect("challenge"), user);
    oauth(srv, "oidc", &code, &verifier, json!({})).await
}

fn alice(sub: &str, verified: bool) -> Value {
    json!({"sub": sub, "name": "Alice A", "email": "alice@example.com", "email_verified": verified,
           "picture": "https://img.test/alice.png", "preferred_username": "alice"})
}

async fn count(srv: &TestServer) -> usize {
    srv.all_records("people").await.len()
}

async fn sign_up(srv: &TestServer, email: &str) -> String {
    let r = srv
        .guest(
            Method::POST,
            "/api/collections/people/records",
            Some(json!({"email": email, "password": PASS, "passwordConfirm": PASS})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["id"].as_str().expect("id").to_owned()
}

async fn password_login(srv: &TestServer, email: &str) -> Reply {
    srv.guest(
        Method::POST,
        "/api/collections/people/auth-with-password",
        Some(json!({"identity": email, "password": PASS})),
    )
    .await
}

async fn outbox(srv: &TestServer) -> Vec<Value> {
    let r = srv.su(Method::GET, "/api/galley/outbox", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"].as_array().cloned().unwrap_or_default()
}

async fn wait_outbox(srv: &TestServer, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let items = outbox(srv).await;
        if items.len() >= n {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("expected {n} mails in the outbox");
}

both_engines! {
    async fn auth_methods_lists_providers_with_pkce(srv) {
        let fake = Fake::start().await;
        setup(&srv, oidc(&fake)).await;
        let m = methods(&srv).await;
        assert_eq!(m["oauth2"]["enabled"], true);
        assert_eq!(m["authProviders"], m["oauth2"]["providers"]);
        let p = &m["oauth2"]["providers"][0];
        assert_eq!(p["name"], "oidc");
        assert_eq!(p["displayName"], "Fake OIDC");
        assert_eq!(p["state"].as_str().expect("state").len(), 30);
        let verifier = p["codeVerifier"].as_str().expect("verifier");
        assert_eq!(verifier.len(), 43);
        assert_eq!(p["codeChallenge"], json!(s256(verifier)));
        assert_eq!(p["codeChallengeMethod"], "S256");
        let url = p["authURL"].as_str().expect("url");
        assert_eq!(p["authUrl"], p["authURL"]);
        let want = format!(
            "{}/authorize?client_id={CLIENT_ID}&code_challenge={}&code_challenge_method=S256&response_type=code&scope=openid+email+profile&state={}&redirect_uri=",
            fake.base, s256(verifier), p["state"].as_str().expect("state")
        );
        assert_eq!(url, want);
        // A fresh state and verifier on every call.
        let again = provider_info(&srv, "oidc").await;
        assert_ne!(again["state"], p["state"]);
        assert_ne!(again["codeVerifier"], p["codeVerifier"]);
        // Stored in PocketBase's shape; the client secret never leaves the server.
        let col = srv.su(Method::GET, "/api/collections/people", None).await;
        assert_eq!(col.body["oauth2"]["providers"][0], json!({
            "pkce": null, "name": "oidc", "clientId": CLIENT_ID, "authURL": "", "tokenURL": "",
            "userInfoURL": "", "displayName": "Fake OIDC", "extra": {"issuer": fake.base}}));
        assert_eq!(p["logo"], "");
        // A provider needs a name and a client id.
        let bad = srv.su(Method::PATCH, "/api/collections/people", Some(json!({"oauth2": {"providers": [{"name": "x"}]}}))).await;
        assert_eq!(bad.status, 400, "{}", bad.body);
        assert_eq!(bad.body["data"]["oauth2"]["providers"]["0"]["clientId"]["code"], "validation_required");
        // Resubmitting providers without their secrets keeps the stored ones: logins still work.
        let keep = srv.su(Method::PATCH, "/api/collections/people", Some(json!({"oauth2": {"providers": [
            {"name": "oidc", "displayName": "Fake OIDC", "clientId": CLIENT_ID, "extra": {"issuer": fake.base}}]}}))).await;
        assert_eq!(keep.status, 200, "{}", keep.body);
        let r = login(&srv, &fake, alice("kept", true)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    async fn new_user_then_relogin_through_the_link(srv) {
        let fake = Fake::start().await;
        setup(&srv, oidc(&fake)).await;
        let r = login(&srv, &fake, alice("sub-1", true)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let rec = &r.body["record"];
        assert_eq!(rec["email"], "alice@example.com");
        assert_eq!(rec["verified"], true, "the provider verified the email");
        assert_eq!(rec["name"], "Alice A", "mappedFields.name");
        assert_eq!(rec["avatar"], "https://img.test/alice.png", "mappedFields.avatarURL");
        assert!(rec.get("password").is_none() && rec.get("tokenKey").is_none());
        let meta = &r.body["meta"];
        assert_eq!(meta["isNew"], true);
        assert_eq!(meta["id"], "sub-1");
        assert_eq!(meta["name"], "Alice A");
        assert_eq!(meta["username"], "alice");
        assert_eq!(meta["email"], "alice@example.com");
        assert_eq!(meta["avatarURL"], "https://img.test/alice.png");
        assert_eq!(meta["refreshToken"], "rt-1");
        assert!(meta["accessToken"].as_str().expect("at").starts_with("at-"));
        assert!(galley_testkit::is_date(meta["expiry"].as_str().expect("expiry")), "{meta}");
        assert_eq!(meta["rawUser"]["sub"], "sub-1");
        let id = rec["id"].as_str().expect("id").to_owned();
        // The token is a working auth token of the new record.
        let token = r.body["token"].as_str().expect("token");
        let me = srv.send(Method::POST, "/api/collections/people/auth-refresh", Some(token), None).await;
        assert_eq!(me.status, 200, "{}", me.body);
        assert_eq!(me.body["record"]["id"], json!(id));

        // Same provider user again, even with another email now: the link decides.
        let mut changed = alice("sub-1", true);
        changed["email"] = json!("alice.new@example.com");
        let r = login(&srv, &fake, changed).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["record"]["id"], json!(id));
        assert_eq!(r.body["record"]["email"], "alice@example.com");
        assert_eq!(r.body["meta"]["isNew"], false);
        assert_eq!(count(&srv).await, 1);

        // Deleting the user deletes its link: the next login signs up again.
        let d = srv.su(Method::DELETE, &format!("/api/collections/people/records/{id}"), None).await;
        assert_eq!(d.status, 204, "{}", d.body);
        let mut other = alice("sub-1", true);
        other["email"] = json!("alice2@example.com");
        let r = login(&srv, &fake, other).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["meta"]["isNew"], true);
        assert_ne!(r.body["record"]["id"], json!(id));
        assert_eq!(r.body["record"]["email"], "alice2@example.com");
    }

    async fn links_by_verified_email(srv) {
        let fake = Fake::start().await;
        setup(&srv, oidc(&fake)).await;
        // An unverified account with the address: the provider proves the mailbox, so the
        // account is linked, verified, and loses the password set by whoever made it.
        let id = sign_up(&srv, "alice@example.com").await;
        assert_eq!(password_login(&srv, "alice@example.com").await.status, 200);
        let r = login(&srv, &fake, alice("sub-7", true)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["record"]["id"], json!(id));
        assert_eq!(r.body["record"]["verified"], true);
        assert_eq!(r.body["meta"]["isNew"], false);
        assert_eq!(password_login(&srv, "alice@example.com").await.status, 400, "password reset");
        assert_eq!(count(&srv).await, 1);

        // A verified account keeps its password when a verified provider email links to it.
        let bob = sign_up(&srv, "bob@example.com").await;
        let v = srv.su(Method::PATCH, &format!("/api/collections/people/records/{bob}"), Some(json!({"verified": true}))).await;
        assert_eq!(v.status, 200, "{}", v.body);
        let r = login(&srv, &fake, json!({"sub": "sub-bob", "email": "BOB@example.com", "email_verified": "true"})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["record"]["id"], json!(bob));
        assert_eq!(password_login(&srv, "bob@example.com").await.status, 200);
    }

    async fn refuses_to_link_by_unverified_email(srv) {
        let fake = Fake::start().await;
        setup(&srv, oidc(&fake)).await;
        let id = sign_up(&srv, "alice@example.com").await;
        let v = srv.su(Method::PATCH, &format!("/api/collections/people/records/{id}"), Some(json!({"verified": true}))).await;
        assert_eq!(v.status, 200);
        let r = login(&srv, &fake, alice("attacker", false)).await;
        r.assert_error(400, "Failed to authenticate.");
        assert_eq!(r.body["data"], json!({}));
        assert_eq!(count(&srv).await, 1, "no new record");
        assert_eq!(password_login(&srv, "alice@example.com").await.status, 200, "untouched");
        // An unverified provider email nobody has yet signs up, unverified.
        let r = login(&srv, &fake, json!({"sub": "s2", "email": "carol@example.com", "email_verified": false})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["record"]["verified"], false);
        assert_eq!(r.body["meta"]["isNew"], true);
    }

    async fn wrong_pkce_verifier_is_rejected(srv) {
        let fake = Fake::start().await;
        setup(&srv, oidc(&fake)).await;
        let info = provider_info(&srv, "oidc").await;
        let code = fake.code(info["codeChallenge"].as_str().expect("challenge"), alice("s", true));
        let other = provider_info(&srv, "oidc").await;
        let r = oauth(&srv, "oidc", &code, other["codeVerifier"].as_str().expect("v"), json!({})).await;
        r.assert_error(400, "Failed to fetch OAuth2 token.");
        assert_eq!(r.body["data"], json!({}));
        assert_eq!(count(&srv).await, 0);
        // A used (or unknown) code is refused the same way.
        let r = oauth(&srv, "oidc", &code, info["codeVerifier"].as_str().expect("v"), json!({})).await;
        r.assert_error(400, "Failed to fetch OAuth2 token.");
    }

    async fn form_and_provider_errors(srv) {
        let fake = Fake::start().await;
        setup(&srv, oidc(&fake)).await;
        let r = oauth(&srv, "github", "c", "v", json!({})).await;
        r.assert_error(400, "An error occurred while loading the submitted data.");
        assert_eq!(r.code_at("/provider"), Some("validation_invalid_provider"));
        assert_eq!(r.body["data"]["provider"]["message"], "Provider with name github is missing or is not enabled.");
        let r = srv.guest(Method::POST, "/api/collections/people/auth-with-oauth2", Some(json!({}))).await;
        r.assert_error(400, "An error occurred while loading the submitted data.");
        assert_eq!(galley_testkit::keys(&r.body["data"]), ["code", "provider"]);
        let r = srv.guest(Method::POST, "/api/collections/people/auth-with-oauth2", Some(json!({"provider": "oidc"}))).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.code_at("/code"), Some("validation_required"));
        assert_eq!(r.code_at("/provider"), None, "provider was given");
        assert_eq!(fake.state.lock().expect("lock").token_requests, 0, "no request to the provider");
        // The old `redirectUrl` spelling is still accepted.
        let info = provider_info(&srv, "oidc").await;
        let code = fake.code(info["codeChallenge"].as_str().expect("c"), alice("s-old", true));
        let r = srv.guest(Method::POST, "/api/collections/people/auth-with-oauth2", Some(json!({
            "provider": "oidc", "code": code, "codeVerifier": info["codeVerifier"], "redirectUrl": "http://app.test/cb"}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        // The provider failing on userinfo.
        fake.state.lock().expect("lock").fail_userinfo = true;
        let r = login(&srv, &fake, alice("s3", true)).await;
        r.assert_error(400, "Failed to fetch OAuth2 user.");
        fake.state.lock().expect("lock").fail_userinfo = false;
        // createData goes through the create rule and validation like a sign-up.
        let info = provider_info(&srv, "oidc").await;
        let code = fake.code(info["codeChallenge"].as_str().expect("c"), json!({"sub": "s4", "email": "dave@example.com", "email_verified": true}));
        let r = oauth(&srv, "oidc", &code, info["codeVerifier"].as_str().expect("v"), json!({"createData": {"name": "Dave"}})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["record"]["name"], "Dave", "createData wins over the mapped name");
        // Not an auth collection / OAuth2 disabled.
        let r = srv.guest(Method::POST, "/api/collections/nope/auth-with-oauth2", Some(json!({}))).await;
        r.assert_error(404, "Missing or invalid auth collection context.");
        let off = srv.su(Method::PATCH, "/api/collections/people", Some(json!({"oauth2": {"enabled": false}}))).await;
        assert_eq!(off.status, 200, "{}", off.body);
        let r = oauth(&srv, "oidc", "c", "v", json!({})).await;
        r.assert_error(403, "The collection is not configured to allow OAuth2 authentication.");
        let m = methods(&srv).await;
        assert_eq!(m["oauth2"], json!({"providers": [], "enabled": false}));
        // Superusers never sign in or up through OAuth2 (issue 17: enabling it is refused).
        let su = srv.su(Method::PATCH, "/api/collections/_superusers", Some(json!({"oauth2": {"enabled": true, "providers": oidc(&fake)}}))).await;
        assert_eq!(su.status, 400, "{}", su.body);
        let info = srv.guest(Method::GET, "/api/collections/_superusers/auth-methods", None).await;
        assert_eq!(info.body["oauth2"], json!({"providers": [], "enabled": false}));
        let code = fake.code("", json!({"sub": "root", "email": galley_testkit::SUPERUSER_EMAIL, "email_verified": true}));
        let r = srv.guest(Method::POST, "/api/collections/_superusers/auth-with-oauth2", Some(json!({
            "provider": "oidc", "code": code, "codeVerifier": "v", "redirectURL": "http://app.test/cb"}))).await;
        r.assert_error(403, "The collection is not configured to allow OAuth2 authentication.");
    }

    async fn preset_as_data_with_explicit_endpoints(srv) {
        let fake = Fake::start().await;
        // Discord's preset: its field mapping and email flag, with the endpoints pointed here.
        setup(&srv, json!([{"name": "discord", "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
            "authURL": format!("{}/authorize", fake.base), "tokenURL": format!("{}/token", fake.base),
            "userInfoURL": format!("{}/userinfo", fake.base), "pkce": false}])).await;
        let p = provider_info(&srv, "discord").await;
        assert_eq!(p["displayName"], "Discord");
        assert_eq!(p["codeVerifier"], "");
        assert_eq!(p["codeChallengeMethod"], "");
        let url = p["authURL"].as_str().expect("url");
        assert!(url.contains("scope=identify+email") && !url.contains("code_challenge"), "{url}");
        let code = fake.code("", json!({"id": "80351110224678912", "username": "nelly", "global_name": "Nelly",
            "email": "nelly@example.com", "verified": true, "avatar": "8342729096ea3675442027381ff50dfe"}));
        let r = srv.guest(Method::POST, "/api/collections/people/auth-with-oauth2", Some(json!({
            "provider": "discord", "code": code, "codeVerifier": "", "redirectURL": "http://app.test/cb"}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["meta"]["id"], "80351110224678912");
        assert_eq!(r.body["meta"]["username"], "nelly");
        assert_eq!(r.body["record"]["name"], "Nelly");
        assert_eq!(r.body["record"]["verified"], true);
        assert_eq!(r.body["meta"]["avatarURL"], "https://cdn.discordapp.com/avatars/80351110224678912/8342729096ea3675442027381ff50dfe.png");
    }

    async fn unreachable_provider(srv) {
        // A port nothing listens on.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            format!("http://{}", l.local_addr().expect("addr"))
        };
        setup(&srv, json!([
            {"name": "down", "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
             "authURL": format!("{closed}/authorize"), "tokenURL": format!("{closed}/token"), "userInfoURL": format!("{closed}/userinfo")},
            {"name": "nodiscovery", "clientId": CLIENT_ID, "extra": {"issuer": closed}},
        ])).await;
        let m = methods(&srv).await;
        let names: Vec<&str> = m["oauth2"]["providers"].as_array().expect("providers").iter().filter_map(|p| p["name"].as_str()).collect();
        assert_eq!(names, ["down"], "a provider whose discovery fails is left out");
        let r = oauth(&srv, "down", "c", "v", json!({})).await;
        r.assert_error(400, "Failed to fetch OAuth2 token.");
        let r = oauth(&srv, "nodiscovery", "c", "v", json!({})).await;
        assert_eq!(r.status, 500, "{}", r.body);
        r.assert_error_shape();
        assert_eq!(count(&srv).await, 0);
    }

    async fn logged_in_user_links_a_provider(srv) {
        let fake = Fake::start().await;
        setup(&srv, oidc(&fake)).await;
        let id = sign_up(&srv, "erin@example.com").await;
        let tok = password_login(&srv, "erin@example.com").await.body["token"].as_str().expect("t").to_owned();
        let info = provider_info(&srv, "oidc").await;
        // The provider knows the user under another address.
        let code = fake.code(info["codeChallenge"].as_str().expect("c"), json!({"sub": "erin-sub", "email": "erin@elsewhere.test", "email_verified": true}));
        let r = srv.send(Method::POST, "/api/collections/people/auth-with-oauth2", Some(&tok), Some(json!({
            "provider": "oidc", "code": code, "codeVerifier": info["codeVerifier"], "redirectURL": "http://app.test/cb"}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["record"]["id"], json!(id));
        assert_eq!(r.body["record"]["verified"], false, "the provider's address is another one");
        assert_eq!(password_login(&srv, "erin@example.com").await.status, 200, "the owner keeps the password");
        // From now on the provider login alone finds the account.
        let r = login(&srv, &fake, json!({"sub": "erin-sub", "email": "erin@elsewhere.test", "email_verified": true})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["record"]["id"], json!(id));
    }

    async fn external_auths_are_records_of_their_owner(srv) {
        let fake = Fake::start().await;
        setup(&srv, oidc(&fake)).await;
        let a = login(&srv, &fake, alice("sub-a", true)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let b = login(&srv, &fake, json!({"sub": "sub-b", "email": "bob@example.com", "email_verified": true})).await;
        assert_eq!(b.status, 200, "{}", b.body);
        let (ta, ida) = (a.body["token"].as_str().expect("t"), a.body["record"]["id"].as_str().expect("id"));
        let col = srv.su(Method::GET, "/api/collections/_externalAuths", None).await;
        assert_eq!(col.status, 200, "{}", col.body);
        assert_eq!((col.body["id"].clone(), col.body["type"].clone(), col.body["system"].clone()), (json!("pbc_2281828961"), json!("base"), json!(true)));
        assert_eq!(col.body["createRule"], Value::Null);
        // Each user sees only its own link.
        let mine = srv.send(Method::GET, "/api/collections/_externalAuths/records", Some(ta), None).await;
        assert_eq!(mine.status, 200, "{}", mine.body);
        assert_eq!(mine.body["totalItems"], 1);
        let link = &mine.body["items"][0];
        assert_eq!((link["recordRef"].as_str(), link["provider"].as_str(), link["providerId"].as_str()), (Some(ida), Some("oidc"), Some("sub-a")));
        let people = srv.su(Method::GET, "/api/collections/people", None).await;
        assert_eq!(link["collectionRef"], people.body["id"]);
        assert!(galley_testkit::is_date(link["created"].as_str().expect("created")));
        let guest = srv.guest(Method::GET, "/api/collections/_externalAuths/records", None).await;
        assert_eq!((guest.status, guest.body["totalItems"].clone()), (200, json!(0)));
        assert_eq!(srv.su(Method::GET, "/api/collections/_externalAuths/records", None).await.body["totalItems"], 2);
        let forged = srv.send(Method::POST, "/api/collections/_externalAuths/records", Some(ta),
            Some(json!({"collectionRef": people.body["id"], "recordRef": ida, "provider": "x", "providerId": "y"}))).await;
        assert_eq!(forged.status, 403, "{}", forged.body);
        // Unlinking (the SDK's unlinkExternalAuth): the next login with it signs up anew.
        let id = link["id"].as_str().expect("id");
        let d = srv.send(Method::DELETE, &format!("/api/collections/_externalAuths/records/{id}"), Some(ta), None).await;
        assert_eq!(d.status, 204, "{}", d.body);
        let mut moved = alice("sub-a", true);
        moved["email"] = json!("alice.other@example.com");
        let again = login(&srv, &fake, moved).await;
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(again.body["meta"]["isNew"], true);
    }

    async fn system_table_names_are_taken(srv) {
        for name in ["_externalAuths", "_authOrigins", "_AUTHORIGINS", "_otps", "_mfas"] {
            let r = srv.su(Method::POST, "/api/collections", Some(json!({"name": name, "type": "base"}))).await;
            assert_eq!(r.status, 400, "{name}: {}", r.body);
            assert_eq!(r.code_at("/name"), Some("validation_collection_name_exists"), "{name}");
        }
    }

    async fn oauth2_redirect_reaches_the_realtime_client(srv) {
        let mut sse = SseClient::connect(&srv.url).await;
        let sub = srv.guest(Method::POST, "/api/realtime", Some(json!({"clientId": sse.client_id, "subscriptions": ["@oauth2"]}))).await;
        assert_eq!(sub.status, 204, "{}", sub.body);
        // Unknown state: nothing delivered, the failure page.
        let r = srv.request(Method::GET, "/api/oauth2-redirect?state=nope&code=abc").send().await.expect("req");
        assert_eq!(r.status(), 200);
        assert!(r.text().await.expect("text").starts_with("Failed to authenticate."));
        let r = srv.request(Method::GET, &format!("/api/oauth2-redirect?state={}&code=the%2Fcode", sse.client_id)).send().await.expect("req");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.expect("text"), "Auth completed. You can close this window and go back to the app.");
        let ev = sse.next(Duration::from_secs(5)).await.expect("@oauth2 event");
        assert_eq!(ev.event, "@oauth2");
        assert_eq!(ev.data, json!({"state": sse.client_id, "code": "the/code"}));
        // One redirect per subscription.
        let r = srv.request(Method::GET, &format!("/api/oauth2-redirect?state={}&code=again", sse.client_id)).send().await.expect("req");
        assert!(r.text().await.expect("text").starts_with("Failed to authenticate."));
        assert!(sse.next(Duration::from_millis(300)).await.is_none());
        // A form POST (Apple's form_post) with a provider error.
        let sub = srv.guest(Method::POST, "/api/realtime", Some(json!({"clientId": sse.client_id, "subscriptions": ["@oauth2"]}))).await;
        assert_eq!(sub.status, 204);
        let r = srv.request(Method::POST, "/api/oauth2-redirect")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("state={}&code=&error=access_denied", sse.client_id))
            .send().await.expect("req");
        assert!(r.text().await.expect("text").starts_with("Failed to authenticate."));
        let ev = sse.next(Duration::from_secs(5)).await.expect("@oauth2 event");
        assert_eq!(ev.data, json!({"state": sse.client_id, "code": "", "error": "access_denied"}));
    }

    async fn form_post_redirect_name_reaches_the_exchange(srv) {
        let fake = Fake::start().await;
        setup(&srv, oidc(&fake)).await;
        let mut sse = SseClient::connect(&srv.url).await;
        let sub = srv.guest(Method::POST, "/api/realtime", Some(json!({"clientId": sse.client_id, "subscriptions": ["@oauth2"]}))).await;
        assert_eq!(sub.status, 204);
        let info = provider_info(&srv, "oidc").await;
        // Apple sends the name once, in the form it posts back, not in its id_token.
        let code = fake.code(info["codeChallenge"].as_str().expect("c"), json!({"sub": "apple-1", "email": "ann@example.com", "email_verified": "true"}));
        let form = form_encode(&[("state", &sse.client_id), ("code", &code), ("user", r#"{"name":{"firstName":"Ann","lastName":"Lee"},"email":"ann@example.com"}"#)]);
        let r = srv.request(Method::POST, "/api/oauth2-redirect")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form).send().await.expect("req");
        assert!(r.text().await.expect("text").starts_with("Auth completed."));
        let ev = sse.next(Duration::from_secs(5)).await.expect("@oauth2 event");
        assert_eq!(ev.data, json!({"state": sse.client_id, "code": code}), "the name is not sent to the client");
        let r = oauth(&srv, "oidc", &code, info["codeVerifier"].as_str().expect("v"), json!({})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["meta"]["name"], "Ann Lee");
        assert_eq!(r.body["record"]["name"], "Ann Lee");
    }

    async fn oauth2_is_an_mfa_factor(srv) {
        let fake = Fake::start().await;
        setup(&srv, oidc(&fake)).await;
        let on = srv.su(Method::PATCH, "/api/collections/people", Some(json!({"mfa": {"enabled": true}}))).await;
        assert_eq!(on.status, 200, "{}", on.body);
        let id = sign_up(&srv, "alice@example.com").await;
        let v = srv.su(Method::PATCH, &format!("/api/collections/people/records/{id}"), Some(json!({"verified": true}))).await;
        assert_eq!(v.status, 200);
        let first = password_login(&srv, "alice@example.com").await;
        assert_eq!(first.status, 401, "{}", first.body);
        let mfa = first.body["mfaId"].as_str().expect("mfaId").to_owned();
        let r = login(&srv, &fake, alice("sub-mfa", true)).await;
        assert_eq!(r.status, 401, "OAuth2 alone is one factor: {}", r.body);
        let info = provider_info(&srv, "oidc").await;
        let code = fake.code(info["codeChallenge"].as_str().expect("c"), alice("sub-mfa", true));
        let r = oauth(&srv, "oidc", &code, info["codeVerifier"].as_str().expect("v"), json!({"mfaId": mfa})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["record"]["id"], json!(id));
        assert_eq!(r.body["meta"]["isNew"], false);
        assert!(r.body["token"].as_str().is_some());
    }

    async fn resend_throttle_and_auth_alerts(srv) {
        srv.create_collection(json!({"name": "people", "type": "auth", "createRule": ""})).await;
        sign_up(&srv, "alice@example.com").await;
        for _ in 0..3 {
            let r = srv.guest(Method::POST, "/api/collections/people/request-password-reset", Some(json!({"email": "alice@example.com"}))).await;
            assert_eq!(r.status, 204);
            let r = srv.guest(Method::POST, "/api/collections/people/request-verification", Some(json!({"email": "alice@example.com"}))).await;
            assert_eq!(r.status, 204);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mails = wait_outbox(&srv, 2).await;
        let to_alice: Vec<&Value> = mails.iter().filter(|m| m["to"] == "alice@example.com").collect();
        assert_eq!(to_alice.len(), 2, "one reset and one verification mail: {mails:?}");

        // Auth alerts (on by default): not on the first login, not from a known origin,
        // once from a new one.
        let ua_login = |ua: &'static str| {
            let rb = srv.request(Method::POST, "/api/collections/people/auth-with-password")
                .header("user-agent", ua)
                .json(&json!({"identity": "alice@example.com", "password": PASS}));
            async move { TestServer::read(rb.send().await.expect("login")).await }
        };
        assert_eq!(ua_login("Device-A").await.status, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(ua_login("Device-A").await.status, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(outbox(&srv).await.len(), mails.len(), "no alert yet");
        assert_eq!(ua_login("Device-B").await.status, 200);
        let all = wait_outbox(&srv, mails.len() + 1).await;
        let alert = all.last().expect("alert");
        assert_eq!(alert["to"], "alice@example.com");
        assert_eq!(alert["subject"], "Login from a new location");
        assert!(alert["html"].as_str().expect("html").contains("Device-B"), "{alert}");
        assert_eq!(ua_login("Device-B").await.status, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(outbox(&srv).await.len(), mails.len() + 1, "a known origin again");
    }
}

galley_testkit::both_engines_with! {
    // The fake provider is on loopback: its avatars are fetched only with the operator's
    // opt-in (without it, see hardening::oauth2_avatar_download_public_only).
    config = |cfg| cfg.oauth2_private_avatars = true;
    async fn avatar_into_a_file_field(srv) {
        let fake = Fake::start().await;
        srv.create_collection(json!({
            "name": "people", "type": "auth", "createRule": "",
            "fields": [{"name": "photo", "type": "file", "maxSelect": 1, "maxSize": 1000}],
            "oauth2": {"enabled": true, "mappedFields": {"avatarURL": "photo"}, "providers": oidc(&fake)},
        })).await;
        let r = login(&srv, &fake, json!({"sub": "p1", "email": "pia@example.com", "email_verified": true,
            "picture": format!("{}/avatar.png", fake.base)})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let (id, photo) = (r.body["record"]["id"].as_str().expect("id"), r.body["record"]["photo"].as_str().expect("photo"));
        assert!(photo.starts_with("avatar_") && photo.ends_with(".png"), "{photo}");
        let f = srv.request(Method::GET, &format!("/api/files/people/{id}/{photo}")).send().await.expect("file");
        assert_eq!(f.status(), 200);
        assert_eq!(f.bytes().await.expect("bytes").as_ref(), AVATAR);
    }
}
