//! The generic `fields=` response picker: `id,title,expand.author.name,*,body:excerpt(200,true)`.

use serde_json::{Map, Value};

#[derive(Debug, Default)]
struct Node {
    all: bool,
    excerpt: Option<(usize, bool)>,
    children: Vec<(String, Node)>,
}

impl Node {
    fn child(&mut self, key: &str) -> &mut Node {
        if let Some(i) = self.children.iter().position(|(k, _)| k == key) {
            return &mut self.children[i].1;
        }
        self.children.push((key.to_owned(), Node::default()));
        let last = self.children.len() - 1;
        &mut self.children[last].1
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse(spec: &str) -> Node {
    let mut root = Node::default();
    for item in split_top(spec) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (path, modifier) = match item.split_once(':') {
            Some((p, m)) => (p, Some(m)),
            None => (item, None),
        };
        let mut node = &mut root;
        let segments: Vec<&str> = path.split('.').collect();
        for (i, seg) in segments.iter().enumerate() {
            if *seg == "*" && i == segments.len() - 1 {
                node.all = true;
                break;
            }
            node = node.child(seg);
            if i == segments.len() - 1 {
                if let Some(m) = modifier {
                    node.excerpt = parse_excerpt(m);
                }
            }
        }
    }
    root
}

fn parse_excerpt(m: &str) -> Option<(usize, bool)> {
    let args = m.trim().strip_prefix("excerpt(")?.strip_suffix(')')?;
    let mut it = args.split(',').map(str::trim);
    let n = it.next()?.parse().ok()?;
    let ellipsis = matches!(it.next(), Some("true" | "1" | "t"));
    Some((n, ellipsis))
}

/// Strips HTML tags and truncates to `max` characters, as PocketBase's `:excerpt`.
pub fn excerpt(s: &str, max: usize, ellipsis: bool) -> String {
    let mut text = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= max {
        return collapsed;
    }
    let mut out: String = collapsed.chars().take(max).collect();
    out = out.trim_end().to_owned();
    if ellipsis {
        out.push_str("...");
    }
    out
}

fn apply(v: &Value, node: &Node) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.iter().map(|x| apply(x, node)).collect()),
        Value::Object(o) => {
            let mut out = Map::new();
            if node.all {
                for (k, val) in o {
                    out.insert(k.clone(), val.clone());
                }
            }
            for (k, child) in &node.children {
                if let Some(val) = o.get(k) {
                    out.insert(k.clone(), apply_leaf(val, child));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn apply_leaf(v: &Value, node: &Node) -> Value {
    if let (Some((n, e)), Value::String(s)) = (node.excerpt, v) {
        return Value::String(excerpt(s, n, e));
    }
    if node.children.is_empty() && !node.all {
        return v.clone();
    }
    apply(v, node)
}

/// Whether a `fields` spec is well formed. As PocketBase's tokenizer, only unbalanced
/// quotes make it malformed; unknown names simply pick nothing.
pub fn is_valid(spec: &str) -> bool {
    spec.len() <= 4000
        && ['\'', '"', '`']
            .iter()
            .all(|q| spec.matches(*q).count() % 2 == 0)
}

/// Applies a `fields` spec to a response body. List results are picked per item.
pub fn pick(body: Value, spec: &str) -> Value {
    if spec.trim().is_empty() {
        return body;
    }
    let node = parse(spec);
    match body {
        Value::Object(mut o) if o.contains_key("items") && o.contains_key("perPage") => {
            if let Some(items) = o.get("items") {
                let picked = apply(items, &node);
                o.insert("items".into(), picked);
            }
            Value::Object(o)
        }
        other => apply(&other, &node),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn picks_paths() {
        let v = json!({"id": "1", "title": "t", "expand": {"author": {"name": "A", "email": "x"}}});
        assert_eq!(
            pick(v.clone(), "id,expand.author.name"),
            json!({"id": "1", "expand": {"author": {"name": "A"}}})
        );
        assert_eq!(
            pick(v, "*"),
            json!({"id": "1", "title": "t", "expand": {"author": {"name": "A", "email": "x"}}})
        );
    }

    #[test]
    fn rejects_malformed_specs() {
        assert!(is_valid(
            "id,title,expand.author.name,*,body:excerpt(20,true)"
        ));
        assert!(!is_valid("id'; DROP TABLE posts; --"));
        assert!(is_valid("id,\"title\",ü,title\\"));
    }

    #[test]
    fn excerpt_strips_html() {
        let v = json!({"body": "<p>Hello <b>big</b> world</p>"});
        assert_eq!(
            pick(v, "body:excerpt(9,true)"),
            json!({"body": "Hello big..."})
        );
    }

    #[test]
    fn list_results_pick_items() {
        let v = json!({"items": [{"id": "1", "x": 2}], "page": 1, "perPage": 30, "totalItems": 1, "totalPages": 1});
        assert_eq!(pick(v, "id")["items"], json!([{"id": "1"}]));
    }
}
