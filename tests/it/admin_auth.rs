//! Admin API authentication against running nodes: JWTs of every kind (signed with the
//! configured HS256 key or not, expired, not yet valid, within the leeway, wrong issuer or
//! audience, with and without CanManagePeers), the policies per route, and reads from
//! outside `admin_open_cidrs`. (The bearer scheme, `org_id` values and token lifetimes: in
//! `admin_tokens.rs`.) Each node's admin API listens on the node's own address.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sorcha_peer::config::Secret;

use crate::common::{PATIENCE, TestCluster, TestNode, bin, run_cmd, wait_until};

/// The key test nodes check JWTs with (at least 32 bytes, as HS256 needs).
pub const KEY: &str = "sorcha-peer-test-jwt-key-0123456789abcdef";
/// Another key of the same length, as an attacker would use.
const WRONG_KEY: &str = "an-attackers-own-jwt-key-0123456789abcdef";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A JWT with `claims`, signed HS256 with `key`, issued now (`iat`) unless the claims say
/// when, as the platform issues them.
pub fn mint(key: &str, mut claims: Value) -> String {
    if let Some(claims) = claims.as_object_mut() {
        claims.entry("iat").or_insert(json!(now()));
    }
    mint_with(Algorithm::HS256, key, claims)
}

pub fn mint_with(algorithm: Algorithm, key: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        &claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .expect("mint a JWT")
}

/// Sends `method path` with an optional bearer token and JSON body; returns the status and the
/// JSON body (`Null` when it is not JSON).
pub async fn call(
    node: &TestNode,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", node.admin_url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

pub fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("")
}

/// Starts a node on the next address of `net`, its admin API on that address too.
pub async fn start_node(
    net: &mut TestCluster,
    adjust: impl FnOnce(&mut sorcha_peer::config::Config),
) -> TestNode {
    let ip = net.ip();
    TestNode::start(&ip, |c| {
        c.admin_listen = format!("{ip}:0").parse().expect("addr");
        adjust(c);
    })
    .await
}

/// Two nodes; the first checks JWTs with [`KEY`] (and `adjust`), the second
/// is its connected peer (to ban) and holds a public register (to subscribe to).
async fn pair(
    net: &mut TestCluster,
    adjust: impl FnOnce(&mut sorcha_peer::config::Config),
) -> (TestNode, TestNode) {
    let b = start_node(net, |_| {}).await;
    let seed = b.seed();
    let a = start_node(net, |c| {
        c.seeds = vec![seed];
        c.jwt_key = Some(Secret::new(KEY));
        adjust(c);
    })
    .await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn jwts_are_checked_with_the_configured_key_and_the_original_policies() {
    let mut net = TestCluster::new();
    let (mut a, mut b) = pair(&mut net, |_| {}).await;
    let b_id = b.peer_id.clone();
    let exp = now() + 3600;
    let org = mint(KEY, json!({"sub": "alice", "org_id": "org-1", "exp": exp}));
    let plain = mint(KEY, json!({"sub": "bob", "exp": exp}));
    let service = mint(
        KEY,
        json!({"sub": "gateway", "token_type": "service", "exp": exp}),
    );

    // org_id: CanManagePeers. Ban and unban.
    let ban_path = format!("/api/peers/{b_id}/ban");
    let (status, body) = call(&a, Method::POST, &ban_path, Some(&org), Some(json!({}))).await;
    assert!(status.is_success(), "{status} {body}");
    assert!(
        a.client
            .bans()
            .await
            .expect("bans")
            .iter()
            .any(|ban| ban.target == b_id),
        "the JWT's ban is in force"
    );
    let (status, body) = call(&a, Method::DELETE, &ban_path, Some(&org), None).await;
    assert!(status.is_success(), "{status} {body}");
    assert!(a.client.bans().await.expect("bans").is_empty());

    // A valid JWT without org_id or token_type=service: 403 on every peer-management change,
    // with the reason, and nothing changes.
    for (method, path, body) in [
        (Method::POST, ban_path.clone(), Some(json!({}))),
        (Method::DELETE, ban_path.clone(), None),
        (Method::POST, format!("/api/peers/{b_id}/reset"), None),
        (
            Method::POST,
            "/api/bans".to_string(),
            Some(json!({"target": "10.9.9.9"})),
        ),
        (Method::DELETE, "/api/bans/10.9.9.9".to_string(), None),
    ] {
        let (status, answer) = call(&a, method.clone(), &path, Some(&plain), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(
            error_of(&answer),
            "token lacks CanManagePeers: needs an org_id claim or token_type=service"
        );
    }
    assert!(
        a.client.bans().await.expect("bans").is_empty(),
        "nothing was banned"
    );

    // ... but any valid token may create, submit, subscribe, unsubscribe and purge.
    let (status, body) = call(
        &a,
        Method::POST,
        "/api/registers",
        Some(&plain),
        Some(json!({"registerId": "jwt-made", "isPublic": true})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let response = reqwest::Client::new()
        .post(format!(
            "{}/api/registers/jwt-made/transactions",
            a.admin_url
        ))
        .bearer_auth(&plain)
        .body("signed by a JWT holder")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::CREATED);
    b.client
        .create_register("held-by-b", true)
        .await
        .expect("create on b");
    wait_until("a to see b's register", PATIENCE, || async {
        a.client.available_registers().await.is_ok_and(|r| {
            r.iter()
                .any(|r| r.register_id == "held-by-b" && r.peer_count > 0)
        })
    })
    .await;
    let (status, body) = call(
        &a,
        Method::POST,
        "/api/registers/held-by-b/subscribe",
        Some(&plain),
        Some(json!({"mode": "forward-only"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(
        &a,
        Method::DELETE,
        "/api/registers/held-by-b/subscribe",
        Some(&plain),
        None,
    )
    .await;
    assert!(status.is_success(), "unsubscribe: {status} {body}");
    // Purge: without a token it is refused even from loopback; with the JWT the handler runs
    // (it may answer that nothing is held, depending on what the subscription fetched).
    let purge = "/api/registers/held-by-b/cache";
    let (status, body) = call(&a, Method::DELETE, purge, None, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "purge without a token: {body}"
    );
    let (status, body) = call(&a, Method::DELETE, purge, Some(&plain), None).await;
    assert!(
        status.is_success()
            || (status == StatusCode::NOT_FOUND && error_of(&body).contains("no data held")),
        "purge: {status} {body}"
    );

    // token_type=service: CanManagePeers.
    let (status, body) = call(
        &a,
        Method::POST,
        "/api/bans",
        Some(&service),
        Some(json!({"target": "10.9.9.9", "reason": "service ban"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(
        &a,
        Method::POST,
        &format!("/api/peers/{b_id}/reset"),
        Some(&service),
        None,
    )
    .await;
    assert!(status.is_success(), "reset: {status} {body}");
    let (status, body) = call(
        &a,
        Method::DELETE,
        "/api/bans/10.9.9.9",
        Some(&service),
        None,
    )
    .await;
    assert!(status.is_success(), "unban: {status} {body}");

    // Refused tokens: 401 with a reason, the key never in it, nothing changed.
    let cases = [
        (
            mint(KEY, json!({"org_id": "o", "exp": now() - 120})),
            "token expired",
        ),
        (
            mint(KEY, json!({"org_id": "o", "exp": exp, "nbf": now() + 120})),
            "token not yet valid",
        ),
        (
            mint(WRONG_KEY, json!({"org_id": "o", "exp": exp})),
            "signature does not match the configured key",
        ),
        (
            mint(KEY, json!({"org_id": "o"})),
            "token has no `exp` claim",
        ),
        (
            mint_with(Algorithm::HS512, KEY, json!({"org_id": "o", "exp": exp})),
            "not signed with HS256",
        ),
        ("not.a.jwt".to_string(), "not a well-formed JWT"),
    ];
    for (token, reason) in &cases {
        for (method, path) in [(Method::POST, "/api/bans"), (Method::GET, "/api/peers")] {
            let (status, body) = call(
                &a,
                method.clone(),
                path,
                Some(token),
                Some(json!({"target": "10.8.8.8"})),
            )
            .await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{reason}: {method} {path} {body}"
            );
            let error = error_of(&body);
            assert!(error.contains(reason), "{reason}: {error}");
            assert!(
                !error.contains(KEY) && !body.to_string().contains(KEY),
                "{body}"
            );
        }
    }
    assert!(
        a.client.bans().await.expect("bans").is_empty(),
        "no refused token banned"
    );

    // Within the leeway (30 s): expired 10 s ago, or valid from 10 s from now, is accepted.
    for token in [
        mint(KEY, json!({"org_id": "o", "exp": now() - 10})),
        mint(KEY, json!({"org_id": "o", "exp": exp, "nbf": now() + 10})),
    ] {
        let (status, body) = call(
            &a,
            Method::POST,
            "/api/bans",
            Some(&token),
            Some(json!({"target": "10.7.7.7"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) =
            call(&a, Method::DELETE, "/api/bans/10.7.7.7", Some(&token), None).await;
        assert!(status.is_success(), "{status} {body}");
    }

    // The CLI takes a JWT like the admin token: a ban with org_id, 403 (exit 4) without.
    let mut cmd = bin();
    cmd.args([
        "--node",
        &a.admin_url,
        "--token",
        &org,
        "peers",
        "ban",
        &b_id,
    ]);
    let (code, stdout, stderr) = run_cmd(cmd).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        a.client
            .bans()
            .await
            .expect("bans")
            .iter()
            .any(|ban| ban.target == b_id)
    );
    let mut cmd = bin();
    cmd.env("SORCHA_PEER_TOKEN", &plain)
        .args(["--node", &a.admin_url, "peers", "unban", &b_id]);
    let (code, stdout, stderr) = run_cmd(cmd).await;
    assert_eq!(code, 4, "{stdout}{stderr}");
    assert!(stderr.contains("CanManagePeers"), "{stderr}");
    let mut cmd = bin();
    cmd.args([
        "--node",
        &a.admin_url,
        "--token",
        &cases[0].0,
        "peers",
        "unban",
        &b_id,
    ]);
    let (code, _, stderr) = run_cmd(cmd).await;
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("token expired"), "{stderr}");

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_and_audience_are_checked_when_configured() {
    let mut net = TestCluster::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("jwt.key");
    // From a file, with the newline an editor adds.
    std::fs::write(&key_file, format!("{KEY}\n")).expect("write key");
    let mut a = start_node(&mut net, |c| {
        c.jwt_key_file = Some(key_file.clone());
        c.jwt_issuer = Some("https://tenant.sorcha.example".into());
        c.jwt_audience = Some("sorcha-peer".into());
    })
    .await;
    let exp = now() + 3600;
    let good = json!({"org_id": "o", "exp": exp, "iss": "https://tenant.sorcha.example", "aud": "sorcha-peer"});
    let with = |field: &str, value: Value| {
        let mut claims = good.clone();
        match value {
            Value::Null => {
                claims.as_object_mut().expect("object").remove(field);
            }
            value => claims[field] = value,
        }
        mint(KEY, claims)
    };
    let cases = [
        (
            with("iss", json!("https://elsewhere.example")),
            "issuer (iss) is not the configured jwt_issuer",
        ),
        (with("iss", Value::Null), "token has no `iss` claim"),
        (
            with("aud", json!("another-service")),
            "audience (aud) does not match the configured jwt_audience",
        ),
        (with("aud", Value::Null), "token has no `aud` claim"),
    ];
    for (token, reason) in &cases {
        let (status, body) = call(
            &a,
            Method::POST,
            "/api/bans",
            Some(token),
            Some(json!({"target": "10.6.6.6"})),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{reason}: {body}");
        assert!(error_of(&body).contains(reason), "{reason}: {body}");
    }
    assert!(a.client.bans().await.expect("bans").is_empty());
    for token in [
        mint(KEY, good.clone()),
        with("aud", json!(["other", "sorcha-peer"])),
    ] {
        let (status, body) = call(
            &a,
            Method::POST,
            "/api/bans",
            Some(&token),
            Some(json!({"target": "10.6.6.6"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) =
            call(&a, Method::DELETE, "/api/bans/10.6.6.6", Some(&token), None).await;
        assert!(status.is_success(), "{status} {body}");
    }
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_is_open_from_anywhere_and_other_reads_only_from_open_networks() {
    // The CLI and tests connect from loopback; an open network that is not loopback makes
    // them a remote client.
    let mut net = TestCluster::new();
    let mut a = start_node(&mut net, |c| {
        c.admin_open_cidrs = vec!["192.0.2.0/24".parse().expect("net")];
        c.jwt_key = Some(Secret::new(KEY));
    })
    .await;
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/health",
        "/api/peers/stats",
    ] {
        let response = reqwest::get(format!("{}{path}", a.admin_url))
            .await
            .expect("send");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{path} is open to everyone"
        );
    }
    let plain = mint(KEY, json!({"sub": "reader", "exp": now() + 3600}));
    for path in [
        "/api/peers",
        "/api/peers/quality",
        "/api/peers/health",
        "/api/status",
        "/api/bans",
        "/api/registers",
        "/api/registers/subscriptions",
    ] {
        let (status, body) = call(&a, Method::GET, path, None, None).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{path} from outside admin_open_cidrs"
        );
        assert!(error_of(&body).contains("needs a token"), "{path}: {body}");
        for token in [a.token.clone(), plain.clone()] {
            let (status, body) = call(&a, Method::GET, path, Some(&token), None).await;
            assert_eq!(status, StatusCode::OK, "{path} with a token: {body}");
        }
    }
    // The CLI without a token: exit 4 with the reason.
    let mut cmd = bin();
    cmd.args([
        "--node",
        &a.admin_url,
        "--data-dir",
        "/nonexistent/sorcha",
        "peers",
        "list",
    ]);
    let (code, _, stderr) = run_cmd(cmd).await;
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("needs a token"), "{stderr}");
    a.stop().await;

    // An open network that holds the client: reads need no token there.
    let mut b = start_node(&mut net, |c| {
        c.admin_open_cidrs = vec!["127.0.0.0/8".parse().expect("net")];
    })
    .await;
    let (status, body) = call(&b, Method::GET, "/api/peers", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Without a JWT key, a JWT gets a reason saying so.
    let (status, body) = call(&b, Method::GET, "/api/peers", Some(&plain), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error_of(&body).contains("no JWT key configured"), "{body}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_key_file_that_cannot_be_used_stops_the_start_and_names_the_key() {
    let mut net = TestCluster::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let short = dir.path().join("short.key");
    std::fs::write(&short, "too-short-a-key\n").expect("write");
    for (file, expected) in [
        (dir.path().join("missing.key"), "cannot read jwt_key_file"),
        (short, "at least 32 bytes"),
    ] {
        let data = dir.path().join("data");
        let mut config = crate::common::test_config(&data, &net.ip());
        config.jwt_key_file = Some(file);
        let listeners = sorcha_peer::node::Listeners::bind(&config)
            .await
            .expect("bind");
        let error = match sorcha_peer::node::start(
            config,
            listeners,
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        {
            Ok(_) => panic!("a node started with an unusable jwt_key_file"),
            Err(e) => e.to_string(),
        };
        assert!(
            error.contains("jwt_key_file") && error.contains(expected),
            "{error}"
        );
        assert!(!error.contains("too-short-a-key"), "{error}");
        assert!(!data.exists(), "nothing was written: {error}");
    }
}
