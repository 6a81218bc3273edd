//! `sorcha-peer doctor`: every item judged from the node's real state, a fix under each that
//! is not ok, exit 1 only when one fails, the same list as JSON.

use sorcha_peer::api::DoctorDto;

use crate::common::{PATIENCE, TestCluster, wait_until};
use crate::operator_cli::cli_at;

fn verdict<'a>(report: &'a DoctorDto, item: &str) -> &'a str {
    report
        .findings
        .iter()
        .find(|f| f.item == item)
        .map(|f| f.verdict.as_str())
        .unwrap_or_else(|| panic!("no {item} in {report:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_judges_each_item_and_fails_only_on_a_failing_one() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;

    // Alone: nothing fails, but what cannot be measured or is risky says so.
    let (code, json, err) = cli_at(&a, 80, &["doctor", "-o", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let report: DoctorDto = serde_json::from_str(&json).expect("doctor JSON");
    assert_eq!(verdict(&report, "readiness"), "ok", "{report:?}");
    assert_eq!(verdict(&report, "clock"), "unknown");
    assert_eq!(verdict(&report, "config seeds"), "warning");
    assert_eq!(verdict(&report, "permissions admin.token"), "ok");
    assert_eq!(report.status, "warning");
    for f in report.findings.iter().filter(|f| f.verdict == "warning") {
        assert!(f.fix.is_some(), "{f:?}");
    }

    // With a peer, the clock is measured from its heartbeats.
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    wait_until("the clock measured", PATIENCE, || async {
        a.client
            .doctor()
            .await
            .is_ok_and(|r| verdict(&r, "clock") == "ok")
    })
    .await;

    // A secret readable by others fails, with the fix, and the exit code says so.
    let token = a.data_dir().join("admin.token");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let (code, text, _) = cli_at(&a, 80, &["doctor"]).await;
    assert_eq!(code, 1, "{text}");
    let line = text
        .lines()
        .position(|l| l.starts_with("failing  permissions admin.token"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        text.lines()
            .nth(line + 1)
            .is_some_and(|l| l.contains("fix: chmod 600")),
        "{text}"
    );
    for l in text.lines() {
        assert!(l.chars().count() <= 80, "wider than 80: {l:?}");
    }
    b.stop().await;
    a.stop().await;
}
