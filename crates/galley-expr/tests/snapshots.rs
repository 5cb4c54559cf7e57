//! Data-driven snapshots: every case compiled on both dialects against the test schema.
mod common;
include!("common/cases.rs");
use common::*;
use galley_expr::{compile_filter, compile_sort, validate_rule};
use galley_sql::{POSTGRES, SQLITE};

#[test]
fn snapshots_both_dialects() {
    let schema = test_schema();
    let posts = schema.find("posts").expect("posts");
    let req = user_req();
    let mut failures = Vec::new();
    for &(mode, expr, want_sqlite, want_pg) in CASES {
        let opts = match mode {
            "client" | "csort" => client(),
            "rule" => rule(),
            _ => superuser(),
        };
        for (d, want) in [(&SQLITE, want_sqlite), (&POSTGRES, want_pg)] {
            let got = if mode.ends_with("sort") {
                compile_sort(&schema, posts, "posts", expr, &req, &opts, d)
            } else {
                compile_filter(&schema, posts, "posts", expr, &req, &opts, d)
            };
            let got = match got {
                Ok(sql) => show(&sql),
                Err(e) => format!("ERROR {e}"),
            };
            if got != want {
                failures.push(format!(
                    "[{}] {expr}\n  want {want}\n  got  {got}",
                    d.name()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn placeholders_match_params() {
    let schema = test_schema();
    let posts = schema.find("posts").expect("posts");
    for &(mode, expr, _, _) in CASES {
        if mode.ends_with("sort") {
            continue;
        }
        for d in [&SQLITE, &POSTGRES] {
            let opts = if mode == "rule" { rule() } else { superuser() };
            if let Ok(sql) = compile_filter(&schema, posts, "posts", expr, &user_req(), &opts, d) {
                for n in 1..=sql.params.len() {
                    assert!(sql.text.contains(&d.placeholder(n)), "{expr}: ${n} unused");
                }
                assert!(!sql.text.contains(&d.placeholder(sql.params.len() + 1)));
            }
        }
    }
}

#[test]
fn guest_request_values_are_null() {
    let schema = test_schema();
    let posts = schema.find("posts").expect("posts");
    let sql = compile_filter(
        &schema,
        posts,
        "posts",
        "@request.auth.id = author",
        &guest(),
        &rule(),
        &SQLITE,
    )
    .expect("compile");
    assert_eq!(
        show(&sql),
        r#"('' = "posts"."author" OR "posts"."author" IS NULL) -- []"#
    );
}

#[test]
fn locked_list_rule_hides_joined_rows() {
    let schema = test_schema();
    let tags = schema.find("tags").expect("tags");
    // post_stats has a null listRule: a client filter joining it sees no rows.
    let comments = schema.find("comments").expect("comments");
    let sql = compile_filter(
        &schema,
        comments,
        "comments",
        "post.title = 'x'",
        &guest(),
        &client(),
        &SQLITE,
    )
    .expect("compile");
    assert!(sql.text.contains(r#"LEFT JOIN "posts""#), "{}", sql.text);
    let sql = compile_filter(
        &schema,
        tags,
        "tags",
        "owner.name = 'x'",
        &guest(),
        &client(),
        &SQLITE,
    )
    .expect("compile");
    // users.listRule = "id = @request.auth.id" with a guest: id = NULL-ish check
    assert!(
        sql.text.contains(r#"ON "__r1"."id" = "tags"."owner" AND"#),
        "{}",
        sql.text
    );
}

#[test]
fn validate_rule_reports_unknown_fields() {
    let schema = test_schema();
    let posts = schema.find("posts").expect("posts");
    assert!(validate_rule(&schema, posts, "author.name = @request.auth.name").is_ok());
    assert!(validate_rule(&schema, posts, "secretdoc = 'x'").is_ok());
    let e = validate_rule(&schema, posts, "views > 1 && nope = 1").expect_err("must fail");
    assert_eq!(e.to_string(), "unknown field \"nope\" at position 13");
    let e = validate_rule(&schema, posts, "views >").expect_err("must fail");
    assert_eq!(
        e.to_string(),
        "syntax error at position 7: expected an operand"
    );
}
