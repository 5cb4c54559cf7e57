//! `POST /api/batch`: disabled by default, all-or-nothing, PocketBase's result and error shapes.

use galley_testkit::{both_engines, keys, Method, Reply, TestServer};
use serde_json::{json, Value};

async fn setup(srv: &TestServer) {
    srv.create_collection(json!({"name": "tags", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text", "required": true}]}))
        .await;
}

async fn batch(srv: &TestServer, requests: Value) -> Reply {
    srv.su(
        Method::POST,
        "/api/batch",
        Some(json!({"requests": requests})),
    )
    .await
}

async fn titles(srv: &TestServer) -> Vec<String> {
    let mut t: Vec<String> = srv
        .all_records("tags")
        .await
        .iter()
        .map(|r| r["title"].as_str().expect("title").to_owned())
        .collect();
    t.sort();
    t
}

both_engines! {
    async fn disabled_by_default(srv) {
        setup(&srv).await;
        let r = batch(&srv, json!([{"method": "POST", "url": "/api/collections/tags/records", "body": {"title": "x"}}])).await;
        assert_eq!(r.body, json!({"data": {}, "message": "Batch requests are not allowed.", "status": 403}));
        r.assert_error_shape();
        assert!(titles(&srv).await.is_empty());
        let s = srv.su(Method::GET, "/api/settings", None).await;
        assert_eq!(s.body["batch"], json!({"enabled": false, "maxRequests": 50, "timeout": 3, "maxBodySize": 0}));
        srv.enable_batch().await;
        let r = batch(&srv, json!([{"method": "POST", "url": "/api/collections/tags/records", "body": {"title": "x"}}])).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(titles(&srv).await, ["x"]);
    }

    async fn create_update_upsert_delete_in_one_batch(srv) {
        setup(&srv).await;
        srv.enable_batch().await;
        let a = srv.create_record("tags", json!({"title": "a"})).await;
        let b = srv.create_record("tags", json!({"title": "b"})).await;
        let (aid, bid) = (a["id"].as_str().expect("id"), b["id"].as_str().expect("id"));
        let r = batch(&srv, json!([
            {"method": "POST", "url": "/api/collections/tags/records", "body": {"title": "new"}},
            {"method": "PATCH", "url": format!("/api/collections/tags/records/{aid}"), "body": {"title": "a2"}},
            {"method": "PUT", "url": "/api/collections/tags/records?fields=id,title", "body": {"id": "upsertid0000001", "title": "up1"}},
            {"method": "PUT", "url": "/api/collections/tags/records", "body": {"id": aid, "title": "a3"}},
            {"method": "DELETE", "url": format!("/api/collections/tags/records/{bid}")}
        ])).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let items = r.body.as_array().expect("array");
        assert_eq!(items.len(), 5);
        for i in items {
            assert_eq!(keys(i), ["body", "status"]);
        }
        let statuses: Vec<i64> = items.iter().map(|i| i["status"].as_i64().expect("status")).collect();
        assert_eq!(statuses, [200, 200, 200, 200, 204]);
        assert_eq!(items[0]["body"]["title"], "new");
        assert_eq!(items[0]["body"]["collectionName"], "tags");
        assert_eq!(items[1]["body"]["id"], json!(aid));
        assert_eq!(items[1]["body"]["title"], "a2");
        assert_eq!(items[2]["body"], json!({"id": "upsertid0000001", "title": "up1"}), "the fields picker of the sub-request applies");
        assert_eq!(items[3]["body"]["id"], json!(aid), "PUT with an existing id updates");
        assert_eq!(items[3]["body"]["title"], "a3");
        assert_eq!(items[4]["body"], Value::Null);
        assert_eq!(titles(&srv).await, ["a3", "new", "up1"]);
        // The whole result honours ?fields= too.
        let r = srv
            .su(Method::POST, "/api/batch?fields=status", Some(json!({"requests": [{"method": "POST", "url": "/api/collections/tags/records", "body": {"title": "f"}}]})))
            .await;
        assert_eq!(r.body, json!([{"status": 200}]));
    }

    async fn a_failure_rolls_back_everything(srv) {
        setup(&srv).await;
        srv.enable_batch().await;
        let keep = srv.create_record("tags", json!({"title": "keep"})).await;
        let kid = keep["id"].as_str().expect("id");
        let r = batch(&srv, json!([
            {"method": "POST", "url": "/api/collections/tags/records", "body": {"title": "b1"}},
            {"method": "PATCH", "url": format!("/api/collections/tags/records/{kid}"), "body": {"title": "changed"}},
            {"method": "POST", "url": "/api/collections/tags/records", "body": {}}
        ])).await;
        r.assert_error(400, "Batch transaction failed.");
        assert_eq!(r.body["data"], json!({"requests": {"2": {"code": "batch_request_failed", "message": "Batch request failed.",
            "response": {"data": {"title": {"code": "validation_required", "message": "Cannot be blank."}},
                         "message": "Failed to create record.", "status": 400}}}}));
        assert_eq!(titles(&srv).await, ["keep"], "nothing of the batch was kept");

        let r = batch(&srv, json!([
            {"method": "POST", "url": "/api/collections/tags/records", "body": {"title": "b2"}},
            {"method": "DELETE", "url": "/api/collections/tags/records/nonexist1234567"}
        ])).await;
        assert_eq!(r.body["data"]["requests"]["1"]["response"], json!({"data": {}, "message": "The requested resource wasn't found.", "status": 404}));
        let r = batch(&srv, json!([
            {"method": "DELETE", "url": format!("/api/collections/tags/records/{kid}")},
            {"method": "POST", "url": "/api/collections/nope/records", "body": {"title": "x"}}
        ])).await;
        assert_eq!(r.body["data"]["requests"]["1"]["code"], "batch_request_failed");
        assert_eq!(r.body["data"]["requests"]["1"]["response"]["message"], "Missing collection context.");
        assert_eq!(titles(&srv).await, ["keep"]);
    }

    async fn invalid_batches(srv) {
        setup(&srv).await;
        srv.enable_batch().await;
        let empty = json!({"data": {"requests": {"code": "validation_required", "message": "Cannot be blank."}}, "message": "Invalid batch request data.", "status": 400});
        assert_eq!(batch(&srv, json!([])).await.body, empty);
        assert_eq!(srv.su(Method::POST, "/api/batch", Some(json!({}))).await.body, empty);
        let r = srv.su(Method::POST, "/api/batch", Some(json!({"requests": "nope"}))).await;
        assert_eq!(r.status, 400);
        r.assert_error_shape();
        let r = srv.su(Method::POST, "/api/batch", Some(json!({"requests": [1, 2]}))).await;
        assert_eq!(r.status, 400);
        r.assert_error_shape();

        // Too many requests.
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"batch": {"maxRequests": 2}}))).await;
        assert_eq!(r.body["batch"], json!({"enabled": true, "maxRequests": 2, "timeout": 3, "maxBodySize": 0}));
        let one = json!({"method": "POST", "url": "/api/collections/tags/records", "body": {"title": "x"}});
        let r = batch(&srv, json!([one, one, one])).await;
        assert_eq!(r.body, json!({"data": {"requests": {"code": "validation_length_too_long", "message": "The length must be no more than 2.",
            "params": {"max": 2, "min": 0}}}, "message": "Invalid batch request data.", "status": 400}));
        assert_eq!(batch(&srv, json!([one, one])).await.status, 200);

        // Only record writes are allowed.
        for (m, url) in [("GET", "/api/health"), ("POST", "/api/collections"), ("GET", "/api/collections/tags/records"),
                         ("DELETE", "/api/collections/tags"), ("POST", "/api/batch"), ("PATCH", "/api/collections/tags/records"),
                         ("POST", "/api/collections/tags/records/abc/x"), ("POST", "http://evil.example/api/collections/tags/records")] {
            let r = batch(&srv, json!([one, {"method": m, "url": url, "body": {"name": "x"}}])).await;
            r.assert_error(400, "Batch transaction failed.");
            assert_eq!(r.body["data"]["requests"]["1"]["code"], "batch_request_failed", "{m} {url}: {}", r.body);
            assert_eq!(r.body["data"]["requests"]["1"]["response"]["status"], 400, "{m} {url}: {}", r.body);
        }
        assert_eq!(titles(&srv).await, ["x", "x"], "only the one good batch wrote");
        assert_eq!(srv.su(Method::GET, "/api/collections/x", None).await.status, 404);
    }

    async fn multipart_batch_with_json_payload(srv) {
        setup(&srv).await;
        srv.enable_batch().await;
        let payload = json!({"requests": [
            {"method": "POST", "url": "/api/collections/tags/records", "body": {"title": "m1"}},
            {"method": "POST", "url": "/api/collections/tags/records", "body": {"title": "m2"}}
        ]});
        let form = reqwest::multipart::Form::new().text("@jsonPayload", payload.to_string());
        let resp = srv.request(Method::POST, "/api/batch").header("Authorization", &srv.token).multipart(form).send().await.expect("send");
        let r = TestServer::read(resp).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body.as_array().map(Vec::len), Some(2));
        assert_eq!(titles(&srv).await, ["m1", "m2"]);
    }

    async fn sub_requests_use_the_callers_rules(srv) {
        srv.create_collection(json!({"name": "locked", "fields": [{"name": "title", "type": "text"}]})).await;
        srv.enable_batch().await;
        let req = json!({"requests": [{"method": "POST", "url": "/api/collections/locked/records", "body": {"title": "g"},
            "headers": {"Authorization": srv.token.clone()}}]});
        let r = srv.guest(Method::POST, "/api/batch", Some(req.clone())).await;
        r.assert_error(400, "Batch transaction failed.");
        assert_eq!(r.body["data"]["requests"]["0"]["response"], json!({"data": {}, "message": "Only superusers can perform this action.", "status": 403}),
            "an Authorization header inside the batch is ignored");
        assert!(srv.all_records("locked").await.is_empty());
        let r = srv.su(Method::POST, "/api/batch", Some(req)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
}
