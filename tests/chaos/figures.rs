//! Figures printed, not asserted: how long a transaction takes to reach every node.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sorcha_peer::client::AdminClient;

use crate::history::{Op, Outcome, classify};
use crate::run::NODES;

const PROBES: usize = 20;
/// A probe that has not reached every node by then counts as this long.
const PROBE_LIMIT: Duration = Duration::from_secs(15);

/// Submits `PROBES` transactions one at a time, each at the next node, and returns how long
/// each took to be held by every node, and the submissions (for the checker).
pub async fn reach(
    clients: &[AdminClient],
    register: &str,
    seed: u64,
    label: &str,
) -> (Vec<Duration>, Vec<Op>) {
    let (mut times, mut ops) = (Vec::new(), Vec::new());
    for probe in 0..PROBES {
        let at = probe % NODES;
        let payload = format!("reach {label} seed={seed} probe={probe}").into_bytes();
        let id = sorcha_peer::ledger::tx_id(&payload);
        let started = Instant::now();
        // Under faults a probe's answer may not come within the client's timeout: it is then
        // indeterminate, like any submission of the workload, and the checker holds it to the
        // same rule (stored anywhere means stored everywhere). Its figure is the limit.
        let outcome = classify(clients[at].submit(register, payload).await);
        let acknowledged = outcome == Outcome::Acknowledged;
        ops.push(Op {
            register: register.to_string(),
            tx_id: id.clone(),
            node: at,
            outcome,
        });
        if !acknowledged {
            times.push(PROBE_LIMIT);
            continue;
        }
        let waits = (0..NODES).filter(|&n| n != at).map(|n| {
            let (client, id) = (clients[n].clone(), id.clone());
            async move {
                while client.transaction(register, &id).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        });
        let all = futures::future::join_all(waits);
        let _ = tokio::time::timeout(PROBE_LIMIT, all).await;
        times.push(started.elapsed());
    }
    (times, ops)
}

/// p50 and p99 in milliseconds.
pub fn summary(times: &[Duration]) -> Value {
    let mut ms: Vec<u64> = times.iter().map(|d| d.as_millis() as u64).collect();
    ms.sort_unstable();
    let at = |q: f64| {
        let i = ((ms.len() as f64 - 1.0) * q).round() as usize;
        ms.get(i).copied().unwrap_or(0)
    };
    json!({"p50": at(0.5), "p99": at(0.99), "probes": ms.len()})
}

/// The value of a metric (first sample of that name) in Prometheus text, 0 if absent.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}
