//! `TestCluster`: hands each test its own loopback /24 (127.100.0.0/24, 127.100.1.0/24, …) and
//! the addresses in it, so tests running in parallel in this process never share an address:
//! per-address connection caps, bans by IP or CIDR and "is this my own address" checks stay
//! within one test, and nobody picks addresses by hand.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sorcha_peer::config::Config;
use tokio::net::TcpListener;

use super::{TestNode, replicate_along};

/// Subnets handed out so far in this process.
static SUBNETS: AtomicU32 = AtomicU32::new(0);
/// First octet pair of the handed-out subnets: 127.100.x.0/24 upwards, clear of the fixed
/// 127.0.x.y addresses some tests still use on purpose.
const FIRST_SECOND_OCTET: u32 = 100;

/// The addresses of one test's nodes.
pub struct TestCluster {
    /// The /24's first three octets, e.g. "127.100.7".
    prefix: String,
    /// Host part of the next address handed out.
    next: u8,
}

impl Default for TestCluster {
    fn default() -> Self {
        TestCluster::new()
    }
}

impl TestCluster {
    /// Reserves a /24 no other `TestCluster` in this process uses.
    pub fn new() -> TestCluster {
        let n = SUBNETS.fetch_add(1, Ordering::Relaxed);
        let second = FIRST_SECOND_OCTET + n / 256;
        assert!(
            second < 256,
            "more than 39 936 test clusters in one process"
        );
        TestCluster {
            prefix: format!("127.{second}.{}", n % 256),
            next: 1,
        }
    }

    /// The next free address of this cluster's subnet.
    pub fn ip(&mut self) -> String {
        assert!(self.next < 255, "a test cluster has at most 254 addresses");
        let ip = format!("{}.{}", self.prefix, self.next);
        self.next += 1;
        ip
    }

    /// The whole subnet, as a CIDR (for bans of "everyone in this test").
    pub fn subnet(&self) -> String {
        format!("{}.0/24", self.prefix)
    }

    /// Starts a node on the next address (port 0) with its own data directory.
    pub async fn start(&mut self, adjust: impl FnOnce(&mut Config)) -> TestNode {
        let ip = self.ip();
        TestNode::start(&ip, adjust).await
    }

    /// Two nodes with peer exchange off, the second seeded with the first: each knows only
    /// the other.
    pub async fn pair(&mut self) -> (TestNode, TestNode) {
        let a = self.start(|c| c.exchange_interval = Duration::ZERO).await;
        let seed = a.seed();
        let b = self
            .start(|c| {
                c.exchange_interval = Duration::ZERO;
                c.seeds = vec![seed];
            })
            .await;
        (a, b)
    }

    /// A [`pair`](Self::pair) where the first originates the public `register` and the second
    /// holds it fully replicated.
    pub async fn replicated_pair(&mut self, register: &str) -> (TestNode, TestNode) {
        let (a, b) = self.pair().await;
        a.client
            .create_register(register, true)
            .await
            .expect("create the register");
        replicate_along(&[&a, &b], register).await;
        (a, b)
    }

    /// Binds a peer listener (port 0) on the next address, for a node started later with
    /// [`TestNode::start_on`] whose address others must know first (rings, seeds both ways).
    pub async fn listener(&mut self) -> TcpListener {
        let ip = self.ip();
        TcpListener::bind((ip.as_str(), 0))
            .await
            .unwrap_or_else(|e| panic!("bind a peer listener on {ip}: {e}"))
    }
}

#[test]
fn clusters_never_share_an_address() {
    let (mut a, mut b) = (TestCluster::new(), TestCluster::new());
    let (a1, a2, b1) = (a.ip(), a.ip(), b.ip());
    assert_ne!(a1, a2);
    assert_ne!(a1, b1);
    assert_ne!(a.subnet(), b.subnet());
    let a_net: ipnet::Ipv4Net = a.subnet().parse().expect("a CIDR");
    assert!(a_net.contains(&a1.parse::<std::net::Ipv4Addr>().expect("an IPv4 address")));
    assert!(!a_net.contains(&b1.parse::<std::net::Ipv4Addr>().expect("an IPv4 address")));
}
