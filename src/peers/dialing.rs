//! Whom to dial and when: the seed list (dialled always, with backoff, until connected) and the
//! choice of known peers for free outbound slots, plus the reconnect backoff.

use std::collections::HashSet;
use std::time::Duration;

use rand::Rng;

use super::DialTarget;
use super::record::Peer;
use super::table::PeerTable;
use crate::config::Config;

/// Jitter applied to reconnect delays (±20 %), so peers that dropped together do not redial
/// in lock-step.
const BACKOFF_JITTER: f64 = 0.2;

/// How long to wait before dialling again after `failures` failures in a row: exponential
/// from `reconnect_backoff_min`, capped at `reconnect_backoff_max`, with jitter.
pub(super) fn backoff(config: &Config, failures: u32) -> Duration {
    let min = config.reconnect_backoff_min.as_secs_f64();
    let max = config.reconnect_backoff_max.as_secs_f64();
    let exp = min * 2f64.powi(failures.saturating_sub(1).min(30) as i32);
    let jitter = 1.0 + rand::thread_rng().gen_range(-BACKOFF_JITTER..=BACKOFF_JITTER);
    Duration::from_secs_f64((exp * jitter).clamp(min, max))
}

struct Seed {
    address: String,
    peer_id: Option<String>,
    failures: u32,
    next_attempt_ms: i64,
    dialing: bool,
}

/// The configured seeds and their dial state.
#[derive(Default)]
pub(super) struct Seeds {
    seeds: Vec<Seed>,
}

impl Seeds {
    pub(super) fn new(addresses: &[String]) -> Seeds {
        Seeds {
            seeds: addresses
                .iter()
                .map(|address| Seed {
                    address: address.clone(),
                    peer_id: None,
                    failures: 0,
                    next_attempt_ms: 0,
                    dialing: false,
                })
                .collect(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.seeds.len()
    }

    pub(super) fn addresses(&self) -> HashSet<String> {
        self.seeds.iter().map(|s| s.address.clone()).collect()
    }

    /// Seeds due for a dial now: not being dialled, past their backoff, not connected (by
    /// address or by the ID they turned out to have) and not banned. Marks each as dialling.
    pub(super) fn plan(
        &mut self,
        now_ms: i64,
        connected_addresses: &HashSet<String>,
        connected: &dyn Fn(&str) -> bool,
        banned: &dyn Fn(Option<&str>, &str) -> bool,
    ) -> Vec<DialTarget> {
        let mut targets = Vec::new();
        for seed in self.seeds.iter_mut() {
            if seed.dialing
                || now_ms < seed.next_attempt_ms
                || connected_addresses.contains(&seed.address)
                || seed.peer_id.as_deref().is_some_and(connected)
                || banned(seed.peer_id.as_deref(), &seed.address)
            {
                continue;
            }
            seed.dialing = true;
            targets.push(DialTarget {
                address: seed.address.clone(),
                expected_peer_id: seed.peer_id.clone(),
                seed: true,
            });
        }
        targets
    }

    /// The seed at `address` answered as `peer_id`.
    pub(super) fn connected(&mut self, address: &str, peer_id: &str) {
        if let Some(seed) = self.seeds.iter_mut().find(|s| s.address == address) {
            seed.peer_id = Some(peer_id.to_string());
            seed.failures = 0;
            seed.dialing = false;
        }
    }

    /// A dial to the seed at `address` failed; returns the backoff before the next one.
    pub(super) fn failed(
        &mut self,
        address: &str,
        now_ms: i64,
        config: &Config,
    ) -> Option<Duration> {
        let seed = self.seeds.iter_mut().find(|s| s.address == address)?;
        seed.dialing = false;
        seed.failures += 1;
        let delay = backoff(config, seed.failures);
        seed.next_attempt_ms = now_ms + delay.as_millis() as i64;
        Some(delay)
    }

    /// A dial to the seed at `address` ended without being its fault; retry at `retry_ms`.
    pub(super) fn abandoned(&mut self, address: &str, retry_ms: i64) {
        if let Some(seed) = self.seeds.iter_mut().find(|s| s.address == address) {
            seed.dialing = false;
            seed.next_attempt_ms = retry_ms;
        }
    }

    /// The connection to the seed known as `peer_id` ended; dial it again at `retry_ms`.
    pub(super) fn disconnected(&mut self, peer_id: &str, retry_ms: i64) {
        if let Some(seed) = self
            .seeds
            .iter_mut()
            .find(|s| s.peer_id.as_deref() == Some(peer_id))
        {
            seed.next_attempt_ms = retry_ms;
        }
    }

    /// Every seed may be dialled at once (after an unban).
    pub(super) fn retry_all_now(&mut self) {
        for seed in self.seeds.iter_mut() {
            seed.next_attempt_ms = 0;
        }
    }

    /// The seed known as `peer_id` starts afresh (operator reset).
    pub(super) fn reset(&mut self, peer_id: &str) {
        for seed in self.seeds.iter_mut() {
            if seed.peer_id.as_deref() == Some(peer_id) {
                seed.failures = 0;
                seed.next_attempt_ms = 0;
            }
        }
    }
}

/// Known peers to fill `slots` outbound slots: due for a dial, with an address, not `excluded`
/// (connected, a seed, banned), fewest failures first, then most recently seen. Marks each as
/// dialling.
pub(super) fn choose_known(
    table: &mut PeerTable,
    slots: usize,
    now_ms: i64,
    excluded: &dyn Fn(&Peer) -> bool,
) -> Vec<DialTarget> {
    if slots == 0 {
        return Vec::new();
    }
    let mut candidates: Vec<&Peer> = table
        .values()
        .filter(|p| !p.dialing && p.next_dial_ms <= now_ms && !p.address.is_empty())
        .filter(|p| !excluded(p))
        .collect();
    candidates.sort_by(|a, b| {
        a.failure_count
            .cmp(&b.failure_count)
            .then(b.last_seen_ms.cmp(&a.last_seen_ms))
    });
    let chosen: Vec<(String, String)> = candidates
        .into_iter()
        .take(slots)
        .map(|p| (p.peer_id.clone(), p.address.clone()))
        .collect();
    chosen
        .into_iter()
        .map(|(id, address)| {
            if let Some(p) = table.get_mut(&id) {
                p.dialing = true;
            }
            DialTarget {
                address,
                expected_peer_id: Some(id),
                seed: false,
            }
        })
        .collect()
}
