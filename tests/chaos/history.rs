//! The workload and its history: clients submit transactions at random nodes the whole time,
//! and every answer is recorded, as Jepsen records operations: acknowledged (201), refused
//! (the node answered with an error, which must have changed nothing), or indeterminate (a
//! timeout or a broken connection: the transaction may or may not have been stored).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use sorcha_peer::client::{AdminClient, ClientError};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Acknowledged,
    Refused(String),
    Indeterminate(String),
}

#[derive(Clone, Debug)]
pub struct Op {
    pub register: String,
    pub tx_id: String,
    pub node: usize,
    pub outcome: Outcome,
}

/// Where a register may be written: the nodes that hold all of it (origin and full replicas).
#[derive(Clone, Debug)]
pub struct Target {
    pub register: String,
    pub writers: Vec<usize>,
}

pub type History = Arc<Mutex<Vec<Op>>>;

/// Runs `clients` submitting loops until `stop`; each picks a register and one of its writers
/// at random (from `seed`), and records the answer.
pub async fn run(
    clients: usize,
    nodes: Vec<AdminClient>,
    targets: Vec<Target>,
    seed: u64,
    stop: CancellationToken,
) -> History {
    let history: History = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (nodes, targets, history, stop) = (
            nodes.clone(),
            targets.clone(),
            history.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ ((c as u64 + 1) * 0x9E37));
            let mut n = 0u64;
            while !stop.is_cancelled() {
                let target = &targets[rng.gen_range(0..targets.len())];
                let node = target.writers[rng.gen_range(0..target.writers.len())];
                n += 1;
                let filler = "x".repeat(rng.gen_range(50..250));
                let payload = format!("chaos seed={seed} client={c} n={n} {filler}").into_bytes();
                let tx_id = sorcha_peer::ledger::tx_id(&payload);
                let outcome = classify(nodes[node].submit(&target.register, payload).await);
                history.lock().expect("history").push(Op {
                    register: target.register.clone(),
                    tx_id,
                    node,
                    outcome,
                });
                tokio::time::sleep(Duration::from_millis(rng.gen_range(5..30))).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    history
}

/// What an answer to a submission says of it: acknowledged, refused (never reached the node, or
/// turned down), or indeterminate (no answer: it may have been stored).
pub fn classify<T>(answer: Result<T, ClientError>) -> Outcome {
    match answer {
        Ok(_) => Outcome::Acknowledged,
        // The connection was refused: the request never reached the node.
        Err(e @ ClientError::Unreachable { .. })
            if e.to_string().contains("Connection refused") =>
        {
            Outcome::Refused(e.to_string())
        }
        // No answer, or one that could not be read: it may have been stored.
        Err(e @ (ClientError::Unreachable { .. } | ClientError::Decode(_))) => {
            Outcome::Indeterminate(e.to_string())
        }
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

/// How many operations ended each way.
pub fn counts(ops: &[Op]) -> (usize, usize, usize) {
    let acked = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Acknowledged)
        .count();
    let refused = ops
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Refused(_)))
        .count();
    (acked, refused, ops.len() - acked - refused)
}

/// The reasons for answers other than 201, shortened, with how often each came.
pub fn reasons(ops: &[Op]) -> std::collections::BTreeMap<String, usize> {
    let mut reasons = std::collections::BTreeMap::new();
    for op in ops {
        let (kind, why) = match &op.outcome {
            Outcome::Acknowledged => continue,
            Outcome::Refused(why) => ("refused", why),
            Outcome::Indeterminate(why) => ("unknown", why),
        };
        // Node addresses and IDs vary; the start of the message names the cause.
        let short: String = why.chars().take(70).collect();
        *reasons.entry(format!("{kind}: {short}")).or_insert(0) += 1;
    }
    reasons
}
