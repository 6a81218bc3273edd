//! The operator CLI as people read it: tables at 80 columns, `-o wide`, `--no-headers`,
//! placeholders and relative times.

use crate::common::{PATIENCE, TestCluster, TestNode, bin, run_cmd};

/// Runs the CLI against `node` with stdout a pipe and `COLUMNS` set to `columns`.
pub async fn cli_at(node: &TestNode, columns: usize, args: &[&str]) -> (i32, String, String) {
    let mut cmd = bin();
    cmd.env("COLUMNS", columns.to_string())
        .args(["--node", &node.admin_url, "--token", &node.token])
        .args(args);
    run_cmd(cmd).await
}

/// Every line fits `columns`; no box drawing.
fn assert_fits(text: &str, columns: usize) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= columns,
            "line wider than {columns}: {line:?}\n{text}"
        );
        assert!(
            !line.contains(['│', '─', '┌', '╭', '|']),
            "box drawing in {line:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_fit_80_columns_and_keep_ids_and_addresses_whole() {
    let mut net = TestCluster::new();
    let mut a = net.start(|c| c.name = "alpha".into()).await;
    let seed = a.seed();
    let mut b = net
        .start(|c| {
            c.seeds = vec![seed.clone()];
            c.name = "a node whose operator gave it a rather long descriptive name".into();
        })
        .await;
    let mut c = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    a.wait_for_state(&c.peer_id, "connected", PATIENCE).await;
    a.client
        .create_register("orders", true)
        .await
        .expect("register");

    let (code, out, err) = cli_at(&a, 80, &["peers", "list"]).await;
    assert_eq!(code, 0, "{err}");
    assert_fits(&out, 80);
    let header = out.lines().next().expect("header");
    for h in ["PEER ID", "NAME", "ADDRESS", "STATE", "LATENCY", "QUALITY"] {
        assert!(header.contains(h), "{h} missing from {header:?}");
    }
    for node in [&b, &c] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&node.peer_id[..12]))
            .unwrap_or_else(|| panic!("no row for {}:\n{out}", node.peer_id));
        assert!(
            line.contains(&node.seed()),
            "address {} not whole on its row {line:?}\n{out}",
            node.seed()
        );
        assert!(!out.contains(&node.peer_id), "full ID in a narrow table");
    }
    // A peer without a name shows the same placeholder as everywhere else.
    let c_row = out
        .lines()
        .find(|l| l.starts_with(&c.peer_id[..12]))
        .expect("row");
    assert!(c_row.contains("  -  "), "{c_row:?}");
    let (_, detail, _) = cli_at(&a, 80, &["peers", "get", &c.peer_id]).await;
    assert!(
        detail
            .lines()
            .any(|l| l.starts_with("Name:") && l.ends_with(" -")),
        "{detail}"
    );
    assert_fits(&detail, 80);

    // -o wide: every field, IDs in full, one line per peer.
    let (code, wide, _) = cli_at(&a, 80, &["peers", "list", "-o", "wide"]).await;
    assert_eq!(code, 0);
    assert_eq!(wide.lines().count(), 3, "{wide}");
    for h in ["DIRECTION", "FAILURE COUNT", "LAST SEEN", "RATING"] {
        assert!(wide.lines().next().is_some_and(|l| l.contains(h)), "{wide}");
    }
    assert!(
        wide.contains(&b.peer_id) && wide.contains("rather long descriptive name"),
        "{wide}"
    );

    // --no-headers: data lines only.
    let (_, bare, _) = cli_at(&a, 80, &["peers", "list", "--no-headers"]).await;
    assert!(!bare.contains("PEER ID"), "{bare}");
    assert!(
        bare.lines().any(|l| l.starts_with(&c.peer_id[..12])),
        "{bare}"
    );

    // Every other table at 80 columns.
    assert_eq!(
        cli_at(&a, 80, &["peers", "ban", "10.9.9.0/24", "--duration", "1h"])
            .await
            .0,
        0
    );
    for args in [
        &["peers", "bans"][..],
        &["registers", "list"],
        &["registers", "available"],
        &["status"],
    ] {
        let (code, out, err) = cli_at(&a, 80, args).await;
        assert_eq!(code, 0, "{args:?}: {err}");
        assert_fits(&out, 80);
    }
    let (_, bans, _) = cli_at(&a, 80, &["peers", "bans"]).await;
    assert!(bans.contains("in 1h"), "a fresh 1 h ban: {bans}");
    let (_, status, _) = cli_at(&a, 80, &["status"]).await;
    assert!(!status.contains("0ms"), "{status}");

    c.stop().await;
    b.stop().await;
    a.stop().await;
}
