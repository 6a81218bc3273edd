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
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
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

/// Submits `payload` to `register` at `node` and waits until it is sealed there.
async fn seal(node: &TestNode, register: &str, payload: &str) {
    let id = node
        .client
        .submit(register, payload.as_bytes().to_vec())
        .await
        .expect("submit")
        .transaction_id;
    node.wait_sealed(register, &id, PATIENCE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn docket_counts_agree_across_views() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    let mut c = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.client
        .create_register("orders", true)
        .await
        .expect("register");
    seal(&a, "orders", "one").await;
    seal(&a, "orders", "two").await;
    crate::common::replicate_along(&[&a, &b], "orders").await;

    // Dockets the origin seals after B reached the head are pushed to B: the subscription
    // never shows more dockets held than in the chain it follows.
    seal(&a, "orders", "three").await;
    seal(&a, "orders", "four").await;
    let head = a
        .register("orders")
        .await
        .expect("held")
        .latest_docket_version;
    crate::common::wait_until("B to hold the pushed dockets", PATIENCE, || async {
        b.register("orders")
            .await
            .is_some_and(|r| r.latest_docket_version == head)
    })
    .await;
    let sub = b.client.subscriptions().await.expect("subscriptions")[0].clone();
    assert_eq!(sub.held_docket_version, Some(head), "{sub:?}");
    assert_eq!(sub.last_synced_docket_version, head, "{sub:?}");
    assert_eq!(sub.target_docket_version, Some(head), "{sub:?}");
    assert_eq!(
        sub.total_dockets_in_chain,
        head + 1,
        "genesis counts: {sub:?}"
    );
    assert_eq!(
        sub.mode, "FullReplica",
        "the platform's enum names: {sub:?}"
    );
    assert_eq!(sub.sync_state, "FullyReplicated", "{sub:?}");
    assert_eq!(sub.sync_progress_percent, 100.0);
    let (_, table, _) = cli_at(&b, 200, &["registers", "subscriptions", "-o", "wide"]).await;
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .expect("row")
        .split_whitespace()
        .collect();
    assert_eq!(
        row[3..5],
        [head.to_string(), head.to_string()],
        "docket held and target agree: {table}"
    );

    // A forward-only subscription at the head has synced (it says when), though it stored
    // no docket beyond its anchor.
    wait_until_available(&c, "orders").await;
    c.client
        .subscribe("orders", "forward-only")
        .await
        .expect("subscribe");
    crate::common::wait_until("C to be active", PATIENCE, || async {
        c.client
            .subscriptions()
            .await
            .is_ok_and(|s| s[0].sync_state == "Active")
    })
    .await;
    let sub = c.client.subscriptions().await.expect("subscriptions")[0].clone();
    assert!(
        sub.last_sync_at.is_some(),
        "active but never synced: {sub:?}"
    );
    let (_, table, _) = cli_at(&c, 200, &["registers", "subscriptions"]).await;
    assert!(!table.contains("never"), "{table}");

    // What the register list and the cache view count is what a purge removes.
    let listed = b.register("orders").await.expect("held");
    assert_eq!(listed.docket_count, head + 1, "{listed:?}");
    let cache = b.client.get_cache().await.expect("cache");
    assert_eq!(cache[0].docket_count, listed.docket_count, "{cache:?}");
    b.client
        .unsubscribe("orders", false)
        .await
        .expect("unsubscribe");
    let purged = b.client.purge("orders").await.expect("purge");
    assert_eq!(purged.dockets_removed, listed.docket_count, "{purged:?}");
    assert_eq!(purged.transactions_removed, listed.transaction_count);

    c.stop().await;
    b.stop().await;
    a.stop().await;
}

async fn wait_until_available(node: &TestNode, register: &str) {
    crate::common::wait_until("the register to be advertised", PATIENCE, || async {
        node.client.available_registers().await.is_ok_and(|r| {
            r.iter()
                .any(|a| a.register_id == register && a.full_replica_peer_count > 0)
        })
    })
    .await;
}

/// Drives the committed bash completion script the way bash does on TAB: the words typed so
/// far in COMP_WORDS, the cursor's word in COMP_CWORD; returns COMPREPLY.
async fn bash_complete(words: &[&str]) -> Vec<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/completions/sorcha-peer.bash");
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect();
    let cword = words.len() - 1;
    let program = format!(
        "source '{script}' || exit 9
         COMP_WORDS=({words})
         COMP_CWORD={cword}
         COMP_LINE=\"${{COMP_WORDS[*]}}\"
         COMP_POINT=${{#COMP_LINE}}
         _sorcha_peer '{cmd}' \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        words = quoted.join(" "),
        cmd = words[0],
    );
    let mut bash = std::process::Command::new("bash");
    bash.args(["--norc", "--noprofile", "-c", &program])
        .env_remove("SORCHA_PEER_NODE");
    // Completion must never hang a shell: one that does not finish fails the test.
    let (code, stdout, stderr) =
        tokio::task::spawn_blocking(move || crate::common::tools::run_bounded(bash, b"", PATIENCE))
            .await
            .expect("join");
    assert_eq!(code, 0, "bash: {stderr}");
    stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_completes_subcommands_at_every_level_and_peers_and_registers_from_the_node() {
    let bin = env!("CARGO_BIN_EXE_sorcha-peer");
    let top = bash_complete(&[bin, ""]).await;
    assert!(top.contains(&"peers".to_string()), "{top:?}");
    let peers = bash_complete(&[bin, "peers", ""]).await;
    for sub in ["list", "get", "ban", "unban", "reset", "bans"] {
        assert!(peers.contains(&sub.to_string()), "{sub} missing: {peers:?}");
    }
    let registers = bash_complete(&[bin, "registers", "sub"]).await;
    assert!(
        registers.contains(&"subscribe".to_string())
            && registers.contains(&"subscriptions".to_string()),
        "{registers:?}"
    );
    let modes = bash_complete(&[bin, "registers", "subscribe", "orders", "--mode", ""]).await;
    assert!(modes.contains(&"full-replica".to_string()), "{modes:?}");

    let mut net = TestCluster::new();
    let mut a = net.start(|c| c.name = "alpha".into()).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    let url = a.admin_url.clone();
    // Names complete too (a is "alpha" to b).
    let b_url = b.admin_url.clone();
    let named = bash_complete(&[bin, "--node", &b_url, "peers", "get", ""]).await;
    assert!(
        named.contains(&"alpha".to_string()) && named.contains(&a.peer_id),
        "{named:?}"
    );
    // Registers: held here, or advertised by peers; only where a register is the argument.
    a.client
        .create_register("orders", true)
        .await
        .expect("register");
    crate::common::wait_until("b to see orders", PATIENCE, || async {
        b.client
            .available_registers()
            .await
            .is_ok_and(|r| r.iter().any(|r| r.register_id == "orders"))
    })
    .await;
    let offered = bash_complete(&[bin, "--node", &b_url, "registers", "subscribe", ""]).await;
    assert_eq!(offered, vec!["orders".to_string()]);
    let held = bash_complete(&[bin, "--node", &url, "tx", "get", "or"]).await;
    assert_eq!(held, vec!["orders".to_string()]);
    let second = bash_complete(&[bin, "--node", &url, "tx", "get", "orders", ""]).await;
    assert!(!second.contains(&"orders".to_string()), "{second:?}");
    for sub in ["get", "ban", "reset"] {
        let ids = bash_complete(&[bin, "--node", &url, "peers", sub, ""]).await;
        assert_eq!(ids, vec![b.peer_id.clone()], "peers {sub}");
    }
    let ids = bash_complete(&[bin, "--node", &url, "peers", "get", &b.peer_id[..4]]).await;
    assert_eq!(ids, vec![b.peer_id.clone()]);
    let none = bash_complete(&[bin, "--node", &url, "peers", "get", "zz"]).await;
    assert!(!none.contains(&b.peer_id), "{none:?}");

    // The node down: no candidates, no error on the terminal, the usual completion instead.
    a.stop().await;
    let ids = bash_complete(&[bin, "--node", &url, "peers", "get", ""]).await;
    assert!(!ids.contains(&b.peer_id), "{ids:?}");
    b.stop().await;
}

/// Runs the CLI against `node` with `input` on stdin.
async fn cli_with_input(node: &TestNode, input: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = bin();
    cmd.args(["--node", &node.admin_url, "--token", &node.token])
        .args(args)
        .write_stdin(input.to_string());
    run_cmd(cmd).await
}

/// `tx submit --lines -o json`: JSON Lines, one object per input line with what a single
/// submit answers (held already, state, version and docket once sealed); a count on stderr in
/// both modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_submit_lines_answers_each_line_as_a_single_submit_does() {
    let mut a = TestCluster::new().start(|_| {}).await;
    a.client
        .create_register("lines", true)
        .await
        .expect("create");
    let (code, single, err) =
        cli_with_input(&a, "alpha", &["tx", "submit", "lines", "-o", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let single: serde_json::Value = serde_json::from_str(&single).expect("one object");
    a.wait_for_version("lines", 1, PATIENCE).await;

    let (code, out, err) = cli_with_input(
        &a,
        "alpha\nbeta\nbeta\n\ngamma\n",
        &["tx", "submit", "lines", "--lines", "-o", "json"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let answers: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(answers.len(), 4, "one object per non-empty line: {out}");
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    for answer in &answers {
        assert_eq!(
            keys(answer),
            keys(&single),
            "the fields of a single submit: {answer}"
        );
        assert_eq!(answer["registerId"], "lines");
    }
    // Held already and sealed: where it stands.
    assert_eq!(answers[0]["transactionId"], single["transactionId"]);
    assert_eq!(answers[0]["alreadyHeld"], true, "{out}");
    assert_eq!(answers[0]["state"], "sealed", "{out}");
    assert_eq!(answers[0]["version"], 1, "{out}");
    assert!(answers[0]["docketNumber"].as_u64().is_some(), "{out}");
    // New, then the same line again: held already, pending.
    assert_eq!(answers[1]["alreadyHeld"], false, "{out}");
    assert_eq!(answers[1]["state"], "pending", "{out}");
    assert_eq!(answers[2]["transactionId"], answers[1]["transactionId"]);
    assert_eq!(answers[2]["alreadyHeld"], true, "{out}");
    assert_eq!(answers[3]["alreadyHeld"], false, "{out}");
    assert!(
        err.contains("4 line(s) submitted: 2 stored, 2 held already"),
        "{err}"
    );

    // Table mode: the IDs, then the count on stderr.
    let (code, out, err) =
        cli_with_input(&a, "delta\nalpha\n", &["tx", "submit", "lines", "--lines"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        err.contains("2 line(s) submitted: 1 stored, 1 held already")
            && err.contains("0 not stored"),
        "{err}"
    );
    // A refusal counts the lines not stored; --quiet leaves stderr to errors.
    let (code, _, err) =
        cli_with_input(&a, "x\ny\n", &["tx", "submit", "nowhere", "--lines"]).await;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("2 not stored"), "{err}");
    let (code, _, err) =
        cli_with_input(&a, "epsilon\n", &["-q", "tx", "submit", "lines", "--lines"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    a.stop().await;
}

/// `status` says how durable an acknowledged write is, in text and JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_durability() {
    let mut net = TestCluster::new();
    for (durability, word) in [
        (sorcha_peer::config::Durability::Full, "full"),
        (sorcha_peer::config::Durability::Fast, "fast"),
    ] {
        let mut node = TestNode::start(&net.ip(), |c| c.durability = durability).await;
        let status = node.client.status().await.expect("status");
        assert_eq!(status.durability, word);
        let (code, text, err) = cli_at(&node, 80, &["status"]).await;
        assert_eq!(code, 0, "{err}");
        assert!(text.contains(&format!("(durability {word})")), "{text}");
        node.stop().await;
    }
}

/// Bans and events name a peer as the peers table does: its ID with its name beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_and_events_name_the_peers_they_mention() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let seed = a.seed();
    let mut b = net
        .start(|c| {
            c.name = "bravo".into();
            c.seeds = vec![seed.clone()];
        })
        .await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    let (code, _, err) = cli_at(&a, 80, &["peers", "ban", &b.peer_id, "--reason", "test"]).await;
    assert_eq!(code, 0, "{err}");
    let (_, bans, _) = cli_at(&a, 80, &["peers", "bans"]).await;
    assert!(bans.contains("(bravo)"), "{bans}");
    let listed = a.client.bans().await.expect("bans");
    assert_eq!(listed[0].name.as_deref(), Some("bravo"));
    let (_, events, _) = cli_at(&a, 120, &["events"]).await;
    let banned = events
        .lines()
        .find(|l| l.contains("peerBanned"))
        .unwrap_or_default();
    assert!(banned.contains("(bravo)"), "{events}");
    b.stop().await;
    a.stop().await;
}

/// At 80 columns the register, subscription, lag and ban tables keep one header line (the
/// full headers are for `-o wide`), and event lines continue under their text at word
/// boundaries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_do_not_stack_and_event_lines_wrap_whole_words_at_80_columns() {
    let register = "orders-2026-east";
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    a.client
        .create_register(register, true)
        .await
        .expect("register");
    crate::common::wait_until("b subscribed", PATIENCE, || async {
        b.client.subscribe(register, "full-replica").await.is_ok()
    })
    .await;
    let reason = "a fairly long reason for this ban, long enough to wrap at eighty columns";
    let ban = [
        "peers",
        "ban",
        "10.9.9.0/24",
        "--duration",
        "1h",
        "--reason",
        reason,
    ];
    assert_eq!(cli_at(&b, 80, &ban).await.0, 0);
    for (args, first) in [
        (&["registers", "list"][..], register),
        (&["registers", "available"], register),
        (&["registers", "subscriptions"], register),
        (&["lag", "--against", &seed], register),
        (&["peers", "bans"], "10.9.9.0/24"),
    ] {
        let (code, out, err) = cli_at(&b, 80, args).await;
        assert_eq!(code, 0, "{args:?}: {err}");
        assert_fits(&out, 80);
        let second = out.lines().nth(1).unwrap_or_default();
        assert!(
            second.starts_with(first),
            "{args:?}: the header stacks:\n{out}"
        );
    }
    let (_, wide, _) = cli_at(&b, 80, &["registers", "list", "-o", "wide"]).await;
    assert!(wide.contains("LATEST DOCKET VERSION"), "{wide}");
    let (_, events, _) = cli_at(&b, 80, &["events", "--type", "peerBanned"]).await;
    assert_fits(&events, 80);
    let lines: Vec<&str> = events.lines().collect();
    assert!(lines.len() > 1, "{events}");
    for line in &lines[1..] {
        assert!(line.starts_with(&" ".repeat(32)), "{events}");
    }
    let joined: String = lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
    assert!(joined.contains(reason), "a word was broken: {events}");
    b.stop().await;
    a.stop().await;
}
