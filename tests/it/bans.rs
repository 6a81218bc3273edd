//! Bans by ID prefix, IP and duration, enforced within a second, persisted across restarts of
//! the banning node, on SQLite and on PostgreSQL.

use std::time::Duration;

use crate::common::{HEARTBEAT, PATIENCE, TestCluster, cli, holds_for, postgres, wait_until};

/// The whole ban story against one storage backend (`None`: SQLite).
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn ban_story(database_url: Option<String>) {
    let mut net = TestCluster::new();
    let mut a = net.start(|c| c.database_url = database_url.clone()).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;

    // Ban by ID prefix, with reason and duration: gone within a second.
    let prefix = &b.peer_id[..10];
    let (code, out, err) = cli(
        &a,
        &[
            "peers",
            "ban",
            prefix,
            "--reason",
            "flooding",
            "--duration",
            "1h",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    a.wait_for_state(&b.peer_id, "banned", Duration::from_secs(1))
        .await;
    b.wait_for_state(&a.peer_id, "disconnected", Duration::from_secs(1))
        .await;
    let view = a.view_of(&b.peer_id).await.expect("A still knows B");
    assert!(view.is_banned);
    assert_eq!(view.ban_reason.as_deref(), Some("flooding"));
    assert_eq!(view.direction, None, "no connection while banned");

    let (code, json, _) = cli(&a, &["peers", "bans", "-o", "json"]).await;
    assert_eq!(code, 0);
    let bans: serde_json::Value = serde_json::from_str(&json).expect("json");
    let ban = &bans[0];
    assert_eq!(ban["target"], b.peer_id.as_str());
    assert_eq!(ban["kind"], "peer");
    assert_eq!(ban["reason"], "flooding");
    assert_eq!(ban["source"], "manual");
    let remaining = ban["remainingSeconds"].as_i64().expect("expiry");
    assert!((3590..=3600).contains(&remaining), "{ban}");
    let (_, table, _) = cli(&a, &["peers", "bans"]).await;
    assert!(
        table.contains("flooding") && table.contains("in 1h"),
        "{table}"
    );

    // The ban survives a restart of the banning node; B keeps redialling and is refused.
    a.restart().await;
    holds_for("B to stay out after A restarts", HEARTBEAT * 10, || async {
        a.state_of(&b.peer_id).await == "banned" && b.state_of(&a.peer_id).await != "connected"
    })
    .await;
    let bans = a.client.bans().await.expect("bans");
    assert_eq!(bans.len(), 1, "ban persisted: {bans:?}");

    // Unban restores normal treatment.
    let (code, _, err) = cli(&a, &["peers", "unban", prefix]).await;
    assert_eq!(code, 0, "{err}");
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    assert!(a.client.bans().await.expect("bans").is_empty());

    // A ban by IP does the same, and survives a restart too.
    let banned_ip = &b.peer_addr.ip().to_string();
    let (code, _, err) = cli(&a, &["peers", "ban", banned_ip, "--reason", "bad subnet"]).await;
    assert_eq!(code, 0, "{err}");
    a.wait_for_state(&b.peer_id, "banned", Duration::from_secs(1))
        .await;
    b.wait_for_state(&a.peer_id, "disconnected", Duration::from_secs(1))
        .await;
    a.restart().await;
    holds_for("B to stay out by IP", HEARTBEAT * 10, || async {
        a.state_of(&b.peer_id).await == "banned"
    })
    .await;
    let (code, _, _) = cli(&a, &["peers", "unban", banned_ip]).await;
    assert_eq!(code, 0);
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;

    // A 2-second ban lifts itself.
    let (code, _, _) = cli(&a, &["peers", "ban", prefix, "--duration", "2s"]).await;
    assert_eq!(code, 0);
    a.wait_for_state(&b.peer_id, "banned", Duration::from_secs(1))
        .await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    wait_until("the expired ban to be tidied away", PATIENCE, || async {
        a.client.bans().await.is_ok_and(|b| b.is_empty())
    })
    .await;

    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_work_and_persist_on_sqlite() {
    ban_story(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_work_and_persist_on_postgres() {
    let Some(url) = postgres::fresh_database().await else {
        return;
    };
    ban_story(Some(url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cidr_bans_cover_announced_addresses_and_are_never_handed_out() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    let mut c = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    a.wait_for_state(&c.peer_id, "connected", PATIENCE).await;

    // Ban C's /32 on B before B learns of C: B must never dial C even when A hands C out.
    let ban = b
        .client
        .ban(
            &format!("{}/32", c.peer_addr.ip()),
            Some("not wanted"),
            None,
        )
        .await
        .expect("ban");
    assert_eq!(ban.kind, "cidr");
    // C still learns of B through A and may dial B; B refuses it.
    holds_for("C to stay unconnected to B", HEARTBEAT * 10, || async {
        let state = b.state_of(&c.peer_id).await;
        state == "unknown" || state == "banned"
    })
    .await;
    // B never hands the banned address on in peer exchange, while A (no ban) does.
    let manager_b = &b.handle.as_ref().expect("running").manager;
    let manager_a = &a.handle.as_ref().expect("running").manager;
    let handed_out_by_b = manager_b.exchange_entries("someone-else", 50);
    assert!(
        handed_out_by_b.iter().all(|e| e.peer_id != c.peer_id),
        "{handed_out_by_b:?}"
    );
    assert!(
        manager_a
            .exchange_entries("someone-else", 50)
            .iter()
            .any(|e| e.peer_id == c.peer_id),
        "A has no ban and passes C on"
    );

    c.stop().await;
    b.stop().await;
    a.stop().await;
}
