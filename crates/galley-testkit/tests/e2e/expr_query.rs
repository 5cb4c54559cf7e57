//! `sort`, `expand` and `fields` over HTTP on both engines, the expression limits, and
//! injection attempts in every parameter. Expected orders and shapes are PocketBase
//! 0.40.6's for the same seed (see tests/differential).

use crate::expr_support::{enc, id, name, names_of, seed};
use galley_testkit::both_engines;
use serde_json::{json, Value};

fn item_names(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|i| name(i["id"].as_str().expect("id")))
        .collect()
}

both_engines! {
    async fn sort_keys_directions_and_paths(srv) {
        let w = seed(srv).await;
        let cases: &[(&str, &[&str])] = &[
            ("title", &["p6", "p1", "p4", "p3", "p2", "p5"]),
            ("-title", &["p5", "p2", "p3", "p4", "p1", "p6"]),
            ("+title", &["p6", "p1", "p4", "p3", "p2", "p5"]),
            ("views,title", &["p5", "p3", "p2", "p6", "p1", "p4"]),
            ("-views,title", &["p4", "p6", "p1", "p2", "p3", "p5"]),
            ("-views,-id", &["p4", "p6", "p1", "p2", "p3", "p5"]),
            ("published,-views,id", &["p2", "p5", "p4", "p1", "p6", "p3"]),
            ("pubdate,id", &["p3", "p6", "p2", "p1", "p5", "p4"]),
            ("status,id", &["p3", "p2", "p5", "p1", "p4", "p6"]),
            ("author.name,id", &["p3", "p1", "p5", "p2", "p6", "p4"]),
            ("-author.name,id", &["p4", "p2", "p6", "p1", "p5", "p3"]),
            ("author.age,-id", &["p3", "p6", "p2", "p5", "p1", "p4"]),
            ("meta.n.x,id", &["p3", "p5", "p6", "p1", "p4", "p2"]),
            ("author.profiles_via_user.bio,id", &["p3", "p4", "p1", "p5", "p2", "p6"]),
            ("@rowid", &["p1", "p2", "p3", "p4", "p5", "p6"]),
            ("-@rowid", &["p6", "p5", "p4", "p3", "p2", "p1"]),
        ];
        for (s, want) in cases {
            assert_eq!(w.names("su", "posts", &format!("fields=id&sort={}", enc(s))).await, names_of(want), "sort={s}");
        }
        // a non-superuser sorts through relations too (the rule still narrows)
        assert_eq!(w.names("guest", "posts", "fields=id&sort=-author.name,id").await, names_of(&["p4", "p6", "p1", "p3"]));
        // @random: the same rows in some order
        let mut got = w.names("su", "posts", "fields=id&sort=@random").await;
        got.sort();
        assert_eq!(got, names_of(&["p1", "p2", "p3", "p4", "p5", "p6"]));
        // errors
        for s in ["nosuch", "-nosuch", "title,,views", "'title'", "title;DROP TABLE posts", "a,b,c,d,e,f,g,h,i", "tags.nosuch", "\"title\""] {
            let r = w.get("su", &format!("/api/collections/posts/records?sort={}", enc(s))).await;
            assert_eq!(r.status, 400, "sort={s}: {}", r.body);
            r.assert_error_shape();
        }
        let r = w.get("su", &format!("/api/collections/posts/records?sort={}", enc(&"a".repeat(256)))).await;
        assert_eq!(r.status, 400);
        w.assert_posts_intact().await;
    }

    async fn expand_relations_back_relations_and_view_rules(srv) {
        let w = seed(srv).await;
        let p = "/api/collections/posts/records";
        // single + multi
        let r = w.get("su", &format!("{p}/{}?expand=author,tags&fields=expand.author.name,expand.tags.title", id("p1"))).await;
        assert_eq!(r.body, json!({"expand": {"author": {"name": "Alice"}, "tags": [{"title": "red"}, {"title": "green"}]}}));
        // the tags view rule hides "hidden"; an all-hidden relation gives expand {}
        let r = w.get("guest", &format!("{p}/{}?expand=tags&fields=expand.tags.title", id("p4"))).await;
        assert_eq!(r.body, json!({"expand": {"tags": [{"title": "red"}]}}));
        let r = w.get("guest", &format!("{p}/{}?expand=tags", id("p6"))).await;
        assert_eq!(r.body["expand"], json!({}));
        let r = w.get("guest", &format!("{p}/{}?expand=author,tags", id("p3"))).await;
        assert_eq!(r.body["expand"], json!({}));
        // back-relation (multi) with nesting, and a unique back-relation (single object)
        let r = w.get("su", &format!("{p}/{}?expand=comments_via_post.user.profiles_via_user&fields=expand", id("p1"))).await;
        let comments = &r.body["expand"]["comments_via_post"];
        assert_eq!(item_names(comments), names_of(&["c1", "c2"]));
        assert_eq!(comments[0]["expand"]["user"]["name"], "Bob");
        assert_eq!(comments[0]["expand"]["user"]["expand"]["profiles_via_user"]["bio"], "B bio");
        assert!(comments[1]["expand"]["user"].get("expand").is_none() || comments[1]["expand"]["user"]["expand"] == json!({}),
                "carol has no profile: {}", comments[1]);
        let r = w.get("su", &format!("/api/collections/users/records/{}?expand=profiles_via_user,posts_via_author&fields=expand.profiles_via_user.bio,expand.posts_via_author.id", id("alice"))).await;
        assert_eq!(r.body, json!({"expand": {"profiles_via_user": {"bio": "A bio"}, "posts_via_author": [{"id": id("p1")}, {"id": id("p5")}]}}));
        // the posts view rule applies inside expand (p5 is alice's unpublished post)
        let r = w.get("guest", &format!("/api/collections/users/records/{}?expand=posts_via_author&fields=expand.posts_via_author.id", id("alice"))).await;
        assert_eq!(r.body, json!({"expand": {"posts_via_author": [{"id": id("p1")}]}}));
        let r = w.get("alice", &format!("/api/collections/users/records/{}?expand=posts_via_author&fields=expand.posts_via_author.id", id("alice"))).await;
        assert_eq!(item_names(&r.body["expand"]["posts_via_author"]), names_of(&["p1", "p5"]));
        // nested through a multi relation back to a multi relation
        let r = w.get("su", &format!("/api/collections/comments/records/{}?expand=post.tags,user&fields=expand.post.expand.tags.title,expand.user.name", id("c4"))).await;
        assert_eq!(r.body, json!({"expand": {"post": {"expand": {"tags": [{"title": "red"}, {"title": "hidden"}]}}, "user": {"name": "Alice"}}}));
        // on lists, with duplicates and spaces
        let r = w.get("su", &format!("{p}?sort=id&fields=id,expand.author.name&expand={}", enc(" author , author "))).await;
        let authors: Vec<Value> = r.body["items"].as_array().expect("items").iter().map(|i| i["expand"]["author"]["name"].clone()).collect();
        assert_eq!(authors, vec![json!("Alice"), json!("Bob"), Value::Null, json!("carol"), json!("Alice"), json!("Bob")]);
        // unknown paths and paths with an unknown segment expand nothing (as PocketBase)
        for e in ["nosuch", "author.nosuch", "title", "author'; DROP TABLE posts; --", "ünï", "tags.title'"] {
            let r = w.get("su", &format!("{p}/{}?expand={}", id("p1"), enc(e))).await;
            assert_eq!(r.status, 200, "expand={e}: {}", r.body);
            assert!(r.body.get("expand").is_none(), "expand={e}: {}", r.body["expand"]);
        }
        let r = w.get("su", &format!("{p}/{}?expand={}&fields=expand.author.name", id("p1"), enc("author,\"tags\""))).await;
        assert_eq!(r.body, json!({"expand": {"author": {"name": "Alice"}}}));
        // depth: 6 is allowed, 7 is a 400 that says so
        let six = "post.author.posts_via_author.author.posts_via_author.author";
        let r = w.get("su", &format!("/api/collections/comments/records/{}?expand={six}", id("c1"))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let seven = "post.author.posts_via_author.author.posts_via_author.author.profiles_via_user";
        let r = w.get("su", &format!("/api/collections/comments/records/{}?expand={seven}", id("c1"))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        r.assert_error_shape();
        assert!(r.body["message"].as_str().unwrap_or_default().contains("at most 6"), "{}", r.body);
        w.assert_posts_intact().await;
    }

    async fn fields_picker_with_expand_and_excerpt(srv) {
        let w = seed(srv).await;
        let p1 = format!("/api/collections/posts/records/{}", id("p1"));
        let get = |f: &str| format!("{p1}?expand=author,tags&fields={}", enc(f));
        let r = w.get("su", &get("id,title")).await;
        assert_eq!(r.body, json!({"id": id("p1"), "title": "Hello World"}));
        let r = w.get("su", &get("id,title,nosuch")).await;
        assert_eq!(r.body, json!({"id": id("p1"), "title": "Hello World"}));
        let r = w.get("su", &get("expand.author.name,expand.tags.id")).await;
        assert_eq!(r.body, json!({"expand": {"author": {"name": "Alice"}, "tags": [{"id": id("red")}, {"id": id("green")}]}}));
        let r = w.get("su", &get("*,expand.tags.title")).await;
        assert_eq!(r.body["title"], "Hello World");
        assert_eq!(r.body["collectionName"], "posts");
        assert_eq!(r.body["expand"], json!({"tags": [{"title": "red"}, {"title": "green"}]}));
        let r = w.get("su", &get("id,expand.author.*")).await;
        assert_eq!(r.body["expand"]["author"]["name"], "Alice");
        assert!(r.body["expand"].get("tags").is_none());
        let r = w.get("su", &get("body:excerpt(10)")).await;
        assert_eq!(r.body, json!({"body": "Hello bold"}));
        let r = w.get("su", &get("body:excerpt(10,true)")).await;
        assert_eq!(r.body, json!({"body": "Hello bold..."}));
        let r = w.get("su", &get("body:excerpt(200,true)")).await;
        assert_eq!(r.body, json!({"body": "Hello bold world, a long body text here"}));
        let r = w.get("su", &get("id,meta.n,loc.lat")).await;
        assert_eq!(r.body, json!({"id": id("p1"), "meta": {"n": {"x": 1}}, "loc": {"lat": 42.69}}));
        let r = w.get("su", &get(" id , title ")).await;
        assert_eq!(r.body, json!({"id": id("p1"), "title": "Hello World"}));
        // on lists: applied to every item
        let r = w.get("su", &format!("/api/collections/posts/records?sort=id&perPage=2&fields={}", enc("id,expand.author.name"))).await;
        assert_eq!(r.body["items"], json!([{"id": id("p1")}, {"id": id("p2")}]));
        assert_eq!(r.body["totalItems"], 6);
        // hostile names pick nothing and break nothing
        for f in ["id,\"title\"", "id,title\\", "id,ü", "id'; DROP TABLE posts; --"] {
            let r = w.get("su", &format!("{p1}?fields={}", enc(f))).await;
            assert!(r.status == 200 || r.status == 400, "fields={f}: {}", r.body);
        }
        w.assert_posts_intact().await;
    }

    async fn limits_are_400_naming_the_problem(srv) {
        let w = seed(srv).await;
        let p = "/api/collections/posts/records";
        let long = format!("title = \"{}\"", "x".repeat(3500));
        let deep = format!("{}views = 10{}", "(".repeat(10_000), ")".repeat(10_000));
        let many = vec!["views = 1"; 201].join(" || ");
        let nested = format!("{}views = 10{}", "(".repeat(100), ")".repeat(100));
        for (f, needle) in [(long.as_str(), "too long"), (deep.as_str(), "too long"), (many.as_str(), "too many expressions"),
                            (nested.as_str(), "")] {
            let r = w.get("su", &format!("{p}?filter={}", enc(f))).await;
            assert_eq!(r.status, 400, "{}", r.body);
            r.assert_error_shape();
            assert!(r.body["message"].as_str().unwrap_or_default().contains(needle), "{}", r.body);
        }
        // 10k-deep parentheses in a rule's worth of space: short but deep
        let r = w.get("su", &format!("{p}?filter={}", enc(&format!("{}1=1{}", "(".repeat(1700), ")".repeat(1700))))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        // exactly at the limits is fine
        let ok = vec!["views = 1"; 200].join(" || ");
        assert_eq!(w.filter("su", "posts", &ok).await, Some(vec![]));
        let ok = format!("title != \"{}\"", "x".repeat(3489));
        assert_eq!(ok.len(), 3500);
        assert_eq!(w.filter("su", "posts", &ok).await.map(|v| v.len()), Some(6));
        w.assert_posts_intact().await;
    }

    async fn injection_in_sort_expand_fields_and_ids(srv) {
        let w = seed(srv).await;
        let p = "/api/collections/posts/records";
        for q in [
            format!("sort={}", enc("title; DROP TABLE posts; --")),
            format!("sort={}", enc("-title\\")),
            format!("sort={}", enc("ti'tle")),
            format!("expand={}", enc("author'; DROP TABLE posts; --")),
            format!("expand={}", enc("author\\")),
            format!("fields={}", enc("id'; DROP TABLE posts; --")),
            format!("filter={}", enc("title = \"x'); DROP TABLE posts; --\"")),
            format!("filter={}", enc("id = \"\\\\'; DELETE FROM posts; --\"")),
        ] {
            let r = w.get("guest", &format!("{p}?{q}")).await;
            assert!(r.status == 200 || r.status == 400, "{q}: {} {}", r.status, r.body);
        }
        for bad_id in ["x' OR '1'='1", "post00000000001' --", "%", "\\"] {
            let r = w.get("su", &format!("{p}/{}", enc(bad_id))).await;
            assert_eq!(r.status, 404, "{bad_id}: {}", r.body);
        }
        w.assert_posts_intact().await;
    }
}
