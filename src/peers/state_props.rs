//! State-machine properties of the peer state (`state.rs`: table, ban list, links) with bans
//! and their expiry: random sequences of peer exchange, connections (admitted as
//! `PeerManager::register_connection` admits them: bans first, then room in the table),
//! disconnects, bans by peer ID, address or subnet with or without a duration, unbans, time
//! passing, expired bans tidied, dial plans and their ends, and pruning. After every step the
//! state must agree with a model of the bans in force: a peer a ban covers is refused, never
//! dialled, shown banned and disconnected when the ban comes; one whose ban expired is treated
//! as any other; the table stays within its bound and never forgets a connected or dialled
//! peer, nor a banned one while another may go; the counts add up.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::dialing::Seeds;
use super::links::{Links, SessionCommand, SessionHandle};
use super::state::State;
use super::table::{LearnRules, PeerTable};
use super::*;
use crate::protocol::KnownAddress;

const PEERS: u8 = 10;
const MAX_KNOWN: usize = 6;
const OWN_ID: &str = "ffffffffffffffffffffffffffffffff";

fn peer_id(n: u8) -> String {
    format!("{n:02x}").repeat(16)
}

/// Peers sit four to a /24 of 10.0.0.0/16; they may connect from 10.1.0.x instead.
fn announced_ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, n / 4, n % 4 + 1)
}

fn address(n: u8) -> String {
    format!("{}:4000", announced_ip(n))
}

/// A ban target as the model sees it.
#[derive(Clone, Debug, PartialEq)]
enum Target {
    Peer(u8),
    Ip(Ipv4Addr),
    /// The /24 or /16 starting at this address.
    Net(Ipv4Addr, u8),
}

impl Target {
    fn real(&self) -> BanTarget {
        match self {
            Target::Peer(n) => BanTarget::Peer(peer_id(*n)),
            Target::Ip(ip) => BanTarget::Ip(IpAddr::V4(*ip)),
            Target::Net(ip, len) => {
                BanTarget::parse_network(&format!("{ip}/{len}")).expect("a valid subnet")
            }
        }
    }

    fn covers(&self, n: u8, ips: &[Ipv4Addr]) -> bool {
        match self {
            Target::Peer(p) => *p == n,
            Target::Ip(ip) => ips.contains(ip),
            Target::Net(net, len) => {
                let bytes = usize::from(*len / 8);
                ips.iter()
                    .any(|ip| ip.octets()[..bytes] == net.octets()[..bytes])
            }
        }
    }
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        (0..PEERS).prop_map(Target::Peer),
        (0..PEERS).prop_map(|n| Target::Ip(announced_ip(n))),
        (0u8..4).prop_map(|x| Target::Ip(Ipv4Addr::new(10, 1, 0, x))),
        (0u8..3).prop_map(|c| Target::Net(Ipv4Addr::new(10, 0, c, 0), 24)),
        Just(Target::Net(Ipv4Addr::new(10, 1, 0, 0), 16)),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    /// A connected peer hands over these peers' addresses, seen `age` ms ago.
    Learn {
        peers: Vec<u8>,
        age: i64,
    },
    /// A handshake completed: from the announced address or from 10.1.0.`from`.
    Connect {
        peer: u8,
        from: Option<u8>,
        inbound: bool,
    },
    /// The `pick`-th live session ends.
    Disconnect {
        pick: usize,
    },
    Ban {
        target: Target,
        duration_ms: Option<u64>,
    },
    /// Lifts the `pick`-th ban held.
    Unban {
        pick: usize,
    },
    Advance {
        ms: i64,
    },
    /// Deletes the bans that ran out.
    Expire,
    Plan {
        max_outbound: usize,
    },
    /// The `pick`-th dial in progress ends, connected or not.
    DialEnd {
        pick: usize,
        connected: bool,
    },
    Prune {
        age: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (prop::collection::vec(0..PEERS, 1..4), 0i64..3_000)
            .prop_map(|(peers, age)| Op::Learn { peers, age }),
        4 => (0..PEERS, prop_oneof![2 => Just(None), 1 => (0u8..4).prop_map(Some)], any::<bool>())
            .prop_map(|(peer, from, inbound)| Op::Connect { peer, from, inbound }),
        2 => any::<usize>().prop_map(|pick| Op::Disconnect { pick }),
        3 => (target(), prop_oneof![Just(None), (1u64..5_000).prop_map(Some)])
            .prop_map(|(target, duration_ms)| Op::Ban { target, duration_ms }),
        1 => any::<usize>().prop_map(|pick| Op::Unban { pick }),
        3 => (0i64..3_000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Expire),
        2 => (1usize..4).prop_map(|max_outbound| Op::Plan { max_outbound }),
        2 => (any::<usize>(), any::<bool>())
            .prop_map(|(pick, connected)| Op::DialEnd { pick, connected }),
        1 => (0i64..4_000).prop_map(|age| Op::Prune { age }),
    ]
}

struct Session {
    conn_id: u64,
    from: Ipv4Addr,
    handle: SessionHandle,
}

struct Model {
    now: i64,
    /// Bans held (in force or expired, not yet tidied), by key: target and expiry.
    bans: BTreeMap<String, (Target, Option<i64>)>,
    sessions: BTreeMap<u8, Session>,
    /// Where each peer last connected from (the table keeps it while it keeps the peer).
    remote: BTreeMap<u8, Ipv4Addr>,
    dialing: BTreeSet<u8>,
}

impl Model {
    /// The IPs `n` is known by: its address, where it last connected from, its session's.
    fn ips(&self, n: u8) -> Vec<Ipv4Addr> {
        let mut ips = vec![announced_ip(n)];
        ips.extend(self.remote.get(&n));
        ips.extend(self.sessions.get(&n).map(|s| s.from));
        ips
    }

    fn covered_by(&self, n: u8, ips: &[Ipv4Addr]) -> Option<&str> {
        self.bans
            .iter()
            .find(|(_, (t, expiry))| expiry.is_none_or(|at| at > self.now) && t.covers(n, ips))
            .map(|(k, _)| k.as_str())
    }

    fn banned(&self, n: u8) -> bool {
        self.covered_by(n, &self.ips(n)).is_some()
    }

    fn in_force(&self) -> usize {
        (self.bans.values())
            .filter(|(_, e)| e.is_none_or(|at| at > self.now))
            .count()
    }
}

fn peer_of(id: &str) -> u8 {
    (0..PEERS)
        .find(|n| peer_id(*n) == id)
        .expect("a peer of the test")
}

/// Peers the table may not forget right now, as the model sees them.
fn protected(s: &State, m: &Model) -> BTreeSet<u8> {
    (0..PEERS)
        .filter(|n| {
            m.sessions.contains_key(n)
                || m.banned(*n)
                || s.table.get(&peer_id(*n)).is_some_and(|p| p.dialing)
        })
        .collect()
}

fn known(s: &State) -> BTreeSet<u8> {
    (0..PEERS)
        .filter(|n| s.table.contains(&peer_id(*n)))
        .collect()
}

/// What a check of the model found: `Err` is a broken property.
type Checked = Result<(), TestCaseError>;

/// Checks that whoever left the table was not protected.
fn check_forgotten(before: &BTreeSet<u8>, protected: &BTreeSet<u8>, s: &State) -> Checked {
    for n in before.difference(&known(s)) {
        prop_assert!(!protected.contains(n), "forgot protected peer {}", n);
    }
    Ok(())
}

fn connect(s: &mut State, m: &mut Model, n: u8, from: Ipv4Addr, direction: Direction) -> Checked {
    let id = peer_id(n);
    if m.sessions.contains_key(&n) {
        return Ok(());
    }
    let ips = [IpAddr::V4(announced_ip(n)), IpAddr::V4(from)];
    let refused = s.bans.matching(Some(&id), &ips, m.now).is_some();
    let model = m.covered_by(n, &[announced_ip(n), from]);
    prop_assert_eq!(
        refused,
        model.is_some(),
        "{} from {}: ban {:?}",
        n,
        from,
        model
    );
    if refused {
        if let Some(p) = s.table.get_mut(&id) {
            p.dial_ended(m.now + 1_000);
        }
        m.dialing.remove(&n);
        return Ok(());
    }
    // Room in the table, as `PeerManager::register_connection` makes it.
    if !s.table.contains(&id) && s.table.len() >= MAX_KNOWN {
        let (before, mut protected) = (known(s), protected(s, m));
        // A banned peer goes only when nothing else may (its ban stays in the ban list).
        if before.iter().all(|p| protected.contains(p)) {
            protected.retain(|n| !m.banned(*n));
        }
        let made_room = s.evict_least_useful(i64::MAX, m.now);
        check_forgotten(&before, &protected, s)?;
        if !made_room {
            prop_assert!(
                before.iter().all(|p| protected.contains(p)),
                "table full with forgettable peers"
            );
            return Ok(());
        }
    }
    let peer = VerifiedPeer {
        peer_id: id.clone(),
        public_key: format!("key{n}"),
        name: format!("n{n}"),
        address: address(n),
        software_version: "test".into(),
        platform_messages: true,
        short_ids: true,
        platform_address: None,
    };
    s.table
        .handshake_completed(peer, IpAddr::V4(from), false, m.now);
    let info = super::links::LinkInfo {
        direction,
        remote_ip: IpAddr::V4(from),
        connected_at_ms: m.now,
        platform_messages: true,
        short_ids: true,
    };
    let handle = s.links.insert(&id, info, id.clone());
    m.sessions.insert(
        n,
        Session {
            conn_id: handle.conn_id,
            from,
            handle,
        },
    );
    m.remote.insert(n, from);
    m.dialing.remove(&n);
    Ok(())
}

fn step(s: &mut State, m: &mut Model, op: Op) -> Checked {
    match op {
        Op::Learn { peers, age } => learn(s, m, &peers, age)?,
        Op::Connect {
            peer,
            from,
            inbound,
        } => {
            let from = from.map_or(announced_ip(peer), |x| Ipv4Addr::new(10, 1, 0, x));
            let direction = if inbound {
                Direction::Inbound
            } else {
                Direction::Outbound
            };
            connect(s, m, peer, from, direction)?;
        }
        Op::Disconnect { pick } => {
            if let Some(n) = m
                .sessions
                .keys()
                .nth(pick % m.sessions.len().max(1))
                .copied()
            {
                let session = m.sessions.remove(&n).expect("picked");
                prop_assert!(s.links.remove(&peer_id(n), session.conn_id));
                if let Some(p) = s.table.get_mut(&peer_id(n)) {
                    p.disconnected(false, m.now, m.now + 500);
                }
            }
        }
        Op::Ban {
            target,
            duration_ms,
        } => ban(s, m, &target, duration_ms)?,
        Op::Unban { pick } => {
            if let Some(key) = m.bans.keys().nth(pick % m.bans.len().max(1)).cloned() {
                let (target, _) = m.bans.remove(&key).expect("picked");
                prop_assert!(s.bans.remove(&key).is_some(), "ban {} not held", key);
                s.table.ban_lifted(&target.real());
                s.seeds.retry_all_now();
            }
        }
        Op::Advance { ms } => m.now += ms,
        Op::Expire => {
            for key in s.bans.expired(m.now) {
                let expiry = m.bans.get(&key).and_then(|(_, e)| *e);
                prop_assert!(
                    expiry.is_some_and(|at| at <= m.now),
                    "{} tidied at {} (expiry {:?})",
                    key,
                    m.now,
                    expiry
                );
                s.bans.remove(&key);
                m.bans.remove(&key);
            }
        }
        Op::Plan { max_outbound } => plan(s, m, max_outbound)?,
        Op::DialEnd { pick, connected } => {
            if let Some(n) = m.dialing.iter().nth(pick % m.dialing.len().max(1)).copied() {
                if connected {
                    connect(s, m, n, announced_ip(n), Direction::Outbound)?;
                }
                if m.dialing.remove(&n)
                    && let Some(p) = s.table.get_mut(&peer_id(n))
                {
                    p.dial_ended(m.now + 500);
                }
            }
        }
        Op::Prune { age } => {
            let (before, protected) = (known(s), protected(s, m));
            s.prune(m.now - age, m.now);
            check_forgotten(&before, &protected, s)?;
        }
    }
    Ok(())
}

/// Learns `peers` (seen `age` ago): nothing protected is forgotten, nothing banned learnt.
fn learn(s: &mut State, m: &Model, peers: &[u8], age: i64) -> Checked {
    let entries = peers
        .iter()
        .map(|n| KnownAddress {
            peer_id: peer_id(*n),
            address: address(*n),
            last_seen_ms: m.now - age,
        })
        .collect();
    let (before, protected) = (known(s), protected(s, m));
    let now = m.now;
    s.with_standing(now, |table, standing, bans| {
        let banned = |id: &str, a: &str| bans.covers_address(Some(id), a, now);
        let rules = LearnRules {
            own_id: OWN_ID,
            own_address: "10.9.9.9:4000",
            now_ms: now,
            retention_ms: 2_000,
            max_entries: 3,
            max_known_peers: MAX_KNOWN,
            banned: &banned,
        };
        table.learn("someone", entries, &rules, standing)
    });
    check_forgotten(&before, &protected, s)?;
    for n in known(s).difference(&before) {
        let covered = m.covered_by(*n, &[announced_ip(*n)]);
        prop_assert!(covered.is_none(), "learnt {} banned by {:?}", n, covered);
    }
    Ok(())
}

/// Bans `target` (unless a ban on it is held): exactly the sessions it covers are closed.
fn ban(s: &mut State, m: &mut Model, target: &Target, duration_ms: Option<u64>) -> Checked {
    let real = target.real();
    let key = real.key();
    let held = m
        .bans
        .get(&key)
        .is_some_and(|(_, e)| e.is_none_or(|at| at > m.now));
    prop_assert_eq!(
        s.bans.check_free(&key, m.now).is_err(),
        held,
        "{} held",
        &key
    );
    if held {
        return Ok(());
    }
    let expires_at_ms = duration_ms.map(|d| m.now + d as i64);
    let ban = Ban {
        target: real,
        reason: "test".into(),
        source: BanSource::Manual,
        banned_at_ms: m.now,
        expires_at_ms,
    };
    let (_, disconnected) = s.impose(ban, m.now);
    m.bans.insert(key, (target.clone(), expires_at_ms));
    let want: BTreeSet<u8> = (m.sessions.keys())
        .copied()
        .filter(|n| target.covers(*n, &m.ips(*n)))
        .collect();
    let got: BTreeSet<u8> = disconnected.iter().map(|id| peer_of(id)).collect();
    prop_assert_eq!(&got, &want, "disconnected by {:?}", target);
    // Each is asked to close; its session ends.
    for n in got {
        let mut session = m.sessions.remove(&n).expect("connected");
        let closing = std::iter::from_fn(|| session.handle.commands.try_recv().ok())
            .any(|c| matches!(c, SessionCommand::Close(_)));
        prop_assert!(closing, "{} was not asked to close", n);
        prop_assert!(s.links.remove(&peer_id(n), session.conn_id));
        if let Some(p) = s.table.get_mut(&peer_id(n)) {
            p.disconnected(false, m.now, m.now + 500);
        }
    }
    Ok(())
}

/// Plans dials: within the free outbound places, never to a banned, connected or dialling peer.
fn plan(s: &mut State, m: &mut Model, max_outbound: usize) -> Checked {
    let outbound = s.links.outbound_count();
    let targets = s.plan_dials(m.now, max_outbound);
    let busy = outbound + m.dialing.len();
    prop_assert!(
        targets.len() <= max_outbound.saturating_sub(busy),
        "{} dials with {} busy of {}",
        targets.len(),
        busy,
        max_outbound
    );
    for t in targets {
        let n = peer_of(t.expected_peer_id.as_deref().unwrap_or_default());
        prop_assert!(!m.banned(n), "dialling banned peer {}", n);
        prop_assert!(!m.sessions.contains_key(&n), "dialling connected {}", n);
        prop_assert!(m.dialing.insert(n), "dialling {} twice", n);
        prop_assert_eq!(t.address, address(n));
    }
    Ok(())
}

fn check(s: &State, m: &Model) -> Checked {
    prop_assert!(s.table.len() <= MAX_KNOWN, "{} peers known", s.table.len());
    let counts = s.counts(m.now);
    prop_assert_eq!(
        counts.connected + counts.connecting + counts.disconnected + counts.banned,
        counts.known
    );
    prop_assert_eq!(counts.bans, m.in_force(), "bans in force");
    prop_assert_eq!(counts.inbound + counts.outbound, m.sessions.len());
    for n in 0..PEERS {
        let id = peer_id(n);
        let Some(peer) = s.table.get(&id) else {
            prop_assert!(!m.sessions.contains_key(&n), "{} connected, unknown", n);
            continue;
        };
        let snap = s.snapshot(peer, m.now);
        let banned = m.banned(n);
        prop_assert_eq!(
            snap.state == PeerState::Banned,
            banned,
            "{} shown {:?} at {}; bans {:?}",
            n,
            snap.state,
            m.now,
            m.bans
        );
        prop_assert!(
            snap.ban
                .as_ref()
                .is_none_or(|b| b.expires_at_ms.is_none_or(|at| at > m.now)),
            "an expired ban shown"
        );
        if !banned {
            prop_assert_eq!(
                snap.state == PeerState::Connected,
                m.sessions.contains_key(&n)
            );
        } else {
            prop_assert!(!m.sessions.contains_key(&n), "{} banned yet connected", n);
        }
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Checked {
    let mut s = State {
        table: PeerTable::default(),
        bans: Default::default(),
        links: Links::default(),
        seeds: Seeds::new(&[]),
    };
    let mut m = Model {
        now: 1_000_000,
        bans: BTreeMap::new(),
        sessions: BTreeMap::new(),
        remote: BTreeMap::new(),
        dialing: BTreeSet::new(),
    };
    for op in ops {
        step(&mut s, &mut m, op)?;
        // The table drops where a forgotten peer came from.
        m.remote.retain(|n, _| s.table.contains(&peer_id(*n)));
        check(&s, &m)?;
    }
    Ok(())
}

/// Found by the `session` fuzz target: identities banned one after another (three malformed
/// docket pushes each) filled the table, and every newcomer was refused "peer table full"
/// while their bans lasted.
#[test]
fn a_table_full_of_banned_peers_still_takes_a_newcomer() {
    let mut s = State {
        table: PeerTable::default(),
        bans: Default::default(),
        links: Links::default(),
        seeds: Seeds::new(&[]),
    };
    let now = 1_000_000;
    for n in 0..MAX_KNOWN as u8 {
        let peer = VerifiedPeer {
            peer_id: peer_id(n),
            public_key: format!("key{n}"),
            name: format!("n{n}"),
            address: address(n),
            software_version: "test".into(),
            platform_messages: true,
            short_ids: true,
            platform_address: None,
        };
        s.table
            .handshake_completed(peer, IpAddr::V4(announced_ip(n)), false, now);
        s.bans.insert(Ban {
            target: BanTarget::Peer(peer_id(n)),
            reason: "automatic".into(),
            source: BanSource::Automatic,
            banned_at_ms: now,
            expires_at_ms: Some(now + 86_400_000),
        });
    }
    assert!(s.evict_least_useful(i64::MAX, now + 1), "room is made");
    assert_eq!(s.table.len(), MAX_KNOWN - 1);
    for n in 0..MAX_KNOWN as u8 {
        let ip = [IpAddr::V4(announced_ip(n))];
        assert!(
            s.bans.matching(Some(&peer_id(n)), &ip, now + 1).is_some(),
            "the ban of {n} stays in force"
        );
    }
}

proptest! {
    #![proptest_config(crate::props::config(300))]

    #[test]
    fn bans_hold_while_they_last_and_the_table_keeps_its_bounds(
        ops in prop::collection::vec(op(), 1..60)
    ) {
        run(ops)?;
    }
}
