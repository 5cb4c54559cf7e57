use galley_testkit::{both_engines, Method};
use serde_json::json;

both_engines! {
    async fn health_answers(srv) {
        let r = srv.guest(Method::GET, "/api/health", None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, json!({"message": "API is healthy.", "code": 200, "data": {}}));
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
    }

    async fn readiness_checks_the_database(srv) {
        let r = srv.guest(Method::GET, "/api/health/ready", None).await;
        assert_eq!((r.status, r.body.clone()), (200, json!({"message": "API is ready.", "code": 200, "data": {}})));
        let r = srv.request(Method::HEAD, "/api/health/ready").send().await.expect("request");
        assert_eq!(r.status(), 200);
    }

    async fn unknown_routes_are_pocketbase_404s(srv) {
        let r = srv.guest(Method::GET, "/api/nope", None).await;
        assert_eq!((r.status, r.body["message"].as_str()), (404, Some("File not found.")));
        let r = srv.guest(Method::POST, "/api/nope", None).await;
        assert_eq!((r.status, r.body["message"].as_str()), (404, Some("The requested resource wasn't found.")));
        assert_eq!(r.body["data"], json!({}));
    }
}
