//! `PUT /api/collections/import`, with PocketBase 0.40.6's answers as the reference (the
//! fixture is the collection list of a real PocketBase: its system collections, an auth
//! collection and a base collection with a relation, a file, an index and rules).

use galley_testkit::{both_engines, Method};
use serde_json::{json, Value};

fn pocketbase_export() -> Value {
    serde_json::from_str(include_str!("fixtures/pocketbase_export.json")).expect("fixture")
}

both_engines! {
    async fn a_pocketbase_export_imports_and_reimports(srv) {
        let export = pocketbase_export();
        let r = srv.su(Method::PUT, "/api/collections/import", Some(json!({"collections": export}))).await;
        assert_eq!(r.status, 204, "{}", r.body);
        let articles = srv.su(Method::GET, "/api/collections/articles", None).await.body;
        assert_eq!(articles["id"], "pbc_4287850865");
        let names: Vec<&str> = articles["fields"].as_array().expect("fields").iter().map(|f| f["name"].as_str().expect("name")).collect();
        assert_eq!(names, ["id", "title", "views", "author", "cover", "meta", "created", "updated"]);
        assert_eq!(articles["viewRule"], "author = @request.auth.id");
        assert_eq!(articles["indexes"], json!(["CREATE INDEX `idx_articles_title` ON `articles` (`title`)"]));
        let users = srv.su(Method::GET, "/api/collections/users", None).await.body;
        assert_eq!((users["id"].as_str(), users["type"].as_str()), (Some("pbc_1736455494"), Some("auth")));
        assert_eq!(srv.su(Method::GET, "/api/collections/tags", None).await.status, 200);

        // The imported schema works: a user, an article pointing at it.
        let user = srv.create_record("users", json!({"email": "u@example.com", "password": "Passw0rd-123", "passwordConfirm": "Passw0rd-123", "name": "U"})).await;
        let art = srv.create_record("articles", json!({"title": "hello", "author": user["id"], "views": 3})).await;
        assert_eq!(art["author"], user["id"]);

        // Importing the same export again changes nothing and keeps the data.
        let r = srv.su(Method::PUT, "/api/collections/import", Some(json!({"collections": export, "deleteMissing": false}))).await;
        assert_eq!(r.status, 204, "{}", r.body);
        let again = srv.su(Method::GET, &format!("/api/collections/articles/records/{}", art["id"].as_str().expect("id")), None).await;
        assert_eq!((again.status, again.body["title"].clone()), (200, json!("hello")));
    }

    async fn updates_creates_and_deletes_missing_in_one_go(srv) {
        srv.create_collection(json!({"name": "keep", "fields": [{"name": "a", "type": "text"}]})).await;
        srv.create_collection(json!({"name": "drop", "fields": [{"name": "a", "type": "text"}]})).await;
        let rec = srv.create_record("keep", json!({"a": "x"})).await;
        srv.create_record("drop", json!({"a": "y"})).await;
        let mut keep = srv.su(Method::GET, "/api/collections/keep", None).await.body;
        keep["fields"].as_array_mut().expect("fields").push(json!({"name": "b", "type": "number"}));
        keep["listRule"] = json!("");
        let body = json!({"collections": [keep, {"name": "fresh", "type": "base", "fields": [{"name": "t", "type": "text"}]}], "deleteMissing": true});
        let r = srv.su(Method::PUT, "/api/collections/import", Some(body)).await;
        assert_eq!(r.status, 204, "{}", r.body);
        assert_eq!(srv.su(Method::GET, "/api/collections/drop", None).await.status, 404);
        assert_eq!(srv.su(Method::GET, "/api/collections/fresh", None).await.status, 200);
        assert_eq!(srv.su(Method::GET, "/api/collections/_superusers", None).await.status, 200, "system collections stay");
        let kept = srv.guest(Method::GET, "/api/collections/keep/records", None).await;
        assert_eq!(kept.status, 200, "the new list rule applies: {}", kept.body);
        assert_eq!(kept.body["items"][0]["id"], rec["id"]);
        assert_eq!(kept.body["items"][0]["a"], "x");
        assert_eq!(kept.body["items"][0]["b"], 0);
    }

    async fn an_invalid_import_changes_nothing(srv) {
        // PocketBase's exact answer; the valid collection before it is not created either.
        let r = srv.su(Method::PUT, "/api/collections/import", Some(json!({"collections": [
            {"name": "ok2", "type": "base"},
            {"name": "bad name!", "type": "base", "fields": []},
        ]}))).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.body["message"], "Failed to import collections.");
        assert_eq!(r.body["data"]["collections"]["code"], "validation_collections_import_failure");
        let msg = r.body["data"]["collections"]["message"].as_str().expect("message");
        assert!(msg.starts_with("Data validations failed for collection \"bad name!\" (pbc_"), "{msg}");
        assert!(msg.contains("\"name\": \"Must be in a valid format.\""), "{msg}");
        assert_eq!(srv.su(Method::GET, "/api/collections/ok2", None).await.status, 404);

        // A relation to a collection that does not exist.
        let r = srv.su(Method::PUT, "/api/collections/import", Some(json!({"collections": [
            {"name": "posts2", "type": "base", "fields": [{"name": "tag", "type": "relation", "collectionId": "nope"}]},
        ]}))).await;
        assert_eq!((r.status, r.body["message"].as_str()), (400, Some("Failed to import collections.")));

        // deleteMissing may not delete a collection that a kept one references.
        srv.create_collection(json!({"name": "tags"})).await;
        let tags = srv.su(Method::GET, "/api/collections/tags", None).await.body;
        srv.create_collection(json!({"name": "posts", "fields": [{"name": "tag", "type": "relation", "collectionId": tags["id"]}]})).await;
        let posts = srv.su(Method::GET, "/api/collections/posts", None).await.body;
        let r = srv.su(Method::PUT, "/api/collections/import", Some(json!({"collections": [posts], "deleteMissing": true}))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body["data"]["collections"]["message"].as_str().expect("message").contains("\"tags\""), "{}", r.body);
        assert_eq!(srv.su(Method::GET, "/api/collections/tags", None).await.status, 200);

        // Blank and malformed bodies, as PocketBase answers them.
        for body in [json!({}), json!({"collections": []})] {
            let r = srv.su(Method::PUT, "/api/collections/import", Some(body)).await;
            assert_eq!(r.body, json!({"data": {"collections": {"code": "validation_required", "message": "Cannot be blank."}}, "message": "An error occurred while validating the submitted data.", "status": 400}));
        }
        for body in [json!({"collections": "x"}), json!({"collections": [{"name": "a"}], "deleteMissing": "yes"})] {
            let r = srv.su(Method::PUT, "/api/collections/import", Some(body)).await;
            r.assert_error(400, "An error occurred while loading the submitted data.");
        }
        let many: Vec<Value> = (0..1001).map(|i| json!({"name": format!("c{i}")})).collect();
        let r = srv.su(Method::PUT, "/api/collections/import", Some(json!({"collections": many}))).await;
        assert_eq!(r.status, 400);
        assert_eq!(srv.su(Method::GET, "/api/collections/c0", None).await.status, 404);

        // Superusers only.
        srv.guest(Method::PUT, "/api/collections/import", Some(json!({"collections": [{"name": "x"}]}))).await
            .assert_error(401, "The request requires valid record authorization token.");
        let member = srv.member_token().await;
        let r = srv.send(Method::PUT, "/api/collections/import", Some(&member), Some(json!({"collections": [{"name": "x"}]}))).await;
        assert_eq!(r.status, 403);
    }
}
