//! DNS rebinding with a real node: a request whose `Host` names a host the node was not told
//! about (as a web page's own name after its DNS answer changed to the node's address) is
//! refused with 421 before any answer, on open and guarded routes alike; IP addresses,
//! `localhost` and the names in `admin_allowed_hosts` are served, and the CLI works as before.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::common::{TestCluster, cli};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_ip_addresses_localhost_and_allowed_names_are_answered() {
    let mut net = TestCluster::new();
    let mut node = net
        .start(|c| c.admin_allowed_hosts = vec!["peer1.example.net".into()])
        .await;
    let port = node.handle.as_ref().expect("running").admin_addr.port();
    let http = reqwest::Client::new();
    let send = |method: Method, path: &str, host: &str, token: Option<&str>| {
        let mut request = http
            .request(method, format!("{}{path}", node.admin_url))
            .header(header::HOST, host);
        if let Some(token) = token {
            request = request
                .bearer_auth(token)
                .json(&json!({"target": "10.21.0.1"}));
        }
        request.send()
    };

    // A rebinding page's name: refused on every route, with or without a token, and said why.
    for host in [
        format!("rebind.attacker.example:{port}"),
        "rebind.attacker.example".to_string(),
        format!("app.localhost:{port}"),
    ] {
        for path in [
            "/api/status",
            "/api/peers",
            "/api/events/recent",
            "/api/events",
            "/healthz",
            "/metrics",
            "/",
        ] {
            let response = send(Method::GET, path, &host, None).await.expect("send");
            assert_eq!(
                response.status(),
                StatusCode::MISDIRECTED_REQUEST,
                "{host} {path}"
            );
            let body: Value = response.json().await.expect("a JSON error");
            let error = body["error"].as_str().unwrap_or_default();
            assert!(
                error.contains("admin_allowed_hosts"),
                "{host} {path}: {body}"
            );
        }
        let response = send(Method::POST, "/api/bans", &host, Some(&node.token))
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST, "{host}");
    }
    assert!(
        node.client.bans().await.expect("bans").is_empty(),
        "a refused request changed nothing"
    );

    // IP addresses, localhost and the allowed name (any case, with or without a port).
    for host in [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_string(),
        format!("[::1]:{port}"),
        format!("localhost:{port}"),
        "LocalHost".to_string(),
        format!("PEER1.example.net:{port}"),
        "peer1.example.net.".to_string(),
    ] {
        let response = send(Method::GET, "/api/status", &host, None)
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::OK, "{host}");
    }

    // The CLI (an IP-address URL) is unaffected.
    let (code, stdout, stderr) = cli(&node, &["status"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    node.stop().await;
}
