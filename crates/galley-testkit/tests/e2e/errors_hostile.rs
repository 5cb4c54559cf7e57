//! Malformed and hostile input on every endpoint: the answer is PocketBase's error shape, the
//! server keeps answering, and the data is intact.

use galley_testkit::{both_engines, both_engines_with, Method, TestServer};
use serde_json::json;

const GENERIC: &str = "Something went wrong while processing your request.";

async fn setup(srv: &TestServer) -> String {
    srv.create_collection(json!({"name": "posts", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "meta", "type": "json"}]}))
        .await;
    srv.enable_batch().await;
    srv.create_record("posts", json!({"title": "keep"})).await["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// The one record is still there, unchanged, and the server answers.
async fn intact(srv: &TestServer, id: &str) {
    srv.assert_healthy().await;
    let all = srv.all_records("posts").await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        (all[0]["id"].as_str(), all[0]["title"].as_str()),
        (Some(id), Some("keep"))
    );
    assert_eq!(
        srv.su(Method::GET, "/api/collections/posts", None)
            .await
            .status,
        200
    );
}

/// Every endpoint that reads a body.
fn body_endpoints(id: &str) -> Vec<(Method, String)> {
    vec![
        (Method::POST, "/api/collections/posts/records".into()),
        (
            Method::PATCH,
            format!("/api/collections/posts/records/{id}"),
        ),
        (Method::POST, "/api/collections".into()),
        (Method::PATCH, "/api/collections/posts".into()),
        (Method::PATCH, "/api/settings".into()),
        (Method::POST, "/api/batch".into()),
        (
            Method::POST,
            "/api/collections/_superusers/auth-with-password".into(),
        ),
    ]
}

fn nested(depth: usize) -> String {
    format!(
        "{{\"title\":\"x\",\"meta\":{}1{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

both_engines! {
    async fn malformed_bodies_everywhere(srv) {
        let id = setup(&srv).await;
        let token = srv.token.clone();
        for (m, path) in body_endpoints(&id) {
            for (ct, raw) in [
                ("application/json", "{\"title\":".to_owned()),
                ("application/json", "{\"title\": \"x\",}".to_owned()),
                ("application/json", "[{\"title\":\"x\"}]".to_owned()),
                ("application/json", "\"just a string\"".to_owned()),
                ("application/json", "12".to_owned()),
                ("application/json", "\u{0}\u{1}\u{2}".to_owned()),
                ("application/json", "{\"title\": \"\\ud800\"}".to_owned()),
                ("application/json", nested(100_000)),
                ("multipart/form-data; boundary=xyz", "--xyz\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nx".to_owned()),
                ("multipart/form-data", "garbage".to_owned()),
                ("text/plain", "title=x".to_owned()),
                ("application/xml", "<title>x</title>".to_owned()),
            ] {
                let r = srv.send_raw(m.clone(), &path, Some(&token), ct, raw.clone()).await;
                assert_eq!(r.status, 400, "{m} {path} {ct} {:.60}: {}", raw, r.body);
                r.assert_error_shape();
                if ct == "application/json" && raw.starts_with('{') {
                    assert_eq!(r.body["message"], GENERIC, "{m} {path} {raw:.40}");
                }
                if ct == "text/plain" {
                    assert!(r.body["message"].as_str().expect("message").starts_with("Unsupported Content-Type"), "{}", r.body);
                }
            }
        }
        intact(&srv, &id).await;
        // The batch and settings are unchanged too.
        assert_eq!(srv.su(Method::GET, "/api/settings", None).await.body["batch"]["enabled"], true);
    }

    async fn deep_json_is_a_400_not_a_crash(srv) {
        let id = setup(&srv).await;
        for depth in [200, 10_000, 100_000] {
            let r = srv.send_raw(Method::POST, "/api/collections/posts/records", Some(&srv.token), "application/json", nested(depth)).await;
            r.assert_error(400, GENERIC);
            let obj = format!("{}{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            let r = srv.send_raw(Method::POST, "/api/batch", Some(&srv.token), "application/json", obj).await;
            assert_eq!(r.status, 400);
            r.assert_error_shape();
        }
        // Deep but parseable: refused by the json field's depth limit.
        let r = srv.send_raw(Method::POST, "/api/collections/posts/records", Some(&srv.token), "application/json", nested(100)).await;
        r.assert_error(400, "Failed to create record.");
        assert_eq!(r.code_at("/meta"), Some("validation_json_depth_limit"));
        // In multipart, the @jsonPayload part is parsed with the same limits.
        let form = reqwest::multipart::Form::new().text("@jsonPayload", nested(100_000));
        let resp = srv.request(Method::POST, "/api/collections/posts/records").header("Authorization", &srv.token).multipart(form).send().await.expect("send");
        let r = TestServer::read(resp).await;
        assert_eq!(r.status, 400, "{}", r.body);
        r.assert_error_shape();
        intact(&srv, &id).await;
    }

    async fn sql_in_paths_queries_and_keys(srv) {
        let id = setup(&srv).await;
        let evil = "posts%22%3B%20DROP%20TABLE%20posts%3B%20--";
        for (m, path) in [
            (Method::GET, format!("/api/collections/{evil}/records")),
            (Method::POST, format!("/api/collections/{evil}/records")),
            (Method::GET, format!("/api/collections/{evil}/records/{id}")),
            (Method::PATCH, format!("/api/collections/{evil}/records/{id}")),
            (Method::DELETE, format!("/api/collections/{evil}/records/{id}")),
            (Method::GET, "/api/collections/posts'%20OR%201=1%20--/records".to_owned()),
        ] {
            let r = srv.su(m.clone(), &path, Some(json!({"title": "x"}))).await;
            r.assert_error(404, "Missing collection context.");
        }
        for path in [
            format!("/api/collections/{evil}"),
            format!("/api/collections/{evil}/truncate"),
        ] {
            assert_eq!(srv.su(Method::GET, &path, None).await.status, 404, "{path}");
            assert_eq!(srv.su(Method::DELETE, &path, None).await.status, 404, "{path}");
        }
        for rid in ["x'%20OR%20'1'='1", "1%20OR%201=1", "%27%3B%20DELETE%20FROM%20posts%3B%20--", "..%2F..%2Fetc%2Fpasswd"] {
            srv.su(Method::GET, &format!("/api/collections/posts/records/{rid}"), None).await.assert_error(404, "The requested resource wasn't found.");
            assert_eq!(srv.su(Method::DELETE, &format!("/api/collections/posts/records/{rid}"), None).await.status, 404);
            assert_eq!(srv.su(Method::PATCH, &format!("/api/collections/posts/records/{rid}"), Some(json!({"title": "x"}))).await.status, 404);
        }
        for q in ["sort=title%3B%20DROP%20TABLE%20posts", "sort=(SELECT%201)", "page=1%3B%20DROP%20TABLE%20posts", "perPage=1%20OR%201=1",
                  "sort=title%20--", "sort=-title%27"] {
            let r = srv.su(Method::GET, &format!("/api/collections/posts/records?{q}"), None).await;
            assert_eq!(r.status, 400, "{q}: {}", r.body);
            r.assert_error_shape();
        }
        // SQL in a `fields` spec only picks (nothing matches); an unbalanced quote is a 400,
        // as PocketBase answers.
        let r = srv.su(Method::GET, "/api/collections/posts/records?fields=id%3B%20DROP%20TABLE%20posts", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = srv.su(Method::GET, "/api/collections/posts/records?fields=id%27%3B%20DROP%20TABLE%20posts", None).await;
        assert_eq!(r.status, 400, "{}", r.body);
        r.assert_error_shape();
        // SQL in body keys is an unknown key, ignored.
        let r = srv.su(Method::POST, "/api/collections/posts/records", Some(json!({"title\"; DROP TABLE posts; --": "x", "title": "second"}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r2 = srv.su(Method::DELETE, &format!("/api/collections/posts/records/{}", r.body["id"].as_str().expect("id")), None).await;
        assert_eq!(r2.status, 204);
        // SQL in values is stored as text.
        let r = srv.su(Method::PATCH, &format!("/api/collections/posts/records/{id}"), Some(json!({"title": "'); DROP TABLE posts; --"}))).await;
        assert_eq!(r.body["title"], "'); DROP TABLE posts; --");
        let r = srv.su(Method::PATCH, &format!("/api/collections/posts/records/{id}"), Some(json!({"title": "keep"}))).await;
        assert_eq!(r.status, 200);
        // SQL in collection and field names.
        for def in [
            json!({"name": "posts\"; DROP TABLE posts; --"}),
            json!({"name": "x", "fields": [{"name": "a\"; DROP TABLE posts; --", "type": "text"}]}),
            json!({"name": "x", "fields": [{"name": "a", "type": "text\"; DROP TABLE posts; --"}]}),
            json!({"name": "x", "fields": [{"name": "a", "type": "text"}], "listRule": 1}),
        ] {
            let r = srv.su(Method::POST, "/api/collections", Some(def.clone())).await;
            assert_eq!(r.status, 400, "{def}: {}", r.body);
            r.assert_error_shape();
        }
        let r = srv.su(Method::PATCH, "/api/collections/posts", Some(json!({"name": "posts\"; DROP TABLE posts; --"}))).await;
        assert_eq!(r.code_at("/name"), Some("validation_match_invalid"));
        intact(&srv, &id).await;
    }

    async fn unicode_and_huge_names(srv) {
        let id = setup(&srv).await;
        let long = "n".repeat(10_000);
        for name in ["ünïcode", "名前", "emoji😀", "zero\u{200b}width", "rtl\u{202e}x", &long] {
            let r = srv.su(Method::POST, "/api/collections", Some(json!({"name": name}))).await;
            assert_eq!(r.status, 400, "{name:.20}: {}", r.body);
            r.assert_error_shape();
            assert!(r.body["data"]["name"]["code"].is_string(), "{}", r.body);
            let r = srv.su(Method::POST, "/api/collections", Some(json!({"name": "ok_name", "fields": [{"name": name, "type": "text"}]}))).await;
            assert_eq!(r.status, 400, "{name:.20}: {}", r.body);
            assert!(r.body["data"]["fields"]["1"]["name"]["code"].is_string(), "{}", r.body);
        }
        assert_eq!(srv.su(Method::GET, "/api/collections/ok_name", None).await.status, 404);
        // Huge and unicode path segments.
        srv.su(Method::GET, &format!("/api/collections/{long}/records"), None).await.assert_error(404, "Missing collection context.");
        srv.su(Method::GET, "/api/collections/%E5%90%8D%E5%89%8D/records", None).await.assert_error(404, "Missing collection context.");
        srv.su(Method::GET, &format!("/api/collections/posts/records/{long}"), None).await.assert_error(404, "The requested resource wasn't found.");
        srv.su(Method::GET, "/api/collections/posts/records/%F0%9F%98%80", None).await.assert_error(404, "The requested resource wasn't found.");
        // Unicode values round-trip exactly.
        let s = "héllo 名前 😀 \u{202e}";
        let r = srv.create_record("posts", json!({"title": s, "meta": {"k": s}})).await;
        assert_eq!((r["title"].as_str(), r["meta"]["k"].as_str()), (Some(s), Some(s)));
        let d = srv.su(Method::DELETE, &format!("/api/collections/posts/records/{}", r["id"].as_str().expect("id")), None).await;
        assert_eq!(d.status, 204);
        // A huge query string.
        let r = srv.su(Method::GET, &format!("/api/collections/posts/records?sort={long}"), None).await;
        assert_eq!(r.status, 400);
        r.assert_error_shape();
        intact(&srv, &id).await;
    }

    async fn unknown_collection_everywhere(srv) {
        let id = setup(&srv).await;
        for (m, path, body) in [
            (Method::GET, "/api/collections/nope/records".to_owned(), None),
            (Method::POST, "/api/collections/nope/records".to_owned(), Some(json!({"title": "x"}))),
            (Method::GET, "/api/collections/nope/records/abc".to_owned(), None),
            (Method::PATCH, "/api/collections/nope/records/abc".to_owned(), Some(json!({"title": "x"}))),
            (Method::DELETE, "/api/collections/nope/records/abc".to_owned(), None),
        ] {
            for token in [None, Some(srv.token.as_str())] {
                let r = srv.send(m.clone(), &path, token, body.clone()).await;
                assert_eq!(r.body, json!({"data": {}, "message": "Missing collection context.", "status": 404}), "{m} {path}");
            }
        }
        let r = srv.guest(Method::POST, "/api/collections/nope/auth-with-password", Some(json!({"identity": "a", "password": "b"}))).await;
        assert_eq!(r.status, 404);
        r.assert_error_shape();
        // A base collection is not an auth collection.
        let r = srv.guest(Method::POST, "/api/collections/posts/auth-with-password", Some(json!({"identity": "a", "password": "b"}))).await;
        assert_eq!(r.status, 404);
        r.assert_error_shape();
        intact(&srv, &id).await;
    }

    async fn wrong_value_types_are_field_errors(srv) {
        let id = setup(&srv).await;
        srv.create_collection(json!({"name": "typed", "createRule": "", "fields": [
            {"name": "n", "type": "number"}, {"name": "b", "type": "bool"}, {"name": "d", "type": "date"},
            {"name": "t", "type": "text"}, {"name": "g", "type": "geoPoint"}
        ]})).await;
        for (body, field) in [
            (json!({"n": "abc"}), "n"), (json!({"n": {"x": 1}}), "n"), (json!({"n": "NaN"}), "n"), (json!({"n": "1e999"}), "n"),
            (json!({"b": "maybe"}), "b"), (json!({"b": [true]}), "b"),
            (json!({"d": "not a date"}), "d"), (json!({"d": 12}), "d"),
            (json!({"t": {"x": 1}}), "t"), (json!({"t": [1, 2]}), "t"),
            (json!({"g": [1, 2]}), "g"),
        ] {
            let r = srv.guest(Method::POST, "/api/collections/typed/records", Some(body.clone())).await;
            r.assert_error(400, "Failed to create record.");
            assert!(r.body["data"][field]["code"].is_string(), "{body}: {}", r.body);
        }
        let r = srv.guest(Method::GET, "/api/collections/typed/records", None).await;
        assert_eq!(r.status, 403, "the list rule is still null");
        assert_eq!(srv.all_records("typed").await.len(), 0);
        intact(&srv, &id).await;
    }
}

both_engines_with! {
    config = |cfg| cfg.body_limit = 1024;

    async fn bodies_over_the_limit_are_413(srv) {
        let id = setup(&srv).await;
        let big = json!({"title": "x".repeat(2000)}).to_string();
        for (m, path) in body_endpoints(&id) {
            let r = srv.send_raw(m.clone(), &path, Some(&srv.token), "application/json", big.clone()).await;
            assert_eq!(r.status, 413, "{m} {path}: {}", r.body);
            r.assert_error_shape();
            assert!(r.body["message"].as_str().expect("message").starts_with("Request entity too large"), "{}", r.body);
            assert_eq!(r.body["data"], json!({}));
        }
        // Multipart and urlencoded bodies are limited too.
        let form = reqwest::multipart::Form::new().text("title", "y".repeat(4000));
        let resp = srv.request(Method::POST, "/api/collections/posts/records").header("Authorization", &srv.token).multipart(form).send().await.expect("send");
        let r = TestServer::read(resp).await;
        assert_eq!(r.status, 413, "{}", r.body);
        r.assert_error_shape();
        let r = srv.send_raw(Method::POST, "/api/collections/posts/records", Some(&srv.token), "application/x-www-form-urlencoded", format!("title={}", "z".repeat(3000))).await;
        assert_eq!(r.status, 413);
        // A body that fits still works, and nothing oversized was written.
        let r = srv.su(Method::POST, "/api/collections/posts/records", Some(json!({"title": "small"}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let d = srv.su(Method::DELETE, &format!("/api/collections/posts/records/{}", r.body["id"].as_str().expect("id")), None).await;
        assert_eq!(d.status, 204);
        intact(&srv, &id).await;
    }
}
