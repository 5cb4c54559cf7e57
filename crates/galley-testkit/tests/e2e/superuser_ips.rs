//! `settings.superuserIPs`, as PocketBase 0.40.6 enforces it: superuser tokens, the
//! `_superusers` endpoints (sign-in included) and, in Galley, the dashboard, only from the
//! listed addresses or subnets.

use galley_testkit::{both_engines, Method, TestServer};
use serde_json::json;

/// A request as if from `ip` (the test server trusts `X-Real-IP` once configured).
async fn from(
    srv: &TestServer,
    ip: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> galley_testkit::Reply {
    let mut rb = srv.request(method, path).header("X-Real-IP", ip);
    if let Some(t) = token {
        rb = rb.header("Authorization", t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    TestServer::read(rb.send().await.expect("request")).await
}

both_engines! {
    async fn superuser_ips_are_enforced(srv) {
        let member = srv.member_token().await;
        // PocketBase's validation, its misspelt code included.
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"superuserIPs": ["bad", "10.0.0.1", "10.0.0.0/33"]}))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["data"]["superuserIPs"], json!({
            "0": {"code": "validation_invlaid_ip_or_subnet", "message": "Invalid IP or CIDR subnet."},
            "2": {"code": "validation_invlaid_ip_or_subnet", "message": "Invalid IP or CIDR subnet."},
        }));

        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"trustedProxy": {"headers": ["X-Real-IP"]}, "superuserIPs": ["10.0.0.0/8", "2001:db8::/32"]}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["superuserIPs"], json!(["10.0.0.0/8", "2001:db8::/32"]));

        // From 127.0.0.1: refused, with PocketBase's answer.
        srv.su(Method::GET, "/api/settings", None).await
            .assert_error(403, "You are not allowed to perform this request.");
        srv.su(Method::GET, "/api/collections", None).await
            .assert_error(403, "You are not allowed to perform this request.");
        srv.guest(Method::POST, "/api/collections/_superusers/auth-with-password",
            Some(json!({"identity": galley_testkit::SUPERUSER_EMAIL, "password": galley_testkit::SUPERUSER_PASSWORD}))).await
            .assert_error(403, "You are not allowed to perform this request.");
        let page = srv.request(Method::GET, "/_/login").send().await.expect("request");
        assert_eq!(page.status(), 403);
        assert!(page.text().await.expect("text").contains("superuserIPs"));

        // Everyone else is not affected.
        assert_eq!(srv.guest(Method::GET, "/api/health", None).await.status, 200);
        let r = srv.send(Method::POST, "/api/collections/members/auth-refresh", Some(&member), None).await;
        assert_eq!(r.status, 200, "{}", r.body);

        // From inside the listed subnets: allowed.
        let r = from(&srv, "10.1.2.3", Method::GET, "/api/settings", Some(&srv.token), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = from(&srv, "2001:db8::7", Method::POST, "/api/collections/_superusers/auth-with-password", None,
            Some(json!({"identity": galley_testkit::SUPERUSER_EMAIL, "password": galley_testkit::SUPERUSER_PASSWORD}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let page = srv.request(Method::GET, "/_/login").header("X-Real-IP", "10.0.0.1").send().await.expect("request");
        assert_eq!(page.status(), 200);
        let r = from(&srv, "11.0.0.1", Method::GET, "/api/settings", Some(&srv.token), None).await;
        assert_eq!(r.status, 403);

        // Emptied again (from an allowed address), superusers work from anywhere.
        let r = from(&srv, "10.0.0.9", Method::PATCH, "/api/settings", Some(&srv.token), Some(json!({"superuserIPs": []}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(srv.su(Method::GET, "/api/settings", None).await.status, 200);
    }
}
