//! The filter language over HTTP, on both engines: every operator (plain = all-of and
//! `?`-forms = any-of on multi-value paths), `&&`/`||` precedence, parentheses, literals and
//! escapes, modifiers, date macros, geoDistance, strftime, relation / back-relation / JSON
//! paths, `@collection` and `@request` (as the superuser), injection attempts. The expected
//! ids of each filter are PocketBase 0.40.6's answers for the same seed
//! (`expr_support/pb_tables.rs`, produced with tests/differential).

use crate::expr_support::pb_tables::*;
use crate::expr_support::{enc, names_of, seed, World};
use galley_testkit::both_engines;

/// Runs every `(filter, expected)` of a table as `who` on posts; reports all mismatches at once.
async fn check_table(w: &World, who: &str, table: &[(&str, Option<&[&str]>)]) {
    let mut bad = Vec::new();
    for (filter, want) in table {
        let got = w.filter(who, "posts", filter).await;
        let want = want.map(names_of);
        if got != want {
            bad.push(format!(
                "{who} filter {filter:?}\n   want {want:?}\n   got  {got:?}"
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} filters differ from PocketBase:\n{}",
        bad.len(),
        table.len(),
        bad.join("\n")
    );
}

both_engines! {
    async fn superuser_filters_match_pocketbase(srv) {
        let w = seed(srv).await;
        check_table(&w, "su", SU_POSTS).await;
        w.assert_posts_intact().await;
    }

    async fn bad_filters_are_400_with_a_reason(srv) {
        let w = seed(srv).await;
        check_table(&w, "su", BAD_POSTS).await;
        // The message names the problem.
        for (filter, needle) in [
            ("title =", "syntax error"),
            ("nosuchfield = 1", "unknown field \"nosuchfield\""),
            ("title = 'unterminated", "unterminated text"),
            ("nosuchfn(1) = 1", "unknown function"),
            ("   ", "Invalid filter parameter"),
        ] {
            let r = w.get("su", &format!("/api/collections/posts/records?filter={}", enc(filter))).await;
            assert_eq!(r.status, 400, "{filter:?}: {}", r.body);
            r.assert_error_shape();
            let msg = r.body["message"].as_str().unwrap_or_default();
            assert!(msg.contains(needle), "{filter:?}: message {msg:?} should contain {needle:?}");
        }
    }

    async fn guest_and_user_filters_match_pocketbase(srv) {
        let w = seed(srv).await;
        check_table(&w, "guest", GUEST_POSTS).await;
        check_table(&w, "alice", ALICE_POSTS).await;
        check_table(&w, "bob", BOB_POSTS).await;
    }

    async fn precedence_and_grouping(srv) {
        let w = seed(srv).await;
        // && binds tighter than ||, in either order; parentheses override.
        let cases: &[(&str, &[&str])] = &[
            (r#"title = "Hello World" || title = "Alpha" && views = 999"#, &["p1"]),
            (r#"views = 999 && title = "Alpha" || title = "Hello World""#, &["p1"]),
            (r#"(title = "Hello World" || title = "Alpha") && views = 10"#, &["p1", "p6"]),
            (r#"(title = "Hello World" || title = "Alpha") && (views = 999 || published = true)"#, &["p1", "p6"]),
            (r#"((((((((((views = 5))))))))))"#, &["p2"]),
            ("views = 10 // a comment\n && published = true", &["p1", "p6"]),
        ];
        for (f, want) in cases {
            assert_eq!(w.filter("su", "posts", f).await, Some(names_of(want)), "{f}");
        }
    }

    async fn literals_and_escapes(srv) {
        let w = seed(srv).await;
        let cases: &[(&str, &[&str])] = &[
            (r#"title = "Third 'quoted' \"post\"""#, &["p3"]),
            (r#"title = 'Third \'quoted\' "post"'"#, &["p3"]),
            (r#"title = "Percent 100% _under_ back\\slash""#, &["p4"]),
            (r#"title = "Percent 100% _under_ back\slash""#, &["p4"]),
            (r#"title ~ "\\""#, &["p4"]),
            (r#"title = "\\""#, &[]),
            (r#"title = "a\\" || views = 0"#, &["p3"]),
            (r#"title = "ünïcödé 日本""#, &["p5"]),
            (r#"title ~ "100%""#, &[]), // an unescaped % makes it the whole pattern
            (r#"title ~ "100\%""#, &["p4"]),
            (r#"title ~ "_under_""#, &["p4"]),
            (r#"title ~ "H%o""#, &[]), // the whole title must match H…o
            (r#"title ~ "H%d""#, &["p1"]),
            ("status = null", &["p3"]),
            (r#"status = """#, &["p3"]),
            ("published = true && views > 5", &["p1", "p4", "p6"]),
            ("published = false", &["p2", "p5"]),
            ("views = -3.5", &["p5"]),
            (r#"views = "10""#, &["p1", "p6"]),
            ("null = null", &["p1", "p2", "p3", "p4", "p5", "p6"]),
            ("true = false", &[]),
        ];
        for (f, want) in cases {
            assert_eq!(w.filter("su", "posts", f).await, Some(names_of(want)), "{f}");
        }
        // NUL ends the input in PocketBase's scanner: an unterminated text.
        assert_eq!(w.filter("su", "posts", "title = \"a\0\"").await, None);
        assert_eq!(w.filter("su", "posts", "title = 1\0").await, None);
    }

    async fn all_of_and_any_of_on_multi_values(srv) {
        let w = seed(srv).await;
        let cases: &[(&str, &[&str])] = &[
            // any-of
            (r#"tags.title ?= "red""#, &["p1", "p4", "p5"]),
            (r#"labels:each ?= "c""#, &["p2", "p4"]),
            (r#"comments_via_post.text ?= "nice""#, &["p1", "p4"]),
            // all-of: every related value must match; an empty set matches the negative forms
            (r#"tags.title = "red""#, &[]),
            (r#"tags.title != "red""#, &["p2", "p3", "p6"]),
            (r#"labels:each = "a""#, &["p6"]),
            (r#"labels:each != "a""#, &["p2", "p3", "p5"]),
            (r#"comments_via_post.text = "nice""#, &[]),
            (r#"comments_via_post.text != "nice""#, &["p2", "p3", "p5", "p6"]),
            ("tags.rank < 4", &["p1", "p2", "p5"]),
            ("tags.rank ?> 2", &["p2", "p4", "p5", "p6"]),
            // raw JSON text of a multi field
            (r#"labels ?= "a""#, &[]),
            (r#"labels ~ "c""#, &["p2", "p4"]),
            // lengths
            ("labels:length = 2", &["p1"]),
            ("tags:length >= 2", &["p1", "p4", "p5"]),
            ("labels:length = 0", &["p3"]),
        ];
        for (f, want) in cases {
            assert_eq!(w.filter("su", "posts", f).await, Some(names_of(want)), "{f}");
        }
    }

    async fn relation_paths_back_relations_and_json(srv) {
        let w = seed(srv).await;
        let cases: &[(&str, &[&str])] = &[
            (r#"author.name = "Alice""#, &["p1", "p5"]),
            ("author.age > 26", &["p1", "p4", "p5"]),
            (r#"author.profiles_via_user.bio = "A bio""#, &["p1", "p5"]),
            (r#"comments_via_post.user.name ?= "Bob""#, &["p1", "p4"]),
            (r#"author.comments_via_user.text ?= "ok""#, &["p1", "p5"]),
            (r#"comments_via_post.post.title ?= "Hello World""#, &["p1"]),
            (r#"meta.s = "str""#, &["p1", "p5"]),
            ("meta.n.x > 1", &["p2", "p4"]),
            ("meta.k.1 = 2", &["p1"]),
            ("meta.arr.0.a = 1", &["p5"]),
            ("meta.0 = 1", &["p6"]),
            ("loc.lat > 45", &["p2", "p4"]),
            (r#"author.name:lower = "carol""#, &["p4"]),
        ];
        for (f, want) in cases {
            assert_eq!(w.filter("su", "posts", f).await, Some(names_of(want)), "{f}");
        }
    }

    async fn macros_and_functions(srv) {
        let w = seed(srv).await;
        let all = &["p1", "p2", "p3", "p4", "p5", "p6"][..];
        let cases: &[(&str, &[&str])] = &[
            // empty dates compare as "" (below every date), on both engines
            ("pubdate < @now", &["p1", "p2", "p3", "p5", "p6"]),
            ("pubdate > @now", &["p4"]),
            ("pubdate > @yesterday && pubdate < @tomorrow", &[]),
            ("pubdate < @todayStart && pubdate > \"2022-01-01\"", &["p1", "p5"]),
            ("pubdate > @yearEnd", &["p4"]),
            ("@year > 2000 && @month >= 1 && @month <= 12 && @weekday < 7", all),
            ("@todayStart < @todayEnd && @monthStart < @monthEnd && @yearStart < @yearEnd", all),
            ("@hour >= 0 && @minute < 60 && @second < 60 && @day >= 1", all),
            ("geoDistance(loc.lon, loc.lat, 23.3, 42.7) < 5", &["p1", "p5"]),
            ("geoDistance(loc.lon, loc.lat, 2.35, 48.85) < 1", &["p2"]),
            ("geoDistance(0, 0, 0, 0) = 0", all),
            ("strftime('%Y', pubdate) = '2024'", &["p1", "p5"]),
            ("strftime('%Y-%m', pubdate) = '2024-01'", &["p1"]),
        ];
        for (f, want) in cases {
            assert_eq!(w.filter("su", "posts", f).await, Some(names_of(want)), "{f}");
        }
    }

    async fn collection_and_request_as_superuser(srv) {
        let w = seed(srv).await;
        let all = &["p1", "p2", "p3", "p4", "p5", "p6"][..];
        let cases: &[(&str, &[&str])] = &[
            ("@collection.stats.post ?= id", &["p1", "p4"]),
            // one shared join: the same stats row must match both
            ("@collection.stats.post ?= id && @collection.stats.total ?> 1", &["p1"]),
            ("@collection.stats:s.post ?= id && @collection.stats:s.total ?> 1", &["p1"]),
            ("@collection.stats.total > 3", &[]),
            ("@collection.users.name ?= author.name", &["p1", "p2", "p4", "p5", "p6"]),
            (r#"@request.auth.collectionName = "_superusers""#, all),
            (r#"@request.method = "GET" && @request.context = "default""#, all),
            ("@request.query.nosuch = null && @request.headers.x_nosuch = null", all),
            ("@request.auth.id = author", &[]),
        ];
        for (f, want) in cases {
            assert_eq!(w.filter("su", "posts", f).await, Some(names_of(want)), "{f}");
        }
    }

    async fn injection_in_filter_values_and_field_names(srv) {
        let w = seed(srv).await;
        for f in [
            r#"title = "'; DROP TABLE posts; --""#,
            r#"title = '"; DROP TABLE posts; --'"#,
            r#"title = "x\" || 1=1 --""#,
            r#"title ~ "%' OR '1'='1""#,
            r#"title = "🙂""#,
            r#"title = "\u0000""#,
        ] {
            assert_eq!(w.filter("su", "posts", f).await, Some(vec![]), "{f}");
            assert_eq!(w.filter("guest", "posts", f).await, Some(vec![]), "{f}");
        }
        for f in [
            "title = 'a''b'",
            r#"title = "a" OR 1=1"#,
            r#"title = "a"; DELETE FROM posts"#,
            "`title` = 1",
            "title/**/= 1",
            "title = 1 -- x",
            "title = (SELECT 1)",
            "meta.a'b = 1",
            r#""title" = "x""#,
            "posts.title = 1",
            "title; DROP TABLE posts = 1",
            "tit\u{200b}le = 1",
        ] {
            let got = w.filter("su", "posts", f).await;
            assert!(got.is_none() || got == Some(vec![]), "{f}: {got:?}");
        }
        w.assert_posts_intact().await;
    }
}
