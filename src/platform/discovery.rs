//! `PeerDiscovery`: the node's connected peers for the platform (the Validator looks for peers
//! with `supports_transaction_distribution`), and candidates from callers. A candidate goes
//! through peer exchange's admission (`PeerManager::learn`: well-formed, not banned, not this
//! node, not stale, bounded table) and is only an address to dial: the ID it claims is taken
//! once a handshake proves it, and nothing a caller says changes a known peer's record.

use std::collections::HashMap;

use tonic::{Request, Response, Status};

use super::PlatformDeps;
use super::convert::{address_info, candidate, peer_info};
use super::errors::{self, PlatformError};
use super::pb::discovery as pb;
use crate::clock::now_ms;
use crate::peers::{PeerSnapshot, PeerState};

pub(crate) struct Discovery {
    deps: PlatformDeps,
}

impl Discovery {
    pub(crate) fn new(deps: PlatformDeps) -> Discovery {
        Discovery { deps }
    }

    /// Connected, unbanned peers by ID.
    fn connected(&self) -> HashMap<String, PeerSnapshot> {
        self.deps
            .peers
            .list()
            .into_iter()
            .filter(|p| p.state == PeerState::Connected && p.ban.is_none())
            .map(|p| (p.peer_id.clone(), p))
            .collect()
    }

    /// Where a call came from, for the log of learnt peers.
    fn source<T>(request: &Request<T>) -> String {
        request
            .remote_addr()
            .map_or_else(|| "platform".into(), |a| format!("platform {a}"))
    }
}

#[tonic::async_trait]
impl pb::peer_discovery_server::PeerDiscovery for Discovery {
    async fn get_peer_list(
        &self,
        request: Request<pb::PeerListRequest>,
    ) -> Result<Response<pb::PeerListResponse>, Status> {
        let request = request.into_inner();
        errors::bounded("requesting_peer_id", &request.requesting_peer_id)?;
        let max = errors::answer_size("max_peers", request.max_peers)?;
        let now = now_ms();
        let mut peers: Vec<PeerSnapshot> = self
            .connected()
            .into_values()
            .filter(|p| p.peer_id != request.requesting_peer_id)
            .collect();
        // Peers a Validator can dial (they serve the platform's services) first, so a small
        // `max_peers` keeps them.
        peers.sort_by(|a, b| {
            (a.platform_address.is_none(), &a.peer_id)
                .cmp(&(b.platform_address.is_none(), &b.peer_id))
        });
        let total = peers.len();
        Ok(Response::new(pb::PeerListResponse {
            peers: peers.iter().take(max).map(|p| peer_info(p, now)).collect(),
            total_peers: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    async fn register_peer(
        &self,
        request: Request<pb::RegisterPeerRequest>,
    ) -> Result<Response<pb::RegisterPeerResponse>, Status> {
        let source = Self::source(&request);
        let info = request
            .into_inner()
            .peer_info
            .ok_or(PlatformError::Missing { field: "peer_info" })?;
        let entry = candidate(&info, now_ms())?;
        let refused = |message: &str| {
            Ok(Response::new(pb::RegisterPeerResponse {
                success: false,
                message: message.to_string(),
            }))
        };
        if entry.peer_id == self.deps.peer_id {
            return refused("that is this node's own peer ID");
        }
        if self
            .deps
            .peers
            .list()
            .iter()
            .any(|p| p.peer_id == entry.peer_id)
        {
            return refused("already known: what a caller says does not change a known peer");
        }
        if self.deps.peers.learn(&source, vec![entry]) == 0 {
            return refused(
                "not taken: the address is banned, unusable, this node's own, or the peer table has no room",
            );
        }
        Ok(Response::new(pb::RegisterPeerResponse {
            success: true,
            message: "taken as a candidate: its ID counts once a handshake with it proves it"
                .into(),
        }))
    }

    async fn ping(
        &self,
        request: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        errors::bounded("peer_id", &request.get_ref().peer_id)?;
        Ok(Response::new(pb::PingResponse {
            peer_id: self.deps.peer_id.clone(),
            timestamp: now_ms().div_euclid(1000),
            status: pb::PeerStatus::Online.into(),
        }))
    }

    async fn exchange_peers(
        &self,
        request: Request<pb::PeerExchangeRequest>,
    ) -> Result<Response<pb::PeerExchangeResponse>, Status> {
        let source = Self::source(&request);
        let request = request.into_inner();
        errors::bounded("peer_id", &request.peer_id)?;
        let bound = self.deps.config.exchange_max_entries;
        if request.known_peers.len() > bound {
            return Err(PlatformError::TooMany {
                field: "known_peers",
                count: request.known_peers.len(),
                max: bound,
            }
            .into());
        }
        let max = errors::answer_size("max_peers", request.max_peers)?.min(bound);
        let now = now_ms();
        // All or nothing: one malformed entry refuses the call before anything is learnt.
        let entries = request
            .known_peers
            .iter()
            .map(|info| candidate(info, now))
            .collect::<Result<Vec<_>, _>>()?;
        let learnt = self.deps.peers.learn(&source, entries);
        let known_peers = self
            .deps
            .peers
            .exchange_entries(&request.peer_id, max)
            .into_iter()
            .map(address_info)
            .collect();
        Ok(Response::new(pb::PeerExchangeResponse {
            known_peers,
            success: true,
            message: format!("{learnt} new candidate(s)"),
        }))
    }

    async fn find_peers_for_register(
        &self,
        request: Request<pb::FindPeersForRegisterRequest>,
    ) -> Result<Response<pb::FindPeersForRegisterResponse>, Status> {
        let request = request.into_inner();
        let register_id = errors::register_id(&request.register_id)?;
        errors::bounded("requesting_peer_id", &request.requesting_peer_id)?;
        let max = errors::answer_size("max_peers", request.max_peers)?;
        let connected = self.connected();
        let now = now_ms();
        // Best quality first, as the peer manager orders carriers.
        let found: Vec<pb::PeerInfo> = self
            .deps
            .peers
            .carriers(register_id)
            .into_iter()
            .filter(|(_, height)| height.full_replica || !request.require_full_replica)
            .filter(|(id, _)| *id != request.requesting_peer_id)
            .filter_map(|(id, _)| connected.get(&id).map(|p| peer_info(p, now)))
            .collect();
        let total = found.len();
        Ok(Response::new(pb::FindPeersForRegisterResponse {
            peers: found.into_iter().take(max).collect(),
            total_peers: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}
