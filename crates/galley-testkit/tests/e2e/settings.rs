//! `GET|PATCH /api/settings`: superuser only, partial updates, validation, secrets hidden.

use galley_testkit::{both_engines, keys, Method};
use serde_json::json;

both_engines! {
    async fn defaults_and_shape(srv) {
        let r = srv.su(Method::GET, "/api/settings", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(keys(&r.body), ["backups", "batch", "brokers", "logs", "meta", "queries", "rateLimits", "realtime", "s3", "smtp", "superuserIPs", "trustedProxy", "webhooks"]);
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
        let loaded = srv.app.store_for_tests().read(galley_core::settings::load).await.expect("load");
        assert!(loaded.batch.enabled);
        assert_eq!(loaded.meta.app_name, "Acme");
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

    async fn wrong_types_are_field_errors(srv) {
        let before = srv.su(Method::GET, "/api/settings", None).await.body;
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({
            "meta": {"appName": 5, "hideControls": "no"},
            "smtp": {"port": "587"},
            "trustedProxy": {"headers": "X-Real-IP"},
            "rateLimits": {"rules": [{"label": "/api/", "duration": "10", "maxRequests": 5}]},
            "logs": [],
        }))).await;
        r.assert_error(400, "An error occurred while submitting the form.");
        let invalid = |m: &str| json!({"code": "validation_invalid_value", "message": m});
        assert_eq!(r.body["data"], json!({
            "meta": {"appName": invalid("Must be a string."), "hideControls": invalid("Must be a boolean.")},
            "smtp": {"port": invalid("Must be a whole number.")},
            "rateLimits": {"rules": {"0": {"duration": invalid("Must be a whole number.")}}},
            "trustedProxy": {"headers": invalid("Must be a list.")},
            "logs": invalid("Must be an object."),
        }), "{}", r.body);
        // Types and ranges are reported together; the checked fields keep their messages.
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"batch": {"enabled": 1, "maxRequests": 0}, "s3": {"enabled": "true"}}))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["data"], json!({
            "s3": {"enabled": invalid("Must be a boolean.")},
            "batch": {"enabled": invalid("Must be a boolean."), "maxRequests": invalid("Must be between 1 and 10000.")},
        }), "{}", r.body);
        assert_eq!(srv.su(Method::GET, "/api/settings", None).await.body, before, "nothing saved");
    }

    async fn unknown_keys_are_ignored(srv) {
        let before = srv.su(Method::GET, "/api/settings", None).await.body;
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({
            "nope": {"x": 1},
            "meta": {"appName": "Known", "colour": "red"},
            "rateLimits": {"rules": [{"label": "/api/x", "duration": 5, "maxRequests": 3, "extra": true}]},
        }))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(keys(&r.body), keys(&before), "no new section");
        assert_eq!(keys(&r.body["meta"]), keys(&before["meta"]));
        assert_eq!(r.body["meta"]["appName"], "Known");
        // Rules come back in PocketBase's shape, the audience defaulted.
        assert_eq!(r.body["rateLimits"]["rules"], json!([{"label": "/api/x", "audience": "", "duration": 5, "maxRequests": 3}]));
        assert_eq!(srv.su(Method::GET, "/api/settings", None).await.body, r.body);
        let stored = srv.app.store_for_tests().read(galley_core::settings::load).await.expect("load");
        assert_eq!(stored.meta.app_name, "Known");
        assert!(!stored.to_stored().to_string().contains("colour"), "not stored either");
    }

    async fn secrets_are_never_returned_and_kept_when_omitted(srv) {
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({
            "smtp": {"password": "smtp-secret-1"},
            "s3": {"secret": "s3-secret-1"},
            "backups": {"s3": {"secret": "backup-secret-1", "bucket": "b"}},
        }))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["backups"]["s3"]["bucket"], "b");
        for section in [&r.body["smtp"], &r.body["s3"], &r.body["backups"]["s3"]] {
            assert!(section.get("password").is_none() && section.get("secret").is_none(), "{section}");
        }
        assert!(!r.body.to_string().contains("-secret-1"), "{}", r.body);
        // A PATCH without them keeps the stored ones.
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"smtp": {"username": "u"}, "backups": {"cron": ""}}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let g = srv.su(Method::GET, "/api/settings", None).await;
        assert!(!g.body.to_string().contains("-secret-1"), "{}", g.body);
        let stored = srv.app.store_for_tests().read(galley_core::settings::load).await.expect("load");
        assert_eq!(stored.smtp.password.expose(), "smtp-secret-1");
        assert_eq!(stored.s3.secret.expose(), "s3-secret-1");
        assert_eq!(stored.backups.s3.secret.expose(), "backup-secret-1");
        assert_eq!(srv.app.settings().smtp.password.expose(), "smtp-secret-1");
    }

    async fn stored_rows_from_older_versions_load(srv) {
        // A row with missing keys, an unknown key and a value of the wrong type (older
        // versions stored PATCHes unchecked): defaults apply, the server still starts.
        use galley_store::{Conn, ConnExt};
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"meta": {"appName": "Galley"}}))).await;
        assert_eq!(r.status, 200, "the row exists: {}", r.body);
        let row = json!({"batch": {"enabled": true}, "smtp": {"port": "x", "host": "mail.test"}, "legacy": 1});
        srv.app.store_for_tests().write(move |c: &mut dyn Conn| -> Result<(), galley_core::CoreError> {
            let mut sql = galley_sql::Sql::new(c.dialect());
            sql.push("UPDATE \"_params\" SET \"value\" = ")
                .push_param(galley_sql::SqlValue::Json(row))
                .push(" WHERE \"id\" = ")
                .push_param("settings");
            c.execute_sql(&sql)?;
            Ok(())
        }).await.expect("write");
        let s = srv.app.store_for_tests().read(galley_core::settings::load).await.expect("load");
        assert!(s.batch.enabled);
        assert_eq!(s.batch.max_requests, 50);
        assert_eq!(s.smtp.port, 587);
        assert_eq!(s.smtp.host, "mail.test");
        assert_eq!(s.meta.app_name, "Galley");
        assert!(s.public_json().get("legacy").is_none());
    }
}
