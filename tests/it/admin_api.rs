//! The admin API's contract: auth, errors as JSON with the right status, field names.

use reqwest::StatusCode;

use crate::common::{PATIENCE, TestNode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_calls_need_the_token_and_reads_are_open_on_loopback() {
    let mut a = TestNode::start("127.0.0.1", |_| {}).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", a.admin_url);

    for (method, path) in [
        (reqwest::Method::POST, "/api/bans"),
        (reqwest::Method::POST, "/api/peers/abcd/ban"),
        (reqwest::Method::DELETE, "/api/peers/abcd/ban"),
        (reqwest::Method::POST, "/api/peers/abcd/reset"),
    ] {
        let response = http
            .request(method.clone(), url(path))
            .send()
            .await
            .expect("send");
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        let body: serde_json::Value = response.json().await.expect("json error");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains("token")),
            "{body}"
        );
        let wrong = http
            .request(method.clone(), url(path))
            .bearer_auth("not-the-token")
            .send()
            .await
            .expect("send");
        assert_eq!(
            wrong.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a wrong token"
        );
    }
    assert!(
        a.client.bans().await.expect("bans").is_empty(),
        "nothing changed"
    );

    for path in [
        "/api/health",
        "/api/status",
        "/api/peers",
        "/api/peers/stats",
        "/api/peers/health",
        "/api/peers/quality",
        "/api/bans",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        let response = http.get(url(path)).send().await.expect("send");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }

    // A wrong token is refused even where reads are open, so it is noticed on the first read.
    let wrong_read = http
        .get(url("/api/peers"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("send");
    assert_eq!(wrong_read.status(), StatusCode::UNAUTHORIZED);

    let a_id = a.peer_id.clone();
    let status = a.client.status().await.expect("status");
    assert_eq!(status.peer_id, a_id);
    assert!(status.storage.starts_with("sqlite"));
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let mut a = TestNode::start("127.0.0.1", |_| {}).await;
    let seed = a.seed();
    let mut b = TestNode::start("127.0.0.20", |c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: &'static str| {
        http.post(format!("{}{path}", a.admin_url))
            .bearer_auth(&a.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases: Vec<(&str, &'static str, StatusCode, &str)> = vec![
        (
            "/api/bans",
            "{not json",
            StatusCode::BAD_REQUEST,
            "invalid JSON",
        ),
        ("/api/bans", "{}", StatusCode::BAD_REQUEST, "target"),
        (
            "/api/bans",
            r#"{"target":"10.0.0.0/99"}"#,
            StatusCode::BAD_REQUEST,
            "not a valid",
        ),
        (
            "/api/bans",
            r#"{"target":"ffffffff"}"#,
            StatusCode::NOT_FOUND,
            "no peer",
        ),
        (
            "/api/bans",
            r#"{"target":"10.1.1.1","duration":"soon"}"#,
            StatusCode::BAD_REQUEST,
            "invalid duration",
        ),
        (
            "/api/bans",
            r#"{"target":"10.1.1.1","sneaky":true}"#,
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            "/api/peers/ffffffff/reset",
            "",
            StatusCode::NOT_FOUND,
            "no peer",
        ),
    ];
    for (path, body, status, needle) in cases {
        let response = post(path, body).await.expect("send");
        assert_eq!(response.status(), status, "{path} {body}");
        let error: serde_json::Value = response.json().await.expect("json");
        assert!(
            error["error"].as_str().is_some_and(|e| e.contains(needle)),
            "{path} {body}: {error}"
        );
    }
    let too_long = format!(r#"{{"target":"10.1.1.1","reason":"{}"}}"#, "x".repeat(600));
    let response = http
        .post(format!("{}/api/bans", a.admin_url))
        .bearer_auth(&a.token)
        .body(too_long)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        a.client.bans().await.expect("bans").is_empty(),
        "no bad request changed anything"
    );

    // Banning twice is a conflict; the first ban stands.
    a.client
        .ban(&b.peer_id, Some("first"), None)
        .await
        .expect("ban");
    let again = a.client.ban(&b.peer_id, Some("second"), None).await;
    assert!(
        matches!(again, Err(sorcha_peer::client::ClientError::Conflict(_))),
        "{again:?}"
    );
    assert_eq!(a.client.bans().await.expect("bans")[0].reason, "first");
    // Unbanning something not banned is 404.
    let missing = a.client.unban("10.9.9.9").await;
    assert!(matches!(
        missing,
        Err(sorcha_peer::client::ClientError::NotFound(_))
    ));

    let bad_query = http
        .get(format!("{}/api/peers?sort=wat", a.admin_url))
        .send()
        .await
        .expect("send");
    assert_eq!(bad_query.status(), StatusCode::BAD_REQUEST);

    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_peers_and_heartbeats() {
    let mut a = TestNode::start("127.0.0.1", |_| {}).await;
    let seed = a.seed();
    let mut b = TestNode::start("127.0.0.21", |c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    crate::common::wait_until("a heartbeat sample", PATIENCE, || async {
        a.view_of(&b.peer_id)
            .await
            .is_some_and(|p| p.average_latency_ms.is_some())
    })
    .await;
    let text = a.client.metrics().await.expect("metrics");
    assert!(
        text.contains("sorcha_peer_peers{state=\"connected\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("sorcha_peer_heartbeat_latency_seconds_count"),
        "{text}"
    );
    assert!(
        text.contains("sorcha_peer_handshakes_total{result=\"accepted\"}"),
        "{text}"
    );
    b.stop().await;
    a.stop().await;
}
