//! The event stream (`GET /api/events`) with real nodes: what a client reading it sees when
//! peers connect, are banned and stop, when a register is sealed and replicated; replay with
//! `?since=` and `Last-Event-ID`; a client too slow to keep up; the bound on clients. The
//! commands that read it are in `events_cli.rs`.

use std::time::Duration;

use sorcha_peer::client::{EventStream, SseParser};
use sorcha_peer::events::{Event, EventKind};

use crate::common::{PATIENCE, TestCluster, TestNode, metric, wait_until};

/// Reads events until one satisfies `wanted`; panics with `what` (and what was seen) after
/// `within`.
pub async fn expect_event(
    stream: &mut EventStream,
    what: &str,
    within: Duration,
    mut wanted: impl FnMut(&Event) -> bool,
) -> Event {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        match next {
            Err(_) => panic!("timed out after {within:?} waiting for {what}; saw {seen:#?}"),
            Ok(Err(e)) => panic!("event stream failed while waiting for {what}: {e}"),
            Ok(Ok(None)) => panic!("event stream ended while waiting for {what}; saw {seen:#?}"),
            Ok(Ok(Some(event))) => {
                if wanted(&event) {
                    return event;
                }
                seen.push(event.kind.summary());
            }
        }
    }
}

/// A raw `curl -N`-style request to the event stream.
async fn raw_stream(
    node: &TestNode,
    query: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{}/api/events{query}", node.admin_url));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    request.send().await.expect("request the event stream")
}

/// Reads raw SSE events from a response until `count` events arrived.
async fn read_raw(response: reqwest::Response, count: usize) -> Vec<Event> {
    use futures::StreamExt;
    let mut body = response.bytes_stream();
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    let read = async {
        while events.len() < count {
            while let Some(data) = parser.next_data().expect("parse") {
                events.push(serde_json::from_str::<Event>(&data).expect("event JSON"));
            }
            if events.len() >= count {
                break;
            }
            let chunk = body.next().await.expect("stream open").expect("chunk");
            parser.push(&chunk).expect("parse");
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("events arrive");
    events.truncate(count);
    events
}

fn is_connected(event: &Event, peer: &str) -> bool {
    matches!(&event.kind, EventKind::PeerConnected { peer_id, .. } if peer_id == peer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn stream_tells_connections_bans_unbans_and_stopped_peers() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let mut stream = a.client.event_stream(None).await.expect("open stream");
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    let mut c = net.start(|c| c.seeds = vec![seed.clone()]).await;

    // Both connect (in either order).
    let mut pending = vec![b.peer_id.clone(), c.peer_id.clone()];
    while !pending.is_empty() {
        let event = expect_event(&mut stream, "b and c connected", PATIENCE, |e| {
            pending.iter().any(|p| is_connected(e, p))
        })
        .await;
        assert!(event.seq > 0);
        let EventKind::PeerConnected {
            peer_id, address, ..
        } = &event.kind
        else {
            unreachable!()
        };
        let expected = if *peer_id == b.peer_id {
            b.seed()
        } else {
            c.seed()
        };
        assert_eq!(*address, expected);
        pending.retain(|p| p != peer_id);
    }

    a.client
        .ban(&b.peer_id, Some("flooding the test"), Some("1h"))
        .await
        .expect("ban b");
    let banned = expect_event(
        &mut stream,
        "b banned",
        PATIENCE,
        |e| matches!(&e.kind, EventKind::PeerBanned { target, .. } if *target == b.peer_id),
    )
    .await;
    let EventKind::PeerBanned {
        reason,
        source,
        kind,
        expires_at,
        peer_ids,
        ..
    } = &banned.kind
    else {
        unreachable!()
    };
    assert_eq!(reason, "flooding the test");
    assert_eq!(source, "manual");
    assert_eq!(kind, "peer");
    assert!(expires_at.is_some());
    assert_eq!(peer_ids, &vec![b.peer_id.clone()]);
    let gone = expect_event(
        &mut stream,
        "b disconnected after the ban",
        PATIENCE,
        |e| matches!(&e.kind, EventKind::PeerDisconnected { peer_id, .. } if *peer_id == b.peer_id),
    )
    .await;
    assert!(gone.seq > banned.seq, "sequence numbers increase");

    a.client.unban(&b.peer_id).await.expect("unban b");
    expect_event(&mut stream, "b unbanned", PATIENCE, |e| {
        e.kind
            == EventKind::PeerUnbanned {
                target: b.peer_id.clone(),
                expired: false,
            }
    })
    .await;

    // A node that stops is seen to go.
    let c_id = c.peer_id.clone();
    c.stop().await;
    let stopped = expect_event(
        &mut stream,
        "c disconnected",
        PATIENCE,
        |e| matches!(&e.kind, EventKind::PeerDisconnected { peer_id, .. } if *peer_id == c_id),
    )
    .await;
    let EventKind::PeerDisconnected { reason, .. } = &stopped.kind else {
        unreachable!()
    };
    assert!(!reason.is_empty());

    // Stopping the node ends the stream (the admin server is not held up by it).
    b.stop().await;
    a.stop().await;
    let end = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.next().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the stream must end when the node stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn stream_tells_sealing_subscription_progress_and_replication() {
    let mut net = TestCluster::new();
    let mut origin = net.start(|_| {}).await;
    let seed = origin.seed();
    let mut replica = net
        .start(|c| {
            c.seeds = vec![seed.clone()];
            c.sync_batch_dockets = 2;
        })
        .await;
    let mut origin_events = origin.client.event_stream(None).await.expect("stream");
    let mut replica_events = replica.client.event_stream(None).await.expect("stream");

    origin
        .client
        .create_register("events-reg", true)
        .await
        .expect("create");
    for i in 0..6 {
        let tx = origin
            .client
            .submit("events-reg", format!("payload {i}").into_bytes())
            .await
            .expect("submit")
            .transaction_id;
        origin.wait_sealed("events-reg", &tx, PATIENCE).await;
    }
    expect_event(&mut origin_events, "a docket sealed", PATIENCE, |e| {
        matches!(&e.kind, EventKind::DocketSealed { register_id, transactions, .. }
            if register_id == "events-reg" && *transactions >= 1)
    })
    .await;
    let head = origin
        .register("events-reg")
        .await
        .expect("held")
        .latest_docket_version;

    wait_until("the replica to see the register", PATIENCE, || async {
        replica
            .client
            .available_registers()
            .await
            .is_ok_and(|r| r.iter().any(|a| a.register_id == "events-reg"))
    })
    .await;
    replica
        .client
        .subscribe("events-reg", "full-replica")
        .await
        .expect("subscribe");
    expect_event(&mut replica_events, "subscribing", PATIENCE, |e| {
        matches!(&e.kind, EventKind::SubscriptionState { register_id, state, .. }
            if register_id == "events-reg" && state == "subscribing")
    })
    .await;
    let replicated = expect_event(&mut replica_events, "dockets replicated", PATIENCE, |e| {
        matches!(&e.kind, EventKind::DocketReplicated { register_id, .. } if register_id == "events-reg")
    })
    .await;
    let EventKind::DocketReplicated { dockets, .. } = replicated.kind else {
        unreachable!()
    };
    assert!((1..=2).contains(&dockets), "batches of 2: {dockets}");
    let progress = expect_event(&mut replica_events, "progress at the head", PATIENCE, |e| {
        matches!(&e.kind, EventKind::SubscriptionProgress { register_id, height, .. }
            if register_id == "events-reg" && *height >= head)
    })
    .await;
    let EventKind::SubscriptionProgress {
        percent, target, ..
    } = progress.kind
    else {
        unreachable!()
    };
    assert_eq!(percent, 100.0);
    assert_eq!(target, Some(head));
    expect_event(&mut replica_events, "fully replicated", PATIENCE, |e| {
        matches!(&e.kind, EventKind::SubscriptionState { register_id, state, .. }
            if register_id == "events-reg" && state == "fully-replicated")
    })
    .await;

    // The history holds the same story for a client that comes later.
    let recent = replica.client.recent_events(1000).await.expect("recent");
    let names: Vec<&str> = recent.events.iter().map(|e| e.kind.name()).collect();
    for wanted in [
        "peerConnected",
        "subscriptionState",
        "docketReplicated",
        "subscriptionProgress",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    assert_eq!(recent.latest_seq, recent.events.last().expect("events").seq);
    replica.stop().await;
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_and_last_event_id_replay_from_the_ring() {
    let mut node = TestCluster::new().start(|_| {}).await;
    for i in 1..=5 {
        node.client
            .ban(&format!("10.11.0.{i}"), Some("replay"), None)
            .await
            .expect("ban");
    }
    let latest = node
        .client
        .recent_events(10)
        .await
        .expect("recent")
        .latest_seq;
    assert!(latest >= 5);

    let response = raw_stream(&node, &format!("?since={}", latest - 2), None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let replayed = read_raw(response, 2).await;
    assert_eq!(
        replayed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![latest - 1, latest]
    );

    // A reconnecting EventSource sends the last id it saw.
    let response = raw_stream(&node, "", Some(&(latest - 1).to_string())).await;
    let replayed = read_raw(response, 1).await;
    assert_eq!(replayed[0].seq, latest);
    assert!(matches!(
        &replayed[0].kind,
        EventKind::PeerBanned { target, .. } if target == "10.11.0.5"
    ));

    // Then live events follow on the same stream.
    let response = raw_stream(&node, &format!("?since={latest}"), None).await;
    let reader = tokio::spawn(read_raw(response, 1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    node.client.unban("10.11.0.1").await.expect("unban");
    let live = reader.await.expect("reader");
    assert_eq!(live[0].seq, latest + 1);

    let bad = raw_stream(&node, "?since=soon", None).await;
    assert_eq!(bad.status(), 400);
    let bad = raw_stream(&node, "", Some("not-a-number")).await;
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.expect("json error");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("Last-Event-ID"))
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_too_slow_to_keep_up_is_told_how_many_events_it_missed() {
    let mut node = TestCluster::new().start(|_| {}).await;
    let events = node.handle.as_ref().expect("running").events.clone();
    let before = events.latest_seq();
    // Opened, then not read while far more is published than socket buffers and the
    // subscriber's backlog hold.
    let response = raw_stream(&node, &format!("?since={before}"), None).await;
    assert_eq!(response.status(), 200);
    let published = 200_000u64;
    for n in 0..published {
        events.publish(EventKind::PeerUnbanned {
            target: format!("10.12.{}.{}", n / 256 % 256, n % 256),
            expired: true,
        });
    }

    use futures::StreamExt;
    let mut body = response.bytes_stream();
    let mut parser = SseParser::default();
    let mut last_seq = before;
    let mut lagged = None;
    let read = async {
        loop {
            while let Some(data) = parser.next_data().expect("parse") {
                let event: Event = serde_json::from_str(&data).expect("event");
                match event.kind {
                    EventKind::Lagged { missed } => {
                        assert_eq!(event.seq, 0, "lagged is not part of the sequence");
                        // Lagging again before the next event adds up.
                        let earlier = lagged.map_or(0, |(_, m)| m);
                        lagged = Some((last_seq, earlier + missed));
                    }
                    _ => {
                        if let Some((at, missed)) = lagged.take() {
                            assert_eq!(event.seq, at + missed + 1, "skipped exactly `missed`");
                            return (at, missed);
                        }
                        assert_eq!(event.seq, last_seq + 1, "no gap without a lagged event");
                        last_seq = event.seq;
                    }
                }
            }
            let chunk = body.next().await.expect("stream open").expect("chunk");
            parser.push(&chunk).expect("parse");
        }
    };
    let (at, missed) = tokio::time::timeout(PATIENCE, read)
        .await
        .expect("a lagged event arrives");
    assert!(
        missed > 0 && at < before + published,
        "lagged at {at}, missed {missed}"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_clients_are_bounded_and_a_refusal_is_counted() {
    let mut node = TestCluster::new()
        .start(|c| {
            c.max_event_clients = 2;
            c.event_keepalive_interval = Duration::from_millis(50);
        })
        .await;
    let first = raw_stream(&node, "", None).await;
    let second = node.client.event_stream(None).await.expect("second client");
    assert_eq!(first.status(), 200);

    let refused = raw_stream(&node, "", None).await;
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.expect("json error");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("too many event subscribers")),
        "{body}"
    );
    match node.client.event_stream(None).await {
        Err(sorcha_peer::client::ClientError::Server { status: 503, .. }) => {}
        Err(e) => panic!("expected a 503 error, got {e:?}"),
        Ok(_) => panic!("a third client was let in"),
    }
    let text = node.client.metrics().await.expect("metrics");
    assert_eq!(
        metric(
            &text,
            "sorcha_peer_limit_hits_total{limit=\"max_event_clients\"}"
        ),
        2.0
    );

    // A client that goes away frees its place (noticed at the next keep-alive).
    drop(first);
    drop(second);
    wait_until("a freed place to be taken", PATIENCE, || async {
        raw_stream(&node, "", None).await.status() == 200
    })
    .await;
    node.stop().await;
}
