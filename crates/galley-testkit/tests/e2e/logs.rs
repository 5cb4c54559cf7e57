//! `/api/logs`: request logs stored in the auxiliary database (SQLite) or the `_logs` table
//! (PostgreSQL), in PocketBase 0.40's shapes (checked against the real server).

use galley_testkit::{both_engines, Method, TestServer};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The logs matching `filter`, once there are at least `n` (entries are written in batches
/// off the request path, so they appear a moment after the answer).
async fn wait_logs(srv: &TestServer, filter: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = srv
            .su(
                Method::GET,
                &format!("/api/logs?filter={}", enc(filter)),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body["items"].as_array().map_or(0, Vec::len) >= n || Instant::now() > deadline {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A guest GET with a chosen request id.
async fn get_with_id(srv: &TestServer, path: &str, id: &str) -> reqwest::Response {
    srv.request(Method::GET, path)
        .header("X-Request-Id", id)
        .header("User-Agent", "galley-e2e")
        .header("Referer", "http://example.test/page")
        .send()
        .await
        .expect("request")
}

both_engines! {
    async fn a_request_is_logged_as_pocketbase_logs_it(srv) {
        let res = get_with_id(&srv, "/api/collections/nope/records?page=2", "e2e-req-1").await;
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers()["x-request-id"], "e2e-req-1");
        let answer: Value = res.json().await.expect("json");
        let body = wait_logs(&srv, "data.requestId = 'e2e-req-1'", 1).await;
        assert_eq!(body["totalItems"], 1, "{body}");
        let item = &body["items"][0];
        assert_eq!(galley_testkit::keys(item), ["created", "data", "id", "level", "message"]);
        assert_eq!(item["message"], "GET /api/collections/nope/records?page=2");
        assert_eq!(item["level"], 8, "errors are ERROR as in PocketBase");
        assert!(galley_testkit::is_date(item["created"].as_str().expect("value")), "{item}");
        let d = &item["data"];
        assert_eq!(d["type"], "request");
        assert_eq!(d["method"], "GET");
        assert_eq!(d["url"], "/api/collections/nope/records?page=2");
        assert_eq!(d["status"], 404);
        assert_eq!(d["auth"], "");
        assert_eq!(d["userIP"], "127.0.0.1");
        assert_eq!(d["remoteIP"], "127.0.0.1");
        assert_eq!(d["userAgent"], "galley-e2e");
        assert_eq!(d["referer"], "http://example.test/page");
        assert_eq!(d["error"], answer["message"]);
        assert!(d["execTime"].as_f64().expect("value") >= 0.0);
        assert!(d.get("authId").is_none(), "logAuthId is off by default");

        // The same entry by id; an unknown id is PocketBase's 404.
        let id = item["id"].as_str().expect("value");
        let one = srv.su(Method::GET, &format!("/api/logs/{id}"), None).await;
        assert_eq!(one.status, 200);
        assert_eq!(&one.body, item);
        srv.su(Method::GET, "/api/logs/abc", None)
            .await
            .assert_error(404, "The requested resource wasn't found.");

        // A superuser's success: level INFO, auth is the collection; a request id is made up.
        let res = srv
            .request(Method::GET, "/api/collections?perPage=1&fields=id")
            .header("Authorization", &srv.token)
            .send()
            .await
            .expect("request");
        let rid = res.headers()["x-request-id"].to_str().expect("value").to_owned();
        assert!(rid.len() == 20 && rid.bytes().all(|b| b.is_ascii_hexdigit()), "{rid}");
        let body = wait_logs(&srv, &format!("data.requestId = '{rid}'"), 1).await;
        let item = &body["items"][0];
        assert_eq!(item["level"], 0);
        assert_eq!(item["data"]["status"], 200);
        assert_eq!(item["data"]["auth"], "_superusers");
        assert!(item["data"].get("error").is_none());

        // File tokens never reach the log.
        get_with_id(&srv, "/api/files/a/b/c.txt?token=secret.jwt.value", "e2e-req-tok").await;
        let body = wait_logs(&srv, "data.requestId = 'e2e-req-tok'", 1).await;
        assert_eq!(body["items"][0]["data"]["url"], "/api/files/a/b/c.txt?token=***");
    }

    async fn filter_sort_paging_and_stats(srv) {
        for i in 0..3 {
            get_with_id(&srv, &format!("/api/collections/zz{i}/records"), &format!("fs-{i}")).await;
        }
        for i in 0..2 {
            get_with_id(&srv, "/api/health", &format!("fs-ok-{i}")).await;
        }
        let all = wait_logs(&srv, "data.requestId ~ 'fs-'", 5).await;
        assert_eq!(all["totalItems"], 5, "{all}");
        // In the order written without a sort (as PocketBase).
        assert_eq!(all["items"][0]["data"]["requestId"], "fs-0");
        assert_eq!(all["items"][4]["data"]["requestId"], "fs-ok-1");

        let errs = wait_logs(&srv, "data.requestId ~ 'fs-' && data.status = 404", 3).await;
        assert_eq!(errs["totalItems"], 3);
        assert!(errs["items"].as_array().expect("value").iter().all(|i| i["data"]["status"] == 404));
        // (Not `-created`: two quick requests can share a millisecond.)
        let r = srv.su(Method::GET, &format!("/api/logs?filter={}&sort=data.status,-data.requestId&perPage=2&page=1",
            enc("data.requestId ~ 'fs-' && level >= 0")), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!((r.body["perPage"].clone(), r.body["totalPages"].clone()), (json!(2), json!(3)));
        let ids: Vec<&str> = r.body["items"].as_array().expect("value").iter().map(|i| i["data"]["requestId"].as_str().expect("value")).collect();
        assert_eq!(ids, ["fs-ok-1", "fs-ok-0"]);
        // fields= picks as everywhere.
        let r = srv.su(Method::GET, &format!("/api/logs?filter={}&fields=id,data.status", enc("data.requestId = 'fs-0'")), None).await;
        assert_eq!(r.body["items"][0]["data"], json!({"status": 404}));

        // Stats: one row per hour, PocketBase's shape.
        let r = srv.su(Method::GET, &format!("/api/logs/stats?filter={}", enc("data.requestId ~ 'fs-' && data.status >= 400")), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let rows = r.body.as_array().expect("array");
        assert_eq!(rows.len(), 1, "{}", r.body);
        assert_eq!(galley_testkit::keys(&rows[0]), ["date", "total"]);
        assert_eq!(rows[0]["total"], 3);
        let hour = chrono::Utc::now().format("%Y-%m-%d %H:00:00.000Z").to_string();
        let date = rows[0]["date"].as_str().expect("value");
        assert!(date == hour || date.ends_with(":00:00.000Z") && date.len() == hour.len(), "{date} vs {hour}");
        let r = srv.su(Method::GET, "/api/logs/stats", None).await;
        assert!(r.body[0]["total"].as_i64().expect("value") >= 5);

        // perPage above 1000 is clamped, as PocketBase does.
        let r = srv.su(Method::GET, "/api/logs?perPage=5000", None).await;
        assert_eq!((r.status, r.body["perPage"].clone()), (200, json!(1000)));
    }

    async fn only_superusers_and_bad_filters_are_400s(srv) {
        let member = srv.member_token().await;
        for path in ["/api/logs", "/api/logs/stats", "/api/logs/abc"] {
            srv.guest(Method::GET, path, None).await
                .assert_error(401, "The request requires valid record authorization token.");
            srv.send(Method::GET, path, Some(&member), None).await
                .assert_error(403, "The authorized record is not allowed to perform this action.");
        }
        srv.send(Method::DELETE, "/api/logs", Some(&member), None).await.assert_error_shape();
        assert_eq!(srv.send(Method::DELETE, "/api/logs", Some(&member), None).await.status, 403);
        for path in ["/api/logs", "/api/logs/stats"] {
            for bad in ["((", "nofield = 1", "data.status >"] {
                let r = srv.su(Method::GET, &format!("{path}?filter={}", enc(bad)), None).await;
                assert_eq!(r.status, 400, "{path} {bad}: {}", r.body);
                r.assert_error_shape();
                assert!(r.body["message"].as_str().expect("value").starts_with("Invalid filter parameter"), "{}", r.body);
            }
        }
        let r = srv.su(Method::GET, &format!("/api/logs?sort={}", enc("nofield")), None).await;
        assert_eq!(r.status, 400, "{}", r.body);
        // The log table's name is not a collection's (on PostgreSQL it is a table beside them).
        let r = srv.su(Method::POST, "/api/collections", Some(json!({"name": "_logs"}))).await;
        assert_eq!((r.status, r.body["data"]["name"]["code"].as_str()), (400, Some("validation_collection_name_exists")), "{}", r.body);
        // The refused calls are logged; successful reads of the logs are not (as PocketBase).
        let body = wait_logs(&srv, "data.url ~ '/api/logs' && data.status = 403", 3).await;
        assert!(body["totalItems"].as_i64().expect("value") >= 3, "{body}");
        let ok = srv.su(Method::GET, &format!("/api/logs?filter={}", enc("data.url ~ '/api/logs' && data.status = 200")), None).await;
        assert_eq!(ok.body["totalItems"], 0);
    }

    async fn settings_logs_decide_what_is_kept(srv) {
        let member = srv.member_token().await;
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"logs": {"logAuthId": true, "logIP": false}}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        srv.request(Method::GET, "/api/collections/members/records")
            .header("Authorization", &member)
            .header("X-Request-Id", "st-member")
            .send().await.expect("request");
        let body = wait_logs(&srv, "data.requestId = 'st-member'", 1).await;
        let d = &body["items"][0]["data"];
        assert_eq!(d["auth"], "members");
        assert!(galley_testkit::is_record_id(d["authId"].as_str().unwrap_or("")), "{d}");
        assert!(d.get("userIP").is_none() && d.get("remoteIP").is_none(), "{d}");

        // minLevel 8: successes are no longer kept, errors are.
        srv.su(Method::PATCH, "/api/settings", Some(json!({"logs": {"minLevel": 8}}))).await;
        get_with_id(&srv, "/api/health", "st-ok").await;
        get_with_id(&srv, "/api/collections/nope/records", "st-err").await;
        // Entries are written in order, so once the later one is there the earlier one would be.
        wait_logs(&srv, "data.requestId = 'st-err'", 1).await;
        let r = wait_logs(&srv, "data.requestId = 'st-ok'", 0).await;
        assert_eq!(r["totalItems"], 0);

        // maxDays 0 turns request logging off.
        srv.su(Method::PATCH, "/api/settings", Some(json!({"logs": {"maxDays": 0, "minLevel": 0}}))).await;
        get_with_id(&srv, "/api/collections/nope/records", "st-off").await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(wait_logs(&srv, "data.requestId = 'st-off'", 0).await["totalItems"], 0);

        // DELETE /api/logs empties them.
        srv.su(Method::PATCH, "/api/settings", Some(json!({"logs": {"maxDays": 5}}))).await;
        let before = wait_logs(&srv, "", 1).await;
        assert!(before["totalItems"].as_i64().expect("value") > 0);
        let r = srv.su(Method::DELETE, "/api/logs", None).await;
        assert_eq!(r.status, 204);
        assert_eq!(wait_logs(&srv, "", 0).await["totalItems"], 0);
    }

    async fn max_data_size_cuts_long_entries(srv) {
        // A long query string (what a caller controls) is cut so that the stored data stays
        // within `logs.maxDataSize`; the entry keeps its keys, status and the URL's start.
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"logs": {"maxDataSize": 700}}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["logs"]["maxDataSize"], 700);
        // Under the 2,000 characters the request log keeps of any text.
        let long = "q".repeat(1500);
        let res = get_with_id(&srv, &format!("/api/collections/nope/records?x={long}"), "mds-long").await;
        assert_eq!(res.status(), 404);
        let body = wait_logs(&srv, "data.requestId = 'mds-long'", 1).await;
        let d = &body["items"][0]["data"];
        let size = serde_json::to_vec(d).expect("json").len();
        assert!(size <= 700, "{size}: {d}");
        assert_eq!(d["status"], 404);
        assert_eq!(d["method"], "GET");
        let url = d["url"].as_str().expect("url");
        assert!(url.starts_with("/api/collections/nope/records?x=qqq") && url.ends_with("..."), "{url}");

        // 0 is PocketBase's default (about 16 KB): the same URL is kept whole.
        srv.su(Method::PATCH, "/api/settings", Some(json!({"logs": {"maxDataSize": 0}}))).await;
        get_with_id(&srv, &format!("/api/collections/nope/records?x={long}"), "mds-default").await;
        let body = wait_logs(&srv, "data.requestId = 'mds-default'", 1).await;
        assert_eq!(body["items"][0]["data"]["url"], format!("/api/collections/nope/records?x={long}"));
    }
}
