//! The JavaScript examples of PocketBase's "Extend with JavaScript" documentation
//! (pocketbase/site, src/routes/(app)/docs/js-*.svelte) that Galley's API covers, as written
//! there (a handler around a fragment where the page shows one), on both engines; and the
//! examples that use what Galley does not offer, which must fail at load naming it.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is the failure it reports

use galley_testkit::{both_engines, TestServer};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// js-overview, js-routing, js-records, js-database, js-jobs-scheduling, js-sending-emails.
const DOCS: &str = r#"
// js-overview
routerAdd("GET", "/hello/{name}", (e) => {
    let name = e.request.pathValue("name")

    return e.json(200, { "message": "Hello " + name })
})

onRecordAfterUpdateSuccess((e) => {
    console.log("user updated...", e.record.get("email"))

    e.next()
}, "users")

onBootstrap((e) => {
    e.next()

    const utils = require(`${__hooks}/utils.js`)
    utils.hello("world")
})

// js-routing
routerAdd("POST", "/api/myapp/settings", (e) => {
    // do something ...
    return e.json(200, {"success": true})
}, $apis.requireAuth())

routerAdd("GET", "/docs/request", (e) => {
    let authRecord = e.auth
    let isGuest = !e.auth
    let isSuperuser = e.hasSuperuserAuth()
    let info = e.requestInfo()
    let search = e.request.url.query().get("search")
    let search2 = e.requestInfo().query["search"]
    let token = e.request.header.get("Some-Header")
    let token2 = e.requestInfo().headers["some_header"]
    e.response.header().set("Some-Header", "123")
    e.set("someKey", 123)
    let val = e.get("someKey") // 123
    let ip = e.realIP()
    return e.json(200, { isGuest, isSuperuser, infoGuest: !info.auth, infoSuperuser: info.hasSuperuserAuth(), search, search2, token, token2, val, ip, id: authRecord ? authRecord.id : "" })
})

routerAdd("POST", "/docs/body", (e) => {
    let body = e.requestInfo().body
    const data = new DynamicModel({
        // describe the fields to read (used also as initial values)
        someTextField:   "",
        someIntValue:    0,
        someFloatValue:  -0,
        someBoolField:   false,
        someArrayField:  [],
        someObjectField: {}, // object props are accessible via .get(key)
    })
    e.bindBody(data)
    return e.json(200, { title: body.title, text: data.someTextField, int: data.someIntValue, arr: data.someArrayField })
})

routerAdd("GET", "/docs/responses/{kind}", (e) => {
    switch (e.request.pathValue("kind")) {
        case "json": return e.json(200, {"name": "John"})
        case "string": return e.string(200, "Lorem ipsum...")
        case "html": return e.html(200, "<h1>Hello!</h1>")
        case "redirect": return e.redirect(307, "https://example.com")
        case "none": return e.noContent(204)
    }
})

routerAdd("GET", "/docs/error", (e) => {
    // construct ApiError with custom status code and validation data error
    throw new ApiError(500, "something went wrong", {
        "title": new ValidationError("invalid_title", "Invalid or missing title"),
    })
})

routerAdd("GET", "/docs/errors/{status}", (e) => {
    switch (e.request.pathValue("status")) {
        case "400": throw new BadRequestError("")
        case "401": throw new UnauthorizedError()
        case "403": throw new ForbiddenError("no access")
        case "404": throw new NotFoundError()
        case "429": throw new TooManyRequestsError()
    }
    throw new InternalServerError()
})

routerAdd("POST", "/phone-login", (e) => {
    const data = new DynamicModel({
        phone:    "",
        password: "",
    })
    e.bindBody(data)

    let record = e.app.findFirstRecordByData("users", "phone", data.phone)
    if (!record.validatePassword(data.password)) {
        // return generic 400 error as a basic enumeration protection
        throw new BadRequestError("Invalid credentials")
    }

    return e.json(200, { id: record.id })
})

// js-records
onRecordCreateRequest((e) => {
    // ignore for superusers
    if (e.hasSuperuserAuth()) {
        return e.next()
    }

    // overwrite the submitted "status" field value
    e.record.set("status", "pending")

    // or you can also prevent the create event by returning an error
    let status = e.record.get("status")
    if (
        status != "pending" &&
        // guest or not an editor
        (!e.auth || e.auth.get("role") != "editor")
    ) {
        throw new BadRequestError("Only editors can set a status different from pending")
    }

    e.next()
}, "articles")

onRecordEnrich((e) => {
    // dynamically show/hide a record field depending on whether the current
    // authenticated user has a certain "role" (or any other field constraint)
    if (
        !e.requestInfo.auth ||
        (!e.requestInfo.auth.isSuperuser() && e.requestInfo.auth.get("role") != "staff")
    ) {
        e.record.hide("someStaffOnlyField")
    }

    e.next()
}, "articles")

routerAdd("GET", "/docs/fetch", (e) => {
    // retrieve a single "articles" record by a single key-value pair
    let record = $app.findFirstRecordByData("articles", "slug", "test")
    // retrieve a single "articles" record by its id
    let byId = $app.findRecordById("articles", record.id)
    let news = $app.findFirstRecordByFilter(
        "articles",
        "status = 'public' && category = {:category}",
        { "category": "news" },
    )
    let records = $app.findRecordsByFilter(
        "articles",                                    // collection
        "status = 'public' && category = {:category}", // filter
        "-published",                                   // sort
        10,                                            // limit
        0,                                             // offset
        { "category": "news" },                        // optional filter params
    )
    // retrieve multiple "articles" records by their ids
    let byIds = $app.findRecordsByIds("articles", [records[0].id, records[1].id])
    let user = $app.findAuthRecordByEmail("users", "test@example.com")
    return e.json(200, {
        slug: byId.get("slug"), news: news.getString("title"), byIds: byIds.length,
        records: records.map((r) => r.get("title")), user: user.email(),
        total: $app.countRecords("articles"),
    })
})

routerAdd("POST", "/docs/records", (e) => {
    let collection = $app.findCollectionByNameOrId("articles")

    let record = new Record(collection)

    record.set("title", "Lorem ipsum")
    record.set("active", true)


    $app.save(record);

    let titles = ["title1", "title2", "title3"]

    $app.runInTransaction((txApp) => {
        // create new record for each title
        for (let title of titles) {
            let record = new Record(collection)

            record.set("title", title)

            txApp.save(record)
        }
    })

    let saved = $app.findRecordById("articles", record.id)
    saved.set("title", "Lorem ipsum 2")
    let original = saved.original().get("title")
    $app.save(saved)
    let copy = $app.findRecordById("articles", record.id)
    $app.delete(copy)
    return e.json(200, { title: saved.get("title"), original, slug: saved.getString("slug") })
})

// js-database
routerAdd("GET", "/docs/query", (e) => {
    const result = arrayOf(new DynamicModel({
        "title":   "",
        "created": "",
    }))

    $app.db()
        .newQuery("SELECT title, created FROM articles WHERE created >= {:from} and created <= {:to}")
        .bind({
            "from": "2023-06-25 00:00:00.000Z",
            "to":   "2999-06-28 23:59:59.999Z",
        })
        .all(result)

    const one = new DynamicModel({ "id": "", "title": "" })
    $app.db()
        .newQuery("SELECT id, title FROM articles WHERE slug = {:slug}")
        .bind({ "slug": "test" })
        .one(one)

    $app.db()
        .newQuery("DELETE FROM articles WHERE status = 'archived'")
        .execute() // throw an error on db failure

    return e.json(200, { count: result.length, one: one.title })
})

// js-jobs-scheduling: prints "Hello!" every 2 minutes
cronAdd("hello", "*/2 * * * *", () => {
    console.log("Hello!")
})

// js-sending-emails
onRecordCreateRequest((e) => {
    e.next()

    const message = new MailerMessage({
        from: {
            address: e.app.settings().meta.senderAddress,
            name:    e.app.settings().meta.senderName,
        },
        to:      [{address: e.record.email()}],
        subject: "YOUR_SUBJECT...",
        html:    "YOUR_HTML_BODY...",
        // bcc, cc and custom headers are also supported...
    })

    e.app.newMailClient().send(message)
}, "users")
"#;

/// js-overview's `pb_hooks/utils.js`.
const UTILS: &str = r#"
module.exports = {
    hello: (name) => {
        console.log("Hello " + name)
    }
}
"#;

/// js-routing's global middleware.
const MIDDLEWARE: &str = r#"
routerUse((e) => {
    if (e.request.header.get("Something") == "") {
        throw new BadRequestError("Something header value is missing!")
    }

    return e.next()
})

routerAdd("GET", "/hello", (e) => {
    return e.string(200, "Hello!")
}, (e) => {
    e.set("trail", "route middleware")
    return e.next()
})
"#;

async fn docs_server(engine: galley_testkit::Engine, files: &[(&str, &str)]) -> Option<TestServer> {
    TestServer::start_with_hooks(engine, files).await
}

async fn schema(srv: &TestServer) {
    srv.create_collection(json!({"name": "users", "type": "auth", "createRule": "",
        "fields": [{"name": "phone", "type": "text"}, {"name": "role", "type": "text"}]}))
        .await;
    srv.create_collection(json!({"name": "articles", "type": "base",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "slug", "type": "text", "autogeneratePattern": "[a-z]{5}"},
            {"name": "status", "type": "text"},
            {"name": "category", "type": "text"},
            {"name": "active", "type": "bool"},
            {"name": "someStaffOnlyField", "type": "text"},
            {"name": "published", "type": "date"},
            {"name": "created", "type": "autodate", "onCreate": true, "onUpdate": false}]}))
        .await;
}

async fn docs_run(engine: galley_testkit::Engine) {
    let Some(srv) = docs_server(engine, &[("main.pb.js", DOCS), ("utils.js", UTILS)]).await else {
        return;
    };
    schema(&srv).await;

    // js-overview
    let r = srv.guest(Method::GET, "/hello/world", None).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (200, json!({"message": "Hello world"}))
    );

    // js-routing: auth guard, request data, body binding, answers, errors.
    let r = srv.guest(Method::POST, "/api/myapp/settings", None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = srv.su(Method::POST, "/api/myapp/settings", None).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({"success": true})));
    let resp = srv
        .request(Method::GET, "/docs/request?search=abc")
        .header("Some-Header", "tok")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["some-header"], "123");
    let r = TestServer::read(resp).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["search"], "abc");
    assert_eq!(r.body["search2"], "abc");
    assert_eq!(r.body["token"], "tok");
    assert_eq!(r.body["token2"], "tok");
    assert_eq!(r.body["isGuest"], true);
    assert_eq!(r.body["infoGuest"], true);
    assert_eq!(r.body["isSuperuser"], false);
    assert_eq!(r.body["val"], 123);
    assert_eq!(r.body["ip"], "127.0.0.1");
    let r = srv.su(Method::GET, "/docs/request", None).await;
    assert_eq!(
        (
            r.body["isSuperuser"].clone(),
            r.body["infoSuperuser"].clone()
        ),
        (json!(true), json!(true))
    );
    let r = srv
        .guest(Method::POST, "/docs/body", Some(json!({"title": "t", "someTextField": "x", "someIntValue": 7, "someArrayField": [1, 2]})))
        .await;
    assert_eq!(
        r.body,
        json!({"title": "t", "text": "x", "int": 7, "arr": [1, 2]})
    );
    let r = srv.guest(Method::GET, "/docs/responses/json", None).await;
    assert_eq!(r.body, json!({"name": "John"}));
    let resp = srv
        .request(Method::GET, "/docs/responses/html")
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(resp.text().await.unwrap(), "<h1>Hello!</h1>");
    let resp = srv
        .request(Method::GET, "/docs/responses/string")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "Lorem ipsum...");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .get(format!("{}/docs/responses/redirect", srv.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 307);
    assert_eq!(resp.headers()["location"], "https://example.com");
    assert_eq!(
        srv.guest(Method::GET, "/docs/responses/none", None)
            .await
            .status,
        204
    );
    let r = srv.guest(Method::GET, "/docs/error", None).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            500,
            json!({"status": 500, "message": "Something went wrong.", "data": {"title": {"code": "invalid_title", "message": "Invalid or missing title."}}})
        )
    );
    for (status, message) in [
        (400, "Something went wrong while processing your request."),
        (401, "Missing or invalid authentication."),
        (403, "No access."),
        (404, "The requested resource wasn't found."),
        (429, "Too Many Requests."),
        (500, "Something went wrong while processing your request."),
    ] {
        let r = srv
            .guest(Method::GET, &format!("/docs/errors/{status}"), None)
            .await;
        assert_eq!(
            (r.status, r.body.clone()),
            (
                status,
                json!({"status": status, "message": message, "data": {}})
            )
        );
    }

    // js-routing's phone login over users.
    let r = srv
        .guest(Method::POST, "/api/collections/users/records", Some(json!({"email": "test@example.com", "password": "Pass-1234", "passwordConfirm": "Pass-1234", "phone": "555"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let user_id = r.body["id"].as_str().unwrap().to_owned();
    let r = srv
        .guest(
            Method::POST,
            "/phone-login",
            Some(json!({"phone": "555", "password": "Pass-1234"})),
        )
        .await;
    assert_eq!((r.status, r.body["id"].clone()), (200, json!(user_id)));
    let r = srv
        .guest(
            Method::POST,
            "/phone-login",
            Some(json!({"phone": "555", "password": "wrong"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["message"].clone()),
        (400, json!("Invalid credentials."))
    );

    // js-sending-emails: the create above sent a mail.
    let mut mails = vec![];
    for _ in 0..50 {
        let r = srv.su(Method::GET, "/api/galley/outbox", None).await;
        mails = r.body["items"].as_array().unwrap().clone();
        if !mails.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["to"], "test@example.com");
    assert_eq!(mails[0]["subject"], "YOUR_SUBJECT...");

    // js-records: a guest's status is forced to pending; the staff-only field is hidden.
    let r = srv
        .guest(Method::POST, "/api/collections/articles/records", Some(json!({"title": "a", "status": "public", "slug": "test", "category": "news", "someStaffOnlyField": "secret"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "pending");
    assert!(r.body.get("someStaffOnlyField").is_none(), "{}", r.body);
    let article = r.body["id"].as_str().unwrap().to_owned();
    let r = srv
        .su(Method::POST, "/api/collections/articles/records", Some(json!({"title": "b", "status": "public", "category": "news", "someStaffOnlyField": "secret"})))
        .await;
    assert_eq!(r.body["status"], "public", "superusers are let through");
    assert_eq!(r.body["someStaffOnlyField"], "secret", "superusers see it");
    srv.su(
        Method::PATCH,
        &format!("/api/collections/articles/records/{article}"),
        Some(json!({"status": "public"})),
    )
    .await;
    let r = srv
        .guest(
            Method::GET,
            &format!("/api/collections/articles/records/{article}"),
            None,
        )
        .await;
    assert!(r.body.get("someStaffOnlyField").is_none(), "{}", r.body);
    let staff = srv
        .guest(Method::POST, "/api/collections/users/records", Some(json!({"email": "staff@example.com", "password": "Pass-1234", "passwordConfirm": "Pass-1234", "role": "staff"})))
        .await;
    assert_eq!(staff.status, 200, "{}", staff.body);
    let r = srv
        .guest(
            Method::POST,
            "/api/collections/users/auth-with-password",
            Some(json!({"identity": "staff@example.com", "password": "Pass-1234"})),
        )
        .await;
    let token = r.body["token"].as_str().unwrap().to_owned();
    let r = srv
        .send(
            Method::GET,
            &format!("/api/collections/articles/records/{article}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.body["someStaffOnlyField"], "secret", "{}", r.body);

    let r = srv.guest(Method::GET, "/docs/fetch", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["slug"], "test");
    assert_eq!(r.body["news"], "a");
    assert_eq!(r.body["byIds"], 2);
    assert_eq!(r.body["records"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["user"], "test@example.com");
    assert_eq!(r.body["total"], 2);

    let r = srv.guest(Method::POST, "/docs/records", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["title"], "Lorem ipsum 2");
    assert_eq!(r.body["original"], "Lorem ipsum");
    assert_eq!(
        r.body["slug"].as_str().unwrap().len(),
        5,
        "the field's autogeneratePattern: {}",
        r.body
    );
    let titles: Vec<String> = srv
        .all_records("articles")
        .await
        .iter()
        .map(|r| r["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(titles.len(), 5, "{titles:?}");
    for t in ["title1", "title2", "title3"] {
        assert!(titles.contains(&t.to_owned()), "{titles:?}");
    }

    let r = srv.guest(Method::GET, "/docs/query", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"count": 5, "one": "a"}));

    // js-jobs-scheduling
    let r = srv.su(Method::GET, "/api/crons", None).await;
    let crons: Vec<&Value> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == "hello")
        .collect();
    assert_eq!(crons.len(), 1, "{}", r.body);
    assert_eq!(crons[0]["expression"], "*/2 * * * *");
}

async fn middleware_run(engine: galley_testkit::Engine) {
    let Some(srv) = docs_server(engine, &[("main.pb.js", MIDDLEWARE)]).await else {
        return;
    };
    let r = srv.guest(Method::GET, "/hello", None).await;
    assert_eq!(
        (r.status, r.body["message"].clone()),
        (400, json!("Something header value is missing!"))
    );
    let resp = srv
        .request(Method::GET, "/hello")
        .header("Something", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "Hello!");
}

mod docs_examples {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        docs_run(galley_testkit::Engine::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        docs_run(galley_testkit::Engine::Postgres).await
    }
}

mod docs_global_middleware {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        middleware_run(galley_testkit::Engine::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        middleware_run(galley_testkit::Engine::Postgres).await
    }
}

/// Examples of the documentation that use what Galley does not offer, with the name the
/// load must report (inside handlers too, where the name would otherwise only fail when
/// called).
const NOT_OFFERED: &[(&str, &str)] = &[
    (
        r#"routerAdd("GET", "/{path...}", $apis.static("/path/to/public", false))"#,
        "$apis.static",
    ),
    (
        r#"routerAdd("POST", "/phone-login", (e) => {
    let record = e.app.findFirstRecordByData("users", "phone", "1")
    return $apis.recordAuthResponse(e, record, "phone")
})"#,
        "$apis.recordAuthResponse",
    ),
    (
        r#"routerAdd("GET", "/custom-article", (e) => {
    let records = e.app.findRecordsByFilter("article", "status = 'active'", "-created", 40, 0)
    $apis.enrichRecords(e, records, "categories")
    return e.json(200, records)
})"#,
        "$apis.enrichRecords",
    ),
    (
        r#"routerAdd("GET", "/x", (e) => e.string(200, "x"), $apis.gzip())"#,
        "$apis.gzip",
    ),
    (
        r#"routerAdd("POST", "/up", (e) => {
    let files = e.findUploadedFiles("document")
    return e.json(200, files)
})"#,
        "findUploadedFiles",
    ),
    (
        r#"routerAdd("POST", "/up", (e) => {
    let [mf, mh] = e.request.formFile("document")
})"#,
        "formFile",
    ),
    (
        r#"routerAdd("GET", "/f", (e) => e.fileFS($os.dirFS("..."), "example.txt"))"#,
        "$os.dirFS",
    ),
    (
        r#"routerUse(new Middleware((e) => {
  console.log(2)
  return e.next()
}, -1))"#,
        "Middleware",
    ),
    (
        r#"onRecordCreateRequest((e) => {
    let f2 = $filesystem.fileFromBytes("test content", "file2.txt")
    e.record.set("documents", [f2])
    e.next()
})"#,
        "$filesystem",
    ),
    (
        r#"routerAdd("GET", "/c", (e) => {
    let totalPending = $app.countRecords("articles", $dbx.hashExp({"status": "pending"}))
})"#,
        "$dbx",
    ),
    (
        r#"routerAdd("GET", "/c", (e) => {
    let record = new Record();
    $app.recordQuery("articles").limit(1).one(record)
})"#,
        "$app.recordQuery",
    ),
    (
        r#"routerAdd("GET", "/c", (e) => {
    let record = $app.findFirstRecordByData("articles", "slug", "lorem-ipsum")
    $app.expandRecord(record, ["author", "categories"], null)
})"#,
        "$app.expandRecord",
    ),
    (
        r#"routerAdd("GET", "/articles/{slug}", (e) => {
    let record = e.app.findFirstRecordByData("articles", "slug", e.request.pathValue("slug"))
    let canAccess = e.app.canAccessRecord(record, e.requestInfo(), record.collection().viewRule)
    return e.json(200, record)
})"#,
        "$app.canAccessRecord",
    ),
    (
        r#"routerAdd("GET", "/t", (e) => {
    let record = $app.findRecordById("users", "x")
    return e.json(200, { token: record.newAuthToken() })
})"#,
        "newAuthToken",
    ),
    (
        r#"onMailerRecordPasswordResetSend((e) => {
    e.message.subject += (" " + e.record.get("name"))
    e.next()
})"#,
        "onMailerRecordPasswordResetSend",
    ),
    (
        r#"routerAdd("GET", "/hello/{name}", (e) => {
    const html = $template.loadFiles(`${__hooks}/views/layout.html`).render({ "name": "x" })
    return e.html(200, html)
})"#,
        "$template",
    ),
    (
        r#"routerAdd("GET", "/q", (e) => {
    $app.db().select("id", "email").from("users").all(arrayOf(new DynamicModel({ "id": "" })))
})"#,
        "$app.db().select",
    ),
    (
        r#"routerAdd("GET", "/h", (e) => e.json(200, { h: $security.md5("x") }))"#,
        "$security.md5",
    ),
];

both_engines! {
    async fn docs_examples_not_offered_fail_at_load_naming_it(srv) {
        let hooks = srv.hooks.clone();
        // A server without hook files has no Hooks; load one to check with.
        let hooks = match hooks {
            Some(h) => h,
            None => galley::galley_hooks::Hooks::load(galley::galley_hooks::HooksConfig {
                watch: false,
                ..Default::default()
            })
            .unwrap(),
        };
        for (src, name) in NOT_OFFERED {
            let e = hooks.check("example.pb.js", src).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{name} is part of PocketBase's JavaScript API but Galley does not offer it"))
                    || e.contains(&format!("{name} is not defined")),
                "{src}\n=> {e}"
            );
            assert!(e.starts_with("example.pb.js:"), "{e}");
        }
        // Names in comments and strings are not uses; the offered API passes.
        let ok = r#"// $apis.static(...) is not used here
routerAdd("GET", "/ok", (e) => e.json(200, { text: "$dbx and $apis.gzip() in a string", t: `${e.request.pathValue("x")} $template` }))
onRecordCreateRequest((e) => { const re = /\$filesystem/; return e.next() })"#;
        assert_eq!(hooks.check("ok.pb.js", ok).unwrap(), 2);
        assert_eq!(hooks.check("docs.pb.js", DOCS).unwrap(), 17);
    }
}
