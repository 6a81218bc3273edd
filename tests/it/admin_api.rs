//! The admin API's contract: auth, errors as JSON with the right status, field names.

use reqwest::StatusCode;

use crate::common::{PATIENCE, TestCluster, cli, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_calls_need_the_token_and_reads_are_open_on_loopback() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
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
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
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
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    crate::common::wait_until("a heartbeat sample", PATIENCE, || async {
        a.view_of(&b.peer_id)
            .await
            .is_some_and(|p| p.latency.is_some())
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

/// A batch over `max_batch_transactions` or `max_batch_bytes` is refused whole, with a JSON
/// error naming the limit, and stores nothing; one at the limit is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_over_the_caps_are_refused_whole_with_a_json_error() {
    let mut net = TestCluster::new();
    let mut a = net
        .start(|c| {
            c.max_batch_transactions = 10;
            c.max_batch_bytes = 2048;
        })
        .await;
    a.client
        .create_register("capped", false)
        .await
        .expect("create");
    let http = reqwest::Client::new();
    let url = format!("{}/api/registers/capped/transactions/batch", a.admin_url);
    let post = |payloads: Vec<String>| {
        http.post(&url)
            .bearer_auth(&a.token)
            .json(&serde_json::json!({ "payloads": payloads }))
            .send()
    };

    let eleven: Vec<String> = (0..11).map(|i| format!("tx-{i}")).collect();
    let response = post(eleven).await.expect("send");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = response.json().await.expect("json error");
    let error = body["error"].as_str().expect("error text");
    assert!(error.contains("max_batch_transactions"), "{error}");
    assert!(error.contains("11 transactions"), "{error}");

    let heavy: Vec<String> = (0..3).map(|i| format!("{i}{}", "x".repeat(1000))).collect();
    let response = post(heavy).await.expect("send");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = response.json().await.expect("json error");
    let error = body["error"].as_str().expect("error text");
    assert!(error.contains("max_batch_bytes"), "{error}");

    let r = a.register("capped").await.expect("register");
    assert_eq!((r.transaction_count, r.pending_transactions), (0, 0));
    assert_eq!(r.latest_version, 0);

    let ten: Vec<String> = (0..10).map(|i| format!("tx-{i}")).collect();
    let response = post(ten).await.expect("send");
    assert_eq!(response.status(), StatusCode::CREATED);
    a.wait_for_version("capped", 10, PATIENCE).await;
    a.stop().await;
}

/// `tx submit --lines` streams a large input as several bounded requests (fewer lines each
/// when the node's caps are lower than its defaults) and prints every ID, in input order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_submit_lines_splits_a_large_input_into_bounded_requests() {
    let mut net = TestCluster::new();
    let mut a = net
        .start(|c| {
            c.max_batch_transactions = 40;
            c.max_batch_bytes = 4096;
        })
        .await;
    a.client
        .create_register("bulk", false)
        .await
        .expect("create");
    let lines: Vec<String> = (0..1000)
        .map(|i| match i % 100 {
            // Some long lines, so the byte cap binds as well as the count.
            7 => format!("long line {i} {}", "z".repeat(1500)),
            _ => format!("line {i} \"quoted\" \\ back"),
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.txt");
    let mut text = String::new();
    for (i, line) in lines.iter().enumerate() {
        text.push_str(line);
        text.push_str(if i % 3 == 0 { "\r\n\n" } else { "\n" }); // CRLF and blank lines
    }
    std::fs::write(&input, text).expect("write input");

    let (code, out, err) = cli(
        &a,
        &[
            "tx",
            "submit",
            "bulk",
            input.to_str().expect("path"),
            "--lines",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let printed: Vec<&str> = out.lines().collect();
    let expected: Vec<String> = lines
        .iter()
        .map(|l| sorcha_peer::ledger::tx_id(l.as_bytes()))
        .collect();
    assert_eq!(printed, expected);
    a.wait_for_version("bulk", 1000, PATIENCE).await;

    // JSON output: JSON Lines, one object per line, in input order.
    let more = dir.path().join("more.txt");
    std::fs::write(&more, "one\ntwo\nthree\n".repeat(30)).expect("write input");
    let (code, out, err) = cli(
        &a,
        &[
            "tx",
            "submit",
            "bulk",
            more.to_str().expect("path"),
            "--lines",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let answers: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(answers.len(), 90);
    assert_eq!(
        answers[3]["transactionId"],
        sorcha_peer::ledger::tx_id(b"one").as_str()
    );
    assert_eq!(
        answers[3]["alreadyHeld"], true,
        "given earlier in the input"
    );
    a.stop().await;
}

/// A big batch is stored in chunks, each its own database transaction, so a single submission
/// made meanwhile is answered while the batch is still being stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_submission_is_served_while_a_big_batch_is_stored() {
    let mut net = TestCluster::new();
    let mut a = net
        .start(|c| {
            c.max_batch_transactions = 100_000;
            c.max_batch_bytes = 16 * 1024 * 1024;
        })
        .await;
    a.client
        .create_register("busy", false)
        .await
        .expect("create");
    let payloads: Vec<String> = (0..60_000).map(|i| format!("batch item {i:08}")).collect();
    let client = a.client.clone();
    let batch = tokio::spawn(async move { client.submit_batch("busy", payloads).await });
    wait_until(
        "the batch's first chunks to be stored",
        PATIENCE,
        || async {
            a.register("busy")
                .await
                .is_some_and(|r| r.pending_transactions + r.latest_version > 0)
        },
    )
    .await;
    let single = a
        .client
        .submit("busy", b"not behind the batch".to_vec())
        .await
        .expect("single submission");
    assert!(
        !batch.is_finished(),
        "the single submission was answered only once the whole batch was stored"
    );
    let ids = batch
        .await
        .expect("join")
        .expect("batch stored")
        .transaction_ids;
    assert_eq!(ids.len(), 60_000);
    a.wait_sealed("busy", &single.transaction_id, PATIENCE)
        .await;
    a.stop().await;
}

/// Peer figures are figures of now: a peer that went away shows no latency (its last-seen
/// says when it was there), and a banned peer is not rated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_went_away_has_no_latency_and_a_banned_one_no_rating() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    let mut c = net.start(|c| c.seeds = vec![seed.clone()]).await;
    wait_until("A to measure B's latency", PATIENCE, || async {
        a.view_of(&b.peer_id)
            .await
            .is_some_and(|p| p.state == "connected" && p.latency.is_some())
    })
    .await;
    b.stop().await;
    a.wait_for_state(&b.peer_id, "disconnected", PATIENCE).await;
    let gone = a.view_of(&b.peer_id).await.expect("B still known");
    assert_eq!(gone.latency, None, "{gone:?}");
    assert_eq!(
        gone.average_latency_ms, 0,
        "no figure, as the platform reads it: {gone:?}"
    );

    a.wait_for_state(&c.peer_id, "connected", PATIENCE).await;
    a.client
        .ban(&c.peer_id, Some("test"), None)
        .await
        .expect("ban");
    let banned = a.view_of(&c.peer_id).await.expect("C still known");
    assert_eq!(banned.quality_rating, "Banned", "{banned:?}");
    c.stop().await;
    a.stop().await;
}
