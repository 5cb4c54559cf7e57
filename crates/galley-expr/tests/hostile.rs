//! Hostile input never panics and never reaches the SQL text: it is an error or a bound
//! parameter.
mod common;
use common::*;
use galley_expr::{compile_filter, compile_sort, parse, ExprError};
use galley_sql::{POSTGRES, SQLITE};

const HOSTILE: &[&str] = &[
    "title = \"'; DROP TABLE posts; --\"",
    "title = '\\'; DROP TABLE posts; --'",
    "title ~ \"\\\\\\\\%\"",
    "title = \"\u{0}\u{1}\u{202e}ünïcødé 🎉\"",
    "título = 1",
    "ünïcødé.x = 1",
    "title = 1e999",
    "views > 99999999999999999999999999999999999999999999999999999999",
    "views > -99999999999999999999999999999999999.5",
    "meta.a'b = 1",
    "meta.\"x\" = 1",
    "@collection.posts\";--.id = 1",
    "@request.query.a'b = 1",
    "tags.title = ''''",
    "title = \"\\\"",
    "(((((title = 1",
    "title = 1))))",
    "&& || ==",
    "title ?",
    "geoDistance(1,2,3)",
    "geoDistance(geoDistance(geoDistance(1,2,3,4),2,3,4),2,3,4) > 1",
    "strftime(title) = 1",
    "strftime('%Q', pubdate) = 1",
    "a.b.c.d.e.f.g.h = 1",
    "tags.tags.tags = 1",
    "author.friends.friends.friends.friends.friends.friends.friends.name = 1",
    "//only a comment",
    "",
    "   ",
    "#x = 1",
    "@nope = 1",
    "title:nope = 1",
    "title:isset = true",
    "views:each = 1",
    "title = @request.body.title:changed",
];

fn check(expr: &str) {
    let schema = test_schema();
    let posts = schema.find("posts").expect("posts");
    let req = user_req();
    for opts in [client(), superuser(), rule()] {
        for d in [&SQLITE, &POSTGRES] {
            if let Ok(sql) = compile_filter(&schema, posts, "posts", expr, &req, &opts, d) {
                assert!(!sql.text.contains("DROP"), "{expr}: {}", sql.text);
                assert!(!sql.text.contains("ünï"), "{expr}: {}", sql.text);
                assert!(!sql.text.contains(";--"), "{expr}: {}", sql.text);
            }
            let _ = compile_sort(&schema, posts, "posts", expr, &req, &opts, d);
        }
    }
}

#[test]
fn hostile_inputs_are_errors_or_parameters() {
    for e in HOSTILE {
        check(e);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}title = 1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(matches!(parse(&deep), Err(ExprError::TooLong { .. })));
    let deep = format!("{}title = 1{}", "(".repeat(1_700), ")".repeat(1_700));
    assert!(matches!(
        parse(&deep),
        Err(ExprError::TooDeep { pos: 32, .. })
    ));
    let ok = format!("{}title = 1{}", "(".repeat(32), ")".repeat(32));
    assert!(parse(&ok).is_ok());
    check(&deep);
}

#[test]
fn limits() {
    let long = format!("title = \"{}\"", "x".repeat(3500));
    assert!(matches!(parse(&long), Err(ExprError::TooLong { .. })));
    let many = vec!["views = 1"; 201].join(" && ");
    assert!(matches!(
        parse(&many),
        Err(ExprError::TooManyExpressions { max: 200 })
    ));
    assert!(parse(&vec!["views = 1"; 200].join(" && ")).is_ok());
    let schema = test_schema();
    let posts = schema.find("posts").expect("posts");
    let joins = (0..21)
        .map(|i| format!("@collection.tags:a{i}.title ?= 'x'"))
        .collect::<Vec<_>>()
        .join(" && ");
    let r = compile_filter(
        &schema,
        posts,
        "posts",
        &joins,
        &user_req(),
        &superuser(),
        &SQLITE,
    );
    assert!(matches!(r, Err(ExprError::TooManyJoins { .. })), "{r:?}");
    let deep_rel = "author.friends.friends.friends.friends.friends.friends.name = 1";
    let r = compile_filter(
        &schema,
        posts,
        "posts",
        deep_rel,
        &user_req(),
        &superuser(),
        &SQLITE,
    );
    assert!(
        matches!(r, Err(ExprError::TooManyRelations { .. })),
        "{r:?}"
    );
}

/// A tiny deterministic generator of token soup: a fuzz-ish loop that runs in `cargo test`.
#[test]
fn token_soup_never_panics() {
    const PIECES: &[&str] = &[
        "title",
        "views",
        "tags.title",
        "author.name",
        "labels:each",
        "meta.a.0",
        "loc.lat",
        "@request.auth.id",
        "@request.body.tags:each",
        "@collection.tags:x.title",
        "null",
        "true",
        "\"x\"",
        "'%_\\\\'",
        "-1.5",
        "999999999999999999999",
        "=",
        "!=",
        "?=",
        "~",
        "?!~",
        ">",
        "<=",
        "&&",
        "||",
        "(",
        ")",
        ",",
        "geoDistance(",
        "strftime(",
        "@now",
        "comments_via_post.body",
        "//c\n",
        "\"",
        "'",
        ":",
        "..",
        "#",
        "@",
        "tags:length",
        "@request.body.views:changed",
        "secretdoc",
        "author.email",
    ];
    let schema = test_schema();
    let posts = schema.find("posts").expect("posts");
    let req = user_req();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..4000 {
        let mut s = String::new();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = (seed % 12) as usize + 1;
        let mut x = seed;
        for _ in 0..n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s.push_str(PIECES[(x >> 33) as usize % PIECES.len()]);
            s.push(' ');
        }
        for opts in [client(), superuser(), rule()] {
            for d in [&SQLITE, &POSTGRES] {
                let _ = compile_filter(&schema, posts, "posts", &s, &req, &opts, d);
                let _ = compile_sort(&schema, posts, "posts", &s, &req, &opts, d);
            }
        }
    }
}
