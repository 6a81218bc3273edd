//! Event classes and filters with real nodes: `events --type … --peer …` on the CLI, `type`
//! and `peer` on `GET /api/events` and `/api/events/recent`, and progress events (dockets
//! sealed) kept apart from the bans and connections an operator audits.

use std::time::Duration;

use sorcha_peer::client::EventsWanted;
use sorcha_peer::events::{Event, EventClass, EventKind};

use crate::common::{PATIENCE, TestCluster, cli, wait_until};
use crate::events::expect_event;

fn json_lines(stdout: &str) -> Vec<Event> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not an event ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn events_are_filtered_by_type_class_and_peer() {
    let mut net = TestCluster::new();
    let mut a = net
        .start(|c| {
            c.name = "alpha".into();
            // One docket per transaction: many progress events.
            c.max_docket_transactions = 1;
        })
        .await;
    let seed = a.seed();
    let mut b = net
        .start(|c| {
            c.name = "bravo".into();
            c.seeds = vec![seed.clone()];
        })
        .await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    a.client
        .create_register("filtered", true)
        .await
        .expect("create register");
    let payloads: Vec<String> = (0..30).map(|i| format!("tx {i}")).collect();
    a.client
        .submit_batch("filtered", payloads)
        .await
        .expect("submit");
    wait_until("30 dockets sealed", PATIENCE, || async {
        a.client
            .registers()
            .await
            .expect("registers")
            .iter()
            .any(|r| r.latest_docket_version >= 30)
    })
    .await;
    let (code, _, err) = cli(&a, &["peers", "ban", "bravo", "--reason", "filter test"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(
        &a,
        &["peers", "ban", "198.51.100.7", "--reason", "an address"],
    )
    .await;
    assert_eq!(code, 0, "{err}");

    // One type: only bans, however many dockets were sealed.
    let (code, out, err) = cli(
        &a,
        &[
            "events",
            "--type",
            "peerBanned",
            "--limit",
            "100",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let bans = json_lines(&out);
    assert_eq!(bans.len(), 2, "{out}");
    assert!(bans.iter().all(|e| e.kind.name() == "peerBanned"), "{out}");

    // A class: audit events only, no docket among them; progress only dockets.
    let (code, out, err) = cli(
        &a,
        &["events", "--type", "audit", "--limit", "1000", "-o", "json"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let audit = json_lines(&out);
    assert!(
        audit.iter().all(|e| e.kind.class() == EventClass::Audit),
        "{out}"
    );
    assert!(
        audit.iter().any(|e| e.kind.name() == "peerConnected"),
        "{out}"
    );
    let (code, out, err) = cli(
        &a,
        &[
            "events",
            "--type",
            "progress",
            "--type",
            "peerBanned",
            "--limit",
            "1000",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let mixed = json_lines(&out);
    assert!(
        mixed
            .iter()
            .filter(|e| e.kind.name() == "docketSealed")
            .count()
            >= 30,
        "{out}"
    );
    assert_eq!(
        mixed
            .iter()
            .filter(|e| e.kind.name() == "peerBanned")
            .count(),
        2
    );

    // A peer by name: its connection and the ban that covers it, not the address ban.
    let (code, out, err) = cli(
        &a,
        &["events", "--peer", "bravo", "--limit", "100", "-o", "json"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let of_b = json_lines(&out);
    assert!(!of_b.is_empty(), "{out}");
    assert!(
        of_b.iter()
            .all(|e| e.kind.peers_named().iter().any(|p| *p == b.peer_id)),
        "{out}"
    );
    assert!(of_b.iter().any(|e| e.kind.name() == "peerBanned"), "{out}");
    // An address: the bans of it. Both filters together.
    let (code, out, err) = cli(
        &a,
        &[
            "events",
            "--peer",
            "198.51.100.7",
            "--type",
            "peerBanned",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let of_ip = json_lines(&out);
    assert_eq!(of_ip.len(), 1, "{out}");
    // In table mode, names as in the peers table.
    let (code, out, err) = cli(&a, &["events", "--type", "peerBanned"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");

    // Refusals: an unknown type (exit 2, the choices named), an unknown peer (exit 5).
    let (code, _, err) = cli(&a, &["events", "--type", "peerBaned"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("peerBanned"), "{err}");
    let (code, _, err) = cli(&a, &["events", "--peer", "nobody-here"]).await;
    assert_eq!(code, 5, "{err}");

    // The same on the admin API, repeated or comma-separated.
    let http = reqwest::Client::new();
    let get = |query: &str| {
        let url = format!("{}/api/events/recent{query}", a.admin_url);
        let http = http.clone();
        async move { http.get(url).send().await.expect("GET recent") }
    };
    let body: serde_json::Value = get("?type=docketSealed,peerBanned&limit=1000")
        .await
        .json()
        .await
        .expect("json");
    let types: Vec<&str> = body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(types.len() >= 32, "{body}");
    assert!(
        types
            .iter()
            .all(|t| *t == "docketSealed" || *t == "peerBanned"),
        "{body}"
    );
    let bad = get("?type=nope").await;
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("'nope'") && e.contains("peerConnected")),
        "{body}"
    );
    assert_eq!(get("?colour=blue").await.status(), 400);

    // Live: a stream of unbans only sees the unban, not the dockets sealed meanwhile.
    let latest = a.client.recent_events(1).await.expect("recent").latest_seq;
    let wanted = EventsWanted {
        types: vec!["peerUnbanned".into()],
        peer: Some(b.peer_id[..10].to_string()),
    };
    let mut stream = a
        .client
        .event_stream_matching(Some(latest), &wanted)
        .await
        .expect("stream");
    let more: Vec<String> = (0..5).map(|i| format!("more {i}")).collect();
    a.client
        .submit_batch("filtered", more)
        .await
        .expect("submit");
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.client.unban("198.51.100.7").await.expect("unban address");
    a.client.unban(&b.peer_id).await.expect("unban bravo");
    let first = expect_event(&mut stream, "the unban of bravo", PATIENCE, |_| true).await;
    assert!(
        matches!(&first.kind, EventKind::PeerUnbanned { target, .. } if *target == b.peer_id),
        "{first:?}"
    );
    b.stop().await;
    a.stop().await;
}
