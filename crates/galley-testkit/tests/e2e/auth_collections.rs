//! Auth collections end to end: PocketBase's collection JSON, sign-up, manage access to
//! `email`/`verified`, `oldPassword`, tokenKey rotation, ids unique across auth
//! collections, and the `authRule` gate.

use galley_testkit::{both_engines, keys, Method, Reply, TestServer};
use serde_json::{json, Value};

async fn signup(srv: &TestServer, col: &str, email: &str, password: &str) -> Reply {
    srv.guest(
        Method::POST,
        &format!("/api/collections/{col}/records"),
        Some(json!({"email": email, "password": password, "passwordConfirm": password})),
    )
    .await
}

async fn login(srv: &TestServer, col: &str, email: &str, password: &str) -> Reply {
    srv.guest(
        Method::POST,
        &format!("/api/collections/{col}/auth-with-password"),
        Some(json!({"identity": email, "password": password})),
    )
    .await
}

fn token(r: &Reply) -> String {
    assert_eq!(r.status, 200, "login: {}", r.body);
    r.body["token"].as_str().expect("token").to_owned()
}

async fn people(srv: &TestServer) -> Value {
    srv.create_collection(json!({
        "name": "people", "type": "auth", "createRule": "", "listRule": "", "viewRule": "",
        "updateRule": "id = @request.auth.id",
        "fields": [{"name": "name", "type": "text"}]
    }))
    .await
}

both_engines! {
    async fn auth_collection_has_pocketbase_shape(srv) {
        let c = people(&srv).await;
        let k: Vec<&str> = c.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(k, ["id", "listRule", "viewRule", "createRule", "updateRule", "deleteRule", "name", "type", "fields", "indexes",
            "created", "updated", "system", "authRule", "manageRule", "authAlert", "oauth2", "passwordAuth", "mfa", "otp",
            "authToken", "passwordResetToken", "emailChangeToken", "verificationToken", "fileToken",
            "verificationTemplate", "resetPasswordTemplate", "confirmEmailChangeTemplate"]);
        let names: Vec<&str> = c["fields"].as_array().expect("fields").iter().map(|f| f["name"].as_str().expect("name")).collect();
        assert_eq!(names, ["id", "name", "password", "tokenKey", "email", "emailVisibility", "verified"]);
        let id = c["id"].as_str().expect("id");
        assert_eq!(c["indexes"], json!([
            format!("CREATE UNIQUE INDEX `idx_tokenKey_{id}` ON `people` (`tokenKey`)"),
            format!("CREATE UNIQUE INDEX `idx_email_{id}` ON `people` (`email`) WHERE `email` != ''"),
        ]));
        assert_eq!(c["authRule"], "");
        assert_eq!(c["manageRule"], Value::Null);
        assert_eq!(c["passwordAuth"], json!({"enabled": true, "identityFields": ["email"]}));
        assert_eq!(c["mfa"], json!({"enabled": false, "duration": 600, "rule": ""}));
        assert_eq!((c["otp"]["enabled"].clone(), c["otp"]["duration"].clone(), c["otp"]["length"].clone()), (json!(false), json!(180), json!(8)));
        assert_eq!(c["otp"]["emailTemplate"]["subject"], "OTP for {APP_NAME}");
        assert_eq!(c["oauth2"], json!({"providers": [], "mappedFields": {"id": "", "name": "", "username": "", "avatarURL": ""}, "enabled": false}));
        assert_eq!(c["authToken"], json!({"duration": 432000}));
        assert_eq!(c["passwordResetToken"], json!({"duration": 1800}));
        assert_eq!(c["emailChangeToken"], json!({"duration": 1800}));
        assert_eq!(c["verificationToken"], json!({"duration": 86400}));
        assert_eq!(c["fileToken"], json!({"duration": 180}));
        assert_eq!(c["verificationTemplate"]["subject"], "Verify your {APP_NAME} email");
        assert!(c["verificationTemplate"]["body"].as_str().expect("body").contains("{APP_URL}/_/#/auth/confirm-verification/{TOKEN}"));
        assert!(c["resetPasswordTemplate"]["body"].as_str().expect("body").contains("{APP_URL}/_/#/auth/confirm-password-reset/{TOKEN}"));
        assert!(c["confirmEmailChangeTemplate"]["body"].as_str().expect("body").contains("{APP_URL}/_/#/auth/confirm-email-change/{TOKEN}"));
        assert!(!c.to_string().contains("secret"), "secrets are never output: {c}");

        // Options round-trip through PATCH; OAuth2 client secrets are kept but never shown.
        let r = srv.su(Method::PATCH, "/api/collections/people", Some(json!({
            "authRule": "verified = true", "manageRule": "@request.auth.collectionName = '_superusers'",
            "passwordAuth": {"enabled": true, "identityFields": ["email", "name"]},
            "mfa": {"enabled": true, "duration": 300},
            "otp": {"enabled": true, "length": 6},
            "authToken": {"duration": 3600},
            "verificationTemplate": {"subject": "Hi {APP_NAME}", "body": "<a href='{APP_URL}/v/{TOKEN}'>v</a>"},
            "oauth2": {"enabled": false, "providers": [{"name": "github", "clientId": "cid", "clientSecret": "very-secret-value"}]},
        }))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["authRule"], "verified = true");
        assert_eq!(r.body["mfa"], json!({"enabled": true, "duration": 300, "rule": ""}));
        assert_eq!((r.body["otp"]["length"].clone(), r.body["otp"]["duration"].clone()), (json!(6), json!(180)));
        assert_eq!(r.body["authToken"], json!({"duration": 3600}));
        assert_eq!(r.body["verificationTemplate"], json!({"subject": "Hi {APP_NAME}", "body": "<a href='{APP_URL}/v/{TOKEN}'>v</a>"}));
        // PocketBase 0.40.6 stores and shows providers in this normalized shape.
        assert_eq!(r.body["oauth2"]["providers"], json!([{"pkce": null, "name": "github", "clientId": "cid",
            "authURL": "", "tokenURL": "", "userInfoURL": "", "displayName": "", "extra": {}}]));
        assert!(!r.body.to_string().contains("very-secret-value"));
        let v = srv.su(Method::GET, "/api/collections/people", None).await;
        assert_eq!(v.body["passwordAuth"]["identityFields"], json!(["email", "name"]));
        assert!(!v.body.to_string().contains("secret"));
        let stored = srv.app.schema().find("people").expect("people").auth.clone().expect("auth");
        assert_eq!(stored.oauth2.providers[0]["clientSecret"], "very-secret-value");

        let bad = srv.su(Method::PATCH, "/api/collections/people", Some(json!({"authToken": {"duration": 5}}))).await;
        assert_eq!((bad.status, bad.code_at("/authToken/duration")), (400, Some("validation_invalid_value")), "{}", bad.body);
    }

    async fn guest_signup_and_login(srv) {
        people(&srv).await;
        let r = signup(&srv, "people", "alice@example.com", "Alice-Pass-1").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(keys(&r.body), ["collectionId", "collectionName", "emailVisibility", "id", "name", "verified"], "email hidden from guests");
        assert_eq!(r.body["verified"], false);
        // A guest cannot sign up verified, nor with a mismatching confirmation.
        let v = srv.guest(Method::POST, "/api/collections/people/records",
            Some(json!({"email": "b@example.com", "password": "12345678", "passwordConfirm": "12345678", "verified": true}))).await;
        assert_eq!((v.status, v.code_at("/verified")), (400, Some("validation_values_mismatch")), "{}", v.body);
        v.assert_error(400, "Failed to create record.");
        let m = srv.guest(Method::POST, "/api/collections/people/records",
            Some(json!({"email": "b@example.com", "password": "12345678", "passwordConfirm": "1234567x"}))).await;
        assert_eq!(m.code_at("/passwordConfirm"), Some("validation_values_mismatch"), "{}", m.body);
        let short = signup(&srv, "people", "c@example.com", "123").await;
        assert_eq!(short.code_at("/password"), Some("validation_min_text_constraint"), "{}", short.body);
        let dup = signup(&srv, "people", "alice@example.com", "12345678").await;
        assert_eq!((dup.status, dup.code_at("/email")), (400, Some("validation_not_unique")), "{}", dup.body);
        // Login answers the record with the owner's view (email included).
        let l = login(&srv, "people", "ALICE@example.com", "Alice-Pass-1").await;
        assert_eq!(l.status, 200, "{}", l.body);
        assert_eq!(l.body["record"]["email"], "alice@example.com");
        assert_eq!(l.body["record"]["collectionName"], "people");
        assert!(l.body["record"].get("password").is_none() && l.body["record"].get("tokenKey").is_none());
        login(&srv, "people", "alice@example.com", "wrong-pass").await.assert_error(400, "Failed to authenticate.");
        login(&srv, "people", "nobody@example.com", "Alice-Pass-1").await.assert_error(400, "Failed to authenticate.");
        // The superuser may create verified records.
        let su = srv.create_record("people", json!({"email": "v@example.com", "password": "12345678", "passwordConfirm": "12345678", "verified": true})).await;
        assert_eq!(su["verified"], true);
    }

    async fn email_verified_and_password_changes_need_rights(srv) {
        people(&srv).await;
        let id = signup(&srv, "people", "alice@example.com", "Alice-Pass-1").await.body["id"].as_str().expect("id").to_owned();
        let t = token(&login(&srv, "people", "alice@example.com", "Alice-Pass-1").await);
        let path = format!("/api/collections/people/records/{id}");
        let r = srv.send(Method::PATCH, &path, Some(&t), Some(json!({"verified": true}))).await;
        assert_eq!((r.status, r.code_at("/verified")), (400, Some("validation_values_mismatch")), "{}", r.body);
        r.assert_error(400, "Failed to update record.");
        let r = srv.send(Method::PATCH, &path, Some(&t), Some(json!({"email": "new@example.com"}))).await;
        assert_eq!(r.code_at("/email"), Some("validation_values_mismatch"), "{}", r.body);
        // Re-submitting the current values is no change.
        let r = srv.send(Method::PATCH, &path, Some(&t), Some(json!({"email": "alice@example.com", "verified": false, "name": "Al"}))).await;
        assert_eq!((r.status, r.body["name"].clone()), (200, json!("Al")), "{}", r.body);
        // A password change needs the old password.
        let r = srv.send(Method::PATCH, &path, Some(&t), Some(json!({"password": "New-Pass-12", "passwordConfirm": "New-Pass-12"}))).await;
        assert_eq!(r.code_at("/oldPassword"), Some("validation_required"), "{}", r.body);
        let r = srv.send(Method::PATCH, &path, Some(&t), Some(json!({"password": "New-Pass-12", "passwordConfirm": "New-Pass-12", "oldPassword": "wrong"}))).await;
        assert_eq!(r.code_at("/oldPassword"), Some("validation_invalid_old_password"), "{}", r.body);
        assert_eq!(r.body["data"]["oldPassword"]["message"], "Missing or invalid old password.");
        let r = srv.send(Method::PATCH, &path, Some(&t), Some(json!({"password": "New-Pass-12", "passwordConfirm": "New-Pass-12", "oldPassword": "Alice-Pass-1"}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        // The tokenKey rotated: the old token is dead, the old password too.
        let refresh = srv.send(Method::POST, "/api/collections/people/auth-refresh", Some(&t), None).await;
        refresh.assert_error(401, "The request requires valid record authorization token.");
        login(&srv, "people", "alice@example.com", "Alice-Pass-1").await.assert_error(400, "Failed to authenticate.");
        let t2 = token(&login(&srv, "people", "alice@example.com", "New-Pass-12").await);
        // A superuser changes the email without any old password; that rotates the key too.
        let r = srv.su(Method::PATCH, &path, Some(json!({"email": "alice2@example.com", "verified": true}))).await;
        assert_eq!((r.status, r.body["email"].clone(), r.body["verified"].clone()), (200, json!("alice2@example.com"), json!(true)), "{}", r.body);
        assert_eq!(srv.send(Method::POST, "/api/collections/people/auth-refresh", Some(&t2), None).await.status, 401);
        let t3 = token(&login(&srv, "people", "alice2@example.com", "New-Pass-12").await);
        // Non-auth fields do not rotate the key.
        let r = srv.send(Method::PATCH, &path, Some(&t3), Some(json!({"name": "A"}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = srv.send(Method::POST, "/api/collections/people/auth-refresh", Some(&t3), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    async fn managers_change_verified_and_passwords(srv) {
        srv.create_collection(json!({"name": "staff", "type": "auth", "createRule": "", "updateRule": "@request.auth.id != ''",
            "manageRule": "@request.auth.collectionName = 'staff' && @request.auth.verified = true"})).await;
        srv.create_record("staff", json!({"email": "boss@example.com", "password": "12345678", "passwordConfirm": "12345678", "verified": true})).await;
        let boss = token(&login(&srv, "staff", "boss@example.com", "12345678").await);
        let w = signup(&srv, "staff", "worker@example.com", "12345678").await;
        let wid = w.body["id"].as_str().expect("id").to_owned();
        let path = format!("/api/collections/staff/records/{wid}");
        let r = srv.send(Method::PATCH, &path, Some(&boss), Some(json!({"verified": true, "password": "changed-by-boss", "passwordConfirm": "changed-by-boss"}))).await;
        assert_eq!((r.status, r.body["verified"].clone()), (200, json!(true)), "{}", r.body);
        assert_eq!(login(&srv, "staff", "worker@example.com", "changed-by-boss").await.status, 200);
        // A manager may create verified records; the (unverified) worker may not.
        let r = srv.send(Method::POST, "/api/collections/staff/records", Some(&boss),
            Some(json!({"email": "n@example.com", "password": "12345678", "passwordConfirm": "12345678", "verified": true}))).await;
        assert_eq!((r.status, r.body["verified"].clone()), (200, json!(true)), "{}", r.body);
        srv.su(Method::PATCH, &path, Some(json!({"verified": false}))).await;
        let worker = token(&login(&srv, "staff", "worker@example.com", "changed-by-boss").await);
        let r = srv.send(Method::POST, "/api/collections/staff/records", Some(&worker),
            Some(json!({"email": "m@example.com", "password": "12345678", "passwordConfirm": "12345678", "verified": true}))).await;
        assert_eq!((r.status, r.code_at("/verified")), (400, Some("validation_values_mismatch")), "{}", r.body);
        assert_eq!(srv.all_records("staff").await.len(), 3, "the refused create left nothing behind");
    }

    async fn auth_ids_are_unique_across_auth_collections(srv) {
        people(&srv).await;
        srv.create_collection(json!({"name": "staff", "type": "auth", "createRule": ""})).await;
        srv.create_collection(json!({"name": "notes", "createRule": ""})).await;
        let id = signup(&srv, "people", "a@example.com", "12345678").await.body["id"].as_str().expect("id").to_owned();
        let r = srv.guest(Method::POST, "/api/collections/staff/records",
            Some(json!({"id": id, "email": "s@example.com", "password": "12345678", "passwordConfirm": "12345678"}))).await;
        assert_eq!((r.status, r.code_at("/id")), (400, Some("validation_invalid_auth_id")), "{}", r.body);
        assert_eq!(r.body["data"]["id"]["message"], "Invalid or duplicated auth record id.");
        // Base collections are not concerned.
        let n = srv.guest(Method::POST, "/api/collections/notes/records", Some(json!({"id": id}))).await;
        assert_eq!(n.status, 200, "{}", n.body);
    }

    async fn auth_rule_gates_tokens(srv) {
        srv.create_collection(json!({"name": "staff", "type": "auth", "createRule": "", "authRule": "verified = true"})).await;
        let id = signup(&srv, "staff", "s@example.com", "12345678").await.body["id"].as_str().expect("id").to_owned();
        login(&srv, "staff", "s@example.com", "12345678").await
            .assert_error(403, "The request doesn't satisfy the collection requirements to authenticate.");
        srv.su(Method::PATCH, &format!("/api/collections/staff/records/{id}"), Some(json!({"verified": true}))).await;
        let t = token(&login(&srv, "staff", "s@example.com", "12345678").await);
        // A locked authRule refuses everyone (superusers may still impersonate).
        srv.su(Method::PATCH, "/api/collections/staff", Some(json!({"authRule": null}))).await;
        login(&srv, "staff", "s@example.com", "12345678").await
            .assert_error(403, "The request doesn't satisfy the collection requirements to authenticate.");
        srv.send(Method::POST, "/api/collections/staff/auth-refresh", Some(&t), None).await
            .assert_error(403, "The request doesn't satisfy the collection requirements to authenticate.");
        let imp = srv.su(Method::POST, &format!("/api/collections/staff/impersonate/{id}"), Some(json!({}))).await;
        assert_eq!(imp.status, 200, "{}", imp.body);
        // Wrong collection for auth endpoints.
        srv.create_collection(json!({"name": "notes"})).await;
        login(&srv, "notes", "s@example.com", "12345678").await.assert_error(404, "Missing or invalid auth collection context.");
    }
}
