//! `cargo test -p galley-expr --test dump -- --ignored --nocapture` prints the SQL of the
//! expressions in `DUMP_EXPRS` (one per line, `mode|expr`) for eyeballing and for feeding
//! a real database.
mod common;
use common::*;
use galley_sql::{POSTGRES, SQLITE};

#[test]
#[ignore]
fn dump() {
    let schema = test_schema();
    let posts = schema.find("posts").expect("posts").clone();
    let input = std::env::var("DUMP_EXPRS").unwrap_or_default();
    let inline = std::env::var("DUMP_INLINE").is_ok();
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        let (mode, expr) = line.split_once('|').unwrap_or(("su", line));
        let (opts, req) = match mode {
            "client" => (client(), user_req()),
            "rule" => (rule(), user_req()),
            "sort" => (superuser(), user_req()),
            "csort" => (client(), user_req()),
            _ => (superuser(), user_req()),
        };
        for d in [&SQLITE, &POSTGRES] {
            let r = if mode.ends_with("sort") {
                galley_expr::compile_sort(&schema, &posts, "posts", expr, &req, &opts, d)
            } else {
                galley_expr::compile_filter(&schema, &posts, "posts", expr, &req, &opts, d)
            };
            match r {
                Ok(sql) if inline => println!("{}\t{}\t{}", d.name(), expr, inline_params(&sql)),
                Ok(sql) => println!("{}\t{}\t{}", d.name(), expr, show(&sql)),
                Err(e) => println!("{}\t{}\tERROR {e}", d.name(), expr),
            }
        }
    }
}
