//! galley-core's modules form a ladder: no module imports one that imports it back, at the
//! level of files and at the level of top-level modules (docs/ARCHITECTURE.md). This test
//! reads the sources and fails on the first import circle, naming it, so a new edge that
//! closes a circle is a decision made in review rather than an accident.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`records::write`, `""` for lib.rs) → source text, tests removed.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().and_then(|x| x.to_str()) != Some("rs") {
                continue;
            }
            let rel = p.strip_prefix(src).expect("under src").with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
                parts.pop();
            }
            let text = std::fs::read_to_string(&p).expect("read file");
            // Unit tests may reach anywhere.
            let text = match text.find("#[cfg(test)]") {
                Some(i) => text[..i].to_owned(),
                None => text,
            };
            out.insert(parts.join("::"), text);
        }
    }
    out
}

/// The longest known module that `path` (`a::b::c`) starts with.
fn resolve(mods: &BTreeMap<String, String>, path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|i| parts[..i].join("::"))
        .find(|c| mods.contains_key(c))
}

/// Paths after `crate::` and `super::` (including `use super::{a, b}` groups), comments
/// skipped.
fn references(module: &str, text: &str) -> Vec<String> {
    let parent = module.rsplit_once("::").map(|(p, _)| p).unwrap_or("");
    let join = |base: &str, rest: &str| {
        if base.is_empty() {
            rest.to_owned()
        } else {
            format!("{base}::{rest}")
        }
    };
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect::<String>()
            .trim_end_matches(':')
            .to_owned()
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("");
        for (i, _) in line.match_indices("crate::") {
            out.push(ident(&line[i + 7..]));
        }
        for (i, _) in line.match_indices("super::") {
            let rest = &line[i + 7..];
            if let Some(group) = rest.strip_prefix('{') {
                for item in group.split('}').next().unwrap_or("").split(',') {
                    out.push(join(parent, &ident(item.trim())));
                }
            } else {
                out.push(join(parent, &ident(rest)));
            }
        }
    }
    out
}

/// A circle in `edges`, if there is one (depth-first search).
fn circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        path.push(n.to_owned());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| p == m).unwrap_or(0);
                    let mut c = path[start..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(m, edges, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn graphs() -> (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<String, BTreeSet<String>>,
) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let mut files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in &mods {
        let from_top = m.split("::").next().unwrap_or("").to_owned();
        for r in references(m, text) {
            let Some(t) = resolve(&mods, &r) else {
                continue;
            };
            if &t == m || t.is_empty() {
                continue;
            }
            files.entry(m.clone()).or_default().insert(t.clone());
            let to_top = t.split("::").next().unwrap_or("").to_owned();
            if to_top != from_top && !from_top.is_empty() {
                top.entry(from_top.clone()).or_default().insert(to_top);
            }
        }
    }
    (files, top)
}

#[test]
fn no_import_circle_between_files() {
    let (files, _) = graphs();
    assert!(files.len() > 10, "the sources were not read: {files:?}");
    if let Some(c) = circle(&files) {
        panic!(
            "galley-core files import each other in a circle: {}",
            c.join(" → ")
        );
    }
}

#[test]
fn no_import_circle_between_modules() {
    let (_, top) = graphs();
    if let Some(c) = circle(&top) {
        panic!(
            "galley-core modules import each other in a circle: {}",
            c.join(" → ")
        );
    }
}

#[test]
fn the_floor_imports_nothing_above_it() {
    let (_, top) = graphs();
    let floor = [
        "error",
        "context",
        "rules",
        "rows",
        "settings",
        "catalog",
        "bus",
        "tokens",
        "mail",
        "rate_rules",
        "picker",
    ];
    for f in floor {
        for t in top.get(f).into_iter().flatten() {
            assert!(
                floor.contains(&t.as_str()),
                "the floor module `{f}` imports `{t}`, which is above the floor"
            );
        }
    }
}

#[test]
fn the_detector_sees_a_circle() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        circle(&g).map(|c| c.len()),
        Some(4),
        "a → b → c → a must be found"
    );
    if let Some(s) = g.get_mut("c") {
        s.clear();
    }
    assert_eq!(circle(&g), None);
}
