//! The records API: list paging and sorting, view, create in JSON / multipart / urlencoded,
//! formats, validation codes, modifiers, delete cascades, and null vs "" rules.

use galley_testkit::{both_engines, is_date, is_record_id, keys, Method, Reply, TestServer};
use serde_json::{json, Value};

async fn setup_tags(srv: &TestServer) -> String {
    let c = srv
        .create_collection(json!({"name": "tags", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [{"name": "title", "type": "text"}]}))
        .await;
    c["id"].as_str().expect("id").to_owned()
}

/// `posts` with every field type and open rules.
async fn setup_posts(srv: &TestServer) -> String {
    let tid = setup_tags(srv).await;
    srv.create_collection(json!({"name": "posts", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "views", "type": "number"},
            {"name": "published", "type": "bool"},
            {"name": "contact", "type": "email"},
            {"name": "site", "type": "url"},
            {"name": "body", "type": "editor"},
            {"name": "pubdate", "type": "date"},
            {"name": "status", "type": "select", "values": ["draft", "live"]},
            {"name": "labels", "type": "select", "values": ["a", "b", "c", "d"], "maxSelect": 4},
            {"name": "meta", "type": "json"},
            {"name": "author", "type": "relation", "collectionId": tid},
            {"name": "tags", "type": "relation", "collectionId": tid, "maxSelect": 5},
            {"name": "loc", "type": "geoPoint"},
            {"name": "created", "type": "autodate", "onCreate": true},
            {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
        ]}))
        .await;
    tid
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

async fn list(srv: &TestServer, query: &str) -> Reply {
    srv.su(
        Method::GET,
        &format!("/api/collections/posts/records{query}"),
        None,
    )
    .await
}

fn titles(r: &Reply) -> Vec<String> {
    r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["title"].as_str().expect("title").to_owned())
        .collect()
}

both_engines! {
    async fn list_paging_and_totals(srv) {
        setup_posts(&srv).await;
        for i in 1..=5 {
            srv.create_record("posts", json!({"title": format!("p{i}"), "views": i})).await;
        }
        let r = list(&srv, "").await;
        assert_eq!(keys(&r.body), ["items", "page", "perPage", "totalItems", "totalPages"]);
        assert_eq!((r.body["page"].clone(), r.body["perPage"].clone(), r.body["totalItems"].clone(), r.body["totalPages"].clone()), (json!(1), json!(30), json!(5), json!(1)));
        let r = list(&srv, "?page=2&perPage=2&sort=title").await;
        assert_eq!(titles(&r), ["p3", "p4"]);
        assert_eq!((r.body["page"].clone(), r.body["perPage"].clone(), r.body["totalItems"].clone(), r.body["totalPages"].clone()), (json!(2), json!(2), json!(5), json!(3)));
        let r = list(&srv, "?page=3&perPage=2&sort=title").await;
        assert_eq!(titles(&r), ["p5"]);
        let r = list(&srv, "?page=99").await;
        assert_eq!(r.body, json!({"items": [], "page": 99, "perPage": 30, "totalItems": 5, "totalPages": 1}));
        let r = list(&srv, "?page=0&perPage=0").await;
        assert_eq!((r.body["page"].clone(), r.body["perPage"].clone()), (json!(1), json!(30)));
        let r = list(&srv, "?perPage=1000").await;
        assert_eq!(r.body["perPage"], 1000);
        // Above 1,000 PocketBase answers 1,000 (checked on 0.40.6).
        let r = list(&srv, "?perPage=5000").await;
        assert_eq!((r.status, r.body["perPage"].clone(), r.body["totalItems"].clone()), (200, json!(1000), json!(5)));
        let r = list(&srv, "?skipTotal=1&perPage=2&sort=title").await;
        assert_eq!((r.body["totalItems"].clone(), r.body["totalPages"].clone()), (json!(-1), json!(-1)));
        assert_eq!(titles(&r), ["p1", "p2"]);
        let r = list(&srv, "?skipTotal=true").await;
        assert_eq!(r.body["totalItems"], -1);
        for bad in ["?page=abc", "?perPage=1.5", "?page=1;DROP"] {
            let r = list(&srv, bad).await;
            assert_eq!(r.status, 400, "{bad}: {}", r.body);
            r.assert_error_shape();
        }
        // Empty collection.
        let r = srv.su(Method::GET, "/api/collections/tags/records", None).await;
        assert_eq!(r.body, json!({"items": [], "page": 1, "perPage": 30, "totalItems": 0, "totalPages": 0}));
    }

    async fn list_sorts_by_several_keys(srv) {
        setup_posts(&srv).await;
        for (t, v) in [("b", 2), ("a", 2), ("c", 1), ("d", 3), ("e", 1)] {
            srv.create_record("posts", json!({"title": t, "views": v})).await;
        }
        assert_eq!(titles(&list(&srv, "?sort=-views,title").await), ["d", "a", "b", "c", "e"]);
        assert_eq!(titles(&list(&srv, "?sort=views,-title").await), ["e", "c", "b", "a", "d"]);
        assert_eq!(titles(&list(&srv, "?sort=%2Bviews,title").await), ["c", "e", "a", "b", "d"]);
        assert_eq!(titles(&list(&srv, "?sort=-title").await), ["e", "d", "c", "b", "a"]);
        for bad in ["nope", "-nope", "title,nope", "title;DROP TABLE posts", "(SELECT 1)"] {
            let r = list(&srv, &format!("?sort={}", bad.replace(' ', "%20"))).await;
            assert_eq!(r.status, 400, "{bad}: {}", r.body);
            r.assert_error_shape();
        }
        assert_eq!(list(&srv, "").await.body["totalItems"], 5);
    }

    async fn fields_picker_drops_unlisted_keys(srv) {
        setup_posts(&srv).await;
        let p = srv.create_record("posts", json!({"title": "hello", "views": 3})).await;
        let r = list(&srv, "?fields=id,title").await;
        assert_eq!(r.body["items"], json!([{"id": p["id"], "title": "hello"}]));
        assert_eq!(r.body["totalItems"], 1);
        let r = srv.su(Method::GET, &format!("/api/collections/posts/records/{}?fields=views", id_of(&p)), None).await;
        assert_eq!(r.body, json!({"views": 3}));
        let r = srv.su(Method::POST, "/api/collections/posts/records?fields=title,collectionName", Some(json!({"title": "x"}))).await;
        assert_eq!(r.body, json!({"title": "x", "collectionName": "posts"}));
    }

    async fn view_returns_the_created_record(srv) {
        setup_posts(&srv).await;
        let p = srv.create_record("posts", json!({"title": "v", "labels": ["b", "a"], "meta": {"k": [1, 2]}})).await;
        let r = srv.su(Method::GET, &format!("/api/collections/posts/records/{}", id_of(&p)), None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, p);
        srv.su(Method::GET, "/api/collections/posts/records/nosuchrecord12", None).await.assert_error(404, "The requested resource wasn't found.");
        srv.guest(Method::GET, "/api/collections/posts/records/x'%20OR%20'1'='1", None).await.assert_error(404, "The requested resource wasn't found.");
    }

    async fn create_json_zero_values_and_formats(srv) {
        setup_posts(&srv).await;
        let r = srv.guest(Method::POST, "/api/collections/posts/records", Some(json!({}))).await;
        assert_eq!(r.status, 200, "create answers 200, not 201: {}", r.body);
        let rec = r.body;
        assert!(is_record_id(&id_of(&rec)), "{}", rec["id"]);
        assert!(is_date(rec["created"].as_str().expect("created")));
        assert_eq!(rec["created"], rec["updated"]);
        let mut rest = rec.clone();
        for k in ["id", "created", "updated"] {
            rest.as_object_mut().expect("obj").remove(k);
        }
        assert_eq!(rest, json!({"author": "", "body": "", "collectionId": rec["collectionId"], "collectionName": "posts", "contact": "",
            "labels": [], "loc": {"lon": 0, "lat": 0}, "meta": null, "pubdate": "", "published": false, "site": "",
            "status": "", "tags": [], "title": "", "views": 0}));
        // Keys come sorted, as PocketBase prints them.
        let order: Vec<&String> = rec.as_object().expect("obj").keys().collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);

        let full = srv.create_record("posts", json!({
            "title": "Hello", "views": 5.5, "published": true, "contact": "a@example.com", "site": "https://example.com/x",
            "body": "<p>x</p>", "pubdate": "2024-01-02T03:04:05Z", "status": "live", "labels": ["a", "b", "a"],
            "meta": {"k": [1, 2], "n": {"x": 1}}, "loc": {"lon": 23.32, "lat": 42.69}, "unknown": "ignored"
        })).await;
        assert_eq!(full["views"], 5.5);
        assert_eq!(full["pubdate"], "2024-01-02 03:04:05.000Z");
        assert_eq!(full["labels"], json!(["a", "b"]), "values are de-duplicated");
        assert_eq!(full["meta"], json!({"k": [1, 2], "n": {"x": 1}}));
        assert_eq!(full["loc"], json!({"lon": 23.32, "lat": 42.69}));
        assert!(full.get("unknown").is_none());
        // Other date layouts normalise to the wire format, in UTC.
        for (input, stored) in [
            ("2024-01-02T05:04:05+02:00", "2024-01-02 03:04:05.000Z"),
            ("2024-01-02 03:04:05.123Z", "2024-01-02 03:04:05.123Z"),
            ("2024-01-02", "2024-01-02 00:00:00.000Z"),
        ] {
            let r = srv.create_record("posts", json!({"pubdate": input})).await;
            assert_eq!(r["pubdate"], stored, "{input}");
        }
        // json values of every kind round-trip exactly.
        for v in [json!("text"), json!(12), json!(true), json!([1, "a", null]), json!({"a": {"b": [{}]}}), json!(-0.5)] {
            let r = srv.create_record("posts", json!({"meta": v})).await;
            assert_eq!(r["meta"], v);
            let back = srv.su(Method::GET, &format!("/api/collections/posts/records/{}", id_of(&r)), None).await;
            assert_eq!(back.body["meta"], v);
        }
        // A JSON-looking string is stored as JSON, anything else as a string.
        assert_eq!(srv.create_record("posts", json!({"meta": "[1,2]"})).await["meta"], json!([1, 2]));
        assert_eq!(srv.create_record("posts", json!({"meta": "{bad"})).await["meta"], json!("{bad"));
        // Single-value select and relation keep the last element of an array.
        assert_eq!(srv.create_record("posts", json!({"status": ["draft", "live"]})).await["status"], "live");
    }

    async fn create_multipart_and_urlencoded(srv) {
        setup_posts(&srv).await;
        let form = reqwest::multipart::Form::new()
            .text("title", "12")
            .text("views", "12")
            .text("published", "true")
            .text("labels", "a")
            .text("labels", "c")
            .text("@jsonPayload", r#"{"meta": {"deep": [1, {"x": "true"}]}, "status": "live"}"#);
        let resp = srv.request(Method::POST, "/api/collections/posts/records").header("Authorization", &srv.token).multipart(form).send().await.expect("send");
        let r = TestServer::read(resp).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["title"], "12", "a number-looking value in a text field stays text");
        assert_eq!(r.body["views"], 12);
        assert_eq!(r.body["published"], true);
        assert_eq!(r.body["labels"], json!(["a", "c"]));
        assert_eq!(r.body["meta"], json!({"deep": [1, {"x": "true"}]}), "@jsonPayload is merged without inference");
        assert_eq!(r.body["status"], "live");

        let r = srv
            .send_raw(Method::POST, "/api/collections/posts/records", Some(&srv.token), "application/x-www-form-urlencoded",
                "title=form&views=7&published=false&labels=b&labels=d&pubdate=2024-01-02T03%3A04%3A05Z")
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!((r.body["title"].clone(), r.body["views"].clone(), r.body["published"].clone()), (json!("form"), json!(7), json!(false)));
        assert_eq!(r.body["labels"], json!(["b", "d"]));
        assert_eq!(r.body["pubdate"], "2024-01-02 03:04:05.000Z");
        assert_eq!(srv.all_records("posts").await.len(), 2);
    }

    async fn custom_ids(srv) {
        setup_posts(&srv).await;
        let r = srv.create_record("posts", json!({"id": "customid1234567", "title": "c"})).await;
        assert_eq!(r["id"], "customid1234567");
        let r = srv.su(Method::POST, "/api/collections/posts/records", Some(json!({"id": "customid1234567"}))).await;
        r.assert_error(400, "Failed to create record.");
        assert_eq!(r.body["data"], json!({"id": {"code": "validation_not_unique", "message": "Value must be unique."}}));
        let r = srv.su(Method::POST, "/api/collections/posts/records", Some(json!({"id": "abc"}))).await;
        assert_eq!(r.body["data"], json!({"id": {"code": "validation_min_text_constraint", "message": "Must be at least 15 character(s).", "params": {"min": 15}}}));
        let r = srv.su(Method::POST, "/api/collections/posts/records", Some(json!({"id": "UPPERCASE123456"}))).await;
        assert_eq!(r.code_at("/id"), Some("validation_invalid_format"));
        // The id cannot be changed by an update.
        let r = srv.su(Method::PATCH, "/api/collections/posts/records/customid1234567", Some(json!({"id": "otherid12345678", "title": "d"}))).await;
        assert_eq!((r.status, r.body["id"].clone(), r.body["title"].clone()), (200, json!("customid1234567"), json!("d")));
        assert_eq!(srv.all_records("posts").await.len(), 1);
    }

    async fn autodate_ignores_client_values(srv) {
        setup_posts(&srv).await;
        let r = srv.create_record("posts", json!({"created": "2000-01-01 00:00:00.000Z", "updated": "2000-01-01 00:00:00.000Z"})).await;
        assert_ne!(r["created"], "2000-01-01 00:00:00.000Z");
        assert_ne!(r["updated"], "2000-01-01 00:00:00.000Z");
        assert!(r["created"].as_str() > Some("2020"));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let u = srv
            .su(Method::PATCH, &format!("/api/collections/posts/records/{}", id_of(&r)), Some(json!({"title": "x", "created": "2001-01-01 00:00:00.000Z", "updated": "2001-01-01 00:00:00.000Z"})))
            .await;
        assert_eq!(u.status, 200, "{}", u.body);
        assert_eq!(u.body["created"], r["created"], "onCreate only: unchanged");
        assert!(u.body["updated"].as_str() > r["updated"].as_str(), "onUpdate: moved forward: {} vs {}", u.body["updated"], r["updated"]);
        assert!(is_date(u.body["updated"].as_str().expect("updated")));
    }

    async fn every_validation_error_code(srv) {
        let tid = setup_tags(&srv).await;
        let t1 = id_of(&srv.create_record("tags", json!({"title": "t1"})).await);
        let t2 = id_of(&srv.create_record("tags", json!({"title": "t2"})).await);
        let t3 = id_of(&srv.create_record("tags", json!({"title": "t3"})).await);
        srv.create_collection(json!({"name": "v", "createRule": "", "updateRule": "", "fields": [
            {"name": "req", "type": "text", "required": true},
            {"name": "short", "type": "text", "min": 3, "max": 5},
            {"name": "num", "type": "number", "min": 1, "max": 10, "onlyInt": true},
            {"name": "mail", "type": "email"},
            {"name": "link", "type": "url"},
            {"name": "one", "type": "select", "values": ["a", "b"]},
            {"name": "many", "type": "select", "values": ["a", "b", "c"], "maxSelect": 2},
            {"name": "rel", "type": "relation", "collectionId": tid, "maxSelect": 2, "minSelect": 2},
            {"name": "data", "type": "json"},
            {"name": "geo", "type": "geoPoint"}
        ]})).await;
        let try_create = |body: Value| {
            let srv = &srv;
            async move { srv.guest(Method::POST, "/api/collections/v/records", Some(body)).await }
        };
        let r = try_create(json!({})).await;
        r.assert_error(400, "Failed to create record.");
        assert_eq!(r.body["data"], json!({"req": {"code": "validation_required", "message": "Cannot be blank."}}));

        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"short": "ab"}), "short", "validation_min_text_constraint"),
            (json!({"short": "abcdef"}), "short", "validation_max_text_constraint"),
            (json!({"num": 0.5}), "num", "validation_only_int_constraint"),
            (json!({"num": -3}), "num", "validation_min_number_constraint"),
            (json!({"num": 11}), "num", "validation_max_number_constraint"),
            (json!({"mail": "not-an-email"}), "mail", "validation_is_email"),
            (json!({"link": "not a url"}), "link", "validation_invalid_url"),
            (json!({"one": "z"}), "one", "validation_invalid_value"),
            (json!({"many": ["a", "z"]}), "many", "validation_invalid_value"),
            (json!({"many": ["a", "b", "c"]}), "many", "validation_too_many_values"),
            (json!({"rel": ["nosuchrecord12", t1.clone()]}), "rel", "validation_missing_rel_records"),
            (json!({"rel": [t1.clone(), t2.clone(), t3.clone()]}), "rel", "validation_too_many_values"),
            (json!({"rel": [t1.clone()]}), "rel", "validation_not_enough_values"),
            (json!({"geo": {"lon": 0, "lat": 91}}), "geo", "validation_invalid_latitude"),
            (json!({"geo": {"lon": 181, "lat": 0}}), "geo", "validation_invalid_longitude"),
        ];
        for (extra, field, code) in cases {
            let mut body = json!({"req": "x"});
            for (k, v) in extra.as_object().expect("obj") {
                body[k] = v.clone();
            }
            let r = try_create(body.clone()).await;
            r.assert_error(400, "Failed to create record.");
            assert_eq!(keys(&r.body["data"]), [field], "{body}: {}", r.body);
            assert_eq!(r.code_at(&format!("/{field}")), Some(code), "{body}: {}", r.body);
        }
        // Messages and params as PocketBase words them.
        let r = try_create(json!({"req": "x", "short": "abcdef", "mail": "nope"})).await;
        assert_eq!(r.body["data"], json!({
            "mail": {"code": "validation_is_email", "message": "Must be a valid email address."},
            "short": {"code": "validation_max_text_constraint", "message": "Must be no more than 5 character(s).", "params": {"max": 5}}
        }));
        // JSON nested deeper than 64 levels is refused; shallower is fine.
        let mut deep = json!(1);
        for _ in 0..100 {
            deep = json!([deep]);
        }
        let r = try_create(json!({"req": "x", "data": deep})).await;
        assert_eq!(r.code_at("/data"), Some("validation_json_depth_limit"), "{}", r.body);
        let mut ok = json!("leaf");
        for _ in 0..30 {
            ok = json!({"k": ok});
        }
        let r = try_create(json!({"req": "x", "data": ok.clone()})).await;
        assert_eq!((r.status, r.body["data"].clone()), (200, ok));
        // A valid record passes, and the failures wrote nothing.
        let r = try_create(json!({"req": "x", "short": "abc", "num": 10, "mail": "a@b.co", "link": "https://x.io",
            "one": "b", "many": ["c", "a"], "rel": [t2, t1], "geo": {"lon": -180, "lat": 90}})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["many"], json!(["c", "a"]));
        assert_eq!(srv.all_records("v").await.len(), 2);
        // Update validation uses its own message.
        let r = srv.guest(Method::PATCH, &format!("/api/collections/v/records/{}", id_of(&r.body)), Some(json!({"req": ""}))).await;
        r.assert_error(400, "Failed to update record.");
        assert_eq!(r.code_at("/req"), Some("validation_required"));
    }

    async fn update_modifiers(srv) {
        let tid = setup_posts(&srv).await;
        let _ = tid;
        let t: Vec<String> = {
            let mut v = Vec::new();
            for i in 0..3 {
                v.push(id_of(&srv.create_record("tags", json!({"title": format!("t{i}")})).await));
            }
            v
        };
        let p = srv.create_record("posts", json!({"views": 5, "labels": ["b"], "tags": [t[0].clone()]})).await;
        let path = format!("/api/collections/posts/records/{}", id_of(&p));
        let patch = |body: Value| {
            let (srv, path) = (&srv, &path);
            async move {
                let r = srv.su(Method::PATCH, path, Some(body)).await;
                assert_eq!(r.status, 200, "{}", r.body);
                r.body
            }
        };
        assert_eq!(patch(json!({"views+": 10})).await["views"], 15);
        assert_eq!(patch(json!({"views-": 3})).await["views"], 12);
        assert_eq!(patch(json!({"views-": 0.5})).await["views"], 11.5);
        assert_eq!(patch(json!({"views": 1, "views+": 5})).await["views"], 6);
        assert_eq!(patch(json!({"labels+": "c"})).await["labels"], json!(["b", "c"]));
        assert_eq!(patch(json!({"+labels": ["a"]})).await["labels"], json!(["a", "b", "c"]));
        assert_eq!(patch(json!({"labels+": ["a", "d"]})).await["labels"], json!(["a", "b", "c", "d"]), "appending an existing value keeps one");
        assert_eq!(patch(json!({"labels-": ["b", "d"]})).await["labels"], json!(["a", "c"]));
        assert_eq!(patch(json!({"tags+": t[1].clone()})).await["tags"], json!([t[0], t[1]]));
        assert_eq!(patch(json!({"tags-": [t[0].clone()], "+tags": [t[2].clone()]})).await["tags"], json!([t[2], t[1]]));
        // An invalid result is still validated.
        let r = srv.su(Method::PATCH, &path, Some(json!({"labels+": "zzz"}))).await;
        assert_eq!(r.code_at("/labels"), Some("validation_invalid_value"), "{}", r.body);
        let r = srv.su(Method::PATCH, &path, Some(json!({"tags+": "nosuchrecord12"}))).await;
        assert_eq!(r.code_at("/tags"), Some("validation_missing_rel_records"), "{}", r.body);
        // What is stored is what was last answered.
        let v = srv.su(Method::GET, &path, None).await.body;
        assert_eq!((v["views"].clone(), v["labels"].clone(), v["tags"].clone()), (json!(6), json!(["a", "c"]), json!([t[2], t[1]])));
        srv.su(Method::PATCH, "/api/collections/posts/records/nosuchrecord12", Some(json!({"views": 1}))).await.assert_error(404, "The requested resource wasn't found.");
    }

    async fn delete_with_cascade(srv) {
        let tid = setup_tags(&srv).await;
        srv.create_collection(json!({"name": "posts", "fields": [
            {"name": "title", "type": "text"},
            {"name": "tags", "type": "relation", "collectionId": tid, "maxSelect": 5},
            {"name": "main", "type": "relation", "collectionId": tid}
        ]})).await;
        let pid = srv.su(Method::GET, "/api/collections/posts", None).await.body["id"].clone();
        srv.create_collection(json!({"name": "notes", "fields": [
            {"name": "post", "type": "relation", "collectionId": pid, "cascadeDelete": true}
        ]})).await;
        srv.create_collection(json!({"name": "reviews", "fields": [
            {"name": "post", "type": "relation", "collectionId": pid, "required": true}
        ]})).await;
        let t1 = id_of(&srv.create_record("tags", json!({"title": "t1"})).await);
        let t2 = id_of(&srv.create_record("tags", json!({"title": "t2"})).await);
        let p1 = id_of(&srv.create_record("posts", json!({"title": "p1", "tags": [t1.clone(), t2.clone()], "main": t1.clone()})).await);
        let p2 = id_of(&srv.create_record("posts", json!({"title": "p2"})).await);
        srv.create_record("notes", json!({"post": p1.clone()})).await;
        srv.create_record("notes", json!({"post": p2.clone()})).await;
        srv.create_record("reviews", json!({"post": p2.clone()})).await;

        // Deleting a tag removes it from the multi relation and empties the single one.
        let r = srv.su(Method::DELETE, &format!("/api/collections/tags/records/{t1}"), None).await;
        assert_eq!((r.status, &r.body), (204, &Value::Null));
        let p = srv.su(Method::GET, &format!("/api/collections/posts/records/{p1}"), None).await.body;
        assert_eq!((p["tags"].clone(), p["main"].clone()), (json!([t2]), json!("")));
        srv.su(Method::GET, &format!("/api/collections/tags/records/{t1}"), None).await.assert_error(404, "The requested resource wasn't found.");

        // cascadeDelete: the post's note goes with it.
        let r = srv.su(Method::DELETE, &format!("/api/collections/posts/records/{p1}"), None).await;
        assert_eq!(r.status, 204, "{}", r.body);
        let notes = srv.all_records("notes").await;
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0]["post"], json!(p2));

        // A required reference blocks the delete, and nothing at all is deleted.
        let r = srv.su(Method::DELETE, &format!("/api/collections/posts/records/{p2}"), None).await;
        r.assert_error(400, "Failed to delete record. Make sure that the record is not part of a required relation reference.");
        assert_eq!(r.body["data"], json!({}));
        assert_eq!(srv.su(Method::GET, &format!("/api/collections/posts/records/{p2}"), None).await.status, 200);
        assert_eq!(srv.all_records("notes").await.len(), 1, "the cascade was rolled back too");
        assert_eq!(srv.all_records("reviews").await.len(), 1);
        srv.su(Method::DELETE, "/api/collections/posts/records/nosuchrecord12", None).await.assert_error(404, "The requested resource wasn't found.");
    }

    async fn null_and_empty_rules(srv) {
        srv.create_collection(json!({"name": "locked", "fields": [{"name": "title", "type": "text"}]})).await;
        srv.create_collection(json!({"name": "open", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [{"name": "title", "type": "text"}]})).await;
        let member = srv.member_token().await;
        let locked = id_of(&srv.create_record("locked", json!({"title": "secret"})).await);
        const ONLY: &str = "Only superusers can perform this action.";
        for token in [None, Some(member.as_str())] {
            let calls: Vec<(Method, String, Option<Value>)> = vec![
                (Method::GET, "/api/collections/locked/records".into(), None),
                (Method::GET, format!("/api/collections/locked/records/{locked}"), None),
                (Method::POST, "/api/collections/locked/records".into(), Some(json!({"title": "x"}))),
                (Method::PATCH, format!("/api/collections/locked/records/{locked}"), Some(json!({"title": "x"}))),
                (Method::DELETE, format!("/api/collections/locked/records/{locked}"), None),
            ];
            for (m, path, body) in calls {
                let r = srv.send(m.clone(), &path, token, body).await;
                r.assert_error(403, ONLY);
                assert_eq!(r.body["data"], json!({}));
            }
        }
        // Nothing changed; the superuser bypasses the locked rules.
        let all = srv.all_records("locked").await;
        assert_eq!((all.len(), all[0]["title"].clone()), (1, json!("secret")));
        let r = srv.su(Method::PATCH, &format!("/api/collections/locked/records/{locked}"), Some(json!({"title": "su"}))).await;
        assert_eq!(r.body["title"], "su");

        // "" lets anyone through.
        let r = srv.guest(Method::POST, "/api/collections/open/records", Some(json!({"title": "g"}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let id = id_of(&r.body);
        let r = srv.guest(Method::GET, "/api/collections/open/records", None).await;
        assert_eq!((r.status, r.body["totalItems"].clone()), (200, json!(1)));
        let r = srv.guest(Method::GET, &format!("/api/collections/open/records/{id}"), None).await;
        assert_eq!(r.body["title"], "g");
        let r = srv.send(Method::PATCH, &format!("/api/collections/open/records/{id}"), Some(&member), Some(json!({"title": "m"}))).await;
        assert_eq!(r.body["title"], "m");
        let r = srv.guest(Method::DELETE, &format!("/api/collections/open/records/{id}"), None).await;
        assert_eq!(r.status, 204);
        assert_eq!(srv.all_records("open").await.len(), 0);
        let r = srv.su(Method::DELETE, &format!("/api/collections/locked/records/{locked}"), None).await;
        assert_eq!(r.status, 204);
    }
}
