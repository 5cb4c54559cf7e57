//! Superuser authentication: password login, refresh, and tokens that must not work.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use galley_testkit::{
    both_engines, is_date, is_record_id, keys, Method, TestServer, SUPERUSER_EMAIL,
    SUPERUSER_PASSWORD,
};
use serde_json::{json, Map, Value};

const LOGIN: &str = "/api/collections/_superusers/auth-with-password";
const REFRESH: &str = "/api/collections/_superusers/auth-refresh";
const SUPERUSERS_ID: &str = "pbc_3142635823";
fn segments(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {token}");
    let dec = |s: &str| -> Value {
        serde_json::from_slice(&B64.decode(s).expect("base64url")).expect("json")
    };
    (dec(parts[0]), dec(parts[1]))
}

async fn login(srv: &TestServer, identity: &str, password: &str) -> galley_testkit::Reply {
    srv.guest(
        Method::POST,
        LOGIN,
        Some(json!({"identity": identity, "password": password})),
    )
    .await
}

/// Signs claims with the superuser's real key (tokenKey + collection secret).
async fn sign_as_superuser(srv: &TestServer, claims: Value) -> String {
    let caller = galley_core::identity::authenticate(&srv.app, &srv.token).await;
    let galley_core::Caller::Record { collection, record } = caller else {
        panic!("harness token must authenticate")
    };
    let key = record["tokenKey"].as_str().expect("tokenKey");
    let secret = &collection
        .auth
        .as_ref()
        .expect("auth options")
        .auth_token
        .secret;
    let claims: Map<String, Value> = claims.as_object().cloned().expect("object");
    galley_auth::jwt::sign(&claims, &format!("{key}{secret}"))
}

async fn superuser_id(srv: &TestServer) -> String {
    let r = login(srv, SUPERUSER_EMAIL, SUPERUSER_PASSWORD).await;
    r.body["record"]["id"].as_str().expect("id").to_owned()
}

/// The collections API is superuser-only, so a token that does not authenticate gives 401.
async fn assert_guest(srv: &TestServer, token: &str, what: &str) {
    let r = srv
        .send(Method::GET, "/api/collections", Some(token), None)
        .await;
    assert_eq!(
        r.status, 401,
        "{what}: a bad token must make a guest, got {}",
        r.body
    );
    r.assert_error(
        401,
        "The request requires valid record authorization token.",
    );
    let r = srv.send(Method::POST, REFRESH, Some(token), None).await;
    assert_eq!(
        r.status, 401,
        "{what}: refresh with a bad token: {}",
        r.body
    );
}

both_engines! {
    async fn password_login_returns_token_and_record(srv) {
        let r = login(&srv, SUPERUSER_EMAIL, SUPERUSER_PASSWORD).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(keys(&r.body), ["record", "token"]);
        let rec = &r.body["record"];
        assert_eq!(keys(rec), ["collectionId", "collectionName", "created", "email", "emailVisibility", "id", "updated", "verified"]);
        assert_eq!(rec["collectionId"], SUPERUSERS_ID);
        assert_eq!(rec["collectionName"], "_superusers");
        assert_eq!(rec["email"], SUPERUSER_EMAIL);
        assert_eq!(rec["verified"], true);
        assert_eq!(rec["emailVisibility"], false);
        assert!(is_record_id(rec["id"].as_str().expect("id")), "{}", rec["id"]);
        assert!(is_date(rec["created"].as_str().expect("created")), "{}", rec["created"]);
        assert!(is_date(rec["updated"].as_str().expect("updated")), "{}", rec["updated"]);

        let token = r.body["token"].as_str().expect("token");
        let (header, claims) = segments(token);
        assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
        assert_eq!(keys(&claims), ["collectionId", "exp", "id", "refreshable", "type"]);
        assert_eq!(claims["id"], rec["id"]);
        assert_eq!(claims["collectionId"], SUPERUSERS_ID);
        assert_eq!(claims["type"], "auth");
        assert_eq!(claims["refreshable"], true);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
        let exp = claims["exp"].as_i64().expect("exp");
        assert!((exp - now - 86400).abs() <= 60, "superuser tokens last one day: exp {exp}, now {now}");

        // The token works, and the login is case-insensitive on the email.
        let v = srv.send(Method::GET, "/api/collections", Some(token), None).await;
        assert_eq!(v.status, 200, "{}", v.body);
        let upper = login(&srv, &SUPERUSER_EMAIL.to_uppercase(), SUPERUSER_PASSWORD).await;
        assert_eq!(upper.status, 200, "{}", upper.body);
        assert_eq!(upper.body["record"]["id"], rec["id"]);
    }

    async fn wrong_password_and_unknown_email_fail_alike(srv) {
        let wrong = login(&srv, SUPERUSER_EMAIL, "Wrong-Pass-123").await;
        wrong.assert_error(400, "Failed to authenticate.");
        assert_eq!(wrong.body, json!({"data": {}, "message": "Failed to authenticate.", "status": 400}));
        let unknown = login(&srv, "nobody@example.com", SUPERUSER_PASSWORD).await;
        assert_eq!(unknown.body, wrong.body);
        assert_eq!(unknown.status, 400);
        // The password is compared exactly.
        let upper = login(&srv, SUPERUSER_EMAIL, &SUPERUSER_PASSWORD.to_uppercase()).await;
        assert_eq!(upper.body, wrong.body);

        let blank = login(&srv, "", "").await;
        blank.assert_error(400, "An error occurred while validating the submitted data.");
        assert_eq!(blank.code_at("/identity"), Some("validation_required"));
        assert_eq!(blank.code_at("/password"), Some("validation_required"));
        assert!(blank.body.get("token").is_none());
    }

    async fn refresh_accepts_raw_and_bearer_tokens(srv) {
        let id = superuser_id(&srv).await;
        for header in [srv.token.clone(), format!("Bearer {}", srv.token), format!("bearer {}", srv.token)] {
            let r = srv.send(Method::POST, REFRESH, Some(&header), None).await;
            assert_eq!(r.status, 200, "{header}: {}", r.body);
            assert_eq!(r.body["record"]["id"], json!(id));
            assert!(r.body["record"].get("password").is_none() && r.body["record"].get("tokenKey").is_none());
            let token = r.body["token"].as_str().expect("token");
            let (_, claims) = segments(token);
            let (_, old) = segments(&srv.token);
            assert!(claims["exp"].as_i64() >= old["exp"].as_i64());
            assert_eq!(claims["id"], json!(id));
            // The refreshed token is itself a working superuser token.
            let v = srv.send(Method::GET, "/api/collections", Some(&format!("Bearer {token}")), None).await;
            assert_eq!(v.status, 200, "{}", v.body);
        }
    }

    async fn refresh_without_token_is_401(srv) {
        let r = srv.guest(Method::POST, REFRESH, None).await;
        r.assert_error(401, "The request requires valid record authorization token.");
        let r = srv.send(Method::POST, REFRESH, Some("Bearer "), None).await;
        r.assert_error(401, "The request requires valid record authorization token.");
    }

    async fn forged_tampered_expired_and_unsigned_tokens_are_guests(srv) {
        let id = superuser_id(&srv).await;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
        let parts: Vec<String> = srv.token.split('.').map(str::to_owned).collect();

        // Sanity check of the forging path: signed with the real key and a future exp it works.
        let good = sign_as_superuser(&srv, json!({"id": id, "type": "auth", "collectionId": SUPERUSERS_ID, "refreshable": true, "exp": now + 600})).await;
        assert_eq!(srv.send(Method::GET, "/api/collections", Some(&good), None).await.status, 200);

        let expired = sign_as_superuser(&srv, json!({"id": id, "type": "auth", "collectionId": SUPERUSERS_ID, "refreshable": true, "exp": now - 10})).await;
        assert_guest(&srv, &expired, "expired").await;
        let no_exp = sign_as_superuser(&srv, json!({"id": id, "type": "auth", "collectionId": SUPERUSERS_ID, "refreshable": true})).await;
        assert_guest(&srv, &no_exp, "no exp").await;
        let wrong_type = sign_as_superuser(&srv, json!({"id": id, "type": "file", "collectionId": SUPERUSERS_ID, "exp": now + 600})).await;
        assert_guest(&srv, &wrong_type, "file token used as auth").await;

        // Signature bytes changed in the middle.
        let mut sig: Vec<u8> = parts[2].clone().into_bytes();
        sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
        let tampered_sig = format!("{}.{}.{}", parts[0], parts[1], String::from_utf8(sig).expect("ascii"));
        assert_guest(&srv, &tampered_sig, "tampered signature").await;

        // Payload changed (longer expiry) with the old signature.
        let (_, mut claims) = segments(&srv.token);
        claims["exp"] = json!(now + 10 * 365 * 86400);
        let tampered_payload = format!("{}.{}.{}", parts[0], B64.encode(claims.to_string()), parts[2]);
        assert_guest(&srv, &tampered_payload, "tampered payload").await;

        // alg:none with the genuine claims and no signature.
        let (_, claims) = segments(&srv.token);
        let none_header = B64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", B64.encode(claims.to_string()));
        assert_guest(&srv, &unsigned, "alg none").await;
        let unsigned_sig = format!("{none_header}.{}.{}", B64.encode(claims.to_string()), parts[2]);
        assert_guest(&srv, &unsigned_sig, "alg none with a signature").await;

        // Signed with a guessed secret.
        let forged = galley_auth::jwt::sign(claims.as_object().expect("claims"), "secret");
        assert_guest(&srv, &forged, "wrong secret").await;

        // Unknown record / collection, and garbage.
        let other = sign_as_superuser(&srv, json!({"id": "nosuchrecord123", "type": "auth", "collectionId": SUPERUSERS_ID, "exp": now + 600})).await;
        assert_guest(&srv, &other, "unknown record").await;
        for junk in ["abc", "a.b.c", "...", "Bearer Bearer x", &"x".repeat(9000), "\u{1F600}.\u{1F600}.\u{1F600}"] {
            let r = srv.send(Method::GET, "/api/collections", Some(junk), None).await;
            assert_eq!(r.status, 401, "{junk:?}: {}", r.body);
        }
        srv.assert_healthy().await;
        // The real token still works after all that.
        assert_eq!(srv.su(Method::GET, "/api/collections", None).await.status, 200);
    }

    async fn password_change_kills_old_tokens(srv) {
        let id = superuser_id(&srv).await;
        let old = srv.token.clone();
        let r = srv
            .su(Method::PATCH, &format!("/api/collections/_superusers/records/{id}"), Some(json!({"password": "New-Pass-456", "passwordConfirm": "New-Pass-456"})))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.get("password").is_none() && r.body.get("tokenKey").is_none());
        assert_guest(&srv, &old, "token issued before the password change").await;
        login(&srv, SUPERUSER_EMAIL, SUPERUSER_PASSWORD).await.assert_error(400, "Failed to authenticate.");
        let r = login(&srv, SUPERUSER_EMAIL, "New-Pass-456").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let t = r.body["token"].as_str().expect("token");
        assert_eq!(srv.send(Method::GET, "/api/collections", Some(t), None).await.status, 200);
    }

    async fn other_auth_collection_tokens_are_forbidden(srv) {
        srv.create_collection(json!({"name": "members", "type": "auth", "createRule": ""})).await;
        let r = srv
            .guest(Method::POST, "/api/collections/members/records", Some(json!({"email": "m@example.com", "password": "Member-Pass-1", "passwordConfirm": "Member-Pass-1"})))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = srv
            .guest(Method::POST, "/api/collections/members/auth-with-password", Some(json!({"identity": "m@example.com", "password": "Member-Pass-1"})))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["record"]["collectionName"], "members");
        let t = r.body["token"].as_str().expect("token").to_owned();
        // A member token is not a superuser token.
        srv.send(Method::GET, "/api/collections", Some(&t), None)
            .await
            .assert_error(403, "The authorized record is not allowed to perform this action.");
        srv.send(Method::POST, REFRESH, Some(&t), None)
            .await
            .assert_error(403, "The request requires auth record from members collection.");
        // Nor can a member log in as a superuser with its own password.
        login(&srv, "m@example.com", "Member-Pass-1").await.assert_error(400, "Failed to authenticate.");
        // Its own refresh works.
        let r = srv.send(Method::POST, "/api/collections/members/auth-refresh", Some(&t), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["record"]["email"], "m@example.com");
    }
}
