//! The same assertions on SQLite and PostgreSQL (see `common::on_both_engines`).
#![allow(clippy::unwrap_used)]

mod common;

use common::{q, Ctx};
use galley_sql::{ColumnType as T, SqlValue as V};
use galley_store::{migrations, ConnExt, Row, Store, StoreError};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

on_both_engines!(
    values_round_trip,
    numbers_from_aggregates,
    failing_jobs_roll_back_alone_in_a_group,
    panicking_jobs_do_not_poison_the_store,
    unique_violations_name_their_columns,
    swallowed_statement_errors_fail_the_job,
    writes_are_visible_when_they_return,
    concurrent_writers_all_land,
    migrations_run_once_and_reopen_cleanly,
    concurrent_opens_migrate_once,
    close_flushes_queued_writes,
    schema_changes_reach_cached_statements,
);

async fn exec(s: &Store, sql: String, params: Vec<V>) -> Result<u64, StoreError> {
    s.write(move |c| c.execute(&sql, &params)).await
}

async fn rows(s: &Store, sql: &str) -> Vec<Row> {
    let sql = sql.to_owned();
    s.read(move |c| c.query(&sql, &[])).await.unwrap()
}

/// Through `Conn::count`, which SQLite's readers may answer from their count cache: the
/// tests below that write and count check that a count is never older than a write that
/// returned.
async fn count(s: &Store, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) AS n FROM \"{table}\"");
    s.read(move |c| c.count(&sql, &[])).await.unwrap()
}

async fn ids(s: &Store, table: &str) -> Vec<String> {
    rows(
        s,
        &format!("SELECT \"id\" FROM \"{table}\" ORDER BY \"id\""),
    )
    .await
    .iter()
    .map(|r| r.text("id"))
    .collect()
}

async fn create_simple(ctx: &Ctx, table: &str) {
    let d = ctx.d();
    let sql = format!(
        "CREATE TABLE \"{table}\" (\"id\" {}, \"v\" {})",
        d.primary_key_def(),
        d.column_def(T::Text)
    );
    ctx.store.write(move |c| c.batch(&sql)).await.unwrap();
}

fn insert_sql(ctx: &Ctx, table: &str) -> String {
    q(
        ctx.d(),
        &format!("INSERT INTO \"{table}\" (\"id\", \"v\") VALUES ($1, $2)"),
    )
}

async fn values_round_trip(ctx: Ctx) {
    let d = ctx.d();
    let ddl = format!(
        "CREATE TABLE \"rt\" (\"id\" {pk}, \"t\" {t}, \"n\" {n}, \"b\" {b}, \"ts\" {ts}, \"j\" {j}, \"ja\" {ja}, \"jp\" {jp})",
        pk = d.primary_key_def(),
        t = d.column_def(T::Text),
        n = d.column_def(T::Number),
        b = d.column_def(T::Bool),
        ts = d.column_def(T::Timestamp),
        j = d.column_def(T::Json),
        ja = d.column_def(T::JsonArray),
        jp = d.column_def(T::JsonPoint),
    );
    ctx.store.write(move |c| c.batch(&ddl)).await.unwrap();

    let ts = chrono::DateTime::parse_from_rfc3339("2024-01-02T03:04:05.678Z")
        .unwrap()
        .to_utc();
    let text = "héllo 'quoted' \"double\" \\ ; -- 😀".to_owned();
    let doc = json!({"a": [1, 2.5, {"b": null}], "s": "x\"y", "t": true});
    let ins = q(
        d,
        "INSERT INTO \"rt\" (\"id\", \"t\", \"n\", \"b\", \"ts\", \"j\", \"ja\", \"jp\") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    );
    let rows_in = vec![
        vec![
            V::from("r1"),
            V::Text(text.clone()),
            V::Int(42),
            V::Bool(true),
            V::Timestamp(ts),
            V::Json(doc.clone()),
            V::Json(json!([1, "two"])),
            V::Json(json!({"lon": 1.5, "lat": -2.25})),
        ],
        vec![
            V::from("r2"),
            V::from(""),
            V::Real(-1.25),
            V::Bool(false),
            // Empty datetime: '' on SQLite, NULL on PostgreSQL; reads back empty on both.
            V::from(""),
            V::Null,
            V::Json(json!([])),
            V::Json(json!({"lon": 0, "lat": 0})),
        ],
        vec![
            V::from("r3"),
            V::from("x"),
            V::Real(1e300),
            V::Int(1),
            // Datetime given as wire-format text.
            V::from("2024-05-06 07:08:09.123Z"),
            V::Json(json!("just a string")),
            V::Json(json!(["a", ["nested"]])),
            V::Json(json!({"lon": -180, "lat": 90})),
        ],
    ];
    for params in rows_in {
        let ins = ins.clone();
        ctx.store
            .write(move |c| c.execute(&ins, &params))
            .await
            .unwrap();
    }
    // Defaults only.
    exec(
        &ctx.store,
        q(d, "INSERT INTO \"rt\" (\"id\") VALUES ($1)"),
        vec![V::from("r4")],
    )
    .await
    .unwrap();

    let got = rows(&ctx.store, "SELECT * FROM \"rt\" ORDER BY \"id\"").await;
    assert_eq!(got.len(), 4);
    let (r1, r2, r3, r4) = (&got[0], &got[1], &got[2], &got[3]);

    assert_eq!(r1.text("t"), text);
    assert_eq!(r1.real("n"), 42.0);
    assert!(r1.bool("b"));
    assert_eq!(r1.timestamp("ts"), Some(ts));
    assert_eq!(r1.text("ts"), "2024-01-02 03:04:05.678Z");
    assert_eq!(r1.json("j"), doc);
    assert_eq!(r1.json("ja"), json!([1, "two"]));
    assert_eq!(r1.json("jp"), json!({"lon": 1.5, "lat": -2.25}));

    assert_eq!(r2.text("t"), "");
    assert_eq!(r2.real("n"), -1.25);
    assert!(!r2.bool("b"));
    assert_eq!(r2.timestamp("ts"), None);
    assert_eq!(r2.text("ts"), "");
    assert!(r2.get("j").unwrap().is_null());
    assert_eq!(r2.json("ja"), json!([]));

    assert_eq!(r3.real("n"), 1e300);
    assert!(r3.bool("b"));
    assert_eq!(r3.text("ts"), "2024-05-06 07:08:09.123Z");
    assert_eq!(r3.json("j"), json!("just a string"));
    assert_eq!(r3.json("ja"), json!(["a", ["nested"]]));
    assert_eq!(r3.json("jp"), json!({"lon": -180, "lat": 90}));

    assert_eq!(r4.text("t"), "");
    assert_eq!(r4.real("n"), 0.0);
    assert!(!r4.bool("b"));
    assert_eq!(r4.timestamp("ts"), None);
    assert!(r4.get("j").unwrap().is_null());
    assert_eq!(r4.json("ja"), json!([]));
    assert_eq!(r4.json("jp"), json!({"lon": 0, "lat": 0}));

    // Bound values compare equal to the stored ones.
    let sel = q(
        d,
        "SELECT \"id\" FROM \"rt\" WHERE \"b\" = $1 AND \"n\" = $2 AND \"ts\" = $3 AND \"t\" = $4",
    );
    let params = vec![V::Bool(true), V::Int(42), V::Timestamp(ts), V::Text(text)];
    let found = ctx
        .store
        .read(move |c| c.query(&sel, &params))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].text("id"), "r1");

    if ctx.is_pg() {
        // Native column types, not text.
        assert_eq!(r1.get("b"), Some(&V::Bool(true)));
        assert_eq!(r1.get("ts"), Some(&V::Timestamp(ts)));
        assert_eq!(r1.get("j"), Some(&V::Json(doc)));
        assert_eq!(r1.get("n"), Some(&V::Real(42.0)));
        assert!(r2.get("ts").unwrap().is_null());
        let types = rows(
            &ctx.store,
            "SELECT column_name AS c, data_type AS t FROM information_schema.columns WHERE table_name = 'rt' ORDER BY ordinal_position",
        )
        .await;
        let types: Vec<(String, String)> =
            types.iter().map(|r| (r.text("c"), r.text("t"))).collect();
        let want = [
            ("id", "text"),
            ("t", "text"),
            ("n", "double precision"),
            ("b", "boolean"),
            ("ts", "timestamp with time zone"),
            ("j", "jsonb"),
            ("ja", "jsonb"),
            ("jp", "jsonb"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        assert_eq!(types, want);
    } else {
        assert_eq!(r1.get("b"), Some(&V::Int(1)));
        assert_eq!(
            r1.get("ts"),
            Some(&V::Text("2024-01-02 03:04:05.678Z".into()))
        );
    }
}

async fn numbers_from_aggregates(ctx: Ctx) {
    ctx.store
        .write(|c| c.batch("CREATE TABLE \"nums\" (\"x\" BIGINT NOT NULL)"))
        .await
        .unwrap();
    exec(
        &ctx.store,
        "INSERT INTO \"nums\" (\"x\") VALUES (1), (2), (3), (10000000000)".into(),
        vec![],
    )
    .await
    .unwrap();
    let r = &rows(
        &ctx.store,
        "SELECT SUM(\"x\") AS s, COUNT(*) AS c, AVG(\"x\") AS a, MAX(\"x\") AS m, MIN(\"x\") * 1.5 AS f FROM \"nums\"",
    )
    .await[0];
    assert_eq!(r.int("s"), 10_000_000_006);
    assert_eq!(r.int("c"), 4);
    assert_eq!(r.real("a"), 2_500_000_001.5);
    assert_eq!(r.int("m"), 10_000_000_000);
    assert_eq!(r.real("f"), 1.5);
    if ctx.is_pg() {
        // numeric in its binary form: whole, fractional, tiny, negative, huge, NaN.
        let r = &rows(
            &ctx.store,
            "SELECT 1.5::numeric AS a, 120000::numeric AS b, 0.00012::numeric AS c, -3::numeric AS d, \
             -7.25::numeric AS e, 123456789012345678::numeric AS f, 'NaN'::numeric AS g, 0::numeric AS h, \
             gen_random_uuid() AS u, '2024-01-02'::date AS dt, ARRAY['a','b'] AS arr",
        )
        .await[0];
        assert_eq!(r.get("a"), Some(&V::Real(1.5)));
        assert_eq!(r.get("b"), Some(&V::Int(120_000)));
        assert_eq!(r.get("c"), Some(&V::Real(0.00012)));
        assert_eq!(r.get("d"), Some(&V::Int(-3)));
        assert_eq!(r.get("e"), Some(&V::Real(-7.25)));
        assert_eq!(r.get("f"), Some(&V::Int(123_456_789_012_345_678)));
        assert!(matches!(r.get("g"), Some(V::Real(f)) if f.is_nan()));
        assert_eq!(r.get("h"), Some(&V::Int(0)));
        assert_eq!(r.text("u").len(), 36);
        assert_eq!(r.text("dt"), "2024-01-02");
        assert_eq!(r.json("arr"), json!(["a", "b"]));
        // Types without a decoding fail loudly, naming the column, instead of reading NULL.
        let e = ctx
            .store
            .read(|c| c.query("SELECT '1 day'::interval AS iv", &[]))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Query(m) if m.contains("\"iv\"") && m.contains("::text")),
            "{e}"
        );
        // A statement returning void reads as NULL.
        let r = ctx
            .store
            .read(|c| c.query("SELECT pg_sleep(0) AS v", &[]))
            .await
            .unwrap();
        assert!(r[0].get("v").unwrap().is_null());
    }
}

/// Occupies the SQLite writer (or one PostgreSQL connection) for a while, so that the jobs
/// sent meanwhile queue up and commit as one group.
fn hold_writer(store: &Arc<Store>, ms: u64) -> tokio::task::JoinHandle<()> {
    let s = store.clone();
    let h = tokio::spawn(async move {
        s.write(move |_| {
            std::thread::sleep(Duration::from_millis(ms));
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    });
    h
}

async fn failing_jobs_roll_back_alone_in_a_group(ctx: Ctx) {
    create_simple(&ctx, "g").await;
    let holder = hold_writer(&ctx.store, 300);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = ctx.store.clone();
        let ins = insert_sql(&ctx, "g");
        tasks.push(tokio::spawn(async move {
            s.write(move |c| {
                c.execute(&ins, &[V::Text(format!("{i:02}")), V::from("x")])?;
                if i % 5 == 0 {
                    return Err(StoreError::Query(format!("job {i} refuses")));
                }
                Ok(i)
            })
            .await
        }));
    }
    let mut want = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(v) => {
                assert_ne!(i % 5, 0, "job {i} should have failed");
                assert_eq!(v, i);
                want.push(format!("{i:02}"));
            }
            Err(e) => {
                assert_eq!(i % 5, 0, "job {i} failed: {e}");
                assert_eq!(e, StoreError::Query(format!("job {i} refuses")));
            }
        }
    }
    holder.await.unwrap();
    assert_eq!(want.len(), 40);
    assert_eq!(ids(&ctx.store, "g").await, want);
}

async fn panicking_jobs_do_not_poison_the_store(ctx: Ctx) {
    create_simple(&ctx, "p").await;
    let ins = insert_sql(&ctx, "p");
    for round in 0..12 {
        let i = ins.clone();
        let r = ctx
            .store
            .write(move |c| -> Result<(), StoreError> {
                c.execute(&i, &[V::Text(format!("ghost{round}")), V::from("x")])?;
                panic!("boom in a write job");
            })
            .await;
        assert!(
            matches!(&r, Err(StoreError::Query(m)) if m.contains("panicked")),
            "{r:?}"
        );
        let r = ctx
            .store
            .read(|_| -> Result<(), StoreError> { panic!("boom in a read job") })
            .await;
        assert!(
            matches!(&r, Err(StoreError::Query(m)) if m.contains("panicked")),
            "{r:?}"
        );
    }
    // A panic inside a group: its group mates commit.
    let holder = hold_writer(&ctx.store, 200);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut tasks = Vec::new();
    for k in 0..10 {
        let s = ctx.store.clone();
        let i = ins.clone();
        tasks.push(tokio::spawn(async move {
            s.write(move |c| {
                c.execute(&i, &[V::Text(format!("ok{k}")), V::from("x")])?;
                if k == 4 {
                    panic!("boom in a group");
                }
                Ok::<_, StoreError>(())
            })
            .await
        }));
    }
    for (k, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().is_ok(), k != 4);
    }
    holder.await.unwrap();
    // Later jobs on the same connections must not commit a panicked job's leftovers.
    for k in 10..20 {
        exec(
            &ctx.store,
            ins.clone(),
            vec![V::Text(format!("ok{k}")), V::from("x")],
        )
        .await
        .unwrap();
    }
    let got = ids(&ctx.store, "p").await;
    assert!(got.iter().all(|id| !id.starts_with("ghost")), "{got:?}");
    assert_eq!(got.len(), 19);
    assert!(!got.contains(&"ok4".to_owned()));
}

async fn unique_violations_name_their_columns(ctx: Ctx) {
    let d = ctx.d();
    let ddl = format!(
        "CREATE TABLE \"u\" (\"id\" {pk}, \"email\" {t} UNIQUE, \"a\" {t}, \"b\" {t}, \"name\" {t});
         CREATE UNIQUE INDEX \"idx_u_ab\" ON \"u\" (\"a\", \"b\");
         CREATE UNIQUE INDEX \"idx_u_name\" ON \"u\" ({lower});",
        pk = d.primary_key_def(),
        t = d.column_def(T::Text),
        lower = d.lower("\"name\""),
    );
    ctx.store.write(move |c| c.batch(&ddl)).await.unwrap();
    let ins = q(
        d,
        "INSERT INTO \"u\" (\"id\", \"email\", \"a\", \"b\", \"name\") VALUES ($1, $2, $3, $4, $5)",
    );
    let put = |id: &str, email: &str, a: &str, b: &str, name: &str| {
        let params: Vec<V> = [id, email, a, b, name]
            .iter()
            .map(|s| V::from(*s))
            .collect();
        exec(&ctx.store, ins.clone(), params)
    };
    put("1", "a@x", "1", "1", "Foo").await.unwrap();
    let cols = |r: Result<u64, StoreError>| match r {
        Err(StoreError::UniqueViolation { columns }) => columns,
        other => panic!("expected a unique violation, got {other:?}"),
    };
    assert_eq!(cols(put("2", "a@x", "2", "2", "n2").await), ["email"]);
    assert_eq!(cols(put("3", "c@x", "1", "1", "n3").await), ["a", "b"]);
    assert_eq!(cols(put("4", "d@x", "4", "4", "FOO").await), ["name"]);
    assert_eq!(cols(put("1", "e@x", "5", "5", "n5").await), ["id"]);
    // The system collections table: case-insensitive unique name.
    let sys = q(
        d,
        "INSERT INTO \"_collections\" (\"id\", \"name\") VALUES ($1, $2)",
    );
    exec(
        &ctx.store,
        sys.clone(),
        vec![V::from("c1"), V::from("Posts")],
    )
    .await
    .unwrap();
    assert_eq!(
        cols(exec(&ctx.store, sys, vec![V::from("c2"), V::from("posts")]).await),
        ["name"]
    );
    // The store keeps working, and nothing of the failed inserts is there.
    put("6", "f@x", "6", "6", "n6").await.unwrap();
    assert_eq!(ids(&ctx.store, "u").await, ["1", "6"]);
}

async fn swallowed_statement_errors_fail_the_job(ctx: Ctx) {
    create_simple(&ctx, "s").await;
    let ins = insert_sql(&ctx, "s");
    exec(&ctx.store, ins.clone(), vec![V::from("a"), V::from("x")])
        .await
        .unwrap();
    let r = ctx
        .store
        .write(move |c| {
            c.execute(&ins, &[V::from("b"), V::from("x")])?;
            // A duplicate, caught and ignored by the job…
            let dup = c.execute(&ins, &[V::from("a"), V::from("x")]);
            assert!(matches!(dup, Err(StoreError::UniqueViolation { .. })));
            Ok::<_, StoreError>(())
        })
        .await;
    // …still fails it, as PostgreSQL would have aborted the transaction anyway.
    assert!(
        matches!(r, Err(StoreError::UniqueViolation { .. })),
        "{r:?}"
    );
    assert_eq!(ids(&ctx.store, "s").await, ["a"]);
    // The recommended form works on both.
    let upsert = q(
        ctx.d(),
        "INSERT INTO \"s\" (\"id\", \"v\") VALUES ($1, $2) ON CONFLICT (\"id\") DO UPDATE SET \"v\" = excluded.\"v\"",
    );
    exec(&ctx.store, upsert, vec![V::from("a"), V::from("y")])
        .await
        .unwrap();
    assert_eq!(
        rows(&ctx.store, "SELECT \"v\" FROM \"s\"").await[0].text("v"),
        "y"
    );
}

async fn writes_are_visible_when_they_return(ctx: Ctx) {
    create_simple(&ctx, "w").await;
    let ins = insert_sql(&ctx, "w");
    for i in 0..150 {
        exec(
            &ctx.store,
            ins.clone(),
            vec![V::Text(format!("{i:03}")), V::from("x")],
        )
        .await
        .unwrap();
        assert_eq!(count(&ctx.store, "w").await, i + 1);
    }
}

async fn concurrent_writers_all_land(ctx: Ctx) {
    create_simple(&ctx, "c").await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (s, done) = (ctx.store.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut last = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let n = count(&s, "c").await;
                assert!(n >= last, "count went back from {last} to {n}");
                last = n;
            }
        }));
    }
    let mut writers = Vec::new();
    for t in 0..8 {
        let s = ctx.store.clone();
        let ins = insert_sql(&ctx, "c");
        writers.push(tokio::spawn(async move {
            for i in 0..200 {
                let id = format!("{t}-{i:03}");
                exec(&s, ins.clone(), vec![V::Text(id), V::from("x")])
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    assert_eq!(count(&ctx.store, "c").await, 1600);
    let distinct = rows(&ctx.store, "SELECT COUNT(DISTINCT \"id\") AS n FROM \"c\"").await;
    assert_eq!(distinct[0].int("n"), 1600);
}

async fn migration_rows(s: &Store) -> Vec<(String, i64)> {
    rows(
        s,
        "SELECT \"file\", \"applied\" FROM \"_migrations\" ORDER BY \"file\"",
    )
    .await
    .iter()
    .map(|r| (r.text("file"), r.int("applied")))
    .collect()
}

async fn migrations_run_once_and_reopen_cleanly(ctx: Ctx) {
    let first = migration_rows(&ctx.store).await;
    assert!(!first.is_empty());
    assert_eq!(first[0].0, "0001_system_tables");
    exec(
        &ctx.store,
        q(ctx.d(), "INSERT INTO \"_params\" (\"id\") VALUES ($1)"),
        vec![V::from("keep")],
    )
    .await
    .unwrap();
    ctx.store.close().await;
    for _ in 0..3 {
        let s = Store::open(&ctx.cfg).await.unwrap();
        assert_eq!(migration_rows(&s).await, first);
        assert_eq!(count(&s, "_params").await, 1);
        assert_eq!(count(&s, "_collections").await, 0);
        // Running them again inside a job is a no-op too.
        s.write(migrations::run).await.unwrap();
        assert_eq!(migration_rows(&s).await, first);
        s.close().await;
    }
}

async fn concurrent_opens_migrate_once(ctx: Ctx) {
    // A second, fresh database (or data directory) opened by four nodes at once.
    let (cfg, _db) = match &ctx.pg {
        Some(_) => {
            let db = common::TempPgDatabase::create().await.unwrap();
            (Ctx::config(&ctx.dir, Some(db.url().to_owned())), Some(db))
        }
        None => {
            let mut cfg = ctx.cfg.clone();
            cfg.data_dir = ctx.dir.path().join("second");
            (cfg, None)
        }
    };
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let cfg = cfg.clone();
            tokio::spawn(async move { Store::open(&cfg).await })
        })
        .collect();
    let mut stores = Vec::new();
    for o in opens {
        stores.push(o.await.unwrap().unwrap());
    }
    for s in &stores {
        assert_eq!(
            migration_rows(s).await.len(),
            galley_store::migrations::count()
        );
    }
    for s in stores {
        s.close().await;
    }
}

async fn close_flushes_queued_writes(ctx: Ctx) {
    create_simple(&ctx, "f").await;
    let holder = hold_writer(&ctx.store, 300);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = ctx.store.clone();
        let ins = insert_sql(&ctx, "f");
        tasks.push(tokio::spawn(async move {
            exec(&s, ins, vec![V::Text(format!("{i:02}")), V::from("x")]).await
        }));
    }
    // Let every write reach the queue (SQLite) or the pool (PostgreSQL).
    tokio::time::sleep(Duration::from_millis(60)).await;
    let started = Instant::now();
    ctx.store.close().await;
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "close did not wait for the queued writes"
    );
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    holder.await.unwrap();
    let late = exec(
        &ctx.store,
        insert_sql(&ctx, "f"),
        vec![V::from("late"), V::from("x")],
    )
    .await;
    assert_eq!(late, Err(StoreError::Closed));
    let s = Store::open(&ctx.cfg).await.unwrap();
    assert_eq!(count(&s, "f").await, 40);
    s.close().await;
}

async fn schema_changes_reach_cached_statements(ctx: Ctx) {
    create_simple(&ctx, "sc").await;
    exec(
        &ctx.store,
        insert_sql(&ctx, "sc"),
        vec![V::from("1"), V::from("x")],
    )
    .await
    .unwrap();
    // Cache `SELECT *` on every reader connection and on the writer.
    let select = "SELECT * FROM \"sc\"";
    let warm: Vec<_> = (0..8)
        .map(|_| {
            let s = ctx.store.clone();
            tokio::spawn(async move { rows(&s, select).await })
        })
        .collect();
    for w in warm {
        assert_eq!(w.await.unwrap()[0].columns.len(), 2);
    }
    let w = ctx
        .store
        .write(move |c| c.query(select, &[]))
        .await
        .unwrap();
    assert_eq!(w[0].columns.len(), 2);

    let alter = format!(
        "ALTER TABLE \"sc\" ADD COLUMN \"extra\" {}",
        ctx.d().column_def(T::Text)
    );
    ctx.store.write(move |c| c.batch(&alter)).await.unwrap();
    for _ in 0..8 {
        let r = rows(&ctx.store, select).await;
        assert_eq!(&*r[0].columns, ["id", "v", "extra"]);
        assert_eq!(r[0].values.len(), 3);
    }
    let w = ctx
        .store
        .write(move |c| c.query(select, &[]))
        .await
        .unwrap();
    assert_eq!(&*w[0].columns, ["id", "v", "extra"]);
    // Same through execute-then-query within one job after a DROP/CREATE.
    let d = ctx.d();
    let recreate = format!(
        "DROP TABLE \"sc\"; CREATE TABLE \"sc\" (\"id\" {}, \"only\" {})",
        d.primary_key_def(),
        d.column_def(T::Text)
    );
    ctx.store.write(move |c| c.batch(&recreate)).await.unwrap();
    exec(
        &ctx.store,
        q(d, "INSERT INTO \"sc\" (\"id\") VALUES ($1)"),
        vec![V::from("z")],
    )
    .await
    .unwrap();
    for _ in 0..8 {
        let r = rows(&ctx.store, select).await;
        assert_eq!(&*r[0].columns, ["id", "only"]);
    }
    let one = ctx
        .store
        .read(|c| c.query_one("SELECT COUNT(*) AS n FROM \"sc\"", &[]))
        .await
        .unwrap();
    assert_eq!(one.unwrap().int("n"), 1);
}
