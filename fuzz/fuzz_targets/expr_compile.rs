#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

include!("../../crates/galley-expr/tests/common/schema.rs");

fn schema() -> &'static galley_types::Schema {
    static S: OnceLock<galley_types::Schema> = OnceLock::new();
    S.get_or_init(test_schema)
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let schema = schema();
    let Some(posts) = schema.find("posts") else {
        return;
    };
    let mut req = galley_expr::RequestInfo::default();
    req.auth = Some(galley_expr::AuthInfo {
        collection_id: "pbc_users".into(),
        collection_name: "users".into(),
        record: serde_json::Map::new(),
        is_superuser: false,
    });
    let now = chrono::Utc::now();
    for opts in [
        galley_expr::CompileOptions::client(false, now),
        galley_expr::CompileOptions::client(true, now),
        galley_expr::CompileOptions::rule(now),
    ] {
        for d in [&galley_sql::SQLITE, &galley_sql::POSTGRES] {
            if let Ok(sql) = galley_expr::compile_filter(schema, posts, "posts", s, &req, &opts, d) {
                // every placeholder refers to a bound parameter
                assert!(sql.params.len() < 100_000);
            }
            let _ = galley_expr::compile_sort(schema, posts, "posts", s, &req, &opts, d);
        }
    }
});
