//! Auth flows end to end: auth-methods, impersonation, verification, password reset and
//! email change through mail caught by an SMTP sink, OTP and MFA through the dev outbox,
//! and the test email endpoint.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use galley_testkit::smtp::SmtpSink;
use galley_testkit::{both_engines, Method, Reply, TestServer};
use serde_json::{json, Value};

const PASS: &str = "Alice-Pass-1";

fn claims(token: &str) -> Value {
    let p = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&B64.decode(p).expect("b64")).expect("json")
}

async fn setup(srv: &TestServer, extra: Value) -> String {
    let mut def = json!({"name": "people", "type": "auth", "createRule": "", "fields": [{"name": "name", "type": "text"}]});
    if let (Some(d), Some(e)) = (def.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    srv.create_collection(def).await;
    let r = srv
        .guest(
            Method::POST,
            "/api/collections/people/records",
            Some(json!({"email": "alice@example.com", "password": PASS, "passwordConfirm": PASS})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["id"].as_str().expect("id").to_owned()
}

async fn post(srv: &TestServer, path: &str, token: Option<&str>, body: Value) -> Reply {
    srv.send(
        Method::POST,
        &format!("/api/collections/people/{path}"),
        token,
        Some(body),
    )
    .await
}

async fn login(srv: &TestServer, email: &str, password: &str) -> Reply {
    post(
        srv,
        "auth-with-password",
        None,
        json!({"identity": email, "password": password}),
    )
    .await
}

async fn smtp(srv: &TestServer) -> SmtpSink {
    let sink = SmtpSink::start().await;
    let r = srv
        .su(Method::PATCH, "/api/settings", Some(json!({
            "smtp": {"enabled": true, "host": "127.0.0.1", "port": sink.port},
            "meta": {"appName": "Acme", "appURL": "http://acme.test", "senderAddress": "noreply@acme.test", "senderName": "Acme"}
        })))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    sink
}

async fn outbox(srv: &TestServer, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let r = srv.su(Method::GET, "/api/galley/outbox", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let items = r.body["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            return items;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("expected {n} mails in the outbox");
}

both_engines! {
    async fn auth_methods_shape(srv) {
        setup(&srv, json!({})).await;
        let r = srv.guest(Method::GET, "/api/collections/people/auth-methods", None).await;
        assert_eq!(r.body, json!({"password": {"identityFields": ["email"], "enabled": true},
            "oauth2": {"providers": [], "enabled": false}, "mfa": {"enabled": false, "duration": 0},
            "otp": {"enabled": false, "duration": 0}, "authProviders": [], "usernamePassword": false, "emailPassword": true}));
        srv.su(Method::PATCH, "/api/collections/people", Some(json!({"otp": {"enabled": true}, "mfa": {"enabled": true}}))).await;
        let r = srv.guest(Method::GET, "/api/collections/people/auth-methods", None).await;
        assert_eq!((r.body["mfa"].clone(), r.body["otp"].clone()), (json!({"enabled": true, "duration": 600}), json!({"enabled": true, "duration": 180})));
        srv.create_collection(json!({"name": "notes"})).await;
        srv.guest(Method::GET, "/api/collections/notes/auth-methods", None).await.assert_error(404, "Missing or invalid auth collection context.");
    }

    async fn impersonation(srv) {
        let id = setup(&srv, json!({})).await;
        let user = login(&srv, "alice@example.com", PASS).await.body["token"].as_str().expect("t").to_owned();
        let path = format!("/api/collections/people/impersonate/{id}");
        srv.guest(Method::POST, &path, None).await.assert_error(401, "The request requires valid record authorization token.");
        srv.send(Method::POST, &path, Some(&user), None).await.assert_error(403, "The authorized record is not allowed to perform this action.");
        let bad = srv.su(Method::POST, &path, Some(json!({"duration": -1}))).await;
        assert_eq!(bad.code_at("/duration"), Some("validation_min_greater_equal_than_required"), "{}", bad.body);
        srv.su(Method::POST, "/api/collections/people/impersonate/nonexistent00000", None).await.assert_error(404, "The requested resource wasn't found.");
        let r = srv.su(Method::POST, &path, Some(json!({"duration": 100}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["record"]["email"], "alice@example.com");
        let t = r.body["token"].as_str().expect("token").to_owned();
        let c = claims(&t);
        assert_eq!((c["refreshable"].clone(), c["type"].clone(), c["id"].clone()), (json!(false), json!("auth"), json!(id)));
        let left = c["exp"].as_i64().expect("exp") - chrono::Utc::now().timestamp();
        assert!((90..=101).contains(&left), "exp in ~100 s, got {left}");
        // Works as the user; refresh echoes the same non-refreshable token.
        let rf = srv.send(Method::POST, "/api/collections/people/auth-refresh", Some(&t), None).await;
        assert_eq!((rf.status, rf.body["token"].as_str()), (200, Some(t.as_str())), "{}", rf.body);
        assert_eq!(rf.body["record"]["id"], json!(id));
        // A normal refresh gives a new refreshable token.
        let rf = srv.send(Method::POST, "/api/collections/people/auth-refresh", Some(&user), None).await;
        assert_eq!(claims(rf.body["token"].as_str().expect("t"))["refreshable"], true);
        // Default duration: the collection's auth token duration.
        let r = srv.su(Method::POST, &path, None).await;
        let left = claims(r.body["token"].as_str().expect("t"))["exp"].as_i64().expect("exp") - chrono::Utc::now().timestamp();
        assert!((431990..=432001).contains(&left), "{left}");
    }

    async fn verification_by_mail(srv) {
        let id = setup(&srv, json!({})).await;
        let sink = smtp(&srv).await;
        let r = post(&srv, "request-verification", None, json!({"email": "nobody@example.com"})).await;
        assert_eq!(r.status, 204);
        let r = post(&srv, "request-verification", None, json!({"email": ""})).await;
        assert_eq!(r.code_at("/email"), Some("validation_required"));
        let r = post(&srv, "request-verification", None, json!({"email": "zzz"})).await;
        assert_eq!(r.code_at("/email"), Some("validation_is_email"));
        assert_eq!(post(&srv, "request-verification", None, json!({"email": "Alice@Example.com"})).await.status, 204);
        let mails = sink.wait_for(1).await;
        assert_eq!(mails.len(), 1, "no mail for the unknown address");
        let m = &mails[0];
        assert_eq!(m.to, ["alice@example.com"]);
        assert_eq!(m.from, "noreply@acme.test");
        assert_eq!(m.header("Subject").as_deref(), Some("Verify your Acme email"));
        let token = m.after("http://acme.test/_/#/auth/confirm-verification/").expect("link with token");
        let c = claims(&token);
        assert_eq!((c["type"].clone(), c["email"].clone(), c["id"].clone()), (json!("verification"), json!("alice@example.com"), json!(id)));
        let left = c["exp"].as_i64().expect("exp") - chrono::Utc::now().timestamp();
        assert!((86390..=86401).contains(&left));
        let bad = post(&srv, "confirm-verification", None, json!({"token": "abc"})).await;
        assert_eq!(bad.code_at("/token"), Some("validation_invalid_token_claims"), "{}", bad.body);
        assert_eq!(post(&srv, "confirm-verification", None, json!({"token": token})).await.status, 204);
        let rec = srv.su(Method::GET, &format!("/api/collections/people/records/{id}"), None).await;
        assert_eq!(rec.body["verified"], true);
        // Already verified: 204 again, and no new mail is sent.
        assert_eq!(post(&srv, "confirm-verification", None, json!({"token": token})).await.status, 204);
        srv.guest(Method::POST, "/api/collections/_superusers/request-verification", Some(json!({"email": "admin@example.com"}))).await
            .assert_error(400, "All superusers are verified by default.");
    }

    async fn password_reset_by_mail(srv) {
        setup(&srv, json!({})).await;
        let sink = smtp(&srv).await;
        let old = login(&srv, "alice@example.com", PASS).await.body["token"].as_str().expect("t").to_owned();
        assert_eq!(post(&srv, "request-password-reset", None, json!({"email": "ghost@example.com"})).await.status, 204);
        assert_eq!(post(&srv, "request-password-reset", None, json!({"email": "alice@example.com"})).await.status, 204);
        let m = &sink.wait_for(1).await[0];
        assert_eq!(m.header("Subject").as_deref(), Some("Reset your Acme password"));
        let token = m.after("/_/#/auth/confirm-password-reset/").expect("token");
        assert_eq!(claims(&token)["type"], "passwordReset");
        // A reset token is not a verification token, nor an auth token.
        let r = post(&srv, "confirm-verification", None, json!({"token": token})).await;
        assert_eq!(r.code_at("/token"), Some("validation_invalid_token"), "{}", r.body);
        assert_eq!(srv.send(Method::POST, "/api/collections/people/auth-refresh", Some(&token), None).await.status, 401);
        let r = post(&srv, "confirm-password-reset", None, json!({"token": token, "password": "1", "passwordConfirm": "2"})).await;
        assert_eq!((r.code_at("/password"), r.code_at("/passwordConfirm")), (Some("validation_length_out_of_range"), Some("validation_values_mismatch")), "{}", r.body);
        let r = post(&srv, "confirm-password-reset", None, json!({"token": token, "password": "Brand-New-1", "passwordConfirm": "Brand-New-1"})).await;
        assert_eq!(r.status, 204, "{}", r.body);
        // Single use, and every older token is dead.
        let r = post(&srv, "confirm-password-reset", None, json!({"token": token, "password": "Other-New-1", "passwordConfirm": "Other-New-1"})).await;
        assert_eq!(r.code_at("/token"), Some("validation_invalid_token"), "{}", r.body);
        assert_eq!(srv.send(Method::POST, "/api/collections/people/auth-refresh", Some(&old), None).await.status, 401);
        login(&srv, "alice@example.com", PASS).await.assert_error(400, "Failed to authenticate.");
        let l = login(&srv, "alice@example.com", "Brand-New-1").await;
        assert_eq!((l.status, l.body["record"]["verified"].clone()), (200, json!(true)), "the mailbox was proven");
    }

    async fn email_change_by_mail(srv) {
        setup(&srv, json!({})).await;
        let sink = smtp(&srv).await;
        let t = login(&srv, "alice@example.com", PASS).await.body["token"].as_str().expect("t").to_owned();
        post(&srv, "request-email-change", None, json!({"newEmail": "new@example.com"})).await
            .assert_error(401, "The request requires valid record authorization token.");
        let r = post(&srv, "request-email-change", Some(&t), json!({"newEmail": "bad"})).await;
        assert_eq!(r.code_at("/newEmail"), Some("validation_is_email"));
        let r = post(&srv, "request-email-change", Some(&t), json!({"newEmail": "alice@example.com"})).await;
        assert_eq!(r.code_at("/newEmail"), Some("validation_not_in_invalid"));
        srv.create_record("people", json!({"email": "taken@example.com", "password": "12345678", "passwordConfirm": "12345678"})).await;
        let r = post(&srv, "request-email-change", Some(&t), json!({"newEmail": "taken@example.com"})).await;
        assert_eq!(r.code_at("/newEmail"), Some("validation_invalid_new_email"), "{}", r.body);
        assert_eq!(post(&srv, "request-email-change", Some(&t), json!({"newEmail": "new@example.com"})).await.status, 204);
        let m = &sink.wait_for(1).await[0];
        assert_eq!(m.to, ["new@example.com"], "the token goes to the new address");
        let token = m.after("/_/#/auth/confirm-email-change/").expect("token");
        let c = claims(&token);
        assert_eq!((c["type"].clone(), c["email"].clone(), c["newEmail"].clone()), (json!("emailChange"), json!("alice@example.com"), json!("new@example.com")));
        let r = post(&srv, "confirm-email-change", None, json!({"token": token, "password": "wrong"})).await;
        assert_eq!(r.code_at("/password"), Some("validation_invalid_password"), "{}", r.body);
        assert_eq!(post(&srv, "confirm-email-change", None, json!({"token": token, "password": PASS})).await.status, 204);
        assert_eq!(srv.send(Method::POST, "/api/collections/people/auth-refresh", Some(&t), None).await.status, 401, "old sessions end");
        let l = login(&srv, "new@example.com", PASS).await;
        assert_eq!((l.status, l.body["record"]["email"].clone(), l.body["record"]["verified"].clone()), (200, json!("new@example.com"), json!(true)));
        let r = post(&srv, "confirm-email-change", None, json!({"token": token, "password": PASS})).await;
        assert_eq!(r.code_at("/token"), Some("validation_invalid_token"), "single use: {}", r.body);
    }

    async fn otp_login_through_the_outbox(srv) {
        let id = setup(&srv, json!({})).await;
        let r = post(&srv, "request-otp", None, json!({"email": "alice@example.com"})).await;
        r.assert_error(403, "The collection is not configured to allow OTP authentication.");
        srv.su(Method::PATCH, "/api/collections/people", Some(json!({"otp": {"enabled": true}}))).await;
        let unknown = post(&srv, "request-otp", None, json!({"email": "ghost@example.com"})).await;
        assert_eq!(unknown.status, 200);
        assert_eq!(unknown.body["otpId"].as_str().map(str::len), Some(15), "a fake otpId for unknown emails");
        let r = post(&srv, "request-otp", None, json!({"email": "alice@example.com"})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(galley_testkit::keys(&r.body), ["otpId"]);
        let otp_id = r.body["otpId"].as_str().expect("otpId").to_owned();
        let mails = outbox(&srv, 1).await;
        assert_eq!(mails.len(), 1, "no mail for the unknown address");
        assert_eq!(mails[0]["to"], "alice@example.com");
        assert_eq!(mails[0]["subject"], "OTP for Galley");
        let html = mails[0]["html"].as_str().expect("html");
        let code: String = html.split("<strong>").nth(1).expect("code").chars().take_while(char::is_ascii_digit).collect();
        assert_eq!(code.len(), 8);
        let wrong = if code == "00000000" { "11111111" } else { "00000000" };
        post(&srv, "auth-with-otp", None, json!({"otpId": otp_id, "password": wrong})).await.assert_error(400, "Invalid or expired OTP.");
        post(&srv, "auth-with-otp", None, json!({"otpId": unknown.body["otpId"], "password": code})).await.assert_error(400, "Invalid or expired OTP.");
        let ok = post(&srv, "auth-with-otp", None, json!({"otpId": otp_id, "password": code})).await;
        assert_eq!(ok.status, 200, "{}", ok.body);
        assert_eq!((ok.body["record"]["id"].clone(), ok.body["record"]["verified"].clone()), (json!(id), json!(true)));
        post(&srv, "auth-with-otp", None, json!({"otpId": otp_id, "password": code})).await.assert_error(400, "Invalid or expired OTP.");
        // As PocketBase: an unverified account proven by OTP (no MFA) loses its old password.
        login(&srv, "alice@example.com", PASS).await.assert_error(400, "Failed to authenticate.");
        // Five attempts at most.
        let r = post(&srv, "request-otp", None, json!({"email": "alice@example.com"})).await;
        let otp_id = r.body["otpId"].as_str().expect("otpId").to_owned();
        for _ in 0..5 {
            assert_eq!(post(&srv, "auth-with-otp", None, json!({"otpId": otp_id, "password": "x"})).await.status, 400);
        }
        let r = post(&srv, "auth-with-otp", None, json!({"otpId": otp_id, "password": "x"})).await;
        r.assert_error(429, "Too Many Requests.");
    }

    async fn mfa_needs_a_second_different_method(srv) {
        setup(&srv, json!({"mfa": {"enabled": true}, "otp": {"enabled": true}})).await;
        let first = login(&srv, "alice@example.com", PASS).await;
        assert_eq!(first.status, 401, "{}", first.body);
        assert_eq!(galley_testkit::keys(&first.body), ["mfaId"]);
        let mfa = first.body["mfaId"].as_str().expect("mfaId").to_owned();
        let again = post(&srv, "auth-with-password", None, json!({"identity": "alice@example.com", "password": PASS, "mfaId": mfa})).await;
        again.assert_error(400, "A different authentication method is required.");
        let bogus = post(&srv, "auth-with-password", None, json!({"identity": "alice@example.com", "password": PASS, "mfaId": "nope"})).await;
        bogus.assert_error(400, "Invalid or expired MFA session.");
        let otp_id = post(&srv, "request-otp", None, json!({"email": "alice@example.com"})).await.body["otpId"].as_str().expect("id").to_owned();
        let html = outbox(&srv, 1).await[0]["html"].as_str().expect("html").to_owned();
        let code: String = html.split("<strong>").nth(1).expect("code").chars().take_while(char::is_ascii_digit).collect();
        let ok = srv.send(Method::POST, &format!("/api/collections/people/auth-with-otp?mfaId={mfa}"), None, Some(json!({"otpId": otp_id, "password": code}))).await;
        assert_eq!(ok.status, 200, "{}", ok.body);
        assert_eq!(ok.body["record"]["email"], "alice@example.com");
        // The MFA session is used up.
        let r = post(&srv, "auth-with-password", None, json!({"identity": "alice@example.com", "password": PASS, "mfaId": mfa})).await;
        r.assert_error(400, "Invalid or expired MFA session.");
        // With MFA the password survives the OTP verification.
        assert_eq!(login(&srv, "alice@example.com", PASS).await.status, 401);
    }

    async fn test_email_and_outbox(srv) {
        let g = srv.guest(Method::POST, "/api/settings/test/email", Some(json!({"email": "x@example.com", "template": "verification"}))).await;
        assert_eq!(g.status, 401);
        assert_eq!(srv.guest(Method::GET, "/api/galley/outbox", None).await.status, 401);
        let r = srv.su(Method::POST, "/api/settings/test/email", Some(json!({"email": "x@example.com", "template": "nope"}))).await;
        assert_eq!(r.code_at("/template"), Some("validation_in_invalid"), "{}", r.body);
        let r = srv.su(Method::POST, "/api/settings/test/email", Some(json!({"email": "x@example.com", "template": "password-reset"}))).await;
        assert_eq!(r.status, 204, "{}", r.body);
        let m = outbox(&srv, 1).await;
        assert_eq!((m[0]["to"].clone(), m[0]["subject"].clone()), (json!("x@example.com"), json!("Reset your Galley password")));
        assert!(m[0]["html"].as_str().expect("html").contains("http://localhost:8090/_/#/auth/confirm-password-reset/"));
        // Over SMTP too.
        let sink = smtp(&srv).await;
        let r = srv.su(Method::POST, "/api/settings/test/email", Some(json!({"email": "y@example.com", "template": "otp"}))).await;
        assert_eq!(r.status, 204);
        let mail = &sink.wait_for(1).await[0];
        assert_eq!(mail.header("Subject").as_deref(), Some("OTP for Acme"));
        assert!(mail.body.contains("<strong>123456</strong>"), "{}", mail.body);
    }
}
