//! Register rules that need more than the register domain: which registers the network offers
//! (what connected peers advertise, the public ones held here, and the names the platform's
//! Register service reported), and a platform submission with the peers it will reach.

use std::collections::BTreeMap;

use crate::ledger::Role;
use crate::peers::PeerManager;
use crate::protocol::RegisterHeight;
use crate::replication::{RegisterError, RegisterView, Registers};
use crate::service::advertisements::{Advertisement, Advertisements};

/// A public register this node could hold: advertised by connected peers, held here, or both.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AvailableRegister {
    pub register_id: String,
    /// Connected peers advertising it.
    pub peer_count: usize,
    /// Of those, how many hold the full chain (origin or full replica).
    pub full_replica_peer_count: usize,
    /// The best figures known: the peers' newest, or this node's when no peer advertises it.
    pub latest_version: u64,
    pub latest_docket_version: u64,
    /// How this node holds it, if it does.
    pub local_role: Option<Role>,
    /// As the platform's Register service reported it, if it did.
    pub name: Option<String>,
    pub description: Option<String>,
}

/// Every public register on offer, by register ID (see [`merge_available`]).
pub(crate) fn available(
    manager: &PeerManager,
    registers: &Registers,
    advertisements: &Advertisements,
) -> Vec<AvailableRegister> {
    merge_available(
        manager.advertised_registers(),
        &registers.list(),
        |id: &str| advertisements.get(id),
    )
}

/// What connected peers advertise (public registers only), then the public registers held here
/// that no peer advertises, named as the Register service `reported` them; sorted by ID.
pub(crate) fn merge_available(
    advertised: BTreeMap<String, Vec<RegisterHeight>>,
    local: &[RegisterView],
    reported: impl Fn(&str) -> Option<Advertisement>,
) -> Vec<AvailableRegister> {
    let local_role = |id: &str| local.iter().find(|l| l.register_id == id).map(|l| l.role);
    let mut out: Vec<AvailableRegister> = advertised
        .into_iter()
        .map(|(register_id, ads)| AvailableRegister {
            peer_count: ads.len(),
            full_replica_peer_count: ads.iter().filter(|a| a.full_replica).count(),
            latest_version: ads.iter().map(|a| a.latest_version).max().unwrap_or(0),
            latest_docket_version: ads.iter().map(|a| a.height).max().unwrap_or(0),
            local_role: local_role(&register_id),
            name: None,
            description: None,
            register_id,
        })
        .collect();
    for l in local.iter().filter(|l| l.is_public) {
        if !out.iter().any(|a| a.register_id == l.register_id) {
            out.push(AvailableRegister {
                register_id: l.register_id.clone(),
                peer_count: 0,
                full_replica_peer_count: 0,
                latest_version: l.latest_version,
                latest_docket_version: l.height,
                local_role: Some(l.role),
                name: None,
                description: None,
            });
        }
    }
    for a in &mut out {
        if let Some(ad) = reported(&a.register_id) {
            a.name = ad.name;
            a.description = ad.description;
        }
    }
    out.sort_by(|a, b| a.register_id.cmp(&b.register_id));
    out
}

/// A submission the platform's Blueprint service hands over: what was stored, and how many
/// connected peers carry the register (it is announced to them and spreads from there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Distributed {
    pub tx_id: String,
    pub target_peers: usize,
}

/// Stores `payload` in `register_id`'s pool as `tx submit` does, then counts its carriers.
pub(crate) async fn distribute(
    registers: &Registers,
    manager: &PeerManager,
    register_id: &str,
    payload: Vec<u8>,
) -> Result<Distributed, RegisterError> {
    let submitted = registers.submit(register_id, payload).await?;
    Ok(Distributed {
        tx_id: submitted.tx_id,
        target_peers: manager.carriers(register_id).len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ad(register_id: &str, height: u64, full_replica: bool) -> RegisterHeight {
        RegisterHeight {
            register_id: register_id.into(),
            height,
            head_hash: [0; 32],
            latest_version: height * 10,
            full_replica,
            is_origin: false,
        }
    }

    fn held(register_id: &str, is_public: bool, role: Role) -> RegisterView {
        RegisterView {
            register_id: register_id.into(),
            is_public,
            role,
            sync_state: "origin".into(),
            height: 3,
            head_hash: [0; 32],
            latest_version: 7,
            base_height: 0,
            docket_count: 4,
            transaction_count: 7,
            pending: 0,
            created_at_ms: 0,
            sync_progress_percent: 100.0,
        }
    }

    #[test]
    fn peers_and_local_public_registers_merge_sorted_with_reported_names() {
        let advertised =
            BTreeMap::from([("b".to_string(), vec![ad("b", 5, true), ad("b", 9, false)])]);
        let local = [
            held("c", true, Role::Origin),
            held("b", true, Role::FullReplica),
            held("a", false, Role::Origin),
        ];
        let reported = |id: &str| {
            (id == "c").then(|| Advertisement {
                register_id: "c".into(),
                name: Some("Cee".into()),
                description: None,
                is_public: true,
                latest_version: 0,
                latest_docket_version: 0,
                updated_at_ms: 0,
            })
        };
        let out = merge_available(advertised, &local, reported);
        let ids: Vec<&str> = out.iter().map(|a| a.register_id.as_str()).collect();
        // `a` is private: held here, but not on offer.
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(out[0].peer_count, 2);
        assert_eq!(out[0].full_replica_peer_count, 1);
        assert_eq!(out[0].latest_docket_version, 9);
        assert_eq!(out[0].latest_version, 90);
        assert_eq!(out[0].local_role, Some(Role::FullReplica));
        assert_eq!(out[1].peer_count, 0);
        assert_eq!(out[1].latest_docket_version, 3);
        assert_eq!(out[1].local_role, Some(Role::Origin));
        assert_eq!(out[1].name.as_deref(), Some("Cee"));
    }
}
