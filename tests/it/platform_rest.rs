//! The REST calls the Sorcha platform's services make, against real nodes, in the shapes the
//! platform's clients read: the gateway's connected peers, the Register service's register
//! advertisements (without a token, as its client sends them), and the Blueprint service's
//! distribution of a transaction submission.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::admin_auth::call;
use crate::common::{PATIENCE, TestCluster, cli, wait_for};

fn ad(id: &str, version: u64) -> Value {
    json!({"registerId": id, "name": format!("{id} ledger"), "description": "d",
           "isPublic": true, "latestVersion": version, "latestDocketVersion": version / 10})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn the_platform_rest_calls_are_answered_in_its_shapes() {
    let mut net = TestCluster::new();
    let mut a = net.start(|c| c.name = "origin".into()).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;

    // The gateway's count of connected peers, with the peers themselves.
    let (status, body) = call(&a, Method::GET, "/api/peers/connected", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["connectedPeerCount"], 1, "{body}");
    assert_eq!(body["peers"][0]["peerId"], b.peer_id.as_str(), "{body}");
    // The port apart from the address, as the platform's UI prints `address:port`.
    assert_eq!(body["peers"][0]["port"], b.peer_addr.port(), "{body}");
    assert_eq!(
        body["peers"][0]["address"],
        b.peer_addr.ip().to_string(),
        "the host alone: {body}"
    );
    assert_eq!(body["peers"][0]["endpoint"], b.seed(), "{body}");
    assert!(
        body["peers"][0]["advertisedRegisterCount"].is_u64(),
        "{body}"
    );

    // A ban given in minutes, as the platform's clients send it.
    let token = a.token.clone();
    let (status, body) = call(
        &a,
        Method::POST,
        "/api/bans",
        Some(&token),
        Some(json!({"target": "10.24.0.1", "durationMinutes": 90})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let bans = a.client.bans().await.expect("bans");
    let remaining = bans[0].remaining_seconds.unwrap_or_default();
    assert!((5300..=5400).contains(&remaining), "{bans:?}");
    let (status, body) = call(
        &a,
        Method::POST,
        "/api/bans",
        Some(&token),
        Some(json!({"target": "10.24.0.2", "durationMinutes": 5, "duration": "1h"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        a.client.bans().await.expect("bans").len(),
        1,
        "the refused ban changed nothing"
    );

    // The Register service reports its registers, with no token.
    let bulk = |ads: Vec<Value>, full: bool| json!({"advertisements": ads, "fullSync": full});
    let path = "/api/registers/bulk-advertise";
    let (status, body) = call(
        &a,
        Method::POST,
        path,
        None,
        Some(bulk(vec![ad("wallets", 5), ad("assets", 0)], true)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"processed": 2, "added": 2, "updated": 0, "removed": 0})
    );
    // One bad item refuses the whole update and changes nothing.
    let (status, body) = call(
        &a,
        Method::POST,
        path,
        None,
        Some(bulk(vec![ad("wallets", 9), ad("not valid!", 1)], true)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("advertisement 1")),
        "{body}"
    );
    let (_, listed) = call(&a, Method::GET, "/api/registers/advertised", None, None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    assert_eq!(listed[1]["registerId"], "wallets");
    assert_eq!(
        listed[1]["latestVersion"], 5,
        "unchanged by the refused update"
    );
    // A body that is not JSON by its content type is refused (no cross-site form posts).
    let response = reqwest::Client::new()
        .post(format!("{}{path}", a.admin_url))
        .header("content-type", "text/plain")
        .body(bulk(vec![], true).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A full sync removes what is no longer listed.
    let (status, body) = call(
        &a,
        Method::POST,
        path,
        None,
        Some(bulk(vec![ad("wallets", 6)], true)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"processed": 1, "added": 0, "updated": 1, "removed": 1})
    );
    // A register made private is no longer advertised.
    let (status, body) = call(
        &a,
        Method::POST,
        "/api/registers/wallets/advertise",
        None,
        Some(json!({"isPublic": false})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"registerId": "wallets", "isPublic": false}));
    let (_, listed) = call(&a, Method::GET, "/api/registers/advertised", None, None).await;
    assert_eq!(listed, json!([]));
    // A register held here shows the name the Register service gave it.
    a.client
        .create_register("named", true)
        .await
        .expect("create");
    let (status, body) = call(
        &a,
        Method::POST,
        path,
        None,
        Some(bulk(vec![ad("named", 0)], false)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, available) = call(&a, Method::GET, "/api/registers/available", None, None).await;
    let named = available
        .as_array()
        .and_then(|l| l.iter().find(|r| r["registerId"] == "named"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(named["name"], "named ledger", "{available}");
    // They are the Register service's registers, not this node's: peers are never told this
    // node holds them.
    let available = b.client.available_registers().await.expect("available");
    assert!(
        available.iter().all(|r| r.register_id != "wallets"),
        "{available:?}"
    );

    // The Blueprint service hands over a submission: it enters the register's pool and is
    // sealed like `tx submit`.
    a.client
        .create_register("orders", true)
        .await
        .expect("create");
    let distribute = "/api/internal/peer/distribute/orders";
    let submission = json!({"blueprintId": "b1", "payload": {"amount": 3}});
    let (status, _) = call(&a, Method::POST, distribute, None, Some(submission.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let token = a.token.clone();
    let (status, body) = call(
        &a,
        Method::POST,
        distribute,
        Some(&token),
        Some(json!([1, 2])),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(
        &a,
        Method::POST,
        "/api/internal/peer/distribute/nowhere",
        Some(&token),
        Some(submission.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = call(&a, Method::POST, distribute, Some(&token), Some(submission)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["acceptedCount"], 1, "{body}");
    assert!(body["targetPeerCount"].is_u64(), "{body}");
    let id = body["transactionId"].as_str().expect("an ID").to_string();
    let sealed = wait_for(
        "the distributed transaction to be sealed",
        PATIENCE,
        || async {
            a.client
                .transaction("orders", &id)
                .await
                .ok()
                .filter(|t| t.state == "sealed")
        },
    )
    .await;
    assert_eq!(sealed.version, Some(1));

    b.stop().await;
    a.stop().await;
}

/// The gateway's `GET /health`: a node whose storage and listeners work is healthy even with
/// no peer yet (readiness, which also wants a peer when seeds are configured, says failing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_the_service_working_not_the_network() {
    let mut net = TestCluster::new();
    let nobody = net.listener().await;
    let seed = nobody.local_addr().expect("address").to_string();
    drop(nobody);
    let mut a = net
        .start(|c| {
            c.seeds = vec![seed.clone()];
            c.readiness_peer_grace = std::time::Duration::ZERO;
        })
        .await;
    let (status, body) = call(&a, Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = call(&a, Method::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "healthy", "{body}");
    assert_eq!(body["storage"], "ok", "{body}");
    // `status` leads with readiness and why, in text and JSON (issue 20).
    let (code, out, err) = cli(&a, &["status"]).await;
    assert_eq!(code, 0, "{err}");
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("Readiness") && first.contains("failing"),
        "{out}"
    );
    let (_, json_out, _) = cli(&a, &["status", "-o", "json"]).await;
    let status: Value = serde_json::from_str(&json_out).expect("status JSON");
    assert_eq!(status["readiness"], "failing", "{status}");
    assert!(
        status["readinessReasons"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "{status}"
    );
    a.stop().await;
}
