//! The checker, run once the faults have stopped and the cluster has settled. It reads every
//! replica through the admin API and returns every violation it finds (not only the first).

use std::collections::{BTreeMap, BTreeSet};

use sorcha_peer::client::{AdminClient, ClientError};

use crate::history::{Op, Outcome};

/// How a register is held across the cluster.
#[derive(Clone, Debug)]
pub struct Placement {
    pub register: String,
    /// Origin first, then the full replicas.
    pub full: Vec<usize>,
    /// Forward-only replicas, with the register's version when each subscribed (its anchor).
    pub forward_only: Vec<(usize, u64)>,
}

/// Where one transaction is held: node → version (`None`: held but not sealed).
type Holdings = BTreeMap<usize, Option<u64>>;

async fn holdings(
    clients: &[AdminClient],
    nodes: &[usize],
    register: &str,
    tx: &str,
) -> Result<Holdings, String> {
    let answers =
        futures::future::join_all(nodes.iter().map(|&n| clients[n].transaction(register, tx)))
            .await;
    let mut held = Holdings::new();
    for (&node, answer) in nodes.iter().zip(answers) {
        match answer {
            Ok(dto) => {
                held.insert(node, dto.version.filter(|_| dto.state == "sealed"));
            }
            Err(ClientError::NotFound(_)) => {}
            Err(e) => return Err(format!("node {node}: reading {tx}: {e}")),
        }
    }
    Ok(held)
}

/// How many acknowledged transactions are not (yet) sealed at their register's origin.
pub async fn unsealed_at_origin(
    clients: &[AdminClient],
    placements: &[Placement],
    ops: &[Op],
) -> usize {
    let mut unsealed = 0;
    for placement in placements {
        let origin = &clients[placement.full[0]];
        let acked: Vec<&Op> = ops
            .iter()
            .filter(|o| o.register == placement.register && o.outcome == Outcome::Acknowledged)
            .collect();
        for chunk in acked.chunks(32) {
            let answers = futures::future::join_all(
                chunk
                    .iter()
                    .map(|op| origin.transaction(&placement.register, &op.tx_id)),
            )
            .await;
            unsealed += answers
                .iter()
                .filter(|a| !matches!(a, Ok(dto) if dto.state == "sealed"))
                .count();
        }
    }
    unsealed
}

/// Checks the history against the replicas. Returns the violations.
pub async fn check(clients: &[AdminClient], placements: &[Placement], ops: &[Op]) -> Vec<String> {
    let mut problems = Vec::new();
    for placement in placements {
        let register = &placement.register;
        let mine: Vec<&Op> = ops.iter().filter(|o| &o.register == register).collect();
        let mut versions: BTreeMap<u64, String> = BTreeMap::new();
        let mut after_anchor: Vec<(String, u64)> = Vec::new();
        for op in &mine {
            let held = match holdings(clients, &placement.full, register, &op.tx_id).await {
                Ok(held) => held,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            let sealed: BTreeSet<Option<u64>> = held.values().copied().collect();
            let everywhere = held.len() == placement.full.len();
            let what = format!("{register} {} (submitted at node {})", op.tx_id, op.node);
            match &op.outcome {
                Outcome::Acknowledged if !everywhere => problems.push(format!(
                    "acknowledged {what} is missing on nodes {:?}",
                    missing(&placement.full, &held)
                )),
                Outcome::Refused(why) if !held.is_empty() => problems.push(format!(
                    "refused {what} ({why}) is held on nodes {:?}",
                    held.keys().collect::<Vec<_>>()
                )),
                Outcome::Indeterminate(_) if !held.is_empty() && !everywhere => {
                    problems.push(format!(
                        "{what}, whose submission timed out, is held on some full replicas only: missing on {:?}",
                        missing(&placement.full, &held)
                    ))
                }
                _ => {}
            }
            if held.is_empty() {
                continue;
            }
            if sealed.len() != 1 || sealed.contains(&None) {
                problems.push(format!(
                    "{what} is not sealed at one version everywhere: {held:?}"
                ));
                continue;
            }
            let Some(Some(version)) = sealed.into_iter().next() else {
                continue;
            };
            if let Some(other) = versions.insert(version, op.tx_id.clone()) {
                problems.push(format!(
                    "{register} version {version} holds both {other} and {}",
                    op.tx_id
                ));
            }
            after_anchor.push((op.tx_id.clone(), version));
        }
        check_heads(clients, placement, &versions, &mut problems).await;
        for &(node, anchor) in &placement.forward_only {
            for (tx, version) in after_anchor.iter().filter(|(_, v)| *v > anchor) {
                match holdings(clients, &[node], register, tx).await {
                    Ok(held) if held.get(&node) == Some(&Some(*version)) => {}
                    Ok(held) => problems.push(format!(
                        "forward-only node {node} (anchor {anchor}) does not hold {register} {tx} at version {version}: {held:?}"
                    )),
                    Err(e) => problems.push(e),
                }
            }
        }
    }
    problems
}

/// The checker must be able to fail: a history with a transaction acknowledged that no node
/// holds, and one refused that every node holds, must each be reported.
pub async fn self_test(
    clients: &[AdminClient],
    placements: &[Placement],
    ops: &[Op],
) -> Result<(), String> {
    let placement = &placements[0];
    let Some(held) = ops
        .iter()
        .find(|o| o.register == placement.register && o.outcome == Outcome::Acknowledged)
    else {
        return Err("no acknowledged transaction to test the checker with".into());
    };
    let invented = Op {
        tx_id: sorcha_peer::ledger::tx_id(b"never submitted"),
        ..held.clone()
    };
    let refused = Op {
        outcome: Outcome::Refused("invented refusal".into()),
        ..held.clone()
    };
    for (op, expect) in [(invented, "is missing"), (refused, "is held on")] {
        let found = check(clients, std::slice::from_ref(placement), &[op]).await;
        if !found.iter().any(|p| p.contains(expect)) {
            return Err(format!(
                "the checker missed a planted violation ({expect}): {found:?}"
            ));
        }
    }
    Ok(())
}

/// Every replica has the same head, and the versions held are exactly 1..=head: each
/// transaction sealed once, none from nowhere.
async fn check_heads(
    clients: &[AdminClient],
    placement: &Placement,
    versions: &BTreeMap<u64, String>,
    problems: &mut Vec<String>,
) {
    let register = &placement.register;
    let mut heads = BTreeMap::new();
    let holders = placement
        .full
        .iter()
        .copied()
        .chain(placement.forward_only.iter().map(|(n, _)| *n));
    for node in holders {
        match clients[node].registers().await {
            Ok(list) => match list.into_iter().find(|r| &r.register_id == register) {
                Some(r) => {
                    heads.insert(node, (r.latest_version, r.head_hash));
                }
                None => problems.push(format!("node {node} does not hold {register}")),
            },
            Err(e) => problems.push(format!("node {node}: registers: {e}")),
        }
    }
    let distinct: BTreeSet<_> = heads.values().collect();
    if distinct.len() > 1 {
        problems.push(format!(
            "{register}: replicas disagree on the head: {heads:?}"
        ));
    }
    if let Some((latest, _)) = heads.get(&placement.full[0]) {
        let expected: Vec<u64> = (1..=*latest).collect();
        let held: Vec<u64> = versions.keys().copied().collect();
        if held != expected {
            problems.push(format!(
                "{register}: the submitted transactions hold versions {} of 1..={latest}",
                held.len()
            ));
        }
    }
}

fn missing(nodes: &[usize], held: &Holdings) -> Vec<usize> {
    nodes
        .iter()
        .copied()
        .filter(|n| !held.contains_key(n))
        .collect()
}
