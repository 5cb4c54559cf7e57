//! Auth hardening: forged tokens, rate limits (429 with Retry-After), bcrypt hashes
//! imported from PocketBase verified and re-hashed to argon2id.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use galley_auth::ratelimit::AuthLimits;
use galley_testkit::{both_engines, both_engines_with, Method, TestServer};
use serde_json::{json, Map, Value};
use std::time::Duration;

async fn user(srv: &TestServer) -> (String, String) {
    srv.create_collection(json!({"name": "people", "type": "auth", "createRule": ""}))
        .await;
    let r = srv
        .guest(Method::POST, "/api/collections/people/records", Some(json!({"email": "a@example.com", "password": "12345678", "passwordConfirm": "12345678"})))
        .await;
    let id = r.body["id"].as_str().expect("id").to_owned();
    let l = srv
        .guest(
            Method::POST,
            "/api/collections/people/auth-with-password",
            Some(json!({"identity": "a@example.com", "password": "12345678"})),
        )
        .await;
    (id, l.body["token"].as_str().expect("token").to_owned())
}

fn sign(claims: Value, secret: &str) -> String {
    let m: Map<String, Value> = claims.as_object().cloned().expect("object");
    galley_auth::jwt::sign(&m, secret)
}

async fn refresh(srv: &TestServer, col: &str, token: &str) -> u16 {
    srv.send(
        Method::POST,
        &format!("/api/collections/{col}/auth-refresh"),
        Some(token),
        None,
    )
    .await
    .status
}

both_engines! {
    async fn forged_tokens_are_guests(srv) {
        let (id, good) = user(&srv).await;
        assert_eq!(refresh(&srv, "people", &good).await, 200);
        let col = srv.app.schema().find("people").cloned().expect("people");
        let rec = galley_core::identity::authenticate(&srv.app, &good).await;
        let galley_core::Caller::Record { record, .. } = rec else { panic!("valid token") };
        let key = record["tokenKey"].as_str().expect("tokenKey").to_owned();
        let a = col.auth.clone().expect("auth");
        let exp = chrono::Utc::now().timestamp() + 3600;
        let base = json!({"id": id, "type": "auth", "collectionId": col.id, "refreshable": true, "exp": exp});
        // Control: signed with the real key, it works.
        assert_eq!(refresh(&srv, "people", &sign(base.clone(), &format!("{key}{}", a.auth_token.secret))).await, 200);
        let header_none = B64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = B64.encode(base.to_string());
        let forged = [
            ("alg none", format!("{header_none}.{body}.")),
            ("wrong key", sign(base.clone(), "not-the-key")),
            ("collection secret without tokenKey", sign(base.clone(), &a.auth_token.secret)),
            ("expired", sign(json!({"id": id, "type": "auth", "collectionId": col.id, "refreshable": true, "exp": 1000}), &format!("{key}{}", a.auth_token.secret))),
            ("verification secret", sign(base.clone(), &format!("{key}{}", a.verification_token.secret))),
            ("verification type", sign(json!({"id": id, "type": "verification", "collectionId": col.id, "email": "a@example.com", "exp": exp}), &format!("{key}{}", a.auth_token.secret))),
            ("other collection id", sign(json!({"id": id, "type": "auth", "collectionId": "pbc_3142635823", "refreshable": true, "exp": exp}), &format!("{key}{}", a.auth_token.secret))),
            ("tampered payload", { let mut p: Vec<&str> = good.split('.').collect(); let b = B64.encode(json!({"id": "someoneelse0000", "type": "auth", "collectionId": col.id, "exp": exp}).to_string()); p[1] = &b; p.join(".") }),
        ];
        for (what, t) in forged {
            assert_eq!(refresh(&srv, "people", &t).await, 401, "{what} must not authenticate");
            let r = srv.send(Method::GET, "/api/collections", Some(&t), None).await;
            assert_eq!(r.status, 401, "{what}");
        }
        // A user token is not valid for another collection's refresh.
        srv.send(Method::POST, "/api/collections/_superusers/auth-refresh", Some(&good), None).await
            .assert_error(403, "The request requires auth record from people collection.");
    }

    async fn bcrypt_hashes_verify_and_are_rehashed(srv) {
        let (id, _) = user(&srv).await;
        // A PocketBase hash ($2a$, cost 10) of "pb-password-1", as if imported.
        let hash = bcrypt::hash_with_salt("pb-password-1", 10, [3u8; 16]).expect("bcrypt").format_for_version(bcrypt::Version::TwoA);
        let id2 = id.clone();
        let h2 = hash.clone();
        srv.app.store_for_tests().write(move |c: &mut dyn galley_store::Conn| -> Result<(), galley_store::StoreError> {
            let mut sql = galley_sql::Sql::new(c.dialect());
            sql.push("UPDATE \"people\" SET \"password\" = ").push_param(h2).push(" WHERE \"id\" = ").push_param(id2);
            galley_store::ConnExt::execute_sql(c, &sql)?;
            Ok(())
        }).await.expect("import hash");
        let bad = srv.guest(Method::POST, "/api/collections/people/auth-with-password", Some(json!({"identity": "a@example.com", "password": "wrong-pass"}))).await;
        bad.assert_error(400, "Failed to authenticate.");
        let ok = srv.guest(Method::POST, "/api/collections/people/auth-with-password", Some(json!({"identity": "a@example.com", "password": "pb-password-1"}))).await;
        assert_eq!(ok.status, 200, "{}", ok.body);
        let stored = srv.app.store_for_tests().read(move |c: &mut dyn galley_store::Conn| -> Result<String, galley_store::StoreError> {
            Ok(c.query("SELECT \"password\" AS p FROM \"people\"", &[])?.first().map(|r| r.text("p")).unwrap_or_default())
        }).await.expect("read");
        assert!(stored.starts_with("$argon2id$"), "re-hashed on login: {stored}");
        // The session survives the re-hash, and the password still works.
        let t = ok.body["token"].as_str().expect("token");
        assert_eq!(refresh(&srv, "people", t).await, 200);
        let again = srv.guest(Method::POST, "/api/collections/people/auth-with-password", Some(json!({"identity": "a@example.com", "password": "pb-password-1"}))).await;
        assert_eq!(again.status, 200);
    }

    async fn default_limits_are_on(srv) {
        assert!(srv.app.config.auth_limits.per_ip > 0 && srv.app.config.auth_limits.per_identity > 0, "on by default");
        user(&srv).await;
        let mut last = 0;
        for _ in 0..(srv.app.config.auth_limits.per_identity + 1) {
            last = srv.guest(Method::POST, "/api/collections/people/auth-with-password", Some(json!({"identity": "a@example.com", "password": "guess-guess"}))).await.status;
        }
        assert_eq!(last, 429, "password guessing is limited per identity by default");
        let r = srv.su(Method::GET, "/api/settings", None).await;
        assert_eq!(r.body["rateLimits"]["enabled"], true, "on by default, and the settings say so");
        // A superuser may switch the limits off; then the same guesses are plain 400s.
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"rateLimits": {"enabled": false}}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        for _ in 0..(srv.app.config.auth_limits.per_identity + 1) {
            last = srv.guest(Method::POST, "/api/collections/people/auth-with-password", Some(json!({"identity": "a@example.com", "password": "guess-guess"}))).await.status;
        }
        assert_eq!(last, 400, "no limit once rateLimits.enabled is false");
    }
}

both_engines_with! {
    config = |cfg| cfg.auth_limits = AuthLimits { window: Duration::from_secs(60), per_ip: 8, per_identity: 3 };
    async fn rate_limits_by_identity_and_ip(srv) {
        user(&srv).await;
        let login = |identity: &'static str| {
            let srv = &srv;
            async move { srv.guest(Method::POST, "/api/collections/people/auth-with-password", Some(json!({"identity": identity, "password": "wrong-pass"}))).await }
        };
        // `user()` logged in once already: 2 more attempts fill the identity's 3.
        for _ in 0..2 {
            assert_eq!(login("a@example.com").await.status, 400);
        }
        let r = login("A@example.com").await;
        r.assert_error(429, "Too Many Requests.");
        let retry: u64 = r.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|s| s.parse().ok()).expect("Retry-After");
        assert!((1..=60).contains(&retry), "{retry}");
        // Other identities still go through, until the IP limit (8 a minute) is reached.
        assert_eq!(login("b@example.com").await.status, 400);
        assert_eq!(login("c@example.com").await.status, 400);
        let codes: Vec<u16> = futures_statuses(&srv, 4).await;
        assert!(codes.contains(&429), "per-IP limit: {codes:?}");
        let r = srv.guest(Method::POST, "/api/collections/people/request-password-reset", Some(json!({"email": "z@example.com"}))).await;
        r.assert_error(429, "Too Many Requests.");
        // Superusers are not limited.
        let su = srv.su(Method::POST, "/api/collections/people/request-password-reset", Some(json!({"email": "z@example.com"}))).await;
        assert_eq!(su.status, 204);
        // Non-auth endpoints are not concerned.
        assert_eq!(srv.guest(Method::GET, "/api/health", None).await.status, 200);
    }
}

async fn futures_statuses(srv: &TestServer, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for i in 0..n {
        let r = srv
            .guest(
                Method::POST,
                "/api/collections/people/request-verification",
                Some(json!({"email": format!("x{i}@example.com")})),
            )
            .await;
        out.push(r.status);
    }
    out
}
