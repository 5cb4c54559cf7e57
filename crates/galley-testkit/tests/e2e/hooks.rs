//! JavaScript hooks (`*.pb.js`): routes, record events inside the write transaction,
//! after-success hooks, the `$app` data API, limits on hostile code, reloads.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is the failure it reports

use galley_testkit::{both_engines_hooks, TestServer};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const ROUTES: &str = r#"
routerAdd("GET", "/hello/{name}", (e) => {
    const name = e.request.pathValue("name")
    return e.json(200, { message: "Hello " + name, q: e.request.url.query().get("x"), h: e.request.header.get("X-Test") })
})
routerAdd("POST", "/echo", (e) => {
    const data = new DynamicModel({ a: "", n: 0 })
    e.bindBody(data)
    const info = e.requestInfo()
    return e.json(201, { a: data.a, n: data.n, method: info.method, body: info.body })
})
routerAdd("GET", "/me", (e) => e.json(200, { id: e.auth.id, superuser: e.hasSuperuserAuth() }), $apis.requireAuth())
routerAdd("GET", "/admin", (e) => e.string(200, "ok"), $apis.requireSuperuserAuth())
routerAdd("GET", "/guest", (e) => e.html(200, "<p>guest</p>"), $apis.requireGuestOnly())
routerAdd("GET", "/redirect", (e) => e.redirect(307, "/hello/x"))
routerAdd("DELETE", "/nothing", (e) => e.noContent(204))
routerAdd("GET", "/fail/{kind}", (e) => {
    const k = e.request.pathValue("kind")
    if (k === "bad") throw new BadRequestError("not like this", { f: new ValidationError("x", "y"), g: { h: 1 } })
    if (k === "notfound") throw new NotFoundError()
    if (k === "forbidden") throw new ForbiddenError("no")
    if (k === "api") throw new ApiError(418, "teapot")
    if (k === "string") throw "a string"
    if (k === "number") throw 42
    if (k === "object") throw { any: "thing" }
    throw new Error("plain error with secret detail")
})
routerAdd("GET", "/mw", (e) => e.json(200, { trail: e.trail }), (e) => { e.trail = ["route-mw"]; return e.next() })
routerAdd("GET", "/stop", (e) => e.json(200, { reached: true }), (e) => e.json(403, { stopped: true }))
routerAdd("GET", "/loop", (e) => { while (true) {} })
routerAdd("GET", "/alloc", (e) => { const a = []; while (true) a.push(new Array(100000).fill("xxxxxxxx")) })
routerAdd("GET", "/recurse", (e) => { const f = (n) => f(n + 1) + 1; return f(0) })
routerAdd("GET", "/security", (e) => {
    const t = $security.createJWT({ sub: "u1" }, "secret-key", 60)
    return e.json(200, {
        len: $security.randomString(12).length,
        alpha: $security.randomStringWithAlphabet(5, "a"),
        claims: $security.parseJWT(t, "secret-key"),
        eq: $security.equal("a", "a"), ne: $security.equal("a", "b"),
        sha: $security.sha256("abc"),
        env: $os.getenv("GALLEY_HOOKS_TEST_ENV"),
    })
})
"#;

both_engines_hooks! {
    files = &[("routes.pb.js", ROUTES)];

    async fn routes_answer_as_written(srv) {
        let r = srv
            .client
            .get(format!("{}/hello/bob?x=1", srv.url))
            .header("X-Test", "yes")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b, json!({"message": "Hello bob", "q": "1", "h": "yes"}));

        let r = srv.guest(Method::POST, "/echo", Some(json!({"a": "x", "n": 5, "extra": true}))).await;
        assert_eq!(r.status, 201);
        assert_eq!(r.body, json!({"a": "x", "n": 5, "method": "POST", "body": {"a": "x", "n": 5, "extra": true}}));

        let r = srv.client.get(format!("{}/redirect", srv.url)).send().await.unwrap();
        assert_eq!(r.url().path(), "/hello/x", "followed the hook's redirect");
        let r = srv.guest(Method::DELETE, "/nothing", None).await;
        assert_eq!(r.status, 204);
        let r = srv.client.get(format!("{}/guest", srv.url)).send().await.unwrap();
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(r.text().await.unwrap(), "<p>guest</p>");
        // A route that does not match falls through to the API's own 404.
        let r = srv.guest(Method::GET, "/hello", None).await;
        assert_eq!(r.status, 404);
        assert_eq!(r.body["message"], "File not found.");
    }

    async fn middlewares_guard_routes(srv) {
        let r = srv.guest(Method::GET, "/me", None).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.body, json!({"data": {}, "message": "The request requires valid record authorization token.", "status": 401}));
        let r = srv.su(Method::GET, "/me", None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["superuser"], true);
        assert!(!r.body["id"].as_str().unwrap().is_empty());
        let r = srv.guest(Method::GET, "/admin", None).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.body["message"], "The request requires valid record authorization token.");
        let r = srv.su(Method::GET, "/admin", None).await;
        assert_eq!(r.status, 200);
        let member = srv.member_token().await;
        let r = srv.send(Method::GET, "/admin", Some(&member), None).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.body["message"], "The authorized record is not allowed to perform this action.");
        let r = srv.send(Method::GET, "/me", Some(&member), None).await;
        assert_eq!(r.body["superuser"], false);
        let r = srv.su(Method::GET, "/guest", None).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.body["message"], "The request can be accessed only by guests.");
        let r = srv.guest(Method::GET, "/mw", None).await;
        assert_eq!(r.body, json!({"trail": ["route-mw"]}));
        // A middleware that answers without e.next() stops the chain.
        let r = srv.guest(Method::GET, "/stop", None).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.body, json!({"stopped": true}));
    }

    async fn thrown_errors_become_pocketbase_errors(srv) {
        let r = srv.guest(Method::GET, "/fail/bad", None).await;
        assert_eq!(r.status, 400);
        // PocketBase keeps validation errors in `data` and turns any other value into one.
        assert_eq!(r.body, json!({"data": {"f": {"code": "x", "message": "Y."}, "g": {"h": {"code": "validation_invalid_value", "message": "Invalid value."}}}, "message": "Not like this.", "status": 400}));
        let r = srv.guest(Method::GET, "/fail/notfound", None).await;
        assert_eq!(r.body, json!({"data": {}, "message": "The requested resource wasn't found.", "status": 404}));
        let r = srv.guest(Method::GET, "/fail/forbidden", None).await;
        assert_eq!((r.status, r.body["message"].clone()), (403, json!("No.")));
        let r = srv.guest(Method::GET, "/fail/api", None).await;
        assert_eq!((r.status, r.body["message"].clone()), (418, json!("Teapot.")));
        // Anything thrown that is not an ApiError: PocketBase's 400 with the generic message.
        for k in ["string", "number", "object", "error"] {
            let r = srv.guest(Method::GET, &format!("/fail/{k}"), None).await;
            assert_eq!(r.status, 400, "{k}");
            assert_eq!(r.body["message"], "Something went wrong while processing your request.", "{k}");
            assert!(!r.body.to_string().contains("secret detail"), "no internals in the answer");
        }
    }

    async fn hostile_handlers_leave_the_server_healthy(srv) {
        for path in ["/loop", "/alloc", "/recurse"] {
            let t = std::time::Instant::now();
            let r = srv.guest(Method::GET, path, None).await;
            assert_eq!(r.status, 500, "{path}: {}", r.body);
            assert!(t.elapsed() < Duration::from_secs(10), "{path} took {:?}", t.elapsed());
            // The next call works, on the same engines.
            let r = srv.guest(Method::GET, "/hello/after", None).await;
            assert_eq!(r.body["message"], "Hello after", "after {path}");
        }
        // Several at once do not starve the others.
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let (c, u) = (srv.client.clone(), srv.url.clone());
            tasks.push(tokio::spawn(async move { c.get(format!("{u}/loop")).send().await.unwrap().status() }));
        }
        let r = srv.guest(Method::GET, "/hello/meanwhile", None).await;
        assert_eq!(r.status, 200);
        for t in tasks {
            assert_eq!(t.await.unwrap(), 500);
        }
        srv.assert_healthy().await;
    }

    async fn security_and_os_helpers(srv) {
        let r = srv.guest(Method::GET, "/security", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["len"], 12);
        assert_eq!(r.body["alpha"], "aaaaa");
        assert_eq!(r.body["claims"]["sub"], "u1");
        assert!(r.body["claims"]["exp"].as_i64().unwrap() > 0);
        assert_eq!(r.body["eq"], true);
        assert_eq!(r.body["ne"], false);
        assert_eq!(r.body["sha"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}

/// The shop of the issue: an order checks and decrements stock in its own transaction and
/// rolls back when stock is short; after the commit a payment stub is called over
/// `$http.send` and the order is marked paid.
const SHOP: &str = r#"
onRecordCreate((e) => {
    const qty = e.record.getInt("qty")
    const product = $app.findRecordById("products", e.record.getString("product"))
    const stock = product.getInt("stock")
    if (qty <= 0) throw new BadRequestError("Quantity must be positive.")
    product.set("stock", stock - qty)
    $app.save(product)
    e.record.set("status", "pending")
    e.record.set("total", qty * product.getFloat("price"))
    e.next()
    if (stock < qty) {
        // After the insert: everything of this write rolls back, the product's stock too.
        throw new BadRequestError("Not enough stock.", { qty: new ValidationError("stock", "only " + stock + " left") })
    }
}, "orders")

onRecordAfterCreateSuccess((e) => {
    const url = $os.getenv("GALLEY_SHOP_PAYMENT_URL_" + e.record.getString("note"))
    if (!url) return e.next()
    const res = $http.send({ url: url, method: "POST", body: JSON.stringify({ order: e.record.id, total: e.record.getFloat("total") }), headers: { "content-type": "application/json" }, timeout: 5 })
    const order = $app.findRecordById("orders", e.record.id)
    order.set("status", res.statusCode === 200 && res.json.ok ? "paid" : "failed")
    order.set("payment", res.json ? res.json.ref : "")
    $app.save(order)
    e.next()
}, "orders")

onRecordUpdate((e) => {
    if (e.record.getString("status") === "cancelled" && e.record.original().getString("status") === "paid") {
        throw new BadRequestError("A paid order cannot be cancelled.")
    }
    e.next()
}, "orders")

onRecordDelete((e) => {
    if (e.record.getInt("stock") > 0) throw new BadRequestError("Products in stock cannot be deleted.")
    e.next()
}, "products")

cronAdd("cancelUnpaid", "*/10 * * * *", () => {
    for (const o of $app.findRecordsByFilter("orders", "status = 'pending'")) {
        o.set("status", "cancelled")
        $app.save(o)
    }
})

routerAdd("GET", "/shop/report", (e) => {
    const rows = arrayOf(new DynamicModel({ status: "", n: 0 }))
    $app.db().newQuery("SELECT status, COUNT(*) AS n FROM orders WHERE qty >= {:min} GROUP BY status ORDER BY status").bind({ min: 1 }).all(rows)
    const cheap = $app.findRecordsByFilter("products", "price < {:max} && name != {:name}", "-price", 10, 0, { max: 100, name: "x' || 1=1 || '" })
    return e.json(200, {
        rows: rows,
        cheap: cheap.map((p) => p.getString("name")),
        count: $app.countRecords("orders", "status = {:s}", { s: "paid" }),
        first: $app.findFirstRecordByData("products", "name", "Shoe").getInt("stock"),
        byFilter: $app.findFirstRecordByFilter("products", "stock > 0").getString("name"),
    })
})

routerAdd("POST", "/shop/restock", (e) => {
    const body = e.requestInfo().body
    $app.runInTransaction((txApp) => {
        for (const id of body.ids) {
            const p = txApp.findRecordById("products", id)
            p.set("stock", p.getInt("stock") + body.add)
            txApp.save(p)
        }
        if (body.fail) throw new BadRequestError("Restock failed.")
    })
    return e.json(200, { ok: true })
}, $apis.requireSuperuserAuth())

routerAdd("GET", "/shop/product/{id}", (e) => {
    const p = $app.findRecordById("products", e.request.pathValue("id"))
    return e.json(200, p)
})
"#;

async fn shop_schema(srv: &TestServer) -> (String, String) {
    let products = srv
        .create_collection(json!({
            "name": "products", "listRule": "", "viewRule": "",
            "fields": [
                {"name": "name", "type": "text"},
                {"name": "price", "type": "number"},
                {"name": "stock", "type": "number"},
                {"name": "secret", "type": "text", "hidden": true},
            ]
        }))
        .await;
    srv.create_collection(json!({
        "name": "orders", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "",
        "fields": [
            {"name": "product", "type": "relation", "collectionId": products["id"], "maxSelect": 1},
            {"name": "qty", "type": "number"},
            {"name": "total", "type": "number"},
            {"name": "status", "type": "text"},
            {"name": "note", "type": "text"},
            {"name": "payment", "type": "text"},
        ]
    }))
    .await;
    let shoe = srv
        .create_record(
            "products",
            json!({"name": "Shoe", "price": 50, "stock": 3, "secret": "s3"}),
        )
        .await;
    let hat = srv
        .create_record("products", json!({"name": "Hat", "price": 150, "stock": 0}))
        .await;
    (
        shoe["id"].as_str().unwrap().to_owned(),
        hat["id"].as_str().unwrap().to_owned(),
    )
}

async fn stock(srv: &TestServer, id: &str) -> i64 {
    let r = srv
        .su(
            Method::GET,
            &format!("/api/collections/products/records/{id}"),
            None,
        )
        .await;
    r.body["stock"].as_i64().unwrap()
}

/// A payment provider on loopback that answers `{ok, ref}` and counts calls.
async fn payment_stub() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let app = axum::Router::new().route(
        "/pay",
        axum::routing::post(move |body: axum::Json<Value>| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"ok": body.0["total"].as_f64().unwrap_or(0.0) > 0.0, "ref": format!("pay-{}", body.0["order"].as_str().unwrap_or(""))}))
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/pay", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, calls)
}

both_engines_hooks! {
    files = &[("shop.pb.js", SHOP)];

    async fn order_decrements_stock_in_the_same_transaction(srv) {
        let (shoe, _) = shop_schema(&srv).await;
        let r = srv.guest(Method::POST, "/api/collections/orders/records", Some(json!({"product": shoe, "qty": 2}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["status"], "pending");
        assert_eq!(r.body["total"], 100);
        assert_eq!(stock(&srv, &shoe).await, 1);

        // Short of stock: the order and the stock change roll back together.
        let r = srv.guest(Method::POST, "/api/collections/orders/records", Some(json!({"product": shoe, "qty": 5}))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body, json!({"data": {"qty": {"code": "stock", "message": "Only 1 left."}}, "message": "Not enough stock.", "status": 400}));
        assert_eq!(stock(&srv, &shoe).await, 1);
        assert_eq!(srv.all_records("orders").await.len(), 1);

        let r = srv.guest(Method::POST, "/api/collections/orders/records", Some(json!({"product": shoe, "qty": 0}))).await;
        assert_eq!(r.body["message"], "Quantity must be positive.");

        // Through a batch too: one transaction, all or nothing.
        srv.enable_batch().await;
        let r = srv.guest(Method::POST, "/api/batch", Some(json!({"requests": [
            {"method": "POST", "url": "/api/collections/orders/records", "body": {"product": shoe, "qty": 1}},
            {"method": "POST", "url": "/api/collections/orders/records", "body": {"product": shoe, "qty": 1}},
        ]}))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(stock(&srv, &shoe).await, 1);
        assert_eq!(srv.all_records("orders").await.len(), 1);
    }

    async fn after_success_calls_the_payment_stub(srv) {
        let (shoe, _) = shop_schema(&srv).await;
        let (url, calls) = payment_stub().await;
        let note = format!("{}{}", srv.engine as u8, std::process::id());
        std::env::set_var(format!("GALLEY_SHOP_PAYMENT_URL_{note}"), &url);
        let r = srv.guest(Method::POST, "/api/collections/orders/records", Some(json!({"product": shoe, "qty": 1, "note": note}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().to_owned();
        // The hook ran after the commit and before the answer.
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        let r = srv.guest(Method::GET, &format!("/api/collections/orders/records/{id}"), None).await;
        assert_eq!(r.body["status"], "paid");
        assert_eq!(r.body["payment"], format!("pay-{id}"));
        // A paid order cannot be cancelled (onRecordUpdate sees the original).
        let r = srv.guest(Method::PATCH, &format!("/api/collections/orders/records/{id}"), Some(json!({"status": "cancelled"}))).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.body["message"], "A paid order cannot be cancelled.");
        let r = srv.guest(Method::GET, &format!("/api/collections/orders/records/{id}"), None).await;
        assert_eq!(r.body["status"], "paid");
    }

    async fn delete_hooks_and_data_api(srv) {
        let (shoe, hat) = shop_schema(&srv).await;
        let r = srv.su(Method::DELETE, &format!("/api/collections/products/records/{shoe}"), None).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.body["message"], "Products in stock cannot be deleted.");
        assert_eq!(stock(&srv, &shoe).await, 3);
        srv.guest(Method::POST, "/api/collections/orders/records", Some(json!({"product": shoe, "qty": 1}))).await;

        let r = srv.guest(Method::GET, "/shop/report", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["rows"], json!([{"status": "pending", "n": 1}]));
        assert_eq!(r.body["cheap"], json!(["Shoe"]));
        assert_eq!(r.body["count"], 0);
        assert_eq!(r.body["first"], 2);
        assert_eq!(r.body["byFilter"], "Shoe");

        // runInTransaction: all or nothing.
        let r = srv.su(Method::POST, "/shop/restock", Some(json!({"ids": [shoe, hat], "add": 5, "fail": true}))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!((stock(&srv, &shoe).await, stock(&srv, &hat).await), (2, 0));
        let r = srv.su(Method::POST, "/shop/restock", Some(json!({"ids": [shoe, hat], "add": 5}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!((stock(&srv, &shoe).await, stock(&srv, &hat).await), (7, 5));

        // A record a hook answers with shows what the API shows: no hidden field.
        let r = srv.guest(Method::GET, &format!("/shop/product/{shoe}"), None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["name"], "Shoe");
        assert_eq!(r.body["collectionName"], "products");
        assert!(r.body.get("secret").is_none(), "hidden field leaked: {}", r.body);
        let r = srv.guest(Method::GET, "/shop/product/missing", None).await;
        assert_eq!(r.status, 404);

        // The nightly clean-up, run now: the unpaid order is cancelled.
        let r = srv.su(Method::GET, "/api/crons", None).await;
        assert!(r.body.as_array().unwrap().contains(&json!({"id": "cancelUnpaid", "expression": "*/10 * * * *"})), "{}", r.body);
        let r = srv.su(Method::POST, "/api/crons/cancelUnpaid", None).await;
        assert_eq!(r.status, 204);
        let mut statuses = vec![];
        for _ in 0..50 {
            statuses = srv.all_records("orders").await.iter().map(|o| o["status"].clone()).collect();
            if statuses == [json!("cancelled")] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(statuses, [json!("cancelled")]);
    }
}

const JOBS: &str = r#"
cronAdd("tick", "*/5 * * * *", () => {
    $app.save(new Record($app.findCollectionByNameOrId("ticks"), { note: "cron" }))
})
jobAdd("greet", (e) => {
    if (e.job.payload.name === "fail") throw new Error("failing on purpose")
    $app.save(new Record($app.findCollectionByNameOrId("ticks"), { note: "job " + e.job.payload.name + " " + e.job.attempt }))
})
routerAdd("POST", "/enqueue", (e) => {
    const body = e.requestInfo().body
    const id = $jobs.enqueue({ kind: "greet", payload: { name: body.name }, maxAttempts: 2, uniqueKey: body.unique || null })
    return e.json(200, { id: id })
})
routerAdd("POST", "/enqueue-then-fail", (e) => {
    $app.runInTransaction((tx) => {
        $jobs.enqueue({ kind: "greet", payload: { name: "rolled back" } })
        throw new BadRequestError("no")
    })
})
"#;

async fn notes(srv: &TestServer, want: &str) -> Vec<String> {
    let mut got = vec![];
    for _ in 0..80 {
        got = srv
            .all_records("ticks")
            .await
            .iter()
            .map(|r| r["note"].as_str().unwrap().to_owned())
            .collect();
        if got.iter().any(|n| n == want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

both_engines_hooks! {
    files = &[("jobs.pb.js", JOBS)];

    async fn cron_entries_and_jobs_from_hooks(srv) {
        srv.create_collection(json!({"name": "ticks", "listRule": "", "fields": [{"name": "note", "type": "text"}]})).await;
        let r = srv.su(Method::GET, "/api/crons", None).await;
        assert!(r.body.as_array().unwrap().contains(&json!({"id": "tick", "expression": "*/5 * * * *"})), "{}", r.body);
        assert_eq!(srv.su(Method::POST, "/api/crons/tick", None).await.status, 204);
        assert!(notes(&srv, "cron").await.contains(&"cron".to_owned()));

        let r = srv.guest(Method::POST, "/enqueue", Some(json!({"name": "bob"}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(!r.body["id"].as_str().unwrap().is_empty());
        assert!(notes(&srv, "job bob 1").await.contains(&"job bob 1".to_owned()));

        // Enqueued inside a transaction that rolls back: no job.
        let r = srv.guest(Method::POST, "/enqueue-then-fail", None).await;
        assert_eq!(r.status, 400);
        let r = srv.guest(Method::POST, "/enqueue", Some(json!({"name": "after"}))).await;
        assert_eq!(r.status, 200);
        let got = notes(&srv, "job after 1").await;
        assert!(got.contains(&"job after 1".to_owned()), "{got:?}");
        assert!(!got.iter().any(|n| n.contains("rolled back")), "{got:?}");
    }
}

both_engines_hooks! {
    files = &[("a.pb.js", r#"routerAdd("GET", "/version", (e) => e.json(200, { v: 1 }))"#)];

    async fn changed_files_reload_and_broken_ones_keep_the_old(srv) {
        let r = srv.guest(Method::GET, "/version", None).await;
        assert_eq!(r.body, json!({"v": 1}));
        let dir = srv.hooks_dir();
        std::fs::write(dir.join("a.pb.js"), r#"routerAdd("GET", "/version", (e) => e.json(200, { v: 2 }))"#).unwrap();
        let mut v = Value::Null;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            v = srv.guest(Method::GET, "/version", None).await.body;
            if v == json!({"v": 2}) {
                break;
            }
        }
        assert_eq!(v, json!({"v": 2}), "reloaded without a restart");
        // A broken file: the previous hooks stay.
        std::fs::write(dir.join("b.pb.js"), "routerAdd(\"GET\", \"/b\", (e) => {\n  e.json(200, {})\n}\n)\nthis is not javascript").unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(srv.guest(Method::GET, "/version", None).await.body, json!({"v": 2}));
        assert_eq!(srv.guest(Method::GET, "/b", None).await.status, 404);
        // Fixed: both.
        std::fs::write(dir.join("b.pb.js"), r#"routerAdd("GET", "/b", (e) => e.json(200, { b: true }))"#).unwrap();
        let mut b = Value::Null;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            b = srv.guest(Method::GET, "/b", None).await.body;
            if b == json!({"b": true}) {
                break;
            }
        }
        assert_eq!(b, json!({"b": true}));
        assert_eq!(srv.guest(Method::GET, "/version", None).await.body, json!({"v": 2}));
    }
}

/// Hooks around the record API: change what is written, answer themselves, refuse, and
/// shape list, view and auth answers.
const REQUESTS: &str = r#"
onRecordCreateRequest((e) => {
    if (e.auth) e.record.set("author", e.auth.id)
    e.record.set("title", e.record.getString("title").trim())
    if (e.record.getString("title") === "forbidden") throw new ForbiddenError("not this title")
    e.next()
    if (!e.record.id) throw new Error("after e.next() the record is the created one")
}, "notes")
onRecordUpdateRequest((e) => {
    if (e.record.getString("title") === "locked") return e.json(409, { locked: true, id: e.record.id })
    e.next()
}, "notes")
onRecordDeleteRequest((e) => {
    if (e.record.getString("title") === "keep") throw new BadRequestError("kept")
    e.next()
}, "notes")
onRecordsListRequest((e) => {
    for (const r of e.records) r.hide("internal")
    e.next()
}, "notes")
onRecordViewRequest((e) => {
    e.record.set("length", e.record.getString("title").length)
    e.next()
}, "notes")
onRecordValidate((e) => {
    if (e.record.getString("title").includes("bad")) {
        throw new BadRequestError("Failed to create record.", { title: new ValidationError("bad_title", "No bad titles") })
    }
    e.record.set("internal", e.record.getString("internal") || "validated")
    e.next()
}, "notes")
onRecordEnrich((e) => {
    e.record.set("shout", e.record.getString("title").toUpperCase())
    if (!e.auth) e.record.hide("author")
    e.next()
}, "notes")
onMailerSend((e) => {
    e.message.subject = "[Shop] " + e.message.subject
    if (e.message.to[0].address.startsWith("blocked")) return
    e.next()
})
onServe((e) => e.next())
onRecordAuthRequest((e) => {
    e.meta = { hello: e.record.getString("email") }
    e.next()
}, "members")
"#;

both_engines_hooks! {
    files = &[("requests.pb.js", REQUESTS)];

    async fn request_hooks_shape_the_record_api(srv) {
        let member = srv.member_token().await;
        srv.create_collection(json!({
            "name": "notes", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [{"name": "title", "type": "text"}, {"name": "author", "type": "text"}, {"name": "internal", "type": "text"}]
        }))
        .await;
        let r = srv.send(Method::POST, "/api/collections/notes/records", Some(&member), Some(json!({"title": "  hi  ", "internal": "x"}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["title"], "hi");
        assert!(!r.body["author"].as_str().unwrap().is_empty(), "{}", r.body);
        assert_eq!(r.body["shout"], "HI", "enriched: {}", r.body);
        let id = r.body["id"].as_str().unwrap().to_owned();
        let r = srv.guest(Method::POST, "/api/collections/notes/records", Some(json!({"title": "so bad"}))).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.body["data"], json!({"title": {"code": "bad_title", "message": "No bad titles."}}));
        let r = srv.guest(Method::POST, "/api/collections/notes/records", Some(json!({"title": "fine"}))).await;
        assert_eq!(r.body["internal"], "validated", "onRecordValidate's change is written: {}", r.body);
        srv.su(Method::DELETE, &format!("/api/collections/notes/records/{}", r.body["id"].as_str().unwrap()), None).await;
        let r = srv.guest(Method::POST, "/api/collections/notes/records", Some(json!({"title": "forbidden"}))).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.body["message"], "Not this title.");
        assert_eq!(srv.all_records("notes").await.len(), 1);

        let r = srv.guest(Method::GET, "/api/collections/notes/records", None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["totalItems"], 1);
        assert_eq!(r.body["items"][0]["title"], "hi");
        assert!(r.body["items"][0].get("internal").is_none(), "{}", r.body);
        assert_eq!(r.body["items"][0]["shout"], "HI");
        assert!(r.body["items"][0].get("author").is_none(), "hidden for guests: {}", r.body);
        let r = srv.send(Method::GET, "/api/collections/notes/records", Some(&member), None).await;
        assert!(r.body["items"][0].get("author").is_some(), "{}", r.body);
        let r = srv.guest(Method::GET, &format!("/api/collections/notes/records/{id}"), None).await;
        assert_eq!(r.body["length"], 2);
        assert_eq!(r.body["internal"], "x");

        let r = srv.guest(Method::PATCH, &format!("/api/collections/notes/records/{id}"), Some(json!({"title": "locked"}))).await;
        assert_eq!(r.status, 409);
        assert_eq!(r.body, json!({"locked": true, "id": id}));
        let r = srv.guest(Method::GET, &format!("/api/collections/notes/records/{id}"), None).await;
        assert_eq!(r.body["title"], "hi", "the hook answered without writing");
        let r = srv.guest(Method::PATCH, &format!("/api/collections/notes/records/{id}"), Some(json!({"title": "keep"}))).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["title"], "keep");
        let r = srv.guest(Method::DELETE, &format!("/api/collections/notes/records/{id}"), None).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.body["message"], "Kept.");
        srv.guest(Method::PATCH, &format!("/api/collections/notes/records/{id}"), Some(json!({"title": "bye"}))).await;
        let r = srv.guest(Method::DELETE, &format!("/api/collections/notes/records/{id}"), None).await;
        assert_eq!(r.status, 204);
        assert_eq!(srv.all_records("notes").await.len(), 0);

        let r = srv.guest(Method::POST, "/api/collections/members/auth-with-password", Some(json!({"identity": "member@example.com", "password": "Member-Pass-1"}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["meta"], json!({"hello": "member@example.com"}));
        assert!(r.body["token"].as_str().unwrap().len() > 20);
        assert_eq!(r.body["record"]["email"], "member@example.com");
        assert!(r.body["record"].get("password").is_none());

        // onMailerSend changes the mail before it goes out, or stops it.
        for email in ["member@example.com", "blocked@example.com"] {
            if email.starts_with("blocked") {
                let r = srv.guest(Method::POST, "/api/collections/members/records", Some(json!({"email": email, "password": "Member-Pass-1", "passwordConfirm": "Member-Pass-1"}))).await;
                assert_eq!(r.status, 200);
            }
            let r = srv.guest(Method::POST, "/api/collections/members/request-password-reset", Some(json!({"email": email}))).await;
            assert_eq!(r.status, 204);
        }
        let mut subjects = vec![];
        for _ in 0..50 {
            let r = srv.su(Method::GET, "/api/galley/outbox", None).await;
            subjects = r.body["items"].as_array().unwrap().iter().map(|m| (m["to"].clone(), m["subject"].clone())).collect();
            if !subjects.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = srv.su(Method::GET, "/api/galley/outbox", None).await;
        let all: Vec<(Value, Value)> = r.body["items"].as_array().unwrap().iter().map(|m| (m["to"].clone(), m["subject"].clone())).collect();
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].0, "member@example.com");
        assert!(all[0].1.as_str().unwrap().starts_with("[Shop] "), "{all:?} {subjects:?}");
    }
}

const MIGRATION_CREATE: &str = r#"/// <reference path="../pb_data/types.d.ts" />
migrate((app) => {
  const collection = new Collection({
    "createRule": null, "deleteRule": null,
    "fields": [
      { "autogeneratePattern": "[a-z0-9]{15}", "hidden": false, "id": "text3208210256", "max": 15, "min": 15, "name": "id", "pattern": "^[a-z0-9]+$", "presentable": false, "primaryKey": true, "required": true, "system": true, "type": "text" }
    ],
    "id": "pbc_1125843985", "indexes": [], "listRule": "", "name": "posts", "system": false, "type": "base", "updateRule": null, "viewRule": ""
  });
  return app.save(collection);
}, (app) => {
  const collection = app.findCollectionByNameOrId("pbc_1125843985");
  return app.delete(collection);
})
"#;

const MIGRATION_UPDATE: &str = r#"migrate((app) => {
  const collection = app.findCollectionByNameOrId("pbc_1125843985")
  collection.fields.addAt(1, new Field({ "hidden": false, "id": "text724990059", "max": 0, "min": 0, "name": "title", "pattern": "", "presentable": false, "primaryKey": false, "required": false, "system": false, "type": "text", "autogeneratePattern": "" }))
  unmarshal({ "createRule": "" }, collection)
  app.save(collection)
  app.save(new Record(collection, { title: "seeded" }))
}, (app) => {
  const collection = app.findCollectionByNameOrId("pbc_1125843985")
  collection.fields.removeById("text724990059")
  unmarshal({ "createRule": null }, collection)
  return app.save(collection)
})
"#;

both_engines_hooks! {
    files = &[];

    async fn migrations_in_pocketbase_format_go_up_and_down(srv) {
        let hooks = srv.hooks.clone().expect("hooks");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1700000000_created_posts.js"), MIGRATION_CREATE).unwrap();
        std::fs::write(dir.path().join("1700000001_updated_posts.js"), MIGRATION_UPDATE).unwrap();
        std::fs::write(dir.path().join("README.md"), "not a migration").unwrap();
        let done = galley::galley_hooks::migrate::up(&hooks, dir.path()).await.unwrap();
        assert_eq!(done, ["1700000000_created_posts.js", "1700000001_updated_posts.js"]);
        let r = srv.guest(Method::GET, "/api/collections/posts/records", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["items"][0]["title"], "seeded");
        let r = srv.guest(Method::POST, "/api/collections/posts/records", Some(json!({"title": "by a guest"}))).await;
        assert_eq!(r.status, 200, "the migration opened the create rule: {}", r.body);
        // Applied once.
        assert!(galley::galley_hooks::migrate::up(&hooks, dir.path()).await.unwrap().is_empty());

        let done = galley::galley_hooks::migrate::down(&hooks, dir.path(), 1).await.unwrap();
        assert_eq!(done, ["1700000001_updated_posts.js"]);
        let r = srv.guest(Method::GET, "/api/collections/posts/records", None).await;
        assert_eq!(r.body["totalItems"], 2);
        assert!(r.body["items"][0].get("title").is_none(), "{}", r.body);
        let r = srv.guest(Method::POST, "/api/collections/posts/records", Some(json!({}))).await;
        assert_eq!(r.status, 403);
        galley::galley_hooks::migrate::down(&hooks, dir.path(), 5).await.unwrap();
        assert_eq!(srv.guest(Method::GET, "/api/collections/posts/records", None).await.status, 404);

        // A failing migration stops the run, names its file and is not recorded.
        std::fs::write(dir.path().join("1700000002_broken.js"), "migrate((app) => { throw new Error('half way') })").unwrap();
        let e = galley::galley_hooks::migrate::up(&hooks, dir.path()).await.unwrap_err().to_string();
        assert!(e.contains("1700000002_broken.js") && e.contains("half way"), "{e}");
        std::fs::write(dir.path().join("1700000002_broken.js"), "migrate((app) => {})").unwrap();
        // The two before it were applied by the failing run; only the fixed one is left.
        let done = galley::galley_hooks::migrate::up(&hooks, dir.path()).await.unwrap();
        assert_eq!(done, ["1700000002_broken.js"]);
        assert_eq!(srv.guest(Method::GET, "/api/collections/posts/records", None).await.status, 200);
    }
}

/// A server whose collection changes are written as migration files into `mig`.
async fn automigrating(
    engine: galley_testkit::Engine,
    mig: std::path::PathBuf,
) -> Option<TestServer> {
    TestServer::start_full(
        engine,
        |_| {},
        move |_| {
            Some(galley::galley_hooks::HooksConfig {
                automigrate: Some(mig),
                watch: false,
                pool_size: 4,
                ..Default::default()
            })
        },
    )
    .await
}

fn migration_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A collection's JSON without its timestamps.
async fn collection_def(srv: &TestServer, name: &str) -> Value {
    let mut r = srv
        .su(Method::GET, &format!("/api/collections/{name}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let o = r.body.as_object_mut().unwrap();
    o.shift_remove("created");
    o.shift_remove("updated");
    r.body
}

/// PocketBase's automigrate: API changes write `<unix>_created_|updated_|deleted_<name>.js`
/// files, recorded as applied here; a fresh database running them gets the same schema.
async fn automigrate_writes_files_that_rebuild_the_schema(engine: galley_testkit::Engine) {
    let mig = tempfile::tempdir().unwrap();
    let Some(srv) = automigrating(engine, mig.path().to_owned()).await else {
        return;
    };
    let r = srv
        .su(
            Method::POST,
            "/api/collections",
            Some(json!({"name": "posts", "type": "base", "fields": [
                {"name": "title", "type": "text", "required": true},
                {"name": "n", "type": "number"}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let files = migration_files(mig.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with("_created_posts.js"), "{files:?}");
    let text = std::fs::read_to_string(mig.path().join(&files[0])).unwrap();
    assert!(text.starts_with("/// <reference path=\"../pb_data/types.d.ts\" />\nmigrate((app) => {\n  const collection = new Collection({\n    \"createRule\": null,"), "{text}");
    assert!(
        !text.contains("\"created\""),
        "timestamps are left out: {text}"
    );
    // Sorted keys (Go's maps) inside the fields too.
    assert!(
        text.contains("\"name\": \"title\",\n        \"pattern\": \"\","),
        "{text}"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let title = r.body["fields"][1]["id"].as_str().unwrap().to_owned();
    let n = r.body["fields"][2]["id"].as_str().unwrap().to_owned();
    let r = srv
        .su(
            Method::PATCH,
            "/api/collections/posts",
            Some(json!({"listRule": "", "fields": [
                r.body["fields"][0],
                {"id": title, "name": "title", "type": "text", "required": false},
                {"name": "body", "type": "editor"}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let files = migration_files(mig.path());
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[1].ends_with("_updated_posts.js"), "{files:?}");
    let text = std::fs::read_to_string(mig.path().join(&files[1])).unwrap();
    for part in [
        "// update collection data\n  unmarshal({\n    \"listRule\": \"\"\n  }, collection)",
        &format!("// remove field\n  collection.fields.removeById(\"{n}\")"),
        "// add field\n  collection.fields.addAt(2, new Field({",
        "// update field\n  collection.fields.addAt(1, new Field({",
        "unmarshal({\n    \"listRule\": null\n  }, collection)",
    ] {
        assert!(text.contains(part), "{part:?} not in {text}");
    }
    // An unchanged save writes nothing.
    let r = srv
        .su(Method::PATCH, "/api/collections/posts", Some(json!({})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(migration_files(mig.path()).len(), 2);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    srv.create_collection(
        json!({"name": "scratchTest", "type": "base", "fields": [{"name": "x", "type": "text"}]}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = srv
        .su(Method::DELETE, "/api/collections/scratchTest", None)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let files = migration_files(mig.path());
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(files[2].ends_with("_created_scratchTest_.js"), "{files:?}");
    assert!(files[3].ends_with("_deleted_scratchTest_.js"), "{files:?}");

    // Recorded as applied: this database does not run them again.
    let hooks = srv.hooks.clone().unwrap();
    assert!(galley::galley_hooks::migrate::up(&hooks, mig.path())
        .await
        .unwrap()
        .is_empty());
    // Changes made by code (migrations, hooks) write no file.
    let done = galley::galley_hooks::migrate::down(&hooks, mig.path(), 2)
        .await
        .unwrap();
    assert_eq!(done.len(), 2);
    assert_eq!(migration_files(mig.path()).len(), 4);
    galley::galley_hooks::migrate::up(&hooks, mig.path())
        .await
        .unwrap();
    let want = collection_def(&srv, "posts").await;

    // A fresh database reproduces the schema from the files.
    let fresh = TestServer::start_with_hooks(engine, &[]).await.unwrap();
    let done = galley::galley_hooks::migrate::up(fresh.hooks.as_ref().unwrap(), mig.path())
        .await
        .unwrap();
    assert_eq!(done, files);
    assert_eq!(collection_def(&fresh, "posts").await, want);
    assert_eq!(
        fresh
            .su(Method::GET, "/api/collections/scratchTest", None)
            .await
            .status,
        404
    );
    let r = fresh
        .guest(Method::GET, "/api/collections/posts/records", None)
        .await;
    assert_eq!(
        r.status, 200,
        "the list rule came with the update: {}",
        r.body
    );
}

mod automigrate_writes_files {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        automigrate_writes_files_that_rebuild_the_schema(galley_testkit::Engine::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        automigrate_writes_files_that_rebuild_the_schema(galley_testkit::Engine::Postgres).await
    }
}

const TERMINATE: &str = r#"
onTerminate((e) => {
    const col = $app.findCollectionByNameOrId("notes")
    $app.save(new Record(col, { text: "terminated, restart: " + e.isRestart }))
    e.next()
})
"#;

both_engines_hooks! {
    files = &[("terminate.pb.js", TERMINATE)];

    // onTerminate runs once the server stopped serving, before the App closes: what it
    // saves is there after a restart.
    async fn on_terminate_runs_at_shutdown(srv) {
        let mut srv = srv;
        srv.create_collection(json!({"name": "notes", "type": "base", "listRule": "", "fields": [{"name": "text", "type": "text"}]})).await;
        assert!(srv.all_records("notes").await.is_empty());
        srv.restart().await;
        let texts: Vec<Value> = srv.all_records("notes").await.iter().map(|r| r["text"].clone()).collect();
        assert_eq!(texts, [json!("terminated, restart: false")]);
    }
}
