//! Admission rules for inbound connections, applied before any work is done for them: caps on
//! open TCP connections per IP address, per subnet and in total (held as [`ConnectionSlot`]s
//! for as long as a connection is open), and the choice of which inbound peer to evict when
//! every inbound slot is taken, modelled on Bitcoin Core's: outbound and seed peers are never
//! candidates, the best and the longest-connected inbound peers are protected, and the newest
//! connection of the most crowded subnet goes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::Config;

/// Inbound peers protected from eviction for their low latency (at most a quarter of them).
const PROTECT_BY_LATENCY: usize = 4;
/// Inbound peers protected from eviction for their quality score (at most a quarter of them).
const PROTECT_BY_QUALITY: usize = 4;

/// The group an address is counted in: its /24 (IPv4) or /64 (IPv6). Loopback addresses are
/// each their own group (they are all this host; tests use them as separate hosts).
pub(crate) fn netgroup(ip: IpAddr) -> IpAddr {
    let ip = ip.to_canonical();
    if ip.is_loopback() {
        return ip;
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
    }
}

/// Why a TCP connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TcpRefusal {
    #[error("too many connections in total")]
    Total,
    #[error("too many connections from this address")]
    PerIp,
    #[error("too many connections from this subnet")]
    PerSubnet,
}

impl TcpRefusal {
    /// Metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            TcpRefusal::Total => "total_connections",
            TcpRefusal::PerIp => "connections_per_ip",
            TcpRefusal::PerSubnet => "connections_per_subnet",
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_group: HashMap<IpAddr, usize>,
}

/// Counts open inbound TCP connections against the configured caps.
pub(crate) struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    max_per_group: usize,
    counts: Mutex<Counts>,
}

impl ConnectionLimits {
    pub(crate) fn new(config: &Config) -> ConnectionLimits {
        ConnectionLimits {
            max_total: config.max_inbound + config.max_pending_connections,
            max_per_ip: config.max_connections_per_ip,
            max_per_group: config.max_connections_per_subnet,
            counts: Mutex::new(Counts::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a slot for a connection from `ip`, released when the slot is dropped.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, TcpRefusal> {
        let ip = ip.to_canonical();
        let group = netgroup(ip);
        let mut counts = self.lock();
        if counts.total >= self.max_total {
            return Err(TcpRefusal::Total);
        }
        if counts.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            return Err(TcpRefusal::PerIp);
        }
        if counts.per_group.get(&group).copied().unwrap_or(0) >= self.max_per_group {
            return Err(TcpRefusal::PerSubnet);
        }
        counts.total += 1;
        *counts.per_ip.entry(ip).or_default() += 1;
        *counts.per_group.entry(group).or_default() += 1;
        Ok(ConnectionSlot {
            limits: self.clone(),
            ip,
            group,
        })
    }

    /// Open connections counted right now.
    pub(crate) fn open(&self) -> usize {
        self.lock().total
    }

    fn release(&self, ip: IpAddr, group: IpAddr) {
        let mut guard = self.lock();
        let counts = &mut *guard;
        counts.total = counts.total.saturating_sub(1);
        for (map, key) in [(&mut counts.per_ip, ip), (&mut counts.per_group, group)] {
            if let Some(n) = map.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
    }
}

/// One admitted connection's place in the counts.
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
    group: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.limits.release(self.ip, self.group);
    }
}

/// An inbound peer that could make room for a newcomer.
#[derive(Clone, Debug)]
pub(crate) struct EvictionCandidate {
    pub peer_id: String,
    pub ip: IpAddr,
    pub connected_at_ms: i64,
    pub latency_ms: Option<f64>,
    pub quality: f64,
}

/// Picks the inbound peer to disconnect so a new one can take its slot, or `None` when every
/// candidate is protected. Protected, in turn: the lowest-latency peers, the best-scoring
/// peers, then the longer-connected half of the rest. Of what remains, the subnet with the
/// most connections gives up its newest one, so a burst of identities from one place cannot
/// push out peers that have been here long or serve well.
pub(crate) fn select_eviction(mut candidates: Vec<EvictionCandidate>) -> Option<String> {
    let quarter = candidates.len() / 4;
    protect(&mut candidates, PROTECT_BY_LATENCY.min(quarter), |a, b| {
        let key = |c: &EvictionCandidate| c.latency_ms.unwrap_or(f64::MAX);
        key(a).total_cmp(&key(b))
    });
    protect(&mut candidates, PROTECT_BY_QUALITY.min(quarter), |a, b| {
        b.quality.total_cmp(&a.quality)
    });
    let half = candidates.len() / 2;
    protect(&mut candidates, half, |a, b| {
        a.connected_at_ms.cmp(&b.connected_at_ms)
    });
    let mut groups: HashMap<IpAddr, Vec<EvictionCandidate>> = HashMap::new();
    for c in candidates {
        groups.entry(netgroup(c.ip)).or_default().push(c);
    }
    let crowded = groups.into_values().max_by(|a, b| {
        // Most connections first; on a tie, the group holding the newest connection.
        let newest = |g: &Vec<EvictionCandidate>| g.iter().map(|c| c.connected_at_ms).max();
        a.len().cmp(&b.len()).then(newest(a).cmp(&newest(b)))
    })?;
    crowded
        .into_iter()
        .max_by_key(|c| c.connected_at_ms)
        .map(|c| c.peer_id)
}

/// Removes the first `n` candidates in `order` from the list (they are protected).
fn protect(
    candidates: &mut Vec<EvictionCandidate>,
    n: usize,
    order: impl FnMut(&EvictionCandidate, &EvictionCandidate) -> std::cmp::Ordering,
) {
    candidates.sort_by(order);
    let n = n.min(candidates.len());
    candidates.drain(..n);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_ip: usize, per_group: usize) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            max_total: total,
            max_per_ip: per_ip,
            max_per_group: per_group,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn groups_are_subnets_except_on_loopback() {
        assert_eq!(netgroup(ip("192.0.2.77")), ip("192.0.2.0"));
        assert_eq!(netgroup(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(netgroup(ip("::ffff:192.0.2.9")), ip("192.0.2.0"));
        assert_eq!(netgroup(ip("127.0.0.5")), ip("127.0.0.5"));
    }

    #[test]
    fn caps_hold_and_slots_come_back_when_dropped() {
        let l = limits(4, 2, 3);
        let a1 = l.admit(ip("192.0.2.1")).expect("first");
        let _a2 = l.admit(ip("192.0.2.1")).expect("second");
        assert_eq!(l.admit(ip("192.0.2.1")).err(), Some(TcpRefusal::PerIp));
        let _b = l.admit(ip("192.0.2.2")).expect("same subnet, other ip");
        assert_eq!(l.admit(ip("192.0.2.3")).err(), Some(TcpRefusal::PerSubnet));
        let _c = l.admit(ip("198.51.100.1")).expect("other subnet");
        assert_eq!(l.admit(ip("203.0.113.1")).err(), Some(TcpRefusal::Total));
        drop(a1);
        assert_eq!(l.open(), 3);
        l.admit(ip("192.0.2.1")).expect("a slot came back");
    }

    fn candidate(
        id: &str,
        ip_text: &str,
        at: i64,
        latency: f64,
        quality: f64,
    ) -> EvictionCandidate {
        EvictionCandidate {
            peer_id: id.into(),
            ip: ip(ip_text),
            connected_at_ms: at,
            latency_ms: Some(latency),
            quality,
        }
    }

    #[test]
    fn a_burst_from_one_subnet_evicts_its_own_newest_not_old_or_good_peers() {
        // Ten honest peers from ten subnets, connected long ago, equally good.
        let mut all: Vec<EvictionCandidate> = (0..10)
            .map(|i| {
                candidate(
                    &format!("honest{i}"),
                    &format!("198.51.{i}.1"),
                    i,
                    50.0,
                    50.0,
                )
            })
            .collect();
        // A burst of fresh identities from one /24.
        all.extend((0..20).map(|i| {
            candidate(
                &format!("sybil{i}"),
                &format!("203.0.113.{i}"),
                1000 + i,
                50.0,
                50.0,
            )
        }));
        assert_eq!(select_eviction(all).as_deref(), Some("sybil19"));
    }

    #[test]
    fn the_fastest_the_best_and_the_oldest_are_protected() {
        let mut all = vec![
            candidate("fast", "192.0.2.1", 500, 1.0, 10.0),
            candidate("fast2", "192.0.2.2", 499, 2.0, 10.0),
            candidate("good", "192.0.2.3", 498, 90.0, 99.0),
        ];
        all.extend(
            (1..=5).map(|i| candidate(&format!("old{i}"), &format!("198.51.{i}.1"), i, 90.0, 10.0)),
        );
        // fast, fast2 (latency), good (quality) and old1, old2 (age) are protected; of the
        // rest, each alone in its subnet, the newest goes.
        assert_eq!(select_eviction(all).as_deref(), Some("old5"));
    }

    #[test]
    fn nothing_to_evict_without_candidates() {
        let all = vec![candidate("only", "192.0.2.1", 1, 1.0, 1.0)];
        assert_eq!(select_eviction(all).as_deref(), Some("only"));
        assert_eq!(select_eviction(Vec::new()), None);
    }
}
