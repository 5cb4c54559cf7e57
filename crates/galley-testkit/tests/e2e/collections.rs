//! The collections API (superuser only): create with every field type, list, view, update,
//! delete, truncate, indexes, and the validation of names, types, indexes and rules.

use galley_testkit::{both_engines, is_date, keys, Method, TestServer};
use serde_json::{json, Value};

/// The `fields` PocketBase 0.40.6 answered for [`posts_def`] (copied from the real server).
const PB_POSTS_FIELDS: &str = r#"[{"autogeneratePattern":"[a-z0-9]{15}","help":"","hidden":false,"id":"text3208210256","max":15,"min":15,"name":"id","pattern":"^[a-z0-9]+$","presentable":false,"primaryKey":true,"required":true,"system":true,"type":"text"},{"autogeneratePattern":"","help":"","hidden":false,"id":"text724990059","max":0,"min":0,"name":"title","pattern":"","presentable":false,"primaryKey":false,"required":false,"system":false,"type":"text"},{"help":"","hidden":false,"id":"number300981383","max":null,"min":null,"name":"views","onlyInt":false,"presentable":false,"required":false,"system":false,"type":"number"},{"help":"","hidden":false,"id":"bool1748787223","name":"published","presentable":false,"required":false,"system":false,"type":"bool"},{"exceptDomains":[],"help":"","hidden":false,"id":"email1281549880","name":"contact","onlyDomains":[],"presentable":false,"required":false,"system":false,"type":"email"},{"exceptDomains":[],"help":"","hidden":false,"id":"url1766001124","name":"site","onlyDomains":[],"presentable":false,"required":false,"system":false,"type":"url"},{"convertURLs":false,"help":"","hidden":false,"id":"editor3685223346","maxSize":0,"name":"body","presentable":false,"required":false,"system":false,"type":"editor"},{"help":"","hidden":false,"id":"date1120100204","max":"","min":"","name":"pubdate","presentable":false,"required":false,"system":false,"type":"date"},{"hidden":false,"id":"autodate2990389176","name":"created","onCreate":true,"onUpdate":false,"presentable":false,"system":false,"type":"autodate"},{"help":"","hidden":false,"id":"select2063623452","maxSelect":0,"name":"status","presentable":false,"required":false,"system":false,"type":"select","values":["draft","live"]},{"help":"","hidden":false,"id":"select3050373649","maxSelect":3,"name":"labels","presentable":false,"required":false,"system":false,"type":"select","values":["a","b","c"]},{"help":"","hidden":false,"id":"json3622966325","maxSize":0,"name":"meta","presentable":false,"required":false,"system":false,"type":"json"},{"cascadeDelete":false,"collectionId":"pbc_1219621782","help":"","hidden":false,"id":"relation3182418120","maxSelect":0,"minSelect":0,"name":"author","presentable":false,"required":false,"system":false,"type":"relation"},{"cascadeDelete":true,"collectionId":"pbc_1219621782","help":"","hidden":false,"id":"relation1874629670","maxSelect":5,"minSelect":1,"name":"tags","presentable":false,"required":false,"system":false,"type":"relation"},{"help":"","hidden":false,"id":"geoPoint2287119580","name":"loc","presentable":false,"required":false,"system":false,"type":"geoPoint"}]"#;

fn crc(s: &str) -> u32 {
    crc32fast::hash(s.as_bytes())
}

fn tags_def() -> Value {
    json!({"name": "tags", "listRule": "", "viewRule": "", "createRule": "",
           "fields": [{"name": "title", "type": "text", "required": true}]})
}

/// Every field type, as sent to PocketBase for [`PB_POSTS_FIELDS`].
fn posts_def(tags_id: &str) -> Value {
    json!({"name": "posts", "fields": [
        {"name": "title", "type": "text"},
        {"name": "views", "type": "number"},
        {"name": "published", "type": "bool"},
        {"name": "contact", "type": "email"},
        {"name": "site", "type": "url"},
        {"name": "body", "type": "editor"},
        {"name": "pubdate", "type": "date"},
        {"name": "created", "type": "autodate", "onCreate": true},
        {"name": "status", "type": "select", "values": ["draft", "live"]},
        {"name": "labels", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3},
        {"name": "meta", "type": "json"},
        {"name": "author", "type": "relation", "collectionId": tags_id},
        {"name": "tags", "type": "relation", "collectionId": tags_id, "maxSelect": 5, "minSelect": 1, "cascadeDelete": true},
        {"name": "loc", "type": "geoPoint"}
    ]})
}

fn field<'a>(col: &'a Value, name: &str) -> &'a Value {
    col["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no field {name} in {col}"))
}

fn field_names(col: &Value) -> Vec<String> {
    col["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["name"].as_str().expect("name").to_owned())
        .collect()
}

async fn create_err(srv: &TestServer, def: Value) -> galley_testkit::Reply {
    let name = def["name"].as_str().map(str::to_owned);
    let r = srv.su(Method::POST, "/api/collections", Some(def)).await;
    assert_eq!(r.status, 400, "expected a 400, got {}", r.body);
    r.assert_error_shape();
    if let Some(n) = name.filter(|n| !n.is_empty() && n.len() < 1000) {
        // Nothing was created.
        let enc: String = n.bytes().map(|b| format!("%{b:02X}")).collect();
        assert_eq!(
            srv.su(Method::GET, &format!("/api/collections/{enc}"), None)
                .await
                .status,
            404,
            "{n} must not exist"
        );
    }
    r
}

async fn count(srv: &TestServer, col: &str) -> i64 {
    let r = srv
        .su(
            Method::GET,
            &format!("/api/collections/{col}/records?perPage=1"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["totalItems"].as_i64().expect("totalItems")
}

both_engines! {
    async fn create_base_collection_matches_pocketbase(srv) {
        let tags = srv.create_collection(tags_def()).await;
        let mut expected = json!({"id":"pbc_1219621782","listRule":"","viewRule":"","createRule":"","updateRule":null,
            "deleteRule":null,"name":"tags","type":"base",
            "fields":[{"autogeneratePattern":"[a-z0-9]{15}","help":"","hidden":false,"id":"text3208210256",
              "max":15,"min":15,"name":"id","pattern":"^[a-z0-9]+$","presentable":false,"primaryKey":true,
              "required":true,"system":true,"type":"text"},
             {"autogeneratePattern":"","help":"","hidden":false,"id":"text724990059","max":0,"min":0,
              "name":"title","pattern":"","presentable":false,"primaryKey":false,"required":true,
              "system":false,"type":"text"}],
            "indexes":[],"created":"","updated":"","system":false});
        assert!(is_date(tags["created"].as_str().expect("created")), "{}", tags["created"]);
        assert_eq!(tags["created"], tags["updated"]);
        expected["created"] = tags["created"].clone();
        expected["updated"] = tags["updated"].clone();
        assert_eq!(tags, expected);
        // Same key order as PocketBase prints.
        let order: Vec<&String> = tags.as_object().expect("obj").keys().collect();
        assert_eq!(order, ["id", "listRule", "viewRule", "createRule", "updateRule", "deleteRule", "name", "type", "fields", "indexes", "created", "updated", "system"]);
        // The id is pbc_ + crc32(type + name), the field ids type + crc32(name).
        assert_eq!(tags["id"], format!("pbc_{}", crc("basetags")));
        assert_eq!(field(&tags, "title")["id"], format!("text{}", crc("title")));
        // View returns the same document.
        let v = srv.su(Method::GET, "/api/collections/tags", None).await;
        assert_eq!(v.body, tags);
    }

    async fn create_with_every_field_type(srv) {
        let tags = srv.create_collection(tags_def()).await;
        let posts = srv.create_collection(posts_def(tags["id"].as_str().expect("id"))).await;
        assert_eq!(posts["id"], "pbc_1125843985");
        assert_eq!(posts["id"], format!("pbc_{}", crc("baseposts")));
        for rule in ["listRule", "viewRule", "createRule", "updateRule", "deleteRule"] {
            assert_eq!(posts[rule], Value::Null, "{rule} defaults to null (superusers only)");
        }
        let pb: Value = serde_json::from_str(PB_POSTS_FIELDS).expect("fixture");
        let ours = posts["fields"].as_array().expect("fields");
        let theirs = pb.as_array().expect("fixture fields");
        assert_eq!(ours.len(), theirs.len(), "{}", posts["fields"]);
        for (o, t) in ours.iter().zip(theirs) {
            assert_eq!(o, t, "field {} differs from PocketBase", t["name"]);
        }
        // A record of it has every field at its zero value.
        let rec = srv.create_record("posts", json!({})).await;
        let mut rec2 = rec.clone();
        for k in ["id", "created"] {
            rec2.as_object_mut().expect("obj").remove(k);
        }
        assert_eq!(rec2, json!({"author":"","body":"","collectionId":"pbc_1125843985","collectionName":"posts","contact":"",
            "labels":[],"loc":{"lon":0,"lat":0},"meta":null,"pubdate":"","published":false,"site":"","status":"",
            "tags":[],"title":"","views":0}));
    }

    async fn list_pages_and_counts(srv) {
        let all = srv.su(Method::GET, "/api/collections?perPage=500", None).await;
        assert_eq!(all.status, 200, "{}", all.body);
        let base = all.body["totalItems"].as_i64().expect("total");
        assert_eq!(all.body["items"].as_array().expect("items").len() as i64, base);
        assert!(all.body["items"].as_array().expect("items").iter().any(|c| c["name"] == "_superusers" && c["system"] == true && c["type"] == "auth"));
        for n in ["alpha", "beta", "gamma"] {
            srv.create_collection(json!({"name": n})).await;
        }
        let total = base + 3;
        let mut seen = Vec::new();
        let pages = (total + 1) / 2;
        for page in 1..=pages {
            let r = srv.su(Method::GET, &format!("/api/collections?page={page}&perPage=2"), None).await;
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(keys(&r.body), ["items", "page", "perPage", "totalItems", "totalPages"]);
            assert_eq!((r.body["page"].as_i64(), r.body["perPage"].as_i64()), (Some(page), Some(2)));
            assert_eq!(r.body["totalItems"], json!(total));
            assert_eq!(r.body["totalPages"], json!(pages));
            let items = r.body["items"].as_array().expect("items");
            assert_eq!(items.len() as i64, if page < pages { 2 } else { total - 2 * (pages - 1) });
            seen.extend(items.iter().map(|c| c["name"].as_str().expect("name").to_owned()));
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "no collection appears twice: {seen:?}");
        for n in ["alpha", "beta", "gamma", "_superusers"] {
            assert!(seen.iter().any(|s| s == n), "{n} missing from {seen:?}");
        }
        let beyond = srv.su(Method::GET, "/api/collections?page=99&perPage=2", None).await;
        assert_eq!(beyond.body["items"], json!([]));
        assert_eq!(beyond.body["totalItems"], json!(total));
        srv.su(Method::GET, "/api/collections?page=x", None).await.assert_error_shape();
        assert_eq!(srv.su(Method::GET, "/api/collections?perPage=zz", None).await.status, 400);
        // The fields picker works on the list.
        let picked = srv.su(Method::GET, "/api/collections?perPage=1&fields=id,name", None).await;
        assert_eq!(keys(&picked.body["items"][0]), ["id", "name"]);
    }

    async fn view_by_id_and_case_insensitive_name(srv) {
        let tags = srv.create_collection(tags_def()).await;
        for path in ["/api/collections/tags", "/api/collections/TAGS", "/api/collections/Tags", "/api/collections/pbc_1219621782"] {
            let r = srv.su(Method::GET, path, None).await;
            assert_eq!(r.status, 200, "{path}: {}", r.body);
            assert_eq!(r.body, tags, "{path}");
        }
        srv.su(Method::GET, "/api/collections/nope", None).await.assert_error(404, "The requested resource wasn't found.");
        // Records are reachable through the id and any case of the name too.
        srv.create_record("TAGS", json!({"title": "x"})).await;
        assert_eq!(count(&srv, "pbc_1219621782").await, 1);
        assert_eq!(count(&srv, "tAgS").await, 1);
    }

    async fn update_renames_adds_drops_and_changes_rules(srv) {
        let col = srv
            .create_collection(json!({"name": "notes", "fields": [
                {"name": "title", "type": "text"},
                {"name": "body", "type": "text"},
                {"name": "old", "type": "number"},
                {"name": "kind", "type": "select", "values": ["a", "b", "c"], "maxSelect": 1}
            ]}))
            .await;
        let rec = srv.create_record("notes", json!({"title": "t1", "body": "b1", "old": 7, "kind": "b"})).await;
        let id = rec["id"].as_str().expect("id").to_owned();
        let body_id = field(&col, "body")["id"].clone();
        let created = col["created"].clone();

        // Rename the collection and `body` → `content` (same id), drop `old`, add `extra`,
        // open the list rule, widen `kind` to 3 values.
        let mut fields: Vec<Value> = col["fields"].as_array().expect("fields").clone();
        fields.retain(|f| f["name"] != "old");
        for f in fields.iter_mut() {
            if f["name"] == "body" {
                f["name"] = json!("content");
            }
            if f["name"] == "kind" {
                f["maxSelect"] = json!(3);
            }
        }
        fields.push(json!({"name": "extra", "type": "bool"}));
        let r = srv
            .su(Method::PATCH, "/api/collections/notes", Some(json!({"name": "memos", "listRule": "", "viewRule": "", "fields": fields})))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let up = r.body;
        assert_eq!(up["id"], col["id"], "the id survives a rename");
        assert_eq!(up["name"], "memos");
        assert_eq!(field_names(&up), ["id", "title", "content", "kind", "extra"]);
        assert_eq!(field(&up, "content")["id"], body_id);
        assert_eq!(field(&up, "extra")["id"], format!("bool{}", crc("extra")));
        assert_eq!(field(&up, "kind")["maxSelect"], 3);
        assert_eq!((up["listRule"].clone(), up["viewRule"].clone(), up["createRule"].clone()), (json!(""), json!(""), Value::Null));
        assert_eq!(up["created"], created);
        assert!(up["updated"].as_str() >= col["updated"].as_str());

        // The old name is gone, the data moved with the renames.
        srv.su(Method::GET, "/api/collections/notes/records", None).await.assert_error(404, "Missing collection context.");
        srv.su(Method::GET, "/api/collections/notes", None).await.assert_error(404, "The requested resource wasn't found.");
        let r = srv.su(Method::GET, &format!("/api/collections/memos/records/{id}"), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["content"], "b1");
        assert_eq!(r.body["title"], "t1");
        assert_eq!(r.body["extra"], false);
        assert_eq!(r.body["kind"], json!(["b"]), "a single select value becomes an array");
        assert_eq!(r.body["collectionName"], "memos");
        assert!(r.body.get("old").is_none() && r.body.get("body").is_none());
        // The new list rule is live: guests may list now.
        let g = srv.guest(Method::GET, "/api/collections/memos/records", None).await;
        assert_eq!((g.status, g.body["totalItems"].as_i64()), (200, Some(1)), "{}", g.body);
        // A multi value can be written now, and narrowing back keeps the last value.
        let r = srv.su(Method::PATCH, &format!("/api/collections/memos/records/{id}"), Some(json!({"kind": ["a", "c"]}))).await;
        assert_eq!(r.body["kind"], json!(["a", "c"]), "{}", r.body);
        let mut fields = up["fields"].as_array().expect("fields").clone();
        for f in fields.iter_mut() {
            if f["name"] == "kind" {
                f["maxSelect"] = json!(1);
            }
        }
        let r = srv.su(Method::PATCH, "/api/collections/memos", Some(json!({"fields": fields}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = srv.su(Method::GET, &format!("/api/collections/memos/records/{id}"), None).await;
        assert_eq!(r.body["kind"], "c");
        // A partial update leaves the rest alone.
        let r = srv.su(Method::PATCH, "/api/collections/memos", Some(json!({"deleteRule": ""}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!((r.body["deleteRule"].clone(), r.body["listRule"].clone()), (json!(""), json!("")));
        assert_eq!(field_names(&r.body), ["id", "title", "content", "kind", "extra"]);
    }

    async fn update_rejects_type_changes_and_clashing_names(srv) {
        let col = srv.create_collection(json!({"name": "one", "fields": [{"name": "n", "type": "number"}]})).await;
        srv.create_collection(json!({"name": "two"})).await;
        let r = srv.su(Method::PATCH, "/api/collections/one", Some(json!({"name": "TWO"}))).await;
        r.assert_error(400, "Failed to update collection.");
        assert_eq!(r.code_at("/name"), Some("validation_collection_name_exists"));
        let mut fields = col["fields"].as_array().expect("fields").clone();
        fields[1] = json!({"id": fields[1]["id"], "name": "n", "type": "text"});
        let r = srv.su(Method::PATCH, "/api/collections/one", Some(json!({"fields": fields}))).await;
        r.assert_error(400, "Failed to update collection.");
        assert!(r.body["data"]["fields"]["1"].is_object(), "{}", r.body);
        // Unchanged.
        assert_eq!(srv.su(Method::GET, "/api/collections/one", None).await.body, col);
        let r = srv.su(Method::PATCH, "/api/collections/one", Some(json!({"type": "auth"}))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        let r = srv.su(Method::PATCH, "/api/collections/_superusers", Some(json!({"name": "admins"}))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        let r = srv.su(Method::PATCH, "/api/collections/_superusers", Some(json!({"listRule": ""}))).await;
        assert_eq!(r.status, 400, "system collection rules are fixed: {}", r.body);
        assert_eq!(srv.su(Method::GET, "/api/collections/_superusers", None).await.body["listRule"], Value::Null);
        srv.su(Method::PATCH, "/api/collections/nope", Some(json!({"name": "x"}))).await.assert_error(404, "The requested resource wasn't found.");
    }

    async fn delete_collections(srv) {
        let tags = srv.create_collection(tags_def()).await;
        srv.create_collection(json!({"name": "posts", "fields": [{"name": "tag", "type": "relation", "collectionId": tags["id"]}]})).await;
        srv.create_record("tags", json!({"title": "kept"})).await;
        // Referenced by a relation: refused, nothing changes.
        let r = srv.su(Method::DELETE, "/api/collections/tags", None).await;
        assert_eq!(r.status, 400, "{}", r.body);
        r.assert_error_shape();
        assert!(r.body["message"].as_str().expect("msg").contains("posts"), "{}", r.body);
        assert_eq!(count(&srv, "tags").await, 1);
        // System collections cannot be deleted.
        let r = srv.su(Method::DELETE, "/api/collections/_superusers", None).await;
        assert_eq!(r.status, 400, "{}", r.body);
        r.assert_error_shape();
        assert_eq!(srv.su(Method::GET, "/api/collections/_superusers", None).await.status, 200);
        srv.su(Method::DELETE, "/api/collections/nope", None).await.assert_error(404, "The requested resource wasn't found.");
        // Delete the referencing one, then the referenced one.
        let r = srv.su(Method::DELETE, "/api/collections/POSTS", None).await;
        assert_eq!((r.status, &r.body), (204, &Value::Null));
        let r = srv.su(Method::DELETE, "/api/collections/pbc_1219621782", None).await;
        assert_eq!(r.status, 204, "{}", r.body);
        srv.su(Method::GET, "/api/collections/tags", None).await.assert_error(404, "The requested resource wasn't found.");
        srv.su(Method::GET, "/api/collections/tags/records", None).await.assert_error(404, "Missing collection context.");
        // The name (and table) can be used again, empty.
        srv.create_collection(tags_def()).await;
        assert_eq!(count(&srv, "tags").await, 0);
    }

    async fn truncate_deletes_records_with_cascade(srv) {
        let tags = srv.create_collection(tags_def()).await;
        let tid = tags["id"].as_str().expect("id");
        srv.create_collection(json!({"name": "posts", "fields": [
            {"name": "title", "type": "text"},
            {"name": "tags", "type": "relation", "collectionId": tid, "maxSelect": 5}
        ]})).await;
        srv.create_collection(json!({"name": "notes", "fields": [
            {"name": "tag", "type": "relation", "collectionId": tid, "cascadeDelete": true}
        ]})).await;
        let t1 = srv.create_record("tags", json!({"title": "t1"})).await["id"].clone();
        let t2 = srv.create_record("tags", json!({"title": "t2"})).await["id"].clone();
        let p = srv.create_record("posts", json!({"title": "p", "tags": [t1, t2]})).await;
        srv.create_record("notes", json!({"tag": t1})).await;
        srv.create_record("notes", json!({"tag": t2})).await;
        let r = srv.su(Method::DELETE, "/api/collections/tags/truncate", None).await;
        assert_eq!((r.status, &r.body), (204, &Value::Null));
        assert_eq!(count(&srv, "tags").await, 0);
        assert_eq!(count(&srv, "notes").await, 0, "cascadeDelete removed the notes");
        let p2 = srv.su(Method::GET, &format!("/api/collections/posts/records/{}", p["id"].as_str().expect("id")), None).await;
        assert_eq!(p2.status, 200, "the post survives: {}", p2.body);
        assert_eq!(p2.body["tags"], json!([]));
        // The collection itself is still there.
        assert_eq!(srv.su(Method::GET, "/api/collections/tags", None).await.status, 200);
        srv.su(Method::DELETE, "/api/collections/nope/truncate", None).await.assert_error(404, "The requested resource wasn't found.");
    }

    async fn truncate_blocked_by_required_relation_changes_nothing(srv) {
        let tags = srv.create_collection(tags_def()).await;
        srv.create_collection(json!({"name": "posts", "fields": [
            {"name": "tag", "type": "relation", "collectionId": tags["id"], "required": true}
        ]})).await;
        let t1 = srv.create_record("tags", json!({"title": "t1"})).await["id"].clone();
        srv.create_record("tags", json!({"title": "t2"})).await;
        srv.create_record("posts", json!({"tag": t1})).await;
        let r = srv.su(Method::DELETE, "/api/collections/tags/truncate", None).await;
        assert_eq!(r.status, 400, "{}", r.body);
        r.assert_error_shape();
        assert_eq!(count(&srv, "tags").await, 2, "a failed truncate deletes nothing");
        assert_eq!(count(&srv, "posts").await, 1);
    }

    async fn unique_and_plain_indexes(srv) {
        let col = srv
            .create_collection(json!({"name": "posts", "fields": [{"name": "title", "type": "text"}, {"name": "slug", "type": "text"}],
                "indexes": ["CREATE UNIQUE INDEX idx_posts_slug ON posts (slug)", "CREATE INDEX idx_posts_title ON posts (title)"]}))
            .await;
        let idx = col["indexes"].as_array().expect("indexes");
        assert_eq!(idx.len(), 2, "{}", col["indexes"]);
        let s0 = idx[0].as_str().expect("index");
        assert!(s0.starts_with("CREATE UNIQUE INDEX") && s0.contains("idx_posts_slug") && s0.contains("slug"), "{s0}");
        let s1 = idx[1].as_str().expect("index");
        assert!(s1.starts_with("CREATE INDEX") && s1.contains("idx_posts_title"), "{s1}");

        let a = srv.create_record("posts", json!({"title": "same", "slug": "a"})).await;
        srv.create_record("posts", json!({"title": "same", "slug": "b"})).await;
        let r = srv.su(Method::POST, "/api/collections/posts/records", Some(json!({"title": "x", "slug": "a"}))).await;
        r.assert_error(400, "Failed to create record.");
        assert_eq!(r.body["data"], json!({"slug": {"code": "validation_not_unique", "message": "Value must be unique."}}));
        let r = srv
            .su(Method::PATCH, &format!("/api/collections/posts/records/{}", a["id"].as_str().expect("id")), Some(json!({"slug": "b"})))
            .await;
        r.assert_error(400, "Failed to update record.");
        assert_eq!(r.code_at("/slug"), Some("validation_not_unique"));
        assert_eq!(count(&srv, "posts").await, 2);

        // The unique index survives a rename of the collection and is enforced on the new table.
        let r = srv.su(Method::PATCH, "/api/collections/posts", Some(json!({"name": "articles"}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = srv.su(Method::POST, "/api/collections/articles/records", Some(json!({"slug": "a"}))).await;
        assert_eq!(r.code_at("/slug"), Some("validation_not_unique"), "{}", r.body);
        // Dropping the index allows duplicates.
        let r = srv.su(Method::PATCH, "/api/collections/articles", Some(json!({"indexes": []}))).await;
        assert_eq!((r.status, r.body["indexes"].clone()), (200, json!([])));
        srv.create_record("articles", json!({"slug": "a"})).await;
        assert_eq!(count(&srv, "articles").await, 3);
        // Adding a unique index over duplicate data fails and leaves the collection as it was.
        let r = srv.su(Method::PATCH, "/api/collections/articles", Some(json!({"indexes": ["CREATE UNIQUE INDEX idx_u ON articles (slug)"]}))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        r.assert_error_shape();
        assert_eq!(srv.su(Method::GET, "/api/collections/articles", None).await.body["indexes"], json!([]));
        assert_eq!(count(&srv, "articles").await, 3);
    }

    async fn invalid_collection_names(srv) {
        let long = "a".repeat(256);
        let cases: Vec<(Value, &str)> = vec![
            (json!(""), "validation_required"),
            (json!("has space"), "validation_match_invalid"),
            (json!("a-b"), "validation_match_invalid"),
            (json!("ünïcode"), "validation_match_invalid"),
            (json!("posts\"; DROP TABLE x; --"), "validation_match_invalid"),
            (json!("x_via_y"), "validation_found_via"),
            (json!(long), "validation_length_out_of_range"),
        ];
        for (name, code) in cases {
            let r = create_err(&srv, json!({"name": name})).await;
            assert_eq!(r.body["message"], "Failed to create collection.");
            assert_eq!(r.code_at("/name"), Some(code), "{name}: {}", r.body);
        }
        srv.create_collection(tags_def()).await;
        for dup in ["tags", "TAGS", "Tags"] {
            let r = srv.su(Method::POST, "/api/collections", Some(json!({"name": dup}))).await;
            r.assert_error(400, "Failed to create collection.");
            assert_eq!(r.body["data"], json!({"name": {"code": "validation_collection_name_exists", "message": "Collection name must be unique (case insensitive)."}}));
        }
        // Names of system tables are taken too.
        for sys in ["_superusers", "_collections", "_params"] {
            let r = srv.su(Method::POST, "/api/collections", Some(json!({"name": sys}))).await;
            assert_eq!(r.code_at("/name"), Some("validation_collection_name_exists"), "{sys}: {}", r.body);
        }
        // A name that is not a string is a formatting error.
        let r = srv.su(Method::POST, "/api/collections", Some(json!({"name": 12}))).await;
        assert_eq!(r.status, 400);
        r.assert_error_shape();
    }

    async fn invalid_field_names_and_types(srv) {
        let r = create_err(&srv, json!({"name": "x1", "fields": [
            {"name": "expand", "type": "text"},
            {"name": "collectionId", "type": "text"},
            {"name": "bad name", "type": "text"},
            {"name": "ünï", "type": "text"},
            {"name": "null", "type": "text"},
            {"name": "a_via_b", "type": "text"},
            {"name": "f".repeat(101), "type": "text"},
            {"name": "", "type": "text"}
        ]})).await;
        r.assert_error(400, "Failed to create collection.");
        // Index 0 is the automatic id field.
        let codes: Vec<Option<&str>> = (1..=8).map(|i| r.code_at(&format!("/fields/{i}/name"))).collect();
        assert_eq!(codes, [
            Some("validation_not_in_invalid"), Some("validation_not_in_invalid"), Some("validation_match_invalid"),
            Some("validation_match_invalid"), Some("validation_not_in_invalid"), Some("validation_found_via"),
            Some("validation_length_out_of_range"), Some("validation_required"),
        ], "{}", r.body);

        // Duplicates, case-insensitively: the later one is reported, as PocketBase does.
        let r = create_err(&srv, json!({"name": "x2", "fields": [{"name": "a", "type": "text"}, {"name": "A", "type": "number"}]})).await;
        assert_eq!(r.body["data"], json!({"fields": {"2": {"name": {"code": "validation_duplicated_field_name",
            "message": "Duplicated or invalid field name A.", "params": {"fieldName": "A"}}}}}));

        // An unknown field type cannot even be loaded.
        let r = create_err(&srv, json!({"name": "x3", "fields": [{"name": "a", "type": "nope"}]})).await;
        assert_eq!(r.body, json!({"data": {}, "message": "Failed to load the submitted data due to invalid formatting.", "status": 400}));
        let r = create_err(&srv, json!({"name": "x4", "fields": [{"name": "a"}]})).await;
        assert_eq!(r.body["message"], "Failed to load the submitted data due to invalid formatting.");
        let r = create_err(&srv, json!({"name": "x5", "fields": "text"})).await;
        assert_eq!(r.body["message"], "Failed to load the submitted data due to invalid formatting.");
        // Options that make no sense.
        let r = create_err(&srv, json!({"name": "x6", "fields": [{"name": "s", "type": "select", "values": []}]})).await;
        assert_eq!(r.code_at("/fields/1/values"), Some("validation_required"), "{}", r.body);
        let r = create_err(&srv, json!({"name": "x7", "fields": [{"name": "r", "type": "relation", "collectionId": "nope"}]})).await;
        assert!(r.body["data"]["fields"]["1"]["collectionId"].is_object(), "{}", r.body);
        let r = create_err(&srv, json!({"name": "x8", "fields": [{"name": "t", "type": "text", "pattern": "("}]})).await;
        assert!(r.body["data"]["fields"]["1"]["pattern"].is_object(), "{}", r.body);
        let r = create_err(&srv, json!({"name": "x9", "fields": [{"name": "d", "type": "autodate"}]})).await;
        assert!(r.body["data"]["fields"]["1"].is_object(), "{}", r.body);
    }

    async fn bad_index_sql_is_rejected_and_changes_nothing(srv) {
        srv.create_collection(tags_def()).await;
        srv.create_record("tags", json!({"title": "survivor"})).await;
        for bad in [
            "CREATE INDEX x ON t (title); DROP TABLE tags",
            "CREATE INDEX x ON x3 (title); DROP TABLE tags; --",
            "DROP TABLE tags",
            "CREATE INDEX x ON x3 (title) WHERE title = (SELECT 1)",
            "CREATE INDEX x ON x3 (nope)",
            "CREATE INDEX `x\"; DROP TABLE tags; --` ON x3 (title)",
            "CREATE INDEX x ON x3 (title) WHERE title = 'x",
        ] {
            let r = create_err(&srv, json!({"name": "x3", "fields": [{"name": "title", "type": "text"}], "indexes": [bad]})).await;
            assert_eq!(r.body["message"], "Failed to create collection.", "{bad}: {}", r.body);
            assert_eq!(r.code_at("/indexes/0"), Some("validation_invalid_index_expression"), "{bad}: {}", r.body);
            // Existing data is intact.
            assert_eq!(count(&srv, "tags").await, 1, "{bad}");
        }
        // The same on update of an existing collection.
        let r = srv.su(Method::PATCH, "/api/collections/tags", Some(json!({"indexes": ["CREATE INDEX x ON tags (title); DROP TABLE tags"]}))).await;
        r.assert_error(400, "Failed to update collection.");
        assert_eq!(r.code_at("/indexes/0"), Some("validation_invalid_index_expression"));
        assert_eq!(count(&srv, "tags").await, 1);
        assert_eq!(srv.su(Method::GET, "/api/collections/tags", None).await.body["indexes"], json!([]));
        // Two indexes with the same name.
        let r = create_err(&srv, json!({"name": "x4", "fields": [{"name": "a", "type": "text"}],
            "indexes": ["CREATE INDEX idx_a ON x4 (a)", "CREATE INDEX idx_a ON x4 (a)"]})).await;
        assert!(r.body["data"]["indexes"].is_object(), "{}", r.body);
        // Quoted identifiers and a partial index are fine.
        let c = srv.create_collection(json!({"name": "x5", "fields": [{"name": "a", "type": "text"}],
            "indexes": ["CREATE UNIQUE INDEX `idx_x5_a` ON `x5` (`a`) WHERE `a` != ''"]})).await;
        assert_eq!(c["indexes"].as_array().map(Vec::len), Some(1));
        srv.create_record("x5", json!({})).await;
        srv.create_record("x5", json!({})).await;
        srv.create_record("x5", json!({"a": "v"})).await;
        let r = srv.su(Method::POST, "/api/collections/x5/records", Some(json!({"a": "v"}))).await;
        assert_eq!(r.code_at("/a"), Some("validation_not_unique"), "{}", r.body);
    }

    async fn rules_are_stored_exactly(srv) {
        let c = srv
            .create_collection(json!({"name": "r1", "listRule": null, "viewRule": "", "createRule": "", "updateRule": null}))
            .await;
        assert_eq!(
            (c["listRule"].clone(), c["viewRule"].clone(), c["createRule"].clone(), c["updateRule"].clone(), c["deleteRule"].clone()),
            (Value::Null, json!(""), json!(""), Value::Null, Value::Null)
        );
        let v = srv.su(Method::GET, "/api/collections/r1", None).await.body;
        assert_eq!(v, c);
        // Flip them.
        let r = srv.su(Method::PATCH, "/api/collections/r1", Some(json!({"listRule": "", "viewRule": null, "deleteRule": ""}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = srv.su(Method::GET, "/api/collections/r1", None).await.body;
        assert_eq!(
            (v["listRule"].clone(), v["viewRule"].clone(), v["createRule"].clone(), v["updateRule"].clone(), v["deleteRule"].clone()),
            (json!(""), Value::Null, json!(""), Value::Null, json!(""))
        );
        // A rule that is neither a string nor null is refused.
        let r = srv.su(Method::PATCH, "/api/collections/r1", Some(json!({"listRule": 5}))).await;
        r.assert_error(400, "Failed to update collection.");
        assert!(r.body["data"]["listRule"].is_object());
        assert_eq!(srv.su(Method::GET, "/api/collections/r1", None).await.body["listRule"], json!(""));
    }

    async fn only_superusers_may_use_the_collections_api(srv) {
        srv.create_collection(tags_def()).await;
        let member = srv.member_token().await;
        let calls: Vec<(Method, &str, Option<Value>)> = vec![
            (Method::GET, "/api/collections", None),
            (Method::POST, "/api/collections", Some(json!({"name": "sneaky"}))),
            (Method::GET, "/api/collections/tags", None),
            (Method::PATCH, "/api/collections/tags", Some(json!({"listRule": null}))),
            (Method::DELETE, "/api/collections/tags/truncate", None),
            (Method::DELETE, "/api/collections/tags", None),
        ];
        for (m, path, body) in calls {
            let g = srv.send(m.clone(), path, None, body.clone()).await;
            g.assert_error(401, "The request requires valid record authorization token.");
            let u = srv.send(m.clone(), path, Some(&member), body).await;
            u.assert_error(403, "The authorized record is not allowed to perform this action.");
        }
        // Nothing happened.
        assert_eq!(srv.su(Method::GET, "/api/collections/sneaky", None).await.status, 404);
        let t = srv.su(Method::GET, "/api/collections/tags", None).await;
        assert_eq!((t.status, t.body["listRule"].clone()), (200, json!("")));
    }
}
