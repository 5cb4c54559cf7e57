//! `settings.rateLimits` rules (PocketBase's labels, audiences and fixed windows per client
//! IP), on both engines: 429 in PocketBase's error shape with a Retry-After, superusers and
//! excluded IPs never limited, rules changed at runtime.

use galley_testkit::{both_engines, Method, TestServer};
use serde_json::json;

async fn set_limits(srv: &TestServer, limits: serde_json::Value) {
    let r = srv
        .su(
            Method::PATCH,
            "/api/settings",
            Some(json!({"rateLimits": limits})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn open_collection(srv: &TestServer, name: &str) {
    srv.create_collection(
        json!({"name": name, "listRule": "", "viewRule": "", "createRule": "",
        "fields": [{"name": "title", "type": "text"}]}),
    )
    .await;
}

both_engines! {
    async fn rules_limit_by_label_and_audience(srv) {
        open_collection(&srv, "posts").await;
        open_collection(&srv, "notes").await;
        let member = srv.member_token().await;
        set_limits(&srv, json!({"enabled": true, "excludedIPs": [], "rules": [
            {"label": "*:create", "audience": "", "duration": 60, "maxRequests": 2},
            {"label": "posts:list", "audience": "@auth", "duration": 60, "maxRequests": 1},
            {"label": "/api/health", "audience": "@guest", "duration": 60, "maxRequests": 1}
        ]})).await;

        // `*:create`: two creates on posts, then 429; notes has its own bucket.
        for _ in 0..2 {
            let r = srv.guest(Method::POST, "/api/collections/posts/records", Some(json!({"title": "x"}))).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
        let r = srv.guest(Method::POST, "/api/collections/posts/records", Some(json!({"title": "x"}))).await;
        r.assert_error(429, "Too Many Requests.");
        let retry: u64 = r.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        assert_eq!(srv.all_records("posts").await.len(), 2, "the refused create wrote nothing");
        let r = srv.guest(Method::POST, "/api/collections/notes/records", Some(json!({"title": "x"}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        // Superusers are never limited.
        let r = srv.su(Method::POST, "/api/collections/posts/records", Some(json!({"title": "su"}))).await;
        assert_eq!(r.status, 200, "{}", r.body);

        // `posts:list` is for auth records only: guests list freely, the member once.
        for _ in 0..3 {
            assert_eq!(srv.guest(Method::GET, "/api/collections/posts/records", None).await.status, 200);
        }
        assert_eq!(srv.send(Method::GET, "/api/collections/posts/records", Some(&member), None).await.status, 200);
        srv.send(Method::GET, "/api/collections/posts/records", Some(&member), None).await
            .assert_error(429, "Too Many Requests.");

        // A path label for guests.
        assert_eq!(srv.guest(Method::GET, "/api/health", None).await.status, 200);
        srv.guest(Method::GET, "/api/health", None).await.assert_error(429, "Too Many Requests.");
        assert_eq!(srv.send(Method::GET, "/api/health", Some(&member), None).await.status, 200);

        // New rules start new windows; an excluded IP is never limited.
        set_limits(&srv, json!({"excludedIPs": ["127.0.0.1"]})).await;
        for _ in 0..4 {
            assert_eq!(srv.guest(Method::GET, "/api/health", None).await.status, 200);
        }
        set_limits(&srv, json!({"excludedIPs": []})).await;
        assert_eq!(srv.guest(Method::GET, "/api/health", None).await.status, 200);
        assert_eq!(srv.guest(Method::GET, "/api/health", None).await.status, 429);
        // Switched off: nothing is limited by the rules.
        set_limits(&srv, json!({"enabled": false})).await;
        for _ in 0..3 {
            assert_eq!(srv.guest(Method::GET, "/api/health", None).await.status, 200);
        }
    }

    async fn prefix_rules_and_auth_tags(srv) {
        srv.create_collection(json!({"name": "users", "type": "auth", "createRule": ""})).await;
        set_limits(&srv, json!({"enabled": true, "rules": [
            {"label": "*:auth", "audience": "", "duration": 60, "maxRequests": 1},
            {"label": "/api/collections/", "audience": "", "duration": 60, "maxRequests": 1000}
        ]})).await;
        let login = json!({"identity": "nobody@example.com", "password": "whatever-123"});
        let r = srv.guest(Method::POST, "/api/collections/users/auth-with-password", Some(login.clone())).await;
        assert_eq!(r.status, 400, "{}", r.body);
        srv.guest(Method::POST, "/api/collections/users/auth-with-password", Some(login)).await
            .assert_error(429, "Too Many Requests.");
        // Other endpoints of the collection fall to the prefix rule.
        assert_eq!(srv.guest(Method::GET, "/api/collections/users/auth-methods", None).await.status, 200);
    }
}
