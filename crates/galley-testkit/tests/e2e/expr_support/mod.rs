//! The seed shared by the `expr_*` tests: the same collections and records as the
//! differential suite (tests/differential/run.py), with fixed ids, so the expected answers
//! in `pb_tables.rs` (copied from PocketBase 0.40.6) apply unchanged.
#![allow(dead_code)]

pub mod pb_tables;

use galley_testkit::{Method, Reply, TestServer};
use serde_json::{json, Value};
use std::collections::HashMap;

pub const USER_PASSWORD: &str = "User-Pass-12345";

/// Seed name → record id.
pub const IDS: &[(&str, &str)] = &[
    ("alice", "usralice0000001"),
    ("bob", "usrbob000000002"),
    ("carol", "usrcarol0000003"),
    ("red", "tagred000000001"),
    ("green", "taggreen0000002"),
    ("blue", "tagblue00000003"),
    ("hidden", "taghidden000004"),
    ("p1", "post00000000001"),
    ("p2", "post00000000002"),
    ("p3", "post00000000003"),
    ("p4", "post00000000004"),
    ("p5", "post00000000005"),
    ("p6", "post00000000006"),
    ("c1", "cmt000000000001"),
    ("c2", "cmt000000000002"),
    ("c3", "cmt000000000003"),
    ("c4", "cmt000000000004"),
    ("c5", "cmt000000000005"),
    ("pr1", "profile00000001"),
    ("pr2", "profile00000002"),
    ("l1", "locked000000001"),
    ("s1", "stat00000000001"),
    ("s2", "stat00000000002"),
    ("w1", "wpost0000000001"),
    ("w2", "wpost0000000002"),
];

pub fn id(name: &str) -> &'static str {
    IDS.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, i)| *i)
        .unwrap_or_else(|| panic!("no seed id {name}"))
}

pub fn name(id: &str) -> String {
    IDS.iter()
        .find(|(_, i)| *i == id)
        .map(|(n, _)| (*n).to_owned())
        .unwrap_or_else(|| id.to_owned())
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The seeded server and a token per user.
pub struct World {
    pub srv: TestServer,
    pub tokens: HashMap<&'static str, String>,
}

impl World {
    pub fn token(&self, who: &str) -> Option<String> {
        match who {
            "guest" => None,
            "su" => Some(self.srv.token.clone()),
            w => Some(
                self.tokens
                    .get(w)
                    .unwrap_or_else(|| panic!("no user {w}"))
                    .clone(),
            ),
        }
    }

    pub async fn send(&self, who: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        let t = self.token(who);
        self.srv.send(method, path, t.as_deref(), body).await
    }

    pub async fn get(&self, who: &str, path: &str) -> Reply {
        self.send(who, Method::GET, path, None).await
    }

    /// `GET /api/collections/{col}/records?{query}` (200 expected) → the seed names of the items.
    pub async fn names(&self, who: &str, col: &str, query: &str) -> Vec<String> {
        let r = self
            .get(
                who,
                &format!("/api/collections/{col}/records?perPage=200&{query}"),
            )
            .await;
        assert_eq!(r.status, 200, "{who} {col}?{query}: {}", r.body);
        r.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| name(i["id"].as_str().expect("id")))
            .collect()
    }

    /// A filter's result as seed names, ids sorted; `None` when the server answers 400.
    pub async fn filter(&self, who: &str, col: &str, filter: &str) -> Option<Vec<String>> {
        let r = self
            .get(
                who,
                &format!(
                    "/api/collections/{col}/records?perPage=200&sort=id&fields=id&filter={}",
                    enc(filter)
                ),
            )
            .await;
        match r.status {
            200 => Some(
                r.body["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .map(|i| name(i["id"].as_str().expect("id")))
                    .collect(),
            ),
            400 => {
                r.assert_error_shape();
                None
            }
            s => panic!("{who} {col} filter {filter:?}: unexpected {s} {}", r.body),
        }
    }

    /// Every post id, as the superuser: the table is intact.
    pub async fn assert_posts_intact(&self) {
        let got = self.names("su", "posts", "sort=id&fields=id").await;
        for p in ["p1", "p2", "p3", "p4", "p5", "p6"] {
            assert!(got.contains(&p.to_owned()), "{p} missing: {got:?}");
        }
        self.srv.assert_healthy().await;
    }
}

pub fn names_of(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// Creates the collections and records of the differential seed and logs the users in.
pub async fn seed(srv: TestServer) -> World {
    let users = srv
        .create_collection(json!({"name": "users", "type": "auth", "listRule": "", "viewRule": "", "createRule": "",
            "updateRule": "id = @request.auth.id", "deleteRule": null,
            "fields": [{"name": "name", "type": "text"}, {"name": "age", "type": "number"},
                       {"name": "secret", "type": "text", "hidden": true}]}))
        .await;
    let tags = srv
        .create_collection(json!({"name": "tags", "listRule": "", "viewRule": "title != \"hidden\"", "createRule": null,
            "fields": [{"name": "title", "type": "text"}, {"name": "rank", "type": "number"}]}))
        .await;
    let (uid, tid) = (
        users["id"].as_str().expect("id"),
        tags["id"].as_str().expect("id"),
    );
    let posts = srv
        .create_collection(json!({"name": "posts",
            "listRule": "published = true || author = @request.auth.id",
            "viewRule": "published = true || author = @request.auth.id",
            "createRule": "@request.auth.id != \"\" && author = @request.auth.id && @request.body.title != \"forbidden\"",
            "updateRule": "author = @request.auth.id && (@request.body.title:isset = false || @request.body.title != \"forbidden\")",
            "deleteRule": "author = @request.auth.id && views < 100",
            "fields": [
                {"name": "title", "type": "text"}, {"name": "views", "type": "number"},
                {"name": "published", "type": "bool"},
                {"name": "status", "type": "select", "values": ["draft", "live"]},
                {"name": "labels", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3},
                {"name": "meta", "type": "json"}, {"name": "pubdate", "type": "date"},
                {"name": "loc", "type": "geoPoint"},
                {"name": "author", "type": "relation", "collectionId": uid},
                {"name": "tags", "type": "relation", "collectionId": tid, "maxSelect": 5},
                {"name": "body", "type": "editor"},
                {"name": "secret", "type": "text", "hidden": true}]}))
        .await;
    let pid = posts["id"].as_str().expect("id");
    srv.create_collection(json!({"name": "comments", "listRule": "", "viewRule": "", "createRule": "@request.auth.id != \"\"",
        "updateRule": "user = @request.auth.id", "deleteRule": "user = @request.auth.id",
        "fields": [{"name": "text", "type": "text"}, {"name": "post", "type": "relation", "collectionId": pid},
                   {"name": "user", "type": "relation", "collectionId": uid}]}))
        .await;
    srv.create_collection(json!({"name": "profiles", "listRule": "", "viewRule": "",
        "fields": [{"name": "bio", "type": "text"}, {"name": "user", "type": "relation", "collectionId": uid}],
        "indexes": ["CREATE UNIQUE INDEX idx_profiles_user ON profiles (user)"]}))
        .await;
    srv.create_collection(json!({"name": "locked", "fields": [{"name": "title", "type": "text"}]}))
        .await;
    srv.create_collection(json!({"name": "stats", "listRule": "", "viewRule": "",
        "fields": [{"name": "post", "type": "text"}, {"name": "total", "type": "number"}]}))
        .await;

    let pw = USER_PASSWORD;
    for u in [
        json!({"id": id("alice"), "email": "alice@example.com", "emailVisibility": true, "name": "Alice", "age": 30, "secret": "a-secret", "verified": true}),
        json!({"id": id("bob"), "email": "bob@example.com", "emailVisibility": false, "name": "Bob", "age": 25, "secret": "b-secret"}),
        json!({"id": id("carol"), "email": "carol@example.com", "emailVisibility": false, "name": "carol", "age": 41}),
    ] {
        let mut u = u;
        u["password"] = json!(pw);
        u["passwordConfirm"] = json!(pw);
        srv.create_record("users", u).await;
    }
    for (n, t, r) in [
        ("red", "red", 1),
        ("green", "green", 2),
        ("blue", "blue", 3),
        ("hidden", "hidden", 4),
    ] {
        srv.create_record("tags", json!({"id": id(n), "title": t, "rank": r}))
            .await;
    }
    let posts = [
        json!({"id": id("p1"), "title": "Hello World", "views": 10, "published": true, "status": "live", "labels": ["a", "b"],
               "meta": {"k": [1, 2], "n": {"x": 1}, "s": "str", "b": true}, "pubdate": "2024-01-02 03:04:05.000Z",
               "loc": {"lon": 23.32, "lat": 42.69}, "author": id("alice"), "tags": [id("red"), id("green")],
               "body": "<p>Hello <b>bold</b> world, a long body text here</p>", "secret": "s1"}),
        json!({"id": id("p2"), "title": "hello again", "views": 5, "published": false, "status": "draft", "labels": ["c"],
               "meta": {"k": [3], "n": {"x": 5}}, "pubdate": "2020-06-01 00:00:00.000Z", "loc": {"lon": 2.35, "lat": 48.85},
               "author": id("bob"), "tags": [id("blue")], "body": "<div>short</div>", "secret": "s2"}),
        json!({"id": id("p3"), "title": "Third 'quoted' \"post\"", "views": 0, "published": true, "status": "", "labels": [],
               "author": "", "tags": []}),
        json!({"id": id("p4"), "title": "Percent 100% _under_ back\\slash", "views": 100, "published": true, "status": "live",
               "labels": ["a", "b", "c"], "meta": {"k": [], "n": {"x": 2}, "s": "other"}, "pubdate": "2035-12-31 23:59:59.000Z",
               "loc": {"lon": -0.12, "lat": 51.5}, "author": id("carol"), "tags": [id("red"), id("hidden")], "secret": "s4"}),
        json!({"id": id("p5"), "title": "ünïcödé 日本", "views": -3.5, "published": false, "status": "draft", "labels": ["b"],
               "meta": {"arr": [{"a": 1}], "s": "str"}, "pubdate": "2024-06-15 12:00:00.000Z", "loc": {"lon": 23.3, "lat": 42.7},
               "author": id("alice"), "tags": [id("green"), id("blue"), id("red")]}),
        json!({"id": id("p6"), "title": "Alpha", "views": 10, "published": true, "status": "live", "labels": ["a"],
               "meta": [1, 2, 3], "author": id("bob"), "tags": [id("hidden")]}),
    ];
    for p in posts {
        srv.create_record("posts", p).await;
    }
    for (c, t, p, u) in [
        ("c1", "nice", "p1", "bob"),
        ("c2", "meh", "p1", "carol"),
        ("c3", "ok", "p2", "alice"),
        ("c4", "wow", "p4", "alice"),
        ("c5", "nice", "p4", "bob"),
    ] {
        srv.create_record(
            "comments",
            json!({"id": id(c), "text": t, "post": id(p), "user": id(u)}),
        )
        .await;
    }
    srv.create_record(
        "profiles",
        json!({"id": id("pr1"), "bio": "A bio", "user": id("alice")}),
    )
    .await;
    srv.create_record(
        "profiles",
        json!({"id": id("pr2"), "bio": "B bio", "user": id("bob")}),
    )
    .await;
    srv.create_record("locked", json!({"id": id("l1"), "title": "locked one"}))
        .await;
    srv.create_record(
        "stats",
        json!({"id": id("s1"), "post": id("p1"), "total": 5}),
    )
    .await;
    srv.create_record(
        "stats",
        json!({"id": id("s2"), "post": id("p4"), "total": 1}),
    )
    .await;

    let mut tokens = HashMap::new();
    for who in ["alice", "bob", "carol"] {
        let r = srv
            .guest(
                Method::POST,
                "/api/collections/users/auth-with-password",
                Some(json!({"identity": format!("{who}@example.com"), "password": pw})),
            )
            .await;
        assert_eq!(r.status, 200, "{who} login: {}", r.body);
        assert_eq!(r.body["record"]["id"], id(who));
        tokens.insert(who, r.body["token"].as_str().expect("token").to_owned());
    }
    World { srv, tokens }
}
