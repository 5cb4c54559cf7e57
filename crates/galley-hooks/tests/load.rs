//! Loading hook files: errors name the file and line; PocketBase names Galley does not
//! offer fail at load with their name, never as a silent no-op.

use galley_hooks::{Hooks, HooksConfig, LoadError};

fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Hooks, LoadError>) {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, src) in files {
        std::fs::write(dir.path().join(name), src).expect("write");
    }
    let r = Hooks::load(HooksConfig {
        dir: Some(dir.path().to_path_buf()),
        watch: false,
        ..Default::default()
    });
    (dir, r)
}

fn error(files: &[(&str, &str)]) -> String {
    match load(files).1 {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_broken_file_is_reported_with_its_line() {
    let e = error(&[(
        "a.pb.js",
        "routerAdd(\"GET\", \"/a\", (e) => e.json(200, {}))\n\nthrow new Error(\"boom\")\n",
    )]);
    assert!(e.contains("a.pb.js:3"), "{e}");
    assert!(e.contains("boom"), "{e}");
    let e = error(&[(
        "b.pb.js",
        "routerAdd(\"GET\", \"/b\", (e) => {\n  e.json(200, {})\n\n",
    )]);
    assert!(e.contains("b.pb.js"), "{e}");
}

#[tokio::test]
async fn unsupported_names_fail_with_their_name() {
    let e = error(&[("c.pb.js", "cronAdd(\"x\", \"61 * * * *\", () => {})")]);
    assert!(e.contains("cronAdd(\"x\", \"61 * * * *\")"), "{e}");
    let e = error(&[("j.pb.js", "jobAdd(\"mail\", () => {})")]);
    assert!(e.contains("Galley's own"), "{e}");
    let e = error(&[("m.pb.js", "migrate(() => {})")]);
    assert!(e.contains("migrations folder"), "{e}");
    for (name, src) in [
        (
            "onRecordAfterCreateError",
            "onRecordAfterCreateError((e) => e.next())",
        ),
        ("$filesystem", "const f = $filesystem.s3"),
        ("onCollectionCreate", "onCollectionCreate((e) => e.next())"),
    ] {
        let e = error(&[("u.pb.js", src)]);
        assert!(
            e.contains(name) && e.contains("Galley does not offer it"),
            "{name}: {e}"
        );
    }
}

#[tokio::test]
async fn registrations_are_counted_and_files_without_hooks_load() {
    let (_d, r) = load(&[
        (
            "1.pb.js",
            "routerAdd(\"GET\", \"/x/{id}\", (e) => e.json(200, {}))",
        ),
        ("2.pb.js", "onRecordCreate((e) => e.next(), \"posts\")"),
        ("notes.txt", "not javascript"),
    ]);
    let hooks = r.expect("loads");
    assert!(hooks.registry().has_routes());
    let e = error(&[(
        "dup.pb.js",
        "routerAdd(\"GET\", \"/x\", (e) => {}); routerAdd(\"GET\", \"/x\", (e) => {})",
    )]);
    assert!(e.contains("/x"), "{e}");
}
