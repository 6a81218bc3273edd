//! The half-sent messages of issue 16: a stranger announces 16 MiB messages and sends all of
//! each but the last byte, which a node that buffers messages whole holds until the stream
//! ends. Before a session (height queries on every stream of every connection an address may
//! open) and inside sessions (every session an address may have). An honest node connected
//! before the attack says whether honest sessions survived it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sorcha_peer::identity::Identity;
use sorcha_peer::rpc::{MAX_MESSAGE_SIZE, MAX_STREAMS_PER_CONNECTION};
use tonic::codegen::Bytes;

use super::stranger::{self, Claims};
use super::{Held, NodeProcess, hold};

/// The default per-address caps the attacks fill (`max_connections_per_ip`,
/// `max_inbound_per_ip`).
const CONNECTIONS_PER_IP: usize = 8;
const SESSIONS_PER_IP: usize = 4;
/// How long the node gets to refuse every stream before the figures are taken.
const SETTLE: Duration = Duration::from_secs(10);
const HONEST_IP: &str = "127.0.0.190";

fn attacker_ips(count: u8) -> impl Iterator<Item = String> {
    (1..=count).map(|n| format!("127.0.2.{n}"))
}

/// An honest node connected to the victim before the attack.
async fn honest_before(victim: &NodeProcess) -> Option<NodeProcess> {
    let honest = NodeProcess::start(
        &victim.binary,
        HONEST_IP,
        "honest-before",
        &[victim.peer_addr],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if victim.connected().await.contains(&honest.peer_id) {
            return Some(honest);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// `sorcha_peer_limit_hits_total{limit}` once it reaches `expected` (or after [`SETTLE`]),
/// and how long that took.
async fn refusals(victim: &NodeProcess, limit: &str, expected: usize) -> (f64, u128) {
    let name = format!("sorcha_peer_limit_hits_total{{limit=\"{limit}\"}} ");
    let started = Instant::now();
    loop {
        let hits = victim
            .client
            .metrics()
            .await
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&name).and_then(|v| v.trim().parse().ok()))
            })
            .unwrap_or(0.0);
        if hits >= expected as f64 || started.elapsed() > SETTLE {
            return (hits, started.elapsed().as_millis());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long the admin API takes to answer a status request (`None`: it failed).
async fn admin_status_ms(victim: &NodeProcess) -> Option<u128> {
    let started = Instant::now();
    victim
        .client
        .status()
        .await
        .ok()
        .map(|_| started.elapsed().as_millis())
}

async fn still_connected(victim: &NodeProcess, honest: &Option<NodeProcess>) -> bool {
    match honest {
        Some(h) => victim.connected().await.contains(&h.peer_id),
        None => false,
    }
}

/// Height queries on every stream of every connection `ips` addresses may open, each
/// announcing 16 MiB and sending all but its last byte.
pub async fn before_a_session(victim: &NodeProcess, ips: u8) -> (Held, Value) {
    let honest = honest_before(victim).await;
    let almost = Bytes::from(vec![0u8; MAX_MESSAGE_SIZE - 1]);
    let (mut channels, mut calls) = (Vec::new(), Vec::new());
    for ip in attacker_ips(ips) {
        for _ in 0..CONNECTIONS_PER_IP {
            let me = Identity::generate();
            let Ok(channel) = stranger::channel_from(victim.peer_addr, &ip, &me).await else {
                continue;
            };
            for _ in 0..MAX_STREAMS_PER_CONNECTION {
                let call = stranger::raw_call(channel.clone(), "GetRegisterHeights");
                let prefix = stranger::grpc_prefix(MAX_MESSAGE_SIZE as u32);
                // A refused stream stops taking bytes; that is the node's answer.
                if call.body.send(prefix).await.is_ok() {
                    let _ = call.body.send(almost.clone()).await;
                }
                calls.push(call);
            }
            channels.push(channel);
        }
    }
    let (refused, refused_within_ms) =
        refusals(victim, "pre_session_message_size", calls.len()).await;
    let figures = json!({
        "attackerAddresses": ips,
        "connectionsOpened": channels.len(),
        "streamsOpened": calls.len(),
        "mibAnnounced": calls.len() * MAX_MESSAGE_SIZE / (1024 * 1024),
        "streamsRefused": refused,
        "refusedWithinMs": refused_within_ms,
        "adminStatusMs": admin_status_ms(victim).await,
        "honestBeforeStillConnected": still_connected(victim, &honest).await,
    });
    let mut held = hold(calls);
    held.extend(hold(channels));
    held.extend(hold(honest.into_iter().collect()));
    (held, figures)
}

/// Every session `ips` addresses may have, each sending all but the last byte of a message of
/// almost 16 MiB (a padded `Pong`, which the node would ignore once whole).
pub async fn in_sessions(victim: &NodeProcess, ips: u8) -> (Held, Value) {
    let honest = honest_before(victim).await;
    let message = stranger::padded_pong(MAX_MESSAGE_SIZE - 64);
    let almost = message.slice(..message.len() - 1);
    let mut sessions = Vec::new();
    for ip in attacker_ips(ips) {
        for _ in 0..SESSIONS_PER_IP {
            let me = Identity::generate();
            let Ok(channel) = stranger::channel_from(victim.peer_addr, &ip, &me).await else {
                continue;
            };
            let Ok(session) = stranger::open_raw_session(channel, &me, &Claims::default()).await
            else {
                continue;
            };
            let _ = session.body.send(almost.clone()).await;
            sessions.push(session);
        }
    }
    // Each 16 MiB message that did not fit in the budget is refused; those that fit hold it.
    let budget_messages = 4;
    let expected = sessions.len().saturating_sub(budget_messages);
    let (refused, refused_within_ms) =
        refusals(victim, "max_inbound_bytes_in_flight", expected).await;
    let figures = json!({
        "attackerAddresses": ips,
        "sessionsOpened": sessions.len(),
        "mibAnnounced": sessions.len() * message.len() / (1024 * 1024),
        "messagesRefused": refused,
        "refusedWithinMs": refused_within_ms,
        "adminStatusMs": admin_status_ms(victim).await,
        "honestBeforeStillConnected": still_connected(victim, &honest).await,
    });
    let mut held = hold(sessions);
    held.extend(hold(honest.into_iter().collect()));
    (held, figures)
}
