//! Files end to end, on both engines and both storage backends (local disk, S3 on
//! loopback): multipart uploads with PocketBase's names and modifiers, downloads with
//! headers and ranges, thumbnails, protected files and file tokens, removal after commits,
//! and hostile input.

use galley_testkit::{all_backends, Method, Reply, TestServer};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([255, 0, 0]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let n = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (n(16), n(20))
}

fn file(bytes: impl Into<Vec<u8>>, name: &str) -> Part {
    Part::bytes(bytes.into()).file_name(name.to_owned())
}

/// `stem_xxxxxxxxxx.ext` with a 10-character random part.
fn assert_stored_name(name: &str, stem: &str, ext: &str) {
    let (head, e) = name.split_at(name.len() - ext.len());
    assert_eq!(e, ext, "{name}");
    let (s, rand) = head.rsplit_once('_').unwrap_or_else(|| panic!("{name}"));
    assert_eq!(s, stem, "{name}");
    assert_eq!(rand.len(), 10, "{name}");
    assert!(
        rand.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{name}"
    );
}

async fn send_form(
    srv: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    form: Form,
) -> Reply {
    let mut rb = srv.request(method, path).multipart(form);
    if let Some(t) = token {
        rb = rb.header("Authorization", t);
    }
    TestServer::read(rb.send().await.expect("request")).await
}

struct Raw {
    status: u16,
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
}

async fn get_raw(srv: &TestServer, path: &str, headers: &[(&str, &str)]) -> Raw {
    let mut rb = srv.request(Method::GET, path);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.expect("request");
    Raw {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        bytes: r.bytes().await.expect("body").to_vec(),
    }
}

fn header<'a>(r: &'a Raw, k: &str) -> &'a str {
    r.headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// `docs`: a single image field with thumbs, a multi-file field, a protected field; open
/// rules except view, which needs any auth record (so protected files need a token).
async fn setup(srv: &TestServer) -> String {
    let c = srv
        .create_collection(json!({"name": "docs", "listRule": "", "viewRule": "@request.auth.id != ''", "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "one", "type": "file", "maxSelect": 1, "maxSize": 2000, "mimeTypes": ["image/png", "image/jpeg"], "thumbs": ["50x50", "20x0", "10x10f"]},
                {"name": "many", "type": "file", "maxSelect": 3},
                {"name": "priv", "type": "file", "protected": true}
            ]}))
        .await;
    c["id"].as_str().expect("id").to_owned()
}

async fn create_doc(srv: &TestServer) -> Value {
    let form = Form::new()
        .text("title", "hello")
        .part("one", file(png(8, 6), "red.png"))
        .part("many", file("hello world", "a.txt"))
        .part("many", file(png(3, 3), "My Photo (1).PNG"))
        .part("priv", file("secret", "secret.txt"));
    let r = send_form(
        srv,
        Method::POST,
        "/api/collections/docs/records",
        None,
        form,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

all_backends! {
    async fn upload_names_and_download_headers(srv) {
        let cid = setup(&srv).await;
        let rec = create_doc(&srv).await;
        let id = rec["id"].as_str().expect("id");
        assert_eq!(rec["title"], "hello");
        let one = rec["one"].as_str().expect("one");
        assert_stored_name(one, "red", ".png");
        let many: Vec<&str> = rec["many"].as_array().expect("many").iter().map(|v| v.as_str().expect("name")).collect();
        assert_eq!(many.len(), 2);
        // Short stems get a random part too: `a` + 10 characters.
        assert!(many[0].starts_with('a') && many[0].ends_with(".txt") && many[0].len() == 1 + 10 + 1 + 10 + 4, "{}", many[0]);
        assert_stored_name(many[1], "my_photo_1", ".PNG");
        let keys = srv.stored_keys(&cid).await;
        let mut expected: Vec<String> = [one, many[0], many[1], rec["priv"].as_str().expect("priv")]
            .iter().map(|n| format!("{cid}/{id}/{n}")).collect();
        expected.sort();
        assert_eq!(keys, expected);

        let r = get_raw(&srv, &format!("/api/files/docs/{id}/{one}"), &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.bytes, png(8, 6));
        assert_eq!(header(&r, "content-type"), "image/png");
        assert_eq!(header(&r, "content-disposition"), format!("inline; filename=\"{one}\""));
        assert_eq!(header(&r, "content-length"), png(8, 6).len().to_string());
        assert_eq!(header(&r, "cache-control"), "max-age=2592000, stale-while-revalidate=86400");
        assert_eq!(header(&r, "accept-ranges"), "bytes");
        assert_eq!(header(&r, "content-security-policy"), "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox");
        assert!(header(&r, "last-modified").ends_with(" GMT"), "{:?}", r.headers);
        assert!(r.headers.get("x-frame-options").is_none());
        // By collection id too.
        assert_eq!(get_raw(&srv, &format!("/api/files/{cid}/{id}/{one}"), &[]).await.bytes, png(8, 6));

        let txt = format!("/api/files/docs/{id}/{}", many[0]);
        let r = get_raw(&srv, &txt, &[]).await;
        assert_eq!((r.status, r.bytes.as_slice()), (200, b"hello world".as_slice()));
        assert_eq!(header(&r, "content-type"), "text/plain; charset=utf-8");
        assert_eq!(header(&r, "content-disposition"), format!("attachment; filename=\"{}\"", many[0]));
        let r = get_raw(&srv, &format!("/api/files/docs/{id}/{one}?download=1"), &[]).await;
        assert_eq!(header(&r, "content-disposition"), format!("attachment; filename=\"{one}\""));

        // Ranges.
        let r = get_raw(&srv, &txt, &[("Range", "bytes=2-4")]).await;
        assert_eq!((r.status, r.bytes.as_slice()), (206, b"llo".as_slice()));
        assert_eq!(header(&r, "content-range"), "bytes 2-4/11");
        assert_eq!(header(&r, "content-length"), "3");
        let r = get_raw(&srv, &txt, &[("Range", "bytes=-5")]).await;
        assert_eq!((r.status, r.bytes.as_slice()), (206, b"world".as_slice()));
        let r = get_raw(&srv, &txt, &[("Range", "bytes=50-60")]).await;
        assert_eq!(r.status, 416);
        assert_eq!(header(&r, "content-range"), "bytes */11");
        // Conditional requests.
        let lm = header(&get_raw(&srv, &txt, &[]).await, "last-modified").to_owned();
        assert_eq!(get_raw(&srv, &txt, &[("If-Modified-Since", &lm)]).await.status, 304);

        // Missing file, record, collection.
        srv.guest(Method::GET, &format!("/api/files/docs/{id}/nope.png"), None).await
            .assert_error(404, "The requested resource wasn't found.");
        srv.guest(Method::GET, &format!("/api/files/docs/zzzzzzzzzzzzzzz/{one}"), None).await
            .assert_error(404, "The requested resource wasn't found.");
        srv.guest(Method::GET, &format!("/api/files/nope/{id}/{one}"), None).await
            .assert_error(404, "Missing or invalid collection context.");
    }

    async fn thumbnails(srv) {
        let cid = setup(&srv).await;
        let rec = create_doc(&srv).await;
        let id = rec["id"].as_str().expect("id");
        let one = rec["one"].as_str().expect("one");
        let base = format!("/api/files/docs/{id}/{one}");
        for (size, dims) in [("50x50", (50, 50)), ("20x0", (20, 15)), ("10x10f", (8, 6)), ("100x100", (100, 100))] {
            let r = get_raw(&srv, &format!("{base}?thumb={size}"), &[]).await;
            assert_eq!(r.status, 200, "{size}");
            assert_eq!(png_size(&r.bytes), dims, "{size}");
            assert_eq!(header(&r, "content-type"), "image/png");
            assert_eq!(header(&r, "content-disposition"), format!("inline; filename=\"{size}_{one}\""));
        }
        // Made once and kept under thumbs_NAME/.
        let keys = srv.stored_keys(&format!("{cid}/{id}/thumbs_{one}")).await;
        assert_eq!(keys.len(), 4, "{keys:?}");
        assert!(keys.contains(&format!("{cid}/{id}/thumbs_{one}/50x50_{one}")));
        let again = get_raw(&srv, &format!("{base}?thumb=50x50"), &[]).await;
        assert_eq!(png_size(&again.bytes), (50, 50));
        // Sizes not listed (and nonsense) serve the original, like PocketBase.
        for size in ["30x30", "abc", "0x0", "99999x1"] {
            let r = get_raw(&srv, &format!("{base}?thumb={size}"), &[]).await;
            assert_eq!((r.status, r.bytes.clone()), (200, png(8, 6)), "{size}");
            assert_eq!(header(&r, "content-disposition"), format!("inline; filename=\"{one}\""));
        }
        // Not an image: the original.
        let txt = rec["many"][0].as_str().expect("txt");
        let r = get_raw(&srv, &format!("/api/files/docs/{id}/{txt}?thumb=100x100"), &[]).await;
        assert_eq!(r.bytes, b"hello world");
        assert_eq!(srv.stored_keys(&format!("{cid}/{id}/thumbs_{txt}")).await, Vec::<String>::new());
        // Concurrent first requests for one size make one thumbnail.
        let url = format!("{base}?thumb=20x0");
        let reqs: Vec<_> = (0..8).map(|_| get_raw(&srv, &url, &[])).collect();
        for r in futures_util::future::join_all(reqs).await {
            assert_eq!(png_size(&r.bytes), (20, 15));
        }
    }

    async fn decompression_bomb_gets_no_thumbnail(srv) {
        let cid = setup(&srv).await;
        // A valid PNG header claiming 60000x60000 pixels (3.6 gigapixels), tiny on disk.
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        let crc = crc32fast::hash(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        let form = Form::new().part("one", file(bomb.clone(), "bomb.png"));
        let r = send_form(&srv, Method::POST, "/api/collections/docs/records", None, form).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let id = r.body["id"].as_str().expect("id");
        let one = r.body["one"].as_str().expect("one");
        let got = get_raw(&srv, &format!("/api/files/docs/{id}/{one}?thumb=50x50"), &[]).await;
        // The original is served, no thumbnail is stored, the server stays up.
        assert_eq!((got.status, got.bytes), (200, bomb));
        assert_eq!(srv.stored_keys(&format!("{cid}/{id}")).await, vec![format!("{cid}/{id}/{one}")]);
        srv.assert_healthy().await;
    }

    async fn modifiers_replace_and_removal_after_commit(srv) {
        let cid = setup(&srv).await;
        let rec = create_doc(&srv).await;
        let id = rec["id"].as_str().expect("id").to_owned();
        let path = format!("/api/collections/docs/records/{id}");
        let old_many: Vec<String> = rec["many"].as_array().expect("many").iter().map(|v| v.as_str().expect("s").to_owned()).collect();
        // Make a thumbnail so its removal can be seen.
        let one = rec["one"].as_str().expect("one").to_owned();
        get_raw(&srv, &format!("/api/files/docs/{id}/{one}?thumb=50x50"), &[]).await;

        // `field-` drops a name: the file goes once the update commits.
        let form = Form::new().text("many-", old_many[0].clone());
        let r = send_form(&srv, Method::PATCH, &path, None, form).await;
        assert_eq!(r.body["many"], json!([old_many[1]]), "{}", r.body);
        assert!(!srv.stored_keys(&cid).await.contains(&format!("{cid}/{id}/{}", old_many[0])));

        // `+field` prepends, `field+` appends.
        let form = Form::new()
            .part("many+", file("z", "last.txt"))
            .part("+many", file("a", "first.txt"));
        let r = send_form(&srv, Method::PATCH, &path, None, form).await;
        let many: Vec<&str> = r.body["many"].as_array().expect("many").iter().map(|v| v.as_str().expect("s")).collect();
        assert_eq!(many.len(), 3, "{}", r.body);
        assert_stored_name(many[0], "first", ".txt");
        assert_eq!(many[1], old_many[1]);
        assert_stored_name(many[2], "last", ".txt");

        // Replacing the single file removes the old one and its thumbnails.
        let form = Form::new().part("one", file(png(4, 4), "new.png"));
        let r = send_form(&srv, Method::PATCH, &path, None, form).await;
        let new_one = r.body["one"].as_str().expect("one").to_owned();
        assert_stored_name(&new_one, "new", ".png");
        let keys = srv.stored_keys(&cid).await;
        assert!(!keys.iter().any(|k| k.contains(&one)), "old file or thumbs left: {keys:?}");
        assert!(keys.contains(&format!("{cid}/{id}/{new_one}")));

        // Keeping by name works; an unknown name is refused with PocketBase's error.
        let r = srv.guest(Method::PATCH, &path, Some(json!({"one": new_one, "many": [many[1], "someone_elses.txt"]}))).await;
        r.assert_error(400, "Failed to update record.");
        assert_eq!(r.body["data"]["many"], json!({"code": "validation_invalid_file", "message": "Invalid new files: [someone_elses.txt].", "params": {"invalidFiles": ["someone_elses.txt"]}}));

        // Clearing by null / [] removes the files.
        let r = srv.guest(Method::PATCH, &path, Some(json!({"one": null, "many": []}))).await;
        assert_eq!((r.body["one"].clone(), r.body["many"].clone()), (json!(""), json!([])), "{}", r.body);
        let keys = srv.stored_keys(&cid).await;
        assert_eq!(keys, vec![format!("{cid}/{id}/{}", rec["priv"].as_str().expect("priv"))]);

        // Too many files.
        let form = Form::new().part("many", file("1", "1.txt")).part("many", file("2", "2.txt"))
            .part("many", file("3", "3.txt")).part("many", file("4", "4.txt"));
        let r = send_form(&srv, Method::PATCH, &path, None, form).await;
        r.assert_error(400, "Failed to update record.");
        assert_eq!(r.body["data"]["many"], json!({"code": "validation_too_many_files", "message": "The maximum allowed files is 3.", "params": {"maxSelect": 3}}));

        // Deleting the record removes its folder.
        assert_eq!(srv.guest(Method::DELETE, &path, None).await.status, 204);
        assert_eq!(srv.stored_keys(&format!("{cid}/{id}")).await, Vec::<String>::new());
    }

    async fn failed_writes_leave_no_files(srv) {
        let cid = setup(&srv).await;
        // Too big and wrong type: refused before anything is stored.
        let r = send_form(&srv, Method::POST, "/api/collections/docs/records", None,
            Form::new().part("one", file(png(300, 300), "big.png"))).await;
        r.assert_error(400, "Failed to create record.");
        let size = r.body["data"]["one"]["params"]["maxSize"].clone();
        assert_eq!(r.body["data"]["one"], json!({"code": "validation_file_size_limit",
            "message": "Failed to upload big.png - the maximum allowed file size is 2000 bytes.",
            "params": {"file": "big.png", "maxSize": 2000}}), "{size}");
        let r = send_form(&srv, Method::POST, "/api/collections/docs/records", None,
            Form::new().part("one", file("just text", "fake.png"))).await;
        r.assert_error(400, "Failed to create record.");
        assert_eq!(r.body["data"]["one"]["code"], "validation_invalid_mime_type");
        let msg = r.body["data"]["one"]["message"].as_str().expect("message");
        assert!(msg.starts_with("\"fake_") && msg.ends_with(".png\" mime type must be one of: image/png, image/jpeg."), "{msg}");
        // Stored, then the job fails (bad title for the create rule): the upload is removed.
        let r = srv.su(Method::PATCH, "/api/collections/docs", Some(json!({"createRule": "title = 'ok'"}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = send_form(&srv, Method::POST, "/api/collections/docs/records", None,
            Form::new().text("title", "nope").part("many", file("x", "x.txt"))).await;
        r.assert_error(400, "Failed to create record.");
        // A duplicate id fails at the insert.
        let ok = send_form(&srv, Method::POST, "/api/collections/docs/records", None,
            Form::new().text("title", "ok").text("id", "abcdefghijklmno").part("many", file("x", "x.txt"))).await;
        assert_eq!(ok.status, 200, "{}", ok.body);
        let dup = send_form(&srv, Method::POST, "/api/collections/docs/records", None,
            Form::new().text("title", "ok").text("id", "abcdefghijklmno").part("many", file("y", "y.txt"))).await;
        dup.assert_error(400, "Failed to create record.");
        assert_eq!(dup.code_at("/id"), Some("validation_not_unique"));
        let keys = srv.stored_keys(&cid).await;
        assert_eq!(keys, vec![format!("{cid}/abcdefghijklmno/{}", ok.body["many"][0].as_str().expect("name"))]);
        // An update of a record that does not exist stores nothing.
        let r = send_form(&srv, Method::PATCH, "/api/collections/docs/records/zzzzzzzzzzzzzzz", None,
            Form::new().part("many", file("x", "x.txt"))).await;
        r.assert_error(404, "The requested resource wasn't found.");
        assert_eq!(srv.stored_keys(&cid).await.len(), 1);
        // Nothing is left in the upload spool.
        let spool: Vec<_> = std::fs::read_dir(srv.app.upload_dir()).expect("spool").collect();
        assert!(spool.is_empty(), "{spool:?}");
    }

    async fn protected_files_need_a_file_token(srv) {
        setup(&srv).await;
        let rec = create_doc(&srv).await;
        let id = rec["id"].as_str().expect("id");
        let private = format!("/api/files/docs/{id}/{}", rec["priv"].as_str().expect("priv"));
        let member = srv.member_token().await;
        srv.guest(Method::GET, &private, None).await.assert_error(404, "The requested resource wasn't found.");
        // An auth token is not a file token, in the query or the header.
        srv.guest(Method::GET, &format!("{private}?token={member}"), None).await
            .assert_error(404, "The requested resource wasn't found.");
        srv.send(Method::GET, &private, Some(&member), None).await
            .assert_error(404, "The requested resource wasn't found.");
        // Guests get no file token.
        srv.guest(Method::POST, "/api/files/token", None).await
            .assert_error(401, "The request requires valid record authorization token.");
        let t = srv.send(Method::POST, "/api/files/token", Some(&member), None).await;
        assert_eq!(t.status, 200, "{}", t.body);
        let token = t.body["token"].as_str().expect("token");
        let claims: Value = {
            use base64::Engine as _;
            let part = token.split('.').nth(1).expect("payload");
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("b64")).expect("json")
        };
        assert_eq!(claims["type"], "file");
        let ttl = claims["exp"].as_i64().expect("exp") - chrono::Utc::now().timestamp();
        assert!((170..=181).contains(&ttl), "file tokens live 180 s: {ttl}");
        let r = get_raw(&srv, &format!("{private}?token={token}"), &[]).await;
        assert_eq!((r.status, r.bytes.as_slice()), (200, b"secret".as_slice()));
        // A tampered token is nobody.
        let forged = format!("{}x", &token[..token.len() - 1]);
        assert_eq!(get_raw(&srv, &format!("{private}?token={forged}"), &[]).await.status, 404);
        // Superusers' file tokens pass any rule.
        let st = srv.su(Method::POST, "/api/files/token", None).await;
        let r = get_raw(&srv, &format!("{private}?token={}", st.body["token"].as_str().expect("token")), &[]).await;
        assert_eq!(r.status, 200);
        // Non-protected files ignore the view rule (PocketBase: anyone with the URL).
        let one = format!("/api/files/docs/{id}/{}", rec["one"].as_str().expect("one"));
        assert_eq!(get_raw(&srv, &one, &[]).await.status, 200);
    }

    async fn hostile_uploads(srv) {
        let cid = setup(&srv).await;
        let form = Form::new()
            .part("many", file("p", "../../etc/passwd"))
            .part("many", file("w", "..\\..\\windows\\win.ini"))
            .part("many", file("u", "ünï\u{202e}cødé.tar.gz"));
        let r = send_form(&srv, Method::POST, "/api/collections/docs/records", None, form).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let names: Vec<&str> = r.body["many"].as_array().expect("many").iter().map(|v| v.as_str().expect("s")).collect();
        assert_stored_name(names[0], "passwd", ".txt");
        assert_stored_name(names[1], "win", ".ini");
        assert!(names[2].ends_with(".tar.gz") && names[2].is_ascii(), "{}", names[2]);
        let id = r.body["id"].as_str().expect("id");
        for n in &names {
            assert!(srv.stored_keys(&cid).await.contains(&format!("{cid}/{id}/{n}")));
        }
        // Nothing was written outside the storage folder (local backend).
        if let galley_files::Backend::Local(root) = srv.app.storage().backend() {
            let data = root.parent().expect("data dir");
            for entry in std::fs::read_dir(data).expect("data dir") {
                let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
                assert!(name == "storage" || name == ".tmp_uploads" || name.starts_with("data.db") || name.starts_with("auxiliary.db"), "unexpected {name}");
            }
        }
        // Control characters in a part's headers make the body malformed: a clear 400.
        let r = send_form(&srv, Method::POST, "/api/collections/docs/records", None,
            Form::new().part("many", file("x", "a\u{7}b.txt"))).await;
        r.assert_error(400, "Something went wrong while processing your request.");
        // Traversal in the download path.
        for bad in ["..%2F..%2Fetc%2Fpasswd", "%2e%2e", ".hidden", "a%00b"] {
            let r = srv.guest(Method::GET, &format!("/api/files/docs/{id}/{bad}"), None).await;
            assert_eq!(r.status, 404, "{bad}: {}", r.body);
        }
        // A record id with path characters is refused before anything is stored.
        let r = send_form(&srv, Method::POST, "/api/collections/docs/records", None,
            Form::new().text("id", "../../../../tmp").part("many", file("x", "x.txt"))).await;
        r.assert_error(400, "Failed to create record.");
        assert_eq!(r.code_at("/id"), Some("validation_invalid_format"), "{}", r.body);
        assert_eq!(srv.stored_keys(&cid).await.len(), 3);
        // Truncated multipart: a 400, no spool files left.
        let body = "--XX\r\nContent-Disposition: form-data; name=\"many\"; filename=\"a.txt\"\r\n\r\nhello wor";
        let r = srv.send_raw(Method::POST, "/api/collections/docs/records", None, "multipart/form-data; boundary=XX", body).await;
        r.assert_error(400, "Something went wrong while processing your request.");
        // A multipart body without a boundary.
        let r = srv.send_raw(Method::POST, "/api/collections/docs/records", None, "multipart/form-data", "x").await;
        assert_eq!(r.status, 400, "{}", r.body);
        let spool: Vec<_> = std::fs::read_dir(srv.app.upload_dir()).expect("spool").collect();
        assert!(spool.is_empty(), "{spool:?}");
        // Bodies over the collection's limit are 413 (32 MiB + the fields' maxima).
        let limit = 32u64 * 1024 * 1024 + 2000 + 3 * 5 * 1024 * 1024 + 5 * 1024 * 1024;
        let r = srv.request(Method::POST, "/api/collections/docs/records")
            .header("Content-Type", "multipart/form-data; boundary=XX")
            .header("Content-Length", (limit + 1).to_string())
            .body("x").send().await.expect("send");
        assert_eq!(r.status().as_u16(), 413);
        srv.assert_healthy().await;
    }

    async fn s3_settings_and_probe(srv) {
        // The probe checks whichever storage is configured; local has nothing to test.
        let r = srv.su(Method::POST, "/api/settings/test/s3", Some(json!({"filesystem": "storage"}))).await;
        match srv.app.storage().backend() {
            galley_files::Backend::S3(_) => assert_eq!(r.status, 204, "{}", r.body),
            galley_files::Backend::Local(_) => {
                r.assert_error(400, "Failed to initialize the S3 storage: S3 storage is not enabled.");
            }
        }
        let r = srv.su(Method::POST, "/api/settings/test/s3", Some(json!({"filesystem": "nope"}))).await;
        assert_eq!(r.code_at("/filesystem"), Some("validation_in_invalid"));
        srv.guest(Method::POST, "/api/settings/test/s3", Some(json!({"filesystem": "storage"}))).await.assert_error_shape();
        // A broken S3 configuration is refused and the current storage stays.
        let before = srv.app.storage().describe();
        let r = srv.su(Method::PATCH, "/api/settings", Some(json!({"s3": {"enabled": true, "bucket": ""}}))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(srv.app.storage().describe(), before);
    }

    async fn batch_uploads_and_rollback(srv) {
        let cid = setup(&srv).await;
        srv.enable_batch().await;
        let payload = json!({"requests": [
            {"method": "POST", "url": "/api/collections/docs/records", "body": {"title": "b1"}},
            {"method": "POST", "url": "/api/collections/docs/records", "body": {"title": "b2"}}
        ]});
        let form = Form::new()
            .text("@jsonPayload", payload.to_string())
            .part("requests.0.many", file("first", "first.txt"))
            .part("requests.1.one", file(png(2, 2), "pic.png"));
        let r = send_form(&srv, Method::POST, "/api/batch", None, form).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let b0 = &r.body[0]["body"];
        let b1 = &r.body[1]["body"];
        assert_eq!((b0["title"].clone(), b1["title"].clone()), (json!("b1"), json!("b2")));
        assert_stored_name(b0["many"][0].as_str().expect("many"), "first", ".txt");
        let pic = b1["one"].as_str().expect("one");
        assert_stored_name(pic, "pic", ".png");
        let got = get_raw(&srv, &format!("/api/files/docs/{}/{pic}", b1["id"].as_str().expect("id")), &[]).await;
        assert_eq!(got.bytes, png(2, 2));
        assert_eq!(srv.stored_keys(&cid).await.len(), 2);

        // The second request fails: nothing is written, and the first one's upload goes too.
        let payload = json!({"requests": [
            {"method": "POST", "url": "/api/collections/docs/records", "body": {"title": "ok"}},
            {"method": "POST", "url": "/api/collections/docs/records", "body": {"title": "x", "many": ["not_uploaded.txt"]}}
        ]});
        let form = Form::new()
            .text("@jsonPayload", payload.to_string())
            .part("requests.0.many", file("doomed", "doomed.txt"));
        let r = send_form(&srv, Method::POST, "/api/batch", None, form).await;
        r.assert_error(400, "Batch transaction failed.");
        assert_eq!(r.body["data"]["requests"]["1"]["code"], "batch_request_failed");
        assert_eq!(srv.stored_keys(&cid).await.len(), 2);
        assert_eq!(srv.all_records("docs").await.len(), 2);
    }
}
