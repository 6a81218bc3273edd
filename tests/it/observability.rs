//! What standard tools make of the node: `/metrics` under `promtool check metrics`, the probes,
//! and the version.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use crate::common::tools;
use crate::common::{PATIENCE, TestCluster, TestNode, replicate_along, wait_until};

/// Every sample's family has a `# HELP` with text and a `# TYPE`, named as the samples are
/// (histogram samples belong to the family without their `_bucket`/`_sum`/`_count`). Returns
/// the problems found.
fn undescribed_samples(text: &str) -> Vec<String> {
    let mut helps = BTreeMap::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            helps.insert(name.to_string(), help.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            types.insert(name.to_string(), kind.to_string());
        }
    }
    let mut problems = BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(name);
        match helps.get(family) {
            Some(help) if !help.is_empty() => {}
            _ => {
                problems.insert(format!("{name}: no help text"));
            }
        }
        if !types.contains_key(family) {
            problems.insert(format!("{name}: no TYPE line"));
        }
    }
    problems.into_iter().collect()
}

async fn scrape(node: &TestNode, accept: Option<&str>) -> (String, String) {
    let mut request = reqwest::Client::new().get(format!("{}/metrics", node.admin_url));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (content_type, response.text().await.expect("metrics text"))
}

/// Two nodes with traffic between them (a handshake each way, a register replicated, a
/// transaction gossiped and sealed), so labelled counters and histograms have samples.
async fn busy_pair() -> (TestNode, TestNode) {
    let mut net = TestCluster::new();
    let a = net.start(|_| {}).await;
    let seed = a.seed();
    let b = net.start(|c| c.seeds = vec![seed]).await;
    a.client.create_register("obs", true).await.expect("create");
    replicate_along(&[&a, &b], "obs").await;
    let tx = b
        .client
        .submit("obs", b"observed".to_vec())
        .await
        .expect("submit")
        .transaction_id;
    b.wait_sealed("obs", &tx, PATIENCE).await;
    wait_until("a heartbeat to be measured", PATIENCE, || async {
        let (_, text) = scrape(&a, None).await;
        crate::common::metric(&text, "sorcha_peer_heartbeat_latency_seconds_count") > 0.0
    })
    .await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_with_build_info_and_process_metrics() {
    let (a, b) = busy_pair().await;
    for node in [&a, &b] {
        let (content_type, text) = scrape(node, None).await;
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        assert_eq!(undescribed_samples(&text), Vec::<String>::new(), "{text}");
        let mut samples = vec![
            "sorcha_peer_handshakes_total{result=",
            "sorcha_peer_heartbeat_latency_seconds_bucket{le=",
        ];
        if node.peer_id == a.peer_id {
            // The origin received the transaction submitted at the other node.
            samples.push("sorcha_peer_gossip_transactions_received_total{register=\"obs\"}");
        }
        for sample in samples {
            assert!(text.contains(sample), "{sample} missing:\n{text}");
        }
        let build_info = format!(
            "sorcha_peer_build_info{{version=\"{}\",commit=\"{}\"}} 1",
            sorcha_peer::VERSION,
            sorcha_peer::COMMIT
        );
        assert!(text.contains(&build_info), "{build_info} missing:\n{text}");
        if cfg!(target_os = "linux") {
            for name in [
                "process_cpu_seconds_total ",
                "process_resident_memory_bytes ",
                "process_virtual_memory_bytes ",
                "process_open_fds ",
                "process_max_fds ",
                "process_start_time_seconds ",
            ] {
                assert!(
                    text.lines().any(|l| l.starts_with(name)),
                    "{name} missing:\n{text}"
                );
            }
        }
        let Some(promtool) = tools::require(
            "metrics_pass_promtool_with_build_info_and_process_metrics",
            "promtool",
        ) else {
            return;
        };
        let mut cmd = Command::new(promtool);
        cmd.args(["check", "metrics"]);
        let (code, out, err) = tokio::task::spawn_blocking(move || {
            tools::run_bounded(cmd, text.as_bytes(), Duration::from_secs(20))
        })
        .await
        .expect("join");
        assert_eq!(code, 0, "promtool check metrics:\n{out}{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_speak_openmetrics_to_a_scraper_that_asks() {
    let node = TestCluster::new().start(|_| {}).await;
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (content_type, text) = scrape(&node, Some(prometheus)).await;
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    // OpenMetrics names a counter family without `_total`; its samples carry it.
    assert!(
        text.contains("# TYPE sorcha_peer_peer_failures counter\n"),
        "{text}"
    );
    let (_, plain) = scrape(&node, None).await;
    assert!(
        plain.contains("# TYPE sorcha_peer_peer_failures_total counter\n")
            && !plain.contains("# EOF"),
        "{plain}"
    );
}

/// `/readyz` and `/healthz`: (status code, body).
async fn probe(node: &TestNode, path: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("{}{path}", node.admin_url))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let code = response.status().as_u16();
    (code, response.json().await.expect("probe JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_seeds_is_ready_alone() {
    let node = TestCluster::new().start(|_| {}).await;
    let (code, body) = probe(&node, "/readyz").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "ready");
    for check in ["storage", "listeners", "peers"] {
        assert_eq!(body["checks"][check], "ok", "{body}");
    }
    assert!(body.get("reasons").is_none(), "{body}");
}

/// With seeds, a node is not ready until it has joined; once its last peer is gone it stays
/// ready for `readiness_peer_grace`, then says why it is not. Liveness never changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_needs_a_peer_when_seeds_are_configured() {
    let mut net = TestCluster::new();
    // The seed's address is bound but nothing serves it yet: dials do not complete.
    let seed_listener = net.listener().await;
    let seed = seed_listener.local_addr().expect("address").to_string();
    // Long enough that the probe right after the disconnection is inside it; when exactly it
    // ends is a unit test of the rule (`service/health_tests.rs`).
    let grace = PATIENCE;
    let node = net
        .start(|c| {
            c.seeds = vec![seed.clone()];
            c.readiness_peer_grace = grace;
        })
        .await;
    let (code, body) = probe(&node, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "failing");
    let want = format!("no peer connected yet (seeds: {seed})");
    assert_eq!(body["reasons"], serde_json::json!([want]), "{body}");
    assert_eq!(body["checks"]["peers"], want.as_str(), "{body}");
    assert_eq!(body["checks"]["storage"], "ok", "{body}");
    assert_eq!(body["checks"]["listeners"], "ok", "{body}");
    let (code, body) = probe(&node, "/healthz").await;
    assert_eq!((code, body["status"].as_str()), (200, Some("alive")));

    let mut seed_node = TestNode::start_on(seed_listener, |_| {}).await;
    wait_until(
        "the node to be ready once its seed answers",
        PATIENCE,
        || async { probe(&node, "/readyz").await.0 == 200 },
    )
    .await;

    seed_node.stop().await;
    node.wait_for_state(&seed_node.peer_id, "disconnected", PATIENCE)
        .await;
    let (code, body) = probe(&node, "/readyz").await;
    assert_eq!(
        code, 200,
        "within the grace after the last peer went: {body}"
    );
    let limit = grace + PATIENCE;
    let body = crate::common::wait_for("readiness to fail after the grace", limit, || async {
        let (code, body) = probe(&node, "/readyz").await;
        (code == 503).then_some(body)
    })
    .await;
    let reason = body["reasons"][0].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("no peer connected for ")
            && reason.ends_with(&format!("(seeds: {seed})")),
        "{body}"
    );
    assert_eq!(probe(&node, "/healthz").await.0, 200);
}
