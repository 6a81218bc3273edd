//! This node's own address: what peers say they observe it as, whether a dial-back proved it,
//! what STUN, an HTTP lookup or the routing table suggest, and from all that the one address
//! it announces (in handshakes, hence in peer exchange) with where it came from and how
//! reachable it is. Pure decisions behind one lock; the network probing lives in edges
//! (`netprobe` for the interface, STUN and HTTP; `rpc::dialback` for dial-backs) and the loop
//! that drives them in `service::reachability`.
//!
//! Precedence: `advertise_address` configured > observed by enough peers and verified by a
//! dial-back > STUN > HTTP lookup > the interface that routes to the seeds (only when listening
//! on an unspecified address) > the listen address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::config::Config;

/// Peers whose latest observation is kept (one each); beyond it the oldest is forgotten.
pub(crate) const MAX_OBSERVERS: usize = 256;
/// Asking IPs remembered for the dial-back rate limit; beyond it the oldest is forgotten.
pub(crate) const MAX_DIAL_BACK_ASKERS: usize = 1024;
/// One dial-back per asking IP in this period; further requests are refused.
pub(crate) const DIAL_BACK_ASKER_INTERVAL: Duration = Duration::from_secs(10);
/// Failed candidates remembered (so each is retried only after a pause).
const MAX_FAILED: usize = 16;

/// Where the announced address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressSource {
    Configured,
    Observed,
    Stun,
    Http,
    Interface,
    Listen,
}

impl AddressSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressSource::Configured => "configured",
            AddressSource::Observed => "observed",
            AddressSource::Stun => "stun",
            AddressSource::Http => "http",
            AddressSource::Interface => "interface",
            AddressSource::Listen => "listen",
        }
    }
}

/// Whether others can be expected to reach the announced address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reachability {
    /// Verified by a dial-back, or a public address the operator configured.
    Public,
    /// A private, loopback or link-local address nobody verified.
    Private,
    Unknown,
}

impl Reachability {
    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::Public => "public",
            Reachability::Private => "private",
            Reachability::Unknown => "unknown",
        }
    }
}

/// What the node announces, for the handshake and `status`.
#[derive(Clone, Debug, PartialEq)]
pub struct Announcement {
    pub address: String,
    pub source: AddressSource,
    pub reachability: Reachability,
}

/// Why this node refuses to dial back for a peer.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DialBackRefusal {
    #[error("dial-back address '{0}' is not an IP address and port")]
    BadAddress(String),
    #[error("dial-back refused: {requested} is not the address you connect from ({seen})")]
    NotYourAddress { requested: IpAddr, seen: IpAddr },
    #[error("dial-back refused: at most one per {interval:?} per address")]
    TooSoon { interval: Duration },
}

/// The network a reporting peer is in, for counting agreeing peers: its IPv4 /16 or IPv6 /32,
/// so one operator's many addresses count once. A loopback address is a network of its own,
/// so nodes sharing one host's loopback (tests, local clusters) count as distinct.
pub(crate) fn network_group(ip: IpAddr) -> IpAddr {
    let ip = canonical(ip);
    if ip.is_loopback() {
        return ip;
    }
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            IpAddr::V4(Ipv4Addr::new(o[0], o[1], 0, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], 0, 0, 0, 0, 0, 0))
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Addresses nobody outside a site can reach: private, loopback, link-local, shared (CGNAT),
/// unique-local.
pub(crate) fn is_private(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// An address that can be reached from the internet (not private, not special-purpose).
pub(crate) fn is_public(ip: IpAddr) -> bool {
    let ip = canonical(ip);
    if is_private(ip) || ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            // Documentation ranges, broadcast, "this network", reserved 240/4.
            !(v4.is_broadcast()
                || o[0] == 0
                || o[0] >= 240
                || (o[0] == 192 && o[1] == 0 && o[2] == 2)
                || (o[0] == 198 && o[1] == 51 && o[2] == 100)
                || (o[0] == 203 && o[1] == 0 && o[2] == 113))
        }
        IpAddr::V6(v6) => v6.segments()[0] != 0x2001 || v6.segments()[1] != 0x0db8,
    }
}

#[derive(Clone, Copy, Debug)]
struct Observation {
    reporter_ip: IpAddr,
    observed: IpAddr,
    at_ms: i64,
}

#[derive(Default)]
struct Book {
    /// The latest observation of each reporting peer, by peer ID.
    observations: HashMap<String, Observation>,
    verified: Option<SocketAddr>,
    /// A dial-back in flight for this candidate.
    pending: Option<SocketAddr>,
    /// Candidates whose dial-back failed, with when they may be tried again.
    failed: HashMap<SocketAddr, i64>,
    stun: Option<SocketAddr>,
    http: Option<SocketAddr>,
    interface: Option<SocketAddr>,
    /// When each asking IP last had a dial-back from us.
    askers: HashMap<IpAddr, i64>,
}

/// What became of an observation.
#[derive(Debug, PartialEq, Eq)]
pub enum Observed {
    Recorded,
    /// Recorded, and the oldest other observation was forgotten to make room.
    RecordedEvicting,
    /// Empty (an older node) or not a usable address.
    Ignored,
}

/// A dial-back to ask for: the candidate address and the peers that reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct DialBackPlan {
    pub address: SocketAddr,
    pub reporters: Vec<String>,
}

/// This node's address book of itself.
pub struct AddressBook {
    configured: Option<String>,
    listen: SocketAddr,
    min_agreeing: usize,
    book: Mutex<Book>,
}

impl AddressBook {
    pub fn new(config: &Config) -> AddressBook {
        AddressBook {
            configured: config.advertise_address.clone(),
            listen: config.listen,
            min_agreeing: config.reachability_min_peers,
            book: Mutex::new(Book::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records what `peer_id` (connected from `reporter_ip`) says our address is.
    pub fn observe(
        &self,
        peer_id: &str,
        reporter_ip: IpAddr,
        observed: &str,
        now_ms: i64,
    ) -> Observed {
        let Ok(addr) = observed.parse::<SocketAddr>() else {
            return Observed::Ignored;
        };
        let ip = canonical(addr.ip());
        if ip.is_unspecified() || ip.is_multicast() {
            return Observed::Ignored;
        }
        let mut book = self.lock();
        let mut outcome = Observed::Recorded;
        if !book.observations.contains_key(peer_id) && book.observations.len() >= MAX_OBSERVERS {
            if let Some(oldest) = book
                .observations
                .iter()
                .min_by_key(|(_, o)| o.at_ms)
                .map(|(id, _)| id.clone())
            {
                book.observations.remove(&oldest);
            }
            outcome = Observed::RecordedEvicting;
        }
        book.observations.insert(
            peer_id.to_string(),
            Observation {
                reporter_ip: canonical(reporter_ip),
                observed: ip,
                at_ms: now_ms,
            },
        );
        outcome
    }

    /// The IP most peers from distinct networks agree on, if at least `reachability_min_peers`
    /// do, with this node's listen port, and the peers that reported it (newest first).
    pub fn candidate(&self) -> Option<DialBackPlan> {
        let book = self.lock();
        // Per observed IP: the reporters' networks, and the reporters (newest first later).
        type Reports = (Vec<IpAddr>, Vec<(i64, String)>);
        let mut by_ip: HashMap<IpAddr, Reports> = HashMap::new();
        for (id, o) in &book.observations {
            let entry = by_ip.entry(o.observed).or_default();
            let group = network_group(o.reporter_ip);
            if !entry.0.contains(&group) {
                entry.0.push(group);
            }
            entry.1.push((o.at_ms, id.clone()));
        }
        let (ip, (groups, mut reporters)) = by_ip
            .into_iter()
            .max_by_key(|(ip, (groups, _))| (groups.len(), *ip))?;
        if groups.len() < self.min_agreeing {
            return None;
        }
        reporters.sort_by(|a, b| b.cmp(a));
        Some(DialBackPlan {
            address: SocketAddr::new(ip, self.listen.port()),
            reporters: reporters.into_iter().map(|(_, id)| id).collect(),
        })
    }

    /// The dial-back to ask for now, if any: a candidate not yet verified, not being tried and
    /// not failed recently. Marks it as being tried.
    pub fn next_dial_back(&self, now_ms: i64) -> Option<DialBackPlan> {
        if self.configured.is_some() {
            return None;
        }
        let plan = self.candidate()?;
        let mut book = self.lock();
        if book.verified == Some(plan.address) || book.pending.is_some() {
            return None;
        }
        if book
            .failed
            .get(&plan.address)
            .is_some_and(|retry| *retry > now_ms)
        {
            return None;
        }
        book.pending = Some(plan.address);
        Some(plan)
    }

    /// A peer dialled us back at `address` and our key answered there.
    pub fn dial_back_succeeded(&self, address: SocketAddr) {
        let mut book = self.lock();
        book.pending = None;
        book.failed.remove(&address);
        book.verified = Some(address);
    }

    /// The dial-back to `address` failed; it is tried again after `retry_ms`.
    pub fn dial_back_failed(&self, address: SocketAddr, retry_ms: i64) {
        let mut book = self.lock();
        book.pending = None;
        if book.failed.len() >= MAX_FAILED
            && !book.failed.contains_key(&address)
            && let Some(oldest) = book.failed.iter().min_by_key(|(_, t)| **t).map(|(a, _)| *a)
        {
            book.failed.remove(&oldest);
        }
        book.failed.insert(address, retry_ms);
    }

    pub fn set_interface(&self, ip: Option<IpAddr>) {
        self.lock().interface = ip.map(|ip| SocketAddr::new(ip, self.listen.port()));
    }

    pub fn set_stun(&self, ip: IpAddr) {
        self.lock().stun = Some(SocketAddr::new(ip, self.listen.port()));
    }

    pub fn set_http(&self, ip: IpAddr) {
        self.lock().http = Some(SocketAddr::new(ip, self.listen.port()));
    }

    /// Whether an observed address has been verified (STUN and HTTP are then not needed).
    pub fn has_verified(&self) -> bool {
        self.lock().verified.is_some()
    }

    /// The listen address, whose host may be unspecified.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The address to announce, where it came from and how reachable it is.
    pub fn announcement(&self) -> Announcement {
        let book = self.lock();
        if let Some(configured) = &self.configured {
            let reachability = match configured.parse::<SocketAddr>() {
                Ok(a) if book.verified == Some(a) || is_public(a.ip()) => Reachability::Public,
                Ok(a) if is_private(a.ip()) => Reachability::Private,
                _ => Reachability::Unknown,
            };
            return Announcement {
                address: configured.clone(),
                source: AddressSource::Configured,
                reachability,
            };
        }
        if let Some(verified) = book.verified {
            return Announcement {
                address: verified.to_string(),
                source: AddressSource::Observed,
                reachability: Reachability::Public,
            };
        }
        let (address, source) = [
            (book.stun, AddressSource::Stun),
            (book.http, AddressSource::Http),
            (book.interface, AddressSource::Interface),
        ]
        .into_iter()
        .find_map(|(a, s)| a.map(|a| (a, s)))
        .unwrap_or((self.listen, AddressSource::Listen));
        let reachability = if is_private(address.ip()) {
            Reachability::Private
        } else {
            Reachability::Unknown
        };
        Announcement {
            address: address.to_string(),
            source,
            reachability,
        }
    }

    /// Decides whether to dial back for a peer connected from `asker_ip` that asks to be
    /// dialled at `requested`: only its own IP (any port), once per
    /// [`DIAL_BACK_ASKER_INTERVAL`] per IP. Records the attempt when allowed.
    pub fn admit_dial_back(
        &self,
        asker_ip: IpAddr,
        requested: &str,
        now_ms: i64,
    ) -> Result<SocketAddr, DialBackRefusal> {
        let address: SocketAddr = requested.parse().map_err(|_| {
            DialBackRefusal::BadAddress(
                // Peer text: cut, and without control characters (it is logged and echoed).
                requested
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(100)
                    .collect(),
            )
        })?;
        let seen = canonical(asker_ip);
        if canonical(address.ip()) != seen || address.port() == 0 {
            return Err(DialBackRefusal::NotYourAddress {
                requested: address.ip(),
                seen,
            });
        }
        let interval = DIAL_BACK_ASKER_INTERVAL.as_millis() as i64;
        let mut book = self.lock();
        if book
            .askers
            .get(&seen)
            .is_some_and(|last| now_ms - *last < interval)
        {
            return Err(DialBackRefusal::TooSoon {
                interval: DIAL_BACK_ASKER_INTERVAL,
            });
        }
        if book.askers.len() >= MAX_DIAL_BACK_ASKERS {
            book.askers.retain(|_, last| now_ms - *last < interval);
        }
        if book.askers.len() >= MAX_DIAL_BACK_ASKERS {
            return Err(DialBackRefusal::TooSoon {
                interval: DIAL_BACK_ASKER_INTERVAL,
            });
        }
        book.askers.insert(seen, now_ms);
        Ok(address)
    }
}

#[cfg(test)]
mod tests;
