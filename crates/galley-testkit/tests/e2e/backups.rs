//! `/api/backups` as PocketBase 0.40.6 answers it (checked against the real server): on
//! SQLite a zip of the data made while the server runs, downloaded with a superuser file
//! token, restored with a restart; on PostgreSQL a 400 pointing at pg_dump. Hostile input:
//! names with paths, uploads that are no zip, zip bombs, zips of other applications.
//! Backups exist only on SQLite, so these are one test per engine by hand
//! (`backups::<test>`), not `both_engines!`.

use galley_testkit::{Engine, Method, Reply, TestServer};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use std::io::Write;

async fn upload(srv: &TestServer, name: &str, bytes: Vec<u8>) -> Reply {
    let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()));
    let rb = srv
        .request(Method::POST, "/api/backups/upload")
        .header("Authorization", &srv.token)
        .multipart(form);
    TestServer::read(rb.send().await.expect("upload")).await
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).expect("entry");
        w.write_all(data).expect("write");
    }
    w.finish().expect("zip").into_inner()
}

async fn file_token(srv: &TestServer, token: &str) -> String {
    let r = srv
        .send(Method::POST, "/api/files/token", Some(token), None)
        .await;
    r.body["token"].as_str().expect("file token").to_owned()
}

async fn titles(srv: &TestServer) -> Vec<String> {
    let r = srv
        .su(
            Method::GET,
            "/api/collections/notes/records?sort=t&perPage=1000",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["t"].as_str().expect("t").to_owned())
        .collect()
}

async fn restore_and_restart(srv: &mut TestServer, key: &str) {
    let r = srv
        .su(Method::POST, &format!("/api/backups/{key}/restore"), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(srv.ops.backups.is_restart_requested());
    srv.restart().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_is_pointed_at_its_own_tools() {
    let Some(srv) = TestServer::start(Engine::Postgres).await else {
        return;
    };
    for (m, path) in [
        (Method::GET, "/api/backups"),
        (Method::POST, "/api/backups"),
        (Method::DELETE, "/api/backups/a.zip"),
        (Method::POST, "/api/backups/a.zip/restore"),
    ] {
        let r = srv.su(m, path, Some(json!({}))).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        r.assert_error_shape();
        assert!(
            r.body["message"]
                .as_str()
                .expect("message")
                .contains("pg_dump"),
            "{}",
            r.body
        );
    }
    let r = upload(&srv, "a.zip", zip_of(&[("data.db", b"x")])).await;
    assert_eq!(r.status, 400);
    assert!(r.body["message"]
        .as_str()
        .expect("message")
        .contains("pg_dump"));
}

/// The backups listed, by key.
async fn backup_keys(srv: &TestServer) -> Vec<String> {
    let r = srv.su(Method::GET, "/api/backups", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .as_array()
        .expect("list")
        .iter()
        .map(|b| b["key"].as_str().expect("key").to_owned())
        .collect()
}

async fn cron_ids(srv: &TestServer) -> Vec<Value> {
    let r = srv.su(Method::GET, "/api/crons", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body.as_array().expect("crons").clone()
}

/// Runs the backups cron entry now and waits for the scheduled backup count to reach `n`
/// after the run (pruning happens right after the backup is written).
async fn run_scheduled(srv: &TestServer, expect_new: usize) -> Vec<String> {
    let before: Vec<String> = backup_keys(srv).await;
    let r = srv
        .su(Method::POST, "/api/crons/__pbAutoBackup__", None)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let keys = backup_keys(srv).await;
        let fresh = keys.iter().filter(|k| !before.contains(k)).count();
        if fresh >= expect_new {
            // Let the pruning that follows the write finish.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            return backup_keys(srv).await;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled backup: {keys:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_follow_the_settings() {
    let Some(srv) = TestServer::start(Engine::Sqlite).await else {
        return;
    };
    // PocketBase's checks, word for word (checked against 0.40.6).
    let r = srv
        .su(
            Method::PATCH,
            "/api/settings",
            Some(json!({"backups": {"cron": "bad cron", "cronMaxKeep": 0}})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["data"],
        json!({"backups": {
            "cron": {"code": "validation_invalid_cron", "message": "Invalid cron expression - must be a valid macro or to have exactly 5 space separated segments."},
            "cronMaxKeep": {"code": "validation_required", "message": "Cannot be blank."}
        }})
    );
    let r = srv
        .su(
            Method::PATCH,
            "/api/settings",
            Some(json!({"backups": {"cron": "", "cronMaxKeep": -1}})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["data"]["backups"]["cronMaxKeep"]["code"],
        "validation_min_greater_equal_than_required"
    );
    assert!(!cron_ids(&srv)
        .await
        .iter()
        .any(|c| c["id"] == "__pbAutoBackup__"));

    // A schedule adds PocketBase's cron entry, last in the list.
    let r = srv
        .su(
            Method::PATCH,
            "/api/settings",
            Some(json!({"backups": {"cron": "0 3 * * *", "cronMaxKeep": 2}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let crons = cron_ids(&srv).await;
    assert_eq!(
        crons.last(),
        Some(&json!({"id": "__pbAutoBackup__", "expression": "0 3 * * *"})),
        "{crons:?}"
    );

    // A manual backup is never pruned; scheduled ones beyond cronMaxKeep are, oldest first.
    let r = srv
        .su(
            Method::POST,
            "/api/backups",
            Some(json!({"name": "manual.zip"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let mut made = Vec::new();
    for _ in 0..3 {
        let keys = run_scheduled(&srv, 1).await;
        let newest = keys
            .iter()
            .filter(|k| k.starts_with("@auto_pb_backup_") && !made.contains(*k))
            .max()
            .expect("a new scheduled backup")
            .clone();
        made.push(newest);
        // Names carry the time to the second.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let keys = backup_keys(&srv).await;
    let auto: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("@auto_pb_backup_"))
        .collect();
    assert_eq!(auto, vec![&made[1], &made[2]], "{keys:?}");
    assert!(keys.contains(&"manual.zip".to_owned()), "{keys:?}");

    // A scheduled backup downloads, restores and deletes like any other.
    let token = file_token(&srv, &srv.token).await;
    let res = srv
        .request(
            Method::GET,
            &format!("/api/backups/{}?token={token}", made[2]),
        )
        .send()
        .await
        .expect("download");
    assert_eq!(res.status(), 200);
    let bytes = res.bytes().await.expect("bytes");
    let zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).expect("a zip");
    assert!(zip.file_names().any(|n| n == "data.db"));
    let r = srv
        .su(Method::DELETE, &format!("/api/backups/{}", made[1]), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(!backup_keys(&srv).await.contains(&made[1]));

    // No schedule: the entry goes.
    let r = srv
        .su(
            Method::PATCH,
            "/api/settings",
            Some(json!({"backups": {"cron": ""}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!cron_ids(&srv)
        .await
        .iter()
        .any(|c| c["id"] == "__pbAutoBackup__"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_are_refused_on_postgres() {
    let Some(srv) = TestServer::start(Engine::Postgres).await else {
        return;
    };
    let r = srv
        .su(
            Method::PATCH,
            "/api/settings",
            Some(json!({"backups": {"cron": "@daily", "cronMaxKeep": 3}})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    r.assert_error_shape();
    assert_eq!(
        r.body["data"]["backups"]["cron"]["code"],
        "validation_backups_postgres"
    );
    assert!(r.body["data"]["backups"]["cron"]["message"]
        .as_str()
        .expect("message")
        .contains("pg_dump"));
    assert!(!cron_ids(&srv)
        .await
        .iter()
        .any(|c| c["id"] == "__pbAutoBackup__"));
    let r = srv.su(Method::GET, "/api/settings", None).await;
    assert_eq!(r.body["backups"]["cron"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_download_and_restore() {
    let Some(srv) = TestServer::start(Engine::Sqlite).await else {
        return;
    };
    let mut srv = srv;
    srv.create_collection(
        json!({"name": "notes", "listRule": "", "viewRule": "", "createRule": "", "fields": [
            {"name": "t", "type": "text"}, {"name": "doc", "type": "file", "maxSelect": 1}]}),
    )
    .await;
    let form = Form::new().text("t", "before").part(
        "doc",
        Part::bytes(b"hello file".to_vec()).file_name("hello.txt"),
    );
    let r = TestServer::read(
        srv.request(Method::POST, "/api/collections/notes/records")
            .multipart(form)
            .send()
            .await
            .expect("create"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (rec_id, doc) = (
        r.body["id"].as_str().expect("id").to_owned(),
        r.body["doc"].as_str().expect("doc").to_owned(),
    );
    let col_id = srv
        .su(Method::GET, "/api/collections/notes", None)
        .await
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let r = srv
        .su(
            Method::POST,
            "/api/backups",
            Some(json!({"name": "one.zip"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let list = srv.su(Method::GET, "/api/backups", None).await.body;
    assert_eq!(galley_testkit::keys(&list[0]), ["key", "modified", "size"]);
    assert_eq!(list[0]["key"], "one.zip");
    assert!(galley_testkit::is_date(
        list[0]["modified"].as_str().expect("modified")
    ));
    let size = list[0]["size"].as_u64().expect("size");

    // PocketBase's validation of names.
    let r = srv
        .su(
            Method::POST,
            "/api/backups",
            Some(json!({"name": "one.zip"})),
        )
        .await;
    assert_eq!(
        r.body["data"]["name"]["code"],
        "validation_backup_name_exists"
    );
    for bad in [
        "../x.zip",
        "a/b.zip",
        "UP.zip",
        "noext",
        "x y.zip",
        "..%2Fx.zip",
    ] {
        let r = srv
            .su(Method::POST, "/api/backups", Some(json!({"name": bad})))
            .await;
        assert_eq!(
            (r.status, r.body["data"]["name"]["code"].as_str()),
            (400, Some("validation_match_invalid")),
            "{bad}"
        );
    }
    // Without a name: PocketBase's pattern.
    assert_eq!(
        srv.su(Method::POST, "/api/backups", Some(json!({})))
            .await
            .status,
        204
    );
    let list = srv.su(Method::GET, "/api/backups", None).await.body;
    let keys: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|b| b["key"].as_str().expect("key"))
        .collect();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .any(|k| k.starts_with("pb_backup_") && k.ends_with(".zip")),
        "{keys:?}"
    );

    // Download: a superuser's file token, nothing else.
    let token = file_token(&srv, &srv.token).await;
    let res = srv
        .request(Method::GET, &format!("/api/backups/one.zip?token={token}"))
        .send()
        .await
        .expect("download");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"one.zip\""
    );
    let bytes = res.bytes().await.expect("bytes");
    assert_eq!(bytes.len() as u64, size);
    let z = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).expect("a zip");
    let mut names: Vec<&str> = z.file_names().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "auxiliary.db",
            "data.db",
            &format!("storage/{col_id}/{rec_id}/{doc}")
        ]
    );
    srv.guest(Method::GET, "/api/backups/one.zip", None)
        .await
        .assert_error(403, "Insufficient permissions to access the resource.");
    let member = srv.member_token().await;
    let member_file = file_token(&srv, &member).await;
    assert_eq!(
        srv.guest(
            Method::GET,
            &format!("/api/backups/one.zip?token={member_file}"),
            None
        )
        .await
        .status,
        403
    );
    assert_eq!(
        srv.guest(
            Method::GET,
            &format!("/api/backups/nope.zip?token={token}"),
            None
        )
        .await
        .status,
        404
    );
    assert_eq!(
        srv.guest(
            Method::GET,
            &format!("/api/backups/..%2Fdata.db?token={token}"),
            None
        )
        .await
        .status,
        404
    );

    // Later changes, then the restore brings back the backup's state.
    srv.create_record("notes", json!({"t": "after"})).await;
    srv.su(
        Method::DELETE,
        &format!("/api/collections/notes/records/{rec_id}"),
        None,
    )
    .await;
    assert_eq!(titles(&srv).await, ["after"]);
    restore_and_restart(&mut srv, "one.zip").await;
    assert_eq!(titles(&srv).await, ["before"]);
    let f = srv
        .guest(
            Method::GET,
            &format!("/api/files/notes/{rec_id}/{doc}"),
            None,
        )
        .await;
    assert_eq!(f.status, 200, "the record's file is back");
    // The backups themselves stay.
    assert_eq!(
        srv.su(Method::GET, "/api/backups", None)
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    // Delete, and PocketBase's answer for a missing one.
    assert_eq!(
        srv.su(Method::DELETE, "/api/backups/one.zip", None)
            .await
            .status,
        204
    );
    assert_eq!(
        srv.su(Method::DELETE, "/api/backups/one.zip", None)
            .await
            .status,
        400
    );
    srv.su(Method::POST, "/api/backups/one.zip/restore", None)
        .await
        .assert_error(400, "Missing or invalid backup file.");

    // Superusers only.
    srv.guest(Method::GET, "/api/backups", None)
        .await
        .assert_error(
            401,
            "The request requires valid record authorization token.",
        );
    let member = srv.member_token().await;
    assert_eq!(
        srv.send(Method::POST, "/api/backups", Some(&member), Some(json!({})))
            .await
            .status,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_has_every_acknowledged_write() {
    let Some(srv) = TestServer::start(Engine::Sqlite).await else {
        return;
    };
    let mut srv = srv;
    srv.create_collection(json!({"name": "notes", "listRule": "", "createRule": "", "fields": [{"name": "t", "type": "text"}]})).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (stop, acked, url, client) = (
            stop.clone(),
            acked.clone(),
            srv.url.clone(),
            srv.client.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let t = format!("w{w}-{i:05}");
                let r = client
                    .post(format!("{url}/api/collections/notes/records"))
                    .json(&json!({"t": t}))
                    .send()
                    .await
                    .expect("write");
                if r.status() == 200 {
                    acked.lock().expect("lock").push(t);
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let before: Vec<String> = acked.lock().expect("lock").clone();
    let r = srv
        .su(
            Method::POST,
            "/api/backups",
            Some(json!({"name": "load.zip"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in writers {
        w.await.expect("writer");
    }
    let all = acked.lock().expect("lock").len();
    assert!(
        before.len() > 10 && all > before.len(),
        "writes went on during the backup: {} then {all}",
        before.len()
    );
    // The restore checks the database (integrity_check) before it swaps it in.
    restore_and_restart(&mut srv, "load.zip").await;
    let restored = titles(&srv).await;
    let missing: Vec<&String> = before.iter().filter(|t| !restored.contains(t)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged before the backup but not in it: {missing:?}"
    );
    assert!(
        restored.len() < all,
        "writes after the backup are not in it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uploads_and_restores() {
    let Some(srv) = TestServer::start(Engine::Sqlite).await else {
        return;
    };
    // Not a zip: PocketBase's answer.
    let r = upload(&srv, "x.zip", b"not a zip at all".to_vec()).await;
    assert_eq!(
        (r.status, r.body["data"]["file"]["code"].as_str()),
        (400, Some("validation_invalid_mime_type")),
        "{}",
        r.body
    );
    // A zip header on garbage.
    let r = upload(&srv, "x.zip", b"PK\x03\x04garbage".to_vec()).await;
    assert_eq!(
        r.body["data"]["file"]["code"],
        "validation_invalid_mime_type"
    );
    // Names with paths never name a file.
    for name in ["../evil.zip", "a/b.zip", "..", "EVIL.zip"] {
        let r = upload(&srv, name, zip_of(&[("data.db", b"x")])).await;
        assert_eq!(r.status, 400, "{name}: {}", r.body);
    }
    assert_eq!(
        srv.su(Method::GET, "/api/backups", None).await.body,
        json!([])
    );

    let restore = |key: &'static str| {
        let srv = &srv;
        async move {
            srv.su(Method::POST, &format!("/api/backups/{key}/restore"), None)
                .await
        }
    };
    // A zip of another application: no data.db.
    assert_eq!(
        upload(
            &srv,
            "other.zip",
            zip_of(&[("readme.txt", b"hi"), ("app/config.json", b"{}")])
        )
        .await
        .status,
        204
    );
    let r = restore("other.zip").await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["message"]
            .as_str()
            .expect("m")
            .contains("no data.db"),
        "{}",
        r.body
    );
    // A data.db that is no database.
    assert_eq!(
        upload(
            &srv,
            "text.zip",
            zip_of(&[("data.db", b"just text, not SQLite")])
        )
        .await
        .status,
        204
    );
    let r = restore("text.zip").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .expect("m")
            .contains("cannot be restored"),
        "{}",
        r.body
    );
    // A SQLite database another program made.
    let dir = tempfile::tempdir().expect("dir");
    let foreign = galley_store::Store::Sqlite(
        galley_store::sqlite::SqliteStore::open_file(dir.path(), "f.db", &Default::default())
            .expect("db"),
    );
    foreign
        .write(
            |c: &mut dyn galley_store::Conn| -> Result<(), galley_store::StoreError> {
                c.batch("CREATE TABLE accounts (id TEXT); INSERT INTO accounts VALUES ('x')")
            },
        )
        .await
        .expect("write");
    foreign.close().await;
    drop(foreign);
    let db = std::fs::read(dir.path().join("f.db")).expect("read");
    assert_eq!(
        upload(&srv, "foreign.zip", zip_of(&[("data.db", &db)]))
            .await
            .status,
        204
    );
    let r = restore("foreign.zip").await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["message"]
            .as_str()
            .expect("m")
            .contains("not one that Galley made"),
        "{}",
        r.body
    );
    // Entries that try to leave the data folder.
    for (key, name) in [
        ("trav1.zip", "../../evil.txt"),
        ("trav2.zip", "storage/../../evil.txt"),
        ("trav3.zip", "/tmp/evil.txt"),
    ] {
        assert_eq!(
            upload(&srv, key, zip_of(&[("data.db", b"x"), (name, b"evil")]))
                .await
                .status,
            204
        );
        let r = srv
            .su(Method::POST, &format!("/api/backups/{key}/restore"), None)
            .await;
        assert_eq!(r.status, 400, "{name}");
        assert!(
            r.body["message"]
                .as_str()
                .expect("m")
                .contains("unsafe name"),
            "{}",
            r.body
        );
    }
    let data_dir = srv.config.data_dir.clone();
    assert!(!data_dir.join("../evil.txt").exists() && !data_dir.join("../../evil.txt").exists());
    // A zip bomb: 40 MB of zeros in a small zip.
    let zeros = vec![0u8; 40 << 20];
    let bomb = zip_of(&[("data.db", &zeros)]);
    assert!(bomb.len() < 1 << 20);
    assert_eq!(upload(&srv, "bomb.zip", bomb).await.status, 204);
    let r = restore("bomb.zip").await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["message"].as_str().expect("m").contains("zip bomb"),
        "{}",
        r.body
    );
    // Nothing was prepared, nothing restarts, and the data is as it was.
    assert!(!srv.ops.backups.is_restart_requested());
    assert!(
        !data_dir.join(".pending_restore").exists()
            && !data_dir.join(".pending_restore.tmp").exists()
    );
    assert_eq!(
        srv.guest(Method::GET, "/api/health/ready", None)
            .await
            .status,
        200
    );
    let keys: Value = srv
        .su(Method::GET, "/api/backups?fields=key", None)
        .await
        .body;
    assert_eq!(keys.as_array().map(Vec::len), Some(7), "{keys}");
}

/// `settings.backups.s3`: backups go to the bucket (the S3 server the file tests use), and
/// list, download, upload, restore and delete work there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_on_s3() {
    let Some(mut srv) = TestServer::start(Engine::Sqlite).await else {
        return;
    };
    let s3 = galley_testkit::s3::server();
    let bucket = s3.new_bucket().await;
    let r = srv
        .su(
            Method::PATCH,
            "/api/settings",
            Some(json!({"backups": {"s3": s3.settings(&bucket)}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    srv.create_collection(json!({"name": "notes", "listRule": "", "createRule": "", "fields": [{"name": "t", "type": "text"}]}))
        .await;
    srv.create_record("notes", json!({"t": "kept"})).await;
    let r = srv
        .su(
            Method::POST,
            "/api/backups",
            Some(json!({"name": "s3one.zip"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(
        !srv.config.data_dir.join("backups/s3one.zip").exists(),
        "not kept locally"
    );
    let list = srv.su(Method::GET, "/api/backups", None).await.body;
    assert_eq!(list[0]["key"], "s3one.zip", "{list}");
    let size = list[0]["size"].as_u64().expect("size");
    let r = srv
        .su(
            Method::POST,
            "/api/backups",
            Some(json!({"name": "s3one.zip"})),
        )
        .await;
    assert_eq!(
        r.body["data"]["name"]["code"],
        "validation_backup_name_exists"
    );

    let token = file_token(&srv, &srv.token).await;
    let res = srv
        .request(
            Method::GET,
            &format!("/api/backups/s3one.zip?token={token}"),
        )
        .send()
        .await
        .expect("download");
    assert_eq!(res.status(), 200);
    let bytes = res.bytes().await.expect("bytes");
    assert_eq!(bytes.len() as u64, size);
    // The same zip uploaded again under another name goes to the bucket too.
    assert_eq!(upload(&srv, "copy.zip", bytes.to_vec()).await.status, 204);

    srv.create_record("notes", json!({"t": "later"})).await;
    restore_and_restart(&mut srv, "copy.zip").await;
    assert_eq!(titles(&srv).await, ["kept"]);
    let keys: Vec<String> = srv
        .su(Method::GET, "/api/backups", None)
        .await
        .body
        .as_array()
        .expect("list")
        .iter()
        .map(|b| b["key"].as_str().expect("key").to_owned())
        .collect();
    assert_eq!(keys, ["copy.zip", "s3one.zip"]);
    assert_eq!(
        srv.su(Method::DELETE, "/api/backups/s3one.zip", None)
            .await
            .status,
        204
    );
    assert_eq!(
        srv.su(Method::DELETE, "/api/backups/s3one.zip", None)
            .await
            .status,
        400
    );
    srv.su(Method::POST, "/api/backups/s3one.zip/restore", None)
        .await
        .assert_error(400, "Missing or invalid backup file.");
}
