//! Bans: what can be banned (a peer ID, an IP address, a CIDR subnet), how a ban matches a peer
//! or a connection, and when it expires. Pure logic; the bans in force, their persistence and
//! whom they disconnect live in [`super::banlist`].

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

/// The longest ban reason kept (longer ones are refused, not cut).
pub const MAX_REASON_LEN: usize = 500;
pub use crate::config::MAX_BAN_DURATION;
/// IPv4 subnets with a shorter prefix than this (more than 1/256 of the address space) are
/// not banned without force: `0.0.0.0/0` and its like cut the node off from everyone.
pub const MIN_IPV4_BAN_PREFIX: u8 = 8;
/// The IPv6 counterpart of [`MIN_IPV4_BAN_PREFIX`].
pub const MIN_IPV6_BAN_PREFIX: u8 = 16;

/// A ban duration that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("a ban duration must be greater than zero")]
    Zero,
    #[error(
        "a ban duration of {given} is longer than the maximum of {max}; give no duration to ban until unbanned",
        given = crate::clock::format_duration(*.0),
        max = crate::clock::format_duration(MAX_BAN_DURATION)
    )]
    TooLong(Duration),
}

/// Checks that `duration` can be a ban's duration: more than zero, at most [`MAX_BAN_DURATION`].
pub fn check_duration(duration: Duration) -> Result<(), DurationError> {
    if duration.is_zero() {
        Err(DurationError::Zero)
    } else if duration > MAX_BAN_DURATION {
        Err(DurationError::TooLong(duration))
    } else {
        Ok(())
    }
}

/// When a ban imposed at `now_ms` for `duration` ends, in unix milliseconds; checked, so no
/// duration can wrap into an expiry in the past. Rounded up to a whole millisecond, so a
/// duration under one (`500us`) still ends after it began rather than at once.
pub fn expiry(now_ms: i64, duration: Duration) -> Result<i64, DurationError> {
    check_duration(duration)?;
    i64::try_from(duration.as_nanos().div_ceil(1_000_000))
        .ok()
        .and_then(|ms| now_ms.checked_add(ms))
        .ok_or(DurationError::TooLong(duration))
}

/// Why a ban would turn against this node itself; such bans need force.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelfBan {
    #[error("{0} is this node's own peer ID; use --force to ban it anyway")]
    OwnId(String),
    #[error("{target} covers this node's own address {ip}; use --force to ban it anyway")]
    OwnAddress { target: String, ip: IpAddr },
    #[error(
        "{target} covers too much of the internet (a prefix shorter than /{min}) and would cut this node off from its peers; use --force to ban it anyway"
    )]
    TooBroad { target: String, min: u8 },
}

/// What a ban applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BanTarget {
    Peer(String),
    Ip(IpAddr),
    Cidr(IpNet),
}

impl BanTarget {
    /// Parses an IP address or CIDR subnet; anything else is not a network target.
    pub fn parse_network(text: &str) -> Option<BanTarget> {
        if text.contains('/') {
            // Store the network address, so 10.1.2.3/8 and 10.0.0.0/8 are the same ban.
            return text
                .parse::<IpNet>()
                .ok()
                .map(|net| BanTarget::Cidr(net.trunc()));
        }
        text.parse::<IpAddr>().ok().map(BanTarget::Ip)
    }

    pub fn kind(&self) -> BanKind {
        match self {
            BanTarget::Peer(_) => BanKind::Peer,
            BanTarget::Ip(_) => BanKind::Ip,
            BanTarget::Cidr(_) => BanKind::Cidr,
        }
    }

    /// The canonical text form, which is also the ban's key in the store.
    pub fn key(&self) -> String {
        match self {
            BanTarget::Peer(id) => id.clone(),
            BanTarget::Ip(ip) => ip.to_string(),
            BanTarget::Cidr(net) => net.to_string(),
        }
    }

    /// Whether banning this target would turn against the node itself: its own peer ID
    /// (`own_id`), one of its own addresses (`own_ips`), or a subnet so broad it covers
    /// everyone. `None` when the ban is harmless to the node.
    pub fn self_ban(&self, own_id: &str, own_ips: &[IpAddr]) -> Option<SelfBan> {
        if let BanTarget::Cidr(net) = self {
            let min = match net {
                IpNet::V4(_) => MIN_IPV4_BAN_PREFIX,
                IpNet::V6(_) => MIN_IPV6_BAN_PREFIX,
            };
            if net.prefix_len() < min {
                return Some(SelfBan::TooBroad {
                    target: self.key(),
                    min,
                });
            }
        }
        if let BanTarget::Peer(id) = self {
            return (id == own_id).then(|| SelfBan::OwnId(id.clone()));
        }
        own_ips
            .iter()
            .find(|ip| !ip.is_unspecified() && self.matches(None, &[**ip]))
            .map(|ip| SelfBan::OwnAddress {
                target: self.key(),
                ip: *ip,
            })
    }

    /// Whether this ban covers a peer with `peer_id` seen at any of `ips`.
    pub fn matches(&self, peer_id: Option<&str>, ips: &[IpAddr]) -> bool {
        match self {
            BanTarget::Peer(id) => peer_id == Some(id.as_str()),
            BanTarget::Ip(ip) => ips.iter().any(|a| canonical(*a) == canonical(*ip)),
            // In either form: a dual-stack socket sees IPv4 clients as ::ffff:a.b.c.d, and an
            // IPv6 subnet such as ::ffff:10.0.0.0/104 is meant to cover them.
            BanTarget::Cidr(net) => ips
                .iter()
                .any(|a| net.contains(&canonical(*a)) || net.contains(&mapped(*a))),
        }
    }
}

/// IPv4-mapped IPv6 addresses (::ffff:1.2.3.4) are compared as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The IPv6 form of an address: IPv4 addresses as IPv4-mapped.
fn mapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BanKind {
    Peer,
    Ip,
    Cidr,
}

impl BanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BanKind::Peer => "peer",
            BanKind::Ip => "ip",
            BanKind::Cidr => "cidr",
        }
    }
}

/// Who imposed a ban.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BanSource {
    Manual,
    Automatic,
}

impl BanSource {
    pub fn as_str(self) -> &'static str {
        match self {
            BanSource::Manual => "manual",
            BanSource::Automatic => "automatic",
        }
    }
}

/// One ban in force.
#[derive(Clone, Debug, PartialEq)]
pub struct Ban {
    pub target: BanTarget,
    pub reason: String,
    pub source: BanSource,
    pub banned_at_ms: i64,
    /// `None`: until unbanned.
    pub expires_at_ms: Option<i64>,
}

impl Ban {
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }
}

/// The host part of a `host:port` address as an IP, when it is one.
pub fn address_ip(address: &str) -> Option<IpAddr> {
    let (host, _) = address.rsplit_once(':')?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    /// Found by the `ban_target` fuzz target: `::/80` did not cover ::ffff:255.255.255.255,
    /// its own last address, because IPv4-mapped addresses were only compared as IPv4; so a
    /// ban on an IPv6 subnet of mapped addresses never matched anyone.
    #[test]
    fn an_ipv6_subnet_covers_the_ipv4_mapped_addresses_in_it() {
        let net = BanTarget::parse_network("::ffff:10.0.0.0/104").expect("cidr");
        for seen in ["10.1.2.3", "::ffff:10.1.2.3"] {
            assert!(net.matches(None, &[ip(seen)]), "{seen}");
        }
        assert!(!net.matches(None, &[ip("11.0.0.1")]));
        let wide = BanTarget::parse_network("::/80").expect("cidr");
        assert!(wide.matches(None, &[ip("::ffff:255.255.255.255")]));
        let v4 = BanTarget::parse_network("10.0.0.0/8").expect("cidr");
        assert!(v4.matches(None, &[ip("::ffff:10.9.9.9")]));
        assert!(
            !v4.matches(None, &[ip("::10.9.9.9")]),
            "IPv4-compatible is not mapped"
        );
    }

    /// Found by the `ban_target` fuzz target: `18000ns` passed the duration check but ended
    /// at the moment it began, so the ban was expired as soon as it was imposed.
    #[test]
    fn a_ban_shorter_than_a_millisecond_still_ends_after_it_began() {
        for d in [Duration::from_nanos(1), Duration::from_micros(999)] {
            assert_eq!(expiry(1_000, d), Ok(1_001), "{d:?}");
        }
        assert_eq!(expiry(1_000, Duration::from_millis(5)), Ok(1_005));
    }

    #[test]
    fn network_targets_parse_and_normalise() {
        assert_eq!(
            BanTarget::parse_network("10.0.0.7"),
            Some(BanTarget::Ip(ip("10.0.0.7")))
        );
        assert_eq!(
            BanTarget::parse_network("10.1.2.3/8").map(|t| t.key()),
            Some("10.0.0.0/8".to_string())
        );
        assert_eq!(
            BanTarget::parse_network("::1").map(|t| t.kind()),
            Some(BanKind::Ip)
        );
        assert_eq!(BanTarget::parse_network("abc123"), None);
        assert_eq!(BanTarget::parse_network("10.0.0.0/99"), None);
    }

    #[test]
    fn matching_covers_ids_addresses_and_subnets() {
        let peer = BanTarget::Peer("aa".repeat(16));
        assert!(peer.matches(Some(&"aa".repeat(16)), &[]));
        assert!(!peer.matches(Some(&"bb".repeat(16)), &[ip("1.2.3.4")]));
        let single = BanTarget::Ip(ip("127.0.0.3"));
        assert!(single.matches(None, &[ip("127.0.0.1"), ip("127.0.0.3")]));
        assert!(single.matches(None, &[ip("::ffff:127.0.0.3")]));
        assert!(!single.matches(None, &[ip("127.0.0.4")]));
        let subnet = BanTarget::parse_network("192.168.0.0/16").expect("cidr");
        assert!(subnet.matches(None, &[ip("192.168.44.1")]));
        assert!(!subnet.matches(None, &[ip("192.169.0.1")]));
    }

    #[test]
    fn bans_expire_at_their_end() {
        let ban = Ban {
            target: BanTarget::parse_network("10.0.0.0/8").expect("cidr"),
            reason: "spam".into(),
            source: BanSource::Automatic,
            banned_at_ms: 1_000,
            expires_at_ms: Some(3_000),
        };
        assert!(!ban.is_expired(2_999));
        assert!(ban.is_expired(3_000));
    }

    #[test]
    fn durations_are_bounded_and_expiry_never_wraps() {
        assert_eq!(expiry(1_000, Duration::from_secs(2)), Ok(3_000));
        assert_eq!(expiry(1_000, Duration::ZERO), Err(DurationError::Zero));
        assert!(expiry(0, MAX_BAN_DURATION).is_ok());
        let too_long = MAX_BAN_DURATION + Duration::from_secs(1);
        assert_eq!(expiry(0, too_long), Err(DurationError::TooLong(too_long)));
        // 300 million years overflowed i64 milliseconds into the past before.
        let absurd = Duration::from_secs(300_000_000 * 365 * 86_400);
        assert!(expiry(1_000, absurd).is_err());
        assert!(check_duration(Duration::MAX).is_err());
        let message = DurationError::TooLong(too_long).to_string();
        assert!(message.contains("maximum of 100years"), "{message}");
    }

    #[test]
    fn bans_against_the_node_itself_are_recognised() {
        let me = "ab".repeat(16);
        let mine = [ip("0.0.0.0"), ip("127.0.0.1"), ip("192.0.2.7")];
        let target = |t: &str| BanTarget::parse_network(t).expect("network");
        assert_eq!(
            BanTarget::Peer(me.clone()).self_ban(&me, &mine),
            Some(SelfBan::OwnId(me.clone()))
        );
        assert_eq!(BanTarget::Peer("cd".repeat(16)).self_ban(&me, &mine), None);
        assert!(matches!(
            target("192.0.2.7").self_ban(&me, &mine),
            Some(SelfBan::OwnAddress { .. })
        ));
        assert!(matches!(
            target("::ffff:127.0.0.1").self_ban(&me, &mine),
            Some(SelfBan::OwnAddress { .. })
        ));
        assert!(matches!(
            target("192.0.2.0/24").self_ban(&me, &mine),
            Some(SelfBan::OwnAddress { .. })
        ));
        for broad in ["0.0.0.0/0", "::/0", "128.0.0.0/7", "2000::/15"] {
            assert!(
                matches!(
                    target(broad).self_ban(&me, &mine),
                    Some(SelfBan::TooBroad { .. })
                ),
                "{broad}"
            );
        }
        // An unspecified listen address is no address of ours; ordinary targets pass.
        for fine in [
            "10.0.0.0/8",
            "2001:db8::/32",
            "0.0.0.1",
            "127.0.0.2",
            "192.0.3.0/24",
        ] {
            assert_eq!(target(fine).self_ban(&me, &mine), None, "{fine}");
        }
    }

    #[test]
    fn address_ip_reads_host_port() {
        assert_eq!(address_ip("127.0.0.2:5000"), Some(ip("127.0.0.2")));
        assert_eq!(address_ip("[::1]:5000"), Some(ip("::1")));
        assert_eq!(address_ip("node.example:5000"), None);
    }
}
