#![allow(dead_code)]
include!("schema.rs");

use galley_expr::{AuthInfo, CompileOptions, RequestInfo};
use serde_json::json;

pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(2024, 5, 17, 13, 45, 30)
        .single()
        .expect("time")
}

pub fn guest() -> RequestInfo {
    RequestInfo {
        method: "GET".into(),
        context: "default".into(),
        ..Default::default()
    }
}

pub fn user_req() -> RequestInfo {
    let mut r = guest();
    r.auth = Some(AuthInfo {
        collection_id: "pbc_users".into(),
        collection_name: "users".into(),
        record: json!({"id": "u1", "email": "u1@example.com", "emailVisibility": false,
                       "verified": true, "name": "Alice", "friends": ["u2", "u3"]})
        .as_object()
        .cloned()
        .unwrap_or_default(),
        is_superuser: false,
    });
    r.query.insert("q".into(), json!("hello"));
    r.headers.insert("x_token".into(), json!("abc"));
    r.body = Some(
        json!({"title": "New", "views": "12", "tags": ["t1", "t2"], "author": "u2"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    r.method = "PATCH".into();
    r
}

pub fn superuser() -> CompileOptions {
    CompileOptions::client(true, now())
}
pub fn client() -> CompileOptions {
    CompileOptions::client(false, now())
}
pub fn rule() -> CompileOptions {
    CompileOptions::rule(now())
}

/// `text -- [params]` for snapshots.
pub fn show(sql: &galley_sql::Sql) -> String {
    let params: Vec<String> = sql.params.iter().map(|p| format!("{p:?}")).collect();
    format!("{} -- [{}]", sql.text, params.join(", "))
}

/// The fragment with its parameters written in as SQL literals — only for feeding the
/// generated SQL to a database CLI in checks, never for real queries.
pub fn inline_params(sql: &galley_sql::Sql) -> String {
    use galley_sql::SqlValue;
    let d = sql.dialect();
    let mut text = sql.text.clone();
    for (i, p) in sql.params.iter().enumerate().rev() {
        let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let lit = match p {
            SqlValue::Null => "NULL".to_owned(),
            SqlValue::Int(i) => i.to_string(),
            SqlValue::Real(f) => format!("{f:?}"),
            SqlValue::Text(s) => q(s),
            SqlValue::Bool(b) => d.bool_literal(*b).to_owned(),
            SqlValue::Json(j) => q(&j.to_string()),
            SqlValue::Timestamp(t) => q(&t.to_rfc3339()),
        };
        let ph = d.placeholder(i + 1);
        text = text.replace(&ph, &lit);
    }
    text
}
