//! The peer state behind one lock: the peer table, the ban list, the links and the seeds,
//! and the answers that need more than one of them at once (is this peer banned, given where
//! it is connected from; what state is it in; whom may the table forget).
//!
//! One lock guards all four on purpose: admission ("is this connection banned, is there room,
//! is it a duplicate"), a new ban ("record it and close every connection it covers") and
//! eviction ("forget a peer that is neither connected nor banned") must each see and change a
//! consistent view. With a lock per part, a connection could be registered between a ban's
//! insertion and its enforcement and slip through. Nothing awaits while holding it.

use std::collections::{BTreeMap, HashSet};

use super::admission::EvictionCandidate;
use super::banlist::{self, BanList};
use super::dialing::{self, Seeds};
use super::links::Links;
use super::record::Peer;
use super::table::{PeerTable, Standing};
use super::{Ban, DialTarget, Direction, PeerCounts, PeerSnapshot, PeerState};
use crate::protocol::RegisterHeight;

pub(super) struct State {
    pub table: PeerTable,
    pub bans: BanList,
    pub links: Links,
    pub seeds: Seeds,
}

/// The ban in force covering `peer`, by ID or by any IP it is known by, including where its
/// live connection comes from.
fn peer_ban<'a>(bans: &'a BanList, links: &Links, peer: &Peer, now_ms: i64) -> Option<&'a Ban> {
    let mut ips = peer.ips();
    if let Some(link) = links.info(&peer.peer_id) {
        ips.push(link.remote_ip);
    }
    bans.matching(Some(&peer.peer_id), &ips, now_ms)
}

impl State {
    pub(super) fn peer_ban(&self, peer: &Peer, now_ms: i64) -> Option<&Ban> {
        peer_ban(&self.bans, &self.links, peer, now_ms)
    }

    fn state_of(&self, peer: &Peer, now_ms: i64) -> PeerState {
        if self.peer_ban(peer, now_ms).is_some() {
            PeerState::Banned
        } else if self.links.is_connected(&peer.peer_id) {
            PeerState::Connected
        } else if peer.dialing {
            PeerState::Connecting
        } else {
            PeerState::Disconnected
        }
    }

    /// Makes room for a peer that completed a handshake: forgets the least useful peer the
    /// table may forget (see [`PeerTable::evict_least_useful`]) if seen before `than_ms`, or,
    /// when only banned peers could go, a banned one (see [`PeerTable::evict_banned`]).
    pub(super) fn evict_least_useful(&mut self, than_ms: i64, now_ms: i64) -> bool {
        self.with_standing(now_ms, |table, standing, _| {
            table.evict_least_useful(than_ms, standing).is_some()
                || table.evict_banned(standing).is_some()
        })
    }

    /// Forgets ordinary peers last seen before `cutoff_ms`; returns their IDs.
    pub(super) fn prune(&mut self, cutoff_ms: i64, now_ms: i64) -> Vec<String> {
        self.with_standing(now_ms, |table, standing, _| {
            let stale = table.stale(cutoff_ms, standing);
            for id in &stale {
                table.remove(id);
            }
            stale
        })
    }

    /// Runs `f` with the table and what connections and bans say about its peers.
    pub(super) fn with_standing<R>(
        &mut self,
        now_ms: i64,
        f: impl FnOnce(&mut PeerTable, &Standing<'_>, &BanList) -> R,
    ) -> R {
        let State {
            table, bans, links, ..
        } = self;
        let connected = |id: &str| links.is_connected(id);
        let banned = |p: &Peer| peer_ban(bans, links, p, now_ms).is_some();
        let standing = Standing {
            connected: &connected,
            banned: &banned,
        };
        f(table, &standing, bans)
    }

    /// Takes a new ban in and asks every connection it covers to close; returns the known
    /// peers it covers and the peers disconnected.
    pub(super) fn impose(&mut self, ban: Ban, now_ms: i64) -> (Vec<String>, Vec<String>) {
        let connected = self.links.all().map(|(id, link)| {
            let mut ips = vec![link.remote_ip];
            if let Some(p) = self.table.get(id) {
                ips.extend(p.ips());
            }
            (id.as_str(), ips)
        });
        let disconnected = banlist::disconnects(&ban, now_ms, connected);
        for id in &disconnected {
            self.links.close(id, &format!("banned: {}", ban.reason));
        }
        let covered = self.table.covered_by(&ban.target);
        self.bans.insert(ban);
        (covered, disconnected)
    }

    /// Inbound peers that could make room for a newcomer (seeds never do).
    pub(super) fn eviction_candidates(&self, now_ms: i64) -> Vec<EvictionCandidate> {
        self.links
            .all()
            .filter(|(_, link)| link.direction == Direction::Inbound)
            .filter_map(|(id, link)| {
                let peer = self.table.get(id).filter(|p| !p.is_seed)?;
                Some(EvictionCandidate {
                    peer_id: id.clone(),
                    ip: link.remote_ip,
                    connected_at_ms: link.connected_at_ms,
                    latency_ms: peer.quality.latency().map(|l| l.1),
                    quality: peer.quality.breakdown(now_ms).score,
                })
            })
            .collect()
    }

    /// Whom to dial now: seeds due for a dial, and known peers for the outbound slots left of
    /// `max_outbound` (never one connected, dialled already, at a seed's or a connected
    /// peer's address, or banned). Marks each as being dialled.
    pub(super) fn plan_dials(&mut self, now_ms: i64, max_outbound: usize) -> Vec<DialTarget> {
        let connected_addresses = self.connected_addresses();
        let mut targets = {
            let State {
                seeds, links, bans, ..
            } = &mut *self;
            let connected = |id: &str| links.is_connected(id);
            let banned = |id: Option<&str>, address: &str| bans.covers_address(id, address, now_ms);
            seeds.plan(now_ms, &connected_addresses, &connected, &banned)
        };
        let seed_addresses = self.seeds.addresses();
        let dialing = self.table.values().filter(|p| p.dialing).count();
        let busy = self.links.outbound_count() + dialing + targets.len();
        let slots = max_outbound.saturating_sub(busy);
        let excluded: HashSet<String> = self
            .table
            .values()
            .filter(|p| {
                self.links.is_connected(&p.peer_id)
                    || seed_addresses.contains(&p.address)
                    || connected_addresses.contains(&p.address)
                    || self.peer_ban(p, now_ms).is_some()
            })
            .map(|p| p.peer_id.clone())
            .collect();
        targets.extend(dialing::choose_known(
            &mut self.table,
            slots,
            now_ms,
            &|p| excluded.contains(&p.peer_id),
        ));
        targets
    }

    /// Addresses of the peers connected right now.
    pub(super) fn connected_addresses(&self) -> HashSet<String> {
        self.links
            .ids()
            .filter_map(|id| self.table.get(id).map(|p| p.address.clone()))
            .collect()
    }

    /// Connected, unbanned peers (the ones whose advertisements count).
    fn trusted_connected(&self, now_ms: i64) -> impl Iterator<Item = &Peer> {
        self.links
            .ids()
            .filter_map(|id| self.table.get(id))
            .filter(move |p| self.peer_ban(p, now_ms).is_none())
    }

    /// Connected, unbanned peers advertising `register_id`, best quality first.
    pub(super) fn carriers(&self, register_id: &str, now_ms: i64) -> Vec<(String, RegisterHeight)> {
        let mut out: Vec<(f64, String, RegisterHeight)> = self
            .trusted_connected(now_ms)
            .filter_map(|p| {
                p.advertised
                    .iter()
                    .find(|r| r.register_id == register_id)
                    .map(|r| {
                        let score = p.quality.breakdown(now_ms).score;
                        (score, p.peer_id.clone(), r.clone())
                    })
            })
            .collect();
        out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        out.into_iter().map(|(_, id, r)| (id, r)).collect()
    }

    /// Every public register advertised by connected, unbanned peers, with the advertisers.
    pub(super) fn advertised_registers(
        &self,
        now_ms: i64,
    ) -> BTreeMap<String, Vec<RegisterHeight>> {
        let mut out: BTreeMap<String, Vec<RegisterHeight>> = BTreeMap::new();
        for p in self.trusted_connected(now_ms) {
            for r in &p.advertised {
                out.entry(r.register_id.clone())
                    .or_default()
                    .push(r.clone());
            }
        }
        out
    }

    /// The operator view of one peer.
    pub(super) fn snapshot(&self, peer: &Peer, now_ms: i64) -> PeerSnapshot {
        let link = self.links.info(&peer.peer_id);
        PeerSnapshot {
            peer_id: peer.peer_id.clone(),
            name: peer.name.clone(),
            address: peer.address.clone(),
            state: self.state_of(peer, now_ms),
            direction: link.map(|c| c.direction),
            connected_since_ms: link.map(|c| c.connected_at_ms),
            first_seen_ms: peer.first_seen_ms,
            last_seen_ms: if link.is_some() {
                now_ms.max(peer.last_seen_ms)
            } else {
                peer.last_seen_ms
            },
            failure_count: peer.failure_count,
            is_seed: peer.is_seed,
            software_version: peer.software_version.clone(),
            quality: peer.quality.breakdown(now_ms),
            ban: self.peer_ban(peer, now_ms).cloned(),
            advertised: if link.is_some() {
                peer.advertised.clone()
            } else {
                Vec::new()
            },
            clock_offset_ms: peer.clock_offset_ms.filter(|_| link.is_some()),
            platform_address: peer.platform_address.clone().filter(|_| link.is_some()),
        }
    }

    pub(super) fn counts(&self, now_ms: i64) -> PeerCounts {
        let mut counts = PeerCounts {
            known: self.table.len(),
            inbound: self.links.inbound_count(),
            outbound: self.links.outbound_count(),
            bans: self.bans.count_in_force(now_ms),
            seeds: self.seeds.len(),
            ..PeerCounts::default()
        };
        for peer in self.table.values() {
            match self.state_of(peer, now_ms) {
                PeerState::Connected => counts.connected += 1,
                PeerState::Connecting => counts.connecting += 1,
                PeerState::Disconnected => counts.disconnected += 1,
                PeerState::Banned => counts.banned += 1,
            }
        }
        counts
    }
}
