//! Issue 17 (hardening, part A): one test per item, named after it. Each fails on the code
//! before its fix: leaks of hidden data, work a caller could make the server do before it
//! knows the caller may, and requests that reach further than they should.

use crate::expr_support::enc;
use galley_testkit::{both_engines, Engine, Method, TestServer};
use serde_json::{json, Value};

/// Creates an auth collection `people` (listed and viewed by anyone, open sign-up) with
/// one person per `(email, visible)`, returning the collection's id and their ids in order.
async fn people(srv: &TestServer, who: &[(&str, bool)]) -> (String, Vec<String>) {
    let coll = srv
        .create_collection(json!({"name": "people", "type": "auth", "listRule": "", "viewRule": "", "createRule": ""}))
        .await;
    let mut ids = Vec::new();
    for (email, visible) in who {
        let r = srv
            .create_record(
                "people",
                json!({"email": email, "emailVisibility": visible,
                "password": "Person-Pass-1", "passwordConfirm": "Person-Pass-1"}),
            )
            .await;
        ids.push(r["id"].as_str().expect("id").to_owned());
    }
    (coll["id"].as_str().expect("id").to_owned(), ids)
}

/// The ids a guest's list of `collection` with `filter` returns.
async fn guest_ids(srv: &TestServer, collection: &str, filter: &str) -> Vec<String> {
    let r = srv
        .guest(
            Method::GET,
            &format!(
                "/api/collections/{collection}/records?sort=id&filter={}",
                enc(filter)
            ),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{filter}: {}", r.body);
    ids_of(&r.body["items"])
}

fn ids_of(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect()
}

both_engines! {
    // Item 1: an all-of comparison over a multi-valued relation (`members.email !~ 'x%'`)
    // must not read the email of a member who hides it through its counter-example branch.
    async fn hidden_emails_through_all_of_operators(srv) {
        let (people_id, ids) = people(&srv, &[("open@example.com", true), ("zed@example.com", false), ("42@example.com", false)]).await;
        srv.create_collection(json!({"name": "teams", "listRule": "", "viewRule": "",
            "fields": [{"name": "name", "type": "text"},
                       {"name": "members", "type": "relation", "collectionId": people_id, "maxSelect": 9},
                       {"name": "lead", "type": "relation", "collectionId": people_id, "maxSelect": 1}]}))
            .await;
        let mixed = srv.create_record("teams", json!({"name": "mixed", "members": [ids[0], ids[1]]})).await;
        let open = srv.create_record("teams", json!({"name": "open", "members": [ids[0]]})).await;
        let (mixed, open) = (mixed["id"].as_str().unwrap().to_owned(), open["id"].as_str().unwrap().to_owned());
        let both = {
            let mut v = vec![mixed.clone(), open.clone()];
            v.sort();
            v
        };

        // The bisection an attacker would run: every probe of the hidden address answers
        // alike, so nothing of it is learnt.
        for probe in ["z", "zed", "a", "q", "zed@example.com"] {
            let like = format!("members.email !~ '{probe}%'");
            assert_eq!(guest_ids(&srv, "teams", &like).await, vec![open.clone()], "{like}");
            let gt = format!("members.email > '{probe}'");
            let want = if "open@example.com" > probe { vec![open.clone()] } else { vec![] };
            assert_eq!(guest_ids(&srv, "teams", &gt).await, want, "{gt}");
            let ne = format!("members.email != '{probe}'");
            assert_eq!(guest_ids(&srv, "teams", &ne).await, vec![open.clone()], "{ne}");
        }
        // Sibling: a function of a hidden email (SQLite reads "42@…" as the number 42).
        let led = srv.create_record("teams", json!({"name": "led", "lead": ids[2]})).await;
        if srv.engine == Engine::Sqlite {
            assert_eq!(guest_ids(&srv, "teams", "geoDistance(lead.email, 0, 0, 0) > 1").await, Vec::<String>::new());
            assert_eq!(guest_ids(&srv, "teams", "strftime('%Y', lead.email) = null").await, Vec::<String>::new());
        } // (PostgreSQL refuses text in both: "expected a number field", "… a date field")
        let r = srv.su(Method::GET, &format!("/api/collections/teams/records?filter={}", enc("lead.email = '42@example.com'")), None).await;
        assert_eq!(ids_of(&r.body["items"]), vec![led["id"].as_str().unwrap().to_owned()]);
        // Visible emails still filter as before, and the superuser sees every address.
        assert_eq!(guest_ids(&srv, "teams", "members.email ~ 'open'").await, vec![open.clone()]);
        assert_eq!(guest_ids(&srv, "teams", "members.email ?~ 'open'").await, both);
        let r = srv.su(Method::GET, &format!("/api/collections/teams/records?sort=id&filter={}", enc("members.email !~ 'zed%'")), None).await;
        assert_eq!(ids_of(&r.body["items"]), vec![open.clone()]);
        let r = srv.su(Method::GET, &format!("/api/collections/teams/records?sort=id&filter={}", enc("members.email !~ 'q%'")), None).await;
        assert_eq!(ids_of(&r.body["items"]), both);
    }
}
