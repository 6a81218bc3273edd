//! The peer table: every peer record this node keeps, bounded by `max_known_peers`, which
//! records changed since the last flush, which peer to forget when it is full, and the two
//! sides of peer exchange (what to hand out, what to take in). It knows nothing of connections
//! or bans; callers pass what those say about a peer as predicates, so the table stays the one
//! owner of records.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::record::Peer;
use super::{BanTarget, PeerError, VerifiedPeer, bans};
use crate::config::validate_host_port;
use crate::identity::is_peer_id;
use crate::protocol::KnownAddress;
use crate::store::PeerRow;

/// Most candidates an ambiguous peer reference lists.
const MAX_CANDIDATES_SHOWN: usize = 5;

/// A candidate of an ambiguous reference as the error shows it: the start of its ID (`len`
/// characters) and its name.
fn candidate(peer: &Peer, len: usize) -> String {
    let id = peer.peer_id.get(..len).unwrap_or(&peer.peer_id);
    if peer.name.is_empty() {
        id.to_string()
    } else {
        format!("{id} ({})", peer.name)
    }
}

/// The peer records and their pending persistence.
#[derive(Default)]
pub(super) struct PeerTable {
    peers: HashMap<String, Peer>,
    /// Changed since the last flush.
    dirty: HashSet<String>,
    /// Forgotten since the last flush.
    removed: HashSet<String>,
}

/// What the table must know about a peer beyond its record to decide whether it may be
/// forgotten or passed on.
pub(super) struct Standing<'a> {
    /// Whether the peer is connected right now.
    pub connected: &'a dyn Fn(&str) -> bool,
    /// Whether a ban in force covers the peer.
    pub banned: &'a dyn Fn(&Peer) -> bool,
}

/// Rules for taking in addresses learnt from a peer.
pub(super) struct LearnRules<'a> {
    pub own_id: &'a str,
    pub own_address: &'a str,
    pub now_ms: i64,
    pub retention_ms: i64,
    pub max_entries: usize,
    pub max_known_peers: usize,
    /// Whether a ban covers this peer ID seen at this address.
    pub banned: &'a dyn Fn(&str, &str) -> bool,
}

impl PeerTable {
    /// The table as stored, without this node's own record.
    pub(super) fn load(rows: Vec<PeerRow>, own_id: &str) -> PeerTable {
        let mut table = PeerTable::default();
        for row in rows {
            if row.peer_id != own_id {
                table.peers.insert(row.peer_id.clone(), Peer::from_row(row));
            }
        }
        table
    }

    pub(super) fn len(&self) -> usize {
        self.peers.len()
    }

    pub(super) fn contains(&self, peer_id: &str) -> bool {
        self.peers.contains_key(peer_id)
    }

    pub(super) fn get(&self, peer_id: &str) -> Option<&Peer> {
        self.peers.get(peer_id)
    }

    /// A record to change. Changes to persisted fields need [`PeerTable::mark_dirty`]; the
    /// memory-only ones (dial marks, advertisements) do not.
    pub(super) fn get_mut(&mut self, peer_id: &str) -> Option<&mut Peer> {
        self.peers.get_mut(peer_id)
    }

    /// Changes a record's persisted fields and queues it for the next flush.
    pub(super) fn update<R>(
        &mut self,
        peer_id: &str,
        change: impl FnOnce(&mut Peer) -> R,
    ) -> Option<R> {
        let peer = self.peers.get_mut(peer_id)?;
        let result = change(peer);
        self.mark_dirty(peer_id);
        Some(result)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    /// IDs of the known peers a ban target covers (by ID or any IP they are known by).
    pub(super) fn covered_by(&self, target: &BanTarget) -> Vec<String> {
        self.peers
            .values()
            .filter(|p| target.matches(Some(&p.peer_id), &p.ips()))
            .map(|p| p.peer_id.clone())
            .collect()
    }

    /// The peers a lifted ban covered are dialled again at once.
    pub(super) fn ban_lifted(&mut self, target: &BanTarget) {
        for peer in self.peers.values_mut() {
            if target.matches(Some(&peer.peer_id), &peer.ips()) {
                peer.next_dial_ms = 0;
            }
        }
    }

    /// The record for `peer_id`, created (as first seen now) when there is none. The caller
    /// has made room (see [`PeerTable::evict_least_useful`]).
    pub(super) fn entry(&mut self, peer_id: &str, address: &str, now_ms: i64) -> &mut Peer {
        self.mark_dirty(peer_id);
        self.peers
            .entry(peer_id.to_string())
            .or_insert_with(|| Peer::new(peer_id.to_string(), address.to_string(), now_ms, now_ms))
    }

    /// Takes in what a completed handshake proved about a peer (creating its record when new;
    /// the caller has made room): its identity and addresses, and that it is reachable now.
    pub(super) fn handshake_completed(
        &mut self,
        peer: VerifiedPeer,
        remote_ip: IpAddr,
        seed: bool,
        now_ms: i64,
    ) {
        let record = self.entry(&peer.peer_id, &peer.address, now_ms);
        record.public_key = peer.public_key;
        record.name = peer.name;
        record.address = peer.address;
        record.software_version = Some(peer.software_version);
        record.platform_address = peer.platform_address;
        record.remote_ip = Some(remote_ip);
        record.last_seen_ms = now_ms;
        record.failure_count = 0;
        record.dialing = false;
        record.quality.record_success(None);
        record.is_seed |= seed;
    }

    /// Notes that a peer served data that failed verification; returns how often it did so
    /// within the last `window_ms` (memory only), or `None` for an unknown peer.
    pub(super) fn verification_failures(
        &mut self,
        peer_id: &str,
        now_ms: i64,
        window_ms: i64,
    ) -> Option<usize> {
        let peer = self.peers.get_mut(peer_id)?;
        peer.verification_failures
            .retain(|at| now_ms - at < window_ms);
        peer.verification_failures.push(now_ms);
        Some(peer.verification_failures.len())
    }

    pub(super) fn mark_dirty(&mut self, peer_id: &str) {
        self.removed.remove(peer_id);
        self.dirty.insert(peer_id.to_string());
    }

    pub(super) fn remove(&mut self, peer_id: &str) {
        self.peers.remove(peer_id);
        self.dirty.remove(peer_id);
        self.removed.insert(peer_id.to_string());
    }

    /// Resolves what an operator typed to one known peer's ID: the full ID, or else the one
    /// peer that the text names, as a prefix of its ID (hex, case-insensitive) or as its name
    /// (the whole name, case-insensitive). Names are what peers call themselves, so a name
    /// never wins silently: a text that is one peer's name and another's ID prefix, or the
    /// name of two peers, is ambiguous and the error lists the candidates.
    pub(super) fn resolve(&self, text: &str) -> Result<String, PeerError> {
        let text = text.trim();
        let lower = text.to_ascii_lowercase();
        if text.is_empty() {
            return Err(PeerError::NotFound(text.to_string()));
        }
        if self.peers.contains_key(&lower) {
            return Ok(lower);
        }
        let hex = lower.bytes().all(|b| b.is_ascii_hexdigit());
        let mut matches: Vec<&Peer> = self
            .peers
            .values()
            .filter(|p| {
                (hex && p.peer_id.starts_with(&lower))
                    || (!p.name.is_empty() && p.name.eq_ignore_ascii_case(text))
            })
            .collect();
        match matches.len() {
            0 => Err(PeerError::NotFound(text.to_string())),
            1 => Ok(matches.remove(0).peer_id.clone()),
            _ => {
                matches.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
                let total = matches.len();
                // Long enough to tell the candidates apart (they share what was typed).
                let shown = (lower.len() + 4).max(12);
                let candidates = matches
                    .iter()
                    .take(MAX_CANDIDATES_SHOWN)
                    .map(|p| candidate(p, shown))
                    .collect();
                Err(PeerError::Ambiguous {
                    text: text.to_string(),
                    total,
                    candidates,
                })
            }
        }
    }

    /// IDs of the peers whose name is `name` (case-insensitive).
    pub(super) fn named(&self, name: &str) -> Vec<String> {
        let name = name.trim();
        if name.is_empty() {
            return Vec::new();
        }
        self.peers
            .values()
            .filter(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.peer_id.clone())
            .collect()
    }

    /// Takes the records changed and the IDs forgotten since the last flush.
    pub(super) fn take_changes(&mut self) -> (Vec<PeerRow>, Vec<String>) {
        let dirty: Vec<String> = self.dirty.drain().collect();
        let rows = dirty
            .iter()
            .filter_map(|id| self.peers.get(id).map(Peer::to_row))
            .collect();
        (rows, self.removed.drain().collect())
    }

    /// Puts back changes a flush could not write, so the next flush retries them.
    pub(super) fn restore_changes(&mut self, rows: &[PeerRow], removed: Vec<String>) {
        for row in rows {
            if self.peers.contains_key(&row.peer_id) {
                self.dirty.insert(row.peer_id.clone());
            }
        }
        self.removed.extend(removed);
    }

    /// Peers that may be forgotten: never a seed, one being dialled, a connected or a banned one.
    fn forgettable<'a>(&'a self, standing: &'a Standing<'a>) -> impl Iterator<Item = &'a Peer> {
        self.peers.values().filter(|p| {
            !p.is_seed && !p.dialing && !(standing.connected)(&p.peer_id) && !(standing.banned)(p)
        })
    }

    /// Ordinary peers last seen before `cutoff_ms` that may be forgotten.
    pub(super) fn stale(&self, cutoff_ms: i64, standing: &Standing<'_>) -> Vec<String> {
        self.forgettable(standing)
            .filter(|p| p.last_seen_ms < cutoff_ms)
            .map(|p| p.peer_id.clone())
            .collect()
    }

    /// Forgets the least useful peer that may be forgotten, if it was seen before `than_ms`.
    /// Peers that never proved useful go first (hearsay entries, identities that only ever
    /// completed a handshake or two), then the least recently seen: a burst of fresh
    /// identities displaces each other, not the peers this node has a history with. Returns the
    /// forgotten peer's ID.
    pub(super) fn evict_least_useful(
        &mut self,
        than_ms: i64,
        standing: &Standing<'_>,
    ) -> Option<String> {
        let victim = self
            .forgettable(standing)
            .filter(|p| p.last_seen_ms < than_ms)
            .min_by_key(|p| (p.has_proved_useful(), p.last_seen_ms))
            .map(|p| p.peer_id.clone())?;
        tracing::debug!(peer = %victim, "peer table full: forgetting the least useful peer");
        self.remove(&victim);
        Some(victim)
    }

    /// Forgets the banned peer seen longest ago that is neither connected, dialled nor a seed.
    /// Only for a table with nothing else to forget: the ban stays in force in the ban list
    /// (admission checks it by ID and address), so only the record goes. Otherwise identities
    /// banned one after another fill the table and shut out every newcomer while their bans
    /// last. Returns the forgotten peer's ID.
    pub(super) fn evict_banned(&mut self, standing: &Standing<'_>) -> Option<String> {
        let victim = self
            .peers
            .values()
            .filter(|p| {
                !p.is_seed
                    && !p.dialing
                    && !(standing.connected)(&p.peer_id)
                    && (standing.banned)(p)
            })
            .min_by_key(|p| (p.has_proved_useful(), p.last_seen_ms))
            .map(|p| p.peer_id.clone())?;
        tracing::debug!(peer = %victim, "peer table full of banned peers: forgetting one");
        self.remove(&victim);
        Some(victim)
    }

    /// Entries to hand to `requester`: connected peers first (seen now), then the most
    /// recently seen; never banned peers, peers failing right now (`max_failures`), peers this
    /// node has not verified itself, the requester or ourselves.
    pub(super) fn exchange_entries(
        &self,
        requester: &str,
        max: usize,
        max_failures: u32,
        now_ms: i64,
        standing: &Standing<'_>,
    ) -> Vec<KnownAddress> {
        let mut entries: Vec<(bool, KnownAddress)> = self
            .peers
            .values()
            .filter(|p| p.peer_id != requester && !p.address.is_empty())
            .filter_map(|p| {
                let connected = (standing.connected)(&p.peer_id);
                let usable = connected || p.failure_count < max_failures;
                if !usable || (standing.banned)(p) || p.public_key.is_empty() {
                    return None;
                }
                let last_seen_ms = if connected { now_ms } else { p.last_seen_ms };
                Some((
                    connected,
                    KnownAddress {
                        peer_id: p.peer_id.clone(),
                        address: p.address.clone(),
                        last_seen_ms,
                    },
                ))
            })
            .collect();
        entries.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(b.1.last_seen_ms.cmp(&a.1.last_seen_ms))
                .then(a.1.peer_id.cmp(&b.1.peer_id))
        });
        entries.into_iter().take(max).map(|(_, e)| e).collect()
    }

    /// Adds addresses a peer (`from`) told us about. Existing records are never changed by
    /// hearsay; malformed, banned, stale or self entries are skipped, and a full table only
    /// takes an entry by forgetting a less useful peer. Returns how many were new and how many
    /// peers were forgotten to make room.
    pub(super) fn learn(
        &mut self,
        from: &str,
        entries: Vec<KnownAddress>,
        rules: &LearnRules<'_>,
        standing: &Standing<'_>,
    ) -> (usize, usize) {
        let (mut added, mut evicted) = (0, 0);
        for entry in entries.into_iter().take(rules.max_entries) {
            if !is_peer_id(&entry.peer_id)
                || entry.peer_id == rules.own_id
                || entry.address == rules.own_address
                || validate_host_port(&entry.address).is_err()
                || bans::address_ip(&entry.address).is_some_and(|ip| ip.is_unspecified())
                || self.peers.contains_key(&entry.peer_id)
            {
                continue;
            }
            // A peer cannot make an address look fresher than now.
            let last_seen_ms = entry.last_seen_ms.min(rules.now_ms);
            if rules.now_ms - last_seen_ms > rules.retention_ms
                || (rules.banned)(&entry.peer_id, &entry.address)
            {
                continue;
            }
            if self.peers.len() >= rules.max_known_peers {
                if self.evict_least_useful(last_seen_ms, standing).is_none() {
                    continue;
                }
                evicted += 1;
            }
            tracing::debug!(peer = %entry.peer_id, address = %entry.address, from = %from, "learnt peer");
            let peer = Peer::new(
                entry.peer_id.clone(),
                entry.address,
                rules.now_ms,
                last_seen_ms,
            );
            self.peers.insert(entry.peer_id.clone(), peer);
            self.mark_dirty(&entry.peer_id);
            added += 1;
        }
        (added, evicted)
    }
}
