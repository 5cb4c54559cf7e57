//! Background work end to end: `GET /api/crons` / `POST /api/crons/{id}` with PocketBase's
//! answers, cron entries added at runtime from Rust, and mail through the durable queue (a
//! reset mail requested before a stop is sent after the restart, SMTP failures are
//! retried, the dev outbox survives restarts).

use galley_testkit::smtp::SmtpSink;
use galley_testkit::{both_engines, Engine, Method, TestServer};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PASS: &str = "Alice-Pass-1";

async fn people(srv: &TestServer) -> String {
    srv.create_collection(json!({"name": "people", "type": "auth", "createRule": ""}))
        .await;
    srv.create_record(
        "people",
        json!({"email": "alice@example.com", "password": PASS, "passwordConfirm": PASS}),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn smtp_to(srv: &TestServer, port: u16) {
    let r = srv
        .su(Method::PATCH, "/api/settings", Some(json!({
            "smtp": {"enabled": true, "host": "127.0.0.1", "port": port},
            "meta": {"appName": "Acme", "appURL": "http://acme.test", "senderAddress": "noreply@acme.test", "senderName": "Acme"}
        })))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A loopback port with nothing listening.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr").port()
}

async fn start(
    engine: Engine,
    configure: impl FnOnce(&mut galley_core::AppConfig),
) -> Option<TestServer> {
    TestServer::start_with(engine, configure).await
}

both_engines! {
    async fn crons_list_and_run(srv) {
        let r = srv.su(Method::GET, "/api/crons", None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, json!([
            {"id": "__pbDBOptimize__", "expression": "0 0 * * *"},
            {"id": "__pbMFACleanup__", "expression": "0 * * * *"},
            {"id": "__pbOTPCleanup__", "expression": "0 * * * *"},
            {"id": "__pbLogsCleanup__", "expression": "0 */6 * * *"},
        ]));
        let g = srv.guest(Method::GET, "/api/crons", None).await;
        assert_eq!((g.status, g.body.clone()), (401, json!({"data": {}, "message": "The request requires valid record authorization token.", "status": 401})));
        let g = srv.guest(Method::POST, "/api/crons/__pbOTPCleanup__", None).await;
        assert_eq!(g.status, 401);
        // A record token: 403.
        people(&srv).await;
        let login = srv.guest(Method::POST, "/api/collections/people/auth-with-password", Some(json!({"identity": "alice@example.com", "password": PASS}))).await;
        let user = login.body["token"].as_str().expect("token").to_owned();
        let f = srv.send(Method::GET, "/api/crons", Some(&user), None).await;
        assert_eq!((f.status, f.body.clone()), (403, json!({"data": {}, "message": "The authorized record is not allowed to perform this action.", "status": 403})));
        let f = srv.send(Method::POST, "/api/crons/__pbOTPCleanup__", Some(&user), None).await;
        assert_eq!(f.status, 403);
        // Unknown id: PocketBase's 404.
        let n = srv.su(Method::POST, "/api/crons/nope", None).await;
        assert_eq!((n.status, n.body.clone()), (404, json!({"data": {}, "message": "Missing or invalid cron job.", "status": 404})));

        // Run now: the OTP clean-up deletes OTPs older than the collection's OTP duration
        // (180 s by default) and keeps fresh ones.
        let col = srv.su(Method::GET, "/api/collections/people", None).await.body;
        let col_id = col["id"].as_str().expect("id").to_owned();
        let store = srv.app.store_for_tests();
        let now = chrono::Utc::now();
        for (id, age) in [("oldotp000000001", 600), ("newotp000000001", 10)] {
            let col_id = col_id.clone();
            store
                .write(move |c| {
                    let d = c.dialect();
                    let ph: Vec<String> = (1..=4).map(|i| d.placeholder(i)).collect();
                    c.execute(
                        &format!("INSERT INTO \"_otps\" (\"id\", \"collectionRef\", \"recordRef\", \"password\", \"sentTo\", \"attempts\", \"created\", \"updated\") VALUES ({}, {}, 'r', 'x', '', 0, {}, {})", ph[0], ph[1], ph[2], ph[3]),
                        &[id.into(), col_id.into(), galley_sql::SqlValue::Timestamp(now - chrono::Duration::seconds(age)), galley_sql::SqlValue::Timestamp(now)],
                    )
                })
                .await
                .expect("insert otp");
        }
        let r = srv.su(Method::POST, "/api/crons/__pbOTPCleanup__", None).await;
        assert_eq!((r.status, r.body.clone()), (204, Value::Null));
        let mut left = Vec::new();
        for _ in 0..100 {
            left = store
                .read(|c| Ok::<_, galley_store::StoreError>(c.query("SELECT \"id\" FROM \"_otps\" ORDER BY \"id\"", &[])?.iter().map(|r| r.text("id")).collect::<Vec<_>>()))
                .await
                .expect("otps");
            if left.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        assert_eq!(left, ["newotp000000001"]);

        // An entry added at runtime from Rust is listed after the built-ins, runs on POST,
        // and disappears when removed.
        let runs = Arc::new(AtomicUsize::new(0));
        let r2 = runs.clone();
        srv.app.jobs().cron_add("nightly-report", "30 2 * * 1-5", move || {
            let r = r2.clone();
            async move { r.fetch_add(1, Ordering::SeqCst); }
        }).expect("cron_add");
        let list = srv.su(Method::GET, "/api/crons", None).await.body;
        assert_eq!(list.as_array().map(Vec::len), Some(5));
        assert_eq!(list[4], json!({"id": "nightly-report", "expression": "30 2 * * 1-5"}));
        assert_eq!(srv.su(Method::POST, "/api/crons/nightly-report", None).await.status, 204);
        for _ in 0..100 {
            if runs.load(Ordering::SeqCst) == 1 { break; }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(srv.app.jobs().cron_add("bad", "* * *", || async {}).is_err());
        assert!(srv.app.jobs().cron_remove("nightly-report"));
        assert_eq!(srv.su(Method::GET, "/api/crons", None).await.body.as_array().map(Vec::len), Some(4));
        assert_eq!(srv.su(Method::POST, "/api/crons/nightly-report", None).await.status, 404);
    }
}

/// A reset mail requested on a node whose workers never got to it is sent after a restart
/// on the same data, and its link works.
async fn reset_mail_survives_restart(engine: Engine) {
    // No workers: the mail job stays queued, as if the process died right after the 204.
    let Some(srv) = start(engine, |c| c.jobs.concurrency = 0).await else {
        return;
    };
    let sink = SmtpSink::start().await;
    smtp_to(&srv, sink.port).await;
    people(&srv).await;
    let r = srv
        .guest(
            Method::POST,
            "/api/collections/people/request-password-reset",
            Some(json!({"email": "alice@example.com"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let queued = srv.app.jobs().list(None, 10, 0).await.expect("list");
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (
            queued[0].kind.as_str(),
            queued[0].state.as_str(),
            queued[0].attempts
        ),
        ("mail", "queued", 0)
    );
    assert_eq!(queued[0].payload["to"], "alice@example.com");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.mails().is_empty());
    let stopped = srv.stop().await;

    let srv = stopped.start(|c| c.jobs = Default::default()).await;
    let mails = sink.wait_for(1).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["alice@example.com"]);
    assert_eq!(
        mails[0].header("Subject").as_deref(),
        Some("Reset your Acme password")
    );
    let token = mails[0]
        .after("/_/#/auth/confirm-password-reset/")
        .expect("token");
    let r = srv
        .guest(Method::POST, "/api/collections/people/confirm-password-reset", Some(json!({"token": token, "password": "Brand-New-1", "passwordConfirm": "Brand-New-1"})))
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = srv
        .guest(
            Method::POST,
            "/api/collections/people/auth-with-password",
            Some(json!({"identity": "alice@example.com", "password": "Brand-New-1"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Delivered once, and the job is gone.
    for _ in 0..50 {
        if srv
            .app
            .jobs()
            .list(None, 10, 0)
            .await
            .expect("list")
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(srv
        .app
        .jobs()
        .list(None, 10, 0)
        .await
        .expect("list")
        .is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.mails().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mail_survives_restart_sqlite() {
    reset_mail_survives_restart(Engine::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mail_survives_restart_postgres() {
    reset_mail_survives_restart(Engine::Postgres).await
}

/// SMTP down: the mail job fails, keeps its error and is retried with backoff; once SMTP
/// is reachable the mail arrives.
async fn smtp_failure_retried(engine: Engine) {
    let Some(srv) = start(engine, |c| {
        c.jobs.backoff_base = Duration::from_millis(100);
        c.jobs.backoff_max = Duration::from_millis(300);
    })
    .await
    else {
        return;
    };
    smtp_to(&srv, closed_port().await).await;
    let r = srv
        .su(
            Method::POST,
            "/api/settings/test/email",
            Some(json!({"email": "x@example.com", "template": "verification"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let mut failed = None;
    for _ in 0..200 {
        let jobs = srv.app.jobs().list(None, 10, 0).await.expect("list");
        if let Some(j) = jobs
            .into_iter()
            .find(|j| j.attempts >= 2 && !j.last_error.is_empty())
        {
            failed = Some(j);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failed = failed.expect("the mail job failed and was retried");
    assert_eq!(failed.kind, "mail");
    assert_ne!(failed.state, "dead");
    assert!(
        failed.last_error.to_lowercase().contains("connection"),
        "{}",
        failed.last_error
    );
    let sink = SmtpSink::start().await;
    smtp_to(&srv, sink.port).await;
    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0].to, ["x@example.com"]);
    assert_eq!(
        mails[0].header("Subject").as_deref(),
        Some("Verify your Acme email")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_failure_retried_sqlite() {
    smtp_failure_retried(Engine::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_failure_retried_postgres() {
    smtp_failure_retried(Engine::Postgres).await
}

/// With SMTP off, mail lands in the dev outbox, which is stored: it is still there after a
/// restart.
async fn dev_outbox_survives_restart(engine: Engine) {
    let Some(srv) = start(engine, |_| {}).await else {
        return;
    };
    let r = srv
        .su(
            Method::POST,
            "/api/settings/test/email",
            Some(json!({"email": "x@example.com", "template": "password-reset"})),
        )
        .await;
    assert_eq!(r.status, 204);
    let mut items = Value::Null;
    for _ in 0..200 {
        items = srv.su(Method::GET, "/api/galley/outbox", None).await.body;
        if items["totalItems"]
            .as_i64()
            .unwrap_or(items.as_array().map_or(0, |a| a.len() as i64))
            >= 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = srv.stop().await;
    let srv = stopped.start(|_| {}).await;
    let after = srv.su(Method::GET, "/api/galley/outbox", None).await.body;
    assert_eq!(after, items);
    let first = items
        .get("items")
        .and_then(|i| i.get(0))
        .or_else(|| items.get(0))
        .cloned()
        .expect("a mail");
    assert_eq!(first["to"], "x@example.com");
    assert_eq!(first["subject"], "Reset your Galley password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_outbox_survives_restart_sqlite() {
    dev_outbox_survives_restart(Engine::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_outbox_survives_restart_postgres() {
    dev_outbox_survives_restart(Engine::Postgres).await
}

/// Polls `GET /api/jobs/{id}` until `done` holds for its body (404 gives `Null`).
async fn job_until(srv: &TestServer, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let r = srv.su(Method::GET, &format!("/api/jobs/{id}"), None).await;
        last = if r.status == 200 { r.body } else { Value::Null };
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("job {id} never got there: {last}");
}

both_engines! {
    async fn jobs_api_enqueue_list_retry_delete(srv) {
        let runs = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
        let seen = runs.clone();
        srv.app.jobs().register("echo", move |job| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").push(job.payload.clone());
                Ok(())
            }
        });
        let fails = Arc::new(AtomicUsize::new(0));
        let f2 = fails.clone();
        srv.app.jobs().register("always-fails", move |_job| {
            let f = f2.clone();
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                Err(galley_jobs::JobError::permanent("no luck"))
            }
        });

        // Superusers only, as /api/crons.
        let g = srv.guest(Method::GET, "/api/jobs", None).await;
        assert_eq!((g.status, g.body["message"].clone()), (401, json!("The request requires valid record authorization token.")));
        let g = srv.guest(Method::POST, "/api/jobs", Some(json!({"kind": "echo"}))).await;
        assert_eq!(g.status, 401);
        assert!(runs.lock().expect("lock").is_empty());

        // Enqueue: runs with its payload.
        let r = srv.su(Method::POST, "/api/jobs", Some(json!({"kind": "echo", "payload": {"n": 1}}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["duplicate"], json!(false));
        let id = r.body["id"].as_str().expect("id").to_owned();
        assert_eq!(id.len(), 15);
        for _ in 0..200 {
            if !runs.lock().expect("lock").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(*runs.lock().expect("lock"), vec![json!({"n": 1})]);
        // Done jobs are deleted.
        job_until(&srv, &id, Value::is_null).await;

        // A job for later, listed and viewed with what was sent, then deleted.
        let later = json!({"kind": "echo", "payload": {"n": 2}, "queue": "reports", "priority": 5, "runAt": "2999-01-01 00:00:00.000Z", "maxAttempts": 3, "uniqueKey": "report-1"});
        let r = srv.su(Method::POST, "/api/jobs", Some(later.clone())).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let later_id = r.body["id"].as_str().expect("id").to_owned();
        // The same unique key while it is queued: nothing added, the live job's id.
        let r = srv.su(Method::POST, "/api/jobs", Some(later.clone())).await;
        assert_eq!(r.body, json!({"id": later_id, "duplicate": true}));
        let l = srv.su(Method::GET, "/api/jobs?state=queued", None).await;
        assert_eq!(l.status, 200, "{}", l.body);
        assert_eq!((l.body["totalItems"].clone(), l.body["page"].clone(), l.body["perPage"].clone()), (json!(1), json!(1), json!(30)));
        let item = &l.body["items"][0];
        assert_eq!((item["id"].as_str(), item["kind"].as_str(), item["queue"].as_str()), (Some(later_id.as_str()), Some("echo"), Some("reports")));
        assert_eq!((item["payload"].clone(), item["priority"].clone(), item["maxAttempts"].clone(), item["uniqueKey"].clone(), item["attempts"].clone()), (json!({"n": 2}), json!(5), json!(3), json!("report-1"), json!(0)));
        assert_eq!(item["runAt"], json!(chrono::DateTime::parse_from_rfc3339("2999-01-01T00:00:00Z").expect("date").timestamp_millis()));
        let v = srv.su(Method::GET, &format!("/api/jobs/{later_id}"), None).await;
        assert_eq!(&v.body, item);
        // Only dead jobs can be retried.
        let r = srv.su(Method::POST, &format!("/api/jobs/{later_id}/retry"), None).await;
        assert_eq!((r.status, r.body["message"].clone()), (400, json!("only dead jobs can be retried")));
        let d = srv.su(Method::DELETE, &format!("/api/jobs/{later_id}"), None).await;
        assert_eq!(d.status, 204);
        let v = srv.su(Method::GET, &format!("/api/jobs/{later_id}"), None).await;
        assert_eq!((v.status, v.body.clone()), (404, json!({"data": {}, "message": "The requested resource wasn't found.", "status": 404})));
        assert_eq!(srv.su(Method::DELETE, &format!("/api/jobs/{later_id}"), None).await.status, 404);
        assert_eq!(srv.su(Method::POST, "/api/jobs/nope/retry", None).await.status, 404);

        // A job that fails for good is dead with its error; retry runs it again.
        let r = srv.su(Method::POST, "/api/jobs", Some(json!({"kind": "always-fails"}))).await;
        let dead_id = r.body["id"].as_str().expect("id").to_owned();
        let dead = job_until(&srv, &dead_id, |j| j["state"] == "dead").await;
        assert_eq!((dead["lastError"].clone(), dead["attempts"].clone()), (json!("no luck"), json!(1)));
        let l = srv.su(Method::GET, "/api/jobs?state=dead", None).await;
        assert_eq!(l.body["items"].as_array().map(|a| a.iter().map(|j| j["id"].clone()).collect::<Vec<_>>()), Some(vec![json!(dead_id)]));
        let r = srv.su(Method::POST, &format!("/api/jobs/{dead_id}/retry"), None).await;
        assert_eq!(r.status, 204, "{}", r.body);
        for _ in 0..200 {
            if fails.load(Ordering::SeqCst) == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(fails.load(Ordering::SeqCst), 2);
        job_until(&srv, &dead_id, |j| j["state"] == "dead" && j["attempts"] == 1).await;
    }

    async fn jobs_api_bad_input(srv) {
        srv.app.jobs().register("echo", |_job| async { Ok(()) });
        let big = "x".repeat(galley_jobs::queue::MAX_PAYLOAD);
        let cases = [
            (json!({"kind": "no-such-kind"}), "kind", "validation_unknown_kind"),
            (json!({}), "kind", "validation_required"),
            (json!({"kind": ""}), "kind", "validation_required"),
            (json!({"kind": 5}), "kind", "validation_invalid_value"),
            (json!({"kind": "k".repeat(201)}), "kind", "validation_invalid_value"),
            (json!({"kind": "echo", "payload": {"big": big}}), "payload", "validation_max_size"),
            (json!({"kind": "echo", "maxAttempts": 0}), "maxAttempts", "validation_invalid_value"),
            (json!({"kind": "echo", "maxAttempts": 1001}), "maxAttempts", "validation_invalid_value"),
            (json!({"kind": "echo", "priority": "high"}), "priority", "validation_invalid_value"),
            (json!({"kind": "echo", "priority": 1.5}), "priority", "validation_invalid_value"),
            (json!({"kind": "echo", "runAt": "tomorrow"}), "runAt", "validation_invalid_datetime"),
            (json!({"kind": "echo", "uniqueKey": ["a"]}), "uniqueKey", "validation_invalid_value"),
        ];
        for (body, field, code) in cases {
            let r = srv.su(Method::POST, "/api/jobs", Some(body.clone())).await;
            assert_eq!(r.status, 400, "{field}: {}", r.body);
            assert_eq!(r.body["message"], "Failed to enqueue the job.", "{}", r.body);
            assert_eq!(r.body["data"][field]["code"], code, "{field}: {}", r.body);
            assert!(r.body["data"][field]["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        // A body that is not JSON: PocketBase's generic 400.
        let r = srv
            .request(Method::POST, "/api/jobs")
            .header("authorization", srv.token.clone())
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), 400);
        let b: Value = r.json().await.expect("json");
        assert_eq!((b["status"].clone(), b["data"].clone()), (json!(400), json!({})));
        let r = srv.su(Method::GET, "/api/jobs?state=finished", None).await;
        assert_eq!((r.status, r.body["data"]["state"]["code"].clone()), (400, json!("validation_in_invalid")), "{}", r.body);
        // Nothing was enqueued by any of them.
        let l = srv.su(Method::GET, "/api/jobs", None).await;
        assert_eq!(l.body["totalItems"], json!(0), "{}", l.body);
    }

    async fn invalid_cron_in_settings(srv) {
        for (cron, field, code) in [
            ("61 * * * *", "cron", "validation_invalid_cron"),
            ("* * *", "cron", "validation_invalid_cron"),
            ("@every 1m", "cron", "validation_invalid_cron"),
            ("0 0 * * MON", "cron", "validation_invalid_cron"),
        ] {
            let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"backups": {"cron": cron}}))).await;
            assert_eq!(r.status, 400, "{cron}: {}", r.body);
            assert_eq!(r.body["message"], "An error occurred while submitting the form.");
            assert_eq!(r.body["data"]["backups"][field]["code"], code, "{cron}: {}", r.body);
        }
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"backups": {"cron": "0 3 * * *", "cronMaxKeep": 0}}))).await;
        assert_eq!((r.status, r.body["data"]["backups"]["cronMaxKeep"]["code"].clone()), (400, json!("validation_required")), "{}", r.body);
        // Nothing was stored by the refused ones; valid ones are kept.
        let r = srv.su(Method::GET, "/api/settings", None).await;
        assert_eq!(r.body["backups"]["cron"], "");
        for cron in ["@daily", "*/15 2-4 1,15 * 1-5"] {
            let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"backups": {"cron": cron}}))).await;
            if srv.engine == Engine::Sqlite {
                assert_eq!((r.status, r.body["backups"]["cron"].clone()), (200, json!(cron)), "{}", r.body);
            } else {
                // Valid, but Galley makes backups of SQLite data only.
                assert_eq!((r.status, r.body["data"]["backups"]["cron"]["code"].clone()), (400, json!("validation_backups_postgres")), "{}", r.body);
            }
        }
    }
}
