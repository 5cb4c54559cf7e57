//! `GET|PATCH /api/settings`: superuser only, partial updates, validation, secrets hidden.

use galley_testkit::{both_engines, keys, Method};
use serde_json::json;

both_engines! {
    async fn defaults_and_shape(srv) {
        let r = srv.su(Method::GET, "/api/settings", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(keys(&r.body), ["backups", "batch", "logs", "meta", "rateLimits", "realtime", "s3", "smtp", "superuserIPs", "trustedProxy"]);
        assert_eq!(r.body["batch"], json!({"enabled": false, "maxRequests": 50, "timeout": 3, "maxBodySize": 0}));
        assert_eq!(r.body["smtp"], json!({"enabled": false, "port": 587, "host": "smtp.example.com", "username": "", "authMethod": "", "tls": false, "localName": ""}));
        assert_eq!(r.body["s3"], json!({"enabled": false, "bucket": "", "region": "", "endpoint": "", "accessKey": "", "forcePathStyle": false}));
        assert_eq!(r.body["logs"], json!({"maxDataSize": 0, "maxDays": 5, "minLevel": 0, "logIP": true, "logAuthId": false}));
        assert_eq!(r.body["trustedProxy"], json!({"headers": [], "useLeftmostIP": false}));
        assert_eq!(r.body["superuserIPs"], json!([]));
        assert_eq!(keys(&r.body["meta"]), ["accentColor", "appName", "appURL", "hideControls", "senderAddress", "senderName"]);
    }

    async fn superusers_only(srv) {
        let member = srv.member_token().await;
        srv.guest(Method::GET, "/api/settings", None).await.assert_error(401, "The request requires valid record authorization token.");
        srv.guest(Method::PATCH, "/api/settings", Some(json!({"batch": {"enabled": true}}))).await.assert_error(401, "The request requires valid record authorization token.");
        srv.send(Method::GET, "/api/settings", Some(&member), None).await.assert_error(403, "The authorized record is not allowed to perform this action.");
        srv.send(Method::PATCH, "/api/settings", Some(&member), Some(json!({"batch": {"enabled": true}}))).await.assert_error(403, "The authorized record is not allowed to perform this action.");
        assert_eq!(srv.su(Method::GET, "/api/settings", None).await.body["batch"]["enabled"], false);
    }

    async fn partial_update_merges_and_persists(srv) {
        let before = srv.su(Method::GET, "/api/settings", None).await.body;
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"batch": {"enabled": true}, "meta": {"appName": "Acme"}}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["batch"], json!({"enabled": true, "maxRequests": 50, "timeout": 3, "maxBodySize": 0}));
        assert_eq!(r.body["meta"]["appName"], "Acme");
        assert_eq!(r.body["meta"]["appURL"], before["meta"]["appURL"], "untouched keys stay");
        assert_eq!(r.body["smtp"], before["smtp"]);
        let after = srv.su(Method::GET, "/api/settings", None).await.body;
        assert_eq!(after, r.body);
        // Stored in the database: a fresh load sees it.
        let loaded = srv.app.store.read(galley_core::settings::load).await.expect("load");
        assert_eq!(loaded.0["batch"]["enabled"], true);
        assert_eq!(loaded.0["meta"]["appName"], "Acme");
    }

    async fn invalid_values_change_nothing(srv) {
        let before = srv.su(Method::GET, "/api/settings", None).await.body;
        for bad in [json!({"batch": {"enabled": "yes"}}), json!({"batch": {"maxRequests": 0}}), json!({"batch": {"maxRequests": "many"}})] {
            let r = srv.su(Method::PATCH, "/api/settings", Some(bad.clone())).await;
            assert_eq!(r.status, 400, "{bad}: {}", r.body);
            r.assert_error_shape();
            assert!(r.body["data"]["batch"].is_object(), "{bad}: {}", r.body);
        }
        for raw in ["[1]", "{\"batch\":", "null"] {
            let r = srv.send_raw(Method::PATCH, "/api/settings", Some(&srv.token), "application/json", raw).await;
            assert_eq!(r.status, 400, "{raw}: {}", r.body);
            r.assert_error_shape();
        }
        assert_eq!(srv.su(Method::GET, "/api/settings", None).await.body, before);
    }

    async fn secrets_are_write_only(srv) {
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"smtp": {"password": "hunter2", "username": "mailer"}, "s3": {"secret": "s3cr3t"}}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["smtp"]["username"], "mailer");
        assert!(r.body["smtp"].get("password").is_none(), "{}", r.body["smtp"]);
        assert!(r.body["s3"].get("secret").is_none(), "{}", r.body["s3"]);
        let g = srv.su(Method::GET, "/api/settings", None).await;
        assert!(!g.body.to_string().contains("hunter2") && !g.body.to_string().contains("s3cr3t"));
    }
}
