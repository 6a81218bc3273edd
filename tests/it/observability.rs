//! What standard tools make of the node: `/metrics` under `promtool check metrics`, the probes,
//! and the version. Addresses 127.0.12.x.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use crate::common::tools;
use crate::common::{PATIENCE, TestNode, replicate_along, wait_until};

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
async fn busy_pair(first: &str, second: &str) -> (TestNode, TestNode) {
    let a = TestNode::start(first, |_| {}).await;
    let seed = a.seed();
    let b = TestNode::start(second, |c| c.seeds = vec![seed]).await;
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
    let (a, b) = busy_pair("127.0.12.1", "127.0.12.2").await;
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
    let node = TestNode::start("127.0.12.3", |_| {}).await;
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
