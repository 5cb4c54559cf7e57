pub mod auth;
pub mod collections;
pub mod confirm;
pub mod jobs;
pub mod logs;
pub mod records;
pub mod settings;
pub mod webhooks;

use std::collections::HashMap;

/// The query string as a map (first value of each key); an unreadable one is empty.
pub fn query(raw: Option<&str>) -> HashMap<String, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.unwrap_or("")).unwrap_or_default();
    let mut m = HashMap::new();
    for (k, v) in pairs {
        m.entry(k).or_insert(v);
    }
    m
}

/// Everything but RFC 3986's unreserved characters, so `-title` stays readable in links.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A value for a path segment or query-string component.
pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}
